//! `quorate-signer`: the one binary a signer operator runs.
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    quorate_signer::main_with(quorate_signer::SignerCli::parse()).await
}
