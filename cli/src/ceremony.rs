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
//! with [`write_secret`] (owner-only, never over an existing file) and never printed.

use std::{
    collections::BTreeSet,
    fmt,
    path::{Path, PathBuf},
};

use anyhow::Context;
use clap::{Args, Subcommand};
use k256::ecdsa::SigningKey;
use quorate_core::{
    backend::BackendKey,
    identity::{IdentityPublic, IdentitySecret},
    policy::{
        doc::zero_hash, governance::POLICY_APPROVAL_DOMAIN, AdminSignature, PolicyDoc, PolicyForm,
        SignedPolicy,
    },
};
use quorate_signer::write_secret;
use quorate_wire::{
    convert::policy_file,
    manifest::{Manifest, ManifestDoc, SignerDoc, MANIFEST_VERSION},
    pki::Authority,
    tls::Role,
};
use rand::rngs::OsRng;

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

// ---------------------------------------------------------------------------------------------
// The CA.

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

// ---------------------------------------------------------------------------------------------
// Keys made on their own hosts.

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

// ---------------------------------------------------------------------------------------------
// The manifest.

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

fn load_manifest(path: &Path) -> anyhow::Result<Manifest> {
    Manifest::load(path).with_context(|| format!("loading the manifest {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The genesis policy, signed by each admin on their own desk.

/// `quorate genesis …`.
#[derive(Debug, Subcommand)]
pub enum GenesisCommand {
    /// Turns the policy's TOML form into the genesis draft (version 1) with the admins, quorum
    /// and backend keys of the manifest; prints its hash.
    Draft {
        /// The policy, TOML form (docs/policy.md). Leave `admins` and `backend_keys` empty to
        /// take them from the manifest; anything else must equal the manifest's.
        #[arg(long)]
        policy: PathBuf,
        /// The cluster manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// The draft to write (JSON, no signatures).
        #[arg(long)]
        out: PathBuf,
    },
    /// On an admin's desk: shows the draft (TOML form and hash), asks, and writes this admin's
    /// signature over it.
    Sign {
        /// The draft from `genesis draft`.
        #[arg(long)]
        draft: PathBuf,
        /// The cluster manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// This admin's key file (`signing.key` from `quorate keygen --role admin`).
        #[arg(long)]
        key: PathBuf,
        /// The signature file to write.
        #[arg(long)]
        out: PathBuf,
        /// Sign without asking (what is signed is still printed). Without it, a terminal asks.
        #[arg(long)]
        yes: bool,
    },
    /// Checks every admin's signature and the quorum, and writes the signed genesis policy
    /// (the coordinator's `genesis_policy`).
    Combine {
        /// The draft from `genesis draft`.
        #[arg(long)]
        draft: PathBuf,
        /// The cluster manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// A signature file from `genesis sign`; repeatable.
        #[arg(long = "sig", required = true)]
        sigs: Vec<PathBuf>,
        /// The signed genesis policy to write (JSON).
        #[arg(long)]
        out: PathBuf,
    },
}

/// One admin's signature over a draft, as carried from the admin's desk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// Hash of the draft signed (hex).
    pub policy_hash: String,
    /// The admin's public key (hex).
    pub admin: String,
    /// The signature (hex), domain `quorate-policy-approval-v1` over the hash.
    pub signature: String,
}

fn admin_set(m: &Manifest) -> BTreeSet<IdentityPublic> {
    m.admin_keys.iter().copied().collect()
}

fn backend_set(keys: &[BackendKey]) -> BTreeSet<Vec<u8>> {
    keys.iter().map(BackendKey::to_sec1).collect()
}

/// Checks that `doc` can be the genesis policy under `m`: version 1 on the zero hash, and the
/// manifest's admins, quorum and backend keys.
pub fn check_genesis_doc(doc: &PolicyDoc, m: &Manifest) -> anyhow::Result<()> {
    if doc.version != 1 || doc.prev_hash != zero_hash() {
        return refuse(
            rule::GENESIS_MANIFEST,
            format!(
                "a genesis policy is version 1 on the zero hash, this is version {}",
                doc.version
            ),
        );
    }
    if doc.admin_keys() != admin_set(m) {
        return refuse(
            rule::GENESIS_MANIFEST,
            "the policy's admins differ from the manifest's admin_keys",
        );
    }
    if doc.admin_quorum != m.admin_quorum {
        return refuse(
            rule::GENESIS_MANIFEST,
            format!(
                "the policy's admin_quorum {} differs from the manifest's {}",
                doc.admin_quorum, m.admin_quorum
            ),
        );
    }
    if backend_set(&doc.backend_keys()) != backend_set(&m.backend_keys) {
        return refuse(
            rule::GENESIS_MANIFEST,
            "the policy's backend_keys differ from the manifest's",
        );
    }
    Ok(())
}

/// The genesis document from a policy's TOML form: empty `admins` and `backend_keys` are
/// filled in from the manifest; anything the form names must equal the manifest's.
pub fn draft_doc(policy_toml: &str, m: &Manifest) -> anyhow::Result<PolicyDoc> {
    let mut form = PolicyForm::parse(policy_toml).context("the policy")?;
    if form.admins.is_empty() {
        form.admins = m.admin_keys.iter().map(ToString::to_string).collect();
    }
    if form.backend_keys.is_empty() {
        form.backend_keys = m
            .backend_keys
            .iter()
            .map(|k| hex::encode(k.to_sec1()))
            .collect();
    }
    let doc = form.to_doc(1, &zero_hash()).context("the policy")?;
    check_genesis_doc(&doc, m)?;
    Ok(doc)
}

/// Reads a draft and checks it against the manifest.
fn read_draft(path: &Path, m: &Manifest) -> anyhow::Result<PolicyDoc> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let signed = policy_file::signed_from_json(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a policy draft: {e}", path.display()))?;
    check_genesis_doc(&signed.doc, m)?;
    Ok(signed.doc)
}

/// This admin's signature over the draft; refuses a key that is not one of the manifest's
/// admins.
pub fn sign_draft(
    doc: &PolicyDoc,
    m: &Manifest,
    key: &IdentitySecret,
) -> anyhow::Result<SignatureFile> {
    check_genesis_doc(doc, m)?;
    let admin = key.public();
    if !admin_set(m).contains(&admin) {
        return refuse(
            rule::NOT_ADMIN,
            format!("the key {admin} is not one of the manifest's admin_keys"),
        );
    }
    let hash = doc.hash();
    let sig = AdminSignature::sign(key, POLICY_APPROVAL_DOMAIN, &[&hash]);
    Ok(SignatureFile {
        policy_hash: hex::encode(hash),
        admin: admin.to_string(),
        signature: hex::encode(&sig.signature),
    })
}

/// Checks every signature (named by its label, e.g. its file) against the draft and the
/// manifest, counts each admin once, and returns the signed genesis policy once a quorum of
/// distinct admins signed; verified in the end by the same code a node runs at first start.
pub fn combine(
    doc: &PolicyDoc,
    m: &Manifest,
    sigs: &[(String, SignatureFile)],
) -> anyhow::Result<SignedPolicy> {
    check_genesis_doc(doc, m)?;
    let hash = doc.hash();
    let admins = admin_set(m);
    let mut signatures: Vec<AdminSignature> = Vec::new();
    for (label, s) in sigs {
        if s.policy_hash != hex::encode(hash) {
            return refuse(
                rule::WRONG_DRAFT,
                format!(
                    "{label} signs policy {}, not this draft ({})",
                    s.policy_hash,
                    hex::encode(hash)
                ),
            );
        }
        let Ok(admin) = IdentityPublic::from_hex(&s.admin) else {
            return refuse(
                rule::NOT_ADMIN,
                format!("{label}: `{}` is not a key", s.admin),
            );
        };
        if !admins.contains(&admin) {
            return refuse(
                rule::NOT_ADMIN,
                format!("{label} is by {admin}, not one of the manifest's admin_keys"),
            );
        }
        let signature = hex::decode(&s.signature).unwrap_or_default();
        if admin
            .verify(POLICY_APPROVAL_DOMAIN, &[&hash], &signature)
            .is_err()
        {
            return refuse(
                rule::BAD_SIGNATURE,
                format!("{label}: the signature by {admin} does not verify over this draft"),
            );
        }
        if signatures.iter().any(|a| a.admin == admin) {
            eprintln!("note: {label} is a second signature by {admin}; it counts once");
            continue;
        }
        signatures.push(AdminSignature { admin, signature });
    }
    if signatures.len() < usize::from(m.admin_quorum) {
        return refuse(
            rule::QUORUM,
            format!(
                "{} distinct admins signed; the manifest's admin_quorum is {}",
                signatures.len(),
                m.admin_quorum
            ),
        );
    }
    let signed = SignedPolicy {
        doc: doc.clone(),
        signatures,
    };
    // The same check a signer and the coordinator run on their genesis policy.
    m.genesis(signed.clone())
        .map_err(|r| anyhow::anyhow!("the combined genesis policy does not verify: {r}"))?;
    Ok(signed)
}

fn show_draft(doc: &PolicyDoc) -> String {
    format!(
        "genesis policy (version {}), as the signers will enforce it:\n\n{}\npolicy hash {}\n",
        doc.version,
        PolicyForm::from_doc(doc).to_toml(),
        doc.hash_hex()
    )
}

/// Runs `quorate genesis …`.
pub fn run_genesis(cmd: GenesisCommand) -> anyhow::Result<u8> {
    match cmd {
        GenesisCommand::Draft {
            policy,
            manifest,
            out,
        } => {
            refuse_existing(&[&out])?;
            let m = load_manifest(&manifest)?;
            let text = std::fs::read_to_string(&policy)
                .with_context(|| format!("reading {}", policy.display()))?;
            let doc = draft_doc(&text, &m)?;
            let hash = doc.hash_hex();
            write_public(
                &out,
                &policy_file::signed_to_json(&SignedPolicy {
                    doc,
                    signatures: Vec::new(),
                }),
            )?;
            println!("wrote {} (carry it to every admin's desk)", out.display());
            println!("policy hash {hash}");
            Ok(0)
        }
        GenesisCommand::Sign {
            draft,
            manifest,
            key,
            out,
            yes,
        } => {
            refuse_existing(&[&out])?;
            let m = load_manifest(&manifest)?;
            let doc = read_draft(&draft, &m)?;
            let key = read_admin_key(&key)?;
            // Refuse a stranger's key before asking anything.
            let sig = sign_draft(&doc, &m, &key)?;
            print!("{}", show_draft(&doc));
            // The manifest came from the same place as the draft: its admins and backend keys
            // are what the policy names, so its hash is compared out of band too.
            println!("manifest_hash = \"{}\"", hex::encode(m.hash()));
            crate::desk::confirm(
                yes,
                &format!("sign genesis policy {} as {}", doc.hash_hex(), sig.admin),
            )?;
            write_public(&out, &(serde_json::to_string_pretty(&sig)? + "\n"))?;
            println!(
                "wrote {} (carry it back to whoever combines)",
                out.display()
            );
            println!("policy_genesis = \"{}\"", sig.policy_hash);
            Ok(0)
        }
        GenesisCommand::Combine {
            draft,
            manifest,
            sigs,
            out,
        } => {
            refuse_existing(&[&out])?;
            let m = load_manifest(&manifest)?;
            let doc = read_draft(&draft, &m)?;
            let mut files = Vec::new();
            for p in &sigs {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let s: SignatureFile = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a signature file", p.display()))?;
                files.push((p.display().to_string(), s));
            }
            let signed = combine(&doc, &m, &files)?;
            write_public(&out, &policy_file::signed_to_json(&signed))?;
            println!(
                "wrote {} ({} admin signatures; the coordinator's genesis_policy)",
                out.display(),
                signed.signatures.len()
            );
            println!("policy_genesis = \"{}\"", doc.hash_hex());
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        m: Manifest,
        admins: Vec<IdentitySecret>,
        doc: PolicyDoc,
    }

    const POLICY: &str = r#"
admin_quorum = 2
admins = []
backend_keys = []
timelock = "1h"

[[assets]]
chain = "ethereum"
asset = "ETH"
decimals = 18
max_per_withdrawal = "10"
approval_threshold = "10"
approvals_required = 0

[[whitelist]]
chain = "ethereum"
address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
label = "cold wallet"
"#;

    fn fixture() -> Fixture {
        let ca = Authority::generate("test-ca").unwrap();
        let admins: Vec<_> = (0..3)
            .map(|_| IdentitySecret::generate(&mut OsRng))
            .collect();
        let backend = SigningKey::random(&mut OsRng);
        let signers = (1..=3u16)
            .map(|i| SignerDoc {
                name: format!("signer-{i}"),
                identifier: i,
                identity_key: IdentitySecret::generate(&mut OsRng).public().to_string(),
                certificate: ca
                    .issue(Role::Signer, &format!("signer-{i}"), &[])
                    .unwrap()
                    .cert_pem,
            })
            .collect();
        let doc = ManifestDoc {
            version: MANIFEST_VERSION,
            threshold: 2,
            backend_keys: vec![hex::encode(
                backend.verifying_key().to_encoded_point(true).as_bytes(),
            )],
            admin_keys: admins.iter().map(|a| a.public().to_string()).collect(),
            admin_quorum: 2,
            signers,
            allow_disjoint_quorums: false,
        };
        let (m, text) = manifest_text(&doc).unwrap();
        assert_eq!(Manifest::parse(&text).unwrap().hash(), m.hash());
        let doc = draft_doc(POLICY, &m).unwrap();
        Fixture { m, admins, doc }
    }

    fn rule_of(e: anyhow::Error) -> &'static str {
        e.downcast_ref::<Refused>()
            .unwrap_or_else(|| panic!("not a refusal: {e:#}"))
            .rule
    }

    fn sigs(f: &Fixture, who: &[usize]) -> Vec<(String, SignatureFile)> {
        who.iter()
            .map(|&i| {
                (
                    format!("admin-{i}"),
                    sign_draft(&f.doc, &f.m, &f.admins[i]).unwrap(),
                )
            })
            .collect()
    }

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

    #[test]
    fn a_quorum_of_distinct_admins_makes_a_genesis_the_manifest_accepts() {
        let f = fixture();
        let signed = combine(&f.doc, &f.m, &sigs(&f, &[0, 2])).unwrap();
        assert_eq!(signed.signatures.len(), 2);
        // The file form round-trips and installs as a node would install it.
        let back = policy_file::signed_from_json(&policy_file::signed_to_json(&signed)).unwrap();
        f.m.genesis(back).unwrap();
    }

    #[test]
    fn a_second_signature_by_one_admin_counts_once() {
        let f = fixture();
        let e = combine(&f.doc, &f.m, &sigs(&f, &[1, 1])).unwrap_err();
        assert_eq!(rule_of(e), rule::QUORUM);
        let signed = combine(&f.doc, &f.m, &sigs(&f, &[1, 1, 0])).unwrap();
        assert_eq!(signed.signatures.len(), 2);
    }

    #[test]
    fn a_key_that_is_not_an_admin_is_refused() {
        let f = fixture();
        let stranger = IdentitySecret::generate(&mut OsRng);
        assert_eq!(
            rule_of(sign_draft(&f.doc, &f.m, &stranger).unwrap_err()),
            rule::NOT_ADMIN
        );
        // Nor does a stranger's signature count when combining.
        let hash = f.doc.hash();
        let mut s = sigs(&f, &[0, 1]);
        s.push((
            "stranger".into(),
            SignatureFile {
                policy_hash: hex::encode(hash),
                admin: stranger.public().to_string(),
                signature: hex::encode(
                    AdminSignature::sign(&stranger, POLICY_APPROVAL_DOMAIN, &[&hash]).signature,
                ),
            },
        ));
        assert_eq!(
            rule_of(combine(&f.doc, &f.m, &s).unwrap_err()),
            rule::NOT_ADMIN
        );
    }

    #[test]
    fn a_signature_over_another_draft_is_refused() {
        let f = fixture();
        let other = draft_doc(&POLICY.replace("\"1h\"", "\"2h\""), &f.m).unwrap();
        assert_ne!(other.hash(), f.doc.hash());
        let mut s = sigs(&f, &[0]);
        s.push((
            "admin-1 (other draft)".into(),
            sign_draft(&other, &f.m, &f.admins[1]).unwrap(),
        ));
        assert_eq!(
            rule_of(combine(&f.doc, &f.m, &s).unwrap_err()),
            rule::WRONG_DRAFT
        );
        // A signature relabelled with this draft's hash does not verify.
        let mut forged = s[1].clone();
        forged.1.policy_hash = f.doc.hash_hex();
        assert_eq!(
            rule_of(combine(&f.doc, &f.m, &[s[0].clone(), forged]).unwrap_err()),
            rule::BAD_SIGNATURE
        );
    }

    #[test]
    fn the_quorum_must_be_met() {
        let f = fixture();
        assert_eq!(
            rule_of(combine(&f.doc, &f.m, &sigs(&f, &[2])).unwrap_err()),
            rule::QUORUM
        );
        assert_eq!(
            rule_of(combine(&f.doc, &f.m, &[]).unwrap_err()),
            rule::QUORUM
        );
    }

    #[test]
    fn a_policy_naming_other_admins_quorum_or_backend_keys_is_refused() {
        let f = fixture();
        let stranger = IdentitySecret::generate(&mut OsRng).public().to_string();
        // Two of the three admins: a valid policy, but not the manifest's admins.
        let two = format!(
            "admins = [\"{}\", \"{}\"]",
            f.m.admin_keys[0], f.m.admin_keys[1]
        );
        for policy in [
            POLICY.replace("admins = []", &two),
            POLICY.replace("admin_quorum = 2", "admin_quorum = 1"),
            POLICY.replace(
                "backend_keys = []",
                &format!("backend_keys = [\"{stranger}\"]"),
            ),
        ] {
            assert_eq!(
                rule_of(draft_doc(&policy, &f.m).unwrap_err()),
                rule::GENESIS_MANIFEST
            );
        }
        // Naming exactly the manifest's keys is fine.
        let same = POLICY.replace(
            "admins = []",
            &format!(
                "admins = [{}]",
                f.m.admin_keys
                    .iter()
                    .rev()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        assert_eq!(draft_doc(&same, &f.m).unwrap().hash(), f.doc.hash());
    }

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
