//! The metrics endpoint's exposition (counters, histograms and the gauges read at render time)
//! and the withdrawal service's readiness.

use quorate_core::message::Scheme;

use super::{metric, Coordinator};

impl Coordinator {
    /// Counts one withdrawal outcome for the metrics endpoint.
    pub fn count_outcome(&self, outcome: &str, rule: &str) {
        self.metrics.inc(
            metric::WITHDRAWALS,
            "Withdrawals by outcome (signed, refused, failed, pending_approval) and rule tag.",
            &[("outcome", outcome), ("rule", rule)],
        );
    }

    /// The exposition for the metrics endpoint: counters, histograms, and gauges read now.
    pub fn render_metrics(&self) -> String {
        use quorate_wire::metrics::Gauge;
        let connected = self.registry.connected();
        let keys = self.group_keys();
        let mut gauges = vec![Gauge {
            counter: false,
            name: "quorate_signers_connected",
            help: "Signers with a live link to the coordinator.",
            labels: vec![],
            value: connected.len() as f64,
        }];
        for scheme in Scheme::ALL {
            let key = keys.of(scheme);
            let retired = self.retired_signers();
            let able = connected
                .iter()
                .filter(|s| !retired.contains(&s.identifier) && self.holds_current(s, scheme, key))
                .count();
            gauges.push(Gauge {
                counter: false,
                name: "quorate_signers_able_to_sign",
                help: "Connected, unretired signers holding the cluster's share (per key scheme) at the key epoch in force: fewer than the threshold cannot sign.",
                labels: vec![("scheme", scheme.as_str().into())],
                value: able as f64,
            });
        }
        gauges.push(Gauge {
            counter: false,
            name: "quorate_withdrawals_signing",
            help: "Withdrawals whose signing run is under way (until its outcome is stored and its ledger notices queued).",
            labels: vec![],
            value: self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).len() as f64,
        });
        for (signer, counts) in self.notices.tally().by_signer() {
            let name = self
                .manifest
                .signer(signer)
                .map_or_else(|| signer.to_string(), |s| s.name.clone());
            for (outcome, notices) in super::notices::Tally::OUTCOMES.iter().zip(counts) {
                gauges.push(Gauge {
                    counter: true,
                    name: "quorate_ledger_notices_total",
                    help: "Ledger notices sent to each signer, live or replayed, by what became of them: counted (debited now), known (counted before), refused, undelivered (their batch got no answer notice by notice), dropped (the signer's queue was full).",
                    labels: vec![("signer", name.clone()), ("outcome", (*outcome).into())],
                    value: notices as f64,
                });
            }
        }
        // Per signer of the manifest: link up, key share held at the current epoch, its key
        // epochs, the age of its last message, the policy version it reported.
        let policies = self
            .signer_policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let now = self.now_ms();
        for s in &self.manifest.signers {
            let live = connected.iter().find(|c| c.identifier == s.identifier);
            let signer = || vec![("signer", s.name.clone())];
            gauges.push(Gauge {
                counter: false,
                name: "quorate_signer_up",
                help: "1 while the signer's link to this coordinator is up.",
                labels: signer(),
                value: f64::from(u8::from(live.is_some())),
            });
            if let Some(c) = live {
                gauges.push(Gauge {
                    counter: false,
                    name: "quorate_signer_last_contact_seconds",
                    help: "Seconds since the signer's last message (hello or answer).",
                    labels: signer(),
                    value: now.saturating_sub(c.last_seen_ms) as f64 / 1000.0,
                });
                for scheme in Scheme::ALL {
                    let mut labels = signer();
                    labels.push(("scheme", scheme.as_str().into()));
                    gauges.push(Gauge {
                        counter: false,
                        name: "quorate_signer_has_key",
                        help: "1 if the signer holds the cluster's share of this key group at the key epoch in force.",
                        labels: labels.clone(),
                        value: f64::from(u8::from(self.holds_current(c, scheme, keys.of(scheme)))),
                    });
                    gauges.push(Gauge {
                        counter: false,
                        name: "quorate_signer_key_epoch",
                        help: "The key epoch of the signer's share of this key group.",
                        labels,
                        value: f64::from(c.key_epochs[usize::from(scheme == Scheme::Ed25519)]),
                    });
                }
            }
            if let Some(p) = policies.get(&s.identifier) {
                gauges.push(Gauge {
                    counter: false,
                    name: "quorate_signer_policy_version",
                    help: "The policy version the signer last reported in force.",
                    labels: signer(),
                    value: p.version as f64,
                });
            }
        }
        for (who, not_after) in self
            .certificates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let (name, help, labels) = match who {
                None => (
                    "quorate_certificate_expiry_timestamp_seconds",
                    "notAfter of this node's TLS certificate (Unix time): alert well before it.",
                    vec![],
                ),
                Some(i) => (
                    "quorate_signer_certificate_expiry_timestamp_seconds",
                    "notAfter of the certificate the signer last presented (Unix time).",
                    vec![(
                        "signer",
                        self.manifest
                            .signer(*i)
                            .map_or_else(|| i.to_string(), |s| s.name.clone()),
                    )],
                ),
            };
            gauges.push(Gauge {
                counter: false,
                name,
                help,
                labels,
                value: *not_after as f64,
            });
        }
        gauges.push(Gauge {
            counter: false,
            name: "quorate_build_info",
            help: "Always 1; the version label is this coordinator's.",
            labels: vec![("version", env!("CARGO_PKG_VERSION").into())],
            value: 1.0,
        });
        for (signer, n) in self.registry.presigned() {
            gauges.push(Gauge {
                counter: false,
                name: "quorate_presigned_commitments",
                help: "Pre-generated commitments the coordinator holds per signer (one-round signing).",
                labels: vec![("signer", signer.to_string())],
                value: n as f64,
            });
        }
        gauges.push(Gauge {
            counter: false,
            name: "quorate_audit_records",
            help: "Records in this node's audit log.",
            labels: vec![],
            value: self.audit.lock().unwrap_or_else(|p| p.into_inner()).seq() as f64,
        });
        let (flushes, waiters) = self.store.flush_counts();
        gauges.push(Gauge {
            counter: true,
            name: "quorate_store_flushes_total",
            help: "Disk flushes run since start (group commit: one serves many writers).",
            labels: vec![],
            value: flushes as f64,
        });
        gauges.push(Gauge {
            counter: true,
            name: "quorate_store_flush_requests_total",
            help: "Durability requests served by those flushes since start.",
            labels: vec![],
            value: waiters as f64,
        });
        self.metrics.render(&gauges)
    }

    /// Whether withdrawals can be signed now: a secp256k1 group key, and at least t connected,
    /// unretired signers holding its share at the key epoch in force. The withdrawal service's
    /// gRPC health follows it.
    pub fn withdrawals_ready(&self) -> bool {
        let key = self.group_keys().secp256k1;
        if key.is_empty() {
            return false;
        }
        let retired = self.retired_signers();
        let able = self
            .registry
            .connected()
            .iter()
            .filter(|c| {
                !retired.contains(&c.identifier) && self.holds_current(c, Scheme::Secp256k1, &key)
            })
            .count();
        able >= usize::from(self.manifest.threshold)
    }

    /// Records when a certificate expires: ours (`None`) or the one signer `signer` presented.
    pub fn note_certificate(&self, signer: Option<u16>, not_after_unix: i64) {
        self.certificates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(signer, not_after_unix);
    }
}
