//! The last step of a share refresh ([`crate::dkg::refresh_round1_for`]): switching to the new
//! shares only once every participant has stored its own.
//!
//! After the confirmation round each participant stores its refreshed share beside the one in
//! use and signs an acknowledgement. Only with every participant's acknowledgement does a
//! participant switch and delete its old share; one that misses the switch keeps both until it
//! is shown the acknowledgements again. A share of the old epoch is therefore deleted only when
//! every new share exists, so a relay that withholds the switch from some delays signing at the
//! new epoch but cannot make the key unrecoverable.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::Ciphersuite;
use sha2::{Digest, Sha256};

use crate::{
    dkg::DkgError,
    identity::{IdentityPublic, IdentitySecret},
};

const ACK_DOMAIN: &str = "quorate/refresh-stored/v1";

/// The hash of a serialized public key package, as acknowledgements name it.
pub fn package_hash(public_key_package: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"quorate/refresh-package/v1");
    h.update((public_key_package.len() as u32).to_be_bytes());
    h.update(public_key_package);
    h.finalize().into()
}

/// What one participant signs once its refreshed share is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<'a> {
    /// The refresh's session id.
    pub session_id: &'a [u8],
    /// Its round-1 transcript hash.
    pub transcript: &'a [u8],
    /// The key epoch of the new shares.
    pub epoch: u32,
    /// [`package_hash`] of the new public key package.
    pub package_hash: &'a [u8; 32],
}

impl Stored<'_> {
    fn parts(&self) -> [Vec<u8>; 4] {
        [
            self.session_id.to_vec(),
            self.transcript.to_vec(),
            self.epoch.to_be_bytes().to_vec(),
            self.package_hash.to_vec(),
        ]
    }

    /// Our acknowledgement.
    pub fn sign<C: Ciphersuite>(&self, identity: &IdentitySecret) -> Vec<u8> {
        let parts = self.parts();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        identity.sign(&crate::dkg::domain::<C>(ACK_DOMAIN), &refs)
    }

    /// Whether `signature` is `key`'s acknowledgement of this.
    pub fn verify<C: Ciphersuite>(&self, key: &IdentityPublic, signature: &[u8]) -> bool {
        let parts = self.parts();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        key.verify(&crate::dkg::domain::<C>(ACK_DOMAIN), &refs, signature)
            .is_ok()
    }

    /// Checks that every one of `participants` acknowledged this, and nobody else.
    pub fn check_all<C: Ciphersuite>(
        &self,
        participants: &BTreeMap<u16, IdentityPublic>,
        acks: &[(u16, Vec<u8>)],
    ) -> Result<(), DkgError> {
        let mut seen = BTreeSet::new();
        for (id, sig) in acks {
            let Some(key) = participants.get(id) else {
                return Err(DkgError {
                    reason: format!("an acknowledgement from {id}, who is not a participant"),
                    culprits: vec![],
                });
            };
            if !seen.insert(*id) {
                return Err(DkgError {
                    reason: format!("two acknowledgements from {id}"),
                    culprits: vec![],
                });
            }
            if !self.verify::<C>(key, sig) {
                return Err(DkgError {
                    reason: format!(
                        "the acknowledgement of {id} is not its signature over this refresh"
                    ),
                    culprits: vec![],
                });
            }
        }
        if seen.len() != participants.len() {
            return Err(DkgError {
                reason: format!(
                    "{} of {} participants acknowledged storing the new share",
                    seen.len(),
                    participants.len()
                ),
                culprits: vec![],
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    type S = frost_secp256k1::Secp256K1Sha256;
    type E = frost_ed25519::Ed25519Sha512;

    #[test]
    fn every_participant_must_acknowledge_the_same_refresh() {
        let mut rng = rand::thread_rng();
        let keys: Vec<IdentitySecret> =
            (0..3).map(|_| IdentitySecret::generate(&mut rng)).collect();
        let participants: BTreeMap<u16, IdentityPublic> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (i as u16 + 1, k.public()))
            .collect();
        let hash = package_hash(b"new package");
        let stored = Stored {
            session_id: &[1; 16],
            transcript: &[2; 32],
            epoch: 4,
            package_hash: &hash,
        };
        let acks: Vec<(u16, Vec<u8>)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (i as u16 + 1, stored.sign::<S>(k)))
            .collect();
        assert!(stored.check_all::<S>(&participants, &acks).is_ok());
        // Missing one.
        assert!(stored.check_all::<S>(&participants, &acks[..2]).is_err());
        // Repeated one in place of another.
        let dup = vec![acks[0].clone(), acks[0].clone(), acks[1].clone()];
        assert!(stored.check_all::<S>(&participants, &dup).is_err());
        // Another epoch, package or ciphersuite is another statement.
        let other = Stored {
            epoch: 5,
            ..stored.clone()
        };
        assert!(other.check_all::<S>(&participants, &acks).is_err());
        let h2 = package_hash(b"another package");
        let other = Stored {
            package_hash: &h2,
            ..stored.clone()
        };
        assert!(other.check_all::<S>(&participants, &acks).is_err());
        assert!(stored.check_all::<E>(&participants, &acks).is_err());
        // Someone else's signature under a participant's name.
        let stranger = IdentitySecret::generate(&mut rng);
        let mut forged = acks.clone();
        forged[2].1 = stored.sign::<S>(&stranger);
        assert!(stored.check_all::<S>(&participants, &forged).is_err());
    }
}
