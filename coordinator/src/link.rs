//! The signer-link service: signers dial in and hold one stream each. A signer is recognised
//! only by its client certificate matching the manifest; what it claims in its hello must agree.

use std::{pin::Pin, sync::Arc, time::Duration};

use quorate_core::{
    audit::{self, Event},
    link::Hello,
    refusal::{Refusal, Rule},
};
use quorate_wire::{
    manifest::SignerEntry,
    signer::{self as pb, signer_link_server::SignerLink},
    tls::{peer_identity, Role},
};
use tokio::sync::mpsc;
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::{info, warn};

use crate::{registry::LinkHandle, state::Coordinator};

/// A signer link refused, as every refusal is: "rule: reason", the trailer and the details.
fn refused(code: Code, rule: Rule, reason: String) -> Status {
    crate::withdrawals::rule_status(code, &Refusal::permanent(rule, reason), 0)
}

/// How long a signer has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The signer-link service.
pub struct LinkService {
    /// Shared coordinator state.
    pub state: Arc<Coordinator>,
}

type OutStream = Pin<Box<dyn Stream<Item = Result<pb::CoordinatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl SignerLink for LinkService {
    type AttachStream = OutStream;

    async fn attach(
        &self,
        req: Request<Streaming<pb::SignerMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let peer = peer_identity(&req)?;
        if peer.role != Role::Signer {
            return Err(refused(
                Code::PermissionDenied,
                Rule::TransportRole,
                format!(
                    "the signer link needs a `signer` certificate; `{}` presented `{}`",
                    peer.name, peer.role
                ),
            ));
        }
        let manifest = &self.state.manifest;
        let entry = manifest
            .signer_by_cert(&peer)
            .ok_or_else(|| {
                warn!(name = %peer.name, "signer certificate not in the manifest");
                self.state.audit(
                    Event::refused(
                        "signer-link",
                        &Rule::SignerUnknown.as_str(),
                        "a signer certificate from the cluster CA that is not in the manifest",
                    )
                    .with("certificate", hex::encode(peer.cert_sha256))
                    .with("name", &peer.name),
                );
                refused(
                    Code::PermissionDenied,
                    Rule::SignerUnknown,
                    "this certificate is not a signer of the manifest".into(),
                )
            })?
            .clone();
        let mut inbound = req.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(pb::SignerMessage {
                body: Some(pb::signer_message::Body::Hello(h)),
                ..
            }))) => h,
            _ => {
                return Err(refused(
                    Code::InvalidArgument,
                    Rule::SignerHello,
                    "the first message must be a hello".into(),
                ))
            }
        };
        if hello.identifier != u32::from(entry.identifier) || hello.name != entry.name {
            warn!(signer = %entry.name, claimed = hello.identifier, "hello does not match certificate");
            self.state.audit(
                Event::refused(
                    "signer-link",
                    &Rule::SignerIdentity.as_str(),
                    "the hello's name or identifier is not the certificate's",
                )
                .with("signer", &entry.name)
                .with("claimed", hello.identifier.to_string()),
            );
            return Err(refused(
                Code::PermissionDenied,
                Rule::SignerIdentity,
                format!(
                    "certificate is `{}` (identifier {}), hello claims `{}` ({})",
                    entry.name, entry.identifier, hello.name, hello.identifier
                ),
            ));
        }
        if hello.manifest_hash != manifest.hash() {
            return Err(refused(
                Code::FailedPrecondition,
                Rule::ManifestMismatch,
                "the signer pins a different cluster manifest".into(),
            ));
        }
        // Its identifier is the certificate's (checked above), so this converts.
        let hello = Hello::try_from(hello)
            .map_err(|e| refused(Code::InvalidArgument, Rule::SignerHello, e.to_string()))?;
        self.state
            .note_certificate(Some(entry.identifier), peer.not_after_unix);
        let (tx, rx) = mpsc::channel(256);
        let handle = self
            .state
            .admit_signer(&entry, hello, &peer.cert_sha256, tx);
        let state = self.state.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(msg)) => {
                        if let Some(body) = msg.body {
                            if !handle.deliver(msg.request_id, body) {
                                warn!(signer = %entry.name, request = msg.request_id, "unsolicited message dropped");
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        info!(signer = %entry.name, error = %e, "signer stream error");
                        break;
                    }
                }
            }
            state.signer_gone(&handle, &entry);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

impl Coordinator {
    /// Takes a signer whose identity and hello were checked into the registry, with `tx`
    /// carrying requests to it, and starts what a new link needs (policy catch-up, a refresh
    /// to resume). Answers are delivered through the handle returned.
    pub fn admit_signer(
        self: &Arc<Self>,
        entry: &SignerEntry,
        hello: Hello,
        cert_sha256: &[u8; 32],
        tx: mpsc::Sender<Result<pb::CoordinatorMessage, Status>>,
    ) -> LinkHandle {
        let handle = self.registry.register(
            entry.identifier,
            entry.name.clone(),
            hello.group_public_key.clone(),
            hello.ed25519_group_public_key.clone(),
            // With the link, under one lock: never a moment at epoch 0 after a refresh.
            [hello.key_epoch, hello.ed25519_key_epoch],
            tx,
        );
        info!(signer = %entry.name, identifier = entry.identifier, "signer connected");
        self.audit(
            Event::new(audit::kind::SIGNER_CONNECTED)
                .with("signer", &entry.name)
                .with("identifier", entry.identifier.to_string())
                .with("certificate", hex::encode(cert_sha256))
                .with("group_key", hex::encode(&hello.group_public_key))
                .with(
                    "ed25519_group_key",
                    hex::encode(&hello.ed25519_group_public_key),
                )
                .with("version", &hello.version),
        );
        let resume = self.clone();
        let said = hello.clone();
        let reported = hello.policy.clone();
        let version = reported.version;
        self.note_signer_policy(entry.identifier, reported);
        let catchup = self.clone();
        let who = entry.identifier;
        tokio::spawn(async move { catchup.catch_up(who, version).await });
        tokio::spawn(async move { resume.resume_refresh(who, &said).await });
        handle
    }

    /// A signer's link ended: it leaves the registry, and the audit log says so.
    pub fn signer_gone(&self, handle: &LinkHandle, entry: &SignerEntry) {
        self.registry.unregister(handle);
        info!(signer = %entry.name, "signer disconnected");
        self.audit(
            Event::new(audit::kind::SIGNER_DROPPED)
                .with("signer", &entry.name)
                .with("identifier", entry.identifier.to_string()),
        );
    }
}
