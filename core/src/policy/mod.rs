//! Policy: the governed document every signer enforces on its own copy, its human form, the
//! velocity ledger, evaluation, and governance (hash-chained versions signed by an admin
//! quorum, time-locked loosening, freeze).
//!
//! The same [`evaluate`] runs in the coordinator for an early answer and in every signer as the
//! real gate.

pub mod chain;
pub mod doc;
pub mod eval;
pub mod form;
pub mod governance;
pub mod ledger;
mod persist;
pub mod receipt;
mod status;

pub use chain::{ChainError, VerifiedChain};
pub use doc::{
    AssetRule, ChainRule, DocError, PolicyDoc, Scope, SolanaRule, VelocityLimit, WhitelistEntry,
    NATIVE_TOKEN,
};
pub use eval::{approve_withdrawal, evaluate, AdminSignature};
pub use form::PolicyForm;
pub use governance::{diff, Change, Effect, Offered, Pending, PolicyState, SignedPolicy};
pub use ledger::{Ledger, LedgerKey, Usage};
pub use persist::{decode_state, encode_state, StateError};
pub use receipt::{ReceiptError, StatusReceipt};
pub use status::PolicyStatus;
