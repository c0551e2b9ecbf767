//! Active health checks of load balancer destinations, off the worker
//! cores.
//!
//! One control-side thread ([`prober`]) probes every destination of every
//! load balancer that has a `health_check` (tcp connect, http GET, or a
//! probe through lbfwd's own encapsulation to the VIP, [`encap`]), all
//! probes of all targets multiplexed on one `mio` poll: 1000 targets every
//! 500 ms cost one thread, no per-probe thread.
//!
//! # States and what they do
//!
//! - `unknown`: no result yet (daemon start, destination added, its
//!   underlay changed). **Counts as usable**: a restart of lbfwd, a reload
//!   or an added check must not empty the Maglev tables (nor withdraw the
//!   VIPs) for `rise x interval` while every target is in fact fine; a dead
//!   target is out after `fall` failures, as from healthy (HAProxy starts
//!   servers the same way). The first pass makes it `healthy` (no table
//!   change).
//! - `healthy` -> `unhealthy` after `fall` failures in a row; `unhealthy`
//!   -> `healthy` after `rise` passes in a row. One lost probe moves
//!   nothing (with `fall >= 2`).
//! - An unhealthy destination leaves its load balancer's routing before the
//!   tables are built ([`HealthMonitor::effective`]): its Maglev slots go to
//!   the others (only its flows move) and its existing flows are picked
//!   again (their target is gone from the tables). When it comes back only
//!   the flows Maglev now maps to it move. Every state change that changes
//!   a routing is one publication of new tables, through the daemon's usual
//!   path.
//! - Weight 0 (drain) is independent of health: a drained target is probed
//!   and shown, takes no new flows either way, keeps its flows while it is
//!   not unhealthy.
//! - Every destination with weight > 0 unhealthy: `all_unhealthy =
//!   "fail_open"` (default) publishes every destination as if there were no
//!   check; `"drop"` publishes none of them, and the VIP's packets are
//!   dropped and counted as `no_target`. Either way
//!   [`HealthMonitor::usable_destinations`] is empty, which is what the
//!   announcer withdraws the VIP on.

pub mod encap;
pub mod prober;

use lbfwd_config::health::{AllUnhealthy, HealthCheck, HealthCheckSpec};
use lbfwd_config::{DesiredState, Destination, Resolved, ResolvedLoadBalancer};
use lbfwd_control::health::{
    DestinationHealth, HealthState, HealthSummary, ProbeCounters, TargetHealth,
};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Errors of starting the health checker.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The poll or a socket could not be created.
    #[error("health checker: {what}: {source}")]
    Io {
        /// What was being set up.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A destination of a load balancer: (load balancer, name, uid).
pub type TargetKey = (String, String, String);

/// One destination's health record.
#[derive(Clone, Debug)]
pub struct Record {
    /// Where probes go (tcp, http) and the tunnel ends (encap).
    pub underlay: IpAddr,
    /// Inner MAC (VXLAN; encap probes).
    pub mac: Option<[u8; 6]>,
    /// Weight (0: draining).
    pub weight: u32,
    /// The state.
    pub state: HealthState,
    /// Since when.
    pub since: SystemTime,
    /// Passes in a row.
    pub passes: u32,
    /// Failures in a row.
    pub failures: u32,
    /// The last failure's reason and time.
    pub last_failure: Option<(String, SystemTime)>,
    /// Counters.
    pub probes: ProbeCounters,
}

impl Record {
    fn new(d: &Destination, now: SystemTime) -> Self {
        Record {
            underlay: d.underlay,
            mac: d.mac.map(|m| m.0),
            weight: d.weight,
            state: HealthState::Unknown,
            since: now,
            passes: 0,
            failures: 0,
            last_failure: None,
            probes: ProbeCounters::default(),
        }
    }

    /// Whether this record keeps its target in the table (unknown and
    /// healthy do).
    pub fn usable_state(&self) -> bool {
        self.state != HealthState::Unhealthy
    }

    /// Applies one probe result with the rise/fall hysteresis; returns the
    /// old and new state when the state changed.
    pub fn record(
        &mut self,
        result: Result<(), String>,
        rise: u32,
        fall: u32,
        now: SystemTime,
    ) -> Option<(HealthState, HealthState)> {
        let old = self.state;
        match result {
            Ok(()) => {
                self.probes.passed += 1;
                self.passes = self.passes.saturating_add(1);
                self.failures = 0;
                let to_healthy = match old {
                    HealthState::Unknown => true,
                    HealthState::Unhealthy => self.passes >= rise,
                    HealthState::Healthy => false,
                };
                if to_healthy {
                    self.state = HealthState::Healthy;
                }
            }
            Err(why) => {
                self.probes.failed += 1;
                self.failures = self.failures.saturating_add(1);
                self.passes = 0;
                self.last_failure = Some((why, now));
                if old != HealthState::Unhealthy && self.failures >= fall {
                    self.state = HealthState::Unhealthy;
                }
            }
        }
        (self.state != old).then(|| {
            self.since = now;
            self.probes.state_changes += 1;
            (old, self.state)
        })
    }
}

/// A load balancer's check and the records of its destinations.
#[derive(Clone, Debug)]
pub struct LbHealth {
    /// The check.
    pub check: HealthCheck,
    /// The network's VNI (encap probes).
    pub vni: u32,
    /// The VIPs (encap probes go to the first one lbfwd has an underlay
    /// source of the same family for).
    pub vips: Vec<IpAddr>,
    /// Records by (name, uid).
    pub targets: BTreeMap<(String, String), Record>,
}

impl LbHealth {
    /// Whether a destination may take new flows by health and weight.
    fn usable(&self, d: &Destination) -> bool {
        d.weight > 0
            && self
                .targets
                .get(&(d.name.clone(), d.uid.clone()))
                .is_none_or(Record::usable_state)
    }
}

/// Every health record; the prober writes results, the daemon reads it.
#[derive(Debug, Default)]
pub struct Book {
    /// Grows on every [`HealthMonitor::sync`] (the prober rebuilds its
    /// schedule when it sees a new one).
    pub generation: u64,
    /// By load balancer name.
    pub lbs: BTreeMap<String, LbHealth>,
}

/// Called by the prober after results changed whether some destination is
/// usable: rebuild and publish the tables (the daemon's path).
pub type OnChange = Box<dyn Fn() + Send + Sync>;

/// The health checker's shared state.
pub struct HealthMonitor {
    book: Mutex<Book>,
    prober: Mutex<Option<prober::ProberHandle>>,
    listeners: Mutex<Vec<OnChange>>,
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor").finish_non_exhaustive()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Default for HealthMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthMonitor {
    /// A monitor with no checks and no prober running.
    pub fn new() -> Self {
        HealthMonitor {
            book: Mutex::new(Book::default()),
            prober: Mutex::new(None),
            listeners: Mutex::new(Vec::new()),
        }
    }

    /// The records, locked.
    pub fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the checks and destinations of `state` / `resolved`: new
    /// destinations start `unknown`, known ones keep their state (also when
    /// only their weight or the check's timing changed), a destination
    /// whose underlay changed starts over, removed ones are forgotten.
    pub fn sync(&self, state: &DesiredState, resolved: &Resolved) {
        let now = SystemTime::now();
        let mut book = self.book();
        let mut next = BTreeMap::new();
        // The checks by load balancer name: one hash lookup per resolved
        // load balancer (a by-name search of the state for each was
        // quadratic: half of a change with 10,000 load balancers).
        let checks: HashMap<&str, &HealthCheckSpec> = state
            .load_balancers
            .iter()
            .filter_map(|l| Some((l.name.as_str(), l.health_check.as_deref()?)))
            .collect();
        for lb in &resolved.load_balancers {
            let Some(check) = checks.get(lb.name.as_str()).and_then(|c| c.resolve().ok()) else {
                continue;
            };
            let old = book.lbs.remove(&lb.name);
            let kind_kept = old
                .as_ref()
                .is_some_and(|o| o.check.probe.kind() == check.probe.kind());
            let mut old_targets = old.map(|o| o.targets).unwrap_or_default();
            let targets = lb
                .destinations
                .iter()
                .map(|d| {
                    let key = (d.name.clone(), d.uid.clone());
                    let record = match old_targets.remove(&key) {
                        Some(mut r) if kind_kept && r.underlay == d.underlay => {
                            r.weight = d.weight;
                            r.mac = d.mac.map(|m| m.0);
                            r
                        }
                        _ => Record::new(d, now),
                    };
                    (key, record)
                })
                .collect();
            next.insert(
                lb.name.clone(),
                LbHealth {
                    check,
                    vni: lb.vni,
                    vips: lb.ips.iter().map(|i| i.addr).collect(),
                    targets,
                },
            );
        }
        book.lbs = next;
        book.generation += 1;
        drop(book);
        if let Some(p) = self
            .prober
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            p.wake();
        }
    }

    /// `resolved` as the tables should be built from it: each load
    /// balancer with a check without its unhealthy destinations (all of
    /// them kept when every destination with weight > 0 is unhealthy and
    /// the check fails open).
    pub fn effective(&self, resolved: &Resolved) -> Resolved {
        let book = self.book();
        let mut out = resolved.clone();
        for lb in &mut out.load_balancers {
            let Some(h) = book.lbs.get(&lb.name) else {
                continue;
            };
            let none_usable = !lb.destinations.iter().any(|d| h.usable(d));
            if none_usable && h.check.all_unhealthy == AllUnhealthy::FailOpen {
                continue;
            }
            lb.destinations.retain(|d| {
                h.targets
                    .get(&(d.name.clone(), d.uid.clone()))
                    .is_none_or(Record::usable_state)
            });
        }
        out
    }

    /// `resolved` with every unhealthy destination removed, fail-open or
    /// not: what the announcer plans on (a load balancer whose every
    /// destination with weight > 0 is unhealthy has no usable destination
    /// there, so its VIPs are withdrawn).
    pub fn without_unhealthy(&self, resolved: &Resolved) -> Resolved {
        let book = self.book();
        let mut out = resolved.clone();
        for lb in &mut out.load_balancers {
            if let Some(h) = book.lbs.get(&lb.name) {
                lb.destinations.retain(|d| {
                    h.targets
                        .get(&(d.name.clone(), d.uid.clone()))
                        .is_none_or(Record::usable_state)
                });
            }
        }
        out
    }

    /// Per load balancer, how many of its destinations with weight > 0 are
    /// unhealthy (those [`HealthMonitor::without_unhealthy`] removes): the
    /// announcer's reason when it withdraws a VIP for that.
    pub fn unhealthy_counts(&self, resolved: &Resolved) -> BTreeMap<String, usize> {
        let book = self.book();
        let mut out = BTreeMap::new();
        for lb in &resolved.load_balancers {
            if let Some(h) = book.lbs.get(&lb.name) {
                let n = lb
                    .destinations
                    .iter()
                    .filter(|d| {
                        d.weight > 0
                            && h.targets
                                .get(&(d.name.clone(), d.uid.clone()))
                                .is_some_and(|r| !r.usable_state())
                    })
                    .count();
                if n > 0 {
                    out.insert(lb.name.clone(), n);
                }
            }
        }
        out
    }

    /// The destinations of `lb` that can take new flows: Available (every
    /// resolved destination is), weight > 0, and not unhealthy. Empty means
    /// the VIPs of `lb` should not be announced (also when the dataplane
    /// fails open).
    pub fn usable_destinations<'a>(&self, lb: &'a ResolvedLoadBalancer) -> Vec<&'a Destination> {
        let book = self.book();
        let h = book.lbs.get(&lb.name);
        lb.destinations
            .iter()
            .filter(|d| match h {
                Some(h) => h.usable(d),
                None => d.weight > 0,
            })
            .collect()
    }

    /// The health of destination `name`/`uid` of `lb`, when it has a
    /// check.
    pub fn destination_health(&self, lb: &str, name: &str, uid: &str) -> Option<DestinationHealth> {
        let book = self.book();
        let h = book.lbs.get(lb)?;
        let r = h.targets.get(&(name.to_string(), uid.to_string()))?;
        Some(view(h, r, in_table(h, r, lb_all_down(h))))
    }

    /// Every checked destination, sorted by load balancer and destination.
    pub fn list(&self) -> Vec<TargetHealth> {
        let book = self.book();
        let mut out = Vec::new();
        for (lb, h) in &book.lbs {
            let all_down = lb_all_down(h);
            for ((name, uid), r) in &h.targets {
                out.push(TargetHealth {
                    load_balancer: lb.clone(),
                    name: name.clone(),
                    uid: uid.clone(),
                    underlay: r.underlay,
                    weight: r.weight,
                    health: view(h, r, in_table(h, r, all_down)),
                });
            }
        }
        out
    }

    /// Totals for `lbctl status`.
    pub fn summary(&self) -> HealthSummary {
        let book = self.book();
        let mut s = HealthSummary::default();
        for h in book.lbs.values() {
            for r in h.targets.values() {
                s.targets += 1;
                match r.state {
                    HealthState::Healthy => s.healthy += 1,
                    HealthState::Unhealthy => s.unhealthy += 1,
                    HealthState::Unknown => s.unknown += 1,
                }
            }
            if !h.targets.is_empty() && lb_all_down(h) {
                s.load_balancers_down += 1;
            }
        }
        s
    }

    /// Starts the prober thread (once); `on_change` is called from it after
    /// a state change that changes a routing.
    pub fn start(
        self: &Arc<Self>,
        underlay: crate::tables::UnderlayParams,
        on_change: OnChange,
    ) -> Result<(), HealthError> {
        let mut slot = self.prober.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(prober::spawn(Arc::clone(self), underlay, on_change)?);
        }
        Ok(())
    }

    /// Registers `f`, called from the prober thread after the tables were
    /// published for a health change (whenever
    /// [`HealthMonitor::usable_destinations`] may have changed): for the
    /// announcer, which withdraws a VIP without usable destinations.
    pub fn add_listener(&self, f: OnChange) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(f);
    }

    /// Calls every listener (the prober, after a publication).
    pub(crate) fn notify_listeners(&self) {
        for f in self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            f();
        }
    }

    /// Stops the prober thread and waits for it.
    pub fn stop(&self) {
        let handle = self.prober.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            h.stop();
        }
    }

    /// Applies results (from the prober); returns whether a routing
    /// changed. Each state change is logged once.
    pub fn apply_results(&self, results: Vec<(TargetKey, Result<(), String>)>) -> bool {
        let now = SystemTime::now();
        let mut book = self.book();
        let mut routing_changed = false;
        for ((lb, name, uid), result) in results {
            let Some(h) = book.lbs.get_mut(&lb) else {
                continue;
            };
            let (rise, fall) = (h.check.rise, h.check.fall);
            let kind = h.check.probe.kind().as_str();
            let Some(r) = h.targets.get_mut(&(name.clone(), uid)) else {
                continue;
            };
            let why = result.as_ref().err().cloned();
            if let Some((from, to)) = r.record(result, rise, fall, now) {
                let reason = match (to, why) {
                    (HealthState::Unhealthy, Some(w)) => format!(" ({w})"),
                    _ => String::new(),
                };
                eprintln!(
                    "lbfwd: health: load balancer {lb:?} destination {name:?} ({}, {kind}): {} -> {}{reason}",
                    r.underlay,
                    from.as_str(),
                    to.as_str()
                );
                if from == HealthState::Unhealthy || to == HealthState::Unhealthy {
                    routing_changed = true;
                }
            }
        }
        routing_changed
    }

    /// Counts one probe sent.
    pub fn count_sent(&self, key: &TargetKey) {
        let mut book = self.book();
        if let Some(r) = book
            .lbs
            .get_mut(&key.0)
            .and_then(|h| h.targets.get_mut(&(key.1.clone(), key.2.clone())))
        {
            r.probes.sent += 1;
        }
    }
}

/// Every destination with weight > 0 is unhealthy (and there is one).
fn lb_all_down(h: &LbHealth) -> bool {
    let mut weighted = h.targets.values().filter(|r| r.weight > 0).peekable();
    weighted.peek().is_some() && weighted.all(|r| !r.usable_state())
}

fn in_table(h: &LbHealth, r: &Record, all_down: bool) -> bool {
    r.weight > 0
        && (r.usable_state() || (all_down && h.check.all_unhealthy == AllUnhealthy::FailOpen))
}

fn view(h: &LbHealth, r: &Record, in_table: bool) -> DestinationHealth {
    DestinationHealth {
        state: r.state,
        since_unix: unix(r.since),
        kind: h.check.probe.kind().as_str().to_string(),
        last_failure: r.last_failure.as_ref().map(|(w, _)| w.clone()),
        last_failure_unix: r.last_failure.as_ref().map(|(_, t)| unix(*t)),
        in_table,
        probes: r.probes,
    }
}

#[cfg(test)]
mod tests;
