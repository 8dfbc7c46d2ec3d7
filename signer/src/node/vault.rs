//! Vault administration messages (docs/evm.md): the signer signs a key rotation or an on-chain
//! cap only when its own policy in force lists exactly that message for the chain and the
//! vault's admin nonce. The request names only (chain, nonce); the message comes from the
//! policy, never from the coordinator.

use quorate_core::{
    audit::{self, Event},
    link::{Answer, SignRequest, VaultActionRef},
    message::vault_admin,
    refusal::{Refusal, Rule},
};
use tracing::{info, warn};

use super::{lock, LinkId, Node};

impl Node {
    pub(super) fn sign_vault_action(
        &self,
        link: LinkId,
        r: &SignRequest,
        action: &VaultActionRef,
    ) -> Result<Answer, Refusal> {
        let key = self.secp.key_at(r.key_epoch)?;
        let sid = r.session_id;
        // The nonce leaves the store before any check, whatever the outcome (S4); a request
        // that did not convert at the link's edge took none and made no share.
        let (nonces, own) = lock(&self.secp.nonces)
            .of(link)
            .take(&sid, self.mono_ms())?;
        if !r.intent.is_empty() || !r.backend_signature.is_empty() || !r.approvals.is_empty() {
            return Err(Refusal::permanent(
                Rule::BadRequest,
                "a vault action request carries no intent, backend signature or approvals",
            ));
        }
        let chain = action
            .chain
            .parse()
            .map_err(|e| Refusal::permanent(Rule::BadRequest, format!("chain: {e}")))?;
        if self.locally_frozen() {
            return Err(Refusal::temporary(
                Rule::PolicyFrozen,
                format!(
                    "signer {} is stopped by its operator (local freeze)",
                    self.name
                ),
            ));
        }
        let admin = {
            let mut guard = lock(&self.policy);
            let now = self.now_ms();
            self.refresh_policy(&mut guard, now)?;
            let state = guard
                .state
                .as_ref()
                .ok_or_else(|| Refusal::temporary(Rule::PolicyMissing, "no policy installed"))?;
            vault_admin(state.active(), chain, action.nonce)
        }
        .inspect_err(|refused| {
            warn!(signer = %self.name, rule = %refused.rule, reason = %refused.reason, "refused to sign a vault action");
        })?;
        let message = admin.message();
        let share = self.sign_policy_message::<super::Secp>(
            &r.signing_package,
            &message,
            &own,
            nonces,
            &key,
        )?;
        // On disk before the share leaves: no record, no share.
        self.audit_before(
            Event::new(audit::kind::VAULT_SHARE_RELEASED)
                .with("chain", chain.as_str())
                .with("nonce", action.nonce.to_string())
                .with("action", admin.describe())
                .with("message", hex::encode(message))
                .with("session", hex::encode(sid))
                .with(
                    "commitment",
                    hex::encode(own.serialize().unwrap_or_default()),
                ),
        )?;
        info!(signer = %self.name, chain = %chain.as_str(), nonce = action.nonce, "vault action share released");
        Ok(Answer::Sign {
            share: share.serialize(),
        })
    }
}
