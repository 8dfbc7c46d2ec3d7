//! The cluster manifest: threshold t, every signer (name, FROST identifier, identity key,
//! certificate), and the backend and admin public keys. Every node pins the same file; its
//! hash is bound into the DKG so nodes with different manifests cannot form a group.

use std::{collections::BTreeSet, path::Path};

use quorate_core::{backend::BackendKey, identity::IdentityPublic};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tls::{identity_of, Role};

/// Current manifest format version.
pub const MANIFEST_VERSION: u32 = 1;
/// Most signers a cluster may have.
pub const MAX_SIGNERS: usize = 64;

/// Errors loading or validating a manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read.
    #[error("reading manifest {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML for a manifest.
    #[error("manifest: {0}")]
    Syntax(#[from] toml::de::Error),
    /// Valid syntax, invalid content.
    #[error("manifest: {0}")]
    Invalid(String),
}

/// The manifest as written in TOML.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestDoc {
    /// Format version, must be 1.
    pub version: u32,
    /// Threshold t: how many signers make a signature.
    pub threshold: u16,
    /// Hex compressed secp256k1 keys the backend signs intents with, as of the genesis policy
    /// (later policy versions may rotate them).
    pub backend_keys: Vec<String>,
    /// Hex compressed secp256k1 keys of the admins, pinned for the genesis policy.
    pub admin_keys: Vec<String>,
    /// Distinct admin signatures the genesis policy needs (it must also name these admins
    /// and this quorum).
    pub admin_quorum: u16,
    /// The signers.
    pub signers: Vec<SignerDoc>,
    /// Allows 2t ≤ n. Each signer binds a withdrawal id to one intent on its own, so with
    /// 2t ≤ n two disjoint quorums could sign two different intents under one id (each
    /// quorum's signers saw only one). Off unless set knowingly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_disjoint_quorums: bool,
}

/// One signer as written in TOML.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignerDoc {
    /// Name, equal to the certificate's common name.
    pub name: String,
    /// FROST identifier, 1..=n.
    pub identifier: u16,
    /// Hex compressed secp256k1 identity key.
    pub identity_key: String,
    /// The signer's TLS certificate, PEM.
    pub certificate: String,
}

/// A validated signer entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerEntry {
    /// Name.
    pub name: String,
    /// FROST identifier.
    pub identifier: u16,
    /// Identity key.
    pub identity_key: IdentityPublic,
    /// SHA-256 of the certificate DER (of the certificate the manifest holds).
    pub cert_sha256: [u8; 32],
    /// SHA-256 of its public key: a renewed certificate for the same key and name matches.
    pub key_sha256: [u8; 32],
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Threshold t.
    pub threshold: u16,
    /// Signers, sorted by identifier.
    pub signers: Vec<SignerEntry>,
    /// Backend keys.
    pub backend_keys: Vec<BackendKey>,
    /// Admin keys.
    pub admin_keys: Vec<IdentityPublic>,
    /// Admin quorum of the genesis policy.
    pub admin_quorum: u16,
    hash: [u8; 32],
}

fn invalid(s: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(s.into())
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates manifest TOML.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        Self::from_doc(&toml::from_str(text)?)
    }

    /// Validates a manifest document.
    pub fn from_doc(doc: &ManifestDoc) -> Result<Self, ManifestError> {
        if doc.version != MANIFEST_VERSION {
            return Err(invalid(format!(
                "version {} is not supported (expected {MANIFEST_VERSION})",
                doc.version
            )));
        }
        let n = doc.signers.len();
        if !(2..=MAX_SIGNERS).contains(&n) {
            return Err(invalid(format!(
                "{n} signers: a cluster has 2..={MAX_SIGNERS}"
            )));
        }
        if doc.threshold < 2 || usize::from(doc.threshold) > n {
            return Err(invalid(format!(
                "threshold {} must be between 2 and the number of signers ({n})",
                doc.threshold
            )));
        }
        if 2 * usize::from(doc.threshold) <= n && !doc.allow_disjoint_quorums {
            return Err(invalid(format!(
                "threshold {} of {n}: two disjoint quorums could each sign a different intent under the same withdrawal id; use a threshold above n/2 ({}), or set allow_disjoint_quorums = true knowingly",
                doc.threshold,
                n / 2 + 1
            )));
        }
        let mut signers = Vec::with_capacity(n);
        let (mut ids, mut names, mut keys, mut certs) = (
            BTreeSet::new(),
            BTreeSet::new(),
            BTreeSet::new(),
            BTreeSet::new(),
        );
        for s in &doc.signers {
            let ctx = |m: String| invalid(format!("signer `{}`: {m}", s.name));
            if s.identifier == 0 || usize::from(s.identifier) > MAX_SIGNERS {
                return Err(ctx(format!(
                    "identifier {} must be in 1..={MAX_SIGNERS}",
                    s.identifier
                )));
            }
            let identity_key =
                IdentityPublic::from_hex(&s.identity_key).map_err(|e| ctx(e.to_string()))?;
            let der = CertificateDer::from_pem_slice(s.certificate.as_bytes())
                .map_err(|e| ctx(format!("certificate: {e}")))?;
            let peer = identity_of(der.as_ref()).map_err(|e| ctx(format!("certificate: {e}")))?;
            if peer.role != Role::Signer {
                return Err(ctx(format!(
                    "certificate has role `{}`, not `signer`",
                    peer.role
                )));
            }
            if peer.name != s.name {
                return Err(ctx(format!(
                    "certificate is for `{}`, not for this signer",
                    peer.name
                )));
            }
            if !ids.insert(s.identifier)
                || !names.insert(s.name.clone())
                || !keys.insert(identity_key)
                || !certs.insert(peer.key_sha256)
            {
                return Err(ctx(
                    "identifier, name, identity key and certificate key must each be unique".into(),
                ));
            }
            signers.push(SignerEntry {
                name: s.name.clone(),
                identifier: s.identifier,
                identity_key,
                cert_sha256: peer.cert_sha256,
                key_sha256: peer.key_sha256,
            });
        }
        signers.sort_by_key(|s| s.identifier);
        let backend_keys = doc
            .backend_keys
            .iter()
            .map(|k| {
                hex::decode(k)
                    .map_err(|_| invalid(format!("backend key `{k}` is not hex")))
                    .and_then(|b| BackendKey::from_sec1(&b).map_err(invalid))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if backend_keys.is_empty() {
            return Err(invalid("at least one backend key is required"));
        }
        let distinct: std::collections::BTreeSet<Vec<u8>> =
            backend_keys.iter().map(BackendKey::to_sec1).collect();
        if distinct.len() != backend_keys.len() {
            return Err(invalid("a backend key is listed twice"));
        }
        let admin_keys = doc
            .admin_keys
            .iter()
            .map(|k| {
                IdentityPublic::from_hex(k).map_err(|e| invalid(format!("admin key `{k}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if admin_keys.iter().collect::<BTreeSet<_>>().len() != admin_keys.len() {
            return Err(invalid("admin keys must be unique"));
        }
        if doc.admin_quorum == 0 || usize::from(doc.admin_quorum) > admin_keys.len() {
            return Err(invalid(format!(
                "admin_quorum {} must be between 1 and the number of admin keys ({})",
                doc.admin_quorum,
                admin_keys.len()
            )));
        }
        let mut hash = canonical_hash(
            doc.threshold,
            &signers,
            &backend_keys,
            &admin_keys,
            doc.admin_quorum,
        );
        if doc.allow_disjoint_quorums {
            // Part of what every node pins; manifests without it keep their hashes.
            hash = Sha256::new()
                .chain_update(b"quorate/manifest/allow-disjoint-quorums")
                .chain_update(hash)
                .finalize()
                .into();
        }
        Ok(Self {
            threshold: doc.threshold,
            signers,
            backend_keys,
            admin_keys,
            admin_quorum: doc.admin_quorum,
            hash,
        })
    }

    /// SHA-256 over a canonical encoding of the manifest's content.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The signer whose certificate has this SHA-256.
    /// The signer whose certificate key and name these are: a certificate renewed by the CA for
    /// the same key still matches; one for another key, or naming another signer, does not.
    pub fn signer_by_cert(&self, peer: &crate::tls::PeerIdentity) -> Option<&SignerEntry> {
        self.signers
            .iter()
            .find(|s| s.key_sha256 == peer.key_sha256 && s.name == peer.name)
    }

    /// The signer with this identifier.
    pub fn signer(&self, identifier: u16) -> Option<&SignerEntry> {
        self.signers.iter().find(|s| s.identifier == identifier)
    }

    /// The signer with this name.
    pub fn signer_by_name(&self, name: &str) -> Option<&SignerEntry> {
        self.signers.iter().find(|s| s.name == name)
    }
}

fn canonical_hash(
    threshold: u16,
    signers: &[SignerEntry],
    backend: &[BackendKey],
    admins: &[IdentityPublic],
    admin_quorum: u16,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"quorate/manifest/v1");
    h.update(MANIFEST_VERSION.to_be_bytes());
    h.update(threshold.to_be_bytes());
    h.update((signers.len() as u32).to_be_bytes());
    for s in signers {
        h.update(s.identifier.to_be_bytes());
        h.update((s.name.len() as u32).to_be_bytes());
        h.update(s.name.as_bytes());
        h.update(s.identity_key.as_bytes());
        h.update(s.cert_sha256);
    }
    h.update((backend.len() as u32).to_be_bytes());
    for k in backend {
        h.update(k.to_sec1());
    }
    h.update((admins.len() as u32).to_be_bytes());
    for k in admins {
        h.update(k.as_bytes());
    }
    h.update(admin_quorum.to_be_bytes());
    h.finalize().into()
}

impl Manifest {
    /// Installs a genesis policy: its admins, quorum and backend keys must be the ones pinned
    /// in this manifest, and it must carry the quorum's signatures.
    pub fn genesis(
        &self,
        signed: quorate_core::policy::SignedPolicy,
    ) -> Result<quorate_core::policy::PolicyState, quorate_core::refusal::Refusal> {
        use quorate_core::refusal::{Refusal, Rule};
        let mut pinned: Vec<_> = self.backend_keys.iter().map(BackendKey::to_sec1).collect();
        pinned.sort();
        let mut theirs: Vec<_> = signed
            .doc
            .backend_keys()
            .iter()
            .map(BackendKey::to_sec1)
            .collect();
        theirs.sort();
        if pinned != theirs {
            return Err(Refusal::permanent(
                Rule::PolicyUpdateGenesis,
                "the genesis policy's backend keys differ from the ones pinned in the manifest",
            ));
        }
        let admins = self.admin_keys.iter().copied().collect();
        quorate_core::policy::PolicyState::genesis(&admins, self.admin_quorum, signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Authority;
    use quorate_core::identity::IdentitySecret;

    fn doc(n: u16, t: u16) -> ManifestDoc {
        let ca = Authority::generate("test-ca").unwrap();
        let key = || {
            IdentitySecret::generate(&mut k256::elliptic_curve::rand_core::OsRng)
                .public()
                .to_string()
        };
        ManifestDoc {
            version: MANIFEST_VERSION,
            threshold: t,
            backend_keys: vec![key()],
            admin_keys: vec![key()],
            admin_quorum: 1,
            signers: (1..=n)
                .map(|i| SignerDoc {
                    name: format!("signer-{i}"),
                    identifier: i,
                    identity_key: key(),
                    certificate: ca
                        .issue(Role::Signer, &format!("signer-{i}"), &[])
                        .unwrap()
                        .cert_pem,
                })
                .collect(),
            allow_disjoint_quorums: false,
        }
    }

    #[test]
    fn a_signer_is_its_certificate_key_and_name() {
        let ca = Authority::generate("test-ca").unwrap();
        let mut d = doc(3, 2);
        // Signer 1's certificate as the manifest holds it, from a key only the test has.
        let (key_pem, csr) = crate::pki::key_and_csr("signer-1").unwrap();
        d.signers[0].certificate = ca
            .sign_csr(&csr, Role::Signer, "signer-1", &[], 30)
            .unwrap();
        let m = Manifest::from_doc(&d).unwrap();
        let peer = |pem: &str| {
            let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            crate::tls::identity_of(der.as_ref()).unwrap()
        };
        // A renewal for the same key and name: still signer 1.
        let renewed = ca
            .sign_csr(
                &crate::pki::csr_for_key("signer-1", &key_pem).unwrap(),
                Role::Signer,
                "signer-1",
                &[],
                365,
            )
            .unwrap();
        assert_ne!(renewed, d.signers[0].certificate);
        assert_eq!(
            m.signer_by_cert(&peer(&renewed)).map(|s| s.identifier),
            Some(1)
        );
        // The same key under another signer's name: nobody.
        let other_name = ca
            .sign_csr(
                &crate::pki::csr_for_key("signer-2", &key_pem).unwrap(),
                Role::Signer,
                "signer-2",
                &[],
                365,
            )
            .unwrap();
        assert!(m.signer_by_cert(&peer(&other_name)).is_none());
        // Signer 1's name on another key: nobody.
        let (_, other_csr) = crate::pki::key_and_csr("signer-1").unwrap();
        let other_key = ca
            .sign_csr(&other_csr, Role::Signer, "signer-1", &[], 365)
            .unwrap();
        assert!(m.signer_by_cert(&peer(&other_key)).is_none());
        // Renewals get fresh serial numbers.
        let serial = |pem: &str| {
            let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            x509_parser::parse_x509_certificate(der.as_ref())
                .unwrap()
                .1
                .raw_serial()
                .to_vec()
        };
        assert_ne!(serial(&renewed), serial(&d.signers[0].certificate));
    }

    #[test]
    fn a_backend_key_listed_twice_is_refused() {
        let mut d = doc(3, 2);
        assert!(Manifest::from_doc(&d).is_ok());
        d.backend_keys.push(d.backend_keys[0].clone());
        let e = Manifest::from_doc(&d).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn disjoint_quorums_need_an_explicit_yes_which_the_hash_pins() {
        for (n, t) in [(4, 2), (5, 2), (6, 3)] {
            let e = Manifest::from_doc(&doc(n, t)).unwrap_err().to_string();
            assert!(e.contains("two disjoint quorums"), "{n}, {t}: {e}");
        }
        for (n, t) in [(3, 2), (5, 3), (4, 3)] {
            Manifest::from_doc(&doc(n, t)).unwrap();
        }
        let mut d = doc(4, 2);
        d.allow_disjoint_quorums = true;
        let allowed = Manifest::from_doc(&d).unwrap();
        // The hash of the same content without the permission differs.
        let plain = canonical_hash(
            allowed.threshold,
            &allowed.signers,
            &allowed.backend_keys,
            &allowed.admin_keys,
            allowed.admin_quorum,
        );
        assert_ne!(
            allowed.hash(),
            plain,
            "the permission is part of the pinned hash"
        );
        // Written out, it round-trips; absent, it is off.
        let text = toml::to_string(&d).unwrap();
        assert!(text.contains("allow_disjoint_quorums = true"));
        assert!(!toml::to_string(&doc(3, 2))
            .unwrap()
            .contains("allow_disjoint_quorums"));
    }
}
