//! `quorate devnet`: a whole cluster on loopback from a fresh checkout — certificates,
//! identities, manifest, a coordinator and n signers as separate processes, DKG — kept running
//! until interrupted. Everything lives in one directory, which the other commands read.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{bail, Context};
use quorate_core::{fingerprint::group_key_fingerprint, message::Scheme};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{
    client, commands,
    devnet_evm::{genesis_of, EvmDevnet},
    setup::{self, ClientFile, ClusterSpec, SOLANA_DESTINATION},
};

/// A node process of a local cluster.
pub struct Proc {
    /// Its name (coordinator, signer-1, ...).
    pub name: String,
    /// The process.
    pub child: Child,
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let path = logs.join(format!("{name}.log"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Asks a child to stop (SIGTERM) and waits for it; kills it if it does not stop in time.
pub async fn stop(p: &mut Proc) {
    if let Some(pid) = p.child.id() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(10), p.child.wait())
        .await
        .is_err()
    {
        let _ = p.child.kill().await;
    }
}

/// Runs the devnet until Ctrl-C / SIGTERM.
pub async fn run(
    dir: &Path,
    signers: u16,
    threshold: u16,
    evm_rpc: Option<&str>,
) -> anyhow::Result<u8> {
    let exists = dir.join("manifest.toml").exists();
    let evm = match evm_rpc {
        Some(url) => {
            let genesis = exists.then(|| genesis_of(dir)).transpose()?;
            Some(EvmDevnet::prepare(url, genesis.as_ref()).await?)
        }
        None => None,
    };
    if !exists {
        setup::create(
            dir,
            &ClusterSpec {
                signers,
                threshold,
                coordinator_addr: "127.0.0.1:0".into(),
                policy: evm.as_ref().map(EvmDevnet::genesis_policy).transpose()?,
            },
        )?;
        println!("created a development cluster in {}", dir.display());
    }
    let dir = std::fs::canonicalize(dir)?;
    let exe = std::env::current_exe().context("locating the quorate binary")?;
    let mut procs: Vec<Proc> = Vec::new();
    let result = start_and_wait(&dir, &exe, &mut procs, evm.as_ref()).await;
    for p in procs.iter_mut().rev() {
        stop(p).await;
    }
    match result {
        Ok(()) => {
            println!("devnet stopped");
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

async fn start_and_wait(
    dir: &Path,
    exe: &Path,
    procs: &mut Vec<Proc>,
    evm: Option<&EvmDevnet>,
) -> anyhow::Result<()> {
    let addr = launch(dir, exe, procs).await?;
    let manifest = quorate_wire::manifest::Manifest::load(&dir.join("manifest.toml"))?;
    let client = ClientFile::load(dir)?;
    let status = client::wait_for_signers(&client, None, Duration::from_secs(60)).await?;
    let group_key = if status.group_public_key.is_empty() {
        println!(
            "all {} signers connected; running DKG",
            status.signers.len()
        );
        commands::dkg(&client, None, true, Scheme::Secp256k1).await?
    } else {
        status.group_public_key.clone()
    };
    // The Solana wallet: the Ed25519 group's key.
    let solana_key = match status.group_keys.iter().find(|k| k.scheme == "ed25519") {
        Some(k) => k.public_key.clone(),
        None => {
            println!("running DKG for the ed25519 group (the Solana wallet)");
            commands::dkg(&client, None, true, Scheme::Ed25519).await?
        }
    };
    let mut chain_lines = Vec::new();
    if let Some(evm) = evm {
        evm.deploy_vault(&group_key).await?;
        chain_lines = evm.describe().await?;
    }
    chain_lines.push(format!(
        "  solana       wallet {} (the ed25519 group key)",
        bs58::encode(&solana_key).into_string()
    ));
    print_ready(dir, &addr, &manifest, &group_key, &chain_lines);
    wait_until_stopped(dir, procs).await
}

/// Starts the coordinator of the cluster in `dir` and then its signers, as separate processes
/// of `exe` (each logging to `dir/logs/<name>.log`), and waits until every signer is
/// connected. Returns the coordinator's address.
pub async fn launch(dir: &Path, exe: &Path, procs: &mut Vec<Proc>) -> anyhow::Result<String> {
    launch_with(dir, exe, procs, None).await
}

/// [`launch`], with each signer's link through a relay adding `link_rtt` of round trip
/// (`quorate bench --link-rtt`).
pub async fn launch_with(
    dir: &Path,
    exe: &Path,
    procs: &mut Vec<Proc>,
    link_rtt: Option<Duration>,
) -> anyhow::Result<String> {
    let mut coordinator = Command::new(exe)
        .arg("coordinator")
        .arg("run")
        .arg("--config")
        .arg(dir.join("coordinator/coordinator.toml"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(dir, "coordinator")?)
        .kill_on_drop(true)
        .spawn()
        .context("starting the coordinator")?;
    let stdout = coordinator.stdout.take().context("coordinator stdout")?;
    procs.push(Proc {
        name: "coordinator".into(),
        child: coordinator,
    });
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(a) = line.strip_prefix("metrics on ") {
                ClientFile::set_metrics(dir, a.trim())?;
            }
            if let Some(a) = line.strip_prefix("listening on ") {
                return Ok::<_, anyhow::Error>(a.trim().to_string());
            }
        }
        bail!(
            "the coordinator exited; see {}",
            dir.join("logs/coordinator.log").display()
        )
    })
    .await
    .context("the coordinator did not start in 60 s")??;
    ClientFile::set_coordinator(dir, &addr)?;
    let manifest = quorate_wire::manifest::Manifest::load(&dir.join("manifest.toml"))?;
    for s in &manifest.signers {
        procs.push(spawn_signer(dir, exe, &s.name, &addr, link_rtt).await?);
    }
    let client = ClientFile::load(dir)?;
    client::wait_for_signers(&client, None, Duration::from_secs(60)).await?;
    Ok(addr)
}

/// Starts signer `name` of the cluster in `dir`, dialling the coordinator at `addr` (through a
/// relay adding `link_rtt` of round trip, if set). Its log goes to `logs/<name>.log`.
pub async fn spawn_signer(
    dir: &Path,
    exe: &Path,
    name: &str,
    addr: &str,
    link_rtt: Option<Duration>,
) -> anyhow::Result<Proc> {
    let dial = match link_rtt {
        Some(rtt) => crate::delay::relay(addr.to_string(), rtt).await?,
        None => addr.to_string(),
    };
    let child = Command::new(exe)
        .arg("signer")
        .arg("run")
        .arg("--config")
        .arg(dir.join(name).join("signer.toml"))
        .arg("--coordinator")
        .arg(&dial)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(dir, name)?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Proc {
        name: name.to_string(),
        child,
    })
}

fn print_ready(
    dir: &Path,
    addr: &str,
    manifest: &quorate_wire::manifest::Manifest,
    group_key: &[u8],
    chain_lines: &[String],
) {
    let here = std::env::current_dir().ok();
    let dir_flag = match here.as_deref().and_then(|h| dir.strip_prefix(h).ok()) {
        Some(rel) if rel == Path::new(".quorate-devnet") => String::new(),
        Some(rel) => format!(" --dir {}", rel.display()),
        None => format!(" --dir {}", dir.display()),
    };
    println!();
    println!(
        "Quorate devnet: 1 coordinator, {} signers, threshold {}",
        manifest.signers.len(),
        manifest.threshold
    );
    println!(
        "  coordinator  {addr} (mutual TLS 1.3; credentials in {})",
        dir.display()
    );
    println!("  group key    {}", hex::encode(group_key));
    println!("  fingerprint  {}", group_key_fingerprint(group_key));
    println!("  logs         {}", dir.join("logs").display());
    println!(
        "  policy       {} (admins' keys in {})",
        dir.join("policy/genesis.toml").display(),
        dir.join("admin").display()
    );
    for l in chain_lines.iter().filter(|l| !l.starts_with("send:")) {
        println!("{l}");
    }
    println!();
    // Suggest the same build profile, so the second terminal does not compile a second one.
    let run = if cfg!(debug_assertions) {
        "cargo run -q --bin quorate --"
    } else {
        "cargo run -q --release --bin quorate --"
    };
    println!("Try, in another terminal:");
    println!("  {run} status{dir_flag}");
    println!("  {run} submit{dir_flag} --chain ethereum --asset ETH --to 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed --amount 1000000000000000000 --json");
    println!("  {run} submit{dir_flag} --chain ethereum --asset ETH --to 0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359 --amount 1000000000000000000 --json   # refused: not whitelisted");
    println!("  {run} submit{dir_flag} --chain solana --asset SOL --to {SOLANA_DESTINATION} --amount 1000000 --json");
    println!("  {run} submit{dir_flag} --chain solana --asset USDC --to {SOLANA_DESTINATION} --amount 2500000 --create-token-account --json");
    println!("  {run} admin{dir_flag} show");
    println!(
        "  {run} verify --group-key <group_public_key> --message <message> --signature <signature>"
    );
    println!("  {run} probe{dir_flag} --count 200");
    if let Some(send) = chain_lines.iter().find_map(|l| l.strip_prefix("send:")) {
        println!(
            "  # pay a signed withdrawal out: its evm_call, sent from any account of the node"
        );
        println!("  {send}");
    }
    println!();
    println!("devnet ready; Ctrl-C stops it");
}

async fn wait_until_stopped(dir: &Path, procs: &mut [Proc]) -> anyhow::Result<()> {
    let mut exits = futures::stream::FuturesUnordered::new();
    for (i, p) in procs.iter_mut().enumerate() {
        let name = p.name.clone();
        let child = &mut p.child;
        exits.push(async move { (i, name, child.wait().await) });
    }
    use futures::StreamExt;
    tokio::select! {
        _ = quorate_wire::logging::interrupt_signal() => {
            println!("stopping devnet");
            drop(exits);
            Ok(())
        }
        Some((_, name, status)) = exits.next() => {
            bail!("{name} exited unexpectedly ({status:?}); see {}", dir.join("logs").display())
        }
    }
}
