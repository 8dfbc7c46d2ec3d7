//! A real EVM node for tests: Hardhat 2 as pinned by `chains/evm/package-lock.json`,
//! installed with `npm ci` on first use and started on a free loopback port.
//!
//! Node.js and npm are test prerequisites (README): without them the tests that need a chain
//! fail with a message saying so; they never skip.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::Mutex,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::evm_rpc::Rpc;

/// `chains/evm` of this checkout.
pub fn evm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../chains/evm")
}

static INSTALL: Mutex<()> = Mutex::new(());

/// Installs the pinned Node.js packages once per lock file (`npm ci`).
pub fn ensure_installed() {
    let _one = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = evm_dir();
    crate::install::once(
        &dir.join("package-lock.json"),
        &dir.join("node_modules/.quorate-installed"),
        &dir.join(".npm-ci.lock"),
        || {
            let out = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "the EVM tests need Node.js (18 or later) and npm to install Hardhat from chains/evm/package-lock.json: running npm failed: {e}"
                    )
                });
            assert!(
                out.status.success(),
                "npm ci in chains/evm failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        },
    );
}

/// A Hardhat node; killed on drop.
pub struct Hardhat {
    _child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// A client for it.
    pub rpc: Rpc,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Hardhat {
    /// Starts a fresh node (chain id 31337, twenty funded development accounts).
    pub async fn start() -> Hardhat {
        ensure_installed();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("node")
                .arg("node_modules/hardhat/internal/cli/cli.js")
                .args([
                    "node",
                    "--hostname",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                ])
                .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
                .current_dir(evm_dir())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("the EVM tests need Node.js: starting `node` failed");
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let started = tokio::time::timeout(Duration::from_secs(180), async {
                while let Ok(Some(l)) = lines.next_line().await {
                    if l.contains("Started HTTP") {
                        return true;
                    }
                }
                false
            })
            .await
            .unwrap_or(false);
            if started {
                // Keep reading its output, so a full pipe never blocks the node.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                let url = format!("http://127.0.0.1:{port}");
                let rpc = Rpc::new(&url).unwrap();
                return Hardhat {
                    _child: child,
                    url,
                    rpc,
                };
            }
            let _ = child.kill().await;
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = e.read_to_string(&mut err).await;
            }
            last = err;
        }
        panic!("Hardhat did not start (5 tries):\n{last}");
    }

    /// Moves the node's clock forward and mines a block.
    pub async fn advance(&self, seconds: u64) {
        self.rpc
            .call("evm_increaseTime", serde_json::json!([seconds]))
            .await
            .unwrap();
        self.rpc
            .call("evm_mine", serde_json::json!([]))
            .await
            .unwrap();
    }
}
