//! Repair and enrolment in one process, and every way a helper or the relay can cheat.
use super::*;
use crate::dkg;
use frost_core::{aggregate, round1, round2, SigningPackage};

struct Cluster<C: Ciphersuite> {
    ids: Vec<IdentitySecret>,
    outs: Vec<dkg::DkgOutput<C>>,
    extra: IdentitySecret,
}

fn cluster<C: Ciphersuite>(n: u16, t: u16) -> Cluster<C> {
    let mut rng = rand::thread_rng();
    let outs = dkg::run_in_process::<C, _>(n, t, &mut rng).unwrap();
    // run_in_process makes its own identity keys; the repair needs keys we hold, and the
    // DKG's identity keys are not what is being tested here.
    let ids = (0..n).map(|_| IdentitySecret::generate(&mut rng)).collect();
    Cluster {
        ids,
        outs,
        extra: IdentitySecret::generate(&mut rng),
    }
}

impl<C: Ciphersuite> Cluster<C> {
    fn setup(&self, target: u16, helpers: &[u16]) -> RepairSetup {
        let mut participants: BTreeMap<u16, IdentityPublic> = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, k)| (i as u16 + 1, k.public()))
            .collect();
        participants.insert(self.ids.len() as u16 + 1, self.extra.public());
        RepairSetup {
            session_id: vec![9; 16],
            manifest_hash: [1; 32],
            threshold: *self.outs[0].key_package.min_signers(),
            target,
            helpers: helpers.iter().copied().collect(),
            participants,
        }
    }
    fn identity(&self, n: u16) -> &IdentitySecret {
        self.ids.get(usize::from(n) - 1).unwrap_or(&self.extra)
    }
    fn holders(&self, helpers: &[u16]) -> Vec<(&IdentitySecret, &KeyPackage<C>)> {
        helpers
            .iter()
            .map(|h| {
                (
                    self.identity(*h),
                    &self.outs[usize::from(*h) - 1].key_package,
                )
            })
            .collect()
    }
    fn pkp(&self) -> &PublicKeyPackage<C> {
        &self.outs[0].public_key_package
    }
}

fn signs<C: Ciphersuite>(keys: &[&KeyPackage<C>], pkp: &PublicKeyPackage<C>) -> bool {
    let mut rng = rand::thread_rng();
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for k in keys {
        let (n, c) = round1::commit(k.signing_share(), &mut rng);
        nonces.insert(*k.identifier(), n);
        commitments.insert(*k.identifier(), c);
    }
    let package = SigningPackage::new(commitments, b"repair test");
    let mut shares = BTreeMap::new();
    for k in keys {
        match round2::sign(&package, &nonces[k.identifier()], k) {
            Ok(s) => {
                shares.insert(*k.identifier(), s);
            }
            Err(_) => return false,
        }
    }
    match aggregate(&package, &shares, pkp) {
        Ok(sig) => pkp.verifying_key().verify(b"repair test", &sig).is_ok(),
        Err(_) => false,
    }
}

fn repair_restores<C: Ciphersuite>() {
    let c = cluster::<C>(3, 2);
    let setup = c.setup(3, &[1, 2]);
    let out = run_in_process(
        &setup,
        &c.holders(&[1, 2]),
        c.identity(3),
        c.pkp(),
        7,
        &mut rand::thread_rng(),
    )
    .unwrap();
    let lost = &c.outs[2].key_package;
    assert_eq!(out.key_package.signing_share(), lost.signing_share());
    assert_eq!(&out.public_key_package, c.pkp());
    assert_eq!(out.group_key, c.outs[0].group_key);
    assert_eq!(out.epoch, 7);
    assert!(signs(&[&c.outs[0].key_package, &out.key_package], c.pkp()));
    let vshare = out.key_package.verifying_share().serialize().unwrap();
    assert!(verify_result::<C>(
        &c.identity(3).public(),
        &setup.session_id,
        7,
        &out.group_key,
        &vshare,
        &out.signature
    ));
    assert!(!verify_result::<C>(
        &c.identity(3).public(),
        &setup.session_id,
        8,
        &out.group_key,
        &vshare,
        &out.signature
    ));
}

#[test]
fn repair_restores_the_lost_share_secp256k1() {
    repair_restores::<frost_secp256k1::Secp256K1Sha256>();
}

#[test]
fn repair_restores_the_lost_share_ed25519() {
    repair_restores::<frost_ed25519::Ed25519Sha512>();
}

#[test]
fn three_of_five_repair_with_more_helpers_than_needed() {
    type C = frost_secp256k1::Secp256K1Sha256;
    let c = cluster::<C>(5, 3);
    let setup = c.setup(2, &[1, 3, 4, 5]);
    let out = run_in_process(
        &setup,
        &c.holders(&[1, 3, 4, 5]),
        c.identity(2),
        c.pkp(),
        0,
        &mut rand::thread_rng(),
    )
    .unwrap();
    assert_eq!(
        out.key_package.signing_share(),
        c.outs[1].key_package.signing_share()
    );
}

fn enroll<C: Ciphersuite>() {
    let c = cluster::<C>(3, 2);
    let setup = c.setup(4, &[1, 3]);
    let out = run_in_process(
        &setup,
        &c.holders(&[1, 3]),
        &c.extra,
        c.pkp(),
        0,
        &mut rand::thread_rng(),
    )
    .unwrap();
    let pkp = &out.public_key_package;
    assert_eq!(pkp.verifying_key(), c.pkp().verifying_key());
    assert_eq!(pkp.verifying_shares().len(), 4);
    // Every other node derives the same package from its own, with any basis of t.
    let other_basis: BTreeSet<u16> = [2, 3].into_iter().collect();
    assert_eq!(&with_new_holder(c.pkp(), &other_basis, 4).unwrap(), pkp);
    // The new signer signs with any one of the old ones, under the same group key.
    for old in 0..3 {
        assert!(signs(&[&c.outs[old].key_package, &out.key_package], pkp));
    }
    assert!(signs(
        &[&c.outs[0].key_package, &c.outs[1].key_package],
        pkp
    ));
}

#[test]
fn enrolling_a_new_identifier_keeps_the_group_key_secp256k1() {
    enroll::<frost_secp256k1::Secp256K1Sha256>();
}

#[test]
fn enrolling_a_new_identifier_keeps_the_group_key_ed25519() {
    enroll::<frost_ed25519::Ed25519Sha512>();
}

/// One honest run's messages, to tamper with.
struct Run {
    offers: Vec<Offer>,
    mail: BTreeMap<u16, Vec<Sealed>>,
    states: Vec<HelperState<frost_secp256k1::Secp256K1Sha256>>,
}

type S = frost_secp256k1::Secp256K1Sha256;

fn round1_of(c: &Cluster<S>, setup: &RepairSetup, helpers: &[u16]) -> Run {
    let mut rng = rand::thread_rng();
    let mut run = Run {
        offers: vec![],
        mail: BTreeMap::new(),
        states: vec![],
    };
    for (identity, key) in c.holders(helpers) {
        let r1 = helper_offer(setup.clone(), identity, key, c.pkp(), 0, &mut rng).unwrap();
        run.offers.push(r1.offer);
        for s in r1.sealed {
            run.mail.entry(s.recipient).or_default().push(s);
        }
        run.states.push(r1.state);
    }
    run
}

fn contribute_all(
    c: &Cluster<S>,
    run: Run,
    offers_for: impl Fn(u16) -> Vec<Offer>,
) -> Result<Vec<Contribution>, RepairError> {
    let mut out = Vec::new();
    let mut mail = run.mail;
    for st in run.states {
        let me = st.me;
        let inbox = mail.remove(&me).unwrap_or_default();
        out.push(helper_contribute(
            st,
            c.identity(me),
            &offers_for(me),
            &inbox,
            &mut rand::thread_rng(),
        )?);
    }
    Ok(out)
}

/// Re-signs a tampered offer as its helper would: a malicious helper signs its own lies.
fn resign(c: &Cluster<S>, setup: &RepairSetup, o: &mut Offer) {
    let digest = offer_digest::<S>(setup, o);
    o.signature = c
        .identity(o.from)
        .sign(&domain::<S>(OFFER_DOMAIN), &[&digest]);
}

#[test]
fn a_helper_whose_deltas_do_not_add_up_is_named() {
    let c = cluster::<S>(3, 2);
    let setup = c.setup(3, &[1, 2]);
    let mut run = round1_of(&c, &setup, &[1, 2]);
    // Helper 2 commits to a different split (a random point for one delta) and signs it.
    let bogus = element_bytes::<S>(&(<<S as Ciphersuite>::Group>::generator() * id_scalar::<S>(5)))
        .unwrap();
    let o = run.offers.iter_mut().find(|o| o.from == 2).unwrap();
    o.commitments.insert(1, bogus);
    resign(&c, &setup, o);
    let offers = run.offers.clone();
    let err = contribute_all(&c, run, |_| offers.clone()).unwrap_err();
    assert_eq!(err.culprits, vec![2], "{err}");
    assert!(target_finish::<S>(&setup, c.identity(3), &offers, &[])
        .is_err_and(|e| e.culprits == vec![2]));
}

#[test]
fn a_helper_whose_delta_differs_from_its_commitment_is_named() {
    let c = cluster::<S>(3, 2);
    let setup = c.setup(3, &[1, 2]);
    let mut run = round1_of(&c, &setup, &[1, 2]);
    // Helper 2 seals a different delta to helper 1 (it signs the seal: it is its message).
    let digest = offer_digest::<S>(&setup, run.offers.iter().find(|o| o.from == 2).unwrap());
    let ctx = SealContext {
        session_id: &setup.session_id,
        transcript: &digest,
        sender: 2,
        recipient: 1,
    };
    let wrong = <<S as Ciphersuite>::Group as Group>::Field::serialize(&id_scalar::<S>(11));
    let forged = seal::seal(
        &mut rand::thread_rng(),
        c.identity(2),
        &c.identity(1).public(),
        &ctx,
        wrong.as_ref(),
    );
    run.mail.insert(1, vec![forged]);
    let offers = run.offers.clone();
    let err = contribute_all(&c, run, |_| offers.clone()).unwrap_err();
    assert_eq!(err.culprits, vec![2], "{err}");
}

#[test]
fn a_helper_sending_a_bad_sigma_is_named_and_nothing_is_kept() {
    let c = cluster::<S>(3, 2);
    let setup = c.setup(3, &[1, 2]);
    let run = round1_of(&c, &setup, &[1, 2]);
    let offers = run.offers.clone();
    let mut contributions = contribute_all(&c, run, |_| offers.clone()).unwrap();
    // Helper 1 replaces its σ with garbage of the right shape, sealed and signed by it.
    let bad = contributions.iter_mut().find(|k| k.from == 1).unwrap();
    let by: BTreeMap<u16, Offer> = bad.offers.iter().map(|o| (o.from, o.clone())).collect();
    let echo = echo_digest::<S>(&setup, &by);
    let ctx = SealContext {
        session_id: &setup.session_id,
        transcript: &echo,
        sender: 1,
        recipient: 3,
    };
    let wrong = <<S as Ciphersuite>::Group as Group>::Field::serialize(&id_scalar::<S>(3));
    bad.sigma = seal::seal(
        &mut rand::thread_rng(),
        c.identity(1),
        &c.identity(3).public(),
        &ctx,
        wrong.as_ref(),
    );
    let err = target_finish::<S>(&setup, c.identity(3), &offers, &contributions).unwrap_err();
    assert_eq!(err.culprits, vec![1], "{err}");
}

#[test]
fn an_equivocating_helper_is_named_not_the_one_who_echoed_it() {
    let c = cluster::<S>(5, 3);
    let setup = c.setup(5, &[1, 2, 3]);
    let run = round1_of(&c, &setup, &[1, 2, 3]);
    let honest = run.offers.clone();
    // Helper 3 shows helper 1 a second offer (re-split deltas, still adding up, signed).
    let mut twin = honest.iter().find(|o| o.from == 3).unwrap().clone();
    let (a, b) = (twin.commitments[&1].clone(), twin.commitments[&2].clone());
    let (ea, eb) = (
        element_from::<S>(&a).unwrap(),
        element_from::<S>(&b).unwrap(),
    );
    let shift = <<S as Ciphersuite>::Group>::generator() * id_scalar::<S>(1);
    twin.commitments
        .insert(1, element_bytes::<S>(&(ea + shift)).unwrap());
    twin.commitments
        .insert(2, element_bytes::<S>(&(eb - shift)).unwrap());
    resign(&c, &setup, &mut twin);
    let shown_to_1: Vec<Offer> = honest
        .iter()
        .map(|o| if o.from == 3 { twin.clone() } else { o.clone() })
        .collect();
    // Helper 1 rejects the delta that does not match the twin's commitment, so to reach the
    // target the twin must be consistent with the delta: make it so by having helper 1 see
    // the twin only in its echo (it accepted the honest one), i.e. the relay shows the
    // target the honest set and helper 1's echo holds the twin.
    let mut contributions = contribute_all(&c, run, |_| honest.clone()).unwrap();
    let k1 = contributions.iter_mut().find(|k| k.from == 1).unwrap();
    k1.offers = shown_to_1.clone();
    // Helper 1 vouches for that echo (its seal is bound to it): re-seal its σ as it would
    // have had it accepted the twin. The σ is irrelevant: equivocation is caught first.
    let by: BTreeMap<u16, Offer> = shown_to_1.iter().map(|o| (o.from, o.clone())).collect();
    let echo = echo_digest::<S>(&setup, &by);
    let ctx = SealContext {
        session_id: &setup.session_id,
        transcript: &echo,
        sender: 1,
        recipient: 5,
    };
    let any = <<S as Ciphersuite>::Group as Group>::Field::serialize(&id_scalar::<S>(2));
    k1.sigma = seal::seal(
        &mut rand::thread_rng(),
        c.identity(1),
        &c.identity(5).public(),
        &ctx,
        any.as_ref(),
    );
    let err = target_finish::<S>(&setup, c.identity(5), &honest, &contributions).unwrap_err();
    assert_eq!(err.culprits, vec![3], "{err}");
}

#[test]
fn a_relay_that_alters_messages_blames_nobody_and_fails() {
    let c = cluster::<S>(3, 2);
    let setup = c.setup(3, &[1, 2]);
    let run = round1_of(&c, &setup, &[1, 2]);
    let offers = run.offers.clone();
    // An offer altered in transit: not signed by its helper.
    let mut altered = offers.clone();
    altered[0].epoch += 1;
    let err = check_offers::<S>(&setup, &altered).unwrap_err();
    assert!(err.culprits.is_empty(), "{err}");
    // A contribution whose echo was swapped by the relay: the seal no longer verifies.
    let mut contributions = contribute_all(&c, run, |_| offers.clone()).unwrap();
    contributions[0].offers.reverse();
    contributions[0].offers.pop();
    let err = target_finish::<S>(&setup, c.identity(3), &offers, &contributions).unwrap_err();
    assert!(err.culprits.is_empty(), "{err}");
    // Offers withheld by the relay: the helpers stop.
    let withheld = contribute_all(&c, round1_of(&c, &setup, &[1, 2]), |_| vec![]).unwrap_err();
    assert!(withheld.culprits.is_empty(), "{withheld}");
}

#[test]
fn malformed_setups_are_refused() {
    let c = cluster::<S>(3, 2);
    let mut rng = rand::thread_rng();
    let try_offer = |setup: RepairSetup| {
        helper_offer(
            setup,
            c.identity(1),
            &c.outs[0].key_package,
            c.pkp(),
            0,
            &mut rand::thread_rng(),
        )
        .err()
        .map(|e| e.reason)
    };
    assert!(try_offer(c.setup(3, &[1])).unwrap().contains("threshold"));
    assert!(try_offer(c.setup(1, &[1, 2]))
        .unwrap()
        .contains("own share"));
    assert!(try_offer(c.setup(4, &[2, 3]))
        .unwrap()
        .contains("not among the helpers"));
    let mut short = c.setup(3, &[1, 2]);
    short.session_id = vec![1; 3];
    assert!(try_offer(short).unwrap().contains("16 bytes"));
    let mut unknown = c.setup(9, &[1, 2]);
    unknown.participants.remove(&9);
    assert!(try_offer(unknown).unwrap().contains("not in the manifest"));
    // Another signer's identity cannot act as helper 1.
    let setup = c.setup(3, &[1, 2]);
    assert!(helper_offer(
        setup,
        c.identity(2),
        &c.outs[0].key_package,
        c.pkp(),
        0,
        &mut rng
    )
    .is_err_and(|e| e.reason.contains("identity key")));
}

#[test]
fn lagrange_at_a_point_interpolates() {
    // f(x) = 3 + 5x over identifiers {1, 2}: f(1) = 8, f(2) = 13, f(4) = 23.
    let set: BTreeSet<u16> = [1, 2].into_iter().collect();
    let s = |n| id_scalar::<S>(n);
    let f4 = lagrange::<S>(&set, 1, 4).unwrap() * s(8) + lagrange::<S>(&set, 2, 4).unwrap() * s(13);
    assert_eq!(f4, s(23));
    assert_eq!(
        id_scalar::<S>(300),
        frost_core::Identifier::<S>::try_from(300u16)
            .map(|i| i.serialize())
            .map(|b| scalar::<S>(&b).unwrap())
            .unwrap()
    );
}
