//! Ledger notices: telling the signers that did not take part about a signed withdrawal, and
//! replaying the ones a signer missed while away, so every velocity ledger sees the whole
//! volume.

use quorate_core::{
    intent::WithdrawalIntent,
    link::{Answer, LedgerNotice, Request},
};
use tracing::{info, warn};

use super::Coordinator;
use crate::store::Status;

impl Coordinator {
    /// Ledger notices a signer missed while away: every withdrawal signed without it within
    /// the policy's longest window (bucket slack included). The signer counts each id once.
    pub(super) async fn replay_notices(&self, signer: u16) {
        /// Notices outstanding at once on one link (the signer handles up to 128).
        const REPLAY_IN_FLIGHT: usize = 32;
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
        // Pipelined: up to REPLAY_IN_FLIGHT notices outstanding on the link, so a signer far
        // from the coordinator catches up in a few round trips, not one per notice.
        use futures::StreamExt;
        let notices = records
            .into_iter()
            .filter(|r| r.updated_ms >= since && !r.signers.contains(&signer))
            .filter_map(|r| {
                let (Ok(intent), Some(Ok(signature))) = (
                    hex::decode(&r.intent),
                    r.signature.as_ref().map(hex::decode),
                ) else {
                    return None;
                };
                let notice = Request::LedgerNotice(LedgerNotice {
                    intent,
                    signature,
                    signed_at_ms: r.updated_ms,
                });
                Some((r.id, notice))
            });
        let mut answers = futures::stream::iter(notices)
            .map(|(id, notice)| async move {
                let answer = self
                    .registry
                    .call(signer, notice, self.signing.signer_timeout)
                    .await;
                (id, answer)
            })
            .buffer_unordered(REPLAY_IN_FLIGHT);
        let mut sent = 0usize;
        while let Some((id, answer)) = answers.next().await {
            match answer {
                Ok(Answer::LedgerAck { debited: true }) => sent += 1,
                Ok(Answer::LedgerAck { debited: false }) => {}
                Ok(Answer::Refused { refusal: x, .. }) => {
                    warn!(signer, withdrawal = %id, rule = %x.rule, "ledger notice refused");
                }
                _ => {
                    warn!(signer, "ledger notices interrupted");
                    return;
                }
            }
        }
        if sent > 0 {
            info!(signer, counted = sent, "missed ledger notices delivered");
        }
    }

    /// Ledger sync: tells every connected signer that did not take part about a withdrawal
    /// signed at `signed_at` (Unix ms, as its record says), so each velocity ledger sees the
    /// whole volume at the time it went out. Best effort: a signer that misses the notice is
    /// behind by this withdrawal (docs/policy.md).
    pub(super) fn notify_others(
        &self,
        intent: &WithdrawalIntent,
        signature: &[u8],
        signers: &[u16],
        signed_at: u64,
    ) {
        let notice = Request::LedgerNotice(LedgerNotice {
            intent: intent.encode(),
            signature: signature.to_vec(),
            signed_at_ms: signed_at,
        });
        let timeout = self.signing.signer_timeout;
        for s in self.registry.connected() {
            if signers.contains(&s.identifier) {
                continue;
            }
            let registry = self.registry.clone();
            let notice = notice.clone();
            let id = intent.id.clone();
            tokio::spawn(async move {
                match registry.call(s.identifier, notice, timeout).await {
                    Ok(Answer::LedgerAck { .. }) => {}
                    Ok(Answer::Refused { refusal: r, .. }) => {
                        warn!(withdrawal = %id, signer = %s.name, rule = %r.rule, reason = %r.reason, "ledger notice refused");
                    }
                    Ok(_) => {
                        warn!(withdrawal = %id, signer = %s.name, "ledger notice: unexpected answer")
                    }
                    Err(e) => {
                        warn!(withdrawal = %id, signer = %s.name, error = %e, "ledger notice not delivered")
                    }
                }
            });
        }
    }
}
