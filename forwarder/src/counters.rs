//! Per-worker counters: plain per-worker memory that the control plane sums.
//!
//! Each worker owns one [`WorkerCounters`]; only that worker writes it, so an
//! increment is a relaxed load and a relaxed store (no locked instruction),
//! and readers on other threads see a recent, never torn, value.
//!
//! Load balancers and targets are counted in *slots*: stable small integers
//! that a [`SlotRegistry`] on the control side hands out by name, so counters
//! survive table rebuilds (a load balancer keeps its slot while it exists).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most load balancers counted at once.
pub const MAX_LB_SLOTS: usize = 1 << 14;
/// Most targets (load balancer, destination pairs) counted at once.
pub const MAX_TARGET_SLOTS: usize = 1 << 18;

/// A counter written by one thread and read by any.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker may call this.
    #[inline(always)]
    pub fn add(&self, n: u64) {
        // Single writer: a plain load + store is enough and avoids a locked
        // read-modify-write on the per-packet path.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline(always)]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the value (gauges; only the owning worker may call this).
    #[inline(always)]
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// Sets the value to zero (slot reuse; control side only).
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// Packets and bytes of one thing.
#[derive(Debug, Default)]
pub struct PacketsBytes {
    /// Packets.
    pub packets: Counter,
    /// Bytes (of the frame as received).
    pub bytes: Counter,
}

impl PacketsBytes {
    /// Counts one packet of `len` bytes.
    #[inline(always)]
    pub fn count(&self, len: usize) {
        self.packets.inc();
        self.bytes.add(len as u64);
    }

    /// A snapshot as plain numbers.
    pub fn snapshot(&self) -> (u64, u64) {
        (self.packets.get(), self.bytes.get())
    }
}

/// Why a packet was dropped. Every drop has exactly one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    /// The frame could not be parsed (truncated or malformed headers).
    Malformed,
    /// An IP header checksum was wrong.
    BadChecksum,
    /// Protocol not allowed for the VIP (not TCP/UDP/SCTP, not ICMP).
    ProtocolNotAllowed,
    /// Port not in the load balancer's allow list.
    PortNotAllowed,
    /// ICMP/ICMPv6 echo request to a VIP (filtered by default).
    IcmpEcho,
    /// Other ICMP to a VIP (not an error that belongs to a known flow).
    IcmpOther,
    /// ICMP error whose embedded packet is no flow of that load balancer.
    IcmpNoFlow,
    /// A non-first fragment whose first fragment was not accepted.
    FragmentRejected,
    /// Fragment state or stash full, or its datagram timed out.
    FragmentOverflow,
    /// The load balancer has no target (empty or fully drained routing).
    NoTarget,
    /// The encapsulated packet exceeds the underlay MTU (answered with ICMP
    /// when allowed, counted here either way).
    TooBig,
    /// The too-big answer was rate-limited.
    TooBigRateLimited,
    /// No source address of the family the target's underlay needs.
    NoUnderlaySource,
    /// Not enough headroom to encapsulate (a backend bug).
    NoHeadroom,
    /// A state the code rules out was reached (a bug in lbfwd, never a
    /// property of the traffic; debug builds also assert). Counted so that
    /// a release build shows it instead of hiding it in another reason.
    Internal,
    /// The backend's transmit ring had no room for a frame lbfwd made
    /// itself (a held fragment released after its first one). The queue's
    /// own `tx_dropped` statistic sees the same refusal; this is its drop
    /// reason.
    TxRingFull,
    /// A new flow above the worker's new-flow rate (`[flow] new_flow_rate`)
    /// with `new_flow_excess = "drop"` (see [`crate::flow::guard`]).
    NewFlowLimit,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 17;

    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::ProtocolNotAllowed,
        DropReason::PortNotAllowed,
        DropReason::IcmpEcho,
        DropReason::IcmpOther,
        DropReason::IcmpNoFlow,
        DropReason::FragmentRejected,
        DropReason::FragmentOverflow,
        DropReason::NoTarget,
        DropReason::TooBig,
        DropReason::TooBigRateLimited,
        DropReason::NoUnderlaySource,
        DropReason::NoHeadroom,
        DropReason::Internal,
        DropReason::TxRingFull,
        DropReason::NewFlowLimit,
    ];

    /// Stable snake_case name for counters and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::ProtocolNotAllowed => "protocol_not_allowed",
            DropReason::PortNotAllowed => "port_not_allowed",
            DropReason::IcmpEcho => "icmp_echo",
            DropReason::IcmpOther => "icmp_other",
            DropReason::IcmpNoFlow => "icmp_no_flow",
            DropReason::FragmentRejected => "fragment_rejected",
            DropReason::FragmentOverflow => "fragment_overflow",
            DropReason::NoTarget => "no_target",
            DropReason::TooBig => "too_big",
            DropReason::TooBigRateLimited => "too_big_rate_limited",
            DropReason::NoUnderlaySource => "no_underlay_source",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::Internal => "internal",
            DropReason::TxRingFull => "tx_ring_full",
            DropReason::NewFlowLimit => "new_flow_limit",
        }
    }
}

/// The drop reason of a state the code rules out (a bug): asserts in debug
/// builds (tests, fuzzing), counts [`DropReason::Internal`] in release
/// builds, never under a reason an operator would act on.
#[cold]
#[inline(never)]
#[track_caller]
pub fn internal(what: &'static str) -> DropReason {
    debug_assert!(false, "impossible dataplane state: {what}");
    DropReason::Internal
}

/// Everything one worker counts.
#[derive(Debug)]
pub struct WorkerCounters {
    /// Frames received.
    pub rx: PacketsBytes,
    /// Frames transmitted (encapsulated packets and lbfwd's own answers).
    pub tx: PacketsBytes,
    /// Frames passed to the host path.
    pub host: PacketsBytes,
    /// Of `host`: IP packets not addressed to a VIP.
    pub host_not_vip: Counter,
    /// Frames dropped, by reason.
    pub drops: [Counter; DropReason::COUNT],
    /// ICMP echo replies lbfwd sent itself.
    pub icmp_echo_replies: Counter,
    /// ICMP frag-needed / packet-too-big answers lbfwd sent.
    pub too_big_sent: Counter,
    /// ICMP errors forwarded to a flow's target.
    pub icmp_errors_forwarded: Counter,
    /// Live entries in the worker's flow table (a gauge, set per burst).
    pub flows_live: Counter,
    /// Fragments held until their first fragment arrives.
    pub fragments_held: Counter,
    /// Flows (re)picked through Maglev.
    pub flow_picks: Counter,
    /// Flows whose target left the routing and were re-picked.
    pub flow_repicks: Counter,
    /// New flows above the new-flow rate forwarded without a flow-table
    /// entry (the flood guard, [`crate::flow::guard`]).
    pub flows_not_remembered: Counter,
    /// 1 while the flood guard is engaged (it refused a new flow within the
    /// last second), else 0: a gauge, set per burst.
    pub flow_guard_engaged: Counter,
    /// Per load-balancer slot: packets dropped by its filter.
    pub lb_drops: Box<[Counter]>,
    /// Per load-balancer slot: live flows in the worker's flow table (a
    /// gauge, set at the end of each sweep pass over the table).
    pub lb_flows: Box<[Counter]>,
    /// Per target slot: packets and bytes sent to it.
    pub targets: Box<[PacketsBytes]>,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerCounters {
    /// Zeroed counters with room for every slot.
    pub fn new() -> Self {
        WorkerCounters {
            rx: PacketsBytes::default(),
            tx: PacketsBytes::default(),
            host: PacketsBytes::default(),
            host_not_vip: Counter::default(),
            drops: Default::default(),
            icmp_echo_replies: Counter::default(),
            too_big_sent: Counter::default(),
            icmp_errors_forwarded: Counter::default(),
            flows_live: Counter::default(),
            fragments_held: Counter::default(),
            flow_picks: Counter::default(),
            flow_repicks: Counter::default(),
            flows_not_remembered: Counter::default(),
            flow_guard_engaged: Counter::default(),
            lb_drops: (0..MAX_LB_SLOTS).map(|_| Counter::default()).collect(),
            lb_flows: (0..MAX_LB_SLOTS).map(|_| Counter::default()).collect(),
            targets: (0..MAX_TARGET_SLOTS)
                .map(|_| PacketsBytes::default())
                .collect(),
        }
    }

    /// Counts a drop.
    #[inline(always)]
    pub fn dropped(&self, reason: DropReason) {
        self.drops[reason as usize].inc();
    }

    /// Total drops over every reason.
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }
}

/// Stable slot numbers for load balancers and targets, kept by the control
/// side across table builds.
#[derive(Debug, Default)]
pub struct SlotRegistry {
    lbs: BTreeMap<String, u32>,
    targets: BTreeMap<(String, String), u32>,
    free_lbs: Vec<u32>,
    free_targets: Vec<u32>,
    next_lb: u32,
    next_target: u32,
}

/// Errors of the slot registry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SlotError {
    /// More load balancers than counter slots.
    #[error("more than {MAX_LB_SLOTS} load balancers")]
    TooManyLoadBalancers,
    /// More targets than counter slots.
    #[error("more than {MAX_TARGET_SLOTS} targets over all load balancers")]
    TooManyTargets,
}

/// The slots a set of load balancers and targets were given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SlotAssignment {
    /// Slot of each load balancer, by name.
    pub lbs: BTreeMap<String, u32>,
    /// Slot of each target, by (load balancer name, destination key).
    pub targets: BTreeMap<(String, String), u32>,
    /// Slots freed by this assignment (their counters should be reset
    /// before reuse).
    pub released_targets: Vec<u32>,
    /// Load-balancer slots freed by this assignment.
    pub released_lbs: Vec<u32>,
}

impl SlotRegistry {
    /// Gives slots to exactly these load balancers and targets: existing
    /// ones keep theirs, new ones get free ones, the rest are released.
    /// Nothing changes when it fails.
    pub fn assign<'a>(
        &mut self,
        lbs: impl IntoIterator<Item = &'a str>,
        targets: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<SlotAssignment, SlotError> {
        let want_lbs: std::collections::BTreeSet<String> =
            lbs.into_iter().map(str::to_owned).collect();
        let want_targets: std::collections::BTreeSet<(String, String)> = targets
            .into_iter()
            .map(|(l, t)| (l.to_owned(), t.to_owned()))
            .collect();
        if want_lbs.len() > MAX_LB_SLOTS {
            return Err(SlotError::TooManyLoadBalancers);
        }
        if want_targets.len() > MAX_TARGET_SLOTS {
            return Err(SlotError::TooManyTargets);
        }
        let mut out = SlotAssignment::default();
        let old_lbs = std::mem::take(&mut self.lbs);
        for (name, slot) in old_lbs {
            if want_lbs.contains(&name) {
                self.lbs.insert(name, slot);
            } else {
                self.free_lbs.push(slot);
                out.released_lbs.push(slot);
            }
        }
        let old_targets = std::mem::take(&mut self.targets);
        for (key, slot) in old_targets {
            if want_targets.contains(&key) {
                self.targets.insert(key, slot);
            } else {
                self.free_targets.push(slot);
                out.released_targets.push(slot);
            }
        }
        for name in want_lbs {
            let slot = match self.lbs.get(&name) {
                Some(&s) => s,
                None => {
                    let s = self.free_lbs.pop().unwrap_or_else(|| {
                        self.next_lb += 1;
                        self.next_lb - 1
                    });
                    self.lbs.insert(name.clone(), s);
                    s
                }
            };
            out.lbs.insert(name, slot);
        }
        for key in want_targets {
            let slot = match self.targets.get(&key) {
                Some(&s) => s,
                None => {
                    let s = self.free_targets.pop().unwrap_or_else(|| {
                        self.next_target += 1;
                        self.next_target - 1
                    });
                    self.targets.insert(key.clone(), s);
                    s
                }
            };
            out.targets.insert(key, slot);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_stable_and_reused_after_release() {
        let mut reg = SlotRegistry::default();
        let a = reg
            .assign(["a", "b"], [("a", "x"), ("a", "y"), ("b", "z")])
            .unwrap();
        let b = reg.assign(["a"], [("a", "y"), ("a", "x")]).unwrap();
        assert_eq!(a.lbs["a"], b.lbs["a"]);
        assert_eq!(
            a.targets[&("a".into(), "x".into())],
            b.targets[&("a".into(), "x".into())]
        );
        assert_eq!(b.released_lbs, vec![a.lbs["b"]]);
        assert_eq!(
            b.released_targets,
            vec![a.targets[&("b".into(), "z".into())]]
        );
        let c = reg.assign(["a", "c"], [("c", "w")]).unwrap();
        assert_eq!(c.lbs["c"], a.lbs["b"], "released slot is reused");
    }

    #[test]
    fn counters_add_and_drop_reasons_are_complete() {
        let c = WorkerCounters::new();
        c.dropped(DropReason::PortNotAllowed);
        c.dropped(DropReason::PortNotAllowed);
        c.rx.count(64);
        assert_eq!(c.drops_total(), 2);
        assert_eq!(c.rx.snapshot(), (1, 64));
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "ALL is in discriminant order");
        }
    }
}
