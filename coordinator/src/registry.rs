//! Connected signers and request/response matching over their streams.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
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
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<pb::signer_message::Body>>>>;

struct Link {
    conn: u64,
    name: String,
    group_key: Vec<u8>,
    tx: mpsc::Sender<Result<pb::CoordinatorMessage, tonic::Status>>,
    pending: Pending,
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
}

/// The set of live signer links.
#[derive(Default)]
pub struct Registry {
    links: Mutex<BTreeMap<u16, Link>>,
    next: AtomicU64,
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
}

impl LinkHandle {
    /// Delivers an answer to whoever waits for `request_id`. Unknown ids are dropped.
    pub fn deliver(&self, request_id: u64, body: pb::signer_message::Body) -> bool {
        match lock(&self.pending).remove(&request_id) {
            Some(tx) => tx.send(body).is_ok(),
            None => false,
        }
    }
}

impl Registry {
    /// Registers a new link for `identifier`, replacing any older one.
    pub fn register(
        &self,
        identifier: u16,
        name: String,
        group_key: Vec<u8>,
        tx: mpsc::Sender<Result<pb::CoordinatorMessage, tonic::Status>>,
    ) -> LinkHandle {
        let conn = self.next.fetch_add(1, Ordering::Relaxed);
        let pending: Pending = Arc::default();
        lock(&self.links).insert(
            identifier,
            Link {
                conn,
                name,
                group_key,
                tx,
                pending: pending.clone(),
            },
        );
        LinkHandle {
            identifier,
            conn,
            pending,
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

    /// Updates the group key a signer reports.
    pub fn set_group_key(&self, identifier: u16, key: Vec<u8>) {
        if let Some(l) = lock(&self.links).get_mut(&identifier) {
            l.group_key = key;
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
            })
            .collect()
    }

    /// Sends a request to a signer and waits for its answer.
    pub async fn call(
        &self,
        identifier: u16,
        body: pb::coordinator_message::Body,
        timeout: Duration,
    ) -> Result<pb::signer_message::Body, CallError> {
        let request_id = self.next.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer_rx) = oneshot::channel();
        let (tx, pending) = {
            let links = lock(&self.links);
            let link = links
                .get(&identifier)
                .ok_or(CallError::Disconnected(identifier))?;
            lock(&link.pending).insert(request_id, answer_tx);
            (link.tx.clone(), link.pending.clone())
        };
        let msg = pb::CoordinatorMessage {
            request_id,
            body: Some(body),
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
        outcome.unwrap_or(Err(CallError::Timeout(identifier)))
    }
}
