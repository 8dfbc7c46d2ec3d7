//! Relaying a share repair ([`quorate_core::repair`]): the coordinator picks t helpers among
//! the connected holders, carries their offers, sealed deltas and sealed contributions, and
//! checks the target's signed result against the group's public key package. It sees no
//! scalar; every check that matters is made by the helpers and the target themselves.

use std::sync::Arc;

use quorate_core::{
    audit::{self, Event},
    fingerprint::group_key_fingerprint,
    link::{
        AddHolder, Answer, RepairContributeRequest, RepairFinishRequest, RepairOfferRequest,
        RepairResult, RepairSession, Request,
    },
    message::Scheme,
    refusal::{Refusal, Rule},
};
use quorate_wire::{
    admin as apb,
    convert::link::{decode_add_holder, encode_add_holder},
};
use rand::RngCore;
use tracing::{info, warn};

use super::{ceremony::detached, groups::GroupSuite, Coordinator, Ed, Secp};

/// How a failure after the new signer stored its share begins.
const ENROLMENT_INCOMPLETE: &str = "enrolment incomplete";
/// What such a failure leaves.
const ENROLMENT_KEPT: &str = "the new signer keeps its share; run the same `quorate repair` again, with every holder connected, to finish adding it";
/// How a refusal of the target's own answer begins.
const TARGET_ANSWER: &str = "the target's answer";

/// Where an enrolment not yet added by every holder is kept.
pub(super) fn enrolment_key(scheme: Scheme, target: u16) -> String {
    format!("enrolment/{}/{target}", scheme.as_str())
}

/// A ceremony failure: what happened and who is to blame.
type Failed = (String, Vec<u16>);

impl Coordinator {
    /// Rebuilds `target`'s lost share of the `scheme` group from `helpers` (names; empty: the
    /// first t connected holders). Waits for the three rounds; refused while a DKG or another
    /// repair runs.
    pub async fn repair_share(
        self: &Arc<Self>,
        scheme: Scheme,
        target: &str,
        helpers: &[String],
    ) -> Result<apb::RepairShareResponse, Refusal> {
        let invalid = |m: String| Refusal::permanent(Rule::RequestInvalid, m);
        let target = self
            .manifest
            .signer_by_name(target)
            .ok_or_else(|| invalid(format!("no signer named `{target}` in the manifest")))?
            .identifier;
        let group_key = self.group_keys().of(scheme).to_vec();
        if group_key.is_empty() {
            return Err(Refusal::temporary(
                Rule::NoGroupKey,
                format!("this cluster has no {scheme} group key to repair a share of"),
            ));
        }
        let retired = self.retired_signers();
        if retired.contains(&target) {
            return Err(Refusal::permanent(
                Rule::SignerRetired,
                "the policy in force retired this signer: it never gets a share of the key back",
            ));
        }
        let connected = self.registry.connected();
        let holds = |c: &crate::registry::ConnectedSigner| {
            !retired.contains(&c.identifier) && self.holds_current(c, scheme, &group_key)
        };
        let Some(t) = connected.iter().find(|c| c.identifier == target) else {
            return Err(Refusal::temporary(
                Rule::RepairSignersMissing,
                "the signer to repair must be connected (started on its empty data directory)",
            ));
        };
        if holds(t) {
            // An enrolment the other holders did not all finish adding: finish it.
            if let Some(add) = self.stored_enrolment(scheme, target)? {
                let me = self.clone();
                let ceremony = self.begin_ceremony()?;
                return detached(async move {
                    let _ceremony = ceremony;
                    me.finish_enrolment(scheme, add).await
                })
                .await?;
            }
            return Err(Refusal::permanent(
                Rule::ShareExists,
                format!("{} already holds its {scheme} share", t.name),
            ));
        }
        let threshold = usize::from(self.manifest.threshold);
        let chosen: Vec<u16> = if helpers.is_empty() {
            connected
                .iter()
                .filter(|c| c.identifier != target && holds(c))
                .map(|c| c.identifier)
                .take(threshold)
                .collect()
        } else {
            let mut ids = Vec::with_capacity(helpers.len());
            for name in helpers {
                let s = self
                    .manifest
                    .signer_by_name(name)
                    .ok_or_else(|| invalid(format!("no signer named `{name}` in the manifest")))?;
                if s.identifier == target || ids.contains(&s.identifier) {
                    return Err(invalid(format!(
                        "helper `{name}` is the target or named twice"
                    )));
                }
                if !connected
                    .iter()
                    .any(|c| c.identifier == s.identifier && holds(c))
                {
                    return Err(Refusal::temporary(
                        Rule::RepairSignersMissing,
                        format!("helper `{name}` is not connected or holds no {scheme} share"),
                    ));
                }
                ids.push(s.identifier);
            }
            ids.sort_unstable();
            ids
        };
        if chosen.len() < threshold {
            return Err(Refusal::temporary(
                Rule::RepairSignersMissing,
                format!(
                    "a repair needs {threshold} helpers holding the {scheme} share; {} connected",
                    chosen.len()
                ),
            ));
        }
        let ceremony = self.begin_ceremony()?;
        let mut session = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut session);
        let request = RepairSession {
            session_id: session,
            manifest_hash: self.manifest.hash().to_vec(),
            scheme,
            target,
            helpers: chosen.clone(),
        };
        let me = self.clone();
        detached(async move {
            let _ceremony = ceremony;
            me.repair_and_report(scheme, session, request, chosen, target, group_key)
                .await
        })
        .await?
    }

    /// Runs a repair's rounds and records and reports the outcome.
    async fn repair_and_report(
        &self,
        scheme: Scheme,
        session: [u8; 16],
        request: RepairSession,
        chosen: Vec<u16>,
        target: u16,
        group_key: Vec<u8>,
    ) -> Result<apb::RepairShareResponse, Refusal> {
        let result = match scheme {
            Scheme::Secp256k1 => self.run_repair::<Secp>(&request, &chosen, target).await,
            Scheme::Ed25519 => self.run_repair::<Ed>(&request, &chosen, target).await,
        };
        let helper_list: Vec<String> = chosen.iter().map(u16::to_string).collect();
        match result {
            Ok((vshare, epoch, enrolled)) => {
                let fingerprint = group_key_fingerprint(&group_key);
                info!(target, %fingerprint, "share repaired");
                self.registry
                    .set_group_key(target, scheme, group_key.clone());
                self.registry.set_key_epoch(target, scheme, epoch);
                self.audit(
                    Event::new(audit::kind::SHARE_REPAIRED)
                        .with("session", hex::encode(session))
                        .with("scheme", scheme.as_str())
                        .with("target", target.to_string())
                        .with("helpers", helper_list.join(","))
                        .with("epoch", epoch.to_string())
                        .with("fingerprint", &fingerprint),
                );
                Ok(apb::RepairShareResponse {
                    session_id: session.to_vec(),
                    scheme: scheme.as_str().into(),
                    target: u32::from(target),
                    helpers: chosen.iter().map(|h| u32::from(*h)).collect(),
                    group_public_key: group_key,
                    fingerprint,
                    verifying_share: vshare,
                    epoch,
                    enrolled,
                })
            }
            Err((detail, culprits)) => {
                // Past the target's answer, it may hold its share: only the others can lag.
                let kept = if detail.starts_with(ENROLMENT_INCOMPLETE) {
                    ENROLMENT_KEPT
                } else if detail.starts_with(TARGET_ANSWER) {
                    "whatever the target kept is not in the group's public key package"
                } else {
                    "nothing was kept"
                };
                Err(self.ceremony_failed(
                    Event::new(audit::kind::REPAIR_ABORTED)
                        .with("session", hex::encode(session))
                        .with("scheme", scheme.as_str())
                        .with("target", target.to_string())
                        .with("helpers", helper_list.join(",")),
                    Rule::RepairAborted,
                    (detail, culprits),
                    kept,
                ))
            }
        }
    }

    /// An enrolment whose new signer holds its share but that not every holder finished
    /// adding (kept by [`Coordinator::add_holder`] until they all did; an empty value: none).
    /// A store that cannot be read, or a kept enrolment that does not decode, is refused
    /// (`storage`), never taken for no enrolment.
    pub(super) fn stored_enrolment(
        &self,
        scheme: Scheme,
        target: u16,
    ) -> Result<Option<AddHolder>, Refusal> {
        let key = enrolment_key(scheme, target);
        let raw = self
            .store
            .get_meta(&key)
            .map_err(|e| Refusal::temporary(Rule::Storage, e.to_string()))?;
        match raw {
            Some(raw) if !raw.is_empty() => decode_add_holder(&raw).map(Some).map_err(|e| {
                Refusal::temporary(
                    Rule::Storage,
                    format!("corrupt record {key} in the coordinator's database: {e}; restore the database from a backup"),
                )
            }),
            _ => Ok(None),
        }
    }

    /// Finishes a stored enrolment: every holder adds the new signer, then the coordinator.
    async fn finish_enrolment(
        &self,
        scheme: Scheme,
        add: AddHolder,
    ) -> Result<apb::RepairShareResponse, Refusal> {
        // Kept whole by `add_holder` (a record that does not decode is refused).
        let AddHolder { session, result } = add;
        let target = session.target;
        let basis = session.helpers.iter().copied().collect();
        let done = match scheme {
            Scheme::Secp256k1 => {
                self.add_holder::<Secp>(&session, &result, &basis, target)
                    .await
            }
            Scheme::Ed25519 => {
                self.add_holder::<Ed>(&session, &result, &basis, target)
                    .await
            }
        };
        done.map_err(|failed| {
            self.ceremony_failed(
                Event::new(audit::kind::REPAIR_ABORTED)
                    .with("session", hex::encode(session.session_id))
                    .with("scheme", scheme.as_str())
                    .with("target", target.to_string()),
                Rule::RepairAborted,
                failed,
                ENROLMENT_KEPT,
            )
        })?;
        self.registry.set_key_epoch(target, scheme, result.epoch);
        Ok(apb::RepairShareResponse {
            session_id: session.session_id.to_vec(),
            scheme: scheme.as_str().into(),
            target: u32::from(session.target),
            helpers: session.helpers.iter().map(|h| u32::from(*h)).collect(),
            fingerprint: group_key_fingerprint(&result.group_public_key),
            group_public_key: result.group_public_key,
            verifying_share: result.verifying_share,
            epoch: result.epoch,
            enrolled: true,
        })
    }

    /// The three rounds; returns the target's verifying share and the key epoch.
    async fn run_repair<C: GroupSuite>(
        &self,
        session: &RepairSession,
        helpers: &[u16],
        target: u16,
    ) -> Result<(Vec<u8>, u32, bool), Failed> {
        let pkp =
            C::public_keys(self).ok_or_else(|| ("no public key package".to_string(), vec![]))?;
        let r1 = self
            .dkg_round(helpers, |_| {
                Request::RepairOffer(RepairOfferRequest {
                    session: session.clone(),
                })
            })
            .await?;
        let mut offers = Vec::with_capacity(helpers.len());
        let mut mailbox = quorate_core::dkg::relay::Mailbox::new();
        for (i, body) in r1 {
            let Answer::RepairOffer(r) = body else {
                return Err((format!("signer {i} answered round 1 out of turn"), vec![i]));
            };
            // (An answer without an offer, or with a recipient that is no FROST identifier,
            // did not convert: the round named its sender.)
            if r.offer.from != i {
                return Err((format!("signer {i} sent no offer of its own"), vec![i]));
            }
            offers.push(r.offer);
            for d in r.deltas {
                mailbox.post(i, d.sender, d.recipient, d)?;
            }
        }
        let r2 = self
            .dkg_round(helpers, |i| {
                Request::RepairContribute(RepairContributeRequest {
                    session: session.clone(),
                    offers: offers.clone(),
                    deltas: mailbox.for_recipient(i),
                })
            })
            .await?;
        let mut contributions = Vec::with_capacity(helpers.len());
        for (i, body) in r2 {
            match body {
                Answer::RepairContribution(c) if c.from == i => contributions.push(c),
                _ => return Err((format!("signer {i} answered round 2 out of turn"), vec![i])),
            }
        }
        let done = self
            .dkg_round(&[target], |_| {
                Request::RepairFinish(RepairFinishRequest {
                    session: session.clone(),
                    offers: offers.clone(),
                    contributions: contributions.clone(),
                })
            })
            .await?;
        let Some((_, Answer::RepairResult(r))) = done.into_iter().next() else {
            return Err(("the target answered out of turn".into(), vec![target]));
        };
        let entry = self
            .manifest
            .signer(target)
            .ok_or_else(|| ("target not in the manifest".to_string(), vec![]))?;
        let group_key = pkp
            .verifying_key()
            .serialize()
            .map_err(|e| (format!("group key: {e}"), vec![]))?;
        let basis: std::collections::BTreeSet<u16> = helpers.iter().copied().collect();
        let enrolled = frost_core::Identifier::<C>::try_from(target)
            .map(|id| !pkp.verifying_shares().contains_key(&id))
            .map_err(|e| (e.to_string(), vec![]))?;
        // A lost share's verifying share is in the package; a new signer's is interpolated.
        let expected = quorate_core::repair::expected_verifying_share(&pkp, &basis, target)
            .and_then(|v| {
                v.serialize()
                    .map_err(|e| quorate_core::repair::RepairError {
                        reason: e.to_string(),
                        culprits: vec![],
                    })
            })
            .map_err(|e| (e.to_string(), vec![]))?;
        if !quorate_core::repair::verify_result::<C>(
            &entry.identity_key,
            &session.session_id,
            r.epoch,
            &r.group_public_key,
            &r.verifying_share,
            &r.signature,
        ) {
            return Err((format!("{TARGET_ANSWER} is not signed by it"), vec![target]));
        }
        if r.group_public_key != group_key || r.verifying_share != expected {
            return Err((
                format!("{TARGET_ANSWER} reports a share of another key"),
                vec![target],
            ));
        }
        if enrolled {
            self.add_holder::<C>(session, &r, &basis, target).await?;
        }
        Ok((r.verifying_share, r.epoch, enrolled))
    }

    /// A new signer holds its share: every other holder adds it to its public key package
    /// (each checks the new signer's signed result itself), then the coordinator does.
    async fn add_holder<C: GroupSuite>(
        &self,
        session: &RepairSession,
        result: &RepairResult,
        basis: &std::collections::BTreeSet<u16>,
        target: u16,
    ) -> Result<(), Failed> {
        let (pkp, epoch) = self
            .public_keys_at::<C>()
            .ok_or_else(|| ("no public key package".to_string(), vec![]))?;
        // Kept until every holder added it, so a repeated `quorate repair` can finish it.
        let key = enrolment_key(C::SCHEME, target);
        let enrolment = AddHolder {
            session: session.clone(),
            result: result.clone(),
        };
        let record = encode_add_holder(&enrolment);
        self.store
            .put_meta(&key, &record)
            .map_err(|e| (format!("{ENROLMENT_INCOMPLETE}: {e}"), vec![]))?;
        let mut holders = super::refresh::holders_of(Some(pkp.clone()));
        holders.retain(|h| *h != target);
        let answers = self
            .dkg_round(&holders, |_| Request::AddHolder(enrolment.clone()))
            .await
            // A holder that cannot add it yet (not connected, a refresh pending) is not to
            // blame; the enrolment is finished by repeating it.
            .map_err(|(e, _)| (format!("{ENROLMENT_INCOMPLETE}: {e}"), vec![]))?;
        for (i, body) in answers {
            if !matches!(body, Answer::HolderAdded { identifier, .. } if identifier == target) {
                return Err((
                    format!("{ENROLMENT_INCOMPLETE}: signer {i} did not add the new signer"),
                    vec![i],
                ));
            }
        }
        let extended = quorate_core::repair::with_new_holder(&pkp, basis, target)
            .map_err(|e| (format!("{ENROLMENT_INCOMPLETE}: {e}"), vec![]))?;
        self.keep_public_keys::<C>(extended, epoch, None)
            .await
            .map_err(|(e, c)| (format!("{ENROLMENT_INCOMPLETE}: {e}"), c))?;
        if let Err(e) = self.store.put_meta(&key, &[]) {
            warn!(error = %e, "could not clear a finished enrolment record");
        }
        self.audit(
            Event::new(audit::kind::HOLDER_ADDED)
                .with("session", hex::encode(session.session_id))
                .with("scheme", C::SCHEME.as_str())
                .with("identifier", target.to_string())
                .with("epoch", epoch.to_string()),
        );
        Ok(())
    }
}
