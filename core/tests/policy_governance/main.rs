//! The governed policy document (canonical form, validation, hash), its TOML form, governance
//! (genesis, hash-chained versions, admin quorum, time-locked loosening, freeze, veto), the
//! stored state, and the rule-tag table of `docs/policy.md`.

mod common;
mod doc;
mod form;
mod freeze_veto;
mod persist;
mod rule_tags;
mod timelock;
mod versions;
