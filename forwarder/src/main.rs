//! `lbfwd`: the load-balancer daemon and its offline tools.

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
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
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (lbfwd.1 and one per subcommand) into DIR
    /// (packaging).
    #[command(hide = true)]
    Man {
        /// Where to write them.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    lbfwd_forwarder::logging::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "lbfwd", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { dir } => match clap_mangen::generate_to(Cli::command(), &dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lbfwd man: {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
        Command::Check(args) => cmd::check::main(args),
        Command::Run(args) => cmd::run::main(args),
        Command::Replay(args) => cmd::replay::main(args),
    }
}
