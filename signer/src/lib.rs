//! Quorate signer node: holds one FROST key share (encrypted at rest), dials the coordinator
//! and decides for itself, from the intent, its manifest and its policy, whether to sign.
#![forbid(unsafe_code)]

pub mod backup;
pub mod config;
pub mod link;
pub mod node;
pub mod store;

use std::{future::Future, path::PathBuf, sync::Arc};

use anyhow::Context;
use quorate_core::identity::IdentitySecret;
use quorate_wire::{manifest::Manifest, tls::TlsMaterial};

use crate::{
    config::SignerConfig,
    node::{identity_purpose, Node, NodeLimits},
    store::SledStore,
};

/// `quorate-signer` command line (also `quorate signer …`).
#[derive(Debug, clap::Parser)]
#[command(name = "quorate-signer", version, about = "Quorate signer node")]
pub struct SignerCli {
    /// What to do.
    #[command(subcommand)]
    pub command: SignerCommand,
}

/// Signer subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SignerCommand {
    /// Creates this signer's identity key, TLS key and certificate signing request on this host.
    Init {
        /// Signer config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Writes a certificate signing request for this host's existing TLS key, to renew its
    /// certificate (the manifest pins the key, so the renewed certificate needs no new
    /// manifest). Needs neither the KEK nor a stopped signer.
    Csr {
        /// Signer config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Freezes this signer locally, at once: no coordinator, no restart (an operator's stop).
    Freeze {
        /// Signer config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Why, for the record in the freeze file.
        #[arg(long, default_value = "operator's emergency stop")]
        reason: String,
    },
    /// Lifts this operator's local freeze.
    Unfreeze {
        /// Signer config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Writes a backup of this signer's identity key and key shares, sealed to a passphrase
    /// (Argon2id), never with the KEK. Run with the signer stopped.
    Backup {
        /// Signer config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The backup file to create.
        #[arg(long)]
        out: PathBuf,
        /// A file holding the passphrase (at least 12 bytes); keep it apart from the backup.
        #[arg(long)]
        passphrase_file: PathBuf,
    },
    /// Restores this signer from a backup into an empty data directory (a lost disk), under
    /// this host's KEK. Run with the signer stopped.
    Restore {
        /// Signer config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The file holding the backup's passphrase.
        #[arg(long)]
        passphrase_file: PathBuf,
    },
    /// Runs the signer until interrupted.
    Run {
        /// Signer config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Overrides the coordinator address from the config.
        #[arg(long)]
        coordinator: Option<String>,
    },
}

/// Loads everything the signer needs, failing before any connection on bad configuration.
pub fn load(cfg: &SignerConfig) -> anyhow::Result<(Arc<Node>, Vec<link::LinkTarget>)> {
    load_with_clock(cfg, Arc::new(quorate_wire::clock::SystemClock::new()))
}

/// [`load`] with the node reading time from `clock` (tests move it by hand).
pub fn load_with_clock(
    cfg: &SignerConfig,
    clock: Arc<dyn quorate_core::clock::Clock>,
) -> anyhow::Result<(Arc<Node>, Vec<link::LinkTarget>)> {
    let manifest = Manifest::load(&cfg.manifest)?;
    let tls = TlsMaterial::load(&cfg.tls.ca, &cfg.tls.cert, &cfg.tls.key)?;
    let own = quorate_wire::tls::identity_of(tls.leaf_der())
        .map_err(|e| anyhow::anyhow!("own certificate: {e}"))?;
    // The name first: the identity key is sealed under it, so a renamed signer would otherwise
    // be told its key-encryption key is wrong.
    let entry = manifest.signer_by_name(&cfg.name).with_context(|| {
        let names: Vec<&str> = manifest.signers.iter().map(|s| s.name.as_str()).collect();
        format!(
            "name: `{}` is not a signer of the manifest ({}); this host's certificate is for `{}`: `name` in the config must be the manifest's and the certificate's",
            cfg.name,
            names.join(", "),
            own.name
        )
    })?;
    anyhow::ensure!(
        own.role == quorate_wire::tls::Role::Signer,
        "tls.cert: the certificate carries the `{}` role; a signer needs `signer`",
        own.role
    );
    quorate_wire::tls::check_own_lifetime(&own, "quorate-signer csr, then the CA's sign-csr")
        .map_err(|e| anyhow::anyhow!(e))?;
    anyhow::ensure!(
        own.key_sha256 == entry.key_sha256 && own.name == entry.name,
        "our TLS certificate (for `{}`) is not for the key the manifest lists for `{}`",
        own.name,
        cfg.name
    );
    let kek = cfg.kek()?;
    let sealed = std::fs::read(&cfg.keys.identity)
        .with_context(|| format!("reading identity key {}", cfg.keys.identity.display()))?;
    let identity = IdentitySecret::from_bytes(&kek.open(&identity_purpose(&cfg.name), &sealed)?)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let store = Arc::new(SledStore::open(&cfg.data_dir)?);
    let node = Node::new(
        cfg.name.clone(),
        manifest,
        identity,
        kek,
        node::NodeParts {
            store,
            local_freeze: node::LocalFreeze {
                by_config: cfg.policy.frozen,
                file: Some(cfg.data_dir.join(node::FREEZE_FILE)),
            },
            limits: NodeLimits {
                nonce_limit: cfg.signing.nonce_limit,
                nonce_ttl_ms: cfg.signing.nonce_ttl.as_millis() as u64,
                max_clock_skew_ms: cfg.signing.max_clock_skew.as_millis() as u64,
            },
            clock,
        },
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    node.set_certificate_expiry(own.not_after_unix);
    let tls = tls.client_config()?;
    let targets: Vec<link::LinkTarget> = cfg
        .coordinators()
        .into_iter()
        .zip(0..)
        .map(|((addr, server_name), i)| link::LinkTarget {
            link: node::LinkId(i),
            addr,
            server_name,
            tls: tls.clone(),
        })
        .collect();
    // Every configured link is in the metrics from the start, down until it connects: a
    // coordinator never reached shows as down, not as absent.
    for t in &targets {
        node.set_link_up(t.link, &t.addr, false);
    }
    Ok((Arc::new(node), targets))
}

/// Runs a loaded signer until `shutdown` resolves.
pub async fn run(cfg: SignerConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (node, targets) = load(&cfg)?;
    tracing::info!(
        signer = %node.name,
        identifier = node.me,
        version = env!("CARGO_PKG_VERSION"),
        has_key = !node.group_key().is_empty(),
        has_ed25519_key = !node.ed25519_group_key().is_empty(),
        "signer starting"
    );
    if node.group_key().is_empty() {
        tracing::warn!(
            signer = %node.name,
            "this signer holds no key share: it cannot sign until a DKG gives it one (`quorate dkg` once all signers are connected)"
        );
    }
    if let Some(m) = cfg.metrics.clone() {
        tokio::spawn(write_metrics(node.clone(), m));
    }
    // One link per coordinator, all ended by the one shutdown.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let links: Vec<_> = targets
        .into_iter()
        .map(|target| {
            let mut stopped = stopped.clone();
            tokio::spawn(link::maintain(node.clone(), target, async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        })
        .collect();
    shutdown.await;
    let _ = stop.send(true);
    for l in links {
        let _ = l.await;
    }
    Ok(())
}

/// Rewrites the metrics file every interval, atomically (temporary file, then rename).
async fn write_metrics(node: Arc<Node>, m: config::MetricsConfig) {
    let mut tick = tokio::time::interval(m.interval.max(std::time::Duration::from_secs(1)));
    let tmp = m.textfile.with_extension("prom.tmp");
    loop {
        tick.tick().await;
        let (tmp, path, node) = (tmp.clone(), m.textfile.clone(), node.clone());
        // Rendering takes the node's locks, and writing is file I/O: off the reactor.
        let written = tokio::task::spawn_blocking(move || {
            std::fs::write(&tmp, node.render_metrics())?;
            std::fs::rename(&tmp, &path)
        })
        .await;
        if let Ok(Err(e)) = written {
            tracing::warn!(file = %m.textfile.display(), error = %e, "could not write the metrics file");
        }
    }
}

/// Creates the identity key (sealed under the KEK), a TLS key and a CSR, without overwriting
/// anything. Prints the public parts for the manifest.
pub fn init(cfg: &SignerConfig) -> anyhow::Result<String> {
    let mut out = String::new();
    if let (Some(path), false) = (
        &cfg.keys.kek_file,
        cfg.keys.kek_file.as_ref().is_some_and(|p| p.exists()),
    ) {
        let kek = quorate_core::atrest::Kek::generate(&mut rand::rngs::OsRng);
        write_secret(path, kek.to_hex().as_bytes())?;
        out.push_str(&format!("created key-encryption key {}\n", path.display()));
    }
    let kek = cfg.kek()?;
    let identity = if cfg.keys.identity.exists() {
        let sealed = std::fs::read(&cfg.keys.identity)?;
        IdentitySecret::from_bytes(&kek.open(&identity_purpose(&cfg.name), &sealed)?)?
    } else {
        let id = IdentitySecret::generate(&mut rand::rngs::OsRng);
        let sealed = kek.seal(
            &mut rand::rngs::OsRng,
            &identity_purpose(&cfg.name),
            &id.to_bytes(),
        );
        write_secret(&cfg.keys.identity, &sealed)?;
        out.push_str(&format!(
            "created identity key {}\n",
            cfg.keys.identity.display()
        ));
        id
    };
    if !cfg.tls.key.exists() {
        let (key_pem, csr_pem) = quorate_wire::pki::key_and_csr(&cfg.name)?;
        write_secret(&cfg.tls.key, key_pem.as_bytes())?;
        let csr = cfg.tls.cert.with_extension("csr");
        std::fs::write(&csr, csr_pem)?;
        out.push_str(&format!(
            "created TLS key {} and signing request {} (have the cluster CA sign it into {})\n",
            cfg.tls.key.display(),
            csr.display(),
            cfg.tls.cert.display()
        ));
    }
    out.push_str(&format!(
        "name = \"{}\"\nidentity_key = \"{}\"\n",
        cfg.name,
        identity.public()
    ));
    Ok(out)
}

/// `quorate-signer csr`: a signing request for the TLS key this host has, next to the configured
/// certificate (`<tls.cert>.csr`, replaced: a request is public).
fn renewal_csr(cfg: &SignerConfig) -> anyhow::Result<String> {
    let key_pem = std::fs::read_to_string(&cfg.tls.key).with_context(|| {
        format!(
            "reading the TLS key {} (run `init` first if this host has none)",
            cfg.tls.key.display()
        )
    })?;
    let csr = cfg.tls.cert.with_extension("csr");
    std::fs::write(&csr, quorate_wire::pki::csr_for_key(&cfg.name, &key_pem)?)
        .with_context(|| format!("writing {}", csr.display()))?;
    Ok(format!(
        "wrote {} for the TLS key {}: have the cluster CA sign it (`quorate sign-csr`) to renew {}\n",
        csr.display(),
        cfg.tls.key.display(),
        cfg.tls.cert.display()
    ))
}

/// Writes a secret file readable by its owner only, refusing to overwrite.
pub fn write_secret(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// `quorate signer freeze`: stops this signer at once, on this host, without a restart and
/// without the coordinator. The running signer refuses every withdrawal from its next request
/// on, until `quorate signer unfreeze`.
pub fn freeze(cfg: &SignerConfig, reason: &str) -> anyhow::Result<String> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let path = cfg.data_dir.join(node::FREEZE_FILE);
    let text = format!(
        "frozen at {} ms: {reason}\n",
        quorate_wire::clock::unix_ms()
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::File::open(&cfg.data_dir)
        .and_then(|d| d.sync_all())
        .ok();
    Ok(format!(
        "signer {} frozen locally ({}): it refuses every withdrawal until `quorate signer unfreeze`\n",
        cfg.name,
        path.display()
    ))
}

/// `quorate signer unfreeze`: lifts this operator's local freeze (not a governed one).
pub fn unfreeze(cfg: &SignerConfig) -> anyhow::Result<String> {
    let path = cfg.data_dir.join(node::FREEZE_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(format!("signer {}: local freeze lifted\n", cfg.name)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(format!("signer {} was not frozen locally\n", cfg.name))
        }
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

fn local_command(
    config: &std::path::Path,
    f: impl FnOnce(&SignerConfig) -> anyhow::Result<String>,
) -> std::process::ExitCode {
    match SignerConfig::load(config)
        .map_err(anyhow::Error::from)
        .and_then(|c| f(&c))
    {
        Ok(text) => {
            print!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("quorate-signer: {e:#}");
            std::process::ExitCode::from(64)
        }
    }
}

/// Runs the signer command line; returns the process exit code (64 for bad configuration).
pub async fn main_with(cli: SignerCli) -> std::process::ExitCode {
    use std::process::ExitCode;
    match cli.command {
        SignerCommand::Init { config } => {
            match SignerConfig::load(&config)
                .map_err(anyhow::Error::from)
                .and_then(|c| init(&c))
            {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("quorate-signer init: {e:#}");
                    ExitCode::from(64)
                }
            }
        }
        SignerCommand::Csr { config } => local_command(&config, renewal_csr),
        SignerCommand::Freeze { config, reason } => local_command(&config, |c| freeze(c, &reason)),
        SignerCommand::Unfreeze { config } => local_command(&config, unfreeze),
        SignerCommand::Backup {
            config,
            out,
            passphrase_file,
        } => local_command(&config, |c| backup::backup(c, &out, &passphrase_file)),
        SignerCommand::Restore {
            config,
            from,
            passphrase_file,
        } => local_command(&config, |c| backup::restore(c, &from, &passphrase_file)),
        SignerCommand::Run {
            config,
            coordinator,
        } => {
            let mut cfg = match SignerConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("quorate-signer: bad configuration: {e}");
                    return ExitCode::from(64);
                }
            };
            if let Some(addr) = coordinator {
                if let Err(e) = quorate_wire::tls::check_endpoint(&addr) {
                    eprintln!("quorate-signer: bad configuration: --coordinator: {e}");
                    return ExitCode::from(64);
                }
                if cfg.other_coordinators.iter().any(|o| o.address == addr) {
                    eprintln!("quorate-signer: bad configuration: --coordinator: `{addr}` is also in other_coordinators");
                    return ExitCode::from(64);
                }
                cfg.coordinator = addr;
            }
            quorate_wire::logging::init(cfg.log.json);
            // Installed before the store opens: a SIGHUP during start-up is logged, not fatal.
            let shutdown = quorate_wire::logging::shutdown_signal();
            match run(cfg, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "signer failed to start");
                    eprintln!("quorate-signer: {e:#}");
                    ExitCode::from(64)
                }
            }
        }
    }
}
