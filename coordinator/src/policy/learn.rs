//! What a coordinator learns from its signers: a version another coordinator carried to them,
//! a pending version they put in force, and the vetoes and pending state it has to match.

use quorate_core::{
    policy::SignedPolicy,
    refusal::{Refusal, Rule},
};

use super::{bad, PolicyDesk};

impl PolicyDesk {
    /// A version after ours that t signers hold, in force (`applied`) or pending until
    /// `effective_at_ms` on their clocks, as one of them sent it: another coordinator carried
    /// it. Filed like an admin's proposal arriving with its approvals (it must build on our
    /// version in force and carry the quorum), superseding what we had pending; then in force
    /// here if it is on the signers, or pending until their time. `Ok(false)`: nothing to do.
    pub fn learn(
        &self,
        signed: SignedPolicy,
        applied: bool,
        effective_at_ms: u64,
        now: u64,
    ) -> Result<bool, Refusal> {
        let key = signed.doc.hash_hex();
        let mut inner = self.lock();
        Self::tick(&mut inner, now);
        let Some(state) = inner.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                "no policy installed",
            ));
        };
        if state.active().hash_hex() == key || inner.desk.vetoes.iter().any(|(h, _, _)| *h == key) {
            return Ok(false);
        }
        let ours_pending = state
            .pending
            .as_ref()
            .is_some_and(|p| p.policy.doc.hash_hex() == key);
        if ours_pending && !applied {
            return Ok(false);
        }
        if !ours_pending {
            let (proposal, offered) = self.file(&mut inner, signed, now)?;
            if offered.is_none() {
                return Err(bad(
                    Rule::PolicyUpdateSignatures,
                    format!(
                        "version {} carries {} of the {} admin signatures it needs",
                        proposal.version, proposal.approvals, proposal.required
                    ),
                ));
            }
        }
        let pending_at = inner
            .state
            .as_ref()
            .and_then(|s| s.pending.as_ref())
            .filter(|p| p.policy.doc.hash_hex() == key)
            .map(|p| p.effective_at_ms);
        match pending_at {
            // In force on t signers: in force here now.
            Some(at) if applied => Self::tick(&mut inner, at.max(now)),
            // Pending here as long as on the signers.
            Some(_) if effective_at_ms > 0 => {
                if let Some(p) = inner.state.as_mut().and_then(|s| s.pending.as_mut()) {
                    p.effective_at_ms = effective_at_ms;
                }
                if let Some(r) = inner.desk.proposals.get_mut(&key) {
                    r.effective_at_ms = effective_at_ms;
                }
            }
            _ => {}
        }
        self.save(&inner)
            .map_err(|e| Refusal::temporary(Rule::Storage, e.to_string()))?;
        Ok(true)
    }

    /// Puts our pending version `hash` in force now (t signers have it in force).
    pub fn apply_pending(&self, hash: &str, now: u64) -> Result<bool, Refusal> {
        let mut inner = self.lock();
        let at = inner
            .state
            .as_ref()
            .and_then(|s| s.pending.as_ref())
            .filter(|p| p.policy.doc.hash_hex() == hash)
            .map(|p| p.effective_at_ms);
        let Some(at) = at else {
            return Ok(false);
        };
        Self::tick(&mut inner, at.max(now));
        self.save(&inner)
            .map_err(|e| Refusal::temporary(Rule::Storage, e.to_string()))?;
        Ok(true)
    }

    /// The hash of the version pending here, if any.
    pub fn pending_hash(&self) -> Option<String> {
        self.lock()
            .state
            .as_ref()
            .and_then(|s| s.pending.as_ref())
            .map(|p| p.policy.doc.hash_hex())
    }

    /// True if a veto of `hash_hex` is recorded here.
    pub fn has_veto(&self, hash_hex: &str) -> bool {
        self.lock()
            .desk
            .vetoes
            .iter()
            .any(|(h, _, _)| h == hash_hex)
    }

    /// True if `hash_hex` is a proposal a veto can still stop (collecting or time-locked).
    pub fn vetoable(&self, hash_hex: &str) -> bool {
        self.lock()
            .desk
            .proposals
            .get(hash_hex)
            .is_some_and(|p| matches!(p.state.as_str(), "collecting" | "timelocked"))
    }
}
