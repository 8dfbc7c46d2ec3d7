//! `quorate bench`: starts real clusters on loopback as production runs them (a coordinator
//! and n signers as separate processes, mutual TLS, backend signatures, the governed policy
//! with velocity limits, audit logs, durable writes), drives each through the public withdrawal
//! service at several concurrencies, and measures, in the same run, the in-process floor: the
//! same cryptography with no network and no storage, on every core. A measurement, not a test:
//! nothing here passes or fails on a timing.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use quorate_core::{backend, intent::WithdrawalIntent};
use quorate_wire::{convert::intent_to_proto, withdrawal as pb};
use serde_json::{json, Value};

use crate::{
    client, commands,
    devnet::{self, Proc},
    setup::{self, ClientFile, ClusterSpec, DEV_POLICY},
};

mod catch_up;
mod floor;

use floor::{floor_throughput, sequential_floor, SequentialFloor};

/// Flags of `quorate bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Cluster shapes to drive, as t-of-n.
    #[arg(long, value_delimiter = ',', default_value = "2-of-3,3-of-5")]
    pub configs: Vec<Shape>,
    /// Concurrent requests (one run per value).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Withdrawals per run (after a warm-up of one per concurrent request, not counted).
    #[arg(long, default_value_t = 2000)]
    pub count: usize,
    /// Cluster shapes whose DKG is timed (shapes also driven above are timed there).
    #[arg(long, value_delimiter = ',', default_value = "2-of-3,3-of-5,7-of-10")]
    pub dkg: Vec<Shape>,
    /// Where the clusters live (default: a fresh temporary directory, removed afterwards).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Round trip added on every signer's link (a relay delays each direction by half), to
    /// measure signers far from the coordinator, e.g. `50ms`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub link_rtt: Option<Duration>,
    /// Also measure a signer's catch-up, per cluster shape: stop one signer, sign this many
    /// withdrawals without it, start it again, and time until it has counted every one (the
    /// coordinator's replay of ledger notices, over the links as `--link-rtt` makes them).
    #[arg(long)]
    pub catch_up: Option<usize>,
}

/// A threshold and a number of signers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Threshold.
    pub t: u16,
    /// Signers.
    pub n: u16,
}

impl std::str::FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (t, n) = s
            .split_once("-of-")
            .ok_or_else(|| format!("`{s}`: expected t-of-n, e.g. 2-of-3"))?;
        let t: u16 = t.parse().map_err(|_| format!("`{s}`: bad threshold"))?;
        let n: u16 = n.parse().map_err(|_| format!("`{s}`: bad signer count"))?;
        if t < 2 || t > n || n > 32 {
            return Err(format!("`{s}`: need 2 <= t <= n <= 32"));
        }
        Ok(Shape { t, n })
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-of-{}", self.t, self.n)
    }
}

/// The development policy plus velocity limits on the benchmark's asset that are checked on
/// every withdrawal but never reached: the benchmark measures signing under policy, not the
/// limits.
fn bench_policy() -> String {
    format!(
        "{DEV_POLICY}
[[velocity]]
chain = \"polygon\"
asset = \"POL\"
scope = \"asset\"
window = \"24h\"
max_amount = \"1000000000\"

[[velocity]]
chain = \"polygon\"
asset = \"POL\"
scope = \"destination\"
window = \"1h\"
max_count = 1000000000
"
    )
}

const DESTINATION: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

/// Runs `quorate bench`.
pub async fn run(args: &BenchArgs) -> anyhow::Result<u8> {
    if args.count == 0 || args.concurrency.contains(&0) || args.catch_up == Some(0) {
        bail!("--count, every --concurrency and --catch-up must be at least 1");
    }
    let exe = std::env::current_exe().context("locating the quorate binary")?;
    let (work, _temp) = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (std::fs::canonicalize(d)?, None)
        }
        None => {
            let t = TempDir::new()?;
            (t.0.clone(), Some(t))
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut runs = Vec::new();
    let mut dkg = Vec::new();
    let mut nodes = Vec::new();
    let mut failures = 0usize;
    let mut catch_ups = Vec::new();
    for shape in &args.configs {
        let floor = floor_throughput(*shape, cores, args.count.clamp(200, 2000));
        let cluster = Cluster::start(&work, &exe, *shape, args.link_rtt).await?;
        dkg.push(json!({"t": shape.t, "n": shape.n, "ms": ms(cluster.dkg)}));
        let sequential = sequential_floor(*shape, cores, &cluster, &work, args.link_rtt).await?;
        let outcome = drive_all(&cluster, args, (floor, &sequential), &mut runs).await;
        nodes.push(cluster.footprint());
        cluster.stop().await;
        failures += outcome?;
        if let Some(count) = args.catch_up {
            // A cluster of its own: the replay then carries exactly these withdrawals, not
            // the runs' notices as well.
            let mut cluster = Cluster::start(&work, &exe, *shape, args.link_rtt).await?;
            let measured = catch_up::measure(&mut cluster, &exe, count, args.link_rtt).await;
            cluster.stop().await;
            catch_ups.push(measured?);
        }
    }
    for shape in args.dkg.iter().filter(|s| !args.configs.contains(s)) {
        let cluster = Cluster::start(&work, &exe, *shape, args.link_rtt).await?;
        dkg.push(json!({"t": shape.t, "n": shape.n, "ms": ms(cluster.dkg)}));
        cluster.stop().await;
    }
    let report = json!({
        "cores": cores,
        "link_rtt_ms": args.link_rtt.map(ms),
        "count_per_run": args.count,
        "runs": runs,
        "dkg": dkg,
        "nodes": nodes,
        "catch_up": catch_ups,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(if failures == 0 { 0 } else { 3 })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let p = std::env::temp_dir().join(format!("quorate-bench-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Cluster {
    shape: Shape,
    dir: PathBuf,
    procs: Vec<Proc>,
    client: ClientFile,
    dkg: Duration,
    /// The coordinator's signer-link address.
    addr: String,
}

impl Cluster {
    async fn start(
        work: &Path,
        exe: &Path,
        shape: Shape,
        link_rtt: Option<Duration>,
    ) -> anyhow::Result<Self> {
        let dir = work.join(shape.to_string());
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        setup::create(
            &dir,
            &ClusterSpec {
                signers: shape.n,
                threshold: shape.t,
                coordinator_addr: "127.0.0.1:0".into(),
                policy: Some(bench_policy()),
            },
        )?;
        let mut procs = Vec::new();
        let started = async {
            let addr = devnet::launch_with(&dir, exe, &mut procs, link_rtt).await?;
            let client = ClientFile::load(&dir)?;
            let t0 = Instant::now();
            commands::dkg(
                &client,
                None,
                true,
                quorate_core::message::Scheme::Secp256k1,
            )
            .await?;
            Ok::<_, anyhow::Error>((client, t0.elapsed(), addr))
        }
        .await;
        match started {
            Ok((client, dkg, addr)) => Ok(Self {
                shape,
                dir,
                procs,
                client,
                dkg,
                addr,
            }),
            Err(e) => {
                for p in procs.iter_mut().rev() {
                    devnet::stop(p).await;
                }
                Err(e.context(format!("starting the {shape} cluster")))
            }
        }
    }

    /// Each process's peak resident memory so far (MiB) and its data directory's size.
    fn footprint(&self) -> Value {
        let per: Vec<Value> = self
            .procs
            .iter()
            .map(|p| {
                let data = if p.name == "coordinator" {
                    self.dir.join("coordinator/data")
                } else {
                    self.dir.join(&p.name).join("data")
                };
                json!({
                    "name": p.name,
                    "peak_rss_mib": p.child.id().and_then(peak_rss_mib),
                    "disk_mib": dir_size(&data) as f64 / (1 << 20) as f64,
                })
            })
            .collect();
        json!({"t": self.shape.t, "n": self.shape.n, "processes": per})
    }

    async fn stop(mut self) {
        for p in self.procs.iter_mut().rev() {
            devnet::stop(p).await;
        }
    }

    /// CPU time each process has used so far (ms, all threads).
    fn cpu_ms(&self) -> Vec<(String, Option<f64>)> {
        self.procs
            .iter()
            .map(|p| (p.name.clone(), p.child.id().and_then(cpu_ms)))
            .collect()
    }
}

/// Ticks per second of the CPU times in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU time (user and system, every thread) a process has used so far, in ms (Linux).
fn cpu_ms(pid: u32) -> Option<f64> {
    cpu_ms_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// [`cpu_ms`] from the text of a `/proc/<pid>/stat` file.
fn cpu_ms_of(stat: &str) -> Option<f64> {
    // The command name is in parentheses and may hold spaces: count fields after it, where
    // the state (field 3 of the line) comes first and utime, stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1000.0 / USER_HZ)
}

/// CPU per signed withdrawal over a run, per process, from [`Cluster::cpu_ms`] before and after
/// it: `{"coordinator": ms, "signers": ms summed over every signer, "processes": [...]}`.
fn cpu_per_withdrawal(
    before: &[(String, Option<f64>)],
    after: &[(String, Option<f64>)],
    signed: usize,
) -> Value {
    if signed == 0 {
        return Value::Null;
    }
    let per: Vec<(String, Option<f64>)> = before
        .iter()
        .zip(after)
        .map(|((name, b), (_, a))| {
            let ms = match (b, a) {
                (Some(b), Some(a)) => Some((a - b) / signed as f64),
                _ => None,
            };
            (name.clone(), ms)
        })
        .collect();
    let sum = |coordinator: bool| -> Option<f64> {
        per.iter()
            .filter(|(n, _)| (n == "coordinator") == coordinator)
            .map(|(_, ms)| *ms)
            .sum::<Option<f64>>()
            .map(round3)
    };
    json!({
        "coordinator": sum(true),
        "signers": sum(false),
        "processes": per
            .iter()
            .map(|(n, ms)| json!({"name": n, "ms": ms.map(round3)}))
            .collect::<Vec<_>>(),
    })
}

/// VmHWM of a process, in MiB (Linux).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

fn dir_size(p: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(p) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn drive_all(
    cluster: &Cluster,
    args: &BenchArgs,
    (floor, sequential): (f64, &SequentialFloor),
    runs: &mut Vec<Value>,
) -> anyhow::Result<usize> {
    let key = client::signing_key(&cluster.client.backend()?.signing_key)?;
    let mut failures = 0;
    for (round, &c) in args.concurrency.iter().enumerate() {
        // A few connections, as a backend would hold; HTTP/2 multiplexes the rest.
        let mut conns = Vec::new();
        for _ in 0..c.clamp(1, 4) {
            conns.push(client::withdrawals(&cluster.client, None).await?);
        }
        let tag = format!("bench-{:08x}-{round}", rand::random::<u32>());
        let warm = requests(&key, &format!("{tag}-warm"), c)?;
        drive(&conns, warm, c).await;
        let reqs = requests(&key, &tag, args.count)?;
        let before = coordinator_flushes(&cluster.client).await;
        let cpu_before = cluster.cpu_ms();
        let out = drive(&conns, reqs, c).await;
        let cpu_after = cluster.cpu_ms();
        let after = coordinator_flushes(&cluster.client).await;
        failures += out.failed;
        let throughput = out.signed as f64 / out.elapsed.as_secs_f64();
        let footprint = cluster.footprint();
        runs.push(json!({
            "t": cluster.shape.t,
            "n": cluster.shape.n,
            "concurrency": c,
            "count": args.count,
            "signed": out.signed,
            "failed": out.failed,
            "first_error": out.first_error,
            "throughput_per_s": round1(throughput),
            "p50_ms": out.pct(0.50),
            "p99_ms": out.pct(0.99),
            "max_ms": out.pct(1.0),
            "floor_throughput_per_s": round1(floor),
            "ratio": (throughput / floor * 1000.0).round() / 1000.0,
            "floor_p50_ms": round3(sequential.p50_ms()),
            "p50_over_floor": out.pct(0.50).map(|p| round3(p / sequential.p50_ms())),
            "floor_parts": sequential.parts(),
            // Where the CPU goes: per signed withdrawal, by process (compare with the
            // in-process floor's cores / floor_throughput_per_s).
            "cpu_ms_per_withdrawal": cpu_per_withdrawal(&cpu_before, &cpu_after, out.signed),
            // Group commit on the coordinator: disk flushes per signed withdrawal.
            "coordinator_flushes_per_withdrawal": match (before, after) {
                (Some(b), Some(a)) if out.signed > 0 => Some(((a - b) / out.signed as f64 * 1000.0).round() / 1000.0),
                _ => None,
            },
            "peak_rss_mib": footprint["processes"]
                .as_array()
                .map(|ps| ps.iter().map(|p| json!({"name": p["name"], "mib": p["peak_rss_mib"]})).collect::<Vec<_>>()),
        }));
    }
    Ok(failures)
}

/// The coordinator's flush count, from its metrics endpoint.
async fn coordinator_flushes(c: &ClientFile) -> Option<f64> {
    let text = client::metrics(c, None).await.ok()?;
    quorate_wire::metrics::sample(&text, "quorate_store_flushes_total")
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A withdrawal of 1 base unit of POL to the whitelisted destination, valid for an hour.
fn bench_intent(id: &str, now: u64) -> anyhow::Result<WithdrawalIntent> {
    Ok(WithdrawalIntent::from_parts(
        id,
        "polygon",
        "POL",
        DESTINATION,
        "1",
        now,
        now + 3_600_000,
        None,
    )?)
}

/// Signed submit requests for 1-base-unit POL withdrawals with unique ids.
fn requests(
    key: &k256::ecdsa::SigningKey,
    tag: &str,
    count: usize,
) -> anyhow::Result<Vec<pb::SubmitRequest>> {
    let now = commands::now_ms();
    (0..count)
        .map(|i| {
            let intent = bench_intent(&format!("{tag}-{i}"), now)?;
            Ok(pb::SubmitRequest {
                intent: Some(intent_to_proto(&intent)),
                backend_signature: backend::sign(key, &intent.digest()),
            })
        })
        .collect()
}

struct Outcome {
    signed: usize,
    failed: usize,
    first_error: Option<String>,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Outcome {
    fn pct(&self, p: f64) -> Option<f64> {
        if self.latencies.is_empty() {
            return None;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        Some(ms(self.latencies[i]))
    }
}

/// Sends every request, `concurrency` at a time, spread over `conns`; times each from send to
/// signed answer.
async fn drive(
    conns: &[pb::withdrawal_service_client::WithdrawalServiceClient<tonic::transport::Channel>],
    reqs: Vec<pb::SubmitRequest>,
    concurrency: usize,
) -> Outcome {
    let reqs = Arc::new(reqs);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (reqs, next) = (reqs.clone(), next.clone());
            let mut conn = conns[w % conns.len()].clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut failed = 0usize;
                let mut first_error = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(req) = reqs.get(i) else { break };
                    let t0 = Instant::now();
                    match conn.submit(req.clone()).await {
                        Ok(r) if r.get_ref().status == pb::Status::Signed as i32 => {
                            lat.push(t0.elapsed())
                        }
                        Ok(r) => {
                            failed += 1;
                            first_error.get_or_insert_with(|| {
                                format!("status {:?}: {}", r.get_ref().status(), r.get_ref().reason)
                            });
                        }
                        Err(s) => {
                            failed += 1;
                            first_error.get_or_insert_with(|| s.message().to_string());
                        }
                    }
                }
                (lat, failed, first_error)
            })
        })
        .collect();
    let mut out = Outcome {
        signed: 0,
        failed: 0,
        first_error: None,
        latencies: Vec::with_capacity(reqs.len()),
        elapsed: Duration::ZERO,
    };
    for w in workers {
        match w.await {
            Ok((lat, failed, err)) => {
                out.latencies.extend(lat);
                out.failed += failed;
                if out.first_error.is_none() {
                    out.first_error = err;
                }
            }
            Err(e) => {
                out.failed += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    out.elapsed = started.elapsed();
    out.signed = out.latencies.len();
    out.latencies.sort_unstable();
    out
}

fn print_table(r: &Value) {
    if let Some(rtt) = r["link_rtt_ms"].as_f64() {
        println!("every signer link with {rtt} ms of added round trip");
    }
    println!(
        "{:<8} {:>5} {:>8} {:>10} {:>8} {:>8} {:>8} {:>9} {:>6} {:>16}",
        "shape",
        "conc",
        "signed",
        "per s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "floor/s",
        "ratio",
        "cpu ms coord+sig"
    );
    let mut floors = Vec::new();
    for run in r["runs"].as_array().into_iter().flatten() {
        let cpu = &run["cpu_ms_per_withdrawal"];
        println!(
            "{:<8} {:>5} {:>8} {:>10} {:>8} {:>8} {:>8} {:>9} {:>6} {:>16}",
            format!("{}-of-{}", run["t"], run["n"]),
            run["concurrency"],
            run["signed"],
            run["throughput_per_s"],
            run["p50_ms"],
            run["p99_ms"],
            run["max_ms"],
            run["floor_throughput_per_s"],
            run["ratio"],
            format!("{}+{}", cpu["coordinator"], cpu["signers"]),
        );
        let shape = format!("{}-of-{}", run["t"], run["n"]);
        if !floors.iter().any(|(s, _)| *s == shape) {
            floors.push((shape, run["floor_p50_ms"].clone()));
        }
    }
    for (shape, floor) in floors {
        println!("{shape}: sequential floor {floor} ms (p50 of one withdrawal at best)");
    }
    println!();
    for d in r["dkg"].as_array().into_iter().flatten() {
        println!("DKG {}-of-{}: {} ms", d["t"], d["n"], d["ms"]);
    }
    for c in r["catch_up"].as_array().into_iter().flatten() {
        println!(
            "{}-of-{}: a signer back after {} withdrawals without it counted them all {} ms after it started ({} ms to reconnect)",
            c["t"], c["n"], c["notices"], c["total_ms"], c["reconnect_ms"]
        );
    }
    for n in r["nodes"].as_array().into_iter().flatten() {
        let per: Vec<String> = n["processes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{} {} MiB peak, {:.1} MiB disk",
                    p["name"].as_str().unwrap_or("?"),
                    p["peak_rss_mib"],
                    p["disk_mib"].as_f64().unwrap_or(0.0)
                )
            })
            .collect();
        println!("{}-of-{}: {}", n["t"], n["n"], per.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 900 0 3 0 250 37 0 0 20 0";
        assert_eq!(cpu_ms_of(stat), Some(2_870.0));
        assert_eq!(cpu_ms_of("4242 (short) S 1 2"), None);
        assert_eq!(cpu_ms_of("no name here"), None);
        // This process, read from /proc.
        assert!(cpu_ms(std::process::id()).is_some_and(|ms| ms >= 0.0));
    }

    #[test]
    fn cpu_per_withdrawal_splits_the_coordinator_from_the_signers() {
        let before = vec![
            ("coordinator".to_string(), Some(1_000.0)),
            ("signer-1".to_string(), Some(500.0)),
            ("signer-2".to_string(), Some(700.0)),
        ];
        let after = vec![
            ("coordinator".to_string(), Some(1_100.0)),
            ("signer-1".to_string(), Some(600.0)),
            ("signer-2".to_string(), Some(750.0)),
        ];
        let v = cpu_per_withdrawal(&before, &after, 100);
        assert_eq!(v["coordinator"].as_f64(), Some(1.0));
        assert_eq!(v["signers"].as_f64(), Some(1.5));
        assert_eq!(v["processes"][2]["ms"].as_f64(), Some(0.5));
        // A process that could not be read makes its side unknown, never a smaller figure.
        let mut gone = after.clone();
        gone[2].1 = None;
        assert!(cpu_per_withdrawal(&before, &gone, 100)["signers"].is_null());
        assert!(cpu_per_withdrawal(&before, &after, 0).is_null());
    }
}
