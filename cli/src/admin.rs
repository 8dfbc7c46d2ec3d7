//! `quorate admin …`: governance from the security team's desk. Every command that changes
//! something signs with an admin key file on this machine; the coordinator only carries the
//! signatures, and every signer verifies them against the admin keys it pinned.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use quorate_core::{
    identity::IdentitySecret,
    intent::WithdrawalIntent,
    policy::{
        approve_withdrawal, diff,
        governance::{next_version, POLICY_APPROVAL_DOMAIN, POLICY_VETO_DOMAIN},
        AdminSignature, Change, PolicyDoc, PolicyForm, SignedPolicy,
    },
};
use quorate_wire::{
    admin as pb,
    convert::policy::{sig_to_proto, signed_from_proto, signed_to_proto},
    RULE_METADATA_KEY,
};
use serde_json::json;

use crate::{client, setup::ClientFile};

/// Admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Shows the policy in force (version, hash), what is pending, and each signer's version.
    Show {
        /// Print the policy in force in its editable TOML form instead.
        #[arg(long)]
        toml: bool,
    },
    /// Proposes the next policy version from a TOML file, with your approval; shows the diff.
    Propose {
        /// The new policy, TOML form (start from `quorate admin show --toml`).
        file: PathBuf,
    },
    /// Approves a proposal (signature over its hash) after showing its diff.
    Approve {
        /// Proposal hash (64 hex digits).
        hash: String,
    },
    /// Vetoes a pending proposal (any single admin).
    Veto {
        /// Proposal hash.
        hash: String,
    },
    /// Lists pending proposals and withdrawals waiting for approvals.
    Pending,
    /// Freezes all withdrawals at once (any single admin).
    Freeze,
    /// Proposes to unfreeze (needs the admin quorum; others approve the printed hash).
    Unfreeze,
    /// Approves a withdrawal above its approval threshold (signature over the intent digest).
    ApproveWithdrawal {
        /// Withdrawal id.
        id: String,
    },
}

fn load_key(path: &Path) -> anyhow::Result<IdentitySecret> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading admin key {}", path.display()))?,
    );
    let bytes = zeroize::Zeroizing::new(
        hex::decode(text.trim()).context("admin key: expected 64 hex digits")?,
    );
    IdentitySecret::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("admin key: {e}"))
}

fn refusal(s: &tonic::Status, json_out: bool) -> u8 {
    let rule = s
        .metadata()
        .get(RULE_METADATA_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if json_out {
        println!(
            "{}",
            json!({"ok": false, "code": format!("{:?}", s.code()), "rule": rule, "reason": s.message()})
        );
    } else {
        eprintln!("refused ({:?}): {}", s.code(), s.message());
    }
    2
}

fn print_changes(changes: &[Change]) {
    if changes.is_empty() {
        println!("  (no rule changes)");
    }
    for c in changes {
        let mark = match c.effect {
            quorate_core::policy::Effect::Loosens => "+ loosens ",
            quorate_core::policy::Effect::Tightens => "- tightens",
            quorate_core::policy::Effect::Neutral => "  neutral ",
        };
        println!("  {mark}  {}", c.what);
    }
}

fn proposal_json(p: &pb::Proposal) -> serde_json::Value {
    json!({
        "ok": true,
        "hash": p.hash,
        "version": p.version,
        "state": p.state,
        "approvals": p.approvals,
        "required": p.required,
        "effective_at_ms": p.effective_at_ms,
        "changes": p.changes.iter().map(|c| json!({"effect": c.effect, "what": c.what})).collect::<Vec<_>>(),
    })
}

fn print_proposal(p: &pb::Proposal, json_out: bool) {
    if json_out {
        println!("{}", proposal_json(p));
        return;
    }
    println!(
        "proposal {} (version {}): {}, {}/{} approvals",
        p.hash, p.version, p.state, p.approvals, p.required
    );
    if p.state == "timelocked" {
        println!(
            "  applies at {} ms (each signer counts the time-lock on its own clock)",
            p.effective_at_ms
        );
    }
    for c in &p.changes {
        println!("  {:9} {}", c.effect, c.what);
    }
}

/// The policy in force, decoded and checked here (not trusted from the coordinator).
fn current(view: &pb::PolicyView) -> anyhow::Result<SignedPolicy> {
    let p = view
        .current
        .as_ref()
        .context("the coordinator has no policy installed")?;
    signed_from_proto(p).map_err(|e| anyhow::anyhow!("policy in force: {e}"))
}

/// Runs an admin command; returns the exit code.
pub async fn run(
    c: &ClientFile,
    addr: Option<&str>,
    key: Option<&Path>,
    json_out: bool,
    cmd: AdminCommand,
) -> anyhow::Result<u8> {
    let mut a = client::admin(c, addr).await?;
    let key_path = key.unwrap_or(&c.admin.signing_key);
    let view = match a.get_policy(pb::GetPolicyRequest {}).await {
        Ok(v) => v.into_inner(),
        Err(s) => return Ok(refusal(&s, json_out)),
    };
    match cmd {
        AdminCommand::Show { toml } => {
            let cur = current(&view)?;
            if toml {
                print!("{}", PolicyForm::from_doc(&cur.doc).to_toml());
                return Ok(0);
            }
            let st = view.status.clone().unwrap_or_default();
            if json_out {
                println!(
                    "{}",
                    json!({
                        "version": st.version,
                        "hash": st.hash,
                        "frozen": st.frozen,
                        "pending_version": st.pending_version,
                        "pending_hash": st.pending_hash,
                        "proposals": view.proposals.iter().map(proposal_json).collect::<Vec<_>>(),
                        "signers": view.signers.iter().map(|s| {
                            let p = s.policy.clone().unwrap_or_default();
                            json!({"name": s.name, "connected": s.connected, "version": p.version,
                                   "hash": p.hash, "frozen": p.frozen, "pending_version": p.pending_version})
                        }).collect::<Vec<_>>(),
                    })
                );
                return Ok(0);
            }
            println!("policy version {} hash {}", st.version, st.hash);
            println!("  frozen: {}", st.frozen);
            if st.pending_version > 0 {
                println!(
                    "  pending: version {} ({}) applies at {} ms",
                    st.pending_version, st.pending_hash, st.pending_effective_at_ms
                );
            }
            for s in &view.signers {
                let p = s.policy.clone().unwrap_or_default();
                println!(
                    "  {:10} {:12} version {} {}{}",
                    s.name,
                    if s.connected {
                        "connected"
                    } else {
                        "disconnected"
                    },
                    p.version,
                    p.hash.get(..12).unwrap_or(""),
                    if p.pending_version > 0 {
                        format!(" (pending {})", p.pending_version)
                    } else {
                        String::new()
                    }
                );
            }
            Ok(0)
        }
        AdminCommand::Propose { file } => {
            let key = load_key(key_path)?;
            let cur = current(&view)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let form = PolicyForm::parse(&text)?;
            let doc = form.to_doc(cur.doc.version + 1, &cur.doc.hash_hex())?;
            propose(&mut a, &key, &cur.doc, doc, json_out).await
        }
        AdminCommand::Freeze | AdminCommand::Unfreeze => {
            let key = load_key(key_path)?;
            let cur = current(&view)?;
            let mut doc = next_version(&cur.doc, cur.doc.clone());
            doc.frozen = matches!(cmd, AdminCommand::Freeze);
            if doc.frozen == cur.doc.frozen {
                bail!(
                    "the policy in force is already {}",
                    if doc.frozen { "frozen" } else { "not frozen" }
                );
            }
            propose(&mut a, &key, &cur.doc, doc, json_out).await
        }
        AdminCommand::Approve { hash } => {
            let key = load_key(key_path)?;
            let p = view
                .proposals
                .iter()
                .find(|p| p.hash == hash)
                .with_context(|| format!("no proposal has hash {hash}"))?;
            let signed = signed_from_proto(p.policy.as_ref().context("proposal without document")?)
                .map_err(|e| anyhow::anyhow!("proposal: {e}"))?;
            // Sign what we computed ourselves, never a hash we were handed.
            if signed.doc.hash_hex() != hash {
                bail!("the coordinator's document does not hash to {hash}; not approving");
            }
            if !json_out {
                println!("approving version {} ({hash}):", signed.doc.version);
                let base = history_base(&view, &signed.doc)?;
                print_changes(&diff(&base, &signed.doc));
            }
            let sig = AdminSignature::sign(&key, POLICY_APPROVAL_DOMAIN, &[&signed.doc.hash()]);
            match a
                .approve_policy(pb::ApprovePolicyRequest {
                    hash,
                    approval: Some(sig_to_proto(&sig)),
                })
                .await
            {
                Ok(p) => {
                    print_proposal(&p.into_inner(), json_out);
                    Ok(0)
                }
                Err(s) => Ok(refusal(&s, json_out)),
            }
        }
        AdminCommand::Veto { hash } => {
            let key = load_key(key_path)?;
            let h: [u8; 32] = hex::decode(&hash)
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("hash: expected 64 hex digits")?;
            let sig = AdminSignature::sign(&key, POLICY_VETO_DOMAIN, &[&h]);
            match a
                .veto_policy(pb::VetoPolicyRequest {
                    hash,
                    veto: Some(sig_to_proto(&sig)),
                })
                .await
            {
                Ok(p) => {
                    print_proposal(&p.into_inner(), json_out);
                    Ok(0)
                }
                Err(s) => Ok(refusal(&s, json_out)),
            }
        }
        AdminCommand::Pending => {
            let ws = match a
                .list_pending_withdrawals(pb::ListPendingWithdrawalsRequest {})
                .await
            {
                Ok(r) => r.into_inner().withdrawals,
                Err(s) => return Ok(refusal(&s, json_out)),
            };
            let proposals: Vec<_> = view
                .proposals
                .iter()
                .filter(|p| p.state == "collecting" || p.state == "timelocked")
                .collect();
            if json_out {
                println!(
                    "{}",
                    json!({
                        "proposals": proposals.iter().map(|p| proposal_json(p)).collect::<Vec<_>>(),
                        "withdrawals": ws.iter().map(|w| json!({
                            "id": w.id, "approvals": w.approvals, "required": w.required,
                        })).collect::<Vec<_>>(),
                    })
                );
                return Ok(0);
            }
            for p in proposals {
                print_proposal(p, false);
            }
            for w in &ws {
                let shown = WithdrawalIntent::decode(&w.intent)
                    .map(|i| {
                        format!(
                            "{} {} base units of {} to {}",
                            i.chain.as_str(),
                            i.amount,
                            i.asset,
                            i.destination
                        )
                    })
                    .unwrap_or_else(|e| format!("undecodable intent: {e}"));
                println!(
                    "withdrawal {}: {shown} — {}/{} approvals",
                    w.id, w.approvals, w.required
                );
            }
            Ok(0)
        }
        AdminCommand::ApproveWithdrawal { id } => {
            let key = load_key(key_path)?;
            let ws = match a
                .list_pending_withdrawals(pb::ListPendingWithdrawalsRequest {})
                .await
            {
                Ok(r) => r.into_inner().withdrawals,
                Err(s) => return Ok(refusal(&s, json_out)),
            };
            let w = ws
                .iter()
                .find(|w| w.id == id)
                .with_context(|| format!("withdrawal `{id}` is not waiting for approvals"))?;
            // Decode the intent and hash it here: the approval covers exactly what is shown.
            let intent = WithdrawalIntent::decode(&w.intent)
                .map_err(|e| anyhow::anyhow!("the coordinator sent an invalid intent: {e}"))?;
            if intent.id != id {
                bail!(
                    "the coordinator sent the intent of `{}` for `{id}`",
                    intent.id
                );
            }
            if !json_out {
                println!(
                    "approving withdrawal {id}: {} base units of {} on {} to {} (digest {})",
                    intent.amount,
                    intent.asset,
                    intent.chain.as_str(),
                    intent.destination,
                    intent.digest_hex()
                );
            }
            let sig = approve_withdrawal(&key, &intent.digest());
            match a
                .approve_withdrawal(pb::ApproveWithdrawalRequest {
                    id,
                    approval: Some(sig_to_proto(&sig)),
                })
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    if json_out {
                        println!(
                            "{}",
                            json!({"ok": true, "id": r.id, "status": r.status, "approvals": r.approvals, "required": r.required})
                        );
                    } else {
                        println!(
                            "withdrawal {}: {} ({}/{} approvals)",
                            r.id, r.status, r.approvals, r.required
                        );
                    }
                    Ok(0)
                }
                Err(s) => Ok(refusal(&s, json_out)),
            }
        }
    }
}

/// The version a proposal was made on, from the policy in force or history.
fn history_base(view: &pb::PolicyView, doc: &PolicyDoc) -> anyhow::Result<PolicyDoc> {
    let cur = current(view)?;
    if cur.doc.version + 1 == doc.version {
        return Ok(cur.doc);
    }
    bail!(
        "proposal version {} does not follow the version in force ({})",
        doc.version,
        cur.doc.version
    )
}

async fn propose(
    a: &mut quorate_wire::admin::admin_service_client::AdminServiceClient<
        tonic::transport::Channel,
    >,
    key: &IdentitySecret,
    base: &PolicyDoc,
    doc: PolicyDoc,
    json_out: bool,
) -> anyhow::Result<u8> {
    if !json_out {
        println!("proposing version {} ({}):", doc.version, doc.hash_hex());
        print_changes(&diff(base, &doc));
    }
    let sig = AdminSignature::sign(key, POLICY_APPROVAL_DOMAIN, &[&doc.hash()]);
    let signed = SignedPolicy {
        doc,
        signatures: vec![sig],
    };
    match a
        .propose_policy(pb::ProposePolicyRequest {
            policy: Some(signed_to_proto(&signed)),
        })
        .await
    {
        Ok(p) => {
            print_proposal(&p.into_inner(), json_out);
            Ok(0)
        }
        Err(s) => Ok(refusal(&s, json_out)),
    }
}
