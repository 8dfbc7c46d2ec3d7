//! The echo broadcast that stands in for a broadcast channel between rounds 2 and 3: each
//! participant signs the round-1 packages it accepted, and checks everyone else's.

use std::collections::BTreeMap;

use frost_core::Ciphersuite;
use sha2::{Digest, Sha256};

use super::{domain, fail, round1_parts, DkgError, DkgSetup, Round2State, SignedRound1};
use crate::identity::IdentitySecret;

/// Echo broadcast: one participant's signed account of the round-1 packages it accepted.
///
/// The coordinator relays the round-1 broadcast, so it is no broadcast channel: a participant
/// could sign two different packages and have each shown to different peers. Every participant
/// therefore echoes what it accepted, with every package still signed by its sender, and signs
/// the echo. A package in someone's echo that differs from the one we accepted, under the same
/// sender's valid signature, proves that sender equivocated (RFC 9591 leaves the broadcast
/// channel to the application; this is ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEcho {
    /// Whose echo.
    pub from: u16,
    /// The signed round-1 packages it accepted, one per participant.
    pub packages: Vec<SignedRound1>,
    /// Its identity signature over (session, manifest, itself, [`echo_digest`] of `packages`).
    pub signature: Vec<u8>,
}

fn echo_parts<'a>(setup: &'a DkgSetup, from: &'a [u8; 2], digest: &'a [u8; 32]) -> [&'a [u8]; 4] {
    [&setup.session_id, &setup.manifest_hash, from, digest]
}

/// What an echo's signature covers: every echoed package *with its sender's signature*, so a
/// relay cannot strip or swap those signatures and have the echo's author blamed for it.
pub fn echo_digest(packages: &[SignedRound1]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"quorate/dkg-echo-digest/v1");
    h.update((packages.len() as u32).to_be_bytes());
    for p in packages {
        h.update(p.identifier.to_be_bytes());
        h.update((p.package.len() as u32).to_be_bytes());
        h.update(&p.package);
        h.update((p.signature.len() as u32).to_be_bytes());
        h.update(&p.signature);
    }
    h.finalize().into()
}

/// Our echo of the round-1 broadcast, signed, to send with our round-2 packages.
pub fn echo<C: Ciphersuite>(state: &Round2State<C>, identity: &IdentitySecret) -> SignedEcho {
    let setup = &state.setup;
    let me = setup.me.to_be_bytes();
    let packages: Vec<SignedRound1> = state.accepted.values().cloned().collect();
    let digest = echo_digest(&packages);
    SignedEcho {
        from: setup.me,
        packages,
        signature: identity.sign(
            &domain::<C>(state.run.kind().echo_domain()),
            &echo_parts(setup, &me, &digest),
        ),
    }
}

/// Checks every other participant's echo against the packages we accepted. Names the culprit
/// where the evidence is conclusive: a sender whose two different packages both carry its
/// signature, or an echo signer whose signed echo holds a package its sender never signed.
pub(super) fn check_echoes<C: Ciphersuite>(
    state: &Round2State<C>,
    echoes: &[SignedEcho],
) -> Result<(), DkgError> {
    let setup = &state.setup;
    let kind = state.run.kind();
    let mut seen = BTreeMap::new();
    for e in echoes {
        if e.from == setup.me {
            continue;
        }
        let Some(key) = setup.participants.get(&e.from) else {
            return Err(fail(
                format!("echo from unknown identifier {}", e.from),
                vec![],
            ));
        };
        if seen.insert(e.from, ()).is_some() {
            return Err(fail(format!("two echoes from {}", e.from), vec![]));
        }
        let mut by_id = BTreeMap::new();
        for p in &e.packages {
            let Some(sender_key) = setup.participants.get(&p.identifier) else {
                return Err(fail(
                    format!(
                        "echo of {} names unknown identifier {}",
                        e.from, p.identifier
                    ),
                    vec![],
                ));
            };
            let sender = p.identifier.to_be_bytes();
            let signed_by_sender = sender_key
                .verify(
                    &domain::<C>(kind.round1_domain()),
                    &round1_parts(setup, &sender, &p.package),
                    &p.signature,
                )
                .is_ok();
            if by_id
                .insert(p.identifier, (p.package.clone(), signed_by_sender))
                .is_some()
            {
                return Err(fail(
                    format!("echo of {} repeats identifier {}", e.from, p.identifier),
                    vec![],
                ));
            }
        }
        let digest = echo_digest(&e.packages);
        let from = e.from.to_be_bytes();
        if key
            .verify(
                &domain::<C>(kind.echo_domain()),
                &echo_parts(setup, &from, &digest),
                &e.signature,
            )
            .is_err()
        {
            // Unsigned by its author: the relay altered or made it up. Nobody to blame.
            return Err(fail(
                format!("the echo of {} is not signed by its identity key", e.from),
                vec![],
            ));
        }
        for (id, ours) in &state.accepted {
            match by_id.get(id) {
                Some((theirs, _)) if *theirs == ours.package => {}
                Some((_, true)) => {
                    return Err(fail(
                        format!(
                            "participant {id} signed two different round-1 packages for this session (equivocation, seen in the echo of {})",
                            e.from
                        ),
                        vec![*id],
                    ))
                }
                Some((_, false)) => {
                    return Err(fail(
                        format!(
                            "participant {} signed an echo holding a round-1 package of {id} that {id} never signed",
                            e.from
                        ),
                        vec![e.from],
                    ))
                }
                None => {
                    return Err(fail(
                        format!("participant {} signed an echo without {id}'s package", e.from),
                        vec![e.from],
                    ))
                }
            }
        }
        if by_id.len() != state.accepted.len() {
            return Err(fail(
                format!("participant {} signed an echo with extra packages", e.from),
                vec![e.from],
            ));
        }
    }
    if seen.len() + 1 != setup.participants.len() {
        return Err(fail(
            format!(
                "round 3 needs every other participant's echo; got {} of {} (withheld by the relay?)",
                seen.len(),
                setup.participants.len() - 1
            ),
            vec![],
        ));
    }
    Ok(())
}
