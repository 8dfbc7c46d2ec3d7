//! Signing on a signer ([`quorate_core::signing`]): nonce commitments, presigned batches, and
//! the share-release path, where every check, the debit and the audit record precede a share.

use quorate_core::{
    audit::{self, Event},
    chains::evm,
    intent::WithdrawalIntent,
    link::{Answer, CommitRequest, PresignRequest, SignRequest},
    message::{ChainFormat, Scheme},
    policy::{self, Ledger},
    refusal::{Refusal, Rule},
    signing::{self, Gate},
};
use tracing::{info, warn};

use std::sync::Arc;

use super::{groups, ledger::Counted, lock, storage, Ed, Held, LinkId, Node, PolicyGuard, Secp};

/// Most session ids in one presign batch.
pub const MAX_PRESIGN_BATCH: usize = 256;

impl Node {
    pub(super) fn commit<C: Held>(
        &self,
        link: LinkId,
        r: &CommitRequest,
    ) -> Result<Answer, Refusal> {
        let key = C::group(self).key()?;
        let commitments = lock(&C::group(self).nonces).of(link).commit(
            r.session_id,
            key.signing_share(),
            &mut rand::rngs::OsRng,
            self.mono_ms(),
        )?;
        let bytes = commitments
            .serialize()
            .map_err(|e| Refusal::permanent(Rule::BadRequest, format!("commitments: {e}")))?;
        Ok(Answer::Commit { commitments: bytes })
    }

    pub(super) fn presign<C: Held>(
        &self,
        link: LinkId,
        r: &PresignRequest,
    ) -> Result<Answer, Refusal> {
        let key = C::group(self).key()?;
        if r.session_ids.is_empty() || r.session_ids.len() > MAX_PRESIGN_BATCH {
            return Err(Refusal::permanent(
                Rule::BadRequest,
                format!("a presign batch holds 1 to {MAX_PRESIGN_BATCH} session ids"),
            ));
        }
        let mut nonces = lock(&C::group(self).nonces);
        let ttl_ms = nonces.ttl_ms();
        let commitments = nonces.of(link).commit_batch(
            &r.session_ids,
            key.signing_share(),
            &mut rand::rngs::OsRng,
            self.mono_ms(),
        )?;
        drop(nonces);
        let commitments = commitments
            .iter()
            .map(|c| c.serialize())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Refusal::permanent(Rule::BadRequest, format!("commitments: {e}")))?;
        Ok(Answer::Presign {
            commitments,
            ttl_ms,
        })
    }

    pub(super) fn sign(&self, link: LinkId, r: &SignRequest) -> Result<Answer, Refusal> {
        if let Some(action) = &r.vault_action {
            if r.solana_void.is_some() || r.scheme != Scheme::Secp256k1 {
                return Err(Refusal::permanent(
                    Rule::BadRequest,
                    "a vault action is signed by the secp256k1 group, alone",
                ));
            }
            return self.sign_vault_action(link, r, action);
        }
        if let Some(void) = &r.solana_void {
            return self.sign_solana_void(link, r, void);
        }
        match r.scheme {
            Scheme::Secp256k1 => self.sign_for::<Secp>(link, r),
            Scheme::Ed25519 => self.sign_for::<Ed>(link, r),
        }
    }

    fn sign_for<C: Held>(&self, link: LinkId, r: &SignRequest) -> Result<Answer, Refusal> {
        let span =
            tracing::info_span!("sign", session = %hex::encode(r.session_id), scheme = %C::SCHEME);
        let _entered = span.enter();
        let group = C::group(self);
        let key = group.key_at(r.key_epoch)?;
        let sid = r.session_id;
        // The nonce leaves the store before any check of the request: whatever the outcome of
        // this request, the session can never be signed in again (S4). (A request that did not
        // even convert at the link's edge never got here and took no nonce; it made no share
        // either, so the nonce still signs at most once.)
        let (nonces, own) = lock(&group.nonces).of(link).take(&sid, self.mono_ms())?;
        let decoded = WithdrawalIntent::decode(&r.intent).ok();
        // What the checks need from the policy in force is read under the policy lock; the
        // checks themselves (the backend signature, the package's points, the message) and
        // the share run outside it, so this signer judges several requests at once. The
        // policy is then locked again for the binding, the ledger, the debit and the audit
        // record; if a policy update landed in between, the checks run again under the lock.
        // The share leaves only after all of that is on disk.
        let mut nonces = Some(nonces);
        let facts = {
            let mut guard = lock(&self.policy);
            self.refresh_policy(&mut guard, self.now_ms())?;
            self.gate_facts::<C>(&mut guard, decoded.as_ref())?
        };
        let checked = self
            .check_sign_request(&facts, r, &own, self.now_ms())
            .and_then(|ok| {
                let nonces = nonces.take().ok_or_else(spent)?;
                let share = signing::sign_share::<C>(&ok.package, nonces, &key)?;
                Ok((ok, share))
            });
        let mut guard = lock(&self.policy);
        // The time the decision is made at: read once the lock is held, so an intent that
        // expired while this request waited is not signed.
        let now = self.now_ms();
        self.refresh_policy(&mut guard, now)?;
        let (ok, share) = match guard.state.as_ref() {
            Some(s) if s.active().version == facts.version => checked?,
            _ => {
                let facts = self.gate_facts::<C>(&mut guard, decoded.as_ref())?;
                let ok = self.check_sign_request(&facts, r, &own, now)?;
                // The package is the same bytes either way: a share already made over it
                // stands.
                let share = match checked {
                    Ok((_, share)) => share,
                    Err(_) => {
                        let nonces = nonces.take().ok_or_else(spent)?;
                        signing::sign_share::<C>(&ok.package, nonces, &key)?
                    }
                };
                (ok, share)
            }
        };
        if now >= ok.intent.expires_at_ms {
            return Err(Refusal::permanent(
                Rule::IntentExpired,
                format!(
                    "the intent expired at {} ms; now is {now} ms",
                    ok.intent.expires_at_ms
                ),
            ));
        }
        let Some(state) = guard.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                "no policy installed",
            ));
        };
        let id = ok.intent.id.as_str();
        let bound = quorate_core::message::binding(&ok.digest, ok.package.message());
        self.check_binding(&ok.intent, &bound)?;
        if self.locally_frozen() {
            return Err(Refusal::temporary(
                Rule::PolicyFrozen,
                format!(
                    "signer {} is stopped by its operator (local freeze)",
                    self.name
                ),
            ));
        }
        let already = self.store.debited(id).map_err(storage)?;
        // A withdrawal debited before (a retry) is not counted against its own debit.
        let empty = Ledger::new();
        let ledger = if already { &empty } else { &guard.ledger };
        // n − t + 1: the fewest honest signers a withdrawal needs with t − 1 compromised.
        let honest =
            (self.manifest.signers.len() as u16 + 1).saturating_sub(self.manifest.threshold);
        policy::evaluate(state.active(), ledger, &ok.intent, &r.approvals, now)
            .and_then(|()| {
                policy::eval::evaluate_budget(state.active(), ledger, &ok.intent, honest, now)
            })
            .inspect_err(|refused| {
                warn!(signer = %self.name, withdrawal = %id, rule = %refused.rule, reason = %refused.reason, "policy refused");
            })?;
        // A durable nonce pays one withdrawal: claimed under the policy lock (docs/solana.md).
        if let ChainFormat::Solana(t) = &ok.format {
            if let quorate_core::chains::solana::Lifetime::DurableNonce { account, nonce } =
                &t.lifetime
            {
                self.claim_nonce(account, nonce, id, ok.intent.expires_at_ms, false)?;
            }
        }
        let event = Event::new(audit::kind::SHARE_RELEASED)
            .with("withdrawal", id)
            .with("digest", hex::encode(ok.digest))
            .with("session", hex::encode(sid))
            // Our own commitment, so an auditor can check that no nonce ever signed twice.
            .with(
                "commitment",
                hex::encode(own.serialize().unwrap_or_default()),
            )
            .with("chain", ok.intent.chain.as_str())
            .with("asset", &ok.intent.asset)
            .with("destination", &ok.intent.destination)
            .with("amount", ok.intent.amount.to_string())
            .with("policy_version", state.active().version.to_string())
            .with("debit", if already { "already" } else { "new" });
        // What the vault will see, so `quorate reconcile` can match its payout events.
        let event = match ok.format {
            ChainFormat::EvmVault { domain, token } => event
                .with("chain_id", domain.chain_id.to_string())
                .with("vault", evm::address_text(ok.intent.chain, &domain.vault))
                .with("token", hex::encode(token)),
            // The message itself: what the group's Solana signature is over.
            ChainFormat::Solana(_) => event
                .with("scheme", C::SCHEME.as_str())
                .with("message", hex::encode(ok.package.message())),
            _ => event,
        };
        self.debit(
            &mut guard,
            &ok.intent,
            &bound,
            now,
            already,
            Counted::Release,
            event,
        )?;
        drop(guard);
        // Durable before the share leaves; the sync is shared with concurrent requests and
        // holds no lock, so other withdrawals are checked and written meanwhile.
        self.store.flush().map_err(storage)?;
        info!(signer = %self.name, withdrawal = %id, "share released");
        Ok(Answer::Sign {
            share: share.serialize(),
        })
    }

    /// What the checks of a signing request need from the policy in force (under the policy
    /// lock): its version, backend keys (decoded once per version), retired signers, and the
    /// chain format it gives the intent (`decoded`, if the intent decodes).
    fn gate_facts<C: Held>(
        &self,
        guard: &mut PolicyGuard,
        decoded: Option<&WithdrawalIntent>,
    ) -> Result<GateFacts<C>, Refusal> {
        let Some(state) = guard.state.as_ref() else {
            return Err(Refusal::temporary(
                Rule::PolicyMissing,
                "no policy installed",
            ));
        };
        let policy = state.active();
        let version = policy.version;
        let format = decoded.map(|i| own_chain_format(policy, i, &self.ed25519_group_key()));
        let retired = retired_ids::<C>(policy);
        let backend_keys = match &guard.backend_keys {
            Some((v, keys)) if *v == version => keys.clone(),
            _ => {
                let keys = Arc::new(policy.backend_keys());
                guard.backend_keys = Some((version, keys.clone()));
                keys
            }
        };
        Ok(GateFacts {
            version,
            backend_keys,
            retired,
            format,
        })
    }

    /// The no-blind-signing checks of a signing request ([`signing::check_request`]) against
    /// `facts`, at `now`.
    fn check_sign_request<C: Held>(
        &self,
        facts: &GateFacts<C>,
        r: &SignRequest,
        own: &frost_core::round1::SigningCommitments<C>,
        now: u64,
    ) -> Result<signing::Authorized<C>, Refusal> {
        let format_of = |_: &WithdrawalIntent| {
            facts.format.clone().unwrap_or_else(|| {
                Err(Refusal::permanent(
                    Rule::IntentMalformed,
                    "the intent does not decode",
                ))
            })
        };
        let gate = Gate {
            me: groups::frost_id::<C>(self.me)
                .map_err(|e| Refusal::permanent(Rule::BadRequest, e))?,
            signers: &C::group(self).signer_ids,
            retired: &facts.retired,
            min_signers: usize::from(self.manifest.threshold),
            backend_keys: &facts.backend_keys,
            format: &format_of,
            now_ms: now,
            max_clock_skew_ms: self.max_clock_skew_ms,
        };
        signing::check_request(
            &gate,
            &r.intent,
            &r.backend_signature,
            &r.signing_package,
            own,
        )
        .inspect_err(|refused| {
            warn!(signer = %self.name, rule = %refused.rule, reason = %refused.reason, "refused to sign");
        })
    }

    /// This signer's share over `message`, a message its own policy gives without an intent
    /// (a vault action, a Solana void), once the package is checked against it.
    pub(super) fn sign_policy_message<C: Held>(
        &self,
        package_bytes: &[u8],
        message: &[u8],
        own: &frost_core::round1::SigningCommitments<C>,
        nonces: frost_core::round1::SigningNonces<C>,
        key: &frost_core::keys::KeyPackage<C>,
    ) -> Result<frost_core::round2::SignatureShare<C>, Refusal> {
        let no_intent = |_: &_| Ok(ChainFormat::IntentDigest);
        let retired: Vec<_> = self
            .retired_signers()
            .into_iter()
            .filter_map(|n| groups::frost_id::<C>(n).ok())
            .collect();
        let gate = Gate {
            me: groups::frost_id::<C>(self.me)
                .map_err(|e| Refusal::permanent(Rule::BadRequest, e))?,
            signers: &C::group(self).signer_ids,
            retired: &retired,
            min_signers: usize::from(self.manifest.threshold),
            backend_keys: &[],
            format: &no_intent,
            now_ms: self.now_ms(),
            max_clock_skew_ms: self.max_clock_skew_ms,
        };
        let package = signing::check_package(&gate, package_bytes, message, own)?;
        signing::sign_share(&package, nonces, key)
    }
}

/// The refusal for a nonce already used by this request (cannot happen: each path takes it
/// once).
fn spent() -> Refusal {
    Refusal::permanent(Rule::NonceUnknown, "this session's nonce is spent")
}

/// What a signing request is checked against, read from the policy in force.
struct GateFacts<C: Held> {
    version: u64,
    backend_keys: Arc<Vec<quorate_core::backend::BackendKey>>,
    retired: Vec<frost_core::Identifier<C>>,
    format: Option<Result<ChainFormat, Refusal>>,
}

/// The FROST identifiers of the signers `policy` retired.
fn retired_ids<C: Held>(
    policy: &quorate_core::policy::PolicyDoc,
) -> Vec<frost_core::Identifier<C>> {
    policy
        .retired_signers
        .iter()
        .filter_map(|n| groups::frost_id::<C>(*n).ok())
        .collect()
}

/// The chain format this signer's policy gives `intent`, the Solana wallet being its own
/// Ed25519 group key (`ed_wallet`, empty before that DKG).
fn own_chain_format(
    policy: &quorate_core::policy::PolicyDoc,
    intent: &WithdrawalIntent,
    ed_wallet: &[u8],
) -> Result<ChainFormat, Refusal> {
    let wallet: Option<[u8; 32]> = ed_wallet.try_into().ok();
    quorate_core::message::chain_format_for(policy, intent, wallet.as_ref())
}
