//! What the group signs for an intent. Every chain signs the intent digest today; chain
//! formats (an EVM vault contract's withdrawal digest, a Bitcoin Taproot sighash) plug in here,
//! and signer and coordinator both call only [`signing_message`].

use crate::intent::WithdrawalIntent;

/// Per-chain signing settings, from the cluster configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ChainFormat {
    /// The SHA-256 intent digest itself.
    #[default]
    IntentDigest,
}

/// The exact bytes the FROST group signs for `intent` under `format`.
pub fn signing_message(intent: &WithdrawalIntent, format: ChainFormat) -> Vec<u8> {
    match format {
        ChainFormat::IntentDigest => intent.digest().to_vec(),
    }
}
