//! Key lifecycle without moving the wallet (deploy/README.md): repair of a lost share, refresh
//! under load with key epochs, a signer added and another retired, and a backup of an older
//! epoch, through the real coordinator and signers over mutual TLS, with the group keys
//! unchanged.

use quorate_core::audit::kind;
use serde_json::Value;

use crate::harness::{hexf, quorate, rfc9591_verify, Cluster};

/// `quorate repair --json ARGS`: (exit code, JSON answer, stderr).
async fn repair(c: &Cluster, args: &[&str]) -> (i32, Value, String) {
    ceremony(c, "repair", args).await
}

/// `quorate refresh --json ARGS`: (exit code, JSON answer, stderr).
async fn refresh(c: &Cluster, args: &[&str]) -> (i32, Value, String) {
    ceremony(c, "refresh", args).await
}

async fn ceremony(c: &Cluster, verb: &str, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec![
        verb,
        "--dir",
        c.dir_str(),
        "--coordinator",
        &c.addr,
        "--json",
    ];
    all.extend_from_slice(args);
    let (code, out, err) = quorate(&all).await;
    let v = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    (code, v, err)
}

/// With `stop` down (of `connected` signers), a withdrawal is signed by exactly `quorum` under
/// `group_key`; then `stop` comes back.
async fn signs_without(
    c: &mut Cluster,
    stop: &str,
    quorum: &[u32],
    group_key: &[u8],
    connected: usize,
) {
    c.kill_signer(stop).await;
    c.wait_connected(connected - 1).await;
    let (code, w) = c.submit_eth(&format!("wd-without-{stop}"), "1").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!(quorum), "{w}");
    assert!(rfc9591_verify(
        group_key,
        &hexf(&w, "message"),
        &hexf(&w, "signature")
    ));
    c.start_signer(stop);
    c.wait_connected(connected).await;
}

fn kinds(log: &[quorate_core::audit::Record]) -> Vec<&str> {
    log.iter().map(|r| r.event.kind.as_str()).collect()
}

/// Wipe signer-3's data directory, repair it from signers 1 and 2, and it signs again for
/// both key groups under the same group keys; every earlier signature still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_whose_data_directory_is_lost_is_repaired_and_signs_again() {
    let mut c = Cluster::start(3, 2).await;
    let ed_key = c.dkg_ed25519().await;
    let before = c.status().await;
    let (code, earlier) = c.submit_eth("wd-before-loss", "1").await;
    assert_eq!(
        (code, earlier["status"].as_str()),
        (0, Some("signed")),
        "{earlier}"
    );

    // The disk is lost; the identity key, TLS key and KEK (kept apart from the data directory,
    // deploy/README.md) survive, so the manifest still names this signer.
    let cfg = quorate_signer::config::SignerConfig::load(&c.path("signer-3/signer.toml")).unwrap();
    c.kill_signer("signer-3").await;
    c.wait_connected(2).await;
    std::fs::remove_dir_all(&cfg.data_dir).unwrap();
    c.start_signer("signer-3");
    c.wait_connected(3).await;
    let three = |s: &quorate_wire::admin::ClusterStatus| {
        s.signers
            .iter()
            .find(|x| x.name == "signer-3")
            .map(|x| {
                (
                    x.group_public_key.clone(),
                    x.ed25519_group_public_key.clone(),
                )
            })
            .unwrap()
    };
    assert_eq!(
        three(&c.status().await),
        (vec![], vec![]),
        "no share after the loss"
    );

    // Helpers must hold the share: the keyless signer cannot help, nor repair itself.
    let (code, _, err) = repair(
        &c,
        &["--signer", "signer-3", "--helpers", "signer-1,signer-3"],
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("target or named twice"), "{err}");
    let (code, _, err) = repair(&c, &["--signer", "nobody"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("request-invalid"), "{err}");

    let (code, v, err) = repair(&c, &["--signer", "signer-3"]).await;
    assert_eq!(code, 0, "{v}{err}");
    assert_eq!(v["helpers"], serde_json::json!([1, 2]), "{v}");
    assert_eq!(v["target"], 3);
    assert_eq!(
        hex::decode(v["group_public_key"].as_str().unwrap()).unwrap(),
        before.group_public_key
    );
    assert_eq!(v["fingerprint"], before.group_key_fingerprint.as_str());
    // A second repair of a share it holds is refused, and changes nothing.
    let (code, _, err) = repair(&c, &["--signer", "signer-3"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("share-exists"), "{err}");

    let (code, v, err) = repair(&c, &["--signer", "signer-3", "--scheme", "ed25519"]).await;
    assert_eq!(code, 0, "{v}{err}");
    assert_eq!(v["group_public_key"], hex::encode(&ed_key));
    assert_eq!(three(&c.status().await), three(&before), "both shares back");

    // Signer-1 stopped: every quorum now needs the repaired signer-3.
    c.kill_signer("signer-1").await;
    c.wait_connected(2).await;
    let (code, w) = c.submit_eth("wd-after-repair", "1").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!([2, 3]), "{w}");
    assert!(rfc9591_verify(
        &before.group_public_key,
        &hexf(&w, "message"),
        &hexf(&w, "signature")
    ));
    assert!(
        rfc9591_verify(
            &before.group_public_key,
            &hexf(&earlier, "message"),
            &hexf(&earlier, "signature")
        ),
        "a signature made before the loss still verifies"
    );
    let (code, w) = c.submit_sol("1000000").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!([2, 3]), "{w}");

    // Every step is in every node's audit log.
    let log3 = c.audit_of("signer-3", None).await;
    let repaired = log3
        .iter()
        .filter(|r| r.event.kind == kind::SHARE_REPAIRED)
        .count();
    assert_eq!(repaired, 2, "{:?}", kinds(&log3));
    let log2 = c.audit_of("signer-2", None).await;
    assert_eq!(
        log2.iter()
            .filter(|r| r.event.kind == kind::REPAIR_HELPED)
            .count(),
        2,
        "{:?}",
        kinds(&log2)
    );
    let coord = c.coordinator_audit().await;
    assert_eq!(
        coord
            .iter()
            .filter(|r| r.event.kind == kind::SHARE_REPAIRED)
            .count(),
        2
    );
}

/// Refresh under load: withdrawals keep arriving while the secp256k1 shares are refreshed
/// twice (16 of them, and 3 after: the devnet policy allows 20 ETH withdrawals an hour). Each is signed exactly once (a submission the switch made wait is resent
/// byte-identical under its id), every signature verifies under the unchanged group key, and
/// no signer debits a withdrawal twice. Each signer's audit log records both refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_refreshed_under_load_keep_the_group_key_and_lose_no_withdrawal() {
    use quorate_wire::withdrawal as pb;
    let mut c = Cluster::start(3, 2).await;
    let before = c.status().await;
    let requests: Vec<(String, pb::SubmitRequest)> = (0..16)
        .map(|n| {
            let id = format!("wd-load-{n}");
            let (_, req) = c.eth_request(&id, "1", 600_000, None);
            (id, req)
        })
        .collect();
    let channel = c.channel("backend").await;
    let load = tokio::spawn(async move {
        let mut client = pb::withdrawal_service_client::WithdrawalServiceClient::new(channel);
        let mut signed = Vec::new();
        let mut retries = 0u32;
        for (id, req) in requests {
            // A retryable refusal (the switch between epochs) is resent as is; a permanent one
            // would be a lost withdrawal and fails the test.
            let mut tries = 0;
            loop {
                tries += 1;
                match client.submit(req.clone()).await {
                    Ok(w) => {
                        let w = w.into_inner();
                        assert_eq!(w.status, pb::Status::Signed as i32, "{id}: {w:?}");
                        signed.push((id, w));
                        break;
                    }
                    Err(s) if s.code() == tonic::Code::Unavailable && tries < 50 => {
                        retries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    Err(s) => panic!("{id} lost: {s:?}"),
                }
            }
        }
        (signed, retries)
    });
    for expected in [1, 2] {
        let (code, v, err) = refresh(&c, &[]).await;
        assert_eq!(code, 0, "{v}{err}");
        assert_eq!(v["epoch"], expected, "{v}");
        assert_eq!(v["participants"], serde_json::json!([1, 2, 3]));
        assert_eq!(v["fingerprint"], before.group_key_fingerprint.as_str());
    }
    let (signed, retries) = load.await.unwrap();
    eprintln!("refresh under load: 16 withdrawals signed, {retries} retried submissions");
    assert_eq!(signed.len(), 16);
    for (id, w) in &signed {
        assert!(
            rfc9591_verify(&before.group_public_key, &w.message, &w.signature),
            "{id}"
        );
    }
    // After the refreshes: every pair of signers signs, at epoch 2, under the same key.
    for (stop, pair) in [
        ("signer-1", [2, 3]),
        ("signer-2", [1, 3]),
        ("signer-3", [1, 2]),
    ] {
        signs_without(&mut c, stop, &pair, &before.group_public_key, 3).await;
    }
    // No signer debited any withdrawal twice, and each recorded both refreshes.
    for name in ["signer-1", "signer-2", "signer-3"] {
        let log = c.audit_of(name, None).await;
        let mut debited = std::collections::BTreeMap::<String, usize>::new();
        for r in &log {
            let f = |k: &str| r.event.fields.get(k).cloned();
            if (r.event.kind == kind::SHARE_RELEASED || r.event.kind == kind::LEDGER_NOTICE)
                && f("debit").as_deref() == Some("new")
            {
                *debited
                    .entry(f("withdrawal").unwrap_or_default())
                    .or_default() += 1;
            }
        }
        assert!(debited.values().all(|n| *n == 1), "{name}: {debited:?}");
        let refreshed: Vec<String> = log
            .iter()
            .filter(|r| r.event.kind == kind::KEY_REFRESHED)
            .filter_map(|r| r.event.fields.get("epoch").cloned())
            .collect();
        assert_eq!(refreshed, ["1", "2"], "{name}: {:?}", kinds(&log));
    }
    let coord = c.coordinator_audit().await;
    assert_eq!(
        coord
            .iter()
            .filter(|r| r.event.kind == kind::KEY_REFRESHED)
            .count(),
        2
    );
    // The Ed25519 (Solana) group refreshes the same way, at its own epoch, and still signs.
    let ed_key = c.dkg_ed25519().await;
    let (code, v, err) = refresh(&c, &["--scheme", "ed25519"]).await;
    assert_eq!(code, 0, "{v}{err}");
    assert_eq!(
        (&v["scheme"], &v["epoch"]),
        (&serde_json::json!("ed25519"), &serde_json::json!(1)),
        "{v}"
    );
    assert_eq!(v["group_public_key"], hex::encode(&ed_key));
    let (code, w) = c.submit_sol("1000000").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(
        hex::decode(w["group_public_key"].as_str().unwrap()).unwrap(),
        ed_key
    );
}

/// Replacing an operator without moving the wallet: signer-5 joins a 3-of-4 cluster (its own
/// keys made on its host, a new manifest entry, its share enrolled from t helpers, the group
/// key unchanged), then the admins retire signer-2 and a refresh renews the shares without it:
/// any 3 of {1, 3, 4, 5} sign, and signer-2's old share no longer helps make a signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_joins_and_another_is_retired_without_changing_the_wallet() {
    use quorate_wire::manifest::{Manifest, ManifestDoc, SignerDoc};
    let mut c = Cluster::start(4, 3).await;
    let before = c.status().await;

    // The new operator's host: keys made there, the CSR signed by the cluster's CA.
    let dir5 = c.path("signer-5");
    std::fs::create_dir_all(&dir5).unwrap();
    let cfg3 = std::fs::read_to_string(c.path("signer-3/signer.toml")).unwrap();
    let cfg5 = dir5.join("signer.toml");
    std::fs::write(&cfg5, cfg3.replace("signer-3", "signer-5")).unwrap();
    let (code, out, err) = quorate(&["signer", "init", "--config", cfg5.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let identity = out
        .lines()
        .find_map(|l| l.strip_prefix("identity_key = "))
        .unwrap_or_else(|| panic!("{out}"))
        .trim_matches('"')
        .to_string();
    let (code, out, err) = quorate(&[
        "sign-csr",
        "--dir",
        c.dir_str(),
        "--csr",
        dir5.join("cert.csr").to_str().unwrap(),
        "--name",
        "signer-5",
        "--role",
        "signer",
        "--out",
        dir5.join("cert.pem").to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    // Every node pins the new manifest (each operator installs it), then restarts.
    let mpath = c.path("manifest.toml");
    let mut doc: ManifestDoc = toml::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    doc.signers.push(SignerDoc {
        name: "signer-5".into(),
        identifier: 5,
        identity_key: identity,
        certificate: std::fs::read_to_string(dir5.join("cert.pem")).unwrap(),
    });
    Manifest::from_doc(&doc).expect("3-of-5 is a valid manifest");
    std::fs::write(&mpath, toml::to_string(&doc).unwrap()).unwrap();
    for n in 1..=4 {
        c.kill_signer(&format!("signer-{n}")).await;
    }
    c.kill_coordinator().await;
    c.start_coordinator(None).await;
    for n in 1..=5 {
        c.start_signer(&format!("signer-{n}"));
    }
    c.wait_connected(5).await;

    // Enrolment: a repair whose target holds no share; every holder adds it.
    let (code, v, err) = repair(&c, &["--signer", "signer-5"]).await;
    assert_eq!(code, 0, "{v}{err}");
    assert_eq!(v["target"], 5, "{v}");
    assert_eq!(v["fingerprint"], before.group_key_fingerprint.as_str());
    let joined = c.status().await;
    assert_eq!(joined.group_public_key, before.group_public_key);
    // Signer-5 signs with two of the old ones.
    c.kill_signer("signer-1").await;
    c.kill_signer("signer-2").await;
    c.wait_connected(3).await;
    let (code, w) = c.submit_eth("wd-with-5", "1").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!([3, 4, 5]), "{w}");
    assert!(rfc9591_verify(
        &before.group_public_key,
        &hexf(&w, "message"),
        &hexf(&w, "signature")
    ));
    c.start_signer("signer-1");
    c.start_signer("signer-2");
    c.wait_connected(5).await;

    // The admins retire signer-2 (a tightening: the quorum, no time-lock).
    let toml_text = c.policy_toml().await;
    let file = c.path("retire.toml");
    std::fs::write(&file, format!("retired_signers = [2]\n{toml_text}")).unwrap();
    let (code, v) = c.admin(1, &["propose", file.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{v}");
    assert!(
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ch| ch["what"] == "signer 2: retired" && ch["effect"] == "tightens"),
        "the diff names the retirement: {v}"
    );
    let hash = v["hash"].as_str().unwrap().to_string();
    let (_, v) = c.admin(3, &["approve", &hash]).await;
    assert_eq!(v["state"], "applied", "{v}");
    let version = v["version"].as_u64().unwrap();
    // Every signer has it in force before the refresh (each checks the participants itself).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, p) = c.admin(1, &["show"]).await;
        if p["signers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["version"].as_u64() == Some(version))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{p}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (code, v, err) = refresh(&c, &[]).await;
    assert_eq!(code, 0, "{v}{err}");
    assert_eq!(v["participants"], serde_json::json!([1, 3, 4, 5]), "{v}");
    assert_eq!(v["epoch"], 1);
    assert_eq!(v["fingerprint"], before.group_key_fingerprint.as_str());
    // Status: signer-2 retired (and of the old epoch), the others at epoch 1.
    let (code, out, err) = quorate(&[
        "status",
        "--dir",
        c.dir_str(),
        "--coordinator",
        &c.addr,
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let st: Value = serde_json::from_str(out.trim()).unwrap();
    for s in st["signers"].as_array().unwrap() {
        let two = s["name"] == "signer-2";
        assert_eq!(s["retired"], two, "{s}");
        assert_eq!(s["key_epoch"], if two { 0 } else { 1 }, "{s}");
        assert_eq!(s["can_sign"], !two, "{s}");
    }

    // A retired signer never gets a share of the key back, not even through a repair.
    let (code, _, err) = repair(&c, &["--signer", "signer-2"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("signer-retired"), "{err}");

    // Any 3 of {1, 3, 4, 5} sign; signer-2, still connected, is never asked.
    for (stop, trio) in [("signer-1", [3, 4, 5]), ("signer-5", [1, 3, 4])] {
        signs_without(&mut c, stop, &trio, &before.group_public_key, 5).await;
    }
    // With only signer-2 beside two holders, nothing is signed: its share is of the old epoch
    // and the policy retired it.
    c.kill_signer("signer-4").await;
    c.kill_signer("signer-5").await;
    c.wait_connected(3).await;
    let (code, w) = c.submit_eth("wd-with-2", "1").await;
    assert_ne!(code, 0, "{w}");
    assert_ne!(w["status"].as_str(), Some("signed"), "{w}");
    assert_eq!(w["rule"], "not-enough-signers", "{w}");
    c.start_signer("signer-4");
    c.start_signer("signer-5");
    c.wait_connected(5).await;
    let log2 = c.audit_of("signer-2", None).await;
    assert!(
        !log2.iter().any(|r| r.event.kind == kind::KEY_REFRESHED),
        "the retired signer took no part in the refresh"
    );
    let log5 = c.audit_of("signer-5", None).await;
    assert!(log5.iter().any(|r| r.event.kind == kind::SHARE_REPAIRED));
    assert!(log5.iter().any(|r| r.event.kind == kind::KEY_REFRESHED));
    let log1 = c.audit_of("signer-1", None).await;
    assert!(log1.iter().any(|r| r.event.kind == kind::HOLDER_ADDED));
}

/// A backup carries its share's key epoch. After a refresh, a signer restored from an older
/// backup holds a share that no longer signs (status says so, the cluster does not count it);
/// a repair replaces it with a share of the current epoch, and it signs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_an_older_key_epoch_does_not_sign_until_repaired() {
    let mut c = Cluster::start(3, 2).await;
    let before = c.status().await;
    let config = c.path("signer-3/signer.toml");
    let cfg = quorate_signer::config::SignerConfig::load(&config).unwrap();
    let pass = c.path("passphrase.txt");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let backup = c.path("signer-3-epoch-0.backup");
    let signer_cmd = |verb: &str, flag: &str, file: &std::path::Path| {
        vec![
            "signer".to_string(),
            verb.into(),
            "--config".into(),
            config.to_str().unwrap().into(),
            flag.into(),
            file.to_str().unwrap().into(),
            "--passphrase-file".into(),
            pass.to_str().unwrap().into(),
        ]
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        quorate(&args).await
    };
    c.kill_signer("signer-3").await;
    let (code, out, err) = run(signer_cmd("backup", "--out", &backup)).await;
    assert_eq!(code, 0, "{out}{err}");
    c.start_signer("signer-3");
    c.wait_connected(3).await;
    let (code, v, err) = refresh(&c, &[]).await;
    assert_eq!((code, &v["epoch"]), (0, &serde_json::json!(1)), "{v}{err}");

    // The disk is lost; the operator restores the backup made before the refresh.
    c.kill_signer("signer-3").await;
    c.wait_connected(2).await;
    std::fs::remove_dir_all(&cfg.data_dir).unwrap();
    let (code, out, err) = run(signer_cmd("restore", "--from", &backup)).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("key epoch 0"), "{out}");
    c.start_signer("signer-3");
    c.wait_connected(3).await;
    let (code, out, _) = quorate(&[
        "status",
        "--dir",
        c.dir_str(),
        "--coordinator",
        &c.addr,
        "--json",
    ])
    .await;
    assert_eq!(code, 0);
    let st: Value = serde_json::from_str(out.trim()).unwrap();
    let three = st["signers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "signer-3")
        .unwrap()
        .clone();
    assert_eq!(
        (&three["key_epoch"], &three["can_sign"]),
        (&serde_json::json!(0), &serde_json::json!(false)),
        "{three}"
    );
    // With signer-1 stopped, the stale share does not make a quorum.
    c.kill_signer("signer-1").await;
    c.wait_connected(2).await;
    let (code, w) = c.submit_eth("wd-stale", "1").await;
    assert_ne!(code, 0, "{w}");
    assert_eq!(w["rule"], "not-enough-signers", "{w}");
    c.start_signer("signer-1");
    c.wait_connected(3).await;
    // A repair replaces it with a share of epoch 1 (a share of the current epoch never is).
    let (code, v, err) = repair(&c, &["--signer", "signer-3"]).await;
    assert_eq!(code, 0, "{v}{err}");
    assert_eq!(v["epoch"], 1, "{v}");
    let (code, _, err) = repair(&c, &["--signer", "signer-3"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("share-exists"), "{err}");
    c.kill_signer("signer-1").await;
    c.wait_connected(2).await;
    let (code, w) = c.submit_eth("wd-repaired", "1").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!([2, 3]), "{w}");
    assert!(rfc9591_verify(
        &before.group_public_key,
        &hexf(&w, "message"),
        &hexf(&w, "signature")
    ));
}
