//! The admin service: cluster status, DKG, policy governance and withdrawal approvals.

use std::{pin::Pin, sync::Arc};

use quorate_core::{fingerprint::group_key_fingerprint, message::Scheme};
use quorate_wire::{
    admin::{self as pb, admin_service_server::AdminService},
    audit as apb,
    convert::audit::{page_to_proto, MAX_PAGE},
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use quorate_core::{
    audit::{self, Event},
    intent::WithdrawalIntent,
    policy::eval::{distinct_valid, WITHDRAWAL_APPROVAL_DOMAIN},
    refusal::{Refusal, Rule},
};
use quorate_wire::convert::policy::{sig_from_proto, signed_from_proto};

use crate::{
    state::{parse_scheme, Coordinator, GroupKeys},
    store::Status as St,
    withdrawals::{internal, invalid, record_signatures, refusal_status},
};

fn sig_field(
    p: Option<&quorate_wire::policy::AdminSignature>,
    field: &str,
) -> Result<quorate_core::policy::AdminSignature, Status> {
    let p = p.ok_or_else(|| invalid(Rule::RequestInvalid, format!("{field} is required")))?;
    sig_from_proto(p).map_err(|e| invalid(Rule::RequestInvalid, format!("{field}.{e}")))
}

fn hash_field(h: &str) -> Result<(), Status> {
    if h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(invalid(
            Rule::RequestInvalid,
            "hash must be 64 lowercase hex digits",
        ))
    }
}

/// A policy-chain page stops growing past this many document bytes (one version always fits).
pub const CHAIN_PAGE_BYTES: usize = 4 << 20;

/// The admin service.
pub struct AdminApi {
    /// Shared state.
    pub state: Arc<Coordinator>,
    /// Withdrawal approvals are read-modify-write on one record: one at a time.
    pub approvals: tokio::sync::Mutex<()>,
}

type DkgStream = Pin<Box<dyn Stream<Item = Result<pb::DkgStatus, Status>> + Send>>;

/// The cluster's key groups for a status answer, with the Solana address of the Ed25519 one.
fn group_keys(keys: &GroupKeys, epoch: impl Fn(Scheme) -> u32) -> Vec<pb::GroupKey> {
    Scheme::ALL
        .into_iter()
        .filter(|s| !keys.of(*s).is_empty())
        .map(|s| {
            let key = keys.of(s).to_vec();
            pb::GroupKey {
                scheme: s.as_str().into(),
                fingerprint: group_key_fingerprint(&key),
                address: match s {
                    Scheme::Ed25519 => bs58::encode(&key).into_string(),
                    Scheme::Secp256k1 => String::new(),
                },
                epoch: epoch(s),
                public_key: key,
            }
        })
        .collect()
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn get_cluster_status(
        &self,
        _req: Request<pb::GetClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let st = &self.state;
        let connected = st.registry.connected();
        let retired = st.retired_signers();
        let signers = st
            .manifest
            .signers
            .iter()
            .map(|s| {
                let live = connected.iter().find(|c| c.identifier == s.identifier);
                pb::SignerStatus {
                    name: s.name.clone(),
                    identifier: u32::from(s.identifier),
                    connected: live.is_some(),
                    identity_key: s.identity_key.as_bytes().to_vec(),
                    certificate_sha256: hex::encode(s.cert_sha256),
                    group_public_key: live.map(|c| c.group_key.clone()).unwrap_or_default(),
                    ed25519_group_public_key: live
                        .map(|c| c.ed25519_group_key.clone())
                        .unwrap_or_default(),
                    key_epoch: live.map_or(0, |c| c.key_epochs[0]),
                    ed25519_key_epoch: live.map_or(0, |c| c.key_epochs[1]),
                    retired: retired.contains(&s.identifier),
                }
            })
            .collect();
        let gk = st.group_key().unwrap_or_default();
        Ok(Response::new(pb::ClusterStatus {
            threshold: u32::from(st.manifest.threshold),
            signers,
            group_key_fingerprint: if gk.is_empty() {
                String::new()
            } else {
                group_key_fingerprint(&gk)
            },
            group_public_key: gk,
            manifest_hash: hex::encode(st.manifest.hash()),
            dkg: Some(st.dkg.borrow().clone()),
            version: env!("CARGO_PKG_VERSION").to_string(),
            group_keys: group_keys(&st.group_keys(), |s| st.key_epoch(s)),
        }))
    }

    async fn start_dkg(
        &self,
        req: Request<pb::StartDkgRequest>,
    ) -> Result<Response<pb::DkgStatus>, Status> {
        let scheme = parse_scheme(&req.get_ref().scheme)
            .map_err(|e| invalid(Rule::RequestInvalid, format!("scheme: {e}")))?;
        self.state
            .start_dkg(scheme)
            .map(Response::new)
            .map_err(|r| refusal_status(&r, self.state.now_ms()))
    }

    async fn repair_share(
        &self,
        req: Request<pb::RepairShareRequest>,
    ) -> Result<Response<pb::RepairShareResponse>, Status> {
        let r = req.into_inner();
        let scheme = parse_scheme(&r.scheme)
            .map_err(|e| invalid(Rule::RequestInvalid, format!("scheme: {e}")))?;
        if r.signer.is_empty() || r.helpers.len() > quorate_wire::manifest::MAX_SIGNERS {
            return Err(invalid(
                Rule::RequestInvalid,
                "name the signer to repair and at most one helper per signer",
            ));
        }
        self.state
            .repair_share(scheme, &r.signer, &r.helpers)
            .await
            .map(Response::new)
            .map_err(|r| refusal_status(&r, self.state.now_ms()))
    }

    async fn refresh_shares(
        &self,
        req: Request<pb::RefreshSharesRequest>,
    ) -> Result<Response<pb::RefreshSharesResponse>, Status> {
        let scheme = parse_scheme(&req.get_ref().scheme)
            .map_err(|e| invalid(Rule::RequestInvalid, format!("scheme: {e}")))?;
        self.state
            .refresh_shares(scheme)
            .await
            .map(Response::new)
            .map_err(|r| refusal_status(&r, self.state.now_ms()))
    }

    type WatchDkgStream = DkgStream;

    async fn watch_dkg(
        &self,
        _req: Request<pb::WatchDkgRequest>,
    ) -> Result<Response<Self::WatchDkgStream>, Status> {
        let mut rx = self.state.dkg.subscribe();
        let (tx, out) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let current = rx.borrow_and_update().clone();
                let done = current.phase == pb::DkgPhase::Done as i32
                    || current.phase == pb::DkgPhase::Failed as i32
                    || current.phase == pb::DkgPhase::NotStarted as i32;
                if tx.send(Ok(current)).await.is_err() || done {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    async fn get_policy_chain(
        &self,
        req: Request<pb::GetPolicyChainRequest>,
    ) -> Result<Response<pb::PolicyChain>, Status> {
        let r = req.into_inner();
        if r.from_version == 0 {
            return Err(invalid(Rule::RequestInvalid, "from_version starts at 1"));
        }
        let limit = match r.limit {
            0 => usize::MAX,
            n => n as usize,
        };
        Ok(Response::new(self.state.policy.chain(
            r.from_version,
            limit,
            CHAIN_PAGE_BYTES,
        )))
    }

    async fn get_signer_receipts(
        &self,
        req: Request<pb::GetSignerReceiptsRequest>,
    ) -> Result<Response<pb::SignerReceipts>, Status> {
        use quorate_core::policy::receipt::{MAX_CHALLENGE, MIN_CHALLENGE};
        let challenge = req.into_inner().challenge;
        if !(MIN_CHALLENGE..=MAX_CHALLENGE).contains(&challenge.len()) {
            return Err(invalid(
                Rule::RequestInvalid,
                format!("challenge: {MIN_CHALLENGE}..={MAX_CHALLENGE} bytes"),
            ));
        }
        Ok(Response::new(self.state.signer_receipts(&challenge).await))
    }

    async fn get_policy(
        &self,
        req: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::PolicyView>, Status> {
        let wanted = req.into_inner().proposal_hash;
        if !wanted.is_empty() {
            hash_field(&wanted)?;
        }
        let mut view = self.state.policy.get(self.state.now_ms());
        for p in &mut view.proposals {
            if p.hash != wanted {
                p.policy = None;
            }
        }
        let connected = self.state.registry.connected();
        let reported = self.state.signer_policies();
        view.signers = self
            .state
            .manifest
            .signers
            .iter()
            .map(|s| pb::SignerPolicy {
                name: s.name.clone(),
                connected: connected.iter().any(|c| c.identifier == s.identifier),
                policy: reported
                    .get(&s.identifier)
                    .map(quorate_wire::convert::policy::status_to_proto),
            })
            .collect();
        Ok(Response::new(view))
    }

    async fn propose_policy(
        &self,
        req: Request<pb::ProposePolicyRequest>,
    ) -> Result<Response<pb::Proposal>, Status> {
        let p = req
            .into_inner()
            .policy
            .ok_or_else(|| invalid(Rule::RequestInvalid, "policy is required"))?;
        let signed = signed_from_proto(&p).map_err(|e| invalid(Rule::PolicyUpdateInvalid, e))?;
        let hash = signed.doc.hash_hex();
        let (view, send) = self
            .state
            .policy
            .propose(signed, self.state.now_ms())
            .map_err(|r| self.refuse("policy-propose", &hash, &r))?;
        self.audit_proposal(audit::kind::POLICY_PROPOSED, &view, None)
            .await;
        if let Some(update) = send {
            self.state.broadcast_policy(update).await;
        }
        Ok(Response::new(view))
    }

    async fn approve_policy(
        &self,
        req: Request<pb::ApprovePolicyRequest>,
    ) -> Result<Response<pb::Proposal>, Status> {
        let r = req.into_inner();
        hash_field(&r.hash)?;
        let sig = sig_field(r.approval.as_ref(), "approval")?;
        let (view, send) = self
            .state
            .policy
            .approve(&r.hash, sig.clone(), self.state.now_ms())
            .map_err(|x| self.refuse("policy-approve", &r.hash, &x))?;
        self.audit_proposal(audit::kind::POLICY_APPROVED, &view, Some(&sig.admin))
            .await;
        if let Some(update) = send {
            self.state.broadcast_policy(update).await;
        }
        Ok(Response::new(view))
    }

    async fn veto_policy(
        &self,
        req: Request<pb::VetoPolicyRequest>,
    ) -> Result<Response<pb::Proposal>, Status> {
        let r = req.into_inner();
        hash_field(&r.hash)?;
        let sig = sig_field(r.veto.as_ref(), "veto")?;
        let (view, tell_signers) = self
            .state
            .policy
            .veto(&r.hash, sig.clone(), self.state.now_ms())
            .map_err(|x| self.refuse("policy-veto", &r.hash, &x))?;
        self.audit_proposal(audit::kind::POLICY_VETOED, &view, Some(&sig.admin))
            .await;
        if tell_signers {
            self.state.broadcast_veto(&r.hash, &sig).await;
        }
        Ok(Response::new(view))
    }

    async fn list_pending_withdrawals(
        &self,
        _req: Request<pb::ListPendingWithdrawalsRequest>,
    ) -> Result<Response<pb::ListPendingWithdrawalsResponse>, Status> {
        let store = self.state.store.clone();
        let records = tokio::task::spawn_blocking(move || store.with_status(St::PendingApproval))
            .await
            .map_err(|_| Status::internal("list task failed"))?
            .map_err(|e| internal(&e))?;
        let withdrawals = records
            .iter()
            .map(|r| self.pending_view(r, "pending_approval"))
            .collect();
        Ok(Response::new(pb::ListPendingWithdrawalsResponse {
            withdrawals,
        }))
    }

    async fn approve_withdrawal(
        &self,
        req: Request<pb::ApproveWithdrawalRequest>,
    ) -> Result<Response<pb::PendingWithdrawal>, Status> {
        let r = req.into_inner();
        if r.id.is_empty() || r.id.len() > 128 {
            return Err(invalid(Rule::RequestInvalid, "id must be 1..=128 bytes"));
        }
        let sig = sig_field(r.approval.as_ref(), "approval")?;
        let _one_at_a_time = self.approvals.lock().await;
        let mut rec = self
            .state
            .store
            .get(&r.id)
            .map_err(|e| internal(&e))?
            .ok_or_else(|| Status::not_found(format!("no withdrawal has id `{}`", r.id)))?;
        if rec.status != St::PendingApproval {
            return Err(Status::failed_precondition(format!(
                "withdrawal-not-pending: withdrawal `{}` is not waiting for approvals",
                r.id
            )));
        }
        let digest: [u8; 32] = hex::decode(&rec.digest)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Status::internal("stored digest"))?;
        let admins = self.state.policy.admins();
        if distinct_valid(
            &admins,
            WITHDRAWAL_APPROVAL_DOMAIN,
            &[&digest],
            std::slice::from_ref(&sig),
        ) != 1
        {
            let refusal = Refusal::permanent(
                Rule::PolicyApprovalRequired,
                format!(
                    "the approval by {} is not a valid admin signature over this withdrawal's digest",
                    sig.admin
                ),
            );
            self.state
                .audit_refusal("withdrawal-approve", &rec.id, &refusal);
            return Err(refusal_status(&refusal, self.state.now_ms()));
        }
        let admin = sig.admin.to_string();
        self.state.audit(
            Event::new(audit::kind::WITHDRAWAL_APPROVED)
                .with("withdrawal", &rec.id)
                .with("digest", &rec.digest)
                .with("admin", &admin),
        );
        if !rec.approvals.iter().any(|(a, _)| *a == admin) {
            rec.approvals.push((admin, hex::encode(&sig.signature)));
        }
        let intent = hex::decode(&rec.intent)
            .ok()
            .and_then(|b| WithdrawalIntent::decode(&b).ok())
            .ok_or_else(|| Status::internal("stored intent"))?;
        let have = distinct_valid(
            &admins,
            WITHDRAWAL_APPROVAL_DOMAIN,
            &[&digest],
            &record_signatures(&rec),
        ) as u32;
        let ready = have >= self.state.policy.approvals_required(&intent);
        let mut status = "pending_approval";
        rec.updated_ms = self.state.now_ms();
        if ready && self.state.claim(&rec.id) {
            // Another approval may have started signing meanwhile.
            let still = self.state.store.get(&rec.id).map_err(|e| {
                self.state.release(&rec.id);
                internal(&e)
            })?;
            if still.is_none_or(|r| r.status != St::PendingApproval) {
                self.state.release(&rec.id);
                return Err(Status::failed_precondition(format!(
                    "withdrawal-not-pending: withdrawal `{}` is no longer waiting for approvals",
                    rec.id
                )));
            }
            rec.status = St::Signing;
            rec.rule = None;
            rec.retry_at_ms = None;
            rec.reason = None;
            status = "signing";
        }
        let rec = self.state.persist(rec).await.map_err(|e| internal(&e))?;
        if rec.status == St::Signing {
            let span = tracing::info_span!("withdrawal", id = %rec.id);
            tracing::info!(withdrawal = %rec.id, approvals = have, "approved; signing");
            tokio::spawn(tracing::Instrument::instrument(
                self.state.clone().sign(rec.clone(), intent),
                span,
            ));
        }
        Ok(Response::new(self.pending_view(&rec, status)))
    }

    async fn sign_vault_action(
        &self,
        req: Request<pb::SignVaultActionRequest>,
    ) -> Result<Response<pb::VaultActionSigned>, Status> {
        let r = req.into_inner();
        let chain: quorate_core::address::Chain = r
            .chain
            .parse()
            .map_err(|e| invalid(Rule::RequestInvalid, format!("chain: {e}")))?;
        let (admin, signature, signers) = self
            .state
            .sign_vault_action(chain, r.nonce)
            .await
            .map_err(|x| refusal_status(&x, self.state.now_ms()))?;
        let call = admin
            .call(&signature)
            .map_err(|x| refusal_status(&x, self.state.now_ms()))?;
        Ok(Response::new(pb::VaultActionSigned {
            description: admin.describe(),
            message: admin.message().to_vec(),
            signature,
            to: call.to,
            data: call.data,
            signers: signers.into_iter().map(u32::from).collect(),
        }))
    }

    async fn void_solana_nonce(
        &self,
        req: Request<pb::VoidSolanaNonceRequest>,
    ) -> Result<Response<pb::SolanaNonceVoided>, Status> {
        let r = req.into_inner();
        let key = |text: &str, what: &str| {
            quorate_core::chains::solana::address_bytes(text)
                .map_err(|e| invalid(Rule::RequestInvalid, format!("{what}: {e}")))
        };
        let account = key(&r.nonce_account, "nonce_account")?;
        let nonce = key(&r.nonce_value, "nonce_value")?;
        let approval = r
            .approval
            .as_ref()
            .ok_or_else(|| invalid(Rule::RequestInvalid, "approval: missing".to_string()))
            .and_then(|s| {
                sig_from_proto(s)
                    .map_err(|e| invalid(Rule::RequestInvalid, format!("approval: {e}")))
            })?;
        let v = self
            .state
            .void_solana_nonce(account, nonce, approval)
            .await
            .map_err(|x| refusal_status(&x, self.state.now_ms()))?;
        use base64::Engine;
        Ok(Response::new(pb::SolanaNonceVoided {
            solana_transaction: base64::engine::general_purpose::STANDARD.encode(&v.transaction),
            message: v.message,
            signature: v.signature,
            signers: v.signers.into_iter().map(u32::from).collect(),
        }))
    }

    async fn export_audit(
        &self,
        req: Request<apb::AuditExportRequest>,
    ) -> Result<Response<apb::AuditPage>, Status> {
        let r = req.into_inner();
        if r.nonce.len() > quorate_core::audit::MAX_NONCE_LEN {
            return Err(invalid(
                Rule::RequestInvalid,
                format!(
                    "nonce: at most {} bytes",
                    quorate_core::audit::MAX_NONCE_LEN
                ),
            ));
        }
        let limit = match r.limit {
            0 => MAX_PAGE,
            n => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        };
        if r.node == "coordinator" {
            let state = self.state.clone();
            let (records, head) =
                tokio::task::spawn_blocking(move || state.audit_page(r.from_seq, limit, &r.nonce))
                    .await
                    .map_err(|_| Status::internal("audit export task failed"))?
                    .map_err(|e| internal(&e))?;
            return Ok(Response::new(page_to_proto(&records, &head)));
        }
        let entry = self.state.manifest.signer_by_name(&r.node).ok_or_else(|| {
            invalid(
                Rule::RequestInvalid,
                format!(
                    "node: `{}` is neither `coordinator` nor a signer of the manifest",
                    r.node.chars().take(64).collect::<String>()
                ),
            )
        })?;
        let ask =
            quorate_core::link::Request::AuditExport(quorate_core::link::AuditExportRequest {
                node: String::new(),
                from_seq: r.from_seq,
                limit: limit as u32,
                nonce: r.nonce.clone(),
            });
        // Relayed as the signer sent it (records and head convert back unchanged):
        // its head is signed over the exporter's nonce, so we could neither alter it nor
        // replay an older one unseen.
        use quorate_core::link::Answer;
        match self
            .state
            .registry
            .call(entry.identifier, ask, self.state.signing.signer_timeout)
            .await
        {
            Ok(Answer::AuditPage { records, head }) => {
                Ok(Response::new(page_to_proto(&records, &head)))
            }
            Ok(Answer::Refused { refusal: x, .. }) => Err(Status::unavailable(format!(
                "{}: signer {} refused the export: {}",
                x.rule, entry.name, x.reason
            ))),
            Ok(_) => Err(Status::unavailable(format!(
                "signer-unavailable: signer {} gave an unexpected answer",
                entry.name
            ))),
            Err(e) => Err(Status::unavailable(format!("signer-unavailable: {e}"))),
        }
    }
}

impl AdminApi {
    /// A refused governance request: recorded, answered as a status.
    fn refuse(&self, request: &str, hash: &str, r: &Refusal) -> Status {
        self.state.audit(
            Event::refused(request, &r.rule.as_str(), &r.reason)
                .with("hash", hash)
                .with("permanent", r.permanent.to_string()),
        );
        refusal_status(r, self.state.now_ms())
    }

    /// Records a governance step, and the version coming into force if it did, flushed off the
    /// reactor (a flush blocks, lingering for other writers under load).
    async fn audit_proposal(
        &self,
        kind: &str,
        view: &pb::Proposal,
        admin: Option<&quorate_core::identity::IdentityPublic>,
    ) {
        let mut e = Event::new(kind)
            .with("hash", &view.hash)
            .with("version", view.version.to_string())
            .with("state", &view.state)
            .with("approvals", format!("{}/{}", view.approvals, view.required))
            .with(
                "changes",
                view.changes
                    .iter()
                    .map(|c| format!("{}: {}", c.effect, c.what))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        if let Some(a) = admin {
            e = e.with("admin", a.to_string());
        }
        self.state.audit(e);
        if view.state == "applied" && kind != audit::kind::POLICY_VETOED {
            self.state.audit(
                Event::new(audit::kind::POLICY_APPLIED)
                    .with("hash", &view.hash)
                    .with("version", view.version.to_string()),
            );
        }
        if let Err(e) = self.state.flush().await {
            tracing::warn!(error = %e, "could not flush the audit log");
        }
    }

    fn pending_view(&self, r: &crate::store::Record, status: &str) -> pb::PendingWithdrawal {
        let intent = hex::decode(&r.intent).unwrap_or_default();
        let required = WithdrawalIntent::decode(&intent)
            .map(|i| self.state.policy.approvals_required(&i))
            .unwrap_or(0);
        let digest: Option<[u8; 32]> = hex::decode(&r.digest).ok().and_then(|b| b.try_into().ok());
        let approvals = digest.map_or(0, |d| {
            distinct_valid(
                &self.state.policy.admins(),
                WITHDRAWAL_APPROVAL_DOMAIN,
                &[&d],
                &record_signatures(r),
            ) as u32
        });
        pb::PendingWithdrawal {
            id: r.id.clone(),
            intent,
            approvals,
            required,
            status: status.to_string(),
            backend_signature: hex::decode(&r.backend_signature).unwrap_or_default(),
        }
    }
}
