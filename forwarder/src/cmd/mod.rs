//! The subcommands of `lbfwd`, one module each.

use std::path::PathBuf;

pub mod check;
pub mod replay;
pub mod run;

/// The configuration arguments of `lbfwd run`, `check` and `replay`.
#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    /// The lbfwd TOML configuration file.
    #[arg(long, short = 'c', value_name = "FILE.toml")]
    pub config: PathBuf,
    /// Ironcore manifests (multi-document YAML) applied on top of the file's
    /// desired state; repeatable. `lbfwd run` applies them at start, and
    /// not when a saved state exists.
    #[arg(short = 'f', long = "file", value_name = "MANIFEST.yaml")]
    pub manifests: Vec<PathBuf>,
}

/// `error` and its sources, one after the other (`what: why: why`), for
/// the one line an operator reads; a source whose text its error already
/// shows is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// Writes `text` to standard output; a reader that went away (`| head`) is
/// not an error worth a panic.
pub fn write_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("af_xdp on lbt0: attaching the XDP program")]
        Attach(#[source] Inner),
    }

    #[derive(Debug, thiserror::Error)]
    enum Inner {
        /// Shows its source in its own text, as `IoError::Os` does.
        #[error("bpf_link_create on lbt0: {0}")]
        Os(#[source] std::io::Error),
    }

    #[test]
    fn error_chain_names_every_cause_once() {
        let os = std::io::Error::from_raw_os_error(libc::EPERM);
        let os_text = os.to_string();
        let e = Outer::Attach(Inner::Os(os));
        assert_eq!(
            error_chain(&e),
            format!(
                "af_xdp on lbt0: attaching the XDP program: bpf_link_create on lbt0: {os_text}"
            )
        );
    }
}
