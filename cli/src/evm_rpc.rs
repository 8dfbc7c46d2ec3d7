//! A small Ethereum JSON-RPC client over plain HTTP/1.1, for a node the operator runs (a
//! local Hardhat, anvil or geth, or a node behind the operator's own proxy): enough to deploy
//! the vault, fund it, send a call and read its events. `https://` is refused with a clear
//! message; point it at a local node or a local TLS-terminating proxy.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Longest answer read (a `getLogs` page of a busy vault fits easily).
const MAX_ANSWER: usize = 64 * 1024 * 1024;
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A JSON-RPC endpoint.
#[derive(Debug, Clone)]
pub struct Rpc {
    host: String,
    path: String,
}

/// A transaction receipt, as far as Quorate reads it.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// Whether it executed (status 1) or reverted.
    pub success: bool,
    /// Gas it used.
    pub gas_used: u64,
    /// A deployed contract's address, `0x…`.
    pub contract_address: Option<String>,
}

/// One log entry.
#[derive(Debug, Clone)]
pub struct Log {
    /// Topics.
    pub topics: Vec<[u8; 32]>,
    /// Data.
    pub data: Vec<u8>,
    /// Block number.
    pub block: u64,
    /// Transaction hash, `0x…`.
    pub tx: String,
}

/// `0x`-prefixed lowercase hex.
pub fn hex0x(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

/// Parses a JSON-RPC quantity (`0x1a`).
pub fn quantity(v: &Value) -> anyhow::Result<u128> {
    let s = v
        .as_str()
        .ok_or_else(|| anyhow!("expected a hex quantity, got {v}"))?;
    let digits = s
        .strip_prefix("0x")
        .ok_or_else(|| anyhow!("quantity without 0x: {s}"))?;
    u128::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16)
        .with_context(|| format!("quantity {s}"))
}

/// Parses JSON-RPC data (`0x…`).
pub fn data(v: &Value) -> anyhow::Result<Vec<u8>> {
    let s = v
        .as_str()
        .ok_or_else(|| anyhow!("expected hex data, got {v}"))?;
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).with_context(|| format!("data {s}"))
}

fn word(v: &Value) -> anyhow::Result<[u8; 32]> {
    data(v)?
        .try_into()
        .map_err(|_| anyhow!("expected a 32-byte word, got {v}"))
}

impl Rpc {
    /// An endpoint `http://host:port[/path]`.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("https://") {
            bail!("{url}: only http:// endpoints are supported; run a local node or a local TLS proxy");
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("{url}: expected http://host:port"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() || !host.contains(':') {
            bail!("{url}: name the port, e.g. http://127.0.0.1:8545");
        }
        Ok(Self {
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    /// One JSON-RPC call; an error answer becomes an error naming the method.
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.post(&body))
            .await
            .map_err(|_| anyhow!("{method}: no answer from {} in {CALL_TIMEOUT:?}", self.host))?
            .with_context(|| format!("{method} on {}", self.host))?;
        let v: Value = serde_json::from_slice(&answer)
            .with_context(|| format!("{method}: the answer is not JSON"))?;
        if let Some(e) = v.get("error") {
            bail!("{method}: {}", e.get("message").unwrap_or(e));
        }
        v.get("result")
            .cloned()
            .ok_or_else(|| anyhow!("{method}: an answer without result"))
    }

    async fn post(&self, body: &str) -> anyhow::Result<Vec<u8>> {
        let mut s = TcpStream::connect(&self.host).await?;
        let req = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.path,
            self.host,
            body.len(),
            body
        );
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut s)
            .take(MAX_ANSWER as u64 + 1)
            .read_to_end(&mut raw)
            .await?;
        if raw.len() > MAX_ANSWER {
            bail!("answer larger than {MAX_ANSWER} bytes");
        }
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| anyhow!("not an HTTP answer"))?;
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let body = &raw[split + 4..];
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            bail!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            );
        }
        if head.contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            Ok(body.to_vec())
        }
    }

    /// `eth_chainId`.
    pub async fn chain_id(&self) -> anyhow::Result<u64> {
        Ok(u64::try_from(quantity(
            &self.call("eth_chainId", json!([])).await?,
        )?)?)
    }

    /// The node's unlocked development accounts.
    pub async fn accounts(&self) -> anyhow::Result<Vec<String>> {
        let v = self.call("eth_accounts", json!([])).await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Transactions sent from `account` (its next nonce), pending ones included.
    pub async fn nonce(&self, account: &str) -> anyhow::Result<u64> {
        let v = self
            .call("eth_getTransactionCount", json!([account, "pending"]))
            .await?;
        Ok(u64::try_from(quantity(&v)?)?)
    }

    /// Balance in wei.
    pub async fn balance(&self, account: &str) -> anyhow::Result<u128> {
        quantity(
            &self
                .call("eth_getBalance", json!([account, "latest"]))
                .await?,
        )
    }

    /// Deployed code at `account`.
    pub async fn code(&self, account: &str) -> anyhow::Result<Vec<u8>> {
        data(&self.call("eth_getCode", json!([account, "latest"])).await?)
    }

    /// `eth_call` of `data` on `to`; a revert is an error carrying the node's message.
    pub async fn read(&self, to: &str, calldata: &[u8]) -> anyhow::Result<Vec<u8>> {
        data(
            &self
                .call(
                    "eth_call",
                    json!([{"to": to, "data": hex0x(calldata)}, "latest"]),
                )
                .await?,
        )
    }

    /// Sends a transaction from an account the node holds and waits for its receipt. A
    /// transaction that reverts returns a receipt with `success == false` where the node
    /// mines it, and an error where the node refuses it outright (Hardhat's default).
    pub async fn send(
        &self,
        from: &str,
        to: Option<&str>,
        calldata: &[u8],
        value: u128,
    ) -> anyhow::Result<Receipt> {
        let mut tx =
            json!({"from": from, "data": hex0x(calldata), "value": format!("0x{value:x}")});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        // Generous, so the node never needs to estimate (an estimate of a reverting call
        // fails before the transaction exists).
        tx["gas"] = json!("0x1c9c380");
        let hash = self.call("eth_sendTransaction", json!([tx])).await?;
        let hash = hash
            .as_str()
            .ok_or_else(|| anyhow!("no transaction hash"))?
            .to_string();
        self.receipt(&hash).await
    }

    /// Waits (up to a minute) for the receipt of `hash`.
    pub async fn receipt(&self, hash: &str) -> anyhow::Result<Receipt> {
        for _ in 0..600 {
            let r = self
                .call("eth_getTransactionReceipt", json!([hash]))
                .await?;
            if !r.is_null() {
                return parse_receipt(&r);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("transaction {hash} was not mined within a minute")
    }

    /// The latest block number.
    pub async fn block_number(&self) -> anyhow::Result<u64> {
        Ok(u64::try_from(quantity(
            &self.call("eth_blockNumber", json!([])).await?,
        )?)?)
    }

    /// Logs of `address` whose first topic is one of `topic0s`, in blocks `from..=to`.
    pub async fn logs(
        &self,
        address: &str,
        topic0s: &[[u8; 32]],
        from: u64,
        to: u64,
    ) -> anyhow::Result<Vec<Log>> {
        let any: Vec<String> = topic0s.iter().map(|t| hex0x(t)).collect();
        let v = self
            .call(
                "eth_getLogs",
                json!([{
                    "address": address,
                    "topics": [any],
                    "fromBlock": format!("0x{from:x}"),
                    "toBlock": format!("0x{to:x}"),
                }]),
            )
            .await?;
        v.as_array()
            .ok_or_else(|| anyhow!("eth_getLogs: not a list"))?
            .iter()
            .map(parse_log)
            .collect()
    }
}

fn parse_log(l: &Value) -> anyhow::Result<Log> {
    Ok(Log {
        topics: l["topics"]
            .as_array()
            .map(|t| t.iter().map(word).collect::<anyhow::Result<Vec<_>>>())
            .transpose()?
            .unwrap_or_default(),
        data: data(&l["data"])?,
        block: u64::try_from(quantity(&l["blockNumber"])?)?,
        tx: l["transactionHash"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

fn parse_receipt(r: &Value) -> anyhow::Result<Receipt> {
    Ok(Receipt {
        success: quantity(&r["status"])? == 1,
        gas_used: u64::try_from(quantity(&r["gasUsed"])?)?,
        contract_address: r["contractAddress"].as_str().map(String::from),
    })
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunked body"))?;
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| anyhow!("bad chunk size"))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if size.checked_add(2).is_none_or(|end| body.len() < end) {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// The address a contract created by `sender` with `nonce` gets:
/// `keccak256(rlp([sender, nonce]))[12..]`.
pub fn create_address(sender: &[u8; 20], nonce: u64) -> [u8; 20] {
    let mut nonce_rlp = Vec::new();
    if nonce == 0 {
        nonce_rlp.push(0x80);
    } else if nonce < 0x80 {
        nonce_rlp.push(nonce as u8);
    } else {
        let bytes = nonce.to_be_bytes();
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(7);
        nonce_rlp.push(0x80 + (8 - first) as u8);
        nonce_rlp.extend_from_slice(&bytes[first..]);
    }
    let mut list = vec![0x94];
    list.extend_from_slice(sender);
    list.extend_from_slice(&nonce_rlp);
    let mut rlp = vec![0xc0 + list.len() as u8];
    rlp.extend_from_slice(&list);
    let h = quorate_core::chains::evm::keccak256(&[&rlp]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&h[12..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_addresses_match_known_deployments() {
        // Hardhat's first account deploys its first two contracts here.
        let deployer: [u8; 20] = hex::decode("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            hex::encode(create_address(&deployer, 0)),
            "5fbdb2315678afecb367f032d93f642f64180aa3"
        );
        assert_eq!(
            hex::encode(create_address(&deployer, 1)),
            "e7f1725e7734ce288f8367e1bb143e90bb3f0512"
        );
    }

    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"5\r\nab").is_err());
    }
}
