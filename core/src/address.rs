//! Chains and destination addresses: validated and normalised per chain, so that comparing two
//! addresses (with a whitelist, say) is comparing two canonical strings.

use std::{fmt, str::FromStr};

use sha2::{Digest, Sha256};
use sha3::Keccak256;

/// Longest address text looked at; anything longer is refused before decoding.
pub const MAX_ADDRESS_LEN: usize = 128;

/// A supported chain.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Chain {
    /// Ethereum mainnet.
    Ethereum,
    /// Polygon PoS.
    Polygon,
    /// Bitcoin mainnet (segwit addresses, `bc1…`).
    Bitcoin,
    /// Bitcoin testnet (segwit addresses, `tb1…`).
    BitcoinTestnet,
    /// Tron.
    Tron,
    /// Solana.
    Solana,
}

impl Chain {
    /// Every chain, in code order.
    pub const ALL: [Chain; 6] = [
        Chain::Ethereum,
        Chain::Polygon,
        Chain::Bitcoin,
        Chain::BitcoinTestnet,
        Chain::Tron,
        Chain::Solana,
    ];

    /// The chain's name on the wire and in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Chain::Ethereum => "ethereum",
            Chain::Polygon => "polygon",
            Chain::Bitcoin => "bitcoin",
            Chain::BitcoinTestnet => "bitcoin-testnet",
            Chain::Tron => "tron",
            Chain::Solana => "solana",
        }
    }

    /// Stable code used in the canonical intent encoding.
    pub fn code(self) -> u8 {
        match self {
            Chain::Ethereum => 1,
            Chain::Polygon => 2,
            Chain::Bitcoin => 3,
            Chain::BitcoinTestnet => 4,
            Chain::Tron => 5,
            Chain::Solana => 6,
        }
    }

    /// The chain with this code.
    pub fn from_code(code: u8) -> Option<Chain> {
        Chain::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown chain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown chain `{0}`; supported: ethereum, polygon, bitcoin, bitcoin-testnet, tron, solana"
)]
pub struct UnknownChain(pub String);

impl FromStr for Chain {
    type Err = UnknownChain;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Chain::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownChain(s.chars().take(32).collect()))
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Empty or longer than [`MAX_ADDRESS_LEN`].
    #[error("{chain} address must be 1..={MAX_ADDRESS_LEN} characters")]
    Length {
        /// Chain.
        chain: Chain,
    },
    /// Not the chain's format.
    #[error("{chain} address: {reason}")]
    Format {
        /// Chain.
        chain: Chain,
        /// What is wrong.
        reason: String,
    },
    /// Checksum does not match.
    #[error("{chain} address: checksum mismatch (a mistyped or altered address)")]
    Checksum {
        /// Chain.
        chain: Chain,
    },
    /// Valid address of another network.
    #[error("{chain} address: belongs to another network ({reason})")]
    WrongNetwork {
        /// Chain.
        chain: Chain,
        /// What was found.
        reason: String,
    },
}

fn format_err(chain: Chain, reason: impl Into<String>) -> AddressError {
    AddressError::Format {
        chain,
        reason: reason.into(),
    }
}

/// Validates `input` as an address on `chain` and returns its canonical form.
pub fn normalize_address(chain: Chain, input: &str) -> Result<String, AddressError> {
    if input.is_empty() || input.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::Length { chain });
    }
    match chain {
        Chain::Ethereum | Chain::Polygon => evm(chain, input),
        Chain::Bitcoin => segwit(chain, input, bech32::hrp::BC),
        Chain::BitcoinTestnet => segwit(chain, input, bech32::hrp::TB),
        Chain::Tron => tron(input),
        Chain::Solana => solana(input),
    }
}

/// EIP-55 mixed-case checksum encoding of a 20-byte address.
pub fn eip55(bytes: &[u8; 20]) -> String {
    let lower = hex::encode(bytes);
    let hash = Keccak256::digest(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        if c.is_ascii_alphabetic() && nibble >= 8 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn evm(chain: Chain, input: &str) -> Result<String, AddressError> {
    let Some(body) = input.strip_prefix("0x") else {
        return Err(format_err(chain, "must start with `0x`"));
    };
    if body.len() != 40 || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format_err(chain, "must be `0x` followed by 40 hex digits"));
    }
    let mut bytes = [0u8; 20];
    hex::decode_to_slice(body, &mut bytes).map_err(|_| format_err(chain, "not hex"))?;
    if bytes == [0u8; 20] {
        return Err(format_err(chain, "the zero address is not a destination"));
    }
    let canonical = eip55(&bytes);
    let has_lower = body.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = body.bytes().any(|b| b.is_ascii_uppercase());
    // All-lowercase or all-uppercase carry no checksum; mixed case must be the EIP-55 checksum.
    if has_lower && has_upper && canonical[2..] != *body {
        return Err(AddressError::Checksum { chain });
    }
    Ok(canonical)
}

fn segwit(chain: Chain, input: &str, want: bech32::Hrp) -> Result<String, AddressError> {
    if !input.contains('1') || input.starts_with('1') || input.starts_with('3') {
        return Err(format_err(
            chain,
            "only segwit (bech32/bech32m) addresses are supported",
        ));
    }
    let (hrp, version, program) = bech32::segwit::decode(input).map_err(|e| match e.0 {
        bech32::primitives::decode::SegwitHrpstringError::Checksum(_) => {
            AddressError::Checksum { chain }
        }
        other => format_err(chain, format!("not a valid segwit address: {other}")),
    })?;
    if hrp != want {
        return Err(AddressError::WrongNetwork {
            chain,
            reason: format!(
                "prefix `{}`, expected `{}`",
                hrp.to_lowercase(),
                want.to_lowercase()
            ),
        });
    }
    let v = version.to_u8();
    // Only outputs with defined spending rules: v0 (P2WPKH, P2WSH) and v1 Taproot. Funds sent
    // to a not-yet-defined witness version or length could be lost, so those are refused.
    let defined = match v {
        0 => program.len() == 20 || program.len() == 32,
        1 => program.len() == 32,
        _ => false,
    };
    if !defined {
        return Err(format_err(
            chain,
            format!(
                "witness version {v} with a {}-byte program has no defined spending rules",
                program.len()
            ),
        ));
    }
    bech32::segwit::encode(hrp, version, &program)
        .map_err(|e| format_err(chain, format!("cannot re-encode: {e}")))
}

fn tron(input: &str) -> Result<String, AddressError> {
    let chain = Chain::Tron;
    let raw = bs58::decode(input)
        .into_vec()
        .map_err(|_| format_err(chain, "not base58"))?;
    if raw.len() != 25 {
        return Err(format_err(
            chain,
            "must decode to 21 bytes plus a 4-byte checksum",
        ));
    }
    let (payload, check) = raw.split_at(21);
    let digest = Sha256::digest(Sha256::digest(payload));
    if digest[..4] != *check {
        return Err(AddressError::Checksum { chain });
    }
    if payload[0] != 0x41 {
        return Err(AddressError::WrongNetwork {
            chain,
            reason: format!("version byte 0x{:02x}, expected 0x41", payload[0]),
        });
    }
    let canonical = bs58::encode(&raw).into_string();
    if canonical != input {
        return Err(format_err(chain, "not in canonical base58 form"));
    }
    Ok(canonical)
}

fn solana(input: &str) -> Result<String, AddressError> {
    let chain = Chain::Solana;
    let raw = bs58::decode(input)
        .into_vec()
        .map_err(|_| format_err(chain, "not base58"))?;
    if raw.len() != 32 {
        return Err(format_err(
            chain,
            format!("must decode to 32 bytes, got {}", raw.len()),
        ));
    }
    let canonical = bs58::encode(&raw).into_string();
    if canonical != input {
        return Err(format_err(chain, "not in canonical base58 form"));
    }
    Ok(canonical)
}
