//! Audit logs (S7) end to end: every node's log exports through the coordinator's admin
//! service, verifies offline against the manifest, continues across restarts, cross-checks
//! released signatures against the signers' share releases, and a log with one byte changed
//! is refused naming the record.

use serde_json::Value;

use crate::harness::{quorate, Cluster};

const NOT_WHITELISTED: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";

async fn export_all(c: &Cluster, to: &str) {
    let (code, out, err) = quorate(&[
        "audit",
        "--dir",
        c.dir_str(),
        "--coordinator",
        &c.addr,
        "export",
        "--all",
        to,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
}

async fn verify(c: &Cluster, files: &[String]) -> (i32, Value) {
    let mut args = vec!["audit", "--dir", c.dir_str(), "verify", "--json"];
    args.extend(files.iter().map(String::as_str));
    let (code, out, err) = quorate(&args).await;
    let v = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, v)
}

fn kinds(text: &str, kind: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nodes_log_verifies_and_a_changed_byte_is_named() {
    let mut c = Cluster::start(3, 2).await;
    for id in ["wd-a-1", "wd-a-2"] {
        let (code, v) = c.submit_eth(id, "1000").await;
        assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");
    }
    let (code, v) = c
        .submit(&[
            "--id",
            "wd-a-3",
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
    assert_ne!(code, 0, "{v}");
    // A restart: the chain goes on from where it was.
    c.kill_signer("signer-1").await;
    // Seen gone first, so the wait below is for the new process's link, not the dead one's.
    c.wait_connected(2).await;
    c.start_signer("signer-1");
    c.wait_connected(3).await;
    let (code, v) = c.submit_eth("wd-a-4", "1000").await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");

    let out = c.path("audit");
    export_all(&c, out.to_str().unwrap()).await;
    let mut files = vec![out.join("coordinator.jsonl")];
    files.extend(c.names.iter().map(|n| out.join(format!("{n}.jsonl"))));
    let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let (code, v) = verify(&c, &files).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["signatures_matched"], 3, "{v}");
    for log in v["logs"].as_array().unwrap() {
        if log["node"] != "coordinator" {
            assert_eq!(log["key_pinned"], true, "{v}");
        }
    }

    // What the coordinator recorded: the refusal with its rule, three signatures, the DKG.
    let coord = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        kinds(&coord, "refused")
            .iter()
            .any(|r| r["fields"]["withdrawal"] == "wd-a-3"
                && r["fields"]["rule"] == "policy-whitelist-destination"),
        "{coord}"
    );
    assert_eq!(kinds(&coord, "withdrawal-signed").len(), 3, "{coord}");
    assert_eq!(kinds(&coord, "dkg-finished").len(), 1, "{coord}");
    assert!(!kinds(&coord, "signer-dropped").is_empty(), "{coord}");
    // Signer 1 restarted once: two starts in one unbroken chain.
    let s1 = std::fs::read_to_string(&files[1]).unwrap();
    assert_eq!(kinds(&s1, "node-started").len(), 2, "{s1}");
    assert_eq!(kinds(&s1, "dkg-finished").len(), 1, "{s1}");

    // One byte of one share-release record changed (an amount): refused, naming the record.
    let (path, text) = files[1..]
        .iter()
        .map(|f| (f.clone(), std::fs::read_to_string(f).unwrap()))
        .find(|(_, t)| !kinds(t, "share-released").is_empty())
        .unwrap();
    let (n, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("\"share-released\""))
        .unwrap();
    let changed = line.replacen("\"amount\":\"1000\"", "\"amount\":\"9000\"", 1);
    assert_ne!(changed, line);
    let tampered = text.replacen(line, &changed, 1);
    std::fs::write(&path, tampered).unwrap();
    let (code, v) = verify(&c, std::slice::from_ref(&path)).await;
    assert_eq!(code, 1, "{v}");
    let seq = n + 1;
    let want = format!("line {seq}, record {seq}: ");
    assert!(
        v["error"].as_str().unwrap().starts_with(&want),
        "expected the error to name {want:?}: {v}"
    );

    // A signer's log relabelled with an unsigned coordinator head: refused against the
    // manifest, and so is a second coordinator log.
    let s2 = files[2].clone();
    let original = std::fs::read_to_string(&s2).unwrap();
    let head: Value = serde_json::from_str(original.lines().last().unwrap()).unwrap();
    let forged_head = serde_json::json!({"head": {
        "node": "signer-2", "role": "coordinator",
        "seq": head["head"]["seq"], "hash": head["head"]["hash"], "threshold": 1,
    }});
    let mut forged: Vec<&str> = original.lines().collect();
    let forged_line = forged_head.to_string();
    *forged.last_mut().unwrap() = &forged_line;
    std::fs::write(&s2, forged.join("\n")).unwrap();
    let (code, v) = verify(&c, std::slice::from_ref(&s2)).await;
    assert_eq!(code, 1, "{v}");
    std::fs::write(&s2, &original).unwrap();
    let (code, v) = verify(&c, &[files[0].clone(), files[0].clone()]).await;
    assert_eq!(code, 1, "{v}");

    // The record removed instead (with the original head): refused too.
    let removed: String = text
        .lines()
        .filter(|l| *l != line)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, removed).unwrap();
    let (code, v) = verify(&c, std::slice::from_ref(&path)).await;
    assert_eq!(code, 1, "{v}");
}

/// A coordinator that gathers t shares for a withdrawal and never records it (it keeps the
/// signature to itself) is caught by `audit verify`: the signers' logs show the releases, the
/// coordinator's log does not show the withdrawal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_catches_signatures_harvested_behind_the_coordinators_log() {
    use std::collections::BTreeMap;
    let mut c = Cluster::start(3, 2).await;
    let (code, v) = c.submit_eth("wd-honest", "1000").await;
    assert_eq!((code, v["status"].as_str()), (0, Some("signed")), "{v}");
    let mut book = crate::scoreboard::Book::attacks("redteam-audit-harvest");

    // The coordinator's host is taken over: it asks signers 1 and 2 for shares of a withdrawal
    // it never records, and aggregates nothing in public.
    let (mut signers, _links) = crate::hostile::take_over(&mut c, 3).await;
    let (intent, req) = c.eth_request("wd-harvest", "1000", 600_000, None);
    let s = crate::hostile::session();
    let mut commitments = BTreeMap::new();
    for n in [1u32, 2] {
        let cm = signers.get_mut(&n).unwrap().commit(s).await;
        commitments.insert(crate::hostile::id(n as u16), cm);
    }
    let pkg = frost_secp256k1::SigningPackage::new(commitments, &intent.digest());
    for n in [1u32, 2] {
        let a = signers
            .get_mut(&n)
            .unwrap()
            .sign(s, &intent.encode(), &req.backend_signature, &pkg)
            .await;
        assert!(
            matches!(a, quorate_wire::signer::signer_message::Body::Sign(_)),
            "{a:?}"
        );
    }
    // The real coordinator comes back (on a new port); the signers reconnect to it.
    drop(signers);
    for name in c.names.clone() {
        c.kill_signer(&name).await;
    }
    c.start_all().await;

    let dir = c.path("exported");
    export_all(&c, dir.to_str().unwrap()).await;
    let files: Vec<String> = ["coordinator", "signer-1", "signer-2", "signer-3"]
        .iter()
        .map(|n| dir.join(format!("{n}.jsonl")).to_str().unwrap().to_string())
        .collect();
    let mut args = vec![
        "audit",
        "--dir",
        c.dir_str(),
        "verify",
        "--clock-skew",
        "0s",
    ];
    args.extend(files.iter().map(String::as_str));
    let (code, out, err) = quorate(&args).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("wd-harvest") && out.contains("never shows it received"),
        "{out}{err}"
    );
    book.blocked_at_desk("shares harvested by a coordinator that never records the withdrawal");
    book.finish();
}
