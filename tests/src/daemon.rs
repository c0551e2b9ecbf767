//! lbfwd itself, running in the lb namespace of a test network.

use crate::client::{http_get, url};
use crate::cmd::{self, Output};
use crate::topo::{Node, Topology, TopologyInfo};
use crate::{is_root, Binaries, Error};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long lbfwd may take from start to forwarding (a debug build
/// attaching XDP programs is not instant).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long lbfwd may take to stop after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How a configuration change reached the running lbfwd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyMethod {
    /// Live: `lbctl reload` made lbfwd re-read its config file; flows of
    /// destinations that stay keep their targets (the flow table survives).
    LbctlReload,
    /// lbfwd was stopped and started again with the new file (and its saved
    /// state removed): used while `lbctl` has no `reload`.
    Restart,
}

/// A running `lbfwd run --config FILE` in the lb namespace. Dropping it
/// stops it (SIGTERM, then SIGKILL); when the test is panicking, its output
/// is printed. Whenever an lbfwd it started has exited, the runtime
/// directory DPDK's EAL made for it (`/var/run/dpdk/lbfwd-PID`, see
/// [`dpdk_runtime_dir`]) is removed.
#[derive(Debug)]
pub struct Lbfwd {
    topo: Arc<TopologyInfo>,
    bins: Binaries,
    config: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    runs: u32,
}

impl Lbfwd {
    /// Writes `config` to the network's state directory, starts lbfwd on it
    /// and waits until it forwards: an HTTP request to each VIP is answered
    /// by a backend.
    pub fn start(topo: &Topology, bins: &Binaries, config: &str) -> Result<Self, Error> {
        let info = topo.info();
        let path = info.state_dir().join("lbfwd.toml");
        write(&path, config)?;
        let mut d = Lbfwd {
            topo: info,
            bins: bins.clone(),
            config: path,
            child: None,
            log: PathBuf::new(),
            runs: 0,
        };
        d.spawn()?;
        d.wait_ready(READY_TIMEOUT)?;
        Ok(d)
    }

    /// The process id of the running lbfwd (`None` once it exited or was
    /// stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The runtime directory of the running lbfwd's DPDK EAL (whether or
    /// not it exists: only the `dpdk` backend makes one).
    pub fn dpdk_runtime_dir(&self) -> Option<PathBuf> {
        self.pid().map(dpdk_runtime_dir)
    }

    /// The config file lbfwd runs with.
    pub fn config_path(&self) -> &PathBuf {
        &self.config
    }

    /// The control socket (`[control] socket` of the generated config).
    pub fn socket(&self) -> PathBuf {
        self.topo.state_dir().join("lbfwd.sock")
    }

    fn spawn(&mut self) -> Result<(), Error> {
        self.runs += 1;
        self.log = self
            .topo
            .state_dir()
            .join(format!("lbfwd.{}.log", self.runs));
        let out = File::create(&self.log).map_err(|source| Error::Io {
            path: self.log.clone(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| Error::Io {
            path: self.log.clone(),
            source,
        })?;
        let mut c = self
            .topo
            .command(Node::Lb, &self.bins.lbfwd.to_string_lossy());
        c.arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let line = cmd::describe(&c);
        // `ip netns exec` execs lbfwd: the child's pid is lbfwd's.
        let child = c.spawn().map_err(|source| Error::Spawn {
            command: line.clone(),
            source,
        })?;
        eprintln!(
            "[{}] started (pid {}): {line}",
            self.topo.prefix(),
            child.id()
        );
        self.child = Some(child);
        Ok(())
    }

    /// Waits until both VIPs answer HTTP through lbfwd; fails as soon as
    /// lbfwd exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let urls = [
            url(self.topo.vip4(), 80, "/"),
            url(self.topo.vip6(), 80, "/"),
        ];
        let mut last = String::new();
        loop {
            self.check_running()?;
            let mut ready = true;
            for u in &urls {
                match http_get(&self.topo, u, Duration::from_secs(1)) {
                    Ok(t) if t.ok() => {}
                    Ok(t) => {
                        ready = false;
                        last = format!("{u}: {t:?}");
                    }
                    Err(e) => {
                        ready = false;
                        last = format!("{u}: {e}");
                    }
                }
            }
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.error(format!(
                    "did not forward within {timeout:?} (last probe: {last})"
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `Ok` while lbfwd runs; an error with its output once it exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        let status = match self.child.as_mut() {
            None => return Err(self.error("is not running".into())),
            Some(c) => c.try_wait(),
        };
        match status {
            Ok(None) => Ok(()),
            Ok(Some(s)) => {
                if let Some(c) = self.child.take() {
                    remove_dpdk_runtime_dir(c.id());
                }
                Err(self.error(format!("exited: {s}")))
            }
            Err(e) => Err(self.error(format!("cannot be waited for: {e}"))),
        }
    }

    /// lbfwd's output so far (the current run's).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn error(&self, what: String) -> Error {
        Error::Lbfwd {
            what,
            log: self.log.clone(),
            output: self.log(),
        }
    }

    /// Stops lbfwd with SIGTERM and returns its output (the final counters).
    /// An error if it was not running, did not stop within
    /// [`STOP_TIMEOUT`], exited with a status other than 0, or left its
    /// DPDK runtime directory behind.
    pub fn stop(&mut self) -> Result<String, Error> {
        let Some(mut child) = self.child.take() else {
            return Err(self.error("was not running when asked to stop".into()));
        };
        if let Ok(Some(s)) = child.try_wait() {
            remove_dpdk_runtime_dir(child.id());
            return Err(self.error(format!("had exited before it was stopped: {s}")));
        }
        cmd::signal(child.id(), "TERM");
        let status = cmd::wait_deadline(&mut child, STOP_TIMEOUT);
        // lbfwd removes its DPDK runtime directory when it exits; after a
        // crash the harness does.
        let dpdk_dir = dpdk_runtime_dir(child.id());
        let left = dpdk_dir.exists();
        remove_dpdk_runtime_dir(child.id());
        match status {
            Some(s) if s.success() && left => Err(self.error(format!(
                "exited 0 but left DPDK's runtime directory {} behind",
                dpdk_dir.display()
            ))),
            Some(s) if s.success() => Ok(self.log()),
            Some(s) => Err(self.error(format!("exited with {s} after SIGTERM (expected 0)"))),
            None => Err(self.error(format!(
                "did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed)"
            ))),
        }
    }

    /// Runs `lbctl --socket SOCKET args...` (root namespace: the socket is
    /// a path), limited to 15 s.
    pub fn lbctl(&self, args: &[&str]) -> Result<Output, Error> {
        cmd::run(
            Command::new(&self.bins.lbctl)
                .arg("--socket")
                .arg(self.socket())
                .args(args),
            Duration::from_secs(15),
        )
    }

    /// How [`apply_config`](Self::apply_config) will reach lbfwd: live
    /// through `lbctl reload` when this lbctl has that command, else by a
    /// restart.
    pub fn apply_method(&self) -> ApplyMethod {
        let has_reload = cmd::run(
            Command::new(&self.bins.lbctl).args(["reload", "--help"]),
            Duration::from_secs(10),
        )
        .map(|o| o.success())
        .unwrap_or(false);
        if has_reload {
            ApplyMethod::LbctlReload
        } else {
            ApplyMethod::Restart
        }
    }

    /// Makes `config` (a whole config file) lbfwd's configuration: rewrites
    /// its config file, then `lbctl reload` (live) or, while lbctl has no
    /// `reload`, a restart with the saved state removed (said loudly).
    /// Returns once the new routing is in force.
    pub fn apply_config(&mut self, config: &str) -> Result<ApplyMethod, Error> {
        write(&self.config, config)?;
        let method = self.apply_method();
        match method {
            ApplyMethod::LbctlReload => {
                self.lbctl(&["reload"])?.checked()?;
                self.check_running()?;
            }
            ApplyMethod::Restart => {
                eprintln!(
                    "[{}] NOTE: {} has no `reload`: applying the new config by restarting lbfwd \
                     (its flow table is lost; Maglev alone keeps the surviving flows)",
                    self.topo.prefix(),
                    self.bins.lbctl.display()
                );
                let out = self.stop()?;
                eprintln!(
                    "[{}] lbfwd's output before the restart:\n{out}",
                    self.topo.prefix()
                );
                let state = self.topo.state_dir().join("state");
                if state.exists() {
                    std::fs::remove_dir_all(&state).map_err(|source| Error::Io {
                        path: state.clone(),
                        source,
                    })?;
                }
                self.spawn()?;
                self.wait_ready(READY_TIMEOUT)?;
            }
        }
        Ok(method)
    }
}

impl Drop for Lbfwd {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        cmd::signal(child.id(), "TERM");
        if cmd::wait_deadline(&mut child, STOP_TIMEOUT).is_none() {
            eprintln!("[{}] lbfwd ignored SIGTERM; killed", self.topo.prefix());
        }
        remove_dpdk_runtime_dir(child.id());
        if std::thread::panicking() {
            eprintln!(
                "[{}] lbfwd's output ({}):\n{}",
                self.topo.prefix(),
                self.log.display(),
                self.log()
            );
        }
    }
}

/// Where DPDK's EAL keeps the runtime files of lbfwd process `pid`: lbfwd
/// passes `--file-prefix=lbfwd-PID`, and EAL puts that directory under
/// `/var/run/dpdk` for root (else under `$XDG_RUNTIME_DIR/dpdk` or
/// `/tmp/dpdk`). With `--no-shconf`/`--in-memory` it stays (nearly) empty,
/// but EAL never removes it.
pub fn dpdk_runtime_dir(pid: u32) -> PathBuf {
    let base = if is_root() {
        PathBuf::from("/var/run")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
    };
    base.join("dpdk").join(format!("lbfwd-{pid}"))
}

/// Removes the DPDK runtime directory of lbfwd process `pid`, which has
/// exited (nothing when there is none); says so when that fails.
fn remove_dpdk_runtime_dir(pid: u32) {
    let dir = dpdk_runtime_dir(pid);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "cannot remove DPDK's runtime directory {}: {e}",
            dir.display()
        ),
    }
}

fn write(path: &PathBuf, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })
}
