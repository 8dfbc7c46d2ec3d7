//! DKG under a hostile relay, with real signer processes: a tampered sealed share aborts the
//! DKG with its sender named, nobody keeps a share of the half-made group, and a later honest
//! DKG succeeds.

use std::{collections::BTreeMap, time::Duration};

use quorate_wire::{
    manifest::Manifest,
    signer::{
        self as pb, coordinator_message::Body as Req, signer_link_server::SignerLinkServer,
        signer_message::Body as Ans,
    },
    tls::{self, TlsMaterial},
};
use tokio::sync::mpsc;

use crate::{
    harness::Cluster,
    hostile::{Driven, Fake},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_dkg_aborts_with_culprit_and_leaves_no_share() {
    let mut c = Cluster::create(3, 2).await;
    let tls = TlsMaterial::load(
        &c.path("ca/ca.pem"),
        &c.path("coordinator/cert.pem"),
        &c.path("coordinator/key.pem"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    c.addr = listener.local_addr().unwrap().to_string();
    let (links_tx, mut links_rx) = mpsc::channel(8);
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SignerLinkServer::new(Fake { links: links_tx }))
            .serve_with_incoming(tls::incoming(listener, tls.server_config().unwrap())),
    );
    for name in c.names.clone() {
        c.start_signer(&name);
    }
    let mut s: BTreeMap<u32, Driven> = BTreeMap::new();
    while s.len() < 3 {
        let (ident, inbound, out) = tokio::time::timeout(Duration::from_secs(60), links_rx.recv())
            .await
            .expect("signers connect")
            .unwrap();
        s.insert(
            ident,
            Driven {
                inbound,
                out,
                next: 0,
            },
        );
    }
    let session = vec![5u8; 16];
    let manifest_hash = Manifest::load(&c.path("manifest.toml"))
        .unwrap()
        .hash()
        .to_vec();

    let mut round1 = Vec::new();
    for (i, d) in s.iter_mut() {
        match d
            .call(Req::DkgRound1(pb::DkgRound1Request {
                session_id: session.clone(),
                manifest_hash: manifest_hash.clone(),
            }))
            .await
        {
            Ans::DkgRound1(p) => round1.push(pb::SignedRound1 {
                identifier: *i,
                package: p.package,
                signature: p.signature,
            }),
            other => panic!("round 1: {other:?}"),
        }
    }
    let mut mail: BTreeMap<u32, Vec<pb::SealedRound2>> = BTreeMap::new();
    for d in s.values_mut() {
        match d
            .call(Req::DkgRound2(pb::DkgRound2Request {
                session_id: session.clone(),
                packages: round1.clone(),
            }))
            .await
        {
            Ans::DkgRound2(p) => {
                for sealed in p.packages {
                    mail.entry(sealed.recipient).or_default().push(sealed);
                }
            }
            other => panic!("round 2: {other:?}"),
        }
    }
    // The relay alters the share signer 1 sealed to signer 3.
    let to3 = mail.get_mut(&3).unwrap();
    let from1 = to3.iter_mut().find(|p| p.sender == 1).unwrap();
    from1.ciphertext[0] ^= 1;

    let mut results = Vec::new();
    for (i, d) in s.iter_mut() {
        let a = d
            .call(Req::DkgRound3(pb::DkgRound3Request {
                session_id: session.clone(),
                packages: mail[i].clone(),
            }))
            .await;
        match (i, a) {
            (3, Ans::Refusal(r)) => {
                assert_eq!(r.rule, "dkg-aborted");
                assert_eq!(
                    r.culprits,
                    vec![1],
                    "the sender of the altered share is named"
                );
            }
            (3, other) => panic!("signer 3 must abort: {other:?}"),
            (_, Ans::DkgRound3(p)) => results.push(pb::DkgResult {
                identifier: *i,
                group_public_key: p.group_public_key,
                transcript_hash: p.transcript_hash,
                signature: p.signature,
            }),
            (_, other) => panic!("round 3: {other:?}"),
        }
    }
    // Signers 1 and 2 finished, but without signer 3's confirmation neither keeps a share.
    for i in [1u32, 2] {
        let a = s
            .get_mut(&i)
            .unwrap()
            .call(Req::DkgConfirm(pb::DkgConfirmRequest {
                session_id: session.clone(),
                results: results.clone(),
            }))
            .await;
        match a {
            Ans::Refusal(r) => assert!(r.reason.contains("only 2 of 3"), "{r:?}"),
            other => panic!("must not confirm: {other:?}"),
        }
    }
    for d in s.values_mut() {
        let a = d
            .call(Req::Commit(pb::CommitRequest {
                session_id: vec![9; 16],
            }))
            .await;
        match a {
            Ans::Refusal(r) => assert_eq!(r.rule, "no-key-share"),
            other => panic!("no signer may hold a share: {other:?}"),
        }
    }

    // An honest coordinator then runs DKG from scratch, and the group signs.
    drop(s);
    server.abort();
    let addr = c.addr.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpListener::bind(&addr).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "port not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.start_coordinator(Some(&addr)).await;
    c.wait_connected(3).await;
    c.dkg().await;
    let (code, w) = c.submit_eth("wd-after-dkg", "1").await;
    assert_eq!(code, 0, "{w}");
    assert_eq!(w["status"], "signed");
}
