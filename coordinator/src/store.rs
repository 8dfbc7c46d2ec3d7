//! The coordinator's durable state, behind a small trait: withdrawal records (with a sequence
//! index for ordered listing) and the group's public key package. Every record opens with a
//! format byte and every older form stays readable (docs/storage.md). A record is flushed to
//! disk before the answer that depends on it leaves (S6).

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
};

use quorate_core::audit;
use quorate_wire::durable::GroupCommit;
use serde::{Deserialize, Serialize};

pub mod codec;
pub use codec::FORMAT_WITHDRAWAL_V1;

/// Schema version of every record (its binary form's format byte stands for it).
pub const SCHEMA_VERSION: u32 = 1;

const META_PUBLIC_KEY_PACKAGE: &str = "public_key_package";

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sled::Error),
    /// A record does not decode.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// Key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A flush to disk failed: what was written since the last good flush may be lost.
    #[error("database flush: {0}")]
    Flush(String),
}

/// Where a withdrawal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Stored, not yet being signed.
    Received,
    /// A quorum is being gathered.
    Signing,
    /// Signed; the signature is stored.
    Signed,
    /// Refused for good.
    Refused,
    /// Not signed this time; the same id and intent may be submitted again.
    Failed,
    /// Expired before it could be signed.
    Expired,
    /// Above the approval threshold: waits for admin approvals.
    PendingApproval,
}

impl Status {
    /// True once nothing more will happen without a new submission or admin approvals.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Signed
                | Status::Refused
                | Status::Failed
                | Status::Expired
                | Status::PendingApproval
        )
    }
}

/// One withdrawal as the coordinator holds it; stored in the binary form of `codec` (raw
/// bytes where this holds hex or base64), read from that or from this struct's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Schema version.
    pub v: u32,
    /// Insertion sequence, for ordered listing.
    pub seq: u64,
    /// Withdrawal id.
    pub id: String,
    /// Canonical intent encoding, hex.
    pub intent: String,
    /// Backend signature, hex.
    pub backend_signature: String,
    /// Intent digest, hex.
    pub digest: String,
    /// Status.
    pub status: Status,
    /// Group signature (65 bytes) hex, once signed.
    pub signature: Option<String>,
    /// Identifiers whose shares made the signature.
    pub signers: Vec<u16>,
    /// Rule tag of a refusal or failure.
    pub rule: Option<String>,
    /// Human reason of a refusal or failure.
    pub reason: Option<String>,
    /// Created, unix ms.
    pub created_ms: u64,
    /// Last change, unix ms.
    pub updated_ms: u64,
    /// Admin approvals (admin key hex, signature hex) of a withdrawal above its approval
    /// threshold.
    #[serde(default)]
    pub approvals: Vec<(String, String)>,
    /// The message the group signed, hex, when it is not the intent digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The vault call that pays a signed withdrawal out: (vault address, calldata hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evm_call: Option<(String, String)>,
    /// A signed Solana withdrawal's transaction, serialized, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solana_transaction: Option<String>,
    /// A failed withdrawal's refusal frees up at this time (Unix ms), when known: the
    /// signers' velocity ledgers said so. Answered as the refusal's `RetryInfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at_ms: Option<u64>,
}

/// Outcome of inserting a new record.
#[derive(Debug)]
pub enum Insert {
    /// Inserted.
    New,
    /// A record with this id exists.
    Exists(Box<Record>),
}

/// What the coordinator persists. Implementations must make `insert_new` atomic.
pub trait WithdrawalStore: Send + Sync + 'static {
    /// Disk flushes run so far, and the durability requests they served (group commit).
    fn flush_counts(&self) -> (u64, u64) {
        (0, 0)
    }
    /// Flushes everything written so far to disk. Blocking: call off the async reactor.
    fn flush(&self) -> Result<(), StoreError>;
    /// A fresh, increasing sequence number.
    fn next_seq(&self) -> Result<u64, StoreError>;
    /// Inserts `r` unless its id exists (atomic). Not flushed.
    fn insert_new(&self, r: &Record) -> Result<Insert, StoreError>;
    /// Overwrites an existing record. Not flushed.
    fn update(&self, r: &Record) -> Result<(), StoreError>;
    /// Reads one record.
    fn get(&self, id: &str) -> Result<Option<Record>, StoreError>;
    /// Records in insertion order after sequence `after` that satisfy `keep`, at most
    /// `limit`; and whether more may follow.
    fn list(
        &self,
        after: Option<u64>,
        limit: usize,
        keep: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<(Vec<Record>, bool), StoreError>;
    /// Every record whose status is `status`.
    fn with_status(&self, status: Status) -> Result<Vec<Record>, StoreError>;
    /// The stored public key package, if DKG has finished.
    fn public_key_package(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores the public key package durably.
    fn put_public_key_package(&self, bytes: &[u8]) -> Result<(), StoreError>;
    /// Reads a metadata value (policy state, proposals).
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes a metadata value durably.
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Writes several metadata values atomically and durably (one flush).
    fn put_metas(&self, kvs: &[(&str, &[u8])]) -> Result<(), StoreError>;
    /// Appends an audit record. Not flushed: the next flush (before any answer that depends on
    /// the decision it records) makes it durable.
    fn append_audit(&self, r: &audit::Record) -> Result<(), StoreError>;
    /// The newest audit record.
    fn last_audit(&self) -> Result<Option<audit::Record>, StoreError>;
    /// Audit records from sequence number `from` on, at most `limit`.
    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<audit::Record>, StoreError>;
}

fn audit_decode(v: &[u8]) -> Result<audit::Record, StoreError> {
    audit::Record::decode(v).map_err(|reason| StoreError::Corrupt {
        key: "audit".into(),
        reason,
    })
}

/// The store as the coordinator holds it.
pub type Store = Arc<dyn WithdrawalStore>;

/// sled's page cache. Its default (1 GiB) lets a long-running node's memory grow with its
/// history; the working set (recent withdrawals, the ledger, the audit tail) is far smaller.
const CACHE_BYTES: u64 = 64 << 20;

/// sled-backed coordinator store, one database per coordinator.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    withdrawals: sled::Tree,
    by_seq: sled::Tree,
    meta: sled::Tree,
    audit: sled::Tree,
    commit: Arc<GroupCommit>,
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<Record, StoreError> {
    codec::decode(bytes).map_err(|reason| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    })
}

fn encode(r: &Record) -> Result<Vec<u8>, StoreError> {
    // Should a record hold what its binary form cannot carry back, nothing is written rather
    // than a record that would read back otherwise.
    codec::encode(r).map_err(|e| StoreError::Corrupt {
        key: r.id.clone(),
        reason: format!("encoding: {e}"),
    })
}

impl SledStore {
    /// Makes every write made so far durable: one disk sync shared by every caller waiting at
    /// the same time (group commit). Blocking.
    fn sync(&self) -> Result<(), StoreError> {
        self.commit
            .sync(|| self.db.flush().map(drop))
            .map_err(StoreError::Flush)
    }

    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let incomplete = quorate_wire::durable::remove_incomplete_snapshots(dir)
            .map_err(|e| StoreError::Db(sled::Error::Io(e)))?;
        for f in incomplete {
            tracing::warn!(file = %f.display(), "removed an incomplete database snapshot left by a crash");
        }
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        Ok(Self {
            withdrawals: db.open_tree("withdrawals")?,
            by_seq: db.open_tree("withdrawals_by_seq")?,
            meta: db.open_tree("meta")?,
            audit: db.open_tree("audit")?,
            db,
            commit: Arc::new(GroupCommit::new()),
        })
    }
}

impl WithdrawalStore for SledStore {
    fn flush_counts(&self) -> (u64, u64) {
        self.commit.counts()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.sync()?;
        Ok(())
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    fn insert_new(&self, r: &Record) -> Result<Insert, StoreError> {
        match self.withdrawals.compare_and_swap(
            r.id.as_bytes(),
            None as Option<&[u8]>,
            Some(encode(r)?),
        )? {
            Ok(()) => {
                self.by_seq.insert(r.seq.to_be_bytes(), r.id.as_bytes())?;
                Ok(Insert::New)
            }
            Err(cas) => match cas.current {
                Some(cur) => Ok(Insert::Exists(Box::new(decode(r.id.as_bytes(), &cur)?))),
                None => Err(StoreError::Corrupt {
                    key: r.id.clone(),
                    reason: "vanished during compare-and-swap".into(),
                }),
            },
        }
    }

    fn update(&self, r: &Record) -> Result<(), StoreError> {
        self.withdrawals.insert(r.id.as_bytes(), encode(r)?)?;
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        self.withdrawals
            .get(id.as_bytes())?
            .map(|v| decode(id.as_bytes(), &v))
            .transpose()
    }

    fn list(
        &self,
        after: Option<u64>,
        limit: usize,
        keep: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<(Vec<Record>, bool), StoreError> {
        let start = after
            .map(|s| s.saturating_add(1))
            .unwrap_or(0)
            .to_be_bytes();
        let mut out = Vec::new();
        for item in self.by_seq.range(start..) {
            let (_, id) = item?;
            let Some(rec) = self.withdrawals.get(&id)? else {
                continue;
            };
            let rec = decode(&id, &rec)?;
            if keep(&rec) {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(rec);
            }
        }
        Ok((out, false))
    }

    fn with_status(&self, status: Status) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        for item in self.withdrawals.iter() {
            let (k, v) = item?;
            let r = decode(&k, &v)?;
            if r.status == status {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn public_key_package(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(META_PUBLIC_KEY_PACKAGE)?.map(|v| v.to_vec()))
    }

    fn put_public_key_package(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(META_PUBLIC_KEY_PACKAGE, bytes)?;
        self.flush()
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key)?.map(|v| v.to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value)?;
        self.flush()
    }

    fn put_metas(&self, kvs: &[(&str, &[u8])]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in kvs {
            batch.insert(*k, *v);
        }
        self.meta.apply_batch(batch)?;
        self.flush()
    }

    fn append_audit(&self, r: &audit::Record) -> Result<(), StoreError> {
        // Append only: a sequence number once written is never written again.
        self.audit
            .compare_and_swap(r.seq.to_be_bytes(), None as Option<&[u8]>, Some(r.encode()))?
            .map_err(|_| StoreError::Corrupt {
                key: "audit".into(),
                reason: format!("record {} exists already", r.seq),
            })?;
        Ok(())
    }

    fn last_audit(&self) -> Result<Option<audit::Record>, StoreError> {
        self.audit
            .last()?
            .map(|(_, v)| audit_decode(&v))
            .transpose()
    }

    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<audit::Record>, StoreError> {
        self.audit
            .range(from.to_be_bytes()..)
            .take(limit)
            .map(|kv| audit_decode(&kv?.1))
            .collect()
    }
}

/// In-memory store for unit tests of the coordinator's logic.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    seq: u64,
    records: BTreeMap<String, Record>,
    by_seq: BTreeMap<u64, String>,
    public_key_package: Option<Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
    audit: BTreeMap<u64, audit::Record>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl WithdrawalStore for MemoryStore {
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        let mut m = self.lock();
        m.seq += 1;
        Ok(m.seq)
    }

    fn insert_new(&self, r: &Record) -> Result<Insert, StoreError> {
        let mut m = self.lock();
        if let Some(cur) = m.records.get(&r.id) {
            return Ok(Insert::Exists(Box::new(cur.clone())));
        }
        m.records.insert(r.id.clone(), r.clone());
        m.by_seq.insert(r.seq, r.id.clone());
        Ok(Insert::New)
    }

    fn update(&self, r: &Record) -> Result<(), StoreError> {
        self.lock().records.insert(r.id.clone(), r.clone());
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        Ok(self.lock().records.get(id).cloned())
    }

    fn list(
        &self,
        after: Option<u64>,
        limit: usize,
        keep: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<(Vec<Record>, bool), StoreError> {
        let m = self.lock();
        let start = after.map(|s| s.saturating_add(1)).unwrap_or(0);
        let mut out = Vec::new();
        for id in m.by_seq.range(start..).map(|(_, id)| id) {
            let Some(rec) = m.records.get(id) else {
                continue;
            };
            if keep(rec) {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(rec.clone());
            }
        }
        Ok((out, false))
    }

    fn with_status(&self, status: Status) -> Result<Vec<Record>, StoreError> {
        Ok(self
            .lock()
            .records
            .values()
            .filter(|r| r.status == status)
            .cloned()
            .collect())
    }

    fn public_key_package(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().public_key_package.clone())
    }

    fn put_public_key_package(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.lock().public_key_package = Some(bytes.to_vec());
        Ok(())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().meta.get(key).cloned())
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.lock().meta.insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn put_metas(&self, kvs: &[(&str, &[u8])]) -> Result<(), StoreError> {
        let mut m = self.lock();
        for (k, v) in kvs {
            m.meta.insert(k.to_string(), v.to_vec());
        }
        Ok(())
    }

    fn append_audit(&self, r: &audit::Record) -> Result<(), StoreError> {
        let mut m = self.lock();
        if m.audit.contains_key(&r.seq) {
            return Err(StoreError::Corrupt {
                key: "audit".into(),
                reason: format!("record {} exists already", r.seq),
            });
        }
        m.audit.insert(r.seq, r.clone());
        Ok(())
    }

    fn last_audit(&self) -> Result<Option<audit::Record>, StoreError> {
        Ok(self.lock().audit.values().next_back().cloned())
    }

    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<audit::Record>, StoreError> {
        Ok(self
            .lock()
            .audit
            .range(from..)
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }
}

/// Opens `dir` again after a handle in this process was dropped. sled's background flusher
/// can hold the file lock for a moment after that (a restarted process never meets this):
/// wait while that is the error, up to 10 s.
#[cfg(test)]
pub(crate) fn reopen(dir: &Path) -> SledStore {
    for _ in 0..400 {
        match SledStore::open(dir) {
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(25))
            }
            other => return other.unwrap_or_else(|e| panic!("reopening: {e}")),
        }
    }
    panic!("the database lock was never released");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, seq: u64, status: Status) -> Record {
        Record {
            v: SCHEMA_VERSION,
            seq,
            id: id.into(),
            intent: hex::encode(b"intent"),
            backend_signature: hex::encode([1; 64]),
            digest: hex::encode([2; 32]),
            status,
            signature: (status == Status::Signed).then(|| hex::encode([3; 65])),
            signers: vec![1, 2],
            rule: None,
            reason: None,
            created_ms: 5,
            updated_ms: 6,
            approvals: vec![],
            message: None,
            evm_call: None,
            solana_transaction: None,
            retry_at_ms: None,
        }
    }

    /// A database written before the binary forms (JSON withdrawal and audit records) reads
    /// unchanged, and what is written next is binary.
    #[test]
    fn a_store_written_in_json_reads_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let old = record("w-old", 1, Status::Signed);
        let mut chain = audit::Chain::resume(None);
        let first = chain.prepare(10, audit::Event::new(audit::kind::NODE_STARTED));
        chain.advance(&first);
        {
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            db.open_tree("withdrawals")
                .unwrap()
                .insert("w-old", serde_json::to_vec(&old).unwrap())
                .unwrap();
            db.open_tree("withdrawals_by_seq")
                .unwrap()
                .insert(1u64.to_be_bytes(), "w-old")
                .unwrap();
            db.open_tree("audit")
                .unwrap()
                .insert(1u64.to_be_bytes(), first.to_json().as_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(s.get("w-old").unwrap(), Some(old.clone()));
        assert_eq!(s.with_status(Status::Signed).unwrap(), vec![old.clone()]);
        assert_eq!(s.last_audit().unwrap(), Some(first));

        let new = record("w-new", 2, Status::Signing);
        assert!(matches!(s.insert_new(&new).unwrap(), Insert::New));
        assert!(matches!(s.insert_new(&old).unwrap(), Insert::Exists(r) if *r == old));
        let mut updated = old.clone();
        updated.updated_ms = 7;
        s.update(&updated).unwrap();
        let (all, more) = s.list(None, 10, &mut |_| true).unwrap();
        assert_eq!((all, more), (vec![updated, new], false));
        let next = chain.prepare(11, audit::Event::new("test"));
        s.append_audit(&next).unwrap();
        audit::verify_chain(&s.audit_range(1, 10).unwrap()).unwrap();

        for id in ["w-old", "w-new"] {
            assert_eq!(
                s.withdrawals.get(id).unwrap().unwrap()[0],
                FORMAT_WITHDRAWAL_V1
            );
        }
        assert_eq!(
            s.audit.get(2u64.to_be_bytes()).unwrap().unwrap()[0],
            audit::FORMAT_BINARY_V1
        );
    }

    /// A damaged record is an error naming its key, never a panic, wherever it is read.
    #[test]
    fn a_damaged_record_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.insert_new(&record("w-1", 1, Status::Signing)).unwrap();
        let mut bytes = s.withdrawals.get("w-1").unwrap().unwrap().to_vec();
        bytes.truncate(bytes.len() - 1);
        s.withdrawals.insert("w-1", bytes).unwrap();
        let key_of = |e: StoreError| match e {
            StoreError::Corrupt { key, .. } => key,
            other => panic!("expected a corrupt record, got {other:?}"),
        };
        assert_eq!(key_of(s.get("w-1").unwrap_err()), "w-1");
        assert_eq!(key_of(s.list(None, 10, &mut |_| true).unwrap_err()), "w-1");
        assert_eq!(key_of(s.with_status(Status::Signing).unwrap_err()), "w-1");
    }
}
