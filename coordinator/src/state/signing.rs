//! Signing a withdrawal: flushing it before any share is asked for, gathering a threshold
//! signature from a quorum (pre-generated or fresh commitments, then shares, then a verified
//! aggregate), leaving out signers that fail, and storing the outcome.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use frost_core::{round1::SigningCommitments, round2::SignatureShare, Identifier, SigningPackage};
use quorate_core::{
    audit::{self, Event},
    identity::IdentityPublic,
    intent::WithdrawalIntent,
    link::{Answer, CommitRequest, Request, SignRequest},
    message::{payout, signing_message, solana_transaction, Scheme},
    policy::AdminSignature,
    refusal::{Refusal, Rule},
    signing::attempts::{AfterRefusal, Attempts},
};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{metric, Coordinator, Ed, GroupSuite, Secp};
use crate::store::{Record, Status};

/// The admin approvals stored with a withdrawal (each was verified when it was given; one that
/// no longer decodes is left out, and the signers judge the rest).
fn record_approvals(r: &Record) -> Vec<AdminSignature> {
    r.approvals
        .iter()
        .filter_map(|(a, s)| {
            Some(AdminSignature {
                admin: IdentityPublic::from_bytes(&hex::decode(a).ok()?).ok()?,
                signature: hex::decode(s).ok()?,
            })
        })
        .collect()
}

impl Coordinator {
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
        // What the edge verified and stored; a stored value that no longer decodes is the
        // coordinator's fault, never an empty signature for the signers to refuse.
        let format = hex::decode(&record.backend_signature)
            .map_err(|e| {
                Refusal::temporary(
                    Rule::Internal,
                    format!("the stored backend signature does not decode: {e}"),
                )
            })
            .and_then(|sig| {
                self.policy
                    .chain_format(&intent, self.solana_wallet().as_ref())
                    .map(|f| (f, sig))
            });
        let outcome = match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => match format {
                Ok((format, backend_signature)) => match signing_message(&intent, format) {
                    Ok(message) => {
                        let request = SignRequest {
                            intent: intent.encode(),
                            backend_signature,
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
                Rule::Storage,
                format!("the coordinator could not record the withdrawal: {e}"),
            )),
            Err(e) => Err(Refusal::temporary(
                Rule::Storage,
                format!("the coordinator's flush task failed: {e}"),
            )),
        };
        // The signing time: of the record, of our own debit, and in the ledger notices.
        let signed_at = self.now_ms();
        record.updated_ms = signed_at;
        let mut notice = None;
        match outcome {
            Ok((signature, signers, message, call, solana_tx)) => {
                self.policy.debit(&intent, signed_at);
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
                record.retry_at_ms = None;
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
                            .with("rule", r.rule.as_str())
                            .with("reason", &r.reason),
                    );
                }
                record.rule = Some(r.rule.to_string());
                record.reason = Some(r.reason);
                record.retry_at_ms = r.retry_at_ms.filter(|_| !r.permanent);
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
                    self.notify_others(&intent, &signature, &signers, signed_at);
                }
            }
            Err(e) => warn!(withdrawal = %id, error = %e, "could not store the outcome"),
        }
    }

    /// Gathers a group signature over `message` from a quorum. `label` names what is signed
    /// in logs and audit records (a withdrawal id); each signer gets `request` with its own
    /// session and the signing package filled in, and checks it against its own judgement.
    pub(crate) async fn gather<C: GroupSuite>(
        &self,
        label: &str,
        message: &[u8],
        request: &SignRequest,
    ) -> Result<(Vec<u8>, Vec<u16>), Refusal> {
        let (pubkeys, key_epoch) = self.public_keys_at::<C>().ok_or_else(|| {
            Refusal::temporary(
                Rule::NoGroupKey,
                format!("no {} group key yet: run DKG for it first", C::SCHEME),
            )
        })?;
        let t = usize::from(self.manifest.threshold);
        let timeout = self.signing.signer_timeout;
        let retired = self.retired_signers();
        let mut attempts = Attempts::new(t);
        for attempt in 1..=self.signing.max_attempts {
            // Only signers holding the share of the epoch verified against: a refresh in
            // progress never has an honest signer blamed for signing with the other.
            let slot = usize::from(C::SCHEME == Scheme::Ed25519);
            let candidates: Vec<u16> = self
                .registry
                .connected()
                .into_iter()
                .filter(|s| s.key_epochs[slot] == key_epoch && !retired.contains(&s.identifier))
                .map(|s| s.identifier)
                .filter(|i| !attempts.is_left_out(*i))
                .collect();
            let Some(quorum) = attempts.quorum(&candidates, &mut rand::rngs::OsRng) else {
                break;
            };
            for i in &candidates {
                C::refill(self, *i);
            }
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
                let pooled = if attempts.may_use_pool(*i) {
                    C::pooled(self, *i)
                } else {
                    None
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
                let commit = Request::Commit(CommitRequest {
                    session_id: sessions[i],
                    scheme: C::SCHEME,
                });
                self.registry.call(*i, commit, timeout)
            }))
            .await;
            for (i, answer) in fresh.iter().zip(answers) {
                let fid = frost_id::<C>(*i)?;
                match answer {
                    Ok(Answer::Commit { commitments: c }) => {
                        match SigningCommitments::<C>::deserialize(&c) {
                            Ok(c) => {
                                commitments.insert(fid, c);
                            }
                            Err(e) => {
                                attempts.failed(*i, format!("signer {i}: bad commitments: {e}"))
                            }
                        }
                    }
                    other => {
                        note_failure(*i, other, false, &mut attempts);
                    }
                }
            }
            if commitments.len() < t {
                continue;
            }
            let package = SigningPackage::<C>::new(commitments, message);
            let package_bytes = package
                .serialize()
                .map_err(|e| Refusal::temporary(Rule::Internal, format!("signing package: {e}")))?;

            // Round 2: each signer checks the intent itself and answers with its share.
            let answers = futures::future::join_all(quorum.iter().map(|i| {
                let sign = Request::Sign(Box::new(SignRequest {
                    session_id: sessions[i],
                    signing_package: package_bytes.clone(),
                    scheme: C::SCHEME,
                    key_epoch,
                    ..request.clone()
                }));
                self.registry.call(*i, sign, timeout)
            }))
            .await;
            let mut shares = BTreeMap::new();
            for (i, answer) in quorum.iter().zip(answers) {
                match answer {
                    Ok(Answer::Sign { share }) => match SignatureShare::<C>::deserialize(&share) {
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
                            attempts.failed(*i, format!("signer {i}: malformed share: {e}"));
                        }
                    },
                    other => {
                        // A pre-generated nonce the signer no longer has (it restarted, or it
                        // expired there first) is not its fault, once: its pool is dropped and
                        // the next attempt asks it with a fresh commitment.
                        if note_failure(*i, other, presigned.contains(i), &mut attempts)
                            == AfterRefusal::FreshCommitment
                        {
                            warn!(withdrawal = %label, signer = i, "pre-generated commitment unknown to the signer; falling back to a fresh round");
                            self.registry.clear_presigned(*i);
                        }
                    }
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
                        Refusal::temporary(Rule::Internal, format!("signature: {e}"))
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
                    attempts.invalid_shares(&quorum, &culprits);
                }
            }
        }
        // Not signed: which refusal the backend is told is decided in core.
        Err(attempts.verdict(self.now_ms(), self.registry.connected().len()))
    }
}

/// Reports a signer's answer that was not what the round asked for; `presigned` if it was
/// asked with a pre-generated commitment.
fn note_failure(
    i: u16,
    answer: Result<Answer, crate::registry::CallError>,
    presigned: bool,
    attempts: &mut Attempts,
) -> AfterRefusal {
    match answer {
        Ok(Answer::Refused { refusal, .. }) => attempts.refused(i, refusal, presigned),
        Ok(_) => {
            attempts.failed(i, format!("signer {i} answered out of turn"));
            AfterRefusal::LeftOut
        }
        Err(e) => {
            attempts.failed(i, e.to_string());
            AfterRefusal::LeftOut
        }
    }
}

fn frost_id<C: GroupSuite>(i: u16) -> Result<Identifier<C>, Refusal> {
    Identifier::<C>::try_from(i)
        .map_err(|_| Refusal::temporary(Rule::Internal, format!("invalid identifier {i}")))
}
