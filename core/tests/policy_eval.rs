//! Policy evaluation and the velocity ledger of `quorate-core`: every rule tag `evaluate` can
//! produce (allowed and refused, permanent or temporary), limit boundaries to the base unit,
//! sliding windows to the bucket edge, scope independence, `u128` extremes, a clock that steps
//! back, the ledger's storage records, loading and pruning; then property tests over random
//! sequences of withdrawals and times.

use std::collections::BTreeSet;

use proptest::prelude::*;
use quorate_core::{
    address::Chain,
    amount::Amount,
    identity::IdentitySecret,
    intent::WithdrawalIntent,
    policy::{
        approve_withdrawal,
        doc::{self, window_label, MAX_WINDOW_MS},
        eval::evaluate_budget,
        eval::velocity_tag,
        evaluate,
        ledger::{BucketRecord, Debit, BUCKET_MS, RECORD_VERSION},
        AdminSignature, AssetRule, Ledger, LedgerKey, PolicyDoc, Scope, Usage, VelocityLimit,
        WhitelistEntry,
    },
    refusal::{rule, Refusal},
};
use rand::rngs::OsRng;

// EIP-55 test vectors: valid, checksummed Ethereum addresses.
const DEST: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
const DEST2: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
/// Whitelisted from [`LATER_FROM`] only.
const DEST_LATER: &str = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";
/// Not on the whitelist.
const UNLISTED: &str = "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb";

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;
/// A time in 2025, deliberately not on a bucket boundary.
const T0: u64 = 1_750_000_000_000;
const LATER_FROM: u64 = T0 + HOUR;
/// ETH per-withdrawal maximum in [`policy`].
const MAX_PER: u128 = 10_000;
/// ETH approval threshold in [`policy`]; two admin approvals are needed above it.
const THRESHOLD: u128 = 1_000;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn amt(v: u128) -> Amount {
    Amount::new(v).unwrap()
}

fn admins(n: usize) -> Vec<IdentitySecret> {
    (0..n)
        .map(|_| IdentitySecret::generate(&mut OsRng))
        .collect()
}

/// Sorts the lists the way the canonical form wants them and insists the document is valid.
fn valid(mut d: PolicyDoc) -> PolicyDoc {
    d.assets
        .sort_by(|a, b| (a.chain, &a.asset).cmp(&(b.chain, &b.asset)));
    d.whitelist
        .sort_by(|a, b| (a.chain, &a.address).cmp(&(b.chain, &b.address)));
    d.velocity.sort_by(|a, b| a.key().cmp(&b.key()));
    d.admins.sort();
    d.validate().unwrap();
    d
}

fn asset(
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

fn entry(address: &str, label: &str, active_from_ms: u64) -> WhitelistEntry {
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
fn policy(keys: &[IdentitySecret], velocity: Vec<VelocityLimit>) -> PolicyDoc {
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
fn velocity_policy(velocity: Vec<VelocityLimit>) -> PolicyDoc {
    policy(&admins(3), velocity)
}

/// The same policy with ETH allowed up to `u128::MAX` per withdrawal and no approvals, so
/// that only velocity limits decide.
fn unbounded(mut d: PolicyDoc) -> PolicyDoc {
    for a in d.assets.iter_mut().filter(|a| a.asset == "ETH") {
        a.max_per_withdrawal = amt(u128::MAX);
        a.approval_threshold = amt(u128::MAX);
        a.approvals_required = 0;
    }
    valid(d)
}

fn limit(
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

fn intent(id: &str, chain: &str, symbol: &str, dest: &str, amount: u128) -> WithdrawalIntent {
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

fn eth(dest: &str, amount: u128) -> WithdrawalIntent {
    intent("wd-1", "ethereum", "ETH", dest, amount)
}

fn debit(l: &mut Ledger, dest: &str, amount: u128, at: u64) -> Debit {
    l.debit(Chain::Ethereum, "ETH", dest, amt(amount), at)
}

fn ledger_with(debits: &[(&str, u128, u64)]) -> Ledger {
    let mut l = Ledger::new();
    for (dest, amount, at) in debits {
        debit(&mut l, dest, *amount, *at);
    }
    l
}

fn key(dest: Option<&str>) -> LedgerKey {
    LedgerKey {
        chain: Chain::Ethereum,
        asset: "ETH".into(),
        destination: dest.map(str::to_string),
    }
}

fn check(doc: &PolicyDoc, ledger: &Ledger, i: &WithdrawalIntent, now: u64) -> Result<(), Refusal> {
    evaluate(doc, ledger, i, &[], now)
}

#[track_caller]
fn assert_allowed(r: Result<(), Refusal>) {
    if let Err(e) = r {
        panic!("expected allowed, refused with {e:?}");
    }
}

#[track_caller]
fn assert_refused(r: Result<(), Refusal>, tag: &str, permanent: bool) {
    match r {
        Ok(()) => panic!("expected a refusal by {tag}, was allowed"),
        Err(e) => {
            assert_eq!(e.rule, tag, "{e}");
            assert_eq!(e.permanent, permanent, "permanence of {e}");
            assert!(!e.reason.is_empty(), "a refusal says why");
        }
    }
}

fn vtag(scope: Scope, what: &str, window_ms: u64) -> String {
    velocity_tag(scope, what, &window_label(window_ms))
}

// ---------------------------------------------------------------------------------------------
// Every rule tag: at least one allowed and one refused case
// ---------------------------------------------------------------------------------------------

struct Case {
    /// The rule the case exercises (allowed: the rule is in play but satisfied).
    rule: String,
    name: &'static str,
    doc: PolicyDoc,
    ledger: Ledger,
    intent: WithdrawalIntent,
    approvals: Vec<AdminSignature>,
    now: u64,
    /// `None`: allowed; `Some((tag, permanent))`: refused.
    want: Option<(String, bool)>,
}

fn case(rule: &str, name: &'static str, doc: &PolicyDoc, intent: WithdrawalIntent) -> Case {
    Case {
        rule: rule.to_string(),
        name,
        doc: doc.clone(),
        ledger: Ledger::new(),
        intent,
        approvals: vec![],
        now: T0,
        want: None,
    }
}

impl Case {
    fn refused(mut self, permanent: bool) -> Self {
        self.want = Some((self.rule.clone(), permanent));
        self
    }
    fn ledger(mut self, debits: &[(&str, u128, u64)]) -> Self {
        self.ledger = ledger_with(debits);
        self
    }
    fn approvals(mut self, a: Vec<AdminSignature>) -> Self {
        self.approvals = a;
        self
    }
    fn at(mut self, now: u64) -> Self {
        self.now = now;
        self
    }
}

#[test]
fn every_rule_tag_has_an_allowed_and_a_refused_case() {
    let keys = admins(3);
    let outsider = IdentitySecret::generate(&mut OsRng);
    let base = policy(&keys, vec![]);
    let frozen = valid(PolicyDoc {
        frozen: true,
        ..base.clone()
    });
    let usdc_on = {
        let mut d = base.clone();
        d.assets.iter_mut().for_each(|a| a.enabled = true);
        valid(d)
    };

    // Approvals are over one intent's digest.
    let big = eth(DEST, THRESHOLD + 1);
    let d = big.digest();
    let approve = |k: &IdentitySecret| approve_withdrawal(k, &d);
    let other_digest = intent("wd-other", "ethereum", "ETH", DEST, THRESHOLD + 1).digest();
    let relabelled = AdminSignature {
        admin: keys[2].public(),
        signature: approve(&keys[1]).signature,
    };
    let garbage = AdminSignature {
        admin: keys[1].public(),
        signature: vec![7; 64],
    };
    let max_intent = eth(DEST, MAX_PER);
    let max_ok = vec![
        approve_withdrawal(&keys[0], &max_intent.digest()),
        approve_withdrawal(&keys[1], &max_intent.digest()),
    ];

    let before = T0 - 10 * MIN;
    let va = policy(&keys, vec![limit(Scope::Asset, HOUR, Some(500), None)]);
    let vc = policy(&keys, vec![limit(Scope::Asset, HOUR, None, Some(2))]);
    let vc0 = policy(&keys, vec![limit(Scope::Asset, HOUR, None, Some(0))]);
    let vda = policy(&keys, vec![limit(Scope::Destination, DAY, Some(500), None)]);
    let vdc = policy(
        &keys,
        vec![limit(Scope::Destination, 30 * MIN, None, Some(1))],
    );
    let vdc0 = policy(
        &keys,
        vec![limit(Scope::Destination, 30 * MIN, None, Some(0))],
    );
    let asset_amount = vtag(Scope::Asset, "amount", HOUR);
    let asset_count = vtag(Scope::Asset, "count", HOUR);
    let dest_amount = vtag(Scope::Destination, "amount", DAY);
    let dest_count = vtag(Scope::Destination, "count", 30 * MIN);

    use rule::*;
    let cases = vec![
        // Freeze.
        case(POLICY_FROZEN, "not frozen", &base, eth(DEST, 1)),
        case(POLICY_FROZEN, "frozen", &frozen, eth(DEST, 1)).refused(false),
        case(
            POLICY_FROZEN,
            "frozen wins over every other rule",
            &frozen,
            intent("wd-1", "ethereum", "DAI", UNLISTED, u128::MAX),
        )
        .refused(false),
        // Asset registry.
        case(
            POLICY_ASSET_UNKNOWN,
            "registered asset",
            &base,
            eth(DEST, 1),
        ),
        case(
            POLICY_ASSET_UNKNOWN,
            "unregistered symbol",
            &base,
            intent("wd-1", "ethereum", "DAI", DEST, 1),
        )
        .refused(true),
        case(
            POLICY_ASSET_UNKNOWN,
            "registered symbol on another chain",
            &base,
            intent("wd-1", "polygon", "ETH", DEST, 1),
        )
        .refused(true),
        case(
            POLICY_ASSET_DISABLED,
            "enabled asset",
            &usdc_on,
            intent("wd-1", "ethereum", "USDC", DEST, 1),
        ),
        case(
            POLICY_ASSET_DISABLED,
            "disabled asset",
            &base,
            intent("wd-1", "ethereum", "USDC", DEST, 1),
        )
        .refused(true),
        // Per-withdrawal maximum.
        case(
            POLICY_AMOUNT_MAX,
            "exactly the maximum",
            &base,
            max_intent.clone(),
        )
        .approvals(max_ok.clone()),
        case(
            POLICY_AMOUNT_MAX,
            "one unit above the maximum, even approved",
            &base,
            eth(DEST, MAX_PER + 1),
        )
        .approvals(max_ok)
        .refused(true),
        case(POLICY_AMOUNT_MAX, "u128::MAX", &base, eth(DEST, u128::MAX)).refused(true),
        // Whitelist.
        case(
            POLICY_WHITELIST_DESTINATION,
            "whitelisted",
            &base,
            eth(DEST, 1),
        ),
        case(
            POLICY_WHITELIST_DESTINATION,
            "whitelisted, written in lower case",
            &base,
            eth(&DEST.to_ascii_lowercase(), 1),
        ),
        case(
            POLICY_WHITELIST_DESTINATION,
            "not whitelisted",
            &base,
            eth(UNLISTED, 1),
        )
        .refused(true),
        case(
            POLICY_WHITELIST_DESTINATION,
            "whitelisted on another chain only",
            &base,
            intent("wd-1", "polygon", "POL", DEST, 1),
        )
        .refused(true),
        case(
            POLICY_WHITELIST_NOT_YET_ACTIVE,
            "active from exactly now",
            &base,
            eth(DEST_LATER, 1),
        )
        .at(LATER_FROM),
        case(
            POLICY_WHITELIST_NOT_YET_ACTIVE,
            "one millisecond early",
            &base,
            eth(DEST_LATER, 1),
        )
        .at(LATER_FROM - 1)
        .refused(false),
        case(
            POLICY_WHITELIST_NOT_YET_ACTIVE,
            "clock behind the ledger, which is past active-from",
            &base,
            eth(DEST_LATER, 1),
        )
        .ledger(&[(DEST, 1, LATER_FROM + 1)])
        .at(T0),
        // Admin approvals above the threshold.
        case(
            POLICY_APPROVAL_REQUIRED,
            "exactly the threshold needs none",
            &base,
            eth(DEST, THRESHOLD),
        ),
        case(
            POLICY_APPROVAL_REQUIRED,
            "threshold + 1 without approvals",
            &base,
            big.clone(),
        )
        .refused(false),
        case(
            POLICY_APPROVAL_REQUIRED,
            "k - 1 approvals",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[0])])
        .refused(false),
        case(
            POLICY_APPROVAL_REQUIRED,
            "the same admin twice counts once",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[0]), approve(&keys[0])])
        .refused(false),
        case(
            POLICY_APPROVAL_REQUIRED,
            "a non-admin's approval does not count",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[0]), approve(&outsider)])
        .refused(false),
        case(
            POLICY_APPROVAL_REQUIRED,
            "an approval of another withdrawal does not count",
            &base,
            big.clone(),
        )
        .approvals(vec![
            approve(&keys[0]),
            approve_withdrawal(&keys[1], &other_digest),
        ])
        .refused(false),
        case(
            POLICY_APPROVAL_REQUIRED,
            "one admin's signature presented as another's does not count",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[0]), relabelled])
        .refused(false),
        case(
            POLICY_APPROVAL_REQUIRED,
            "garbage signature bytes do not count",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[0]), garbage.clone()])
        .refused(false),
        case(
            POLICY_APPROVAL_REQUIRED,
            "exactly k distinct admins",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[2]), approve(&keys[0])]),
        case(
            POLICY_APPROVAL_REQUIRED,
            "every admin, plus junk",
            &base,
            big.clone(),
        )
        .approvals(vec![
            garbage,
            approve(&outsider),
            approve(&keys[0]),
            approve(&keys[1]),
            approve(&keys[2]),
        ]),
        // Velocity, asset scope, amount.
        case(
            &asset_amount,
            "usage + amount == limit",
            &va,
            eth(DEST, 100),
        )
        .ledger(&[(DEST, 300, before), (DEST2, 100, before)]),
        case(
            &asset_amount,
            "one unit over the limit",
            &va,
            eth(DEST, 101),
        )
        .ledger(&[(DEST, 300, before), (DEST2, 100, before)])
        .refused(false),
        case(
            &asset_amount,
            "alone above the window's limit",
            &va,
            eth(DEST, 501),
        )
        .refused(true),
        // Velocity, asset scope, count.
        case(&asset_count, "one of two used", &vc, eth(DEST, 1)).ledger(&[(DEST2, 1, before)]),
        case(&asset_count, "two of two used", &vc, eth(DEST, 1))
            .ledger(&[(DEST, 1, before), (DEST2, 1, before)])
            .refused(false),
        case(&asset_count, "limit of zero", &vc0, eth(DEST, 1)).refused(true),
        // Velocity, destination scope, amount.
        case(
            &dest_amount,
            "this destination's usage + amount == limit",
            &vda,
            eth(DEST, 400),
        )
        .ledger(&[(DEST2, 400, before), (DEST, 100, before)]),
        case(
            &dest_amount,
            "this destination one unit over",
            &vda,
            eth(DEST2, 101),
        )
        .ledger(&[(DEST2, 400, before), (DEST, 100, before)])
        .refused(false),
        case(
            &dest_amount,
            "alone above the window's limit",
            &vda,
            eth(DEST, 501),
        )
        .refused(true),
        // Velocity, destination scope, count.
        case(&dest_count, "other destination used", &vdc, eth(DEST, 1))
            .ledger(&[(DEST2, 1, before)]),
        case(&dest_count, "this destination used", &vdc, eth(DEST2, 1))
            .ledger(&[(DEST2, 1, before)])
            .refused(false),
        case(&dest_count, "limit of zero", &vdc0, eth(DEST, 1)).refused(true),
    ];

    let mut failures = Vec::new();
    for c in &cases {
        let got = evaluate(&c.doc, &c.ledger, &c.intent, &c.approvals, c.now);
        let ok = match (&got, &c.want) {
            (Ok(()), None) => true,
            (Err(e), Some((tag, permanent))) => {
                e.rule == *tag && e.permanent == *permanent && !e.reason.is_empty()
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{} / {}: want {:?}, got {got:?}",
                c.rule, c.name, c.want
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );

    // The table covers every tag evaluate can produce, each both ways.
    let tags = [
        POLICY_FROZEN,
        POLICY_ASSET_UNKNOWN,
        POLICY_ASSET_DISABLED,
        POLICY_AMOUNT_MAX,
        POLICY_WHITELIST_DESTINATION,
        POLICY_WHITELIST_NOT_YET_ACTIVE,
        POLICY_APPROVAL_REQUIRED,
        asset_amount.as_str(),
        asset_count.as_str(),
        dest_amount.as_str(),
        dest_count.as_str(),
    ];
    for tag in tags {
        let allowed = cases.iter().any(|c| c.rule == tag && c.want.is_none());
        let refused = cases
            .iter()
            .any(|c| c.want.as_ref().is_some_and(|(t, _)| t == tag));
        assert!(
            allowed && refused,
            "{tag}: allowed case {allowed}, refused case {refused}"
        );
    }
    let used: BTreeSet<&str> = cases.iter().map(|c| c.rule.as_str()).collect();
    let all: BTreeSet<&str> = tags.into_iter().collect();
    assert_eq!(used, all, "no case names an unknown rule");
}

#[test]
fn velocity_tags_name_scope_measure_and_window() {
    assert_eq!(
        velocity_tag(Scope::Destination, "amount", "1h"),
        "policy-velocity-destination-amount-1h"
    );
    for (scope, window, tag) in [
        (Scope::Asset, MIN, "policy-velocity-asset-count-1m"),
        (Scope::Asset, 90 * MIN, "policy-velocity-asset-count-90m"),
        (Scope::Asset, DAY, "policy-velocity-asset-count-24h"),
        (
            Scope::Destination,
            2 * DAY,
            "policy-velocity-destination-count-2d",
        ),
        (
            Scope::Destination,
            7 * DAY,
            "policy-velocity-destination-count-7d",
        ),
    ] {
        assert!(tag.starts_with(rule::POLICY_VELOCITY_PREFIX));
        let doc = velocity_policy(vec![limit(scope, window, None, Some(0))]);
        assert_refused(check(&doc, &Ledger::new(), &eth(DEST, 1), T0), tag, true);
    }
    // With several limits, the one that is exceeded is named.
    let doc = velocity_policy(vec![
        limit(Scope::Asset, MIN, Some(100), Some(10)),
        limit(Scope::Asset, 7 * DAY, Some(1_000), Some(10)),
    ]);
    let l = ledger_with(&[(DEST, 100, T0 - 3 * DAY), (DEST, 850, T0 - 2 * DAY)]);
    assert_allowed(check(&doc, &l, &eth(DEST, 50), T0));
    assert_refused(
        check(&doc, &l, &eth(DEST, 51), T0),
        "policy-velocity-asset-amount-7d",
        false,
    );
    assert_refused(
        check(&doc, &l, &eth(DEST, 101), T0),
        "policy-velocity-asset-amount-1m",
        true,
    );
}

#[test]
fn rules_are_checked_in_the_documented_order() {
    let keys = admins(3);
    let doc = policy(&keys, vec![limit(Scope::Asset, HOUR, Some(1), Some(0))]);
    let none = Ledger::new();
    // Disabled before the maximum.
    assert_refused(
        check(
            &doc,
            &none,
            &intent("wd-1", "ethereum", "USDC", UNLISTED, u128::MAX),
            T0,
        ),
        rule::POLICY_ASSET_DISABLED,
        true,
    );
    // Maximum before the whitelist.
    assert_refused(
        check(&doc, &none, &eth(UNLISTED, MAX_PER + 1), T0),
        rule::POLICY_AMOUNT_MAX,
        true,
    );
    // Whitelist before approvals.
    assert_refused(
        check(&doc, &none, &eth(UNLISTED, MAX_PER), T0),
        rule::POLICY_WHITELIST_DESTINATION,
        true,
    );
    // Active-from before approvals.
    assert_refused(
        check(&doc, &none, &eth(DEST_LATER, MAX_PER), T0),
        rule::POLICY_WHITELIST_NOT_YET_ACTIVE,
        false,
    );
    // A withdrawal no window can ever hold is refused before approvals are asked for.
    assert_refused(
        check(&doc, &none, &eth(DEST, MAX_PER), T0),
        "policy-velocity-asset-amount-1h",
        true,
    );
    // Approvals before the velocity limits that free up: with room for the amount but not
    // for one more withdrawal, the missing approvals are named first.
    let roomy = policy(
        &keys,
        vec![limit(Scope::Asset, HOUR, Some(MAX_PER + 1), Some(1))],
    );
    let mut full = Ledger::new();
    full.debit(Chain::Ethereum, "ETH", DEST, Amount::new(1).unwrap(), T0);
    assert_refused(
        check(&roomy, &full, &eth(DEST, MAX_PER), T0),
        rule::POLICY_APPROVAL_REQUIRED,
        false,
    );
    // Approved, and then the window refuses, for now.
    let i = eth(DEST, MAX_PER);
    let ok: Vec<_> = keys[..2]
        .iter()
        .map(|k| approve_withdrawal(k, &i.digest()))
        .collect();
    assert_refused(
        evaluate(&roomy, &full, &i, &ok, T0),
        "policy-velocity-asset-count-1h",
        false,
    );
}

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
        &vtag(Scope::Destination, "count", 7 * DAY),
        false,
    );
    assert_allowed(check(&limited, &l, &eth(DEST2, 500), T0 + HOUR));
    assert_refused(
        check(&limited, &l, &eth(DEST2, 501), T0 + HOUR),
        &vtag(Scope::Asset, "amount", DAY),
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
        &vtag(Scope::Asset, "amount", w),
        false,
    );
    // Both debits age out together, measured from t.
    let free = (t / BUCKET_MS + 1) * BUCKET_MS + w;
    assert_refused(check(&doc, &l, &eth(DEST, 1), free - 1), &tag, false);
    assert_allowed(check(&doc, &l, &eth(DEST, 100), free));
}

// ---------------------------------------------------------------------------------------------
// Storage records, load, prune
// ---------------------------------------------------------------------------------------------

fn sample_records() -> Vec<BucketRecord> {
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

// ---------------------------------------------------------------------------------------------
// Per-signer budget
// ---------------------------------------------------------------------------------------------

fn release(l: &mut Ledger, amount: u128, at: u64) {
    l.debit_release(Chain::Ethereum, "ETH", DEST, amt(amount), at);
}

#[test]
fn the_per_signer_budget_counts_only_own_releases_against_a_share_of_the_limit() {
    let keys = admins(3);
    let mut doc = policy(&keys, vec![limit(Scope::Asset, DAY, Some(1_000), Some(20))]);
    // Off: the budget checks nothing (the shared limit is evaluate's business).
    let mut l = Ledger::new();
    release(&mut l, 900, T0);
    assert_eq!(evaluate_budget(&doc, &l, &eth(DEST, 100), 2, T0), Ok(()));

    doc.per_signer_budget = true;
    // 2-of-3: n − t + 1 = 2 honest signers may each release half of 1,000.
    let mut l = Ledger::new();
    release(&mut l, 400, T0);
    assert_eq!(evaluate_budget(&doc, &l, &eth(DEST, 100), 2, T0), Ok(()));
    let r = evaluate_budget(&doc, &l, &eth(DEST, 101), 2, T0).unwrap_err();
    assert_eq!(r.rule, "policy-velocity-signer-amount-24h", "{r}");
    assert!(!r.permanent, "a budget frees up with the window: {r}");
    // ...at a time it names, the first at which the same intent fits.
    let at = r.retry_at_ms.expect("a time");
    assert!(evaluate_budget(&doc, &l, &eth(DEST, 101), 2, at - 1).is_err());
    assert_eq!(evaluate_budget(&doc, &l, &eth(DEST, 101), 2, at), Ok(()));
    // More than the budget itself can never fit: permanent.
    let r = evaluate_budget(&doc, &Ledger::new(), &eth(DEST, 501), 2, T0).unwrap_err();
    assert!(r.permanent && r.retry_at_ms.is_none(), "{r:?}");
    // Volume announced by notices (signed by others) is not this signer's release.
    let mut l = Ledger::new();
    debit(&mut l, DEST, 900, T0);
    assert_eq!(evaluate_budget(&doc, &l, &eth(DEST, 500), 2, T0), Ok(()));
    // The window frees it up.
    let mut l = Ledger::new();
    release(&mut l, 500, T0);
    assert!(evaluate_budget(&doc, &l, &eth(DEST, 1), 2, T0 + HOUR).is_err());
    assert_eq!(
        evaluate_budget(&doc, &l, &eth(DEST, 1), 2, T0 + DAY + 2 * MIN),
        Ok(())
    );
    // Count: 20 per 24 h shared by 2 is 10 releases.
    let mut l = Ledger::new();
    for k in 0..10 {
        release(&mut l, 1, T0 + k);
    }
    let r = evaluate_budget(&doc, &l, &eth(DEST, 1), 2, T0).unwrap_err();
    assert_eq!(r.rule, "policy-velocity-signer-count-24h", "{r}");
    // 3-of-5: n − t + 1 = 3, so 333 each (rounded down: three budgets never exceed 1,000).
    let mut l = Ledger::new();
    release(&mut l, 333, T0);
    assert!(evaluate_budget(&doc, &l, &eth(DEST, 1), 3, T0).is_err());
}

#[test]
fn the_per_signer_budget_is_a_tightening_and_absent_from_the_canonical_form_when_off() {
    let keys = admins(3);
    let off = policy(&keys, vec![]);
    let text = String::from_utf8(off.encode()).unwrap();
    assert!(!text.contains("per_signer_budget"), "{text}");
    // Spelt out as false it is not canonical.
    let spelt = text.replacen(
        "\"frozen\":false",
        "\"frozen\":false,\"per_signer_budget\":false",
        1,
    );
    assert!(PolicyDoc::decode(spelt.as_bytes()).is_err());
    let mut on = off.clone();
    on.per_signer_budget = true;
    assert_eq!(PolicyDoc::decode(&on.encode()).unwrap(), on);
    let changes = quorate_core::policy::diff(&off, &on);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].effect, quorate_core::policy::Effect::Tightens);
    let back = quorate_core::policy::diff(&on, &off);
    assert_eq!(back[0].effect, quorate_core::policy::Effect::Loosens);
    // The TOML form carries it both ways.
    let form = quorate_core::policy::PolicyForm::from_doc(&on);
    assert!(form.to_toml().contains("per_signer_budget = true"));
}

// ---------------------------------------------------------------------------------------------
// Ledger notices count when the withdrawal was signed
// ---------------------------------------------------------------------------------------------

#[test]
fn a_late_notice_holds_a_window_only_as_long_as_the_withdrawal_itself() {
    use quorate_core::policy::ledger::notice_time;
    let keys = admins(3);
    let doc = policy(&keys, vec![limit(Scope::Asset, HOUR, None, Some(1))]);
    // Signed at T0, announced 50 minutes later (a replay after a reconnect).
    let mut late = Ledger::new();
    late.debit_at(Chain::Ethereum, "ETH", DEST, amt(5), T0, T0 + 50 * MIN);
    let mut at_arrival = Ledger::new();
    debit(&mut at_arrival, DEST, 5, T0 + 50 * MIN);
    // Both hold the hour while it lasts...
    assert!(check(&doc, &late, &eth(DEST, 1), T0 + 55 * MIN).is_err());
    // ...but counted when signed, the window frees up an hour (and a bucket) after signing,
    // not an hour after the notice arrived.
    assert_eq!(check(&doc, &late, &eth(DEST, 1), T0 + 62 * MIN), Ok(()));
    assert!(check(&doc, &at_arrival, &eth(DEST, 1), T0 + 62 * MIN).is_err());

    // The claimed time is held to the intent's own validity.
    let (created, expires) = (T0, T0 + 10 * MIN);
    assert_eq!(
        notice_time(created, expires, T0 + 3 * MIN, T0 + HOUR),
        T0 + 3 * MIN
    );
    assert_eq!(
        notice_time(created, expires, T0 - DAY, T0 + HOUR),
        created,
        "not before creation"
    );
    assert_eq!(
        notice_time(created, expires, T0 + DAY, T0 + HOUR),
        expires,
        "not after expiry"
    );
    assert_eq!(
        notice_time(created, expires, T0 + 9 * MIN, T0 + 5 * MIN),
        T0 + 5 * MIN,
        "not after now"
    );
    assert_eq!(
        notice_time(created, expires, 0, T0 + HOUR),
        expires,
        "unknown: as late as possible"
    );
    assert_eq!(notice_time(created, expires, 0, T0 + 2 * MIN), T0 + 2 * MIN);
}
