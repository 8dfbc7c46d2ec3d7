//! The policy engine end to end: refusals reach the backend with their rule; every signer
//! enforces the whitelist and its own velocity ledger against a hostile coordinator, across
//! restarts; quorum rotation by a hostile coordinator is bounded by (n/t) × the limit.

use std::collections::BTreeMap;

use frost_secp256k1::SigningPackage;
use quorate_core::intent::WithdrawalIntent;
use quorate_wire::signer::{coordinator_message::Body as Req, signer_message::Body as Ans};

use crate::{
    harness::{now_ms, Cluster},
    hostile::{audited_refusal, id, refused, session, take_over, Driven},
    scoreboard::Book,
};

const ETH: u128 = 1_000_000_000_000_000_000;
const NOT_WHITELISTED: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
const NOT_YET_ACTIVE: &str = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_the_backend_with_their_rule_and_survive_restarts() {
    let mut c = Cluster::start(3, 2).await;
    let eth = |n: u128| (n * ETH).to_string();

    // A destination that is not whitelisted: permanent, PermissionDenied, nothing stored.
    let (code, v) = c
        .submit(&[
            "--id",
            "wd-p-1",
            "--chain",
            "ethereum",
            "--asset",
            "ETH",
            "--to",
            NOT_WHITELISTED,
            "--amount",
            "1000",
        ])
        .await;
    assert_ne!(code, 0);
    assert_eq!(
        (v["status"].as_str(), v["rule"].as_str()),
        (Some("refused"), Some("policy-whitelist-destination")),
        "{v}"
    );
    assert!(v["reason"].as_str().unwrap().contains("whitelist"), "{v}");
    let mut client =
        quorate_wire::withdrawal::withdrawal_service_client::WithdrawalServiceClient::new(
            c.channel("backend").await,
        );
    let now = now_ms();
    let i = WithdrawalIntent::from_parts(
        "wd-p-1b",
        "ethereum",
        "ETH",
        NOT_WHITELISTED,
        "1000",
        now,
        now + 600_000,
        None,
    )
    .unwrap();
    let req = quorate_wire::withdrawal::SubmitRequest {
        intent: Some(quorate_wire::convert::intent_to_proto(&i)),
        backend_signature: quorate_core::backend::sign(&c.backend_key(), &i.digest()),
    };
    let err = client.submit(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert_eq!(
        err.metadata().get(quorate_wire::RULE_METADATA_KEY).unwrap(),
        "policy-whitelist-destination"
    );

    // Whitelisted, but only from 2030.
    let (code, v) = c
        .submit(&[
            "--id",
            "wd-p-2",
            "--chain",
            "ethereum",
            "--asset",
            "ETH",
            "--to",
            NOT_YET_ACTIVE,
            "--amount",
            "1000",
        ])
        .await;
    assert_ne!(code, 0);
    assert_eq!(v["rule"], "policy-whitelist-not-yet-active", "{v}");

    // Velocity: 10 ETH per 24 h. 6 + 4 fit exactly; one more wei does not.
    let (code, v) = c.submit_eth("wd-p-3", &eth(6)).await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");
    let (code, v) = c.submit_eth("wd-p-4", &eth(4)).await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");
    let (code, v) = c.submit_eth("wd-p-5", "1").await;
    assert_ne!(code, 0);
    assert_eq!(v["rule"], "policy-velocity-asset-amount-24h", "{v}");

    // The same over the gRPC API: ResourceExhausted, with the rule in the trailer.
    let mut client =
        quorate_wire::withdrawal::withdrawal_service_client::WithdrawalServiceClient::new(
            c.channel("backend").await,
        );
    let (_, req) = c.eth_request("wd-p-6", "1", 600_000, None);
    let err = client.submit(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert_eq!(
        err.metadata().get(quorate_wire::RULE_METADATA_KEY).unwrap(),
        "policy-velocity-asset-amount-24h"
    );

    // Above 10 ETH, it is a single withdrawal that can never fit the window: permanent,
    // refused before any approval is asked for.
    let (code, v) = c.submit_eth("wd-p-7", &eth(11)).await;
    assert_ne!(code, 0);
    assert_eq!(
        (
            v["status"].as_str(),
            v["rule"].as_str(),
            v["retryable"].as_bool()
        ),
        (
            Some("refused"),
            Some("policy-velocity-asset-amount-24h"),
            Some(false)
        ),
        "{v}"
    );

    // Restart everything: the counters are on disk, still exhausted.
    c.kill_coordinator().await;
    for n in c.names.clone() {
        c.kill_signer(&n).await;
    }
    c.start_coordinator(None).await;
    for n in c.names.clone() {
        c.start_signer(&n);
    }
    c.wait_connected(3).await;
    let (code, v) = c.submit_eth("wd-p-8", "1").await;
    assert_ne!(code, 0);
    assert_eq!(v["rule"], "policy-velocity-asset-amount-24h", "{v}");
    // The signed ones are still signed.
    let mut client =
        quorate_wire::withdrawal::withdrawal_service_client::WithdrawalServiceClient::new(
            c.channel("backend").await,
        );
    let w = client
        .get(quorate_wire::withdrawal::GetRequest {
            id: "wd-p-3".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.status, quorate_wire::withdrawal::Status::Signed as i32);
}

/// Asks signers `a` and `b` to sign `intent`; true if both released a share.
async fn both_sign(
    signers: &mut BTreeMap<u32, Driven>,
    a: u32,
    b: u32,
    intent: &WithdrawalIntent,
    sig: &[u8],
) -> (Ans, Ans) {
    let s = session();
    let ca = signers.get_mut(&a).unwrap().commit(s).await;
    let cb = signers.get_mut(&b).unwrap().commit(s).await;
    let pkg = SigningPackage::new(
        BTreeMap::from([(id(a as u16), ca), (id(b as u16), cb)]),
        &intent.digest(),
    );
    let bytes = intent.encode();
    let ra = signers
        .get_mut(&a)
        .unwrap()
        .sign(s, &bytes, sig, &pkg)
        .await;
    let rb = signers
        .get_mut(&b)
        .unwrap()
        .sign(s, &bytes, sig, &pkg)
        .await;
    (ra, rb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signer_enforces_policy_and_quorum_rotation_is_bounded() {
    let mut c = Cluster::start(3, 2).await;
    let (mut signers, mut links) = take_over(&mut c, 3).await;
    let key = c.backend_key();
    let now = now_ms();
    let make = |wid: &str, to: &str, amount: u128| {
        let i = WithdrawalIntent::from_parts(
            wid,
            "ethereum",
            "ETH",
            to,
            &amount.to_string(),
            now,
            now + 600_000,
            None,
        )
        .unwrap();
        let sig = quorate_core::backend::sign(&key, &i.digest());
        (i, sig)
    };

    // Each signer, asked directly, refuses a destination that is not whitelisted.
    let (bad, bad_sig) = make("wd-r-bad", NOT_WHITELISTED, 1000);
    for (a, b) in [(1, 2), (3, 1)] {
        let (ra, rb) = both_sign(&mut signers, a, b, &bad, &bad_sig).await;
        refused(&ra, "policy-whitelist-destination");
        refused(&rb, "policy-whitelist-destination");
    }

    // Quorum rotation without ledger notices: 1 ETH at a time through pairs (1,2), (2,3),
    // (3,1). Each signer counts only what it signed, so the total can reach (n/t) × 10 ETH
    // = 15 ETH and no more.
    let pairs = [(1u32, 2u32), (2, 3), (3, 1)];
    let mut signed_eth = 0u128;
    let mut refusals = 0;
    let mut k = 0;
    while refusals < 6 && k < 60 {
        let (a, b) = pairs[k % 3];
        let (i, sig) = make(
            &format!("wd-r-{k}"),
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            ETH,
        );
        let (ra, rb) = both_sign(&mut signers, a, b, &i, &sig).await;
        match (&ra, &rb) {
            (Ans::Sign(_), Ans::Sign(_)) => signed_eth += 1,
            _ => {
                for r in [&ra, &rb] {
                    if let Ans::Refusal(r) = r {
                        assert_eq!(r.rule, "policy-velocity-asset-amount-24h", "{r:?}");
                    }
                }
                refusals += 1;
            }
        }
        k += 1;
    }
    println!("quorum rotation: {signed_eth} ETH signed by a 2-of-3 quorum with a 10 ETH/24h limit per signer");
    assert!(
        signed_eth <= 15,
        "loss bound (n/t) x limit exceeded: {signed_eth} ETH"
    );
    assert!(
        signed_eth > 10,
        "rotation should get past one ledger's limit: {signed_eth} ETH"
    );
    crate::scoreboard::record(
        "redteam-rotation",
        &serde_json::json!({
            "attacks": [{
                "attack": "quorum rotation against velocity limits (no ledger notices)",
                "node": "signers",
                "rule": "policy-velocity-asset-amount-24h",
                "blocked": signed_eth <= 15,
                "audited": null,
                "signed_eth": signed_eth,
                "bound_eth": 15,
            }]
        }),
    );

    // Restart signer 1: its ledger is on disk; it still refuses.
    c.kill_signer("signer-1").await;
    signers.remove(&1);
    c.start_signer("signer-1");
    let (ident, inbound, out) =
        tokio::time::timeout(std::time::Duration::from_secs(60), links.recv())
            .await
            .expect("signer-1 reconnects")
            .unwrap();
    signers.insert(
        ident,
        Driven {
            inbound,
            out,
            next: 0,
        },
    );
    let (i, sig) = make(
        "wd-r-after",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ETH,
    );
    let (ra, _) = both_sign(&mut signers, 1, 2, &i, &sig).await;
    refused(&ra, "policy-velocity-asset-amount-24h");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_coordinator_keeps_every_ledger_whole() {
    let mut c = Cluster::start(3, 2).await;
    // 10 ETH in three withdrawals; each signed by two of the three signers. Signer 3 is away
    // for the first two and hears of them when it comes back.
    c.kill_signer("signer-3").await;
    for (wid, n) in [("wd-l-1", 5u128), ("wd-l-2", 3)] {
        let (code, v) = c.submit_eth(wid, &(n * ETH).to_string()).await;
        assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");
    }
    c.start_signer("signer-3");
    c.wait_connected(3).await;
    let (code, v) = c.submit_eth("wd-l-0", &(2 * ETH).to_string()).await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");
    // Every signer hears of both: it signed it or got the ledger notice.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for name in c.names.clone() {
        loop {
            let log = c.read_log(&name);
            let seen = ["wd-l-0", "wd-l-1", "wd-l-2"].iter().all(|w| {
                log.lines().any(|l| {
                    l.contains(w) && (l.contains("share released") || l.contains("ledger notice"))
                })
            });
            if seen {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never counted both:\n{log}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // So each of them, asked directly by a hostile coordinator, has no headroom left.
    let (mut signers, _links) = take_over(&mut c, 3).await;
    let now = now_ms();
    let i = WithdrawalIntent::from_parts(
        "wd-l-3",
        "ethereum",
        "ETH",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "1",
        now,
        now + 600_000,
        None,
    )
    .unwrap();
    let sig = quorate_core::backend::sign(&c.backend_key(), &i.digest());
    for (a, b) in [(1, 2), (3, 1)] {
        let (ra, rb) = both_sign(&mut signers, a, b, &i, &sig).await;
        refused(&ra, "policy-velocity-asset-amount-24h");
        refused(&rb, "policy-velocity-asset-amount-24h");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signers_refuse_forged_approvals_policies_and_notices() {
    use quorate_core::{
        identity::IdentitySecret,
        policy::{
            approve_withdrawal, governance::POLICY_APPROVAL_DOMAIN, AdminSignature, SignedPolicy,
        },
    };
    use quorate_wire::{
        convert::policy::signed_to_proto,
        signer::{self as spb, coordinator_message::Body as Req},
    };
    let mut c = Cluster::start(3, 2).await;
    let (mut signers, _links) = take_over(&mut c, 3).await;
    let mut book = Book::attacks("redteam-governance");
    let admin = |n: u32| {
        let text = std::fs::read_to_string(c.path(&format!("admin/admin-{n}.key"))).unwrap();
        IdentitySecret::from_bytes(&hex::decode(text.trim()).unwrap()).unwrap()
    };
    let now = now_ms();
    // 1.5 BTC is above the 1 BTC approval threshold: two admin approvals are needed.
    let i = WithdrawalIntent::from_parts(
        "wd-f-1",
        "bitcoin",
        "BTC",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "150000000",
        now,
        now + 600_000,
        None,
    )
    .unwrap();
    let sig = quorate_core::backend::sign(&c.backend_key(), &i.digest());
    let outsider = IdentitySecret::generate(&mut rand::rngs::OsRng);
    let other = WithdrawalIntent::from_parts(
        "wd-f-2",
        "bitcoin",
        "BTC",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "1",
        now,
        now + 600_000,
        None,
    )
    .unwrap();
    for (what, approvals) in [
        ("none", vec![]),
        ("m-1", vec![approve_withdrawal(&admin(1), &i.digest())]),
        (
            "one admin twice",
            vec![
                approve_withdrawal(&admin(1), &i.digest()),
                approve_withdrawal(&admin(1), &i.digest()),
            ],
        ),
        (
            "a non-admin",
            vec![
                approve_withdrawal(&admin(1), &i.digest()),
                approve_withdrawal(&outsider, &i.digest()),
            ],
        ),
        (
            "another withdrawal's approval",
            vec![
                approve_withdrawal(&admin(1), &i.digest()),
                approve_withdrawal(&admin(2), &other.digest()),
            ],
        ),
    ] {
        let a = sign_with_approvals(&mut signers, &i, &sig, &approvals).await;
        book.refused(
            &format!("forged withdrawal approvals: {what}"),
            "signer-1",
            &a,
            "policy-approval-required",
            Some("wd-f-1"),
        );
    }
    let both = [
        approve_withdrawal(&admin(1), &i.digest()),
        approve_withdrawal(&admin(3), &i.digest()),
    ];
    let a = sign_with_approvals(&mut signers, &i, &sig, &both).await;
    assert!(matches!(a, Ans::Sign(_)), "two admins approved: {a:?}");

    // Forged policy updates sent straight to a signer.
    let a = signers
        .get_mut(&1)
        .unwrap()
        .call(Req::PolicyUpdate(
            quorate_wire::policy::SignedPolicy::default(),
        ))
        .await;
    book.refused(
        "empty policy update",
        "signer-1",
        &a,
        "policy-update-invalid",
        None,
    );
    let genesis = quorate_wire::convert::policy_file::signed_from_json(
        &std::fs::read_to_string(c.path("policy/genesis.json")).unwrap(),
    )
    .unwrap();
    let mut loose = genesis.doc.clone();
    loose.version = 2;
    loose.prev_hash = genesis.doc.hash_hex();
    loose.whitelist.push(quorate_core::policy::WhitelistEntry {
        chain: quorate_core::address::Chain::Ethereum,
        address: NOT_WHITELISTED.into(),
        label: "attacker".into(),
        active_from_ms: 0,
    });
    loose
        .whitelist
        .sort_by(|a, b| (a.chain, &a.address).cmp(&(b.chain, &b.address)));
    let sign = |doc: &quorate_core::policy::PolicyDoc, keys: &[&IdentitySecret]| SignedPolicy {
        doc: doc.clone(),
        signatures: keys
            .iter()
            .map(|k| AdminSignature::sign(k, POLICY_APPROVAL_DOMAIN, &[&doc.hash()]))
            .collect(),
    };
    let (a1, a2) = (admin(1), admin(2));
    let mut skipped = loose.clone();
    skipped.version = 3;
    let mut broken = loose.clone();
    broken.prev_hash = "11".repeat(32);
    // Another version 1 than the one in force, signed by the quorum.
    let mut stale = genesis.doc.clone();
    stale.frozen = !stale.frozen;
    for (what, signed, rule) in [
        (
            "one signature",
            sign(&loose, &[&a1]),
            "policy-update-signatures",
        ),
        (
            "one admin twice",
            sign(&loose, &[&a1, &a1]),
            "policy-update-signatures",
        ),
        (
            "an outsider",
            sign(&loose, &[&a1, &outsider]),
            "policy-update-signatures",
        ),
        (
            "skipped version",
            sign(&skipped, &[&a1, &a2]),
            "policy-update-version",
        ),
        (
            "broken chain",
            sign(&broken, &[&a1, &a2]),
            "policy-update-chain",
        ),
        (
            "stale version",
            sign(&stale, &[&a1, &a2]),
            "policy-update-version",
        ),
    ] {
        let a = signers
            .get_mut(&2)
            .unwrap()
            .call(Req::PolicyUpdate(signed_to_proto(&signed)))
            .await;
        book.refused(
            &format!("forged policy update: {what}"),
            "signer-2",
            &a,
            rule,
            None,
        );
    }

    // A ledger notice without a valid group signature is refused and counts nothing.
    let n = WithdrawalIntent::from_parts(
        "wd-f-3",
        "ethereum",
        "ETH",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        &(10 * ETH).to_string(),
        now,
        now + 600_000,
        None,
    )
    .unwrap();
    let a = signers
        .get_mut(&3)
        .unwrap()
        .call(Req::LedgerNotice(spb::LedgerNotice {
            intent: n.encode(),
            signature: vec![2; 65],
            signed_at_ms: 0,
        }))
        .await;
    book.refused(
        "ledger notice without a valid group signature",
        "signer-3",
        &a,
        "ledger-notice-invalid",
        Some("wd-f-3"),
    );
    // Signer 3 still has its whole 10 ETH: a 10 ETH withdrawal passes its policy.
    let (ok, ok_sig) = {
        let i = WithdrawalIntent::from_parts(
            "wd-f-4",
            "ethereum",
            "ETH",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            &(10 * ETH).to_string(),
            now,
            now + 600_000,
            None,
        )
        .unwrap();
        let s = quorate_core::backend::sign(&c.backend_key(), &i.digest());
        (i, s)
    };
    let (r3, _) = both_sign(&mut signers, 3, 1, &ok, &ok_sig).await;
    assert!(matches!(r3, Ans::Sign(_)), "{r3:?}");

    // Each refusal is in the refusing signer's own audit log.
    let manifest = quorate_wire::manifest::Manifest::load(&c.path("manifest.toml")).unwrap();
    for n in 1..=3u32 {
        let key = manifest.signer(n as u16).unwrap().identity_key;
        let log = signers.get_mut(&n).unwrap().verified_audit(&key).await;
        book.audit(&format!("signer-{n}"), &log);
    }
    book.finish();
}

/// Signers 1 and 2 commit; signer 1 is asked to sign `i` with `approvals`.
async fn sign_with_approvals(
    signers: &mut BTreeMap<u32, Driven>,
    i: &WithdrawalIntent,
    sig: &[u8],
    approvals: &[quorate_core::policy::AdminSignature],
) -> Ans {
    use quorate_wire::signer::{self as spb, coordinator_message::Body as Req};
    let s = session();
    let c1 = signers.get_mut(&1).unwrap().commit(s).await;
    let c2 = signers.get_mut(&2).unwrap().commit(s).await;
    let pkg = SigningPackage::new(BTreeMap::from([(id(1), c1), (id(2), c2)]), &i.digest());
    signers
        .get_mut(&1)
        .unwrap()
        .call(Req::Sign(spb::SignRequest {
            key_epoch: 0,
            scheme: Default::default(),
            session_id: s.to_vec(),
            intent: i.encode(),
            backend_signature: sig.to_vec(),
            signing_package: pkg.serialize().unwrap(),
            approvals: approvals
                .iter()
                .map(quorate_wire::convert::policy::sig_to_proto)
                .collect(),
            vault_action: None,
            solana_void: None,
        }))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_is_debited_once_however_often_it_is_signed_or_announced() {
    use quorate_core::audit::kind;
    let mut c = Cluster::start(3, 2).await;
    // 6 ETH through the honest coordinator: two signers sign, the third counts the ledger
    // notice.
    let (x, req) = c.eth_request("wd-d-x", &(6 * ETH).to_string(), 600_000, None);
    let x_sig = req.backend_signature.clone();
    let mut client =
        quorate_wire::withdrawal::withdrawal_service_client::WithdrawalServiceClient::new(
            c.channel("backend").await,
        );
    let w = client.submit(req).await.unwrap().into_inner();
    assert_eq!(w.status, quorate_wire::withdrawal::Status::Signed as i32);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !c.names.iter().all(|n| {
        let log = c.read_log(n);
        log.lines().any(|l| {
            l.contains("wd-d-x") && (l.contains("share released") || l.contains("ledger notice"))
        })
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "not every signer counted wd-d-x"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let manifest = quorate_wire::manifest::Manifest::load(&c.path("manifest.toml")).unwrap();
    let (mut signers, _links) = take_over(&mut c, 3).await;

    // A hostile coordinator has every pair sign it again (same id, same intent, fresh
    // nonces): each signer signs, and counts nothing more.
    for (a, b) in [(1, 2), (2, 3), (3, 1)] {
        let (ra, rb) = both_sign(&mut signers, a, b, &x, &x_sig).await;
        assert!(
            matches!((&ra, &rb), (Ans::Sign(_), Ans::Sign(_))),
            "{ra:?} {rb:?}"
        );
    }
    // The group signature announced again: acknowledged, not counted. The same signature
    // on an altered intent: refused.
    let mut altered = x.clone();
    altered.amount = quorate_core::amount::Amount::new(1).unwrap();
    for n in 1..=3u32 {
        let d = signers.get_mut(&n).unwrap();
        let again = d
            .call(Req::LedgerNotice(quorate_wire::signer::LedgerNotice {
                intent: x.encode(),
                signature: w.signature.clone(),
                signed_at_ms: 0,
            }))
            .await;
        assert!(
            matches!(
                again,
                Ans::LedgerAck(quorate_wire::signer::LedgerAck { debited: false })
            ),
            "signer {n}: {again:?}"
        );
        let forged = d
            .call(Req::LedgerNotice(quorate_wire::signer::LedgerNotice {
                intent: altered.encode(),
                signature: w.signature.clone(),
                signed_at_ms: 0,
            }))
            .await;
        refused(&forged, "ledger-notice-invalid");
        // The same in batches. Two valid notices are verified as one batch; a batch with a
        // forgery and a garbage intent in it is judged notice by notice. Nothing is counted.
        let notice = |i: &WithdrawalIntent| quorate_wire::signer::LedgerNotice {
            intent: i.encode(),
            signature: w.signature.clone(),
            signed_at_ms: 0,
        };
        let batch = |notices| Req::LedgerNotices(quorate_wire::signer::LedgerNotices { notices });
        let acks = crate::hostile::notice_results;
        let valid = d.call(batch(vec![notice(&x), notice(&x)])).await;
        assert_eq!(acks(valid), [Ok(false), Ok(false)], "signer {n}");
        let mut garbage = notice(&x);
        garbage.intent.truncate(10);
        let mixed = d
            .call(batch(vec![
                notice(&x),
                notice(&altered),
                garbage,
                notice(&x),
            ]))
            .await;
        assert_eq!(
            acks(mixed),
            [
                Ok(false),
                Err("ledger-notice-invalid".to_string()),
                Err("intent-malformed".to_string()),
                Ok(false)
            ],
            "signer {n}"
        );
    }

    // So exactly 4 ETH of headroom is left on every signer: 4 ETH signs (signer 2 twice,
    // counted once), one wei more is refused by all.
    let now = now_ms();
    let make = |wid: &str, amount: u128| {
        let i = WithdrawalIntent::from_parts(
            wid,
            "ethereum",
            "ETH",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            &amount.to_string(),
            now,
            now + 600_000,
            None,
        )
        .unwrap();
        let sig = quorate_core::backend::sign(&c.backend_key(), &i.digest());
        (i, sig)
    };
    let (y, y_sig) = make("wd-d-y", 4 * ETH);
    for (a, b) in [(1, 2), (2, 3)] {
        let (ra, rb) = both_sign(&mut signers, a, b, &y, &y_sig).await;
        assert!(
            matches!((&ra, &rb), (Ans::Sign(_), Ans::Sign(_))),
            "{ra:?} {rb:?}"
        );
    }
    let (z, z_sig) = make("wd-d-z", 1);
    for (a, b) in [(1, 2), (3, 1)] {
        let (ra, rb) = both_sign(&mut signers, a, b, &z, &z_sig).await;
        refused(&ra, "policy-velocity-asset-amount-24h");
        refused(&rb, "policy-velocity-asset-amount-24h");
    }

    // Each signer's own audit log (chain and signed head verified against the manifest's
    // identity key) says the same: wd-d-x debited once, released at least twice more,
    // the refusals recorded under their rules.
    for n in 1..=3u32 {
        let key = manifest.signer(n as u16).unwrap().identity_key;
        let log = signers.get_mut(&n).unwrap().verified_audit(&key).await;
        let of_x = |k: &str, debit: &str| {
            log.iter()
                .filter(|r| {
                    r.event.kind == k
                        && r.event.field("withdrawal") == Some("wd-d-x")
                        && r.event.field("debit") == Some(debit)
                })
                .count()
        };
        assert_eq!(
            of_x(kind::SHARE_RELEASED, "new") + of_x(kind::LEDGER_NOTICE, "new"),
            1,
            "signer {n} counted wd-d-x once"
        );
        assert!(of_x(kind::SHARE_RELEASED, "already") >= 2, "signer {n}");
        assert!(
            audited_refusal(&log, "wd-d-z", "policy-velocity-asset-amount-24h"),
            "signer {n}"
        );
        // The forged notice alone and in a batch, and the garbage one in a batch.
        let refused_notices = |rule: &str| {
            log.iter()
                .filter(|r| {
                    r.event.kind == kind::REFUSED
                        && r.event.field("request") == Some("ledger-notice")
                        && r.event.field("rule") == Some(rule)
                })
                .count()
        };
        assert_eq!(
            refused_notices("ledger-notice-invalid"),
            2,
            "signer {n} recorded the forged notices"
        );
        assert_eq!(refused_notices("intent-malformed"), 1, "signer {n}");
    }
}
