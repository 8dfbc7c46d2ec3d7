//! A hostile coordinator against the link itself: nonces that outlive their link, a flood of
//! requests it never reads the answers to, junk that would buy a disk sync per message.

use super::*;

/// Nonces die with the link they were made over: pre-generated commitments a coordinator
/// lost (it restarted, or the link dropped) cannot pile up in a signer until they expire. The
/// same session ids are accepted again over the next link, which they would not be (`session
/// in use`) had the signer kept the first link's nonces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_link_forgets_the_nonces_made_over_the_last() {
    let mut c = Cluster::start(3, 2).await;
    let (mut signers, mut links) = take_over(&mut c, 3).await;
    let batch = || {
        Req::Presign(pb::PresignRequest {
            scheme: Default::default(),
            session_ids: vec![vec![0xa1; 16], vec![0xa2; 16]],
        })
    };
    let mut first = signers.remove(&1).unwrap();
    match first.call(batch()).await {
        Ans::Presign(p) => assert_eq!(p.commitments.len(), 2),
        other => panic!("presign refused: {other:?}"),
    }
    // Over the same link, the sessions are in use.
    match first.call(batch()).await {
        Ans::Refusal(r) => assert_eq!(r.rule, "nonce-unknown", "{r:?}"),
        other => panic!("sessions in use accepted again: {other:?}"),
    }
    // The link drops; the signer dials again.
    drop(first);
    let (ident, mut second) = next_link(&mut links).await;
    assert_eq!(ident, 1);
    match second.call(batch()).await {
        Ans::Presign(p) => assert_eq!(p.commitments.len(), 2),
        other => panic!("the last link's nonces were kept: {other:?}"),
    }
}

/// Resident memory of a process, from /proc (kB).
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A coordinator that sends thousands of requests and never reads an answer: the signer handles
/// a bounded number at a time (then stops reading the stream), so its memory stays flat; once
/// the coordinator reads, every request is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unread_requests_leaves_a_signer_flat_and_every_request_answered() {
    const FLOOD: u64 = 10_000;
    let mut c = Cluster::start(3, 2).await;
    let pid = c.signers["signer-1"].id().unwrap();
    let (mut signers, _links) = take_over(&mut c, 3).await;
    let mut s1 = signers.remove(&1).unwrap();
    // 100 withdrawals signed by signer 1 first (each a share-released record), so that every
    // audit page the flood asks for is about ten kilobytes.
    let key = c.backend_key();
    let mut s2 = signers.remove(&2).unwrap();
    for k in 0..100 {
        let (i, sig) = crate::harness::signed_intent(
            &key,
            &format!("wd-flood-{k}"),
            (
                "polygon",
                "POL",
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            ),
            "1",
        );
        let s = session();
        let c1 = s1.commit(s).await;
        let c2 = s2.commit(s).await;
        let pkg = SigningPackage::new(BTreeMap::from([(id(1), c1), (id(2), c2)]), &i.digest());
        let a = s1.sign(s, &i.encode(), &sig, &pkg).await;
        assert!(matches!(a, Ans::Sign(_)), "{a:?}");
    }
    let before = rss_kb(pid);
    let out = s1.out.clone();
    let base = s1.next;
    let flood = tokio::spawn(async move {
        for id in 1..=FLOOD {
            let req = pb::CoordinatorMessage {
                request_id: base + id,
                body: Some(Req::AuditExport(quorate_wire::audit::AuditExportRequest {
                    node: String::new(),
                    from_seq: 1,
                    limit: 50,
                    nonce: vec![7; 32],
                })),
            };
            if out.send(Ok(req)).await.is_err() {
                return id;
            }
        }
        FLOOD
    });
    // Give the flood time to arrive; the signer must not grow with it meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = rss_kb(pid);
    println!("signer-1 RSS: {before} kB before, {during} kB with {FLOOD} unread requests sent");
    // At most 128 in flight and 64 queued answers of about 10 KiB each; without the bound it
    // is every request of the flood at once (measured: hundreds of MiB).
    assert!(
        during < before + 64 * 1024,
        "memory grew from {before} kB to {during} kB"
    );
    // Now read: every request is answered, in full, and the signer is still healthy.
    let mut answered = std::collections::BTreeSet::new();
    while (answered.len() as u64) < FLOOD {
        let m = tokio::time::timeout(Duration::from_secs(60), s1.inbound.message())
            .await
            .expect("the signer keeps answering")
            .unwrap()
            .unwrap();
        assert!(matches!(m.body, Some(Ans::AuditPage(_))), "{:?}", m.body);
        answered.insert(m.request_id);
    }
    assert_eq!(flood.await.unwrap(), FLOOD);
    s1.next += FLOOD;
    match s1
        .call(Req::Commit(pb::CommitRequest {
            scheme: Default::default(),
            session_id: session().to_vec(),
        }))
        .await
    {
        Ans::Commit(_) => {}
        other => panic!("{other:?}"),
    }
}

/// 1,000 junk requests in a burst: each is refused, at most 32 of a kind a second are recorded
/// one by one (each a disk sync), and the rest are counted into one record; no refusal goes
/// uncounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_refusals_are_counted_without_a_record_and_a_sync_each() {
    const JUNK: u64 = 1_000;
    let mut c = Cluster::start(3, 2).await;
    let manifest = quorate_wire::manifest::Manifest::load(&c.path("manifest.toml")).unwrap();
    let key = manifest.signer(1).unwrap().identity_key;
    let (mut signers, _links) = take_over(&mut c, 3).await;
    let s1 = signers.get_mut(&1).unwrap();
    let before = s1.verified_audit(&key).await.len();
    for _ in 0..JUNK {
        s1.next += 1;
        s1.out
            .send(Ok(pb::CoordinatorMessage {
                request_id: s1.next,
                body: None,
            }))
            .await
            .unwrap();
    }
    for i in 0..JUNK {
        let m = tokio::time::timeout(Duration::from_secs(60), s1.inbound.message())
            .await
            .unwrap_or_else(|_| panic!("junk answer {i} of {JUNK} never came"))
            .unwrap()
            .unwrap();
        assert!(matches!(m.body, Some(Ans::Refusal(_))), "{:?}", m.body);
    }
    // The counted rest is written once its second is over.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = s1.verified_audit(&key).await;
        let junk: Vec<_> = log[before..]
            .iter()
            .filter(|r| r.event.kind == "refused" && r.event.field("request") == Some("unknown"))
            .collect();
        let one_by_one = junk
            .iter()
            .filter(|r| r.event.field("count").is_none())
            .count() as u64;
        let counted: u64 = junk
            .iter()
            .filter_map(|r| r.event.field("count"))
            .map(|n| n.parse::<u64>().unwrap())
            .sum();
        if one_by_one + counted == JUNK {
            println!("{JUNK} junk requests: {one_by_one} records one by one, {counted} counted in {} records", junk.len() as u64 - one_by_one);
            assert!(
                (junk.len() as u64) < JUNK / 4,
                "{} records for {JUNK} junk requests",
                junk.len()
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{one_by_one} recorded + {counted} counted of {JUNK}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
