//! Share refresh on a signer ([`quorate_core::dkg::refresh_round1_for`],
//! [`quorate_core::refresh`]): the DKG's rounds renew the share this signer holds; after the
//! confirmation round the new share is stored beside the one in use, and this signer switches
//! (and deletes the old one) only when shown every participant's signed acknowledgement that it
//! stored its own. Until then it signs with the old share, at the old key epoch.

use std::collections::BTreeMap;

use frost_core::keys::{KeyPackage, PublicKeyPackage};
use quorate_core::{
    audit::{self, Event},
    dkg::{self, DkgError, DkgOutput, DkgSetup, Round2State, SignedEcho},
    identity::IdentityPublic,
    link::{Answer, DkgConfirmResponse, RefreshActivate, RefreshTerms},
    refresh::{package_hash, Stored},
    refusal::{Refusal, Rule},
    seal::Sealed,
};
use tracing::{info, warn};

use super::{
    groups::Held, lock, repair::META_KEY_EPOCH, storage, Node, META_KEY_SHARE,
    META_PUBLIC_KEY_PACKAGE,
};

/// Where a stored, not yet activated, refreshed share lives: `pending/<what>`.
fn pending(what: &str) -> String {
    format!("pending/{what}")
}
const PENDING_SESSION: &str = "session";
const PENDING_TRANSCRIPT: &str = "transcript";

/// Every metadata key of a stored refreshed share.
pub(super) fn pending_keys<C: Held>() -> Vec<String> {
    [
        META_KEY_SHARE,
        META_PUBLIC_KEY_PACKAGE,
        META_KEY_EPOCH,
        PENDING_SESSION,
        PENDING_TRANSCRIPT,
    ]
    .iter()
    .map(|w| C::meta(&pending(w)))
    .collect()
}

impl Node {
    /// The identity keys of the holders in `pkp`, from the manifest.
    pub(super) fn participants_of<C: Held>(
        &self,
        pkp: &PublicKeyPackage<C>,
    ) -> BTreeMap<u16, IdentityPublic> {
        self.manifest
            .signers
            .iter()
            .filter(|s| {
                super::groups::frost_id::<C>(s.identifier)
                    .is_ok_and(|id| pkp.verifying_shares().contains_key(&id))
            })
            .map(|s| (s.identifier, s.identity_key))
            .collect()
    }

    /// The key epochs of the shares in use (secp256k1, Ed25519) and of refreshed shares stored
    /// and not activated (0: none), as the hello reports them.
    pub fn key_epochs(&self) -> (u32, u32, u32, u32) {
        use std::sync::atomic::Ordering;
        (
            self.secp.epoch.load(Ordering::SeqCst),
            self.ed.epoch.load(Ordering::SeqCst),
            self.pending_epoch::<super::Secp>(),
            self.pending_epoch::<super::Ed>(),
        )
    }

    /// The key epoch of a refreshed share stored and not yet activated, if any.
    pub(super) fn pending_epoch<C: Held>(&self) -> u32 {
        self.store
            .get_meta(&C::meta(&pending(META_KEY_EPOCH)))
            .ok()
            .flatten()
            .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
            .map_or(0, u32::from_be_bytes)
    }

    /// The setup of a refresh round 1: this signer holds the old group at the named epoch and
    /// is not retired, and the participants are exactly the old group's holders the policy in
    /// force has not retired (at least t of them).
    pub(super) fn refresh_setup<C: Held>(
        &self,
        session_id: Vec<u8>,
        terms: &RefreshTerms,
    ) -> Result<(DkgSetup, u32, PublicKeyPackage<C>), Refusal> {
        C::group(self).key()?;
        let epoch = self.key_epoch::<C>()?;
        if terms.old_epoch != epoch {
            return Err(Refusal::temporary(
                Rule::KeyEpochMismatch,
                format!(
                    "a refresh of key epoch {}; this signer's {} share is of epoch {epoch}",
                    terms.old_epoch,
                    C::SCHEME
                ),
            ));
        }
        // A refreshed share stored and never activated (a participant failed or the relay
        // withheld the switch) does not block a new refresh of the epoch in use: nobody can
        // have switched to it, or it would not sign a round-1 package of this epoch, and this
        // refresh's round 2 checks every participant's; its confirmation overwrites it.
        let pkp = self.public_key_package::<C>()?;
        // The holders, but for the signers the policy in force retired: a refresh without
        // them removes them (their old shares no longer combine with the new ones).
        let retired = self.retired_signers();
        let mut holders = self.participants_of(&pkp);
        holders.retain(|id, _| !retired.contains(id));
        if holders.len() < usize::from(self.manifest.threshold) {
            return Err(Refusal::permanent(
                Rule::RefreshParticipants,
                format!(
                    "{} holders would remain after the retired signers; a refresh keeps at least the threshold, {}",
                    holders.len(),
                    self.manifest.threshold
                ),
            ));
        }
        if !holders.contains_key(&self.me) {
            return Err(Refusal::permanent(
                Rule::RefreshParticipants,
                "the policy in force retired this signer: it takes no part in a refresh",
            ));
        }
        let mut named = BTreeMap::new();
        for &id in &terms.participants {
            let key = holders.get(&id).ok_or_else(|| {
                Refusal::permanent(
                    Rule::RefreshParticipants,
                    format!(
                        "participant {id} holds no share of this key or is retired; a refresh cannot add signers"
                    ),
                )
            })?;
            named.insert(id, *key);
        }
        if named.len() != terms.participants.len() || named.len() != holders.len() {
            return Err(Refusal::permanent(
                Rule::RefreshParticipants,
                "a refresh runs among every holder of the key the policy in force has not retired, each named once (removing a signer is a governed change: retired_signers)",
            ));
        }
        Ok((
            DkgSetup {
                session_id,
                manifest_hash: self.manifest.hash(),
                me: self.me,
                threshold: self.manifest.threshold,
                participants: named,
            },
            epoch,
            pkp,
        ))
    }

    /// Round 3 of a refresh: against the share and public key package this signer holds.
    pub(super) fn refresh_round3<C: Held>(
        &self,
        state: Round2State<C>,
        sealed: &[Sealed],
        echoes: &[SignedEcho],
    ) -> Result<DkgOutput<C>, DkgError> {
        let local = |r: Refusal| DkgError {
            reason: r.reason,
            culprits: vec![],
        };
        let key = C::group(self).key().map_err(local)?;
        let pkp = self.public_key_package::<C>().map_err(local)?;
        dkg::refresh_round3(state, &self.identity, sealed, echoes, &key, &pkp)
    }

    /// After the confirmation round of a refresh: store the new share beside the old one, in
    /// one durable batch, and acknowledge it.
    pub(super) fn store_refreshed<C: Held>(&self, session_id: &[u8], out: DkgOutput<C>) -> Answer {
        self.try_store_refreshed(session_id, &out)
            .unwrap_or_else(Answer::refused)
    }

    fn try_store_refreshed<C: Held>(
        &self,
        session_id: &[u8],
        out: &DkgOutput<C>,
    ) -> Result<Answer, Refusal> {
        let fail = |e: String| Refusal::permanent(Rule::SignerStorage, e);
        let epoch = self
            .key_epoch::<C>()?
            .checked_add(1)
            .ok_or_else(|| fail("key epoch exhausted".into()))?;
        let (sealed, pkp) = self.sealed_share(&out.key_package, &out.public_key_package)?;
        let hash = package_hash(&pkp);
        let puts = vec![
            (C::meta(&pending(META_KEY_SHARE)), sealed),
            (C::meta(&pending(META_PUBLIC_KEY_PACKAGE)), pkp),
            (
                C::meta(&pending(META_KEY_EPOCH)),
                epoch.to_be_bytes().to_vec(),
            ),
            (C::meta(&pending(PENDING_SESSION)), session_id.to_vec()),
            (
                C::meta(&pending(PENDING_TRANSCRIPT)),
                out.transcript.to_vec(),
            ),
        ];
        self.store
            .put_meta_batch_durable(&puts, &[])
            .map_err(storage)?;
        let stored = Stored {
            session_id,
            transcript: &out.transcript,
            epoch,
            package_hash: &hash,
        };
        self.audit(
            Event::new(audit::kind::REFRESH_STORED)
                .with("session", hex::encode(session_id))
                .with("scheme", C::SCHEME.as_str())
                .with("epoch", epoch.to_string()),
            true,
        );
        info!(signer = %self.name, scheme = %C::SCHEME, epoch, "refreshed share stored; waiting for every participant's acknowledgement");
        Ok(Answer::DkgConfirm(DkgConfirmResponse {
            group_public_key: out.group_key.clone(),
            epoch,
            stored_signature: stored.sign::<C>(&self.identity),
            public_key_package_hash: hash.to_vec(),
        }))
    }

    /// Switches to the refreshed share once every participant acknowledged storing its own;
    /// the old share is deleted in the same durable batch. Sent again, it answers the same.
    pub(super) fn refresh_activate<C: Held>(&self, r: &RefreshActivate) -> Result<Answer, Refusal> {
        let _slot = lock(&self.dkg);
        let group = C::group(self);
        let current = self.key_epoch::<C>()?;
        if current == r.epoch && self.pending_epoch::<C>() == 0 {
            return Ok(Answer::RefreshActivated {
                epoch: current,
                group_public_key: group.group_key(),
            });
        }
        let get = |what: &str| -> Result<Vec<u8>, Refusal> {
            self.store
                .get_meta(&C::meta(&pending(what)))
                .map_err(storage)?
                .ok_or_else(|| {
                    Refusal::permanent(
                        Rule::RefreshPending,
                        "no refreshed share of this session is stored here",
                    )
                })
        };
        let session = get(PENDING_SESSION)?;
        let transcript = get(PENDING_TRANSCRIPT)?;
        let sealed = get(META_KEY_SHARE)?;
        let pkp_bytes = get(META_PUBLIC_KEY_PACKAGE)?;
        let epoch = self.pending_epoch::<C>();
        let hash = package_hash(&pkp_bytes);
        if session != r.session_id
            || transcript != r.transcript_hash
            || epoch != r.epoch
            || hash.as_slice() != r.public_key_package_hash
        {
            return Err(Refusal::permanent(
                Rule::RefreshPending,
                "the activation names another refresh than the one stored here",
            ));
        }
        let pkp = PublicKeyPackage::<C>::deserialize(&pkp_bytes).map_err(|e| {
            Refusal::permanent(Rule::SignerStorage, format!("public key package: {e}"))
        })?;
        let acks: Vec<_> = r
            .acks
            .iter()
            .map(|a| (a.identifier, a.signature.clone()))
            .collect();
        let stored = Stored {
            session_id: &session,
            transcript: &transcript,
            epoch,
            package_hash: &hash,
        };
        stored
            .check_all::<C>(&self.participants_of(&pkp), &acks)
            .map_err(|e| {
                warn!(signer = %self.name, error = %e, "refresh not activated");
                Refusal::permanent(Rule::RefreshPending, e.to_string())
            })?;
        let plain = self
            .kek
            .open(&C::share_purpose(&self.name), &sealed)
            .map_err(|e| Refusal::permanent(Rule::SignerStorage, e.to_string()))?;
        let kp = KeyPackage::<C>::deserialize(&plain)
            .map_err(|e| Refusal::permanent(Rule::SignerStorage, format!("key share: {e}")))?;
        let puts = vec![
            (C::meta(META_KEY_SHARE), sealed),
            (C::meta(META_PUBLIC_KEY_PACKAGE), pkp_bytes),
            (C::meta(META_KEY_EPOCH), epoch.to_be_bytes().to_vec()),
        ];
        self.store
            .put_meta_batch_durable(&puts, &pending_keys::<C>())
            .map_err(storage)?;
        group
            .install(kp, epoch)
            .map_err(|e| Refusal::permanent(Rule::SignerStorage, e))?;
        let fingerprint = quorate_core::fingerprint::group_key_fingerprint(&group.group_key());
        info!(signer = %self.name, scheme = %C::SCHEME, epoch, %fingerprint, "refreshed share in use; the old one is deleted");
        self.audit(
            Event::new(audit::kind::KEY_REFRESHED)
                .with("session", hex::encode(&session))
                .with("scheme", C::SCHEME.as_str())
                .with("epoch", epoch.to_string())
                .with("fingerprint", fingerprint),
            true,
        );
        Ok(Answer::RefreshActivated {
            epoch,
            group_public_key: group.group_key(),
        })
    }
}
