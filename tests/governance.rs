//! Governance end to end through `quorate admin`: freeze by one admin, unfreeze only with the
//! quorum (m − 1 approvals and one admin approving twice are not a quorum), a loosening change
//! waits out its time-lock and a veto cancels it, and a large withdrawal waits for admin
//! approvals that the signers check themselves.

use serde_json::Value;

use crate::harness::{quorate, Cluster};

const NOT_WHITELISTED: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";

impl Cluster {
    /// `quorate admin --json --key admin/admin-<n>.key <args>`.
    pub(crate) async fn admin(&self, n: u32, args: &[&str]) -> (i32, Value) {
        let key = self.path(&format!("admin/admin-{n}.key"));
        let mut all = vec![
            "admin",
            "--dir",
            self.dir_str(),
            "--coordinator",
            &self.addr,
            "--json",
            // What is signed is printed on stderr; the test reads the answers.
            "--yes",
            "--key",
            key.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let (code, out, err) = quorate(&all).await;
        let v = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("admin printed no JSON ({e}): {out}{err}"));
        (code, v)
    }

    async fn policy(&self) -> Value {
        self.admin(1, &["show"]).await.1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_unfreeze_veto_and_approvals() {
    let c = Cluster::start(3, 2).await;
    let p = c.policy().await;
    assert_eq!(p["version"], 1, "{p}");
    assert_eq!(p["frozen"], false);
    for s in p["signers"].as_array().unwrap() {
        assert_eq!(
            s["version"], 1,
            "every signer holds the genesis policy: {p}"
        );
    }

    // Any single admin freezes, at once, on every signer.
    let (code, v) = c.admin(2, &["freeze"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["required"].as_u64()),
        (Some("applied"), Some(1)),
        "{v}"
    );
    let p = c.policy().await;
    assert_eq!(
        (p["version"].as_u64(), p["frozen"].as_bool()),
        (Some(2), Some(true)),
        "{p}"
    );
    for s in p["signers"].as_array().unwrap() {
        assert_eq!(
            (s["version"].as_u64(), s["frozen"].as_bool()),
            (Some(2), Some(true)),
            "{p}"
        );
    }
    let (code, v) = c.submit_eth("wd-g-1", "1000").await;
    assert_ne!(code, 0);
    assert_eq!(v["rule"], "policy-frozen", "{v}");
    // The freeze is evidence on the coordinator: proposed (the diff says freeze) and applied.
    let log = c.coordinator_audit().await;
    assert!(
        log.iter().any(|r| r.event.kind == "policy-proposed"
            && r.event.field("changes") == Some("tightens: freeze")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|r| r.event.kind == "policy-applied" && r.event.field("version") == Some("2")),
        "{log:?}"
    );
    // Over gRPC: a temporary refusal, UNAVAILABLE, with the rule in the trailer.
    let mut client =
        quorate_wire::withdrawal::withdrawal_service_client::WithdrawalServiceClient::new(
            c.channel("backend").await,
        );
    let (_, req) = c.eth_request("wd-g-1b", "1000", 600_000, None);
    let err = client.submit(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert_eq!(
        err.metadata().get(quorate_wire::RULE_METADATA_KEY).unwrap(),
        "policy-frozen"
    );

    // Unfreezing needs the quorum of two: the proposer's approval, then the same admin again,
    // are one approval.
    let (code, v) = c.admin(1, &["unfreeze"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["approvals"].as_u64()),
        (Some("collecting"), Some(1)),
        "{v}"
    );
    let hash = v["hash"].as_str().unwrap().to_string();
    let (_, v) = c.admin(1, &["approve", &hash]).await;
    assert_eq!(
        (v["state"].as_str(), v["approvals"].as_u64()),
        (Some("collecting"), Some(1)),
        "{v}"
    );
    let (code, v) = c.submit_eth("wd-g-2", "1000").await;
    assert_eq!(
        (code != 0, v["rule"].as_str()),
        (true, Some("policy-frozen")),
        "{v}"
    );
    let (_, v) = c.admin(3, &["approve", &hash]).await;
    assert_eq!(
        (v["state"].as_str(), v["approvals"].as_u64()),
        (Some("applied"), Some(2)),
        "{v}"
    );
    let (code, v) = c.submit_eth("wd-g-3", "1000").await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");

    // A loosening change (a new destination) waits out the 10-minute time-lock even with the
    // quorum, and a single admin's veto cancels it everywhere.
    let toml = c.policy_toml().await;
    let edited = format!(
        "{toml}\n[[whitelist]]\nchain = \"ethereum\"\naddress = \"{NOT_WHITELISTED}\"\nlabel = \"new partner\"\n"
    );
    let file = c.path("proposal.toml");
    std::fs::write(&file, edited).unwrap();
    let (code, v) = c.admin(1, &["propose", file.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{v}");
    let hash = v["hash"].as_str().unwrap().to_string();
    assert!(
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ch| ch["effect"] == "loosens"),
        "the diff names the loosening: {v}"
    );
    let (_, v) = c.admin(2, &["approve", &hash]).await;
    assert_eq!(v["state"], "timelocked", "{v}");
    let p = c.policy().await;
    for s in p["signers"].as_array().unwrap() {
        assert_eq!(s["pending_version"], 4, "{p}");
    }
    let (code, v) = c
        .submit(&[
            "--id",
            "wd-g-4",
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
    assert_eq!(
        (code != 0, v["rule"].as_str()),
        (true, Some("policy-whitelist-destination")),
        "{v}"
    );
    let (code, v) = c.admin(3, &["veto", &hash]).await;
    assert_eq!((code, v["state"].as_str()), (0, Some("vetoed")), "{v}");
    let p = c.policy().await;
    for s in p["signers"].as_array().unwrap() {
        assert_eq!(
            s["pending_version"], 0,
            "the veto reached every signer: {p}"
        );
    }
    // The vetoed proposal cannot be approved into force.
    let (code, v) = c.admin(1, &["approve", &hash]).await;
    assert_ne!(code, 0, "{v}");

    // Above the approval threshold (1 BTC), a withdrawal waits for two admins.
    let (code, v) = c.submit_btc("wd-g-5", "150000000").await;
    assert_eq!(
        (code, v["status"].as_str()),
        (3, Some("pending_approval")),
        "{v}"
    );
    let (_, v) = c.admin(1, &["pending"]).await;
    assert_eq!(v["withdrawals"][0]["id"], "wd-g-5", "{v}");
    let (_, v) = c.admin(1, &["approve-withdrawal", "wd-g-5"]).await;
    assert_eq!(
        (v["status"].as_str(), v["approvals"].as_u64()),
        (Some("pending_approval"), Some(1)),
        "{v}"
    );
    let (_, v) = c.admin(1, &["approve-withdrawal", "wd-g-5"]).await;
    assert_eq!(v["approvals"], 1, "one admin twice is one approval: {v}");
    let (_, v) = c.admin(2, &["approve-withdrawal", "wd-g-5"]).await;
    assert_eq!(
        (v["status"].as_str(), v["approvals"].as_u64()),
        (Some("signing"), Some(2)),
        "{v}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (code, out, _) = quorate(&[
            "get",
            "--dir",
            c.dir_str(),
            "--coordinator",
            &c.addr,
            "wd-g-5",
        ])
        .await;
        let v: Value = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
        if code == 0 && v["status"] == "signed" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never signed: {out}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A genesis policy with a time-lock and a destination that becomes active later.
fn timed_policy(active_from: &str, timelock: &str) -> String {
    format!(
        r#"admin_quorum = 2
admins = []
backend_keys = []
timelock = "{timelock}"

[[assets]]
chain = "ethereum"
asset = "ETH"
decimals = 18
max_per_withdrawal = "100"
approval_threshold = "10"
approvals_required = 2

[[whitelist]]
chain = "ethereum"
address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
label = "cold wallet"
active_from = "{active_from}"
"#
    )
}

/// The time-lock through the admin CLI on real processes and real clocks: an approved
/// loosening is reported `timelocked` with the time it applies, and then applies on the
/// coordinator and every signer without anyone touching it again. The exact boundaries (refused
/// one millisecond before, signed at the time; a destination active from a later time) are
/// tested without waiting on moved clocks in `in_memory.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loosening_change_applies_after_its_timelock_on_real_clocks() {
    use quorate_core::policy::form::format_rfc3339;
    let past = (crate::harness::now_ms() / 1000 - 60) * 1000;
    let c =
        Cluster::start_with_policy(3, 2, Some(&timed_policy(&format_rfc3339(past), "2s"))).await;
    let (code, v) = c.submit_eth("wd-t-1", "1000").await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");

    // A new destination is a loosening: it waits out the time-lock, then applies on the
    // coordinator and on every signer without anyone touching it again.
    let toml = c.policy_toml().await;
    let file = c.path("p.toml");
    std::fs::write(
        &file,
        format!("{toml}\n[[whitelist]]\nchain = \"ethereum\"\naddress = \"{NOT_WHITELISTED}\"\nlabel = \"partner\"\n"),
    )
    .unwrap();
    let before = crate::harness::now_ms();
    let (_, v) = c.admin(1, &["propose", file.to_str().unwrap()]).await;
    let hash = v["hash"].as_str().unwrap().to_string();
    let (_, v) = c.admin(2, &["approve", &hash]).await;
    // Every signer had the change before the approval was answered.
    let answered = crate::harness::now_ms();
    assert_eq!(v["state"], "timelocked", "{v}");
    let effective = v["effective_at_ms"].as_u64().unwrap();
    assert!(
        (before + 2_000..=answered + 2_000).contains(&effective),
        "effective at {effective}, approved between {before} and {answered}"
    );
    // Each signer counts the time-lock from when it saw the change, before `answered`.
    while crate::harness::now_ms() <= effective.max(answered + 2_000) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (code, v) = c
        .submit(&[
            "--id",
            "wd-t-2",
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
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");
    let p = c.policy().await;
    assert_eq!(p["version"], 2, "{p}");
    // Every signer, asked for a fresh signed receipt, has version 2 in force: the one left out
    // of the quorum too.
    let mut admin = quorate_wire::admin::admin_service_client::AdminServiceClient::new(
        c.channel("admin").await,
    );
    let receipts = admin
        .get_signer_receipts(quorate_wire::admin::GetSignerReceiptsRequest {
            challenge: vec![7; 32],
        })
        .await
        .expect("receipts")
        .into_inner();
    assert_eq!(receipts.signers.len(), 3, "{receipts:?}");
    for s in &receipts.signers {
        let r = s
            .receipt
            .as_ref()
            .unwrap_or_else(|| panic!("{}: {}", s.name, s.error));
        assert_eq!((r.node.as_str(), r.version), (s.name.as_str(), 2), "{r:?}");
    }
}
