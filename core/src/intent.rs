//! The withdrawal intent and its canonical encoding (version 1).
//!
//! The encoding is what the backend signs (through its SHA-256 digest) and what every signer
//! recomputes before it signs (S1). Other languages implement exactly this layout; the test
//! vectors in `core/tests/vectors/intent_v1.json` pin it. All integers are big-endian.
//!
//! ```text
//! u8   len(DOMAIN_TAG) = 25
//! [25] DOMAIN_TAG      = "QUORATE/withdrawal-intent"
//! u8   INTENT_VERSION  = 1
//! u16  len(id)         ‖ id bytes           (1..=128, [A-Za-z0-9._:-])
//! u8   chain code                           (ethereum 1, polygon 2, bitcoin 3,
//!                                            bitcoin-testnet 4, tron 5, solana 6)
//! u16  len(asset)      ‖ asset bytes        (1..=16, [A-Z0-9])
//! u16  len(dest)       ‖ destination bytes  (normalised form, see `address`)
//! u128 amount                               (16 bytes, base units, > 0)
//! u64  created_at_ms
//! u64  expires_at_ms                        (created < expires <= created + 24 h)
//! u8   0 (no customer reference) | 1 ‖ u16 len ‖ bytes (1..=128, printable ASCII)
//! ```
//!
//! The digest is `SHA-256(encoding)`.

use sha2::{Digest, Sha256};

use crate::{
    address::{normalize_address, AddressError, Chain, UnknownChain},
    amount::{Amount, AmountError},
};

/// Domain tag that opens every encoding.
pub const DOMAIN_TAG: &[u8] = b"QUORATE/withdrawal-intent";
/// Encoding version.
pub const INTENT_VERSION: u8 = 1;
/// Longest allowed lifetime of an intent (24 hours).
pub const MAX_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;
/// Longest id.
pub const MAX_ID_LEN: usize = 128;
/// Longest asset symbol.
pub const MAX_ASSET_LEN: usize = 16;
/// Longest customer reference.
pub const MAX_REF_LEN: usize = 128;

/// A withdrawal request, validated and with a normalised destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalIntent {
    /// Client-chosen idempotency key.
    pub id: String,
    /// Chain.
    pub chain: Chain,
    /// Asset symbol.
    pub asset: String,
    /// Destination in canonical form.
    pub destination: String,
    /// Amount in base units.
    pub amount: Amount,
    /// Creation time, unix ms.
    pub created_at_ms: u64,
    /// Expiry, unix ms.
    pub expires_at_ms: u64,
    /// Optional customer reference.
    pub customer_ref: Option<String>,
}

/// Why an intent was refused; the message names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntentError {
    /// Bad id.
    #[error("id: must be 1..={MAX_ID_LEN} characters of A-Z a-z 0-9 . _ : -")]
    Id,
    /// Unknown chain.
    #[error("chain: {0}")]
    Chain(#[from] UnknownChain),
    /// Bad asset symbol.
    #[error("asset: must be 1..={MAX_ASSET_LEN} characters of A-Z 0-9")]
    Asset,
    /// Bad destination.
    #[error("destination: {0}")]
    Destination(#[from] AddressError),
    /// Bad amount.
    #[error("amount: {0}")]
    Amount(#[from] AmountError),
    /// Bad times.
    #[error("times: {0}")]
    Times(&'static str),
    /// Bad customer reference.
    #[error("customer_ref: must be 1..={MAX_REF_LEN} printable ASCII characters")]
    CustomerRef,
    /// The bytes are not a canonical version-1 encoding.
    #[error("encoding: {0}")]
    Encoding(&'static str),
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn valid_asset(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ASSET_LEN
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn valid_ref(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_REF_LEN && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
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
        if !valid_id(id) {
            return Err(IntentError::Id);
        }
        let chain: Chain = chain.parse()?;
        if !valid_asset(asset) {
            return Err(IntentError::Asset);
        }
        let destination = normalize_address(chain, destination)?;
        let amount = Amount::parse(amount)?;
        let intent = Self {
            id: id.to_string(),
            chain,
            asset: asset.to_string(),
            destination,
            amount,
            created_at_ms,
            expires_at_ms,
            customer_ref: customer_ref.map(str::to_string),
        };
        intent.check_times_and_ref()?;
        Ok(intent)
    }

    fn check_times_and_ref(&self) -> Result<(), IntentError> {
        if self.created_at_ms == 0 {
            return Err(IntentError::Times("created_at_ms must be set"));
        }
        if self.expires_at_ms <= self.created_at_ms {
            return Err(IntentError::Times(
                "expires_at_ms must be after created_at_ms",
            ));
        }
        if self.expires_at_ms - self.created_at_ms > MAX_LIFETIME_MS {
            return Err(IntentError::Times("an intent may live at most 24 hours"));
        }
        if let Some(r) = &self.customer_ref {
            if !valid_ref(r) {
                return Err(IntentError::CustomerRef);
            }
        }
        Ok(())
    }

    /// The canonical version-1 encoding (layout in the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.push(DOMAIN_TAG.len() as u8);
        out.extend_from_slice(DOMAIN_TAG);
        out.push(INTENT_VERSION);
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
        out
    }

    /// Decodes a canonical encoding. Anything that would not re-encode to the same bytes
    /// (trailing data, a non-normalised destination, an invalid field) is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, IntentError> {
        let mut r = Reader { buf: bytes };
        let tag_len = r.u8()? as usize;
        if r.take(tag_len)? != DOMAIN_TAG {
            return Err(IntentError::Encoding("wrong domain tag"));
        }
        if r.u8()? != INTENT_VERSION {
            return Err(IntentError::Encoding("unsupported version"));
        }
        let id = r.str16()?;
        let chain = Chain::from_code(r.u8()?).ok_or(IntentError::Encoding("unknown chain code"))?;
        let asset = r.str16()?;
        let destination = r.str16()?;
        let amount = u128::from_be_bytes(r.array::<16>()?);
        let created_at_ms = u64::from_be_bytes(r.array::<8>()?);
        let expires_at_ms = u64::from_be_bytes(r.array::<8>()?);
        let customer_ref = match r.u8()? {
            0 => None,
            1 => Some(r.str16()?),
            _ => return Err(IntentError::Encoding("bad customer_ref marker")),
        };
        if !r.buf.is_empty() {
            return Err(IntentError::Encoding("trailing bytes"));
        }
        let intent = Self::from_parts(
            &id,
            chain.as_str(),
            &asset,
            &destination,
            &amount.to_string(),
            created_at_ms,
            expires_at_ms,
            customer_ref.as_deref(),
        )?;
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

    /// The digest as hex.
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest())
    }
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Every string field is validated to at most 128 bytes, far below u16::MAX.
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

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
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], IntentError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn str16(&mut self) -> Result<String, IntentError> {
        let len = u16::from_be_bytes(self.array::<2>()?) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| IntentError::Encoding("not UTF-8"))
    }
}
