//! The withdrawal service the exchange backend calls. Validates at the edge, binds each id to
//! one intent forever (S6), and waits for the outcome up to the call's deadline.

use std::{pin::Pin, sync::Arc, time::Duration};

use quorate_core::{
    audit::{self, Event},
    backend,
    intent::WithdrawalIntent,
    message::Scheme,
    refusal::{Refusal, Rule},
};
use quorate_wire::{
    convert::{intent_from_proto, intent_to_proto},
    withdrawal::{self as pb, withdrawal_service_server::WithdrawalService},
    RULE_METADATA_KEY,
};
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::{metadata::MetadataValue, Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{info, warn, Instrument};

use crate::{
    state::{Coordinator, GroupKeys},
    store::{Insert, Record, Status as St, StoreError, SCHEMA_VERSION},
};

/// The withdrawal service.
pub struct WithdrawalApi {
    /// Shared state.
    pub state: Arc<Coordinator>,
}

impl WithdrawalApi {
    /// A refusal of a submission: recorded in the audit log, answered as a status.
    fn refuse(&self, id: &str, r: &Refusal) -> Status {
        self.state.audit_refusal("submit", id, r);
        self.state.count_outcome("refused", &r.rule.as_str());
        refusal_status(r, self.state.now_ms())
    }
}

/// The audit record of a withdrawal accepted for processing.
fn received(intent: &WithdrawalIntent, rec: &Record, next: &str) -> Event {
    Event::new(audit::kind::WITHDRAWAL_RECEIVED)
        .with("withdrawal", &intent.id)
        .with("digest", &rec.digest)
        .with("chain", intent.chain.as_str())
        .with("asset", &intent.asset)
        .with("destination", &intent.destination)
        .with("amount", intent.amount.to_string())
        .with("next", next)
}

/// A refusal as a gRPC status: the rule tag leads the message and rides in a trailer.
pub fn refusal_status(r: &Refusal, now_ms: u64) -> Status {
    let code = if r.rule == Rule::WithdrawalIdConflict {
        Code::AlreadyExists
    } else if r.rule == Rule::NotEnoughSigners || r.rule == Rule::CoordinatorRestarted {
        Code::Unavailable
    } else if r.rule == Rule::NoGroupKey {
        Code::FailedPrecondition
    } else if r.permanent {
        Code::PermissionDenied
    } else if r.rule.is_velocity() {
        Code::ResourceExhausted
    } else {
        Code::Unavailable
    };
    rule_status(code, r, now_ms)
}

/// The domain of every `google.rpc.ErrorInfo` Quorate sends.
pub const ERROR_DOMAIN: &str = "quorate";

/// How long a retryable refusal with no known end asks the caller to wait.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// A refusal as a gRPC status: `code` and "rule: reason" as the message, the rule in the
/// `quorate-rule` trailer, and the standard details (`grpc-status-details-bin`): a
/// `google.rpc.ErrorInfo` whose reason is the rule tag (metadata: `permanent`, and for a
/// velocity rule its `window`, and `retry_at_ms` when known), and for a retryable refusal a
/// `google.rpc.RetryInfo` with the time until it frees up (or [`DEFAULT_RETRY_DELAY`]).
pub fn rule_status(code: Code, r: &Refusal, now_ms: u64) -> Status {
    let mut metadata =
        std::collections::HashMap::from([("permanent".to_string(), r.permanent.to_string())]);
    if let Some(window) = r.rule.velocity_window() {
        metadata.insert("window".into(), window.to_string());
    }
    if let Some(at) = r.retry_at_ms {
        metadata.insert("retry_at_ms".into(), at.to_string());
    }
    let mut details = ErrorDetails::new();
    details.set_error_info(r.rule.to_string(), ERROR_DOMAIN, metadata);
    let retryable = !r.permanent
        && matches!(
            code,
            Code::Unavailable | Code::ResourceExhausted | Code::FailedPrecondition
        );
    if retryable {
        let delay = r.retry_at_ms.map_or(DEFAULT_RETRY_DELAY, |at| {
            Duration::from_millis(at.saturating_sub(now_ms))
        });
        details.set_retry_info(Some(delay));
    }
    let mut s = Status::with_error_details(code, format!("{}: {}", r.rule, r.reason), details);
    if let Ok(v) = MetadataValue::try_from(r.rule.as_str().as_ref()) {
        s.metadata_mut().insert(RULE_METADATA_KEY, v);
    }
    s
}

/// A request refused at the edge: INVALID_ARGUMENT, never retryable as it is.
pub fn invalid(rule: Rule, reason: impl std::fmt::Display) -> Status {
    rule_status(
        Code::InvalidArgument,
        &Refusal::permanent(rule, reason.to_string()),
        0,
    )
}

/// A storage failure: details to the log, an opaque id to the caller.
pub fn internal(e: &StoreError) -> Status {
    let id = format!("{:016x}", rand::random::<u64>());
    warn!(error = %e, error_id = %id, "internal error");
    Status::internal(format!("internal error {id}"))
}

/// Admin approvals stored with a record.
pub fn record_signatures(r: &Record) -> Vec<quorate_core::policy::AdminSignature> {
    r.approvals
        .iter()
        .filter_map(|(a, s)| {
            Some(quorate_core::policy::AdminSignature {
                admin: quorate_core::identity::IdentityPublic::from_hex(a).ok()?,
                signature: hex::decode(s).ok()?,
            })
        })
        .collect()
}

/// Converts a stored record to its wire form.
pub fn record_to_proto(r: &Record, keys: &GroupKeys) -> pb::Withdrawal {
    // A Solana payout was signed by the Ed25519 group; everything else by secp256k1.
    let group_key = keys.of(if r.solana_transaction.is_some() {
        Scheme::Ed25519
    } else {
        Scheme::Secp256k1
    });
    let intent = hex::decode(&r.intent)
        .ok()
        .and_then(|b| WithdrawalIntent::decode(&b).ok());
    let digest = hex::decode(&r.digest).unwrap_or_default();
    let status = match r.status {
        St::Received => pb::Status::Received,
        St::Signing => pb::Status::Signing,
        St::Signed => pb::Status::Signed,
        St::Refused => pb::Status::Refused,
        St::Failed => pb::Status::Failed,
        St::Expired => pb::Status::Expired,
        St::PendingApproval => pb::Status::PendingApproval,
    };
    pb::Withdrawal {
        id: r.id.clone(),
        intent: intent.as_ref().map(intent_to_proto),
        status: status as i32,
        message: r
            .message
            .as_ref()
            .and_then(|m| hex::decode(m).ok())
            .unwrap_or_else(|| digest.clone()),
        digest,
        signature: r
            .signature
            .as_ref()
            .and_then(|s| hex::decode(s).ok())
            .unwrap_or_default(),
        group_public_key: if r.status == St::Signed {
            group_key.to_vec()
        } else {
            Vec::new()
        },
        rule: r.rule.clone().unwrap_or_default(),
        reason: r.reason.clone().unwrap_or_default(),
        retryable: r.status == St::Failed,
        updated_at_ms: r.updated_ms,
        signers: r.signers.iter().map(|s| u32::from(*s)).collect(),
        evm_call: r
            .evm_call
            .as_ref()
            .filter(|_| r.status == St::Signed)
            .and_then(|(to, data)| {
                Some(pb::EvmCall {
                    to: to.clone(),
                    data: hex::decode(data).ok()?,
                })
            }),
        solana_transaction: r
            .solana_transaction
            .clone()
            .filter(|_| r.status == St::Signed)
            .unwrap_or_default(),
    }
}

/// Parses a `grpc-timeout` header value (e.g. `1500m`, `30S`).
fn grpc_timeout<T>(req: &Request<T>) -> Option<Duration> {
    let v = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

impl WithdrawalApi {
    fn answer(&self, r: &Record) -> Result<Response<pb::Withdrawal>, Status> {
        match r.status {
            St::Refused | St::Failed | St::Expired => {
                let rule = Rule::parse(r.rule.as_deref().unwrap_or("unknown"));
                let reason = r.reason.clone().unwrap_or_default();
                let refusal = if r.status == St::Failed {
                    Refusal::temporary(rule, reason).retry_at(r.retry_at_ms)
                } else {
                    Refusal::permanent(rule, reason)
                };
                Err(refusal_status(&refusal, self.state.now_ms()))
            }
            _ => Ok(Response::new(record_to_proto(r, &self.state.group_keys()))),
        }
    }

    /// A stored withdrawal for this exact intent that never got signed is now past its
    /// expiry: record it as expired (a different intent under the id is left alone).
    async fn expire_if_unsigned(
        &self,
        id: &str,
        digest: &[u8; 32],
        refusal: &Refusal,
    ) -> Result<(), Status> {
        let Some(mut r) = self.state.store.get(id).map_err(|e| internal(&e))? else {
            return Ok(());
        };
        if r.digest == hex::encode(digest) && r.status == St::Failed {
            r.status = St::Expired;
            r.rule = Some(refusal.rule.to_string());
            r.retry_at_ms = None;
            r.reason = Some(refusal.reason.clone());
            r.updated_ms = self.state.now_ms();
            self.state.persist(r).await.map_err(|e| internal(&e))?;
        }
        Ok(())
    }

    /// The stored record of `id`, flushed first if it was written but not yet flushed.
    async fn read_durable(&self, id: &str) -> Result<Option<Record>, Status> {
        let r = self.state.store.get(id).map_err(|e| internal(&e))?;
        self.state
            .ensure_durable([id])
            .await
            .map_err(|e| internal(&e))?;
        Ok(r)
    }

    /// Waits until `id` is final or `wait` passes; returns the latest record. A final record
    /// is returned only once it is on disk.
    async fn wait_final(&self, id: &str, wait: Duration) -> Result<Record, Status> {
        // Registered before the store is read, so an outcome in between is not missed; the
        // guard unregisters however this call ends (a cancelled call included).
        struct Waiting<'a>(&'a Coordinator, &'a str);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.forget_waiters(self.1);
            }
        }
        // Declared first, so it runs after `outcome` is dropped and sees it closed.
        let _waiting = Waiting(&self.state, id);
        let outcome = self.state.await_final(id);
        let current = self
            .read_durable(id)
            .await?
            .ok_or_else(|| Status::not_found("withdrawal vanished"))?;
        if current.status.is_final() {
            return Ok(current);
        }
        match tokio::time::timeout(wait, outcome).await {
            // Sent only after the record's flush.
            Ok(Ok(r)) => Ok(r),
            // Timed out (or the coordinator is going away): the latest record.
            _ => Ok(self.read_durable(id).await?.unwrap_or(current)),
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::Withdrawal, Status>> + Send>>;

#[tonic::async_trait]
impl WithdrawalService for WithdrawalApi {
    async fn submit(
        &self,
        req: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::Withdrawal>, Status> {
        let wait = grpc_timeout(&req)
            .map(|d| d.mul_f64(0.9).saturating_sub(Duration::from_millis(20)))
            .unwrap_or(self.state.signing.default_wait);
        let body = req.into_inner();
        let wire_intent = body
            .intent
            .ok_or_else(|| invalid(Rule::IntentInvalid, "intent is required"))?;
        let intent =
            intent_from_proto(&wire_intent).map_err(|e| invalid(Rule::IntentInvalid, e))?;
        let digest = intent.digest();
        let now = self.state.now_ms();
        // A forged request is refused at the edge and changes nothing. The backend keys are
        // the ones of the policy in force.
        let backend_keys = self.state.policy.backend_keys(now);
        if backend_keys.is_empty() {
            return Err(self.refuse(
                &intent.id,
                &Refusal::temporary(
                    Rule::PolicyMissing,
                    "the coordinator has no policy installed yet",
                ),
            ));
        }
        backend::verify(&backend_keys, &digest, &body.backend_signature).map_err(|mut r| {
            // The digest covers the canonical intent: a destination sent in another form (a
            // lower-case EVM address, say) was normalised before hashing, so a signature over
            // the form as sent cannot verify. Say that, not "wrong key".
            if r.rule == Rule::BackendSignatureInvalid
                && !body.backend_signature.is_empty()
                && wire_intent.destination != intent.destination
            {
                r.reason = format!(
                    "{}; the destination was sent as `{}` and its canonical form is `{}`: sign the intent with the canonical destination (docs/intent.md)",
                    r.reason, wire_intent.destination, intent.destination
                );
            }
            self.refuse(&intent.id, &r)
        })?;
        let store = &self.state.store;
        let expired = now >= intent.expires_at_ms;
        let expired_refusal = || {
            Refusal::permanent(
                Rule::IntentExpired,
                format!(
                    "the intent expired at {} ms; now is {now} ms",
                    intent.expires_at_ms
                ),
            )
        };
        // An id already bound answers from its record (S6), before any check that depends on
        // the time: a signed withdrawal stays signed after its intent expires.
        let existing = store.get(&intent.id).map_err(|e| internal(&e))?;
        let start = match existing {
            Some(existing) => {
                if existing.digest != hex::encode(digest) {
                    warn!(withdrawal = %intent.id, "withdrawal id reused with a different intent");
                    return Err(self.refuse(&intent.id, &Refusal::id_conflict(&intent.id)));
                }
                match existing.status {
                    St::Failed if expired => {
                        let refusal = expired_refusal();
                        self.expire_if_unsigned(&intent.id, &digest, &refusal)
                            .await?;
                        return Err(self.refuse(&intent.id, &refusal));
                    }
                    St::Failed => {
                        // Retryable: sign again under the same id (signers accept the same
                        // id with the same intent) if the policy allows it now.
                        let approvals = record_signatures(&existing);
                        self.state
                            .policy
                            .precheck(&intent, &approvals, now)
                            .map_err(|r| self.refuse(&intent.id, &r))?;
                        let mut again = existing;
                        again.status = St::Signing;
                        again.rule = None;
                        again.reason = None;
                        again.backend_signature = hex::encode(&body.backend_signature);
                        again.updated_ms = now;
                        Some(again)
                    }
                    _ => None,
                }
            }
            None => {
                if expired {
                    return Err(self.refuse(&intent.id, &expired_refusal()));
                }
                if intent.created_at_ms > now + self.state.signing.max_clock_skew.as_millis() as u64
                {
                    return Err(self.refuse(
                        &intent.id,
                        &Refusal::temporary(
                            Rule::IntentNotYetValid,
                            "created_at_ms is in the future beyond the allowed clock skew",
                        ),
                    ));
                }
                // The key group the policy gives this chain (its terms checked on the way).
                let keys = self.state.group_keys();
                let wallet: Option<[u8; 32]> = keys.ed25519.as_slice().try_into().ok();
                let scheme = self
                    .state
                    .policy
                    .chain_format(&intent, wallet.as_ref())
                    .map(|f| f.scheme())
                    .map_err(|r| {
                        // The coordinator's tag for a missing group (a signer says no-key-share).
                        let r = if r.rule == Rule::NoKeyShare {
                            Refusal::temporary(Rule::NoGroupKey, r.reason)
                        } else {
                            r
                        };
                        self.refuse(&intent.id, &r)
                    })?;
                if keys.of(scheme).is_empty() {
                    return Err(self.refuse(
                        &intent.id,
                        &Refusal::temporary(
                            Rule::NoGroupKey,
                            format!(
                                "the cluster has no {scheme} group key yet: run DKG for it first"
                            ),
                        ),
                    ));
                }
                // The early answer from the coordinator's copy of the policy: a refusal
                // stores nothing; above the approval threshold the withdrawal waits.
                let mut status = St::Signing;
                let mut waiting = None;
                if let Err(r) = self.state.policy.precheck(&intent, &[], now) {
                    if r.rule != Rule::PolicyApprovalRequired {
                        info!(withdrawal = %intent.id, rule = %r.rule, reason = %r.reason, "withdrawal refused by policy");
                        return Err(self.refuse(&intent.id, &r));
                    }
                    status = St::PendingApproval;
                    waiting = Some(r);
                }
                let record = Record {
                    v: SCHEMA_VERSION,
                    seq: store.next_seq().map_err(|e| internal(&e))?,
                    id: intent.id.clone(),
                    intent: hex::encode(intent.encode()),
                    backend_signature: hex::encode(&body.backend_signature),
                    digest: hex::encode(digest),
                    status,
                    signature: None,
                    signers: vec![],
                    rule: waiting.as_ref().map(|r| r.rule.to_string()),
                    reason: waiting.as_ref().map(|r| r.reason.clone()),
                    created_ms: now,
                    updated_ms: now,
                    approvals: vec![],
                    message: None,
                    evm_call: None,
                    solana_transaction: None,
                    retry_at_ms: None,
                };
                match store.insert_new(&record).map_err(|e| internal(&e))? {
                    Insert::New if status == St::PendingApproval => {
                        self.state
                            .audit(received(&intent, &record, "pending-approval"));
                        let flushing = store.clone();
                        tokio::task::spawn_blocking(move || flushing.flush())
                            .await
                            .map_err(|e| Status::internal(format!("flush task: {e}")))?
                            .map_err(|e| internal(&e))?;
                        info!(withdrawal = %intent.id, "withdrawal waits for admin approvals");
                        self.state.count_outcome(
                            "pending_approval",
                            &Rule::PolicyApprovalRequired.as_str(),
                        );
                        let _ = self.state.events.send(record.clone());
                        return self.answer(&record);
                    }
                    Insert::New => Some(record),
                    // Lost a race with an identical submission: follow that one. A different
                    // intent that won the race is still a conflict.
                    Insert::Exists(other) if other.digest == record.digest => None,
                    Insert::Exists(_) => {
                        return Err(self.refuse(&intent.id, &Refusal::id_conflict(&intent.id)))
                    }
                }
            }
        };
        // Only one signing run per withdrawal at a time, however many retries race in.
        if let Some(rec) = start.filter(|r| self.state.claim(&r.id)) {
            // Another run may have finished between our read and the claim: start only from
            // the state we read (our fresh insert, or a failed record), never over an outcome.
            let current = store.get(&rec.id).map_err(|e| {
                self.state.release(&rec.id);
                internal(&e)
            })?;
            if current.is_none_or(|c| c.status != St::Signing && c.status != St::Failed) {
                self.state.release(&rec.id);
                let outcome = self.wait_final(&intent.id, wait).await?;
                return self.answer(&outcome);
            }
            self.state.audit(received(&intent, &rec, "signing"));
            match self.state.stage(rec) {
                Ok(rec) => {
                    info!(withdrawal = %rec.id, "withdrawal received; signing");
                    let span = tracing::info_span!("withdrawal", id = %rec.id);
                    tokio::spawn(
                        self.state
                            .clone()
                            .sign(rec, intent.clone())
                            .instrument(span),
                    );
                }
                Err(e) => {
                    self.state.release(&intent.id);
                    return Err(internal(&e));
                }
            }
        }
        let outcome = self.wait_final(&intent.id, wait).await?;
        self.answer(&outcome)
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Withdrawal>, Status> {
        let id = req.into_inner().id;
        if id.is_empty() || id.len() > 128 {
            return Err(invalid(Rule::RequestInvalid, "id must be 1..=128 bytes"));
        }
        let r = self
            .read_durable(&id)
            .await?
            .ok_or_else(|| Status::not_found(format!("no withdrawal with id `{id}`")))?;
        Ok(Response::new(record_to_proto(&r, &self.state.group_keys())))
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let q = req.into_inner();
        let limit = match q.limit {
            0 => 100,
            n @ 1..=1000 => n as usize,
            n => {
                return Err(invalid(
                    Rule::RequestInvalid,
                    format!("limit {n} is above 1000"),
                ))
            }
        };
        let status = pb::Status::try_from(q.status)
            .map_err(|_| invalid(Rule::RequestInvalid, format!("unknown status {}", q.status)))?;
        let chain = if q.chain.is_empty() {
            None
        } else {
            Some(
                q.chain
                    .parse::<quorate_core::address::Chain>()
                    .map_err(|e| invalid(Rule::RequestInvalid, e))?,
            )
        };
        if q.asset.len() > 16 {
            return Err(invalid(
                Rule::RequestInvalid,
                "asset is at most 16 characters",
            ));
        }
        let after = if q.page_token.is_empty() {
            None
        } else {
            Some(
                u64::from_str_radix(&q.page_token, 16)
                    .map_err(|_| invalid(Rule::RequestInvalid, "malformed page_token"))?,
            )
        };
        let gk = self.state.group_keys();
        let (records, more) = self
            .state
            .store
            .list(after, limit, &mut |r| {
                let p = record_to_proto(r, &gk);
                (status == pb::Status::Unspecified || p.status == status as i32)
                    && p.intent.as_ref().is_some_and(|i| {
                        chain.is_none_or(|c| i.chain == c.as_str())
                            && (q.asset.is_empty() || i.asset == q.asset)
                    })
            })
            .map_err(|e| internal(&e))?;
        self.state
            .ensure_durable(records.iter().map(|r| r.id.as_str()))
            .await
            .map_err(|e| internal(&e))?;
        let next_page_token = match (more, records.last()) {
            (true, Some(last)) => format!("{:x}", last.seq),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListResponse {
            withdrawals: records.iter().map(|r| record_to_proto(r, &gk)).collect(),
            next_page_token,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let id = req.into_inner().id;
        if id.len() > 128 {
            return Err(invalid(
                Rule::RequestInvalid,
                "id must be at most 128 bytes",
            ));
        }
        let mut rx = self.state.events.subscribe();
        let state = self.state.clone();
        let stream = async_stream(move |tx| async move {
            loop {
                match rx.recv().await {
                    Ok(r) if id.is_empty() || r.id == id => {
                        let gk = state.group_keys();
                        if tx.send(Ok(record_to_proto(&r, &gk))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "watch fell behind by {n} events; re-list and watch again"
                            ))))
                            .await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task through a channel.
fn async_stream<F, Fut>(f: F) -> WatchStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::Withdrawal, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
