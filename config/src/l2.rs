//! `[l2]`: layer-2 announcement of the VIPs. While announcing, lbfwd answers
//! ARP requests and IPv6 neighbour solicitations for its VIPs on these
//! interfaces, and on turning announcing on sends gratuitous ARP and
//! unsolicited neighbour advertisements on a schedule (MetalLB's by
//! default: at once, then every 1.1 s for 5 s).
//!
//! Layer 2 (input), above the problems: it uses only [`crate::problem`].

use crate::problem::Problem;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[l2]` as written in the TOML file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L2Section {
    /// Dataplane interfaces on which lbfwd answers ARP and NDP for the VIPs
    /// (each must be one of `[dataplane] interfaces`).
    pub interfaces: Vec<String>,
    /// Interval between gratuitous packets after announcing turns on (ms).
    /// The default, 1100, is past the Linux neighbour `locktime` (1 s), so
    /// a neighbour that just learnt another MAC takes each repeat.
    #[serde(default = "default_interval")]
    pub gratuitous_interval_ms: u64,
    /// How long the gratuitous packets are repeated after announcing turns
    /// on (ms): one at once, then one every interval until this has passed.
    #[serde(default = "default_duration")]
    pub gratuitous_duration_ms: u64,
    /// Resend one gratuitous packet per VIP this often while announcing (s);
    /// 0 (default): never (neighbours ask when their entry goes stale).
    #[serde(default)]
    pub refresh_s: u64,
}

fn default_interval() -> u64 {
    1100
}

fn default_duration() -> u64 {
    5000
}

/// Validated `[l2]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2 {
    /// Interfaces to answer on (dataplane interfaces, no duplicates).
    pub interfaces: Vec<String>,
    /// Gratuitous repeat interval.
    pub gratuitous_interval: Duration,
    /// How long to repeat.
    pub gratuitous_duration: Duration,
    /// Periodic refresh (`None`: off).
    pub refresh: Option<Duration>,
}

impl L2 {
    /// The offsets from the moment announcing turned on at which a
    /// gratuitous packet goes out: 0, then every interval while below the
    /// duration (0 ms, 1.1 s, 2.2 s, 3.3 s, 4.4 s by default).
    pub fn schedule(&self) -> Vec<Duration> {
        let mut out = vec![Duration::ZERO];
        let step = self.gratuitous_interval;
        let mut at = step;
        while !step.is_zero() && at < self.gratuitous_duration {
            out.push(at);
            at += step;
        }
        out
    }
}

/// Validates `[l2]` against the dataplane's interfaces and backend facts.
/// `dataplane_interfaces` are `[dataplane] interfaces`; `two_armed` tells
/// whether `[dataplane] egress_interface` is set. Every problem goes to
/// `err` with its field path.
pub fn validate_l2(
    s: &L2Section,
    dataplane_interfaces: &[String],
    egress_interface: Option<&str>,
    err: &mut dyn FnMut(&str, Problem),
) -> Option<L2> {
    let mut ok = true;
    if s.interfaces.is_empty() {
        err(
            "l2.interfaces",
            Problem::Setting("[l2] needs at least one interface to answer ARP and NDP on".into()),
        );
        ok = false;
    }
    for (i, name) in s.interfaces.iter().enumerate() {
        let path = format!("l2.interfaces[{i}]");
        if s.interfaces[..i].contains(name) {
            err(
                &path,
                Problem::Setting(format!("interface {name:?} is listed twice")),
            );
            ok = false;
        } else if !dataplane_interfaces.contains(name) {
            err(
                &path,
                Problem::Setting(format!(
                    "{name:?} is not a dataplane interface ([dataplane] interfaces = {dataplane_interfaces:?}): \
                     lbfwd answers ARP and NDP only where its workers receive"
                )),
            );
            ok = false;
        } else if let Some(out) = egress_interface.filter(|out| *out != name) {
            err(
                &path,
                Problem::Setting(format!(
                    "[l2] needs a one-armed dataplane: with egress_interface = {out:?} the answers \
                     for {name:?} would leave through {out:?}"
                )),
            );
            ok = false;
        }
    }
    if !(100..=60_000).contains(&s.gratuitous_interval_ms) {
        err(
            "l2.gratuitous_interval_ms",
            Problem::Setting(format!(
                "gratuitous_interval_ms {} is outside 100-60000",
                s.gratuitous_interval_ms
            )),
        );
        ok = false;
    }
    if s.gratuitous_duration_ms > 600_000 {
        err(
            "l2.gratuitous_duration_ms",
            Problem::Setting(format!(
                "gratuitous_duration_ms {} is above 600000",
                s.gratuitous_duration_ms
            )),
        );
        ok = false;
    }
    if s.refresh_s > 86_400 {
        err(
            "l2.refresh_s",
            Problem::Setting(format!("refresh_s {} is above 86400", s.refresh_s)),
        );
        ok = false;
    }
    ok.then(|| L2 {
        interfaces: s.interfaces.clone(),
        gratuitous_interval: Duration::from_millis(s.gratuitous_interval_ms),
        gratuitous_duration: Duration::from_millis(s.gratuitous_duration_ms),
        refresh: (s.refresh_s > 0).then(|| Duration::from_secs(s.refresh_s)),
    })
}
