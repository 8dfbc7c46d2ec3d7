//! Signer configuration (TOML). Loaded and validated completely before anything connects;
//! relative paths are relative to the config file's directory.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use quorate_core::atrest::Kek;
use serde::Deserialize;

/// Errors in the signer's configuration.
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

/// The signer's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    /// This signer's name; must match its certificate and the manifest.
    pub name: String,
    /// Coordinator address, `host:port`.
    pub coordinator: String,
    /// Name the coordinator's certificate must carry (DNS name or IP).
    pub coordinator_server_name: String,
    /// Further coordinators of the same cluster: the signer holds a link to each at once
    /// and answers any of them, deciding everything itself as it does for the first.
    #[serde(default)]
    pub other_coordinators: Vec<CoordinatorEndpoint>,
    /// Cluster manifest.
    pub manifest: PathBuf,
    /// Directory of the signer's database.
    pub data_dir: PathBuf,
    /// TLS files.
    pub tls: TlsFiles,
    /// Secret key files.
    pub keys: KeyFiles,
    /// Signing limits.
    #[serde(default)]
    pub signing: SigningLimits,
    /// Local policy.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Log format.
    #[serde(default)]
    pub log: LogConfig,
    /// Prometheus metrics, written to a file (off unless set).
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
}

/// Another coordinator to attach to.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorEndpoint {
    /// `host:port`.
    pub address: String,
    /// Name its certificate must carry (DNS name or IP).
    pub server_name: String,
}

/// Metrics for an egress-only node: no port is opened. The exposition is written to a file
/// at an interval (atomically: a temporary file, then a rename), for node_exporter's textfile
/// collector or any agent that ships files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// The file (conventionally `<name>.prom` in the collector's directory).
    pub textfile: PathBuf,
    /// How often it is rewritten.
    #[serde(default = "default_metrics_interval", with = "humantime_serde")]
    pub interval: Duration,
}

fn default_metrics_interval() -> Duration {
    Duration::from_secs(15)
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

/// Where the secret keys are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFiles {
    /// Identity key, sealed under the KEK.
    pub identity: PathBuf,
    /// File holding the key-encryption key (64 hex digits). One of `kek_file`, `kek_env`.
    pub kek_file: Option<PathBuf>,
    /// Environment variable holding the KEK.
    pub kek_env: Option<String>,
}

/// Nonce and timing limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningLimits {
    /// Most outstanding signing nonces.
    pub nonce_limit: usize,
    /// How long a nonce stays usable.
    #[serde(with = "humantime_serde")]
    pub nonce_ttl: Duration,
    /// How far in the future an intent's creation time may be.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
}

impl Default for SigningLimits {
    fn default() -> Self {
        Self {
            nonce_limit: 4096,
            nonce_ttl: Duration::from_secs(60),
            max_clock_skew: Duration::from_secs(300),
        }
    }
}

/// Local switches on top of the governed policy (which comes from the admins, signed).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The operator's emergency stop: refuse every withdrawal whatever the governed policy
    /// says.
    #[serde(default)]
    pub frozen: bool,
}

/// Logging.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// JSON lines instead of text.
    #[serde(default)]
    pub json: bool,
}

impl SignerConfig {
    /// Loads, resolves and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg: SignerConfig =
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
            &mut cfg.keys.identity,
        ] {
            *p = base.join(&*p);
        }
        if let Some(p) = cfg.keys.kek_file.as_mut() {
            *p = base.join(&*p);
        }
        if let Some(m) = cfg.metrics.as_mut() {
            m.textfile = base.join(&m.textfile);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if let Err(e) = quorate_wire::tls::check_endpoint(&self.coordinator) {
            return bad(format!("coordinator: {e}"));
        }
        if let Err(e) = quorate_wire::tls::check_server_name(&self.coordinator_server_name) {
            return bad(format!("coordinator_server_name: {e}"));
        }
        let mut seen = std::collections::BTreeSet::from([self.coordinator.as_str()]);
        for (i, c) in self.other_coordinators.iter().enumerate() {
            if let Err(e) = quorate_wire::tls::check_endpoint(&c.address) {
                return bad(format!("other_coordinators[{i}].address: {e}"));
            }
            if let Err(e) = quorate_wire::tls::check_server_name(&c.server_name) {
                return bad(format!("other_coordinators[{i}].server_name: {e}"));
            }
            if !seen.insert(&c.address) {
                return bad(format!(
                    "other_coordinators[{i}].address: `{}` is listed twice",
                    c.address
                ));
            }
        }
        if self.keys.kek_file.is_some() == self.keys.kek_env.is_some() {
            return bad("keys: set exactly one of `kek_file` and `kek_env`".into());
        }
        if self.signing.nonce_limit == 0 {
            return bad("signing.nonce_limit must be at least 1".into());
        }
        if self.signing.nonce_ttl.is_zero() {
            return bad("signing.nonce_ttl must be positive".into());
        }
        Ok(())
    }

    /// Every coordinator to attach to, `(address, server name)`: `coordinator` first.
    pub fn coordinators(&self) -> Vec<(String, String)> {
        std::iter::once((
            self.coordinator.clone(),
            self.coordinator_server_name.clone(),
        ))
        .chain(
            self.other_coordinators
                .iter()
                .map(|c| (c.address.clone(), c.server_name.clone())),
        )
        .collect()
    }

    /// Reads the key-encryption key from its file or environment variable.
    pub fn kek(&self) -> Result<Kek, ConfigError> {
        let text = match (&self.keys.kek_file, &self.keys.kek_env) {
            (Some(f), _) => {
                zeroize::Zeroizing::new(std::fs::read_to_string(f).map_err(|source| {
                    ConfigError::Io {
                        path: f.display().to_string(),
                        source,
                    }
                })?)
            }
            (None, Some(var)) => zeroize::Zeroizing::new(std::env::var(var).map_err(|_| {
                ConfigError::Invalid(format!("environment variable {var} (the KEK) is not set"))
            })?),
            (None, None) => {
                return Err(ConfigError::Invalid(
                    "keys: no key-encryption key configured".into(),
                ))
            }
        };
        Kek::from_hex(&text).map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deploy_example_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/signer.toml");
        let cfg = SignerConfig::load(&path).unwrap();
        assert_eq!(cfg.name, "signer-1");
        assert_eq!(cfg.keys.kek_env.as_deref(), Some("QUORATE_KEK"));
        assert!(cfg.tls.cert.ends_with("tls/signer.pem"));
        assert!(!cfg.policy.frozen);
        assert_eq!(cfg.signing.nonce_ttl, Duration::from_secs(60));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/signer.toml"),
        )
        .unwrap();
        for (bad, why) in [
            (format!("{base}\nsurprise = 1\n"), "unknown field"),
            (base.replace("kek_env = \"QUORATE_KEK\"", ""), "exactly one"),
            (
                base.replace("nonce_limit = 4096", "nonce_limit = 0"),
                "nonce_limit",
            ),
            (
                base.replace("frozen = false", "frozen = false\n[[policy.assets]]\n"),
                "unknown field",
            ),
            (
                base.replace(
                    "manifest = ",
                    "other_coordinators = [{ address = \"coordinator.exchange.internal:7443\", server_name = \"b\" }]\nmanifest = ",
                ),
                "listed twice",
            ),
            (
                base.replace(
                    "manifest = ",
                    "other_coordinators = [{ address = \"b.internal\", server_name = \"b.internal\" }]\nmanifest = ",
                ),
                "other_coordinators[0].address",
            ),
        ] {
            let p = dir.path().join("s.toml");
            std::fs::write(&p, bad).unwrap();
            let err = SignerConfig::load(&p).unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
    }
}
