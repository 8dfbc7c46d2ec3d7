//! Share refresh through the relayed DKG of `quorate-core`: the group key stays, every share
//! changes, an old share no longer combines with a new one, a holder left out is removed, a
//! sender of a bad share is named, and nothing of a fresh DKG (or of another old group) is
//! accepted in a refresh.

use std::collections::BTreeMap;

use frost_core::{
    aggregate_custom,
    keys::{dkg as frost_dkg, reconstruct, KeyPackage, PublicKeyPackage, SigningShare},
    round1, round2, CheaterDetection, Ciphersuite, Error, Field, Group, Identifier, Signature,
    SigningPackage, VerifyingKey,
};
use frost_ed25519::Ed25519Sha512;
use frost_secp256k1::Secp256K1Sha256;
use quorate_core::{
    dkg::{self, DkgOutput, DkgSetup, Kind, Round2State, SignedEcho, SignedResult, SignedRound1},
    identity::IdentitySecret,
    seal::{self, SealContext, Sealed},
};
use rand::rngs::OsRng;

const SESSION: &[u8] = b"refresh-session";
const EPOCH: u32 = 4;
const MSG: &[u8] = b"withdraw 1 BTC to the cold wallet";

/// A 2-of-3 group from the relayed DKG: each holder's key package, and the public package.
fn group<C: Ciphersuite>() -> (Vec<(u16, KeyPackage<C>)>, PublicKeyPackage<C>) {
    let outs = dkg::run_in_process::<C, _>(3, 2, &mut OsRng).unwrap();
    let pkp = outs[0].public_key_package.clone();
    let olds = (1..).zip(outs.into_iter().map(|o| o.key_package)).collect();
    (olds, pkp)
}

fn identities(which: &[u16]) -> Vec<(u16, IdentitySecret)> {
    which
        .iter()
        .map(|i| (*i, IdentitySecret::generate(&mut OsRng)))
        .collect()
}

fn setup(me: u16, ids: &[(u16, IdentitySecret)], t: u16) -> DkgSetup {
    DkgSetup {
        session_id: SESSION.to_vec(),
        manifest_hash: [9; 32],
        me,
        threshold: t,
        participants: ids.iter().map(|(i, k)| (*i, k.public())).collect(),
    }
}

fn id<C: Ciphersuite>(n: u16) -> Identifier<C> {
    Identifier::try_from(n).unwrap()
}

/// FROST-signs `msg` with `keys` and aggregates *without* cheater detection, so an error from
/// the aggregation means the aggregate signature itself does not verify under the group key.
fn sign<C: Ciphersuite>(
    keys: &[&KeyPackage<C>],
    pkp: &PublicKeyPackage<C>,
) -> Result<Signature<C>, Error<C>> {
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for k in keys {
        let (n, c) = round1::commit(k.signing_share(), &mut OsRng);
        nonces.insert(*k.identifier(), n);
        commitments.insert(*k.identifier(), c);
    }
    let package = SigningPackage::new(commitments, MSG);
    let mut shares = BTreeMap::new();
    for k in keys {
        let share = round2::sign(&package, &nonces[k.identifier()], k)?;
        shares.insert(*k.identifier(), share);
    }
    aggregate_custom(&package, &shares, pkp, CheaterDetection::Disabled)
}

/// The group key two key packages interpolate to (Lagrange at zero).
fn interpolated<C: Ciphersuite>(a: &KeyPackage<C>, b: &KeyPackage<C>) -> VerifyingKey<C> {
    VerifyingKey::from(&reconstruct(&[a.clone(), b.clone()]).unwrap())
}

fn refresh_keeps_the_group_key_and_changes_every_share<C: Ciphersuite>() {
    let (olds, old_pkp) = group::<C>();
    let group_key = *old_pkp.verifying_key();
    let outs = dkg::refresh_in_process::<C, _>(&olds, &old_pkp, 2, EPOCH, &mut OsRng).unwrap();
    let new_pkp = &outs[0].public_key_package;

    // The group key (the vault's address) is unchanged, for everyone.
    assert_eq!(*new_pkp.verifying_key(), group_key);
    for o in &outs {
        assert_eq!(o.kind(), Kind::Refresh);
        assert_eq!(o.group_key, group_key.serialize().unwrap());
        assert_eq!(&o.public_key_package, new_pkp);
    }
    // Every share changed, secret and public, and each new share is the one the package lists.
    assert_eq!(new_pkp.verifying_shares().len(), 3);
    for ((n, old), o) in olds.iter().zip(&outs) {
        let i = id::<C>(*n);
        assert_eq!(*o.key_package.identifier(), i);
        assert_ne!(
            new_pkp.verifying_shares()[&i],
            old_pkp.verifying_shares()[&i]
        );
        assert_ne!(o.key_package.signing_share(), old.signing_share());
        assert_eq!(
            o.key_package.verifying_share(),
            &new_pkp.verifying_shares()[&i]
        );
    }
    // Every threshold subset of new shares signs for the old group key.
    for [a, b] in [[0, 1], [0, 2], [1, 2]] {
        let sig = sign(&[&outs[a].key_package, &outs[b].key_package], new_pkp).unwrap();
        group_key.verify(MSG, &sig).unwrap();
    }
    // Signer 1's old share and signer 2's new one make no signature, nor the group secret.
    let mixed = sign(&[&olds[0].1, &outs[1].key_package], new_pkp);
    assert!(matches!(mixed, Err(Error::InvalidSignature)), "{mixed:?}");
    assert_ne!(interpolated(&olds[0].1, &outs[1].key_package), group_key);
    assert_eq!(
        interpolated(&outs[0].key_package, &outs[1].key_package),
        group_key
    );
}

#[test]
fn a_secp256k1_refresh_keeps_the_group_key_and_changes_every_share() {
    refresh_keeps_the_group_key_and_changes_every_share::<Secp256K1Sha256>();
}

#[test]
fn an_ed25519_refresh_keeps_the_group_key_and_changes_every_share() {
    refresh_keeps_the_group_key_and_changes_every_share::<Ed25519Sha512>();
}

fn a_refresh_without_a_holder_removes_it<C: Ciphersuite>() {
    let (olds, old_pkp) = group::<C>();
    let group_key = *old_pkp.verifying_key();
    let kept = [olds[0].clone(), olds[2].clone()];
    let outs = dkg::refresh_in_process::<C, _>(&kept, &old_pkp, 2, EPOCH, &mut OsRng).unwrap();
    let new_pkp = &outs[0].public_key_package;
    assert_eq!(*new_pkp.verifying_key(), group_key);
    assert_eq!(
        new_pkp.verifying_shares().keys().collect::<Vec<_>>(),
        [&id::<C>(1), &id::<C>(3)]
    );
    assert_eq!(new_pkp.min_signers(), Some(2));
    // 1 and 3 sign with their new shares.
    let sig = sign(&[&outs[0].key_package, &outs[1].key_package], new_pkp).unwrap();
    group_key.verify(MSG, &sig).unwrap();
    // Removed signer 2's old share, with either remaining signer's new one, signs nothing and
    // does not interpolate to the group secret.
    for new in [&outs[0].key_package, &outs[1].key_package] {
        let mixed = sign(&[&olds[1].1, new], new_pkp);
        assert!(matches!(mixed, Err(Error::InvalidSignature)), "{mixed:?}");
        assert_ne!(interpolated(&olds[1].1, new), group_key);
    }
}

#[test]
fn a_secp256k1_refresh_without_a_holder_removes_it() {
    a_refresh_without_a_holder_removes_it::<Secp256K1Sha256>();
}

#[test]
fn an_ed25519_refresh_without_a_holder_removes_it() {
    a_refresh_without_a_holder_removes_it::<Ed25519Sha512>();
}

/// Round 1 of a refresh of `old_pkp` for every one of `ids`.
fn refresh_round1<C: Ciphersuite>(
    ids: &[(u16, IdentitySecret)],
    old_pkp: &PublicKeyPackage<C>,
) -> (Vec<dkg::Round1State<C>>, Vec<SignedRound1>) {
    ids.iter()
        .map(|(i, k)| {
            dkg::refresh_round1_for::<C, _>(setup(*i, ids, 2), EPOCH, old_pkp, k, &mut OsRng)
                .unwrap()
        })
        .unzip()
}

/// Everyone's round-2 state, the sealed packages by recipient, and the echoes.
type AllRound2<C> = (
    Vec<Round2State<C>>,
    BTreeMap<u16, Vec<Sealed>>,
    Vec<SignedEcho>,
);

/// Round 2 for everyone.
fn all_round2<C: Ciphersuite>(
    ids: &[(u16, IdentitySecret)],
    states: Vec<dkg::Round1State<C>>,
    broadcast: &[SignedRound1],
) -> AllRound2<C> {
    let mut round2_states = Vec::new();
    let mut mail: BTreeMap<u16, Vec<Sealed>> = BTreeMap::new();
    let mut echoes = Vec::new();
    for (st, (_, k)) in states.into_iter().zip(ids) {
        let (st, sealed) = dkg::round2(st, k, &mut OsRng, broadcast).unwrap();
        echoes.push(dkg::echo(&st, k));
        round2_states.push(st);
        for s in sealed {
            mail.entry(s.recipient).or_default().push(s);
        }
    }
    (round2_states, mail, echoes)
}

fn signed_result<C: Ciphersuite>(n: u16, o: &DkgOutput<C>) -> SignedResult {
    SignedResult {
        identifier: n,
        group_key: o.group_key.clone(),
        transcript: o.transcript.to_vec(),
        signature: o.signature.clone(),
    }
}

#[test]
fn a_sender_of_a_bad_refresh_share_is_named_and_its_victim_keeps_nothing() {
    type C = Secp256K1Sha256;
    let (olds, old_pkp) = group::<C>();
    let ids = identities(&[1, 2, 3]);
    let (states, broadcast) = refresh_round1(&ids, &old_pkp);
    let (states, mut mail, echoes) = all_round2(&ids, states, &broadcast);

    // Participant 3 seals to participant 1, under its own signature and 1's transcript, a
    // share that is not on the polynomial it committed to.
    let received: BTreeMap<u16, Vec<u8>> = broadcast
        .iter()
        .map(|b| (b.identifier, b.package.clone()))
        .collect();
    let transcript =
        dkg::refresh_transcript_hash_for::<C>(&setup(1, &ids, 2), EPOCH, &old_pkp, &received)
            .unwrap();
    let field_random = <<<C as Ciphersuite>::Group as Group>::Field as Field>::random(&mut OsRng);
    let wrong = <<<C as Ciphersuite>::Group as Group>::Field as Field>::serialize(&field_random);
    let bad = frost_dkg::round2::Package::<C>::new(SigningShare::deserialize(&wrong).unwrap())
        .serialize()
        .unwrap();
    let ctx = SealContext {
        session_id: SESSION,
        transcript: &transcript,
        sender: 3,
        recipient: 1,
    };
    let forged = seal::seal(&mut OsRng, &ids[2].1, &ids[0].1.public(), &ctx, &bad);
    let to_1 = mail.get_mut(&1).unwrap();
    *to_1.iter_mut().find(|s| s.sender == 3).unwrap() = forged;

    let mut states = states.into_iter();
    let mut finish = |n: usize| {
        let st = states.next().unwrap();
        let me = ids[n].0;
        dkg::refresh_round3(st, &ids[n].1, &mail[&me], &echoes, &olds[n].1, &old_pkp)
    };
    // The victim refuses, names 3 (frost's own check would name nobody), and gets no share.
    let err = finish(0).expect_err("a bad share must abort the refresh");
    assert_eq!(err.culprits, vec![3], "{err}");
    // The others finish, but cannot keep their new shares: the victim never confirms.
    let out2 = finish(1).unwrap();
    let out3 = finish(2).unwrap();
    let results = [signed_result(2, &out2), signed_result(3, &out3)];
    let participants = setup(2, &ids, 2).participants;
    let err = dkg::check_confirmations(&participants, SESSION, &out2, &results).unwrap_err();
    assert!(err.reason.contains("only 2 of 3"), "{err}");

    // A refresh result is signed under the refresh domain, never the DKG's.
    let key = ids[1].1.public();
    let verify = |kind| {
        dkg::verify_result_of_kind::<C>(
            kind,
            &key,
            SESSION,
            &out2.transcript,
            &out2.group_key,
            &out2.signature,
        )
    };
    assert!(verify(Kind::Refresh));
    assert!(!verify(Kind::Dkg));
    assert!(!dkg::verify_result_for::<C>(
        &key,
        SESSION,
        &out2.transcript,
        &out2.group_key,
        &out2.signature
    ));
}

#[test]
fn a_refresh_commitment_of_the_wrong_length_is_named() {
    type C = Secp256K1Sha256;
    let (_, old_pkp) = group::<C>();
    let ids = identities(&[1, 2, 3]);
    let (mut states, mut broadcast) = refresh_round1(&ids, &old_pkp);
    // Participant 3 commits, under a valid refresh signature, to a polynomial with a constant
    // term (a fresh-DKG commitment: t points, not t − 1).
    let (_, pkg) = frost_dkg::part1::<C, _>(id(3), 3, 2, OsRng).unwrap();
    broadcast[2] =
        dkg::sign_refresh_round1_for::<C>(&setup(3, &ids, 2), &ids[2].1, pkg.serialize().unwrap());
    let err = dkg::round2(states.remove(0), &ids[0].1, &mut OsRng, &broadcast)
        .err()
        .expect("a wrong-length commitment must abort the refresh");
    assert_eq!(err.culprits, vec![3], "{err}");
}

#[test]
fn a_refresh_keeps_the_threshold_and_adds_nobody() {
    type C = Secp256K1Sha256;
    let (_, old_pkp) = group::<C>();
    let refuse = |ids: &[(u16, IdentitySecret)], t: u16| {
        dkg::refresh_round1_for::<C, _>(setup(1, ids, t), EPOCH, &old_pkp, &ids[0].1, &mut OsRng)
            .err()
            .expect("refused")
            .reason
    };
    // A 2-of-3 group cannot be refreshed into 3-of-3.
    let r = refuse(&identities(&[1, 2, 3]), 3);
    assert!(r.contains("keeps the threshold"), "{r}");
    // Nor can anyone join: 4 holds no share of the old group.
    let r = refuse(&identities(&[1, 2, 4]), 2);
    assert!(r.contains("[4] hold no share of the old group"), "{r}");
    // Nor can fewer than the threshold refresh.
    let r = refuse(&identities(&[1]), 2);
    assert!(r.contains("at least the threshold"), "{r}");
    // The same setups are accepted when they keep to the old group.
    let ids = identities(&[1, 2, 3]);
    dkg::refresh_round1_for::<C, _>(setup(1, &ids, 2), EPOCH, &old_pkp, &ids[0].1, &mut OsRng)
        .unwrap();
}

#[test]
fn nothing_of_a_fresh_dkg_is_accepted_in_a_refresh_nor_the_reverse() {
    type C = Secp256K1Sha256;
    let (_, old_pkp) = group::<C>();
    let ids = identities(&[1, 2, 3]);
    let (mut refresh_states, refresh_broadcast) = refresh_round1(&ids, &old_pkp);
    let (mut dkg_states, dkg_broadcast): (Vec<_>, Vec<_>) = ids
        .iter()
        .map(|(i, k)| dkg::round1_for::<C, _>(setup(*i, &ids, 2), k, &mut OsRng).unwrap())
        .unzip();

    // Participant 3's fresh-DKG round-1 package, same session and setup, fed into a refresh.
    let mut mixed = refresh_broadcast.clone();
    mixed[2] = dkg_broadcast[2].clone();
    let err = dkg::round2(refresh_states.remove(0), &ids[0].1, &mut OsRng, &mixed)
        .err()
        .expect("a DKG package must be refused in a refresh");
    assert!(
        err.reason.contains("not signed by its identity key"),
        "{err}"
    );
    // And its refresh package fed into a fresh DKG.
    let mut mixed = dkg_broadcast.clone();
    mixed[2] = refresh_broadcast[2].clone();
    let err = dkg::round2(dkg_states.remove(0), &ids[0].1, &mut OsRng, &mixed)
        .err()
        .expect("a refresh package must be refused in a DKG");
    assert!(
        err.reason.contains("not signed by its identity key"),
        "{err}"
    );

    // Over the same packages, the transcripts of a DKG and of refreshes of other epochs differ.
    let received: BTreeMap<u16, Vec<u8>> = refresh_broadcast
        .iter()
        .map(|b| (b.identifier, b.package.clone()))
        .collect();
    let s = setup(1, &ids, 2);
    let refresh_at =
        |epoch| dkg::refresh_transcript_hash_for::<C>(&s, epoch, &old_pkp, &received).unwrap();
    assert_ne!(
        dkg::transcript_hash_for::<C>(&s, &received),
        refresh_at(EPOCH)
    );
    assert_ne!(refresh_at(EPOCH), refresh_at(EPOCH + 1));
}

#[test]
fn holders_of_different_old_groups_cannot_refresh_together() {
    type C = Secp256K1Sha256;
    let (olds, old_pkp) = group::<C>();
    let (other_olds, other_pkp) = group::<C>();
    // Participant 1 is bound to another key epoch, or to another old group entirely.
    for variant in ["epoch", "group"] {
        let ids = identities(&[1, 2, 3]);
        let mut states = Vec::new();
        let mut broadcast = Vec::new();
        for (n, (i, k)) in ids.iter().enumerate() {
            let (epoch, pkp) = match (n, variant) {
                (0, "epoch") => (EPOCH + 1, &old_pkp),
                (0, _) => (EPOCH, &other_pkp),
                _ => (EPOCH, &old_pkp),
            };
            let (st, signed) =
                dkg::refresh_round1_for::<C, _>(setup(*i, &ids, 2), epoch, pkp, k, &mut OsRng)
                    .unwrap();
            states.push(st);
            broadcast.push(signed);
        }
        let (states, mail, echoes) = all_round2(&ids, states, &broadcast);
        for (n, st) in states.into_iter().enumerate() {
            let (kp, pkp) = match (n, variant) {
                (0, "group") => (&other_olds[0].1, &other_pkp),
                _ => (&olds[n].1, &old_pkp),
            };
            let me = ids[n].0;
            let err = dkg::refresh_round3(st, &ids[n].1, &mail[&me], &echoes, kp, pkp)
                .err()
                .unwrap_or_else(|| panic!("{variant}: participant {me} completed"));
            // Nobody misbehaved: the views differ, and nobody is blamed.
            assert!(err.culprits.is_empty(), "{variant}: {err}");
        }
    }
}
