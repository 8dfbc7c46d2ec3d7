//! Solana withdrawals on the Solana runtime (LiteSVM, signature verification on) with the
//! real System, SPL Token and Associated Token Account programs: the messages every signer
//! builds (`quorate_core::chains::solana`), signed by a FROST(Ed25519) group made by Quorate's
//! own DKG, move exactly the amount, only once, and nothing altered passes.

use std::collections::BTreeMap;

use base64::Engine;
use frost_ed25519::{keys::KeyPackage, round1, round2, Ed25519Sha512, SigningPackage};
use litesvm::LiteSVM;
use quorate_core::{
    chains::solana::{
        self, associated_token_address, void_message, Asset, ComputeBudget, Lifetime, Pubkey,
        Transfer,
    },
    dkg,
};
use rand::rngs::OsRng;
use solana_address::Address;
use solana_instruction::{AccountMeta, Instruction};
use solana_keypair::Keypair;
use solana_message::Message;
use solana_signer::Signer;
use solana_transaction::{versioned::VersionedTransaction, Transaction};

const LAMPORTS_PER_SIGNATURE: u64 = 5_000;

/// A 2-of-3 FROST(Ed25519) group from Quorate's DKG: its key is the wallet.
struct Group {
    shares: Vec<KeyPackage>,
    public: frost_ed25519::keys::PublicKeyPackage,
    wallet: Pubkey,
}

impl Group {
    fn new() -> Self {
        let outs = dkg::run_in_process::<Ed25519Sha512, _>(3, 2, &mut OsRng).expect("DKG");
        let wallet: Pubkey = outs[0].group_key.as_slice().try_into().expect("32 bytes");
        Self {
            public: outs[0].public_key_package.clone(),
            shares: outs.into_iter().map(|o| o.key_package).collect(),
            wallet,
        }
    }

    /// A threshold signature by signers 1 and 3 (RFC 9591 rounds 1 and 2, then aggregation).
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        let quorum = [&self.shares[0], &self.shares[2]];
        let mut nonces = BTreeMap::new();
        let mut commitments = BTreeMap::new();
        for k in quorum {
            let (n, c) = round1::commit(k.signing_share(), &mut OsRng);
            nonces.insert(*k.identifier(), n);
            commitments.insert(*k.identifier(), c);
        }
        let package = SigningPackage::new(commitments, message);
        let shares: BTreeMap<_, _> = quorum
            .iter()
            .map(|k| {
                let share = round2::sign(&package, &nonces[k.identifier()], k).expect("share");
                (*k.identifier(), share)
            })
            .collect();
        let sig = frost_ed25519::aggregate(&package, &shares, &self.public).expect("aggregate");
        sig.serialize()
            .expect("signature")
            .try_into()
            .expect("64 bytes")
    }

    /// The wire transaction of `message` signed by the group, as the coordinator returns it.
    fn transaction(&self, message: &[u8]) -> Vec<u8> {
        solana::transaction(message, &self.sign(message))
    }

    fn address(&self) -> Address {
        Address::from(self.wallet)
    }
}

fn decode(tx: &[u8]) -> VersionedTransaction {
    bincode::deserialize(tx).expect("a Solana transaction")
}

fn send(svm: &mut LiteSVM, tx: &[u8]) -> Result<(), String> {
    svm.send_transaction(decode(tx))
        .map(|_| ())
        .map_err(|e| format!("{:?}", e.err))
}

/// A funded account that pays for test fixtures (mints, nonce accounts), never for payouts.
fn funder(svm: &mut LiteSVM) -> Keypair {
    let k = Keypair::new();
    svm.airdrop(&k.pubkey(), 100_000_000_000).expect("airdrop");
    k
}

fn run_as(svm: &mut LiteSVM, payer: &Keypair, extra: &[&Keypair], ixs: &[Instruction]) {
    let mut signers = vec![payer];
    signers.extend_from_slice(extra);
    let tx = Transaction::new(
        &signers,
        Message::new(ixs, Some(&payer.pubkey())),
        svm.latest_blockhash(),
    );
    svm.send_transaction(tx).expect("fixture transaction");
}

fn token_program() -> Address {
    Address::from(solana::TOKEN_PROGRAM)
}

/// A new SPL mint with `decimals`, its authority `payer`.
fn make_mint(svm: &mut LiteSVM, payer: &Keypair, decimals: u8) -> Pubkey {
    let mint = Keypair::new();
    let rent = svm.minimum_balance_for_rent_exemption(82);
    let mut init = vec![20, decimals];
    init.extend_from_slice(payer.pubkey().as_ref());
    init.push(0); // no freeze authority
    run_as(
        svm,
        payer,
        &[&mint],
        &[
            solana_system_interface::instruction::create_account(
                &payer.pubkey(),
                &mint.pubkey(),
                rent,
                82,
                &token_program(),
            ),
            Instruction::new_with_bytes(
                token_program(),
                &init,
                vec![AccountMeta::new(mint.pubkey(), false)],
            ),
        ],
    );
    mint.pubkey().to_bytes()
}

/// The Associated Token Account program's `CreateIdempotent` of `owner`'s account for `mint`,
/// as the SDK's instruction type (paid by `payer`).
fn create_ata_ix(payer: &Pubkey, owner: &Pubkey, mint: &Pubkey) -> Instruction {
    Instruction::new_with_bytes(
        Address::from(solana::ASSOCIATED_TOKEN_PROGRAM),
        &[1],
        vec![
            AccountMeta::new(Address::from(*payer), true),
            AccountMeta::new(Address::from(associated_token_address(owner, mint)), false),
            AccountMeta::new_readonly(Address::from(*owner), false),
            AccountMeta::new_readonly(Address::from(*mint), false),
            AccountMeta::new_readonly(Address::from(solana::SYSTEM_PROGRAM), false),
            AccountMeta::new_readonly(token_program(), false),
        ],
    )
}

/// SPL Token `TransferChecked` from `owner`'s associated account to `to`'s, as the SDK's
/// instruction type.
fn transfer_checked_ix(owner: &Pubkey, to: &Pubkey, mint: &Pubkey, amount: u64) -> Instruction {
    let mut data = vec![12];
    data.extend_from_slice(&amount.to_le_bytes());
    data.push(6);
    Instruction::new_with_bytes(
        token_program(),
        &data,
        vec![
            AccountMeta::new(Address::from(associated_token_address(owner, mint)), false),
            AccountMeta::new_readonly(Address::from(*mint), false),
            AccountMeta::new(Address::from(associated_token_address(to, mint)), false),
            AccountMeta::new_readonly(Address::from(*owner), true),
        ],
    )
}

/// Creates `owner`'s associated token account for `mint` (paid by `payer`).
fn create_ata(svm: &mut LiteSVM, payer: &Keypair, owner: &Pubkey, mint: &Pubkey) -> Pubkey {
    run_as(
        svm,
        payer,
        &[],
        &[create_ata_ix(&payer.pubkey().to_bytes(), owner, mint)],
    );
    associated_token_address(owner, mint)
}

fn mint_to(svm: &mut LiteSVM, authority: &Keypair, mint: &Pubkey, to: &Pubkey, amount: u64) {
    let mut data = vec![7];
    data.extend_from_slice(&amount.to_le_bytes());
    run_as(
        svm,
        authority,
        &[],
        &[Instruction::new_with_bytes(
            token_program(),
            &data,
            vec![
                AccountMeta::new(Address::from(*mint), false),
                AccountMeta::new(Address::from(*to), false),
                AccountMeta::new_readonly(authority.pubkey(), true),
            ],
        )],
    );
}

/// The amount held by a token account (SPL layout: mint, owner, then the u64 amount).
fn token_balance(svm: &LiteSVM, account: &Pubkey) -> Option<u64> {
    let data = svm.get_account(&Address::from(*account))?.data;
    Some(u64::from_le_bytes(data.get(64..72)?.try_into().ok()?))
}

fn balance(svm: &LiteSVM, key: &Pubkey) -> u64 {
    svm.get_balance(&Address::from(*key)).unwrap_or(0)
}

/// A durable-nonce account whose authority is the group's wallet, and its stored nonce.
fn make_nonce_account(svm: &mut LiteSVM, payer: &Keypair, wallet: &Address) -> (Pubkey, [u8; 32]) {
    let nonce = Keypair::new();
    let rent = svm.minimum_balance_for_rent_exemption(80);
    run_as(
        svm,
        payer,
        &[&nonce],
        &solana_system_interface::instruction::create_nonce_account(
            &payer.pubkey(),
            &nonce.pubkey(),
            wallet,
            rent,
        ),
    );
    let account = nonce.pubkey().to_bytes();
    (account, stored_nonce(svm, &account))
}

/// The durable nonce a nonce account holds (versioned state: u32 version, u32 state, the
/// 32-byte authority, then the nonce).
fn stored_nonce(svm: &LiteSVM, account: &Pubkey) -> [u8; 32] {
    let data = svm
        .get_account(&Address::from(*account))
        .expect("nonce account")
        .data;
    data[40..72].try_into().expect("32 bytes")
}

fn wallet_to(svm: &LiteSVM, group: &Group, to: Pubkey, amount: u64, asset: Asset) -> Transfer {
    Transfer {
        wallet: group.wallet,
        destination: to,
        amount,
        asset,
        create_destination_account: false,
        lifetime: Lifetime::Blockhash(svm.latest_blockhash().to_bytes()),
        compute: ComputeBudget::default(),
    }
}

fn new_wallet() -> Pubkey {
    Keypair::new().pubkey().to_bytes()
}

#[test]
fn messages_are_the_ones_the_solana_sdk_compiles() {
    let wallet = new_wallet();
    let dest = new_wallet();
    let mint = new_wallet();
    let nonce_account = new_wallet();
    let a = |k: &Pubkey| Address::from(*k);
    let compute = |tag: u8, v: &[u8]| {
        let mut data = vec![tag];
        data.extend_from_slice(v);
        Instruction::new_with_bytes(a(&solana::COMPUTE_BUDGET_PROGRAM), &data, vec![])
    };
    let sol = Transfer {
        wallet,
        destination: dest,
        amount: 1_000_000,
        asset: Asset::Sol,
        create_destination_account: false,
        lifetime: Lifetime::DurableNonce {
            account: nonce_account,
            nonce: [9; 32],
        },
        compute: ComputeBudget {
            unit_limit: Some(200_000),
            unit_price: Some(5),
        },
    };
    // The SDK's message for 1,000,000 lamports from the wallet to `to` on the nonce.
    let sdk_sol = |to: &Pubkey| {
        Message::new_with_blockhash(
            &[
                solana_system_interface::instruction::advance_nonce_account(
                    &a(&nonce_account),
                    &a(&wallet),
                ),
                compute(2, &200_000u32.to_le_bytes()),
                compute(3, &5u64.to_le_bytes()),
                solana_system_interface::instruction::transfer(&a(&wallet), &a(to), 1_000_000),
            ],
            Some(&a(&wallet)),
            &[9u8; 32].into(),
        )
        .serialize()
    };
    assert_eq!(sol.message(), sdk_sol(&dest));

    // A token payout that creates the destination's account, with a priority fee.
    let usdc = Transfer {
        asset: Asset::Spl { mint, decimals: 6 },
        create_destination_account: true,
        lifetime: Lifetime::Blockhash([8; 32]),
        compute: ComputeBudget {
            unit_limit: None,
            unit_price: Some(1),
        },
        ..sol
    };
    let sdk = Message::new_with_blockhash(
        &[
            compute(3, &1u64.to_le_bytes()),
            create_ata_ix(&wallet, &dest, &mint),
            transfer_checked_ix(&wallet, &dest, &mint, 1_000_000),
        ],
        Some(&a(&wallet)),
        &[8u8; 32].into(),
    );
    assert_eq!(usdc.message(), sdk.serialize());

    // A void: the nonce advance alone.
    let sdk = Message::new_with_blockhash(
        &[solana_system_interface::instruction::advance_nonce_account(
            &a(&nonce_account),
            &a(&wallet),
        )],
        Some(&a(&wallet)),
        &[9u8; 32].into(),
    );
    assert_eq!(
        void_message(&wallet, &nonce_account, &[9; 32]),
        sdk.serialize()
    );

    // Accounts that coincide are listed once, with the union of their roles: a payout to the
    // wallet itself, and a token whose owner is the mint.
    let to_self = Transfer {
        destination: wallet,
        ..sol
    };
    assert_eq!(to_self.message(), sdk_sol(&wallet));
    let owner_is_mint = Transfer {
        destination: mint,
        ..usdc
    };
    let sdk = Message::new_with_blockhash(
        &[
            compute(3, &1u64.to_le_bytes()),
            create_ata_ix(&wallet, &mint, &mint),
            transfer_checked_ix(&wallet, &mint, &mint, 1_000_000),
        ],
        Some(&a(&wallet)),
        &[8u8; 32].into(),
    );
    assert_eq!(owner_is_mint.message(), sdk.serialize());

    // The SPL derivation of associated token accounts, by the SDK's own PDA search.
    let (ata, _) = Address::find_program_address(
        &[&dest, &solana::TOKEN_PROGRAM, &mint],
        &a(&solana::ASSOCIATED_TOKEN_PROGRAM),
    );
    assert_eq!(associated_token_address(&dest, &mint), ata.to_bytes());
}

#[test]
fn a_frost_group_pays_sol_once_and_exactly() {
    let mut svm = LiteSVM::new();
    let group = Group::new();
    svm.airdrop(&group.address(), 10_000_000_000).expect("fund");
    let dest = new_wallet();
    let before = balance(&svm, &group.wallet);

    let t = wallet_to(&svm, &group, dest, 1_000_000, Asset::Sol);
    let tx = group.transaction(&t.message());
    // What the coordinator returns, base64, parses back to the same bytes.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&tx);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        tx
    );
    send(&mut svm, &tx).expect("the signed withdrawal executes");
    assert_eq!(balance(&svm, &dest), 1_000_000);
    assert_eq!(
        balance(&svm, &group.wallet),
        before - 1_000_000 - LAMPORTS_PER_SIGNATURE
    );

    // The same transaction again: refused, nothing moves.
    let err = send(&mut svm, &tx).expect_err("a replay is refused");
    assert!(err.contains("AlreadyProcessed"), "{err}");
    // (A second FROST signature of the same blockhash message is a different transaction to
    // LiteSVM, whose history is keyed by signature; a validator's status cache also refuses
    // it by message hash. Durable nonces need neither: the nonce moves, test below.)
}

#[test]
fn a_message_altered_in_any_byte_is_refused() {
    let mut svm = LiteSVM::new();
    let group = Group::new();
    svm.airdrop(&group.address(), 10_000_000_000).expect("fund");
    let dest = new_wallet();
    let t = wallet_to(&svm, &group, dest, 1_000_000, Asset::Sol);
    let message = t.message();
    let signature = group.sign(&message);
    let tx = solana::transaction(&message, &signature);
    let start = tx.len() - message.len();
    for i in start..tx.len() {
        let mut bad = tx.clone();
        bad[i] ^= 0x01;
        // Either the bytes no longer form a transaction, or the runtime refuses it.
        let outcome = match bincode::deserialize::<VersionedTransaction>(&bad) {
            Err(_) => Err("malformed".to_string()),
            Ok(v) => svm
                .send_transaction(v)
                .map(|_| ())
                .map_err(|e| format!("{:?}", e.err)),
        };
        assert!(outcome.is_err(), "byte {i} altered was accepted");
    }
    assert_eq!(balance(&svm, &dest), 0, "nothing moved");
    // The signature itself, altered: refused by signature verification.
    let mut bad = tx.clone();
    bad[1] ^= 0x01;
    let err = send(&mut svm, &bad).expect_err("altered signature");
    assert!(err.contains("SignatureFailure"), "{err}");
    // Control: the unaltered transaction executes.
    send(&mut svm, &tx).expect("the unaltered transaction executes");
    assert_eq!(balance(&svm, &dest), 1_000_000);
}

#[test]
fn a_token_payout_goes_to_the_owners_associated_account() {
    let mut svm = LiteSVM::new();
    let group = Group::new();
    let payer = funder(&mut svm);
    svm.airdrop(&group.address(), 10_000_000_000).expect("fund");
    let mint = make_mint(&mut svm, &payer, 6);
    let source = create_ata(&mut svm, &payer, &group.wallet, &mint);
    mint_to(&mut svm, &payer, &mint, &source, 50_000_000);
    let owner = new_wallet();
    let target = associated_token_address(&owner, &mint);
    let usdc = Asset::Spl { mint, decimals: 6 };

    // The destination has no token account yet: the withdrawal creates it.
    let mut t = wallet_to(&svm, &group, owner, 2_500_000, usdc);
    t.create_destination_account = true;
    send(&mut svm, &group.transaction(&t.message())).expect("token withdrawal executes");
    assert_eq!(token_balance(&svm, &target), Some(2_500_000));
    assert_eq!(token_balance(&svm, &source), Some(47_500_000));

    // Creating it again is idempotent; without the create it pays into the same account.
    svm.expire_blockhash();
    let mut again = wallet_to(&svm, &group, owner, 1, usdc);
    again.create_destination_account = true;
    send(&mut svm, &group.transaction(&again.message())).expect("idempotent create");
    svm.expire_blockhash();
    let plain = wallet_to(&svm, &group, owner, 2, usdc);
    send(&mut svm, &group.transaction(&plain.message())).expect("plain transfer");
    assert_eq!(token_balance(&svm, &target), Some(2_500_003));

    // Decimals other than the mint's: TransferChecked refuses.
    svm.expire_blockhash();
    let wrong = wallet_to(&svm, &group, owner, 5, Asset::Spl { mint, decimals: 9 });
    assert!(send(&mut svm, &group.transaction(&wrong.message())).is_err());
    assert_eq!(token_balance(&svm, &target), Some(2_500_003));
}

#[test]
fn a_durable_nonce_withdrawal_executes_once_and_a_void_kills_a_signed_one() {
    let mut svm = LiteSVM::new();
    let group = Group::new();
    let payer = funder(&mut svm);
    svm.airdrop(&group.address(), 10_000_000_000).expect("fund");
    let (account, first) = make_nonce_account(&mut svm, &payer, &group.address());
    // A nonce advances once per blockhash.
    svm.expire_blockhash();
    // A new account needs its rent-exempt minimum (890,880 lamports): amounts are above it.
    let dest = new_wallet();
    let withdrawal = |nonce: [u8; 32], amount: u64| Transfer {
        wallet: group.wallet,
        destination: dest,
        amount,
        asset: Asset::Sol,
        create_destination_account: false,
        lifetime: Lifetime::DurableNonce { account, nonce },
        compute: ComputeBudget {
            unit_limit: Some(10_000),
            unit_price: Some(1_000),
        },
    };

    let tx = group.transaction(&withdrawal(first, 1_000_000).message());
    // Valid however many blocks pass: the nonce, not a blockhash, makes it valid.
    for _ in 0..3 {
        svm.expire_blockhash();
    }
    send(&mut svm, &tx).expect("a durable-nonce withdrawal executes");
    assert_eq!(balance(&svm, &dest), 1_000_000);
    let second = stored_nonce(&svm, &account);
    assert_ne!(second, first, "the withdrawal advanced the nonce");
    let err = send(&mut svm, &tx).expect_err("a replay is refused");
    assert!(
        err.contains("AlreadyProcessed") || err.contains("BlockhashNotFound"),
        "{err}"
    );
    // The same message signed again (FROST signatures differ each time): the nonce has moved.
    let err = send(
        &mut svm,
        &group.transaction(&withdrawal(first, 1_000_000).message()),
    )
    .expect_err("a second signature of a spent message is refused");
    assert!(err.contains("BlockhashNotFound"), "{err}");

    // Signed but unsent: voided by advancing the nonce, after which it can never execute.
    svm.expire_blockhash();
    let pending = group.transaction(&withdrawal(second, 2_000_000).message());
    send(
        &mut svm,
        &group.transaction(&void_message(&group.wallet, &account, &second)),
    )
    .expect("the void executes");
    assert_ne!(stored_nonce(&svm, &account), second);
    svm.expire_blockhash();
    assert!(
        send(&mut svm, &pending).is_err(),
        "a voided withdrawal never executes"
    );
    assert_eq!(balance(&svm, &dest), 1_000_000);
}
