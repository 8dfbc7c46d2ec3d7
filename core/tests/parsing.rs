//! Address and amount parsing, with good and bad cases per chain (EIP-55, BIP-173 and BIP-350
//! examples, real Tron and Solana addresses).

use quorate_core::{
    address::{normalize_address, AddressError, Chain},
    amount::Amount,
};

fn ok(chain: Chain, input: &str) -> String {
    normalize_address(chain, input).unwrap_or_else(|e| panic!("{input}: {e}"))
}

fn bad(chain: Chain, input: &str) -> AddressError {
    normalize_address(chain, input).expect_err(input)
}

#[test]
fn evm_eip55() {
    for chain in [Chain::Ethereum, Chain::Polygon] {
        // EIP-55's own examples are their own canonical form.
        for a in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            assert_eq!(ok(chain, a), a);
        }
        // Single-case input carries no checksum and is normalised to EIP-55.
        assert_eq!(
            ok(chain, "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"),
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
        assert_eq!(
            ok(chain, "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED"),
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
        // One letter with the wrong case: a checksum mismatch.
        assert!(matches!(
            bad(chain, "0x5aAeb6053f3E94C9b9A09f33669435E7Ef1BeAed"),
            AddressError::Checksum { .. }
        ));
        for b in [
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAedd",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg",
            "0x0000000000000000000000000000000000000000",
            " 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "",
        ] {
            bad(chain, b);
        }
    }
}

#[test]
fn bitcoin_segwit() {
    // BIP-173 / BIP-350 valid examples (v0 P2WPKH in capitals, v0 P2WSH, v1 Taproot).
    assert_eq!(
        ok(Chain::Bitcoin, "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"),
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    );
    assert_eq!(
        ok(
            Chain::BitcoinTestnet,
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"
        ),
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"
    );
    let taproot = "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0";
    assert_eq!(ok(Chain::Bitcoin, taproot), taproot);

    // Right format, wrong network, both ways.
    assert!(matches!(
        bad(Chain::BitcoinTestnet, taproot),
        AddressError::WrongNetwork { .. }
    ));
    assert!(matches!(
        bad(
            Chain::Bitcoin,
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"
        ),
        AddressError::WrongNetwork { .. }
    ));
    for b in [
        // BIP-350 invalid: unknown HRP, v1 with a bech32 (not bech32m) checksum, v16 likewise.
        "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
        "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
        // BIP-350 invalid: v0 with a bech32m checksum; bad program lengths.
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
        "bc1pw5dgrnzv",
        // Valid BIP-350 v2 and 40-byte v1 encodings: no defined spending rules, refused.
        "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs",
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        // Mixed case, a flipped character, legacy base58.
        "bc1qW508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
        "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
        "",
    ] {
        bad(Chain::Bitcoin, b);
    }
    assert!(matches!(
        bad(Chain::Bitcoin, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"),
        AddressError::Checksum { .. }
    ));
}

#[test]
fn tron_base58check() {
    // The USDT (TRC-20) contract address.
    let usdt = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
    assert_eq!(ok(Chain::Tron, usdt), usdt);
    // A changed character breaks the checksum.
    assert!(matches!(
        bad(Chain::Tron, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u"),
        AddressError::Checksum { .. }
    ));
    // Valid base58check but a Bitcoin (version 0x00) payload, not Tron's 0x41.
    assert!(normalize_address(Chain::Tron, "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2").is_err());
    for b in [
        "",
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6",
        "0OIl",
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t ",
    ] {
        bad(Chain::Tron, b);
    }
}

#[test]
fn solana_base58_32_bytes() {
    for a in [
        "11111111111111111111111111111111",
        "So11111111111111111111111111111111111111112",
        "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
    ] {
        assert_eq!(ok(Chain::Solana, a), a);
    }
    for b in [
        "",
        "1111111111111111111111111111111",   // 31 bytes
        "111111111111111111111111111111111", // 33 bytes
        "So1111111111111111111111111111111111111111O",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    ] {
        bad(Chain::Solana, b);
    }
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let huge = "1".repeat(10_000);
    for c in Chain::ALL {
        assert!(matches!(
            normalize_address(c, &huge),
            Err(AddressError::Length { .. })
        ));
    }
}

#[test]
fn chains_round_trip_names_and_codes() {
    for c in Chain::ALL {
        assert_eq!(c.as_str().parse::<Chain>().unwrap(), c);
        assert_eq!(Chain::from_code(c.code()), Some(c));
    }
    assert!("Ethereum".parse::<Chain>().is_err());
    assert!("eth".parse::<Chain>().is_err());
    assert_eq!(Chain::from_code(0), None);
    assert_eq!(Chain::from_code(7), None);
}

#[test]
fn amounts() {
    assert_eq!(
        Amount::parse(&u128::MAX.to_string()).unwrap().get(),
        u128::MAX
    );
    for b in [
        "0",
        "-1",
        "+1",
        "1.0",
        "1e18",
        " 1",
        "",
        "01",
        "340282366920938463463374607431768211456",
        &"9".repeat(40),
    ] {
        assert!(Amount::parse(b).is_err(), "{b:?}");
    }
}
