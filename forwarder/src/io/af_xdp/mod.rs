//! AF_XDP backend: one XSK socket per worker queue, through Debian's libxdp
//! and libbpf (cargo feature `af_xdp`).
//!
//! # Pieces
//!
//! - [`XdpProgram`]: lbfwd's own XDP program (`csrc/xsk_vip.bpf.c`), one per
//!   interface. It looks the destination address of every IPv4 and IPv6 frame
//!   up in a hash map of VIPs and redirects only VIP frames to the AF_XDP
//!   socket of their receive queue (an XSKMAP); everything else gets
//!   `XDP_PASS`. [`XdpProgram::set_vips`] replaces the VIP set; it is a
//!   handful of `bpf(2)` calls, takes `&self`, and is meant for the control
//!   side (off the fast path) whenever the tables change.
//! - [`XskQueue`]: one worker's queue, a [`WorkerQueue`](crate::io::WorkerQueue). It owns a UMEM and
//!   one socket (one-armed: frames leave where they came in) or two sockets
//!   sharing that UMEM (two-armed: frames received on the ingress interface
//!   leave on the egress interface, with no copy).
//!
//! # The host path: why an XDP program with a VIP map
//!
//! The alternative, libxdp's default program (redirect every frame) plus a
//! TAP device through which the worker writes non-VIP frames back into the
//! kernel, costs a system call per host frame, makes the appliance's own
//! ARP/NDP, SSH and BGP depend on a running, healthy lbfwd, and hides the real
//! interface from the kernel. With the VIP map the kernel keeps its native
//! path: non-VIP frames never leave it, whatever lbfwd does. VIP frames are
//! the only frames the sockets see; a VIP frame arriving on a queue that has
//! no socket is dropped (the kernel must never route VIP traffic a second
//! time nor answer for it, as with AF_PACKET). For the same reason a
//! [`Disposition::Host`] verdict on a frame of this backend (which is always
//! a VIP frame) counts in `host_packets` and frees the frame.
//!
//! The program is attached through a BPF link (`bpf_link_create`): the kernel
//! detaches it when the link is closed, also when lbfwd dies, so a crash
//! never leaves an interface that drops VIP traffic behind it. Attaching
//! fails, with a clear error, when the interface already has an XDP program.
//! libxdp's multi-program dispatcher is not used (it needs bpffs mounted at
//! /sys/fs/bpf); lbfwd owns its interfaces. libxdp is used for the socket and
//! UMEM set-up (`xsk_umem__create`, `xsk_socket__create_shared`), with
//! `XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD` so it loads no program of its own.
//!
//! # UMEM and frame ownership
//!
//! Each [`XskQueue`] has its own UMEM ([`XskSettings::frames`] frames of
//! [`XskSettings::frame_size`] bytes, aligned mode) with a frame headroom of
//! [`HEADROOM`]: the kernel puts received data `HEADROOM + 256`
//! (`XDP_PACKET_HEADROOM`) bytes into the frame, so encapsulation prepends in
//! place. Every frame is at all times in exactly one place: the queue's free
//! list, the kernel (fill ring, RX ring), the worker (inside one `poll`), or
//! the kernel again (TX ring until its completion). Each poll drains the
//! completion rings into the free list, tops the fill ring up from the free
//! list and receives a burst; `Tx` frames are buffered as descriptors of the
//! frame itself (same UMEM: no copy, also two-armed) and go onto the egress
//! socket's TX ring once `burst` of them are buffered, or at
//! [`WorkerQueue::flush`](crate::io::WorkerQueue::flush); a frame that does not fit on the TX ring goes back
//! to the free list and counts in `tx_dropped`. [`WorkerQueue::send_copy`](crate::io::WorkerQueue::send_copy)
//! copies into a free frame. Debug builds check every transition against a
//! per-frame ledger (a double free or a leak trips it in the tests).
//!
//! TX is kicked with `sendto(MSG_DONTWAIT)` only when descriptors went onto
//! the TX ring (or are still there) and the kernel asks for a wake-up
//! (`XDP_USE_NEED_WAKEUP`): at most one system call per burst, none while
//! idle. In copy mode the kernel takes at most 32 descriptors per kick; the
//! rest stay on the ring, count in [`WorkerQueue::tx_pending`](crate::io::WorkerQueue::tx_pending) and go at the
//! next flush.
//!
//! # Modes
//!
//! - Socket: [`CopyMode::Copy`] (`XDP_COPY`), [`CopyMode::ZeroCopy`]
//!   (`XDP_ZEROCOPY`, needs driver support) or [`CopyMode::Auto`] (zero-copy,
//!   else copy, with an info line on stderr).
//! - Attach: [`AttachMode::Native`] (`XDP_FLAGS_DRV_MODE`),
//!   [`AttachMode::Generic`] (`XDP_FLAGS_SKB_MODE`) or [`AttachMode::Auto`]
//!   (native, else generic, with an info line).
//!
//! # veth (tests, the demo topology)
//!
//! veth has native XDP but no AF_XDP zero-copy: use native (or auto) attach
//! and copy (or auto) mode. Received frames reach the socket with only the
//! program on the receiving veth: its NAPI is switched on by the program
//! itself. Transmission in copy mode builds an skb and hands it to the veth
//! like any other packet, so the peer needs neither an XDP program nor GRO.
//! (Those are needed only when some XDP program `XDP_REDIRECT`s frames *into*
//! a veth, i.e. `ndo_xdp_xmit`, which this backend never does.) Generic
//! attach works too, slower. The tests at the bottom of this file run all
//! of these on veth pairs in network namespaces.
//!
//! While the program is attached in native mode, the kernel turns TSO/GSO
//! off on the veth's peer and caps the peer's MTU at 3506 (a frame must fit
//! one page: the program does not take multi-buffer frames); keep MTUs at
//! 1500 in the topology. Frames from local senders behind veth (a client
//! namespace, also through a forwarding router namespace) arrive with
//! *partial* TCP/UDP checksums (`CHECKSUM_PARTIAL`: the field holds the
//! pseudo-header sum) and AF_XDP says nothing about it; the queue recognises
//! them by value and completes the checksum before the pipeline sees the
//! frame ([`crate::wire::checksum::complete_l4_if_partial`], counted as
//! `rx_csum_fixed`), or the backends would drop the decapsulated packets.
//!
//! # Build and run requirements
//!
//! `libxdp-dev`, `libbpf-dev`, `pkg-config` and `clang` at build time (see
//! `build.rs`); at run time root (or `CAP_NET_ADMIN`, `CAP_BPF`,
//! `CAP_NET_RAW`, and `CAP_IPC_LOCK` for the UMEM) and a kernel >= 5.10
//! (BPF links for XDP, shared UMEM across interfaces).
//!
//! # Files
//!
//! | file | holds | unsafe |
//! | --- | --- | --- |
//! | `mod.rs` | these docs, [`AfXdpError`], [`XskSettings`], copy and attach modes | no |
//! | `ffi.rs` | declarations of libbpf and `csrc/xsk_shim.c`, the compiled XDP program | no (declarations) |
//! | `program.rs` | [`XdpProgram`]: attach, VIP maps, XSK map, counters | yes |
//! | `queue.rs` | [`XskQueue`]: UMEM, the four rings, the frame ledger, the receive loop | yes |
//! | `tests.rs` | the backend on veth pairs in namespaces (root) | yes |

use super::IoError;
use crate::frame::HEADROOM;
use std::ffi::c_int;
use std::fmt;
use std::io;
use std::str::FromStr;

/// Default number of frames in a queue's UMEM.
pub const DEFAULT_FRAMES: u32 = 4096;
/// Default size of one UMEM frame (bytes; 2048 or 4096).
pub const DEFAULT_FRAME_SIZE: u32 = 4096;
/// Default size of each ring (fill, completion, RX, TX), in descriptors.
pub const DEFAULT_RING_SIZE: u32 = 2048;
/// Largest burst one [`WorkerQueue::poll`](crate::io::WorkerQueue::poll) receives; larger requests are cut.
pub const MAX_BURST: usize = 256;
/// Most VIPs (per family) the XDP program's maps hold (`MAX_VIPS` there).
pub const MAX_VIPS: usize = 4096;
/// Highest receive queue index + 1 the XSKMAP holds (`MAX_QUEUES` there).
pub const MAX_QUEUES: u32 = 256;

/// Headroom the kernel itself keeps in front of received data
/// (`XDP_PACKET_HEADROOM`), on top of the UMEM's frame headroom.
const XDP_PACKET_HEADROOM: u32 = 256;
/// Room a frame must have for an Ethernet frame of a 1500-byte MTU.
const MIN_FRAME_ROOM: u32 = 1518;

// <linux/if_xdp.h> bind flags.
const XDP_COPY: u16 = 1 << 1;
const XDP_ZEROCOPY: u16 = 1 << 2;
const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
// <linux/if_link.h> XDP attach flags.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// Linux's internal ENOTSUPP, which some drivers leak to user space.
const ENOTSUPP: i32 = 524;
/// Errors of the AF_XDP backend (set-up and control side).
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    /// An AF_XDP setting is out of range.
    #[error("af_xdp setting {what}: {why}")]
    Config {
        /// The setting.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The interface does not exist in this network namespace.
    #[error("interface {interface}: no such interface")]
    NoInterface {
        /// The interface name.
        interface: String,
    },
    /// The interface already has an XDP program that is not lbfwd's.
    #[error(
        "interface {interface} already has an XDP program; remove it first \
         (ip link set dev {interface} xdp off)"
    )]
    Busy {
        /// The interface name.
        interface: String,
    },
    /// The socket could not be bound to the queue.
    #[error("AF_XDP socket on {interface} queue {queue} ({mode} mode): {source}{hint}")]
    Bind {
        /// The interface name.
        interface: String,
        /// The queue index.
        queue: u32,
        /// The copy mode that was asked for.
        mode: CopyMode,
        /// The OS error.
        #[source]
        source: io::Error,
        /// What probably went wrong, for the operator ("" when unknown).
        hint: &'static str,
    },
    /// A system or library call failed.
    #[error("{what} on {interface}: {source}")]
    Os {
        /// The operation that failed.
        what: &'static str,
        /// The interface it failed on.
        interface: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl From<AfXdpError> for IoError {
    fn from(e: AfXdpError) -> Self {
        IoError::Backend(Box::new(e))
    }
}

impl AfXdpError {
    /// The OS error underneath, if any.
    fn os_error(&self) -> Option<&io::Error> {
        match self {
            AfXdpError::Bind { source, .. } | AfXdpError::Os { source, .. } => Some(source),
            _ => None,
        }
    }

    /// True for the errors a driver gives for a mode it does not support.
    fn is_unsupported(&self) -> bool {
        let Some(source) = self.os_error() else {
            return false;
        };
        matches!(
            source.raw_os_error(),
            Some(libc::EOPNOTSUPP | libc::EPROTONOSUPPORT | ENOTSUPP)
        )
    }
}

/// Error for a negative errno returned by the shim or libbpf.
fn os_err(what: &'static str, interface: &str, rc: c_int) -> AfXdpError {
    AfXdpError::Os {
        what,
        interface: interface.to_owned(),
        source: io::Error::from_raw_os_error(-rc),
    }
}

/// Socket copy mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CopyMode {
    /// `XDP_COPY`: the kernel copies frames into and out of the UMEM.
    Copy,
    /// `XDP_ZEROCOPY`: the driver DMAs straight into the UMEM.
    ZeroCopy,
    /// Zero-copy where the driver supports it, else copy.
    #[default]
    Auto,
}

impl fmt::Display for CopyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CopyMode::Copy => "copy",
            CopyMode::ZeroCopy => "zero-copy",
            CopyMode::Auto => "auto",
        })
    }
}

impl FromStr for CopyMode {
    type Err = AfXdpError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "copy" => Ok(CopyMode::Copy),
            "zero-copy" | "zerocopy" => Ok(CopyMode::ZeroCopy),
            "auto" => Ok(CopyMode::Auto),
            _ => Err(AfXdpError::Config {
                what: "copy mode",
                why: format!("{s:?} is not one of \"copy\", \"zero-copy\", \"auto\""),
            }),
        }
    }
}

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic, skb-based path (`XDP_FLAGS_SKB_MODE`); any interface.
    Generic,
    /// Native where the driver supports it, else generic.
    #[default]
    Auto,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::Auto => "auto",
        })
    }
}

impl FromStr for AttachMode {
    type Err = AfXdpError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" | "driver" => Ok(AttachMode::Native),
            "generic" | "skb" => Ok(AttachMode::Generic),
            "auto" => Ok(AttachMode::Auto),
            _ => Err(AfXdpError::Config {
                what: "attach mode",
                why: format!("{s:?} is not one of \"native\", \"generic\", \"auto\""),
            }),
        }
    }
}
/// The kernel's counters of an AF_XDP socket (`struct xdp_statistics`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskSocketStats {
    /// Frames dropped for reasons other than invalid descriptors.
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring (a backend bug).
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the TX ring (a backend bug; such frames are
    /// never completed).
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was found empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was found empty.
    pub tx_ring_empty_descs: u64,
}

/// Sizes of one [`XskQueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XskSettings {
    /// Socket copy mode.
    pub copy_mode: CopyMode,
    /// Frames in the UMEM (at least twice `ring_size`).
    pub frames: u32,
    /// Bytes per frame: 2048 or 4096.
    pub frame_size: u32,
    /// Descriptors per ring (fill, completion, RX, TX): a power of two.
    pub ring_size: u32,
}

impl Default for XskSettings {
    fn default() -> Self {
        XskSettings {
            copy_mode: CopyMode::Auto,
            frames: DEFAULT_FRAMES,
            frame_size: DEFAULT_FRAME_SIZE,
            ring_size: DEFAULT_RING_SIZE,
        }
    }
}

impl XskSettings {
    /// Checks the sizes; every error names the setting and the rule.
    pub fn validate(&self) -> Result<(), AfXdpError> {
        let bad = |what, why: String| Err(AfXdpError::Config { what, why });
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return bad(
                "frame_size",
                format!("{} bytes; must be 2048 or 4096", self.frame_size),
            );
        }
        let room = self.frame_size - HEADROOM as u32 - XDP_PACKET_HEADROOM;
        if room < MIN_FRAME_ROOM {
            return bad(
                "frame_size",
                format!("{} bytes leave {room} for a frame", self.frame_size),
            );
        }
        if !self.ring_size.is_power_of_two() || !(64..=32768).contains(&self.ring_size) {
            return bad(
                "ring_size",
                format!(
                    "{}; must be a power of two from 64 to 32768",
                    self.ring_size
                ),
            );
        }
        if self.frames < 2 * self.ring_size || self.frames > 1 << 20 {
            return bad(
                "frames",
                format!(
                    "{}; must be at least 2 x ring_size ({}) and at most 1048576",
                    self.frames,
                    2 * self.ring_size
                ),
            );
        }
        Ok(())
    }
}

mod ffi;
mod program;
mod queue;

pub use program::{XdpProgram, XdpStats};
pub use queue::XskQueue;

#[cfg(test)]
mod tests;
