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
//!
//! The same rounds also run a *share refresh* (frost `keys::refresh`, the DKG-based variant):
//! the participants, a subset of the old share holders of at least the threshold, each deal a
//! sharing of zero, so the group key stays and every share changes; an old holder left out of
//! the refresh is removed, since its old share no longer combines with the new ones. A refresh
//! is entered with [`refresh_round1_for`] and finished with [`refresh_round3`]; [`round2`],
//! [`echo`] and [`check_confirmations`] serve both. Everything a refresh signs or hashes is
//! under its own domains ([`Kind`]), and its transcript binds the old public key package and
//! key epoch, so participants holding different old groups cannot complete together.

use std::collections::BTreeMap;

use frost_core::{
    keys::{
        dkg::{self, round1, round2},
        refresh, CoefficientCommitment, KeyPackage, PublicKeyPackage, SigningShare,
        VerifiableSecretSharingCommitment,
    },
    Ciphersuite, Element, Field, Group, Identifier, Scalar,
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
const TRANSCRIPT_DOMAIN: &str = "quorate/dkg-transcript/v1";
const REFRESH_ROUND1_DOMAIN: &str = "quorate/refresh-round1/v1";
const REFRESH_RESULT_DOMAIN: &str = "quorate/refresh-result/v1";
const REFRESH_ECHO_DOMAIN: &str = "quorate/refresh-echo/v1";
const REFRESH_TRANSCRIPT_DOMAIN: &str = "quorate/refresh-transcript/v1";
const OLD_KEY_DOMAIN: &str = "quorate/refresh-old-key/v1";

/// The ciphersuite a DKG runs for when none is named: the cluster's secp256k1 group.
pub type DefaultSuite = Secp256K1Sha256;

/// `base` for secp256k1 (its original bytes), else `base/<RFC 9591 context string>`.
pub(crate) fn domain<C: Ciphersuite>(base: &str) -> std::borrow::Cow<'_, str> {
    if C::ID == DefaultSuite::ID {
        base.into()
    } else {
        format!("{base}/{}", C::ID).into()
    }
}

/// Which protocol a session's rounds carry out. Each signs and hashes under its own domains,
/// so no message of a DKG is accepted in a refresh, nor the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A fresh DKG (RFC 9591 appendix C): a new group key.
    Dkg,
    /// A share refresh: the same group key, new shares; an old holder left out is removed.
    Refresh,
}

impl Kind {
    fn round1_domain(self) -> &'static str {
        match self {
            Kind::Dkg => ROUND1_DOMAIN,
            Kind::Refresh => REFRESH_ROUND1_DOMAIN,
        }
    }

    fn echo_domain(self) -> &'static str {
        match self {
            Kind::Dkg => ECHO_DOMAIN,
            Kind::Refresh => REFRESH_ECHO_DOMAIN,
        }
    }

    fn result_domain(self) -> &'static str {
        match self {
            Kind::Dkg => RESULT_DOMAIN,
            Kind::Refresh => REFRESH_RESULT_DOMAIN,
        }
    }

    fn transcript_domain(self) -> &'static str {
        match self {
            Kind::Dkg => TRANSCRIPT_DOMAIN,
            Kind::Refresh => REFRESH_TRANSCRIPT_DOMAIN,
        }
    }
}

/// What a session's states bind beyond its [`DkgSetup`].
#[derive(Clone, Copy)]
enum Run {
    Dkg,
    /// The old group a refresh renews: its key epoch and the hash of its public key package.
    Refresh {
        old_epoch: u32,
        old_key: [u8; 32],
    },
}

impl Run {
    fn kind(self) -> Kind {
        match self {
            Run::Dkg => Kind::Dkg,
            Run::Refresh { .. } => Kind::Refresh,
        }
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
    run: Run,
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
    check_identity(&setup, identity)?;
    let (secret, package) = dkg::part1::<C, _>(
        setup.id(setup.me)?,
        setup.max_signers()?,
        setup.threshold,
        &mut *rng,
    )
    .map_err(|e| fail(format!("round 1: {e}"), vec![]))?;
    start(setup, Run::Dkg, secret, package, identity)
}

/// Round 1 of a share refresh of the group of ciphersuite `C` whose public key package (of key
/// epoch `old_epoch`) is `old_pkp`: our commitment to a random polynomial with a zero constant
/// term, signed. `setup.participants` are the old holders that refresh, at least the threshold
/// of them; any old holder not among them is removed. Continue with [`round2`], [`echo`] and
/// [`refresh_round3`].
pub fn refresh_round1_for<C: Ciphersuite, R: RngCore + CryptoRng>(
    setup: DkgSetup,
    old_epoch: u32,
    old_pkp: &PublicKeyPackage<C>,
    identity: &IdentitySecret,
    rng: &mut R,
) -> Result<(Round1State<C>, SignedRound1), DkgError> {
    check_identity(&setup, identity)?;
    check_refresh_setup(&setup, old_pkp)?;
    let run = Run::Refresh {
        old_epoch,
        old_key: old_key_hash(old_pkp)?,
    };
    let (secret, package) = refresh::refresh_dkg_part1::<C, _>(
        setup.id(setup.me)?,
        setup.max_signers()?,
        setup.threshold,
        &mut *rng,
    )
    .map_err(|e| fail(format!("round 1: {e}"), vec![]))?;
    start(setup, run, secret, package, identity)
}

fn check_identity(setup: &DkgSetup, identity: &IdentitySecret) -> Result<(), DkgError> {
    if setup.participants.get(&setup.me) != Some(&identity.public()) {
        return Err(fail(
            "our identity key is not the one the manifest lists for us",
            vec![],
        ));
    }
    Ok(())
}

/// A refresh renews the old group among some of its holders; it cannot change the threshold
/// or bring in anyone new (frost's refresh keeps `min_signers`; new members need a new DKG).
fn check_refresh_setup<C: Ciphersuite>(
    setup: &DkgSetup,
    old_pkp: &PublicKeyPackage<C>,
) -> Result<(), DkgError> {
    let Some(old_t) = old_pkp.min_signers() else {
        return Err(fail(
            "the old public key package does not record its threshold",
            vec![],
        ));
    };
    if old_t != setup.threshold {
        return Err(fail(
            format!(
                "a refresh keeps the threshold ({old_t}, not {}); a new threshold needs a new DKG and a vault key rotation",
                setup.threshold
            ),
            vec![],
        ));
    }
    if setup.participants.len() < usize::from(old_t) {
        return Err(fail(
            format!(
                "a refresh needs at least the threshold of {old_t} participants; {} named",
                setup.participants.len()
            ),
            vec![],
        ));
    }
    let mut strangers = Vec::new();
    for n in setup.participants.keys() {
        if !old_pkp.verifying_shares().contains_key(&setup.id::<C>(*n)?) {
            strangers.push(*n);
        }
    }
    if !strangers.is_empty() {
        return Err(fail(
            format!("participants {strangers:?} hold no share of the old group; a refresh cannot add signers"),
            vec![],
        ));
    }
    Ok(())
}

/// The hash of the old public key package a refresh renews, as its transcript binds it.
fn old_key_hash<C: Ciphersuite>(old_pkp: &PublicKeyPackage<C>) -> Result<[u8; 32], DkgError> {
    let bytes = old_pkp
        .serialize()
        .map_err(|e| fail(format!("old public key package: {e}"), vec![]))?;
    let mut h = Sha256::new();
    h.update(domain::<C>(OLD_KEY_DOMAIN).as_bytes());
    h.update((bytes.len() as u32).to_be_bytes());
    h.update(&bytes);
    Ok(h.finalize().into())
}

/// Signs our round-1 package and keeps the round-1 secret in the state.
fn start<C: Ciphersuite>(
    setup: DkgSetup,
    run: Run,
    secret: round1::SecretPackage<C>,
    package: round1::Package<C>,
    identity: &IdentitySecret,
) -> Result<(Round1State<C>, SignedRound1), DkgError> {
    let bytes = package
        .serialize()
        .map_err(|e| fail(format!("round 1: {e}"), vec![]))?;
    let signed = sign_round1_kind::<C>(run.kind(), &setup, identity, bytes);
    Ok((
        Round1State {
            setup,
            run,
            secret,
            my_package: signed.package.clone(),
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
    sign_round1_kind::<C>(Kind::Dkg, setup, identity, package)
}

/// [`sign_round1_for`] for a share refresh: signed under the refresh's round-1 domain.
pub fn sign_refresh_round1_for<C: Ciphersuite>(
    setup: &DkgSetup,
    identity: &IdentitySecret,
    package: Vec<u8>,
) -> SignedRound1 {
    sign_round1_kind::<C>(Kind::Refresh, setup, identity, package)
}

fn sign_round1_kind<C: Ciphersuite>(
    kind: Kind,
    setup: &DkgSetup,
    identity: &IdentitySecret,
    package: Vec<u8>,
) -> SignedRound1 {
    let me = setup.me.to_be_bytes();
    let signature = identity.sign(
        &domain::<C>(kind.round1_domain()),
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
    transcript_of::<C>(setup, Run::Dkg, received)
}

/// [`transcript_hash_for`] of a share refresh of the old group `old_pkp` at key epoch
/// `old_epoch`: under the refresh's domain, and binding that old group.
pub fn refresh_transcript_hash_for<C: Ciphersuite>(
    setup: &DkgSetup,
    old_epoch: u32,
    old_pkp: &PublicKeyPackage<C>,
    received: &BTreeMap<u16, Vec<u8>>,
) -> Result<[u8; 32], DkgError> {
    let old_key = old_key_hash(old_pkp)?;
    Ok(transcript_of::<C>(
        setup,
        Run::Refresh { old_epoch, old_key },
        received,
    ))
}

fn transcript_of<C: Ciphersuite>(
    setup: &DkgSetup,
    run: Run,
    received: &BTreeMap<u16, Vec<u8>>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain::<C>(run.kind().transcript_domain()).as_bytes());
    h.update((setup.session_id.len() as u32).to_be_bytes());
    h.update(&setup.session_id);
    h.update(setup.manifest_hash);
    h.update(setup.threshold.to_be_bytes());
    if let Run::Refresh { old_epoch, old_key } = run {
        h.update(old_epoch.to_be_bytes());
        h.update(old_key);
    }
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
    run: Run,
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
        signature: identity.sign(
            &domain::<C>(state.run.kind().echo_domain()),
            &echo_parts(setup, &me, &digest),
        ),
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
    let kind = state.run.kind();
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
                    &domain::<C>(kind.round1_domain()),
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
                &domain::<C>(kind.echo_domain()),
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
    let run = state.run;
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
            &domain::<C>(run.kind().round1_domain()),
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
    let transcript = transcript_of::<C>(&setup, run, &by_id);
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
    let (secret, packages) = match run {
        Run::Dkg => dkg::part2(state.secret, &others).map_err(|e| {
            let culprits = e
                .culprits()
                .iter()
                .filter_map(|c| id_of.get(c).copied())
                .collect();
            fail(format!("round 2: {e}"), culprits)
        })?,
        Run::Refresh { .. } => {
            check_refresh_commitments(setup.threshold, &others, &id_of)?;
            refresh::refresh_dkg_part2(state.secret, &others)
                .map_err(|e| fail(format!("round 2: {e}"), vec![]))?
        }
    };
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
            run,
            secret,
            others,
            transcript,
            accepted,
        },
        sealed,
    ))
}

/// Refuses a refresh whose round-1 commitments are not `t − 1` points long, naming every sender
/// of one: frost's `refresh_dkg_part2` would refuse it too, but without saying whose it is.
fn check_refresh_commitments<C: Ciphersuite>(
    threshold: u16,
    others: &BTreeMap<Identifier<C>, round1::Package<C>>,
    id_of: &BTreeMap<Identifier<C>, u16>,
) -> Result<(), DkgError> {
    let want = usize::from(threshold).saturating_sub(1);
    let culprits: Vec<u16> = others
        .iter()
        .filter(|(_, pkg)| commitment_points(pkg.commitment()).map(|c| c.len()) != Some(want))
        .filter_map(|(id, _)| id_of.get(id).copied())
        .collect();
    if culprits.is_empty() {
        Ok(())
    } else {
        Err(fail(
            format!("round 2: refresh commitments must hold {want} points (the constant term is left out)"),
            culprits,
        ))
    }
}

/// The points of a commitment, or `None` if one does not decode (deserialised packages hold
/// no identity point, so that does not happen for a package that came off the wire).
fn commitment_points<C: Ciphersuite>(
    commitment: &VerifiableSecretSharingCommitment<C>,
) -> Option<Vec<Element<C>>> {
    commitment
        .serialize()
        .ok()?
        .iter()
        .map(|b| {
            CoefficientCommitment::<C>::deserialize(b)
                .ok()
                .map(|c| c.value())
        })
        .collect()
}

/// A scalar of `C` from its serialization.
pub(crate) fn scalar<C: Ciphersuite>(bytes: &[u8]) -> Option<Scalar<C>> {
    let repr = <<C::Group as Group>::Field as Field>::Serialization::try_from(bytes).ok()?;
    <<C::Group as Group>::Field as Field>::deserialize(&repr).ok()
}

/// Whether a refresh share `f_ℓ(i)` sent to participant `i` lies on the polynomial its sender
/// committed to (RFC 9591 appendix C, round 2 step 2, with a zero constant term):
/// `g·f_ℓ(i) = Σ_{k=1}^{t−1} φ_ℓk·i^k`. frost's `refresh_dkg_shares` checks the same but does
/// not say whose share failed; this lets round 3 name the sender.
fn refresh_share_verifies<C: Ciphersuite>(
    i: &Scalar<C>,
    share: &SigningShare<C>,
    commitment: &VerifiableSecretSharingCommitment<C>,
) -> bool {
    let bytes = zeroize::Zeroizing::new(share.serialize());
    let (Some(s), Some(points)) = (scalar::<C>(&bytes), commitment_points(commitment)) else {
        return false;
    };
    // Horner: ((φ_{t−1}·i + φ_{t−2})·i + … + φ_1)·i.
    let mut rhs = <C::Group as Group>::identity();
    for phi in points.iter().rev() {
        rhs = (rhs + *phi) * *i;
    }
    <C::Group as Group>::generator() * s == rhs
}

/// The outcome of a finished DKG or refresh for one participant.
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
    kind: Kind,
}

impl<C: Ciphersuite> DkgOutput<C> {
    /// Which protocol produced it: its result is signed under that protocol's domain.
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

impl<C: Ciphersuite> std::fmt::Debug for DkgOutput<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkgOutput")
            .field("kind", &self.kind)
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
    if !matches!(state.run, Run::Dkg) {
        return Err(fail(
            "this session is a refresh: it finishes with refresh_round3",
            vec![],
        ));
    }
    let packages = open_round2(&state, identity, sealed, echoes)?;
    let id_of = identifiers(&state.setup)?;
    let (key_package, public_key_package) = dkg::part3(&state.secret, &state.others, &packages)
        .map_err(|e| {
            let culprits = e
                .culprits()
                .iter()
                .filter_map(|c| id_of.get(c).copied())
                .collect();
            fail(format!("round 3: {e}"), culprits)
        })?;
    finish(state, identity, key_package, public_key_package)
}

/// Round 3 of a share refresh: open the refresh shares sealed to us, check each against its
/// sender's commitment (naming any sender whose share does not match), and add them to our old
/// share. `old_kp` is our key package in the old group and `old_pkp` the old group's public key
/// package, the one round 1 was bound to. The group key stays; every share changes.
pub fn refresh_round3<C: Ciphersuite>(
    state: Round2State<C>,
    identity: &IdentitySecret,
    sealed: &[Sealed],
    echoes: &[SignedEcho],
    old_kp: &KeyPackage<C>,
    old_pkp: &PublicKeyPackage<C>,
) -> Result<DkgOutput<C>, DkgError> {
    let Run::Refresh { old_key, .. } = state.run else {
        return Err(fail(
            "this session is a fresh DKG: it finishes with round3",
            vec![],
        ));
    };
    if old_key_hash(old_pkp)? != old_key {
        return Err(fail(
            "the old public key package is not the one round 1 of this refresh was bound to",
            vec![],
        ));
    }
    let me = state.setup.id::<C>(state.setup.me)?;
    if *old_kp.identifier() != me
        || old_kp.verifying_key() != old_pkp.verifying_key()
        || old_pkp.verifying_shares().get(&me) != Some(old_kp.verifying_share())
    {
        return Err(fail(
            "our old key package is not our share of the old group",
            vec![],
        ));
    }
    let packages = open_round2(&state, identity, sealed, echoes)?;
    let id_of = identifiers(&state.setup)?;
    let i = scalar::<C>(&me.serialize())
        .ok_or_else(|| fail("our identifier is not a scalar", vec![]))?;
    let culprits: Vec<u16> = packages
        .iter()
        .filter(|(sender, pkg)| {
            !state.others.get(sender).is_some_and(|r1| {
                refresh_share_verifies::<C>(&i, pkg.signing_share(), r1.commitment())
            })
        })
        .filter_map(|(sender, _)| id_of.get(sender).copied())
        .collect();
    if !culprits.is_empty() {
        return Err(fail(
            "round 3: refresh shares that do not match their senders' round-1 commitments",
            culprits,
        ));
    }
    let (key_package, public_key_package) = refresh::refresh_dkg_shares(
        &state.secret,
        &state.others,
        &packages,
        old_pkp.clone(),
        old_kp.clone(),
    )
    .map_err(|e| fail(format!("round 3: {e}"), vec![]))?;
    // Our new share must be the one the new public package lists for us; it is not if our old
    // signing share did not match the old package's record of it.
    if public_key_package.verifying_shares().get(&me) != Some(key_package.verifying_share()) {
        return Err(fail(
            "our refreshed share does not match the group's record of it (is our old key package corrupt?)",
            vec![],
        ));
    }
    finish(state, identity, key_package, public_key_package)
}

fn identifiers<C: Ciphersuite>(setup: &DkgSetup) -> Result<BTreeMap<Identifier<C>, u16>, DkgError> {
    setup
        .participants
        .keys()
        .map(|n| Ok((setup.id(*n)?, *n)))
        .collect()
}

/// Checks the echoes, then opens the round-2 package every other participant sealed to us.
fn open_round2<C: Ciphersuite>(
    state: &Round2State<C>,
    identity: &IdentitySecret,
    sealed: &[Sealed],
    echoes: &[SignedEcho],
) -> Result<BTreeMap<Identifier<C>, round2::Package<C>>, DkgError> {
    // Everyone must have accepted the same round-1 packages before a sealed share that does
    // not open can be blamed on its sender.
    check_echoes(state, echoes)?;
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
    Ok(packages)
}

/// Signs our result (session, transcript, group key) under the run's result domain.
fn finish<C: Ciphersuite>(
    state: Round2State<C>,
    identity: &IdentitySecret,
    key_package: KeyPackage<C>,
    public_key_package: PublicKeyPackage<C>,
) -> Result<DkgOutput<C>, DkgError> {
    let kind = state.run.kind();
    let group_key = public_key_package
        .verifying_key()
        .serialize()
        .map_err(|e| fail(format!("group key: {e}"), vec![]))?;
    let signature = identity.sign(
        &domain::<C>(kind.result_domain()),
        &[&state.setup.session_id, &state.transcript, &group_key],
    );
    Ok(DkgOutput {
        key_package,
        public_key_package,
        group_key,
        transcript: state.transcript,
        signature,
        kind,
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
    verify_result_of_kind::<C>(Kind::Dkg, key, session_id, transcript, group_key, signature)
}

/// [`verify_result_for`] for a run of either kind: a refresh signs its result under its own
/// domain, so a DKG result never passes for a refresh result, nor the other way round.
pub fn verify_result_of_kind<C: Ciphersuite>(
    kind: Kind,
    key: &IdentityPublic,
    session_id: &[u8],
    transcript: &[u8],
    group_key: &[u8],
    signature: &[u8],
) -> bool {
    key.verify(
        &domain::<C>(kind.result_domain()),
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
/// some participants; operators compare fingerprints out of band for that reason.) For a
/// refresh, `setup_participants` are the refresh's participants, and the results must be
/// signed as refresh results; the same transcript (which binds the old group) and group key
/// imply the same new public key package.
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
        if !verify_result_of_kind::<C>(
            ours.kind,
            key,
            session_id,
            &r.transcript,
            &r.group_key,
            &r.signature,
        ) {
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
    relay_in_process(
        &ids,
        t,
        b"in-process-dkg",
        rng,
        |setup, k, rng| round1_for::<C, R>(setup, k, rng),
        |_, st, k, sealed, echoes| round3(st, k, sealed, echoes),
    )
}

/// Runs a whole share refresh (rounds 1 to 3 and the confirmation) in this process, honestly,
/// with fresh identity keys: the holders of `olds` (identifier and old key package each)
/// refresh the group `old_pkp` of key epoch `old_epoch` with threshold `t`; any holder of
/// `old_pkp` not in `olds` is removed. Returns each participant's output in the order of
/// `olds`. For tests, like [`run_in_process`].
pub fn refresh_in_process<C: Ciphersuite, R: RngCore + CryptoRng>(
    olds: &[(u16, KeyPackage<C>)],
    old_pkp: &PublicKeyPackage<C>,
    t: u16,
    old_epoch: u32,
    rng: &mut R,
) -> Result<Vec<DkgOutput<C>>, DkgError> {
    let ids: Vec<(u16, IdentitySecret)> = olds
        .iter()
        .map(|(i, _)| (*i, IdentitySecret::generate(&mut *rng)))
        .collect();
    relay_in_process(
        &ids,
        t,
        b"in-process-refresh",
        rng,
        |setup, k, rng| refresh_round1_for::<C, R>(setup, old_epoch, old_pkp, k, rng),
        |idx, st, k, sealed, echoes| refresh_round3(st, k, sealed, echoes, &olds[idx].1, old_pkp),
    )
}

/// The relay of [`run_in_process`] and [`refresh_in_process`]: `start` is round 1 and `finish`
/// round 3 of participant `ids[idx]`; then every output is confirmed by every participant.
fn relay_in_process<C: Ciphersuite, R: RngCore + CryptoRng>(
    ids: &[(u16, IdentitySecret)],
    t: u16,
    session: &[u8],
    rng: &mut R,
    mut start: impl FnMut(
        DkgSetup,
        &IdentitySecret,
        &mut R,
    ) -> Result<(Round1State<C>, SignedRound1), DkgError>,
    mut finish: impl FnMut(
        usize,
        Round2State<C>,
        &IdentitySecret,
        &[Sealed],
        &[SignedEcho],
    ) -> Result<DkgOutput<C>, DkgError>,
) -> Result<Vec<DkgOutput<C>>, DkgError> {
    let participants: BTreeMap<u16, IdentityPublic> =
        ids.iter().map(|(i, k)| (*i, k.public())).collect();
    if participants.len() != ids.len() {
        return Err(fail("an identifier is listed twice", vec![]));
    }
    let setup = |me: u16| DkgSetup {
        session_id: session.to_vec(),
        manifest_hash: [0; 32],
        me,
        threshold: t,
        participants: participants.clone(),
    };
    let mut states = Vec::new();
    let mut broadcast = Vec::new();
    for (i, k) in ids {
        let (st, signed) = start(setup(*i), k, rng)?;
        states.push(st);
        broadcast.push(signed);
    }
    let mut round2_states = Vec::new();
    let mut mail: BTreeMap<u16, Vec<Sealed>> = BTreeMap::new();
    let mut echoes = Vec::new();
    for (st, (_, k)) in states.into_iter().zip(ids) {
        let (st, sealed) = round2(st, k, rng, &broadcast)?;
        echoes.push(echo(&st, k));
        round2_states.push(st);
        for s in sealed {
            mail.entry(s.recipient).or_default().push(s);
        }
    }
    let mut outs = Vec::new();
    for (idx, (st, (i, k))) in round2_states.into_iter().zip(ids).enumerate() {
        let sealed = mail.get(i).map_or(&[][..], Vec::as_slice);
        outs.push(finish(idx, st, k, sealed, &echoes)?);
    }
    let results: Vec<SignedResult> = outs
        .iter()
        .zip(ids)
        .map(|(o, (i, _))| SignedResult {
            identifier: *i,
            group_key: o.group_key.clone(),
            transcript: o.transcript.to_vec(),
            signature: o.signature.clone(),
        })
        .collect();
    for o in &outs {
        check_confirmations(&participants, session, o, &results)?;
    }
    Ok(outs)
}
