//! Short fingerprints that operators read aloud and compare out of band.

use sha2::{Digest, Sha256};

/// Fingerprint of a group public key: first 10 bytes of a domain-separated SHA-256, as five
/// groups of four hex digits (`a1b2-c3d4-…`).
pub fn group_key_fingerprint(group_key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"quorate/group-key-fingerprint/v1");
    h.update(group_key);
    let d = h.finalize();
    d[..10]
        .chunks(2)
        .map(hex::encode)
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    #[test]
    fn shape() {
        let f = super::group_key_fingerprint(&[2u8; 33]);
        assert_eq!(f.len(), 24);
        assert_eq!(f.matches('-').count(), 4);
        assert_ne!(f, super::group_key_fingerprint(&[3u8; 33]));
    }
}
