//! The daemon's desired state and its control handler: where the state comes
//! from at start (the saved state wins over the config file), how every
//! change is validated as a whole, published, and saved atomically before
//! the answer goes out.
//!
//! Precedence: the config file always supplies the appliance settings
//! (`[dataplane]`, `[underlay]`, `[control]`, `[flow]`). The desired state
//! (pools, networks, interfaces, load balancers, routings, address
//! allocations) comes from `STATE_DIR/state.toml` when that file exists,
//! else from the config file (plus `-f` manifests). `lbctl reload` replaces
//! the desired state with the config file's, keeping address allocations of
//! load balancers that still exist.

use crate::dataplane::Dataplane;
use crate::metrics::server::{MetricsError, MetricsServer};
use crate::metrics::Registry;
use crate::notify::{Notifier, NotifyError, Supervisor};
use crate::report::{snapshot, Sample, WorkerView};
use crate::runtime::{Layout, Runtime};
use lbfwd_config::Kind as ConfigKind;
use lbfwd_config::{Change, Config, DesiredState, Errors, Object as StateObject, Resolved};
use lbfwd_control::convert::changes_for;
use lbfwd_control::protocol::{
    self as proto, ApiError, ChangeSummary, ErrorCode, Kind, Object, ObjectStatus, Payload,
    Request, StatusInfo, WorkerInfo,
};
use lbfwd_control::server::{Handler, Server, ServerConfig, ServerHandle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::health::HealthMonitor;

/// The saved desired state's file name inside `[control] state_dir`.
pub const STATE_FILE: &str = "state.toml";
/// The previous good copy, kept when a new state is saved.
pub const STATE_PREVIOUS: &str = "state.toml.prev";

/// Errors of starting the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file (or a manifest) is invalid.
    #[error("{0}")]
    Config(Errors),
    /// The saved state cannot be used; it is left as it is.
    #[error("saved state {path}: {why}\n  (lbfwd keeps this file and {previous} untouched; fix or move it away to start from the config file)")]
    SavedState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
        /// The previous good copy.
        previous: PathBuf,
    },
    /// The state directory cannot be used.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The control socket could not be set up.
    #[error(transparent)]
    Control(#[from] lbfwd_control::server::ServerError),
    /// The Prometheus endpoint could not be set up.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// systemd's notify variables are wrong, or its socket refused.
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// A service thread could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What the daemon holds under its lock.
#[derive(Debug)]
struct State {
    config: Config,
    resolved: Resolved,
}

/// The daemon: config path, desired state, start time, health checks,
/// and what it tells systemd and Prometheus.
#[derive(Debug)]
pub struct Daemon {
    config_path: PathBuf,
    state: Mutex<State>,
    started: Instant,
    health: Arc<HealthMonitor>,
    notifier: Arc<Notifier>,
    metrics: Arc<Registry>,
    announcer: std::sync::OnceLock<Arc<crate::announce::Announcer>>,
}

/// The services around the dataplane: the Prometheus endpoint and the
/// systemd supervisor. [`Services::stop`] at shutdown.
#[derive(Debug)]
pub struct Services {
    metrics: Option<MetricsServer>,
    supervisor: Supervisor,
}

impl Services {
    /// Where the Prometheus endpoint listens, if it is on.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::local_addr)
    }

    /// Tells systemd lbfwd is stopping (if not done yet) and stops the
    /// endpoint.
    pub fn stop(self) {
        self.supervisor.stop();
        if let Some(m) = self.metrics {
            m.shutdown();
        }
    }
}

/// Writes `text` to `dir/name` atomically: temporary file, fsync, keep the
/// old file as the previous copy, rename, fsync of the directory.
///
/// The previous copy is a second link to the old file (its data was made
/// durable when it was written), put in place by a rename and made durable
/// by a directory fsync before the new file replaces the old one; where
/// the file system has no hard links it is a copy, as before. Either way
/// the last good copy survives even if the final rename is the last thing
/// that happens.
pub fn write_atomic(dir: &Path, name: &str, previous: &str, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    let target = dir.join(name);
    if target.exists() {
        let prev = dir.join(previous);
        let prev_tmp = dir.join(format!(".{previous}.tmp"));
        let _ = std::fs::remove_file(&prev_tmp);
        match std::fs::hard_link(&target, &prev_tmp) {
            Ok(()) => std::fs::rename(&prev_tmp, &prev)?,
            Err(_) => {
                std::fs::copy(&target, &prev)?;
                std::fs::File::open(&prev)?.sync_all()?;
            }
        }
        std::fs::File::open(dir)?.sync_all()?;
    }
    std::fs::rename(&tmp, &target)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// What [`HealthMonitor::sync`] reads of a state: the load balancers that
/// have a health check (it looks each resolved load balancer up by name,
/// one linear search each; with the whole state, 10,000 load balancers
/// made that half of a change's time).
fn health_checked(state: &DesiredState) -> DesiredState {
    DesiredState {
        load_balancers: state
            .load_balancers
            .iter()
            .filter(|l| l.health_check.is_some())
            .cloned()
            .collect(),
        ..DesiredState::default()
    }
}

fn validation_failed(errors: &Errors) -> ApiError {
    ApiError {
        code: ErrorCode::ValidationFailed,
        message: format!(
            "the change is invalid ({} error{}); nothing was changed",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        ),
        details: errors.iter().map(|e| e.to_string()).collect(),
    }
}

/// A live change may not move a running load balancer's address: an address
/// released from a load balancer the change does not name (replace or
/// delete) and now held by another one was taken by an explicit `ips`
/// claim, which the resolution lets win over the recorded allocation.
/// Refused, so that adding a load balancer never moves another one's VIP.
fn refuse_taken_addresses(summary: &lbfwd_config::ChangeSummary) -> Result<(), ApiError> {
    let named = |name: &str| {
        summary
            .replaced
            .iter()
            .chain(&summary.deleted)
            .any(|(k, n)| k == Kind::LoadBalancer.as_str() && n == name)
    };
    let errors: Vec<String> = summary
        .released
        .iter()
        .filter(|r| !named(&r.load_balancer))
        .filter_map(|r| {
            let taker = summary
                .allocated
                .iter()
                .find(|a| a.address == r.address && a.load_balancer != r.load_balancer)?;
            Some(format!(
                "load_balancer[{}].ips: {} is allocated to load balancer {:?}; a change may not \
                 take a running load balancer's address (change or delete {:?} in the same change)",
                taker.load_balancer, r.address, r.load_balancer, r.load_balancer
            ))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// The objects created, replaced and deleted from `old` to `new`, as
/// (kind, name); allocations are not API objects and are left out.
fn object_changes(old: &DesiredState, new: &DesiredState) -> lbfwd_config::ChangeSummary {
    let key = |o: &StateObject| (o.kind().toml_key().to_string(), o.name().to_string());
    let objects = |s: &DesiredState| -> Vec<StateObject> {
        s.objects()
            .into_iter()
            .filter(|o| !matches!(o, StateObject::Allocation(_)))
            .collect()
    };
    let (old, new) = (objects(old), objects(new));
    let mut summary = lbfwd_config::ChangeSummary::default();
    for o in &new {
        match old.iter().find(|p| key(p) == key(o)) {
            None => summary.created.push(key(o)),
            Some(p) if p != o => summary.replaced.push(key(o)),
            Some(_) => {}
        }
    }
    for o in &old {
        if !new.iter().any(|n| key(n) == key(o)) {
            summary.deleted.push(key(o));
        }
    }
    summary
}

/// What lbfwd derived for a routing, interface, network or pool object
/// (`lbctl routing|nic|network|pool get/list`); `None` for other kinds and
/// for a routing whose load balancer does not exist.
fn derived_status(state: &State, object: &StateObject) -> Option<ObjectStatus> {
    let lbs = &state.resolved.load_balancers;
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    match object {
        StateObject::LoadBalancerRouting(r) => {
            let lb = lbs.iter().find(|l| l.name == r.name)?;
            // A routing of a load balancer with a selector is ignored.
            let selector = state
                .config
                .state
                .load_balancers
                .iter()
                .any(|s| s.name == r.name && s.network_interface_selector.is_some());
            let source = if selector {
                proto::RoutingSource::Selector
            } else {
                proto::RoutingSource::External
            };
            Some(ObjectStatus::Routing(proto::RoutingStatus::from_resolved(
                lb, source,
            )))
        }
        StateObject::NetworkInterface(i) => {
            let selected_by = lbs
                .iter()
                .filter(|l| {
                    l.network == i.network
                        && l.destinations
                            .iter()
                            .any(|d| d.name == i.name || (!i.uid.is_empty() && d.uid == i.uid))
                })
                .map(|l| l.name.clone())
                .collect();
            Some(ObjectStatus::NetworkInterface(proto::InterfaceStatus {
                selected_by: sorted(selected_by),
            }))
        }
        StateObject::Network(n) => Some(ObjectStatus::Network(proto::NetworkStatus {
            interfaces: sorted(
                state
                    .config
                    .state
                    .network_interfaces
                    .iter()
                    .filter(|i| i.network == n.name)
                    .map(|i| i.name.clone())
                    .collect(),
            ),
            load_balancers: sorted(
                lbs.iter()
                    .filter(|l| l.network == n.name)
                    .map(|l| l.name.clone())
                    .collect(),
            ),
        })),
        StateObject::Pool(p) => {
            let capacity = p
                .addresses
                .iter()
                .filter_map(|a| lbfwd_config::pool::AddrRange::parse(a).ok())
                .fold(0u64, |n, r| {
                    n.saturating_add(u64::try_from(r.size()).unwrap_or(u64::MAX))
                });
            let mut allocated: Vec<proto::Allocation> = lbs
                .iter()
                .flat_map(|l| {
                    l.ips
                        .iter()
                        .filter(|a| a.pool.as_deref() == Some(p.name.as_str()))
                        .map(|a| proto::Allocation {
                            addr: a.addr,
                            load_balancer: l.name.clone(),
                        })
                })
                .collect();
            allocated.sort();
            Some(ObjectStatus::Pool(proto::PoolStatus {
                capacity,
                allocated,
            }))
        }
        StateObject::LoadBalancer(_) | StateObject::Allocation(_) => None,
    }
}

fn api(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError {
        code,
        message: message.into(),
        details: Vec::new(),
    }
}

impl Daemon {
    /// Loads the config file and the saved state (if any) and resolves the
    /// desired state. Nothing is bound or started.
    pub fn start(config_path: &Path, manifests: &[PathBuf]) -> Result<Arc<Daemon>, DaemonError> {
        let mut config =
            Config::load_with_manifests(config_path, manifests).map_err(DaemonError::Config)?;
        let dir = config.settings.control.state_dir.clone();
        let saved = dir.join(STATE_FILE);
        match std::fs::read_to_string(&saved) {
            Ok(text) => {
                let state = DesiredState::from_toml_str(&text, &saved.display().to_string())
                    .map_err(|e| DaemonError::SavedState {
                        path: saved.clone(),
                        why: e.to_string(),
                        previous: dir.join(STATE_PREVIOUS),
                    })?;
                config.state = state;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DaemonError::SavedState {
                    path: saved,
                    why: e.to_string(),
                    previous: dir.join(STATE_PREVIOUS),
                })
            }
        }
        let resolution = config.resolve().map_err(|e| match saved.exists() {
            true => DaemonError::SavedState {
                path: saved.clone(),
                why: e.to_string(),
                previous: dir.join(STATE_PREVIOUS),
            },
            false => DaemonError::Config(e),
        })?;
        crate::logging::configure(&config.settings.log);
        for w in &resolution.warnings {
            log::warn!("{w}");
        }
        // Pin the allocations the first resolution made.
        config.state.allocations = resolution.allocations.clone();
        let health = Arc::new(HealthMonitor::new());
        health.sync(&health_checked(&config.state), &resolution.resolved);
        Ok(Arc::new(Daemon {
            config_path: config_path.to_path_buf(),
            state: Mutex::new(State {
                config,
                resolved: resolution.resolved,
            }),
            started: Instant::now(),
            health,
            notifier: Arc::new(Notifier::from_env()?),
            metrics: Arc::new(Registry::default()),
            announcer: std::sync::OnceLock::new(),
        }))
    }

    /// systemd's notify socket (disabled when not under systemd).
    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// The metrics registry: subsystems add their families here
    /// ([`Registry::register`]); `GET /metrics` renders them all.
    pub fn metrics(&self) -> &Arc<Registry> {
        &self.metrics
    }

    /// Starts what runs beside the workers, once the control socket serves
    /// and before the workers start: registers the dataplane's families and
    /// binds `[metrics] listen` (an error here stops the start), and starts
    /// the thread that sends `READY=1` once every worker runs, feeds the
    /// watchdog and sends `STOPPING=1`. The endpoint's thread runs on the
    /// lowest allowed core that no worker uses (none free: unpinned).
    pub fn start_services(
        self: &Arc<Self>,
        dataplane: &Arc<Dataplane>,
        runtime: &Runtime,
    ) -> Result<Services, DaemonError> {
        let settings = self.lock().config.settings.clone();
        let layout = runtime.layout();
        let cores: Vec<Option<usize>> = layout.workers.iter().map(|w| w.core).collect();
        self.metrics
            .register("build", Arc::new(crate::metrics::collect_build_info));
        self.metrics.register(
            "dataplane",
            Arc::new(crate::metrics::dataplane::DataplaneCollector::new(
                Arc::clone(dataplane),
                runtime.stats(),
                cores.clone(),
                &settings.dataplane.backend.to_string(),
            )),
        );
        if let Some(sync) = dataplane.sync() {
            let sync = Arc::clone(sync);
            self.metrics.register(
                "sync",
                Arc::new(move |out: &mut crate::metrics::Exposition| {
                    crate::metrics::sync::collect(&sync.stats(), out)
                }),
            );
        }
        let weak = Arc::downgrade(self);
        self.metrics.register(
            "control",
            Arc::new(move |out: &mut crate::metrics::Exposition| {
                let Some(daemon) = weak.upgrade() else {
                    return;
                };
                if let Some(a) = daemon.announcer.get() {
                    crate::metrics::control::collect_announce(&a.status(), out);
                }
                crate::metrics::control::collect_health(&daemon.health.list(), out);
            }),
        );
        let metrics = match settings.metrics.listen {
            None => None,
            Some(addr) => {
                let free_core = crate::runtime::allowed_cores()
                    .ok()
                    .and_then(|all| all.into_iter().find(|c| !cores.contains(&Some(*c))));
                let server = MetricsServer::start(addr, Arc::clone(&self.metrics), free_core)?;
                log::info!(
                    "metrics: http://{}/metrics (thread on core {})",
                    server.local_addr(),
                    free_core.map_or("any".to_string(), |c| c.to_string())
                );
                Some(server)
            }
        };
        let status = format!(
            "{} backend, {} worker(s), control socket {}",
            settings.dataplane.backend,
            layout.workers.len(),
            settings.control.socket.display()
        );
        let supervisor = Supervisor::start(
            Arc::clone(&self.notifier),
            runtime.stats(),
            runtime.shutdown_flag(),
            status,
        )
        .map_err(|source| DaemonError::Thread {
            what: "systemd notify",
            source,
        })?;
        Ok(Services {
            metrics,
            supervisor,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current configuration (settings and desired state).
    pub fn config(&self) -> Config {
        self.lock().config.clone()
    }

    /// The current resolved state.
    pub fn resolved(&self) -> Resolved {
        self.lock().resolved.clone()
    }

    /// The health checks: per destination state, and
    /// [`HealthMonitor::usable_destinations`] of a load balancer (Available,
    /// weight > 0, not unhealthy), what the announcer withdraws a VIP on.
    pub fn health(&self) -> &Arc<HealthMonitor> {
        &self.health
    }

    /// Hands the announcer every published state and `lbctl announce`
    /// (once, before [`serve`](Self::serve)).
    pub fn set_announcer(&self, announcer: Arc<crate::announce::Announcer>) {
        let _ = self.announcer.set(announcer);
    }

    /// Seconds since start.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// The saved state file.
    pub fn state_path(&self) -> PathBuf {
        self.lock()
            .config
            .settings
            .control
            .state_dir
            .join(STATE_FILE)
    }

    /// Saves the current desired state (startup: so a restart finds the
    /// same allocations) and binds the control socket, serving requests on
    /// its own threads.
    pub fn serve(
        self: &Arc<Self>,
        dataplane: Arc<Dataplane>,
        layout: Layout,
    ) -> Result<ServerHandle, DaemonError> {
        let control = self.lock().config.settings.control.clone();
        let mut server_config = ServerConfig::new(&control.socket);
        server_config.group = control.socket_group.clone();
        // Lock the socket first: a second daemon must not touch the state.
        let server = Server::bind(server_config)?;
        self.save().map_err(|source| DaemonError::StateDir {
            path: control.state_dir.clone(),
            source,
        })?;
        // Health probes run on their own thread; a state change that
        // changes a routing publishes the tables again (one publication).
        let weak = Arc::downgrade(self);
        let publish_to = Arc::clone(&dataplane);
        self.health
            .start(
                dataplane.current().underlay.clone(),
                Box::new(move || {
                    if let Some(daemon) = weak.upgrade() {
                        let state = daemon.lock();
                        if let Err(e) =
                            publish_to.publish(&daemon.health.effective(&state.resolved))
                        {
                            eprintln!("lbfwd: health: cannot publish the tables: {e}");
                        }
                        // A load balancer without a healthy destination is
                        // withdrawn (also when the dataplane fails open).
                        if let Some(a) = daemon.announcer.get() {
                            let usable = daemon.health.without_unhealthy(&state.resolved);
                            let unhealthy = daemon.health.unhealthy_counts(&state.resolved);
                            if let Err(e) = a.update(&usable, &unhealthy, &state.config.state.pools)
                            {
                                eprintln!("lbfwd: health: announce: {e}");
                            }
                        }
                    }
                }),
            )
            .map_err(|e| DaemonError::StateDir {
                path: control.state_dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        Ok(server.spawn(self.control_handler(dataplane, layout))?)
    }

    /// The handler [`serve`](Self::serve) answers `lbctl` with, for callers
    /// that answer request lines in process
    /// ([`lbfwd_control::server::answer`]: the control fuzz target). Changes
    /// publish to `dataplane` and are saved in `[control] state_dir`.
    pub fn control_handler(
        self: &Arc<Self>,
        dataplane: Arc<Dataplane>,
        layout: Layout,
    ) -> Arc<impl Handler> {
        Arc::new(ControlHandler {
            daemon: Arc::clone(self),
            dataplane,
            layout,
            last_sample: Mutex::new(None),
        })
    }

    fn save(&self) -> std::io::Result<()> {
        let state = self.lock();
        save_state(&state.config)
    }
}

fn save_state(config: &Config) -> std::io::Result<()> {
    write_atomic(
        &config.settings.control.state_dir,
        STATE_FILE,
        STATE_PREVIOUS,
        &config.state.to_toml(),
    )
}

mod handler;
use handler::ControlHandler;
