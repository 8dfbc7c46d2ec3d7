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
            let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                answer(&node, link, msg.body)
            }));
            // A handler that panicked still answers, so the coordinator does not wait out
            // its timeout (the panic itself is in the log).
            let mut answer = answered.unwrap_or_else(|_| {
                error!(signer = %node.name, request = msg.request_id, "a request's handler panicked");
                refused(Rule::SignerStorage, "the signer's task for this request failed")
            });
            // An answer the stream could not carry would end the link for every request on
            // it: refuse that one request instead.
            if answer.encoded_len() > quorate_wire::MAX_POLICY_MESSAGE_BYTES - 64 {
                answer = refused(
                    Rule::BadRequest,
                    "the answer would exceed the link's message limit",
                );
            }
            let message = pb::SignerMessage {
                request_id: msg.request_id,
                body: Some(answer),
            };
            let request = msg.request_id;
            let closed = move |node: &Node| warn!(signer = %node.name, request, "link closed before the answer could be sent");
            match tx.try_send(message) {
                Ok(()) => drop((permit, held)),
                // The coordinator is slow to read its answers: this one waits for room as a
                // task, not on a blocking thread, still holding its place in flight.
                Err(mpsc::error::TrySendError::Full(message)) => {
                    runtime.spawn(async move {
                        if tx.send(message).await.is_err() {
                            closed(&node);
                        }
                        drop((permit, held));
                    });
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    drop((permit, held));
                    closed(&node);
                }
            }
        });
    }
    Ok(())
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
