//! The coordinator's decisions while it gathers one threshold signature, apart from the I/O:
//! which signers form the next quorum, who is left out after what they answered, when a
//! signer is asked with a fresh commitment instead of a pre-generated one, and which refusal
//! the backend is told when no quorum signed.
//!
//! The shell asks for a quorum, sends the rounds, reports each signer's answer here, and when
//! it runs out of attempts or candidates turns the record into one refusal with
//! [`Attempts::verdict`]. Nothing here reads a clock, a socket or a disk.

use std::collections::BTreeSet;

use rand_core::RngCore;

use crate::{
    policy::{doc::MAX_WINDOW_MS, ledger::BUCKET_MS},
    refusal::{Refusal, Rule},
};

/// What to do with a signer after its refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRefusal {
    /// It no longer holds the pre-generated nonce it was asked to sign with (it restarted, or
    /// the nonce expired there first): not its fault. Its pool is to be dropped, and it stays
    /// a candidate, asked with a fresh commitment from now on in this withdrawal.
    FreshCommitment,
    /// Left out of every later attempt for this withdrawal.
    LeftOut,
}

/// The record of one withdrawal's attempts.
#[derive(Debug)]
pub struct Attempts {
    threshold: usize,
    left_out: BTreeSet<u16>,
    fresh_only: BTreeSet<u16>,
    refusals: Vec<(u16, Refusal)>,
    problems: Vec<String>,
}

impl Attempts {
    /// No attempt yet, for a group of `threshold`.
    pub fn new(threshold: usize) -> Self {
        Self {
            threshold,
            left_out: BTreeSet::new(),
            fresh_only: BTreeSet::new(),
            refusals: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// The next quorum: `threshold` signers drawn uniformly at random from `candidates` (the
    /// signers able to sign now) that were not left out, in ascending order; `None` if too few
    /// remain. Drawn whatever the signers' pools hold, so a pool never decides who is asked.
    pub fn quorum(&self, candidates: &[u16], rng: &mut impl RngCore) -> Option<Vec<u16>> {
        let mut open: Vec<u16> = candidates
            .iter()
            .copied()
            .filter(|i| !self.left_out.contains(i))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if open.len() < self.threshold || self.threshold == 0 {
            return None;
        }
        // A partial Fisher–Yates shuffle: the first `threshold` places.
        for k in 0..self.threshold {
            let j = k + below(rng, open.len() - k);
            open.swap(k, j);
        }
        let mut quorum = open[..self.threshold].to_vec();
        quorum.sort_unstable();
        Some(quorum)
    }

    /// Whether `signer` may be asked with a pre-generated commitment.
    pub fn may_use_pool(&self, signer: u16) -> bool {
        !self.fresh_only.contains(&signer)
    }

    /// `signer` refused; `presigned` if it was asked with a pre-generated commitment. An
    /// unknown pre-generated nonce is forgiven once per signer and withdrawal; anything else
    /// leaves it out, and its refusal is kept for the verdict.
    pub fn refused(&mut self, signer: u16, refusal: Refusal, presigned: bool) -> AfterRefusal {
        if presigned && refusal.rule == Rule::NonceUnknown && self.fresh_only.insert(signer) {
            self.problems
                .push(format!("signer {signer}: pre-generated commitment unknown"));
            return AfterRefusal::FreshCommitment;
        }
        self.left_out.insert(signer);
        self.refusals.push((signer, refusal));
        AfterRefusal::LeftOut
    }

    /// `signer` gave no usable answer (unreachable, timed out, malformed, out of turn): left
    /// out, `problem` kept for the verdict.
    pub fn failed(&mut self, signer: u16, problem: impl Into<String>) {
        self.left_out.insert(signer);
        self.problems.push(problem.into());
    }

    /// The shares of `quorum` did not aggregate and `culprits` were named by share
    /// verification: they are left out, or the whole quorum if none could be named.
    pub fn invalid_shares(&mut self, quorum: &[u16], culprits: &[u16]) {
        self.problems
            .push(format!("invalid share from {culprits:?}"));
        if culprits.is_empty() {
            self.left_out.extend(quorum.iter().copied());
        }
        self.left_out.extend(culprits.iter().copied());
    }

    /// Whether `signer` was left out.
    pub fn is_left_out(&self, signer: u16) -> bool {
        self.left_out.contains(&signer)
    }

    /// The one refusal for a withdrawal no quorum signed, `connected` signers being connected
    /// at the end. Which refusal wins:
    /// 1. a signer's permanent refusal (the same request will always be refused), under its
    ///    own rule;
    /// 2. a temporary policy refusal (a velocity window, a freeze, a destination not active
    ///    yet) under its own rule, so the backend learns what to wait for, retryable from the
    ///    `threshold`-th earliest time the signers refusing under that rule gave (by then
    ///    that many have room again), and never later than the longest window can hold (a
    ///    signer's time is only a hint);
    /// 3. otherwise `not-enough-signers`, naming every problem met.
    pub fn verdict(&self, now_ms: u64, connected: usize) -> Refusal {
        if let Some((i, r)) = self.refusals.iter().find(|(_, r)| r.permanent) {
            return Refusal::permanent(r.rule.clone(), format!("signer {i} refused: {}", r.reason));
        }
        if let Some((i, r)) = self.refusals.iter().find(|(_, r)| r.rule.is_policy()) {
            let mut times: Vec<u64> = self
                .refusals
                .iter()
                .filter(|(_, o)| o.rule == r.rule)
                .filter_map(|(_, o)| o.retry_at_ms)
                .collect();
            times.sort_unstable();
            let latest = now_ms.saturating_add(MAX_WINDOW_MS + BUCKET_MS);
            let retry_at = times
                .get(
                    self.threshold
                        .saturating_sub(1)
                        .min(times.len().saturating_sub(1)),
                )
                .map(|at| (*at).min(latest));
            return Refusal::temporary(r.rule.clone(), format!("signer {i} refused: {}", r.reason))
                .retry_at(retry_at);
        }
        let mut all = self.problems.clone();
        all.extend(
            self.refusals
                .iter()
                .map(|(i, r)| format!("signer {i}: {r}")),
        );
        Refusal::temporary(
            Rule::NotEnoughSigners,
            format!(
                "could not gather {} signature shares ({connected} signers connected{}); submit again later",
                self.threshold,
                if all.is_empty() {
                    String::new()
                } else {
                    format!("; {}", all.join("; "))
                }
            ),
        )
    }
}

/// A uniform draw from `0..n` (`n` ≥ 1), by rejection so no value is favoured.
fn below(rng: &mut impl RngCore, n: usize) -> usize {
    let n = n as u64;
    // The largest multiple of n that fits: draws at or above it are redrawn.
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let x = rng.next_u64();
        if x < zone {
            return (x % n) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rule: &str, at: Option<u64>) -> Refusal {
        Refusal::temporary(Rule::parse(rule), "window full").retry_at(at)
    }

    #[test]
    fn a_quorum_is_threshold_signers_not_left_out_in_order() {
        let mut a = Attempts::new(2);
        let mut rng = rand_core::OsRng;
        for _ in 0..50 {
            let q = a.quorum(&[3, 1, 2], &mut rng).unwrap();
            assert_eq!(q.len(), 2);
            assert!(q.windows(2).all(|w| w[0] < w[1]), "{q:?}");
        }
        a.failed(2, "signer 2 did not answer in time");
        for _ in 0..20 {
            assert_eq!(a.quorum(&[1, 2, 3], &mut rng).unwrap(), vec![1, 3]);
        }
        a.failed(3, "signer 3 is not connected");
        assert_eq!(a.quorum(&[1, 2, 3], &mut rng), None);
        // A candidate listed twice is still one signer.
        assert_eq!(a.quorum(&[1, 1], &mut rng), None);
    }

    #[test]
    fn every_quorum_is_drawn() {
        let a = Attempts::new(2);
        let mut rng = rand_core::OsRng;
        let mut seen = BTreeSet::new();
        for _ in 0..400 {
            seen.insert(a.quorum(&[1, 2, 3, 4], &mut rng).unwrap());
        }
        // All six pairs of four signers; (5/6)^400 odds of missing a given one.
        assert_eq!(seen.len(), 6, "{seen:?}");
    }

    #[test]
    fn an_unknown_pregenerated_nonce_is_forgiven_once_per_signer() {
        let mut a = Attempts::new(2);
        let unknown = || Refusal::temporary(Rule::NonceUnknown, "no such nonce");
        assert!(a.may_use_pool(1));
        assert_eq!(a.refused(1, unknown(), true), AfterRefusal::FreshCommitment);
        assert!(!a.may_use_pool(1) && !a.is_left_out(1));
        // A second time, or for a fresh commitment, it is the signer's failure.
        assert_eq!(a.refused(1, unknown(), true), AfterRefusal::LeftOut);
        assert_eq!(a.refused(2, unknown(), false), AfterRefusal::LeftOut);
        assert!(a.is_left_out(1) && a.is_left_out(2));
        // Any other refusal of a pre-generated commitment is not forgiven.
        let frozen = Refusal::temporary(Rule::PolicyFrozen, "frozen");
        assert_eq!(a.refused(3, frozen, true), AfterRefusal::LeftOut);
    }

    #[test]
    fn shares_that_do_not_aggregate_leave_out_the_culprits_or_the_whole_quorum() {
        let mut a = Attempts::new(2);
        a.invalid_shares(&[1, 2], &[2]);
        assert!(!a.is_left_out(1) && a.is_left_out(2));
        a.invalid_shares(&[1, 3], &[]);
        assert!(a.is_left_out(1) && a.is_left_out(3));
    }

    #[test]
    fn a_permanent_refusal_wins_over_everything_else() {
        let mut a = Attempts::new(2);
        a.failed(4, "signer 4 did not answer in time");
        a.refused(
            1,
            policy("policy-velocity-asset-amount-24h", Some(9_000)),
            false,
        );
        a.refused(
            2,
            Refusal::permanent(Rule::PolicyWhitelistDestination, "not whitelisted"),
            false,
        );
        let v = a.verdict(1_000, 3);
        assert_eq!(v.rule, Rule::PolicyWhitelistDestination);
        assert!(v.permanent);
        assert!(v.reason.starts_with("signer 2 refused"), "{}", v.reason);
    }

    #[test]
    fn a_temporary_policy_refusal_comes_back_with_the_thresholdth_earliest_time() {
        let rule = "policy-velocity-asset-amount-24h";
        let mut a = Attempts::new(2);
        a.failed(5, "signer 5 is not connected");
        a.refused(3, policy(rule, Some(30_000)), false);
        a.refused(1, policy(rule, Some(10_000)), false);
        // Another rule's time does not count for this one.
        a.refused(4, policy("policy-frozen", Some(1)), false);
        a.refused(2, policy(rule, Some(20_000)), false);
        let v = a.verdict(1_000, 5);
        assert_eq!((v.rule.to_string().as_str(), v.permanent), (rule, false));
        // By 20 000 two of them (the threshold) have room again.
        assert_eq!(v.retry_at_ms, Some(20_000));
        // One time only: that one.
        let mut b = Attempts::new(3);
        b.refused(1, policy(rule, Some(10_000)), false);
        b.refused(2, policy(rule, None), false);
        assert_eq!(b.verdict(1_000, 3).retry_at_ms, Some(10_000));
        // No time at all: none.
        let mut c = Attempts::new(2);
        c.refused(1, policy(rule, None), false);
        assert_eq!(c.verdict(1_000, 3).retry_at_ms, None);
    }

    #[test]
    fn a_signers_retry_time_is_capped_by_the_longest_window() {
        let mut a = Attempts::new(1);
        a.refused(1, policy("policy-frozen", Some(u64::MAX)), false);
        let now = 5_000;
        assert_eq!(
            a.verdict(now, 3).retry_at_ms,
            Some(now + MAX_WINDOW_MS + BUCKET_MS)
        );
    }

    #[test]
    fn without_a_policy_refusal_it_is_not_enough_signers_naming_every_problem() {
        let mut a = Attempts::new(2);
        assert_eq!(
            a.verdict(0, 0).reason,
            "could not gather 2 signature shares (0 signers connected); submit again later"
        );
        a.failed(2, "signer 2 did not answer in time");
        a.refused(
            3,
            Refusal::temporary(Rule::KeyEpochMismatch, "switching"),
            false,
        );
        let v = a.verdict(0, 3);
        assert_eq!(v.rule, Rule::NotEnoughSigners);
        assert!(!v.permanent && v.retry_at_ms.is_none());
        assert!(
            v.reason.contains("3 signers connected")
                && v.reason.contains("signer 2 did not answer in time")
                && v.reason.contains("signer 3: key-epoch-mismatch: switching"),
            "{}",
            v.reason
        );
    }
}
