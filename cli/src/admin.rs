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
        eval::format_units,
        governance::{next_version, POLICY_APPROVAL_DOMAIN, POLICY_VETO_DOMAIN},
        AdminSignature, Change, PolicyDoc, PolicyForm, SignedPolicy, VerifiedChain,
    },
};
use quorate_wire::{
    admin as pb,
    convert::policy::{sig_to_proto, signed_from_proto, signed_to_proto},
    RULE_METADATA_KEY,
};
use serde_json::json;

use crate::{client, desk, setup::ClientFile};

/// Admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Shows the verified policy in force and what each signer proves it enforces (signed
    /// receipts over a fresh challenge).
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
    /// Approves a proposal (signature over its hash) after showing its diff against the
    /// verified version it builds on.
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
    /// Freezes all withdrawals at once (any single admin), then waits until enough signers
    /// prove with signed receipts that no quorum of unfrozen signers remains.
    Freeze {
        /// How long to wait for receipts.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
    /// Proposes to unfreeze (needs the admin quorum; others approve the printed hash).
    Unfreeze,
    /// Has the group sign the vault administration message (key rotation, on-chain cap) that
    /// the verified policy in force lists for the chain at the vault's admin nonce, checks the
    /// answer against that policy, and prints the vault call, which any funded account sends.
    VaultSign {
        /// Chain: ethereum, polygon or tron.
        #[arg(long)]
        chain: String,
        /// The vault's admin nonce (its `adminNonce()`).
        #[arg(long)]
        nonce: u64,
    },
    /// Voids a Solana durable nonce (docs/solana.md): has the Ed25519 group sign a transaction
    /// that only advances the nonce account, so that nothing signed with this nonce can
    /// execute, checks it against the verified policy and the cluster's key, and prints it for
    /// `sendTransaction`. Any single admin, as for a freeze.
    SolanaVoid {
        /// The nonce account (base58), one of the policy's pool.
        #[arg(long)]
        nonce_account: String,
        /// Its current nonce (base58), the one the transactions to void were signed with.
        #[arg(long)]
        nonce_value: String,
    },
    /// Approves a withdrawal above its approval threshold (signature over the intent digest),
    /// after verifying the backend's signature and showing the decoded withdrawal.
    ApproveWithdrawal {
        /// Withdrawal id.
        id: String,
    },
}

/// Exit code when a freeze is not proven on enough signers.
pub const EXIT_NOT_PROVEN: u8 = 3;

fn load_key(path: &Path) -> anyhow::Result<IdentitySecret> {
    crate::ceremony::read_admin_key(path)
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

type Admin =
    quorate_wire::admin::admin_service_client::AdminServiceClient<tonic::transport::Channel>;

/// What the desk knows before it shows or signs anything: the verified chain, the verified
/// version in force (as the signers' receipts prove it), the receipts, and the coordinator's
/// view (its proposals).
struct Verified {
    chain: VerifiedChain,
    in_force: PolicyDoc,
    proven: Vec<desk::Proven>,
    view: pb::PolicyView,
}

async fn verified_in_force(
    a: &mut Admin,
    c: &ClientFile,
    proposal_hash: &str,
) -> anyhow::Result<Verified> {
    let view = a
        .get_policy(pb::GetPolicyRequest {
            proposal_hash: proposal_hash.to_string(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("reading the policy: {}", s.message()))?
        .into_inner();
    verify_view(a, c, view).await
}

/// [`verified_in_force`] for a view already fetched.
async fn verify_view(
    a: &mut Admin,
    c: &ClientFile,
    view: pb::PolicyView,
) -> anyhow::Result<Verified> {
    let chain = desk::verified_chain(a, c).await?;
    let (proven, _) = desk::receipts(a, c).await?;
    let claimed = view
        .current
        .as_ref()
        .and_then(|p| signed_from_proto(p).ok())
        .map(|p| p.doc.hash_hex())
        .context("the coordinator has no policy installed")?;
    let in_force = desk::in_force(&chain, &proven, &claimed)?.clone();
    Ok(Verified {
        chain,
        in_force,
        proven,
        view,
    })
}

/// Runs an admin command; returns the exit code.
pub async fn run(
    c: &ClientFile,
    addr: Option<&str>,
    key: Option<&Path>,
    json_out: bool,
    yes: bool,
    cmd: AdminCommand,
) -> anyhow::Result<u8> {
    let mut a = client::admin(c, addr).await?;
    let key_path = match key {
        Some(k) => k,
        None => &c.admin()?.signing_key,
    };
    match cmd {
        AdminCommand::Show { toml } => {
            let Verified {
                chain,
                in_force: cur,
                proven,
                view,
            } = verified_in_force(&mut a, c, "").await?;
            if toml {
                print!("{}", PolicyForm::from_doc(&cur).to_toml());
                return Ok(0);
            }
            let head = &chain.head().doc;
            if json_out {
                println!(
                    "{}",
                    json!({
                        "verified": true,
                        "version": cur.version,
                        "hash": cur.hash_hex(),
                        "frozen": cur.frozen,
                        "head_version": head.version,
                        "head_hash": head.hash_hex(),
                        "proposals": view.proposals.iter().map(proposal_json).collect::<Vec<_>>(),
                        "signers": proven.iter().map(desk::proven_json).collect::<Vec<_>>(),
                    })
                );
                return Ok(0);
            }
            println!(
                "policy version {} hash {} (verified from the pinned genesis)",
                cur.version,
                cur.hash_hex()
            );
            println!("  frozen: {}", cur.frozen);
            if head.version > cur.version {
                println!(
                    "  newest signed version: {} ({}), waiting out its time-lock",
                    head.version,
                    head.hash_hex()
                );
            }
            println!("signers (signed receipts over a fresh challenge):");
            for p in &proven {
                println!("{}", desk::proven_line(p));
            }
            Ok(0)
        }
        AdminCommand::Propose { file } => {
            let key = load_key(key_path)?;
            let cur = verified_in_force(&mut a, c, "").await?.in_force;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let form = PolicyForm::parse(&text)?;
            let doc = form.to_doc(cur.version + 1, &cur.hash_hex())?;
            propose(&mut a, &key, &cur, doc, json_out, yes).await
        }
        AdminCommand::Freeze { wait } => {
            let key = load_key(key_path)?;
            let cur = verified_in_force(&mut a, c, "").await?.in_force;
            if !cur.frozen {
                let mut doc = next_version(&cur, cur.clone());
                doc.frozen = true;
                // A freeze only tightens: it is signed at once, no confirmation.
                let code = propose(&mut a, &key, &cur, doc, json_out, true).await?;
                if code != 0 {
                    return Ok(code);
                }
            } else if !json_out {
                println!("the policy in force is already frozen; checking the signers");
            }
            wait_frozen(&mut a, c, wait, json_out).await
        }
        AdminCommand::VaultSign { chain, nonce } => {
            let chain: quorate_core::address::Chain =
                chain.parse().map_err(|e| anyhow::anyhow!("--chain: {e}"))?;
            let cur = verified_in_force(&mut a, c, "").await?.in_force;
            // What the admins approved, from the verified chain, not from the coordinator.
            let expected = quorate_core::message::vault_admin(&cur, chain, nonce)
                .map_err(|r| anyhow::anyhow!("the verified policy in force: {}", r.reason))?;
            let r = a
                .sign_vault_action(pb::SignVaultActionRequest {
                    chain: chain.as_str().to_string(),
                    nonce,
                })
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                .into_inner();
            let call = expected
                .call(&r.signature)
                .map_err(|x| anyhow::anyhow!("{}", x.reason))?;
            if r.message != expected.message() || r.to != call.to || r.data != call.data {
                bail!("the coordinator's answer is not the vault action the verified policy lists; nothing to send");
            }
            // A signature that does not verify would only revert on chain; say so here.
            let status = a
                .get_cluster_status(pb::GetClusterStatusRequest {})
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                .into_inner();
            let valid = frost_secp256k1::VerifyingKey::deserialize(&status.group_public_key)
                .ok()
                .zip(frost_secp256k1::Signature::deserialize(&r.signature).ok())
                .is_some_and(|(k, sig)| k.verify(&r.message, &sig).is_ok());
            if !valid {
                bail!("the group signature does not verify under the cluster's group key; nothing to send");
            }
            if json_out {
                println!(
                    "{}",
                    json!({
                        "ok": true,
                        "action": r.description,
                        "message": hex::encode(&r.message),
                        "signature": hex::encode(&r.signature),
                        "signers": r.signers,
                        "evm_call": {"to": call.to, "data": format!("0x{}", hex::encode(&call.data))},
                    })
                );
            } else {
                println!(
                    "{} on {} at admin nonce {nonce}, signed by {:?}",
                    r.description,
                    chain.as_str(),
                    r.signers
                );
                println!("  send to   {} (any funded account pays the gas)", call.to);
                println!("  calldata  0x{}", hex::encode(&call.data));
            }
            Ok(0)
        }
        AdminCommand::Unfreeze => {
            let key = load_key(key_path)?;
            let cur = verified_in_force(&mut a, c, "").await?.in_force;
            if !cur.frozen {
                bail!("the policy in force is not frozen");
            }
            let mut doc = next_version(&cur, cur.clone());
            doc.frozen = false;
            propose(&mut a, &key, &cur, doc, json_out, yes).await
        }
        AdminCommand::Approve { hash } => {
            let key = load_key(key_path)?;
            let Verified { chain, view, .. } = verified_in_force(&mut a, c, &hash).await?;
            let p = view
                .proposals
                .iter()
                .find(|p| p.hash == hash)
                .with_context(|| format!("no proposal has hash {hash}"))?;
            let signed = signed_from_proto(p.policy.as_ref().context("proposal without document")?)
                .map_err(|e| anyhow::anyhow!("proposal: {e}"))?;
            // Sign what we computed ourselves, never a hash we were handed.
            if signed.doc.hash_hex() != hash {
                bail!("the coordinator's document does not hash to {hash}; nothing signed");
            }
            // The diff is against the verified version the proposal names as its parent, never
            // against a baseline the coordinator supplies.
            let base = chain
                .by_hash_hex(&signed.doc.prev_hash)
                .filter(|b| b.version + 1 == signed.doc.version)
                .with_context(|| {
                    format!(
                        "proposal {hash} (version {}) builds on {}, which is not a version that verifies from the pinned genesis; nothing signed",
                        signed.doc.version, signed.doc.prev_hash
                    )
                })?;
            show_changes(
                &format!("approving version {} ({hash})", signed.doc.version),
                &diff(base, &signed.doc),
                json_out,
            );
            desk::confirm(
                yes,
                &format!("approve policy version {}", signed.doc.version),
            )?;
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
            // A veto only holds a change back: it needs no verified context.
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
        AdminCommand::Pending => pending(&mut a, c, json_out).await,
        AdminCommand::SolanaVoid {
            nonce_account,
            nonce_value,
        } => {
            use quorate_core::{chains::solana, message::SOLANA_VOID_DOMAIN};
            let key = load_key(key_path)?;
            let account = solana::address_bytes(&nonce_account)
                .map_err(|e| anyhow::anyhow!("--nonce-account: {e}"))?;
            let nonce = solana::address_bytes(&nonce_value)
                .map_err(|e| anyhow::anyhow!("--nonce-value: {e}"))?;
            let cur = verified_in_force(&mut a, c, "").await?.in_force;
            let status = a
                .get_cluster_status(pb::GetClusterStatusRequest {})
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                .into_inner();
            let wallet: [u8; 32] = status
                .group_keys
                .iter()
                .find(|k| k.scheme == "ed25519")
                .and_then(|k| k.public_key.as_slice().try_into().ok())
                .context(
                    "the cluster has no ed25519 group key (run `quorate dkg --scheme ed25519`)",
                )?;
            let approval = AdminSignature::sign(&key, SOLANA_VOID_DOMAIN, &[&account, &nonce]);
            // What the verified policy allows, built here, not taken from the coordinator.
            let expected =
                quorate_core::message::solana_void(&cur, &wallet, &account, &nonce, &approval)
                    .map_err(|r| anyhow::anyhow!("{}: {}", r.rule, r.reason))?;
            desk::confirm(
                yes,
                &format!("void nonce {nonce_value} of Solana nonce account {nonce_account}"),
            )?;
            let r = match a
                .void_solana_nonce(pb::VoidSolanaNonceRequest {
                    nonce_account,
                    nonce_value,
                    approval: Some(sig_to_proto(&approval)),
                })
                .await
            {
                Ok(r) => r.into_inner(),
                Err(s) => return Ok(refusal(&s, json_out)),
            };
            let valid = frost_ed25519::VerifyingKey::deserialize(&wallet)
                .ok()
                .zip(frost_ed25519::Signature::deserialize(&r.signature).ok())
                .is_some_and(|(k, sig)| k.verify(&expected, &sig).is_ok());
            let sig: Option<[u8; 64]> = r.signature.as_slice().try_into().ok();
            let tx = {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(&r.solana_transaction)
                    .ok()
            };
            if r.message != expected
                || !valid
                || sig.map(|s| solana::transaction(&expected, &s)) != tx
            {
                bail!("the coordinator's answer is not the void the verified policy allows, signed by the wallet; nothing to send");
            }
            if json_out {
                println!(
                    "{}",
                    json!({
                        "ok": true,
                        "solana_transaction": r.solana_transaction,
                        "message": hex::encode(&r.message),
                        "signature": hex::encode(&r.signature),
                        "signers": r.signers,
                    })
                );
            } else {
                println!(
                    "void signed by signers {:?}; send it (sendTransaction, base64):",
                    r.signers
                );
                println!("{}", r.solana_transaction);
            }
            Ok(0)
        }
        AdminCommand::ApproveWithdrawal { id } => {
            let key = load_key(key_path)?;
            let cur = verified_in_force(&mut a, c, "").await?.in_force;
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
            let (shown, digest) = verified_withdrawal(&cur, w)?;
            if json_out {
                eprintln!("{shown}");
            } else {
                println!("{shown}");
            }
            desk::confirm(yes, &format!("approve withdrawal {id}"))?;
            let sig = approve_withdrawal(&key, &digest);
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

/// Checks a pending withdrawal the way a signer would before an admin vouches for it: the
/// intent decodes canonically, it is the one asked for, the backend signed it with a key of the
/// verified policy in force, its asset is registered and its destination whitelisted. Returns
/// what the admin is shown (exactly what the approval covers) and the digest to sign.
pub fn verified_withdrawal(
    cur: &PolicyDoc,
    w: &pb::PendingWithdrawal,
) -> anyhow::Result<(String, [u8; 32])> {
    let id = &w.id;
    let intent = WithdrawalIntent::decode(&w.intent).map_err(|e| {
        anyhow::anyhow!("the coordinator sent an invalid intent for `{id}`: {e}; nothing signed")
    })?;
    if intent.id != *id {
        bail!(
            "the coordinator sent the intent of `{}` for `{id}`; nothing signed",
            intent.id
        );
    }
    let digest = intent.digest();
    quorate_core::backend::verify(&cur.backend_keys(), &digest, &w.backend_signature).map_err(
        |r| {
            anyhow::anyhow!(
                "withdrawal `{id}`: the backend signature does not verify against the backend keys of policy version {} ({}); nothing signed",
                cur.version,
                r.reason
            )
        },
    )?;
    let asset = cur.asset(intent.chain, &intent.asset).with_context(|| {
        format!(
            "withdrawal `{id}`: asset {} on {} is not in the verified policy; nothing signed",
            intent.asset,
            intent.chain.as_str()
        )
    })?;
    let entry = cur
        .whitelisted(intent.chain, &intent.destination)
        .with_context(|| {
            format!(
                "withdrawal `{id}`: destination {} is not whitelisted on {} in the verified policy; nothing signed",
                intent.destination,
                intent.chain.as_str()
            )
        })?;
    let shown = format!(
        "approving withdrawal {id} (backend signature verified):\n  {} {} on {}\n  to {} (\"{}\")\n  base units {}{}\n  created {} ms, expires {} ms, digest {}",
        format_units(intent.amount.get(), asset.decimals),
        intent.asset,
        intent.chain.as_str(),
        intent.destination,
        entry.label,
        intent.amount,
        intent
            .customer_ref
            .as_deref()
            .map(|r| format!(", customer reference {r}"))
            .unwrap_or_default(),
        intent.created_at_ms,
        intent.expires_at_ms,
        hex::encode(digest),
    );
    Ok((shown, digest))
}

async fn pending(a: &mut Admin, c: &ClientFile, json_out: bool) -> anyhow::Result<u8> {
    let view = match a.get_policy(pb::GetPolicyRequest::default()).await {
        Ok(v) => v.into_inner(),
        Err(s) => return Ok(refusal(&s, json_out)),
    };
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
    println!(
        "(as listed by the coordinator; `approve` and `approve-withdrawal` verify before signing)"
    );
    for p in proposals {
        print_proposal(p, false);
    }
    let cur = verify_view(a, c, view.clone()).await.map(|v| v.in_force);
    for w in &ws {
        let shown = match &cur {
            Ok(doc) => verified_withdrawal(doc, w)
                .map(|(shown, _)| shown)
                .unwrap_or_else(|e| format!("DOES NOT VERIFY: {e}")),
            Err(e) => format!("not verified: {e}"),
        };
        println!(
            "withdrawal {}: {}/{} approvals\n{shown}",
            w.id, w.approvals, w.required
        );
    }
    Ok(0)
}

/// Asks for signed receipts every second until all n signers prove they refuse withdrawals or
/// `wait` runs out; succeeds if at least n − t + 1 did (no t unfrozen signers remain among
/// honest ones), and names the rest.
async fn wait_frozen(
    a: &mut Admin,
    c: &ClientFile,
    wait: std::time::Duration,
    json_out: bool,
) -> anyhow::Result<u8> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (proven, m) = desk::receipts(a, c).await?;
        let n = m.signers.len();
        let need = n + 1 - usize::from(m.threshold);
        let frozen = proven
            .iter()
            .filter(|p| p.receipt.as_ref().is_some_and(|r| r.refuses_withdrawals()))
            .count();
        // n − t + 1 proven frozen leave no quorum of unfrozen signers if those receipts are
        // honest; with up to t − 1 signers compromised (S2), only all n proven is certain. So
        // wait for all n, and judge by n − t + 1 when the wait runs out.
        let enough = frozen >= need;
        let all = frozen == n;
        if all || tokio::time::Instant::now() >= deadline {
            let not_proven: Vec<&str> = proven
                .iter()
                .filter(|p| !p.receipt.as_ref().is_some_and(|r| r.refuses_withdrawals()))
                .map(|p| p.name.as_str())
                .collect();
            if json_out {
                eprintln!(
                    "{}",
                    json!({
                        "frozen_proven": frozen, "needed": need, "enough": enough, "all": all,
                        "not_proven_frozen": not_proven,
                        "signers": proven.iter().map(desk::proven_json).collect::<Vec<_>>(),
                    })
                );
            } else {
                println!("signers proven frozen by signed receipts: {frozen} of {n} (at least {need} leave no quorum of unfrozen signers)");
                for p in &proven {
                    println!("{}", desk::proven_line(p));
                }
                if !enough {
                    println!(
                        "NOT ENOUGH: not proven frozen: {}. Ask their operators to run `quorate signer freeze` on those hosts.",
                        not_proven.join(", ")
                    );
                } else if !all {
                    println!(
                        "ENOUGH ONLY IF THE PROVEN SIGNERS ARE HONEST: not proven frozen: {}. A compromised signer can sign a false receipt; ask their operators to run `quorate signer freeze` too.",
                        not_proven.join(", ")
                    );
                }
            }
            return Ok(if enough { 0 } else { EXIT_NOT_PROVEN });
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

fn show_changes(title: &str, changes: &[Change], json_out: bool) {
    // With --json, stdout carries one JSON object; the diff still reaches the person.
    let mut text = format!("{title}:\n");
    if changes.is_empty() {
        text.push_str("  (no rule changes)\n");
    }
    for c in changes {
        let mark = match c.effect {
            quorate_core::policy::Effect::Loosens => "+ loosens ",
            quorate_core::policy::Effect::Tightens => "- tightens",
            quorate_core::policy::Effect::Neutral => "  neutral ",
        };
        text.push_str(&format!("  {mark}  {}\n", c.what));
    }
    if json_out {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

async fn propose(
    a: &mut Admin,
    key: &IdentitySecret,
    base: &PolicyDoc,
    doc: PolicyDoc,
    json_out: bool,
    yes: bool,
) -> anyhow::Result<u8> {
    show_changes(
        &format!("proposing version {} ({})", doc.version, doc.hash_hex()),
        &diff(base, &doc),
        json_out,
    );
    desk::confirm(yes, &format!("propose policy version {}", doc.version))?;
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
