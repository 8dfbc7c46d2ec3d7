//! Refusals: a decision not to act, naming the stable rule that made it. A refusal is either
//! permanent (the same request will always be refused) or temporary (retry later).

use std::{borrow::Cow, fmt};

/// Declares [`Rule`]'s unit variants from one table (`Variant => "tag"`, each with its one-line
/// documentation), and from the same table [`Rule::ALL`] and the tag of each variant in both
/// directions, so the three cannot drift apart.
macro_rules! rules {
    ($($(#[$doc:meta])* $variant:ident => $tag:literal,)*) => {
        /// A stable rule tag: the reason a node refused, as callers see it (gRPC messages and
        /// trailers, `google.rpc.ErrorInfo`, audit logs, metrics, docs). A tag never changes
        /// spelling once released; add a variant rather than rename one.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Rule {
            $($(#[$doc])* $variant,)*
            /// Policy: a velocity limit would be exceeded. The tag is
            /// `policy-velocity-<scope>-<amount|count>-<window>`, e.g.
            /// `policy-velocity-asset-amount-24h`.
            Velocity {
                /// What is counted together.
                scope: VelocityScope,
                /// What the limit bounds.
                measure: VelocityMeasure,
                /// The window as it appears in the tag (`30m`, `1h`, `24h`, `7d`, ...).
                window: String,
            },
            /// A tag received over the wire that this build does not know (a newer peer's),
            /// kept verbatim so it is passed on unchanged. Only [`Rule::parse`] makes one:
            /// nothing in this code base constructs it otherwise.
            Unrecognised(String),
        }

        impl Rule {
            /// Every unit variant (all but [`Rule::Velocity`] and [`Rule::Unrecognised`]).
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            /// The tag, exactly as it goes over the wire. Borrowed except for a velocity
            /// rule, whose tag is put together from its parts.
            pub fn as_str(&self) -> Cow<'_, str> {
                match self {
                    $(Rule::$variant => Cow::Borrowed($tag),)*
                    Rule::Velocity {
                        scope,
                        measure,
                        window,
                    } => Cow::Owned(format!(
                        "{}{}-{}-{window}",
                        Self::VELOCITY_PREFIX,
                        scope.as_str(),
                        measure.as_str()
                    )),
                    Rule::Unrecognised(tag) => Cow::Borrowed(tag),
                }
            }

            /// The unit variant of `tag`.
            fn unit_of(tag: &str) -> Option<Rule> {
                match tag {
                    $($tag => Some(Rule::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

rules! {
    /// The vault administration message asked for is not in the policy in force.
    VaultActionUnknown => "vault-action-unknown",
    /// A Solana intent's terms are missing or outside the policy (nonce, blockhash, budget, ...).
    SolanaTerms => "solana-terms",
    /// A void of a Solana durable nonce carries no valid signature of an admin in force.
    SolanaVoidUnapproved => "solana-void-unapproved",
    /// The request asks for a signature under another key scheme than the chain uses.
    SchemeMismatch => "scheme-mismatch",
    /// The intent bytes do not decode or validate.
    IntentMalformed => "intent-malformed",
    /// The intent has expired.
    IntentExpired => "intent-expired",
    /// The intent's creation time is too far in the future.
    IntentNotYetValid => "intent-not-yet-valid",
    /// No backend key in the manifest made this signature.
    BackendSignatureInvalid => "backend-signature-invalid",
    /// The signing package's message is not what this intent requires.
    MessageMismatch => "message-mismatch",
    /// The signing package does not decode.
    PackageMalformed => "package-malformed",
    /// The signing package omits this signer's commitment.
    CommitmentMissing => "commitment-missing",
    /// The signing package carries a different commitment for this signer.
    CommitmentMismatch => "commitment-mismatch",
    /// No live nonce for this session: unknown, expired or already used.
    NonceUnknown => "nonce-unknown",
    /// Too many outstanding nonces.
    NonceLimit => "nonce-limit",
    /// The withdrawal id is already bound to a different intent.
    WithdrawalIdConflict => "withdrawal-id-conflict",
    /// This signer holds no key share yet.
    NoKeyShare => "no-key-share",
    /// A signing request names a key epoch other than that of this signer's share (temporary).
    KeyEpochMismatch => "key-epoch-mismatch",
    /// A signing package includes a signer the policy in force retired.
    SignerRetired => "signer-retired",
    /// Policy: this node has no policy installed yet.
    PolicyMissing => "policy-missing",
    /// Policy: withdrawals are frozen.
    PolicyFrozen => "policy-frozen",
    /// Policy: the chain/asset is not in the registry.
    PolicyAssetUnknown => "policy-asset-unknown",
    /// Policy: the asset is in the registry but disabled.
    PolicyAssetDisabled => "policy-asset-disabled",
    /// Policy: above the per-withdrawal maximum.
    PolicyAmountMax => "policy-amount-max",
    /// Policy: the destination is not on the whitelist.
    PolicyWhitelistDestination => "policy-whitelist-destination",
    /// Policy: the destination is whitelisted from a later time.
    PolicyWhitelistNotYetActive => "policy-whitelist-not-yet-active",
    /// Policy: above the approval threshold without enough admin approvals.
    PolicyApprovalRequired => "policy-approval-required",
    /// Policy update: the document breaks a rule of its own.
    PolicyUpdateInvalid => "policy-update-invalid",
    /// Policy update: the version is stale or skips one.
    PolicyUpdateVersion => "policy-update-version",
    /// Policy update: `prev_hash` is not the hash of the version in force.
    PolicyUpdateChain => "policy-update-chain",
    /// Policy update: too few distinct valid admin signatures.
    PolicyUpdateSignatures => "policy-update-signatures",
    /// Policy update: the genesis policy does not match the pinned admins.
    PolicyUpdateGenesis => "policy-update-genesis",
    /// Policy update: the version was vetoed.
    PolicyUpdateVetoed => "policy-update-vetoed",
    /// Policy veto: not signed by an admin in force.
    PolicyVetoInvalid => "policy-veto-invalid",
    /// Ledger notice: the group signature does not verify.
    LedgerNoticeInvalid => "ledger-notice-invalid",
    /// Fewer than t signers could sign.
    NotEnoughSigners => "not-enough-signers",
    /// Signer: a DKG step failed or was out of order.
    DkgAborted => "dkg-aborted",
    /// Signer or coordinator: the key group already has a key (a share, or the group key).
    DkgKeyExists => "dkg-key-exists",
    /// Signer: a finished DKG awaits its confirmation.
    DkgPendingConfirmation => "dkg-pending-confirmation",
    /// Signer or coordinator: the coordinator and the signer pin different manifests.
    ManifestMismatch => "manifest-mismatch",
    /// Signer: a link request this signer cannot take as it is (not understood).
    BadRequest => "bad-request",
    /// Signer: the signer's store failed; nothing was signed.
    SignerStorage => "signer-storage",
    /// Signer or coordinator: a share repair failed or was out of order; nothing kept.
    RepairAborted => "repair-aborted",
    /// Signer or coordinator: the repair's target already holds a share of that group.
    ShareExists => "share-exists",
    /// Signer: a refreshed share waits for activation, or an activation does not match it.
    RefreshPending => "refresh-pending",
    /// Signer: a refresh's participants are not exactly the holders of the key.
    RefreshParticipants => "refresh-participants",
    /// Coordinator: it restarted while the withdrawal was being signed.
    CoordinatorRestarted => "coordinator-restarted",
    /// Coordinator: no group key yet.
    NoGroupKey => "no-group-key",
    /// Coordinator: an invariant of its own failed; nothing was released.
    Internal => "internal",
    /// Coordinator: a request the admin RPC cannot act on (unknown signer, bad helper list).
    RequestInvalid => "request-invalid",
    /// Coordinator: a DKG or repair is already running.
    DkgRunning => "dkg-running",
    /// Coordinator: a DKG needs every signer of the manifest connected (temporary).
    DkgSignersMissing => "dkg-signers-missing",
    /// Coordinator: the repair's target or too few helpers are connected.
    RepairSignersMissing => "repair-signers-missing",
    /// Coordinator: a refresh needs every holder of the key connected.
    RefreshSignersMissing => "refresh-signers-missing",
    /// Coordinator: a refresh failed; every signer keeps its old share.
    RefreshAborted => "refresh-aborted",
    /// Coordinator: a field of a submitted intent is malformed (the message says which).
    IntentInvalid => "intent-invalid",
    /// Coordinator: its store failed; nothing changed (temporary).
    Storage => "storage",
    /// Coordinator: the client certificate's role may not use this service.
    TransportRole => "transport-role",
    /// Coordinator: a signer certificate from the cluster CA that is not in the manifest.
    SignerUnknown => "signer-unknown",
    /// Coordinator: a signer link whose first message is not a hello.
    SignerHello => "signer-hello",
    /// Coordinator: a signer's hello names another signer than its certificate.
    SignerIdentity => "signer-identity",
    /// Any service: a request message that is not valid protobuf for its method.
    RequestMalformed => "request-malformed",
}

/// What a velocity limit counts together: the `<scope>` of a velocity tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VelocityScope {
    /// Everything of one asset, all destinations together.
    Asset,
    /// One asset to one destination.
    Destination,
    /// This signer's own releases (its per-signer budget).
    Signer,
}

impl VelocityScope {
    /// Every scope.
    pub const ALL: [VelocityScope; 3] = [Self::Asset, Self::Destination, Self::Signer];

    /// The word in the tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asset => "asset",
            Self::Destination => "destination",
            Self::Signer => "signer",
        }
    }
}

/// What a velocity limit bounds: the `<amount|count>` of a velocity tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VelocityMeasure {
    /// The sum of amounts.
    Amount,
    /// The number of withdrawals.
    Count,
}

impl VelocityMeasure {
    /// Every measure.
    pub const ALL: [VelocityMeasure; 2] = [Self::Amount, Self::Count];

    /// The word in the tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Amount => "amount",
            Self::Count => "count",
        }
    }
}

impl Rule {
    /// The prefix of every velocity tag (and of no other).
    pub const VELOCITY_PREFIX: &'static str = "policy-velocity-";

    /// The velocity rule of `scope`, `measure` and `window` (the window's text, e.g. `24h`).
    pub fn velocity(
        scope: VelocityScope,
        measure: VelocityMeasure,
        window: impl Into<String>,
    ) -> Self {
        Rule::Velocity {
            scope,
            measure,
            window: window.into(),
        }
    }

    /// The rule of a tag received over the wire (or read back from storage): a known tag gives
    /// its variant, a velocity tag its parts, anything else [`Rule::Unrecognised`] with the
    /// tag verbatim. `Rule::parse(&r.as_str()) == r` for every rule `r`.
    pub fn parse(tag: &str) -> Rule {
        if let Some(unit) = Self::unit_of(tag) {
            return unit;
        }
        Self::parse_velocity(tag).unwrap_or_else(|| Rule::Unrecognised(tag.to_string()))
    }

    /// `policy-velocity-<scope>-<measure>-<window>` with a known scope and measure and a
    /// non-empty window.
    fn parse_velocity(tag: &str) -> Option<Rule> {
        let rest = tag.strip_prefix(Self::VELOCITY_PREFIX)?;
        let (scope, rest) = rest.split_once('-')?;
        let (measure, window) = rest.split_once('-')?;
        let scope = VelocityScope::ALL
            .into_iter()
            .find(|s| s.as_str() == scope)?;
        let measure = VelocityMeasure::ALL
            .into_iter()
            .find(|m| m.as_str() == measure)?;
        (!window.is_empty()).then(|| Rule::velocity(scope, measure, window))
    }

    /// True for a policy, governance or velocity rule (its tag starts with `policy-`), known to
    /// this build or not.
    pub fn is_policy(&self) -> bool {
        self.as_str().starts_with("policy-")
    }

    /// True for a velocity rule (its tag starts with `policy-velocity-`), known to this build
    /// or not.
    pub fn is_velocity(&self) -> bool {
        self.velocity_window().is_some()
    }

    /// The window of a velocity rule (`24h` of `policy-velocity-asset-amount-24h`): the last
    /// `-`-separated part of a tag that starts with `policy-velocity-`.
    pub fn velocity_window(&self) -> Option<&str> {
        match self {
            Rule::Velocity { window, .. } => Some(window),
            Rule::Unrecognised(tag) => tag
                .strip_prefix(Self::VELOCITY_PREFIX)
                .and_then(|rest| rest.rsplit('-').next()),
            _ => None,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// A refusal with its rule tag and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The rule that refused.
    pub rule: Rule,
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
    pub fn permanent(rule: Rule, reason: impl Into<String>) -> Self {
        Self {
            rule,
            reason: reason.into(),
            permanent: true,
            retry_at_ms: None,
        }
    }

    /// The refusal of withdrawal id `id` for an intent other than the one it is bound to (S6).
    pub fn id_conflict(id: &str) -> Self {
        Self::permanent(
            Rule::WithdrawalIdConflict,
            format!("withdrawal id `{id}` is already bound to a different intent"),
        )
    }

    /// A temporary refusal.
    pub fn temporary(rule: Rule, reason: impl Into<String>) -> Self {
        Self {
            rule,
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_unit_tag_round_trips() {
        for rule in Rule::ALL {
            assert_eq!(&Rule::parse(&rule.as_str()), rule, "{rule:?}");
            assert_eq!(rule.to_string(), rule.as_str(), "{rule:?}");
        }
    }

    #[test]
    fn tags_are_unique_and_well_formed() {
        let tags: HashSet<String> = Rule::ALL.iter().map(Rule::to_string).collect();
        assert_eq!(tags.len(), Rule::ALL.len(), "a tag is listed twice");
        for tag in &tags {
            assert!(
                !tag.is_empty()
                    && tag
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{tag}"
            );
            assert!(!tag.starts_with(Rule::VELOCITY_PREFIX), "{tag}");
        }
    }

    #[test]
    fn well_known_tags_keep_their_spelling() {
        for (rule, tag) in [
            (Rule::PolicyFrozen, "policy-frozen"),
            (Rule::WithdrawalIdConflict, "withdrawal-id-conflict"),
            (Rule::NotEnoughSigners, "not-enough-signers"),
            (Rule::SignerStorage, "signer-storage"),
            (Rule::Storage, "storage"),
            (Rule::NonceUnknown, "nonce-unknown"),
        ] {
            assert_eq!(rule.as_str(), tag);
            assert_eq!(Rule::parse(tag), rule);
        }
    }

    #[test]
    fn velocity_tags_round_trip() {
        let r = Rule::velocity(VelocityScope::Asset, VelocityMeasure::Amount, "24h");
        assert_eq!(r.as_str(), "policy-velocity-asset-amount-24h");
        assert_eq!(Rule::parse("policy-velocity-asset-amount-24h"), r);
        assert_eq!(r.velocity_window(), Some("24h"));
        assert!(r.is_velocity() && r.is_policy());
        for scope in VelocityScope::ALL {
            for measure in VelocityMeasure::ALL {
                for window in ["1m", "90m", "1h", "24h", "7d"] {
                    let r = Rule::velocity(scope, measure, window);
                    let tag = format!(
                        "policy-velocity-{}-{}-{window}",
                        scope.as_str(),
                        measure.as_str()
                    );
                    assert_eq!(r.to_string(), tag);
                    assert_eq!(Rule::parse(&tag), r);
                }
            }
        }
        assert_eq!(
            Rule::parse("policy-velocity-signer-count-7d"),
            Rule::Velocity {
                scope: VelocityScope::Signer,
                measure: VelocityMeasure::Count,
                window: "7d".into()
            }
        );
    }

    #[test]
    fn unknown_tags_pass_through_verbatim() {
        for tag in [
            "a-rule-from-a-newer-peer",
            "",
            "Nonce-Unknown",
            "policy-velocity-",
            "policy-velocity-asset-amount-",
            "policy-velocity-region-amount-24h",
            "policy-velocity-asset-volume-24h",
        ] {
            let r = Rule::parse(tag);
            assert_eq!(r, Rule::Unrecognised(tag.to_string()));
            assert_eq!(r.as_str(), tag);
            assert_eq!(r.to_string(), tag);
        }
        // A newer peer's policy and velocity tags are still recognised as such.
        let newer = Rule::parse("policy-velocity-region-amount-24h");
        assert!(newer.is_policy() && newer.is_velocity());
        assert_eq!(newer.velocity_window(), Some("24h"));
        assert!(Rule::parse("policy-something-new").is_policy());
        assert!(!Rule::parse("policy-something-new").is_velocity());
    }

    #[test]
    fn policy_rules_are_the_policy_tags() {
        for rule in Rule::ALL {
            assert_eq!(rule.is_policy(), rule.as_str().starts_with("policy-"));
            assert!(!rule.is_velocity() && rule.velocity_window().is_none());
        }
        assert!(Rule::PolicyFrozen.is_policy() && !Rule::NonceUnknown.is_policy());
    }

    #[test]
    fn a_refusal_displays_its_tag_and_reason() {
        let r = Refusal::temporary(Rule::NonceLimit, "too many");
        assert_eq!(r.to_string(), "nonce-limit: too many");
        assert!(!r.permanent);
        assert!(Refusal::id_conflict("w").permanent);
        assert_eq!(Refusal::id_conflict("w").rule, Rule::WithdrawalIdConflict);
    }
}
