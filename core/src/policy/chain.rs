//! The signed policy chain as an admin's desk verifies it (S1 for people).
//!
//! An admin's tool never trusts a baseline, a diff or a "current" version that the coordinator
//! hands it. It pins the hash of the genesis policy in its own configuration, fetches the signed
//! versions, and checks every link itself: each version's hash is recomputed from its document
//! bytes, its `prev_hash` must be the hash of the version before, and it must carry enough
//! distinct valid signatures by the admins of the version before (the same rule every signer
//! applies, [`check_successor`]). Only documents that passed are ever diffed or shown.
//!
//! A desk may keep a checkpoint: the newest version it verified that already has a verified
//! successor. Such a version was in force once and can no longer be vetoed or superseded, so the
//! next run verifies only what came after it instead of megabytes of old whitelists.

use super::{
    eval::distinct_valid,
    governance::{check_successor, SignedPolicy, POLICY_APPROVAL_DOMAIN},
    PolicyDoc,
};

/// Why a chain of policy versions was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The first version is not the pinned genesis.
    #[error(
        "the genesis policy the coordinator sent hashes to {got}, not to the pinned genesis {pinned}"
    )]
    GenesisMismatch {
        /// Hash recomputed from the document sent.
        got: String,
        /// Hash pinned in the admin's configuration.
        pinned: String,
    },
    /// The genesis document is invalid or not signed by its own admin quorum.
    #[error("the genesis policy does not verify: {0}")]
    Genesis(String),
    /// A version does not follow the verified one before it.
    #[error("policy version {version} does not verify against version {prev}: {reason}")]
    Link {
        /// The version refused.
        version: u64,
        /// The verified version it claims to follow.
        prev: u64,
        /// The rule that refused it.
        reason: String,
    },
}

/// Policy versions verified link by link, from a pinned genesis or this desk's checkpoint.
#[derive(Debug, Clone)]
pub struct VerifiedChain {
    /// `versions[0]` is the starting point; each later one verified against the one before.
    versions: Vec<SignedPolicy>,
}

impl VerifiedChain {
    /// Starts from version 1, which must hash to `pin` and carry its own admin quorum.
    pub fn from_genesis(pin: &[u8; 32], genesis: SignedPolicy) -> Result<Self, ChainError> {
        let doc = &genesis.doc;
        let got = doc.hash();
        if got != *pin {
            return Err(ChainError::GenesisMismatch {
                got: hex::encode(got),
                pinned: hex::encode(pin),
            });
        }
        doc.validate()
            .map_err(|e| ChainError::Genesis(e.to_string()))?;
        if doc.version != 1 {
            return Err(ChainError::Genesis(format!(
                "it is version {}, not 1",
                doc.version
            )));
        }
        let have = distinct_valid(
            &doc.admin_keys(),
            POLICY_APPROVAL_DOMAIN,
            &[&got],
            &genesis.signatures,
        );
        if have < usize::from(doc.admin_quorum) {
            return Err(ChainError::Genesis(format!(
                "{have} valid distinct admin signatures; its quorum is {}",
                doc.admin_quorum
            )));
        }
        Ok(Self {
            versions: vec![genesis],
        })
    }

    /// Starts from a version this desk verified on an earlier run (its own checkpoint).
    pub fn from_checkpoint(checkpoint: SignedPolicy) -> Self {
        Self {
            versions: vec![checkpoint],
        }
    }

    /// Verifies `next` against the newest verified version and appends it.
    pub fn extend(&mut self, next: SignedPolicy) -> Result<(), ChainError> {
        let head = self.head();
        check_successor(&head.doc, &next).map_err(|r| ChainError::Link {
            version: next.doc.version,
            prev: head.doc.version,
            reason: r.to_string(),
        })?;
        self.versions.push(next);
        Ok(())
    }

    /// The newest verified version.
    pub fn head(&self) -> &SignedPolicy {
        // Never empty: every constructor puts the starting version in.
        &self.versions[self.versions.len() - 1]
    }

    /// The verified version whose document hashes to `hash`.
    pub fn by_hash(&self, hash: &[u8; 32]) -> Option<&PolicyDoc> {
        self.versions
            .iter()
            .map(|v| &v.doc)
            .find(|d| d.hash() == *hash)
    }

    /// The verified version whose document hashes to the hex `hash`.
    pub fn by_hash_hex(&self, hash: &str) -> Option<&PolicyDoc> {
        let h: [u8; 32] = hex::decode(hash).ok()?.try_into().ok()?;
        self.by_hash(&h)
    }

    /// The newest version with a verified successor (or the start): safe to keep as a
    /// checkpoint, because a version something was built on can no longer be vetoed.
    pub fn checkpoint(&self) -> &SignedPolicy {
        &self.versions[self.versions.len().saturating_sub(2)]
    }

    /// Version of the first verified entry (1 from genesis, else the checkpoint's).
    pub fn start_version(&self) -> u64 {
        self.versions[0].doc.version
    }
}
