//! The TOML policy form (`policy/form.rs`): parsing, units, durations, times and round trips.

use k256::elliptic_curve::sec1::ToEncodedPoint;
use quorate_core::{
    address::Chain,
    amount::Amount,
    identity::IdentitySecret,
    policy::{
        doc::{zero_hash, FORMAT},
        form::{format_rfc3339, parse_duration, parse_rfc3339, parse_units},
        AssetRule, PolicyForm, Scope, VelocityLimit, WhitelistEntry,
    },
};
use rand::rngs::OsRng;

use super::common::*;

// ---------------------------------------------------------------------------------------------
// form.rs
// ---------------------------------------------------------------------------------------------

fn example_toml(admins: &[String], backend: &str) -> String {
    format!(
        r#"
admin_quorum = 2
admins = [{admins}]
backend_keys = ["{backend}"]
timelock = "24h"

[[assets]]
chain = "ethereum"
asset = "USDC"
decimals = 6
enabled = false
max_per_withdrawal = "1000000"
approval_threshold = "250000.5"
approvals_required = 1

[[assets]]
chain = "ethereum"
asset = "ETH"
decimals = 18
max_per_withdrawal = "100"
approval_threshold = "0.25"
approvals_required = 2

[[whitelist]]
chain = "ethereum"
address = "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359"
label = "exchange B"
active_from = "2026-12-01T09:00:00Z"

[[whitelist]]
chain = "ethereum"
address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
label = "cold wallet"

[[velocity]]
chain = "ethereum"
asset = "ETH"
scope = "destination"
window = "10m"
max_count = 3

[[velocity]]
chain = "ethereum"
asset = "ETH"
scope = "asset"
window = "24h"
max_amount = "10"

[[velocity]]
chain = "ethereum"
asset = "ETH"
scope = "asset"
window = "7d"
max_amount = "40.5"
max_count = 500
"#,
        admins = admins
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[test]
fn form_parses_normalises_and_converts_units() {
    let admins = keys(3);
    // Unsorted and one in upper-case hex: both accepted and normalised.
    let mut admin_hex: Vec<String> = admins.iter().map(hex_pub).collect();
    admin_hex.sort();
    admin_hex.reverse();
    admin_hex[0] = admin_hex[0].to_uppercase();
    // The backend key uncompressed: accepted and written compressed.
    let backend = IdentitySecret::generate(&mut OsRng);
    let uncompressed = hex::encode(
        k256::PublicKey::from_sec1_bytes(backend.public().as_bytes())
            .unwrap()
            .to_encoded_point(false)
            .as_bytes(),
    );
    let form = PolicyForm::parse(&example_toml(&admin_hex, &uncompressed)).unwrap();
    assert_eq!(form.assets.len(), 2);
    assert!(form.assets[1].enabled, "enabled defaults to true");
    assert!(!form.frozen, "frozen defaults to false");
    let prev = "ab".repeat(32);
    let doc = form.to_doc(7, &prev).unwrap();
    assert_eq!(
        (doc.version, doc.prev_hash.as_str(), doc.format),
        (7, prev.as_str(), FORMAT)
    );
    doc.validate().unwrap();
    // Lists sorted; keys lower-case and compressed.
    let mut sorted: Vec<String> = admins.iter().map(hex_pub).collect();
    sorted.sort();
    assert_eq!(doc.admins, sorted);
    assert_eq!(doc.backend_keys, vec![hex_pub(&backend)]);
    assert_eq!(
        doc.assets
            .iter()
            .map(|a| a.asset.as_str())
            .collect::<Vec<_>>(),
        ["ETH", "USDC"]
    );
    // Addresses normalised to EIP-55 (lower-case input accepted) and sorted.
    assert_eq!(
        doc.whitelist
            .iter()
            .map(|w| w.address.as_str())
            .collect::<Vec<_>>(),
        [COLD, OTHER]
    );
    assert_eq!(
        doc.whitelist[0].active_from_ms, 0,
        "absent active_from means at once"
    );
    assert_eq!(doc.whitelist[1].active_from_ms, 1_796_115_600_000);
    // Whole units with the asset's decimals into base units.
    let eth = doc.asset(Chain::Ethereum, "ETH").unwrap();
    assert_eq!(eth.max_per_withdrawal.get(), 100 * ETH);
    assert_eq!(eth.approval_threshold.get(), ETH / 4);
    assert_eq!(eth.approvals_required, 2);
    let usdc = doc.asset(Chain::Ethereum, "USDC").unwrap();
    assert!(!usdc.enabled);
    assert_eq!(usdc.max_per_withdrawal.get(), 1_000_000_000_000);
    assert_eq!(usdc.approval_threshold.get(), 250_000_500_000);
    // Velocity: sorted by (asset, scope, window); durations in ms.
    let v: Vec<_> = doc
        .velocity
        .iter()
        .map(|v| {
            (
                v.scope,
                v.window_ms,
                v.max_amount.map(Amount::get),
                v.max_count,
            )
        })
        .collect();
    assert_eq!(
        v,
        [
            (Scope::Asset, DAY, Some(10 * ETH), None),
            (Scope::Asset, 7 * DAY, Some(40 * ETH + ETH / 2), Some(500)),
            (Scope::Destination, 600_000, None, Some(3)),
        ]
    );
    assert_eq!(doc.timelock_ms, DAY);
    assert!(!doc.frozen);
    // "10" ETH is exactly 10^19 base units.
    assert_eq!(v[0].2, Some(10u128.pow(19)));
}

#[test]
fn whole_units_parse_exactly_or_are_refused() {
    for (s, d, want) in [
        ("10", 18, 10u128.pow(19)),
        ("0.25", 18, 25 * 10u128.pow(16)),
        ("1.5", 8, 150_000_000),
        ("0.00000001", 8, 1),
        ("42", 0, 42),
        ("007", 2, 700),
        ("0", 18, 0),
        ("0.000", 6, 0),
        ("1.000000000000000000", 18, ETH),
        ("340282366920938463463374607431768211455", 0, u128::MAX),
    ] {
        assert_eq!(
            parse_units(s, d).unwrap_or_else(|e| panic!("{s}: {e}")),
            want,
            "{s}"
        );
    }
    for (s, d, why) in [
        ("0.1234567", 6, "more than 6 decimals"),
        ("1.5", 0, "more than 0 decimals"),
        ("0.0000000000000000001", 18, "more than 18 decimals"),
        ("1e3", 18, "write whole units as digits"),
        ("-1", 18, "write whole units as digits"),
        ("+1", 18, "write whole units as digits"),
        ("", 18, "write whole units as digits"),
        (".5", 18, "write whole units as digits"),
        ("1.", 18, "write whole units as digits"),
        ("1.2.3", 18, "write whole units as digits"),
        (" 1", 18, "write whole units as digits"),
        ("1 ", 18, "write whole units as digits"),
        ("1,000", 18, "write whole units as digits"),
        ("1_000", 18, "write whole units as digits"),
        ("0x10", 18, "write whole units as digits"),
        ("١", 0, "write whole units as digits"),
        (
            "340282366920938463463374607431768211456",
            0,
            "too large for 128 bits",
        ),
        ("340282366920938463464", 18, "too large for 128 bits"),
    ] {
        let e = parse_units(s, d).expect_err(s).to_string();
        assert!(e.contains(why) && e.contains(&format!("{s:?}")), "{s}: {e}");
    }
}

#[test]
fn durations_parse_with_units() {
    for (s, want) in [
        ("24h", DAY),
        ("10m", 600_000),
        ("7d", 7 * DAY),
        ("30s", 30_000),
        ("0s", 0),
        ("90m", 90 * 60_000),
        ("1h", H),
    ] {
        assert_eq!(parse_duration(s).unwrap(), want, "{s}");
    }
    for s in [
        "",
        "h",
        "24",
        "1.5h",
        "24H",
        "-1h",
        "+1h",
        " 24h",
        "24 h",
        "1w",
        "1ms",
        "h24",
        "99999999999999999999d",
        "300000000000000d",
    ] {
        let e = parse_duration(s).expect_err(s).to_string();
        assert!(e.contains("duration"), "{s}: {e}");
    }
}

#[test]
fn rfc3339_times_parse_format_and_round_trip() {
    for (s, ms) in [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-12-01T09:00:00Z", 1_796_115_600_000),
        ("2000-02-29T00:00:00Z", 951_782_400_000),
        ("2024-02-29T12:34:56Z", 1_709_210_096_000),
        ("2024-12-31T23:59:59Z", 1_735_689_599_000),
        ("2100-03-01T00:00:00Z", 4_107_542_400_000),
        ("2400-02-29T23:59:59Z", 13_574_649_599_000),
    ] {
        assert_eq!(parse_rfc3339(s).unwrap(), ms, "{s}");
        assert_eq!(format_rfc3339(ms), s);
        // Sub-second parts are dropped when formatting.
        assert_eq!(format_rfc3339(ms + 999), s);
    }
    for s in [
        "2023-02-29T00:00:00Z", // not a leap year
        "2100-02-29T00:00:00Z", // divisible by 100, not 400
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-01-32T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T23:60:00Z",
        "2026-12-31T23:59:60Z", // leap seconds are not accepted
        "1969-12-31T23:59:59Z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01 00:00:00Z",
        "2026-01-01t00:00:00z",
        "2026-01-01T00:00:00.5Z",
        "2026-1-01T00:00:00Z",
        "2026-+1-01T00:00:00Z",
        "2026-01-+1T00:00:00Z",
        "+026-01-01T00:00:00Z",
        "2026-01-01T00:00:00",
        "",
    ] {
        let e = parse_rfc3339(s).expect_err(s).to_string();
        assert!(e.contains("write it as UTC"), "{s}: {e}");
    }
    // Every day from 1970 to past 2100, at a varying time of day: format → parse is the
    // identity, and parse → format gives back the text.
    let mut ms = 0u64;
    let mut days = 0;
    while ms < 4_200_000_000_000 {
        let t = ms + (days * 7_919 % 86_400) * 1000;
        let s = format_rfc3339(t);
        assert_eq!(parse_rfc3339(&s).unwrap(), t, "{s}");
        assert_eq!(format_rfc3339(parse_rfc3339(&s).unwrap()), s);
        ms += DAY;
        days += 1;
    }
    assert!(days > 48_000);
}

#[test]
fn form_refuses_unknown_fields_and_names_the_problem() {
    let admins = keys(3);
    let admin_hex: Vec<String> = admins.iter().map(hex_pub).collect();
    let good = example_toml(&admin_hex, &hex_pub(&admins[0]));
    PolicyForm::parse(&good)
        .unwrap()
        .to_doc(1, &zero_hash())
        .unwrap();
    // Unknown fields anywhere.
    for (from, to) in [
        (
            "timelock = \"24h\"",
            "timelock = \"24h\"\ntime_lock = \"1h\"",
        ),
        ("decimals = 18", "decimals = 18\nminimum = \"1\""),
        (
            "label = \"cold wallet\"",
            "label = \"cold wallet\"\nactive_until = \"2027-01-01T00:00:00Z\"",
        ),
        ("max_count = 3", "max_count = 3\nmax_counts = 4"),
    ] {
        let text = replace_once(&good, from, to);
        let e = PolicyForm::parse(&text).expect_err(to).to_string();
        assert!(e.contains("unknown field"), "{to}: {e}");
    }
    // Missing required fields.
    let e = PolicyForm::parse(&replace_once(&good, "timelock = \"24h\"\n", ""))
        .expect_err("no timelock")
        .to_string();
    assert!(e.contains("timelock"), "{e}");
    // Problems found while building the document name what is wrong.
    for (from, to, want) in [
        (
            "window = \"10m\"",
            "window = \"10 minutes\"",
            "duration \"10 minutes\"",
        ),
        (
            "timelock = \"24h\"",
            "timelock = \"1 day\"",
            "duration \"1 day\"",
        ),
        (
            "scope = \"asset\"\nwindow = \"24h\"",
            "scope = \"asset\"\nwindow = \"30s\"",
            "whole number of minutes",
        ),
        (
            "timelock = \"24h\"",
            "timelock = \"31d\"",
            "timelock: at most 30 days",
        ),
        (
            "max_amount = \"10\"",
            "max_amount = \"10.0000000000000000001\"",
            "more than 18 decimals",
        ),
        (
            "max_amount = \"10\"",
            "max_amount = \"1e1\"",
            "write whole units as digits",
        ),
        (
            "max_amount = \"10\"",
            "max_amount = \"0\"",
            "max_amount must be greater than zero",
        ),
        (
            "max_per_withdrawal = \"100\"",
            "max_per_withdrawal = \"0\"",
            "max_per_withdrawal must be greater than zero",
        ),
        (
            "max_per_withdrawal = \"100\"",
            "max_per_withdrawal = \"-100\"",
            "asset ETH on ethereum",
        ),
        (
            "address = \"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\"",
            "address = \"0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\"",
            "checksum",
        ),
        (
            "active_from = \"2026-12-01T09:00:00Z\"",
            "active_from = \"2026-12-01\"",
            "time \"2026-12-01\"",
        ),
        (
            "approvals_required = 2",
            "approvals_required = 4",
            "approvals_required 4 exceeds the 3 admins",
        ),
        ("admin_quorum = 2", "admin_quorum = 0", "admin_quorum 0"),
        (
            "scope = \"destination\"",
            "scope = \"address\"",
            "unknown variant",
        ),
        (
            "asset = \"ETH\"\nscope = \"destination\"",
            "asset = \"DAI\"\nscope = \"destination\"",
            "asset DAI on ethereum is not in [[assets]]",
        ),
    ] {
        let text = replace_once(&good, from, to);
        let e = PolicyForm::parse(&text)
            .and_then(|f| f.to_doc(1, &zero_hash()))
            .expect_err(to)
            .to_string();
        assert!(e.contains(want), "{to}: {e}");
    }
    // Chain names are exact.
    let text = good.replacen("chain = \"ethereum\"", "chain = \"Ethereum\"", 1);
    let e = PolicyForm::parse(&text)
        .unwrap()
        .to_doc(1, &zero_hash())
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown chain `Ethereum`"), "{e}");
    // Keys.
    let text = good.replacen(&admin_hex[0], "02abcd", 1);
    let e = PolicyForm::parse(&text)
        .unwrap()
        .to_doc(1, &zero_hash())
        .unwrap_err()
        .to_string();
    assert!(e.contains("admin key 02abcd"), "{e}");
    let text = good.replacen(
        &format!("backend_keys = [\"{}\"]", hex_pub(&admins[0])),
        "backend_keys = [\"zz\"]",
        1,
    );
    let e = PolicyForm::parse(&text)
        .unwrap()
        .to_doc(1, &zero_hash())
        .unwrap_err()
        .to_string();
    assert!(e.contains("backend key zz"), "{e}");
    // The same destination twice (in two spellings) is a duplicate.
    let text = good.replacen(
        "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359",
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        1,
    );
    let e = PolicyForm::parse(&text)
        .unwrap()
        .to_doc(1, &zero_hash())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("whitelist: entries must be sorted and unique"),
        "{e}"
    );
}

#[test]
fn form_round_trip_gives_the_identical_document() {
    let admins = keys(3);
    let mut doc = base_doc(&admins, 2);
    // Widen the fixture: more chains, odd windows, a zero time-lock and a frozen flag.
    doc.assets.push(AssetRule {
        chain: Chain::Tron,
        asset: "TRX".into(),
        decimals: 6,
        enabled: true,
        max_per_withdrawal: amount(123_456_789),
        approval_threshold: amount(1),
        approvals_required: 3,
        token: None,
    });
    doc.assets.push(AssetRule {
        chain: Chain::Solana,
        asset: "SOL".into(),
        decimals: 0,
        enabled: true,
        max_per_withdrawal: amount(7),
        approval_threshold: amount(7),
        approvals_required: 0,
        token: None,
    });
    doc.assets
        .sort_by(|a, b| (a.chain, &a.asset).cmp(&(b.chain, &b.asset)));
    doc.whitelist.push(WhitelistEntry {
        chain: Chain::Bitcoin,
        address: "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4".into(),
        label: "cold BTC, vault \"A\" #1".into(),
        active_from_ms: 951_782_400_000,
    });
    for (window, amt, count) in [
        (48 * H, Some(5 * 100_000_000), None),
        (90 * 60_000, None, Some(2)),
        (7 * DAY, Some(1), Some(1)),
    ] {
        doc.velocity.push(VelocityLimit {
            chain: Chain::Bitcoin,
            asset: "BTC".into(),
            scope: Scope::Asset,
            window_ms: window,
            max_amount: amt.map(amount),
            max_count: count,
        });
    }
    doc.velocity.sort_by(|a, b| a.key().cmp(&b.key()));
    doc.validate().unwrap();
    let mut cases = vec![doc.clone()];
    let mut d = doc.clone();
    d.timelock_ms = 0;
    d.frozen = true;
    d.version = 9;
    d.prev_hash = "cd".repeat(32);
    cases.push(d);
    let mut d = doc.clone();
    d.timelock_ms = 90 * 60_000;
    d.whitelist.clear();
    d.velocity.clear();
    cases.push(d);
    let mut d = doc.clone();
    d.assets.clear();
    d.velocity.clear();
    cases.push(d);
    let mut d = doc.clone();
    d.timelock_ms = 36 * H + 1000;
    d.assets.retain(|a| a.asset == "ETH");
    d.velocity.retain(|v| v.asset == "ETH");
    cases.push(d);
    for d in &cases {
        d.validate().unwrap();
        let form = PolicyForm::from_doc(d);
        let text = form.to_toml();
        let parsed = PolicyForm::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed, form, "{text}");
        let back = parsed.to_doc(d.version, &d.prev_hash).unwrap();
        assert_eq!(&back, d, "{text}");
        assert_eq!(back.encode(), d.encode());
        assert_eq!(back.hash(), d.hash());
    }
    // The text is for people: whole units, durations and times.
    let text = PolicyForm::from_doc(&doc).to_toml();
    for want in [
        "timelock = \"1d\"",
        "max_per_withdrawal = \"100\"",
        "approval_threshold = \"50\"",
        "window = \"2d\"",
        "window = \"90m\"",
        "window = \"7d\"",
        "window = \"1h\"",
        "active_from = \"2000-02-29T00:00:00Z\"",
        "active_from = \"2023-11-14T22:13:20Z\"",
        "max_amount = \"10\"",
    ] {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
}
