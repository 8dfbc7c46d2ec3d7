//! What the group signs for an intent, and what a backend sends to the chain afterwards.
//!
//! The format comes from the governed policy in force, never from a request: a chain listed in
//! the policy's `chains` pays out through the vault contract, so the group signs the vault's
//! withdrawal digest ([`crate::chains::evm`]); Solana, with the policy's `solana` section, is a
//! transaction message every signer builds itself ([`crate::chains::solana`]) and the group's
//! Ed25519 key signs; any other chain signs the SHA-256 intent digest.
//! Signer and coordinator both call only [`chain_format`] and [`signing_message`].

use crate::{
    address::Chain,
    chains::{
        evm::{self, Address20, VaultDomain, VaultWithdrawal},
        solana,
    },
    intent::WithdrawalIntent,
    policy::{PolicyDoc, SolanaRule, NATIVE_TOKEN},
    refusal::{Refusal, Rule},
};

pub use crate::scheme::Scheme;

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
    /// A Solana transaction message, signed by the Ed25519 group.
    Solana(solana::Transfer),
}

impl ChainFormat {
    /// The key group that signs in this format.
    pub fn scheme(&self) -> Scheme {
        match self {
            ChainFormat::Solana(_) => Scheme::Ed25519,
            _ => Scheme::Secp256k1,
        }
    }
}

/// The format `policy` prescribes for `intent`. Refuses an asset the policy does not register
/// on a chain with a vault (the same rule the policy evaluation would name).
pub fn chain_format(policy: &PolicyDoc, intent: &WithdrawalIntent) -> Result<ChainFormat, Refusal> {
    chain_format_for(policy, intent, None)
}

/// [`chain_format`] for a cluster whose Ed25519 group key, the Solana wallet, is
/// `solana_wallet`: without it a Solana withdrawal is refused ([`Rule::NoKeyShare`]).
pub fn chain_format_for(
    policy: &PolicyDoc,
    intent: &WithdrawalIntent,
    solana_wallet: Option<&solana::Pubkey>,
) -> Result<ChainFormat, Refusal> {
    format_with(policy, intent, solana_wallet, true)
}

/// The format the group signed `intent` in, to check a signature made earlier (a ledger
/// notice): as [`chain_format_for`], except that Solana terms are not judged against the
/// pool and caps of the policy now in force (a tightening since must not make the signature
/// of a withdrawal signed before it unverifiable, and so uncounted).
pub fn signed_chain_format(
    policy: &PolicyDoc,
    intent: &WithdrawalIntent,
    solana_wallet: Option<&solana::Pubkey>,
) -> Result<ChainFormat, Refusal> {
    format_with(policy, intent, solana_wallet, false)
}

fn format_with(
    policy: &PolicyDoc,
    intent: &WithdrawalIntent,
    solana_wallet: Option<&solana::Pubkey>,
    judge_terms: bool,
) -> Result<ChainFormat, Refusal> {
    if let (Chain::Solana, Some(rule)) = (intent.chain, &policy.solana) {
        let wallet = solana_wallet.ok_or_else(|| {
            Refusal::temporary(
                Rule::NoKeyShare,
                "a Solana withdrawal is signed by the ed25519 group, which this cluster does not hold yet; run DKG for ed25519",
            )
        })?;
        return solana_transfer(policy, rule, intent, wallet, judge_terms).map(ChainFormat::Solana);
    }
    let Some(rule) = policy.chain(intent.chain) else {
        return Ok(ChainFormat::IntentDigest);
    };
    let unknown = || {
        Refusal::permanent(
            Rule::PolicyAssetUnknown,
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
            Rule::PolicyMissing,
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

/// The Solana payout `intent` asks for, built from the intent and the policy only; refused
/// with [`Rule::SolanaTerms`] where its terms are missing or outside the policy.
fn solana_transfer(
    policy: &PolicyDoc,
    rule: &SolanaRule,
    intent: &WithdrawalIntent,
    wallet: &solana::Pubkey,
    judge_terms: bool,
) -> Result<solana::Transfer, Refusal> {
    let terms_refusal = |why: String| Refusal::permanent(Rule::SolanaTerms, why);
    let terms = intent.solana.ok_or_else(|| {
        terms_refusal(
            "a Solana withdrawal needs intent version 2 with a durable nonce or a recent blockhash"
                .into(),
        )
    })?;
    let (token, decimals) = policy
        .asset(intent.chain, &intent.asset)
        .and_then(|a| Some((a.token.as_deref()?, a.decimals)))
        .ok_or_else(|| {
            Refusal::permanent(
                Rule::PolicyAssetUnknown,
                format!(
                    "asset {} on solana is not in the policy's registry",
                    intent.asset
                ),
            )
        })?;
    // The policy document was validated: its addresses parse.
    let invalid = |e: String| {
        Refusal::permanent(
            Rule::PolicyMissing,
            format!("the policy's Solana settings are not usable: {e}"),
        )
    };
    let asset = match token {
        NATIVE_TOKEN => solana::Asset::Sol,
        mint => solana::Asset::Spl {
            mint: solana::address_bytes(mint).map_err(invalid)?,
            decimals,
        },
    };
    let destination = solana::address_bytes(&intent.destination).map_err(terms_refusal)?;
    if !solana::on_curve(&destination) {
        return Err(terms_refusal(format!(
            "destination {} is off the Ed25519 curve: a program-derived or token account, not a wallet; name the owner's wallet address",
            intent.destination
        )));
    }
    let amount = u64::try_from(intent.amount.get())
        .map_err(|_| terms_refusal("amount: a Solana amount fits in 64 bits".into()))?;
    let transfer = solana::Transfer {
        wallet: *wallet,
        destination,
        amount,
        asset,
        create_destination_account: terms.create_destination_account,
        lifetime: terms.lifetime,
        compute: terms.compute,
    };
    if !judge_terms {
        return Ok(transfer);
    }
    match terms.lifetime {
        solana::Lifetime::DurableNonce { account, .. } => {
            let name = solana::address_text(&account);
            if !rule.nonce_accounts.contains(&name) {
                return Err(terms_refusal(format!(
                    "nonce account {name} is not in the policy's pool"
                )));
            }
        }
        solana::Lifetime::Blockhash(_) if !rule.allow_blockhash => {
            return Err(terms_refusal(
                "the policy allows durable nonces only, not a recent blockhash".into(),
            ));
        }
        solana::Lifetime::Blockhash(_) => {}
    }
    if let Some(l) = terms.compute.unit_limit {
        if l > rule.max_compute_unit_limit {
            return Err(terms_refusal(format!(
                "compute-unit limit {l} is over the policy's cap of {}",
                rule.max_compute_unit_limit
            )));
        }
    }
    if let Some(p) = terms.compute.unit_price {
        if p > rule.max_compute_unit_price {
            return Err(terms_refusal(format!(
                "compute-unit price {p} micro-lamports is over the policy's cap of {}",
                rule.max_compute_unit_price
            )));
        }
    }
    if terms.create_destination_account && asset == solana::Asset::Sol {
        return Err(terms_refusal(
            "create_destination_account is for tokens; SOL needs no token account".into(),
        ));
    }
    Ok(transfer)
}

/// Domain of an admin's request to void a Solana durable nonce (signed over the nonce account
/// and the nonce value).
pub const SOLANA_VOID_DOMAIN: &str = "quorate-solana-void-v1";

/// The message that voids every transaction signed with `nonce` of nonce account `account`
/// (it only advances the nonce, paid by `wallet`), if the policy in force allows it: the
/// account is in its pool, and an admin of it asks (`approval`). One admin suffices, as for a
/// freeze: a void moves no coin.
pub fn solana_void(
    policy: &PolicyDoc,
    wallet: &solana::Pubkey,
    account: &solana::Pubkey,
    nonce: &[u8; 32],
    approval: &crate::policy::AdminSignature,
) -> Result<Vec<u8>, Refusal> {
    let name = solana::address_text(account);
    let pooled = policy
        .solana
        .as_ref()
        .is_some_and(|s| s.nonce_accounts.contains(&name));
    if !pooled {
        return Err(Refusal::permanent(
            Rule::SolanaTerms,
            format!("nonce account {name} is not in the policy's pool: there is nothing to void"),
        ));
    }
    let approved = crate::policy::eval::distinct_valid(
        &policy.admin_keys(),
        SOLANA_VOID_DOMAIN,
        &[account, nonce],
        std::slice::from_ref(approval),
    );
    if approved == 0 {
        return Err(Refusal::permanent(
            Rule::SolanaVoidUnapproved,
            "a void needs the signature of an admin of the policy in force over the nonce account and value",
        ));
    }
    Ok(solana::void_message(wallet, account, nonce))
}

/// The signed transaction, ready for `sendTransaction`, where the format is a Solana one.
pub fn solana_transaction(
    format: ChainFormat,
    message: &[u8],
    signature: &[u8],
) -> Option<Vec<u8>> {
    match format {
        ChainFormat::Solana(_) => Some(solana::transaction(message, signature.try_into().ok()?)),
        _ => None,
    }
}

fn vault_withdrawal(
    intent: &WithdrawalIntent,
    token: Address20,
) -> Result<VaultWithdrawal, Refusal> {
    VaultWithdrawal::from_intent(intent, token).map_err(|e| {
        Refusal::permanent(
            Rule::IntentMalformed,
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
        ChainFormat::Solana(t) => Ok(t.message()),
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
        ChainFormat::IntentDigest | ChainFormat::Solana(_) => Ok(None),
        ChainFormat::EvmVault { domain, token } => {
            let w = vault_withdrawal(intent, token)?;
            let data = evm::withdraw_calldata(&w, signature).map_err(|e| {
                Refusal::permanent(Rule::IntentMalformed, format!("vault call: {e}"))
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
        .map_err(|e| Refusal::permanent(Rule::VaultActionUnknown, format!("vault call: {e}")))?;
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
    let unknown = |why: String| Refusal::permanent(Rule::VaultActionUnknown, why);
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
