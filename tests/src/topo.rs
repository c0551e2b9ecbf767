//! The test network: a thin driver of `scripts/lib/topo.sh` (the one
//! implementation the demo shares), deleted again when dropped.

use crate::cmd::{self, Output};
use crate::{workspace_root, Backend, Error};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// How long building or deleting a network may take.
const TOPO_TIMEOUT: Duration = Duration::from_secs(60);

/// A namespace of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// Where curl and the UDP client run.
    Client,
    /// Routes between the client, the lb node and the backends.
    Router,
    /// Where lbfwd runs.
    Lb,
    /// Backend 1, 2 or 3 (`be1`..`be3`).
    Backend(u8),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Client => f.write_str("client"),
            Node::Router => f.write_str("router"),
            Node::Lb => f.write_str("lb"),
            Node::Backend(i) => write!(f, "be{i}"),
        }
    }
}

/// The address family of the underlay (the outer header lbfwd emits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Underlay {
    /// Backends are reached at 10.0.3.1N.
    V4,
    /// Backends are reached at fd00:3::1N.
    V6,
}

/// What lbfwd's workers do when a poll comes back empty (`[dataplane] idle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Idle {
    /// `busy`: poll again at once (lbfwd's default).
    Busy,
    /// `backoff`: sleep a little longer after each empty poll; keeps a test
    /// that mostly talks to the control socket from taking a core.
    Backoff,
}

/// What `topo.sh config` writes into the lbfwd config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigOptions {
    /// The packet I/O backend.
    pub backend: Backend,
    /// The underlay family of every destination.
    pub underlay: Underlay,
    /// Backends (`be1`..`be3`) left out of the config, so out of the routing.
    pub exclude: Vec<String>,
    /// `[dataplane] idle` (`None`: what topo.sh writes for the backend).
    pub idle: Option<Idle>,
    /// TOML put in place of topo.sh's load balancer `web` (`None`: `web`,
    /// both VIPs, selecting app=web).
    pub load_balancers: Option<String>,
}

impl ConfigOptions {
    /// All three backends, IPv4 underlay.
    pub fn new(backend: Backend) -> Self {
        ConfigOptions {
            backend,
            underlay: Underlay::V4,
            exclude: Vec::new(),
            idle: None,
            load_balancers: None,
        }
    }

    /// The same with `[dataplane] idle = IDLE`.
    pub fn idle(mut self, idle: Idle) -> Self {
        self.idle = Some(idle);
        self
    }

    /// The same with `toml` (`[[load_balancer]]` tables, in network
    /// `net-PREFIX`) instead of the load balancer `web`.
    pub fn load_balancers(mut self, toml: &str) -> Self {
        self.load_balancers = Some(toml.to_string());
        self
    }

    /// The same with another underlay family.
    pub fn underlay(mut self, underlay: Underlay) -> Self {
        self.underlay = underlay;
        self
    }

    /// The same without backend `name` (e.g. "be2").
    pub fn without(mut self, name: &str) -> Self {
        if !self.exclude.iter().any(|n| n == name) {
            self.exclude.push(name.to_string());
        }
        self
    }
}

/// The facts of a network (names, addresses, MACs), as `topo.sh env`
/// printed them; shared by everything that drives the network.
#[derive(Debug)]
pub struct TopologyInfo {
    prefix: String,
    script: PathBuf,
    env: BTreeMap<String, String>,
}

impl TopologyInfo {
    /// The network's prefix (every namespace is PREFIX-ROLE).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// One fact, e.g. `get("VIP4")`; the keys are listed in `topo.sh`'s
    /// `env` command. Panics on an unknown key (a bug in the test).
    pub fn get(&self, key: &str) -> &str {
        match self.env.get(key) {
            Some(v) => v,
            None => panic!("topo.sh env printed no {key} (have: {:?})", self.env.keys()),
        }
    }

    /// The namespace of `node`.
    pub fn ns(&self, node: Node) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// Directory of the network's files (servers' logs, lbfwd's config,
    /// socket and state); deleted with the network.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(self.get("STATE_DIR"))
    }

    /// The IPv4 VIP.
    pub fn vip4(&self) -> &str {
        self.get("VIP4")
    }

    /// The IPv6 VIP.
    pub fn vip6(&self) -> &str {
        self.get("VIP6")
    }

    /// A `Command` that runs `program` inside `node`'s namespace.
    pub fn command(&self, node: Node, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(node), program]);
        c
    }

    /// Runs `program args...` inside `node`'s namespace, killed after
    /// `timeout`; returns its output whatever its status.
    pub fn exec(
        &self,
        node: Node,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output, Error> {
        cmd::run(self.command(node, program).args(args), timeout)
    }

    /// Runs `topo.sh COMMAND PREFIX args...`.
    pub fn script(&self, command: &str, args: &[&str]) -> Result<Output, Error> {
        script(&self.script, command, &self.prefix, args, TOPO_TIMEOUT)
    }

    /// The lbfwd config for this network (`topo.sh config`).
    pub fn config(&self, opts: &ConfigOptions) -> Result<String, Error> {
        let mut args = vec![
            "--backend",
            opts.backend.config_name(),
            "--underlay",
            match opts.underlay {
                Underlay::V4 => "4",
                Underlay::V6 => "6",
            },
        ];
        for e in &opts.exclude {
            args.extend(["--exclude", e.as_str()]);
        }
        match opts.idle {
            None => {}
            Some(Idle::Busy) => args.extend(["--idle", "busy"]),
            Some(Idle::Backoff) => args.extend(["--idle", "backoff"]),
        }
        if opts.load_balancers.is_some() {
            args.push("--no-load-balancer");
        }
        let mut config = self.script("config", &args)?.checked()?.stdout;
        if let Some(lbs) = &opts.load_balancers {
            config.push('\n');
            config.push_str(lbs);
        }
        Ok(config)
    }

    /// The name of the network of the config (`net-PREFIX`).
    pub fn network(&self) -> String {
        format!("net-{}", self.prefix)
    }

    /// A counter of `dev` in `node` (e.g. "rx_packets"), from sysfs.
    pub fn dev_counter(&self, node: Node, dev: &str, counter: &str) -> Result<u64, Error> {
        let path = format!("/sys/class/net/{dev}/statistics/{counter}");
        let out = self
            .exec(node, "cat", &[&path], Duration::from_secs(5))?
            .checked()?;
        out.stdout.trim().parse().map_err(|_| Error::Parse {
            what: format!("{path} in {node}"),
            detail: out.stdout.clone(),
        })
    }
}

fn script(
    script: &PathBuf,
    command: &str,
    prefix: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Output, Error> {
    cmd::run(
        Command::new("bash")
            .arg(script)
            .arg(command)
            .arg(prefix)
            .args(args),
        timeout,
    )
}

/// A network built by `topo.sh up`; dropping it runs `topo.sh down`, which
/// ends every process in its namespaces and deletes them.
#[derive(Debug)]
pub struct Topology {
    info: Arc<TopologyInfo>,
}

impl Topology {
    /// Builds the network `prefix` (1-8 characters of [a-z0-9], unique per
    /// test), replacing a leftover of an earlier run with the same prefix.
    pub fn up(prefix: &str) -> Result<Self, Error> {
        Self::up_with(&workspace_root().join("scripts/lib/topo.sh"), prefix)
    }

    /// Builds the network `prefix` with another topology script that has
    /// the same `up`, `down` and `env` commands (e.g.
    /// `scripts/lib/topo-ecmp.sh`); dropping it runs that script's `down`.
    pub fn up_with(script_path: &std::path::Path, prefix: &str) -> Result<Self, Error> {
        let path = script_path.to_path_buf();
        if let Err(e) = script(&path, "up", prefix, &[], TOPO_TIMEOUT).and_then(Output::checked) {
            // Delete whatever `up` built before it failed.
            let _ = script(&path, "down", prefix, &[], TOPO_TIMEOUT);
            return Err(e);
        }
        let topo = Topology {
            info: Arc::new(TopologyInfo {
                prefix: prefix.to_string(),
                script: path,
                env: BTreeMap::new(),
            }),
        };
        // From here on, Drop cleans up.
        let env = topo.info.script("env", &[])?.checked()?.stdout;
        let env = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut topo = topo;
        if let Some(info) = Arc::get_mut(&mut topo.info) {
            info.env = env;
        }
        Ok(topo)
    }

    /// The shared facts, for helpers that outlive a borrow (the daemon).
    pub fn info(&self) -> Arc<TopologyInfo> {
        Arc::clone(&self.info)
    }

    /// Proves the network without lbfwd (`topo.sh selftest`): the lb
    /// namespace's kernel VXLAN stands in for lbfwd. Returns the report.
    pub fn selftest(&self) -> Result<String, Error> {
        let out = cmd::run(
            Command::new("bash")
                .arg(&self.info.script)
                .arg("selftest")
                .arg(&self.info.prefix),
            Duration::from_secs(180),
        )?
        .checked()?;
        Ok(out.stdout)
    }
}

impl Deref for Topology {
    type Target = TopologyInfo;

    fn deref(&self) -> &TopologyInfo {
        &self.info
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        match self.info.script("down", &[]) {
            Ok(o) if o.success() => {}
            Ok(o) => eprintln!(
                "cleaning up network {}: topo.sh down failed: {}",
                self.info.prefix, o.stderr
            ),
            Err(e) => eprintln!("cleaning up network {}: {e}", self.info.prefix),
        }
    }
}
