//! Per-worker counters: plain per-worker memory that the control plane sums.
//!
//! Each worker owns one [`WorkerCounters`]; only that worker writes it, so an
//! increment is a relaxed load and a relaxed store (no locked instruction),
//! and readers on other threads see a recent, never torn, value.
//!
//! Load balancers and targets are counted in *slots*: stable small integers
//! that a [`SlotRegistry`] on the control side hands out by name, so counters
//! survive table rebuilds (a load balancer keeps its slot while it exists).

use std::collections::{BTreeSet, HashMap};
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
    /// Per target slot: packets and bytes sent to it. In huge pages (4 MiB,
    /// written at random per packet: fewer TLB misses).
    pub targets: crate::io::sys::HugeSlice<PacketsBytes>,
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
            targets: crate::io::sys::HugeSlice::new(MAX_TARGET_SLOTS, |_| PacketsBytes::default()),
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
///
/// An assignment costs one hash lookup per load balancer and target given,
/// plus one pass over the held slots to find the ones no longer wanted (no
/// copy of the names): with 100,000 targets a rebuild that changes one of
/// them allocates nothing for the 99,999 others.
#[derive(Debug, Default)]
pub struct SlotRegistry {
    lbs: HashMap<String, Held>,
    /// By load balancer name, then destination key.
    targets: HashMap<String, HashMap<String, Held>>,
    free_lbs: Vec<u32>,
    free_targets: Vec<u32>,
    next_lb: u32,
    next_target: u32,
    /// Grows on every assignment; a slot wanted by the current one has
    /// `seen == epoch`.
    epoch: u64,
}

/// A slot given out, and the last assignment that wanted it.
#[derive(Clone, Copy, Debug)]
struct Held {
    slot: u32,
    seen: u64,
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
    /// Slot of each load balancer, in the order they were given.
    pub lbs: Vec<u32>,
    /// Slot of each target, in the order they were given.
    pub targets: Vec<u32>,
    /// Slots freed by this assignment (their counters should be reset
    /// before reuse), in the order of their names.
    pub released_targets: Vec<u32>,
    /// Load-balancer slots freed by this assignment, in the order of their
    /// names.
    pub released_lbs: Vec<u32>,
}

/// Marks `held` as wanted by `epoch`; whether it was not yet (a distinct
/// name of this assignment).
fn mark(held: &mut Held, epoch: u64) -> bool {
    let first = held.seen != epoch;
    held.seen = epoch;
    first
}

/// The next free slot: the last one released, else a new one.
fn take_slot(free: &mut Vec<u32>, next: &mut u32) -> u32 {
    free.pop().unwrap_or_else(|| {
        *next += 1;
        *next - 1
    })
}

impl SlotRegistry {
    /// Gives slots to exactly these load balancers and targets: existing
    /// ones keep theirs, new ones get free ones (in the order of their
    /// names), the rest are released. A name given twice has one slot.
    /// Nothing changes when it fails.
    pub fn assign<'a>(
        &mut self,
        lbs: impl IntoIterator<Item = &'a str>,
        targets: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<SlotAssignment, SlotError> {
        let lbs: Vec<&str> = lbs.into_iter().collect();
        let targets: Vec<(&str, &str)> = targets.into_iter().collect();
        // Marking what is wanted changes nothing a later assignment sees
        // (it has its own epoch): a refused assignment leaves the registry
        // as it was.
        self.epoch += 1;
        let epoch = self.epoch;
        let mut held_lbs = 0usize;
        let mut new_lbs = BTreeSet::new();
        for &name in &lbs {
            match self.lbs.get_mut(name) {
                Some(h) => held_lbs += usize::from(mark(h, epoch)),
                None => {
                    new_lbs.insert(name);
                }
            }
        }
        if held_lbs + new_lbs.len() > MAX_LB_SLOTS {
            return Err(SlotError::TooManyLoadBalancers);
        }
        let mut held_targets = 0usize;
        let mut new_targets = BTreeSet::new();
        for &(lb, key) in &targets {
            match self.targets.get_mut(lb).and_then(|m| m.get_mut(key)) {
                Some(h) => held_targets += usize::from(mark(h, epoch)),
                None => {
                    new_targets.insert((lb, key));
                }
            }
        }
        if held_targets + new_targets.len() > MAX_TARGET_SLOTS {
            return Err(SlotError::TooManyTargets);
        }
        let mut out = SlotAssignment::default();
        // Release what is not wanted, in the order of the names (the free
        // lists hand out the last released first).
        let mut gone: Vec<(String, u32)> = Vec::new();
        self.lbs.retain(|name, h| {
            let keep = h.seen == epoch;
            if !keep {
                gone.push((name.clone(), h.slot));
            }
            keep
        });
        gone.sort_unstable();
        for (_, slot) in gone {
            self.free_lbs.push(slot);
            out.released_lbs.push(slot);
        }
        let mut gone: Vec<((String, String), u32)> = Vec::new();
        self.targets.retain(|lb, by_key| {
            by_key.retain(|key, h| {
                let keep = h.seen == epoch;
                if !keep {
                    gone.push(((lb.clone(), key.clone()), h.slot));
                }
                keep
            });
            !by_key.is_empty()
        });
        gone.sort_unstable();
        for (_, slot) in gone {
            self.free_targets.push(slot);
            out.released_targets.push(slot);
        }
        for name in new_lbs {
            let slot = take_slot(&mut self.free_lbs, &mut self.next_lb);
            self.lbs.insert(name.to_owned(), Held { slot, seen: epoch });
        }
        for (lb, key) in new_targets {
            let slot = take_slot(&mut self.free_targets, &mut self.next_target);
            self.targets
                .entry(lb.to_owned())
                .or_default()
                .insert(key.to_owned(), Held { slot, seen: epoch });
        }
        out.lbs = lbs.iter().map(|name| self.lbs[*name].slot).collect();
        out.targets = targets
            .iter()
            .map(|(lb, key)| self.targets[*lb][*key].slot)
            .collect();
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
        assert_eq!(a.lbs[0], b.lbs[0]);
        assert_eq!(a.targets[0], b.targets[1], "a/x keeps its slot");
        assert_eq!(a.targets[1], b.targets[0], "a/y keeps its slot");
        assert_eq!(b.released_lbs, vec![a.lbs[1]]);
        assert_eq!(b.released_targets, vec![a.targets[2]]);
        let c = reg.assign(["a", "c"], [("c", "w")]).unwrap();
        assert_eq!(c.lbs[1], a.lbs[1], "released slot is reused");
    }

    #[test]
    fn refused_assignment_changes_nothing() {
        let mut reg = SlotRegistry::default();
        let a = reg.assign(["a"], [("a", "x"), ("a", "y")]).unwrap();
        let names: Vec<String> = (0..=MAX_LB_SLOTS).map(|i| format!("lb{i}")).collect();
        assert_eq!(
            reg.assign(names.iter().map(String::as_str), []),
            Err(SlotError::TooManyLoadBalancers)
        );
        let b = reg.assign(["a"], [("a", "x"), ("a", "y")]).unwrap();
        assert_eq!(a.lbs, b.lbs);
        assert_eq!(a.targets, b.targets);
        assert!(b.released_lbs.is_empty() && b.released_targets.is_empty());
    }

    /// The registry as it was before the hash maps (sets of owned names,
    /// every name copied on every assignment): the reference the fast one
    /// must equal, slot for slot.
    #[derive(Default)]
    struct Reference {
        lbs: std::collections::BTreeMap<String, u32>,
        targets: std::collections::BTreeMap<(String, String), u32>,
        free_lbs: Vec<u32>,
        free_targets: Vec<u32>,
        next_lb: u32,
        next_target: u32,
    }

    impl Reference {
        fn assign(&mut self, lbs: &[&str], targets: &[(&str, &str)]) -> SlotAssignment {
            let want_lbs: BTreeSet<String> = lbs.iter().map(|s| s.to_string()).collect();
            let want_targets: BTreeSet<(String, String)> = targets
                .iter()
                .map(|(l, t)| (l.to_string(), t.to_string()))
                .collect();
            let mut out = SlotAssignment::default();
            for (name, slot) in std::mem::take(&mut self.lbs) {
                if want_lbs.contains(&name) {
                    self.lbs.insert(name, slot);
                } else {
                    self.free_lbs.push(slot);
                    out.released_lbs.push(slot);
                }
            }
            for (key, slot) in std::mem::take(&mut self.targets) {
                if want_targets.contains(&key) {
                    self.targets.insert(key, slot);
                } else {
                    self.free_targets.push(slot);
                    out.released_targets.push(slot);
                }
            }
            for name in want_lbs {
                if !self.lbs.contains_key(&name) {
                    let s = take_slot(&mut self.free_lbs, &mut self.next_lb);
                    self.lbs.insert(name, s);
                }
            }
            for key in want_targets {
                if !self.targets.contains_key(&key) {
                    let s = take_slot(&mut self.free_targets, &mut self.next_target);
                    self.targets.insert(key, s);
                }
            }
            out.lbs = lbs.iter().map(|n| self.lbs[*n]).collect();
            out.targets = targets
                .iter()
                .map(|(l, t)| self.targets[&(l.to_string(), t.to_string())])
                .collect();
            out
        }
    }

    #[test]
    fn assignments_equal_the_reference_over_random_changes() {
        // A small LCG: the same sequence on every run.
        let mut seed = 0x2026_u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut fast = SlotRegistry::default();
        let mut reference = Reference::default();
        let names: Vec<String> = (0..12).map(|i| format!("lb{i}")).collect();
        let keys: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
        for round in 0..500 {
            let lbs: Vec<&str> = (0..next(10))
                .map(|_| names[next(12) as usize].as_str())
                .collect();
            let targets: Vec<(&str, &str)> = (0..next(30))
                .map(|_| {
                    (
                        names[next(12) as usize].as_str(),
                        keys[next(8) as usize].as_str(),
                    )
                })
                .collect();
            assert_eq!(
                fast.assign(lbs.iter().copied(), targets.iter().copied())
                    .unwrap(),
                reference.assign(&lbs, &targets),
                "round {round}: {lbs:?} {targets:?}"
            );
        }
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
