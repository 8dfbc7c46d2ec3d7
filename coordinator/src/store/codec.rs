//! The stored form of a withdrawal [`Record`]: the `withdrawals` tree's value
//! (docs/storage.md).
//!
//! The in-memory record keeps its byte fields as hex (and a Solana transaction as base64);
//! stored, they are raw. Integers are unsigned big-endian; `bin16`/`str16` is a u16 length
//! then that many bytes, `bin32`/`str32` the same with a u32 length; `str` is UTF-8; an
//! optional field is a flag byte (0 absent, 1 present) then, if present, the value.
//!
//! ```text
//! offset  size  field
//! 0       1     format: 0xC1 (withdrawal record, layout 1; schema version 1)
//! 1       8     seq                u64
//! 9       8     created_ms         u64
//! 17      8     updated_ms         u64
//! 25      1     status             1 received, 2 signing, 3 signed, 4 refused, 5 failed,
//!                                  6 expired, 7 pending-approval
//! 26      2+n   id                 str16
//! .       2+n   intent             bin16, the canonical intent encoding
//! .       2+n   backend_signature  bin16
//! .       2+n   digest             bin16 (32 bytes)
//! .       1     signature flag     then bin16 (65 bytes: R, z)
//! .       2     number of signers  u16, then a u16 identifier each
//! .       1     rule flag          then str16
//! .       1     reason flag        then str32
//! .       2     number of approvals u16, then for each: bin16 admin key (33 bytes),
//!                                  bin16 signature
//! .       1     message flag       then bin16
//! .       1     evm_call flag      then str16 vault address (its canonical text), bin32 calldata
//! .       1     solana flag        then bin32 serialized transaction
//! ```
//!
//! Nothing follows the last field; decoding is strict, so `encode(decode(b)) == b`. The form
//! written before, the record's JSON (first byte `{`), is still read. 0xC1 never occurs in
//! UTF-8, so no JSON starts with it.

use base64::Engine as _;
use quorate_core::bytes::{put_bytes, Reader};

use super::{Record, Status, SCHEMA_VERSION};

/// First byte of a withdrawal record's binary form. A new layout takes a new byte.
pub const FORMAT_WITHDRAWAL_V1: u8 = 0xC1;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn status_code(s: Status) -> u8 {
    match s {
        Status::Received => 1,
        Status::Signing => 2,
        Status::Signed => 3,
        Status::Refused => 4,
        Status::Failed => 5,
        Status::Expired => 6,
        Status::PendingApproval => 7,
    }
}

fn status_of(code: u8) -> Result<Status, String> {
    Ok(match code {
        1 => Status::Received,
        2 => Status::Signing,
        3 => Status::Signed,
        4 => Status::Refused,
        5 => Status::Failed,
        6 => Status::Expired,
        7 => Status::PendingApproval,
        c => return Err(format!("status: unknown code {c}")),
    })
}

/// The bytes of a hex field; only lowercase hex, the one spelling the decoder gives back.
fn unhex(s: &str, field: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("{field}: not lowercase hex"));
    }
    hex::decode(s).map_err(|e| format!("{field}: {e}"))
}

struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, prefix: usize, b: &[u8], field: &str) -> Result<(), String> {
        put_bytes(&mut self.0, prefix, b, field)
    }

    fn hex(&mut self, s: &str, field: &str) -> Result<(), String> {
        self.bytes(2, &unhex(s, field)?, field)
    }

    fn flag<T>(&mut self, o: Option<&T>) {
        self.0.push(u8::from(o.is_some()));
    }

    fn count(&mut self, n: usize, field: &str) -> Result<(), String> {
        let n = u16::try_from(n).map_err(|_| format!("{field}: {n} do not fit a u16"))?;
        self.0.extend_from_slice(&n.to_be_bytes());
        Ok(())
    }
}

/// The binary form of `r`. Refuses (rather than stores something that would read back
/// otherwise) a hex field that is not lowercase hex, a Solana transaction that is not
/// canonical base64, a value too long for its length prefix, or another schema version.
pub fn encode(r: &Record) -> Result<Vec<u8>, String> {
    if r.v != SCHEMA_VERSION {
        return Err(format!("v: schema version {} has no binary form", r.v));
    }
    let mut w = Writer(Vec::with_capacity(256 + r.intent.len() / 2));
    w.0.push(FORMAT_WITHDRAWAL_V1);
    w.0.extend_from_slice(&r.seq.to_be_bytes());
    w.0.extend_from_slice(&r.created_ms.to_be_bytes());
    w.0.extend_from_slice(&r.updated_ms.to_be_bytes());
    w.0.push(status_code(r.status));
    w.bytes(2, r.id.as_bytes(), "id")?;
    w.hex(&r.intent, "intent")?;
    w.hex(&r.backend_signature, "backend_signature")?;
    w.hex(&r.digest, "digest")?;
    w.flag(r.signature.as_ref());
    if let Some(s) = &r.signature {
        w.hex(s, "signature")?;
    }
    w.count(r.signers.len(), "signers")?;
    for s in &r.signers {
        w.0.extend_from_slice(&s.to_be_bytes());
    }
    w.flag(r.rule.as_ref());
    if let Some(rule) = &r.rule {
        w.bytes(2, rule.as_bytes(), "rule")?;
    }
    w.flag(r.reason.as_ref());
    if let Some(reason) = &r.reason {
        w.bytes(4, reason.as_bytes(), "reason")?;
    }
    w.count(r.approvals.len(), "approvals")?;
    for (admin, sig) in &r.approvals {
        w.hex(admin, "approval admin")?;
        w.hex(sig, "approval signature")?;
    }
    w.flag(r.message.as_ref());
    if let Some(m) = &r.message {
        w.hex(m, "message")?;
    }
    w.flag(r.evm_call.as_ref());
    if let Some((to, data)) = &r.evm_call {
        w.bytes(2, to.as_bytes(), "evm_call to")?;
        w.bytes(4, &unhex(data, "evm_call data")?, "evm_call data")?;
    }
    w.flag(r.solana_transaction.as_ref());
    if let Some(t) = &r.solana_transaction {
        let raw = B64
            .decode(t)
            .map_err(|e| format!("solana_transaction: {e}"))?;
        if B64.encode(&raw) != *t {
            return Err("solana_transaction: not canonical base64".into());
        }
        w.bytes(4, &raw, "solana_transaction")?;
    }
    w.flag(r.retry_at_ms.as_ref());
    if let Some(at) = r.retry_at_ms {
        w.0.extend_from_slice(&at.to_be_bytes());
    }
    Ok(w.0)
}

/// Reads a stored record: the binary form, or the JSON earlier versions stored.
pub fn decode(bytes: &[u8]) -> Result<Record, String> {
    match bytes.first() {
        Some(&FORMAT_WITHDRAWAL_V1) => decode_v1(bytes),
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        Some(b) => Err(format!("unknown record format byte 0x{b:02x}")),
        None => Err("empty record".into()),
    }
}

/// A bin16 field, as the in-memory record holds it: lowercase hex.
fn hex16(r: &mut Reader<'_>, field: &str) -> Result<String, String> {
    Ok(hex::encode(r.bytes(2, usize::MAX, field)?))
}

fn decode_v1(bytes: &[u8]) -> Result<Record, String> {
    let mut r = Reader::new(bytes);
    r.u8("format")?;
    let seq = r.u64("seq")?;
    let created_ms = r.u64("created_ms")?;
    let updated_ms = r.u64("updated_ms")?;
    let status = status_of(r.u8("status")?)?;
    let id = r.text(2, usize::MAX, "id")?.to_string();
    let intent = hex16(&mut r, "intent")?;
    let backend_signature = hex16(&mut r, "backend_signature")?;
    let digest = hex16(&mut r, "digest")?;
    let signature = r
        .flag("signature flag")?
        .then(|| hex16(&mut r, "signature"))
        .transpose()?;
    let n = r.u16("number of signers")?;
    let signers = (0..n)
        .map(|_| r.u16("signer"))
        .collect::<Result<Vec<_>, _>>()?;
    let rule = r
        .flag("rule flag")?
        .then(|| r.text(2, usize::MAX, "rule").map(str::to_string))
        .transpose()?;
    let reason = r
        .flag("reason flag")?
        .then(|| r.text(4, usize::MAX, "reason").map(str::to_string))
        .transpose()?;
    let n = r.u16("number of approvals")?;
    let approvals = (0..n)
        .map(|_| {
            Ok((
                hex16(&mut r, "approval admin")?,
                hex16(&mut r, "approval signature")?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let message = r
        .flag("message flag")?
        .then(|| hex16(&mut r, "message"))
        .transpose()?;
    let evm_call = if r.flag("evm_call flag")? {
        let to = r.text(2, usize::MAX, "evm_call to")?.to_string();
        let data = hex::encode(r.bytes(4, usize::MAX, "evm_call data")?);
        Some((to, data))
    } else {
        None
    };
    let solana_transaction = r
        .flag("solana flag")?
        .then(|| {
            r.bytes(4, usize::MAX, "solana_transaction")
                .map(|b| B64.encode(b))
        })
        .transpose()?;
    let retry_at_ms = r
        .flag("retry_at flag")?
        .then(|| r.u64("retry_at_ms"))
        .transpose()?;
    r.finish()?;
    Ok(Record {
        v: SCHEMA_VERSION,
        seq,
        id,
        intent,
        backend_signature,
        digest,
        status,
        signature,
        signers,
        rule,
        reason,
        created_ms,
        updated_ms,
        approvals,
        message,
        evm_call,
        solana_transaction,
        retry_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use quorate_core::intent::WithdrawalIntent;

    use super::*;

    fn signed() -> Record {
        let intent = WithdrawalIntent::from_parts(
            "wd-0001",
            "ethereum",
            "ETH",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "1000000000000000000",
            1_700_000_000_000,
            1_700_000_600_000,
            None,
        )
        .unwrap();
        Record {
            v: SCHEMA_VERSION,
            seq: 41,
            id: intent.id.clone(),
            intent: hex::encode(intent.encode()),
            backend_signature: hex::encode([0x5a; 64]),
            digest: intent.digest_hex(),
            status: Status::Signed,
            signature: Some(hex::encode([0x02; 65])),
            signers: vec![1, 3],
            rule: None,
            reason: None,
            created_ms: 1_700_000_000_100,
            updated_ms: 1_700_000_000_900,
            approvals: vec![],
            message: None,
            evm_call: None,
            solana_transaction: None,
            retry_at_ms: None,
        }
    }

    /// Every optional part present.
    fn full() -> Record {
        Record {
            status: Status::Failed,
            rule: Some("not-enough-signers".into()),
            reason: Some("2 of 3 answered; é".into()),
            approvals: vec![
                (hex::encode([0x03; 33]), hex::encode([0x11; 64])),
                (hex::encode([0x02; 33]), hex::encode([0x22; 70])),
            ],
            message: Some(hex::encode([0x77; 32])),
            evm_call: Some((
                "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359".into(),
                hex::encode([0xab; 196]),
            )),
            solana_transaction: Some(B64.encode([0x01; 301])),
            retry_at_ms: Some(1_700_086_400_000),
            ..signed()
        }
    }

    #[test]
    fn round_trips_and_reads_the_json_form() {
        for r in [signed(), full()] {
            let b = encode(&r).unwrap();
            assert_eq!(b[0], FORMAT_WITHDRAWAL_V1);
            let back = decode(&b).unwrap();
            assert_eq!(back, r);
            assert_eq!(encode(&back).unwrap(), b);
            assert_eq!(decode(&serde_json::to_vec(&r).unwrap()).unwrap(), r);
        }
        // An empty digest and intent (as a unit test's record has) round-trip too.
        let bare = Record {
            intent: String::new(),
            digest: "00".into(),
            ..signed()
        };
        assert_eq!(decode(&encode(&bare).unwrap()).unwrap(), bare);
    }

    /// The example of docs/storage.md: its fixed part, id and length.
    #[test]
    fn the_documented_example() {
        let b = encode(&signed()).unwrap();
        assert_eq!(b.len(), 338);
        assert_eq!(
            hex::encode(&b[..35]),
            "c100000000000000290000018bcfe568640000018bcfe56b8403000777642d30303031"
        );
        assert_eq!(
            hex::encode(&b[b.len() - 14..]),
            "0002000100030000000000000000"
        );
    }

    /// Sizes of typical records (run with `--nocapture` to see them).
    #[test]
    fn the_binary_form_is_smaller() {
        for (what, r) in [("signed", signed()), ("every field", full())] {
            let (bin, json) = (
                encode(&r).unwrap().len(),
                serde_json::to_vec(&r).unwrap().len(),
            );
            println!(
                "coordinator withdrawal record ({what}): binary {bin} bytes, JSON {json} bytes"
            );
            assert!(bin < json);
        }
    }

    #[test]
    fn malformed_input_is_refused() {
        let good = encode(&full()).unwrap();
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "cut at {n}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode(&trailing).unwrap_err().contains("trailing"));
        let mut b = good.clone();
        b[0] = 0xC2;
        assert!(decode(&b).unwrap_err().contains("0xc2"));
        let mut b = good.clone();
        b[25] = 8;
        assert!(decode(&b).unwrap_err().contains("status"));
        let mut b = good.clone();
        b[28] = 0xff; // the id's first byte
        assert!(decode(&b).unwrap_err().contains("UTF-8"));
        // The signature flag sits after id, intent, backend signature and digest.
        let r = full();
        let flag = 26 + 2 + r.id.len() + 2 + r.intent.len() / 2 + 2 + 64 + 2 + 32;
        assert_eq!(good[flag], 1);
        let mut b = good.clone();
        b[flag] = 2;
        assert!(decode(&b).unwrap_err().contains("0 or 1"));
        assert!(decode(b"").is_err());
        assert!(decode(b"{\"v\":1}").is_err());
    }

    #[test]
    fn what_would_not_read_back_is_not_written() {
        let upper = Record {
            digest: signed().digest.to_uppercase(),
            ..signed()
        };
        assert!(encode(&upper).unwrap_err().contains("digest"));
        let odd = Record {
            signature: Some("abc".into()),
            ..signed()
        };
        assert!(encode(&odd).unwrap_err().contains("signature"));
        let padded = Record {
            solana_transaction: Some("AQ".into()),
            ..signed()
        };
        assert!(encode(&padded).is_err());
        let other = Record { v: 2, ..signed() };
        assert!(encode(&other).unwrap_err().contains("schema"));
    }

    /// A deterministic source of shapes (xorshift).
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, max: u64) -> Vec<u8> {
            let n = self.next() % (max + 1);
            (0..n).map(|_| self.next() as u8).collect()
        }
        fn hex(&mut self, max: u64) -> String {
            hex::encode(self.bytes(max))
        }
        fn text(&mut self, max: u64) -> String {
            String::from_utf8_lossy(&self.bytes(max)).into_owned()
        }
        fn one_in(&mut self, n: u64) -> bool {
            self.next().is_multiple_of(n)
        }
    }

    /// A deterministic walk over records of every shape.
    #[test]
    fn generated_records_round_trip() {
        let statuses = [
            Status::Received,
            Status::Signing,
            Status::Signed,
            Status::Refused,
            Status::Failed,
            Status::Expired,
            Status::PendingApproval,
        ];
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2_000 {
            let r = Record {
                v: SCHEMA_VERSION,
                seq: g.next(),
                id: g.text(40),
                intent: g.hex(300),
                backend_signature: g.hex(72),
                digest: g.hex(32),
                status: statuses[(g.next() % 7) as usize],
                signature: g.one_in(2).then(|| g.hex(65)),
                signers: g.bytes(6).into_iter().map(u16::from).collect(),
                rule: g.one_in(3).then(|| g.text(30)),
                reason: g.one_in(3).then(|| g.text(200)),
                created_ms: g.next(),
                updated_ms: g.next(),
                approvals: (0..g.next() % 3).map(|_| (g.hex(33), g.hex(64))).collect(),
                message: g.one_in(4).then(|| g.hex(32)),
                evm_call: g.one_in(4).then(|| (g.text(42), g.hex(200))),
                solana_transaction: g.one_in(5).then(|| B64.encode(g.bytes(400))),
                retry_at_ms: g.one_in(4).then(|| g.next()),
            };
            let b = encode(&r).unwrap();
            let back = decode(&b).unwrap();
            assert_eq!(back, r);
            assert_eq!(encode(&back).unwrap(), b);
        }
    }
}
