//! One signer's decisions around I/O: it answers each coordinator request from its own state,
//! its own manifest and its own policy. Everything it checks, it checks itself.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock},
    time::{SystemTime, UNIX_EPOCH},
};

use frost_secp256k1::keys::KeyPackage;
use quorate_core::{
    atrest::Kek,
    dkg::{self, DkgSetup, SignedRound1},
    identity::IdentitySecret,
    message::ChainFormat,
    policy::WithdrawalPolicy,
    refusal::{rule, Refusal},
    seal::Sealed,
    signing::{self, Gate, NonceStore, SessionId},
};
use quorate_wire::{manifest::Manifest, signer as pb};
use tracing::{info, warn};

use crate::store::{Binding, SignerStore};

/// Metadata keys.
const META_KEY_SHARE: &str = "key_share";
const META_PUBLIC_KEY_PACKAGE: &str = "public_key_package";
const META_GROUP_KEY: &str = "group_key";

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
}

enum DkgProgress {
    Round1(Vec<u8>, dkg::Round1State),
    Round2(Vec<u8>, dkg::Round2State),
    /// Finished but not kept: waiting for every participant's confirmation.
    Finished(Vec<u8>, Box<dkg::DkgOutput>),
}

/// How many recent DKG session ids a signer remembers, to refuse their reuse.
const USED_DKG_SESSIONS: usize = 64;

#[derive(Default)]
struct DkgSlot {
    progress: Option<DkgProgress>,
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
    policy: Box<dyn WithdrawalPolicy>,
    max_clock_skew_ms: u64,
    key: RwLock<Option<Arc<KeyPackage>>>,
    group_key: RwLock<Vec<u8>>,
    nonces: Mutex<NonceStore>,
    dkg: Mutex<DkgSlot>,
    signer_ids: std::collections::BTreeSet<frost_secp256k1::Identifier>,
    /// Nonce lifetimes run on this monotonic clock, not the wall clock, so a clock step can
    /// never extend one.
    started: std::time::Instant,
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

fn key_share_purpose(name: &str) -> String {
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
    })
}

fn dkg_refusal(e: dkg::DkgError) -> pb::signer_message::Body {
    pb::signer_message::Body::Refusal(pb::Refusal {
        rule: link_rule::DKG_ABORTED.into(),
        reason: e.to_string(),
        permanent: true,
        culprits: e.culprits.iter().map(|c| u32::from(*c)).collect(),
    })
}

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
        policy: Box<dyn WithdrawalPolicy>,
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
        let signer_ids = manifest
            .signers
            .iter()
            .map(|s| frost_id(s.identifier))
            .collect::<Result<_, _>>()?;
        let node = Self {
            me,
            manifest,
            identity,
            store,
            policy,
            max_clock_skew_ms: limits.max_clock_skew_ms,
            key: RwLock::new(None),
            group_key: RwLock::new(Vec::new()),
            nonces: Mutex::new(NonceStore::new(limits.nonce_limit, limits.nonce_ttl_ms)),
            dkg: Mutex::new(DkgSlot::default()),
            signer_ids,
            started: std::time::Instant::now(),
            name,
            kek,
        };
        if let Some(sealed) = node
            .store
            .get_meta(META_KEY_SHARE)
            .map_err(|e| e.to_string())?
        {
            let plain = node
                .kek
                .open(&key_share_purpose(&node.name), &sealed)
                .map_err(|e| e.to_string())?;
            let kp = KeyPackage::deserialize(&plain).map_err(|e| format!("key share: {e}"))?;
            if *kp.identifier() != frost_id(me)? {
                return Err("stored key share belongs to another identifier".into());
            }
            let gk = kp
                .verifying_key()
                .serialize()
                .map_err(|e| format!("group key: {e}"))?;
            *write(&node.group_key) = gk;
            *write(&node.key) = Some(Arc::new(kp));
        }
        Ok(node)
    }

    fn mono_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The group key, empty before DKG.
    pub fn group_key(&self) -> Vec<u8> {
        read(&self.group_key).clone()
    }

    /// The manifest hash.
    pub fn manifest_hash(&self) -> [u8; 32] {
        self.manifest.hash()
    }

    /// Number of outstanding nonces (for status and tests).
    pub fn outstanding_nonces(&self) -> usize {
        lock(&self.nonces).len()
    }

    /// Answers one coordinator request.
    pub async fn handle(
        self: &Arc<Self>,
        body: pb::coordinator_message::Body,
    ) -> pb::signer_message::Body {
        use pb::coordinator_message::Body as B;
        match body {
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
            B::Commit(r) => match self.commit(&r) {
                Ok(b) => b,
                Err(r) => refusal(r),
            },
            B::Sign(r) => {
                let node = self.clone();
                // Binding the withdrawal flushes to disk before the share leaves (S6).
                tokio::task::spawn_blocking(move || node.sign(&r))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Refusal::permanent(
                            link_rule::STORAGE,
                            "signing task failed",
                        ))
                    })
                    .unwrap_or_else(refusal)
            }
        }
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
        let mut slot = lock(&self.dkg);
        match body {
            B::DkgRound1(r) => self.dkg_round1(&mut slot, r),
            B::DkgRound2(r) => self.dkg_round2(&mut slot, r),
            B::DkgRound3(r) => self.dkg_round3(&mut slot, r),
            B::DkgConfirm(r) => self.dkg_confirm(&mut slot, r),
            _ => refusal(Refusal::permanent(link_rule::BAD_REQUEST, "not a DKG step")),
        }
    }

    fn dkg_round1(&self, slot: &mut DkgSlot, r: pb::DkgRound1Request) -> pb::signer_message::Body {
        if read(&self.key).is_some() {
            return refusal(Refusal::permanent(
                link_rule::DKG_KEY_EXISTS,
                "this signer already holds a key share; a new DKG would replace the wallet key",
            ));
        }
        if let Some(DkgProgress::Finished(..)) = slot.progress {
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
        if slot.used.contains(&r.session_id) {
            return refusal(Refusal::permanent(
                link_rule::BAD_REQUEST,
                "this DKG session id was used before; sessions are single use",
            ));
        }
        slot.used.push_back(r.session_id.clone());
        if slot.used.len() > USED_DKG_SESSIONS {
            slot.used.pop_front();
        }
        let mut rng = rand::rngs::OsRng;
        match dkg::round1(self.setup(r.session_id.clone()), &self.identity, &mut rng) {
            Ok((state, signed)) => {
                slot.progress = Some(DkgProgress::Round1(r.session_id, state));
                info!(signer = %self.name, "DKG round 1 sent");
                pb::signer_message::Body::DkgRound1(pb::DkgRound1Response {
                    package: signed.package,
                    signature: signed.signature,
                })
            }
            Err(e) => dkg_refusal(e),
        }
    }

    fn dkg_round2(&self, slot: &mut DkgSlot, r: pb::DkgRound2Request) -> pb::signer_message::Body {
        // Compare before taking: a stray message must not destroy the session in progress.
        let state = match slot.progress.take() {
            Some(DkgProgress::Round1(sid, st)) if sid == r.session_id => st,
            other => {
                slot.progress = other;
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
                slot.progress = Some(DkgProgress::Round2(r.session_id, state));
                info!(signer = %self.name, "DKG round 2 sent");
                pb::signer_message::Body::DkgRound2(pb::DkgRound2Response {
                    packages: sealed.into_iter().map(sealed_to_pb).collect(),
                })
            }
            Err(e) => {
                warn!(signer = %self.name, error = %e, "DKG aborted in round 2");
                dkg_refusal(e)
            }
        }
    }

    fn dkg_round3(&self, slot: &mut DkgSlot, r: pb::DkgRound3Request) -> pb::signer_message::Body {
        let state = match slot.progress.take() {
            Some(DkgProgress::Round2(sid, st)) if sid == r.session_id => st,
            other => {
                slot.progress = other;
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
        let out = match dkg::round3(state, &self.identity, &sealed) {
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
        slot.progress = Some(DkgProgress::Finished(r.session_id, Box::new(out)));
        info!(signer = %self.name, "DKG round 3 done; waiting for every participant to confirm");
        answer
    }

    fn dkg_confirm(
        &self,
        slot: &mut DkgSlot,
        r: pb::DkgConfirmRequest,
    ) -> pb::signer_message::Body {
        let out = match slot.progress.take() {
            Some(DkgProgress::Finished(sid, out)) if sid == r.session_id => out,
            other => {
                slot.progress = other;
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
        let setup = self.setup(r.session_id.clone());
        if let Err(e) = dkg::check_confirmations(&setup.participants, &r.session_id, &out, &results)
        {
            warn!(signer = %self.name, error = %e, "DKG not confirmed; no key stored");
            return dkg_refusal(e);
        }
        if let Err(e) = self.keep_share(&out) {
            return refusal(e);
        }
        *write(&self.group_key) = out.group_key.clone();
        let group_key = out.group_key.clone();
        *write(&self.key) = Some(Arc::new(out.key_package));
        info!(
            signer = %self.name,
            fingerprint = %quorate_core::fingerprint::group_key_fingerprint(&group_key),
            "DKG finished and confirmed by every participant; key share stored encrypted"
        );
        pb::signer_message::Body::DkgConfirm(pb::DkgConfirmResponse {
            group_public_key: group_key,
        })
    }

    /// Persists a confirmed share, encrypted; never replaces one already stored.
    fn keep_share(&self, out: &dkg::DkgOutput) -> Result<(), Refusal> {
        let storage = |e: String| Refusal::permanent(link_rule::STORAGE, e);
        let plain = zeroize::Zeroizing::new(
            out.key_package
                .serialize()
                .map_err(|e| storage(format!("key share: {e}")))?,
        );
        let sealed = self.kek.seal(
            &mut rand::rngs::OsRng,
            &key_share_purpose(&self.name),
            &plain,
        );
        let pkp = out
            .public_key_package
            .serialize()
            .map_err(|e| storage(format!("public key package: {e}")))?;
        self.store
            .put_meta_durable(META_PUBLIC_KEY_PACKAGE, &pkp)
            .map_err(|e| storage(e.to_string()))?;
        self.store
            .put_meta_durable(META_GROUP_KEY, &out.group_key)
            .map_err(|e| storage(e.to_string()))?;
        // The share last: its presence is what marks DKG as done on this node.
        match self.store.put_meta_once(META_KEY_SHARE, &sealed) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::permanent(
                link_rule::DKG_KEY_EXISTS,
                "a key share is already stored; it is never replaced",
            )),
            Err(e) => Err(storage(e.to_string())),
        }
    }

    fn key(&self) -> Result<Arc<KeyPackage>, Refusal> {
        read(&self.key).clone().ok_or_else(|| {
            Refusal::temporary(rule::NO_KEY, "this signer has no key share yet; run DKG")
        })
    }

    fn commit(&self, r: &pb::CommitRequest) -> Result<pb::signer_message::Body, Refusal> {
        let key = self.key()?;
        let sid = session_id(&r.session_id)?;
        let commitments = lock(&self.nonces).commit(
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

    fn sign(&self, r: &pb::SignRequest) -> Result<pb::signer_message::Body, Refusal> {
        let span = tracing::info_span!("sign", session = %hex::encode(&r.session_id));
        let _entered = span.enter();
        let key = self.key()?;
        let sid = session_id(&r.session_id)?;
        let now = now_ms();
        // The nonce leaves the store before anything else happens: whatever the outcome of
        // this request, the session can never be signed in again (S4).
        let (nonces, own) = lock(&self.nonces).take(&sid, self.mono_ms())?;
        let gate = Gate {
            me: frost_id(self.me).map_err(|e| Refusal::permanent(link_rule::BAD_REQUEST, e))?,
            signers: &self.signer_ids,
            min_signers: usize::from(self.manifest.threshold),
            backend_keys: &self.manifest.backend_keys,
            policy: self.policy.as_ref(),
            format: ChainFormat::IntentDigest,
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
        match self.store.bind_withdrawal(id, &ok.digest, now) {
            Ok(Binding::New | Binding::Same) => {}
            Ok(Binding::Conflict) => {
                warn!(signer = %self.name, withdrawal = %id, "withdrawal id reused for a different intent");
                return Err(Refusal::permanent(
                    rule::ID_CONFLICT,
                    format!("withdrawal id `{id}` is already bound to a different intent"),
                ));
            }
            Err(e) => return Err(Refusal::temporary(link_rule::STORAGE, e.to_string())),
        }
        let share = signing::sign_share(&ok.package, nonces, &key)?;
        info!(signer = %self.name, withdrawal = %id, "share released");
        Ok(pb::signer_message::Body::Sign(pb::SignResponse {
            share: share.serialize(),
        }))
    }
}

/// FROST identifier of a manifest identifier.
pub fn frost_id(n: u16) -> Result<frost_secp256k1::Identifier, String> {
    frost_secp256k1::Identifier::try_from(n).map_err(|_| format!("invalid identifier {n}"))
}

fn sealed_to_pb(s: Sealed) -> pb::SealedRound2 {
    pb::SealedRound2 {
        sender: u32::from(s.sender),
        recipient: u32::from(s.recipient),
        nonce: s.nonce.to_vec(),
        ciphertext: s.ciphertext,
    }
}

fn sealed_from_pb(p: pb::SealedRound2) -> Option<Sealed> {
    Some(Sealed {
        sender: u16::try_from(p.sender).ok()?,
        recipient: u16::try_from(p.recipient).ok()?,
        nonce: p.nonce.as_slice().try_into().ok()?,
        ciphertext: p.ciphertext,
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
