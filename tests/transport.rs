//! The transport policy against a real coordinator process: mutual TLS 1.3 only, roles from
//! certificates, signers only as listed in the manifest.

use std::sync::Arc;

use quorate_wire::{
    admin::{admin_service_client::AdminServiceClient, GetClusterStatusRequest},
    pki::Authority,
    signer::{signer_link_client::SignerLinkClient, SignerMessage},
    tls::{self, Role},
    withdrawal::{withdrawal_service_client::WithdrawalServiceClient, GetRequest},
};
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    RootCertStore,
};

use crate::{harness::Cluster, scoreboard::Book};

pub(crate) fn roots(c: &Cluster) -> Arc<RootCertStore> {
    let mut r = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(c.path("ca/ca.pem")).unwrap() {
        r.add(cert.unwrap()).unwrap();
    }
    Arc::new(r)
}

pub(crate) fn client_config(
    roots: Arc<RootCertStore>,
    identity: Option<(String, String)>,
) -> Arc<rustls::ClientConfig> {
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots);
    let mut cfg = match identity {
        None => b.with_no_client_auth(),
        Some((cert, key)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(cfg)
}

/// True if an admin status call through this TLS configuration is refused (at connect or call).
async fn admin_refused(c: &Cluster, cfg: Arc<rustls::ClientConfig>) -> bool {
    match tls::connect(&c.addr, "localhost", cfg).await {
        Err(_) => true,
        Ok(ch) => AdminServiceClient::new(ch)
            .get_cluster_status(GetClusterStatusRequest {})
            .await
            .is_err(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_refuses_what_it_must() {
    let mut c = Cluster::create(3, 2).await;
    c.start_coordinator(None).await;
    let mut book = Book::attacks("redteam-transport");

    // Control: the admin certificate reaches the admin service.
    let mut admin = AdminServiceClient::new(c.channel("admin").await);
    admin
        .get_cluster_status(GetClusterStatusRequest {})
        .await
        .expect("admin certificate works");

    // Plaintext HTTP/2 to the TLS port is refused.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", c.addr))
        .unwrap()
        .connect()
        .await;
    let plain_refused = match plain {
        Err(_) => true,
        Ok(ch) => AdminServiceClient::new(ch)
            .get_cluster_status(GetClusterStatusRequest {})
            .await
            .is_err(),
    };
    assert!(plain_refused, "plaintext must be refused");
    book.blocked_at_handshake("plaintext HTTP/2", "coordinator");

    // No client certificate.
    assert!(admin_refused(&c, client_config(roots(&c), None)).await);
    book.blocked_at_handshake("no client certificate", "coordinator");

    // TLS 1.2, even with the right admin certificate.
    let tls12 = {
        let cert = std::fs::read_to_string(c.path("admin/cert.pem")).unwrap();
        let key = std::fs::read_to_string(c.path("admin/key.pem")).unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots(&c))
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(cfg)
    };
    assert!(admin_refused(&c, tls12).await, "TLS 1.2 must be refused");
    book.blocked_at_handshake("TLS 1.2", "coordinator");

    // A certificate from another CA, even with the admin role.
    let rogue = Authority::generate("rogue-ca").unwrap();
    let issued = rogue.issue(Role::Admin, "admin", &[]).unwrap();
    assert!(
        admin_refused(
            &c,
            client_config(roots(&c), Some((issued.cert_pem, issued.key_pem)))
        )
        .await
    );
    book.blocked_at_handshake("client certificate from another CA", "coordinator");

    // An admin certificate from the cluster CA that expired in 2020.
    let ca = Authority::load(
        &std::fs::read_to_string(c.path("ca/ca.pem")).unwrap(),
        &std::fs::read_to_string(c.path("ca/ca.key")).unwrap(),
    )
    .unwrap();
    let expired = ca
        .issue_between(Role::Admin, "admin", &[], (2019, 1, 1), (2020, 1, 1))
        .unwrap();
    assert!(
        admin_refused(
            &c,
            client_config(roots(&c), Some((expired.cert_pem, expired.key_pem)))
        )
        .await,
        "an expired certificate must be refused"
    );
    book.blocked_at_handshake(
        "expired client certificate from the cluster CA",
        "coordinator",
    );

    // A certificate of the wrong role on every service: permission denied, naming the rule.
    for who in ["backend", "admin", "signer-1"] {
        if who != "admin" {
            let err = AdminServiceClient::new(c.channel(who).await)
                .get_cluster_status(GetClusterStatusRequest {})
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{who}");
            assert!(err.message().starts_with("transport-role"), "{err:?}");
            book.blocked(
                &format!("{who} certificate on the admin service"),
                "coordinator",
                "transport-role",
                None,
            );
        }
        if who != "backend" {
            let err = WithdrawalServiceClient::new(c.channel(who).await)
                .get(GetRequest { id: "x".into() })
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{who}");
            assert!(err.message().starts_with("transport-role"), "{err:?}");
            book.blocked(
                &format!("{who} certificate on the withdrawal service"),
                "coordinator",
                "transport-role",
                None,
            );
        }
        if who != "signer-1" {
            let (_tx, rx) = tokio::sync::mpsc::channel::<SignerMessage>(1);
            let err = SignerLinkClient::new(c.channel(who).await)
                .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{who}");
            assert!(err.message().starts_with("transport-role"), "{err:?}");
            book.blocked(
                &format!("{who} certificate on the signer link"),
                "coordinator",
                "transport-role",
                None,
            );
        }
    }

    // A signer certificate from the right CA that is not in the manifest.
    let stranger = ca.issue(Role::Signer, "signer-9", &[]).unwrap();
    let ch = tls::connect(
        &c.addr,
        "localhost",
        client_config(roots(&c), Some((stranger.cert_pem, stranger.key_pem))),
    )
    .await
    .unwrap();
    let (_tx, rx) = tokio::sync::mpsc::channel::<SignerMessage>(1);
    let err = SignerLinkClient::new(ch)
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().starts_with("signer-unknown"),
        "{}",
        err.message()
    );
    book.blocked(
        "signer certificate from the cluster CA, not in the manifest",
        "coordinator",
        "signer-unknown",
        None,
    );

    // The coordinator is still healthy and serving.
    c.assert_serving().await;

    // Every refusal the coordinator's own code made is in its audit log.
    let log = c.coordinator_audit().await;
    book.audit("coordinator", &log);
    book.finish();
}
