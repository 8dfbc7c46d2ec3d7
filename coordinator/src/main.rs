//! `quorate-coordinator`: the coordinator binary.
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    quorate_coordinator::main_with(quorate_coordinator::CoordinatorCli::parse()).await
}
