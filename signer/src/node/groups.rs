//! The key groups a signer holds, one per signature scheme (secp256k1 for intent digests and
//! the EVM/Tron vault, Ed25519 for Solana), and what each needs: its share, its group key, its
//! nonces and its DKG in progress. Everything else about a request is the same for both.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex, RwLock,
    },
};

use frost_core::{keys::KeyPackage, Identifier};
use quorate_core::{
    dkg,
    message::Scheme,
    refusal::{Refusal, Rule},
    repair as dkg_repair,
    scheme::Suite,
    signing::NonceStore,
};

use super::{key_share_purpose, read, write, Node};

/// FROST(secp256k1, SHA-256).
pub type Secp = frost_secp256k1::Secp256K1Sha256;
/// FROST(Ed25519, SHA-512).
pub type Ed = frost_ed25519::Ed25519Sha512;

/// A DKG in progress for one group.
pub(super) enum DkgProgress<C: Suite> {
    Round1(Vec<u8>, dkg::Round1State<C>),
    Round2(Vec<u8>, dkg::Round2State<C>),
    /// Finished but not kept: waiting for every participant's confirmation.
    Finished(Vec<u8>, Box<dkg::DkgOutput<C>>),
}

/// Which coordinator link a request came over: its place in the signer's list of
/// coordinators (0 for `coordinator`, then `other_coordinators` in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u32);

/// A group's signing nonces, one store per coordinator link: each link has its own limit, a
/// commitment made over one link can be used over that link only (another coordinator, even
/// a hostile one, can neither spend nor crowd out the nonces of this one), and a link that
/// drops takes its nonces with it.
pub(super) struct LinkNonces<C: Suite> {
    limit: usize,
    ttl_ms: u64,
    links: HashMap<LinkId, NonceStore<C>>,
}

impl<C: Suite> LinkNonces<C> {
    fn new(limit: usize, ttl_ms: u64) -> Self {
        Self {
            limit,
            ttl_ms,
            links: HashMap::new(),
        }
    }

    /// The nonces of `link`.
    pub fn of(&mut self, link: LinkId) -> &mut NonceStore<C> {
        let (limit, ttl) = (self.limit, self.ttl_ms);
        self.links
            .entry(link)
            .or_insert_with(|| NonceStore::new(limit, ttl))
    }

    /// How long each nonce stays usable.
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// Drops every nonce of `link` (it reconnected: nobody can use them any more).
    pub fn forget(&mut self, link: LinkId) {
        self.links.remove(&link);
    }

    /// Outstanding nonces over every link, after dropping the expired ones.
    pub fn outstanding(&mut self, now_ms: u64) -> usize {
        self.links
            .values_mut()
            .map(|s| {
                s.sweep(now_ms);
                s.len()
            })
            .sum()
    }
}

/// One key group of this signer.
pub(super) struct Group<C: Suite> {
    pub key: RwLock<Option<Arc<KeyPackage<C>>>>,
    /// Serialized group key; empty before its DKG.
    pub group_key: RwLock<Vec<u8>>,
    pub nonces: Mutex<LinkNonces<C>>,
    pub signer_ids: BTreeSet<Identifier<C>>,
    /// Key epoch of the share in use (0 until the first refresh).
    pub epoch: AtomicU32,
}

impl<C: Suite> Group<C> {
    pub fn new(ids: &[u16], nonce_limit: usize, nonce_ttl_ms: u64) -> Result<Self, String> {
        Ok(Self {
            key: RwLock::new(None),
            group_key: RwLock::new(Vec::new()),
            nonces: Mutex::new(LinkNonces::new(nonce_limit, nonce_ttl_ms)),
            epoch: AtomicU32::new(0),
            signer_ids: ids
                .iter()
                .map(|i| frost_id::<C>(*i))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The share, or a refusal saying there is none.
    pub fn key(&self) -> Result<Arc<KeyPackage<C>>, Refusal> {
        read(&self.key).clone().ok_or_else(|| {
            Refusal::temporary(
                Rule::NoKeyShare,
                format!(
                    "this signer has no {} key share yet; run DKG for it",
                    C::SCHEME
                ),
            )
        })
    }

    /// The share, if it is of key epoch `epoch` (the one a signing request names).
    pub fn key_at(&self, epoch: u32) -> Result<Arc<KeyPackage<C>>, Refusal> {
        // Read under the key's lock, which [`Group::install`] holds while it sets both: never
        // a new share with an old epoch.
        let (key, mine) = {
            let guard = read(&self.key);
            (guard.clone(), self.epoch.load(Ordering::SeqCst))
        };
        let key = key.ok_or_else(|| {
            Refusal::temporary(
                Rule::NoKeyShare,
                format!(
                    "this signer has no {} key share yet; run DKG for it",
                    C::SCHEME
                ),
            )
        })?;
        if mine != epoch {
            return Err(Refusal::temporary(
                Rule::KeyEpochMismatch,
                format!(
                    "asked to sign with a {} share of key epoch {epoch}; this signer holds epoch {mine}",
                    C::SCHEME
                ),
            ));
        }
        Ok(key)
    }

    pub fn group_key(&self) -> Vec<u8> {
        read(&self.group_key).clone()
    }

    /// Installs a share of key epoch `epoch` (restored, confirmed, repaired or refreshed).
    pub fn install(&self, kp: KeyPackage<C>, epoch: u32) -> Result<(), String> {
        let gk = kp
            .verifying_key()
            .serialize()
            .map_err(|e| format!("group key: {e}"))?;
        *write(&self.group_key) = gk;
        let mut key = write(&self.key);
        *key = Some(Arc::new(kp));
        self.epoch.store(epoch, Ordering::SeqCst);
        Ok(())
    }
}

/// The metadata key of `what` (`key_share`, `public_key_package`, `group_key`) for the
/// `scheme` group: the secp256k1 group keeps the names it had before there were two.
pub fn meta_key(scheme: Scheme, what: &str) -> String {
    match scheme {
        Scheme::Secp256k1 => what.to_string(),
        s => format!("{s}/{what}"),
    }
}

/// The sealing purpose of signer `name`'s share of the `scheme` group.
pub fn share_purpose(scheme: Scheme, name: &str) -> String {
    match scheme {
        Scheme::Secp256k1 => key_share_purpose(name),
        s => format!("{}/{s}", key_share_purpose(name)),
    }
}

/// FROST identifier of a manifest identifier.
pub fn frost_id<C: Suite>(n: u16) -> Result<Identifier<C>, String> {
    Identifier::<C>::try_from(n).map_err(|_| format!("invalid identifier {n}"))
}

/// Where a ciphersuite's group lives in a node and in its store.
pub(super) trait Held: Suite {
    fn group(node: &Node) -> &Group<Self>;
    fn progress(slot: &mut super::DkgSlot) -> &mut Option<DkgProgress<Self>>;
    fn repair(slot: &mut super::DkgSlot) -> &mut Option<(Vec<u8>, dkg_repair::HelperState<Self>)>;
    /// The metadata key of `what` for this group ([`meta_key`]).
    fn meta(what: &str) -> String {
        meta_key(Self::SCHEME, what)
    }
    /// The sealing purpose of this group's share ([`share_purpose`]).
    fn share_purpose(name: &str) -> String {
        share_purpose(Self::SCHEME, name)
    }
}

impl Held for Secp {
    fn group(node: &Node) -> &Group<Self> {
        &node.secp
    }
    fn progress(slot: &mut super::DkgSlot) -> &mut Option<DkgProgress<Self>> {
        &mut slot.secp
    }
    fn repair(slot: &mut super::DkgSlot) -> &mut Option<(Vec<u8>, dkg_repair::HelperState<Self>)> {
        &mut slot.repair_secp
    }
}

impl Held for Ed {
    fn group(node: &Node) -> &Group<Self> {
        &node.ed
    }
    fn progress(slot: &mut super::DkgSlot) -> &mut Option<DkgProgress<Self>> {
        &mut slot.ed
    }
    fn repair(slot: &mut super::DkgSlot) -> &mut Option<(Vec<u8>, dkg_repair::HelperState<Self>)> {
        &mut slot.repair_ed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share() -> frost_core::keys::SigningShare<Secp> {
        frost_core::keys::SigningShare::deserialize(&[7u8; 32]).unwrap()
    }

    #[test]
    fn a_nonce_is_usable_over_its_own_link_only_and_dies_with_it() {
        let mut n = LinkNonces::<Secp>::new(2, 60_000);
        let (a, b) = (LinkId(0), LinkId(1));
        let mut rng = rand::rngs::OsRng;
        n.of(a).commit([1; 16], &share(), &mut rng, 0).unwrap();
        n.of(b).commit([2; 16], &share(), &mut rng, 0).unwrap();
        // The other link names the session: unknown there, and still live on its own link.
        let refused = n.of(b).take(&[1; 16], 1).unwrap_err();
        assert_eq!(refused.rule, Rule::NonceUnknown);
        assert_eq!(n.outstanding(1), 2);
        // Each link has its own limit: one link filling it does not stop the other.
        n.of(a).commit([3; 16], &share(), &mut rng, 0).unwrap();
        let full = n.of(a).commit([4; 16], &share(), &mut rng, 0).unwrap_err();
        assert_eq!(full.rule, Rule::NonceLimit);
        n.of(b).commit([5; 16], &share(), &mut rng, 0).unwrap();
        // A link that reconnects forgets its own nonces, not the other's.
        n.forget(a);
        assert!(n.of(a).take(&[1; 16], 1).is_err());
        assert!(n.of(b).take(&[2; 16], 1).is_ok());
        assert_eq!(n.outstanding(1), 1);
        // Expired nonces are not counted.
        assert_eq!(n.outstanding(60_001), 0);
    }
}
