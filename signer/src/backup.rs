//! `quorate-signer backup` and `restore` (docs/operations.md): a signer's identity key and key
//! shares, sealed to a passphrase the operator keeps offline (`quorate_core::backup`), never
//! with the key-encryption key. Both run with the signer stopped (its store is opened here).

use std::path::Path;

use anyhow::{bail, Context};
use quorate_core::{
    backup::{self, Contents, GroupShare},
    identity::IdentitySecret,
    message::Scheme,
};
use quorate_wire::manifest::Manifest;
use zeroize::Zeroizing;

use crate::{
    config::SignerConfig,
    node::{
        identity_purpose, meta_key, share_purpose, META_GROUP_KEY, META_KEY_EPOCH, META_KEY_SHARE,
        META_PUBLIC_KEY_PACKAGE,
    },
    store::{SignerStore, SledStore},
};

fn passphrase(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the passphrase file {}", path.display()))?,
    );
    Ok(Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).as_bytes().to_vec(),
    ))
}

/// Writes the backup of the signer `cfg` describes to `out` (refusing to overwrite a file).
pub fn backup(cfg: &SignerConfig, out: &Path, passphrase_file: &Path) -> anyhow::Result<String> {
    let pass = passphrase(passphrase_file)?;
    let manifest = Manifest::load(&cfg.manifest)?;
    let kek = cfg.kek()?;
    let sealed = std::fs::read(&cfg.keys.identity)
        .with_context(|| format!("reading identity key {}", cfg.keys.identity.display()))?;
    let identity = kek.open(&identity_purpose(&cfg.name), &sealed)?;
    let store = SledStore::open(&cfg.data_dir)
        .with_context(|| "opening the signer's store (stop the signer first)".to_string())?;
    let mut groups = Vec::new();
    for scheme in Scheme::ALL {
        let Some(share) = store.get_meta(&meta_key(scheme, META_KEY_SHARE))? else {
            continue;
        };
        let missing = |what: &str| anyhow::anyhow!("the {scheme} {what} is missing");
        groups.push(GroupShare {
            scheme,
            key_package: kek.open(&share_purpose(scheme, &cfg.name), &share)?,
            public_key_package: store
                .get_meta(&meta_key(scheme, META_PUBLIC_KEY_PACKAGE))?
                .ok_or_else(|| missing("public key package"))?,
            group_key: store
                .get_meta(&meta_key(scheme, META_GROUP_KEY))?
                .ok_or_else(|| missing("group key"))?,
            epoch: match store.get_meta(&meta_key(scheme, META_KEY_EPOCH))? {
                None => 0,
                Some(b) => u32::from_be_bytes(
                    b.as_slice()
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("the {scheme} key epoch is corrupt"))?,
                ),
            },
        });
    }
    if groups.is_empty() {
        bail!("this signer holds no key share: there is nothing to back up");
    }
    // A backup is checked as a restore will check it, so a damaged store shows now.
    let identifier = Manifest::load(&cfg.manifest)?
        .signer_by_name(&cfg.name)
        .with_context(|| format!("signer `{}` is not in the manifest", cfg.name))?
        .identifier;
    for g in &groups {
        check_share(g, identifier)?;
    }
    let schemes: Vec<&str> = groups.iter().map(|g| g.scheme.as_str()).collect();
    let contents = Contents { identity, groups };
    let text = backup::seal(
        &mut rand::rngs::OsRng,
        &cfg.name,
        &manifest.hash(),
        &contents,
        &pass,
    )?;
    // Owner-only, never over an existing file.
    crate::write_secret(out, text.as_bytes())?;
    Ok(format!(
        "backup of {} written to {}: identity key and key shares ({}), sealed to the passphrase; keep both offline, apart\n",
        cfg.name,
        out.display(),
        schemes.join(", ")
    ))
}

/// Brings the signer `cfg` describes back from a backup into an empty data directory: every
/// share is checked against the manifest (identifier, identity) and its group key before it is
/// kept, sealed under this host's key-encryption key.
pub fn restore(cfg: &SignerConfig, from: &Path, passphrase_file: &Path) -> anyhow::Result<String> {
    let pass = passphrase(passphrase_file)?;
    let manifest = Manifest::load(&cfg.manifest)?;
    let entry = manifest
        .signer_by_name(&cfg.name)
        .with_context(|| format!("signer `{}` is not in the manifest", cfg.name))?;
    let text = std::fs::read_to_string(from)
        .with_context(|| format!("reading the backup {}", from.display()))?;
    let contents = backup::open(&text, &cfg.name, &manifest.hash(), &pass)?;
    let identity = IdentitySecret::from_bytes(&contents.identity)?;
    if identity.public() != entry.identity_key {
        bail!("the backup's identity key is not this signer's in the manifest");
    }
    let kek = cfg.kek()?;
    let store = SledStore::open(&cfg.data_dir)
        .with_context(|| "opening the signer's store (stop the signer first)".to_string())?;
    for scheme in Scheme::ALL {
        if store.get_meta(&meta_key(scheme, META_KEY_SHARE))?.is_some() {
            bail!(
                "{} already holds a {scheme} key share; restore only into an empty data directory",
                cfg.data_dir.display()
            );
        }
    }
    for g in &contents.groups {
        check_share(g, entry.identifier)?;
    }
    match std::fs::read(&cfg.keys.identity) {
        Ok(sealed) => {
            let here =
                IdentitySecret::from_bytes(&kek.open(&identity_purpose(&cfg.name), &sealed)?)?;
            if here.public() != identity.public() {
                bail!(
                    "{} holds another identity key; move it away to restore this one",
                    cfg.keys.identity.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let sealed = kek.seal(
                &mut rand::rngs::OsRng,
                &identity_purpose(&cfg.name),
                &contents.identity,
            );
            crate::write_secret(&cfg.keys.identity, &sealed)?;
        }
        Err(e) => return Err(e.into()),
    }
    let mut restored = Vec::new();
    for g in &contents.groups {
        let s = g.scheme;
        store.put_meta_durable(&meta_key(s, META_PUBLIC_KEY_PACKAGE), &g.public_key_package)?;
        store.put_meta_durable(&meta_key(s, META_GROUP_KEY), &g.group_key)?;
        // Always written: a key epoch left in the directory must not outlive the share.
        store.put_meta_durable(&meta_key(s, META_KEY_EPOCH), &g.epoch.to_be_bytes())?;
        let sealed = kek.seal(
            &mut rand::rngs::OsRng,
            &share_purpose(s, &cfg.name),
            &g.key_package,
        );
        // The share last: its presence marks the group as held.
        if !store.put_meta_once(&meta_key(s, META_KEY_SHARE), &sealed)? {
            bail!("a {s} key share appeared while restoring");
        }
        restored.push(format!(
            "{s} {} (key epoch {})",
            quorate_core::fingerprint::group_key_fingerprint(&g.group_key),
            g.epoch
        ));
    }
    store.flush()?;
    Ok(format!(
        "restored {} into {}: {}; its velocity ledger and policy start empty (the policy comes back from the coordinator)\n",
        cfg.name,
        cfg.data_dir.display(),
        restored.join(", ")
    ))
}

/// A share belongs to this signer and is a share of the group key the backup names.
fn check_share(g: &GroupShare, identifier: u16) -> anyhow::Result<()> {
    fn check<C: frost_core::Ciphersuite>(g: &GroupShare, identifier: u16) -> anyhow::Result<()> {
        let kp = frost_core::keys::KeyPackage::<C>::deserialize(&g.key_package)
            .map_err(|e| anyhow::anyhow!("key share: {e}"))?;
        let pkp = frost_core::keys::PublicKeyPackage::<C>::deserialize(&g.public_key_package)
            .map_err(|e| anyhow::anyhow!("public key package: {e}"))?;
        let id = frost_core::Identifier::<C>::try_from(identifier)
            .map_err(|e| anyhow::anyhow!("identifier: {e}"))?;
        let gk = kp
            .verifying_key()
            .serialize()
            .map_err(|e| anyhow::anyhow!("group key: {e}"))?;
        // The secret share itself: its public image is the verifying share the group knows.
        let own = frost_core::keys::VerifyingShare::<C>::from(*kp.signing_share());
        if *kp.identifier() != id
            || own != *kp.verifying_share()
            || gk != g.group_key
            || pkp.verifying_key() != kp.verifying_key()
            || pkp.verifying_shares().get(&id) != Some(kp.verifying_share())
        {
            bail!(
                "the backup's {} share is not this signer's share of its group key",
                g.scheme
            );
        }
        Ok(())
    }
    match g.scheme {
        Scheme::Secp256k1 => check::<frost_secp256k1::Secp256K1Sha256>(g, identifier),
        Scheme::Ed25519 => check::<frost_ed25519::Ed25519Sha512>(g, identifier),
    }
}
