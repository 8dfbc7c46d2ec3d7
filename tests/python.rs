//! Python for tests, pinned by `tests/python/requirements.txt`: installed on first use into
//! `target/python-venv` (a venv of the machine's Python 3 with exactly those versions).
//!
//! Python 3 with `venv` and pip is a test prerequisite (README): without it the tests that
//! need it fail with a message saying so; they never skip.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python")
}

fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/python-venv")
}

static INSTALL: Mutex<()> = Mutex::new(());

fn run(cmd: &mut std::process::Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what}: the tests that run Python (solders, the Python client) need Python 3 with venv and pip: {e}")
    });
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The venv's Python, with the pinned packages installed (once per requirements file).
pub fn python() -> PathBuf {
    venv_python(&python_dir().join("requirements.txt"), &venv())
}

/// A venv at `venv` of the machine's Python 3 with exactly the packages pinned in
/// `requirements` (installed once per requirements file; concurrent test processes wait for
/// one install); returns its Python.
pub fn venv_python(requirements: &Path, venv: &Path) -> PathBuf {
    let _one = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let bin = venv.join("bin/python");
    let shown = requirements.display().to_string();
    crate::install::once(
        requirements,
        &venv.join(".quorate-installed"),
        &venv.with_extension("lock"),
        || {
            let _ = std::fs::remove_dir_all(venv);
            run(
                std::process::Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(venv),
                "python3 -m venv",
            );
            run(
                std::process::Command::new(&bin)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--no-deps",
                        "-r",
                    ])
                    .arg(requirements),
                &format!("pip install -r {shown}"),
            );
        },
    );
    bin
}

/// Runs `tests/python/<script>` with `args` in the venv; returns its stdout, which must be
/// one JSON value.
pub fn run_script(script: &str, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(python())
        .arg(python_dir().join(script))
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints one JSON value")
}
