//! The velocity ledger against its limits: boundaries, sliding windows, scopes, extremes, clock
//! steps.

use quorate_core::{
    address::Chain,
    policy::{ledger::BUCKET_MS, Ledger, LedgerKey, Scope, Usage},
};

use super::common::*;

// ---------------------------------------------------------------------------------------------
// Ledger and velocity limits
// ---------------------------------------------------------------------------------------------

#[test]
fn amount_limit_boundaries_to_the_base_unit() {
    const M: u128 = u128::MAX;
    // (limit, earlier debits in the window, amount, expected: None allowed / Some(permanent))
    let table: &[(u128, &[u128], u128, Option<bool>)] = &[
        (1, &[], 1, None),
        (1, &[], 2, Some(true)),
        (1, &[1], 1, Some(false)),
        (500, &[], 500, None),
        (500, &[], 501, Some(true)),
        (500, &[499], 1, None),
        (500, &[499], 2, Some(false)),
        (500, &[250, 249], 1, None),
        (500, &[250, 250], 1, Some(false)),
        (500, &[500], 500, Some(false)),
        // u128 extremes.
        (M, &[], M, None),
        (M - 1, &[], M, Some(true)),
        (M, &[M - 1], 1, None),
        (M, &[M - 1], 2, Some(false)),
        (M, &[M], 1, Some(false)),
        (M, &[1], M, Some(false)),
        (M, &[M / 2 + 1], M / 2, None),
        (M, &[M / 2 + 1], M / 2 + 1, Some(false)),
    ];
    for scope in [Scope::Asset, Scope::Destination] {
        for (max, used, amount, want) in table {
            let doc = unbounded(velocity_policy(vec![limit(scope, HOUR, Some(*max), None)]));
            let mut l = Ledger::new();
            for u in *used {
                debit(&mut l, DEST, *u, T0 - MIN);
            }
            let got = check(&doc, &l, &eth(DEST, *amount), T0);
            let ctx = format!("{scope:?} limit {max}, used {used:?}, amount {amount}: {got:?}");
            match want {
                None => assert!(got.is_ok(), "{ctx}"),
                Some(permanent) => {
                    let e = got.expect_err(&ctx);
                    assert_eq!(e.rule, vtag(scope, "amount", HOUR), "{ctx}");
                    assert_eq!(e.permanent, *permanent, "{ctx}");
                }
            }
        }
    }
}

/// A temporary velocity refusal says when to retry: exactly the first moment evaluation
/// allows the same intent again (nothing else counted meanwhile), for a count and an amount
/// limit; a permanent one says nothing.
#[test]
fn a_velocity_refusal_names_the_moment_it_frees_up() {
    let w = 10 * MIN;
    let start = T0 / BUCKET_MS * BUCKET_MS;
    let debits = [
        (DEST, 4, start),
        (DEST2, 3, start + 3 * MIN),
        (DEST, 2, start + 5 * MIN),
    ];
    for (velocity, amount) in [
        (limit(Scope::Asset, w, None, Some(3)), 1),
        (limit(Scope::Asset, w, Some(10), None), 5),
        (limit(Scope::Asset, w, Some(10), None), 8),
    ] {
        let doc = velocity_policy(vec![velocity]);
        let l = ledger_with(&debits);
        let now = start + 6 * MIN;
        let e = check(&doc, &l, &eth(DEST, amount), now).unwrap_err();
        assert!(!e.permanent, "{e}");
        let at = e
            .retry_at_ms
            .unwrap_or_else(|| panic!("no retry time: {e}"));
        assert!(at > now, "{e}");
        assert_refused(check(&doc, &l, &eth(DEST, amount), at - 1), &e.rule, false);
        assert_allowed(check(&doc, &l, &eth(DEST, amount), at));
    }
    // More than the limit itself: permanent, and no time to wait for.
    let doc = velocity_policy(vec![limit(Scope::Asset, w, Some(10), None)]);
    let e = check(&doc, &Ledger::new(), &eth(DEST, 11), start).unwrap_err();
    assert!(e.permanent && e.retry_at_ms.is_none(), "{e:?}");
}

#[test]
fn count_limit_boundaries_and_refill() {
    let w = 10 * MIN;
    let doc = velocity_policy(vec![limit(Scope::Asset, w, None, Some(3))]);
    let tag = vtag(Scope::Asset, "count", w);
    let start = T0 / BUCKET_MS * BUCKET_MS;
    let mut l = Ledger::new();
    for (n, at) in [start, start + MIN, start + 2 * MIN]
        .into_iter()
        .enumerate()
    {
        let dest = if n % 2 == 0 { DEST } else { DEST2 };
        assert_allowed(check(&doc, &l, &eth(dest, 1), at));
        debit(&mut l, dest, 1, at);
        assert_eq!(l.usage(&key(None), w, at).count, n as u64 + 1);
    }
    assert_refused(check(&doc, &l, &eth(DEST, 1), start + 2 * MIN), &tag, false);
    // Still refused while the first debit's bucket overlaps the window...
    assert_refused(
        check(&doc, &l, &eth(DEST, 1), start + w + BUCKET_MS - 1),
        &tag,
        false,
    );
    // ...and allowed once it has slid out.
    assert_allowed(check(&doc, &l, &eth(DEST, 1), start + w + BUCKET_MS));
    assert_eq!(l.usage(&key(None), w, start + w + BUCKET_MS).count, 2);
}

#[test]
fn a_debit_ages_out_after_the_window_plus_at_most_one_bucket() {
    let w = HOUR;
    let doc = velocity_policy(vec![limit(Scope::Asset, w, Some(100), None)]);
    let tag = vtag(Scope::Asset, "amount", w);
    let b0 = T0 / BUCKET_MS * BUCKET_MS;
    // Where in its bucket the debit falls decides how long past the window it still counts:
    // up to a whole bucket when it is the bucket's first millisecond, nothing at the last.
    for at in [b0, b0 + 1, b0 + BUCKET_MS / 2, b0 + BUCKET_MS - 1] {
        let l = ledger_with(&[(DEST, 100, at)]);
        let gone = (at / BUCKET_MS + 1) * BUCKET_MS + w;
        assert!(gone > at + w && gone <= at + w + BUCKET_MS);
        // Inside the exact window it always counts.
        for now in [at, at + 1, at + w / 2, at + w] {
            assert_eq!(
                l.usage(&key(None), w, now).amount,
                100,
                "debit at {at}, now {now}"
            );
            assert_refused(check(&doc, &l, &eth(DEST2, 1), now), &tag, false);
        }
        // The bucket still overlaps the window until `gone`.
        assert_eq!(l.usage(&key(Some(DEST)), w, gone - 1).amount, 100);
        assert_refused(check(&doc, &l, &eth(DEST2, 1), gone - 1), &tag, false);
        // Then it is gone, and never later than window + one bucket after the debit.
        assert_eq!(l.usage(&key(Some(DEST)), w, gone), Usage::default());
        assert_eq!(l.usage(&key(None), w, at + w + BUCKET_MS), Usage::default());
        assert_allowed(check(&doc, &l, &eth(DEST2, 100), gone));
    }
}

#[test]
fn windows_slide_over_several_debits() {
    let w = HOUR;
    let doc = velocity_policy(vec![limit(Scope::Asset, w, Some(100), None)]);
    let tag = vtag(Scope::Asset, "amount", w);
    let t = T0 / BUCKET_MS * BUCKET_MS;
    let mut l = Ledger::new();
    for (amount, at) in [(40, t), (30, t + 20 * MIN), (30, t + 40 * MIN)] {
        assert_allowed(check(&doc, &l, &eth(DEST, amount), at));
        debit(&mut l, DEST, amount, at);
    }
    assert_refused(check(&doc, &l, &eth(DEST, 1), t + 50 * MIN), &tag, false);
    // The 40 at t leaves once its bucket no longer overlaps the window.
    assert_refused(check(&doc, &l, &eth(DEST, 1), t + w + MIN - 1), &tag, false);
    let now = t + w + MIN;
    assert_eq!(
        l.usage(&key(None), w, now),
        Usage {
            amount: 60,
            count: 2
        }
    );
    assert_allowed(check(&doc, &l, &eth(DEST, 40), now));
    assert_refused(check(&doc, &l, &eth(DEST, 41), now), &tag, false);
    debit(&mut l, DEST, 40, now);
    // Then the 30 at t + 20 min leaves.
    let now = t + 20 * MIN + w + MIN;
    assert_eq!(
        l.usage(&key(None), w, now),
        Usage {
            amount: 70,
            count: 2
        }
    );
    assert_allowed(check(&doc, &l, &eth(DEST, 30), now));
    assert_refused(check(&doc, &l, &eth(DEST, 31), now), &tag, false);
    // Windows of different lengths over the same ledger.
    assert_eq!(
        l.usage(&key(None), 7 * DAY, now),
        Usage {
            amount: 140,
            count: 4
        }
    );
    assert_eq!(l.usage(&key(None), MIN, now), Usage::default());
}

#[test]
fn asset_and_destination_scopes_count_independently() {
    let w = HOUR;
    let doc = velocity_policy(vec![
        limit(Scope::Asset, w, Some(700), None),
        limit(Scope::Destination, w, Some(300), None),
    ]);
    let asset_tag = vtag(Scope::Asset, "amount", w);
    let dest_tag = vtag(Scope::Destination, "amount", w);
    let now = LATER_FROM + MIN;
    let l = ledger_with(&[(DEST, 300, now - MIN), (DEST2, 300, now - MIN)]);
    assert_eq!(
        l.usage(&key(None), w, now),
        Usage {
            amount: 600,
            count: 2
        }
    );
    assert_eq!(
        l.usage(&key(Some(DEST)), w, now),
        Usage {
            amount: 300,
            count: 1
        }
    );
    assert_eq!(l.usage(&key(Some(DEST_LATER)), w, now), Usage::default());
    // DEST's own limit is used up; the asset still has 100 left.
    assert_refused(check(&doc, &l, &eth(DEST, 1), now), &dest_tag, false);
    assert_refused(check(&doc, &l, &eth(DEST2, 1), now), &dest_tag, false);
    // A third destination has its own 300, but the asset only 100 more.
    assert_allowed(check(&doc, &l, &eth(DEST_LATER, 100), now));
    assert_refused(
        check(&doc, &l, &eth(DEST_LATER, 101), now),
        &asset_tag,
        false,
    );

    // Other assets and chains keep their own counters.
    let mut l = l;
    l.debit(Chain::Ethereum, "USDC", DEST, amt(5), now);
    l.debit(Chain::Polygon, "POL", DEST, amt(7), now);
    assert_eq!(
        l.usage(&key(None), w, now),
        Usage {
            amount: 600,
            count: 2
        }
    );
    let usdc = LedgerKey {
        chain: Chain::Ethereum,
        asset: "USDC".into(),
        destination: None,
    };
    assert_eq!(
        l.usage(&usdc, w, now),
        Usage {
            amount: 5,
            count: 1
        }
    );
    let pol_eth = LedgerKey {
        chain: Chain::Polygon,
        asset: "ETH".into(),
        destination: Some(DEST.into()),
    };
    assert_eq!(l.usage(&pol_eth, w, now), Usage::default());
    let totals = l.totals(w, now);
    assert_eq!(
        totals.len(),
        7,
        "ETH + 2 destinations, USDC + 1, POL + 1: {totals:?}"
    );
}

#[test]
fn counters_survive_policy_changes() {
    // Debits recorded while no limit applied count against a limit added later.
    let unlimited = velocity_policy(vec![]);
    let mut l = Ledger::new();
    for n in 0..5 {
        assert_allowed(check(&unlimited, &l, &eth(DEST, 200), T0 + n));
        debit(&mut l, DEST, 200, T0 + n);
    }
    let limited = velocity_policy(vec![
        limit(Scope::Asset, DAY, Some(1_500), None),
        limit(Scope::Destination, 7 * DAY, None, Some(5)),
    ]);
    assert_refused(
        check(&limited, &l, &eth(DEST, 1), T0 + HOUR),
        vtag(Scope::Destination, "count", 7 * DAY),
        false,
    );
    assert_allowed(check(&limited, &l, &eth(DEST2, 500), T0 + HOUR));
    assert_refused(
        check(&limited, &l, &eth(DEST2, 501), T0 + HOUR),
        vtag(Scope::Asset, "amount", DAY),
        false,
    );
}

#[test]
fn sums_at_u128_max_saturate_and_refuse() {
    let mut l = Ledger::new();
    let d1 = debit(&mut l, DEST, u128::MAX, T0);
    let d2 = debit(&mut l, DEST, u128::MAX, T0);
    assert_eq!(
        d1.records[0].usage,
        Usage {
            amount: u128::MAX,
            count: 1
        }
    );
    // The second debit saturates, it does not wrap to MAX - 1.
    for r in &d2.records {
        assert_eq!(
            r.usage,
            Usage {
                amount: u128::MAX,
                count: 2
            }
        );
        assert_eq!(&r.value_bytes()[1..17], &[0xff; 16]);
    }
    debit(&mut l, DEST2, 1, T0 + 2 * BUCKET_MS);
    assert_eq!(
        l.usage(&key(None), HOUR, T0 + 2 * BUCKET_MS),
        Usage {
            amount: u128::MAX,
            count: 3
        }
    );

    // A limit of u128::MAX is a real limit: nothing fits on top of u128::MAX.
    let doc = unbounded(velocity_policy(vec![limit(
        Scope::Asset,
        HOUR,
        Some(u128::MAX),
        None,
    )]));
    let tag = vtag(Scope::Asset, "amount", HOUR);
    let mut l = Ledger::new();
    assert_allowed(check(&doc, &l, &eth(DEST, u128::MAX), T0));
    debit(&mut l, DEST, u128::MAX, T0);
    assert_refused(check(&doc, &l, &eth(DEST, 1), T0), &tag, false);
    assert_refused(check(&doc, &l, &eth(DEST2, u128::MAX), T0), &tag, false);
    assert_allowed(check(&doc, &l, &eth(DEST, 1), T0 + HOUR + BUCKET_MS));
}

#[test]
fn a_clock_stepping_back_behaves_as_the_latest_recorded_time() {
    let w = HOUR;
    let doc = velocity_policy(vec![limit(Scope::Asset, w, Some(100), Some(2))]);
    let tag = vtag(Scope::Asset, "amount", w);
    let t = LATER_FROM + 10 * MIN;
    let mut l = Ledger::new();
    // An older debit, out of the window at t but inside the window at t - 1h.
    debit(&mut l, DEST, 30, t - 90 * MIN);
    assert_eq!(debit(&mut l, DEST, 60, t).at_ms, t);
    assert_eq!(l.high_water_ms(), t);
    let back = t - HOUR;
    assert_eq!(l.effective_now(back), t);
    // At the raw earlier time the window would be [t - 2h, t - 1h]: the debit at t would not
    // count and the one at t - 90 min would. Both readings are the window ending at t.
    assert_eq!(l.usage(&key(None), w, back), l.usage(&key(None), w, t));
    assert_eq!(
        l.usage(&key(None), w, back),
        Usage {
            amount: 60,
            count: 1
        }
    );
    assert_eq!(
        check(&doc, &l, &eth(DEST, 41), back),
        check(&doc, &l, &eth(DEST, 41), t)
    );
    assert_refused(check(&doc, &l, &eth(DEST, 41), back), &tag, false);
    assert_allowed(check(&doc, &l, &eth(DEST, 40), back));
    // The destination became active before t: at the stepped-back time it stays active.
    assert!(back < LATER_FROM);
    assert_allowed(check(&doc, &l, &eth(DEST_LATER, 40), back));
    // A debit at the earlier time is recorded at t, in t's bucket.
    let d = debit(&mut l, DEST_LATER, 40, back);
    assert_eq!(d.at_ms, t);
    assert!(d.records.iter().all(|r| r.bucket == t / BUCKET_MS));
    assert_eq!(l.high_water_ms(), t);
    assert_eq!(
        l.usage(&key(None), w, 0),
        Usage {
            amount: 100,
            count: 2
        }
    );
    assert_refused(
        check(&doc, &l, &eth(DEST, 1), 0),
        vtag(Scope::Asset, "amount", w),
        false,
    );
    // Both debits age out together, measured from t.
    let free = (t / BUCKET_MS + 1) * BUCKET_MS + w;
    assert_refused(check(&doc, &l, &eth(DEST, 1), free - 1), &tag, false);
    assert_allowed(check(&doc, &l, &eth(DEST, 100), free));
}
