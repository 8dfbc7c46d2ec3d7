//! Solana through real processes: the devnet signs a SOL withdrawal whose transaction a
//! standard Solana library (solders, pinned in tests/python) reads as exactly one transfer of
//! the amount from the group's address, signed by it; and every signer refuses a Solana
//! message other than the one it builds itself, whatever a hostile coordinator asks.
//! Execution on the Solana runtime itself is in chains/solana/tests (LiteSVM).

use std::collections::BTreeMap;

use frost_ed25519::{round1::SigningCommitments, Identifier, SigningPackage};
use quorate_core::{
    chains::solana::{self, Asset, ComputeBudget, Instruction, Lifetime, Transfer},
    intent::{SolanaTerms, WithdrawalIntent},
    message::chain_format_for,
};
use quorate_wire::signer::{
    self as pb, coordinator_message::Body as Req, signer_message::Body as Ans,
};
use serde_json::Value;

use crate::{
    harness::{now_ms, quorate, start_devnet, Cluster},
    hostile::{session, take_over, Driven},
    python,
    scoreboard::Book,
};

/// The development policy's whitelisted Solana wallet (cli/src/setup.rs).
const DEST: &str = "GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB";
/// The development policy's USDC mint on Solana.
const USDC_MINT: &str = "J2xccRtuG43drESLYznHhLhQkLTdfepcKYbiQ9BsJVaf";
/// A nonce account the tests' policy pools (the bytes [3; 32]), and one it does not ([4; 32]).
const POOLED: &str = "CktRuQ2mttgRGkXJtyksdKHjUdc2C4TgDzyB98oEzy8";
const UNPOOLED: &str = "GgBaCs3NCBuZN12kCJgAW63ydqohFkHEdfdEXBPzLHq";

/// The development policy with a durable-nonce pool of one account.
fn pooled_policy() -> String {
    include_str!("../cli/src/dev_policy.toml").replace(
        "[solana]\n",
        &format!("[solana]\nnonce_accounts = [\"{POOLED}\"]\n"),
    )
}

/// `quorate submit` of 0.001 SOL to DEST on the pooled nonce account, DEST's bytes standing
/// for its nonce value.
async fn submit_on_pooled_nonce(dir: String, addr: String, id: &str) -> (i32, String, String) {
    quorate(&[
        "submit",
        "--dir",
        &dir,
        "--coordinator",
        &addr,
        "--json",
        "--id",
        id,
        "--chain",
        "solana",
        "--asset",
        "SOL",
        "--to",
        DEST,
        "--amount",
        "1000000",
        "--nonce-account",
        POOLED,
        "--nonce-value",
        DEST,
    ])
    .await
}

/// The cluster's first admin key.
fn admin_key(c: &Cluster) -> quorate_core::identity::IdentitySecret {
    let text = std::fs::read_to_string(c.path("admin/admin-1.key")).unwrap();
    quorate_core::identity::IdentitySecret::from_bytes(&hex::decode(text.trim()).unwrap()).unwrap()
}

fn ed25519_of(status: &Value) -> String {
    status["group_keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["scheme"] == "ed25519"))
        .and_then(|k| k["address"].as_str())
        .expect("an ed25519 group key with its Solana address")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_signs_a_sol_withdrawal_a_standard_library_reads_as_one_transfer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let dir_s = dir.to_str().unwrap();
    let (_devnet, banner) = start_devnet(&["--dir", dir_s], tmp.path()).await;
    let (code, out, err) = quorate(&["status", "--dir", dir_s, "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let wallet = ed25519_of(&serde_json::from_str(out.trim()).unwrap());
    assert!(
        banner.contains(&wallet),
        "the banner shows the Solana wallet:\n{banner}"
    );

    // The command, as a backend engineer types it.
    let (code, out, err) = quorate(&[
        "submit", "--dir", dir_s, "--chain", "solana", "--asset", "SOL", "--to", DEST, "--amount",
        "1000000", "--json",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let w: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(w["status"], "signed", "{w}");
    assert_eq!(
        bs58::encode(hex::decode(w["group_public_key"].as_str().unwrap()).unwrap()).into_string(),
        wallet
    );
    let tx = w["solana_transaction"]
        .as_str()
        .expect("solana_transaction");
    let read = python::run_script("solana_check.py", &[tx]);
    assert_eq!(read["fee_payer"], wallet.as_str(), "{read}");
    assert_eq!(read["signers"], 1, "{read}");
    assert_eq!(read["signatures"], 1, "{read}");
    assert_eq!(
        read["verified"], true,
        "the group's Ed25519 signature verifies: {read}"
    );
    let ixs = read["instructions"].as_array().unwrap();
    assert_eq!(ixs.len(), 1, "one instruction, the transfer: {read}");
    assert_eq!(
        ixs[0]["transfer"],
        serde_json::json!({"from": wallet, "to": DEST, "lamports": 1_000_000}),
        "{read}"
    );
    // `quorate verify` checks the Ed25519 signature offline too.
    let verify = |message: &str| {
        let (gk, sig) = (
            w["group_public_key"].as_str().unwrap().to_string(),
            w["signature"].as_str().unwrap().to_string(),
        );
        let message = message.to_string();
        async move {
            quorate(&[
                "verify",
                "--group-key",
                &gk,
                "--message",
                &message,
                "--signature",
                &sig,
            ])
            .await
        }
    };
    let (code, out, _) = verify(w["message"].as_str().unwrap()).await;
    assert_eq!((code, out.trim()), (0, "valid"));
    let (code, out, _) = verify("00").await;
    assert_eq!((code, out.trim()), (1, "INVALID"));
    // The policy holds on Solana as everywhere: a destination not whitelisted is refused.
    let (code, out, _) = quorate(&[
        "submit",
        "--dir",
        dir_s,
        "--chain",
        "solana",
        "--asset",
        "SOL",
        "--to",
        "J2xccRtuG43drESLYznHhLhQkLTdfepcKYbiQ9BsJVaf",
        "--amount",
        "1",
        "--json",
    ])
    .await;
    assert_ne!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["rule"], "policy-whitelist-destination", "{v}");
    // The control: one altered byte of the message and the library's check fails.
    let mut bytes = base64_decode(tx);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let altered = python::run_script("solana_check.py", &[&base64_encode(&bytes)]);
    assert_eq!(altered["verified"], false, "{altered}");

    // A token withdrawal: create the owner's associated account, then TransferChecked.
    let (code, out, err) = quorate(&[
        "submit",
        "--dir",
        dir_s,
        "--chain",
        "solana",
        "--asset",
        "USDC",
        "--to",
        DEST,
        "--amount",
        "2500000",
        "--create-token-account",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let w: Value = serde_json::from_str(out.trim()).unwrap();
    let read = python::run_script(
        "solana_check.py",
        &[w["solana_transaction"].as_str().unwrap()],
    );
    assert_eq!(read["verified"], true, "{read}");
    let programs: Vec<&str> = read["instructions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["program"].as_str().unwrap())
        .collect();
    assert_eq!(
        programs,
        [
            "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL",
            "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
        ]
    );
    // TransferChecked (12) of 2.5 USDC at 6 decimals.
    let mut data = vec![12u8];
    data.extend_from_slice(&2_500_000u64.to_le_bytes());
    data.push(6);
    assert_eq!(read["instructions"][1]["data"], hex::encode(data));

    // Terms outside the policy are refused, with the rule that refused them.
    let (code, out, _) = quorate(&[
        "submit",
        "--dir",
        dir_s,
        "--chain",
        "solana",
        "--asset",
        "SOL",
        "--to",
        DEST,
        "--amount",
        "1",
        "--compute-unit-price",
        "999999999",
        "--json",
    ])
    .await;
    assert_ne!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["rule"], "solana-terms", "{v}");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn id(n: u16) -> Identifier {
    Identifier::try_from(n).unwrap()
}

/// A fresh session, and Ed25519 commitments of signers `a` and `b` for it.
async fn pair(
    signers: &mut BTreeMap<u32, Driven>,
    a: u32,
    b: u32,
) -> ([u8; 16], BTreeMap<Identifier, SigningCommitments>) {
    let s = session();
    let mut both = BTreeMap::new();
    for who in [a, b] {
        let c = commit(signers.get_mut(&who).unwrap(), s).await;
        both.insert(id(who as u16), c);
    }
    (s, both)
}

/// A fresh Ed25519 commitment from a signer.
async fn commit(d: &mut Driven, s: [u8; 16]) -> SigningCommitments {
    match d
        .call(Req::Commit(pb::CommitRequest {
            session_id: s.to_vec(),
            scheme: pb::KeyScheme::Ed25519 as i32,
        }))
        .await
    {
        Ans::Commit(c) => SigningCommitments::deserialize(&c.commitments).unwrap(),
        other => panic!("ed25519 commit refused: {other:?}"),
    }
}

/// A fresh secp256k1 commitment from a signer.
async fn commit_secp(d: &mut Driven, s: [u8; 16]) -> frost_secp256k1::round1::SigningCommitments {
    match d
        .call(Req::Commit(pb::CommitRequest {
            session_id: s.to_vec(),
            scheme: pb::KeyScheme::Secp256k1 as i32,
        }))
        .await
    {
        Ans::Commit(c) => {
            frost_secp256k1::round1::SigningCommitments::deserialize(&c.commitments).unwrap()
        }
        other => panic!("secp256k1 commit refused: {other:?}"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn void_request(
    d: &mut Driven,
    s: [u8; 16],
    account: &[u8; 32],
    nonce: &[u8; 32],
    approval: &quorate_core::policy::AdminSignature,
    message: &[u8],
    commitments: BTreeMap<Identifier, SigningCommitments>,
) -> Ans {
    let package = SigningPackage::new(commitments, message);
    d.call(Req::Sign(pb::SignRequest {
        session_id: s.to_vec(),
        signing_package: package.serialize().unwrap(),
        scheme: pb::KeyScheme::Ed25519 as i32,
        solana_void: Some(pb::SolanaVoid {
            nonce_account: account.to_vec(),
            nonce_value: nonce.to_vec(),
            approval: Some(quorate_wire::convert::policy::sig_to_proto(approval)),
        }),
        ..Default::default()
    }))
    .await
}

async fn sign(
    d: &mut Driven,
    s: [u8; 16],
    intent: &WithdrawalIntent,
    bsig: &[u8],
    message: &[u8],
    commitments: BTreeMap<Identifier, SigningCommitments>,
    scheme: pb::KeyScheme,
) -> Ans {
    let package = SigningPackage::new(commitments, message);
    d.call(Req::Sign(pb::SignRequest {
        session_id: s.to_vec(),
        intent: intent.encode(),
        backend_signature: bsig.to_vec(),
        signing_package: package.serialize().unwrap(),
        scheme: scheme as i32,
        ..Default::default()
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_voids_a_durable_nonce_and_a_standard_library_reads_the_advance() {
    let c = Cluster::start_with_policy(3, 2, Some(&pooled_policy())).await;
    // Before the Ed25519 group exists there is no wallet to sign with: refused, as any
    // withdrawal before its group's DKG is.
    let (code, out, _) =
        submit_on_pooled_nonce(c.dir_str().to_string(), c.addr.clone(), "wd-too-early").await;
    assert_ne!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["rule"].as_str(), v["code"].as_str()),
        (Some("no-group-key"), Some("FailedPrecondition")),
        "{v}"
    );
    let wallet = bs58::encode(c.dkg_ed25519().await).into_string();
    // A withdrawal signed with the pooled account's nonce (DEST's bytes stand for its value).
    let submit =
        |id: &'static str| submit_on_pooled_nonce(c.dir_str().to_string(), c.addr.clone(), id);
    let (code, out, err) = submit("wd-nonce-1").await;
    assert_eq!(code, 0, "{out}{err}");
    // The same nonce value for another withdrawal: it could never land, and is refused.
    let (code, out, _) = submit("wd-nonce-2").await;
    assert_ne!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["rule"], "solana-terms", "{v}");
    let void = |account: &'static str, nonce: &'static str| {
        let dir = c.dir_str().to_string();
        let addr = c.addr.clone();
        async move {
            quorate(&[
                "admin",
                "--dir",
                &dir,
                "--coordinator",
                &addr,
                "--yes",
                "--json",
                "solana-void",
                "--nonce-account",
                account,
                "--nonce-value",
                nonce,
            ])
            .await
        }
    };
    // A nonce no withdrawal was signed with: the signers have nothing to void.
    let (code, out, err) = void(POOLED, USDC_MINT).await;
    assert_ne!(code, 0);
    assert!(format!("{out}{err}").contains("solana-terms"), "{out}{err}");
    let (code, out, err) = void(POOLED, DEST).await;
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let read = python::run_script(
        "solana_check.py",
        &[v["solana_transaction"].as_str().unwrap()],
    );
    assert_eq!(read["fee_payer"], wallet.as_str(), "{read}");
    assert_eq!(read["verified"], true, "{read}");
    assert_eq!(
        read["blockhash"], DEST,
        "the voided nonce is the message's blockhash"
    );
    let ixs = read["instructions"].as_array().unwrap();
    assert_eq!(ixs.len(), 1, "only the nonce advance: {read}");
    assert_eq!(ixs[0]["program"], "11111111111111111111111111111111");
    assert_eq!(ixs[0]["data"], "04000000", "AdvanceNonceAccount");
    // An account outside the pool: nothing to void, and nothing signed.
    let (code, out, err) = void(UNPOOLED, DEST).await;
    assert_ne!(code, 0);
    assert!(format!("{out}{err}").contains("solana-terms"), "{out}{err}");
    let log = c.coordinator_audit().await;
    assert_eq!(
        log.iter()
            .filter(|r| r.event.kind == "solana-nonce-voided")
            .count(),
        1,
        "one void signed, recorded by the coordinator"
    );

    // A signer killed and started again opens its sealed Ed25519 share from disk: it reports
    // the same key, and it still knows the nonce it signed with.
    let wallet_key = bs58::decode(&wallet).into_vec().unwrap();
    let mut c = c;
    c.kill_signer("signer-1").await;
    c.wait_connected(2).await;
    c.start_signer("signer-1");
    c.wait_connected(3).await;
    let s = c.status().await;
    let one = s.signers.iter().find(|x| x.name == "signer-1").unwrap();
    assert_eq!(one.ed25519_group_public_key, wallet_key);
    // With signer-2 stopped, signer-1 is in every quorum: it refuses the spent nonce itself.
    c.kill_signer("signer-2").await;
    c.wait_connected(2).await;
    let (code, out, _) =
        submit_on_pooled_nonce(c.dir_str().to_string(), c.addr.clone(), "wd-nonce-3").await;
    assert_ne!(code, 0, "a third withdrawal on the spent nonce: {out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["rule"], "solana-terms", "{v}");
    let log = c.audit_of("signer-1", None).await;
    assert!(
        crate::hostile::audited_refusal(&log, "wd-nonce-3", "solana-terms"),
        "the restarted signer-1 refused it from its own record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signers_sign_only_the_solana_transaction_they_build_themselves() {
    let mut c = Cluster::start_with_policy(3, 2, Some(&pooled_policy())).await;
    let wallet: [u8; 32] = c.dkg_ed25519().await.try_into().unwrap();
    let doc = quorate_core::policy::PolicyForm::parse(&c.policy_toml().await)
        .unwrap()
        .to_doc(1, &"0".repeat(64))
        .unwrap();
    let (mut signers, _links) = take_over(&mut c, 3).await;
    let mut book = Book::attacks("redteam-solana-messages");
    let backend_key = c.backend_key();
    let now = now_ms();
    let terms = SolanaTerms {
        lifetime: Lifetime::Blockhash([5; 32]),
        create_destination_account: false,
        compute: ComputeBudget::default(),
    };
    let intent_for = |wid: &str, asset: &str, terms: SolanaTerms| {
        let i = WithdrawalIntent::from_parts(
            wid,
            "solana",
            asset,
            DEST,
            "1000",
            now,
            now + 600_000,
            None,
        )
        .unwrap()
        .with_solana(terms)
        .unwrap();
        let bsig = quorate_core::backend::sign(&backend_key, &i.digest());
        (i, bsig)
    };
    let (sol, sol_sig) = intent_for("wd-sol", "SOL", terms);
    let (usdc, usdc_sig) = intent_for("wd-usdc", "USDC", terms);
    let message_of = |i: &WithdrawalIntent| {
        let quorate_core::message::ChainFormat::Solana(t) =
            chain_format_for(&doc, i, Some(&wallet)).unwrap()
        else {
            panic!("a Solana format")
        };
        t
    };
    let right_sol = message_of(&sol);
    let right_usdc = message_of(&usdc);
    let attacker = [0x66; 32];
    // Messages a hostile coordinator could ask for instead.
    let with_extra = {
        let mut ixs = right_sol.instructions();
        let mut drain = 2u32.to_le_bytes().to_vec();
        drain.extend_from_slice(&5_000_000_000u64.to_le_bytes());
        ixs.push(Instruction {
            program: solana::SYSTEM_PROGRAM,
            accounts: vec![(wallet, true, true), (attacker, false, true)],
            data: drain,
        });
        solana::compile(&wallet, &ixs, &[5; 32])
    };
    let other_payer = solana::compile(&attacker, &right_sol.instructions(), &[5; 32]);
    let other_token_account = {
        // TransferChecked into an account of the attacker's choosing, not the owner's ATA.
        let mut ixs = right_usdc.instructions();
        let last = ixs.last_mut().unwrap();
        last.accounts[2].0 = solana::address_bytes(DEST).unwrap();
        solana::compile(&wallet, &ixs, &[5; 32])
    };
    let other_mint = Transfer {
        asset: Asset::Spl {
            mint: attacker,
            decimals: 6,
        },
        ..right_usdc
    }
    .message();
    let nonce_authority_change = {
        // AuthorizeNonceAccount (7) of an account to the attacker, riding along.
        let mut data = 7u32.to_le_bytes().to_vec();
        data.extend_from_slice(&attacker);
        let mut ixs = right_sol.instructions();
        ixs.insert(
            0,
            Instruction {
                program: solana::SYSTEM_PROGRAM,
                accounts: vec![([0x55; 32], false, true), (wallet, true, false)],
                data,
            },
        );
        solana::compile(&wallet, &ixs, &[5; 32])
    };
    assert_eq!(
        solana::address_text(&solana::address_bytes(USDC_MINT).unwrap()),
        USDC_MINT
    );
    for (attack, intent, bsig, message) in [
        (
            "an extra instruction draining the wallet",
            &sol,
            &sol_sig,
            with_extra,
        ),
        ("another fee payer", &sol, &sol_sig, other_payer),
        (
            "a token account other than the owner's associated one",
            &usdc,
            &usdc_sig,
            other_token_account,
        ),
        ("a different mint", &usdc, &usdc_sig, other_mint),
        (
            "a nonce authority change riding along",
            &sol,
            &sol_sig,
            nonce_authority_change,
        ),
        (
            "the bare intent digest for a Solana withdrawal",
            &sol,
            &sol_sig,
            sol.digest().to_vec(),
        ),
    ] {
        // Every signer, each in a quorum with another.
        for who in [1u32, 2, 3] {
            let other = if who == 1 { 2 } else { 1 };
            let s = session();
            let mine = commit(signers.get_mut(&who).unwrap(), s).await;
            let theirs = commit(signers.get_mut(&other).unwrap(), s).await;
            let commitments = BTreeMap::from([(id(who as u16), mine), (id(other as u16), theirs)]);
            let a = sign(
                signers.get_mut(&who).unwrap(),
                s,
                intent,
                bsig,
                &message,
                commitments,
                pb::KeyScheme::Ed25519,
            )
            .await;
            book.refused(
                attack,
                &format!("signer-{who}"),
                &a,
                "message-mismatch",
                Some(&intent.id),
            );
        }
    }
    // A Solana withdrawal asked of the secp256k1 group: refused for the scheme.
    {
        use frost_secp256k1 as secp;
        let s = session();
        let c1 = commit_secp(signers.get_mut(&1).unwrap(), s).await;
        let c2 = commit_secp(signers.get_mut(&2).unwrap(), s).await;
        let pkg = secp::SigningPackage::new(
            BTreeMap::from([
                (secp::Identifier::try_from(1).unwrap(), c1),
                (secp::Identifier::try_from(2).unwrap(), c2),
            ]),
            &right_sol.message(),
        );
        let a = signers
            .get_mut(&1)
            .unwrap()
            .call(Req::Sign(pb::SignRequest {
                session_id: s.to_vec(),
                intent: sol.encode(),
                backend_signature: sol_sig.clone(),
                signing_package: pkg.serialize().unwrap(),
                scheme: pb::KeyScheme::Secp256k1 as i32,
                ..Default::default()
            }))
            .await;
        book.refused(
            "a Solana transaction asked of the secp256k1 group",
            "signer-1",
            &a,
            "scheme-mismatch",
            Some("wd-sol"),
        );
    }
    // Terms the backend signed but the policy does not allow: a priority fee over the cap.
    let (greedy, greedy_sig) = intent_for(
        "wd-greedy",
        "SOL",
        SolanaTerms {
            compute: ComputeBudget {
                unit_limit: None,
                unit_price: Some(doc.solana.as_ref().unwrap().max_compute_unit_price + 1),
            },
            ..terms
        },
    );
    let (s, both) = pair(&mut signers, 1, 2).await;
    let greedy_message = Transfer {
        compute: ComputeBudget {
            unit_limit: None,
            unit_price: Some(doc.solana.as_ref().unwrap().max_compute_unit_price + 1),
        },
        ..right_sol
    }
    .message();
    let a = sign(
        signers.get_mut(&1).unwrap(),
        s,
        &greedy,
        &greedy_sig,
        &greedy_message,
        both.clone(),
        pb::KeyScheme::Ed25519,
    )
    .await;
    book.refused(
        "a priority fee over the policy's cap",
        "signer-1",
        &a,
        "solana-terms",
        Some("wd-greedy"),
    );

    // A durable-nonce withdrawal, signed by signer 1; then another on the same nonce value.
    let pooled = solana::address_bytes(POOLED).unwrap();
    let nonce = [0x21; 32];
    let on_nonce = SolanaTerms {
        lifetime: Lifetime::DurableNonce {
            account: pooled,
            nonce,
        },
        ..terms
    };
    for (wid, expect) in [("wd-nonce-a", None), ("wd-nonce-b", Some("solana-terms"))] {
        let (i, bsig) = intent_for(wid, "SOL", on_nonce);
        let (s, both) = pair(&mut signers, 1, 2).await;
        let a = sign(
            signers.get_mut(&1).unwrap(),
            s,
            &i,
            &bsig,
            &message_of(&i).message(),
            both.clone(),
            pb::KeyScheme::Ed25519,
        )
        .await;
        match expect {
            None => assert!(matches!(a, Ans::Sign(_)), "{wid}: {a:?}"),
            Some(rule) => book.refused(
                "a second withdrawal on a spent durable nonce",
                "signer-1",
                &a,
                rule,
                Some(wid),
            ),
        }
    }
    // Voids: only for a pooled account, only with an admin's signature, only the advance, only
    // a nonce a withdrawal was signed with.
    let admin = admin_key(&c);
    let unpooled = solana::address_bytes(UNPOOLED).unwrap();
    let approve = |k: &quorate_core::identity::IdentitySecret, account: &[u8; 32]| {
        quorate_core::policy::AdminSignature::sign(
            k,
            quorate_core::message::SOLANA_VOID_DOMAIN,
            &[account, &nonce],
        )
    };
    let stranger = quorate_core::identity::IdentitySecret::generate(&mut rand::rngs::OsRng);
    let right_void = solana::void_message(&wallet, &pooled, &nonce);
    let drain_in_void = {
        let mut data = 2u32.to_le_bytes().to_vec();
        data.extend_from_slice(&1_000_000u64.to_le_bytes());
        solana::compile(
            &wallet,
            &[
                Instruction {
                    program: solana::SYSTEM_PROGRAM,
                    accounts: vec![
                        (pooled, false, true),
                        (solana::RECENT_BLOCKHASHES_SYSVAR, false, false),
                        (wallet, true, false),
                    ],
                    data: 4u32.to_le_bytes().to_vec(),
                },
                Instruction {
                    program: solana::SYSTEM_PROGRAM,
                    accounts: vec![(wallet, true, true), (attacker, false, true)],
                    data,
                },
            ],
            &nonce,
        )
    };
    for (attack, account, approval, message, rule) in [
        (
            "a void of an account outside the pool",
            unpooled,
            approve(&admin, &unpooled),
            solana::void_message(&wallet, &unpooled, &nonce),
            "solana-terms",
        ),
        (
            "a void no admin signed",
            pooled,
            approve(&stranger, &pooled),
            right_void.clone(),
            "solana-void-unapproved",
        ),
        (
            "a void carrying a transfer",
            pooled,
            approve(&admin, &pooled),
            drain_in_void,
            "message-mismatch",
        ),
    ] {
        let (s, both) = pair(&mut signers, 1, 2).await;
        let a = void_request(
            signers.get_mut(&1).unwrap(),
            s,
            &account,
            &nonce,
            &approval,
            &message,
            both.clone(),
        )
        .await;
        book.refused(attack, "signer-1", &a, rule, None);
    }
    // A nonce no withdrawal was signed with: an admin could only spend the wallet's SOL.
    let unused = [0x22; 32];
    let (s, both) = pair(&mut signers, 1, 2).await;
    let a = void_request(
        signers.get_mut(&1).unwrap(),
        s,
        &pooled,
        &unused,
        &quorate_core::policy::AdminSignature::sign(
            &admin,
            quorate_core::message::SOLANA_VOID_DOMAIN,
            &[&pooled, &unused],
        ),
        &solana::void_message(&wallet, &pooled, &unused),
        both.clone(),
    )
    .await;
    book.refused(
        "a void of a nonce no withdrawal was signed with",
        "signer-1",
        &a,
        "solana-terms",
        None,
    );
    let (s, both) = pair(&mut signers, 1, 2).await;
    let a = void_request(
        signers.get_mut(&1).unwrap(),
        s,
        &pooled,
        &nonce,
        &approve(&admin, &pooled),
        &right_void,
        both.clone(),
    )
    .await;
    assert!(matches!(a, Ans::Sign(_)), "the admin's void: {a:?}");

    // The message each signer builds itself is signed, by both.
    let (s, both) = pair(&mut signers, 1, 2).await;
    for who in [1u32, 2] {
        let a = sign(
            signers.get_mut(&who).unwrap(),
            s,
            &sol,
            &sol_sig,
            &right_sol.message(),
            both.clone(),
            pb::KeyScheme::Ed25519,
        )
        .await;
        assert!(
            matches!(a, Ans::Sign(_)),
            "signer {who}, the right message: {a:?}"
        );
    }
    // A session's nonce signs once: the same session again finds nothing (S4).
    let a = sign(
        signers.get_mut(&1).unwrap(),
        s,
        &sol,
        &sol_sig,
        &right_sol.message(),
        both.clone(),
        pb::KeyScheme::Ed25519,
    )
    .await;
    book.refused(
        "the same Ed25519 session signed twice",
        "signer-1",
        &a,
        "nonce-unknown",
        Some("wd-sol"),
    );
    let manifest = quorate_wire::manifest::Manifest::load(&c.path("manifest.toml")).unwrap();
    let key = manifest.signer(1).unwrap().identity_key;
    let log = signers.get_mut(&1).unwrap().verified_audit(&key).await;
    assert!(
        log.iter().any(|r| r.event.kind == "share-released"
            && r.event.field("withdrawal") == Some("wd-sol")
            && r.event.field("scheme") == Some("ed25519")),
        "the release is in the audit log, with its scheme"
    );
    book.audit("signer-1", &log);
    for who in [2u16, 3] {
        let key = manifest.signer(who).unwrap().identity_key;
        let log = signers
            .get_mut(&u32::from(who))
            .unwrap()
            .verified_audit(&key)
            .await;
        book.audit(&format!("signer-{who}"), &log);
    }
    book.finish();
}
