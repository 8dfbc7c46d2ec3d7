//! The signer link at the edge: protobuf messages of `quorate.signer.v1` to and from the typed
//! protocol of [`quorate_core::link`].
//!
//! A signer converts each `CoordinatorMessage` body into a [`Request`] (what does not convert is
//! [`Malformed`], refused with [`Malformed::refusal`]) and each [`Answer`] back; a coordinator
//! converts each [`Request`] it sends and each `SignerMessage` body it gets (what does not
//! convert is [`MalformedAnswer`]). Reasons are worded as the signer's handlers worded them
//! before the protocol was typed, so refusals and their audit records read the same.

use prost::Message as _;
use quorate_core::{
    dkg::{SignedEcho, SignedResult, SignedRound1},
    link::{self as l, Answer, Hello, Malformed, MalformedAnswer, Request, RequestKind as K},
    message::Scheme,
    policy::{PolicyDoc, SignedPolicy},
    refusal::{Refusal, Rule},
    repair::{Contribution, Offer},
    seal::Sealed,
};

use super::{audit, policy};
use crate::signer::{self as pb, coordinator_message::Body as Req, signer_message::Body as Ans};

/// The wire value of a key group.
pub fn scheme_to_proto(s: Scheme) -> pb::KeyScheme {
    match s {
        Scheme::Secp256k1 => pb::KeyScheme::Secp256k1,
        Scheme::Ed25519 => pb::KeyScheme::Ed25519,
    }
}

fn scheme_i32(s: Scheme) -> i32 {
    scheme_to_proto(s) as i32
}

/// Builds the errors of one request's conversion.
#[derive(Clone, Copy)]
struct In(K);

impl In {
    fn bad(self, field: &'static str, reason: impl Into<String>) -> Malformed {
        Malformed {
            request: self.0,
            field,
            reason: reason.into(),
        }
    }

    fn scheme(self, field: &'static str, value: i32) -> Result<Scheme, Malformed> {
        super::key_scheme(value).map_err(|e| self.bad(field, e))
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
        v.into_iter()
            .map(|s| {
                sealed_from_proto(s).ok_or_else(|| self.bad(field, "malformed sealed package"))
            })
            .collect()
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
            Req::LedgerNotice(n) => Request::LedgerNotice(l::LedgerNotice {
                intent: n.intent,
                signature: n.signature,
                signed_at_ms: n.signed_at_ms,
            }),
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

fn refresh_activate_from_proto(r: pb::RefreshActivate) -> Result<l::RefreshActivate, Malformed> {
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

fn refresh_activate_to_proto(r: l::RefreshActivate) -> pb::RefreshActivate {
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

fn add_holder_from_proto(r: pb::AddHolder) -> Result<l::AddHolder, Malformed> {
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

fn sign_from_proto(r: pb::SignRequest) -> Result<l::SignRequest, Malformed> {
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
fn signed_policy(at: In, p: &crate::policy::SignedPolicy) -> Result<SignedPolicy, Malformed> {
    Ok(SignedPolicy {
        doc: PolicyDoc::decode(&p.document)
            .map_err(|e| at.bad("document", format!("document: {e}")))?,
        signatures: policy::sigs_from_proto(&p.signatures).map_err(|e| at.bad("signatures", e))?,
    })
}

fn veto_from_proto(at: In, v: &pb::PolicyVeto) -> Result<l::PolicyVeto, Malformed> {
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

/// The wire form of a veto.
pub fn veto_to_proto(v: &l::PolicyVeto) -> pb::PolicyVeto {
    pb::PolicyVeto {
        policy_hash: v.policy_hash.to_vec(),
        veto: Some(policy::sig_to_proto(&v.veto)),
    }
}

/// How a signer keeps a veto it accepted: its wire encoding.
pub fn encode_veto(v: &l::PolicyVeto) -> Vec<u8> {
    veto_to_proto(v).encode_to_vec()
}

/// A veto as [`encode_veto`] kept it.
pub fn decode_veto(bytes: &[u8]) -> Result<l::PolicyVeto, String> {
    let v = pb::PolicyVeto::decode(bytes).map_err(|e| e.to_string())?;
    veto_from_proto(In(K::PolicyVeto), &v).map_err(|e| e.to_string())
}

/// How a coordinator keeps a refresh activation (to show it again to a signer that missed
/// it): its wire encoding.
pub fn encode_refresh_activate(a: &l::RefreshActivate) -> Vec<u8> {
    refresh_activate_to_proto(a.clone()).encode_to_vec()
}

/// A refresh activation as [`encode_refresh_activate`] kept it.
pub fn decode_refresh_activate(bytes: &[u8]) -> Result<l::RefreshActivate, String> {
    let p = pb::RefreshActivate::decode(bytes).map_err(|e| e.to_string())?;
    refresh_activate_from_proto(p).map_err(|e| e.to_string())
}

/// How a coordinator keeps an enrolment not yet added by every holder: its wire encoding.
pub fn encode_add_holder(a: &l::AddHolder) -> Vec<u8> {
    pb::AddHolder {
        session: Some(repair_session_to_proto(a.session.clone())),
        result: Some(repair_result_to_proto(a.result.clone())),
    }
    .encode_to_vec()
}

/// An enrolment as [`encode_add_holder`] kept it.
pub fn decode_add_holder(bytes: &[u8]) -> Result<l::AddHolder, String> {
    let p = pb::AddHolder::decode(bytes).map_err(|e| e.to_string())?;
    add_holder_from_proto(p).map_err(|e| e.to_string())
}

fn signed_round1_to_proto(p: SignedRound1) -> pb::SignedRound1 {
    pb::SignedRound1 {
        identifier: u32::from(p.identifier),
        package: p.package,
        signature: p.signature,
    }
}

/// The wire form of an echo.
pub fn echo_to_proto(e: SignedEcho) -> pb::DkgEcho {
    pb::DkgEcho {
        from: u32::from(e.from),
        packages: e.packages.into_iter().map(signed_round1_to_proto).collect(),
        signature: e.signature,
    }
}

/// An echo from its wire form (`None`: an identifier out of range).
pub fn echo_from_proto(e: pb::DkgEcho) -> Option<SignedEcho> {
    Some(SignedEcho {
        from: u16::try_from(e.from).ok()?,
        packages: e
            .packages
            .into_iter()
            .map(|p| {
                Some(SignedRound1 {
                    identifier: u16::try_from(p.identifier).ok()?,
                    package: p.package,
                    signature: p.signature,
                })
            })
            .collect::<Option<_>>()?,
        signature: e.signature,
    })
}

/// The wire form of a sealed package.
pub fn sealed_to_proto(s: Sealed) -> pb::SealedRound2 {
    pb::SealedRound2 {
        sender: u32::from(s.sender),
        recipient: u32::from(s.recipient),
        nonce: s.nonce.to_vec(),
        ciphertext: s.ciphertext,
        signature: s.signature,
    }
}

/// A sealed package from its wire form (`None`: an identifier out of range or a nonce that is
/// not 12 bytes).
pub fn sealed_from_proto(p: pb::SealedRound2) -> Option<Sealed> {
    Some(Sealed {
        sender: u16::try_from(p.sender).ok()?,
        recipient: u16::try_from(p.recipient).ok()?,
        nonce: p.nonce.as_slice().try_into().ok()?,
        ciphertext: p.ciphertext,
        signature: p.signature,
    })
}

fn ident(v: u32) -> Result<u16, String> {
    u16::try_from(v).map_err(|_| format!("identifier {v} out of range"))
}

/// The wire form of a repair offer.
pub fn offer_to_proto(o: Offer) -> pb::RepairOffer {
    pb::RepairOffer {
        from: u32::from(o.from),
        epoch: o.epoch,
        public_key_package: o.public_key_package,
        commitments: o
            .commitments
            .into_iter()
            .map(|(helper, point)| pb::RepairCommitment {
                helper: u32::from(helper),
                point,
            })
            .collect(),
        signature: o.signature,
    }
}

/// A repair offer from its wire form; a helper committed to twice is refused, not overwritten.
pub fn offer_from_proto(o: pb::RepairOffer) -> Result<Offer, String> {
    let mut commitments = std::collections::BTreeMap::new();
    for c in o.commitments {
        if commitments.insert(ident(c.helper)?, c.point).is_some() {
            return Err("an offer commits twice to one helper".into());
        }
    }
    Ok(Offer {
        from: ident(o.from)?,
        epoch: o.epoch,
        public_key_package: o.public_key_package,
        commitments,
        signature: o.signature,
    })
}

/// The wire form of a repair contribution.
pub fn contribution_to_proto(c: Contribution) -> pb::RepairContribution {
    pb::RepairContribution {
        from: u32::from(c.from),
        offers: c.offers.into_iter().map(offer_to_proto).collect(),
        sigma: Some(sealed_to_proto(c.sigma)),
    }
}

/// A repair contribution from its wire form.
pub fn contribution_from_proto(c: pb::RepairContribution) -> Result<Contribution, String> {
    Ok(Contribution {
        from: ident(c.from)?,
        offers: c
            .offers
            .into_iter()
            .map(offer_from_proto)
            .collect::<Result<_, _>>()?,
        sigma: c
            .sigma
            .and_then(sealed_from_proto)
            .ok_or("a contribution without its sealed σ")?,
    })
}

fn repair_result_from_proto(r: pb::RepairResult) -> l::RepairResult {
    l::RepairResult {
        group_public_key: r.group_public_key,
        verifying_share: r.verifying_share,
        epoch: r.epoch,
        signature: r.signature,
    }
}

fn repair_result_to_proto(r: l::RepairResult) -> pb::RepairResult {
    pb::RepairResult {
        group_public_key: r.group_public_key,
        verifying_share: r.verifying_share,
        epoch: r.epoch,
        signature: r.signature,
    }
}

fn repair_session_to_proto(s: l::RepairSession) -> pb::RepairSession {
    pb::RepairSession {
        session_id: s.session_id.to_vec(),
        manifest_hash: s.manifest_hash,
        scheme: scheme_i32(s.scheme),
        target: u32::from(s.target),
        helpers: s.helpers.into_iter().map(u32::from).collect(),
    }
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
            Request::LedgerNotice(n) => Req::LedgerNotice(pb::LedgerNotice {
                intent: n.intent,
                signature: n.signature,
                signed_at_ms: n.signed_at_ms,
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
struct Out(&'static str);

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
        v.into_iter()
            .map(|s| {
                sealed_from_proto(s).ok_or_else(|| self.bad(field, "malformed sealed package"))
            })
            .collect()
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
                refusal: Refusal {
                    rule: Rule::parse(&r.rule),
                    reason: r.reason,
                    permanent: r.permanent,
                    retry_at_ms: (r.retry_at_ms != 0).then_some(r.retry_at_ms),
                },
                // A culprit that is no FROST identifier names nobody.
                culprits: r
                    .culprits
                    .iter()
                    .filter_map(|c| u16::try_from(*c).ok())
                    .collect(),
            },
            Ans::PolicyStatus(s) => Answer::PolicyStatus(policy::status_from_proto(&s)),
            Ans::LedgerAck(a) => Answer::LedgerAck { debited: a.debited },
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
                            scheme: super::key_scheme(k.scheme).ok()?,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use quorate_core::{
        audit::{Event, Head, Record},
        identity::IdentitySecret,
        link::*,
        policy::{doc::zero_hash, AdminSignature, PolicyStatus, StatusReceipt},
    };

    use super::*;

    fn admin(n: u8) -> AdminSignature {
        let key = IdentitySecret::generate(&mut rand::rngs::OsRng);
        AdminSignature::sign(&key, "test", &[&[n]])
    }

    fn signed_policy() -> SignedPolicy {
        let key = IdentitySecret::generate(&mut rand::rngs::OsRng);
        let doc = PolicyDoc {
            format: quorate_core::policy::doc::FORMAT,
            version: 1,
            prev_hash: zero_hash(),
            assets: vec![],
            whitelist: vec![],
            velocity: vec![],
            backend_keys: vec![],
            admins: vec![key.public().to_string()],
            admin_quorum: 1,
            timelock_ms: 0,
            frozen: false,
            per_signer_budget: false,
            chains: vec![],
            solana: None,
            retired_signers: vec![],
        };
        let doc = PolicyDoc::decode(&doc.encode()).expect("a valid document");
        SignedPolicy {
            signatures: vec![AdminSignature::sign(&key, "test", &[&doc.hash()])],
            doc,
        }
    }

    fn sealed(sender: u16, recipient: u16) -> Sealed {
        Sealed {
            sender,
            recipient,
            nonce: [sender as u8; 12],
            ciphertext: vec![1, 2, 3],
            signature: vec![4, 5],
        }
    }

    fn round1(identifier: u16) -> SignedRound1 {
        SignedRound1 {
            identifier,
            package: vec![identifier as u8; 3],
            signature: vec![9],
        }
    }

    fn echo(from: u16) -> SignedEcho {
        SignedEcho {
            from,
            packages: vec![round1(1), round1(2)],
            signature: vec![7; 4],
        }
    }

    fn offer(from: u16) -> Offer {
        Offer {
            from,
            epoch: 2,
            public_key_package: vec![1; 5],
            commitments: BTreeMap::from([(1, vec![2; 3]), (3, vec![4; 3])]),
            signature: vec![6; 2],
        }
    }

    fn contribution(from: u16) -> Contribution {
        Contribution {
            from,
            offers: vec![offer(1), offer(3)],
            sigma: sealed(from, 2),
        }
    }

    fn session() -> RepairSession {
        RepairSession {
            session_id: [5; 16],
            manifest_hash: vec![6; 32],
            scheme: Scheme::Ed25519,
            target: 2,
            helpers: vec![1, 3],
        }
    }

    fn repair_result() -> RepairResult {
        RepairResult {
            group_public_key: vec![1; 33],
            verifying_share: vec![2; 33],
            epoch: 3,
            signature: vec![4; 64],
        }
    }

    fn status() -> PolicyStatus {
        PolicyStatus {
            version: 3,
            hash: "ab".repeat(32),
            frozen: true,
            pending_version: 4,
            pending_hash: "cd".repeat(32),
            pending_effective_at_ms: 1_700_000_000_000,
        }
    }

    /// One request of every kind, with every field set.
    fn requests() -> Vec<Request> {
        vec![
            Request::DkgRound1(DkgRound1Request {
                session_id: vec![1; 16],
                manifest_hash: vec![2; 32],
                scheme: Scheme::Ed25519,
                refresh: Some(RefreshTerms {
                    old_epoch: 4,
                    participants: vec![1, 2, u16::MAX],
                }),
            }),
            Request::DkgRound2(DkgRound2Request {
                session_id: vec![1; 16],
                packages: vec![round1(1), round1(u16::MAX)],
                scheme: Scheme::Secp256k1,
            }),
            Request::DkgRound3(DkgRound3Request {
                session_id: vec![1; 16],
                packages: vec![sealed(2, 1), sealed(3, 1)],
                echoes: vec![echo(2), echo(3)],
                scheme: Scheme::Ed25519,
                refresh: true,
            }),
            Request::DkgConfirm(DkgConfirmRequest {
                session_id: vec![1; 16],
                results: vec![SignedResult {
                    identifier: 2,
                    group_key: vec![3; 33],
                    transcript: vec![4; 32],
                    signature: vec![5; 64],
                }],
                scheme: Scheme::Ed25519,
            }),
            Request::Commit(CommitRequest {
                session_id: [3; 16],
                scheme: Scheme::Ed25519,
            }),
            Request::Presign(PresignRequest {
                session_ids: vec![[1; 16], [2; 16]],
                scheme: Scheme::Ed25519,
            }),
            Request::Sign(Box::new(SignRequest {
                session_id: [4; 16],
                intent: vec![1; 40],
                backend_signature: vec![2; 64],
                signing_package: vec![3; 100],
                approvals: vec![admin(1), admin(2)],
                vault_action: Some(VaultActionRef {
                    chain: "ethereum".into(),
                    nonce: 7,
                }),
                scheme: Scheme::Ed25519,
                solana_void: Some(SolanaVoid {
                    nonce_account: [8; 32],
                    nonce_value: [9; 32],
                    approval: Some(admin(3)),
                }),
                key_epoch: 2,
            })),
            Request::PolicyUpdate(signed_policy()),
            Request::PolicyVeto(PolicyVeto {
                policy_hash: [7; 32],
                veto: admin(4),
            }),
            Request::LedgerNotice(LedgerNotice {
                intent: vec![1; 40],
                signature: vec![2; 64],
                signed_at_ms: 1_700_000_000_000,
            }),
            Request::AuditExport(AuditExportRequest {
                node: "signer-1".into(),
                from_seq: 5,
                limit: 100,
                nonce: vec![3; 16],
            }),
            Request::StatusChallenge {
                challenge: vec![4; 32],
            },
            Request::RepairOffer(RepairOfferRequest { session: session() }),
            Request::RepairContribute(RepairContributeRequest {
                session: session(),
                offers: vec![offer(1), offer(3)],
                deltas: vec![sealed(3, 1)],
            }),
            Request::RepairFinish(RepairFinishRequest {
                session: session(),
                offers: vec![offer(1), offer(3)],
                contributions: vec![contribution(1), contribution(3)],
            }),
            Request::RefreshActivate(RefreshActivate {
                session_id: vec![1; 16],
                scheme: Scheme::Ed25519,
                epoch: 3,
                transcript_hash: vec![2; 32],
                public_key_package_hash: vec![3; 32],
                acks: vec![RefreshAck {
                    identifier: 2,
                    signature: vec![4; 64],
                }],
            }),
            Request::AddHolder(AddHolder {
                session: session(),
                result: repair_result(),
            }),
            Request::Sync(SyncRequest {
                policy_version: 3,
                pending_hash: "ef".repeat(32),
            }),
        ]
    }

    /// One answer of every kind, with every field set.
    fn answers() -> Vec<Answer> {
        let head = Head {
            node: "signer-1".into(),
            role: "signer".into(),
            seq: 2,
            hash: "12".repeat(32),
            threshold: None,
            identity_key: Some("02".repeat(33)),
            signature: Some("34".repeat(64)),
            nonce: Some("56".repeat(16)),
        };
        let record = Record {
            seq: 2,
            at_ms: 1_700_000_000_000,
            prev: [1; 32],
            event: Event::new("share-released").with("withdrawal", "wd-1"),
            hash: [2; 32],
        };
        vec![
            Answer::DkgRound1(DkgRound1Response {
                package: vec![1; 10],
                signature: vec![2; 64],
            }),
            Answer::DkgRound2(DkgRound2Response {
                packages: vec![sealed(1, 2), sealed(1, 3)],
                echo: Some(echo(1)),
            }),
            Answer::DkgRound3(DkgRound3Response {
                group_public_key: vec![1; 33],
                public_key_package: vec![2; 200],
                transcript_hash: vec![3; 32],
                signature: vec![4; 64],
            }),
            Answer::DkgConfirm(DkgConfirmResponse {
                group_public_key: vec![1; 33],
                epoch: 2,
                stored_signature: vec![3; 64],
                public_key_package_hash: vec![4; 32],
            }),
            Answer::Commit {
                commitments: vec![1; 66],
            },
            Answer::Presign {
                commitments: vec![vec![1; 66], vec![2; 66]],
                ttl_ms: 60_000,
            },
            Answer::Sign { share: vec![3; 32] },
            Answer::PolicyStatus(status()),
            Answer::LedgerAck { debited: true },
            Answer::AuditPage {
                records: vec![record],
                head,
            },
            Answer::StatusReceipt(StatusReceipt {
                node: "signer-1".into(),
                challenge: vec![1; 16],
                version: 3,
                hash: "ab".repeat(32),
                frozen: true,
                locally_frozen: true,
                pending_version: 4,
                pending_hash: "cd".repeat(32),
                pending_effective_at_ms: 5,
                clock_ms: 6,
                signature: vec![7; 64],
            }),
            Answer::RepairOffer(RepairOfferResponse {
                offer: offer(1),
                deltas: vec![sealed(1, 3)],
            }),
            Answer::RepairContribution(contribution(3)),
            Answer::RepairResult(repair_result()),
            Answer::RefreshActivated {
                epoch: 3,
                group_public_key: vec![1; 33],
            },
            Answer::HolderAdded {
                identifier: 4,
                epoch: 1,
            },
            Answer::Sync(SyncAnswer {
                policy: Some(status()),
                updates: vec![signed_policy()],
                vetoes: vec![PolicyVeto {
                    policy_hash: [7; 32],
                    veto: admin(5),
                }],
                key_packages: vec![KeyPackageInfo {
                    scheme: Scheme::Ed25519,
                    key_epoch: 2,
                    public_key_package: vec![1; 100],
                }],
            }),
            Answer::Refused {
                refusal: Refusal {
                    rule: Rule::parse("policy-velocity-asset-amount-24h"),
                    reason: "over the limit".into(),
                    permanent: false,
                    retry_at_ms: Some(1_700_000_000_000),
                },
                culprits: vec![2, u16::MAX],
            },
        ]
    }

    /// Tells the answer variants apart; a variant added to [`Answer`] fails to compile here
    /// until [`answers`] has one.
    fn answer_case(a: &Answer) -> usize {
        match a {
            Answer::DkgRound1(_) => 0,
            Answer::DkgRound2(_) => 1,
            Answer::DkgRound3(_) => 2,
            Answer::DkgConfirm(_) => 3,
            Answer::Commit { .. } => 4,
            Answer::Presign { .. } => 5,
            Answer::Sign { .. } => 6,
            Answer::PolicyStatus(_) => 7,
            Answer::LedgerAck { .. } => 8,
            Answer::AuditPage { .. } => 9,
            Answer::StatusReceipt(_) => 10,
            Answer::RepairOffer(_) => 11,
            Answer::RepairContribution(_) => 12,
            Answer::RepairResult(_) => 13,
            Answer::RefreshActivated { .. } => 14,
            Answer::HolderAdded { .. } => 15,
            Answer::Sync(_) => 16,
            Answer::Refused { .. } => 17,
        }
    }

    /// Through the wire and back, as bytes: what a coordinator sends, a signer reads.
    fn over_the_wire_request(r: Request) -> Request {
        let msg = pb::CoordinatorMessage {
            request_id: 1,
            body: Some(r.into()),
        };
        let back = pb::CoordinatorMessage::decode(msg.encode_to_vec().as_slice()).unwrap();
        Request::try_from(back.body.unwrap()).unwrap()
    }

    fn over_the_wire_answer(a: Answer) -> Answer {
        let msg = pb::SignerMessage {
            request_id: 1,
            body: Some(a.into()),
        };
        let back = pb::SignerMessage::decode(msg.encode_to_vec().as_slice()).unwrap();
        Answer::try_from(back.body.unwrap()).unwrap()
    }

    #[test]
    fn every_request_round_trips() {
        let all = requests();
        let kinds: std::collections::HashSet<_> = all.iter().map(Request::kind).collect();
        assert_eq!(kinds.len(), 18, "one request of each kind");
        for r in all {
            assert_eq!(over_the_wire_request(r.clone()), r);
        }
    }

    #[test]
    fn every_answer_round_trips() {
        let all = answers();
        let cases: std::collections::HashSet<_> = all.iter().map(answer_case).collect();
        assert_eq!(cases.len(), 18, "one answer of each kind");
        for a in all {
            assert_eq!(over_the_wire_answer(a.clone()), a);
        }
    }

    #[test]
    fn the_hello_round_trips() {
        let h = Hello {
            name: "signer-1".into(),
            identifier: 1,
            version: "0.1.0".into(),
            manifest_hash: vec![1; 32],
            group_public_key: vec![2; 33],
            policy: status(),
            ed25519_group_public_key: vec![3; 32],
            key_epoch: 1,
            ed25519_key_epoch: 2,
            pending_key_epoch: 3,
            ed25519_pending_key_epoch: 4,
        };
        assert_eq!(Hello::try_from(pb::Hello::from(h.clone())).unwrap(), h);
        let far = pb::Hello {
            identifier: 70_000,
            ..pb::Hello::default()
        };
        assert_eq!(Hello::try_from(far).unwrap_err().field, "identifier");
    }

    fn refused(body: Req) -> Malformed {
        Request::try_from(body).expect_err("refused")
    }

    #[test]
    fn a_session_id_that_is_not_16_bytes_is_refused_naming_the_field() {
        let e = refused(Req::Commit(pb::CommitRequest {
            session_id: vec![1; 15],
            scheme: 0,
        }));
        assert_eq!((e.request, e.field), (RequestKind::Commit, "session_id"));
        let r = e.refusal();
        assert_eq!(r.rule, Rule::BadRequest);
        assert_eq!(r.reason, "session id must be 16 bytes");
        assert!(r.permanent);
        let e = refused(Req::Sign(pb::SignRequest {
            session_id: vec![1; 15],
            ..Default::default()
        }));
        assert_eq!((e.request, e.field), (RequestKind::Sign, "session_id"));
        let e = refused(Req::Presign(pb::PresignRequest {
            session_ids: vec![vec![1; 16], vec![1; 15]],
            scheme: 0,
        }));
        assert_eq!(e.field, "session_ids");
        let mut s = repair_session_to_proto(session());
        s.session_id = vec![1; 15];
        let e = refused(Req::RepairOffer(pb::RepairOfferRequest {
            session: Some(s),
        }));
        assert_eq!(e.field, "session.session_id");
        assert_eq!(e.refusal().rule, Rule::BadRequest);
    }

    #[test]
    fn an_unknown_scheme_is_refused_naming_the_field() {
        let e = refused(Req::Commit(pb::CommitRequest {
            session_id: vec![1; 16],
            scheme: 7,
        }));
        assert_eq!(e.field, "scheme");
        assert_eq!(e.refusal().rule, Rule::BadRequest);
        assert_eq!(e.reason, "unknown key scheme 7");
        // Before any DKG step: bad-request, not an abort.
        let e = refused(Req::DkgRound2(pb::DkgRound2Request {
            scheme: 7,
            ..Default::default()
        }));
        assert_eq!(e.field, "scheme");
        assert_eq!(e.refusal().rule, Rule::BadRequest);
        let mut s = repair_session_to_proto(session());
        s.scheme = 9;
        let e = refused(Req::AddHolder(pb::AddHolder {
            session: Some(s),
            result: None,
        }));
        assert_eq!(e.field, "session.scheme");
    }

    #[test]
    fn an_identifier_over_u16_max_is_refused_naming_the_field() {
        let far = u32::from(u16::MAX) + 1;
        let e = refused(Req::DkgRound2(pb::DkgRound2Request {
            session_id: vec![1; 16],
            packages: vec![pb::SignedRound1 {
                identifier: far,
                ..Default::default()
            }],
            scheme: 0,
        }));
        assert_eq!(e.field, "packages");
        assert_eq!(e.reason, format!("identifier {far} out of range"));
        // Inside a DKG round, as the round refused it before: an abort naming nobody.
        assert_eq!(e.refusal().rule, Rule::DkgAborted);
        let e = refused(Req::DkgRound1(pb::DkgRound1Request {
            refresh: Some(pb::RefreshTerms {
                old_epoch: 0,
                participants: vec![1, far],
            }),
            ..Default::default()
        }));
        assert_eq!(e.field, "refresh.participants");
        assert_eq!(e.refusal().rule, Rule::BadRequest);
        let mut s = repair_session_to_proto(session());
        s.helpers.push(far);
        let e = refused(Req::RepairOffer(pb::RepairOfferRequest {
            session: Some(s),
        }));
        assert_eq!(e.field, "session.helpers");
        let mut s = repair_session_to_proto(session());
        s.target = far;
        let e = refused(Req::RepairOffer(pb::RepairOfferRequest {
            session: Some(s),
        }));
        assert_eq!(e.field, "session.target");
        let e = refused(Req::DkgConfirm(pb::DkgConfirmRequest {
            results: vec![pb::DkgResult {
                identifier: far,
                ..Default::default()
            }],
            ..Default::default()
        }));
        assert_eq!(e.field, "results");
        let e = refused(Req::RefreshActivate(pb::RefreshActivate {
            acks: vec![pb::RefreshAck {
                identifier: far,
                signature: vec![],
            }],
            ..Default::default()
        }));
        assert_eq!(e.field, "acks");
        assert_eq!(e.refusal().rule, Rule::BadRequest);
    }

    #[test]
    fn other_malformed_fields_are_named_with_their_handlers_rule() {
        let e = refused(Req::PolicyUpdate(crate::policy::SignedPolicy::default()));
        assert_eq!(e.field, "document");
        assert_eq!(e.refusal().rule, Rule::PolicyUpdateInvalid);
        let e = refused(Req::PolicyVeto(pb::PolicyVeto {
            policy_hash: vec![1; 31],
            veto: None,
        }));
        assert_eq!(e.field, "policy_hash");
        assert_eq!(e.refusal().rule, Rule::PolicyVetoInvalid);
        let e = refused(Req::PolicyVeto(pb::PolicyVeto {
            policy_hash: vec![1; 32],
            veto: None,
        }));
        assert_eq!((e.field, e.reason.as_str()), ("veto", "veto: missing"));
        let e = refused(Req::Sign(pb::SignRequest {
            session_id: vec![1; 16],
            approvals: vec![crate::policy::AdminSignature {
                admin: vec![1; 5],
                signature: vec![],
            }],
            ..Default::default()
        }));
        assert_eq!(e.field, "approvals");
        assert_eq!(e.refusal().rule, Rule::BadRequest);
        let e = refused(Req::Sign(pb::SignRequest {
            session_id: vec![1; 16],
            solana_void: Some(pb::SolanaVoid {
                nonce_account: vec![1; 31],
                ..Default::default()
            }),
            ..Default::default()
        }));
        assert_eq!(e.field, "solana_void.nonce_account");
        let e = refused(Req::DkgRound3(pb::DkgRound3Request {
            packages: vec![pb::SealedRound2 {
                nonce: vec![1; 11],
                ..Default::default()
            }],
            ..Default::default()
        }));
        assert_eq!(e.field, "packages");
        assert_eq!(e.refusal().rule, Rule::DkgAborted);
        let mut o = offer_to_proto(offer(1));
        o.commitments.push(o.commitments[0].clone());
        let e = refused(Req::RepairContribute(pb::RepairContributeRequest {
            session: Some(repair_session_to_proto(session())),
            offers: vec![o],
            deltas: vec![],
        }));
        assert_eq!(
            (e.field, e.reason.as_str()),
            ("offers", "an offer commits twice to one helper")
        );
        let e = refused(Req::AddHolder(pb::AddHolder {
            session: None,
            result: None,
        }));
        assert_eq!(
            (e.field, e.reason.as_str()),
            ("session", "an enrolment without its session")
        );
    }

    #[test]
    fn a_veto_is_kept_as_its_wire_encoding() {
        let v = PolicyVeto {
            policy_hash: [3; 32],
            veto: admin(1),
        };
        let bytes = encode_veto(&v);
        assert_eq!(bytes, veto_to_proto(&v).encode_to_vec());
        assert_eq!(decode_veto(&bytes).unwrap(), v);
        let p = signed_policy();
        assert_eq!(
            policy::decode_signed(&policy::encode_signed(&p)).unwrap(),
            p
        );
        let add = AddHolder {
            session: session(),
            result: repair_result(),
        };
        assert_eq!(decode_add_holder(&encode_add_holder(&add)).unwrap(), add);
        let Request::RefreshActivate(a) = requests().swap_remove(15) else {
            panic!("the refresh activation sample moved");
        };
        assert_eq!(
            decode_refresh_activate(&encode_refresh_activate(&a)).unwrap(),
            a
        );
    }

    #[test]
    fn a_sync_answer_keeps_what_converts() {
        let mut bad_veto = veto_to_proto(&PolicyVeto {
            policy_hash: [7; 32],
            veto: admin(5),
        });
        bad_veto.policy_hash.pop();
        let good = signed_policy();
        let body = Ans::Sync(pb::SyncAnswer {
            policy: None,
            updates: vec![
                crate::policy::SignedPolicy::default(),
                policy::signed_to_proto(&good),
            ],
            vetoes: vec![bad_veto],
            key_packages: vec![
                pb::KeyPackageInfo {
                    scheme: 9,
                    key_epoch: 1,
                    public_key_package: vec![1],
                },
                pb::KeyPackageInfo {
                    scheme: 1,
                    key_epoch: 2,
                    public_key_package: vec![2],
                },
            ],
        });
        let Answer::Sync(a) = Answer::try_from(body).unwrap() else {
            panic!("not a sync answer");
        };
        assert_eq!(a.policy, None);
        assert_eq!(a.updates, vec![good]);
        assert!(a.vetoes.is_empty());
        assert_eq!(
            a.key_packages,
            vec![KeyPackageInfo {
                scheme: Scheme::Ed25519,
                key_epoch: 2,
                public_key_package: vec![2],
            }]
        );
    }
}
