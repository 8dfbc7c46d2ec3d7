//! Ledger notices: telling the signers that did not take part about a signed withdrawal, and
//! replaying the ones a signer missed while away, so every velocity ledger sees the whole
//! volume.
//!
//! Notices travel in batches ([`Request::LedgerNotices`], up to [`MAX_NOTICES`]): a signer
//! checks a batch's group signatures in one multi-scalar multiplication, and a signer far
//! from the coordinator catches up in a few round trips. Live notices queue per signer; one
//! batch is in flight to each signer at a time, and whatever queued meanwhile goes in the
//! next, so batches grow with the load and a lone notice leaves at once.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::Duration,
};

use quorate_core::{
    intent::WithdrawalIntent,
    link::{Answer, LedgerNotice, Request, MAX_NOTICES},
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Coordinator;
use crate::{registry::Registry, store::Status};

/// Live notices queued for one signer before new ones are dropped (the signer then catches
/// up when it reconnects, as after any missed notice): at 500 withdrawals a second, 8 s of
/// them.
const QUEUED_PER_SIGNER: usize = 4096;

/// Replay batches outstanding at once on one link.
const REPLAY_IN_FLIGHT: usize = 2;

/// A notice and the withdrawal it is for (for the logs).
type Queued = (String, LedgerNotice);

/// The live notices waiting for each signer, each queue drained by its own task, and what
/// became of every notice sent, live or replayed.
#[derive(Default)]
pub(super) struct Outbox {
    queues: Mutex<HashMap<u16, mpsc::Sender<Queued>>>,
    tally: Arc<Tally>,
}

/// What became of the notices sent, for the metrics endpoint
/// (`quorate_ledger_notices_total{outcome}`).
#[derive(Default)]
pub(super) struct Tally {
    /// Debited by the signer now.
    counted: AtomicU64,
    /// The signer had counted the withdrawal before.
    known: AtomicU64,
    /// Refused by the signer, notice by notice.
    refused: AtomicU64,
    /// In a batch that got no answer notice by notice (link down, timeout, refused whole).
    undelivered: AtomicU64,
    /// Not queued: the signer's queue was full.
    dropped: AtomicU64,
}

impl Tally {
    /// (outcome, notices) for each outcome.
    pub(super) fn outcomes(&self) -> [(&'static str, u64); 5] {
        [
            ("counted", self.counted.load(Relaxed)),
            ("known", self.known.load(Relaxed)),
            ("refused", self.refused.load(Relaxed)),
            ("undelivered", self.undelivered.load(Relaxed)),
            ("dropped", self.dropped.load(Relaxed)),
        ]
    }
}

impl Outbox {
    /// Queues `notice` for `signer`, starting the signer's delivery task on first use.
    fn push(
        &self,
        registry: &Arc<Registry>,
        timeout: Duration,
        signer: u16,
        notice: Queued,
    ) -> Result<(), mpsc::error::TrySendError<Queued>> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        // A delivery task that ended (it panicked) is started again.
        queues.retain(|_, q| !q.is_closed());
        let queue = queues.entry(signer).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUED_PER_SIGNER);
            let (registry, tally) = (registry.clone(), self.tally.clone());
            tokio::spawn(deliver(registry, tally, signer, rx, timeout));
            tx
        });
        let queued = queue.try_send(notice);
        if queued.is_err() {
            self.tally.dropped.fetch_add(1, Relaxed);
        }
        queued
    }

    /// What became of the notices sent so far.
    pub(super) fn tally(&self) -> &Tally {
        &self.tally
    }
}

/// Sends `signer` its queued notices, a batch at a time, until the outbox is dropped.
async fn deliver(
    registry: Arc<Registry>,
    tally: Arc<Tally>,
    signer: u16,
    mut queue: mpsc::Receiver<Queued>,
    timeout: Duration,
) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_NOTICES).await > 0 {
        let (ids, notices): (Vec<String>, Vec<LedgerNotice>) =
            std::mem::take(&mut batch).into_iter().unzip();
        let answer = registry
            .call(signer, Request::LedgerNotices(notices), timeout)
            .await;
        report(&tally, signer, &ids, answer);
    }
}

/// Logs and tallies what a signer made of a batch of notices for `ids`; returns how many it
/// debited now, or `None` if the batch was not answered notice by notice.
fn report(
    tally: &Tally,
    signer: u16,
    ids: &[String],
    answer: Result<Answer, crate::registry::CallError>,
) -> Option<usize> {
    let results = match answer {
        Ok(Answer::LedgerAcks(results)) if results.len() == ids.len() => results,
        other => {
            tally.undelivered.fetch_add(ids.len() as u64, Relaxed);
            match other {
                Ok(Answer::Refused { refusal: r, .. }) => {
                    warn!(signer, notices = ids.len(), rule = %r.rule, reason = %r.reason, "ledger notices refused");
                }
                Ok(_) => {
                    warn!(
                        signer,
                        notices = ids.len(),
                        "ledger notices: unexpected answer"
                    );
                }
                Err(e) => {
                    warn!(signer, notices = ids.len(), error = %e, "ledger notices not delivered");
                }
            }
            return None;
        }
    };
    let mut debited = 0;
    for (id, result) in ids.iter().zip(results) {
        match result {
            Ok(true) => debited += 1,
            Ok(false) => {
                tally.known.fetch_add(1, Relaxed);
            }
            Err(r) => {
                tally.refused.fetch_add(1, Relaxed);
                warn!(signer, withdrawal = %id, rule = %r.rule, reason = %r.reason, "ledger notice refused");
            }
        }
    }
    tally.counted.fetch_add(debited as u64, Relaxed);
    Some(debited)
}

impl Coordinator {
    /// Ledger notices a signer missed while away: every withdrawal signed without it within
    /// the policy's longest window (bucket slack included). The signer counts each id once.
    pub(super) async fn replay_notices(&self, signer: u16) {
        let window = self.policy.longest_window_ms();
        if window == 0 {
            return;
        }
        let since = self
            .now_ms()
            .saturating_sub(window + quorate_core::policy::ledger::BUCKET_MS);
        let store = self.store.clone();
        let Ok(Ok(records)) =
            tokio::task::spawn_blocking(move || store.with_status(Status::Signed)).await
        else {
            warn!(
                signer,
                "could not list signed withdrawals for ledger notices"
            );
            return;
        };
        let missed = records
            .into_iter()
            .filter(|r| r.updated_ms >= since && !r.signers.contains(&signer))
            .filter_map(|r| {
                let (Ok(intent), Some(Ok(signature))) = (
                    hex::decode(&r.intent),
                    r.signature.as_ref().map(hex::decode),
                ) else {
                    return None;
                };
                let notice = LedgerNotice {
                    intent,
                    signature,
                    signed_at_ms: r.updated_ms,
                };
                Some((r.id, notice))
            });
        let mut batches: Vec<Vec<Queued>> = Vec::new();
        for notice in missed {
            match batches.last_mut() {
                Some(b) if b.len() < MAX_NOTICES => b.push(notice),
                _ => batches.push(vec![notice]),
            }
        }
        // Whole batches, a few outstanding: a signer far from the coordinator catches up in
        // a few round trips, not one per notice.
        use futures::StreamExt;
        let mut answers = futures::stream::iter(batches)
            .map(|batch| async move {
                let (ids, notices): (Vec<String>, Vec<LedgerNotice>) = batch.into_iter().unzip();
                let answer = self
                    .registry
                    .call(
                        signer,
                        Request::LedgerNotices(notices),
                        self.signing.signer_timeout,
                    )
                    .await;
                report(self.notices.tally(), signer, &ids, answer)
            })
            .buffer_unordered(REPLAY_IN_FLIGHT);
        let mut counted = 0usize;
        while let Some(debited) = answers.next().await {
            let Some(debited) = debited else {
                warn!(signer, "ledger notices interrupted");
                return;
            };
            counted += debited;
        }
        if counted > 0 {
            info!(signer, counted, "missed ledger notices delivered");
        }
    }

    /// Ledger sync: tells every connected signer that did not take part about a withdrawal
    /// signed at `signed_at` (Unix ms, as its record says), so each velocity ledger sees the
    /// whole volume at the time it went out. Best effort: a signer that misses the notice is
    /// behind by this withdrawal until it reconnects (docs/policy.md).
    pub(super) fn notify_others(
        &self,
        intent: &WithdrawalIntent,
        signature: &[u8],
        signers: &[u16],
        signed_at: u64,
    ) {
        let notice = LedgerNotice {
            intent: intent.encode(),
            signature: signature.to_vec(),
            signed_at_ms: signed_at,
        };
        for s in self.registry.connected() {
            if signers.contains(&s.identifier) {
                continue;
            }
            let queued = (intent.id.clone(), notice.clone());
            if self
                .notices
                .push(
                    &self.registry,
                    self.signing.signer_timeout,
                    s.identifier,
                    queued,
                )
                .is_err()
            {
                warn!(withdrawal = %intent.id, signer = %s.name, "ledger notice dropped: the signer's queue is full");
            }
        }
    }
}
