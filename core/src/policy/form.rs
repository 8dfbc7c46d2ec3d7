//! The human-editable policy: TOML with amounts in whole units of the asset (`"10"`,
//! `"0.25"`), windows and time-locks as durations (`"24h"`, `"10m"`, `"7d"`), activation times
//! as RFC 3339 UTC (`"2026-12-01T09:00:00Z"`), and addresses in any form the chain accepts.
//! [`PolicyForm::to_doc`] turns it into the canonical document (normalised, sorted,
//! validated); [`PolicyForm::from_doc`] goes back, so `admin show --toml` output can be edited
//! and proposed again.

use serde::{Deserialize, Serialize};

use crate::{
    address::{normalize_address, Chain},
    amount::Amount,
    identity::IdentityPublic,
};

use super::{
    doc::{
        window_label, AssetRule, ChainRule, DocError, PolicyDoc, Scope, SolanaRule, VaultAction,
        VelocityLimit, WhitelistEntry, FORMAT, NATIVE_TOKEN,
    },
    eval::format_units,
};

/// The TOML form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyForm {
    /// Distinct admin signatures a change needs.
    pub admin_quorum: u16,
    /// Admin public keys, hex.
    pub admins: Vec<String>,
    /// Backend public keys, hex (compressed or uncompressed SEC1).
    pub backend_keys: Vec<String>,
    /// How long loosening changes wait, e.g. `"24h"`.
    pub timelock: String,
    /// Refuse every withdrawal.
    #[serde(default)]
    pub frozen: bool,
    /// Each signer counts its own releases against limit / (n − t + 1) (docs/policy.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_signer_budget: bool,
    /// Asset registry.
    #[serde(default)]
    pub assets: Vec<AssetForm>,
    /// Whitelist.
    #[serde(default)]
    pub whitelist: Vec<WhitelistForm>,
    /// Velocity limits.
    #[serde(default)]
    pub velocity: Vec<VelocityForm>,
    /// Chains paid out through the vault contract.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainForm>,
    /// Solana's settings (docs/solana.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solana: Option<SolanaRule>,
    /// Signers retired from the cluster, by manifest identifier (deploy/README.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_signers: Vec<u16>,
}

/// A chain paid out through the vault contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainForm {
    /// Chain name: ethereum, polygon or tron.
    pub chain: String,
    /// The chain's `block.chainid`.
    pub chain_id: u64,
    /// The vault contract's address, in any accepted form.
    pub vault: String,
    /// Vault administration messages the group may sign (docs/evm.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vault_actions: Vec<VaultAction>,
}

/// An asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetForm {
    /// Chain name, e.g. `ethereum`.
    pub chain: String,
    /// Symbol, e.g. `ETH`.
    pub asset: String,
    /// Decimals of a whole unit.
    pub decimals: u8,
    /// Whether it may move.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Largest single withdrawal, whole units.
    pub max_per_withdrawal: String,
    /// Above this (whole units), admin approvals are needed.
    pub approval_threshold: String,
    /// How many.
    pub approvals_required: u16,
    /// On a chain with a vault: `"native"` or the token contract's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

fn yes() -> bool {
    true
}

/// A whitelist entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhitelistForm {
    /// Chain name.
    pub chain: String,
    /// Address in any accepted form.
    pub address: String,
    /// What it is.
    pub label: String,
    /// RFC 3339 UTC time from which it may receive; absent means at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<String>,
}

/// A velocity limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VelocityForm {
    /// Chain name.
    pub chain: String,
    /// Symbol.
    pub asset: String,
    /// `asset` (all destinations together) or `destination` (each destination).
    pub scope: Scope,
    /// Window, e.g. `"1h"`, `"24h"`.
    pub window: String,
    /// Most whole units per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<String>,
    /// Most withdrawals per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
}

fn bad(s: impl Into<String>) -> DocError {
    DocError(s.into())
}

/// Parses `"<n><unit>"` with unit `s`, `m`, `h` or `d` into milliseconds.
pub fn parse_duration(s: &str) -> Result<u64, DocError> {
    let err = || {
        bad(format!(
            "duration {s:?}: write a whole number and s, m, h or d, e.g. \"24h\""
        ))
    };
    let unit = s.chars().last().ok_or_else(err)?;
    let digits = &s[..s.len() - unit.len_utf8()];
    // `u64::from_str` alone would also take a leading `+`.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let n: u64 = digits.parse().map_err(|_| err())?;
    let ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return Err(err()),
    };
    n.checked_mul(ms).ok_or_else(err)
}

/// Parses whole units (`"10"`, `"0.25"`) into base units with `decimals`.
pub fn parse_units(s: &str, decimals: u8) -> Result<u128, DocError> {
    let err = |why: &str| bad(format!("amount {s:?}: {why}"));
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("write whole units as digits, e.g. \"10\" or \"0.25\""));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (s.contains('.') && frac.is_empty()) {
        return Err(err("write whole units as digits, e.g. \"10\" or \"0.25\""));
    }
    if frac.len() > usize::from(decimals) {
        return Err(err(&format!("more than {decimals} decimals")));
    }
    let digits = format!("{whole}{frac:0<width$}", width = usize::from(decimals));
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    digits
        .parse::<u128>()
        .map_err(|_| err("too large for 128 bits of base units"))
}

fn nonzero(v: u128, what: &str) -> Result<Amount, DocError> {
    Amount::new(v).map_err(|_| bad(format!("{what} must be greater than zero")))
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` into unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Result<u64, DocError> {
    let err = || {
        bad(format!(
            "time {s:?}: write it as UTC, e.g. \"2026-12-01T09:00:00Z\""
        ))
    };
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return Err(err());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, DocError> {
        // Digits only: `u32::from_str` alone would also take a leading `+` ("2026-+1-01…").
        if !b[r.clone()].iter().all(u8::is_ascii_digit) {
            return Err(err());
        }
        s[r].parse::<u32>().map(i64::from).map_err(|_| err())
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let month_days = [
        31,
        28 + i64::from((y % 4 == 0 && y % 100 != 0) || y % 400 == 0),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if y < 1970
        || !(1..=12).contains(&mo)
        || d < 1
        || d > month_days[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || se > 59
    {
        return Err(err());
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se;
    u64::try_from(secs * 1000).map_err(|_| err())
}

/// Formats unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (sub-second part dropped).
pub fn format_rfc3339(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn chain(s: &str) -> Result<Chain, DocError> {
    s.parse()
        .map_err(|e: crate::address::UnknownChain| bad(e.to_string()))
}

impl PolicyForm {
    /// Parses the TOML text.
    pub fn parse(text: &str) -> Result<Self, DocError> {
        toml::from_str(text).map_err(|e| bad(e.to_string()))
    }

    /// TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|_| unreachable!("plain data serialises"))
    }

    /// The canonical document with this version and prev hash.
    pub fn to_doc(&self, version: u64, prev_hash: &str) -> Result<PolicyDoc, DocError> {
        let mut assets = Vec::new();
        for a in &self.assets {
            let ctx = |e: DocError| bad(format!("asset {} on {}: {}", a.asset, a.chain, e.0));
            let max = parse_units(&a.max_per_withdrawal, a.decimals).map_err(ctx)?;
            let thr = parse_units(&a.approval_threshold, a.decimals).map_err(ctx)?;
            assets.push(AssetRule {
                chain: chain(&a.chain)?,
                asset: a.asset.clone(),
                decimals: a.decimals,
                enabled: a.enabled,
                max_per_withdrawal: nonzero(max, "max_per_withdrawal").map_err(ctx)?,
                approval_threshold: nonzero(thr, "approval_threshold").map_err(ctx)?,
                approvals_required: a.approvals_required,
                token: a
                    .token
                    .as_deref()
                    .map(|t| token_text(chain(&a.chain)?, t))
                    .transpose()
                    .map_err(ctx)?,
            });
        }
        assets.sort_by(|x, y| (x.chain, &x.asset).cmp(&(y.chain, &y.asset)));
        let decimals = |c: Chain, asset: &str| {
            assets
                .iter()
                .find(|a| a.chain == c && a.asset == asset)
                .map(|a| a.decimals)
                .ok_or_else(|| {
                    bad(format!(
                        "velocity: asset {asset} on {} is not in [[assets]]",
                        c.as_str()
                    ))
                })
        };
        let mut whitelist = Vec::new();
        for w in &self.whitelist {
            let c = chain(&w.chain)?;
            whitelist.push(WhitelistEntry {
                chain: c,
                address: normalize_address(c, &w.address)
                    .map_err(|e| bad(format!("whitelist {}: {e}", w.address)))?,
                label: w.label.clone(),
                active_from_ms: w
                    .active_from
                    .as_deref()
                    .map(parse_rfc3339)
                    .transpose()?
                    .unwrap_or(0),
            });
        }
        whitelist.sort_by(|x, y| (x.chain, &x.address).cmp(&(y.chain, &y.address)));
        let mut velocity = Vec::new();
        for v in &self.velocity {
            let c = chain(&v.chain)?;
            let d = decimals(c, &v.asset)?;
            velocity.push(VelocityLimit {
                chain: c,
                asset: v.asset.clone(),
                scope: v.scope,
                window_ms: parse_duration(&v.window)?,
                max_amount: v
                    .max_amount
                    .as_deref()
                    .map(|m| parse_units(m, d).and_then(|u| nonzero(u, "max_amount")))
                    .transpose()?,
                max_count: v.max_count,
            });
        }
        velocity.sort_by(|x, y| x.key().cmp(&y.key()));
        let mut backend_keys = Vec::new();
        for k in &self.backend_keys {
            let key = hex::decode(k)
                .ok()
                .and_then(|b| crate::backend::BackendKey::from_sec1(&b).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "backend key {k}: not a secp256k1 public key in hex"
                    ))
                })?;
            backend_keys.push(hex::encode(key.to_sec1()));
        }
        backend_keys.sort();
        let mut admins = Vec::new();
        for k in &self.admins {
            admins.push(
                IdentityPublic::from_hex(k)
                    .map_err(|_| bad(format!("admin key {k}: not a 33-byte public key in hex")))?
                    .to_string(),
            );
        }
        admins.sort();
        let mut chains = Vec::new();
        for c in &self.chains {
            let ch = chain(&c.chain)?;
            chains.push(ChainRule {
                chain: ch,
                chain_id: c.chain_id,
                vault: normalize_address(ch, &c.vault)
                    .map_err(|e| bad(format!("chain {}: vault {e}", c.chain)))?,
                vault_actions: {
                    let mut v = Vec::new();
                    for a in &c.vault_actions {
                        let mut a = a.clone();
                        // Written the way the document wants them: lowercase keys, canonical
                        // token addresses.
                        a.rotate_key = a.rotate_key.map(|k| k.to_ascii_lowercase());
                        if let Some(cap) = a.set_cap.as_mut() {
                            cap.token = token_text(ch, &cap.token).map_err(|e| {
                                bad(format!(
                                    "chain {}: vault action {}: {}",
                                    c.chain, a.nonce, e.0
                                ))
                            })?;
                        }
                        v.push(a);
                    }
                    v.sort_by_key(|a| a.nonce);
                    v
                },
            });
        }
        chains.sort_by_key(|c| c.chain);
        let doc = PolicyDoc {
            format: FORMAT,
            version,
            prev_hash: prev_hash.to_string(),
            assets,
            whitelist,
            velocity,
            backend_keys,
            admins,
            admin_quorum: self.admin_quorum,
            timelock_ms: parse_duration(&self.timelock)?,
            frozen: self.frozen,
            per_signer_budget: self.per_signer_budget,
            chains,
            solana: self.solana.clone().map(|mut s| {
                s.nonce_accounts.sort();
                s
            }),
            retired_signers: {
                let mut r = self.retired_signers.clone();
                r.sort_unstable();
                r
            },
        };
        doc.validate()?;
        Ok(doc)
    }

    /// The editable form of a document.
    pub fn from_doc(doc: &PolicyDoc) -> Self {
        let decimals = |c: Chain, asset: &str| doc.asset(c, asset).map_or(0, |a| a.decimals);
        Self {
            admin_quorum: doc.admin_quorum,
            admins: doc.admins.clone(),
            backend_keys: doc.backend_keys.clone(),
            timelock: duration_text(doc.timelock_ms),
            frozen: doc.frozen,
            per_signer_budget: doc.per_signer_budget,
            assets: doc
                .assets
                .iter()
                .map(|a| AssetForm {
                    chain: a.chain.as_str().into(),
                    asset: a.asset.clone(),
                    decimals: a.decimals,
                    enabled: a.enabled,
                    max_per_withdrawal: format_units(a.max_per_withdrawal.get(), a.decimals),
                    approval_threshold: format_units(a.approval_threshold.get(), a.decimals),
                    approvals_required: a.approvals_required,
                    token: a.token.clone(),
                })
                .collect(),
            whitelist: doc
                .whitelist
                .iter()
                .map(|w| WhitelistForm {
                    chain: w.chain.as_str().into(),
                    address: w.address.clone(),
                    label: w.label.clone(),
                    active_from: (w.active_from_ms > 0).then(|| format_rfc3339(w.active_from_ms)),
                })
                .collect(),
            velocity: doc
                .velocity
                .iter()
                .map(|v| VelocityForm {
                    chain: v.chain.as_str().into(),
                    asset: v.asset.clone(),
                    scope: v.scope,
                    window: window_label(v.window_ms),
                    max_amount: v
                        .max_amount
                        .map(|m| format_units(m.get(), decimals(v.chain, &v.asset))),
                    max_count: v.max_count,
                })
                .collect(),
            chains: doc
                .chains
                .iter()
                .map(|c| ChainForm {
                    chain: c.chain.as_str().into(),
                    chain_id: c.chain_id,
                    vault: c.vault.clone(),
                    vault_actions: c.vault_actions.clone(),
                })
                .collect(),
            solana: doc.solana.clone(),
            retired_signers: doc.retired_signers.clone(),
        }
    }
}

/// `native`, or a token contract's address normalised for `chain`.
fn token_text(chain: Chain, token: &str) -> Result<String, DocError> {
    if token == NATIVE_TOKEN {
        return Ok(token.into());
    }
    normalize_address(chain, token).map_err(|e| bad(format!("token {e}")))
}

fn duration_text(ms: u64) -> String {
    if ms == 0 {
        "0s".into()
    } else if ms.is_multiple_of(86_400_000) {
        format!("{}d", ms / 86_400_000)
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms.div_ceil(1000))
    }
}
