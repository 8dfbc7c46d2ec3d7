//! Chain settings and vault administration in the governed policy: what the group signs on a
//! chain with a vault comes from the policy alone, and a vault action is signable only when
//! the policy lists exactly it.

use quorate_core::{
    address::Chain,
    chains::evm::{address_bytes, VaultWithdrawal, NATIVE},
    intent::WithdrawalIntent,
    message::{chain_format, signing_message, vault_admin, ChainFormat, VaultAdminKind},
    policy::{diff, Effect, PolicyDoc, PolicyForm},
};

const ADMIN: &str = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5";
const BACKEND: &str = "02f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9";
const VAULT: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const TOKEN: &str = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512";

fn form(extra: &str) -> String {
    format!(
        r#"admin_quorum = 1
admins = ["{ADMIN}"]
backend_keys = ["{BACKEND}"]
timelock = "1h"

[[assets]]
chain = "ethereum"
asset = "ETH"
decimals = 18
max_per_withdrawal = "100"
approval_threshold = "100"
approvals_required = 0
token = "native"

[[assets]]
chain = "ethereum"
asset = "USDX"
decimals = 6
max_per_withdrawal = "100"
approval_threshold = "100"
approvals_required = 0
token = "{}"

[[assets]]
chain = "bitcoin"
asset = "BTC"
decimals = 8
max_per_withdrawal = "1"
approval_threshold = "1"
approvals_required = 0

[[chains]]
chain = "ethereum"
chain_id = 31337
vault = "{}"
{extra}"#,
        TOKEN.to_lowercase(),
        VAULT.to_lowercase()
    )
}

fn doc(extra: &str) -> Result<PolicyDoc, String> {
    PolicyForm::parse(&form(extra))
        .and_then(|f| f.to_doc(1, &"0".repeat(64)))
        .map_err(|e| e.0)
}

fn intent(chain: &str, asset: &str, to: &str) -> WithdrawalIntent {
    WithdrawalIntent::from_parts("w-1", chain, asset, to, "5", 1_000, 61_000, None).unwrap()
}

#[test]
fn the_format_comes_from_the_policy() {
    let d = doc("").unwrap();
    // Addresses are stored canonical (EIP-55) whatever case the form used.
    assert_eq!(d.chain(Chain::Ethereum).unwrap().vault, VAULT);
    let eth = intent(
        "ethereum",
        "ETH",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    );
    let ChainFormat::EvmVault { domain, token } = chain_format(&d, &eth).unwrap() else {
        panic!("ethereum pays through the vault");
    };
    assert_eq!((domain.chain_id, token), (31337, NATIVE));
    assert_eq!(domain.vault, address_bytes(Chain::Ethereum, VAULT).unwrap());
    let w = VaultWithdrawal::from_intent(&eth, NATIVE).unwrap();
    // Expired from 61,000 ms on: the vault pays until second 60 and not in second 61.
    assert_eq!(w.deadline, 60);
    assert_eq!(
        signing_message(&eth, chain_format(&d, &eth).unwrap()).unwrap(),
        domain.withdraw_digest(&w).to_vec()
    );
    let usdx = intent(
        "ethereum",
        "USDX",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    );
    let ChainFormat::EvmVault { token, .. } = chain_format(&d, &usdx).unwrap() else {
        panic!()
    };
    assert_eq!(token, address_bytes(Chain::Ethereum, TOKEN).unwrap());
    // An asset the registry does not know has no format on a vault chain.
    let other = intent(
        "ethereum",
        "DOGE",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    );
    assert_eq!(
        chain_format(&d, &other).unwrap_err().rule.as_str(),
        "policy-asset-unknown"
    );
    // A chain without a vault keeps the intent digest.
    let btc = intent(
        "bitcoin",
        "BTC",
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    );
    assert_eq!(chain_format(&d, &btc).unwrap(), ChainFormat::IntentDigest);
}

#[test]
fn chain_settings_are_validated() {
    for (extra_asset, why) in [("", ""), ("token = \"native\"\n", "already registered")] {
        // A second symbol for ETH's token splits its limits.
        let text = form("").replace(
            "[[chains]]",
            &format!(
                "[[assets]]\nchain = \"ethereum\"\nasset = \"ETH2\"\ndecimals = 18\nmax_per_withdrawal = \"1\"\napproval_threshold = \"1\"\napprovals_required = 0\n{extra_asset}\n[[chains]]"
            ),
        );
        let err = PolicyForm::parse(&text)
            .and_then(|f| f.to_doc(1, &"0".repeat(64)))
            .unwrap_err()
            .0;
        let want = if why.is_empty() {
            "name its token"
        } else {
            why
        };
        assert!(err.contains(want), "{err}");
    }
    let bad = form("").replace("chain_id = 31337", "chain_id = 0");
    assert!(PolicyForm::parse(&bad)
        .unwrap()
        .to_doc(1, &"0".repeat(64))
        .is_err());
    let solana = form("").replace(
        "[[chains]]\nchain = \"ethereum\"",
        "[[chains]]\nchain = \"solana\"",
    );
    assert!(PolicyForm::parse(&solana)
        .unwrap()
        .to_doc(1, &"0".repeat(64))
        .is_err());
}

const ROTATE: &str = "\n[[chains.vault_actions]]\nnonce = 0\nrotate_key = \"03a0434d9e47f3c86235477c7b1ae6ae5d3442d49b1943c2b752a68e2a47e247c7\"\n";
const CAP: &str = "\n[[chains.vault_actions]]\nnonce = 1\n\n[chains.vault_actions.set_cap]\ntoken = \"native\"\ncapacity = \"5000\"\nrefill_per_second = \"1\"\n";

#[test]
fn the_group_signs_only_the_vault_actions_the_policy_lists() {
    let d = doc(&format!("{ROTATE}{CAP}")).unwrap();
    let rotate = vault_admin(&d, Chain::Ethereum, 0).unwrap();
    let VaultAdminKind::RotateKey(k) = rotate.kind else {
        panic!()
    };
    assert_eq!(rotate.message(), rotate.domain.rotate_digest(0, &k));
    let cap = vault_admin(&d, Chain::Ethereum, 1).unwrap();
    assert_eq!(
        cap.kind,
        VaultAdminKind::SetCap {
            token: NATIVE,
            capacity: 5000,
            rate: 1
        }
    );
    for (chain, nonce) in [(Chain::Ethereum, 2), (Chain::Polygon, 0)] {
        assert_eq!(
            vault_admin(&d, chain, nonce).unwrap_err().rule.as_str(),
            "vault-action-unknown"
        );
    }
    // Malformed actions are refused with the policy.
    for (extra, why) in [
        ("\n[[chains.vault_actions]]\nnonce = 0\n", "exactly one"),
        (&ROTATE.replace("03a0", "05a0") as &str, "rotate_key"),
        (&CAP.replace("\"5000\"", "\"05000\""), "plain decimal"),
        (&format!("{ROTATE}{}", ROTATE), "sorted and unique"),
    ] {
        let err = doc(extra).unwrap_err();
        assert!(err.contains(why), "{extra}: {err}");
    }
}

#[test]
fn a_rotation_waits_out_the_time_lock_and_a_cap_does_not() {
    let base = doc("").unwrap();
    let effects = |extra: &str| {
        let mut next = doc(extra).unwrap();
        next.version = 2;
        next.prev_hash = base.hash_hex();
        diff(&base, &next)
            .into_iter()
            .map(|c| (c.effect, c.what))
            .collect::<Vec<_>>()
    };
    let r = effects(ROTATE);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, Effect::Loosens, "{r:?}");
    assert!(r[0].1.contains("rotate the vault's key"), "{r:?}");
    let c = effects(CAP);
    assert_eq!(c[0].0, Effect::Tightens, "{c:?}");
    // Removing a cap, or a cap above the last one listed for the token, loosens.
    let none = CAP.replace("\"5000\"", "\"none\"");
    assert_eq!(effects(&none)[0].0, Effect::Loosens);
    let with_cap = {
        let mut d = doc(CAP).unwrap();
        d.version = 2;
        d.prev_hash = base.hash_hex();
        d
    };
    let raise = |capacity: &str| {
        let mut d = doc(&format!(
            "{CAP}{}",
            CAP.replace("nonce = 1", "nonce = 2")
                .replace("\"5000\"", &format!("\"{capacity}\""))
        ))
        .unwrap();
        d.version = 3;
        d.prev_hash = with_cap.hash_hex();
        diff(&with_cap, &d)
    };
    assert_eq!(raise("6000")[0].effect, Effect::Loosens);
    assert_eq!(raise("4000")[0].effect, Effect::Tightens);
    // Moving the vault, or another token behind a symbol, loosens; actions listed for the old
    // vault are named as now signable for the new one.
    let listed = doc(ROTATE).unwrap();
    let mut moved = listed.clone();
    moved.chains[0].vault = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into();
    let changes = diff(&listed, &moved);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes.iter().all(|c| c.effect == Effect::Loosens));
    assert!(
        changes[1].what.contains("now for the new vault"),
        "{changes:?}"
    );
    let mut token = listed.clone();
    token.assets[1].token = Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into());
    let changes = diff(&listed, &token);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].effect, Effect::Loosens);
    assert!(changes[0].what.contains("token"), "{changes:?}");
}

#[test]
fn documents_without_chain_settings_keep_their_bytes() {
    // The fields this change added are absent from the canonical form when unused, so every
    // version signed before keeps its hash.
    let text = form("")
        .replace("token = \"native\"\n", "")
        .replace(&format!("token = \"{}\"\n", TOKEN.to_lowercase()), "");
    let text = &text[..text.find("[[chains]]").unwrap()];
    let d = PolicyForm::parse(text)
        .unwrap()
        .to_doc(1, &"0".repeat(64))
        .unwrap();
    let json = String::from_utf8(d.encode()).unwrap();
    assert!(
        !json.contains("\"chains\"") && !json.contains("\"token\""),
        "{json}"
    );
    assert_eq!(PolicyDoc::decode(json.as_bytes()).unwrap(), d);
}

#[test]
fn two_chains_never_share_a_chain_id() {
    let text = form("").replace(
        "[[chains]]",
        "[[assets]]\nchain = \"polygon\"\nasset = \"POL\"\ndecimals = 18\nmax_per_withdrawal = \"1\"\napproval_threshold = \"1\"\napprovals_required = 0\ntoken = \"native\"\n\n[[chains]]\nchain = \"polygon\"\nchain_id = 31337\nvault = \"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\"\n\n[[chains]]",
    );
    let err = PolicyForm::parse(&text)
        .unwrap()
        .to_doc(1, &"0".repeat(64))
        .unwrap_err()
        .0;
    assert!(err.contains("share a chain_id"), "{err}");
}

#[test]
fn tron_pays_through_the_same_vault_with_tron_addresses() {
    use quorate_core::chains::evm::{address_text, withdraw_calldata, TRON_MAINNET_CHAIN_ID};
    use quorate_core::message::payout;
    let vault = address_text(Chain::Tron, &[0x5a; 20]);
    let text = form("")
        .replace(
            "[[chains]]\nchain = \"ethereum\"\nchain_id = 31337",
            &format!(
                "[[assets]]\nchain = \"tron\"\nasset = \"USDT\"\ndecimals = 6\nmax_per_withdrawal = \"100\"\napproval_threshold = \"100\"\napprovals_required = 0\ntoken = \"TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t\"\n\n[[chains]]\nchain = \"tron\"\nchain_id = {TRON_MAINNET_CHAIN_ID}"
            ),
        )
        .replace(&VAULT.to_lowercase(), &vault);
    // Only Tron has a vault now, so the Ethereum assets carry no token.
    let text = text
        .replace("token = \"native\"\n", "")
        .replace(&format!("token = \"{}\"\n", TOKEN.to_lowercase()), "");
    let d = PolicyForm::parse(&text)
        .unwrap()
        .to_doc(1, &"0".repeat(64))
        .unwrap();
    let to = address_text(Chain::Tron, &[0xa5; 20]);
    let i =
        WithdrawalIntent::from_parts("t-1", "tron", "USDT", &to, "5", 1_000, 61_000, None).unwrap();
    let format = chain_format(&d, &i).unwrap();
    let ChainFormat::EvmVault { domain, token } = format else {
        panic!()
    };
    assert_eq!(domain.chain_id, 728_126_428);
    assert_eq!(
        hex::encode(token),
        "a614f803b6fd780986a42c78ec9c7f77e6ded13c"
    );
    let w = VaultWithdrawal::from_intent(&i, token).unwrap();
    assert_eq!(w.to, [0xa5; 20]);
    // The call names the vault in Tron's own form and carries the 20-byte destination.
    let sig = [2u8]
        .into_iter()
        .chain(
            hex::decode("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
                .unwrap(),
        )
        .chain([1u8; 32])
        .collect::<Vec<u8>>();
    let call = payout(&i, format, &sig).unwrap().unwrap();
    assert_eq!(call.to, vault);
    assert!(call.to.starts_with('T'));
    assert_eq!(call.data, withdraw_calldata(&w, &sig).unwrap());
    assert_eq!(&call.data[4 + 64 + 12..4 + 96], &w.to);
}
