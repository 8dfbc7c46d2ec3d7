//! The batch verification of ledger notices' group signatures: every signature is judged as
//! it would be alone, whatever else is in the batch.

use frost_core::{Ciphersuite, Field, Group, Scalar, Signature, SigningKey, VerifyingKey};
use rand::rngs::OsRng;

use super::verify_all;

/// (message, serialized signature)
type Signed = (Vec<u8>, Vec<u8>);

fn signed<C: Ciphersuite>(n: usize) -> (VerifyingKey<C>, Vec<Signed>) {
    let key = SigningKey::<C>::new(&mut OsRng);
    let items = (0..n)
        .map(|i| {
            let message = format!("withdrawal {i}").into_bytes();
            let signature = key.sign(OsRng, &message).serialize().unwrap();
            (message, signature)
        })
        .collect();
    (VerifyingKey::from(&key), items)
}

/// `signature` with `delta` added to its z, in frost's serialization (R then z).
fn shifted<C: Ciphersuite>(signature: &[u8], delta: Option<Scalar<C>>) -> Vec<u8> {
    let s = Signature::<C>::deserialize(signature).unwrap();
    let z = match delta {
        Some(d) => *s.z() + d,
        None => *s.z(),
    };
    let mut out = <C::Group as Group>::serialize(s.R())
        .unwrap()
        .as_ref()
        .to_vec();
    out.extend_from_slice(<<C::Group as Group>::Field as Field>::serialize(&z).as_ref());
    out
}

fn verdicts<C: Ciphersuite>(key: &VerifyingKey<C>, items: &[Signed]) -> Vec<bool> {
    verify_all::<C>(key, items.iter().map(|(m, s)| (&m[..], &s[..])))
}

fn every_signature_is_judged_alone<C: Ciphersuite>() {
    // One, two and many valid signatures: all accepted.
    for n in [1, 2, 9] {
        let (key, items) = signed::<C>(n);
        assert_eq!(verdicts(&key, &items), vec![true; n], "{n} valid");
    }
    let (key, mut items) = signed::<C>(6);
    let (_, other) = signed::<C>(1);
    // A signature moved to another message, one that does not parse, an empty one and a
    // valid signature by another key: each refused, the rest accepted.
    items[1].1 = items[0].1.clone();
    items[3].1[5] ^= 0xff;
    items[4].1.clear();
    items[5] = other[0].clone();
    assert_eq!(
        verdicts(&key, &items),
        vec![true, false, true, false, false, false]
    );
    // Alone, a forged signature is refused too.
    assert_eq!(verdicts(&key, &items[1..2]), vec![false]);
    // A batch that verifies, with signatures that do not parse beside it: only the valid
    // ones are accepted.
    let (key, mut items) = signed::<C>(4);
    items[2].1.clear();
    items[3].1 = vec![0xff; items[3].1.len()];
    assert_eq!(verdicts(&key, &items), vec![true, true, false, false]);
    // Two forgeries that cancel out in an unweighted sum (z + 1 and z - 1) fail, each: the
    // batch weighs every signature by its own random factor.
    let (key, mut items) = signed::<C>(3);
    let one = <<C::Group as Group>::Field as Field>::one();
    assert_eq!(
        shifted::<C>(&items[0].1, None),
        items[0].1,
        "R || z, as frost writes it"
    );
    items[0].1 = shifted::<C>(&items[0].1, Some(one));
    items[1].1 = shifted::<C>(
        &items[1].1,
        Some(<<C::Group as Group>::Field as Field>::zero() - one),
    );
    assert_eq!(verdicts(&key, &items), vec![false, false, true]);
    assert!(verdicts::<C>(&key, &[]).is_empty());
}

#[test]
fn secp256k1_notices_are_judged_alone_in_a_batch() {
    every_signature_is_judged_alone::<frost_secp256k1::Secp256K1Sha256>();
}

#[test]
fn ed25519_notices_are_judged_alone_in_a_batch() {
    every_signature_is_judged_alone::<frost_ed25519::Ed25519Sha512>();
}
