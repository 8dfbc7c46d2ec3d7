//! The share refresh (frost `keys::refresh`, the DKG-based variant) run on the DKG's rounds:
//! entered with [`refresh_round1_for`], finished with [`refresh_round3`], under its own domains
//! ([`Kind`]) and bound to the old group it renews.

use std::collections::BTreeMap;

use frost_core::{
    keys::{
        dkg::round1, refresh, CoefficientCommitment, KeyPackage, PublicKeyPackage, SigningShare,
        VerifiableSecretSharingCommitment,
    },
    Ciphersuite, Element, Group, Identifier, Scalar,
};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use super::{
    check_identity, domain, fail, finish, identifiers, in_process::relay_in_process, open_round2,
    scalar, sign_round1_kind, start, transcript_of, DkgError, DkgOutput, DkgSetup, Round1State,
    Round2State, SignedEcho, SignedRound1, ECHO_DOMAIN, RESULT_DOMAIN, ROUND1_DOMAIN,
    TRANSCRIPT_DOMAIN,
};
use crate::{identity::IdentitySecret, seal::Sealed};

const REFRESH_ROUND1_DOMAIN: &str = "quorate/refresh-round1/v1";
const REFRESH_RESULT_DOMAIN: &str = "quorate/refresh-result/v1";
const REFRESH_ECHO_DOMAIN: &str = "quorate/refresh-echo/v1";
const REFRESH_TRANSCRIPT_DOMAIN: &str = "quorate/refresh-transcript/v1";
const OLD_KEY_DOMAIN: &str = "quorate/refresh-old-key/v1";

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
    pub(super) fn round1_domain(self) -> &'static str {
        match self {
            Kind::Dkg => ROUND1_DOMAIN,
            Kind::Refresh => REFRESH_ROUND1_DOMAIN,
        }
    }

    pub(super) fn echo_domain(self) -> &'static str {
        match self {
            Kind::Dkg => ECHO_DOMAIN,
            Kind::Refresh => REFRESH_ECHO_DOMAIN,
        }
    }

    pub(super) fn result_domain(self) -> &'static str {
        match self {
            Kind::Dkg => RESULT_DOMAIN,
            Kind::Refresh => REFRESH_RESULT_DOMAIN,
        }
    }

    pub(super) fn transcript_domain(self) -> &'static str {
        match self {
            Kind::Dkg => TRANSCRIPT_DOMAIN,
            Kind::Refresh => REFRESH_TRANSCRIPT_DOMAIN,
        }
    }
}

/// What a session's states bind beyond its [`DkgSetup`].
#[derive(Clone, Copy)]
pub(super) enum Run {
    Dkg,
    /// The old group a refresh renews: its key epoch and the hash of its public key package.
    Refresh {
        old_epoch: u32,
        old_key: [u8; 32],
    },
}

impl Run {
    pub(super) fn kind(self) -> Kind {
        match self {
            Run::Dkg => Kind::Dkg,
            Run::Refresh { .. } => Kind::Refresh,
        }
    }
}

/// Round 1 of a share refresh of the group of ciphersuite `C` whose public key package (of key
/// epoch `old_epoch`) is `old_pkp`: our commitment to a random polynomial with a zero constant
/// term, signed. `setup.participants` are the old holders that refresh, at least the threshold
/// of them; any old holder not among them is removed. Continue with
/// [`round2`](fn@super::round2), [`echo`](fn@super::echo) and [`refresh_round3`].
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

/// [`sign_round1_for`](super::sign_round1_for) for a share refresh: signed under the refresh's
/// round-1 domain.
pub fn sign_refresh_round1_for<C: Ciphersuite>(
    setup: &DkgSetup,
    identity: &IdentitySecret,
    package: Vec<u8>,
) -> SignedRound1 {
    sign_round1_kind::<C>(Kind::Refresh, setup, identity, package)
}

/// [`transcript_hash_for`](super::transcript_hash_for) of a share refresh of the old group
/// `old_pkp` at key epoch `old_epoch`: under the refresh's domain, and binding that old group.
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

/// Refuses a refresh whose round-1 commitments are not `t − 1` points long, naming every sender
/// of one: frost's `refresh_dkg_part2` would refuse it too, but without saying whose it is.
pub(super) fn check_refresh_commitments<C: Ciphersuite>(
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

/// Runs a whole share refresh (rounds 1 to 3 and the confirmation) in this process, honestly,
/// with fresh identity keys: the holders of `olds` (identifier and old key package each)
/// refresh the group `old_pkp` of key epoch `old_epoch` with threshold `t`; any holder of
/// `old_pkp` not in `olds` is removed. Returns each participant's output in the order of
/// `olds`. For tests, like [`run_in_process`](super::run_in_process).
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
