//! Whole runs held in one process, for tests and benchmarks.

use std::collections::BTreeMap;

use frost_core::Ciphersuite;
use rand_core::{CryptoRng, RngCore};

use super::{
    check_confirmations, echo, fail, round1_for, round2, round3, DkgError, DkgOutput, DkgSetup,
    Round1State, Round2State, SignedEcho, SignedResult, SignedRound1,
};
use crate::{
    identity::{IdentityPublic, IdentitySecret},
    seal::Sealed,
};

/// Runs the whole DKG (rounds 1 to 3 and the confirmation) among `n` participants held in
/// this process, honestly, with fresh identity keys; returns each participant's output, in
/// identifier order (1..=n). For tests and benchmarks of what a group signs: a cluster's
/// participants are separate processes that never share memory.
pub fn run_in_process<C: Ciphersuite, R: RngCore + CryptoRng>(
    n: u16,
    t: u16,
    rng: &mut R,
) -> Result<Vec<DkgOutput<C>>, DkgError> {
    let ids: Vec<(u16, IdentitySecret)> = (1..=n)
        .map(|i| (i, IdentitySecret::generate(&mut *rng)))
        .collect();
    relay_in_process(
        &ids,
        t,
        b"in-process-dkg",
        rng,
        |setup, k, rng| round1_for::<C, R>(setup, k, rng),
        |_, st, k, sealed, echoes| round3(st, k, sealed, echoes),
    )
}

/// The relay of [`run_in_process`] and [`refresh_in_process`](super::refresh_in_process):
/// `start` is round 1 and `finish` round 3 of participant `ids[idx]`; then every output is
/// confirmed by every participant.
pub(super) fn relay_in_process<C: Ciphersuite, R: RngCore + CryptoRng>(
    ids: &[(u16, IdentitySecret)],
    t: u16,
    session: &[u8],
    rng: &mut R,
    mut start: impl FnMut(
        DkgSetup,
        &IdentitySecret,
        &mut R,
    ) -> Result<(Round1State<C>, SignedRound1), DkgError>,
    mut finish: impl FnMut(
        usize,
        Round2State<C>,
        &IdentitySecret,
        &[Sealed],
        &[SignedEcho],
    ) -> Result<DkgOutput<C>, DkgError>,
) -> Result<Vec<DkgOutput<C>>, DkgError> {
    let participants: BTreeMap<u16, IdentityPublic> =
        ids.iter().map(|(i, k)| (*i, k.public())).collect();
    if participants.len() != ids.len() {
        return Err(fail("an identifier is listed twice", vec![]));
    }
    let setup = |me: u16| DkgSetup {
        session_id: session.to_vec(),
        manifest_hash: [0; 32],
        me,
        threshold: t,
        participants: participants.clone(),
    };
    let mut states = Vec::new();
    let mut broadcast = Vec::new();
    for (i, k) in ids {
        let (st, signed) = start(setup(*i), k, rng)?;
        states.push(st);
        broadcast.push(signed);
    }
    let mut round2_states = Vec::new();
    let mut mail: BTreeMap<u16, Vec<Sealed>> = BTreeMap::new();
    let mut echoes = Vec::new();
    for (st, (_, k)) in states.into_iter().zip(ids) {
        let (st, sealed) = round2(st, k, rng, &broadcast)?;
        echoes.push(echo(&st, k));
        round2_states.push(st);
        for s in sealed {
            mail.entry(s.recipient).or_default().push(s);
        }
    }
    let mut outs = Vec::new();
    for (idx, (st, (i, k))) in round2_states.into_iter().zip(ids).enumerate() {
        let sealed = mail.get(i).map_or(&[][..], Vec::as_slice);
        outs.push(finish(idx, st, k, sealed, &echoes)?);
    }
    let results: Vec<SignedResult> = outs
        .iter()
        .zip(ids)
        .map(|(o, (i, _))| SignedResult {
            identifier: *i,
            group_key: o.group_key.clone(),
            transcript: o.transcript.to_vec(),
            signature: o.signature.clone(),
        })
        .collect();
    for o in &outs {
        check_confirmations(&participants, session, o, &results)?;
    }
    Ok(outs)
}
