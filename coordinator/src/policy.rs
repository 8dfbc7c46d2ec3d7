//! The coordinator's side of policy: it carries signed versions to the signers, collects admin
//! approvals for proposals, and keeps its own copy of the policy and a ledger for early,
//! friendly answers. The signers' own checks are the ones that count.

mod learn;
mod precheck;
mod proposals;
mod views;

use std::{collections::BTreeMap, sync::Mutex};

use quorate_core::{
    identity::IdentityPublic,
    intent::WithdrawalIntent,
    policy::governance::MAX_VETOES,
    policy::{
        decode_state, doc::MAX_WINDOW_MS, encode_state, eval::distinct_valid, AdminSignature,
        Ledger, PolicyState, SignedPolicy,
    },
    refusal::{Refusal, Rule},
};
use quorate_wire::{convert::policy_file, manifest::Manifest};
use serde::{Deserialize, Serialize};

use crate::store::{Status, Store, StoreError};

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
    Update(SignedPolicy),
    /// A veto.
    Veto([u8; 32], AdminSignature),
}

/// Policy at the coordinator.
pub struct PolicyDesk {
    inner: Mutex<Inner>,
    store: Store,
}

fn bad(rule: Rule, m: impl Into<String>) -> Refusal {
    Refusal::permanent(rule, m)
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
            Rule::PolicyUpdateSignatures,
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
}
