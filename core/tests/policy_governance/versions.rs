//! Governance (`policy/governance.rs`): genesis, hash-chained offers under the admin quorum, diff
//! and admin rotation.

use quorate_core::{
    address::Chain,
    identity::IdentitySecret,
    policy::{
        governance::{diff, next_version, required_signatures, POLICY_VETO_DOMAIN},
        AdminSignature, AssetRule, Effect, Offered, PolicyDoc, PolicyState, Scope, VelocityLimit,
        WhitelistEntry,
    },
    refusal::Rule,
};
use rand::rngs::OsRng;

use super::common::*;

// ---------------------------------------------------------------------------------------------
// governance.rs: genesis
// ---------------------------------------------------------------------------------------------

#[test]
fn genesis_checks_pinned_admins_quorum_and_signatures() {
    let admins = keys(3);
    let outsider = keys(1).remove(0);
    let pins = pinned(&admins);
    let doc = base_doc(&admins, 2);

    // The right admins, quorum and signatures: installed.
    let st = PolicyState::genesis(&pins, 2, signed(&doc, &[&admins[0], &admins[2]])).unwrap();
    assert_eq!(st.active(), &doc);
    assert!(st.pending.is_none() && st.vetoed.is_empty());
    // All three sign: fine too.
    PolicyState::genesis(
        &pins,
        2,
        signed(&doc, &[&admins[0], &admins[1], &admins[2]]),
    )
    .unwrap();

    // Admins differ from the pinned ones: one replaced, one extra, one missing.
    let mut swapped = admins.iter().take(2).map(hex_pub).collect::<Vec<_>>();
    swapped.push(hex_pub(&outsider));
    swapped.sort();
    let mut d = doc.clone();
    d.admins = swapped;
    refused(
        PolicyState::genesis(&pins, 2, signed(&d, &[&admins[0], &admins[1]])),
        Rule::PolicyUpdateGenesis,
    );
    let mut d = doc.clone();
    d.admins.push(hex_pub(&outsider));
    d.admins.sort();
    refused(
        PolicyState::genesis(&pins, 2, signed(&d, &[&admins[0], &admins[1]])),
        Rule::PolicyUpdateGenesis,
    );
    let mut fewer = pins.clone();
    fewer.remove(&admins[2].public());
    refused(
        PolicyState::genesis(&fewer, 2, signed(&doc, &[&admins[0], &admins[1]])),
        Rule::PolicyUpdateGenesis,
    );
    // Wrong quorum, either way.
    refused(
        PolicyState::genesis(
            &pins,
            3,
            signed(&doc, &[&admins[0], &admins[1], &admins[2]]),
        ),
        Rule::PolicyUpdateGenesis,
    );
    let mut d = doc.clone();
    d.admin_quorum = 1;
    refused(
        PolicyState::genesis(&pins, 2, signed(&d, &[&admins[0], &admins[1]])),
        Rule::PolicyUpdateGenesis,
    );

    // Too few signatures.
    let e = refused(
        PolicyState::genesis(&pins, 2, signed(&doc, &[&admins[0]])),
        Rule::PolicyUpdateSignatures,
    );
    assert!(
        e.permanent && e.reason.contains("1 valid distinct") && e.reason.contains("2 are needed"),
        "{e}"
    );
    refused(
        PolicyState::genesis(&pins, 2, signed(&doc, &[])),
        Rule::PolicyUpdateSignatures,
    );
    // The same admin twice counts once.
    let e = refused(
        PolicyState::genesis(&pins, 2, signed(&doc, &[&admins[0], &admins[0]])),
        Rule::PolicyUpdateSignatures,
    );
    assert!(e.reason.contains("carries 1 valid"), "{e}");
    // A non-admin's signature is ignored.
    let e = refused(
        PolicyState::genesis(&pins, 2, signed(&doc, &[&admins[0], &outsider])),
        Rule::PolicyUpdateSignatures,
    );
    assert!(e.reason.contains("carries 1 valid"), "{e}");
    // A signature under another domain, over another document, or forged, does not count.
    let mut sp = signed(&doc, &[&admins[0]]);
    sp.signatures.push(AdminSignature::sign(
        &admins[1],
        POLICY_VETO_DOMAIN,
        &[&doc.hash()],
    ));
    refused(
        PolicyState::genesis(&pins, 2, sp),
        Rule::PolicyUpdateSignatures,
    );
    let mut other = doc.clone();
    other.timelock_ms += 1000;
    let mut sp = signed(&doc, &[&admins[0]]);
    sp.signatures.push(approve(&other, &admins[1]));
    refused(
        PolicyState::genesis(&pins, 2, sp),
        Rule::PolicyUpdateSignatures,
    );
    let mut sp = signed(&doc, &[&admins[0]]);
    sp.signatures.push(AdminSignature {
        admin: admins[1].public(),
        signature: approve(&doc, &admins[0]).signature,
    });
    refused(
        PolicyState::genesis(&pins, 2, sp),
        Rule::PolicyUpdateSignatures,
    );

    // Not version 1, or not a valid document.
    let mut d = doc.clone();
    d.version = 2;
    d.prev_hash = "ab".repeat(32);
    refused(
        PolicyState::genesis(&pins, 2, signed(&d, &[&admins[0], &admins[1]])),
        Rule::PolicyUpdateVersion,
    );
    let mut d = doc.clone();
    d.whitelist.reverse();
    refused(
        PolicyState::genesis(&pins, 2, signed(&d, &[&admins[0], &admins[1]])),
        Rule::PolicyUpdateInvalid,
    );
}

// ---------------------------------------------------------------------------------------------
// governance.rs: offers
// ---------------------------------------------------------------------------------------------

#[test]
fn offer_refuses_stale_skipped_and_unchained_versions() {
    let (a, mut st) = setup();
    let v1 = st.active().clone();
    let tighten = |d: &mut PolicyDoc| eth_asset(d).max_per_withdrawal = amount(90 * ETH);

    // A different genesis (version 1 again): stale.
    let mut other1 = v1.clone();
    other1.timelock_ms = 2 * DAY;
    let e = refused(
        st.offer(signed(&other1, &[&a[0], &a[1]]), T0),
        Rule::PolicyUpdateVersion,
    );
    assert!(e.permanent && e.reason.contains("expected 2"), "{e}");
    // Skipping a version, even chained onto the version in force.
    let mut v3 = next(&st, tighten);
    v3.version = 3;
    refused(
        st.offer(signed(&v3, &[&a[0], &a[1]]), T0),
        Rule::PolicyUpdateVersion,
    );
    // Version 2 chained onto something else.
    let mut broken = next(&st, tighten);
    broken.prev_hash = other1.hash_hex();
    let e = refused(
        st.offer(signed(&broken, &[&a[0], &a[1]]), T0),
        Rule::PolicyUpdateChain,
    );
    assert!(e.reason.contains(&v1.hash_hex()), "{e}");
    // An invalid document.
    let mut bad = next(&st, tighten);
    bad.admin_quorum = 0;
    refused(
        st.offer(signed(&bad, &[&a[0], &a[1]]), T0),
        Rule::PolicyUpdateInvalid,
    );
    assert_eq!(st.active(), &v1, "nothing refused changed the state");

    // Version 2 applies; then another version 2 is stale and version 1 is stale.
    let v2 = next(&st, tighten);
    assert_eq!(
        st.offer(signed(&v2, &[&a[0], &a[1]]), T0),
        Ok(Offered::Applied)
    );
    let mut v2b = v2.clone();
    eth_asset(&mut v2b).max_per_withdrawal = amount(80 * ETH);
    refused(
        st.offer(signed(&v2b, &[&a[0], &a[1]]), T0),
        Rule::PolicyUpdateVersion,
    );
    refused(
        st.offer(signed(&other1, &[&a[0], &a[1]]), T0),
        Rule::PolicyUpdateVersion,
    );
    // Version 3 must chain onto version 2, not version 1.
    let mut v3 = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(70 * ETH));
    assert_eq!(v3.prev_hash, v2.hash_hex());
    v3.prev_hash = v1.hash_hex();
    refused(
        st.offer(signed(&v3, &[&a[0], &a[1]]), T0),
        Rule::PolicyUpdateChain,
    );
    assert_eq!(st.active(), &v2);
}

#[test]
fn offer_needs_a_quorum_of_distinct_admins_in_force() {
    let (a, mut st) = setup();
    let outsider = keys(1).remove(0);
    let v2 = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(90 * ETH));
    assert_eq!(required_signatures(st.active(), &v2), 2);
    // m − 1 signatures.
    let e = refused(
        st.offer(signed(&v2, &[&a[0]]), T0),
        Rule::PolicyUpdateSignatures,
    );
    assert!(
        e.reason
            .contains("1 valid distinct admin signatures; 2 are needed"),
        "{e}"
    );
    // One admin signing twice is not a quorum.
    refused(
        st.offer(signed(&v2, &[&a[1], &a[1]]), T0),
        Rule::PolicyUpdateSignatures,
    );
    // A non-admin does not count.
    refused(
        st.offer(signed(&v2, &[&a[1], &outsider]), T0),
        Rule::PolicyUpdateSignatures,
    );
    // A veto is not an approval.
    let mut sp = signed(&v2, &[&a[0]]);
    sp.signatures.push(AdminSignature::sign(
        &a[1],
        POLICY_VETO_DOMAIN,
        &[&v2.hash()],
    ));
    refused(st.offer(sp, T0), Rule::PolicyUpdateSignatures);
    // An approval of a different document does not count.
    let mut sp = signed(&v2, &[&a[0]]);
    sp.signatures.push(approve(st.active(), &a[1]));
    refused(st.offer(sp, T0), Rule::PolicyUpdateSignatures);
    // Admins a new version adds cannot approve it; the admins in force decide.
    let v2_add = next(&st, |d| {
        d.admins.push(hex_pub(&outsider));
        d.admins.sort();
    });
    refused(
        st.offer(signed(&v2_add, &[&a[0], &outsider]), T0),
        Rule::PolicyUpdateSignatures,
    );
    assert_eq!(st.active().version, 1);
    // A quorum, in any order, with noise around it.
    let mut sp = signed(&v2, &[&outsider, &a[2], &a[2], &a[0]]);
    sp.signatures.insert(
        0,
        AdminSignature {
            admin: a[1].public(),
            signature: vec![0; 64],
        },
    );
    assert_eq!(st.offer(sp, T0), Ok(Offered::Applied));
    assert_eq!(st.active(), &v2);
}

#[test]
fn diff_lists_and_classifies_each_change() {
    let admins = keys(3);
    let old = base_doc(&admins, 2);
    assert!(diff(&old, &old).is_empty());
    // Version and prev_hash are not changes.
    let renumbered = next_version(&old, old.clone());
    assert!(diff(&old, &renumbered).is_empty());

    let new_admin = IdentitySecret::generate(&mut OsRng).public().to_string();
    let new_backend = IdentitySecret::generate(&mut OsRng).public().to_string();
    let mut new = old.clone();
    {
        let eth = eth_asset(&mut new);
        eth.max_per_withdrawal = amount(200 * ETH);
        eth.approval_threshold = amount(20 * ETH);
        eth.approvals_required = 2;
    }
    new.assets.retain(|x| x.asset != "BTC");
    new.assets
        .iter_mut()
        .find(|x| x.asset == "USDC")
        .unwrap()
        .enabled = true;
    new.assets.push(AssetRule {
        chain: Chain::Polygon,
        asset: "MATIC".into(),
        decimals: 18,
        enabled: true,
        max_per_withdrawal: amount(ETH),
        approval_threshold: amount(ETH),
        approvals_required: 0,
        token: None,
    });
    new.assets
        .sort_by(|x, y| (x.chain, &x.asset).cmp(&(y.chain, &y.asset)));
    new.whitelist[0].label = "cold wallet 2".into();
    new.whitelist[1].active_from_ms = 1;
    new.whitelist.push(WhitelistEntry {
        chain: Chain::Ethereum,
        address: THIRD.into(),
        label: "desk".into(),
        active_from_ms: 5,
    });
    new.whitelist
        .sort_by(|x, y| (x.chain, &x.address).cmp(&(y.chain, &y.address)));
    new.velocity[0].max_amount = Some(amount(5 * ETH));
    new.velocity[0].max_count = None;
    new.velocity[1].max_amount = Some(amount(ETH));
    new.velocity[1].max_count = Some(9);
    new.velocity.push(VelocityLimit {
        chain: Chain::Ethereum,
        asset: "ETH".into(),
        scope: Scope::Asset,
        window_ms: 7 * DAY,
        max_amount: None,
        max_count: Some(1000),
    });
    new.velocity.sort_by(|x, y| x.key().cmp(&y.key()));
    let old_backend = new.backend_keys[0].clone();
    new.backend_keys = vec![new_backend.clone()];
    let removed_admin = new.admins.remove(0);
    new.admins.push(new_admin.clone());
    new.admins.sort();
    new.admin_quorum = 3;
    new.timelock_ms = H;
    new.frozen = true;
    new.validate().unwrap();

    use Effect::*;
    let mut want: Vec<(Effect, String)> = vec![
        (
            Loosens,
            "asset ETH on ethereum: per-withdrawal maximum 100 ETH -> 200 ETH".into(),
        ),
        (
            Tightens,
            "asset ETH on ethereum: approval threshold 50 ETH -> 20 ETH".into(),
        ),
        (
            Tightens,
            "asset ETH on ethereum: approvals required 1 -> 2".into(),
        ),
        (
            Loosens,
            "asset USDC on ethereum: enabled false -> true".into(),
        ),
        (Tightens, "asset BTC on bitcoin: removed".into()),
        (Loosens, "asset MATIC on polygon: added".into()),
        (
            Neutral,
            format!("whitelist ethereum {COLD} (cold wallet): label -> cold wallet 2"),
        ),
        (
            Loosens,
            format!("whitelist ethereum {OTHER} (exchange B): active from 1700000000000 -> 1 ms"),
        ),
        (
            Loosens,
            format!("whitelist ethereum {THIRD} (desk): added, active from 5 ms"),
        ),
        (
            Tightens,
            "velocity ethereum ETH asset per 24h: max amount 10 ETH -> 5 ETH".into(),
        ),
        (
            Loosens,
            "velocity ethereum ETH asset per 24h: max count 100 -> none".into(),
        ),
        (
            Tightens,
            "velocity ethereum ETH destination per 1h: max amount none -> 1 ETH".into(),
        ),
        (
            Loosens,
            "velocity ethereum ETH destination per 1h: max count 5 -> 9".into(),
        ),
        (Tightens, "velocity ethereum ETH asset per 7d: added".into()),
        (Tightens, format!("backend key {old_backend}: removed")),
        (Loosens, format!("backend key {new_backend}: added")),
        (Loosens, format!("admin {removed_admin}: removed")),
        (Loosens, format!("admin {new_admin}: added")),
        (Tightens, "admin quorum 2 -> 3".into()),
        (Loosens, "time-lock 86400000 -> 3600000 ms".into()),
        (Tightens, "freeze".into()),
    ];
    let mut got: Vec<(Effect, String)> = diff(&old, &new)
        .into_iter()
        .map(|c| (c.effect, c.what))
        .collect();
    let key = |x: &(Effect, String)| x.1.clone();
    want.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got, want);

    // Removed velocity limits and decimals changes loosen; lower limits, removed entries tighten.
    let mut d = old.clone();
    d.velocity.remove(0);
    eth_asset(&mut d).decimals = 6;
    let got: Vec<_> = diff(&old, &d)
        .into_iter()
        .map(|c| (c.effect, c.what))
        .collect();
    assert_eq!(
        got,
        [
            (
                Loosens,
                "asset ETH on ethereum: decimals 18 -> 6".to_string()
            ),
            (
                Loosens,
                "velocity ethereum ETH asset per 24h: removed".to_string()
            ),
        ]
    );
    let mut d = old.clone();
    d.whitelist.remove(0);
    d.whitelist[0].active_from_ms += 1;
    d.admin_quorum = 1;
    d.timelock_ms = 2 * DAY;
    let got: Vec<_> = diff(&old, &d)
        .into_iter()
        .map(|c| (c.effect, c.what))
        .collect();
    assert_eq!(
        got,
        [
            (Tightens, format!("whitelist ethereum {COLD} (cold wallet): removed")),
            (Tightens, format!("whitelist ethereum {OTHER} (exchange B): active from 1700000000000 -> 1700000000001 ms")),
            (Loosens, "admin quorum 2 -> 1".to_string()),
            (Tightens, "time-lock 86400000 -> 172800000 ms".to_string()),
        ]
    );
    // Effects serialise in kebab-case, as the admin API shows them.
    assert_eq!(serde_json::to_string(&Loosens).unwrap(), "\"loosens\"");
    assert_eq!(serde_json::to_string(&Tightens).unwrap(), "\"tightens\"");
    assert_eq!(serde_json::to_string(&Neutral).unwrap(), "\"neutral\"");
}

#[test]
fn admin_rotation_hands_governance_to_the_new_admins() {
    let (a, mut st) = setup();
    let fresh = keys(1).remove(0);
    let rotated = next(&st, |d| {
        d.admins.retain(|k| *k != hex_pub(&a[0]));
        d.admins.push(hex_pub(&fresh));
        d.admins.sort();
    });
    st.offer(signed(&rotated, &[&a[0], &a[1]]), T0).unwrap();
    assert!(st.tick(T0 + DAY));
    assert_eq!(st.active(), &rotated);
    let v3 = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(ETH));
    // The removed admin no longer counts; the new one does.
    refused(
        st.offer(signed(&v3, &[&a[0], &a[1]]), T0 + DAY),
        Rule::PolicyUpdateSignatures,
    );
    let freeze = next(&st, |d| d.frozen = true);
    refused(
        st.offer(signed(&freeze, &[&a[0]]), T0 + DAY),
        Rule::PolicyUpdateSignatures,
    );
    let h = freeze.hash();
    refused(
        st.veto(
            &h,
            &AdminSignature::sign(&a[0], POLICY_VETO_DOMAIN, &[&h]),
            T0 + DAY,
        ),
        Rule::PolicyVetoInvalid,
    );
    assert_eq!(
        st.offer(signed(&v3, &[&fresh, &a[1]]), T0 + DAY),
        Ok(Offered::Applied)
    );
}
