//! Signer-side FROST signing (RFC 9591 §5): nonce custody and the checks a signer makes before
//! it releases a signature share.
//!
//! Nonces (S4) live only in a bounded, expiring in-memory [`NonceStore`]; [`NonceStore::take`]
//! removes a nonce before it is used, so any second request for the same session finds nothing.
//! [`check_request`] is the no-blind-signing gate (S1): the message is recomputed from the
//! intent, never taken from the package.

use std::collections::HashMap;

pub mod attempts;

use frost_core::{
    keys::{KeyPackage, SigningShare},
    round1::{self, SigningCommitments, SigningNonces},
    round2::{self, SignatureShare},
    Ciphersuite, Identifier, SigningPackage,
};
use rand_core::{CryptoRng, RngCore};

use crate::{
    backend::{self, BackendKey},
    dkg::DefaultSuite,
    intent::WithdrawalIntent,
    message::{signing_message, ChainFormat},
    refusal::{Refusal, Rule},
    scheme::Suite,
};

/// A signing session id, chosen by the coordinator.
pub type SessionId = [u8; 16];

struct Outstanding<C: Ciphersuite> {
    nonces: SigningNonces<C>,
    commitments: SigningCommitments<C>,
    expires_ms: u64,
}

/// Outstanding signing nonces of one signer for one key group: in memory only, bounded,
/// expiring, single use.
pub struct NonceStore<C: Ciphersuite = DefaultSuite> {
    limit: usize,
    ttl_ms: u64,
    entries: HashMap<SessionId, Outstanding<C>>,
}

impl<C: Ciphersuite> std::fmt::Debug for NonceStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceStore")
            .field("outstanding", &self.entries.len())
            .field("limit", &self.limit)
            .finish()
    }
}

impl<C: Ciphersuite> NonceStore<C> {
    /// A store holding at most `limit` nonces, each for at most `ttl_ms`.
    pub fn new(limit: usize, ttl_ms: u64) -> Self {
        Self {
            limit,
            ttl_ms,
            entries: HashMap::new(),
        }
    }

    /// Number of outstanding nonces (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops every nonce (the link they were made for is gone: nobody can use them).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Drops every expired nonce now (their secrets leave memory). Commits do this too.
    pub fn sweep(&mut self, now_ms: u64) {
        self.evict_expired(now_ms);
    }

    /// True when no nonce is outstanding.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How long each nonce stays usable.
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    fn evict_expired(&mut self, now_ms: u64) {
        self.entries.retain(|_, o| o.expires_ms > now_ms);
    }

    /// Generates fresh nonces for each of `sessions` and returns their commitments in the
    /// same order; all or nothing. The batch must fit under the limit with what is
    /// outstanding, and no session may be in use or appear twice.
    pub fn commit_batch<R: RngCore + CryptoRng>(
        &mut self,
        sessions: &[SessionId],
        share: &SigningShare<C>,
        rng: &mut R,
        now_ms: u64,
    ) -> Result<Vec<SigningCommitments<C>>, Refusal> {
        self.evict_expired(now_ms);
        let mut seen = std::collections::HashSet::with_capacity(sessions.len());
        if sessions
            .iter()
            .any(|s| self.entries.contains_key(s) || !seen.insert(*s))
        {
            return Err(Refusal::permanent(
                Rule::NonceUnknown,
                "a signing session in the batch already has a commitment; sessions are single use",
            ));
        }
        if self.entries.len() + sessions.len() > self.limit {
            return Err(Refusal::temporary(
                Rule::NonceLimit,
                format!(
                    "{} signing sessions outstanding; {} more would pass the limit of {}",
                    self.entries.len(),
                    sessions.len(),
                    self.limit
                ),
            ));
        }
        let expires_ms = now_ms.saturating_add(self.ttl_ms);
        Ok(sessions
            .iter()
            .map(|s| {
                let (nonces, commitments) = round1::commit(share, rng);
                self.entries.insert(
                    *s,
                    Outstanding {
                        nonces,
                        commitments,
                        expires_ms,
                    },
                );
                commitments
            })
            .collect())
    }

    /// Generates fresh nonces for `session` and returns their public commitments.
    pub fn commit<R: RngCore + CryptoRng>(
        &mut self,
        session: SessionId,
        share: &SigningShare<C>,
        rng: &mut R,
        now_ms: u64,
    ) -> Result<SigningCommitments<C>, Refusal> {
        self.evict_expired(now_ms);
        if self.entries.contains_key(&session) {
            return Err(Refusal::permanent(
                Rule::NonceUnknown,
                "this signing session already has a commitment; sessions are single use",
            ));
        }
        if self.entries.len() >= self.limit {
            return Err(Refusal::temporary(
                Rule::NonceLimit,
                format!("{} signing sessions already outstanding", self.limit),
            ));
        }
        let (nonces, commitments) = round1::commit(share, rng);
        self.entries.insert(
            session,
            Outstanding {
                nonces,
                commitments,
                expires_ms: now_ms.saturating_add(self.ttl_ms),
            },
        );
        Ok(commitments)
    }

    /// Removes and returns the nonce of `session`, if it is live. After this call the session
    /// can never be used again, whatever happens next.
    pub fn take(
        &mut self,
        session: &SessionId,
        now_ms: u64,
    ) -> Result<(SigningNonces<C>, SigningCommitments<C>), Refusal> {
        // Only this session's expiry matters here; the others are evicted when a commit needs
        // room or time (`commit`), so a take costs the same however many are outstanding.
        let gone = || {
            Refusal::permanent(
                Rule::NonceUnknown,
                "no live nonce for this signing session: unknown, expired, or already used",
            )
        };
        let o = self.entries.remove(session).ok_or_else(gone)?;
        if o.expires_ms <= now_ms {
            return Err(gone());
        }
        Ok((o.nonces, o.commitments))
    }
}

/// What a signer needs to judge a signing request.
pub struct Gate<'a, C: Ciphersuite = DefaultSuite> {
    /// This signer's FROST identifier.
    pub me: Identifier<C>,
    /// Identifiers of every signer in the manifest.
    pub signers: &'a std::collections::BTreeSet<Identifier<C>>,
    /// Signers the policy in force retired: no package with their commitment is signed.
    pub retired: &'a [Identifier<C>],
    /// Threshold t.
    pub min_signers: usize,
    /// Backend keys of the policy in force.
    pub backend_keys: &'a [BackendKey],
    /// How the group signs for an intent: from the policy in force ([`crate::message::chain_format`]).
    pub format: &'a dyn Fn(&WithdrawalIntent) -> Result<ChainFormat, Refusal>,
    /// Unix milliseconds now.
    pub now_ms: u64,
    /// How far in the future an intent's creation time may be (clock skew).
    pub max_clock_skew_ms: u64,
}

/// A request that passed every check.
#[derive(Debug)]
pub struct Authorized<C: Ciphersuite = DefaultSuite> {
    /// The decoded intent.
    pub intent: WithdrawalIntent,
    /// Its digest.
    pub digest: [u8; 32],
    /// The signing package, whose message is the intent's signing message.
    pub package: SigningPackage<C>,
    /// How the group signs for this intent under the policy in force.
    pub format: ChainFormat,
}

/// Checks a signing package against the message this signer computed itself: canonical
/// bytes, a quorum of manifest signers, exactly that message, and this signer's own
/// commitment for the session `own`.
pub fn check_package<C: Ciphersuite>(
    gate: &Gate<'_, C>,
    package_bytes: &[u8],
    message: &[u8],
    own: &SigningCommitments<C>,
) -> Result<SigningPackage<C>, Refusal> {
    let package = SigningPackage::<C>::deserialize(package_bytes)
        .map_err(|e| Refusal::permanent(Rule::PackageMalformed, format!("signing package: {e}")))?;
    // Only canonical bytes: the decoder reads the commitments into a map (a repeated signer
    // silently keeps its last entry) and ignores trailing bytes, so the bytes must be exactly
    // what the package encodes to — one entry per signer, in identifier order, nothing after.
    if package.serialize().ok().as_deref() != Some(package_bytes) {
        return Err(Refusal::permanent(
            Rule::PackageMalformed,
            "the signing package is not in canonical form (a repeated or unsorted signer, or trailing bytes)",
        ));
    }
    let count = package.signing_commitments().len();
    if count < gate.min_signers || count > gate.signers.len() {
        return Err(Refusal::permanent(
            Rule::PackageMalformed,
            format!(
                "the signing package has {count} commitments; a quorum has {}..={}",
                gate.min_signers,
                gate.signers.len()
            ),
        ));
    }
    if package
        .signing_commitments()
        .keys()
        .any(|id| !gate.signers.contains(id))
    {
        return Err(Refusal::permanent(
            Rule::PackageMalformed,
            "the signing package has a commitment from a signer not in the manifest",
        ));
    }
    if let Some(id) = package
        .signing_commitments()
        .keys()
        .find(|id| gate.retired.contains(id))
    {
        return Err(Refusal::permanent(
            Rule::SignerRetired,
            format!(
                "the signing package has a commitment from signer {}, which the policy in force retired",
                hex::encode(id.serialize())
            ),
        ));
    }
    if package.message().as_slice() != message {
        return Err(Refusal::permanent(
            Rule::MessageMismatch,
            "the signing package's message is not the message this signer computed for the request",
        ));
    }
    match package.signing_commitment(&gate.me) {
        None => {
            return Err(Refusal::permanent(
                Rule::CommitmentMissing,
                "the signing package omits this signer's commitment",
            ))
        }
        Some(c) if c != *own => {
            return Err(Refusal::permanent(
                Rule::CommitmentMismatch,
                "the signing package carries a commitment this signer did not make",
            ))
        }
        Some(_) => {}
    }
    Ok(package)
}

/// Checks a signing request against the intent itself (S1). Policy comes after, with the
/// ledger, in the caller. `own` is the commitment this
/// signer released for the session.
pub fn check_request<C: Suite>(
    gate: &Gate<'_, C>,
    intent_bytes: &[u8],
    backend_signature: &[u8],
    package_bytes: &[u8],
    own: &SigningCommitments<C>,
) -> Result<Authorized<C>, Refusal> {
    let intent = WithdrawalIntent::decode(intent_bytes)
        .map_err(|e| Refusal::permanent(Rule::IntentMalformed, e.to_string()))?;
    let format = (gate.format)(&intent)?;
    if format.scheme() != C::SCHEME {
        return Err(Refusal::permanent(
            Rule::SchemeMismatch,
            format!(
                "this withdrawal is signed with the {} key, not the {} key the request names",
                format.scheme(),
                C::SCHEME
            ),
        ));
    }
    let message = signing_message(&intent, format)?;
    let package = check_package(gate, package_bytes, &message, own)?;
    let digest = intent.digest();
    backend::verify(gate.backend_keys, &digest, backend_signature)?;
    if gate.now_ms >= intent.expires_at_ms {
        return Err(Refusal::permanent(
            Rule::IntentExpired,
            format!(
                "the intent expired at {} ms; now is {} ms",
                intent.expires_at_ms, gate.now_ms
            ),
        ));
    }
    if intent.created_at_ms > gate.now_ms.saturating_add(gate.max_clock_skew_ms) {
        return Err(Refusal::temporary(
            Rule::IntentNotYetValid,
            "the intent's creation time is in the future beyond the allowed clock skew",
        ));
    }
    Ok(Authorized {
        intent,
        digest,
        package,
        format,
    })
}

/// Computes this signer's share. Takes the nonces by value: they are dropped (and zeroized by
/// frost) when this returns.
pub fn sign_share<C: Ciphersuite>(
    package: &SigningPackage<C>,
    nonces: SigningNonces<C>,
    key: &KeyPackage<C>,
) -> Result<SignatureShare<C>, Refusal> {
    round2::sign(package, &nonces, key)
        .map_err(|e| Refusal::permanent(Rule::PackageMalformed, format!("signing failed: {e}")))
}
