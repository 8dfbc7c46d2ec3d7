//! Fixtures shared by the policy governance tests: a valid genesis document, admin keys and
//! signatures, and helpers for editing and checking refusals.

use std::collections::BTreeSet;

use quorate_core::{
    address::Chain,
    amount::Amount,
    identity::IdentitySecret,
    policy::{
        doc::{zero_hash, FORMAT},
        governance::{next_version, POLICY_APPROVAL_DOMAIN},
        AdminSignature, AssetRule, PolicyDoc, PolicyState, Scope, SignedPolicy, VelocityLimit,
        WhitelistEntry,
    },
    refusal::{Refusal, Rule},
};
use rand::rngs::OsRng;

pub(crate) const H: u64 = 3_600_000;
pub(crate) const DAY: u64 = 24 * H;
pub(crate) const ETH: u128 = 1_000_000_000_000_000_000;
/// EIP-55 examples (their own canonical form).
pub(crate) const COLD: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
pub(crate) const OTHER: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";
pub(crate) const THIRD: &str = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB";
/// A time well after every `active_from` used here.
pub(crate) const T0: u64 = 1_800_000_000_000;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

pub(crate) fn keys(n: usize) -> Vec<IdentitySecret> {
    (0..n)
        .map(|_| IdentitySecret::generate(&mut OsRng))
        .collect()
}

pub(crate) fn hex_pub(k: &IdentitySecret) -> String {
    k.public().to_string()
}

pub(crate) fn amount(v: u128) -> Amount {
    Amount::new(v).unwrap()
}

/// A valid genesis document governed by `admins` with `quorum`: ETH and a disabled USDC on
/// ethereum, BTC; two whitelist entries; asset and destination velocity limits on ETH.
pub(crate) fn base_doc(admins: &[IdentitySecret], quorum: u16) -> PolicyDoc {
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

pub(crate) fn approve(doc: &PolicyDoc, k: &IdentitySecret) -> AdminSignature {
    AdminSignature::sign(k, POLICY_APPROVAL_DOMAIN, &[&doc.hash()])
}

pub(crate) fn signed(doc: &PolicyDoc, signers: &[&IdentitySecret]) -> SignedPolicy {
    SignedPolicy {
        doc: doc.clone(),
        signatures: signers.iter().map(|k| approve(doc, k)).collect(),
    }
}

pub(crate) fn pinned(
    admins: &[IdentitySecret],
) -> BTreeSet<quorate_core::identity::IdentityPublic> {
    admins.iter().map(IdentitySecret::public).collect()
}

/// Three admins, quorum 2, genesis installed.
pub(crate) fn setup() -> (Vec<IdentitySecret>, PolicyState) {
    let admins = keys(3);
    let doc = base_doc(&admins, 2);
    let state = PolicyState::genesis(&pinned(&admins), 2, signed(&doc, &[&admins[0], &admins[1]]))
        .expect("genesis");
    (admins, state)
}

/// The next version of what is in force, edited by `f`.
pub(crate) fn next(state: &PolicyState, f: impl FnOnce(&mut PolicyDoc)) -> PolicyDoc {
    let mut d = state.active().clone();
    f(&mut d);
    let d = next_version(state.active(), d);
    d.validate().expect("edited document is valid");
    d
}

pub(crate) fn refused(r: Result<impl std::fmt::Debug, Refusal>, tag: Rule) -> Refusal {
    let e = r.expect_err(&tag.as_str());
    assert_eq!(e.rule, tag, "{e}");
    assert!(!e.reason.is_empty());
    e
}

pub(crate) fn eth_asset(d: &mut PolicyDoc) -> &mut AssetRule {
    d.assets
        .iter_mut()
        .find(|a| a.chain == Chain::Ethereum && a.asset == "ETH")
        .unwrap()
}

/// Replaces exactly one occurrence of `from` in `s`.
pub(crate) fn replace_once(s: &str, from: &str, to: &str) -> String {
    assert_eq!(s.matches(from).count(), 1, "{from:?} in {s}");
    s.replacen(from, to, 1)
}
