//! The governed policy document (canonical form, validation, hash), its TOML form, governance
//! (genesis, hash-chained versions, admin quorum, time-locked loosening, freeze, veto), the
//! stored state, and the rule-tag table of `docs/policy.md`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use k256::elliptic_curve::sec1::ToEncodedPoint;
use quorate_core::{
    address::Chain,
    amount::Amount,
    identity::IdentitySecret,
    policy::{
        decode_state,
        doc::{zero_hash, FORMAT, HASH_DOMAIN, MAX_ADMINS, MAX_LABEL_LEN},
        encode_state,
        form::{format_rfc3339, parse_duration, parse_rfc3339, parse_units},
        governance::{
            diff, is_freeze_only, next_version, required_signatures, MAX_VETOES,
            POLICY_APPROVAL_DOMAIN, POLICY_VETO_DOMAIN,
        },
        AdminSignature, AssetRule, Effect, Offered, PolicyDoc, PolicyForm, PolicyState, Scope,
        SignedPolicy, VelocityLimit, WhitelistEntry,
    },
    refusal::{rule, Refusal},
};
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

const H: u64 = 3_600_000;
const DAY: u64 = 24 * H;
const ETH: u128 = 1_000_000_000_000_000_000;
/// EIP-55 examples (their own canonical form).
const COLD: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
const OTHER: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
const THIRD: &str = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";
/// A time well after every `active_from` used here.
const T0: u64 = 1_800_000_000_000;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn keys(n: usize) -> Vec<IdentitySecret> {
    (0..n)
        .map(|_| IdentitySecret::generate(&mut OsRng))
        .collect()
}

fn hex_pub(k: &IdentitySecret) -> String {
    k.public().to_string()
}

fn amount(v: u128) -> Amount {
    Amount::new(v).unwrap()
}

/// A valid genesis document governed by `admins` with `quorum`: ETH and a disabled USDC on
/// ethereum, BTC; two whitelist entries; asset and destination velocity limits on ETH.
fn base_doc(admins: &[IdentitySecret], quorum: u16) -> PolicyDoc {
    let mut admin_hex: Vec<String> = admins.iter().map(hex_pub).collect();
    admin_hex.sort();
    let backend = IdentitySecret::generate(&mut OsRng);
    let mut assets = vec![
        AssetRule {
            chain: Chain::Ethereum,
            asset: "ETH".into(),
            decimals: 18,
            enabled: true,
            max_per_withdrawal: amount(100 * ETH),
            approval_threshold: amount(50 * ETH),
            approvals_required: 1,
            token: None,
        },
        AssetRule {
            chain: Chain::Ethereum,
            asset: "USDC".into(),
            decimals: 6,
            enabled: false,
            max_per_withdrawal: amount(1_000_000 * 1_000_000),
            approval_threshold: amount(1_000_000 * 1_000_000),
            approvals_required: 0,
            token: None,
        },
        AssetRule {
            chain: Chain::Bitcoin,
            asset: "BTC".into(),
            decimals: 8,
            enabled: true,
            max_per_withdrawal: amount(10 * 100_000_000),
            approval_threshold: amount(5 * 100_000_000),
            approvals_required: 2,
            token: None,
        },
    ];
    assets.sort_by(|a, b| (a.chain, &a.asset).cmp(&(b.chain, &b.asset)));
    let doc = PolicyDoc {
        format: FORMAT,
        version: 1,
        prev_hash: zero_hash(),
        assets,
        whitelist: vec![
            WhitelistEntry {
                chain: Chain::Ethereum,
                address: COLD.into(),
                label: "cold wallet".into(),
                active_from_ms: 0,
            },
            WhitelistEntry {
                chain: Chain::Ethereum,
                address: OTHER.into(),
                label: "exchange B".into(),
                active_from_ms: 1_700_000_000_000,
            },
        ],
        velocity: vec![
            VelocityLimit {
                chain: Chain::Ethereum,
                asset: "ETH".into(),
                scope: Scope::Asset,
                window_ms: DAY,
                max_amount: Some(amount(10 * ETH)),
                max_count: Some(100),
            },
            VelocityLimit {
                chain: Chain::Ethereum,
                asset: "ETH".into(),
                scope: Scope::Destination,
                window_ms: H,
                max_amount: None,
                max_count: Some(5),
            },
        ],
        backend_keys: vec![hex_pub(&backend)],
        admins: admin_hex,
        admin_quorum: quorum,
        timelock_ms: DAY,
        frozen: false,
        per_signer_budget: false,
        chains: Vec::new(),
        solana: None,
        retired_signers: Vec::new(),
    };
    doc.validate().expect("fixture is valid");
    doc
}

fn approve(doc: &PolicyDoc, k: &IdentitySecret) -> AdminSignature {
    AdminSignature::sign(k, POLICY_APPROVAL_DOMAIN, &[&doc.hash()])
}

fn signed(doc: &PolicyDoc, signers: &[&IdentitySecret]) -> SignedPolicy {
    SignedPolicy {
        doc: doc.clone(),
        signatures: signers.iter().map(|k| approve(doc, k)).collect(),
    }
}

fn pinned(admins: &[IdentitySecret]) -> BTreeSet<quorate_core::identity::IdentityPublic> {
    admins.iter().map(IdentitySecret::public).collect()
}

/// Three admins, quorum 2, genesis installed.
fn setup() -> (Vec<IdentitySecret>, PolicyState) {
    let admins = keys(3);
    let doc = base_doc(&admins, 2);
    let state = PolicyState::genesis(&pinned(&admins), 2, signed(&doc, &[&admins[0], &admins[1]]))
        .expect("genesis");
    (admins, state)
}

/// The next version of what is in force, edited by `f`.
fn next(state: &PolicyState, f: impl FnOnce(&mut PolicyDoc)) -> PolicyDoc {
    let mut d = state.active().clone();
    f(&mut d);
    let d = next_version(state.active(), d);
    d.validate().expect("edited document is valid");
    d
}

fn refused(r: Result<impl std::fmt::Debug, Refusal>, tag: &str) -> Refusal {
    let e = r.expect_err(tag);
    assert_eq!(e.rule, tag, "{e}");
    assert!(!e.reason.is_empty());
    e
}

fn eth_asset(d: &mut PolicyDoc) -> &mut AssetRule {
    d.assets
        .iter_mut()
        .find(|a| a.chain == Chain::Ethereum && a.asset == "ETH")
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// doc.rs
// ---------------------------------------------------------------------------------------------

#[test]
fn canonical_encoding_round_trips_and_hash_is_domain_separated() {
    let admins = keys(3);
    let doc = base_doc(&admins, 2);
    let bytes = doc.encode();
    assert_eq!(PolicyDoc::decode(&bytes).unwrap(), doc);
    // Re-encoding the decoded document gives the same bytes.
    assert_eq!(PolicyDoc::decode(&bytes).unwrap().encode(), bytes);
    // Compact JSON, fields in declaration order.
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.starts_with("{\"format\":1,\"version\":1,\"prev_hash\":\""),
        "{text}"
    );
    assert!(!text
        .replace("cold wallet", "")
        .replace("exchange B", "")
        .contains(' '));
    assert!(!text.contains('\n'));
    // Amounts are decimal strings, never JSON numbers.
    assert!(
        text.contains("\"max_per_withdrawal\":\"100000000000000000000\""),
        "{text}"
    );
    // The hash is SHA-256 over the domain tag and the bytes.
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    h.update(&bytes);
    let expect: [u8; 32] = h.finalize().into();
    assert_eq!(doc.hash(), expect);
    assert_ne!(doc.hash(), <[u8; 32]>::from(Sha256::digest(&bytes)));
    assert_eq!(doc.hash_hex(), hex::encode(expect));
    assert_eq!(doc.hash_hex().len(), 64);
    // Lookups.
    assert_eq!(doc.asset(Chain::Ethereum, "ETH").unwrap().decimals, 18);
    assert!(doc.asset(Chain::Polygon, "ETH").is_none());
    assert_eq!(
        doc.whitelisted(Chain::Ethereum, COLD).unwrap().label,
        "cold wallet"
    );
    assert!(doc.whitelisted(Chain::Polygon, COLD).is_none());
    assert!(doc
        .whitelisted(Chain::Ethereum, &COLD.to_lowercase())
        .is_none());
    assert_eq!(doc.admin_keys(), pinned(&admins));
    assert_eq!(doc.backend_keys().len(), 1);
}

#[test]
fn validate_refuses_every_broken_rule_with_a_message() {
    let admins = keys(3);
    let base = base_doc(&admins, 2);
    let upper_admin = base.admins[0].to_uppercase();
    let backend = IdentitySecret::generate(&mut OsRng);
    let uncompressed = hex::encode(
        k256::PublicKey::from_sec1_bytes(backend.public().as_bytes())
            .unwrap()
            .to_encoded_point(false)
            .as_bytes(),
    );
    type Edit = Box<dyn Fn(&mut PolicyDoc)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "format",
            Box::new(|d| d.format = 2),
            "format 2 is not supported",
        ),
        (
            "version 0",
            Box::new(|d| d.version = 0),
            "version starts at 1",
        ),
        (
            "prev_hash short",
            Box::new(|d| d.prev_hash = "00".into()),
            "prev_hash must be 64 lowercase hex digits",
        ),
        (
            "prev_hash not hex",
            Box::new(|d| d.prev_hash = "zz".repeat(32)),
            "prev_hash must be 64 lowercase hex digits",
        ),
        (
            "prev_hash upper-case",
            Box::new(|d| {
                d.version = 2;
                d.prev_hash = "AB".repeat(32);
            }),
            "prev_hash must be 64 lowercase hex digits",
        ),
        (
            "genesis with a prev_hash",
            Box::new(|d| d.prev_hash = "ab".repeat(32)),
            "prev_hash must be all zeros for version 1",
        ),
        (
            "later version with zero prev_hash",
            Box::new(|d| d.version = 2),
            "prev_hash must be all zeros for version 1",
        ),
        (
            "assets unsorted",
            Box::new(|d| d.assets.reverse()),
            "assets: entries must be sorted and unique",
        ),
        (
            "assets duplicate",
            Box::new(|d| {
                let a = d.assets[0].clone();
                d.assets.insert(0, a);
            }),
            "assets: entries must be sorted and unique",
        ),
        (
            "asset symbol",
            Box::new(|d| {
                d.assets = vec![AssetRule {
                    asset: "eth".into(),
                    ..d.assets[0].clone()
                }];
                d.velocity.clear();
            }),
            "symbol must be upper-case letters and digits",
        ),
        (
            "decimals",
            Box::new(|d| eth_asset(d).decimals = 39),
            "decimals must be at most 38",
        ),
        (
            "approvals above admins",
            Box::new(|d| eth_asset(d).approvals_required = 4),
            "approvals_required 4 exceeds the 3 admins",
        ),
        (
            "threshold below max without approvals",
            Box::new(|d| eth_asset(d).approvals_required = 0),
            "need at least one approval",
        ),
        (
            "whitelist unsorted",
            Box::new(|d| d.whitelist.reverse()),
            "whitelist: entries must be sorted and unique",
        ),
        (
            "whitelist duplicate",
            Box::new(|d| {
                let w = d.whitelist[0].clone();
                d.whitelist.insert(0, w);
            }),
            "whitelist: entries must be sorted and unique",
        ),
        (
            "whitelist not canonical",
            Box::new(|d| d.whitelist[0].address = COLD.to_lowercase()),
            "is not in canonical form (expected 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed)",
        ),
        (
            "whitelist invalid address",
            Box::new(|d| d.whitelist[0].address = "0x1234".into()),
            "whitelist: ethereum address",
        ),
        (
            "label too long",
            Box::new(|d| d.whitelist[0].label = "x".repeat(MAX_LABEL_LEN + 1)),
            "label must be at most 128 bytes",
        ),
        (
            "label control character",
            Box::new(|d| d.whitelist[0].label = "cold\nwallet".into()),
            "without control characters",
        ),
        (
            // Found by fuzzing: a year past 9999 that the TOML form could not write back.
            "activation after year 9999",
            Box::new(|d| {
                d.whitelist[0].active_from_ms = quorate_core::policy::doc::MAX_ACTIVE_FROM_MS + 1
            }),
            "active_from_ms must be at most",
        ),
        (
            "velocity unsorted",
            Box::new(|d| d.velocity.reverse()),
            "velocity: entries must be sorted and unique",
        ),
        (
            "velocity duplicate",
            Box::new(|d| {
                let v = d.velocity[0].clone();
                d.velocity.insert(0, v);
            }),
            "velocity: entries must be sorted and unique",
        ),
        (
            "velocity for unregistered asset",
            Box::new(|d| {
                d.velocity = vec![VelocityLimit {
                    asset: "DAI".into(),
                    ..d.velocity[0].clone()
                }];
            }),
            "velocity ethereum DAI asset: asset is not in the registry",
        ),
        (
            "window too short",
            Box::new(|d| d.velocity[0].window_ms = 30_000),
            "window must be a whole number of minutes from 1 minute to 7 days",
        ),
        (
            "window too long",
            Box::new(|d| d.velocity[0].window_ms = 8 * DAY),
            "window must be a whole number of minutes",
        ),
        (
            "window not whole minutes",
            Box::new(|d| d.velocity[0].window_ms = 90_000),
            "window must be a whole number of minutes",
        ),
        (
            "velocity without a limit",
            Box::new(|d| {
                d.velocity[0].max_amount = None;
                d.velocity[0].max_count = None;
            }),
            "set max_amount, max_count or both",
        ),
        (
            "backend keys duplicate",
            Box::new(|d| {
                let k = d.backend_keys[0].clone();
                d.backend_keys.push(k);
            }),
            "backend_keys: entries must be sorted and unique",
        ),
        (
            "backend key invalid",
            Box::new(|d| d.backend_keys = vec![format!("05{}", "11".repeat(32))]),
            "not a secp256k1 public key",
        ),
        (
            "backend key uncompressed",
            Box::new(move |d| d.backend_keys = vec![uncompressed.clone()]),
            "write it compressed, in lowercase hex",
        ),
        (
            "backend key upper-case",
            Box::new(|d| d.backend_keys[0] = d.backend_keys[0].to_uppercase()),
            "write it compressed, in lowercase hex",
        ),
        (
            "admins unsorted",
            Box::new(|d| d.admins.reverse()),
            "admins: entries must be sorted and unique",
        ),
        (
            "admins duplicate",
            Box::new(|d| {
                let a = d.admins[0].clone();
                d.admins.insert(0, a);
            }),
            "admins: entries must be sorted and unique",
        ),
        (
            "no admins",
            Box::new(|d| {
                d.admins.clear();
                for a in &mut d.assets {
                    a.approvals_required = 0;
                    a.approval_threshold = a.max_per_withdrawal;
                }
            }),
            "admins: 1..=32 keys",
        ),
        (
            "too many admins",
            Box::new(|d| {
                let mut many: Vec<String> = keys(MAX_ADMINS + 1).iter().map(hex_pub).collect();
                many.sort();
                d.admins = many;
            }),
            "admins: 1..=32 keys",
        ),
        (
            "admin key invalid",
            Box::new(|d| {
                d.admins[2] = format!("ff{}", "11".repeat(32));
            }),
            "invalid",
        ),
        (
            "admin key upper-case",
            Box::new(move |d| {
                d.admins[0] = upper_admin.clone();
                d.admins.sort();
            }),
            "write it in lowercase hex",
        ),
        (
            "quorum 0",
            Box::new(|d| d.admin_quorum = 0),
            "admin_quorum 0 must be between 1 and the number of admins (3)",
        ),
        (
            "quorum above admins",
            Box::new(|d| d.admin_quorum = 4),
            "admin_quorum 4 must be between 1",
        ),
        (
            "timelock",
            Box::new(|d| d.timelock_ms = 30 * DAY + 1),
            "timelock: at most 30 days",
        ),
    ];
    let mut seen = HashSet::new();
    for (name, edit, want) in &cases {
        let mut d = base.clone();
        edit(&mut d);
        assert_ne!(d, base, "{name}: the edit changes nothing");
        let e = d.validate().expect_err(name);
        let msg = e.to_string();
        assert!(msg.starts_with("policy: "), "{name}: {msg}");
        assert!(msg.contains(want), "{name}: {msg:?} lacks {want:?}");
        seen.insert(*name);
        // What does not validate does not decode either, even as otherwise canonical bytes.
        let bytes = serde_json::to_vec(&d).unwrap();
        assert!(PolicyDoc::decode(&bytes).is_err(), "{name}: decoded");
    }
    assert_eq!(seen.len(), cases.len());
    // The edges that are allowed.
    let mut d = base.clone();
    d.timelock_ms = 30 * DAY;
    d.velocity[0].window_ms = 7 * DAY;
    d.velocity[1].window_ms = 60_000;
    d.admin_quorum = 3;
    eth_asset(&mut d).decimals = 38;
    d.whitelist[0].label = "é".repeat(MAX_LABEL_LEN / 2);
    d.validate().unwrap();
}

/// Replaces exactly one occurrence of `from` in `s`.
fn replace_once(s: &str, from: &str, to: &str) -> String {
    assert_eq!(s.matches(from).count(), 1, "{from:?} in {s}");
    s.replacen(from, to, 1)
}

#[test]
fn decode_refuses_non_canonical_bytes() {
    let admins = keys(3);
    let doc = base_doc(&admins, 2);
    let text = String::from_utf8(doc.encode()).unwrap();
    let non_canonical = |bytes: &[u8], want: &str, name: &str| {
        let e = PolicyDoc::decode(bytes).expect_err(name).to_string();
        assert!(e.contains(want), "{name}: {e}");
    };
    // Reordered keys, at the top and inside an entry.
    non_canonical(
        replace_once(
            &text,
            "{\"format\":1,\"version\":1,",
            "{\"version\":1,\"format\":1,",
        )
        .as_bytes(),
        "not in canonical form",
        "reordered top-level keys",
    );
    non_canonical(
        replace_once(
            &text,
            "\"label\":\"cold wallet\",\"active_from_ms\":0",
            "\"active_from_ms\":0,\"label\":\"cold wallet\"",
        )
        .as_bytes(),
        "not in canonical form",
        "reordered entry keys",
    );
    // serde_json's map sorts keys alphabetically: also not canonical.
    let value: serde_json::Value = serde_json::from_slice(doc.encode().as_slice()).unwrap();
    non_canonical(
        &serde_json::to_vec(&value).unwrap(),
        "not in canonical form",
        "sorted keys",
    );
    // Whitespace anywhere.
    non_canonical(
        &serde_json::to_vec_pretty(&doc).unwrap(),
        "not in canonical form",
        "pretty",
    );
    non_canonical(
        format!("{text}\n").as_bytes(),
        "not in canonical form",
        "trailing newline",
    );
    non_canonical(
        format!(" {text}").as_bytes(),
        "not in canonical form",
        "leading space",
    );
    non_canonical(
        replace_once(&text, "\"version\":1,", "\"version\": 1,").as_bytes(),
        "not in canonical form",
        "inner space",
    );
    // Other spellings of the same values.
    non_canonical(
        replace_once(
            &text,
            "\"label\":\"cold wallet\"",
            "\"label\":\"cold w\\u0061llet\"",
        )
        .as_bytes(),
        "not in canonical form",
        "escaped character",
    );
    non_canonical(
        replace_once(&text, "\"version\":1,", "\"version\":1.0,").as_bytes(),
        "not a policy document",
        "float version",
    );
    non_canonical(
        replace_once(&text, "\"max_count\":5", "\"max_count\":5e0").as_bytes(),
        "not a policy document",
        "exponent",
    );
    // A missing optional field (`null` in canonical form) is not canonical either.
    non_canonical(
        replace_once(&text, "\"max_amount\":null,", "").as_bytes(),
        "not in canonical form",
        "omitted null",
    );
    // Unsorted lists and duplicates.
    let mut d = doc.clone();
    d.whitelist.reverse();
    non_canonical(
        &serde_json::to_vec(&d).unwrap(),
        "whitelist: entries must be sorted and unique",
        "unsorted",
    );
    let mut d = doc.clone();
    d.admins.swap(0, 1);
    non_canonical(
        &serde_json::to_vec(&d).unwrap(),
        "admins: entries must be sorted",
        "unsorted admins",
    );
    let mut d = doc.clone();
    d.whitelist.push(d.whitelist[1].clone());
    non_canonical(
        &serde_json::to_vec(&d).unwrap(),
        "sorted and unique",
        "duplicate entry",
    );
    non_canonical(
        replace_once(
            &text,
            "\"frozen\":false}",
            "\"frozen\":false,\"frozen\":false}",
        )
        .as_bytes(),
        "duplicate field",
        "duplicate key",
    );
    // Non-lowercase hex: prev_hash, admin key, backend key.
    let mut v2 = doc.clone();
    v2.version = 2;
    v2.prev_hash = doc.hash_hex();
    let t2 = String::from_utf8(v2.encode()).unwrap();
    assert!(PolicyDoc::decode(t2.as_bytes()).is_ok());
    let upper = v2.prev_hash.to_uppercase();
    assert_ne!(upper, v2.prev_hash, "the hash has a letter");
    non_canonical(
        replace_once(&t2, &v2.prev_hash, &upper).as_bytes(),
        "64 lowercase hex digits",
        "upper-case prev_hash",
    );
    let admin = doc.admins.iter().find(|a| a.to_uppercase() != **a).unwrap();
    non_canonical(
        replace_once(&text, admin, &admin.to_uppercase()).as_bytes(),
        "lowercase hex",
        "upper-case admin",
    );
    let bk = &doc.backend_keys[0];
    non_canonical(
        replace_once(&text, bk, &bk.to_uppercase()).as_bytes(),
        "lowercase hex",
        "upper-case backend key",
    );
    // Unknown fields, at the top and inside an entry.
    non_canonical(
        replace_once(&text, "\"frozen\":false}", "\"frozen\":false,\"extra\":1}").as_bytes(),
        "unknown field",
        "unknown top-level field",
    );
    non_canonical(
        replace_once(
            &text,
            "\"label\":\"cold wallet\",",
            "\"label\":\"cold wallet\",\"note\":\"x\",",
        )
        .as_bytes(),
        "unknown field",
        "unknown entry field",
    );
    // Not JSON at all, trailing bytes, empty.
    non_canonical(b"", "not a policy document", "empty");
    non_canonical(
        format!("{text}{{}}").as_bytes(),
        "not a policy document",
        "trailing",
    );
    non_canonical(
        &doc.encode()[..text.len() - 1],
        "not a policy document",
        "truncated",
    );
    // And the canonical bytes still decode.
    assert_eq!(PolicyDoc::decode(text.as_bytes()).unwrap(), doc);
}

#[test]
fn hash_changes_with_any_field() {
    let admins = keys(3);
    let base = base_doc(&admins, 2);
    let extra = keys(1);
    type Edit = Box<dyn Fn(&mut PolicyDoc)>;
    let edits: Vec<Edit> = vec![
        Box::new(|d| d.format = 2),
        Box::new(|d| d.version = 2),
        Box::new(|d| d.prev_hash = "11".repeat(32)),
        Box::new(|d| d.assets[0].chain = Chain::Polygon),
        Box::new(|d| d.assets[0].asset = "ETH2".into()),
        Box::new(|d| d.assets[0].decimals += 1),
        Box::new(|d| d.assets[0].enabled = !d.assets[0].enabled),
        Box::new(|d| {
            d.assets[0].max_per_withdrawal = amount(d.assets[0].max_per_withdrawal.get() + 1)
        }),
        Box::new(|d| {
            d.assets[0].approval_threshold = amount(d.assets[0].approval_threshold.get() + 1)
        }),
        Box::new(|d| d.assets[0].approvals_required += 1),
        Box::new(|d| {
            d.assets.pop();
        }),
        Box::new(|d| d.whitelist[0].chain = Chain::Polygon),
        Box::new(|d| d.whitelist[0].address = THIRD.into()),
        Box::new(|d| d.whitelist[0].label.push('!')),
        Box::new(|d| d.whitelist[0].active_from_ms += 1),
        Box::new(|d| d.whitelist.clear()),
        Box::new(|d| d.velocity[0].chain = Chain::Polygon),
        Box::new(|d| d.velocity[0].asset = "USDC".into()),
        Box::new(|d| d.velocity[1].scope = Scope::Asset),
        Box::new(|d| d.velocity[0].window_ms += 60_000),
        Box::new(|d| d.velocity[0].max_amount = None),
        Box::new(|d| d.velocity[0].max_count = Some(101)),
        Box::new(|d| d.velocity[1].max_count = None),
        Box::new(|d| d.backend_keys.clear()),
        Box::new(|d| d.backend_keys[0] = d.admins[0].clone()),
        Box::new(move |d| d.admins.push(hex_pub(&extra[0]))),
        Box::new(|d| {
            d.admins.pop();
        }),
        Box::new(|d| d.admin_quorum = 3),
        Box::new(|d| d.timelock_ms += 1),
        Box::new(|d| d.frozen = true),
    ];
    let mut hashes = HashSet::new();
    hashes.insert(base.hash());
    for (i, edit) in edits.iter().enumerate() {
        let mut d = base.clone();
        edit(&mut d);
        assert_ne!(d, base, "edit {i} changes nothing");
        assert!(hashes.insert(d.hash()), "edit {i}: hash did not change");
        assert_ne!(d.hash_hex(), base.hash_hex());
    }
    assert_eq!(hashes.len(), edits.len() + 1);
    // The same content always hashes the same.
    assert_eq!(base.clone().hash(), base.hash());
}

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

// ---------------------------------------------------------------------------------------------
// governance.rs: genesis
// ---------------------------------------------------------------------------------------------

#[test]
fn genesis_checks_pinned_admins_quorum_and_signatures() {
    let admins = keys(3);
    let outsider = keys(1).remove(0);
    let pins = pinned(&admins);
    let doc = base_doc(&admins, 2);

    // The right admins, quorum and signatures: installed.
    let st = PolicyState::genesis(&pins, 2, signed(&doc, &[&admins[0], &admins[2]])).unwrap();
    assert_eq!(st.active(), &doc);
    assert!(st.pending.is_none() && st.vetoed.is_empty());
    // All three sign: fine too.
    PolicyState::genesis(
        &pins,
        2,
        signed(&doc, &[&admins[0], &admins[1], &admins[2]]),
    )
    .unwrap();

    // Admins differ from the pinned ones: one replaced, one extra, one missing.
    let mut swapped = admins.iter().take(2).map(hex_pub).collect::<Vec<_>>();
    swapped.push(hex_pub(&outsider));
    swapped.sort();
    let mut d = doc.clone();
    d.admins = swapped;
    refused(
        PolicyState::genesis(&pins, 2, signed(&d, &[&admins[0], &admins[1]])),
        rule::POLICY_UPDATE_GENESIS,
    );
    let mut d = doc.clone();
    d.admins.push(hex_pub(&outsider));
    d.admins.sort();
    refused(
        PolicyState::genesis(&pins, 2, signed(&d, &[&admins[0], &admins[1]])),
        rule::POLICY_UPDATE_GENESIS,
    );
    let mut fewer = pins.clone();
    fewer.remove(&admins[2].public());
    refused(
        PolicyState::genesis(&fewer, 2, signed(&doc, &[&admins[0], &admins[1]])),
        rule::POLICY_UPDATE_GENESIS,
    );
    // Wrong quorum, either way.
    refused(
        PolicyState::genesis(
            &pins,
            3,
            signed(&doc, &[&admins[0], &admins[1], &admins[2]]),
        ),
        rule::POLICY_UPDATE_GENESIS,
    );
    let mut d = doc.clone();
    d.admin_quorum = 1;
    refused(
        PolicyState::genesis(&pins, 2, signed(&d, &[&admins[0], &admins[1]])),
        rule::POLICY_UPDATE_GENESIS,
    );

    // Too few signatures.
    let e = refused(
        PolicyState::genesis(&pins, 2, signed(&doc, &[&admins[0]])),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    assert!(
        e.permanent && e.reason.contains("1 valid distinct") && e.reason.contains("2 are needed"),
        "{e}"
    );
    refused(
        PolicyState::genesis(&pins, 2, signed(&doc, &[])),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    // The same admin twice counts once.
    let e = refused(
        PolicyState::genesis(&pins, 2, signed(&doc, &[&admins[0], &admins[0]])),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    assert!(e.reason.contains("carries 1 valid"), "{e}");
    // A non-admin's signature is ignored.
    let e = refused(
        PolicyState::genesis(&pins, 2, signed(&doc, &[&admins[0], &outsider])),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    assert!(e.reason.contains("carries 1 valid"), "{e}");
    // A signature under another domain, over another document, or forged, does not count.
    let mut sp = signed(&doc, &[&admins[0]]);
    sp.signatures.push(AdminSignature::sign(
        &admins[1],
        POLICY_VETO_DOMAIN,
        &[&doc.hash()],
    ));
    refused(
        PolicyState::genesis(&pins, 2, sp),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    let mut other = doc.clone();
    other.timelock_ms += 1000;
    let mut sp = signed(&doc, &[&admins[0]]);
    sp.signatures.push(approve(&other, &admins[1]));
    refused(
        PolicyState::genesis(&pins, 2, sp),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    let mut sp = signed(&doc, &[&admins[0]]);
    sp.signatures.push(AdminSignature {
        admin: admins[1].public(),
        signature: approve(&doc, &admins[0]).signature,
    });
    refused(
        PolicyState::genesis(&pins, 2, sp),
        rule::POLICY_UPDATE_SIGNATURES,
    );

    // Not version 1, or not a valid document.
    let mut d = doc.clone();
    d.version = 2;
    d.prev_hash = "ab".repeat(32);
    refused(
        PolicyState::genesis(&pins, 2, signed(&d, &[&admins[0], &admins[1]])),
        rule::POLICY_UPDATE_VERSION,
    );
    let mut d = doc.clone();
    d.whitelist.reverse();
    refused(
        PolicyState::genesis(&pins, 2, signed(&d, &[&admins[0], &admins[1]])),
        rule::POLICY_UPDATE_INVALID,
    );
}

// ---------------------------------------------------------------------------------------------
// governance.rs: offers
// ---------------------------------------------------------------------------------------------

#[test]
fn offer_refuses_stale_skipped_and_unchained_versions() {
    let (a, mut st) = setup();
    let v1 = st.active().clone();
    let tighten = |d: &mut PolicyDoc| eth_asset(d).max_per_withdrawal = amount(90 * ETH);

    // A different genesis (version 1 again): stale.
    let mut other1 = v1.clone();
    other1.timelock_ms = 2 * DAY;
    let e = refused(
        st.offer(signed(&other1, &[&a[0], &a[1]]), T0),
        rule::POLICY_UPDATE_VERSION,
    );
    assert!(e.permanent && e.reason.contains("expected 2"), "{e}");
    // Skipping a version, even chained onto the version in force.
    let mut v3 = next(&st, tighten);
    v3.version = 3;
    refused(
        st.offer(signed(&v3, &[&a[0], &a[1]]), T0),
        rule::POLICY_UPDATE_VERSION,
    );
    // Version 2 chained onto something else.
    let mut broken = next(&st, tighten);
    broken.prev_hash = other1.hash_hex();
    let e = refused(
        st.offer(signed(&broken, &[&a[0], &a[1]]), T0),
        rule::POLICY_UPDATE_CHAIN,
    );
    assert!(e.reason.contains(&v1.hash_hex()), "{e}");
    // An invalid document.
    let mut bad = next(&st, tighten);
    bad.admin_quorum = 0;
    refused(
        st.offer(signed(&bad, &[&a[0], &a[1]]), T0),
        rule::POLICY_UPDATE_INVALID,
    );
    assert_eq!(st.active(), &v1, "nothing refused changed the state");

    // Version 2 applies; then another version 2 is stale and version 1 is stale.
    let v2 = next(&st, tighten);
    assert_eq!(
        st.offer(signed(&v2, &[&a[0], &a[1]]), T0),
        Ok(Offered::Applied)
    );
    let mut v2b = v2.clone();
    eth_asset(&mut v2b).max_per_withdrawal = amount(80 * ETH);
    refused(
        st.offer(signed(&v2b, &[&a[0], &a[1]]), T0),
        rule::POLICY_UPDATE_VERSION,
    );
    refused(
        st.offer(signed(&other1, &[&a[0], &a[1]]), T0),
        rule::POLICY_UPDATE_VERSION,
    );
    // Version 3 must chain onto version 2, not version 1.
    let mut v3 = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(70 * ETH));
    assert_eq!(v3.prev_hash, v2.hash_hex());
    v3.prev_hash = v1.hash_hex();
    refused(
        st.offer(signed(&v3, &[&a[0], &a[1]]), T0),
        rule::POLICY_UPDATE_CHAIN,
    );
    assert_eq!(st.active(), &v2);
}

#[test]
fn offer_needs_a_quorum_of_distinct_admins_in_force() {
    let (a, mut st) = setup();
    let outsider = keys(1).remove(0);
    let v2 = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(90 * ETH));
    assert_eq!(required_signatures(st.active(), &v2), 2);
    // m − 1 signatures.
    let e = refused(
        st.offer(signed(&v2, &[&a[0]]), T0),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    assert!(
        e.reason
            .contains("1 valid distinct admin signatures; 2 are needed"),
        "{e}"
    );
    // One admin signing twice is not a quorum.
    refused(
        st.offer(signed(&v2, &[&a[1], &a[1]]), T0),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    // A non-admin does not count.
    refused(
        st.offer(signed(&v2, &[&a[1], &outsider]), T0),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    // A veto is not an approval.
    let mut sp = signed(&v2, &[&a[0]]);
    sp.signatures.push(AdminSignature::sign(
        &a[1],
        POLICY_VETO_DOMAIN,
        &[&v2.hash()],
    ));
    refused(st.offer(sp, T0), rule::POLICY_UPDATE_SIGNATURES);
    // An approval of a different document does not count.
    let mut sp = signed(&v2, &[&a[0]]);
    sp.signatures.push(approve(st.active(), &a[1]));
    refused(st.offer(sp, T0), rule::POLICY_UPDATE_SIGNATURES);
    // Admins a new version adds cannot approve it; the admins in force decide.
    let v2_add = next(&st, |d| {
        d.admins.push(hex_pub(&outsider));
        d.admins.sort();
    });
    refused(
        st.offer(signed(&v2_add, &[&a[0], &outsider]), T0),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    assert_eq!(st.active().version, 1);
    // A quorum, in any order, with noise around it.
    let mut sp = signed(&v2, &[&outsider, &a[2], &a[2], &a[0]]);
    sp.signatures.insert(
        0,
        AdminSignature {
            admin: a[1].public(),
            signature: vec![0; 64],
        },
    );
    assert_eq!(st.offer(sp, T0), Ok(Offered::Applied));
    assert_eq!(st.active(), &v2);
}

type Edit = fn(&mut PolicyDoc);

/// Changes that only tighten (or, the label, change nothing a withdrawal could use).
fn tightenings() -> Vec<(&'static str, Edit)> {
    vec![
        ("lower max", |d| {
            eth_asset(d).max_per_withdrawal = amount(60 * ETH)
        }),
        ("lower threshold", |d| {
            eth_asset(d).approval_threshold = amount(40 * ETH)
        }),
        ("more approvals", |d| eth_asset(d).approvals_required = 2),
        ("disable asset", |d| eth_asset(d).enabled = false),
        ("remove asset", |d| d.assets.retain(|a| a.asset != "USDC")),
        ("remove whitelist entry", |d| {
            d.whitelist.remove(1);
        }),
        ("later active_from", |d| {
            d.whitelist[0].active_from_ms = T0 + DAY
        }),
        ("label", |d| {
            d.whitelist[0].label = "cold wallet (vault 2)".into()
        }),
        ("add velocity limit", |d| {
            d.velocity.push(VelocityLimit {
                chain: Chain::Bitcoin,
                asset: "BTC".into(),
                scope: Scope::Asset,
                window_ms: H,
                max_amount: Some(amount(100_000_000)),
                max_count: None,
            });
            d.velocity.sort_by(|x, y| x.key().cmp(&y.key()));
        }),
        ("lower velocity amount", |d| {
            d.velocity[0].max_amount = Some(amount(5 * ETH))
        }),
        ("lower velocity count", |d| {
            d.velocity[0].max_count = Some(10)
        }),
        ("velocity amount added to a count limit", |d| {
            d.velocity[1].max_amount = Some(amount(ETH))
        }),
        ("remove backend key", |d| d.backend_keys.clear()),
        ("higher quorum", |d| d.admin_quorum = 3),
        ("longer timelock", |d| d.timelock_ms = 2 * DAY),
        ("freeze with quorum", |d| d.frozen = true),
    ]
}

#[test]
fn tightening_applies_at_once() {
    for (name, edit) in tightenings() {
        let (a, mut st) = setup();
        let v2 = next(&st, edit);
        let changes = diff(st.active(), &v2);
        assert!(!changes.is_empty(), "{name}");
        assert!(
            changes.iter().all(|c| c.effect != Effect::Loosens),
            "{name}: {changes:?}"
        );
        assert_eq!(
            st.offer(signed(&v2, &[&a[0], &a[1]]), T0),
            Ok(Offered::Applied),
            "{name}"
        );
        assert_eq!(st.active(), &v2, "{name}");
        assert!(st.pending.is_none(), "{name}");
    }
    // Several tightenings at once are still a tightening.
    let (a, mut st) = setup();
    let v2 = next(&st, |d| {
        for (_, e) in tightenings() {
            e(d);
        }
    });
    assert_eq!(
        st.offer(signed(&v2, &[&a[0], &a[2]]), T0),
        Ok(Offered::Applied)
    );
    assert_eq!(st.active(), &v2);
}

/// Changes that loosen: each must wait out the time-lock.
fn loosenings() -> Vec<(&'static str, Edit)> {
    vec![
        ("new whitelist destination", |d| {
            d.whitelist.push(WhitelistEntry {
                chain: Chain::Ethereum,
                address: THIRD.into(),
                label: "new".into(),
                active_from_ms: T0 + 10 * DAY,
            });
            d.whitelist
                .sort_by(|x, y| (x.chain, &x.address).cmp(&(y.chain, &y.address)));
        }),
        ("earlier active_from", |d| {
            d.whitelist[1].active_from_ms = 1_600_000_000_000
        }),
        ("higher max", |d| {
            eth_asset(d).max_per_withdrawal = amount(200 * ETH)
        }),
        ("higher approval threshold", |d| {
            eth_asset(d).approval_threshold = amount(60 * ETH)
        }),
        ("fewer approvals", |d| {
            d.assets
                .iter_mut()
                .find(|x| x.asset == "BTC")
                .unwrap()
                .approvals_required = 1
        }),
        ("decimals", |d| eth_asset(d).decimals = 17),
        ("higher velocity amount", |d| {
            d.velocity[0].max_amount = Some(amount(11 * ETH))
        }),
        ("higher velocity count", |d| {
            d.velocity[1].max_count = Some(6)
        }),
        ("velocity amount limit dropped", |d| {
            d.velocity[0].max_amount = None
        }),
        ("velocity count limit dropped", |d| {
            d.velocity[0].max_count = None
        }),
        ("removed velocity limit", |d| {
            d.velocity.remove(1);
        }),
        ("longer velocity window replaces a shorter one", |d| {
            d.velocity[1].window_ms = 2 * H
        }),
        ("new asset", |d| {
            d.assets.push(AssetRule {
                chain: Chain::Polygon,
                asset: "MATIC".into(),
                decimals: 18,
                enabled: true,
                max_per_withdrawal: amount(ETH),
                approval_threshold: amount(ETH),
                approvals_required: 0,
                token: None,
            });
            d.assets
                .sort_by(|x, y| (x.chain, &x.asset).cmp(&(y.chain, &y.asset)));
        }),
        ("enabling asset", |d| {
            d.assets
                .iter_mut()
                .find(|x| x.asset == "USDC")
                .unwrap()
                .enabled = true
        }),
        ("new backend key", |d| {
            d.backend_keys.push(d.admins[0].clone());
            d.backend_keys.sort();
        }),
        ("replaced backend key", |d| {
            d.backend_keys = vec![d.admins[1].clone()]
        }),
        ("lower quorum", |d| d.admin_quorum = 1),
        ("shorter timelock", |d| d.timelock_ms = H),
        ("added admin", |d| {
            d.admins
                .push(IdentitySecret::generate(&mut OsRng).public().to_string());
            d.admins.sort();
        }),
        ("removed admin", |d| {
            d.admins.pop();
            for x in &mut d.assets {
                x.approvals_required = x.approvals_required.min(2);
            }
        }),
        ("replaced destination", |d| {
            d.whitelist[0].address = THIRD.into();
            d.whitelist
                .sort_by(|x, y| (x.chain, &x.address).cmp(&(y.chain, &y.address)));
        }),
    ]
}

#[test]
fn every_loosening_waits_out_the_timelock_in_force() {
    for (name, edit) in loosenings() {
        let (a, mut st) = setup();
        let v1 = st.active().clone();
        let v2 = next(&st, edit);
        assert!(
            diff(&v1, &v2).iter().any(|c| c.effect == Effect::Loosens),
            "{name}: {:?}",
            diff(&v1, &v2)
        );
        let got = st.offer(signed(&v2, &[&a[1], &a[2]]), T0);
        assert_eq!(
            got,
            Ok(Offered::Pending {
                effective_at_ms: T0 + DAY
            }),
            "{name}"
        );
        assert_eq!(st.active(), &v1, "{name}: applied early");
        let p = st.pending.as_ref().expect(name);
        assert_eq!(
            (p.policy.doc.clone(), p.effective_at_ms),
            (v2.clone(), T0 + DAY)
        );
        assert!(!st.tick(T0 + DAY - 1), "{name}");
        assert_eq!(st.active(), &v1, "{name}: applied a millisecond early");
        assert!(st.tick(T0 + DAY), "{name}");
        assert_eq!(st.active(), &v2, "{name}");
        assert!(st.pending.is_none());
        assert!(!st.tick(T0 + 2 * DAY), "{name}: nothing more to apply");
    }
}

#[test]
fn timelock_is_the_one_in_force_and_an_offer_ticks_first() {
    // Shortening the time-lock still waits out the old one.
    let (a, mut st) = setup();
    let v2 = next(&st, |d| d.timelock_ms = H);
    assert_eq!(
        st.offer(signed(&v2, &[&a[0], &a[1]]), T0),
        Ok(Offered::Pending {
            effective_at_ms: T0 + DAY
        })
    );
    assert!(!st.tick(T0 + H));
    assert_eq!(st.active().version, 1);
    // An offer (or a veto) at a later time first applies what is due: version 3 chains onto
    // the now applied version 2 and, being loosening, waits out version 2's one hour.
    let v3 = next_version(&v2, {
        let mut d = v2.clone();
        eth_asset(&mut d).max_per_withdrawal = amount(150 * ETH);
        d
    });
    let t = T0 + DAY + 5;
    assert_eq!(
        st.offer(signed(&v3, &[&a[0], &a[1]]), t),
        Ok(Offered::Pending {
            effective_at_ms: t + H
        })
    );
    assert_eq!(st.active(), &v2);
    // A longer time-lock applies at once (it tightens) and governs the next loosening.
    let (a, mut st) = setup();
    let v2 = next(&st, |d| d.timelock_ms = 3 * DAY);
    assert_eq!(
        st.offer(signed(&v2, &[&a[0], &a[1]]), T0),
        Ok(Offered::Applied)
    );
    let v3 = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(150 * ETH));
    assert_eq!(
        st.offer(signed(&v3, &[&a[0], &a[1]]), T0 + 7),
        Ok(Offered::Pending {
            effective_at_ms: T0 + 7 + 3 * DAY
        })
    );
    assert!(!st.tick(T0 + 7 + 3 * DAY - 1));
    assert!(st.tick(T0 + 7 + 3 * DAY));
    assert_eq!(st.active(), &v3);
    // With no time-lock in force, loosening applies at once.
    let (a, mut st) = setup();
    let v2 = next(&st, |d| d.timelock_ms = 0);
    assert!(matches!(
        st.offer(signed(&v2, &[&a[0], &a[1]]), T0),
        Ok(Offered::Pending { .. })
    ));
    st.tick(T0 + DAY);
    let v3 = next(&st, |d| d.admin_quorum = 1);
    assert_eq!(
        st.offer(signed(&v3, &[&a[0], &a[1]]), T0 + DAY),
        Ok(Offered::Applied)
    );
    assert_eq!(st.active().admin_quorum, 1);
}

#[test]
fn one_admin_freezes_at_once_and_unfreezing_needs_the_quorum() {
    let (a, mut st) = setup();
    let outsider = keys(1).remove(0);
    let freeze = next(&st, |d| d.frozen = true);
    assert!(is_freeze_only(st.active(), &freeze));
    assert_eq!(required_signatures(st.active(), &freeze), 1);
    let changes = diff(st.active(), &freeze);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].effect, changes[0].what.as_str()),
        (Effect::Tightens, "freeze")
    );
    // Not by a non-admin, not with no signature.
    refused(
        st.offer(signed(&freeze, &[&outsider]), T0),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    refused(
        st.offer(signed(&freeze, &[]), T0),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    // One admin: applied at once.
    assert_eq!(
        st.offer(signed(&freeze, &[&a[2]]), T0),
        Ok(Offered::Applied)
    );
    assert!(st.active().frozen);
    assert_eq!(st.active(), &freeze);

    // Freeze plus anything else is not freeze-only: the quorum is needed.
    let (a, mut st) = setup();
    let freeze_more = next(&st, |d| {
        d.frozen = true;
        eth_asset(d).max_per_withdrawal = amount(ETH);
    });
    assert!(!is_freeze_only(st.active(), &freeze_more));
    assert_eq!(required_signatures(st.active(), &freeze_more), 2);
    refused(
        st.offer(signed(&freeze_more, &[&a[0]]), T0),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    assert_eq!(
        st.offer(signed(&freeze_more, &[&a[0], &a[1]]), T0),
        Ok(Offered::Applied)
    );

    // Unfreezing: the quorum, no time-lock.
    let (a, mut st) = setup();
    let freeze = next(&st, |d| d.frozen = true);
    st.offer(signed(&freeze, &[&a[0]]), T0).unwrap();
    let unfreeze = next(&st, |d| d.frozen = false);
    assert!(!is_freeze_only(st.active(), &unfreeze));
    assert_eq!(required_signatures(st.active(), &unfreeze), 2);
    let changes = diff(st.active(), &unfreeze);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].effect, changes[0].what.as_str()),
        (Effect::Neutral, "unfreeze")
    );
    refused(
        st.offer(signed(&unfreeze, &[&a[0]]), T0 + 1),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    refused(
        st.offer(signed(&unfreeze, &[&a[1], &a[1]]), T0 + 1),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    assert_eq!(
        st.offer(signed(&unfreeze, &[&a[0], &a[1]]), T0 + 1),
        Ok(Offered::Applied)
    );
    assert!(!st.active().frozen);
    assert_eq!(st.active().version, 3);
    // "Freezing" what is already frozen is no freeze-only change.
    let mut frozen = st.active().clone();
    frozen.frozen = true;
    let again = next_version(&frozen, frozen.clone());
    assert!(!is_freeze_only(&frozen, &again));
}

#[test]
fn a_freeze_supersedes_a_pending_loosening() {
    let (a, mut st) = setup();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    assert!(matches!(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0),
        Ok(Offered::Pending { .. })
    ));
    // One admin freezes the version in force.
    let freeze = next(&st, |d| d.frozen = true);
    assert_eq!(freeze.version, loosen.version);
    assert_eq!(
        st.offer(signed(&freeze, &[&a[2]]), T0 + H),
        Ok(Offered::Applied)
    );
    assert!(st.pending.is_none(), "the pending version was dropped");
    assert!(st.active().frozen);
    // Its time comes and goes: nothing applies.
    assert!(!st.tick(T0 + 2 * DAY));
    assert_eq!(st.active(), &freeze);
    // Offered again, the stale version is refused by version…
    refused(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0 + 2 * DAY),
        rule::POLICY_UPDATE_VERSION,
    );
    // …and renumbered, by the chain.
    let mut renumbered = loosen.clone();
    renumbered.version = 3;
    refused(
        st.offer(signed(&renumbered, &[&a[0], &a[1]]), T0 + 2 * DAY),
        rule::POLICY_UPDATE_CHAIN,
    );
    assert_eq!(st.active(), &freeze);
}

#[test]
fn a_newer_version_supersedes_a_pending_one() {
    // A tightening applied meanwhile drops the pending loosening.
    let (a, mut st) = setup();
    let loosen = next(&st, |d| d.admin_quorum = 1);
    assert!(matches!(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0),
        Ok(Offered::Pending { .. })
    ));
    let tighten = next(&st, |d| d.backend_keys.clear());
    assert_eq!(
        st.offer(signed(&tighten, &[&a[0], &a[2]]), T0 + 1),
        Ok(Offered::Applied)
    );
    assert!(st.pending.is_none());
    assert!(!st.tick(T0 + 2 * DAY));
    assert_eq!(st.active(), &tighten);
    assert_eq!(st.active().admin_quorum, 2);
    // Another loosening of the same version replaces the pending one and starts its own clock.
    let (a, mut st) = setup();
    let first = next(&st, |d| d.admin_quorum = 1);
    let second = next(&st, |d| d.timelock_ms = H);
    st.offer(signed(&first, &[&a[0], &a[1]]), T0).unwrap();
    assert_eq!(
        st.offer(signed(&second, &[&a[0], &a[1]]), T0 + H),
        Ok(Offered::Pending {
            effective_at_ms: T0 + H + DAY
        })
    );
    assert!(!st.tick(T0 + DAY));
    assert_eq!(st.active().version, 1);
    assert!(st.tick(T0 + H + DAY));
    assert_eq!(st.active(), &second);
}

#[test]
fn any_admin_vetoes_a_pending_version_for_good() {
    let (a, mut st) = setup();
    let outsider = keys(1).remove(0);
    let v1 = st.active().clone();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    let h = loosen.hash();
    st.offer(signed(&loosen, &[&a[0], &a[1]]), T0).unwrap();

    // Not by a non-admin, not under the approval domain, not over another hash, not forged.
    let e = refused(
        st.veto(
            &h,
            &AdminSignature::sign(&outsider, POLICY_VETO_DOMAIN, &[&h]),
            T0 + 1,
        ),
        rule::POLICY_VETO_INVALID,
    );
    assert!(e.permanent);
    refused(
        st.veto(&h, &approve(&loosen, &a[2]), T0 + 1),
        rule::POLICY_VETO_INVALID,
    );
    refused(
        st.veto(
            &h,
            &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&v1.hash()]),
            T0 + 1,
        ),
        rule::POLICY_VETO_INVALID,
    );
    let forged = AdminSignature {
        admin: a[2].public(),
        signature: AdminSignature::sign(&outsider, POLICY_VETO_DOMAIN, &[&h]).signature,
    };
    refused(st.veto(&h, &forged, T0 + 1), rule::POLICY_VETO_INVALID);
    assert!(
        st.pending.is_some() && st.vetoed.is_empty(),
        "invalid vetoes change nothing"
    );

    // One admin (even one of those who approved it) vetoes: the pending version is dropped.
    st.veto(
        &h,
        &AdminSignature::sign(&a[0], POLICY_VETO_DOMAIN, &[&h]),
        T0 + 2,
    )
    .unwrap();
    assert!(st.pending.is_none());
    assert!(st.vetoed.contains(&h));
    assert!(!st.tick(T0 + 2 * DAY));
    assert_eq!(st.active(), &v1);
    // Offered again, even with every signature: refused for good.
    let e = refused(
        st.offer(signed(&loosen, &[&a[0], &a[1], &a[2]]), T0 + 3 * DAY),
        rule::POLICY_UPDATE_VETOED,
    );
    assert!(e.permanent && e.reason.contains(&loosen.hash_hex()), "{e}");
    assert_eq!(st.active(), &v1);
    // A different version 2 is still possible.
    let other = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(400 * ETH));
    assert!(matches!(
        st.offer(signed(&other, &[&a[0], &a[1]]), T0 + 3 * DAY),
        Ok(Offered::Pending { .. })
    ));

    // A veto that arrives before its version is kept, and the version is refused on arrival.
    let (a, mut st) = setup();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    let h = loosen.hash();
    st.veto(
        &h,
        &AdminSignature::sign(&a[1], POLICY_VETO_DOMAIN, &[&h]),
        T0,
    )
    .unwrap();
    refused(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0 + 1),
        rule::POLICY_UPDATE_VETOED,
    );
    assert!(st.pending.is_none());

    // A veto after the time-lock ran out is too late: the version applied first.
    let (a, mut st) = setup();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    let h = loosen.hash();
    st.offer(signed(&loosen, &[&a[0], &a[1]]), T0).unwrap();
    st.veto(
        &h,
        &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&h]),
        T0 + DAY,
    )
    .unwrap();
    assert_eq!(st.active(), &loosen);
}

#[test]
fn a_veto_cannot_stop_a_freeze_or_a_tightening() {
    // The freeze-only next version is predictable, so one admin could veto it in advance;
    // any admin must still be able to freeze, and tightening must still apply at once.
    let (a, mut st) = setup();
    let freeze = next(&st, |d| d.frozen = true);
    let fh = freeze.hash();
    st.veto(
        &fh,
        &AdminSignature::sign(&a[0], POLICY_VETO_DOMAIN, &[&fh]),
        T0,
    )
    .unwrap();
    assert_eq!(
        st.offer(signed(&freeze, &[&a[1]]), T0 + 1),
        Ok(Offered::Applied)
    );
    assert!(st.active().frozen);
    // Unfreezing (quorum, no time-lock) cannot be held back by one admin either.
    let unfreeze = next(&st, |d| d.frozen = false);
    let uh = unfreeze.hash();
    st.veto(
        &uh,
        &AdminSignature::sign(&a[0], POLICY_VETO_DOMAIN, &[&uh]),
        T0 + 2,
    )
    .unwrap();
    assert_eq!(
        st.offer(signed(&unfreeze, &[&a[1], &a[2]]), T0 + 3),
        Ok(Offered::Applied)
    );
    assert!(!st.active().frozen);
    let tighten = next(&st, |d| d.whitelist.clear());
    let th = tighten.hash();
    st.veto(
        &th,
        &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&th]),
        T0 + 4,
    )
    .unwrap();
    assert_eq!(
        st.offer(signed(&tighten, &[&a[0], &a[1]]), T0 + 5),
        Ok(Offered::Applied)
    );
    assert!(st.active().whitelist.is_empty());
}

#[test]
fn reoffering_the_current_or_pending_version_is_known() {
    let (a, mut st) = setup();
    let v1 = st.active().clone();
    // The version in force, even with fewer signatures than it had.
    assert_eq!(st.offer(signed(&v1, &[&a[2]]), T0), Ok(Offered::Known));
    assert_eq!(
        st.current.signatures.len(),
        2,
        "the stored signatures are kept"
    );
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    assert_eq!(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0),
        Ok(Offered::Pending {
            effective_at_ms: T0 + DAY
        })
    );
    // The pending one, later: Known, and its clock is not restarted.
    assert_eq!(
        st.offer(signed(&loosen, &[&a[1], &a[2]]), T0 + H),
        Ok(Offered::Known)
    );
    assert_eq!(st.pending.as_ref().unwrap().effective_at_ms, T0 + DAY);
    assert_eq!(
        st.offer(signed(&v1, &[&a[0], &a[1]]), T0 + H),
        Ok(Offered::Known)
    );
    assert!(st.tick(T0 + DAY));
    assert_eq!(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0 + DAY),
        Ok(Offered::Known)
    );
    // The old one is now stale.
    refused(
        st.offer(signed(&v1, &[&a[0], &a[1]]), T0 + DAY),
        rule::POLICY_UPDATE_VERSION,
    );
}

#[test]
fn diff_lists_and_classifies_each_change() {
    let admins = keys(3);
    let old = base_doc(&admins, 2);
    assert!(diff(&old, &old).is_empty());
    // Version and prev_hash are not changes.
    let renumbered = next_version(&old, old.clone());
    assert!(diff(&old, &renumbered).is_empty());

    let new_admin = IdentitySecret::generate(&mut OsRng).public().to_string();
    let new_backend = IdentitySecret::generate(&mut OsRng).public().to_string();
    let mut new = old.clone();
    {
        let eth = eth_asset(&mut new);
        eth.max_per_withdrawal = amount(200 * ETH);
        eth.approval_threshold = amount(20 * ETH);
        eth.approvals_required = 2;
    }
    new.assets.retain(|x| x.asset != "BTC");
    new.assets
        .iter_mut()
        .find(|x| x.asset == "USDC")
        .unwrap()
        .enabled = true;
    new.assets.push(AssetRule {
        chain: Chain::Polygon,
        asset: "MATIC".into(),
        decimals: 18,
        enabled: true,
        max_per_withdrawal: amount(ETH),
        approval_threshold: amount(ETH),
        approvals_required: 0,
        token: None,
    });
    new.assets
        .sort_by(|x, y| (x.chain, &x.asset).cmp(&(y.chain, &y.asset)));
    new.whitelist[0].label = "cold wallet 2".into();
    new.whitelist[1].active_from_ms = 1;
    new.whitelist.push(WhitelistEntry {
        chain: Chain::Ethereum,
        address: THIRD.into(),
        label: "desk".into(),
        active_from_ms: 5,
    });
    new.whitelist
        .sort_by(|x, y| (x.chain, &x.address).cmp(&(y.chain, &y.address)));
    new.velocity[0].max_amount = Some(amount(5 * ETH));
    new.velocity[0].max_count = None;
    new.velocity[1].max_amount = Some(amount(ETH));
    new.velocity[1].max_count = Some(9);
    new.velocity.push(VelocityLimit {
        chain: Chain::Ethereum,
        asset: "ETH".into(),
        scope: Scope::Asset,
        window_ms: 7 * DAY,
        max_amount: None,
        max_count: Some(1000),
    });
    new.velocity.sort_by(|x, y| x.key().cmp(&y.key()));
    let old_backend = new.backend_keys[0].clone();
    new.backend_keys = vec![new_backend.clone()];
    let removed_admin = new.admins.remove(0);
    new.admins.push(new_admin.clone());
    new.admins.sort();
    new.admin_quorum = 3;
    new.timelock_ms = H;
    new.frozen = true;
    new.validate().unwrap();

    use Effect::*;
    let mut want: Vec<(Effect, String)> = vec![
        (
            Loosens,
            "asset ETH on ethereum: per-withdrawal maximum 100 ETH -> 200 ETH".into(),
        ),
        (
            Tightens,
            "asset ETH on ethereum: approval threshold 50 ETH -> 20 ETH".into(),
        ),
        (
            Tightens,
            "asset ETH on ethereum: approvals required 1 -> 2".into(),
        ),
        (
            Loosens,
            "asset USDC on ethereum: enabled false -> true".into(),
        ),
        (Tightens, "asset BTC on bitcoin: removed".into()),
        (Loosens, "asset MATIC on polygon: added".into()),
        (
            Neutral,
            format!("whitelist ethereum {COLD} (cold wallet): label -> cold wallet 2"),
        ),
        (
            Loosens,
            format!("whitelist ethereum {OTHER} (exchange B): active from 1700000000000 -> 1 ms"),
        ),
        (
            Loosens,
            format!("whitelist ethereum {THIRD} (desk): added, active from 5 ms"),
        ),
        (
            Tightens,
            "velocity ethereum ETH asset per 24h: max amount 10 ETH -> 5 ETH".into(),
        ),
        (
            Loosens,
            "velocity ethereum ETH asset per 24h: max count 100 -> none".into(),
        ),
        (
            Tightens,
            "velocity ethereum ETH destination per 1h: max amount none -> 1 ETH".into(),
        ),
        (
            Loosens,
            "velocity ethereum ETH destination per 1h: max count 5 -> 9".into(),
        ),
        (Tightens, "velocity ethereum ETH asset per 7d: added".into()),
        (Tightens, format!("backend key {old_backend}: removed")),
        (Loosens, format!("backend key {new_backend}: added")),
        (Loosens, format!("admin {removed_admin}: removed")),
        (Loosens, format!("admin {new_admin}: added")),
        (Tightens, "admin quorum 2 -> 3".into()),
        (Loosens, "time-lock 86400000 -> 3600000 ms".into()),
        (Tightens, "freeze".into()),
    ];
    let mut got: Vec<(Effect, String)> = diff(&old, &new)
        .into_iter()
        .map(|c| (c.effect, c.what))
        .collect();
    let key = |x: &(Effect, String)| x.1.clone();
    want.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got, want);

    // Removed velocity limits and decimals changes loosen; lower limits, removed entries tighten.
    let mut d = old.clone();
    d.velocity.remove(0);
    eth_asset(&mut d).decimals = 6;
    let got: Vec<_> = diff(&old, &d)
        .into_iter()
        .map(|c| (c.effect, c.what))
        .collect();
    assert_eq!(
        got,
        [
            (
                Loosens,
                "asset ETH on ethereum: decimals 18 -> 6".to_string()
            ),
            (
                Loosens,
                "velocity ethereum ETH asset per 24h: removed".to_string()
            ),
        ]
    );
    let mut d = old.clone();
    d.whitelist.remove(0);
    d.whitelist[0].active_from_ms += 1;
    d.admin_quorum = 1;
    d.timelock_ms = 2 * DAY;
    let got: Vec<_> = diff(&old, &d)
        .into_iter()
        .map(|c| (c.effect, c.what))
        .collect();
    assert_eq!(
        got,
        [
            (Tightens, format!("whitelist ethereum {COLD} (cold wallet): removed")),
            (Tightens, format!("whitelist ethereum {OTHER} (exchange B): active from 1700000000000 -> 1700000000001 ms")),
            (Loosens, "admin quorum 2 -> 1".to_string()),
            (Tightens, "time-lock 86400000 -> 172800000 ms".to_string()),
        ]
    );
    // Effects serialise in kebab-case, as the admin API shows them.
    assert_eq!(serde_json::to_string(&Loosens).unwrap(), "\"loosens\"");
    assert_eq!(serde_json::to_string(&Tightens).unwrap(), "\"tightens\"");
    assert_eq!(serde_json::to_string(&Neutral).unwrap(), "\"neutral\"");
}

#[test]
fn admin_rotation_hands_governance_to_the_new_admins() {
    let (a, mut st) = setup();
    let fresh = keys(1).remove(0);
    let rotated = next(&st, |d| {
        d.admins.retain(|k| *k != hex_pub(&a[0]));
        d.admins.push(hex_pub(&fresh));
        d.admins.sort();
    });
    st.offer(signed(&rotated, &[&a[0], &a[1]]), T0).unwrap();
    assert!(st.tick(T0 + DAY));
    assert_eq!(st.active(), &rotated);
    let v3 = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(ETH));
    // The removed admin no longer counts; the new one does.
    refused(
        st.offer(signed(&v3, &[&a[0], &a[1]]), T0 + DAY),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    let freeze = next(&st, |d| d.frozen = true);
    refused(
        st.offer(signed(&freeze, &[&a[0]]), T0 + DAY),
        rule::POLICY_UPDATE_SIGNATURES,
    );
    let h = freeze.hash();
    refused(
        st.veto(
            &h,
            &AdminSignature::sign(&a[0], POLICY_VETO_DOMAIN, &[&h]),
            T0 + DAY,
        ),
        rule::POLICY_VETO_INVALID,
    );
    assert_eq!(
        st.offer(signed(&v3, &[&fresh, &a[1]]), T0 + DAY),
        Ok(Offered::Applied)
    );
}

// ---------------------------------------------------------------------------------------------
// persist.rs
// ---------------------------------------------------------------------------------------------

#[test]
fn stored_state_round_trips_with_pending_and_vetoed() {
    let (a, mut st) = setup();
    // Without pending or vetoes.
    let bytes = encode_state(&st);
    assert_eq!(decode_state(&bytes).unwrap(), st);
    // With a vetoed version, a pending one, and signatures that include noise.
    let vetoed = next(&st, |d| d.admin_quorum = 1);
    let h = vetoed.hash();
    st.offer(signed(&vetoed, &[&a[0], &a[1]]), T0).unwrap();
    st.veto(
        &h,
        &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&h]),
        T0,
    )
    .unwrap();
    let unseen = [7u8; 32];
    st.veto(
        &unseen,
        &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&unseen]),
        T0,
    )
    .unwrap();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    let mut sp = signed(&loosen, &[&a[0], &a[1], &a[1]]);
    sp.signatures.push(AdminSignature {
        admin: a[2].public(),
        signature: vec![1, 2, 3],
    });
    st.offer(sp, T0 + 5).unwrap();
    assert!(st.pending.is_some() && st.vetoed.len() == 2);
    let bytes = encode_state(&st);
    let back = decode_state(&bytes).unwrap();
    assert_eq!(back, st);
    assert_eq!(encode_state(&back), bytes);
    // The restored state behaves the same: the pending version applies on time and the
    // vetoed one stays refused.
    let mut back = back;
    assert!(!back.tick(T0 + 5 + DAY - 1));
    assert!(back.tick(T0 + 5 + DAY));
    assert_eq!(back.active(), &loosen);
    let mut again = decode_state(&bytes).unwrap();
    refused(
        again.offer(signed(&vetoed, &[&a[0], &a[1]]), T0 + 6),
        rule::POLICY_UPDATE_VETOED,
    );

    // Damaged records are refused.
    assert!(decode_state(b"").is_err());
    assert!(decode_state(b"{}").is_err());
    let text = String::from_utf8(bytes.clone()).unwrap();
    let e = decode_state(replace_once(&text, "{\"version\":1,", "{\"version\":2,").as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("schema version 2"), "{e}");
    // A stored document that is not canonical (here: tampered) does not load.
    let tampered = text.replacen("\\\"admin_quorum\\\":2", "\\\"admin_quorum\\\": 2", 1);
    assert_ne!(tampered, text);
    assert!(decode_state(tampered.as_bytes()).is_err());
    let bad_veto = replace_once(&text, &hex::encode(unseen), "0707");
    assert!(decode_state(bad_veto.as_bytes()).is_err());
}

// ---------------------------------------------------------------------------------------------
// docs/policy.md: the rule-tag table
// ---------------------------------------------------------------------------------------------

/// The documented form of every velocity tag.
const VELOCITY_PATTERN: &str = "policy-velocity-<scope>-<amount|count>-<window>";

fn read(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `pub const NAME: &str = "value";` in refusal.rs whose value starts with `policy-` or
/// `ledger-`; the velocity prefix becomes the documented pattern.
fn code_tags() -> BTreeSet<String> {
    let src = read("src/refusal.rs");
    let mut out = BTreeSet::new();
    // Declarations may be wrapped over lines: read each up to its `;`, whitespace collapsed.
    for decl in src.split("pub const ").skip(1) {
        let decl = decl.split(';').next().unwrap_or_default();
        let decl = decl.split_whitespace().collect::<Vec<_>>().join(" ");
        let Some((name, rest)) = decl.split_once(':') else {
            continue;
        };
        let Some(value) = rest.trim().strip_prefix("&str = \"") else {
            continue;
        };
        let value = value.strip_suffix('"').unwrap_or_else(|| panic!("{decl}"));
        if !(value.starts_with("policy-") || value.starts_with("ledger-")) {
            continue;
        }
        if name.trim() == "POLICY_VELOCITY_PREFIX" {
            assert_eq!(value, rule::POLICY_VELOCITY_PREFIX);
            out.insert(VELOCITY_PATTERN.to_string());
        } else {
            out.insert(value.to_string());
        }
    }
    out
}

/// Splits a table row into cells at `|` not escaped as `\|` (the escape is removed).
fn cells(row: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = row.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The rule-tag table of docs/policy.md: tag → (permanence column, meaning).
fn doc_table(doc: &str) -> BTreeMap<String, (String, String)> {
    let mut lines = doc
        .lines()
        .skip_while(|l| !(l.starts_with('#') && l.contains("Rule tags")));
    assert!(
        lines.next().is_some(),
        "docs/policy.md has no \"Rule tags\" heading"
    );
    let rows: Vec<&str> = lines
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'))
        .collect();
    assert!(rows.len() > 2, "the rule-tag table is empty");
    assert!(
        cells(rows[1])
            .iter()
            .all(|c| c.chars().all(|x| matches!(x, '-' | ':'))),
        "{}",
        rows[1]
    );
    let mut out = BTreeMap::new();
    for row in &rows[2..] {
        let c = cells(row);
        assert_eq!(c.len(), 3, "{row}");
        let first = &c[0];
        let tags: Vec<&str> = first.split('`').skip(1).step_by(2).collect();
        assert_eq!(tags.len(), 1, "one backticked tag per row: {row}");
        assert!(
            c[1].starts_with("permanent") || c[1].starts_with("temporary"),
            "second column says permanent or temporary: {row}"
        );
        assert!(c[2].len() > 10, "a meaning: {row}");
        let dup = out.insert(tags[0].to_string(), (c[1].clone(), c[2].clone()));
        assert!(dup.is_none(), "{} listed twice", tags[0]);
    }
    out
}

#[test]
fn rule_tags_documented() {
    let doc = read("../docs/policy.md");
    let code = code_tags();
    assert!(code.contains("policy-frozen") && code.contains("ledger-notice-invalid"));
    assert!(code.contains(VELOCITY_PATTERN));
    let documented: BTreeSet<String> = doc_table(&doc).into_keys().collect();
    let undocumented: Vec<_> = code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "in code but not in docs/policy.md: {undocumented:?}; documented but not in code: {unknown:?}"
    );
    // The pattern also appears verbatim (outside the table, where `|` needs no escape).
    assert!(doc.contains(&format!("`{VELOCITY_PATTERN}`")));
}

#[test]
fn documented_toml_example_is_a_valid_policy() {
    let doc = read("../docs/policy.md");
    let start = doc.find("```toml\n").expect("a TOML example") + "```toml\n".len();
    let text = &doc[start..start + doc[start..].find("```").expect("closed")];
    let form = PolicyForm::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let p = form
        .to_doc(1, &zero_hash())
        .unwrap_or_else(|e| panic!("{e}"));
    let eth = p.asset(Chain::Ethereum, "ETH").expect("ETH");
    assert_eq!((eth.decimals, eth.enabled), (18, true));
    assert_eq!(eth.max_per_withdrawal.get(), 5 * ETH);
    assert_eq!(eth.approval_threshold.get(), 2 * ETH);
    assert_eq!(eth.approvals_required, 1);
    assert_eq!(
        p.whitelisted(Chain::Ethereum, COLD).unwrap().active_from_ms,
        0
    );
    assert_eq!(
        p.whitelisted(Chain::Ethereum, OTHER)
            .unwrap()
            .active_from_ms,
        parse_rfc3339("2026-12-01T09:00:00Z").unwrap()
    );
    assert!(p.velocity.iter().any(|v| v.scope == Scope::Asset
        && v.window_ms == DAY
        && v.max_amount == Some(amount(10 * ETH))));
    assert_eq!(
        (p.admins.len(), p.admin_quorum, p.timelock_ms, p.frozen),
        (3, 2, DAY, false)
    );
    assert_eq!(p.backend_keys.len(), 1);
}

#[test]
fn documented_permanence_matches_governance_refusals() {
    let table = doc_table(&read("../docs/policy.md"));
    let (a, mut st) = setup();
    let outsider = keys(1).remove(0);
    let mut seen = Vec::new();
    let v2 = next(&st, |d| d.admin_quorum = 1);
    let mut bad = v2.clone();
    bad.version = 0;
    seen.push(st.offer(signed(&bad, &[&a[0], &a[1]]), T0).unwrap_err());
    let mut skip = v2.clone();
    skip.version = 3;
    seen.push(st.offer(signed(&skip, &[&a[0], &a[1]]), T0).unwrap_err());
    let mut unchained = v2.clone();
    unchained.prev_hash = "ab".repeat(32);
    seen.push(
        st.offer(signed(&unchained, &[&a[0], &a[1]]), T0)
            .unwrap_err(),
    );
    seen.push(st.offer(signed(&v2, &[&a[0]]), T0).unwrap_err());
    let h = v2.hash();
    seen.push(
        st.veto(
            &h,
            &AdminSignature::sign(&outsider, POLICY_VETO_DOMAIN, &[&h]),
            T0,
        )
        .unwrap_err(),
    );
    st.veto(
        &h,
        &AdminSignature::sign(&a[0], POLICY_VETO_DOMAIN, &[&h]),
        T0,
    )
    .unwrap();
    seen.push(st.offer(signed(&v2, &[&a[0], &a[1]]), T0).unwrap_err());
    let v1 = st.active().clone();
    seen.push(PolicyState::genesis(&pinned(&a[..2]), 2, signed(&v1, &[&a[0], &a[1]])).unwrap_err());
    let tags: BTreeSet<&str> = seen.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(tags.len(), 7, "{tags:?}");
    for r in &seen {
        let (perm, _) = table
            .get(&r.rule)
            .unwrap_or_else(|| panic!("{} not documented", r.rule));
        let documented_permanent = perm.starts_with("permanent");
        assert_eq!(
            r.permanent, documented_permanent,
            "{}: code {} vs doc {perm}",
            r.rule, r.permanent
        );
    }
}

#[test]
fn vetoes_are_bounded_and_forgotten_once_a_newer_version_applies() {
    let (a, mut st) = setup();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    let h = loosen.hash();
    st.offer(signed(&loosen, &[&a[0], &a[1]]), T0).unwrap();
    st.veto(
        &h,
        &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&h]),
        T0 + 1,
    )
    .unwrap();
    // Vetoes of documents this node never saw, up to the bound.
    for i in 1..MAX_VETOES {
        let mut other = [7u8; 32];
        other[..2].copy_from_slice(&(i as u16).to_be_bytes());
        st.veto(
            &other,
            &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&other]),
            T0 + 1,
        )
        .unwrap();
    }
    assert_eq!(st.vetoed.len(), MAX_VETOES);
    let one_more = [9u8; 32];
    refused(
        st.veto(
            &one_more,
            &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&one_more]),
            T0 + 1,
        ),
        rule::POLICY_VETO_INVALID,
    );
    // A tightening applies: the vetoes are forgotten, and the vetoed document still cannot
    // return, because it no longer follows the version in force.
    let tighten = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(50 * ETH));
    assert_eq!(
        st.offer(signed(&tighten, &[&a[0], &a[1]]), T0 + 2),
        Ok(Offered::Applied)
    );
    assert!(st.vetoed.is_empty());
    refused(
        st.offer(signed(&loosen, &[&a[0], &a[1], &a[2]]), T0 + 3),
        rule::POLICY_UPDATE_VERSION,
    );
}

#[test]
fn retiring_a_signer_tightens_bringing_it_back_loosens_and_the_list_is_canonical() {
    let (_, state) = setup();
    let before_hash = state.active().hash();
    let mut same = state.active().clone();
    same.retired_signers = Vec::new();
    assert_eq!(same.hash(), before_hash, "an empty list keeps old hashes");
    let retired = next(&state, |d| d.retired_signers = vec![2]);
    let changes = diff(state.active(), &retired);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].effect, Effect::Tightens);
    assert!(changes[0].what.contains("signer 2: retired"), "{changes:?}");
    let back = diff(&retired, state.active());
    assert_eq!(back[0].effect, Effect::Loosens, "{back:?}");
    // The form carries it both ways.
    let form = PolicyForm::from_doc(&retired);
    assert_eq!(form.retired_signers, vec![2]);
    for bad in [vec![3, 2], vec![2, 2], vec![0]] {
        let mut d = retired.clone();
        d.retired_signers = bad.clone();
        assert!(d.validate().is_err(), "{bad:?} must be refused");
    }
}
