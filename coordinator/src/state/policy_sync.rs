//! Carrying governance to the signers: policy versions and vetoes (broadcast, catch-up on
//! connect, resent until each signer's answer shows it has them), what each signer last
//! reported, and the signed status receipts the admins ask for.

use std::{collections::BTreeMap, sync::Arc};

use quorate_core::{
    link::{Answer, PolicyVeto, Request},
    policy::{AdminSignature, PolicyStatus, SignedPolicy},
};
use quorate_wire::convert::policy::receipt_to_proto;
use tracing::{info, warn};

use super::Coordinator;

/// How often signers whose policy state differs from the coordinator's are sent what they lack.
pub const POLICY_RESEND_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

impl Coordinator {
    /// The policy status each signer last reported.
    pub fn signer_policies(&self) -> BTreeMap<u16, PolicyStatus> {
        self.signer_policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records what a signer said about its policy.
    pub fn note_signer_policy(&self, signer: u16, status: PolicyStatus) {
        self.signer_policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(signer, status);
    }

    /// Sends `request` (a policy update or veto) to one signer and records its answer.
    pub async fn send_policy(&self, signer: u16, request: Request) {
        match self
            .registry
            .call(signer, request, self.signing.signer_timeout)
            .await
        {
            Ok(Answer::PolicyStatus(st)) => {
                info!(
                    signer,
                    version = st.version,
                    pending = st.pending_version,
                    "signer policy status"
                );
                self.note_signer_policy(signer, st);
            }
            Ok(Answer::Refused { refusal: r, .. }) => {
                warn!(signer, rule = %r.rule, reason = %r.reason, "signer refused the policy message");
            }
            Ok(_) => warn!(signer, "signer: unexpected answer to a policy message"),
            Err(e) => warn!(signer, error = %e, "policy message not delivered"),
        }
    }

    /// Asks every manifest signer for a status receipt over `challenge`; relays what each
    /// answered (the admin's tool verifies the signatures, not us).
    pub async fn signer_receipts(&self, challenge: &[u8]) -> quorate_wire::admin::SignerReceipts {
        use quorate_wire::admin as apb;
        let connected = self.registry.connected();
        let asks = self.manifest.signers.iter().map(|s| {
            let online = connected.iter().any(|c| c.identifier == s.identifier);
            let ask = Request::StatusChallenge {
                challenge: challenge.to_vec(),
            };
            async move {
                let mut out = apb::SignerReceipt {
                    name: s.name.clone(),
                    ..Default::default()
                };
                if !online {
                    out.error = "not connected".into();
                    return out;
                }
                match self
                    .registry
                    .call(s.identifier, ask, self.signing.signer_timeout)
                    .await
                {
                    Ok(Answer::StatusReceipt(r)) => out.receipt = Some(receipt_to_proto(&r)),
                    Ok(Answer::Refused { refusal: r, .. }) => {
                        out.error = format!("refused: {}: {}", r.rule, r.reason)
                    }
                    Ok(_) => out.error = "unexpected answer".into(),
                    Err(e) => out.error = e.to_string(),
                }
                out
            }
        });
        apb::SignerReceipts {
            signers: futures::future::join_all(asks).await,
        }
    }

    /// Sends a complete policy version to every connected signer.
    pub async fn broadcast_policy(&self, update: SignedPolicy) {
        let calls = self
            .registry
            .connected()
            .into_iter()
            .map(|s| self.send_policy(s.identifier, Request::PolicyUpdate(update.clone())));
        futures::future::join_all(calls).await;
    }

    /// Sends a veto to every connected signer.
    pub async fn broadcast_veto(&self, hash_hex: &str, sig: &AdminSignature) {
        // The admin service took the hash as 64 hex digits.
        let Some(policy_hash) = hex::decode(hash_hex)
            .ok()
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
        else {
            warn!(hash = %hash_hex, "a veto of a hash that is not 32 bytes is not sent");
            return;
        };
        let veto = PolicyVeto {
            policy_hash,
            veto: sig.clone(),
        };
        let calls = self
            .registry
            .connected()
            .into_iter()
            .map(|s| self.send_policy(s.identifier, Request::PolicyVeto(veto.clone())));
        futures::future::join_all(calls).await;
    }

    /// Every [`POLICY_RESEND_INTERVAL`], sends each connected signer whose last answer shows
    /// another policy state than ours (a version, a pending one, or a veto it missed, refused
    /// out of order, or never got) what it lacks. A freeze or veto that was lost in transit, or
    /// dropped by a timeout, arrives at the next round instead of at the next reconnect.
    pub async fn resend_policy_until_acknowledged(self: Arc<Self>) {
        let mut tick = tokio::time::interval(POLICY_RESEND_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let ours = self.policy.status(self.now_ms());
            if ours.version == 0 {
                continue;
            }
            let reported = self.signer_policies();
            let behind: Vec<(u16, u64)> = self
                .registry
                .connected()
                .into_iter()
                .filter_map(|s| {
                    let st = reported.get(&s.identifier).cloned().unwrap_or_default();
                    (st.hash != ours.hash || st.pending_hash != ours.pending_hash)
                        .then_some((s.identifier, st.version))
                })
                .collect();
            let sends = behind
                .into_iter()
                .map(|(signer, version)| self.send_catchup(signer, version));
            futures::future::join_all(sends).await;
        }
    }

    async fn send_catchup(&self, signer: u16, version: u64) {
        if !self
            .policy_syncing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(signer)
        {
            return;
        }
        struct Done<'a>(&'a Coordinator, u16);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0
                    .policy_syncing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&self.1);
            }
        }
        let _done = Done(self, signer);
        for item in self.policy.catchup(version) {
            let request = match item {
                crate::policy::Catchup::Update(u) => Request::PolicyUpdate(u),
                crate::policy::Catchup::Veto(policy_hash, veto) => {
                    Request::PolicyVeto(PolicyVeto { policy_hash, veto })
                }
            };
            self.send_policy(signer, request).await;
        }
    }

    /// Brings a signer that just connected up to date: the versions it lacks, then vetoes.
    pub async fn catch_up(&self, signer: u16, version: u64) {
        self.send_catchup(signer, version).await;
        self.replay_notices(signer).await;
    }
}
