//! Evaluation: one function from (policy, ledger, intent, approvals, now) to a decision.

use std::collections::BTreeSet;

use crate::{
    identity::{IdentityPublic, IdentitySecret},
    intent::WithdrawalIntent,
    refusal::{Refusal, Rule, VelocityMeasure, VelocityScope},
};

use super::{
    doc::{window_label, PolicyDoc, Scope},
    ledger::{Ledger, LedgerKey},
};

/// Domain of an admin's approval of one withdrawal (signature over the intent digest).
pub const WITHDRAWAL_APPROVAL_DOMAIN: &str = "quorate-withdrawal-approval-v1";

/// An admin's signature, identified by the admin's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSignature {
    /// The admin.
    pub admin: IdentityPublic,
    /// Signature made with [`IdentitySecret::sign`].
    pub signature: Vec<u8>,
}

impl AdminSignature {
    /// Signs `parts` under `domain`.
    pub fn sign(key: &IdentitySecret, domain: &str, parts: &[&[u8]]) -> Self {
        Self {
            admin: key.public(),
            signature: key.sign(domain, parts),
        }
    }
}

/// An admin's approval of the withdrawal with this digest.
pub fn approve_withdrawal(key: &IdentitySecret, digest: &[u8; 32]) -> AdminSignature {
    AdminSignature::sign(key, WITHDRAWAL_APPROVAL_DOMAIN, &[digest])
}

/// How many distinct keys of `admins` made a valid signature over `parts` under `domain`.
/// Signatures by anyone else, invalid ones and repeats count for nothing.
pub fn distinct_valid(
    admins: &BTreeSet<IdentityPublic>,
    domain: &str,
    parts: &[&[u8]],
    sigs: &[AdminSignature],
) -> usize {
    let mut seen = BTreeSet::new();
    for s in sigs {
        if admins.contains(&s.admin)
            && !seen.contains(&s.admin)
            && s.admin.verify(domain, parts, &s.signature).is_ok()
        {
            seen.insert(s.admin);
        }
    }
    seen.len()
}

/// Formats base units in whole units: `1500000000000000000` with 18 decimals is `1.5`.
pub fn format_units(amount: u128, decimals: u8) -> String {
    let s = amount.to_string();
    let d = usize::from(decimals);
    if d == 0 {
        return s;
    }
    let padded = format!("{s:0>width$}", width = d + 1);
    let (whole, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{frac}")
    }
}

/// Decides whether `intent` may be signed now.
///
/// Checks, in order: freeze, asset registry, per-withdrawal maximum, whitelist (entry, then
/// active-from), velocity limits no window could ever hold (permanent), admin approvals above
/// the threshold, then every velocity limit of the asset against the ledger. The first failing
/// rule refuses; its tag is stable (see `docs/policy.md`).
pub fn evaluate(
    policy: &PolicyDoc,
    ledger: &Ledger,
    intent: &WithdrawalIntent,
    approvals: &[AdminSignature],
    now_ms: u64,
) -> Result<(), Refusal> {
    let now = ledger.effective_now(now_ms);
    if policy.frozen {
        return Err(Refusal::temporary(
            Rule::PolicyFrozen,
            format!(
                "withdrawals are frozen by policy version {}; signing resumes when an admin quorum unfreezes",
                policy.version
            ),
        ));
    }
    let chain = intent.chain;
    let Some(asset) = policy.asset(chain, &intent.asset) else {
        return Err(Refusal::permanent(
            Rule::PolicyAssetUnknown,
            format!(
                "asset {} on {} is not in the policy's asset registry",
                intent.asset,
                chain.as_str()
            ),
        ));
    };
    let units = |a: u128| format!("{} {}", format_units(a, asset.decimals), asset.asset);
    if !asset.enabled {
        return Err(Refusal::permanent(
            Rule::PolicyAssetDisabled,
            format!(
                "withdrawals of {} on {} are disabled by policy",
                asset.asset,
                chain.as_str()
            ),
        ));
    }
    let amount = intent.amount.get();
    if intent.amount > asset.max_per_withdrawal {
        return Err(Refusal::permanent(
            Rule::PolicyAmountMax,
            format!(
                "{} exceeds the per-withdrawal maximum of {}",
                units(amount),
                units(asset.max_per_withdrawal.get())
            ),
        ));
    }
    let Some(entry) = policy.whitelisted(chain, &intent.destination) else {
        return Err(Refusal::permanent(
            Rule::PolicyWhitelistDestination,
            format!(
                "destination {} is not on the {} whitelist; an admin quorum must add it",
                intent.destination,
                chain.as_str()
            ),
        ));
    };
    if now < entry.active_from_ms {
        return Err(Refusal::temporary(
            Rule::PolicyWhitelistNotYetActive,
            format!(
                "destination {} ({}) is whitelisted from {} ms (unix); now is {} ms",
                intent.destination, entry.label, entry.active_from_ms, now
            ),
        ));
    }
    // A withdrawal that no window could ever hold is refused before anyone is asked to
    // approve it.
    for limit in policy
        .velocity
        .iter()
        .filter(|v| v.chain == chain && v.asset == intent.asset)
    {
        let window = window_label(limit.window_ms);
        if let Some(max) = limit.max_amount.map(|m| m.get()).filter(|m| amount > *m) {
            return Err(Refusal::permanent(
                velocity_tag(limit.scope, VelocityMeasure::Amount, &window),
                format!(
                    "{} is more than may move in any {window} ({}); it can never fit",
                    units(amount),
                    units(max)
                ),
            ));
        }
        if limit.max_count == Some(0) {
            return Err(Refusal::permanent(
                velocity_tag(limit.scope, VelocityMeasure::Count, &window),
                format!(
                    "no {} withdrawals are allowed (limit 0 per {window})",
                    asset.asset
                ),
            ));
        }
    }
    if intent.amount > asset.approval_threshold {
        let need = usize::from(asset.approvals_required);
        let digest = intent.digest();
        let have = distinct_valid(
            &policy.admin_keys(),
            WITHDRAWAL_APPROVAL_DOMAIN,
            &[&digest],
            approvals,
        );
        if have < need {
            return Err(Refusal::temporary(
                Rule::PolicyApprovalRequired,
                format!(
                    "{} is above the approval threshold of {}: {need} distinct admin approvals are needed, {have} valid",
                    units(amount),
                    units(asset.approval_threshold.get())
                ),
            ));
        }
    }
    for limit in policy
        .velocity
        .iter()
        .filter(|v| v.chain == chain && v.asset == intent.asset)
    {
        let key = LedgerKey {
            chain,
            asset: intent.asset.clone(),
            destination: (limit.scope == Scope::Destination).then(|| intent.destination.clone()),
        };
        let used = ledger.usage(&key, limit.window_ms, now);
        let window = window_label(limit.window_ms);
        let scope = match limit.scope {
            Scope::Asset => format!("all {} withdrawals", asset.asset),
            Scope::Destination => format!("{} to {}", asset.asset, intent.destination),
        };
        if let Some(max) = limit.max_amount {
            let tag = velocity_tag(limit.scope, VelocityMeasure::Amount, &window);
            let max = max.get();
            if amount > max {
                return Err(Refusal::permanent(
                    tag,
                    format!(
                        "{} is more than {scope} may move in any {window} ({}); it can never fit",
                        units(amount),
                        units(max)
                    ),
                ));
            }
            // Checked, not saturating: a limit may be `u128::MAX` itself, and a saturated sum
            // would equal it and pass.
            if used
                .amount
                .checked_add(amount)
                .is_none_or(|total| total > max)
            {
                let frees = ledger.frees_at(&key, limit.window_ms, now, |u| {
                    u.amount.checked_add(amount).is_some_and(|t| t <= max)
                });
                return Err(Refusal::temporary(
                    tag,
                    format!(
                        "{} would exceed the limit of {} per {window} for {scope}: {} already went out in the window; retry when it frees up",
                        units(amount),
                        units(max),
                        units(used.amount)
                    ),
                )
                .retry_at(frees));
            }
        }
        if let Some(max) = limit.max_count {
            let tag = velocity_tag(limit.scope, VelocityMeasure::Count, &window);
            if max == 0 {
                return Err(Refusal::permanent(
                    tag,
                    format!("no withdrawals are allowed for {scope} (limit 0 per {window})"),
                ));
            }
            if used.count >= max {
                let frees = ledger.frees_at(&key, limit.window_ms, now, |u| u.count < max);
                return Err(Refusal::temporary(
                    tag,
                    format!(
                        "{scope} already made {} of the {max} withdrawals allowed per {window}; retry when the window frees up",
                        used.count
                    ),
                )
                .retry_at(frees));
            }
        }
    }
    Ok(())
}

/// The per-signer budget (when the policy turns it on): what this signer released itself of
/// the intent's asset, plus the intent, must stay within limit / `honest` of every per-asset
/// velocity limit, where `honest` = n − t + 1 is the fewest honest signers a withdrawal can
/// need once t − 1 signers are compromised. Rounded down: the sum over the honest signers never
/// exceeds the limit. Refusals are tagged `policy-velocity-signer-<amount|count>-<window>`:
/// temporary with the time the budget frees up, or permanent for an intent that can never fit
/// (more than the budget, or a budget of no withdrawal).
pub fn evaluate_budget(
    policy: &PolicyDoc,
    ledger: &Ledger,
    intent: &WithdrawalIntent,
    honest: u16,
    now_ms: u64,
) -> Result<(), Refusal> {
    if !policy.per_signer_budget {
        return Ok(());
    }
    let now = ledger.effective_now(now_ms);
    let honest = u128::from(honest.max(1));
    let decimals = policy
        .asset(intent.chain, &intent.asset)
        .map_or(0, |a| a.decimals);
    let units = |a: u128| format!("{} {}", format_units(a, decimals), intent.asset);
    let amount = intent.amount.get();
    for limit in policy
        .velocity
        .iter()
        .filter(|v| v.chain == intent.chain && v.asset == intent.asset && v.scope == Scope::Asset)
    {
        let used = ledger.own_usage(intent.chain, &intent.asset, limit.window_ms, now);
        let window = window_label(limit.window_ms);
        if let Some(max) = limit.max_amount {
            let budget = max.get() / honest;
            if amount > budget {
                return Err(Refusal::permanent(
                    Rule::velocity(VelocityScope::Signer, VelocityMeasure::Amount, &window),
                    format!(
                        "{} is more than this signer's budget of {} per {window} (1/{honest} of {}); it can never fit",
                        units(amount),
                        units(budget),
                        units(max.get())
                    ),
                ));
            }
            if used.amount.checked_add(amount).is_none_or(|t| t > budget) {
                let frees =
                    ledger.own_frees_at(intent.chain, &intent.asset, limit.window_ms, now, |u| {
                        u.amount.checked_add(amount).is_some_and(|t| t <= budget)
                    });
                return Err(Refusal::temporary(
                    Rule::velocity(VelocityScope::Signer, VelocityMeasure::Amount, &window),
                    format!(
                        "this signer's budget is {} per {window} (1/{honest} of {}); it released {} already and {} would exceed it",
                        units(budget),
                        units(max.get()),
                        units(used.amount),
                        units(amount)
                    ),
                )
                .retry_at(frees));
            }
        }
        if let Some(max) = limit.max_count {
            let budget = u128::from(max) / honest;
            if budget == 0 {
                return Err(Refusal::permanent(
                    Rule::velocity(VelocityScope::Signer, VelocityMeasure::Count, &window),
                    format!(
                        "this signer's budget is no withdrawal per {window} (1/{honest} of {max}); none can ever fit"
                    ),
                ));
            }
            if u128::from(used.count) >= budget {
                let frees =
                    ledger.own_frees_at(intent.chain, &intent.asset, limit.window_ms, now, |u| {
                        u128::from(u.count) < budget
                    });
                return Err(Refusal::temporary(
                    Rule::velocity(VelocityScope::Signer, VelocityMeasure::Count, &window),
                    format!(
                        "this signer's budget is {budget} withdrawals per {window} (1/{honest} of {max}); it released {} already",
                        used.count
                    ),
                )
                .retry_at(frees));
            }
        }
    }
    Ok(())
}

/// The velocity rule of a limit of `scope` on `measure` over `window` (its label, e.g. `24h`):
/// `policy-velocity-<scope>-<amount|count>-<window>`.
pub fn velocity_tag(scope: Scope, measure: VelocityMeasure, window: &str) -> Rule {
    Rule::velocity(scope.into(), measure, window)
}
