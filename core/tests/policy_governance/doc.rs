//! The canonical policy document (`policy/doc.rs`): encoding, validation, strict decoding and hash.

use std::collections::HashSet;

use k256::elliptic_curve::sec1::ToEncodedPoint;
use quorate_core::{
    address::Chain,
    identity::IdentitySecret,
    policy::{
        doc::{HASH_DOMAIN, MAX_ADMINS, MAX_LABEL_LEN},
        AssetRule, PolicyDoc, Scope, VelocityLimit,
    },
};
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use super::common::*;

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
