//! Refusals: a decision not to act, naming the stable rule that made it. A refusal is either
//! permanent (the same request will always be refused) or temporary (retry later).

use std::fmt;

/// Stable rule tags. They appear in errors, logs and docs; never rename one.
pub mod rule {
    /// The vault administration message asked for is not in the policy in force.
    pub const VAULT_ACTION_UNKNOWN: &str = "vault-action-unknown";
    /// A Solana intent's terms are missing or outside the policy (no nonce or blockhash, a
    /// nonce account not in the pool, a blockhash where only nonces are allowed, a compute
    /// budget over the cap, an amount over u64, a destination off the curve).
    pub const SOLANA_TERMS: &str = "solana-terms";
    /// A request to void a Solana durable nonce carries no valid signature of an admin of the
    /// policy in force.
    pub const SOLANA_VOID_UNAPPROVED: &str = "solana-void-unapproved";
    /// The request asks for a signature under another key scheme than the chain uses.
    pub const SCHEME_MISMATCH: &str = "scheme-mismatch";
    /// The intent bytes do not decode or validate.
    pub const INTENT_MALFORMED: &str = "intent-malformed";
    /// The intent has expired.
    pub const INTENT_EXPIRED: &str = "intent-expired";
    /// The intent's creation time is too far in the future.
    pub const INTENT_NOT_YET_VALID: &str = "intent-not-yet-valid";
    /// No backend key in the manifest made this signature.
    pub const BACKEND_SIGNATURE: &str = "backend-signature-invalid";
    /// The signing package's message is not what this intent requires.
    pub const MESSAGE_MISMATCH: &str = "message-mismatch";
    /// The signing package does not decode.
    pub const PACKAGE_MALFORMED: &str = "package-malformed";
    /// The signing package omits this signer's commitment.
    pub const COMMITMENT_MISSING: &str = "commitment-missing";
    /// The signing package carries a different commitment for this signer.
    pub const COMMITMENT_MISMATCH: &str = "commitment-mismatch";
    /// No live nonce for this session: unknown, expired or already used.
    pub const NONCE_UNKNOWN: &str = "nonce-unknown";
    /// Too many outstanding nonces.
    pub const NONCE_LIMIT: &str = "nonce-limit";
    /// The withdrawal id is already bound to a different intent.
    pub const ID_CONFLICT: &str = "withdrawal-id-conflict";
    /// This signer holds no key share yet.
    pub const NO_KEY: &str = "no-key-share";
    /// A signing request names a key epoch other than the one this signer's share is of (a
    /// refresh is switching over; temporary).
    pub const KEY_EPOCH_MISMATCH: &str = "key-epoch-mismatch";
    /// A signing package includes a signer the policy in force retired.
    pub const SIGNER_RETIRED: &str = "signer-retired";
    /// Policy: this node has no policy installed yet.
    pub const POLICY_MISSING: &str = "policy-missing";
    /// Policy: withdrawals are frozen.
    pub const POLICY_FROZEN: &str = "policy-frozen";
    /// Policy: the chain/asset is not in the registry.
    pub const POLICY_ASSET_UNKNOWN: &str = "policy-asset-unknown";
    /// Policy: the asset is in the registry but disabled.
    pub const POLICY_ASSET_DISABLED: &str = "policy-asset-disabled";
    /// Policy: above the per-withdrawal maximum.
    pub const POLICY_AMOUNT_MAX: &str = "policy-amount-max";
    /// Policy: the destination is not on the whitelist.
    pub const POLICY_WHITELIST_DESTINATION: &str = "policy-whitelist-destination";
    /// Policy: the destination is whitelisted from a later time.
    pub const POLICY_WHITELIST_NOT_YET_ACTIVE: &str = "policy-whitelist-not-yet-active";
    /// Policy: above the approval threshold without enough admin approvals.
    pub const POLICY_APPROVAL_REQUIRED: &str = "policy-approval-required";
    /// Policy: a velocity limit; the full tag is
    /// `policy-velocity-<asset|destination>-<amount|count>-<window>`.
    pub const POLICY_VELOCITY_PREFIX: &str = "policy-velocity-";
    /// Policy update: the document breaks a rule of its own.
    pub const POLICY_UPDATE_INVALID: &str = "policy-update-invalid";
    /// Policy update: the version is stale or skips one.
    pub const POLICY_UPDATE_VERSION: &str = "policy-update-version";
    /// Policy update: `prev_hash` is not the hash of the version in force.
    pub const POLICY_UPDATE_CHAIN: &str = "policy-update-chain";
    /// Policy update: too few distinct valid admin signatures.
    pub const POLICY_UPDATE_SIGNATURES: &str = "policy-update-signatures";
    /// Policy update: the genesis policy does not match the pinned admins.
    pub const POLICY_UPDATE_GENESIS: &str = "policy-update-genesis";
    /// Policy update: the version was vetoed.
    pub const POLICY_UPDATE_VETOED: &str = "policy-update-vetoed";
    /// Policy veto: not signed by an admin in force.
    pub const POLICY_VETO_INVALID: &str = "policy-veto-invalid";
    /// Ledger notice: the group signature does not verify.
    pub const LEDGER_NOTICE_INVALID: &str = "ledger-notice-invalid";
    /// Fewer than t signers could sign.
    pub const NOT_ENOUGH_SIGNERS: &str = "not-enough-signers";
}

/// A refusal with its rule tag and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable rule tag, see [`rule`].
    pub rule: String,
    /// Human explanation.
    pub reason: String,
    /// True if retrying the same request can never succeed.
    pub permanent: bool,
    /// For a temporary refusal whose cause ends at a known time (a velocity window freeing
    /// up): that time, Unix milliseconds.
    pub retry_at_ms: Option<u64>,
}

impl Refusal {
    /// A permanent refusal.
    pub fn permanent(rule: &str, reason: impl Into<String>) -> Self {
        Self {
            rule: rule.to_string(),
            reason: reason.into(),
            permanent: true,
            retry_at_ms: None,
        }
    }

    /// The refusal of withdrawal id `id` for an intent other than the one it is bound to (S6).
    pub fn id_conflict(id: &str) -> Self {
        Self::permanent(
            rule::ID_CONFLICT,
            format!("withdrawal id `{id}` is already bound to a different intent"),
        )
    }

    /// A temporary refusal.
    pub fn temporary(rule: &str, reason: impl Into<String>) -> Self {
        Self {
            rule: rule.to_string(),
            reason: reason.into(),
            permanent: false,
            retry_at_ms: None,
        }
    }

    /// The same refusal, retryable from `at_ms` (Unix milliseconds) on.
    pub fn retry_at(mut self, at_ms: Option<u64>) -> Self {
        self.retry_at_ms = at_ms;
        self
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.reason)
    }
}

impl std::error::Error for Refusal {}
