//! Ledger notices: telling the signers that did not take part about a signed withdrawal, and
//! replaying the ones a signer missed while away, so every velocity ledger sees the whole
//! volume.
//!
//! Notices travel in batches ([`Request::LedgerNotices`], up to [`MAX_NOTICES`]): a signer
//! checks a batch's group signatures in one multi-scalar multiplication, and a signer far
//! from the coordinator catches up in a few round trips. Live notices queue per signer; one
//! batch is in flight to each signer at a time, and whatever queued meanwhile goes in the
//! next, so batches grow with the load and a lone notice leaves at once. A signer of an
//! earlier release, which refuses a batch as a request it does not know, is sent the same
//! notices one by one.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use futures::StreamExt;
use quorate_core::{
    intent::WithdrawalIntent,
    link::{Answer, LedgerNotice, Request, MAX_NOTICES},
    refusal::Rule,
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Coordinator;
use crate::{
    registry::{CallError, Registry},
    store::Status,
};

/// Live notices queued for one signer before new ones are dropped (the signer then catches
/// up when it reconnects, as after any missed notice): at 500 withdrawals a second, 8 s of
/// them.
const QUEUED_PER_SIGNER: usize = 4096;

/// Replay batches outstanding at once on one link.
const REPLAY_IN_FLIGHT: usize = 2;

/// Single notices outstanding at once to a signer that does not know batches.
const SINGLES_IN_FLIGHT: usize = 32;

/// Least time between two replays for a signer that missed notices while linked (each lists
/// the signed withdrawals of the policy's longest window).
const BEHIND_RETRY_MS: u64 = 30_000;

/// A notice and the withdrawal it is for (for the logs).
type Queued = (String, LedgerNotice);

/// The live notices waiting for each signer, each queue drained by its own task, and what
/// became of every notice sent, live or replayed.
#[derive(Default)]
pub(super) struct Outbox {
    queues: Mutex<HashMap<u16, mpsc::Sender<Queued>>>,
    tally: Arc<Tally>,
    /// Signers that missed notices while linked, and when each was last replayed to for it.
    behind: Arc<Behind>,
}

/// Signers that missed notices while linked (a batch not answered, a notice dropped, a replay
/// interrupted): replayed to at the next tick of [`Coordinator::replay_behind`], at most once
/// per [`BEHIND_RETRY_MS`] each.
#[derive(Default)]
struct Behind(Mutex<(BTreeSet<u16>, BTreeMap<u16, u64>)>);

impl Behind {
    fn mark(&self, signer: u16) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .insert(signer);
    }

    /// A replay to `signer` is starting: it covers whatever the signer missed before now.
    fn unmark(&self, signer: u16) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .remove(&signer);
    }

    /// The marked signers due a replay at `now_ms`, unmarked and stamped.
    fn due(&self, now_ms: u64) -> Vec<u16> {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (marked, last) = &mut *guard;
        let due: Vec<u16> = marked
            .iter()
            .copied()
            .filter(|s| {
                last.get(s)
                    .is_none_or(|t| now_ms.saturating_sub(*t) >= BEHIND_RETRY_MS)
            })
            .collect();
        for s in &due {
            marked.remove(s);
            last.insert(*s, now_ms);
        }
        due
    }
}

/// What became of the notices sent to each signer, for the metrics endpoint
/// (`quorate_ledger_notices_total{signer,outcome}`), by outcome in [`Tally::OUTCOMES`] order.
#[derive(Default)]
pub(super) struct Tally(Mutex<BTreeMap<u16, [u64; 5]>>);

/// An outcome of [`Tally::OUTCOMES`], by its index.
#[derive(Clone, Copy)]
enum Outcome {
    /// Debited by the signer now.
    Counted = 0,
    /// The signer had counted the withdrawal before.
    Known = 1,
    /// Refused by the signer, notice by notice.
    Refused = 2,
    /// In a batch that got no answer notice by notice (link down, timeout, refused whole).
    Undelivered = 3,
    /// Not queued: the signer's queue was full, or its delivery task had ended.
    Dropped = 4,
}

impl Tally {
    /// The outcomes' names, as the metric labels them.
    pub(super) const OUTCOMES: [&'static str; 5] =
        ["counted", "known", "refused", "undelivered", "dropped"];

    fn add(&self, signer: u16, outcome: Outcome, notices: usize) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.entry(signer).or_default()[outcome as usize] += notices as u64;
    }

    /// Notices by outcome (in [`Tally::OUTCOMES`] order) for each signer sent any.
    pub(super) fn by_signer(&self) -> BTreeMap<u16, [u64; 5]> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Outbox {
    /// Queues `notice` for `signer`, starting the signer's delivery task on first use (or
    /// again, if the last one ended).
    fn push(
        &self,
        registry: &Arc<Registry>,
        timeout: Duration,
        signer: u16,
        notice: Queued,
    ) -> bool {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.retain(|_, q| !q.is_closed());
        let queue = queues.entry(signer).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUED_PER_SIGNER);
            let (registry, tally, behind) =
                (registry.clone(), self.tally.clone(), self.behind.clone());
            tokio::spawn(deliver(registry, tally, behind, signer, rx, timeout));
            tx
        });
        let queued = queue.try_send(notice).is_ok();
        if !queued {
            self.tally.add(signer, Outcome::Dropped, 1);
            self.behind.mark(signer);
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
    behind: Arc<Behind>,
    signer: u16,
    mut queue: mpsc::Receiver<Queued>,
    timeout: Duration,
) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_NOTICES).await > 0 {
        let batch = std::mem::take(&mut batch);
        let (ids, answer) = send_batch(&registry, signer, batch, timeout).await;
        if report(&tally, signer, &ids, answer).is_none() {
            behind.mark(signer);
        }
    }
}

/// Sends one batch of notices to `signer`; returns their withdrawal ids and the answer. A
/// signer that refuses the batch whole as a bad request (a release before batches: it does
/// not know the request; a current signer refuses so only a batch of no or too many notices,
/// which is never sent) gets the same notices one by one, and the answer is made of theirs.
async fn send_batch(
    registry: &Registry,
    signer: u16,
    batch: Vec<Queued>,
    timeout: Duration,
) -> (Vec<String>, Result<Answer, CallError>) {
    let (ids, notices): (Vec<String>, Vec<LedgerNotice>) = batch.into_iter().unzip();
    let answer = registry
        .call(signer, Request::LedgerNotices(notices.clone()), timeout)
        .await;
    let unknown =
        matches!(&answer, Ok(Answer::Refused { refusal, .. }) if refusal.rule == Rule::BadRequest);
    if !unknown {
        return (ids, answer);
    }
    let singles: Vec<Result<Answer, CallError>> = futures::stream::iter(notices)
        .map(|n| registry.call(signer, Request::LedgerNotice(n), timeout))
        .buffered(SINGLES_IN_FLIGHT)
        .collect()
        .await;
    let mut results = Vec::with_capacity(singles.len());
    for single in singles {
        results.push(match single {
            Ok(Answer::LedgerAck { debited }) => Ok(debited),
            Ok(Answer::Refused { refusal, .. }) => Err(refusal),
            // Not answered notice by notice: the batch counts as undelivered.
            other => return (ids, other),
        });
    }
    (ids, Ok(Answer::LedgerAcks(results)))
}

/// Logs and tallies what `signer` made of a batch of notices for `ids`; returns how many it
/// debited now, or `None` if the batch was not answered notice by notice.
fn report(
    tally: &Tally,
    signer: u16,
    ids: &[String],
    answer: Result<Answer, CallError>,
) -> Option<usize> {
    let results = match answer {
        Ok(Answer::LedgerAcks(results)) if results.len() == ids.len() => results,
        other => {
            tally.add(signer, Outcome::Undelivered, ids.len());
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
    let (mut debited, mut known, mut refused) = (0, 0, 0);
    for (id, result) in ids.iter().zip(results) {
        match result {
            Ok(true) => debited += 1,
            Ok(false) => known += 1,
            Err(r) => {
                refused += 1;
                warn!(signer, withdrawal = %id, rule = %r.rule, reason = %r.reason, "ledger notice refused");
            }
        }
    }
    tally.add(signer, Outcome::Counted, debited);
    tally.add(signer, Outcome::Known, known);
    tally.add(signer, Outcome::Refused, refused);
    Some(debited)
}

impl Coordinator {
    /// Replays the notices of the window to each linked signer that missed some while linked
    /// (at most once per [`BEHIND_RETRY_MS`] each); the signer counts each id once. Run on
    /// every tick of [`Coordinator::learn_from_signers`].
    pub fn replay_behind(self: &Arc<Self>) {
        let due = self.notices.behind.due(self.now_ms());
        if due.is_empty() {
            return;
        }
        let linked: BTreeSet<u16> = self
            .registry
            .connected()
            .iter()
            .map(|s| s.identifier)
            .collect();
        for signer in due {
            if !linked.contains(&signer) {
                // Replayed when it links again.
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move { me.replay_notices(signer).await });
        }
    }

    /// Ledger notices a signer missed while away: every withdrawal signed without it within
    /// the policy's longest window (bucket slack included). The signer counts each id once.
    pub(super) async fn replay_notices(&self, signer: u16) {
        // This replay covers what the signer missed so far: a mark made before it (a batch
        // lost on the link it had) is not replayed again at the next tick.
        self.notices.behind.unmark(signer);
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
        // a few round trips, not one per notice. Once one is not answered, no more are sent;
        // those already out are still answered and tallied.
        let stopped = AtomicBool::new(false);
        let timeout = self.signing.signer_timeout;
        let mut answers = futures::stream::iter(batches)
            .map(|batch| async {
                if stopped.load(Ordering::Relaxed) {
                    return Some(0);
                }
                let (ids, answer) = send_batch(&self.registry, signer, batch, timeout).await;
                let debited = report(self.notices.tally(), signer, &ids, answer);
                if debited.is_none() {
                    stopped.store(true, Ordering::Relaxed);
                }
                debited
            })
            .buffer_unordered(REPLAY_IN_FLIGHT);
        let mut counted = 0usize;
        while let Some(debited) = answers.next().await {
            counted += debited.unwrap_or(0);
        }
        if stopped.load(Ordering::Relaxed) {
            self.notices.behind.mark(signer);
            warn!(
                signer,
                counted, "ledger notices interrupted; replayed again later"
            );
            return;
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
            let timeout = self.signing.signer_timeout;
            if !self
                .notices
                .push(&self.registry, timeout, s.identifier, queued)
            {
                warn!(withdrawal = %intent.id, signer = %s.name, "ledger notice dropped: the signer's queue is full");
            }
        }
    }
}
