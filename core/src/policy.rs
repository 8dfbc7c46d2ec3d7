//! The policy gate every signer runs before it releases a share, and the coordinator runs for
//! an early answer. The signer's answer is the one that counts. This is the hook; the full
//! governed policy (whitelist, velocity, admin quorum) plugs in behind the same trait.

use std::collections::BTreeMap;

use crate::{
    address::Chain,
    amount::Amount,
    intent::WithdrawalIntent,
    refusal::{rule, Refusal},
};

/// Decides whether a withdrawal may be signed.
pub trait WithdrawalPolicy: Send + Sync {
    /// `Ok` to allow, or a refusal naming its rule. `now_ms` is unix milliseconds.
    fn evaluate(&self, intent: &WithdrawalIntent, now_ms: u64) -> Result<(), Refusal>;
}

/// A node's local asset rules: which (chain, asset) pairs may move, up to what per withdrawal,
/// and a freeze switch. Anything not listed is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetPolicy {
    /// Per (chain, asset) maximum amount per withdrawal, in base units.
    pub max_amount: BTreeMap<(Chain, String), Amount>,
    /// When set, every withdrawal is refused.
    pub frozen: bool,
}

impl WithdrawalPolicy for AssetPolicy {
    fn evaluate(&self, intent: &WithdrawalIntent, _now_ms: u64) -> Result<(), Refusal> {
        if self.frozen {
            return Err(Refusal::temporary(
                rule::POLICY_FROZEN,
                "withdrawals are frozen on this node",
            ));
        }
        let key = (intent.chain, intent.asset.clone());
        let Some(max) = self.max_amount.get(&key) else {
            return Err(Refusal::permanent(
                rule::POLICY_ASSET_UNKNOWN,
                format!(
                    "asset {} on {} is not in this node's asset registry",
                    intent.asset,
                    intent.chain.as_str()
                ),
            ));
        };
        if intent.amount > *max {
            return Err(Refusal::permanent(
                rule::POLICY_AMOUNT_MAX,
                format!(
                    "amount {} {} exceeds the per-withdrawal maximum of {}",
                    intent.amount, intent.asset, max
                ),
            ));
        }
        Ok(())
    }
}
