//! The impostor of the hostile repair tests: it takes a signer's place on the link to the
//! coordinator with that signer's own certificate, identity key and share (read from the
//! stopped signer's files), and follows the repair protocol except for one chosen cheat.

use std::sync::{Arc, Mutex};

use frost_secp256k1::keys::{KeyPackage, PublicKeyPackage, SigningShare};
use quorate_core::{
    identity::IdentitySecret,
    message::Scheme,
    repair::{self, Contribution, HelperState, Offer, RepairSetup},
    seal::{self, SealContext, Sealed},
};
use quorate_signer::{
    config::SignerConfig,
    node::{identity_purpose, meta_key, share_purpose, META_KEY_SHARE, META_PUBLIC_KEY_PACKAGE},
    store::{SignerStore, SledStore},
};
use quorate_wire::{
    manifest::Manifest,
    signer::{
        self as pb, coordinator_message::Body as Req, signer_link_client::SignerLinkClient,
        signer_message::Body as Ans,
    },
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::harness::Cluster;

type S = frost_secp256k1::Secp256K1Sha256;

/// The signer store's metadata key of a share's key epoch (absent: 0).
const META_KEY_EPOCH: &str = "key_epoch";

/// How the impostor cheats; in every other respect it follows the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cheat {
    /// Helper: seals helper 2 a delta other than the one its signed offer commits to.
    WrongDelta,
    /// Helper: splits a share that is not the one it holds, so the deltas its signed offer
    /// commits to do not add up to its verifying share.
    ForeignShare,
    /// Helper: seals the target a σ that is not the sum of the deltas committed to it.
    BadSigma,
    /// Target: rebuilds the share, then returns its result with the signature altered.
    AlteredResultSignature,
    /// Target: signs a result naming a verifying share other than its own.
    OtherVerifyingShare,
}

/// A 32-byte big-endian secp256k1 scalar, far below the group order.
fn scalar(n: u8) -> [u8; 32] {
    let mut x = [0u8; 32];
    x[31] = n;
    x
}

fn id(n: u32) -> u16 {
    u16::try_from(n).expect("a 16-bit identifier")
}

fn sealed_pb(x: Sealed) -> pb::SealedRound2 {
    pb::SealedRound2 {
        sender: u32::from(x.sender),
        recipient: u32::from(x.recipient),
        nonce: x.nonce.to_vec(),
        ciphertext: x.ciphertext,
        signature: x.signature,
    }
}

fn sealed_of(x: pb::SealedRound2) -> Sealed {
    Sealed {
        sender: id(x.sender),
        recipient: id(x.recipient),
        nonce: x.nonce.try_into().expect("a 12-byte nonce"),
        ciphertext: x.ciphertext,
        signature: x.signature,
    }
}

fn offer_pb(o: Offer) -> pb::RepairOffer {
    pb::RepairOffer {
        from: u32::from(o.from),
        epoch: o.epoch,
        public_key_package: o.public_key_package,
        commitments: o
            .commitments
            .into_iter()
            .map(|(helper, point)| pb::RepairCommitment {
                helper: u32::from(helper),
                point,
            })
            .collect(),
        signature: o.signature,
    }
}

fn offer_of(o: pb::RepairOffer) -> Offer {
    Offer {
        from: id(o.from),
        epoch: o.epoch,
        public_key_package: o.public_key_package,
        commitments: o
            .commitments
            .into_iter()
            .map(|c| (id(c.helper), c.point))
            .collect(),
        signature: o.signature,
    }
}

fn contribution_pb(k: Contribution) -> pb::RepairContribution {
    pb::RepairContribution {
        from: u32::from(k.from),
        offers: k.offers.into_iter().map(offer_pb).collect(),
        sigma: Some(sealed_pb(k.sigma)),
    }
}

fn contribution_of(k: pb::RepairContribution) -> Contribution {
    Contribution {
        from: id(k.from),
        offers: k.offers.into_iter().map(offer_of).collect(),
        sigma: sealed_of(k.sigma.expect("a sealed σ")),
    }
}

/// The setup every participant derives from the coordinator's request and its pinned manifest.
fn setup_of(manifest: &Manifest, s: &pb::RepairSession) -> RepairSetup {
    RepairSetup {
        session_id: s.session_id.clone(),
        manifest_hash: manifest.hash(),
        threshold: manifest.threshold,
        target: id(s.target),
        helpers: s.helpers.iter().map(|h| id(*h)).collect(),
        participants: manifest
            .signers
            .iter()
            .map(|x| (x.identifier, x.identity_key))
            .collect(),
    }
}

/// The hash a helper's σ is sealed under: core's `echo_digest` (private there), restated so
/// that a cheating helper can seal a σ of its own choosing. If it drifts from the core's, the
/// target finds the seal unsigned and names nobody, and the σ test fails on its culprit.
fn echo_digest(setup: &RepairSetup, offers: &[Offer]) -> [u8; 32] {
    let mut by_helper: Vec<&Offer> = offers.iter().collect();
    by_helper.sort_by_key(|o| o.from);
    let mut h = Sha256::new();
    h.update(b"quorate/repair-echo/v1");
    for o in by_helper {
        h.update(repair::offer_digest::<S>(setup, o));
        h.update((o.signature.len() as u32).to_be_bytes());
        h.update(&o.signature);
    }
    h.finalize().into()
}

pub(super) fn config(c: &Cluster, name: &str) -> SignerConfig {
    SignerConfig::load(&c.path(&format!("{name}/signer.toml"))).unwrap()
}

/// A signer's identity key, opened with its KEK (both live outside the data directory).
fn identity_of(c: &Cluster, name: &str) -> IdentitySecret {
    let cfg = config(c, name);
    let sealed = std::fs::read(&cfg.keys.identity).unwrap();
    let plain = cfg
        .kek()
        .unwrap()
        .open(&identity_purpose(name), &sealed)
        .unwrap();
    IdentitySecret::from_bytes(&plain).unwrap()
}

/// A share as its holder keeps it: the key package, the public key package and the key epoch.
pub(super) type Held = (KeyPackage, PublicKeyPackage, u32);

/// A (stopped) signer's secp256k1 share, read from its store and opened with its KEK.
pub(super) fn share_of(c: &Cluster, name: &str) -> Held {
    let cfg = config(c, name);
    let kek = cfg.kek().unwrap();
    let store = SledStore::open(&cfg.data_dir).unwrap();
    let meta = |what: &str| store.get_meta(&meta_key(Scheme::Secp256k1, what)).unwrap();
    let sealed = meta(META_KEY_SHARE).expect("a key share");
    let plain = kek
        .open(&share_purpose(Scheme::Secp256k1, name), &sealed)
        .unwrap();
    let key = KeyPackage::deserialize(&plain).unwrap();
    let pkp = PublicKeyPackage::deserialize(&meta(META_PUBLIC_KEY_PACKAGE).unwrap()).unwrap();
    let epoch = meta(META_KEY_EPOCH).map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()));
    (key, pkp, epoch)
}

/// The test in a signer's place: answers the repair steps on its link as the protocol says,
/// except for its cheat; ignores everything else.
struct Player {
    me: u16,
    manifest: Manifest,
    identity: IdentitySecret,
    share: Option<Held>,
    state: Option<(Vec<u8>, HelperState<S>)>,
    cheat: Arc<Mutex<Cheat>>,
    told: Arc<Mutex<Vec<Cheat>>>,
}

impl Player {
    fn cheat(&self) -> Cheat {
        *self.cheat.lock().unwrap()
    }

    fn told(&self, cheat: Cheat) {
        self.told.lock().unwrap().push(cheat);
    }

    fn offer(&mut self, session: &pb::RepairSession) -> Ans {
        let setup = setup_of(&self.manifest, session);
        let (key, pkp, epoch) = self.share.as_ref().expect("a helper holds a share");
        let cheat = self.cheat();
        let key = if cheat == Cheat::ForeignShare {
            let foreign = SigningShare::deserialize(&scalar(7)).unwrap();
            KeyPackage::new(
                *key.identifier(),
                foreign,
                *key.verifying_share(),
                *key.verifying_key(),
                *key.min_signers(),
            )
        } else {
            key.clone()
        };
        let r1 = repair::helper_offer::<S, _>(
            setup.clone(),
            &self.identity,
            &key,
            pkp,
            *epoch,
            &mut rand::rngs::OsRng,
        )
        .expect("the impostor's offer");
        let mut deltas = r1.sealed;
        if cheat == Cheat::WrongDelta {
            let digest = repair::offer_digest::<S>(&setup, &r1.offer);
            let to_2 = deltas.iter_mut().find(|d| d.recipient == 2).unwrap();
            let ctx = SealContext {
                session_id: &setup.session_id,
                transcript: &digest,
                sender: self.me,
                recipient: 2,
            };
            *to_2 = seal::seal(
                &mut rand::rngs::OsRng,
                &self.identity,
                &setup.participants[&2],
                &ctx,
                &scalar(11),
            );
        }
        if matches!(cheat, Cheat::WrongDelta | Cheat::ForeignShare) {
            self.told(cheat);
        }
        self.state = Some((setup.session_id, r1.state));
        Ans::RepairOffer(pb::RepairOfferResponse {
            offer: Some(offer_pb(r1.offer)),
            deltas: deltas.into_iter().map(sealed_pb).collect(),
        })
    }

    fn contribute(&mut self, r: pb::RepairContributeRequest) -> Ans {
        let setup = setup_of(&self.manifest, r.session.as_ref().expect("a session"));
        let (session, state) = self.state.take().expect("an offer before round 2");
        assert_eq!(session, setup.session_id, "round 2 of another session");
        let offers: Vec<Offer> = r.offers.iter().cloned().map(offer_of).collect();
        let deltas: Vec<Sealed> = r.deltas.into_iter().map(sealed_of).collect();
        let target_key = setup.participants[&setup.target];
        match repair::helper_contribute::<S, _>(
            state,
            &self.identity,
            &offers,
            &deltas,
            &mut rand::rngs::OsRng,
        ) {
            Ok(mut k) => {
                if self.cheat() == Cheat::BadSigma {
                    let echo = echo_digest(&setup, &k.offers);
                    let ctx = SealContext {
                        session_id: &setup.session_id,
                        transcript: &echo,
                        sender: self.me,
                        recipient: setup.target,
                    };
                    k.sigma = seal::seal(
                        &mut rand::rngs::OsRng,
                        &self.identity,
                        &target_key,
                        &ctx,
                        &scalar(3),
                    );
                    self.told(Cheat::BadSigma);
                }
                Ans::RepairContribution(contribution_pb(k))
            }
            // Its own offer does not check (it split a share it does not hold): it plays on
            // with a σ of nothing, so that the honest helper's verdict is what decides.
            Err(_) => {
                let ctx = SealContext {
                    session_id: &setup.session_id,
                    transcript: &[0; 32],
                    sender: self.me,
                    recipient: setup.target,
                };
                let sigma = seal::seal(
                    &mut rand::rngs::OsRng,
                    &self.identity,
                    &target_key,
                    &ctx,
                    &scalar(5),
                );
                Ans::RepairContribution(pb::RepairContribution {
                    from: u32::from(self.me),
                    offers: r.offers,
                    sigma: Some(sealed_pb(sigma)),
                })
            }
        }
    }

    fn finish(&mut self, r: pb::RepairFinishRequest) -> Ans {
        let setup = setup_of(&self.manifest, r.session.as_ref().expect("a session"));
        let offers: Vec<Offer> = r.offers.into_iter().map(offer_of).collect();
        let contributions: Vec<Contribution> =
            r.contributions.into_iter().map(contribution_of).collect();
        let out = repair::target_finish::<S>(&setup, &self.identity, &offers, &contributions)
            .expect("the honest helpers' contributions rebuild the share");
        let mut result = pb::RepairResult {
            group_public_key: out.group_key.clone(),
            verifying_share: out.key_package.verifying_share().serialize().unwrap(),
            epoch: out.epoch,
            signature: out.signature,
        };
        let cheat = self.cheat();
        match cheat {
            Cheat::AlteredResultSignature => result.signature[7] ^= 1,
            Cheat::OtherVerifyingShare => {
                let helper_1 = frost_secp256k1::Identifier::try_from(1u16).unwrap();
                let other = out.public_key_package.verifying_shares()[&helper_1]
                    .serialize()
                    .unwrap();
                result.signature = self.identity.sign(
                    "quorate/repair-result/v1",
                    &[
                        &setup.session_id,
                        &out.epoch.to_be_bytes(),
                        &out.group_key,
                        &other,
                    ],
                );
                // Its statement is genuinely signed: what is refused is what it states.
                assert!(repair::verify_result::<S>(
                    &self.identity.public(),
                    &setup.session_id,
                    out.epoch,
                    &out.group_key,
                    &other,
                    &result.signature
                ));
                result.verifying_share = other;
            }
            _ => {}
        }
        self.told(cheat);
        Ans::RepairResult(result)
    }
}

/// A signer's place on the link, taken by the test.
pub(super) struct Impostor {
    cheat: Arc<Mutex<Cheat>>,
    told: Arc<Mutex<Vec<Cheat>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Impostor {
    /// Dials the coordinator as `name` (its certificate) and says hello with `group_key`.
    pub(super) async fn attach(
        c: &Cluster,
        name: &str,
        share: Option<Held>,
        group_key: Vec<u8>,
        cheat: Cheat,
    ) -> Self {
        let manifest = Manifest::load(&c.path("manifest.toml")).unwrap();
        let me = manifest.signer_by_name(name).unwrap().identifier;
        let (tx, rx) = mpsc::channel(64);
        let hello = pb::Hello {
            name: name.into(),
            identifier: u32::from(me),
            version: "impostor".into(),
            manifest_hash: manifest.hash().to_vec(),
            group_public_key: group_key,
            ..Default::default()
        };
        tx.send(pb::SignerMessage {
            request_id: 0,
            body: Some(Ans::Hello(hello)),
        })
        .await
        .unwrap();
        let mut inbound = SignerLinkClient::new(c.channel(name).await)
            .attach(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let cheat = Arc::new(Mutex::new(cheat));
        let told = Arc::new(Mutex::new(Vec::new()));
        let mut player = Player {
            me,
            manifest,
            identity: identity_of(c, name),
            share,
            state: None,
            cheat: cheat.clone(),
            told: told.clone(),
        };
        let task = tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                let answer = match m.body {
                    Some(Req::RepairOffer(r)) => player.offer(&r.session.expect("a session")),
                    Some(Req::RepairContribute(r)) => player.contribute(r),
                    Some(Req::RepairFinish(r)) => player.finish(r),
                    _ => continue,
                };
                let _ = tx
                    .send(pb::SignerMessage {
                        request_id: m.request_id,
                        body: Some(answer),
                    })
                    .await;
            }
        });
        Self { cheat, told, task }
    }

    pub(super) fn set(&self, cheat: Cheat) {
        *self.cheat.lock().unwrap() = cheat;
    }

    /// The cheats it carried out, in order.
    pub(super) fn told(&self) -> Vec<Cheat> {
        self.told.lock().unwrap().clone()
    }

    /// Hangs up; it must still have been on the line (a crash would also abort a repair).
    pub(super) async fn leave(self, c: &Cluster, connected_after: usize) {
        assert!(!self.task.is_finished(), "the impostor's link died early");
        self.task.abort();
        let _ = self.task.await;
        c.wait_connected(connected_after).await;
    }
}
