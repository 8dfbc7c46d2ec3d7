//! The "done when", on a real node: `quorate devnet --evm-rpc` deploys and funds the
//! vault, `quorate submit --json` prints the vault call, any node account sends it and exactly
//! the amount moves, once. Then `quorate reconcile` matches every payout to the signers' audit
//! logs, and raises the alarm for a payout made with shares stolen from t signers' disks,
//! bypassing the coordinator and the signers' checks.

use std::time::Duration;

use quorate_core::{
    address::Chain,
    chains::evm::{
        address_bytes, withdraw_calldata, withdrawal_id, VaultDomain, VaultWithdrawal, NATIVE,
    },
};
use quorate_signer::store::{SignerStore, SledStore};
use serde_json::Value;

use crate::{
    evm::{parse_addr, token_balance},
    evm_rpc::hex0x,
    hardhat::Hardhat,
    harness::{quorate, start_devnet},
    vault::DealerKey,
};

const DEST: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
const ETH: u128 = 1_000_000_000_000_000_000;

/// Whether the node refused the transaction with the custom error `error` (by selector).
fn reverted_with<T>(r: &anyhow::Result<T>, error: &str) -> bool {
    let sel = hex::encode(quorate_core::chains::evm::selector(error));
    r.as_ref()
        .err()
        .is_some_and(|e| format!("{e:#}").contains(&sel))
}

/// `quorate audit export --all OUT` of the cluster in `dir`.
async fn export_audit(dir: &str, out: &std::path::Path) {
    let (code, o, e) = quorate(&[
        "audit",
        "--dir",
        dir,
        "export",
        "--all",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{o}{e}");
}

/// The calldata of the `evm_call` in a JSON answer.
fn call_data(v: &Value) -> Vec<u8> {
    let data = v["evm_call"]["data"].as_str().expect("an evm_call");
    hex::decode(data.trim_start_matches("0x")).unwrap()
}

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
    let (mut devnet, banner) =
        start_devnet(&["--dir", &dir_s, "--evm-rpc", &node.url], tmp.path()).await;
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
    assert!(
        reverted_with(&again, "WithdrawalReplayed(bytes32)"),
        "a second send: {again:?}"
    );
    assert_eq!(rpc.balance(&hex0x(&dest)).await.unwrap() - before, ETH);

    // A token payout: the token contract comes from the governed policy, not the request.
    let w = submit(&dir_s, "QTEST", "2500000").await;
    assert_eq!(w["status"], "signed", "{w}");
    let data = call_data(&w);
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
    export_audit(&dir_s, &audit).await;
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

    // Governed vault administration: the admins put an on-chain cap of 1 ETH in the policy
    // (a tightening: it applies at once), the group signs exactly that message, and the vault
    // refuses a payout above it even though the group signed the payout.
    let admin = |n: u32, args: Vec<String>| {
        let dir_s = dir_s.clone();
        async move {
            let key = format!("{dir_s}/admin/admin-{n}.key");
            let mut all: Vec<&str> =
                vec!["admin", "--dir", &dir_s, "--json", "--yes", "--key", &key];
            all.extend(args.iter().map(String::as_str));
            let (code, out, err) = quorate(&all).await;
            (code, out, err)
        }
    };
    let vault_sign = || -> Vec<String> {
        ["vault-sign", "--chain", "ethereum", "--nonce", "0"]
            .map(String::from)
            .to_vec()
    };
    // A nonce the policy does not list: nothing is signed.
    let (code, out, err) = admin(1, vault_sign()).await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("vault-action-unknown") || err.contains("no vault action"),
        "{out}{err}"
    );
    let (code, toml, err) = admin(1, vec!["show".into(), "--toml".into()]).await;
    assert_eq!(code, 0, "{toml}{err}");
    let edited = format!(
        "{toml}\n[[chains.vault_actions]]\nnonce = 0\n\n[chains.vault_actions.set_cap]\ntoken = \"native\"\ncapacity = \"{ETH}\"\nrefill_per_second = \"0\"\n"
    );
    let file = tmp.path().join("cap.toml");
    std::fs::write(&file, edited).unwrap();
    let (code, out, err) = admin(1, vec!["propose".into(), file.to_str().unwrap().into()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let proposal: Value = serde_json::from_str(out.trim()).unwrap();
    let hash = proposal["hash"].as_str().unwrap().to_string();
    let (code, out, err) = admin(2, vec!["approve".into(), hash]).await;
    assert_eq!(code, 0, "{out}{err}");
    // Every signer holds the new version once the coordinator has distributed it (polled; the
    // bound is generous so a loaded machine never fails it).
    let mut signed = None;
    for _ in 0..600 {
        let (code, out, _) = admin(1, vault_sign()).await;
        if code == 0 {
            signed = Some(serde_json::from_str::<Value>(out.trim()).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let signed = signed.expect("the group signs the cap the policy lists");
    let data = call_data(&signed);
    assert!(
        rpc.send(&sender, Some(&vault_text), &data, 0)
            .await
            .unwrap()
            .success
    );
    let w = submit(&dir_s, "ETH", &(2 * ETH).to_string()).await;
    assert_eq!(w["status"], "signed", "{w}");
    let data = call_data(&w);
    let over = rpc.send(&sender, Some(&vault_text), &data, 0).await;
    assert!(
        reverted_with(&over, "CapExceeded(address,uint128)"),
        "a payout over the on-chain cap: {over:?}"
    );
    assert_eq!(rpc.balance(&hex0x(&vault)).await.unwrap(), 99 * ETH);

    // The logs as they stand now: the governed cap's share releases are in them.
    let audit = dir.join("audit-2");
    export_audit(&dir_s, &audit).await;

    // The theft: t signers' disks (shares and their key-encryption keys) are stolen, and the
    // thief signs a payout and a key rotation of their own. The vault pays what the cap still
    // holds and schedules the rotation; reconcile finds both.
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
    let domain = VaultDomain { chain_id, vault };
    let stolen = withdraw_calldata(&loot, &thief.sign(&domain.withdraw_digest(&loot))).unwrap();
    // The on-chain cap holds even against every share: 7 ETH do not leave.
    let r = rpc.send(&sender, Some(&vault_text), &stolen, 0).await;
    assert!(
        reverted_with(&r, "CapExceeded(address,uint128)"),
        "the cap let a thief take 7 ETH: {r:?}"
    );
    // What the bucket still holds does.
    let loot = VaultWithdrawal {
        id: withdrawal_id("not-a-withdrawal-either"),
        amount: ETH,
        ..loot
    };
    let stolen = withdraw_calldata(&loot, &thief.sign(&domain.withdraw_digest(&loot))).unwrap();
    assert!(
        rpc.send(&sender, Some(&vault_text), &stolen, 0)
            .await
            .unwrap()
            .success
    );
    let rogue = DealerKey::new().sec1();
    let rotate = quorate_core::chains::evm::rotate_calldata(
        1,
        &rogue,
        &thief.sign(&domain.rotate_digest(1, &rogue)),
    )
    .unwrap();
    assert!(
        rpc.send(&sender, Some(&vault_text), &rotate, 0)
            .await
            .unwrap()
            .success
    );
    let (code, out, err) = reconcile(audit.to_str().unwrap().to_string()).await;
    assert_eq!(code, 2, "{out}{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    // The governed cap is explained by the signers' records; the rotation is not.
    let admin = report["vaults"][0]["admin_alarms"].as_array().unwrap();
    assert_eq!(admin.len(), 1, "{report}");
    assert!(
        admin[0]["event"]
            .as_str()
            .unwrap()
            .contains("RotationScheduled"),
        "{report}"
    );
    let alarms = report["vaults"][0]["alarms"].as_array().unwrap();
    assert_eq!(alarms.len(), 1, "{report}");
    assert_eq!(alarms[0]["amount"], ETH.to_string());
    assert_eq!(alarms[0]["to"], hex0x(&[0x66; 20]));
    assert_eq!(report["vaults"][0]["matched"], 2, "{report}");
}
