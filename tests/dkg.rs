//! DKG under a hostile relay and against a malicious participant, with real signer processes:
//! a sealed share altered in transit aborts the DKG without framing its honest sender; a bad
//! proof of knowledge, equivocation and a signed garbage share each abort naming the signer
//! that did it; nobody keeps a share of a half-made group, and a later honest DKG succeeds.

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
    hostile::{next_link, Driven, Fake},
    scoreboard::Book,
};

/// A hostile relay in the coordinator's place, and the named signers connected to it.
async fn relay_with(
    c: &mut Cluster,
    names: &[&str],
) -> (
    BTreeMap<u32, Driven>,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    mpsc::Receiver<(
        u32,
        tonic::Streaming<pb::SignerMessage>,
        crate::hostile::Out,
    )>,
) {
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
    for name in names {
        c.start_signer(name);
    }
    let mut s: BTreeMap<u32, Driven> = BTreeMap::new();
    while s.len() < names.len() {
        let (ident, driven) = next_link(&mut links_rx).await;
        s.insert(ident, driven);
    }
    (s, server, links_rx)
}

/// Round 2 through the relay: each connected signer gets `view(identifier)` as the round-1
/// set; returns the sealed packages by recipient, and the echoes.
async fn relay_round2(
    s: &mut BTreeMap<u32, Driven>,
    session: &[u8],
    view: impl Fn(u32) -> Vec<pb::SignedRound1>,
) -> (BTreeMap<u32, Vec<pb::SealedRound2>>, Vec<pb::DkgEcho>) {
    let mut mail: BTreeMap<u32, Vec<pb::SealedRound2>> = BTreeMap::new();
    let mut echoes = Vec::new();
    for (i, d) in s.iter_mut() {
        match d
            .call(Req::DkgRound2(pb::DkgRound2Request {
                scheme: Default::default(),
                session_id: session.to_vec(),
                packages: view(*i),
            }))
            .await
        {
            Ans::DkgRound2(p) => {
                echoes.extend(p.echo);
                for x in p.packages {
                    mail.entry(x.recipient).or_default().push(x);
                }
            }
            other => panic!("round 2 at signer {i}: {other:?}"),
        }
    }
    (mail, echoes)
}

/// Wire forms of what the test, as signer 1, makes with `quorate_core::dkg`.
fn signed_pb(p: &quorate_core::dkg::SignedRound1) -> pb::SignedRound1 {
    pb::SignedRound1 {
        identifier: u32::from(p.identifier),
        package: p.package.clone(),
        signature: p.signature.clone(),
    }
}

fn echo_pb(e: quorate_core::dkg::SignedEcho) -> pb::DkgEcho {
    pb::DkgEcho {
        from: u32::from(e.from),
        packages: e.packages.iter().map(signed_pb).collect(),
        signature: e.signature,
    }
}

fn sealed_pb(x: quorate_core::seal::Sealed) -> pb::SealedRound2 {
    pb::SealedRound2 {
        sender: u32::from(x.sender),
        recipient: u32::from(x.recipient),
        nonce: x.nonce.to_vec(),
        ciphertext: x.ciphertext,
        signature: x.signature,
    }
}

/// Each listed signer's audit log, verified against its pinned identity key.
/// `answer` (from `who`) aborts the DKG naming signer 1 as the culprit; recorded as blocked,
/// to be found in `who`'s audit log as a refusal naming it.
fn aborted_naming_signer_1(book: &mut Book, answer: &Ans, who: &str, what: &str) {
    match answer {
        Ans::Refusal(r) => {
            assert_eq!(r.rule, "dkg-aborted", "{who}: {r:?}");
            assert_eq!(r.culprits, vec![1], "{who} names signer 1: {r:?}");
        }
        other => panic!("{who} went on after {what}: {other:?}"),
    }
    book.blocked_as(
        what,
        who,
        "dkg-aborted",
        None,
        (quorate_core::audit::kind::REFUSED, "culprits", "1"),
    );
}

async fn audit_logs(c: &Cluster, s: &mut BTreeMap<u32, Driven>, book: &mut Book) {
    let manifest = Manifest::load(&c.path("manifest.toml")).unwrap();
    for (i, d) in s.iter_mut() {
        let key = manifest.signer(*i as u16).unwrap().identity_key;
        let log = d.verified_audit(&key).await;
        book.audit(&format!("signer-{i}"), &log);
    }
}

/// Every listed signer refuses to sign: it holds no share.
async fn no_share(s: &mut BTreeMap<u32, Driven>) {
    for d in s.values_mut() {
        let a = d
            .call(Req::Commit(pb::CommitRequest {
                scheme: Default::default(),
                session_id: vec![9; 16],
            }))
            .await;
        match a {
            Ans::Refusal(r) => assert_eq!(r.rule, "no-key-share"),
            other => panic!("no signer may hold a share: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_altered_in_transit_aborts_framing_nobody_and_leaves_no_share() {
    let mut c = Cluster::create(3, 2).await;
    let mut book = Book::attacks("redteam-dkg");
    let (mut s, server, _links) = relay_with(&mut c, &["signer-1", "signer-2", "signer-3"]).await;
    let session = vec![5u8; 16];
    let manifest_hash = Manifest::load(&c.path("manifest.toml"))
        .unwrap()
        .hash()
        .to_vec();

    let mut round1 = Vec::new();
    for (i, d) in s.iter_mut() {
        match d
            .call(Req::DkgRound1(pb::DkgRound1Request {
                refresh: None,
                scheme: Default::default(),
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
    let (mut mail, echoes) = relay_round2(&mut s, &session, |_| round1.clone()).await;
    // The relay alters the share signer 1 sealed to signer 3.
    let to3 = mail.get_mut(&3).unwrap();
    let from1 = to3.iter_mut().find(|p| p.sender == 1).unwrap();
    from1.ciphertext[0] ^= 1;

    let mut results = Vec::new();
    for (i, d) in s.iter_mut() {
        let a = d
            .call(Req::DkgRound3(pb::DkgRound3Request {
                refresh: false,
                scheme: Default::default(),
                session_id: session.clone(),
                packages: mail[i].clone(),
                echoes: echoes.clone(),
            }))
            .await;
        match (i, a) {
            (3, Ans::Refusal(r)) => {
                assert_eq!(r.rule, "dkg-aborted");
                // The relay altered it: its sender's signature fails, and the honest sender
                // is not named.
                assert!(r.culprits.is_empty(), "{r:?}");
                assert!(r.reason.contains("not signed"), "{r:?}");
                book.blocked_as(
                    "encrypted round-2 package altered by the relay",
                    "signer-3",
                    "dkg-aborted",
                    None,
                    (quorate_core::audit::kind::REFUSED, "request", "dkg-round3"),
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
                scheme: Default::default(),
                session_id: session.clone(),
                results: results.clone(),
            }))
            .await;
        match a {
            Ans::Refusal(r) => assert!(r.reason.contains("only 2 of 3"), "{r:?}"),
            other => panic!("must not confirm: {other:?}"),
        }
    }
    no_share(&mut s).await;
    audit_logs(&c, &mut s, &mut book).await;
    book.finish();

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

/// Signer 1's identity key, unsealed from its files with its KEK: the test plays a malicious
/// signer 1 with the real key, so its DKG messages carry valid identity signatures.
fn stolen_identity(c: &Cluster) -> quorate_core::identity::IdentitySecret {
    let kek = quorate_core::atrest::Kek::from_hex(
        std::fs::read_to_string(c.path("signer-1/kek"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let sealed = std::fs::read(c.path("signer-1/identity.key")).unwrap();
    let plain = kek
        .open(&quorate_signer::node::identity_purpose("signer-1"), &sealed)
        .unwrap();
    quorate_core::identity::IdentitySecret::from_bytes(&plain).unwrap()
}

/// The test as signer 1: its real identity key and its DKG setup for `session`.
fn as_signer_1(
    c: &Cluster,
    session: &[u8],
) -> (
    Manifest,
    quorate_core::identity::IdentitySecret,
    quorate_core::dkg::DkgSetup,
) {
    let manifest = Manifest::load(&c.path("manifest.toml")).unwrap();
    let setup = quorate_core::dkg::DkgSetup {
        session_id: session.to_vec(),
        manifest_hash: manifest.hash(),
        me: 1,
        threshold: manifest.threshold,
        participants: manifest
            .signers
            .iter()
            .map(|x| (x.identifier, x.identity_key))
            .collect(),
    };
    (manifest, stolen_identity(c), setup)
}

/// Round 1 of the real signers connected to the relay.
async fn honest_round1(
    s: &mut BTreeMap<u32, Driven>,
    session: &[u8],
    manifest: &Manifest,
) -> Vec<pb::SignedRound1> {
    let mut out = Vec::new();
    for (i, d) in s.iter_mut() {
        match d
            .call(Req::DkgRound1(pb::DkgRound1Request {
                refresh: None,
                scheme: Default::default(),
                session_id: session.to_vec(),
                manifest_hash: manifest.hash().to_vec(),
            }))
            .await
        {
            Ans::DkgRound1(p) => out.push(pb::SignedRound1 {
                identifier: *i,
                package: p.package,
                signature: p.signature,
            }),
            other => panic!("round 1: {other:?}"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malicious_signers_bad_proof_of_knowledge_aborts_the_dkg_naming_it() {
    use quorate_core::dkg;
    let mut c = Cluster::create(3, 2).await;
    let mut book = Book::attacks("redteam-dkg-signer");
    let (mut s, _server, mut links) = relay_with(&mut c, &["signer-2", "signer-3"]).await;
    let session = vec![6u8; 16];
    let (manifest, me, setup) = as_signer_1(&c, &session);
    let (_, honest) = dkg::round1(setup.clone(), &me, &mut rand::rngs::OsRng).unwrap();
    // The proof of knowledge is the package's last field: change its last byte, and sign
    // the result with signer 1's real identity key.
    let mut bytes = honest.package.clone();
    *bytes.last_mut().unwrap() ^= 1;
    let bad = dkg::sign_round1(&setup, &me, bytes);
    let mut round1 = vec![pb::SignedRound1 {
        identifier: 1,
        package: bad.package,
        signature: bad.signature,
    }];
    round1.extend(honest_round1(&mut s, &session, &manifest).await);
    for (i, d) in s.iter_mut() {
        let a = d
            .call(Req::DkgRound2(pb::DkgRound2Request {
                scheme: Default::default(),
                session_id: session.clone(),
                packages: round1.clone(),
            }))
            .await;
        aborted_naming_signer_1(
            &mut book,
            &a,
            &format!("signer-{i}"),
            "bad proof of knowledge in a round-1 package",
        );
    }
    no_share(&mut s).await;

    // The session id is spent for good: asked again, even after a restart, a signer refuses
    // to sign a second round-1 package for it (which would look like equivocation).
    for restart in [false, true] {
        if restart {
            c.kill_signer("signer-2").await;
            s.remove(&2);
            c.start_signer("signer-2");
            let (ident, driven) = next_link(&mut links).await;
            s.insert(ident, driven);
        }
        let a = s
            .get_mut(&2)
            .unwrap()
            .call(Req::DkgRound1(pb::DkgRound1Request {
                refresh: None,
                scheme: Default::default(),
                session_id: session.clone(),
                manifest_hash: manifest.hash().to_vec(),
            }))
            .await;
        match a {
            Ans::Refusal(r) => assert!(r.reason.contains("single use"), "{r:?}"),
            other => panic!("a spent DKG session was reused (restart: {restart}): {other:?}"),
        }
    }
    audit_logs(&c, &mut s, &mut book).await;
    book.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malicious_signer_showing_different_round1_packages_is_named_by_every_peer() {
    use quorate_core::dkg;
    let mut c = Cluster::create(3, 2).await;
    let mut book = Book::attacks("redteam-dkg-equivocation");
    let (mut s, _server, _links) = relay_with(&mut c, &["signer-2", "signer-3"]).await;
    let session = vec![8u8; 16];
    let (manifest, me, setup) = as_signer_1(&c, &session);
    // Two valid round-1 packages, both signed by signer 1: A for signer 2, B for signer 3.
    let (state_a, a) = dkg::round1(setup.clone(), &me, &mut rand::rngs::OsRng).unwrap();
    let (_, b) = dkg::round1(setup.clone(), &me, &mut rand::rngs::OsRng).unwrap();
    let honest = honest_round1(&mut s, &session, &manifest).await;
    let (mut mail, mut echoes) = relay_round2(&mut s, &session, |i| {
        let mine = if i == 2 { signed_pb(&a) } else { signed_pb(&b) };
        std::iter::once(mine).chain(honest.clone()).collect()
    })
    .await;
    // Signer 1 plays along as if everyone had seen A, with its own shares and echo.
    let received: Vec<dkg::SignedRound1> = std::iter::once(a.clone())
        .chain(honest.iter().map(|p| dkg::SignedRound1 {
            identifier: p.identifier as u16,
            package: p.package.clone(),
            signature: p.signature.clone(),
        }))
        .collect();
    let (state2, sealed) = dkg::round2(state_a, &me, &mut rand::rngs::OsRng, &received).unwrap();
    let echo = dkg::echo(&state2, &me);
    echoes.push(echo_pb(echo));
    for x in sealed {
        mail.entry(u32::from(x.recipient))
            .or_default()
            .push(sealed_pb(x));
    }
    for (i, d) in s.iter_mut() {
        let answer = d
            .call(Req::DkgRound3(pb::DkgRound3Request {
                refresh: false,
                scheme: Default::default(),
                session_id: session.clone(),
                packages: mail.get(i).cloned().unwrap_or_default(),
                echoes: echoes.clone(),
            }))
            .await;
        aborted_naming_signer_1(
            &mut book,
            &answer,
            &format!("signer-{i}"),
            "different round-1 packages shown to different peers",
        );
        if let Ans::Refusal(r) = &answer {
            assert!(r.reason.contains("equivocation"), "{r:?}");
        }
    }
    no_share(&mut s).await;
    audit_logs(&c, &mut s, &mut book).await;
    book.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malicious_signers_signed_garbage_share_aborts_the_dkg_naming_it() {
    use quorate_core::dkg;
    let mut c = Cluster::create(3, 2).await;
    let mut book = Book::attacks("redteam-dkg-garbage-share");
    let (mut s, _server, _links) = relay_with(&mut c, &["signer-2", "signer-3"]).await;
    let session = vec![9u8; 16];
    let (manifest, me, setup) = as_signer_1(&c, &session);
    let (state, mine) = dkg::round1(setup.clone(), &me, &mut rand::rngs::OsRng).unwrap();
    let mut round1 = vec![signed_pb(&mine)];
    round1.extend(honest_round1(&mut s, &session, &manifest).await);
    let (mut mail, mut echoes) = relay_round2(&mut s, &session, |_| round1.clone()).await;
    // Signer 1 plays round 2 honestly, except that what it seals (and signs) for signer 3 is
    // garbage.
    let received: Vec<dkg::SignedRound1> = round1
        .iter()
        .map(|p| dkg::SignedRound1 {
            identifier: p.identifier as u16,
            package: p.package.clone(),
            signature: p.signature.clone(),
        })
        .collect();
    let (state2, sealed) = dkg::round2(state, &me, &mut rand::rngs::OsRng, &received).unwrap();
    let echo = dkg::echo(&state2, &me);
    echoes.push(echo_pb(echo));
    let transcript = dkg::transcript_hash(
        &setup,
        &received
            .iter()
            .map(|p| (p.identifier, p.package.clone()))
            .collect(),
    );
    for x in sealed {
        let x = if x.recipient == 3 {
            let ctx = quorate_core::seal::SealContext {
                session_id: &session,
                transcript: &transcript,
                sender: 1,
                recipient: 3,
            };
            quorate_core::seal::seal(
                &mut rand::rngs::OsRng,
                &me,
                &manifest.signer(3).unwrap().identity_key,
                &ctx,
                b"not a round-2 package",
            )
        } else {
            x
        };
        mail.entry(u32::from(x.recipient))
            .or_default()
            .push(sealed_pb(x));
    }
    let answer = s
        .get_mut(&3)
        .unwrap()
        .call(Req::DkgRound3(pb::DkgRound3Request {
            refresh: false,
            scheme: Default::default(),
            session_id: session.clone(),
            packages: mail.get(&3).cloned().unwrap_or_default(),
            echoes: echoes.clone(),
        }))
        .await;
    aborted_naming_signer_1(
        &mut book,
        &answer,
        "signer-3",
        "signed garbage in an encrypted round-2 package",
    );
    no_share(&mut s).await;
    audit_logs(&c, &mut s, &mut book).await;
    book.finish();
}
