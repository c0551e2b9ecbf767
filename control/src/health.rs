//! Health of load balancer destinations as the control API shows it
//! (`lbctl health`, the `health` field of destinations in `lbctl lb get` /
//! `lbctl routing get`, and of `lbctl stats` and `lbctl status`).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A destination's health state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// No result yet (since start, since it was added, or since its check
    /// changed). Counts as usable: see the daemon's health module.
    Unknown,
    /// Passed its last probe and, coming from unhealthy, `rise` in a row.
    Healthy,
    /// Failed `fall` probes in a row; out of the Maglev table.
    Unhealthy,
}

impl HealthState {
    /// The lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        }
    }
}

/// Probe counters of one destination since it got its check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProbeCounters {
    /// Probes sent.
    pub sent: u64,
    /// Probes that passed.
    pub passed: u64,
    /// Probes that failed (refused, timed out, wrong answer).
    pub failed: u64,
    /// State changes (unknown -> healthy included).
    pub state_changes: u64,
}

/// The health of one destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DestinationHealth {
    /// Its state.
    pub state: HealthState,
    /// Since when (seconds since the Unix epoch).
    pub since_unix: u64,
    /// The check's kind (`tcp`, `http`, `encap`).
    pub kind: String,
    /// Why the last failed probe failed, when one failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// When it failed (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_unix: Option<u64>,
    /// Whether new flows may go to it: in the Maglev table now (weight > 0,
    /// not unhealthy, or all unhealthy and the load balancer fails open).
    pub in_table: bool,
    /// Probe counters.
    pub probes: ProbeCounters,
}

/// One row of `lbctl health`: a destination of a load balancer with a
/// health check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TargetHealth {
    /// The load balancer.
    pub load_balancer: String,
    /// The destination's name.
    pub name: String,
    /// Its uid (may be empty).
    pub uid: String,
    /// Its underlay address (what tcp and http probes connect to).
    pub underlay: IpAddr,
    /// Its weight (0: draining).
    pub weight: u32,
    /// Its health.
    pub health: DestinationHealth,
}

/// Totals over every checked destination, for `lbctl status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSummary {
    /// Destinations with a health check.
    pub targets: usize,
    /// Of them healthy.
    pub healthy: usize,
    /// Of them unhealthy.
    pub unhealthy: usize,
    /// Of them without a result yet.
    pub unknown: usize,
    /// Load balancers with a check and no usable destination (every one
    /// with weight > 0 unhealthy).
    pub load_balancers_down: usize,
}
