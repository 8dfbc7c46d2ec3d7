//! Share repair and the enrolment of a new signer ([`quorate_core::repair`]): this signer as a
//! helper (rounds 1 and 2) or as the target (the last step). Every step runs under the DKG
//! lock, so repairs and DKGs never interleave; session ids are single use across both.

use std::collections::BTreeSet;

use frost_core::keys::PublicKeyPackage;
use quorate_core::{
    audit::{self, Event},
    link::{
        AddHolder, Answer, RepairContributeRequest, RepairFinishRequest, RepairOfferRequest,
        RepairOfferResponse, RepairResult, RepairSession,
    },
    refusal::{Refusal, Rule},
    repair::{self, RepairError, RepairSetup},
};
use tracing::{info, warn};

use super::{groups::Held, read, Abort, DkgSlot, Node, META_PUBLIC_KEY_PACKAGE};
use quorate_core::message::Scheme;

/// The metadata key of a group's key epoch (u32, big-endian; absent means 0).
pub const META_KEY_EPOCH: &str = "key_epoch";

/// One step of a share repair.
pub(crate) enum RepairStep {
    /// Round 1, to a helper.
    Offer(RepairOfferRequest),
    /// Round 2, to a helper.
    Contribute(RepairContributeRequest),
    /// The last step, to the target.
    Finish(RepairFinishRequest),
}

impl RepairStep {
    fn session(&self) -> &RepairSession {
        match self {
            RepairStep::Offer(r) => &r.session,
            RepairStep::Contribute(r) => &r.session,
            RepairStep::Finish(r) => &r.session,
        }
    }
}

fn repair_refusal(e: RepairError) -> Abort {
    Abort {
        refusal: Refusal::permanent(Rule::RepairAborted, e.to_string()),
        culprits: e.culprits,
    }
}

fn bad(reason: impl Into<String>) -> Refusal {
    Refusal::permanent(Rule::BadRequest, reason)
}

impl Node {
    /// The key epoch of this signer's `C` share (0 before any refresh).
    pub(super) fn key_epoch<C: Held>(&self) -> Result<u32, Refusal> {
        let raw = self
            .store
            .get_meta(&C::meta(META_KEY_EPOCH))
            .map_err(super::storage)?;
        match raw.as_deref() {
            None => Ok(0),
            Some(b) => b
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| Refusal::permanent(Rule::SignerStorage, "corrupt key epoch")),
        }
    }

    /// The public key package stored with this signer's `C` share.
    pub(super) fn public_key_package<C: Held>(&self) -> Result<PublicKeyPackage<C>, Refusal> {
        let raw = self
            .store
            .get_meta(&C::meta(META_PUBLIC_KEY_PACKAGE))
            .map_err(super::storage)?
            .ok_or_else(|| {
                Refusal::temporary(
                    Rule::NoKeyShare,
                    format!("this signer has no {} public key package", C::SCHEME),
                )
            })?;
        PublicKeyPackage::<C>::deserialize(&raw).map_err(|e| {
            Refusal::permanent(Rule::SignerStorage, format!("public key package: {e}"))
        })
    }

    /// The setup of a repair session, from the request checked against our own manifest.
    fn repair_setup(&self, s: &RepairSession) -> Result<RepairSetup, Refusal> {
        if s.manifest_hash != self.manifest.hash() {
            return Err(Refusal::permanent(
                Rule::ManifestMismatch,
                "the coordinator's manifest differs from this signer's",
            ));
        }
        let helpers: BTreeSet<u16> = s.helpers.iter().copied().collect();
        if helpers.len() != s.helpers.len() {
            return Err(bad("a helper is named twice"));
        }
        Ok(RepairSetup {
            session_id: s.session_id.to_vec(),
            manifest_hash: self.manifest.hash(),
            threshold: self.manifest.threshold,
            target: s.target,
            helpers,
            participants: self
                .manifest
                .signers
                .iter()
                .map(|x| (x.identifier, x.identity_key))
                .collect(),
        })
    }

    /// Routes a repair step to its key group; runs under the DKG lock.
    pub(super) fn repair_step(&self, step: RepairStep) -> Answer {
        let result = match step.session().scheme {
            Scheme::Secp256k1 => self.repair_step_for::<super::Secp>(step),
            Scheme::Ed25519 => self.repair_step_for::<super::Ed>(step),
        };
        result.unwrap_or_else(Answer::from)
    }

    fn repair_step_for<C: Held>(&self, step: RepairStep) -> Result<Answer, Abort> {
        let setup = self.repair_setup(step.session())?;
        let mut slot = super::lock(&self.dkg);
        match step {
            RepairStep::Offer(_) => self.repair_offer::<C>(&mut slot, setup),
            RepairStep::Contribute(r) => self.repair_contribute::<C>(&mut slot, setup, r),
            RepairStep::Finish(r) => self.repair_finish::<C>(&mut slot, setup, r),
        }
    }

    fn repair_offer<C: Held>(
        &self,
        slot: &mut DkgSlot,
        setup: RepairSetup,
    ) -> Result<Answer, Abort> {
        let key = C::group(self).key()?;
        let pkp = self.public_key_package::<C>()?;
        let epoch = self.key_epoch::<C>()?;
        self.refuse_retired(setup.helpers.iter().chain([&setup.target]))?;
        self.claim_session(slot, &setup.session_id)?;
        let session = setup.session_id.clone();
        let target = setup.target;
        let r1 = repair::helper_offer(
            setup,
            &self.identity,
            &key,
            &pkp,
            epoch,
            &mut rand::rngs::OsRng,
        )
        .map_err(repair_refusal)?;
        *C::repair(slot) = Some((session, r1.state));
        info!(signer = %self.name, scheme = %C::SCHEME, target, "repair: offer sent");
        Ok(Answer::RepairOffer(RepairOfferResponse {
            offer: r1.offer,
            deltas: r1.sealed,
        }))
    }

    fn repair_contribute<C: Held>(
        &self,
        slot: &mut DkgSlot,
        setup: RepairSetup,
        r: RepairContributeRequest,
    ) -> Result<Answer, Abort> {
        // Compare before taking: a stray message must not destroy the session in progress.
        let state = match C::repair(slot).take() {
            Some((sid, st)) if sid == setup.session_id => st,
            other => {
                *C::repair(slot) = other;
                return Err(repair_refusal(RepairError {
                    reason: "round 2 for a repair this signer made no offer in".into(),
                    culprits: vec![],
                }));
            }
        };
        // What the audit record names is the session of the offer this σ is sealed for, not
        // what this request says.
        let setup = state.setup().clone();
        let contribution = repair::helper_contribute(
            state,
            &self.identity,
            &r.offers,
            &r.deltas,
            &mut rand::rngs::OsRng,
        )
        .map_err(|e| {
            warn!(signer = %self.name, error = %e, "repair aborted");
            repair_refusal(e)
        })?;
        let helpers: Vec<String> = setup.helpers.iter().map(u16::to_string).collect();
        self.audit_before(
            Event::new(audit::kind::REPAIR_HELPED)
                .with("session", hex::encode(&setup.session_id))
                .with("scheme", C::SCHEME.as_str())
                .with("target", setup.target.to_string())
                .with("helpers", helpers.join(",")),
        )?;
        info!(signer = %self.name, scheme = %C::SCHEME, target = setup.target, "repair: contribution sealed to the target");
        Ok(Answer::RepairContribution(contribution))
    }

    fn repair_finish<C: Held>(
        &self,
        slot: &mut DkgSlot,
        setup: RepairSetup,
        r: RepairFinishRequest,
    ) -> Result<Answer, Abort> {
        if setup.target != self.me {
            return Err(bad("this signer is not the repair's target").into());
        }
        self.refuse_retired(setup.helpers.iter().chain([&setup.target]))?;
        let offers = r.offers;
        // A share of the current epoch is never replaced; one of an older epoch (a signer
        // restored from an old backup, or one that missed a refresh) no longer signs, and the
        // repaired share of the helpers' epoch takes its place.
        let held = read(&C::group(self).key).is_some();
        let held_epoch = self.key_epoch::<C>()?;
        let share_exists = || {
            Abort::from(Refusal::permanent(
                Rule::ShareExists,
                format!(
                    "this signer already holds a {} key share of key epoch {held_epoch}; a share is never replaced by one of the same or an older epoch",
                    C::SCHEME
                ),
            ))
        };
        if held && offers.first().is_some_and(|o| o.epoch <= held_epoch) {
            return Err(share_exists());
        }
        if C::progress(slot).is_some() {
            return Err(Refusal::temporary(
                Rule::DkgPendingConfirmation,
                "a DKG is in progress on this signer",
            )
            .into());
        }
        let contributions = r.contributions;
        self.claim_session(slot, &setup.session_id)?;
        let out = repair::target_finish::<C>(&setup, &self.identity, &offers, &contributions)
            .map_err(|e| {
                warn!(signer = %self.name, error = %e, "repair aborted; nothing kept");
                repair_refusal(e)
            })?;
        let vshare = out
            .key_package
            .verifying_share()
            .serialize()
            .map_err(|e| Refusal::permanent(Rule::SignerStorage, e.to_string()))?;
        if held && out.epoch <= held_epoch {
            return Err(share_exists());
        }
        self.store_repaired_share::<C>(&out)?;
        C::group(self)
            .install(out.key_package.clone(), out.epoch)
            .map_err(|e| Refusal::permanent(Rule::SignerStorage, e))?;
        let fingerprint = quorate_core::fingerprint::group_key_fingerprint(&out.group_key);
        info!(
            signer = %self.name,
            scheme = %C::SCHEME,
            fingerprint = %fingerprint,
            "key share repaired and checked against the group's verifying share; stored encrypted"
        );
        let helpers: Vec<String> = setup.helpers.iter().map(u16::to_string).collect();
        self.audit(
            Event::new(audit::kind::SHARE_REPAIRED)
                .with("session", hex::encode(&setup.session_id))
                .with("scheme", C::SCHEME.as_str())
                .with("helpers", helpers.join(","))
                .with("epoch", out.epoch.to_string())
                .with("group_key", hex::encode(&out.group_key))
                .with("fingerprint", fingerprint),
            true,
        );
        Ok(Answer::RepairResult(RepairResult {
            group_public_key: out.group_key,
            verifying_share: vshare,
            epoch: out.epoch,
            signature: out.signature,
        }))
    }
}

impl Node {
    /// The signers the policy in force retired.
    pub(super) fn retired_signers(&self) -> Vec<u16> {
        super::lock(&self.policy)
            .state
            .as_ref()
            .map(|s| s.active().retired_signers.clone())
            .unwrap_or_default()
    }

    /// Refuses a ceremony that names a signer the policy in force retired: a retired signer
    /// never gets a share of the current key back, nor helps make one.
    fn refuse_retired<'a>(&self, ids: impl Iterator<Item = &'a u16>) -> Result<(), Refusal> {
        let retired = self.retired_signers();
        match ids.copied().find(|i| retired.contains(i)) {
            Some(i) => Err(Refusal::permanent(
                Rule::SignerRetired,
                format!(
                    "signer {i} is retired by the policy in force; it takes no part in a repair"
                ),
            )),
            None => Ok(()),
        }
    }

    /// Adds a newly enrolled signer to this holder's public key package, after checking its
    /// signed result against the verifying share interpolated from the helpers' own.
    pub(super) fn add_holder<C: Held>(&self, r: &AddHolder) -> Result<Answer, Refusal> {
        let result = &r.result;
        let setup = self.repair_setup(&r.session)?;
        setup.check().map_err(|e| bad(e.reason))?;
        self.refuse_retired(setup.helpers.iter().chain([&setup.target]))?;
        let mut slot = super::lock(&self.dkg);
        if C::progress(&mut slot).is_some() {
            return Err(Refusal::temporary(
                Rule::DkgPendingConfirmation,
                "a DKG or refresh is in progress on this signer",
            ));
        }
        let group = C::group(self);
        group.key()?;
        let epoch = self.key_epoch::<C>()?;
        let refuse = |m: String| Refusal::permanent(Rule::RepairAborted, m);
        if result.epoch != epoch || result.group_public_key != group.group_key() {
            return Err(refuse(format!(
                "the enrolled share is not of this signer's key at epoch {epoch}"
            )));
        }
        if self.pending_epoch::<C>() != 0 {
            return Err(Refusal::temporary(
                Rule::RefreshPending,
                "a refreshed share waits for activation; enrol after it",
            ));
        }
        let pkp = self.public_key_package::<C>()?;
        // The new share is interpolated from t of this key's holders: anything else would
        // make this holder adopt a point the new signer's share does not match.
        for h in &setup.helpers {
            let holds = super::groups::frost_id::<C>(*h)
                .is_ok_and(|id| pkp.verifying_shares().contains_key(&id));
            if !holds {
                return Err(bad(format!("helper {h} holds no share of this key")));
            }
        }
        let expected = repair::expected_verifying_share(&pkp, &setup.helpers, setup.target)
            .map_err(|e| refuse(e.to_string()))?
            .serialize()
            .map_err(|e| refuse(e.to_string()))?;
        let target_key = setup
            .participants
            .get(&setup.target)
            .ok_or_else(|| bad("the new signer is not in the manifest"))?;
        if result.verifying_share != expected
            || !repair::verify_result::<C>(
                target_key,
                &setup.session_id,
                result.epoch,
                &result.group_public_key,
                &result.verifying_share,
                &result.signature,
            )
        {
            return Err(refuse(
                "the new signer's result does not match the group's interpolated verifying share or is not signed by it".into(),
            ));
        }
        let already = super::groups::frost_id::<C>(setup.target)
            .map(|id| pkp.verifying_shares().contains_key(&id))
            .map_err(bad)?;
        if !already {
            let extended = repair::with_new_holder(&pkp, &setup.helpers, setup.target)
                .map_err(|e| refuse(e.to_string()))?;
            let bytes = extended
                .serialize()
                .map_err(|e| Refusal::permanent(Rule::SignerStorage, e.to_string()))?;
            self.store
                .put_meta_durable(&C::meta(META_PUBLIC_KEY_PACKAGE), &bytes)
                .map_err(super::storage)?;
            info!(signer = %self.name, scheme = %C::SCHEME, new = setup.target, "new signer enrolled; its verifying share added");
            self.audit(
                Event::new(audit::kind::HOLDER_ADDED)
                    .with("session", hex::encode(&setup.session_id))
                    .with("scheme", C::SCHEME.as_str())
                    .with("identifier", setup.target.to_string())
                    .with("epoch", epoch.to_string()),
                true,
            );
        }
        Ok(Answer::HolderAdded {
            identifier: setup.target,
            epoch,
        })
    }

    /// Stores a repaired share with its package, group key and epoch in one durable batch
    /// (replacing a share of an older epoch, if any), and drops a refreshed share waiting for
    /// activation: the repair is of the helpers' epoch, which supersedes it.
    fn store_repaired_share<C: Held>(&self, out: &repair::RepairOutput<C>) -> Result<(), Refusal> {
        let (sealed, pkp) = self.sealed_share(&out.key_package, &out.public_key_package)?;
        let puts = vec![
            (C::meta(super::META_KEY_SHARE), sealed),
            (C::meta(META_PUBLIC_KEY_PACKAGE), pkp),
            (C::meta(super::META_GROUP_KEY), out.group_key.clone()),
            (C::meta(META_KEY_EPOCH), out.epoch.to_be_bytes().to_vec()),
        ];
        self.store
            .put_meta_batch_durable(&puts, &super::refresh::pending_keys::<C>())
            .map_err(super::storage)
    }
}
