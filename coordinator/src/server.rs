//! Serving: one TLS port carrying the withdrawal, admin and signer-link services, plus gRPC
//! health and reflection. The caller binds the listener (tests bind port 0).

use std::{future::Future, sync::Arc};

use anyhow::Context;
use quorate_core::refusal::Rule;
use quorate_wire::{
    admin::admin_service_server::AdminServiceServer,
    manifest::Manifest,
    signer::signer_link_server::SignerLinkServer,
    tls::{self, require_role, Role, TlsMaterial},
    withdrawal::withdrawal_service_server::WithdrawalServiceServer,
    FILE_DESCRIPTOR_SET, MAX_MESSAGE_BYTES,
};
use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::{
    admin::AdminApi, config::CoordinatorConfig, link::LinkService, state::Coordinator,
    store::SledStore, withdrawals::WithdrawalApi,
};

/// Everything loaded and validated, ready to serve.
pub struct Prepared {
    state: Arc<Coordinator>,
    tls: Arc<rustls::ServerConfig>,
    metrics_tls: Arc<rustls::ServerConfig>,
}

impl Prepared {
    /// The coordinator's state, for driving it in-process (tests).
    pub fn state(&self) -> &Arc<Coordinator> {
        &self.state
    }

    /// Serves the metrics endpoint on `listener` (mutual TLS, HTTP/1.1) until dropped.
    pub fn serve_metrics(&self, listener: TcpListener) -> impl Future<Output = ()> + Send {
        let state = self.state.clone();
        quorate_wire::metrics::serve(
            listener,
            self.metrics_tls.clone(),
            Arc::new(move || state.render_metrics()),
        )
    }
}

/// Loads config-referenced files and opens the store. Fails before any port is used.
pub fn prepare(cfg: &CoordinatorConfig) -> anyhow::Result<Prepared> {
    prepare_with_clock(cfg, Arc::new(quorate_wire::clock::SystemClock::new()))
}

/// [`prepare`] with the coordinator reading time from `clock` (tests move it by hand).
pub fn prepare_with_clock(
    cfg: &CoordinatorConfig,
    clock: Arc<dyn quorate_core::clock::Clock>,
) -> anyhow::Result<Prepared> {
    let manifest = Manifest::load(&cfg.manifest)?;
    let material = TlsMaterial::load(&cfg.tls.ca, &cfg.tls.cert, &cfg.tls.key)?;
    let own = tls::identity_of(material.leaf_der())
        .map_err(|e| anyhow::anyhow!("own certificate: {e}"))?;
    anyhow::ensure!(
        own.role == Role::Coordinator,
        "the coordinator's certificate has role `{}`, not `coordinator`",
        own.role
    );
    tls::check_own_lifetime(
        &own,
        "a new key and CSR, then the CA's sign-csr --role coordinator",
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let store = Arc::new(SledStore::open(&cfg.data_dir)?);
    let genesis = match &cfg.genesis_policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading genesis policy {}", path.display()))?;
            Some(
                quorate_wire::convert::policy_file::signed_from_json(&text)
                    .map_err(|e| anyhow::anyhow!("genesis policy {}: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let state = Coordinator::new(manifest, store, cfg.signing.clone(), genesis, clock)
        .map_err(|e| anyhow::anyhow!(e))?;
    state.note_certificate(None, own.not_after_unix);
    Ok(Prepared {
        state: Arc::new(state),
        tls: material.server_config()?,
        metrics_tls: material.metrics_server_config()?,
    })
}

/// How often the withdrawal service's readiness is re-read (a signer's link coming or going, a
/// DKG, repair or refresh finishing).
const READINESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Keeps the withdrawal service's gRPC health SERVING exactly while
/// [`Coordinator::withdrawals_ready`], logging each change.
async fn track_readiness(state: Arc<Coordinator>, reporter: tonic_health::server::HealthReporter) {
    let mut last = false;
    let mut tick = tokio::time::interval(READINESS_EVERY);
    loop {
        tick.tick().await;
        let ready = state.withdrawals_ready();
        if ready == last {
            continue;
        }
        if ready {
            reporter
                .set_serving::<WithdrawalServiceServer<WithdrawalApi>>()
                .await;
            tracing::info!(
                "withdrawal service SERVING: a quorum of signers holding the key is connected"
            );
        } else {
            reporter
                .set_not_serving::<WithdrawalServiceServer<WithdrawalApi>>()
                .await;
            tracing::warn!("withdrawal service NOT_SERVING: fewer than t signers holding the key are connected");
        }
        last = ready;
    }
}

/// How long a graceful shutdown waits for in-flight calls (and `Watch` streams).
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    prepared: Prepared,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let state = prepared.state;
    // Governance messages are resent until each signer's answer shows it has them.
    let resync = tokio::spawn(state.clone().resend_policy_until_acknowledged());
    let learn = tokio::spawn(state.clone().learn_from_signers());
    let (health_reporter, health) = tonic_health::server::health_reporter();
    // The withdrawal service is ready only while a quorum of signers holding the key is
    // connected; the process itself ("") and the other services are serving while it runs.
    health_reporter
        .set_not_serving::<WithdrawalServiceServer<WithdrawalApi>>()
        .await;
    let readiness = tokio::spawn(track_readiness(state.clone(), health_reporter.clone()));
    health_reporter
        .set_serving::<AdminServiceServer<AdminApi>>()
        .await;
    health_reporter
        .set_serving::<SignerLinkServer<LinkService>>()
        .await;
    // Both reflection versions: grpcurl and friends still try v1alpha first or only.
    // Our services and gRPC health, so a generic tool finds the readiness check too.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let withdrawal = tonic::service::interceptor::InterceptedService::new(
        WithdrawalServiceServer::new(WithdrawalApi {
            state: state.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES),
        audited_role(state.clone(), Role::Backend, "withdrawal"),
    );
    let admin = tonic::service::interceptor::InterceptedService::new(
        AdminServiceServer::new(AdminApi {
            state: state.clone(),
            approvals: tokio::sync::Mutex::default(),
        })
        // A proposal carries a whole policy document; only admin certificates get here.
        .max_decoding_message_size(quorate_wire::MAX_POLICY_MESSAGE_BYTES),
        audited_role(state.clone(), Role::Admin, "admin"),
    );
    let link = tonic::service::interceptor::InterceptedService::new(
        SignerLinkServer::new(LinkService {
            state: state.clone(),
        })
        // Policy updates carry a whole document to each signer, and a sync answer one back
        // (a signer is a manifest member: one message at a time on its one stream).
        .max_decoding_message_size(quorate_wire::MAX_POLICY_MESSAGE_BYTES)
        .max_encoding_message_size(quorate_wire::MAX_POLICY_MESSAGE_BYTES),
        audited_role(state.clone(), Role::Signer, "signer-link"),
    );
    let addr = listener.local_addr()?;
    tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "coordinator serving");
    // On shutdown, end the signer links (long-lived streams would hold the graceful drain
    // forever), then give in-flight calls a bounded time to finish.
    let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
    let links = state.registry.clone();
    let draining = health_reporter.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: closing signer links, draining calls");
        // Probes see the node going away before its calls are drained.
        draining
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        draining
            .set_not_serving::<WithdrawalServiceServer<WithdrawalApi>>()
            .await;
        links.close_all();
        let _ = fired_tx.send(());
    };
    let server = Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(withdrawal)
        .add_service(admin)
        .add_service(link)
        .serve_with_incoming_shutdown(tls::incoming(listener, prepared.tls), shutdown);
    tokio::select! {
        r = server => r?,
        _ = async {
            if fired_rx.await.is_ok() {
                tokio::time::sleep(DRAIN_LIMIT).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(limit = ?DRAIN_LIMIT, "drain limit reached; closing the remaining streams");
        }
    }
    resync.abort();
    learn.abort();
    readiness.abort();
    Ok(())
}

/// [`require_role`], with each refusal recorded in the audit log. Only holders of a certificate
/// from the cluster CA get this far (the TLS handshake refuses everyone else), so the log
/// cannot be flooded by strangers.
#[allow(clippy::result_large_err)]
fn audited_role(
    state: Arc<Coordinator>,
    role: Role,
    service: &'static str,
) -> impl Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    let check = require_role(role);
    move |req| {
        check(req).inspect_err(|s| {
            state.audit(
                quorate_core::audit::Event::refused(
                    service,
                    &Rule::TransportRole.as_str(),
                    s.message(),
                )
                .with("permanent", "true"),
            )
        })
    }
}
