//! `[flow] persist` and `[flow] persist_dir`: whether each worker's flow
//! table lives in a file that a restarted lbfwd re-attaches (on by
//! default: a restart, an upgrade, a crash then breaks no running
//! connection), and where those files are (by default `flows/` in the
//! control socket's directory, the runtime directory `/run/lbfwd`).
//!
//! Layer 2 (input), above the problems: it uses only [`crate::problem`].

use crate::problem::Problem;
use std::path::{Path, PathBuf};

/// The default of `[flow] persist`.
pub fn default_persist() -> bool {
    true
}

/// Validated `[flow] persist` / `persist_dir`: present when on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowPersist {
    /// The directory of the flow-table files.
    pub dir: PathBuf,
}

/// Validates the two keys; `socket` is `[control] socket` (the default
/// directory is `flows` beside it). Problems go to `err` with their field
/// path.
pub fn validate_persist(
    persist: bool,
    dir: Option<&Path>,
    socket: &Path,
    err: &mut dyn FnMut(&str, Problem),
) -> Option<FlowPersist> {
    let dir = match dir {
        Some(d) if d.as_os_str().is_empty() => {
            err("flow.persist_dir", Problem::EmptyName);
            return None;
        }
        Some(d) if !d.is_absolute() => {
            err(
                "flow.persist_dir",
                Problem::Setting(format!(
                    "persist_dir {:?} is not an absolute path",
                    d.display().to_string()
                )),
            );
            return None;
        }
        Some(d) => d.to_path_buf(),
        None => socket
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("flows"),
    };
    persist.then_some(FlowPersist { dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(persist: bool, dir: Option<&str>) -> (Option<FlowPersist>, Vec<String>) {
        let mut errors = Vec::new();
        let out = validate_persist(
            persist,
            dir.map(Path::new),
            Path::new("/run/lbfwd/lbfwd.sock"),
            &mut |path, p| errors.push(format!("{path}: {p}")),
        );
        (out, errors)
    }

    #[test]
    fn on_by_default_beside_the_socket_and_off_when_asked() {
        let (on, errors) = run(true, None);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(on.unwrap().dir, PathBuf::from("/run/lbfwd/flows"));
        assert_eq!(run(false, None), (None, vec![]));
        let (on, _) = run(true, Some("/var/run/lbfwd-flows"));
        assert_eq!(on.unwrap().dir, PathBuf::from("/var/run/lbfwd-flows"));
    }

    #[test]
    fn a_relative_or_empty_directory_is_refused_with_its_field() {
        let (out, errors) = run(true, Some("flows"));
        assert!(out.is_none());
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("flow.persist_dir: ") && errors[0].contains("absolute"),
            "{errors:?}"
        );
        let (out, errors) = run(true, Some(""));
        assert!(out.is_none());
        assert!(errors[0].starts_with("flow.persist_dir: "), "{errors:?}");
    }
}
