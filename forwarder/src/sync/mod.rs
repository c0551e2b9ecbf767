//! Exception sync between appliances behind one ECMP router (`[sync]`).
//!
//! Every appliance with the same routing picks the same target for a new
//! flow (Maglev with a fixed hash), so when ECMP moves a flow to another
//! appliance, that one sends it to the same target — unless the flow was
//! kept on an older target after a routing change (a weight, a drain, a
//! target added): its flow entry says one target, Maglev now another. Only
//! those flows, the *exceptions*, are shared (the idea of IPVS's sync daemon
//! and conntrackd, for the few flows that need it):
//!
//! 1. A worker finds them without a per-packet cost: when it re-validates a
//!    flow entry under new tables (once per flow and table change, in
//!    `pipeline/pick.rs`) and on a check pass of its idle-flow sweep (the
//!    first pass after a table change and one pass per refresh interval),
//!    it compares the flow's target with its Maglev pick. An exception goes
//!    as one small record (flow, target underlay) into the worker's bounded
//!    lock-free [`ExceptionRing`]; a full ring drops and counts it (the next
//!    check pass reports it again).
//! 2. The sync thread ([`service`]) collects them, sends new ones to every
//!    peer at once and every live one again each refresh interval (so a
//!    peer that restarted learns them; a peer that starts says hello and
//!    gets them at once), in UDP datagrams of up to 23
//!    records with an HMAC-SHA256 tag ([`wire`]). Its own exceptions that no
//!    worker reported for a while are forgotten.
//! 3. It keeps the peers' exceptions (each until its protocol's flow timeout
//!    after it was last received) and publishes them as an immutable
//!    [`ExceptionMap`] (one pointer swap). A worker asks that map only on a
//!    flow-table miss, before Maglev: a flow a peer keeps on a target that
//!    is still in the routing goes there, and is remembered.
//!
//! Loss-tolerant by design: a lost datagram is sent again within one
//! refresh interval, and a flow a peer never learnt of falls back to its
//! Maglev pick, as without sync. Bounded: every ring, set and datagram has a
//! fixed size.
//!
//! Nothing on the per-packet path allocates, locks or makes a system call:
//! the worker side is a version check per burst, a map lookup per flow-table
//! miss (none while no peer has exceptions), and an atomic ring write per
//! exception found.

pub mod map;
pub mod ring;
pub mod service;
pub mod wire;

#[cfg(test)]
mod tests;

pub use map::ExceptionMap;
pub use ring::ExceptionRing;
pub use service::{SyncError, SyncService};

use crate::counters::Counter;
use crate::encap::Underlay;
use crate::flow::FlowKey;
use crate::tables::{LbTable, Tables, NO_TARGET};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One exception: a flow and the target (by underlay address, the identity
/// every appliance shares) it stays on although Maglev picks another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exception {
    /// The flow.
    pub flow: FlowKey,
    /// Its target's underlay address (IPv4-mapped for IPv4).
    pub target: [u8; 16],
}

/// The 16-byte form of an underlay address.
#[inline]
pub fn underlay_bytes(u: &Underlay) -> [u8; 16] {
    match u {
        Underlay::V4(a) => crate::flow::key::v4_mapped(*a),
        Underlay::V6(a) => *a,
    }
}

/// One worker's sync counters (written by that worker only).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerSyncCounters {
    /// Exceptions queued for the sync thread.
    pub reported: Counter,
    /// Exceptions dropped because the worker's queue was full.
    pub queue_full: Counter,
    /// New flows sent to the target a peer's exception named.
    pub adopted: Counter,
}

/// The sync thread's counters (written by it only).
#[derive(Debug, Default)]
pub struct ServiceCounters {
    /// Datagrams sent (one per peer and batch).
    pub datagrams_sent: Counter,
    /// Records sent, over every peer.
    pub records_sent: Counter,
    /// Datagrams the socket refused to send.
    pub send_errors: Counter,
    /// Valid datagrams received.
    pub datagrams_received: Counter,
    /// Records received in them.
    pub records_received: Counter,
    /// Datagrams refused (not from a peer, malformed, wrong or missing tag).
    pub datagrams_rejected: Counter,
    /// Exceptions not kept because a set was at `max_exceptions`.
    pub over_capacity: Counter,
    /// This appliance's live exceptions (a gauge).
    pub own_exceptions: Counter,
    /// The peers' exceptions known (a gauge).
    pub peer_exceptions: Counter,
}

/// What the workers and the sync thread share.
#[derive(Debug)]
pub struct SyncShared {
    rings: Box<[ExceptionRing]>,
    workers: Box<[WorkerSyncCounters]>,
    /// The peers' exceptions as published.
    map: ArcSwap<ExceptionMap>,
    /// Increases with every publication of `map`.
    version: AtomicU64,
    /// The sync thread's counters.
    pub counters: ServiceCounters,
    /// Where the peers' datagrams are received.
    pub listen: SocketAddr,
    /// The peers.
    pub peers: Vec<SocketAddr>,
    /// How often a worker's sweep checks its flows for exceptions.
    check_every_ns: u64,
}

impl SyncShared {
    /// Shared state for `workers` workers with queues of `queue` records.
    pub fn new(
        workers: usize,
        queue: usize,
        listen: SocketAddr,
        peers: Vec<SocketAddr>,
        check_every: std::time::Duration,
    ) -> Arc<Self> {
        Arc::new(SyncShared {
            rings: (0..workers).map(|_| ExceptionRing::new(queue)).collect(),
            workers: (0..workers)
                .map(|_| WorkerSyncCounters::default())
                .collect(),
            map: ArcSwap::from_pointee(ExceptionMap::default()),
            version: AtomicU64::new(0),
            counters: ServiceCounters::default(),
            listen,
            peers,
            check_every_ns: check_every.as_nanos() as u64,
        })
    }

    /// Worker `worker`'s handle (one per worker: each ring has one producer).
    pub fn port(self: &Arc<Self>, worker: usize) -> SyncPort {
        assert!(worker < self.rings.len(), "worker index out of range");
        SyncPort {
            shared: Arc::clone(self),
            worker,
            map: self.map.load_full(),
            version: self.version.load(Ordering::Acquire),
            check_pass: true,
            last_check_ns: 0,
            checked_version: 0,
        }
    }

    /// The workers' queues.
    pub fn rings(&self) -> &[ExceptionRing] {
        &self.rings
    }

    /// The workers' counters.
    pub fn worker_counters(&self) -> &[WorkerSyncCounters] {
        &self.workers
    }

    /// Publishes a new map of the peers' exceptions; returns the one it
    /// replaced (the caller frees it once no worker holds it).
    pub fn publish(&self, map: ExceptionMap) -> Arc<ExceptionMap> {
        let old = self.map.swap(Arc::new(map));
        self.version.fetch_add(1, Ordering::Release);
        old
    }

    /// The map now published.
    pub fn current(&self) -> Arc<ExceptionMap> {
        self.map.load_full()
    }

    /// The counters as `lbctl stats` shows them.
    pub fn stats(&self) -> lbfwd_control::protocol::SyncStats {
        let c = &self.counters;
        let sum = |f: &dyn Fn(&WorkerSyncCounters) -> u64| self.workers.iter().map(f).sum();
        lbfwd_control::protocol::SyncStats {
            listen: self.listen.to_string(),
            peers: self.peers.iter().map(ToString::to_string).collect(),
            own_exceptions: c.own_exceptions.get(),
            peer_exceptions: c.peer_exceptions.get(),
            reported: sum(&|w| w.reported.get()),
            queue_dropped: sum(&|w| w.queue_full.get()),
            adopted: sum(&|w| w.adopted.get()),
            datagrams_sent: c.datagrams_sent.get(),
            records_sent: c.records_sent.get(),
            send_errors: c.send_errors.get(),
            datagrams_received: c.datagrams_received.get(),
            records_received: c.records_received.get(),
            datagrams_rejected: c.datagrams_rejected.get(),
            over_capacity: c.over_capacity.get(),
        }
    }
}

/// One worker's side of the sync: its queue, its view of the peers'
/// exceptions, and when its sweep checks for exceptions.
#[derive(Debug)]
pub struct SyncPort {
    shared: Arc<SyncShared>,
    worker: usize,
    /// The peers' exceptions in hand (replaced per burst when a newer one
    /// is published; the sync thread frees old ones).
    map: Arc<ExceptionMap>,
    version: u64,
    /// Whether the sweep pass now running checks every flow.
    check_pass: bool,
    /// When the last check pass started.
    last_check_ns: u64,
    /// The table version the last check pass started under.
    checked_version: u64,
}

impl SyncPort {
    /// Picks up a newer map of the peers' exceptions; once per burst.
    #[inline]
    pub fn begin(&mut self) {
        let version = self.shared.version.load(Ordering::Acquire);
        if version != self.version {
            self.version = version;
            // The sync thread keeps the old map until no worker holds it:
            // this only decrements a reference count.
            self.map = self.shared.map.load_full();
        }
    }

    #[inline]
    fn counters(&self) -> &WorkerSyncCounters {
        &self.shared.workers[self.worker]
    }

    /// Queues exception `flow` -> target `index` of `lb`.
    #[cold]
    fn report(&self, lb: &LbTable, index: u32, flow: &FlowKey) {
        let Some(target) = lb.targets.get(index as usize) else {
            return;
        };
        let e = Exception {
            flow: *flow,
            target: underlay_bytes(&target.underlay),
        };
        if self.shared.rings[self.worker].push(&e) {
            self.counters().reported.inc();
        } else {
            self.counters().queue_full.inc();
        }
    }

    /// A flow entry re-validated under new tables stays on target `index`
    /// of `lb`; `pick` is its Maglev pick there. Reports it when they differ.
    #[inline]
    pub fn revalidated(&self, lb: &LbTable, index: u32, pick: Option<u32>, flow: &FlowKey) {
        if pick != Some(index) {
            self.report(lb, index, flow);
        }
    }

    /// Whether the sweep pass now running checks its flows ([`Self::check`]).
    #[inline]
    pub fn checking(&self) -> bool {
        self.check_pass
    }

    /// On a check pass: reports flow `flow` (flow hash `hash`) if its
    /// target (counter slot `slot`) is not its Maglev pick under `t`.
    #[inline]
    pub fn check(&self, t: &Tables, flow: &FlowKey, slot: u32, hash: u64) {
        let Some(&packed) = t.target_by_slot.get(slot as usize) else {
            return;
        };
        if packed == NO_TARGET {
            return;
        }
        let Some(lb) = t.lbs.get((packed >> 32) as usize) else {
            return;
        };
        let index = packed as u32;
        if lb.maglev.pick(hash) != Some(index) {
            self.report(lb, index, flow);
        }
    }

    /// A sweep pass ended at `now_ns` under table version `version`: the
    /// next pass checks if the tables changed since the last check pass
    /// began or a refresh interval has passed.
    pub fn pass_done(&mut self, now_ns: u64, version: u64) {
        self.check_pass = version != self.checked_version
            || now_ns.wrapping_sub(self.last_check_ns) >= self.shared.check_every_ns;
        if self.check_pass {
            self.last_check_ns = now_ns;
            self.checked_version = version;
        }
    }

    /// The target of `lb` a peer keeps `flow` on, if a peer has such an
    /// exception and that target is still in the routing (not counted: an
    /// ICMP error quoting the flow asks too).
    #[inline]
    pub fn peer_target(&self, lb: &LbTable, flow: &FlowKey) -> Option<u32> {
        let target = self.map.get(flow)?;
        let index = lb
            .targets
            .iter()
            .position(|t| underlay_bytes(&t.underlay) == target)?;
        Some(index as u32)
    }

    /// On a flow-table miss: [`Self::peer_target`], counted as adopted.
    #[inline]
    pub fn adopt(&self, lb: &LbTable, flow: &FlowKey) -> Option<u32> {
        let index = self.peer_target(lb, flow)?;
        self.counters().adopted.inc();
        Some(index)
    }
}
