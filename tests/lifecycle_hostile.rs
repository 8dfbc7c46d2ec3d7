//! Share repair under attack (core/src/repair.rs): the test takes a signer's place on the link
//! to the real coordinator, with that signer's own certificate, identity key and key share, and
//! cheats in one step of a repair of signer-3's lost share. The cheater must be named (in the
//! refusal the admin sees, in the coordinator's audit log and in the log of the signer that
//! caught it), nothing may be kept, and an honest repair afterwards must rebuild the share,
//! which then signs under the unchanged group key.

mod impostor;

use quorate_core::{
    audit::{kind, Record},
    identity::IdentityPublic,
    message::Scheme,
};
use quorate_signer::{
    node::{meta_key, META_GROUP_KEY, META_KEY_SHARE, META_PUBLIC_KEY_PACKAGE},
    store::{SignerStore, SledStore},
};
use quorate_wire::{admin::ClusterStatus, manifest::Manifest};

use self::impostor::{config, share_of, Cheat, Impostor};
use crate::{
    harness::{hexf, quorate, rfc9591_verify, Cluster},
    scoreboard::Book,
};

/// A (stopped) signer's store holds no secp256k1 share, public key package or group key.
fn holds_nothing(c: &Cluster, name: &str) {
    let store = SledStore::open(&config(c, name).data_dir).unwrap();
    for what in [META_KEY_SHARE, META_PUBLIC_KEY_PACKAGE, META_GROUP_KEY] {
        let kept = store.get_meta(&meta_key(Scheme::Secp256k1, what)).unwrap();
        assert!(
            kept.is_none(),
            "{name} kept a {what} from an aborted repair"
        );
    }
}

fn identity_key(c: &Cluster, name: &str) -> IdentityPublic {
    Manifest::load(&c.path("manifest.toml"))
        .unwrap()
        .signer_by_name(name)
        .unwrap()
        .identity_key
}

/// The group key a signer reported to the coordinator (empty: it holds no share).
fn key_of(s: &ClusterStatus, name: &str) -> Vec<u8> {
    s.signers
        .iter()
        .find(|x| x.name == name)
        .map(|x| x.group_public_key.clone())
        .unwrap_or_else(|| panic!("{name} is not in the status"))
}

/// `quorate repair --json` of signer-3 from signers 1 and 2; returns (exit code, JSON, stderr).
async fn repair_3(c: &Cluster) -> (i32, serde_json::Value, String) {
    let (code, out, err) = quorate(&[
        "repair",
        "--dir",
        c.dir_str(),
        "--coordinator",
        &c.addr,
        "--json",
        "--signer",
        "signer-3",
        "--helpers",
        "signer-1,signer-2",
    ])
    .await;
    let v = serde_json::from_str(out.trim()).unwrap_or(serde_json::Value::Null);
    (code, v, err)
}

/// `quorate repair` of signer-3 from signers 1 and 2 fails `repair-aborted`, naming `culprit`
/// alone, for `reason`, and says what was kept: nothing, or (when the target itself is the
/// culprit) nothing the group's public key package holds.
async fn repair_aborts_naming(c: &Cluster, culprit: &str, reason: &str) {
    let (code, v, err) = repair_3(c).await;
    assert_ne!(code, 0, "the repair went through: {v}");
    assert!(err.contains("repair refused: repair-aborted"), "{err}");
    assert!(err.contains(reason), "another failure than expected: {err}");
    let kept = if culprit == "3" {
        "whatever the target kept is not in the group's public key package"
    } else {
        "nothing was kept"
    };
    assert!(
        err.contains(&format!("(culprits: {culprit}); {kept}")),
        "{err}"
    );
}

/// Signer-3's data directory is lost and it restarts with none; signer-1 is stopped and the
/// test takes its place with its certificate, identity key and share.
async fn lose_3_and_impersonate_1(c: &mut Cluster, group_key: &[u8], cheat: Cheat) -> Impostor {
    let lost = config(c, "signer-3").data_dir;
    c.kill_signer("signer-1").await;
    c.kill_signer("signer-3").await;
    c.wait_connected(1).await;
    std::fs::remove_dir_all(lost).unwrap();
    c.start_signer("signer-3");
    let share = share_of(c, "signer-1");
    let one = Impostor::attach(c, "signer-1", Some(share), group_key.to_vec(), cheat).await;
    c.wait_connected(3).await;
    assert!(
        key_of(&c.status().await, "signer-3").is_empty(),
        "no share after the loss"
    );
    one
}

/// The coordinator's audit log after `attacks` repairs of signer-3, each aborted naming
/// `culprit` alone, and none recorded as done.
async fn coordinator_named(c: &Cluster, culprit: &str, attacks: usize) -> Vec<Record> {
    let log = c.coordinator_audit().await;
    let aborted: Vec<&Record> = log
        .iter()
        .filter(|r| r.event.kind == kind::REPAIR_ABORTED)
        .collect();
    assert_eq!(aborted.len(), attacks, "{aborted:?}");
    for r in aborted {
        assert_eq!(r.event.field("culprits"), Some(culprit), "{:?}", r.event);
        assert_eq!(r.event.field("target"), Some("3"), "{:?}", r.event);
    }
    assert!(
        !log.iter().any(|r| r.event.kind == kind::SHARE_REPAIRED),
        "an aborted repair was recorded as done"
    );
    log
}

/// Records in `node`'s verified log refusing a repair step and naming `culprit`.
async fn refusals_naming(c: &Cluster, node: &str, culprit: &str) -> (usize, Vec<Record>) {
    let log = c.audit_of(node, Some(&identity_key(c, node))).await;
    let n = log
        .iter()
        .filter(|r| {
            r.event.kind == kind::REFUSED
                && r.event.field("rule") == Some("repair-aborted")
                && r.event.field("culprits") == Some(culprit)
        })
        .count();
    (n, log)
}

fn count(log: &[Record], kind: &str) -> usize {
    log.iter().filter(|r| r.event.kind == kind).count()
}

/// With the impostor gone and signer-1 back: signer-3 (stopped meanwhile) kept nothing on
/// disk; the honest repair then rebuilds its share, and with signer-1 stopped it signs with
/// signer-2 under the unchanged group key.
async fn impostor_gone_honest_repair_signs(c: &mut Cluster, one: Impostor, group_key: &[u8]) {
    one.leave(c, 2).await;
    c.kill_signer("signer-3").await;
    c.wait_connected(1).await;
    holds_nothing(c, "signer-3");
    c.start_signer("signer-1");
    c.start_signer("signer-3");
    c.wait_connected(3).await;
    assert!(
        key_of(&c.status().await, "signer-3").is_empty(),
        "signer-3 came back with a share"
    );
    honest_repair_signs(c, group_key).await;
}

async fn honest_repair_signs(c: &mut Cluster, group_key: &[u8]) {
    let (code, v, err) = repair_3(c).await;
    assert_eq!(code, 0, "the honest repair failed: {v}{err}");
    assert_eq!(hexf(&v, "group_public_key"), group_key, "{v}");
    assert_eq!(key_of(&c.status().await, "signer-3"), group_key);
    let log3 = c
        .audit_of("signer-3", Some(&identity_key(c, "signer-3")))
        .await;
    assert_eq!(count(&log3, kind::SHARE_REPAIRED), 1);
    assert_eq!(count(&c.coordinator_audit().await, kind::SHARE_REPAIRED), 1);

    c.kill_signer("signer-1").await;
    c.wait_connected(2).await;
    let (code, w) = c.submit_eth("wd-after-honest-repair", "1").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!([2, 3]), "{w}");
    assert!(rfc9591_verify(
        group_key,
        &hexf(&w, "message"),
        &hexf(&w, "signature")
    ));
}

/// Helper 1 cheats on its deltas in round 1, two ways: a delta sealed to helper 2 that is not
/// the one its signed offer commits to, and an offer whose commitments do not add up to its
/// verifying share (it split a share it does not hold). Helper 2 names it each time and never
/// seals its own part to the target; signer-3 keeps nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_whose_deltas_break_its_commitments_is_named_and_nothing_is_kept() {
    let mut c = Cluster::start(3, 2).await;
    let mut book = Book::attacks("redteam-repair-delta");
    let group_key = c.status().await.group_public_key;
    let one = lose_3_and_impersonate_1(&mut c, &group_key, Cheat::WrongDelta).await;

    repair_aborts_naming(
        &c,
        "1",
        "helper 1 sent a delta that differs from its commitment",
    )
    .await;
    assert_eq!(one.told(), [Cheat::WrongDelta]);
    book.blocked_as(
        "helper seals another helper a delta that differs from its signed commitment",
        "signer-2",
        "repair-aborted",
        None,
        (kind::REFUSED, "culprits", "1"),
    );

    one.set(Cheat::ForeignShare);
    repair_aborts_naming(
        &c,
        "1",
        "the deltas helper 1 committed to do not add up to its share",
    )
    .await;
    assert_eq!(one.told(), [Cheat::WrongDelta, Cheat::ForeignShare]);
    book.blocked_as(
        "helper commits to deltas that do not add up to its verifying share",
        "signer-2",
        "repair-aborted",
        None,
        (kind::REFUSED, "culprits", "1"),
    );

    assert!(key_of(&c.status().await, "signer-3").is_empty());
    coordinator_named(&c, "1", 2).await;
    let (named, log2) = refusals_naming(&c, "signer-2", "1").await;
    assert_eq!(named, 2, "signer-2 named helper 1 in its own log");
    assert_eq!(
        count(&log2, kind::REPAIR_HELPED),
        0,
        "signer-2 sealed its part to the target despite a cheating helper"
    );
    let log3 = c
        .audit_of("signer-3", Some(&identity_key(&c, "signer-3")))
        .await;
    assert_eq!(count(&log3, kind::SHARE_REPAIRED), 0);
    book.audit("signer-2", &log2);

    impostor_gone_honest_repair_signs(&mut c, one, &group_key).await;
    book.finish();
}

/// Helper 1 follows round 1 honestly, then seals the target a σ that is not the sum of the
/// deltas committed to it. The target names it and keeps nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_sending_a_bad_sigma_is_named_by_the_target_and_nothing_is_kept() {
    let mut c = Cluster::start(3, 2).await;
    let mut book = Book::attacks("redteam-repair-sigma");
    let group_key = c.status().await.group_public_key;
    let one = lose_3_and_impersonate_1(&mut c, &group_key, Cheat::BadSigma).await;

    repair_aborts_naming(
        &c,
        "1",
        "helper 1 sent a σ that is not the sum of the deltas committed to it",
    )
    .await;
    assert_eq!(one.told(), [Cheat::BadSigma]);
    book.blocked_as(
        "helper seals the target a σ that is not the sum of the deltas committed to it",
        "signer-3",
        "repair-aborted",
        None,
        (kind::REFUSED, "culprits", "1"),
    );

    assert!(key_of(&c.status().await, "signer-3").is_empty());
    coordinator_named(&c, "1", 1).await;
    let (named, log3) = refusals_naming(&c, "signer-3", "1").await;
    assert_eq!(named, 1, "the target named helper 1 in its own log");
    assert_eq!(count(&log3, kind::SHARE_REPAIRED), 0);
    book.audit("signer-3", &log3);

    impostor_gone_honest_repair_signs(&mut c, one, &group_key).await;
    book.finish();
}

/// The target (signer-3, played by the test with its real identity key) rebuilds its share
/// from honest helpers and then lies about the result: an altered signature, then a genuinely
/// signed claim to another verifying share. The coordinator refuses both, naming 3; no one's
/// share or key changes, signers 1 and 2 still sign, and the real signer-3 is repaired after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_lies_about_its_result_is_named_and_nothing_changes() {
    let mut c = Cluster::start(3, 2).await;
    let mut book = Book::attacks("redteam-repair-target");
    let before = c.status().await;
    let group_key = before.group_public_key.clone();
    let lost = config(&c, "signer-3").data_dir;
    c.kill_signer("signer-3").await;
    c.wait_connected(2).await;
    std::fs::remove_dir_all(lost).unwrap();
    let three = Impostor::attach(&c, "signer-3", None, vec![], Cheat::AlteredResultSignature).await;
    c.wait_connected(3).await;

    repair_aborts_naming(&c, "3", "the target's answer is not signed by it").await;
    assert_eq!(three.told(), [Cheat::AlteredResultSignature]);
    book.blocked_as(
        "target returns its repair result with an altered signature",
        "coordinator",
        "repair-aborted",
        None,
        (kind::REPAIR_ABORTED, "culprits", "3"),
    );

    three.set(Cheat::OtherVerifyingShare);
    repair_aborts_naming(
        &c,
        "3",
        "the target's answer reports a share of another key",
    )
    .await;
    assert_eq!(
        three.told(),
        [Cheat::AlteredResultSignature, Cheat::OtherVerifyingShare]
    );
    book.blocked_as(
        "target signs a repair result naming another verifying share",
        "coordinator",
        "repair-aborted",
        None,
        (kind::REPAIR_ABORTED, "culprits", "3"),
    );

    // Nothing changed: the coordinator does not count signer-3 a holder, the others hold the
    // same key, and the group key is the same.
    let after = c.status().await;
    assert!(key_of(&after, "signer-3").is_empty());
    assert_eq!(after.group_public_key, group_key);
    for name in ["signer-1", "signer-2"] {
        assert_eq!(key_of(&after, name), key_of(&before, name), "{name}");
    }
    let log = coordinator_named(&c, "3", 2).await;
    book.audit("coordinator", &log);

    three.leave(&c, 2).await;
    let (code, w) = c.submit_eth("wd-after-lying-target", "1").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!([1, 2]), "{w}");
    assert!(rfc9591_verify(
        &group_key,
        &hexf(&w, "message"),
        &hexf(&w, "signature")
    ));

    c.start_signer("signer-3");
    c.wait_connected(3).await;
    honest_repair_signs(&mut c, &group_key).await;
    book.finish();
}
