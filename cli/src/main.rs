//! `amicn`: the one binary of the amicn named-data overlay.
//!
//! Each subcommand lives in its own module under `cmd/`; this file only parses the command line
//! and dispatches.

mod cmd;

use clap::{Parser, Subcommand};

/// amicn — a named-data (NDN) forwarder and key-management stack for smart-grid AMI.
#[derive(Debug, Parser)]
#[command(name = "amicn", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    // Subcommands are added here, one line each, dispatched in `main` below.
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {};
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("amicn: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
