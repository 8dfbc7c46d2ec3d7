//! The FROST protocol steps of `quorate-core`, driven in memory with the real `frost-secp256k1`:
//! DKG through the signed/sealed relay protocol, signing of an intent digest by every t-subset,
//! and the ways a relay can tamper with either.

use std::collections::BTreeMap;

use frost_secp256k1::{keys::KeyPackage, keys::PublicKeyPackage, Identifier, SigningPackage};
use proptest::prelude::*;
use quorate_core::{
    backend,
    dkg::{self, DkgSetup, SignedRound1},
    identity::IdentitySecret,
    intent::WithdrawalIntent,
    message::ChainFormat,
    refusal::Rule,
    seal::Sealed,
    signing::{check_request, sign_share, Gate, NonceStore},
};
use rand::rngs::OsRng;

struct Group {
    keys: BTreeMap<u16, KeyPackage>,
    public: PublicKeyPackage,
    group_key: Vec<u8>,
}

fn setup(me: u16, ids: &[(u16, IdentitySecret)], t: u16, session: &[u8]) -> DkgSetup {
    DkgSetup {
        session_id: session.to_vec(),
        manifest_hash: [7; 32],
        me,
        threshold: t,
        participants: ids.iter().map(|(i, k)| (*i, k.public())).collect(),
    }
}

/// Runs rounds 1 to 3 of the relayed DKG honestly; returns each participant's output.
fn dkg_outputs(
    n: u16,
    t: u16,
    session: &[u8],
) -> (Vec<(u16, IdentitySecret)>, Vec<dkg::DkgOutput>) {
    let ids: Vec<(u16, IdentitySecret)> = (1..=n)
        .map(|i| (i, IdentitySecret::generate(&mut OsRng)))
        .collect();
    let mut r1 = Vec::new();
    let mut broadcast = Vec::new();
    for (i, k) in &ids {
        let (st, signed) = dkg::round1(setup(*i, &ids, t, session), k, &mut OsRng).unwrap();
        r1.push(st);
        broadcast.push(signed);
    }
    let mut r2 = Vec::new();
    let mut mail: BTreeMap<u16, Vec<Sealed>> = BTreeMap::new();
    let mut echoes = Vec::new();
    for (st, (_, k)) in r1.into_iter().zip(&ids) {
        let (st, sealed) = dkg::round2(st, k, &mut OsRng, &broadcast).unwrap();
        echoes.push(dkg::echo(&st, k));
        r2.push(st);
        for s in sealed {
            mail.entry(s.recipient).or_default().push(s);
        }
    }
    let outs = r2
        .into_iter()
        .zip(&ids)
        .map(|(st, (i, k))| dkg::round3(st, k, &mail[i], &echoes).unwrap())
        .collect();
    (ids, outs)
}

/// Runs the whole relayed DKG honestly, confirmation included.
fn run_dkg(n: u16, t: u16) -> Group {
    let (ids, outs) = dkg_outputs(n, t, b"session-1");
    let mut keys = BTreeMap::new();
    for (o, (i, k)) in outs.iter().zip(&ids) {
        assert!(dkg::verify_result(
            &k.public(),
            b"session-1",
            &o.transcript,
            &o.group_key,
            &o.signature
        ));
        keys.insert(*i, o.key_package.clone());
    }
    for o in &outs {
        assert_eq!(o.group_key, outs[0].group_key, "all agree on the group key");
        assert_eq!(
            o.transcript, outs[0].transcript,
            "all agree on the transcript"
        );
    }
    // The confirmation round: each participant checks everyone's signed result.
    let results = signed_results(&outs, &ids);
    let participants = ids.iter().map(|(i, k)| (*i, k.public())).collect();
    for o in &outs {
        dkg::check_confirmations(&participants, b"session-1", o, &results).unwrap();
    }
    Group {
        keys,
        public: outs[0].public_key_package.clone(),
        group_key: outs[0].group_key.clone(),
    }
}

fn signed_results(
    outs: &[dkg::DkgOutput],
    ids: &[(u16, IdentitySecret)],
) -> Vec<dkg::SignedResult> {
    outs.iter()
        .zip(ids)
        .map(|(o, (i, _))| dkg::SignedResult {
            identifier: *i,
            group_key: o.group_key.clone(),
            transcript: o.transcript.to_vec(),
            signature: o.signature.clone(),
        })
        .collect()
}

fn intent(now: u64) -> WithdrawalIntent {
    WithdrawalIntent::from_parts(
        "wd-1",
        "ethereum",
        "ETH",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "1000000000000000000",
        now,
        now + 60_000,
        None,
    )
    .unwrap()
}

/// Signs `intent` with the signers in `subset` through the signer-side gate.
fn sign_with(g: &Group, subset: &[u16], intent: &WithdrawalIntent) -> Vec<u8> {
    let now = intent.created_at_ms + 1;
    let backend_key = k256::ecdsa::SigningKey::random(&mut OsRng);
    let backend_pub = backend::BackendKey::from_sec1(
        backend_key
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes(),
    )
    .unwrap();
    let sig = backend::sign(&backend_key, &intent.digest());
    let session = [9u8; 16];
    let mut stores: BTreeMap<u16, NonceStore> = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for i in subset {
        let mut s = NonceStore::new(8, 10_000);
        let c = s
            .commit(session, g.keys[i].signing_share(), &mut OsRng, now)
            .unwrap();
        commitments.insert(Identifier::try_from(*i).unwrap(), c);
        stores.insert(*i, s);
    }
    let package = SigningPackage::new(commitments, &intent.digest());
    let bytes = package.serialize().unwrap();
    let keys = [backend_pub];
    let all_ids: std::collections::BTreeSet<Identifier> = g
        .keys
        .keys()
        .map(|i| Identifier::try_from(*i).unwrap())
        .collect();
    let mut shares = BTreeMap::new();
    for i in subset {
        let (nonces, own) = stores.get_mut(i).unwrap().take(&session, now).unwrap();
        let gate = Gate {
            retired: &[],
            me: Identifier::try_from(*i).unwrap(),
            signers: &all_ids,
            min_signers: g.public.min_signers().map(usize::from).unwrap_or(2),
            backend_keys: &keys,
            format: &|_| Ok(ChainFormat::IntentDigest),
            now_ms: now,
            max_clock_skew_ms: 0,
        };
        let ok = check_request(&gate, &intent.encode(), &sig, &bytes, &own).unwrap();
        shares.insert(
            Identifier::try_from(*i).unwrap(),
            sign_share(&ok.package, nonces, &g.keys[i]).unwrap(),
        );
    }
    let signature = frost_secp256k1::aggregate(&package, &shares, &g.public).unwrap();
    g.public
        .verifying_key()
        .verify(&intent.digest(), &signature)
        .unwrap();
    signature.serialize().unwrap()
}

#[test]
fn every_two_of_three_subset_signs_the_digest() {
    let g = run_dkg(3, 2);
    assert_eq!(g.group_key.len(), 33);
    let i = intent(1_700_000_000_000);
    for subset in [[1u16, 2], [1, 3], [2, 3]] {
        let sig = sign_with(&g, &subset, &i);
        assert_eq!(sig.len(), 65);
    }
    // All three together sign too.
    sign_with(&g, &[1, 2, 3], &i);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]
    /// Any t-subset of a t-of-n group signs (n up to 5).
    #[test]
    fn any_t_subset_signs(n in 3u16..=5, t_off in 0u16..=2, pick in any::<u64>()) {
        let t = (2 + t_off).min(n);
        let g = run_dkg(n, t);
        let mut all: Vec<u16> = (1..=n).collect();
        // Deterministic shuffle from `pick`.
        let mut x = pick;
        for i in (1..all.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            all.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut subset = all[..t as usize].to_vec();
        subset.sort_unstable();
        sign_with(&g, &subset, &intent(1_700_000_000_000));
    }
}

#[test]
fn dkg_detects_a_forged_round1_package() {
    let ids: Vec<(u16, IdentitySecret)> = (1..=3)
        .map(|i| (i, IdentitySecret::generate(&mut OsRng)))
        .collect();
    let mut states = Vec::new();
    let mut broadcast: Vec<SignedRound1> = Vec::new();
    for (i, k) in &ids {
        let (st, signed) = dkg::round1(setup(*i, &ids, 2, b"s"), k, &mut OsRng).unwrap();
        states.push(st);
        broadcast.push(signed);
    }
    // The relay alters signer 3's package in transit: its signature no longer covers it.
    let mut tampered = broadcast.clone();
    tampered[2].package[5] ^= 1;
    let err = dkg::round2(states.remove(0), &ids[0].1, &mut OsRng, &tampered)
        .err()
        .expect("tampered round-1 package refused");
    // The relay may have done it: the honest sender is not named.
    assert!(err.culprits.is_empty(), "{err}");
}

/// One signer's round-2 state and the packages it sealed.
type Round2Out = (dkg::Round2State, Vec<Sealed>);

/// Three signers through round 2, with signer 3 equivocating: it signs a second, different
/// round-1 package, and the relay shows that one to signer 2 only.
fn equivocating_round2(session: &[u8]) -> (Vec<(u16, IdentitySecret)>, Vec<Round2Out>) {
    let ids: Vec<(u16, IdentitySecret)> = (1..=3)
        .map(|i| (i, IdentitySecret::generate(&mut OsRng)))
        .collect();
    let mut r1 = Vec::new();
    let mut broadcast = Vec::new();
    for (i, k) in &ids {
        let (st, signed) = dkg::round1(setup(*i, &ids, 2, session), k, &mut OsRng).unwrap();
        r1.push(st);
        broadcast.push(signed);
    }
    let (_, other3) = dkg::round1(setup(3, &ids, 2, session), &ids[2].1, &mut OsRng).unwrap();
    let mut view2 = broadcast.clone();
    view2[2] = other3;
    let views = [&broadcast, &view2, &broadcast];
    let out = r1
        .into_iter()
        .zip(&ids)
        .zip(views)
        .map(|((st, (_, k)), view)| dkg::round2(st, k, &mut OsRng, view).unwrap())
        .collect();
    (ids, out)
}

#[test]
fn dkg_equivocation_and_tampered_shares_abort_with_culprit() {
    let (ids, out) = equivocating_round2(b"s");
    let mut out = out.into_iter();
    let (st1, sealed1) = out.next().unwrap();
    let (st2, sealed2) = out.next().unwrap();
    let (st3, sealed3) = out.next().unwrap();
    let echoes = vec![
        dkg::echo(&st1, &ids[0].1),
        dkg::echo(&st2, &ids[1].1),
        dkg::echo(&st3, &ids[2].1),
    ];
    let to = |n: u16| -> Vec<Sealed> {
        sealed1
            .iter()
            .chain(&sealed2)
            .chain(&sealed3)
            .filter(|s| s.recipient == n)
            .cloned()
            .collect()
    };
    // Both honest signers name signer 3 from the echoes: two packages under its signature.
    // (Without echoes, signer 2 could only see that signer 1's share does not open, and would
    // have blamed the honest signer 1.)
    let err = dkg::round3(st2, &ids[1].1, &to(2), &echoes).expect_err("equivocation detected");
    assert_eq!(err.culprits, vec![3], "{err}");
    assert!(err.reason.contains("equivocation"), "{err}");
    let err = dkg::round3(st1, &ids[0].1, &to(1), &echoes).expect_err("equivocation detected");
    assert_eq!(err.culprits, vec![3], "{err}");

    // A relay that withholds an echo names nobody.
    let err = dkg::round3(st3, &ids[2].1, &to(3), &echoes[..1]).expect_err("echo missing");
    assert!(err.culprits.is_empty(), "{err}");
}

#[test]
fn a_relay_stripping_sender_signatures_from_an_echo_frames_nobody() {
    // Signer 3 equivocates (P to signer 1, P' to signer 2), and the relay also replaces
    // signer 3's signature on P' in signer 2's echo with junk, hoping signer 1 blames signer 2
    // for echoing an unsigned package. The echo's own signature covers the sender signatures,
    // so the altered echo is not signer 2's: nobody is named rather than an honest signer.
    let (ids, out) = equivocating_round2(b"x");
    let mut out = out.into_iter().map(|(st, _)| st);
    let (st1, st2, st3) = (
        out.next().unwrap(),
        out.next().unwrap(),
        out.next().unwrap(),
    );
    let mut echo2 = dkg::echo(&st2, &ids[1].1);
    echo2.packages[2].signature = vec![0; 64];
    let echoes = [echo2, dkg::echo(&st3, &ids[2].1)];
    let err = dkg::round3(st1, &ids[0].1, &[], &echoes).expect_err("aborts");
    assert!(
        err.culprits.is_empty(),
        "an honest signer was framed: {err}"
    );
}

#[test]
fn dkg_echo_checks_and_tampered_shares() {
    let ids: Vec<(u16, IdentitySecret)> = (1..=3)
        .map(|i| (i, IdentitySecret::generate(&mut OsRng)))
        .collect();
    let run_round2 = || {
        let mut r1 = Vec::new();
        let mut broadcast = Vec::new();
        for (i, k) in &ids {
            let (st, signed) = dkg::round1(setup(*i, &ids, 2, b"e"), k, &mut OsRng).unwrap();
            r1.push(st);
            broadcast.push(signed);
        }
        let mut states = Vec::new();
        let mut sealed = Vec::new();
        let mut echoes = Vec::new();
        for (st, (_, k)) in r1.into_iter().zip(&ids) {
            let (st, s) = dkg::round2(st, k, &mut OsRng, &broadcast).unwrap();
            echoes.push(dkg::echo(&st, k));
            states.push(st);
            sealed.extend(s);
        }
        let packages = broadcast
            .iter()
            .map(|b| (b.identifier, b.package.clone()))
            .collect();
        let transcript = dkg::transcript_hash(&setup(1, &ids, 2, b"e"), &packages);
        (states, sealed, echoes, transcript)
    };
    let to = |sealed: &[Sealed], n: u16| -> Vec<Sealed> {
        sealed
            .iter()
            .filter(|s| s.recipient == n)
            .cloned()
            .collect()
    };

    // An echo altered in transit (its signature no longer covers it): nobody named.
    let (mut states, sealed, mut echoes, _) = run_round2();
    echoes[0].packages[1].package[3] ^= 1;
    let st = states.remove(2);
    let err = dkg::round3(st, &ids[2].1, &to(&sealed, 3), &echoes).expect_err("altered echo");
    assert!(err.culprits.is_empty(), "{err}");

    // A participant that signs an echo holding a package its sender never signed is named.
    let (mut states, sealed, mut echoes, _) = run_round2();
    echoes[0].packages[1].package[3] ^= 1;
    let d = dkg::echo_digest(&echoes[0].packages);
    echoes[0].signature = ids[0].1.sign(
        "quorate/dkg-echo/v1",
        &[b"e", &[7; 32], &1u16.to_be_bytes(), &d],
    );
    let st = states.remove(2);
    let err = dkg::round3(st, &ids[2].1, &to(&sealed, 3), &echoes).expect_err("lying echo");
    assert_eq!(err.culprits, vec![1], "{err}");

    // A sealed share altered in transit fails its sender's signature: nobody is named (the
    // relay did it; naming the sender would frame an honest signer).
    let (mut states, mut sealed, echoes, _) = run_round2();
    let bad = sealed
        .iter_mut()
        .find(|s| s.recipient == 3 && s.sender == 1)
        .unwrap();
    bad.ciphertext[0] ^= 1;
    let st = states.remove(2);
    let err = dkg::round3(st, &ids[2].1, &to(&sealed, 3), &echoes).expect_err("tamper detected");
    assert!(err.culprits.is_empty(), "{err}");
    assert!(err.reason.contains("not signed"), "{err}");

    // A sender that seals and signs garbage (a valid seal of bytes that are no round-2
    // package) is named.
    let (mut states, mut sealed, echoes, transcript) = run_round2();
    let i = sealed
        .iter()
        .position(|s| s.recipient == 3 && s.sender == 1)
        .unwrap();
    let ctx = quorate_core::seal::SealContext {
        session_id: b"e",
        transcript: &transcript,
        sender: 1,
        recipient: 3,
    };
    sealed[i] =
        quorate_core::seal::seal(&mut OsRng, &ids[0].1, &ids[2].1.public(), &ctx, b"garbage");
    let st = states.remove(2);
    let err = dkg::round3(st, &ids[2].1, &to(&sealed, 3), &echoes).expect_err("garbage detected");
    assert_eq!(err.culprits, vec![1], "{err}");
}

#[test]
fn relay_cannot_replace_our_own_round1_package() {
    let ids: Vec<(u16, IdentitySecret)> = (1..=3)
        .map(|i| (i, IdentitySecret::generate(&mut OsRng)))
        .collect();
    let mut r1 = Vec::new();
    let mut broadcast = Vec::new();
    for (i, k) in &ids {
        let (st, signed) = dkg::round1(setup(*i, &ids, 2, b"s"), k, &mut OsRng).unwrap();
        r1.push(st);
        broadcast.push(signed);
    }
    // A validly signed but different package in signer 1's name (an older session's).
    let (_, older) = dkg::round1(setup(1, &ids, 2, b"s"), &ids[0].1, &mut OsRng).unwrap();
    let mut view = broadcast.clone();
    view[0] = older;
    let err = dkg::round2(r1.remove(0), &ids[0].1, &mut OsRng, &view)
        .err()
        .expect("refused");
    assert!(
        err.reason.contains("different package in our name"),
        "{err}"
    );
}

#[test]
fn nonce_store_is_single_use_bounded_and_expiring() {
    let g = run_dkg(3, 2);
    let share = g.keys[&1].signing_share();
    let mut s = NonceStore::new(2, 1_000);
    s.commit([1; 16], share, &mut OsRng, 0).unwrap();
    // The same session cannot be committed twice.
    assert_eq!(
        s.commit([1; 16], share, &mut OsRng, 0).unwrap_err().rule,
        Rule::NonceUnknown
    );
    s.commit([2; 16], share, &mut OsRng, 0).unwrap();
    // Bounded.
    assert_eq!(
        s.commit([3; 16], share, &mut OsRng, 0).unwrap_err().rule,
        Rule::NonceLimit
    );
    // Taken once, then gone.
    s.take(&[1; 16], 10).unwrap();
    assert_eq!(s.take(&[1; 16], 10).unwrap_err().rule, Rule::NonceUnknown);
    // Expired nonces are unusable and make room.
    assert_eq!(
        s.take(&[2; 16], 1_000).unwrap_err().rule,
        Rule::NonceUnknown
    );
    s.commit([4; 16], share, &mut OsRng, 5_000).unwrap();
    s.commit([5; 16], share, &mut OsRng, 5_000).unwrap();
    assert_eq!(s.len(), 2);
}

#[test]
fn a_presigned_batch_is_all_or_nothing_bounded_and_single_use() {
    let g = run_dkg(3, 2);
    let share = g.keys[&1].signing_share();
    let mut s = NonceStore::new(4, 1_000);
    let batch = s
        .commit_batch(&[[1; 16], [2; 16], [3; 16]], share, &mut OsRng, 0)
        .unwrap();
    assert_eq!(batch.len(), 3);
    // Every commitment in a batch is fresh.
    let distinct: std::collections::HashSet<Vec<u8>> =
        batch.iter().map(|c| c.serialize().unwrap()).collect();
    assert_eq!(distinct.len(), 3);
    // Past the bound: refused, and nothing of the batch is kept.
    assert_eq!(
        s.commit_batch(&[[4; 16], [5; 16]], share, &mut OsRng, 0)
            .unwrap_err()
            .rule,
        Rule::NonceLimit
    );
    assert_eq!(s.len(), 3);
    // A session in use, or twice in one batch: refused, nothing kept.
    for bad in [vec![[4; 16], [1; 16]], vec![[4; 16], [4; 16]]] {
        assert_eq!(
            s.commit_batch(&bad, share, &mut OsRng, 0).unwrap_err().rule,
            Rule::NonceUnknown
        );
        assert_eq!(s.len(), 3);
    }
    // Each hands out the commitment it was made with, once.
    let (_, c) = s.take(&[2; 16], 10).unwrap();
    assert_eq!(c, batch[1]);
    assert_eq!(s.take(&[2; 16], 10).unwrap_err().rule, Rule::NonceUnknown);
    // The batch expires together and its room comes back.
    assert_eq!(
        s.take(&[1; 16], 1_000).unwrap_err().rule,
        Rule::NonceUnknown
    );
    s.commit_batch(
        &[[6; 16], [7; 16], [8; 16], [9; 16]],
        share,
        &mut OsRng,
        1_000,
    )
    .unwrap();
    assert_eq!(s.len(), 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever sequence of commits and takes happens, a session's nonce is handed out at
    /// most once and the store never exceeds its bound.
    #[test]
    fn no_nonce_is_ever_handed_out_twice(ops in proptest::collection::vec((any::<bool>(), 0u8..6, 0u64..3_000), 1..60)) {
        let share = frost_secp256k1::keys::SigningShare::deserialize(&[1u8; 32]).unwrap();
        let mut s = NonceStore::new(4, 1_000);
        let mut handed = std::collections::HashSet::new();
        let mut now = 0u64;
        for (commit, sid, dt) in ops {
            now += dt;
            let session = [sid; 16];
            if commit && sid % 2 == 0 {
                let _ = s.commit(session, &share, &mut OsRng, now);
            } else if commit {
                // A batch of this session and the next one.
                let _ = s.commit_batch(&[session, [sid.wrapping_add(1) % 6; 16]], &share, &mut OsRng, now);
            } else if let Ok((_, c)) = s.take(&session, now) {
                let bytes = c.serialize().unwrap();
                prop_assert!(handed.insert(bytes), "a commitment was handed out twice");
            }
            prop_assert!(s.len() <= 4);
        }
    }
}

#[test]
fn a_share_is_kept_only_when_every_participant_confirms() {
    let (ids, outs) = dkg_outputs(3, 2, b"s");
    let participants: BTreeMap<u16, _> = ids.iter().map(|(i, k)| (*i, k.public())).collect();
    let all = signed_results(&outs, &ids);
    dkg::check_confirmations(&participants, b"s", &outs[0], &all).unwrap();

    // One participant missing (it aborted): nobody keeps a share.
    let err = dkg::check_confirmations(&participants, b"s", &outs[0], &all[..2]).unwrap_err();
    assert!(err.reason.contains("only 2 of 3"), "{err}");
    // A forged confirmation names its supposed signer.
    let mut forged = all.clone();
    forged[2].signature = ids[0].1.sign(
        "quorate/dkg-result/v1",
        &[b"s", &forged[2].transcript, &forged[2].group_key],
    );
    assert_eq!(
        dkg::check_confirmations(&participants, b"s", &outs[0], &forged)
            .unwrap_err()
            .culprits,
        vec![3]
    );
    // A properly signed result for another group key is refused.
    let mut other = all.clone();
    other[1].group_key[5] ^= 1;
    other[1].signature = ids[1].1.sign(
        "quorate/dkg-result/v1",
        &[b"s", &other[1].transcript, &other[1].group_key],
    );
    assert!(dkg::check_confirmations(&participants, b"s", &outs[0], &other).is_err());
    // A duplicate standing in for a missing one is refused.
    let mut dup = all.clone();
    dup[2] = dup[1].clone();
    assert!(dkg::check_confirmations(&participants, b"s", &outs[0], &dup).is_err());
}

#[test]
fn only_canonical_signing_packages_are_signed() {
    let g = run_dkg(3, 2);
    let now = 1_800_000_000_000;
    let i = intent(now);
    let backend_key = k256::ecdsa::SigningKey::random(&mut OsRng);
    let keys = [backend::BackendKey::from_sec1(
        backend_key
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes(),
    )
    .unwrap()];
    let sig = backend::sign(&backend_key, &i.digest());
    let all_ids: std::collections::BTreeSet<Identifier> = (1..=3u16)
        .map(|n| Identifier::try_from(n).unwrap())
        .collect();
    let mut store = NonceStore::new(8, 10_000);
    let session = [5u8; 16];
    let own = store
        .commit(session, g.keys[&1].signing_share(), &mut OsRng, now)
        .unwrap();
    let mut other = NonceStore::new(8, 10_000);
    let c2 = other
        .commit(session, g.keys[&2].signing_share(), &mut OsRng, now)
        .unwrap();
    let one = SigningPackage::new(
        BTreeMap::from([(Identifier::try_from(1u16).unwrap(), own)]),
        &i.digest(),
    )
    .serialize()
    .unwrap();
    let canonical = SigningPackage::new(
        BTreeMap::from([
            (Identifier::try_from(1u16).unwrap(), own),
            (Identifier::try_from(2u16).unwrap(), c2),
        ]),
        &i.digest(),
    )
    .serialize()
    .unwrap();
    // canonical = header ‖ count 2 ‖ E1 ‖ E2 ‖ message; one = header ‖ count 1 ‖ E1 ‖ message.
    let h = one
        .iter()
        .zip(&canonical)
        .position(|(a, b)| a != b)
        .unwrap();
    let e = canonical.len() - one.len();
    let (e1, e2) = (
        &canonical[h + 1..h + 1 + e],
        &canonical[h + 1 + e..h + 1 + 2 * e],
    );
    let message = &canonical[h + 1 + 2 * e..];
    let build = |entries: &[&[u8]]| {
        let mut out = canonical[..=h].to_vec();
        for x in entries {
            out.extend_from_slice(x);
        }
        out.extend_from_slice(message);
        out
    };
    assert_eq!(build(&[e1, e2]), canonical, "the layout is understood");
    let gate = Gate {
        retired: &[],
        me: Identifier::try_from(1u16).unwrap(),
        signers: &all_ids,
        min_signers: 2,
        backend_keys: &keys,
        format: &|_| Ok(ChainFormat::IntentDigest),
        now_ms: now,
        max_clock_skew_ms: 0,
    };
    let mut trailing = canonical.clone();
    trailing.push(0);
    // Three entries, signer 2 twice: a map keeps two, still a quorum.
    let mut repeated = build(&[e1, e2, e2]);
    repeated[h] = canonical[h] + 1;
    for (what, bytes) in [
        ("a signer repeated", repeated),
        ("signers out of order", build(&[e2, e1])),
        ("trailing bytes", trailing),
    ] {
        let r = check_request(&gate, &i.encode(), &sig, &bytes, &own).unwrap_err();
        assert_eq!(r.rule, Rule::PackageMalformed, "{what}: {r}");
        assert!(r.reason.contains("canonical"), "{what}: {r}");
    }
    assert!(check_request(&gate, &i.encode(), &sig, &canonical, &own).is_ok());
    // A package with a retired signer's commitment is refused, whatever the coordinator says.
    let retired = [Identifier::try_from(2u16).unwrap()];
    let retiring = Gate {
        retired: &retired,
        ..gate
    };
    let r = check_request(&retiring, &i.encode(), &sig, &canonical, &own).unwrap_err();
    assert_eq!(r.rule, Rule::SignerRetired, "{r}");
    assert!(r.permanent);
}
