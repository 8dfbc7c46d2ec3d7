//! The velocity ledger on a signer: binding a withdrawal id to one intent, debiting it once
//! (own releases and ledger notices of withdrawals signed by others), and pruning old buckets.

use quorate_core::{
    audit::{self, Event},
    intent::WithdrawalIntent,
    link::{Answer, LedgerNotice},
    message::{signing_message, ChainFormat, Scheme},
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
    /// Whether `signature` is this group's signature over `message`.
    fn verify_group<C: Held>(&self, message: &[u8], signature: &[u8]) -> Result<bool, Refusal> {
        let key = C::group(self).key()?;
        Ok(frost_core::Signature::<C>::deserialize(signature)
            .is_ok_and(|sig| key.verifying_key().verify(message, &sig).is_ok()))
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

    /// A withdrawal the group signed without us: count it, once, if the group signature over
    /// its signing message verifies.
    pub(super) fn ledger_notice(&self, n: &LedgerNotice) -> Result<Answer, Refusal> {
        let invalid = |m: &str| Refusal::permanent(Rule::LedgerNoticeInvalid, m.to_string());
        let intent = WithdrawalIntent::decode(&n.intent)
            .map_err(|e| Refusal::permanent(Rule::IntentMalformed, e.to_string()))?;
        // The message the group signed for it under this signer's policy: a notice for a
        // withdrawal on a chain whose vault settings changed since does not verify.
        let format = {
            let guard = lock(&self.policy);
            let Some(state) = guard.state.as_ref() else {
                return Err(Refusal::temporary(
                    Rule::PolicyMissing,
                    "no policy installed",
                ));
            };
            let wallet: Option<[u8; 32]> = self.ed25519_group_key().try_into().ok();
            quorate_core::message::signed_chain_format(state.active(), &intent, wallet.as_ref())?
        };
        let msg = signing_message(&intent, format)?;
        let verified = match format.scheme() {
            Scheme::Secp256k1 => self.verify_group::<Secp>(&msg, &n.signature)?,
            Scheme::Ed25519 => self.verify_group::<Ed>(&msg, &n.signature)?,
        };
        if !verified {
            return Err(invalid("the notice's group signature does not verify"));
        }
        let digest = intent.digest();
        let bound = quorate_core::message::binding(&digest, &msg);
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
            .with("signed_at", n.signed_at_ms.to_string());
        // Counted when it was signed, as far as the intent itself allows.
        let signed_at = policy::ledger::notice_time(
            intent.created_at_ms,
            intent.expires_at_ms,
            n.signed_at_ms,
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
        Ok(Answer::LedgerAck { debited: !already })
    }
}
