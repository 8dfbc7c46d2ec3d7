//! What a signer states and records about itself, apart from signing: its operator's local
//! freeze, its signed status receipts for the admins, and how refusals go into its audit log.

use std::sync::Arc;

use quorate_core::{
    audit::{self, Event},
    link::Answer,
    policy::PolicyStatus,
    refusal::{Refusal, Rule},
};
use tracing::info;

use super::{lock, Node};

/// The operator's local emergency stop, on top of the governed policy: the config switch
/// (needs a restart) or a freeze file that `quorate signer freeze` writes into the data
/// directory, which takes effect at the next request, without the coordinator.
#[derive(Debug, Clone, Default)]
pub struct LocalFreeze {
    /// `policy.frozen` in the signer's config.
    pub by_config: bool,
    /// The freeze file; its existence freezes the signer.
    pub file: Option<std::path::PathBuf>,
}

/// Name of the freeze file in a signer's data directory.
pub const FREEZE_FILE: &str = "local-freeze";

impl LocalFreeze {
    /// True if the operator stopped this signer. A freeze file that cannot be checked counts
    /// as present: when in doubt, refuse.
    pub fn is_frozen(&self) -> bool {
        self.by_config
            || self
                .file
                .as_ref()
                .is_some_and(|f| !matches!(f.try_exists(), Ok(false)))
    }
}

impl Node {
    /// Records a refusal before the answer leaves: a refusal is evidence. The record is flushed
    /// if `durable`; if not, the caller flushes before it answers (a batch's records share one
    /// flush). True if a record was written now.
    ///
    /// Past [`audit::REFUSALS_PER_SECOND`] of one kind (request, rule, withdrawal) in a second,
    /// the rest are counted and written as one record when the second is over, so junk cannot
    /// buy a disk sync per message (counted ones are answered before their record is written).
    /// Blocking (it may flush): called on the blocking thread answering the request.
    pub(super) fn record_refusal(
        self: &Arc<Self>,
        what: &str,
        rule: &str,
        withdrawal: &str,
        e: Event,
        durable: bool,
    ) -> bool {
        let (admit, arm) = {
            let mut throttle = lock(&self.refusals);
            let admit = throttle.admit(what, rule, withdrawal, self.now_ms());
            let arm = admit == audit::Admit::Counted && throttle.arm();
            (admit, arm)
        };
        if arm {
            self.write_counted_refusals();
        }
        match admit {
            audit::Admit::Record => self.audit(e, durable),
            audit::Admit::Counted => false,
        }
    }

    /// The throttle's timer: waits until this node's clock is past the current second, writes
    /// the counts owed for seconds that are over, and goes on while any are still owed.
    fn write_counted_refusals(self: &Arc<Self>) {
        let node = self.clone();
        let wait =
            |node: &Node| std::time::Duration::from_millis(1_000 - node.now_ms() % 1_000 + 10);
        // Writes what is owed; true while counts are still owed.
        let write_owed = |node: &Node| {
            let (owed, again) = lock(&node.refusals).drain(node.now_ms());
            for e in owed {
                node.audit(e, true);
            }
            again
        };
        // The link's blocking threads run inside the runtime; without one (a caller of its
        // own), a thread of its own waits out the seconds.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    loop {
                        tokio::time::sleep(wait(&node)).await;
                        let n = node.clone();
                        // A write that panicked is tried again, never left owed.
                        if let Ok(false) = tokio::task::spawn_blocking(move || write_owed(&n)).await
                        {
                            break;
                        }
                    }
                });
            }
            Err(_) => {
                std::thread::spawn(move || loop {
                    std::thread::sleep(wait(&node));
                    if !write_owed(&node) {
                        break;
                    }
                });
            }
        }
    }

    /// Answers (and records) a request with no body or of a type this version does not know.
    pub fn refuse_unknown(self: &Arc<Self>) -> Answer {
        let r = Refusal::permanent(
            Rule::BadRequest,
            "empty request or a request type this signer does not know",
        );
        let rule = r.rule.as_str();
        self.metrics.inc(
            "quorate_signer_requests_total",
            "Coordinator requests by kind, outcome (ok, refused) and rule tag.",
            &[
                ("request", "unknown"),
                ("outcome", "refused"),
                ("rule", &rule),
            ],
        );
        let e = Event::refused("unknown", &rule, &r.reason).with("permanent", "true");
        self.record_refusal("unknown", &rule, "", e, true);
        Answer::refused(r)
    }

    /// Whether the operator froze this signer; a change since last seen goes into the audit
    /// log (the freeze command cannot write there itself: the running signer holds the store).
    pub(super) fn locally_frozen(&self) -> bool {
        let now = self.local_freeze.is_frozen();
        let was = self
            .local_frozen_seen
            .swap(now, std::sync::atomic::Ordering::SeqCst);
        if now != was {
            info!(signer = %self.name, frozen = now, "operator's local freeze changed");
            self.audit(
                Event::new(audit::kind::LOCAL_FREEZE).with("frozen", now.to_string()),
                true,
            );
        }
        now
    }

    /// This signer's signed account of its policy over the asker's challenge.
    pub fn status_receipt(&self, challenge: &[u8]) -> Result<Answer, Refusal> {
        use quorate_core::policy::receipt;
        if !(receipt::MIN_CHALLENGE..=receipt::MAX_CHALLENGE).contains(&challenge.len()) {
            return Err(Refusal::permanent(
                Rule::BadRequest,
                format!(
                    "challenge: {}..={} bytes",
                    receipt::MIN_CHALLENGE,
                    receipt::MAX_CHALLENGE
                ),
            ));
        }
        let st = {
            let mut guard = lock(&self.policy);
            let now = self.now_ms();
            // A time-lock that ran out applies before we state what is in force.
            let _ = self.refresh_policy(&mut guard, now);
            PolicyStatus::of(guard.state.as_ref())
        };
        let r = receipt::StatusReceipt {
            node: self.name.clone(),
            challenge: challenge.to_vec(),
            version: st.version,
            hash: st.hash,
            frozen: st.frozen,
            locally_frozen: self.locally_frozen(),
            pending_version: st.pending_version,
            pending_hash: st.pending_hash,
            pending_effective_at_ms: st.pending_effective_at_ms,
            clock_ms: self.now_ms(),
            signature: vec![],
        }
        .sign(&self.identity);
        Ok(Answer::StatusReceipt(r))
    }
}
