//! Relaying a share refresh: the DKG's rounds in refresh mode among every holder of a key
//! group ([`Coordinator::run_dkg`]), then the switch ([`quorate_core::refresh`]): once every
//! participant acknowledged storing its refreshed share, the coordinator keeps the proof,
//! verifies signatures against the new public key package at the new key epoch, and shows the
//! proof to every participant, which then deletes its old share. A participant that misses it
//! is shown it again when it reconnects.

use std::sync::Arc;

use frost_core::keys::PublicKeyPackage;
use quorate_core::{
    audit::{self, Event},
    fingerprint::group_key_fingerprint,
    link::{Answer, Hello, RefreshAck, RefreshActivate, RefreshTerms, Request},
    message::Scheme,
    refresh::{package_hash, Stored},
    refusal::{Refusal, Rule},
};
use quorate_wire::{
    admin as apb,
    convert::link::{decode_refresh_activate, encode_refresh_activate},
};
use rand::RngCore;
use tracing::{info, warn};

use super::{ceremony::detached, groups::GroupSuite, read, Coordinator, Ed, Secp};
use crate::store::Store;

type Failed = (String, Vec<u16>);

/// Where the current refreshed package (epoch || package) of a group is kept: its presence
/// overrides the package of the DKG.
fn refreshed_key(scheme: Scheme) -> String {
    format!("refreshed/{}", scheme.as_str())
}

/// Where the proof that every participant stored its refreshed share is kept, to show again.
fn activation_key(scheme: Scheme) -> String {
    format!("refresh-activation/{}", scheme.as_str())
}

fn slot(scheme: Scheme) -> usize {
    match scheme {
        Scheme::Secp256k1 => 0,
        Scheme::Ed25519 => 1,
    }
}

/// The package and key epoch a refresh left in the store, if one ran: (epoch, package bytes).
pub(crate) fn load_refreshed(
    store: &Store,
    scheme: Scheme,
) -> Result<Option<(u32, Vec<u8>)>, String> {
    let Some(raw) = store
        .get_meta(&refreshed_key(scheme))
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    if raw.len() < 4 {
        return Err(format!("stored refreshed {scheme} package is truncated"));
    }
    let (epoch, pkp) = raw.split_at(4);
    let epoch = u32::from_be_bytes(epoch.try_into().map_err(|_| "epoch".to_string())?);
    Ok(Some((epoch, pkp.to_vec())))
}

impl Coordinator {
    /// The key epoch the coordinator verifies `scheme` signatures at.
    pub fn key_epoch(&self, scheme: Scheme) -> u32 {
        read(&self.key_epochs)[slot(scheme)]
    }

    /// The public key package of `C` and its key epoch, read together (a refresh switches both
    /// under the epochs' lock).
    pub(crate) fn public_keys_at<C: GroupSuite>(&self) -> Option<(PublicKeyPackage<C>, u32)> {
        let epochs = read(&self.key_epochs);
        C::public_keys(self).map(|p| (p, epochs[slot(C::SCHEME)]))
    }

    /// The signers the coordinator's copy of the policy in force retired.
    pub(crate) fn retired_signers(&self) -> Vec<u16> {
        self.policy
            .with_active(|doc| doc.retired_signers.clone())
            .unwrap_or_default()
    }

    /// Whether connected signer `c` holds the current `scheme` share: the group key, at the
    /// coordinator's key epoch.
    pub(crate) fn holds_current(
        &self,
        c: &crate::registry::ConnectedSigner,
        scheme: Scheme,
        group_key: &[u8],
    ) -> bool {
        let (gk, epoch) = match scheme {
            Scheme::Secp256k1 => (&c.group_key, c.key_epochs[0]),
            Scheme::Ed25519 => (&c.ed25519_group_key, c.key_epochs[1]),
        };
        !gk.is_empty() && gk == group_key && epoch == self.key_epoch(scheme)
    }

    /// Refreshes every share of the `scheme` group among all its holders, which must all be
    /// connected and report the group key. Waits for the ceremony.
    pub async fn refresh_shares(
        self: &Arc<Self>,
        scheme: Scheme,
    ) -> Result<apb::RefreshSharesResponse, Refusal> {
        let retired = self.retired_signers();
        let mut holders: Vec<u16> = match scheme {
            Scheme::Secp256k1 => holders_of(Secp::public_keys(self)),
            Scheme::Ed25519 => holders_of(Ed::public_keys(self)),
        };
        // Signers the policy retired take no part: the refresh removes them.
        holders.retain(|h| !retired.contains(h));
        if holders.len() < usize::from(self.manifest.threshold) {
            return Err(Refusal::permanent(
                Rule::RequestInvalid,
                format!(
                    "{} holders would remain after the retired signers; the threshold is {}",
                    holders.len(),
                    self.manifest.threshold
                ),
            ));
        }
        let group_key = self.group_keys().of(scheme).to_vec();
        if holders.is_empty() || group_key.is_empty() {
            return Err(Refusal::temporary(
                Rule::NoGroupKey,
                format!("this cluster has no {scheme} group key to refresh"),
            ));
        }
        let connected = self.registry.connected();
        let missing: Vec<String> = holders
            .iter()
            .filter(|h| {
                !connected
                    .iter()
                    .any(|c| c.identifier == **h && self.holds_current(c, scheme, &group_key))
            })
            .map(|h| {
                self.manifest
                    .signer(*h)
                    .map_or_else(|| h.to_string(), |s| s.name.clone())
            })
            .collect();
        if !missing.is_empty() {
            return Err(Refusal::temporary(
                Rule::RefreshSignersMissing,
                format!(
                    "a refresh needs every holder of the {scheme} share connected with it; missing: {} (repair a holder that lost its share first)",
                    missing.join(", ")
                ),
            ));
        }
        let ceremony = self.begin_ceremony()?;
        let mut session = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut session);
        let old_epoch = self.key_epoch(scheme);
        let terms = RefreshTerms {
            old_epoch,
            participants: holders.clone(),
        };
        let me = self.clone();
        detached(async move {
            let _ceremony = ceremony;
            me.refresh_and_report(scheme, session, terms, holders).await
        })
        .await?
    }

    /// Runs a refresh's rounds and records and reports the outcome.
    async fn refresh_and_report(
        &self,
        scheme: Scheme,
        session: [u8; 16],
        terms: RefreshTerms,
        holders: Vec<u16>,
    ) -> Result<apb::RefreshSharesResponse, Refusal> {
        let old_epoch = terms.old_epoch;
        let result = match scheme {
            Scheme::Secp256k1 => self.run_dkg::<Secp>(session.to_vec(), Some(terms)).await,
            Scheme::Ed25519 => self.run_dkg::<Ed>(session.to_vec(), Some(terms)).await,
        };
        let participants: Vec<String> = holders.iter().map(u16::to_string).collect();
        match result {
            Ok(gk) => {
                let epoch = self.key_epoch(scheme);
                let fingerprint = group_key_fingerprint(&gk);
                info!(%scheme, epoch, %fingerprint, "shares refreshed");
                Ok(apb::RefreshSharesResponse {
                    session_id: session.to_vec(),
                    scheme: scheme.as_str().into(),
                    epoch,
                    participants: holders.iter().map(|h| u32::from(*h)).collect(),
                    group_public_key: gk,
                    fingerprint,
                })
            }
            Err(failed) => Err(self.ceremony_failed(
                Event::new(audit::kind::REFRESH_ABORTED)
                    .with("session", hex::encode(session))
                    .with("scheme", scheme.as_str())
                    .with("epoch", old_epoch.to_string())
                    .with("participants", participants.join(",")),
                Rule::RefreshAborted,
                failed,
                &format!(
                    "every signer keeps its share of key epoch {old_epoch} (a refreshed share one stored stays unused; the next refresh replaces it)"
                ),
            )),
        }
    }

    /// The refresh's last step, after its confirmation round: checks every participant's
    /// acknowledgement, keeps the proof and the new package (the new epoch is in force from
    /// here), then shows the proof to every participant.
    pub(super) async fn activate_refresh<C: GroupSuite>(
        &self,
        session: &[u8],
        terms: &RefreshTerms,
        group_key: Vec<u8>,
        pkp_bytes: Vec<u8>,
        transcript: Vec<u8>,
        confirmed: Vec<(u16, Answer)>,
    ) -> Result<Vec<u8>, Failed> {
        let epoch = terms
            .old_epoch
            .checked_add(1)
            .ok_or_else(|| ("key epoch exhausted".to_string(), vec![]))?;
        let hash = package_hash(&pkp_bytes);
        let stored = Stored {
            session_id: session,
            transcript: &transcript,
            epoch,
            package_hash: &hash,
        };
        let mut acks = Vec::with_capacity(confirmed.len());
        for (i, body) in confirmed {
            let Answer::DkgConfirm(c) = body else {
                return Err((format!("signer {i} did not confirm the refresh"), vec![i]));
            };
            let entry = self
                .manifest
                .signer(i)
                .ok_or_else(|| (format!("signer {i} not in manifest"), vec![i]))?;
            if c.group_public_key != group_key
                || c.epoch != epoch
                || c.public_key_package_hash != hash
                || !stored.verify::<C>(&entry.identity_key, &c.stored_signature)
            {
                return Err((
                    format!("signer {i} did not acknowledge storing this refresh's share"),
                    vec![i],
                ));
            }
            acks.push(RefreshAck {
                identifier: i,
                signature: c.stored_signature,
            });
        }
        let pkp = PublicKeyPackage::<C>::deserialize(&pkp_bytes)
            .map_err(|e| (format!("public key package: {e}"), vec![]))?;
        let activation = RefreshActivate {
            session_id: session.to_vec(),
            scheme: C::SCHEME,
            epoch,
            transcript_hash: transcript,
            public_key_package_hash: hash.to_vec(),
            acks,
        };
        // The proof, the package and its epoch in one durable batch: a restart resumes from
        // exactly this, showing the proof to whoever has not switched.
        self.keep_public_keys::<C>(pkp, epoch, Some(encode_refresh_activate(&activation)))
            .await?;
        let participants: Vec<String> = terms.participants.iter().map(u16::to_string).collect();
        self.audit(
            Event::new(audit::kind::KEY_REFRESHED)
                .with("session", hex::encode(session))
                .with("scheme", C::SCHEME.as_str())
                .with("epoch", epoch.to_string())
                .with("participants", participants.join(","))
                .with("fingerprint", group_key_fingerprint(&group_key)),
        );
        // All at once: signing waits for t of them to switch.
        futures::future::join_all(
            terms
                .participants
                .iter()
                .map(|i| self.show_activation(*i, &activation)),
        )
        .await;
        Ok(group_key)
    }

    /// Stores a group's public key package of key epoch `epoch` durably (from epoch 1 on, with
    /// its epoch, in one record, which is what a restart loads), then puts it in force: the
    /// package and its epoch change together under the epochs' lock.
    pub(super) async fn keep_public_keys<C: GroupSuite>(
        &self,
        pkp: PublicKeyPackage<C>,
        epoch: u32,
        activation: Option<Vec<u8>>,
    ) -> Result<(), Failed> {
        let bytes = pkp
            .serialize()
            .map_err(|e| (format!("public key package: {e}"), vec![]))?;
        let store = self.store.clone();
        let scheme = C::SCHEME;
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            if epoch > 0 {
                let record = [epoch.to_be_bytes().as_slice(), &bytes].concat();
                let (refreshed, proof) = (refreshed_key(scheme), activation_key(scheme));
                let mut kvs: Vec<(&str, &[u8])> = vec![(&refreshed, &record)];
                if let Some(p) = &activation {
                    kvs.push((&proof, p));
                }
                store.put_metas(&kvs).map_err(|e| e.to_string())?;
            }
            // The DKG's location too (a restart prefers the refreshed record).
            C::store_public_keys(&store, &bytes)
        })
        .await
        .map_err(|e| (e.to_string(), vec![]))?
        .map_err(|e| (e, vec![]))?;
        let mut epochs = self.key_epochs.write().unwrap_or_else(|p| p.into_inner());
        C::install_public_keys(self, pkp);
        epochs[slot(C::SCHEME)] = epoch;
        Ok(())
    }

    /// Shows a participant the proof that every participant stored its refreshed share; one
    /// that misses it gets it again when it reconnects ([`Coordinator::resume_refresh`]).
    async fn show_activation(&self, i: u16, activation: &RefreshActivate) {
        let timeout = self
            .signing
            .signer_timeout
            .max(std::time::Duration::from_secs(30));
        let request = Request::RefreshActivate(activation.clone());
        match self.registry.call(i, request, timeout).await {
            Ok(Answer::RefreshActivated { epoch, .. }) if epoch == activation.epoch => {
                self.registry.set_key_epoch(i, activation.scheme, epoch);
                info!(signer = i, epoch, "signer switched to its refreshed share");
            }
            Ok(Answer::Refused { refusal: r, .. }) => {
                warn!(signer = i, rule = %r.rule, reason = %r.reason, "refresh activation refused; shown again when it reconnects");
            }
            Ok(_) => {
                warn!(
                    signer = i,
                    "refresh activation answered out of turn; shown again when it reconnects"
                );
            }
            Err(e) => {
                warn!(signer = i, error = %e, "refresh activation not acknowledged; shown again when it reconnects");
            }
        }
    }

    /// A signer connected holding a share of an older key epoch and the refreshed one stored:
    /// shows it the proof so it switches.
    pub async fn resume_refresh(&self, i: u16, hello: &Hello) {
        for (scheme, current, pending) in [
            (Scheme::Secp256k1, hello.key_epoch, hello.pending_key_epoch),
            (
                Scheme::Ed25519,
                hello.ed25519_key_epoch,
                hello.ed25519_pending_key_epoch,
            ),
        ] {
            let epoch = self.key_epoch(scheme);
            if epoch == 0 || current >= epoch || pending != epoch {
                continue;
            }
            let proof = match self.store.get_meta(&activation_key(scheme)) {
                Ok(Some(p)) => p,
                _ => continue,
            };
            match decode_refresh_activate(&proof) {
                Ok(a) if a.epoch == epoch => self.show_activation(i, &a).await,
                _ => warn!(signer = i, %scheme, "stored refresh activation does not decode"),
            }
        }
    }
}

/// The identifiers holding a share in `pkp` (none without one).
pub(super) fn holders_of<C: GroupSuite>(pkp: Option<PublicKeyPackage<C>>) -> Vec<u16> {
    let Some(pkp) = pkp else {
        return vec![];
    };
    (1..=u16::try_from(quorate_wire::manifest::MAX_SIGNERS).unwrap_or(u16::MAX))
        .filter(|n| {
            frost_core::Identifier::<C>::try_from(*n)
                .is_ok_and(|id| pkp.verifying_shares().contains_key(&id))
        })
        .collect()
}
