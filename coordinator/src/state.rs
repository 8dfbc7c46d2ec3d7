//! The coordinator's shared state and the two protocols it drives: gathering a threshold
//! signature for a withdrawal, and relaying a DKG. The coordinator is trusted for liveness
//! only: it chooses quorums, relays and aggregates, and every signer re-checks everything.
//!
//! This module holds the state itself, its constructor and the helpers its parts share; each
//! protocol step is a submodule (`signing`, `presign`, `notices`, `dkg_relay`, `refresh`,
//! `repair`, `sync`, ...), and so are `durability` (writing records) and `metrics`.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex, RwLock},
};

use frost_core::keys::PublicKeyPackage;
use quorate_core::{
    audit::{self, Chain, Event},
    clock::Clock,
    fingerprint::group_key_fingerprint,
    message::Scheme,
    refusal::{Refusal, Rule},
};
use quorate_wire::{admin as apb, manifest::Manifest};
use tokio::sync::{broadcast, watch};
use tracing::warn;

mod ceremony;
mod dkg_relay;
mod durability;
mod groups;
mod metrics;
mod notices;
mod policy_sync;
mod presign;
mod refresh;
mod repair;
mod signing;
mod solana_void;
mod sync;
mod vault_admin;
pub(crate) use groups::GroupSuite;
pub use groups::{parse_scheme, Ed, GroupKeys, Secp};
pub use policy_sync::POLICY_RESEND_INTERVAL;

use crate::{
    config::SigningConfig,
    registry::Registry,
    store::{Record, Status, Store, StoreError},
};

/// Shared coordinator state.
pub struct Coordinator {
    /// The pinned manifest.
    pub manifest: Manifest,
    /// Durable store.
    pub store: Store,
    /// Connected signers.
    pub registry: Arc<Registry>,
    /// Signing behaviour.
    pub signing: SigningConfig,
    /// Every withdrawal status change.
    pub events: broadcast::Sender<Record>,
    /// The secp256k1 group's public key package once its DKG has finished.
    pub public_keys: RwLock<Option<PublicKeyPackage<Secp>>>,
    group_key_bytes: RwLock<Option<Vec<u8>>>,
    /// The Ed25519 group's (Solana) once its DKG has finished.
    pub ed_public_keys: RwLock<Option<PublicKeyPackage<Ed>>>,
    /// The key epoch of each group's package (secp256k1, Ed25519): 0 until its first refresh.
    /// A refresh swaps a package and its epoch under this lock.
    key_epochs: RwLock<[u32; 2]>,
    /// DKG progress.
    pub dkg: watch::Sender<apb::DkgStatus>,
    /// Policy: the coordinator's copy, proposals, and what signers must be sent.
    pub policy: crate::policy::PolicyDesk,
    signer_policy: Mutex<BTreeMap<u16, quorate_core::policy::PolicyStatus>>,
    /// `notAfter` (Unix seconds) of our own certificate (key `None`) and of each signer's,
    /// as last presented on its link.
    certificates: Mutex<BTreeMap<Option<u16>, i64>>,
    /// Policy hashes learned from the signers that did not check out (each logged once).
    sync_warned: Mutex<BTreeSet<String>>,
    /// Signers being sent policy catch-up right now (one catch-up per signer at a time: a
    /// document can be megabytes).
    policy_syncing: Mutex<std::collections::BTreeSet<u16>>,
    dkg_running: Mutex<bool>,
    in_flight: Mutex<std::collections::HashSet<String>>,
    /// Head of the coordinator's audit log (S7).
    audit: Mutex<Chain>,
    /// Counters and histograms for the metrics endpoint.
    pub metrics: quorate_wire::metrics::Metrics,
    /// Submit calls waiting for a withdrawal's outcome, by id: told directly, so a waiter is
    /// woken by its own withdrawal only, not by every status change (that is `events`).
    waiting: Mutex<HashMap<String, Vec<tokio::sync::oneshot::Sender<Record>>>>,
    /// Ids with a write in flight (written, not yet flushed), and how many: a reader of one
    /// flushes before it shows it (a signature must be on disk before it leaves, S6). A write
    /// whose flush failed stays counted, so its readers keep flushing.
    undurable: Mutex<HashMap<String, usize>>,
    /// The coordinator's only source of wall-clock time.
    clock: Arc<dyn Clock>,
    /// Live ledger notices waiting for each signer.
    notices: notices::Outbox,
}

/// Metric names (docs/protocol.md lists them).
pub mod metric {
    /// Withdrawals by outcome and rule tag.
    pub const WITHDRAWALS: &str = "quorate_withdrawals_total";
    /// Time from accepting a withdrawal to its stored outcome.
    pub const SIGNING_SECONDS: &str = "quorate_signing_seconds";
}

impl Coordinator {
    /// Unix milliseconds now, by this coordinator's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

impl Coordinator {
    /// Builds the state, loading the group key and failing in-flight withdrawals left by a
    /// previous run (their nonces died with the signers' sessions).
    pub fn new(
        manifest: Manifest,
        store: Store,
        signing: SigningConfig,
        genesis: Option<quorate_core::policy::SignedPolicy>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let policy =
            crate::policy::PolicyDesk::load(store.clone(), &manifest, genesis, clock.now_ms())?;
        let public_keys = match store.public_key_package().map_err(|e| e.to_string())? {
            Some(bytes) => Some(
                PublicKeyPackage::deserialize(&bytes)
                    .map_err(|e| format!("stored public key package: {e}"))?,
            ),
            None => None,
        };
        let mut ed_public_keys = match store
            .get_meta(groups::META_ED25519_PUBLIC_KEY_PACKAGE)
            .map_err(|e| e.to_string())?
        {
            Some(bytes) => Some(
                PublicKeyPackage::deserialize(&bytes)
                    .map_err(|e| format!("stored ed25519 public key package: {e}"))?,
            ),
            None => None,
        };
        // A refresh's package, with its key epoch, is what is in force.
        let mut public_keys = public_keys;
        let mut key_epochs = [0u32; 2];
        if let Some((epoch, bytes)) = refresh::load_refreshed(&store, Scheme::Secp256k1)? {
            public_keys = Some(
                PublicKeyPackage::deserialize(&bytes)
                    .map_err(|e| format!("stored refreshed public key package: {e}"))?,
            );
            key_epochs[0] = epoch;
        }
        if let Some((epoch, bytes)) = refresh::load_refreshed(&store, Scheme::Ed25519)? {
            ed_public_keys = Some(
                PublicKeyPackage::deserialize(&bytes)
                    .map_err(|e| format!("stored refreshed ed25519 public key package: {e}"))?,
            );
            key_epochs[1] = epoch;
        }
        let mut dkg = apb::DkgStatus {
            phase: apb::DkgPhase::NotStarted as i32,
            ..Default::default()
        };
        if let Some(pk) = &public_keys {
            let gk = pk.verifying_key().serialize().map_err(|e| e.to_string())?;
            dkg.phase = apb::DkgPhase::Done as i32;
            dkg.fingerprint = group_key_fingerprint(&gk);
            dkg.group_public_key = gk;
        }
        // Marked failed below, once their audit records are written (a crash in between
        // leaves them in `signing`, to be marked and recorded at the next start).
        let restarted = store
            .with_status(Status::Signing)
            .map_err(|e| e.to_string())?;
        let last = store.last_audit().map_err(|e| e.to_string())?;
        let (events, _) = broadcast::channel(1024);
        let state = Self {
            audit: Mutex::new(Chain::resume(last.as_ref())),
            metrics: quorate_wire::metrics::Metrics::new(),
            waiting: Mutex::default(),
            undurable: Mutex::default(),
            notices: notices::Outbox::default(),
            manifest,
            store,
            registry: Arc::new(Registry::new(clock.clone())),
            signing,
            events,
            public_keys: RwLock::new(public_keys),
            group_key_bytes: RwLock::new(None),
            ed_public_keys: RwLock::new(ed_public_keys),
            key_epochs: RwLock::new(key_epochs),
            dkg: watch::Sender::new(dkg),
            policy,
            signer_policy: Mutex::default(),
            certificates: Mutex::default(),
            sync_warned: Mutex::default(),
            policy_syncing: Mutex::default(),
            dkg_running: Mutex::new(false),
            in_flight: Mutex::default(),
            clock,
        };
        state.audit(
            Event::new(audit::kind::NODE_STARTED)
                .with("node", "coordinator")
                .with("version", env!("CARGO_PKG_VERSION"))
                .with("manifest", hex::encode(state.manifest.hash())),
        );
        // Shares may have left for these before the restart: the log says what became of them,
        // durably, before their records say so.
        for r in &restarted {
            state.audit(
                Event::new(audit::kind::WITHDRAWAL_FAILED)
                    .with("withdrawal", &r.id)
                    .with("digest", &r.digest)
                    .with("rule", Rule::CoordinatorRestarted.as_str()),
            );
        }
        state.store.flush().map_err(|e| e.to_string())?;
        for mut r in restarted {
            r.status = Status::Failed;
            r.rule = Some(Rule::CoordinatorRestarted.to_string());
            r.retry_at_ms = None;
            r.reason = Some(
                "the coordinator restarted while this withdrawal was being signed; submit it again"
                    .into(),
            );
            r.updated_ms = state.now_ms();
            state.store.update(&r).map_err(|e| e.to_string())?;
            warn!(withdrawal = %r.id, "in-flight withdrawal marked failed after restart");
        }
        state.store.flush().map_err(|e| e.to_string())?;
        Ok(state)
    }

    /// Appends a record to the audit log. Not flushed here: every answer that depends on a
    /// decision is preceded by a flush, which takes the record with it. A failed write is
    /// logged; the decision stands.
    pub fn audit(&self, event: Event) {
        let mut chain = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let r = chain.prepare(self.now_ms(), event);
        match self.store.append_audit(&r) {
            Ok(()) => chain.advance(&r),
            Err(e) => {
                warn!(error = %e, kind = %r.event.kind, "audit record not written");
                // Never reuse the number of a record that may have landed anyway.
                if let Ok(last) = self.store.last_audit() {
                    *chain = Chain::resume(last.as_ref());
                }
            }
        }
    }

    /// Records a refusal of `request` for withdrawal `id`.
    pub fn audit_refusal(&self, request: &str, id: &str, r: &Refusal) {
        self.audit(
            Event::refused(request, &r.rule.as_str(), &r.reason)
                .with("withdrawal", id)
                .with("permanent", r.permanent.to_string()),
        );
    }

    /// One page of the coordinator's audit log from `from`, and its head.
    pub fn audit_page(
        &self,
        from: u64,
        limit: usize,
        nonce: &[u8],
    ) -> Result<(Vec<audit::Record>, audit::Head), StoreError> {
        let chain = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        let mut records = self.store.audit_range(from.max(1), limit)?;
        quorate_wire::convert::audit::fit_page(&mut records);
        Ok((
            records,
            audit::Head::coordinator(&chain, self.manifest.threshold, nonce),
        ))
    }

    /// Claims the right to run signing for `id`; false if a run is already under way.
    pub fn claim(&self, id: &str) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string())
    }

    /// Gives back a claim taken with [`Coordinator::claim`].
    pub fn release(&self, id: &str) {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// The group key (33 bytes) once DKG has finished. Serialised once (it is on every
    /// answer, and serialising a point costs a field inversion).
    pub fn group_key(&self) -> Option<Vec<u8>> {
        if let Some(k) = read(&self.group_key_bytes).as_ref() {
            return Some(k.clone());
        }
        let k = read(&self.public_keys)
            .as_ref()
            .and_then(|p| p.verifying_key().serialize().ok())?;
        *self
            .group_key_bytes
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(k.clone());
        Some(k)
    }

    /// The Ed25519 group key: the Solana wallet.
    pub fn solana_wallet(&self) -> Option<[u8; 32]> {
        self.group_keys().ed25519.try_into().ok()
    }

    /// Every group key the cluster holds.
    pub fn group_keys(&self) -> GroupKeys {
        GroupKeys {
            secp256k1: self.group_key().unwrap_or_default(),
            ed25519: read(&self.ed_public_keys)
                .as_ref()
                .and_then(|p| p.verifying_key().serialize().ok())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SCHEMA_VERSION;
    use quorate_core::identity::IdentitySecret;
    use quorate_wire::{
        manifest::{ManifestDoc, SignerDoc, MANIFEST_VERSION},
        pki::Authority,
        tls::Role,
    };

    fn manifest() -> Manifest {
        let ca = Authority::generate("test-ca").unwrap();
        let mut rng = rand::rngs::OsRng;
        let backend = k256::ecdsa::SigningKey::random(&mut rng);
        let signers = (1..=3u16)
            .map(|i| SignerDoc {
                name: format!("signer-{i}"),
                identifier: i,
                identity_key: IdentitySecret::generate(&mut rng).public().to_string(),
                certificate: ca
                    .issue(Role::Signer, &format!("signer-{i}"), &[])
                    .unwrap()
                    .cert_pem,
            })
            .collect();
        Manifest::from_doc(&ManifestDoc {
            version: MANIFEST_VERSION,
            threshold: 2,
            backend_keys: vec![hex::encode(
                backend.verifying_key().to_encoded_point(true).as_bytes(),
            )],
            admin_keys: vec![quorate_core::identity::IdentitySecret::generate(
                &mut rand::rngs::OsRng,
            )
            .public()
            .to_string()],
            admin_quorum: 1,
            signers,
            allow_disjoint_quorums: false,
        })
        .unwrap()
    }

    fn record(id: &str, seq: u64, status: Status) -> Record {
        Record {
            solana_transaction: Default::default(),
            v: SCHEMA_VERSION,
            seq,
            id: id.into(),
            intent: String::new(),
            backend_signature: String::new(),
            digest: "00".into(),
            status,
            signature: (status == Status::Signed).then(|| "ab".repeat(65)),
            signers: vec![],
            rule: None,
            reason: None,
            created_ms: 1,
            updated_ms: 1,
            approvals: vec![],
            message: None,
            evm_call: None,
            retry_at_ms: None,
        }
    }

    fn restart_fails_in_flight_and_keeps_signed(store: Store, reopen: impl Fn() -> Store) {
        store
            .insert_new(&record("in-flight", 1, Status::Signing))
            .unwrap();
        store
            .insert_new(&record("done", 2, Status::Signed))
            .unwrap();
        store.flush().unwrap();
        drop(store);
        let st = Coordinator::new(
            manifest(),
            reopen(),
            SigningConfig::default(),
            None,
            Arc::new(quorate_core::clock::ManualClock::new(1_000)),
        )
        .unwrap();
        let r = st.store.get("in-flight").unwrap().unwrap();
        assert_eq!(r.status, Status::Failed);
        assert_eq!(
            r.rule.as_deref().map(Rule::parse),
            Some(Rule::CoordinatorRestarted)
        );
        let d = st.store.get("done").unwrap().unwrap();
        assert_eq!(d, record("done", 2, Status::Signed));
        // Listing is in insertion order and pages.
        let (page, more) = st.store.list(None, 1, &mut |_| true).unwrap();
        assert_eq!((page[0].id.as_str(), more), ("in-flight", true));
        let (page, more) = st.store.list(Some(page[0].seq), 1, &mut |_| true).unwrap();
        assert_eq!((page[0].id.as_str(), more), ("done", false));
        // Inserting an existing id never overwrites it.
        assert!(matches!(
            st.store
                .insert_new(&record("done", 3, Status::Signing))
                .unwrap(),
            crate::store::Insert::Exists(_)
        ));
    }

    /// A kept enrolment that does not decode is refused as a corrupt record, never taken for
    /// no enrolment (which would refuse the repair as `share-exists` and hide the damage).
    #[test]
    fn a_kept_enrolment_that_does_not_decode_is_refused_not_taken_for_none() {
        use crate::store::WithdrawalStore;
        let mem: Arc<crate::store::MemoryStore> = Arc::default();
        let st = Coordinator::new(
            manifest(),
            mem.clone(),
            SigningConfig::default(),
            None,
            Arc::new(quorate_core::clock::ManualClock::new(1_000)),
        )
        .unwrap();
        let key = repair::enrolment_key(Scheme::Secp256k1, 3);
        assert_eq!(st.stored_enrolment(Scheme::Secp256k1, 3), Ok(None));
        mem.put_meta(&key, &[]).unwrap();
        assert_eq!(st.stored_enrolment(Scheme::Secp256k1, 3), Ok(None));
        mem.put_meta(&key, &[0xff, 0x01, 0x02]).unwrap();
        let refused = st.stored_enrolment(Scheme::Secp256k1, 3).unwrap_err();
        assert_eq!(refused.rule, Rule::Storage);
        assert!(refused.reason.contains(&key), "{}", refused.reason);
        // The other group's record is its own.
        assert_eq!(st.stored_enrolment(Scheme::Ed25519, 3), Ok(None));
    }

    #[test]
    fn a_restart_fails_in_flight_withdrawals_and_keeps_signed_ones_sled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        restart_fails_in_flight_and_keeps_signed(
            Arc::new(crate::store::SledStore::open(&path).unwrap()),
            || Arc::new(crate::store::reopen(&path)),
        );
    }

    #[test]
    fn a_restart_fails_in_flight_withdrawals_and_keeps_signed_ones_memory() {
        let mem: Arc<crate::store::MemoryStore> = Arc::default();
        let again = mem.clone();
        restart_fails_in_flight_and_keeps_signed(mem, move || again.clone());
    }
}
