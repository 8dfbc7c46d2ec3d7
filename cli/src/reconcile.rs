//! `quorate reconcile`: every payout event of the vault must be a withdrawal that t signers'
//! verified audit logs show they co-signed. Exit 0 when all match, 2 on any alarm (each
//! printed), 1 when it cannot check.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use quorate_core::{
    address::Chain,
    audit::{self, VerifiedLog},
    chains::{
        evm::{
            self, address_bytes, address_text, admin_topics, decode_admin_event, decode_withdrawn,
            Address20, VaultDomain,
        },
        reconcile::{cosigned, cosigned_admin, reconcile, reconcile_admin, AdminLog, Payout},
    },
};
use quorate_wire::manifest::Manifest;
use serde_json::json;

use crate::{evm::withdrawn_topic, evm_rpc::Rpc};

/// Blocks asked for in one `eth_getLogs`.
const PAGE_BLOCKS: u64 = 5_000;

/// Arguments of `quorate reconcile`.
#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// Chain: ethereum, polygon or tron (a Tron node's Ethereum-compatible JSON-RPC).
    #[arg(long)]
    pub chain: String,
    /// JSON-RPC URL of a node of that chain (http://).
    #[arg(long)]
    pub rpc: String,
    /// Directory of exported audit logs (`quorate audit export --all DIR`); the signers'
    /// logs are the evidence, each verified against the manifest's pinned identity keys.
    #[arg(long)]
    pub audit: PathBuf,
    /// A vault to read besides those the logs name (one no withdrawal was signed for yet).
    #[arg(long)]
    pub vault: Vec<String>,
    /// First block to read.
    #[arg(long, default_value_t = 0)]
    pub from_block: u64,
    /// Manifest pinning the signers (default: the cluster directory's).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn signer_logs(dir: &Path, manifest: &Manifest) -> anyhow::Result<Vec<VerifiedLog>> {
    let mut logs = Vec::new();
    let mut names = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect::<Vec<_>>();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let log = audit::verify_export_pinned(&text, |h| match manifest.signer_by_name(&h.node) {
            Some(s) => Ok(Some(s.identity_key)),
            None if h.role == "coordinator" => Ok(None),
            None => Err(format!("`{}` is not a signer of the manifest", h.node)),
        })
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if log.head.role == "signer" {
            logs.push(log);
        }
    }
    if logs.len() < usize::from(manifest.threshold) {
        bail!(
            "{} holds {} signer logs; t = {} are needed to show any withdrawal co-signed",
            dir.display(),
            logs.len(),
            manifest.threshold
        );
    }
    Ok(logs)
}

/// Runs `quorate reconcile`; returns the exit code.
pub async fn run(dir: &Path, a: ReconcileArgs) -> anyhow::Result<u8> {
    let chain: Chain = a
        .chain
        .parse()
        .map_err(|e| anyhow::anyhow!("--chain: {e}"))?;
    if !evm::is_evm(chain) {
        bail!(
            "--chain {}: only ethereum, polygon and tron pay out through the vault",
            a.chain
        );
    }
    let manifest_path = a
        .manifest
        .clone()
        .unwrap_or_else(|| dir.join("manifest.toml"));
    let manifest = Manifest::load(&manifest_path)
        .with_context(|| format!("loading the manifest {}", manifest_path.display()))?;
    let logs = signer_logs(&a.audit, &manifest)?;
    let signed = cosigned(&logs, chain, manifest.threshold);
    let admin_messages = cosigned_admin(&logs, chain, manifest.threshold);
    let rpc = Rpc::new(&a.rpc)?;
    let chain_id = rpc.chain_id().await?;
    let mut vaults: Vec<Address20> = signed
        .values()
        .flatten()
        .filter(|r| r.chain_id == chain_id)
        .map(|r| r.vault)
        .collect();
    for v in &a.vault {
        vaults.push(address_bytes(chain, v).map_err(|e| anyhow::anyhow!("--vault {v}: {e}"))?);
    }
    vaults.sort();
    vaults.dedup();
    if vaults.is_empty() {
        bail!("no vault on chain id {chain_id} is named by the logs; name one with --vault");
    }
    let head = rpc.block_number().await?;
    let topic = withdrawn_topic();
    let mut alarms = 0usize;
    let mut report = Vec::new();
    for vault in &vaults {
        let mut payouts = Vec::new();
        let mut admin = Vec::new();
        let mut topics = vec![topic];
        topics.extend(admin_topics());
        let mut from = a.from_block;
        while from <= head {
            let to = head.min(from.saturating_add(PAGE_BLOCKS - 1));
            for l in rpc
                .logs(&crate::evm_rpc::hex0x(vault), &topics, from, to)
                .await?
            {
                if let Some(event) = decode_withdrawn(&l.topics, &l.data) {
                    payouts.push(Payout {
                        event,
                        tx: l.tx,
                        block: l.block,
                    });
                } else if let Some(event) = decode_admin_event(&l.topics, &l.data) {
                    admin.push(AdminLog {
                        event,
                        tx: l.tx,
                        block: l.block,
                    });
                } else if l.topics.first() == Some(&topic) {
                    payouts.push(Payout {
                        event: Err("a log with the event's topic but not its layout".into()),
                        tx: l.tx,
                        block: l.block,
                    });
                }
            }
            from = to + 1;
        }
        let r = reconcile(&signed, chain_id, vault, payouts);
        let domain = VaultDomain {
            chain_id,
            vault: *vault,
        };
        let admin_alarms = reconcile_admin(&admin_messages, &domain, admin);
        alarms += r.alarms.len() + admin_alarms.len();
        let vault_text = address_text(chain, vault);
        let alarm_json: Vec<_> = r
            .alarms
            .iter()
            .map(|x| {
                let ev = x.payout.event.as_ref().ok();
                json!({
                    "tx": x.payout.tx,
                    "block": x.payout.block,
                    "id": ev.map(|e| format!("0x{}", hex::encode(e.id))),
                    "token": ev.map(|e| address_text(chain, &e.token)),
                    "to": ev.map(|e| address_text(chain, &e.to)),
                    "amount": ev.map(|e| e.amount.to_string()),
                    "why": x.why,
                })
            })
            .collect();
        let admin_json: Vec<_> = admin_alarms
            .iter()
            .map(|x| {
                json!({
                    "tx": x.log.tx,
                    "block": x.log.block,
                    "event": x.log.event.as_ref().map(|e| format!("{e:?}")).unwrap_or_default(),
                    "why": x.why,
                })
            })
            .collect();
        if !a.json {
            println!(
                "vault {vault_text} on {} (chain id {chain_id}), blocks {}..={head}: {} payouts matched to co-signed withdrawals, {} alarms, {} co-signed not paid",
                chain.as_str(),
                a.from_block,
                r.matched.len(),
                r.alarms.len(),
                r.unpaid.len()
            );
            for x in alarm_json.iter().chain(&admin_json) {
                println!("ALARM  {x}");
            }
        }
        report.push(json!({
            "vault": vault_text,
            "matched": r.matched.len(),
            "alarms": alarm_json,
            "admin_alarms": admin_json,
            "unpaid": r.unpaid,
        }));
    }
    if a.json {
        println!(
            "{}",
            json!({"ok": alarms == 0, "chain": chain.as_str(), "chain_id": chain_id, "to_block": head, "vaults": report})
        );
    }
    Ok(if alarms == 0 { 0 } else { 2 })
}
