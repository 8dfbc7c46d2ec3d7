//! The policy chain as the admin's desk verifies it: from a pinned genesis, each version
//! signed by the admins of the one before. Every test here tries to get a version past the
//! desk that the signers would not accept.

use quorate_core::{
    amount::Amount,
    identity::IdentitySecret,
    policy::{
        doc::zero_hash,
        governance::{next_version, POLICY_APPROVAL_DOMAIN},
        AdminSignature, ChainError, PolicyDoc, PolicyForm, SignedPolicy, VerifiedChain,
    },
};
use rand::rngs::OsRng;

fn keys(n: usize) -> Vec<IdentitySecret> {
    (0..n)
        .map(|_| IdentitySecret::generate(&mut OsRng))
        .collect()
}

fn genesis_doc(admins: &[IdentitySecret], quorum: u16) -> PolicyDoc {
    let list: Vec<String> = admins
        .iter()
        .map(|k| format!("\"{}\"", k.public()))
        .collect();
    let backend = IdentitySecret::generate(&mut OsRng).public();
    let toml = format!(
        r#"admin_quorum = {quorum}
admins = [{}]
backend_keys = ["{backend}"]
timelock = "10m"
frozen = false

[[assets]]
chain = "ethereum"
asset = "ETH"
decimals = 18
max_per_withdrawal = "100"
approval_threshold = "10"
approvals_required = 2
"#,
        list.join(", ")
    );
    PolicyForm::parse(&toml)
        .unwrap()
        .to_doc(1, &zero_hash())
        .unwrap()
}

fn signed(doc: PolicyDoc, by: &[&IdentitySecret]) -> SignedPolicy {
    let h = doc.hash();
    SignedPolicy {
        signatures: by
            .iter()
            .map(|k| AdminSignature::sign(k, POLICY_APPROVAL_DOMAIN, &[&h]))
            .collect(),
        doc,
    }
}

/// Genesis (2 of 3), v2 raising the ETH maximum (quorum), v3 a freeze (one admin).
fn honest() -> (Vec<IdentitySecret>, [u8; 32], Vec<SignedPolicy>) {
    let a = keys(3);
    let g = genesis_doc(&a, 2);
    let pin = g.hash();
    let v1 = signed(g, &[&a[0], &a[1]]);
    let mut d2 = next_version(&v1.doc, v1.doc.clone());
    d2.assets[0].max_per_withdrawal = Amount::new(200 * 10u128.pow(18)).unwrap();
    let v2 = signed(d2, &[&a[1], &a[2]]);
    let mut d3 = next_version(&v2.doc, v2.doc.clone());
    d3.frozen = true;
    let v3 = signed(d3, &[&a[2]]);
    (a, pin, vec![v1, v2, v3])
}

fn verify(pin: &[u8; 32], versions: &[SignedPolicy]) -> Result<VerifiedChain, ChainError> {
    let mut it = versions.iter().cloned();
    let mut chain = VerifiedChain::from_genesis(pin, it.next().unwrap())?;
    for v in it {
        chain.extend(v)?;
    }
    Ok(chain)
}

#[test]
fn an_honest_chain_verifies_and_every_version_is_found_by_its_hash() {
    let (_, pin, vs) = honest();
    let chain = verify(&pin, &vs).unwrap();
    assert_eq!(chain.head().doc.version, 3);
    assert!(chain.head().doc.frozen);
    for v in &vs {
        assert_eq!(chain.by_hash(&v.doc.hash()), Some(&v.doc));
        assert_eq!(chain.by_hash_hex(&v.doc.hash_hex()), Some(&v.doc));
    }
    assert_eq!(chain.by_hash(&[0; 32]), None);
    // The checkpoint is the newest version with a verified successor.
    assert_eq!(chain.checkpoint().doc.version, 2);
}

#[test]
fn a_doctored_genesis_does_not_match_the_pin() {
    let (_, pin, mut vs) = honest();
    vs[0].doc.whitelist.clear();
    vs[0].doc.assets[0].max_per_withdrawal = Amount::new(1).unwrap();
    assert!(matches!(
        verify(&pin, &vs),
        Err(ChainError::GenesisMismatch { .. })
    ));
}

#[test]
fn a_genesis_without_its_own_quorum_is_refused_even_if_pinned() {
    let a = keys(3);
    let g = genesis_doc(&a, 2);
    let pin = g.hash();
    let one = signed(g.clone(), &[&a[0]]);
    assert!(matches!(
        VerifiedChain::from_genesis(&pin, one),
        Err(ChainError::Genesis(_))
    ));
    // One admin signing twice is one signature.
    let twice = signed(g.clone(), &[&a[0], &a[0]]);
    assert!(matches!(
        VerifiedChain::from_genesis(&pin, twice),
        Err(ChainError::Genesis(_))
    ));
    // Someone who is not an admin counts for nothing.
    let stranger = IdentitySecret::generate(&mut OsRng);
    let with_stranger = signed(g, &[&a[0], &stranger]);
    assert!(matches!(
        VerifiedChain::from_genesis(&pin, with_stranger),
        Err(ChainError::Genesis(_))
    ));
}

#[test]
fn a_version_altered_after_signing_is_refused() {
    let (_, pin, mut vs) = honest();
    // The baseline attack: v2 gets an extra whitelist entry but keeps its signatures.
    vs[1].doc.assets[0].max_per_withdrawal = Amount::new(999 * 10u128.pow(18)).unwrap();
    match verify(&pin, &vs) {
        Err(ChainError::Link {
            version: 2, reason, ..
        }) => assert!(reason.contains("policy-update-signatures"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn gaps_wrong_parents_and_replays_are_refused() {
    let (a, pin, vs) = honest();
    // v3 straight after v1.
    let gap = vec![vs[0].clone(), vs[2].clone()];
    assert!(
        matches!(verify(&pin, &gap), Err(ChainError::Link { version: 3, prev: 1, reason }) if reason.contains("policy-update-version"))
    );
    // A version 2 whose prev_hash names something else, signed by the quorum.
    let mut d = vs[1].doc.clone();
    d.prev_hash = "11".repeat(32);
    let wrong_parent = vec![vs[0].clone(), signed(d, &[&a[0], &a[1]])];
    assert!(
        matches!(verify(&pin, &wrong_parent), Err(ChainError::Link { reason, .. }) if reason.contains("policy-update-chain"))
    );
    // The same version twice.
    let replay = vec![vs[0].clone(), vs[1].clone(), vs[1].clone()];
    assert!(matches!(
        verify(&pin, &replay),
        Err(ChainError::Link { version: 2, .. })
    ));
}

#[test]
fn a_loosening_needs_the_quorum_of_the_version_before_and_added_admins_do_not_count() {
    let (a, pin, vs) = honest();
    let newcomer = IdentitySecret::generate(&mut OsRng);
    let mut d = next_version(&vs[0].doc, vs[0].doc.clone());
    d.admins.push(newcomer.public().to_string());
    d.admins.sort();
    // One old admin and the admin the change adds: one valid signature of the version before.
    let v2 = signed(d.clone(), &[&a[0], &newcomer]);
    assert!(
        matches!(verify(&pin, &[vs[0].clone(), v2]), Err(ChainError::Link { reason, .. }) if reason.contains("1 valid distinct admin signatures; 2 are needed"))
    );
    let v2 = signed(d, &[&a[0], &a[2]]);
    assert!(verify(&pin, &[vs[0].clone(), v2]).is_ok());
}

#[test]
fn one_signature_passes_only_a_pure_freeze() {
    let (a, pin, vs) = honest();
    let mut d = next_version(&vs[0].doc, vs[0].doc.clone());
    d.frozen = true;
    d.assets[0].max_per_withdrawal = Amount::new(999 * 10u128.pow(18)).unwrap();
    let freeze_and_more = signed(d, &[&a[0]]);
    assert!(matches!(
        verify(&pin, &[vs[0].clone(), freeze_and_more]),
        Err(ChainError::Link { .. })
    ));
    // Unfreezing a frozen version with one signature is refused as well.
    let mut d = next_version(&vs[2].doc, vs[2].doc.clone());
    d.frozen = false;
    let mut with_unfreeze = vs.clone();
    with_unfreeze.push(signed(d, &[&a[0]]));
    assert!(matches!(
        verify(&pin, &with_unfreeze),
        Err(ChainError::Link { version: 4, .. })
    ));
}

#[test]
fn a_checkpoint_is_extended_but_never_forked() {
    let (a, pin, vs) = honest();
    let full = verify(&pin, &vs).unwrap();
    let mut chain = VerifiedChain::from_checkpoint(full.checkpoint().clone());
    assert_eq!(chain.start_version(), 2);
    chain.extend(vs[2].clone()).unwrap();
    assert_eq!(chain.head().doc.hash(), vs[2].doc.hash());
    // A version 3 that does not build on the checkpoint is refused.
    let mut other = next_version(&vs[0].doc, vs[0].doc.clone());
    other.version = 3;
    let fork = signed(other, &[&a[0], &a[1]]);
    let mut chain = VerifiedChain::from_checkpoint(full.checkpoint().clone());
    assert!(matches!(chain.extend(fork), Err(ChainError::Link { .. })));
}
