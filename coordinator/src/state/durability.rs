//! Writing withdrawal records: durably (flushed before anything outside depends on them) or
//! staged, tracking writes not yet flushed so readers flush before showing them (S6), and
//! waking whoever waits for a withdrawal's outcome.

use super::Coordinator;
use crate::store::{Record, StoreError};

impl Coordinator {
    /// Makes sure that what a reader saw of these records is on disk before it is shown:
    /// if any was written but not yet flushed, flushes (shared with concurrent writers).
    pub async fn ensure_durable<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        let pending = {
            let undurable = self.undurable.lock().unwrap_or_else(|p| p.into_inner());
            ids.into_iter().any(|id| undurable.contains_key(id))
        };
        if !pending {
            return Ok(());
        }
        // The read happened before this flush starts, so the flush covers what was read.
        self.flush().await
    }

    /// Makes every write so far durable, on a blocking thread (a flush blocks, lingering for
    /// other writers under load: never on the reactor).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| StoreError::Flush(format!("flush task: {e}")))?
    }

    /// Writes a record durably (flushed on a blocking thread) and announces it.
    pub async fn persist(&self, r: Record) -> Result<Record, StoreError> {
        // Marked before the write: a reader that sees the new record also sees the mark
        // (until the flush below clears it) and flushes before showing it.
        *self
            .undurable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(r.id.clone())
            .or_insert(0) += 1;
        let store = self.store.clone();
        let rec = r.clone();
        tokio::task::spawn_blocking(move || {
            store.update(&rec)?;
            store.flush()
        })
        .await
        .map_err(|e| StoreError::Corrupt {
            key: r.id.clone(),
            reason: format!("persist task: {e}"),
        })??;
        {
            let mut undurable = self.undurable.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = undurable.get_mut(&r.id) {
                *n -= 1;
                if *n == 0 {
                    undurable.remove(&r.id);
                }
            }
        }
        self.announce(&r);
        Ok(r)
    }

    /// Registers interest in `id`'s outcome: the receiver gets the record once it is final
    /// and stored. Register before reading the store, so an outcome in between is not missed.
    pub fn await_final(&self, id: &str) -> tokio::sync::oneshot::Receiver<Record> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let list = waiting.entry(id.to_string()).or_default();
        // Waiters that gave up leave closed senders behind: drop them here.
        list.retain(|t| !t.is_closed());
        list.push(tx);
        rx
    }

    /// Stops waiting for `id` if nobody waits any more.
    pub fn forget_waiters(&self, id: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = waiting.get_mut(id) {
            list.retain(|t| !t.is_closed());
            if list.is_empty() {
                waiting.remove(id);
            }
        }
    }

    fn announce(&self, r: &Record) {
        if r.status.is_final() {
            let list = self
                .waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&r.id);
            for tx in list.into_iter().flatten() {
                let _ = tx.send(r.clone());
            }
        }
        let _ = self.events.send(r.clone());
    }

    /// Writes a record without waiting for the disk, and announces it. For a state nothing
    /// outside depends on yet (a withdrawal being signed): if it is lost in a crash, the
    /// backend's retry starts over, and the signers answer the same id with the same intent
    /// the same way (S6). The next flush carries it.
    pub fn stage(&self, r: Record) -> Result<Record, StoreError> {
        self.store.update(&r)?;
        self.announce(&r);
        Ok(r)
    }
}
