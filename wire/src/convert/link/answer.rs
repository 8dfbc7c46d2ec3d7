//! Answers (signer → coordinator) and the hello: an [`Answer`] into its `SignerMessage` body,
//! and a body back into an [`Answer`], naming the field of anything [`MalformedAnswer`].

use super::*;
use crate::signer::ledger_notice_result::Result as NoticeResult;

/// The wire form of a refusal naming `culprits`.
pub fn refusal_to_proto(r: Refusal, culprits: &[u16]) -> pb::Refusal {
    pb::Refusal {
        rule: r.rule.to_string(),
        reason: r.reason,
        permanent: r.permanent,
        culprits: culprits.iter().map(|c| u32::from(*c)).collect(),
        retry_at_ms: r.retry_at_ms.unwrap_or(0),
    }
}

/// A refusal from its wire form (its culprits are the caller's business).
fn refusal_from_proto(r: pb::Refusal) -> Refusal {
    Refusal {
        rule: Rule::parse(&r.rule),
        reason: r.reason,
        permanent: r.permanent,
        retry_at_ms: (r.retry_at_ms != 0).then_some(r.retry_at_ms),
    }
}

impl From<Answer> for Ans {
    fn from(a: Answer) -> Self {
        match a {
            Answer::DkgRound1(p) => Ans::DkgRound1(pb::DkgRound1Response {
                package: p.package,
                signature: p.signature,
            }),
            Answer::DkgRound2(p) => Ans::DkgRound2(pb::DkgRound2Response {
                packages: p.packages.into_iter().map(sealed_to_proto).collect(),
                echo: p.echo.map(echo_to_proto),
            }),
            Answer::DkgRound3(p) => Ans::DkgRound3(pb::DkgRound3Response {
                group_public_key: p.group_public_key,
                public_key_package: p.public_key_package,
                transcript_hash: p.transcript_hash,
                signature: p.signature,
            }),
            Answer::DkgConfirm(c) => Ans::DkgConfirm(pb::DkgConfirmResponse {
                group_public_key: c.group_public_key,
                epoch: c.epoch,
                stored_signature: c.stored_signature,
                public_key_package_hash: c.public_key_package_hash,
            }),
            Answer::Commit { commitments } => Ans::Commit(pb::CommitResponse { commitments }),
            Answer::Presign {
                commitments,
                ttl_ms,
            } => Ans::Presign(pb::PresignResponse {
                commitments,
                ttl_ms,
            }),
            Answer::Sign { share } => Ans::Sign(pb::SignResponse { share }),
            Answer::PolicyStatus(s) => Ans::PolicyStatus(policy::status_to_proto(&s)),
            Answer::LedgerAck { debited } => Ans::LedgerAck(pb::LedgerAck { debited }),
            Answer::LedgerAcks(results) => Ans::LedgerAcks(pb::LedgerAcks {
                results: results
                    .into_iter()
                    .map(|r| pb::LedgerNoticeResult {
                        result: Some(match r {
                            Ok(debited) => NoticeResult::Ack(pb::LedgerAck { debited }),
                            Err(refusal) => NoticeResult::Refusal(refusal_to_proto(refusal, &[])),
                        }),
                    })
                    .collect(),
            }),
            Answer::AuditPage { records, head } => {
                Ans::AuditPage(audit::page_to_proto(&records, &head))
            }
            Answer::StatusReceipt(r) => Ans::StatusReceipt(policy::receipt_to_proto(&r)),
            Answer::RepairOffer(r) => Ans::RepairOffer(pb::RepairOfferResponse {
                offer: Some(offer_to_proto(r.offer)),
                deltas: r.deltas.into_iter().map(sealed_to_proto).collect(),
            }),
            Answer::RepairContribution(c) => Ans::RepairContribution(contribution_to_proto(c)),
            Answer::RepairResult(r) => Ans::RepairResult(repair_result_to_proto(r)),
            Answer::RefreshActivated {
                epoch,
                group_public_key,
            } => Ans::RefreshActivated(pb::RefreshActivated {
                epoch,
                group_public_key,
            }),
            Answer::HolderAdded { identifier, epoch } => Ans::HolderAdded(pb::HolderAdded {
                identifier: u32::from(identifier),
                epoch,
            }),
            Answer::Sync(s) => Ans::Sync(pb::SyncAnswer {
                policy: s.policy.as_ref().map(policy::status_to_proto),
                updates: s.updates.iter().map(policy::signed_to_proto).collect(),
                vetoes: s.vetoes.iter().map(veto_to_proto).collect(),
                key_packages: s
                    .key_packages
                    .into_iter()
                    .map(|k| pb::KeyPackageInfo {
                        scheme: scheme_i32(k.scheme),
                        key_epoch: k.key_epoch,
                        public_key_package: k.public_key_package,
                    })
                    .collect(),
            }),
            Answer::Refused { refusal, culprits } => {
                Ans::Refusal(refusal_to_proto(refusal, &culprits))
            }
        }
    }
}

/// Builds the errors of one answer's conversion.
#[derive(Clone, Copy)]
pub(super) struct Out(pub(super) &'static str);

impl Out {
    fn bad(self, field: &'static str, reason: impl Into<String>) -> MalformedAnswer {
        MalformedAnswer {
            message: self.0,
            field,
            reason: reason.into(),
        }
    }

    fn sealed(
        self,
        field: &'static str,
        v: Vec<pb::SealedRound2>,
    ) -> Result<Vec<Sealed>, MalformedAnswer> {
        sealed_all(v, || self.bad(field, "malformed sealed package"))
    }
}

impl TryFrom<Ans> for Answer {
    type Error = MalformedAnswer;

    fn try_from(body: Ans) -> Result<Self, MalformedAnswer> {
        Ok(match body {
            Ans::Hello(_) => {
                return Err(Out("hello").bad("body", "a hello is no answer"));
            }
            Ans::DkgRound1(p) => Answer::DkgRound1(l::DkgRound1Response {
                package: p.package,
                signature: p.signature,
            }),
            Ans::DkgRound2(p) => {
                let at = Out("dkg-round2");
                Answer::DkgRound2(l::DkgRound2Response {
                    packages: at.sealed("packages", p.packages)?,
                    echo: p
                        .echo
                        .map(|e| echo_from_proto(e).ok_or_else(|| at.bad("echo", "malformed echo")))
                        .transpose()?,
                })
            }
            Ans::DkgRound3(p) => Answer::DkgRound3(l::DkgRound3Response {
                group_public_key: p.group_public_key,
                public_key_package: p.public_key_package,
                transcript_hash: p.transcript_hash,
                signature: p.signature,
            }),
            Ans::DkgConfirm(c) => Answer::DkgConfirm(l::DkgConfirmResponse {
                group_public_key: c.group_public_key,
                epoch: c.epoch,
                stored_signature: c.stored_signature,
                public_key_package_hash: c.public_key_package_hash,
            }),
            Ans::Commit(c) => Answer::Commit {
                commitments: c.commitments,
            },
            Ans::Presign(p) => Answer::Presign {
                commitments: p.commitments,
                ttl_ms: p.ttl_ms,
            },
            Ans::Sign(s) => Answer::Sign { share: s.share },
            Ans::Refusal(r) => Answer::Refused {
                // A culprit that is no FROST identifier names nobody.
                culprits: r
                    .culprits
                    .iter()
                    .filter_map(|c| u16::try_from(*c).ok())
                    .collect(),
                refusal: refusal_from_proto(r),
            },
            Ans::PolicyStatus(s) => Answer::PolicyStatus(policy::status_from_proto(&s)),
            Ans::LedgerAck(a) => Answer::LedgerAck { debited: a.debited },
            Ans::LedgerAcks(a) => Answer::LedgerAcks(
                a.results
                    .into_iter()
                    .map(|r| match r.result {
                        Some(NoticeResult::Ack(a)) => Ok(Ok(a.debited)),
                        Some(NoticeResult::Refusal(r)) => Ok(Err(refusal_from_proto(r))),
                        None => Err(Out("ledger-acks").bad("results", "a result with neither")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Ans::AuditPage(p) => {
                let at = Out("audit-page");
                Answer::AuditPage {
                    records: p
                        .records
                        .iter()
                        .map(|r| audit::record_from_proto(r).map_err(|e| at.bad("records", e)))
                        .collect::<Result<_, _>>()?,
                    head: audit::head_from_proto(
                        p.head.as_ref().ok_or_else(|| at.bad("head", "missing"))?,
                    )
                    .map_err(|e| at.bad("head", e))?,
                }
            }
            Ans::StatusReceipt(r) => Answer::StatusReceipt(policy::receipt_from_proto(&r)),
            Ans::RepairOffer(r) => {
                let at = Out("repair-offer");
                Answer::RepairOffer(l::RepairOfferResponse {
                    offer: offer_from_proto(r.offer.ok_or_else(|| at.bad("offer", "missing"))?)
                        .map_err(|e| at.bad("offer", e))?,
                    deltas: at.sealed("deltas", r.deltas)?,
                })
            }
            Ans::RepairContribution(c) => Answer::RepairContribution(
                contribution_from_proto(c)
                    .map_err(|e| Out("repair-contribution").bad("body", e))?,
            ),
            Ans::RepairResult(r) => Answer::RepairResult(repair_result_from_proto(r)),
            Ans::RefreshActivated(a) => Answer::RefreshActivated {
                epoch: a.epoch,
                group_public_key: a.group_public_key,
            },
            Ans::HolderAdded(h) => Answer::HolderAdded {
                identifier: u16::try_from(h.identifier)
                    .map_err(|_| Out("holder-added").bad("identifier", "out of range"))?,
                epoch: h.epoch,
            },
            // Each item is a claim the coordinator checks: one that does not convert is
            // dropped, as one that does not check out is ignored (`SyncAnswer`).
            Ans::Sync(s) => Answer::Sync(l::SyncAnswer {
                policy: s.policy.as_ref().map(policy::status_from_proto),
                updates: s
                    .updates
                    .iter()
                    .filter_map(|p| signed_policy(In(K::Sync), p).ok())
                    .collect(),
                vetoes: s
                    .vetoes
                    .iter()
                    .filter_map(|v| veto_from_proto(In(K::Sync), v).ok())
                    .collect(),
                key_packages: s
                    .key_packages
                    .into_iter()
                    .filter_map(|k| {
                        Some(l::KeyPackageInfo {
                            scheme: super::super::key_scheme(k.scheme).ok()?,
                            key_epoch: k.key_epoch,
                            public_key_package: k.public_key_package,
                        })
                    })
                    .collect(),
            }),
        })
    }
}

impl From<Hello> for pb::Hello {
    fn from(h: Hello) -> Self {
        pb::Hello {
            name: h.name,
            identifier: u32::from(h.identifier),
            version: h.version,
            manifest_hash: h.manifest_hash,
            group_public_key: h.group_public_key,
            policy: Some(policy::status_to_proto(&h.policy)),
            ed25519_group_public_key: h.ed25519_group_public_key,
            key_epoch: h.key_epoch,
            ed25519_key_epoch: h.ed25519_key_epoch,
            pending_key_epoch: h.pending_key_epoch,
            ed25519_pending_key_epoch: h.ed25519_pending_key_epoch,
        }
    }
}

impl TryFrom<pb::Hello> for Hello {
    type Error = MalformedAnswer;

    fn try_from(h: pb::Hello) -> Result<Self, MalformedAnswer> {
        Ok(Hello {
            identifier: u16::try_from(h.identifier)
                .map_err(|_| Out("hello").bad("identifier", "out of range"))?,
            name: h.name,
            version: h.version,
            manifest_hash: h.manifest_hash,
            group_public_key: h.group_public_key,
            policy: policy::status_from_proto(&h.policy.unwrap_or_default()),
            ed25519_group_public_key: h.ed25519_group_public_key,
            key_epoch: h.key_epoch,
            ed25519_key_epoch: h.ed25519_key_epoch,
            pending_key_epoch: h.pending_key_epoch,
            ed25519_pending_key_epoch: h.ed25519_pending_key_epoch,
        })
    }
}
