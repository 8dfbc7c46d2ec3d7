//! Chain-specific signing formats, each behind [`crate::message`].

pub mod evm;
pub mod reconcile;
pub mod solana;
