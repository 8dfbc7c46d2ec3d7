//! Several coordinators serve one cluster with no shared database and no protocol between
//! them: every signer attaches to each, and each coordinator learns from the signers what the
//! others carried. Every [`SYNC_INTERVAL`] it asks each connected signer for the policy
//! versions it accepted after ours (checked here as an admin's proposal with its approvals
//! is: they must build on our version in force and carry the quorum), the vetoes it holds,
//! and its public key packages (taken only once t signers report the same package at the
//! same key epoch for the group key we know, or for the first one). Nothing learned this way
//! lets a coordinator sign anything: the signers still decide every signature themselves.

use std::collections::BTreeMap;

use frost_core::keys::PublicKeyPackage;
use quorate_core::{
    audit::{self, Event},
    fingerprint::group_key_fingerprint,
    message::Scheme,
};
use quorate_wire::signer as pb;
use tracing::{info, warn};

use super::{groups::GroupSuite, now_ms, Coordinator, Ed, Secp};

/// How often each connected signer is asked what it knows.
pub const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Key packages reported for one group: (epoch, package bytes) → the signers reporting it.
type Reports = BTreeMap<(u32, Vec<u8>), Vec<u16>>;

impl Coordinator {
    /// Runs forever: learns from the signers what another coordinator carried.
    pub async fn learn_from_signers(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval(SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.sync_once().await;
        }
    }

    /// One round: asks every connected signer, then takes what checks out.
    pub async fn sync_once(&self) {
        let ours = self.policy.status(now_ms()).version;
        let asks = self.registry.connected().into_iter().map(|s| async move {
            let body = pb::coordinator_message::Body::Sync(pb::SyncRequest {
                policy_version: ours,
            });
            match self
                .registry
                .call(s.identifier, body, self.signing.signer_timeout)
                .await
            {
                Ok(pb::signer_message::Body::Sync(a)) => Some((s.identifier, a)),
                // A signer of an older release does not know the request: nothing to learn.
                Ok(_) | Err(_) => None,
            }
        });
        let answers: Vec<(u16, pb::SyncAnswer)> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        let mut secp = Reports::new();
        let mut ed = Reports::new();
        for (signer, answer) in &answers {
            if let Some(st) = &answer.policy {
                self.note_signer_policy(*signer, st.clone());
            }
            for p in &answer.key_packages {
                let Ok(scheme) = quorate_wire::convert::key_scheme(p.scheme) else {
                    continue;
                };
                let reports = match scheme {
                    Scheme::Secp256k1 => &mut secp,
                    Scheme::Ed25519 => &mut ed,
                };
                reports
                    .entry((p.key_epoch, p.public_key_package.clone()))
                    .or_default()
                    .push(*signer);
            }
        }
        self.learn_policy(&answers);
        self.learn_keys::<Secp>(secp).await;
        self.learn_keys::<Ed>(ed).await;
    }

    /// Files the versions and vetoes the signers accepted that we lack, oldest first.
    fn learn_policy(&self, answers: &[(u16, pb::SyncAnswer)]) {
        let mut updates: BTreeMap<u64, Vec<quorate_core::policy::SignedPolicy>> = BTreeMap::new();
        for (_, a) in answers {
            for u in &a.updates {
                if let Ok(s) = quorate_wire::convert::policy::signed_from_proto(u) {
                    updates.entry(s.doc.version).or_default().push(s);
                }
            }
        }
        for candidates in updates.into_values() {
            for signed in candidates {
                let (version, hash) = (signed.doc.version, signed.doc.hash_hex());
                match self.policy.adopt(signed, now_ms()) {
                    Ok(true) => {
                        info!(version, hash = %hash, "policy version learned from the signers");
                        self.audit(
                            Event::new(audit::kind::LEARNED)
                                .with("what", "policy")
                                .with("version", version.to_string())
                                .with("hash", &hash),
                        );
                        break;
                    }
                    Ok(false) => {}
                    Err(r) => {
                        warn!(version, hash = %hash, rule = %r.rule, reason = %r.reason, "a signer reported a policy version that does not check out here");
                    }
                }
            }
        }
        for (_, a) in answers {
            for v in &a.vetoes {
                let hash = hex::encode(&v.policy_hash);
                let Some(sig) = v
                    .veto
                    .as_ref()
                    .and_then(|s| quorate_wire::convert::policy::sig_from_proto(s).ok())
                else {
                    continue;
                };
                if self.policy.has_veto(&hash) {
                    continue;
                }
                if self.policy.veto(&hash, sig, now_ms()).is_ok() {
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

    /// Takes a group's public key package that t signers report alike, if it is newer than
    /// ours (a later key epoch, or a holder added at ours) and for the same group key.
    async fn learn_keys<C: GroupSuite>(&self, reports: Reports) {
        let t = usize::from(self.manifest.threshold);
        let ours = self.public_keys_at::<C>();
        for ((epoch, bytes), signers) in reports.into_iter().rev() {
            if signers.len() < t {
                continue;
            }
            let Ok(pkp) = PublicKeyPackage::<C>::deserialize(&bytes) else {
                continue;
            };
            let newer = match &ours {
                None => true,
                Some((mine, my_epoch)) => {
                    mine.verifying_key() == pkp.verifying_key()
                        && (epoch > *my_epoch
                            || (epoch == *my_epoch
                                && mine.serialize().ok().as_deref() != Some(&bytes[..])))
                }
            };
            if !newer {
                continue;
            }
            if pkp
                .min_signers()
                .is_some_and(|m| m != self.manifest.threshold)
            {
                warn!(scheme = %C::SCHEME, "signers report a key package of another threshold; ignored");
                continue;
            }
            let Ok(gk) = pkp.verifying_key().serialize() else {
                continue;
            };
            match self.keep_public_keys::<C>(pkp, epoch, None).await {
                Ok(()) => {
                    for s in &signers {
                        self.registry.set_group_key(*s, C::SCHEME, gk.clone());
                        self.registry.set_key_epoch(*s, C::SCHEME, epoch);
                    }
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
            // The newest that t signers agree on; older reports are moot.
            return;
        }
    }
}
