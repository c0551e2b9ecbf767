//! The announcer: turns "this VIP's load balancer has a usable destination,
//! and announcing is on" into BGP announcements through a BIRD 2 that lbfwd
//! starts, configures and supervises ([`supervisor`]), and reports per VIP
//! and per peer what is announced and why not (`lbctl announce`).
//!
//! ```text
//! daemon commit --update--> plan (usable? on? pool? family?) --> bird.conf
//!      --> `configure` over BIRD's socket --> BIRD --BGP--> routers
//! ```
//!
//! The decision whether a load balancer can take traffic is made in one
//! place, [`usable_destinations`].

pub mod bird;
pub mod birdc;
mod supervisor;

use lbfwd_config::bgp::Bgp;
use lbfwd_config::model::{Destination, Resolved};
use lbfwd_config::{PoolSpec, Settings};
use lbfwd_control::announce::{AnnounceStatus, BgpStatus, PeerStatus, VipAnnouncement};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long one command on BIRD's socket may take.
const BIRDC_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of starting the announcer.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The BIRD binary is not there.
    #[error("[bgp] bird: {path} does not exist: lbfwd runs BIRD 2 for BGP (install the Debian package bird2)")]
    BirdMissing {
        /// The path tried.
        path: PathBuf,
    },
    /// The binary is not BIRD 2.
    #[error("[bgp] bird: {path} says {version:?}: lbfwd needs BIRD 2 (Debian package bird2)")]
    NotBird2 {
        /// The path tried.
        path: PathBuf,
        /// What it said it is.
        version: String,
    },
    /// setpriv (which ties BIRD's life to lbfwd's) is not there.
    #[error("[bgp]: setpriv is missing (Debian package util-linux): lbfwd starts BIRD through it so that BIRD dies with lbfwd")]
    SetprivMissing,
    /// BIRD's runtime directory cannot be made.
    #[error("[bgp] runtime_dir {path}: {source}")]
    RuntimeDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// BIRD did not start (its own message included).
    #[error("BIRD did not start: {0}")]
    Start(String),
}

/// Why a load balancer cannot take new flows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// It has no destination at all (none selected, none Available).
    NoDestinations,
    /// Every destination has weight 0 (draining).
    AllDrained {
        /// How many there are.
        destinations: usize,
    },
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::NoDestinations => f.write_str("no usable destination (it has none)"),
            Unusable::AllDrained { destinations } => write!(
                f,
                "no usable destination ({destinations} destination(s), all with weight 0)"
            ),
        }
    }
}

/// THE decision whether a load balancer can take new flows: the number of
/// its usable destinations, or why it has none. A destination is usable
/// when it is Available (only Available interfaces become destinations)
/// and has weight > 0. Active health checks add their verdict here, and
/// only here.
pub fn usable_destinations(destinations: &[Destination]) -> Result<usize, Unusable> {
    match destinations.iter().filter(|d| d.weight > 0).count() {
        0 if destinations.is_empty() => Err(Unusable::NoDestinations),
        0 => Err(Unusable::AllDrained {
            destinations: destinations.len(),
        }),
        n => Ok(n),
    }
}

/// One VIP and the announcer's verdict on it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct VipPlan {
    address: IpAddr,
    load_balancer: String,
    pool: Option<String>,
    route: bird::Route,
    /// `None`: announce it.
    why_not: Option<String>,
}

/// What the announcer knows and holds.
#[derive(Debug)]
struct Inner {
    enabled: bool,
    dataplane_ready: bool,
    shutting_down: bool,
    stopping: bool,
    resolved: Resolved,
    /// Per load balancer, its destinations that health checks took out of
    /// `resolved` (to say so when that leaves none).
    unhealthy: BTreeMap<String, usize>,
    pools: Vec<PoolSpec>,
    bird: BirdState,
}

/// The managed BIRD as the announcer sees it.
#[derive(Debug, Default)]
struct BirdState {
    pid: Option<u32>,
    restarts: u64,
    /// The configuration text BIRD accepted and runs.
    running_config: Option<String>,
    /// The VIPs in that configuration.
    announced: BTreeSet<IpAddr>,
    last_error: Option<String>,
}

/// The announcer of one lbfwd. Cheap to share; every method may be called
/// from any thread.
#[derive(Debug)]
pub struct Announcer {
    bgp: Option<Bgp>,
    inner: Mutex<Inner>,
    wake: Condvar,
    supervisor: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Layer-2 announcement (`[l2]`), attached once the dataplane exists.
    l2: std::sync::OnceLock<Arc<crate::l2::L2>>,
}

impl Announcer {
    /// [`new`](Self::new), then [`start_bird`](Self::start_bird).
    pub fn start(
        settings: &Settings,
        resolved: &Resolved,
        pools: &[PoolSpec],
    ) -> Result<Arc<Announcer>, AnnounceError> {
        let announcer = Announcer::new(settings, resolved, pools);
        announcer.start_bird()?;
        Ok(announcer)
    }

    /// The announcer for `settings` and the current state; no BIRD yet.
    pub fn new(settings: &Settings, resolved: &Resolved, pools: &[PoolSpec]) -> Arc<Announcer> {
        Arc::new(Announcer {
            bgp: settings.bgp.clone(),
            inner: Mutex::new(Inner {
                enabled: settings.announce.initially_on,
                dataplane_ready: false,
                shutting_down: false,
                stopping: false,
                resolved: resolved.clone(),
                unhealthy: BTreeMap::new(),
                pools: pools.to_vec(),
                bird: BirdState::default(),
            }),
            wake: Condvar::new(),
            supervisor: Mutex::new(None),
            l2: std::sync::OnceLock::new(),
        })
    }

    /// With `[bgp]`: starts lbfwd's BIRD and waits until it answers (an
    /// error carries BIRD's message), or starts keeping an operator-run
    /// BIRD's file. Nothing is announced before
    /// [`dataplane_ready`](Self::dataplane_ready).
    pub fn start_bird(self: &Arc<Self>) -> Result<(), AnnounceError> {
        let announcer = self;
        if announcer.bgp.as_ref().is_some_and(|b| b.external.is_some()) {
            let handle = supervisor::keep_external(Arc::clone(announcer))?;
            *announcer
                .supervisor
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(handle);
        } else if let Some(bgp) = &announcer.bgp {
            supervisor::check_binaries(bgp)?;
            // The generated config may hold BGP passwords: owner only.
            std::fs::create_dir_all(&bgp.runtime_dir)
                .and_then(|()| {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(
                        &bgp.runtime_dir,
                        std::fs::Permissions::from_mode(0o700),
                    )
                })
                .map_err(|source| AnnounceError::RuntimeDir {
                    path: bgp.runtime_dir.clone(),
                    source,
                })?;
            let handle = supervisor::start(Arc::clone(announcer))?;
            *announcer
                .supervisor
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(handle);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The time to keep forwarding after the withdrawal on SIGTERM (`None`
    /// without `[bgp]`: nothing to wait for).
    pub fn shutdown_delay(&self) -> Option<Duration> {
        self.bgp.as_ref().map(|b| b.shutdown_delay)
    }

    /// Attaches layer-2 announcement: from now on it answers for the VIPs
    /// whenever they are announced.
    pub fn attach_l2(&self, l2: Arc<crate::l2::L2>) {
        let _ = self.l2.set(l2);
        let inner = self.lock();
        self.apply_l2(&inner);
    }

    /// The layer-2 counters and state, when `[l2]` is configured.
    pub fn l2_status(&self) -> Option<lbfwd_control::announce::L2Status> {
        self.l2.get().map(|l| l.status())
    }

    /// Whether layer-2 announcement answers for the VIPs of this plan, and
    /// which (those whose load balancer has a usable destination).
    fn apply_l2(&self, inner: &Inner) {
        let Some(l2) = self.l2.get() else { return };
        let on = inner.enabled && !inner.shutting_down && inner.dataplane_ready;
        let vips = inner
            .resolved
            .load_balancers
            .iter()
            .filter(|lb| usable_destinations(&lb.destinations).is_ok())
            .flat_map(|lb| lb.ips.iter().map(|ip| ip.addr))
            .collect();
        l2.set(on, vips);
    }

    /// The dataplane forwards: VIPs may be announced from now on.
    pub fn dataplane_ready(&self) {
        let mut inner = self.lock();
        inner.dataplane_ready = true;
        let _ = self.apply(&mut inner);
    }

    /// A new state was published: announce and withdraw accordingly. An
    /// error is BIRD's refusal; the running announcement then stays as it
    /// was. `unhealthy`: per load balancer, how many destinations health
    /// checks removed from `resolved`.
    pub fn update(
        &self,
        resolved: &Resolved,
        unhealthy: &BTreeMap<String, usize>,
        pools: &[PoolSpec],
    ) -> Result<(), String> {
        let mut inner = self.lock();
        inner.resolved = resolved.clone();
        inner.unhealthy = unhealthy.clone();
        inner.pools = pools.to_vec();
        self.apply(&mut inner)
    }

    /// `lbctl announce on|off`.
    pub fn set_enabled(&self, on: bool) -> Result<AnnounceStatus, String> {
        {
            let mut inner = self.lock();
            inner.enabled = on;
            self.apply(&mut inner)?;
        }
        Ok(self.status())
    }

    /// SIGTERM: withdraw everything (the dataplane keeps forwarding).
    pub fn begin_shutdown(&self) {
        let mut inner = self.lock();
        inner.shutting_down = true;
        if let Err(e) = self.apply(&mut inner) {
            eprintln!("lbfwd: announce: cannot withdraw before stopping: {e}");
        }
    }

    /// Stops BIRD (its sessions close with a Cease) and the supervisor.
    pub fn stop(&self) {
        {
            let mut inner = self.lock();
            inner.stopping = true;
        }
        self.wake.notify_all();
        let handle = self
            .supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        if let Some(l2) = self.l2.get() {
            l2.stop();
        }
    }

    fn plan(&self, inner: &Inner) -> Vec<VipPlan> {
        let mut out = Vec::new();
        for lb in &inner.resolved.load_balancers {
            let usable = usable_destinations(&lb.destinations);
            for ip in &lb.ips {
                let pool = ip
                    .pool
                    .as_deref()
                    .and_then(|name| inner.pools.iter().find(|p| p.name == name));
                let base = self
                    .bgp
                    .as_ref()
                    .map(|b| b.attributes.clone())
                    .unwrap_or_default();
                let attributes = match pool {
                    Some(p) => p.bgp.attributes(&base),
                    None => base,
                };
                let family_session = self.bgp.as_ref().filter(|b| b.external.is_none()).map(|b| {
                    b.peers
                        .iter()
                        .any(|p| p.address.is_ipv4() == ip.addr.is_ipv4())
                });
                let why_not = if inner.shutting_down {
                    Some("lbfwd is shutting down".to_string())
                } else if !inner.enabled {
                    Some("announcing is off (lbctl announce on)".to_string())
                } else if self.bgp.is_none() && self.l2.get().is_none() {
                    Some("no announcement method is configured ([bgp], [l2])".to_string())
                } else if self.bgp.is_some() && pool.is_some_and(|p| !p.bgp.announce) {
                    Some(format!(
                        "pool {:?} has bgp.announce = false",
                        ip.pool.as_deref().unwrap_or_default()
                    ))
                } else if family_session == Some(false) {
                    Some(format!(
                        "no {} BGP peer",
                        if ip.addr.is_ipv4() { "IPv4" } else { "IPv6" }
                    ))
                } else if let (Err(u), Some(n)) = (&usable, inner.unhealthy.get(&lb.name)) {
                    Some(match u {
                        Unusable::NoDestinations => {
                            format!("no usable destination ({n} destination(s), all unhealthy)")
                        }
                        Unusable::AllDrained { destinations } => format!(
                            "no usable destination ({n} unhealthy, {destinations} with weight 0)"
                        ),
                    })
                } else if let Err(u) = &usable {
                    Some(u.to_string())
                } else if !inner.dataplane_ready {
                    Some("the dataplane is not forwarding yet".to_string())
                } else {
                    None
                };
                out.push(VipPlan {
                    address: ip.addr,
                    load_balancer: lb.name.clone(),
                    pool: ip.pool.clone(),
                    route: bird::Route {
                        address: ip.addr,
                        attributes,
                    },
                    why_not,
                });
            }
        }
        out.sort_by_key(|v| v.address);
        out
    }

    /// The BIRD configuration for the current plan (for an operator-run
    /// BIRD: the file it includes).
    fn bird_config(&self, inner: &Inner) -> Option<(String, BTreeSet<IpAddr>)> {
        let bgp = self.bgp.as_ref()?;
        let plan = self.plan(inner);
        let routes: Vec<bird::Route> = plan
            .iter()
            .filter(|v| v.why_not.is_none())
            .map(|v| v.route.clone())
            .collect();
        let set = routes.iter().map(|r| r.address).collect();
        let text = match &bgp.external {
            None => bird::config(bgp, &routes),
            Some(_) => format!(
                "# Written by lbfwd (the VIPs it announces); included by this BIRD's config.\n{}",
                bird::static_protocols(&routes)
            ),
        };
        Some((text, set))
    }

    /// Writes the include file of an operator-run BIRD and has it re-read
    /// its configuration; on a refusal the previous file is put back.
    fn apply_external(
        &self,
        inner: &mut Inner,
        ext: &lbfwd_config::bgp::ExternalBird,
        text: String,
    ) -> Result<(), String> {
        let old = std::fs::read_to_string(&ext.include).ok();
        let tmp = ext.include.with_extension("lbfwd-tmp");
        let write = |content: &str| {
            std::fs::write(&tmp, content)
                .and_then(|()| std::fs::rename(&tmp, &ext.include))
                .map_err(|e| format!("cannot write {}: {e}", ext.include.display()))
        };
        write(&text)?;
        match birdc::configure_main(&ext.socket, BIRDC_TIMEOUT) {
            Ok(_) => {
                inner.bird.running_config = Some(text);
                Ok(())
            }
            Err(e) => {
                match &old {
                    Some(o) => {
                        let _ = write(o);
                    }
                    None => {
                        let _ = std::fs::remove_file(&ext.include);
                    }
                }
                Err(e.to_string())
            }
        }
    }

    /// Brings BIRD to the current plan (nothing while BIRD is down: the
    /// supervisor applies it when BIRD is back).
    fn apply(&self, inner: &mut Inner) -> Result<(), String> {
        self.apply_l2(inner);
        let (Some(bgp), Some((text, set))) = (&self.bgp, self.bird_config(inner)) else {
            return Ok(());
        };
        let external = bgp.external.is_some();
        if (!external && inner.bird.pid.is_none())
            || inner.bird.running_config.as_deref() == Some(&text)
        {
            return Ok(());
        }
        let paths = supervisor::Paths::new(bgp);
        let result = match &bgp.external {
            Some(ext) => self.apply_external(inner, ext, text.clone()),
            None => self.apply_managed(&paths, &text),
        };
        self.applied(inner, result, text, set, &paths)
    }

    fn apply_managed(&self, paths: &supervisor::Paths, text: &str) -> Result<(), String> {
        std::fs::write(&paths.candidate, text)
            .map_err(|e| format!("cannot write {}: {e}", paths.candidate.display()))
            .and_then(|()| {
                birdc::configure(&paths.socket, &paths.candidate, BIRDC_TIMEOUT)
                    .map_err(|e| e.to_string())
            })
            .and_then(|_| {
                std::fs::rename(&paths.candidate, &paths.config)
                    .map_err(|e| format!("cannot rename to {}: {e}", paths.config.display()))
            })
    }

    fn applied(
        &self,
        inner: &mut Inner,
        result: Result<(), String>,
        text: String,
        set: BTreeSet<IpAddr>,
        paths: &supervisor::Paths,
    ) -> Result<(), String> {
        let file = match self.bgp.as_ref().and_then(|b| b.external.as_ref()) {
            Some(ext) => ext.include.display().to_string(),
            None => paths.candidate.display().to_string(),
        };
        match result {
            Ok(()) => {
                let added: Vec<String> = set
                    .difference(&inner.bird.announced)
                    .map(|a| a.to_string())
                    .collect();
                let removed: Vec<String> = inner
                    .bird
                    .announced
                    .difference(&set)
                    .map(|a| a.to_string())
                    .collect();
                if !added.is_empty() {
                    eprintln!("lbfwd: announce: announcing {}", added.join(", "));
                }
                if !removed.is_empty() {
                    eprintln!("lbfwd: announce: withdrawing {}", removed.join(", "));
                }
                inner.bird.running_config = Some(text);
                inner.bird.announced = set;
                inner.bird.last_error = None;
                Ok(())
            }
            Err(e) => {
                let message = format!(
                    "BIRD refused the new configuration {file} (the running announcement stays as it was): {e}"
                );
                if inner.bird.last_error.as_deref() != Some(&message) {
                    eprintln!("lbfwd: announce: {message}");
                }
                inner.bird.last_error = Some(message.clone());
                Err(message)
            }
        }
    }

    /// `lbctl announce`: per VIP and per peer (read from BIRD).
    pub fn status(&self) -> AnnounceStatus {
        let l2 = self.l2.get().map(|l| l.status());
        let l2_on = l2.as_ref().is_some_and(|s| s.answering);
        let external = self.bgp.as_ref().is_some_and(|b| b.external.is_some());
        let (vips, enabled, shutting_down, bird_pid, restarts, last_error) = {
            let inner = self.lock();
            let vips: Vec<VipAnnouncement> = self
                .plan(&inner)
                .into_iter()
                .map(|v| {
                    let on_l2 = l2_on && v.why_not.is_none();
                    let announced = match self.bgp {
                        Some(_) => inner.bird.announced.contains(&v.address),
                        None => on_l2,
                    };
                    let reason = match (&v.why_not, announced) {
                        (_, true) => None,
                        (Some(w), false) => Some(w.clone()),
                        (None, false) => Some(match (&inner.bird.last_error, inner.bird.pid) {
                            (Some(e), _) => e.clone(),
                            (None, None) if !external => {
                                "BIRD is not running (lbfwd restarts it)".into()
                            }
                            (None, _) => "not yet in BIRD's configuration".into(),
                        }),
                    };
                    VipAnnouncement {
                        address: v.address,
                        load_balancer: v.load_balancer,
                        pool: v.pool,
                        announced,
                        l2: on_l2,
                        reason,
                    }
                })
                .collect();
            (
                vips,
                inner.enabled,
                inner.shutting_down,
                inner.bird.pid,
                inner.bird.restarts,
                inner.bird.last_error.clone(),
            )
        };
        let bgp = self.bgp.as_ref().map(|b| {
            let paths = supervisor::Paths::new(b);
            let socket = b.external.as_ref().map_or(&paths.socket, |e| &e.socket);
            let (protocols, error) = match (bird_pid, &b.external) {
                (None, None) => (Vec::new(), Some("BIRD is not running".to_string())),
                _ => match birdc::command(socket, "show protocols all", BIRDC_TIMEOUT) {
                    Ok(lines) => (birdc::parse_protocols(&lines), None),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                },
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let mut peers: Vec<PeerStatus> = b
                .peers
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let name = bird::peer_name(i);
                    let info = protocols.iter().find(|x| x.name == name);
                    PeerStatus {
                        name,
                        address: p.address,
                        asn: p.asn,
                        state: info
                            .and_then(|x| x.bgp_state.clone())
                            .unwrap_or_else(|| "unknown".into()),
                        since_secs: info
                            .and_then(|x| birdc::parse_utc(&x.since))
                            .map(|t| now.saturating_sub(t)),
                        prefixes_sent: info.and_then(|x| x.exported),
                        last_error: info
                            .and_then(|x| x.last_error.clone())
                            .or_else(|| error.clone()),
                        bfd: p.bfd,
                    }
                })
                .collect();
            if b.external.is_some() {
                // The operator's sessions: every BGP protocol of its BIRD.
                peers = protocols
                    .iter()
                    .filter(|x| x.proto == "BGP")
                    .filter_map(|x| {
                        Some(PeerStatus {
                            name: x.name.clone(),
                            address: x.neighbor_address?,
                            asn: x.neighbor_as.unwrap_or(0),
                            state: x.bgp_state.clone().unwrap_or_else(|| "unknown".into()),
                            since_secs: birdc::parse_utc(&x.since).map(|t| now.saturating_sub(t)),
                            prefixes_sent: x.exported,
                            last_error: x.last_error.clone(),
                            bfd: false,
                        })
                    })
                    .collect();
            }
            BgpStatus {
                external_socket: b.external.as_ref().map(|e| e.socket.clone()),
                asn: b.asn,
                router_id: b.router_id.to_string(),
                bird_pid,
                bird_restarts: restarts,
                last_error: last_error.or(error),
                peers,
            }
        });
        AnnounceStatus {
            enabled,
            shutting_down,
            vips,
            bgp,
            l2,
        }
    }
}

/// Makes SIGINT and SIGTERM withdraw every VIP first, keep forwarding for
/// the shutdown delay (so the routers move traffic to other appliances),
/// then set `shutdown`; a second signal during the delay stops at once.
pub fn install_graceful_shutdown(
    announcer: &Arc<Announcer>,
    shutdown: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let a = Arc::clone(announcer);
    std::thread::Builder::new()
        .name("lbfwd-shutdown".into())
        .spawn(move || {
            let Some(signal) = signals.forever().next() else {
                return;
            };
            let delay = a.shutdown_delay().unwrap_or_default();
            eprintln!(
                "lbfwd: signal {signal}: withdrawing every VIP, forwarding {}s more, then stopping",
                delay.as_secs()
            );
            a.begin_shutdown();
            let deadline = std::time::Instant::now() + delay;
            while std::time::Instant::now() < deadline {
                if signals.pending().next().is_some() {
                    eprintln!("lbfwd: second signal: stopping now");
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
        })?;
    Ok(())
}

/// Tells the announcer that the dataplane forwards once every worker runs
/// (it announces nothing before: traffic would find no worker).
pub fn announce_when_running(
    announcer: &Arc<Announcer>,
    workers: Arc<[crate::worker::WorkerStats]>,
) {
    let a = Arc::clone(announcer);
    let _ = std::thread::Builder::new()
        .name("lbfwd-announce-ready".into())
        .spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while !workers.iter().all(|w| w.is_running()) {
                if std::time::Instant::now() > deadline {
                    eprintln!("lbfwd: announce: the workers did not all start; announcing nothing");
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            a.dataplane_ready();
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(name: &str, weight: u32) -> Destination {
        Destination {
            name: name.into(),
            uid: String::new(),
            underlay: "10.0.3.11".parse().unwrap(),
            mac: None,
            weight,
        }
    }

    #[test]
    fn usable_means_a_destination_with_weight() {
        assert_eq!(usable_destinations(&[]), Err(Unusable::NoDestinations));
        assert_eq!(
            usable_destinations(&[dest("a", 0), dest("b", 0)]),
            Err(Unusable::AllDrained { destinations: 2 })
        );
        assert_eq!(usable_destinations(&[dest("a", 0), dest("b", 1)]), Ok(1));
    }
}
