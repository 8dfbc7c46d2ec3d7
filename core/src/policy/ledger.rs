//! The velocity ledger: how much of each asset went out, and when.
//!
//! Debits land in one-minute buckets per asset and per (asset, destination), whatever the
//! policy's limits are, so counters survive policy changes and a limit added later sees the
//! history. A window's usage is the sum of the buckets that overlap it: at most
//! `window / 1 min + 1` buckets, never the history. Counting a whole bucket that only
//! partly overlaps the window errs on the safe side (a debit counts for up to one minute
//! longer than the window). Time never goes backwards: the time used is the later of `now` and
//! the latest time already recorded.
//!
//! The ledger is pure: [`Ledger::debit`] returns the bucket records the caller must persist
//! (durably, before a share leaves) and [`Ledger::load`] rebuilds it from them.

use std::collections::BTreeMap;

use crate::{address::Chain, amount::Amount};

use super::doc::MAX_WINDOW_MS;

/// Bucket width.
pub const BUCKET_MS: u64 = 60_000;
/// Schema version of bucket records.
pub const RECORD_VERSION: u8 = 1;

/// The destination under which a signer counts what it released itself (for the per-signer
/// budget). No chain's canonical address starts with `@`, so it never meets a real one.
pub const OWN_RELEASES: &str = "@own-releases";

/// When a ledger notice's withdrawal counts: the signing time the coordinator claims
/// (`claimed`, 0 for unknown: now), but never before the intent was created nor after it
/// expired or after `now`. A coordinator that lies about the time can move a debit back by at
/// most the intent's lifetime.
pub fn notice_time(created_at_ms: u64, expires_at_ms: u64, claimed: u64, now_ms: u64) -> u64 {
    let latest = expires_at_ms.min(now_ms).max(created_at_ms);
    match claimed {
        0 => latest,
        t => t.clamp(created_at_ms, latest),
    }
}

/// What a bucket counts: one asset, optionally to one destination.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LedgerKey {
    /// Chain.
    pub chain: Chain,
    /// Asset.
    pub asset: String,
    /// `None`: all destinations; `Some`: this canonical address.
    pub destination: Option<String>,
}

/// Amount and count within some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Base units; saturates at `u128::MAX`, on top of which evaluation lets nothing through
    /// (a limit can be `u128::MAX` itself).
    pub amount: u128,
    /// Withdrawals.
    pub count: u64,
}

impl Usage {
    fn add(&mut self, other: Usage) {
        self.amount = self.amount.saturating_add(other.amount);
        self.count = self.count.saturating_add(other.count);
    }
}

/// One bucket's new total, to persist under [`BucketRecord::key_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRecord {
    /// Whose bucket.
    pub key: LedgerKey,
    /// Bucket index: unix milliseconds / [`BUCKET_MS`].
    pub bucket: u64,
    /// Totals in the bucket.
    pub usage: Usage,
}

/// A record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger record: {0}")]
pub struct RecordError(&'static str);

impl BucketRecord {
    /// Storage key: chain code, asset, destination (length-prefixed), bucket (big-endian), so
    /// one key's buckets sort by time.
    pub fn key_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(self.key.chain.code());
        out.push(self.key.asset.len() as u8);
        out.extend_from_slice(self.key.asset.as_bytes());
        let dest = self.key.destination.as_deref().unwrap_or("");
        out.push(u8::from(self.key.destination.is_some()));
        out.push(dest.len() as u8);
        out.extend_from_slice(dest.as_bytes());
        out.extend_from_slice(&self.bucket.to_be_bytes());
        out
    }

    /// Storage value: version, amount, count.
    pub fn value_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25);
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.usage.amount.to_be_bytes());
        out.extend_from_slice(&self.usage.count.to_be_bytes());
        out
    }

    /// Inverse of the two functions above: only their exact output is accepted.
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, RecordError> {
        let mut k = key;
        let mut take = |n: usize| -> Result<&[u8], RecordError> {
            if k.len() < n {
                return Err(RecordError("key truncated"));
            }
            let (a, b) = k.split_at(n);
            k = b;
            Ok(a)
        };
        let chain = Chain::from_code(take(1)?[0]).ok_or(RecordError("unknown chain"))?;
        let n = usize::from(take(1)?[0]);
        let asset = String::from_utf8(take(n)?.to_vec()).map_err(|_| RecordError("asset"))?;
        let has_dest = match take(1)?[0] {
            0 => false,
            1 => true,
            _ => return Err(RecordError("destination flag")),
        };
        let n = usize::from(take(1)?[0]);
        let dest = String::from_utf8(take(n)?.to_vec()).map_err(|_| RecordError("destination"))?;
        // An all-destinations key has an empty destination; anything else is corruption, and
        // reading it as the asset's bucket would overwrite the real one.
        if !has_dest && !dest.is_empty() {
            return Err(RecordError("destination without flag"));
        }
        let bucket = u64::from_be_bytes(take(8)?.try_into().map_err(|_| RecordError("bucket"))?);
        if !k.is_empty() {
            return Err(RecordError("key too long"));
        }
        if value.len() != 25 || value[0] != RECORD_VERSION {
            return Err(RecordError("value: wrong length or version"));
        }
        let amount =
            u128::from_be_bytes(value[1..17].try_into().map_err(|_| RecordError("amount"))?);
        let count = u64::from_be_bytes(value[17..25].try_into().map_err(|_| RecordError("count"))?);
        Ok(Self {
            key: LedgerKey {
                chain,
                asset,
                destination: has_dest.then_some(dest),
            },
            bucket,
            usage: Usage { amount, count },
        })
    }
}

/// What a debit changed: the time it was recorded at and the buckets to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debit {
    /// The time used (never earlier than any earlier debit).
    pub at_ms: u64,
    /// New bucket totals.
    pub records: Vec<BucketRecord>,
}

/// One key's buckets, each with the running total through it, so that the usage of any window
/// is one difference of two running totals (two lookups), however much history there is.
///
/// Debits only ever land in the newest bucket (the ledger's clock never goes back), so running
/// totals are only ever appended or raised at the end. Should one overflow (amounts near
/// `u128::MAX`), the series falls back to summing its buckets, with the same saturating result.
#[derive(Debug, Clone, Default)]
struct Series {
    /// Bucket index → (usage in the bucket, running total through the bucket).
    buckets: BTreeMap<u64, (Usage, Usage)>,
    /// Running total of the buckets pruned away.
    base: Usage,
    /// A running total overflowed: sum bucket by bucket instead.
    summing: bool,
}

fn checked_add(a: Usage, b: Usage) -> Option<Usage> {
    Some(Usage {
        amount: a.amount.checked_add(b.amount)?,
        count: a.count.checked_add(b.count)?,
    })
}

impl Series {
    fn last_total(&self) -> Usage {
        self.buckets
            .values()
            .next_back()
            .map_or(self.base, |(_, t)| *t)
    }

    /// Adds `u` to bucket `b`.
    fn add(&mut self, b: u64, u: Usage) -> Usage {
        let newest = self.buckets.keys().next_back().copied();
        if newest.is_some_and(|n| b < n) {
            // A late debit (a notice of a withdrawal signed earlier): the running totals from
            // `b` on all grow by `u`. Rare, and at most one window of buckets.
            let slot = self.buckets.entry(b).or_default();
            slot.0.add(u);
            let in_bucket = slot.0;
            let mut before = self
                .buckets
                .range(..b)
                .next_back()
                .map_or(self.base, |(_, (_, t))| *t);
            for (_, (own, total)) in self.buckets.range_mut(b..) {
                match checked_add(before, *own) {
                    Some(t) => *total = t,
                    None => self.summing = true,
                }
                before = *total;
            }
            return in_bucket;
        }
        let total = checked_add(self.last_total(), u).unwrap_or_else(|| {
            self.summing = true;
            Usage::default()
        });
        let slot = self.buckets.entry(b).or_default();
        slot.0.add(u);
        slot.1 = total;
        slot.0
    }

    fn usage_from(&self, from: u64) -> Usage {
        if !self.summing {
            let before = self
                .buckets
                .range(..from)
                .next_back()
                .map_or(self.base, |(_, (_, t))| *t);
            let last = self.last_total();
            // Running totals never decrease; should one ever seem to, sum instead.
            if let (Some(amount), Some(count)) = (
                last.amount.checked_sub(before.amount),
                last.count.checked_sub(before.count),
            ) {
                return Usage { amount, count };
            }
        }
        let mut total = Usage::default();
        for (u, _) in self.buckets.range(from..).map(|(_, v)| v) {
            total.add(*u);
        }
        total
    }
}

/// Per-key bucketed usage, with a high-water clock.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    high_water_ms: u64,
    series: BTreeMap<LedgerKey, Series>,
}

impl PartialEq for Ledger {
    /// Equal when the clock and every bucket's usage are (running totals are bookkeeping).
    fn eq(&self, other: &Self) -> bool {
        let view = |l: &Ledger| -> Vec<(LedgerKey, Vec<(u64, Usage)>)> {
            l.series
                .iter()
                .map(|(k, s)| {
                    (
                        k.clone(),
                        s.buckets.iter().map(|(b, (u, _))| (*b, *u)).collect(),
                    )
                })
                .collect()
        };
        self.high_water_ms == other.high_water_ms && view(self) == view(other)
    }
}

impl Eq for Ledger {}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a ledger from persisted records and the persisted high-water time.
    pub fn load(high_water_ms: u64, records: impl IntoIterator<Item = BucketRecord>) -> Self {
        let mut l = Self {
            high_water_ms,
            ..Self::default()
        };
        let mut by_key: BTreeMap<LedgerKey, BTreeMap<u64, Usage>> = BTreeMap::new();
        for r in records {
            let top = r.bucket.saturating_add(1).saturating_mul(BUCKET_MS);
            l.high_water_ms = l.high_water_ms.max(top.saturating_sub(BUCKET_MS));
            by_key.entry(r.key).or_default().insert(r.bucket, r.usage);
        }
        for (key, buckets) in by_key {
            let s = l.series.entry(key).or_default();
            // In bucket order, so every one lands at the end.
            for (b, u) in buckets {
                s.add(b, u);
            }
        }
        l
    }

    /// The latest time recorded.
    pub fn high_water_ms(&self) -> u64 {
        self.high_water_ms
    }

    /// The time the ledger uses for `now`: never earlier than what it has recorded.
    pub fn effective_now(&self, now_ms: u64) -> u64 {
        now_ms.max(self.high_water_ms)
    }

    /// Usage of `key` in the window of `window_ms` ending at `now_ms` (clamped by the
    /// high-water time), counting every bucket that overlaps the window.
    pub fn usage(&self, key: &LedgerKey, window_ms: u64, now_ms: u64) -> Usage {
        let now = self.effective_now(now_ms);
        let from = now.saturating_sub(window_ms) / BUCKET_MS;
        self.series
            .get(key)
            .map_or_else(Usage::default, |s| s.usage_from(from))
    }

    /// The first time from `now_ms` on at which the usage of `key` over `window_ms` satisfies
    /// `fits`, as the buckets now in the window fall out of it (nothing new counted); `None`
    /// if it fits now or never will.
    pub fn frees_at(
        &self,
        key: &LedgerKey,
        window_ms: u64,
        now_ms: u64,
        fits: impl Fn(Usage) -> bool,
    ) -> Option<u64> {
        let now = self.effective_now(now_ms);
        let mut usage = self.usage(key, window_ms, now);
        if fits(usage) {
            return None;
        }
        let from = now.saturating_sub(window_ms) / BUCKET_MS;
        let series = self.series.get(key)?;
        for (b, (own, _)) in series.buckets.range(from..) {
            usage.amount = usage.amount.saturating_sub(own.amount);
            usage.count = usage.count.saturating_sub(own.count);
            // Bucket `b` leaves the window once (now − window) / BUCKET_MS passes it.
            let leaves = b
                .saturating_add(1)
                .saturating_mul(BUCKET_MS)
                .saturating_add(window_ms);
            if fits(usage) {
                return Some(leaves.max(now));
            }
        }
        None
    }

    /// [`Ledger::frees_at`] for this signer's own releases of `asset`.
    pub fn own_frees_at(
        &self,
        chain: Chain,
        asset: &str,
        window_ms: u64,
        now_ms: u64,
        fits: impl Fn(Usage) -> bool,
    ) -> Option<u64> {
        let key = LedgerKey {
            chain,
            asset: asset.to_string(),
            destination: Some(OWN_RELEASES.to_string()),
        };
        self.frees_at(&key, window_ms, now_ms, fits)
    }

    /// Records a withdrawal against its asset and its destination.
    pub fn debit(
        &mut self,
        chain: Chain,
        asset: &str,
        destination: &str,
        amount: Amount,
        now_ms: u64,
    ) -> Debit {
        self.debit_keys(chain, asset, &[destination], amount, now_ms)
    }

    /// Records a withdrawal signed at `at_ms` (a ledger notice), against its asset and its
    /// destination, in the bucket of that time; a time after the ledger's clock counts as now.
    /// The ledger's clock does not move back. Usage of windows that already ended does not
    /// change what was decided in them; what is decided from now on sees the withdrawal where
    /// it happened, so a notice replayed after a reconnect holds a window no longer than the
    /// withdrawal itself would have.
    pub fn debit_at(
        &mut self,
        chain: Chain,
        asset: &str,
        destination: &str,
        amount: Amount,
        at_ms: u64,
        now_ms: u64,
    ) -> Debit {
        let now = self.effective_now(now_ms);
        if at_ms >= now {
            return self.debit(chain, asset, destination, amount, now_ms);
        }
        self.high_water_ms = now;
        if at_ms.saturating_add(MAX_WINDOW_MS + BUCKET_MS) < now {
            // Older than every window: it can hold none of them.
            return Debit {
                at_ms: now,
                records: vec![],
            };
        }
        let records = self.add_to_bucket(chain, asset, &[destination], amount, at_ms / BUCKET_MS);
        Debit {
            at_ms: now,
            records,
        }
    }

    /// Records a withdrawal this signer released a share for: against its asset, its
    /// destination and this signer's own releases ([`OWN_RELEASES`]).
    pub fn debit_release(
        &mut self,
        chain: Chain,
        asset: &str,
        destination: &str,
        amount: Amount,
        now_ms: u64,
    ) -> Debit {
        self.debit_keys(chain, asset, &[destination, OWN_RELEASES], amount, now_ms)
    }

    /// What this signer released itself of `asset` in the window (see [`Ledger::debit_release`]).
    pub fn own_usage(&self, chain: Chain, asset: &str, window_ms: u64, now_ms: u64) -> Usage {
        let key = LedgerKey {
            chain,
            asset: asset.to_string(),
            destination: Some(OWN_RELEASES.to_string()),
        };
        self.usage(&key, window_ms, now_ms)
    }

    fn debit_keys(
        &mut self,
        chain: Chain,
        asset: &str,
        destinations: &[&str],
        amount: Amount,
        now_ms: u64,
    ) -> Debit {
        let at = self.effective_now(now_ms);
        self.high_water_ms = at;
        let records = self.add_to_bucket(chain, asset, destinations, amount, at / BUCKET_MS);
        Debit { at_ms: at, records }
    }

    /// Adds one withdrawal of `amount` to `bucket` of the asset's key and of each destination's
    /// key; returns the buckets' new totals to persist.
    fn add_to_bucket(
        &mut self,
        chain: Chain,
        asset: &str,
        destinations: &[&str],
        amount: Amount,
        bucket: u64,
    ) -> Vec<BucketRecord> {
        let one = Usage {
            amount: amount.get(),
            count: 1,
        };
        std::iter::once(None)
            .chain(destinations.iter().map(|d| Some(d.to_string())))
            .map(|destination| {
                let key = LedgerKey {
                    chain,
                    asset: asset.to_string(),
                    destination,
                };
                let usage = self.series.entry(key.clone()).or_default().add(bucket, one);
                BucketRecord { key, bucket, usage }
            })
            .collect()
    }

    /// Forgets buckets no window can reach any more; returns them so the caller can delete
    /// them from storage too.
    pub fn prune(&mut self, now_ms: u64) -> Vec<(LedgerKey, u64)> {
        let oldest = self
            .effective_now(now_ms)
            .saturating_sub(MAX_WINDOW_MS + BUCKET_MS)
            / BUCKET_MS;
        let mut gone = Vec::new();
        self.series.retain(|key, s| {
            let keep = s.buckets.split_off(&oldest);
            if let Some((_, t)) = s.buckets.values().next_back() {
                s.base = *t;
            }
            gone.extend(s.buckets.keys().map(|i| (key.clone(), *i)));
            s.buckets = keep;
            !s.buckets.is_empty()
        });
        gone
    }

    /// Number of non-empty buckets held.
    pub fn bucket_count(&self) -> usize {
        self.series.values().map(|s| s.buckets.len()).sum()
    }

    /// Every (key, total over the last `window_ms`), for operators and tests.
    pub fn totals(&self, window_ms: u64, now_ms: u64) -> Vec<(LedgerKey, Usage)> {
        self.series
            .keys()
            .map(|k| (k.clone(), self.usage(k, window_ms, now_ms)))
            .filter(|(_, u)| u.count > 0)
            .collect()
    }
}
