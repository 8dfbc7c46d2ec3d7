//! The per-signer budget: each signer counts only its own releases against its share.

use quorate_core::{
    address::Chain,
    policy::{eval::evaluate_budget, Ledger, PolicyDoc, Scope},
};

use super::common::*;

// ---------------------------------------------------------------------------------------------
// Per-signer budget
// ---------------------------------------------------------------------------------------------

fn release(l: &mut Ledger, amount: u128, at: u64) {
    l.debit_release(Chain::Ethereum, "ETH", DEST, amt(amount), at);
}

#[test]
fn the_per_signer_budget_counts_only_own_releases_against_a_share_of_the_limit() {
    let keys = admins(3);
    let mut doc = policy(&keys, vec![limit(Scope::Asset, DAY, Some(1_000), Some(20))]);
    // Off: the budget checks nothing (the shared limit is evaluate's business).
    let mut l = Ledger::new();
    release(&mut l, 900, T0);
    assert_eq!(evaluate_budget(&doc, &l, &eth(DEST, 100), 2, T0), Ok(()));

    doc.per_signer_budget = true;
    // 2-of-3: n − t + 1 = 2 honest signers may each release half of 1,000.
    let mut l = Ledger::new();
    release(&mut l, 400, T0);
    assert_eq!(evaluate_budget(&doc, &l, &eth(DEST, 100), 2, T0), Ok(()));
    let r = evaluate_budget(&doc, &l, &eth(DEST, 101), 2, T0).unwrap_err();
    assert_eq!(r.rule.as_str(), "policy-velocity-signer-amount-24h", "{r}");
    assert!(!r.permanent, "a budget frees up with the window: {r}");
    // ...at a time it names, the first at which the same intent fits.
    let at = r.retry_at_ms.expect("a time");
    assert!(evaluate_budget(&doc, &l, &eth(DEST, 101), 2, at - 1).is_err());
    assert_eq!(evaluate_budget(&doc, &l, &eth(DEST, 101), 2, at), Ok(()));
    // More than the budget itself can never fit: permanent.
    let r = evaluate_budget(&doc, &Ledger::new(), &eth(DEST, 501), 2, T0).unwrap_err();
    assert!(r.permanent && r.retry_at_ms.is_none(), "{r:?}");
    // Volume announced by notices (signed by others) is not this signer's release.
    let mut l = Ledger::new();
    debit(&mut l, DEST, 900, T0);
    assert_eq!(evaluate_budget(&doc, &l, &eth(DEST, 500), 2, T0), Ok(()));
    // The window frees it up.
    let mut l = Ledger::new();
    release(&mut l, 500, T0);
    assert!(evaluate_budget(&doc, &l, &eth(DEST, 1), 2, T0 + HOUR).is_err());
    assert_eq!(
        evaluate_budget(&doc, &l, &eth(DEST, 1), 2, T0 + DAY + 2 * MIN),
        Ok(())
    );
    // Count: 20 per 24 h shared by 2 is 10 releases.
    let mut l = Ledger::new();
    for k in 0..10 {
        release(&mut l, 1, T0 + k);
    }
    let r = evaluate_budget(&doc, &l, &eth(DEST, 1), 2, T0).unwrap_err();
    assert_eq!(r.rule.as_str(), "policy-velocity-signer-count-24h", "{r}");
    // 3-of-5: n − t + 1 = 3, so 333 each (rounded down: three budgets never exceed 1,000).
    let mut l = Ledger::new();
    release(&mut l, 333, T0);
    assert!(evaluate_budget(&doc, &l, &eth(DEST, 1), 3, T0).is_err());
}

#[test]
fn the_per_signer_budget_is_a_tightening_and_absent_from_the_canonical_form_when_off() {
    let keys = admins(3);
    let off = policy(&keys, vec![]);
    let text = String::from_utf8(off.encode()).unwrap();
    assert!(!text.contains("per_signer_budget"), "{text}");
    // Spelt out as false it is not canonical.
    let spelt = text.replacen(
        "\"frozen\":false",
        "\"frozen\":false,\"per_signer_budget\":false",
        1,
    );
    assert!(PolicyDoc::decode(spelt.as_bytes()).is_err());
    let mut on = off.clone();
    on.per_signer_budget = true;
    assert_eq!(PolicyDoc::decode(&on.encode()).unwrap(), on);
    let changes = quorate_core::policy::diff(&off, &on);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].effect, quorate_core::policy::Effect::Tightens);
    let back = quorate_core::policy::diff(&on, &off);
    assert_eq!(back[0].effect, quorate_core::policy::Effect::Loosens);
    // The TOML form carries it both ways.
    let form = quorate_core::policy::PolicyForm::from_doc(&on);
    assert!(form.to_toml().contains("per_signer_budget = true"));
}
