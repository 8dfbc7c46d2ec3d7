//! Quorate coordinator: serves the exchange backend (withdrawals), the admins (cluster status,
//! DKG) and the signers' outbound links, on one mutual-TLS port. Trusted for liveness only.
#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod link;
pub mod policy;
pub mod registry;
pub mod server;
pub mod state;
pub mod store;
pub mod withdrawals;

use std::{path::PathBuf, process::ExitCode};

/// `quorate-coordinator` command line (also `quorate coordinator …`).
#[derive(Debug, clap::Parser)]
#[command(name = "quorate-coordinator", version, about = "Quorate coordinator")]
pub struct CoordinatorCli {
    /// What to do.
    #[command(subcommand)]
    pub command: CoordinatorCommand,
}

/// Coordinator subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CoordinatorCommand {
    /// Runs the coordinator until interrupted.
    Run {
        /// Coordinator config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Overrides the listen address (`127.0.0.1:0` picks a free port; the bound address is
        /// printed on stdout as `listening on ADDR`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
}

/// Runs the coordinator command line; returns the exit code (64 for bad configuration).
pub async fn main_with(cli: CoordinatorCli) -> ExitCode {
    match cli.command {
        CoordinatorCommand::Run { config, listen } => {
            // Installed first: a SIGHUP while the store opens is logged, not fatal.
            let shutdown = quorate_wire::logging::shutdown_signal();
            let mut cfg = match config::CoordinatorConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("quorate-coordinator: bad configuration: {e}");
                    return ExitCode::from(64);
                }
            };
            if let Some(l) = listen {
                cfg.listen = l;
            }
            quorate_wire::logging::init(cfg.log.json);
            let prepared = match server::prepare(&cfg) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("quorate-coordinator: {e:#}");
                    return ExitCode::from(64);
                }
            };
            let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("quorate-coordinator: binding {}: {e}", cfg.listen);
                    return ExitCode::from(69);
                }
            };
            if let Some(m) = &cfg.metrics {
                match tokio::net::TcpListener::bind(m.listen).await {
                    Ok(l) => {
                        if let Ok(addr) = l.local_addr() {
                            println!("metrics on {addr}");
                        }
                        tokio::spawn(prepared.serve_metrics(l));
                    }
                    Err(e) => {
                        eprintln!("quorate-coordinator: binding metrics {}: {e}", m.listen);
                        return ExitCode::from(69);
                    }
                }
            }
            if let Ok(addr) = listener.local_addr() {
                // Machine-readable for supervisors and tests that asked for port 0.
                println!("listening on {addr}");
            }
            match server::run(prepared, listener, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("quorate-coordinator: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
