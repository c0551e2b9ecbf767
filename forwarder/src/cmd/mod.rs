//! The subcommands of `lbfwd`, one module each.

pub mod check;
pub mod replay;
pub mod run;

/// Writes `text` to standard output; a reader that went away (`| head`) is
/// not an error worth a panic.
pub fn write_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
