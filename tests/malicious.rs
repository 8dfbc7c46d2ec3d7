//! Malicious signers: the test holds signer 1's certificate (and, for the second liar, its real
//! key share), dials the real coordinator and lies: a wrong identifier on its stream, garbage
//! signature shares, and a valid share replayed from another session. The coordinator must
//! refuse or name it as the culprit (in its audit log too), drop it, and still get every
//! withdrawal signed by an honest quorum.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use frost_secp256k1::{
    keys::{KeyPackage, SigningShare},
    round1, round2, SigningPackage,
};
use quorate_core::{audit::kind, intent::WithdrawalIntent};
use quorate_wire::{
    manifest::Manifest,
    signer::{self as pb, signer_link_client::SignerLinkClient, signer_message::Body as Ans},
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    harness::{hexf, rfc9591_verify, Cluster},
    scoreboard::Book,
};

fn hello(c: &Cluster, identifier: u32, group_key: Vec<u8>) -> pb::SignerMessage {
    let manifest = Manifest::load(&c.path("manifest.toml")).unwrap();
    pb::SignerMessage {
        request_id: 0,
        body: Some(Ans::Hello(pb::Hello {
            key_epoch: 0,
            ed25519_key_epoch: 0,
            pending_key_epoch: 0,
            ed25519_pending_key_epoch: 0,
            ed25519_group_public_key: Default::default(),
            name: "signer-1".into(),
            identifier,
            version: "evil".into(),
            manifest_hash: manifest.hash().to_vec(),
            group_public_key: group_key,
            policy: None,
        })),
    }
}

/// How a liar answers signing requests.
#[derive(Clone, Copy, PartialEq)]
enum Lie {
    /// Garbage shares, with no key share at all.
    Garbage,
    /// Signs honestly once, then answers every request with that first share.
    ReplayOtherSession,
    /// Pre-generates commitments when asked but forgets their nonces (as a restart would
    /// without the link dropping): refuses those sessions `nonce-unknown`; signs honestly in
    /// fresh sessions.
    ForgetPresigned,
}

/// Signer 1's real key package, read from its (stopped) node's store with its KEK.
fn stolen_key(c: &Cluster) -> KeyPackage {
    use quorate_signer::store::{SignerStore, SledStore};
    let store = SledStore::open(&c.path("signer-1/data")).unwrap();
    let sealed = store.get_meta("key_share").unwrap().expect("a key share");
    let kek = quorate_core::atrest::Kek::from_hex(
        std::fs::read_to_string(c.path("signer-1/kek"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let plain = kek.open("quorate/key-share/v1/signer-1", &sealed).unwrap();
    KeyPackage::deserialize(&plain).unwrap()
}

/// Attaches a liar as signer 1; returns the withdrawals it lied about, and a handle that
/// disconnects it when dropped.
async fn attach_liar(
    c: &Cluster,
    group_key: Vec<u8>,
    key: Option<KeyPackage>,
    lie: Lie,
) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let (lies, _, task) = attach_liar_counting(c, group_key, key, lie).await;
    (lies, task)
}

/// [`attach_liar`], also counting the fresh commit requests it answered after its first lie.
async fn attach_liar_counting(
    c: &Cluster,
    group_key: Vec<u8>,
    key: Option<KeyPackage>,
    lie: Lie,
) -> (
    Arc<Mutex<Vec<String>>>,
    Arc<Mutex<usize>>,
    tokio::task::JoinHandle<()>,
) {
    let fresh_after_lie = Arc::new(Mutex::new(0usize));
    let fresh = fresh_after_lie.clone();
    let (tx, rx) = mpsc::channel(64);
    tx.send(hello(c, 1, group_key)).await.unwrap();
    let mut inbound = SignerLinkClient::new(c.channel("signer-1").await)
        .attach(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let lies = Arc::new(Mutex::new(Vec::new()));
    let told = lies.clone();
    let task = tokio::spawn(async move {
        let fake = SigningShare::deserialize(&[7u8; 32]).unwrap();
        let mut nonces = BTreeMap::new();
        let mut first: Option<Vec<u8>> = None;
        while let Ok(Some(m)) = inbound.message().await {
            let answer = match m.body {
                Some(pb::coordinator_message::Body::Presign(r)) if lie == Lie::ForgetPresigned => {
                    let share = key.as_ref().map_or(&fake, |k| k.signing_share());
                    // Commitments made, nonces dropped on the floor.
                    let commitments = r
                        .session_ids
                        .iter()
                        .map(|_| {
                            round1::commit(share, &mut rand::thread_rng())
                                .1
                                .serialize()
                                .unwrap()
                        })
                        .collect();
                    Ans::Presign(pb::PresignResponse {
                        commitments,
                        ttl_ms: 60_000,
                    })
                }
                Some(pb::coordinator_message::Body::Commit(r)) => {
                    if !told.lock().unwrap().is_empty() {
                        *fresh.lock().unwrap() += 1;
                    }
                    let share = key.as_ref().map_or(&fake, |k| k.signing_share());
                    let (n, commitments) = round1::commit(share, &mut rand::thread_rng());
                    nonces.insert(r.session_id, n);
                    Ans::Commit(pb::CommitResponse {
                        commitments: commitments.serialize().unwrap(),
                    })
                }
                Some(pb::coordinator_message::Body::Sign(r))
                    if lie == Lie::ForgetPresigned && !nonces.contains_key(&r.session_id) =>
                {
                    told.lock()
                        .unwrap()
                        .push(WithdrawalIntent::decode(&r.intent).unwrap().id);
                    Ans::Refusal(pb::Refusal {
                        rule: "nonce-unknown".into(),
                        reason: "no live nonce for this signing session".into(),
                        permanent: true,
                        culprits: vec![],
                        retry_at_ms: 0,
                    })
                }
                Some(pb::coordinator_message::Body::Sign(r)) if lie == Lie::ForgetPresigned => {
                    let package = SigningPackage::deserialize(&r.signing_package).unwrap();
                    let n = nonces.remove(&r.session_id).unwrap();
                    let k = key.as_ref().expect("a key share");
                    Ans::Sign(pb::SignResponse {
                        share: round2::sign(&package, &n, k).unwrap().serialize(),
                    })
                }
                Some(pb::coordinator_message::Body::Sign(r)) => {
                    let id = WithdrawalIntent::decode(&r.intent).unwrap().id;
                    let share = match (lie, &first, &key) {
                        (Lie::ReplayOtherSession, None, Some(k)) => {
                            let package = SigningPackage::deserialize(&r.signing_package).unwrap();
                            let n = nonces.remove(&r.session_id).unwrap();
                            let s = round2::sign(&package, &n, k).unwrap().serialize();
                            first = Some(s.clone());
                            s
                        }
                        (Lie::ReplayOtherSession, Some(s), _) => {
                            told.lock().unwrap().push(id);
                            s.clone()
                        }
                        _ => {
                            told.lock().unwrap().push(id);
                            vec![5u8; 32]
                        }
                    };
                    Ans::Sign(pb::SignResponse { share })
                }
                // Everything else (policy, ledger notices) goes unanswered.
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
    (lies, fresh_after_lie, task)
}

/// Submits withdrawals until the liar has lied at least once (and at least `min` times in
/// all); each is signed, and each one it lied about only by the honest pair.
async fn sign_through(c: &Cluster, prefix: &str, lies: &Mutex<Vec<String>>, group_key: &[u8]) {
    let mut n = 0;
    while lies.lock().unwrap().is_empty() || n < 3 {
        assert!(n < 60, "the malicious signer was never chosen");
        let id = format!("{prefix}-{n}");
        let (code, w) = c.submit_eth(&id, "1").await;
        assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
        assert!(rfc9591_verify(
            group_key,
            &hexf(&w, "message"),
            &hexf(&w, "signature")
        ));
        if lies.lock().unwrap().contains(&id) {
            assert_eq!(w["signers"], serde_json::json!([2, 3]), "{w}");
        }
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_shares_name_the_culprit_and_an_honest_quorum_signs() {
    let mut c = Cluster::start(3, 2).await;
    let mut book = Book::attacks("redteam-malicious-signer");
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
    book.blocked(
        "wrong identifier on its stream",
        "coordinator",
        "signer-identity",
        None,
    );

    // As itself, with garbage in every share.
    let (lies, task) = attach_liar(&c, group_key.clone(), None, Lie::Garbage).await;
    c.wait_connected(3).await;
    sign_through(&c, "wd-m", &lies, &group_key).await;
    let first = lies.lock().unwrap()[0].clone();
    book.blocked_as(
        "invalid signature share",
        "coordinator",
        "culprit",
        Some(&first),
        (kind::CULPRIT, "signer", "1"),
    );
    task.abort();
    c.wait_connected(2).await;

    // With the real key share: one honest share, then that share again for other sessions.
    let (lies, task) = attach_liar(
        &c,
        group_key.clone(),
        Some(stolen_key(&c)),
        Lie::ReplayOtherSession,
    )
    .await;
    c.wait_connected(3).await;
    sign_through(&c, "wd-r", &lies, &group_key).await;
    let first = lies.lock().unwrap()[0].clone();
    book.blocked_as(
        "valid share from another session",
        "coordinator",
        "culprit",
        Some(&first),
        (kind::CULPRIT, "signer", "1"),
    );
    task.abort();

    let log = c.coordinator_audit().await;
    book.audit("coordinator", &log);
    book.finish();
}

/// One-round signing's fallback: a signer that no longer knows the nonces of commitments it
/// pre-generated (a restart the link did not show) refuses them `nonce-unknown`. The
/// coordinator must not blame it, must drop its pool and ask it for fresh commitments, and
/// every withdrawal must still be signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_pregenerated_commitments_fall_back_to_a_fresh_round() {
    let mut c = Cluster::start(3, 2).await;
    let group_key = c.status().await.group_public_key;
    c.kill_signer("signer-1").await;
    c.wait_connected(2).await;
    let (forgot, fresh, task) = attach_liar_counting(
        &c,
        group_key.clone(),
        Some(stolen_key(&c)),
        Lie::ForgetPresigned,
    )
    .await;
    c.wait_connected(3).await;
    let mut n = 0;
    // Until a withdrawal that signer 1 refused for a forgotten nonce is signed with signer 1
    // in its quorum after all: it was not left out but asked again with a fresh commitment
    // (a signer left out of a withdrawal is never asked again for it).
    let mut signed_after_fallback = false;
    while !signed_after_fallback {
        assert!(
            n < 80,
            "no withdrawal was signed by signer 1 after it refused a forgotten pre-generated nonce"
        );
        let id = format!("wd-f-{n}");
        let (code, w) = c.submit_eth(&id, "1").await;
        assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
        assert!(rfc9591_verify(
            &group_key,
            &hexf(&w, "message"),
            &hexf(&w, "signature")
        ));
        let refused_first = forgot.lock().unwrap().contains(&id);
        let by_one = w["signers"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x.as_u64() == Some(1)));
        signed_after_fallback = refused_first && by_one;
        n += 1;
    }
    assert!(
        *fresh.lock().unwrap() > 0,
        "signer 1 was never asked for a fresh commitment"
    );
    // Not blamed: no culprit record names it.
    let log = c.coordinator_audit().await;
    assert!(
        !log.iter().any(|r| r.event.kind == kind::CULPRIT),
        "a signer that forgot its nonces was named a culprit"
    );
    task.abort();
}
