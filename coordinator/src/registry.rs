//! Connected signers and request/response matching over their streams. The registry is the
//! coordinator's edge of the signer link: callers send typed [`Request`]s and get typed
//! [`Answer`]s; only the streams carry protobuf.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use frost_secp256k1::round1::SigningCommitments;
use quorate_core::{
    clock::Clock,
    link::{Answer, Request},
};
use quorate_wire::signer as pb;
use tokio::sync::{mpsc, oneshot};

/// Why a call to a signer produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The signer is not connected (or dropped mid-call).
    #[error("signer {0} is not connected")]
    Disconnected(u16),
    /// The signer did not answer in time.
    #[error("signer {0} did not answer in time")]
    Timeout(u16),
    /// The signer's answer does not convert to a typed answer (a field out of range or
    /// missing): it is the signer's, as much as a wrong answer would be.
    #[error("signer {0} answered with a malformed message: {1}")]
    Malformed(u16, String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<pb::signer_message::Body>>>>;

struct Link {
    conn: u64,
    name: String,
    group_key: Vec<u8>,
    ed25519_group_key: Vec<u8>,
    /// Key epochs of its shares (secp256k1, Ed25519), as it reported them or switched since.
    key_epochs: [u32; 2],
    /// Unix ms of the last message received over this link.
    last_seen: Arc<AtomicU64>,
    tx: mpsc::Sender<Result<pb::CoordinatorMessage, tonic::Status>>,
    pending: Pending,
    /// Commitments this signer pre-generated over this link (one-round signing). They die with
    /// the link: a signer that reconnects may have restarted and forgotten their nonces.
    pool: VecDeque<Presigned>,
    /// A refill is in flight, or none is to be asked for before this time.
    refilling: bool,
    /// On the coordinator's monotonic clock (ms).
    refill_after: Option<u64>,
}

/// A commitment a signer made ahead of time, and the session that names its nonce there.
#[derive(Clone)]
pub struct Presigned {
    /// The signer's session id for this nonce.
    pub session: [u8; 16],
    /// Its public commitments.
    pub commitments: SigningCommitments,
    /// After this (the coordinator's monotonic clock, ms), the signer may have dropped the
    /// nonce: not used.
    pub usable_until: u64,
}

/// What the registry knows about a connected signer.
#[derive(Debug, Clone)]
pub struct ConnectedSigner {
    /// FROST identifier.
    pub identifier: u16,
    /// Name.
    pub name: String,
    /// Group key it reported (empty before DKG).
    pub group_key: Vec<u8>,
    /// Ed25519 group key it reported (empty before that DKG).
    pub ed25519_group_key: Vec<u8>,
    /// Key epochs of its shares (secp256k1, Ed25519).
    pub key_epochs: [u32; 2],
    /// Unix ms of the last message it sent (its hello, an answer).
    pub last_seen_ms: u64,
}

/// The set of live signer links.
pub struct Registry {
    links: Mutex<BTreeMap<u16, Link>>,
    next: AtomicU64,
    /// The coordinator's clock: last contact on its wall clock, pool lifetimes and refill
    /// back-off on its monotonic clock.
    clock: Arc<dyn Clock>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Updates under these locks are single map operations; a poisoned lock still holds
    // consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Handle the link task uses to deliver answers and to unregister.
pub struct LinkHandle {
    /// Identifier.
    pub identifier: u16,
    conn: u64,
    pending: Pending,
    last_seen: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
}

impl LinkHandle {
    /// Delivers an answer to whoever waits for `request_id`. Unknown ids are dropped.
    pub fn deliver(&self, request_id: u64, body: pb::signer_message::Body) -> bool {
        self.last_seen.store(self.clock.now_ms(), Ordering::Relaxed);
        match lock(&self.pending).remove(&request_id) {
            Some(tx) => tx.send(body).is_ok(),
            None => false,
        }
    }
}

impl Registry {
    /// No link yet; time read from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            links: Mutex::default(),
            next: AtomicU64::new(0),
            clock,
        }
    }

    /// Milliseconds on the coordinator's monotonic clock (pool lifetimes).
    pub fn mono_ms(&self) -> u64 {
        self.clock.mono_ms()
    }

    /// Registers a new link for `identifier`, replacing any older one.
    pub fn register(
        &self,
        identifier: u16,
        name: String,
        group_key: Vec<u8>,
        ed25519_group_key: Vec<u8>,
        key_epochs: [u32; 2],
        tx: mpsc::Sender<Result<pb::CoordinatorMessage, tonic::Status>>,
    ) -> LinkHandle {
        let conn = self.next.fetch_add(1, Ordering::Relaxed);
        let pending: Pending = Arc::default();
        let last_seen = Arc::new(AtomicU64::new(self.clock.now_ms()));
        lock(&self.links).insert(
            identifier,
            Link {
                conn,
                name,
                group_key,
                ed25519_group_key,
                key_epochs,
                last_seen: last_seen.clone(),
                tx,
                pending: pending.clone(),
                pool: VecDeque::new(),
                refilling: false,
                refill_after: None,
            },
        );
        LinkHandle {
            identifier,
            conn,
            pending,
            last_seen,
            clock: self.clock.clone(),
        }
    }

    /// Removes the link if it is still the one `handle` registered; pending calls fail.
    pub fn unregister(&self, handle: &LinkHandle) {
        let mut links = lock(&self.links);
        if links
            .get(&handle.identifier)
            .is_some_and(|l| l.conn == handle.conn)
        {
            links.remove(&handle.identifier);
        }
        lock(&handle.pending).clear();
    }

    /// Drops every link (their outbound streams end, so signers see the coordinator go) and
    /// fails pending calls. Used at shutdown, so that open streams do not hold the drain.
    pub fn close_all(&self) {
        let links = std::mem::take(&mut *lock(&self.links));
        for l in links.values() {
            lock(&l.pending).clear();
        }
    }

    /// Updates the group key of `scheme` a signer reports.
    pub fn set_group_key(
        &self,
        identifier: u16,
        scheme: quorate_core::message::Scheme,
        key: Vec<u8>,
    ) {
        use quorate_core::message::Scheme;
        if let Some(l) = lock(&self.links).get_mut(&identifier) {
            match scheme {
                Scheme::Secp256k1 => l.group_key = key,
                Scheme::Ed25519 => l.ed25519_group_key = key,
            }
        }
    }

    /// Records the key epoch of a signer's `scheme` share.
    pub fn set_key_epoch(
        &self,
        identifier: u16,
        scheme: quorate_core::message::Scheme,
        epoch: u32,
    ) {
        use quorate_core::message::Scheme;
        if let Some(l) = lock(&self.links).get_mut(&identifier) {
            match scheme {
                Scheme::Secp256k1 => l.key_epochs[0] = epoch,
                Scheme::Ed25519 => l.key_epochs[1] = epoch,
            }
        }
    }

    /// Currently connected signers, by identifier.
    pub fn connected(&self) -> Vec<ConnectedSigner> {
        lock(&self.links)
            .iter()
            .map(|(id, l)| ConnectedSigner {
                identifier: *id,
                name: l.name.clone(),
                group_key: l.group_key.clone(),
                ed25519_group_key: l.ed25519_group_key.clone(),
                key_epochs: l.key_epochs,
                last_seen_ms: l.last_seen.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Takes the oldest usable pre-generated commitment of a signer, dropping expired ones.
    /// Each is handed out once.
    pub fn take_presigned(&self, identifier: u16) -> Option<Presigned> {
        let mut links = lock(&self.links);
        let pool = &mut links.get_mut(&identifier)?.pool;
        let now = self.clock.mono_ms();
        while let Some(p) = pool.pop_front() {
            if p.usable_until > now {
                return Some(p);
            }
        }
        None
    }

    /// How many pre-generated commitments each connected signer has in its pool.
    pub fn presigned(&self) -> BTreeMap<u16, usize> {
        lock(&self.links)
            .iter()
            .map(|(id, l)| (*id, l.pool.len()))
            .collect()
    }

    /// Forgets a signer's pre-generated commitments (it said it does not know one).
    pub fn clear_presigned(&self, identifier: u16) {
        if let Some(l) = lock(&self.links).get_mut(&identifier) {
            l.pool.clear();
        }
    }

    /// Claims the right to refill a signer's pool if it holds fewer than `low` commitments,
    /// no refill is in flight and none failed lately; returns the link to refill.
    pub fn begin_refill(&self, identifier: u16, low: usize) -> Option<u64> {
        let mut links = lock(&self.links);
        let l = links.get_mut(&identifier)?;
        let now = self.clock.mono_ms();
        if l.refilling || l.pool.len() >= low || l.refill_after.is_some_and(|t| now < t) {
            return None;
        }
        l.refilling = true;
        Some(l.conn)
    }

    /// Ends a refill of link `conn`: adds what it brought (nothing if it failed, and then no
    /// refill is asked for during `backoff`). A link replaced meanwhile keeps nothing.
    pub fn end_refill(&self, identifier: u16, conn: u64, got: Vec<Presigned>, backoff: Duration) {
        let mut links = lock(&self.links);
        let Some(l) = links.get_mut(&identifier).filter(|l| l.conn == conn) else {
            return;
        };
        l.refilling = false;
        l.refill_after = got
            .is_empty()
            .then(|| self.clock.mono_ms() + backoff.as_millis() as u64);
        l.pool.extend(got);
    }

    /// Sends a request to a signer and waits for its answer.
    pub async fn call(
        &self,
        identifier: u16,
        request: Request,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        self.call_on(identifier, None, request, timeout).await
    }

    /// [`Self::call`], only over link `conn` if given: a replaced link is not called.
    pub async fn call_on(
        &self,
        identifier: u16,
        conn: Option<u64>,
        request: Request,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let request_id = self.next.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer_rx) = oneshot::channel();
        let (tx, pending) = {
            let links = lock(&self.links);
            let link = links
                .get(&identifier)
                .filter(|l| conn.is_none_or(|c| l.conn == c))
                .ok_or(CallError::Disconnected(identifier))?;
            lock(&link.pending).insert(request_id, answer_tx);
            (link.tx.clone(), link.pending.clone())
        };
        let msg = pb::CoordinatorMessage {
            request_id,
            body: Some(request.into()),
        };
        let outcome = tokio::time::timeout(timeout, async {
            tx.send(Ok(msg))
                .await
                .map_err(|_| CallError::Disconnected(identifier))?;
            answer_rx
                .await
                .map_err(|_| CallError::Disconnected(identifier))
        })
        .await;
        lock(&pending).remove(&request_id);
        let body = outcome.unwrap_or(Err(CallError::Timeout(identifier)))?;
        Answer::try_from(body).map_err(|e| CallError::Malformed(identifier, e.to_string()))
    }
}
