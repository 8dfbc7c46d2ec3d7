//! End-to-end sealing of DKG round-2 packages to the receiving signer, so the coordinator that
//! relays them never sees a share. The key is HKDF-SHA256 over the static-static ECDH of the
//! sender's and recipient's identity keys, specialised to the session and the direction;
//! ChaCha20-Poly1305 authenticates the ciphertext (only the two holders of those keys can make
//! it) and binds, as associated data, the session, both identifiers and the round-1 transcript
//! hash, so a recipient whose view of round 1 differs cannot open it.

use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    ChaCha20Poly1305, Key, Nonce,
};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::identity::{IdentityPublic, IdentitySecret};

/// A sealed round-2 package as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// FROST identifier of the sender.
    pub sender: u16,
    /// FROST identifier of the recipient.
    pub recipient: u16,
    /// 12-byte AEAD nonce.
    pub nonce: [u8; 12],
    /// Ciphertext with tag.
    pub ciphertext: Vec<u8>,
}

/// The binding of a sealed package.
pub struct SealContext<'a> {
    /// DKG session id.
    pub session_id: &'a [u8],
    /// Round-1 transcript hash as the sealer saw it.
    pub transcript: &'a [u8; 32],
    /// Sender identifier.
    pub sender: u16,
    /// Recipient identifier.
    pub recipient: u16,
}

impl SealContext<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = b"quorate/dkg-round2/v1".to_vec();
        aad.extend_from_slice(&(self.session_id.len() as u32).to_be_bytes());
        aad.extend_from_slice(self.session_id);
        aad.extend_from_slice(&self.sender.to_be_bytes());
        aad.extend_from_slice(&self.recipient.to_be_bytes());
        aad.extend_from_slice(self.transcript);
        aad
    }

    fn key(&self, shared: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(self.session_id), shared);
        let mut info = b"quorate/dkg-round2-key/v1".to_vec();
        info.extend_from_slice(&self.sender.to_be_bytes());
        info.extend_from_slice(&self.recipient.to_be_bytes());
        let mut okm = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so this cannot fail.
        hk.expand(&info, okm.as_mut())
            .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
        okm
    }
}

/// Sealing failed to open: wrong key, tampered data, or a different transcript.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sealed package from {sender} does not open: tampered, misaddressed or from a different round-1 transcript")]
pub struct OpenError {
    /// Who sent it.
    pub sender: u16,
}

/// Seals `plaintext` from `me` to `recipient_key`.
pub fn seal<R: RngCore + CryptoRng>(
    rng: &mut R,
    me: &IdentitySecret,
    recipient_key: &IdentityPublic,
    ctx: &SealContext<'_>,
    plaintext: &[u8],
) -> Sealed {
    let key = ctx.key(&me.shared_secret(recipient_key));
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let aad = ctx.aad();
    // ChaCha20-Poly1305 encryption fails only for plaintexts beyond 256 GiB.
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .unwrap_or_else(|_| unreachable!("plaintext far below the AEAD limit"));
    Sealed {
        sender: ctx.sender,
        recipient: ctx.recipient,
        nonce,
        ciphertext,
    }
}

/// Opens a package sealed to `me` by `sender_key`.
pub fn open(
    me: &IdentitySecret,
    sender_key: &IdentityPublic,
    ctx: &SealContext<'_>,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let err = OpenError { sender: ctx.sender };
    if sealed.sender != ctx.sender || sealed.recipient != ctx.recipient {
        return Err(err);
    }
    let key = ctx.key(&me.shared_secret(sender_key));
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    cipher
        .decrypt(
            Nonce::from_slice(&sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: &ctx.aad(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let mut rng = rand::thread_rng();
        let a = IdentitySecret::generate(&mut rng);
        let b = IdentitySecret::generate(&mut rng);
        let c = IdentitySecret::generate(&mut rng);
        let t = [7u8; 32];
        let ctx = SealContext {
            session_id: b"s1",
            transcript: &t,
            sender: 1,
            recipient: 2,
        };
        let s = seal(&mut rng, &a, &b.public(), &ctx, b"share");
        assert_eq!(&*open(&b, &a.public(), &ctx, &s).unwrap(), b"share");
        // A third party (the relaying coordinator, or another signer) cannot open it.
        assert!(open(&c, &a.public(), &ctx, &s).is_err());
        // Nor can it be passed off as coming from someone else.
        assert!(open(&b, &c.public(), &ctx, &s).is_err());
        // A different transcript view fails.
        let t2 = [8u8; 32];
        let ctx2 = SealContext {
            transcript: &t2,
            ..ctx
        };
        assert!(open(&b, &a.public(), &ctx2, &s).is_err());
        // Any flipped bit fails.
        let mut bad = s.clone();
        bad.ciphertext[0] ^= 1;
        let ctx = SealContext {
            session_id: b"s1",
            transcript: &t,
            sender: 1,
            recipient: 2,
        };
        assert!(open(&b, &a.public(), &ctx, &bad).is_err());
    }
}
