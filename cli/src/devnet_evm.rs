//! `quorate devnet --evm-rpc URL`: chain `ethereum` against a development node. The devnet
//! deploys a test ERC-20 and, once the DKG has made the group key, the vault with that key;
//! funds the vault with 100 ETH and a million test tokens; and puts the chain id, the vault
//! and the tokens in the genesis policy (the vault's address is known before it is deployed:
//! it follows from the deploying account and its nonce).

use std::path::Path;

use anyhow::{bail, Context};
use quorate_core::{
    address::{eip55, Chain},
    chains::evm::Address20,
    policy::{form::AssetForm, form::ChainForm, PolicyDoc, PolicyForm, NATIVE_TOKEN},
};

use crate::{
    evm::{self, CapInit},
    evm_rpc::{create_address, hex0x, Rpc},
    setup::DEV_POLICY,
};

/// ETH the vault starts with.
pub const FUNDING_WEI: u128 = 100 * 10u128.pow(18);
/// The test token's symbol in the policy.
pub const TEST_ASSET: &str = "QTEST";
/// The test token's decimals.
pub const TEST_DECIMALS: u8 = 6;
/// Test tokens the vault starts with (a million whole tokens).
pub const TEST_FUNDING: u128 = 1_000_000 * 10u128.pow(TEST_DECIMALS as u32);
/// On-chain cap of the test token: bursts of 100,000 tokens, refilled over a day.
pub const TEST_CAP: u128 = 100_000 * 10u128.pow(TEST_DECIMALS as u32);
/// How long a cap raise waits on chain.
pub const CAP_RAISE_DELAY_S: u64 = 24 * 3600;

/// The development chain the devnet pays out on.
pub struct EvmDevnet {
    rpc: Rpc,
    url: String,
    chain_id: u64,
    deployer: String,
    token: Address20,
    vault: Address20,
    /// The deployer's nonce that deploys the vault (`None` when it is already deployed).
    vault_nonce: Option<u64>,
}

/// The vault and token named in a genesis policy's `ethereum` settings.
fn from_policy(doc: &PolicyDoc) -> Option<(u64, Address20, Address20)> {
    let c = doc.chain(Chain::Ethereum)?;
    let token = doc.asset(Chain::Ethereum, TEST_ASSET)?.token.as_deref()?;
    Some((
        c.chain_id,
        evm::parse_addr(&c.vault).ok()?,
        evm::parse_addr(token).ok()?,
    ))
}

impl EvmDevnet {
    /// Connects to the node. For a new cluster (`existing` is `None`) deploys the test token
    /// and reserves the vault's address; for an existing one checks that its vault is there.
    pub async fn prepare(url: &str, existing: Option<&PolicyDoc>) -> anyhow::Result<Self> {
        let rpc = Rpc::new(url)?;
        let chain_id = rpc
            .chain_id()
            .await
            .with_context(|| format!("--evm-rpc {url}: is an EVM node running there?"))?;
        let deployer = rpc.accounts().await?.into_iter().next().with_context(|| {
            format!("{url} holds no unlocked account; --evm-rpc needs a development node (Hardhat, anvil)")
        })?;
        let (token, vault, vault_nonce) = match existing {
            Some(doc) => {
                let Some((id, vault, token)) = from_policy(doc) else {
                    bail!("this devnet was made without --evm-rpc; start one in a fresh --dir to use a chain");
                };
                if id != chain_id || rpc.code(&hex0x(&vault)).await?.is_empty() {
                    bail!(
                        "the vault {} (chain id {id}) of this devnet's genesis policy is not on {url} (chain id {chain_id}); \
                         a restarted node forgets it: start the devnet in a fresh --dir",
                        eip55(&vault)
                    );
                }
                (token, vault, None)
            }
            None => {
                let (token, _) = evm::deploy(
                    &rpc,
                    &deployer,
                    &evm::test_token_creation("Quorate Test Token", TEST_ASSET, TEST_DECIMALS)?,
                )
                .await
                .context("deploying the test token")?;
                let nonce = rpc.nonce(&deployer).await?;
                let vault = create_address(&evm::parse_addr(&deployer)?, nonce);
                (token, vault, Some(nonce))
            }
        };
        Ok(Self {
            rpc,
            url: url.into(),
            chain_id,
            deployer,
            token,
            vault,
            vault_nonce,
        })
    }

    /// The development policy with chain `ethereum` paid out through the vault.
    pub fn genesis_policy(&self) -> anyhow::Result<String> {
        let mut form = PolicyForm::parse(DEV_POLICY).context("development policy")?;
        for a in form.assets.iter_mut().filter(|a| a.chain == "ethereum") {
            a.token = Some(NATIVE_TOKEN.into());
        }
        form.assets.push(AssetForm {
            chain: "ethereum".into(),
            asset: TEST_ASSET.into(),
            decimals: TEST_DECIMALS,
            enabled: true,
            max_per_withdrawal: "100000".into(),
            approval_threshold: "10000".into(),
            approvals_required: 2,
            token: Some(eip55(&self.token)),
        });
        form.chains.push(ChainForm {
            chain: "ethereum".into(),
            chain_id: self.chain_id,
            vault: eip55(&self.vault),
            vault_actions: Vec::new(),
        });
        Ok(form.to_toml())
    }

    /// Deploys the vault for `group_key` where it is not yet, and funds it.
    pub async fn deploy_vault(&self, group_key: &[u8]) -> anyhow::Result<()> {
        let Some(nonce) = self.vault_nonce else {
            return Ok(());
        };
        let now = self.rpc.nonce(&self.deployer).await?;
        if now != nonce {
            bail!(
                "account {} sent {} transaction(s) on {} while the devnet started, so the vault cannot land at {} named in the policy; start over in a fresh --dir",
                self.deployer,
                now.saturating_sub(nonce),
                self.url,
                eip55(&self.vault)
            );
        }
        let caps = [CapInit {
            token: self.token,
            capacity: TEST_CAP,
            refill_per_second: TEST_CAP / (24 * 3600),
        }];
        let (at, gas) = evm::deploy(
            &self.rpc,
            &self.deployer,
            &evm::vault_creation(group_key, CAP_RAISE_DELAY_S, &caps)?,
        )
        .await
        .context("deploying the vault")?;
        if at != self.vault {
            bail!(
                "the vault landed at {} instead of {}",
                eip55(&at),
                eip55(&self.vault)
            );
        }
        println!("deployed the vault at {} ({gas} gas)", eip55(&at));
        let vault = hex0x(&self.vault);
        let r = self
            .rpc
            .send(&self.deployer, Some(&vault), &[], FUNDING_WEI)
            .await?;
        if !r.success {
            bail!("funding the vault with ETH failed");
        }
        let r = self
            .rpc
            .send(
                &self.deployer,
                Some(&hex0x(&self.token)),
                &evm::mint_call(&self.vault, TEST_FUNDING),
                0,
            )
            .await?;
        if !r.success {
            bail!("minting test tokens to the vault failed");
        }
        Ok(())
    }

    /// Lines for the devnet's banner.
    pub async fn describe(&self) -> anyhow::Result<Vec<String>> {
        let vault = hex0x(&self.vault);
        Ok(vec![
            format!("  chain        ethereum at {} (chain id {})", self.url, self.chain_id),
            format!(
                "  vault        {} holding {} wei and {} {TEST_ASSET} base units",
                eip55(&self.vault),
                self.rpc.balance(&vault).await?,
                evm::token_balance(&self.rpc, &self.token, &self.vault).await?
            ),
            format!(
                "  test token   {} ({TEST_ASSET}, {TEST_DECIMALS} decimals, capped on chain at {} base units a day)",
                eip55(&self.token),
                TEST_CAP
            ),
            // For the banner's "Try" list (a line starting with `send:`).
            format!(
                "send:curl -s {} -H 'content-type: application/json' -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_sendTransaction\",\"params\":[{{\"from\":\"{}\",\"to\":\"<evm_call.to>\",\"data\":\"<evm_call.data>\"}}]}}'",
                self.url, self.deployer
            ),
        ])
    }
}

/// The genesis policy a cluster directory was made with.
pub fn genesis_of(dir: &Path) -> anyhow::Result<PolicyDoc> {
    let text = std::fs::read_to_string(dir.join("policy/genesis.json"))
        .with_context(|| format!("reading {}", dir.join("policy/genesis.json").display()))?;
    Ok(quorate_wire::convert::policy_file::signed_from_json(&text)
        .map_err(|e| anyhow::anyhow!("genesis policy: {e}"))?
        .doc)
}
