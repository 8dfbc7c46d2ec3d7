//! The canonical intent encoding: committed test vectors, strict decoding, and round trips.

use std::collections::BTreeSet;

use proptest::prelude::*;
use quorate_core::{
    address::{eip55, Chain},
    amount::{Amount, AmountError},
    intent::{IntentError, WithdrawalIntent, DOMAIN_TAG, INTENT_VERSION, MAX_LIFETIME_MS},
};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/intent_v1.json");

/// The inputs the committed vectors were made from, in file order.
/// (id, chain, asset, destination, amount, created_at_ms, expires_at_ms, customer_ref)
type Input = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u64,
    u64,
    Option<&'static str>,
);

const LONG_ID: &str = "id-128.bytes:________________________________________________________________________________________________________________END";
const LONG_REF: &str = "ref of 128 printable bytes: !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~......";

fn vector_inputs() -> Vec<Input> {
    vec![
        (
            "wd-0001",
            "ethereum",
            "ETH",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "1000000000000000000",
            1_700_000_000_000,
            1_700_000_600_000,
            None,
        ),
        (
            "wd-0002",
            "ethereum",
            "USDC",
            "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359",
            "1",
            1_700_000_000_000,
            1_700_086_400_000,
            Some("customer 42"),
        ),
        (
            "wd.0003:x_y",
            "polygon",
            "POL",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "340282366920938463463374607431768211455",
            1,
            2,
            None,
        ),
        (
            "wd-0004",
            "bitcoin",
            "BTC",
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            "150000",
            1_700_000_000_000,
            1_700_000_060_000,
            None,
        ),
        (
            "wd-0005",
            "bitcoin",
            "BTC",
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
            "21000000",
            1_700_000_000_000,
            1_700_000_060_000,
            Some("ref-5"),
        ),
        (
            "wd-0006",
            "bitcoin-testnet",
            "BTC",
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
            "1",
            1_700_000_000_000,
            1_700_000_000_001,
            None,
        ),
        (
            "wd-0007",
            "tron",
            "USDT",
            "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
            "5000000",
            1_700_000_000_000,
            1_700_003_600_000,
            None,
        ),
        (
            "wd-0008",
            "solana",
            "SOL",
            "So11111111111111111111111111111111111111112",
            "999999999",
            1_700_000_000_000,
            1_700_003_600_000,
            Some("~!@#$%^&*()_+ {}|"),
        ),
        (
            "W",
            "solana",
            "USDC1",
            "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
            "42",
            1_700_000_000_000,
            1_700_000_000_000 + MAX_LIFETIME_MS,
            None,
        ),
        (
            LONG_ID,
            "tron",
            "ABCDEFGHIJ012345",
            "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7",
            "18446744073709551616",
            u64::MAX - MAX_LIFETIME_MS,
            u64::MAX,
            Some(LONG_REF),
        ),
        (
            "wd-0011",
            "bitcoin-testnet",
            "BTC",
            "TB1PQQQQP399ET2XYGDJ5XREQHJJVCMZHXW4AYWXECJDZEW6HYLGVSESF3HN0C",
            "546",
            1_700_000_000_000,
            1_700_000_300_000,
            Some("x"),
        ),
    ]
}

fn build((id, chain, asset, dest, amount, c, e, r): Input) -> WithdrawalIntent {
    WithdrawalIntent::from_parts(id, chain, asset, dest, amount, c, e, r)
        .unwrap_or_else(|err| panic!("{id}: {err}"))
}

/// Prints the vectors from `vector_inputs`. Run with `--ignored --nocapture` only after a
/// deliberate format change (which also needs a new version); never to make a failing vector
/// pass.
#[test]
#[ignore]
fn print_vectors() {
    let out: Vec<Value> = vector_inputs()
        .into_iter()
        .map(|input| {
            let (id, chain, asset, dest, amount, c, e, r) = input;
            let i = build(input);
            serde_json::json!({
                "id": id, "chain": chain, "asset": asset, "destination": dest, "amount": amount,
                "created_at_ms": c, "expires_at_ms": e, "customer_ref": r,
                "normalized_destination": i.destination,
                "encoding_hex": hex::encode(i.encode()),
                "digest_hex": i.digest_hex(),
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}

fn committed() -> Vec<Value> {
    serde_json::from_str(VECTORS).expect("vectors file is JSON")
}

fn intent_of(t: &Value) -> WithdrawalIntent {
    let s = |k: &str| t[k].as_str().unwrap_or_else(|| panic!("{k}"));
    WithdrawalIntent::from_parts(
        s("id"),
        s("chain"),
        s("asset"),
        s("destination"),
        s("amount"),
        t["created_at_ms"].as_u64().unwrap(),
        t["expires_at_ms"].as_u64().unwrap(),
        t["customer_ref"].as_str(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", s("id")))
}

#[test]
fn committed_vectors_hold() {
    let v = committed();
    assert!(v.len() >= 8, "at least 8 vectors, found {}", v.len());
    for t in &v {
        let id = t["id"].as_str().unwrap();
        let i = intent_of(t);
        assert_eq!(i.destination, t["normalized_destination"], "{id}");
        let bytes = hex::decode(t["encoding_hex"].as_str().unwrap()).unwrap();
        assert_eq!(i.encode(), bytes, "{id}: encoding");
        assert_eq!(i.digest_hex(), t["digest_hex"], "{id}: digest");
        assert_eq!(hex::decode(i.digest_hex()).unwrap(), i.digest().to_vec());
        let decoded = WithdrawalIntent::decode(&bytes).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(decoded, i, "{id}: decode");
        assert_eq!(decoded.encode(), bytes, "{id}: re-encode");
    }
}

#[test]
fn committed_vectors_cover_what_they_must() {
    let v = committed();
    let chains: BTreeSet<&str> = v.iter().map(|t| t["chain"].as_str().unwrap()).collect();
    for c in Chain::ALL {
        assert!(chains.contains(c.as_str()), "no vector for {c}");
    }
    let amounts: Vec<&str> = v.iter().map(|t| t["amount"].as_str().unwrap()).collect();
    assert!(amounts.contains(&"1"));
    assert!(amounts.contains(&u128::MAX.to_string().as_str()));
    assert!(v.iter().any(|t| t["customer_ref"].is_null()));
    assert!(v.iter().any(|t| t["customer_ref"].is_string()));
    // Longest id and customer reference.
    assert_eq!(LONG_ID.len(), 128);
    assert_eq!(LONG_REF.len(), 128);
    // The file is what the generator prints: its inputs cannot drift from `vector_inputs`.
    assert_eq!(v.len(), vector_inputs().len());
    for (t, input) in v.iter().zip(vector_inputs()) {
        assert_eq!(intent_of(t), build(input));
    }
}

#[test]
fn first_vector_byte_by_byte() {
    // Hand-built from the layout in `intent.rs`, independent of `encode`.
    let mut b = vec![25u8];
    b.extend_from_slice(b"QUORATE/withdrawal-intent");
    b.push(1);
    b.extend_from_slice(&[0, 7]);
    b.extend_from_slice(b"wd-0001");
    b.push(1); // ethereum
    b.extend_from_slice(&[0, 3]);
    b.extend_from_slice(b"ETH");
    b.extend_from_slice(&[0, 42]);
    b.extend_from_slice(b"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
    // 10^18 = 0x0de0b6b3a7640000
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&[0x0d, 0xe0, 0xb6, 0xb3, 0xa7, 0x64, 0x00, 0x00]);
    // 1_700_000_000_000 = 0x18bcfe56800, 1_700_000_600_000 = 0x18bcfee8fc0
    b.extend_from_slice(&[0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00]);
    b.extend_from_slice(&[0, 0, 0x01, 0x8b, 0xcf, 0xee, 0x8f, 0xc0]);
    b.push(0); // no customer reference
    let v = committed();
    assert_eq!(v[0]["encoding_hex"].as_str().unwrap(), hex::encode(&b));
    use sha2::Digest;
    assert_eq!(
        v[0]["digest_hex"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(&b))
    );
    assert_eq!(DOMAIN_TAG.len(), 25);
    assert_eq!(INTENT_VERSION, 1);
}

fn sample(customer_ref: Option<&str>) -> WithdrawalIntent {
    WithdrawalIntent::from_parts(
        "wd-1",
        "ethereum",
        "ETH",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "1",
        10,
        20,
        customer_ref,
    )
    .unwrap()
}

#[test]
fn decoding_is_strict() {
    let good = sample(Some("r")).encode();
    assert!(WithdrawalIntent::decode(&good).is_ok());
    // Trailing bytes.
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(
        WithdrawalIntent::decode(&long),
        Err(IntentError::Encoding(_))
    ));
    // Truncation at every length.
    for n in 0..good.len() {
        assert!(
            WithdrawalIntent::decode(&good[..n]).is_err(),
            "truncated at {n}"
        );
    }
    // Wrong version, wrong tag, wrong tag length.
    let mut v3 = good.clone();
    v3[26] = 3;
    assert_eq!(WithdrawalIntent::decode(&v3), Err(IntentError::Version(3)));
    // Version-1 bytes labelled version 2 lack the chain terms version 2 requires.
    let mut v2 = good.clone();
    v2[26] = 2;
    assert_eq!(
        WithdrawalIntent::decode(&v2),
        Err(IntentError::Encoding("truncated"))
    );
    let mut tag = good.clone();
    tag[1] = b'X';
    assert_eq!(WithdrawalIntent::decode(&tag), Err(IntentError::DomainTag));
    let mut tag_len = good.clone();
    tag_len[0] = 26;
    assert_eq!(
        WithdrawalIntent::decode(&tag_len),
        Err(IntentError::DomainTag)
    );
    // Unknown chain codes.
    for code in [0u8, 7, 255] {
        let mut c = good.clone();
        c[27 + 2 + 4] = code;
        assert_eq!(
            WithdrawalIntent::decode(&c),
            Err(IntentError::ChainCode(code))
        );
    }
    // A zero amount.
    let zero = good
        .windows(16)
        .position(|w| w == 1u128.to_be_bytes())
        .unwrap();
    let mut z = good.clone();
    z[zero + 15] = 0;
    assert_eq!(
        WithdrawalIntent::decode(&z),
        Err(IntentError::Amount(AmountError::Zero))
    );
    // A destination in lowercase is valid text but not the normalised form.
    let at = good
        .windows(42)
        .position(|w| w == b"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
        .unwrap();
    let mut nn = good.clone();
    nn[at..at + 42].copy_from_slice(b"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed");
    assert!(matches!(
        WithdrawalIntent::decode(&nn),
        Err(IntentError::Encoding(_))
    ));
    // Present-but-empty customer reference is not the same as absent.
    let mut empty_ref = sample(None).encode();
    *empty_ref.last_mut().unwrap() = 1;
    empty_ref.extend_from_slice(&[0, 0]);
    assert_eq!(
        WithdrawalIntent::decode(&empty_ref),
        Err(IntentError::CustomerRef)
    );
}

#[test]
fn every_field_changes_the_digest() {
    let base = sample(None);
    let variants = [
        WithdrawalIntent {
            id: "wd-2".into(),
            ..base.clone()
        },
        WithdrawalIntent {
            chain: Chain::Polygon,
            ..base.clone()
        },
        WithdrawalIntent {
            asset: "USDC".into(),
            ..base.clone()
        },
        WithdrawalIntent {
            destination: "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359".into(),
            ..base.clone()
        },
        WithdrawalIntent {
            amount: Amount::new(2).unwrap(),
            ..base.clone()
        },
        WithdrawalIntent {
            created_at_ms: 11,
            ..base.clone()
        },
        WithdrawalIntent {
            expires_at_ms: 21,
            ..base.clone()
        },
        WithdrawalIntent {
            customer_ref: Some("r".into()),
            ..base.clone()
        },
    ];
    let mut digests = BTreeSet::from([base.digest()]);
    for v in variants {
        let v = v.validate().unwrap();
        assert!(digests.insert(v.digest()), "{v:?}");
    }
}

#[test]
fn field_rules() {
    let mk = |id: &str, asset: &str, c: u64, e: u64, r: Option<&str>| {
        WithdrawalIntent::from_parts(
            id,
            "ethereum",
            asset,
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "1",
            c,
            e,
            r,
        )
    };
    assert!(mk("ok", "ETH", 1, 2, None).is_ok());
    assert!(mk(
        &"a".repeat(128),
        &"A".repeat(16),
        1,
        2,
        Some(&"~".repeat(128))
    )
    .is_ok());
    assert_eq!(mk("", "ETH", 1, 2, None), Err(IntentError::Id));
    assert_eq!(
        mk(&"a".repeat(129), "ETH", 1, 2, None),
        Err(IntentError::Id)
    );
    for bad_id in ["a b", "a/b", "é", "a\n"] {
        assert_eq!(mk(bad_id, "ETH", 1, 2, None), Err(IntentError::Id));
    }
    assert_eq!(mk("x", "eth", 1, 2, None), Err(IntentError::Asset));
    assert_eq!(mk("x", "", 1, 2, None), Err(IntentError::Asset));
    assert_eq!(mk("x", "USD-C", 1, 2, None), Err(IntentError::Asset));
    assert_eq!(
        mk("x", &"A".repeat(17), 1, 2, None),
        Err(IntentError::Asset)
    );
    assert_eq!(mk("x", "ETH", 0, 2, None), Err(IntentError::CreatedAt));
    assert_eq!(
        mk("x", "ETH", 2, 2, None),
        Err(IntentError::ExpiresBeforeCreated {
            created_at_ms: 2,
            expires_at_ms: 2
        })
    );
    assert!(mk("x", "ETH", 1, 1 + MAX_LIFETIME_MS, None).is_ok());
    assert_eq!(
        mk("x", "ETH", 1, 2 + MAX_LIFETIME_MS, None),
        Err(IntentError::LifetimeTooLong {
            lifetime_ms: MAX_LIFETIME_MS + 1
        })
    );
    for bad_ref in ["", "tab\t", "é", &"r".repeat(129)] {
        assert_eq!(
            mk("x", "ETH", 1, 2, Some(bad_ref)),
            Err(IntentError::CustomerRef)
        );
    }
    let err = WithdrawalIntent::from_parts(
        "x",
        "ethereum",
        "ETH",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "1.5",
        1,
        2,
        None,
    )
    .unwrap_err();
    assert_eq!(err, IntentError::Amount(AmountError::InvalidCharacter('.')));
    assert!(err.to_string().starts_with("amount: "), "{err}");
    let err = WithdrawalIntent::from_parts("x", "btc", "BTC", "bc1…", "1", 1, 2, None).unwrap_err();
    assert_eq!(err.field(), "chain");
    let err = WithdrawalIntent::from_parts(
        "x",
        "bitcoin",
        "BTC",
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "1",
        1,
        2,
        None,
    )
    .unwrap_err();
    assert_eq!(err.field(), "destination");
    assert!(
        err.to_string().starts_with("destination: bitcoin address"),
        "{err}"
    );
}

fn nonzero20() -> impl Strategy<Value = [u8; 20]> {
    any::<[u8; 20]>().prop_filter("not the zero address", |b| *b != [0; 20])
}

/// A valid destination for a random chain, in any accepted (not necessarily canonical) spelling.
fn arb_destination() -> impl Strategy<Value = (Chain, String)> {
    prop_oneof![
        nonzero20().prop_map(|b| (Chain::Ethereum, eip55(&b))),
        nonzero20().prop_map(|b| (Chain::Ethereum, eip55(&b).to_lowercase())),
        nonzero20().prop_map(|b| (Chain::Polygon, format!("0x{}", hex::encode_upper(b)))),
        any::<[u8; 20]>().prop_map(|b| (Chain::Bitcoin, segwit("bc", 0, &b))),
        any::<[u8; 32]>().prop_map(|b| (Chain::Bitcoin, segwit("bc", 0, &b).to_uppercase())),
        any::<[u8; 32]>().prop_map(|b| (Chain::Bitcoin, segwit("bc", 1, &b))),
        any::<[u8; 20]>().prop_map(|b| (Chain::BitcoinTestnet, segwit("tb", 0, &b))),
        any::<[u8; 32]>().prop_map(|b| (Chain::BitcoinTestnet, segwit("tb", 1, &b))),
        any::<[u8; 20]>().prop_map(|b| (Chain::Tron, tron(&b))),
        any::<[u8; 32]>().prop_map(|b| (Chain::Solana, bs58::encode(b).into_string())),
    ]
}

fn segwit(hrp: &str, v: u8, program: &[u8]) -> String {
    bech32::segwit::encode(
        bech32::Hrp::parse(hrp).unwrap(),
        bech32::Fe32::try_from(v).unwrap(),
        program,
    )
    .unwrap()
}

fn tron(b: &[u8; 20]) -> String {
    let mut payload = vec![0x41];
    payload.extend_from_slice(b);
    bs58::encode(payload).with_check().into_string()
}

fn arb_intent() -> impl Strategy<Value = WithdrawalIntent> {
    (
        "[A-Za-z0-9._:-]{1,128}",
        arb_destination(),
        "[A-Z0-9]{1,16}",
        1u128..,
        1u64..u64::MAX - MAX_LIFETIME_MS,
        1u64..=MAX_LIFETIME_MS,
        proptest::option::of("[ -~]{1,128}"),
        arb_solana_terms(),
    )
        .prop_map(
            |(id, (chain, dest), asset, amount, created, life, r, terms)| {
                let i = WithdrawalIntent::from_parts(
                    &id,
                    chain.as_str(),
                    &asset,
                    &dest,
                    &amount.to_string(),
                    created,
                    created + life,
                    r.as_deref(),
                )
                .unwrap_or_else(|e| panic!("generated intent refused: {e}"));
                // Solana intents are version 2 (with terms) or version 1 (without).
                match terms {
                    Some(t) if i.chain == quorate_core::address::Chain::Solana => i
                        .with_solana(t)
                        .unwrap_or_else(|e| panic!("generated terms refused: {e}")),
                    _ => i,
                }
            },
        )
}

/// Solana terms of every shape, or none.
fn arb_solana_terms() -> impl Strategy<Value = Option<quorate_core::intent::SolanaTerms>> {
    use quorate_core::chains::solana::{ComputeBudget, Lifetime};
    proptest::option::of((
        any::<[u8; 32]>(),
        proptest::option::of(any::<[u8; 32]>()),
        any::<bool>(),
        proptest::option::of(1u32..),
        proptest::option::of(1u64..),
    ))
    .prop_map(|t| {
        t.map(
            |(hash, account, create, unit_limit, unit_price)| quorate_core::intent::SolanaTerms {
                lifetime: match account {
                    Some(account) => Lifetime::DurableNonce {
                        account,
                        nonce: hash,
                    },
                    None => Lifetime::Blockhash(hash),
                },
                create_destination_account: create,
                compute: ComputeBudget {
                    unit_limit,
                    unit_price,
                },
            },
        )
    })
}

/// Bytes that decode is robust against: random, or a valid encoding with a random splice.
fn arb_mangled() -> impl Strategy<Value = Vec<u8>> {
    (
        arb_intent(),
        any::<prop::sample::Index>(),
        0usize..8,
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(i, at, cut, insert)| {
            let mut b = i.encode();
            let at = at.index(b.len() + 1);
            let end = (at + cut).min(b.len());
            b.splice(at..end, insert);
            b
        })
}

proptest! {
    #[test]
    fn encode_decode_round_trip(i in arb_intent()) {
        let bytes = i.encode();
        let back = WithdrawalIntent::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &i);
        prop_assert_eq!(back.encode(), bytes);
        prop_assert_eq!(back.digest(), i.digest());
    }

    #[test]
    fn validate_is_idempotent(i in arb_intent()) {
        prop_assert_eq!(i.clone().validate().unwrap(), i);
    }

    #[test]
    fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(i) = WithdrawalIntent::decode(&bytes) {
            prop_assert_eq!(i.encode(), bytes);
        }
    }

    #[test]
    fn decode_never_panics_after_a_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = vec![25u8];
        bytes.extend_from_slice(DOMAIN_TAG);
        bytes.push(INTENT_VERSION);
        bytes.extend_from_slice(&tail);
        if let Ok(i) = WithdrawalIntent::decode(&bytes) {
            prop_assert_eq!(i.encode(), bytes);
        }
    }

    #[test]
    fn spliced_encodings_are_canonical_or_refused(bytes in arb_mangled()) {
        if let Ok(i) = WithdrawalIntent::decode(&bytes) {
            prop_assert_eq!(i.encode(), bytes);
        }
    }

    #[test]
    fn bit_flips_are_canonical_or_refused(i in arb_intent(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut b = i.encode();
        let at = at.index(b.len());
        b[at] ^= 1 << bit;
        if let Ok(j) = WithdrawalIntent::decode(&b) {
            prop_assert_eq!(j.encode(), b);
            prop_assert_ne!(j.digest(), i.digest());
        }
    }

    #[test]
    fn amounts_round_trip(v in 1u128..) {
        let a = Amount::parse(&v.to_string()).unwrap();
        prop_assert_eq!(a.get(), v);
        prop_assert_eq!(a.to_string(), v.to_string());
        prop_assert_eq!(Amount::new(v).unwrap(), a);
    }
}
