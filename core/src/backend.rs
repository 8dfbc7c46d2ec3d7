//! The exchange backend's signature over an intent: ECDSA on secp256k1 with the 32-byte intent
//! digest as the prehash (no further hashing), DER or 64-byte compact, low or high S.

use k256::ecdsa::{signature::hazmat::PrehashVerifier, Signature, SigningKey, VerifyingKey};

use crate::refusal::{Refusal, Rule};

/// A backend public key, as pinned in the cluster manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendKey(VerifyingKey);

impl BackendKey {
    /// Parses a 33-byte compressed (or 65-byte uncompressed) SEC1 key.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, String> {
        VerifyingKey::from_sec1_bytes(bytes)
            .map(Self)
            .map_err(|_| "backend key: not a valid secp256k1 public key".to_string())
    }

    /// Compressed SEC1 bytes.
    pub fn to_sec1(&self) -> Vec<u8> {
        self.0.to_encoded_point(true).as_bytes().to_vec()
    }
}

fn parse_signature(sig: &[u8]) -> Option<Signature> {
    let sig = if sig.len() == 64 {
        Signature::from_slice(sig).ok()?
    } else {
        Signature::from_der(sig).ok()?
    };
    // Accept either S; verification below is over the normalised form.
    Some(sig.normalize_s().unwrap_or(sig))
}

/// Checks that one of `keys` signed `digest`.
pub fn verify(keys: &[BackendKey], digest: &[u8; 32], sig: &[u8]) -> Result<(), Refusal> {
    let refuse = |why: &str| Refusal::permanent(Rule::BackendSignatureInvalid, why.to_string());
    if sig.is_empty() {
        return Err(refuse("the intent carries no backend signature"));
    }
    let sig = parse_signature(sig)
        .ok_or_else(|| refuse("the backend signature is not a DER or 64-byte ECDSA signature"))?;
    if keys
        .iter()
        .any(|k| k.0.verify_prehash(digest, &sig).is_ok())
    {
        Ok(())
    } else {
        Err(refuse(
            "the backend signature was not made by any backend key of the policy in force",
        ))
    }
}

/// Signs a digest as the backend does (used by the CLI and tests).
pub fn sign(key: &SigningKey, digest: &[u8; 32]) -> Vec<u8> {
    use k256::ecdsa::signature::hazmat::PrehashSigner;
    // Signing a 32-byte prehash with a valid key cannot fail.
    let sig: Signature = key
        .sign_prehash(digest)
        .unwrap_or_else(|_| unreachable!("32-byte prehash"));
    sig.to_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_accepts_the_right_key_only() {
        let mut rng = rand::thread_rng();
        let k1 = SigningKey::random(&mut rng);
        let k2 = SigningKey::random(&mut rng);
        let d = [9u8; 32];
        let sig = sign(&k1, &d);
        let pk1 = BackendKey(*k1.verifying_key());
        let pk2 = BackendKey(*k2.verifying_key());
        verify(std::slice::from_ref(&pk1), &d, &sig).unwrap();
        verify(&[pk2.clone(), pk1.clone()], &d, &sig).unwrap();
        assert_eq!(
            verify(std::slice::from_ref(&pk2), &d, &sig)
                .unwrap_err()
                .rule,
            Rule::BackendSignatureInvalid
        );
        assert!(verify(std::slice::from_ref(&pk1), &[8u8; 32], &sig).is_err());
        assert!(verify(std::slice::from_ref(&pk1), &d, &[]).is_err());
        assert!(verify(std::slice::from_ref(&pk1), &d, &[1, 2, 3]).is_err());
        let der = Signature::from_slice(&sig).unwrap().to_der();
        verify(&[pk1], &d, der.as_bytes()).unwrap();
    }
}
