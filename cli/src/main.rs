//! `quorate`: the Quorate command line.
#![forbid(unsafe_code)]

mod admin;
mod audit;
mod bench;
mod ceremony;
mod client;
mod commands;
mod delay;
mod desk;
mod devnet;
mod devnet_evm;
mod evm;
mod evm_rpc;
mod reconcile;
mod setup;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "quorate",
    version,
    about = "Quorate: threshold co-signing for exchange withdrawals"
)]
struct Cli {
    /// Cluster directory (made by `quorate devnet` or `quorate certs`).
    #[arg(long, global = true, default_value = ".quorate-devnet")]
    dir: PathBuf,
    /// Coordinator address, overriding the one in the cluster directory.
    #[arg(long, global = true)]
    coordinator: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a local cluster (coordinator and signers as separate processes) until Ctrl-C.
    Devnet {
        /// Number of signers.
        #[arg(long, default_value_t = 3)]
        signers: u16,
        /// Threshold.
        #[arg(long, default_value_t = 2)]
        threshold: u16,
        /// JSON-RPC URL of a development EVM node (Hardhat, anvil): chain `ethereum` pays out
        /// through a vault the devnet deploys there and funds with 100 ETH and test tokens.
        #[arg(long)]
        evm_rpc: Option<String>,
    },
    /// Creates a development CA, certificates, identities, manifest and configs.
    Certs {
        /// Number of signers.
        #[arg(long, default_value_t = 3)]
        signers: u16,
        /// Threshold.
        #[arg(long, default_value_t = 2)]
        threshold: u16,
        /// Address signers will dial.
        #[arg(long, default_value = "localhost:7443")]
        coordinator_addr: String,
        /// Genesis policy (TOML form, docs/policy.md); default: the development policy.
        /// Its admins, quorum and backend keys are replaced by the keys made here.
        #[arg(long)]
        policy: Option<std::path::PathBuf>,
    },
    /// Builds, signs (as the backend) and submits a withdrawal; prints the outcome.
    Submit(commands::SubmitArgs),
    /// Matches every payout event of the vault on a chain to a withdrawal that t signers'
    /// verified audit logs show co-signed; exit 2 with each unmatched payout printed.
    Reconcile(reconcile::ReconcileArgs),
    /// Prints the creation code that deploys a vault for a group key (docs/evm.md): send it
    /// from any account with any wallet, then put the vault in the policy's `[[chains]]`.
    VaultCreation(evm::VaultCreationArgs),
    /// Shows one withdrawal.
    Get {
        /// Withdrawal id.
        id: String,
    },
    /// Checks a FROST (RFC 9591) signature offline: secp256k1 or Ed25519, by the key's length.
    Verify {
        /// Group key, hex: 33-byte compressed secp256k1, or 32-byte Ed25519 (Solana).
        #[arg(long)]
        group_key: String,
        /// Signed message, hex.
        #[arg(long)]
        message: String,
        /// Signature (R then z), hex: 65 bytes for secp256k1, 64 for Ed25519.
        #[arg(long)]
        signature: String,
    },
    /// Shows cluster status (admin).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs distributed key generation across all signers (admin), for one key group.
    Dkg {
        /// The key group: secp256k1 (intent digests, the EVM/Tron vault) or ed25519 (Solana).
        #[arg(long, default_value = "secp256k1")]
        scheme: quorate_core::message::Scheme,
    },
    /// Rebuilds a signer's lost key share from t helpers (admin), for one key group, with the
    /// group key unchanged. The signer runs on its empty data directory with its own identity
    /// key and holds no share of that group (docs/operations.md).
    Repair {
        /// The signer to repair, by manifest name.
        #[arg(long)]
        signer: String,
        /// The key group: secp256k1 or ed25519.
        #[arg(long, default_value = "secp256k1")]
        scheme: quorate_core::message::Scheme,
        /// Helpers by name, comma separated (default: the first t connected holders).
        #[arg(long, value_delimiter = ',')]
        helpers: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Refreshes every share of one key group (admin): the same group key, new shares, the key
    /// epoch one up; every holder must be connected (docs/operations.md).
    Refresh {
        /// The key group: secp256k1 or ed25519.
        #[arg(long, default_value = "secp256k1")]
        scheme: quorate_core::message::Scheme,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Policy governance and withdrawal approvals, signed with an admin key file.
    Admin {
        /// Admin key file (hex); default: the one in client.toml.
        #[arg(long, global = true)]
        key: Option<PathBuf>,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
        /// Sign without asking for confirmation (automation; what is signed is still printed,
        /// on stderr with --json). Without it, signing asks on a terminal.
        #[arg(long, global = true)]
        yes: bool,
        #[command(subcommand)]
        cmd: admin::AdminCommand,
    },
    /// Audit logs: export them through the coordinator, verify them offline.
    Audit {
        #[command(subcommand)]
        cmd: audit::AuditCommand,
    },
    /// Measures a running cluster: sequential withdrawals, latency percentiles.
    Probe {
        /// How many withdrawals.
        #[arg(long, default_value_t = 200)]
        count: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prints the coordinator's metrics (Prometheus text, fetched over mutual TLS).
    Metrics {
        /// Metrics endpoint `host:port` (default: the one the devnet recorded).
        #[arg(long)]
        addr: Option<String>,
    },
    /// Benchmarks real clusters it starts itself (2-of-3 and 3-of-5 by default) against the
    /// in-process floor; prints throughput, latency, memory, disk and DKG times.
    Bench(bench::BenchArgs),
    /// The cluster CA, on the CA host (production ceremony: deploy/README.md).
    Ca {
        #[command(subcommand)]
        cmd: ceremony::CaCommand,
    },
    /// Makes a coordinator's, backend's or admin's TLS key and CSR on its own host, and the
    /// backend's or admin's signing key; prints the public key (signers: `quorate-signer init`).
    Keygen(ceremony::KeygenArgs),
    /// The cluster manifest, built from public material only.
    Manifest {
        #[command(subcommand)]
        cmd: ceremony::ManifestCommand,
    },
    /// The genesis policy: draft it, have each admin sign it on their desk, combine.
    Genesis {
        #[command(subcommand)]
        cmd: ceremony::GenesisCommand,
    },
    /// Signs a certificate signing request with the cluster CA (from `quorate-signer init` or
    /// `quorate keygen`).
    SignCsr {
        /// The CA directory holding ca.pem and ca.key (default: `<--dir>/ca`).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// The CSR (PEM).
        #[arg(long)]
        csr: PathBuf,
        /// The node's name (becomes the certificate's common name).
        #[arg(long)]
        name: String,
        /// The role to grant: signer, coordinator, backend or admin. The CA decides, not the
        /// request.
        #[arg(long, default_value = "signer")]
        role: String,
        /// For a coordinator: a DNS name or IP address clients and signers dial it by
        /// (repeatable; at least one).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Days the certificate is valid (at most 825); renew it for the same key before then.
        #[arg(long, default_value_t = quorate_wire::pki::LEAF_DAYS)]
        days: u32,
        /// Where to write the certificate (PEM).
        #[arg(long)]
        out: PathBuf,
    },
    /// Runs a signer node (same as `quorate-signer`).
    Signer {
        #[command(subcommand)]
        command: quorate_signer::SignerCommand,
    },
    /// Runs the coordinator (same as `quorate-coordinator`).
    Coordinator {
        #[command(subcommand)]
        command: quorate_coordinator::CoordinatorCommand,
    },
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let addr = cli.coordinator.as_deref();
    match cli.command {
        Command::Devnet {
            signers,
            threshold,
            evm_rpc,
        } => devnet::run(&cli.dir, signers, threshold, evm_rpc.as_deref()).await,
        Command::Certs {
            signers,
            threshold,
            coordinator_addr,
            policy,
        } => {
            let policy = policy
                .map(|p| {
                    std::fs::read_to_string(&p)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
                })
                .transpose()?;
            setup::create(
                &cli.dir,
                &setup::ClusterSpec {
                    signers,
                    threshold,
                    coordinator_addr,
                    policy,
                },
            )?;
            println!("created a development cluster in {}", cli.dir.display());
            Ok(0)
        }
        Command::Reconcile(a) => reconcile::run(&cli.dir, a).await,
        Command::VaultCreation(a) => evm::print_creation(a),
        Command::Submit(a) => {
            let c = setup::ClientFile::load(&cli.dir)?;
            commands::submit(&c, addr, a).await
        }
        Command::Get { id } => {
            let c = setup::ClientFile::load(&cli.dir)?;
            commands::get(&c, addr, id).await
        }
        Command::Verify {
            group_key,
            message,
            signature,
        } => {
            if commands::verify(&group_key, &message, &signature)? {
                println!("valid");
                Ok(0)
            } else {
                println!("INVALID");
                Ok(1)
            }
        }
        Command::Status { json } => {
            let c = setup::ClientFile::load(&cli.dir)?;
            commands::status(&c, addr, json).await
        }
        Command::Dkg { scheme } => {
            let c = setup::ClientFile::load(&cli.dir)?;
            commands::dkg(&c, addr, false, scheme).await.map(|_| 0)
        }
        Command::Repair {
            signer,
            scheme,
            helpers,
            json,
        } => {
            let c = setup::ClientFile::load(&cli.dir)?;
            commands::repair(&c, addr, &signer, scheme, helpers, json).await
        }
        Command::Refresh { scheme, json } => {
            let c = setup::ClientFile::load(&cli.dir)?;
            commands::refresh(&c, addr, scheme, json).await
        }
        Command::Admin {
            key,
            json,
            yes,
            cmd,
        } => {
            let c = setup::ClientFile::load(&cli.dir)?;
            admin::run(&c, addr, key.as_deref(), json, yes, cmd).await
        }
        Command::Audit { cmd } => audit::run(&cli.dir, addr, cmd).await,
        Command::Probe { count, json } => {
            let c = setup::ClientFile::load(&cli.dir)?;
            commands::probe(&c, addr, count, json).await
        }
        Command::Bench(a) => bench::run(&a).await,
        Command::Metrics { addr } => {
            let c = setup::ClientFile::load(&cli.dir)?;
            print!("{}", client::metrics(&c, addr.as_deref()).await?);
            Ok(0)
        }
        Command::Ca { cmd } => ceremony::run_ca(cmd),
        Command::Keygen(a) => {
            print!("{}", ceremony::keygen(&a)?);
            Ok(0)
        }
        Command::Manifest {
            cmd: ceremony::ManifestCommand::Build(a),
        } => {
            print!("{}", ceremony::build_manifest(&a)?);
            Ok(0)
        }
        Command::Genesis { cmd } => ceremony::run_genesis(cmd),
        Command::SignCsr {
            ca,
            csr,
            name,
            role,
            hosts,
            days,
            out,
        } => {
            let ca = ca.unwrap_or_else(|| cli.dir.join("ca"));
            setup::sign_csr(&ca, &csr, &name, &role, &hosts, days, &out)?;
            println!(
                "read the CA certificate {}, the CA key {} and the request {}",
                ceremony::ca_cert_path(&ca).display(),
                ceremony::ca_key_path(&ca).display(),
                csr.display()
            );
            println!("wrote {}", out.display());
            Ok(0)
        }
        Command::Signer { .. } | Command::Coordinator { .. } => unreachable!("handled in main"),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Signer { command } => {
            return quorate_signer::main_with(quorate_signer::SignerCli { command }).await
        }
        Command::Coordinator { command } => {
            return quorate_coordinator::main_with(quorate_coordinator::CoordinatorCli { command })
                .await
        }
        _ => {}
    }
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("quorate: {e:#}");
            ExitCode::from(1)
        }
    }
}
