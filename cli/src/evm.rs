//! The vault contract from the command line: deploy it (devnet), and reconcile its payouts
//! with the audit logs. The contract's compiled artifacts are committed under
//! `chains/evm/artifacts/` (built reproducibly by `chains/evm/build.js`), so this needs no
//! Node.js.

use anyhow::{anyhow, bail, Context};
use quorate_core::chains::evm::{keccak256, selector, Address20};

use crate::evm_rpc::{hex0x, Rpc};

/// The vault's compiled artifact.
pub const VAULT_ARTIFACT: &str = include_str!("../../chains/evm/artifacts/QuorateVault.json");
/// A plain ERC-20 for development and tests, with a public `mint`.
pub const TEST_TOKEN_ARTIFACT: &str = include_str!("../../chains/evm/artifacts/TestToken.json");

/// The creation bytecode of an artifact.
pub fn bytecode(artifact: &str) -> anyhow::Result<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_str(artifact).context("artifact JSON")?;
    let code = v["bytecode"]
        .as_str()
        .ok_or_else(|| anyhow!("artifact without bytecode"))?;
    hex::decode(code.trim_start_matches("0x")).context("artifact bytecode")
}

/// One ABI word of an unsigned integer.
pub fn word(v: u128) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[16..].copy_from_slice(&v.to_be_bytes());
    w
}

/// One ABI word of an address.
pub fn addr_word(a: &Address20) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(a);
    w
}

/// A per-token cap set at deployment: a token bucket of `capacity` base units refilled at
/// `refill_per_second`.
#[derive(Debug, Clone, Copy)]
pub struct CapInit {
    /// Token, or the zero address for the native coin.
    pub token: Address20,
    /// Largest burst, base units.
    pub capacity: u128,
    /// Refill, base units per second.
    pub refill_per_second: u128,
}

/// Creation code and constructor arguments of the vault for `group_key` (33-byte compressed).
pub fn vault_creation(
    group_key: &[u8],
    cap_raise_delay_s: u64,
    caps: &[CapInit],
) -> anyhow::Result<Vec<u8>> {
    if group_key.len() != 33 || !matches!(group_key[0], 2 | 3) {
        bail!("the group key must be 33 bytes, compressed SEC1");
    }
    let mut code = bytecode(VAULT_ARTIFACT)?;
    let mut x = [0u8; 32];
    x.copy_from_slice(&group_key[1..]);
    code.extend_from_slice(&word(u128::from(group_key[0])));
    code.extend_from_slice(&x);
    code.extend_from_slice(&word(u128::from(cap_raise_delay_s)));
    code.extend_from_slice(&word(4 * 32));
    code.extend_from_slice(&word(caps.len() as u128));
    for c in caps {
        code.extend_from_slice(&addr_word(&c.token));
        code.extend_from_slice(&word(c.capacity));
        code.extend_from_slice(&word(c.refill_per_second));
    }
    Ok(code)
}

fn abi_string(s: &str) -> Vec<u8> {
    let mut out = word(s.len() as u128).to_vec();
    out.extend_from_slice(s.as_bytes());
    out.resize(32 + s.len().div_ceil(32) * 32, 0);
    out
}

/// Creation code of the test token `(name, symbol, decimals)`.
pub fn test_token_creation(name: &str, symbol: &str, decimals: u8) -> anyhow::Result<Vec<u8>> {
    token_creation(TEST_TOKEN_ARTIFACT, name, symbol, decimals)
}

/// Creation code of a token artifact whose constructor is `(name, symbol, decimals)`.
pub fn token_creation(
    artifact: &str,
    name: &str,
    symbol: &str,
    decimals: u8,
) -> anyhow::Result<Vec<u8>> {
    let mut code = bytecode(artifact)?;
    let name_enc = abi_string(name);
    code.extend_from_slice(&word(3 * 32));
    code.extend_from_slice(&word((3 * 32 + name_enc.len()) as u128));
    code.extend_from_slice(&word(u128::from(decimals)));
    code.extend_from_slice(&name_enc);
    code.extend_from_slice(&abi_string(symbol));
    Ok(code)
}

/// Calldata of `mint(to, amount)` on the test token.
pub fn mint_call(to: &Address20, amount: u128) -> Vec<u8> {
    let mut d = selector("mint(address,uint256)").to_vec();
    d.extend_from_slice(&addr_word(to));
    d.extend_from_slice(&word(amount));
    d
}

/// Calldata of `balanceOf(owner)`.
pub fn balance_of_call(owner: &Address20) -> Vec<u8> {
    let mut d = selector("balanceOf(address)").to_vec();
    d.extend_from_slice(&addr_word(owner));
    d
}

/// Parses a `0x…` address into its 20 bytes.
pub fn parse_addr(s: &str) -> anyhow::Result<Address20> {
    hex::decode(s.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("{s}: not a 20-byte address"))
}

/// Deploys `creation` from `from`; returns the new contract's address and the gas it took.
pub async fn deploy(rpc: &Rpc, from: &str, creation: &[u8]) -> anyhow::Result<(Address20, u64)> {
    let r = rpc.send(from, None, creation, 0).await?;
    if !r.success {
        bail!("the deployment reverted");
    }
    let at = parse_addr(
        r.contract_address
            .as_deref()
            .ok_or_else(|| anyhow!("a deployment receipt without an address"))?,
    )?;
    Ok((at, r.gas_used))
}

/// The ERC-20 balance of `owner` in `token`.
pub async fn token_balance(
    rpc: &Rpc,
    token: &Address20,
    owner: &Address20,
) -> anyhow::Result<u128> {
    let out = rpc.read(&hex0x(token), &balance_of_call(owner)).await?;
    if out.len() != 32 || out[..16].iter().any(|b| *b != 0) {
        bail!("balanceOf: unexpected answer {}", hex::encode(&out));
    }
    Ok(u128::from_be_bytes(
        out[16..].try_into().unwrap_or_default(),
    ))
}

/// topic0 of the vault's `Withdrawn` event.
pub fn withdrawn_topic() -> [u8; 32] {
    keccak256(&[quorate_core::chains::evm::WITHDRAWN_EVENT.as_bytes()])
}

/// Arguments of `quorate vault-creation`.
#[derive(Debug, clap::Args)]
pub struct VaultCreationArgs {
    /// The group key the vault verifies (33-byte compressed, hex): `quorate status` prints it.
    #[arg(long)]
    pub group_key: String,
    /// How long a cap raise or a key rotation waits on chain (an hour to a year).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub delay: std::time::Duration,
    /// A per-token cap set at deployment, `TOKEN:CAPACITY:REFILL_PER_SECOND` in base units,
    /// `TOKEN` an address or `native`; repeat for more tokens.
    #[arg(long)]
    pub cap: Vec<String>,
}

fn parse_cap(s: &str) -> anyhow::Result<CapInit> {
    let parts: Vec<&str> = s.split(':').collect();
    let [token, capacity, rate] = parts[..] else {
        bail!("--cap {s}: write TOKEN:CAPACITY:REFILL_PER_SECOND");
    };
    let token = if token == "native" {
        quorate_core::chains::evm::NATIVE
    } else {
        parse_addr(token)?
    };
    let number = |v: &str| {
        quorate_core::policy::doc::parse_base_units(v)
            .ok_or_else(|| anyhow!("--cap {s}: {v} is not base units in plain decimal"))
    };
    Ok(CapInit {
        token,
        capacity: number(capacity)?,
        refill_per_second: number(rate)?,
    })
}

/// Runs `quorate vault-creation`.
pub fn print_creation(a: VaultCreationArgs) -> anyhow::Result<u8> {
    let key = hex::decode(&a.group_key).context("--group-key: not hex")?;
    if key.len() != 33
        || k256::PublicKey::from_sec1_bytes(&key).is_err()
        || !matches!(key[0], 2 | 3)
    {
        bail!("--group-key: not a 33-byte compressed secp256k1 key");
    }
    let delay = a.delay.as_secs();
    if !(3600..=365 * 24 * 3600).contains(&delay) {
        bail!("--delay: the vault takes an hour to a year");
    }
    let caps = a
        .cap
        .iter()
        .map(|c| parse_cap(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let code = vault_creation(&key, delay, &caps)?;
    println!(
        "{}",
        serde_json::json!({
            "group_key": hex::encode(&key),
            "delay_s": delay,
            "caps": caps.iter().map(|c| serde_json::json!({
                "token": hex0x(&c.token),
                "capacity": c.capacity.to_string(),
                "refill_per_second": c.refill_per_second.to_string(),
            })).collect::<Vec<_>>(),
            "creation_code": hex0x(&code),
        })
    );
    Ok(0)
}
