//! End-to-end tests: real `quorate` processes (coordinator, signers, devnet) on loopback,
//! real mutual TLS, real sled on disk, real FROST. No fixed ports, temp dirs only, and
//! readiness is awaited through the admin service, never guessed with sleeps.

mod harness;

// The vault tooling of the `quorate` binary, shared with the tests that drive a real EVM node.
#[allow(dead_code)]
#[path = "../cli/src/evm.rs"]
mod evm;
#[allow(dead_code)]
#[path = "../cli/src/evm_rpc.rs"]
mod evm_rpc;
mod hardhat;
mod install;
mod python;

mod audit;
mod badinput;
mod budget;
mod clients;
mod coordinators;
mod crash;
mod desk;
mod devnet;
mod dkg;
mod docs;
mod errors;
mod governance;
mod governance_scale;
mod guide;
mod hostile;
mod in_memory;
mod lifecycle;
mod lifecycle_hostile;
mod malicious;
mod operator;
mod performance;
mod policy;
mod scoreboard;
mod signing;
mod solana;
mod transport;
mod vault;
mod vault_deploy;
mod vault_devnet;
