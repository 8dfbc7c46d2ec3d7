//! The cluster in one process: a real coordinator and real signers (the node code the
//! binaries run, real sled on disk, real FROST) joined by in-memory links instead of TLS
//! streams, each node reading its own [`ManualClock`]. Behaviour that depends on time (a
//! velocity window freeing up, a whitelisted destination becoming active, nonce lifetimes, a
//! signer whose clock is off) is tested by moving the clocks, never by sleeping. Transport,
//! crashes and the red team stay with the real-process tests.

use std::{sync::Arc, time::Duration};

use quorate_coordinator::{
    config::CoordinatorConfig, server::prepare_with_clock, state::Coordinator,
    withdrawals::WithdrawalApi,
};
use quorate_core::{
    clock::{Clock, ManualClock},
    intent::WithdrawalIntent,
    message::Scheme,
};
use quorate_signer::{
    config::SignerConfig,
    node::{LinkId, Node},
};
use quorate_wire::{
    admin::DkgPhase,
    signer as spb,
    withdrawal::{withdrawal_service_server::WithdrawalService, SubmitRequest, Withdrawal},
};
use tokio::sync::{mpsc, oneshot};
use tonic_types::StatusExt;

use crate::harness::{rfc9591_verify, Cluster};

/// 2030-01-01T00:00:00Z, when the development policy's partner desk becomes whitelisted.
const PARTNER_ACTIVE_MS: u64 = 1_893_456_000_000;
const PARTNER: &str = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";
const COLD_WALLET: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
const HOUR_MS: u64 = 3_600_000;

/// One request through the signer's own edge, on a blocking thread as its link task runs it.
async fn answer(
    node: &Arc<Node>,
    link: LinkId,
    body: Option<spb::coordinator_message::Body>,
) -> spb::signer_message::Body {
    let node = node.clone();
    tokio::task::spawn_blocking(move || quorate_signer::link::answer(&node, link, body))
        .await
        .expect("the signer's answer task")
}

/// An in-memory link: requests go through the signer's own edge ([`quorate_signer::link::answer`],
/// which converts them to typed requests for the node and its answers back, as its link task
/// does), answers come back through the coordinator's link handle, as over a stream.
struct MemLink {
    cut: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl MemLink {
    fn attach(coordinator: &Arc<Coordinator>, node: Arc<Node>) -> Self {
        Self::attach_as(coordinator, node, Quirk::None)
    }

    fn attach_as(coordinator: &Arc<Coordinator>, node: Arc<Node>, quirk: Quirk) -> Self {
        let entry = coordinator
            .manifest
            .signer_by_name(&node.name)
            .expect("signer in manifest")
            .clone();
        let (tx, mut rx) = mpsc::channel::<Result<spb::CoordinatorMessage, tonic::Status>>(256);
        // A new link, as the signer's link task does: nothing committed before counts.
        node.forget_nonces(LinkId(0));
        let handle =
            Arc::new(coordinator.admit_signer(&entry, node.hello(), &entry.cert_sha256, tx));
        let (cut, mut cut_rx) = oneshot::channel();
        let coordinator = coordinator.clone();
        let garbled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = &mut cut_rx => break,
                    msg = rx.recv() => match msg {
                        Some(Ok(m)) => m,
                        _ => break,
                    },
                };
                let (node, handle, garbled) = (node.clone(), handle.clone(), garbled.clone());
                tokio::spawn(async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    let answer = match (msg.body, quirk) {
                        (
                            Some(spb::coordinator_message::Body::LedgerNotices(_)),
                            Quirk::BeforeBatches,
                        ) => node.refuse_unknown().into(),
                        (
                            Some(spb::coordinator_message::Body::LedgerNotices(_)),
                            Quirk::GarbleFirstBatch,
                        ) if !garbled.swap(true, SeqCst) => {
                            spb::signer_message::Body::LedgerAck(spb::LedgerAck { debited: true })
                        }
                        (body, _) => answer(&node, LinkId(0), body).await,
                    };
                    handle.deliver(msg.request_id, answer);
                });
            }
            coordinator.signer_gone(&handle, &entry);
        });
        Self {
            cut: Some(cut),
            task,
        }
    }

    async fn cut(mut self) {
        if let Some(c) = self.cut.take() {
            let _ = c.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// How an in-memory signer's link misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Quirk {
    None,
    /// Answers as a release before ledger-notice batches did: a batch is a request it does
    /// not know.
    BeforeBatches,
    /// The first batch of notices gets an answer of the wrong kind, unprocessed.
    GarbleFirstBatch,
}

/// A coordinator and its signers in this process, each with its own clock.
struct Memory {
    files: Cluster,
    coordinator: Arc<Coordinator>,
    coordinator_clock: Arc<ManualClock>,
    nodes: Vec<(Arc<Node>, Arc<ManualClock>)>,
    links: Vec<Option<MemLink>>,
}

impl Memory {
    /// An n-signer cluster (the development policy, threshold t) whose clocks all read
    /// `start_ms`, linked, with a secp256k1 key and the genesis policy on every signer.
    async fn start(n: u16, t: u16, start_ms: u64) -> Self {
        let files = Cluster::create(n, t).await;
        let coordinator_clock = Arc::new(ManualClock::new(start_ms));
        let cfg = CoordinatorConfig::load(&files.path("coordinator/coordinator.toml"))
            .expect("coordinator config");
        let prepared = prepare_with_clock(&cfg, coordinator_clock.clone()).expect("coordinator");
        let coordinator = prepared.state().clone();
        let mut nodes = Vec::new();
        for name in &files.names {
            let clock = Arc::new(ManualClock::new(start_ms));
            let cfg = SignerConfig::load(&files.path(&format!("{name}/signer.toml")))
                .expect("signer config");
            let (node, _) = quorate_signer::load_with_clock(&cfg, clock.clone()).expect("signer");
            nodes.push((node, clock));
        }
        let links = nodes
            .iter()
            .map(|(node, _)| Some(MemLink::attach(&coordinator, node.clone())))
            .collect();
        let m = Self {
            files,
            coordinator,
            coordinator_clock,
            nodes,
            links,
        };
        m.dkg().await;
        m.policy_everywhere(1).await;
        m
    }

    async fn dkg(&self) {
        let mut progress = self.coordinator.dkg.subscribe();
        self.coordinator
            .start_dkg(Scheme::Secp256k1)
            .expect("DKG starts");
        let done = tokio::time::timeout(
            Duration::from_secs(300),
            progress.wait_for(|s| {
                s.phase == DkgPhase::Done as i32 || s.phase == DkgPhase::Failed as i32
            }),
        )
        .await
        .expect("DKG ends within 300 s")
        .expect("DKG status")
        .clone();
        assert_eq!(done.phase, DkgPhase::Done as i32, "DKG: {}", done.detail);
    }

    /// Waits until every signer has policy version `version` in force (the coordinator sends
    /// it on a new link; readiness is awaited, not guessed).
    async fn policy_everywhere(&self, version: u64) {
        for _ in 0..2_000 {
            if self
                .nodes
                .iter()
                .all(|(n, _)| n.policy_status().version >= version)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the signers never got policy version {version}");
    }

    /// Moves every clock forward by `ms`.
    fn advance(&self, ms: u64) {
        self.coordinator_clock.advance(ms);
        self.advance_signers(ms);
    }

    /// Moves the signers' clocks alone forward by `ms`: with the coordinator's clock ahead of
    /// theirs, its own early check passes and the signers decide.
    fn advance_signers(&self, ms: u64) {
        for (_, c) in &self.nodes {
            c.advance(ms);
        }
    }

    /// How many requests all signers together refused under `rule`.
    fn all_refusals(&self, rule: &str) -> u64 {
        (0..self.nodes.len()).map(|i| self.refusals(i, rule)).sum()
    }

    /// A backend-signed ETH withdrawal created now (by the coordinator's clock), valid ten
    /// minutes.
    fn request(&self, id: &str, to: &str, amount: &str) -> (WithdrawalIntent, SubmitRequest) {
        let now = self.coordinator_clock.now_ms();
        let intent = WithdrawalIntent::from_parts(
            id,
            "ethereum",
            "ETH",
            to,
            amount,
            now,
            now + 600_000,
            None,
        )
        .expect("intent");
        let req = SubmitRequest {
            intent: Some(quorate_wire::convert::intent_to_proto(&intent)),
            backend_signature: quorate_core::backend::sign(
                &self.files.backend_key(),
                &intent.digest(),
            ),
        };
        (intent, req)
    }

    /// Submits through the withdrawal service itself and waits for the outcome.
    async fn submit(&self, req: SubmitRequest) -> Result<Withdrawal, tonic::Status> {
        let api = WithdrawalApi {
            state: self.coordinator.clone(),
        };
        let mut call = tonic::Request::new(req);
        call.metadata_mut()
            .insert("grpc-timeout", "20S".parse().expect("header"));
        api.submit(call).await.map(tonic::Response::into_inner)
    }

    /// Submits an ETH withdrawal and asserts it is signed with a valid RFC 9591 signature
    /// over its digest. Returns the signers that made it.
    async fn signs(&self, id: &str, to: &str, amount: &str) -> Vec<u32> {
        let (intent, req) = self.request(id, to, amount);
        let w = self
            .submit(req)
            .await
            .unwrap_or_else(|s| panic!("{id}: {}", s.message()));
        assert!(
            rfc9591_verify(&w.group_public_key, &intent.digest(), &w.signature),
            "{id}: the signature does not verify"
        );
        w.signers
    }

    /// Submits and asserts a refusal under `rule`; returns the status.
    async fn refused(&self, id: &str, to: &str, amount: &str, rule: &str) -> tonic::Status {
        let (_, req) = self.request(id, to, amount);
        let status = self
            .submit(req)
            .await
            .expect_err(&format!("{id} was signed; expected {rule}"));
        let info = status
            .get_error_details()
            .error_info()
            .cloned()
            .unwrap_or_else(|| panic!("{id}: no ErrorInfo in {status:?}"));
        assert_eq!(info.reason, rule, "{id}: {}", status.message());
        status
    }

    /// How many requests signer `i` (0-based) refused under `rule`, by its own metrics.
    fn refusals(&self, i: usize, rule: &str) -> u64 {
        let text = self.nodes[i].0.render_metrics();
        text.lines()
            .filter(|l| {
                l.starts_with("quorate_signer_requests_total")
                    && l.contains(&format!("rule=\"{rule}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    async fn stop(mut self) {
        for link in self.links.iter_mut().filter_map(Option::take) {
            link.cut().await;
        }
    }
}

/// A full 24-hour velocity window refuses with the time it frees up, and moving the clocks
/// past that time frees it: no sleeping, the real ledgers on both sides. The coordinator's
/// early check refuses first; with its clock moved to the time it announced and the signers'
/// one millisecond short of it, the signers' own ledgers refuse, and one millisecond later
/// they sign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_velocity_window_frees_when_the_clock_moves_past_it() {
    const RULE: &str = "policy-velocity-asset-amount-24h";
    let start = PARTNER_ACTIVE_MS - 30 * 24 * HOUR_MS;
    let m = Memory::start(3, 2, start).await;
    // The development policy: at most 10 ETH per 24 hours. Amounts are in wei; the refused
    // ones are 1 wei over.
    m.signs("v-1", COLD_WALLET, "6000000000000000000").await;
    m.advance(HOUR_MS);
    m.signs("v-2", COLD_WALLET, "4000000000000000000").await;
    let status = m.refused("v-3", COLD_WALLET, "1", RULE).await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(
        m.all_refusals(RULE),
        0,
        "the coordinator's early check answers first"
    );
    let retry_at = retry_at_ms(&status);
    // v-1 was debited at `start`; it leaves the window 24 h later, rounded up to the ledger's
    // one-minute buckets.
    let bucket = quorate_core::policy::ledger::BUCKET_MS;
    assert!(
        (start + 24 * HOUR_MS..=start + 24 * HOUR_MS + bucket).contains(&retry_at),
        "retry_at_ms {retry_at} is not 24 h after {start}"
    );
    // The coordinator at that time, the signers a millisecond short of it: every signer asked
    // refuses on its own ledger, and says when it frees up: the same time.
    let now = m.coordinator_clock.now_ms();
    m.coordinator_clock.advance(retry_at - now);
    m.advance_signers(retry_at - 1 - now);
    let status = m.refused("v-4", COLD_WALLET, "1", RULE).await;
    // Each signer asked refuses once and is left out: after two, too few are left.
    assert_eq!(m.all_refusals(RULE), 2);
    assert_eq!(retry_at_ms(&status), retry_at);
    // At the time given, it fits again, on every ledger.
    m.advance_signers(1);
    m.signs("v-5", COLD_WALLET, "6000000000000000000").await;
    // v-1's 6 left the window; v-2's 4 and v-5's 6 are in it.
    m.refused("v-6", COLD_WALLET, "1", RULE).await;
    m.stop().await;
}

/// The `retry_at_ms` of a refusal's ErrorInfo.
fn retry_at_ms(status: &tonic::Status) -> u64 {
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .expect("ErrorInfo");
    info.metadata
        .get("retry_at_ms")
        .unwrap_or_else(|| panic!("no retry_at_ms in {status:?}"))
        .parse()
        .expect("retry_at_ms")
}

/// A destination whitelisted from a later time is refused until then, by the coordinator's
/// early check and by every signer on its own clock, and signs once the clocks reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_whitelisted_from_later_signs_once_the_clocks_reach_it() {
    const RULE: &str = "policy-whitelist-not-yet-active";
    const ETH: &str = "1000000000000000000";
    let m = Memory::start(3, 2, PARTNER_ACTIVE_MS - HOUR_MS).await;
    m.refused("w-1", PARTNER, ETH, RULE).await;
    assert_eq!(
        m.all_refusals(RULE),
        0,
        "the coordinator's early check answers first"
    );
    // The coordinator at the time, the signers a millisecond short: they refuse.
    m.coordinator_clock.advance(HOUR_MS);
    m.advance_signers(HOUR_MS - 1);
    m.refused("w-2", PARTNER, ETH, RULE).await;
    assert_eq!(m.all_refusals(RULE), 2);
    m.advance_signers(1);
    m.signs("w-3", PARTNER, ETH).await;
    m.stop().await;
}

/// A signer whose clock runs 20 minutes slow sees every fresh intent as created in its future
/// (over the 5-minute skew allowed): it refuses, the coordinator leaves it out and signs with
/// the other two. Once its clock is set right it signs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_with_a_slow_clock_is_left_out_until_its_clock_is_set_right() {
    let start = PARTNER_ACTIVE_MS - 60 * 24 * HOUR_MS;
    let m = Memory::start(3, 2, start).await;
    let slow = &m.nodes[0].1;
    slow.set_wall(start - 20 * 60_000);
    let mut asked = 0;
    for k in 0..8 {
        let signers = m
            .signs(&format!("s-{k}"), COLD_WALLET, "100000000000000000")
            .await;
        assert!(
            !signers.contains(&1),
            "s-{k} was signed by the slow signer: {signers:?}"
        );
        asked = m.refusals(0, "intent-not-yet-valid");
        if asked > 0 && k >= 2 {
            break;
        }
    }
    assert!(
        asked > 0,
        "the slow signer was never asked in 8 withdrawals (chosen at random: (1/3)^8)"
    );
    slow.set_wall(m.coordinator_clock.now_ms());
    let mut signed_by_it = false;
    for k in 0..12 {
        let signers = m
            .signs(&format!("r-{k}"), COLD_WALLET, "100000000000000000")
            .await;
        if signers.contains(&1) {
            signed_by_it = true;
            break;
        }
    }
    assert!(signed_by_it, "signer-1 took part in none of 64 withdrawals");
    let refused = m.refusals(0, "intent-not-yet-valid");
    assert_eq!(
        refused, asked,
        "signer-1 refused again after its clock was set right"
    );
    m.stop().await;
}

/// Pre-generated commitments live on monotonic clocks on both sides. After 61 s on the
/// monotonic clocks (the signers' nonce lifetime is 60 s) with every wall clock stepped back an
/// hour at the same time, the coordinator no longer hands out the commitments it holds (it
/// counts their lifetime on its own monotonic clock, with a margin), so no signer is sent a
/// nonce it dropped, and the withdrawal is signed with fresh commitments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pregenerated_commitments_expire_on_monotonic_clocks() {
    let start = PARTNER_ACTIVE_MS - 90 * 24 * HOUR_MS;
    let m = Memory::start(3, 2, start).await;
    // The first withdrawal has the coordinator fill its pools of pre-generated commitments.
    m.signs("n-1", COLD_WALLET, "100000000000000000").await;
    for _ in 0..2_000 {
        let pools = m.coordinator.registry.presigned();
        if pools.len() == 3 && pools.values().all(|n| *n > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pools = m.coordinator.registry.presigned();
    assert!(
        pools.len() == 3 && pools.values().all(|n| *n > 0),
        "the pools were never filled: {pools:?}"
    );
    // A wall-clock step back changes nothing about lifetimes.
    m.coordinator_clock.set_wall(start - HOUR_MS);
    for (_, c) in &m.nodes {
        c.set_wall(start - HOUR_MS);
    }
    m.advance(61_000);
    m.signs("n-2", COLD_WALLET, "100000000000000000").await;
    assert_eq!(
        m.all_refusals("nonce-unknown"),
        0,
        "a signer was sent a pre-generated commitment past its lifetime"
    );
    m.stop().await;
}

/// The genesis policy of `m`'s cluster with `extra` TOML appended, as version 2 built on it,
/// signed by development admins `signers` (1-based); and the admin keys.
fn successor(m: &Memory, extra: &str) -> quorate_core::policy::SignedPolicy {
    use quorate_core::policy::{form::PolicyForm, SignedPolicy};
    let genesis = quorate_wire::convert::policy_file::signed_from_json(
        &std::fs::read_to_string(m.files.path("policy/genesis.json")).expect("genesis"),
    )
    .expect("genesis decodes");
    let text = std::fs::read_to_string(m.files.path("policy/genesis.toml")).expect("form");
    let mut form = PolicyForm::parse(&format!("{text}\n{extra}")).expect("form parses");
    form.admins = genesis.doc.admins.clone();
    form.admin_quorum = genesis.doc.admin_quorum;
    form.backend_keys = genesis.doc.backend_keys.clone();
    let doc = form
        .to_doc(2, &genesis.doc.hash_hex())
        .expect("a valid successor");
    let hash = doc.hash();
    SignedPolicy {
        signatures: vec![admin_signature(m, 1, &hash)],
        doc,
    }
}

/// Development admin `n`'s approval of the policy with `hash`.
fn admin_signature(m: &Memory, n: u8, hash: &[u8; 32]) -> quorate_core::policy::AdminSignature {
    let text = std::fs::read_to_string(m.files.path(&format!("admin/admin-{n}.key"))).expect("key");
    let key =
        quorate_core::identity::IdentitySecret::from_bytes(&hex::decode(text.trim()).expect("hex"))
            .expect("an admin key");
    quorate_core::policy::AdminSignature::sign(
        &key,
        quorate_core::policy::governance::POLICY_APPROVAL_DOMAIN,
        &[hash],
    )
}

/// A loosening change (a new destination) approved by the quorum waits out the development
/// policy's 10-minute time-lock on the coordinator and on every signer, to the millisecond,
/// and then applies without anyone touching it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_destination_waits_out_the_timelock_to_the_millisecond() {
    use quorate_coordinator::admin::AdminApi;
    use quorate_wire::{
        admin::{admin_service_server::AdminService, ApprovePolicyRequest, ProposePolicyRequest},
        convert::policy::{sig_to_proto, signed_to_proto},
    };
    const NEW: &str = "0x1111111111111111111111111111111111111111";
    let m = Memory::start(3, 2, PARTNER_ACTIVE_MS - 120 * 24 * HOUR_MS).await;
    let admin = AdminApi {
        state: m.coordinator.clone(),
        approvals: tokio::sync::Mutex::new(()),
    };
    let next = successor(
        &m,
        &format!(
            "[[whitelist]]\nchain = \"ethereum\"\naddress = \"{NEW}\"\nlabel = \"new desk\"\n"
        ),
    );
    let hash = next.doc.hash();
    let proposed = admin
        .propose_policy(tonic::Request::new(ProposePolicyRequest {
            policy: Some(signed_to_proto(&next)),
        }))
        .await
        .expect("proposed")
        .into_inner();
    assert_eq!(proposed.state, "collecting", "{proposed:?}");
    let approved = admin
        .approve_policy(tonic::Request::new(ApprovePolicyRequest {
            hash: hex::encode(hash),
            approval: Some(sig_to_proto(&admin_signature(&m, 2, &hash))),
        }))
        .await
        .expect("approved")
        .into_inner();
    assert_eq!(approved.state, "timelocked", "{approved:?}");
    let approved_at = m.coordinator_clock.now_ms();
    assert_eq!(approved.effective_at_ms, approved_at + 600_000);
    const RULE: &str = "policy-whitelist-destination";
    m.refused("t-1", NEW, "1", RULE).await;
    assert_eq!(
        m.all_refusals(RULE),
        0,
        "the coordinator's early check answers first"
    );
    // The coordinator at the end of the time-lock (version 2 in force there), the signers a
    // millisecond short of it: each asked refuses under version 1.
    m.coordinator_clock.advance(600_000);
    m.advance_signers(600_000 - 1);
    m.refused("t-2", NEW, "1", RULE).await;
    assert_eq!(m.all_refusals(RULE), 2);
    for (node, _) in &m.nodes {
        assert_eq!(
            node.policy_status().version,
            1,
            "{} applied early",
            node.name
        );
    }
    m.advance_signers(1);
    m.signs("t-3", NEW, "1").await;
    for (node, _) in &m.nodes {
        assert_eq!(
            node.policy_status().version,
            2,
            "{} did not apply it",
            node.name
        );
    }
    m.stop().await;
}

/// A hostile coordinator sends one signer two signing requests at once for the same withdrawal
/// id with different intents, each with its own nonce and a valid package (S6: one id, one
/// intent). The signer checks a request outside its policy lock and binds under it, so the two
/// race; however they interleave, at most one share is released and the other is refused
/// `withdrawal-id-conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_intents_racing_for_one_id_get_one_share_at_most() {
    use quorate_core::message::{signing_message, ChainFormat};
    use spb::coordinator_message::Body as Req;
    use spb::signer_message::Body as Ans;

    let m = Memory::start(3, 2, PARTNER_ACTIVE_MS - 150 * 24 * HOUR_MS).await;
    let (target, other) = (m.nodes[0].0.clone(), m.nodes[1].0.clone());
    // A fresh commitment of `node` for a new session.
    async fn commit(
        node: &Arc<Node>,
        session: [u8; 16],
    ) -> frost_secp256k1::round1::SigningCommitments {
        let req = Req::Commit(spb::CommitRequest {
            session_id: session.to_vec(),
            scheme: 0,
        });
        match answer(node, LinkId(0), Some(req)).await {
            Ans::Commit(c) => {
                frost_secp256k1::round1::SigningCommitments::deserialize(&c.commitments)
                    .expect("commitments decode")
            }
            other => panic!("no commitment: {other:?}"),
        }
    }
    for round in 0..8 {
        let id = format!("race-{round}");
        let mut requests = Vec::new();
        for amount in ["100000000000000000", "200000000000000000"] {
            let (intent, submit) = m.request(&id, COLD_WALLET, amount);
            let session: [u8; 16] = rand::random();
            let mine = commit(&target, session).await;
            let theirs = commit(&other, rand::random()).await;
            let message = signing_message(&intent, ChainFormat::IntentDigest).expect("message");
            let package = frost_secp256k1::SigningPackage::new(
                [
                    (frost_secp256k1::Identifier::try_from(1).unwrap(), mine),
                    (frost_secp256k1::Identifier::try_from(2).unwrap(), theirs),
                ]
                .into(),
                &message,
            );
            requests.push(Req::Sign(spb::SignRequest {
                session_id: session.to_vec(),
                intent: intent.encode(),
                backend_signature: submit.backend_signature,
                signing_package: package.serialize().expect("package"),
                ..Default::default()
            }));
        }
        let b = requests.pop();
        let a = requests.pop();
        let (a, b) = tokio::join!(answer(&target, LinkId(0), a), answer(&target, LinkId(0), b));
        let shares = [&a, &b]
            .iter()
            .filter(|x| matches!(x, Ans::Sign(_)))
            .count();
        assert_eq!(shares, 1, "{id}: {a:?} / {b:?}");
        let refused = [&a, &b]
            .iter()
            .find_map(|x| match x {
                Ans::Refusal(r) => Some(r.rule.clone()),
                _ => None,
            })
            .expect("one refusal");
        assert_eq!(refused, "withdrawal-id-conflict", "{id}");
    }
    m.stop().await;
}

mod notices;
mod refusals;
