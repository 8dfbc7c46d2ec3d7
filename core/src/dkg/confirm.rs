//! The confirmation round: every participant's signed result, checked before a share is kept.

use std::collections::BTreeMap;

use frost_core::Ciphersuite;

use super::{domain, fail, DefaultSuite, DkgError, DkgOutput, Kind};
use crate::identity::IdentityPublic;

/// Checks a participant's signed DKG result.
pub fn verify_result(
    key: &IdentityPublic,
    session_id: &[u8],
    transcript: &[u8],
    group_key: &[u8],
    signature: &[u8],
) -> bool {
    verify_result_for::<DefaultSuite>(key, session_id, transcript, group_key, signature)
}

/// [`verify_result`] for the DKG of ciphersuite `C`.
pub fn verify_result_for<C: Ciphersuite>(
    key: &IdentityPublic,
    session_id: &[u8],
    transcript: &[u8],
    group_key: &[u8],
    signature: &[u8],
) -> bool {
    verify_result_of_kind::<C>(Kind::Dkg, key, session_id, transcript, group_key, signature)
}

/// [`verify_result_for`] for a run of either kind: a refresh signs its result under its own
/// domain, so a DKG result never passes for a refresh result, nor the other way round.
pub fn verify_result_of_kind<C: Ciphersuite>(
    kind: Kind,
    key: &IdentityPublic,
    session_id: &[u8],
    transcript: &[u8],
    group_key: &[u8],
    signature: &[u8],
) -> bool {
    key.verify(
        &domain::<C>(kind.result_domain()),
        &[session_id, transcript, group_key],
        signature,
    )
    .is_ok()
}

/// One participant's signed DKG result, as relayed by the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedResult {
    /// Participant.
    pub identifier: u16,
    /// The group key it derived.
    pub group_key: Vec<u8>,
    /// The round-1 transcript hash it saw.
    pub transcript: Vec<u8>,
    /// Its identity signature over (session, transcript, group key).
    pub signature: Vec<u8>,
}

/// The last step before a participant keeps its share: every one of the n participants must
/// have signed the same transcript and group key as ours, so a share is never kept for a group
/// that some participant did not finish. (A relay can still withhold this confirmation from
/// some participants; operators compare fingerprints out of band for that reason.) For a
/// refresh, `setup_participants` are the refresh's participants, and the results must be
/// signed as refresh results; the same transcript (which binds the old group) and group key
/// imply the same new public key package.
pub fn check_confirmations<C: Ciphersuite>(
    setup_participants: &BTreeMap<u16, IdentityPublic>,
    session_id: &[u8],
    ours: &DkgOutput<C>,
    results: &[SignedResult],
) -> Result<(), DkgError> {
    let mut seen = std::collections::BTreeSet::new();
    for r in results {
        let Some(key) = setup_participants.get(&r.identifier) else {
            return Err(fail(
                format!("confirmation from unknown identifier {}", r.identifier),
                vec![],
            ));
        };
        if !seen.insert(r.identifier) {
            return Err(fail(
                format!("two confirmations for identifier {}", r.identifier),
                vec![],
            ));
        }
        if !verify_result_of_kind::<C>(
            ours.kind,
            key,
            session_id,
            &r.transcript,
            &r.group_key,
            &r.signature,
        ) {
            return Err(fail(
                format!("the confirmation of {} is not signed by it", r.identifier),
                vec![r.identifier],
            ));
        }
        if r.group_key != ours.group_key || r.transcript != ours.transcript {
            return Err(fail(
                format!(
                    "participant {} finished with a different transcript or group key",
                    r.identifier
                ),
                vec![],
            ));
        }
    }
    if seen.len() != setup_participants.len() {
        return Err(fail(
            format!(
                "only {} of {} participants confirmed",
                seen.len(),
                setup_participants.len()
            ),
            vec![],
        ));
    }
    Ok(())
}
