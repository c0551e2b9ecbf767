//! `lbfwd`: the load-balancer daemon and its offline tools.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

/// lbfwd: an L3 load balancer that forwards VIP traffic, encapsulated, to
/// Maglev-picked targets.
#[derive(Parser, Debug)]
#[command(name = "lbfwd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a config (and Ironcore manifests) and print the derived state.
    Check(cmd::check::Args),
    /// Run the dataplane and the control socket.
    Run(cmd::run::Args),
    /// Run every frame of a pcap file through the pipeline, offline.
    Replay(cmd::replay::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => cmd::check::main(args),
        Command::Run(args) => cmd::run::main(args),
        Command::Replay(args) => cmd::replay::main(args),
    }
}
