//! Solana in the intent and the governed policy: the version-2 intent that carries what only
//! the outside world knows (pinned by `vectors/intent_v2.json`; `QUORATE_WRITE_VECTORS=1`
//! rewrites it), the `[solana]` section and how governance weighs its changes, and every way a
//! signer refuses to build a transaction the intent and its policy do not give.

use quorate_core::{
    chains::solana::{self, Asset, ComputeBudget, Lifetime},
    intent::{IntentError, SolanaTerms, WithdrawalIntent, INTENT_VERSION, INTENT_VERSION_2},
    message::{chain_format, chain_format_for, signing_message, ChainFormat, Scheme},
    policy::{diff, Effect, PolicyDoc, PolicyForm},
};
use serde_json::{json, Value};

const ADMIN: &str = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5";
const BACKEND: &str = "02f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9";
/// A wallet (the public key of the Ed25519 secret [7; 32]) and a mint (of [9; 32]).
const DEST: &str = "GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB";
const MINT: &str = "J2xccRtuG43drESLYznHhLhQkLTdfepcKYbiQ9BsJVaf";
/// A nonce account of the pool (the bytes [3; 32]); [4; 32] is another.
const NONCE_ACCOUNT: &str = "CktRuQ2mttgRGkXJtyksdKHjUdc2C4TgDzyB98oEzy8";
/// The cluster's Ed25519 group key in these tests (any 32 bytes: the signer's own key).
const WALLET: [u8; 32] = [
    0x3b, 0x6a, 0x27, 0xbc, 0xce, 0xb6, 0xa4, 0x2d, 0x62, 0xa3, 0xa8, 0xd0, 0x2a, 0x6f, 0x0d, 0x73,
    0x65, 0x32, 0x15, 0x77, 0x1d, 0xe2, 0x43, 0xa6, 0x3a, 0xc0, 0x48, 0xa1, 0x8b, 0x59, 0xda, 0x29,
];

fn form(solana: &str) -> String {
    format!(
        r#"admin_quorum = 1
admins = ["{ADMIN}"]
backend_keys = ["{BACKEND}"]
timelock = "1h"

[[assets]]
chain = "solana"
asset = "SOL"
decimals = 9
max_per_withdrawal = "100"
approval_threshold = "100"
approvals_required = 0
token = "native"

[[assets]]
chain = "solana"
asset = "USDC"
decimals = 6
max_per_withdrawal = "100"
approval_threshold = "100"
approvals_required = 0
token = "{MINT}"

[[whitelist]]
chain = "solana"
address = "{DEST}"
label = "a wallet"

{solana}"#
    )
}

const POOLED: &str = "[solana]\nnonce_accounts = [\"CktRuQ2mttgRGkXJtyksdKHjUdc2C4TgDzyB98oEzy8\"]\nmax_compute_unit_limit = 300000\nmax_compute_unit_price = 50\n";

fn doc(text: &str) -> Result<PolicyDoc, String> {
    PolicyForm::parse(text)
        .map_err(|e| e.to_string())?
        .to_doc(1, &"0".repeat(64))
        .map_err(|e| e.to_string())
}

fn nonce_terms() -> SolanaTerms {
    SolanaTerms {
        lifetime: Lifetime::DurableNonce {
            account: solana::address_bytes(NONCE_ACCOUNT).unwrap(),
            nonce: [0x42; 32],
        },
        create_destination_account: false,
        compute: ComputeBudget::default(),
    }
}

fn intent(asset: &str, amount: &str, terms: Option<SolanaTerms>) -> WithdrawalIntent {
    let i = WithdrawalIntent::from_parts(
        "wd-sol-1",
        "solana",
        asset,
        DEST,
        amount,
        1_700_000_000_000,
        1_700_000_600_000,
        Some("ticket 9"),
    )
    .unwrap();
    match terms {
        Some(t) => i.with_solana(t).unwrap(),
        None => i,
    }
}

fn vectors() -> Vec<(&'static str, WithdrawalIntent)> {
    let blockhash = SolanaTerms {
        lifetime: Lifetime::Blockhash([0x11; 32]),
        create_destination_account: true,
        compute: ComputeBudget {
            unit_limit: Some(200_000),
            unit_price: Some(7),
        },
    };
    let limit_only = SolanaTerms {
        compute: ComputeBudget {
            unit_limit: Some(1),
            unit_price: None,
        },
        ..nonce_terms()
    };
    vec![
        (
            "durable nonce, no options",
            intent("SOL", "1000000", Some(nonce_terms())),
        ),
        (
            "recent blockhash, create, both compute options",
            intent("USDC", "2500000", Some(blockhash)),
        ),
        (
            "compute-unit limit only",
            intent("SOL", "1", Some(limit_only)),
        ),
    ]
}

#[test]
fn version_2_vectors_are_pinned() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/intent_v2.json");
    let cases: Vec<Value> = vectors()
        .into_iter()
        .map(|(name, i)| {
            // The fields as the wire's `Intent` and `SolanaTerms` carry them.
            let t = i.solana.expect("terms");
            let (account, nonce, blockhash) = match t.lifetime {
                Lifetime::DurableNonce { account, nonce } => (
                    solana::address_text(&account),
                    solana::address_text(&nonce),
                    String::new(),
                ),
                Lifetime::Blockhash(h) => (String::new(), String::new(), solana::address_text(&h)),
            };
            json!({
                "name": name,
                "intent": {
                    "id": i.id,
                    "chain": i.chain.as_str(),
                    "asset": i.asset,
                    "destination": i.destination,
                    "amount": i.amount.to_string(),
                    "created_at_ms": i.created_at_ms,
                    "expires_at_ms": i.expires_at_ms,
                    "customer_ref": i.customer_ref,
                    "solana": {
                        "nonce_account": account,
                        "nonce_value": nonce,
                        "recent_blockhash": blockhash,
                        "create_destination_account": t.create_destination_account,
                        "compute_unit_limit": t.compute.unit_limit.unwrap_or(0),
                        "compute_unit_price": t.compute.unit_price.unwrap_or(0),
                    },
                },
                "encoding": hex::encode(i.encode()),
                "digest": i.digest_hex(),
            })
        })
        .collect();
    let text =
        serde_json::to_string_pretty(&json!({ "version": 2, "cases": cases })).unwrap() + "\n";
    if std::env::var_os("QUORATE_WRITE_VECTORS").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(path)
            .expect("vectors/intent_v2.json (QUORATE_WRITE_VECTORS=1 writes it)"),
        text
    );
    for (_, i) in vectors() {
        let bytes = i.encode();
        assert_eq!(bytes[26], INTENT_VERSION_2);
        assert_eq!(WithdrawalIntent::decode(&bytes).unwrap(), i);
        // Every truncation is refused; so is anything appended.
        for n in 0..bytes.len() {
            assert!(WithdrawalIntent::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(WithdrawalIntent::decode(&long).is_err());
    }
}

#[test]
fn version_1_stays_version_1() {
    // A Solana intent without terms, and any other chain's, still encode as version 1.
    let v1 = intent("SOL", "5", None);
    assert_eq!(v1.encode()[26], INTENT_VERSION);
    let v2 = intent("SOL", "5", Some(nonce_terms()));
    assert_ne!(
        v1.digest(),
        v2.digest(),
        "the terms are signed by the backend"
    );
    // The v1 prefix is kept: version 2 appends, it changes nothing before.
    let (a, b) = (v1.encode(), v2.encode());
    assert_eq!(a[..26], b[..26]);
    assert_eq!(a[27..], b[27..a.len()]);
}

#[test]
fn terms_that_do_not_fit_are_refused_with_their_field() {
    let eth = WithdrawalIntent::from_parts(
        "wd-1",
        "ethereum",
        "ETH",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "1",
        1,
        2,
        None,
    )
    .unwrap();
    let e = eth.with_solana(nonce_terms()).unwrap_err();
    assert_eq!(e.field(), "solana");
    let zero = SolanaTerms {
        compute: ComputeBudget {
            unit_limit: Some(0),
            unit_price: None,
        },
        ..nonce_terms()
    };
    assert!(matches!(
        intent("SOL", "1", None).with_solana(zero),
        Err(IntentError::Terms(_))
    ));
    // Layout errors in the terms.
    let good = intent("SOL", "1", Some(nonce_terms())).encode();
    let terms_at = good.len() - (1 + 1 + 64 + 1 + 1);
    for (offset, value) in [(0, 2u8), (1, 3), (66, 2), (67, 4)] {
        let mut bad = good.clone();
        bad[terms_at + offset] = value;
        assert!(
            matches!(
                WithdrawalIntent::decode(&bad),
                Err(IntentError::Encoding(_))
            ),
            "byte {offset} = {value}"
        );
    }
}

#[test]
fn signers_build_the_transfer_from_the_intent_and_the_policy() {
    let d = doc(&form(POOLED)).unwrap();
    let sol = intent("SOL", "1000000", Some(nonce_terms()));
    let format = chain_format_for(&d, &sol, Some(&WALLET)).unwrap();
    assert_eq!(format.scheme(), Scheme::Ed25519);
    let ChainFormat::Solana(t) = format else {
        panic!("a Solana format")
    };
    assert_eq!(t.wallet, WALLET);
    assert_eq!(t.destination, solana::address_bytes(DEST).unwrap());
    assert_eq!((t.amount, t.asset), (1_000_000, Asset::Sol));
    assert_eq!(signing_message(&sol, format).unwrap(), t.message());
    // First instruction: the durable-nonce advance, and the nonce is the message's blockhash.
    let ixs = t.instructions();
    assert_eq!(ixs[0].program, solana::SYSTEM_PROGRAM);
    assert_eq!(ixs[0].data, 4u32.to_le_bytes());
    let m = t.message();
    let keys = usize::from(m[3]);
    assert_eq!(m[4 + 32 * keys..4 + 32 * keys + 32], [0x42; 32]);

    let usdc = intent("USDC", "2500000", Some(nonce_terms()));
    let ChainFormat::Solana(u) = chain_format_for(&d, &usdc, Some(&WALLET)).unwrap() else {
        panic!("a Solana format")
    };
    assert_eq!(
        u.asset,
        Asset::Spl {
            mint: solana::address_bytes(MINT).unwrap(),
            decimals: 6
        }
    );
    // Source and destination are the associated accounts the signer derives itself.
    let transfer = u.instructions().pop().unwrap();
    assert_eq!(
        transfer.accounts[0].0,
        solana::associated_token_address(&WALLET, &solana::address_bytes(MINT).unwrap())
    );
    assert_eq!(
        transfer.accounts[2].0,
        solana::associated_token_address(&t.destination, &solana::address_bytes(MINT).unwrap())
    );
    // Without the cluster's Ed25519 key there is no Solana message to build.
    assert_eq!(
        chain_format(&d, &sol).unwrap_err().rule.as_str(),
        "no-key-share"
    );
}

#[test]
fn terms_outside_the_policy_are_refused_by_rule() {
    let d = doc(&form(POOLED)).unwrap();
    let refuse = |i: &WithdrawalIntent| chain_format_for(&d, i, Some(&WALLET)).unwrap_err();
    let with = |t: SolanaTerms| intent("SOL", "1", Some(t));
    let cases: Vec<(&str, WithdrawalIntent, &str)> = vec![
        (
            "no terms (a version-1 intent)",
            intent("SOL", "1", None),
            "solana-terms",
        ),
        (
            "a nonce account outside the pool",
            with(SolanaTerms {
                lifetime: Lifetime::DurableNonce {
                    account: [9; 32],
                    nonce: [1; 32],
                },
                ..nonce_terms()
            }),
            "solana-terms",
        ),
        (
            "a blockhash where the policy allows only nonces",
            with(SolanaTerms {
                lifetime: Lifetime::Blockhash([1; 32]),
                ..nonce_terms()
            }),
            "solana-terms",
        ),
        (
            "a compute-unit limit over the cap",
            with(SolanaTerms {
                compute: ComputeBudget {
                    unit_limit: Some(300_001),
                    unit_price: None,
                },
                ..nonce_terms()
            }),
            "solana-terms",
        ),
        (
            "a priority fee over the cap",
            with(SolanaTerms {
                compute: ComputeBudget {
                    unit_limit: None,
                    unit_price: Some(51),
                },
                ..nonce_terms()
            }),
            "solana-terms",
        ),
        (
            "a token-account creation for SOL",
            with(SolanaTerms {
                create_destination_account: true,
                ..nonce_terms()
            }),
            "solana-terms",
        ),
        (
            "more than 64 bits",
            intent("SOL", "18446744073709551616", Some(nonce_terms())),
            "solana-terms",
        ),
        (
            "an asset the registry does not have",
            intent("BONK", "1", Some(nonce_terms())),
            "policy-asset-unknown",
        ),
    ];
    for (what, i, rule) in cases {
        assert_eq!(refuse(&i).rule.as_str(), rule, "{what}");
    }
    // The caps themselves are allowed.
    let at_cap = with(SolanaTerms {
        compute: ComputeBudget {
            unit_limit: Some(300_000),
            unit_price: Some(50),
        },
        ..nonce_terms()
    });
    assert!(chain_format_for(&d, &at_cap, Some(&WALLET)).is_ok());
    // A destination off the curve (a program-derived or token account) is never built.
    let pda = solana::associated_token_address(&WALLET, &[1; 32]);
    let mut off = intent("SOL", "1", Some(nonce_terms()));
    off.destination = solana::address_text(&pda);
    assert_eq!(refuse(&off).rule.as_str(), "solana-terms");
}

#[test]
fn the_solana_section_is_validated() {
    assert!(doc(&form(POOLED)).is_ok());
    let bad = [
        ("[solana]\n", "no nonce accounts and no blockhashes"),
        (
            "[solana]\nnonce_accounts = [\"0x12\"]\n",
            "a nonce account that is not base58",
        ),
    ];
    for (section, what) in bad {
        assert!(doc(&form(section)).is_err(), "{what}");
    }
    // A token named by something that is not a mint address.
    let text = form(POOLED).replace(MINT, "not-a-mint");
    assert!(doc(&text).is_err());
    // Solana destinations must be wallets when Solana payouts are built.
    let pda = solana::address_text(&solana::associated_token_address(&WALLET, &[1; 32]));
    let text = form(POOLED).replace(DEST, &pda);
    let e = doc(&text).unwrap_err();
    assert!(e.contains("on the Ed25519 curve"), "{e}");
    // Without a [solana] section tokens are not named on Solana, as before.
    let text = form("")
        .replace("token = \"native\"\n", "")
        .replace(&format!("token = \"{MINT}\"\n"), "");
    let d = doc(&text).unwrap();
    assert!(d.solana.is_none());
    assert!(!String::from_utf8(d.encode())
        .unwrap()
        .contains("solana\":{"));
    assert_eq!(
        chain_format(&d, &intent("SOL", "1", None)).unwrap(),
        ChainFormat::IntentDigest
    );
}

#[test]
fn governance_weighs_solana_changes() {
    let base = doc(&form(POOLED)).unwrap();
    let effects = |section: &str| -> Vec<(Effect, String)> {
        let new = doc(&form(section)).unwrap();
        diff(&base, &new)
            .into_iter()
            .map(|c| (c.effect, c.what))
            .collect()
    };
    let loosens = |section: &str| effects(section).iter().any(|(e, _)| *e == Effect::Loosens);
    // Another nonce account, blockhashes, a higher cap: each lets the group sign more.
    assert!(loosens(&POOLED.replace(
        "nonce_accounts = [\"CktRuQ2mttgRGkXJtyksdKHjUdc2C4TgDzyB98oEzy8\"]",
        "nonce_accounts = [\"CktRuQ2mttgRGkXJtyksdKHjUdc2C4TgDzyB98oEzy8\", \"GgBaCs3NCBuZN12kCJgAW63ydqohFkHEdfdEXBPzLHq\"]"
    )));
    assert!(loosens(&format!("{POOLED}allow_blockhash = true\n")));
    assert!(loosens(&POOLED.replace("= 50", "= 51")));
    // Lower caps tighten at once.
    let lower = effects(&POOLED.replace("= 50", "= 10").replace("300000", "100000"));
    assert_eq!(lower.len(), 2, "{lower:?}");
    assert!(
        lower.iter().all(|(e, _)| *e == Effect::Tightens),
        "{lower:?}"
    );
    // Removing the section tightens; adding it loosens.
    let without = doc(&form("")
        .replace("token = \"native\"\n", "")
        .replace(&format!("token = \"{MINT}\"\n"), ""))
    .unwrap();
    let removed = diff(&base, &without);
    assert!(removed
        .iter()
        .any(|c| c.what == "solana: section removed" && c.effect == Effect::Tightens));
    let added = diff(&without, &base);
    assert!(added
        .iter()
        .any(|c| c.what == "solana: section added" && c.effect == Effect::Loosens));
}
