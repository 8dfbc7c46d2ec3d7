//! The floors a bench run is measured against, in the same run on the same cores: the
//! in-process throughput floor (the cryptography alone, every core) and the sequential floor
//! (the least time one withdrawal can take, given the round trips and flushes on its critical
//! path).

use std::{
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context;
use frost_secp256k1 as frost;
use quorate_core::{
    backend::{self, BackendKey},
    intent::WithdrawalIntent,
    message::{signing_message, ChainFormat},
};
use serde_json::{json, Value};

use super::{bench_intent, ms, round3, Cluster, Shape};
use crate::{client, commands};

/// A dealer's key shares for the first t signers of a `shape` group, its public keys, and a
/// backend key: the floors' keys (no DKG needed to measure signing).
struct Keys {
    keys: Vec<frost::keys::KeyPackage>,
    pubkeys: frost::keys::PublicKeyPackage,
    backend_key: k256::ecdsa::SigningKey,
    backend_keys: Vec<BackendKey>,
}

fn dealt_keys(shape: Shape) -> Keys {
    let mut rng = rand::rngs::OsRng;
    let (shares, pubkeys) = frost::keys::generate_with_dealer(
        shape.n,
        shape.t,
        frost::keys::IdentifierList::Default,
        rng,
    )
    .expect("a valid threshold");
    let keys: Vec<frost::keys::KeyPackage> = shares
        .into_values()
        .take(usize::from(shape.t))
        .map(|s| frost::keys::KeyPackage::try_from(s).expect("a dealer's share verifies"))
        .collect();
    let backend_key = k256::ecdsa::SigningKey::random(&mut rng);
    let backend_keys = vec![BackendKey::from_sec1(
        &backend_key
            .verifying_key()
            .to_encoded_point(true)
            .to_bytes(),
    )
    .expect("a valid key")];
    Keys {
        keys,
        pubkeys,
        backend_key,
        backend_keys,
    }
}

/// One benchmark intent, encoded, with its backend signature.
fn signed_intent(backend_key: &k256::ecdsa::SigningKey, id: &str, now: u64) -> (Vec<u8>, Vec<u8>) {
    let intent = bench_intent(id, now).expect("a valid intent");
    let sig = backend::sign(backend_key, &intent.digest());
    (intent.encode(), sig)
}

/// A fresh nonce and commitment of every key in `keys`.
type Committed = (
    Vec<frost::round1::SigningNonces>,
    std::collections::BTreeMap<frost::Identifier, frost::round1::SigningCommitments>,
);

fn commit_all(keys: &[frost::keys::KeyPackage], rng: &mut rand::rngs::OsRng) -> Committed {
    let mut nonces = Vec::with_capacity(keys.len());
    let mut commitments = std::collections::BTreeMap::new();
    for k in keys {
        let (n, c) = frost::round1::commit(k.signing_share(), rng);
        nonces.push(n);
        commitments.insert(*k.identifier(), c);
    }
    (nonces, commitments)
}

/// Withdrawals per second that the cryptography alone allows on `threads` cores, for one
/// t-of-n group: per withdrawal, the coordinator's and every quorum member's check of the
/// backend signature, t commitments, t signature shares (each signer recomputing the message),
/// and aggregation with its verification of the group signature. No network, no storage, no
/// policy.
pub fn floor_throughput(shape: Shape, threads: usize, count: usize) -> f64 {
    let dealt = dealt_keys(shape);
    let now = commands::now_ms();
    let work: Vec<(Vec<u8>, Vec<u8>)> = (0..count)
        .map(|i| signed_intent(&dealt.backend_key, &format!("floor-{i}"), now))
        .collect();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut rng = rand::rngs::OsRng;
                while let Some((encoded, sig)) = work.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let intent = WithdrawalIntent::decode(encoded).expect("decodes");
                    backend::verify(&dealt.backend_keys, &intent.digest(), sig).expect("verifies");
                    let (nonces, commitments) = commit_all(&dealt.keys, &mut rng);
                    let message =
                        signing_message(&intent, ChainFormat::IntentDigest).expect("intent digest");
                    let package = frost::SigningPackage::new(commitments, &message);
                    let mut sig_shares = std::collections::BTreeMap::new();
                    for (k, n) in dealt.keys.iter().zip(&nonces) {
                        let mine = WithdrawalIntent::decode(encoded).expect("decodes");
                        backend::verify(&dealt.backend_keys, &mine.digest(), sig)
                            .expect("verifies");
                        let _ = signing_message(&mine, ChainFormat::IntentDigest)
                            .expect("intent digest");
                        let share = frost::round2::sign(&package, n, k).expect("signs");
                        sig_shares.insert(*k.identifier(), share);
                    }
                    frost::aggregate(&package, &sig_shares, &dealt.pubkeys).expect("aggregates");
                }
            });
        }
    });
    count as f64 / started.elapsed().as_secs_f64()
}

/// The sequential floor: the least time one withdrawal can take on this machine with the
/// work and the waits the protocol puts on its critical path, each measured here in the same
/// run (medians):
/// - 2 loopback TLS round trips (backend → coordinator, coordinator → the quorum in parallel),
///   measured as gRPC health checks over a mutual-TLS channel to this cluster's coordinator,
///   plus the round trip `--link-rtt` adds to the signer links;
/// - 3 disk flushes one after the other (S6: the coordinator's record before any share is
///   asked for, a signer's binding and debit before its share leaves, the signed record before
///   the answer), measured as a small sled write and flush in the work directory;
/// - the cryptography of one-round signing: the coordinator's check of the backend signature,
///   each quorum member's decode, check, message and signature share (as many rounds of that
///   as the quorum needs of the machine's cores), and the aggregation with its verification.
///   Commitments are made ahead of time, off the critical path.
pub struct SequentialFloor {
    rtt_ms: f64,
    /// The round trip `--link-rtt` adds to the coordinator's round trip to the quorum.
    link_rtt_ms: f64,
    flush_ms: f64,
    coordinator_ms: f64,
    signer_ms: f64,
    signer_rounds: usize,
    aggregate_ms: f64,
}

impl SequentialFloor {
    pub(super) fn p50_ms(&self) -> f64 {
        2.0 * self.rtt_ms
            + self.link_rtt_ms
            + 3.0 * self.flush_ms
            + self.coordinator_ms
            + self.signer_ms * self.signer_rounds as f64
            + self.aggregate_ms
    }

    pub(super) fn parts(&self) -> Value {
        json!({
            "tls_round_trip_ms": round3(self.rtt_ms),
            "added_link_round_trip_ms": round3(self.link_rtt_ms),
            "flush_ms": round3(self.flush_ms),
            "coordinator_crypto_ms": round3(self.coordinator_ms),
            "signer_crypto_ms": round3(self.signer_ms),
            "signer_rounds": self.signer_rounds,
            "aggregate_ms": round3(self.aggregate_ms),
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Measures [`SequentialFloor`] for `shape` against the running `cluster`.
pub(super) async fn sequential_floor(
    shape: Shape,
    cores: usize,
    cluster: &Cluster,
    work: &Path,
    link_rtt: Option<Duration>,
) -> anyhow::Result<SequentialFloor> {
    const SAMPLES: usize = 200;
    let channel = client::channel(&cluster.client, client::As::Backend, None).await?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut rtts = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES + 20 {
        let started = Instant::now();
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .context("health check for the round-trip measurement")?;
        if i >= 20 {
            rtts.push(ms(started.elapsed()));
        }
    }
    let dir = work.join(format!("flush-{shape}"));
    let flushes = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<f64>> {
        let db = sled::open(&dir).context("opening the flush-measurement store")?;
        let mut out = Vec::with_capacity(SAMPLES / 2);
        for i in 0..SAMPLES / 2 {
            let started = Instant::now();
            db.insert(format!("record-{i}"), vec![7u8; 300])?;
            db.flush()?;
            out.push(ms(started.elapsed()));
        }
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(out)
    })
    .await??;
    let crypto = tokio::task::spawn_blocking(move || crypto_path(shape, SAMPLES)).await?;
    Ok(SequentialFloor {
        rtt_ms: median(rtts),
        link_rtt_ms: link_rtt.map_or(0.0, ms),
        flush_ms: median(flushes),
        coordinator_ms: crypto.0,
        signer_ms: crypto.1,
        signer_rounds: usize::from(shape.t).div_ceil(cores.max(1)),
        aggregate_ms: crypto.2,
    })
}

/// Median milliseconds of the coordinator's, one signer's and the aggregation's cryptography
/// for one withdrawal of a `shape` group, with commitments made ahead.
fn crypto_path(shape: Shape, samples: usize) -> (f64, f64, f64) {
    let mut rng = rand::rngs::OsRng;
    let dealt = dealt_keys(shape);
    let now = commands::now_ms();
    let (mut coordinator, mut signer, mut aggregate) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..samples {
        let (encoded, sig) = signed_intent(&dealt.backend_key, &format!("sequential-{i}"), now);
        let (nonces, commitments) = commit_all(&dealt.keys, &mut rng);
        let started = Instant::now();
        let checked = WithdrawalIntent::decode(&encoded).expect("decodes");
        backend::verify(&dealt.backend_keys, &checked.digest(), &sig).expect("verifies");
        let message = signing_message(&checked, ChainFormat::IntentDigest).expect("intent digest");
        let package = frost::SigningPackage::new(commitments, &message);
        let package_bytes = package.serialize().expect("serializes");
        coordinator.push(ms(started.elapsed()));
        let mut sig_shares = std::collections::BTreeMap::new();
        for (j, (k, n)) in dealt.keys.iter().zip(&nonces).enumerate() {
            let started = Instant::now();
            let mine = WithdrawalIntent::decode(&encoded).expect("decodes");
            backend::verify(&dealt.backend_keys, &mine.digest(), &sig).expect("verifies");
            let message = signing_message(&mine, ChainFormat::IntentDigest).expect("intent digest");
            let package = frost::SigningPackage::deserialize(&package_bytes).expect("decodes");
            assert_eq!(package.message(), &message);
            let share = frost::round2::sign(&package, n, k).expect("signs");
            if j == 0 {
                signer.push(ms(started.elapsed()));
            }
            sig_shares.insert(*k.identifier(), share);
        }
        let started = Instant::now();
        frost::aggregate(&package, &sig_shares, &dealt.pubkeys).expect("aggregates");
        aggregate.push(ms(started.elapsed()));
    }
    (median(coordinator), median(signer), median(aggregate))
}
