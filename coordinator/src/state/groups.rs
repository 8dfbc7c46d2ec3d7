//! The cluster's key groups as the coordinator sees them, one per signature scheme: each
//! group's public key package, where it is stored, and whether signers pre-generate
//! commitments for it (the secp256k1 group, which signs nearly every withdrawal, does; the
//! Ed25519 group signs with a commit round).

use frost_core::{keys::PublicKeyPackage, round1::SigningCommitments};
use quorate_core::{message::Scheme, scheme::Suite};

use super::{read, Coordinator};
use crate::store::Store;

/// FROST(secp256k1, SHA-256).
pub type Secp = frost_secp256k1::Secp256K1Sha256;
/// FROST(Ed25519, SHA-512).
pub type Ed = frost_ed25519::Ed25519Sha512;

/// Metadata key of the Ed25519 group's public key package (the secp256k1 one keeps its own).
pub const META_ED25519_PUBLIC_KEY_PACKAGE: &str = "ed25519/public_key_package";

/// A group the coordinator gathers signatures for.
pub(crate) trait GroupSuite: Suite {
    /// Its public key package, once its DKG has finished.
    fn public_keys(c: &Coordinator) -> Option<PublicKeyPackage<Self>>;
    /// Stores the package of a finished DKG, durably (blocking: off the reactor).
    fn store_public_keys(store: &Store, bytes: &[u8]) -> Result<(), String>;
    /// Installs it.
    fn install_public_keys(c: &Coordinator, pkp: PublicKeyPackage<Self>);
    /// A pre-generated commitment of signer `i` (session, commitments), if it has one.
    fn pooled(_c: &Coordinator, _i: u16) -> Option<([u8; 16], SigningCommitments<Self>)> {
        None
    }
    /// Asks signer `i` for more pre-generated commitments if its pool runs low.
    fn refill(_c: &Coordinator, _i: u16) {}
}

impl GroupSuite for Secp {
    fn public_keys(c: &Coordinator) -> Option<PublicKeyPackage<Self>> {
        read(&c.public_keys).clone()
    }
    fn store_public_keys(store: &Store, bytes: &[u8]) -> Result<(), String> {
        store
            .put_public_key_package(bytes)
            .map_err(|e| e.to_string())
    }
    fn install_public_keys(c: &Coordinator, pkp: PublicKeyPackage<Self>) {
        *c.public_keys.write().unwrap_or_else(|p| p.into_inner()) = Some(pkp);
        *c.group_key_bytes.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
    fn pooled(c: &Coordinator, i: u16) -> Option<([u8; 16], SigningCommitments<Self>)> {
        c.registry
            .take_presigned(i)
            .map(|p| (p.session, p.commitments))
    }
    fn refill(c: &Coordinator, i: u16) {
        c.refill(i);
    }
}

impl GroupSuite for Ed {
    fn public_keys(c: &Coordinator) -> Option<PublicKeyPackage<Self>> {
        read(&c.ed_public_keys).clone()
    }
    fn store_public_keys(store: &Store, bytes: &[u8]) -> Result<(), String> {
        // `put_meta` is durable.
        store
            .put_meta(META_ED25519_PUBLIC_KEY_PACKAGE, bytes)
            .map_err(|e| e.to_string())
    }
    fn install_public_keys(c: &Coordinator, pkp: PublicKeyPackage<Self>) {
        *c.ed_public_keys.write().unwrap_or_else(|p| p.into_inner()) = Some(pkp);
    }
}

/// The serialized group key of every group the cluster holds (empty where none yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupKeys {
    /// 33-byte compressed secp256k1 key.
    pub secp256k1: Vec<u8>,
    /// 32-byte Ed25519 key: the Solana wallet.
    pub ed25519: Vec<u8>,
}

impl GroupKeys {
    /// The key of `scheme`.
    pub fn of(&self, scheme: Scheme) -> &[u8] {
        match scheme {
            Scheme::Secp256k1 => &self.secp256k1,
            Scheme::Ed25519 => &self.ed25519,
        }
    }
}

/// The scheme an admin names ("" is secp256k1).
pub fn parse_scheme(s: &str) -> Result<Scheme, String> {
    if s.is_empty() {
        Ok(Scheme::Secp256k1)
    } else {
        s.parse()
    }
}
