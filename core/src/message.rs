//! What the group signs for an intent, and what a backend sends to the chain afterwards.
//!
//! The format comes from the governed policy in force, never from a request: a chain listed in
//! the policy's `chains` pays out through the vault contract, so the group signs the vault's
//! withdrawal digest ([`crate::chains::evm`]); any other chain signs the SHA-256 intent digest.
//! Signer and coordinator both call only [`chain_format`] and [`signing_message`].

use crate::{
    chains::evm::{self, Address20, VaultDomain, VaultWithdrawal},
    intent::WithdrawalIntent,
    policy::{PolicyDoc, NATIVE_TOKEN},
    refusal::{rule, Refusal},
};

/// How the group signs for one intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ChainFormat {
    /// The SHA-256 intent digest itself.
    #[default]
    IntentDigest,
    /// The vault contract's withdrawal digest.
    EvmVault {
        /// The vault and its chain id.
        domain: VaultDomain,
        /// Token contract of the intent's asset, or [`evm::NATIVE`].
        token: Address20,
    },
}

/// The format `policy` prescribes for `intent`. Refuses an asset the policy does not register
/// on a chain with a vault (the same rule the policy evaluation would name).
pub fn chain_format(policy: &PolicyDoc, intent: &WithdrawalIntent) -> Result<ChainFormat, Refusal> {
    let Some(rule) = policy.chain(intent.chain) else {
        return Ok(ChainFormat::IntentDigest);
    };
    let unknown = || {
        Refusal::permanent(
            rule::POLICY_ASSET_UNKNOWN,
            format!(
                "asset {} on {} has no token in the policy's registry",
                intent.asset,
                intent.chain.as_str()
            ),
        )
    };
    let token = policy
        .asset(intent.chain, &intent.asset)
        .and_then(|a| a.token.as_deref())
        .ok_or_else(unknown)?;
    // The policy document was validated: these addresses are canonical for the chain.
    let invalid = |e: evm::EvmAddressError| {
        Refusal::permanent(
            rule::POLICY_MISSING,
            format!("the policy's vault settings are not usable: {e}"),
        )
    };
    let token = if token == NATIVE_TOKEN {
        evm::NATIVE
    } else {
        evm::address_bytes(intent.chain, token).map_err(invalid)?
    };
    Ok(ChainFormat::EvmVault {
        domain: VaultDomain {
            chain_id: rule.chain_id,
            vault: evm::address_bytes(intent.chain, &rule.vault).map_err(invalid)?,
        },
        token,
    })
}

fn vault_withdrawal(
    intent: &WithdrawalIntent,
    token: Address20,
) -> Result<VaultWithdrawal, Refusal> {
    VaultWithdrawal::from_intent(intent, token).map_err(|e| {
        Refusal::permanent(
            rule::INTENT_MALFORMED,
            format!("destination: not an account the vault can pay: {e}"),
        )
    })
}

/// The exact bytes the FROST group signs for `intent` under `format`.
pub fn signing_message(intent: &WithdrawalIntent, format: ChainFormat) -> Result<Vec<u8>, Refusal> {
    match format {
        ChainFormat::IntentDigest => Ok(intent.digest().to_vec()),
        ChainFormat::EvmVault { domain, token } => Ok(domain
            .withdraw_digest(&vault_withdrawal(intent, token)?)
            .to_vec()),
    }
}

/// A contract call that pays a withdrawal out: any funded account may send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvmCall {
    /// The vault, in the chain's canonical address form.
    pub to: String,
    /// The calldata.
    pub data: Vec<u8>,
}

/// What a backend sends to the chain for a withdrawal the group signed with `signature`, if
/// its format has one.
pub fn payout(
    intent: &WithdrawalIntent,
    format: ChainFormat,
    signature: &[u8],
) -> Result<Option<EvmCall>, Refusal> {
    match format {
        ChainFormat::IntentDigest => Ok(None),
        ChainFormat::EvmVault { domain, token } => {
            let w = vault_withdrawal(intent, token)?;
            let data = evm::withdraw_calldata(&w, signature).map_err(|e| {
                Refusal::permanent(rule::INTENT_MALFORMED, format!("vault call: {e}"))
            })?;
            Ok(Some(EvmCall {
                to: evm::address_text(intent.chain, &domain.vault),
                data,
            }))
        }
    }
}
