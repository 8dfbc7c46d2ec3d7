//! Distributed key generation (RFC 9591 appendix C / frost `keys::dkg`) relayed through an
//! untrusted coordinator (S3).
//!
//! The coordinator only carries messages, so each participant protects itself:
//! - round-1 packages are signed with the sender's identity key, and every participant checks
//!   that the set it received contains its own package unchanged;
//! - the transcript hash of all round-1 packages is bound into every sealed round-2 package, so
//!   two participants that saw different round-1 broadcasts cannot complete with each other;
//! - round-2 packages are sealed end to end ([`crate::seal`]); the coordinator sees no share;
//! - the final result (group key, transcript) is signed, and a participant keeps its share only
//!   after checking all n signed results ([`check_confirmations`]); the confirmation round is
//!   what makes a participant sure every other one finished the same group.
//!
//! The same protocol runs for every FROST ciphersuite the cluster holds a key for
//! (FROST(secp256k1, SHA-256) by default; FROST(Ed25519, SHA-512) for Solana). Signatures and
//! transcripts of any ciphersuite but secp256k1 carry its RFC 9591 context string, so nothing
//! from one group's DKG is accepted in another's; secp256k1 keeps its original bytes.

use std::collections::BTreeMap;

use frost_core::{
    keys::{
        dkg::{self, round1, round2},
        KeyPackage, PublicKeyPackage,
    },
    Ciphersuite, Identifier,
};
use frost_secp256k1::Secp256K1Sha256;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use crate::{
    identity::{IdentityPublic, IdentitySecret},
    seal::{self, SealContext, Sealed},
};

const ROUND1_DOMAIN: &str = "quorate/dkg-round1/v1";
const RESULT_DOMAIN: &str = "quorate/dkg-result/v1";
const ECHO_DOMAIN: &str = "quorate/dkg-echo/v1";

/// The ciphersuite a DKG runs for when none is named: the cluster's secp256k1 group.
pub type DefaultSuite = Secp256K1Sha256;

/// `base` for secp256k1 (its original bytes), else `base/<RFC 9591 context string>`.
fn domain<C: Ciphersuite>(base: &str) -> std::borrow::Cow<'_, str> {
    if C::ID == DefaultSuite::ID {
        base.into()
    } else {
        format!("{base}/{}", C::ID).into()
    }
}

/// A DKG failure; `culprits` are the identifiers shown to have misbehaved (empty when the
/// fault can't be pinned on a participant, e.g. the relay altered our own message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DKG aborted: {reason}{}", if culprits.is_empty() { String::new() } else { format!(" (culprits: {culprits:?})") })]
pub struct DkgError {
    /// What went wrong.
    pub reason: String,
    /// Who is to blame.
    pub culprits: Vec<u16>,
}

fn fail(reason: impl Into<String>, culprits: Vec<u16>) -> DkgError {
    DkgError {
        reason: reason.into(),
        culprits,
    }
}

/// Everything fixed before a DKG starts.
#[derive(Debug, Clone)]
pub struct DkgSetup {
    /// Session id chosen by the coordinator.
    pub session_id: Vec<u8>,
    /// Hash of the cluster manifest every participant pinned.
    pub manifest_hash: [u8; 32],
    /// Our identifier.
    pub me: u16,
    /// Threshold t.
    pub threshold: u16,
    /// Identity keys of all n participants, us included.
    pub participants: BTreeMap<u16, IdentityPublic>,
}

impl DkgSetup {
    fn id<C: Ciphersuite>(&self, n: u16) -> Result<Identifier<C>, DkgError> {
        Identifier::try_from(n).map_err(|_| fail(format!("invalid identifier {n}"), vec![]))
    }

    fn max_signers(&self) -> Result<u16, DkgError> {
        u16::try_from(self.participants.len()).map_err(|_| fail("too many participants", vec![]))
    }
}

/// A signed round-1 broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRound1 {
    /// Sender.
    pub identifier: u16,
    /// Serialised `round1::Package`.
    pub package: Vec<u8>,
    /// Sender's identity signature.
    pub signature: Vec<u8>,
}

fn round1_parts<'a>(setup: &'a DkgSetup, sender: &'a [u8; 2], package: &'a [u8]) -> [&'a [u8]; 4] {
    [&setup.session_id, &setup.manifest_hash, sender, package]
}

/// State after round 1 (holds the round-1 secret; memory only).
pub struct Round1State<C: Ciphersuite = DefaultSuite> {
    setup: DkgSetup,
    secret: round1::SecretPackage<C>,
    my_package: Vec<u8>,
}

/// Round 1: generate our polynomial commitment and proof of knowledge, signed.
pub fn round1<R: RngCore + CryptoRng>(
    setup: DkgSetup,
    identity: &IdentitySecret,
    rng: &mut R,
) -> Result<(Round1State, SignedRound1), DkgError> {
    round1_for::<DefaultSuite, R>(setup, identity, rng)
}

/// [`round1`] for the DKG of ciphersuite `C`; the later rounds follow from the state.
pub fn round1_for<C: Ciphersuite, R: RngCore + CryptoRng>(
    setup: DkgSetup,
    identity: &IdentitySecret,
    rng: &mut R,
) -> Result<(Round1State<C>, SignedRound1), DkgError> {
    if setup.participants.get(&setup.me) != Some(&identity.public()) {
        return Err(fail(
            "our identity key is not the one the manifest lists for us",
            vec![],
        ));
    }
    let (secret, package) = dkg::part1::<C, _>(
        setup.id(setup.me)?,
        setup.max_signers()?,
        setup.threshold,
        &mut *rng,
    )
    .map_err(|e| fail(format!("round 1: {e}"), vec![]))?;
    let bytes = package
        .serialize()
        .map_err(|e| fail(format!("round 1: {e}"), vec![]))?;
    let signed = sign_round1_for::<C>(&setup, identity, bytes.clone());
    Ok((
        Round1State {
            setup,
            secret,
            my_package: bytes,
        },
        signed,
    ))
}

/// Signs a serialised round-1 package as participant `setup.me` of this session.
pub fn sign_round1(setup: &DkgSetup, identity: &IdentitySecret, package: Vec<u8>) -> SignedRound1 {
    sign_round1_for::<DefaultSuite>(setup, identity, package)
}

/// [`sign_round1`] for the DKG of ciphersuite `C`.
pub fn sign_round1_for<C: Ciphersuite>(
    setup: &DkgSetup,
    identity: &IdentitySecret,
    package: Vec<u8>,
) -> SignedRound1 {
    let me = setup.me.to_be_bytes();
    let signature = identity.sign(
        &domain::<C>(ROUND1_DOMAIN),
        &round1_parts(setup, &me, &package),
    );
    SignedRound1 {
        identifier: setup.me,
        package,
        signature,
    }
}

/// Hash of the whole round-1 broadcast as one participant saw it.
pub fn transcript_hash(setup: &DkgSetup, received: &BTreeMap<u16, Vec<u8>>) -> [u8; 32] {
    transcript_hash_for::<DefaultSuite>(setup, received)
}

/// [`transcript_hash`] for the DKG of ciphersuite `C`.
pub fn transcript_hash_for<C: Ciphersuite>(
    setup: &DkgSetup,
    received: &BTreeMap<u16, Vec<u8>>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain::<C>("quorate/dkg-transcript/v1").as_bytes());
    h.update((setup.session_id.len() as u32).to_be_bytes());
    h.update(&setup.session_id);
    h.update(setup.manifest_hash);
    h.update(setup.threshold.to_be_bytes());
    for (id, pkg) in received {
        h.update(id.to_be_bytes());
        h.update((pkg.len() as u32).to_be_bytes());
        h.update(pkg);
    }
    h.finalize().into()
}

/// State after round 2 (holds the round-2 secret; memory only).
pub struct Round2State<C: Ciphersuite = DefaultSuite> {
    setup: DkgSetup,
    secret: round2::SecretPackage<C>,
    others: BTreeMap<Identifier<C>, round1::Package<C>>,
    transcript: [u8; 32],
    /// The signed round-1 packages we accepted, by sender: what we echo.
    accepted: BTreeMap<u16, SignedRound1>,
}

/// Echo broadcast: one participant's signed account of the round-1 packages it accepted.
///
/// The coordinator relays the round-1 broadcast, so it is no broadcast channel: a participant
/// could sign two different packages and have each shown to different peers. Every participant
/// therefore echoes what it accepted, with every package still signed by its sender, and signs
/// the echo. A package in someone's echo that differs from the one we accepted, under the same
/// sender's valid signature, proves that sender equivocated (RFC 9591 leaves the broadcast
/// channel to the application; this is ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEcho {
    /// Whose echo.
    pub from: u16,
    /// The signed round-1 packages it accepted, one per participant.
    pub packages: Vec<SignedRound1>,
    /// Its identity signature over (session, manifest, itself, [`echo_digest`] of `packages`).
    pub signature: Vec<u8>,
}

fn echo_parts<'a>(setup: &'a DkgSetup, from: &'a [u8; 2], digest: &'a [u8; 32]) -> [&'a [u8]; 4] {
    [&setup.session_id, &setup.manifest_hash, from, digest]
}

/// What an echo's signature covers: every echoed package *with its sender's signature*, so a
/// relay cannot strip or swap those signatures and have the echo's author blamed for it.
pub fn echo_digest(packages: &[SignedRound1]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"quorate/dkg-echo-digest/v1");
    h.update((packages.len() as u32).to_be_bytes());
    for p in packages {
        h.update(p.identifier.to_be_bytes());
        h.update((p.package.len() as u32).to_be_bytes());
        h.update(&p.package);
        h.update((p.signature.len() as u32).to_be_bytes());
        h.update(&p.signature);
    }
    h.finalize().into()
}

/// Our echo of the round-1 broadcast, signed, to send with our round-2 packages.
pub fn echo<C: Ciphersuite>(state: &Round2State<C>, identity: &IdentitySecret) -> SignedEcho {
    let setup = &state.setup;
    let me = setup.me.to_be_bytes();
    let packages: Vec<SignedRound1> = state.accepted.values().cloned().collect();
    let digest = echo_digest(&packages);
    SignedEcho {
        from: setup.me,
        packages,
        signature: identity.sign(&domain::<C>(ECHO_DOMAIN), &echo_parts(setup, &me, &digest)),
    }
}

/// Checks every other participant's echo against the packages we accepted. Names the culprit
/// where the evidence is conclusive: a sender whose two different packages both carry its
/// signature, or an echo signer whose signed echo holds a package its sender never signed.
fn check_echoes<C: Ciphersuite>(
    state: &Round2State<C>,
    echoes: &[SignedEcho],
) -> Result<(), DkgError> {
    let setup = &state.setup;
    let mut seen = BTreeMap::new();
    for e in echoes {
        if e.from == setup.me {
            continue;
        }
        let Some(key) = setup.participants.get(&e.from) else {
            return Err(fail(
                format!("echo from unknown identifier {}", e.from),
                vec![],
            ));
        };
        if seen.insert(e.from, ()).is_some() {
            return Err(fail(format!("two echoes from {}", e.from), vec![]));
        }
        let mut by_id = BTreeMap::new();
        for p in &e.packages {
            let Some(sender_key) = setup.participants.get(&p.identifier) else {
                return Err(fail(
                    format!(
                        "echo of {} names unknown identifier {}",
                        e.from, p.identifier
                    ),
                    vec![],
                ));
            };
            let sender = p.identifier.to_be_bytes();
            let signed_by_sender = sender_key
                .verify(
                    &domain::<C>(ROUND1_DOMAIN),
                    &round1_parts(setup, &sender, &p.package),
                    &p.signature,
                )
                .is_ok();
            if by_id
                .insert(p.identifier, (p.package.clone(), signed_by_sender))
                .is_some()
            {
                return Err(fail(
                    format!("echo of {} repeats identifier {}", e.from, p.identifier),
                    vec![],
                ));
            }
        }
        let digest = echo_digest(&e.packages);
        let from = e.from.to_be_bytes();
        if key
            .verify(
                &domain::<C>(ECHO_DOMAIN),
                &echo_parts(setup, &from, &digest),
                &e.signature,
            )
            .is_err()
        {
            // Unsigned by its author: the relay altered or made it up. Nobody to blame.
            return Err(fail(
                format!("the echo of {} is not signed by its identity key", e.from),
                vec![],
            ));
        }
        for (id, ours) in &state.accepted {
            match by_id.get(id) {
                Some((theirs, _)) if *theirs == ours.package => {}
                Some((_, true)) => {
                    return Err(fail(
                        format!(
                            "participant {id} signed two different round-1 packages for this session (equivocation, seen in the echo of {})",
                            e.from
                        ),
                        vec![*id],
                    ))
                }
                Some((_, false)) => {
                    return Err(fail(
                        format!(
                            "participant {} signed an echo holding a round-1 package of {id} that {id} never signed",
                            e.from
                        ),
                        vec![e.from],
                    ))
                }
                None => {
                    return Err(fail(
                        format!("participant {} signed an echo without {id}'s package", e.from),
                        vec![e.from],
                    ))
                }
            }
        }
        if by_id.len() != state.accepted.len() {
            return Err(fail(
                format!("participant {} signed an echo with extra packages", e.from),
                vec![e.from],
            ));
        }
    }
    if seen.len() + 1 != setup.participants.len() {
        return Err(fail(
            format!(
                "round 3 needs every other participant's echo; got {} of {} (withheld by the relay?)",
                seen.len(),
                setup.participants.len() - 1
            ),
            vec![],
        ));
    }
    Ok(())
}

/// Round 2: check every round-1 broadcast, then seal a share to each other participant.
pub fn round2<C: Ciphersuite, R: RngCore + CryptoRng>(
    state: Round1State<C>,
    identity: &IdentitySecret,
    rng: &mut R,
    received: &[SignedRound1],
) -> Result<(Round2State<C>, Vec<Sealed>), DkgError> {
    let setup = state.setup;
    let mut by_id: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    let mut accepted: BTreeMap<u16, SignedRound1> = BTreeMap::new();
    for r in received {
        let Some(key) = setup.participants.get(&r.identifier) else {
            return Err(fail(
                format!("round-1 package from unknown identifier {}", r.identifier),
                vec![],
            ));
        };
        if by_id.contains_key(&r.identifier) {
            return Err(fail(
                format!("two round-1 packages for identifier {}", r.identifier),
                vec![],
            ));
        }
        let sender = r.identifier.to_be_bytes();
        key.verify(
            &domain::<C>(ROUND1_DOMAIN),
            &round1_parts(&setup, &sender, &r.package),
            &r.signature,
        )
        .map_err(|_| {
            fail(
                format!(
                    "round-1 package of {} is not signed by its identity key (altered in transit?)",
                    r.identifier
                ),
                // The relay may have altered it: this proves nothing against the sender.
                vec![],
            )
        })?;
        by_id.insert(r.identifier, r.package.clone());
        accepted.insert(r.identifier, r.clone());
    }
    if by_id.len() != setup.participants.len() {
        return Err(fail(
            format!(
                "round 1 incomplete: {} of {} packages",
                by_id.len(),
                setup.participants.len()
            ),
            vec![],
        ));
    }
    if by_id.get(&setup.me) != Some(&state.my_package) {
        return Err(fail(
            "the relayed round-1 set carries a different package in our name",
            vec![],
        ));
    }
    let transcript = transcript_hash_for::<C>(&setup, &by_id);
    let mut others = BTreeMap::new();
    for (id, bytes) in &by_id {
        if *id == setup.me {
            continue;
        }
        let pkg = round1::Package::<C>::deserialize(bytes).map_err(|e| {
            fail(
                format!("round-1 package of {id} does not decode: {e}"),
                vec![*id],
            )
        })?;
        others.insert(setup.id(*id)?, pkg);
    }
    let id_of: BTreeMap<Identifier<C>, u16> = setup
        .participants
        .keys()
        .map(|n| Ok((setup.id(*n)?, *n)))
        .collect::<Result<_, DkgError>>()?;
    let (secret, packages) = dkg::part2(state.secret, &others).map_err(|e| {
        let culprits = e
            .culprits()
            .iter()
            .filter_map(|c| id_of.get(c).copied())
            .collect();
        fail(format!("round 2: {e}"), culprits)
    })?;
    let mut sealed = Vec::with_capacity(packages.len());
    for (rid, pkg) in packages {
        let recipient = *id_of
            .get(&rid)
            .ok_or_else(|| fail("round 2 produced a package for an unknown peer", vec![]))?;
        let key = &setup.participants[&recipient];
        let plain = zeroize::Zeroizing::new(
            pkg.serialize()
                .map_err(|e| fail(format!("round 2: {e}"), vec![]))?,
        );
        let ctx = SealContext {
            session_id: &setup.session_id,
            transcript: &transcript,
            sender: setup.me,
            recipient,
        };
        sealed.push(seal::seal(rng, identity, key, &ctx, &plain));
    }
    Ok((
        Round2State {
            setup,
            secret,
            others,
            transcript,
            accepted,
        },
        sealed,
    ))
}

/// The outcome of a finished DKG for one participant.
pub struct DkgOutput<C: Ciphersuite = DefaultSuite> {
    /// Our long-lived key share (secret).
    pub key_package: KeyPackage<C>,
    /// Public data of all participants.
    pub public_key_package: PublicKeyPackage<C>,
    /// The group key as the ciphersuite serialises it (33-byte compressed for secp256k1, the
    /// 32-byte Ed25519 public key for Ed25519).
    pub group_key: Vec<u8>,
    /// Round-1 transcript hash.
    pub transcript: [u8; 32],
    /// Our identity signature over (session, transcript, group key).
    pub signature: Vec<u8>,
}

impl<C: Ciphersuite> std::fmt::Debug for DkgOutput<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkgOutput")
            .field("key_package", &"<redacted>")
            .field("group_key", &hex::encode(&self.group_key))
            .finish()
    }
}

/// Round 3: open the shares sealed to us and derive our key share and the group key.
pub fn round3<C: Ciphersuite>(
    state: Round2State<C>,
    identity: &IdentitySecret,
    sealed: &[Sealed],
    echoes: &[SignedEcho],
) -> Result<DkgOutput<C>, DkgError> {
    // Everyone must have accepted the same round-1 packages before a sealed share that does
    // not open can be blamed on its sender.
    check_echoes(&state, echoes)?;
    let setup = &state.setup;
    let mut packages = BTreeMap::new();
    for s in sealed {
        if s.recipient != setup.me {
            return Err(fail(
                format!("a sealed package for {} was relayed to us", s.recipient),
                vec![],
            ));
        }
        let Some(sender_key) = setup.participants.get(&s.sender) else {
            return Err(fail(
                format!("sealed package from unknown identifier {}", s.sender),
                vec![],
            ));
        };
        let sid = setup.id(s.sender)?;
        if s.sender == setup.me || packages.contains_key(&sid) {
            return Err(fail(
                format!("unexpected or duplicate sealed package from {}", s.sender),
                vec![],
            ));
        }
        let ctx = SealContext {
            session_id: &setup.session_id,
            transcript: &state.transcript,
            sender: s.sender,
            recipient: setup.me,
        };
        let plain = seal::open(identity, sender_key, &ctx, s).map_err(|e| match e {
            // Signed by its sender and still garbage: the sender's doing.
            seal::OpenError::DoesNotOpen { sender } => fail(e.to_string(), vec![sender]),
            // Altered in transit (by the relay): nobody among the signers to blame.
            _ => fail(e.to_string(), vec![]),
        })?;
        let pkg = round2::Package::<C>::deserialize(&plain).map_err(|e| {
            fail(
                format!("round-2 package of {} does not decode: {e}", s.sender),
                vec![s.sender],
            )
        })?;
        packages.insert(sid, pkg);
    }
    if packages.len() + 1 != setup.participants.len() {
        return Err(fail(
            format!(
                "round 2 incomplete: {} of {} sealed packages",
                packages.len(),
                setup.participants.len() - 1
            ),
            vec![],
        ));
    }
    let id_of: BTreeMap<Identifier<C>, u16> = setup
        .participants
        .keys()
        .filter_map(|n| Identifier::try_from(*n).ok().map(|i| (i, *n)))
        .collect();
    let (key_package, public_key_package) = dkg::part3(&state.secret, &state.others, &packages)
        .map_err(|e| {
            let culprits = e
                .culprits()
                .iter()
                .filter_map(|c| id_of.get(c).copied())
                .collect();
            fail(format!("round 3: {e}"), culprits)
        })?;
    let group_key = public_key_package
        .verifying_key()
        .serialize()
        .map_err(|e| fail(format!("group key: {e}"), vec![]))?;
    let signature = identity.sign(
        &domain::<C>(RESULT_DOMAIN),
        &[&setup.session_id, &state.transcript, &group_key],
    );
    Ok(DkgOutput {
        key_package,
        public_key_package,
        group_key,
        transcript: state.transcript,
        signature,
    })
}

/// Checks a participant's signed DKG result.
pub fn verify_result(
    key: &IdentityPublic,
    session_id: &[u8],
    transcript: &[u8],
    group_key: &[u8],
    signature: &[u8],
) -> bool {
    verify_result_for::<DefaultSuite>(key, session_id, transcript, group_key, signature)
}

/// [`verify_result`] for the DKG of ciphersuite `C`.
pub fn verify_result_for<C: Ciphersuite>(
    key: &IdentityPublic,
    session_id: &[u8],
    transcript: &[u8],
    group_key: &[u8],
    signature: &[u8],
) -> bool {
    key.verify(
        &domain::<C>(RESULT_DOMAIN),
        &[session_id, transcript, group_key],
        signature,
    )
    .is_ok()
}

/// One participant's signed DKG result, as relayed by the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedResult {
    /// Participant.
    pub identifier: u16,
    /// The group key it derived.
    pub group_key: Vec<u8>,
    /// The round-1 transcript hash it saw.
    pub transcript: Vec<u8>,
    /// Its identity signature over (session, transcript, group key).
    pub signature: Vec<u8>,
}

/// The last step before a participant keeps its share: every one of the n participants must
/// have signed the same transcript and group key as ours, so a share is never kept for a group
/// that some participant did not finish. (A relay can still withhold this confirmation from
/// some participants; operators compare fingerprints out of band for that reason.)
pub fn check_confirmations<C: Ciphersuite>(
    setup_participants: &BTreeMap<u16, IdentityPublic>,
    session_id: &[u8],
    ours: &DkgOutput<C>,
    results: &[SignedResult],
) -> Result<(), DkgError> {
    let mut seen = std::collections::BTreeSet::new();
    for r in results {
        let Some(key) = setup_participants.get(&r.identifier) else {
            return Err(fail(
                format!("confirmation from unknown identifier {}", r.identifier),
                vec![],
            ));
        };
        if !seen.insert(r.identifier) {
            return Err(fail(
                format!("two confirmations for identifier {}", r.identifier),
                vec![],
            ));
        }
        if !verify_result_for::<C>(key, session_id, &r.transcript, &r.group_key, &r.signature) {
            return Err(fail(
                format!("the confirmation of {} is not signed by it", r.identifier),
                vec![r.identifier],
            ));
        }
        if r.group_key != ours.group_key || r.transcript != ours.transcript {
            return Err(fail(
                format!(
                    "participant {} finished with a different transcript or group key",
                    r.identifier
                ),
                vec![],
            ));
        }
    }
    if seen.len() != setup_participants.len() {
        return Err(fail(
            format!(
                "only {} of {} participants confirmed",
                seen.len(),
                setup_participants.len()
            ),
            vec![],
        ));
    }
    Ok(())
}

/// Runs the whole DKG (rounds 1 to 3 and the confirmation) among `n` participants held in
/// this process, honestly, with fresh identity keys; returns each participant's output, in
/// identifier order (1..=n). For tests and benchmarks of what a group signs: a cluster's
/// participants are separate processes that never share memory.
pub fn run_in_process<C: Ciphersuite, R: RngCore + CryptoRng>(
    n: u16,
    t: u16,
    rng: &mut R,
) -> Result<Vec<DkgOutput<C>>, DkgError> {
    let ids: Vec<(u16, IdentitySecret)> = (1..=n)
        .map(|i| (i, IdentitySecret::generate(&mut *rng)))
        .collect();
    let participants: BTreeMap<u16, IdentityPublic> =
        ids.iter().map(|(i, k)| (*i, k.public())).collect();
    let session = b"in-process-dkg".to_vec();
    let setup = |me: u16| DkgSetup {
        session_id: session.clone(),
        manifest_hash: [0; 32],
        me,
        threshold: t,
        participants: participants.clone(),
    };
    let mut states = Vec::new();
    let mut broadcast = Vec::new();
    for (i, k) in &ids {
        let (st, signed) = round1_for::<C, R>(setup(*i), k, rng)?;
        states.push(st);
        broadcast.push(signed);
    }
    let mut round2_states = Vec::new();
    let mut mail: BTreeMap<u16, Vec<Sealed>> = BTreeMap::new();
    let mut echoes = Vec::new();
    for (st, (_, k)) in states.into_iter().zip(&ids) {
        let (st, sealed) = round2(st, k, rng, &broadcast)?;
        echoes.push(echo(&st, k));
        round2_states.push(st);
        for s in sealed {
            mail.entry(s.recipient).or_default().push(s);
        }
    }
    let mut outs = Vec::new();
    for (st, (i, k)) in round2_states.into_iter().zip(&ids) {
        outs.push(round3(
            st,
            k,
            mail.get(i).map_or(&[][..], Vec::as_slice),
            &echoes,
        )?);
    }
    let results: Vec<SignedResult> = outs
        .iter()
        .zip(&ids)
        .map(|(o, (i, _))| SignedResult {
            identifier: *i,
            group_key: o.group_key.clone(),
            transcript: o.transcript.to_vec(),
            signature: o.signature.clone(),
        })
        .collect();
    for o in &outs {
        check_confirmations(&participants, &session, o, &results)?;
    }
    Ok(outs)
}
