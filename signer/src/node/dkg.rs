//! Distributed key generation on a signer ([`quorate_core::dkg`]): rounds 1 to 3, the
//! confirmation round, single-use session ids, and keeping a confirmed share sealed.

use std::collections::BTreeMap;

use quorate_core::{
    audit::{self, Event},
    dkg::{self, DkgSetup, SignedRound1},
    refusal::{Refusal, Rule},
    seal::Sealed,
};
use quorate_wire::signer as pb;
use tracing::{info, warn};

use super::{
    lock, read, refusal, scheme_of, storage, DkgProgress, DkgSlot, Ed, Held, Node, Scheme, Secp,
    META_GROUP_KEY, META_KEY_SHARE, META_PUBLIC_KEY_PACKAGE,
};

/// How many recent DKG session ids a signer remembers, to refuse their reuse.
const USED_DKG_SESSIONS: usize = 64;

fn dkg_refusal(e: dkg::DkgError) -> pb::signer_message::Body {
    pb::signer_message::Body::Refusal(pb::Refusal {
        rule: Rule::DkgAborted.to_string(),
        reason: e.to_string(),
        permanent: true,
        culprits: e.culprits.iter().map(|c| u32::from(*c)).collect(),
        retry_at_ms: 0,
    })
}

impl Node {
    fn setup(&self, session_id: Vec<u8>) -> DkgSetup {
        DkgSetup {
            session_id,
            manifest_hash: self.manifest.hash(),
            me: self.me,
            threshold: self.manifest.threshold,
            participants: self
                .manifest
                .signers
                .iter()
                .map(|s| (s.identifier, s.identity_key))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    pub(super) fn dkg_step(&self, body: pb::coordinator_message::Body) -> pb::signer_message::Body {
        use pb::coordinator_message::Body as B;
        let scheme = match &body {
            B::DkgRound1(r) => r.scheme,
            B::DkgRound2(r) => r.scheme,
            B::DkgRound3(r) => r.scheme,
            B::DkgConfirm(r) => r.scheme,
            _ => return refusal(Refusal::permanent(Rule::BadRequest, "not a DKG step")),
        };
        match scheme_of(scheme) {
            Ok(Scheme::Secp256k1) => self.dkg_step_for::<Secp>(body),
            Ok(Scheme::Ed25519) => self.dkg_step_for::<Ed>(body),
            Err(r) => refusal(r),
        }
    }

    fn dkg_step_for<C: Held>(
        &self,
        body: pb::coordinator_message::Body,
    ) -> pb::signer_message::Body {
        use pb::coordinator_message::Body as B;
        let mut slot = lock(&self.dkg);
        match body {
            B::DkgRound1(r) => self.dkg_round1::<C>(&mut slot, r),
            B::DkgRound2(r) => self.dkg_round2::<C>(&mut slot, r),
            B::DkgRound3(r) => self.dkg_round3::<C>(&mut slot, r),
            B::DkgConfirm(r) => self.dkg_confirm::<C>(&mut slot, r),
            _ => refusal(Refusal::permanent(Rule::BadRequest, "not a DKG step")),
        }
    }

    fn dkg_round1<C: Held>(
        &self,
        slot: &mut DkgSlot,
        r: pb::DkgRound1Request,
    ) -> pb::signer_message::Body {
        if r.refresh.is_none() && read(&C::group(self).key).is_some() {
            return refusal(Refusal::permanent(
                Rule::DkgKeyExists,
                format!(
                    "this signer already holds a {} key share; a new DKG would replace the wallet key",
                    C::SCHEME
                ),
            ));
        }
        if let Some(DkgProgress::Finished(..)) = C::progress(slot) {
            // A finished DKG waits for its confirmation (or a signer restart): a new session
            // must not be able to throw away a share other signers may already have kept.
            return refusal(Refusal::temporary(
                Rule::DkgPendingConfirmation,
                "a finished DKG awaits confirmation; restart this signer to abandon it",
            ));
        }
        if r.manifest_hash != self.manifest.hash() {
            return refusal(Refusal::permanent(
                Rule::ManifestMismatch,
                "the coordinator's manifest differs from this signer's",
            ));
        }
        if r.session_id.len() != 16 {
            return refusal(Refusal::permanent(
                Rule::BadRequest,
                "session id must be 16 bytes",
            ));
        }
        // A refresh renews the share this signer holds, among every holder of it.
        let refresh = match &r.refresh {
            Some(terms) => match self.refresh_setup::<C>(r.session_id.clone(), terms) {
                Ok(x) => Some(x),
                Err(e) => return refusal(e),
            },
            None => None,
        };
        if let Err(e) = self.claim_session(slot, &r.session_id) {
            return refusal(e);
        }
        let mut rng = rand::rngs::OsRng;
        let started = match refresh {
            None => {
                dkg::round1_for::<C, _>(self.setup(r.session_id.clone()), &self.identity, &mut rng)
            }
            Some((setup, epoch, pkp)) => {
                dkg::refresh_round1_for(setup, epoch, &pkp, &self.identity, &mut rng)
            }
        };
        match started {
            Ok((state, signed)) => {
                *C::progress(slot) = Some(DkgProgress::Round1(r.session_id, state));
                info!(signer = %self.name, scheme = %C::SCHEME, "DKG round 1 sent");
                pb::signer_message::Body::DkgRound1(pb::DkgRound1Response {
                    package: signed.package,
                    signature: signed.signature,
                })
            }
            Err(e) => dkg_refusal(e),
        }
    }

    fn dkg_round2<C: Held>(
        &self,
        slot: &mut DkgSlot,
        r: pb::DkgRound2Request,
    ) -> pb::signer_message::Body {
        // Compare before taking: a stray message must not destroy the session in progress.
        let state = match C::progress(slot).take() {
            Some(DkgProgress::Round1(sid, st)) if sid == r.session_id => st,
            other => {
                *C::progress(slot) = other;
                return dkg_refusal(dkg::DkgError {
                    reason: "round 2 for a session not in round 1".into(),
                    culprits: vec![],
                });
            }
        };
        let mut received = Vec::with_capacity(r.packages.len());
        for p in r.packages {
            let Ok(identifier) = u16::try_from(p.identifier) else {
                return dkg_refusal(dkg::DkgError {
                    reason: format!("identifier {} out of range", p.identifier),
                    culprits: vec![],
                });
            };
            received.push(SignedRound1 {
                identifier,
                package: p.package,
                signature: p.signature,
            });
        }
        let mut rng = rand::rngs::OsRng;
        match dkg::round2(state, &self.identity, &mut rng, &received) {
            Ok((state, sealed)) => {
                let echo = dkg::echo(&state, &self.identity);
                *C::progress(slot) = Some(DkgProgress::Round2(r.session_id, state));
                info!(signer = %self.name, "DKG round 2 sent");
                pb::signer_message::Body::DkgRound2(pb::DkgRound2Response {
                    packages: sealed.into_iter().map(sealed_to_pb).collect(),
                    echo: Some(echo_to_pb(echo)),
                })
            }
            Err(e) => {
                warn!(signer = %self.name, error = %e, "DKG aborted in round 2");
                dkg_refusal(e)
            }
        }
    }

    fn dkg_round3<C: Held>(
        &self,
        slot: &mut DkgSlot,
        r: pb::DkgRound3Request,
    ) -> pb::signer_message::Body {
        let state = match C::progress(slot).take() {
            Some(DkgProgress::Round2(sid, st)) if sid == r.session_id => st,
            other => {
                *C::progress(slot) = other;
                return dkg_refusal(dkg::DkgError {
                    reason: "round 3 for a session not in round 2".into(),
                    culprits: vec![],
                });
            }
        };
        let mut sealed = Vec::with_capacity(r.packages.len());
        for p in r.packages {
            match sealed_from_pb(p) {
                Some(s) => sealed.push(s),
                None => {
                    return dkg_refusal(dkg::DkgError {
                        reason: "malformed sealed package".into(),
                        culprits: vec![],
                    })
                }
            }
        }
        let mut echoes = Vec::with_capacity(r.echoes.len());
        for e in r.echoes {
            match echo_from_pb(e) {
                Some(e) => echoes.push(e),
                None => {
                    return dkg_refusal(dkg::DkgError {
                        reason: "malformed echo".into(),
                        culprits: vec![],
                    })
                }
            }
        }
        let finished = if r.refresh {
            self.refresh_round3::<C>(state, &sealed, &echoes)
        } else {
            dkg::round3(state, &self.identity, &sealed, &echoes)
        };
        let out = match finished {
            Ok(o) => o,
            Err(e) => {
                warn!(signer = %self.name, error = %e, "DKG aborted in round 3");
                return dkg_refusal(e);
            }
        };
        let pkp = match out.public_key_package.serialize() {
            Ok(p) => p,
            Err(e) => {
                return dkg_refusal(dkg::DkgError {
                    reason: format!("public key package: {e}"),
                    culprits: vec![],
                })
            }
        };
        let answer = pb::signer_message::Body::DkgRound3(pb::DkgRound3Response {
            group_public_key: out.group_key.clone(),
            public_key_package: pkp,
            transcript_hash: out.transcript.to_vec(),
            signature: out.signature.clone(),
        });
        *C::progress(slot) = Some(DkgProgress::Finished(r.session_id, Box::new(out)));
        info!(signer = %self.name, "DKG round 3 done; waiting for every participant to confirm");
        answer
    }

    fn dkg_confirm<C: Held>(
        &self,
        slot: &mut DkgSlot,
        r: pb::DkgConfirmRequest,
    ) -> pb::signer_message::Body {
        let out = match C::progress(slot).take() {
            Some(DkgProgress::Finished(sid, out)) if sid == r.session_id => out,
            other => {
                *C::progress(slot) = other;
                return dkg_refusal(dkg::DkgError {
                    reason: "confirmation for a session that has not finished round 3".into(),
                    culprits: vec![],
                });
            }
        };
        let mut results = Vec::with_capacity(r.results.len());
        for x in r.results {
            let Ok(identifier) = u16::try_from(x.identifier) else {
                return dkg_refusal(dkg::DkgError {
                    reason: format!("confirmation identifier {} out of range", x.identifier),
                    culprits: vec![],
                });
            };
            results.push(dkg::SignedResult {
                identifier,
                group_key: x.group_public_key,
                transcript: x.transcript_hash,
                signature: x.signature,
            });
        }
        let participants = match out.kind() {
            dkg::Kind::Refresh => self.participants_of(&out.public_key_package),
            _ => self.setup(r.session_id.clone()).participants,
        };
        if let Err(e) = dkg::check_confirmations(&participants, &r.session_id, &out, &results) {
            warn!(signer = %self.name, error = %e, "DKG not confirmed; no key stored");
            return dkg_refusal(e);
        }
        if out.kind() == dkg::Kind::Refresh {
            return self.store_refreshed::<C>(&r.session_id, *out);
        }
        if let Err(e) = self.keep_share(&out.key_package, &out.public_key_package, &out.group_key) {
            return refusal(e);
        }
        let group_key = out.group_key.clone();
        if let Err(e) = C::group(self).install(out.key_package, 0) {
            return refusal(Refusal::permanent(Rule::SignerStorage, e));
        }
        let fingerprint = quorate_core::fingerprint::group_key_fingerprint(&group_key);
        info!(
            signer = %self.name,
            scheme = %C::SCHEME,
            fingerprint = %fingerprint,
            "DKG finished and confirmed by every participant; key share stored encrypted"
        );
        self.audit(
            Event::new(audit::kind::DKG_FINISHED)
                .with("session", hex::encode(&r.session_id))
                .with("scheme", C::SCHEME.as_str())
                .with("group_key", hex::encode(&group_key))
                .with("fingerprint", fingerprint),
            true,
        );
        pb::signer_message::Body::DkgConfirm(pb::DkgConfirmResponse {
            group_public_key: group_key,
            ..Default::default()
        })
    }

    /// Marks a DKG or repair session id used, for good and across restarts: a second round-1
    /// package or offer in one session would make this signer look like an equivocator.
    pub(super) fn claim_session(
        &self,
        slot: &mut DkgSlot,
        session_id: &[u8],
    ) -> Result<(), Refusal> {
        let used_key = format!("dkg_session/{}", hex::encode(session_id));
        let fresh = !slot.used.iter().any(|u| u == session_id)
            && self.store.put_meta_once(&used_key, b"1").map_err(storage)?;
        if !fresh {
            return Err(Refusal::permanent(
                Rule::BadRequest,
                "this session id was used before; DKG and repair sessions are single use",
            ));
        }
        slot.used.push_back(session_id.to_vec());
        if slot.used.len() > USED_DKG_SESSIONS {
            slot.used.pop_front();
        }
        Ok(())
    }

    /// A share sealed under the KEK for this group, and its public key package, serialized:
    /// what the store keeps of a share.
    pub(super) fn sealed_share<C: Held>(
        &self,
        key_package: &frost_core::keys::KeyPackage<C>,
        public_key_package: &frost_core::keys::PublicKeyPackage<C>,
    ) -> Result<(Vec<u8>, Vec<u8>), Refusal> {
        let storage = |e: String| Refusal::permanent(Rule::SignerStorage, e);
        let plain = zeroize::Zeroizing::new(
            key_package
                .serialize()
                .map_err(|e| storage(format!("key share: {e}")))?,
        );
        let sealed = self.kek.seal(
            &mut rand::rngs::OsRng,
            &C::share_purpose(&self.name),
            &plain,
        );
        let pkp = public_key_package
            .serialize()
            .map_err(|e| storage(format!("public key package: {e}")))?;
        Ok((sealed, pkp))
    }

    /// Persists a confirmed share, encrypted; never replaces one already stored.
    fn keep_share<C: Held>(
        &self,
        key_package: &frost_core::keys::KeyPackage<C>,
        public_key_package: &frost_core::keys::PublicKeyPackage<C>,
        group_key: &[u8],
    ) -> Result<(), Refusal> {
        let storage = |e: String| Refusal::permanent(Rule::SignerStorage, e);
        let (sealed, pkp) = self.sealed_share(key_package, public_key_package)?;
        self.store
            .put_meta_durable(&C::meta(META_PUBLIC_KEY_PACKAGE), &pkp)
            .map_err(|e| storage(e.to_string()))?;
        self.store
            .put_meta_durable(&C::meta(META_GROUP_KEY), group_key)
            .map_err(|e| storage(e.to_string()))?;
        // The share last: its presence is what marks DKG as done on this node.
        match self.store.put_meta_once(&C::meta(META_KEY_SHARE), &sealed) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::permanent(
                Rule::DkgKeyExists,
                "a key share is already stored; it is never replaced",
            )),
            Err(e) => Err(storage(e.to_string())),
        }
    }
}

fn echo_to_pb(e: dkg::SignedEcho) -> pb::DkgEcho {
    pb::DkgEcho {
        from: u32::from(e.from),
        packages: e
            .packages
            .into_iter()
            .map(|p| pb::SignedRound1 {
                identifier: u32::from(p.identifier),
                package: p.package,
                signature: p.signature,
            })
            .collect(),
        signature: e.signature,
    }
}

fn echo_from_pb(e: pb::DkgEcho) -> Option<dkg::SignedEcho> {
    Some(dkg::SignedEcho {
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

pub(super) fn sealed_to_pb(s: Sealed) -> pb::SealedRound2 {
    pb::SealedRound2 {
        sender: u32::from(s.sender),
        recipient: u32::from(s.recipient),
        nonce: s.nonce.to_vec(),
        ciphertext: s.ciphertext,
        signature: s.signature,
    }
}

pub(super) fn sealed_from_pb(p: pb::SealedRound2) -> Option<Sealed> {
    Some(Sealed {
        sender: u16::try_from(p.sender).ok()?,
        recipient: u16::try_from(p.recipient).ok()?,
        nonce: p.nonce.as_slice().try_into().ok()?,
        ciphertext: p.ciphertext,
        signature: p.signature,
    })
}
