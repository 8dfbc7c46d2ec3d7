//! The cluster manifest: `quorate manifest build` from public material only, and its
//! `--signer` arguments.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use quorate_core::identity::IdentityPublic;
use quorate_wire::manifest::{Manifest, ManifestDoc, SignerDoc, MANIFEST_VERSION};

use super::{refuse, refuse_existing, rule, write_public};

/// `quorate manifest …`.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Builds the cluster manifest from public material only, validates it as every node will,
    /// and prints its hash (what `quorate status` shows; every operator compares it).
    Build(ManifestArgs),
}

/// `quorate manifest build`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// Threshold t: how many signers make a signature.
    #[arg(long)]
    pub threshold: u16,
    /// Distinct admin signatures the genesis policy needs.
    #[arg(long)]
    pub admin_quorum: u16,
    /// An admin's public key (`admin_key` from `quorate keygen --role admin`); repeatable.
    #[arg(long = "admin-key", required = true)]
    pub admin_keys: Vec<String>,
    /// The backend's public key (`backend_key` from `quorate keygen --role backend`);
    /// repeatable.
    #[arg(long = "backend-key", required = true)]
    pub backend_keys: Vec<String>,
    /// A signer: NAME:IDENTIFIER:IDENTITY_KEY:CERT_PEM_PATH (identity_key from
    /// `quorate-signer init`, the certificate the CA issued); repeatable.
    #[arg(long = "signer", required = true)]
    pub signers: Vec<String>,
    /// Allows 2t ≤ n (two disjoint quorums could then each sign another intent under one id).
    #[arg(long)]
    pub allow_disjoint_quorums: bool,
    /// The manifest to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// One `--signer` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerArg {
    /// Name (the certificate's common name).
    pub name: String,
    /// FROST identifier.
    pub identifier: u16,
    /// Identity public key, hex.
    pub identity_key: String,
    /// Path of its certificate (PEM).
    pub cert: PathBuf,
}

/// Parses NAME:IDENTIFIER:IDENTITY_KEY:CERT_PEM_PATH (the path may itself hold colons).
pub fn parse_signer(s: &str) -> anyhow::Result<SignerArg> {
    let form = "--signer NAME:IDENTIFIER:IDENTITY_KEY:CERT_PEM_PATH";
    let mut parts = s.splitn(4, ':');
    let (Some(name), Some(id), Some(key), Some(cert)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return refuse(
            rule::ARGUMENT,
            format!("{form}: `{s}` has fewer than four parts"),
        );
    };
    if name.is_empty() || cert.is_empty() {
        return refuse(rule::ARGUMENT, format!("{form}: `{s}` has an empty part"));
    }
    let Ok(identifier) = id.parse::<u16>() else {
        return refuse(
            rule::ARGUMENT,
            format!("{form}: identifier `{id}` is not a number"),
        );
    };
    if IdentityPublic::from_hex(key).is_err() {
        return refuse(
            rule::ARGUMENT,
            format!("{form}: `{key}` is not an identity key (33-byte compressed secp256k1, hex)"),
        );
    }
    Ok(SignerArg {
        name: name.to_string(),
        identifier,
        identity_key: key.to_string(),
        cert: PathBuf::from(cert),
    })
}

/// Validates `doc` with the code every node runs; returns the manifest and its file text.
pub fn manifest_text(doc: &ManifestDoc) -> anyhow::Result<(Manifest, String)> {
    let m = match Manifest::from_doc(doc) {
        Ok(m) => m,
        Err(e) => return refuse(rule::MANIFEST, e.to_string()),
    };
    let mut text = String::from(
        "# Quorate cluster manifest. Every node pins this file; compare its hash out of band.\n",
    );
    text.push_str(&toml::to_string(doc)?);
    Ok((m, text))
}

/// Runs `quorate manifest build`; returns what to print.
pub fn build_manifest(a: &ManifestArgs) -> anyhow::Result<String> {
    refuse_existing(&[&a.out])?;
    let mut signers = Vec::new();
    for s in &a.signers {
        let s = parse_signer(s)?;
        let certificate = std::fs::read_to_string(&s.cert)
            .with_context(|| format!("reading {}'s certificate {}", s.name, s.cert.display()))?;
        signers.push(SignerDoc {
            name: s.name,
            identifier: s.identifier,
            identity_key: s.identity_key,
            certificate,
        });
    }
    let doc = ManifestDoc {
        version: MANIFEST_VERSION,
        threshold: a.threshold,
        backend_keys: a.backend_keys.clone(),
        admin_keys: a.admin_keys.clone(),
        admin_quorum: a.admin_quorum,
        signers,
        allow_disjoint_quorums: a.allow_disjoint_quorums,
    };
    let (m, text) = manifest_text(&doc)?;
    write_public(&a.out, &text)?;
    Ok(format!(
        "wrote {} ({} of {} signers, {} of {} admins)\nmanifest_hash = \"{}\"\n",
        a.out.display(),
        m.threshold,
        m.signers.len(),
        m.admin_quorum,
        m.admin_keys.len(),
        hex::encode(m.hash())
    ))
}

pub(super) fn load_manifest(path: &Path) -> anyhow::Result<Manifest> {
    Manifest::load(path).with_context(|| format!("loading the manifest {}", path.display()))
}

#[cfg(test)]
mod tests {
    use quorate_core::identity::IdentitySecret;
    use rand::rngs::OsRng;

    use super::*;
    use crate::ceremony::testing::rule_of;

    #[test]
    fn signer_argument_parses_and_keeps_colons_in_the_path() {
        let key = IdentitySecret::generate(&mut OsRng).public().to_string();
        let s = parse_signer(&format!("signer-2:2:{key}:/c:/x.pem")).unwrap();
        assert_eq!(
            s,
            SignerArg {
                name: "signer-2".into(),
                identifier: 2,
                identity_key: key.clone(),
                cert: "/c:/x.pem".into(),
            }
        );
        for bad in [
            format!("signer-2:2:{key}"),
            format!("signer-2:two:{key}:c.pem"),
            "signer-2:2:abcd:c.pem".to_string(),
            format!(":2:{key}:c.pem"),
            format!("signer-2:2:{key}:"),
        ] {
            assert_eq!(
                rule_of(parse_signer(&bad).unwrap_err()),
                rule::ARGUMENT,
                "{bad}"
            );
        }
    }
}
