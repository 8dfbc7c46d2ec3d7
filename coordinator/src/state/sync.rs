//! Several coordinators serve one cluster with no shared database and no protocol between
//! them: every signer attaches to each, and each coordinator learns from the signers what the
//! others carried. Every [`SYNC_INTERVAL`] it asks each connected signer for the policy
//! version after ours and the vetoes of later versions, and for its public key packages. It
//! takes nothing on one signer's word:
//!
//! - a policy version is filed only when t signers hold it (in force or pending), and then as
//!   an admin's proposal arriving with its approvals would be (it must build on our version in
//!   force and carry the quorum); it is put in force here once t signers have it in force;
//! - a key package is taken only when t distinct signers report the same one and each is a
//!   holder in it, for the group key we know (or our first), at a later key epoch, or at ours
//!   with holders added ([`choose_package`]);
//! - a veto is an admin's signature, checked as if the admin had sent it here.
//!
//! Nothing learned this way lets a coordinator sign anything: every signer still decides
//! every signature itself.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::{keys::PublicKeyPackage, Ciphersuite, Identifier};
use quorate_core::{
    audit::{self, Event},
    fingerprint::group_key_fingerprint,
    link::{Answer, Request, SyncAnswer, SyncRequest},
    message::Scheme,
    policy::PolicyStatus,
};
use tracing::{info, warn};

use super::{groups::GroupSuite, Coordinator, Ed, Secp};

/// How often each connected signer is asked what it knows.
pub const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// One signer's report of a group's package: (signer, key epoch, serialized package).
pub type Report = (u16, u32, Vec<u8>);

/// The package to take from the signers' `reports`, if any: t distinct signers report the
/// same bytes at the same epoch and are holders in that package, it has the manifest's
/// threshold, and against `ours` it is for the same group key and either of a later epoch,
/// or of ours with every holder we know (same verifying shares) and more. Each signer counts
/// once (its first report). Two different candidates: none (the signers disagree; wait).
pub fn choose_package<C: Ciphersuite>(
    reports: &[Report],
    ours: Option<(&PublicKeyPackage<C>, u32)>,
    threshold: u16,
) -> Option<(u32, PublicKeyPackage<C>, Vec<u16>)> {
    let mut first: BTreeMap<u16, (u32, &[u8])> = BTreeMap::new();
    for (signer, epoch, bytes) in reports {
        first.entry(*signer).or_insert((*epoch, bytes));
    }
    let mut by_package: BTreeMap<(u32, &[u8]), BTreeSet<u16>> = BTreeMap::new();
    for (signer, key) in first {
        by_package.entry(key).or_default().insert(signer);
    }
    let mut found = None;
    for ((epoch, bytes), signers) in by_package {
        let Ok(pkp) = PublicKeyPackage::<C>::deserialize(bytes) else {
            continue;
        };
        if pkp.min_signers().is_some_and(|m| m != threshold) {
            continue;
        }
        let holders: Vec<u16> = signers
            .into_iter()
            .filter(|s| {
                Identifier::<C>::try_from(*s)
                    .is_ok_and(|id| pkp.verifying_shares().contains_key(&id))
            })
            .collect();
        if holders.len() < usize::from(threshold) {
            continue;
        }
        let newer = match ours {
            None => true,
            Some((mine, my_epoch)) => {
                mine.verifying_key() == pkp.verifying_key()
                    && (epoch > my_epoch
                        || (epoch == my_epoch
                            && pkp.verifying_shares().len() > mine.verifying_shares().len()
                            && mine
                                .verifying_shares()
                                .iter()
                                .all(|(id, v)| pkp.verifying_shares().get(id) == Some(v))))
            }
        };
        if !newer {
            continue;
        }
        if found.is_some() {
            return None;
        }
        found = Some((epoch, pkp, holders));
    }
    found
}

impl Coordinator {
    /// Runs forever: learns from the signers what another coordinator carried.
    pub async fn learn_from_signers(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval(SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.sync_once().await;
            self.replay_behind();
        }
    }

    /// One round: asks every connected signer, then takes what checks out.
    pub async fn sync_once(self: &std::sync::Arc<Self>) {
        let ours = self.policy.status(self.now_ms());
        let request = SyncRequest {
            policy_version: ours.version,
            pending_hash: ours.pending_hash.clone(),
        };
        let asks = self.registry.connected().into_iter().map(|s| {
            let ask = Request::Sync(request.clone());
            async move {
                match self
                    .registry
                    .call(s.identifier, ask, self.signing.signer_timeout)
                    .await
                {
                    Ok(Answer::Sync(a)) => Some((s.identifier, a)),
                    // A signer of an older release does not know the request, or is busy.
                    Ok(_) | Err(_) => None,
                }
            }
        });
        let answers: Vec<(u16, SyncAnswer)> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        for (signer, answer) in &answers {
            if let Some(st) = &answer.policy {
                self.note_signer_policy(*signer, st.clone());
            }
        }
        self.learn_policy(&answers);
        let reports = |scheme: Scheme| -> Vec<Report> {
            answers
                .iter()
                .flat_map(|(signer, a)| {
                    a.key_packages
                        .iter()
                        .filter(move |p| p.scheme == scheme)
                        .map(move |p| (*signer, p.key_epoch, p.public_key_package.clone()))
                })
                .collect()
        };
        self.learn_keys::<Secp>(&reports(Scheme::Secp256k1)).await;
        self.learn_keys::<Ed>(&reports(Scheme::Ed25519)).await;
    }

    /// Files the version after ours that t signers hold, and the vetoes of a version pending
    /// here; puts our pending version in force once t signers have it in force.
    fn learn_policy(&self, answers: &[(u16, SyncAnswer)]) {
        let t = usize::from(self.manifest.threshold);
        let now = self.now_ms();
        let count = |f: &dyn Fn(&PolicyStatus) -> bool| {
            answers
                .iter()
                .filter(|(_, a)| a.policy.as_ref().is_some_and(f))
                .count()
        };
        // Our pending version, in force on t signers.
        if let Some(p) = self.policy.pending_hash() {
            if count(&|s| s.hash == p) >= t {
                self.learned_version(Vec::new(), &p, true, 0, now);
            }
        }
        // Every signer's copy: one that lacks signatures (a hostile signer can strip them; the
        // hash covers the document only) must not hide another's.
        let mut docs: BTreeMap<String, Vec<quorate_core::policy::SignedPolicy>> = BTreeMap::new();
        for (_, a) in answers {
            for s in &a.updates {
                docs.entry(s.doc.hash_hex()).or_default().push(s.clone());
            }
        }
        for (hash, copies) in docs {
            let applied = count(&|s| s.hash == hash) >= t;
            let pending: Vec<u64> = answers
                .iter()
                .filter_map(|(_, a)| a.policy.as_ref())
                .filter(|s| s.pending_hash == hash)
                .map(|s| s.pending_effective_at_ms)
                .collect();
            if applied || pending.len() >= t {
                // Pending here until the last of them applies it.
                let at = pending.iter().copied().max().unwrap_or(0);
                self.learned_version(copies, &hash, applied, at, now);
            }
        }
        for (_, a) in answers {
            for v in &a.vetoes {
                let hash = hex::encode(v.policy_hash);
                if self.policy.has_veto(&hash) || !self.policy.vetoable(&hash) {
                    continue;
                }
                if self.policy.veto(&hash, v.veto.clone(), now).is_ok() {
                    info!(hash = %hash, "policy veto learned from the signers");
                    self.audit(
                        Event::new(audit::kind::LEARNED)
                            .with("what", "veto")
                            .with("hash", &hash),
                    );
                }
            }
        }
    }

    /// Files one learned version from the first of `copies` that checks out (none: puts ours
    /// pending in force), logging a refusal once per hash.
    fn learned_version(
        &self,
        copies: Vec<quorate_core::policy::SignedPolicy>,
        hash: &str,
        applied: bool,
        effective_at_ms: u64,
        now: u64,
    ) {
        let mut version = None;
        let outcome = if copies.is_empty() {
            self.policy.apply_pending(hash, now)
        } else {
            let mut outcome = Ok(false);
            for s in copies {
                version = Some(s.doc.version);
                outcome = self.policy.learn(s, applied, effective_at_ms, now);
                if outcome.is_ok() {
                    break;
                }
            }
            outcome
        };
        match outcome {
            Ok(true) => {
                let version = version.unwrap_or_else(|| self.policy.status(now).version);
                info!(hash = %hash, version, applied, "policy version learned from the signers");
                self.audit(
                    Event::new(audit::kind::LEARNED)
                        .with("what", "policy")
                        .with("version", version.to_string())
                        .with("hash", hash)
                        .with("state", if applied { "applied" } else { "pending" }),
                );
            }
            Ok(false) => {}
            Err(r) => {
                let first = self
                    .sync_warned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(hash.to_string());
                if first {
                    warn!(hash = %hash, rule = %r.rule, reason = %r.reason, "t signers hold a policy version that does not check out here");
                }
            }
        }
    }

    /// Takes the package [`choose_package`] picks, then records which connected signers hold
    /// the package in force here at its epoch.
    async fn learn_keys<C: GroupSuite>(self: &std::sync::Arc<Self>, reports: &[Report]) {
        let ours = self.public_keys_at::<C>();
        let chosen = choose_package::<C>(
            reports,
            ours.as_ref().map(|(p, e)| (p, *e)),
            self.manifest.threshold,
        );
        if let Some((epoch, pkp, signers)) = chosen {
            // Not while a ceremony of our own runs: it installs its own result.
            if let Ok(_ceremony) = self.begin_ceremony() {
                let Ok(gk) = pkp.verifying_key().serialize() else {
                    return;
                };
                match self.keep_public_keys::<C>(pkp, epoch, None).await {
                    Ok(()) => {
                        info!(scheme = %C::SCHEME, epoch, signers = ?signers, "key package learned from the signers");
                        let ids: Vec<String> = signers.iter().map(u16::to_string).collect();
                        self.audit(
                            Event::new(audit::kind::LEARNED)
                                .with("what", "key-package")
                                .with("scheme", C::SCHEME.to_string())
                                .with("epoch", epoch.to_string())
                                .with("fingerprint", group_key_fingerprint(&gk))
                                .with("signers", ids.join(",")),
                        );
                    }
                    Err((e, _)) => {
                        warn!(scheme = %C::SCHEME, error = %e, "could not keep a learned key package")
                    }
                }
            }
        }
        // Every round: a signer reporting the package in force here holds it at our epoch
        // (it may have switched after we learned the package, or reconnected since).
        let Some((mine, epoch)) = self.public_keys_at::<C>() else {
            return;
        };
        let (Ok(bytes), Ok(gk)) = (mine.serialize(), mine.verifying_key().serialize()) else {
            return;
        };
        for (signer, e, b) in reports {
            if *e == epoch && *b == bytes {
                self.registry.set_group_key(*signer, C::SCHEME, gk.clone());
                self.registry.set_key_epoch(*signer, C::SCHEME, epoch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use frost_secp256k1::{keys::IdentifierList, Secp256K1Sha256 as S};

    /// A 2-of-4 group's package, and the same group as its first three holders see it before
    /// the fourth was enrolled.
    fn packages() -> (PublicKeyPackage<S>, PublicKeyPackage<S>) {
        let (_, full) = frost_secp256k1::keys::generate_with_dealer(
            4,
            2,
            IdentifierList::Default,
            rand::rngs::OsRng,
        )
        .unwrap();
        let three = full
            .verifying_shares()
            .iter()
            .filter(|(id, _)| **id != Identifier::try_from(4u16).unwrap())
            .map(|(id, v)| (*id, *v))
            .collect();
        let before = PublicKeyPackage::new(three, *full.verifying_key(), Some(2));
        (before, full)
    }

    fn bytes(p: &PublicKeyPackage<S>) -> Vec<u8> {
        p.serialize().unwrap()
    }

    #[test]
    fn t_distinct_holders_make_a_package_one_signer_does_not() {
        let (three, _) = packages();
        let b = bytes(&three);
        // One signer reporting it t times, or twice over: still one signer.
        let liar: Vec<Report> = vec![(1, 0, b.clone()), (1, 0, b.clone()), (1, 5, b.clone())];
        assert!(choose_package::<S>(&liar, None, 2).is_none());
        // t distinct holders: taken.
        let (epoch, pkp, by) =
            choose_package::<S>(&[(1, 0, b.clone()), (2, 0, b.clone())], None, 2).unwrap();
        assert_eq!((epoch, by), (0, vec![1, 2]));
        assert_eq!(bytes(&pkp), b);
        // Signers that are not holders in it do not count (signer 4 is not in `three`).
        assert!(choose_package::<S>(&[(1, 0, b.clone()), (4, 0, b.clone())], None, 2).is_none());
        // Another threshold than the manifest's: never.
        assert!(choose_package::<S>(&[(1, 0, b.clone()), (2, 0, b.clone())], None, 3).is_none());
    }

    #[test]
    fn only_a_later_epoch_or_added_holders_of_the_same_key_replace_ours() {
        let (three, four) = packages();
        let (b3, b4) = (bytes(&three), bytes(&four));
        let two = |b: &Vec<u8>, e: u32| vec![(1, e, b.clone()), (2, e, b.clone())];
        // The same package again: nothing to do.
        assert!(choose_package::<S>(&two(&b3, 0), Some((&three, 0)), 2).is_none());
        // A holder added at our epoch: taken; the other way round (a holder dropped): never,
        // so two packages can never flip back and forth.
        assert!(choose_package::<S>(&two(&b4, 0), Some((&three, 0)), 2).is_some());
        assert!(choose_package::<S>(&two(&b3, 0), Some((&four, 0)), 2).is_none());
        // A later epoch: taken; an earlier one: never.
        assert!(choose_package::<S>(&two(&b3, 1), Some((&three, 0)), 2).is_some());
        assert!(choose_package::<S>(&two(&b3, 0), Some((&three, 1)), 2).is_none());
        // Another group key, whatever the epoch: never.
        let (other, _) = packages();
        assert!(choose_package::<S>(&two(&bytes(&other), 9), Some((&three, 0)), 2).is_none());
        // Two packages each with t holders: the signers disagree, nothing is taken.
        let (x, y) = (bytes(&three), bytes(&four));
        let split = vec![(1, 1, x.clone()), (2, 1, x), (3, 2, y.clone()), (4, 2, y)];
        assert!(choose_package::<S>(&split, Some((&three, 0)), 2).is_none());
    }
}
