//! Admins never approve blind (S1 for people): `quorate admin` talks to a man-in-the-middle
//! coordinator that holds the real coordinator's certificate, forwards to it, and lies. It
//! serves a doctored policy baseline, a forged chain, doctored intents, drops a freeze and
//! forges or replays the signers' status receipts. The admin's tool must refuse and sign
//! nothing (the man in the middle records every signature that reaches it), or report
//! exactly which signers are not proven frozen. Operators' local freezes hold at once,
//! without the coordinator.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
};

use quorate_core::{
    amount::Amount,
    intent::WithdrawalIntent,
    policy::{PolicyDoc, PolicyForm, SignedPolicy, WhitelistEntry},
};
use quorate_wire::{
    admin::{
        self as pb,
        admin_service_client::AdminServiceClient,
        admin_service_server::{AdminService, AdminServiceServer},
    },
    audit as apb,
    convert::policy::signed_to_proto,
    convert::policy_file,
    tls::{self, TlsMaterial},
};
use serde_json::Value;
use tonic::{transport::Channel, Request, Response, Status};

use crate::{
    harness::{quorate, Cluster},
    scoreboard::Book,
};

pub(crate) const ATTACKER_ETH: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
const ATTACKER_BTC: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";

/// What the man in the middle does to the answers it forwards.
#[derive(Default, Clone)]
struct Tamper {
    /// Served instead of the real policy chain.
    chain: Option<Vec<quorate_wire::policy::SignedPolicy>>,
    /// Served as the policy "in force" in `GetPolicy`.
    current: Option<quorate_wire::policy::SignedPolicy>,
    /// Replaces each pending withdrawal's intent and backend signature.
    pending: Option<(Vec<u8>, Vec<u8>)>,
    /// Proposals are answered "applied" and never reach the coordinator (a dropped freeze).
    drop_proposals: bool,
    /// This signer's receipt says "frozen" (without its signature changing).
    forge_frozen: Option<String>,
    /// Receipts are the ones of the previous request (a replay).
    replay_receipts: bool,
}

#[derive(Clone)]
struct Mitm {
    real: AdminServiceClient<Channel>,
    tamper: Arc<Mutex<Tamper>>,
    /// Every admin signature that reached the man in the middle, by RPC.
    signed: Arc<Mutex<Vec<String>>>,
    last_receipts: Arc<Mutex<Option<pb::SignerReceipts>>>,
}

impl Mitm {
    fn t(&self) -> Tamper {
        self.tamper.lock().unwrap().clone()
    }
    fn set(&self, t: Tamper) {
        *self.tamper.lock().unwrap() = t;
    }
    fn signed(&self) -> Vec<String> {
        self.signed.lock().unwrap().clone()
    }
    fn note(&self, what: &str) {
        self.signed.lock().unwrap().push(what.to_string());
    }
}

type DkgStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::DkgStatus, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AdminService for Mitm {
    async fn get_cluster_status(
        &self,
        r: Request<pb::GetClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        self.real.clone().get_cluster_status(r.into_inner()).await
    }
    async fn start_dkg(
        &self,
        _: Request<pb::StartDkgRequest>,
    ) -> Result<Response<pb::DkgStatus>, Status> {
        Err(Status::unimplemented("not relayed"))
    }
    async fn refresh_shares(
        &self,
        _: Request<pb::RefreshSharesRequest>,
    ) -> Result<Response<pb::RefreshSharesResponse>, Status> {
        Err(Status::unimplemented("not relayed"))
    }
    async fn repair_share(
        &self,
        _: Request<pb::RepairShareRequest>,
    ) -> Result<Response<pb::RepairShareResponse>, Status> {
        Err(Status::unimplemented("not relayed"))
    }
    type WatchDkgStream = DkgStream;
    async fn watch_dkg(
        &self,
        _: Request<pb::WatchDkgRequest>,
    ) -> Result<Response<DkgStream>, Status> {
        Err(Status::unimplemented("not relayed"))
    }
    async fn get_policy_chain(
        &self,
        r: Request<pb::GetPolicyChainRequest>,
    ) -> Result<Response<pb::PolicyChain>, Status> {
        match self.t().chain {
            Some(versions) => {
                let from = r.into_inner().from_version as usize;
                let head = versions.len() as u64;
                Ok(Response::new(pb::PolicyChain {
                    versions: versions.into_iter().skip(from - 1).collect(),
                    head_version: head,
                }))
            }
            None => self.real.clone().get_policy_chain(r.into_inner()).await,
        }
    }
    async fn get_signer_receipts(
        &self,
        r: Request<pb::GetSignerReceiptsRequest>,
    ) -> Result<Response<pb::SignerReceipts>, Status> {
        let t = self.t();
        let mut answer = self
            .real
            .clone()
            .get_signer_receipts(r.into_inner())
            .await?
            .into_inner();
        let previous = self.last_receipts.lock().unwrap().replace(answer.clone());
        if t.replay_receipts {
            answer = previous.expect("an earlier answer to replay");
        }
        if let Some(name) = t.forge_frozen {
            for s in &mut answer.signers {
                if s.name == name {
                    if let Some(r) = s.receipt.as_mut() {
                        r.frozen = true;
                    }
                }
            }
        }
        Ok(Response::new(answer))
    }
    async fn get_policy(
        &self,
        r: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::PolicyView>, Status> {
        let mut view = self
            .real
            .clone()
            .get_policy(r.into_inner())
            .await?
            .into_inner();
        if let Some(cur) = self.t().current {
            view.current = Some(cur);
        }
        Ok(Response::new(view))
    }
    async fn propose_policy(
        &self,
        r: Request<pb::ProposePolicyRequest>,
    ) -> Result<Response<pb::Proposal>, Status> {
        self.note("propose");
        let r = r.into_inner();
        if self.t().drop_proposals {
            let doc = PolicyDoc::decode(&r.policy.as_ref().unwrap().document).unwrap();
            return Ok(Response::new(pb::Proposal {
                hash: doc.hash_hex(),
                state: "applied".into(),
                approvals: 1,
                required: 1,
                version: doc.version,
                policy: r.policy,
                ..Default::default()
            }));
        }
        self.real.clone().propose_policy(r).await
    }
    async fn approve_policy(
        &self,
        r: Request<pb::ApprovePolicyRequest>,
    ) -> Result<Response<pb::Proposal>, Status> {
        self.note("approve");
        self.real.clone().approve_policy(r.into_inner()).await
    }
    async fn veto_policy(
        &self,
        r: Request<pb::VetoPolicyRequest>,
    ) -> Result<Response<pb::Proposal>, Status> {
        self.note("veto");
        self.real.clone().veto_policy(r.into_inner()).await
    }
    async fn list_pending_withdrawals(
        &self,
        r: Request<pb::ListPendingWithdrawalsRequest>,
    ) -> Result<Response<pb::ListPendingWithdrawalsResponse>, Status> {
        let mut answer = self
            .real
            .clone()
            .list_pending_withdrawals(r.into_inner())
            .await?
            .into_inner();
        if let Some((intent, sig)) = self.t().pending {
            for w in &mut answer.withdrawals {
                w.intent = intent.clone();
                w.backend_signature = sig.clone();
            }
        }
        Ok(Response::new(answer))
    }
    async fn approve_withdrawal(
        &self,
        r: Request<pb::ApproveWithdrawalRequest>,
    ) -> Result<Response<pb::PendingWithdrawal>, Status> {
        self.note("approve-withdrawal");
        self.real.clone().approve_withdrawal(r.into_inner()).await
    }
    async fn export_audit(
        &self,
        r: Request<apb::AuditExportRequest>,
    ) -> Result<Response<apb::AuditPage>, Status> {
        self.real.clone().export_audit(r.into_inner()).await
    }
    async fn sign_vault_action(
        &self,
        r: Request<pb::SignVaultActionRequest>,
    ) -> Result<Response<pb::VaultActionSigned>, Status> {
        self.note("sign-vault-action");
        self.real.clone().sign_vault_action(r.into_inner()).await
    }

    async fn void_solana_nonce(
        &self,
        r: Request<pb::VoidSolanaNonceRequest>,
    ) -> Result<Response<pb::SolanaNonceVoided>, Status> {
        self.note("void-solana-nonce");
        self.real.clone().void_solana_nonce(r.into_inner()).await
    }
}

/// Starts a man in the middle with the coordinator's own certificate, forwarding to `c`.
async fn mitm(c: &Cluster) -> (Mitm, String) {
    let tls = TlsMaterial::load(
        &c.path("ca/ca.pem"),
        &c.path("coordinator/cert.pem"),
        &c.path("coordinator/key.pem"),
    )
    .unwrap();
    let m = Mitm {
        real: AdminServiceClient::new(c.channel("admin").await).max_decoding_message_size(64 << 20),
        tamper: Arc::default(),
        signed: Arc::default(),
        last_receipts: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdminServiceServer::new(m.clone()))
            .serve_with_incoming(tls::incoming(listener, tls.server_config().unwrap())),
    );
    (m, addr)
}

/// `quorate admin --json --key admin/admin-<n>.key [--yes] ARGS` against `addr`; returns
/// (exit code, stdout JSON or Null, stderr).
async fn admin_at(
    c: &Cluster,
    addr: &str,
    n: u32,
    yes: bool,
    args: &[&str],
) -> (i32, Value, String) {
    let key = c.path(&format!("admin/admin-{n}.key"));
    let mut all = vec![
        "admin",
        "--dir",
        c.dir_str(),
        "--coordinator",
        addr,
        "--json",
        "--key",
        key.to_str().unwrap(),
    ];
    if yes {
        all.push("--yes");
    }
    all.extend_from_slice(args);
    let (code, out, err) = quorate(&all).await;
    (
        code,
        serde_json::from_str(out.trim()).unwrap_or(Value::Null),
        err,
    )
}

pub(crate) fn genesis(c: &Cluster) -> SignedPolicy {
    policy_file::signed_from_json(&std::fs::read_to_string(c.path("policy/genesis.json")).unwrap())
        .unwrap()
}

fn with_attacker(doc: &PolicyDoc) -> PolicyDoc {
    let mut d = doc.clone();
    d.whitelist.push(WhitelistEntry {
        chain: quorate_core::address::Chain::Ethereum,
        address: ATTACKER_ETH.into(),
        label: "treasury rebalancing".into(),
        active_from_ms: 0,
    });
    d.whitelist
        .sort_by(|a, b| (a.chain, &a.address).cmp(&(b.chain, &b.address)));
    d
}

/// The real proposal's approvals at the real coordinator.
async fn approvals(c: &Cluster, hash: &str) -> u64 {
    let mut a = AdminServiceClient::new(c.channel("admin").await);
    let view = a
        .get_policy(pb::GetPolicyRequest::default())
        .await
        .unwrap()
        .into_inner();
    u64::from(
        view.proposals
            .iter()
            .find(|p| p.hash == hash)
            .expect("the proposal is filed")
            .approvals,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_refuses_a_doctored_baseline_and_signs_nothing() {
    let c = Cluster::start(3, 2).await;
    let (m, addr) = mitm(&c).await;
    let mut book = Book::attacks("redteam-admin-desk-policy");
    let g = genesis(&c);

    // The attack reproduced from the issue: P = real policy + the attacker's destination + a
    // harmless tightening; the baseline served is real policy + the attacker's destination,
    // so a tool diffing against it shows only the tightening.
    let baseline = with_attacker(&g.doc);
    let mut p = baseline.clone();
    p.assets[0].max_per_withdrawal = Amount::new(90_000_000_000_000_000_000).unwrap();
    p.version = 2;
    p.prev_hash = g.doc.hash_hex();
    let file = c.path("p.toml");
    std::fs::write(&file, PolicyForm::from_doc(&p).to_toml()).unwrap();
    // A compromised (or careless) admin 1 files P at the real coordinator.
    let (code, v) = c.admin(1, &["propose", file.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{v}");
    let hash = v["hash"].as_str().unwrap().to_string();
    assert_eq!(approvals(&c, &hash).await, 1);

    let doctored_v1 = signed_to_proto(&SignedPolicy {
        doc: PolicyDoc {
            version: 1,
            prev_hash: g.doc.prev_hash.clone(),
            ..baseline.clone()
        },
        signatures: g.signatures.clone(),
    });
    // A forged version 2 that "already" whitelists the attacker, signed by admin 1 only.
    let admin1 = {
        let t = std::fs::read_to_string(c.path("admin/admin-1.key")).unwrap();
        quorate_core::identity::IdentitySecret::from_bytes(&hex::decode(t.trim()).unwrap()).unwrap()
    };
    let forged_v2 = {
        let mut d = with_attacker(&g.doc);
        d.version = 2;
        d.prev_hash = g.doc.hash_hex();
        let sig = quorate_core::policy::AdminSignature::sign(
            &admin1,
            quorate_core::policy::governance::POLICY_APPROVAL_DOMAIN,
            &[&d.hash()],
        );
        signed_to_proto(&SignedPolicy {
            doc: d,
            signatures: vec![sig],
        })
    };
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "doctored baseline served as genesis and as the policy in force",
            Tamper {
                chain: Some(vec![doctored_v1.clone()]),
                current: Some(doctored_v1.clone()),
                ..Default::default()
            },
            "not to the pinned genesis",
        ),
        (
            "forged version 2 without the admin quorum claimed to be in force",
            Tamper {
                chain: Some(vec![signed_to_proto(&g), forged_v2.clone()]),
                current: Some(forged_v2.clone()),
                ..Default::default()
            },
            "1 valid distinct admin signatures; 2 are needed",
        ),
    ];
    for (attack, tamper, says) in cases {
        m.set(tamper);
        // Checkpoints would let a later run skip verified history; start clean each time.
        let _ = std::fs::remove_file(c.path("policy-checkpoint.json"));
        let (code, v, err) = admin_at(&c, &addr, 2, true, &["approve", &hash]).await;
        assert_ne!(code, 0, "{attack}: {v} {err}");
        assert!(err.contains(says), "{attack}: {err}");
        assert!(m.signed().is_empty(), "{attack}: {:?}", m.signed());
        book.blocked_at_desk(attack);
    }

    // A doctored baseline claimed to be in force is not even looked at: the diff is against
    // the verified version P builds on, so the attacker's destination is on the admin's screen
    // (and likewise with an honest relay); without a terminal and without --yes, nothing is
    // signed.
    for (relay, tamper) in [
        (
            "doctored baseline claimed to be in force",
            Tamper {
                current: Some(doctored_v1.clone()),
                ..Default::default()
            },
        ),
        ("honest relay", Tamper::default()),
    ] {
        m.set(tamper);
        let (code, _, err) = admin_at(&c, &addr, 2, false, &["approve", &hash]).await;
        assert_ne!(code, 0, "{relay}: {err}");
        assert!(
            err.contains(&format!(
                "+ loosens   whitelist ethereum {ATTACKER_ETH} (treasury rebalancing): added"
            )),
            "{relay}: the admin sees the attacker's destination: {err}"
        );
        assert!(err.contains("nothing signed"), "{relay}: {err}");
        assert!(m.signed().is_empty(), "{relay}: {:?}", m.signed());
    }
    book.blocked_at_desk("doctored baseline claimed to be in force (ignored; the true diff shown)");
    assert_eq!(
        approvals(&c, &hash).await,
        1,
        "no approval reached the coordinator"
    );
    // Admin 2 reads the diff, and vetoes instead.
    let (code, v, _) = admin_at(&c, &addr, 2, true, &["veto", &hash]).await;
    assert_eq!((code, v["state"].as_str()), (0, Some("vetoed")), "{v}");
    book.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_withdrawal_refuses_a_doctored_intent_and_signs_nothing() {
    let c = Cluster::start(3, 2).await;
    let (m, addr) = mitm(&c).await;
    let mut book = Book::attacks("redteam-admin-desk-withdrawal");
    // 1.5 BTC is above the 1 BTC approval threshold: it waits for two admins.
    let (code, v) = c.submit_btc("wd-big", "150000000").await;
    assert_eq!(
        (code, v["status"].as_str()),
        (3, Some("pending_approval")),
        "{v}"
    );
    let mut a = AdminServiceClient::new(c.channel("admin").await);
    let real = a
        .list_pending_withdrawals(pb::ListPendingWithdrawalsRequest {})
        .await
        .unwrap()
        .into_inner()
        .withdrawals
        .remove(0);
    let intent = WithdrawalIntent::decode(&real.intent).unwrap();
    let redo = |id: &str, to: &str, amount: &str| {
        WithdrawalIntent::from_parts(
            id,
            "bitcoin",
            "BTC",
            to,
            amount,
            intent.created_at_ms,
            intent.expires_at_ms,
            None,
        )
        .unwrap()
        .encode()
    };
    let rogue = k256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let to_attacker = redo("wd-big", ATTACKER_BTC, "150000000");
    let rogue_sig = quorate_core::backend::sign(
        &rogue,
        &WithdrawalIntent::decode(&to_attacker).unwrap().digest(),
    );
    // (attack, (intent, backend signature) served, what the refusal says)
    type Case<'a> = (&'a str, (Vec<u8>, Vec<u8>), &'a str);
    let cases: Vec<Case> = vec![
        (
            "destination swapped, real backend signature kept",
            (to_attacker.clone(), real.backend_signature.clone()),
            "backend signature does not verify",
        ),
        (
            "amount raised, real backend signature kept",
            (
                redo(
                    "wd-big",
                    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
                    "950000000",
                ),
                real.backend_signature.clone(),
            ),
            "backend signature does not verify",
        ),
        (
            "swapped intent signed by a key that is no backend key",
            (to_attacker.clone(), rogue_sig),
            "backend signature does not verify",
        ),
        (
            "backend signature stripped",
            (real.intent.clone(), vec![]),
            "backend signature does not verify",
        ),
        (
            "another withdrawal's intent under this id",
            (
                redo(
                    "wd-other",
                    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
                    "150000000",
                ),
                real.backend_signature.clone(),
            ),
            "sent the intent of `wd-other`",
        ),
        (
            "undecodable intent",
            (vec![0xde, 0xad], real.backend_signature.clone()),
            "invalid intent",
        ),
    ];
    for (attack, pending, says) in cases {
        m.set(Tamper {
            pending: Some(pending),
            ..Default::default()
        });
        let (code, v, err) = admin_at(&c, &addr, 1, true, &["approve-withdrawal", "wd-big"]).await;
        assert_ne!(code, 0, "{attack}: {v}");
        assert!(err.contains(says), "{attack}: {err}");
        assert!(err.contains("nothing signed"), "{attack}: {err}");
        assert!(m.signed().is_empty(), "{attack}: {:?}", m.signed());
        book.blocked_at_desk(attack);
    }
    let still = a
        .list_pending_withdrawals(pb::ListPendingWithdrawalsRequest {})
        .await
        .unwrap()
        .into_inner()
        .withdrawals;
    assert_eq!(still[0].approvals, 0, "no approval reached the coordinator");

    // Honest relay: the admin sees whole units, the destination and its whitelist label.
    m.set(Tamper::default());
    let (code, v, err) = admin_at(&c, &addr, 1, true, &["approve-withdrawal", "wd-big"]).await;
    assert_eq!((code, v["approvals"].as_u64()), (0, Some(1)), "{v} {err}");
    assert!(err.contains("backend signature verified"), "{err}");
    assert!(err.contains("1.5 BTC on bitcoin"), "{err}");
    assert!(
        err.contains("to bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4 (\""),
        "the whitelist label is shown: {err}"
    );
    book.finish();
}

/// A signer's audit log through the coordinator, verified against the manifest's key.
async fn signer_audit(c: &Cluster, name: &str) -> Vec<quorate_core::audit::Record> {
    let manifest = quorate_wire::manifest::Manifest::load(&c.path("manifest.toml")).unwrap();
    let key = manifest.signer_by_name(name).unwrap().identity_key;
    c.audit_of(name, Some(&key)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_freeze_is_reported_and_a_local_freeze_holds_at_once() {
    let c = Cluster::start(3, 2).await;
    let (m, addr) = mitm(&c).await;
    let mut book = Book::attacks("redteam-admin-desk-freeze");

    // The coordinator drops the freeze and forges signer-3's receipt to say "frozen".
    m.set(Tamper {
        drop_proposals: true,
        forge_frozen: Some("signer-3".into()),
        ..Default::default()
    });
    let (code, v, err) = admin_at(&c, &addr, 1, true, &["freeze", "--wait", "3s"]).await;
    assert_eq!(code, 3, "not proven frozen: {v} {err}");
    let report: Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(report["frozen_proven"], 0, "{report}");
    assert_eq!(report["needed"], 2, "{report}");
    assert_eq!(
        report["not_proven_frozen"],
        serde_json::json!(["signer-1", "signer-2", "signer-3"]),
        "{report}"
    );
    let s3 = &report["signers"][2];
    assert_eq!(s3["proven"], false, "{report}");
    assert!(
        s3["error"]
            .as_str()
            .unwrap()
            .contains("not signed by the identity key"),
        "the forged receipt is caught: {report}"
    );
    book.blocked_at_desk("freeze dropped, signer receipt forged to say frozen");
    // The freeze was indeed dropped: the signers still sign.
    let (code, v) = c.submit_eth("wd-f-1", "1000").await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");

    // Two operators freeze their own signers, locally, without the coordinator or a restart.
    for name in ["signer-1", "signer-2"] {
        let cfg = c.path(&format!("{name}/signer.toml"));
        let (code, out, err) = quorate(&[
            "signer",
            "freeze",
            "--config",
            cfg.to_str().unwrap(),
            "--reason",
            "coordinator lies",
        ])
        .await;
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, v) = c.submit_eth("wd-f-2", "1000").await;
    assert_eq!(
        (code != 0, v["rule"].as_str()),
        (true, Some("policy-frozen")),
        "two of three frozen locally leave no quorum: {v}"
    );
    for name in ["signer-1", "signer-2"] {
        let log = signer_audit(&c, name).await;
        assert!(
            crate::hostile::audited_refusal(&log, "wd-f-2", "policy-frozen"),
            "{name} recorded its refusal"
        );
        assert!(
            log.iter()
                .any(|r| r.event.kind == "local-freeze" && r.event.field("frozen") == Some("true")),
            "{name} recorded its operator's freeze"
        );
        book.blocked(
            "withdrawal while the operator froze the signer locally",
            name,
            "policy-frozen",
            Some("wd-f-2"),
        );
        book.audit(name, &log);
    }
    // Now the receipts prove it, whatever the coordinator does with the freeze: enough (two of
    // three), though not all.
    let (code, _, err) = admin_at(&c, &addr, 1, true, &["freeze", "--wait", "3s"]).await;
    let report: Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        (report["enough"].as_bool(), report["all"].as_bool()),
        (Some(true), Some(false)),
        "{report}"
    );
    assert_eq!(report["frozen_proven"], 2, "{report}");
    assert_eq!(report["not_proven_frozen"], serde_json::json!(["signer-3"]));
    assert_eq!(report["signers"][0]["locally_frozen"], true, "{report}");

    // A replayed set of receipts (the ones just proven) proves nothing.
    m.set(Tamper {
        drop_proposals: true,
        replay_receipts: true,
        ..Default::default()
    });
    let (code, _, err) = admin_at(&c, &addr, 1, true, &["freeze", "--wait", "2s"]).await;
    let report: Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(code, 3, "{report}");
    assert!(
        report["signers"][0]["error"]
            .as_str()
            .unwrap()
            .contains("replayed"),
        "{report}"
    );
    book.blocked_at_desk("signer receipts replayed from an earlier request");

    // The operator lifts the local freeze: signing resumes.
    let cfg = c.path("signer-1/signer.toml");
    let (code, _, _) = quorate(&["signer", "unfreeze", "--config", cfg.to_str().unwrap()]).await;
    assert_eq!(code, 0);
    let (code, v) = c.submit_eth("wd-f-3", "1000").await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");
    assert!(
        m.signed().iter().all(|s| s == "propose"),
        "{:?}",
        m.signed()
    );
    book.finish();
}

/// A coordinator that names a version waiting out its time-lock as the one in force does not
/// get the admin's freeze built on it: the signers' receipts say what is in force, and the
/// freeze built on that applies everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_is_built_on_what_the_signers_prove_in_force() {
    let c = Cluster::start(3, 2).await;
    let (m, addr) = mitm(&c).await;
    let mut book = Book::attacks("redteam-admin-desk-in-force");
    let g = genesis(&c);
    let mut loosen = with_attacker(&g.doc);
    loosen.version = 2;
    loosen.prev_hash = g.doc.hash_hex();
    let file = c.path("l.toml");
    std::fs::write(&file, PolicyForm::from_doc(&loosen).to_toml()).unwrap();
    let (_, v) = c.admin(1, &["propose", file.to_str().unwrap()]).await;
    let hash = v["hash"].as_str().unwrap().to_string();
    let (_, v) = c.admin(2, &["approve", &hash]).await;
    assert_eq!(v["state"], "timelocked", "{v}");
    // The relay claims the time-locked version 2 is in force.
    let mut a = AdminServiceClient::new(c.channel("admin").await);
    let chain = a
        .get_policy_chain(pb::GetPolicyChainRequest {
            from_version: 2,
            limit: 1,
        })
        .await
        .unwrap()
        .into_inner();
    m.set(Tamper {
        current: Some(chain.versions[0].clone()),
        ..Default::default()
    });
    let (code, v, err) = admin_at(&c, &addr, 3, true, &["freeze", "--wait", "10s"]).await;
    assert_eq!(
        (code, v["state"].as_str()),
        (0, Some("applied")),
        "{v} {err}"
    );
    assert_eq!(
        v["version"], 2,
        "built on version 1, which the signers prove: {v}"
    );
    let report: Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(report["all"], true, "{report}");
    book.blocked_at_desk(
        "a time-locked version claimed to be in force (freeze built on the proven one)",
    );
    book.finish();
}
