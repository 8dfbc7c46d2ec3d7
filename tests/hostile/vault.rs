//! A hostile coordinator against a chain paid out through a vault: only the vault messages the
//! signer's own policy gives get a share.

use super::*;

/// On a chain the policy pays out through a vault, a hostile coordinator cannot get a share of
/// anything but the vault digest the signer computes from its own policy: not the bare intent
/// digest, not a digest for another vault, chain or token, and no vault administration message
/// but the one listed at that nonce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signers_sign_only_the_vault_messages_their_policy_gives() {
    use quorate_core::chains::evm::{address_bytes, VaultDomain, VaultWithdrawal, NATIVE};
    use quorate_core::message::{chain_format, signing_message, vault_admin};
    const VAULT: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let dev = include_str!("../../cli/src/dev_policy.toml");
    // ETH pays through a vault on chain id 31337; a 1 ETH cap is listed at admin nonce 0.
    let policy = dev.replacen(
        "approvals_required = 2\n",
        "approvals_required = 2\ntoken = \"native\"\n",
        1,
    ) + &format!(
        "\n[[chains]]\nchain = \"ethereum\"\nchain_id = 31337\nvault = \"{VAULT}\"\n\n[[chains.vault_actions]]\nnonce = 0\n\n[chains.vault_actions.set_cap]\ntoken = \"native\"\ncapacity = \"1000000000000000000\"\nrefill_per_second = \"0\"\n"
    );
    let mut c = Cluster::start_with_policy(3, 2, Some(&policy)).await;
    // The policy as installed (admins and backend keys filled in by the cluster's setup).
    let doc = quorate_core::policy::PolicyForm::parse(&c.policy_toml().await)
        .unwrap()
        .to_doc(1, &"0".repeat(64))
        .unwrap();
    let (mut signers, _links) = take_over(&mut c, 3).await;
    let mut book = Book::attacks("redteam-vault-messages");
    let backend_key = c.backend_key();
    let now = now_ms();
    let intent = WithdrawalIntent::from_parts(
        "wd-v1",
        "ethereum",
        "ETH",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "1000",
        now,
        now + 600_000,
        None,
    )
    .unwrap();
    let bsig = quorate_core::backend::sign(&backend_key, &intent.digest());
    let right = signing_message(&intent, chain_format(&doc, &intent).unwrap()).unwrap();
    let vault = address_bytes(quorate_core::address::Chain::Ethereum, VAULT).unwrap();
    let w = VaultWithdrawal::from_intent(&intent, NATIVE).unwrap();
    let other_vault = VaultDomain {
        chain_id: 31337,
        vault: [0x66; 20],
    }
    .withdraw_digest(&w);
    let other_chain = VaultDomain { chain_id: 1, vault }.withdraw_digest(&w);
    let other_token = VaultDomain {
        chain_id: 31337,
        vault,
    }
    .withdraw_digest(&VaultWithdrawal {
        token: [0x77; 20],
        ..w
    });
    let pkg =
        |c1, c2, msg: &[u8]| SigningPackage::new(BTreeMap::from([(id(1), c1), (id(2), c2)]), msg);
    // Commitments of signers 1 and 2 for a fresh session.
    async fn pair(
        signers: &mut BTreeMap<u32, Driven>,
    ) -> ([u8; 16], SigningCommitments, SigningCommitments) {
        let s = session();
        let c1 = signers.get_mut(&1).unwrap().commit(s).await;
        let c2 = signers.get_mut(&2).unwrap().commit(s).await;
        (s, c1, c2)
    }
    for (attack, message) in [
        (
            "the bare intent digest for a vault chain",
            intent.digest().to_vec(),
        ),
        ("a vault digest for another vault", other_vault.to_vec()),
        ("a vault digest for another chain id", other_chain.to_vec()),
        ("a vault digest for another token", other_token.to_vec()),
    ] {
        let (s, c1, c2) = pair(&mut signers).await;
        let a = signers
            .get_mut(&1)
            .unwrap()
            .sign(s, &intent.encode(), &bsig, &pkg(c1, c2, &message))
            .await;
        book.refused(attack, "signer-1", &a, "message-mismatch", Some("wd-v1"));
    }
    // The vault action listed at nonce 0 is a cap; a rotation to the attacker's key at that
    // nonce, and anything at a nonce the policy does not list, are refused.
    let cap = vault_admin(&doc, quorate_core::address::Chain::Ethereum, 0).unwrap();
    let rotate = cap.domain.rotate_digest(0, &[2; 33]);
    for (attack, nonce, message, rule) in [
        (
            "a key rotation at a nonce that lists a cap",
            0,
            rotate.to_vec(),
            "message-mismatch",
        ),
        (
            "a vault action at an unlisted nonce",
            1,
            cap.message().to_vec(),
            "vault-action-unknown",
        ),
    ] {
        let (s, c1, c2) = pair(&mut signers).await;
        let a = signers
            .get_mut(&1)
            .unwrap()
            .sign_vault(s, "ethereum", nonce, &pkg(c1, c2, &message))
            .await;
        book.refused(attack, "signer-1", &a, rule, None);
    }
    // What the policy gives is signed: the vault digest and the listed cap.
    let (s, c1, c2) = pair(&mut signers).await;
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign(s, &intent.encode(), &bsig, &pkg(c1, c2, &right))
        .await;
    assert!(matches!(a, Ans::Sign(_)), "the right vault digest: {a:?}");
    let (s, c1, c2) = pair(&mut signers).await;
    let a = signers
        .get_mut(&1)
        .unwrap()
        .sign_vault(s, "ethereum", 0, &pkg(c1, c2, &cap.message()))
        .await;
    assert!(matches!(a, Ans::Sign(_)), "the listed cap: {a:?}");
    let manifest = quorate_wire::manifest::Manifest::load(&c.path("manifest.toml")).unwrap();
    let key = manifest.signer(1).unwrap().identity_key;
    let log = signers.get_mut(&1).unwrap().verified_audit(&key).await;
    assert!(
        log.iter()
            .any(|r| r.event.kind == "vault-share-released" && r.event.field("nonce") == Some("0")),
        "the cap's release is in the audit log"
    );
    book.audit("signer-1", &log);
    book.finish();
}
