//! Python for tests, pinned by `tests/python/requirements.txt`: installed on first use into
//! `target/python-venv` (a venv of the machine's Python 3 with exactly those versions).
//!
//! Python 3 with `venv` and pip is a test prerequisite (README): without it the tests that
//! need it fail with a message saying so; they never skip.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use sha2::{Digest, Sha256};

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python")
}

fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/python-venv")
}

static INSTALL: Mutex<()> = Mutex::new(());

fn run(cmd: &mut std::process::Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what}: the tests that read Solana transactions with solders need Python 3 with venv and pip: {e}")
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
    let _one = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let requirements = python_dir().join("requirements.txt");
    let want = hex::encode(Sha256::digest(
        std::fs::read(&requirements).expect("tests/python/requirements.txt"),
    ));
    let venv = venv();
    let bin = venv.join("bin/python");
    let marker = venv.join(".quorate-installed");
    let ready = || std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str());
    if ready() {
        return bin;
    }
    // Another test process may be installing: a lock directory, stale after ten minutes.
    let guard = venv.with_extension("lock");
    let mut waited = 0;
    while std::fs::create_dir(&guard).is_err() {
        let stale = std::fs::metadata(&guard)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if stale {
            let _ = std::fs::remove_dir(&guard);
            continue;
        }
        std::thread::sleep(Duration::from_millis(500));
        waited += 1;
        if ready() {
            return bin;
        }
        assert!(
            waited < 2400,
            "waited 20 minutes for another Python install"
        );
    }
    struct Unlock(PathBuf);
    impl Drop for Unlock {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _unlock = Unlock(guard);
    let _ = std::fs::remove_dir_all(&venv);
    run(
        std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv),
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
            .arg(&requirements),
        "pip install -r tests/python/requirements.txt",
    );
    std::fs::write(&marker, &want).expect("venv marker");
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
