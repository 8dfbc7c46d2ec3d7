//! The signer's audit log (S7): appending records, durable or not, and exporting pages of it
//! with a head signed by this signer's identity key.

use quorate_core::{
    audit::{self, Chain, Event},
    link::{Answer, AuditExportRequest},
    refusal::{Refusal, Rule},
};
use tracing::warn;

use super::{lock, storage, Node};

impl Node {
    /// Appends a record to the audit log, flushed if `durable`; false if it could not be
    /// written. A failed write is logged; the decision it records stands (records that guard
    /// safety are written with the state they describe instead).
    pub(super) fn audit(&self, event: Event, durable: bool) -> bool {
        let mut chain = lock(&self.audit);
        let r = chain.prepare(self.now_ms(), event);
        match self.store.append_audit(&r) {
            Ok(()) => chain.advance(&r),
            Err(e) => {
                warn!(signer = %self.name, error = %e, kind = %r.event.kind, "audit record not written");
                self.resync_audit(&mut chain);
                return false;
            }
        }
        // Flushed after the lock is given back, so a disk sync never holds up the chain.
        drop(chain);
        if durable {
            if let Err(e) = self.store.flush() {
                warn!(signer = %self.name, error = %e, kind = %r.event.kind, "audit record not flushed");
            }
        }
        true
    }

    /// Appends a record that must be on disk before what it records happens: refuses (and
    /// leaves the chain where the store has it) if it cannot be written and flushed.
    pub(super) fn audit_before(&self, event: Event) -> Result<(), Refusal> {
        let mut chain = lock(&self.audit);
        let r = chain.prepare(self.now_ms(), event);
        if let Err(e) = self.store.append_audit(&r) {
            self.resync_audit(&mut chain);
            return Err(storage(e));
        }
        chain.advance(&r);
        drop(chain);
        self.store.flush().map_err(storage)
    }

    /// After a failed write, moves the head to whatever the store holds, so that a record
    /// that landed anyway is never overwritten by the next one.
    pub(super) fn resync_audit(&self, chain: &mut Chain) {
        match self.store.last_audit() {
            Ok(last) => *chain = Chain::resume(last.as_ref()),
            Err(e) => warn!(signer = %self.name, error = %e, "audit log unreadable"),
        }
    }

    /// One page of the audit log from `from`, and the head signed by our identity key. The
    /// page and the head are read under the same lock, so the page ends at the head when it
    /// reaches it.
    pub fn audit_page(
        &self,
        from: u64,
        limit: usize,
        nonce: &[u8],
    ) -> Result<(Vec<audit::Record>, audit::Head), Refusal> {
        let chain = lock(&self.audit);
        let mut records = self
            .store
            .audit_range(from.max(1), limit)
            .map_err(storage)?;
        quorate_wire::convert::audit::fit_page(&mut records);
        Ok((
            records,
            audit::Head::signed(&self.name, &chain, &self.identity, nonce),
        ))
    }

    pub(super) fn audit_export(&self, r: &AuditExportRequest) -> Result<Answer, Refusal> {
        let limit = usize::try_from(r.limit)
            .unwrap_or(usize::MAX)
            .clamp(1, quorate_wire::convert::audit::MAX_PAGE);
        if r.nonce.len() > audit::MAX_NONCE_LEN {
            return Err(Refusal::permanent(
                Rule::BadRequest,
                format!("nonce: at most {} bytes", audit::MAX_NONCE_LEN),
            ));
        }
        let (records, head) = self.audit_page(r.from_seq, limit, &r.nonce)?;
        Ok(Answer::AuditPage { records, head })
    }
}
