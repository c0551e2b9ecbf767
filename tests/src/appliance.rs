//! An lbfwd appliance `lbN` of a two-appliance network (the ECMP network of
//! `scripts/lib/topo-ecmp.sh`, the layer-2 one of `scripts/lib/topo-l2.sh`):
//! started in its namespace `PREFIX-lbN` from the network script's
//! `config N`, restarted, killed with SIGKILL, and asked through `lbctl` on
//! the socket the script names (`LBN_SOCKET`). Killed when dropped; its
//! output is printed when the test panics.

use crate::cmd::{self, Output};
use crate::{Binaries, Topology, TopologyInfo};
use serde_json::Value;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// One lbfwd appliance of the network.
pub struct Appliance {
    /// The network it runs in.
    pub topo: Arc<TopologyInfo>,
    bins: Binaries,
    /// Its number (`lbN`).
    pub n: u8,
    config: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    runs: u32,
}

impl Appliance {
    /// Starts appliance `n` with the config the network script prints for
    /// it (`SCRIPT config N`), written to `lbN/lbfwd.toml` of the network's
    /// state directory.
    pub fn start(topo: &Topology, bins: &Binaries, n: u8) -> Appliance {
        let info = topo.info();
        let text = info
            .script("config", &[&n.to_string()])
            .and_then(Output::checked)
            .expect("the network script's config")
            .stdout;
        let config = info.state_dir().join(format!("lb{n}/lbfwd.toml"));
        std::fs::write(&config, text).expect("write the config");
        Appliance::start_with(topo, bins, n, config)
    }

    /// Starts appliance `n` with the config file `config`.
    pub fn start_with(topo: &Topology, bins: &Binaries, n: u8, config: PathBuf) -> Appliance {
        let mut a = Appliance {
            topo: topo.info(),
            bins: bins.clone(),
            n,
            config,
            child: None,
            log: PathBuf::new(),
            runs: 0,
        };
        a.spawn();
        a
    }

    /// Its namespace.
    pub fn ns(&self) -> String {
        format!("{}-lb{}", self.topo.prefix(), self.n)
    }

    /// Starts lbfwd (again), its output in a new `lbN/lbfwd.RUN.log`.
    pub fn spawn(&mut self) {
        self.runs += 1;
        self.log = self
            .topo
            .state_dir()
            .join(format!("lb{}/lbfwd.{}.log", self.n, self.runs));
        let out = File::create(&self.log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns()])
            .arg(&self.bins.lbfwd)
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start lbfwd");
        eprintln!("[lb{}] lbfwd started (pid {})", self.n, child.id());
        self.child = Some(child);
    }

    /// The running lbfwd's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("lbfwd runs")
    }

    /// What the current run wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `lbctl ARGS` on its socket.
    pub fn lbctl(&self, args: &[&str]) -> Output {
        let socket = self.topo.get(&format!("LB{}_SOCKET", self.n));
        cmd::run(
            Command::new(&self.bins.lbctl)
                .arg("--socket")
                .arg(socket)
                .args(args),
            Duration::from_secs(15),
        )
        .expect("run lbctl")
    }

    /// `lbctl ARGS`, which must succeed; its output.
    pub fn lbctl_ok(&self, args: &[&str]) -> String {
        let out = self.lbctl(args);
        assert!(
            out.success(),
            "lb{}: lbctl {args:?} failed: {}{}\n--- lbfwd ---\n{}",
            self.n,
            out.stdout,
            out.stderr,
            self.log()
        );
        out.stdout
    }

    /// `lbctl -o json ARGS`, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.lbctl_ok(&all)).expect("lbctl -o json")
    }

    /// `lbctl -o json announce`.
    pub fn announce(&self) -> Value {
        self.json(&["announce"])
    }

    /// Waits up to `timeout` for lbfwd to exit on its own (after SIGTERM);
    /// its status, `None` if it still runs (it is then killed when dropped).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("lbfwd runs");
        let status = cmd::wait_deadline(&mut child, timeout);
        if status.is_none() {
            self.child = Some(child);
        }
        status
    }

    /// SIGKILL; returns once it is reaped.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("lbfwd runs");
        cmd::signal(child.id(), "KILL");
        let _ = cmd::wait_deadline(&mut child, Duration::from_secs(5));
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            cmd::signal(c.id(), "KILL");
            let _ = cmd::wait_deadline(&mut c, Duration::from_secs(5));
        }
        if std::thread::panicking() {
            eprintln!("--- lb{} lbfwd's output ---\n{}", self.n, self.log());
            // The network's arbiter, where it runs one (topo-l2.sh's keepalived).
            let ka = self
                .topo
                .state_dir()
                .join(format!("lb{}/keepalived.log", self.n));
            if let Ok(text) = std::fs::read_to_string(ka) {
                eprintln!("--- lb{} keepalived's output ---\n{text}", self.n);
            }
        }
    }
}
