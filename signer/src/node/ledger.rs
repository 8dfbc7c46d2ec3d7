//! The velocity ledger on a signer: binding a withdrawal id to one intent, debiting it once
//! (own releases and ledger notices of withdrawals signed by others), and pruning old buckets.

use std::{sync::Arc, time::Instant};

use quorate_core::{
    audit::{self, Event},
    intent::WithdrawalIntent,
    link::{Answer, LedgerNotice, RequestKind, MAX_NOTICES},
    message::{signing_message, ChainFormat},
    policy::{self, ledger::Debit},
    refusal::{Refusal, Rule},
};
use tracing::{info, warn};

use super::{lock, storage, Ed, Held, Node, PolicyGuard, Secp};
use crate::store::Binding;

/// How a withdrawal is counted in the velocity ledger.
#[derive(Debug, Clone, Copy)]
pub(super) enum Counted {
    /// We released a share for it, now.
    Release,
    /// Others signed it at `signed_at` (a ledger notice).
    Notice {
        /// When, unix ms (already clamped to the intent's validity).
        signed_at: u64,
    },
}

impl Node {
    /// Answers a batch of ledger notices. Each notice is counted in the metrics, and each
    /// refused one recorded, as a single notice would be; the records are flushed once, for
    /// the batch, before it is answered.
    pub(super) fn ledger_batch(
        self: &Arc<Self>,
        batch: &[LedgerNotice],
        started: Instant,
    ) -> Result<Answer, Refusal> {
        let results = self.ledger_notices(batch)?;
        let mut written = false;
        for (n, r) in batch.iter().zip(&results) {
            let one = match r {
                Ok(debited) => Answer::LedgerAck { debited: *debited },
                Err(r) => Answer::refused(r.clone()),
            };
            let what = RequestKind::LedgerNotice.as_str();
            written |= self.account(what, started, Some(&n.intent), &one, false);
        }
        if written {
            if let Err(e) = self.store.flush() {
                warn!(signer = %self.name, error = %e, "refused ledger notices' records not flushed");
            }
        }
        Ok(Answer::LedgerAcks(results))
    }

    /// Refuses if `id` is bound to another intent.
    pub(super) fn check_binding(
        &self,
        intent: &WithdrawalIntent,
        digest: &[u8; 32],
    ) -> Result<(), Refusal> {
        match self.store.bound_digest(&intent.id).map_err(storage)? {
            Some(d) if d != *digest => {
                warn!(signer = %self.name, withdrawal = %intent.id, "withdrawal id reused for a different intent");
                Err(Refusal::id_conflict(&intent.id))
            }
            _ => Ok(()),
        }
    }

    /// Drops buckets that no window reaches any more, in memory and in the store, so the
    /// ledger's size is bounded by the number of keys × the longest window.
    fn prune(&self, guard: &mut PolicyGuard, now: u64) {
        let bucket = now / policy::ledger::BUCKET_MS;
        if bucket == guard.pruned_at {
            return;
        }
        guard.pruned_at = bucket;
        let gone = guard.ledger.prune(now);
        if gone.is_empty() {
            return;
        }
        let keys: Vec<Vec<u8>> = gone
            .into_iter()
            .map(|(key, bucket)| {
                policy::ledger::BucketRecord {
                    key,
                    bucket,
                    usage: Default::default(),
                }
                .key_bytes()
            })
            .collect();
        if let Err(e) = self.store.forget_buckets(&keys) {
            warn!(signer = %self.name, error = %e, "could not delete pruned ledger buckets");
        }
    }

    /// Binds the withdrawal id to `bound` ([`quorate_core::message::binding`]) and, unless it
    /// was counted before, debits it (as our own release
    /// if `release`), in one write with its audit record. Not flushed: the caller flushes once
    /// it has let go of the locks.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn debit(
        &self,
        guard: &mut PolicyGuard,
        intent: &WithdrawalIntent,
        bound: &[u8; 32],
        now: u64,
        already: bool,
        counted: Counted,
        event: Event,
    ) -> Result<(), Refusal> {
        let debit = if already {
            Debit {
                at_ms: guard.ledger.effective_now(now),
                records: vec![],
            }
        } else {
            self.prune(guard, now);
            // Applied in memory first: if the write fails, the ledger over-counts, which errs
            // on the safe side.
            let (chain, asset, dest, amount) = (
                intent.chain,
                intent.asset.as_str(),
                intent.destination.as_str(),
                intent.amount,
            );
            match counted {
                // Counted as our own release too, for the per-signer budget.
                Counted::Release => guard.ledger.debit_release(chain, asset, dest, amount, now),
                Counted::Notice { signed_at } => guard
                    .ledger
                    .debit_at(chain, asset, dest, amount, signed_at, now),
            }
        };
        let mut chain = lock(&self.audit);
        let record = chain.prepare(now, event);
        let binding = match self
            .store
            .bind_and_debit(&intent.id, bound, now, &debit, &record)
        {
            Ok(b) => b,
            Err(e) => {
                // The write may have landed without its flush: never reuse its number.
                self.resync_audit(&mut chain);
                return Err(storage(e));
            }
        };
        if binding != Binding::Conflict {
            chain.advance(&record);
        }
        drop(chain);
        match binding {
            Binding::Conflict => Err(Refusal::id_conflict(&intent.id)),
            Binding::New | Binding::Same => Ok(()),
        }
    }

    /// Withdrawals the group signed without us ([`Request::LedgerNotices`], or one
    /// [`Request::LedgerNotice`]): each is counted, once, if the group signature over its
    /// signing message verifies. The signatures are verified together (one multi-scalar
    /// multiplication per key group); if that fails, one by one, so a forged notice is refused
    /// alone. Each notice is judged and counted as a single notice would be; one result per
    /// notice, in order. Refused whole only if the batch is empty or too large or no policy
    /// is installed.
    ///
    /// [`Request::LedgerNotices`]: quorate_core::link::Request::LedgerNotices
    /// [`Request::LedgerNotice`]: quorate_core::link::Request::LedgerNotice
    pub(super) fn ledger_notices(
        &self,
        notices: &[LedgerNotice],
    ) -> Result<Vec<Result<bool, Refusal>>, Refusal> {
        if notices.is_empty() || notices.len() > MAX_NOTICES {
            return Err(Refusal::permanent(
                Rule::BadRequest,
                format!(
                    "a batch of {} ledger notices; 1 to {MAX_NOTICES} are accepted",
                    notices.len()
                ),
            ));
        }
        // Decoded first: a notice that does not decode is refused so whatever else holds.
        let intents: Vec<Result<WithdrawalIntent, Refusal>> = notices
            .iter()
            .map(|n| {
                WithdrawalIntent::decode(&n.intent)
                    .map_err(|e| Refusal::permanent(Rule::IntentMalformed, e.to_string()))
            })
            .collect();
        if intents.iter().all(Result::is_err) {
            return Ok(intents.into_iter().map(|i| i.map(|_| false)).collect());
        }
        // The message the group signed for each under this signer's policy: a notice for a
        // withdrawal on a chain whose vault settings changed since does not verify.
        let judged: Vec<Result<Judged, Refusal>> = {
            let guard = lock(&self.policy);
            let Some(state) = guard.state.as_ref() else {
                return Err(Refusal::temporary(
                    Rule::PolicyMissing,
                    "no policy installed",
                ));
            };
            let wallet: Option<[u8; 32]> = self.ed25519_group_key().try_into().ok();
            intents
                .into_iter()
                .map(|intent| {
                    let intent = intent?;
                    let format = quorate_core::message::signed_chain_format(
                        state.active(),
                        &intent,
                        wallet.as_ref(),
                    )?;
                    Ok(Judged {
                        intent,
                        format,
                        message: Vec::new(),
                    })
                })
                .collect()
        };
        let mut judged: Vec<Result<Judged, Refusal>> = judged
            .into_iter()
            .map(|j| {
                let mut j = j?;
                j.message = signing_message(&j.intent, j.format)?;
                Ok(j)
            })
            .collect();
        self.verify_notices::<Secp>(notices, &mut judged);
        self.verify_notices::<Ed>(notices, &mut judged);
        Ok(judged
            .into_iter()
            .zip(notices)
            .map(|(j, n)| j.and_then(|j| self.count_notice(j, n.signed_at_ms)))
            .collect())
    }

    /// Checks the group signatures of the `judged` notices of `C`'s scheme together, turning
    /// each that does not verify into its refusal.
    fn verify_notices<C: Held>(
        &self,
        notices: &[LedgerNotice],
        judged: &mut [Result<Judged, Refusal>],
    ) {
        let ours: Vec<usize> = (0..judged.len())
            .filter(|&i| matches!(&judged[i], Ok(j) if j.format.scheme() == C::SCHEME))
            .collect();
        if ours.is_empty() {
            return;
        }
        let verified = match C::group(self).key() {
            Ok(key) => verify_all::<C>(
                key.verifying_key(),
                ours.iter().map(|&i| {
                    let message = judged[i].as_ref().map_or(&[][..], |j| &j.message[..]);
                    (message, &notices[i].signature[..])
                }),
            ),
            Err(refusal) => {
                for &i in &ours {
                    judged[i] = Err(refusal.clone());
                }
                return;
            }
        };
        for (i, ok) in ours.into_iter().zip(verified) {
            if !ok {
                judged[i] = Err(Refusal::permanent(
                    Rule::LedgerNoticeInvalid,
                    "the notice's group signature does not verify",
                ));
            }
        }
    }

    /// Counts one notice whose group signature verified: binds its id, claims its durable
    /// nonce (Solana), debits it unless it was counted before, with its audit record.
    /// `Ok(true)`: debited now.
    fn count_notice(&self, j: Judged, signed_at_ms: u64) -> Result<bool, Refusal> {
        let Judged {
            intent,
            format,
            message,
        } = j;
        let digest = intent.digest();
        let bound = quorate_core::message::binding(&digest, &message);
        self.check_binding(&intent, &bound)?;
        let mut guard = lock(&self.policy);
        let now = self.now_ms();
        // The nonce it was signed with is spent: no other withdrawal is signed with it here.
        if let ChainFormat::Solana(t) = &format {
            if let quorate_core::chains::solana::Lifetime::DurableNonce { account, nonce } =
                &t.lifetime
            {
                self.claim_nonce(account, nonce, &intent.id, intent.expires_at_ms, true)?;
            }
        }
        let already = self.store.debited(&intent.id).map_err(storage)?;
        let event = Event::new(audit::kind::LEDGER_NOTICE)
            .with("withdrawal", &intent.id)
            .with("digest", hex::encode(digest))
            .with("chain", intent.chain.as_str())
            .with("asset", &intent.asset)
            .with("destination", &intent.destination)
            .with("amount", intent.amount.to_string())
            .with("debit", if already { "already" } else { "new" })
            .with("signed_at", signed_at_ms.to_string());
        // Counted when it was signed, as far as the intent itself allows.
        let signed_at = policy::ledger::notice_time(
            intent.created_at_ms,
            intent.expires_at_ms,
            signed_at_ms,
            now,
        );
        // Not flushed on its own: a notice lost in a crash is sent again when this signer
        // reconnects (the coordinator replays the window), and the next flush carries it.
        self.debit(
            &mut guard,
            &intent,
            &bound,
            now,
            already,
            Counted::Notice { signed_at },
            event,
        )?;
        drop(guard);
        if !already {
            info!(signer = %self.name, withdrawal = %intent.id, "ledger notice: withdrawal signed by others counted");
        }
        Ok(!already)
    }
}

/// A notice decoded, with the message the group signed for it (empty until it is made).
struct Judged {
    intent: WithdrawalIntent,
    format: ChainFormat,
    message: Vec<u8>,
}

/// Which of `items` (message, serialized signature) are `key`'s signatures. Two or more are
/// checked as one batch (frost's batch verifier: one multi-scalar multiplication, about a
/// third of the cost of checking each at 8 or more); if the batch fails, each is checked
/// alone to find the ones at fault. A signature that does not parse is simply invalid.
fn verify_all<'a, C: frost_core::Ciphersuite>(
    key: &frost_core::VerifyingKey<C>,
    items: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Vec<bool> {
    use frost_core::batch::{Item, Verifier};
    let parsed: Vec<Option<Item<C>>> = items
        .map(|(message, signature)| {
            let signature = frost_core::Signature::<C>::deserialize(signature).ok()?;
            Item::new(*key, signature, message).ok()
        })
        .collect();
    let well_formed = parsed.iter().flatten().count();
    if well_formed >= 2 {
        let mut batch = Verifier::<C>::new();
        for item in parsed.iter().flatten() {
            batch.queue(item.clone());
        }
        if batch.verify(rand::rngs::OsRng).is_ok() {
            return parsed.iter().map(Option::is_some).collect();
        }
    }
    parsed
        .into_iter()
        .map(|item| item.is_some_and(|i| i.verify_single().is_ok()))
        .collect()
}

#[cfg(test)]
mod tests;
