//! The vault digests and calldata, pinned by `vectors/evm_vault_v1.json`.
//!
//! The vectors are generated here from fixed seeds (a trusted-dealer FROST key per parity of
//! the group key, real FROST signing) and checked against the committed file, so a change to
//! the digest layout cannot pass unnoticed. The contract side replays the same file on a real
//! EVM node (tests/vault.rs): every digest through the contract's own digest functions and every
//! withdrawal as a real `withdraw` call. `QUORATE_WRITE_VECTORS=1` rewrites the file.

use std::collections::BTreeMap;

use frost_secp256k1::{
    keys::{generate_with_dealer, IdentifierList, KeyPackage, PublicKeyPackage},
    round1, round2, Signature, SigningPackage, VerifyingKey,
};
use quorate_core::address::Chain;
use quorate_core::chains::evm::{
    address_bytes, address_text, signature_words, withdraw_calldata, withdrawal_id, Address20,
    VaultDomain, VaultWithdrawal, NATIVE, TRON_MAINNET_CHAIN_ID,
};
use rand::{rngs::StdRng, SeedableRng};
use serde_json::{json, Value};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/evm_vault_v1.json"
);
/// Where the first contract deployed by Hardhat's first development account lands
/// (account 0xf39F…2266, nonce 0), on Hardhat's chain id.
const HARDHAT_VAULT: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const HARDHAT_CHAIN_ID: u64 = 31337;
/// 2100-01-01T00:00:00Z: far enough for a replay on a fresh node.
const FAR_DEADLINE: u64 = 4_102_444_800;

/// (intent id, key, domain, chain, token, to, amount, deadline)
type Case<'a> = (
    &'a str,
    &'a Group,
    VaultDomain,
    Chain,
    Address20,
    Address20,
    u128,
    u64,
);

struct Group {
    keys: BTreeMap<frost_secp256k1::Identifier, KeyPackage>,
    public: PublicKeyPackage,
}

/// A 2-of-3 dealer key from `seed` whose group key has the wanted SEC1 prefix.
fn group(seed: u64, prefix: u8) -> Group {
    for s in seed.. {
        let mut rng = StdRng::seed_from_u64(s);
        let (shares, public) =
            generate_with_dealer(3, 2, IdentifierList::Default, &mut rng).unwrap();
        if public.verifying_key().serialize().unwrap()[0] != prefix {
            continue;
        }
        let keys = shares
            .into_iter()
            .map(|(id, s)| (id, KeyPackage::try_from(s).unwrap()))
            .collect();
        return Group { keys, public };
    }
    unreachable!()
}

fn sign(g: &Group, message: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let signers: Vec<_> = g.keys.keys().take(2).copied().collect();
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for id in &signers {
        let (n, c) = round1::commit(g.keys[id].signing_share(), rng);
        nonces.insert(*id, n);
        commitments.insert(*id, c);
    }
    let package = SigningPackage::new(commitments, message);
    let shares = signers
        .iter()
        .map(|id| {
            (
                *id,
                round2::sign(&package, &nonces[id], &g.keys[id]).unwrap(),
            )
        })
        .collect();
    let sig = frost_secp256k1::aggregate(&package, &shares, &g.public).unwrap();
    sig.serialize().unwrap()
}

fn key(g: &Group) -> [u8; 33] {
    g.public
        .verifying_key()
        .serialize()
        .unwrap()
        .try_into()
        .unwrap()
}

fn sig_json(sig: &[u8]) -> Value {
    let [rx, ry, z] = signature_words(sig).unwrap();
    json!({ "frost": hex::encode(sig), "rx": hex::encode(rx), "ry": hex::encode(ry), "z": hex::encode(z) })
}

fn addr(chain: Chain, a: &Address20) -> String {
    address_text(chain, a)
}

fn generate() -> Value {
    let even = group(1, 2);
    let odd = group(1, 3);
    let mut rng = StdRng::seed_from_u64(7);
    let hardhat = VaultDomain {
        chain_id: HARDHAT_CHAIN_ID,
        vault: address_bytes(Chain::Ethereum, HARDHAT_VAULT).unwrap(),
    };
    let dest = address_bytes(
        Chain::Ethereum,
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    )
    .unwrap();
    let token = address_bytes(
        Chain::Ethereum,
        "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    )
    .unwrap();
    let tron_usdt = address_bytes(Chain::Tron, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t").unwrap();
    let tron_vault: Address20 = [0x5a; 20];
    let tron_dest: Address20 = [0xa5; 20];
    let polygon = VaultDomain {
        chain_id: 137,
        vault: hardhat.vault,
    };
    let tron = VaultDomain {
        chain_id: TRON_MAINNET_CHAIN_ID,
        vault: tron_vault,
    };
    let mut withdrawals = Vec::new();
    let cases: [Case; 5] = [
        (
            "eth-1",
            &even,
            hardhat,
            Chain::Ethereum,
            NATIVE,
            dest,
            10u128.pow(18),
            FAR_DEADLINE,
        ),
        (
            "eth-odd-key",
            &odd,
            hardhat,
            Chain::Ethereum,
            NATIVE,
            dest,
            1,
            FAR_DEADLINE,
        ),
        (
            "erc20-max",
            &even,
            hardhat,
            Chain::Ethereum,
            token,
            dest,
            u128::MAX,
            FAR_DEADLINE,
        ),
        (
            "polygon-1",
            &even,
            polygon,
            Chain::Polygon,
            NATIVE,
            dest,
            5,
            1_800_000_000,
        ),
        (
            "tron-usdt",
            &even,
            tron,
            Chain::Tron,
            tron_usdt,
            tron_dest,
            1_000_000,
            1_800_000_000,
        ),
    ];
    for (intent_id, g, domain, chain, token, to, amount, deadline) in cases {
        let w = VaultWithdrawal {
            id: withdrawal_id(intent_id),
            token,
            to,
            amount,
            deadline,
        };
        let digest = domain.withdraw_digest(&w);
        let sig = sign(g, &digest, &mut rng);
        withdrawals.push(json!({
            "group_key": hex::encode(key(g)),
            "chain": chain.as_str(),
            "chain_id": domain.chain_id,
            "vault": addr(chain, &domain.vault),
            "vault_hex": hex::encode(domain.vault),
            "intent_id": intent_id,
            "id": hex::encode(w.id),
            "token": if token == NATIVE { "native".to_string() } else { addr(chain, &token) },
            "token_hex": hex::encode(token),
            "to": addr(chain, &to),
            "to_hex": hex::encode(to),
            "amount": amount.to_string(),
            "deadline": deadline,
            "digest": hex::encode(digest),
            "signature": sig_json(&sig),
            "calldata": hex::encode(withdraw_calldata(&w, &sig).unwrap()),
        }));
    }
    let rotate = hardhat.rotate_digest(0, &key(&odd));
    let rotate_sig = sign(&even, &rotate, &mut rng);
    let cap = hardhat.cap_digest(1, &NATIVE, 5 * 10u128.pow(18), 10u128.pow(15));
    let cap_sig = sign(&odd, &cap, &mut rng);
    json!({
        "about": "Quorate vault v1 digests, FROST(secp256k1, SHA-256) signatures and withdraw calldata; generated by core/tests/evm_vault.rs. Signatures are RFC 9591 (33-byte compressed R, 32-byte z) and the vault's (rx, ry, z) words. Hardhat vectors assume the vault is the first contract deployed by Hardhat's first account on chain 31337.",
        "withdrawals": withdrawals,
        "rotations": [{
            "group_key": hex::encode(key(&even)),
            "chain_id": hardhat.chain_id,
            "vault": HARDHAT_VAULT,
            "nonce": 0,
            "new_key": hex::encode(key(&odd)),
            "digest": hex::encode(rotate),
            "signature": sig_json(&rotate_sig),
        }],
        "caps": [{
            "group_key": hex::encode(key(&odd)),
            "chain_id": hardhat.chain_id,
            "vault": HARDHAT_VAULT,
            "nonce": 1,
            "token_hex": hex::encode(NATIVE),
            "capacity": (5 * 10u128.pow(18)).to_string(),
            "refill_per_second": 10u128.pow(15).to_string(),
            "digest": hex::encode(cap),
            "signature": sig_json(&cap_sig),
        }],
    })
}

#[test]
fn vectors_are_current_and_valid() {
    let generated = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if std::env::var_os("QUORATE_WRITE_VECTORS").is_some() {
        std::fs::write(PATH, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(PATH).expect("vectors file");
    assert_eq!(
        committed, generated,
        "vectors differ: the digest layout changed?"
    );
    // Every signature verifies with FROST itself over its digest.
    let v: Value = serde_json::from_str(&committed).unwrap();
    let mut checked = 0;
    for section in ["withdrawals", "rotations", "caps"] {
        for case in v[section].as_array().unwrap() {
            let key = VerifyingKey::deserialize(
                &hex::decode(case["group_key"].as_str().unwrap()).unwrap(),
            )
            .unwrap();
            let sig = Signature::deserialize(
                &hex::decode(case["signature"]["frost"].as_str().unwrap()).unwrap(),
            )
            .unwrap();
            let digest = hex::decode(case["digest"].as_str().unwrap()).unwrap();
            key.verify(&digest, &sig).unwrap();
            let mut other = digest.clone();
            other[0] ^= 1;
            assert!(key.verify(&other, &sig).is_err());
            checked += 1;
        }
    }
    assert_eq!(checked, 7);
}

#[test]
fn every_field_changes_the_withdraw_digest() {
    let d = VaultDomain {
        chain_id: 1,
        vault: [7; 20],
    };
    let w = VaultWithdrawal {
        id: [1; 32],
        token: NATIVE,
        to: [2; 20],
        amount: 3,
        deadline: 4,
    };
    let base = d.withdraw_digest(&w);
    let variants = [
        VaultDomain { chain_id: 2, ..d }.withdraw_digest(&w),
        VaultDomain {
            vault: [8; 20],
            ..d
        }
        .withdraw_digest(&w),
        d.withdraw_digest(&VaultWithdrawal { id: [9; 32], ..w }),
        d.withdraw_digest(&VaultWithdrawal {
            token: [9; 20],
            ..w
        }),
        d.withdraw_digest(&VaultWithdrawal { to: [9; 20], ..w }),
        d.withdraw_digest(&VaultWithdrawal { amount: 4, ..w }),
        d.withdraw_digest(&VaultWithdrawal { deadline: 5, ..w }),
    ];
    for (i, v) in variants.iter().enumerate() {
        assert_ne!(*v, base, "field {i} is not in the digest");
    }
    // The three message kinds never collide even on equal words.
    assert_ne!(d.rotate_digest(0, &[2; 33]), d.cap_digest(0, &NATIVE, 0, 0));
}
