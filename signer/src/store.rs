//! The signer's durable state, behind a small trait: its sealed key share and the binding of
//! every withdrawal id it has signed for to that intent's digest (S6). Records open with a
//! format byte and every older form stays readable (docs/storage.md). Writes that guard safety
//! are flushed before the caller proceeds.

use std::{collections::HashMap, path::Path, sync::Mutex};

use quorate_core::{
    audit,
    policy::ledger::{BucketRecord, Debit},
};
use quorate_wire::durable::GroupCommit;
use sled::Transactional;

pub mod binding;
pub use binding::FORMAT_BINDING_V1;

/// Schema version of the JSON binding records written before [`FORMAT_BINDING_V1`].
pub const SCHEMA_VERSION: u32 = 1;

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
        /// Record key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A flush to disk failed: what was written since the last good flush may be lost.
    #[error("database flush: {0}")]
    Flush(String),
}

/// Outcome of binding a withdrawal id to a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// First time this id is seen; now bound.
    New,
    /// Already bound to the same digest.
    Same,
    /// Already bound to a different digest.
    Conflict,
}

/// What a signer persists.
pub trait SignerStore: Send + Sync + 'static {
    /// Disk flushes run so far, and the durability requests they served (group commit).
    fn flush_counts(&self) -> (u64, u64) {
        (0, 0)
    }
    /// Reads a metadata value.
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// At most `limit` metadata values whose key starts with `prefix`, from key `from` on, in
    /// key order.
    fn scan_meta(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Writes a metadata value and flushes it to disk.
    fn put_meta_durable(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Writes a metadata value durably only if the key is absent; false if it existed.
    fn put_meta_once(&self, key: &str, value: &[u8]) -> Result<bool, StoreError>;
    /// Writes and deletes metadata values in one atomic batch, then flushes it to disk: a
    /// crash leaves all of it or none.
    fn put_meta_batch_durable(
        &self,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), StoreError>;
    /// Atomically binds `id` to `digest` (durably) unless bound already.
    fn bind_withdrawal(
        &self,
        id: &str,
        digest: &[u8; 32],
        now_ms: u64,
    ) -> Result<Binding, StoreError>;
    /// The digest `id` is bound to, if any.
    fn bound_digest(&self, id: &str) -> Result<Option<[u8; 32]>, StoreError>;
    /// True if `id` has been debited from the velocity ledger.
    fn debited(&self, id: &str) -> Result<bool, StoreError>;
    /// Makes every write made so far durable (a disk sync, shared with concurrent callers).
    /// Blocking: call it off the reactor, and not while holding a lock others wait on.
    fn flush(&self) -> Result<(), StoreError>;
    /// In one atomic write (not flushed: the caller flushes before anything that depends on
    /// it leaves): binds `id` to `digest` (unless bound to it already) and,
    /// unless `id` was debited before, records `debit`'s bucket totals, marks `id` debited
    /// and raises the ledger's high-water time; and appends `audit` to the audit log. Writes
    /// nothing on a conflict.
    fn bind_and_debit(
        &self,
        id: &str,
        digest: &[u8; 32],
        now_ms: u64,
        debit: &Debit,
        audit: &audit::Record,
    ) -> Result<Binding, StoreError>;
    /// The persisted ledger: high-water time and bucket records.
    fn load_ledger(&self) -> Result<(u64, Vec<BucketRecord>), StoreError>;
    /// Deletes ledger buckets no window reaches any more (not flushed: a bucket that comes
    /// back after a crash is pruned again).
    fn forget_buckets(&self, keys: &[Vec<u8>]) -> Result<(), StoreError>;
    /// Appends an audit record (not flushed).
    fn append_audit(&self, r: &audit::Record) -> Result<(), StoreError>;
    /// The newest audit record.
    fn last_audit(&self) -> Result<Option<audit::Record>, StoreError>;
    /// Audit records from sequence number `from` on, at most `limit`.
    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<audit::Record>, StoreError>;
}

fn audit_decode(v: &[u8]) -> Result<audit::Record, StoreError> {
    audit::Record::decode(v).map_err(|e| corrupt("audit", e))
}

const META_LEDGER_HIGH_WATER: &str = "ledger_high_water_ms";

fn corrupt(key: &str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

fn digest_of(id: &str, existing: &[u8]) -> Result<[u8; 32], StoreError> {
    binding::digest(existing).map_err(|e| corrupt(id, e))
}

/// sled's page cache. Its default (1 GiB) lets a long-running node's memory grow with its
/// history; the working set (recent withdrawals, the ledger, the audit tail) is far smaller.
const CACHE_BYTES: u64 = 64 << 20;

/// sled-backed store, one database per signer.
pub struct SledStore {
    db: sled::Db,
    meta: sled::Tree,
    withdrawals: sled::Tree,
    ledger: sled::Tree,
    debits: sled::Tree,
    audit: sled::Tree,
    commit: GroupCommit,
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
            meta: db.open_tree("meta")?,
            withdrawals: db.open_tree("withdrawals")?,
            ledger: db.open_tree("ledger")?,
            debits: db.open_tree("debits")?,
            audit: db.open_tree("audit")?,
            db,
            commit: GroupCommit::new(),
        })
    }
}

fn compare(id: &str, existing: &[u8], digest: &[u8; 32]) -> Result<Binding, StoreError> {
    Ok(if digest_of(id, existing)? == *digest {
        Binding::Same
    } else {
        Binding::Conflict
    })
}

fn record(digest: &[u8; 32], now_ms: u64) -> Vec<u8> {
    binding::encode(digest, now_ms)
}

impl SignerStore for SledStore {
    fn flush_counts(&self) -> (u64, u64) {
        self.commit.counts()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.sync()
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key)?.map(|v| v.to_vec()))
    }

    fn scan_meta(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.meta.range(from.as_bytes()..) {
            let (k, v) = kv?;
            if !k.starts_with(prefix.as_bytes()) || out.len() >= limit {
                break;
            }
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    fn put_meta_durable(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value)?;
        self.sync()?;
        Ok(())
    }

    fn put_meta_once(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let fresh = self
            .meta
            .compare_and_swap(key, None as Option<&[u8]>, Some(value))?
            .is_ok();
        self.sync()?;
        Ok(fresh)
    }

    fn put_meta_batch_durable(
        &self,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for k in deletes {
            batch.remove(k.as_bytes());
        }
        for (k, v) in puts {
            batch.insert(k.as_bytes(), v.as_slice());
        }
        self.meta.apply_batch(batch)?;
        self.sync()?;
        Ok(())
    }

    fn bind_withdrawal(
        &self,
        id: &str,
        digest: &[u8; 32],
        now_ms: u64,
    ) -> Result<Binding, StoreError> {
        match self.withdrawals.compare_and_swap(
            id,
            None as Option<&[u8]>,
            Some(record(digest, now_ms)),
        )? {
            Ok(()) => {
                self.sync()?;
                Ok(Binding::New)
            }
            Err(cas) => match cas.current {
                Some(existing) => {
                    // The first binder may have failed to flush; make sure the binding is on
                    // disk before anyone relies on it.
                    self.sync()?;
                    compare(id, &existing, digest)
                }
                None => Err(StoreError::Corrupt {
                    key: id.to_string(),
                    reason: "vanished during compare-and-swap".into(),
                }),
            },
        }
    }

    fn bound_digest(&self, id: &str) -> Result<Option<[u8; 32]>, StoreError> {
        self.withdrawals
            .get(id)?
            .map(|v| digest_of(id, &v))
            .transpose()
    }

    fn debited(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.debits.contains_key(id)?)
    }

    fn bind_and_debit(
        &self,
        id: &str,
        digest: &[u8; 32],
        now_ms: u64,
        debit: &Debit,
        audit: &audit::Record,
    ) -> Result<Binding, StoreError> {
        use sled::transaction::{ConflictableTransactionError as Abort, TransactionError};
        let trees = (
            &self.withdrawals,
            &self.debits,
            &self.ledger,
            &self.meta,
            &self.audit,
        );
        let audit_value = audit.encode();
        let result = trees.transaction(|(w, d, l, m, a)| {
            let binding = match w.get(id)? {
                Some(existing) => match compare(id, &existing, digest) {
                    Ok(b) => b,
                    Err(e) => return Err(Abort::Abort(e)),
                },
                None => {
                    w.insert(id, record(digest, now_ms))?;
                    Binding::New
                }
            };
            if binding == Binding::Conflict {
                return Ok(binding);
            }
            if d.get(id)?.is_none() {
                for r in &debit.records {
                    l.insert(r.key_bytes(), r.value_bytes())?;
                }
                d.insert(id, &debit.at_ms.to_be_bytes())?;
                m.insert(META_LEDGER_HIGH_WATER, &debit.at_ms.to_be_bytes())?;
            }
            if a.get(audit.seq.to_be_bytes())?.is_some() {
                return Err(Abort::Abort(corrupt(
                    "audit",
                    format!("record {} exists already", audit.seq),
                )));
            }
            a.insert(&audit.seq.to_be_bytes(), audit_value.as_slice())?;
            Ok(binding)
        });
        let binding = match result {
            Ok(b) => b,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        Ok(binding)
    }

    fn load_ledger(&self) -> Result<(u64, Vec<BucketRecord>), StoreError> {
        let high = match self.meta.get(META_LEDGER_HIGH_WATER)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| corrupt(META_LEDGER_HIGH_WATER, "length"))?,
            ),
            None => 0,
        };
        let mut records = Vec::new();
        for kv in self.ledger.iter() {
            let (k, v) = kv?;
            records.push(BucketRecord::decode(&k, &v).map_err(|e| corrupt("ledger", e))?);
        }
        Ok((high, records))
    }

    fn forget_buckets(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for k in keys {
            batch.remove(k.as_slice());
        }
        self.ledger.apply_batch(batch)?;
        Ok(())
    }

    fn append_audit(&self, r: &audit::Record) -> Result<(), StoreError> {
        // Append only: a sequence number once written is never written again.
        self.audit
            .compare_and_swap(r.seq.to_be_bytes(), None as Option<&[u8]>, Some(r.encode()))?
            .map_err(|_| corrupt("audit", format!("record {} exists already", r.seq)))?;
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

/// High-water time, bucket records, debited ids.
type MemoryLedger = (
    u64,
    HashMap<Vec<u8>, Vec<u8>>,
    std::collections::HashSet<String>,
);

/// In-memory store for unit tests.
#[derive(Default)]
pub struct MemoryStore {
    meta: Mutex<HashMap<String, Vec<u8>>>,
    withdrawals: Mutex<HashMap<String, Vec<u8>>>,
    ledger: Mutex<MemoryLedger>,
    audit: Mutex<std::collections::BTreeMap<u64, audit::Record>>,
}

impl SignerStore for MemoryStore {
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .meta
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned())
    }

    fn scan_meta(
        &self,
        prefix: &str,
        from: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let meta = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<(String, Vec<u8>)> = meta
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && k.as_str() >= from)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        found.sort();
        found.truncate(limit);
        Ok(found)
    }

    fn put_meta_durable(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn put_meta_once(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let mut m = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        if m.contains_key(key) {
            return Ok(false);
        }
        m.insert(key.to_string(), value.to_vec());
        Ok(true)
    }

    fn put_meta_batch_durable(
        &self,
        puts: &[(String, Vec<u8>)],
        deletes: &[String],
    ) -> Result<(), StoreError> {
        let mut m = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        for k in deletes {
            m.remove(k);
        }
        for (k, v) in puts {
            m.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    fn bind_withdrawal(
        &self,
        id: &str,
        digest: &[u8; 32],
        now_ms: u64,
    ) -> Result<Binding, StoreError> {
        let mut w = self.withdrawals.lock().unwrap_or_else(|p| p.into_inner());
        match w.get(id) {
            Some(existing) => compare(id, existing, digest),
            None => {
                w.insert(id.to_string(), record(digest, now_ms));
                Ok(Binding::New)
            }
        }
    }

    fn bound_digest(&self, id: &str) -> Result<Option<[u8; 32]>, StoreError> {
        let w = self.withdrawals.lock().unwrap_or_else(|p| p.into_inner());
        w.get(id).map(|v| digest_of(id, v)).transpose()
    }

    fn debited(&self, id: &str) -> Result<bool, StoreError> {
        let l = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        Ok(l.2.contains(id))
    }

    fn bind_and_debit(
        &self,
        id: &str,
        digest: &[u8; 32],
        now_ms: u64,
        debit: &Debit,
        audit: &audit::Record,
    ) -> Result<Binding, StoreError> {
        let mut w = self.withdrawals.lock().unwrap_or_else(|p| p.into_inner());
        let mut l = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let binding = match w.get(id) {
            Some(existing) => compare(id, existing, digest)?,
            None => Binding::New,
        };
        if binding == Binding::Conflict {
            return Ok(binding);
        }
        w.entry(id.to_string())
            .or_insert_with(|| record(digest, now_ms));
        if l.2.insert(id.to_string()) {
            for r in &debit.records {
                l.1.insert(r.key_bytes(), r.value_bytes());
            }
            l.0 = debit.at_ms;
        }
        self.append_audit(audit)?;
        Ok(binding)
    }

    fn load_ledger(&self) -> Result<(u64, Vec<BucketRecord>), StoreError> {
        let l = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let records =
            l.1.iter()
                .map(|(k, v)| BucketRecord::decode(k, v).map_err(|e| corrupt("ledger", e)))
                .collect::<Result<_, _>>()?;
        Ok((l.0, records))
    }

    fn forget_buckets(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut l = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            l.1.remove(k);
        }
        Ok(())
    }

    fn append_audit(&self, r: &audit::Record) -> Result<(), StoreError> {
        let mut a = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        if a.contains_key(&r.seq) {
            return Err(corrupt("audit", format!("record {} exists already", r.seq)));
        }
        a.insert(r.seq, r.clone());
        Ok(())
    }

    fn last_audit(&self) -> Result<Option<audit::Record>, StoreError> {
        let a = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        Ok(a.values().next_back().cloned())
    }

    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<audit::Record>, StoreError> {
        let a = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        Ok(a.range(from..)
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `error` is sled saying another handle holds the database's file lock.
    fn is_lock_held(error: &str) -> bool {
        error.contains("could not acquire lock")
    }

    /// Opens `dir` again after a handle in this process was dropped. sled's background
    /// flusher can hold the file lock for a moment after that (a restarted process never
    /// meets this): wait while that is the error, up to 10 s.
    fn reopen(dir: &Path) -> SledStore {
        for _ in 0..400 {
            match SledStore::open(dir) {
                Err(e) if is_lock_held(&e.to_string()) => {
                    std::thread::sleep(std::time::Duration::from_millis(25))
                }
                other => return other.unwrap_or_else(|e| panic!("reopening: {e}")),
            }
        }
        panic!("the database lock was never released");
    }

    /// A process killed while sled writes a snapshot leaves `snap.<lsn>.generating`; sled then
    /// refuses to open the database (it reads that file as the newest snapshot). Our open
    /// removes it first and everything written before is still there.
    #[test]
    fn a_snapshot_cut_short_by_a_crash_does_not_lock_the_signer_out() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.put_meta_durable("policy/history/00000000000000000001", b"one")
                .unwrap();
            s.put_meta_durable("policy/history/00000000000000000002", b"two")
                .unwrap();
        }
        // What a kill between sled's write and rename leaves: a partial snapshot newer than any.
        let partial = dir.path().join("snap.FFFFFFFFFFFFFFF0.generating");
        std::fs::write(&partial, b"partial snapshot").unwrap();
        // (Past the moment the dropped handle's flusher still holds the lock.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let raw = loop {
            match sled::Config::new().path(dir.path()).open() {
                Err(e) if is_lock_held(&e.to_string()) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the dropped store still holds its lock after 60 s"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(25))
                }
                other => break other,
            }
        };
        assert!(
            raw.is_err(),
            "sled itself cannot open it: the bug this guards against"
        );
        drop(raw);
        let s = reopen(dir.path());
        assert!(!partial.exists());
        let found = s
            .scan_meta("policy/history/", "policy/history/00000000000000000002", 8)
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, b"two");
    }

    fn exercise(s: &dyn SignerStore) {
        assert_eq!(s.bind_withdrawal("w1", &[1; 32], 5).unwrap(), Binding::New);
        assert_eq!(s.bind_withdrawal("w1", &[1; 32], 6).unwrap(), Binding::Same);
        assert_eq!(
            s.bind_withdrawal("w1", &[2; 32], 7).unwrap(),
            Binding::Conflict
        );
        assert_eq!(s.get_meta("k").unwrap(), None);
        s.put_meta_durable("k", b"v").unwrap();
        assert_eq!(s.get_meta("k").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(s.put_meta_once("share", b"1").unwrap());
        assert!(!s.put_meta_once("share", b"2").unwrap());
        assert_eq!(s.get_meta("share").unwrap().as_deref(), Some(&b"1"[..]));

        assert_eq!(s.last_audit().unwrap(), None);
        let mut chain = audit::Chain::resume(None);
        for i in 0..3u64 {
            let r = chain.prepare(10 + i, audit::Event::new("test").with("i", i.to_string()));
            s.append_audit(&r).unwrap();
            chain.advance(&r);
        }
        let r = chain.prepare(
            20,
            audit::Event::new(audit::kind::SHARE_RELEASED).with("withdrawal", "w2"),
        );
        let debit = Debit {
            at_ms: 20,
            records: vec![],
        };
        assert_eq!(
            s.bind_and_debit("w2", &[3; 32], 20, &debit, &r).unwrap(),
            Binding::New
        );
        chain.advance(&r);
        let all = s.audit_range(1, 100).unwrap();
        assert_eq!(all.len(), 4);
        audit::verify_chain(&all).unwrap();
        assert_eq!(s.audit_range(3, 1).unwrap()[0].seq, 3);
        assert_eq!(s.last_audit().unwrap().unwrap().seq, 4);
        // A conflicting bind writes no audit record either.
        let stray = chain.prepare(21, audit::Event::new("stray"));
        assert_eq!(
            s.bind_and_debit("w2", &[4; 32], 21, &debit, &stray)
                .unwrap(),
            Binding::Conflict
        );
        assert_eq!(s.last_audit().unwrap().unwrap().seq, 4);

        // A pruned bucket is gone from the persisted ledger; the others stay.
        let mut ledger = quorate_core::policy::Ledger::new();
        let chain: quorate_core::address::Chain = "ethereum".parse().unwrap();
        let to = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let amount = quorate_core::amount::Amount::new(5).unwrap();
        let old = ledger.debit(chain, "ETH", to, amount, 1_000);
        let r = chain_rec(s, "w-old");
        assert_eq!(
            s.bind_and_debit("w-old", &[5; 32], 1_000, &old, &r)
                .unwrap(),
            Binding::New
        );
        let (_, before) = s.load_ledger().unwrap();
        assert_eq!(before.len(), old.records.len());
        let keys: Vec<Vec<u8>> = old.records.iter().map(|r| r.key_bytes()).collect();
        s.forget_buckets(&keys[..1]).unwrap();
        let (_, after) = s.load_ledger().unwrap();
        assert_eq!(after.len(), before.len() - 1);
    }

    fn chain_rec(s: &dyn SignerStore, w: &str) -> audit::Record {
        let last = s.last_audit().unwrap();
        audit::Chain::resume(last.as_ref()).prepare(
            30,
            audit::Event::new(audit::kind::SHARE_RELEASED).with("withdrawal", w),
        )
    }

    /// A database written before the binary forms (JSON bindings and audit records) reads
    /// unchanged, and what is written next is binary.
    #[test]
    fn a_store_written_in_json_reads_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = audit::Chain::resume(None);
        let old = chain.prepare(10, audit::Event::new(audit::kind::NODE_STARTED));
        chain.advance(&old);
        {
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let json = format!(
                r#"{{"v":1,"digest":"{}","bound_at_ms":5}}"#,
                hex::encode([7u8; 32])
            );
            db.open_tree("withdrawals")
                .unwrap()
                .insert("w-old", json.as_bytes())
                .unwrap();
            db.open_tree("audit")
                .unwrap()
                .insert(1u64.to_be_bytes(), old.to_json().as_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(s.bound_digest("w-old").unwrap(), Some([7; 32]));
        assert_eq!(
            s.bind_withdrawal("w-old", &[7; 32], 9).unwrap(),
            Binding::Same
        );
        assert_eq!(
            s.bind_withdrawal("w-old", &[8; 32], 9).unwrap(),
            Binding::Conflict
        );
        assert_eq!(s.last_audit().unwrap(), Some(old));
        let next = chain.prepare(11, audit::Event::new("test").with("i", "2"));
        s.append_audit(&next).unwrap();
        assert_eq!(
            s.bind_withdrawal("w-new", &[9; 32], 12).unwrap(),
            Binding::New
        );
        audit::verify_chain(&s.audit_range(1, 10).unwrap()).unwrap();

        let raw_audit = s.audit.get(2u64.to_be_bytes()).unwrap().unwrap();
        assert_eq!(raw_audit[0], audit::FORMAT_BINARY_V1);
        let raw_binding = s.withdrawals.get("w-new").unwrap().unwrap();
        assert_eq!(raw_binding[0], FORMAT_BINDING_V1);
        assert_eq!(raw_binding.len(), 41);

        // Damage is reported against its key, not a panic.
        s.withdrawals
            .insert("w-bad", &[FORMAT_BINDING_V1, 1][..])
            .unwrap();
        match s.bound_digest("w-bad") {
            Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "w-bad"),
            other => panic!("expected a corrupt record, got {other:?}"),
        }
    }

    #[test]
    fn memory_store() {
        exercise(&MemoryStore::default());
    }

    #[test]
    fn sled_store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            exercise(&s);
        }
        let s = reopen(dir.path());
        assert_eq!(
            s.bind_withdrawal("w1", &[2; 32], 8).unwrap(),
            Binding::Conflict
        );
        assert_eq!(s.get_meta("k").unwrap().as_deref(), Some(&b"v"[..]));
        let log = s.audit_range(1, 100).unwrap();
        assert_eq!(log.len(), 5);
        audit::verify_chain(&log).unwrap();
    }
}
