//! `lbfwd run`.

use std::process::ExitCode;

/// Arguments of `lbfwd run`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `lbfwd run`.
pub fn main(_args: Args) -> ExitCode {
    eprintln!("lbfwd run: not implemented yet");
    ExitCode::FAILURE
}
