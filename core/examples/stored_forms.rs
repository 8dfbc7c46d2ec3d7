//! The cost of an audit record's stored form (docs/storage.md): `Record::encode` and
//! `Record::decode` of the binary form against `to_json` and `from_json`, the form nodes
//! stored before, for a typical `share-released` record and a short `refused` one. Each figure
//! is the median of 9 rounds of N operations.
//!
//! `cargo run --release -p quorate-core --example stored_forms -- [N]` (default 200,000).

use std::{hint::black_box, time::Instant};

use quorate_core::audit::{kind, Chain, Event, Record};

fn records() -> Vec<(&'static str, Record)> {
    let released = Event::new(kind::SHARE_RELEASED)
        .with("withdrawal", "wd-0001")
        .with(
            "digest",
            "cd19eefc47caf64b9f51550ecede8f7ce0ccd246979f1b2580df2a99f14f4cbf",
        )
        .with("session", "3f9a0c6e21d4b7a8")
        .with("chain", "ethereum")
        .with("asset", "ETH")
        .with("destination", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
        .with("amount", "1000000000000000000")
        .with("policy_version", "3")
        .with("debit", "new");
    let refused = Event::new(kind::REFUSED)
        .with("request", "sign")
        .with("rule", "intent-expired")
        .with("withdrawal", "wd-0001");
    let chain = Chain::resume(None);
    vec![
        ("share-released", chain.prepare(1_700_000_000_000, released)),
        ("refused", chain.prepare(1_700_000_000_000, refused)),
    ]
}

/// Median nanoseconds per call of `f` over 9 rounds of `n` calls.
fn time(n: u32, mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[4]
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of operations"))
        .unwrap_or(200_000);
    println!("| record | form | bytes | encode | decode |");
    println!("|---|---|---|---|---|");
    for (name, r) in records() {
        let bin = r.encode();
        let json = r.to_json();
        let enc_bin = time(n, || drop(black_box(black_box(&r).encode())));
        let dec_bin = time(n, || drop(black_box(Record::decode(black_box(&bin)))));
        let enc_json = time(n, || drop(black_box(black_box(&r).to_json())));
        let dec_json = time(n, || {
            drop(black_box(Record::decode(black_box(json.as_bytes()))))
        });
        println!(
            "| `{name}` | binary | {} | {enc_bin:.0} ns | {dec_bin:.0} ns |",
            bin.len()
        );
        println!(
            "| `{name}` | JSON | {} | {enc_json:.0} ns | {dec_json:.0} ns |",
            json.len()
        );
    }
}
