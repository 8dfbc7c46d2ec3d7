//! The withdrawal intent and its canonical encoding, versions 1 and 2.
//!
//! The encoding is what the backend signs (through its SHA-256 digest) and what every signer
//! recomputes from the intent before it signs. Other languages implement exactly this layout;
//! the vectors in `core/tests/vectors/intent_v1.json` and `intent_v2.json` pin it. Integers are unsigned big-endian;
//! strings are ASCII (UTF-8) bytes with no terminator.
//!
//! ```text
//! offset  size  field
//! 0       1     len(DOMAIN_TAG) = 25 (0x19)
//! 1       25    DOMAIN_TAG = "QUORATE/withdrawal-intent"
//! 26      1     version: 1, or 2 when chain terms follow the last field
//! 27      2     len(id)            then id bytes          1..=128 of [A-Za-z0-9._:-]
//! .       1     chain code         1 ethereum, 2 polygon, 3 bitcoin, 4 bitcoin-testnet,
//!                                  5 tron, 6 solana
//! .       2     len(asset)         then asset bytes       1..=16 of [A-Z0-9]
//! .       2     len(destination)   then destination bytes the normalised form: EIP-55 for
//!                                  EVM chains, lowercase bech32/bech32m for Bitcoin, the
//!                                  base58check / base58 text itself for Tron / Solana
//! .       16    amount             u128, base units, > 0
//! .       8     created_at_ms      u64, unix milliseconds, > 0
//! .       8     expires_at_ms      u64, created_at_ms < expires_at_ms <= created_at_ms + 24 h
//! .       1     customer_ref flag  0 = absent (nothing follows)
//!                                  1 = present, then u16 len and bytes, 1..=128 of 0x20..=0x7e
//! ```
//!
//!
//! Version 2 adds, after `customer_ref`, what only the outside world knows about a withdrawal
//! on one chain. It exists for Solana only (chain code 6), and a Solana intent without it is
//! written as version 1, so version-1 bytes keep their meaning:
//!
//! ```text
//! .       1     terms kind         1 = Solana
//! .       1     lifetime           1 = durable nonce: 32 nonce account, 32 nonce value
//!                                  2 = recent blockhash: 32 blockhash
//! .       1     create destination token account: 0 or 1 (SPL tokens only)
//! .       1     compute flags      bit 0: u32 compute-unit limit follows (> 0)
//!                                  bit 1: u64 compute-unit price follows, micro-lamports (> 0)
//!                                  other bits 0
//! ```
//!
//! Nothing follows the last field. Decoding is the strict inverse: a byte string is accepted
//! only if it is exactly the encoding of a valid intent, so `encode(decode(b)) == b`.
//!
//! The digest is `SHA-256(encoding)`.

use sha2::{Digest, Sha256};

use crate::{
    address::{normalize_address, AddressError, Chain, UnknownChain},
    amount::{Amount, AmountError},
    chains::solana::{ComputeBudget, Lifetime},
};

/// What only the outside world knows about a Solana withdrawal: how the transaction is made
/// valid once, and the options its backend chose (intent version 2). The rest of the message
/// comes from the intent and the signer's own policy (`crate::chains::solana`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SolanaTerms {
    /// Durable nonce (an account in the policy's pool and its current value) or blockhash.
    pub lifetime: Lifetime,
    /// For a token: create the destination's associated token account if missing.
    pub create_destination_account: bool,
    /// Priority fee, under the policy's caps.
    pub compute: ComputeBudget,
}

/// Domain tag that opens every encoding (after its 1-byte length).
pub const DOMAIN_TAG: &[u8] = b"QUORATE/withdrawal-intent";
/// Encoding version of an intent without chain terms.
pub const INTENT_VERSION: u8 = 1;
/// Encoding version of an intent with chain terms ([`SolanaTerms`]).
pub const INTENT_VERSION_2: u8 = 2;
/// Longest allowed lifetime of an intent, `expires_at_ms - created_at_ms` (24 hours).
pub const MAX_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;
/// Longest id, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest asset symbol, in bytes.
pub const MAX_ASSET_LEN: usize = 16;
/// Longest customer reference, in bytes.
pub const MAX_REF_LEN: usize = 128;

// The tag's length is written as one byte.
const _: () = assert!(DOMAIN_TAG.len() <= u8::MAX as usize);

/// A withdrawal request: validated, with its destination in canonical form.
///
/// The fields are public for reading; an intent assembled as a struct literal has not been
/// checked until it goes through [`WithdrawalIntent::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalIntent {
    /// Client-chosen idempotency key.
    pub id: String,
    /// Chain.
    pub chain: Chain,
    /// Asset symbol, e.g. `ETH`, `USDC`.
    pub asset: String,
    /// Destination address in canonical form.
    pub destination: String,
    /// Amount in base units.
    pub amount: Amount,
    /// Creation time, unix milliseconds.
    pub created_at_ms: u64,
    /// Expiry, unix milliseconds.
    pub expires_at_ms: u64,
    /// Optional customer reference.
    pub customer_ref: Option<String>,
    /// Solana terms; present only on Solana, and then the encoding is version 2.
    pub solana: Option<SolanaTerms>,
}

/// Why an intent was refused; the message starts with the field and states the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntentError {
    /// Bad id.
    #[error("id: must be 1..={MAX_ID_LEN} bytes of A-Z a-z 0-9 . _ : -")]
    Id,
    /// Unknown chain name.
    #[error("chain: {0}")]
    Chain(#[from] UnknownChain),
    /// Bad asset symbol.
    #[error("asset: must be 1..={MAX_ASSET_LEN} bytes of A-Z 0-9 (upper case)")]
    Asset,
    /// Bad destination address.
    #[error("destination: {0}")]
    Destination(#[from] AddressError),
    /// Bad amount.
    #[error("amount: {0}")]
    Amount(#[from] AmountError),
    /// `created_at_ms` is zero.
    #[error("created_at_ms: must be set (unix milliseconds, > 0)")]
    CreatedAt,
    /// `expires_at_ms` is not after `created_at_ms`.
    #[error(
        "expires_at_ms: must be later than created_at_ms ({created_at_ms}), got {expires_at_ms}"
    )]
    ExpiresBeforeCreated {
        /// Creation time.
        created_at_ms: u64,
        /// Expiry.
        expires_at_ms: u64,
    },
    /// The intent would live longer than [`MAX_LIFETIME_MS`].
    #[error(
        "expires_at_ms: an intent may live at most {MAX_LIFETIME_MS} ms (24 h) after \
         created_at_ms; this one lives {lifetime_ms} ms"
    )]
    LifetimeTooLong {
        /// `expires_at_ms - created_at_ms`.
        lifetime_ms: u64,
    },
    /// Bad customer reference.
    #[error(
        "customer_ref: must be absent or 1..={MAX_REF_LEN} bytes of printable ASCII (0x20-0x7e)"
    )]
    CustomerRef,
    /// Chain terms that do not fit the intent.
    #[error("solana: {0}")]
    Terms(&'static str),
    /// The tag is not [`DOMAIN_TAG`]: these bytes are not a withdrawal intent.
    #[error("encoding: wrong domain tag (not a Quorate withdrawal intent)")]
    DomainTag,
    /// An encoding version this code does not know.
    #[error("encoding: unsupported version {0} (this build reads versions 1 and 2)")]
    Version(u8),
    /// A chain code with no chain.
    #[error("encoding: unknown chain code {0}")]
    ChainCode(u8),
    /// Any other violation of the byte layout.
    #[error("encoding: {0}")]
    Encoding(&'static str),
}

impl IntentError {
    /// The field the error is about, as named in the wire format (`encoding` for the layout).
    pub fn field(&self) -> &'static str {
        match self {
            IntentError::Id => "id",
            IntentError::Chain(_) => "chain",
            IntentError::Asset => "asset",
            IntentError::Destination(_) => "destination",
            IntentError::Amount(_) => "amount",
            IntentError::CreatedAt => "created_at_ms",
            IntentError::ExpiresBeforeCreated { .. } | IntentError::LifetimeTooLong { .. } => {
                "expires_at_ms"
            }
            IntentError::CustomerRef => "customer_ref",
            IntentError::Terms(_) => "solana",
            IntentError::DomainTag
            | IntentError::Version(_)
            | IntentError::ChainCode(_)
            | IntentError::Encoding(_) => "encoding",
        }
    }
}

fn valid_id(s: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

pub(crate) fn valid_asset(s: &str) -> bool {
    (1..=MAX_ASSET_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn valid_ref(s: &str) -> bool {
    (1..=MAX_REF_LEN).contains(&s.len()) && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

impl WithdrawalIntent {
    /// Builds an intent from text fields as they arrive on the wire, validating every one and
    /// normalising the destination.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        id: &str,
        chain: &str,
        asset: &str,
        destination: &str,
        amount: &str,
        created_at_ms: u64,
        expires_at_ms: u64,
        customer_ref: Option<&str>,
    ) -> Result<Self, IntentError> {
        Self {
            id: id.to_string(),
            chain: chain.parse()?,
            asset: asset.to_string(),
            destination: destination.to_string(),
            amount: Amount::parse(amount)?,
            created_at_ms,
            expires_at_ms,
            customer_ref: customer_ref.map(str::to_string),
            solana: None,
        }
        .validate()
    }

    /// The same intent with Solana terms (version 2), validated.
    pub fn with_solana(self, terms: SolanaTerms) -> Result<Self, IntentError> {
        Self {
            solana: Some(terms),
            ..self
        }
        .validate()
    }

    /// Checks every field rule and returns the intent with its destination normalised.
    ///
    /// For intents built as struct literals; every other constructor already calls it.
    pub fn validate(mut self) -> Result<Self, IntentError> {
        if !valid_id(&self.id) {
            return Err(IntentError::Id);
        }
        if !valid_asset(&self.asset) {
            return Err(IntentError::Asset);
        }
        self.destination = normalize_address(self.chain, &self.destination)?;
        // `Amount` cannot hold zero, so there is nothing to check for it here.
        if self.created_at_ms == 0 {
            return Err(IntentError::CreatedAt);
        }
        if self.expires_at_ms <= self.created_at_ms {
            return Err(IntentError::ExpiresBeforeCreated {
                created_at_ms: self.created_at_ms,
                expires_at_ms: self.expires_at_ms,
            });
        }
        let lifetime_ms = self.expires_at_ms - self.created_at_ms;
        if lifetime_ms > MAX_LIFETIME_MS {
            return Err(IntentError::LifetimeTooLong { lifetime_ms });
        }
        if let Some(r) = &self.customer_ref {
            if !valid_ref(r) {
                return Err(IntentError::CustomerRef);
            }
        }
        if let Some(t) = &self.solana {
            if self.chain != Chain::Solana {
                return Err(IntentError::Terms(
                    "only a Solana intent carries Solana terms",
                ));
            }
            // Zero is written as "absent": one meaning, one encoding.
            if t.compute.unit_limit == Some(0) || t.compute.unit_price == Some(0) {
                return Err(IntentError::Terms(
                    "a compute-unit limit or price, when given, is greater than 0",
                ));
            }
        }
        Ok(self)
    }

    /// The canonical encoding: version 2 with Solana terms, else version 1 (layout in the
    /// module documentation).
    ///
    /// Meaningful only for a validated intent: every constructor validates, and `decode`
    /// refuses the encoding of anything that would not pass [`WithdrawalIntent::validate`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.destination.len());
        // The const assertion above makes the cast lossless.
        out.push(DOMAIN_TAG.len() as u8);
        out.extend_from_slice(DOMAIN_TAG);
        out.push(if self.solana.is_some() {
            INTENT_VERSION_2
        } else {
            INTENT_VERSION
        });
        put_str16(&mut out, &self.id);
        out.push(self.chain.code());
        put_str16(&mut out, &self.asset);
        put_str16(&mut out, &self.destination);
        out.extend_from_slice(&self.amount.get().to_be_bytes());
        out.extend_from_slice(&self.created_at_ms.to_be_bytes());
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        match &self.customer_ref {
            None => out.push(0),
            Some(r) => {
                out.push(1);
                put_str16(&mut out, r);
            }
        }
        if let Some(t) = &self.solana {
            out.push(TERMS_SOLANA);
            match t.lifetime {
                Lifetime::DurableNonce { account, nonce } => {
                    out.push(1);
                    out.extend_from_slice(&account);
                    out.extend_from_slice(&nonce);
                }
                Lifetime::Blockhash(h) => {
                    out.push(2);
                    out.extend_from_slice(&h);
                }
            }
            out.push(u8::from(t.create_destination_account));
            let flags = u8::from(t.compute.unit_limit.is_some())
                | (u8::from(t.compute.unit_price.is_some()) << 1);
            out.push(flags);
            if let Some(l) = t.compute.unit_limit {
                out.extend_from_slice(&l.to_be_bytes());
            }
            if let Some(p) = t.compute.unit_price {
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
        out
    }

    /// Decodes a canonical encoding. Anything that would not re-encode to the same bytes
    /// (trailing data, a non-normalised destination, an invalid field) is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, IntentError> {
        let mut r = Reader { buf: bytes };
        let tag_len = usize::from(r.u8()?);
        if tag_len != DOMAIN_TAG.len() || r.take(tag_len)? != DOMAIN_TAG {
            return Err(IntentError::DomainTag);
        }
        let version = r.u8()?;
        if version != INTENT_VERSION && version != INTENT_VERSION_2 {
            return Err(IntentError::Version(version));
        }
        let id = r.str16()?;
        let code = r.u8()?;
        let chain = Chain::from_code(code).ok_or(IntentError::ChainCode(code))?;
        let asset = r.str16()?;
        let destination = r.str16()?;
        let amount = Amount::new(u128::from_be_bytes(r.array()?))?;
        let created_at_ms = u64::from_be_bytes(r.array()?);
        let expires_at_ms = u64::from_be_bytes(r.array()?);
        let customer_ref = match r.u8()? {
            0 => None,
            1 => Some(r.str16()?),
            _ => return Err(IntentError::Encoding("customer_ref flag must be 0 or 1")),
        };
        let solana = if version == INTENT_VERSION_2 {
            Some(r.solana_terms()?)
        } else {
            None
        };
        if !r.buf.is_empty() {
            return Err(IntentError::Encoding("trailing bytes after the last field"));
        }
        let intent = Self {
            id,
            chain,
            asset,
            destination: destination.clone(),
            amount,
            created_at_ms,
            expires_at_ms,
            customer_ref,
            solana,
        }
        .validate()?;
        // Two spellings of one address would give one withdrawal two digests.
        if intent.destination != destination {
            return Err(IntentError::Encoding(
                "destination is not in normalised form",
            ));
        }
        Ok(intent)
    }

    /// SHA-256 of the canonical encoding.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }

    /// The digest as lowercase hex.
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest())
    }
}

/// Writes a u16 length and the bytes. Validated fields are at most 128 bytes; for anything
/// longer (an unvalidated struct literal) the bytes are cut to the length written, so the
/// output stays parseable and `decode` refuses it on the field rules.
fn put_str16(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    // Lossless: `bytes` is at most u16::MAX long.
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Terms kind of [`SolanaTerms`] in a version-2 encoding.
const TERMS_SOLANA: u8 = 1;

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IntentError> {
        if self.buf.len() < n {
            return Err(IntentError::Encoding("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, IntentError> {
        Ok(self.array::<1>()?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], IntentError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn solana_terms(&mut self) -> Result<SolanaTerms, IntentError> {
        if self.u8()? != TERMS_SOLANA {
            return Err(IntentError::Encoding("version 2: unknown terms kind"));
        }
        let lifetime = match self.u8()? {
            1 => Lifetime::DurableNonce {
                account: self.array()?,
                nonce: self.array()?,
            },
            2 => Lifetime::Blockhash(self.array()?),
            _ => return Err(IntentError::Encoding("solana lifetime must be 1 or 2")),
        };
        let create_destination_account = match self.u8()? {
            0 => false,
            1 => true,
            _ => return Err(IntentError::Encoding("solana create flag must be 0 or 1")),
        };
        let flags = self.u8()?;
        if flags & !0b11 != 0 {
            return Err(IntentError::Encoding("solana compute flags: unknown bits"));
        }
        let unit_limit = if flags & 1 != 0 {
            Some(u32::from_be_bytes(self.array()?))
        } else {
            None
        };
        let unit_price = if flags & 2 != 0 {
            Some(u64::from_be_bytes(self.array()?))
        } else {
            None
        };
        Ok(SolanaTerms {
            lifetime,
            create_destination_account,
            compute: ComputeBudget {
                unit_limit,
                unit_price,
            },
        })
    }

    fn str16(&mut self) -> Result<String, IntentError> {
        let len = usize::from(u16::from_be_bytes(self.array()?));
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| IntentError::Encoding("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETH: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    fn sample() -> WithdrawalIntent {
        WithdrawalIntent::from_parts("wd-1", "ethereum", "ETH", ETH, "1", 10, 20, Some("r"))
            .unwrap()
    }

    #[test]
    fn validate_normalises_struct_literals() {
        let i = WithdrawalIntent {
            destination: ETH.to_lowercase(),
            ..sample()
        }
        .validate()
        .unwrap();
        assert_eq!(i, sample());
    }

    #[test]
    fn errors_name_their_field() {
        let cases: Vec<(WithdrawalIntent, &str)> = vec![
            (
                WithdrawalIntent {
                    id: "a b".into(),
                    ..sample()
                },
                "id",
            ),
            (
                WithdrawalIntent {
                    asset: "eth".into(),
                    ..sample()
                },
                "asset",
            ),
            (
                WithdrawalIntent {
                    destination: "0x12".into(),
                    ..sample()
                },
                "destination",
            ),
            (
                WithdrawalIntent {
                    created_at_ms: 0,
                    ..sample()
                },
                "created_at_ms",
            ),
            (
                WithdrawalIntent {
                    expires_at_ms: 10,
                    ..sample()
                },
                "expires_at_ms",
            ),
            (
                WithdrawalIntent {
                    expires_at_ms: 11 + MAX_LIFETIME_MS,
                    ..sample()
                },
                "expires_at_ms",
            ),
            (
                WithdrawalIntent {
                    customer_ref: Some("\n".into()),
                    ..sample()
                },
                "customer_ref",
            ),
        ];
        for (i, field) in cases {
            let e = i.validate().unwrap_err();
            assert_eq!(e.field(), field);
            assert!(e.to_string().starts_with(&format!("{field}: ")), "{e}");
        }
        let e = WithdrawalIntent::from_parts("x", "eth", "ETH", ETH, "1", 1, 2, None).unwrap_err();
        assert_eq!(e.field(), "chain");
        let e =
            WithdrawalIntent::from_parts("x", "ethereum", "ETH", ETH, "0", 1, 2, None).unwrap_err();
        assert_eq!(e, IntentError::Amount(AmountError::Zero));
        assert!(e.to_string().starts_with("amount: "));
    }

    #[test]
    fn lifetime_limit_is_inclusive() {
        let ok = WithdrawalIntent {
            expires_at_ms: 10 + MAX_LIFETIME_MS,
            ..sample()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn oversized_unvalidated_fields_still_encode_parseably() {
        let i = WithdrawalIntent {
            id: "a".repeat(70_000),
            ..sample()
        };
        let b = i.encode();
        assert_eq!(&b[27..29], &u16::MAX.to_be_bytes());
        assert_eq!(WithdrawalIntent::decode(&b), Err(IntentError::Id));
    }

    #[test]
    fn decode_reports_layout_errors_precisely() {
        let good = sample().encode();
        let mut b = good.clone();
        b[26] = 3;
        assert_eq!(WithdrawalIntent::decode(&b), Err(IntentError::Version(3)));
        let mut b = good.clone();
        b[0] = 24;
        assert_eq!(WithdrawalIntent::decode(&b), Err(IntentError::DomainTag));
        let mut b = good.clone();
        b[27 + 2 + 4] = 7; // chain code after the 4-byte id
        assert_eq!(WithdrawalIntent::decode(&b), Err(IntentError::ChainCode(7)));
        let mut b = good.clone();
        let flag = b.len() - 4; // flag, u16 len, "r"
        b[flag] = 2;
        assert!(matches!(
            WithdrawalIntent::decode(&b),
            Err(IntentError::Encoding(_))
        ));
        assert_eq!(
            WithdrawalIntent::decode(&[]),
            Err(IntentError::Encoding("truncated"))
        );
    }
}
