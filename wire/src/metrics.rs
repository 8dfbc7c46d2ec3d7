//! Operator metrics in the Prometheus text format (0.0.4), served over mutual TLS.
//!
//! Counters and histograms are kept here; gauges are read from the node when a scrape comes
//! (`Metrics::render` takes them). The endpoint speaks just enough HTTP/1.1 for a scraper:
//! `GET /metrics` answers the text, anything else 404, one request per connection. There is no
//! plaintext mode: the scraper presents a certificate from the cluster CA (any role), as every
//! other client does.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tokio_stream::StreamExt;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

type Labels = Vec<(&'static str, String)>;

/// Most label sets one counter keeps.
pub const MAX_SERIES: usize = 256;

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<&'static str, (&'static str, BTreeMap<Labels, u64>)>,
    histograms: BTreeMap<&'static str, (&'static str, Histogram)>,
}

/// A node's counters and histograms.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// A value read at scrape time: name, help, labels, value; a gauge unless `counter`.
pub struct Gauge {
    /// A counter (only goes up) rather than a gauge.
    pub counter: bool,
    /// Metric name.
    pub name: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Label pairs.
    pub labels: Vec<(&'static str, String)>,
    /// Value.
    pub value: f64,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &[(&'static str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds one to counter `name` with `labels`. Label values are what a peer may have sent
    /// (a signer's rule tag): anything but `[a-z0-9_-]`, up to 64 characters, is counted as
    /// `invalid`, and a counter holds at most [`MAX_SERIES`] label sets, the rest counted
    /// under `other`, so no peer can grow the exposition without bound.
    pub fn inc(&self, name: &'static str, help: &'static str, labels: &[(&'static str, &str)]) {
        let clean = |v: &str| {
            let ok = v.len() <= 64
                && v.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if ok {
                v.to_string()
            } else {
                "invalid".to_string()
            }
        };
        let mut key: Labels = labels.iter().map(|(k, v)| (*k, clean(v))).collect();
        let mut inner = self.lock();
        let series = &mut inner
            .counters
            .entry(name)
            .or_insert_with(|| (help, BTreeMap::new()))
            .1;
        if !series.contains_key(&key) && series.len() >= MAX_SERIES {
            key = labels
                .iter()
                .map(|(k, _)| (*k, "other".to_string()))
                .collect();
        }
        *series.entry(key).or_insert(0) += 1;
    }

    /// Records one observation (seconds) in histogram `name`.
    pub fn observe(&self, name: &'static str, help: &'static str, seconds: f64) {
        let mut inner = self.lock();
        let h = &mut inner
            .histograms
            .entry(name)
            .or_insert_with(|| (help, Histogram::default()))
            .1;
        h.count += 1;
        h.sum += seconds;
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            h.buckets[i] += 1;
        }
    }

    /// The value of a counter (for tests and the benchmark).
    pub fn counter(&self, name: &str, labels: &[(&'static str, &str)]) -> u64 {
        let key: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.lock()
            .counters
            .get(name)
            .and_then(|(_, m)| m.get(&key).copied())
            .unwrap_or(0)
    }

    /// The whole exposition: counters, histograms, then `gauges`.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let inner = self.lock();
        let mut out = String::new();
        for (name, (help, series)) in &inner.counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in series {
                let _ = writeln!(out, "{name}{} {v}", label_text(labels));
            }
        }
        for (name, (help, h)) in &inner.histograms {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            let mut cumulative = 0;
            for (b, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum {}", h.sum);
            let _ = writeln!(out, "{name}_count {}", h.count);
        }
        let mut last = "";
        for g in gauges {
            if g.name != last {
                let kind = if g.counter { "counter" } else { "gauge" };
                let _ = writeln!(
                    out,
                    "# HELP {} {}\n# TYPE {} {kind}",
                    g.name, g.help, g.name
                );
                last = g.name;
            }
            let _ = writeln!(out, "{}{} {}", g.name, label_text(&g.labels), g.value);
        }
        out
    }
}

/// What the endpoint serves: the current exposition text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `render` at `GET /metrics` on `listener`, over mutual TLS with `tls` (see
/// [`crate::tls::TlsMaterial::metrics_server_config`]). Runs until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, render: Render) {
    let mut conns = crate::tls::incoming(listener, tls);
    while let Some(conn) = conns.next().await {
        let Ok(mut stream) = conn else { continue };
        let render = render.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 || buf.len() + n > MAX_REQUEST {
                        return Ok::<_, std::io::Error>(());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
                let mut parts = line.split(|b| *b == b' ');
                let (method, path) = (parts.next(), parts.next());
                let (status, body) = match (method, path) {
                    // Rendering takes the node's locks: off the reactor.
                    (Some(b"GET"), Some(b"/metrics")) => (
                        "200 OK",
                        tokio::task::spawn_blocking(move || render())
                            .await
                            .unwrap_or_default(),
                    ),
                    _ => ("404 Not Found", "not found: GET /metrics\n".to_string()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
        });
    }
}

/// Fetches `GET /metrics` from `addr` over mutual TLS (a client config from
/// [`crate::tls::TlsMaterial::metrics_client_config`]); returns the exposition text.
pub async fn scrape(
    addr: &str,
    server_name: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<String, String> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("server name `{server_name}`: {e}"))?;
    let fetch = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let mut tls = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {addr}: {e}"))?;
        tls.write_all(b"GET /metrics HTTP/1.1\r\nhost: quorate\r\nconnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        tls.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8(raw).map_err(|_| "the answer is not UTF-8".to_string())?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| "no HTTP header in the answer".to_string())?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(head.lines().next().unwrap_or_default().to_string());
        }
        Ok(body.to_string())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("{addr} did not answer in time"))?
}

/// The value of one sample (`name` with exactly `labels`, rendered as in the exposition) in
/// an exposition text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_histograms_and_gauges() {
        let m = Metrics::new();
        m.inc("quorate_x_total", "Xs.", &[("rule", "policy-\"q\"")]);
        m.inc("quorate_x_total", "Xs.", &[("rule", "policy-\"q\"")]);
        m.observe("quorate_lat_seconds", "Latency.", 0.0015);
        m.observe("quorate_lat_seconds", "Latency.", 7.0);
        for i in 0..(MAX_SERIES + 10) {
            m.inc("quorate_y_total", "Ys.", &[("rule", &format!("r{i}"))]);
        }
        m.inc("quorate_y_total", "Ys.", &[("rule", "Bad Tag\n")]);
        let text = m.render(&[
            Gauge {
                counter: false,
                name: "quorate_g",
                help: "G.",
                labels: vec![("signer", "1".into())],
                value: 3.0,
            },
            Gauge {
                counter: false,
                name: "quorate_h",
                help: "H.",
                labels: vec![("name", "a\"b".into())],
                value: 1.0,
            },
        ]);
        assert!(text.contains("# TYPE quorate_x_total counter"), "{text}");
        // A label value a peer could choose freely is not echoed.
        assert!(
            text.contains("quorate_x_total{rule=\"invalid\"} 2"),
            "{text}"
        );
        assert!(text.contains("quorate_h{name=\"a\\\"b\"} 1"), "{text}");
        assert!(
            text.contains("quorate_lat_seconds_bucket{le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("quorate_lat_seconds_bucket{le=\"0.002\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("quorate_lat_seconds_bucket{le=\"5\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("quorate_lat_seconds_bucket{le=\"+Inf\"} 2"),
            "{text}"
        );
        assert!(text.contains("quorate_lat_seconds_count 2"), "{text}");
        assert!(text.contains("quorate_g{signer=\"1\"} 3"), "{text}");
        assert_eq!(m.counter("quorate_x_total", &[("rule", "invalid")]), 2);
        assert_eq!(sample(&text, "quorate_lat_seconds_count"), Some(2.0));
        assert_eq!(sample(&text, "quorate_g{signer=\"1\"}"), Some(3.0));
        assert_eq!(sample(&text, "quorate_g"), None);
        // Bounded: the label sets past the cap are counted together.
        assert_eq!(
            sample(&text, "quorate_y_total{rule=\"other\"}"),
            Some(11.0),
            "{text}"
        );
        assert_eq!(m.counter("quorate_y_total", &[("rule", "r0")]), 1);
    }
}
