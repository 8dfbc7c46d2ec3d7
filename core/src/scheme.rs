//! Signature schemes: the cluster holds one FROST key group per scheme, and each chain format
//! names the scheme it signs with ([`crate::message::ChainFormat::scheme`]).

use frost_core::Ciphersuite;

/// A signature scheme: the cluster holds one FROST key group per scheme, and each chain format
/// names the one it signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Scheme {
    /// FROST(secp256k1, SHA-256): the intent digest and the EVM/Tron vault.
    #[default]
    Secp256k1,
    /// FROST(Ed25519, SHA-512): Solana, whose addresses are Ed25519 keys.
    Ed25519,
}

impl Scheme {
    /// Every scheme, in the order groups are listed.
    pub const ALL: [Scheme; 2] = [Scheme::Secp256k1, Scheme::Ed25519];

    /// Its name in configs, logs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Secp256k1 => "secp256k1",
            Scheme::Ed25519 => "ed25519",
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scheme::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown key scheme {s:?} (secp256k1 or ed25519)"))
    }
}

/// A FROST ciphersuite the cluster holds a key group for.
pub trait Suite: Ciphersuite {
    /// Its scheme.
    const SCHEME: Scheme;
}

impl Suite for frost_secp256k1::Secp256K1Sha256 {
    const SCHEME: Scheme = Scheme::Secp256k1;
}

impl Suite for frost_ed25519::Ed25519Sha512 {
    const SCHEME: Scheme = Scheme::Ed25519;
}
