//! The admin service: cluster status and DKG.

use std::{pin::Pin, sync::Arc};

use quorate_core::fingerprint::group_key_fingerprint;
use quorate_wire::admin::{self as pb, admin_service_server::AdminService};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::{state::Coordinator, withdrawals::refusal_status};

/// The admin service.
pub struct AdminApi {
    /// Shared state.
    pub state: Arc<Coordinator>,
}

type DkgStream = Pin<Box<dyn Stream<Item = Result<pb::DkgStatus, Status>> + Send>>;

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn get_cluster_status(
        &self,
        _req: Request<pb::GetClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let st = &self.state;
        let connected = st.registry.connected();
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
        }))
    }

    async fn start_dkg(
        &self,
        _req: Request<pb::StartDkgRequest>,
    ) -> Result<Response<pb::DkgStatus>, Status> {
        self.state
            .start_dkg()
            .map(Response::new)
            .map_err(|r| refusal_status(&r))
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
}
