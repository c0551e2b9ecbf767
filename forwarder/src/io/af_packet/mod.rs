//! The `af_packet` backend: Linux PACKET_MMAP rings, no system library.
//!
//! Each worker queue is two sockets:
//!
//! - a receive socket bound to the ingress interface, with a `PACKET_RX_RING`
//!   (TPACKET_V2 by default, V3 on request, see below), `PACKET_RESERVE` so
//!   that every received frame has at least [`HEADROOM`](crate::frame::HEADROOM) bytes free in front
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
//!
//! # Files
//!
//! | file | holds | unsafe |
//! | --- | --- | --- |
//! | `mod.rs` | these docs, [`AfPacketConfig`], [`fanout_group_id`] | no |
//! | `ring.rs` | ring mappings shared with the kernel, their status words, socket options | yes |
//! | `queue.rs` | [`AfPacketQueue`]: opening, the V2/V3 receive loops, the transmit ring | yes |
//! | `host_path.rs` | [`prepare_host_path`]: the forwarding sysctls | no |
//! | `tests.rs` | the backend on veth pairs in namespaces (root) | yes (raw sockets) |

use super::IoError;

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

mod host_path;
mod queue;
mod ring;

pub use host_path::{prepare_host_path, HostPathReport};
pub use queue::AfPacketQueue;

#[cfg(test)]
mod tests;
