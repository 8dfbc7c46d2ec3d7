//! The client commands: submit, get, verify, status, dkg.

use std::time::Duration;

use anyhow::{bail, Context};
use quorate_core::{
    backend, fingerprint::group_key_fingerprint, intent::WithdrawalIntent, message::Scheme,
};
use quorate_wire::{admin as apb, convert::intent_to_proto, withdrawal as pb, RULE_METADATA_KEY};
use serde_json::json;

use crate::{client, setup::ClientFile};

/// Flags of `quorate submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Chain: ethereum, polygon, bitcoin, bitcoin-testnet, tron, solana.
    #[arg(long)]
    pub chain: String,
    /// Asset symbol, e.g. ETH.
    #[arg(long)]
    pub asset: String,
    /// Destination address.
    #[arg(long)]
    pub to: String,
    /// Amount in base units (decimal integer).
    #[arg(long)]
    pub amount: String,
    /// Withdrawal id (idempotency key); random if omitted.
    #[arg(long)]
    pub id: Option<String>,
    /// Customer reference.
    #[arg(long)]
    pub customer_ref: Option<String>,
    /// How long the intent stays valid.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// How long to wait for the outcome.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Solana: a durable-nonce account of the policy's pool (base58); with --nonce-value.
    #[arg(long, requires = "nonce_value", conflicts_with = "blockhash")]
    pub nonce_account: Option<String>,
    /// Solana: the nonce account's current nonce (base58).
    #[arg(long, requires = "nonce_account")]
    pub nonce_value: Option<String>,
    /// Solana: a recent blockhash (base58). Without it or a nonce, a Solana withdrawal gets a
    /// random one: the devnet has no Solana node, so its transactions are for inspection.
    #[arg(long)]
    pub blockhash: Option<String>,
    /// Solana tokens: create the destination's associated token account if it is missing.
    #[arg(long)]
    pub create_token_account: bool,
    /// Solana: compute-unit limit (priority fee), under the policy's cap.
    #[arg(long)]
    pub compute_unit_limit: Option<u32>,
    /// Solana: compute-unit price in micro-lamports (priority fee), under the policy's cap.
    #[arg(long)]
    pub compute_unit_price: Option<u64>,
}

impl SubmitArgs {
    /// The Solana terms these flags give, for a Solana withdrawal.
    fn solana_terms(&self) -> anyhow::Result<Option<pb::SolanaTerms>> {
        if self.chain != "solana" {
            anyhow::ensure!(
                self.nonce_account.is_none()
                    && self.blockhash.is_none()
                    && !self.create_token_account
                    && self.compute_unit_limit.is_none()
                    && self.compute_unit_price.is_none(),
                "the Solana flags are for --chain solana"
            );
            return Ok(None);
        }
        let random = || bs58::encode(rand::random::<[u8; 32]>()).into_string();
        let recent_blockhash = match (&self.nonce_account, &self.blockhash) {
            (Some(_), _) => String::new(),
            (None, Some(h)) => h.clone(),
            (None, None) => random(),
        };
        Ok(Some(pb::SolanaTerms {
            nonce_account: self.nonce_account.clone().unwrap_or_default(),
            nonce_value: self.nonce_value.clone().unwrap_or_default(),
            recent_blockhash,
            create_destination_account: self.create_token_account,
            compute_unit_limit: self.compute_unit_limit.unwrap_or(0),
            compute_unit_price: self.compute_unit_price.unwrap_or(0),
        }))
    }
}

/// Unix milliseconds now, by the system clock.
pub fn now_ms() -> u64 {
    quorate_wire::clock::unix_ms()
}

fn status_name(s: i32) -> &'static str {
    match pb::Status::try_from(s).unwrap_or(pb::Status::Unspecified) {
        pb::Status::Unspecified => "unspecified",
        pb::Status::Received => "received",
        pb::Status::Signing => "signing",
        pb::Status::Signed => "signed",
        pb::Status::Refused => "refused",
        pb::Status::Failed => "failed",
        pb::Status::Expired => "expired",
        pb::Status::PendingApproval => "pending_approval",
    }
}

/// JSON form of a withdrawal.
pub fn withdrawal_json(w: &pb::Withdrawal) -> serde_json::Value {
    let mut v = json!({
        "id": w.id,
        "status": status_name(w.status),
        "message": hex::encode(&w.message),
        "digest": hex::encode(&w.digest),
        "group_public_key": hex::encode(&w.group_public_key),
        "signature": hex::encode(&w.signature),
        "signers": w.signers,
        "rule": w.rule,
        "reason": w.reason,
        "retryable": w.retryable,
    });
    if let Some(call) = &w.evm_call {
        v["evm_call"] = json!({ "to": call.to, "data": format!("0x{}", hex::encode(&call.data)) });
    }
    if !w.solana_transaction.is_empty() {
        v["solana_transaction"] = json!(w.solana_transaction);
    }
    v
}

/// Checks a Solana transaction the coordinator returned: exactly the signed message with the
/// returned signature, paid by the group key, valid under it, and made valid once by the
/// intent's own nonce or blockhash.
fn check_solana_transaction(intent: &WithdrawalIntent, w: &pb::Withdrawal) -> anyhow::Result<()> {
    use base64::Engine;
    let tx = base64::engine::general_purpose::STANDARD
        .decode(&w.solana_transaction)
        .context("the coordinator's Solana transaction is not base64")?;
    let sig: [u8; 64] = w
        .signature
        .as_slice()
        .try_into()
        .context("a Solana signature is 64 bytes")?;
    anyhow::ensure!(
        tx == quorate_core::chains::solana::transaction(&w.message, &sig),
        "the coordinator's Solana transaction is not the signed message with its signature; do not send it"
    );
    // Header (3 bytes), one-byte account count, then the fee payer.
    anyhow::ensure!(
        w.message.get(4..36) == Some(w.group_public_key.as_slice()),
        "the Solana transaction's fee payer is not the group key; do not send it"
    );
    let key = frost_ed25519::VerifyingKey::deserialize(&w.group_public_key)
        .map_err(|e| anyhow::anyhow!("group key: {e}"))?;
    let signature = frost_ed25519::Signature::deserialize(&sig)
        .map_err(|e| anyhow::anyhow!("signature: {e}"))?;
    key.verify(&w.message, &signature).map_err(|_| {
        anyhow::anyhow!("the Solana transaction's signature does not verify; do not send it")
    })?;
    let accounts = usize::from(w.message[3]);
    let hash = w.message.get(4 + 32 * accounts..4 + 32 * accounts + 32);
    let want = intent.solana.map(|t| t.lifetime.blockhash());
    anyhow::ensure!(
        hash.is_some() && hash == want.as_ref().map(|h| h.as_slice()),
        "the Solana transaction is not made valid by this withdrawal's nonce or blockhash; do not send it"
    );
    Ok(())
}

fn status_of_code(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::InvalidArgument => "invalid",
        tonic::Code::PermissionDenied
        | tonic::Code::AlreadyExists
        | tonic::Code::ResourceExhausted => "refused",
        tonic::Code::Unavailable => "failed",
        tonic::Code::DeadlineExceeded => "timeout",
        _ => "error",
    }
}

/// Checks that a vault call the coordinator returned pays exactly `intent` with the signature
/// it returned: the id, destination, amount and deadline come from the intent itself; only the
/// token and the vault come from the policy (which the vault's own digest then binds).
fn check_vault_call(
    intent: &WithdrawalIntent,
    signature: &[u8],
    data: &[u8],
) -> anyhow::Result<()> {
    use quorate_core::chains::evm::{withdraw_calldata, VaultWithdrawal};
    let token: [u8; 20] = data
        .get(4 + 32 + 12..4 + 64)
        .and_then(|t| t.try_into().ok())
        .context("the coordinator's vault call is too short")?;
    let w = VaultWithdrawal::from_intent(intent, token).map_err(|e| anyhow::anyhow!("{e}"))?;
    let expected = withdraw_calldata(&w, signature).map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        expected == data,
        "the coordinator's vault call does not pay this withdrawal with the signature it returned; do not send it"
    );
    Ok(())
}

/// Whether a call that ended with `code` is worth sending to another coordinator: it could
/// not be reached, dropped the call, or cannot sign now.
fn fails_over(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

/// Runs `quorate submit`; returns the exit code.
pub async fn submit(c: &ClientFile, addr: Option<&str>, a: SubmitArgs) -> anyhow::Result<u8> {
    let now = now_ms();
    let id =
        a.id.clone()
            .unwrap_or_else(|| format!("wd-{now}-{:08x}", rand::random::<u32>()));
    let intent = WithdrawalIntent::from_parts(
        &id,
        &a.chain,
        &a.asset,
        &a.to,
        &a.amount,
        now,
        now + a.ttl.as_millis() as u64,
        a.customer_ref.as_deref(),
    )
    .context("invalid withdrawal")?;
    let intent = match a.solana_terms()? {
        Some(t) => intent
            .with_solana(quorate_wire::convert::solana_terms_from_proto(&t)?)
            .context("invalid withdrawal")?,
        None => intent,
    };
    let key = client::signing_key(&c.backend()?.signing_key)?;
    let backend_signature = backend::sign(&key, &intent.digest());
    let request = pb::SubmitRequest {
        intent: Some(intent_to_proto(&intent)),
        backend_signature,
    };
    // The same signed intent to each coordinator in turn, while one cannot be reached or
    // cannot sign now: every signer binds the id to this intent, so nothing is signed twice
    // for different payouts, and a withdrawal signed through two is counted once.
    let mut coordinators = client::channels(c, client::As::Backend, addr)?;
    let outcome = loop {
        let (at, channel) = coordinators.next_channel().await?;
        let mut w = pb::withdrawal_service_client::WithdrawalServiceClient::new(channel)
            .max_decoding_message_size(quorate_wire::MAX_MESSAGE_BYTES);
        let mut req = tonic::Request::new(request.clone());
        req.set_timeout(a.timeout);
        match w.submit(req).await {
            Err(s) if coordinators.more() && fails_over(s.code()) => {
                eprintln!(
                    "coordinator {at}: {:?}: {}; sending the same request to the next",
                    s.code(),
                    s.message()
                );
            }
            other => break other,
        }
    };
    match outcome {
        Ok(resp) => {
            let w = resp.into_inner();
            anyhow::ensure!(
                w.digest == intent.digest(),
                "the coordinator answered for another intent than the one submitted (digest {}); do not use its answer",
                hex::encode(&w.digest)
            );
            if let Some(call) = &w.evm_call {
                check_vault_call(&intent, &w.signature, &call.data)?;
            }
            if !w.solana_transaction.is_empty() {
                check_solana_transaction(&intent, &w)?;
            }
            if a.json {
                println!("{}", withdrawal_json(&w));
            } else {
                println!("withdrawal {}: {}", w.id, status_name(w.status));
                println!("  message   {}", hex::encode(&w.message));
                if !w.signature.is_empty() {
                    println!("  signature {}", hex::encode(&w.signature));
                    println!("  group key {}", hex::encode(&w.group_public_key));
                    println!("  signers   {:?}", w.signers);
                }
                if let Some(call) = &w.evm_call {
                    println!("  send to   {} (any funded account pays the gas)", call.to);
                    println!("  calldata  0x{}", hex::encode(&call.data));
                }
                if !w.solana_transaction.is_empty() {
                    println!(
                        "  solana    {} (sendTransaction, base64)",
                        w.solana_transaction
                    );
                }
            }
            Ok(if w.status == pb::Status::Signed as i32 {
                0
            } else {
                3
            })
        }
        Err(s) => {
            let rule = s
                .metadata()
                .get(RULE_METADATA_KEY)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let reason = s.message().to_string();
            // The standard details: a RetryInfo is there exactly when retrying can help, with
            // the time until it can.
            let (details, retry_after) = {
                use tonic_types::StatusExt;
                (
                    s.get_details_error_info().is_some(),
                    s.get_details_retry_info()
                        .and_then(|r| r.retry_delay)
                        .map(|d| d.as_millis() as u64),
                )
            };
            // Without details (a transport error, an older coordinator), the code decides.
            let retryable = retry_after.is_some()
                || (!details
                    && matches!(
                        s.code(),
                        tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                    ));
            if a.json {
                println!(
                    "{}",
                    json!({
                        "id": id,
                        "status": status_of_code(s.code()),
                        "code": format!("{:?}", s.code()),
                        "rule": rule,
                        "reason": reason,
                        "retryable": retryable,
                        "retry_after_ms": retry_after,
                        "digest": intent.digest_hex(),
                    })
                );
            } else {
                eprintln!(
                    "withdrawal {id}: {} ({:?}): {reason}",
                    status_of_code(s.code()),
                    s.code()
                );
                if let Some(ms) = retry_after {
                    eprintln!(
                        "  retry the same request in {}",
                        humantime::format_duration(std::time::Duration::from_secs(
                            ms.div_ceil(1000)
                        ))
                    );
                }
            }
            Ok(2)
        }
    }
}

/// Runs `quorate get`.
pub async fn get(c: &ClientFile, addr: Option<&str>, id: String) -> anyhow::Result<u8> {
    let mut w = client::withdrawals(c, addr).await?;
    match w.get(pb::GetRequest { id }).await {
        Ok(r) => {
            println!("{}", withdrawal_json(&r.into_inner()));
            Ok(0)
        }
        Err(s) => {
            eprintln!("{:?}: {}", s.code(), s.message());
            Ok(2)
        }
    }
}

/// Checks an RFC 9591 FROST(secp256k1, SHA-256) signature offline.
pub fn verify(group_key: &str, message: &str, signature: &str) -> anyhow::Result<bool> {
    let gk = hex::decode(group_key.trim()).context("group key: not hex")?;
    let msg = hex::decode(message.trim()).context("message: not hex")?;
    let sig = hex::decode(signature.trim()).context("signature: not hex")?;
    if gk.len() == 32 {
        // The Ed25519 group (Solana): a 32-byte key, a 64-byte signature.
        if sig.len() != 64 {
            bail!(
                "an Ed25519 signature is 64 bytes (R then z), got {}",
                sig.len()
            );
        }
        let vk = frost_ed25519::VerifyingKey::deserialize(&gk).context("group key: not a point")?;
        let sig = frost_ed25519::Signature::deserialize(&sig).context("signature: malformed")?;
        return Ok(vk.verify(&msg, &sig).is_ok());
    }
    if gk.len() != 33 {
        bail!(
            "group key must be 33 bytes (compressed secp256k1) or 32 (Ed25519), got {}",
            gk.len()
        );
    }
    if sig.len() != 65 {
        bail!("signature must be 65 bytes (R then z), got {}", sig.len());
    }
    let vk = frost_secp256k1::VerifyingKey::deserialize(&gk).context("group key: not a point")?;
    let sig = frost_secp256k1::Signature::deserialize(&sig).context("signature: malformed")?;
    Ok(vk.verify(&msg, &sig).is_ok())
}

/// Runs `quorate status`.
pub async fn status(c: &ClientFile, addr: Option<&str>, json_out: bool) -> anyhow::Result<u8> {
    let mut a = client::admin(c, addr).await?;
    let s = a
        .get_cluster_status(apb::GetClusterStatusRequest {})
        .await?
        .into_inner();
    let epoch = |scheme: &str| {
        s.group_keys
            .iter()
            .find(|k| k.scheme == scheme)
            .map_or(0, |k| k.epoch)
    };
    let able = |x: &apb::SignerStatus| {
        x.connected
            && !x.retired
            && !x.group_public_key.is_empty()
            && x.group_public_key == s.group_public_key
            && x.key_epoch == epoch("secp256k1")
    };
    if json_out {
        println!(
            "{}",
            json!({
                "threshold": s.threshold,
                "group_public_key": hex::encode(&s.group_public_key),
                "group_key_fingerprint": s.group_key_fingerprint,
                "manifest_hash": s.manifest_hash,
                "version": s.version,
                "group_keys": s.group_keys.iter().map(|k| json!({
                    "scheme": k.scheme,
                    "public_key": hex::encode(&k.public_key),
                    "fingerprint": k.fingerprint,
                    "address": k.address,
                })).collect::<Vec<_>>(),
                "signers": s.signers.iter().map(|x| json!({
                    "name": x.name,
                    "identifier": x.identifier,
                    "connected": x.connected,
                    "identity_key": hex::encode(&x.identity_key),
                    "certificate_sha256": x.certificate_sha256,
                    "group_public_key": hex::encode(&x.group_public_key),
                    "ed25519_group_public_key": hex::encode(&x.ed25519_group_public_key),
                    "key_epoch": x.key_epoch,
                    "ed25519_key_epoch": x.ed25519_key_epoch,
                    "retired": x.retired,
                    // Connected, not retired, and holding a share of the cluster's (secp256k1)
                    // group key at the epoch signatures are verified at.
                    "can_sign": able(x),
                })).collect::<Vec<_>>(),
            })
        );
        return Ok(0);
    }
    println!("coordinator {} (version {})", c.coordinator, s.version);
    println!("manifest    {}", s.manifest_hash);
    println!("threshold   {} of {}", s.threshold, s.signers.len());
    if s.group_public_key.is_empty() {
        println!("group key   none yet (run `quorate dkg`)");
    } else {
        println!("group key   {}", hex::encode(&s.group_public_key));
        println!(
            "fingerprint {} (key epoch {})",
            s.group_key_fingerprint,
            epoch("secp256k1")
        );
    }
    match s.group_keys.iter().find(|k| k.scheme == "ed25519") {
        None => println!("ed25519     none yet (run `quorate dkg --scheme ed25519`)"),
        Some(k) => {
            println!(
                "ed25519     {} ({}, key epoch {})",
                hex::encode(&k.public_key),
                k.fingerprint,
                k.epoch
            );
            println!(
                "solana      {} (the wallet: fee payer and source)",
                k.address
            );
        }
    }
    let mut can_sign = 0usize;
    for x in &s.signers {
        let ed = s
            .group_keys
            .iter()
            .find(|k| k.scheme == "ed25519")
            .map(|k| k.public_key.as_slice())
            .unwrap_or_default();
        can_sign += usize::from(able(x));
        let agrees = match (
            x.group_public_key.as_slice(),
            x.ed25519_group_public_key.as_slice(),
        ) {
            ([], _) => "no key",
            (k, _) if k != s.group_public_key => "DIFFERENT group key",
            (_, []) if !ed.is_empty() => "same group key; no ed25519 key",
            (_, []) => "same group key",
            (_, e) if e != ed => "DIFFERENT ed25519 group key",
            _ => "same group keys (secp256k1, ed25519)",
        };
        let agrees = if x.retired {
            format!("{agrees}; RETIRED by the policy")
        } else if x.connected && !x.group_public_key.is_empty() && x.key_epoch != epoch("secp256k1")
        {
            format!(
                "{agrees}; share of key epoch {} (the group's is {}): repair it",
                x.key_epoch,
                epoch("secp256k1")
            )
        } else {
            agrees.to_string()
        };
        println!(
            "  {:<10} id {:<3} {:<12} {}",
            x.name,
            x.identifier,
            if x.connected {
                "connected"
            } else {
                "disconnected"
            },
            if x.connected { agrees.as_str() } else { "" }
        );
    }
    if s.group_public_key.is_empty() {
        println!("can sign    no: no group key yet");
    } else {
        println!(
            "can sign    {} {can_sign} of {} signers connected with the group key; {} needed",
            if can_sign >= s.threshold as usize {
                "yes:"
            } else {
                "NO:"
            },
            s.signers.len(),
            s.threshold
        );
    }
    Ok(0)
}

/// Runs `quorate dkg`: starts a DKG for the `scheme` group and follows it; returns the group
/// key.
pub async fn dkg(
    c: &ClientFile,
    addr: Option<&str>,
    quiet: bool,
    scheme: Scheme,
) -> anyhow::Result<Vec<u8>> {
    let mut a = client::admin(c, addr).await?;
    let started = a
        .start_dkg(apb::StartDkgRequest {
            scheme: scheme.as_str().into(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let mut stream = a.watch_dkg(apb::WatchDkgRequest {}).await?.into_inner();
    while let Some(st) = stream.message().await? {
        // Only this DKG's progress (the stream opens with the latest status).
        if st.session_id != started.session_id {
            continue;
        }
        let phase = apb::DkgPhase::try_from(st.phase).unwrap_or(apb::DkgPhase::Unspecified);
        if !quiet {
            println!("dkg: {}", st.detail);
        }
        match phase {
            apb::DkgPhase::Done => {
                if !quiet {
                    println!(
                        "group key   {} ({scheme})",
                        hex::encode(&st.group_public_key)
                    );
                    println!(
                        "fingerprint {}",
                        group_key_fingerprint(&st.group_public_key)
                    );
                    if scheme == Scheme::Ed25519 {
                        println!(
                            "solana      {}",
                            bs58::encode(&st.group_public_key).into_string()
                        );
                    }
                }
                return Ok(st.group_public_key);
            }
            apb::DkgPhase::Failed => {
                bail!("DKG failed: {} (culprits {:?})", st.detail, st.culprits)
            }
            _ => {}
        }
    }
    bail!("DKG status stream ended early")
}

/// Runs `quorate repair`: rebuilds `signer`'s share of the `scheme` group and prints what an
/// operator compares: the fingerprint (unchanged since DKG) and the helpers.
pub async fn repair(
    c: &ClientFile,
    addr: Option<&str>,
    signer: &str,
    scheme: Scheme,
    helpers: Vec<String>,
    json_out: bool,
) -> anyhow::Result<u8> {
    let mut a = client::admin(c, addr).await?;
    let r = a
        .repair_share(apb::RepairShareRequest {
            signer: signer.into(),
            scheme: scheme.as_str().into(),
            helpers,
        })
        .await
        .map_err(|s| anyhow::anyhow!("repair refused: {}", s.message()))?
        .into_inner();
    if json_out {
        println!(
            "{}",
            json!({
                "signer": signer,
                "scheme": r.scheme,
                "target": r.target,
                "helpers": r.helpers,
                "group_public_key": hex::encode(&r.group_public_key),
                "fingerprint": r.fingerprint,
                "verifying_share": hex::encode(&r.verifying_share),
                "epoch": r.epoch,
            })
        );
    } else {
        let helpers: Vec<String> = r.helpers.iter().map(u32::to_string).collect();
        println!(
            "repaired    {signer} (identifier {}), {} share, key epoch {}",
            r.target, r.scheme, r.epoch
        );
        println!("helpers     {}", helpers.join(", "));
        println!(
            "group key   {} (unchanged)",
            hex::encode(&r.group_public_key)
        );
        println!("fingerprint {}", r.fingerprint);
    }
    Ok(0)
}

/// Runs `quorate refresh`: renews every share of the `scheme` group and prints the new key
/// epoch and the (unchanged) fingerprint.
pub async fn refresh(
    c: &ClientFile,
    addr: Option<&str>,
    scheme: Scheme,
    json_out: bool,
) -> anyhow::Result<u8> {
    let mut a = client::admin(c, addr).await?;
    let r = a
        .refresh_shares(apb::RefreshSharesRequest {
            scheme: scheme.as_str().into(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("refresh refused: {}", s.message()))?
        .into_inner();
    if json_out {
        println!(
            "{}",
            json!({
                "scheme": r.scheme,
                "epoch": r.epoch,
                "participants": r.participants,
                "group_public_key": hex::encode(&r.group_public_key),
                "fingerprint": r.fingerprint,
            })
        );
    } else {
        let who: Vec<String> = r.participants.iter().map(u32::to_string).collect();
        println!("refreshed   {} shares, now key epoch {}", r.scheme, r.epoch);
        println!("signers     {}", who.join(", "));
        println!(
            "group key   {} (unchanged)",
            hex::encode(&r.group_public_key)
        );
        println!("fingerprint {}", r.fingerprint);
    }
    Ok(0)
}

/// Runs `quorate probe`: `count` sequential 1-unit withdrawals over one connection, timing each
/// from request to signed answer. Measures a running cluster; it is not a test.
pub async fn probe(
    c: &ClientFile,
    addr: Option<&str>,
    count: u32,
    json_out: bool,
) -> anyhow::Result<u8> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let key = client::signing_key(&c.backend()?.signing_key)?;
    let mut w = client::withdrawals(c, addr).await?;
    let run = format!("{:08x}", rand::random::<u32>());
    let mut lat = Vec::with_capacity(count as usize);
    let mut failures = 0u32;
    let started = std::time::Instant::now();
    for i in 0..count {
        let now = now_ms();
        let intent = WithdrawalIntent::from_parts(
            &format!("probe-{run}-{i}"),
            // The development policy sets no velocity limit on POL, so a probe of any length
            // measures signing rather than the limits.
            "polygon",
            "POL",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "1",
            now,
            now + 60_000,
            None,
        )?;
        let req = pb::SubmitRequest {
            intent: Some(intent_to_proto(&intent)),
            backend_signature: backend::sign(&key, &intent.digest()),
        };
        let t0 = std::time::Instant::now();
        match w.submit(req).await {
            Ok(r) if r.get_ref().status == pb::Status::Signed as i32 => lat.push(t0.elapsed()),
            Ok(_) => failures += 1,
            Err(s) => {
                if failures == 0 {
                    eprintln!("probe: first failure: {}", s.message());
                }
                failures += 1;
            }
        }
    }
    let total = started.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let idx = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[idx].as_secs_f64() * 1e3
    };
    let signed = lat.len();
    let mean = if signed == 0 {
        f64::NAN
    } else {
        lat.iter().map(|d| d.as_secs_f64()).sum::<f64>() * 1e3 / signed as f64
    };
    let max = lat
        .last()
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(f64::NAN);
    if json_out {
        println!(
            "{}",
            json!({
                "count": count, "signed": signed, "failed": failures,
                "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
                "max_ms": max, "mean_ms": mean,
                "throughput_per_s": signed as f64 / total.as_secs_f64(),
            })
        );
    } else {
        println!("{signed} of {count} signed ({failures} failed), sequential, one connection");
        println!(
            "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
            pct(0.5),
            pct(0.9),
            pct(0.99),
            max,
            mean
        );
        println!(
            "throughput {:.0} withdrawals/s",
            signed as f64 / total.as_secs_f64()
        );
    }
    Ok(if failures == 0 { 0 } else { 3 })
}
