//! Share repair under attack (core/src/repair.rs): the test takes a signer's place on the link
//! to the real coordinator, with that signer's own certificate, identity key and key share, and
//! cheats in one step of a repair of signer-3's lost share. The cheater must be named (in the
//! refusal the admin sees, in the coordinator's audit log and in the log of the signer that
//! caught it), nothing may be kept, and an honest repair afterwards must rebuild the share,
//! which then signs under the unchanged group key.

use std::sync::{Arc, Mutex};

use frost_secp256k1::keys::{KeyPackage, PublicKeyPackage, SigningShare};
use quorate_core::{
    audit::{kind, Record},
    identity::{IdentityPublic, IdentitySecret},
    message::Scheme,
    repair::{self, Contribution, HelperState, Offer, RepairSetup},
    seal::{self, SealContext, Sealed},
};
use quorate_signer::{
    config::SignerConfig,
    node::{
        identity_purpose, meta_key, share_purpose, META_GROUP_KEY, META_KEY_SHARE,
        META_PUBLIC_KEY_PACKAGE,
    },
    store::{SignerStore, SledStore},
};
use quorate_wire::{
    admin::ClusterStatus,
    manifest::Manifest,
    signer::{
        self as pb, coordinator_message::Body as Req, signer_link_client::SignerLinkClient,
        signer_message::Body as Ans,
    },
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    harness::{hexf, quorate, rfc9591_verify, Cluster},
    scoreboard::Book,
};

type S = frost_secp256k1::Secp256K1Sha256;

/// The signer store's metadata key of a share's key epoch (absent: 0).
const META_KEY_EPOCH: &str = "key_epoch";

/// How the impostor cheats; in every other respect it follows the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cheat {
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

fn config(c: &Cluster, name: &str) -> SignerConfig {
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
type Held = (KeyPackage, PublicKeyPackage, u32);

/// A (stopped) signer's secp256k1 share, read from its store and opened with its KEK.
fn share_of(c: &Cluster, name: &str) -> Held {
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

/// A (stopped) signer's store holds no secp256k1 share, public key package or group key.
fn holds_nothing(c: &Cluster, name: &str) {
    let store = SledStore::open(&config(c, name).data_dir).unwrap();
    for what in [META_KEY_SHARE, META_PUBLIC_KEY_PACKAGE, META_GROUP_KEY] {
        let kept = store.get_meta(&meta_key(Scheme::Secp256k1, what)).unwrap();
        assert!(
            kept.is_none(),
            "{name} kept a {what} from an aborted repair"
        );
    }
}

fn identity_key(c: &Cluster, name: &str) -> IdentityPublic {
    Manifest::load(&c.path("manifest.toml"))
        .unwrap()
        .signer_by_name(name)
        .unwrap()
        .identity_key
}

/// The group key a signer reported to the coordinator (empty: it holds no share).
fn key_of(s: &ClusterStatus, name: &str) -> Vec<u8> {
    s.signers
        .iter()
        .find(|x| x.name == name)
        .map(|x| x.group_public_key.clone())
        .unwrap_or_else(|| panic!("{name} is not in the status"))
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
struct Impostor {
    cheat: Arc<Mutex<Cheat>>,
    told: Arc<Mutex<Vec<Cheat>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Impostor {
    /// Dials the coordinator as `name` (its certificate) and says hello with `group_key`.
    async fn attach(
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

    fn set(&self, cheat: Cheat) {
        *self.cheat.lock().unwrap() = cheat;
    }

    /// The cheats it carried out, in order.
    fn told(&self) -> Vec<Cheat> {
        self.told.lock().unwrap().clone()
    }

    /// Hangs up; it must still have been on the line (a crash would also abort a repair).
    async fn leave(self, c: &Cluster, connected_after: usize) {
        assert!(!self.task.is_finished(), "the impostor's link died early");
        self.task.abort();
        let _ = self.task.await;
        c.wait_connected(connected_after).await;
    }
}

/// `quorate repair --json` of signer-3 from signers 1 and 2; returns (exit code, JSON, stderr).
async fn repair_3(c: &Cluster) -> (i32, serde_json::Value, String) {
    let (code, out, err) = quorate(&[
        "repair",
        "--dir",
        c.dir_str(),
        "--coordinator",
        &c.addr,
        "--json",
        "--signer",
        "signer-3",
        "--helpers",
        "signer-1,signer-2",
    ])
    .await;
    let v = serde_json::from_str(out.trim()).unwrap_or(serde_json::Value::Null);
    (code, v, err)
}

/// `quorate repair` of signer-3 from signers 1 and 2 fails `repair-aborted`, naming `culprit`
/// alone, for `reason`, and says what was kept: nothing, or (when the target itself is the
/// culprit) nothing the group's public key package holds.
async fn repair_aborts_naming(c: &Cluster, culprit: &str, reason: &str) {
    let (code, v, err) = repair_3(c).await;
    assert_ne!(code, 0, "the repair went through: {v}");
    assert!(err.contains("repair refused: repair-aborted"), "{err}");
    assert!(err.contains(reason), "another failure than expected: {err}");
    let kept = if culprit == "3" {
        "whatever the target kept is not in the group's public key package"
    } else {
        "nothing was kept"
    };
    assert!(
        err.contains(&format!("(culprits: {culprit}); {kept}")),
        "{err}"
    );
}

/// Signer-3's data directory is lost and it restarts with none; signer-1 is stopped and the
/// test takes its place with its certificate, identity key and share.
async fn lose_3_and_impersonate_1(c: &mut Cluster, group_key: &[u8], cheat: Cheat) -> Impostor {
    let lost = config(c, "signer-3").data_dir;
    c.kill_signer("signer-1").await;
    c.kill_signer("signer-3").await;
    c.wait_connected(1).await;
    std::fs::remove_dir_all(lost).unwrap();
    c.start_signer("signer-3");
    let share = share_of(c, "signer-1");
    let one = Impostor::attach(c, "signer-1", Some(share), group_key.to_vec(), cheat).await;
    c.wait_connected(3).await;
    assert!(
        key_of(&c.status().await, "signer-3").is_empty(),
        "no share after the loss"
    );
    one
}

/// The coordinator's audit log after `attacks` repairs of signer-3, each aborted naming
/// `culprit` alone, and none recorded as done.
async fn coordinator_named(c: &Cluster, culprit: &str, attacks: usize) -> Vec<Record> {
    let log = c.coordinator_audit().await;
    let aborted: Vec<&Record> = log
        .iter()
        .filter(|r| r.event.kind == kind::REPAIR_ABORTED)
        .collect();
    assert_eq!(aborted.len(), attacks, "{aborted:?}");
    for r in aborted {
        assert_eq!(r.event.field("culprits"), Some(culprit), "{:?}", r.event);
        assert_eq!(r.event.field("target"), Some("3"), "{:?}", r.event);
    }
    assert!(
        !log.iter().any(|r| r.event.kind == kind::SHARE_REPAIRED),
        "an aborted repair was recorded as done"
    );
    log
}

/// Records in `node`'s verified log refusing a repair step and naming `culprit`.
async fn refusals_naming(c: &Cluster, node: &str, culprit: &str) -> (usize, Vec<Record>) {
    let log = c.audit_of(node, Some(&identity_key(c, node))).await;
    let n = log
        .iter()
        .filter(|r| {
            r.event.kind == kind::REFUSED
                && r.event.field("rule") == Some("repair-aborted")
                && r.event.field("culprits") == Some(culprit)
        })
        .count();
    (n, log)
}

fn count(log: &[Record], kind: &str) -> usize {
    log.iter().filter(|r| r.event.kind == kind).count()
}

/// With the impostor gone and signer-1 back: signer-3 (stopped meanwhile) kept nothing on
/// disk; the honest repair then rebuilds its share, and with signer-1 stopped it signs with
/// signer-2 under the unchanged group key.
async fn impostor_gone_honest_repair_signs(c: &mut Cluster, one: Impostor, group_key: &[u8]) {
    one.leave(c, 2).await;
    c.kill_signer("signer-3").await;
    c.wait_connected(1).await;
    holds_nothing(c, "signer-3");
    c.start_signer("signer-1");
    c.start_signer("signer-3");
    c.wait_connected(3).await;
    assert!(
        key_of(&c.status().await, "signer-3").is_empty(),
        "signer-3 came back with a share"
    );
    honest_repair_signs(c, group_key).await;
}

async fn honest_repair_signs(c: &mut Cluster, group_key: &[u8]) {
    let (code, v, err) = repair_3(c).await;
    assert_eq!(code, 0, "the honest repair failed: {v}{err}");
    assert_eq!(hexf(&v, "group_public_key"), group_key, "{v}");
    assert_eq!(key_of(&c.status().await, "signer-3"), group_key);
    let log3 = c
        .audit_of("signer-3", Some(&identity_key(c, "signer-3")))
        .await;
    assert_eq!(count(&log3, kind::SHARE_REPAIRED), 1);
    assert_eq!(count(&c.coordinator_audit().await, kind::SHARE_REPAIRED), 1);

    c.kill_signer("signer-1").await;
    c.wait_connected(2).await;
    let (code, w) = c.submit_eth("wd-after-honest-repair", "1").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!([2, 3]), "{w}");
    assert!(rfc9591_verify(
        group_key,
        &hexf(&w, "message"),
        &hexf(&w, "signature")
    ));
}

/// Helper 1 cheats on its deltas in round 1, two ways: a delta sealed to helper 2 that is not
/// the one its signed offer commits to, and an offer whose commitments do not add up to its
/// verifying share (it split a share it does not hold). Helper 2 names it each time and never
/// seals its own part to the target; signer-3 keeps nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_whose_deltas_break_its_commitments_is_named_and_nothing_is_kept() {
    let mut c = Cluster::start(3, 2).await;
    let mut book = Book::attacks("redteam-repair-delta");
    let group_key = c.status().await.group_public_key;
    let one = lose_3_and_impersonate_1(&mut c, &group_key, Cheat::WrongDelta).await;

    repair_aborts_naming(
        &c,
        "1",
        "helper 1 sent a delta that differs from its commitment",
    )
    .await;
    assert_eq!(one.told(), [Cheat::WrongDelta]);
    book.blocked_as(
        "helper seals another helper a delta that differs from its signed commitment",
        "signer-2",
        "repair-aborted",
        None,
        (kind::REFUSED, "culprits", "1"),
    );

    one.set(Cheat::ForeignShare);
    repair_aborts_naming(
        &c,
        "1",
        "the deltas helper 1 committed to do not add up to its share",
    )
    .await;
    assert_eq!(one.told(), [Cheat::WrongDelta, Cheat::ForeignShare]);
    book.blocked_as(
        "helper commits to deltas that do not add up to its verifying share",
        "signer-2",
        "repair-aborted",
        None,
        (kind::REFUSED, "culprits", "1"),
    );

    assert!(key_of(&c.status().await, "signer-3").is_empty());
    coordinator_named(&c, "1", 2).await;
    let (named, log2) = refusals_naming(&c, "signer-2", "1").await;
    assert_eq!(named, 2, "signer-2 named helper 1 in its own log");
    assert_eq!(
        count(&log2, kind::REPAIR_HELPED),
        0,
        "signer-2 sealed its part to the target despite a cheating helper"
    );
    let log3 = c
        .audit_of("signer-3", Some(&identity_key(&c, "signer-3")))
        .await;
    assert_eq!(count(&log3, kind::SHARE_REPAIRED), 0);
    book.audit("signer-2", &log2);

    impostor_gone_honest_repair_signs(&mut c, one, &group_key).await;
    book.finish();
}

/// Helper 1 follows round 1 honestly, then seals the target a σ that is not the sum of the
/// deltas committed to it. The target names it and keeps nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_sending_a_bad_sigma_is_named_by_the_target_and_nothing_is_kept() {
    let mut c = Cluster::start(3, 2).await;
    let mut book = Book::attacks("redteam-repair-sigma");
    let group_key = c.status().await.group_public_key;
    let one = lose_3_and_impersonate_1(&mut c, &group_key, Cheat::BadSigma).await;

    repair_aborts_naming(
        &c,
        "1",
        "helper 1 sent a σ that is not the sum of the deltas committed to it",
    )
    .await;
    assert_eq!(one.told(), [Cheat::BadSigma]);
    book.blocked_as(
        "helper seals the target a σ that is not the sum of the deltas committed to it",
        "signer-3",
        "repair-aborted",
        None,
        (kind::REFUSED, "culprits", "1"),
    );

    assert!(key_of(&c.status().await, "signer-3").is_empty());
    coordinator_named(&c, "1", 1).await;
    let (named, log3) = refusals_naming(&c, "signer-3", "1").await;
    assert_eq!(named, 1, "the target named helper 1 in its own log");
    assert_eq!(count(&log3, kind::SHARE_REPAIRED), 0);
    book.audit("signer-3", &log3);

    impostor_gone_honest_repair_signs(&mut c, one, &group_key).await;
    book.finish();
}

/// The target (signer-3, played by the test with its real identity key) rebuilds its share
/// from honest helpers and then lies about the result: an altered signature, then a genuinely
/// signed claim to another verifying share. The coordinator refuses both, naming 3; no one's
/// share or key changes, signers 1 and 2 still sign, and the real signer-3 is repaired after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_lies_about_its_result_is_named_and_nothing_changes() {
    let mut c = Cluster::start(3, 2).await;
    let mut book = Book::attacks("redteam-repair-target");
    let before = c.status().await;
    let group_key = before.group_public_key.clone();
    let lost = config(&c, "signer-3").data_dir;
    c.kill_signer("signer-3").await;
    c.wait_connected(2).await;
    std::fs::remove_dir_all(lost).unwrap();
    let three = Impostor::attach(&c, "signer-3", None, vec![], Cheat::AlteredResultSignature).await;
    c.wait_connected(3).await;

    repair_aborts_naming(&c, "3", "the target's answer is not signed by it").await;
    assert_eq!(three.told(), [Cheat::AlteredResultSignature]);
    book.blocked_as(
        "target returns its repair result with an altered signature",
        "coordinator",
        "repair-aborted",
        None,
        (kind::REPAIR_ABORTED, "culprits", "3"),
    );

    three.set(Cheat::OtherVerifyingShare);
    repair_aborts_naming(
        &c,
        "3",
        "the target's answer reports a share of another key",
    )
    .await;
    assert_eq!(
        three.told(),
        [Cheat::AlteredResultSignature, Cheat::OtherVerifyingShare]
    );
    book.blocked_as(
        "target signs a repair result naming another verifying share",
        "coordinator",
        "repair-aborted",
        None,
        (kind::REPAIR_ABORTED, "culprits", "3"),
    );

    // Nothing changed: the coordinator does not count signer-3 a holder, the others hold the
    // same key, and the group key is the same.
    let after = c.status().await;
    assert!(key_of(&after, "signer-3").is_empty());
    assert_eq!(after.group_public_key, group_key);
    for name in ["signer-1", "signer-2"] {
        assert_eq!(key_of(&after, name), key_of(&before, name), "{name}");
    }
    let log = coordinator_named(&c, "3", 2).await;
    book.audit("coordinator", &log);

    three.leave(&c, 2).await;
    let (code, w) = c.submit_eth("wd-after-lying-target", "1").await;
    assert_eq!((code, w["status"].as_str()), (0, Some("signed")), "{w}");
    assert_eq!(w["signers"], serde_json::json!([1, 2]), "{w}");
    assert!(rfc9591_verify(
        &group_key,
        &hexf(&w, "message"),
        &hexf(&w, "signature")
    ));

    c.start_signer("signer-3");
    c.wait_connected(3).await;
    honest_repair_signs(&mut c, &group_key).await;
    book.finish();
}
