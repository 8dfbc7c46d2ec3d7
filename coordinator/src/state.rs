//! The coordinator's shared state and the two protocols it drives: gathering a threshold
//! signature for a withdrawal, and relaying a DKG. The coordinator is trusted for liveness
//! only: it chooses quorums, relays and aggregates, and every signer re-checks everything.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use frost_core::{
    keys::PublicKeyPackage, round1::SigningCommitments, round2::SignatureShare, Identifier,
    SigningPackage,
};
use quorate_core::{
    audit::{self, Chain, Event},
    fingerprint::group_key_fingerprint,
    intent::WithdrawalIntent,
    message::{payout, signing_message, solana_transaction, Scheme},
    refusal::{rule, Refusal},
};
use quorate_wire::{admin as apb, manifest::Manifest, signer as pb};
use rand::{seq::SliceRandom, RngCore};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

mod ceremony;
mod groups;
mod policy_sync;
mod refresh;
mod repair;
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

fn record_approvals(r: &Record) -> Vec<quorate_wire::policy::AdminSignature> {
    r.approvals
        .iter()
        .filter_map(|(a, s)| {
            Some(quorate_wire::policy::AdminSignature {
                admin: hex::decode(a).ok()?,
                signature: hex::decode(s).ok()?,
            })
        })
        .collect()
}

/// Rule tags the coordinator itself uses.
pub mod coord_rule {
    /// The coordinator restarted while the withdrawal was being signed.
    pub const RESTARTED: &str = "coordinator-restarted";
    /// No group key yet.
    pub const NO_GROUP_KEY: &str = "no-group-key";
    /// Internal failure.
    pub const INTERNAL: &str = "internal";
    /// A request the admin RPC cannot act on (unknown signer, bad helper list).
    pub const REQUEST_INVALID: &str = "request-invalid";
    /// A DKG or repair is already running.
    pub const DKG_RUNNING: &str = "dkg-running";
    /// The repair's target or too few helpers are connected.
    pub const REPAIR_SIGNERS_MISSING: &str = "repair-signers-missing";
    /// The repair's target already holds its share.
    pub const SHARE_EXISTS: &str = "share-exists";
    /// A repair failed; the reason names any culprit; nothing was kept.
    pub const REPAIR_ABORTED: &str = "repair-aborted";
    /// A refresh needs every holder of the key connected.
    pub const REFRESH_SIGNERS_MISSING: &str = "refresh-signers-missing";
    /// A refresh failed; the reason names any culprit; every signer keeps its old share.
    pub const REFRESH_ABORTED: &str = "refresh-aborted";
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

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
    signer_policy: Mutex<BTreeMap<u16, quorate_wire::policy::PolicyStatus>>,
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
}

/// Metric names (docs/protocol.md lists them).
pub mod metric {
    /// Withdrawals by outcome and rule tag.
    pub const WITHDRAWALS: &str = "quorate_withdrawals_total";
    /// Time from accepting a withdrawal to its stored outcome.
    pub const SIGNING_SECONDS: &str = "quorate_signing_seconds";
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
    ) -> Result<Self, String> {
        let policy = crate::policy::PolicyDesk::load(store.clone(), &manifest, genesis, now_ms())?;
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
            manifest,
            store,
            registry: Arc::default(),
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
                    .with("rule", coord_rule::RESTARTED),
            );
        }
        state.store.flush().map_err(|e| e.to_string())?;
        for mut r in restarted {
            r.status = Status::Failed;
            r.rule = Some(coord_rule::RESTARTED.into());
            r.reason = Some(
                "the coordinator restarted while this withdrawal was being signed; submit it again"
                    .into(),
            );
            r.updated_ms = now_ms();
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
        let r = chain.prepare(now_ms(), event);
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
            Event::refused(request, &r.rule, &r.reason)
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

    /// Makes sure that what a reader saw of these records is on disk before it is shown:
    /// if any was written but not yet flushed, flushes (shared with concurrent writers).
    pub async fn ensure_durable<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        let pending = {
            let undurable = self.undurable.lock().unwrap_or_else(|p| p.into_inner());
            ids.into_iter().any(|id| undurable.contains_key(id))
        };
        if !pending {
            return Ok(());
        }
        // The read happened before this flush starts, so the flush covers what was read.
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| StoreError::Flush(format!("flush task: {e}")))?
    }

    /// Writes a record durably (flushed on a blocking thread) and announces it.
    pub async fn persist(&self, r: Record) -> Result<Record, StoreError> {
        // Marked before the write: a reader that sees the new record also sees the mark
        // (until the flush below clears it) and flushes before showing it.
        *self
            .undurable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(r.id.clone())
            .or_insert(0) += 1;
        let store = self.store.clone();
        let rec = r.clone();
        tokio::task::spawn_blocking(move || {
            store.update(&rec)?;
            store.flush()
        })
        .await
        .map_err(|e| StoreError::Corrupt {
            key: r.id.clone(),
            reason: format!("persist task: {e}"),
        })??;
        {
            let mut undurable = self.undurable.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = undurable.get_mut(&r.id) {
                *n -= 1;
                if *n == 0 {
                    undurable.remove(&r.id);
                }
            }
        }
        self.announce(&r);
        Ok(r)
    }

    /// Registers interest in `id`'s outcome: the receiver gets the record once it is final
    /// and stored. Register before reading the store, so an outcome in between is not missed.
    pub fn await_final(&self, id: &str) -> tokio::sync::oneshot::Receiver<Record> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let list = waiting.entry(id.to_string()).or_default();
        // Waiters that gave up leave closed senders behind: drop them here.
        list.retain(|t| !t.is_closed());
        list.push(tx);
        rx
    }

    /// Stops waiting for `id` if nobody waits any more.
    pub fn forget_waiters(&self, id: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = waiting.get_mut(id) {
            list.retain(|t| !t.is_closed());
            if list.is_empty() {
                waiting.remove(id);
            }
        }
    }

    fn announce(&self, r: &Record) {
        if r.status.is_final() {
            let list = self
                .waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&r.id);
            for tx in list.into_iter().flatten() {
                let _ = tx.send(r.clone());
            }
        }
        let _ = self.events.send(r.clone());
    }

    /// Counts one withdrawal outcome for the metrics endpoint.
    pub fn count_outcome(&self, outcome: &str, rule: &str) {
        self.metrics.inc(
            metric::WITHDRAWALS,
            "Withdrawals by outcome (signed, refused, failed, pending_approval) and rule tag.",
            &[("outcome", outcome), ("rule", rule)],
        );
    }

    /// The exposition for the metrics endpoint: counters, histograms, and gauges read now.
    pub fn render_metrics(&self) -> String {
        use quorate_wire::metrics::Gauge;
        let connected = self.registry.connected();
        let keys = self.group_keys();
        let mut gauges = vec![Gauge {
            counter: false,
            name: "quorate_signers_connected",
            help: "Signers with a live link to the coordinator.",
            labels: vec![],
            value: connected.len() as f64,
        }];
        for scheme in Scheme::ALL {
            let key = keys.of(scheme);
            let retired = self.retired_signers();
            let able = connected
                .iter()
                .filter(|s| !retired.contains(&s.identifier) && self.holds_current(s, scheme, key))
                .count();
            gauges.push(Gauge {
                counter: false,
                name: "quorate_signers_able_to_sign",
                help: "Connected, unretired signers holding the cluster's share (per key scheme) at the key epoch in force: fewer than the threshold cannot sign.",
                labels: vec![("scheme", scheme.as_str().into())],
                value: able as f64,
            });
        }
        // Per signer of the manifest: link up, key share held at the current epoch, its key
        // epochs, the age of its last message, the policy version it reported.
        let policies = self
            .signer_policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let now = now_ms();
        for s in &self.manifest.signers {
            let live = connected.iter().find(|c| c.identifier == s.identifier);
            let signer = || vec![("signer", s.name.clone())];
            gauges.push(Gauge {
                counter: false,
                name: "quorate_signer_up",
                help: "1 while the signer's link to this coordinator is up.",
                labels: signer(),
                value: f64::from(u8::from(live.is_some())),
            });
            if let Some(c) = live {
                gauges.push(Gauge {
                    counter: false,
                    name: "quorate_signer_last_contact_seconds",
                    help: "Seconds since the signer's last message (hello or answer).",
                    labels: signer(),
                    value: now.saturating_sub(c.last_seen_ms) as f64 / 1000.0,
                });
                for scheme in Scheme::ALL {
                    let mut labels = signer();
                    labels.push(("scheme", scheme.as_str().into()));
                    gauges.push(Gauge {
                        counter: false,
                        name: "quorate_signer_has_key",
                        help: "1 if the signer holds the cluster's share of this key group at the key epoch in force.",
                        labels: labels.clone(),
                        value: f64::from(u8::from(self.holds_current(c, scheme, keys.of(scheme)))),
                    });
                    gauges.push(Gauge {
                        counter: false,
                        name: "quorate_signer_key_epoch",
                        help: "The key epoch of the signer's share of this key group.",
                        labels,
                        value: f64::from(c.key_epochs[usize::from(scheme == Scheme::Ed25519)]),
                    });
                }
            }
            if let Some(p) = policies.get(&s.identifier) {
                gauges.push(Gauge {
                    counter: false,
                    name: "quorate_signer_policy_version",
                    help: "The policy version the signer last reported in force.",
                    labels: signer(),
                    value: p.version as f64,
                });
            }
        }
        for (who, not_after) in self
            .certificates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let (name, help, labels) = match who {
                None => (
                    "quorate_certificate_expiry_timestamp_seconds",
                    "notAfter of this node's TLS certificate (Unix time): alert well before it.",
                    vec![],
                ),
                Some(i) => (
                    "quorate_signer_certificate_expiry_timestamp_seconds",
                    "notAfter of the certificate the signer last presented (Unix time).",
                    vec![(
                        "signer",
                        self.manifest
                            .signer(*i)
                            .map_or_else(|| i.to_string(), |s| s.name.clone()),
                    )],
                ),
            };
            gauges.push(Gauge {
                counter: false,
                name,
                help,
                labels,
                value: *not_after as f64,
            });
        }
        gauges.push(Gauge {
            counter: false,
            name: "quorate_build_info",
            help: "Always 1; the version label is this coordinator's.",
            labels: vec![("version", env!("CARGO_PKG_VERSION").into())],
            value: 1.0,
        });
        for (signer, n) in self.registry.presigned() {
            gauges.push(Gauge {
                counter: false,
                name: "quorate_presigned_commitments",
                help: "Pre-generated commitments the coordinator holds per signer (one-round signing).",
                labels: vec![("signer", signer.to_string())],
                value: n as f64,
            });
        }
        gauges.push(Gauge {
            counter: false,
            name: "quorate_audit_records",
            help: "Records in this node's audit log.",
            labels: vec![],
            value: self.audit.lock().unwrap_or_else(|p| p.into_inner()).seq() as f64,
        });
        let (flushes, waiters) = self.store.flush_counts();
        gauges.push(Gauge {
            counter: true,
            name: "quorate_store_flushes_total",
            help: "Disk flushes run since start (group commit: one serves many writers).",
            labels: vec![],
            value: flushes as f64,
        });
        gauges.push(Gauge {
            counter: true,
            name: "quorate_store_flush_requests_total",
            help: "Durability requests served by those flushes since start.",
            labels: vec![],
            value: waiters as f64,
        });
        self.metrics.render(&gauges)
    }

    /// Whether withdrawals can be signed now: a secp256k1 group key, and at least t connected,
    /// unretired signers holding its share at the key epoch in force. The withdrawal service's
    /// gRPC health follows it.
    pub fn withdrawals_ready(&self) -> bool {
        let key = self.group_keys().secp256k1;
        if key.is_empty() {
            return false;
        }
        let retired = self.retired_signers();
        let able = self
            .registry
            .connected()
            .iter()
            .filter(|c| {
                !retired.contains(&c.identifier) && self.holds_current(c, Scheme::Secp256k1, &key)
            })
            .count();
        able >= usize::from(self.manifest.threshold)
    }

    /// Records when a certificate expires: ours (`None`) or the one signer `signer` presented.
    pub fn note_certificate(&self, signer: Option<u16>, not_after_unix: i64) {
        self.certificates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(signer, not_after_unix);
    }

    /// Writes a record without waiting for the disk, and announces it. For a state nothing
    /// outside depends on yet (a withdrawal being signed): if it is lost in a crash, the
    /// backend's retry starts over, and the signers answer the same id with the same intent
    /// the same way (S6). The next flush carries it.
    pub fn stage(&self, r: Record) -> Result<Record, StoreError> {
        self.store.update(&r)?;
        self.announce(&r);
        Ok(r)
    }

    /// Gathers a threshold signature for `record` and stores the outcome. Tries up to
    /// `max_attempts` quorums; a signer that fails, refuses or is named a culprit is left out
    /// of later attempts. Always leaves the record in a final state.
    pub async fn sign(self: Arc<Self>, mut record: Record, intent: WithdrawalIntent) {
        let id = record.id.clone();
        // Whatever happens below, the claim taken by the caller is given back.
        struct Release<'a>(&'a Coordinator, &'a str);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.release(self.1);
            }
        }
        let _release = Release(&self, &id);
        let started = std::time::Instant::now();
        // The withdrawal and its `withdrawal-received` record are on disk before any signer is
        // asked for a share, so every share a signer ever releases is shown by this log, even
        // across a crash (`audit verify` checks both directions). The flush is shared with
        // concurrent writers (group commit).
        let store = self.store.clone();
        let format = self
            .policy
            .chain_format(&intent, self.solana_wallet().as_ref());
        let outcome = match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => match format {
                Ok(format) => match signing_message(&intent, format) {
                    Ok(message) => {
                        let request = pb::SignRequest {
                            intent: intent.encode(),
                            backend_signature: hex::decode(&record.backend_signature)
                                .unwrap_or_default(),
                            approvals: record_approvals(&record),
                            ..Default::default()
                        };
                        let signed = match format.scheme() {
                            Scheme::Secp256k1 => {
                                self.gather::<Secp>(&record.id, &message, &request).await
                            }
                            Scheme::Ed25519 => {
                                self.gather::<Ed>(&record.id, &message, &request).await
                            }
                        };
                        signed.and_then(|(sig, signers)| {
                            let call = payout(&intent, format, &sig)?;
                            let tx = solana_transaction(format, &message, &sig);
                            Ok((sig, signers, message, call, tx))
                        })
                    }
                    Err(r) => Err(r),
                },
                Err(r) => Err(r),
            },
            Ok(Err(e)) => Err(Refusal::temporary(
                "storage",
                format!("the coordinator could not record the withdrawal: {e}"),
            )),
            Err(e) => Err(Refusal::temporary(
                "storage",
                format!("the coordinator's flush task failed: {e}"),
            )),
        };
        record.updated_ms = now_ms();
        let mut notice = None;
        match outcome {
            Ok((signature, signers, message, call, solana_tx)) => {
                self.policy.debit(&intent, now_ms());
                // Recorded before the flush in `persist`, so the record is on disk before
                // anyone learns the signature.
                let by: Vec<String> = signers.iter().map(u16::to_string).collect();
                self.audit(
                    Event::new(audit::kind::WITHDRAWAL_SIGNED)
                        .with("withdrawal", &id)
                        .with("digest", &record.digest)
                        .with("signers", by.join(","))
                        // A hash, not the signature: the record may be read (exported) before
                        // the signature itself is durable.
                        .with("signature_sha256", hex::encode(Sha256::digest(&signature))),
                );
                notice = Some((signature.clone(), signers.clone()));
                record.status = Status::Signed;
                record.signature = Some(hex::encode(signature));
                record.signers = signers;
                record.message = (message != hex::decode(&record.digest).unwrap_or_default())
                    .then(|| hex::encode(&message));
                record.evm_call = call.map(|c| (c.to, hex::encode(c.data)));
                record.solana_transaction = solana_tx.map(|t| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.encode(t)
                });
                record.rule = None;
                record.reason = None;
                info!(withdrawal = %id, "withdrawal signed");
            }
            Err(r) => {
                record.status = if r.permanent {
                    Status::Refused
                } else {
                    Status::Failed
                };
                info!(withdrawal = %id, rule = %r.rule, reason = %r.reason, status = ?record.status, "withdrawal not signed");
                if r.permanent {
                    self.audit_refusal("sign", &id, &r);
                } else {
                    self.audit(
                        Event::new(audit::kind::WITHDRAWAL_FAILED)
                            .with("withdrawal", &id)
                            .with("rule", &r.rule)
                            .with("reason", &r.reason),
                    );
                }
                record.rule = Some(r.rule);
                record.reason = Some(r.reason);
            }
        }
        let (outcome, rule) = match record.status {
            Status::Signed => ("signed", String::new()),
            Status::Refused => ("refused", record.rule.clone().unwrap_or_default()),
            _ => ("failed", record.rule.clone().unwrap_or_default()),
        };
        let stored = self.persist(record).await;
        self.count_outcome(outcome, &rule);
        self.metrics.observe(
            metric::SIGNING_SECONDS,
            "Time from accepting a withdrawal to its outcome on disk.",
            started.elapsed().as_secs_f64(),
        );
        match stored {
            // Ledger notices carry the signature, so they leave only once it is on disk (S6).
            Ok(_) => {
                if let Some((signature, signers)) = notice {
                    self.notify_others(&intent, &signature, &signers);
                }
            }
            Err(e) => warn!(withdrawal = %id, error = %e, "could not store the outcome"),
        }
    }

    /// Ledger notices a signer missed while away: every withdrawal signed without it within
    /// the policy's longest window (bucket slack included). The signer counts each id once.
    async fn replay_notices(&self, signer: u16) {
        /// Notices outstanding at once on one link (the signer handles up to 128).
        const REPLAY_IN_FLIGHT: usize = 32;
        let window = self.policy.longest_window_ms();
        if window == 0 {
            return;
        }
        let since = now_ms().saturating_sub(window + quorate_core::policy::ledger::BUCKET_MS);
        let store = self.store.clone();
        let Ok(Ok(records)) =
            tokio::task::spawn_blocking(move || store.with_status(Status::Signed)).await
        else {
            warn!(
                signer,
                "could not list signed withdrawals for ledger notices"
            );
            return;
        };
        // Pipelined: up to REPLAY_IN_FLIGHT notices outstanding on the link, so a signer far
        // from the coordinator catches up in a few round trips, not one per notice.
        use futures::StreamExt;
        let notices = records
            .into_iter()
            .filter(|r| r.updated_ms >= since && !r.signers.contains(&signer))
            .filter_map(|r| {
                let (Ok(intent), Some(Ok(signature))) = (
                    hex::decode(&r.intent),
                    r.signature.as_ref().map(hex::decode),
                ) else {
                    return None;
                };
                let body = pb::coordinator_message::Body::LedgerNotice(pb::LedgerNotice {
                    intent,
                    signature,
                    signed_at_ms: r.updated_ms,
                });
                Some((r.id, body))
            });
        let mut answers = futures::stream::iter(notices)
            .map(|(id, body)| async move {
                let answer = self
                    .registry
                    .call(signer, body, self.signing.signer_timeout)
                    .await;
                (id, answer)
            })
            .buffer_unordered(REPLAY_IN_FLIGHT);
        let mut sent = 0usize;
        while let Some((id, answer)) = answers.next().await {
            match answer {
                Ok(pb::signer_message::Body::LedgerAck(a)) if a.debited => sent += 1,
                Ok(pb::signer_message::Body::LedgerAck(_)) => {}
                Ok(pb::signer_message::Body::Refusal(x)) => {
                    warn!(signer, withdrawal = %id, rule = %x.rule, "ledger notice refused");
                }
                _ => {
                    warn!(signer, "ledger notices interrupted");
                    return;
                }
            }
        }
        if sent > 0 {
            info!(signer, counted = sent, "missed ledger notices delivered");
        }
    }

    /// Ledger sync: tells every connected signer that did not take part about a signed
    /// withdrawal, so each velocity ledger sees the whole volume. Best effort: a signer that
    /// misses the notice is behind by this withdrawal (docs/policy.md).
    fn notify_others(&self, intent: &WithdrawalIntent, signature: &[u8], signers: &[u16]) {
        let notice = pb::coordinator_message::Body::LedgerNotice(pb::LedgerNotice {
            intent: intent.encode(),
            signature: signature.to_vec(),
            signed_at_ms: now_ms(),
        });
        let timeout = self.signing.signer_timeout;
        for s in self.registry.connected() {
            if signers.contains(&s.identifier) {
                continue;
            }
            let registry = self.registry.clone();
            let notice = notice.clone();
            let id = intent.id.clone();
            tokio::spawn(async move {
                match registry.call(s.identifier, notice, timeout).await {
                    Ok(pb::signer_message::Body::LedgerAck(_)) => {}
                    Ok(pb::signer_message::Body::Refusal(r)) => {
                        warn!(withdrawal = %id, signer = %s.name, rule = %r.rule, reason = %r.reason, "ledger notice refused");
                    }
                    Ok(_) => {
                        warn!(withdrawal = %id, signer = %s.name, "ledger notice: unexpected answer")
                    }
                    Err(e) => {
                        warn!(withdrawal = %id, signer = %s.name, error = %e, "ledger notice not delivered")
                    }
                }
            });
        }
    }

    /// Asks a signer for a batch of pre-generated commitments if its pool runs low (one
    /// request in flight per signer). In the background; a failure only means fresh rounds.
    fn refill(&self, signer: u16) {
        let batch = self.signing.presign_batch as usize;
        if batch == 0 {
            return;
        }
        let Some(conn) = self.registry.begin_refill(signer, batch.div_ceil(2)) else {
            return;
        };
        let registry = self.registry.clone();
        let timeout = self.signing.signer_timeout;
        tokio::spawn(async move {
            let sessions: Vec<[u8; 16]> = (0..batch).map(|_| rand::random()).collect();
            let body = pb::coordinator_message::Body::Presign(pb::PresignRequest {
                session_ids: sessions.iter().map(|s| s.to_vec()).collect(),
                scheme: pb::KeyScheme::Secp256k1 as i32,
            });
            let asked = std::time::Instant::now();
            let got = match registry.call_on(signer, Some(conn), body, timeout).await {
                Ok(pb::signer_message::Body::Presign(p)) if p.commitments.len() == batch => {
                    // Counted from before the request, and with a margin, so the coordinator
                    // stops using a nonce before the signer forgets it.
                    let ttl = Duration::from_millis(p.ttl_ms.min(3_600_000));
                    let usable_until = asked + ttl - (ttl / 4).min(Duration::from_secs(5));
                    let parsed: Result<Vec<_>, _> = sessions
                        .iter()
                        .zip(&p.commitments)
                        .map(|(session, c)| {
                            SigningCommitments::deserialize(c).map(|commitments| {
                                crate::registry::Presigned {
                                    session: *session,
                                    commitments,
                                    usable_until,
                                }
                            })
                        })
                        .collect();
                    parsed.unwrap_or_else(|e| {
                        warn!(signer, error = %e, "pre-generated commitments do not decode");
                        Vec::new()
                    })
                }
                Ok(pb::signer_message::Body::Refusal(r)) => {
                    warn!(signer, rule = %r.rule, reason = %r.reason, "signer refused to pre-generate commitments");
                    Vec::new()
                }
                Ok(_) => {
                    warn!(signer, "unexpected answer to a presign request");
                    Vec::new()
                }
                Err(e) => {
                    warn!(signer, error = %e, "presign request failed");
                    Vec::new()
                }
            };
            registry.end_refill(signer, conn, got, PRESIGN_BACKOFF);
        });
    }

    /// Gathers a group signature over `message` from a quorum. `label` names what is signed
    /// in logs and audit records (a withdrawal id); each signer gets `request` with its own
    /// session and the signing package filled in, and checks it against its own judgement.
    pub(crate) async fn gather<C: GroupSuite>(
        &self,
        label: &str,
        message: &[u8],
        request: &pb::SignRequest,
    ) -> Result<(Vec<u8>, Vec<u16>), Refusal> {
        let (pubkeys, key_epoch) = self.public_keys_at::<C>().ok_or_else(|| {
            Refusal::temporary(
                coord_rule::NO_GROUP_KEY,
                format!("no {} group key yet: run DKG for it first", C::SCHEME),
            )
        })?;
        let t = usize::from(self.manifest.threshold);
        let timeout = self.signing.signer_timeout;
        let retired = self.retired_signers();
        let mut excluded: BTreeSet<u16> = BTreeSet::new();
        let mut refusals: Vec<(u16, Refusal)> = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        let mut fell_back: BTreeSet<u16> = BTreeSet::new();
        for attempt in 1..=self.signing.max_attempts {
            // Only signers holding the share of the epoch verified against: a refresh in
            // progress never has an honest signer blamed for signing with the other.
            let slot = usize::from(C::SCHEME == Scheme::Ed25519);
            let mut candidates: Vec<u16> = self
                .registry
                .connected()
                .into_iter()
                .filter(|s| s.key_epochs[slot] == key_epoch && !retired.contains(&s.identifier))
                .map(|s| s.identifier)
                .filter(|i| !excluded.contains(i))
                .collect();
            if candidates.len() < t {
                break;
            }
            for i in &candidates {
                C::refill(self, *i);
            }
            // Chosen at random, whatever their pools hold: a signer's pool never decides
            // whether it is asked to sign.
            candidates.shuffle(&mut rand::thread_rng());
            let mut quorum: Vec<u16> = candidates[..t].to_vec();
            quorum.sort_unstable();
            info!(withdrawal = %label, attempt, ?quorum, "signing round 1");

            // Round 1: a pre-generated commitment where the signer has one, else a fresh
            // commitment. Each signer has its own session id, naming its nonce.
            let mut sessions: BTreeMap<u16, [u8; 16]> = BTreeMap::new();
            let mut presigned: BTreeSet<u16> = BTreeSet::new();
            let mut commitments = BTreeMap::new();
            let mut ids: BTreeMap<Identifier<C>, u16> = BTreeMap::new();
            let mut fresh: Vec<u16> = Vec::new();
            for i in &quorum {
                let fid = frost_id::<C>(*i)?;
                ids.insert(fid, *i);
                // A signer that already failed a pre-generated commitment in this
                // withdrawal signs with a fresh one.
                let pooled = if fell_back.contains(i) {
                    None
                } else {
                    C::pooled(self, *i)
                };
                match pooled {
                    Some((session, c)) => {
                        sessions.insert(*i, session);
                        presigned.insert(*i);
                        commitments.insert(fid, c);
                    }
                    None => {
                        let mut session = [0u8; 16];
                        rand::thread_rng().fill_bytes(&mut session);
                        sessions.insert(*i, session);
                        fresh.push(*i);
                    }
                }
            }
            let answers = futures::future::join_all(fresh.iter().map(|i| {
                let commit = pb::coordinator_message::Body::Commit(pb::CommitRequest {
                    session_id: sessions[i].to_vec(),
                    scheme: C::WIRE as i32,
                });
                self.registry.call(*i, commit, timeout)
            }))
            .await;
            for (i, answer) in fresh.iter().zip(answers) {
                let fid = frost_id::<C>(*i)?;
                match answer {
                    Ok(pb::signer_message::Body::Commit(c)) => {
                        match SigningCommitments::<C>::deserialize(&c.commitments) {
                            Ok(c) => {
                                commitments.insert(fid, c);
                            }
                            Err(e) => {
                                problems.push(format!("signer {i}: bad commitments: {e}"));
                                excluded.insert(*i);
                            }
                        }
                    }
                    other => {
                        note_failure(*i, other, &mut excluded, &mut refusals, &mut problems);
                    }
                }
            }
            if commitments.len() < t {
                continue;
            }
            let package = SigningPackage::<C>::new(commitments, message);
            let package_bytes = package.serialize().map_err(|e| {
                Refusal::temporary(coord_rule::INTERNAL, format!("signing package: {e}"))
            })?;

            // Round 2: each signer checks the intent itself and answers with its share.
            let answers = futures::future::join_all(quorum.iter().map(|i| {
                let sign = pb::coordinator_message::Body::Sign(pb::SignRequest {
                    session_id: sessions[i].to_vec(),
                    signing_package: package_bytes.clone(),
                    scheme: C::WIRE as i32,
                    key_epoch,
                    ..request.clone()
                });
                self.registry.call(*i, sign, timeout)
            }))
            .await;
            let mut shares = BTreeMap::new();
            for (i, answer) in quorum.iter().zip(answers) {
                match answer {
                    // A pre-generated nonce the signer no longer has (it restarted, or it
                    // expired there first): not the signer's fault. Its pool is dropped and
                    // the next attempt asks it for a fresh commitment.
                    // Once per signer and withdrawal: a second time it counts as a failure.
                    Ok(pb::signer_message::Body::Refusal(r))
                        if presigned.contains(i)
                            && r.rule == quorate_core::refusal::rule::NONCE_UNKNOWN
                            && fell_back.insert(*i) =>
                    {
                        warn!(withdrawal = %label, signer = i, "pre-generated commitment unknown to the signer; falling back to a fresh round");
                        self.registry.clear_presigned(*i);
                        problems.push(format!("signer {i}: pre-generated commitment unknown"));
                    }
                    Ok(pb::signer_message::Body::Sign(s)) => {
                        match SignatureShare::<C>::deserialize(&s.share) {
                            Ok(share) => {
                                shares.insert(frost_id::<C>(*i)?, share);
                            }
                            Err(e) => {
                                warn!(withdrawal = %label, signer = i, "culprit: malformed signature share");
                                self.audit(
                                    Event::new(audit::kind::CULPRIT)
                                        .with("withdrawal", label)
                                        .with("signer", i.to_string())
                                        .with("what", "malformed signature share"),
                                );
                                problems.push(format!("signer {i}: malformed share: {e}"));
                                excluded.insert(*i);
                            }
                        }
                    }
                    other => note_failure(*i, other, &mut excluded, &mut refusals, &mut problems),
                }
            }
            if shares.len() < t {
                continue;
            }
            // `aggregate` checks the group signature and, only if it fails, each share
            // (cheater detection), so a valid result is a verified signature.
            match frost_core::aggregate::<C>(&package, &shares, &pubkeys) {
                Ok(sig) => {
                    let bytes = sig.serialize().map_err(|e| {
                        Refusal::temporary(coord_rule::INTERNAL, format!("signature: {e}"))
                    })?;
                    return Ok((bytes, quorum));
                }
                Err(e) => {
                    let culprits: Vec<u16> = e
                        .culprits()
                        .iter()
                        .filter_map(|c| ids.get(c).copied())
                        .collect();
                    warn!(withdrawal = %label, ?culprits, error = %e, "culprit named: invalid signature share");
                    for c in &culprits {
                        self.audit(
                            Event::new(audit::kind::CULPRIT)
                                .with("withdrawal", label)
                                .with("signer", c.to_string())
                                .with("what", "invalid signature share"),
                        );
                    }
                    problems.push(format!("invalid share from {culprits:?}"));
                    if culprits.is_empty() {
                        excluded.extend(quorum.iter().copied());
                    }
                    excluded.extend(culprits);
                }
            }
        }
        // Not signed. If signers refused on their own judgement, say so with their rule.
        if let Some((i, r)) = refusals.iter().find(|(_, r)| r.permanent) {
            return Err(Refusal::permanent(
                &r.rule,
                format!("signer {i} refused: {}", r.reason),
            ));
        }
        // A temporary policy refusal (a velocity window, a freeze, a destination not yet active)
        // goes back under its own rule, so the backend learns what to wait for.
        // When it frees up: the t-th earliest time the signers refusing under that rule gave
        // (t of them have room again by then), never further than the longest window can
        // hold (a signer's claim is only a hint).
        if let Some((i, r)) = refusals.iter().find(|(_, r)| r.rule.starts_with("policy-")) {
            let mut times: Vec<u64> = refusals
                .iter()
                .filter(|(_, o)| o.rule == r.rule)
                .filter_map(|(_, o)| o.retry_at_ms)
                .collect();
            times.sort_unstable();
            let latest = now_ms().saturating_add(
                quorate_core::policy::doc::MAX_WINDOW_MS + quorate_core::policy::ledger::BUCKET_MS,
            );
            let t = usize::from(self.manifest.threshold);
            let retry_at = times
                .get(t.saturating_sub(1).min(times.len().saturating_sub(1)))
                .map(|at| (*at).min(latest));
            return Err(
                Refusal::temporary(&r.rule, format!("signer {i} refused: {}", r.reason))
                    .retry_at(retry_at),
            );
        }
        let connected = self.registry.connected().len();
        Err(Refusal::temporary(
            rule::NOT_ENOUGH_SIGNERS,
            format!(
                "could not gather {t} signature shares ({connected} signers connected{}); submit again later",
                if problems.is_empty() && refusals.is_empty() {
                    String::new()
                } else {
                    let mut all = problems.clone();
                    all.extend(refusals.iter().map(|(i, r)| format!("signer {i}: {r}")));
                    format!("; {}", all.join("; "))
                }
            ),
        ))
    }

    /// Starts a DKG for the `scheme` group with every signer of the manifest. All must be
    /// connected.
    pub fn start_dkg(self: &Arc<Self>, scheme: Scheme) -> Result<apb::DkgStatus, Refusal> {
        if !self.group_keys().of(scheme).is_empty() {
            return Err(Refusal::permanent(
                "dkg-key-exists",
                format!("this cluster already has a {scheme} group key"),
            ));
        }
        let connected = self.registry.connected();
        let n = self.manifest.signers.len();
        if connected.len() < n {
            let missing: Vec<&str> = self
                .manifest
                .signers
                .iter()
                .filter(|s| !connected.iter().any(|c| c.identifier == s.identifier))
                .map(|s| s.name.as_str())
                .collect();
            return Err(Refusal::temporary(
                "dkg-signers-missing",
                format!(
                    "DKG needs all {n} signers connected; missing: {}",
                    missing.join(", ")
                ),
            ));
        }
        let ceremony = self.begin_ceremony()?;
        let mut session = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut session);
        let status = apb::DkgStatus {
            session_id: session.to_vec(),
            phase: apb::DkgPhase::Round1 as i32,
            detail: "round 1: gathering signed commitments".into(),
            scheme: scheme.as_str().into(),
            ..Default::default()
        };
        self.dkg.send_replace(status.clone());
        let me = self.clone();
        tokio::spawn(async move {
            let result = match scheme {
                Scheme::Secp256k1 => me.run_dkg::<Secp>(session.to_vec(), None).await,
                Scheme::Ed25519 => me.run_dkg::<Ed>(session.to_vec(), None).await,
            };
            let final_status = match result {
                Ok(gk) => {
                    info!(fingerprint = %group_key_fingerprint(&gk), "DKG finished");
                    me.audit(
                        Event::new(audit::kind::DKG_FINISHED)
                            .with("session", hex::encode(session))
                            .with("scheme", scheme.as_str())
                            .with("group_key", hex::encode(&gk))
                            .with("fingerprint", group_key_fingerprint(&gk)),
                    );
                    if let Err(e) = me.store.flush() {
                        warn!(error = %e, "could not flush the audit log");
                    }
                    apb::DkgStatus {
                        session_id: session.to_vec(),
                        phase: apb::DkgPhase::Done as i32,
                        detail:
                            "DKG finished; every signer confirmed the same transcript and group key"
                                .into(),
                        culprits: vec![],
                        fingerprint: group_key_fingerprint(&gk),
                        group_public_key: gk,
                        scheme: scheme.as_str().into(),
                    }
                }
                Err((detail, culprits)) => {
                    warn!(%detail, ?culprits, "DKG failed");
                    let named: Vec<String> = culprits.iter().map(u16::to_string).collect();
                    me.audit(
                        Event::new(audit::kind::DKG_ABORTED)
                            .with("session", hex::encode(session))
                            .with("scheme", scheme.as_str())
                            .with("reason", &detail)
                            .with("culprits", named.join(",")),
                    );
                    apb::DkgStatus {
                        session_id: session.to_vec(),
                        phase: apb::DkgPhase::Failed as i32,
                        detail,
                        culprits: culprits.into_iter().map(u32::from).collect(),
                        scheme: scheme.as_str().into(),
                        ..Default::default()
                    }
                }
            };
            me.dkg.send_replace(final_status);
            drop(ceremony);
        });
        Ok(status)
    }

    fn dkg_phase(&self, session: &[u8], phase: apb::DkgPhase, detail: &str) {
        let scheme = self.dkg.borrow().scheme.clone();
        self.dkg.send_replace(apb::DkgStatus {
            session_id: session.to_vec(),
            phase: phase as i32,
            detail: detail.into(),
            scheme,
            ..Default::default()
        });
    }

    async fn dkg_round(
        &self,
        ids: &[u16],
        make: impl Fn(u16) -> pb::coordinator_message::Body,
    ) -> Result<Vec<(u16, pb::signer_message::Body)>, (String, Vec<u16>)> {
        // DKG rounds do heavier work than a signature; give them more time.
        let timeout = self.signing.signer_timeout.max(Duration::from_secs(30));
        let answers = futures::future::join_all(
            ids.iter()
                .map(|i| self.registry.call(*i, make(*i), timeout)),
        )
        .await;
        let mut out = Vec::with_capacity(ids.len());
        for (i, a) in ids.iter().zip(answers) {
            match a {
                Ok(pb::signer_message::Body::Refusal(r)) => {
                    let mut culprits: Vec<u16> = r
                        .culprits
                        .iter()
                        .filter_map(|c| u16::try_from(*c).ok())
                        .collect();
                    // A refusal that names nobody is the refuser's, unless it reports a state
                    // an honest signer can be in (an aborted step names culprits of its own,
                    // or none when the relay is to blame).
                    if culprits.is_empty() && !HONEST_REFUSALS.contains(&r.rule.as_str()) {
                        culprits.push(*i);
                    }
                    return Err((
                        format!("signer {i} aborted: {}: {}", r.rule, r.reason),
                        culprits,
                    ));
                }
                Ok(body) => out.push((*i, body)),
                Err(e) => return Err((e.to_string(), vec![*i])),
            }
        }
        Ok(out)
    }

    /// A DKG among every signer of the manifest, or with `refresh` a share refresh among the
    /// holders it names (the same rounds; see [`Coordinator::refresh_shares`]). Returns the
    /// group key.
    async fn run_dkg<C: GroupSuite>(
        &self,
        session: Vec<u8>,
        refresh: Option<pb::RefreshTerms>,
    ) -> Result<Vec<u8>, (String, Vec<u16>)> {
        let ids: Vec<u16> = match &refresh {
            Some(t) => t
                .participants
                .iter()
                .filter_map(|p| u16::try_from(*p).ok())
                .collect(),
            None => self.manifest.signers.iter().map(|s| s.identifier).collect(),
        };
        let kind = match refresh {
            Some(_) => quorate_core::dkg::Kind::Refresh,
            None => quorate_core::dkg::Kind::Dkg,
        };
        // The DKG status stream follows a DKG only.
        let dkg_phase = |phase, detail: &str| {
            if refresh.is_none() {
                self.dkg_phase(&session, phase, detail);
            }
        };
        let manifest_hash = self.manifest.hash().to_vec();
        let scheme = C::WIRE as i32;
        let r1 = self
            .dkg_round(&ids, |_| {
                pb::coordinator_message::Body::DkgRound1(pb::DkgRound1Request {
                    session_id: session.clone(),
                    manifest_hash: manifest_hash.clone(),
                    scheme,
                    refresh: refresh.clone(),
                })
            })
            .await?;
        let mut round1 = Vec::new();
        for (i, body) in r1 {
            let pb::signer_message::Body::DkgRound1(p) = body else {
                return Err((format!("signer {i} answered round 1 out of turn"), vec![i]));
            };
            round1.push(pb::SignedRound1 {
                identifier: u32::from(i),
                package: p.package,
                signature: p.signature,
            });
        }
        dkg_phase(apb::DkgPhase::Round2, "round 2: sealed shares");
        let r2 = self
            .dkg_round(&ids, |_| {
                pb::coordinator_message::Body::DkgRound2(pb::DkgRound2Request {
                    session_id: session.clone(),
                    packages: round1.clone(),
                    scheme,
                })
            })
            .await?;
        let mut mailbox: BTreeMap<u16, Vec<pb::SealedRound2>> = BTreeMap::new();
        let mut echoes = Vec::with_capacity(ids.len());
        for (i, body) in r2 {
            let pb::signer_message::Body::DkgRound2(p) = body else {
                return Err((format!("signer {i} answered round 2 out of turn"), vec![i]));
            };
            // Relayed as sent; each recipient checks the signatures in it.
            if let Some(e) = p.echo {
                echoes.push(e);
            }
            for s in p.packages {
                // The sender is who answered, whatever the package says.
                if s.sender != u32::from(i) {
                    return Err((
                        format!("signer {i} sent a package in another's name"),
                        vec![i],
                    ));
                }
                let Ok(recipient) = u16::try_from(s.recipient) else {
                    return Err((
                        format!("signer {i} addressed an unknown recipient"),
                        vec![i],
                    ));
                };
                mailbox.entry(recipient).or_default().push(s);
            }
        }
        dkg_phase(apb::DkgPhase::Round3, "round 3: deriving key shares");
        let r3 = self
            .dkg_round(&ids, |i| {
                pb::coordinator_message::Body::DkgRound3(pb::DkgRound3Request {
                    session_id: session.clone(),
                    packages: mailbox.get(&i).cloned().unwrap_or_default(),
                    echoes: echoes.clone(),
                    scheme,
                    refresh: refresh.is_some(),
                })
            })
            .await?;
        let mut agreed: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = None;
        let mut results = Vec::with_capacity(ids.len());
        for (i, body) in r3 {
            let pb::signer_message::Body::DkgRound3(p) = body else {
                return Err((format!("signer {i} answered round 3 out of turn"), vec![i]));
            };
            let entry = self
                .manifest
                .signer(i)
                .ok_or_else(|| (format!("signer {i} not in manifest"), vec![i]))?;
            if !quorate_core::dkg::verify_result_of_kind::<C>(
                kind,
                &entry.identity_key,
                &session,
                &p.transcript_hash,
                &p.group_public_key,
                &p.signature,
            ) {
                return Err((
                    format!("signer {i}'s DKG result is not signed by it"),
                    vec![i],
                ));
            }
            results.push(pb::DkgResult {
                identifier: u32::from(i),
                group_public_key: p.group_public_key.clone(),
                transcript_hash: p.transcript_hash.clone(),
                signature: p.signature.clone(),
            });
            let this = (p.group_public_key, p.transcript_hash, p.public_key_package);
            match &agreed {
                None => agreed = Some(this),
                Some(a) if *a == this => {}
                Some(_) => {
                    return Err((
                        format!("signer {i} finished with a different transcript or group key"),
                        vec![],
                    ))
                }
            }
        }
        let (gk, transcript, pkp_bytes) =
            agreed.ok_or_else(|| ("no DKG results".to_string(), vec![]))?;
        // Confirmation: each signer keeps its share only after checking every participant's
        // signed result itself.
        dkg_phase(
            apb::DkgPhase::Round3,
            "confirming: every signer checks all results",
        );
        let confirmed = self
            .dkg_round(&ids, |_| {
                pb::coordinator_message::Body::DkgConfirm(pb::DkgConfirmRequest {
                    session_id: session.clone(),
                    results: results.clone(),
                    scheme,
                })
            })
            .await?;
        if let Some(terms) = &refresh {
            return self
                .activate_refresh::<C>(&session, terms, gk, pkp_bytes, transcript, confirmed)
                .await;
        }
        for (i, body) in confirmed {
            match body {
                pb::signer_message::Body::DkgConfirm(c) if c.group_public_key == gk => {
                    self.registry.set_group_key(i, C::SCHEME, gk.clone());
                }
                _ => return Err((format!("signer {i} did not confirm the group key"), vec![i])),
            }
        }
        let pkp = PublicKeyPackage::<C>::deserialize(&pkp_bytes)
            .map_err(|e| (format!("public key package: {e}"), vec![]))?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || C::store_public_keys(&store, &pkp_bytes))
            .await
            .map_err(|e| (e.to_string(), vec![]))?
            .map_err(|e| (e, vec![]))?;
        C::install_public_keys(self, pkp);
        Ok(gk)
    }
}

/// Refusals of a ceremony step that an honest signer gives (an abort with its own culprits, or
/// a state of its own: a share of another epoch, a refresh waiting, a policy that differs for
/// now): they name nobody.
const HONEST_REFUSALS: &[&str] = &[
    "dkg-aborted",
    "repair-aborted",
    "refresh-pending",
    "refresh-participants",
    "key-epoch-mismatch",
    "share-exists",
    "signer-retired",
    "no-key-share",
    "signer-storage",
];

/// After a failed refill, how long a signer is not asked again.
const PRESIGN_BACKOFF: Duration = Duration::from_secs(2);

fn note_failure(
    i: u16,
    answer: Result<pb::signer_message::Body, crate::registry::CallError>,
    excluded: &mut BTreeSet<u16>,
    refusals: &mut Vec<(u16, Refusal)>,
    problems: &mut Vec<String>,
) {
    excluded.insert(i);
    match answer {
        Ok(pb::signer_message::Body::Refusal(r)) => refusals.push((
            i,
            Refusal {
                rule: r.rule,
                reason: r.reason,
                permanent: r.permanent,
                retry_at_ms: (r.retry_at_ms > 0).then_some(r.retry_at_ms),
            },
        )),
        Ok(_) => problems.push(format!("signer {i} answered out of turn")),
        Err(e) => problems.push(e.to_string()),
    }
}

fn frost_id<C: GroupSuite>(i: u16) -> Result<Identifier<C>, Refusal> {
    Identifier::<C>::try_from(i)
        .map_err(|_| Refusal::temporary(coord_rule::INTERNAL, format!("invalid identifier {i}")))
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
        let st = Coordinator::new(manifest(), reopen(), SigningConfig::default(), None).unwrap();
        let r = st.store.get("in-flight").unwrap().unwrap();
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.rule.as_deref(), Some(coord_rule::RESTARTED));
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

    #[test]
    fn a_restart_fails_in_flight_withdrawals_and_keeps_signed_ones_sled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        restart_fails_in_flight_and_keeps_signed(
            Arc::new(crate::store::SledStore::open(&path).unwrap()),
            || Arc::new(crate::store::SledStore::open(&path).unwrap()),
        );
    }

    #[test]
    fn a_restart_fails_in_flight_withdrawals_and_keeps_signed_ones_memory() {
        let mem: Arc<crate::store::MemoryStore> = Arc::default();
        let again = mem.clone();
        restart_fails_in_flight_and_keeps_signed(mem, move || again.clone());
    }
}
