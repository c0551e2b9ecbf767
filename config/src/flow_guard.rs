//! The new-flow flood guard's keys of `[flow]`: `new_flow_rate`,
//! `new_flow_burst`, `new_flow_excess`.
//!
//! Each worker admits at most `new_flow_rate` new flows per second into its
//! flow table (a token bucket `new_flow_burst` deep). A new flow above that
//! rate is still forwarded to its Maglev pick but not remembered
//! (`new_flow_excess = "forward"`, the default), or dropped (`"drop"`); the
//! flows already in the table are never evicted for it. The idea is
//! Katran's: a flood of new flows (random sources, SYNs) would otherwise
//! fill the table and evict established flows, which a routing change since
//! their start then moves to another target.
//!
//! Layer 2 (input), above the problems: it uses only [`crate::problem`].

use crate::problem::Problem;
use serde::{Deserialize, Serialize};

/// What happens to a new flow above `new_flow_rate` (`new_flow_excess`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewFlowExcess {
    /// Forwarded to its Maglev pick, not remembered in the flow table (the
    /// default): it works while the routing stays as it is.
    #[default]
    Forward,
    /// Dropped (counted as drop reason `new_flow_limit`).
    Drop,
}

impl NewFlowExcess {
    /// The name the config file uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            NewFlowExcess::Forward => "forward",
            NewFlowExcess::Drop => "drop",
        }
    }
}

/// Default `new_flow_rate`: Katran's default limit of new flows per second
/// per core.
pub const DEFAULT_NEW_FLOW_RATE: u64 = 125_000;
/// Largest `new_flow_rate` and `new_flow_burst`.
pub const MAX_NEW_FLOW_RATE: u64 = 100_000_000;

/// Serde default of `new_flow_rate`.
pub fn default_new_flow_rate() -> u64 {
    DEFAULT_NEW_FLOW_RATE
}

/// Validated guard keys of `[flow]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowGuard {
    /// New flows admitted into the flow table per second per worker; 0: no
    /// limit (the guard is off).
    pub rate: u32,
    /// Depth of the token bucket: new flows admitted at once after a quiet
    /// time (at least 1 while the guard is on).
    pub burst: u32,
    /// What happens to a new flow above the rate.
    pub excess: NewFlowExcess,
}

impl FlowGuard {
    /// The guard switched off (every new flow is remembered).
    pub const OFF: FlowGuard = FlowGuard {
        rate: 0,
        burst: 0,
        excess: NewFlowExcess::Forward,
    };

    /// Whether it limits anything.
    pub const fn is_on(&self) -> bool {
        self.rate > 0
    }
}

impl Default for FlowGuard {
    fn default() -> Self {
        FlowGuard {
            rate: DEFAULT_NEW_FLOW_RATE as u32,
            burst: DEFAULT_NEW_FLOW_RATE as u32,
            excess: NewFlowExcess::Forward,
        }
    }
}

/// Validates the guard keys: `rate` is `new_flow_rate`, `burst` is
/// `new_flow_burst` (`None`: the rate, one second's worth). Every problem
/// goes to `err` with its field path.
pub fn validate_flow_guard(
    rate: u64,
    burst: Option<u64>,
    excess: NewFlowExcess,
    err: &mut dyn FnMut(&str, Problem),
) -> Option<FlowGuard> {
    let mut ok = true;
    if rate > MAX_NEW_FLOW_RATE {
        err(
            "flow.new_flow_rate",
            Problem::Setting(format!(
                "new_flow_rate {rate} is above {MAX_NEW_FLOW_RATE} (0 switches the guard off)"
            )),
        );
        ok = false;
    }
    if let Some(b) = burst {
        if rate == 0 {
            err(
                "flow.new_flow_burst",
                Problem::Setting(format!(
                    "new_flow_burst {b} without a new_flow_rate: new_flow_rate = 0 switches \
                     the guard off"
                )),
            );
            ok = false;
        } else if !(1..=MAX_NEW_FLOW_RATE).contains(&b) {
            err(
                "flow.new_flow_burst",
                Problem::Setting(format!(
                    "new_flow_burst {b} is outside 1-{MAX_NEW_FLOW_RATE}"
                )),
            );
            ok = false;
        }
    }
    if rate == 0 && excess == NewFlowExcess::Drop {
        err(
            "flow.new_flow_excess",
            Problem::Setting(
                "new_flow_excess = \"drop\" without a new_flow_rate: new_flow_rate = 0 \
                 switches the guard off, so nothing would ever be dropped"
                    .into(),
            ),
        );
        ok = false;
    }
    ok.then(|| FlowGuard {
        rate: rate as u32,
        burst: burst.unwrap_or(rate) as u32,
        excess,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rate: u64, burst: Option<u64>, excess: NewFlowExcess) -> Result<FlowGuard, String> {
        let mut errors = Vec::new();
        let g = validate_flow_guard(rate, burst, excess, &mut |p, e| {
            errors.push(format!("{p}: {e}"))
        });
        g.ok_or_else(|| errors.join("; "))
    }

    #[test]
    fn burst_defaults_to_the_rate_and_zero_is_off() {
        let g = check(1000, None, NewFlowExcess::Forward).unwrap();
        assert_eq!((g.rate, g.burst, g.is_on()), (1000, 1000, true));
        let g = check(1000, Some(10), NewFlowExcess::Drop).unwrap();
        assert_eq!((g.rate, g.burst, g.excess), (1000, 10, NewFlowExcess::Drop));
        let off = check(0, None, NewFlowExcess::Forward).unwrap();
        assert!(!off.is_on());
        assert_eq!(FlowGuard::default().rate as u64, DEFAULT_NEW_FLOW_RATE);
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = check(MAX_NEW_FLOW_RATE + 1, None, NewFlowExcess::Forward).unwrap_err();
        assert!(e.starts_with("flow.new_flow_rate: "), "{e}");
        let e = check(100, Some(0), NewFlowExcess::Forward).unwrap_err();
        assert!(e.starts_with("flow.new_flow_burst: "), "{e}");
        let e = check(0, Some(5), NewFlowExcess::Forward).unwrap_err();
        assert!(e.contains("flow.new_flow_burst: "), "{e}");
        let e = check(0, None, NewFlowExcess::Drop).unwrap_err();
        assert!(e.starts_with("flow.new_flow_excess: "), "{e}");
    }
}
