//! Governance: which policy is in force on this node, and how a new version gets there.
//!
//! A new version must chain onto the version in force (version + 1, `prev_hash` = its hash) and
//! carry enough distinct signatures from the admins of the version in force: one for a change
//! that only sets the freeze flag, the admin quorum for anything else (unfreezing included).
//! The node classifies the change itself: a change that loosens anything waits out the
//! time-lock of the version in force, measured on this node's clock from when it first saw the
//! change; a change that only tightens applies at once. A newer version applied meanwhile
//! supersedes a pending one; any single admin can veto a pending one, and a vetoed loosening
//! document is refused for good (a veto never holds back a freeze, an unfreeze or a tightening).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{
    identity::IdentityPublic,
    refusal::{Refusal, Rule},
};

use super::{
    doc::{window_label, CapSetting, PolicyDoc, SolanaRule, VaultAction},
    eval::{distinct_valid, format_units, AdminSignature},
};

/// Domain of an admin's approval of a policy version (signature over its hash).
pub const POLICY_APPROVAL_DOMAIN: &str = "quorate-policy-approval-v1";
/// Domain of an admin's veto of a pending version (signature over its hash).
pub const POLICY_VETO_DOMAIN: &str = "quorate-policy-veto-v1";

/// A policy document with admin signatures over its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPolicy {
    /// The document.
    pub doc: PolicyDoc,
    /// Approvals (domain [`POLICY_APPROVAL_DOMAIN`], message the document hash).
    pub signatures: Vec<AdminSignature>,
}

/// What a change does to the risk the policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// Allows something that was not allowed: waits out the time-lock.
    Loosens,
    /// Allows less: applies at once.
    Tightens,
    /// Changes nothing a withdrawal could use (a label).
    Neutral,
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Its effect.
    pub effect: Effect,
    /// What changed, for people.
    pub what: String,
}

fn ch(out: &mut Vec<Change>, effect: Effect, what: String) {
    out.push(Change { effect, what });
}

fn cmp_effect<T: Ord>(old: T, new: T, higher_loosens: bool) -> Effect {
    match (new > old, higher_loosens) {
        (true, true) | (false, false) => Effect::Loosens,
        _ => Effect::Tightens,
    }
}

/// Every difference between two versions, rule by rule, each classified. Version and
/// `prev_hash` are not listed.
pub fn diff(old: &PolicyDoc, new: &PolicyDoc) -> Vec<Change> {
    use Effect::*;
    let mut out = Vec::new();
    for a in &old.assets {
        let name = format!("asset {} on {}", a.asset, a.chain.as_str());
        let u = |x: u128| format!("{} {}", format_units(x, a.decimals), a.asset);
        match new.asset(a.chain, &a.asset) {
            None => ch(&mut out, Tightens, format!("{name}: removed")),
            Some(b) => {
                if a.enabled != b.enabled {
                    let e = if b.enabled { Loosens } else { Tightens };
                    ch(
                        &mut out,
                        e,
                        format!("{name}: enabled {} -> {}", a.enabled, b.enabled),
                    );
                }
                if a.decimals != b.decimals {
                    ch(
                        &mut out,
                        Loosens,
                        format!("{name}: decimals {} -> {}", a.decimals, b.decimals),
                    );
                }
                if a.max_per_withdrawal != b.max_per_withdrawal {
                    ch(
                        &mut out,
                        cmp_effect(a.max_per_withdrawal, b.max_per_withdrawal, true),
                        format!(
                            "{name}: per-withdrawal maximum {} -> {}",
                            u(a.max_per_withdrawal.get()),
                            u(b.max_per_withdrawal.get())
                        ),
                    );
                }
                if a.approval_threshold != b.approval_threshold {
                    ch(
                        &mut out,
                        cmp_effect(a.approval_threshold, b.approval_threshold, true),
                        format!(
                            "{name}: approval threshold {} -> {}",
                            u(a.approval_threshold.get()),
                            u(b.approval_threshold.get())
                        ),
                    );
                }
                if a.token != b.token {
                    // Another contract behind the same symbol: as loose as a new asset.
                    let t = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
                    ch(
                        &mut out,
                        Loosens,
                        format!("{name}: token {} -> {}", t(&a.token), t(&b.token)),
                    );
                }
                if a.approvals_required != b.approvals_required {
                    ch(
                        &mut out,
                        cmp_effect(a.approvals_required, b.approvals_required, false),
                        format!(
                            "{name}: approvals required {} -> {}",
                            a.approvals_required, b.approvals_required
                        ),
                    );
                }
            }
        }
    }
    for b in &new.assets {
        if old.asset(b.chain, &b.asset).is_none() {
            ch(
                &mut out,
                Loosens,
                format!("asset {} on {}: added", b.asset, b.chain.as_str()),
            );
        }
    }
    for w in &old.whitelist {
        let name = format!("whitelist {} {} ({})", w.chain.as_str(), w.address, w.label);
        match new.whitelisted(w.chain, &w.address) {
            None => ch(&mut out, Tightens, format!("{name}: removed")),
            Some(v) => {
                if v.active_from_ms != w.active_from_ms {
                    ch(
                        &mut out,
                        cmp_effect(w.active_from_ms, v.active_from_ms, false),
                        format!(
                            "{name}: active from {} -> {} ms",
                            w.active_from_ms, v.active_from_ms
                        ),
                    );
                }
                if v.label != w.label {
                    ch(&mut out, Neutral, format!("{name}: label -> {}", v.label));
                }
            }
        }
    }
    for v in &new.whitelist {
        if old.whitelisted(v.chain, &v.address).is_none() {
            ch(
                &mut out,
                Loosens,
                format!(
                    "whitelist {} {} ({}): added, active from {} ms",
                    v.chain.as_str(),
                    v.address,
                    v.label,
                    v.active_from_ms
                ),
            );
        }
    }
    for l in &old.velocity {
        let name = format!(
            "velocity {} {} {} per {}",
            l.chain.as_str(),
            l.asset,
            l.scope.as_str(),
            window_label(l.window_ms)
        );
        match new.velocity.iter().find(|n| n.key() == l.key()) {
            None => ch(&mut out, Loosens, format!("{name}: removed")),
            Some(n) => {
                let decimals = new
                    .asset(l.chain, &l.asset)
                    .or_else(|| old.asset(l.chain, &l.asset))
                    .map_or(0, |a| a.decimals);
                let lim = |o: Option<crate::amount::Amount>| {
                    o.map_or("none".to_string(), |v| {
                        format!("{} {}", format_units(v.get(), decimals), l.asset)
                    })
                };
                if n.max_amount != l.max_amount {
                    // `None` (no limit) loosens everything; as an Option, None < Some.
                    let e = match (l.max_amount, n.max_amount) {
                        (_, None) => Loosens,
                        (None, Some(_)) => Tightens,
                        (Some(a), Some(b)) => cmp_effect(a, b, true),
                    };
                    ch(
                        &mut out,
                        e,
                        format!(
                            "{name}: max amount {} -> {}",
                            lim(l.max_amount),
                            lim(n.max_amount)
                        ),
                    );
                }
                if n.max_count != l.max_count {
                    let e = match (l.max_count, n.max_count) {
                        (_, None) => Loosens,
                        (None, Some(_)) => Tightens,
                        (Some(a), Some(b)) => cmp_effect(a, b, true),
                    };
                    let c = |o: Option<u64>| o.map_or("none".to_string(), |v| v.to_string());
                    ch(
                        &mut out,
                        e,
                        format!("{name}: max count {} -> {}", c(l.max_count), c(n.max_count)),
                    );
                }
            }
        }
    }
    for n in &new.velocity {
        if !old.velocity.iter().any(|l| l.key() == n.key()) {
            ch(
                &mut out,
                Tightens,
                format!(
                    "velocity {} {} {} per {}: added",
                    n.chain.as_str(),
                    n.asset,
                    n.scope.as_str(),
                    window_label(n.window_ms)
                ),
            );
        }
    }
    for c in &old.chains {
        let name = format!("chain {}", c.chain.as_str());
        match new.chain(c.chain) {
            // Without a vault the group signs the intent digest, which no chain accepts.
            None => ch(
                &mut out,
                Tightens,
                format!("{name}: vault {} removed", c.vault),
            ),
            Some(n) => {
                if (n.chain_id, &n.vault) != (c.chain_id, &c.vault) {
                    ch(
                        &mut out,
                        Loosens,
                        format!(
                            "{name}: vault {} (chain id {}) -> {} (chain id {})",
                            c.vault, c.chain_id, n.vault, n.chain_id
                        ),
                    );
                }
                if (n.chain_id, &n.vault) != (c.chain_id, &c.vault) {
                    // Listed actions follow the vault: each is now signable for the new one.
                    for a in n
                        .vault_actions
                        .iter()
                        .filter(|a| c.vault_actions.contains(a))
                    {
                        ch(
                            &mut out,
                            Loosens,
                            format!(
                                "{name}: vault action at nonce {} now for the new vault: {}",
                                a.nonce,
                                show_action(a)
                            ),
                        );
                    }
                }
                vault_action_diff(&mut out, &name, &c.vault_actions, &n.vault_actions);
            }
        }
    }
    for n in &new.chains {
        if old.chain(n.chain).is_none() {
            ch(
                &mut out,
                Loosens,
                format!(
                    "chain {}: vault {} (chain id {}) added",
                    n.chain.as_str(),
                    n.vault,
                    n.chain_id
                ),
            );
        }
    }
    solana_diff(&mut out, old.solana.as_ref(), new.solana.as_ref());
    // Retiring a signer cuts it off (at once, with the quorum: a compromised operator must not
    // wait out a time-lock); bringing one back loosens.
    for s in new
        .retired_signers
        .iter()
        .filter(|s| !old.retired_signers.contains(s))
    {
        ch(&mut out, Tightens, format!("signer {s}: retired"));
    }
    for s in old
        .retired_signers
        .iter()
        .filter(|s| !new.retired_signers.contains(s))
    {
        ch(&mut out, Loosens, format!("signer {s}: no longer retired"));
    }
    set_diff(
        &mut out,
        "backend key",
        &old.backend_keys,
        &new.backend_keys,
        Loosens,
        Tightens,
    );
    // Any change to who governs is treated as loosening: removing an admin removes a veto.
    set_diff(
        &mut out,
        "admin",
        &old.admins,
        &new.admins,
        Loosens,
        Loosens,
    );
    if old.admin_quorum != new.admin_quorum {
        ch(
            &mut out,
            cmp_effect(old.admin_quorum, new.admin_quorum, false),
            format!("admin quorum {} -> {}", old.admin_quorum, new.admin_quorum),
        );
    }
    if old.timelock_ms != new.timelock_ms {
        ch(
            &mut out,
            cmp_effect(old.timelock_ms, new.timelock_ms, false),
            format!("time-lock {} -> {} ms", old.timelock_ms, new.timelock_ms),
        );
    }
    if old.per_signer_budget != new.per_signer_budget {
        ch(
            &mut out,
            if new.per_signer_budget {
                Tightens
            } else {
                Loosens
            },
            format!(
                "per-signer budget {} -> {}",
                if old.per_signer_budget { "on" } else { "off" },
                if new.per_signer_budget { "on" } else { "off" }
            ),
        );
    }
    if old.frozen != new.frozen {
        // Unfreezing needs the quorum but no time-lock; freezing applies at once.
        let e = if new.frozen { Tightens } else { Neutral };
        ch(
            &mut out,
            e,
            if new.frozen {
                "freeze".into()
            } else {
                "unfreeze".into()
            },
        );
    }
    out
}

fn show_action(a: &VaultAction) -> String {
    match (&a.rotate_key, &a.set_cap) {
        (Some(k), _) => format!("rotate the vault's key to {k}"),
        (_, Some(c)) => format!(
            "set the on-chain cap of {} to {} base units, refilled {} per second",
            c.token, c.capacity, c.refill_per_second
        ),
        _ => "nothing".into(),
    }
}

/// Solana's settings: the section added, a nonce account added, blockhashes allowed or a cap
/// raised loosens (each lets the group sign something it could not); the opposite tightens.
fn solana_diff(out: &mut Vec<Change>, old: Option<&SolanaRule>, new: Option<&SolanaRule>) {
    use Effect::{Loosens, Tightens};
    let (o, n) = match (old, new) {
        (None, None) => return,
        // Without it a Solana withdrawal is an intent digest, which no chain accepts.
        (Some(_), None) => {
            return ch(out, Tightens, "solana: section removed".into());
        }
        (None, Some(n)) => {
            ch(out, Loosens, "solana: section added".into());
            return solana_diff(out, Some(&SolanaRule::default()), Some(n));
        }
        (Some(o), Some(n)) => (o, n),
    };
    set_diff(
        out,
        "solana: nonce account",
        &o.nonce_accounts,
        &n.nonce_accounts,
        Loosens,
        Tightens,
    );
    if o.allow_blockhash != n.allow_blockhash {
        let (e, what) = if n.allow_blockhash {
            (Loosens, "allowed")
        } else {
            (Tightens, "no longer allowed")
        };
        ch(out, e, format!("solana: recent blockhashes {what}"));
    }
    solana_caps(out, o, n);
}

fn solana_caps(out: &mut Vec<Change>, o: &SolanaRule, n: &SolanaRule) {
    for (what, old, new) in [
        (
            "max compute-unit limit",
            u64::from(o.max_compute_unit_limit),
            u64::from(n.max_compute_unit_limit),
        ),
        (
            "max compute-unit price (micro-lamports)",
            o.max_compute_unit_price,
            n.max_compute_unit_price,
        ),
    ] {
        if old != new {
            ch(
                out,
                cmp_effect(old, new, true),
                format!("solana: {what} {old} -> {new}"),
            );
        }
    }
}

/// Vault administration messages the group may sign. A key rotation hands the vault over, so
/// adding one waits out the time-lock, and so does removing a cap (`none`) or a cap above the
/// last one listed for that token. Any other cap applies at once: a lowering is what an
/// emergency needs, and the vault itself delays a raise over its on-chain state by its
/// `capRaiseDelay`. Removing a listed action does not revoke a signature already released:
/// only using its nonce on chain does.
fn vault_action_diff(out: &mut Vec<Change>, name: &str, old: &[VaultAction], new: &[VaultAction]) {
    for a in old.iter().filter(|a| !new.contains(a)) {
        ch(
            out,
            Effect::Tightens,
            format!(
                "{name}: vault action at nonce {} removed: {}",
                a.nonce,
                show_action(a)
            ),
        );
    }
    for a in new.iter().filter(|a| !old.contains(a)) {
        let e = match &a.set_cap {
            None => Effect::Loosens,
            Some(cap) => {
                let last = old
                    .iter()
                    .rev()
                    .filter_map(|o| o.set_cap.as_ref())
                    .find(|o| o.token == cap.token)
                    .and_then(CapSetting::values);
                match (cap.values(), last) {
                    (Some((c, _)), _) if c == u128::MAX => Effect::Loosens,
                    (Some((c, r)), Some((lc, lr))) if c > lc || r > lr => Effect::Loosens,
                    _ => Effect::Tightens,
                }
            }
        };
        ch(
            out,
            e,
            format!(
                "{name}: vault action at nonce {} added: {}",
                a.nonce,
                show_action(a)
            ),
        );
    }
}

fn set_diff(
    out: &mut Vec<Change>,
    what: &str,
    old: &[String],
    new: &[String],
    added: Effect,
    removed: Effect,
) {
    for k in old.iter().filter(|k| !new.contains(k)) {
        ch(out, removed, format!("{what} {k}: removed"));
    }
    for k in new.iter().filter(|k| !old.contains(k)) {
        ch(out, added, format!("{what} {k}: added"));
    }
}

/// True if `new` differs from `old` only by setting the freeze flag (and version, prev hash).
pub fn is_freeze_only(old: &PolicyDoc, new: &PolicyDoc) -> bool {
    let mut frozen = old.clone();
    frozen.frozen = true;
    frozen.version = new.version;
    frozen.prev_hash = new.prev_hash.clone();
    !old.frozen && *new == frozen
}

/// Distinct admin signatures `new` needs on top of `current`.
pub fn required_signatures(current: &PolicyDoc, new: &PolicyDoc) -> usize {
    if is_freeze_only(current, new) {
        1
    } else {
        usize::from(current.admin_quorum)
    }
}

/// Builds the next version of `current` from an edited document (version and prev hash set).
pub fn next_version(current: &PolicyDoc, mut edited: PolicyDoc) -> PolicyDoc {
    edited.version = current.version + 1;
    edited.prev_hash = current.hash_hex();
    edited
}

/// Checks that `signed` may follow `cur`: a valid document, version `cur.version + 1`,
/// `prev_hash` the hash of `cur`, and enough distinct valid signatures by the admins of `cur`
/// ([`required_signatures`]). Time-lock and vetoes are the caller's business.
pub fn check_successor(cur: &PolicyDoc, signed: &SignedPolicy) -> Result<(), Refusal> {
    let doc = &signed.doc;
    doc.validate()
        .map_err(|e| refuse(Rule::PolicyUpdateInvalid, e.to_string()))?;
    if doc.version != cur.version + 1 {
        return Err(refuse(
            Rule::PolicyUpdateVersion,
            format!(
                "version {} does not follow the version in force ({}); expected {}",
                doc.version,
                cur.version,
                cur.version + 1
            ),
        ));
    }
    if doc.prev_hash != cur.hash_hex() {
        return Err(refuse(
            Rule::PolicyUpdateChain,
            format!(
                "prev_hash {} is not the hash of version {} in force ({})",
                doc.prev_hash,
                cur.version,
                cur.hash_hex()
            ),
        ));
    }
    let need = required_signatures(cur, doc);
    let have = distinct_valid(
        &cur.admin_keys(),
        POLICY_APPROVAL_DOMAIN,
        &[&doc.hash()],
        &signed.signatures,
    );
    if have < need {
        return Err(refuse(
            Rule::PolicyUpdateSignatures,
            format!(
                "version {} carries {have} valid distinct admin signatures; {need} are needed",
                doc.version
            ),
        ));
    }
    Ok(())
}

/// A version waiting out its time-lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The signed version.
    pub policy: SignedPolicy,
    /// When it applies (this node's clock, unix ms).
    pub effective_at_ms: u64,
}

/// What happened to an offered version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// In force now.
    Applied,
    /// Waits until `effective_at_ms`.
    Pending {
        /// When it applies.
        effective_at_ms: u64,
    },
    /// This node already has it (in force, or pending); nothing changed.
    Known,
}

/// Most vetoed hashes a node holds for one version in force.
pub const MAX_VETOES: usize = 1024;

/// The policy in force on a node, any pending version, and the vetoed hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyState {
    /// In force.
    pub current: SignedPolicy,
    /// Waiting out the time-lock.
    pub pending: Option<Pending>,
    /// Hashes vetoed while pending.
    pub vetoed: BTreeSet<[u8; 32]>,
}

fn refuse(rule: Rule, why: impl Into<String>) -> Refusal {
    Refusal::permanent(rule, why)
}

impl PolicyState {
    /// Installs the genesis policy. Its admins must be exactly the admin keys pinned at setup,
    /// its quorum the pinned quorum, and it must carry that many of their signatures.
    pub fn genesis(
        pinned_admins: &BTreeSet<IdentityPublic>,
        pinned_quorum: u16,
        signed: SignedPolicy,
    ) -> Result<Self, Refusal> {
        let doc = &signed.doc;
        doc.validate()
            .map_err(|e| refuse(Rule::PolicyUpdateInvalid, e.to_string()))?;
        if doc.version != 1 {
            return Err(refuse(
                Rule::PolicyUpdateVersion,
                format!("the first policy must be version 1, not {}", doc.version),
            ));
        }
        if doc.admin_keys() != *pinned_admins || doc.admin_quorum != pinned_quorum {
            return Err(refuse(
                Rule::PolicyUpdateGenesis,
                "the genesis policy's admins and quorum differ from the ones pinned in the manifest",
            ));
        }
        let hash = doc.hash();
        let have = distinct_valid(
            pinned_admins,
            POLICY_APPROVAL_DOMAIN,
            &[&hash],
            &signed.signatures,
        );
        if have < usize::from(pinned_quorum) {
            return Err(refuse(
                Rule::PolicyUpdateSignatures,
                format!(
                    "the genesis policy carries {have} valid distinct admin signatures; {pinned_quorum} are needed"
                ),
            ));
        }
        Ok(Self {
            current: signed,
            pending: None,
            vetoed: BTreeSet::new(),
        })
    }

    /// The policy in force.
    pub fn active(&self) -> &PolicyDoc {
        &self.current.doc
    }

    /// Applies a pending version whose time has come. Returns true if something changed.
    pub fn tick(&mut self, now_ms: u64) -> bool {
        match &self.pending {
            Some(p) if now_ms >= p.effective_at_ms => {
                if let Some(p) = self.pending.take() {
                    self.apply(p.policy);
                }
                true
            }
            _ => false,
        }
    }

    /// Checks `signed` against the version in force and applies it, schedules it, or refuses
    /// it naming the rule.
    pub fn offer(&mut self, signed: SignedPolicy, now_ms: u64) -> Result<Offered, Refusal> {
        self.tick(now_ms);
        let doc = &signed.doc;
        doc.validate()
            .map_err(|e| refuse(Rule::PolicyUpdateInvalid, e.to_string()))?;
        let hash = doc.hash();
        let cur = &self.current.doc;
        if hash == cur.hash()
            || self
                .pending
                .as_ref()
                .is_some_and(|p| p.policy.doc.hash() == hash)
        {
            return Ok(Offered::Known);
        }
        check_successor(cur, &signed)?;
        let loosens = diff(cur, doc).iter().any(|c| c.effect == Effect::Loosens);
        // A veto holds back only a loosening change. A freeze, an unfreeze or a tightening
        // applies whatever one admin says: the freeze-only next version is predictable, so
        // otherwise one admin could veto it in advance and take away every other admin's
        // freeze.
        if loosens && self.vetoed.contains(&hash) {
            return Err(refuse(
                Rule::PolicyUpdateVetoed,
                format!("policy {} was vetoed", hex::encode(hash)),
            ));
        }
        if loosens && cur.timelock_ms > 0 {
            let effective_at_ms = now_ms.saturating_add(cur.timelock_ms);
            self.pending = Some(Pending {
                policy: signed,
                effective_at_ms,
            });
            Ok(Offered::Pending { effective_at_ms })
        } else {
            self.apply(signed);
            self.pending = None;
            Ok(Offered::Applied)
        }
    }

    /// Puts `signed` in force. Vetoes are forgotten: every vetoed document has a version at
    /// most the new one's, so none of them can follow it any more (a veto signed in advance for
    /// a version two or more ahead is the one casualty). This bounds the set by the vetoes
    /// cast during one version.
    fn apply(&mut self, signed: SignedPolicy) {
        self.current = signed;
        self.vetoed.clear();
    }

    /// Vetoes the pending version with `hash`: any single admin of the version in force.
    pub fn veto(
        &mut self,
        hash: &[u8; 32],
        veto: &AdminSignature,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        self.tick(now_ms);
        let admins = self.current.doc.admin_keys();
        if distinct_valid(
            &admins,
            POLICY_VETO_DOMAIN,
            &[hash],
            std::slice::from_ref(veto),
        ) != 1
        {
            return Err(refuse(
                Rule::PolicyVetoInvalid,
                "the veto is not signed by an admin of the policy in force",
            ));
        }
        if !self.vetoed.contains(hash) && self.vetoed.len() >= MAX_VETOES {
            return Err(refuse(
                Rule::PolicyVetoInvalid,
                format!(
                    "{MAX_VETOES} vetoes are held for the version in force already; freeze instead"
                ),
            ));
        }
        // A veto is kept even if this node has not seen the version yet, so that it is
        // refused when it arrives.
        self.vetoed.insert(*hash);
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.policy.doc.hash() == *hash)
        {
            self.pending = None;
        }
        Ok(())
    }
}
