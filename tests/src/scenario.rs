//! One end-to-end test's world: its own network, lbfwd running on it, and
//! the lock that keeps the end-to-end tests of one binary from running at
//! the same time.

use crate::daemon::{ApplyMethod, Lbfwd};
use crate::topo::{ConfigOptions, Topology};
use crate::{lbfwd_binaries, require_root, serial, Backend, Error};

use std::sync::MutexGuard;

/// What `lbfwd run` says when its binary lacks the AF_XDP backend.
pub const WITHOUT_AF_XDP: &str = "built without the `af_xdp` feature";
/// What `lbfwd run` says when its binary lacks the DPDK backend.
pub const WITHOUT_DPDK: &str = "built without the `dpdk` feature";

/// What `lbfwd run` says when its binary lacks `backend` (`None`: every
/// binary has it).
pub fn without_feature_message(backend: Backend) -> Option<&'static str> {
    match backend {
        Backend::AfPacket => None,
        Backend::AfXdp => Some(WITHOUT_AF_XDP),
        Backend::Dpdk => Some(WITHOUT_DPDK),
    }
}

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
    /// AF_XDP or DPDK asked for on a machine that cannot build it (both
    /// printed).
    /// Panics with the cause when anything else fails.
    pub fn start(test: &str, tag: &str, opts: ConfigOptions) -> Option<Self> {
        let name = format!("{test}::{}", opts.backend);
        if !require_root(&name) {
            return None;
        }
        let bins = match lbfwd_binaries(opts.backend) {
            Ok(Some(b)) => b,
            Ok(None) => {
                let backend = opts.backend;
                eprintln!(
                    "\n!!!!! SKIPPED {name}: lbfwd cannot be built with the {} feature here \
                     (pkg-config finds no {}; `. scripts/lib/deps.sh; install_deps` \
                     installs {}) !!!!!\n",
                    backend.cargo_feature().unwrap_or_default(),
                    backend.pkg_config_modules().join("/"),
                    backend.debian_packages(),
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
                if without_feature_message(opts.backend).is_some_and(|m| output.contains(m)) =>
            {
                eprintln!(
                    "\n!!!!! SKIPPED {name}: {} was built without the {} feature !!!!!\n",
                    bins.lbfwd.display(),
                    opts.backend.cargo_feature().unwrap_or_default()
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
    /// output (the final counters); then the network is deleted. With the
    /// `dpdk` backend, also asserts that DPDK's runtime directory of lbfwd
    /// was where the cleanup looks while lbfwd ran, and is gone after
    /// (lbfwd removes it; [`Lbfwd::stop`] fails if it did not).
    pub fn finish(mut self) -> String {
        let dpdk_dir = match self.opts.backend {
            Backend::Dpdk => self.lbfwd.dpdk_runtime_dir(),
            _ => None,
        };
        if let Some(dir) = &dpdk_dir {
            assert!(
                dir.is_dir(),
                "DPDK's runtime directory of the running lbfwd is not {}: \
                 the cleanup would leave it behind",
                dir.display()
            );
        }
        let out = self
            .lbfwd
            .stop()
            .unwrap_or_else(|e| panic!("stopping lbfwd: {e}"));
        eprintln!("[{}] lbfwd's output:\n{out}", self.topo.prefix());
        if let Some(dir) = &dpdk_dir {
            assert!(
                !dir.exists(),
                "DPDK's runtime directory {} is left after lbfwd stopped",
                dir.display()
            );
        }
        out
    }
}
