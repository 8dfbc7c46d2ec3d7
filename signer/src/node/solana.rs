//! Solana durable nonces (docs/solana.md).
//!
//! A nonce value pays one withdrawal: the signer remembers, per nonce account, the last nonce
//! it signed or counted a withdrawal with, and refuses another withdrawal id on the same value
//! (it could never land, and would only be debited).
//!
//! A void: the Ed25519 group signs a transaction that only advances a nonce account of the
//! policy's pool, so that nothing signed with its current nonce can execute. The request names
//! the account and the nonce and carries one admin's signature over both; the message comes
//! from this signer's own policy and key, and the nonce must be one this signer saw a
//! withdrawal signed with (so an admin cannot spend the wallet's SOL on voids at will).

use quorate_core::{
    audit::{self, Event},
    chains::solana,
    message::{solana_void, ChainFormat, Scheme},
    refusal::{rule, Refusal},
    signing::{self, Gate},
};
use quorate_wire::{convert::policy::sig_from_proto, signer as pb};
use tracing::{info, warn};

use super::{groups, link_rule, lock, now_ms, scheme_of, session_id, storage, Node};

fn claim_key(account: &solana::Pubkey) -> String {
    format!("solana-nonce/{}", solana::address_text(account))
}

impl Node {
    /// The withdrawal id this signer last saw signed with `account`'s nonce, and that nonce.
    fn nonce_claim(&self, account: &solana::Pubkey) -> Result<Option<([u8; 32], String)>, Refusal> {
        let Some(v) = self.store.get_meta(&claim_key(account)).map_err(storage)? else {
            return Ok(None);
        };
        let nonce: [u8; 32] = v
            .get(..32)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| Refusal::permanent(link_rule::STORAGE, "a nonce claim is corrupt"))?;
        Ok(Some((
            nonce,
            String::from_utf8_lossy(&v[32..]).into_owned(),
        )))
    }

    /// Claims `nonce` of `account` for withdrawal `id` (idempotent for the same id). Called
    /// under the policy lock, so two withdrawals can never both claim one nonce. `notice`: the
    /// group signed it already (a ledger notice), so it is recorded, never refused.
    pub(super) fn claim_nonce(
        &self,
        account: &solana::Pubkey,
        nonce: &[u8; 32],
        id: &str,
        notice: bool,
    ) -> Result<(), Refusal> {
        if let Some((held, by)) = self.nonce_claim(account)? {
            if held == *nonce {
                if by == id || notice {
                    return Ok(());
                }
                return Err(Refusal::permanent(
                    rule::SOLANA_TERMS,
                    format!(
                        "nonce {} of account {} already signs withdrawal {by}: a nonce value pays one withdrawal; read the account's new nonce",
                        solana::address_text(nonce),
                        solana::address_text(account)
                    ),
                ));
            }
        }
        let mut value = nonce.to_vec();
        value.extend_from_slice(id.as_bytes());
        self.store
            .put_meta_durable(&claim_key(account), &value)
            .map_err(storage)
    }

    pub(super) fn sign_solana_void(
        &self,
        r: &pb::SignRequest,
        void: &pb::SolanaVoid,
    ) -> Result<pb::signer_message::Body, Refusal> {
        let group = &self.ed;
        let key = group.key()?;
        let sid = session_id(&r.session_id)?;
        // The nonce leaves the store first, whatever the outcome (S4).
        let (nonces, own) = lock(&group.nonces).take(&sid, self.mono_ms())?;
        let bad = |m: &str| Refusal::permanent(link_rule::BAD_REQUEST, m.to_string());
        if !r.intent.is_empty()
            || !r.backend_signature.is_empty()
            || !r.approvals.is_empty()
            || r.vault_action.is_some()
        {
            return Err(bad(
                "a void request carries no intent, backend signature, approvals or vault action",
            ));
        }
        if scheme_of(r.scheme)? != Scheme::Ed25519 {
            return Err(Refusal::permanent(
                rule::SCHEME_MISMATCH,
                "a Solana void is signed by the ed25519 group",
            ));
        }
        let account: [u8; 32] = void
            .nonce_account
            .as_slice()
            .try_into()
            .map_err(|_| bad("nonce_account: 32 bytes"))?;
        let nonce: [u8; 32] = void
            .nonce_value
            .as_slice()
            .try_into()
            .map_err(|_| bad("nonce_value: 32 bytes"))?;
        let approval = void
            .approval
            .as_ref()
            .map(sig_from_proto)
            .transpose()
            .map_err(|e| bad(&format!("approval: {e}")))?
            .ok_or_else(|| {
                Refusal::permanent(
                    rule::SOLANA_VOID_UNAPPROVED,
                    "a void needs an admin's signature",
                )
            })?;
        let wallet: [u8; 32] = self.ed25519_group_key().try_into().map_err(|_| {
            Refusal::temporary(rule::NO_KEY, "this signer has no ed25519 key share yet")
        })?;
        // No local-freeze check: a void only stops transactions, which is what a frozen
        // cluster wants.
        let message = {
            let mut guard = lock(&self.policy);
            self.refresh_policy(&mut guard, now_ms())?;
            let state = guard
                .state
                .as_ref()
                .ok_or_else(|| Refusal::temporary(rule::POLICY_MISSING, "no policy installed"))?;
            solana_void(state.active(), &wallet, &account, &nonce, &approval)
        }
        .inspect_err(|refused| {
            warn!(signer = %self.name, rule = %refused.rule, reason = %refused.reason, "refused to void a Solana nonce");
        })?;
        // Only a nonce some withdrawal was signed with: a void is for a signed, unsent one.
        match self.nonce_claim(&account)? {
            Some((held, _)) if held == nonce => {}
            _ => {
                return Err(Refusal::permanent(
                    rule::SOLANA_TERMS,
                    format!(
                        "this signer saw no withdrawal signed with nonce {} of account {}: nothing to void",
                        solana::address_text(&nonce),
                        solana::address_text(&account)
                    ),
                ))
            }
        }
        let no_intent = |_: &_| Ok(ChainFormat::IntentDigest);
        let gate = Gate {
            me: groups::frost_id::<groups::Ed>(self.me).map_err(|e| bad(&e))?,
            signers: &group.signer_ids,
            min_signers: usize::from(self.manifest.threshold),
            backend_keys: &[],
            format: &no_intent,
            now_ms: now_ms(),
            max_clock_skew_ms: self.max_clock_skew_ms,
        };
        let package = signing::check_package(&gate, &r.signing_package, &message, &own)?;
        let share = signing::sign_share(&package, nonces, &key)?;
        // On disk before the share leaves: no record, no share.
        self.audit_before(
            Event::new(audit::kind::SOLANA_NONCE_VOIDED)
                .with("nonce_account", solana::address_text(&account))
                .with("nonce", solana::address_text(&nonce))
                .with("admin", approval.admin.to_string())
                .with("message", hex::encode(&message))
                .with("session", hex::encode(sid))
                .with(
                    "commitment",
                    hex::encode(own.serialize().unwrap_or_default()),
                ),
        )?;
        info!(signer = %self.name, nonce_account = %solana::address_text(&account), "Solana nonce void share released");
        Ok(pb::signer_message::Body::Sign(pb::SignResponse {
            share: share.serialize(),
        }))
    }
}
