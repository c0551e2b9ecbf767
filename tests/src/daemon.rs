//! lbfwd itself: in the lb namespace of a test network, or in the root
//! namespace on a config of the test's own (e.g. `backend = "memory"` for
//! tests of the control plane alone).

use crate::client::{http_get, url};
use crate::cmd::{self, Output};
use crate::topo::{Node, Topology, TopologyInfo};
use crate::{is_root, Binaries, Error};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long lbfwd may take from start to forwarding (a debug build
/// attaching XDP programs is not instant).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long lbfwd may take to stop after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The limit of one lbctl run.
pub const LBCTL_TIMEOUT: Duration = Duration::from_secs(15);

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

/// A running `lbfwd run --config FILE`, in the lb namespace of a test
/// network ([`Lbfwd::start`], [`Lbfwd::spawn_on`]) or in the root namespace
/// ([`Lbfwd::spawn_local`]). Dropping it stops it (SIGTERM, then SIGKILL);
/// when the test is panicking, its output is printed. Whenever an lbfwd it
/// started has exited, the runtime directory DPDK's EAL made for it
/// (`/var/run/dpdk/lbfwd-PID`, see [`dpdk_runtime_dir`]) is removed.
#[derive(Debug)]
pub struct Lbfwd {
    /// The network it forwards on (`None`: the root namespace).
    topo: Option<Arc<TopologyInfo>>,
    bins: Binaries,
    config: PathBuf,
    socket: PathBuf,
    /// Where its logs go, one file per run.
    log_dir: PathBuf,
    /// How messages name it (the network's prefix, or the log directory).
    label: String,
    child: Option<Child>,
    log: PathBuf,
}

/// Numbers the logs of every lbfwd this test binary starts, so that two
/// lbfwd sharing a directory never share a log.
static RUNS: AtomicU32 = AtomicU32::new(0);

impl Lbfwd {
    /// Writes `config` to the network's state directory, starts lbfwd on it
    /// and waits until it forwards: an HTTP request to each VIP is answered
    /// by a backend.
    pub fn start(topo: &Topology, bins: &Binaries, config: &str) -> Result<Self, Error> {
        let path = topo.state_dir().join("lbfwd.toml");
        write(&path, config)?;
        let mut d = Self::spawn_on(topo.info(), bins, &path)?;
        d.wait_ready(READY_TIMEOUT)?;
        Ok(d)
    }

    /// Starts lbfwd in the lb namespace of `topo` on the config file
    /// `config`, whose control socket is the one `topo.sh config` writes
    /// (`STATE_DIR/lbfwd.sock`), without waiting for it.
    pub fn spawn_on(
        topo: Arc<TopologyInfo>,
        bins: &Binaries,
        config: &Path,
    ) -> Result<Self, Error> {
        let mut d = Lbfwd {
            socket: topo.state_dir().join("lbfwd.sock"),
            log_dir: topo.state_dir(),
            label: topo.prefix().to_string(),
            topo: Some(topo),
            bins: bins.clone(),
            config: config.to_path_buf(),
            child: None,
            log: PathBuf::new(),
        };
        d.spawn()?;
        Ok(d)
    }

    /// Starts lbfwd in the root namespace on the config file `config`, whose
    /// `[control] socket` is `socket`, with its logs in `log_dir`, without
    /// waiting for it (see [`wait_control`](Self::wait_control)).
    pub fn spawn_local(
        bins: &Binaries,
        config: &Path,
        socket: &Path,
        log_dir: &Path,
    ) -> Result<Self, Error> {
        let mut d = Lbfwd {
            topo: None,
            bins: bins.clone(),
            config: config.to_path_buf(),
            socket: socket.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            label: log_dir.display().to_string(),
            child: None,
            log: PathBuf::new(),
        };
        d.spawn()?;
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

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.socket.clone()
    }

    /// The binaries it runs.
    pub fn binaries(&self) -> &Binaries {
        &self.bins
    }

    /// Starts lbfwd again (same config, same place) after it exited or was
    /// stopped; an error while it still runs.
    pub fn respawn(&mut self) -> Result<(), Error> {
        if self.child.is_some() && self.check_running().is_ok() {
            return Err(self.error("is still running; it cannot be started again".into()));
        }
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let run = RUNS.fetch_add(1, Ordering::Relaxed) + 1;
        self.log = self.log_dir.join(format!("lbfwd.{run}.log"));
        let out = File::create(&self.log).map_err(|source| Error::Io {
            path: self.log.clone(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| Error::Io {
            path: self.log.clone(),
            source,
        })?;
        let lbfwd = self.bins.lbfwd.to_string_lossy();
        let mut c = match &self.topo {
            Some(topo) => topo.command(Node::Lb, &lbfwd),
            None => Command::new(&self.bins.lbfwd),
        };
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
        eprintln!("[{}] started (pid {}): {line}", self.label, child.id());
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `lbctl status` answers on the control socket; fails as
    /// soon as lbfwd exits.
    pub fn wait_control(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            let out = self.lbctl(&["status"])?;
            if out.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.error(format!(
                    "did not answer on {} within {timeout:?}; last try:\n{}",
                    self.socket.display(),
                    out.describe()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until both VIPs answer HTTP through lbfwd; fails as soon as
    /// lbfwd exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let Some(topo) = self.topo.clone() else {
            return Err(self.error("runs without a network: it cannot forward".into()));
        };
        let deadline = Instant::now() + timeout;
        let urls = [url(topo.vip4(), 80, "/"), url(topo.vip6(), 80, "/")];
        let mut last = String::new();
        loop {
            self.check_running()?;
            let mut ready = true;
            for u in &urls {
                match http_get(&topo, u, Duration::from_secs(1)) {
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

    /// Waits at most `timeout` for lbfwd to end by itself (e.g. a refused
    /// start) and returns its exit status; killed and an error when it does
    /// not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, Error> {
        let Some(mut child) = self.child.take() else {
            return Err(self.error("was not running".into()));
        };
        let status = cmd::wait_deadline(&mut child, timeout);
        remove_dpdk_runtime_dir(child.id());
        status.ok_or_else(|| self.error(format!("did not exit within {timeout:?} (killed)")))
    }

    /// Kills lbfwd with SIGKILL (`kill -9`) and reaps it; an error unless
    /// it was running and SIGKILL is what ended it.
    pub fn kill9(&mut self) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else {
            return Err(self.error("was not running when it was to be killed".into()));
        };
        let killed = child.kill();
        let status = child.wait();
        remove_dpdk_runtime_dir(child.id());
        match (killed, status) {
            (Ok(()), Ok(s)) if std::os::unix::process::ExitStatusExt::signal(&s) == Some(9) => {
                Ok(())
            }
            (Ok(()), Ok(s)) => Err(self.error(format!("ended with {s}, not by SIGKILL"))),
            (Err(e), _) | (_, Err(e)) => Err(self.error(format!("cannot be killed: {e}"))),
        }
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
    /// a path), limited to [`LBCTL_TIMEOUT`]; see [`lbctl`].
    pub fn lbctl(&self, args: &[&str]) -> Result<Output, Error> {
        lbctl(&self.bins, &self.socket, args)
    }

    /// `lbctl ARGS...`, which must exit 0; returns its stdout. A failure
    /// shows lbctl's output and lbfwd's.
    pub fn lbctl_ok(&self, args: &[&str]) -> Result<String, Error> {
        let out = self.lbctl(args)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(self.error(format!(
                "answered `lbctl {}` with a failure:\n{}",
                args.join(" "),
                out.describe()
            )))
        }
    }

    /// `lbctl -o json ARGS...`, which must exit 0; returns the JSON.
    pub fn lbctl_json(&self, args: &[&str]) -> Result<serde_json::Value, Error> {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let text = self.lbctl_ok(&all)?;
        serde_json::from_str(&text).map_err(|e| Error::Parse {
            what: format!("lbctl -o json {}", args.join(" ")),
            detail: format!("{e}: {text}"),
        })
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
                    self.label,
                    self.bins.lbctl.display()
                );
                let out = self.stop()?;
                eprintln!("[{}] lbfwd's output before the restart:\n{out}", self.label);
                let state = self.log_dir.join("state");
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
            eprintln!("[{}] lbfwd ignored SIGTERM; killed", self.label);
        }
        remove_dpdk_runtime_dir(child.id());
        if std::thread::panicking() {
            eprintln!(
                "[{}] lbfwd's output ({}):\n{}",
                self.label,
                self.log.display(),
                self.log()
            );
        }
    }
}

/// Runs `lbctl --socket SOCKET args...` with `bins`' lbctl (without
/// `LBFWD_SOCKET` from the environment), limited to [`LBCTL_TIMEOUT`];
/// returns its output whatever its status. For clients of their own (one
/// per thread) beside [`Lbfwd::lbctl`].
pub fn lbctl(bins: &Binaries, socket: &Path, args: &[&str]) -> Result<Output, Error> {
    cmd::run(
        Command::new(&bins.lbctl)
            .arg("--socket")
            .arg(socket)
            .args(args)
            .env_remove("LBFWD_SOCKET"),
        LBCTL_TIMEOUT,
    )
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
