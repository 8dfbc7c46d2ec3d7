//! Keys made on their own hosts: `quorate keygen` for the coordinator, the backend and each
//! admin.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use k256::ecdsa::SigningKey;
use quorate_core::identity::IdentitySecret;
use quorate_signer::write_secret;
use quorate_wire::tls::Role;
use rand::rngs::OsRng;

use super::{refuse, refuse_existing, rule, write_public};

/// `quorate keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// coordinator, backend or admin (a signer uses `quorate-signer init`).
    #[arg(long)]
    pub role: String,
    /// The name the CA will certify (the certificate's common name), e.g. `admin-1`.
    #[arg(long)]
    pub name: String,
    /// Directory to write into: ROLE.key (secret) and ROLE.csr; for backend and admin also
    /// signing.key (secret) and signing.pub.
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes a new backend intent-signing key (hex) to `path`; returns its compressed public key.
pub fn write_backend_key(path: &Path) -> anyhow::Result<String> {
    let sk = SigningKey::random(&mut OsRng);
    let secret = zeroize::Zeroizing::new(hex::encode(sk.to_bytes()));
    write_secret(path, secret.as_bytes())?;
    Ok(hex::encode(
        sk.verifying_key().to_encoded_point(true).as_bytes(),
    ))
}

/// Writes a new admin key (hex) to `path`; returns it.
pub fn write_admin_key(path: &Path) -> anyhow::Result<IdentitySecret> {
    let key = IdentitySecret::generate(&mut OsRng);
    let secret = zeroize::Zeroizing::new(hex::encode(key.to_bytes().as_slice()));
    write_secret(path, secret.as_bytes())?;
    Ok(key)
}

/// Reads an admin key file (hex).
pub fn read_admin_key(path: &Path) -> anyhow::Result<IdentitySecret> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading admin key {}", path.display()))?,
    );
    let bytes = zeroize::Zeroizing::new(
        hex::decode(text.trim()).context("admin key: expected 64 hex digits")?,
    );
    IdentitySecret::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("admin key: {e}"))
}

/// Runs `quorate keygen`; returns what to print (public material only).
pub fn keygen(a: &KeygenArgs) -> anyhow::Result<String> {
    let role = match Role::parse(&a.role) {
        Some(r @ (Role::Coordinator | Role::Backend | Role::Admin)) => r,
        Some(Role::Signer) => {
            return refuse(
                rule::ARGUMENT,
                "a signer makes its keys with `quorate-signer init --config signer.toml`",
            )
        }
        _ => {
            return refuse(
                rule::ARGUMENT,
                "--role must be coordinator, backend or admin",
            )
        }
    };
    let tls_key = a.out.join(format!("{}.key", role.as_str()));
    let csr = a.out.join(format!("{}.csr", role.as_str()));
    let (signing, signing_pub) = (a.out.join("signing.key"), a.out.join("signing.pub"));
    let mut outputs = vec![tls_key.as_path(), csr.as_path()];
    if role != Role::Coordinator {
        outputs.extend([signing.as_path(), signing_pub.as_path()]);
    }
    refuse_existing(&outputs)?;
    let (key_pem, csr_pem) = quorate_wire::pki::key_and_csr(&a.name)?;
    let key_pem = zeroize::Zeroizing::new(key_pem);
    write_secret(&tls_key, key_pem.as_bytes())?;
    write_public(&csr, &csr_pem)?;
    let mut out = format!(
        "wrote {} (secret) and {} (have the cluster CA sign it as `{}`)\n",
        tls_key.display(),
        csr.display(),
        role.as_str()
    );
    let line = match role {
        Role::Backend => Some(("backend_key", write_backend_key(&signing)?)),
        Role::Admin => Some(("admin_key", write_admin_key(&signing)?.public().to_string())),
        _ => None,
    };
    if let Some((what, public)) = line {
        write_public(&signing_pub, &format!("{public}\n"))?;
        out.push_str(&format!(
            "wrote {} (secret) and {}\n{what} = \"{public}\"\n",
            signing.display(),
            signing_pub.display()
        ));
    }
    Ok(out)
}
