//! The lbfwd and lbctl binaries under test: built once per test binary with
//! cargo (with the `af_xdp` feature for the AF_XDP tests), then copied aside
//! so a concurrent `cargo build` cannot swap them mid-test.
//!
//! `LBFWD_E2E_BIN` (and optionally `LBFWD_E2E_LBCTL`) name prebuilt binaries
//! instead; the tests then trust that the binary has the backend they ask
//! for.

use crate::cmd::describe;
use crate::{workspace_root, Backend, Error};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The binaries a test runs.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// The daemon.
    pub lbfwd: PathBuf,
    /// The control client.
    pub lbctl: PathBuf,
}

static DEFAULT: OnceLock<Result<Binaries, String>> = OnceLock::new();
static AF_XDP: OnceLock<Result<Option<Binaries>, String>> = OnceLock::new();
static BUILD: Mutex<()> = Mutex::new(());

/// The binaries for `backend`. `Ok(None)`: this machine cannot build the
/// AF_XDP backend (libxdp/libbpf missing, see scripts/lib/deps.sh), and the
/// caller skips its test loudly. Any other build failure is an error.
pub fn lbfwd_binaries(backend: Backend) -> Result<Option<Binaries>, Error> {
    if let Ok(bin) = std::env::var("LBFWD_E2E_BIN") {
        let lbfwd = PathBuf::from(bin);
        let lbctl = std::env::var("LBFWD_E2E_LBCTL")
            .map(PathBuf::from)
            .unwrap_or_else(|_| lbfwd.with_file_name("lbctl"));
        return Ok(Some(Binaries { lbfwd, lbctl }));
    }
    match backend {
        Backend::AfPacket => DEFAULT
            .get_or_init(|| build(false).map_err(|e| e.to_string()))
            .clone()
            .map(Some)
            .map_err(Error::Build),
        Backend::AfXdp => AF_XDP
            .get_or_init(|| {
                if !af_xdp_buildable() {
                    return Ok(None);
                }
                build(true).map(Some).map_err(|e| e.to_string())
            })
            .clone()
            .map_err(Error::Build),
    }
}

/// Whether the system libraries of the `af_xdp` feature are installed.
fn af_xdp_buildable() -> bool {
    Command::new("pkg-config")
        .args(["--exists", "libxdp", "libbpf"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs `cargo build -p lbfwd-forwarder -p lbfwd-control --bin lbfwd --bin
/// lbctl [--features lbfwd-forwarder/af_xdp]` in the workspace and copies
/// both binaries to `<target>/debug/lbfwd-e2e-<flavor>/`.
fn build(af_xdp: bool) -> Result<Binaries, String> {
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args([
        "build",
        "-p",
        "lbfwd-forwarder",
        "-p",
        "lbfwd-control",
        "--bin",
        "lbfwd",
        "--bin",
        "lbctl",
        "--message-format=json-render-diagnostics",
    ]);
    if af_xdp {
        cmd.args(["--features", "lbfwd-forwarder/af_xdp"]);
    }
    let line = describe(&cmd);
    eprintln!("building the binaries under test: {line}");
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
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let (Some(name), Some(exe)) =
                (msg["target"]["name"].as_str(), msg["executable"].as_str())
            else {
                continue;
            };
            match name {
                "lbfwd" => lbfwd = Some(PathBuf::from(exe)),
                "lbctl" => lbctl = Some(PathBuf::from(exe)),
                _ => {}
            }
        }
    }
    let status = child.wait().map_err(|e| format!("`{line}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{line}` failed ({status}); its errors are above"));
    }
    let (Some(lbfwd), Some(lbctl)) = (lbfwd, lbctl) else {
        return Err(format!("`{line}` reported no lbfwd/lbctl executable"));
    };
    let flavor = if af_xdp { "af_xdp" } else { "default" };
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
