//! The admin's desk: what `quorate admin` verifies itself before it shows or signs anything.
//!
//! The coordinator is trusted for liveness only, so nothing it says about policy is shown as
//! fact. The desk fetches the signed policy chain and verifies it from the genesis hash pinned
//! in `client.toml` (each link's hash recomputed from the document bytes, each version signed
//! by the admins of the one before); it asks every signer for a status receipt over a fresh
//! challenge and verifies each against the identity key the manifest pins; and it asks the
//! admin to confirm exactly what is about to be signed.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use quorate_core::policy::{PolicyDoc, SignedPolicy, StatusReceipt, VerifiedChain};
use quorate_wire::{
    admin::{self as pb, admin_service_client::AdminServiceClient},
    convert::{
        policy::{receipt_from_proto, signed_from_proto},
        policy_file,
    },
    manifest::Manifest,
};
use rand::RngCore;
use serde_json::json;
use tonic::transport::Channel;

use crate::setup::ClientFile;

/// The desk's checkpoint, beside `client.toml`.
pub const CHECKPOINT_FILE: &str = "policy-checkpoint.json";

type Admin = AdminServiceClient<Channel>;

fn pin(c: &ClientFile) -> anyhow::Result<[u8; 32]> {
    let hex_pin = c.policy_genesis.as_deref().context(
        "client.toml pins no genesis policy (policy_genesis = \"<hash of version 1>\"): the admin tool verifies every policy version from that pin and shows or signs nothing without it",
    )?;
    hex::decode(hex_pin)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("client.toml: policy_genesis must be 64 hex digits")
}

/// Reads the checkpoint if it was made under the same pin (anything else starts from genesis).
fn load_checkpoint(c: &ClientFile, pin: &[u8; 32]) -> Option<SignedPolicy> {
    let text = std::fs::read_to_string(c.dir.join(CHECKPOINT_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if v["genesis"].as_str()? != hex::encode(pin) {
        return None;
    }
    policy_file::signed_from_json(&v["policy"].to_string()).ok()
}

fn save_checkpoint(c: &ClientFile, pin: &[u8; 32], chain: &VerifiedChain) {
    let cp = chain.checkpoint();
    if cp.doc.version <= chain.start_version() {
        return;
    }
    let Ok(policy) = serde_json::from_str::<serde_json::Value>(&policy_file::signed_to_json(cp))
    else {
        return;
    };
    let text = json!({"genesis": hex::encode(pin), "policy": policy}).to_string();
    let tmp = c.dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    // A checkpoint only saves work; failing to write one is not an error.
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, c.dir.join(CHECKPOINT_FILE));
    }
}

/// Fetches the signed policy chain and verifies every link from the pinned genesis (or from
/// this desk's own checkpoint). Refuses on the first version that does not verify.
pub async fn verified_chain(a: &mut Admin, c: &ClientFile) -> anyhow::Result<VerifiedChain> {
    let pin = pin(c)?;
    if let Some(cp) = load_checkpoint(c, &pin) {
        match fetch_chain(a, &pin, Some(VerifiedChain::from_checkpoint(cp))).await {
            Ok(chain) => {
                save_checkpoint(c, &pin, &chain);
                return Ok(chain);
            }
            // The checkpoint is only a shortcut: on any disagreement, verify from genesis.
            Err(e) => eprintln!("note: the policy chain does not extend this desk's checkpoint ({e:#}); verifying from the pinned genesis"),
        }
    }
    let chain = fetch_chain(a, &pin, None).await?;
    save_checkpoint(c, &pin, &chain);
    Ok(chain)
}

async fn fetch_chain(
    a: &mut Admin,
    pin: &[u8; 32],
    mut chain: Option<VerifiedChain>,
) -> anyhow::Result<VerifiedChain> {
    loop {
        let from = chain.as_ref().map_or(1, |ch| ch.head().doc.version + 1);
        let page = a
            .get_policy_chain(pb::GetPolicyChainRequest {
                from_version: from,
                limit: 0,
            })
            .await
            .map_err(|s| anyhow::anyhow!("fetching the policy chain: {}", s.message()))?
            .into_inner();
        if page.versions.is_empty() {
            break;
        }
        for v in &page.versions {
            let signed = signed_from_proto(v)
                .map_err(|e| anyhow::anyhow!("the coordinator sent an invalid policy: {e}"))?;
            match chain.as_mut() {
                None => chain = Some(VerifiedChain::from_genesis(pin, signed)?),
                Some(ch) => ch.extend(signed)?,
            }
        }
        if chain
            .as_ref()
            .is_some_and(|ch| ch.head().doc.version >= page.head_version)
        {
            break;
        }
    }
    chain.context("the coordinator sent no policy versions")
}

/// The verified version in force, as the signers prove it: the one most valid receipts name
/// (the newer on a tie), among versions that verify from the pinned genesis. Without any valid
/// receipt, the coordinator's word, if it names a verified version, with a warning on stderr.
/// Signers that disagree are reported on stderr too.
pub fn in_force<'a>(
    chain: &'a VerifiedChain,
    proven: &[Proven],
    claimed_hash: &str,
) -> anyhow::Result<&'a PolicyDoc> {
    let mut votes: std::collections::BTreeMap<(usize, u64), &PolicyDoc> = Default::default();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for r in proven.iter().filter_map(|p| p.receipt.as_ref()) {
        if chain.by_hash_hex(&r.hash).is_some() {
            *counts.entry(r.hash.clone()).or_default() += 1;
        } else {
            eprintln!(
                "warning: a signer proves version {} ({}) in force, which is not in the chain verified here (from the pinned genesis, or from this desk's checkpoint onwards)",
                r.version, r.hash
            );
        }
    }
    for (hash, n) in &counts {
        if let Some(doc) = chain.by_hash_hex(hash) {
            votes.insert((*n, doc.version), doc);
        }
    }
    if counts.len() > 1 {
        let list: Vec<String> = votes
            .iter()
            .map(|((n, v), _)| format!("version {v} on {n}"))
            .collect();
        eprintln!(
            "warning: the signers do not agree on the version in force ({}); building on the most common",
            list.join(", ")
        );
    }
    if let Some((_, doc)) = votes.into_iter().next_back() {
        return Ok(doc);
    }
    let doc = chain.by_hash_hex(claimed_hash).with_context(|| {
        format!(
            "no signer proved which version is in force, and the coordinator names {claimed_hash}, which does not verify from the pinned genesis; not trusting it"
        )
    })?;
    eprintln!(
        "warning: no signer proved which version is in force; taking the coordinator's word (version {}, verified)",
        doc.version
    );
    Ok(doc)
}

/// Asks before signing. `--yes` answers for automation; without it, a terminal is required.
pub fn confirm(yes: bool, what: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("nothing signed: confirm on a terminal, or pass --yes after reading what is shown ({what})");
    }
    eprint!("{what}? type yes to sign: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if line.trim() != "yes" {
        bail!("nothing signed");
    }
    Ok(())
}

/// One signer's verified (or missing) receipt.
pub struct Proven {
    /// Manifest name.
    pub name: String,
    /// The receipt, if one verified against the manifest.
    pub receipt: Option<StatusReceipt>,
    /// Why there is no verified receipt.
    pub error: String,
}

fn manifest(c: &ClientFile) -> anyhow::Result<Manifest> {
    let path = c
        .manifest
        .clone()
        .unwrap_or_else(|| c.dir.join("manifest.toml"));
    Manifest::load(&path).with_context(|| {
        format!(
            "loading the manifest {} (its identity keys verify the signers' receipts)",
            path.display()
        )
    })
}

/// Asks every signer for a receipt over a fresh challenge and verifies each against the
/// manifest. Every manifest signer appears once, in manifest order, whatever the coordinator
/// returned.
pub async fn receipts(a: &mut Admin, c: &ClientFile) -> anyhow::Result<(Vec<Proven>, Manifest)> {
    let m = manifest(c)?;
    let mut challenge = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut challenge);
    let answer = a
        .get_signer_receipts(pb::GetSignerReceiptsRequest {
            challenge: challenge.clone(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("asking for signer receipts: {}", s.message()))?
        .into_inner();
    let out = m
        .signers
        .iter()
        .map(|s| {
            let mut p = Proven {
                name: s.name.clone(),
                receipt: None,
                error: "no answer relayed".into(),
            };
            let mut got = answer.signers.iter().filter(|r| r.name == s.name);
            if let (Some(r), None) = (got.next(), got.next()) {
                match &r.receipt {
                    Some(pr) => {
                        let rec = receipt_from_proto(pr);
                        match rec.verify(&s.name, &s.identity_key, &challenge) {
                            Ok(()) => {
                                p.receipt = Some(rec);
                                p.error.clear();
                            }
                            Err(e) => p.error = e.to_string(),
                        }
                    }
                    None => p.error = r.error.clone(),
                }
            }
            p
        })
        .collect();
    Ok((out, m))
}

/// JSON for one signer's receipt.
pub fn proven_json(p: &Proven) -> serde_json::Value {
    match &p.receipt {
        Some(r) => json!({
            "name": p.name, "proven": true, "connected": true,
            "version": r.version, "hash": r.hash, "frozen": r.frozen,
            "locally_frozen": r.locally_frozen, "pending_version": r.pending_version,
            "pending_hash": r.pending_hash, "clock_ms": r.clock_ms,
        }),
        None => json!({"name": p.name, "proven": false, "connected": false, "error": p.error}),
    }
}

/// One line for people.
pub fn proven_line(p: &Proven) -> String {
    match &p.receipt {
        Some(r) => format!(
            "  {:10} proven: version {} {}{}{}{}",
            p.name,
            r.version,
            r.hash.get(..12).unwrap_or(""),
            if r.frozen { ", FROZEN" } else { "" },
            if r.locally_frozen {
                ", frozen by its operator"
            } else {
                ""
            },
            if r.pending_version > 0 {
                format!(", pending version {}", r.pending_version)
            } else {
                String::new()
            }
        ),
        None => format!("  {:10} NOT PROVEN: {}", p.name, p.error),
    }
}
