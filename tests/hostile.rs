//! A hostile coordinator: the test takes the coordinator's role (its certificate and port)
//! and drives real signer processes directly, trying to make them sign what they must not.

use std::{collections::BTreeMap, pin::Pin, time::Duration};

use frost_secp256k1::{round1::SigningCommitments, Identifier, SigningPackage};
use quorate_core::intent::WithdrawalIntent;
use quorate_wire::{
    signer::{
        self as pb, coordinator_message::Body as Req, signer_link_server::SignerLink,
        signer_link_server::SignerLinkServer, signer_message::Body as Ans,
    },
    tls::{self, TlsMaterial},
};
use tokio::sync::mpsc;
use tokio_stream::{wrappers::ReceiverStream, Stream};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    harness::{now_ms, Cluster},
    scoreboard::Book,
};

pub(crate) type Out = mpsc::Sender<Result<pb::CoordinatorMessage, Status>>;

pub(crate) struct Fake {
    pub(crate) links: mpsc::Sender<(u32, Streaming<pb::SignerMessage>, Out)>,
}

#[tonic::async_trait]
impl SignerLink for Fake {
    type AttachStream = Pin<Box<dyn Stream<Item = Result<pb::CoordinatorMessage, Status>> + Send>>;
    async fn attach(
        &self,
        req: Request<Streaming<pb::SignerMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut inbound = req.into_inner();
        let hello = match inbound.message().await? {
            Some(pb::SignerMessage {
                body: Some(Ans::Hello(h)),
                ..
            }) => h,
            _ => return Err(Status::invalid_argument("no hello")),
        };
        let (tx, rx) = mpsc::channel(16);
        let _ = self.links.send((hello.identifier, inbound, tx)).await;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One signer's stream, driven by the test.
pub(crate) struct Driven {
    pub(crate) inbound: Streaming<pb::SignerMessage>,
    pub(crate) out: Out,
    pub(crate) next: u64,
}

impl Driven {
    pub(crate) async fn call(&mut self, body: Req) -> Ans {
        self.next += 1;
        let id = self.next;
        self.out
            .send(Ok(pb::CoordinatorMessage {
                request_id: id,
                body: Some(body),
            }))
            .await
            .unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.inbound.message())
                .await
                .expect("signer answers")
                .unwrap()
                .expect("stream open");
            if m.request_id == id {
                return m.body.unwrap();
            }
        }
    }

    pub(crate) async fn commit(&mut self, session: [u8; 16]) -> SigningCommitments {
        match self
            .call(Req::Commit(pb::CommitRequest {
                scheme: Default::default(),
                session_id: session.to_vec(),
            }))
            .await
        {
            Ans::Commit(c) => SigningCommitments::deserialize(&c.commitments).unwrap(),
            other => panic!("commit refused: {other:?}"),
        }
    }

    pub(crate) async fn sign(
        &mut self,
        session: [u8; 16],
        intent: &[u8],
        sig: &[u8],
        pkg: &SigningPackage,
    ) -> Ans {
        self.call(Req::Sign(pb::SignRequest {
            key_epoch: 0,
            scheme: Default::default(),
            session_id: session.to_vec(),
            intent: intent.to_vec(),
            backend_signature: sig.to_vec(),
            signing_package: pkg.serialize().unwrap(),
            approvals: vec![],
            vault_action: None,
            solana_void: None,
        }))
        .await
    }

    /// A signing request for the vault administration message at (chain, nonce).
    pub(crate) async fn sign_vault(
        &mut self,
        session: [u8; 16],
        chain: &str,
        nonce: u64,
        pkg: &SigningPackage,
    ) -> Ans {
        self.call(Req::Sign(pb::SignRequest {
            session_id: session.to_vec(),
            signing_package: pkg.serialize().unwrap(),
            vault_action: Some(pb::VaultActionRef {
                chain: chain.into(),
                nonce,
            }),
            ..Default::default()
        }))
        .await
    }
}

impl Driven {
    /// The signer's whole audit log as it exports it (JSON lines, then its signed head),
    /// paging as the coordinator's admin service does.
    pub(crate) async fn audit_log(&mut self) -> String {
        use quorate_wire::convert::audit as conv;
        let mut text = String::new();
        let mut from = 1;
        loop {
            let page = match self
                .call(Req::AuditExport(quorate_wire::audit::AuditExportRequest {
                    node: String::new(),
                    from_seq: from,
                    limit: 1000,
                    nonce: b"hostile-test".to_vec(),
                }))
                .await
            {
                Ans::AuditPage(p) => p,
                other => panic!("audit export refused: {other:?}"),
            };
            let head = conv::head_from_proto(page.head.as_ref().unwrap()).unwrap();
            head.check_fresh(b"hostile-test").unwrap();
            for r in &page.records {
                let r = conv::record_from_proto(r).unwrap();
                text.push_str(&r.to_json());
                text.push('\n');
                from = r.seq + 1;
            }
            if from > head.seq || page.records.is_empty() {
                text.push_str(&head.to_json());
                text.push('\n');
                return text;
            }
        }
    }

    /// The audit log, verified (chain and head signed by `key`), as records.
    pub(crate) async fn verified_audit(
        &mut self,
        key: &quorate_core::identity::IdentityPublic,
    ) -> Vec<quorate_core::audit::Record> {
        let text = self.audit_log().await;
        quorate_core::audit::verify_export(&text, Some(key))
            .unwrap_or_else(|e| panic!("signer audit log does not verify: {e}\n{text}"))
            .records
    }
}

/// True if `log` holds a refusal of withdrawal `wid` under `rule`.
pub(crate) fn audited_refusal(log: &[quorate_core::audit::Record], wid: &str, rule: &str) -> bool {
    log.iter().any(|r| {
        r.event.kind == quorate_core::audit::kind::REFUSED
            && r.event.field("withdrawal") == Some(wid)
            && r.event.field("rule") == Some(rule)
    })
}

#[track_caller]
pub(crate) fn refused(a: &Ans, rule: &str) {
    match a {
        Ans::Refusal(r) => assert_eq!(r.rule, rule, "refused for another reason: {r:?}"),
        other => panic!("expected refusal `{rule}`, got {other:?}"),
    }
}

/// A signer's answer to a batch of ledger notices: `Ok(debited)` or `Err(rule)` per notice.
#[track_caller]
pub(crate) fn notice_results(a: Ans) -> Vec<Result<bool, String>> {
    use quorate_wire::signer::ledger_notice_result::Result as R;
    let Ans::LedgerAcks(acks) = a else {
        panic!("expected ledger acks, got {a:?}");
    };
    acks.results
        .into_iter()
        .map(|r| match r.result {
            Some(R::Ack(a)) => Ok(a.debited),
            Some(R::Refusal(r)) => Err(r.rule),
            None => panic!("a result with neither outcome"),
        })
        .collect()
}

pub(crate) fn id(n: u16) -> Identifier {
    Identifier::try_from(n).unwrap()
}

pub(crate) fn session() -> [u8; 16] {
    rand::random()
}

/// Stops the coordinator and takes its address and certificate; returns the `count` signers
/// that reconnect, and the channel later reconnections arrive on.
pub(crate) async fn take_over(
    c: &mut Cluster,
    count: usize,
) -> (
    BTreeMap<u32, Driven>,
    mpsc::Receiver<(u32, Streaming<pb::SignerMessage>, Out)>,
) {
    let addr = c.addr.clone();
    c.kill_coordinator().await;
    let tls = TlsMaterial::load(
        &c.path("ca/ca.pem"),
        &c.path("coordinator/cert.pem"),
        &c.path("coordinator/key.pem"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    let (links_tx, mut links_rx) = mpsc::channel(8);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SignerLinkServer::new(Fake { links: links_tx }))
            .serve_with_incoming(tls::incoming(listener, tls.server_config().unwrap())),
    );
    let mut signers: BTreeMap<u32, Driven> = BTreeMap::new();
    while signers.len() < count {
        let (ident, driven) = next_link(&mut links_rx).await;
        signers.insert(ident, driven);
    }
    (signers, links_rx)
}

/// The next signer to connect to the fake coordinator, and its stream.
pub(crate) async fn next_link(
    links: &mut mpsc::Receiver<(u32, Streaming<pb::SignerMessage>, Out)>,
) -> (u32, Driven) {
    let (ident, inbound, out) = tokio::time::timeout(Duration::from_secs(60), links.recv())
        .await
        .expect("a signer connects to the fake coordinator")
        .unwrap();
    (
        ident,
        Driven {
            inbound,
            out,
            next: 0,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_refuses_what_a_hostile_coordinator_sends() {
    let mut c = Cluster::start(3, 2).await;
    let (mut signers, _links) = take_over(&mut c, 3).await;
    let mut book = Book::attacks("redteam-hostile-coordinator");

    let backend_key = c.backend_key();
    let now = now_ms();
    let make = |wid: &str, asset: &str, amount: &str, created: u64, expires: u64| {
        let i = WithdrawalIntent::from_parts(
            wid,
            "ethereum",
            asset,
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            amount,
            created,
            expires,
            None,
        )
        .unwrap();
        let sig = quorate_core::backend::sign(&backend_key, &i.digest());
        (i.encode(), i.digest(), sig)
    };
    let (good, good_digest, good_sig) = make("wd-h1", "ETH", "1000", now, now + 600_000);

    // Helper: commitments from signer 1 and 2 for a fresh session.
    async fn pair(
        signers: &mut BTreeMap<u32, Driven>,
        s: [u8; 16],
    ) -> (SigningCommitments, SigningCommitments) {
        let c1 = signers.get_mut(&1).unwrap().commit(s).await;
        let c2 = signers.get_mut(&2).unwrap().commit(s).await;
        (c1, c2)
    }
    let pkg =
        |c1, c2, msg: &[u8]| SigningPackage::new(BTreeMap::from([(id(1), c1), (id(2), c2)]), msg);

    // 1. The package's message is not the digest of the intent sent with it.
    let s = session();
    let (c1, c2) = pair(&mut signers, s).await;
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &good, &good_sig, &pkg(c1, c2, &[0x42; 32]))
        .await;
    book.refused(
        "message differs from the digest of the intent",
        "signer-1",
        &a,
        "message-mismatch",
        Some("wd-h1"),
    );

    // 2. No backend signature, and a backend signature by a key not in the manifest.
    let s = session();
    let (c1, c2) = pair(&mut signers, s).await;
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &good, &[], &pkg(c1, c2, &good_digest))
        .await;
    book.refused(
        "missing backend signature",
        "signer-1",
        &a,
        "backend-signature-invalid",
        Some("wd-h1"),
    );
    let forged = quorate_core::backend::sign(
        &k256::ecdsa::SigningKey::random(&mut rand::thread_rng()),
        &good_digest,
    );
    let s = session();
    let (c1, c2) = pair(&mut signers, s).await;
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &good, &forged, &pkg(c1, c2, &good_digest))
        .await;
    book.refused(
        "forged backend signature",
        "signer-1",
        &a,
        "backend-signature-invalid",
        Some("wd-h1"),
    );

    // 3. An expired intent, properly signed by the backend.
    let (old, old_digest, old_sig) = make("wd-h-old", "ETH", "1", now - 7_200_000, now - 3_600_000);
    let s = session();
    let (c1, c2) = pair(&mut signers, s).await;
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &old, &old_sig, &pkg(c1, c2, &old_digest))
        .await;
    book.refused(
        "expired intent",
        "signer-1",
        &a,
        "intent-expired",
        Some("wd-h-old"),
    );

    // 4. A package that omits the signer's own commitment.
    let s = session();
    let _own = signers.get_mut(&1).unwrap().commit(s).await;
    let c2 = signers.get_mut(&2).unwrap().commit(s).await;
    let c3 = signers.get_mut(&3).unwrap().commit(s).await;
    let without = SigningPackage::new(BTreeMap::from([(id(2), c2), (id(3), c3)]), &good_digest);
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &good, &good_sig, &without)
        .await;
    book.refused(
        "own commitment missing from the package",
        "signer-1",
        &a,
        "commitment-missing",
        Some("wd-h1"),
    );

    // 5. A package with a commitment in the signer's name that it did not make for this session.
    let s_other = session();
    let other = signers.get_mut(&1).unwrap().commit(s_other).await;
    let s = session();
    let (_c1, c2) = pair(&mut signers, s).await;
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &good, &good_sig, &pkg(other, c2, &good_digest))
        .await;
    book.refused(
        "own commitment altered (one from another session)",
        "signer-1",
        &a,
        "commitment-mismatch",
        Some("wd-h1"),
    );

    // 6. Policy hook: an asset the signer's policy does not list.
    let (usdt, usdt_digest, usdt_sig) = make("wd-h-usdt", "USDT", "1", now, now + 600_000);
    let s = session();
    let (c1, c2) = pair(&mut signers, s).await;
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &usdt, &usdt_sig, &pkg(c1, c2, &usdt_digest))
        .await;
    book.refused(
        "asset not in the registry",
        "signer-1",
        &a,
        "policy-asset-unknown",
        Some("wd-h-usdt"),
    );

    // 7. Control: a well-formed request is signed...
    let s = session();
    let (c1, c2) = pair(&mut signers, s).await;
    let p = pkg(c1, c2, &good_digest);
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &good, &good_sig, &p)
        .await;
    assert!(
        matches!(a, Ans::Sign(_)),
        "well-formed request must be signed: {a:?}"
    );
    // ...and the same commitment can never be used again (S4).
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &good, &good_sig, &p)
        .await;
    book.refused(
        "replay of an old sign request (commitment used twice)",
        "signer-1",
        &a,
        "nonce-unknown",
        Some("wd-h1"),
    );
    // A session the signer never committed to is refused too.
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(session(), &good, &good_sig, &p)
        .await;
    book.refused(
        "sign request for a session never committed to",
        "signer-1",
        &a,
        "nonce-unknown",
        Some("wd-h1"),
    );

    // 8. The same withdrawal id with a different intent is refused by the signer's own store.
    let (evil, evil_digest, evil_sig) = make("wd-h1", "ETH", "999999", now, now + 600_000);
    let s = session();
    let (c1, c2) = pair(&mut signers, s).await;
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &evil, &evil_sig, &pkg(c1, c2, &evil_digest))
        .await;
    book.refused(
        "same withdrawal id with a different intent",
        "signer-1",
        &a,
        "withdrawal-id-conflict",
        Some("wd-h1"),
    );

    // 9. A package padded with a commitment from a signer that is not in the manifest.
    let s = session();
    let (c1, c2) = pair(&mut signers, s).await;
    let (_, stranger) = frost_secp256k1::round1::commit(
        &frost_secp256k1::keys::SigningShare::deserialize(&[3u8; 32]).unwrap(),
        &mut rand::thread_rng(),
    );
    let padded = SigningPackage::new(
        BTreeMap::from([(id(1), c1), (id(2), c2), (id(9), stranger)]),
        &good_digest,
    );
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &good, &good_sig, &padded)
        .await;
    book.refused(
        "package padded with a commitment from outside the manifest",
        "signer-1",
        &a,
        "package-malformed",
        Some("wd-h1"),
    );

    // 10. A new DKG cannot replace the key share the signer already holds.
    let a = signers
        .get_mut(&1)
        .unwrap()
        .call(Req::DkgRound1(pb::DkgRound1Request {
            refresh: None,
            scheme: Default::default(),
            session_id: vec![1; 16],
            manifest_hash: quorate_wire::manifest::Manifest::load(&c.path("manifest.toml"))
                .unwrap()
                .hash()
                .to_vec(),
        }))
        .await;
    book.refused(
        "new DKG over the existing key share",
        "signer-1",
        &a,
        "dkg-key-exists",
        None,
    );

    // 11. The signed intent replayed under a new withdrawal id: the backend never signed it.
    let mut renamed = WithdrawalIntent::decode(&good).unwrap();
    renamed.id = "wd-h-replayed".into();
    let s = session();
    let (c1, c2) = pair(&mut signers, s).await;
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(
            s,
            &renamed.encode(),
            &good_sig,
            &pkg(c1, c2, &renamed.digest()),
        )
        .await;
    book.refused(
        "signed intent replayed under a new id",
        "signer-1",
        &a,
        "backend-signature-invalid",
        Some("wd-h-replayed"),
    );

    // 12. Destinations: not on the whitelist, and whitelisted only from 2030.
    for (wid, to, rule, attack) in [
        (
            "wd-h-nw",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "policy-whitelist-destination",
            "destination not on the whitelist",
        ),
        (
            "wd-h-ny",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "policy-whitelist-not-yet-active",
            "whitelisted destination not yet active",
        ),
    ] {
        let i = WithdrawalIntent::from_parts(
            wid,
            "ethereum",
            "ETH",
            to,
            "1000",
            now,
            now + 600_000,
            None,
        )
        .unwrap();
        let sig = quorate_core::backend::sign(&backend_key, &i.digest());
        let s = session();
        let (c1, c2) = pair(&mut signers, s).await;
        let a = signers
            .get_mut(&1)
            .unwrap()
            .sign(s, &i.encode(), &sig, &pkg(c1, c2, &i.digest()))
            .await;
        book.refused(attack, "signer-1", &a, rule, Some(wid));
    }

    // A vault administration message (a key rotation, a cap) its policy does not list: a
    // coordinator cannot make signers hand the vault to another key or lift a cap.
    let s = session();
    let (c1, c2) = pair(&mut signers, s).await;
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign_vault(s, "ethereum", 0, &pkg(c1, c2, &[0x42; 32]))
        .await;
    book.refused(
        "vault key rotation or cap the policy does not list",
        "signer-1",
        &a,
        "vault-action-unknown",
        None,
    );

    // The signer processes are still healthy after all of this.
    for (name, child) in c.signers.iter_mut() {
        assert!(child.try_wait().unwrap().is_none(), "{name} died");
    }
    // And signer 1 recorded every refusal in its own audit log (verified against its pinned
    // identity key).
    let manifest = quorate_wire::manifest::Manifest::load(&c.path("manifest.toml")).unwrap();
    let key = manifest.signer(1).unwrap().identity_key;
    let log = signers.get_mut(&1).unwrap().verified_audit(&key).await;
    book.audit("signer-1", &log);
    book.finish();
}

mod link;
mod vault;
