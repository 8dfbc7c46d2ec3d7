//! Carrying governance to the signers: policy versions and vetoes (broadcast, catch-up on
//! connect, resent until each signer's answer shows it has them), what each signer last
//! reported, and the signed status receipts the admins ask for.

use std::{collections::BTreeMap, sync::Arc};

use quorate_wire::signer as pb;
use tracing::{info, warn};

use super::Coordinator;

/// How often signers whose policy state differs from the coordinator's are sent what they lack.
pub const POLICY_RESEND_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

impl Coordinator {
    /// The policy status each signer last reported.
    pub fn signer_policies(&self) -> BTreeMap<u16, quorate_wire::policy::PolicyStatus> {
        self.signer_policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records what a signer said about its policy.
    pub fn note_signer_policy(&self, signer: u16, status: quorate_wire::policy::PolicyStatus) {
        self.signer_policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(signer, status);
    }

    /// Sends `body` (a policy update or veto) to one signer and records its answer.
    pub async fn send_policy(&self, signer: u16, body: pb::coordinator_message::Body) {
        match self
            .registry
            .call(signer, body, self.signing.signer_timeout)
            .await
        {
            Ok(pb::signer_message::Body::PolicyStatus(st)) => {
                info!(
                    signer,
                    version = st.version,
                    pending = st.pending_version,
                    "signer policy status"
                );
                self.note_signer_policy(signer, st);
            }
            Ok(pb::signer_message::Body::Refusal(r)) => {
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
            let body = pb::coordinator_message::Body::StatusChallenge(pb::StatusChallenge {
                challenge: challenge.to_vec(),
            });
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
                    .call(s.identifier, body, self.signing.signer_timeout)
                    .await
                {
                    Ok(pb::signer_message::Body::StatusReceipt(r)) => out.receipt = Some(r),
                    Ok(pb::signer_message::Body::Refusal(r)) => {
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
    pub async fn broadcast_policy(&self, update: quorate_wire::policy::SignedPolicy) {
        let body = pb::coordinator_message::Body::PolicyUpdate(update);
        let calls = self
            .registry
            .connected()
            .into_iter()
            .map(|s| self.send_policy(s.identifier, body.clone()));
        futures::future::join_all(calls).await;
    }

    /// Sends a veto to every connected signer.
    pub async fn broadcast_veto(&self, hash_hex: &str, sig: &quorate_core::policy::AdminSignature) {
        let body = pb::coordinator_message::Body::PolicyVeto(pb::PolicyVeto {
            policy_hash: hex::decode(hash_hex).unwrap_or_default(),
            veto: Some(quorate_wire::convert::policy::sig_to_proto(sig)),
        });
        let calls = self
            .registry
            .connected()
            .into_iter()
            .map(|s| self.send_policy(s.identifier, body.clone()));
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
            let body = match item {
                crate::policy::Catchup::Update(u) => pb::coordinator_message::Body::PolicyUpdate(u),
                crate::policy::Catchup::Veto(h, sig) => {
                    pb::coordinator_message::Body::PolicyVeto(pb::PolicyVeto {
                        policy_hash: h.to_vec(),
                        veto: Some(quorate_wire::convert::policy::sig_to_proto(&sig)),
                    })
                }
            };
            self.send_policy(signer, body).await;
        }
    }

    /// Brings a signer that just connected up to date: the versions it lacks, then vetoes.
    pub async fn catch_up(&self, signer: u16, version: u64) {
        self.send_catchup(signer, version).await;
        self.replay_notices(signer).await;
    }
}
