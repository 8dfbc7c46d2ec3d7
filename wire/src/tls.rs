//! The TLS policy, in one place: TLS 1.3 only, a private CA, client certificates required on
//! every port, and the caller's role read from its certificate. There is no plaintext mode.
//!
//! Certificates carry their role as a URI subject-alternative name `urn:quorate:role:<role>`
//! and the node's name as the subject common name.

use std::{fmt, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName},
    server::WebPkiClientVerifier,
    ClientConfig, RootCertStore, ServerConfig,
};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{server::TlsStream, TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// How long a client has to finish the TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Prefix of the role URI in a certificate's subject alternative names.
pub const ROLE_URI_PREFIX: &str = "urn:quorate:role:";

/// Errors loading TLS material or building a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// File that failed.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// Connecting failed.
    #[error("connecting to {addr}: {reason}")]
    Connect {
        /// Where.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// What a certificate says its holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The coordinator (server side of every port).
    Coordinator,
    /// A signer node; also has to match the manifest.
    Signer,
    /// The exchange backend: may use the withdrawal service only.
    Backend,
    /// An administrator: may use the admin service only.
    Admin,
}

impl Role {
    /// The name used in the role URI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Signer => "signer",
            Role::Backend => "backend",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "coordinator" => Some(Role::Coordinator),
            "signer" => Some(Role::Signer),
            "backend" => Some(Role::Backend),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated identity of a TLS peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Role from the certificate.
    pub role: Role,
    /// Subject common name.
    pub name: String,
    /// SHA-256 of the DER certificate.
    pub cert_sha256: [u8; 32],
    /// SHA-256 of the certificate's public key (SubjectPublicKeyInfo, DER): what the manifest
    /// pins, so a certificate renewed for the same key needs no new manifest.
    pub key_sha256: [u8; 32],
    /// End of the certificate's validity (`notAfter`), Unix seconds.
    pub not_after_unix: i64,
}

/// A node warns at start when its own certificate expires within this many seconds (30 days).
pub const RENEW_WITHIN_SECS: i64 = 30 * 86_400;

/// A node's own certificate at start: refused once past `notAfter` (every peer would refuse
/// it); with fewer than [`RENEW_WITHIN_SECS`] left, a warning naming `how_to_renew`.
pub fn check_own_lifetime(own: &PeerIdentity, how_to_renew: &str) -> Result<(), String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let left = own.not_after_unix - now;
    if left <= 0 {
        return Err(format!(
            "tls.cert: the certificate expired {} day(s) ago (notAfter {} UTC); renew it for the same key (docs: certificates, renewal)",
            (-left) / 86_400,
            not_after_text(own.not_after_unix)
        ));
    }
    if left < RENEW_WITHIN_SECS {
        tracing::warn!(
            not_after = %not_after_text(own.not_after_unix),
            days_left = left / 86_400,
            "this node's certificate expires soon: renew it ({how_to_renew})"
        );
    }
    Ok(())
}

/// `notAfter` as RFC 3339 text.
pub fn not_after_text(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Reads a certificate's role and name. The certificate must carry exactly one role URI.
pub fn identity_of(cert_der: &[u8]) -> Result<PeerIdentity, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("unparseable certificate: {e}"))?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or("certificate has no subject common name")?
        .to_string();
    let mut roles = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for gn in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = gn {
                if let Some(r) = uri.strip_prefix(ROLE_URI_PREFIX) {
                    roles.push(Role::parse(r).ok_or(format!("unknown role `{r}`"))?);
                }
            }
        }
    }
    let role = match roles.as_slice() {
        [one] => *one,
        [] => return Err("certificate carries no quorate role".into()),
        _ => return Err("certificate carries more than one quorate role".into()),
    };
    Ok(PeerIdentity {
        role,
        name,
        cert_sha256: Sha256::digest(cert_der).into(),
        key_sha256: Sha256::digest(cert.public_key().raw).into(),
        not_after_unix: cert.validity().not_after.timestamp(),
    })
}

/// Extracts the caller's identity from a request served over [`incoming`].
#[allow(clippy::result_large_err)]
pub fn peer_identity<T>(req: &tonic::Request<T>) -> Result<PeerIdentity, tonic::Status> {
    let certs = req
        .peer_certs()
        .ok_or_else(|| tonic::Status::unauthenticated("no client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| tonic::Status::unauthenticated("no client certificate"))?;
    identity_of(leaf.as_ref()).map_err(tonic::Status::unauthenticated)
}

/// A tonic interceptor that admits only callers whose certificate has `role`.
#[allow(clippy::result_large_err)]
pub fn require_role(
    role: Role,
) -> impl Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |req: tonic::Request<()>| {
        let peer = peer_identity(&req)?;
        if peer.role != role {
            return Err(tonic::Status::permission_denied(format!(
                "transport-role: this service needs a `{role}` certificate; `{}` presented a `{}` certificate",
                peer.name, peer.role
            )));
        }
        Ok(req)
    }
}

/// PEM material for one TLS endpoint: the CA it trusts and its own certificate and key.
pub struct TlsMaterial {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca", &self.ca.len())
            .field("chain", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

fn pem_err(path: &Path, e: impl fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl TlsMaterial {
    /// Loads the CA bundle, certificate chain and private key from PEM files.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read_certs = |p: &Path| -> Result<Vec<CertificateDer<'static>>, TlsError> {
            let certs = CertificateDer::pem_file_iter(p)
                .map_err(|e| pem_err(p, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_err(p, e))?;
            if certs.is_empty() {
                return Err(pem_err(p, "no certificate in file"));
            }
            Ok(certs)
        };
        Ok(Self {
            ca: read_certs(ca)?,
            chain: read_certs(cert)?,
            key: PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e))?,
        })
    }

    /// The DER of this endpoint's own (leaf) certificate.
    pub fn leaf_der(&self) -> &[u8] {
        self.chain[0].as_ref()
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in &self.ca {
            roots
                .add(c.clone())
                .map_err(|e| TlsError::Config(format!("CA certificate: {e}")))?;
        }
        Ok(Arc::new(roots))
    }

    /// Server side: TLS 1.3 only, client certificate from our CA required, ALPN h2.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The metrics endpoint's server side: as [`Self::server_config`] (TLS 1.3, a client
    /// certificate from our CA required) but speaking HTTP/1.1, as scrapers do.
    pub fn metrics_server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut cfg = (*self.server_config()?).clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The metrics scraper's client side: as [`Self::client_config`] but speaking HTTP/1.1.
    pub fn metrics_client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let mut cfg = (*self.client_config()?).clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// Client side: TLS 1.3 only, server verified against our CA, our certificate presented.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Turns a bound listener into a stream of authenticated TLS connections for
/// `Server::serve_with_incoming_shutdown`. Handshakes run concurrently with a timeout, so a
/// slow or hostile client cannot stall accepts; failed handshakes are dropped and logged.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Checks an address a node dials: `host:port`, the host a DNS name or an IP address (IPv6 in
/// brackets), the port a number (0 stands for one given at run time, as development clusters
/// write it). Says what is wrong, for a config error that names its field.
pub fn check_endpoint(addr: &str) -> Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{addr}` is not host:port"))?;
    if port.parse::<u16>().is_err() {
        return Err(format!("`{addr}`: the port must be a number up to 65535"));
    }
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6,
        // An IPv6 address without brackets cannot be told from its port.
        None if host.contains(':') => {
            return Err(format!(
                "`{addr}`: write an IPv6 address in brackets, [addr]:port"
            ))
        }
        None => host,
    };
    check_server_name(host).map_err(|e| format!("`{addr}`: {e}"))
}

/// Checks a TLS server name: a DNS name or an IP address, as the server's certificate names it.
pub fn check_server_name(name: &str) -> Result<(), String> {
    ServerName::try_from(name.to_string())
        .map(|_| ())
        .map_err(|_| format!("`{name}` is not a DNS name or an IP address"))
}

/// Opens a gRPC channel over mutual TLS 1.3 to `addr`, checking the server's certificate
/// against `server_name`. The channel connects eagerly, so an unreachable or untrusted server
/// is reported here.
pub async fn connect(
    addr: &str,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> Result<Channel, TlsError> {
    let err = |reason: String| TlsError::Connect {
        addr: addr.to_string(),
        reason,
    };
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| err(format!("server name `{server_name}`: {e}")))?;
    let target: SocketAddr = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("address resolves to nothing".into()))?;
    // The URI only names the authority for HTTP/2; the connector below does TCP and TLS itself.
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| err(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let connector = TlsConnector::from(config);
    let service = tower::service_fn(move |_: Uri| {
        let connector = connector.clone();
        let name = name.clone();
        async move {
            let tcp = TcpStream::connect(target).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    endpoint
        .connect_with_connector(service)
        .await
        .map_err(|e| err(format!("{e}: {}", source_chain(&e))))
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_server_names_are_checked() {
        for ok in [
            "coordinator.exchange.internal:7443",
            "127.0.0.1:7443",
            "[::1]:7443",
            "localhost:1",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "not a host:port",
            "host",
            "host:x",
            "host:70000",
            "bad_name!:7443",
            ":7443",
            "::1:7443",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
        assert!(check_server_name("coordinator.exchange.internal").is_ok());
        assert!(check_server_name("10.0.0.1").is_ok());
        assert!(check_server_name("bad name!").is_err());
        assert!(check_server_name("").is_err());
    }
}
