//! Key lifecycle without moving the wallet (docs/operations.md): a signer whose data
//! directory is lost gets its share back from t helpers, through the real coordinator, over
//! mutual TLS, with the group key unchanged.

use quorate_core::audit::kind;
use serde_json::Value;

use crate::harness::{hexf, quorate, rfc9591_verify, Cluster};

async fn repair(c: &Cluster, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec![
        "repair",
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
    let (code, w) = c
        .submit(&[
            "--chain",
            "solana",
            "--asset",
            "SOL",
            "--to",
            "GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB",
            "--amount",
            "1000000",
        ])
        .await;
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
