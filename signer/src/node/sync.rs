//! What this signer tells any coordinator of the cluster that asks: the policy version after
//! the asker's that it accepted (as the admins signed it), the vetoes of later versions, and
//! its public key packages. With several coordinators, each learns through the signers what
//! another carried; the signer trusts none of them, and a coordinator takes nothing on one
//! signer's word (coordinator/src/state/sync.rs).

use quorate_core::{
    link::{Answer, KeyPackageInfo, PolicyVeto, SyncAnswer, SyncRequest},
    policy::{PolicyStatus, SignedPolicy},
    refusal::{Refusal, Rule},
};
use quorate_wire::convert::{link::decode_veto, link::encode_veto, policy};
use tracing::warn;

use super::{groups::Held, lock, storage, Node};

/// Metadata key prefix of the policy versions this signer accepted, by version.
const META_POLICY_HISTORY: &str = "policy/history/";
/// Metadata key prefix of the vetoes it accepted, by version and vetoed hash.
const META_POLICY_VETO: &str = "policy/veto/";
/// Most vetoes in one answer.
pub const MAX_SYNC_VETOES: usize = 16;

/// The metadata key under which version `version` is kept (zero-padded: key order is
/// version order).
pub(super) fn history_key(version: u64) -> String {
    format!("{META_POLICY_HISTORY}{version:020}")
}

/// The metadata key under which a veto of `hash` (a document of `version`) is kept.
pub(super) fn veto_key(version: u64, hash: &[u8; 32]) -> String {
    format!("{META_POLICY_VETO}{version:020}/{}", hex::encode(hash))
}

/// How a version is kept: as the admins signed it, in its wire form (the store is an edge
/// too: the bytes are those of the protobuf message, as before the protocol was typed).
pub(super) fn history_value(p: &SignedPolicy) -> Vec<u8> {
    policy::encode_signed(p)
}

/// How a veto is kept: its wire form.
pub(super) fn veto_value(v: &PolicyVeto) -> Vec<u8> {
    encode_veto(v)
}

impl Node {
    /// The version after the asker's (unless it holds that one pending), the vetoes of later
    /// versions, and the key packages held. One sync at a time: each answer may carry a whole
    /// policy document.
    pub(super) fn sync(&self, r: &SyncRequest) -> Result<Answer, Refusal> {
        // Waits its turn (off the reactor): a coordinator sending many at once holds at most
        // one document in memory here, and nothing is refused or logged for it.
        let _one = lock(&self.sync_slot);
        let after = r.policy_version.saturating_add(1);
        let policy = PolicyStatus::of(lock(&self.policy).state.as_ref());
        let updates = self
            .store
            .scan_meta(META_POLICY_HISTORY, &history_key(after), 1)
            .map_err(storage)?
            .into_iter()
            .filter_map(|(k, v)| match policy::decode_signed(&v) {
                Ok(p) => Some(p),
                Err(e) => {
                    warn!(signer = %self.name, key = %k, error = %e, "stored policy version unreadable");
                    None
                }
            })
            // The asker holds it pending already: nothing to carry.
            .filter(|p| r.pending_hash.is_empty() || p.doc.hash_hex() != r.pending_hash)
            .collect();
        let vetoes = self
            .store
            .scan_meta(
                META_POLICY_VETO,
                &format!("{META_POLICY_VETO}{after:020}"),
                MAX_SYNC_VETOES,
            )
            .map_err(storage)?
            .into_iter()
            .filter_map(|(_, v)| decode_veto(&v).ok())
            .collect();
        let mut key_packages = Vec::new();
        if let Some(p) = self.key_package_info::<super::Secp>()? {
            key_packages.push(p);
        }
        if let Some(p) = self.key_package_info::<super::Ed>()? {
            key_packages.push(p);
        }
        Ok(Answer::Sync(SyncAnswer {
            policy: Some(policy),
            updates,
            vetoes,
            key_packages,
        }))
    }

    fn key_package_info<C: Held>(&self) -> Result<Option<KeyPackageInfo>, Refusal> {
        // A refresh's switch replaces the package while a sync reads it: a coordinator takes a
        // package only once t signers report the same one at the same epoch.
        let group = C::group(self);
        if group.key().is_err() {
            return Ok(None);
        }
        let epoch = group.epoch.load(std::sync::atomic::Ordering::SeqCst);
        let raw = self
            .store
            .get_meta(&C::meta(super::META_PUBLIC_KEY_PACKAGE))
            .map_err(storage)?
            .ok_or_else(|| {
                Refusal::permanent(
                    Rule::SignerStorage,
                    format!("a {} share without its public key package", C::SCHEME),
                )
            })?;
        Ok(Some(KeyPackageInfo {
            scheme: C::SCHEME,
            key_epoch: epoch,
            public_key_package: raw,
        }))
    }
}
