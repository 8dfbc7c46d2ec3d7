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
mod tests;
