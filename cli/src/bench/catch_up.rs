//! `quorate bench --catch-up N`: how long a signer that was away takes to count the
//! withdrawals signed without it. On a fresh cluster one signer is stopped, N withdrawals are
//! signed by the others, the signer is started again, and the clock runs from its start until
//! the coordinator's metrics show every one of the N notices counted by that signer (the
//! replay of ledger notices on reconnect, over a new relay with the same delay as the other
//! links, as `--link-rtt` makes them).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use quorate_wire::metrics::sample;
use serde_json::{json, Value};

use super::{drive, ms, requests, Cluster};
use crate::{client, devnet};

/// How long any step may take before the measurement gives up.
const PATIENCE: Duration = Duration::from_secs(600);

/// How often the coordinator's metrics are read: each read is a TLS handshake the
/// coordinator pays for, so not much more often than the figures' resolution needs.
const POLL: Duration = Duration::from_millis(50);

/// Concurrent withdrawals while the signer is away.
const CONCURRENCY: usize = 16;

/// Runs the measurement on a `cluster` that has signed nothing yet, leaving every signer
/// running again.
pub(super) async fn measure(
    cluster: &mut Cluster,
    exe: &Path,
    count: usize,
    link_rtt: Option<Duration>,
) -> anyhow::Result<Value> {
    let n = usize::from(cluster.shape.n);
    let away = cluster
        .procs
        .iter()
        .rposition(|p| p.name != "coordinator")
        .context("no signer to stop")?;
    devnet::stop(&mut cluster.procs[away]).await;
    wait_for(cluster, "the coordinator to see the signer gone", |m| {
        sample(m, "quorate_signers_connected") == Some((n - 1) as f64)
    })
    .await?;

    let key = client::signing_key(&cluster.client.backend()?.signing_key)?;
    let conns = vec![client::withdrawals(&cluster.client, None).await?];
    let tag = format!("catch-up-{:08x}", rand::random::<u32>());
    let out = drive(&conns, requests(&key, &tag, count)?, CONCURRENCY).await;
    if out.failed > 0 {
        bail!(
            "{} of {count} withdrawals failed while a signer was away: {}",
            out.failed,
            out.first_error.unwrap_or_default()
        );
    }
    // Every signing run has ended, so the notices it queued went to the signers then linked:
    // the one coming back hears of these withdrawals from the replay alone.
    wait_for(cluster, "the signing runs to end", |m| {
        sample(m, "quorate_withdrawals_signing") == Some(0.0)
    })
    .await?;
    // The returning signer's own series: live notices to the others are still being counted.
    let name = cluster.procs[away].name.clone();
    let series = format!("quorate_ledger_notices_total{{signer=\"{name}\",outcome=\"counted\"}}");
    let counted = |m: &str| sample(m, &series);
    let before = counted(&metrics(cluster).await?).unwrap_or(0.0);

    let started = Instant::now();
    cluster.procs[away] =
        devnet::spawn_signer(&cluster.dir, exe, &name, &cluster.addr, link_rtt).await?;
    wait_for(cluster, "the signer to reconnect", |m| {
        sample(m, "quorate_signers_connected") == Some(n as f64)
    })
    .await?;
    let reconnect = started.elapsed();
    wait_for(
        cluster,
        "the signer to count every missed withdrawal",
        |m| counted(m).is_some_and(|c| c - before >= count as f64),
    )
    .await?;
    let total = started.elapsed();
    Ok(json!({
        "t": cluster.shape.t,
        "n": cluster.shape.n,
        "notices": count,
        "link_rtt_ms": link_rtt.map(ms),
        "reconnect_ms": ms(reconnect),
        "replay_ms": ms(total.saturating_sub(reconnect)),
        "total_ms": ms(total),
    }))
}

async fn metrics(cluster: &Cluster) -> anyhow::Result<String> {
    client::metrics(&cluster.client, None).await
}

/// Polls the coordinator's metrics every [`POLL`] until `done` holds.
async fn wait_for(
    cluster: &Cluster,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if done(&metrics(cluster).await?) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("gave up waiting for {what} after {} s", PATIENCE.as_secs());
        }
        tokio::time::sleep(POLL).await;
    }
}
