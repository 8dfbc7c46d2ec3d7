//! Requests (coordinator → signer): a `CoordinatorMessage` body into a [`Request`], naming
//! the field of anything [`Malformed`], and a [`Request`] back into its body.

use super::*;

/// Builds the errors of one request's conversion.
#[derive(Clone, Copy)]
pub(super) struct In(pub(super) K);

impl In {
    fn bad(self, field: &'static str, reason: impl Into<String>) -> Malformed {
        Malformed {
            request: self.0,
            field,
            reason: reason.into(),
        }
    }

    fn scheme(self, field: &'static str, value: i32) -> Result<Scheme, Malformed> {
        super::super::key_scheme(value).map_err(|e| self.bad(field, e))
    }

    fn session_id(self, field: &'static str, bytes: &[u8]) -> Result<[u8; 16], Malformed> {
        bytes
            .try_into()
            .map_err(|_| self.bad(field, "session id must be 16 bytes"))
    }

    fn ident(self, field: &'static str, value: u32) -> Result<u16, Malformed> {
        u16::try_from(value)
            .map_err(|_| self.bad(field, format!("identifier {value} out of range")))
    }

    fn repair_session(
        self,
        missing: &'static str,
        s: Option<pb::RepairSession>,
    ) -> Result<l::RepairSession, Malformed> {
        let s = s.ok_or_else(|| self.bad("session", missing))?;
        Ok(l::RepairSession {
            scheme: self.scheme("session.scheme", s.scheme)?,
            session_id: self.session_id("session.session_id", &s.session_id)?,
            manifest_hash: s.manifest_hash,
            helpers: s
                .helpers
                .iter()
                .map(|h| self.ident("session.helpers", *h))
                .collect::<Result<_, _>>()?,
            target: self.ident("session.target", s.target)?,
        })
    }

    fn offers(self, v: Vec<pb::RepairOffer>) -> Result<Vec<Offer>, Malformed> {
        v.into_iter()
            .map(|o| offer_from_proto(o).map_err(|e| self.bad("offers", e)))
            .collect()
    }

    fn sealed(
        self,
        field: &'static str,
        v: Vec<pb::SealedRound2>,
    ) -> Result<Vec<Sealed>, Malformed> {
        sealed_all(v, || self.bad(field, "malformed sealed package"))
    }
}

impl TryFrom<Req> for Request {
    type Error = Malformed;

    fn try_from(body: Req) -> Result<Self, Malformed> {
        Ok(match body {
            Req::DkgRound1(r) => {
                let at = In(K::DkgRound1);
                Request::DkgRound1(l::DkgRound1Request {
                    scheme: at.scheme("scheme", r.scheme)?,
                    session_id: r.session_id,
                    manifest_hash: r.manifest_hash,
                    refresh: r
                        .refresh
                        .map(|t| {
                            Ok(l::RefreshTerms {
                                old_epoch: t.old_epoch,
                                participants: t
                                    .participants
                                    .iter()
                                    .map(|p| at.ident("refresh.participants", *p))
                                    .collect::<Result<_, _>>()?,
                            })
                        })
                        .transpose()?,
                })
            }
            Req::DkgRound2(r) => {
                let at = In(K::DkgRound2);
                Request::DkgRound2(l::DkgRound2Request {
                    scheme: at.scheme("scheme", r.scheme)?,
                    session_id: r.session_id,
                    packages: r
                        .packages
                        .into_iter()
                        .map(|p| {
                            Ok(SignedRound1 {
                                identifier: at.ident("packages", p.identifier)?,
                                package: p.package,
                                signature: p.signature,
                            })
                        })
                        .collect::<Result<_, _>>()?,
                })
            }
            Req::DkgRound3(r) => {
                let at = In(K::DkgRound3);
                Request::DkgRound3(l::DkgRound3Request {
                    scheme: at.scheme("scheme", r.scheme)?,
                    session_id: r.session_id,
                    packages: at.sealed("packages", r.packages)?,
                    echoes: r
                        .echoes
                        .into_iter()
                        .map(|e| {
                            echo_from_proto(e).ok_or_else(|| at.bad("echoes", "malformed echo"))
                        })
                        .collect::<Result<_, _>>()?,
                    refresh: r.refresh,
                })
            }
            Req::DkgConfirm(r) => {
                let at = In(K::DkgConfirm);
                Request::DkgConfirm(l::DkgConfirmRequest {
                    scheme: at.scheme("scheme", r.scheme)?,
                    session_id: r.session_id,
                    results: r
                        .results
                        .into_iter()
                        .map(|x| {
                            Ok(SignedResult {
                                identifier: u16::try_from(x.identifier).map_err(|_| {
                                    at.bad(
                                        "results",
                                        format!(
                                            "confirmation identifier {} out of range",
                                            x.identifier
                                        ),
                                    )
                                })?,
                                group_key: x.group_public_key,
                                transcript: x.transcript_hash,
                                signature: x.signature,
                            })
                        })
                        .collect::<Result<_, _>>()?,
                })
            }
            Req::Commit(r) => {
                let at = In(K::Commit);
                Request::Commit(l::CommitRequest {
                    scheme: at.scheme("scheme", r.scheme)?,
                    session_id: at.session_id("session_id", &r.session_id)?,
                })
            }
            Req::Presign(r) => {
                let at = In(K::Presign);
                Request::Presign(l::PresignRequest {
                    scheme: at.scheme("scheme", r.scheme)?,
                    session_ids: r
                        .session_ids
                        .iter()
                        .map(|s| at.session_id("session_ids", s))
                        .collect::<Result<_, _>>()?,
                })
            }
            Req::Sign(r) => Request::Sign(Box::new(sign_from_proto(r)?)),
            Req::PolicyUpdate(p) => Request::PolicyUpdate(signed_policy(In(K::PolicyUpdate), &p)?),
            Req::PolicyVeto(v) => Request::PolicyVeto(veto_from_proto(In(K::PolicyVeto), &v)?),
            Req::LedgerNotice(n) => Request::LedgerNotice(notice_from_proto(n)),
            Req::LedgerNotices(b) => {
                if b.notices.len() > l::MAX_NOTICES {
                    return Err(In(K::LedgerNotices).bad(
                        "notices",
                        format!(
                            "a batch of {} ledger notices; 1 to {} are accepted",
                            b.notices.len(),
                            l::MAX_NOTICES
                        ),
                    ));
                }
                Request::LedgerNotices(b.notices.into_iter().map(notice_from_proto).collect())
            }
            Req::AuditExport(r) => Request::AuditExport(l::AuditExportRequest {
                node: r.node,
                from_seq: r.from_seq,
                limit: r.limit,
                nonce: r.nonce,
            }),
            Req::StatusChallenge(c) => Request::StatusChallenge {
                challenge: c.challenge,
            },
            Req::RepairOffer(r) => {
                let at = In(K::RepairOffer);
                Request::RepairOffer(l::RepairOfferRequest {
                    session: at.repair_session("a repair step without its session", r.session)?,
                })
            }
            Req::RepairContribute(r) => {
                let at = In(K::RepairContribute);
                Request::RepairContribute(l::RepairContributeRequest {
                    session: at.repair_session("a repair step without its session", r.session)?,
                    offers: at.offers(r.offers)?,
                    deltas: at.sealed("deltas", r.deltas)?,
                })
            }
            Req::RepairFinish(r) => {
                let at = In(K::RepairFinish);
                Request::RepairFinish(l::RepairFinishRequest {
                    session: at.repair_session("a repair step without its session", r.session)?,
                    offers: at.offers(r.offers)?,
                    contributions: r
                        .contributions
                        .into_iter()
                        .map(|c| contribution_from_proto(c).map_err(|e| at.bad("contributions", e)))
                        .collect::<Result<_, _>>()?,
                })
            }
            Req::RefreshActivate(r) => Request::RefreshActivate(refresh_activate_from_proto(r)?),
            Req::AddHolder(r) => Request::AddHolder(add_holder_from_proto(r)?),
            Req::Sync(r) => Request::Sync(l::SyncRequest {
                policy_version: r.policy_version,
                pending_hash: r.pending_hash,
            }),
        })
    }
}

pub(super) fn refresh_activate_from_proto(
    r: pb::RefreshActivate,
) -> Result<l::RefreshActivate, Malformed> {
    let at = In(K::RefreshActivate);
    Ok(l::RefreshActivate {
        scheme: at.scheme("scheme", r.scheme)?,
        session_id: r.session_id,
        epoch: r.epoch,
        transcript_hash: r.transcript_hash,
        public_key_package_hash: r.public_key_package_hash,
        acks: r
            .acks
            .into_iter()
            .map(|a| {
                Ok(l::RefreshAck {
                    identifier: u16::try_from(a.identifier)
                        .map_err(|_| at.bad("acks", "acknowledgement identifier out of range"))?,
                    signature: a.signature,
                })
            })
            .collect::<Result<_, _>>()?,
    })
}

pub(super) fn refresh_activate_to_proto(r: l::RefreshActivate) -> pb::RefreshActivate {
    pb::RefreshActivate {
        session_id: r.session_id,
        scheme: scheme_i32(r.scheme),
        epoch: r.epoch,
        transcript_hash: r.transcript_hash,
        public_key_package_hash: r.public_key_package_hash,
        acks: r
            .acks
            .into_iter()
            .map(|a| pb::RefreshAck {
                identifier: u32::from(a.identifier),
                signature: a.signature,
            })
            .collect(),
    }
}

pub(super) fn add_holder_from_proto(r: pb::AddHolder) -> Result<l::AddHolder, Malformed> {
    let at = In(K::AddHolder);
    let session = at.repair_session("an enrolment without its session", r.session)?;
    let result = r
        .result
        .ok_or_else(|| at.bad("result", "an enrolment without its result"))?;
    Ok(l::AddHolder {
        session,
        result: repair_result_from_proto(result),
    })
}

pub(super) fn sign_from_proto(r: pb::SignRequest) -> Result<l::SignRequest, Malformed> {
    let at = In(K::Sign);
    let scheme = at.scheme("scheme", r.scheme)?;
    let session_id = at.session_id("session_id", &r.session_id)?;
    let approvals = policy::sigs_from_proto(&r.approvals)
        .map_err(|e| at.bad("approvals", format!("approvals: {e}")))?;
    let solana_void =
        r.solana_void
            .map(|v| {
                Ok(l::SolanaVoid {
                    nonce_account: v.nonce_account.as_slice().try_into().map_err(|_| {
                        at.bad("solana_void.nonce_account", "nonce_account: 32 bytes")
                    })?,
                    nonce_value: v
                        .nonce_value
                        .as_slice()
                        .try_into()
                        .map_err(|_| at.bad("solana_void.nonce_value", "nonce_value: 32 bytes"))?,
                    approval: v
                        .approval
                        .as_ref()
                        .map(policy::sig_from_proto)
                        .transpose()
                        .map_err(|e| at.bad("solana_void.approval", format!("approval: {e}")))?,
                })
            })
            .transpose()?;
    Ok(l::SignRequest {
        session_id,
        intent: r.intent,
        backend_signature: r.backend_signature,
        signing_package: r.signing_package,
        approvals,
        vault_action: r.vault_action.map(|a| l::VaultActionRef {
            chain: a.chain,
            nonce: a.nonce,
        }),
        scheme,
        solana_void,
        key_epoch: r.key_epoch,
    })
}

/// A signed policy, as a policy update carries it: the document must be canonical and valid on
/// its own, the signatures well-formed.
pub(super) fn signed_policy(
    at: In,
    p: &crate::policy::SignedPolicy,
) -> Result<SignedPolicy, Malformed> {
    Ok(SignedPolicy {
        doc: PolicyDoc::decode(&p.document)
            .map_err(|e| at.bad("document", format!("document: {e}")))?,
        signatures: policy::sigs_from_proto(&p.signatures).map_err(|e| at.bad("signatures", e))?,
    })
}

pub(super) fn veto_from_proto(at: In, v: &pb::PolicyVeto) -> Result<l::PolicyVeto, Malformed> {
    Ok(l::PolicyVeto {
        policy_hash: v
            .policy_hash
            .as_slice()
            .try_into()
            .map_err(|_| at.bad("policy_hash", "policy_hash must be 32 bytes"))?,
        veto: v
            .veto
            .as_ref()
            .ok_or_else(|| at.bad("veto", "veto: missing"))
            .and_then(|s| policy::sig_from_proto(s).map_err(|e| at.bad("veto", e)))?,
    })
}

impl From<Request> for Req {
    fn from(r: Request) -> Self {
        match r {
            Request::DkgRound1(r) => Req::DkgRound1(pb::DkgRound1Request {
                session_id: r.session_id,
                manifest_hash: r.manifest_hash,
                scheme: scheme_i32(r.scheme),
                refresh: r.refresh.map(|t| pb::RefreshTerms {
                    old_epoch: t.old_epoch,
                    participants: t.participants.into_iter().map(u32::from).collect(),
                }),
            }),
            Request::DkgRound2(r) => Req::DkgRound2(pb::DkgRound2Request {
                session_id: r.session_id,
                packages: r.packages.into_iter().map(signed_round1_to_proto).collect(),
                scheme: scheme_i32(r.scheme),
            }),
            Request::DkgRound3(r) => Req::DkgRound3(pb::DkgRound3Request {
                session_id: r.session_id,
                packages: r.packages.into_iter().map(sealed_to_proto).collect(),
                echoes: r.echoes.into_iter().map(echo_to_proto).collect(),
                scheme: scheme_i32(r.scheme),
                refresh: r.refresh,
            }),
            Request::DkgConfirm(r) => Req::DkgConfirm(pb::DkgConfirmRequest {
                session_id: r.session_id,
                results: r
                    .results
                    .into_iter()
                    .map(|x| pb::DkgResult {
                        identifier: u32::from(x.identifier),
                        group_public_key: x.group_key,
                        transcript_hash: x.transcript,
                        signature: x.signature,
                    })
                    .collect(),
                scheme: scheme_i32(r.scheme),
            }),
            Request::Commit(r) => Req::Commit(pb::CommitRequest {
                session_id: r.session_id.to_vec(),
                scheme: scheme_i32(r.scheme),
            }),
            Request::Presign(r) => Req::Presign(pb::PresignRequest {
                session_ids: r.session_ids.iter().map(|s| s.to_vec()).collect(),
                scheme: scheme_i32(r.scheme),
            }),
            Request::Sign(r) => {
                let r = *r;
                Req::Sign(pb::SignRequest {
                    session_id: r.session_id.to_vec(),
                    intent: r.intent,
                    backend_signature: r.backend_signature,
                    signing_package: r.signing_package,
                    approvals: r.approvals.iter().map(policy::sig_to_proto).collect(),
                    vault_action: r.vault_action.map(|a| pb::VaultActionRef {
                        chain: a.chain,
                        nonce: a.nonce,
                    }),
                    scheme: scheme_i32(r.scheme),
                    solana_void: r.solana_void.map(|v| pb::SolanaVoid {
                        nonce_account: v.nonce_account.to_vec(),
                        nonce_value: v.nonce_value.to_vec(),
                        approval: v.approval.as_ref().map(policy::sig_to_proto),
                    }),
                    key_epoch: r.key_epoch,
                })
            }
            Request::PolicyUpdate(p) => Req::PolicyUpdate(policy::signed_to_proto(&p)),
            Request::PolicyVeto(v) => Req::PolicyVeto(veto_to_proto(&v)),
            Request::LedgerNotice(n) => Req::LedgerNotice(notice_to_proto(n)),
            Request::LedgerNotices(b) => Req::LedgerNotices(pb::LedgerNotices {
                notices: b.into_iter().map(notice_to_proto).collect(),
            }),
            Request::AuditExport(r) => Req::AuditExport(crate::audit::AuditExportRequest {
                node: r.node,
                from_seq: r.from_seq,
                limit: r.limit,
                nonce: r.nonce,
            }),
            Request::StatusChallenge { challenge } => {
                Req::StatusChallenge(pb::StatusChallenge { challenge })
            }
            Request::RepairOffer(r) => Req::RepairOffer(pb::RepairOfferRequest {
                session: Some(repair_session_to_proto(r.session)),
            }),
            Request::RepairContribute(r) => Req::RepairContribute(pb::RepairContributeRequest {
                session: Some(repair_session_to_proto(r.session)),
                offers: r.offers.into_iter().map(offer_to_proto).collect(),
                deltas: r.deltas.into_iter().map(sealed_to_proto).collect(),
            }),
            Request::RepairFinish(r) => Req::RepairFinish(pb::RepairFinishRequest {
                session: Some(repair_session_to_proto(r.session)),
                offers: r.offers.into_iter().map(offer_to_proto).collect(),
                contributions: r
                    .contributions
                    .into_iter()
                    .map(contribution_to_proto)
                    .collect(),
            }),
            Request::RefreshActivate(r) => Req::RefreshActivate(refresh_activate_to_proto(r)),
            Request::AddHolder(r) => Req::AddHolder(pb::AddHolder {
                session: Some(repair_session_to_proto(r.session)),
                result: Some(repair_result_to_proto(r.result)),
            }),
            Request::Sync(r) => Req::Sync(pb::SyncRequest {
                policy_version: r.policy_version,
                pending_hash: r.pending_hash,
            }),
        }
    }
}

fn notice_from_proto(n: pb::LedgerNotice) -> l::LedgerNotice {
    l::LedgerNotice {
        intent: n.intent,
        signature: n.signature,
        signed_at_ms: n.signed_at_ms,
    }
}

fn notice_to_proto(n: l::LedgerNotice) -> pb::LedgerNotice {
    pb::LedgerNotice {
        intent: n.intent,
        signature: n.signature,
        signed_at_ms: n.signed_at_ms,
    }
}
