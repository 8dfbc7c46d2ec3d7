//! The metrics exposition, and the coordinator-link and certificate state it reports.

use super::{lock, LinkId, Node};

/// One coordinator link as the metrics show it.
pub(super) struct LinkState {
    addr: String,
    up: bool,
    last_contact_ms: u64,
}

impl Node {
    /// The exposition for the metrics endpoint: counters, histograms, and gauges read now.
    pub fn render_metrics(&self) -> String {
        use quorate_wire::metrics::Gauge;
        let (flushes, waiters) = self.store.flush_counts();
        let policy = self.policy_status();
        let gauge = |name: &'static str, help, value: f64| Gauge {
            counter: name.ends_with("_total"),
            name,
            help,
            labels: vec![],
            value,
        };
        let mut gauges = vec![
            gauge(
                "quorate_certificate_expiry_timestamp_seconds",
                "notAfter of this node's TLS certificate (Unix time): alert well before it.",
                self.cert_expiry.load(std::sync::atomic::Ordering::Relaxed) as f64,
            ),
            gauge(
                "quorate_outstanding_nonces",
                "Signing nonces held in memory (fresh and pre-generated).",
                self.outstanding_nonces() as f64,
            ),
            gauge(
                "quorate_audit_records",
                "Records in this node's audit log.",
                lock(&self.audit).seq() as f64,
            ),
            gauge(
                "quorate_policy_version",
                "Policy version in force.",
                policy.version as f64,
            ),
            Gauge {
                labels: vec![("scheme", "secp256k1".into())],
                ..gauge(
                    "quorate_signer_key_share",
                    "1 if this signer holds a key share of the group (per key scheme), else 0: without one it cannot sign.",
                    f64::from(u8::from(!self.group_key().is_empty())),
                )
            },
            Gauge {
                labels: vec![("scheme", "ed25519".into())],
                ..gauge(
                    "quorate_signer_key_share",
                    "1 if this signer holds a key share of the group (per key scheme), else 0: without one it cannot sign.",
                    f64::from(u8::from(!self.ed25519_group_key().is_empty())),
                )
            },
            gauge(
                "quorate_store_flushes_total",
                "Disk flushes run since start (group commit: one serves many writers).",
                flushes as f64,
            ),
            gauge(
                "quorate_store_flush_requests_total",
                "Durability requests served by those flushes since start.",
                waiters as f64,
            ),
        ];
        for state in lock(&self.links).values() {
            let labels = vec![("coordinator", state.addr.clone())];
            gauges.push(Gauge {
                labels: labels.clone(),
                ..gauge(
                    "quorate_signer_link_up",
                    "1 while this signer's link to the coordinator is up.",
                    f64::from(u8::from(state.up)),
                )
            });
            gauges.push(Gauge {
                labels,
                ..gauge(
                    "quorate_signer_last_contact_timestamp_seconds",
                    "Unix time of the coordinator's last message on the link (0: never).",
                    state.last_contact_ms as f64 / 1000.0,
                )
            });
        }
        self.metrics.render(&gauges)
    }

    /// Records when this signer's TLS certificate expires (for the metrics).
    pub fn set_certificate_expiry(&self, not_after_unix: i64) {
        self.cert_expiry
            .store(not_after_unix, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records the link to coordinator `addr` coming up or going down.
    pub fn set_link_up(&self, link: LinkId, addr: &str, up: bool) {
        let mut links = lock(&self.links);
        let state = links.entry(link).or_insert_with(|| LinkState {
            addr: addr.to_string(),
            up,
            last_contact_ms: 0,
        });
        state.up = up;
        if up {
            state.last_contact_ms = self.now_ms();
        }
    }

    /// Records a message from the coordinator of `link`.
    pub fn touch_link(&self, link: LinkId) {
        if let Some(state) = lock(&self.links).get_mut(&link) {
            state.last_contact_ms = self.now_ms();
        }
    }

    /// How many coordinator links are up.
    pub fn links_up(&self) -> usize {
        lock(&self.links).values().filter(|s| s.up).count()
    }
}
