//! Policy evaluation at scale (issue 5's scale figures): the time of one `evaluate` with an
//! empty ledger and a one-entry whitelist, against a ledger holding N recorded withdrawals
//! (spread over the last 7 days and D destinations) and a whitelist of W entries, with
//! velocity limits on 1 h, 24 h and 7 d windows for the asset and 1 h and 24 h per destination.
//!
//! `cargo run --release -p quorate-core --example policy_scale -- [N] [W] [D] [--json]`
//! (defaults: 1,000,000 withdrawals, 100,000 whitelist entries, 1,000 destinations).

use std::time::Instant;

use quorate_core::{
    address::{eip55, Chain},
    amount::Amount,
    intent::WithdrawalIntent,
    policy::{
        doc::{zero_hash, AssetRule, VelocityLimit, WhitelistEntry, FORMAT},
        evaluate, Ledger, PolicyDoc, Scope,
    },
};

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

fn address(i: u64) -> String {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&i.to_be_bytes());
    b[19] = 0xaa;
    eip55(&b)
}

fn policy(whitelist: u64) -> PolicyDoc {
    let big = |n: u128| Amount::new(n).expect("in range");
    let mut entries: Vec<WhitelistEntry> = (0..whitelist)
        .map(|i| WhitelistEntry {
            chain: Chain::Ethereum,
            address: address(i),
            label: format!("destination {i}"),
            active_from_ms: 0,
        })
        .collect();
    entries.sort_by(|a, b| a.address.cmp(&b.address));
    let limit = |scope, window_ms| VelocityLimit {
        chain: Chain::Ethereum,
        asset: "ETH".into(),
        scope,
        window_ms,
        max_amount: Some(big(u128::MAX / 2)),
        max_count: Some(u64::MAX / 2),
    };
    PolicyDoc {
        format: FORMAT,
        version: 1,
        prev_hash: zero_hash(),
        assets: vec![AssetRule {
            chain: Chain::Ethereum,
            asset: "ETH".into(),
            decimals: 18,
            enabled: true,
            max_per_withdrawal: big(u128::MAX / 4),
            approval_threshold: big(u128::MAX / 4),
            approvals_required: 0,
            token: None,
        }],
        whitelist: entries,
        velocity: vec![
            limit(Scope::Asset, HOUR),
            limit(Scope::Asset, DAY),
            limit(Scope::Asset, 7 * DAY),
            limit(Scope::Destination, HOUR),
            limit(Scope::Destination, DAY),
        ],
        backend_keys: vec![],
        admins: vec![],
        admin_quorum: 1,
        timelock_ms: 0,
        frozen: false,
        per_signer_budget: false,
        chains: Vec::new(),
        solana: None,
        retired_signers: Vec::new(),
    }
}

/// Nanoseconds per evaluation, as the median of 9 rounds of `n` evaluations.
fn time(policy: &PolicyDoc, ledger: &Ledger, intent: &WithdrawalIntent, now: u64, n: u32) -> f64 {
    let mut rounds: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                evaluate(policy, ledger, intent, &[], now).expect("allowed");
            }
            start.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[4]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let nums: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let withdrawals = nums.first().copied().unwrap_or(1_000_000);
    let whitelist = nums.get(1).copied().unwrap_or(100_000).max(1);
    let destinations = nums.get(2).copied().unwrap_or(1_000).clamp(1, whitelist);
    let now = 1_800_000_000_000u64;
    let target = address(0);
    let intent = WithdrawalIntent::from_parts(
        "wd-scale",
        "ethereum",
        "ETH",
        &target,
        "1000",
        now,
        now + HOUR,
        None,
    )
    .expect("valid intent");

    let small = policy(1);
    let empty = Ledger::new();
    let t_empty = time(&small, &empty, &intent, now, 20_000);

    let large = policy(whitelist);
    let mut full = Ledger::new();
    let amount = Amount::new(1_000).expect("in range");
    let start = Instant::now();
    for i in 0..withdrawals {
        let at = now - 7 * DAY + i * (7 * DAY) / withdrawals.max(1);
        full.debit(
            Chain::Ethereum,
            "ETH",
            &address(i % destinations),
            amount,
            at,
        );
    }
    let load_s = start.elapsed().as_secs_f64();
    let t_full = time(&large, &full, &intent, now, 2_000);
    let ratio = t_full / t_empty;
    if json {
        println!(
            "{{\"withdrawals\":{withdrawals},\"whitelist\":{whitelist},\"destinations\":{destinations},\"buckets\":{},\"eval_ns_empty\":{t_empty:.0},\"eval_ns_loaded\":{t_full:.0},\"ratio\":{ratio:.2},\"load_s\":{load_s:.2}}}",
            full.bucket_count()
        );
    } else {
        println!("policy evaluation, median of 9 rounds");
        println!("  empty ledger, 1 whitelist entry:        {t_empty:>10.0} ns");
        println!(
            "  {withdrawals} withdrawals over 7 days to {destinations} destinations ({} buckets), {whitelist} whitelist entries: {t_full:>10.0} ns",
            full.bucket_count()
        );
        println!("  ratio {ratio:.2} (target: at most 2)");
    }
}
