//! Chains and destination addresses, validated and normalised per chain, so that comparing two
//! addresses (with a whitelist, say) is comparing two canonical strings.
//!
//! | chain                | accepted                                  | canonical form          |
//! |----------------------|-------------------------------------------|-------------------------|
//! | ethereum, polygon    | `0x` + 40 hex; mixed case must be EIP-55  | EIP-55 checksummed      |
//! | bitcoin(-testnet)    | segwit v0 (BIP-173), v1 Taproot (BIP-350) | lowercase bech32/bech32m|
//! | tron                 | base58check, 21-byte payload, `0x41` first| the input               |
//! | solana               | base58 of exactly 32 bytes                | the input               |

use std::{fmt, str::FromStr};

use bech32::{
    primitives::{
        decode::{CharError, SegwitHrpstringError, UncheckedHrpstringError},
        hrp,
    },
    Hrp,
};
use sha2::{Digest, Sha256};
use sha3::Keccak256;

/// Longest address text looked at (bytes); anything longer is refused before decoding.
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

    /// Stable code used in the canonical intent encoding; never reuse or renumber one.
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

    /// The chain with this code, if any.
    pub fn from_code(code: u8) -> Option<Chain> {
        Chain::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown chain name (the name is kept, cut to 32 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown chain `{0}`; supported (exact, lowercase): ethereum, polygon, bitcoin, \
     bitcoin-testnet, tron, solana"
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

/// Why an address was refused; every message names the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The address is empty.
    #[error("{chain} address is empty")]
    Empty {
        /// Chain.
        chain: Chain,
    },
    /// Longer than [`MAX_ADDRESS_LEN`] bytes; refused before any decoding.
    #[error("{chain} address is {len} bytes long; no address is longer than {MAX_ADDRESS_LEN}")]
    TooLong {
        /// Chain.
        chain: Chain,
        /// Length of the input in bytes.
        len: usize,
    },
    /// Not the chain's format.
    #[error("{chain} address: {reason}")]
    Format {
        /// Chain.
        chain: Chain,
        /// What is wrong.
        reason: String,
    },
    /// The checksum does not match: a mistyped or altered address.
    #[error("{chain} address: checksum mismatch (a mistyped or altered address)")]
    Checksum {
        /// Chain.
        chain: Chain,
    },
    /// A well-formed address of another network.
    #[error("{chain} address belongs to another network: {reason}")]
    WrongNetwork {
        /// Chain.
        chain: Chain,
        /// What was found and what was expected.
        reason: String,
    },
    /// A Bitcoin address kind this service does not send to (legacy, or no spending rules yet).
    #[error("{chain} address: {reason}")]
    Unsupported {
        /// Chain.
        chain: Chain,
        /// Which kind, and what is accepted instead.
        reason: String,
    },
}

impl AddressError {
    /// The chain the address was checked against.
    pub fn chain(&self) -> Chain {
        match self {
            AddressError::Empty { chain }
            | AddressError::TooLong { chain, .. }
            | AddressError::Format { chain, .. }
            | AddressError::Checksum { chain }
            | AddressError::WrongNetwork { chain, .. }
            | AddressError::Unsupported { chain, .. } => *chain,
        }
    }
}

fn format_err(chain: Chain, reason: impl Into<String>) -> AddressError {
    AddressError::Format {
        chain,
        reason: reason.into(),
    }
}

/// Validates `input` as an address on `chain` and returns its canonical form.
pub fn normalize_address(chain: Chain, input: &str) -> Result<String, AddressError> {
    if input.is_empty() {
        return Err(AddressError::Empty { chain });
    }
    if input.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::TooLong {
            chain,
            len: input.len(),
        });
    }
    // Every supported format is printable ASCII; saying so beats a decoder's complaint about a
    // pasted space or newline.
    if !input.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format_err(
            chain,
            "contains whitespace, control or non-ASCII characters",
        ));
    }
    match chain {
        Chain::Ethereum | Chain::Polygon => evm(chain, input),
        Chain::Bitcoin => segwit(chain, input, hrp::BC),
        Chain::BitcoinTestnet => segwit(chain, input, hrp::TB),
        Chain::Tron => tron(input),
        Chain::Solana => solana(input),
    }
}

/// EIP-55 mixed-case checksum encoding of a 20-byte address (`0x` + 40 characters).
pub fn eip55(bytes: &[u8; 20]) -> String {
    let lower = hex::encode(bytes);
    let hash = Keccak256::digest(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        // Nibble i of the hash decides the case of hex character i.
        let nibble = if i % 2 == 0 {
            hash[i / 2] >> 4
        } else {
            hash[i / 2] & 0x0f
        };
        out.push(if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

fn evm(chain: Chain, input: &str) -> Result<String, AddressError> {
    let Some(body) = input.strip_prefix("0x") else {
        return Err(format_err(chain, "must start with lowercase `0x`"));
    };
    if body.len() != 40 {
        return Err(format_err(
            chain,
            format!(
                "must be `0x` followed by 40 hex digits, found {}",
                body.len()
            ),
        ));
    }
    let mut bytes = [0u8; 20];
    hex::decode_to_slice(body, &mut bytes)
        .map_err(|_| format_err(chain, "must be `0x` followed by 40 hex digits (0-9, a-f)"))?;
    if bytes == [0u8; 20] {
        return Err(format_err(chain, "the zero address is not a destination"));
    }
    let canonical = eip55(&bytes);
    let has_lower = body.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = body.bytes().any(|b| b.is_ascii_uppercase());
    // All-lowercase or all-uppercase carries no checksum; mixed case claims to be EIP-55 and must
    // be exactly that.
    if has_lower && has_upper && canonical[2..] != *body {
        return Err(AddressError::Checksum { chain });
    }
    Ok(canonical)
}

/// Whether `input` looks like a legacy (P2PKH/P2SH) base58 address of either Bitcoin network.
fn looks_like_legacy(input: &str) -> bool {
    (25..=35).contains(&input.len())
        && matches!(input.as_bytes()[0], b'1' | b'3' | b'm' | b'n' | b'2')
        && bs58::decode(input).into_vec().is_ok()
}

/// Whether `input` starts like a segwit address of some Bitcoin network (`bc1`, `tb1`, `bcrt1`).
fn has_bitcoin_prefix(input: &str) -> bool {
    let lower = input.to_ascii_lowercase();
    ["bc1", "tb1", "bcrt1"].iter().any(|p| lower.starts_with(p))
}

fn segwit(chain: Chain, input: &str, want: Hrp) -> Result<String, AddressError> {
    let (hrp, version, program) = match bech32::segwit::decode(input) {
        Ok(decoded) => decoded,
        Err(_) if looks_like_legacy(input) => {
            return Err(AddressError::Unsupported {
                chain,
                reason: format!(
                    "legacy base58 addresses are not supported; only segwit addresses \
                     (`{}1…`) are",
                    want.to_lowercase()
                ),
            })
        }
        Err(_) if !has_bitcoin_prefix(input) => {
            return Err(format_err(
                chain,
                format!(
                    "not a segwit address; expected one starting with `{}1`",
                    want.to_lowercase()
                ),
            ))
        }
        Err(e) => return Err(segwit_error(chain, e.0)),
    };
    if hrp != want {
        let found = hrp.to_lowercase();
        return Err(if [hrp::BC, hrp::TB, hrp::BCRT].contains(&hrp) {
            AddressError::WrongNetwork {
                chain,
                reason: format!("prefix `{found}`, expected `{}`", want.to_lowercase()),
            }
        } else {
            format_err(
                chain,
                format!(
                    "unknown prefix `{found}`, expected `{}`",
                    want.to_lowercase()
                ),
            )
        });
    }
    let v = version.to_u8();
    // Only outputs with defined spending rules: v0 (P2WPKH, P2WSH) and v1 Taproot. BIP-350 lets
    // wallets send to other versions and lengths, but those outputs are anyone-can-spend until a
    // soft fork defines them, so a custodian must not.
    let defined = match v {
        0 => program.len() == 20 || program.len() == 32,
        1 => program.len() == 32,
        _ => false,
    };
    if !defined {
        return Err(AddressError::Unsupported {
            chain,
            reason: format!(
                "witness version {v} with a {}-byte program has no defined spending rules; \
                 only v0 (20 or 32 bytes) and v1 Taproot (32 bytes) are accepted",
                program.len()
            ),
        });
    }
    bech32::segwit::encode(hrp, version, &program)
        .map_err(|e| format_err(chain, format!("cannot re-encode: {e}")))
}

/// A message a person can act on; the crate's own `Display` names only the outer layer.
fn segwit_error(chain: Chain, e: SegwitHrpstringError) -> AddressError {
    use SegwitHrpstringError as S;
    use UncheckedHrpstringError as U;
    let reason = match e {
        S::Checksum(_) => return AddressError::Checksum { chain },
        S::Unchecked(U::Char(CharError::MixedCase))
        | S::Unchecked(U::Hrp(hrp::Error::MixedCase)) => {
            "mixes upper and lower case; use one case throughout".to_string()
        }
        S::Unchecked(U::Char(CharError::MissingSeparator)) => {
            "not a segwit address (no `1` separator)".to_string()
        }
        S::Unchecked(U::Char(CharError::InvalidChar(c))) => {
            format!("invalid character {c:?} (bech32 has no b, i, o or 1 after the separator)")
        }
        S::Unchecked(U::Char(e)) => format!("not a segwit address ({e})"),
        S::Unchecked(U::Hrp(e)) => format!("invalid prefix ({e})"),
        S::NoData => "nothing after the `1` separator".to_string(),
        S::TooLong(len) => format!("{len} characters; segwit addresses have at most 90"),
        S::InvalidWitnessVersion(fe) => {
            format!("witness version {} is not 0-16", fe.to_u8())
        }
        S::Padding(e) => format!("invalid witness program padding ({e})"),
        S::WitnessLength(e) => format!("invalid witness program length ({e})"),
        other => format!("not a valid segwit address ({other})"),
    };
    format_err(chain, reason)
}

fn tron(input: &str) -> Result<String, AddressError> {
    let chain = Chain::Tron;
    let raw = bs58::decode(input)
        .into_vec()
        .map_err(|_| format_err(chain, "not base58 (no 0, O, I or l)"))?;
    if raw.len() != 25 {
        return Err(format_err(
            chain,
            format!(
                "decodes to {} bytes; a Tron address is 21 bytes plus a 4-byte checksum",
                raw.len()
            ),
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
            reason: format!(
                "version byte 0x{:02x}, expected 0x41 (Tron addresses start with `T`)",
                payload[0]
            ),
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
        .map_err(|_| format_err(chain, "not base58 (no 0, O, I or l)"))?;
    if raw.len() != 32 {
        return Err(format_err(
            chain,
            format!("decodes to {} bytes; a Solana address is 32", raw.len()),
        ));
    }
    let canonical = bs58::encode(&raw).into_string();
    if canonical != input {
        return Err(format_err(chain, "not in canonical base58 form"));
    }
    Ok(canonical)
}
