//! The new-flow flood guard: a per-worker token bucket that limits how many
//! new flows per second enter the flow table (Katran's "LRU bypass" above a
//! rate of new connections per core).
//!
//! A flood of new flows (random sources, SYNs) would otherwise fill the
//! table and evict established flows; an evicted flow is picked again by
//! Maglev, and if the routing changed since it started (a target added, a
//! weight changed) it moves and its connection breaks. Above the limit a
//! new flow is forwarded to its Maglev pick without an entry
//! ([`Excess::Forward`], the default) or dropped ([`Excess::Drop`]); the
//! entries already in the table stay. A flow refused once is asked about
//! again on its next packet (it is still a miss), so it is remembered as
//! soon as the flood leaves room.
//!
//! Only the flow-table miss path asks the guard; it reads the burst's clock
//! (the time the caller passes, never the system clock), takes no lock and
//! makes no system call.

pub use lbfwd_config::flow_guard::{FlowGuard as GuardConfig, NewFlowExcess as Excess};

/// Nanoseconds per second.
const NS_PER_S: u64 = 1_000_000_000;

/// How long after the last refused flow the guard counts as engaged.
pub const ENGAGED_HOLD_NS: u64 = NS_PER_S;

/// One worker's guard: a token bucket of new-flow admissions.
#[derive(Clone, Debug)]
pub struct NewFlowGuard {
    /// Tokens per second (0: the guard is off, every flow is admitted).
    rate: u64,
    /// Most tokens the bucket holds.
    burst: u64,
    /// Tokens now.
    tokens: u64,
    /// The time the tokens were last refilled up to (ns): refills advance
    /// it by whole tokens' worth, so no fraction of a token is lost.
    refilled_ns: u64,
    /// When the last flow was refused (ns); `None`: never.
    refused_ns: Option<u64>,
    /// What happens to a refused flow.
    excess: Excess,
}

impl NewFlowGuard {
    /// A guard of `config`, its bucket full.
    pub fn new(config: GuardConfig) -> Self {
        let burst = u64::from(config.burst.max(1));
        NewFlowGuard {
            rate: u64::from(config.rate),
            burst,
            tokens: burst,
            refilled_ns: 0,
            refused_ns: None,
            excess: config.excess,
        }
    }

    /// Whether a new flow seen at `now_ns` may enter the flow table: takes
    /// a token if there is one; otherwise notes the refusal (for
    /// [`Self::engaged`]).
    #[inline]
    pub fn admit(&mut self, now_ns: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        if self.tokens < self.burst {
            self.refill(now_ns);
        } else {
            // A full bucket earns nothing: it starts earning from now.
            self.refilled_ns = now_ns;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            self.refused_ns = Some(now_ns);
            false
        }
    }

    /// Adds the tokens earned since the last refill, up to the burst.
    #[inline]
    fn refill(&mut self, now_ns: u64) {
        let elapsed = now_ns.saturating_sub(self.refilled_ns);
        let earned = elapsed.saturating_mul(self.rate) / NS_PER_S;
        if earned == 0 {
            return;
        }
        if earned >= self.burst - self.tokens {
            self.tokens = self.burst;
            self.refilled_ns = now_ns;
        } else {
            self.tokens += earned;
            // Whole tokens only: the remainder keeps accruing.
            self.refilled_ns += earned * NS_PER_S / self.rate;
        }
    }

    /// What happens to a flow [`Self::admit`] refused.
    #[inline]
    pub fn excess(&self) -> Excess {
        self.excess
    }

    /// Whether the guard refused a flow within the last
    /// [`ENGAGED_HOLD_NS`] before `now_ns`.
    pub fn engaged(&self, now_ns: u64) -> bool {
        self.refused_ns
            .is_some_and(|t| now_ns.saturating_sub(t) < ENGAGED_HOLD_NS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(rate: u32, burst: u32) -> NewFlowGuard {
        NewFlowGuard::new(GuardConfig {
            rate,
            burst,
            excess: Excess::Forward,
        })
    }

    fn admitted(g: &mut NewFlowGuard, now_ns: u64, tries: u32) -> u32 {
        (0..tries).filter(|_| g.admit(now_ns)).count() as u32
    }

    #[test]
    fn off_admits_everything_and_never_engages() {
        let mut g = NewFlowGuard::new(GuardConfig::OFF);
        assert_eq!(admitted(&mut g, 5, 1_000_000), 1_000_000);
        assert!(!g.engaged(5));
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut g = guard(1000, 100);
        let t0 = 10 * NS_PER_S;
        // A full bucket: the burst at once, then nothing.
        assert_eq!(admitted(&mut g, t0, 1000), 100);
        assert!(g.engaged(t0));
        // 1000/s: 10 ms earns 10 tokens, 0.5 ms none.
        assert_eq!(admitted(&mut g, t0 + 500_000, 100), 0);
        assert_eq!(admitted(&mut g, t0 + 10_000_000, 100), 10);
        // Over one second of steady flooding: the rate, give or take one.
        let mut total = 0;
        for ms in 11..=1010 {
            total += admitted(&mut g, t0 + ms * 1_000_000, 50);
        }
        assert!((999..=1001).contains(&total), "{total} admitted in 1 s");
        // Quiet for a while: the bucket fills up to the burst, no more.
        let later = t0 + 60 * NS_PER_S;
        assert!(!g.engaged(later));
        assert_eq!(admitted(&mut g, later, 1000), 100);
    }

    #[test]
    fn fractions_of_a_token_are_not_lost() {
        // 3 tokens per second, drained every 100 ms (so never full): 3 per
        // second exactly.
        let mut g = guard(3, 5);
        assert_eq!(admitted(&mut g, 0, 5), 5);
        let mut total = 0;
        for step in 1..=100u64 {
            total += admitted(&mut g, step * NS_PER_S / 10, 5);
        }
        assert_eq!(total, 30);
    }

    #[test]
    fn engaged_holds_for_a_second_after_the_last_refusal() {
        let mut g = guard(10, 1);
        assert!(g.admit(0));
        assert!(!g.engaged(0));
        assert!(!g.admit(1));
        assert!(g.engaged(1 + ENGAGED_HOLD_NS - 1));
        assert!(!g.engaged(1 + ENGAGED_HOLD_NS));
    }

    #[test]
    fn a_clock_far_ahead_does_not_overflow() {
        let mut g = guard(100_000_000, 100_000_000);
        assert_eq!(admitted(&mut g, u64::MAX - 1, 10), 10);
        assert!(g.admit(u64::MAX));
    }
}
