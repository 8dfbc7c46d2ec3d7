//! The signer's only connections: it dials each configured coordinator over mutual TLS, holds
//! one bidirectional stream to each, and answers requests on it. It listens on no port. On any
//! failure a link reconnects with capped exponential backoff; the links are independent (every
//! safety decision is the signer's own, whichever coordinator asks).

use std::{future::Future, sync::Arc, time::Duration};

use quorate_core::{
    link::{Answer, Request},
    refusal::{Refusal, Rule},
};
use quorate_wire::{
    signer::{self as pb, coordinator_message::Body as Req, signer_link_client::SignerLinkClient},
    tls,
};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{error, info, warn};

use crate::node::{LinkId, Node};

/// Most requests from one link handled at once; the next waits for a slot.
pub const MAX_IN_FLIGHT: usize = 128;
/// Most request bytes from one link held at once (a request larger than this waits until it
/// is the only one).
pub const MAX_BYTES_IN_FLIGHT: u32 = 64 << 20;

/// Where and how to reach one coordinator.
pub struct LinkTarget {
    /// Its place in the configured list (nonces and metrics are kept per link).
    pub link: LinkId,
    /// `host:port`.
    pub addr: String,
    /// Name on the coordinator's certificate.
    pub server_name: String,
    /// Our TLS client configuration.
    pub tls: Arc<rustls::ClientConfig>,
}

/// Answers one request as it came over the link: the edge between the wire and the node. A
/// body converts to its typed [`Request`] and the node's [`Answer`](quorate_core::link::Answer)
/// converts back; a body that does not convert is refused as the node would have refused such
/// input ([`Node::refuse_malformed`]), and an empty body or one of a type this version does not
/// know is refused by [`Node::refuse_unknown`]. Counted and recorded as any refusal either way.
///
/// Blocking, as [`Node::handle`] is: the link runs each request on a blocking thread, which
/// converts it (a policy document is parsed, validated and re-encoded), answers it and sends
/// the answer: one hop from the link's reader and none back.
pub fn answer(node: &Arc<Node>, link: LinkId, body: Option<Req>) -> pb::signer_message::Body {
    let Some(body) = body else {
        return node.refuse_unknown().into();
    };
    // Kept to name the withdrawal if the request is refused before it could be read.
    let intent = match &body {
        Req::Sign(r) => Some(r.intent.clone()),
        _ => None,
    };
    match Request::try_from(body) {
        Ok(request) => node.handle(link, request).into(),
        Err(malformed) => node.refuse_malformed(&malformed, intent.as_deref()).into(),
    }
}

/// Keeps the link up until `shutdown` resolves.
pub async fn maintain(node: Arc<Node>, target: LinkTarget, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = session(&node, &target);
        tokio::select! {
            _ = &mut shutdown => {
                info!(signer = %node.name, coordinator = %target.addr, "link shutting down");
                return;
            }
            outcome = attempt => {
                match outcome {
                    Ok(()) => {
                        info!(signer = %node.name, coordinator = %target.addr, "coordinator closed the link; reconnecting");
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => warn!(signer = %node.name, coordinator = %target.addr, error = %e, retry_in = ?backoff, "link down"),
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn session(node: &Arc<Node>, target: &LinkTarget) -> Result<(), String> {
    let channel = tls::connect(&target.addr, &target.server_name, target.tls.clone())
        .await
        .map_err(|e| e.to_string())?;
    // Requests may carry a whole policy document; answers stay small.
    let mut client = SignerLinkClient::new(channel)
        .max_decoding_message_size(quorate_wire::MAX_POLICY_MESSAGE_BYTES)
        .max_encoding_message_size(quorate_wire::MAX_POLICY_MESSAGE_BYTES);
    // Answers waiting for the coordinator to read them: with MAX_IN_FLIGHT, the most a link
    // can hold of ours is (MAX_IN_FLIGHT + 64) answers; all are small but a sync answer, which
    // carries at most one policy document.
    let (tx, rx) = mpsc::channel::<pb::SignerMessage>(64);
    let hello = pb::SignerMessage {
        request_id: 0,
        body: Some(pb::signer_message::Body::Hello(node.hello().into())),
    };
    tx.send(hello)
        .await
        .map_err(|_| "link closed".to_string())?;
    let mut inbound = client
        .attach(ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?
        .into_inner();
    info!(signer = %node.name, coordinator = %target.addr, "connected to coordinator");
    // A new link: nothing committed over an earlier one can be used any more.
    let link = target.link;
    node.forget_nonces(link);
    let _up = LinkUp::new(node.clone(), link, &target.addr);
    // Requests in flight on this link are bounded: a coordinator that sends without reading
    // the answers stalls its own stream (HTTP/2 flow control) instead of growing our memory.
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let bytes = Arc::new(Semaphore::new(MAX_BYTES_IN_FLIGHT as usize));
    while let Some(msg) = inbound
        .message()
        .await
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?
    {
        // Both a count and the bytes of the requests held: a few whole policy documents, or
        // many small requests, never both at once.
        node.touch_link(link);
        let size = u32::try_from(prost::Message::encoded_len(&msg))
            .unwrap_or(u32::MAX)
            .clamp(1, MAX_BYTES_IN_FLIGHT);
        let (Ok(permit), Ok(held)) = (
            in_flight.clone().acquire_owned().await,
            bytes.clone().acquire_many_owned(size).await,
        ) else {
            break;
        };
        let node = node.clone();
        let tx = tx.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let request = msg.request_id;
            let message = reply(&node.name, request, || answer(&node, link, msg.body));
            send(&runtime, &tx, message, (permit, held), move || {
                warn!(signer = %node.name, request, "link closed before the answer could be sent");
            });
        });
    }
    Ok(())
}

/// The message answering request `request`, with the body `answered` makes. A handler that
/// panics still answers (a `signer-storage` refusal), so the coordinator does not wait out its
/// timeout (the panic itself is in the log); an answer the stream could not carry, which would
/// end the link for every request on it, is refused alone (`bad-request`).
fn reply(
    signer: &str,
    request: u64,
    answered: impl FnOnce() -> pb::signer_message::Body,
) -> pb::SignerMessage {
    let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(answered));
    let mut answer = answered.unwrap_or_else(|_| {
        error!(signer, request, "a request's handler panicked");
        refused(
            Rule::SignerStorage,
            "the signer's task for this request failed",
        )
    });
    if answer.encoded_len() > quorate_wire::MAX_POLICY_MESSAGE_BYTES - 64 {
        answer = refused(
            Rule::BadRequest,
            "the answer would exceed the link's message limit",
        );
    }
    pb::SignerMessage {
        request_id: request,
        body: Some(answer),
    }
}

/// Hands `message` to the link's writer from a blocking thread, releasing `held` (the
/// request's place in flight) once it is handed over. If the coordinator is slow to read its
/// answers and the writer's queue is full, the answer waits for room as a task on `runtime`,
/// not on the blocking thread, still holding its place. `closed` runs if the link is gone.
fn send<H: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    tx: &mpsc::Sender<pb::SignerMessage>,
    message: pb::SignerMessage,
    held: H,
    closed: impl FnOnce() + Send + 'static,
) {
    match tx.try_send(message) {
        Ok(()) => drop(held),
        Err(mpsc::error::TrySendError::Full(message)) => {
            let tx = tx.clone();
            runtime.spawn(async move {
                if tx.send(message).await.is_err() {
                    closed();
                }
                drop(held);
            });
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            drop(held);
            closed();
        }
    }
}

/// A permanent refusal the link itself gives, converted as the node's answers are.
fn refused(rule: Rule, reason: &str) -> pb::signer_message::Body {
    Answer::refused(Refusal::permanent(rule, reason)).into()
}

/// Marks the link up for the metrics while it lives, down when it ends however it ends.
struct LinkUp(Arc<Node>, LinkId, String);

impl LinkUp {
    fn new(node: Arc<Node>, link: LinkId, addr: &str) -> Self {
        node.set_link_up(link, addr, true);
        Self(node, link, addr.to_string())
    }
}

impl Drop for LinkUp {
    fn drop(&mut self) {
        self.0.set_link_up(self.1, &self.2, false);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::{mpsc, Semaphore};

    use super::{pb, reply, send};

    fn rule(m: &pb::SignerMessage) -> &str {
        match &m.body {
            Some(pb::signer_message::Body::Refusal(r)) => &r.rule,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn a_handler_that_panics_is_answered_with_a_refusal() {
        let m = reply("signer-1", 42, || panic!("a broken invariant"));
        assert_eq!(m.request_id, 42);
        assert_eq!(rule(&m), "signer-storage");
        let ok = reply("signer-1", 7, || {
            pb::signer_message::Body::LedgerAck(pb::LedgerAck { debited: true })
        });
        assert_eq!(ok.request_id, 7);
        assert!(matches!(
            ok.body,
            Some(pb::signer_message::Body::LedgerAck(pb::LedgerAck {
                debited: true
            }))
        ));
    }

    #[test]
    fn an_answer_too_large_for_the_link_is_refused_alone() {
        let m = reply("signer-1", 3, || {
            pb::signer_message::Body::Sign(pb::SignResponse {
                share: vec![0; quorate_wire::MAX_POLICY_MESSAGE_BYTES],
            })
        });
        assert_eq!((m.request_id, rule(&m)), (3, "bad-request"));
    }

    fn message(id: u64) -> pb::SignerMessage {
        pb::SignerMessage {
            request_id: id,
            body: None,
        }
    }

    /// A coordinator slow to read: the answer waits as a task, holding its place in flight
    /// until it is handed over, and the blocking thread returns at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_waits_for_a_slow_reader_as_a_task_holding_its_place() {
        let (tx, mut rx) = mpsc::channel(1);
        tx.send(message(1)).await.unwrap();
        let places = Arc::new(Semaphore::new(1));
        let held = places.clone().acquire_owned().await.unwrap();
        let runtime = tokio::runtime::Handle::current();
        let sender = tx.clone();
        // On a blocking thread, as the link runs it; it returns though the queue is full.
        tokio::task::spawn_blocking(move || {
            send(&runtime, &sender, message(2), held, || {
                panic!("the link is up")
            });
        })
        .await
        .unwrap();
        assert_eq!(places.available_permits(), 0, "still in flight");
        assert_eq!(rx.recv().await.unwrap().request_id, 1);
        assert_eq!(rx.recv().await.unwrap().request_id, 2);
        // Released once handed over.
        drop(places.acquire().await.unwrap());
        // Room in the queue: handed over and released at once.
        let held = places.clone().acquire_owned().await.unwrap();
        let runtime = tokio::runtime::Handle::current();
        send(&runtime, &tx, message(3), held, || panic!("the link is up"));
        assert_eq!(places.available_permits(), 1);
        assert_eq!(rx.recv().await.unwrap().request_id, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_to_a_closed_link_releases_its_place_and_says_so() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let places = Arc::new(Semaphore::new(1));
        let held = places.clone().acquire_owned().await.unwrap();
        let (told, mut heard) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Handle::current();
        send(&runtime, &tx, message(1), held, move || {
            told.send(()).unwrap();
        });
        assert_eq!(places.available_permits(), 1);
        assert!(heard.recv().await.is_some(), "closed was not reported");
        // Full, then closed while waiting: reported by the waiting task.
        let (tx, rx) = mpsc::channel(1);
        tx.send(message(1)).await.unwrap();
        let held = places.clone().acquire_owned().await.unwrap();
        let (told, mut heard) = mpsc::unbounded_channel();
        send(&runtime, &tx, message(2), held, move || {
            told.send(()).unwrap();
        });
        assert_eq!(places.available_permits(), 0);
        drop(rx);
        assert!(heard.recv().await.is_some(), "closed was not reported");
        drop(places.acquire().await.unwrap());
    }
}
