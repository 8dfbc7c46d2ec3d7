//! Performance plumbing, checked for working, never for speed: the metrics operators scrape
//! (over mutual TLS on the coordinator, as a rewritten file on each egress-only signer), and
//! `quorate bench` producing its report from real clusters. No assertion here depends on how
//! fast the machine is.

use std::time::Duration;

use quorate_wire::metrics::sample;
use serde_json::Value;

use crate::harness::{quorate, Cluster};

async fn scrape(c: &Cluster) -> String {
    let addr = c.metrics.clone().expect("the dev config turns metrics on");
    let (code, out, err) = quorate(&["--dir", c.dir_str(), "metrics", "--addr", &addr]).await;
    assert_eq!(code, 0, "quorate metrics failed: {err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_outcomes_by_rule_and_are_served_only_over_mutual_tls() {
    let mut c = Cluster::create(3, 2).await;
    // No retry on a slow machine: a signer answering after the coordinator's timeout would
    // release a share beyond the two per withdrawal counted below.
    let config = c.path("coordinator/coordinator.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("signer_timeout = \"5s\""), "{text}");
    std::fs::write(
        &config,
        text.replace("signer_timeout = \"5s\"", "signer_timeout = \"10m\""),
    )
    .unwrap();
    c.start_all().await;
    c.dkg().await;
    for i in 0..3 {
        let (code, w) = c.submit_eth(&format!("wd-metrics-{i}"), "1").await;
        assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    }
    let (code, w) = c
        .submit(&[
            "--chain",
            "ethereum",
            "--asset",
            "ETH",
            "--to",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "--amount",
            "1",
        ])
        .await;
    assert_ne!(code, 0, "{w}");

    let text = scrape(&c).await;
    let get = |series: &str| sample(&text, series);
    assert_eq!(
        get(r#"quorate_withdrawals_total{outcome="signed",rule=""}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        get(r#"quorate_withdrawals_total{outcome="refused",rule="policy-whitelist-destination"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(get("quorate_signing_seconds_count"), Some(3.0), "{text}");
    assert_eq!(get("quorate_signers_connected"), Some(3.0), "{text}");
    assert!(get("quorate_audit_records").unwrap_or(0.0) >= 4.0, "{text}");
    // Each signed withdrawal asked for a durable write, and flushes ran for them.
    let (flushes, requests) = (
        get("quorate_store_flushes_total").unwrap(),
        get("quorate_store_flush_requests_total").unwrap(),
    );
    assert!(requests >= 3.0 && flushes >= 1.0, "{text}");
    // The pools of pre-generated commitments are reported per signer.
    for s in 1..=3 {
        assert!(
            get(&format!("quorate_presigned_commitments{{signer=\"{s}\"}}")).is_some(),
            "{text}"
        );
    }

    // No plaintext: a bare HTTP request on the metrics port gets no metrics.
    let addr = c.metrics.clone().unwrap();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got)).await;
    assert!(
        !String::from_utf8_lossy(&got).contains("quorate_"),
        "metrics served over plaintext"
    );

    // Nor to a TLS client without a certificate from the cluster CA.
    let mut no_cert = (*crate::transport::client_config(crate::transport::roots(&c), None)).clone();
    no_cert.alpn_protocols = vec![b"http/1.1".to_vec()];
    let refused =
        quorate_wire::metrics::scrape(&addr, "localhost", std::sync::Arc::new(no_cert)).await;
    assert!(
        refused.is_err(),
        "metrics served without a client certificate"
    );

    // Signers open no port: each rewrites its metrics file. Between them they released two
    // shares per withdrawal and counted the third signer's ledger notices.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut shares = 0.0;
        let mut complete = true;
        for s in &c.names {
            match std::fs::read_to_string(c.path(&format!("{s}/metrics.prom"))) {
                Ok(t) => {
                    shares += sample(
                        &t,
                        r#"quorate_signer_requests_total{request="sign",outcome="ok",rule=""}"#,
                    )
                    .unwrap_or(0.0);
                    complete &= sample(&t, "quorate_outstanding_nonces").is_some();
                }
                Err(_) => complete = false,
            }
        }
        if complete && shares >= 6.0 {
            assert_eq!(shares, 6.0, "more shares released than withdrawals need");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "signer metrics files never showed 6 released shares (saw {shares})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `quorate bench --json`, briefly: real clusters, every configuration reported with the
/// fields the issue names, every withdrawal signed. The figures themselves are not judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_every_run_from_real_clusters() {
    let work = tempfile::tempdir().unwrap();
    let (code, out, err) = quorate(&[
        "bench",
        "--configs",
        "2-of-3",
        "--concurrency",
        "1,4",
        "--count",
        "12",
        "--dkg",
        "2-of-3,3-of-4",
        "--work-dir",
        work.path().to_str().unwrap(),
        "--catch-up",
        "20",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "bench failed: {out}{err}");
    let report: Value = serde_json::from_str(&out).expect("one JSON object");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report}");
    for (run, concurrency) in runs.iter().zip([1, 4]) {
        assert_eq!((run["t"].as_u64(), run["n"].as_u64()), (Some(2), Some(3)));
        assert_eq!(run["concurrency"].as_u64(), Some(concurrency));
        assert_eq!(run["signed"].as_u64(), Some(12), "{run}");
        assert_eq!(run["failed"].as_u64(), Some(0), "{run}");
        for field in [
            "throughput_per_s",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "floor_throughput_per_s",
            "ratio",
        ] {
            assert!(
                run[field].as_f64().is_some_and(|v| v > 0.0),
                "{field}: {run}"
            );
        }
        let cpu = &run["cpu_ms_per_withdrawal"];
        for side in ["coordinator", "signers"] {
            assert!(
                cpu[side].as_f64().is_some_and(|v| v >= 0.0),
                "{side}: {run}"
            );
        }
        assert_eq!(cpu["processes"].as_array().map(Vec::len), Some(4), "{run}");
        let peaks = run["peak_rss_mib"]
            .as_array()
            .expect("peak memory per process");
        assert_eq!(peaks.len(), 4, "{run}");
    }
    let dkg = report["dkg"].as_array().unwrap();
    let shapes: Vec<(u64, u64)> = dkg
        .iter()
        .map(|d| (d["t"].as_u64().unwrap(), d["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(shapes, vec![(2, 3), (3, 4)], "{report}");
    assert!(dkg
        .iter()
        .all(|d| d["ms"].as_f64().is_some_and(|v| v > 0.0)));
    // A signer back after 20 withdrawals without it counted them (the bench waits for the
    // coordinator's tally to show all 20 counted, or fails).
    let catch_up = report["catch_up"].as_array().expect("catch_up");
    assert_eq!(catch_up.len(), 1, "{report}");
    let c = &catch_up[0];
    assert_eq!(
        (c["t"].as_u64(), c["n"].as_u64(), c["notices"].as_u64()),
        (Some(2), Some(3), Some(20)),
        "{c}"
    );
    let (reconnect, total) = (
        c["reconnect_ms"].as_f64().unwrap(),
        c["total_ms"].as_f64().unwrap(),
    );
    assert!(reconnect > 0.0 && total >= reconnect, "{c}");
    // Each node of the driven cluster reports its disk use.
    let nodes = report["nodes"][0]["processes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    assert!(nodes
        .iter()
        .all(|p| p["disk_mib"].as_f64().is_some_and(|v| v > 0.0)));
}
