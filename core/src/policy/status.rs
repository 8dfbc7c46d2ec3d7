//! What a node states about its policy: the version in force and any pending one. The hello a
//! signer opens its link with, its answers to policy updates and syncs, and the coordinator's
//! admin views all carry it.

use super::PolicyState;

/// The policy a node has in force, and the version waiting out its time-lock, if any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyStatus {
    /// Version in force (0: no policy installed).
    pub version: u64,
    /// Hex hash of the version in force (empty: none).
    pub hash: String,
    /// The version in force is frozen.
    pub frozen: bool,
    /// Pending version (0: nothing pending).
    pub pending_version: u64,
    /// Hex hash of the pending version (empty: none).
    pub pending_hash: String,
    /// When the pending version applies, Unix ms (0: nothing pending).
    pub pending_effective_at_ms: u64,
}

impl PolicyStatus {
    /// The status of `state` (`None`: no policy installed).
    pub fn of(state: Option<&PolicyState>) -> Self {
        let Some(s) = state else {
            return Self::default();
        };
        let pending = s.pending.as_ref();
        Self {
            version: s.current.doc.version,
            hash: s.current.doc.hash_hex(),
            frozen: s.current.doc.frozen,
            pending_version: pending.map_or(0, |p| p.policy.doc.version),
            pending_hash: pending.map_or(String::new(), |p| p.policy.doc.hash_hex()),
            pending_effective_at_ms: pending.map_or(0, |p| p.effective_at_ms),
        }
    }
}
