//! The signing path end to end: DKG, signed withdrawals that verify independently, signers
//! stopping and coming back, idempotency, and coordinator restarts.

use std::time::{Duration, Instant};

use crate::harness::{hexf, quorate, rfc9591_verify, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkg_then_signed_withdrawal_verifies_and_ids_are_idempotent() {
    let c = Cluster::start(3, 2).await;
    let status = c.status().await;
    // Every signer reports the same group key as the coordinator.
    for s in &status.signers {
        assert!(s.connected);
    }

    let (code, w) = c.submit_eth("wd-1", "1000000000000000000").await;
    assert_eq!(code, 0, "{w}");
    assert_eq!(w["status"], "signed");
    let gk = hexf(&w, "group_public_key");
    let msg = hexf(&w, "message");
    let sig = hexf(&w, "signature");
    assert_eq!(gk, status.group_public_key);
    assert_eq!((gk.len(), msg.len(), sig.len()), (33, 32, 65));
    assert!(
        rfc9591_verify(&gk, &msg, &sig),
        "independent RFC 9591 check"
    );
    // A different message or a flipped bit does not verify.
    let mut bad = sig.clone();
    bad[40] ^= 1;
    assert!(!rfc9591_verify(&gk, &msg, &bad));
    assert!(!rfc9591_verify(&gk, &[0u8; 32], &sig));
    // `quorate verify` agrees.
    let (code, out, _) = quorate(&[
        "verify",
        "--group-key",
        &hex::encode(&gk),
        "--message",
        &hex::encode(&msg),
        "--signature",
        &hex::encode(&sig),
    ])
    .await;
    assert_eq!((code, out.trim()), (0, "valid"));
    let (code, out, _) = quorate(&[
        "verify",
        "--group-key",
        &hex::encode(&gk),
        "--message",
        &hex::encode([0u8; 32]),
        "--signature",
        &hex::encode(&sig),
    ])
    .await;
    assert_eq!((code, out.trim()), (1, "INVALID"));

    // (Same id with the same intent is `exact_resubmission_returns_the_same_signature`.)
    // Same id, different intent: refused, naming the rule, and nothing changes.
    let (code, conflict) = c.submit_eth("wd-1", "2000000000000000000").await;
    assert_ne!(code, 0);
    assert_eq!(conflict["rule"], "withdrawal-id-conflict", "{conflict}");
    let (_, out, _) = quorate(&[
        "get",
        "wd-1",
        "--dir",
        c.dir_str(),
        "--coordinator",
        &c.addr,
    ])
    .await;
    let after: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(after["signature"], w["signature"]);
    assert_eq!(after["status"], "signed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_resubmission_returns_the_same_signature() {
    use quorate_wire::withdrawal as pb;
    let c = Cluster::start(3, 2).await;
    let (intent, req) = c.eth_request("wd-exact", "7", 600_000, Some("ref-1"));
    let mut client =
        pb::withdrawal_service_client::WithdrawalServiceClient::new(c.channel("backend").await);
    let mut watch = client
        .watch(pb::WatchRequest {
            id: "wd-exact".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = client.submit(req.clone()).await.unwrap().into_inner();
    let second = client.submit(req.clone()).await.unwrap().into_inner();
    assert_eq!(first.status, pb::Status::Signed as i32);
    assert_eq!(first.signature, second.signature);
    assert_eq!(first.signers, second.signers);
    assert_eq!(first.digest, intent.digest().to_vec());
    // The status stream saw it go through signing to signed.
    let mut seen = Vec::new();
    let per_status = std::time::Duration::from_secs(60);
    while let Some(ev) = tokio::time::timeout(per_status, watch.message())
        .await
        .unwrap_or_else(|_| panic!("no status after {seen:?} for 60 s"))
        .unwrap()
    {
        seen.push(ev.status);
        if ev.status == pb::Status::Signed as i32 {
            assert_eq!(ev.signature, first.signature);
            break;
        }
    }
    assert_eq!(
        seen,
        vec![pb::Status::Signing as i32, pb::Status::Signed as i32]
    );

    // A signed withdrawal stays signed, and answers the same, after its intent expires.
    let (_, brief_req) = c.eth_request("wd-brief", "3", 1_000, None);
    let signed = client.submit(brief_req.clone()).await.unwrap().into_inner();
    assert_eq!(signed.status, pb::Status::Signed as i32);
    // Wait out the intent's lifetime (the behaviour under test, not readiness).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let again = client.submit(brief_req).await.unwrap().into_inner();
    assert_eq!(again.signature, signed.signature);

    // Listing finds it, filters work.
    let list = client
        .list(pb::ListRequest {
            status: pb::Status::Signed as i32,
            chain: "ethereum".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(list.withdrawals.iter().any(|w| w.id == "wd-exact"));
    let none = client
        .list(pb::ListRequest {
            chain: "solana".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.withdrawals.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signers_stopping_and_rejoining() {
    let mut c = Cluster::start(3, 2).await;

    // One of three stopped: still signs.
    c.kill_signer("signer-3").await;
    c.wait_connected(2).await;
    let (code, w) = c.submit_eth("wd-two-left", "1").await;
    assert_eq!(code, 0, "{w}");
    assert_eq!(w["status"], "signed");
    assert!(rfc9591_verify(
        &hexf(&w, "group_public_key"),
        &hexf(&w, "message"),
        &hexf(&w, "signature")
    ));

    // Two stopped: a clear, retryable failure well within the deadline — no hang.
    c.kill_signer("signer-2").await;
    c.wait_connected(1).await;
    let started = Instant::now();
    let (code, w) = c
        .submit(&[
            "--id",
            "wd-one-left",
            "--chain",
            "ethereum",
            "--asset",
            "ETH",
            "--to",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "--amount",
            "1",
            "--timeout",
            "20s",
        ])
        .await;
    assert_ne!(code, 0);
    assert_eq!(w["status"], "failed", "{w}");
    assert_eq!(w["rule"], "not-enough-signers", "{w}");
    assert_eq!(w["code"], "Unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answered before the deadline"
    );

    // Failed withdrawals: one retried after its intent expired becomes `expired`; one retried
    // in time (below, after the signers are back) gets signed under the same id.
    use quorate_wire::withdrawal as pb;
    let (_, short) = c.eth_request("wd-short", "1", 1_500, None);
    let (_, retry) = c.eth_request("wd-retry", "1", 600_000, None);
    let mut client =
        pb::withdrawal_service_client::WithdrawalServiceClient::new(c.channel("backend").await);
    for r in [&short, &retry] {
        let err = client.submit(r.clone()).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    }
    // Wait out the short intent's own lifetime (the behaviour under test, not readiness).
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let err = client.submit(short).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().starts_with("intent-expired"),
        "{}",
        err.message()
    );
    let rec = client
        .get(pb::GetRequest {
            id: "wd-short".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rec.status, pb::Status::Expired as i32);

    // Restarted signers rejoin, and the failed withdrawal can be retried and signs.
    c.start_signer("signer-2");
    c.start_signer("signer-3");
    c.wait_connected(3).await;
    let (code, out, _) = quorate(&[
        "get",
        "wd-one-left",
        "--dir",
        c.dir_str(),
        "--coordinator",
        &c.addr,
    ])
    .await;
    assert_eq!(code, 0);
    let rec: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(rec["status"], "failed");
    assert_eq!(rec["retryable"], true);
    let signed = client.submit(retry).await.unwrap().into_inner();
    assert_eq!(signed.status, pb::Status::Signed as i32);
    assert_eq!(signed.signature.len(), 65);
    for i in 0..4 {
        let (code, w) = c.submit_eth(&format!("wd-back-{i}"), "1").await;
        assert_eq!(code, 0, "{w}");
    }
    // The restarted signers sign together on their own.
    c.kill_signer("signer-1").await;
    c.wait_connected(2).await;
    let (code, w) = c.submit_eth("wd-restarted-pair", "1").await;
    assert_eq!(code, 0, "{w}");
    assert_eq!(w["signers"], serde_json::json!([2, 3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_restart_keeps_signed_withdrawals() {
    let mut c = Cluster::start(3, 2).await;
    let (code, w) = c.submit_eth("wd-before-restart", "1").await;
    assert_eq!(code, 0, "{w}");
    let addr = c.addr.clone();
    c.kill_coordinator().await;
    c.start_coordinator(Some(&addr)).await;
    c.wait_connected(3).await;
    let (code, out, _) = quorate(&[
        "get",
        "wd-before-restart",
        "--dir",
        c.dir_str(),
        "--coordinator",
        &c.addr,
    ])
    .await;
    assert_eq!(code, 0);
    let rec: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(rec["status"], "signed");
    assert_eq!(rec["signature"], w["signature"]);
    // The group key survived too, and signing continues.
    let (code, w2) = c.submit_eth("wd-after-restart", "1").await;
    assert_eq!(code, 0, "{w2}");
    assert_eq!(w2["group_public_key"], w["group_public_key"]);
}
