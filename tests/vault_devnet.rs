//! The "done when", on a real node: `quorate devnet --evm-rpc` deploys and funds the
//! vault, `quorate submit --json` prints the vault call, any node account sends it and exactly
//! the amount moves, once. Then `quorate reconcile` matches every payout to the signers' audit
//! logs, and raises the alarm for a payout made with shares stolen from t signers' disks,
//! bypassing the coordinator and the signers' checks.

use std::{process::Stdio, time::Duration};

use quorate_core::{
    address::Chain,
    chains::evm::{
        address_bytes, withdraw_calldata, withdrawal_id, VaultDomain, VaultWithdrawal, NATIVE,
    },
};
use quorate_signer::store::{SignerStore, SledStore};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{
    evm::{parse_addr, token_balance},
    evm_rpc::hex0x,
    hardhat::Hardhat,
    harness::{exe, quorate},
    vault::DealerKey,
};

const DEST: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
const ETH: u128 = 1_000_000_000_000_000_000;

async fn submit(dir: &str, asset: &str, amount: &str) -> Value {
    let (code, out, err) = quorate(&[
        "submit", "--dir", dir, "--chain", "ethereum", "--asset", asset, "--to", DEST, "--amount",
        amount, "--json",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(out.trim()).unwrap()
}

/// The group key t signers' stolen disks give (share files and key-encryption keys).
fn steal(dir: &std::path::Path, names: &[&str]) -> DealerKey {
    let mut keys = std::collections::BTreeMap::new();
    let mut public = None;
    for name in names {
        let cfg = quorate_signer::config::SignerConfig::load(&dir.join(name).join("signer.toml"))
            .unwrap();
        let store = SledStore::open(&cfg.data_dir).unwrap();
        let sealed = store
            .get_meta(quorate_signer::node::META_KEY_SHARE)
            .unwrap()
            .unwrap();
        let plain = cfg
            .kek()
            .unwrap()
            .open(&quorate_signer::node::key_share_purpose(name), &sealed)
            .unwrap();
        let kp = frost_secp256k1::keys::KeyPackage::deserialize(&plain).unwrap();
        let pkp = store
            .get_meta(quorate_signer::node::META_PUBLIC_KEY_PACKAGE)
            .unwrap()
            .unwrap();
        public = Some(frost_secp256k1::keys::PublicKeyPackage::deserialize(&pkp).unwrap());
        keys.insert(*kp.identifier(), kp);
    }
    DealerKey::from_parts(keys, public.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_pays_out_through_the_vault_once_and_reconciles() {
    let node = Hardhat::start().await;
    let rpc = &node.rpc;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dn");
    let dir_s = dir.to_str().unwrap().to_string();
    let mut devnet = tokio::process::Command::new(exe())
        .args(["devnet", "--dir", &dir_s, "--evm-rpc", &node.url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(devnet.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            banner.push_str(&l);
            banner.push('\n');
            if l.starts_with("devnet ready") {
                return;
            }
        }
        panic!("devnet exited early:\n{banner}");
    })
    .await
    .expect("devnet ready");
    let vault_text = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("vault "))
        .unwrap_or_else(|| panic!("no vault in the banner:\n{banner}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let vault = parse_addr(&vault_text).unwrap();
    assert_eq!(
        rpc.balance(&hex0x(&vault)).await.unwrap(),
        100 * ETH,
        "{banner}"
    );
    let accounts = rpc.accounts().await.unwrap();
    let sender = accounts[7].clone();
    let dest = address_bytes(Chain::Ethereum, DEST).unwrap();

    // The command, and the call it prints, sent by an account that is not the vault's.
    let w = submit(&dir_s, "ETH", "1000000000000000000").await;
    assert_eq!(w["status"], "signed", "{w}");
    let call = &w["evm_call"];
    assert_eq!(call["to"], vault_text.as_str(), "{w}");
    let data = hex::decode(call["data"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let before = rpc.balance(&hex0x(&dest)).await.unwrap();
    let r = rpc
        .send(&sender, Some(&vault_text), &data, 0)
        .await
        .unwrap();
    assert!(r.success);
    assert_eq!(rpc.balance(&hex0x(&dest)).await.unwrap() - before, ETH);
    assert_eq!(rpc.balance(&hex0x(&vault)).await.unwrap(), 99 * ETH);
    let again = rpc.send(&sender, Some(&vault_text), &data, 0).await;
    assert!(again.is_err(), "a second send paid again");
    assert_eq!(rpc.balance(&hex0x(&dest)).await.unwrap() - before, ETH);

    // A token payout: the token contract comes from the governed policy, not the request.
    let w = submit(&dir_s, "QTEST", "2500000").await;
    assert_eq!(w["status"], "signed", "{w}");
    let data = hex::decode(
        w["evm_call"]["data"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    assert!(
        rpc.send(&sender, Some(&vault_text), &data, 0)
            .await
            .unwrap()
            .success
    );
    let token_text = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("test token "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let token = parse_addr(&token_text).unwrap();
    assert_eq!(token_balance(rpc, &token, &dest).await.unwrap(), 2_500_000);

    // Reconciliation against the signers' verified logs: both payouts match.
    let audit = dir.join("audit");
    let (code, out, err) = quorate(&[
        "audit",
        "--dir",
        &dir_s,
        "export",
        "--all",
        audit.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let reconcile = |audit: String| {
        let dir_s = dir_s.clone();
        let url = node.url.clone();
        async move {
            quorate(&[
                "reconcile",
                "--dir",
                &dir_s,
                "--chain",
                "ethereum",
                "--rpc",
                &url,
                "--audit",
                &audit,
                "--json",
            ])
            .await
        }
    };
    let (code, out, err) = reconcile(audit.to_str().unwrap().to_string()).await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["vaults"][0]["matched"], 2, "{report}");

    // The theft: t signers' disks (shares and their key-encryption keys) are stolen, and the
    // thief signs a payout of their own. The vault pays it; reconcile finds it.
    let pid = devnet.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    tokio::time::timeout(Duration::from_secs(60), devnet.wait())
        .await
        .expect("devnet stops")
        .unwrap();
    let thief = steal(&dir, &["signer-1", "signer-2"]);
    let chain_id = rpc.chain_id().await.unwrap();
    let loot = VaultWithdrawal {
        id: withdrawal_id("not-a-withdrawal"),
        token: NATIVE,
        to: [0x66; 20],
        amount: 7 * ETH,
        deadline: 4_102_444_800,
    };
    let sig = thief.sign(&VaultDomain { chain_id, vault }.withdraw_digest(&loot));
    let stolen = withdraw_calldata(&loot, &sig).unwrap();
    assert!(
        rpc.send(&sender, Some(&vault_text), &stolen, 0)
            .await
            .unwrap()
            .success
    );
    let (code, out, err) = reconcile(audit.to_str().unwrap().to_string()).await;
    assert_eq!(code, 2, "{out}{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    let alarms = report["vaults"][0]["alarms"].as_array().unwrap();
    assert_eq!(alarms.len(), 1, "{report}");
    assert_eq!(alarms[0]["amount"], (7 * ETH).to_string());
    assert_eq!(alarms[0]["to"], hex0x(&[0x66; 20]));
    assert_eq!(report["vaults"][0]["matched"], 2, "{report}");
}
