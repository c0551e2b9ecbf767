//! Helpers of lbfwd's end-to-end tests: network namespaces, veth pairs,
//! backends with the kernel's VXLAN decapsulation, cleanup on every exit.
//!
//! The network itself is built by `scripts/lib/topo.sh`, the one
//! implementation the demo shares; [`Topology`] drives it and deletes it
//! when dropped, also when a test panics. [`Lbfwd`] runs the daemon in the
//! lb namespace (or, for tests of the control plane alone, in the root
//! namespace on a config of their own) and drives it with lbctl; [`client`]
//! sends real traffic from the client namespace; [`FlowProbe`] keeps
//! long-lived connections open while the routing changes. The binaries come
//! from [`lbfwd_binaries`]: one build per test binary, never a guess from the
//! target directory. The end-to-end tests (`tests/e2e.rs`), the daemon and
//! control-plane tests (`tests/daemon.rs`) and the network's own tests
//! (`tests/topology.rs`) all use these helpers.
#![deny(unsafe_code)]

pub mod appliance;
pub mod binaries;
pub mod client;
pub mod cmd;
pub mod daemon;
pub mod ecmp;
pub mod probe;
pub mod scenario;
pub mod topo;

pub use appliance::Appliance;
pub use binaries::{lbfwd_binaries, Binaries};
pub use daemon::{ApplyMethod, Lbfwd};
pub use probe::{FlowProbe, ProbeConn, ProbeSummary};
pub use scenario::Scenario;
pub use topo::{ConfigOptions, Idle, Node, Topology, TopologyInfo, Underlay};

use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Everything that can go wrong while setting up or driving a test network.
/// `Debug` prints the same text as `Display`, so `expect` and `?` in tests
/// show a readable message.
#[derive(thiserror::Error)]
pub enum Error {
    /// A command could not be started at all.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A command exited with a failure status.
    #[error(
        "`{command}` failed (exit {code:?})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    )]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit code (`None`: killed by a signal).
        code: Option<i32>,
        /// Its stdout.
        stdout: String,
        /// Its stderr.
        stderr: String,
    },
    /// A command ran past its deadline and was killed.
    #[error("`{command}` did not finish within {timeout:?} and was killed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}")]
    Timeout {
        /// The command line.
        command: String,
        /// The deadline it had.
        timeout: Duration,
        /// What it wrote to stdout until then.
        stdout: String,
        /// What it wrote to stderr until then.
        stderr: String,
    },
    /// Reading or writing a file of the test failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Building lbfwd failed or did not produce the binaries.
    #[error("building lbfwd: {0}")]
    Build(String),
    /// lbfwd exited (or never became ready) when it should be forwarding.
    #[error("lbfwd {what}\n--- lbfwd's output ({log}) ---\n{output}")]
    Lbfwd {
        /// What happened.
        what: String,
        /// Its log file.
        log: PathBuf,
        /// The log's content.
        output: String,
    },
    /// A helper process (the flow probe) misbehaved.
    #[error("{0}")]
    Probe(String),
    /// Output of a tool that could not be understood.
    #[error("cannot parse the output of {what}: {detail}")]
    Parse {
        /// Which tool.
        what: String,
        /// What was wrong, with the offending text.
        detail: String,
    },
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The packet I/O backend a test runs lbfwd with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `af_packet`: built by default.
    AfPacket,
    /// `af_xdp`: needs the cargo feature `af_xdp` (libxdp, libbpf).
    AfXdp,
    /// `dpdk`: needs the cargo feature `dpdk` (libdpdk); the tests drive
    /// the lb node's veth through DPDK's `net_af_packet` PMD.
    Dpdk,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 3] = [Backend::AfPacket, Backend::AfXdp, Backend::Dpdk];

    /// The name the config file uses.
    pub fn config_name(self) -> &'static str {
        match self {
            Backend::AfPacket => "af_packet",
            Backend::AfXdp => "af_xdp",
            Backend::Dpdk => "dpdk",
        }
    }

    /// One letter for namespace prefixes.
    pub fn letter(self) -> char {
        match self {
            Backend::AfPacket => 'p',
            Backend::AfXdp => 'x',
            Backend::Dpdk => 'd',
        }
    }

    /// The cargo feature of `lbfwd-forwarder` that compiles this backend
    /// in (`None`: always there).
    pub fn cargo_feature(self) -> Option<&'static str> {
        match self {
            Backend::AfPacket => None,
            Backend::AfXdp => Some("af_xdp"),
            Backend::Dpdk => Some("dpdk"),
        }
    }

    /// The pkg-config modules that feature links against.
    pub fn pkg_config_modules(self) -> &'static [&'static str] {
        match self {
            Backend::AfPacket => &[],
            Backend::AfXdp => &["libxdp", "libbpf"],
            Backend::Dpdk => &["libdpdk"],
        }
    }

    /// The Debian packages that provide those modules.
    pub fn debian_packages(self) -> &'static str {
        match self {
            Backend::AfPacket => "",
            Backend::AfXdp => "libxdp-dev and libbpf-dev",
            Backend::Dpdk => "libdpdk-dev",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

/// The workspace root (the directory above this crate).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The Python interpreter the helpers run (Debian's, when present, so a
/// user's pyenv shims do not matter inside namespaces).
pub fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Whether this process runs as root (effective uid 0), from
/// /proc/self/status.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// `true` when the test may run; otherwise prints why it is skipped. The
/// end-to-end tests need root for network namespaces; in CI they run as
/// root.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        true
    } else {
        eprintln!("SKIPPED {test}: needs root (network namespaces, veth, VXLAN)");
        false
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// Serializes the end-to-end tests of one test binary: each runs a
/// busy-polling lbfwd and a dozen processes, which would starve each other
/// on a small machine. A test that panicked does not block the others.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `check` every 20 ms until it holds; panics with `what` and the last
/// state when `bound` passes. Returns how long it took.
pub fn within(
    what: &str,
    bound: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Duration {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => {
                let took = start.elapsed();
                eprintln!(
                    "ok: {what} after {:.2} s (bound {bound:?})",
                    took.as_secs_f64()
                );
                return took;
            }
            Err(state) if start.elapsed() > bound => {
                panic!("{what}: not within {bound:?}; last: {state}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
