//! What the policy in force says about a withdrawal, for the coordinator's early answer:
//! its evaluation, the chain format and vault actions, and the coordinator's own ledger.

use quorate_core::{
    identity::IdentityPublic,
    intent::WithdrawalIntent,
    message::ChainFormat,
    policy::{evaluate, AdminSignature},
    refusal::{Refusal, Rule},
};

use super::PolicyDesk;

impl PolicyDesk {
    /// Backend keys of the policy in force (empty without a policy).
    pub fn backend_keys(&self, now: u64) -> Vec<quorate_core::backend::BackendKey> {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        inner
            .state
            .as_ref()
            .map(|s| s.active().backend_keys())
            .unwrap_or_default()
    }

    /// The early answer: the coordinator's own evaluation.
    pub fn precheck(
        &self,
        intent: &WithdrawalIntent,
        approvals: &[AdminSignature],
        now: u64,
    ) -> Result<(), Refusal> {
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let Some(s) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                "the coordinator has no policy installed",
            ));
        };
        evaluate(s.active(), &inner.ledger, intent, approvals, now)
    }

    /// How the group signs for `intent` under the policy in force.
    pub fn chain_format(
        &self,
        intent: &WithdrawalIntent,
        solana_wallet: Option<&[u8; 32]>,
    ) -> Result<ChainFormat, Refusal> {
        let inner = self.lock();
        let Some(s) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                "the coordinator has no policy installed",
            ));
        };
        quorate_core::message::chain_format_for(s.active(), intent, solana_wallet)
    }

    /// `f` of the policy in force; refused without one.
    pub fn with_active<T>(
        &self,
        f: impl FnOnce(&quorate_core::policy::PolicyDoc) -> T,
    ) -> Result<T, Refusal> {
        let inner = self.lock();
        let Some(s) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                "the coordinator has no policy installed",
            ));
        };
        Ok(f(s.active()))
    }

    /// The vault action the policy in force lists for (`chain`, `nonce`).
    pub fn vault_admin(
        &self,
        chain: quorate_core::address::Chain,
        nonce: u64,
    ) -> Result<quorate_core::message::VaultAdmin, Refusal> {
        let inner = self.lock();
        let Some(s) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                "the coordinator has no policy installed",
            ));
        };
        quorate_core::message::vault_admin(s.active(), chain, nonce)
    }

    /// The longest velocity window of the policy in force (0 without limits).
    pub fn longest_window_ms(&self) -> u64 {
        self.lock()
            .state
            .as_ref()
            .and_then(|s| s.active().velocity.iter().map(|v| v.window_ms).max())
            .unwrap_or(0)
    }

    /// Admins of the policy in force.
    pub fn admins(&self) -> std::collections::BTreeSet<IdentityPublic> {
        self.lock()
            .state
            .as_ref()
            .map(|s| s.active().admin_keys())
            .unwrap_or_default()
    }

    /// Approvals required for `intent` (0 if none).
    pub fn approvals_required(&self, intent: &WithdrawalIntent) -> u32 {
        let inner = self.lock();
        inner
            .state
            .as_ref()
            .and_then(|s| s.active().asset(intent.chain, &intent.asset).cloned())
            .filter(|a| intent.amount > a.approval_threshold)
            .map_or(0, |a| u32::from(a.approvals_required))
    }

    /// Counts a signed withdrawal in the coordinator's ledger.
    pub fn debit(&self, intent: &WithdrawalIntent, now: u64) {
        let mut inner = self.lock();
        // Buckets past every window are dropped (once a minute), so memory stays bounded.
        let bucket = now / quorate_core::policy::ledger::BUCKET_MS;
        if bucket != inner.pruned_at {
            inner.pruned_at = bucket;
            inner.ledger.prune(now);
        }
        inner.ledger.debit(
            intent.chain,
            &intent.asset,
            &intent.destination,
            intent.amount,
            now,
        );
    }
}
