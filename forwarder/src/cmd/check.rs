//! `lbfwd check`.

use std::process::ExitCode;

/// Arguments of `lbfwd check`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `lbfwd check`.
pub fn main(_args: Args) -> ExitCode {
    eprintln!("lbfwd check: not implemented yet");
    ExitCode::FAILURE
}
