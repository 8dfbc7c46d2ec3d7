//! Repairing a lost key share, or enrolling a new signer, without changing the group key:
//! the repairable threshold scheme of frost `keys::repairable` (eprint 2017/1155) relayed
//! through an untrusted coordinator, with commitments so that a misbehaving helper is named.
//!
//! t helpers, each holding a share of the current key epoch, rebuild the share of `target`
//! (a signer whose data was lost, same identifier; or a new signer the manifest lists, new
//! identifier). In the library's protocol helper i splits ζ_i·s_i (its Lagrange-weighted share
//! at the target's point) into random deltas δ_ij, one per helper j; helper j adds what it
//! receives into σ_j and sends it to the target, whose share is Σ_j σ_j. The library checks
//! none of this, so here:
//!
//! - helper i publishes a signed **offer**: the public key package it holds, the epoch, and a
//!   commitment D_ij = δ_ij·G to every delta. Anyone checks Σ_j D_ij = ζ_i·Y_i against i's
//!   verifying share Y_i: deltas that do not add up to i's share name i;
//! - each delta travels sealed end to end ([`crate::seal`]) to its helper, bound to the offer
//!   that commits to it; a delta whose commitment differs names its sender;
//! - helper j's σ_j travels sealed to the target, bound to the offers j accepted (its echo); the
//!   target checks σ_j·G = Σ_i D_ij and names j if not, and names i if two offers carry i's
//!   signature (equivocation);
//! - the target keeps its share only when it matches the verifying share the group's public
//!   key package holds for it (for a new signer, the one interpolated from the helpers'
//!   verifying shares). The library's last step does not check this.
//!
//! Commitments make the scheme's privacy computational (as Feldman commitments do for the DKG):
//! the relay sees points, never a scalar. Nothing is kept by anyone on abort: helpers hold
//! their deltas in memory for one session, the target stores only a share that checked.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::{
    keys::{
        repairable::{self, Delta},
        KeyPackage, PublicKeyPackage, VerifyingShare,
    },
    Ciphersuite, Field, Group, Identifier,
};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{
    dkg::{domain, scalar},
    identity::{IdentityPublic, IdentitySecret},
    seal::{self, SealContext, Sealed},
};

mod target;

pub use target::{target_finish, verify_result, RepairOutput};

const OFFER_DOMAIN: &str = "quorate/repair-offer/v1";

type Scalar<C> = <<<C as Ciphersuite>::Group as Group>::Field as Field>::Scalar;
type Element<C> = <<C as Ciphersuite>::Group as Group>::Element;

/// A repair failure; `culprits` are the identifiers shown to have misbehaved (empty when the
/// fault cannot be pinned on a participant, e.g. the relay altered a message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("repair aborted: {reason}{}", if culprits.is_empty() { String::new() } else { format!(" (culprits: {culprits:?})") })]
pub struct RepairError {
    /// What went wrong.
    pub reason: String,
    /// Who is to blame.
    pub culprits: Vec<u16>,
}

fn fail(reason: impl Into<String>, culprits: Vec<u16>) -> RepairError {
    RepairError {
        reason: reason.into(),
        culprits,
    }
}

/// Everything fixed before a repair starts; every participant builds it from its own pinned
/// manifest and the coordinator's request.
#[derive(Debug, Clone)]
pub struct RepairSetup {
    /// Session id chosen by the coordinator (single use).
    pub session_id: Vec<u8>,
    /// Hash of the cluster manifest every participant pinned.
    pub manifest_hash: [u8; 32],
    /// The manifest's threshold t.
    pub threshold: u16,
    /// Whose share is rebuilt.
    pub target: u16,
    /// The helpers: at least t holders of the current epoch, not the target.
    pub helpers: BTreeSet<u16>,
    /// Identity keys from the manifest, at least of the helpers and the target.
    pub participants: BTreeMap<u16, IdentityPublic>,
}

impl RepairSetup {
    /// Checks the shape every participant agrees on before doing anything.
    pub fn check(&self) -> Result<(), RepairError> {
        if self.session_id.len() != 16 {
            return Err(fail("session id must be 16 bytes", vec![]));
        }
        if self.helpers.contains(&self.target) {
            return Err(fail("the target cannot help repair its own share", vec![]));
        }
        if self.helpers.len() < usize::from(self.threshold) {
            return Err(fail(
                format!(
                    "{} helpers named; a repair needs at least the threshold, {}",
                    self.helpers.len(),
                    self.threshold
                ),
                vec![],
            ));
        }
        for id in self.helpers.iter().chain([&self.target]) {
            if !self.participants.contains_key(id) {
                return Err(fail(
                    format!("identifier {id} is not in the manifest"),
                    vec![],
                ));
            }
        }
        Ok(())
    }

    fn helper_ids<C: Ciphersuite>(&self) -> Result<Vec<Identifier<C>>, RepairError> {
        self.helpers.iter().map(|h| frost_id::<C>(*h)).collect()
    }

    fn key(&self, id: u16) -> Result<&IdentityPublic, RepairError> {
        self.participants
            .get(&id)
            .ok_or_else(|| fail(format!("identifier {id} is not in the manifest"), vec![]))
    }
}

fn frost_id<C: Ciphersuite>(n: u16) -> Result<Identifier<C>, RepairError> {
    Identifier::try_from(n).map_err(|_| fail(format!("invalid identifier {n}"), vec![]))
}

/// The scalar of identifier `n`: n·1, as frost's `Identifier::try_from(u16)` makes it.
fn id_scalar<C: Ciphersuite>(n: u16) -> Scalar<C> {
    let one = <<C::Group as Group>::Field>::one();
    let mut acc = <<C::Group as Group>::Field>::zero();
    for bit in (0..16).rev() {
        acc = acc + acc;
        if n >> bit & 1 == 1 {
            acc = acc + one;
        }
    }
    acc
}

/// ζ_i: the Lagrange coefficient of `i` over `set`, evaluated at `x`.
fn lagrange<C: Ciphersuite>(set: &BTreeSet<u16>, i: u16, x: u16) -> Result<Scalar<C>, RepairError> {
    let mut num = <<C::Group as Group>::Field>::one();
    let mut den = <<C::Group as Group>::Field>::one();
    for &k in set {
        if k == i {
            continue;
        }
        num = num * (id_scalar::<C>(x) - id_scalar::<C>(k));
        den = den * (id_scalar::<C>(i) - id_scalar::<C>(k));
    }
    let inv = <<C::Group as Group>::Field>::invert(&den)
        .map_err(|_| fail("duplicate identifiers in the helper set", vec![]))?;
    Ok(num * inv)
}

fn element_from<C: Ciphersuite>(bytes: &[u8]) -> Option<Element<C>> {
    let ser = <C::Group as Group>::Serialization::try_from(bytes).ok()?;
    <C::Group>::deserialize(&ser).ok()
}

fn element_bytes<C: Ciphersuite>(e: &Element<C>) -> Result<Vec<u8>, RepairError> {
    <C::Group>::serialize(e)
        .map(|s| s.as_ref().to_vec())
        .map_err(|_| fail("a commitment is the identity point", vec![]))
}

fn verifying_element<C: Ciphersuite>(v: &VerifyingShare<C>) -> Result<Element<C>, RepairError> {
    let bytes = v
        .serialize()
        .map_err(|e| fail(format!("verifying share: {e}"), vec![]))?;
    element_from::<C>(&bytes).ok_or_else(|| fail("verifying share does not decode", vec![]))
}

/// The verifying share the group's public key package implies for `target`: its own entry, or
/// for a new identifier the interpolation of the verifying shares of `basis` (t holders).
pub fn expected_verifying_share<C: Ciphersuite>(
    pkp: &PublicKeyPackage<C>,
    basis: &BTreeSet<u16>,
    target: u16,
) -> Result<VerifyingShare<C>, RepairError> {
    if let Some(v) = pkp.verifying_shares().get(&frost_id::<C>(target)?) {
        return Ok(*v);
    }
    let mut acc = <C::Group>::identity();
    for &i in basis {
        let y = pkp
            .verifying_shares()
            .get(&frost_id::<C>(i)?)
            .ok_or_else(|| fail(format!("identifier {i} holds no share of this key"), vec![]))?;
        acc = acc + verifying_element::<C>(y)? * lagrange::<C>(basis, i, target)?;
    }
    VerifyingShare::deserialize(&element_bytes::<C>(&acc)?)
        .map_err(|e| fail(format!("verifying share: {e}"), vec![]))
}

/// The public key package with a new holder `target` added (its verifying share interpolated
/// from `basis`): what every node adopts once a new signer is enrolled. The group key, the
/// threshold and every other share are unchanged.
pub fn with_new_holder<C: Ciphersuite>(
    pkp: &PublicKeyPackage<C>,
    basis: &BTreeSet<u16>,
    target: u16,
) -> Result<PublicKeyPackage<C>, RepairError> {
    let v = expected_verifying_share(pkp, basis, target)?;
    let mut shares = pkp.verifying_shares().clone();
    shares.insert(frost_id::<C>(target)?, v);
    Ok(PublicKeyPackage::new(
        shares,
        *pkp.verifying_key(),
        pkp.min_signers(),
    ))
}

/// Helper i's signed offer: the public key package and epoch it helps with, and a commitment
/// to each delta it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The helper.
    pub from: u16,
    /// Key epoch of the helper's share.
    pub epoch: u32,
    /// Serialised public key package the helper holds.
    pub public_key_package: Vec<u8>,
    /// D_ij = δ_ij·G for every helper j, serialised points.
    pub commitments: BTreeMap<u16, Vec<u8>>,
    /// The helper's identity signature over [`offer_digest`].
    pub signature: Vec<u8>,
}

/// What an offer's signature covers: the session, manifest, target, helper set and everything
/// in the offer.
pub fn offer_digest<C: Ciphersuite>(setup: &RepairSetup, offer: &Offer) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain::<C>("quorate/repair-offer-digest/v1").as_bytes());
    h.update((setup.session_id.len() as u32).to_be_bytes());
    h.update(&setup.session_id);
    h.update(setup.manifest_hash);
    h.update(setup.threshold.to_be_bytes());
    h.update(setup.target.to_be_bytes());
    h.update((setup.helpers.len() as u32).to_be_bytes());
    for x in &setup.helpers {
        h.update(x.to_be_bytes());
    }
    h.update(offer.from.to_be_bytes());
    h.update(offer.epoch.to_be_bytes());
    h.update(Sha256::digest(&offer.public_key_package));
    h.update((offer.commitments.len() as u32).to_be_bytes());
    for (j, d) in &offer.commitments {
        h.update(j.to_be_bytes());
        h.update((d.len() as u32).to_be_bytes());
        h.update(d);
    }
    h.finalize().into()
}

fn offer_signed<C: Ciphersuite>(setup: &RepairSetup, offer: &Offer) -> bool {
    setup.participants.get(&offer.from).is_some_and(|k| {
        k.verify(
            &domain::<C>(OFFER_DOMAIN),
            &[&offer_digest::<C>(setup, offer)],
            &offer.signature,
        )
        .is_ok()
    })
}

/// The hash a helper's σ is sealed under: every offer it accepted, signatures included, so a
/// relay cannot swap the echo without breaking the seal's signature.
fn echo_digest<C: Ciphersuite>(setup: &RepairSetup, offers: &BTreeMap<u16, Offer>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain::<C>("quorate/repair-echo/v1").as_bytes());
    for o in offers.values() {
        h.update(offer_digest::<C>(setup, o));
        h.update((o.signature.len() as u32).to_be_bytes());
        h.update(&o.signature);
    }
    h.finalize().into()
}

/// A helper's state between its offer and its contribution (holds its own delta; memory only).
pub struct HelperState<C: Ciphersuite> {
    setup: RepairSetup,
    me: u16,
    own_offer: Offer,
    own_delta: Zeroizing<Vec<u8>>,
    pkp: PublicKeyPackage<C>,
}

impl<C: Ciphersuite> HelperState<C> {
    /// The session this helper made its offer in (what its round 2 seals to).
    pub fn setup(&self) -> &RepairSetup {
        &self.setup
    }
}

/// The outcome of round 1 for a helper: its offer (to every helper and the target) and its
/// deltas sealed to each other helper.
pub struct HelperRound1<C: Ciphersuite> {
    /// Kept by the helper for round 2.
    pub state: HelperState<C>,
    /// Broadcast.
    pub offer: Offer,
    /// One per other helper.
    pub sealed: Vec<Sealed>,
}

/// Round 1 for helper `identity` holding `key` (and `pkp`, of key epoch `epoch`).
pub fn helper_offer<C: Ciphersuite, R: RngCore + CryptoRng>(
    setup: RepairSetup,
    identity: &IdentitySecret,
    key: &KeyPackage<C>,
    pkp: &PublicKeyPackage<C>,
    epoch: u32,
    rng: &mut R,
) -> Result<HelperRound1<C>, RepairError> {
    setup.check()?;
    let me = setup
        .helpers
        .iter()
        .copied()
        .find(|h| frost_id::<C>(*h).ok().as_ref() == Some(key.identifier()))
        .ok_or_else(|| fail("this signer is not among the helpers", vec![]))?;
    if setup.key(me)? != &identity.public() {
        return Err(fail(
            "our identity key is not the one the manifest lists for us",
            vec![],
        ));
    }
    if *key.min_signers() != setup.threshold || pkp.min_signers() != Some(setup.threshold) {
        return Err(fail(
            "this share's threshold differs from the manifest's",
            vec![],
        ));
    }
    for h in &setup.helpers {
        if !pkp.verifying_shares().contains_key(&frost_id::<C>(*h)?) {
            return Err(fail(
                format!("helper {h} holds no share of this key"),
                vec![],
            ));
        }
    }
    let deltas = repairable::repair_share_part1(
        &setup.helper_ids::<C>()?,
        key,
        rng,
        frost_id::<C>(setup.target)?,
    )
    .map_err(|e| fail(format!("repair round 1: {e}"), vec![]))?;
    let mut by_helper: BTreeMap<u16, Zeroizing<Vec<u8>>> = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for &h in &setup.helpers {
        let d = deltas
            .get(&frost_id::<C>(h)?)
            .ok_or_else(|| fail("the library made no delta for a helper", vec![]))?;
        let bytes = Zeroizing::new(d.serialize());
        let value = scalar::<C>(&bytes).ok_or_else(|| fail("delta encoding", vec![]))?;
        commitments.insert(h, element_bytes::<C>(&(<C::Group>::generator() * value))?);
        by_helper.insert(h, bytes);
    }
    let pkp_bytes = pkp
        .serialize()
        .map_err(|e| fail(format!("public key package: {e}"), vec![]))?;
    let mut offer = Offer {
        from: me,
        epoch,
        public_key_package: pkp_bytes,
        commitments,
        signature: Vec::new(),
    };
    let digest = offer_digest::<C>(&setup, &offer);
    offer.signature = identity.sign(&domain::<C>(OFFER_DOMAIN), &[&digest]);
    let mut sealed = Vec::with_capacity(setup.helpers.len() - 1);
    for (&h, delta) in &by_helper {
        if h == me {
            continue;
        }
        let ctx = SealContext {
            session_id: &setup.session_id,
            transcript: &digest,
            sender: me,
            recipient: h,
        };
        sealed.push(seal::seal(rng, identity, setup.key(h)?, &ctx, delta));
    }
    let own_delta = by_helper
        .remove(&me)
        .ok_or_else(|| fail("the library made no delta for us", vec![]))?;
    Ok(HelperRound1 {
        state: HelperState {
            setup,
            me,
            own_offer: offer.clone(),
            own_delta,
            pkp: pkp.clone(),
        },
        offer,
        sealed,
    })
}

/// Checks the relayed offers: one per helper, each signed by its helper, all for one key, each
/// committing to deltas that add up to its helper's Lagrange-weighted share. Returns them by
/// helper, and the public key package they name.
fn check_offers<C: Ciphersuite>(
    setup: &RepairSetup,
    offers: &[Offer],
) -> Result<(BTreeMap<u16, Offer>, PublicKeyPackage<C>), RepairError> {
    let mut by_from = BTreeMap::new();
    for o in offers {
        if !setup.helpers.contains(&o.from) {
            return Err(fail(
                format!("an offer from {}, who is not a helper", o.from),
                vec![],
            ));
        }
        if !offer_signed::<C>(setup, o) {
            return Err(fail(
                format!(
                    "the offer of {} is not signed by its identity key (altered in transit?)",
                    o.from
                ),
                vec![],
            ));
        }
        if by_from.insert(o.from, o.clone()).is_some() {
            return Err(fail(format!("two offers from {}", o.from), vec![]));
        }
    }
    if by_from.len() != setup.helpers.len() {
        return Err(fail(
            format!(
                "{} of {} helpers' offers arrived",
                by_from.len(),
                setup.helpers.len()
            ),
            vec![],
        ));
    }
    let first = by_from
        .values()
        .next()
        .ok_or_else(|| fail("no offers", vec![]))?;
    if by_from
        .values()
        .any(|o| o.public_key_package != first.public_key_package || o.epoch != first.epoch)
    {
        // Each one signed what it holds; which of them holds a stale key can't be told here.
        return Err(fail(
            "the helpers hold different public key packages or key epochs",
            vec![],
        ));
    }
    let pkp = PublicKeyPackage::<C>::deserialize(&first.public_key_package)
        .map_err(|e| fail(format!("public key package: {e}"), vec![]))?;
    if pkp.min_signers() != Some(setup.threshold) {
        return Err(fail(
            "the helpers' key has a different threshold from the manifest's",
            vec![],
        ));
    }
    for (&i, o) in &by_from {
        if o.commitments.keys().copied().collect::<BTreeSet<_>>() != setup.helpers {
            return Err(fail(
                format!("helper {i} did not commit to one delta per helper"),
                vec![i],
            ));
        }
        let mut sum = <C::Group>::identity();
        for d in o.commitments.values() {
            sum = sum
                + element_from::<C>(d).ok_or_else(|| {
                    fail(
                        format!("a commitment of helper {i} does not decode"),
                        vec![i],
                    )
                })?;
        }
        let y = pkp
            .verifying_shares()
            .get(&frost_id::<C>(i)?)
            .ok_or_else(|| fail(format!("helper {i} holds no share of this key"), vec![]))?;
        let expected = verifying_element::<C>(y)? * lagrange::<C>(&setup.helpers, i, setup.target)?;
        if sum != expected {
            return Err(fail(
                format!("the deltas helper {i} committed to do not add up to its share"),
                vec![i],
            ));
        }
    }
    Ok((by_from, pkp))
}

/// Helper j's contribution: σ_j sealed to the target, bound to the offers it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    /// The helper.
    pub from: u16,
    /// Every offer it accepted (its echo).
    pub offers: Vec<Offer>,
    /// σ_j, sealed to the target under the digest of `offers`.
    pub sigma: Sealed,
}

/// Round 2 for a helper: check every offer and every delta sealed to us, then seal our σ to
/// the target.
pub fn helper_contribute<C: Ciphersuite, R: RngCore + CryptoRng>(
    state: HelperState<C>,
    identity: &IdentitySecret,
    offers: &[Offer],
    sealed: &[Sealed],
    rng: &mut R,
) -> Result<Contribution, RepairError> {
    let setup = &state.setup;
    let (by_from, pkp) = check_offers::<C>(setup, offers)?;
    if by_from.get(&state.me) != Some(&state.own_offer) {
        return Err(fail(
            "the relayed offers carry a different offer in our name",
            vec![],
        ));
    }
    if pkp != state.pkp {
        return Err(fail(
            "the helpers' public key package differs from ours",
            vec![],
        ));
    }
    let mut deltas: BTreeMap<u16, Delta<C>> = BTreeMap::new();
    let own = Delta::<C>::deserialize(&state.own_delta)
        .map_err(|e| fail(format!("own delta: {e}"), vec![]))?;
    deltas.insert(state.me, own);
    for s in sealed {
        if s.recipient != state.me {
            return Err(fail(
                format!("a delta for {} was relayed to us", s.recipient),
                vec![],
            ));
        }
        let Some(offer) = by_from.get(&s.sender) else {
            return Err(fail(
                format!("a delta from {}, who is not a helper", s.sender),
                vec![],
            ));
        };
        if s.sender == state.me || deltas.contains_key(&s.sender) {
            return Err(fail(
                format!("unexpected or duplicate delta from {}", s.sender),
                vec![],
            ));
        }
        let digest = offer_digest::<C>(setup, offer);
        let ctx = SealContext {
            session_id: &setup.session_id,
            transcript: &digest,
            sender: s.sender,
            recipient: state.me,
        };
        let plain = seal::open(identity, setup.key(s.sender)?, &ctx, s).map_err(|e| match e {
            seal::OpenError::DoesNotOpen { sender } => fail(e.to_string(), vec![sender]),
            _ => fail(e.to_string(), vec![]),
        })?;
        let value = scalar::<C>(&plain).ok_or_else(|| {
            fail(
                format!("the delta of {} does not decode", s.sender),
                vec![s.sender],
            )
        })?;
        let committed = offer
            .commitments
            .get(&state.me)
            .and_then(|d| element_from::<C>(d))
            .ok_or_else(|| fail("offer without our commitment", vec![s.sender]))?;
        if <C::Group>::generator() * value != committed {
            return Err(fail(
                format!(
                    "helper {} sent a delta that differs from its commitment",
                    s.sender
                ),
                vec![s.sender],
            ));
        }
        let delta = Delta::<C>::deserialize(&plain)
            .map_err(|e| fail(format!("delta: {e}"), vec![s.sender]))?;
        deltas.insert(s.sender, delta);
    }
    if deltas.len() != setup.helpers.len() {
        return Err(fail(
            format!("{} of {} deltas arrived", deltas.len(), setup.helpers.len()),
            vec![],
        ));
    }
    let list: Vec<Delta<C>> = deltas.into_values().collect();
    let sigma = Zeroizing::new(repairable::repair_share_part2(&list).serialize());
    let echo = echo_digest::<C>(setup, &by_from);
    let ctx = SealContext {
        session_id: &setup.session_id,
        transcript: &echo,
        sender: state.me,
        recipient: setup.target,
    };
    let sealed_sigma = seal::seal(rng, identity, setup.key(setup.target)?, &ctx, &sigma);
    Ok(Contribution {
        from: state.me,
        offers: by_from.into_values().collect(),
        sigma: sealed_sigma,
    })
}

/// Runs a whole repair among holders in this process, honestly: `holders` are the helpers'
/// identity keys and shares, `target` the one to rebuild. For tests; a cluster's participants
/// are separate processes.
pub fn run_in_process<C: Ciphersuite, R: RngCore + CryptoRng>(
    setup: &RepairSetup,
    holders: &[(&IdentitySecret, &KeyPackage<C>)],
    target: &IdentitySecret,
    pkp: &PublicKeyPackage<C>,
    epoch: u32,
    rng: &mut R,
) -> Result<RepairOutput<C>, RepairError> {
    let mut states = Vec::new();
    let mut offers = Vec::new();
    let mut mail: BTreeMap<u16, Vec<Sealed>> = BTreeMap::new();
    for (identity, key) in holders {
        let r1 = helper_offer(setup.clone(), identity, key, pkp, epoch, rng)?;
        offers.push(r1.offer);
        for s in r1.sealed {
            mail.entry(s.recipient).or_default().push(s);
        }
        states.push((r1.state, *identity));
    }
    let mut contributions = Vec::new();
    for (state, identity) in states {
        let me = state.me;
        let inbox = mail.remove(&me).unwrap_or_default();
        contributions.push(helper_contribute(state, identity, &offers, &inbox, rng)?);
    }
    target_finish(setup, target, &offers, &contributions)
}

#[cfg(test)]
mod tests;
