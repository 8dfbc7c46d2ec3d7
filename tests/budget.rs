//! S2, the second loss bound: a hostile coordinator withholding ledger notices *and* t − 1
//! compromised signers. The test takes the coordinator's place, stops signer 3 and takes its key
//! share from its disk (as an attacker on that host would), so every withdrawal needs only one
//! honest share. Rotating over the n − t + 1 honest signers then gets (n − t + 1)·L out per
//! window; with the policy's per-signer budget (each signer counts its own releases against
//! L/(n − t + 1)) it gets at most L. Each released withdrawal is a real group signature,
//! aggregated here and verified with an independent RFC 9591 check.

use std::collections::BTreeMap;

use frost_secp256k1::{
    keys::{KeyPackage, PublicKeyPackage},
    round1, round2, SigningPackage,
};
use quorate_core::{atrest::Kek, intent::WithdrawalIntent};
use quorate_signer::{
    node::{key_share_purpose, META_KEY_SHARE, META_PUBLIC_KEY_PACKAGE},
    store::{SignerStore, SledStore},
};
use quorate_wire::signer::signer_message::Body as Ans;

use crate::{
    harness::{now_ms, rfc9591_verify, Cluster},
    hostile::{id, session, take_over},
};

const ETH: u128 = 1_000_000_000_000_000_000;
/// The devnet's limit: 10 ETH per 24 h (and 20 withdrawals per hour).
const LIMIT_ETH: u128 = 10;

/// signer-3's key share and the group's public key package, read from its stopped data
/// directory with its key-encryption key.
fn steal_share(c: &Cluster) -> (KeyPackage, PublicKeyPackage) {
    let kek = Kek::from_hex(
        std::fs::read_to_string(c.path("signer-3/kek"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let store = SledStore::open(&c.path("signer-3/data")).unwrap();
    let sealed = store.get_meta(META_KEY_SHARE).unwrap().unwrap();
    let plain = kek.open(&key_share_purpose("signer-3"), &sealed).unwrap();
    let pkp = store.get_meta(META_PUBLIC_KEY_PACKAGE).unwrap().unwrap();
    (
        KeyPackage::deserialize(&plain).unwrap(),
        PublicKeyPackage::deserialize(&pkp).unwrap(),
    )
}

/// Rotates 1 ETH withdrawals over (honest signer 1 or 2) + the compromised signer 3, with no
/// ledger notices, until both honest signers refuse; returns the ETH that left, each a verified
/// group signature.
async fn drain(budget: bool) -> u128 {
    let policy = format!(
        "{}{}",
        if budget {
            "per_signer_budget = true\n"
        } else {
            ""
        },
        include_str!("../cli/src/dev_policy.toml")
    );
    let mut c = Cluster::start_with_policy(3, 2, Some(&policy)).await;
    let group_key = c.status().await.group_public_key;
    c.kill_signer("signer-3").await;
    let (mut honest, _links) = take_over(&mut c, 2).await;
    let (share3, pkp) = steal_share(&c);
    let backend = c.backend_key();
    let now = now_ms();
    let mut released = 0u128;
    let mut refused_in_a_row = 0;
    for k in 0..80u32 {
        if refused_in_a_row == 2 {
            break;
        }
        let h = 1 + k % 2;
        let intent = WithdrawalIntent::from_parts(
            &format!("wd-drain-{k}"),
            "ethereum",
            "ETH",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            &ETH.to_string(),
            now,
            now + 600_000,
            None,
        )
        .unwrap();
        let sig = quorate_core::backend::sign(&backend, &intent.digest());
        let s = session();
        let driven = honest.get_mut(&h).unwrap();
        let ch = driven.commit(s).await;
        let (nonces3, c3) = round1::commit(share3.signing_share(), &mut rand::rngs::OsRng);
        let pkg = SigningPackage::new(
            BTreeMap::from([(id(h as u16), ch), (id(3), c3)]),
            &intent.digest(),
        );
        match driven.sign(s, &intent.encode(), &sig, &pkg).await {
            Ans::Sign(r) => {
                refused_in_a_row = 0;
                let shares = BTreeMap::from([
                    (
                        id(h as u16),
                        round2::SignatureShare::deserialize(&r.share).unwrap(),
                    ),
                    (id(3), round2::sign(&pkg, &nonces3, &share3).unwrap()),
                ]);
                let signature = frost_secp256k1::aggregate(&pkg, &shares, &pkp).unwrap();
                assert!(rfc9591_verify(
                    &group_key,
                    &intent.digest(),
                    &signature.serialize().unwrap()
                ));
                released += 1;
            }
            Ans::Refusal(r) => {
                let expected = if budget {
                    "policy-velocity-signer-amount-24h"
                } else {
                    "policy-velocity-asset-amount-24h"
                };
                assert_eq!(r.rule, expected, "{r:?}");
                refused_in_a_row += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    released
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_t_minus_1_compromised_signers_the_loss_is_n_minus_t_plus_1_times_the_limit_or_the_limit_with_budgets(
) {
    // 2-of-3, one signer compromised: n − t + 1 = 2 honest signers, 10 ETH each.
    let without = drain(false).await;
    println!("one compromised signer, no ledger notices: {without} ETH out (limit {LIMIT_ETH} ETH per 24 h)");
    assert_eq!(without, 2 * LIMIT_ETH, "(n - t + 1) x limit");
    // With the per-signer budget each honest signer lets 10 / 2 = 5 ETH through itself.
    let with = drain(true).await;
    println!("same attack with per-signer budgets: {with} ETH out");
    assert_eq!(with, LIMIT_ETH, "at most the limit");
    crate::scoreboard::record(
        "redteam-rotation-compromised",
        &serde_json::json!({
            "attacks": [{
                "attack": "quorum rotation with t-1 compromised signers and no ledger notices, per-signer budget on",
                "node": "signers",
                "rule": "policy-velocity-signer-amount-24h",
                "blocked": with <= LIMIT_ETH,
                "audited": null,
                "signed_eth": with,
                "bound_eth": LIMIT_ETH,
                "without_budget_eth": without,
            }]
        }),
    );
}
