//! The cross-check between the coordinator's log and the signers' logs, both directions.

use std::collections::{BTreeMap, BTreeSet};

use super::{kind, AuditError, VerifiedLog};

/// What [`cross_check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossCheck {
    /// Group signatures the coordinator released.
    pub signed: usize,
    /// Threshold they were checked against.
    pub threshold: u16,
    /// Share releases in the signers' logs checked against the coordinator's log.
    pub releases: usize,
    /// Share releases newer than the coordinator's log (less the skew): not judged.
    pub unjudged: usize,
    /// Withdrawals that t signers released shares for and that the coordinator's log says
    /// failed or refused, naming no culprit: a crash or a lost answer in between, or a
    /// coordinator keeping a signature and claiming failure. For a person to look at.
    pub failed_after_release: Vec<String>,
}

/// Checks both directions between the coordinator's log and the signers': every withdrawal the
/// coordinator's log says it signed is matched, for the same withdrawal id and digest, by
/// share-release records in at least t distinct signers' logs; and every share a signer
/// released is shown by the coordinator's log (see the second half). `skew_ms` is the clock
/// difference allowed between the coordinator's and the signers' hosts.
/// `threshold` should come from the pinned manifest (the coordinator's head only claims one).
/// Signers' logs should be exported after the coordinator's, so they cover everything it
/// released.
pub fn cross_check(
    coordinator: &VerifiedLog,
    signers: &[VerifiedLog],
    threshold: Option<u16>,
    skew_ms: u64,
) -> Result<CrossCheck, AuditError> {
    let t = threshold
        .or(coordinator.head.threshold)
        .ok_or_else(|| AuditError::at(None, None, "no threshold to check against"))?;
    let mut released: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for log in signers {
        for r in &log.records {
            if r.event.kind != kind::SHARE_RELEASED {
                continue;
            }
            if let (Some(w), Some(d)) = (r.event.field("withdrawal"), r.event.field("digest")) {
                released
                    .entry((w, d))
                    .or_default()
                    .insert(log.head.node.as_str());
            }
        }
    }
    let mut signed = 0;
    for r in &coordinator.records {
        if r.event.kind != kind::WITHDRAWAL_SIGNED {
            continue;
        }
        signed += 1;
        let (Some(w), Some(d)) = (r.event.field("withdrawal"), r.event.field("digest")) else {
            return Err(AuditError::at(
                None,
                Some(r.seq),
                "coordinator: a signed record without withdrawal and digest",
            ));
        };
        let by = released.get(&(w, d)).map_or(0, BTreeSet::len);
        if by < usize::from(t) {
            return Err(AuditError::at(
                None,
                Some(r.seq),
                format!(
                    "coordinator: withdrawal `{w}` was released with a group signature but only {by} of the signers' logs record a share for it (threshold {t})"
                ),
            ));
        }
    }
    // The other direction: every share a signer released must be for a withdrawal the
    // coordinator's log shows it received (same id and digest), and once t signers released
    // shares for it (a signature can exist), the coordinator's log must show it signed, failed
    // or naming a culprit. A coordinator that gathers shares and keeps the signature to itself
    // (harvesting) is caught here. Releases later than the coordinator's last record, less the
    // allowed clock skew, are still in flight at its export and are not judged.
    let cutoff = coordinator
        .records
        .last()
        .map_or(0, |r| r.at_ms)
        .saturating_sub(skew_ms);
    let mut received: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut blamed: BTreeSet<&str> = BTreeSet::new();
    let mut failed: BTreeSet<&str> = BTreeSet::new();
    let mut signed_ids: BTreeSet<(&str, &str)> = BTreeSet::new();
    for r in &coordinator.records {
        let w = r.event.field("withdrawal");
        match (r.event.kind.as_str(), w, r.event.field("digest")) {
            (kind::WITHDRAWAL_RECEIVED, Some(w), Some(d)) => {
                received.insert((w, d));
            }
            (kind::WITHDRAWAL_SIGNED, Some(w), Some(d)) => {
                signed_ids.insert((w, d));
            }
            (kind::CULPRIT, Some(w), _) => {
                blamed.insert(w);
            }
            // A run that ended without a signature: failed, or refused (permanently, e.g.
            // expired) after a retry.
            (kind::WITHDRAWAL_FAILED | kind::REFUSED, Some(w), _) => {
                failed.insert(w);
            }
            _ => {}
        }
    }
    let mut judged = 0;
    let mut unjudged = 0;
    let mut failed_after_release = Vec::new();
    let mut times: BTreeMap<(&str, &str), Vec<(u64, &str)>> = BTreeMap::new();
    for log in signers {
        for r in &log.records {
            if r.event.kind != kind::SHARE_RELEASED {
                continue;
            }
            let (Some(w), Some(d)) = (r.event.field("withdrawal"), r.event.field("digest")) else {
                return Err(AuditError::at(
                    None,
                    Some(r.seq),
                    format!(
                        "{}: a share release without withdrawal and digest",
                        log.head.node
                    ),
                ));
            };
            times
                .entry((w, d))
                .or_default()
                .push((r.at_ms, log.head.node.as_str()));
            if r.at_ms > cutoff {
                unjudged += 1;
                continue;
            }
            judged += 1;
            if !received.contains(&(w, d)) {
                return Err(AuditError::at(
                    None,
                    Some(r.seq),
                    format!(
                        "{}: released a share for withdrawal `{w}` (digest {d}) that the coordinator's log never shows it received",
                        log.head.node
                    ),
                ));
            }
        }
    }
    for ((w, d), at) in times {
        // Each signer's first release; when the t-th signer released, a signature could exist.
        let mut first: BTreeMap<&str, u64> = BTreeMap::new();
        for (ms, node) in at {
            let e = first.entry(node).or_insert(ms);
            *e = (*e).min(ms);
        }
        if first.len() < usize::from(t) {
            continue;
        }
        let nodes: Vec<&str> = first.keys().copied().collect();
        let mut when: Vec<u64> = first.into_values().collect();
        when.sort_unstable();
        if when[usize::from(t) - 1] > cutoff {
            continue;
        }
        if signed_ids.contains(&(w, d)) || blamed.contains(w) {
            continue;
        }
        if failed.contains(w) {
            failed_after_release.push(w.to_string());
            continue;
        }
        return Err(AuditError::at(
            None,
            None,
            format!(
                "withdrawal `{w}` (digest {d}): {} signers ({}) released shares, enough for a signature, but the coordinator's log never shows it signed, failed or blaming anyone (signatures harvested?)",
                nodes.len(),
                nodes.join(", ")
            ),
        ));
    }
    Ok(CrossCheck {
        signed,
        threshold: t,
        releases: judged,
        unjudged,
        failed_after_release,
    })
}
