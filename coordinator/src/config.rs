//! Coordinator configuration (TOML), validated completely before any port is bound. Relative
//! paths are relative to the config file's directory.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// Errors in the coordinator's configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML for this config.
    #[error("{path}: {source}")]
    Syntax {
        /// Path.
        path: String,
        /// Cause.
        source: toml::de::Error,
    },
    /// Valid syntax, invalid content.
    #[error("{0}")]
    Invalid(String),
}

/// The coordinator's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// Address to listen on (all services share one TLS port).
    pub listen: SocketAddr,
    /// Cluster manifest.
    pub manifest: PathBuf,
    /// Database directory.
    pub data_dir: PathBuf,
    /// Signed genesis policy (JSON file form), installed on first start when the database has
    /// no policy yet. Its admins, quorum and backend keys must match the manifest.
    #[serde(default)]
    pub genesis_policy: Option<PathBuf>,
    /// TLS files.
    pub tls: TlsFiles,
    /// Signing behaviour.
    #[serde(default)]
    pub signing: SigningConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Prometheus metrics endpoint (off unless set).
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
}

/// The metrics endpoint: HTTPS with a client certificate from the cluster CA.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to serve `GET /metrics` on (`127.0.0.1:0` picks a free port, printed on stdout
    /// as `metrics on ADDR`).
    pub listen: std::net::SocketAddr,
}

/// TLS file paths.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// CA certificate(s) to trust.
    pub ca: PathBuf,
    /// Our certificate.
    pub cert: PathBuf,
    /// Our private key.
    pub key: PathBuf,
}

/// Signing behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// How long to wait for one signer's answer.
    #[serde(with = "humantime_serde")]
    pub signer_timeout: Duration,
    /// How many quorums to try for one withdrawal.
    pub max_attempts: u32,
    /// How long Submit waits when the call carries no deadline.
    #[serde(with = "humantime_serde")]
    pub default_wait: Duration,
    /// How far in the future an intent's creation time may be.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// One-round signing: how many commitments to ask each signer to pre-generate at a time
    /// (refilled when half are used). 0 turns it off: every withdrawal then takes a commit
    /// round first.
    pub presign_batch: u32,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self {
            signer_timeout: Duration::from_secs(5),
            max_attempts: 4,
            default_wait: Duration::from_secs(30),
            max_clock_skew: Duration::from_secs(300),
            presign_batch: 64,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// JSON lines instead of text.
    #[serde(default)]
    pub json: bool,
}

impl CoordinatorConfig {
    /// Loads, resolves and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg: CoordinatorConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Syntax {
                path: path.display().to_string(),
                source,
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut cfg.manifest,
            &mut cfg.data_dir,
            &mut cfg.tls.ca,
            &mut cfg.tls.cert,
            &mut cfg.tls.key,
        ] {
            *p = base.join(&*p);
        }
        if let Some(p) = cfg.genesis_policy.as_mut() {
            *p = base.join(&*p);
        }
        let s = &cfg.signing;
        if s.presign_batch > 256 {
            return Err(ConfigError::Invalid(
                "signing.presign_batch must be 0..=256 (a signer takes at most 256 at a time)"
                    .into(),
            ));
        }
        if s.max_attempts == 0 || s.max_attempts > 64 {
            return Err(ConfigError::Invalid(
                "signing.max_attempts must be 1..=64".into(),
            ));
        }
        if s.signer_timeout.is_zero() || s.default_wait.is_zero() {
            return Err(ConfigError::Invalid(
                "signing.signer_timeout and signing.default_wait must be positive".into(),
            ));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deploy_example_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/coordinator.toml");
        let cfg = CoordinatorConfig::load(&path).unwrap();
        assert_eq!(cfg.listen.port(), 7443);
        assert_eq!(cfg.signing.signer_timeout, Duration::from_secs(5));
        assert!(cfg.log.json);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&p, text.replace("max_attempts = 4", "max_attempts = 0")).unwrap();
        assert!(CoordinatorConfig::load(&p).is_err());
        std::fs::write(&p, format!("{text}\nplaintext = true\n")).unwrap();
        assert!(CoordinatorConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
    }
}
