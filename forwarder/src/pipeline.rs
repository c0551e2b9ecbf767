//! The per-packet pipeline: parse, VIP match, filter, fragments, flow table,
//! Maglev pick, encapsulate (or answer with ICMP). One path for the live
//! workers and for `lbfwd replay`.
//!
//! Stages, in order (each may end the packet with a [`Verdict`]):
//!
//! 1. Parse ([`crate::wire::parse_frame`]). Not IP: host path (an ARP
//!    request for a VIP is answered while announcing, [`crate::l2`]; so is
//!    an ICMPv6 neighbour solicitation for one). Malformed: dropped.
//! 2. VIP match on the destination address. Not a VIP: host path.
//! 3. Filter: TCP/UDP/SCTP by the load balancer's port ranges. ICMP echo
//!    requests are dropped unless the load balancer answers them; ICMP errors
//!    whose quoted packet is a reply of one of its flows follow that flow;
//!    any other protocol is dropped.
//! 4. Fragments: the first fragment is filtered and picked like any packet of
//!    its flow (it carries the ports); later fragments follow its verdict
//!    through a bounded tracker; fragments arriving before their first are
//!    held (copied) and released right after it, or dropped with it.
//! 5. Flow table: a live flow keeps its target while that target stays in
//!    the routing (draining included); a flow whose target left is re-picked.
//! 6. Maglev pick on a miss, with the flow hash of the 5-tuple and the VNI.
//! 7. Encapsulate in place (IP-in-IP, GUE or VXLAN) toward the target; the
//!    inner IP packet is not touched.
//! 8. Too big for the underlay MTU: answer the client with ICMP frag-needed /
//!    packet-too-big (rate-limited) instead.
//!
//! The common packet (TCP/UDP/SCTP, no IPv4 options or IPv6 extension
//! headers, not a fragment) of a flow already in the table, under the same
//! table version its entry was made or re-validated in, takes a shortcut
//! with the same outcome: VIP entry (load balancer, VNI) → flow entry →
//! the target's header template. It skips the port filter, which that flow
//! passed under the same tables, and touches nothing of the load balancer's
//! table (fewer cache lines per packet); new tables send it through stages 3
//! to 7 once more.
//!
//! Nothing here allocates, locks, logs or makes a system call per packet.

use crate::conntrack::{FlowTable, FlowTableError, FlowTimeouts};
use crate::counters::{DropReason, WorkerCounters, MAX_LB_SLOTS};
use crate::flow::{FlowKey, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::frag::{FragConfig, FragDrop, FragError, FragInfo, FragKey, FragTracker, Later};
use crate::frame::{Frame, HEADROOM};
use crate::io::Disposition;
use crate::tables::{LbTable, TableReader, Tables, Target, Underlay, UnderlayParams};
use crate::wire::checksum;
use crate::wire::ethernet::EthernetRepr;
use crate::wire::icmp_reply::frame_echo_reply;
use crate::wire::icmp_reply::frame_too_big;
use crate::wire::ipv4::Ipv4Repr;
use crate::wire::ipv6::{flow_label_from_hash, Ipv6Repr, DEFAULT_HOP_LIMIT};
use crate::wire::udp::{emit_udp_ipv4, emit_udp_ipv6};
use crate::wire::vxlan::VxlanRepr;
use crate::wire::{
    EtherType, IcmpInfo, IcmpKind, IpProtocol, IpVersion, L4Info, Parsed, ParsedFrame, WireError,
};
use crate::worker::Processor;
use lbfwd_config::model::Encap;
use std::sync::Arc;

/// What happened to one packet.
///
/// The tag is an explicit byte whose first values are those of
/// [`Disposition`], so turning a verdict into its disposition (per packet)
/// is a clamp, not a branch tree over a niche encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    /// Transmit the frame as it now stands (encapsulated, or lbfwd's answer).
    Tx = Disposition::Tx as u8,
    /// Hand it to the host's own stack.
    Host = Disposition::Host as u8,
    /// Dropped, for this reason.
    Drop(DropReason) = Disposition::Drop as u8,
    /// A copy was kept (a fragment waiting for its first fragment); the
    /// buffer may be freed.
    Held,
}

impl Verdict {
    /// What the I/O backend does with the buffer.
    #[inline(always)]
    pub fn disposition(self) -> Disposition {
        match self {
            Verdict::Tx => Disposition::Tx,
            Verdict::Host => Disposition::Host,
            Verdict::Held | Verdict::Drop(_) => Disposition::Drop,
        }
    }
}

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
}

impl PipelineConfig {
    /// The pipeline settings of a validated `[flow]` section.
    pub fn from_settings(flow: &lbfwd_config::settings::Flow) -> Self {
        let entries = flow
            .fragment_capacity
            .next_power_of_two()
            .max(crate::frag::WAYS);
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

/// What a flow remembers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FlowValue {
    /// The target's stable slot.
    slot: u32,
    /// The flow hash (XXH3, [`FlowKey::flow_hash`]) as two halves (keeps the
    /// value 4-byte aligned, the table slot small): computed once, on the
    /// flow's first packet, for its Maglev pick, outer UDP source port and
    /// flow label.
    hash: [u32; 2],
    /// The index of the target's outer-header template in
    /// [`Tables::templates`] of version `version`: a flow seen again under
    /// the same tables goes straight there, without its load balancer's
    /// [`LbTable`], its port filter (the flow passed it under these tables)
    /// or [`Tables::target_in`].
    template: u32,
    /// The low 32 bits of the [`Tables::version`] `template` belongs to (a
    /// flow idle for 2^32 publications has long timed out).
    version: u32,
}

impl FlowValue {
    /// The value of a flow to target `index` of `lb` under tables `t`.
    #[inline(always)]
    fn new(t: &Tables, lb: &LbTable, index: u32, hash: u64) -> Self {
        FlowValue {
            slot: lb.targets[index as usize].slot,
            hash: [hash as u32, (hash >> 32) as u32],
            template: lb.template_base + index,
            version: t.version as u32,
        }
    }

    #[inline(always)]
    fn hash(&self) -> u64 {
        u64::from(self.hash[0]) | (u64::from(self.hash[1]) << 32)
    }
}

/// What a fragmented datagram remembers once its first fragment passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FragValue {
    /// The target's stable slot.
    slot: u32,
    /// The flow hash of the first fragment (outer UDP source port, flow
    /// label).
    hash: u64,
}

/// A datagram whose held fragments wait to be sent after its first one.
#[derive(Clone, Copy, Debug)]
struct Release {
    key: FragKey,
    value: FragValue,
}

/// Frames of one burst the prefetch stages follow (more are processed
/// without).
const PREFETCH_MAX: usize = 64;

/// How many frames ahead of the one being processed the third prefetch
/// stage works (the flow's target: routing entry, counters).
const LOOKAHEAD_SLOT: usize = 4;
/// ... and the fourth (the target's outer header template).
const LOOKAHEAD_TEMPLATE: usize = 2;

/// Below this many live flows the flow table stays in the caches and the
/// burst prefetch would only cost instructions: it is skipped.
const PREFETCH_MIN_FLOWS: usize = 8192;

/// What the first prefetch stage found out about one frame of a burst.
#[derive(Clone, Copy, Debug, Default)]
struct Prefetched {
    /// The flow's key.
    key: FlowKey,
    /// Its bucket hash.
    bucket_hash: u64,
    /// Its load balancer's index; `u32::MAX`: not a fast-path packet to a
    /// VIP (nothing to prefetch).
    lb: u32,
    /// The template index its flow entry held when stage 3 looked
    /// (`u32::MAX`: none).
    template: u32,
}

/// Flow-table buckets swept per loop turn of a busy worker (before each
/// burst).
const SWEEP_BUCKETS_BUSY: usize = 4;
/// ... and per turn that received nothing ([`Processor::idle`]).
const SWEEP_BUCKETS_IDLE: usize = 256;

/// Most datagrams whose held fragments wait for [`Processor::drain_extra`].
const MAX_PENDING_RELEASES: usize = 64;

/// Bytes of the scratch buffer released fragments are encapsulated in.
const SCRATCH_LEN: usize = HEADROOM + 9216;

/// A token bucket for the ICMP too-big answers.
#[derive(Debug)]
struct RateLimit {
    per_second: u64,
    tokens: u64,
    last_ns: u64,
}

impl RateLimit {
    fn new(per_second: u32) -> Self {
        RateLimit {
            per_second: u64::from(per_second),
            tokens: u64::from(per_second),
            last_ns: 0,
        }
    }

    #[inline]
    fn take(&mut self, now_ns: u64) -> bool {
        if self.per_second == 0 {
            return false;
        }
        let elapsed = now_ns.saturating_sub(self.last_ns);
        let refill = elapsed.saturating_mul(self.per_second) / 1_000_000_000;
        if refill > 0 {
            self.tokens = (self.tokens + refill).min(self.per_second);
            self.last_ns = now_ns;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

/// One worker's pipeline: its table reader, flow table, fragment tracker and
/// counters.
#[derive(Debug)]
pub struct Pipeline {
    reader: TableReader,
    state: State,
}

/// The per-worker state the stages work on (everything but the tables).
#[derive(Debug)]
struct State {
    flows: FlowTable<FlowValue>,
    frags: FragTracker<FragValue>,
    counters: Arc<WorkerCounters>,
    /// Seed of the flow table's bucket hash ([`FlowKey::table_hash`]),
    /// random per pipeline.
    seed: u64,
    now: u64,
    too_big: RateLimit,
    pending: [Option<Release>; MAX_PENDING_RELEASES],
    pending_len: usize,
    scratch: Box<[u8]>,
    /// The frames of the burst in prefetch ([`Processor::prefetch`]).
    prefetched: Box<[Prefetched; PREFETCH_MAX]>,
    /// Frames in `prefetched`.
    prefetched_len: usize,
    /// Frames of them processed since.
    prefetched_next: usize,
    /// Live flows per load-balancer counter slot, counted by the sweep in
    /// the current pass ([`Pipeline::begin`]); published to
    /// [`WorkerCounters::lb_flows`] when the pass ends.
    census: Box<[u32]>,
    /// The slots of `census` above 0 (each once; capacity for every slot,
    /// so pushing never allocates).
    census_touched: Vec<u32>,
    /// ARP/NDP answers for the VIPs (`[l2]`; inactive by default).
    l2: crate::l2::Responder,
}

impl Pipeline {
    /// A pipeline reading tables through `reader` and counting into
    /// `counters`.
    pub fn new(
        reader: TableReader,
        counters: Arc<WorkerCounters>,
        config: &PipelineConfig,
    ) -> Result<Self, PipelineError> {
        Ok(Pipeline {
            reader,
            state: State {
                flows: FlowTable::new(config.flow_capacity, config.timeouts)?,
                frags: FragTracker::new(config.frag)?,
                counters,
                seed: random_seed(),
                now: 0,
                too_big: RateLimit::new(config.too_big_rate),
                pending: [None; MAX_PENDING_RELEASES],
                pending_len: 0,
                scratch: vec![0u8; SCRATCH_LEN].into_boxed_slice(),
                prefetched: Box::new([Prefetched::default(); PREFETCH_MAX]),
                prefetched_len: 0,
                prefetched_next: 0,
                census: vec![0; MAX_LB_SLOTS].into_boxed_slice(),
                census_touched: Vec::with_capacity(MAX_LB_SLOTS),
                l2: crate::l2::Responder::default(),
            },
        })
    }

    /// The pipeline answering ARP and NDP for the VIPs through `l2`.
    pub fn with_l2(mut self, l2: crate::l2::Responder) -> Self {
        self.state.l2 = l2;
        self
    }

    /// Starts a burst at `now_ns`: picks up a new table version and expires a
    /// few idle flows and fragment entries.
    pub fn begin(&mut self, now_ns: u64) {
        self.reader.refresh();
        self.state.l2.begin_burst();
        self.state.prefetched_len = 0;
        self.state.prefetched_next = 0;
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
        let swept = st.flows.sweep_visit(now_ns, buckets, |v| {
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
            st.publish_census(t);
        }
        st.counters.flows_live.set(st.flows.len() as u64);
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

impl Pipeline {
    /// The later stages of the burst prefetch, run before each frame's
    /// [`Pipeline::run`]: before the first, the flow slots of every frame
    /// (their buckets are in the caches by now); then, a few frames ahead,
    /// what a flow's value points at (the target's routing entry and
    /// counters, then its outer header template). Hints only.
    #[inline(always)]
    fn prefetch_ahead(&mut self) {
        let st = &mut self.state;
        let t = self.reader.tables();
        let burst = &st.prefetched[..st.prefetched_len];
        if st.prefetched_next == 0 {
            for e in burst.iter().filter(|e| e.lb != u32::MAX) {
                st.flows.prefetch_entry(e.bucket_hash);
            }
        }
        let at = st.prefetched_next;
        if let Some(e) = st.prefetched[..st.prefetched_len].get_mut(at + LOOKAHEAD_SLOT) {
            if e.lb != u32::MAX {
                if let Some(v) = st.flows.peek(&e.key, e.bucket_hash) {
                    e.template = v.template;
                    if let Some(c) = st.counters.targets.get(v.slot as usize) {
                        crate::io::prefetch(c);
                    }
                }
            }
        }
        if let Some(e) = st.prefetched[..st.prefetched_len].get(at + LOOKAHEAD_TEMPLATE) {
            if let Some(tpl) = t.templates.get(e.template as usize) {
                crate::io::prefetch(tpl);
                crate::io::prefetch(&tpl.slot);
            }
        }
        st.prefetched_next += 1;
        if st.prefetched_next >= st.prefetched_len {
            st.prefetched_len = 0;
            st.prefetched_next = 0;
        }
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
            self.prefetch_ahead();
        }
        self.run(frame).disposition()
    }

    /// Only with enough live flows: below [`PREFETCH_MIN_FLOWS`] the flow
    /// table stays in the caches.
    #[inline(always)]
    fn wants_prefetch(&self) -> bool {
        self.state.flows.len() >= PREFETCH_MIN_FLOWS
    }

    /// Stage 1 of the burst prefetch: the frame's flow-table bucket.
    #[inline]
    fn prefetch(&mut self, frame: &Frame<'_>) {
        let wanted = self.wants_prefetch();
        let st = &mut self.state;
        if st.prefetched_next > 0 {
            // A new burst (the last one was not processed to its end).
            st.prefetched_len = 0;
            st.prefetched_next = 0;
        }
        if st.prefetched_len == PREFETCH_MAX || !wanted {
            return;
        }
        let t = self.reader.tables();
        let mut entry = Prefetched {
            lb: u32::MAX,
            template: u32::MAX,
            ..Prefetched::default()
        };
        if let Some(f) = parse_fast(frame.data()) {
            if let Some(vip) = t.vip(f.dst) {
                entry.key = FlowKey::new(
                    f.src.to_be_bytes(),
                    f.dst.to_be_bytes(),
                    f.proto,
                    f.sport,
                    f.dport,
                    vip.vni,
                );
                entry.bucket_hash = entry.key.table_hash(st.seed);
                entry.lb = vip.lb;
                st.flows.prefetch_bucket(entry.bucket_hash);
            }
        }
        st.prefetched[st.prefetched_len] = entry;
        st.prefetched_len += 1;
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

/// The drop reason of a parse error.
#[inline]
fn malformed(e: WireError) -> DropReason {
    match e {
        WireError::BadIpv4Checksum => DropReason::BadChecksum,
        _ => DropReason::Malformed,
    }
}

/// Whether lbfwd may answer this packet itself: an IPv4 header must carry a
/// correct checksum (the parser leaves that to the targets for forwarded
/// packets, but lbfwd's own answers must not be triggered by a corrupt one).
#[inline]
fn header_ok_for_answer(frame: &Frame<'_>, p: &Parsed) -> bool {
    if p.version != IpVersion::V4 {
        return true;
    }
    let l3 = p.l3_offset as usize;
    let data = frame.data();
    let ihl = usize::from(data[l3] & 0x0f) * 4;
    data.get(l3..l3 + ihl)
        .is_some_and(crate::wire::checksum::verify)
}

/// The fast-path key of a 16-byte parsed address.
#[inline(always)]
fn key_of(addr: &[u8; 16]) -> u128 {
    u128::from_be_bytes(*addr)
}

/// What the fast path knows of a packet ([`parse_fast`]): much less than
/// [`Parsed`], and only for the common case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FastPacket {
    /// Offset of the IP header in the frame.
    l3: u16,
    /// Length of the IP packet (the frame may carry Ethernet padding after
    /// it); offset plus length fit in 16 bits.
    ip_len: u16,
    /// IP version.
    version: IpVersion,
    /// TOS (IPv4) or traffic class (IPv6).
    tos: u8,
    /// IP protocol: TCP, UDP or SCTP.
    proto: u8,
    /// Source address as a number (IPv4-mapped for IPv4).
    src: u128,
    /// Destination address as a number (IPv4-mapped for IPv4): the VIP key.
    dst: u128,
    /// Transport source port.
    sport: u16,
    /// Transport destination port.
    dport: u16,
}

#[inline(always)]
fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The fast path's parser: the common case only — Ethernet with no or one
/// VLAN tag, IPv4 without options and not a fragment, or IPv6 without
/// extension headers, carrying TCP, UDP or SCTP. `None` for everything
/// else, which the full parser ([`crate::wire::parse_frame`]) then handles.
///
/// A packet it accepts is one `parse_frame` accepts with the same fields
/// (the same length checks, in the same order of strictness), so both paths
/// reach the same verdict.
#[inline(always)]
fn parse_fast(d: &[u8]) -> Option<FastPacket> {
    let mut ty = rd16(d.get(..14)?, 12);
    let mut l3 = 14;
    if ty == 0x8100 || ty == 0x88a8 {
        ty = rd16(d.get(..18)?, 16);
        l3 = 18;
    }
    let b = d.get(l3..)?;
    let (version, tos, total, proto, src, dst, l4) = match ty {
        0x0800 => {
            let h = b.get(..20)?;
            // Version 4, no options.
            if h[0] != 0x45 {
                return None;
            }
            let total = usize::from(rd16(h, 2));
            // Neither MF nor a fragment offset.
            if rd16(h, 6) & 0x3fff != 0 || total > b.len() {
                return None;
            }
            const MAPPED: u128 = 0xffff << 32;
            let src = MAPPED | u128::from(u32::from_be_bytes([h[12], h[13], h[14], h[15]]));
            let dst = MAPPED | u128::from(u32::from_be_bytes([h[16], h[17], h[18], h[19]]));
            (
                IpVersion::V4,
                h[1],
                total,
                h[9],
                src,
                dst,
                b.get(20..total)?,
            )
        }
        0x86dd => {
            let h = b.get(..40)?;
            if h[0] >> 4 != 6 {
                return None;
            }
            let total = 40 + usize::from(rd16(h, 4));
            if total > b.len() || l3 + total > 0xffff {
                return None;
            }
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&h[8..24]);
            dst.copy_from_slice(&h[24..40]);
            let (src, dst) = (u128::from_be_bytes(src), u128::from_be_bytes(dst));
            let tclass = (h[0] << 4) | (h[1] >> 4);
            (IpVersion::V6, tclass, total, h[6], src, dst, &b[40..total])
        }
        _ => return None,
    };
    match proto {
        IPPROTO_TCP => {
            let h = l4.get(..20)?;
            let doff = usize::from(h[12] >> 4) * 4;
            if doff < 20 || doff > l4.len() {
                return None;
            }
        }
        IPPROTO_UDP => {
            let ulen = usize::from(rd16(l4.get(..8)?, 4));
            if ulen < 8 || ulen > l4.len() {
                return None;
            }
        }
        IPPROTO_SCTP => {
            l4.get(..12)?;
        }
        _ => return None,
    }
    Some(FastPacket {
        // Both fit: l3 is 14 or 18, l3 + total <= 0xffff (checked above
        // for IPv6; an IPv4 total length is a 16-bit field).
        l3: l3 as u16,
        ip_len: total as u16,
        version,
        tos,
        proto,
        src,
        dst,
        sport: rd16(l4, 0),
        dport: rd16(l4, 2),
    })
}

/// What the IPv4 express path knows of a packet ([`parse_v4`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct V4Packet {
    /// Length of the IP packet (the IP header starts at byte 14).
    ip_len: u16,
    /// TOS.
    tos: u8,
    /// IP protocol: TCP, UDP or SCTP.
    proto: u8,
    /// Source address.
    src: u32,
    /// Destination address: the VIP key.
    dst: u32,
    /// Transport source port.
    sport: u16,
    /// Transport destination port.
    dport: u16,
}

/// The express parser for the most common packet of all: untagged Ethernet,
/// IPv4 without options and not a fragment, TCP, UDP or SCTP, in a frame of
/// at least 54 bytes. Reads the headers through one fixed-size window (one
/// bounds check). `None` for everything else, which [`parse_fast`] then
/// handles; a packet it accepts is one [`parse_fast`] accepts with the same
/// fields (a unit test compares the two).
#[inline(always)]
fn parse_v4(d: &[u8]) -> Option<V4Packet> {
    let h: &[u8; 54] = d.get(..54)?.try_into().ok()?;
    // IPv4, version 4 with no options, neither MF nor a fragment offset.
    if h[12] != 0x08 || h[13] != 0x00 || h[14] != 0x45 || (h[20] & 0x3f) | h[21] != 0 {
        return None;
    }
    let total_field = u16::from_be_bytes([h[16], h[17]]);
    let total = usize::from(total_field);
    if 14 + total > d.len() {
        return None;
    }
    let l4_len = total.checked_sub(20)?;
    let proto = h[23];
    let l4_ok = match proto {
        IPPROTO_TCP => {
            let doff = usize::from(h[46] >> 4) * 4;
            l4_len >= 20 && doff >= 20 && doff <= l4_len
        }
        IPPROTO_UDP => {
            let ulen = usize::from(u16::from_be_bytes([h[38], h[39]]));
            l4_len >= 8 && ulen >= 8 && ulen <= l4_len
        }
        IPPROTO_SCTP => l4_len >= 12,
        _ => false,
    };
    if !l4_ok {
        return None;
    }
    Some(V4Packet {
        ip_len: total_field,
        tos: h[15],
        proto,
        src: u32::from_be_bytes([h[26], h[27], h[28], h[29]]),
        dst: u32::from_be_bytes([h[30], h[31], h[32], h[33]]),
        sport: u16::from_be_bytes([h[34], h[35]]),
        dport: u16::from_be_bytes([h[36], h[37]]),
    })
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

    /// Every stage for one frame: the IPv4 express path or the fast path
    /// when the packet is a common case, else the full path. Counts the
    /// verdict (each path where it knows it: the common one without a
    /// second dispatch on the verdict).
    #[inline(always)]
    fn process(&mut self, t: &Tables, frame: &mut Frame<'_>) -> Verdict {
        if let Some(f) = parse_v4(frame.data()) {
            return self.process_v4(t, frame, &f);
        }
        match parse_fast(frame.data()) {
            Some(f) => self.process_fast(t, frame, &f),
            None => {
                let verdict = frame.detached(|f| self.process_full(t, f));
                self.count(verdict, frame.len())
            }
        }
    }

    /// Counts `verdict` for a frame now `len` bytes long; returns it.
    #[inline(always)]
    fn count(&self, verdict: Verdict, len: usize) -> Verdict {
        let c = &self.counters;
        match verdict {
            Verdict::Tx => c.tx.count(len),
            Verdict::Host => c.host.count(len),
            Verdict::Drop(reason) => c.dropped(reason),
            Verdict::Held => c.fragments_held.inc(),
        }
        verdict
    }

    /// A packet of the express or fast path not to a VIP: the host's.
    #[inline(always)]
    fn not_vip(&self, len: usize) -> Verdict {
        self.counters.host_not_vip.inc();
        self.count(Verdict::Host, len)
    }

    /// The express path: a packet [`parse_v4`] took. Same verdict, counters
    /// and bytes as [`Self::process_fast`].
    #[inline(always)]
    fn process_v4(&mut self, t: &Tables, frame: &mut Frame<'_>, f: &V4Packet) -> Verdict {
        let Some(vip) = t.vip_v4(f.dst) else {
            return self.not_vip(frame.len());
        };
        let flow = FlowKey::v4(
            f.src.to_be_bytes(),
            f.dst.to_be_bytes(),
            f.proto,
            f.sport,
            f.dport,
            vip.vni,
        );
        let inner = Inner {
            l3: 14,
            ip_len: f.ip_len,
            version: IpVersion::V4,
            tos: f.tos,
        };
        self.forward_fast(t, frame, vip.lb, &flow, inner)
    }

    /// The fast path: an unfragmented TCP/UDP/SCTP packet without IPv4
    /// options or IPv6 extension headers ([`parse_fast`] said so). Gives the
    /// same verdict, counters and bytes as [`Self::process_full`] would.
    #[inline(always)]
    fn process_fast(&mut self, t: &Tables, frame: &mut Frame<'_>, f: &FastPacket) -> Verdict {
        let Some(vip) = t.vip(f.dst) else {
            return self.not_vip(frame.len());
        };
        let flow = FlowKey::new(
            f.src.to_be_bytes(),
            f.dst.to_be_bytes(),
            f.proto,
            f.sport,
            f.dport,
            vip.vni,
        );
        let inner = Inner {
            l3: f.l3,
            ip_len: f.ip_len,
            version: f.version,
            tos: f.tos,
        };
        self.forward_fast(t, frame, vip.lb, &flow, inner)
    }

    /// What the express and fast paths share once the packet's load
    /// balancer is known: trim, flow lookup and, for a flow seen before
    /// under the same tables, encapsulation through its target's template
    /// and counters, touching nothing of the load balancer. Everything else
    /// (a new flow, new tables, no usable template) takes
    /// [`Self::forward_slow`].
    #[inline(always)]
    fn forward_fast(
        &mut self,
        t: &Tables,
        frame: &mut Frame<'_>,
        lb_idx: u32,
        flow: &FlowKey,
        inner: Inner,
    ) -> Verdict {
        // Ethernet padding is not part of the packet.
        let end = usize::from(inner.l3) + usize::from(inner.ip_len);
        if frame.len() > end {
            frame.set_len(end);
        }
        let bucket_hash = flow.table_hash(self.seed);
        let found = self.flows.lookup(flow, bucket_hash, self.now).copied();
        if let Some(v) = found {
            if v.version == t.version as u32 {
                if let Some(tpl) = t.templates.get(v.template as usize) {
                    if !tpl.is_empty() {
                        let done =
                            encapsulate_template(tpl, t.underlay.mtu, v.hash(), frame, inner);
                        return self.forwarded(frame, tpl.slot(), done);
                    }
                }
            }
        }
        let slow = Slow {
            lb_idx,
            bucket_hash,
            found,
            inner,
        };
        frame.detached(|f| self.forward_slow(t, f, flow, slow))
    }

    /// The rest of the express and fast paths: port filter, flow pick (or
    /// re-validation under new tables), encapsulation (through the
    /// template, or in full when the template cannot serve), counters.
    #[inline(never)]
    fn forward_slow(
        &mut self,
        t: &Tables,
        frame: &mut Frame<'_>,
        flow: &FlowKey,
        slow: Slow,
    ) -> Verdict {
        let Some(lb) = t.lbs.get(slow.lb_idx as usize) else {
            return self.count(Verdict::Drop(DropReason::NoTarget), frame.len());
        };
        if lb.filter.allows(flow.proto, flow.dst_port) != Some(true) {
            let verdict = self.filtered(lb, DropReason::PortNotAllowed);
            return self.count(verdict, frame.len());
        }
        let Some((target, hash)) =
            self.pick_found(t, slow.lb_idx, lb, flow, slow.bucket_hash, slow.found)
        else {
            return self.count(Verdict::Drop(DropReason::NoTarget), frame.len());
        };
        let Some(tpl) = t.template(lb, target) else {
            return self.count(Verdict::Drop(DropReason::NoTarget), frame.len());
        };
        let done = if tpl.is_empty() {
            let target = &lb.targets[target as usize];
            encapsulate_inner(&t.underlay, lb.vni, target, hash, frame, slow.inner)
        } else {
            encapsulate_template(tpl, t.underlay.mtu, hash, frame, slow.inner)
        };
        self.forwarded(frame, tpl.slot(), done)
    }

    /// Counts the outcome of encapsulating a frame toward the target in
    /// counter slot `slot` and returns its verdict.
    #[inline(always)]
    fn forwarded(
        &mut self,
        frame: &mut Frame<'_>,
        slot: u32,
        done: Result<(), Encapsulation>,
    ) -> Verdict {
        let verdict = match done {
            Ok(()) => {
                if let Some(c) = self.counters.targets.get(slot as usize) {
                    c.count(frame.len());
                }
                self.counters.tx.count(frame.len());
                return Verdict::Tx;
            }
            Err(Encapsulation::TooBig { inner_mtu }) => {
                frame.detached(|f| self.too_big_reparsed(f, inner_mtu))
            }
            Err(Encapsulation::Drop(reason)) => Verdict::Drop(reason),
        };
        self.count(verdict, frame.len())
    }

    /// [`Self::too_big`] for the fast path, which has no [`Parsed`]: parses
    /// the (unchanged) frame in full first. Rare: packets over the MTU.
    #[cold]
    #[inline(never)]
    fn too_big_reparsed(&mut self, frame: &mut Frame<'_>, inner_mtu: u32) -> Verdict {
        match crate::wire::parse_frame(frame.data()) {
            Ok(ParsedFrame::Ip(p)) => self.too_big(frame, &p, inner_mtu),
            // The fast path parsed it: cannot happen, but never panic.
            _ => Verdict::Drop(DropReason::Malformed),
        }
    }

    /// The full path: every packet the fast path does not take.
    #[inline(never)]
    fn process_full(&mut self, t: &Tables, frame: &mut Frame<'_>) -> Verdict {
        let parsed = crate::wire::parse_frame(frame.data());
        let p = match &parsed {
            Ok(ParsedFrame::Ip(p)) => p,
            Ok(ParsedFrame::NotIp(n)) => {
                let arp = n.ethertype == EtherType::Arp;
                return self.l2.not_ip(t, frame, arp, usize::from(n.l3_offset));
            }
            Err(e) => return Verdict::Drop(malformed(*e)),
        };
        if p.protocol == IpProtocol::Icmpv6 {
            let (l3, l4) = (usize::from(p.l3_offset), usize::from(p.l4_offset));
            if let Some(answer) = self.l2.icmpv6(t, frame, l3, l4) {
                return answer;
            }
        }
        let Some((lb_idx, lb)) = t.lb_for(key_of(&p.dst)) else {
            self.counters.host_not_vip.inc();
            return Verdict::Host;
        };
        // Ethernet padding is not part of the packet.
        if frame.len() > p.ip_end() {
            frame.set_len(p.ip_end());
        }
        let proto = u8::from(p.protocol);
        if let L4Info::Icmp(info) = p.l4 {
            return self.icmp(t, lb_idx, lb, p, info, frame);
        }
        if !matches!(proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP) {
            return self.filtered(lb, DropReason::ProtocolNotAllowed);
        }
        let mut frag_key = None;
        if let Some(f) = p.frag {
            let key = FragKey {
                src: p.src,
                dst: p.dst,
                network: lb.vni,
                id: f.id,
                proto,
            };
            let info = FragInfo {
                offset: u32::from(f.offset),
                len: (p.ip_end() - p.l4_offset as usize) as u32,
                more: f.more,
            };
            if !f.is_first() {
                return match self
                    .frags
                    .later_fragment(&key, info, frame.data(), self.now)
                {
                    Later::Forward(v) => match t.target_in(lb_idx, v.slot) {
                        Some(i) => self.encap(t, lb, &lb.targets[i as usize], v.hash, frame, p),
                        None => Verdict::Drop(DropReason::NoTarget),
                    },
                    Later::Held => Verdict::Held,
                    Later::Drop(FragDrop::FirstRejected) => {
                        Verdict::Drop(DropReason::FragmentRejected)
                    }
                    Later::Drop(_) => Verdict::Drop(DropReason::FragmentOverflow),
                };
            }
            frag_key = Some((key, info));
        }
        let ports = match p.l4 {
            L4Info::Ports(ports) => ports,
            _ => {
                // A first fragment too short for its transport header.
                if let Some((key, info)) = frag_key {
                    self.frags.first_fragment(&key, info, None, self.now);
                }
                return Verdict::Drop(DropReason::Malformed);
            }
        };
        if lb.filter.allows(proto, ports.dst) != Some(true) {
            if let Some((key, info)) = frag_key {
                self.frags.first_fragment(&key, info, None, self.now);
            }
            return self.filtered(lb, DropReason::PortNotAllowed);
        }
        let flow = FlowKey::new(p.src, p.dst, proto, ports.src, ports.dst, lb.vni);
        let Some((target, hash)) = self.pick(t, lb_idx, lb, &flow) else {
            if let Some((key, info)) = frag_key {
                self.frags.first_fragment(&key, info, None, self.now);
            }
            return Verdict::Drop(DropReason::NoTarget);
        };
        let (verdict, forwarded) =
            self.encap_outcome(t, lb, &lb.targets[target as usize], hash, frame, p);
        if let Some((key, info)) = frag_key {
            // Later fragments follow the first only if it was really sent to
            // the target (not answered with "too big", not dropped).
            let value = forwarded.then_some(FragValue {
                slot: lb.targets[target as usize].slot,
                hash,
            });
            let held = self.frags.first_fragment(&key, info, value, self.now);
            if let (true, Some(value)) = (held > 0, value) {
                if self.pending_len < MAX_PENDING_RELEASES {
                    self.pending[self.pending_len] = Some(Release { key, value });
                    self.pending_len += 1;
                }
                // Else they stay held and time out (counted by the tracker).
            }
        }
        verdict
    }

    /// Counts a filter drop against the load balancer.
    #[inline]
    fn filtered(&self, lb: &LbTable, reason: DropReason) -> Verdict {
        self.counters.lb_drops[lb.slot as usize].inc();
        Verdict::Drop(reason)
    }

    /// The target index of a flow and its flow hash: its remembered target
    /// if that is still in the routing, else a Maglev pick (remembered).
    /// The flow hash (XXH3) is computed only for a flow not in the table;
    /// the table itself is indexed by the cheaper [`FlowKey::table_hash`].
    #[inline]
    fn pick(
        &mut self,
        t: &Tables,
        lb_idx: u32,
        lb: &LbTable,
        flow: &FlowKey,
    ) -> Option<(u32, u64)> {
        let bucket_hash = flow.table_hash(self.seed);
        let found = self.flows.lookup(flow, bucket_hash, self.now).copied();
        self.pick_found(t, lb_idx, lb, flow, bucket_hash, found)
    }

    /// [`Self::pick`] once the flow table was asked: `found` is what its
    /// lookup of `flow` (bucket hash `bucket_hash`) returned.
    fn pick_found(
        &mut self,
        t: &Tables,
        lb_idx: u32,
        lb: &LbTable,
        flow: &FlowKey,
        bucket_hash: u64,
        found: Option<FlowValue>,
    ) -> Option<(u32, u64)> {
        if let Some(v) = found {
            let hash = v.hash();
            if v.version == t.version as u32 {
                // Under these tables the flow's template lies in its load
                // balancer's range (checked: never index out of it).
                let index = v.template.wrapping_sub(lb.template_base);
                if (index as usize) < lb.targets.len() {
                    return Some((index, hash));
                }
            }
            // New tables since: is its target still in the routing? Else
            // re-pick this flow only.
            let index = match t.target_in(lb_idx, v.slot) {
                Some(i) => i,
                None => {
                    let i = lb.maglev.pick(hash)?;
                    self.counters.flow_repicks.inc();
                    i
                }
            };
            if let Some(entry) = self.flows.peek_mut(flow, bucket_hash) {
                *entry = FlowValue::new(t, lb, index, hash);
            }
            return Some((index, hash));
        }
        let hash = flow.flow_hash();
        let index = lb.maglev.pick(hash)?;
        self.flows.insert(
            *flow,
            bucket_hash,
            FlowValue::new(t, lb, index, hash),
            self.now,
        );
        self.counters.flow_picks.inc();
        Some((index, hash))
    }

    /// ICMP and ICMPv6 addressed to a VIP.
    fn icmp(
        &mut self,
        t: &Tables,
        lb_idx: u32,
        lb: &LbTable,
        p: &Parsed,
        info: IcmpInfo,
        frame: &mut Frame<'_>,
    ) -> Verdict {
        match info.kind {
            IcmpKind::EchoRequest { .. } => {
                if !lb.icmp_echo_reply {
                    return self.filtered(lb, DropReason::IcmpEcho);
                }
                if !header_ok_for_answer(frame, p) {
                    return Verdict::Drop(DropReason::BadChecksum);
                }
                match frame_echo_reply(frame, p) {
                    Ok(()) => {
                        self.counters.icmp_echo_replies.inc();
                        Verdict::Tx
                    }
                    Err(_) => Verdict::Drop(DropReason::Malformed),
                }
            }
            kind if kind.is_error() => {
                // The quoted packet is one a target sent from the VIP to the
                // client; reversed, it is the flow as lbfwd saw it.
                let Some(quoted) = info.embedded else {
                    return self.filtered(lb, DropReason::IcmpNoFlow);
                };
                if t.lb_for(key_of(&quoted.src)).map(|(i, _)| i) != Some(lb_idx) {
                    return self.filtered(lb, DropReason::IcmpNoFlow);
                }
                let flow_dir = quoted.reversed();
                let proto = u8::from(flow_dir.protocol);
                let (sport, dport) = match flow_dir.ports {
                    Some(ports) => {
                        if lb.filter.allows(proto, ports.dst) != Some(true) {
                            return self.filtered(lb, DropReason::IcmpNoFlow);
                        }
                        (ports.src, ports.dst)
                    }
                    None if lb.filter.allows_protocol(proto) => (0, 0),
                    None => return self.filtered(lb, DropReason::IcmpNoFlow),
                };
                let flow = FlowKey::new(flow_dir.src, flow_dir.dst, proto, sport, dport, lb.vni);
                let hash = flow.flow_hash();
                let remembered = self
                    .flows
                    .lookup(&flow, flow.table_hash(self.seed), self.now)
                    .and_then(|v| t.target_in(lb_idx, v.slot));
                let Some(target) = remembered.or_else(|| lb.maglev.pick(hash)) else {
                    return Verdict::Drop(DropReason::NoTarget);
                };
                let verdict = self.encap(t, lb, &lb.targets[target as usize], hash, frame, p);
                if verdict == Verdict::Tx {
                    self.counters.icmp_errors_forwarded.inc();
                }
                verdict
            }
            _ => self.filtered(lb, DropReason::IcmpOther),
        }
    }

    /// Encapsulates the packet toward `target`, or answers "too big".
    #[inline]
    fn encap(
        &mut self,
        t: &Tables,
        lb: &LbTable,
        target: &Target,
        hash: u64,
        frame: &mut Frame<'_>,
        p: &Parsed,
    ) -> Verdict {
        self.encap_outcome(t, lb, target, hash, frame, p).0
    }

    /// [`Self::encap`], also telling whether the packet went to the target
    /// (false when it was answered with "too big" or dropped).
    #[inline]
    fn encap_outcome(
        &mut self,
        t: &Tables,
        lb: &LbTable,
        target: &Target,
        hash: u64,
        frame: &mut Frame<'_>,
        p: &Parsed,
    ) -> (Verdict, bool) {
        match encapsulate(&t.underlay, lb.vni, target, hash, frame, p) {
            Ok(()) => {
                self.counters.targets[target.slot as usize].count(frame.len());
                (Verdict::Tx, true)
            }
            Err(Encapsulation::TooBig { inner_mtu }) => (self.too_big(frame, p, inner_mtu), false),
            Err(Encapsulation::Drop(reason)) => (Verdict::Drop(reason), false),
        }
    }

    /// Answers a packet that does not fit the underlay with ICMP
    /// frag-needed / packet-too-big from the VIP, rate-limited.
    fn too_big(&mut self, frame: &mut Frame<'_>, p: &Parsed, inner_mtu: u32) -> Verdict {
        // IPv4 without DF may be fragmented on the way, but lbfwd does not
        // fragment outer packets; ICMP errors are never answered with ICMP.
        let is_icmp_error = matches!(p.l4, L4Info::Icmp(i) if i.kind.is_error());
        if (p.version == IpVersion::V4 && !p.df) || is_icmp_error {
            return Verdict::Drop(DropReason::TooBig);
        }
        if !header_ok_for_answer(frame, p) {
            return Verdict::Drop(DropReason::BadChecksum);
        }
        if !self.too_big.take(self.now) {
            return Verdict::Drop(DropReason::TooBigRateLimited);
        }
        let mtu = match p.version {
            IpVersion::V4 => inner_mtu.max(68),
            IpVersion::V6 => inner_mtu.max(1280),
        };
        let vip = p.dst;
        match frame_too_big(frame, p, &vip, mtu) {
            Ok(()) => {
                self.counters.too_big_sent.inc();
                Verdict::Tx
            }
            Err(_) => Verdict::Drop(DropReason::TooBig),
        }
    }

    /// Encapsulates the held fragments released by accepted first
    /// fragments and emits them.
    fn release_held(&mut self, t: &Tables, emit: &mut dyn FnMut(&[u8]) -> bool) -> usize {
        let mut sent = 0;
        for i in 0..self.pending_len {
            let Some(release) = self.pending[i].take() else {
                continue;
            };
            let State {
                frags,
                scratch,
                counters,
                ..
            } = self;
            frags.take_held(&release.key, |held| {
                let verdict = encapsulate_copy(t, scratch, held, &release, emit);
                match verdict {
                    Ok(len) => {
                        counters.tx.count(len);
                        sent += 1;
                    }
                    Err(reason) => counters.dropped(reason),
                }
            });
        }
        self.pending_len = 0;
        sent
    }
}

/// Encapsulates a copy of a held fragment toward its datagram's target and
/// emits it; returns the length emitted.
fn encapsulate_copy(
    t: &Tables,
    scratch: &mut [u8],
    held: &[u8],
    release: &Release,
    emit: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<usize, DropReason> {
    if HEADROOM + held.len() > scratch.len() {
        return Err(DropReason::FragmentOverflow);
    }
    scratch[HEADROOM..HEADROOM + held.len()].copy_from_slice(held);
    let mut frame = Frame::new(scratch, HEADROOM, held.len());
    let p = match crate::wire::parse_frame(frame.data()) {
        Ok(ParsedFrame::Ip(p)) => p,
        _ => return Err(DropReason::Malformed),
    };
    let Some((lb_idx, lb)) = t.lb_for(key_of(&p.dst)) else {
        return Err(DropReason::NoTarget);
    };
    let Some(i) = t.target_in(lb_idx, release.value.slot) else {
        return Err(DropReason::NoTarget);
    };
    let target = &lb.targets[i as usize];
    if frame.len() > p.ip_end() {
        frame.set_len(p.ip_end());
    }
    match encapsulate(
        &t.underlay,
        lb.vni,
        target,
        release.value.hash,
        &mut frame,
        &p,
    ) {
        Ok(()) => {}
        Err(Encapsulation::TooBig { .. }) => return Err(DropReason::TooBig),
        Err(Encapsulation::Drop(reason)) => return Err(reason),
    }
    if emit(frame.data()) {
        Ok(frame.len())
    } else {
        Err(DropReason::FragmentOverflow)
    }
}

/// Why a packet was not encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encapsulation {
    /// The result would exceed the underlay MTU; the inner packet may be at
    /// most `inner_mtu` bytes.
    TooBig {
        /// Largest inner IP packet that fits.
        inner_mtu: u32,
    },
    /// It cannot be sent, for this reason.
    Drop(DropReason),
}

/// Bytes of the headers an encapsulation puts in front of the inner IP
/// packet, outer Ethernet not included: (outer IP, UDP, tunnel header,
/// inner Ethernet).
#[inline]
pub fn encap_overhead(encap: Encap, underlay: Underlay) -> usize {
    let outer_ip = match underlay {
        Underlay::V4(_) => 20,
        Underlay::V6(_) => 40,
    };
    outer_ip
        + match encap {
            Encap::IpIp => 0,
            Encap::Gue { .. } => 8,
            Encap::Vxlan { .. } => 8 + 8 + 14,
        }
}

/// The outer UDP source port of a flow: in the dynamic range, from the flow
/// hash, so the target's RSS spreads flows (RFC 7348 section 5).
#[inline]
pub fn udp_source_port(hash: u64) -> u16 {
    0xC000 | ((hash >> 48) as u16 & 0x3FFF)
}

/// Longest outer header lbfwd writes: Ethernet 14 + IPv6 40 + UDP 8 +
/// VXLAN 8 + inner Ethernet 14.
pub const MAX_ENCAP_LEN: usize = 84;

/// The outer headers toward one target, built with the tables: what
/// [`encapsulate`] writes, with the per-packet fields (lengths, checksums,
/// TOS / traffic class, UDP source port, flow label, inner EtherType or
/// IP-in-IP protocol) left zero. Per packet the fast path copies it and
/// patches those fields; the result is byte for byte what [`encapsulate`]
/// writes (a unit test compares the two).
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct EncapTemplate {
    /// The headers, outer Ethernet first; `len` bytes are used.
    bytes: [u8; MAX_ENCAP_LEN],
    /// Bytes of `bytes` in use; 0 when the template cannot be used (no
    /// underlay source address of the target's family, or an MTU too small
    /// for any packet): the full encapsulation then decides.
    /// Its length also tells its shape (see [`encapsulate_fixed`]).
    len: u8,
    /// Outer IPv4: the one's complement sum of the header with TOS, total
    /// length, protocol (IP-in-IP only) and checksum zero. Outer IPv6 with
    /// UDP: the pseudo-header sum without the length.
    sum: u16,
    /// The target's counter slot.
    slot: u32,
}

impl EncapTemplate {
    /// The template toward `target` (of a load balancer with network
    /// `vni`) under the underlay settings `u`.
    pub fn new(u: &UnderlayParams, vni: u32, target: &Target) -> Self {
        let outer_v6 = matches!(target.underlay, Underlay::V6(_));
        let ipip = u.encap == Encap::IpIp;
        let vxlan = matches!(u.encap, Encap::Vxlan { .. });
        let mut t = EncapTemplate {
            bytes: [0; MAX_ENCAP_LEN],
            len: 0,
            sum: 0,
            slot: target.slot,
        };
        // Let the reference write the headers in front of a minimal inner
        // IPv4 header (hash 0, TOS 0), then clear the per-packet fields.
        let mut buf = [0u8; HEADROOM + 20];
        buf[HEADROOM] = 0x45;
        buf[HEADROOM + 3] = 20;
        let mut frame = Frame::new(&mut buf, HEADROOM, 20);
        let inner = Inner {
            l3: 0,
            ip_len: 20,
            version: IpVersion::V4,
            tos: 0,
        };
        if encapsulate_inner(u, vni, target, 0, &mut frame, inner).is_err() {
            return t;
        }
        let len = frame.len() - 20;
        t.bytes[..len].copy_from_slice(&frame.data()[..len]);
        let b = &mut t.bytes;
        if outer_v6 {
            b[14..20].fill(0); // version, traffic class, flow label, length
            b[14] = 0x60;
            if ipip {
                b[20] = 0;
            } else {
                b[58..62].fill(0); // UDP length, checksum
                b[54..56].fill(0); // UDP source port
                let mut src = [0u8; 16];
                let mut dst = [0u8; 16];
                src.copy_from_slice(&b[22..38]);
                dst.copy_from_slice(&b[38..54]);
                t.sum = checksum::pseudo_header_v6(&src, &dst, IPPROTO_UDP, 0);
            }
        } else {
            b[15..18].fill(0); // TOS, total length
            b[24..26].fill(0); // checksum
            if ipip {
                b[23] = 0;
            } else {
                b[34..36].fill(0); // UDP source port
                b[38..40].fill(0); // UDP length
            }
            t.sum = checksum::sum(&b[14..34]);
        }
        if vxlan {
            b[len - 2..len].fill(0);
        }
        t.len = len as u8;
        t
    }

    /// Bytes of outer headers it writes (0: not usable).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when the template cannot be used (see [`EncapTemplate::new`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The target's counter slot.
    #[inline(always)]
    pub fn slot(&self) -> u32 {
        self.slot
    }
}

/// [`encapsulate`] with a target's [`EncapTemplate`] (not empty): the same
/// checks in the same order, the same bytes. Each outer header shape has its
/// own length, so the length picks a copy of [`encapsulate_fixed`] whose
/// offsets are constants (a fixed-size copy, no bounds checks per field).
#[inline(always)]
fn encapsulate_template(
    tpl: &EncapTemplate,
    mtu: u16,
    hash: u64,
    frame: &mut Frame<'_>,
    p: Inner,
) -> Result<(), Encapsulation> {
    match tpl.len {
        34 => encapsulate_fixed::<34>(tpl, mtu, hash, frame, p),
        42 => encapsulate_fixed::<42>(tpl, mtu, hash, frame, p),
        54 => encapsulate_fixed::<54>(tpl, mtu, hash, frame, p),
        62 => encapsulate_fixed::<62>(tpl, mtu, hash, frame, p),
        64 => encapsulate_fixed::<64>(tpl, mtu, hash, frame, p),
        84 => encapsulate_fixed::<84>(tpl, mtu, hash, frame, p),
        // Every template has one of the lengths above; never panic anyway.
        _ => Err(Encapsulation::Drop(DropReason::Malformed)),
    }
}

/// [`encapsulate_template`] for a template of `LEN` bytes. The length says
/// the shape: outer IPv4 with IP-in-IP (34), GUE (42) or VXLAN (64); outer
/// IPv6 with IP-in-IP (54), GUE (62) or VXLAN (84).
#[inline(always)]
fn encapsulate_fixed<const LEN: usize>(
    tpl: &EncapTemplate,
    mtu: u16,
    hash: u64,
    frame: &mut Frame<'_>,
    p: Inner,
) -> Result<(), Encapsulation> {
    let outer_v6 = matches!(LEN, 54 | 62 | 84);
    let ipip = matches!(LEN, 34 | 54);
    let vxlan = matches!(LEN, 64 | 84);
    let overhead = LEN - 14;
    let ip_len = usize::from(p.ip_len);
    if overhead + ip_len > usize::from(mtu) {
        return Err(Encapsulation::TooBig {
            inner_mtu: u32::from(mtu).saturating_sub(overhead as u32),
        });
    }
    let tos = p.tos;
    let Some(h) = frame.prepend_array::<LEN>(usize::from(p.l3)) else {
        return Err(Encapsulation::Drop(DropReason::NoHeadroom));
    };
    h.copy_from_slice(&tpl.bytes[..LEN]);
    let inner_v6 = p.version == IpVersion::V6;
    let ip_proto = if inner_v6 { 41u8 } else { 4 };
    let udp_len = (ip_len + overhead - if outer_v6 { 40 } else { 20 }) as u16;
    if vxlan {
        h[LEN - 2] = if inner_v6 { 0x86 } else { 0x08 };
        h[LEN - 1] = if inner_v6 { 0xdd } else { 0x00 };
    }
    if outer_v6 {
        let word = (6u32 << 28) | (u32::from(tos) << 20) | flow_label_from_hash(hash as u32);
        h[14..18].copy_from_slice(&word.to_be_bytes());
        h[18..20].copy_from_slice(&udp_len.to_be_bytes());
        if ipip {
            h[20] = ip_proto;
        } else {
            h[54..56].copy_from_slice(&udp_source_port(hash).to_be_bytes());
            h[58..60].copy_from_slice(&udp_len.to_be_bytes());
            // Required over IPv6 (RFC 8200 section 8.1): the whole datagram.
            let pseudo = checksum::fold32(u32::from(tpl.sum) + u32::from(udp_len));
            let c = checksum::checksum_with(pseudo, &frame.data()[54..]);
            let c = if c == 0 { 0xffff } else { c };
            frame.data_mut()[60..62].copy_from_slice(&c.to_be_bytes());
        }
    } else {
        let total = (ip_len + overhead) as u16;
        let proto = if ipip { ip_proto } else { 0 };
        let c = !checksum::fold32(
            u32::from(tpl.sum) + u32::from(tos) + u32::from(total) + u32::from(proto),
        );
        h[15] = tos;
        h[16..18].copy_from_slice(&total.to_be_bytes());
        h[24..26].copy_from_slice(&c.to_be_bytes());
        if ipip {
            h[23] = ip_proto;
        } else {
            h[34..36].copy_from_slice(&udp_source_port(hash).to_be_bytes());
            h[38..40].copy_from_slice(&udp_len.to_be_bytes());
        }
    }
    Ok(())
}

/// Encapsulates the IP packet of `frame` (summarised by `p`, Ethernet
/// padding already trimmed) toward `target`, in place: the outer headers are
/// written in front of the inner IP header, over the old Ethernet header and
/// into the headroom; the inner packet is not touched.
#[inline]
pub fn encapsulate(
    u: &UnderlayParams,
    vni: u32,
    target: &Target,
    hash: u64,
    frame: &mut Frame<'_>,
    p: &Parsed,
) -> Result<(), Encapsulation> {
    let tos = tos_at(frame.data(), usize::from(p.l3_offset), p.version)
        .ok_or(Encapsulation::Drop(DropReason::Malformed))?;
    let inner = Inner {
        l3: p.l3_offset,
        ip_len: p.ip_len,
        version: p.version,
        tos,
    };
    encapsulate_inner(u, vni, target, hash, frame, inner)
}

/// What [`State::forward_fast`] hands to [`State::forward_slow`].
#[derive(Clone, Copy, Debug)]
struct Slow {
    /// The load balancer's index.
    lb_idx: u32,
    /// The flow's bucket hash.
    bucket_hash: u64,
    /// What the flow table held for the flow.
    found: Option<FlowValue>,
    /// Where the inner packet sits.
    inner: Inner,
}

/// Where the inner IP packet sits in a frame: all that encapsulation needs
/// to know of it.
///
/// Eight bytes (the parsers bound offset and length to 16 bits): passed and
/// kept in one register.
#[derive(Clone, Copy, Debug)]
struct Inner {
    /// Offset of its IP header.
    l3: u16,
    /// Its length.
    ip_len: u16,
    /// Its IP version.
    version: IpVersion,
    /// Its TOS (IPv4) or traffic class (IPv6), copied into the outer
    /// header.
    tos: u8,
}

/// The TOS (IPv4) or traffic class (IPv6) of the IP header at `l3`.
#[inline]
fn tos_at(data: &[u8], l3: usize, version: IpVersion) -> Option<u8> {
    let b = data.get(l3..l3 + 2)?;
    Some(match version {
        IpVersion::V4 => b[1],
        IpVersion::V6 => (b[0] << 4) | (b[1] >> 4),
    })
}

/// [`encapsulate`] on the position of the inner packet.
#[inline]
fn encapsulate_inner(
    u: &UnderlayParams,
    vni: u32,
    target: &Target,
    hash: u64,
    frame: &mut Frame<'_>,
    p: Inner,
) -> Result<(), Encapsulation> {
    let l3 = usize::from(p.l3);
    let inner_len = usize::from(p.ip_len);
    let overhead = encap_overhead(u.encap, target.underlay);
    if overhead + inner_len > usize::from(u.mtu) {
        return Err(Encapsulation::TooBig {
            inner_mtu: u32::from(u.mtu).saturating_sub(overhead as u32),
        });
    }
    let inner_ethertype = match p.version {
        IpVersion::V4 => EtherType::Ipv4,
        IpVersion::V6 => EtherType::Ipv6,
    };
    let outer_len = 14 + overhead;
    // Check everything before the first write: a refusal leaves the frame
    // as it was.
    match target.underlay {
        Underlay::V4(_) if u.source_ipv4.is_none() => {
            return Err(Encapsulation::Drop(DropReason::NoUnderlaySource))
        }
        Underlay::V6(_) if u.source_ipv6.is_none() => {
            return Err(Encapsulation::Drop(DropReason::NoUnderlaySource))
        }
        _ => {}
    }
    if !frame.adjust_head(l3 as isize - outer_len as isize) {
        return Err(Encapsulation::Drop(DropReason::NoHeadroom));
    }
    let data = frame.data_mut();
    let tos = p.tos;
    let (outer_ethertype, ip_hdr) = match target.underlay {
        Underlay::V4(_) => (EtherType::Ipv4, 20),
        Underlay::V6(_) => (EtherType::Ipv6, 40),
    };
    let (proto, udp_port) = match (u.encap, p.version) {
        (Encap::IpIp, IpVersion::V4) => (IpProtocol::Ipv4, 0),
        (Encap::IpIp, IpVersion::V6) => (IpProtocol::Ipv6, 0),
        (Encap::Gue { port }, _) | (Encap::Vxlan { port }, _) => (IpProtocol::Udp, port),
    };
    let bad = |_| Encapsulation::Drop(DropReason::NoHeadroom);
    EthernetRepr {
        dst: u.next_hop_mac,
        src: u.source_mac,
        ethertype: outer_ethertype,
    }
    .emit(&mut data[..14])
    .map_err(bad)?;
    let payload_len = data.len() - 14 - ip_hdr;
    let src_port = udp_source_port(hash);
    if let Encap::Vxlan { .. } = u.encap {
        VxlanRepr { vni }
            .emit(&mut data[14 + ip_hdr + 8..14 + ip_hdr + 16])
            .map_err(bad)?;
        EthernetRepr {
            dst: target.mac,
            src: u.source_mac,
            ethertype: inner_ethertype,
        }
        .emit(&mut data[14 + ip_hdr + 16..14 + ip_hdr + 30])
        .map_err(bad)?;
    }
    match target.underlay {
        Underlay::V4(dst) => {
            let src = u.source_ipv4.map(|a| a.octets()).unwrap_or_default();
            Ipv4Repr {
                src,
                dst,
                protocol: proto,
                payload_len,
                ttl: crate::wire::ipv4::DEFAULT_TTL,
                dont_frag: true,
                ident: 0,
                tos,
            }
            .emit(&mut data[14..34])
            .map_err(bad)?;
            if proto == IpProtocol::Udp {
                // The UDP checksum is optional over IPv4 (RFC 768, RFC 7348
                // section 5): zero, so the inner packet is never read twice.
                emit_udp_ipv4(&mut data[34..], src_port, udp_port, src, dst, false).map_err(bad)?;
            }
        }
        Underlay::V6(dst) => {
            let src = u.source_ipv6.map(|a| a.octets()).unwrap_or_default();
            Ipv6Repr {
                src,
                dst,
                next_header: proto,
                payload_len,
                hop_limit: DEFAULT_HOP_LIMIT,
                traffic_class: tos,
                flow_label: flow_label_from_hash(hash as u32),
            }
            .emit(&mut data[14..54])
            .map_err(bad)?;
            if proto == IpProtocol::Udp {
                emit_udp_ipv6(&mut data[54..], src_port, udp_port, &src, &dst).map_err(bad)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A well-formed frame: Ethernet (no, one or two VLAN tags), IPv4 (with
    /// or without options) or IPv6, TCP/UDP/SCTP/ICMP, `payload` bytes, and
    /// `pad` bytes of Ethernet padding.
    fn frame(r: &mut Rng, v6: bool, tags: usize, proto: u8, payload: usize, pad: usize) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for i in 0..tags {
            f.extend_from_slice(if i == 0 { &[0x88, 0xa8] } else { &[0x81, 0x00] });
            f.extend_from_slice(&[0, 7]);
        }
        let l4_len = match proto {
            IPPROTO_TCP => 20,
            IPPROTO_UDP => 8,
            IPPROTO_SCTP => 12,
            _ => 8,
        } + payload;
        let tos = r.next() as u8;
        if v6 {
            f.extend_from_slice(&[0x86, 0xdd]);
            let word = (6u32 << 28) | (u32::from(tos) << 20) | (r.next() as u32 & 0xf_ffff);
            f.extend_from_slice(&word.to_be_bytes());
            f.extend_from_slice(&(l4_len as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(
                &(0x2001_0db8_c000u128 << 80 | r.below(1000) as u128).to_be_bytes(),
            );
            f.extend_from_slice(&(0x2001_0db8_0100u128 << 80 | 5).to_be_bytes());
        } else {
            f.extend_from_slice(&[0x08, 0x00]);
            let opts = if r.below(8) == 0 { 4 } else { 0 };
            let total = (20 + opts + l4_len) as u16;
            f.push(0x45 + (opts / 4) as u8);
            f.push(tos);
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
            f.extend_from_slice(&[198, 18, r.next() as u8, 1]);
            f.extend_from_slice(&[203, 0, 113, 5]);
            f.extend(std::iter::repeat_n(1u8, opts));
        }
        let sport = r.next() as u16;
        let dport: u16 = if r.below(2) == 0 { 80 } else { 1500 };
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        match proto {
            IPPROTO_TCP => {
                f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 2, 1, 0, 0, 0, 0, 0])
            }
            IPPROTO_UDP => {
                f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
                f.extend_from_slice(&[0, 0]);
            }
            _ => f.extend_from_slice(&[0; 8][..l4_len - payload - 4]),
        }
        f.extend((0..payload).map(|i| i as u8));
        f.extend(std::iter::repeat_n(0u8, pad));
        f
    }

    /// Random damage: one byte of the headers changed, or the frame cut.
    fn damage(r: &mut Rng, f: &mut Vec<u8>) {
        match r.below(4) {
            0 => {}
            1 => {
                let at = r.below(f.len().min(80) as u64) as usize;
                f[at] = r.next() as u8;
            }
            2 => {
                let at = 12 + r.below(f.len().min(80) as u64 - 12) as usize;
                f[at] ^= 1 << r.below(8);
            }
            _ => f.truncate(r.below(f.len() as u64 + 1) as usize),
        }
    }

    /// Whatever `parse_fast` accepts, `parse_frame` accepts with the same
    /// fields; and every common-case packet takes the fast path.
    #[test]
    fn fast_parser_agrees_with_the_full_parser() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let mut fast = 0;
        for _ in 0..200_000 {
            let v6 = r.below(2) == 0;
            let tags = r.below(3) as usize;
            let proto = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, 1, 58][r.below(5) as usize];
            let (payload, pad) = (r.below(40) as usize, r.below(3) as usize * 7);
            let mut f = frame(&mut r, v6, tags, proto, payload, pad);
            damage(&mut r, &mut f);
            let full = crate::wire::parse_frame(&f);
            match parse_fast(&f) {
                Some(q) => {
                    fast += 1;
                    let Ok(ParsedFrame::Ip(p)) = full else {
                        panic!("fast path took what the full parser refuses: {f:02x?} {full:?}");
                    };
                    assert_eq!(p.frag, None, "{f:02x?}");
                    assert_eq!(p.l3_offset, q.l3);
                    assert_eq!(p.ip_len, q.ip_len);
                    assert_eq!(p.version, q.version);
                    assert_eq!(
                        Some(q.tos),
                        tos_at(&f, usize::from(q.l3), p.version),
                        "{f:02x?}"
                    );
                    assert_eq!(u8::from(p.protocol), q.proto);
                    assert_eq!((p.src, p.dst), (q.src.to_be_bytes(), q.dst.to_be_bytes()));
                    assert_eq!(
                        p.l4,
                        L4Info::Ports(crate::wire::Ports {
                            src: q.sport,
                            dst: q.dport
                        })
                    );
                }
                None => {
                    if let Ok(ParsedFrame::Ip(p)) = full {
                        let common = p.vlans.count <= 1
                            && p.frag.is_none()
                            && matches!(p.l4, L4Info::Ports(_))
                            && p.l4_offset - p.l3_offset
                                == if p.version == IpVersion::V4 { 20 } else { 40 };
                        assert!(!common, "common packet missed the fast path: {f:02x?}");
                    }
                }
            }
        }
        assert!(fast > 50_000, "only {fast} frames took the fast path");
    }

    #[test]
    fn express_parser_agrees_with_the_fast_parser() {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let mut express = 0;
        for _ in 0..200_000 {
            let v6 = r.below(4) == 0;
            let tags = r.below(4).saturating_sub(2) as usize;
            let proto = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, 1][r.below(4) as usize];
            let (payload, pad) = (r.below(40) as usize, r.below(3) as usize * 7);
            let mut f = frame(&mut r, v6, tags, proto, payload, pad);
            damage(&mut r, &mut f);
            let fast = parse_fast(&f);
            match parse_v4(&f) {
                Some(e) => {
                    express += 1;
                    let Some(q) = fast else {
                        panic!("express path took what the fast parser refuses: {f:02x?}");
                    };
                    assert_eq!((q.l3, q.version), (14, IpVersion::V4), "{f:02x?}");
                    assert_eq!(
                        (q.ip_len, q.proto, q.tos),
                        (e.ip_len, e.proto, e.tos),
                        "{f:02x?}"
                    );
                    assert_eq!(q.src, (0xffff << 32) | u128::from(e.src), "{f:02x?}");
                    assert_eq!(q.dst, (0xffff << 32) | u128::from(e.dst), "{f:02x?}");
                    assert_eq!((q.sport, q.dport), (e.sport, e.dport), "{f:02x?}");
                }
                None => {
                    // Only untagged IPv4 in frames of 54 bytes or more must
                    // take the express path when the fast path takes them.
                    if let Some(q) = fast {
                        assert!(
                            q.l3 != 14 || q.version != IpVersion::V4 || f.len() < 54,
                            "express path missed a packet the fast path took: {f:02x?}"
                        );
                    }
                }
            }
        }
        assert!(
            express > 30_000,
            "only {express} frames took the express path"
        );
    }

    fn underlay(encap: Encap, mtu: u16) -> UnderlayParams {
        UnderlayParams {
            encap,
            source_ipv4: Some(Ipv4Addr::new(10, 0, 2, 2)),
            source_ipv6: Some(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2)),
            source_mac: [2, 0, 0, 0, 2, 2],
            next_hop_mac: [2, 0, 0, 0, 2, 1],
            mtu,
        }
    }

    fn target(v6: bool) -> Target {
        Target {
            name: "t".into(),
            uid: String::new(),
            underlay: if v6 {
                Underlay::V6(Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 7).octets())
            } else {
                Underlay::V4([10, 0, 3, 7])
            },
            mac: [2, 0, 0, 0, 3, 7],
            weight: 1,
            slot: 3,
        }
    }

    /// The template path writes exactly what the reference `encapsulate`
    /// writes, and refuses exactly what it refuses, for every encapsulation,
    /// both underlay and inner families, VLAN tags, padding, TOS and hash.
    #[test]
    fn template_encapsulation_equals_the_reference() {
        let mut r = Rng(7);
        for encap in [
            Encap::IpIp,
            Encap::Gue { port: 6080 },
            Encap::Vxlan { port: 4789 },
        ] {
            for outer_v6 in [false, true] {
                for mtu in [1500u16, 110] {
                    let u = underlay(encap, mtu);
                    let tgt = target(outer_v6);
                    let tpl = EncapTemplate::new(&u, 0x00ab_cdef, &tgt);
                    assert!(!tpl.is_empty());
                    assert_eq!(tpl.len(), 14 + encap_overhead(encap, tgt.underlay));
                    for _ in 0..300 {
                        let v6 = r.below(2) == 0;
                        let proto = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP][r.below(3) as usize];
                        let (tags, payload, pad) = (
                            r.below(2) as usize,
                            r.below(100) as usize,
                            r.below(2) as usize * 5,
                        );
                        let f = frame(&mut r, v6, tags, proto, payload, pad);
                        let Some(q) = parse_fast(&f) else {
                            continue;
                        };
                        let Ok(ParsedFrame::Ip(p)) = crate::wire::parse_frame(&f) else {
                            unreachable!()
                        };
                        let hash = r.next();
                        let run = |template: bool| {
                            let mut buf = vec![0u8; HEADROOM + f.len()];
                            buf[HEADROOM..].copy_from_slice(&f);
                            let mut fr = Frame::new(&mut buf, HEADROOM, p.ip_end());
                            let inner = Inner {
                                l3: q.l3,
                                ip_len: q.ip_len,
                                version: q.version,
                                tos: q.tos,
                            };
                            let res = if template {
                                encapsulate_template(&tpl, u.mtu, hash, &mut fr, inner)
                            } else {
                                encapsulate(&u, 0x00ab_cdef, &tgt, hash, &mut fr, &p)
                            };
                            (res, fr.data().to_vec())
                        };
                        assert_eq!(
                            run(true),
                            run(false),
                            "{encap:?} outer v6 {outer_v6} mtu {mtu}: {f:02x?}"
                        );
                    }
                }
            }
        }
    }

    /// A load balancer of network `n` (VNI 100) on `ips`, TCP port 80
    /// only, with `targets` targets `NAME0..` at 10.0.3.0.. (weight 1).
    fn tcp80_lb(
        name: &str,
        ips: &[&str],
        targets: u8,
    ) -> lbfwd_config::model::ResolvedLoadBalancer {
        use lbfwd_config::model::*;
        ResolvedLoadBalancer {
            name: name.into(),
            lb_type: LoadBalancerType::Public,
            network: "n".into(),
            vni: 100,
            ips: ips
                .iter()
                .map(|a| AssignedIp {
                    addr: a.parse().unwrap(),
                    pool: None,
                })
                .collect(),
            ports: vec![PortRange {
                protocol: Protocol::Tcp,
                first: 80,
                last: 80,
            }],
            icmp_echo: IcmpEcho::Drop,
            maglev_table_size: 251,
            destinations: (0..targets)
                .map(|i| Destination {
                    name: format!("{name}{i}"),
                    uid: String::new(),
                    underlay: std::net::IpAddr::V4(Ipv4Addr::new(10, 0, 3, i)),
                    mac: Some(MacAddr([2, 0, 0, 0, 3, i])),
                    weight: 1,
                })
                .collect(),
        }
    }

    /// The sweep counts each load balancer's live flows: after a full pass
    /// the counters hold them, and after the flows time out, 0.
    #[test]
    fn sweep_counts_live_flows_per_load_balancer() {
        use crate::tables::{Publisher, TableBuilder};
        use lbfwd_config::model::*;
        let resolved = Resolved {
            load_balancers: vec![
                tcp80_lb("web", &["203.0.113.5"], 4),
                tcp80_lb("api", &["203.0.113.6"], 2),
            ],
        };
        let u = underlay(Encap::Vxlan { port: 4789 }, 1500);
        let (tables, _) = TableBuilder::new().build(&resolved, &u, 1).unwrap();
        let slots: Vec<usize> = tables.lbs.iter().map(|l| l.slot as usize).collect();
        let publisher = Publisher::new(tables, 1);
        let config = PipelineConfig::default();
        let mut p = Pipeline::new(publisher.reader(0), Arc::default(), &config).unwrap();
        let mut r = Rng(7);
        let mut send = |p: &mut Pipeline, vip_last: u8, flow: u16| {
            let mut f = frame(&mut r, false, 0, IPPROTO_TCP, 10, 0);
            f[33] = vip_last;
            let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
            f[l4..l4 + 2].copy_from_slice(&flow.to_be_bytes());
            f[l4 + 2..l4 + 4].copy_from_slice(&80u16.to_be_bytes());
            let mut buf = [vec![0; HEADROOM], f].concat();
            let len = buf.len() - HEADROOM;
            let d = p
                .run(&mut Frame::new(&mut buf, HEADROOM, len))
                .disposition();
            assert_eq!(d, Disposition::Tx);
        };
        let second = 1_000_000_000u64;
        p.begin(second);
        for flow in 0..30 {
            send(&mut p, 5, 1000 + flow);
        }
        for flow in 0..12 {
            send(&mut p, 6, 2000 + flow);
        }
        let flows = |p: &Pipeline| -> Vec<u64> {
            slots
                .iter()
                .map(|s| p.counters().lb_flows[*s].get())
                .collect()
        };
        assert_eq!(flows(&p), [0, 0], "nothing counted before a pass ends");
        // Two passes' worth of busy sweeps (4 buckets each): one whole
        // pass after the flows came.
        let calls = 2 * config.flow_capacity / SWEEP_BUCKETS_BUSY;
        for _ in 0..calls {
            p.begin(2 * second);
        }
        assert_eq!(flows(&p), [30, 12]);
        assert_eq!(p.flows(), 42);
        // Idle longer than the TCP timeout: the sweep of idle turns (256
        // buckets each) frees them all within two passes.
        for _ in 0..2 * config.flow_capacity / SWEEP_BUCKETS_IDLE {
            p.idle(400 * second);
        }
        assert_eq!(flows(&p), [0, 0]);
        assert_eq!(p.flows(), 0);
    }

    /// The burst prefetch is a hint: with it (bursts of 32, more flows than
    /// [`PREFETCH_MIN_FLOWS`], so it runs) every frame gets the same
    /// disposition and bytes as without.
    #[test]
    fn prefetch_changes_no_result() {
        use crate::tables::{Publisher, TableBuilder};
        use lbfwd_config::model::*;
        let resolved = Resolved {
            load_balancers: vec![tcp80_lb("web", &["203.0.113.5", "2001:db8:100::5"], 4)],
        };
        let u = underlay(Encap::Vxlan { port: 4789 }, 1500);
        let (tables, _) = TableBuilder::new().build(&resolved, &u, 1).unwrap();
        let publisher = Publisher::new(tables, 2);
        let config = PipelineConfig::default();
        let mut with = Pipeline::new(publisher.reader(0), Arc::default(), &config).unwrap();
        let mut without = Pipeline::new(publisher.reader(1), Arc::default(), &config).unwrap();
        let mut r = Rng(99);
        let frames: Vec<Vec<u8>> = (0..20_000u32)
            .map(|i| {
                let mut f = frame(
                    &mut r,
                    i % 3 == 0,
                    (i % 5 == 0) as usize,
                    IPPROTO_TCP,
                    10,
                    0,
                );
                // Distinct flows: the source port from the index.
                let l3 = if i % 5 == 0 { 18 } else { 14 };
                let l4 = l3 + if i % 3 == 0 { 40 } else { 20 };
                f[l4..l4 + 2].copy_from_slice(&(i as u16).to_be_bytes());
                f
            })
            .collect();
        let mut prefetched = 0;
        for round in 0..2 {
            for (n, chunk) in frames.chunks(32).enumerate() {
                let now = (round * 1000 + n as u64) * 1000;
                with.begin(now);
                without.begin(now);
                let mut a: Vec<Vec<u8>> = chunk
                    .iter()
                    .map(|f| [vec![0; HEADROOM], f.clone()].concat())
                    .collect();
                let mut b = a.clone();
                for buf in &mut a {
                    let len = buf.len() - HEADROOM;
                    with.prefetch(&Frame::new(buf, HEADROOM, len));
                }
                prefetched += with.state.prefetched_len;
                for (x, y) in a.iter_mut().zip(&mut b) {
                    let len = x.len() - HEADROOM;
                    let mut fx = Frame::new(x, HEADROOM, len);
                    let mut fy = Frame::new(y, HEADROOM, len);
                    let dx = with.process(&mut fx);
                    let dy = without.run(&mut fy).disposition();
                    assert_eq!((dx, fx.data()), (dy, fy.data()));
                }
            }
        }
        assert!(
            prefetched > 10_000,
            "the prefetch stages ran ({prefetched} frames)"
        );
        let tx = with.counters().tx.packets.get();
        assert_eq!(tx, without.counters().tx.packets.get());
        assert!(tx > 15_000, "about half the frames go to port 80: {tx}");
    }

    #[test]
    fn template_without_underlay_source_is_empty() {
        let mut u = underlay(Encap::Vxlan { port: 4789 }, 1500);
        u.source_ipv6 = None;
        assert!(EncapTemplate::new(&u, 1, &target(true)).is_empty());
        assert!(!EncapTemplate::new(&u, 1, &target(false)).is_empty());
    }
}
