//! The stored form of a record: what a node keeps in its `audit` tree (docs/storage.md).
//!
//! Neither hashed nor exported: the hash covers [`super::record_hash`]'s layout and an export is
//! JSON lines, so this form can change (under a new format byte) without touching either.
//!
//! ```text
//! offset  size  field
//! 0       1     format: 0xA1 (audit record, layout 1; hash schema version 1)
//! 1       8     seq                u64
//! 9       8     at_ms              u64
//! 17      32    prev               raw hash
//! 49      32    hash               raw hash
//! 81      1+n   kind               u8 length, then UTF-8, at most MAX_NAME_LEN (64) bytes
//! .       1     number of fields   at most MAX_FIELDS (16)
//! then, for each field in strictly increasing byte order of its name:
//! .       1+n   name               u8 length, then UTF-8, at most 64 bytes
//! .       2+n   value              u16 length, then UTF-8, at most MAX_VALUE_LEN (512) bytes
//! ```
//!
//! Nothing follows the last field. Decoding is strict, so `encode(decode(b)) == b`. The form a
//! node wrote before, one line of JSON (first byte `{`), is still read. 0xA1 is a UTF-8
//! continuation byte, which no text, so no JSON, can start with.

use std::collections::BTreeMap;

use super::{Event, Record, MAX_FIELDS, MAX_NAME_LEN, MAX_VALUE_LEN};
use crate::bytes::{put_bytes, Reader};

/// First byte of a record's binary stored form. A new layout takes a new byte.
pub const FORMAT_BINARY_V1: u8 = 0xA1;

impl Record {
    /// True if the binary form can carry this record: the bounds [`Event::new`] and
    /// [`Event::with`] keep (an event's fields are public, so it could be built around them).
    fn within_bounds(&self) -> bool {
        let e = &self.event;
        e.kind.len() <= MAX_NAME_LEN
            && e.fields.len() <= MAX_FIELDS
            && e.fields
                .iter()
                .all(|(k, v)| k.len() <= MAX_NAME_LEN && v.len() <= MAX_VALUE_LEN)
    }

    /// The stored form: the binary layout above. A record outside the bounds the binary form
    /// enforces (only an event built by hand can be) is stored as its JSON line instead, which
    /// [`Record::decode`] also reads: a record once written must always read back.
    pub fn encode(&self) -> Vec<u8> {
        if !self.within_bounds() {
            return self.to_json().into_bytes();
        }
        let e = &self.event;
        let mut out = Vec::with_capacity(
            83 + e.kind.len()
                + e.fields
                    .iter()
                    .map(|(k, v)| 3 + k.len() + v.len())
                    .sum::<usize>(),
        );
        out.push(FORMAT_BINARY_V1);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.at_ms.to_be_bytes());
        out.extend_from_slice(&self.prev);
        out.extend_from_slice(&self.hash);
        // Within bounds (checked above), so every length fits its prefix and no write fails.
        let _ = put_bytes(&mut out, 1, e.kind.as_bytes(), "kind");
        out.push(e.fields.len() as u8);
        for (k, v) in &e.fields {
            let _ = put_bytes(&mut out, 1, k.as_bytes(), "name");
            let _ = put_bytes(&mut out, 2, v.as_bytes(), "value");
        }
        out
    }

    /// Reads a stored record: the binary form, or the JSON line older nodes stored. Does not
    /// check its hash: [`super::verify_chain`] does.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        match bytes.first() {
            None => Err("empty record".into()),
            Some(b'{') => std::str::from_utf8(bytes)
                .map_err(|e| format!("JSON record: not UTF-8 ({e})"))
                .and_then(Self::from_json),
            Some(&FORMAT_BINARY_V1) => decode_v1(bytes),
            Some(b) => Err(format!("unknown record format byte 0x{b:02x}")),
        }
    }
}

fn decode_v1(bytes: &[u8]) -> Result<Record, String> {
    let mut r = Reader::new(bytes);
    r.u8("format")?;
    let seq = r.u64("seq")?;
    let at_ms = r.u64("at_ms")?;
    let prev = r.array("prev")?;
    let hash = r.array("hash")?;
    let kind = r.text(1, MAX_NAME_LEN, "kind")?.to_string();
    let n = usize::from(r.u8("number of fields")?);
    if n > MAX_FIELDS {
        return Err(format!("{n} fields, at most {MAX_FIELDS} allowed"));
    }
    let mut fields = BTreeMap::new();
    let mut last: Option<&str> = None;
    for i in 0..n {
        // Which field is named only on failure: no label is built for a good record.
        let name = r
            .text(1, MAX_NAME_LEN, "name")
            .map_err(|e| format!("field {i} {e}"))?;
        let value = r
            .text(2, MAX_VALUE_LEN, "value")
            .map_err(|e| format!("field {i} {e}"))?;
        // One spelling per record: names in the map's order, each once.
        if last.is_some_and(|l| l >= name) {
            return Err(format!(
                "field {i} name `{name}`: not after the one before (out of order or repeated)"
            ));
        }
        last = Some(name);
        fields.insert(name.to_string(), value.to_string());
    }
    r.finish()?;
    Ok(Record {
        seq,
        at_ms,
        prev,
        event: Event { kind, fields },
        hash,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::audit::{kind, Chain};

    fn sample() -> Record {
        let mut c = Chain::resume(None);
        let first = c.prepare(1_700_000_000_000, Event::new(kind::NODE_STARTED));
        c.advance(&first);
        c.prepare(
            1_700_000_000_123,
            Event::new(kind::SHARE_RELEASED)
                .with("withdrawal", "wd-0001")
                .with(
                    "digest",
                    "cd19eefc47caf64b9f51550ecede8f7ce0ccd246979f1b2580df2a99f14f4cbf",
                )
                .with("session", "3f9a0c6e21d4b7a8")
                .with("chain", "ethereum")
                .with("asset", "ETH")
                .with("destination", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
                .with("amount", "1000000000000000000")
                .with("policy_version", "3")
                .with("debit", "new"),
        )
    }

    #[test]
    fn round_trips_and_reads_the_old_json_form() {
        let r = sample();
        let b = r.encode();
        assert_eq!(b[0], FORMAT_BINARY_V1);
        assert_eq!(Record::decode(&b).unwrap(), r);
        assert_eq!(Record::decode(r.to_json().as_bytes()).unwrap(), r);
        assert!(Record::decode(&b).unwrap().hash_ok());
        // The layout's fixed part, as documented.
        assert_eq!(&b[1..9], &r.seq.to_be_bytes());
        assert_eq!(&b[17..49], &r.prev);
        assert_eq!(&b[49..81], &r.hash);
        assert_eq!(usize::from(b[81]), kind::SHARE_RELEASED.len());
    }

    /// The example of docs/storage.md.
    #[test]
    fn the_documented_example() {
        let r = Chain::resume(None).prepare(
            1_700_000_000_000,
            Event::new(kind::REFUSED)
                .with("request", "sign")
                .with("rule", "intent-expired")
                .with("withdrawal", "wd-0001"),
        );
        assert_eq!(
            hex::encode(r.encode()),
            "a100000000000000010000018bcfe568000000000000000000000000000000000000000000000000\
             0000000000000000007f66838a324e322893e14bb65ad81d1e9a51cbf36ba12fe6f4aa94313a29a6\
             be077265667573656403077265717565737400047369676e0472756c65000e696e74656e742d6578\
             70697265640a7769746864726177616c000777642d30303031"
        );
        assert_eq!((r.encode().len(), r.to_json().len()), (145, 277));
    }

    /// Sizes of one typical record (run with `--nocapture` to see them).
    #[test]
    fn the_binary_form_is_smaller() {
        let r = sample();
        let (bin, json) = (r.encode().len(), r.to_json().len());
        println!("audit record share-released: binary {bin} bytes, JSON {json} bytes");
        assert!(bin < json);
    }

    #[test]
    fn malformed_input_is_refused() {
        let good = sample().encode();
        // Every cut: truncated, never a panic.
        for n in 0..good.len() {
            assert!(Record::decode(&good[..n]).is_err(), "cut at {n}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Record::decode(&trailing).unwrap_err().contains("trailing"));
        let mut unknown = good.clone();
        unknown[0] = 0xA2;
        assert!(Record::decode(&unknown).unwrap_err().contains("0xa2"));

        let kind_at = 81;
        let fields_at = kind_at + 1 + usize::from(good[kind_at]);
        let first_name = fields_at + 1;
        let mut bad_utf8 = good.clone();
        bad_utf8[first_name + 1] = 0xff;
        assert!(Record::decode(&bad_utf8).unwrap_err().contains("UTF-8"));
        let mut long_kind = good.clone();
        long_kind[kind_at] = MAX_NAME_LEN as u8 + 1;
        assert!(Record::decode(&long_kind).unwrap_err().contains("at most"));
        let mut many = good.clone();
        many[fields_at] = MAX_FIELDS as u8 + 1;
        assert!(Record::decode(&many).unwrap_err().contains("at most"));

        // A value over MAX_VALUE_LEN, a repeated name, names out of order.
        let mut r = sample();
        r.event.fields.clear();
        let one = |name: &str, len: u16| {
            let mut f = vec![name.len() as u8];
            f.extend_from_slice(name.as_bytes());
            f.extend_from_slice(&len.to_be_bytes());
            f.extend(std::iter::repeat_n(b'x', usize::from(len)));
            f
        };
        let with_fields = |fs: &[Vec<u8>]| {
            let mut b = r.encode();
            *b.last_mut().unwrap() = fs.len() as u8;
            for f in fs {
                b.extend_from_slice(f);
            }
            b
        };
        assert!(Record::decode(&with_fields(&[one("a", 512), one("b", 0)])).is_ok());
        let over = with_fields(&[one("a", MAX_VALUE_LEN as u16 + 1)]);
        assert!(Record::decode(&over).unwrap_err().contains("at most 512"));
        let repeated = with_fields(&[one("a", 1), one("a", 2)]);
        assert!(Record::decode(&repeated).unwrap_err().contains("repeated"));
        let unordered = with_fields(&[one("b", 1), one("a", 2)]);
        assert!(Record::decode(&unordered).unwrap_err().contains("order"));

        // The JSON form keeps its own strictness.
        assert!(Record::decode(b"{\"v\":1}").is_err());
        assert!(Record::decode(&[b'{', 0xff]).unwrap_err().contains("UTF-8"));
        assert!(Record::decode(b"").is_err());
        assert!(Record::decode(b" {}").unwrap_err().contains("0x20"));
    }

    #[test]
    fn a_record_built_around_the_bounds_still_reads_back() {
        let mut r = sample();
        r.event
            .fields
            .insert("long".into(), "x".repeat(MAX_VALUE_LEN + 1));
        let b = r.encode();
        assert_eq!(b[0], b'{');
        assert_eq!(Record::decode(&b).unwrap(), r);
    }

    fn text(max: usize) -> impl Strategy<Value = String> {
        // Multi-byte characters so the byte bounds meet char boundaries.
        proptest::collection::vec(
            prop_oneof![Just('a'), Just('-'), Just('é'), Just('𝄞')],
            0..max,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        #[test]
        fn any_event_round_trips_and_re_encodes_to_the_same_bytes(
            seq in any::<u64>(),
            at in any::<u64>(),
            prev in any::<[u8; 32]>(),
            kind in text(80),
            fields in proptest::collection::vec((text(80), text(600)), 0..24),
        ) {
            let mut e = Event::new(&kind);
            for (k, v) in &fields {
                e = e.with(k, v);
            }
            let hash = crate::audit::record_hash(seq, at, &prev, &e);
            let r = Record { seq, at_ms: at, prev, event: e, hash };
            let b = r.encode();
            prop_assert_eq!(b[0], FORMAT_BINARY_V1);
            let back = Record::decode(&b).unwrap();
            prop_assert_eq!(&back, &r);
            prop_assert_eq!(back.encode(), b);
            prop_assert!(back.hash_ok());
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = b;
            if let Some(first) = b.first_mut() {
                *first = FORMAT_BINARY_V1;
            }
            if let Ok(r) = Record::decode(&b) {
                prop_assert_eq!(r.encode(), b);
            }
        }
    }
}
