//! The stored policy state (`policy/persist.rs`).

use quorate_core::{
    policy::{decode_state, encode_state, governance::POLICY_VETO_DOMAIN, AdminSignature},
    refusal::Rule,
};

use super::common::*;

// ---------------------------------------------------------------------------------------------
// persist.rs
// ---------------------------------------------------------------------------------------------

#[test]
fn stored_state_round_trips_with_pending_and_vetoed() {
    let (a, mut st) = setup();
    // Without pending or vetoes.
    let bytes = encode_state(&st);
    assert_eq!(decode_state(&bytes).unwrap(), st);
    // With a vetoed version, a pending one, and signatures that include noise.
    let vetoed = next(&st, |d| d.admin_quorum = 1);
    let h = vetoed.hash();
    st.offer(signed(&vetoed, &[&a[0], &a[1]]), T0).unwrap();
    st.veto(
        &h,
        &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&h]),
        T0,
    )
    .unwrap();
    let unseen = [7u8; 32];
    st.veto(
        &unseen,
        &AdminSignature::sign(&a[2], POLICY_VETO_DOMAIN, &[&unseen]),
        T0,
    )
    .unwrap();
    let loosen = next(&st, |d| eth_asset(d).max_per_withdrawal = amount(500 * ETH));
    let mut sp = signed(&loosen, &[&a[0], &a[1], &a[1]]);
    sp.signatures.push(AdminSignature {
        admin: a[2].public(),
        signature: vec![1, 2, 3],
    });
    st.offer(sp, T0 + 5).unwrap();
    assert!(st.pending.is_some() && st.vetoed.len() == 2);
    let bytes = encode_state(&st);
    let back = decode_state(&bytes).unwrap();
    assert_eq!(back, st);
    assert_eq!(encode_state(&back), bytes);
    // The restored state behaves the same: the pending version applies on time and the
    // vetoed one stays refused.
    let mut back = back;
    assert!(!back.tick(T0 + 5 + DAY - 1));
    assert!(back.tick(T0 + 5 + DAY));
    assert_eq!(back.active(), &loosen);
    let mut again = decode_state(&bytes).unwrap();
    refused(
        again.offer(signed(&vetoed, &[&a[0], &a[1]]), T0 + 6),
        Rule::PolicyUpdateVetoed,
    );

    // Damaged records are refused.
    assert!(decode_state(b"").is_err());
    assert!(decode_state(b"{}").is_err());
    let text = String::from_utf8(bytes.clone()).unwrap();
    let e = decode_state(replace_once(&text, "{\"version\":1,", "{\"version\":2,").as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("schema version 2"), "{e}");
    // A stored document that is not canonical (here: tampered) does not load.
    let tampered = text.replacen("\\\"admin_quorum\\\":2", "\\\"admin_quorum\\\": 2", 1);
    assert_ne!(tampered, text);
    assert!(decode_state(tampered.as_bytes()).is_err());
    let bad_veto = replace_once(&text, &hex::encode(unseen), "0707");
    assert!(decode_state(bad_veto.as_bytes()).is_err());
}
