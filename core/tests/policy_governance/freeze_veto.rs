//! Governance: freezing, supersession of pending versions, and vetoes.

use quorate_core::{
    policy::{
        governance::{
            diff, is_freeze_only, next_version, required_signatures, MAX_VETOES, POLICY_VETO_DOMAIN,
        },
        AdminSignature, Effect, Offered,
    },
    refusal::Rule,
};

use super::common::*;

#[test]
fn one_admin_freezes_at_once_and_unfreezing_needs_the_quorum() {
    let (a, mut st) = setup();
    let outsider = keys(1).remove(0);
    let freeze = next(&st, |d| d.frozen = true);
    assert!(is_freeze_only(st.active(), &freeze));
    assert_eq!(required_signatures(st.active(), &freeze), 1);
    let changes = diff(st.active(), &freeze);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].effect, changes[0].what.as_str()),
        (Effect::Tightens, "freeze")
    );
    // Not by a non-admin, not with no signature.
    refused(
        st.offer(signed(&freeze, &[&outsider]), T0),
        Rule::PolicyUpdateSignatures,
    );
    refused(
        st.offer(signed(&freeze, &[]), T0),
        Rule::PolicyUpdateSignatures,
    );
    // One admin: applied at once.
    assert_eq!(
        st.offer(signed(&freeze, &[&a[2]]), T0),
        Ok(Offered::Applied)
    );
    assert!(st.active().frozen);
    assert_eq!(st.active(), &freeze);

    // Freeze plus anything else is not freeze-only: the quorum is needed.
    let (a, mut st) = setup();
    let freeze_more = next(&st, |d| {
        d.frozen = true;
        eth_asset(d).max_per_withdrawal = amount(ETH);
    });
    assert!(!is_freeze_only(st.active(), &freeze_more));
    assert_eq!(required_signatures(st.active(), &freeze_more), 2);
    refused(
        st.offer(signed(&freeze_more, &[&a[0]]), T0),
        Rule::PolicyUpdateSignatures,
    );
    assert_eq!(
        st.offer(signed(&freeze_more, &[&a[0], &a[1]]), T0),
        Ok(Offered::Applied)
    );

    // Unfreezing: the quorum, no time-lock.
    let (a, mut st) = setup();
    let freeze = next(&st, |d| d.frozen = true);
    st.offer(signed(&freeze, &[&a[0]]), T0).unwrap();
    let unfreeze = next(&st, |d| d.frozen = false);
    assert!(!is_freeze_only(st.active(), &unfreeze));
    assert_eq!(required_signatures(st.active(), &unfreeze), 2);
    let changes = diff(st.active(), &unfreeze);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].effect, changes[0].what.as_str()),
        (Effect::Neutral, "unfreeze")
    );
    refused(
        st.offer(signed(&unfreeze, &[&a[0]]), T0 + 1),
        Rule::PolicyUpdateSignatures,
    );
    refused(
        st.offer(signed(&unfreeze, &[&a[1], &a[1]]), T0 + 1),
        Rule::PolicyUpdateSignatures,
    );
    assert_eq!(
        st.offer(signed(&unfreeze, &[&a[0], &a[1]]), T0 + 1),
        Ok(Offered::Applied)
    );
    assert!(!st.active().frozen);
    assert_eq!(st.active().version, 3);
    // "Freezing" what is already frozen is no freeze-only change.
    let mut frozen = st.active().clone();
    frozen.frozen = true;
    let again = next_version(&frozen, frozen.clone());
    assert!(!is_freeze_only(&frozen, &again));
}

#[test]
fn a_freeze_supersedes_a_pending_loosening() {
    let (a, mut st) = setup();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    assert!(matches!(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0),
        Ok(Offered::Pending { .. })
    ));
    // One admin freezes the version in force.
    let freeze = next(&st, |d| d.frozen = true);
    assert_eq!(freeze.version, loosen.version);
    assert_eq!(
        st.offer(signed(&freeze, &[&a[2]]), T0 + H),
        Ok(Offered::Applied)
    );
    assert!(st.pending.is_none(), "the pending version was dropped");
    assert!(st.active().frozen);
    // Its time comes and goes: nothing applies.
    assert!(!st.tick(T0 + 2 * DAY));
    assert_eq!(st.active(), &freeze);
    // Offered again, the stale version is refused by version…
    refused(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0 + 2 * DAY),
        Rule::PolicyUpdateVersion,
    );
    // …and renumbered, by the chain.
    let mut renumbered = loosen.clone();
    renumbered.version = 3;
    refused(
        st.offer(signed(&renumbered, &[&a[0], &a[1]]), T0 + 2 * DAY),
        Rule::PolicyUpdateChain,
    );
    assert_eq!(st.active(), &freeze);
}

#[test]
fn a_newer_version_supersedes_a_pending_one() {
    // A tightening applied meanwhile drops the pending loosening.
    let (a, mut st) = setup();
    let loosen = next(&st, |d| d.admin_quorum = 1);
    assert!(matches!(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0),
        Ok(Offered::Pending { .. })
    ));
    let tighten = next(&st, |d| d.backend_keys.clear());
    assert_eq!(
        st.offer(signed(&tighten, &[&a[0], &a[2]]), T0 + 1),
        Ok(Offered::Applied)
    );
    assert!(st.pending.is_none());
    assert!(!st.tick(T0 + 2 * DAY));
    assert_eq!(st.active(), &tighten);
    assert_eq!(st.active().admin_quorum, 2);
    // Another loosening of the same version replaces the pending one and starts its own clock.
    let (a, mut st) = setup();
    let first = next(&st, |d| d.admin_quorum = 1);
    let second = next(&st, |d| d.timelock_ms = H);
    st.offer(signed(&first, &[&a[0], &a[1]]), T0).unwrap();
    assert_eq!(
        st.offer(signed(&second, &[&a[0], &a[1]]), T0 + H),
        Ok(Offered::Pending {
            effective_at_ms: T0 + H + DAY
        })
    );
    assert!(!st.tick(T0 + DAY));
    assert_eq!(st.active().version, 1);
    assert!(st.tick(T0 + H + DAY));
    assert_eq!(st.active(), &second);
}

#[test]
fn any_admin_vetoes_a_pending_version_for_good() {
    let (a, mut st) = setup();
    let outsider = keys(1).remove(0);
    let v1 = st.active().clone();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    let h = loosen.hash();
    st.offer(signed(&loosen, &[&a[0], &a[1]]), T0).unwrap();

    // Not by a non-admin, not under the approval domain, not over another hash, not forged.
    let e = refused(
        st.veto(
            &h,
            &AdminSignature::sign(&outsider, POLICY_VETO_DOMAIN, &[&h]),
            T0 + 1,
        ),
        Rule::PolicyVetoInvalid,
    );
    assert!(e.permanent);
    refused(
        st.veto(&h, &approve(&loosen, &a[2]), T0 + 1),
        Rule::PolicyVetoInvalid,
    );
    refused(
        st.veto(
            &h,
            &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&v1.hash()]),
            T0 + 1,
        ),
        Rule::PolicyVetoInvalid,
    );
    let forged = AdminSignature {
        admin: a[2].public(),
        signature: AdminSignature::sign(&outsider, POLICY_VETO_DOMAIN, &[&h]).signature,
    };
    refused(st.veto(&h, &forged, T0 + 1), Rule::PolicyVetoInvalid);
    assert!(
        st.pending.is_some() && st.vetoed.is_empty(),
        "invalid vetoes change nothing"
    );

    // One admin (even one of those who approved it) vetoes: the pending version is dropped.
    st.veto(
        &h,
        &AdminSignature::sign(&a[0], POLICY_VETO_DOMAIN, &[&h]),
        T0 + 2,
    )
    .unwrap();
    assert!(st.pending.is_none());
    assert!(st.vetoed.contains(&h));
    assert!(!st.tick(T0 + 2 * DAY));
    assert_eq!(st.active(), &v1);
    // Offered again, even with every signature: refused for good.
    let e = refused(
        st.offer(signed(&loosen, &[&a[0], &a[1], &a[2]]), T0 + 3 * DAY),
        Rule::PolicyUpdateVetoed,
    );
    assert!(e.permanent && e.reason.contains(&loosen.hash_hex()), "{e}");
    assert_eq!(st.active(), &v1);
    // A different version 2 is still possible.
    let other = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(400 * ETH));
    assert!(matches!(
        st.offer(signed(&other, &[&a[0], &a[1]]), T0 + 3 * DAY),
        Ok(Offered::Pending { .. })
    ));

    // A veto that arrives before its version is kept, and the version is refused on arrival.
    let (a, mut st) = setup();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    let h = loosen.hash();
    st.veto(
        &h,
        &AdminSignature::sign(&a[1], POLICY_VETO_DOMAIN, &[&h]),
        T0,
    )
    .unwrap();
    refused(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0 + 1),
        Rule::PolicyUpdateVetoed,
    );
    assert!(st.pending.is_none());

    // A veto after the time-lock ran out is too late: the version applied first.
    let (a, mut st) = setup();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    let h = loosen.hash();
    st.offer(signed(&loosen, &[&a[0], &a[1]]), T0).unwrap();
    st.veto(
        &h,
        &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&h]),
        T0 + DAY,
    )
    .unwrap();
    assert_eq!(st.active(), &loosen);
}

#[test]
fn a_veto_cannot_stop_a_freeze_or_a_tightening() {
    // The freeze-only next version is predictable, so one admin could veto it in advance;
    // any admin must still be able to freeze, and tightening must still apply at once.
    let (a, mut st) = setup();
    let freeze = next(&st, |d| d.frozen = true);
    let fh = freeze.hash();
    st.veto(
        &fh,
        &AdminSignature::sign(&a[0], POLICY_VETO_DOMAIN, &[&fh]),
        T0,
    )
    .unwrap();
    assert_eq!(
        st.offer(signed(&freeze, &[&a[1]]), T0 + 1),
        Ok(Offered::Applied)
    );
    assert!(st.active().frozen);
    // Unfreezing (quorum, no time-lock) cannot be held back by one admin either.
    let unfreeze = next(&st, |d| d.frozen = false);
    let uh = unfreeze.hash();
    st.veto(
        &uh,
        &AdminSignature::sign(&a[0], POLICY_VETO_DOMAIN, &[&uh]),
        T0 + 2,
    )
    .unwrap();
    assert_eq!(
        st.offer(signed(&unfreeze, &[&a[1], &a[2]]), T0 + 3),
        Ok(Offered::Applied)
    );
    assert!(!st.active().frozen);
    let tighten = next(&st, |d| d.whitelist.clear());
    let th = tighten.hash();
    st.veto(
        &th,
        &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&th]),
        T0 + 4,
    )
    .unwrap();
    assert_eq!(
        st.offer(signed(&tighten, &[&a[0], &a[1]]), T0 + 5),
        Ok(Offered::Applied)
    );
    assert!(st.active().whitelist.is_empty());
}

#[test]
fn reoffering_the_current_or_pending_version_is_known() {
    let (a, mut st) = setup();
    let v1 = st.active().clone();
    // The version in force, even with fewer signatures than it had.
    assert_eq!(st.offer(signed(&v1, &[&a[2]]), T0), Ok(Offered::Known));
    assert_eq!(
        st.current.signatures.len(),
        2,
        "the stored signatures are kept"
    );
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    assert_eq!(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0),
        Ok(Offered::Pending {
            effective_at_ms: T0 + DAY
        })
    );
    // The pending one, later: Known, and its clock is not restarted.
    assert_eq!(
        st.offer(signed(&loosen, &[&a[1], &a[2]]), T0 + H),
        Ok(Offered::Known)
    );
    assert_eq!(st.pending.as_ref().unwrap().effective_at_ms, T0 + DAY);
    assert_eq!(
        st.offer(signed(&v1, &[&a[0], &a[1]]), T0 + H),
        Ok(Offered::Known)
    );
    assert!(st.tick(T0 + DAY));
    assert_eq!(
        st.offer(signed(&loosen, &[&a[0], &a[1]]), T0 + DAY),
        Ok(Offered::Known)
    );
    // The old one is now stale.
    refused(
        st.offer(signed(&v1, &[&a[0], &a[1]]), T0 + DAY),
        Rule::PolicyUpdateVersion,
    );
}

#[test]
fn vetoes_are_bounded_and_forgotten_once_a_newer_version_applies() {
    let (a, mut st) = setup();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    let h = loosen.hash();
    st.offer(signed(&loosen, &[&a[0], &a[1]]), T0).unwrap();
    st.veto(
        &h,
        &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&h]),
        T0 + 1,
    )
    .unwrap();
    // Vetoes of documents this node never saw, up to the bound.
    for i in 1..MAX_VETOES {
        let mut other = [7u8; 32];
        other[..2].copy_from_slice(&(i as u16).to_be_bytes());
        st.veto(
            &other,
            &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&other]),
            T0 + 1,
        )
        .unwrap();
    }
    assert_eq!(st.vetoed.len(), MAX_VETOES);
    let one_more = [9u8; 32];
    refused(
        st.veto(
            &one_more,
            &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&one_more]),
            T0 + 1,
        ),
        Rule::PolicyVetoInvalid,
    );
    // A tightening applies: the vetoes are forgotten, and the vetoed document still cannot
    // return, because it no longer follows the version in force.
    let tighten = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(50 * ETH));
    assert_eq!(
        st.offer(signed(&tighten, &[&a[0], &a[1]]), T0 + 2),
        Ok(Offered::Applied)
    );
    assert!(st.vetoed.is_empty());
    refused(
        st.offer(signed(&loosen, &[&a[0], &a[1], &a[2]]), T0 + 3),
        Rule::PolicyUpdateVersion,
    );
}
