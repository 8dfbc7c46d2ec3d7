//! Compiles `proto/` with the pure-Rust `protox` compiler, so no system `protoc` is needed, and
//! hands the descriptor set to tonic's code generator (also kept for server reflection).
use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../proto");
    let files = [
        "quorate/withdrawal/v1/withdrawal.proto",
        "quorate/signer/v1/signer.proto",
        "quorate/admin/v1/admin.proto",
        "quorate/policy/v1/policy.proto",
        "quorate/audit/v1/audit.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", proto_root.join(f).display());
    }
    let fds = protox::compile(files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("quorate_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".quorate.policy.v1", "crate::policy")
        .extern_path(".quorate.audit.v1", "crate::audit")
        .codec_path("crate::codec::StrictCodec")
        .compile_fds(fds)?;
    // The shared packages, generated on their own: the others refer to them through
    // `extern_path` because the generated modules are not nested by package.
    let shared = protox::compile(
        [
            "quorate/policy/v1/policy.proto",
            "quorate/audit/v1/audit.proto",
        ],
        [&proto_root],
    )?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_fds(shared)?;
    Ok(())
}
