//! The stored form of a withdrawal's binding (S6): the `withdrawals` tree's value
//! (docs/storage.md).
//!
//! ```text
//! offset  size  field
//! 0       1     format: 0xB1 (binding, layout 1)
//! 1       32    digest             the intent digest, raw
//! 33      8     bound_at_ms        u64, when this signer first bound the id
//! ```
//!
//! 41 bytes, nothing after. The form written before, JSON
//! `{"v":1,"digest":"<64 hex>","bound_at_ms":<n>}` (first byte `{`), is still read.

use quorate_core::bytes::Reader;
use serde::Deserialize;

/// First byte of a binding's binary form. A new layout takes a new byte.
pub const FORMAT_BINDING_V1: u8 = 0xB1;

/// Length of the binary form.
const LEN_V1: usize = 1 + 32 + 8;

/// The JSON form of earlier versions.
#[derive(Deserialize)]
struct WithdrawalRecord {
    #[allow(dead_code)] // Read so that a record without it stays refused, as before.
    v: u32,
    digest: String,
    #[allow(dead_code)]
    bound_at_ms: u64,
}

/// The binding of an id to `digest`, made at `bound_at_ms`.
pub fn encode(digest: &[u8; 32], bound_at_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEN_V1);
    out.push(FORMAT_BINDING_V1);
    out.extend_from_slice(digest);
    out.extend_from_slice(&bound_at_ms.to_be_bytes());
    out
}

/// The digest a stored binding names, from either form.
pub fn digest(bytes: &[u8]) -> Result<[u8; 32], String> {
    match bytes.first() {
        Some(&FORMAT_BINDING_V1) => {
            let mut r = Reader::new(bytes);
            r.u8("format")?;
            let digest = r.array("digest")?;
            r.u64("bound_at_ms")?;
            r.finish()?;
            Ok(digest)
        }
        Some(b'{') => {
            let rec: WithdrawalRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            hex::decode(&rec.digest)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| "digest".to_string())
        }
        Some(b) => Err(format!("unknown binding format byte 0x{b:02x}")),
        None => Err("empty binding".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_read_and_malformed_ones_are_refused() {
        // The example of docs/storage.md.
        let wd_0001 =
            hex::decode("cd19eefc47caf64b9f51550ecede8f7ce0ccd246979f1b2580df2a99f14f4cbf")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(
            hex::encode(encode(&wd_0001, 1_700_000_000_250)),
            "b1cd19eefc47caf64b9f51550ecede8f7ce0ccd246979f1b2580df2a99f14f4cbf0000018bcfe568fa"
        );
        let d = [0xcd; 32];
        let b = encode(&d, 1_700_000_000_000);
        assert_eq!(b.len(), LEN_V1);
        assert_eq!(digest(&b).unwrap(), d);
        let json = format!(
            r#"{{"v":1,"digest":"{}","bound_at_ms":1700000000000}}"#,
            hex::encode(d)
        );
        println!(
            "signer binding: binary {} bytes, JSON {} bytes",
            b.len(),
            json.len()
        );
        assert_eq!(digest(json.as_bytes()).unwrap(), d);
        for n in 0..b.len() {
            assert!(digest(&b[..n]).is_err(), "cut at {n}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(digest(&long).unwrap_err().contains("trailing"));
        let mut unknown = b.clone();
        unknown[0] = 0xB2;
        assert!(digest(&unknown).unwrap_err().contains("0xb2"));
        assert!(digest(br#"{"v":1,"digest":"00","bound_at_ms":1}"#).is_err());
        assert!(digest(br#"{"digest":"00"}"#).is_err());
    }
}
