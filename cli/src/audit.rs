//! `quorate audit`: export nodes' audit logs through the coordinator and verify them offline.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use quorate_core::{
    audit::{self, VerifiedLog},
    identity::IdentityPublic,
};
use quorate_wire::{audit as pb, convert::audit as conv, manifest::Manifest};
use serde_json::json;

use crate::{client, setup::ClientFile};

/// Audit log commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Writes a node's audit log as JSON lines: its records, then its head (signed by the
    /// signer). Fetched through the coordinator; with `--all`, every node into a directory,
    /// the coordinator first so that the signers' logs cover what it released.
    Export {
        /// `coordinator` or a signer's name.
        #[arg(long, default_value = "coordinator")]
        node: String,
        /// Output file (default: standard output).
        #[arg(long, conflicts_with = "all")]
        out: Option<PathBuf>,
        /// Export every node into this directory as `<node>.jsonl`.
        #[arg(long)]
        all: Option<PathBuf>,
    },
    /// Verifies exported logs offline: each chain and head, each signer's head signature
    /// (against the identity key pinned in the manifest), and, given the coordinator's log
    /// and the signers', both directions: every group signature the coordinator released is
    /// matched by share releases on t signers, and every share a signer released is for a
    /// withdrawal the coordinator's log shows it received and, once t signers released,
    /// signed, failed or blamed. Exit 1 naming the first bad record.
    Verify {
        /// Exported logs (`quorate audit export`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Manifest pinning the signers' identity keys (default: the cluster directory's).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Clock difference allowed between the coordinator's host and the signers': share
        /// releases this close to the end of the coordinator's log were still in flight when
        /// it was exported and are not judged.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        clock_skew: std::time::Duration,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an audit command.
pub async fn run(dir: &Path, addr: Option<&str>, cmd: AuditCommand) -> anyhow::Result<u8> {
    match cmd {
        AuditCommand::Export { node, out, all } => {
            let c = ClientFile::load(dir)?;
            let manifest = dir_manifest(dir)?;
            let manifest = manifest.as_ref();
            match all {
                Some(to) => {
                    std::fs::create_dir_all(&to)
                        .with_context(|| format!("creating {}", to.display()))?;
                    // Every node of the pinned manifest: the coordinator does not get to say
                    // which signers there are.
                    let m = manifest.context(
                        "export --all needs the cluster's manifest.toml in --dir to know the signers and pin their keys",
                    )?;
                    let mut nodes = vec!["coordinator".to_string()];
                    nodes.extend(m.signers.iter().map(|s| s.name.clone()));
                    for n in nodes {
                        let text = export(&c, addr, &n, manifest).await?;
                        anyhow::ensure!(
                            !n.is_empty()
                                && n.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                            "node name `{n}` is not usable as a file name"
                        );
                        let path = to.join(format!("{n}.jsonl"));
                        std::fs::write(&path, text)
                            .with_context(|| format!("writing {}", path.display()))?;
                        println!("wrote {}", path.display());
                    }
                }
                None => {
                    let text = export(&c, addr, &node, manifest).await?;
                    match out {
                        Some(p) => std::fs::write(&p, text)
                            .with_context(|| format!("writing {}", p.display()))?,
                        None => print!("{text}"),
                    }
                }
            }
            Ok(0)
        }
        AuditCommand::Verify {
            files,
            manifest,
            clock_skew,
            json,
        } => {
            let manifest = match manifest {
                Some(p) => Some(Manifest::load(&p)?),
                None => dir_manifest(dir)?,
            };
            let skew_ms = u64::try_from(clock_skew.as_millis()).unwrap_or(u64::MAX);
            verify(&files, manifest.as_ref(), skew_ms, json)
        }
    }
}

/// Fetches a node's whole log, page by page, ending at the head of the last page, and checks
/// that head before writing anything: it must answer this export's fresh nonce (a head signed
/// for an earlier export would pass off a shorter log) and, for a signer, be signed by the
/// identity key its manifest pins.
async fn export(
    c: &ClientFile,
    addr: Option<&str>,
    node: &str,
    manifest: Option<&Manifest>,
) -> anyhow::Result<String> {
    let mut admin = client::admin(c, addr).await?;
    let nonce: [u8; 16] = rand::random();
    let mut text = String::new();
    let mut from = 1u64;
    loop {
        let page = admin
            .export_audit(pb::AuditExportRequest {
                node: node.to_string(),
                from_seq: from,
                limit: 0,
                nonce: nonce.to_vec(),
            })
            .await
            .with_context(|| format!("exporting the audit log of {node}"))?
            .into_inner();
        let head = page
            .head
            .as_ref()
            .context("the export answer has no head")
            .and_then(|h| conv::head_from_proto(h).map_err(anyhow::Error::msg))?;
        for r in &page.records {
            let r = conv::record_from_proto(r).map_err(anyhow::Error::msg)?;
            text.push_str(&r.to_json());
            text.push('\n');
            from = r
                .seq
                .checked_add(1)
                .context("a record numbered u64::MAX: not a log")?;
        }
        if from > head.seq || page.records.is_empty() {
            head.check_fresh(&nonce).map_err(anyhow::Error::msg)?;
            // The head must be the node's that was asked for, in its role; a signer's must be
            // checked against a pinned key.
            let want_role = if node == "coordinator" {
                "coordinator"
            } else {
                "signer"
            };
            anyhow::ensure!(
                head.node == node && head.role == want_role,
                "asked for the log of {node}, got a head of `{}` as `{}`",
                head.node,
                head.role
            );
            text.push_str(&head.to_json());
            text.push('\n');
            let pinned = manifest
                .and_then(|m| m.signer_by_name(node))
                .map(|s| s.identity_key);
            anyhow::ensure!(
                node == "coordinator" || pinned.is_some(),
                "no manifest pins the identity key of {node}: run from the cluster directory (--dir) that holds manifest.toml"
            );
            audit::verify_export(&text, pinned.as_ref()).map_err(|e| {
                anyhow::anyhow!("the log of {node} as exported does not verify: {e}")
            })?;
            return Ok(text);
        }
    }
}

fn verify(
    files: &[PathBuf],
    manifest: Option<&Manifest>,
    skew_ms: u64,
    as_json: bool,
) -> anyhow::Result<u8> {
    let mut logs: Vec<(PathBuf, VerifiedLog)> = Vec::new();
    let mut report = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        // The key pinned for the signer the head names: the head's own claim is checked
        // against it, so a log re-signed by any other key fails.
        // A log that names a manifest signer must carry that signer's signed head, whatever
        // role it claims; only `coordinator` may be unsigned.
        let mut pinned = false;
        let pin = |h: &audit::Head| -> Result<Option<IdentityPublic>, String> {
            let Some(m) = manifest else { return Ok(None) };
            match m.signer_by_name(&h.node) {
                Some(s) => {
                    pinned = true;
                    Ok(Some(s.identity_key))
                }
                None if h.node == "coordinator" && h.role == "coordinator" => Ok(None),
                None => Err(format!(
                    "the head names `{}`, which is not a signer of the manifest",
                    h.node
                )),
            }
        };
        match audit::verify_export_pinned(&text, pin) {
            Ok(log) => {
                report.push(json!({
                    "file": f.display().to_string(),
                    "node": log.head.node,
                    "records": log.records.len(),
                    "head": log.head.hash,
                    "signed_by": log.key.map(|k| k.to_string()),
                    "nonce": log.head.nonce,
                    "key_pinned": pinned,
                }));
                logs.push((f.clone(), log));
            }
            Err(e) => return fail(as_json, f, &e.to_string()),
        }
    }
    let coordinators: Vec<_> = logs
        .iter()
        .filter(|(_, l)| l.head.role == "coordinator")
        .collect();
    if coordinators.len() > 1 {
        return fail(
            as_json,
            &coordinators[1].0,
            "a second coordinator log: give one coordinator log and the signers' logs",
        );
    }
    let coordinator = coordinators.first().copied();
    let signers: Vec<VerifiedLog> = logs
        .iter()
        .filter(|(_, l)| l.head.role == "signer")
        .map(|(_, l)| l.clone())
        .collect();
    let cross = match coordinator {
        Some((f, c)) if !signers.is_empty() => {
            match audit::cross_check(c, &signers, manifest.map(|m| m.threshold), skew_ms) {
                Ok(x) => Some(x),
                Err(e) => return fail(as_json, f, &e.to_string()),
            }
        }
        _ => None,
    };
    if as_json {
        println!(
            "{}",
            json!({
                "ok": true,
                "logs": report,
                "signatures_matched": cross.as_ref().map(|x| x.signed),
                "share_releases_matched": cross.as_ref().map(|x| x.releases),
                "share_releases_not_judged": cross.as_ref().map(|x| x.unjudged),
                "failed_after_release": cross.as_ref().map(|x| x.failed_after_release.clone()),
                "threshold": cross.as_ref().map(|x| x.threshold),
            })
        );
    } else {
        for (f, l) in &logs {
            let by = match (&l.key, manifest.is_some()) {
                (Some(k), true) => format!(", head signed by {k} (pinned in the manifest)"),
                (Some(k), false) => format!(", head signed by {k} (no manifest to pin it)"),
                (None, _) => String::new(),
            };
            println!(
                "ok  {}: {} records of {}{by}",
                f.display(),
                l.records.len(),
                l.head.node
            );
        }
        match cross {
            Some(x) => {
                println!(
                    "ok  every one of the {} group signatures the coordinator released is matched by share releases on at least {} signers",
                    x.signed, x.threshold
                );
                println!(
                    "ok  every one of the {} share releases in the signers' logs is for a withdrawal the coordinator's log shows, and none made a signature it does not account for",
                    x.releases
                );
                if x.unjudged > 0 {
                    println!(
                        "--  {} share releases are newer than the coordinator's log (less the clock skew) and were not judged: export the coordinator's log again to cover them",
                        x.unjudged
                    );
                }
                for w in &x.failed_after_release {
                    println!(
                        "WARNING  withdrawal `{w}`: t signers released shares, and the coordinator's log says it failed without naming a culprit (a coordinator crash, or a signature kept back): check the chain for it"
                    );
                }
            }
            None => println!(
                "(give the coordinator's log and the signers' logs together to cross-check released signatures)"
            ),
        }
    }
    Ok(0)
}

/// The cluster directory's manifest, if it has one.
fn dir_manifest(dir: &Path) -> anyhow::Result<Option<Manifest>> {
    let p = dir.join("manifest.toml");
    Ok(p.exists().then(|| Manifest::load(&p)).transpose()?)
}

fn fail(as_json: bool, f: &Path, what: &str) -> anyhow::Result<u8> {
    if as_json {
        println!(
            "{}",
            json!({"ok": false, "file": f.display().to_string(), "error": what})
        );
    } else {
        println!("FAILED  {}: {what}", f.display());
    }
    Ok(1)
}
