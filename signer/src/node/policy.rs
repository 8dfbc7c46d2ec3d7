//! The governed policy on a signer: accepting signed versions and vetoes, and applying a
//! pending version once its time-lock has run out.

use quorate_core::{
    audit::{self, Event},
    link::{Answer, PolicyVeto},
    policy::{self, encode_state, PolicyStatus, SignedPolicy},
    refusal::{Refusal, Rule},
};
use tracing::{info, warn};

use super::{lock, storage, sync, Node, PolicyGuard, META_POLICY_STATE};

impl Node {
    /// The policy this signer has in force now: a pending version whose time-lock has run out
    /// is shown in force, as the next request will apply it, so the status never shows a
    /// version that no longer decides anything. Writes nothing (it is read from async code).
    pub fn policy_status(&self) -> PolicyStatus {
        let guard = lock(&self.policy);
        let now = self.now_ms();
        match guard.state.as_ref() {
            Some(s) if s.pending.as_ref().is_some_and(|p| now >= p.effective_at_ms) => {
                let mut due = s.clone();
                due.tick(now);
                PolicyStatus::of(Some(&due))
            }
            state => PolicyStatus::of(state),
        }
    }

    /// Applies a pending version whose time-lock has run out; refuses if no policy is
    /// installed.
    pub(super) fn refresh_policy(&self, guard: &mut PolicyGuard, now: u64) -> Result<(), Refusal> {
        let Some(state) = guard.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                format!("signer {} has no policy installed yet", self.name),
            ));
        };
        if state
            .pending
            .as_ref()
            .is_some_and(|p| now >= p.effective_at_ms)
        {
            let mut next = state.clone();
            next.tick(now);
            self.store
                .put_meta_durable(META_POLICY_STATE, &encode_state(&next))
                .map_err(storage)?;
            info!(signer = %self.name, version = next.active().version, hash = %next.active().hash_hex(), "policy version applied after its time-lock");
            self.audit(
                Event::new(audit::kind::POLICY_APPLIED)
                    .with("version", next.active().version.to_string())
                    .with("hash", next.active().hash_hex())
                    .with("after", "time-lock")
                    .with("frozen", next.active().frozen.to_string()),
                true,
            );
            guard.state = Some(next);
        }
        Ok(())
    }

    pub(super) fn policy_update(&self, signed: SignedPolicy) -> Result<Answer, Refusal> {
        // Kept as the admins signed it (below), before the state takes the version.
        let kept = sync::history_value(&signed);
        let version = signed.doc.version;
        let hash = signed.doc.hash_hex();
        let mut guard = lock(&self.policy);
        let now = self.now_ms();
        let (next, outcome, known) = match &guard.state {
            None => (
                self.manifest.genesis(signed),
                "installed as genesis".to_string(),
                false,
            ),
            Some(s) => {
                let mut next = s.clone();
                match next.offer(signed, now) {
                    Ok(o) => (Ok(next), format!("{o:?}"), o == policy::Offered::Known),
                    Err(e) => (Err(e), String::new(), false),
                }
            }
        };
        let next = next.inspect_err(|r| {
            warn!(signer = %self.name, version, hash = %hash, rule = %r.rule, reason = %r.reason, "policy update refused");
        })?;
        // A version this signer just verified (genesis, applied or scheduled), as the admins
        // signed it, beside the state: any coordinator of the cluster can then learn it from
        // this signer (`sync`). A copy of one it already holds changes nothing there.
        let mut puts = vec![(META_POLICY_STATE.to_string(), encode_state(&next))];
        if !known {
            puts.push((sync::history_key(version), kept));
        }
        self.store
            .put_meta_batch_durable(&puts, &[])
            .map_err(storage)?;
        info!(signer = %self.name, version, hash = %hash, outcome = %outcome, "policy update accepted");
        let applied = next.active().version == version;
        self.audit(
            Event::new(if applied {
                audit::kind::POLICY_APPLIED
            } else {
                audit::kind::POLICY_SCHEDULED
            })
            .with("version", version.to_string())
            .with("hash", &hash)
            .with("outcome", &outcome)
            .with("frozen", next.active().frozen.to_string()),
            true,
        );
        guard.state = Some(next);
        Ok(Answer::PolicyStatus(PolicyStatus::of(guard.state.as_ref())))
    }

    pub(super) fn policy_veto(&self, v: &PolicyVeto) -> Result<Answer, Refusal> {
        let (hash, veto) = (v.policy_hash, &v.veto);
        let mut guard = lock(&self.policy);
        let Some(state) = guard.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                "no policy installed",
            ));
        };
        let mut next = state.clone();
        next.veto(&hash, veto, self.now_ms())?;
        // Kept under the version it is for (the pending one's, or the next), so a coordinator
        // asks only for the vetoes after its version in force.
        let version = next
            .pending
            .as_ref()
            .filter(|p| p.policy.doc.hash() == hash)
            .map_or(next.active().version + 1, |p| p.policy.doc.version);
        self.store
            .put_meta_batch_durable(
                &[
                    (META_POLICY_STATE.to_string(), encode_state(&next)),
                    (sync::veto_key(version, &hash), sync::veto_value(v)),
                ],
                &[],
            )
            .map_err(storage)?;
        info!(signer = %self.name, hash = %hex::encode(hash), admin = %veto.admin, "policy version vetoed");
        self.audit(
            Event::new(audit::kind::POLICY_VETOED)
                .with("hash", hex::encode(hash))
                .with("admin", veto.admin.to_string()),
            true,
        );
        guard.state = Some(next);
        Ok(Answer::PolicyStatus(PolicyStatus::of(guard.state.as_ref())))
    }
}
