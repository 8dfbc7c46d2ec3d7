//! Property tests over random sequences of withdrawals and times.

use proptest::prelude::*;
use quorate_core::{
    address::Chain,
    amount::Amount,
    policy::{
        doc,
        ledger::{BucketRecord, BUCKET_MS},
        Ledger, LedgerKey, PolicyDoc, Scope, Usage,
    },
};

use super::common::*;

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// Limits for one property run. ETH has no per-withdrawal maximum and needs no approvals.
#[derive(Debug, Clone)]
struct Limits {
    window: u64,
    max_amount: Option<u128>,
    max_count: Option<u64>,
    /// A destination-scope amount limit: window and maximum.
    dest: Option<(u64, u128)>,
}

impl Limits {
    fn doc(&self) -> PolicyDoc {
        let mut v = vec![limit(
            Scope::Asset,
            self.window,
            self.max_amount,
            self.max_count,
        )];
        if let Some((w, m)) = self.dest {
            v.push(limit(Scope::Destination, w, Some(m), None));
        }
        unbounded(velocity_policy(v))
    }
}

const PROP_DESTS: [&str; 2] = [DEST, DEST2];

/// (at_ms as recorded, amount, destination index) of each allowed withdrawal.
type Allowed = Vec<(u64, u128, usize)>;

/// Amount (checked: `None` if the exact sum overflows u128) and count of `allowed` debits
/// matching `keep`.
fn exact(allowed: &Allowed, keep: impl Fn(&(u64, u128, usize)) -> bool) -> (Option<u128>, u64) {
    allowed
        .iter()
        .filter(|a| keep(a))
        .fold((Some(0u128), 0u64), |(s, c), a| {
            (s.and_then(|s| s.checked_add(a.1)), c + 1)
        })
}

/// Times from a start and signed steps, never below 1.
fn times(steps: &[(u128, i64, usize)]) -> Vec<u64> {
    let mut t = T0 as i64;
    steps
        .iter()
        .map(|(_, d, _)| {
            t = (t + d).max(1);
            t as u64
        })
        .collect()
}

/// Runs "evaluate, then debit if allowed" with the real ledger over `steps` at `times`.
/// Checks each decision against an exact account of what was allowed: every refusal must be
/// justified by the debits of the last window + one bucket (the documented slack), and at the
/// end every window of each limit's length holds no more than its limit.
fn run_and_check(
    lim: &Limits,
    steps: &[(u128, i64, usize)],
    times: &[u64],
) -> Result<(Allowed, Ledger), TestCaseError> {
    let doc = lim.doc();
    let mut ledger = Ledger::new();
    let mut allowed: Allowed = Vec::new();
    let mut high = 0u64;
    for ((amount, _, d), &now) in steps.iter().zip(times) {
        let i = eth(PROP_DESTS[*d], *amount);
        let eff = now.max(high);
        match check(&doc, &ledger, &i, now) {
            Ok(()) => {
                let rec = ledger.debit(Chain::Ethereum, "ETH", &i.destination, i.amount, now);
                prop_assert_eq!(rec.at_ms, eff);
                prop_assert!(rec.at_ms >= high, "recorded times never go back");
                high = rec.at_ms;
                allowed.push((rec.at_ms, *amount, *d));
            }
            Err(e) => {
                // Everything recorded within window + one bucket before the effective time.
                let recent = |w: u64, dest: Option<usize>| {
                    exact(&allowed, |a| {
                        a.0 + w + BUCKET_MS > eff && dest.is_none_or(|d| a.2 == d)
                    })
                };
                let over = |used: Option<u128>, max: u128| {
                    used.and_then(|u| u.checked_add(*amount))
                        .is_none_or(|t| t > max)
                };
                if e.rule == vtag(Scope::Asset, "amount", lim.window) {
                    let max = lim.max_amount.unwrap();
                    if e.permanent {
                        prop_assert!(*amount > max, "{e}");
                    } else {
                        prop_assert!(*amount <= max, "{e}");
                        prop_assert!(over(recent(lim.window, None).0, max), "unjustified {e}");
                    }
                } else if e.rule == vtag(Scope::Asset, "count", lim.window) {
                    prop_assert!(!e.permanent);
                    prop_assert!(
                        recent(lim.window, None).1 >= lim.max_count.unwrap(),
                        "unjustified {e}"
                    );
                } else if let Some((w, max)) = lim
                    .dest
                    .filter(|(w, _)| e.rule == vtag(Scope::Destination, "amount", *w))
                {
                    if e.permanent {
                        prop_assert!(*amount > max, "{e}");
                    } else {
                        prop_assert!(*amount <= max, "{e}");
                        prop_assert!(over(recent(w, Some(*d)).0, max), "unjustified {e}");
                    }
                } else {
                    prop_assert!(false, "unexpected refusal {e:?}");
                }
            }
        }
    }
    // Every closed window [end - W, end], with end at an allowed debit (where a window's
    // total peaks), holds at most the limit.
    for &(end, _, d) in &allowed {
        let (sum, count) = exact(&allowed, |a| a.0 <= end && a.0 + lim.window >= end);
        if let Some(max) = lim.max_amount {
            prop_assert!(
                sum.is_some_and(|s| s <= max),
                "window ending {end}: {sum:?} > {max}"
            );
        }
        if let Some(max) = lim.max_count {
            prop_assert!(
                count <= max,
                "window ending {end}: {count} withdrawals > {max}"
            );
        }
        if let Some((w, max)) = lim.dest {
            let (sum, _) = exact(&allowed, |a| a.2 == d && a.0 <= end && a.0 + w >= end);
            prop_assert!(
                sum.is_some_and(|s| s <= max),
                "destination window ending {end}: {sum:?} > {max}"
            );
        }
    }
    Ok((allowed, ledger))
}

fn window() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![MIN, 2 * MIN, 5 * MIN, 30 * MIN, HOUR])
}

fn small_limits() -> impl Strategy<Value = Limits> {
    (
        window(),
        prop::option::weighted(0.8, 1u128..=1_000),
        prop::option::of(1u64..=6),
        prop::option::of((window(), 1u128..=600)),
    )
        .prop_filter("some asset limit", |(_, a, c, _)| {
            a.is_some() || c.is_some()
        })
        .prop_map(|(window, max_amount, max_count, dest)| Limits {
            window,
            max_amount,
            max_count,
            dest,
        })
}

/// Steps of (amount, time step in ms, destination): forward and backward, on the scale of
/// a bucket and of the longest window `w`, so that windows fill, slide and get revisited.
fn steps(max_amount: u128, w: u64) -> impl Strategy<Value = Vec<(u128, i64, usize)>> {
    let w = w as i64;
    prop::collection::vec(
        (
            1..=max_amount,
            prop_oneof![
                2 => 0..=w / 2,
                1 => -w / 2..=0,
                1 => -2 * w..=2 * w,
                1 => -90_000i64..=90_000,
                1 => Just(0i64),
            ],
            0usize..2,
        ),
        1..50,
    )
}

/// Limits, and steps whose amounts are mostly within the smallest amount limit (an eighth
/// of the range above it, refused for good).
fn limits_and_steps() -> impl Strategy<Value = (Limits, Vec<(u128, i64, usize)>)> {
    small_limits().prop_flat_map(|lim| {
        let cap = [lim.max_amount, lim.dest.map(|d| d.1)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(100);
        let w = lim.window.max(lim.dest.map_or(0, |d| d.0));
        let s = steps(cap + cap / 8 + 1, w);
        (Just(lim), s)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For any sequence of withdrawals and times (the clock going back and forth), the
    /// amount and count allowed in any window never exceed the limits, and every refusal is
    /// justified by what went out within the window + one bucket.
    #[test]
    fn allowed_debits_never_exceed_any_window((lim, steps) in limits_and_steps()) {
        let t = times(&steps);
        run_and_check(&lim, &steps, &t)?;
    }

    /// The same with amounts and limits near u128::MAX: exact sums of allowed debits never
    /// overflow and never exceed the limit.
    #[test]
    fn u128_sums_never_wrap(
        window in window(),
        max in prop_oneof![Just(u128::MAX), Just(u128::MAX - 1), u128::MAX / 2..=u128::MAX],
        steps in prop::collection::vec(
            (
                prop_oneof![Just(u128::MAX), 1..=u128::MAX, u128::MAX - 1_000..=u128::MAX, 1u128..=1_000, u128::MAX / 3..=u128::MAX / 2],
                -(HOUR as i64)..=2 * HOUR as i64,
                0usize..2,
            ),
            1..30,
        ),
    ) {
        let lim = Limits { window, max_amount: Some(max), max_count: None, dest: None };
        let t = times(&steps);
        let (allowed, ledger) = run_and_check(&lim, &steps, &t)?;
        // The ledger's own totals saturate instead of wrapping.
        let end = t.iter().copied().max().unwrap_or(T0);
        let (sum, count) = exact(&allowed, |_| true);
        let total = ledger.usage(&key(None), 7 * DAY, end);
        prop_assert_eq!(total.count, count);
        prop_assert_eq!(total.amount, sum.unwrap_or(u128::MAX));
    }

    /// A clock that steps back never allows more: at every step, the decision at the
    /// stepped-back time is the decision at the ledger's latest recorded time, and it is never
    /// more permissive than at the latest time requested so far; the whole run equals the run
    /// whose times are clamped to the recorded high-water time, to the last debit.
    #[test]
    fn a_clock_stepping_back_never_allows_more((lim, steps) in limits_and_steps()) {
        let doc = lim.doc();
        let t = times(&steps);
        let (allowed, ledger) = run_and_check(&lim, &steps, &t)?;

        // Pointwise, replaying the run.
        let mut replay = Ledger::new();
        let mut latest_requested = 0u64;
        for ((amount, _, d), &now) in steps.iter().zip(&t) {
            let i = eth(PROP_DESTS[*d], *amount);
            latest_requested = latest_requested.max(now);
            let got = check(&doc, &replay, &i, now);
            let at_high = check(&doc, &replay, &i, now.max(replay.high_water_ms()));
            prop_assert_eq!(&got, &at_high);
            if got.is_ok() {
                prop_assert!(check(&doc, &replay, &i, latest_requested).is_ok());
                replay.debit(Chain::Ethereum, "ETH", &i.destination, i.amount, now);
            }
        }
        prop_assert_eq!(&replay, &ledger);

        // The monotonic run: each time clamped to the latest debit recorded so far.
        let mut mono = Ledger::new();
        let mut high = 0u64;
        let mut mono_allowed = Vec::new();
        for ((amount, _, d), &now) in steps.iter().zip(&t) {
            let now = now.max(high);
            let i = eth(PROP_DESTS[*d], *amount);
            if check(&doc, &mono, &i, now).is_ok() {
                let rec = mono.debit(Chain::Ethereum, "ETH", &i.destination, i.amount, now);
                prop_assert_eq!(rec.at_ms, now, "clamped times are monotonic");
                high = now;
                mono_allowed.push((now, *amount, *d));
            }
        }
        prop_assert_eq!(&mono_allowed, &allowed);
        let total = |a: &Allowed| a.iter().map(|x| x.1).sum::<u128>();
        prop_assert!(total(&allowed) <= total(&mono_allowed));
    }

    /// A stored record with any one byte changed either fails to decode or decodes to a
    /// record that encodes back to exactly those bytes.
    #[test]
    fn decode_accepts_only_canonical_records(
        which in 0usize..8,
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        in_key in any::<bool>(),
    ) {
        let r = sample_records().swap_remove(which);
        let (mut k, mut v) = (r.key_bytes(), r.value_bytes());
        if in_key {
            let i = pos.index(k.len());
            k[i] = byte;
        } else {
            let i = pos.index(v.len());
            v[i] = byte;
        }
        if let Ok(d) = BucketRecord::decode(&k, &v) {
            prop_assert_eq!(d.key_bytes(), k);
            prop_assert_eq!(d.value_bytes(), v);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The ledger's window sums (running totals) equal a plain sum over every debit whose
    /// bucket overlaps the window, after any sequence of debits (now, or late at an earlier
    /// signing time, as notices are), clock steps back and forth, prunes and reloads, with
    /// amounts up to u128::MAX (saturating).
    #[test]
    fn window_sums_equal_a_plain_sum(
        steps in prop::collection::vec(
            (0u64..3 * 60 * MIN, 0usize..3, prop_oneof![1u128..1_000, Just(u128::MAX / 3), Just(u128::MAX)], any::<bool>(), any::<bool>(), prop::option::of(0u64..9 * 24 * HOUR)),
            1..60,
        ),
        window in prop::sample::select(vec![MIN, 5 * MIN, HOUR, 24 * HOUR, 7 * 24 * HOUR]),
    ) {
        let dests = ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"];
        let mut ledger = Ledger::new();
        let mut history: Vec<(u64, usize, u128)> = Vec::new();
        let mut now = 1_800_000_000_000u64;
        let mut records = std::collections::BTreeMap::new();
        for (dt, d, amount, back, prune, late) in steps {
            now = if back { now.saturating_sub(dt) } else { now + dt };
            let eff = ledger.effective_now(now);
            let debit = match late {
                // A notice of a withdrawal signed `ago` ms before now.
                Some(ago) => {
                    let at = now.saturating_sub(ago);
                    let debit = ledger.debit_at(Chain::Ethereum, "ETH", dests[d], Amount::new(amount).unwrap(), at, now);
                    prop_assert_eq!(debit.at_ms, eff, "the ledger's clock never moves back");
                    if at >= eff {
                        history.push((eff / BUCKET_MS, d, amount));
                    } else if at + doc::MAX_WINDOW_MS + BUCKET_MS >= eff {
                        history.push((at / BUCKET_MS, d, amount));
                    } else {
                        prop_assert!(debit.records.is_empty(), "older than every window");
                    }
                    debit
                }
                None => {
                    let debit = ledger.debit(Chain::Ethereum, "ETH", dests[d], Amount::new(amount).unwrap(), now);
                    history.push((debit.at_ms / BUCKET_MS, d, amount));
                    debit
                }
            };
            for r in debit.records {
                records.insert(r.key_bytes(), r);
            }
            if prune {
                for (key, bucket) in ledger.prune(now) {
                    let r = BucketRecord { key, bucket, usage: Usage::default() };
                    records.remove(&r.key_bytes());
                }
            }
            let eff = ledger.effective_now(now);
            let from = eff.saturating_sub(window) / BUCKET_MS;
            let reloaded = Ledger::load(ledger.high_water_ms(), records.values().cloned());
            for dest in [None, Some(0usize), Some(1), Some(2)] {
                let key = LedgerKey { chain: Chain::Ethereum, asset: "ETH".into(), destination: dest.map(|i| dests[i].to_string()) };
                let mut want = Usage::default();
                for (b, hd, a) in &history {
                    if *b >= from && dest.is_none_or(|x| x == *hd) {
                        want.amount = want.amount.saturating_add(*a);
                        want.count += 1;
                    }
                }
                prop_assert_eq!(ledger.usage(&key, window, now), want);
                prop_assert_eq!(reloaded.usage(&key, window, now), want);
            }
        }
    }
}
