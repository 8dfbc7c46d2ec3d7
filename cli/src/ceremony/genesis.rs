//! The genesis policy, signed by each admin on their own desk: `quorate genesis draft`, then
//! `genesis sign` on each desk, then `genesis combine`.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use anyhow::Context;
use clap::Subcommand;
use quorate_core::{
    backend::BackendKey,
    identity::{IdentityPublic, IdentitySecret},
    policy::{
        doc::zero_hash, governance::POLICY_APPROVAL_DOMAIN, AdminSignature, PolicyDoc, PolicyForm,
        SignedPolicy,
    },
};
use quorate_wire::{convert::policy_file, manifest::Manifest};

use super::{
    keygen::read_admin_key, manifest::load_manifest, refuse, refuse_existing, rule, write_public,
};

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
    use k256::ecdsa::SigningKey;
    use quorate_wire::{
        manifest::{ManifestDoc, SignerDoc, MANIFEST_VERSION},
        pki::Authority,
        tls::Role,
    };
    use rand::rngs::OsRng;

    use super::*;
    use crate::ceremony::{manifest_text, testing::rule_of};

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
}
