//! The vault contract on a real EVM node (Hardhat): the shared vectors replay through the
//! contract's own code, payouts move exactly the amount, and everything that is not exactly
//! what the group signed reverts: replays, changed fields, another vault or chain, a passed
//! deadline, a malformed signature, an old key after a rotation, a payout over the on-chain
//! cap, a token that does not deliver. Gas figures come from receipts.

use std::collections::BTreeMap;

use frost_secp256k1::{
    keys::{generate_with_dealer, IdentifierList, KeyPackage, PublicKeyPackage},
    round1, round2, Identifier, SigningPackage,
};
use quorate_core::{
    address::Chain,
    chains::evm::{
        address_bytes, selector, signature_words, withdraw_calldata, withdrawal_id, Address20,
        VaultDomain, VaultWithdrawal, NATIVE,
    },
};
use serde_json::Value;

use crate::{
    evm::{
        addr_word, deploy, mint_call, parse_addr, test_token_creation, token_balance,
        token_creation, vault_creation, word, CapInit,
    },
    evm_rpc::{hex0x, Receipt, Rpc},
    hardhat::Hardhat,
};

const VECTORS: &str = include_str!("../core/tests/vectors/evm_vault_v1.json");
pub(crate) const DEST: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
pub(crate) const ETH: u128 = 1_000_000_000_000_000_000;
/// 2100-01-01: a deadline no test reaches.
const FAR: u64 = 4_102_444_800;

/// A group key held whole by the test (a trusted dealer's 2-of-3).
pub struct DealerKey {
    keys: BTreeMap<Identifier, KeyPackage>,
    public: PublicKeyPackage,
}

impl DealerKey {
    pub fn new() -> Self {
        let (shares, public) =
            generate_with_dealer(3, 2, IdentifierList::Default, rand::rngs::OsRng).unwrap();
        let keys = shares
            .into_iter()
            .map(|(id, s)| (id, KeyPackage::try_from(s).unwrap()))
            .collect();
        Self { keys, public }
    }

    pub fn from_parts(keys: BTreeMap<Identifier, KeyPackage>, public: PublicKeyPackage) -> Self {
        Self { keys, public }
    }

    pub fn sec1(&self) -> [u8; 33] {
        self.public
            .verifying_key()
            .serialize()
            .unwrap()
            .try_into()
            .unwrap()
    }

    /// A FROST signature by any t of the shares held.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let t = usize::from(*self.keys.values().next().unwrap().min_signers());
        let ids: Vec<Identifier> = self.keys.keys().take(t).copied().collect();
        let mut nonces = BTreeMap::new();
        let mut commitments = BTreeMap::new();
        for id in &ids {
            let (n, c) = round1::commit(self.keys[id].signing_share(), &mut rand::rngs::OsRng);
            nonces.insert(*id, n);
            commitments.insert(*id, c);
        }
        let package = SigningPackage::new(commitments, message);
        let shares = ids
            .iter()
            .map(|id| {
                (
                    *id,
                    round2::sign(&package, &nonces[id], &self.keys[id]).unwrap(),
                )
            })
            .collect();
        frost_secp256k1::aggregate(&package, &shares, &self.public)
            .unwrap()
            .serialize()
            .unwrap()
    }
}

/// Calldata of `signature(words...)`.
pub(crate) fn call(signature: &str, words: &[[u8; 32]]) -> Vec<u8> {
    let mut d = selector(signature).to_vec();
    for w in words {
        d.extend_from_slice(w);
    }
    d
}

pub(crate) fn w64(v: u64) -> [u8; 32] {
    word(u128::from(v))
}

fn b32(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

/// Asserts the node refused the transaction with the custom error `error` (by selector: the
/// node knows no ABI).
#[track_caller]
fn assert_reverts(r: anyhow::Result<Receipt>, error: &str) {
    let sel = hex::encode(selector(error));
    match r {
        Ok(rc) => panic!(
            "expected a revert with {error}, got a receipt (success {})",
            rc.success
        ),
        Err(e) => {
            let text = format!("{e:#}");
            assert!(
                text.contains(&sel),
                "expected {error} (0x{sel}), got: {text}"
            );
        }
    }
}

pub(crate) struct Chainside<'a> {
    pub(crate) rpc: &'a Rpc,
    pub(crate) from: String,
}

impl<'a> Chainside<'a> {
    /// Development account `account` of `node`.
    pub(crate) async fn on(node: &'a Hardhat, account: usize) -> Chainside<'a> {
        let accounts = node.rpc.accounts().await.unwrap();
        Chainside {
            rpc: &node.rpc,
            from: accounts[account].clone(),
        }
    }

    /// Deploys a vault for `key` (an hour's delay) with `caps`; its address and deploy gas.
    pub(crate) async fn vault(&self, key: &[u8], caps: &[CapInit]) -> (Address20, u64) {
        deploy(
            self.rpc,
            &self.from,
            &vault_creation(key, 3600, caps).unwrap(),
        )
        .await
        .unwrap()
    }

    /// Sends `data` to `to` and requires it to execute.
    pub(crate) async fn pays(&self, to: &Address20, data: &[u8]) {
        let r = self.send(to, data).await.unwrap();
        assert!(r.success);
    }

    pub(crate) async fn send(&self, to: &Address20, data: &[u8]) -> anyhow::Result<Receipt> {
        self.rpc.send(&self.from, Some(&hex0x(to)), data, 0).await
    }

    pub(crate) async fn read(&self, to: &Address20, data: &[u8]) -> Vec<u8> {
        self.rpc.read(&hex0x(to), data).await.unwrap()
    }

    pub(crate) async fn fund(&self, to: &Address20, wei: u128) {
        let r = self
            .rpc
            .send(&self.from, Some(&hex0x(to)), &[], wei)
            .await
            .unwrap();
        assert!(r.success);
    }

    async fn balance(&self, a: &Address20) -> u128 {
        self.rpc.balance(&hex0x(a)).await.unwrap()
    }
}

pub(crate) fn withdraw_for(
    key: &DealerKey,
    domain: &VaultDomain,
    id: &str,
    token: Address20,
    to: Address20,
    amount: u128,
) -> Vec<u8> {
    let w = VaultWithdrawal {
        id: withdrawal_id(id),
        token,
        to,
        amount,
        deadline: FAR,
    };
    withdraw_calldata(&w, &key.sign(&domain.withdraw_digest(&w))).unwrap()
}

fn rotate_call(key: &DealerKey, domain: &VaultDomain, nonce: u64, new: &[u8; 33]) -> Vec<u8> {
    let sig = signature_words(&key.sign(&domain.rotate_digest(nonce, new))).unwrap();
    let mut words = vec![
        w64(u64::from(new[0])),
        new[1..].try_into().unwrap(),
        w64(nonce),
    ];
    words.extend(sig);
    call(
        "rotateKey(uint8,uint256,uint64,(uint256,uint256,uint256))",
        &words,
    )
}

fn cap_call(
    key: &DealerKey,
    domain: &VaultDomain,
    nonce: u64,
    token: &Address20,
    capacity: u128,
    rate: u128,
) -> Vec<u8> {
    let sig = signature_words(&key.sign(&domain.cap_digest(nonce, token, capacity, rate))).unwrap();
    let mut words = vec![addr_word(token), word(capacity), word(rate), w64(nonce)];
    words.extend(sig);
    call(
        "setCap(address,uint128,uint128,uint64,(uint256,uint256,uint256))",
        &words,
    )
}

/// The committed artifacts are exactly what the pinned compiler makes of the sources
/// (`node build.js --check` recompiles with solc-js from the lock file, offline).
#[test]
fn committed_artifacts_are_reproducible() {
    crate::hardhat::ensure_installed();
    let out = std::process::Command::new("node")
        .args(["build.js", "--check"])
        .current_dir(crate::hardhat::evm_dir())
        .output()
        .expect("the EVM tests need Node.js: running `node` failed");
    assert!(
        out.status.success(),
        "chains/evm/artifacts differ from a fresh compile:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every vector of `core/tests/vectors/evm_vault_v1.json` through the contract: the digests
/// through its own digest functions, the Hardhat withdrawals, the rotation and the cap as
/// real transactions. The vectors' vault is the first contract of Hardhat's first account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_vectors_replay_on_a_real_evm_node() {
    let node = Hardhat::start().await;
    let rpc = &node.rpc;
    let c = Chainside::on(&node, 0).await;
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    let first = &v["withdrawals"][0];
    let key = hex::decode(first["group_key"].as_str().unwrap()).unwrap();
    let (vault, _) = deploy(rpc, &c.from, &vault_creation(&key, 3600, &[]).unwrap())
        .await
        .unwrap();
    assert_eq!(
        hex0x(&vault),
        first["vault"].as_str().unwrap().to_lowercase()
    );
    let (token, _) = deploy(
        rpc,
        &c.from,
        &test_token_creation("Vector", "VEC", 18).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        hex::encode(token),
        v["withdrawals"][2]["token_hex"].as_str().unwrap()
    );
    c.pays(&token, &mint_call(&vault, u128::MAX)).await;
    c.fund(&vault, 10 * ETH).await;

    // Every digest, through the function the contract's own withdraw uses.
    let mut digests = 0;
    for w in v["withdrawals"].as_array().unwrap() {
        let data = call(
            "withdrawDigestFor(uint256,address,bytes32,address,address,uint256,uint64)",
            &[
                w64(w["chain_id"].as_u64().unwrap()),
                addr_word(&parse_addr(w["vault_hex"].as_str().unwrap()).unwrap()),
                b32(w["id"].as_str().unwrap()),
                addr_word(&parse_addr(w["token_hex"].as_str().unwrap()).unwrap()),
                addr_word(&parse_addr(w["to_hex"].as_str().unwrap()).unwrap()),
                word(w["amount"].as_str().unwrap().parse().unwrap()),
                w64(w["deadline"].as_u64().unwrap()),
            ],
        );
        assert_eq!(
            hex::encode(c.read(&vault, &data).await),
            w["digest"].as_str().unwrap(),
            "{}",
            w["intent_id"]
        );
        digests += 1;
    }
    let r = &v["rotations"][0];
    let new_key = hex::decode(r["new_key"].as_str().unwrap()).unwrap();
    let data = call(
        "rotateDigestFor(uint256,address,uint64,uint8,uint256)",
        &[
            w64(r["chain_id"].as_u64().unwrap()),
            addr_word(&vault),
            w64(r["nonce"].as_u64().unwrap()),
            w64(u64::from(new_key[0])),
            new_key[1..].try_into().unwrap(),
        ],
    );
    assert_eq!(
        hex::encode(c.read(&vault, &data).await),
        r["digest"].as_str().unwrap()
    );
    let k = &v["caps"][0];
    let cap_args = [
        addr_word(&parse_addr(k["token_hex"].as_str().unwrap()).unwrap()),
        word(k["capacity"].as_str().unwrap().parse().unwrap()),
        word(k["refill_per_second"].as_str().unwrap().parse().unwrap()),
        w64(k["nonce"].as_u64().unwrap()),
    ];
    let data = call(
        "capDigestFor(uint256,address,uint64,address,uint128,uint128)",
        &[
            w64(k["chain_id"].as_u64().unwrap()),
            addr_word(&vault),
            cap_args[3],
            cap_args[0],
            cap_args[1],
            cap_args[2],
        ],
    );
    assert_eq!(
        hex::encode(c.read(&vault, &data).await),
        k["digest"].as_str().unwrap()
    );
    assert_eq!(digests, 5);

    // The Hardhat withdrawals pay exactly once.
    let dest = parse_addr(first["to_hex"].as_str().unwrap()).unwrap();
    let calldata = hex::decode(first["calldata"].as_str().unwrap()).unwrap();
    let before = c.balance(&dest).await;
    c.pays(&vault, &calldata).await;
    assert_eq!(c.balance(&dest).await - before, ETH);
    assert_eq!(c.balance(&vault).await, 9 * ETH);
    assert_reverts(
        c.send(&vault, &calldata).await,
        "WithdrawalReplayed(bytes32)",
    );
    let erc20 = hex::decode(v["withdrawals"][2]["calldata"].as_str().unwrap()).unwrap();
    c.pays(&vault, &erc20).await;
    assert_eq!(token_balance(rpc, &token, &dest).await.unwrap(), u128::MAX);
    // Signed for Polygon's chain id with the same vault address: refused here.
    let polygon = hex::decode(v["withdrawals"][3]["calldata"].as_str().unwrap()).unwrap();
    assert_reverts(c.send(&vault, &polygon).await, "BadSignature()");
    // Signed by the odd key: refused until the vault is rotated to it.
    let odd = hex::decode(v["withdrawals"][1]["calldata"].as_str().unwrap()).unwrap();
    assert_reverts(c.send(&vault, &odd).await, "BadSignature()");
    let sig = &r["signature"];
    let rotate = call(
        "rotateKey(uint8,uint256,uint64,(uint256,uint256,uint256))",
        &[
            w64(u64::from(new_key[0])),
            new_key[1..].try_into().unwrap(),
            w64(0),
            b32(sig["rx"].as_str().unwrap()),
            b32(sig["ry"].as_str().unwrap()),
            b32(sig["z"].as_str().unwrap()),
        ],
    );
    c.pays(&vault, &rotate).await;
    // Scheduled, not yet in force: the odd key still signs nothing here.
    assert_reverts(c.send(&vault, &odd).await, "BadSignature()");
    node.advance(3600).await;
    c.pays(&vault, &call("applyRotation()", &[])).await;
    let before = c.balance(&dest).await;
    c.pays(&vault, &odd).await;
    assert_eq!(c.balance(&dest).await - before, 1);
    // The cap vector (by the new key, admin nonce 1): a cap on ETH where there was none.
    let sig = &k["signature"];
    let mut words = cap_args.to_vec();
    for f in ["rx", "ry", "z"] {
        words.push(b32(sig[f].as_str().unwrap()));
    }
    let set = call(
        "setCap(address,uint128,uint128,uint64,(uint256,uint256,uint256))",
        &words,
    );
    c.pays(&vault, &set).await;
    let cap = c
        .read(&vault, &call("capOf(address)", &[addr_word(&NATIVE)]))
        .await;
    assert_eq!(cap[31], 1, "capped");
    assert_eq!(
        u128::from_be_bytes(cap[48..64].try_into().unwrap()),
        5 * ETH
    );
}

/// What is not exactly what the group signed does not pay, on a real node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_refuses_everything_the_group_did_not_sign() {
    let node = Hardhat::start().await;
    let rpc = &node.rpc;
    let c = Chainside::on(&node, 1).await;
    let chain_id = rpc.chain_id().await.unwrap();
    let key = DealerKey::new();
    let (vault, _) = c.vault(&key.sec1(), &[]).await;
    let (vault2, _) = c.vault(&key.sec1(), &[]).await;
    c.fund(&vault, 50 * ETH).await;
    c.fund(&vault2, 50 * ETH).await;
    let domain = VaultDomain { chain_id, vault };
    let dest = address_bytes(Chain::Ethereum, DEST).unwrap();
    let other: Address20 = [0x77; 20];
    let good = withdraw_for(&key, &domain, "t-1", NATIVE, dest, ETH);

    // Each field changed after signing.
    let field = |i: usize, w: [u8; 32]| {
        let mut d = good.clone();
        d[4 + 32 * i..4 + 32 * (i + 1)].copy_from_slice(&w);
        d
    };
    for (what, data) in [
        ("id", field(0, withdrawal_id("t-2"))),
        ("token", field(1, addr_word(&[0x11; 20]))),
        ("destination", field(2, addr_word(&other))),
        ("amount", field(3, word(2 * ETH))),
        ("deadline", field(4, w64(FAR + 1))),
    ] {
        let r = c.send(&vault, &data).await;
        assert!(r.is_err(), "a changed {what} paid out");
        assert_reverts(r, "BadSignature()");
    }
    // Another vault (same key), another chain id.
    assert_reverts(c.send(&vault2, &good).await, "BadSignature()");
    let elsewhere = VaultDomain { chain_id: 1, vault };
    assert_reverts(
        c.send(
            &vault,
            &withdraw_for(&key, &elsewhere, "t-3", NATIVE, dest, ETH),
        )
        .await,
        "BadSignature()",
    );
    // Another key altogether.
    assert_reverts(
        c.send(
            &vault,
            &withdraw_for(&DealerKey::new(), &domain, "t-4", NATIVE, dest, ETH),
        )
        .await,
        "BadSignature()",
    );
    // Malformed signatures: z >= n, R off the curve.
    let n = b32("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
    assert_reverts(c.send(&vault, &field(7, n)).await, "ScalarOutOfRange()");
    let mut ry = good[4 + 32 * 6..4 + 32 * 7].to_vec();
    ry[31] ^= 1;
    assert_reverts(
        c.send(&vault, &field(6, ry.try_into().unwrap())).await,
        "PointNotOnCurve()",
    );
    // A passed deadline, signed as such.
    let now = 1_600_000_000;
    let w = VaultWithdrawal {
        id: withdrawal_id("t-5"),
        token: NATIVE,
        to: dest,
        amount: 1,
        deadline: now,
    };
    let late = withdraw_calldata(&w, &key.sign(&domain.withdraw_digest(&w))).unwrap();
    assert_reverts(c.send(&vault, &late).await, "DeadlinePassed(uint64)");
    // Paying the vault itself or nothing is refused even when signed.
    assert_reverts(
        c.send(
            &vault,
            &withdraw_for(&key, &domain, "t-6", NATIVE, vault, 1),
        )
        .await,
        "BadWithdrawal()",
    );
    // Nothing above moved a wei; the signed call pays once.
    assert_eq!(c.balance(&vault).await, 50 * ETH);
    c.pays(&vault, &good).await;
    assert_reverts(c.send(&vault, &good).await, "WithdrawalReplayed(bytes32)");
    assert_eq!(c.balance(&vault).await, 49 * ETH);

    // Rotation: only by the current key, at the current admin nonce, and only after the delay;
    // until then the current key signs everything, a cancel included; afterwards the old key
    // signs nothing.
    let next = DealerKey::new();
    assert_reverts(
        c.send(&vault, &rotate_call(&next, &domain, 0, &next.sec1()))
            .await,
        "BadSignature()",
    );
    assert_reverts(
        c.send(&vault, &rotate_call(&key, &domain, 5, &next.sec1()))
            .await,
        "BadNonce(uint64)",
    );
    let mut bad_key = next.sec1();
    bad_key[0] = 4;
    assert_reverts(
        c.send(&vault, &rotate_call(&key, &domain, 0, &bad_key))
            .await,
        "BadKey()",
    );
    let apply = call("applyRotation()", &[]);
    // A thief's rotation, cancelled by the honest group before it applies.
    let thief = DealerKey::new();
    c.pays(&vault, &rotate_call(&key, &domain, 0, &thief.sec1()))
        .await;
    c.pays(&vault, &rotate_call(&key, &domain, 1, &key.sec1()))
        .await;
    node.advance(3600).await;
    assert_reverts(c.send(&vault, &apply).await, "NothingPending()");
    assert_reverts(
        c.send(
            &vault,
            &withdraw_for(&thief, &domain, "t-6b", NATIVE, dest, 1),
        )
        .await,
        "BadSignature()",
    );
    // The real rotation.
    let rotation = rotate_call(&key, &domain, 2, &next.sec1());
    c.pays(&vault, &rotation).await;
    assert_reverts(c.send(&vault, &rotation).await, "BadNonce(uint64)");
    assert_reverts(c.send(&vault, &apply).await, "TooEarly(uint64)");
    c.pays(&vault, &withdraw_for(&key, &domain, "t-7", NATIVE, dest, 1))
        .await;
    assert_reverts(
        c.send(
            &vault,
            &withdraw_for(&next, &domain, "t-7b", NATIVE, dest, 1),
        )
        .await,
        "BadSignature()",
    );
    node.advance(3600).await;
    c.pays(&vault, &apply).await;
    assert_reverts(
        c.send(&vault, &withdraw_for(&key, &domain, "t-9", NATIVE, dest, 1))
            .await,
        "BadSignature()",
    );
    c.pays(
        &vault,
        &withdraw_for(&next, &domain, "t-8", NATIVE, dest, 1),
    )
    .await;
    let key = next;

    // The on-chain cap: lowering applies at once, raising only after the delay.
    let cap = |nonce, capacity, rate| cap_call(&key, &domain, nonce, &NATIVE, capacity, rate);
    c.pays(&vault, &cap(3, 5 * ETH, 0)).await;
    assert_reverts(
        c.send(
            &vault,
            &withdraw_for(&key, &domain, "c-1", NATIVE, dest, 6 * ETH),
        )
        .await,
        "CapExceeded(address,uint128)",
    );
    c.pays(
        &vault,
        &withdraw_for(&key, &domain, "c-2", NATIVE, dest, 4 * ETH),
    )
    .await;
    assert_reverts(
        c.send(
            &vault,
            &withdraw_for(&key, &domain, "c-3", NATIVE, dest, 2 * ETH),
        )
        .await,
        "CapExceeded(address,uint128)",
    );
    // A raise waits out the delay; nothing pays more meanwhile.
    c.pays(&vault, &cap(4, 10 * ETH, ETH)).await;
    assert_reverts(
        c.send(&vault, &call("applyCap(address)", &[addr_word(&NATIVE)]))
            .await,
        "TooEarly(uint64)",
    );
    assert_reverts(
        c.send(
            &vault,
            &withdraw_for(&key, &domain, "c-4", NATIVE, dest, 2 * ETH),
        )
        .await,
        "CapExceeded(address,uint128)",
    );
    node.advance(3600).await;
    c.pays(&vault, &call("applyCap(address)", &[addr_word(&NATIVE)]))
        .await;
    node.advance(60).await;
    c.pays(
        &vault,
        &withdraw_for(&key, &domain, "c-5", NATIVE, dest, 9 * ETH),
    )
    .await;
    // Capacity 0 stops the token at once.
    c.pays(&vault, &cap(5, 0, 0)).await;
    assert_reverts(
        c.send(&vault, &withdraw_for(&key, &domain, "c-6", NATIVE, dest, 1))
            .await,
        "CapExceeded(address,uint128)",
    );
    // A raise waits, and a lowering signed meanwhile cancels it.
    let apply_cap = call("applyCap(address)", &[addr_word(&NATIVE)]);
    c.pays(&vault, &cap(6, 100 * ETH, ETH)).await;
    c.pays(&vault, &cap(7, 0, 0)).await;
    node.advance(3600).await;
    assert_reverts(c.send(&vault, &apply_cap).await, "NothingPending()");
    // Capacity down with the rate up is a raise, not a lowering.
    c.pays(&vault, &cap(8, 0, ETH)).await;
    assert_reverts(c.send(&vault, &apply_cap).await, "TooEarly(uint64)");
    // Removing the cap ("none") is a raise too; once applied, no token is capped and the
    // vault skips the cap entirely.
    c.pays(&vault, &cap(9, u128::MAX, 0)).await;
    assert_reverts(
        c.send(&vault, &withdraw_for(&key, &domain, "c-7", NATIVE, dest, 1))
            .await,
        "CapExceeded(address,uint128)",
    );
    node.advance(3600).await;
    c.pays(&vault, &apply_cap).await;
    let capped = c.read(&vault, &call("cappedTokens()", &[])).await;
    assert_eq!(capped, word(0).to_vec());
    c.pays(
        &vault,
        &withdraw_for(&key, &domain, "c-8", NATIVE, dest, 20 * ETH),
    )
    .await;
    // A key the vault cannot use: x not below the group order, x off the curve.
    let n = b32("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
    let mut at_n = [2u8; 33];
    at_n[1..].copy_from_slice(&n);
    assert_reverts(
        c.send(&vault, &rotate_call(&key, &domain, 10, &at_n)).await,
        "BadKey()",
    );
    let off_curve = (1u8..)
        .map(|x| {
            let mut k = [2u8; 33];
            k[32] = x;
            k
        })
        .find(|k| k256::PublicKey::from_sec1_bytes(k).is_err())
        .unwrap();
    assert_reverts(
        c.send(&vault, &rotate_call(&key, &domain, 10, &off_curve))
            .await,
        "BadKey()",
    );
    // And a vault whose delays are too short to react to is never deployed.
    let short = deploy(rpc, &c.from, &vault_creation(&key.sec1(), 60, &[]).unwrap()).await;
    assert!(
        short
            .as_ref()
            .err()
            .is_some_and(|e| format!("{e:#}").contains(&hex::encode(selector("BadDelay()")))),
        "a vault with a 60 s delay: {:?}",
        short.map(|x| x.0)
    );
}

/// Tokens that return nothing or `false` pay; a token that delivers less does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_payouts_are_checked_by_the_balance_change() {
    let node = Hardhat::start().await;
    let rpc = &node.rpc;
    let c = Chainside::on(&node, 2).await;
    let chain_id = rpc.chain_id().await.unwrap();
    let key = DealerKey::new();
    let (vault, _) = c.vault(&key.sec1(), &[]).await;
    let domain = VaultDomain { chain_id, vault };
    let dest = address_bytes(Chain::Ethereum, DEST).unwrap();
    for (artifact, pays) in [
        (crate::evm::TEST_TOKEN_ARTIFACT, true),
        (
            include_str!("../chains/evm/artifacts/NoReturnToken.json"),
            true,
        ),
        (
            include_str!("../chains/evm/artifacts/FalseReturnToken.json"),
            true,
        ),
        (include_str!("../chains/evm/artifacts/FeeToken.json"), false),
    ] {
        let code = token_creation(artifact, "T", "T", 6).unwrap();
        let (token, _) = deploy(rpc, &c.from, &code).await.unwrap();
        c.pays(&token, &mint_call(&vault, 1_000_000)).await;
        let id = format!("tok-{}", hex::encode(&token[..4]));
        let r = c
            .send(&vault, &withdraw_for(&key, &domain, &id, token, dest, 1000))
            .await;
        if pays {
            assert!(r.unwrap().success);
            assert_eq!(token_balance(rpc, &token, &dest).await.unwrap(), 1000);
            assert_eq!(token_balance(rpc, &token, &vault).await.unwrap(), 999_000);
        } else {
            assert_reverts(r, "TransferFailed(address)");
            assert_eq!(token_balance(rpc, &token, &vault).await.unwrap(), 1_000_000);
        }
    }
}
