//! The `af_packet` backend: Linux PACKET_MMAP rings, no system library.
//!
//! Each worker queue is two sockets:
//!
//! - a receive socket bound to the ingress interface, with a `PACKET_RX_RING`
//!   (TPACKET_V2 by default, V3 on request, see below), `PACKET_RESERVE` so
//!   that every received frame has at least [`HEADROOM`] bytes free in front
//!   of it *inside the ring slot* (the pipeline encapsulates in place, in the
//!   ring), `PACKET_IGNORE_OUTGOING` so it never reads what this host sends,
//!   and, when several workers share the interface, `PACKET_FANOUT` in hash
//!   mode: the kernel spreads flows over the workers by the skb flow hash, so
//!   one flow (and every fragment of one datagram) stays on one worker;
//! - a transmit socket bound to the egress interface (the ingress one when
//!   one-armed), with a TPACKET_V2 `PACKET_TX_RING` and `PACKET_QDISC_BYPASS`.
//!   A frame to send is copied from the receive slot into the next transmit
//!   slot; one `send()` per burst (or per drain timer) kicks the ring.
//!   `PACKET_LOSS` makes the kernel skip a malformed slot instead of stalling
//!   the ring.
//!
//! # TPACKET_V2 or V3
//!
//! V3 fills whole blocks and hands a block to user space when it is full or
//! when its retire timer expires. The timer counts in jiffies: on a HZ=250
//! kernel (this one) the shortest is 4 ms, so at low rates a packet waits up
//! to 4 ms in a half-empty block. V2 hands over each frame at once.
//!
//! Measured on a veth pair in a namespace, 64-byte frames, one worker
//! pinned, release build, on the shared 2-core development VM (load average
//! ~20 from parallel builds, so absolute rates are pessimistic; the
//! comparison is what counts), two rounds each, with
//! `cargo test --release -p lbfwd-forwarder --lib measure_rx_v2_vs_v3 -- --ignored --nocapture`:
//!
//! | | V2 | V3 |
//! | --- | --- | --- |
//! | user-space ring drain (3000 queued frames, dropped after the callback), median of 15 | 25.6 ns/frame | 18.2-19.4 ns/frame |
//! | one frame every 5 ms through lbfwd (rx ring -> encap -> tx ring -> peer), p50 | 142-167 µs | 3.4-16 ms |
//! | sustained rx from `trafgen` on the other core (generator-bound here) | 0.03-0.05 Mpps | 0.04-0.06 Mpps |
//!
//! V3 saves about 7 ns per frame in user space, small next to the kernel's
//! own per-frame cost of filling the ring and the pipeline's work, and costs
//! milliseconds of latency whenever traffic is light. lbfwd uses V2 by
//! default ([`TpacketVersion::V2`]); V3 stays available
//! ([`AfPacketConfig::version`]) for capture-like, always-busy loads.
//!
//! # Partial checksums
//!
//! A frame that comes from a local socket over a veth (or any device with
//! checksum offload between it and us) may carry a partial L4 checksum
//! (`CHECKSUM_PARTIAL`, `TP_STATUS_CSUMNOTREADY`): the checksum field holds
//! only the pseudo-header sum. Forwarded as it is inside a tunnel, the
//! target's kernel would drop it. The backend completes TCP and UDP
//! checksums over IPv4 and IPv6 (with hop-by-hop, routing and destination
//! options headers, up to two VLAN tags) in software before the pipeline
//! sees the frame ([`crate::wire::checksum::complete_partial_l4`]), and
//! counts it (`rx_csum_fixed`); what it cannot parse is counted
//! (`rx_csum_unfixed`) and forwarded unchanged. A VLAN tag the kernel
//! stripped (`TP_STATUS_VLAN_VALID`) is put back in front of the frame.
//!
//! Frames larger than a ring slot (GRO/LRO aggregates, GSO frames from a
//! local veth peer) are counted as `rx_errors` and freed: turn GRO/LRO off on
//! the lbfwd interfaces and TSO/GSO off on a veth peer
//! (`ethtool -K IF gro off lro off`, `ethtool -K PEER tso off gso off`), or
//! raise [`AfPacketConfig::frame_size`].
//!
//! # The host path
//!
//! AF_PACKET receives a copy: the kernel goes on processing its own copy of
//! every frame. That is what keeps ARP, NDP, SSH and BGP of the appliance
//! working ([`Disposition::Host`] therefore has nothing to do here; it is
//! only counted). For VIP traffic the kernel must do nothing:
//!
//! - VIPs are never configured on the appliance (not on `lo`, not on any
//!   interface), so the kernel neither accepts VIP packets locally nor
//!   answers ARP/NDP or ping for a VIP; the upstream router reaches the VIPs
//!   through a route (or BGP) via the appliance's own address;
//! - forwarding is off on the lbfwd interfaces, so the kernel drops VIP
//!   packets (not local, not to be routed) silently: with IPv4
//!   `net.ipv4.conf.IF.forwarding=0` the route lookup fails and `ip_error`
//!   only counts it (no ICMP); for IPv6 the kernel looks at
//!   `net.ipv6.conf.all.forwarding` (the per-interface value only decides
//!   router behaviour), so that must be 0 too and the drop in `ip6_forward`
//!   is silent as well.
//!
//! [`prepare_host_path`] checks this and, when asked, sets it. An appliance
//! that must also route other traffic cannot run lbfwd on AF_PACKET.
#![allow(unsafe_code)]

use super::sys::Fd;
use super::{Disposition, IoError, QueueStats, WorkerQueue};
use crate::frame::{Frame, HEADROOM};
use crate::wire::checksum;
use std::sync::atomic::{AtomicU32, Ordering};

/// Default receive ring slots (V2) per worker.
pub const RX_FRAMES: u32 = 4096;
/// Default transmit ring slots per worker.
pub const TX_FRAMES: u32 = 1024;
/// Default ring slot size: headroom + kernel header + a 1518-byte frame fit.
pub const FRAME_SIZE: u32 = 2048;
/// V3 block size.
pub const V3_BLOCK_SIZE: u32 = 1 << 18;
/// V3 block retire timeout in ms (rounded up to a jiffy by the kernel).
pub const V3_BLOCK_TIMEOUT_MS: u32 = 1;
/// Size of the blocks V2 rings are allocated in.
const V2_BLOCK_SIZE: u32 = 1 << 16;

/// Offset of the frame data in a V2 transmit slot (`TPACKET2_HDRLEN -
/// sizeof(struct sockaddr_ll)`, without `PACKET_TX_HAS_OFF`).
const TX_DATA_OFFSET: usize = libc::TPACKET2_HDRLEN - std::mem::size_of::<libc::sockaddr_ll>();

/// Which TPACKET version the receive ring uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TpacketVersion {
    /// One frame per slot, handed over at once (default: lowest latency).
    #[default]
    V2,
    /// Frames packed in blocks, handed over per block (full or timed out).
    V3,
}

/// How to open one worker's AF_PACKET queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Interface to receive from.
    pub ingress: String,
    /// Interface to transmit on; `None`: the ingress one (one-armed).
    pub egress: Option<String>,
    /// Receive ring version.
    pub version: TpacketVersion,
    /// Receive ring slots (V2), or the ring's capacity in slot-sized units
    /// (V3: the ring is `rx_frames * frame_size` bytes of blocks).
    pub rx_frames: u32,
    /// Transmit ring slots.
    pub tx_frames: u32,
    /// Ring slot size in bytes (a multiple of 16, at least 2048).
    pub frame_size: u32,
    /// `PACKET_FANOUT` hash group id when several workers share the ingress
    /// interface (the same id for every worker of that interface; see
    /// [`fanout_group_id`]); `None` for a single worker.
    pub fanout: Option<u16>,
    /// Send with `PACKET_QDISC_BYPASS` (default true).
    pub qdisc_bypass: bool,
    /// Complete partial L4 checksums in software (default true).
    pub fix_checksums: bool,
}

impl AfPacketConfig {
    /// One-armed defaults for `ingress`.
    pub fn new(ingress: &str) -> Self {
        AfPacketConfig {
            ingress: ingress.to_string(),
            egress: None,
            version: TpacketVersion::V2,
            rx_frames: RX_FRAMES,
            tx_frames: TX_FRAMES,
            frame_size: FRAME_SIZE,
            fanout: None,
            qdisc_bypass: true,
            fix_checksums: true,
        }
    }

    fn validate(&self) -> Result<(), IoError> {
        if self.frame_size < 2048
            || !self.frame_size.is_multiple_of(16)
            || self.frame_size > 1 << 16
        {
            return Err(IoError::Setup(format!(
                "af_packet on {}: frame_size {} must be a multiple of 16 between 2048 and 65536",
                self.ingress, self.frame_size
            )));
        }
        for (what, n) in [("rx_frames", self.rx_frames), ("tx_frames", self.tx_frames)] {
            if !(8..=1 << 20).contains(&n) {
                return Err(IoError::Setup(format!(
                    "af_packet on {}: {what} {n} is out of range (8 to 1048576)",
                    self.ingress
                )));
            }
        }
        Ok(())
    }
}

/// A fanout group id for `ifindex`, distinct per process and interface: the
/// same for every worker of one lbfwd on one interface.
pub fn fanout_group_id(ifindex: u32) -> u16 {
    let pid = std::process::id();
    ((pid.wrapping_mul(0x9e37_79b1) >> 16) as u16) ^ (ifindex as u16)
}

/// A ring mapped from a packet socket.
struct Mapping {
    base: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(fd: &Fd, len: usize, ifname: &str) -> Result<Self, IoError> {
        // SAFETY: a fresh shared mapping of the socket's ring; the kernel
        // checks `len` against the ring it allocated.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.0,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(IoError::last_os("mmap of the packet ring", ifname));
        }
        Ok(Mapping {
            base: base.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own the mapping and unmap it once; no reference into it
        // outlives the queue that owns it.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// The status word at `ptr`, shared with the kernel.
///
/// # Safety
/// `ptr` points to a 4-byte aligned `tp_status`/`block_status` inside a
/// live ring mapping.
unsafe fn status_word<'a>(ptr: *mut u8) -> &'a AtomicU32 {
    // SAFETY: aligned and live per the caller; the kernel writes the word
    // concurrently, hence the atomic view.
    unsafe { &*(ptr as *const AtomicU32) }
}

/// Where a V3 reader stands.
#[derive(Debug, Default)]
struct V3Cursor {
    block: usize,
    in_block: bool,
    left: u32,
    offset: usize,
}

/// One worker's AF_PACKET queue. See the module docs.
pub struct AfPacketQueue {
    // Field order is drop order: unmap the rings before closing their
    // sockets (closing a socket whose ring is still mapped makes the kernel
    // log "packet_mmap: vma is busy").
    rx_ring: Mapping,
    tx_ring: Mapping,
    rx_fd: Fd,
    tx_fd: Fd,
    version: TpacketVersion,
    frame_size: usize,
    rx_frames: usize,
    rx_head: usize,
    v3_block_size: usize,
    v3_blocks: usize,
    v3: V3Cursor,
    tx_frames: usize,
    tx_head: usize,
    tx_pending: usize,
    tx_max_len: usize,
    fix_checksums: bool,
    ingress: String,
    egress: String,
    stats: QueueStats,
}

// SAFETY: the queue owns its sockets and mappings outright; the raw pointers
// are only used by the thread that owns the queue.
unsafe impl Send for AfPacketQueue {}

fn setsockopt<T>(
    fd: &Fd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &'static str,
    ifname: &str,
) -> Result<(), IoError> {
    // SAFETY: `value` is a live `T` and we pass its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.0,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(IoError::last_os(what, ifname));
    }
    Ok(())
}

fn bind_to(fd: &Fd, ifindex: u32, protocol: u16, ifname: &str) -> Result<(), IoError> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol.to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: `addr` is a valid sockaddr_ll and we pass its size.
    let rc = unsafe {
        libc::bind(
            fd.0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(IoError::last_os("bind packet socket", ifname));
    }
    Ok(())
}

fn packet_socket(ifname: &str) -> Result<Fd, IoError> {
    // Protocol 0: the socket receives nothing until bound with a protocol,
    // so no frame lands before the ring and fanout are set up.
    Fd::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0).map_err(|source| {
        IoError::Os {
            what: "packet socket (needs CAP_NET_RAW)",
            interface: ifname.to_string(),
            source,
        }
    })
}

impl AfPacketQueue {
    /// Opens the receive and transmit rings for one worker.
    pub fn open(config: &AfPacketConfig) -> Result<Self, IoError> {
        config.validate()?;
        let ingress = crate::io::interface_info(&config.ingress)?;
        let egress_name = config
            .egress
            .clone()
            .unwrap_or_else(|| config.ingress.clone());
        let egress = crate::io::interface_info(&egress_name)?;
        let frame_size = config.frame_size as usize;
        let ifname = config.ingress.as_str();
        // Worst case (V3) slot layout: kernel header and address, the
        // reserve, then a full frame with one VLAN tag.
        let need = (libc::TPACKET3_HDRLEN + 16).next_multiple_of(16)
            + HEADROOM
            + ingress.mtu as usize
            + 18;
        if frame_size < need {
            return Err(IoError::Setup(format!(
                "af_packet on {ifname}: frame_size {frame_size} is too small for MTU {} ({need} bytes needed with headroom); raise frame_size",
                ingress.mtu
            )));
        }

        // Receive socket.
        let rx_fd = packet_socket(ifname)?;
        let version = match config.version {
            TpacketVersion::V2 => libc::tpacket_versions::TPACKET_V2 as libc::c_int,
            TpacketVersion::V3 => libc::tpacket_versions::TPACKET_V3 as libc::c_int,
        };
        setsockopt(
            &rx_fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &version,
            "PACKET_VERSION",
            ifname,
        )?;
        let reserve = HEADROOM as libc::c_uint;
        setsockopt(
            &rx_fd,
            libc::SOL_PACKET,
            libc::PACKET_RESERVE,
            &reserve,
            "PACKET_RESERVE",
            ifname,
        )?;
        let one: libc::c_int = 1;
        setsockopt(
            &rx_fd,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &one,
            "PACKET_IGNORE_OUTGOING",
            ifname,
        )?;

        let (rx_len, rx_frames, v3_block_size, v3_blocks) = match config.version {
            TpacketVersion::V2 => {
                let per_block = V2_BLOCK_SIZE / config.frame_size;
                let blocks = config.rx_frames.div_ceil(per_block);
                let req = libc::tpacket_req {
                    tp_block_size: V2_BLOCK_SIZE,
                    tp_block_nr: blocks,
                    tp_frame_size: config.frame_size,
                    tp_frame_nr: blocks * per_block,
                };
                setsockopt(
                    &rx_fd,
                    libc::SOL_PACKET,
                    libc::PACKET_RX_RING,
                    &req,
                    "PACKET_RX_RING",
                    ifname,
                )?;
                (
                    (V2_BLOCK_SIZE * blocks) as usize,
                    (blocks * per_block) as usize,
                    0,
                    0,
                )
            }
            TpacketVersion::V3 => {
                let bytes = u64::from(config.rx_frames) * u64::from(config.frame_size);
                let blocks = (bytes.div_ceil(u64::from(V3_BLOCK_SIZE)) as u32).max(2);
                let req = libc::tpacket_req3 {
                    tp_block_size: V3_BLOCK_SIZE,
                    tp_block_nr: blocks,
                    tp_frame_size: config.frame_size,
                    tp_frame_nr: blocks * (V3_BLOCK_SIZE / config.frame_size),
                    tp_retire_blk_tov: V3_BLOCK_TIMEOUT_MS,
                    tp_sizeof_priv: 0,
                    tp_feature_req_word: 0,
                };
                setsockopt(
                    &rx_fd,
                    libc::SOL_PACKET,
                    libc::PACKET_RX_RING,
                    &req,
                    "PACKET_RX_RING (V3)",
                    ifname,
                )?;
                (
                    (V3_BLOCK_SIZE * blocks) as usize,
                    0,
                    V3_BLOCK_SIZE as usize,
                    blocks as usize,
                )
            }
        };
        let rx_ring = Mapping::new(&rx_fd, rx_len, ifname)?;
        bind_to(&rx_fd, ingress.index, libc::ETH_P_ALL as u16, ifname)?;
        if let Some(group) = config.fanout {
            let arg: u32 = u32::from(group) | (libc::PACKET_FANOUT_HASH << 16);
            setsockopt(
                &rx_fd,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                &arg,
                "PACKET_FANOUT (hash)",
                ifname,
            )?;
        }

        // Transmit socket.
        let tx_fd = packet_socket(&egress_name)?;
        let v2 = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        setsockopt(
            &tx_fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &v2,
            "PACKET_VERSION",
            &egress_name,
        )?;
        setsockopt(
            &tx_fd,
            libc::SOL_PACKET,
            libc::PACKET_LOSS,
            &one,
            "PACKET_LOSS",
            &egress_name,
        )?;
        if config.qdisc_bypass {
            setsockopt(
                &tx_fd,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &one,
                "PACKET_QDISC_BYPASS",
                &egress_name,
            )?;
        }
        let per_block = V2_BLOCK_SIZE / config.frame_size;
        let tx_blocks = config.tx_frames.div_ceil(per_block);
        let req = libc::tpacket_req {
            tp_block_size: V2_BLOCK_SIZE,
            tp_block_nr: tx_blocks,
            tp_frame_size: config.frame_size,
            tp_frame_nr: tx_blocks * per_block,
        };
        setsockopt(
            &tx_fd,
            libc::SOL_PACKET,
            libc::PACKET_TX_RING,
            &req,
            "PACKET_TX_RING",
            &egress_name,
        )?;
        let tx_ring = Mapping::new(&tx_fd, (V2_BLOCK_SIZE * tx_blocks) as usize, &egress_name)?;
        bind_to(&tx_fd, egress.index, 0, &egress_name)?;

        // The kernel refuses frames over MTU + link header + one VLAN tag.
        let tx_max_len = (frame_size - TX_DATA_OFFSET).min(egress.mtu as usize + 14 + 4);
        Ok(AfPacketQueue {
            rx_fd,
            tx_fd,
            rx_ring,
            tx_ring,
            version: config.version,
            frame_size,
            rx_frames,
            rx_head: 0,
            v3_block_size,
            v3_blocks,
            v3: V3Cursor::default(),
            tx_frames: (tx_blocks * per_block) as usize,
            tx_head: 0,
            tx_pending: 0,
            tx_max_len,
            fix_checksums: config.fix_checksums,
            ingress: config.ingress.clone(),
            egress: egress_name,
            stats: QueueStats::default(),
        })
    }

    /// The ingress interface.
    pub fn ingress(&self) -> &str {
        &self.ingress
    }

    /// The egress interface.
    pub fn egress(&self) -> &str {
        &self.egress
    }

    /// Copies `bytes` into the next transmit slot. False (counted) when the
    /// frame is too large or the ring is full even after a kick.
    #[inline]
    fn enqueue_tx(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.tx_max_len || bytes.is_empty() {
            self.stats.tx_dropped += 1;
            return false;
        }
        let slot = self.tx_head * self.frame_size;
        // SAFETY: `slot` is the start of slot `tx_head` < tx_frames, inside
        // the mapping; tp_status is its first (aligned) word.
        let status = unsafe { status_word(self.tx_ring.base.add(slot)) };
        if status.load(Ordering::Acquire) != libc::TP_STATUS_AVAILABLE {
            // Ring full: kick what is pending and look once more.
            if self.tx_pending > 0 {
                self.kick();
            }
            if status.load(Ordering::Acquire) != libc::TP_STATUS_AVAILABLE {
                self.stats.tx_dropped += 1;
                return false;
            }
        }
        // SAFETY: the slot is AVAILABLE, so it is ours until we set
        // SEND_REQUEST; data and header stay inside the slot because
        // bytes.len() <= frame_size - TX_DATA_OFFSET.
        unsafe {
            let base = self.tx_ring.base.add(slot);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(TX_DATA_OFFSET), bytes.len());
            let hdr = base as *mut libc::tpacket2_hdr;
            (*hdr).tp_len = bytes.len() as u32;
            (*hdr).tp_snaplen = bytes.len() as u32;
        }
        status.store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.tx_head = if self.tx_head + 1 == self.tx_frames {
            0
        } else {
            self.tx_head + 1
        };
        self.tx_pending += 1;
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += bytes.len() as u64;
        true
    }

    /// One `send()` that makes the kernel transmit every slot marked
    /// SEND_REQUEST. Transient failures leave the slots queued for the next
    /// kick; frames the device refused are the kernel's drops.
    fn kick(&mut self) {
        // SAFETY: a zero-length send on our own socket; no buffer is read.
        let rc = unsafe { libc::send(self.tx_fd.0, std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        if rc >= 0 {
            self.tx_pending = 0;
            return;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            // Busy: the slots stay SEND_REQUEST and go with the next kick.
            Some(libc::EAGAIN) | Some(libc::EINTR) => {}
            // ENOBUFS: the device dropped one frame (its slot is free again);
            // the rest went out. Link down and the like: slots stay queued
            // and the ring fills up, counted as tx_dropped from then on.
            _ => {
                self.stats.tx_dropped += 1;
                self.tx_pending = 0;
            }
        }
    }

    /// Fixes up a received frame before the pipeline sees it: reinsert a
    /// stripped VLAN tag, complete a partial checksum. Returns the new head.
    #[inline]
    fn fix_frame(
        &mut self,
        buf: &mut [u8],
        mut head: usize,
        len: &mut usize,
        status: u32,
        tci: u16,
        tpid: u16,
    ) -> usize {
        if status & libc::TP_STATUS_VLAN_VALID != 0 && head >= 4 + HEADROOM && *len >= 12 {
            let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                tpid
            } else {
                0x8100
            };
            buf.copy_within(head..head + 12, head - 4);
            head -= 4;
            buf[head + 12..head + 14].copy_from_slice(&tpid.to_be_bytes());
            buf[head + 14..head + 16].copy_from_slice(&tci.to_be_bytes());
            *len += 4;
        }
        if status & libc::TP_STATUS_CSUMNOTREADY != 0 && self.fix_checksums {
            if checksum::complete_partial_l4(&mut buf[head..head + *len]) {
                self.stats.rx_csum_fixed += 1;
            } else {
                self.stats.rx_csum_unfixed += 1;
            }
        }
        head
    }

    fn poll_v2<F>(&mut self, burst: usize, process: &mut F) -> usize
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        let hdr_len = libc::TPACKET2_HDRLEN;
        let mut received = 0;
        while received < burst {
            let slot = self.rx_head * self.frame_size;
            // SAFETY: slot `rx_head` < rx_frames lies inside the mapping.
            let base = unsafe { self.rx_ring.base.add(slot) };
            // SAFETY: tp_status is the slot's first, aligned word.
            let status_ref = unsafe { status_word(base) };
            let status = status_ref.load(Ordering::Acquire);
            if status & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the slot is ours (TP_STATUS_USER, acquired above)
            // until we hand it back; the header is at its start.
            let hdr = unsafe { std::ptr::read(base as *const libc::tpacket2_hdr) };
            // SAFETY: the slot is ours; the slice covers the slot after the
            // kernel's header and address, which nobody else touches now.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(base.add(hdr_len), self.frame_size - hdr_len)
            };
            self.rx_one(
                buf,
                hdr.tp_mac as usize,
                hdr_len,
                hdr.tp_len,
                hdr.tp_snaplen,
                status,
                hdr.tp_vlan_tci,
                hdr.tp_vlan_tpid,
                process,
            );
            status_ref.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.rx_head = if self.rx_head + 1 == self.rx_frames {
                0
            } else {
                self.rx_head + 1
            };
            received += 1;
        }
        received
    }

    fn poll_v3<F>(&mut self, burst: usize, process: &mut F) -> usize
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        let hdr_len = libc::TPACKET3_HDRLEN;
        let mut received = 0;
        while received < burst {
            if self.v3.left == 0 {
                if self.v3.in_block {
                    self.release_v3_block();
                }
                let block = self.v3.block * self.v3_block_size;
                // SAFETY: block < v3_blocks lies inside the mapping; the
                // descriptor is at its start.
                let desc =
                    unsafe { self.rx_ring.base.add(block) } as *const libc::tpacket_block_desc;
                // SAFETY: block_status is an aligned u32 of the descriptor.
                let status = unsafe {
                    status_word(std::ptr::addr_of!((*desc).hdr.bh1.block_status) as *mut u8)
                };
                if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                    break;
                }
                // SAFETY: the block is ours (TP_STATUS_USER, acquired).
                let bh = unsafe { std::ptr::read(std::ptr::addr_of!((*desc).hdr.bh1)) };
                self.v3 = V3Cursor {
                    block: self.v3.block,
                    in_block: true,
                    left: bh.num_pkts,
                    offset: bh.offset_to_first_pkt as usize,
                };
                continue;
            }
            let block = self.v3.block * self.v3_block_size;
            let offset = self.v3.offset;
            if offset + hdr_len > self.v3_block_size {
                // A corrupt descriptor: give the block back.
                self.stats.rx_errors += 1;
                self.v3.left = 0;
                continue;
            }
            // SAFETY: offset + header inside the block (checked above).
            let base = unsafe { self.rx_ring.base.add(block + offset) };
            // SAFETY: the block is ours; a packet header sits at `offset`.
            let hdr = unsafe { std::ptr::read(base as *const libc::tpacket3_hdr) };
            let end =
                (hdr.tp_mac as usize + hdr.tp_snaplen as usize).min(self.v3_block_size - offset);
            // SAFETY: the slice is inside the block, after this packet's
            // header and address, and no other reference to it exists.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(base.add(hdr_len), end.saturating_sub(hdr_len))
            };
            self.rx_one(
                buf,
                hdr.tp_mac as usize,
                hdr_len,
                hdr.tp_len,
                hdr.tp_snaplen,
                hdr.tp_status,
                hdr.hv1.tp_vlan_tci as u16,
                hdr.hv1.tp_vlan_tpid,
                process,
            );
            self.v3.left -= 1;
            self.v3.offset += hdr.tp_next_offset as usize;
            received += 1;
        }
        if self.v3.left == 0 && self.v3.in_block {
            self.release_v3_block();
        }
        received
    }

    fn release_v3_block(&mut self) {
        let block = self.v3.block * self.v3_block_size;
        // SAFETY: as in poll_v3: the descriptor of a block we own.
        let desc = unsafe { self.rx_ring.base.add(block) } as *const libc::tpacket_block_desc;
        // SAFETY: block_status is an aligned u32 of the descriptor.
        let status =
            unsafe { status_word(std::ptr::addr_of!((*desc).hdr.bh1.block_status) as *mut u8) };
        status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.v3.in_block = false;
        self.v3.block = if self.v3.block + 1 == self.v3_blocks {
            0
        } else {
            self.v3.block + 1
        };
    }

    /// One received frame: check, fix up, process, dispose.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn rx_one<F>(
        &mut self,
        buf: &mut [u8],
        tp_mac: usize,
        hdr_len: usize,
        tp_len: u32,
        snaplen: u32,
        status: u32,
        tci: u16,
        tpid: u16,
        process: &mut F,
    ) where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        let mut len = snaplen as usize;
        if tp_len != snaplen || tp_mac < hdr_len + HEADROOM || tp_mac - hdr_len + len > buf.len() {
            // Truncated by the slot size (GRO/GSO aggregate) or malformed.
            self.stats.rx_errors += 1;
            return;
        }
        let head = self.fix_frame(buf, tp_mac - hdr_len, &mut len, status, tci, tpid);
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += len as u64;
        let mut frame = Frame::new(buf, head, len);
        match process(&mut frame) {
            Disposition::Tx => {
                self.enqueue_tx(frame.data());
            }
            Disposition::Host => self.stats.host_packets += 1,
            Disposition::Drop => self.stats.freed += 1,
        }
    }
}

impl WorkerQueue for AfPacketQueue {
    fn poll<F>(&mut self, burst: usize, mut process: F) -> Result<usize, IoError>
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        Ok(match self.version {
            TpacketVersion::V2 => self.poll_v2(burst, &mut process),
            TpacketVersion::V3 => self.poll_v3(burst, &mut process),
        })
    }

    fn send_copy(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        Ok(self.enqueue_tx(frame))
    }

    fn tx_pending(&self) -> usize {
        self.tx_pending
    }

    fn flush(&mut self) -> Result<(), IoError> {
        if self.tx_pending > 0 {
            self.kick();
        }
        Ok(())
    }

    fn maintenance(&mut self) -> Result<(), IoError> {
        // PACKET_STATISTICS returns and resets the kernel's counters; the V3
        // struct starts like the V2 one.
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `st`.
        let rc = unsafe {
            libc::getsockopt(
                self.rx_fd.0,
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(IoError::last_os("PACKET_STATISTICS", &self.ingress));
        }
        self.stats.rx_ring_drops += u64::from(st.tp_drops);
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}

impl Drop for AfPacketQueue {
    fn drop(&mut self) {
        // Last chance for frames still queued (the worker flushes on stop).
        if self.tx_pending > 0 {
            self.kick();
        }
    }
}

/// What [`prepare_host_path`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPathReport {
    /// Settings changed (`key: old -> 0`).
    pub changed: Vec<String>,
}

/// Makes sure the kernel silently drops the VIP traffic it sees on
/// `interfaces` (see the module docs): `net.ipv4.conf.IF.forwarding`,
/// `net.ipv6.conf.IF.forwarding` and `net.ipv6.conf.all.forwarding` must be 0.
/// With `enforce` they are set to 0 (and reported); without, a non-zero one
/// is an error that says which. IPv6 settings are skipped when IPv6 is
/// disabled. Acts on the calling thread's network namespace.
pub fn prepare_host_path(interfaces: &[&str], enforce: bool) -> Result<HostPathReport, IoError> {
    let mut keys = Vec::new();
    for ifname in interfaces {
        crate::io::interface_info(ifname)?;
        keys.push(format!("net/ipv4/conf/{ifname}/forwarding"));
        keys.push(format!("net/ipv6/conf/{ifname}/forwarding"));
    }
    keys.push("net/ipv6/conf/all/forwarding".to_string());
    let mut report = HostPathReport::default();
    for key in keys {
        let path = format!("/proc/sys/{key}");
        let value = match std::fs::read_to_string(&path) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && key.starts_with("net/ipv6") => {
                continue
            }
            Err(source) => {
                return Err(IoError::Os {
                    what: "read sysctl",
                    interface: path,
                    source,
                })
            }
        };
        let value = value.trim();
        if value == "0" {
            continue;
        }
        let name = key.replace('/', ".");
        if !enforce {
            return Err(IoError::Setup(format!(
                "{name} is {value}: the kernel would route VIP traffic a second time; set it to 0 (sysctl -w {name}=0)"
            )));
        }
        std::fs::write(&path, "0").map_err(|source| IoError::Os {
            what: "write sysctl",
            interface: path.clone(),
            source,
        })?;
        report.changed.push(format!("{name}: {value} -> 0"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + UDP frame (10.0.0.1:4000 -> 10.0.0.99:9999)
    /// with correct checksums.
    fn udp4(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 99]);
        let csum = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&csum.to_be_bytes());
        f[34..36].copy_from_slice(&4000u16.to_be_bytes());
        f[36..38].copy_from_slice(&9999u16.to_be_bytes());
        f[38..40].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(payload);
        let udp_len = (f.len() - 34) as u16;
        let pseudo = checksum::pseudo_header_v4([10, 0, 0, 1], [10, 0, 0, 99], 17, udp_len);
        let full = checksum::checksum_with(pseudo, &f[34..]);
        f[40..42].copy_from_slice(&full.to_be_bytes());
        f
    }

    /// True when the UDP/IPv4 checksum of `f` verifies.
    fn udp4_valid(f: &[u8]) -> bool {
        let seg = checksum::l4_segment(f).expect("a UDP frame");
        checksum::add(seg.pseudo_header(f), checksum::sum(&f[seg.start..seg.end])) == 0xffff
    }

    #[test]
    fn udp4_builds_a_valid_frame() {
        let f = udp4(b"odd");
        assert!(udp4_valid(&f));
        assert!(checksum::verify(&f[14..34]));
    }

    // ---- Real interfaces: veth pairs inside a network namespace ----------

    use crate::worker::{run_worker, IdlePolicy, Processor, WorkerConfig, WorkerStats};
    use std::process::Command;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Ethertype of the test frames (IEEE local experimental).
    const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb5];
    /// Ethertype of the outer header the test processor prepends.
    const OUTER_ETHERTYPE: [u8; 2] = [0x88, 0xb6];

    fn run(cmd: &str, args: &[&str]) {
        let out = Command::new(cmd)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        assert!(
            out.status.success(),
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A network namespace with two veth pairs, deleted on drop (even when
    /// the test fails): lbtg <-> lbti (generator -> lbfwd ingress) and
    /// lbto <-> lbtc (lbfwd egress -> capture). IPv6 off to keep the links
    /// quiet.
    struct Netns {
        name: String,
    }

    impl Netns {
        fn new(tag: &str) -> Netns {
            let name = format!("lbt-afp-{}-{tag}", std::process::id());
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
            run("ip", &["netns", "add", &name]);
            let ns = Netns { name };
            ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
            ns.ip(&[
                "link", "add", "lbtg", "type", "veth", "peer", "name", "lbti",
            ]);
            ns.ip(&[
                "link", "add", "lbto", "type", "veth", "peer", "name", "lbtc",
            ]);
            for dev in ["lo", "lbtg", "lbti", "lbto", "lbtc"] {
                ns.ip(&["link", "set", "dev", dev, "up"]);
            }
            ns
        }

        fn ip(&self, args: &[&str]) {
            let mut full = vec!["-n", self.name.as_str()];
            full.extend_from_slice(args);
            run("ip", &full);
        }

        fn exec(&self, args: &[&str]) {
            let mut full = vec!["netns", "exec", self.name.as_str()];
            full.extend_from_slice(args);
            run("ip", &full);
        }

        /// Runs `body` on a fresh thread inside the namespace (setns applies
        /// to the calling thread only; the test thread stays where it was).
        fn within<R: Send>(&self, body: impl FnOnce() -> R + Send) -> R {
            let path = format!("/run/netns/{}", self.name);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let file = std::fs::File::open(&path).unwrap();
                    use std::os::fd::AsRawFd;
                    // SAFETY: setns on a namespace fd we hold open; affects
                    // only this thread.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                    body()
                })
                .join()
                .unwrap()
            })
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .output();
        }
    }

    /// A plain AF_PACKET socket to send and capture test frames.
    struct RawSock {
        fd: Fd,
    }

    impl RawSock {
        fn bind(ifname: &str) -> RawSock {
            let index = crate::io::interface_info(ifname).unwrap().index;
            let fd = Fd::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            )
            .unwrap();
            bind_to(&fd, index, libc::ETH_P_ALL as u16, ifname).unwrap();
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            setsockopt(
                &fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv,
                "SO_RCVTIMEO",
                ifname,
            )
            .unwrap();
            // Room for every frame a test sends: the default buffer holds
            // only a few hundred small frames.
            let size: libc::c_int = 16 << 20;
            setsockopt(
                &fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &size,
                "SO_RCVBUFFORCE",
                ifname,
            )
            .unwrap();
            RawSock { fd }
        }

        fn send(&self, frame: &[u8]) {
            // SAFETY: `frame` is a live buffer of the given length.
            let rc = unsafe { libc::send(self.fd.0, frame.as_ptr().cast(), frame.len(), 0) };
            assert_eq!(
                rc,
                frame.len() as isize,
                "send: {}",
                std::io::Error::last_os_error()
            );
        }

        /// The next frame that was received (not sent) on the interface, or
        /// None after the 100 ms receive timeout.
        fn recv_incoming(&self, buf: &mut [u8]) -> Option<usize> {
            loop {
                // SAFETY: sockaddr_ll is plain old data.
                let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                // SAFETY: `buf` and `addr` are live and sized as passed.
                let n = unsafe {
                    libc::recvfrom(
                        self.fd.0,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&mut addr as *mut libc::sockaddr_ll).cast(),
                        &mut alen,
                    )
                };
                if n < 0 {
                    return None;
                }
                if addr.sll_pkttype != libc::PACKET_OUTGOING {
                    return Some(n as usize);
                }
            }
        }
    }

    fn test_frame(seq: u32) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        f[12..14].copy_from_slice(&TEST_ETHERTYPE);
        f[14..17].copy_from_slice(b"LBT");
        f[17..21].copy_from_slice(&seq.to_be_bytes());
        f
    }

    /// Encapsulates test frames in place (a 14-byte outer Ethernet header
    /// in the headroom), sends UDP frames as they are, drops the rest.
    #[derive(Default)]
    struct Encap {
        test_frames: Arc<std::sync::atomic::AtomicU64>,
    }

    impl Processor for Encap {
        fn begin_burst(&mut self, _now_ns: u64) {}

        fn process(&mut self, frame: &mut Frame<'_>) -> Disposition {
            let d = frame.data();
            if d.len() >= 21 && d[12..14] == TEST_ETHERTYPE && &d[14..17] == b"LBT" {
                self.test_frames.fetch_add(1, Ordering::Relaxed);
                assert!(
                    frame.headroom() >= HEADROOM,
                    "headroom {}",
                    frame.headroom()
                );
                assert!(frame.adjust_head(-14));
                let out = frame.data_mut();
                out[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
                out[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
                out[12..14].copy_from_slice(&OUTER_ETHERTYPE);
                return Disposition::Tx;
            }
            if d.len() >= 34 && d[12..14] == [0x08, 0x00] && d[14 + 9] == 17 {
                return Disposition::Tx;
            }
            Disposition::Drop
        }
    }

    /// Runs a worker on `queue` until `done` says so (or 10 s pass).
    fn with_worker<T>(
        queue: AfPacketQueue,
        processor: Encap,
        drive: impl FnOnce() -> T,
    ) -> (T, crate::worker::WorkerReport) {
        let shutdown = AtomicBool::new(false);
        let stats = WorkerStats::default();
        let config = WorkerConfig {
            idle: IdlePolicy::adaptive(),
            ..WorkerConfig::default()
        };
        std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let (mut queue, mut processor) = (queue, processor);
                run_worker(&mut queue, &mut processor, &config, &shutdown, &stats)
            });
            // A panic in `drive` must still stop the worker.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(drive));
            shutdown.store(true, Ordering::Relaxed);
            let report = worker.join().unwrap().unwrap();
            match result {
                Ok(t) => (t, report),
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }

    /// Collects encapsulated test frames on `sock` until `n` arrived or 5 s
    /// passed; returns their sequence numbers.
    fn collect(sock: &RawSock, n: usize) -> Vec<u32> {
        let mut seqs = Vec::new();
        let mut buf = [0u8; 4096];
        let start = Instant::now();
        while seqs.len() < n && start.elapsed() < Duration::from_secs(5) {
            let Some(len) = sock.recv_incoming(&mut buf) else {
                continue;
            };
            let f = &buf[..len];
            if len >= 35
                && f[12..14] == OUTER_ETHERTYPE
                && f[26..28] == TEST_ETHERTYPE
                && &f[28..31] == b"LBT"
            {
                seqs.push(u32::from_be_bytes(f[31..35].try_into().unwrap()));
            }
        }
        seqs
    }

    fn two_armed(version: TpacketVersion, tag: &str) {
        let ns = Netns::new(tag);
        ns.within(|| {
            let mut config = AfPacketConfig::new("lbti");
            config.egress = Some("lbto".into());
            config.version = version;
            let queue = AfPacketQueue::open(&config).unwrap();
            let generator = RawSock::bind("lbtg");
            let capture = RawSock::bind("lbtc");
            const N: u32 = 500;
            let processor = Encap::default();
            let seen = processor.test_frames.clone();
            let (seqs, report) = with_worker(queue, processor, || {
                for seq in 0..N {
                    generator.send(&test_frame(seq));
                }
                collect(&capture, N as usize)
            });
            let mut sorted = seqs.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                (0..N).collect::<Vec<_>>(),
                "every frame forwarded once"
            );
            assert_eq!(seen.load(Ordering::Relaxed), u64::from(N));
            assert!(report.queue.rx_packets >= u64::from(N));
            assert_eq!(report.queue.tx_packets, u64::from(N));
            assert_eq!(report.queue.tx_dropped, 0);
            assert_eq!(report.queue.rx_errors, 0);
        });
    }

    #[test]
    fn v2_two_armed_forwards_every_frame_encapsulated_in_the_ring() {
        two_armed(TpacketVersion::V2, "v2");
    }

    #[test]
    fn v3_two_armed_forwards_every_frame_encapsulated_in_the_ring() {
        two_armed(TpacketVersion::V3, "v3");
    }

    #[test]
    fn one_armed_sends_back_out_and_never_rereads_its_own_frames() {
        let ns = Netns::new("one");
        ns.within(|| {
            let queue = AfPacketQueue::open(&AfPacketConfig::new("lbti")).unwrap();
            let generator = RawSock::bind("lbtg");
            const N: u32 = 100;
            let processor = Encap::default();
            let seen = processor.test_frames.clone();
            let (seqs, report) = with_worker(queue, processor, || {
                for seq in 0..N {
                    generator.send(&test_frame(seq));
                }
                let seqs = collect(&generator, N as usize);
                // Give a re-read (which would loop forever) time to show.
                std::thread::sleep(Duration::from_millis(200));
                seqs
            });
            assert_eq!(seqs.len(), N as usize);
            assert_eq!(
                seen.load(Ordering::Relaxed),
                u64::from(N),
                "own frames read again"
            );
            assert_eq!(report.queue.tx_packets, u64::from(N));
        });
    }

    #[test]
    fn fanout_spreads_flows_over_workers_and_loses_none() {
        let ns = Netns::new("fan");
        ns.within(|| {
            let ifindex = crate::io::interface_info("lbti").unwrap().index;
            let mut config = AfPacketConfig::new("lbti");
            config.egress = Some("lbto".into());
            config.fanout = Some(fanout_group_id(ifindex));
            let q0 = AfPacketQueue::open(&config).unwrap();
            let q1 = AfPacketQueue::open(&config).unwrap();
            let generator = RawSock::bind("lbtg");
            let capture = RawSock::bind("lbtc");
            // 64 flows (distinct UDP ports), 4 frames each: IPv4/UDP frames
            // hash on the 4-tuple.
            let mut frames = Vec::new();
            for flow in 0..64u16 {
                for _ in 0..4 {
                    let mut f = udp4(b"fanout");
                    f[34..36].copy_from_slice(&(10_000 + flow).to_be_bytes());
                    frames.push(f);
                }
            }
            let (p0, p1) = (Encap::default(), Encap::default());
            let ((got, r1), r0) = with_worker(q0, p0, || {
                with_worker(q1, p1, || {
                    for f in &frames {
                        generator.send(f);
                    }
                    let mut got = 0;
                    let mut buf = [0u8; 2048];
                    let start = Instant::now();
                    while got < frames.len() && start.elapsed() < Duration::from_secs(5) {
                        if let Some(n) = capture.recv_incoming(&mut buf) {
                            if n >= 42 && buf[14 + 9] == 17 && &buf[42..48] == b"fanout" {
                                got += 1;
                            }
                        }
                    }
                    got
                })
            });
            assert_eq!(got, frames.len());
            let (t0, t1) = (r0.queue.tx_packets, r1.queue.tx_packets);
            assert_eq!(t0 + t1, frames.len() as u64);
            assert!(t0 > 0 && t1 > 0, "fanout used one worker only: {t0}/{t1}");
            assert_eq!(t0 % 4, 0, "a flow was split over workers");
        });
    }

    #[test]
    fn partial_checksum_from_a_local_socket_is_completed() {
        let ns = Netns::new("csum");
        ns.ip(&["addr", "add", "10.9.0.1/24", "dev", "lbtg"]);
        ns.ip(&[
            "neigh",
            "add",
            "10.9.0.99",
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "lbtg",
            "nud",
            "permanent",
        ]);
        ns.within(|| {
            let mut config = AfPacketConfig::new("lbti");
            config.egress = Some("lbto".into());
            let queue = AfPacketQueue::open(&config).unwrap();
            let capture = RawSock::bind("lbtc");
            let udp = std::net::UdpSocket::bind("10.9.0.1:4000").unwrap();
            let (frame, report) = with_worker(queue, Encap::default(), || {
                udp.send_to(b"checksum me please", "10.9.0.99:9999")
                    .unwrap();
                let mut buf = [0u8; 2048];
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(5) {
                    if let Some(n) = capture.recv_incoming(&mut buf) {
                        if n >= 42 && buf[14 + 9] == 17 && buf[36..38] == 9999u16.to_be_bytes() {
                            return Some(buf[..n].to_vec());
                        }
                    }
                }
                None
            });
            let frame = frame.expect("the UDP frame was forwarded");
            let ip_len = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
            let frame = &frame[..14 + ip_len];
            assert!(
                udp4_valid(frame),
                "checksum of the forwarded frame is wrong"
            );
            assert!(
                report.queue.rx_csum_fixed >= 1,
                "veth handed no partial checksum: {:?}",
                report.queue
            );
        });
    }

    #[test]
    fn host_path_settings_are_verified_and_enforced() {
        let ns = Netns::new("host");
        ns.exec(&["sysctl", "-qw", "net.ipv4.conf.lbti.forwarding=1"]);
        ns.ip(&["link", "set", "dev", "lbto", "mtu", "9000"]);
        ns.within(|| {
            // A jumbo MTU does not fit the default slot: refused up front.
            let err = AfPacketQueue::open(&AfPacketConfig::new("lbto"))
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("too small for MTU 9000"), "{err}");
            let mut jumbo = AfPacketConfig::new("lbto");
            jumbo.frame_size = 10240;
            AfPacketQueue::open(&jumbo).unwrap();
            let err = prepare_host_path(&["lbti"], false).unwrap_err().to_string();
            assert!(err.contains("net.ipv4.conf.lbti.forwarding is 1"), "{err}");
            let report = prepare_host_path(&["lbti"], true).unwrap();
            assert_eq!(
                report.changed,
                vec!["net.ipv4.conf.lbti.forwarding: 1 -> 0".to_string()]
            );
            assert_eq!(
                prepare_host_path(&["lbti"], false).unwrap(),
                HostPathReport::default()
            );
            let err = prepare_host_path(&["nope0"], false)
                .unwrap_err()
                .to_string();
            assert!(err.contains("nope0"), "{err}");
        });
    }

    #[test]
    fn bad_config_and_missing_interfaces_are_refused() {
        let mut config = AfPacketConfig::new("lbt-none0");
        let err = AfPacketQueue::open(&config).err().unwrap().to_string();
        assert!(err.contains("lbt-none0"), "{err}");
        config.frame_size = 1000;
        let err = AfPacketQueue::open(&config).err().unwrap().to_string();
        assert!(err.contains("frame_size 1000"), "{err}");
    }

    /// Drops everything; counts frames.
    struct Sink;

    impl Processor for Sink {
        fn begin_burst(&mut self, _now_ns: u64) {}
        fn process(&mut self, _frame: &mut Frame<'_>) -> Disposition {
            Disposition::Drop
        }
    }

    /// The V2/V3 measurement behind the module docs (not a pass/fail test of
    /// speed: it fails only if a version receives nothing). Run it alone,
    /// in release mode, on an idle machine:
    /// `cargo test --release -p lbfwd-forwarder --lib measure_rx_v2_vs_v3 -- --ignored --nocapture`
    #[test]
    #[ignore = "measurement; needs trafgen (netsniff-ng) and two idle cores"]
    fn measure_rx_v2_vs_v3() {
        let ns = Netns::new("bench");
        let cfg = std::env::temp_dir().join(format!("lbt-afp-{}.trafgen", std::process::id()));
        std::fs::write(
            &cfg,
            "{ 0x02,0,0,0,0,0x99, 0x02,0,0,0,0,0x01, 0x88,0xb5, fill(0x41, 46) }\n",
        )
        .unwrap();
        let cores: Vec<usize> = crate::runtime::allowed_cores()
            .unwrap()
            .into_iter()
            .collect();
        let worker_core = *cores.last().unwrap();
        for version in [
            TpacketVersion::V2,
            TpacketVersion::V3,
            TpacketVersion::V2,
            TpacketVersion::V3,
        ] {
            // Throughput: trafgen blasts 64-byte frames; one worker drops them.
            let mut trafgen = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns.name,
                    "taskset",
                    "-c",
                    &cores[0].to_string(),
                ])
                .args(["trafgen", "--dev", "lbtg", "--conf"])
                .arg(&cfg)
                .args(["-P", "1", "-Q"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("trafgen (apt install netsniff-ng)");
            let (pps, drops) = ns.within(|| {
                assert!(core_affinity::set_for_current(core_affinity::CoreId {
                    id: worker_core
                }));
                let mut config = AfPacketConfig::new("lbti");
                config.egress = Some("lbto".into());
                config.version = version;
                let mut queue = AfPacketQueue::open(&config).unwrap();
                let mut sink = Sink;
                let shutdown = AtomicBool::new(false);
                let stats = WorkerStats::default();
                let config = WorkerConfig::default();
                std::thread::scope(|s| {
                    let meter = s.spawn(|| {
                        std::thread::sleep(Duration::from_millis(500));
                        let a = stats.snapshot().queue;
                        let t = Instant::now();
                        std::thread::sleep(Duration::from_secs(3));
                        let b = stats.snapshot().queue;
                        shutdown.store(true, Ordering::Relaxed);
                        (
                            (b.rx_packets - a.rx_packets) as f64 / t.elapsed().as_secs_f64(),
                            b.rx_ring_drops - a.rx_ring_drops,
                        )
                    });
                    run_worker(&mut queue, &mut sink, &config, &shutdown, &stats).unwrap();
                    meter.join().unwrap()
                })
            });
            let _ = trafgen.kill();
            let _ = trafgen.wait();
            // Latency: one frame every 5 ms through lbfwd to the capture side.
            let latencies = ns.within(|| {
                let mut config = AfPacketConfig::new("lbti");
                config.egress = Some("lbto".into());
                config.version = version;
                let queue = AfPacketQueue::open(&config).unwrap();
                let generator = RawSock::bind("lbtg");
                let capture = RawSock::bind("lbtc");
                let (mut lat, _) = with_worker(queue, Encap::default(), || {
                    let mut lat = Vec::new();
                    for seq in 0..50 {
                        let t = Instant::now();
                        generator.send(&test_frame(seq));
                        if collect(&capture, 1).len() == 1 {
                            lat.push(t.elapsed().as_micros() as u64);
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    lat
                });
                lat.sort_unstable();
                lat
            });
            // Ring consumption cost: fill the ring while nobody polls, then
            // time draining it (generator and scheduler out of the picture).
            let mut drain = ns.within(|| {
                assert!(core_affinity::set_for_current(core_affinity::CoreId {
                    id: worker_core
                }));
                let mut config = AfPacketConfig::new("lbti");
                config.egress = Some("lbto".into());
                config.version = version;
                let mut queue = AfPacketQueue::open(&config).unwrap();
                let generator = RawSock::bind("lbtg");
                const FILL: usize = 3000;
                let mut samples = Vec::new();
                for _ in 0..15 {
                    for seq in 0..FILL as u32 {
                        generator.send(&test_frame(seq));
                    }
                    // Let V3 retire its last, partly filled block.
                    std::thread::sleep(Duration::from_millis(30));
                    let t = Instant::now();
                    let mut got = 0;
                    while got < FILL && t.elapsed() < Duration::from_secs(1) {
                        got += queue.poll(32, |_| Disposition::Drop).unwrap();
                    }
                    let per_frame = t.elapsed().as_nanos() as f64 / got.max(1) as f64;
                    while queue.poll(32, |_| Disposition::Drop).unwrap() > 0 {}
                    if got >= FILL {
                        samples.push(per_frame);
                    }
                }
                samples
            });
            drain.sort_by(f64::total_cmp);
            assert!(
                pps > 0.0 && !latencies.is_empty() && !drain.is_empty(),
                "{version:?} received nothing"
            );
            println!(
                "{version:?}: sustained rx {:.2} Mpps (ring drops {drops}); ring drain {:.1} ns/frame (median of {}); single-frame latency through lbfwd p50 {} us, p90 {} us",
                pps / 1e6,
                drain[drain.len() / 2],
                drain.len(),
                latencies[latencies.len() / 2],
                latencies[latencies.len() * 9 / 10],
            );
        }
        let _ = std::fs::remove_file(&cfg);
    }
}
