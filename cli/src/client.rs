//! Talking to a coordinator as the backend or as an admin.

use std::{path::Path, time::Duration};

use anyhow::Context;
use k256::ecdsa::SigningKey;
use quorate_wire::{
    admin::admin_service_client::AdminServiceClient, tls::TlsMaterial,
    withdrawal::withdrawal_service_client::WithdrawalServiceClient, MAX_MESSAGE_BYTES,
};
use tonic::transport::Channel;

use crate::setup::{ClientFile, Credentials};

/// Which credentials to present.
#[derive(Clone, Copy)]
pub enum As {
    /// The exchange backend.
    Backend,
    /// An administrator.
    Admin,
}

fn creds(c: &ClientFile, who: As) -> anyhow::Result<&Credentials> {
    match who {
        As::Backend => c.backend(),
        As::Admin => c.admin(),
    }
}

/// Opens a mutual-TLS channel to the first coordinator that answers ([`ClientFile::endpoints`]).
pub async fn channel(c: &ClientFile, who: As, addr: Option<&str>) -> anyhow::Result<Channel> {
    Ok(channels(c, who, addr)?.next_channel().await?.1)
}

/// The coordinators of a client file, to be tried in order.
pub struct Coordinators {
    endpoints: std::vec::IntoIter<(String, String)>,
    tls: TlsMaterial,
}

impl Coordinators {
    /// Connects to the next coordinator that answers; `(address, channel)`. The error names
    /// every one that did not.
    pub async fn next_channel(&mut self) -> anyhow::Result<(String, Channel)> {
        let mut failed = Vec::new();
        let config = self.tls.client_config()?;
        while let Some((addr, server_name)) = self.endpoints.next() {
            match quorate_wire::tls::connect(&addr, &server_name, config.clone()).await {
                Ok(ch) => return Ok((addr, ch)),
                Err(e) => {
                    if self.more() {
                        eprintln!("coordinator {addr} unreachable ({e}); trying the next");
                    }
                    failed.push(format!("{addr}: {e}"));
                }
            }
        }
        if failed.is_empty() {
            anyhow::bail!("no further coordinator to try");
        }
        anyhow::bail!("no coordinator could be reached ({})", failed.join("; "))
    }

    /// True when another coordinator is left to try.
    pub fn more(&self) -> bool {
        self.endpoints.len() > 0
    }
}

/// Every coordinator of `c` (or only `addr`), with `who`'s credentials.
pub fn channels(c: &ClientFile, who: As, addr: Option<&str>) -> anyhow::Result<Coordinators> {
    let cr = creds(c, who)?;
    let tls = TlsMaterial::load(&c.ca, &cr.cert, &cr.key)?;
    Ok(Coordinators {
        endpoints: c.endpoints(addr).into_iter(),
        tls,
    })
}

/// Fetches the coordinator's metrics (Prometheus text) with the admin certificate.
pub async fn metrics(c: &ClientFile, addr: Option<&str>) -> anyhow::Result<String> {
    let addr = addr
        .or(c.metrics.as_deref())
        .context("no metrics address: pass --addr, or start the devnet (it records it)")?;
    let admin = c.admin()?;
    let tls = TlsMaterial::load(&c.ca, &admin.cert, &admin.key)?;
    quorate_wire::metrics::scrape(addr, &c.server_name, tls.metrics_client_config()?)
        .await
        .map_err(|e| anyhow::anyhow!(e))
}

/// A withdrawal client.
pub async fn withdrawals(
    c: &ClientFile,
    addr: Option<&str>,
) -> anyhow::Result<WithdrawalServiceClient<Channel>> {
    Ok(
        WithdrawalServiceClient::new(channel(c, As::Backend, addr).await?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
    )
}

/// Largest answer an admin client accepts.
pub const ADMIN_MAX_ANSWER: usize = 64 << 20;

/// An admin client.
pub async fn admin(
    c: &ClientFile,
    addr: Option<&str>,
) -> anyhow::Result<AdminServiceClient<Channel>> {
    // Governance answers (a policy page with a large whitelist) may exceed the request limit;
    // the desk verifies every byte it gets, so a large answer is work, not a risk.
    Ok(AdminServiceClient::new(channel(c, As::Admin, addr).await?)
        .max_decoding_message_size(ADMIN_MAX_ANSWER))
}

/// Reads a hex secp256k1 signing key file.
pub fn signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    let bytes = zeroize::Zeroizing::new(
        hex::decode(text.trim()).with_context(|| format!("{}: not hex", path.display()))?,
    );
    SigningKey::from_slice(&bytes)
        .with_context(|| format!("{}: not a secp256k1 key", path.display()))
}

/// Waits until the coordinator reports every signer connected, up to `limit`.
pub async fn wait_for_signers(
    c: &ClientFile,
    addr: Option<&str>,
    limit: Duration,
) -> anyhow::Result<quorate_wire::admin::ClusterStatus> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last_err: String;
    loop {
        match admin(c, addr).await {
            Ok(mut a) => match a
                .get_cluster_status(quorate_wire::admin::GetClusterStatusRequest {})
                .await
            {
                Ok(s) => {
                    let s = s.into_inner();
                    if s.signers.iter().all(|x| x.connected) {
                        return Ok(s);
                    }
                    let waiting: Vec<_> = s
                        .signers
                        .iter()
                        .filter(|x| !x.connected)
                        .map(|x| x.name.clone())
                        .collect();
                    last_err = format!("waiting for {}", waiting.join(", "));
                }
                Err(e) => last_err = e.to_string(),
            },
            Err(e) => last_err = format!("{e:#}"),
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("signers did not all connect in {limit:?}: {last_err}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
