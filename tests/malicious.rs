//! A malicious signer: the test holds signer 1's certificate, dials the real coordinator, and
//! answers signing requests with invalid shares. The coordinator must name it as the culprit,
//! drop it, and still get the withdrawal signed by an honest quorum.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use frost_secp256k1::{keys::SigningShare, round1};
use quorate_wire::{
    manifest::Manifest,
    signer::{self as pb, signer_link_client::SignerLinkClient, signer_message::Body as Ans},
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::harness::Cluster;

fn hello(c: &Cluster, identifier: u32, group_key: Vec<u8>) -> pb::SignerMessage {
    let manifest = Manifest::load(&c.path("manifest.toml")).unwrap();
    pb::SignerMessage {
        request_id: 0,
        body: Some(Ans::Hello(pb::Hello {
            name: "signer-1".into(),
            identifier,
            version: "evil".into(),
            manifest_hash: manifest.hash().to_vec(),
            group_public_key: group_key,
            policy: None,
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_shares_name_the_culprit_and_an_honest_quorum_signs() {
    let mut c = Cluster::start(3, 2).await;
    let group_key = c.status().await.group_public_key;
    c.kill_signer("signer-1").await;
    c.wait_connected(2).await;

    // Signer 1's certificate claiming to be identifier 2 on its stream: refused.
    let (tx, rx) = mpsc::channel(4);
    tx.send(hello(&c, 2, group_key.clone())).await.unwrap();
    let err = SignerLinkClient::new(c.channel("signer-1").await)
        .attach(ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().starts_with("signer-identity"),
        "{}",
        err.message()
    );

    // Now as itself, but lying in every share.
    let (tx, rx) = mpsc::channel(64);
    tx.send(hello(&c, 1, group_key)).await.unwrap();
    let mut inbound = SignerLinkClient::new(c.channel("signer-1").await)
        .attach(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let asked = Arc::new(AtomicUsize::new(0));
    let asked2 = asked.clone();
    tokio::spawn(async move {
        let share = SigningShare::deserialize(&[7u8; 32]).unwrap();
        while let Ok(Some(m)) = inbound.message().await {
            let answer = match m.body {
                Some(pb::coordinator_message::Body::Commit(_)) => {
                    let (_, commitments) = round1::commit(&share, &mut rand::thread_rng());
                    Ans::Commit(pb::CommitResponse {
                        commitments: commitments.serialize().unwrap(),
                    })
                }
                Some(pb::coordinator_message::Body::Sign(_)) => {
                    asked2.fetch_add(1, Ordering::SeqCst);
                    Ans::Sign(pb::SignResponse {
                        share: vec![5u8; 32],
                    })
                }
                _ => continue,
            };
            let _ = tx
                .send(pb::SignerMessage {
                    request_id: m.request_id,
                    body: Some(answer),
                })
                .await;
        }
    });
    c.wait_connected(3).await;

    // Quorums are random; keep going until the liar has been asked at least once. Every
    // withdrawal must still be signed, and only ever by the honest pair.
    let mut n = 0;
    while asked.load(Ordering::SeqCst) == 0 || n < 3 {
        assert!(n < 40, "the malicious signer was never chosen");
        let (code, w) = c.submit_eth(&format!("wd-m-{n}"), "1").await;
        assert_eq!(code, 0, "{w}");
        assert_eq!(w["status"], "signed");
        assert_eq!(w["signers"], serde_json::json!([2, 3]), "{w}");
        n += 1;
    }
    let log = c.read_log("coordinator");
    assert!(
        log.contains("culprit"),
        "culprit named in the coordinator log"
    );
}
