//! What one worker's pipeline remembers, and the verdict every stage
//! returns: the bottom layer of the pipeline, which every stage file uses and
//! which uses none of them. [`State`] holds the flow table (of
//! [`FlowValue`]s), the fragment tracker (of [`FragValue`]s) and the held
//! fragments waiting for release, the too-big token bucket, the burst
//! prefetch's notes and the per-load-balancer flow census.

use crate::counters::{DropReason, WorkerCounters};
use crate::flow::frag::{FragKey, FragTracker};
use crate::flow::{FlowKey, FlowTable};
use crate::frame::HEADROOM;
use crate::io::Disposition;
use crate::tables::{LbTable, Tables};
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

/// What a flow remembers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(super) struct FlowValue {
    /// The target's stable slot.
    pub slot: u32,
    /// The flow hash (XXH3, [`FlowKey::flow_hash`]) as two halves (keeps the
    /// value 4-byte aligned, the table slot small): computed once, on the
    /// flow's first packet, for its Maglev pick, outer UDP source port and
    /// flow label.
    pub hash: [u32; 2],
    /// The index of the target's outer-header template in
    /// [`Tables::templates`] of version `version`: a flow seen again under
    /// the same tables goes straight there, without its load balancer's
    /// [`LbTable`], its port filter (the flow passed it under these tables)
    /// or [`Tables::target_in`].
    pub template: u32,
    /// The low 32 bits of the [`Tables::version`] `template` belongs to (a
    /// flow idle for 2^32 publications has long timed out).
    pub version: u32,
}

impl FlowValue {
    /// The value of a flow to target `index` of `lb` under tables `t`.
    #[inline(always)]
    pub fn new(t: &Tables, lb: &LbTable, index: u32, hash: u64) -> Self {
        FlowValue {
            slot: lb.targets[index as usize].slot,
            hash: [hash as u32, (hash >> 32) as u32],
            template: lb.template_base + index,
            version: t.version as u32,
        }
    }

    /// The flow hash.
    #[inline(always)]
    pub fn hash(&self) -> u64 {
        u64::from(self.hash[0]) | (u64::from(self.hash[1]) << 32)
    }

    /// Whether its entry was made (or re-validated) under tables `t`: its
    /// template index is then valid in `t`.
    #[inline(always)]
    pub fn current(&self, t: &Tables) -> bool {
        self.version == t.version as u32
    }
}

// SAFETY: `FlowValue` is `repr(C)` of `u32`s only: every bit pattern is a
// valid value (a file-backed flow table holds it, see `flow::persist`).
#[allow(unsafe_code)]
unsafe impl crate::io::sys::Plain for FlowValue {}

/// The value of an entry kept across a restart: its slot is turned into the
/// new run's, its `version` made one that no tables of the new run have
/// (their versions start at 1), so its first packet re-validates it through
/// [`Tables::target_in`].
impl crate::flow::persist::Persisted for FlowValue {
    fn layout() -> String {
        use std::mem::offset_of;
        format!(
            "slot@{} hash@{} template@{} version@{}",
            offset_of!(FlowValue, slot),
            offset_of!(FlowValue, hash),
            offset_of!(FlowValue, template),
            offset_of!(FlowValue, version),
        )
    }

    fn target_slot(&self) -> u32 {
        self.slot
    }

    fn restore(&mut self, slot: u32) {
        self.slot = slot;
        self.version = 0;
    }
}

/// What a fragmented datagram remembers once its first fragment passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct FragValue {
    /// The target's stable slot.
    pub slot: u32,
    /// The flow hash of the first fragment (outer UDP source port, flow
    /// label).
    pub hash: u64,
}

/// A datagram whose held fragments wait to be sent after its first one.
#[derive(Clone, Copy, Debug)]
pub(super) struct Release {
    /// The datagram.
    pub key: FragKey,
    /// Where its first fragment went.
    pub value: FragValue,
}

/// Most datagrams whose held fragments wait for
/// [`crate::io::Processor::drain_extra`].
pub(super) const MAX_PENDING_RELEASES: usize = 64;

/// Bytes of the scratch buffer released fragments are encapsulated in.
pub(super) const SCRATCH_LEN: usize = HEADROOM + 9216;

/// A token bucket for the ICMP too-big answers.
#[derive(Debug)]
pub(super) struct RateLimit {
    per_second: u64,
    tokens: u64,
    last_ns: u64,
}

impl RateLimit {
    /// A bucket of `per_second` tokens, refilled at that rate (0: never a
    /// token).
    pub fn new(per_second: u32) -> Self {
        RateLimit {
            per_second: u64::from(per_second),
            tokens: u64::from(per_second),
            last_ns: 0,
        }
    }

    /// Takes a token at time `now_ns`, if there is one.
    #[inline]
    pub fn take(&mut self, now_ns: u64) -> bool {
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

/// Frames of one burst the prefetch stages follow (more are processed
/// without).
pub(super) const PREFETCH_MAX: usize = 64;

/// What the burst prefetch found out about one frame of a burst.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Prefetched {
    /// The flow's key.
    pub key: FlowKey,
    /// Its bucket hash.
    pub bucket_hash: u64,
    /// Its load balancer's index; `u32::MAX`: not a fast-path packet to a
    /// VIP (nothing to prefetch).
    pub lb: u32,
    /// Stage 2: a slot of its bucket carries its tag (probably a known
    /// flow).
    pub known: bool,
    /// Stage 2, a new flow: its flow hash (for its Maglev entry).
    pub flow_hash: u64,
}

/// The per-worker state the stages work on (everything but the tables).
#[derive(Debug)]
pub(super) struct State {
    pub flows: FlowTable<FlowValue>,
    pub frags: FragTracker<FragValue>,
    pub counters: Arc<WorkerCounters>,
    /// Seed of the flow table's bucket hash ([`crate::flow::FlowKey::table_hash`]),
    /// random per pipeline.
    pub seed: u64,
    pub now: u64,
    pub too_big: RateLimit,
    pub pending: [Option<Release>; MAX_PENDING_RELEASES],
    pub pending_len: usize,
    pub scratch: Box<[u8]>,
    /// The frames of the burst in prefetch ([`Processor::prefetch`]).
    pub prefetched: Box<[Prefetched; PREFETCH_MAX]>,
    /// Frames in `prefetched` whose later stages have not run yet.
    pub prefetched_len: usize,
    /// Live flows per load-balancer counter slot, counted by the sweep in
    /// the current pass ([`Pipeline::begin`]); published to
    /// [`WorkerCounters::lb_flows`] when the pass ends.
    pub census: Box<[u32]>,
    /// The slots of `census` above 0 (each once; capacity for every slot,
    /// so pushing never allocates).
    pub census_touched: Vec<u32>,
    /// ARP/NDP answers for the VIPs (`[l2]`; inactive by default).
    pub l2: crate::l2::Responder,
    /// The new-flow flood guard, asked on flow-table misses only.
    pub guard: crate::flow::guard::NewFlowGuard,
    /// Exception sync with other appliances (`[sync]`; `None`: off).
    pub sync: Option<crate::sync::SyncPort>,
}

impl State {
    /// Counts `verdict` for a frame now `len` bytes long; returns it.
    #[inline(always)]
    pub fn count(&self, verdict: Verdict, len: usize) -> Verdict {
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
    pub fn not_vip(&self, len: usize) -> Verdict {
        self.counters.host_not_vip.inc();
        self.count(Verdict::Host, len)
    }
}
