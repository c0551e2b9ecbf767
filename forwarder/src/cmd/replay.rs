//! `lbfwd replay`.

use std::process::ExitCode;

/// Arguments of `lbfwd replay`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `lbfwd replay`.
pub fn main(_args: Args) -> ExitCode {
    eprintln!("lbfwd replay: not implemented yet");
    ExitCode::FAILURE
}
