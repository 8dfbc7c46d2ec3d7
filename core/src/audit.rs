//! The audit log (invariant S7): an append-only, hash-chained record of every decision a node
//! makes, verifiable offline.
//!
//! A record carries its sequence number (from 1), its time, the hash of the record before it
//! (32 zero bytes for the first), a kind and string fields. Its hash is SHA-256 over a fixed,
//! length-prefixed layout under a domain tag, so changing any byte of any record breaks the
//! chain from that record on. When a signer exports its log it signs the chain head (sequence
//! number and hash) with its identity key, so a log relayed by the untrusted coordinator or
//! stored by an auditor cannot be rewritten or cut short without the signature failing.
//!
//! The shells persist records (sled) in the binary form of [`Record::encode`]
//! (docs/storage.md); this module builds, encodes and verifies them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::{IdentityPublic, IdentitySecret};

mod cross;
mod stored;
mod throttle;
pub use cross::{cross_check, CrossCheck};
pub use stored::FORMAT_BINARY_V1;
pub use throttle::{Admit, RefusalThrottle, REFUSALS_PER_SECOND};

/// Layout version of a record; part of its hash.
pub const SCHEMA_VERSION: u32 = 1;
/// Domain tag of a record's hash.
const RECORD_DOMAIN: &[u8] = b"quorate-audit-record-v1\0";
/// Domain of a signer's signature over its chain head.
pub const HEAD_DOMAIN: &str = "quorate-audit-head-v1";
/// Longest field value kept; longer values (reasons quoting input) are cut at a char boundary.
pub const MAX_VALUE_LEN: usize = 512;
/// Longest kind or field name.
pub const MAX_NAME_LEN: usize = 64;
/// Most fields in one record.
pub const MAX_FIELDS: usize = 16;

/// Record kinds. Stable: auditors' tooling matches on them.
pub mod kind {
    /// The coordinator accepted a withdrawal request for processing.
    pub const WITHDRAWAL_RECEIVED: &str = "withdrawal-received";
    /// A node refused a request; fields name the rule.
    pub const REFUSED: &str = "refused";
    /// A signer released a signature share for a withdrawal.
    pub const SHARE_RELEASED: &str = "share-released";
    /// The coordinator aggregated, verified and stored a group signature.
    pub const WITHDRAWAL_SIGNED: &str = "withdrawal-signed";
    /// A signing attempt failed (not enough signers, …).
    pub const WITHDRAWAL_FAILED: &str = "withdrawal-failed";
    /// A withdrawal waits for admin approvals.
    pub const APPROVAL_PENDING: &str = "approval-pending";
    /// An admin approved a pending withdrawal.
    pub const WITHDRAWAL_APPROVED: &str = "withdrawal-approved";
    /// A signer counted a withdrawal signed by other signers (ledger notice).
    pub const LEDGER_NOTICE: &str = "ledger-notice";
    /// A signer was shown to have sent an invalid share.
    pub const CULPRIT: &str = "culprit";
    /// A policy version was proposed.
    pub const POLICY_PROPOSED: &str = "policy-proposed";
    /// An admin approved a policy version.
    pub const POLICY_APPROVED: &str = "policy-approved";
    /// A policy version was vetoed.
    pub const POLICY_VETOED: &str = "policy-vetoed";
    /// A policy version was accepted and scheduled behind its time-lock.
    pub const POLICY_SCHEDULED: &str = "policy-scheduled";
    /// A policy version came into force.
    pub const POLICY_APPLIED: &str = "policy-applied";
    /// A DKG finished with a group key.
    pub const DKG_FINISHED: &str = "dkg-finished";
    /// A DKG aborted.
    pub const DKG_ABORTED: &str = "dkg-aborted";
    /// A signer's link came up.
    pub const SIGNER_CONNECTED: &str = "signer-connected";
    /// A signer's link went down.
    pub const SIGNER_DROPPED: &str = "signer-dropped";
    /// The node started.
    pub const NODE_STARTED: &str = "node-started";
    /// A signer saw its operator's local freeze set or lifted.
    pub const LOCAL_FREEZE: &str = "local-freeze";
    /// A signer released a share of a vault administration message its policy lists.
    pub const VAULT_SHARE_RELEASED: &str = "vault-share-released";
    /// The coordinator released a group signature of a vault administration message.
    pub const VAULT_ACTION_SIGNED: &str = "vault-action-signed";
    /// The Ed25519 group's share of a Solana nonce void released (signer), or the void
    /// signed (coordinator).
    pub const SOLANA_NONCE_VOIDED: &str = "solana-nonce-voided";
    /// A helper sealed its part of a lost share to the repair's target (signer).
    pub const REPAIR_HELPED: &str = "repair-helped";
    /// A lost share rebuilt, checked against the group's verifying share and stored (signer),
    /// or a repair finished (coordinator).
    pub const SHARE_REPAIRED: &str = "share-repaired";
    /// A repair failed; nothing kept (coordinator).
    pub const REPAIR_ABORTED: &str = "repair-aborted";
    /// A refreshed share stored beside the one in use, acknowledged (signer).
    pub const REFRESH_STORED: &str = "refresh-stored";
    /// A refresh activated: the refreshed share in use, the old one deleted (signer); or every
    /// participant acknowledged and the new public key package is in use (coordinator).
    pub const KEY_REFRESHED: &str = "key-refreshed";
    /// A new signer enrolled: its verifying share added to the group's public key package
    /// (signer: each holder; coordinator).
    pub const HOLDER_ADDED: &str = "holder-added";
    /// A refresh failed; every signer keeps its old share (coordinator).
    pub const REFRESH_ABORTED: &str = "refresh-aborted";
    /// What another coordinator of the cluster carried, learned from the signers: a policy
    /// version or veto (checked as if filed here), or a key package t signers report alike
    /// (coordinator).
    pub const LEARNED: &str = "learned-from-signers";
}

/// What went wrong with a log, and where: the first bad record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{what}", location(*line, *seq))]
#[non_exhaustive]
pub struct AuditError {
    /// 1-based line of the export, if the error is tied to one.
    pub line: Option<usize>,
    /// Sequence number of the record, if known.
    pub seq: Option<u64>,
    /// What is wrong.
    pub what: String,
}

fn location(line: Option<usize>, seq: Option<u64>) -> String {
    match (line, seq) {
        (Some(l), Some(s)) => format!("line {l}, record {s}: "),
        (Some(l), None) => format!("line {l}: "),
        (None, Some(s)) => format!("record {s}: "),
        (None, None) => String::new(),
    }
}

impl AuditError {
    fn at(line: Option<usize>, seq: Option<u64>, what: impl Into<String>) -> Self {
        Self {
            line,
            seq,
            what: what.into(),
        }
    }
}

/// One decision to record: a kind and named string fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The record kind (see [`kind`]).
    pub kind: String,
    /// Named values, in name order.
    pub fields: BTreeMap<String, String>,
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Event {
    /// An event of `kind` with no fields.
    pub fn new(kind: &str) -> Self {
        Self {
            kind: cut(kind, MAX_NAME_LEN).to_string(),
            fields: BTreeMap::new(),
        }
    }

    /// Adds a field; the value is cut to [`MAX_VALUE_LEN`] bytes and fields past
    /// [`MAX_FIELDS`] are dropped, so a record's size is bounded whatever the input.
    pub fn with(mut self, name: &str, value: impl AsRef<str>) -> Self {
        if self.fields.len() < MAX_FIELDS {
            self.fields.insert(
                cut(name, MAX_NAME_LEN).to_string(),
                cut(value.as_ref(), MAX_VALUE_LEN).to_string(),
            );
        }
        self
    }

    /// A refusal of `what` (for example `sign`) under `rule`.
    pub fn refused(what: &str, rule: &str, reason: &str) -> Self {
        Self::new(kind::REFUSED)
            .with("request", what)
            .with("rule", rule)
            .with("reason", reason)
    }

    /// The value of field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// One record of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Unix milliseconds; never earlier than the record before.
    pub at_ms: u64,
    /// Hash of the record before (zeros for the first).
    pub prev: [u8; 32],
    /// What happened.
    pub event: Event,
    /// This record's hash.
    pub hash: [u8; 32],
}

fn put_bytes(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u32).to_be_bytes());
    h.update(b);
}

/// The hash of a record with these contents.
pub fn record_hash(seq: u64, at_ms: u64, prev: &[u8; 32], event: &Event) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(RECORD_DOMAIN);
    h.update(SCHEMA_VERSION.to_be_bytes());
    h.update(seq.to_be_bytes());
    h.update(at_ms.to_be_bytes());
    h.update(prev);
    put_bytes(&mut h, event.kind.as_bytes());
    h.update((event.fields.len() as u32).to_be_bytes());
    for (k, v) in &event.fields {
        put_bytes(&mut h, k.as_bytes());
        put_bytes(&mut h, v.as_bytes());
    }
    h.finalize().into()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordJson {
    v: u32,
    seq: u64,
    at_ms: u64,
    prev: String,
    kind: String,
    fields: BTreeMap<String, String>,
    hash: String,
}

fn hash32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

impl Record {
    /// The record as one line of JSON (no newline): the export form, and the form nodes stored
    /// before [`Record::encode`].
    pub fn to_json(&self) -> String {
        let j = RecordJson {
            v: SCHEMA_VERSION,
            seq: self.seq,
            at_ms: self.at_ms,
            prev: hex::encode(self.prev),
            kind: self.event.kind.clone(),
            fields: self.event.fields.clone(),
            hash: hex::encode(self.hash),
        };
        // A struct of integers, strings and a string map always serialises.
        serde_json::to_string(&j).unwrap_or_default()
    }

    /// Parses a record's JSON form. Does not check its hash: [`verify_chain`] does.
    pub fn from_json(s: &str) -> Result<Self, String> {
        let j: RecordJson = serde_json::from_str(s).map_err(|e| format!("not a record: {e}"))?;
        if j.v != SCHEMA_VERSION {
            return Err(format!("unsupported record version {}", j.v));
        }
        let prev = hash32(&j.prev).ok_or("prev: not 32 bytes of lowercase hex")?;
        let hash = hash32(&j.hash).ok_or("hash: not 32 bytes of lowercase hex")?;
        let r = Self {
            seq: j.seq,
            at_ms: j.at_ms,
            prev,
            event: Event {
                kind: j.kind,
                fields: j.fields,
            },
            hash,
        };
        // One spelling per record: escapes, spacing or key order other than ours are refused.
        if r.to_json() != s {
            return Err("not in canonical form (as `quorate audit export` writes it)".into());
        }
        Ok(r)
    }

    /// True if the stored hash is the hash of the contents.
    pub fn hash_ok(&self) -> bool {
        record_hash(self.seq, self.at_ms, &self.prev, &self.event) == self.hash
    }
}

/// The head of a chain, as a node keeps it in memory: the next record's position and
/// predecessor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    last_seq: u64,
    last_hash: [u8; 32],
    last_at_ms: u64,
}

impl Chain {
    /// Resumes after `last` (the newest stored record), or starts empty.
    pub fn resume(last: Option<&Record>) -> Self {
        match last {
            Some(r) => Self {
                last_seq: r.seq,
                last_hash: r.hash,
                last_at_ms: r.at_ms,
            },
            None => Self {
                last_seq: 0,
                last_hash: [0; 32],
                last_at_ms: 0,
            },
        }
    }

    /// The record that would come next. The caller persists it, then calls
    /// [`Chain::advance`]; a failed write leaves the chain where it was.
    pub fn prepare(&self, now_ms: u64, event: Event) -> Record {
        let seq = self.last_seq + 1;
        // Times never go backwards in a chain, even when the wall clock does.
        let at_ms = now_ms.max(self.last_at_ms);
        let hash = record_hash(seq, at_ms, &self.last_hash, &event);
        Record {
            seq,
            at_ms,
            prev: self.last_hash,
            event,
            hash,
        }
    }

    /// Moves the head to `r`, which must be the record [`Chain::prepare`] returned.
    pub fn advance(&mut self, r: &Record) {
        debug_assert_eq!(r.seq, self.last_seq + 1);
        self.last_seq = r.seq;
        self.last_hash = r.hash;
        self.last_at_ms = r.at_ms;
    }

    /// Sequence number of the newest record (0: none).
    pub fn seq(&self) -> u64 {
        self.last_seq
    }

    /// Hash of the newest record (zeros: none).
    pub fn hash(&self) -> [u8; 32] {
        self.last_hash
    }
}

/// The last line of an export: whose log it is and where it ends, signed by a signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// Node name (`coordinator` or the signer's manifest name).
    pub node: String,
    /// `coordinator` or `signer`.
    pub role: String,
    /// Sequence number of the last record.
    pub seq: u64,
    /// Hash of the last record, lowercase hex.
    pub hash: String,
    /// For a coordinator: the cluster's threshold t, used to cross-check signers' logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u16>,
    /// For a signer: its identity key (hex) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_key: Option<String>,
    /// ... and its signature over (node, role, seq, hash, nonce) under [`HEAD_DOMAIN`] (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The exporter's challenge (hex), signed with the head: a head signed for another export
    /// (an older, shorter log) carries another nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Longest export nonce.
pub const MAX_NONCE_LEN: usize = 64;

fn head_parts<'a>(
    node: &'a str,
    role: &'a str,
    seq: &'a [u8; 8],
    hash: &'a [u8; 32],
    nonce: &'a [u8],
) -> [&'a [u8]; 5] {
    [node.as_bytes(), role.as_bytes(), seq, hash, nonce]
}

impl Head {
    /// A signer's head, signed over `nonce` (the exporter's challenge).
    pub fn signed(node: &str, chain: &Chain, key: &IdentitySecret, nonce: &[u8]) -> Self {
        let seq = chain.seq().to_be_bytes();
        let hash = chain.hash();
        let sig = key.sign(HEAD_DOMAIN, &head_parts(node, "signer", &seq, &hash, nonce));
        Self {
            node: node.to_string(),
            role: "signer".into(),
            seq: chain.seq(),
            hash: hex::encode(hash),
            threshold: None,
            identity_key: Some(key.public().to_string()),
            signature: Some(hex::encode(sig)),
            nonce: (!nonce.is_empty()).then(|| hex::encode(nonce)),
        }
    }

    /// The coordinator's head (unsigned: the coordinator is trusted for liveness only).
    pub fn coordinator(chain: &Chain, threshold: u16, nonce: &[u8]) -> Self {
        Self {
            node: "coordinator".into(),
            role: "coordinator".into(),
            seq: chain.seq(),
            hash: hex::encode(chain.hash()),
            threshold: Some(threshold),
            identity_key: None,
            signature: None,
            nonce: (!nonce.is_empty()).then(|| hex::encode(nonce)),
        }
    }

    /// Checks that this head answers the exporter's `nonce`, so it was signed for this export
    /// and not replayed from an earlier (shorter) one.
    pub fn check_fresh(&self, nonce: &[u8]) -> Result<(), String> {
        if self.nonce.as_deref() == Some(hex::encode(nonce).as_str()) {
            Ok(())
        } else {
            Err(format!(
                "the head of {}'s log answers another export (nonce {:?}): replayed",
                self.node, self.nonce
            ))
        }
    }

    /// The head as the last line of an export.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            head: &'a Head,
        }
        serde_json::to_string(&Line { head: self }).unwrap_or_default()
    }

    /// Checks a signer's head signature; returns the key that made it.
    pub fn verify_signature(&self) -> Result<IdentityPublic, String> {
        // One spelling only: lowercase hex, as written by `Head::signed`.
        let lower = |s: &&str| !s.bytes().any(|b| b.is_ascii_uppercase());
        let key = self
            .identity_key
            .as_deref()
            .filter(lower)
            .ok_or("a signer's head must carry its identity key in lowercase hex")?;
        let key = IdentityPublic::from_hex(key).map_err(|e| e.to_string())?;
        let sig = self
            .signature
            .as_deref()
            .filter(lower)
            .and_then(|s| hex::decode(s).ok())
            .ok_or("a signer's head must carry a signature in lowercase hex")?;
        let hash = hash32(&self.hash).ok_or("head hash: not 32 bytes of lowercase hex")?;
        let nonce = match self.nonce.as_deref().filter(lower) {
            Some(n) => hex::decode(n).map_err(|_| "head nonce: not hex".to_string())?,
            None if self.nonce.is_none() => Vec::new(),
            None => return Err("head nonce: not lowercase hex".into()),
        };
        let seq = self.seq.to_be_bytes();
        key.verify(
            HEAD_DOMAIN,
            &head_parts(&self.node, &self.role, &seq, &hash, &nonce),
            &sig,
        )
        .map_err(|_| "the head signature does not verify".to_string())?;
        Ok(key)
    }
}

/// A verified log.
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    /// Its head line.
    pub head: Head,
    /// Every record, in order.
    pub records: Vec<Record>,
    /// For a signer, the identity key that signed the head.
    pub key: Option<IdentityPublic>,
}

/// Checks that `records` form one unbroken chain from the first record: consecutive sequence
/// numbers from 1, each `prev` the hash of the one before, each hash right, times never going
/// back. Names the first bad record.
pub fn verify_chain(records: &[Record]) -> Result<(), AuditError> {
    let mut chain = Chain::resume(None);
    for r in records {
        check_next(&chain, r, None)?;
        chain.advance(r);
    }
    Ok(())
}

fn check_next(chain: &Chain, r: &Record, line: Option<usize>) -> Result<(), AuditError> {
    let bad = |what: String| Err(AuditError::at(line, Some(r.seq), what));
    if r.seq != chain.seq() + 1 {
        return bad(format!(
            "sequence number {} where {} was expected (a record is missing, repeated or out of order)",
            r.seq,
            chain.seq() + 1
        ));
    }
    if r.prev != chain.hash() {
        return bad("prev is not the hash of the record before".into());
    }
    if !r.hash_ok() {
        return bad("the record's contents do not match its hash (altered)".into());
    }
    if r.at_ms < chain.last_at_ms {
        return bad("its time is earlier than the record before".into());
    }
    Ok(())
}

/// Verifies one exported log: records as JSON lines, then one head line. For a signer's log the
/// head must be signed by the signer's identity key and, if `expected_key` is given (from the
/// manifest), by that key. Names the first bad line.
pub fn verify_export(
    text: &str,
    expected_key: Option<&IdentityPublic>,
) -> Result<VerifiedLog, AuditError> {
    verify_export_pinned(text, |_| Ok(expected_key.copied()))
}

/// Like [`verify_export`], with the expected key chosen from the head itself: `pin` gets the
/// parsed head (for example to look its node up in a manifest) and returns the key it must be
/// signed by, or why that node cannot be accepted.
pub fn verify_export_pinned(
    text: &str,
    pin: impl FnOnce(&Head) -> Result<Option<IdentityPublic>, String>,
) -> Result<VerifiedLog, AuditError> {
    let mut chain = Chain::resume(None);
    let mut records = Vec::new();
    let mut head: Option<(usize, Head)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some((hl, _)) = &head {
            return Err(AuditError::at(
                Some(n),
                None,
                format!("a line follows the head on line {hl}"),
            ));
        }
        if line.starts_with("{\"head\"") {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Line {
                head: Head,
            }
            let h: Line = serde_json::from_str(line)
                .map_err(|e| AuditError::at(Some(n), None, format!("not a head line: {e}")))?;
            head = Some((n, h.head));
            continue;
        }
        let r = Record::from_json(line).map_err(|e| AuditError::at(Some(n), None, e))?;
        check_next(&chain, &r, Some(n))?;
        chain.advance(&r);
        records.push(r);
    }
    let (hl, head) = head.ok_or_else(|| {
        AuditError::at(
            None,
            None,
            "no head line: the export is incomplete or cut short",
        )
    })?;
    let at = |what: String| AuditError::at(Some(hl), None, what);
    if head.seq != chain.seq() || head.hash != hex::encode(chain.hash()) {
        return Err(at(format!(
            "the head names record {} but the log ends at record {} (records removed, added or altered)",
            head.seq,
            chain.seq()
        )));
    }
    let expected = pin(&head).map_err(at)?;
    let expected_key = expected.as_ref();
    let key = match head.role.as_str() {
        "signer" => {
            let key = head.verify_signature().map_err(at)?;
            if let Some(want) = expected_key {
                if *want != key {
                    return Err(at(format!(
                        "the head is signed by {key}, not by {}'s pinned identity key {want}",
                        head.node
                    )));
                }
            }
            Some(key)
        }
        // Only the coordinator's own log goes unsigned; a signer's log relabelled as the
        // coordinator's would otherwise escape its signature check.
        "coordinator" if head.node == "coordinator" && expected_key.is_none() => None,
        "coordinator" => {
            return Err(at(format!(
                "`{}` presents an unsigned coordinator head; only the coordinator's log may be unsigned",
                head.node
            )))
        }
        other => return Err(at(format!("unknown role `{other}`"))),
    };
    Ok(VerifiedLog { head, records, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain_of(n: u64) -> Vec<Record> {
        let mut c = Chain::resume(None);
        (0..n)
            .map(|i| {
                let r = c.prepare(
                    1000 + i,
                    Event::new(kind::SHARE_RELEASED).with("withdrawal", format!("w{i}")),
                );
                c.advance(&r);
                r
            })
            .collect()
    }

    #[test]
    fn cut_respects_char_boundaries() {
        let e = Event::new("k").with("v", "é".repeat(MAX_VALUE_LEN));
        let v = e.field("v").unwrap();
        assert!(v.len() <= MAX_VALUE_LEN && v.len() >= MAX_VALUE_LEN - 1);
        assert!(v.chars().all(|c| c == 'é'));
    }

    #[test]
    fn fields_are_bounded() {
        let mut e = Event::new("k");
        for i in 0..100 {
            e = e.with(&format!("f{i:03}"), "x");
        }
        assert_eq!(e.fields.len(), MAX_FIELDS);
    }

    #[test]
    fn time_never_goes_back() {
        let mut c = Chain::resume(None);
        let a = c.prepare(500, Event::new("a"));
        c.advance(&a);
        let b = c.prepare(100, Event::new("b"));
        assert_eq!(b.at_ms, 500);
    }

    #[test]
    fn a_chain_verifies_and_each_kind_of_damage_is_named() {
        let recs = chain_of(5);
        verify_chain(&recs).unwrap();

        let mut dropped = recs.clone();
        dropped.remove(2);
        assert_eq!(verify_chain(&dropped).unwrap_err().seq, Some(4));

        let mut altered = recs.clone();
        altered[3].event = altered[3].event.clone().with("withdrawal", "evil");
        assert_eq!(verify_chain(&altered).unwrap_err().seq, Some(4));

        let mut rehashed = recs.clone();
        rehashed[1].at_ms += 1;
        rehashed[1].hash = record_hash(
            rehashed[1].seq,
            rehashed[1].at_ms,
            &rehashed[1].prev,
            &rehashed[1].event,
        );
        // Rehashing one record breaks the link to the next one.
        assert_eq!(verify_chain(&rehashed).unwrap_err().seq, Some(3));
    }

    #[test]
    fn record_json_round_trips_and_is_strict() {
        let r = &chain_of(1)[0];
        let j = r.to_json();
        assert_eq!(&Record::from_json(&j).unwrap(), r);
        let upper = j.replace(&hex::encode(r.hash), &hex::encode_upper(r.hash));
        assert!(Record::from_json(&upper).is_err());
        let extra = j.replacen('{', "{\"extra\":1,", 1);
        assert!(Record::from_json(&extra).is_err());
    }
}
