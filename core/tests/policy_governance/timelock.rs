//! Governance: a tightening applies at once, a loosening waits out the time lock in force.

use quorate_core::{
    address::Chain,
    identity::IdentitySecret,
    policy::{
        governance::{diff, next_version},
        AssetRule, Effect, Offered, PolicyDoc, PolicyForm, Scope, VelocityLimit, WhitelistEntry,
    },
};
use rand::rngs::OsRng;

use super::common::*;

type Edit = fn(&mut PolicyDoc);

/// Changes that only tighten (or, the label, change nothing a withdrawal could use).
fn tightenings() -> Vec<(&'static str, Edit)> {
    vec![
        ("lower max", |d| {
            eth_asset(d).max_per_withdrawal = amount(60 * ETH)
        }),
        ("lower threshold", |d| {
            eth_asset(d).approval_threshold = amount(40 * ETH)
        }),
        ("more approvals", |d| eth_asset(d).approvals_required = 2),
        ("disable asset", |d| eth_asset(d).enabled = false),
        ("remove asset", |d| d.assets.retain(|a| a.asset != "USDC")),
        ("remove whitelist entry", |d| {
            d.whitelist.remove(1);
        }),
        ("later active_from", |d| {
            d.whitelist[0].active_from_ms = T0 + DAY
        }),
        ("label", |d| {
            d.whitelist[0].label = "cold wallet (vault 2)".into()
        }),
        ("add velocity limit", |d| {
            d.velocity.push(VelocityLimit {
                chain: Chain::Bitcoin,
                asset: "BTC".into(),
                scope: Scope::Asset,
                window_ms: H,
                max_amount: Some(amount(100_000_000)),
                max_count: None,
            });
            d.velocity.sort_by(|x, y| x.key().cmp(&y.key()));
        }),
        ("lower velocity amount", |d| {
            d.velocity[0].max_amount = Some(amount(5 * ETH))
        }),
        ("lower velocity count", |d| {
            d.velocity[0].max_count = Some(10)
        }),
        ("velocity amount added to a count limit", |d| {
            d.velocity[1].max_amount = Some(amount(ETH))
        }),
        ("remove backend key", |d| d.backend_keys.clear()),
        ("higher quorum", |d| d.admin_quorum = 3),
        ("longer timelock", |d| d.timelock_ms = 2 * DAY),
        ("freeze with quorum", |d| d.frozen = true),
    ]
}

#[test]
fn tightening_applies_at_once() {
    for (name, edit) in tightenings() {
        let (a, mut st) = setup();
        let v2 = next(&st, edit);
        let changes = diff(st.active(), &v2);
        assert!(!changes.is_empty(), "{name}");
        assert!(
            changes.iter().all(|c| c.effect != Effect::Loosens),
            "{name}: {changes:?}"
        );
        assert_eq!(
            st.offer(signed(&v2, &[&a[0], &a[1]]), T0),
            Ok(Offered::Applied),
            "{name}"
        );
        assert_eq!(st.active(), &v2, "{name}");
        assert!(st.pending.is_none(), "{name}");
    }
    // Several tightenings at once are still a tightening.
    let (a, mut st) = setup();
    let v2 = next(&st, |d| {
        for (_, e) in tightenings() {
            e(d);
        }
    });
    assert_eq!(
        st.offer(signed(&v2, &[&a[0], &a[2]]), T0),
        Ok(Offered::Applied)
    );
    assert_eq!(st.active(), &v2);
}

/// Changes that loosen: each must wait out the time-lock.
fn loosenings() -> Vec<(&'static str, Edit)> {
    vec![
        ("new whitelist destination", |d| {
            d.whitelist.push(WhitelistEntry {
                chain: Chain::Ethereum,
                address: THIRD.into(),
                label: "new".into(),
                active_from_ms: T0 + 10 * DAY,
            });
            d.whitelist
                .sort_by(|x, y| (x.chain, &x.address).cmp(&(y.chain, &y.address)));
        }),
        ("earlier active_from", |d| {
            d.whitelist[1].active_from_ms = 1_600_000_000_000
        }),
        ("higher max", |d| {
            eth_asset(d).max_per_withdrawal = amount(200 * ETH)
        }),
        ("higher approval threshold", |d| {
            eth_asset(d).approval_threshold = amount(60 * ETH)
        }),
        ("fewer approvals", |d| {
            d.assets
                .iter_mut()
                .find(|x| x.asset == "BTC")
                .unwrap()
                .approvals_required = 1
        }),
        ("decimals", |d| eth_asset(d).decimals = 17),
        ("higher velocity amount", |d| {
            d.velocity[0].max_amount = Some(amount(11 * ETH))
        }),
        ("higher velocity count", |d| {
            d.velocity[1].max_count = Some(6)
        }),
        ("velocity amount limit dropped", |d| {
            d.velocity[0].max_amount = None
        }),
        ("velocity count limit dropped", |d| {
            d.velocity[0].max_count = None
        }),
        ("removed velocity limit", |d| {
            d.velocity.remove(1);
        }),
        ("longer velocity window replaces a shorter one", |d| {
            d.velocity[1].window_ms = 2 * H
        }),
        ("new asset", |d| {
            d.assets.push(AssetRule {
                chain: Chain::Polygon,
                asset: "MATIC".into(),
                decimals: 18,
                enabled: true,
                max_per_withdrawal: amount(ETH),
                approval_threshold: amount(ETH),
                approvals_required: 0,
                token: None,
            });
            d.assets
                .sort_by(|x, y| (x.chain, &x.asset).cmp(&(y.chain, &y.asset)));
        }),
        ("enabling asset", |d| {
            d.assets
                .iter_mut()
                .find(|x| x.asset == "USDC")
                .unwrap()
                .enabled = true
        }),
        ("new backend key", |d| {
            d.backend_keys.push(d.admins[0].clone());
            d.backend_keys.sort();
        }),
        ("replaced backend key", |d| {
            d.backend_keys = vec![d.admins[1].clone()]
        }),
        ("lower quorum", |d| d.admin_quorum = 1),
        ("shorter timelock", |d| d.timelock_ms = H),
        ("added admin", |d| {
            d.admins
                .push(IdentitySecret::generate(&mut OsRng).public().to_string());
            d.admins.sort();
        }),
        ("removed admin", |d| {
            d.admins.pop();
            for x in &mut d.assets {
                x.approvals_required = x.approvals_required.min(2);
            }
        }),
        ("replaced destination", |d| {
            d.whitelist[0].address = THIRD.into();
            d.whitelist
                .sort_by(|x, y| (x.chain, &x.address).cmp(&(y.chain, &y.address)));
        }),
    ]
}

#[test]
fn every_loosening_waits_out_the_timelock_in_force() {
    for (name, edit) in loosenings() {
        let (a, mut st) = setup();
        let v1 = st.active().clone();
        let v2 = next(&st, edit);
        assert!(
            diff(&v1, &v2).iter().any(|c| c.effect == Effect::Loosens),
            "{name}: {:?}",
            diff(&v1, &v2)
        );
        let got = st.offer(signed(&v2, &[&a[1], &a[2]]), T0);
        assert_eq!(
            got,
            Ok(Offered::Pending {
                effective_at_ms: T0 + DAY
            }),
            "{name}"
        );
        assert_eq!(st.active(), &v1, "{name}: applied early");
        let p = st.pending.as_ref().expect(name);
        assert_eq!(
            (p.policy.doc.clone(), p.effective_at_ms),
            (v2.clone(), T0 + DAY)
        );
        assert!(!st.tick(T0 + DAY - 1), "{name}");
        assert_eq!(st.active(), &v1, "{name}: applied a millisecond early");
        assert!(st.tick(T0 + DAY), "{name}");
        assert_eq!(st.active(), &v2, "{name}");
        assert!(st.pending.is_none());
        assert!(!st.tick(T0 + 2 * DAY), "{name}: nothing more to apply");
    }
}

#[test]
fn timelock_is_the_one_in_force_and_an_offer_ticks_first() {
    // Shortening the time-lock still waits out the old one.
    let (a, mut st) = setup();
    let v2 = next(&st, |d| d.timelock_ms = H);
    assert_eq!(
        st.offer(signed(&v2, &[&a[0], &a[1]]), T0),
        Ok(Offered::Pending {
            effective_at_ms: T0 + DAY
        })
    );
    assert!(!st.tick(T0 + H));
    assert_eq!(st.active().version, 1);
    // An offer (or a veto) at a later time first applies what is due: version 3 chains onto
    // the now applied version 2 and, being loosening, waits out version 2's one hour.
    let v3 = next_version(&v2, {
        let mut d = v2.clone();
        eth_asset(&mut d).max_per_withdrawal = amount(150 * ETH);
        d
    });
    let t = T0 + DAY + 5;
    assert_eq!(
        st.offer(signed(&v3, &[&a[0], &a[1]]), t),
        Ok(Offered::Pending {
            effective_at_ms: t + H
        })
    );
    assert_eq!(st.active(), &v2);
    // A longer time-lock applies at once (it tightens) and governs the next loosening.
    let (a, mut st) = setup();
    let v2 = next(&st, |d| d.timelock_ms = 3 * DAY);
    assert_eq!(
        st.offer(signed(&v2, &[&a[0], &a[1]]), T0),
        Ok(Offered::Applied)
    );
    let v3 = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(150 * ETH));
    assert_eq!(
        st.offer(signed(&v3, &[&a[0], &a[1]]), T0 + 7),
        Ok(Offered::Pending {
            effective_at_ms: T0 + 7 + 3 * DAY
        })
    );
    assert!(!st.tick(T0 + 7 + 3 * DAY - 1));
    assert!(st.tick(T0 + 7 + 3 * DAY));
    assert_eq!(st.active(), &v3);
    // With no time-lock in force, loosening applies at once.
    let (a, mut st) = setup();
    let v2 = next(&st, |d| d.timelock_ms = 0);
    assert!(matches!(
        st.offer(signed(&v2, &[&a[0], &a[1]]), T0),
        Ok(Offered::Pending { .. })
    ));
    st.tick(T0 + DAY);
    let v3 = next(&st, |d| d.admin_quorum = 1);
    assert_eq!(
        st.offer(signed(&v3, &[&a[0], &a[1]]), T0 + DAY),
        Ok(Offered::Applied)
    );
    assert_eq!(st.active().admin_quorum, 1);
}

#[test]
fn retiring_a_signer_tightens_bringing_it_back_loosens_and_the_list_is_canonical() {
    let (_, state) = setup();
    let before_hash = state.active().hash();
    let mut same = state.active().clone();
    same.retired_signers = Vec::new();
    assert_eq!(same.hash(), before_hash, "an empty list keeps old hashes");
    let retired = next(&state, |d| d.retired_signers = vec![2]);
    let changes = diff(state.active(), &retired);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].effect, Effect::Tightens);
    assert!(changes[0].what.contains("signer 2: retired"), "{changes:?}");
    let back = diff(&retired, state.active());
    assert_eq!(back[0].effect, Effect::Loosens, "{back:?}");
    // The form carries it both ways.
    let form = PolicyForm::from_doc(&retired);
    assert_eq!(form.retired_signers, vec![2]);
    for bad in [vec![3, 2], vec![2, 2], vec![0]] {
        let mut d = retired.clone();
        d.retired_signers = bad.clone();
        assert!(d.validate().is_err(), "{bad:?} must be refused");
    }
}
