//! The per-packet pipeline: parse, VIP match, filter, fragments, flow table,
//! Maglev pick, encapsulate (or answer with ICMP). One path for the live
//! workers and for `lbfwd replay`.
//!
//! This folder holds one file per stage; `State::process` below runs them
//! in order (each may end the packet with a [`Verdict`]):
//!
//! 1. Classify (`classify.rs`): parse (the express and fast parsers of
//!    [`crate::wire::fast`], else [`crate::wire::parse_frame`]), VIP match on
//!    the destination address, Ethernet padding trimmed. Not IP or not a
//!    VIP: host path. Malformed: dropped.
//! 2. Filter (`filter.rs`, the one port check of every path): TCP/UDP/SCTP
//!    by the load balancer's port ranges; ICMP to a VIP goes to `icmp.rs`
//!    (echo requests answered or dropped, errors that quote one of its flows
//!    follow that flow); any other protocol is dropped.
//! 3. Fragments (`frag.rs`, the tracker in [`crate::flow::frag`]): the
//!    first fragment is filtered and picked like any packet of its flow (it
//!    carries the ports); later fragments follow its verdict through a
//!    bounded tracker; fragments arriving before their first are held
//!    (copied) and released right after it, or dropped with it.
//! 4. Pick (`pick.rs`, the one pick of every path, ICMP errors included):
//!    a live flow keeps its target while that target stays in the routing
//!    (draining included); a flow whose target left is re-picked; a new
//!    flow gets a Maglev pick with the flow hash of the 5-tuple and the VNI.
//! 5. Forward (`forward.rs`): encapsulate in place toward the target
//!    ([`crate::encap`]; the inner IP packet is not touched) and count; too
//!    big for the underlay MTU: answer the client with ICMP frag-needed /
//!    packet-too-big (`icmp.rs`, rate-limited) instead.
//!
//! The common packet (TCP/UDP/SCTP, no IPv4 options or IPv6 extension
//! headers, not a fragment) of a flow already in the table, under the same
//! table version its entry was made or re-validated in, takes a shortcut
//! with the same outcome (`forward.rs`): VIP entry (load balancer, VNI) →
//! flow entry → the target's header template. It skips the port filter,
//! which that flow passed under the same tables, and touches nothing of the
//! load balancer's table (fewer cache lines per packet); new tables send it
//! through the filter and the pick once more. `prefetch.rs` holds the burst
//! prefetch (staged over the whole burst) that runs before the stages
//! above 8192 flows.
//!
//! `state.rs` is the bottom layer: the per-worker [`State`](self) every
//! stage works on (flow table, fragment tracker, held fragments, too-big
//! token bucket, prefetch notes, census) and the [`Verdict`]. The stage files
//! use it and each other downward (classify, filter, pick below forward, icmp
//! and frag); this file, which runs them, uses them all; none uses this file.
//!
//! The three entries (express, fast, full) differ only in their parser and
//! share every later stage: each stage is one `#[inline(always)]` function
//! (or a cold one, off the fast path) that every entry calls, so there is one
//! copy of each behaviour in the source while the compiled fast path stays
//! one straight function.
//!
//! Nothing here allocates, locks, logs or makes a system call per packet.

mod classify;
mod filter;
mod forward;
mod frag;
mod icmp;
mod pick;
mod prefetch;
mod state;

pub use state::Verdict;

#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod tests;

use crate::counters::{DropReason, WorkerCounters, MAX_LB_SLOTS};
use crate::flow::frag::{self as tracker, FragConfig, FragError, FragTracker};
use crate::flow::{FlowTable, FlowTableError, FlowTimeouts};
use crate::flow::{IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::frame::Frame;
use crate::io::Disposition;
use crate::io::Processor;
use crate::tables::{TableReader, Tables};
use crate::wire::{parse_fast, parse_v4, L4Info};
use classify::Classified;
use state::{FragValue, Prefetched, RateLimit, State, MAX_PENDING_RELEASES, PREFETCH_MAX};
use std::sync::Arc;

/// Sizes and limits of one worker's pipeline state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Flow-table capacity (a power of two).
    pub flow_capacity: usize,
    /// Idle timeouts per protocol.
    pub timeouts: FlowTimeouts,
    /// Fragment tracker sizes and timeout.
    pub frag: FragConfig,
    /// ICMP too-big answers per second (0: never answer, only count).
    pub too_big_rate: u32,
    /// The new-flow flood guard ([`crate::flow::guard`]); off in
    /// [`PipelineConfig::default`], on by default in `[flow]`.
    pub guard: crate::flow::guard::GuardConfig,
}

impl PipelineConfig {
    /// The pipeline settings of a validated `[flow]` section.
    pub fn from_settings(flow: &lbfwd_config::settings::Flow) -> Self {
        let entries = flow
            .fragment_capacity
            .next_power_of_two()
            .max(tracker::WAYS);
        PipelineConfig {
            flow_capacity: flow.capacity,
            timeouts: FlowTimeouts {
                tcp: flow.tcp_timeout,
                udp: flow.udp_timeout,
                sctp: flow.sctp_timeout,
                other: flow.other_timeout,
            },
            frag: FragConfig {
                entries,
                timeout: flow.fragment_timeout,
                ..FragConfig::default()
            },
            too_big_rate: flow.icmp_too_big_rate,
            guard: flow.guard,
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            flow_capacity: 1 << 16,
            timeouts: FlowTimeouts::default(),
            frag: FragConfig::default(),
            too_big_rate: 100,
            guard: crate::flow::guard::GuardConfig::OFF,
        }
    }
}

/// Errors of creating a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The flow table could not be created.
    #[error("flow table: {0}")]
    FlowTable(#[from] FlowTableError),
    /// The fragment tracker could not be created.
    #[error("fragment tracker: {0}")]
    Frag(#[from] FragError),
}

/// Flow-table buckets swept per loop turn of a busy worker (before each
/// burst). One: its entries' census look-ups are random reads the burst
/// prefetch does not cover (4 per burst cost about 20 ns a packet at 1M
/// flows); a busy worker still passes over a 2^20-entry table in well
/// under a second at full bursts, and idle turns sweep 256.
const SWEEP_BUCKETS_BUSY: usize = 1;
/// ... and per turn that received nothing ([`Processor::idle`]).
const SWEEP_BUCKETS_IDLE: usize = 256;

/// One worker's pipeline: its table reader, flow table, fragment tracker and
/// counters.
#[derive(Debug)]
pub struct Pipeline {
    reader: TableReader,
    state: State,
}

impl Pipeline {
    /// A pipeline reading tables through `reader` and counting into
    /// `counters`.
    pub fn new(
        reader: TableReader,
        counters: Arc<WorkerCounters>,
        config: &PipelineConfig,
    ) -> Result<Self, PipelineError> {
        let flows = FlowTable::new(config.flow_capacity, config.timeouts)?;
        Self::with_flows(reader, counters, config, flows, random_seed())
    }

    /// [`Pipeline::new`] for worker `worker`, its flow table in its file of
    /// `store` (the previous run's flows when the file may be re-attached,
    /// see [`crate::flow::persist`]); in memory when the file fails (logged).
    pub fn persisted(
        reader: TableReader,
        counters: Arc<WorkerCounters>,
        config: &PipelineConfig,
        store: &crate::flow::persist::FlowStore,
        worker: usize,
    ) -> Result<Self, PipelineError> {
        let attached = store.attach_logged::<state::FlowValue>(
            worker,
            config.flow_capacity,
            config.timeouts,
            &reader.tables().target_slots(),
        );
        match attached {
            Some((flows, seed)) => Self::with_flows(reader, counters, config, flows, seed),
            None => Self::new(reader, counters, config),
        }
    }

    fn with_flows(
        reader: TableReader,
        counters: Arc<WorkerCounters>,
        config: &PipelineConfig,
        flows: FlowTable<state::FlowValue>,
        seed: u64,
    ) -> Result<Self, PipelineError> {
        Ok(Pipeline {
            reader,
            state: State {
                flows,
                frags: FragTracker::new(config.frag)?,
                counters,
                seed,
                now: 0,
                too_big: RateLimit::new(config.too_big_rate),
                pending: [None; MAX_PENDING_RELEASES],
                pending_len: 0,
                scratch: vec![0u8; state::SCRATCH_LEN].into_boxed_slice(),
                prefetched: Box::new([Prefetched::default(); PREFETCH_MAX]),
                prefetched_len: 0,
                census: vec![0; MAX_LB_SLOTS].into_boxed_slice(),
                census_touched: Vec::with_capacity(MAX_LB_SLOTS),
                l2: crate::l2::Responder::default(),
                guard: crate::flow::guard::NewFlowGuard::new(config.guard),
                sync: None,
            },
        })
    }

    /// The pipeline answering ARP and NDP for the VIPs through `l2`.
    pub fn with_l2(mut self, l2: crate::l2::Responder) -> Self {
        self.state.l2 = l2;
        self
    }

    /// The pipeline sharing its exceptions through `sync` (`[sync]`).
    pub fn with_sync(mut self, sync: crate::sync::SyncPort) -> Self {
        self.state.sync = Some(sync);
        self
    }

    /// Starts a burst at `now_ns`: picks up a new table version and expires a
    /// few idle flows and fragment entries.
    pub fn begin(&mut self, now_ns: u64) {
        self.reader.refresh();
        self.state.l2.begin_burst();
        if let Some(s) = &mut self.state.sync {
            s.begin();
        }
        self.state.prefetched_len = 0;
        self.state.now = now_ns;
        self.sweep(now_ns, SWEEP_BUCKETS_BUSY);
        self.state.frags.sweep(now_ns, 4);
    }

    /// Sweeps the next `buckets` buckets of the flow table (frees idle
    /// flows) and counts the live flows per load balancer in them; at the
    /// end of a pass over the table, publishes that census. Sets the
    /// live-flow gauge.
    fn sweep(&mut self, now_ns: u64, buckets: usize) {
        let t = self.reader.tables();
        let st = &mut self.state;
        let (census, touched) = (&mut st.census, &mut st.census_touched);
        let sync = st.sync.as_ref().filter(|s| s.checking());
        let swept = st.flows.sweep_visit(now_ns, buckets, |k, v| {
            if let Some(s) = sync {
                s.check(t, k, v.slot, v.hash());
            }
            if let Some(lb) = t.lb_slot_of_target(v.slot) {
                if let Some(n) = census.get_mut(lb as usize) {
                    if *n == 0 && touched.len() < touched.capacity() {
                        touched.push(lb);
                    }
                    *n += 1;
                }
            }
        });
        if swept.pass_done {
            if let Some(s) = &mut st.sync {
                s.pass_done(now_ns, t.version);
            }
            st.publish_census(t);
        }
        st.counters.flows_live.set(st.flows.len() as u64);
        st.counters
            .flow_guard_engaged
            .set(u64::from(st.guard.engaged(now_ns)));
    }

    /// Runs one frame through every stage, in place, counts the verdict and
    /// returns it.
    #[inline(always)]
    pub fn run(&mut self, frame: &mut Frame<'_>) -> Verdict {
        let tables = self.reader.tables();
        self.state.counters.rx.count(frame.len());
        self.state.process(tables, frame)
    }

    /// Encapsulates the fragments released since the last call (held copies
    /// whose first fragment has now been accepted) and hands each finished
    /// frame to `emit`, in arrival order. Returns how many were emitted.
    pub fn release_held(&mut self, emit: &mut dyn FnMut(&[u8]) -> bool) -> usize {
        let tables = self.reader.tables();
        self.state.release_held(tables, emit)
    }

    /// The version of the tables in use.
    pub fn tables(&self) -> &Tables {
        self.reader.tables()
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.state.counters
    }

    /// Live flows in this worker's flow table.
    pub fn flows(&self) -> usize {
        self.state.flows.len()
    }
}

impl Processor for Pipeline {
    fn begin_burst(&mut self, now_ns: u64) {
        self.begin(now_ns);
    }

    /// An idle worker sweeps more of the flow table per turn: a pass (idle
    /// flows freed, flows per load balancer counted) then takes well under
    /// a second even while the worker sleeps between polls.
    fn idle(&mut self, now_ns: u64) {
        self.sweep(now_ns, SWEEP_BUCKETS_IDLE);
    }

    #[inline(always)]
    fn process(&mut self, frame: &mut Frame<'_>) -> Disposition {
        if self.state.prefetched_len > 0 {
            self.state.prefetch_burst(self.reader.tables());
        }
        self.run(frame).disposition()
    }

    /// Only with enough live flows: below 8192 (`PREFETCH_MIN_FLOWS`) the
    /// flow table stays in the caches.
    #[inline(always)]
    fn wants_prefetch(&self) -> bool {
        self.state.flows.len() >= prefetch::PREFETCH_MIN_FLOWS
    }

    /// Stage 1 of the burst prefetch: the frame's flow-table bucket.
    #[inline]
    fn prefetch(&mut self, frame: &Frame<'_>) {
        let wanted = self.wants_prefetch();
        self.state
            .prefetch_bucket(self.reader.tables(), frame, wanted);
    }

    fn drain_extra(&mut self, emit: &mut dyn FnMut(&[u8]) -> bool) {
        self.release_held(emit);
        self.state.l2.drain(emit);
    }
}

/// A random seed from the standard library's per-process random keys.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6c62_6677_6400_0001);
    h.finish()
}

impl State {
    /// Ends a census pass: every load balancer of `t` gets its count of
    /// live flows (0 when the pass met none), and the census starts over.
    #[cold]
    fn publish_census(&mut self, t: &Tables) {
        for lb in &t.lbs {
            let n = self.census.get(lb.slot as usize).copied().unwrap_or(0);
            if let Some(c) = self.counters.lb_flows.get(lb.slot as usize) {
                c.set(u64::from(n));
            }
        }
        for slot in self.census_touched.drain(..) {
            if let Some(n) = self.census.get_mut(slot as usize) {
                *n = 0;
            }
        }
    }

    /// Every stage for one frame, in order. Three entries, by the parser
    /// that takes the packet: the IPv4 express parser, the fast parser (the
    /// common case), else the full parser. The first two then share every
    /// stage ([`Self::forward_common`]); the full path calls the same
    /// filter, pick and forward stages ([`Self::process_full`]). Each path
    /// counts its verdict where it knows it (the common one without a
    /// second dispatch on the verdict).
    #[inline(always)]
    fn process(&mut self, t: &Tables, frame: &mut Frame<'_>) -> Verdict {
        if let Some(f) = parse_v4(frame.data()) {
            return match classify::express(t, &f) {
                Some(c) => self.forward_common(t, frame, c),
                None => self.not_vip(frame.len()),
            };
        }
        match parse_fast(frame.data()) {
            Some(f) => match classify::common(t, &f) {
                Some(c) => self.forward_common(t, frame, c),
                None => self.not_vip(frame.len()),
            },
            None => {
                let verdict = frame.detached(|f| self.process_full(t, f));
                self.count(verdict, frame.len())
            }
        }
    }

    /// The full path: every packet the fast parsers do not take (IPv4
    /// options, IPv6 extension headers, two VLAN tags, fragments, ICMP,
    /// other protocols, malformed frames). The same stages in the same
    /// order as the common path, with fragments and ICMP in between.
    #[inline(never)]
    fn process_full(&mut self, t: &Tables, frame: &mut Frame<'_>) -> Verdict {
        // 1. Classify.
        let (lb_idx, lb, p) = match self.classify_full(t, frame) {
            Classified::Vip { lb_idx, lb, parsed } => (lb_idx, lb, parsed),
            Classified::Done(verdict) => return verdict,
        };
        let p = &p;
        // 2. Filter by protocol (ICMP has its own stage).
        if let L4Info::Icmp(info) = p.l4 {
            return self.icmp(t, lb_idx, lb, p, info, frame);
        }
        let proto = u8::from(p.protocol);
        if !matches!(proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP) {
            return self.filtered(lb, DropReason::ProtocolNotAllowed);
        }
        // 3. Fragments: a later one follows its first; a first one is
        // filtered and picked below, and its verdict recorded.
        let first = match self.fragment(t, lb_idx, lb, p, frame) {
            Ok(first) => first,
            Err(verdict) => return verdict,
        };
        // 2. Filter by port.
        let ports = match p.l4 {
            L4Info::Ports(ports) => ports,
            _ => {
                // A first fragment too short for its transport header.
                self.first_fragment_done(first, None);
                return Verdict::Drop(DropReason::Malformed);
            }
        };
        if !filter::port_allowed(lb, proto, ports.dst) {
            self.first_fragment_done(first, None);
            return self.filtered(lb, DropReason::PortNotAllowed);
        }
        // 4. Pick.
        let flow = crate::flow::FlowKey::new(p.src, p.dst, proto, ports.src, ports.dst, lb.vni);
        let (target, hash) = match self.pick(t, lb_idx, lb, &flow) {
            Ok(picked) => picked,
            Err(reason) => {
                self.first_fragment_done(first, None);
                return Verdict::Drop(reason);
            }
        };
        // 5. Forward.
        let target = &lb.targets[target as usize];
        let (verdict, forwarded) = self.encap_outcome(t, lb, target, hash, frame, p);
        // Later fragments follow the first only if it was really sent to
        // the target (not answered with "too big", not dropped).
        let value = forwarded.then_some(FragValue {
            slot: target.slot,
            hash,
        });
        self.first_fragment_done(first, value);
        verdict
    }
}
