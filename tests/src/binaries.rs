//! The lbfwd and lbctl binaries under test: built once per test binary, with
//! every backend feature this machine can build, then copied aside so a
//! concurrent `cargo build` cannot swap them mid-test. One binary serves
//! every backend: it is the binary CI ships its tests with.
//!
//! The build is `cargo test --workspace --no-run --features "F"`, F being
//! `lbfwd-forwarder/af_xdp lbfwd-forwarder/dpdk` (less what cannot be built
//! here), exactly the build `scripts/test.sh` runs the tests with. So in CI
//! nothing is compiled again: the binaries are the ones cargo built for the
//! whole workspace. A narrower `cargo build -p lbfwd-forwarder --bin lbfwd`
//! would compile lbfwd and its dependencies anew, because cargo then leaves
//! out the dev-dependencies' features (criterion turns on serde's `alloc`).
//! When the workspace build fails (in a shared checkout, another crate's
//! test may not compile at the moment), the narrow build is tried, loudly.
//!
//! `LBFWD_E2E_BIN` (and optionally `LBFWD_E2E_LBCTL`) name prebuilt binaries
//! instead; the tests then trust that the binary has the backend they ask
//! for (a binary without it makes lbfwd say so, and the test is skipped).

use crate::cmd::describe;
use crate::{workspace_root, Backend, Error};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The binaries a test runs.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// The daemon.
    pub lbfwd: PathBuf,
    /// The control client.
    pub lbctl: PathBuf,
}

/// The backends with a cargo feature, in the order of `LBFWD_FEATURES` in
/// scripts/lib/deps.sh.
const FEATURED: [Backend; 2] = [Backend::AfXdp, Backend::Dpdk];

/// One build: its binaries and the backends compiled in.
#[derive(Clone, Debug)]
struct Build {
    bins: Binaries,
    backends: Vec<Backend>,
}

static BUILT: OnceLock<Result<Build, String>> = OnceLock::new();

/// The binaries for `backend`. `Ok(None)`: this machine cannot build that
/// backend's feature (its system libraries are missing, see
/// [`Backend::debian_packages`]), and the caller skips its test loudly. Any
/// other build failure is an error.
pub fn lbfwd_binaries(backend: Backend) -> Result<Option<Binaries>, Error> {
    if let Ok(bin) = std::env::var("LBFWD_E2E_BIN") {
        let lbfwd = PathBuf::from(bin);
        let lbctl = std::env::var("LBFWD_E2E_LBCTL")
            .map(PathBuf::from)
            .unwrap_or_else(|_| lbfwd.with_file_name("lbctl"));
        return Ok(Some(Binaries { lbfwd, lbctl }));
    }
    if !buildable(backend) {
        return Ok(None);
    }
    let built = BUILT
        .get_or_init(|| {
            let backends: Vec<Backend> = FEATURED.into_iter().filter(|b| buildable(*b)).collect();
            build(&backends).map(|bins| Build { bins, backends })
        })
        .clone()
        .map_err(Error::Build)?;
    let compiled_in = backend.cargo_feature().is_none() || built.backends.contains(&backend);
    Ok(compiled_in.then_some(built.bins))
}

/// Whether pkg-config finds the system libraries of `backend`'s feature.
pub fn buildable(backend: Backend) -> bool {
    let modules = backend.pkg_config_modules();
    modules.is_empty()
        || Command::new("pkg-config")
            .arg("--exists")
            .args(modules)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

/// The `--features` value for `backends`, e.g.
/// `lbfwd-forwarder/af_xdp lbfwd-forwarder/dpdk`.
fn features(backends: &[Backend]) -> String {
    backends
        .iter()
        .filter_map(|b| b.cargo_feature())
        .map(|f| format!("lbfwd-forwarder/{f}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Builds lbfwd and lbctl with the features of `backends` (see the module
/// docs) and copies both to `<target>/debug/lbfwd-e2e-<features>/`.
fn build(backends: &[Backend]) -> Result<Binaries, String> {
    let features = features(backends);
    let flavor = match backends
        .iter()
        .filter_map(|b| b.cargo_feature())
        .collect::<Vec<_>>()
        .join("+")
    {
        f if f.is_empty() => "plain".to_string(),
        f => f,
    };
    let workspace = cargo_build(
        &["test", "--workspace", "--no-run"],
        &features,
        "the workspace's test build, as scripts/test.sh runs it: nothing to compile after it",
    );
    let (lbfwd, lbctl) = match workspace {
        Ok(found) => found,
        Err(e) => {
            eprintln!(
                "\n!!!!! the workspace build for the end-to-end tests failed: {e}\n\
                 !!!!! building only lbfwd and lbctl instead !!!!!\n"
            );
            cargo_build(
                &[
                    "build",
                    "-p",
                    "lbfwd-forwarder",
                    "-p",
                    "lbfwd-control",
                    "--bin",
                    "lbfwd",
                    "--bin",
                    "lbctl",
                ],
                &features,
                "lbfwd and lbctl only",
            )?
        }
    };
    let dir = lbfwd
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("lbfwd-e2e-{flavor}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Binaries {
        lbfwd: copy_into(&lbfwd, &dir)?,
        lbctl: copy_into(&lbctl, &dir)?,
    })
}

/// Runs `cargo ARGS --features FEATURES` in the workspace and returns the
/// executables of the `lbfwd` and `lbctl` binary targets (not their unit
/// test harnesses) that cargo reported.
fn cargo_build(args: &[&str], features: &str, why: &str) -> Result<(PathBuf, PathBuf), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(args)
        .arg("--message-format=json-render-diagnostics");
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    let line = describe(&cmd);
    eprintln!("building the binaries under test ({why}): {line}");
    let started = std::time::Instant::now();
    // Diagnostics go to our stderr as cargo renders them; artifacts come as
    // JSON on stdout.
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run `{line}`: {e}"))?;
    let mut lbfwd = None;
    let mut lbctl = None;
    if let Some(out) = child.stdout.take() {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&l) else {
                continue;
            };
            if let Some((name, exe)) = binary_artifact(&msg) {
                match name {
                    "lbfwd" => lbfwd = Some(exe),
                    "lbctl" => lbctl = Some(exe),
                    _ => {}
                }
            }
        }
    }
    let status = child.wait().map_err(|e| format!("`{line}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{line}` failed ({status}); its errors are above"));
    }
    eprintln!(
        "built the binaries under test in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    match (lbfwd, lbctl) {
        (Some(lbfwd), Some(lbctl)) => Ok((lbfwd, lbctl)),
        _ => Err(format!("`{line}` reported no lbfwd/lbctl executable")),
    }
}

/// The target name and executable of a cargo `compiler-artifact` message
/// for a binary target built as such (`cargo test` also reports the unit
/// test harness of each binary, under the same name: not that one).
fn binary_artifact(msg: &serde_json::Value) -> Option<(&str, PathBuf)> {
    if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != false {
        return None;
    }
    let kinds = msg["target"]["kind"].as_array()?;
    if !kinds.iter().any(|k| k == "bin") {
        return None;
    }
    Some((
        msg["target"]["name"].as_str()?,
        PathBuf::from(msg["executable"].as_str()?),
    ))
}

fn copy_into(exe: &Path, dir: &Path) -> Result<PathBuf, String> {
    let to = dir.join(exe.file_name().unwrap_or_default());
    // Copy to a temporary name and rename: a binary still running from an
    // earlier test keeps its inode.
    let tmp = to.with_extension("tmp");
    std::fs::copy(exe, &tmp)
        .and_then(|_| std::fs::rename(&tmp, &to))
        .map_err(|e| format!("copying {} to {}: {e}", exe.display(), to.display()))?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_follow_the_ci_order() {
        assert_eq!(
            features(&FEATURED),
            "lbfwd-forwarder/af_xdp lbfwd-forwarder/dpdk"
        );
        assert_eq!(features(&[Backend::Dpdk]), "lbfwd-forwarder/dpdk");
        assert_eq!(features(&[]), "");
    }

    #[test]
    fn only_the_binary_itself_is_taken() {
        let artifact = |test: bool, kind: &str| {
            serde_json::json!({
                "reason": "compiler-artifact",
                "profile": { "test": test },
                "target": { "name": "lbfwd", "kind": [kind] },
                "executable": if test { "/t/debug/deps/lbfwd-0123" } else { "/t/debug/lbfwd" },
            })
        };
        assert_eq!(
            binary_artifact(&artifact(false, "bin")),
            Some(("lbfwd", PathBuf::from("/t/debug/lbfwd")))
        );
        assert_eq!(binary_artifact(&artifact(true, "bin")), None);
        assert_eq!(binary_artifact(&artifact(false, "lib")), None);
        let mut no_exe = artifact(false, "bin");
        no_exe["executable"] = serde_json::Value::Null;
        assert_eq!(binary_artifact(&no_exe), None);
    }
}
