//! The signer link's protocol, typed: what a coordinator asks a signer ([`Request`]), what the
//! signer answers ([`Answer`]) and what it says first on every link ([`Hello`]).
//!
//! On the wire these are the `CoordinatorMessage` and `SignerMessage` of
//! `proto/quorate/signer/v1/signer.proto`, one variant per case of their `body`, every field
//! kept. `quorate-wire` (`convert::link`) converts between the two at the edge; the signer's
//! handlers and the coordinator's callers see only these types. A newcomer reading a handler
//! can therefore trust what the types say:
//!
//! - a `[u8; 16]` session id is 16 bytes, a [`Scheme`] is a key group that exists, a `u16`
//!   identifier fits a FROST identifier, an [`AdminSignature`] carries a well-formed key, a
//!   [`SignedPolicy`] a canonical document: a message where any of these does not hold never
//!   reaches a handler, and is refused at the edge with [`Malformed::refusal`], the refusal
//!   the handler itself gave such input before the protocol was typed;
//! - opaque FROST blobs (round-1 packages, commitments, signing packages, shares, public key
//!   packages, sealed ciphertexts) stay `Vec<u8>`: only the handler knows the ciphersuite to
//!   decode them with;
//! - a few byte strings stay `Vec<u8>` although they have a length, because the handler
//!   judges them after its own state and a different length is a different refusal there: the
//!   session id of a DKG round (a signer holding a share refuses round 1 as `dkg-key-exists`
//!   before looking at it; later rounds refuse any id but their round 1's as `dkg-aborted`),
//!   the session of a refresh activation (compared with the stored refresh) and the manifest
//!   hashes (`manifest-mismatch`).
//!
//! Nothing here does I/O; this module only says what the messages mean.

use crate::{
    audit::{Head, Record},
    dkg::{SignedEcho, SignedResult, SignedRound1},
    message::Scheme,
    policy::{AdminSignature, PolicyStatus, SignedPolicy, StatusReceipt},
    refusal::{Refusal, Rule},
    repair::{Contribution, Offer},
    seal::Sealed,
};

/// A coordinator's request to a signer: one variant per case of `CoordinatorMessage.body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// DKG (or share refresh) round 1: make and sign a round-1 package.
    DkgRound1(DkgRound1Request),
    /// DKG round 2: check every round-1 package, seal a round-2 package to each participant.
    DkgRound2(DkgRound2Request),
    /// DKG round 3: open the sealed packages, check the echoes, derive the share.
    DkgRound3(DkgRound3Request),
    /// DKG confirmation: keep the share once every participant signed the same result.
    DkgConfirm(DkgConfirmRequest),
    /// A fresh nonce for one signing session; answered with its commitments.
    Commit(CommitRequest),
    /// Fresh nonces for a batch of sessions, for one-round signing.
    Presign(PresignRequest),
    /// A signature share, for a withdrawal, a vault action or a Solana nonce void.
    Sign(Box<SignRequest>),
    /// Install or schedule a policy version, as the admins signed it.
    PolicyUpdate(SignedPolicy),
    /// Veto a pending policy version.
    PolicyVeto(PolicyVeto),
    /// A withdrawal the group signed without this signer, for its velocity ledger.
    LedgerNotice(LedgerNotice),
    /// Several such withdrawals, 1..=[`MAX_NOTICES`], verified together; each is judged and
    /// counted as a [`Request::LedgerNotice`] would be.
    LedgerNotices(Vec<LedgerNotice>),
    /// One page of this signer's audit log with its signed head.
    AuditExport(AuditExportRequest),
    /// A signed account of this signer's policy over the asker's challenge.
    StatusChallenge {
        /// 16..=64 bytes chosen by the admin's tool (the handler checks the length).
        challenge: Vec<u8>,
    },
    /// Share repair, round 1 to a helper: its signed offer and sealed deltas.
    RepairOffer(RepairOfferRequest),
    /// Share repair, round 2 to a helper: its sum of deltas, sealed to the target.
    RepairContribute(RepairContributeRequest),
    /// Share repair, to the target: rebuild the share from the contributions.
    RepairFinish(RepairFinishRequest),
    /// The last step of a share refresh: switch to the refreshed share.
    RefreshActivate(RefreshActivate),
    /// A new signer was enrolled: add its verifying share to the public key package.
    AddHolder(AddHolder),
    /// What this signer knows that the asking coordinator may not.
    Sync(SyncRequest),
}

/// Which request a message is: its name in audit records, metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// [`Request::DkgRound1`].
    DkgRound1,
    /// [`Request::DkgRound2`].
    DkgRound2,
    /// [`Request::DkgRound3`].
    DkgRound3,
    /// [`Request::DkgConfirm`].
    DkgConfirm,
    /// [`Request::Commit`].
    Commit,
    /// [`Request::Presign`].
    Presign,
    /// [`Request::Sign`].
    Sign,
    /// [`Request::PolicyUpdate`].
    PolicyUpdate,
    /// [`Request::PolicyVeto`].
    PolicyVeto,
    /// [`Request::LedgerNotice`].
    LedgerNotice,
    /// [`Request::LedgerNotices`].
    LedgerNotices,
    /// [`Request::AuditExport`].
    AuditExport,
    /// [`Request::StatusChallenge`].
    StatusChallenge,
    /// [`Request::RepairOffer`].
    RepairOffer,
    /// [`Request::RepairContribute`].
    RepairContribute,
    /// [`Request::RepairFinish`].
    RepairFinish,
    /// [`Request::RefreshActivate`].
    RefreshActivate,
    /// [`Request::AddHolder`].
    AddHolder,
    /// [`Request::Sync`].
    Sync,
}

impl RequestKind {
    /// The request's name, as audit records and metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::DkgRound1 => "dkg-round1",
            RequestKind::DkgRound2 => "dkg-round2",
            RequestKind::DkgRound3 => "dkg-round3",
            RequestKind::DkgConfirm => "dkg-confirm",
            RequestKind::Commit => "commit",
            RequestKind::Presign => "presign",
            RequestKind::Sign => "sign",
            RequestKind::PolicyUpdate => "policy-update",
            RequestKind::PolicyVeto => "policy-veto",
            RequestKind::LedgerNotice => "ledger-notice",
            RequestKind::LedgerNotices => "ledger-notices",
            RequestKind::AuditExport => "audit-export",
            RequestKind::StatusChallenge => "status-challenge",
            RequestKind::RepairOffer => "repair-offer",
            RequestKind::RepairContribute => "repair-contribute",
            RequestKind::RepairFinish => "repair-finish",
            RequestKind::RefreshActivate => "refresh-activate",
            RequestKind::AddHolder => "add-holder",
            RequestKind::Sync => "sync",
        }
    }
}

impl std::fmt::Display for RequestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Request {
    /// Which request this is.
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::DkgRound1(_) => RequestKind::DkgRound1,
            Request::DkgRound2(_) => RequestKind::DkgRound2,
            Request::DkgRound3(_) => RequestKind::DkgRound3,
            Request::DkgConfirm(_) => RequestKind::DkgConfirm,
            Request::Commit(_) => RequestKind::Commit,
            Request::Presign(_) => RequestKind::Presign,
            Request::Sign(_) => RequestKind::Sign,
            Request::PolicyUpdate(_) => RequestKind::PolicyUpdate,
            Request::PolicyVeto(_) => RequestKind::PolicyVeto,
            Request::LedgerNotice(_) => RequestKind::LedgerNotice,
            Request::LedgerNotices(_) => RequestKind::LedgerNotices,
            Request::AuditExport(_) => RequestKind::AuditExport,
            Request::StatusChallenge { .. } => RequestKind::StatusChallenge,
            Request::RepairOffer(_) => RequestKind::RepairOffer,
            Request::RepairContribute(_) => RequestKind::RepairContribute,
            Request::RepairFinish(_) => RequestKind::RepairFinish,
            Request::RefreshActivate(_) => RequestKind::RefreshActivate,
            Request::AddHolder(_) => RequestKind::AddHolder,
            Request::Sync(_) => RequestKind::Sync,
        }
    }

    /// The withdrawal intent the request carries (a signing request, a ledger notice), still
    /// encoded: a refusal's audit record names its withdrawal if it decodes.
    pub fn intent(&self) -> Option<&[u8]> {
        match self {
            Request::Sign(r) => Some(&r.intent),
            Request::LedgerNotice(n) => Some(&n.intent),
            _ => None,
        }
    }
}

/// DKG round 1, or round 1 of a share refresh of the group this signer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgRound1Request {
    /// The ceremony's session id; 16 bytes, checked by the signer after its own state.
    pub session_id: Vec<u8>,
    /// The manifest hash the coordinator pins (the signer compares it with its own).
    pub manifest_hash: Vec<u8>,
    /// The key group.
    pub scheme: Scheme,
    /// Set for a share refresh: the same rounds, a sharing of zero, the same group key after.
    pub refresh: Option<RefreshTerms>,
}

/// What a share refresh is of and among whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTerms {
    /// The key epoch every participant holds; the refreshed shares are of the next one.
    pub old_epoch: u32,
    /// Identifiers taking part: every holder the policy in force has not retired.
    pub participants: Vec<u16>,
}

/// DKG round 2: every participant's signed round-1 package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgRound2Request {
    /// The session of round 1 (compared with it).
    pub session_id: Vec<u8>,
    /// The signed round-1 packages, the sender's own included.
    pub packages: Vec<SignedRound1>,
    /// The key group.
    pub scheme: Scheme,
}

/// DKG round 3: the round-2 packages sealed to this signer and every participant's echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgRound3Request {
    /// The session of round 1 (compared with it).
    pub session_id: Vec<u8>,
    /// The round-2 packages sealed to this signer.
    pub packages: Vec<Sealed>,
    /// Every participant's echo of the round-1 packages it accepted.
    pub echoes: Vec<SignedEcho>,
    /// The key group.
    pub scheme: Scheme,
    /// Finishes a share refresh (the signer checks that its session is one).
    pub refresh: bool,
}

/// The confirmation round: every participant's signed result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgConfirmRequest {
    /// The session of round 1 (compared with it).
    pub session_id: Vec<u8>,
    /// Every participant's signed result.
    pub results: Vec<SignedResult>,
    /// The key group.
    pub scheme: Scheme,
}

/// A fresh nonce for one signing session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    /// The session that names the nonce.
    pub session_id: [u8; 16],
    /// The key group.
    pub scheme: Scheme,
}

/// Fresh nonces for a batch of signing sessions (one-round signing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignRequest {
    /// The sessions, one nonce each (the signer bounds the batch).
    pub session_ids: Vec<[u8; 16]>,
    /// The key group.
    pub scheme: Scheme,
}

/// A signature share for a withdrawal, or instead for a vault action or a Solana nonce void.
/// (`Default`: the template a coordinator fills in for each signer of a quorum.)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignRequest {
    /// The session whose nonce signs.
    pub session_id: [u8; 16],
    /// Canonical encoding of the withdrawal intent (empty for a vault action or a void).
    pub intent: Vec<u8>,
    /// The backend's signature over the intent digest (empty for a vault action or a void).
    pub backend_signature: Vec<u8>,
    /// Serialised FROST signing package.
    pub signing_package: Vec<u8>,
    /// Admin approvals of a withdrawal above its asset's approval threshold.
    pub approvals: Vec<AdminSignature>,
    /// Instead of a withdrawal: the vault administration message the policy lists.
    pub vault_action: Option<VaultActionRef>,
    /// The key group asked to sign.
    pub scheme: Scheme,
    /// Instead of a withdrawal: void a Solana durable nonce.
    pub solana_void: Option<SolanaVoid>,
    /// The key epoch of the package the coordinator verifies shares against.
    pub key_epoch: u32,
}

/// A vault administration message, named by (chain, admin nonce) in the signer's own policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultActionRef {
    /// The chain's name (parsed by the signer).
    pub chain: String,
    /// The vault's admin nonce.
    pub nonce: u64,
}

/// A void of a Solana durable nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolanaVoid {
    /// The nonce account.
    pub nonce_account: [u8; 32],
    /// Its current nonce value.
    pub nonce_value: [u8; 32],
    /// One admin's signature over both (`None`: refused as `solana-void-unapproved`).
    pub approval: Option<AdminSignature>,
}

/// A veto of a pending policy version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVeto {
    /// Hash of the vetoed version.
    pub policy_hash: [u8; 32],
    /// An admin's signature over it.
    pub veto: AdminSignature,
}

/// Most notices in one [`Request::LedgerNotices`]: about 256 × 1 KiB at most on the link, and
/// well under a second of a signer's work.
pub const MAX_NOTICES: usize = 256;

/// A withdrawal the group signed without this signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerNotice {
    /// Canonical intent encoding.
    pub intent: Vec<u8>,
    /// The group's RFC 9591 signature over the intent's signing message.
    pub signature: Vec<u8>,
    /// When the coordinator got the signature (Unix ms; 0: unknown).
    pub signed_at_ms: u64,
}

/// A page of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditExportRequest {
    /// The node asked for (the admin service's field; ignored on the signer link).
    pub node: String,
    /// First sequence number wanted (0 or 1: from the start).
    pub from_seq: u64,
    /// Most records wanted.
    pub limit: u32,
    /// The exporter's challenge, which the head is signed over (the handler bounds it).
    pub nonce: Vec<u8>,
}

/// What every participant of a repair agrees on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairSession {
    /// Single use across DKGs and repairs.
    pub session_id: [u8; 16],
    /// The manifest hash the coordinator pins (the signer compares it with its own).
    pub manifest_hash: Vec<u8>,
    /// The key group.
    pub scheme: Scheme,
    /// Whose share is rebuilt.
    pub target: u16,
    /// The helpers, as named (the signer refuses one named twice).
    pub helpers: Vec<u16>,
}

/// Share repair, round 1 to a helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairOfferRequest {
    /// The repair.
    pub session: RepairSession,
}

/// Share repair, round 2 to a helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairContributeRequest {
    /// The repair.
    pub session: RepairSession,
    /// Every helper's offer.
    pub offers: Vec<Offer>,
    /// The deltas sealed to this helper.
    pub deltas: Vec<Sealed>,
}

/// Share repair, to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairFinishRequest {
    /// The repair.
    pub session: RepairSession,
    /// Every helper's offer.
    pub offers: Vec<Offer>,
    /// Every helper's contribution.
    pub contributions: Vec<Contribution>,
}

/// Switch to the refreshed share, shown every participant's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshActivate {
    /// The refresh's session (compared with the stored one).
    pub session_id: Vec<u8>,
    /// The key group.
    pub scheme: Scheme,
    /// The refreshed key epoch.
    pub epoch: u32,
    /// The refresh's transcript hash.
    pub transcript_hash: Vec<u8>,
    /// Hash of the refreshed public key package.
    pub public_key_package_hash: Vec<u8>,
    /// Every participant's signed acknowledgement that it stored its refreshed share.
    pub acks: Vec<RefreshAck>,
}

/// One participant's acknowledgement that it stored its refreshed share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshAck {
    /// The participant.
    pub identifier: u16,
    /// Its identity signature.
    pub signature: Vec<u8>,
}

/// A finished enrolment: the repair session and the new signer's signed result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddHolder {
    /// The repair that enrolled it.
    pub session: RepairSession,
    /// Its signed result.
    pub result: RepairResult,
}

/// What the asking coordinator holds of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    /// The version it has in force (0: none).
    pub policy_version: u64,
    /// The hash of the version it holds pending (empty: none).
    pub pending_hash: String,
}

/// A signer's answer: one variant per answer case of `SignerMessage.body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// To [`Request::DkgRound1`].
    DkgRound1(DkgRound1Response),
    /// To [`Request::DkgRound2`].
    DkgRound2(DkgRound2Response),
    /// To [`Request::DkgRound3`].
    DkgRound3(DkgRound3Response),
    /// To [`Request::DkgConfirm`].
    DkgConfirm(DkgConfirmResponse),
    /// To [`Request::Commit`].
    Commit {
        /// Serialised FROST round-1 signing commitments.
        commitments: Vec<u8>,
    },
    /// To [`Request::Presign`].
    Presign {
        /// Serialised commitments, in the order of the request's session ids.
        commitments: Vec<Vec<u8>>,
        /// How long the signer keeps these nonces.
        ttl_ms: u64,
    },
    /// To [`Request::Sign`].
    Sign {
        /// Serialised FROST signature share.
        share: Vec<u8>,
    },
    /// To [`Request::PolicyUpdate`] and [`Request::PolicyVeto`].
    PolicyStatus(PolicyStatus),
    /// To [`Request::LedgerNotice`].
    LedgerAck {
        /// False if this signer had already counted the withdrawal.
        debited: bool,
    },
    /// To [`Request::LedgerNotices`]: one result per notice, in the request's order; `Ok` as
    /// [`Answer::LedgerAck`]'s `debited`, `Err` the refusal a single notice would have got.
    LedgerAcks(Vec<Result<bool, Refusal>>),
    /// To [`Request::AuditExport`].
    AuditPage {
        /// Consecutive records.
        records: Vec<Record>,
        /// The head, signed over the exporter's nonce.
        head: Head,
    },
    /// To [`Request::StatusChallenge`].
    StatusReceipt(StatusReceipt),
    /// To [`Request::RepairOffer`].
    RepairOffer(RepairOfferResponse),
    /// To [`Request::RepairContribute`].
    RepairContribution(Contribution),
    /// To [`Request::RepairFinish`].
    RepairResult(RepairResult),
    /// To [`Request::RefreshActivate`].
    RefreshActivated {
        /// The key epoch in use.
        epoch: u32,
        /// The group key (unchanged by a refresh).
        group_public_key: Vec<u8>,
    },
    /// To [`Request::AddHolder`].
    HolderAdded {
        /// The new holder.
        identifier: u16,
        /// The key epoch, unchanged.
        epoch: u32,
    },
    /// To [`Request::Sync`].
    Sync(SyncAnswer),
    /// Any request, refused.
    Refused {
        /// The rule that refused, and why.
        refusal: Refusal,
        /// FROST identifiers shown to have misbehaved (DKG and repair aborts).
        culprits: Vec<u16>,
    },
}

impl Answer {
    /// A refusal that names no culprit.
    pub fn refused(refusal: Refusal) -> Self {
        Answer::Refused {
            refusal,
            culprits: vec![],
        }
    }

    /// The refusal, if this is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Answer::Refused { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
}

/// A signed round-1 package (its sender is whoever answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgRound1Response {
    /// Serialised FROST round-1 package.
    pub package: Vec<u8>,
    /// The sender's identity signature over the round-1 statement.
    pub signature: Vec<u8>,
}

/// Round-2 packages, one sealed to each other participant, and the sender's echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgRound2Response {
    /// The sealed packages.
    pub packages: Vec<Sealed>,
    /// The round-1 packages this signer accepted, echoed to every other participant (always
    /// sent by a signer; optional on the wire).
    pub echo: Option<SignedEcho>,
}

/// A participant's signed DKG result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgRound3Response {
    /// The group key.
    pub group_public_key: Vec<u8>,
    /// Serialised FROST public key package.
    pub public_key_package: Vec<u8>,
    /// The round-1 transcript hash.
    pub transcript_hash: Vec<u8>,
    /// Identity signature over (session, transcript hash, group key).
    pub signature: Vec<u8>,
}

/// The share is kept (a DKG) or stored beside the old one (a refresh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgConfirmResponse {
    /// The group key.
    pub group_public_key: Vec<u8>,
    /// A refresh: the key epoch of the stored share (0 for a DKG).
    pub epoch: u32,
    /// A refresh: the signer's signed acknowledgement that it stored it (empty for a DKG).
    pub stored_signature: Vec<u8>,
    /// A refresh: the hash of the refreshed public key package (empty for a DKG).
    pub public_key_package_hash: Vec<u8>,
}

/// A helper's signed offer and its deltas, one sealed to each other helper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairOfferResponse {
    /// The offer.
    pub offer: Offer,
    /// The sealed deltas.
    pub deltas: Vec<Sealed>,
}

/// The target's signed statement of the share it now holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairResult {
    /// The group key.
    pub group_public_key: Vec<u8>,
    /// Its verifying share.
    pub verifying_share: Vec<u8>,
    /// The key epoch.
    pub epoch: u32,
    /// Identity signature over (session, epoch, group key, verifying share).
    pub signature: Vec<u8>,
}

/// What a signer knows that the asking coordinator may not. Each item is one signer's claim,
/// which a coordinator takes only once t signers agree: an update, veto or key package that
/// does not convert is dropped at the coordinator's edge, as one that does not check out is
/// ignored, and the rest of the answer still counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncAnswer {
    /// This signer's policy state (always sent by a signer; optional on the wire).
    pub policy: Option<PolicyStatus>,
    /// The version after the asked one that this signer accepted, as the admins signed it.
    pub updates: Vec<SignedPolicy>,
    /// Vetoes it accepted of versions after the asked one.
    pub vetoes: Vec<PolicyVeto>,
    /// The public key package of each key group it holds a share of.
    pub key_packages: Vec<KeyPackageInfo>,
}

/// A key group's public key package at its key epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPackageInfo {
    /// The key group.
    pub scheme: Scheme,
    /// The key epoch.
    pub key_epoch: u32,
    /// Serialised FROST public key package.
    pub public_key_package: Vec<u8>,
}

/// A signer's first message on every link: who it is, the manifest it pins, the keys and key
/// epochs it holds and its policy. The coordinator believes the certificate, not this; it
/// checks that the two agree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    /// Its manifest name.
    pub name: String,
    /// Its FROST identifier.
    pub identifier: u16,
    /// Its software version.
    pub version: String,
    /// The manifest hash it pins.
    pub manifest_hash: Vec<u8>,
    /// Its secp256k1 group key (empty before that DKG).
    pub group_public_key: Vec<u8>,
    /// The policy it has in force.
    pub policy: PolicyStatus,
    /// Its Ed25519 group key (empty before that DKG).
    pub ed25519_group_public_key: Vec<u8>,
    /// Key epoch of its secp256k1 share.
    pub key_epoch: u32,
    /// Key epoch of its Ed25519 share.
    pub ed25519_key_epoch: u32,
    /// Key epoch of a refreshed secp256k1 share stored and not activated (0: none).
    pub pending_key_epoch: u32,
    /// Key epoch of a refreshed Ed25519 share stored and not activated (0: none).
    pub ed25519_pending_key_epoch: u32,
}

/// A request that does not convert to its typed form: which request, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{request} request, field {field}: {reason}")]
pub struct Malformed {
    /// The request.
    pub request: RequestKind,
    /// The field at fault, as the proto names it (`session_id`, `solana_void.nonce_account`).
    pub field: &'static str,
    /// What is wrong, in the words of the refusal.
    pub reason: String,
}

impl Malformed {
    /// How a signer refuses it: permanently, with the rule its handler gave such input before
    /// the protocol was typed. A policy update or veto that does not convert is invalid
    /// (`policy-update-invalid`, `policy-veto-invalid`); a DKG round whose packages, echoes or
    /// results do not convert is aborted (`dkg-aborted`, naming nobody); anything else is
    /// `bad-request`.
    pub fn refusal(&self) -> Refusal {
        let rule = match self.request {
            RequestKind::PolicyUpdate => Rule::PolicyUpdateInvalid,
            RequestKind::PolicyVeto => Rule::PolicyVetoInvalid,
            RequestKind::DkgRound2 | RequestKind::DkgRound3 | RequestKind::DkgConfirm
                if self.field != "scheme" =>
            {
                Rule::DkgAborted
            }
            _ => Rule::BadRequest,
        };
        Refusal::permanent(rule, self.reason.clone())
    }
}

/// A signer's message (an answer or its hello) that does not convert to its typed form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}, field {field}: {reason}")]
pub struct MalformedAnswer {
    /// The message (`hello`, or the answer's name: `dkg-round2`, `refusal`, ...).
    pub message: &'static str,
    /// The field at fault, as the proto names it.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(request: RequestKind, field: &'static str) -> Malformed {
        Malformed {
            request,
            field,
            reason: "why".into(),
        }
    }

    #[test]
    fn malformed_input_is_refused_as_its_handler_refused_it() {
        let rule = |r, f| malformed(r, f).refusal().rule;
        assert_eq!(rule(RequestKind::Sign, "session_id"), Rule::BadRequest);
        assert_eq!(rule(RequestKind::Commit, "scheme"), Rule::BadRequest);
        assert_eq!(
            rule(RequestKind::PolicyUpdate, "document"),
            Rule::PolicyUpdateInvalid
        );
        assert_eq!(
            rule(RequestKind::PolicyVeto, "veto"),
            Rule::PolicyVetoInvalid
        );
        assert_eq!(rule(RequestKind::DkgRound2, "packages"), Rule::DkgAborted);
        assert_eq!(rule(RequestKind::DkgRound3, "echoes"), Rule::DkgAborted);
        assert_eq!(rule(RequestKind::DkgConfirm, "results"), Rule::DkgAborted);
        // The key group is read before any DKG step starts.
        assert_eq!(rule(RequestKind::DkgRound2, "scheme"), Rule::BadRequest);
        assert_eq!(
            rule(RequestKind::DkgRound1, "refresh.participants"),
            Rule::BadRequest
        );
        let r = malformed(RequestKind::Sign, "session_id").refusal();
        assert!(r.permanent);
        assert_eq!(r.reason, "why");
    }

    #[test]
    fn every_request_is_named_for_the_audit_log() {
        let sync = Request::Sync(SyncRequest {
            policy_version: 1,
            pending_hash: String::new(),
        });
        assert_eq!(sync.kind().as_str(), "sync");
        assert_eq!(sync.intent(), None);
        let notice = Request::LedgerNotice(LedgerNotice {
            intent: vec![1, 2],
            signature: vec![],
            signed_at_ms: 0,
        });
        assert_eq!(notice.kind().to_string(), "ledger-notice");
        assert_eq!(notice.intent(), Some(&[1u8, 2][..]));
    }
}
