//! Every rule tag `evaluate` can produce: at least one allowed and one refused case, and their
//! order.

use std::collections::HashSet;

use quorate_core::{
    address::Chain,
    amount::Amount,
    identity::IdentitySecret,
    intent::WithdrawalIntent,
    policy::{
        approve_withdrawal, eval::velocity_tag, evaluate, AdminSignature, Ledger, PolicyDoc, Scope,
    },
    refusal::{Rule, VelocityMeasure},
};
use rand::rngs::OsRng;

use super::common::*;

// ---------------------------------------------------------------------------------------------
// Every rule tag: at least one allowed and one refused case
// ---------------------------------------------------------------------------------------------

struct Case {
    /// The rule the case exercises (allowed: the rule is in play but satisfied).
    rule: Rule,
    name: &'static str,
    doc: PolicyDoc,
    ledger: Ledger,
    intent: WithdrawalIntent,
    approvals: Vec<AdminSignature>,
    now: u64,
    /// `None`: allowed; `Some((tag, permanent))`: refused.
    want: Option<(Rule, bool)>,
}

fn case(rule: Rule, name: &'static str, doc: &PolicyDoc, intent: WithdrawalIntent) -> Case {
    Case {
        rule,
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

    let cases = vec![
        // Freeze.
        case(Rule::PolicyFrozen, "not frozen", &base, eth(DEST, 1)),
        case(Rule::PolicyFrozen, "frozen", &frozen, eth(DEST, 1)).refused(false),
        case(
            Rule::PolicyFrozen,
            "frozen wins over every other rule",
            &frozen,
            intent("wd-1", "ethereum", "DAI", UNLISTED, u128::MAX),
        )
        .refused(false),
        // Asset registry.
        case(
            Rule::PolicyAssetUnknown,
            "registered asset",
            &base,
            eth(DEST, 1),
        ),
        case(
            Rule::PolicyAssetUnknown,
            "unregistered symbol",
            &base,
            intent("wd-1", "ethereum", "DAI", DEST, 1),
        )
        .refused(true),
        case(
            Rule::PolicyAssetUnknown,
            "registered symbol on another chain",
            &base,
            intent("wd-1", "polygon", "ETH", DEST, 1),
        )
        .refused(true),
        case(
            Rule::PolicyAssetDisabled,
            "enabled asset",
            &usdc_on,
            intent("wd-1", "ethereum", "USDC", DEST, 1),
        ),
        case(
            Rule::PolicyAssetDisabled,
            "disabled asset",
            &base,
            intent("wd-1", "ethereum", "USDC", DEST, 1),
        )
        .refused(true),
        // Per-withdrawal maximum.
        case(
            Rule::PolicyAmountMax,
            "exactly the maximum",
            &base,
            max_intent.clone(),
        )
        .approvals(max_ok.clone()),
        case(
            Rule::PolicyAmountMax,
            "one unit above the maximum, even approved",
            &base,
            eth(DEST, MAX_PER + 1),
        )
        .approvals(max_ok)
        .refused(true),
        case(
            Rule::PolicyAmountMax,
            "u128::MAX",
            &base,
            eth(DEST, u128::MAX),
        )
        .refused(true),
        // Whitelist.
        case(
            Rule::PolicyWhitelistDestination,
            "whitelisted",
            &base,
            eth(DEST, 1),
        ),
        case(
            Rule::PolicyWhitelistDestination,
            "whitelisted, written in lower case",
            &base,
            eth(&DEST.to_ascii_lowercase(), 1),
        ),
        case(
            Rule::PolicyWhitelistDestination,
            "not whitelisted",
            &base,
            eth(UNLISTED, 1),
        )
        .refused(true),
        case(
            Rule::PolicyWhitelistDestination,
            "whitelisted on another chain only",
            &base,
            intent("wd-1", "polygon", "POL", DEST, 1),
        )
        .refused(true),
        case(
            Rule::PolicyWhitelistNotYetActive,
            "active from exactly now",
            &base,
            eth(DEST_LATER, 1),
        )
        .at(LATER_FROM),
        case(
            Rule::PolicyWhitelistNotYetActive,
            "one millisecond early",
            &base,
            eth(DEST_LATER, 1),
        )
        .at(LATER_FROM - 1)
        .refused(false),
        case(
            Rule::PolicyWhitelistNotYetActive,
            "clock behind the ledger, which is past active-from",
            &base,
            eth(DEST_LATER, 1),
        )
        .ledger(&[(DEST, 1, LATER_FROM + 1)])
        .at(T0),
        // Admin approvals above the threshold.
        case(
            Rule::PolicyApprovalRequired,
            "exactly the threshold needs none",
            &base,
            eth(DEST, THRESHOLD),
        ),
        case(
            Rule::PolicyApprovalRequired,
            "threshold + 1 without approvals",
            &base,
            big.clone(),
        )
        .refused(false),
        case(
            Rule::PolicyApprovalRequired,
            "k - 1 approvals",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[0])])
        .refused(false),
        case(
            Rule::PolicyApprovalRequired,
            "the same admin twice counts once",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[0]), approve(&keys[0])])
        .refused(false),
        case(
            Rule::PolicyApprovalRequired,
            "a non-admin's approval does not count",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[0]), approve(&outsider)])
        .refused(false),
        case(
            Rule::PolicyApprovalRequired,
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
            Rule::PolicyApprovalRequired,
            "one admin's signature presented as another's does not count",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[0]), relabelled])
        .refused(false),
        case(
            Rule::PolicyApprovalRequired,
            "garbage signature bytes do not count",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[0]), garbage.clone()])
        .refused(false),
        case(
            Rule::PolicyApprovalRequired,
            "exactly k distinct admins",
            &base,
            big.clone(),
        )
        .approvals(vec![approve(&keys[2]), approve(&keys[0])]),
        case(
            Rule::PolicyApprovalRequired,
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
            asset_amount.clone(),
            "usage + amount == limit",
            &va,
            eth(DEST, 100),
        )
        .ledger(&[(DEST, 300, before), (DEST2, 100, before)]),
        case(
            asset_amount.clone(),
            "one unit over the limit",
            &va,
            eth(DEST, 101),
        )
        .ledger(&[(DEST, 300, before), (DEST2, 100, before)])
        .refused(false),
        case(
            asset_amount.clone(),
            "alone above the window's limit",
            &va,
            eth(DEST, 501),
        )
        .refused(true),
        // Velocity, asset scope, count.
        case(asset_count.clone(), "one of two used", &vc, eth(DEST, 1))
            .ledger(&[(DEST2, 1, before)]),
        case(asset_count.clone(), "two of two used", &vc, eth(DEST, 1))
            .ledger(&[(DEST, 1, before), (DEST2, 1, before)])
            .refused(false),
        case(asset_count.clone(), "limit of zero", &vc0, eth(DEST, 1)).refused(true),
        // Velocity, destination scope, amount.
        case(
            dest_amount.clone(),
            "this destination's usage + amount == limit",
            &vda,
            eth(DEST, 400),
        )
        .ledger(&[(DEST2, 400, before), (DEST, 100, before)]),
        case(
            dest_amount.clone(),
            "this destination one unit over",
            &vda,
            eth(DEST2, 101),
        )
        .ledger(&[(DEST2, 400, before), (DEST, 100, before)])
        .refused(false),
        case(
            dest_amount.clone(),
            "alone above the window's limit",
            &vda,
            eth(DEST, 501),
        )
        .refused(true),
        // Velocity, destination scope, count.
        case(
            dest_count.clone(),
            "other destination used",
            &vdc,
            eth(DEST, 1),
        )
        .ledger(&[(DEST2, 1, before)]),
        case(
            dest_count.clone(),
            "this destination used",
            &vdc,
            eth(DEST2, 1),
        )
        .ledger(&[(DEST2, 1, before)])
        .refused(false),
        case(dest_count.clone(), "limit of zero", &vdc0, eth(DEST, 1)).refused(true),
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
        Rule::PolicyFrozen,
        Rule::PolicyAssetUnknown,
        Rule::PolicyAssetDisabled,
        Rule::PolicyAmountMax,
        Rule::PolicyWhitelistDestination,
        Rule::PolicyWhitelistNotYetActive,
        Rule::PolicyApprovalRequired,
        asset_amount.clone(),
        asset_count.clone(),
        dest_amount.clone(),
        dest_count.clone(),
    ];
    for tag in &tags {
        let allowed = cases.iter().any(|c| c.rule == *tag && c.want.is_none());
        let refused = cases
            .iter()
            .any(|c| c.want.as_ref().is_some_and(|(t, _)| t == tag));
        assert!(
            allowed && refused,
            "{tag}: allowed case {allowed}, refused case {refused}"
        );
    }
    let used: HashSet<&Rule> = cases.iter().map(|c| &c.rule).collect();
    let all: HashSet<&Rule> = tags.iter().collect();
    assert_eq!(used, all, "no case names an unknown rule");
}

#[test]
fn velocity_tags_name_scope_measure_and_window() {
    assert_eq!(
        velocity_tag(Scope::Destination, VelocityMeasure::Amount, "1h").as_str(),
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
        assert!(tag.starts_with(Rule::VELOCITY_PREFIX));
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
        Rule::PolicyAssetDisabled,
        true,
    );
    // Maximum before the whitelist.
    assert_refused(
        check(&doc, &none, &eth(UNLISTED, MAX_PER + 1), T0),
        Rule::PolicyAmountMax,
        true,
    );
    // Whitelist before approvals.
    assert_refused(
        check(&doc, &none, &eth(UNLISTED, MAX_PER), T0),
        Rule::PolicyWhitelistDestination,
        true,
    );
    // Active-from before approvals.
    assert_refused(
        check(&doc, &none, &eth(DEST_LATER, MAX_PER), T0),
        Rule::PolicyWhitelistNotYetActive,
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
        Rule::PolicyApprovalRequired,
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
