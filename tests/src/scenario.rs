//! One end-to-end test's world: its own network, lbfwd running on it, and
//! the lock that keeps the end-to-end tests of one binary from running at
//! the same time.

use crate::daemon::{ApplyMethod, Lbfwd};
use crate::topo::{ConfigOptions, Topology};
use crate::{lbfwd_binaries, require_root, serial, Backend, Error};

/// What `lbfwd run` says when its binary lacks the AF_XDP backend.
pub const WITHOUT_AF_XDP: &str = "built without the `af_xdp` feature";
use std::sync::MutexGuard;

/// A network with lbfwd forwarding on it. Fields drop in order: lbfwd
/// stops, then the network is deleted, then the next test may start.
#[derive(Debug)]
pub struct Scenario {
    /// The daemon.
    pub lbfwd: Lbfwd,
    /// The network.
    pub topo: Topology,
    /// The options of the config lbfwd runs with now.
    pub opts: ConfigOptions,
    _serial: MutexGuard<'static, ()>,
}

impl Scenario {
    /// Builds network `TAG` + backend letter (TAG: 1-7 characters of
    /// [a-z0-9]), starts lbfwd with the config `opts` describes and waits
    /// until it forwards. `None` when the test must be skipped: not root, or
    /// AF_XDP asked for on a machine that cannot build it (both printed).
    /// Panics with the cause when anything else fails.
    pub fn start(test: &str, tag: &str, opts: ConfigOptions) -> Option<Self> {
        let name = format!("{test}::{}", opts.backend);
        if !require_root(&name) {
            return None;
        }
        let bins = match lbfwd_binaries(opts.backend) {
            Ok(Some(b)) => b,
            Ok(None) => {
                eprintln!(
                    "\n!!!!! SKIPPED {name}: lbfwd cannot be built with the af_xdp feature here \
                     (pkg-config finds no libxdp/libbpf; `. scripts/lib/deps.sh; install_deps` \
                     installs libxdp-dev and libbpf-dev) !!!!!\n"
                );
                return None;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let serial = serial();
        let prefix = format!("{tag}{}", opts.backend.letter());
        let topo = Topology::up(&prefix).unwrap_or_else(|e| panic!("{name}: network: {e}"));
        let config = topo
            .config(&opts)
            .unwrap_or_else(|e| panic!("{name}: config: {e}"));
        eprintln!("[{prefix}] lbfwd config:\n{config}");
        let lbfwd = match Lbfwd::start(&topo, &bins, &config) {
            Ok(l) => l,
            // A binary given by LBFWD_E2E_BIN may lack the feature; lbfwd
            // says so and exits.
            Err(Error::Lbfwd { output, .. })
                if opts.backend == Backend::AfXdp && output.contains(WITHOUT_AF_XDP) =>
            {
                eprintln!(
                    "\n!!!!! SKIPPED {name}: {} was built without the af_xdp feature !!!!!\n",
                    bins.lbfwd.display()
                );
                return None;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        Some(Scenario {
            lbfwd,
            topo,
            opts,
            _serial: serial,
        })
    }

    /// Takes backend `name` ("be1".."be3") out of the load balancer's
    /// routing while lbfwd runs: the config without that network interface
    /// becomes lbfwd's configuration through [`Lbfwd::apply_config`] (live
    /// through `lbctl reload`, or a restart while lbctl has none). Returns
    /// how it was applied.
    pub fn remove_backend(&mut self, name: &str) -> ApplyMethod {
        let opts = self.opts.clone().without(name);
        let config = self
            .topo
            .config(&opts)
            .unwrap_or_else(|e| panic!("config without {name}: {e}"));
        let method = self
            .lbfwd
            .apply_config(&config)
            .unwrap_or_else(|e| panic!("removing {name} from the routing: {e}"));
        self.opts = opts;
        method
    }

    /// Stops lbfwd (SIGTERM), asserts it exits 0, prints and returns its
    /// output (the final counters); then the network is deleted.
    pub fn finish(mut self) -> String {
        let out = self
            .lbfwd
            .stop()
            .unwrap_or_else(|e| panic!("stopping lbfwd: {e}"));
        eprintln!("[{}] lbfwd's output:\n{out}", self.topo.prefix());
        out
    }
}
