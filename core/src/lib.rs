//! Quorate core: the pure part of the co-signing service.
//!
//! Everything here is deterministic given its inputs: time (`now`, unix milliseconds, or a
//! [`clock::Clock`] handed in) and randomness come in as arguments, nothing reads a clock, a socket or a disk. The signer and
//! coordinator binaries are shells around these decisions.
#![forbid(unsafe_code)]

pub mod address;
pub mod amount;
pub mod atrest;
pub mod audit;
pub mod backend;
pub mod backup;
pub mod bytes;
pub mod chains;
pub mod clock;
pub mod dkg;
pub mod fingerprint;
pub mod identity;
pub mod intent;
pub mod link;
pub mod message;
pub mod policy;
pub mod refresh;
pub mod refusal;
pub mod repair;
pub mod scheme;
pub mod seal;
pub mod signing;
