//! One signer's decisions around I/O: it answers each coordinator request from its own state,
//! its own manifest and its own policy. Everything it checks, it checks itself.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock},
    time::{SystemTime, UNIX_EPOCH},
};

use quorate_core::{
    atrest::Kek,
    audit::{self, Chain, Event},
    chains::evm,
    dkg::{self, DkgSetup, SignedRound1},
    identity::IdentitySecret,
    intent::WithdrawalIntent,
    message::{signing_message, ChainFormat, Scheme},
    policy::{self, decode_state, encode_state, ledger::Debit, Ledger, PolicyState},
    refusal::{rule, Refusal},
    seal::Sealed,
    signing::{self, Gate, SessionId},
};
use quorate_wire::{
    convert::policy::{signed_from_proto, sigs_from_proto, status},
    manifest::Manifest,
    policy as policy_pb, signer as pb,
};
use tracing::{info, warn};

use crate::store::{Binding, SignerStore};

mod groups;
mod solana;
pub use groups::{meta_key, share_purpose, LinkId};
mod refresh;
mod repair;
mod status;
mod sync;
mod vault;
use groups::{scheme_of, DkgProgress, Ed, Group, Held, Secp};
pub use status::{LocalFreeze, FREEZE_FILE};

/// Metadata keys.
pub const META_KEY_SHARE: &str = "key_share";
pub const META_PUBLIC_KEY_PACKAGE: &str = "public_key_package";
pub const META_GROUP_KEY: &str = "group_key";
pub use repair::META_KEY_EPOCH;
const META_POLICY_STATE: &str = "policy_state";

/// Rule tags specific to the signer link.
pub mod link_rule {
    /// A DKG step failed or was out of order.
    pub const DKG_ABORTED: &str = "dkg-aborted";
    /// The signer already holds a key share.
    pub const DKG_KEY_EXISTS: &str = "dkg-key-exists";
    /// A finished DKG awaits its confirmation.
    pub const DKG_PENDING: &str = "dkg-pending-confirmation";
    /// The coordinator runs a different manifest.
    pub const MANIFEST_MISMATCH: &str = "manifest-mismatch";
    /// The request is not understood.
    pub const BAD_REQUEST: &str = "bad-request";
    /// Storage failed; nothing was signed.
    pub const STORAGE: &str = "signer-storage";
    /// A repair step failed or was out of order; nothing kept.
    pub const REPAIR_ABORTED: &str = "repair-aborted";
    /// The target of a repair already holds a share of that group (never replaced).
    pub const SHARE_EXISTS: &str = "share-exists";
    /// A refreshed share is stored and waits for activation, or an activation does not match it.
    pub const REFRESH_PENDING: &str = "refresh-pending";
    /// A refresh's participants are not exactly the holders of the key.
    pub const REFRESH_PARTICIPANTS: &str = "refresh-participants";
}

/// How many recent DKG session ids a signer remembers, to refuse their reuse.
const USED_DKG_SESSIONS: usize = 64;

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

/// Unix milliseconds now. The only clock read of the signer.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
    /// Nonce lifetimes run on this monotonic clock, not the wall clock, so a clock step can
    /// never extend one.
    started: std::time::Instant,
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
    refusals: Mutex<audit::RefusalThrottle>,
    /// Counters and histograms for the metrics endpoint.
    pub metrics: quorate_wire::metrics::Metrics,
}

/// One coordinator link as the metrics show it.
struct LinkState {
    addr: String,
    up: bool,
    last_contact_ms: u64,
}

/// How a withdrawal is counted in the velocity ledger.
#[derive(Debug, Clone, Copy)]
enum Counted {
    /// We released a share for it, now.
    Release,
    /// Others signed it at `signed_at` (a ledger notice).
    Notice {
        /// When, unix ms (already clamped to the intent's validity).
        signed_at: u64,
    },
}

/// The policy in force (none before genesis) and the velocity ledger.
struct PolicyGuard {
    state: Option<PolicyState>,
    ledger: Ledger,
    /// Bucket index of the last prune: pruning runs at most once a bucket.
    pruned_at: u64,
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

pub fn key_share_purpose(name: &str) -> String {
    format!("quorate/key-share/v1/{name}")
}

/// Purpose label of the sealed identity key file.
pub fn identity_purpose(name: &str) -> String {
    format!("quorate/identity-key/v1/{name}")
}

fn refusal(r: Refusal) -> pb::signer_message::Body {
    pb::signer_message::Body::Refusal(pb::Refusal {
        rule: r.rule,
        reason: r.reason,
        permanent: r.permanent,
        culprits: vec![],
        retry_at_ms: r.retry_at_ms.unwrap_or(0),
    })
}

fn dkg_refusal(e: dkg::DkgError) -> pb::signer_message::Body {
    pb::signer_message::Body::Refusal(pb::Refusal {
        rule: link_rule::DKG_ABORTED.into(),
        reason: e.to_string(),
        permanent: true,
        culprits: e.culprits.iter().map(|c| u32::from(*c)).collect(),
        retry_at_ms: 0,
    })
}

/// The request's name in audit records.
fn request_name(body: &pb::coordinator_message::Body) -> &'static str {
    use pb::coordinator_message::Body as B;
    match body {
        B::DkgRound1(_) => "dkg-round1",
        B::DkgRound2(_) => "dkg-round2",
        B::DkgRound3(_) => "dkg-round3",
        B::DkgConfirm(_) => "dkg-confirm",
        B::Commit(_) => "commit",
        B::Presign(_) => "presign",
        B::Sign(_) => "sign",
        B::PolicyUpdate(_) => "policy-update",
        B::PolicyVeto(_) => "policy-veto",
        B::LedgerNotice(_) => "ledger-notice",
        B::AuditExport(_) => "audit-export",
        B::StatusChallenge(_) => "status-challenge",
        B::RepairOffer(_) => "repair-offer",
        B::RepairContribute(_) => "repair-contribute",
        B::RepairFinish(_) => "repair-finish",
        B::RefreshActivate(_) => "refresh-activate",
        B::AddHolder(_) => "add-holder",
        B::Sync(_) => "sync",
    }
}

/// Most session ids in one presign batch.
pub const MAX_PRESIGN_BATCH: usize = 256;

fn session_id(bytes: &[u8]) -> Result<SessionId, Refusal> {
    bytes
        .try_into()
        .map_err(|_| Refusal::permanent(link_rule::BAD_REQUEST, "session id must be 16 bytes"))
}

impl Node {
    /// Builds a node, restoring its key share from the store if it has one.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        manifest: Manifest,
        identity: IdentitySecret,
        kek: Kek,
        store: Arc<dyn SignerStore>,
        local_freeze: LocalFreeze,
        limits: NodeLimits,
    ) -> Result<Self, String> {
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
            refusals: Mutex::new(audit::RefusalThrottle::new()),
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
            }),
            max_clock_skew_ms: limits.max_clock_skew_ms,
            secp: Group::new(&ids, limits.nonce_limit, limits.nonce_ttl_ms)?,
            ed: Group::new(&ids, limits.nonce_limit, limits.nonce_ttl_ms)?,
            metrics: quorate_wire::metrics::Metrics::new(),
            dkg: Mutex::new(DkgSlot::default()),
            started: std::time::Instant::now(),
            links: Mutex::new(BTreeMap::new()),
            cert_expiry: std::sync::atomic::AtomicI64::new(0),
            sync_slot: Mutex::new(()),
            name,
            kek,
        };
        node.restore_share::<Secp>()?;
        node.restore_share::<Ed>()?;
        node.audit(
            Event::new(audit::kind::NODE_STARTED)
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

    /// Appends a record to the audit log. A failed write is logged; the decision it records
    /// stands (records that guard safety are written with the state they describe instead).
    fn audit(&self, event: Event, durable: bool) {
        let mut chain = lock(&self.audit);
        let r = chain.prepare(now_ms(), event);
        match self.store.append_audit(&r) {
            Ok(()) => chain.advance(&r),
            Err(e) => {
                warn!(signer = %self.name, error = %e, kind = %r.event.kind, "audit record not written");
                self.resync_audit(&mut chain);
                return;
            }
        }
        // Flushed after the lock is given back, so a disk sync never holds up the chain.
        drop(chain);
        if durable {
            if let Err(e) = self.store.flush() {
                warn!(signer = %self.name, error = %e, kind = %r.event.kind, "audit record not flushed");
            }
        }
    }

    /// Appends a record that must be on disk before what it records happens: refuses (and
    /// leaves the chain where the store has it) if it cannot be written and flushed.
    fn audit_before(&self, event: Event) -> Result<(), Refusal> {
        let mut chain = lock(&self.audit);
        let r = chain.prepare(now_ms(), event);
        if let Err(e) = self.store.append_audit(&r) {
            self.resync_audit(&mut chain);
            return Err(storage(e));
        }
        chain.advance(&r);
        drop(chain);
        self.store.flush().map_err(storage)
    }

    /// After a failed write, moves the head to whatever the store holds, so that a record
    /// that landed anyway is never overwritten by the next one.
    fn resync_audit(&self, chain: &mut Chain) {
        match self.store.last_audit() {
            Ok(last) => *chain = Chain::resume(last.as_ref()),
            Err(e) => warn!(signer = %self.name, error = %e, "audit log unreadable"),
        }
    }

    /// One page of the audit log from `from`, and the head signed by our identity key. The
    /// page and the head are read under the same lock, so the page ends at the head when it
    /// reaches it.
    pub fn audit_page(
        &self,
        from: u64,
        limit: usize,
        nonce: &[u8],
    ) -> Result<(Vec<audit::Record>, audit::Head), Refusal> {
        let chain = lock(&self.audit);
        let mut records = self
            .store
            .audit_range(from.max(1), limit)
            .map_err(storage)?;
        quorate_wire::convert::audit::fit_page(&mut records);
        Ok((
            records,
            audit::Head::signed(&self.name, &chain, &self.identity, nonce),
        ))
    }

    fn mono_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
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

    /// The exposition for the metrics endpoint: counters, histograms, and gauges read now.
    pub fn render_metrics(&self) -> String {
        use quorate_wire::metrics::Gauge;
        let (flushes, waiters) = self.store.flush_counts();
        let policy = self.policy_status();
        let gauge = |name: &'static str, help, value: f64| Gauge {
            counter: name.ends_with("_total"),
            name,
            help,
            labels: vec![],
            value,
        };
        let mut gauges = vec![
            gauge(
                "quorate_certificate_expiry_timestamp_seconds",
                "notAfter of this node's TLS certificate (Unix time): alert well before it.",
                self.cert_expiry.load(std::sync::atomic::Ordering::Relaxed) as f64,
            ),
            gauge(
                "quorate_outstanding_nonces",
                "Signing nonces held in memory (fresh and pre-generated).",
                self.outstanding_nonces() as f64,
            ),
            gauge(
                "quorate_audit_records",
                "Records in this node's audit log.",
                lock(&self.audit).seq() as f64,
            ),
            gauge(
                "quorate_policy_version",
                "Policy version in force.",
                policy.version as f64,
            ),
            Gauge {
                labels: vec![("scheme", "secp256k1".into())],
                ..gauge(
                    "quorate_signer_key_share",
                    "1 if this signer holds a key share of the group (per key scheme), else 0: without one it cannot sign.",
                    f64::from(u8::from(!self.group_key().is_empty())),
                )
            },
            Gauge {
                labels: vec![("scheme", "ed25519".into())],
                ..gauge(
                    "quorate_signer_key_share",
                    "1 if this signer holds a key share of the group (per key scheme), else 0: without one it cannot sign.",
                    f64::from(u8::from(!self.ed25519_group_key().is_empty())),
                )
            },
            gauge(
                "quorate_store_flushes_total",
                "Disk flushes run since start (group commit: one serves many writers).",
                flushes as f64,
            ),
            gauge(
                "quorate_store_flush_requests_total",
                "Durability requests served by those flushes since start.",
                waiters as f64,
            ),
        ];
        for state in lock(&self.links).values() {
            let labels = vec![("coordinator", state.addr.clone())];
            gauges.push(Gauge {
                labels: labels.clone(),
                ..gauge(
                    "quorate_signer_link_up",
                    "1 while this signer's link to the coordinator is up.",
                    f64::from(u8::from(state.up)),
                )
            });
            gauges.push(Gauge {
                labels,
                ..gauge(
                    "quorate_signer_last_contact_timestamp_seconds",
                    "Unix time of the coordinator's last message on the link (0: never).",
                    state.last_contact_ms as f64 / 1000.0,
                )
            });
        }
        self.metrics.render(&gauges)
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

    /// The policy this signer has in force.
    pub fn policy_status(&self) -> policy_pb::PolicyStatus {
        status(lock(&self.policy).state.as_ref())
    }

    /// Records when this signer's TLS certificate expires (for the metrics).
    pub fn set_certificate_expiry(&self, not_after_unix: i64) {
        self.cert_expiry
            .store(not_after_unix, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records the link to coordinator `addr` coming up or going down.
    pub fn set_link_up(&self, link: LinkId, addr: &str, up: bool) {
        let mut links = lock(&self.links);
        let state = links.entry(link).or_insert_with(|| LinkState {
            addr: addr.to_string(),
            up,
            last_contact_ms: 0,
        });
        state.up = up;
        if up {
            state.last_contact_ms = now_ms();
        }
    }

    /// Records a message from the coordinator of `link`.
    pub fn touch_link(&self, link: LinkId) {
        if let Some(state) = lock(&self.links).get_mut(&link) {
            state.last_contact_ms = now_ms();
        }
    }

    /// How many coordinator links are up.
    pub fn links_up(&self) -> usize {
        lock(&self.links).values().filter(|s| s.up).count()
    }

    /// Answers one coordinator request.
    pub async fn handle(
        self: &Arc<Self>,
        link: LinkId,
        body: pb::coordinator_message::Body,
    ) -> pb::signer_message::Body {
        use pb::coordinator_message::Body as B;
        let what = request_name(&body);
        let started = std::time::Instant::now();
        // Kept to name the withdrawal in a refusal's audit record; decoded only then.
        let intent = match &body {
            B::Sign(r) => Some(r.intent.clone()),
            B::LedgerNotice(n) => Some(n.intent.clone()),
            _ => None,
        };
        let answer = match body {
            B::DkgRound1(_) | B::DkgRound2(_) | B::DkgRound3(_) | B::DkgConfirm(_) => {
                let node = self.clone();
                // DKG steps are CPU work and the last one flushes to disk: off the reactor.
                // Each runs entirely under the DKG lock, so steps never interleave.
                tokio::task::spawn_blocking(move || node.dkg_step(body))
                    .await
                    .unwrap_or_else(|_| {
                        refusal(Refusal::permanent(link_rule::STORAGE, "DKG task failed"))
                    })
            }
            B::RepairOffer(_) | B::RepairContribute(_) | B::RepairFinish(_) => {
                let node = self.clone();
                // Curve arithmetic and, at the target, a durable write: off the reactor, and
                // under the DKG lock so repairs and DKGs never interleave.
                tokio::task::spawn_blocking(move || node.repair_step(body))
                    .await
                    .unwrap_or_else(|_| {
                        refusal(Refusal::permanent(link_rule::STORAGE, "repair task failed"))
                    })
            }
            // Under the DKG lock and a durable write: off the reactor.
            B::RefreshActivate(r) => {
                self.blocking(move |node| match scheme_of(r.scheme)? {
                    Scheme::Secp256k1 => node.refresh_activate::<Secp>(&r),
                    Scheme::Ed25519 => node.refresh_activate::<Ed>(&r),
                })
                .await
            }
            B::AddHolder(r) => {
                let scheme = r.session.as_ref().map_or(0, |s| s.scheme);
                self.blocking(move |node| match scheme_of(scheme)? {
                    Scheme::Secp256k1 => node.add_holder::<Secp>(&r),
                    Scheme::Ed25519 => node.add_holder::<Ed>(&r),
                })
                .await
            }
            B::Commit(r) => match scheme_of(r.scheme).and_then(|s| match s {
                Scheme::Secp256k1 => self.commit::<Secp>(link, &r),
                Scheme::Ed25519 => self.commit::<Ed>(link, &r),
            }) {
                Ok(b) => b,
                Err(r) => refusal(r),
            },
            // A batch is a few milliseconds of curve arithmetic: off the reactor.
            B::Presign(r) => {
                self.blocking(move |node| match scheme_of(r.scheme)? {
                    Scheme::Secp256k1 => node.presign::<Secp>(link, &r),
                    Scheme::Ed25519 => node.presign::<Ed>(link, &r),
                })
                .await
            }
            B::Sign(r) => {
                // Binding and debiting flush to disk before the share leaves (S6).
                self.blocking(move |node| node.sign(link, &r)).await
            }
            B::PolicyUpdate(p) => self.blocking(move |node| node.policy_update(&p)).await,
            B::PolicyVeto(v) => self.blocking(move |node| node.policy_veto(&v)).await,
            // Reads the store: off the reactor.
            B::Sync(r) => self.blocking(move |node| node.sync(&r)).await,
            B::LedgerNotice(n) => self.blocking(move |node| node.ledger_notice(&n)).await,
            // The audit lock can be held across a flush: off the reactor.
            B::AuditExport(r) => self.blocking(move |node| node.audit_export(&r)).await,
            // May apply a due version or record a local-freeze change, both flushed: off the
            // reactor.
            B::StatusChallenge(c) => {
                self.blocking(move |node| node.status_receipt(&c.challenge))
                    .await
            }
        };
        let (outcome, rule) = match &answer {
            pb::signer_message::Body::Refusal(r) => ("refused", r.rule.as_str()),
            _ => ("ok", ""),
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
        if let pb::signer_message::Body::Refusal(r) = &answer {
            let mut e =
                Event::refused(what, &r.rule, &r.reason).with("permanent", r.permanent.to_string());
            let mut withdrawal = String::new();
            if let Some(i) = intent.and_then(|b| WithdrawalIntent::decode(&b).ok()) {
                withdrawal = i.id.clone();
                e = e.with("withdrawal", i.id);
            }
            if !r.culprits.is_empty() {
                let c: Vec<String> = r.culprits.iter().map(u32::to_string).collect();
                e = e.with("culprits", c.join(","));
            }
            self.record_refusal(what, &r.rule, &withdrawal, e).await;
        }
        answer
    }

    fn audit_export(
        &self,
        r: &quorate_wire::audit::AuditExportRequest,
    ) -> Result<pb::signer_message::Body, Refusal> {
        let limit = usize::try_from(r.limit)
            .unwrap_or(usize::MAX)
            .clamp(1, quorate_wire::convert::audit::MAX_PAGE);
        if r.nonce.len() > audit::MAX_NONCE_LEN {
            return Err(Refusal::permanent(
                link_rule::BAD_REQUEST,
                format!("nonce: at most {} bytes", audit::MAX_NONCE_LEN),
            ));
        }
        let (records, head) = self.audit_page(r.from_seq, limit, &r.nonce)?;
        Ok(pb::signer_message::Body::AuditPage(
            quorate_wire::convert::audit::page_to_proto(&records, &head),
        ))
    }

    async fn blocking(
        self: &Arc<Self>,
        f: impl FnOnce(&Node) -> Result<pb::signer_message::Body, Refusal> + Send + 'static,
    ) -> pb::signer_message::Body {
        let node = self.clone();
        tokio::task::spawn_blocking(move || f(&node))
            .await
            .unwrap_or_else(|_| Err(Refusal::permanent(link_rule::STORAGE, "task failed")))
            .unwrap_or_else(refusal)
    }

    fn setup(&self, session_id: Vec<u8>) -> DkgSetup {
        DkgSetup {
            session_id,
            manifest_hash: self.manifest.hash(),
            me: self.me,
            threshold: self.manifest.threshold,
            participants: self
                .manifest
                .signers
                .iter()
                .map(|s| (s.identifier, s.identity_key))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn dkg_step(&self, body: pb::coordinator_message::Body) -> pb::signer_message::Body {
        use pb::coordinator_message::Body as B;
        let scheme = match &body {
            B::DkgRound1(r) => r.scheme,
            B::DkgRound2(r) => r.scheme,
            B::DkgRound3(r) => r.scheme,
            B::DkgConfirm(r) => r.scheme,
            _ => return refusal(Refusal::permanent(link_rule::BAD_REQUEST, "not a DKG step")),
        };
        match scheme_of(scheme) {
            Ok(Scheme::Secp256k1) => self.dkg_step_for::<Secp>(body),
            Ok(Scheme::Ed25519) => self.dkg_step_for::<Ed>(body),
            Err(r) => refusal(r),
        }
    }

    fn dkg_step_for<C: Held>(
        &self,
        body: pb::coordinator_message::Body,
    ) -> pb::signer_message::Body {
        use pb::coordinator_message::Body as B;
        let mut slot = lock(&self.dkg);
        match body {
            B::DkgRound1(r) => self.dkg_round1::<C>(&mut slot, r),
            B::DkgRound2(r) => self.dkg_round2::<C>(&mut slot, r),
            B::DkgRound3(r) => self.dkg_round3::<C>(&mut slot, r),
            B::DkgConfirm(r) => self.dkg_confirm::<C>(&mut slot, r),
            _ => refusal(Refusal::permanent(link_rule::BAD_REQUEST, "not a DKG step")),
        }
    }

    fn dkg_round1<C: Held>(
        &self,
        slot: &mut DkgSlot,
        r: pb::DkgRound1Request,
    ) -> pb::signer_message::Body {
        if r.refresh.is_none() && read(&C::group(self).key).is_some() {
            return refusal(Refusal::permanent(
                link_rule::DKG_KEY_EXISTS,
                format!(
                    "this signer already holds a {} key share; a new DKG would replace the wallet key",
                    C::SCHEME
                ),
            ));
        }
        if let Some(DkgProgress::Finished(..)) = C::progress(slot) {
            // A finished DKG waits for its confirmation (or a signer restart): a new session
            // must not be able to throw away a share other signers may already have kept.
            return refusal(Refusal::temporary(
                link_rule::DKG_PENDING,
                "a finished DKG awaits confirmation; restart this signer to abandon it",
            ));
        }
        if r.manifest_hash != self.manifest.hash() {
            return refusal(Refusal::permanent(
                link_rule::MANIFEST_MISMATCH,
                "the coordinator's manifest differs from this signer's",
            ));
        }
        if r.session_id.len() != 16 {
            return refusal(Refusal::permanent(
                link_rule::BAD_REQUEST,
                "session id must be 16 bytes",
            ));
        }
        // A refresh renews the share this signer holds, among every holder of it.
        let refresh = match &r.refresh {
            Some(terms) => match self.refresh_setup::<C>(r.session_id.clone(), terms) {
                Ok(x) => Some(x),
                Err(e) => return refusal(e),
            },
            None => None,
        };
        if let Err(e) = self.claim_session(slot, &r.session_id) {
            return refusal(e);
        }
        let mut rng = rand::rngs::OsRng;
        let started = match refresh {
            None => {
                dkg::round1_for::<C, _>(self.setup(r.session_id.clone()), &self.identity, &mut rng)
            }
            Some((setup, epoch, pkp)) => {
                dkg::refresh_round1_for(setup, epoch, &pkp, &self.identity, &mut rng)
            }
        };
        match started {
            Ok((state, signed)) => {
                *C::progress(slot) = Some(DkgProgress::Round1(r.session_id, state));
                info!(signer = %self.name, scheme = %C::SCHEME, "DKG round 1 sent");
                pb::signer_message::Body::DkgRound1(pb::DkgRound1Response {
                    package: signed.package,
                    signature: signed.signature,
                })
            }
            Err(e) => dkg_refusal(e),
        }
    }

    fn dkg_round2<C: Held>(
        &self,
        slot: &mut DkgSlot,
        r: pb::DkgRound2Request,
    ) -> pb::signer_message::Body {
        // Compare before taking: a stray message must not destroy the session in progress.
        let state = match C::progress(slot).take() {
            Some(DkgProgress::Round1(sid, st)) if sid == r.session_id => st,
            other => {
                *C::progress(slot) = other;
                return dkg_refusal(dkg::DkgError {
                    reason: "round 2 for a session not in round 1".into(),
                    culprits: vec![],
                });
            }
        };
        let mut received = Vec::with_capacity(r.packages.len());
        for p in r.packages {
            let Ok(identifier) = u16::try_from(p.identifier) else {
                return dkg_refusal(dkg::DkgError {
                    reason: format!("identifier {} out of range", p.identifier),
                    culprits: vec![],
                });
            };
            received.push(SignedRound1 {
                identifier,
                package: p.package,
                signature: p.signature,
            });
        }
        let mut rng = rand::rngs::OsRng;
        match dkg::round2(state, &self.identity, &mut rng, &received) {
            Ok((state, sealed)) => {
                let echo = dkg::echo(&state, &self.identity);
                *C::progress(slot) = Some(DkgProgress::Round2(r.session_id, state));
                info!(signer = %self.name, "DKG round 2 sent");
                pb::signer_message::Body::DkgRound2(pb::DkgRound2Response {
                    packages: sealed.into_iter().map(sealed_to_pb).collect(),
                    echo: Some(echo_to_pb(echo)),
                })
            }
            Err(e) => {
                warn!(signer = %self.name, error = %e, "DKG aborted in round 2");
                dkg_refusal(e)
            }
        }
    }

    fn dkg_round3<C: Held>(
        &self,
        slot: &mut DkgSlot,
        r: pb::DkgRound3Request,
    ) -> pb::signer_message::Body {
        let state = match C::progress(slot).take() {
            Some(DkgProgress::Round2(sid, st)) if sid == r.session_id => st,
            other => {
                *C::progress(slot) = other;
                return dkg_refusal(dkg::DkgError {
                    reason: "round 3 for a session not in round 2".into(),
                    culprits: vec![],
                });
            }
        };
        let mut sealed = Vec::with_capacity(r.packages.len());
        for p in r.packages {
            match sealed_from_pb(p) {
                Some(s) => sealed.push(s),
                None => {
                    return dkg_refusal(dkg::DkgError {
                        reason: "malformed sealed package".into(),
                        culprits: vec![],
                    })
                }
            }
        }
        let mut echoes = Vec::with_capacity(r.echoes.len());
        for e in r.echoes {
            match echo_from_pb(e) {
                Some(e) => echoes.push(e),
                None => {
                    return dkg_refusal(dkg::DkgError {
                        reason: "malformed echo".into(),
                        culprits: vec![],
                    })
                }
            }
        }
        let finished = if r.refresh {
            self.refresh_round3::<C>(state, &sealed, &echoes)
        } else {
            dkg::round3(state, &self.identity, &sealed, &echoes)
        };
        let out = match finished {
            Ok(o) => o,
            Err(e) => {
                warn!(signer = %self.name, error = %e, "DKG aborted in round 3");
                return dkg_refusal(e);
            }
        };
        let pkp = match out.public_key_package.serialize() {
            Ok(p) => p,
            Err(e) => {
                return dkg_refusal(dkg::DkgError {
                    reason: format!("public key package: {e}"),
                    culprits: vec![],
                })
            }
        };
        let answer = pb::signer_message::Body::DkgRound3(pb::DkgRound3Response {
            group_public_key: out.group_key.clone(),
            public_key_package: pkp,
            transcript_hash: out.transcript.to_vec(),
            signature: out.signature.clone(),
        });
        *C::progress(slot) = Some(DkgProgress::Finished(r.session_id, Box::new(out)));
        info!(signer = %self.name, "DKG round 3 done; waiting for every participant to confirm");
        answer
    }

    fn dkg_confirm<C: Held>(
        &self,
        slot: &mut DkgSlot,
        r: pb::DkgConfirmRequest,
    ) -> pb::signer_message::Body {
        let out = match C::progress(slot).take() {
            Some(DkgProgress::Finished(sid, out)) if sid == r.session_id => out,
            other => {
                *C::progress(slot) = other;
                return dkg_refusal(dkg::DkgError {
                    reason: "confirmation for a session that has not finished round 3".into(),
                    culprits: vec![],
                });
            }
        };
        let mut results = Vec::with_capacity(r.results.len());
        for x in r.results {
            let Ok(identifier) = u16::try_from(x.identifier) else {
                return dkg_refusal(dkg::DkgError {
                    reason: format!("confirmation identifier {} out of range", x.identifier),
                    culprits: vec![],
                });
            };
            results.push(dkg::SignedResult {
                identifier,
                group_key: x.group_public_key,
                transcript: x.transcript_hash,
                signature: x.signature,
            });
        }
        let participants = match out.kind() {
            dkg::Kind::Refresh => self.participants_of(&out.public_key_package),
            _ => self.setup(r.session_id.clone()).participants,
        };
        if let Err(e) = dkg::check_confirmations(&participants, &r.session_id, &out, &results) {
            warn!(signer = %self.name, error = %e, "DKG not confirmed; no key stored");
            return dkg_refusal(e);
        }
        if out.kind() == dkg::Kind::Refresh {
            return self.store_refreshed::<C>(&r.session_id, *out);
        }
        if let Err(e) = self.keep_share(&out.key_package, &out.public_key_package, &out.group_key) {
            return refusal(e);
        }
        let group_key = out.group_key.clone();
        if let Err(e) = C::group(self).install(out.key_package, 0) {
            return refusal(Refusal::permanent(link_rule::STORAGE, e));
        }
        let fingerprint = quorate_core::fingerprint::group_key_fingerprint(&group_key);
        info!(
            signer = %self.name,
            scheme = %C::SCHEME,
            fingerprint = %fingerprint,
            "DKG finished and confirmed by every participant; key share stored encrypted"
        );
        self.audit(
            Event::new(audit::kind::DKG_FINISHED)
                .with("session", hex::encode(&r.session_id))
                .with("scheme", C::SCHEME.as_str())
                .with("group_key", hex::encode(&group_key))
                .with("fingerprint", fingerprint),
            true,
        );
        pb::signer_message::Body::DkgConfirm(pb::DkgConfirmResponse {
            group_public_key: group_key,
            ..Default::default()
        })
    }

    /// Marks a DKG or repair session id used, for good and across restarts: a second round-1
    /// package or offer in one session would make this signer look like an equivocator.
    fn claim_session(&self, slot: &mut DkgSlot, session_id: &[u8]) -> Result<(), Refusal> {
        let used_key = format!("dkg_session/{}", hex::encode(session_id));
        let fresh = !slot.used.iter().any(|u| u == session_id)
            && self.store.put_meta_once(&used_key, b"1").map_err(storage)?;
        if !fresh {
            return Err(Refusal::permanent(
                link_rule::BAD_REQUEST,
                "this session id was used before; DKG and repair sessions are single use",
            ));
        }
        slot.used.push_back(session_id.to_vec());
        if slot.used.len() > USED_DKG_SESSIONS {
            slot.used.pop_front();
        }
        Ok(())
    }

    /// A share sealed under the KEK for this group, and its public key package, serialized:
    /// what the store keeps of a share.
    fn sealed_share<C: Held>(
        &self,
        key_package: &frost_core::keys::KeyPackage<C>,
        public_key_package: &frost_core::keys::PublicKeyPackage<C>,
    ) -> Result<(Vec<u8>, Vec<u8>), Refusal> {
        let storage = |e: String| Refusal::permanent(link_rule::STORAGE, e);
        let plain = zeroize::Zeroizing::new(
            key_package
                .serialize()
                .map_err(|e| storage(format!("key share: {e}")))?,
        );
        let sealed = self.kek.seal(
            &mut rand::rngs::OsRng,
            &C::share_purpose(&self.name),
            &plain,
        );
        let pkp = public_key_package
            .serialize()
            .map_err(|e| storage(format!("public key package: {e}")))?;
        Ok((sealed, pkp))
    }

    /// Persists a confirmed share, encrypted; never replaces one already stored.
    fn keep_share<C: Held>(
        &self,
        key_package: &frost_core::keys::KeyPackage<C>,
        public_key_package: &frost_core::keys::PublicKeyPackage<C>,
        group_key: &[u8],
    ) -> Result<(), Refusal> {
        let storage = |e: String| Refusal::permanent(link_rule::STORAGE, e);
        let (sealed, pkp) = self.sealed_share(key_package, public_key_package)?;
        self.store
            .put_meta_durable(&C::meta(META_PUBLIC_KEY_PACKAGE), &pkp)
            .map_err(|e| storage(e.to_string()))?;
        self.store
            .put_meta_durable(&C::meta(META_GROUP_KEY), group_key)
            .map_err(|e| storage(e.to_string()))?;
        // The share last: its presence is what marks DKG as done on this node.
        match self.store.put_meta_once(&C::meta(META_KEY_SHARE), &sealed) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::permanent(
                link_rule::DKG_KEY_EXISTS,
                "a key share is already stored; it is never replaced",
            )),
            Err(e) => Err(storage(e.to_string())),
        }
    }

    fn commit<C: Held>(
        &self,
        link: LinkId,
        r: &pb::CommitRequest,
    ) -> Result<pb::signer_message::Body, Refusal> {
        let key = C::group(self).key()?;
        let sid = session_id(&r.session_id)?;
        let commitments = lock(&C::group(self).nonces).of(link).commit(
            sid,
            key.signing_share(),
            &mut rand::rngs::OsRng,
            self.mono_ms(),
        )?;
        let bytes = commitments
            .serialize()
            .map_err(|e| Refusal::permanent(link_rule::BAD_REQUEST, format!("commitments: {e}")))?;
        Ok(pb::signer_message::Body::Commit(pb::CommitResponse {
            commitments: bytes,
        }))
    }

    fn presign<C: Held>(
        &self,
        link: LinkId,
        r: &pb::PresignRequest,
    ) -> Result<pb::signer_message::Body, Refusal> {
        let key = C::group(self).key()?;
        if r.session_ids.is_empty() || r.session_ids.len() > MAX_PRESIGN_BATCH {
            return Err(Refusal::permanent(
                link_rule::BAD_REQUEST,
                format!("a presign batch holds 1 to {MAX_PRESIGN_BATCH} session ids"),
            ));
        }
        let sessions = r
            .session_ids
            .iter()
            .map(|s| session_id(s))
            .collect::<Result<Vec<_>, _>>()?;
        let mut nonces = lock(&C::group(self).nonces);
        let ttl_ms = nonces.ttl_ms();
        let commitments = nonces.of(link).commit_batch(
            &sessions,
            key.signing_share(),
            &mut rand::rngs::OsRng,
            self.mono_ms(),
        )?;
        drop(nonces);
        let commitments = commitments
            .iter()
            .map(|c| c.serialize())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Refusal::permanent(link_rule::BAD_REQUEST, format!("commitments: {e}")))?;
        Ok(pb::signer_message::Body::Presign(pb::PresignResponse {
            commitments,
            ttl_ms,
        }))
    }

    fn sign(&self, link: LinkId, r: &pb::SignRequest) -> Result<pb::signer_message::Body, Refusal> {
        if let Some(action) = &r.vault_action {
            if r.solana_void.is_some() || scheme_of(r.scheme)? != Scheme::Secp256k1 {
                return Err(Refusal::permanent(
                    link_rule::BAD_REQUEST,
                    "a vault action is signed by the secp256k1 group, alone",
                ));
            }
            return self.sign_vault_action(link, r, action);
        }
        if let Some(void) = &r.solana_void {
            return self.sign_solana_void(link, r, void);
        }
        match scheme_of(r.scheme)? {
            Scheme::Secp256k1 => self.sign_for::<Secp>(link, r),
            Scheme::Ed25519 => self.sign_for::<Ed>(link, r),
        }
    }

    fn sign_for<C: Held>(
        &self,
        link: LinkId,
        r: &pb::SignRequest,
    ) -> Result<pb::signer_message::Body, Refusal> {
        let span =
            tracing::info_span!("sign", session = %hex::encode(&r.session_id), scheme = %C::SCHEME);
        let _entered = span.enter();
        let group = C::group(self);
        let key = group.key_at(r.key_epoch)?;
        let sid = session_id(&r.session_id)?;
        // The nonce leaves the store before anything else happens: whatever the outcome of
        // this request, the session can never be signed in again (S4).
        let (nonces, own) = lock(&group.nonces).of(link).take(&sid, self.mono_ms())?;
        let approvals = sigs_from_proto(&r.approvals)
            .map_err(|e| Refusal::permanent(link_rule::BAD_REQUEST, format!("approvals: {e}")))?;
        let mut guard = lock(&self.policy);
        let now = now_ms();
        self.refresh_policy(&mut guard, now)?;
        let Some(state) = guard.state.as_ref() else {
            return Err(Refusal::temporary(
                rule::POLICY_MISSING,
                "no policy installed",
            ));
        };
        let backend_keys = state.active().backend_keys();
        let ed_wallet = self.ed25519_group_key();
        let gate = Gate {
            me: groups::frost_id::<C>(self.me)
                .map_err(|e| Refusal::permanent(link_rule::BAD_REQUEST, e))?,
            signers: &group.signer_ids,
            retired: &retired_ids::<C>(state.active()),
            min_signers: usize::from(self.manifest.threshold),
            backend_keys: &backend_keys,
            format: &|i| own_chain_format(state.active(), i, &ed_wallet),
            now_ms: now,
            max_clock_skew_ms: self.max_clock_skew_ms,
        };
        let ok = signing::check_request(
            &gate,
            &r.intent,
            &r.backend_signature,
            &r.signing_package,
            &own,
        )
        .inspect_err(|refused| {
            warn!(signer = %self.name, rule = %refused.rule, reason = %refused.reason, "refused to sign");
        })?;
        let id = ok.intent.id.as_str();
        let bound = quorate_core::message::binding(&ok.digest, ok.package.message());
        self.check_binding(&ok.intent, &bound)?;
        if self.locally_frozen() {
            return Err(Refusal::temporary(
                rule::POLICY_FROZEN,
                format!(
                    "signer {} is stopped by its operator (local freeze)",
                    self.name
                ),
            ));
        }
        let already = self.store.debited(id).map_err(storage)?;
        // A withdrawal debited before (a retry) is not counted against its own debit.
        let empty = Ledger::new();
        let ledger = if already { &empty } else { &guard.ledger };
        // n − t + 1: the fewest honest signers a withdrawal needs with t − 1 compromised.
        let honest =
            (self.manifest.signers.len() as u16 + 1).saturating_sub(self.manifest.threshold);
        policy::evaluate(state.active(), ledger, &ok.intent, &approvals, now)
            .and_then(|()| {
                policy::eval::evaluate_budget(state.active(), ledger, &ok.intent, honest, now)
            })
            .inspect_err(|refused| {
                warn!(signer = %self.name, withdrawal = %id, rule = %refused.rule, reason = %refused.reason, "policy refused");
            })?;
        // A durable nonce pays one withdrawal: claimed under the policy lock (docs/solana.md).
        if let ChainFormat::Solana(t) = &ok.format {
            if let quorate_core::chains::solana::Lifetime::DurableNonce { account, nonce } =
                &t.lifetime
            {
                self.claim_nonce(account, nonce, id, ok.intent.expires_at_ms, false)?;
            }
        }
        // The share is computed first but leaves only after the binding, the debit and the
        // audit record of its release are on disk together (S6, S7).
        let share = signing::sign_share::<C>(&ok.package, nonces, &key)?;
        let event = Event::new(audit::kind::SHARE_RELEASED)
            .with("withdrawal", id)
            .with("digest", hex::encode(ok.digest))
            .with("session", hex::encode(sid))
            // Our own commitment, so an auditor can check that no nonce ever signed twice.
            .with(
                "commitment",
                hex::encode(own.serialize().unwrap_or_default()),
            )
            .with("chain", ok.intent.chain.as_str())
            .with("asset", &ok.intent.asset)
            .with("destination", &ok.intent.destination)
            .with("amount", ok.intent.amount.to_string())
            .with("policy_version", state.active().version.to_string())
            .with("debit", if already { "already" } else { "new" });
        // What the vault will see, so `quorate reconcile` can match its payout events.
        let event = match ok.format {
            ChainFormat::EvmVault { domain, token } => event
                .with("chain_id", domain.chain_id.to_string())
                .with("vault", evm::address_text(ok.intent.chain, &domain.vault))
                .with("token", hex::encode(token)),
            // The message itself: what the group's Solana signature is over.
            ChainFormat::Solana(_) => event
                .with("scheme", C::SCHEME.as_str())
                .with("message", hex::encode(ok.package.message())),
            _ => event,
        };
        self.debit(
            &mut guard,
            &ok.intent,
            &bound,
            now,
            already,
            Counted::Release,
            event,
        )?;
        drop(guard);
        // Durable before the share leaves; the sync is shared with concurrent requests and
        // holds no lock, so other withdrawals are checked and written meanwhile.
        self.store.flush().map_err(storage)?;
        info!(signer = %self.name, withdrawal = %id, "share released");
        Ok(pb::signer_message::Body::Sign(pb::SignResponse {
            share: share.serialize(),
        }))
    }
}

fn storage(e: crate::store::StoreError) -> Refusal {
    Refusal::temporary(link_rule::STORAGE, e.to_string())
}

impl Node {
    /// This signer's share over `message`, a message its own policy gives without an intent
    /// (a vault action, a Solana void), once the package is checked against it.
    fn sign_policy_message<C: Held>(
        &self,
        package_bytes: &[u8],
        message: &[u8],
        own: &frost_core::round1::SigningCommitments<C>,
        nonces: frost_core::round1::SigningNonces<C>,
        key: &frost_core::keys::KeyPackage<C>,
    ) -> Result<frost_core::round2::SignatureShare<C>, Refusal> {
        let no_intent = |_: &_| Ok(ChainFormat::IntentDigest);
        let retired: Vec<_> = self
            .retired_signers()
            .into_iter()
            .filter_map(|n| groups::frost_id::<C>(n).ok())
            .collect();
        let gate = Gate {
            me: groups::frost_id::<C>(self.me)
                .map_err(|e| Refusal::permanent(link_rule::BAD_REQUEST, e))?,
            signers: &C::group(self).signer_ids,
            retired: &retired,
            min_signers: usize::from(self.manifest.threshold),
            backend_keys: &[],
            format: &no_intent,
            now_ms: now_ms(),
            max_clock_skew_ms: self.max_clock_skew_ms,
        };
        let package = signing::check_package(&gate, package_bytes, message, own)?;
        signing::sign_share(&package, nonces, key)
    }

    /// Whether `signature` is this group's signature over `message`.
    fn verify_group<C: Held>(&self, message: &[u8], signature: &[u8]) -> Result<bool, Refusal> {
        let key = C::group(self).key()?;
        Ok(frost_core::Signature::<C>::deserialize(signature)
            .is_ok_and(|sig| key.verifying_key().verify(message, &sig).is_ok()))
    }

    /// Applies a pending version whose time-lock has run out; refuses if no policy is
    /// installed.
    fn refresh_policy(&self, guard: &mut PolicyGuard, now: u64) -> Result<(), Refusal> {
        let Some(state) = guard.state.as_ref() else {
            return Err(Refusal::temporary(
                rule::POLICY_MISSING,
                format!("signer {} has no policy installed yet", self.name),
            ));
        };
        if state
            .pending
            .as_ref()
            .is_some_and(|p| now >= p.effective_at_ms)
        {
            let mut next = state.clone();
            next.tick(now);
            self.store
                .put_meta_durable(META_POLICY_STATE, &encode_state(&next))
                .map_err(storage)?;
            info!(signer = %self.name, version = next.active().version, hash = %next.active().hash_hex(), "policy version applied after its time-lock");
            self.audit(
                Event::new(audit::kind::POLICY_APPLIED)
                    .with("version", next.active().version.to_string())
                    .with("hash", next.active().hash_hex())
                    .with("after", "time-lock")
                    .with("frozen", next.active().frozen.to_string()),
                true,
            );
            guard.state = Some(next);
        }
        Ok(())
    }

    /// Refuses if `id` is bound to another intent.
    fn check_binding(&self, intent: &WithdrawalIntent, digest: &[u8; 32]) -> Result<(), Refusal> {
        match self.store.bound_digest(&intent.id).map_err(storage)? {
            Some(d) if d != *digest => {
                warn!(signer = %self.name, withdrawal = %intent.id, "withdrawal id reused for a different intent");
                Err(Refusal::id_conflict(&intent.id))
            }
            _ => Ok(()),
        }
    }

    /// Drops buckets that no window reaches any more, in memory and in the store, so the
    /// ledger's size is bounded by the number of keys × the longest window.
    fn prune(&self, guard: &mut PolicyGuard, now: u64) {
        let bucket = now / policy::ledger::BUCKET_MS;
        if bucket == guard.pruned_at {
            return;
        }
        guard.pruned_at = bucket;
        let gone = guard.ledger.prune(now);
        if gone.is_empty() {
            return;
        }
        let keys: Vec<Vec<u8>> = gone
            .into_iter()
            .map(|(key, bucket)| {
                policy::ledger::BucketRecord {
                    key,
                    bucket,
                    usage: Default::default(),
                }
                .key_bytes()
            })
            .collect();
        if let Err(e) = self.store.forget_buckets(&keys) {
            warn!(signer = %self.name, error = %e, "could not delete pruned ledger buckets");
        }
    }

    /// Binds the withdrawal id to `bound` ([`quorate_core::message::binding`]) and, unless it
    /// was counted before, debits it (as our own release
    /// if `release`), in one write with its audit record. Not flushed: the caller flushes once
    /// it has let go of the locks.
    #[allow(clippy::too_many_arguments)]
    fn debit(
        &self,
        guard: &mut PolicyGuard,
        intent: &WithdrawalIntent,
        bound: &[u8; 32],
        now: u64,
        already: bool,
        counted: Counted,
        event: Event,
    ) -> Result<(), Refusal> {
        let debit = if already {
            Debit {
                at_ms: guard.ledger.effective_now(now),
                records: vec![],
            }
        } else {
            self.prune(guard, now);
            // Applied in memory first: if the write fails, the ledger over-counts, which errs
            // on the safe side.
            let (chain, asset, dest, amount) = (
                intent.chain,
                intent.asset.as_str(),
                intent.destination.as_str(),
                intent.amount,
            );
            match counted {
                // Counted as our own release too, for the per-signer budget.
                Counted::Release => guard.ledger.debit_release(chain, asset, dest, amount, now),
                Counted::Notice { signed_at } => guard
                    .ledger
                    .debit_at(chain, asset, dest, amount, signed_at, now),
            }
        };
        let mut chain = lock(&self.audit);
        let record = chain.prepare(now, event);
        let binding = match self
            .store
            .bind_and_debit(&intent.id, bound, now, &debit, &record)
        {
            Ok(b) => b,
            Err(e) => {
                // The write may have landed without its flush: never reuse its number.
                self.resync_audit(&mut chain);
                return Err(storage(e));
            }
        };
        if binding != Binding::Conflict {
            chain.advance(&record);
        }
        drop(chain);
        match binding {
            Binding::Conflict => Err(Refusal::id_conflict(&intent.id)),
            Binding::New | Binding::Same => Ok(()),
        }
    }

    fn policy_update(
        &self,
        p: &policy_pb::SignedPolicy,
    ) -> Result<pb::signer_message::Body, Refusal> {
        let signed =
            signed_from_proto(p).map_err(|e| Refusal::permanent(rule::POLICY_UPDATE_INVALID, e))?;
        let version = signed.doc.version;
        let hash = signed.doc.hash_hex();
        let mut guard = lock(&self.policy);
        let now = now_ms();
        let (next, outcome, known) = match &guard.state {
            None => (
                self.manifest.genesis(signed),
                "installed as genesis".to_string(),
                false,
            ),
            Some(s) => {
                let mut next = s.clone();
                match next.offer(signed, now) {
                    Ok(o) => (Ok(next), format!("{o:?}"), o == policy::Offered::Known),
                    Err(e) => (Err(e), String::new(), false),
                }
            }
        };
        let next = next.inspect_err(|r| {
            warn!(signer = %self.name, version, hash = %hash, rule = %r.rule, reason = %r.reason, "policy update refused");
        })?;
        // A version this signer just verified (genesis, applied or scheduled), as the admins
        // signed it, beside the state: any coordinator of the cluster can then learn it from
        // this signer (`sync`). A copy of one it already holds changes nothing there.
        let mut puts = vec![(META_POLICY_STATE.to_string(), encode_state(&next))];
        if !known {
            puts.push((sync::history_key(version), sync::history_value(p)));
        }
        self.store
            .put_meta_batch_durable(&puts, &[])
            .map_err(storage)?;
        info!(signer = %self.name, version, hash = %hash, outcome = %outcome, "policy update accepted");
        let applied = next.active().version == version;
        self.audit(
            Event::new(if applied {
                audit::kind::POLICY_APPLIED
            } else {
                audit::kind::POLICY_SCHEDULED
            })
            .with("version", version.to_string())
            .with("hash", &hash)
            .with("outcome", &outcome)
            .with("frozen", next.active().frozen.to_string()),
            true,
        );
        guard.state = Some(next);
        Ok(pb::signer_message::Body::PolicyStatus(status(
            guard.state.as_ref(),
        )))
    }

    fn policy_veto(&self, v: &pb::PolicyVeto) -> Result<pb::signer_message::Body, Refusal> {
        let bad = |m: String| Refusal::permanent(rule::POLICY_VETO_INVALID, m);
        let hash: [u8; 32] = v
            .policy_hash
            .as_slice()
            .try_into()
            .map_err(|_| bad("policy_hash must be 32 bytes".into()))?;
        let veto = v
            .veto
            .as_ref()
            .ok_or_else(|| bad("veto: missing".into()))
            .and_then(|s| quorate_wire::convert::policy::sig_from_proto(s).map_err(bad))?;
        let mut guard = lock(&self.policy);
        let Some(state) = guard.state.as_ref() else {
            return Err(Refusal::temporary(
                rule::POLICY_MISSING,
                "no policy installed",
            ));
        };
        let mut next = state.clone();
        next.veto(&hash, &veto, now_ms())?;
        // Kept under the version it is for (the pending one's, or the next), so a coordinator
        // asks only for the vetoes after its version in force.
        let version = next
            .pending
            .as_ref()
            .filter(|p| p.policy.doc.hash() == hash)
            .map_or(next.active().version + 1, |p| p.policy.doc.version);
        self.store
            .put_meta_batch_durable(
                &[
                    (META_POLICY_STATE.to_string(), encode_state(&next)),
                    (sync::veto_key(version, &hash), sync::veto_value(v)),
                ],
                &[],
            )
            .map_err(storage)?;
        info!(signer = %self.name, hash = %hex::encode(hash), admin = %veto.admin, "policy version vetoed");
        self.audit(
            Event::new(audit::kind::POLICY_VETOED)
                .with("hash", hex::encode(hash))
                .with("admin", veto.admin.to_string()),
            true,
        );
        guard.state = Some(next);
        Ok(pb::signer_message::Body::PolicyStatus(status(
            guard.state.as_ref(),
        )))
    }

    /// A withdrawal the group signed without us: count it, once, if the group signature over
    /// its signing message verifies.
    fn ledger_notice(&self, n: &pb::LedgerNotice) -> Result<pb::signer_message::Body, Refusal> {
        let invalid = |m: &str| Refusal::permanent(rule::LEDGER_NOTICE_INVALID, m.to_string());
        let intent = WithdrawalIntent::decode(&n.intent)
            .map_err(|e| Refusal::permanent(rule::INTENT_MALFORMED, e.to_string()))?;
        // The message the group signed for it under this signer's policy: a notice for a
        // withdrawal on a chain whose vault settings changed since does not verify.
        let format = {
            let guard = lock(&self.policy);
            let Some(state) = guard.state.as_ref() else {
                return Err(Refusal::temporary(
                    rule::POLICY_MISSING,
                    "no policy installed",
                ));
            };
            let wallet: Option<[u8; 32]> = self.ed25519_group_key().try_into().ok();
            quorate_core::message::signed_chain_format(state.active(), &intent, wallet.as_ref())?
        };
        let msg = signing_message(&intent, format)?;
        let verified = match format.scheme() {
            Scheme::Secp256k1 => self.verify_group::<Secp>(&msg, &n.signature)?,
            Scheme::Ed25519 => self.verify_group::<Ed>(&msg, &n.signature)?,
        };
        if !verified {
            return Err(invalid("the notice's group signature does not verify"));
        }
        let digest = intent.digest();
        let bound = quorate_core::message::binding(&digest, &msg);
        self.check_binding(&intent, &bound)?;
        let mut guard = lock(&self.policy);
        let now = now_ms();
        // The nonce it was signed with is spent: no other withdrawal is signed with it here.
        if let ChainFormat::Solana(t) = &format {
            if let quorate_core::chains::solana::Lifetime::DurableNonce { account, nonce } =
                &t.lifetime
            {
                self.claim_nonce(account, nonce, &intent.id, intent.expires_at_ms, true)?;
            }
        }
        let already = self.store.debited(&intent.id).map_err(storage)?;
        let event = Event::new(audit::kind::LEDGER_NOTICE)
            .with("withdrawal", &intent.id)
            .with("digest", hex::encode(digest))
            .with("chain", intent.chain.as_str())
            .with("asset", &intent.asset)
            .with("destination", &intent.destination)
            .with("amount", intent.amount.to_string())
            .with("debit", if already { "already" } else { "new" })
            .with("signed_at", n.signed_at_ms.to_string());
        // Counted when it was signed, as far as the intent itself allows.
        let signed_at = policy::ledger::notice_time(
            intent.created_at_ms,
            intent.expires_at_ms,
            n.signed_at_ms,
            now,
        );
        // Not flushed on its own: a notice lost in a crash is sent again when this signer
        // reconnects (the coordinator replays the window), and the next flush carries it.
        self.debit(
            &mut guard,
            &intent,
            &bound,
            now,
            already,
            Counted::Notice { signed_at },
            event,
        )?;
        drop(guard);
        if !already {
            info!(signer = %self.name, withdrawal = %intent.id, "ledger notice: withdrawal signed by others counted");
        }
        Ok(pb::signer_message::Body::LedgerAck(pb::LedgerAck {
            debited: !already,
        }))
    }
}

/// The chain format this signer's policy gives `intent`, the Solana wallet being its own
/// Ed25519 group key (`ed_wallet`, empty before that DKG).
/// The FROST identifiers of the signers `policy` retired.
fn retired_ids<C: Held>(
    policy: &quorate_core::policy::PolicyDoc,
) -> Vec<frost_core::Identifier<C>> {
    policy
        .retired_signers
        .iter()
        .filter_map(|n| groups::frost_id::<C>(*n).ok())
        .collect()
}

fn own_chain_format(
    policy: &quorate_core::policy::PolicyDoc,
    intent: &WithdrawalIntent,
    ed_wallet: &[u8],
) -> Result<ChainFormat, Refusal> {
    let wallet: Option<[u8; 32]> = ed_wallet.try_into().ok();
    quorate_core::message::chain_format_for(policy, intent, wallet.as_ref())
}

fn echo_to_pb(e: dkg::SignedEcho) -> pb::DkgEcho {
    pb::DkgEcho {
        from: u32::from(e.from),
        packages: e
            .packages
            .into_iter()
            .map(|p| pb::SignedRound1 {
                identifier: u32::from(p.identifier),
                package: p.package,
                signature: p.signature,
            })
            .collect(),
        signature: e.signature,
    }
}

fn echo_from_pb(e: pb::DkgEcho) -> Option<dkg::SignedEcho> {
    Some(dkg::SignedEcho {
        from: u16::try_from(e.from).ok()?,
        packages: e
            .packages
            .into_iter()
            .map(|p| {
                Some(SignedRound1 {
                    identifier: u16::try_from(p.identifier).ok()?,
                    package: p.package,
                    signature: p.signature,
                })
            })
            .collect::<Option<_>>()?,
        signature: e.signature,
    })
}

fn sealed_to_pb(s: Sealed) -> pb::SealedRound2 {
    pb::SealedRound2 {
        sender: u32::from(s.sender),
        recipient: u32::from(s.recipient),
        nonce: s.nonce.to_vec(),
        ciphertext: s.ciphertext,
        signature: s.signature,
    }
}

fn sealed_from_pb(p: pb::SealedRound2) -> Option<Sealed> {
    Some(Sealed {
        sender: u16::try_from(p.sender).ok()?,
        recipient: u16::try_from(p.recipient).ok()?,
        nonce: p.nonce.as_slice().try_into().ok()?,
        ciphertext: p.ciphertext,
        signature: p.signature,
    })
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
