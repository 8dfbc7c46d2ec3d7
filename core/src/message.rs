//! What the group signs for an intent, and what a backend sends to the chain afterwards.
//!
//! The format comes from the governed policy in force, never from a request: a chain listed in
//! the policy's `chains` pays out through the vault contract, so the group signs the vault's
//! withdrawal digest ([`crate::chains::evm`]); any other chain signs the SHA-256 intent digest.
//! Signer and coordinator both call only [`chain_format`] and [`signing_message`].

use crate::{
    address::Chain,
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

/// What a signer binds a withdrawal id to (S6): the intent digest, and where the group signs
/// another message (a vault's digest, which names the vault and chain id the policy gave), a
/// hash of both. A retry after the policy moved the vault is then another withdrawal under the
/// same id, refused as a conflict, never a second signature payable by another vault.
pub fn binding(digest: &[u8; 32], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    if message == digest {
        return *digest;
    }
    let mut h = Sha256::new();
    h.update(b"quorate-binding-v1\0");
    h.update(digest);
    h.update(message);
    h.finalize().into()
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

/// What a vault administration message does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultAdminKind {
    /// Hand the vault to this group key (33-byte compressed).
    RotateKey([u8; 33]),
    /// Set a token's on-chain cap.
    SetCap {
        /// Token, or [`evm::NATIVE`].
        token: Address20,
        /// Base units (`u128::MAX`: no cap).
        capacity: u128,
        /// Base units per second.
        rate: u128,
    },
}

/// A vault administration message the policy in force lists: the group signs it only then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultAdmin {
    /// Chain.
    pub chain: Chain,
    /// The vault.
    pub domain: VaultDomain,
    /// The vault's admin nonce it is for.
    pub nonce: u64,
    /// What it does.
    pub kind: VaultAdminKind,
}

impl VaultAdmin {
    /// The digest the group signs.
    pub fn message(&self) -> [u8; 32] {
        match self.kind {
            VaultAdminKind::RotateKey(k) => self.domain.rotate_digest(self.nonce, &k),
            VaultAdminKind::SetCap {
                token,
                capacity,
                rate,
            } => self.domain.cap_digest(self.nonce, &token, capacity, rate),
        }
    }

    /// The vault call that carries it, signed with `signature`.
    pub fn call(&self, signature: &[u8]) -> Result<EvmCall, Refusal> {
        let data = match self.kind {
            VaultAdminKind::RotateKey(k) => evm::rotate_calldata(self.nonce, &k, signature),
            VaultAdminKind::SetCap {
                token,
                capacity,
                rate,
            } => evm::set_cap_calldata(self.nonce, &token, capacity, rate, signature),
        }
        .map_err(|e| Refusal::permanent(rule::VAULT_ACTION_UNKNOWN, format!("vault call: {e}")))?;
        Ok(EvmCall {
            to: evm::address_text(self.chain, &self.domain.vault),
            data,
        })
    }

    /// For people and audit records.
    pub fn describe(&self) -> String {
        match self.kind {
            VaultAdminKind::RotateKey(k) => format!("rotate-key to {}", hex::encode(k)),
            VaultAdminKind::SetCap {
                token,
                capacity,
                rate,
            } => format!(
                "set-cap of {} to {} base units refilled {rate} per second",
                if token == evm::NATIVE {
                    NATIVE_TOKEN.to_string()
                } else {
                    evm::address_text(self.chain, &token)
                },
                if capacity == u128::MAX {
                    "no cap".to_string()
                } else {
                    capacity.to_string()
                }
            ),
        }
    }
}

/// The vault administration message for `chain` at admin nonce `nonce`, if the policy in force
/// lists one; refused otherwise, whoever asks.
pub fn vault_admin(policy: &PolicyDoc, chain: Chain, nonce: u64) -> Result<VaultAdmin, Refusal> {
    let unknown = |why: String| Refusal::permanent(rule::VAULT_ACTION_UNKNOWN, why);
    let rule = policy.chain(chain).ok_or_else(|| {
        unknown(format!(
            "the policy in force has no vault on {}",
            chain.as_str()
        ))
    })?;
    let action = rule
        .vault_actions
        .iter()
        .find(|a| a.nonce == nonce)
        .ok_or_else(|| {
            unknown(format!(
                "the policy in force lists no vault action for {} at nonce {nonce}",
                chain.as_str()
            ))
        })?;
    // The document was validated: what follows cannot fail for a policy in force.
    let invalid = |e: String| unknown(format!("the policy's vault action is not usable: {e}"));
    let kind = match (&action.rotate_key, &action.set_cap) {
        (Some(k), None) => VaultAdminKind::RotateKey(
            hex::decode(k)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| invalid("rotate_key".into()))?,
        ),
        (None, Some(c)) => {
            let (capacity, rate) = c.values().ok_or_else(|| invalid("set_cap".into()))?;
            let token = if c.token == NATIVE_TOKEN {
                evm::NATIVE
            } else {
                evm::address_bytes(chain, &c.token).map_err(|e| invalid(e.to_string()))?
            };
            VaultAdminKind::SetCap {
                token,
                capacity,
                rate,
            }
        }
        _ => return Err(invalid("neither or both of rotate_key and set_cap".into())),
    };
    Ok(VaultAdmin {
        chain,
        domain: VaultDomain {
            chain_id: rule.chain_id,
            vault: evm::address_bytes(chain, &rule.vault).map_err(|e| invalid(e.to_string()))?,
        },
        nonce,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_withdrawal_is_bound_to_the_message_its_group_signs() {
        let digest = [1u8; 32];
        // Where the group signs the intent digest itself, the binding is that digest (the
        // bindings stored before vault formats existed stay valid).
        assert_eq!(binding(&digest, &digest), digest);
        // A vault message binds too: the same intent signed for another vault (or chain id, or
        // token) is another binding, so a retry after the policy moved the vault is refused as
        // an id conflict instead of signed again.
        let for_a = binding(&digest, &[2u8; 32]);
        let for_b = binding(&digest, &[3u8; 32]);
        assert_ne!(for_a, for_b);
        assert_ne!(for_a, digest);
        assert_ne!(binding(&[4u8; 32], &[2u8; 32]), for_a);
    }
}
