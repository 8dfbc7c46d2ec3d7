//! `quorate certs`: the development shortcut that makes a whole cluster's identities at once —
//! a CA, certificates for the coordinator, n signers, a backend and an admin client, each
//! signer's identity key (sealed under its own KEK), the backend's and admin's signing keys,
//! the manifest, and a config file for every node. In production each operator makes its own
//! signer's keys on the signer host (`quorate-signer init`) and hands out only public parts.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use quorate_core::{
    atrest::Kek,
    identity::IdentitySecret,
    policy::{
        doc::zero_hash, governance::POLICY_APPROVAL_DOMAIN, AdminSignature, PolicyForm,
        SignedPolicy,
    },
};
use quorate_signer::{node::identity_purpose, write_secret};

use crate::ceremony;
use quorate_wire::{
    manifest::{ManifestDoc, SignerDoc, MANIFEST_VERSION},
    pki::loopback_hosts,
    tls::Role,
};
use rand::rngs::OsRng;

/// The client settings file other commands read from a cluster directory.
pub const CLIENT_FILE: &str = "client.toml";

/// Options for making a cluster directory.
pub struct ClusterSpec {
    /// Number of signers.
    pub signers: u16,
    /// Threshold.
    pub threshold: u16,
    /// Address the signers dial (overridable at run time).
    pub coordinator_addr: String,
    /// Genesis policy in its TOML form; `None` for the development default
    /// ([`DEV_POLICY`]). Its `admins`, `admin_quorum` and `backend_keys` are replaced by the
    /// keys made here.
    pub policy: Option<String>,
}

/// Development admins and their quorum.
pub const DEV_ADMINS: usize = 3;
/// Development admin quorum.
pub const DEV_ADMIN_QUORUM: u16 = 2;

/// The development genesis policy (admins and backend keys are filled in by `certs`).
pub const DEV_POLICY: &str = include_str!("dev_policy.toml");

/// The development policy's whitelisted Solana wallet.
pub const SOLANA_DESTINATION: &str = "GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB";

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Client settings written into a cluster directory.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    /// Coordinator `host:port`.
    pub coordinator: String,
    /// Name on the coordinator's certificate.
    pub server_name: String,
    /// Further coordinators of the same cluster, tried in order when `coordinator` cannot be
    /// reached or cannot sign now (the same request goes to the next).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_coordinators: Vec<Endpoint>,
    /// CA certificate.
    pub ca: PathBuf,
    /// Backend credentials: only on the backend host (an admin desk has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Credentials>,
    /// Admin credentials: only on an admin desk (the backend host has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Credentials>,
    /// The coordinator's metrics endpoint `host:port`, when it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// The admin desk's trust anchor: hex hash of the genesis policy (version 1). `quorate
    /// admin` verifies every policy version from it and signs nothing without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_genesis: Option<String>,
    /// The cluster manifest, whose identity keys verify the signers' status receipts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<PathBuf>,
    /// The directory this file was loaded from (the admin desk keeps its checkpoint there).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Another coordinator to reach.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `host:port`.
    pub address: String,
    /// Name on its certificate.
    pub server_name: String,
}

/// TLS certificate, key and signing key of a client role.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// TLS certificate.
    pub cert: PathBuf,
    /// TLS key.
    pub key: PathBuf,
    /// secp256k1 signing key (hex), for intents or approvals.
    pub signing_key: PathBuf,
}

impl ClientFile {
    /// Loads `dir/client.toml`, resolving paths against `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(CLIENT_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is a devnet running there? start one with `quorate devnet`, or pass --dir)",
                path.display()
            )
        })?;
        let mut c: ClientFile =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        c.ca = dir.join(&c.ca);
        for cr in [c.backend.as_mut(), c.admin.as_mut()].into_iter().flatten() {
            for p in [&mut cr.cert, &mut cr.key, &mut cr.signing_key] {
                *p = dir.join(&*p);
            }
        }
        if let Some(m) = c.manifest.as_mut() {
            *m = dir.join(&*m);
        }
        quorate_wire::tls::check_endpoint(&c.coordinator)
            .map_err(|e| anyhow::anyhow!("{}: coordinator: {e}", path.display()))?;
        quorate_wire::tls::check_server_name(&c.server_name)
            .map_err(|e| anyhow::anyhow!("{}: server_name: {e}", path.display()))?;
        for (i, o) in c.other_coordinators.iter().enumerate() {
            quorate_wire::tls::check_endpoint(&o.address).map_err(|e| {
                anyhow::anyhow!("{}: other_coordinators[{i}].address: {e}", path.display())
            })?;
            quorate_wire::tls::check_server_name(&o.server_name).map_err(|e| {
                anyhow::anyhow!(
                    "{}: other_coordinators[{i}].server_name: {e}",
                    path.display()
                )
            })?;
        }
        c.dir = dir.to_path_buf();
        Ok(c)
    }

    /// The coordinators to try, in order, as `(address, server name)`: only `addr` when one is
    /// given on the command line (`--coordinator`), else `coordinator` then
    /// `other_coordinators`.
    pub fn endpoints(&self, addr: Option<&str>) -> Vec<(String, String)> {
        match addr {
            Some(a) => vec![(a.to_string(), self.server_name.clone())],
            None => std::iter::once((self.coordinator.clone(), self.server_name.clone()))
                .chain(
                    self.other_coordinators
                        .iter()
                        .map(|o| (o.address.clone(), o.server_name.clone())),
                )
                .collect(),
        }
    }

    /// The `[backend]` credentials, or an error naming the missing section.
    pub fn backend(&self) -> anyhow::Result<&Credentials> {
        self.backend.as_ref().with_context(|| {
            format!(
                "{} has no [backend] section: this command needs the backend's certificate, key and signing key (run it on the backend host)",
                self.dir.join(CLIENT_FILE).display()
            )
        })
    }

    /// The `[admin]` credentials, or an error naming the missing section.
    pub fn admin(&self) -> anyhow::Result<&Credentials> {
        self.admin.as_ref().with_context(|| {
            format!(
                "{} has no [admin] section: this command needs an admin's certificate, key and signing key (run it on an admin desk)",
                self.dir.join(CLIENT_FILE).display()
            )
        })
    }

    /// Rewrites the metrics address in `dir/client.toml`.
    pub fn set_metrics(dir: &Path, addr: &str) -> anyhow::Result<()> {
        let path = dir.join(CLIENT_FILE);
        let text = std::fs::read_to_string(&path)?;
        let mut c: ClientFile = toml::from_str(&text)?;
        c.metrics = Some(addr.to_string());
        write_file(&path, &toml::to_string(&c)?)
    }

    /// Rewrites the coordinator address in `dir/client.toml`.
    pub fn set_coordinator(dir: &Path, addr: &str) -> anyhow::Result<()> {
        let path = dir.join(CLIENT_FILE);
        let text = std::fs::read_to_string(&path)?;
        let mut c: ClientFile = toml::from_str(&text)?;
        c.coordinator = addr.to_string();
        write_file(&path, &toml::to_string(&c)?)
    }
}

/// Creates a new cluster directory. Refuses to touch an existing one.
pub fn create(dir: &Path, spec: &ClusterSpec) -> anyhow::Result<()> {
    if dir.join("manifest.toml").exists() {
        bail!(
            "{} already holds a cluster (manifest.toml exists); use another --dir",
            dir.display()
        );
    }
    if spec.signers < 2 || spec.threshold < 2 || spec.threshold > spec.signers {
        bail!(
            "need 2 <= threshold <= signers (got {} of {})",
            spec.threshold,
            spec.signers
        );
    }
    std::fs::create_dir_all(dir)?;
    let ca = ceremony::write_ca(&dir.join("ca"), "quorate-dev-ca")?;

    let coord = ca.issue(Role::Coordinator, "coordinator", &loopback_hosts())?;
    write_file(&dir.join("coordinator/cert.pem"), &coord.cert_pem)?;
    write_secret(&dir.join("coordinator/key.pem"), coord.key_pem.as_bytes())?;

    let mut client_keys = Vec::new();
    let mut admin_secrets = Vec::new();
    let mut admin_keys = Vec::new();
    for i in 1..=DEV_ADMINS {
        let key = ceremony::write_admin_key(&dir.join(format!("admin/admin-{i}.key")))?;
        admin_keys.push(key.public().to_string());
        admin_secrets.push(key);
    }
    for (role, name) in [(Role::Backend, "backend"), (Role::Admin, "admin")] {
        let issued = ca.issue(role, name, &[])?;
        write_file(&dir.join(format!("{name}/cert.pem")), &issued.cert_pem)?;
        write_secret(
            &dir.join(format!("{name}/key.pem")),
            issued.key_pem.as_bytes(),
        )?;
        if role == Role::Backend {
            client_keys.push(ceremony::write_backend_key(
                &dir.join(format!("{name}/signing.key")),
            )?);
        }
    }

    let mut signers = Vec::new();
    for i in 1..=spec.signers {
        let name = format!("signer-{i}");
        let sdir = dir.join(&name);
        let issued = ca.issue(Role::Signer, &name, &[])?;
        write_file(&sdir.join("cert.pem"), &issued.cert_pem)?;
        write_secret(&sdir.join("key.pem"), issued.key_pem.as_bytes())?;
        let kek = Kek::generate(&mut OsRng);
        write_secret(&sdir.join("kek"), kek.to_hex().as_bytes())?;
        let identity = IdentitySecret::generate(&mut OsRng);
        let sealed = kek.seal(&mut OsRng, &identity_purpose(&name), &identity.to_bytes());
        write_secret(&sdir.join("identity.key"), &sealed)?;
        write_file(
            &sdir.join("signer.toml"),
            &signer_config(&name, &spec.coordinator_addr),
        )?;
        signers.push(SignerDoc {
            name,
            identifier: i,
            identity_key: identity.public().to_string(),
            certificate: issued.cert_pem,
        });
    }
    let doc = ManifestDoc {
        version: MANIFEST_VERSION,
        threshold: spec.threshold,
        backend_keys: vec![client_keys[0].clone()],
        admin_keys: admin_keys.clone(),
        admin_quorum: DEV_ADMIN_QUORUM,
        signers,
        allow_disjoint_quorums: false,
    };
    // Validated with the same code every node will run.
    let (_, manifest) = ceremony::manifest_text(&doc)?;
    write_file(&dir.join("manifest.toml"), &manifest)?;
    let genesis = write_genesis(dir, spec, &client_keys[0], &admin_keys, &admin_secrets)?;
    write_file(
        &dir.join("coordinator/coordinator.toml"),
        &coordinator_config(&spec.coordinator_addr),
    )?;
    let client = ClientFile {
        other_coordinators: Vec::new(),
        coordinator: spec.coordinator_addr.clone(),
        server_name: "localhost".into(),
        ca: "ca/ca.pem".into(),
        backend: Some(Credentials {
            cert: "backend/cert.pem".into(),
            key: "backend/key.pem".into(),
            signing_key: "backend/signing.key".into(),
        }),
        admin: Some(Credentials {
            cert: "admin/cert.pem".into(),
            key: "admin/key.pem".into(),
            signing_key: "admin/admin-1.key".into(),
        }),
        metrics: None,
        policy_genesis: Some(hex::encode(genesis)),
        manifest: Some("manifest.toml".into()),
        dir: PathBuf::new(),
    };
    write_file(&dir.join(CLIENT_FILE), &toml::to_string(&client)?)?;
    Ok(())
}

fn coordinator_config(listen: &str) -> String {
    let listen = if listen.starts_with("localhost:") {
        listen.replacen("localhost", "127.0.0.1", 1)
    } else {
        listen.to_string()
    };
    format!(
        r#"# Quorate coordinator (development cluster made by `quorate certs`).
listen = "{listen}"
manifest = "../manifest.toml"
data_dir = "data"
# Installed on first start if the coordinator has no policy yet.
genesis_policy = "../policy/genesis.json"

[tls]
ca = "../ca/ca.pem"
cert = "cert.pem"
key = "key.pem"

[signing]
signer_timeout = "5s"
max_attempts = 4
default_wait = "30s"
max_clock_skew = "5m"
# One-round signing: commitments each signer pre-generates at a time (0 = off).
presign_batch = 64

# Prometheus text over mutual TLS (`quorate metrics`); port 0 picks a free one, printed at start.
[metrics]
listen = "127.0.0.1:0"
"#
    )
}

fn signer_config(name: &str, coordinator: &str) -> String {
    format!(
        r#"# Quorate signer `{name}` (development cluster made by `quorate certs`).
name = "{name}"
coordinator = "{coordinator}"
coordinator_server_name = "localhost"
manifest = "../manifest.toml"
data_dir = "data"

[tls]
ca = "../ca/ca.pem"
cert = "cert.pem"
key = "key.pem"

[keys]
identity = "identity.key"
kek_file = "kek"

[signing]
nonce_limit = 4096
nonce_ttl = "60s"
max_clock_skew = "5m"

[policy]
# Local emergency stop: refuse every withdrawal whatever the governed policy says.
frozen = false

# Prometheus text, rewritten every interval (the signer opens no port).
[metrics]
textfile = "metrics.prom"
interval = "5s"
"#
    )
}

/// Writes `policy/genesis.toml` (the human form) and `policy/genesis.json` (the canonical
/// document signed by the first `admin_quorum` development admins). Returns its hash, which
/// the admin desk pins.
fn write_genesis(
    dir: &Path,
    spec: &ClusterSpec,
    backend_key: &str,
    admin_keys: &[String],
    admin_secrets: &[IdentitySecret],
) -> anyhow::Result<[u8; 32]> {
    let text = spec.policy.as_deref().unwrap_or(DEV_POLICY);
    let mut form = PolicyForm::parse(text).context("genesis policy")?;
    form.admins = admin_keys.to_vec();
    form.admin_quorum = DEV_ADMIN_QUORUM;
    form.backend_keys = vec![backend_key.to_string()];
    let doc = form.to_doc(1, &zero_hash()).context("genesis policy")?;
    let hash = doc.hash();
    let signed = SignedPolicy {
        signatures: admin_secrets
            .iter()
            .take(usize::from(DEV_ADMIN_QUORUM))
            .map(|k| AdminSignature::sign(k, POLICY_APPROVAL_DOMAIN, &[&hash]))
            .collect(),
        doc,
    };
    write_file(&dir.join("policy/genesis.toml"), text)?;
    write_file(
        &dir.join("policy/genesis.json"),
        &quorate_wire::convert::policy_file::signed_to_json(&signed),
    )?;
    Ok(hash)
}

/// Signs a CSR with the CA in the CA directory `ca` as `role`/`name`, refusing to overwrite
/// `out`.
pub fn sign_csr(
    ca: &Path,
    csr: &Path,
    name: &str,
    role: &str,
    hosts: &[String],
    days: u32,
    out: &Path,
) -> anyhow::Result<()> {
    let role = match Role::parse(role) {
        Some(r @ (Role::Signer | Role::Coordinator | Role::Backend | Role::Admin)) => r,
        _ => bail!("--role must be signer, coordinator, backend or admin"),
    };
    match (role, hosts.is_empty()) {
        (Role::Coordinator, true) => {
            bail!("a coordinator certificate needs at least one --host (the DNS name or IP address it is dialled by)")
        }
        (Role::Coordinator, false) => {}
        (_, false) => bail!("--host is for a coordinator certificate only"),
        (_, true) => {}
    }
    for h in hosts {
        quorate_wire::tls::check_server_name(h).map_err(|e| anyhow::anyhow!("--host: {e}"))?;
    }
    if days == 0 || days > quorate_wire::pki::MAX_LEAF_DAYS {
        bail!("--days must be 1 to {}", quorate_wire::pki::MAX_LEAF_DAYS);
    }
    if out.exists() {
        bail!("{} exists; refusing to overwrite", out.display());
    }
    let ca = ceremony::load_ca(ca)?;
    let csr_pem =
        std::fs::read_to_string(csr).with_context(|| format!("reading {}", csr.display()))?;
    // Never over a file that appeared since the check above.
    ceremony::write_public(out, &ca.sign_csr(&csr_pem, role, name, hosts, days)?)
}
