//! Solana: the exact transaction message the group signs for a withdrawal, built by every
//! signer from the intent and its own policy (S1), and the signed transaction a backend sends.
//!
//! The group's FROST(Ed25519, SHA-512) key is an ordinary Ed25519 key, so its 32 bytes are the
//! hot wallet's Solana address: fee payer, source of SOL, owner of the wallet's token accounts
//! and authority of its durable-nonce accounts. A withdrawal is one legacy message with, in
//! order:
//!
//! 1. `AdvanceNonceAccount` of a nonce account in the policy's pool (durable nonce), when the
//!    intent names one; the message's "recent blockhash" is then the nonce value;
//! 2. `SetComputeUnitLimit` and `SetComputeUnitPrice`, each only when the intent asks and under
//!    the policy's cap;
//! 3. for an SPL token, `CreateIdempotent` of the destination's associated token account when
//!    the intent asks;
//! 4. the payout: a System `Transfer` of lamports, or a Token `TransferChecked` from the
//!    wallet's associated token account to the destination owner's, both derived here.
//!
//! Nothing else can appear: no other signer, no other instruction, no authority change, no
//! account close. Accounts are ordered as the Solana SDK's `Message::new` orders them (fee
//! payer first, then writable signers, read-only signers, writable and read-only others, each
//! group by address), so the message is the one any Solana library would build.

use sha2::{Digest, Sha256};

/// A Solana address (public key), 32 bytes.
pub type Pubkey = [u8; 32];

/// The System Program, `11111111111111111111111111111111`.
pub const SYSTEM_PROGRAM: Pubkey = [0; 32];
/// SPL Token, `TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA`.
pub const TOKEN_PROGRAM: Pubkey =
    hex32("06ddf6e1d765a193d9cbe146ceeb79ac1cb485ed5f5b37913a8cf5857eff00a9");
/// Associated Token Account program, `ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL`.
pub const ASSOCIATED_TOKEN_PROGRAM: Pubkey =
    hex32("8c97258f4e2489f1bb3d1029148e0d830b5a1399daff1084048e7bd8dbe9f859");
/// Compute Budget program, `ComputeBudget111111111111111111111111111111`.
pub const COMPUTE_BUDGET_PROGRAM: Pubkey =
    hex32("0306466fe5211732ffecadba72c39be7bc8ce5bbc5f7126b2c439b3a40000000");
/// The RecentBlockhashes sysvar `AdvanceNonceAccount` reads,
/// `SysvarRecentB1ockHashes11111111111111111111`.
pub const RECENT_BLOCKHASHES_SYSVAR: Pubkey =
    hex32("06a7d517192c568ee08a845f73d29788cf035c3145b21ab344d8062ea9400000");

const fn hex32(s: &str) -> Pubkey {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not lowercase hex"),
    }
}

/// System Program instruction indices (u32 little-endian in the data).
const SYSTEM_TRANSFER: u32 = 2;
const SYSTEM_ADVANCE_NONCE: u32 = 4;
/// SPL Token `TransferChecked`.
const TOKEN_TRANSFER_CHECKED: u8 = 12;
/// Associated Token Account `CreateIdempotent`.
const ATA_CREATE_IDEMPOTENT: u8 = 1;
/// Compute Budget `SetComputeUnitLimit` and `SetComputeUnitPrice`.
const CB_SET_LIMIT: u8 = 2;
const CB_SET_PRICE: u8 = 3;

/// Base58 text of an address.
pub fn address_text(key: &Pubkey) -> String {
    bs58::encode(key).into_string()
}

/// An address from its canonical base58 text.
pub fn address_bytes(text: &str) -> Result<Pubkey, String> {
    let raw = bs58::decode(text)
        .into_vec()
        .map_err(|_| format!("{text:?} is not base58"))?;
    let key: Pubkey = raw
        .try_into()
        .map_err(|r: Vec<u8>| format!("{text:?} decodes to {} bytes, not 32", r.len()))?;
    if address_text(&key) != text {
        return Err(format!("{text:?} is not in canonical base58 form"));
    }
    Ok(key)
}

/// Whether `key` is a point of the Ed25519 curve: true for every wallet (a key pair's public
/// key), false for program-derived addresses, whose owner is a program.
pub fn on_curve(key: &Pubkey) -> bool {
    curve25519_dalek::edwards::CompressedEdwardsY(*key)
        .decompress()
        .is_some()
}

/// The program-derived address of `seeds` under `program` and its bump (Solana's
/// `find_program_address`): the first of bumps 255, 254, … whose hash is off the curve.
pub fn find_program_address(seeds: &[&[u8]], program: &Pubkey) -> Option<(Pubkey, u8)> {
    (0..=u8::MAX).rev().find_map(|bump| {
        let mut h = Sha256::new();
        for s in seeds {
            h.update(s);
        }
        h.update([bump]);
        h.update(program);
        h.update(b"ProgramDerivedAddress");
        let key: Pubkey = h.finalize().into();
        (!on_curve(&key)).then_some((key, bump))
    })
}

/// The associated token account of `owner` for `mint` (SPL Token).
pub fn associated_token_address(owner: &Pubkey, mint: &Pubkey) -> Pubkey {
    find_program_address(&[owner, &TOKEN_PROGRAM, mint], &ASSOCIATED_TOKEN_PROGRAM)
        .map(|(k, _)| k)
        // Each bump is off the curve with probability about 1/2: all 256 on it (2^-256) has
        // never happened for any seeds, and Solana itself could not derive the account then.
        .expect("a program-derived address exists for these seeds")
}

/// What makes a transaction valid only once: a durable nonce (never expires until the nonce
/// advances) or a recent blockhash (expires after about 150 blocks, 60–90 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// A durable-nonce account whose authority is the wallet, and its current nonce value.
    DurableNonce {
        /// The nonce account.
        account: Pubkey,
        /// Its stored nonce, which the message carries as its blockhash.
        nonce: [u8; 32],
    },
    /// A recent blockhash.
    Blockhash([u8; 32]),
}

impl Lifetime {
    /// The 32 bytes the message carries as its recent blockhash.
    pub fn blockhash(&self) -> [u8; 32] {
        match self {
            Lifetime::DurableNonce { nonce, .. } => *nonce,
            Lifetime::Blockhash(h) => *h,
        }
    }
}

/// Optional compute-budget instructions (priority fee).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ComputeBudget {
    /// `SetComputeUnitLimit`, compute units.
    pub unit_limit: Option<u32>,
    /// `SetComputeUnitPrice`, micro-lamports per compute unit.
    pub unit_price: Option<u64>,
}

/// What is paid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// Lamports.
    Sol,
    /// An SPL Token (the original Token program) of this mint and decimals.
    Spl {
        /// The mint.
        mint: Pubkey,
        /// The mint's decimals (`TransferChecked` asserts them).
        decimals: u8,
    },
}

/// One withdrawal on Solana, everything the message depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// The group's address: fee payer, source, token owner, nonce authority.
    pub wallet: Pubkey,
    /// The destination wallet (owner of the destination token account for SPL).
    pub destination: Pubkey,
    /// Base units.
    pub amount: u64,
    /// SOL or a token.
    pub asset: Asset,
    /// For a token: create the destination's associated token account if it is missing.
    pub create_destination_account: bool,
    /// Durable nonce or recent blockhash.
    pub lifetime: Lifetime,
    /// Priority fee.
    pub compute: ComputeBudget,
}

/// An instruction before compilation into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The program.
    pub program: Pubkey,
    /// Its accounts: (address, signer, writable).
    pub accounts: Vec<(Pubkey, bool, bool)>,
    /// Its data.
    pub data: Vec<u8>,
}

use Instruction as Ix;

fn advance_nonce(account: &Pubkey, authority: &Pubkey) -> Ix {
    Ix {
        program: SYSTEM_PROGRAM,
        accounts: vec![
            (*account, false, true),
            (RECENT_BLOCKHASHES_SYSVAR, false, false),
            (*authority, true, false),
        ],
        data: SYSTEM_ADVANCE_NONCE.to_le_bytes().to_vec(),
    }
}

impl Transfer {
    /// The instructions of the message, in order.
    pub fn instructions(&self) -> Vec<Instruction> {
        let mut ixs = Vec::with_capacity(5);
        if let Lifetime::DurableNonce { account, .. } = &self.lifetime {
            ixs.push(advance_nonce(account, &self.wallet));
        }
        if let Some(limit) = self.compute.unit_limit {
            let mut data = vec![CB_SET_LIMIT];
            data.extend_from_slice(&limit.to_le_bytes());
            ixs.push(Ix {
                program: COMPUTE_BUDGET_PROGRAM,
                accounts: vec![],
                data,
            });
        }
        if let Some(price) = self.compute.unit_price {
            let mut data = vec![CB_SET_PRICE];
            data.extend_from_slice(&price.to_le_bytes());
            ixs.push(Ix {
                program: COMPUTE_BUDGET_PROGRAM,
                accounts: vec![],
                data,
            });
        }
        match self.asset {
            Asset::Sol => {
                let mut data = SYSTEM_TRANSFER.to_le_bytes().to_vec();
                data.extend_from_slice(&self.amount.to_le_bytes());
                ixs.push(Ix {
                    program: SYSTEM_PROGRAM,
                    accounts: vec![(self.wallet, true, true), (self.destination, false, true)],
                    data,
                });
            }
            Asset::Spl { mint, decimals } => {
                let source = associated_token_address(&self.wallet, &mint);
                let target = associated_token_address(&self.destination, &mint);
                if self.create_destination_account {
                    ixs.push(Ix {
                        program: ASSOCIATED_TOKEN_PROGRAM,
                        accounts: vec![
                            (self.wallet, true, true),
                            (target, false, true),
                            (self.destination, false, false),
                            (mint, false, false),
                            (SYSTEM_PROGRAM, false, false),
                            (TOKEN_PROGRAM, false, false),
                        ],
                        data: vec![ATA_CREATE_IDEMPOTENT],
                    });
                }
                let mut data = vec![TOKEN_TRANSFER_CHECKED];
                data.extend_from_slice(&self.amount.to_le_bytes());
                data.push(decimals);
                ixs.push(Ix {
                    program: TOKEN_PROGRAM,
                    accounts: vec![
                        (source, false, true),
                        (mint, false, false),
                        (target, false, true),
                        (self.wallet, true, false),
                    ],
                    data,
                });
            }
        }
        ixs
    }

    /// The serialized legacy message the group signs.
    pub fn message(&self) -> Vec<u8> {
        compile(
            &self.wallet,
            &self.instructions(),
            &self.lifetime.blockhash(),
        )
    }
}

/// The message that voids every transaction signed with `nonce` of nonce account `account`:
/// it only advances the nonce, paid by the wallet.
pub fn void_message(wallet: &Pubkey, account: &Pubkey, nonce: &[u8; 32]) -> Vec<u8> {
    compile(wallet, &[advance_nonce(account, wallet)], nonce)
}

fn compact_u16(out: &mut Vec<u8>, n: usize) {
    // Messages here hold at most a few dozen entries; Solana's "shortvec" encoding.
    let mut n = n;
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// Compiles instructions into a legacy message with `payer` first, as the SDK's
/// `Message::new` does.
pub fn compile(payer: &Pubkey, ixs: &[Instruction], blockhash: &[u8; 32]) -> Vec<u8> {
    // (signer, writable) per address, merged over every use; the BTreeMap orders by address.
    let mut metas = std::collections::BTreeMap::<Pubkey, (bool, bool)>::new();
    for ix in ixs {
        metas.entry(ix.program).or_insert((false, false));
        for (key, signer, writable) in &ix.accounts {
            let m = metas.entry(*key).or_insert((false, false));
            m.0 |= signer;
            m.1 |= writable;
        }
    }
    metas.remove(payer);
    let group = |signer: bool, writable: bool| {
        metas
            .iter()
            .filter(move |(_, m)| **m == (signer, writable))
            .map(|(k, _)| *k)
    };
    let mut keys = vec![*payer];
    keys.extend(group(true, true));
    let readonly_signed = group(true, false).count();
    keys.extend(group(true, false));
    keys.extend(group(false, true));
    let readonly_unsigned = group(false, false).count();
    keys.extend(group(false, false));
    let signers = 1 + group(true, true).count() + readonly_signed;
    // Legacy messages index accounts with one byte; Quorate's hold at most a dozen.
    assert!(
        keys.len() <= 256,
        "a legacy message holds at most 256 accounts"
    );
    let index = |k: &Pubkey| {
        keys.iter()
            .position(|x| x == k)
            .expect("every account of an instruction is in the key list") as u8
    };

    let mut out = Vec::with_capacity(64 + 32 * keys.len());
    // At most a dozen accounts: the casts are lossless.
    out.extend_from_slice(&[
        signers as u8,
        readonly_signed as u8,
        readonly_unsigned as u8,
    ]);
    compact_u16(&mut out, keys.len());
    for k in &keys {
        out.extend_from_slice(k);
    }
    out.extend_from_slice(blockhash);
    compact_u16(&mut out, ixs.len());
    for ix in ixs {
        out.push(index(&ix.program));
        compact_u16(&mut out, ix.accounts.len());
        for (k, _, _) in &ix.accounts {
            out.push(index(k));
        }
        compact_u16(&mut out, ix.data.len());
        out.extend_from_slice(&ix.data);
    }
    out
}

/// The wire form of a transaction with the one signature a Quorate message needs: a compact
/// count (1), the 64-byte signature, the message.
pub fn transaction(message: &[u8], signature: &[u8; 64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 64 + message.len());
    compact_u16(&mut out, 1);
    out.extend_from_slice(signature);
    out.extend_from_slice(message);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_ids_are_the_well_known_addresses() {
        assert_eq!(
            address_text(&SYSTEM_PROGRAM),
            "11111111111111111111111111111111"
        );
        assert_eq!(
            address_text(&TOKEN_PROGRAM),
            "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
        );
        assert_eq!(
            address_text(&ASSOCIATED_TOKEN_PROGRAM),
            "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
        );
        assert_eq!(
            address_text(&COMPUTE_BUDGET_PROGRAM),
            "ComputeBudget111111111111111111111111111111"
        );
        assert_eq!(
            address_text(&RECENT_BLOCKHASHES_SYSVAR),
            "SysvarRecentB1ockHashes11111111111111111111"
        );
    }

    #[test]
    fn shortvec_matches_solana() {
        for (n, bytes) in [
            (0usize, vec![0u8]),
            (0x7f, vec![0x7f]),
            (0x80, vec![0x80, 0x01]),
            (0x3fff, vec![0xff, 0x7f]),
            (0x4000, vec![0x80, 0x80, 0x01]),
        ] {
            let mut out = vec![];
            compact_u16(&mut out, n);
            assert_eq!(out, bytes, "{n}");
        }
    }

    #[test]
    fn associated_token_accounts_are_off_curve_and_depend_on_owner_and_mint() {
        // Equality with the SPL library's derivation is checked in chains/solana/tests.
        // The public key of the Ed25519 secret [7; 32].
        let owner = address_bytes("GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB").unwrap();
        let usdc = address_bytes("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v").unwrap();
        assert!(on_curve(&owner));
        let ata = associated_token_address(&owner, &usdc);
        assert!(!on_curve(&ata));
        assert_ne!(ata, associated_token_address(&usdc, &owner));
        assert_ne!(ata, associated_token_address(&owner, &TOKEN_PROGRAM));
    }
}
