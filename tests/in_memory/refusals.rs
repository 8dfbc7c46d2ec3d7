//! Refusals past the audit log's rate, counted and written once their second is over by the
//! signer's own clock.

use super::*;

/// The throttle's timer goes on until the count is written: here it first fires while the
/// signer's clock stands still (the second is not over), and the count is written once the
/// clock moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_refusals_are_written_once_the_signers_clock_moves_on() {
    const JUNK: usize = quorate_core::audit::REFUSALS_PER_SECOND as usize + 8;
    let mut m = Memory::start(3, 2, PARTNER_ACTIVE_MS - 200 * 24 * HOUR_MS).await;
    let (node, clock) = m.nodes[2].clone();
    // Unlinked, so its refusals are these alone.
    m.links[2].take().expect("linked").cut().await;
    let junk = node.clone();
    tokio::task::spawn_blocking(move || {
        for _ in 0..JUNK {
            junk.refuse_unknown();
        }
    })
    .await
    .expect("refusals");
    let records = |counted: bool| {
        let (records, _) = node.audit_page(1, 10_000, &[0; 16]).expect("audit page");
        records
            .iter()
            .filter(|r| {
                r.event.kind == quorate_core::audit::kind::REFUSED
                    && r.event.field("request") == Some("unknown")
                    && r.event.field("count").is_some() == counted
            })
            .map(|r| r.event.field("count").unwrap_or("1").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        records(false).len(),
        JUNK - 8,
        "the rate's worth, one by one"
    );
    // Past the second by the timer's clock, not by the signer's: nothing is over yet.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(records(true), Vec::<String>::new());
    clock.advance(1_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while records(true).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the counted refusals were never written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(records(true), ["8"]);
    m.stop().await;
}
