//! The coordinator's side of policy: it carries signed versions to the signers, collects admin
//! approvals for proposals, and keeps its own copy of the policy and a ledger for early,
//! friendly answers. The signers' own checks are the ones that count.

use std::{collections::BTreeMap, sync::Mutex};

use quorate_core::{
    identity::IdentityPublic,
    intent::WithdrawalIntent,
    message::ChainFormat,
    policy::governance::MAX_VETOES,
    policy::{
        decode_state, diff,
        doc::MAX_WINDOW_MS,
        encode_state,
        eval::distinct_valid,
        evaluate,
        governance::{required_signatures, POLICY_APPROVAL_DOMAIN, POLICY_VETO_DOMAIN},
        AdminSignature, Ledger, Offered, PolicyState, SignedPolicy,
    },
    refusal::{rule, Refusal},
};
use quorate_wire::{
    admin as apb,
    convert::policy::{signed_to_proto, status},
    convert::policy_file,
    manifest::Manifest,
    policy as ppb,
};
use serde::{Deserialize, Serialize};

use crate::{
    state::coord_rule,
    store::{Status, Store, StoreError},
};

const META_STATE: &str = "policy_state";
const META_DESK: &str = "policy_desk";

/// A proposal as the coordinator tracks it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProposalRec {
    /// File form of the signed policy (document + approvals so far).
    signed: String,
    /// collecting | timelocked | applied | vetoed | superseded
    state: String,
    effective_at_ms: u64,
    /// Filing order, for pruning and paging.
    #[serde(default)]
    seq: u64,
    /// The admin whose approval came with the proposal (hex).
    #[serde(default)]
    proposer: String,
    /// Its version, approvals and approvals required when last filed (what a decided
    /// proposal still shows once its document is dropped).
    #[serde(default)]
    version: u64,
    #[serde(default)]
    approvals: u32,
    #[serde(default)]
    required: u32,
}

impl ProposalRec {
    fn version(&self) -> u64 {
        if self.version > 0 {
            return self.version;
        }
        policy_file::signed_from_json(&self.signed).map_or(0, |s| s.doc.version)
    }
}

/// Open (collecting) proposals one admin may have; a newer one supersedes the oldest.
pub const MAX_OPEN_PER_ADMIN: usize = 8;
/// Decided proposals (applied, vetoed, superseded) remembered; older ones are dropped (the
/// applied versions stay in the history, which is the chain admins verify).
pub const MAX_DECIDED: usize = 64;
/// The newest decided proposals keep their documents and are shown by `GetPolicy`, besides
/// every open one; older decided ones keep only their hash, version, state and approvals.
pub const DECIDED_SHOWN: usize = 16;

fn is_open(state: &str) -> bool {
    matches!(state, "collecting" | "timelocked")
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Desk {
    /// Every version accepted (applied or time-locked), file form, in version order.
    history: Vec<String>,
    /// By hash.
    proposals: BTreeMap<String, ProposalRec>,
    /// Vetoes: (hash hex, admin hex, signature hex).
    vetoes: Vec<(String, String, String)>,
    /// Next proposal sequence number.
    #[serde(default)]
    next_seq: u64,
}

impl Desk {
    /// Keeps the desk bounded: each admin's open proposals beyond [`MAX_OPEN_PER_ADMIN`] are
    /// superseded (oldest first), decided proposals beyond [`MAX_DECIDED`] are dropped, and
    /// vetoes are kept only while their proposal could still matter (a signer catching up
    /// needs the veto of a version newer than the one in force).
    fn prune(&mut self, active_version: u64) {
        let mut open: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        for (h, p) in &self.proposals {
            if p.state == "collecting" {
                open.entry(p.proposer.clone())
                    .or_default()
                    .push((p.seq, h.clone()));
            }
        }
        for (_, mut mine) in open {
            mine.sort();
            let excess = mine.len().saturating_sub(MAX_OPEN_PER_ADMIN);
            for (_, h) in mine.into_iter().take(excess) {
                if let Some(p) = self.proposals.get_mut(&h) {
                    p.state = "superseded".into();
                }
            }
        }
        let mut decided: Vec<(u64, String, bool)> = self
            .proposals
            .iter()
            .filter(|(_, p)| !is_open(&p.state))
            .map(|(h, p)| (p.seq, h.clone(), self.keep(h, p)))
            .collect();
        decided.sort();
        decided.reverse();
        for (i, (_, h, keep)) in decided.into_iter().enumerate() {
            if i >= MAX_DECIDED && !keep {
                // An applied version lives on in the history; only the proposal record goes.
                self.proposals.remove(&h);
            } else if i >= DECIDED_SHOWN {
                // Older decided proposals keep what they were, not their document.
                if let Some(p) = self.proposals.get_mut(&h) {
                    if !p.signed.is_empty() {
                        p.version = p.version();
                        p.signed.clear();
                    }
                }
            }
        }
        let proposals = &self.proposals;
        self.vetoes.retain(|(h, _, _)| {
            proposals
                .get(h)
                .is_some_and(|p| p.version() > active_version)
        });
        // At most MAX_VETOES for the version in force (as on signers): the oldest go first.
        let excess = self.vetoes.len().saturating_sub(MAX_VETOES);
        self.vetoes.drain(..excess);
    }

    /// True if the proposal's record must stay: open, or vetoed with a veto still carried.
    fn keep(&self, hash: &str, p: &ProposalRec) -> bool {
        is_open(&p.state) || self.vetoes.iter().any(|(h, _, _)| h == hash)
    }
}

struct Inner {
    state: Option<PolicyState>,
    desk: Desk,
    ledger: Ledger,
    /// Bucket index of the last prune: pruning runs at most once a bucket.
    pruned_at: u64,
}

/// What a signer must be sent to catch up.
pub enum Catchup {
    /// A version.
    Update(ppb::SignedPolicy),
    /// A veto.
    Veto([u8; 32], AdminSignature),
}

/// Policy at the coordinator.
pub struct PolicyDesk {
    inner: Mutex<Inner>,
    store: Store,
}

fn bad(tag: &str, m: impl Into<String>) -> Refusal {
    Refusal::permanent(tag, m)
}

fn parse_signed(s: &str) -> Result<SignedPolicy, StoreError> {
    policy_file::signed_from_json(s).map_err(|e| StoreError::Corrupt {
        key: META_DESK.into(),
        reason: e,
    })
}

fn verify_one(
    admins: &std::collections::BTreeSet<IdentityPublic>,
    domain: &str,
    hash: &[u8; 32],
    sig: &AdminSignature,
) -> Result<(), Refusal> {
    if distinct_valid(admins, domain, &[hash], std::slice::from_ref(sig)) == 1 {
        Ok(())
    } else {
        Err(bad(
            rule::POLICY_UPDATE_SIGNATURES,
            format!(
                "the signature by {} is not a valid signature of an admin of the policy in force",
                sig.admin
            ),
        ))
    }
}

impl PolicyDesk {
    /// Loads the stored policy; installs `genesis` if there is none yet. Rebuilds the
    /// coordinator's ledger from the withdrawals signed within the longest window.
    pub fn load(
        store: Store,
        manifest: &Manifest,
        genesis: Option<SignedPolicy>,
        now: u64,
    ) -> Result<Self, String> {
        let mut state = store
            .get_meta(META_STATE)
            .map_err(|e| e.to_string())?
            .map(|b| decode_state(&b))
            .transpose()
            .map_err(|e| e.to_string())?;
        let mut desk: Desk = store
            .get_meta(META_DESK)
            .map_err(|e| e.to_string())?
            .map(|b| serde_json::from_slice(&b))
            .transpose()
            .map_err(|e| format!("stored policy desk: {e}"))?
            .unwrap_or_default();
        if state.is_none() {
            if let Some(g) = genesis {
                let s = manifest
                    .genesis(g.clone())
                    .map_err(|r| format!("genesis policy refused: {r}"))?;
                desk.history.push(policy_file::signed_to_json(&g));
                let desk_bytes =
                    serde_json::to_vec(&desk).map_err(|e| format!("policy desk: {e}"))?;
                store
                    .put_meta(META_DESK, &desk_bytes)
                    .map_err(|e| e.to_string())?;
                store
                    .put_meta(META_STATE, &encode_state(&s))
                    .map_err(|e| e.to_string())?;
                tracing::info!(version = 1, hash = %s.active().hash_hex(), "genesis policy installed");
                state = Some(s);
            }
        }
        let mut ledger = Ledger::new();
        for r in store
            .with_status(Status::Signed)
            .map_err(|e| e.to_string())?
        {
            if r.updated_ms + MAX_WINDOW_MS < now {
                continue;
            }
            if let Some(i) = hex::decode(&r.intent)
                .ok()
                .and_then(|b| WithdrawalIntent::decode(&b).ok())
            {
                ledger.debit(i.chain, &i.asset, &i.destination, i.amount, r.updated_ms);
            }
        }
        Ok(Self {
            inner: Mutex::new(Inner {
                state,
                desk,
                ledger,
                pruned_at: 0,
            }),
            store,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, inner: &Inner) -> Result<(), StoreError> {
        // Never an empty desk in place of the real one.
        let desk = serde_json::to_vec(&inner.desk).map_err(|e| StoreError::Corrupt {
            key: META_DESK.into(),
            reason: format!("encoding: {e}"),
        })?;
        let state = inner.state.as_ref().map(encode_state);
        let mut kvs: Vec<(&str, &[u8])> = vec![(META_DESK, &desk)];
        if let Some(s) = &state {
            kvs.push((META_STATE, s));
        }
        // Both in one write and one flush.
        self.store.put_metas(&kvs)
    }

    fn tick(inner: &mut Inner, now: u64) {
        if let Some(s) = inner.state.as_mut() {
            if s.tick(now) {
                let h = s.active().hash_hex();
                if let Some(p) = inner.desk.proposals.get_mut(&h) {
                    p.state = "applied".into();
                }
            }
        }
    }

    /// Backend keys of the policy in force (empty without a policy).
    pub fn backend_keys(&self, now: u64) -> Vec<quorate_core::backend::BackendKey> {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        inner
            .state
            .as_ref()
            .map(|s| s.active().backend_keys())
            .unwrap_or_default()
    }

    /// The early answer: the coordinator's own evaluation.
    pub fn precheck(
        &self,
        intent: &WithdrawalIntent,
        approvals: &[AdminSignature],
        now: u64,
    ) -> Result<(), Refusal> {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let Some(s) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                rule::POLICY_MISSING,
                "the coordinator has no policy installed",
            ));
        };
        evaluate(s.active(), &inner.ledger, intent, approvals, now)
    }

    /// How the group signs for `intent` under the policy in force.
    pub fn chain_format(
        &self,
        intent: &WithdrawalIntent,
        solana_wallet: Option<&[u8; 32]>,
    ) -> Result<ChainFormat, Refusal> {
        let inner = self.lock();
        let Some(s) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                rule::POLICY_MISSING,
                "the coordinator has no policy installed",
            ));
        };
        quorate_core::message::chain_format_for(s.active(), intent, solana_wallet)
    }

    /// `f` of the policy in force; refused without one.
    pub fn with_active<T>(
        &self,
        f: impl FnOnce(&quorate_core::policy::PolicyDoc) -> T,
    ) -> Result<T, Refusal> {
        let inner = self.lock();
        let Some(s) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                rule::POLICY_MISSING,
                "the coordinator has no policy installed",
            ));
        };
        Ok(f(s.active()))
    }

    /// The vault action the policy in force lists for (`chain`, `nonce`).
    pub fn vault_admin(
        &self,
        chain: quorate_core::address::Chain,
        nonce: u64,
    ) -> Result<quorate_core::message::VaultAdmin, Refusal> {
        let inner = self.lock();
        let Some(s) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                rule::POLICY_MISSING,
                "the coordinator has no policy installed",
            ));
        };
        quorate_core::message::vault_admin(s.active(), chain, nonce)
    }

    /// The longest velocity window of the policy in force (0 without limits).
    pub fn longest_window_ms(&self) -> u64 {
        self.lock()
            .state
            .as_ref()
            .and_then(|s| s.active().velocity.iter().map(|v| v.window_ms).max())
            .unwrap_or(0)
    }

    /// Admins of the policy in force.
    pub fn admins(&self) -> std::collections::BTreeSet<IdentityPublic> {
        self.lock()
            .state
            .as_ref()
            .map(|s| s.active().admin_keys())
            .unwrap_or_default()
    }

    /// Approvals required for `intent` (0 if none).
    pub fn approvals_required(&self, intent: &WithdrawalIntent) -> u32 {
        let inner = self.lock();
        inner
            .state
            .as_ref()
            .and_then(|s| s.active().asset(intent.chain, &intent.asset).cloned())
            .filter(|a| intent.amount > a.approval_threshold)
            .map_or(0, |a| u32::from(a.approvals_required))
    }

    /// Counts a signed withdrawal in the coordinator's ledger.
    pub fn debit(&self, intent: &WithdrawalIntent, now: u64) {
        let mut inner = self.lock();
        // Buckets past every window are dropped (once a minute), so memory stays bounded.
        let bucket = now / quorate_core::policy::ledger::BUCKET_MS;
        if bucket != inner.pruned_at {
            inner.pruned_at = bucket;
            inner.ledger.prune(now);
        }
        inner.ledger.debit(
            intent.chain,
            &intent.asset,
            &intent.destination,
            intent.amount,
            now,
        );
    }

    /// Versions newer than `version`, then every veto, for a signer catching up.
    pub fn catchup(&self, version: u64) -> Vec<Catchup> {
        let inner = self.lock();
        let mut out: Vec<Catchup> = inner
            .desk
            .history
            .iter()
            .filter_map(|s| policy_file::signed_from_json(s).ok())
            .filter(|s| s.doc.version > version)
            .filter(|s| {
                inner
                    .desk
                    .proposals
                    .get(&s.doc.hash_hex())
                    .is_none_or(|p| p.state != "vetoed")
            })
            .map(|s| Catchup::Update(signed_to_proto(&s)))
            .collect();
        for (h, admin, sig) in &inner.desk.vetoes {
            if let (Some(h), Ok(admin), Ok(signature)) = (
                hex::decode(h)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok()),
                IdentityPublic::from_hex(admin),
                hex::decode(sig),
            ) {
                out.push(Catchup::Veto(h, AdminSignature { admin, signature }));
            }
        }
        out
    }

    /// A new proposal with at least one valid admin approval. Returns the proposal and,
    /// if it is complete, the version to send to the signers.
    pub fn propose(
        &self,
        signed: SignedPolicy,
        now: u64,
    ) -> Result<(apb::Proposal, Option<ppb::SignedPolicy>), Refusal> {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let Some(s) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                rule::POLICY_MISSING,
                "no policy installed",
            ));
        };
        let cur = s.active();
        let doc = &signed.doc;
        if doc.version != cur.version + 1 || doc.prev_hash != cur.hash_hex() {
            return Err(bad(
                rule::POLICY_UPDATE_VERSION,
                format!(
                    "a proposal must be version {} with prev_hash {} (the version in force); it is version {}",
                    cur.version + 1,
                    cur.hash_hex(),
                    doc.version
                ),
            ));
        }
        let hash = doc.hash();
        let admins = cur.admin_keys();
        if distinct_valid(
            &admins,
            POLICY_APPROVAL_DOMAIN,
            &[&hash],
            &signed.signatures,
        ) == 0
        {
            return Err(bad(
                rule::POLICY_UPDATE_SIGNATURES,
                "a proposal needs the proposer's valid admin signature",
            ));
        }
        let key = hex::encode(hash);
        if inner.desk.vetoes.iter().any(|(h, _, _)| *h == key) {
            return Err(bad(
                rule::POLICY_UPDATE_VETOED,
                format!("proposal {key} was vetoed; propose a different document"),
            ));
        }
        if let Some(p) = inner.desk.proposals.get(&key) {
            if p.state != "collecting" {
                return Err(bad(
                    rule::POLICY_UPDATE_VETOED,
                    format!("proposal {key} is already {}", p.state),
                ));
            }
        }
        let mut sigs = inner
            .desk
            .proposals
            .get(&key)
            .and_then(|p| policy_file::signed_from_json(&p.signed).ok())
            .map(|p| p.signatures)
            .unwrap_or_default();
        for sig in signed.signatures {
            if !sigs.iter().any(|s| s.admin == sig.admin) {
                sigs.push(sig);
            }
        }
        let merged = SignedPolicy {
            doc: signed.doc,
            signatures: sigs,
        };
        self.file(&mut inner, merged, now)
    }

    /// Adds an approval to a collecting proposal.
    pub fn approve(
        &self,
        hash_hex: &str,
        sig: AdminSignature,
        now: u64,
    ) -> Result<(apb::Proposal, Option<ppb::SignedPolicy>), Refusal> {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let Some(p) = inner.desk.proposals.get(hash_hex).cloned() else {
            return Err(bad(
                rule::POLICY_UPDATE_INVALID,
                format!("no proposal has hash {hash_hex}"),
            ));
        };
        if p.state != "collecting" {
            return Err(bad(
                rule::POLICY_UPDATE_VETOED,
                format!("proposal {hash_hex} is already {}", p.state),
            ));
        }
        let mut signed = parse_signed(&p.signed)
            .map_err(|e| Refusal::temporary(rule::POLICY_UPDATE_INVALID, e.to_string()))?;
        let admins = inner
            .state
            .as_ref()
            .map(|s| s.active().admin_keys())
            .unwrap_or_default();
        verify_one(&admins, POLICY_APPROVAL_DOMAIN, &signed.doc.hash(), &sig)?;
        if !signed.signatures.iter().any(|s| s.admin == sig.admin) {
            signed.signatures.push(sig);
        }
        self.file(&mut inner, signed, now)
    }

    /// Records `signed` as a proposal and, once it has enough approvals, offers it to the
    /// coordinator's own state.
    fn file(
        &self,
        inner: &mut Inner,
        signed: SignedPolicy,
        now: u64,
    ) -> Result<(apb::Proposal, Option<ppb::SignedPolicy>), Refusal> {
        let key = signed.doc.hash_hex();
        let Some(state) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                rule::POLICY_MISSING,
                "no policy installed",
            ));
        };
        let cur = state.active().clone();
        let need = required_signatures(&cur, &signed.doc);
        let have = distinct_valid(
            &cur.admin_keys(),
            POLICY_APPROVAL_DOMAIN,
            &[&signed.doc.hash()],
            &signed.signatures,
        );
        let (seq, proposer) = match inner.desk.proposals.get(&key) {
            Some(p) => (p.seq, p.proposer.clone()),
            None => {
                inner.desk.next_seq += 1;
                let proposer = signed
                    .signatures
                    .iter()
                    .find(|s| {
                        distinct_valid(
                            &cur.admin_keys(),
                            POLICY_APPROVAL_DOMAIN,
                            &[&signed.doc.hash()],
                            std::slice::from_ref(s),
                        ) == 1
                    })
                    .map(|s| s.admin.to_string())
                    .unwrap_or_default();
                (inner.desk.next_seq, proposer)
            }
        };
        let mut rec = ProposalRec {
            signed: policy_file::signed_to_json(&signed),
            state: "collecting".into(),
            effective_at_ms: 0,
            seq,
            proposer,
            version: signed.doc.version,
            approvals: have as u32,
            required: need as u32,
        };
        let mut send = None;
        if have >= need {
            let mut next = state.clone();
            match next.offer(signed.clone(), now)? {
                Offered::Applied | Offered::Known => rec.state = "applied".into(),
                Offered::Pending { effective_at_ms } => {
                    rec.state = "timelocked".into();
                    rec.effective_at_ms = effective_at_ms;
                }
            }
            // Anything else pending or collecting is superseded.
            let mut gone = Vec::new();
            for (h, p) in inner.desk.proposals.iter_mut() {
                if *h != key && matches!(p.state.as_str(), "collecting" | "timelocked") {
                    p.state = "superseded".into();
                    gone.push(p.signed.clone());
                }
            }
            inner.desk.history.retain(|h| !gone.contains(h));
            inner.desk.history.push(rec.signed.clone());
            inner.state = Some(next);
            send = Some(signed_to_proto(&signed));
        }
        inner.desk.proposals.insert(key.clone(), rec);
        let active = inner.state.as_ref().map_or(0, |s| s.active().version);
        inner.desk.prune(active);
        self.save(inner)
            .map_err(|e| Refusal::temporary(coord_rule::STORAGE, e.to_string()))?;
        Ok((Self::view(inner, &key, &cur), send))
    }

    /// A version after ours that t signers hold, in force (`applied`) or pending until
    /// `effective_at_ms` on their clocks, as one of them sent it: another coordinator carried
    /// it. Filed like an admin's proposal arriving with its approvals (it must build on our
    /// version in force and carry the quorum), superseding what we had pending; then in force
    /// here if it is on the signers, or pending until their time. `Ok(false)`: nothing to do.
    pub fn learn(
        &self,
        signed: SignedPolicy,
        applied: bool,
        effective_at_ms: u64,
        now: u64,
    ) -> Result<bool, Refusal> {
        let key = signed.doc.hash_hex();
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let Some(state) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                rule::POLICY_MISSING,
                "no policy installed",
            ));
        };
        if state.active().hash_hex() == key || inner.desk.vetoes.iter().any(|(h, _, _)| *h == key) {
            return Ok(false);
        }
        let ours_pending = state
            .pending
            .as_ref()
            .is_some_and(|p| p.policy.doc.hash_hex() == key);
        if ours_pending && !applied {
            return Ok(false);
        }
        if !ours_pending {
            let (proposal, offered) = self.file(&mut inner, signed, now)?;
            if offered.is_none() {
                return Err(bad(
                    rule::POLICY_UPDATE_SIGNATURES,
                    format!(
                        "version {} carries {} of the {} admin signatures it needs",
                        proposal.version, proposal.approvals, proposal.required
                    ),
                ));
            }
        }
        let pending_at = inner
            .state
            .as_ref()
            .and_then(|s| s.pending.as_ref())
            .filter(|p| p.policy.doc.hash_hex() == key)
            .map(|p| p.effective_at_ms);
        match pending_at {
            // In force on t signers: in force here now.
            Some(at) if applied => Self::tick(&mut inner, at.max(now)),
            // Pending here as long as on the signers.
            Some(_) if effective_at_ms > 0 => {
                if let Some(p) = inner.state.as_mut().and_then(|s| s.pending.as_mut()) {
                    p.effective_at_ms = effective_at_ms;
                }
                if let Some(r) = inner.desk.proposals.get_mut(&key) {
                    r.effective_at_ms = effective_at_ms;
                }
            }
            _ => {}
        }
        self.save(&inner)
            .map_err(|e| Refusal::temporary(coord_rule::STORAGE, e.to_string()))?;
        Ok(true)
    }

    /// Puts our pending version `hash` in force now (t signers have it in force).
    pub fn apply_pending(&self, hash: &str, now: u64) -> Result<bool, Refusal> {
        let mut inner = self.lock();
        let at = inner
            .state
            .as_ref()
            .and_then(|s| s.pending.as_ref())
            .filter(|p| p.policy.doc.hash_hex() == hash)
            .map(|p| p.effective_at_ms);
        let Some(at) = at else {
            return Ok(false);
        };
        Self::tick(&mut inner, at.max(now));
        self.save(&inner)
            .map_err(|e| Refusal::temporary(coord_rule::STORAGE, e.to_string()))?;
        Ok(true)
    }

    /// The hash of the version pending here, if any.
    pub fn pending_hash(&self) -> Option<String> {
        self.lock()
            .state
            .as_ref()
            .and_then(|s| s.pending.as_ref())
            .map(|p| p.policy.doc.hash_hex())
    }

    /// True if a veto of `hash_hex` is recorded here.
    pub fn has_veto(&self, hash_hex: &str) -> bool {
        self.lock()
            .desk
            .vetoes
            .iter()
            .any(|(h, _, _)| h == hash_hex)
    }

    /// True if `hash_hex` is a proposal a veto can still stop (collecting or time-locked).
    pub fn vetoable(&self, hash_hex: &str) -> bool {
        self.lock()
            .desk
            .proposals
            .get(hash_hex)
            .is_some_and(|p| matches!(p.state.as_str(), "collecting" | "timelocked"))
    }

    /// Any single admin vetoes a collecting or time-locked proposal.
    pub fn veto(
        &self,
        hash_hex: &str,
        sig: AdminSignature,
        now: u64,
    ) -> Result<(apb::Proposal, bool), Refusal> {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let hash: [u8; 32] = hex::decode(hash_hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad(rule::POLICY_VETO_INVALID, "hash must be 64 hex digits"))?;
        let Some(state) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                rule::POLICY_MISSING,
                "no policy installed",
            ));
        };
        let cur = state.active().clone();
        let admins = cur.admin_keys();
        verify_one(&admins, POLICY_VETO_DOMAIN, &hash, &sig)
            .map_err(|r| bad(rule::POLICY_VETO_INVALID, r.reason))?;
        let Some(p) = inner.desk.proposals.get(hash_hex).cloned() else {
            return Err(bad(
                rule::POLICY_VETO_INVALID,
                format!("no proposal has hash {hash_hex}"),
            ));
        };
        if !matches!(p.state.as_str(), "collecting" | "timelocked") {
            return Err(bad(
                rule::POLICY_VETO_INVALID,
                format!(
                    "proposal {hash_hex} is {}; only a pending proposal can be vetoed",
                    p.state
                ),
            ));
        }
        let was_timelocked = p.state == "timelocked";
        if was_timelocked {
            let mut next = state.clone();
            next.veto(&hash, &sig, now)?;
            inner.state = Some(next);
            inner.desk.history.retain(|h| h != &p.signed);
        }
        // Carried to signers that catch up (a signer then refuses the document if it ever
        // arrives), and refused here if filed again, while the version in force lasts.
        inner.desk.vetoes.push((
            hash_hex.to_string(),
            sig.admin.to_string(),
            hex::encode(&sig.signature),
        ));
        if let Some(p) = inner.desk.proposals.get_mut(hash_hex) {
            p.state = "vetoed".into();
        }
        let active = inner.state.as_ref().map_or(0, |s| s.active().version);
        inner.desk.prune(active);
        self.save(&inner)
            .map_err(|e| Refusal::temporary(coord_rule::STORAGE, e.to_string()))?;
        Ok((Self::view(&inner, hash_hex, &cur), was_timelocked))
    }

    fn view(inner: &Inner, key: &str, base: &quorate_core::policy::PolicyDoc) -> apb::Proposal {
        let Some(p) = inner.desk.proposals.get(key) else {
            return apb::Proposal::default();
        };
        let Ok(signed) = policy_file::signed_from_json(&p.signed) else {
            // Decided and pruned: what it was, without its document.
            return apb::Proposal {
                hash: key.to_string(),
                version: p.version,
                approvals: p.approvals,
                required: p.required,
                state: p.state.clone(),
                effective_at_ms: p.effective_at_ms,
                ..Default::default()
            };
        };
        let admins = base.admin_keys();
        apb::Proposal {
            hash: key.to_string(),
            version: signed.doc.version,
            approvals: distinct_valid(
                &admins,
                POLICY_APPROVAL_DOMAIN,
                &[&signed.doc.hash()],
                &signed.signatures,
            ) as u32,
            required: required_signatures(base, &signed.doc) as u32,
            changes: diff(base, &signed.doc)
                .into_iter()
                .map(|c| apb::Change {
                    effect: format!("{:?}", c.effect).to_lowercase(),
                    what: c.what,
                })
                .collect(),
            policy: Some(signed_to_proto(&signed)),
            state: p.state.clone(),
            effective_at_ms: p.effective_at_ms,
        }
    }

    /// Signed versions from `from` on (applied or time-locked, oldest first), at most `limit`
    /// of them and no more document bytes than `max_bytes` past the first.
    pub fn chain(&self, from: u64, limit: usize, max_bytes: usize) -> apb::PolicyChain {
        let inner = self.lock();
        let mut out = apb::PolicyChain::default();
        let mut bytes = 0usize;
        let mut full = false;
        for s in inner
            .desk
            .history
            .iter()
            .filter_map(|s| policy_file::signed_from_json(s).ok())
        {
            out.head_version = out.head_version.max(s.doc.version);
            if full || s.doc.version < from || out.versions.len() >= limit {
                continue;
            }
            let p = signed_to_proto(&s);
            bytes += p.document.len();
            // The page stays consecutive: once one version does not fit, none after it goes.
            full = !out.versions.is_empty() && bytes > max_bytes;
            if !full {
                out.versions.push(p);
            }
        }
        out
    }

    /// The coordinator's own policy status (version 0 without a policy).
    pub fn status(&self, now: u64) -> ppb::PolicyStatus {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        status(inner.state.as_ref())
    }

    /// The policy view for `GetPolicy`.
    pub fn get(&self, now: u64) -> apb::PolicyView {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let Some(state) = inner.state.as_ref() else {
            return apb::PolicyView::default();
        };
        // Proposals are shown against the version they were made on.
        let history: BTreeMap<u64, quorate_core::policy::PolicyDoc> = inner
            .desk
            .history
            .iter()
            .filter_map(|s| policy_file::signed_from_json(s).ok())
            .map(|s| (s.doc.version, s.doc))
            .collect();
        let active = state.active().clone();
        let mut decided: Vec<(u64, &String)> = inner
            .desk
            .proposals
            .iter()
            .filter(|(_, p)| !is_open(&p.state))
            .map(|(k, p)| (p.seq, k))
            .collect();
        decided.sort();
        let shown: std::collections::BTreeSet<&String> = decided
            .iter()
            .rev()
            .take(DECIDED_SHOWN)
            .map(|(_, k)| *k)
            .collect();
        let proposals = inner
            .desk
            .proposals
            .iter()
            .filter(|(k, p)| is_open(&p.state) || shown.contains(k))
            .map(|(k, p)| {
                let base = history
                    .get(&p.version().saturating_sub(1))
                    .unwrap_or(&active);
                Self::view(&inner, k, base)
            })
            .collect();
        apb::PolicyView {
            status: Some(status(Some(state))),
            current: Some(signed_to_proto(&state.current)),
            proposals,
            signers: vec![],
        }
    }
}
