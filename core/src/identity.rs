//! Node identity keys (secp256k1): each signer signs its DKG messages with one, and round-2
//! DKG packages are sealed to them. Signatures are ECDSA over SHA-256 of a domain-separated,
//! length-prefixed statement, so a signature made for one purpose can't be replayed as another.

use std::fmt;

use k256::{
    ecdsa::{signature::Signer, signature::Verifier, Signature, SigningKey, VerifyingKey},
    elliptic_curve::sec1::ToEncodedPoint,
    PublicKey, SecretKey,
};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Identity key errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Not a valid compressed secp256k1 point.
    #[error("invalid identity public key: expected a 33-byte compressed secp256k1 point")]
    PublicKey,
    /// Not a valid secret scalar.
    #[error("invalid identity secret key")]
    SecretKey,
    /// The signature does not verify.
    #[error("identity signature does not verify")]
    BadSignature,
}

/// A node's secret identity key. Zeroized on drop (k256's `SecretKey` does that); never printed.
pub struct IdentitySecret(SecretKey);

impl fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentitySecret(<redacted>)")
    }
}

/// A node's public identity key (33-byte compressed secp256k1 point).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityPublic([u8; 33]);

impl fmt::Debug for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublic({})", hex::encode(self.0))
    }
}

impl fmt::Display for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl IdentityPublic {
    /// Parses and validates a compressed point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let arr: [u8; 33] = bytes.try_into().map_err(|_| IdentityError::PublicKey)?;
        PublicKey::from_sec1_bytes(&arr).map_err(|_| IdentityError::PublicKey)?;
        Ok(Self(arr))
    }

    /// Parses hex.
    pub fn from_hex(s: &str) -> Result<Self, IdentityError> {
        Self::from_bytes(&hex::decode(s).map_err(|_| IdentityError::PublicKey)?)
    }

    /// The 33 bytes.
    pub fn as_bytes(&self) -> &[u8; 33] {
        &self.0
    }

    fn point(&self) -> PublicKey {
        // Validated in `from_bytes`, the only constructor besides `IdentitySecret::public`.
        PublicKey::from_sec1_bytes(&self.0).unwrap_or_else(|_| unreachable!("validated point"))
    }

    /// Verifies a signature made by [`IdentitySecret::sign`] with the same domain and parts.
    pub fn verify(&self, domain: &str, parts: &[&[u8]], sig: &[u8]) -> Result<(), IdentityError> {
        let sig = Signature::from_slice(sig).map_err(|_| IdentityError::BadSignature)?;
        VerifyingKey::from(&self.point())
            .verify(&statement(domain, parts), &sig)
            .map_err(|_| IdentityError::BadSignature)
    }
}

/// The statement signed for `domain` and `parts`: every element length-prefixed.
fn statement(domain: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(domain.len() as u32).to_be_bytes());
    out.extend_from_slice(domain.as_bytes());
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

impl IdentitySecret {
    /// Generates a fresh identity key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(SecretKey::random(rng))
    }

    /// Restores a key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        SecretKey::from_slice(bytes)
            .map(Self)
            .map_err(|_| IdentityError::SecretKey)
    }

    /// The 32 secret bytes, zeroized when dropped. Only for encrypting to disk.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.to_bytes().to_vec())
    }

    /// The matching public key.
    pub fn public(&self) -> IdentityPublic {
        let enc = self.0.public_key().to_encoded_point(true);
        let mut arr = [0u8; 33];
        arr.copy_from_slice(enc.as_bytes());
        IdentityPublic(arr)
    }

    /// Signs `parts` under `domain` (deterministic ECDSA, RFC 6979); returns 64 bytes.
    pub fn sign(&self, domain: &str, parts: &[&[u8]]) -> Vec<u8> {
        let sk = SigningKey::from(&self.0);
        let sig: Signature = sk.sign(&statement(domain, parts));
        sig.to_bytes().to_vec()
    }

    /// Static-static ECDH with a peer, hashed: the input keying material for sealing.
    pub fn shared_secret(&self, peer: &IdentityPublic) -> Zeroizing<[u8; 32]> {
        let shared =
            k256::ecdh::diffie_hellman(self.0.to_nonzero_scalar(), peer.point().as_affine());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&Sha256::digest(shared.raw_secret_bytes()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_domain_separation() {
        let mut rng = rand::thread_rng();
        let k = IdentitySecret::generate(&mut rng);
        let sig = k.sign("a", &[b"x", b"y"]);
        k.public().verify("a", &[b"x", b"y"], &sig).unwrap();
        assert!(k.public().verify("b", &[b"x", b"y"], &sig).is_err());
        // Length prefixes keep part boundaries: ("xy") is not ("x","y").
        assert!(k.public().verify("a", &[b"xy"], &sig).is_err());
        let other = IdentitySecret::generate(&mut rng);
        assert!(other.public().verify("a", &[b"x", b"y"], &sig).is_err());
    }

    #[test]
    fn ecdh_is_symmetric() {
        let mut rng = rand::thread_rng();
        let a = IdentitySecret::generate(&mut rng);
        let b = IdentitySecret::generate(&mut rng);
        assert_eq!(*a.shared_secret(&b.public()), *b.shared_secret(&a.public()));
        assert_eq!(format!("{a:?}"), "IdentitySecret(<redacted>)");
    }

    #[test]
    fn rejects_bad_public_keys() {
        assert!(IdentityPublic::from_bytes(&[2u8; 32]).is_err());
        assert!(IdentityPublic::from_bytes(&[5u8; 33]).is_err());
    }
}
