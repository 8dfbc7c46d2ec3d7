//! Encryption of secrets at rest (key shares, identity keys) under a node's key-encryption key
//! (KEK). ChaCha20-Poly1305 with a random nonce; the purpose label is bound as associated data
//! so a blob sealed as one thing cannot be opened as another.
//!
//! Blob layout: `b"QRT1"` ‖ 12-byte nonce ‖ ciphertext-with-tag.

use std::fmt;

use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    ChaCha20Poly1305, Key, Nonce,
};
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const MAGIC: &[u8; 4] = b"QRT1";

/// Errors with at-rest encryption.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AtRestError {
    /// The KEK text is not 64 hex digits.
    #[error("key-encryption key must be 32 bytes written as 64 hex digits")]
    BadKek,
    /// The blob is not ours, or the KEK or purpose is wrong, or it was altered.
    #[error("cannot decrypt {0}: wrong key-encryption key, or the data is damaged")]
    Open(String),
}

/// A 32-byte key-encryption key. Zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Kek([u8; 32]);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

impl Kek {
    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, AtRestError> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| AtRestError::BadKek)?);
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| AtRestError::BadKek)?;
        Ok(Self(arr))
    }

    /// A random KEK.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        Self(k)
    }

    /// Hex form, for writing a new KEK file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }

    /// Encrypts `plaintext` for `purpose`.
    pub fn seal<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        purpose: &str,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.0));
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        // Fails only beyond 256 GiB of plaintext.
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: purpose.as_bytes(),
                },
            )
            .unwrap_or_else(|_| unreachable!("plaintext far below the AEAD limit"));
        let mut out = Vec::with_capacity(4 + 12 + ct.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts a blob sealed for `purpose`.
    pub fn open(&self, purpose: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, AtRestError> {
        let err = || AtRestError::Open(purpose.to_string());
        if blob.len() < 4 + 12 + 16 || &blob[..4] != MAGIC {
            return Err(err());
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.0));
        cipher
            .decrypt(
                Nonce::from_slice(&blob[4..16]),
                Payload {
                    msg: &blob[16..],
                    aad: purpose.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refusals() {
        let mut rng = rand::thread_rng();
        let k = Kek::generate(&mut rng);
        let blob = k.seal(&mut rng, "key-share", b"secret");
        assert!(!blob.windows(6).any(|w| w == b"secret"));
        assert_eq!(&*k.open("key-share", &blob).unwrap(), b"secret");
        assert!(k.open("identity", &blob).is_err());
        assert!(Kek::generate(&mut rng).open("key-share", &blob).is_err());
        let mut bad = blob.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(k.open("key-share", &bad).is_err());
        assert_eq!(Kek::from_hex(&k.to_hex()).unwrap().0, k.0);
        assert!(Kek::from_hex("abcd").is_err());
        assert_eq!(format!("{k:?}"), "Kek(<redacted>)");
    }
}
