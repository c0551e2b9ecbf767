//! The packet generator: a deterministic set of flows toward the VIPs of a
//! synthetic configuration ([`crate::synth`]), turned into frames once, up
//! front, and handed out again and again.
//!
//! - [`TrafficSpec`]: how many flows, toward how many VIPs, frame size,
//!   share of IPv6, share the filter must drop (TCP to a port no load
//!   balancer allows), share of fragmented datagrams (UDP, two fragments
//!   each, first then second).
//! - [`Packets`]: the frames of one worker's share of the flows, in the
//!   order they are sent: the first [`RECORD`] bytes of each frame (every
//!   header lives there; the payload is zeros) and its length. One round
//!   sends every flow once (a fragmented flow twice: both fragments).
//! - [`GenQueue`]: a [`WorkerQueue`] over [`Packets`] for the in-process
//!   benchmarks. Each poll copies the next records into a small set of
//!   buffers that stay in cache (what a NIC's DMA would do) and runs the
//!   pipeline on them in place; transmitted frames are only counted. The
//!   copy is the whole generator cost: about one cache line per packet,
//!   measured on its own with a processor that does nothing. Like the memory
//!   backend it implements [`WorkerQueue::poll_with`]: the processor's
//!   `prefetch` runs on every frame of a burst before the first `process`.
//!
//! Flow `f` (0-based) goes to VIP `f % vips`; its client is `c = f / vips`:
//! source address `198.18.0.0 + c / 16384` (IPv6: `2001:db8:c000:: + c /
//! 16384`), source port `1024 + c % 16384`. Whether it is IPv6, dropped or
//! fragmented is decided by a hash of `f` and the seed, so shares hold for
//! any subset of flows.

use crate::synth::{vip_v4, vip_v6, DROPPED_PORT, TCP_PORT, UDP_FIRST, UDP_LAST};
use lbfwd_forwarder::frame::{Frame, HEADROOM};
use lbfwd_forwarder::io::Processor;
use lbfwd_forwarder::io::{Disposition, IoError, QueueStats, WorkerQueue};
use lbfwd_forwarder::wire::checksum;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Bytes of each frame kept per packet (every header fits; the rest of a
/// frame is zero payload).
pub const RECORD: usize = 128;
/// Smallest frame the generator accepts (bytes, without FCS).
pub const MIN_FRAME: usize = 60;
/// Largest frame the generator accepts (bytes, without FCS).
pub const MAX_FRAME: usize = 1514;
/// Most flows the generator builds.
pub const MAX_FLOWS: u32 = 1 << 26;
/// Buffers a [`GenQueue`] cycles through.
pub const GEN_BUFFERS: usize = 64;

/// What to send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrafficSpec {
    /// Distinct flows (5-tuples).
    pub flows: u32,
    /// VIPs (load balancers) the flows spread over; at most the
    /// configuration's load balancers.
    pub vips: u32,
    /// Frame length in bytes, Ethernet header included, FCS not (a class
    /// whose headers need more gets the least it needs).
    pub frame_len: usize,
    /// Share of flows (0..=1) toward a port the filter drops.
    pub drop_share: f64,
    /// Share of flows (0..=1) over IPv6.
    pub ipv6_share: f64,
    /// Share of flows (0..=1) sent as fragmented UDP datagrams (two
    /// fragments each).
    pub frag_share: f64,
    /// Seed of the class assignment.
    pub seed: u64,
    /// Destination MAC of every frame (lbfwd's ingress interface).
    pub dst_mac: [u8; 6],
    /// Source MAC of every frame.
    pub src_mac: [u8; 6],
}

impl Default for TrafficSpec {
    /// The reference traffic: 1M flows over 1000 VIPs, 64-byte
    /// frames, all IPv4 TCP to an allowed port.
    fn default() -> Self {
        TrafficSpec {
            flows: 1_000_000,
            vips: 1000,
            frame_len: 64,
            drop_share: 0.0,
            ipv6_share: 0.0,
            frag_share: 0.0,
            seed: 1,
            dst_mac: [0x02, 0, 0, 0, 0xaa, 0x01],
            src_mac: [0x02, 0, 0, 0, 0xbb, 0x01],
        }
    }
}

/// A traffic description that cannot be generated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrafficError {
    /// Flows out of range.
    #[error("flows: {0} is out of range (1 to {MAX_FLOWS})")]
    Flows(u32),
    /// VIPs out of range.
    #[error("vips: {0} is out of range (1 to 65536)")]
    Vips(u32),
    /// Frame length out of range.
    #[error("frame length: {0} bytes is out of range ({MIN_FRAME} to {MAX_FRAME})")]
    FrameLen(usize),
    /// A share outside 0..=1.
    #[error("{what}: {value} is not a share between 0 and 1")]
    Share {
        /// Which share.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// Worker index out of range.
    #[error("worker {worker} of {workers}: no such worker")]
    Worker {
        /// The index.
        worker: usize,
        /// Workers in all.
        workers: usize,
    },
}

impl TrafficSpec {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), TrafficError> {
        if self.flows == 0 || self.flows > MAX_FLOWS {
            return Err(TrafficError::Flows(self.flows));
        }
        if self.vips == 0 || self.vips > 65_536 {
            return Err(TrafficError::Vips(self.vips));
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&self.frame_len) {
            return Err(TrafficError::FrameLen(self.frame_len));
        }
        for (what, value) in [
            ("drop share", self.drop_share),
            ("IPv6 share", self.ipv6_share),
            ("fragment share", self.frag_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(TrafficError::Share { what, value });
            }
        }
        Ok(())
    }

    /// The class of flow `f`.
    pub fn class_of(&self, f: u32) -> FlowClass {
        let h = splitmix64(u64::from(f) ^ self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let unit = |k: u32| ((h >> (k * 16)) & 0xFFFF) as f64 / 65536.0;
        let ipv6 = unit(0) < self.ipv6_share;
        let dropped = unit(1) < self.drop_share;
        let fragmented = !dropped && unit(2) < self.frag_share;
        FlowClass {
            ipv6,
            dropped,
            fragmented,
            worker_hash: (h >> 48) as u16,
        }
    }
}

/// What kind of flow a flow is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowClass {
    /// IPv6 (else IPv4).
    pub ipv6: bool,
    /// Toward a port the filter drops.
    pub dropped: bool,
    /// Sent as fragmented UDP datagrams.
    pub fragmented: bool,
    /// Spreads flows over workers (as RSS would).
    pub worker_hash: u16,
}

/// The SplitMix64 finaliser: a cheap, good 64-bit mix.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// How many packets of each kind one round of [`Packets`] holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Mix {
    /// Flows in this share.
    pub flows: u64,
    /// Packets per round.
    pub packets: u64,
    /// IPv4 packets.
    pub ipv4: u64,
    /// IPv6 packets.
    pub ipv6: u64,
    /// Packets the filter must drop.
    pub dropped: u64,
    /// Fragments (both halves of each datagram).
    pub fragments: u64,
    /// Bytes per round (frames as generated).
    pub bytes: u64,
}

/// The frames of one worker's share of the flows, in sending order.
pub struct Packets {
    records: Vec<u8>,
    lens: Vec<u16>,
    mix: Mix,
    max_len: usize,
}

impl std::fmt::Debug for Packets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packets")
            .field("mix", &self.mix)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

/// Writes an Ethernet header.
fn eth(b: &mut [u8], spec: &TrafficSpec, ethertype: u16) {
    b[0..6].copy_from_slice(&spec.dst_mac);
    b[6..12].copy_from_slice(&spec.src_mac);
    b[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// Writes an IPv4 header (no options) with a correct checksum.
#[allow(clippy::too_many_arguments)]
fn ipv4(b: &mut [u8], total: usize, id: u16, frag: u16, proto: u8, src: [u8; 4], dst: [u8; 4]) {
    b[0] = 0x45;
    b[1] = 0;
    b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    b[4..6].copy_from_slice(&id.to_be_bytes());
    b[6..8].copy_from_slice(&frag.to_be_bytes());
    b[8] = 64;
    b[9] = proto;
    b[10..12].copy_from_slice(&[0, 0]);
    b[12..16].copy_from_slice(&src);
    b[16..20].copy_from_slice(&dst);
    let c = checksum::checksum(&b[..20]);
    b[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Writes an IPv6 header.
fn ipv6(b: &mut [u8], payload: usize, next: u8, src: &[u8; 16], dst: &[u8; 16], label: u32) {
    b[0..4].copy_from_slice(&(0x6000_0000u32 | (label & 0xF_FFFF)).to_be_bytes());
    b[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    b[6] = next;
    b[7] = 64;
    b[8..24].copy_from_slice(src);
    b[24..40].copy_from_slice(dst);
}

/// Writes a TCP header (ACK, no options), checksum over the zero payload
/// of `seg_len - 20` bytes.
fn tcp(b: &mut [u8], sport: u16, dport: u16, pseudo: u16, seq: u32) {
    b[0..2].copy_from_slice(&sport.to_be_bytes());
    b[2..4].copy_from_slice(&dport.to_be_bytes());
    b[4..8].copy_from_slice(&seq.to_be_bytes());
    b[8..12].copy_from_slice(&1u32.to_be_bytes());
    b[12] = 5 << 4;
    b[13] = 0x10;
    b[14..16].copy_from_slice(&65535u16.to_be_bytes());
    b[16..20].copy_from_slice(&[0, 0, 0, 0]);
    // The payload is zeros: it adds nothing to the sum.
    let c = checksum::checksum_with(pseudo, &b[..20]);
    b[16..18].copy_from_slice(&c.to_be_bytes());
}

/// Writes a UDP header for a datagram of `len` bytes (header included)
/// whose payload is zeros.
fn udp(b: &mut [u8], sport: u16, dport: u16, len: usize, pseudo: Option<u16>) {
    b[0..2].copy_from_slice(&sport.to_be_bytes());
    b[2..4].copy_from_slice(&dport.to_be_bytes());
    b[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    b[6..8].copy_from_slice(&[0, 0]);
    if let Some(pseudo) = pseudo {
        let mut c = checksum::checksum_with(pseudo, &b[..8]);
        if c == 0 {
            c = 0xFFFF;
        }
        b[6..8].copy_from_slice(&c.to_be_bytes());
    }
}

/// The source address, source port and destination VIP of flow `f`.
fn endpoints(spec: &TrafficSpec, f: u32) -> (u32, u16, usize) {
    let vip = (f % spec.vips) as usize;
    let c = f / spec.vips;
    (c >> 14, 1024 + (c & 0x3FFF) as u16, vip)
}

impl Packets {
    /// Builds the frames of the flows of worker `worker` of `workers` (the
    /// flows whose hash lands there, as RSS would spread them).
    pub fn build(spec: &TrafficSpec, worker: usize, workers: usize) -> Result<Self, TrafficError> {
        spec.validate()?;
        if workers == 0 || worker >= workers {
            return Err(TrafficError::Worker { worker, workers });
        }
        let share = spec.flows as usize / workers + 1;
        let mut p = Packets {
            records: Vec::with_capacity(share * RECORD),
            lens: Vec::with_capacity(share),
            mix: Mix::default(),
            max_len: 0,
        };
        for f in 0..spec.flows {
            let class = spec.class_of(f);
            if class.worker_hash as usize % workers != worker {
                continue;
            }
            p.mix.flows += 1;
            p.push_flow(spec, f, class);
        }
        Ok(p)
    }

    fn push(&mut self, len: usize) -> &mut [u8] {
        let start = self.records.len();
        self.records.resize(start + RECORD, 0);
        self.lens.push(len as u16);
        self.max_len = self.max_len.max(len);
        self.mix.packets += 1;
        self.mix.bytes += len as u64;
        &mut self.records[start..]
    }

    fn push_flow(&mut self, spec: &TrafficSpec, f: u32, class: FlowClass) {
        let (client, sport, vip) = endpoints(spec, f);
        if class.ipv6 {
            self.mix.ipv6 += 1 + u64::from(class.fragmented);
        } else {
            self.mix.ipv4 += 1 + u64::from(class.fragmented);
        }
        if class.dropped {
            self.mix.dropped += 1;
        }
        let src4 = (Ipv4Addr::new(198, 18, 0, 0).to_bits() + client).to_be_bytes();
        let dst4 = vip_v4(vip).octets();
        let src6 = (Ipv6Addr::new(0x2001, 0xdb8, 0xc000, 0, 0, 0, 0, 0).to_bits()
            + u128::from(client))
        .to_be_bytes();
        let dst6 = vip_v6(vip).octets();
        if class.fragmented {
            self.mix.fragments += 2;
            let dport = UDP_FIRST + (client % u32::from(UDP_LAST - UDP_FIRST + 1)) as u16;
            let id = f as u16 ^ (f >> 16) as u16;
            let (l3, fraghdr) = if class.ipv6 { (40, 8) } else { (20, 0) };
            // First fragment: UDP header + payload, a multiple of 8 bytes.
            let room = spec.frame_len.saturating_sub(14 + l3 + fraghdr);
            let first = (room / 8 * 8).max(16);
            let second = room.max(8);
            let datagram = first + second;
            for (offset, len, more) in [(0usize, first, true), (first, second, false)] {
                let frame_len = 14 + l3 + fraghdr + len;
                let b = self.push(frame_len);
                let flags = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
                if class.ipv6 {
                    eth(b, spec, 0x86DD);
                    ipv6(&mut b[14..], fraghdr + len, 44, &src6, &dst6, 0);
                    let fh = &mut b[54..62];
                    fh[0] = 17;
                    fh[1] = 0;
                    let off = ((offset / 8) as u16) << 3 | u16::from(more);
                    fh[2..4].copy_from_slice(&off.to_be_bytes());
                    fh[4..8].copy_from_slice(&f.to_be_bytes());
                    if offset == 0 {
                        let pseudo = checksum::pseudo_header_v6(&src6, &dst6, 17, datagram as u32);
                        udp(&mut b[62..], sport, dport, datagram, Some(pseudo));
                    }
                } else {
                    eth(b, spec, 0x0800);
                    ipv4(&mut b[14..], 20 + len, id, flags, 17, src4, dst4);
                    if offset == 0 {
                        udp(&mut b[34..], sport, dport, datagram, None);
                    }
                }
            }
            return;
        }
        let dport = if class.dropped {
            DROPPED_PORT
        } else {
            TCP_PORT
        };
        let seq = splitmix64(u64::from(f)) as u32;
        if class.ipv6 {
            let len = spec.frame_len.max(14 + 40 + 20);
            let b = self.push(len);
            eth(b, spec, 0x86DD);
            let seg = len - 54;
            ipv6(&mut b[14..], seg, 6, &src6, &dst6, f & 0xF_FFFF);
            let pseudo = checksum::pseudo_header_v6(&src6, &dst6, 6, seg as u32);
            tcp(&mut b[54..], sport, dport, pseudo, seq);
        } else {
            let len = spec.frame_len.max(14 + 20 + 20);
            let b = self.push(len);
            eth(b, spec, 0x0800);
            ipv4(&mut b[14..], len - 14, 0, 0x4000, 6, src4, dst4);
            let pseudo = checksum::pseudo_header_v4(src4, dst4, 6, (len - 34) as u16);
            tcp(&mut b[34..], sport, dport, pseudo, seq);
        }
    }

    /// Packets in one round.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// True when this share holds no flow.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// What one round holds.
    pub fn mix(&self) -> Mix {
        self.mix
    }

    /// The longest frame.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Length of packet `i`.
    #[inline]
    pub fn frame_len(&self, i: usize) -> usize {
        usize::from(self.lens[i])
    }

    /// The first [`RECORD`] bytes of packet `i` (the rest is zeros).
    #[inline]
    pub fn record(&self, i: usize) -> &[u8; RECORD] {
        let start = i * RECORD;
        self.records[start..start + RECORD]
            .try_into()
            .unwrap_or(&[0; RECORD])
    }

    /// Writes packet `i` whole into `out` (at least [`Packets::max_len`]
    /// bytes, zeros after the first [`RECORD`]) and returns its length.
    pub fn write_frame(&self, i: usize, out: &mut [u8]) -> usize {
        let len = self.frame_len(i);
        let head = len.min(RECORD);
        out[..head].copy_from_slice(&self.record(i)[..head]);
        out[head..len].fill(0);
        len
    }
}

/// The in-process generator queue: see the module documentation.
pub struct GenQueue {
    packets: Arc<Packets>,
    next: usize,
    bufs: Vec<u8>,
    buf_size: usize,
    filled: [(u32, u16); GEN_BUFFERS],
    filled_len: usize,
    pending: usize,
    stats: QueueStats,
}

impl std::fmt::Debug for GenQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenQueue")
            .field("packets", &self.packets.len())
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl GenQueue {
    /// A queue handing out `packets` round after round, starting at packet
    /// `start` (modulo their number).
    ///
    /// # Panics
    /// If `packets` is empty (a worker with no flow has nothing to measure).
    pub fn new(packets: Arc<Packets>, start: usize) -> Self {
        assert!(!packets.is_empty(), "a generator queue needs packets");
        let buf_size = (HEADROOM + packets.max_len().max(RECORD)).next_multiple_of(64);
        GenQueue {
            next: start % packets.len(),
            packets,
            bufs: vec![0; buf_size * GEN_BUFFERS],
            buf_size,
            filled: [(0, 0); GEN_BUFFERS],
            filled_len: 0,
            pending: 0,
            stats: QueueStats::default(),
        }
    }

    /// "Receives" the next `n` (at most [`GEN_BUFFERS`]) packets: copies
    /// their records into the queue's buffers.
    #[inline]
    pub fn fill(&mut self, n: usize) {
        let n = n.min(GEN_BUFFERS);
        let total = self.packets.len();
        for slot in 0..n {
            let i = self.next;
            self.next = if i + 1 == total { 0 } else { i + 1 };
            let start = slot * self.buf_size + HEADROOM;
            self.bufs[start..start + RECORD].copy_from_slice(self.packets.record(i));
            self.filled[slot] = (i as u32, self.packets.lens[i]);
        }
        self.filled_len = n;
    }

    /// Runs `process` on each filled frame in place and disposes of it as
    /// it says (transmitted frames are counted, not kept). Returns how many.
    #[inline]
    pub fn run_filled<F>(&mut self, mut process: F) -> usize
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        let n = self.filled_len;
        for slot in 0..n {
            let len = usize::from(self.filled[slot].1);
            let buf = &mut self.bufs[slot * self.buf_size..(slot + 1) * self.buf_size];
            let mut frame = Frame::new(buf, HEADROOM, len);
            match process(&mut frame) {
                Disposition::Tx => {
                    self.pending += 1;
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += frame.len() as u64;
                }
                Disposition::Host => self.stats.host_packets += 1,
                Disposition::Drop => self.stats.freed += 1,
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
        }
        self.filled_len = 0;
        n
    }

    /// Lets `processor` prefetch for every filled frame (in order), then
    /// runs it on each: the burst shape of [`WorkerQueue::poll_with`].
    /// Returns how many.
    #[inline]
    pub fn run_filled_with<P: Processor>(&mut self, processor: &mut P) -> usize {
        for slot in 0..self.filled_len {
            let len = usize::from(self.filled[slot].1);
            let buf = &mut self.bufs[slot * self.buf_size..(slot + 1) * self.buf_size];
            processor.prefetch(&Frame::new(buf, HEADROOM, len));
        }
        self.run_filled(|f| processor.process(f))
    }

    /// The frame in buffer `slot` of the last fill, as the pipeline left it
    /// (for tests).
    pub fn buffer(&self, slot: usize) -> &[u8] {
        &self.bufs[slot * self.buf_size..(slot + 1) * self.buf_size]
    }
}

impl WorkerQueue for GenQueue {
    #[inline]
    fn poll<F>(&mut self, burst: usize, mut process: F) -> Result<usize, IoError>
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        let mut done = 0;
        while done < burst {
            self.fill(burst - done);
            done += self.run_filled(&mut process);
        }
        Ok(done)
    }

    #[inline]
    fn poll_with<P: Processor>(
        &mut self,
        burst: usize,
        processor: &mut P,
    ) -> Result<usize, IoError> {
        let mut done = 0;
        while done < burst {
            self.fill(burst - done);
            done += self.run_filled_with(processor);
        }
        Ok(done)
    }

    fn send_copy(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        self.pending += 1;
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += frame.len() as u64;
        Ok(true)
    }

    fn tx_pending(&self) -> usize {
        self.pending
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.pending = 0;
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lbfwd_forwarder::wire::{parse_frame, L4Info, ParsedFrame};

    fn parse(b: &[u8]) -> lbfwd_forwarder::wire::Parsed {
        match parse_frame(b) {
            Ok(ParsedFrame::Ip(p)) => p,
            other => panic!("not an IP frame: {other:?}"),
        }
    }

    #[test]
    fn frames_parse_with_the_promised_fields() {
        let spec = TrafficSpec {
            flows: 4000,
            vips: 10,
            frame_len: 64,
            drop_share: 0.1,
            ipv6_share: 0.3,
            frag_share: 0.2,
            ..TrafficSpec::default()
        };
        let p = Packets::build(&spec, 0, 1).unwrap();
        let mix = p.mix();
        assert_eq!(mix.flows, 4000);
        assert_eq!(mix.packets as usize, p.len());
        assert_eq!(mix.packets, 4000 + mix.fragments / 2);
        // Shares within a few percent of what was asked.
        let flows = 4000.0;
        assert!((mix.dropped as f64 / flows - 0.1).abs() < 0.03, "{mix:?}");
        assert!(
            ((mix.fragments / 2) as f64 / flows - 0.18).abs() < 0.04,
            "{mix:?}"
        );
        let mut frame = vec![0u8; p.max_len()];
        let (mut v6, mut frags, mut dropped) = (0, 0, 0);
        for i in 0..p.len() {
            let len = p.write_frame(i, &mut frame);
            let parsed = parse(&frame[..len]);
            assert_eq!(parsed.ip_end(), len, "packet {i}: no padding");
            if parsed.version == lbfwd_forwarder::wire::IpVersion::V6 {
                v6 += 1;
            }
            if parsed.frag.is_some() {
                frags += 1;
            }
            if let L4Info::Ports(ports) = parsed.l4 {
                if ports.dst == DROPPED_PORT {
                    dropped += 1;
                }
            }
            if len >= 54 && frame[12..14] == [0x08, 0x00] {
                assert!(checksum::verify(&frame[14..34]), "IPv4 header checksum");
            }
        }
        assert_eq!(v6, mix.ipv6);
        assert_eq!(frags, mix.fragments);
        assert_eq!(dropped, mix.dropped);
    }

    #[test]
    fn tcp_checksums_are_correct() {
        let spec = TrafficSpec {
            flows: 64,
            vips: 4,
            frame_len: 100,
            ipv6_share: 0.5,
            ..TrafficSpec::default()
        };
        let p = Packets::build(&spec, 0, 1).unwrap();
        let mut frame = vec![0u8; p.max_len()];
        for i in 0..p.len() {
            let len = p.write_frame(i, &mut frame);
            let f = &frame[..len];
            let pseudo = if f[12..14] == [0x08, 0x00] {
                checksum::pseudo_header_v4(
                    f[26..30].try_into().unwrap(),
                    f[30..34].try_into().unwrap(),
                    6,
                    (len - 34) as u16,
                )
            } else {
                checksum::pseudo_header_v6(
                    f[22..38].try_into().unwrap(),
                    f[38..54].try_into().unwrap(),
                    6,
                    (len - 54) as u32,
                )
            };
            let l4 = if f[12..14] == [0x08, 0x00] { 34 } else { 54 };
            assert_eq!(
                checksum::add(pseudo, checksum::sum(&f[l4..])),
                0xFFFF,
                "packet {i}"
            );
        }
    }

    #[test]
    fn workers_split_the_flows_without_overlap() {
        let spec = TrafficSpec {
            flows: 10_000,
            vips: 7,
            ..TrafficSpec::default()
        };
        let parts: Vec<Packets> = (0..3)
            .map(|w| Packets::build(&spec, w, 3).unwrap())
            .collect();
        let total: u64 = parts.iter().map(|p| p.mix().flows).sum();
        assert_eq!(total, 10_000);
        assert!(parts.iter().all(|p| p.mix().flows > 3000));
        assert!(Packets::build(&spec, 3, 3).is_err());
    }

    #[test]
    fn the_pipeline_gives_every_class_its_verdict() {
        use crate::synth::{self, SynthSpec};
        use lbfwd_forwarder::counters::DropReason;
        use lbfwd_forwarder::dataplane::Dataplane;
        use lbfwd_forwarder::pipeline::{Pipeline, PipelineConfig};
        let shape = SynthSpec {
            lbs: 10,
            targets: 4,
            maglev_size: 251,
            ..SynthSpec::default()
        };
        let resolved = synth::resolved(&shape, None).unwrap();
        let dp = Dataplane::new(&resolved, synth::underlay(shape.encap), 1).unwrap();
        let mut pipeline = Pipeline::new(
            dp.publisher().reader(0),
            dp.counters()[0].clone(),
            &PipelineConfig::default(),
        )
        .unwrap();
        let spec = TrafficSpec {
            flows: 3000,
            vips: 10,
            frame_len: 64,
            drop_share: 0.2,
            ipv6_share: 0.3,
            frag_share: 0.1,
            ..TrafficSpec::default()
        };
        let packets = Arc::new(Packets::build(&spec, 0, 1).unwrap());
        let mix = packets.mix();
        assert!(
            mix.dropped > 0 && mix.fragments > 0 && mix.ipv6 > 0,
            "{mix:?}"
        );
        let mut q = GenQueue::new(packets.clone(), 0);
        pipeline.begin(1);
        q.poll(packets.len(), |f| pipeline.run(f).disposition())
            .unwrap();
        let c = &dp.counters()[0];
        assert_eq!(c.rx.packets.get(), mix.packets);
        assert_eq!(c.tx.packets.get(), mix.packets - mix.dropped, "{mix:?}");
        assert_eq!(
            c.drops[DropReason::PortNotAllowed as usize].get(),
            mix.dropped
        );
        assert_eq!(c.drops_total(), mix.dropped);
        assert_eq!(q.stats().tx_packets, mix.packets - mix.dropped);

        // The worker loop's shape (prefetch pass, then process) gives the
        // same verdicts.
        let dp = Dataplane::new(&resolved, synth::underlay(shape.encap), 1).unwrap();
        let mut pipeline = Pipeline::new(
            dp.publisher().reader(0),
            dp.counters()[0].clone(),
            &PipelineConfig::default(),
        )
        .unwrap();
        let mut q = GenQueue::new(packets.clone(), 0);
        pipeline.begin(1);
        q.poll_with(packets.len(), &mut pipeline).unwrap();
        let c = &dp.counters()[0];
        assert_eq!(c.tx.packets.get(), mix.packets - mix.dropped);
        assert_eq!(c.drops_total(), mix.dropped);
    }

    #[test]
    fn bad_specs_are_refused() {
        let ok = TrafficSpec::default();
        for (bad, what) in [
            (TrafficSpec { flows: 0, ..ok }, "flows"),
            (TrafficSpec { vips: 0, ..ok }, "vips"),
            (
                TrafficSpec {
                    frame_len: 59,
                    ..ok
                },
                "frame length",
            ),
            (
                TrafficSpec {
                    frame_len: 1515,
                    ..ok
                },
                "frame length",
            ),
            (
                TrafficSpec {
                    drop_share: 1.5,
                    ..ok
                },
                "drop share",
            ),
            (
                TrafficSpec {
                    ipv6_share: -0.1,
                    ..ok
                },
                "IPv6 share",
            ),
        ] {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        }
    }

    #[test]
    fn gen_queue_hands_out_every_packet_in_order_with_headroom() {
        let spec = TrafficSpec {
            flows: 100,
            vips: 3,
            ..TrafficSpec::default()
        };
        let p = Arc::new(Packets::build(&spec, 0, 1).unwrap());
        let mut q = GenQueue::new(p.clone(), 0);
        let mut seen = Vec::new();
        q.poll(150, |f| {
            assert_eq!(f.headroom(), HEADROOM);
            seen.push(f.data()[..RECORD.min(f.len())].to_vec());
            // Encapsulation writes in front: must not leak into the next round.
            assert!(f.adjust_head(-50));
            f.data_mut()[..64].fill(0xEE);
            Disposition::Tx
        })
        .unwrap();
        assert_eq!(seen.len(), 150);
        for (k, s) in seen.iter().enumerate() {
            let i = k % p.len();
            assert_eq!(&s[..], &p.record(i)[..s.len()], "packet {k}");
        }
        let st = q.stats();
        assert_eq!((st.rx_packets, st.tx_packets), (150, 150));
        assert_eq!(q.tx_pending(), 150);
        q.flush().unwrap();
        assert_eq!(q.tx_pending(), 0);
    }
}
