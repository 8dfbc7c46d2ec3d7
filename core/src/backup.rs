//! A signer's backup: its identity key and its key shares, sealed to a passphrase the operator
//! keeps offline, never to (and never with) the key-encryption key that seals them at rest.
//!
//! The passphrase is stretched with Argon2id (64 MiB, 3 passes, one lane; RFC 9106's second
//! recommended option) and a random 16-byte salt into a ChaCha20-Poly1305 key. The file is
//! one JSON object: `format`, `signer`, `manifest` (the cluster manifest's hash, hex), the KDF
//! parameters and salt, the nonce and the ciphertext; every field but the ciphertext and the
//! nonce is bound as associated data, so a backup opens only as what it says it is.

use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    ChaCha20Poly1305, Key, Nonce,
};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::scheme::Scheme;

/// The `format` of a backup file.
pub const FORMAT: &str = "quorate-signer-backup-v1";
/// Shortest passphrase accepted.
pub const MIN_PASSPHRASE: usize = 12;
/// Argon2id memory (KiB), passes and lanes.
pub const KDF_MEMORY_KIB: u32 = 64 * 1024;
/// Argon2id passes.
pub const KDF_PASSES: u32 = 3;
/// Argon2id lanes.
pub const KDF_LANES: u32 = 1;

/// Why a backup could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The passphrase is too short.
    #[error("the passphrase must be at least {MIN_PASSPHRASE} bytes")]
    WeakPassphrase,
    /// Not a backup file of this format.
    #[error("not a Quorate signer backup ({0})")]
    Format(String),
    /// Made for another signer or cluster.
    #[error("this backup is of {0}")]
    Other(String),
    /// Wrong passphrase, or the file was altered.
    #[error("cannot open the backup: wrong passphrase, or the file is damaged")]
    Open,
}

/// One key group's share, as the signer stores it.
pub struct GroupShare {
    /// Its scheme.
    pub scheme: Scheme,
    /// The serialized FROST key package (secret).
    pub key_package: Zeroizing<Vec<u8>>,
    /// The serialized public key package.
    pub public_key_package: Vec<u8>,
    /// The serialized group key.
    pub group_key: Vec<u8>,
    /// The key epoch of the share (0 until the first refresh); a share of an older epoch than
    /// the cluster's no longer signs.
    pub epoch: u32,
}

/// What a backup holds.
pub struct Contents {
    /// The signer's identity secret key (32 bytes).
    pub identity: Zeroizing<Vec<u8>>,
    /// Its key shares, one per group it holds.
    pub groups: Vec<GroupShare>,
}

impl std::fmt::Debug for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contents")
            .field("identity", &"<redacted>")
            .field(
                "groups",
                &self.groups.iter().map(|g| g.scheme).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format: String,
    signer: String,
    manifest: String,
    kdf: String,
    memory_kib: u32,
    passes: u32,
    lanes: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

impl File {
    fn associated_data(&self) -> Vec<u8> {
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.format,
            self.signer,
            self.manifest,
            self.kdf,
            self.memory_kib,
            self.passes,
            self.lanes,
            self.salt
        )
        .into_bytes()
    }
}

fn key(
    passphrase: &[u8],
    salt: &[u8],
    memory_kib: u32,
    passes: u32,
    lanes: u32,
) -> Result<Zeroizing<[u8; 32]>, BackupError> {
    let params = argon2::Params::new(memory_kib, passes, lanes, Some(32))
        .map_err(|e| BackupError::Format(format!("KDF parameters: {e}")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| BackupError::Format(format!("KDF: {e}")))?;
    Ok(out)
}

fn scheme_code(s: Scheme) -> u8 {
    match s {
        Scheme::Secp256k1 => 1,
        Scheme::Ed25519 => 2,
    }
}

const EPOCH_FLAG: u8 = 0x80;

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    // Key packages are a few hundred bytes: the cast is lossless.
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn encode(c: &Contents) -> Zeroizing<Vec<u8>> {
    // Sized up front: a reallocation would leave copies of the secrets behind.
    let size = 5
        + c.identity.len()
        + c.groups
            .iter()
            .map(|g| 17 + g.key_package.len() + g.public_key_package.len() + g.group_key.len())
            .sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    put(&mut out, &c.identity);
    out.push(c.groups.len() as u8);
    for g in &c.groups {
        // The high bit says a key epoch follows (backups from before refreshes have none).
        out.push(scheme_code(g.scheme) | EPOCH_FLAG);
        out.extend_from_slice(&g.epoch.to_be_bytes());
        put(&mut out, &g.key_package);
        put(&mut out, &g.public_key_package);
        put(&mut out, &g.group_key);
    }
    out
}

fn decode(mut b: &[u8]) -> Option<Contents> {
    fn take<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
        let v = b.get(4..4 + len)?;
        *b = &b[4 + len..];
        Some(v)
    }
    let identity = Zeroizing::new(take(&mut b)?.to_vec());
    let n = *b.first()?;
    b = &b[1..];
    let mut groups = Vec::new();
    for _ in 0..n {
        let code = *b.first()?;
        let scheme = match code & !EPOCH_FLAG {
            1 => Scheme::Secp256k1,
            2 => Scheme::Ed25519,
            _ => return None,
        };
        b = &b[1..];
        let epoch = if code & EPOCH_FLAG != 0 {
            let e = u32::from_be_bytes(b.get(..4)?.try_into().ok()?);
            b = &b[4..];
            e
        } else {
            0
        };
        // One share per group: a repeated scheme would overwrite the first on restore.
        if groups.iter().any(|g: &GroupShare| g.scheme == scheme) {
            return None;
        }
        groups.push(GroupShare {
            scheme,
            key_package: Zeroizing::new(take(&mut b)?.to_vec()),
            public_key_package: take(&mut b)?.to_vec(),
            group_key: take(&mut b)?.to_vec(),
            epoch,
        });
    }
    b.is_empty().then_some(Contents { identity, groups })
}

/// Seals `contents` of signer `signer` of the cluster with manifest hash `manifest` to
/// `passphrase`; returns the file's text.
pub fn seal<R: RngCore + CryptoRng>(
    rng: &mut R,
    signer: &str,
    manifest: &[u8; 32],
    contents: &Contents,
    passphrase: &[u8],
) -> Result<String, BackupError> {
    if passphrase.len() < MIN_PASSPHRASE {
        return Err(BackupError::WeakPassphrase);
    }
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let mut file = File {
        format: FORMAT.into(),
        signer: signer.into(),
        manifest: hex::encode(manifest),
        kdf: "argon2id".into(),
        memory_kib: KDF_MEMORY_KIB,
        passes: KDF_PASSES,
        lanes: KDF_LANES,
        salt: hex::encode(salt),
        nonce: hex::encode(nonce),
        ciphertext: String::new(),
    };
    let k = key(passphrase, &salt, KDF_MEMORY_KIB, KDF_PASSES, KDF_LANES)?;
    let plain = encode(contents);
    let sealed = ChaCha20Poly1305::new(Key::from_slice(k.as_ref()))
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &file.associated_data(),
            },
        )
        .map_err(|_| BackupError::Open)?;
    file.ciphertext = hex::encode(sealed);
    serde_json::to_string_pretty(&file).map_err(|e| BackupError::Format(e.to_string()))
}

/// Opens a backup made for `signer` of the cluster with manifest hash `manifest`.
pub fn open(
    text: &str,
    signer: &str,
    manifest: &[u8; 32],
    passphrase: &[u8],
) -> Result<Contents, BackupError> {
    let file: File = serde_json::from_str(text).map_err(|e| BackupError::Format(e.to_string()))?;
    if file.format != FORMAT || file.kdf != "argon2id" {
        return Err(BackupError::Format(format!(
            "format {} with KDF {}",
            file.format, file.kdf
        )));
    }
    if file.signer != signer || file.manifest != hex::encode(manifest) {
        return Err(BackupError::Other(format!(
            "signer `{}` of the cluster with manifest {}, not `{signer}` of this one",
            file.signer, file.manifest
        )));
    }
    // Parameters are bounded so a crafted file cannot make opening it take the machine.
    if file.memory_kib > 4 * KDF_MEMORY_KIB || file.passes > 16 || file.lanes > 8 {
        return Err(BackupError::Format("KDF parameters out of range".into()));
    }
    let bytes = |h: &str| hex::decode(h).map_err(|_| BackupError::Format("not hex".into()));
    let salt = bytes(&file.salt)?;
    let nonce = bytes(&file.nonce)?;
    if nonce.len() != 12 {
        return Err(BackupError::Format("nonce: 12 bytes".into()));
    }
    let k = key(passphrase, &salt, file.memory_kib, file.passes, file.lanes)?;
    let plain = Zeroizing::new(
        ChaCha20Poly1305::new(Key::from_slice(k.as_ref()))
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &bytes(&file.ciphertext)?,
                    aad: &file.associated_data(),
                },
            )
            .map_err(|_| BackupError::Open)?,
    );
    decode(&plain).ok_or_else(|| BackupError::Format("contents do not decode".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents() -> Contents {
        Contents {
            identity: Zeroizing::new(vec![7; 32]),
            groups: vec![GroupShare {
                scheme: Scheme::Ed25519,
                key_package: Zeroizing::new(vec![9; 100]),
                public_key_package: vec![1; 50],
                group_key: vec![2; 32],
                epoch: 3,
            }],
        }
    }

    #[test]
    fn a_backup_opens_only_with_its_passphrase_for_its_signer_unaltered() {
        let m = [3u8; 32];
        let pass = b"correct horse battery";
        let text = seal(&mut rand_core::OsRng, "signer-1", &m, &contents(), pass).unwrap();
        // Nothing secret in the clear.
        assert!(!text.contains(&hex::encode([9u8; 100])));
        assert!(!text.contains(&hex::encode([7u8; 32])));
        let c = open(&text, "signer-1", &m, pass).unwrap();
        assert_eq!(*c.identity, vec![7; 32]);
        assert_eq!(*c.groups[0].key_package, vec![9; 100]);
        assert_eq!(c.groups[0].scheme, Scheme::Ed25519);
        assert_eq!(c.groups[0].epoch, 3, "the key epoch travels with the share");
        assert!(!format!("{c:?}").contains("7, 7"), "Debug hides secrets");
        assert_eq!(
            open(&text, "signer-1", &m, b"wrong horse battery").unwrap_err(),
            BackupError::Open
        );
        assert!(matches!(
            open(&text, "signer-2", &m, pass),
            Err(BackupError::Other(_))
        ));
        assert!(matches!(
            open(&text, "signer-1", &[4; 32], pass),
            Err(BackupError::Other(_))
        ));
        // An altered header (here: fewer KDF passes) does not open.
        let weaker = text.replace("\"passes\": 3", "\"passes\": 2");
        assert_ne!(weaker, text);
        assert_eq!(
            open(&weaker, "signer-1", &m, pass).unwrap_err(),
            BackupError::Open
        );
        assert_eq!(
            seal(&mut rand_core::OsRng, "s", &m, &contents(), b"short").unwrap_err(),
            BackupError::WeakPassphrase
        );
    }

    #[test]
    fn contents_from_before_key_epochs_decode_as_epoch_zero() {
        let c = contents();
        let mut old = Vec::new();
        put(&mut old, &c.identity);
        old.push(1);
        old.push(scheme_code(Scheme::Ed25519));
        put(&mut old, &c.groups[0].key_package);
        put(&mut old, &c.groups[0].public_key_package);
        put(&mut old, &c.groups[0].group_key);
        let d = decode(&old).unwrap();
        assert_eq!(
            (d.groups[0].epoch, d.groups[0].scheme),
            (0, Scheme::Ed25519)
        );
        let new = encode(&c);
        assert_eq!(decode(&new).unwrap().groups[0].epoch, 3);
        assert_ne!(&old[..], &new[..]);
    }

    #[test]
    fn a_backup_with_one_group_twice_does_not_open() {
        let mut twice = contents();
        let again = contents().groups.remove(0);
        twice.groups.push(again);
        let pass = b"correct horse battery";
        let text = seal(&mut rand_core::OsRng, "s", &[0; 32], &twice, pass).unwrap();
        assert!(matches!(
            open(&text, "s", &[0; 32], pass),
            Err(BackupError::Format(_))
        ));
    }
}
