//! The production setup ceremony, one step per command, each run on the machine that owns the
//! secret it makes or uses (deploy/README.md, "Setting up a cluster, step by step"):
//!
//! - `quorate ca init` on the CA host: the cluster CA;
//! - `quorate keygen` on the coordinator, backend and each admin host: a TLS key and a CSR, and
//!   the backend's intent-signing key or the admin's policy key (signers use
//!   `quorate-signer init`);
//! - `quorate manifest build` anywhere, from public material only;
//! - `quorate genesis draft`, then `genesis sign` on each admin's desk, then `genesis combine`:
//!   a genesis policy that each admin signs on their own.
//!
//! Every refusal names its rule (a `ceremony-…` tag) and writes nothing. Secrets are written
//! with [`write_secret`](quorate_signer::write_secret) (owner-only, never over an existing file)
//! and never printed.

use std::{fmt, path::Path};

use anyhow::Context;

mod ca;
mod genesis;
mod keygen;
mod manifest;

pub use ca::{ca_cert_path, ca_key_path, load_ca, run_ca, write_ca, CaCommand};
pub use genesis::{run_genesis, GenesisCommand};
pub use keygen::{keygen, read_admin_key, write_admin_key, write_backend_key, KeygenArgs};
pub use manifest::{build_manifest, manifest_text, ManifestCommand};

/// Stable tags of the ceremony's refusals.
pub mod rule {
    /// An output file exists already.
    pub const OVERWRITE: &str = "ceremony-overwrite";
    /// A command-line value is malformed.
    pub const ARGUMENT: &str = "ceremony-argument";
    /// The manifest does not validate.
    pub const MANIFEST: &str = "ceremony-manifest";
    /// The genesis policy names other admins, another quorum or other backend keys than the
    /// manifest pins, or is not a version 1.
    pub const GENESIS_MANIFEST: &str = "ceremony-genesis-manifest";
    /// The key is not one of the manifest's admins.
    pub const NOT_ADMIN: &str = "ceremony-not-admin";
    /// A signature is over another draft.
    pub const WRONG_DRAFT: &str = "ceremony-wrong-draft";
    /// A signature does not verify.
    pub const BAD_SIGNATURE: &str = "ceremony-bad-signature";
    /// Fewer distinct admins signed than the quorum.
    pub const QUORUM: &str = "ceremony-quorum";
}

/// A refusal: nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The rule's tag ([`rule`]).
    pub rule: &'static str,
    /// What to do about it.
    pub why: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused ({}): {}; nothing written", self.rule, self.why)
    }
}

impl std::error::Error for Refused {}

fn refuse<T>(rule: &'static str, why: impl Into<String>) -> anyhow::Result<T> {
    Err(Refused {
        rule,
        why: why.into(),
    }
    .into())
}

/// Refuses if any of `paths` exists (checked before anything is written).
pub fn refuse_existing(paths: &[&Path]) -> anyhow::Result<()> {
    for p in paths {
        if p.exists() {
            return refuse(
                rule::OVERWRITE,
                format!("{} exists; refusing to overwrite it", p.display()),
            );
        }
    }
    Ok(())
}

/// Writes a public file, creating its directory, never over an existing file.
pub fn write_public(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Helpers shared by the ceremony's unit tests.
#[cfg(test)]
mod testing {
    use super::Refused;

    pub(super) fn rule_of(e: anyhow::Error) -> &'static str {
        e.downcast_ref::<Refused>()
            .unwrap_or_else(|| panic!("not a refusal: {e:#}"))
            .rule
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testing::rule_of;

    #[test]
    fn existing_outputs_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        write_ca(dir.path(), "test-ca").unwrap();
        let pem = std::fs::read(ca_cert_path(dir.path())).unwrap();
        assert_eq!(
            rule_of(write_ca(dir.path(), "test-ca").err().unwrap()),
            rule::OVERWRITE
        );
        assert_eq!(std::fs::read(ca_cert_path(dir.path())).unwrap(), pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(ca_key_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "ca.key mode {mode:o}");
        }
        // keygen refuses before writing anything when one of its outputs exists.
        let out = dir.path().join("admin");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("signing.pub"), "x").unwrap();
        let a = KeygenArgs {
            role: "admin".into(),
            name: "admin-1".into(),
            out: out.clone(),
        };
        assert_eq!(rule_of(keygen(&a).unwrap_err()), rule::OVERWRITE);
        assert!(!out.join("admin.key").exists() && !out.join("signing.key").exists());
        std::fs::remove_file(out.join("signing.pub")).unwrap();
        let printed = keygen(&a).unwrap();
        let key = read_admin_key(&out.join("signing.key")).unwrap();
        assert!(printed.contains(&format!("admin_key = \"{}\"", key.public())));
        assert!(!printed.contains(&hex::encode(key.to_bytes().as_slice())));
        assert_eq!(rule_of(keygen(&a).unwrap_err()), rule::OVERWRITE);
    }
}
