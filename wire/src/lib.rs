//! Quorate's wire: the generated gRPC code for `proto/`, conversions between protobuf messages
//! and `quorate-core` domain types, the cluster manifest, and the one module that owns the TLS
//! policy. Protobuf types do not travel past the services that use this crate.
#![forbid(unsafe_code)]

pub mod clock;
pub mod codec;
pub mod convert;
pub mod durable;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod pki;
pub mod tls;

/// Generated code for `quorate.withdrawal.v1`.
#[allow(clippy::all, missing_docs)]
pub mod withdrawal {
    tonic::include_proto!("quorate.withdrawal.v1");
}

/// Generated code for `quorate.signer.v1`.
#[allow(clippy::all, missing_docs)]
pub mod signer {
    tonic::include_proto!("quorate.signer.v1");
}

/// Generated code for `quorate.admin.v1`.
#[allow(clippy::all, missing_docs)]
pub mod admin {
    tonic::include_proto!("quorate.admin.v1");
}

/// Generated code for `quorate.policy.v1` (shared by the admin service and the signer link).
#[allow(clippy::all, missing_docs)]
pub mod policy {
    tonic::include_proto!("quorate.policy.v1");
}

/// Generated code for `quorate.audit.v1` (shared by the admin service and the signer link).
#[allow(clippy::all, missing_docs)]
pub mod audit {
    tonic::include_proto!("quorate.audit.v1");
}

/// Encoded `FileDescriptorSet` of every Quorate proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/quorate_descriptor.bin"));

/// Largest gRPC message any Quorate service accepts or sends, except governance below.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Largest governance message: a policy document travels whole (a 100,000-entry whitelist is
/// about 11 MB), from an admin to the coordinator and from the coordinator to each signer.
/// Only the admin service accepts it, and a signer bounds the bytes it holds (signer link).
pub const MAX_POLICY_MESSAGE_BYTES: usize = 32 << 20;

/// Metadata key carrying the stable rule tag of a refusal.
pub const RULE_METADATA_KEY: &str = "quorate-rule";
