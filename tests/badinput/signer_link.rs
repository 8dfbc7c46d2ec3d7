//! Malformed requests on the signer link, from a coordinator taken over: each refused under
//! the rule a handler gives such input, and recorded.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_refuses_malformed_link_requests() {
    let mut c = Cluster::start(3, 2).await;
    let (mut signers, _links) = take_over(&mut c, 3).await;
    let mut book = Book::bad_inputs("badinput-signer-link");
    let d = signers.get_mut(&1).unwrap();
    let mut check = |name: &str, a: Ans, rule: &str| {
        match &a {
            Ans::Refusal(r) => assert_eq!(r.rule, rule, "{name}: {r:?}"),
            other => panic!("{name}: accepted: {other:?}"),
        }
        book.handled(&format!("signer link: {name}"), rule);
    };
    for len in [0usize, 15, 17, 1000] {
        let a = d
            .call(Req::Commit(spb::CommitRequest {
                scheme: Default::default(),
                session_id: vec![1; len],
            }))
            .await;
        check(
            &format!("commit, session id of {len} bytes"),
            a,
            "bad-request",
        );
    }
    // A key group that does not exist; one this signer does not hold yet (no ed25519 DKG ran).
    for (name, scheme, rule) in [
        ("commit, unknown key scheme 7", 7, "bad-request"),
        ("commit, ed25519 before its DKG", 1, "no-key-share"),
    ] {
        let a = d
            .call(Req::Commit(spb::CommitRequest {
                scheme,
                session_id: vec![1; 16],
            }))
            .await;
        check(name, a, rule);
    }
    // Pre-generated commitments: the batch is bounded, every id is 16 bytes, none repeats,
    // and a bad batch leaves nothing outstanding.
    for (name, ids, rule) in [
        ("presign, empty batch", vec![], "bad-request"),
        (
            "presign, 257 session ids",
            vec![vec![2u8; 16]; 257],
            "bad-request",
        ),
        (
            "presign, a 15-byte session id",
            vec![vec![3u8; 16], vec![3u8; 15]],
            "bad-request",
        ),
        (
            "presign, one session id twice",
            vec![vec![4u8; 16], vec![4u8; 16]],
            "nonce-unknown",
        ),
    ] {
        let a = d
            .call(Req::Presign(spb::PresignRequest {
                scheme: Default::default(),
                session_ids: ids,
            }))
            .await;
        check(name, a, rule);
    }
    // The rejected batches left no nonce behind: their sessions cannot be signed in.
    let a = d
        .call(Req::Presign(spb::PresignRequest {
            scheme: Default::default(),
            session_ids: vec![vec![3u8; 16], vec![4u8; 16]],
        }))
        .await;
    match a {
        Ans::Presign(p) => assert_eq!(p.commitments.len(), 2, "{p:?}"),
        other => panic!("a good batch after bad ones was refused: {other:?}"),
    }
    let (i, bsig) = signed_intent(
        &c.backend_key(),
        "wd-bad-link",
        ("ethereum", "ETH", TO),
        "1000",
    );
    let sign = |sid: Vec<u8>, intent: Vec<u8>, package: Vec<u8>, approvals| {
        Req::Sign(spb::SignRequest {
            key_epoch: 0,
            scheme: Default::default(),
            session_id: sid,
            intent,
            backend_signature: bsig.clone(),
            signing_package: package,
            approvals,
            vault_action: None,
            solana_void: None,
        })
    };
    // Each sign request spends the session's nonce first, so each gets a fresh commitment.
    async fn fresh(d: &mut crate::hostile::Driven) -> Vec<u8> {
        let s = session();
        d.commit(s).await;
        s.to_vec()
    }
    let s = fresh(d).await;
    let a = d.call(sign(s, vec![7; 40], vec![1; 10], vec![])).await;
    check("sign, intent garbage", a, "intent-malformed");
    let s = fresh(d).await;
    let a = d.call(sign(s, i.encode(), vec![1; 10], vec![])).await;
    check("sign, signing package garbage", a, "package-malformed");
    let s = fresh(d).await;
    let bad_approval = vec![ppb::AdminSignature {
        admin: vec![1; 5],
        signature: vec![],
    }];
    let a = d.call(sign(s, i.encode(), vec![1; 10], bad_approval)).await;
    check("sign, approval with a 5-byte admin key", a, "bad-request");
    let a = d.call(sign(vec![1; 3], i.encode(), vec![], vec![])).await;
    check("sign, session id of 3 bytes", a, "bad-request");
    let a = d
        .call(Req::PolicyUpdate(ppb::SignedPolicy::default()))
        .await;
    check("policy update, empty", a, "policy-update-invalid");
    let a = d
        .call(Req::PolicyVeto(spb::PolicyVeto {
            policy_hash: vec![1; 31],
            veto: None,
        }))
        .await;
    check("policy veto, 31-byte hash", a, "policy-veto-invalid");
    let a = d
        .call(Req::PolicyVeto(spb::PolicyVeto {
            policy_hash: vec![1; 32],
            veto: None,
        }))
        .await;
    check("policy veto, no signature", a, "policy-veto-invalid");
    let a = d
        .call(Req::LedgerNotice(spb::LedgerNotice {
            intent: vec![0; 100],
            signature: vec![1; 65],
            signed_at_ms: 0,
        }))
        .await;
    check("ledger notice, intent garbage", a, "intent-malformed");
    let a = d
        .call(Req::LedgerNotice(spb::LedgerNotice {
            intent: i.encode(),
            signature: vec![],
            signed_at_ms: 0,
        }))
        .await;
    check("ledger notice, empty signature", a, "ledger-notice-invalid");
    let notice = |intent: Vec<u8>, signature: Vec<u8>| spb::LedgerNotice {
        intent,
        signature,
        signed_at_ms: 0,
    };
    let a = d
        .call(Req::LedgerNotices(spb::LedgerNotices { notices: vec![] }))
        .await;
    check("ledger notices, none", a, "bad-request");
    let too_many = vec![notice(i.encode(), vec![]); quorate_core::link::MAX_NOTICES + 1];
    let a = d
        .call(Req::LedgerNotices(spb::LedgerNotices { notices: too_many }))
        .await;
    check("ledger notices, 257", a, "bad-request");
    // A batch of bad notices: each refused under its own rule, as it would be alone.
    let a = d
        .call(Req::LedgerNotices(spb::LedgerNotices {
            notices: vec![
                notice(vec![0; 100], vec![1; 65]),
                notice(i.encode(), vec![]),
                notice(i.encode(), vec![7; 65]),
            ],
        }))
        .await;
    let Ans::LedgerAcks(acks) = &a else {
        panic!("ledger notices, all bad: {a:?}");
    };
    let expected = [
        ("intent garbage", "intent-malformed"),
        ("empty signature", "ledger-notice-invalid"),
        ("signature garbage", "ledger-notice-invalid"),
    ];
    assert_eq!(acks.results.len(), expected.len(), "{acks:?}");
    for (r, (what, rule)) in acks.results.iter().zip(expected) {
        let Some(spb::ledger_notice_result::Result::Refusal(r)) = &r.result else {
            panic!("ledger notices, {what}: accepted: {r:?}");
        };
        check(
            &format!("ledger notices, batch of 3, {what}"),
            Ans::Refusal(r.clone()),
            rule,
        );
    }
    let a = d
        .call(Req::DkgRound1(spb::DkgRound1Request {
            refresh: None,
            scheme: Default::default(),
            session_id: vec![1; 3],
            manifest_hash: vec![],
        }))
        .await;
    check("DKG round 1 over an existing share", a, "dkg-key-exists");
    let a = d
        .call(Req::DkgRound2(spb::DkgRound2Request {
            scheme: Default::default(),
            session_id: vec![1; 16],
            packages: vec![],
        }))
        .await;
    check("DKG round 2 out of order", a, "dkg-aborted");
    let a = d
        .call(Req::DkgConfirm(spb::DkgConfirmRequest {
            scheme: Default::default(),
            session_id: vec![],
            results: vec![],
        }))
        .await;
    check("DKG confirmation with nothing", a, "dkg-aborted");
    for (name, challenge) in [("empty", vec![]), ("65 bytes", vec![3; 65])] {
        let a = d
            .call(Req::StatusChallenge(spb::StatusChallenge { challenge }))
            .await;
        check(&format!("status challenge {name}"), a, "bad-request");
    }

    // The signer is healthy, released no share for any of it, and signs a proper request.
    for (name, child) in c.signers.iter_mut() {
        assert!(child.try_wait().unwrap().is_none(), "{name} died");
    }
    let manifest = quorate_wire::manifest::Manifest::load(&c.path("manifest.toml")).unwrap();
    let key = manifest.signer(1).unwrap().identity_key;
    let log = signers.get_mut(&1).unwrap().verified_audit(&key).await;
    assert!(
        !log.iter()
            .any(|r| r.event.kind == quorate_core::audit::kind::SHARE_RELEASED),
        "a share was released"
    );
    let s = session();
    let c1 = signers.get_mut(&1).unwrap().commit(s).await;
    let c2 = signers.get_mut(&2).unwrap().commit(s).await;
    let pkg = frost_secp256k1::SigningPackage::new(
        std::collections::BTreeMap::from([
            (crate::hostile::id(1), c1),
            (crate::hostile::id(2), c2),
        ]),
        &i.digest(),
    );
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &i.encode(), &bsig, &pkg)
        .await;
    assert!(matches!(a, Ans::Sign(_)), "{a:?}");
    book.finish();
}
