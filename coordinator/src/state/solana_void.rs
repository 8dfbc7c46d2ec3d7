//! Voiding a Solana durable nonce (docs/solana.md): the coordinator only asks; each signer
//! checks the admin's signature and the pool against its own policy and builds the message
//! itself.

use quorate_core::{
    audit::{self, Event},
    chains::solana,
    link::{SignRequest, SolanaVoid},
    message::solana_void,
    policy::AdminSignature,
    refusal::{Refusal, Rule},
};
use sha2::{Digest, Sha256};
use tracing::info;

use super::Coordinator;

/// A signed void: the transaction, its message and signature, and who signed.
pub struct Voided {
    /// The serialized transaction.
    pub transaction: Vec<u8>,
    /// The message the group signed.
    pub message: Vec<u8>,
    /// The group's Ed25519 signature.
    pub signature: Vec<u8>,
    /// Identifiers of the signers whose shares made it.
    pub signers: Vec<u16>,
}

impl Coordinator {
    /// Gathers the Ed25519 group's signature of a transaction that advances `account` past
    /// `nonce`.
    pub async fn void_solana_nonce(
        &self,
        account: [u8; 32],
        nonce: [u8; 32],
        approval: AdminSignature,
    ) -> Result<Voided, Refusal> {
        let wallet = self.solana_wallet().ok_or_else(|| {
            Refusal::temporary(
                Rule::NoGroupKey,
                "no ed25519 group key yet: run DKG for it first",
            )
        })?;
        // The coordinator's own copy gives the early answer; the signers decide.
        let message = self
            .policy
            .with_active(|doc| solana_void(doc, &wallet, &account, &nonce, &approval))??;
        let request = SignRequest {
            solana_void: Some(SolanaVoid {
                nonce_account: account,
                nonce_value: nonce,
                approval: Some(approval.clone()),
            }),
            ..Default::default()
        };
        let name = solana::address_text(&account);
        let (signature, signers) = self
            .gather::<super::Ed>(&format!("solana-void-{name}"), &message, &request)
            .await?;
        let sig: [u8; 64] = signature
            .as_slice()
            .try_into()
            .map_err(|_| Refusal::temporary(Rule::Internal, "an Ed25519 signature is 64 bytes"))?;
        let by: Vec<String> = signers.iter().map(u16::to_string).collect();
        self.audit(
            Event::new(audit::kind::SOLANA_NONCE_VOIDED)
                .with("nonce_account", &name)
                .with("nonce", solana::address_text(&nonce))
                .with("admin", approval.admin.to_string())
                .with("message", hex::encode(&message))
                .with("signers", by.join(","))
                .with("signature_sha256", hex::encode(Sha256::digest(sig))),
        );
        info!(nonce_account = %name, "Solana nonce void signed");
        Ok(Voided {
            transaction: solana::transaction(&message, &sig),
            message,
            signature,
            signers,
        })
    }
}
