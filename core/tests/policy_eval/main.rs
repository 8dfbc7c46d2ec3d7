//! Policy evaluation and the velocity ledger of `quorate-core`: every rule tag `evaluate` can
//! produce (allowed and refused, permanent or temporary), limit boundaries to the base unit,
//! sliding windows to the bucket edge, scope independence, `u128` extremes, a clock that steps
//! back, the ledger's storage records, loading and pruning; then property tests over random
//! sequences of withdrawals and times.

mod common;
mod notices;
mod per_signer_budget;
mod proptests;
mod rule_tags;
mod storage;
mod velocity;
