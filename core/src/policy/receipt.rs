//! Signed status receipts: a signer's own account of the policy it enforces, signed with its
//! identity key over a challenge the asking admin's tool chose. The coordinator relays receipts
//! but can neither forge one (it holds no signer key) nor replay an old one (the challenge is
//! fresh), so `quorate admin show` and `admin freeze` report what each signer proved, not what
//! the coordinator says.

use crate::identity::{IdentityPublic, IdentitySecret};

/// Signature domain of a status receipt.
pub const RECEIPT_DOMAIN: &str = "quorate-status-receipt-v1";
/// Shortest challenge accepted.
pub const MIN_CHALLENGE: usize = 16;
/// Longest challenge accepted.
pub const MAX_CHALLENGE: usize = 64;

/// What a signer states about its policy, over a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReceipt {
    /// The signer's manifest name.
    pub node: String,
    /// The asker's challenge.
    pub challenge: Vec<u8>,
    /// Version in force (0: none).
    pub version: u64,
    /// Hex hash of the version in force.
    pub hash: String,
    /// The version in force is frozen.
    pub frozen: bool,
    /// The operator froze this signer locally.
    pub locally_frozen: bool,
    /// Version waiting out its time-lock (0: none).
    pub pending_version: u64,
    /// Its hex hash.
    pub pending_hash: String,
    /// When it applies, on the signer's clock.
    pub pending_effective_at_ms: u64,
    /// The signer's clock when it signed.
    pub clock_ms: u64,
    /// Identity-key signature over everything above.
    pub signature: Vec<u8>,
}

impl StatusReceipt {
    fn statement(&self) -> [Vec<u8>; 10] {
        [
            self.node.as_bytes().to_vec(),
            self.challenge.clone(),
            self.version.to_be_bytes().to_vec(),
            self.hash.as_bytes().to_vec(),
            vec![u8::from(self.frozen)],
            vec![u8::from(self.locally_frozen)],
            self.pending_version.to_be_bytes().to_vec(),
            self.pending_hash.as_bytes().to_vec(),
            self.pending_effective_at_ms.to_be_bytes().to_vec(),
            self.clock_ms.to_be_bytes().to_vec(),
        ]
    }

    /// Signs the receipt (its `signature` is replaced).
    pub fn sign(mut self, key: &IdentitySecret) -> Self {
        let parts = self.statement();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        self.signature = key.sign(RECEIPT_DOMAIN, &refs);
        self
    }

    /// Checks that `key` signed this receipt for `node` over `challenge`.
    pub fn verify(
        &self,
        node: &str,
        key: &IdentityPublic,
        challenge: &[u8],
    ) -> Result<(), ReceiptError> {
        if self.node != node {
            return Err(ReceiptError::WrongNode(self.node.clone()));
        }
        if self.challenge != challenge {
            return Err(ReceiptError::Replayed);
        }
        let parts = self.statement();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        key.verify(RECEIPT_DOMAIN, &refs, &self.signature)
            .map_err(|_| ReceiptError::BadSignature)
    }

    /// True if this signer refuses every withdrawal: frozen by policy or by its operator.
    pub fn refuses_withdrawals(&self) -> bool {
        self.frozen || self.locally_frozen
    }
}

/// Why a receipt does not prove anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Signed for another node name.
    #[error("the receipt is for `{0}`")]
    WrongNode(String),
    /// Not over this request's challenge (an old receipt replayed).
    #[error("the receipt is not over this request's challenge (replayed)")]
    Replayed,
    /// Not signed by the identity key the manifest pins.
    #[error("the receipt is not signed by the identity key pinned in the manifest")]
    BadSignature,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn receipt() -> StatusReceipt {
        StatusReceipt {
            node: "signer-1".into(),
            challenge: vec![7; 32],
            version: 3,
            hash: "ab".repeat(32),
            frozen: true,
            clock_ms: 1_700_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn a_receipt_verifies_only_as_signed() {
        let key = IdentitySecret::generate(&mut OsRng);
        let other = IdentitySecret::generate(&mut OsRng);
        let r = receipt().sign(&key);
        assert_eq!(r.verify("signer-1", &key.public(), &[7; 32]), Ok(()));
        assert_eq!(
            r.verify("signer-1", &other.public(), &[7; 32]),
            Err(ReceiptError::BadSignature)
        );
        assert_eq!(
            r.verify("signer-1", &key.public(), &[8; 32]),
            Err(ReceiptError::Replayed)
        );
        assert_eq!(
            r.verify("signer-2", &key.public(), &[7; 32]),
            Err(ReceiptError::WrongNode("signer-1".into()))
        );
        // Every field is covered: flipping any of them breaks the signature.
        let flips: Vec<fn(&mut StatusReceipt)> = vec![
            |r| r.version += 1,
            |r| r.hash = "cd".repeat(32),
            |r| r.frozen = false,
            |r| r.locally_frozen = true,
            |r| r.pending_version = 4,
            |r| r.pending_hash = "ef".repeat(32),
            |r| r.pending_effective_at_ms = 1,
            |r| r.clock_ms += 1,
        ];
        for f in flips {
            let mut t = r.clone();
            f(&mut t);
            assert_eq!(
                t.verify("signer-1", &key.public(), &[7; 32]),
                Err(ReceiptError::BadSignature),
                "{t:?}"
            );
        }
    }
}
