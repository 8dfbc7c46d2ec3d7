//! The policy document: versioned, hash-chained, canonical.
//!
//! The canonical form is compact JSON of [`PolicyDoc`] with its fields in declaration order and
//! every list sorted and free of duplicates; [`PolicyDoc::decode`] refuses anything that does
//! not re-encode to the same bytes. The hash is SHA-256 over a domain tag and those bytes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    address::{normalize_address, Chain},
    amount::Amount,
    backend::BackendKey,
    identity::IdentityPublic,
};

/// Version of the document layout.
pub const FORMAT: u32 = 1;
/// Domain tag of the policy hash.
pub const HASH_DOMAIN: &[u8] = b"quorate-policy-v1\0";
/// Longest velocity window. The ledger keeps this much history.
pub const MAX_WINDOW_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// Shortest velocity window.
pub const MIN_WINDOW_MS: u64 = 60 * 1000;
/// Longest time-lock.
pub const MAX_TIMELOCK_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// Most admins.
pub const MAX_ADMINS: usize = 32;
/// Largest canonical document accepted.
pub const MAX_DOC_BYTES: usize = 64 * 1024 * 1024;
/// Longest whitelist label.
pub const MAX_LABEL_LEN: usize = 128;
/// Latest activation time: 9999-12-31T23:59:59Z, the last instant the TOML form (RFC 3339
/// with a four-digit year) can write, so every valid document can be shown and edited.
pub const MAX_ACTIVE_FROM_MS: u64 = 253_402_300_799_000;

/// One asset in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRule {
    /// Chain.
    pub chain: Chain,
    /// Asset symbol as in intents.
    pub asset: String,
    /// Decimals of one whole unit (18 for ETH, 8 for BTC).
    pub decimals: u8,
    /// Whether withdrawals of it may be signed.
    pub enabled: bool,
    /// Largest single withdrawal, in base units.
    pub max_per_withdrawal: Amount,
    /// Withdrawals above this amount (base units) need admin approvals.
    pub approval_threshold: Amount,
    /// How many distinct admins must approve a withdrawal above the threshold.
    pub approvals_required: u16,
    /// On a chain paid out through a vault ([`ChainRule`]): `"native"` for the chain's own
    /// coin, else the token contract's address in the chain's canonical form. Absent on other
    /// chains, and then absent from the canonical form, so older documents keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The word for a chain's own coin in [`AssetRule::token`].
pub const NATIVE_TOKEN: &str = "native";

/// A chain whose payouts go through the Quorate vault contract (`chains/evm/`): the group
/// signs the vault's own withdrawal digest, which names this chain id and vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainRule {
    /// Chain: ethereum, polygon or tron.
    pub chain: Chain,
    /// What the chain's `block.chainid` returns (1 Ethereum, 137 Polygon, 728126428 Tron).
    pub chain_id: u64,
    /// The vault contract, in the chain's canonical address form.
    pub vault: String,
    /// Administration messages for the vault that the admins approved, sorted by nonce: the
    /// group signs these and nothing else (docs/evm.md). Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vault_actions: Vec<VaultAction>,
}

/// One vault administration message the group may sign: exactly one of `rotate_key` and
/// `set_cap`, for the vault's admin nonce `nonce`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultAction {
    /// The vault's admin nonce the message is for (its `adminNonce()` when it is sent).
    pub nonce: u64,
    /// Hand the vault to this group key: 33-byte compressed SEC1, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_key: Option<String>,
    /// Set a token's on-chain cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_cap: Option<CapSetting>,
}

/// A token's on-chain cap: a bucket of `capacity` base units refilled at `refill_per_second`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapSetting {
    /// `"native"` or the token contract's address, as in [`AssetRule::token`].
    pub token: String,
    /// Base units, decimal; `"none"` removes the cap (a raise: the vault delays it).
    pub capacity: String,
    /// Base units per second, decimal.
    pub refill_per_second: String,
}

/// `u128::MAX`, the vault's "no cap".
pub const NO_CAP: &str = "none";

/// A decimal u128 in canonical form (no sign, no leading zeros).
pub fn parse_base_units(s: &str) -> Option<u128> {
    let v: u128 = s.parse().ok()?;
    (v.to_string() == s).then_some(v)
}

impl CapSetting {
    /// (capacity, refill per second) as the vault takes them.
    pub fn values(&self) -> Option<(u128, u128)> {
        let cap = if self.capacity == NO_CAP {
            u128::MAX
        } else {
            parse_base_units(&self.capacity)?
        };
        Some((cap, parse_base_units(&self.refill_per_second)?))
    }
}

/// Solana's settings (docs/solana.md): every signer builds a withdrawal's transaction from
/// these, the intent, the asset registry (`token`: `"native"` for SOL, else the SPL mint) and
/// the cluster's Ed25519 group key, which is the wallet: fee payer, source of every payout,
/// owner of its token accounts and authority of its nonce accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SolanaRule {
    /// Durable-nonce accounts whose authority is the wallet, sorted: a withdrawal names one
    /// of these and its current value (several, so withdrawals do not queue on one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nonce_accounts: Vec<String>,
    /// Whether a withdrawal may use a recent blockhash instead of a durable nonce.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_blockhash: bool,
    /// Highest compute-unit limit a withdrawal may set; 0: it may set none.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub max_compute_unit_limit: u32,
    /// Highest compute-unit price (priority fee), micro-lamports per unit; 0: none.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub max_compute_unit_price: u64,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// Most nonce accounts in [`SolanaRule::nonce_accounts`].
pub const MAX_NONCE_ACCOUNTS: usize = 256;

/// A destination withdrawals may go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhitelistEntry {
    /// Chain.
    pub chain: Chain,
    /// Address in the chain's canonical form.
    pub address: String,
    /// What it is, for people.
    pub label: String,
    /// Unix milliseconds from which withdrawals to it may be signed.
    pub active_from_ms: u64,
}

/// What a velocity limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Everything of one asset, all destinations together.
    Asset,
    /// One asset to one destination.
    Destination,
}

impl Scope {
    /// The word used in rule tags.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Asset => "asset",
            Scope::Destination => "destination",
        }
    }
}

impl From<Scope> for crate::refusal::VelocityScope {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Asset => Self::Asset,
            Scope::Destination => Self::Destination,
        }
    }
}

/// A rolling-window limit on amount and/or count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VelocityLimit {
    /// Chain.
    pub chain: Chain,
    /// Asset.
    pub asset: String,
    /// What is counted together.
    pub scope: Scope,
    /// Window length, a whole number of minutes between 1 minute and 7 days.
    pub window_ms: u64,
    /// Most base units within any window, if limited.
    pub max_amount: Option<Amount>,
    /// Most withdrawals within any window, if limited.
    pub max_count: Option<u64>,
}

impl VelocityLimit {
    /// Identity of a limit for diffs: one limit per (chain, asset, scope, window).
    pub fn key(&self) -> (Chain, &str, Scope, u64) {
        (self.chain, self.asset.as_str(), self.scope, self.window_ms)
    }
}

/// The governed policy every signer enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Layout version, [`FORMAT`].
    pub format: u32,
    /// 1 for the genesis policy, then one more for each change.
    pub version: u64,
    /// Hash of version − 1, hex; 64 zeros for the genesis policy.
    pub prev_hash: String,
    /// Asset registry, sorted by (chain, asset).
    pub assets: Vec<AssetRule>,
    /// Whitelist, sorted by (chain, address).
    pub whitelist: Vec<WhitelistEntry>,
    /// Velocity limits, sorted by (chain, asset, scope, window).
    pub velocity: Vec<VelocityLimit>,
    /// Backend public keys (compressed SEC1, hex), sorted.
    pub backend_keys: Vec<String>,
    /// Admin public keys (hex), sorted.
    pub admins: Vec<String>,
    /// Distinct admin signatures a change needs.
    pub admin_quorum: u16,
    /// How long a loosening change waits before it applies.
    pub timelock_ms: u64,
    /// Refuse every withdrawal.
    pub frozen: bool,
    /// Each signer also counts what it released itself against limit / (n − t + 1) of every
    /// per-asset velocity limit, so that even with t − 1 signers compromised and a coordinator
    /// withholding ledger notices at most the limit leaves per window (docs/policy.md). Absent
    /// from the canonical form when off, so documents without it keep their hashes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_signer_budget: bool,
    /// Chains paid out through a vault, sorted by chain. Absent from the canonical form when
    /// empty, so documents without it keep their hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainRule>,
    /// Solana's settings: with them a Solana withdrawal is a transaction the group signs.
    /// Absent from the canonical form when unset, so documents without it keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solana: Option<SolanaRule>,
    /// Signers retired from the cluster, by manifest identifier, sorted (deploy/README.md,
    /// "Removing a signer"): a refresh renews the shares without them, and no signer signs
    /// with one. Absent from the canonical form when empty, so documents without it keep
    /// their hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_signers: Vec<u16>,
}

/// A document that breaks a rule; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy: {0}")]
pub struct DocError(pub String);

fn bad(s: impl Into<String>) -> DocError {
    DocError(s.into())
}

/// The genesis `prev_hash`.
pub fn zero_hash() -> String {
    "0".repeat(64)
}

fn sorted_unique<T, K: Ord>(
    items: &[T],
    key: impl Fn(&T) -> K,
    what: &str,
) -> Result<(), DocError> {
    if items.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        Ok(())
    } else {
        Err(bad(format!("{what}: entries must be sorted and unique")))
    }
}

impl PolicyDoc {
    /// Checks every rule of the document on its own (not against a previous version).
    pub fn validate(&self) -> Result<(), DocError> {
        if self.format != FORMAT {
            return Err(bad(format!(
                "format {} is not supported (expected {FORMAT})",
                self.format
            )));
        }
        if self.version == 0 {
            return Err(bad("version starts at 1"));
        }
        let prev = hex::decode(&self.prev_hash)
            .ok()
            .filter(|b| b.len() == 32 && self.prev_hash == hex::encode(b))
            .ok_or_else(|| bad("prev_hash must be 64 lowercase hex digits"))?;
        if (self.version == 1) != prev.iter().all(|b| *b == 0) {
            return Err(bad(
                "prev_hash must be all zeros for version 1 and only for version 1",
            ));
        }
        sorted_unique(&self.retired_signers, |s| *s, "retired_signers")?;
        if self.retired_signers.first() == Some(&0) {
            return Err(bad("retired_signers: identifiers start at 1"));
        }
        sorted_unique(&self.assets, |a| (a.chain, a.asset.clone()), "assets")?;
        for a in &self.assets {
            let ctx = format!("asset {} on {}", a.asset, a.chain.as_str());
            if !crate::intent::valid_asset(&a.asset) {
                return Err(bad(format!(
                    "{ctx}: symbol must be upper-case letters and digits, as in intents"
                )));
            }
            if a.decimals > 38 {
                return Err(bad(format!("{ctx}: decimals must be at most 38")));
            }
            if a.approvals_required as usize > self.admins.len() {
                return Err(bad(format!(
                    "{ctx}: approvals_required {} exceeds the {} admins",
                    a.approvals_required,
                    self.admins.len()
                )));
            }
            if a.approval_threshold < a.max_per_withdrawal && a.approvals_required == 0 {
                return Err(bad(format!(
                    "{ctx}: withdrawals above the approval threshold need at least one approval"
                )));
            }
        }
        self.validate_chains()?;
        sorted_unique(
            &self.whitelist,
            |w| (w.chain, w.address.clone()),
            "whitelist",
        )?;
        for w in &self.whitelist {
            match normalize_address(w.chain, &w.address) {
                Ok(n) if n == w.address => {}
                Ok(n) => {
                    return Err(bad(format!(
                        "whitelist: {} is not in canonical form (expected {n})",
                        w.address
                    )))
                }
                Err(e) => return Err(bad(format!("whitelist: {e}"))),
            }
            if w.label.len() > MAX_LABEL_LEN || w.label.chars().any(char::is_control) {
                return Err(bad(format!(
                    "whitelist {}: label must be at most {MAX_LABEL_LEN} bytes without control characters",
                    w.address
                )));
            }
            if w.active_from_ms > MAX_ACTIVE_FROM_MS {
                return Err(bad(format!(
                    "whitelist {}: active_from_ms must be at most {MAX_ACTIVE_FROM_MS} (9999-12-31T23:59:59Z)",
                    w.address
                )));
            }
        }
        sorted_unique(
            &self.velocity,
            |v| (v.chain, v.asset.clone(), v.scope, v.window_ms),
            "velocity",
        )?;
        for v in &self.velocity {
            let ctx = format!(
                "velocity {} {} {}",
                v.chain.as_str(),
                v.asset,
                v.scope.as_str()
            );
            if !self
                .assets
                .iter()
                .any(|a| a.chain == v.chain && a.asset == v.asset)
            {
                return Err(bad(format!("{ctx}: asset is not in the registry")));
            }
            if v.window_ms < MIN_WINDOW_MS
                || v.window_ms > MAX_WINDOW_MS
                || v.window_ms % MIN_WINDOW_MS != 0
            {
                return Err(bad(format!(
                    "{ctx}: window must be a whole number of minutes from 1 minute to 7 days"
                )));
            }
            if v.max_amount.is_none() && v.max_count.is_none() {
                return Err(bad(format!("{ctx}: set max_amount, max_count or both")));
            }
        }
        sorted_unique(&self.backend_keys, Clone::clone, "backend_keys")?;
        for k in &self.backend_keys {
            let key = hex::decode(k)
                .ok()
                .and_then(|b| BackendKey::from_sec1(&b).ok())
                .ok_or_else(|| bad(format!("backend key {k}: not a secp256k1 public key")))?;
            if hex::encode(key.to_sec1()) != *k {
                return Err(bad(format!(
                    "backend key {k}: write it compressed, in lowercase hex"
                )));
            }
        }
        sorted_unique(&self.admins, Clone::clone, "admins")?;
        if self.admins.is_empty() || self.admins.len() > MAX_ADMINS {
            return Err(bad(format!("admins: 1..={MAX_ADMINS} keys")));
        }
        for k in &self.admins {
            let key =
                IdentityPublic::from_hex(k).map_err(|_| bad(format!("admin key {k}: invalid")))?;
            if key.to_string() != *k {
                return Err(bad(format!("admin key {k}: write it in lowercase hex")));
            }
        }
        if self.admin_quorum == 0 || usize::from(self.admin_quorum) > self.admins.len() {
            return Err(bad(format!(
                "admin_quorum {} must be between 1 and the number of admins ({})",
                self.admin_quorum,
                self.admins.len()
            )));
        }
        if self.timelock_ms > MAX_TIMELOCK_MS {
            return Err(bad("timelock: at most 30 days"));
        }
        Ok(())
    }

    fn validate_chains(&self) -> Result<(), DocError> {
        sorted_unique(&self.chains, |c| c.chain, "chains")?;
        // One chain id per chain: a signature for one chain's vault must never pay on another.
        let ids: BTreeSet<u64> = self.chains.iter().map(|c| c.chain_id).collect();
        if ids.len() != self.chains.len() {
            return Err(bad("chains: two chains share a chain_id"));
        }
        for c in &self.chains {
            let ctx = format!("chain {}", c.chain.as_str());
            if !crate::chains::evm::is_evm(c.chain) {
                return Err(bad(format!(
                    "{ctx}: only ethereum, polygon and tron pay out through the vault contract"
                )));
            }
            if c.chain_id == 0 {
                return Err(bad(format!(
                    "{ctx}: chain_id must be the chain's block.chainid, not 0"
                )));
            }
            canonical(c.chain, &c.vault).map_err(|e| bad(format!("{ctx}: vault {e}")))?;
            sorted_unique(
                &c.vault_actions,
                |a| a.nonce,
                &format!("{ctx}: vault_actions"),
            )?;
            for a in &c.vault_actions {
                let ctx = format!("{ctx}: vault action at nonce {}", a.nonce);
                match (&a.rotate_key, &a.set_cap) {
                    (Some(k), None) => {
                        let ok = hex::decode(k).ok().is_some_and(|b| {
                            b.len() == 33
                                && matches!(b[0], 2 | 3)
                                && *k == hex::encode(&b)
                                && k256::PublicKey::from_sec1_bytes(&b).is_ok()
                        });
                        if !ok {
                            return Err(bad(format!(
                                "{ctx}: rotate_key must be a 33-byte compressed secp256k1 key in lowercase hex"
                            )));
                        }
                    }
                    (None, Some(cap)) => {
                        if cap.token != NATIVE_TOKEN {
                            canonical(c.chain, &cap.token)
                                .map_err(|e| bad(format!("{ctx}: token {e}")))?;
                        }
                        if cap.values().is_none() {
                            return Err(bad(format!(
                                "{ctx}: capacity and refill_per_second are base units in plain decimal (capacity may be \"{NO_CAP}\")"
                            )));
                        }
                    }
                    _ => {
                        return Err(bad(format!(
                            "{ctx}: name exactly one of rotate_key and set_cap"
                        )))
                    }
                }
            }
        }
        self.validate_solana()?;
        let mut tokens = BTreeSet::new();
        for a in &self.assets {
            let ctx = format!("asset {} on {}", a.asset, a.chain.as_str());
            let solana = a.chain == Chain::Solana && self.solana.is_some();
            match (self.chain(a.chain).is_some() || solana, &a.token) {
                (true, None) => {
                    return Err(bad(format!(
                        "{ctx}: the chain's payouts are built from the policy, so name its token: \"{NATIVE_TOKEN}\" or the token's contract (mint on Solana)"
                    )))
                }
                (false, Some(_)) => {
                    return Err(bad(format!(
                        "{ctx}: token is set but the chain has no vault in [[chains]] (or no [solana] section)"
                    )))
                }
                (true, Some(t)) if t != NATIVE_TOKEN => {
                    canonical(a.chain, t).map_err(|e| bad(format!("{ctx}: token {e}")))?;
                }
                _ => {}
            }
            // Two symbols for one token would split its limits in two.
            if let Some(t) = &a.token {
                if !tokens.insert((a.chain, t.as_str())) {
                    return Err(bad(format!(
                        "{ctx}: token {t} is already registered under another symbol"
                    )));
                }
            }
        }
        Ok(())
    }

    fn validate_solana(&self) -> Result<(), DocError> {
        use crate::chains::solana;
        let Some(s) = &self.solana else {
            return Ok(());
        };
        let ctx = "solana";
        sorted_unique(&s.nonce_accounts, |a| a.clone(), "solana: nonce_accounts")?;
        if s.nonce_accounts.len() > MAX_NONCE_ACCOUNTS {
            return Err(bad(format!(
                "{ctx}: at most {MAX_NONCE_ACCOUNTS} nonce accounts"
            )));
        }
        for a in &s.nonce_accounts {
            canonical(Chain::Solana, a).map_err(|e| bad(format!("{ctx}: nonce account {e}")))?;
        }
        if s.nonce_accounts.is_empty() && !s.allow_blockhash {
            return Err(bad(format!(
                "{ctx}: list nonce_accounts or set allow_blockhash, or no withdrawal can be signed"
            )));
        }
        // Destinations are wallets: a token payout goes to the owner's associated token
        // account, which makes sense only for an owner a key pair controls (on the curve).
        for w in self.whitelist.iter().filter(|w| w.chain == Chain::Solana) {
            let on = solana::address_bytes(&w.address).is_ok_and(|k| solana::on_curve(&k));
            if !on {
                return Err(bad(format!(
                    "whitelist {}: a Solana destination must be a wallet address (on the Ed25519 curve), not a program-derived or token account",
                    w.address
                )));
            }
        }
        Ok(())
    }

    /// The vault settings of `chain`, if it pays out through one.
    pub fn chain(&self, chain: Chain) -> Option<&ChainRule> {
        self.chains.iter().find(|c| c.chain == chain)
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain structs, strings and integers to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| unreachable!("plain data serialises"))
    }

    /// Decodes and validates canonical bytes; anything else is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, DocError> {
        if bytes.len() > MAX_DOC_BYTES {
            return Err(bad("document too large"));
        }
        let doc: PolicyDoc = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not a policy document: {e}")))?;
        doc.validate()?;
        if doc.encode() != bytes {
            return Err(bad("document is not in canonical form"));
        }
        Ok(doc)
    }

    /// SHA-256 over the domain tag and the canonical bytes.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(HASH_DOMAIN);
        h.update(self.encode());
        h.finalize().into()
    }

    /// Lowercase hex of [`PolicyDoc::hash`].
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash())
    }

    /// The asset rule for (chain, asset).
    pub fn asset(&self, chain: Chain, asset: &str) -> Option<&AssetRule> {
        self.assets
            .binary_search_by(|a| (a.chain, a.asset.as_str()).cmp(&(chain, asset)))
            .ok()
            .map(|i| &self.assets[i])
    }

    /// The whitelist entry for (chain, canonical address).
    pub fn whitelisted(&self, chain: Chain, address: &str) -> Option<&WhitelistEntry> {
        self.whitelist
            .binary_search_by(|w| (w.chain, w.address.as_str()).cmp(&(chain, address)))
            .ok()
            .map(|i| &self.whitelist[i])
    }

    /// Parsed backend keys.
    pub fn backend_keys(&self) -> Vec<BackendKey> {
        self.backend_keys
            .iter()
            .filter_map(|k| hex::decode(k).ok())
            .filter_map(|b| BackendKey::from_sec1(&b).ok())
            .collect()
    }

    /// Parsed admin keys.
    pub fn admin_keys(&self) -> BTreeSet<IdentityPublic> {
        self.admins
            .iter()
            .filter_map(|k| IdentityPublic::from_hex(k).ok())
            .collect()
    }
}

/// Checks that `address` is a valid address of `chain` in canonical form.
fn canonical(chain: Chain, address: &str) -> Result<(), String> {
    match normalize_address(chain, address) {
        Ok(n) if n == address => Ok(()),
        Ok(n) => Err(format!("{address} is not in canonical form (expected {n})")),
        Err(e) => Err(e.to_string()),
    }
}

/// Formats a window for rule tags and people: `90s` never occurs, `30m`, `1h`, `24h`, `7d`.
pub fn window_label(ms: u64) -> String {
    const H: u64 = 3_600_000;
    if ms.is_multiple_of(24 * H) && ms > 24 * H {
        format!("{}d", ms / (24 * H))
    } else if ms.is_multiple_of(H) {
        format!("{}h", ms / H)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}
