//! Address and amount parsing: good and bad cases per chain, from EIP-55, BIP-173 and BIP-350
//! and real Tron and Solana addresses.

use quorate_core::{
    address::{normalize_address, AddressError, Chain, MAX_ADDRESS_LEN},
    amount::{Amount, AmountError},
};

fn ok(chain: Chain, input: &str) -> String {
    normalize_address(chain, input).unwrap_or_else(|e| panic!("{input}: {e}"))
}

fn bad(chain: Chain, input: &str) -> AddressError {
    let e = normalize_address(chain, input).expect_err(input);
    // Every refusal names the chain it was checked against.
    assert_eq!(e.chain(), chain);
    assert!(e.to_string().starts_with(chain.as_str()), "{e}");
    e
}

const EIP55_EXAMPLES: [&str; 4] = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
];

#[test]
fn evm_accepts_eip55_and_single_case() {
    for chain in [Chain::Ethereum, Chain::Polygon] {
        // EIP-55's own examples are their own canonical form.
        for a in EIP55_EXAMPLES {
            assert_eq!(ok(chain, a), a);
            // Single-case input carries no checksum and is normalised to EIP-55.
            let lower = format!("0x{}", a[2..].to_lowercase());
            let upper = format!("0x{}", a[2..].to_uppercase());
            assert_eq!(ok(chain, &lower), a);
            assert_eq!(ok(chain, &upper), a);
        }
        // The all-caps/all-digits EIP-55 examples.
        for a in [
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
            "0xde709f2102306220921060314715629080e2fb77",
            "0x27b1fdb04752bbc536007a920d24acb045561c26",
        ] {
            assert_eq!(ok(chain, a), a);
        }
    }
}

#[test]
fn evm_refusals() {
    for chain in [Chain::Ethereum, Chain::Polygon] {
        // One letter with the wrong case: a checksum mismatch.
        let e = bad(chain, "0x5aAeb6053f3E94C9b9A09f33669435E7Ef1BeAed");
        assert_eq!(e, AddressError::Checksum { chain });
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
        for (b, why) in [
            ("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0x"),
            ("0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0x"),
            ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", "40 hex digits"),
            (
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAedd",
                "40 hex digits",
            ),
            ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg", "hex digits"),
            ("0x0000000000000000000000000000000000000000", "zero address"),
            (" 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "whitespace"),
            ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\n", "whitespace"),
            ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAéd", "non-ASCII"),
        ] {
            let e = bad(chain, b);
            assert!(e.to_string().contains(why), "{b:?}: {e}");
        }
        assert_eq!(bad(chain, ""), AddressError::Empty { chain });
    }
}

#[test]
fn bitcoin_accepts_segwit_v0_and_taproot_and_lowercases() {
    // BIP-173 / BIP-350 valid examples with defined spending rules.
    for (chain, input) in [
        (Chain::Bitcoin, "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"),
        (
            Chain::BitcoinTestnet,
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        ),
        (
            Chain::BitcoinTestnet,
            "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        ),
        (
            Chain::BitcoinTestnet,
            "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        ),
        (
            Chain::Bitcoin,
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        ),
        (
            Chain::Bitcoin,
            "BC1P0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQZK5JJ0",
        ),
    ] {
        assert_eq!(ok(chain, input), input.to_lowercase());
    }
}

#[test]
fn bitcoin_wrong_network_both_ways() {
    let taproot = "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0";
    let e = bad(Chain::BitcoinTestnet, taproot);
    assert!(matches!(e, AddressError::WrongNetwork { .. }), "{e}");
    assert!(
        e.to_string().contains("`bc`") && e.to_string().contains("`tb`"),
        "{e}"
    );
    let e = bad(
        Chain::Bitcoin,
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
    );
    assert!(matches!(e, AddressError::WrongNetwork { .. }), "{e}");
}

#[test]
fn bitcoin_bip173_bip350_invalid_addresses() {
    for chain in [Chain::Bitcoin, Chain::BitcoinTestnet] {
        for b in [
            // BIP-173 invalid.
            "tc1qw508d6qejxtdg4y5r3zarvary0c5xw7kg3g4ty", // unknown hrp
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", // bad checksum
            "BC13W508D6QEJXTDG4Y5R3ZARVARY0C5XW7KN40WF2", // witness version 19
            "bc1rw5uspcuh",                               // program too short
            "bc10w508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kw5rljs90",
            "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P", // v0 program of 16 bytes
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7", // mixed case
            "bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du", // zero padding of more than 4 bits
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3pjxtptv", // non-zero padding
            "bc1gmk9yu",                            // empty data section
            // BIP-350 invalid.
            "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut", // unknown hrp
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", // v1 with bech32
            "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf", // v2 with bech32
            "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL", // v16 with bech32
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",                     // v0 with bech32m
            "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47", // v0 with bech32m
            "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4", // invalid char
            "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", // version 19
            "bc1pw5dgrnzv",                                                   // 1-byte program
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
            "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P", // v0 program of 16 bytes
            "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq", // mixed case
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf", // padding
            "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j", // padding
            "bc1gmk9yu",                            // empty data
        ] {
            bad(chain, b);
        }
    }
    let e = bad(Chain::Bitcoin, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5");
    assert_eq!(
        e,
        AddressError::Checksum {
            chain: Chain::Bitcoin
        }
    );
    let e = bad(Chain::Bitcoin, "bc1qW508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4");
    assert!(e.to_string().contains("case"), "{e}");
    let e = bad(Chain::Bitcoin, "tc1qw508d6qejxtdg4y5r3zarvary0c5xw7kg3g4ty");
    assert!(e.to_string().contains("unknown prefix `tc`"), "{e}");
    for other in [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7",
        "hello",
    ] {
        let e = bad(Chain::Bitcoin, other);
        assert!(
            e.to_string()
                .contains("not a segwit address; expected one starting with `bc1`"),
            "{e}"
        );
    }
}

#[test]
fn bitcoin_refuses_outputs_without_spending_rules() {
    // Valid BIP-350 addresses, but v2..=16 and non-32-byte v1 outputs are anyone-can-spend today.
    for b in [
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        "BC1SW50QGDZ25J",
        "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs",
    ] {
        let e = bad(Chain::Bitcoin, b);
        assert!(matches!(e, AddressError::Unsupported { .. }), "{b}: {e}");
        assert!(e.to_string().contains("spending rules"), "{e}");
    }
}

#[test]
fn bitcoin_refuses_legacy_with_a_segwit_hint() {
    for (chain, b) in [
        (Chain::Bitcoin, "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"), // P2PKH
        (Chain::Bitcoin, "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"), // P2SH
        (Chain::Bitcoin, "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"), // P2PKH, bad checksum
        (Chain::BitcoinTestnet, "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"),
        (Chain::BitcoinTestnet, "2MzQwSSnBHWHqSAqtTVQ6v47XtaisrJa1Vc"),
    ] {
        let e = bad(chain, b);
        assert!(matches!(e, AddressError::Unsupported { .. }), "{b}: {e}");
        assert!(e.to_string().contains("only segwit"), "{e}");
    }
}

#[test]
fn tron_base58check() {
    for a in [
        "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7",
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", // the USDT (TRC-20) contract
    ] {
        assert_eq!(ok(Chain::Tron, a), a);
    }
    // A changed character breaks the checksum.
    assert_eq!(
        bad(Chain::Tron, "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU8"),
        AddressError::Checksum { chain: Chain::Tron }
    );
    // Valid base58check with a Bitcoin (version 0x00) payload, not Tron's 0x41.
    let e = bad(Chain::Tron, "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2");
    assert!(matches!(e, AddressError::WrongNetwork { .. }), "{e}");
    for (b, why) in [
        ("TLa2f6VPqDgRE67v1736s7bJ8Ray", "bytes"), // too short
        ("TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU77", "bytes"), // too long
        ("TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU0", "base58"), // 0 is not base58
        ("TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjUl", "base58"), // nor l
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "base58"),
        ("TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7 ", "whitespace"),
    ] {
        let e = bad(Chain::Tron, b);
        assert!(e.to_string().contains(why), "{b:?}: {e}");
    }
}

#[test]
fn solana_base58_32_bytes() {
    for a in [
        "11111111111111111111111111111111", // 32 zero bytes: the system program
        "So11111111111111111111111111111111111111112",
        "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
    ] {
        assert_eq!(ok(Chain::Solana, a), a);
    }
    for (b, why) in [
        ("1111111111111111111111111111111", "31 bytes"),
        ("111111111111111111111111111111111", "33 bytes"),
        ("So1111111111111111111111111111111111111111O", "base58"),
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "base58"),
        ("TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7", "25 bytes"),
    ] {
        let e = bad(Chain::Solana, b);
        assert!(e.to_string().contains(why), "{b:?}: {e}");
    }
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let huge = "1".repeat(10_000);
    for chain in Chain::ALL {
        assert_eq!(
            normalize_address(chain, &huge),
            Err(AddressError::TooLong { chain, len: 10_000 })
        );
        let limit = "1".repeat(MAX_ADDRESS_LEN + 1);
        assert!(matches!(
            normalize_address(chain, &limit),
            Err(AddressError::TooLong { .. })
        ));
    }
}

#[test]
fn chain_names_codes_and_serde() {
    let names = [
        "ethereum",
        "polygon",
        "bitcoin",
        "bitcoin-testnet",
        "tron",
        "solana",
    ];
    for (n, (c, name)) in Chain::ALL.into_iter().zip(names).enumerate() {
        assert_eq!(c.as_str(), name);
        assert_eq!(c.to_string(), name);
        assert_eq!(name.parse::<Chain>().unwrap(), c);
        assert_eq!(usize::from(c.code()), n + 1);
        assert_eq!(Chain::from_code(c.code()), Some(c));
        assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{name}\""));
        assert_eq!(
            serde_json::from_str::<Chain>(&format!("\"{name}\"")).unwrap(),
            c
        );
    }
    for b in [
        "Ethereum",
        "ETHEREUM",
        "eth",
        "bitcoin_testnet",
        " tron",
        "",
    ] {
        let e = b.parse::<Chain>().unwrap_err().to_string();
        for name in names {
            assert!(e.contains(name), "{e}");
        }
    }
    assert!(serde_json::from_str::<Chain>("\"BitcoinTestnet\"").is_err());
    assert_eq!(Chain::from_code(0), None);
    assert_eq!(Chain::from_code(7), None);
}

#[test]
fn amounts() {
    assert_eq!(Amount::parse("1").unwrap().get(), 1);
    assert_eq!(
        Amount::parse(&u128::MAX.to_string()).unwrap().get(),
        u128::MAX
    );
    let forty = "1".repeat(40);
    for (b, e) in [
        ("0", AmountError::Zero),
        ("-1", AmountError::InvalidCharacter('-')),
        ("+1", AmountError::InvalidCharacter('+')),
        ("1.0", AmountError::InvalidCharacter('.')),
        ("1e18", AmountError::InvalidCharacter('e')),
        (" 1", AmountError::InvalidCharacter(' ')),
        ("", AmountError::Empty),
        ("01", AmountError::LeadingZero),
        (
            "340282366920938463463374607431768211456",
            AmountError::Overflow,
        ),
        (forty.as_str(), AmountError::TooManyDigits(40)),
    ] {
        assert_eq!(Amount::parse(b), Err(e.clone()), "{b:?}");
        assert_eq!(b.parse::<Amount>(), Err(e), "{b:?}");
    }
}
