//! End-to-end sealing of DKG round-2 packages to the receiving signer, so the coordinator that
//! relays them never sees a share. The key is HKDF-SHA256 over the static-static ECDH of the
//! sender's and recipient's identity keys, specialised to the session and the direction;
//! ChaCha20-Poly1305 authenticates the ciphertext (only the two holders of those keys can make
//! it) and binds, as associated data, the session, both identifiers and the round-1 transcript
//! hash, so a recipient whose view of round 1 differs cannot open it. The sender also signs the
//! sealed package with its identity key: a package the relay altered fails that signature and
//! blames nobody, while one its sender signed and that still does not open is the sender's
//! doing (the signature shows who made it; that it does not open, only its recipient can see).

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
    /// The sender's identity signature over the binding, the nonce and the ciphertext.
    pub signature: Vec<u8>,
}

const SEALED_DOMAIN: &str = "quorate/dkg-sealed/v1";

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

/// A sealed package that does not open, and whether its sender is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Not signed by its sender for this binding: altered, misaddressed or made up in transit,
    /// or sealed for a different round-1 transcript. Proves nothing against the sender.
    #[error("sealed package from {sender} is not signed by it for this session, addressee and transcript: altered or misdirected in transit")]
    NotSigned {
        /// Who it claims to come from.
        sender: u16,
    },
    /// Signed by its sender, yet it does not decrypt: the sender sealed garbage.
    #[error("sealed package from {sender} is signed by it but does not decrypt: its sender sealed garbage")]
    DoesNotOpen {
        /// Who sent it.
        sender: u16,
    },
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
    let signature = me.sign(SEALED_DOMAIN, &[&aad, &nonce, &ciphertext]);
    Sealed {
        sender: ctx.sender,
        recipient: ctx.recipient,
        nonce,
        signature,
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
    let unsigned = OpenError::NotSigned { sender: ctx.sender };
    if sealed.sender != ctx.sender || sealed.recipient != ctx.recipient {
        return Err(unsigned);
    }
    sender_key
        .verify(
            SEALED_DOMAIN,
            &[&ctx.aad(), &sealed.nonce, &sealed.ciphertext],
            &sealed.signature,
        )
        .map_err(|_| unsigned)?;
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
        .map_err(|_| OpenError::DoesNotOpen { sender: ctx.sender })
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
        assert_eq!(
            open(&b, &a.public(), &ctx, &bad),
            Err(OpenError::NotSigned { sender: 1 })
        );
        // Garbage the sender itself signed: its fault, provably.
        let mut garbage = s.clone();
        garbage.ciphertext[0] ^= 1;
        garbage.signature = a.sign(
            SEALED_DOMAIN,
            &[&ctx.aad(), &garbage.nonce, &garbage.ciphertext],
        );
        assert_eq!(
            open(&b, &a.public(), &ctx, &garbage),
            Err(OpenError::DoesNotOpen { sender: 1 })
        );
    }
}
