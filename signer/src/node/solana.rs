//! Solana durable nonces (docs/solana.md).
//!
//! A nonce value pays one withdrawal: the signer records, once and for good, which withdrawal
//! id it first signed or counted with each (account, nonce), and refuses another id on the same
//! value while that withdrawal's intent is valid (it could never land, and would only be
//! debited). After the intent expires its withdrawal can no longer be signed, so the value is
//! free for another id (whichever transaction lands first advances the nonce; the chain pays
//! one). Records are never overwritten, so no replayed notice or re-sign can roll one back.
//!
//! A void: the Ed25519 group signs a transaction that only advances a nonce account of the
//! policy's pool, so that nothing signed with its current nonce can execute. The request names
//! the account and the nonce and carries one admin's signature over both; the message comes
//! from this signer's own policy and key, and the nonce must be one this signer saw a
//! withdrawal signed with (so an admin cannot spend the wallet's SOL on voids at will).

use quorate_core::{
    audit::{self, Event},
    chains::solana,
    link::{Answer, SignRequest, SolanaVoid},
    message::{solana_void, Scheme},
    refusal::{Refusal, Rule},
};
use tracing::{info, warn};

use super::{groups, lock, storage, LinkId, Node};

fn claim_key(account: &solana::Pubkey, nonce: &[u8; 32]) -> String {
    format!(
        "solana-nonce/{}/{}",
        solana::address_text(account),
        solana::address_text(nonce)
    )
}

/// Who first used a nonce value here: (the intent's expiry, unix ms; the withdrawal id).
type Claim = (u64, String);

impl Node {
    fn nonce_claim(
        &self,
        account: &solana::Pubkey,
        nonce: &[u8; 32],
    ) -> Result<Option<Claim>, Refusal> {
        let Some(v) = self
            .store
            .get_meta(&claim_key(account, nonce))
            .map_err(storage)?
        else {
            return Ok(None);
        };
        let expires: [u8; 8] = v
            .get(..8)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| Refusal::permanent(Rule::SignerStorage, "a nonce claim is corrupt"))?;
        Ok(Some((
            u64::from_be_bytes(expires),
            String::from_utf8_lossy(&v[8..]).into_owned(),
        )))
    }

    /// Records that withdrawal `id` (valid until `expires_at_ms`) uses `nonce` of `account`,
    /// unless a record exists; refuses another id while the recorded one's intent is valid.
    /// Called under the policy lock, so two withdrawals can never both take one nonce.
    /// `notice`: the group signed it already (a ledger notice), so it is never refused.
    pub(super) fn claim_nonce(
        &self,
        account: &solana::Pubkey,
        nonce: &[u8; 32],
        id: &str,
        expires_at_ms: u64,
        notice: bool,
    ) -> Result<(), Refusal> {
        let mut value = expires_at_ms.to_be_bytes().to_vec();
        value.extend_from_slice(id.as_bytes());
        let key = claim_key(account, nonce);
        if self.store.put_meta_once(&key, &value).map_err(storage)? {
            return Ok(());
        }
        let Some((expires, by)) = self.nonce_claim(account, nonce)? else {
            return Err(Refusal::temporary(
                Rule::SignerStorage,
                "a nonce claim vanished",
            ));
        };
        if by == id || notice || self.now_ms() >= expires {
            return Ok(());
        }
        Err(Refusal::permanent(
            Rule::SolanaTerms,
            format!(
                "nonce {} of account {} already signs withdrawal {by} (valid until {expires} ms): a nonce value pays one withdrawal; read the account's new nonce",
                solana::address_text(nonce),
                solana::address_text(account)
            ),
        ))
    }

    pub(super) fn sign_solana_void(
        &self,
        link: LinkId,
        r: &SignRequest,
        void: &SolanaVoid,
    ) -> Result<Answer, Refusal> {
        let group = &self.ed;
        let key = group.key_at(r.key_epoch)?;
        let sid = r.session_id;
        // The nonce leaves the store before any check, whatever the outcome (S4); a request
        // that did not convert at the link's edge took none and made no share.
        let (nonces, own) = lock(&group.nonces).of(link).take(&sid, self.mono_ms())?;
        let bad = |m: &str| Refusal::permanent(Rule::BadRequest, m.to_string());
        if !r.intent.is_empty()
            || !r.backend_signature.is_empty()
            || !r.approvals.is_empty()
            || r.vault_action.is_some()
        {
            return Err(bad(
                "a void request carries no intent, backend signature, approvals or vault action",
            ));
        }
        if r.scheme != Scheme::Ed25519 {
            return Err(Refusal::permanent(
                Rule::SchemeMismatch,
                "a Solana void is signed by the ed25519 group",
            ));
        }
        let (account, nonce) = (void.nonce_account, void.nonce_value);
        let approval = void.approval.as_ref().ok_or_else(|| {
            Refusal::permanent(
                Rule::SolanaVoidUnapproved,
                "a void needs an admin's signature",
            )
        })?;
        let wallet: [u8; 32] = self.ed25519_group_key().try_into().map_err(|_| {
            Refusal::temporary(Rule::NoKeyShare, "this signer has no ed25519 key share yet")
        })?;
        // No local-freeze check: a void only stops transactions, which is what a frozen
        // cluster wants.
        let message = {
            let mut guard = lock(&self.policy);
            self.refresh_policy(&mut guard, self.now_ms())?;
            let state = guard
                .state
                .as_ref()
                .ok_or_else(|| Refusal::temporary(Rule::PolicyMissing, "no policy installed"))?;
            solana_void(state.active(), &wallet, &account, &nonce, approval)
        }
        .inspect_err(|refused| {
            warn!(signer = %self.name, rule = %refused.rule, reason = %refused.reason, "refused to void a Solana nonce");
        })?;
        // Only a nonce some withdrawal was signed with: a void is for a signed, unsent one.
        match self.nonce_claim(&account, &nonce)? {
            Some(_) => {}
            None => {
                return Err(Refusal::permanent(
                    Rule::SolanaTerms,
                    format!(
                        "this signer saw no withdrawal signed with nonce {} of account {}: nothing to void",
                        solana::address_text(&nonce),
                        solana::address_text(&account)
                    ),
                ))
            }
        }
        let share = self.sign_policy_message::<groups::Ed>(
            &r.signing_package,
            &message,
            &own,
            nonces,
            &key,
        )?;
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
        Ok(Answer::Sign {
            share: share.serialize(),
        })
    }
}
