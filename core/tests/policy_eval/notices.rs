//! Ledger notices count when the withdrawal was signed.

use quorate_core::{
    address::Chain,
    policy::{Ledger, Scope},
};

use super::common::*;

// ---------------------------------------------------------------------------------------------
// Ledger notices count when the withdrawal was signed
// ---------------------------------------------------------------------------------------------

#[test]
fn a_late_notice_holds_a_window_only_as_long_as_the_withdrawal_itself() {
    use quorate_core::policy::ledger::notice_time;
    let keys = admins(3);
    let doc = policy(&keys, vec![limit(Scope::Asset, HOUR, None, Some(1))]);
    // Signed at T0, announced 50 minutes later (a replay after a reconnect).
    let mut late = Ledger::new();
    late.debit_at(Chain::Ethereum, "ETH", DEST, amt(5), T0, T0 + 50 * MIN);
    let mut at_arrival = Ledger::new();
    debit(&mut at_arrival, DEST, 5, T0 + 50 * MIN);
    // Both hold the hour while it lasts...
    assert!(check(&doc, &late, &eth(DEST, 1), T0 + 55 * MIN).is_err());
    // ...but counted when signed, the window frees up an hour (and a bucket) after signing,
    // not an hour after the notice arrived.
    assert_eq!(check(&doc, &late, &eth(DEST, 1), T0 + 62 * MIN), Ok(()));
    assert!(check(&doc, &at_arrival, &eth(DEST, 1), T0 + 62 * MIN).is_err());

    // The claimed time is held to the intent's own validity.
    let (created, expires) = (T0, T0 + 10 * MIN);
    assert_eq!(
        notice_time(created, expires, T0 + 3 * MIN, T0 + HOUR),
        T0 + 3 * MIN
    );
    assert_eq!(
        notice_time(created, expires, T0 - DAY, T0 + HOUR),
        created,
        "not before creation"
    );
    assert_eq!(
        notice_time(created, expires, T0 + DAY, T0 + HOUR),
        expires,
        "not after expiry"
    );
    assert_eq!(
        notice_time(created, expires, T0 + 9 * MIN, T0 + 5 * MIN),
        T0 + 5 * MIN,
        "not after now"
    );
    assert_eq!(
        notice_time(created, expires, 0, T0 + HOUR),
        expires,
        "unknown: as late as possible"
    );
    assert_eq!(notice_time(created, expires, 0, T0 + 2 * MIN), T0 + 2 * MIN);
}
