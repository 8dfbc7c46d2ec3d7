//! Distributed key generation on a signer ([`quorate_core::dkg`]): rounds 1 to 3, the
//! confirmation round, single-use session ids, and keeping a confirmed share sealed.

use std::collections::BTreeMap;

use quorate_core::{
    audit::{self, Event},
    dkg::{self, DkgSetup},
    link::{
        Answer, DkgConfirmRequest, DkgConfirmResponse, DkgRound1Request, DkgRound1Response,
        DkgRound2Request, DkgRound2Response, DkgRound3Request, DkgRound3Response,
    },
    refusal::{Refusal, Rule},
};
use tracing::{info, warn};

use super::{
    lock, read, storage, DkgProgress, DkgSlot, Ed, Held, Node, Scheme, Secp, META_GROUP_KEY,
    META_KEY_SHARE, META_PUBLIC_KEY_PACKAGE,
};

/// How many recent DKG session ids a signer remembers, to refuse their reuse.
const USED_DKG_SESSIONS: usize = 64;

/// One step of a DKG (or of a share refresh, which runs the same rounds).
pub(crate) enum DkgStep {
    Round1(DkgRound1Request),
    Round2(DkgRound2Request),
    Round3(DkgRound3Request),
    Confirm(DkgConfirmRequest),
}

impl DkgStep {
    /// The key group it is for.
    fn scheme(&self) -> Scheme {
        match self {
            DkgStep::Round1(r) => r.scheme,
            DkgStep::Round2(r) => r.scheme,
            DkgStep::Round3(r) => r.scheme,
            DkgStep::Confirm(r) => r.scheme,
        }
    }
}

fn refusal(r: Refusal) -> Answer {
    Answer::refused(r)
}

fn dkg_refusal(e: dkg::DkgError) -> Answer {
    Answer::Refused {
        refusal: Refusal::permanent(Rule::DkgAborted, e.to_string()),
        culprits: e.culprits,
    }
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

    pub(super) fn dkg_step(&self, step: DkgStep) -> Answer {
        match step.scheme() {
            Scheme::Secp256k1 => self.dkg_step_for::<Secp>(step),
            Scheme::Ed25519 => self.dkg_step_for::<Ed>(step),
        }
    }

    fn dkg_step_for<C: Held>(&self, step: DkgStep) -> Answer {
        let mut slot = lock(&self.dkg);
        match step {
            DkgStep::Round1(r) => self.dkg_round1::<C>(&mut slot, r),
            DkgStep::Round2(r) => self.dkg_round2::<C>(&mut slot, r),
            DkgStep::Round3(r) => self.dkg_round3::<C>(&mut slot, r),
            DkgStep::Confirm(r) => self.dkg_confirm::<C>(&mut slot, r),
        }
    }

    fn dkg_round1<C: Held>(&self, slot: &mut DkgSlot, r: DkgRound1Request) -> Answer {
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
                Answer::DkgRound1(DkgRound1Response {
                    package: signed.package,
                    signature: signed.signature,
                })
            }
            Err(e) => dkg_refusal(e),
        }
    }

    fn dkg_round2<C: Held>(&self, slot: &mut DkgSlot, r: DkgRound2Request) -> Answer {
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
        let mut rng = rand::rngs::OsRng;
        match dkg::round2(state, &self.identity, &mut rng, &r.packages) {
            Ok((state, sealed)) => {
                let echo = dkg::echo(&state, &self.identity);
                *C::progress(slot) = Some(DkgProgress::Round2(r.session_id, state));
                info!(signer = %self.name, "DKG round 2 sent");
                Answer::DkgRound2(DkgRound2Response {
                    packages: sealed,
                    echo: Some(echo),
                })
            }
            Err(e) => {
                warn!(signer = %self.name, error = %e, "DKG aborted in round 2");
                dkg_refusal(e)
            }
        }
    }

    fn dkg_round3<C: Held>(&self, slot: &mut DkgSlot, r: DkgRound3Request) -> Answer {
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
        let finished = if r.refresh {
            self.refresh_round3::<C>(state, &r.packages, &r.echoes)
        } else {
            dkg::round3(state, &self.identity, &r.packages, &r.echoes)
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
        let answer = Answer::DkgRound3(DkgRound3Response {
            group_public_key: out.group_key.clone(),
            public_key_package: pkp,
            transcript_hash: out.transcript.to_vec(),
            signature: out.signature.clone(),
        });
        *C::progress(slot) = Some(DkgProgress::Finished(r.session_id, Box::new(out)));
        info!(signer = %self.name, "DKG round 3 done; waiting for every participant to confirm");
        answer
    }

    fn dkg_confirm<C: Held>(&self, slot: &mut DkgSlot, r: DkgConfirmRequest) -> Answer {
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
        let participants = match out.kind() {
            dkg::Kind::Refresh => self.participants_of(&out.public_key_package),
            _ => self.setup(r.session_id.clone()).participants,
        };
        if let Err(e) = dkg::check_confirmations(&participants, &r.session_id, &out, &r.results) {
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
        Answer::DkgConfirm(DkgConfirmResponse {
            group_public_key: group_key,
            epoch: 0,
            stored_signature: vec![],
            public_key_package_hash: vec![],
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
