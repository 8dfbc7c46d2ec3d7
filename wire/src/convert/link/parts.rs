//! Parts both directions carry: DKG packages, echoes and sealed shares, repair offers and
//! contributions, vetoes, and the protobuf bytes some of them are stored as.

use super::*;

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

pub(super) fn signed_round1_to_proto(p: SignedRound1) -> pb::SignedRound1 {
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

/// Sealed packages from their wire form; `bad` is the error for one that does not convert.
pub(super) fn sealed_all<E>(
    v: Vec<pb::SealedRound2>,
    bad: impl Fn() -> E,
) -> Result<Vec<Sealed>, E> {
    v.into_iter()
        .map(|s| sealed_from_proto(s).ok_or_else(&bad))
        .collect()
}

pub(super) fn ident(v: u32) -> Result<u16, String> {
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

pub(super) fn repair_result_from_proto(r: pb::RepairResult) -> l::RepairResult {
    l::RepairResult {
        group_public_key: r.group_public_key,
        verifying_share: r.verifying_share,
        epoch: r.epoch,
        signature: r.signature,
    }
}

pub(super) fn repair_result_to_proto(r: l::RepairResult) -> pb::RepairResult {
    pb::RepairResult {
        group_public_key: r.group_public_key,
        verifying_share: r.verifying_share,
        epoch: r.epoch,
        signature: r.signature,
    }
}

pub(super) fn repair_session_to_proto(s: l::RepairSession) -> pb::RepairSession {
    pb::RepairSession {
        session_id: s.session_id.to_vec(),
        manifest_hash: s.manifest_hash,
        scheme: scheme_i32(s.scheme),
        target: u32::from(s.target),
        helpers: s.helpers.into_iter().map(u32::from).collect(),
    }
}
