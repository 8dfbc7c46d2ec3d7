//! One signer's decisions around I/O: it answers each coordinator request from its own state,
//! its own manifest and its own policy. Everything it checks, it checks itself.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock},
};

use quorate_core::{
    atrest::Kek,
    audit::{Chain, Event, RefusalThrottle},
    clock::Clock,
    identity::IdentitySecret,
    intent::WithdrawalIntent,
    link::{Answer, Hello, Malformed, Request},
    message::Scheme,
    policy::{decode_state, Ledger, PolicyState},
    refusal::{Refusal, Rule},
};
use quorate_wire::manifest::Manifest;

use crate::store::SignerStore;

mod audit;
mod dkg;
mod groups;
mod ledger;
mod metrics;
mod policy;
mod sign;
mod solana;
pub use groups::{meta_key, share_purpose, LinkId};
mod refresh;
mod repair;
mod status;
mod sync;
mod vault;
use dkg::DkgStep;
use groups::{DkgProgress, Ed, Group, Held, Secp};
use metrics::LinkState;
use repair::RepairStep;
pub use sign::MAX_PRESIGN_BATCH;
pub use status::{LocalFreeze, FREEZE_FILE};

/// Metadata keys.
pub const META_KEY_SHARE: &str = "key_share";
pub const META_PUBLIC_KEY_PACKAGE: &str = "public_key_package";
pub const META_GROUP_KEY: &str = "group_key";
pub use repair::META_KEY_EPOCH;
const META_POLICY_STATE: &str = "policy_state";

/// DKGs in progress, one per key group, and the session ids used lately (shared by both).
#[derive(Default)]
struct DkgSlot {
    secp: Option<DkgProgress<Secp>>,
    ed: Option<DkgProgress<Ed>>,
    /// Repairs this signer helps with: (session id, round-1 state), one per key group.
    repair_secp: Option<(Vec<u8>, quorate_core::repair::HelperState<Secp>)>,
    repair_ed: Option<(Vec<u8>, quorate_core::repair::HelperState<Ed>)>,
    used: std::collections::VecDeque<Vec<u8>>,
}

/// A signer's live state.
pub struct Node {
    /// Our name.
    pub name: String,
    /// Our FROST identifier.
    pub me: u16,
    manifest: Manifest,
    identity: IdentitySecret,
    kek: Kek,
    store: Arc<dyn SignerStore>,
    /// The operator's local emergency stop.
    local_freeze: LocalFreeze,
    /// The local freeze as last seen, so that setting and lifting it are recorded once each.
    local_frozen_seen: std::sync::atomic::AtomicBool,
    /// Governed policy and velocity ledger: evaluation and debit happen under this one lock,
    /// so two requests can never both spend the same headroom.
    policy: Mutex<PolicyGuard>,
    max_clock_skew_ms: u64,
    /// The secp256k1 group: intent digests and the EVM/Tron vault.
    secp: Group<Secp>,
    /// The Ed25519 group: Solana.
    ed: Group<Ed>,
    dkg: Mutex<DkgSlot>,
    /// The signer's only source of time. Nonce lifetimes run on its monotonic reading, not
    /// the wall clock, so a clock step can never extend one.
    clock: Arc<dyn Clock>,
    /// Whether the link to the coordinator is up, and the unix ms of its last message.
    /// Each coordinator link's address, whether it is up, and its last message (Unix ms).
    links: Mutex<BTreeMap<LinkId, LinkState>>,
    /// Held while a sync is answered: one at a time, whichever coordinator asks.
    sync_slot: Mutex<()>,
    /// `notAfter` of this signer's TLS certificate, Unix seconds (0: not known).
    cert_expiry: std::sync::atomic::AtomicI64,
    /// Head of the audit log (S7). Taken after `policy` when both are held.
    audit: Mutex<Chain>,
    /// Refusal records per kind and second (junk is counted, not recorded one by one).
    refusals: Mutex<RefusalThrottle>,
    /// Counters and histograms for the metrics endpoint.
    pub metrics: quorate_wire::metrics::Metrics,
}

/// The policy in force (none before genesis) and the velocity ledger.
struct PolicyGuard {
    state: Option<PolicyState>,
    ledger: Ledger,
    /// Bucket index of the last prune: pruning runs at most once a bucket.
    pruned_at: u64,
    /// The backend keys of the policy version in force, decoded once.
    backend_keys: Option<(u64, Arc<Vec<quorate_core::backend::BackendKey>>)>,
}

/// Limits applied by a node.
pub struct NodeLimits {
    /// Most outstanding nonces.
    pub nonce_limit: usize,
    /// Nonce lifetime.
    pub nonce_ttl_ms: u64,
    /// Allowed clock skew for intent creation times.
    pub max_clock_skew_ms: u64,
}

/// What a node is built from besides its manifest and secrets: where it stores, how its
/// operator stops it, its limits and its clock.
pub struct NodeParts {
    /// The durable store.
    pub store: Arc<dyn SignerStore>,
    /// The operator's local emergency stop.
    pub local_freeze: LocalFreeze,
    /// Limits.
    pub limits: NodeLimits,
    /// The source of time.
    pub clock: Arc<dyn Clock>,
}

pub fn key_share_purpose(name: &str) -> String {
    format!("quorate/key-share/v1/{name}")
}

/// Purpose label of the sealed identity key file.
pub fn identity_purpose(name: &str) -> String {
    format!("quorate/identity-key/v1/{name}")
}

/// A refusal and the participants it shows misbehaved: how a DKG or repair step fails.
pub(super) struct Abort {
    refusal: Refusal,
    culprits: Vec<u16>,
}

impl From<Refusal> for Abort {
    /// A refusal of this signer's own, naming nobody.
    fn from(refusal: Refusal) -> Self {
        Self {
            refusal,
            culprits: vec![],
        }
    }
}

impl From<Abort> for Answer {
    fn from(a: Abort) -> Self {
        Answer::Refused {
            refusal: a.refusal,
            culprits: a.culprits,
        }
    }
}

impl Node {
    /// Builds a node, restoring its key share from the store if it has one.
    pub fn new(
        name: String,
        manifest: Manifest,
        identity: IdentitySecret,
        kek: Kek,
        parts: NodeParts,
    ) -> Result<Self, String> {
        let NodeParts {
            store,
            local_freeze,
            limits,
            clock,
        } = parts;
        let entry = manifest
            .signer_by_name(&name)
            .ok_or_else(|| format!("signer `{name}` is not in the manifest"))?;
        if entry.identity_key != identity.public() {
            return Err(format!(
                "identity key {} does not match the manifest's {} for `{name}`",
                identity.public(),
                entry.identity_key
            ));
        }
        let me = entry.identifier;
        let ids: Vec<u16> = manifest.signers.iter().map(|s| s.identifier).collect();
        let state = store
            .get_meta(META_POLICY_STATE)
            .map_err(|e| e.to_string())?
            .map(|b| decode_state(&b))
            .transpose()
            .map_err(|e| e.to_string())?;
        let (high_water, records) = store.load_ledger().map_err(|e| e.to_string())?;
        let ledger = Ledger::load(high_water, records);
        let last = store.last_audit().map_err(|e| e.to_string())?;
        let node = Self {
            audit: Mutex::new(Chain::resume(last.as_ref())),
            refusals: Mutex::new(RefusalThrottle::new()),
            me,
            manifest,
            identity,
            store,
            local_frozen_seen: std::sync::atomic::AtomicBool::new(local_freeze.is_frozen()),
            local_freeze,
            policy: Mutex::new(PolicyGuard {
                state,
                ledger,
                pruned_at: 0,
                backend_keys: None,
            }),
            max_clock_skew_ms: limits.max_clock_skew_ms,
            secp: Group::new(&ids, limits.nonce_limit, limits.nonce_ttl_ms)?,
            ed: Group::new(&ids, limits.nonce_limit, limits.nonce_ttl_ms)?,
            metrics: quorate_wire::metrics::Metrics::new(),
            dkg: Mutex::new(DkgSlot::default()),
            clock,
            links: Mutex::new(BTreeMap::new()),
            cert_expiry: std::sync::atomic::AtomicI64::new(0),
            sync_slot: Mutex::new(()),
            name,
            kek,
        };
        node.restore_share::<Secp>()?;
        node.restore_share::<Ed>()?;
        node.audit(
            Event::new(quorate_core::audit::kind::NODE_STARTED)
                .with("node", &node.name)
                .with("version", env!("CARGO_PKG_VERSION"))
                .with("group_key", hex::encode(node.group_key()))
                .with("ed25519_group_key", hex::encode(node.ed25519_group_key())),
            true,
        );
        Ok(node)
    }

    /// Opens this group's sealed share, if the store has one.
    fn restore_share<C: Held>(&self) -> Result<(), String> {
        let Some(sealed) = self
            .store
            .get_meta(&C::meta(META_KEY_SHARE))
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let plain = self
            .kek
            .open(&C::share_purpose(&self.name), &sealed)
            .map_err(|e| e.to_string())?;
        let kp = frost_core::keys::KeyPackage::<C>::deserialize(&plain)
            .map_err(|e| format!("{} key share: {e}", C::SCHEME))?;
        if *kp.identifier() != groups::frost_id::<C>(self.me)? {
            return Err("stored key share belongs to another identifier".into());
        }
        let epoch = self.key_epoch::<C>().map_err(|r| r.reason)?;
        C::group(self).install(kp, epoch)
    }

    fn mono_ms(&self) -> u64 {
        self.clock.mono_ms()
    }

    /// Unix milliseconds now, by this node's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The secp256k1 group key, empty before its DKG.
    pub fn group_key(&self) -> Vec<u8> {
        self.secp.group_key()
    }

    /// The Ed25519 group key (the Solana wallet), empty before its DKG.
    pub fn ed25519_group_key(&self) -> Vec<u8> {
        self.ed.group_key()
    }

    /// The manifest hash.
    pub fn manifest_hash(&self) -> [u8; 32] {
        self.manifest.hash()
    }

    /// Forgets every outstanding nonce. Called whenever a link to the coordinator starts:
    /// commitments handed out over an earlier link (pre-generated ones above all) died with
    /// that link on the coordinator's side, and would otherwise hold room under
    /// `nonce_limit` until they expire, however often the coordinator reconnects.
    pub fn forget_nonces(&self, link: LinkId) {
        lock(&self.secp.nonces).forget(link);
        lock(&self.ed.nonces).forget(link);
    }

    /// Number of outstanding nonces of both groups (for status and tests).
    pub fn outstanding_nonces(&self) -> usize {
        let now = self.mono_ms();
        // Expired nonces are unusable already; counting is a good moment to drop them.
        let secp = lock(&self.secp.nonces).outstanding(now);
        secp + lock(&self.ed.nonces).outstanding(now)
    }

    /// What this signer says first on a new link: who it is, the manifest it pins, the keys
    /// and key epochs it holds and its policy.
    pub fn hello(&self) -> Hello {
        let (key_epoch, ed25519_key_epoch, pending_key_epoch, ed25519_pending_key_epoch) =
            self.key_epochs();
        Hello {
            name: self.name.clone(),
            identifier: self.me,
            version: env!("CARGO_PKG_VERSION").to_string(),
            manifest_hash: self.manifest_hash().to_vec(),
            group_public_key: self.group_key(),
            ed25519_group_public_key: self.ed25519_group_key(),
            policy: self.policy_status(),
            key_epoch,
            ed25519_key_epoch,
            pending_key_epoch,
            ed25519_pending_key_epoch,
        }
    }

    /// Answers one coordinator request. Blocking: it runs the request's curve arithmetic and
    /// its durable writes (a share is flushed before it leaves, S6), so call it from a blocking
    /// thread, as the link does, never on the async reactor.
    pub fn handle(self: &Arc<Self>, link: LinkId, request: Request) -> Answer {
        let what = request.kind().as_str();
        let started = std::time::Instant::now();
        // Kept to name the withdrawal in a refusal's audit record; decoded only then.
        let intent = request.intent().map(<[u8]>::to_vec);
        let answered = match request {
            // Each DKG and repair step runs entirely under the DKG lock, so steps never
            // interleave and repairs and DKGs never mix.
            Request::DkgRound1(r) => Ok(self.dkg_step(DkgStep::Round1(r))),
            Request::DkgRound2(r) => Ok(self.dkg_step(DkgStep::Round2(r))),
            Request::DkgRound3(r) => Ok(self.dkg_step(DkgStep::Round3(r))),
            Request::DkgConfirm(r) => Ok(self.dkg_step(DkgStep::Confirm(r))),
            Request::RepairOffer(r) => Ok(self.repair_step(RepairStep::Offer(r))),
            Request::RepairContribute(r) => Ok(self.repair_step(RepairStep::Contribute(r))),
            Request::RepairFinish(r) => Ok(self.repair_step(RepairStep::Finish(r))),
            Request::RefreshActivate(r) => match r.scheme {
                Scheme::Secp256k1 => self.refresh_activate::<Secp>(&r),
                Scheme::Ed25519 => self.refresh_activate::<Ed>(&r),
            },
            Request::AddHolder(r) => match r.session.scheme {
                Scheme::Secp256k1 => self.add_holder::<Secp>(&r),
                Scheme::Ed25519 => self.add_holder::<Ed>(&r),
            },
            Request::Commit(r) => match r.scheme {
                Scheme::Secp256k1 => self.commit::<Secp>(link, &r),
                Scheme::Ed25519 => self.commit::<Ed>(link, &r),
            },
            Request::Presign(r) => match r.scheme {
                Scheme::Secp256k1 => self.presign::<Secp>(link, &r),
                Scheme::Ed25519 => self.presign::<Ed>(link, &r),
            },
            // Binding and debiting flush to disk before the share leaves (S6).
            Request::Sign(r) => self.sign(link, &r),
            Request::PolicyUpdate(p) => self.policy_update(p),
            Request::PolicyVeto(v) => self.policy_veto(&v),
            Request::Sync(r) => self.sync(&r),
            // One result for the one notice.
            Request::LedgerNotice(n) => self
                .ledger_notices(std::slice::from_ref(&n))
                .and_then(|mut results| results.swap_remove(0))
                .map(|debited| Answer::LedgerAck { debited }),
            Request::LedgerNotices(batch) => self.ledger_batch(&batch, started),
            Request::AuditExport(r) => self.audit_export(&r),
            // May apply a due version or record a local-freeze change, both flushed.
            Request::StatusChallenge { challenge } => self.status_receipt(&challenge),
        };
        let answer = answered.unwrap_or_else(Answer::refused);
        self.account(what, started, intent.as_deref(), &answer, true);
        answer
    }

    /// Answers (and records) a request that did not convert to its typed form at the edge:
    /// refused as its handler refused such input ([`Malformed::refusal`]), counted and
    /// recorded as any refusal of that request. `intent`: the intent it carried, if any.
    pub fn refuse_malformed(
        self: &Arc<Self>,
        malformed: &Malformed,
        intent: Option<&[u8]>,
    ) -> Answer {
        let started = std::time::Instant::now();
        let answer = Answer::refused(malformed.refusal());
        self.account(malformed.request.as_str(), started, intent, &answer, true);
        answer
    }

    /// Counts an answer to a `what` request in the metrics and, if it is a refusal, records
    /// it in the audit log (naming the withdrawal of `intent` if it decodes), flushed if
    /// `durable`. True if it wrote a record (the caller flushes it if not `durable`).
    fn account(
        self: &Arc<Self>,
        what: &'static str,
        started: std::time::Instant,
        intent: Option<&[u8]>,
        answer: &Answer,
        durable: bool,
    ) -> bool {
        let refused = match answer {
            Answer::Refused { refusal, culprits } => Some((refusal, culprits)),
            _ => None,
        };
        let rule = refused.map(|(r, _)| r.rule.as_str());
        let (outcome, rule) = match &rule {
            Some(rule) => ("refused", rule.as_ref()),
            None => ("ok", ""),
        };
        self.metrics.inc(
            "quorate_signer_requests_total",
            "Coordinator requests by kind, outcome (ok, refused) and rule tag.",
            &[("request", what), ("outcome", outcome), ("rule", rule)],
        );
        if what == "sign" {
            self.metrics.observe(
                "quorate_signer_sign_seconds",
                "Time to judge a signing request and release a durable share.",
                started.elapsed().as_secs_f64(),
            );
        }
        if let Some((r, culprits)) = refused {
            let mut e =
                Event::refused(what, rule, &r.reason).with("permanent", r.permanent.to_string());
            let mut withdrawal = String::new();
            if let Some(i) = intent.and_then(|b| WithdrawalIntent::decode(b).ok()) {
                withdrawal = i.id.clone();
                e = e.with("withdrawal", i.id);
            }
            if !culprits.is_empty() {
                let c: Vec<String> = culprits.iter().map(u16::to_string).collect();
                e = e.with("culprits", c.join(","));
            }
            return self.record_refusal(what, rule, &withdrawal, e, durable);
        }
        false
    }
}

fn storage(e: crate::store::StoreError) -> Refusal {
    Refusal::temporary(Rule::SignerStorage, e.to_string())
}

// A poisoned lock means a panic elsewhere mid-update of plain data; the data itself is still
// consistent for our uses (every update is a single assignment), so carry on.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}
