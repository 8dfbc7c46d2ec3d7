//! The relayed DKG of `quorate-core` for a second ciphersuite, FROST(Ed25519, SHA-512): the
//! same rounds, checks and sealing as the secp256k1 group, a group key that is an ordinary
//! Ed25519 public key (a Solana address), threshold signatures that any Ed25519 verifier
//! accepts, and nothing from one ciphersuite's DKG accepted in the other's.

use std::collections::BTreeMap;

use frost_ed25519::{keys::KeyPackage, round1, round2, Ed25519Sha512, SigningPackage};
use quorate_core::{
    dkg::{self, DkgSetup, SignedRound1},
    identity::IdentitySecret,
};
use rand::rngs::OsRng;

fn setup(me: u16, ids: &[(u16, IdentitySecret)], t: u16) -> DkgSetup {
    DkgSetup {
        session_id: b"ed25519-session".to_vec(),
        manifest_hash: [7; 32],
        me,
        threshold: t,
        participants: ids.iter().map(|(i, k)| (*i, k.public())).collect(),
    }
}

fn identities(n: u16) -> Vec<(u16, IdentitySecret)> {
    (1..=n)
        .map(|i| (i, IdentitySecret::generate(&mut OsRng)))
        .collect()
}

fn sign(
    keys: &[&KeyPackage],
    public: &frost_ed25519::keys::PublicKeyPackage,
    msg: &[u8],
) -> Vec<u8> {
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for k in keys {
        let (n, c) = round1::commit(k.signing_share(), &mut OsRng);
        nonces.insert(*k.identifier(), n);
        commitments.insert(*k.identifier(), c);
    }
    let package = SigningPackage::new(commitments, msg);
    let shares = keys
        .iter()
        .map(|k| {
            (
                *k.identifier(),
                round2::sign(&package, &nonces[k.identifier()], k).unwrap(),
            )
        })
        .collect();
    frost_ed25519::aggregate(&package, &shares, public)
        .unwrap()
        .serialize()
        .unwrap()
}

#[test]
fn an_ed25519_group_signs_what_any_ed25519_verifier_accepts() {
    // Rounds 1 to 3 and the confirmation round, honestly, for every participant.
    let outs = dkg::run_in_process::<Ed25519Sha512, _>(3, 2, &mut OsRng).unwrap();
    // Everyone derived the same 32-byte group key: an ordinary Ed25519 public key.
    assert_eq!(outs[0].group_key.len(), 32);
    assert!(outs.iter().all(|o| o.group_key == outs[0].group_key));
    let public = &outs[0].public_key_package;
    let address =
        ed25519_dalek::VerifyingKey::from_bytes(outs[0].group_key.as_slice().try_into().unwrap())
            .unwrap();
    // Every t-subset signs; an independent RFC 8032 verifier accepts each signature and
    // refuses it for another message.
    let msg = b"a Solana transaction message";
    for pair in [[0, 1], [0, 2], [1, 2]] {
        let keys = [&outs[pair[0]].key_package, &outs[pair[1]].key_package];
        let sig = sign(&keys, public, msg);
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        address.verify_strict(msg, &sig).unwrap();
        assert!(address.verify_strict(b"another message", &sig).is_err());
    }
}

#[test]
fn nothing_from_a_secp256k1_dkg_is_accepted_in_an_ed25519_one() {
    let ids = identities(3);
    // Participant 1's round-1 package, signed as it would be for the secp256k1 group's DKG of
    // the same session, is refused by the others' Ed25519 round 2.
    let mut r1 = Vec::new();
    let mut broadcast: Vec<SignedRound1> = Vec::new();
    for (i, k) in &ids {
        let (st, signed) =
            dkg::round1_for::<Ed25519Sha512, _>(setup(*i, &ids, 2), k, &mut OsRng).unwrap();
        r1.push(st);
        broadcast.push(signed);
    }
    let resigned = dkg::sign_round1(&setup(1, &ids, 2), &ids[0].1, broadcast[0].package.clone());
    assert_eq!(resigned.package, broadcast[0].package);
    assert_ne!(resigned.signature, broadcast[0].signature);
    let mut mixed = broadcast.clone();
    mixed[0] = resigned;
    let st = r1.remove(1);
    let err = dkg::round2(st, &ids[1].1, &mut OsRng, &mixed)
        .err()
        .unwrap();
    assert!(
        err.reason.contains("not signed by its identity key"),
        "{err}"
    );
    // And the transcripts of the two ciphersuites differ over the same packages.
    let received: BTreeMap<u16, Vec<u8>> = broadcast
        .iter()
        .map(|b| (b.identifier, b.package.clone()))
        .collect();
    assert_ne!(
        dkg::transcript_hash(&setup(1, &ids, 2), &received),
        dkg::transcript_hash_for::<Ed25519Sha512>(&setup(1, &ids, 2), &received)
    );
}
