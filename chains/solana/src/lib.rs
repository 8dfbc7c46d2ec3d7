//! Tests only: `tests/litesvm.rs` runs the transactions Quorate's signers build
//! (`quorate_core::chains::solana`), signed by a real FROST(Ed25519) group, on the Solana
//! runtime with the real System, SPL Token and Associated Token Account programs.
