//! The ledger's storage records, loading and pruning.

use std::collections::BTreeSet;

use quorate_core::{
    address::Chain,
    policy::{
        doc::MAX_WINDOW_MS,
        ledger::{BucketRecord, BUCKET_MS, RECORD_VERSION},
        Ledger,
    },
};

use super::common::*;

// ---------------------------------------------------------------------------------------------
// Storage records, load, prune
// ---------------------------------------------------------------------------------------------

#[test]
fn bucket_records_round_trip() {
    let records = sample_records();
    assert_eq!(records.len(), 8);
    for r in &records {
        let (k, v) = (r.key_bytes(), r.value_bytes());
        assert_eq!(v.len(), 25);
        assert_eq!(v[0], RECORD_VERSION);
        assert_eq!(BucketRecord::decode(&k, &v).as_ref(), Ok(r));
    }
    // A destination bucket and its asset bucket have different keys.
    assert_ne!(records[0].key_bytes(), records[1].key_bytes());
    // One key's buckets sort by time as bytes.
    let mut a = records[0].clone();
    let mut b = a.clone();
    a.bucket = 255;
    b.bucket = 256;
    assert!(a.key_bytes() < b.key_bytes());
}

#[test]
fn bucket_record_decode_refuses_truncated_and_garbage_input() {
    for r in sample_records() {
        let (k, v) = (r.key_bytes(), r.value_bytes());
        for n in 0..k.len() {
            assert!(
                BucketRecord::decode(&k[..n], &v).is_err(),
                "key cut to {n} of {r:?}"
            );
        }
        for n in 0..v.len() {
            assert!(
                BucketRecord::decode(&k, &v[..n]).is_err(),
                "value cut to {n}"
            );
        }
        let mut long = k.clone();
        long.push(0);
        assert!(
            BucketRecord::decode(&long, &v).is_err(),
            "trailing key byte"
        );
        let mut long = v.clone();
        long.push(0);
        assert!(
            BucketRecord::decode(&k, &long).is_err(),
            "trailing value byte"
        );
        for version in [0, RECORD_VERSION + 1, 0xff] {
            let mut bad = v.clone();
            bad[0] = version;
            assert!(BucketRecord::decode(&k, &bad).is_err(), "version {version}");
        }
        for code in [0, 7, 0xff] {
            let mut bad = k.clone();
            bad[0] = code;
            assert!(BucketRecord::decode(&bad, &v).is_err(), "chain code {code}");
        }
        // The destination flag is 0 or 1, and 0 comes with an empty destination.
        let flag = 2 + r.key.asset.len();
        for f in [2, 0x80, 0xff] {
            let mut bad = k.clone();
            bad[flag] = f;
            assert!(BucketRecord::decode(&bad, &v).is_err(), "flag {f} in {r:?}");
        }
        if r.key.destination.is_some() {
            let mut bad = k.clone();
            bad[flag] = 0;
            assert!(
                BucketRecord::decode(&bad, &v).is_err(),
                "a destination under an all-destinations key"
            );
        }
    }
    let mut bad_utf8 = sample_records()[0].key_bytes();
    bad_utf8[2] = 0xff;
    assert!(BucketRecord::decode(&bad_utf8, &sample_records()[0].value_bytes()).is_err());
    assert!(BucketRecord::decode(&[], &[]).is_err());
    assert!(BucketRecord::decode(b"garbage that is not a key", &[RECORD_VERSION; 25]).is_err());
}

#[test]
fn load_reproduces_the_ledger_from_its_records() {
    let mut l = Ledger::new();
    let mut stored = Vec::new();
    let mut at = T0;
    for n in 0..40u64 {
        at += [7_000, 45_000, 3 * MIN, 0, 20 * MIN][(n % 5) as usize];
        let dest = [DEST, DEST2, DEST_LATER][(n % 3) as usize];
        stored.extend(debit(&mut l, dest, u128::from(n) * 1_000 + 1, at).records);
    }
    // Through the storage bytes and back.
    let decoded: Vec<BucketRecord> = stored
        .iter()
        .map(|r| BucketRecord::decode(&r.key_bytes(), &r.value_bytes()).unwrap())
        .collect();
    assert_eq!(Ledger::load(l.high_water_ms(), decoded.clone()), l);

    // Without the persisted high-water time the clock still cannot go back past the newest
    // bucket, and every window reads the same.
    let loaded = Ledger::load(0, decoded);
    assert_eq!(loaded.high_water_ms(), at / BUCKET_MS * BUCKET_MS);
    assert_eq!(loaded.bucket_count(), l.bucket_count());
    for w in [MIN, 5 * MIN, HOUR, DAY, 7 * DAY] {
        for now in [at, at + 30 * MIN, at + DAY, at + 7 * DAY] {
            assert_eq!(loaded.totals(w, now), l.totals(w, now), "{w} {now}");
            for d in [None, Some(DEST), Some(DEST2)] {
                assert_eq!(loaded.usage(&key(d), w, now), l.usage(&key(d), w, now));
            }
        }
    }
    assert_eq!(l.usage(&key(None), 7 * DAY, at).count, 40);
}

#[test]
fn prune_drops_only_buckets_no_window_can_reach() {
    let now = T0 + 30 * DAY;
    let ages = [
        40 * DAY,
        MAX_WINDOW_MS + 10 * MIN,
        MAX_WINDOW_MS + 2 * MIN,
        MAX_WINDOW_MS + MIN + 1,
        MAX_WINDOW_MS + MIN,
        MAX_WINDOW_MS + MIN - 1,
        MAX_WINDOW_MS + 30_000,
        MAX_WINDOW_MS,
        MAX_WINDOW_MS - 1,
        MAX_WINDOW_MS - MIN,
        DAY,
        MIN,
        0,
    ];
    let mut l = Ledger::new();
    for age in ages {
        debit(&mut l, DEST, 1, now - age);
    }
    let before = l.clone();
    let oldest_kept = (now - MAX_WINDOW_MS - BUCKET_MS) / BUCKET_MS;
    let buckets: BTreeSet<u64> = ages.iter().map(|a| (now - a) / BUCKET_MS).collect();
    let expect_gone: BTreeSet<u64> = buckets
        .iter()
        .copied()
        .filter(|b| *b < oldest_kept)
        .collect();
    assert!(!expect_gone.is_empty() && expect_gone.len() < buckets.len());

    // A clock behind the ledger prunes as at the ledger's time.
    let mut back = l.clone();
    let gone = l.prune(now);
    assert_eq!(back.prune(now - 10 * DAY), gone);

    for (k, b) in &gone {
        assert!(k.chain == Chain::Ethereum && k.asset == "ETH");
        assert!(expect_gone.contains(b), "bucket {b} should have been kept");
        // Everything dropped ended more than one bucket before the longest window begins.
        assert!((b + 1) * BUCKET_MS + BUCKET_MS <= now - MAX_WINDOW_MS);
    }
    let gone_asset: BTreeSet<u64> = gone
        .iter()
        .filter(|(k, _)| k.destination.is_none())
        .map(|(_, b)| *b)
        .collect();
    let gone_dest: BTreeSet<u64> = gone
        .iter()
        .filter(|(k, _)| k.destination.is_some())
        .map(|(_, b)| *b)
        .collect();
    assert_eq!(gone_asset, expect_gone);
    assert_eq!(gone_dest, expect_gone);
    assert_eq!(l.bucket_count(), before.bucket_count() - gone.len());
    // No window anyone can configure sees a difference, now or later.
    for w in [MIN, HOUR, DAY, MAX_WINDOW_MS] {
        for t in [now, now + MIN, now + DAY] {
            assert_eq!(
                l.usage(&key(None), w, t),
                before.usage(&key(None), w, t),
                "{w} {t}"
            );
            assert_eq!(
                l.usage(&key(Some(DEST)), w, t),
                before.usage(&key(Some(DEST)), w, t)
            );
        }
    }
    // The bucket just before the cut-off is still there, but no 7-day window reaches it.
    assert!(buckets.contains(&oldest_kept));
    assert!(oldest_kept * BUCKET_MS + BUCKET_MS <= now - MAX_WINDOW_MS);
    // Pruning again removes nothing; a later prune removes the next bucket.
    assert!(l.prune(now).is_empty());
    let later = l.prune(now + BUCKET_MS);
    assert_eq!(later.len(), 2);
    assert!(later.iter().all(|(_, b)| *b == oldest_kept));
}
