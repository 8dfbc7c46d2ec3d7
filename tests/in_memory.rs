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

/// An in-memory link: requests go through the signer's own edge ([`quorate_signer::link::answer`],
/// which converts them to typed requests for the node and its answers back, as its link task
/// does), answers come back through the coordinator's link handle, as over a stream.
struct MemLink {
    cut: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl MemLink {
    fn attach(coordinator: &Arc<Coordinator>, node: Arc<Node>) -> Self {
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
        let task = tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = &mut cut_rx => break,
                    msg = rx.recv() => match msg {
                        Some(Ok(m)) => m,
                        _ => break,
                    },
                };
                let (node, handle) = (node.clone(), handle.clone());
                tokio::spawn(async move {
                    let answer = quorate_signer::link::answer(&node, LinkId(0), msg.body).await;
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
        let done = progress
            .wait_for(|s| s.phase == DkgPhase::Done as i32 || s.phase == DkgPhase::Failed as i32)
            .await
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
        for (_, c) in &self.nodes {
            c.advance(ms);
        }
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
/// past that time frees it: no sleeping, the real ledgers on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_velocity_window_frees_when_the_clock_moves_past_it() {
    let start = PARTNER_ACTIVE_MS - 30 * 24 * HOUR_MS;
    let m = Memory::start(3, 2, start).await;
    // The development policy: at most 10 ETH per 24 hours. Amounts are in wei; the refused
    // ones are 1 wei over.
    m.signs("v-1", COLD_WALLET, "6000000000000000000").await;
    m.advance(HOUR_MS);
    m.signs("v-2", COLD_WALLET, "4000000000000000000").await;
    let status = m
        .refused("v-3", COLD_WALLET, "1", "policy-velocity-asset-amount-24h")
        .await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let info = status.get_error_details().error_info().cloned().unwrap();
    let retry_at: u64 = info.metadata["retry_at_ms"].parse().expect("retry_at_ms");
    // The first debit was at `start`; it leaves the window 24 h later, rounded up to the
    // ledger's one-minute buckets.
    let bucket = quorate_core::policy::ledger::BUCKET_MS;
    assert!(
        (start + 24 * HOUR_MS..=start + 24 * HOUR_MS + bucket).contains(&retry_at),
        "retry_at_ms {retry_at} is not 24 h after {start}"
    );
    // Still full a minute before then.
    m.advance(retry_at - bucket - m.coordinator_clock.now_ms());
    m.refused("v-4", COLD_WALLET, "1", "policy-velocity-asset-amount-24h")
        .await;
    // At the time given, it fits again. The signers' pre-generated nonces have long expired
    // on their monotonic clocks by now: the coordinator falls back to fresh commitments.
    m.advance(retry_at - m.coordinator_clock.now_ms());
    m.signs("v-5", COLD_WALLET, "6000000000000000000").await;
    // v-1's 6 left the window; v-2's 4 and v-5's 6 are in it.
    m.refused("v-6", COLD_WALLET, "1", "policy-velocity-asset-amount-24h")
        .await;
    m.stop().await;
}

/// A destination whitelisted from a later time is refused until then, by the coordinator and
/// by every signer, and signs once the clocks reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_whitelisted_from_later_signs_once_the_clocks_reach_it() {
    let m = Memory::start(3, 2, PARTNER_ACTIVE_MS - HOUR_MS).await;
    m.refused(
        "w-1",
        PARTNER,
        "1000000000000000000",
        "policy-whitelist-not-yet-active",
    )
    .await;
    m.advance(HOUR_MS - 1);
    m.refused(
        "w-2",
        PARTNER,
        "1000000000000000000",
        "policy-whitelist-not-yet-active",
    )
    .await;
    m.advance(1);
    m.signs("w-3", PARTNER, "1000000000000000000").await;
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
    // Set right, it is chosen again: with one signer left out of every quorum at random, the
    // other two can not make all of 12 withdrawals alone.
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
    assert!(signed_by_it, "signer-1 took part in none of 12 withdrawals");
    let refused = m.refusals(0, "intent-not-yet-valid");
    assert_eq!(
        refused, asked,
        "signer-1 refused again after its clock was set right"
    );
    m.stop().await;
}

/// The nonce lifetime runs on each signer's monotonic clock: a commitment past it is unusable
/// (`nonce-unknown`), and a withdrawal whose pre-generated commitments all expired is still
/// signed, with fresh ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_pregenerated_commitments_fall_back_to_fresh_ones() {
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
    // The signers' nonce lifetime is 60 s.
    m.advance(61_000);
    assert_eq!(
        (0..3).map(|i| m.refusals(i, "nonce-unknown")).sum::<u64>(),
        0
    );
    m.signs("n-2", COLD_WALLET, "100000000000000000").await;
    // Each signer asked with a pre-generated commitment refused it once as unknown (the
    // first quorum's two at least; a third if the next quorum took it from its pool), and
    // was then asked with a fresh one: never twice.
    let refused: Vec<u64> = (0..3).map(|i| m.refusals(i, "nonce-unknown")).collect();
    assert!(
        refused.iter().sum::<u64>() >= 2 && refused.iter().all(|n| *n <= 1),
        "nonce-unknown refusals per signer: {refused:?}"
    );
    m.stop().await;
}
