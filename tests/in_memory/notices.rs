//! Ledger notices in the in-memory cluster: the replay after a reconnect, a signer of an
//! earlier release, and notices a linked signer missed.

use super::*;

/// How many withdrawals whose id starts with `prefix` `node` counted from ledger notices with
/// `debit` ("new" or "already"), by its own audit log, read page by page.
fn notices_counted(node: &Node, prefix: &str, debit: &str) -> usize {
    use quorate_core::audit::kind;
    let (mut from, mut count) = (1, 0);
    loop {
        let (records, _) = node.audit_page(from, 10_000, &[0; 16]).expect("audit page");
        let Some(last) = records.last() else {
            return count;
        };
        from = last.seq + 1;
        count += records
            .iter()
            .filter(|r| {
                r.event.kind == kind::LEDGER_NOTICE
                    && r.event.field("debit") == Some(debit)
                    && r.event
                        .field("withdrawal")
                        .is_some_and(|w| w.starts_with(prefix))
            })
            .count();
    }
}

/// A 2-of-3 in-memory cluster whose clocks read `days` before the partner desk's whitelisting,
/// with signer 3 unlinked (returned): nothing reaches it but what a test sends.
async fn signer_3_away(days: u64) -> (Memory, Arc<Node>) {
    let mut m = Memory::start(3, 2, PARTNER_ACTIVE_MS - days * 24 * HOUR_MS).await;
    let node = m.nodes[2].0.clone();
    m.links[2].take().expect("linked").cut().await;
    (m, node)
}

/// What the coordinator's metrics say became of the notices it sent signer 3: how many had
/// `outcome`, if the series is there.
fn notices_sent(coordinator: &Coordinator, outcome: &str) -> Option<f64> {
    let series =
        format!("quorate_ledger_notices_total{{signer=\"signer-3\",outcome=\"{outcome}\"}}");
    quorate_wire::metrics::sample(&coordinator.render_metrics(), &series)
}

/// Waits until every signing run has ended, its notices queued for the signers then linked:
/// a signer attached after that hears of those withdrawals from the replay alone, never
/// also from a live notice racing it.
async fn signing_runs_ended(m: &Memory, deadline: std::time::Instant) {
    let signing = || {
        let text = m.coordinator.render_metrics();
        quorate_wire::metrics::sample(&text, "quorate_withdrawals_signing").expect("series")
    };
    while signing() > 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "signing runs never ended"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A signer away while 300 withdrawals are signed counts each of them, once, when it comes
/// back: the coordinator replays the notices it missed in batches of at most 256 (two
/// requests here), and the signer verifies each batch's group signatures together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_back_from_away_counts_every_missed_withdrawal_once_in_batches() {
    const MISSED: usize = 300;
    let (mut m, away) = signer_3_away(60).await;
    // 20 an hour, as the development policy allows, 0.01 ETH each: 3 ETH in 15 hours, all
    // within the 24-hour window the coordinator replays.
    for hour in 0..MISSED / 20 {
        let m = &m;
        let signed = futures::future::join_all((0..20).map(|i| async move {
            let id = format!("away-{hour}-{i}");
            m.signs(&id, COLD_WALLET, "10000000000000000").await
        }))
        .await;
        assert!(signed.iter().all(|s| !s.contains(&3)), "signer 3 was away");
        m.advance(HOUR_MS + 60_000);
    }
    // What the signer has counted of them, by its own audit log.
    let counted = |debit| notices_counted(&away, "away-", debit);
    assert_eq!(counted("new"), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    signing_runs_ended(&m, deadline).await;
    let batches = |node: &Node| {
        node.render_metrics()
            .lines()
            .filter(|l| {
                l.starts_with("quorate_signer_requests_total")
                    && l.contains("request=\"ledger-notices\"")
                    && l.contains("outcome=\"ok\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    m.links[2] = Some(MemLink::attach(&m.coordinator, away.clone()));
    let sent =
        |outcome: &str| notices_sent(&m.coordinator, outcome).expect("notice outcome series");
    // The second batch's request is counted in the metrics once it has been answered.
    while counted("new") < MISSED || batches(&away) < 2 || sent("counted") < MISSED as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "signer 3 counted {} of {MISSED} missed withdrawals",
            counted("new")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(batches(&away), 2, "300 notices in batches of at most 256");
    assert_eq!(counted("already"), 0, "each counted once");
    assert_eq!(sent("counted"), MISSED as f64);
    for outcome in ["known", "refused", "undelivered", "dropped"] {
        assert_eq!(sent(outcome), 0.0, "{outcome}");
    }
    assert_eq!(m.all_refusals("ledger-notice-invalid"), 0);
    m.stop().await;
}

/// A signer of a release before ledger-notice batches refuses a batch as a request it does not
/// know; the coordinator then sends it the same notices one by one, and it counts each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_that_does_not_know_batches_gets_its_notices_one_by_one() {
    let (mut m, old) = signer_3_away(90).await;
    for i in 0..5 {
        m.signs(&format!("old-{i}"), COLD_WALLET, "10000000000000000")
            .await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    signing_runs_ended(&m, deadline).await;
    m.links[2] = Some(MemLink::attach_as(
        &m.coordinator,
        old.clone(),
        Quirk::BeforeBatches,
    ));
    // The coordinator tallies a notice once the signer's answer is back, after the signer
    // has counted the request in its metrics.
    let acked = || notices_sent(&m.coordinator, "counted").unwrap_or(0.0);
    while acked() < 5.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "acknowledged {}",
            acked()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(acked(), 5.0);
    assert_eq!(notices_counted(&old, "old-", "new"), 5);
    assert_eq!(notices_counted(&old, "old-", "already"), 0);
    let metrics = old.render_metrics();
    let requests = |request: &str, outcome: &str| {
        let series = format!(
            "quorate_signer_requests_total{{request=\"{request}\",outcome=\"{outcome}\",rule=\"{}\"}}",
            if outcome == "ok" { "" } else { "bad-request" }
        );
        quorate_wire::metrics::sample(&metrics, &series).unwrap_or(0.0)
    };
    assert_eq!(
        requests("unknown", "refused"),
        1.0,
        "one batch, refused: {metrics}"
    );
    assert_eq!(requests("ledger-notices", "ok"), 0.0, "{metrics}");
    assert_eq!(requests("ledger-notice", "ok"), 5.0, "{metrics}");
    m.stop().await;
}

/// A batch of notices a linked signer did not answer notice by notice marks it behind; the
/// coordinator's next tick replays the window to it, and it counts what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_a_linked_signer_missed_are_replayed_at_the_next_tick() {
    let (mut m, node) = signer_3_away(120).await;
    for i in 0..4 {
        m.signs(&format!("lost-{i}"), COLD_WALLET, "10000000000000000")
            .await;
    }
    let undelivered = || notices_sent(&m.coordinator, "undelivered").unwrap_or(0.0);
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    signing_runs_ended(&m, deadline).await;
    // Back, but the replay's one batch gets an answer of the wrong kind.
    m.links[2] = Some(MemLink::attach_as(
        &m.coordinator,
        node.clone(),
        Quirk::GarbleFirstBatch,
    ));
    while undelivered() < 4.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch was never sent"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let counted = || notices_counted(&node, "lost-", "new");
    assert_eq!(counted(), 0, "the garbled batch was not processed");
    // The next tick replays the window to it. Ticked until it has: the batch is tallied
    // undelivered just before the signer is marked behind, and a tick between the two has
    // nothing to replay. The coordinator's clock stands still, so once one has replayed, the
    // least time between replays keeps the others from replaying again.
    while counted() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "counted {}",
            counted()
        );
        m.coordinator.replay_behind();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    m.stop().await;
}

/// A batch of forged notices costs the signer one disk flush, not one per refusal: each
/// refused notice is recorded in its audit log, and the batch's records are flushed together
/// before the batch is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_forged_notices_is_recorded_with_one_flush() {
    const FORGED: usize = 64;
    let (m, node) = signer_3_away(150).await;
    let (_, req) = m.request("real", COLD_WALLET, "10000000000000000");
    let real = m.submit(req).await.expect("signed");
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    signing_runs_ended(&m, deadline).await;
    // A real group signature on intents the group never signed, each its own withdrawal.
    let notices = (0..FORGED)
        .map(|i| spb::LedgerNotice {
            intent: m
                .request(&format!("forged-{i}"), COLD_WALLET, "10000000000000000")
                .0
                .encode(),
            signature: real.signature.clone(),
            signed_at_ms: 0,
        })
        .collect();
    let flushes = || {
        quorate_wire::metrics::sample(&node.render_metrics(), "quorate_store_flushes_total")
            .expect("flush series")
    };
    let refused_records = || {
        let (records, _) = node.audit_page(1, 10_000, &[0; 16]).expect("audit page");
        records
            .iter()
            .filter(|r| {
                r.event.kind == quorate_core::audit::kind::REFUSED
                    && r.event.field("request") == Some("ledger-notice")
                    && r.event.field("rule") == Some("ledger-notice-invalid")
                    && r.event
                        .field("withdrawal")
                        .is_some_and(|w| w.starts_with("forged-"))
            })
            .count()
    };
    let before = flushes();
    let acks = answer(
        &node,
        LinkId(0),
        Some(spb::coordinator_message::Body::LedgerNotices(
            spb::LedgerNotices { notices },
        )),
    )
    .await;
    assert_eq!(
        crate::hostile::notice_results(acks),
        vec![Err("ledger-notice-invalid".to_string()); FORGED]
    );
    assert_eq!(refused_records(), FORGED, "each refusal recorded");
    assert_eq!(flushes() - before, 1.0, "one flush for the batch's records");
    m.stop().await;
}

/// One withdrawal twice in one batch, never counted before by this signer: the first notice
/// debits it, the second is acknowledged as known, and its audit log shows one debit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_twice_in_one_batch_is_debited_once() {
    let (m, node) = signer_3_away(250).await;
    let (intent, req) = m.request("twice", COLD_WALLET, "10000000000000000");
    let signed = m.submit(req).await.expect("signed");
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    signing_runs_ended(&m, deadline).await;
    let notice = || spb::LedgerNotice {
        intent: intent.encode(),
        signature: signed.signature.clone(),
        signed_at_ms: 0,
    };
    let acks = answer(
        &node,
        LinkId(0),
        Some(spb::coordinator_message::Body::LedgerNotices(
            spb::LedgerNotices {
                notices: vec![notice(), notice()],
            },
        )),
    )
    .await;
    assert_eq!(crate::hostile::notice_results(acks), [Ok(true), Ok(false)]);
    assert_eq!(notices_counted(&node, "twice", "new"), 1);
    assert_eq!(notices_counted(&node, "twice", "already"), 1);
    m.stop().await;
}
