//! Fixtures shared by the policy evaluation tests: addresses, times, documents, intents and ledger
//! helpers.

use quorate_core::{
    address::Chain,
    amount::Amount,
    identity::IdentitySecret,
    intent::WithdrawalIntent,
    policy::{
        doc::{self, window_label},
        eval::velocity_tag,
        evaluate,
        ledger::{BucketRecord, Debit},
        AssetRule, Ledger, LedgerKey, PolicyDoc, Scope, Usage, VelocityLimit, WhitelistEntry,
    },
    refusal::{Refusal, Rule, VelocityMeasure},
};
use rand::rngs::OsRng;

// EIP-55 test vectors: valid, checksummed Ethereum addresses.
pub(crate) const DEST: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
pub(crate) const DEST2: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
/// Whitelisted from [`LATER_FROM`] only.
pub(crate) const DEST_LATER: &str = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";
/// Not on the whitelist.
pub(crate) const UNLISTED: &str = "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb";

pub(crate) const MIN: u64 = 60_000;
pub(crate) const HOUR: u64 = 60 * MIN;
pub(crate) const DAY: u64 = 24 * HOUR;
/// A time in 2025, deliberately not on a bucket boundary.
pub(crate) const T0: u64 = 1_750_000_000_000;
pub(crate) const LATER_FROM: u64 = T0 + HOUR;
/// ETH per-withdrawal maximum in [`policy`].
pub(crate) const MAX_PER: u128 = 10_000;
/// ETH approval threshold in [`policy`]; two admin approvals are needed above it.
pub(crate) const THRESHOLD: u128 = 1_000;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

pub(crate) fn amt(v: u128) -> Amount {
    Amount::new(v).unwrap()
}

pub(crate) fn admins(n: usize) -> Vec<IdentitySecret> {
    (0..n)
        .map(|_| IdentitySecret::generate(&mut OsRng))
        .collect()
}

/// Sorts the lists the way the canonical form wants them and insists the document is valid.
pub(crate) fn valid(mut d: PolicyDoc) -> PolicyDoc {
    d.assets
        .sort_by(|a, b| (a.chain, &a.asset).cmp(&(b.chain, &b.asset)));
    d.whitelist
        .sort_by(|a, b| (a.chain, &a.address).cmp(&(b.chain, &b.address)));
    d.velocity.sort_by(|a, b| a.key().cmp(&b.key()));
    d.admins.sort();
    d.validate().unwrap();
    d
}

pub(crate) fn asset(
    chain: Chain,
    symbol: &str,
    enabled: bool,
    max: u128,
    threshold: u128,
    required: u16,
) -> AssetRule {
    AssetRule {
        chain,
        asset: symbol.into(),
        decimals: 18,
        enabled,
        max_per_withdrawal: amt(max),
        approval_threshold: amt(threshold),
        approvals_required: required,
        token: None,
    }
}

pub(crate) fn entry(address: &str, label: &str, active_from_ms: u64) -> WhitelistEntry {
    WhitelistEntry {
        chain: Chain::Ethereum,
        address: address.into(),
        label: label.into(),
        active_from_ms,
    }
}

/// Genesis policy: ETH on Ethereum (max [`MAX_PER`], 2 of 3 admin approvals above
/// [`THRESHOLD`]), USDC on Ethereum registered but disabled, POL on Polygon enabled; DEST and
/// DEST2 whitelisted on Ethereum from the start, DEST_LATER from [`LATER_FROM`].
pub(crate) fn policy(keys: &[IdentitySecret], velocity: Vec<VelocityLimit>) -> PolicyDoc {
    valid(PolicyDoc {
        format: doc::FORMAT,
        version: 1,
        prev_hash: doc::zero_hash(),
        assets: vec![
            asset(Chain::Ethereum, "ETH", true, MAX_PER, THRESHOLD, 2),
            asset(Chain::Ethereum, "USDC", false, MAX_PER, MAX_PER, 0),
            asset(Chain::Polygon, "POL", true, MAX_PER, MAX_PER, 0),
        ],
        whitelist: vec![
            entry(DEST, "cold wallet", 0),
            entry(DEST2, "market maker", 0),
            entry(DEST_LATER, "new partner", LATER_FROM),
        ],
        velocity,
        backend_keys: vec![],
        admins: keys.iter().map(|k| k.public().to_string()).collect(),
        admin_quorum: 2,
        timelock_ms: DAY,
        frozen: false,
        per_signer_budget: false,
        chains: Vec::new(),
        solana: None,
        retired_signers: Vec::new(),
    })
}

/// [`policy`] with fresh admins.
pub(crate) fn velocity_policy(velocity: Vec<VelocityLimit>) -> PolicyDoc {
    policy(&admins(3), velocity)
}

/// The same policy with ETH allowed up to `u128::MAX` per withdrawal and no approvals, so
/// that only velocity limits decide.
pub(crate) fn unbounded(mut d: PolicyDoc) -> PolicyDoc {
    for a in d.assets.iter_mut().filter(|a| a.asset == "ETH") {
        a.max_per_withdrawal = amt(u128::MAX);
        a.approval_threshold = amt(u128::MAX);
        a.approvals_required = 0;
    }
    valid(d)
}

pub(crate) fn limit(
    scope: Scope,
    window_ms: u64,
    max_amount: Option<u128>,
    max_count: Option<u64>,
) -> VelocityLimit {
    VelocityLimit {
        chain: Chain::Ethereum,
        asset: "ETH".into(),
        scope,
        window_ms,
        max_amount: max_amount.map(amt),
        max_count,
    }
}

pub(crate) fn intent(
    id: &str,
    chain: &str,
    symbol: &str,
    dest: &str,
    amount: u128,
) -> WithdrawalIntent {
    WithdrawalIntent::from_parts(
        id,
        chain,
        symbol,
        dest,
        &amount.to_string(),
        T0,
        T0 + HOUR,
        None,
    )
    .unwrap()
}

pub(crate) fn eth(dest: &str, amount: u128) -> WithdrawalIntent {
    intent("wd-1", "ethereum", "ETH", dest, amount)
}

pub(crate) fn debit(l: &mut Ledger, dest: &str, amount: u128, at: u64) -> Debit {
    l.debit(Chain::Ethereum, "ETH", dest, amt(amount), at)
}

pub(crate) fn ledger_with(debits: &[(&str, u128, u64)]) -> Ledger {
    let mut l = Ledger::new();
    for (dest, amount, at) in debits {
        debit(&mut l, dest, *amount, *at);
    }
    l
}

pub(crate) fn key(dest: Option<&str>) -> LedgerKey {
    LedgerKey {
        chain: Chain::Ethereum,
        asset: "ETH".into(),
        destination: dest.map(str::to_string),
    }
}

pub(crate) fn check(
    doc: &PolicyDoc,
    ledger: &Ledger,
    i: &WithdrawalIntent,
    now: u64,
) -> Result<(), Refusal> {
    evaluate(doc, ledger, i, &[], now)
}

#[track_caller]
pub(crate) fn assert_allowed(r: Result<(), Refusal>) {
    if let Err(e) = r {
        panic!("expected allowed, refused with {e:?}");
    }
}

#[track_caller]
pub(crate) fn assert_refused(r: Result<(), Refusal>, tag: impl std::fmt::Display, permanent: bool) {
    match r {
        Ok(()) => panic!("expected a refusal by {tag}, was allowed"),
        Err(e) => {
            assert_eq!(e.rule.to_string(), tag.to_string(), "{e}");
            assert_eq!(e.permanent, permanent, "permanence of {e}");
            assert!(!e.reason.is_empty(), "a refusal says why");
        }
    }
}

pub(crate) fn vtag(scope: Scope, what: &str, window_ms: u64) -> Rule {
    let measure = match what {
        "amount" => VelocityMeasure::Amount,
        "count" => VelocityMeasure::Count,
        _ => panic!("no velocity measure {what}"),
    };
    velocity_tag(scope, measure, &window_label(window_ms))
}

pub(crate) fn sample_records() -> Vec<BucketRecord> {
    let mut out = Vec::new();
    let mut l = Ledger::new();
    out.extend(debit(&mut l, DEST, 5, T0).records);
    out.extend(
        l.debit(
            Chain::Bitcoin,
            "BTC",
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
            amt(21_000_000),
            T0,
        )
        .records,
    );
    out.extend(
        l.debit(
            Chain::Solana,
            "SOL",
            "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
            amt(u128::MAX),
            T0 + DAY,
        )
        .records,
    );
    for (bucket, usage) in [
        (
            0,
            Usage {
                amount: 0,
                count: 0,
            },
        ),
        (
            u64::MAX,
            Usage {
                amount: u128::MAX,
                count: u64::MAX,
            },
        ),
    ] {
        out.push(BucketRecord {
            key: LedgerKey {
                chain: Chain::Tron,
                asset: "USDT".into(),
                destination: None,
            },
            bucket,
            usage,
        });
    }
    out
}
