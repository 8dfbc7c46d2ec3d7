//! The cluster CA: `quorate ca init` on the CA host, and loading the CA to sign a request.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use quorate_signer::write_secret;
use quorate_wire::pki::Authority;

use super::{refuse_existing, write_public};

/// `quorate ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Creates the cluster CA (ten years): DIR/ca.pem (public, every node trusts it) and
    /// DIR/ca.key (secret, owner-only). Run it on the CA host; refuses to overwrite.
    Init {
        /// The CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// The CA certificate's common name.
        #[arg(long, default_value = "quorate-ca")]
        name: String,
    },
}

/// The CA certificate in a CA directory.
pub fn ca_cert_path(ca: &Path) -> PathBuf {
    ca.join("ca.pem")
}

/// The CA key in a CA directory.
pub fn ca_key_path(ca: &Path) -> PathBuf {
    ca.join("ca.key")
}

/// Creates a CA in `dir` (`ca.pem`, `ca.key`), refusing to overwrite either.
pub fn write_ca(dir: &Path, name: &str) -> anyhow::Result<Authority> {
    let (cert, key) = (ca_cert_path(dir), ca_key_path(dir));
    refuse_existing(&[&cert, &key])?;
    let ca = Authority::generate(name)?;
    write_secret(&key, ca.key_pem().as_bytes())?;
    write_public(&cert, &ca.cert_pem())?;
    Ok(ca)
}

/// Loads the CA of a CA directory, naming the files it reads.
pub fn load_ca(dir: &Path) -> anyhow::Result<Authority> {
    let (cert, key) = (ca_cert_path(dir), ca_key_path(dir));
    let key_pem = zeroize::Zeroizing::new(
        std::fs::read_to_string(&key)
            .with_context(|| format!("reading the CA key {}", key.display()))?,
    );
    Ok(Authority::load(
        &std::fs::read_to_string(&cert)
            .with_context(|| format!("reading the CA certificate {}", cert.display()))?,
        &key_pem,
    )?)
}

/// Runs `quorate ca …`.
pub fn run_ca(cmd: CaCommand) -> anyhow::Result<u8> {
    match cmd {
        CaCommand::Init { ca, name } => {
            write_ca(&ca, &name)?;
            println!(
                "wrote {} (secret: keep it on this host)",
                ca_key_path(&ca).display()
            );
            println!(
                "wrote {} (public: install it as the CA on every node and client)",
                ca_cert_path(&ca).display()
            );
            Ok(0)
        }
    }
}
