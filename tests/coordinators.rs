//! Two coordinators serve one cluster with no shared database and nothing between them: every
//! signer holds a link to each, a coordinator learns from the signers what the other carried
//! (the group key of a DKG it did not run, policy versions it did not file), and a backend
//! that loses one coordinator resubmits the same signed intents to the other.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Stdio,
    time::Duration,
};

use quorate_core::audit::kind;
use quorate_wire::withdrawal as pb;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::harness::{exe, rfc9591_verify, Cluster};

/// Starts a second coordinator from a copy of the first one's directory (its own data
/// directory, the same manifest, CA, certificate and genesis policy) and returns it with its
/// address.
async fn start_second(c: &Cluster, dir: &str) -> (Child, String) {
    let b = c.path(dir);
    if !b.exists() {
        std::fs::create_dir_all(&b).unwrap();
        for f in ["coordinator.toml", "cert.pem", "key.pem"] {
            std::fs::copy(c.path("coordinator").join(f), b.join(f)).unwrap();
        }
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(c.path("logs").join(format!("{dir}.log")))
        .unwrap();
    let mut child = Command::new(exe())
        .args(["coordinator", "run", "--config"])
        .arg(b.join("coordinator.toml"))
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if let Some(a) = l.strip_prefix("listening on ") {
                return a.trim().to_string();
            }
        }
        panic!("{dir} exited: {}", c.read_log(dir));
    })
    .await
    .expect("second coordinator starts");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// Adds `addr` to every signer's `other_coordinators`.
fn attach_signers_to(c: &Cluster, addr: &str) {
    for name in &c.names {
        let path = c.path(name).join("signer.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let line = format!(
            "other_coordinators = [{{ address = \"{addr}\", server_name = \"localhost\" }}]\n"
        );
        let text = text.replacen("data_dir = ", &format!("{line}data_dir = "), 1);
        std::fs::write(&path, text).unwrap();
    }
}

/// Polls `check` on the coordinator at `addr` until it holds (two minutes at most).
async fn until<F, Fut>(c: &mut Cluster, addr: &str, what: &str, check: F)
where
    F: Fn(quorate_wire::admin::ClusterStatus) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let saved = std::mem::replace(&mut c.addr, addr.to_string());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if check(c.status().await).await {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.addr = saved;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_coordinators_serve_one_cluster_and_survive_losing_either() {
    let mut c = Cluster::create(3, 2).await;
    c.start_coordinator(None).await;
    let a = c.addr.clone();
    let (mut second, b) = start_second(&c, "coordinator-b").await;
    attach_signers_to(&c, &b);
    for name in c.names.clone() {
        c.start_signer(&name);
    }
    c.wait_connected(3).await;
    until(
        &mut c,
        &b,
        "every signer attaches to the second coordinator",
        |s| async move { s.signers.iter().filter(|x| x.connected).count() == 3 },
    )
    .await;

    // The DKG runs through A; B learns the group key from the signers and becomes ready.
    let group_key = c.dkg().await;
    let gk = group_key.clone();
    until(
        &mut c,
        &b,
        "the second coordinator learns the group key",
        move |s| {
            let gk = gk.clone();
            async move {
                s.group_public_key == gk
                    && s.signers
                        .iter()
                        .filter(|x| x.group_public_key == gk)
                        .count()
                        >= 2
            }
        },
    )
    .await;

    c.addr = b.clone();
    let learned = c.coordinator_audit().await;
    c.addr = a.clone();
    assert!(
        learned.iter().any(|r| r.event.kind == kind::LEARNED
            && r.event.field("what") == Some("key-package")
            && r.event.field("scheme") == Some("secp256k1")),
        "the second coordinator records where its key package came from"
    );

    // A refresh through A: B learns the new key epoch's package too (it then signs at epoch 1).
    let (code, out, err) = crate::harness::quorate(&[
        "refresh",
        "--dir",
        c.dir_str(),
        "--coordinator",
        &a,
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    until(
        &mut c,
        &b,
        "the second coordinator learns the refreshed key epoch",
        |s| async move {
            s.group_keys
                .iter()
                .any(|k| k.scheme == "secp256k1" && k.epoch == 1)
                && s.signers.iter().filter(|x| x.key_epoch == 1).count() == 3
        },
    )
    .await;

    // A loosening change filed through A waits out its time-lock on the signers; B learns it
    // as pending from them, and a veto filed through B cancels it everywhere, A included.
    let toml = c.policy_toml().await;
    let file = c.path("loosen.toml");
    std::fs::write(
        &file,
        format!("{toml}\n[[whitelist]]\nchain = \"ethereum\"\naddress = \"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359\"\nlabel = \"new partner\"\n"),
    )
    .unwrap();
    let (code, v) = c.admin(1, &["propose", file.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{v}");
    let hash = v["hash"].as_str().unwrap().to_string();
    let (_, v) = c.admin(2, &["approve", &hash]).await;
    assert_eq!(v["state"], "timelocked", "{v}");
    c.addr = b.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !c.coordinator_audit().await.iter().any(|r| {
        r.event.kind == kind::LEARNED
            && r.event.field("hash") == Some(hash.as_str())
            && r.event.field("state") == Some("pending")
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B learns the pending version"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, v) = c.admin(3, &["veto", &hash]).await;
    assert_eq!((code, v["state"].as_str()), (0, Some("vetoed")), "{v}");
    c.addr = a.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !c.coordinator_audit().await.iter().any(|r| {
        r.event.kind == kind::LEARNED
            && r.event.field("what") == Some("veto")
            && r.event.field("hash") == Some(hash.as_str())
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A learns the veto filed through B"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = c.admin(1, &["show"]).await.1;
    for s in p["signers"].as_array().unwrap() {
        assert_eq!(
            s["pending_version"], 0,
            "the veto reached every signer: {p}"
        );
    }
    // Vetoed at A too: it cannot be approved into force there.
    let (code, v) = c.admin(1, &["approve", &hash]).await;
    assert_ne!(code, 0, "{v}");

    // Under load through A, A is killed; the backend resubmits every withdrawal it has no
    // answer for, byte for byte, to B.
    let requests: Vec<(String, pb::SubmitRequest)> = (0..16)
        .map(|n| {
            // The development policy allows 20 ETH withdrawals an hour.
            let id = format!("wd-failover-{n}");
            let (_, req) = c.eth_request(&id, "1", 600_000, None);
            (id, req)
        })
        .collect();
    let to_a = c.channel("backend").await;
    let saved = std::mem::replace(&mut c.addr, b.clone());
    let to_b = c.channel("backend").await;
    c.addr = saved;
    let load = tokio::spawn(async move {
        let mut on_a = pb::withdrawal_service_client::WithdrawalServiceClient::new(to_a);
        let mut on_b = pb::withdrawal_service_client::WithdrawalServiceClient::new(to_b);
        let (mut signed, mut failed_over) = (Vec::new(), 0u32);
        for (id, req) in requests {
            let mut tries = 0;
            let mut use_b = false;
            loop {
                tries += 1;
                let client = if use_b { &mut on_b } else { &mut on_a };
                let mut r = tonic::Request::new(req.clone());
                r.set_timeout(Duration::from_secs(30));
                match client.submit(r).await {
                    Ok(w) => {
                        let w = w.into_inner();
                        assert_eq!(w.status, pb::Status::Signed as i32, "{id}: {w:?}");
                        signed.push((id, w));
                        break;
                    }
                    // Transport gone or not ready: the same request, to the other coordinator.
                    Err(s)
                        if matches!(
                            s.code(),
                            tonic::Code::Unavailable
                                | tonic::Code::Unknown
                                | tonic::Code::DeadlineExceeded
                                | tonic::Code::Cancelled
                        ) && tries < 60 =>
                    {
                        if !use_b {
                            failed_over += 1;
                        }
                        use_b = true;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(s) => panic!("{id} lost: {s:?}"),
                }
            }
        }
        (signed, failed_over)
    });
    // Kill A once a few withdrawals went through it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let n = std::fs::read_to_string(c.path("logs/coordinator.log"))
            .unwrap_or_default()
            .matches("withdrawal signed")
            .count();
        if n >= 4 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.kill_coordinator().await;
    let (signed, failed_over) = load.await.unwrap();
    eprintln!(
        "failover: 16 withdrawals signed, {failed_over} resubmitted to the second coordinator"
    );
    assert_eq!(signed.len(), 16);
    assert!(failed_over >= 1, "A was killed before the load ended");
    for (id, w) in &signed {
        assert!(rfc9591_verify(&group_key, &w.message, &w.signature), "{id}");
    }

    // The CLI fails over the same way: A (dead) first in client.toml, then B.
    let client = c.path("client.toml");
    let text = std::fs::read_to_string(&client).unwrap();
    let mut doc: toml::Table = toml::from_str(&text).unwrap();
    doc.insert("coordinator".into(), a.clone().into());
    std::fs::write(
        &client,
        format!(
            "{}\n[[other_coordinators]]\naddress = \"{b}\"\nserver_name = \"localhost\"\n",
            toml::to_string(&doc).unwrap()
        ),
    )
    .unwrap();
    let (code, out, err) = crate::harness::quorate(&[
        "submit",
        "--dir",
        c.dir_str(),
        "--json",
        "--id",
        "wd-cli-failover",
        "--chain",
        "ethereum",
        "--asset",
        "ETH",
        "--to",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "--amount",
        "1",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!("coordinator {a} unreachable")),
        "{err}"
    );
    let w: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(w["status"], "signed", "{w}");
    std::fs::write(&client, text).unwrap();

    // Governance through B reaches every signer: a freeze by one admin.
    c.addr = b.clone();
    let (code, v) = c.admin(2, &["freeze"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["state"], "applied", "{v}");

    // A comes back, learns the freeze from the signers (the admin desk verifies the chain
    // from genesis through A), and serves alone once B is gone.
    c.start_coordinator(None).await;
    let a2 = c.addr.clone();
    assert_ne!(a, a2);
    for name in c.names.clone() {
        // The signers' primary link named A's old port: point it at the new one.
        c.kill_signer(&name).await;
        c.start_signer(&name);
    }
    c.wait_connected(3).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let p = loop {
        let p = c.admin(1, &["show"]).await.1;
        if p["version"] == 2
            && p["signers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["version"] == 2)
        {
            break p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A learns the freeze carried by B: {p}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        (p["version"].as_u64(), p["frozen"].as_bool()),
        (Some(2), Some(true)),
        "{p}"
    );
    for s in p["signers"].as_array().unwrap() {
        assert_eq!(s["version"], 2, "every signer holds the freeze: {p}");
    }
    assert!(
        c.coordinator_audit()
            .await
            .iter()
            .any(|r| r.event.kind == kind::LEARNED
                && r.event.field("what") == Some("policy")
                && r.event.field("version") == Some("2")),
        "A records the version it learned"
    );
    second.kill().await.unwrap();
    let (code, w) = c.submit_eth("wd-after-b", "1").await;
    assert_ne!(code, 0, "{w}");
    assert!(w.to_string().contains("policy-frozen"), "{w}");

    // Across both coordinators: no signer debited a withdrawal twice or used a nonce twice.
    let (mut double_debits, mut reused) = (0, 0);
    for name in c.names.clone() {
        let log = c.audit_of(&name, None).await;
        let mut debits: BTreeMap<String, usize> = BTreeMap::new();
        let mut sessions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in &log {
            let f = |k: &str| r.event.fields.get(k).cloned().unwrap_or_default();
            let counts =
                r.event.kind == kind::SHARE_RELEASED || r.event.kind == kind::LEDGER_NOTICE;
            if counts && f("debit") == "new" {
                *debits.entry(f("withdrawal")).or_default() += 1;
            }
            if r.event.kind == kind::SHARE_RELEASED {
                sessions
                    .entry(f("commitment"))
                    .or_default()
                    .insert(f("session"));
            }
        }
        double_debits += debits.values().filter(|n| **n > 1).count();
        reused += sessions.values().filter(|s| s.len() > 1).count();
        for (id, _) in &signed {
            assert!(
                debits.get(id).is_some_and(|n| *n == 1),
                "{name} counted {id} once"
            );
        }
    }
    assert_eq!((double_debits, reused), (0, 0));
}
