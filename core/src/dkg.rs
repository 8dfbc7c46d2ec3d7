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
        refresh::refresh_dkg_part2,
        KeyPackage, PublicKeyPackage,
    },
    Ciphersuite, Field, Group, Identifier, Scalar,
};
use frost_secp256k1::Secp256K1Sha256;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use crate::{
    identity::{IdentityPublic, IdentitySecret},
    seal::{self, SealContext, Sealed},
};

mod confirm;
mod echo;
mod in_process;
mod refresh;
pub mod relay;

pub use confirm::{
    check_confirmations, verify_result, verify_result_for, verify_result_of_kind, SignedResult,
};
use echo::check_echoes;
pub use echo::{echo, echo_digest, SignedEcho};
pub use in_process::run_in_process;
use refresh::{check_refresh_commitments, Run};
pub use refresh::{
    refresh_in_process, refresh_round1_for, refresh_round3, refresh_transcript_hash_for,
    sign_refresh_round1_for, Kind,
};

const ROUND1_DOMAIN: &str = "quorate/dkg-round1/v1";
const RESULT_DOMAIN: &str = "quorate/dkg-result/v1";
const ECHO_DOMAIN: &str = "quorate/dkg-echo/v1";
const TRANSCRIPT_DOMAIN: &str = "quorate/dkg-transcript/v1";

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

fn check_identity(setup: &DkgSetup, identity: &IdentitySecret) -> Result<(), DkgError> {
    if setup.participants.get(&setup.me) != Some(&identity.public()) {
        return Err(fail(
            "our identity key is not the one the manifest lists for us",
            vec![],
        ));
    }
    Ok(())
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
            refresh_dkg_part2(state.secret, &others)
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

/// A scalar of `C` from its serialization.
pub(crate) fn scalar<C: Ciphersuite>(bytes: &[u8]) -> Option<Scalar<C>> {
    let repr = <<C::Group as Group>::Field as Field>::Serialization::try_from(bytes).ok()?;
    <<C::Group as Group>::Field as Field>::deserialize(&repr).ok()
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
