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

/// The DESCRIPTION of `man lbfwd`.
const MAN_DESCRIPTION: &str =
    "lbfwd gives a group of network interfaces one stable virtual IP (VIP): \
each packet for a VIP passes the load balancer's port/protocol allow list, is mapped to one \
target by a Maglev table and leaves, unchanged inside, encapsulated toward that target, which \
answers the client directly. `lbfwd run` is the daemon (systemd unit lbfwd.service, \
configuration /etc/lbfwd/lbfwd.toml, state /var/lib/lbfwd/state.toml, control socket \
/run/lbfwd/lbfwd.sock for lbctl(1), Prometheus metrics at [metrics] listen). Environment: \
LBFWD_LOG or RUST_LOG (log filter, e.g. info,lbfwd_forwarder::metrics=debug), NOTIFY_SOCKET and \
WATCHDOG_USEC (set by systemd). Reference: /usr/share/doc/lbfwd/README.md.gz.";

fn main() -> ExitCode {
    lbfwd_forwarder::logging::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "lbfwd", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { dir } => match clap_mangen::generate_to(
            Cli::command()
                .about("L3 network load balancer: Maglev, IP-in-IP/GUE/VXLAN, direct server return")
                .long_about(MAN_DESCRIPTION),
            &dir,
        ) {
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
