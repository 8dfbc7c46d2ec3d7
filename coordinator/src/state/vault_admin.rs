//! Vault administration (docs/evm.md): a key rotation or an on-chain cap that the policy in
//! force lists, signed by a quorum. The coordinator only asks; each signer computes the
//! message from its own policy and refuses one it does not list.

use quorate_core::{
    address::Chain,
    audit::{self, Event},
    link::{SignRequest, VaultActionRef},
    message::VaultAdmin,
    refusal::Refusal,
};
use sha2::{Digest, Sha256};
use tracing::info;

use super::Coordinator;

impl Coordinator {
    /// Gathers the group's signature of the vault action at (`chain`, `nonce`).
    pub async fn sign_vault_action(
        &self,
        chain: Chain,
        nonce: u64,
    ) -> Result<(VaultAdmin, Vec<u8>, Vec<u16>), Refusal> {
        // The coordinator's own copy gives the early answer; the signers decide.
        let admin = self.policy.vault_admin(chain, nonce)?;
        let message = admin.message();
        let request = SignRequest {
            vault_action: Some(VaultActionRef {
                chain: chain.as_str().to_string(),
                nonce,
            }),
            ..Default::default()
        };
        let label = format!("vault-action-{}-{nonce}", chain.as_str());
        let (signature, signers) = self
            .gather::<super::Secp>(&label, &message, &request)
            .await?;
        let by: Vec<String> = signers.iter().map(u16::to_string).collect();
        self.audit(
            Event::new(audit::kind::VAULT_ACTION_SIGNED)
                .with("chain", chain.as_str())
                .with("nonce", nonce.to_string())
                .with("action", admin.describe())
                .with("message", hex::encode(message))
                .with("signers", by.join(","))
                .with("signature_sha256", hex::encode(Sha256::digest(&signature))),
        );
        info!(chain = %chain.as_str(), nonce, action = %admin.describe(), "vault action signed");
        Ok((admin, signature, signers))
    }
}
