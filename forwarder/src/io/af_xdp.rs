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
//! - [`XskQueue`]: one worker's queue, a [`WorkerQueue`]. It owns a UMEM and
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
//! [`WorkerQueue::flush`]; a frame that does not fit on the TX ring goes back
//! to the free list and counts in `tx_dropped`. [`WorkerQueue::send_copy`]
//! copies into a free frame. Debug builds check every transition against a
//! per-frame ledger (a double free or a leak trips it in the tests).
//!
//! TX is kicked with `sendto(MSG_DONTWAIT)` only when descriptors went onto
//! the TX ring (or are still there) and the kernel asks for a wake-up
//! (`XDP_USE_NEED_WAKEUP`): at most one system call per burst, none while
//! idle. In copy mode the kernel takes at most 32 descriptors per kick; the
//! rest stay on the ring, count in [`WorkerQueue::tx_pending`] and go at the
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
#![allow(unsafe_code)]

use super::{Disposition, IoError, QueueStats, WorkerQueue};
use crate::frame::{Frame, HEADROOM};
use crate::wire::checksum;
use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_void, CString};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// Default number of frames in a queue's UMEM.
pub const DEFAULT_FRAMES: u32 = 4096;
/// Default size of one UMEM frame (bytes; 2048 or 4096).
pub const DEFAULT_FRAME_SIZE: u32 = 4096;
/// Default size of each ring (fill, completion, RX, TX), in descriptors.
pub const DEFAULT_RING_SIZE: u32 = 2048;
/// Largest burst one [`WorkerQueue::poll`] receives; larger requests are cut.
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

/// The XDP program, compiled by build.rs; 8-byte aligned for libelf.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);
static XDP_OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/xsk_vip.bpf.o")));

mod ffi {
    //! What lbfwd uses of libbpf and of `csrc/xsk_shim.c`.
    use std::ffi::{c_char, c_int, c_void};

    /// `struct xdp_desc` of <linux/if_xdp.h>.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct XdpDesc {
        pub addr: u64,
        pub len: u32,
        pub options: u32,
    }

    /// The shim's `struct lbx_umem` (opaque).
    #[repr(C)]
    pub struct LbxUmem {
        _opaque: [u8; 0],
    }
    /// The shim's `struct lbx_xsk` (opaque).
    #[repr(C)]
    pub struct LbxXsk {
        _opaque: [u8; 0],
    }
    /// libbpf's `struct bpf_object` (opaque).
    #[repr(C)]
    pub struct BpfObject {
        _opaque: [u8; 0],
    }

    extern "C" {
        pub fn lbx_umem_create(
            out: *mut *mut LbxUmem,
            area: *mut c_void,
            size: u64,
            fill_size: u32,
            comp_size: u32,
            frame_size: u32,
            frame_headroom: u32,
        ) -> c_int;
        pub fn lbx_umem_delete(umem: *mut LbxUmem) -> c_int;
        pub fn lbx_xsk_create(
            out: *mut *mut LbxXsk,
            ifname: *const c_char,
            queue: u32,
            umem: *mut LbxUmem,
            first: c_int,
            rx_size: u32,
            tx_size: u32,
            bind_flags: u16,
        ) -> c_int;
        pub fn lbx_xsk_delete(xsk: *mut LbxXsk);
        pub fn lbx_xsk_fd(xsk: *const LbxXsk) -> c_int;
        pub fn lbx_rx_burst(xsk: *mut LbxXsk, out: *mut XdpDesc, max: u32) -> u32;
        pub fn lbx_tx_submit(xsk: *mut LbxXsk, descs: *const XdpDesc, n: u32) -> u32;
        pub fn lbx_fill(xsk: *mut LbxXsk, addrs: *const u64, n: u32) -> u32;
        pub fn lbx_complete(xsk: *mut LbxXsk, out: *mut u64, max: u32) -> u32;
        pub fn lbx_tx_needs_wakeup(xsk: *const LbxXsk) -> c_int;
        pub fn lbx_fill_needs_wakeup(xsk: *const LbxXsk) -> c_int;
        pub fn lbx_tx_pending(xsk: *const LbxXsk) -> u32;
        pub fn lbx_prog_load(
            buf: *const c_void,
            len: usize,
            out: *mut *mut BpfObject,
            fds: *mut c_int,
        ) -> c_int;
        pub fn lbx_xdp_link(prog_fd: c_int, ifindex: c_int, flags: u32) -> c_int;

        pub fn bpf_object__close(obj: *mut BpfObject);
        pub fn bpf_map_update_elem(
            fd: c_int,
            key: *const c_void,
            value: *const c_void,
            flags: u64,
        ) -> c_int;
        pub fn bpf_map_delete_elem(fd: c_int, key: *const c_void) -> c_int;
        pub fn bpf_map_get_next_key(fd: c_int, key: *const c_void, next: *mut c_void) -> c_int;
        pub fn bpf_map_lookup_elem(fd: c_int, key: *const c_void, value: *mut c_void) -> c_int;
        pub fn libbpf_num_possible_cpus() -> c_int;
    }
}

use ffi::XdpDesc;

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

/// Counters of the XDP program, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// VIP frames redirected to a socket.
    pub redirected: u64,
    /// Other frames, passed to the kernel.
    pub passed: u64,
    /// VIP frames dropped because their queue had no socket.
    pub no_socket: u64,
}

/// lbfwd's XDP program attached to one interface, with its VIP maps.
///
/// Detached when dropped (and by the kernel if the process dies). Share it
/// with `Arc` between the control side ([`XdpProgram::set_vips`]) and the
/// queues opened on the interface ([`XskQueue::open`]).
pub struct XdpProgram {
    interface: String,
    attach: AttachMode,
    /// The BPF link; dropping it (first) detaches the program.
    _link: OwnedFd,
    /// The program and its maps, whose fds the fields below borrow.
    _obj: BpfObj,
    vip4_fd: RawFd,
    vip6_fd: RawFd,
    xsks_fd: RawFd,
    stats_fd: RawFd,
    /// Serialises [`XdpProgram::set_vips`] calls.
    vip_lock: Mutex<()>,
}

// SAFETY: the bpf_object is only touched in Drop (close); every other use is
// of map fds through bpf(2), which the kernel serialises, and set_vips holds
// a mutex for its read-modify-write of the maps.
unsafe impl Send for XdpProgram {}
// SAFETY: as for Send: &self methods only make bpf(2) calls on map fds.
unsafe impl Sync for XdpProgram {}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("interface", &self.interface)
            .field("attach", &self.attach)
            .finish_non_exhaustive()
    }
}

/// The index of `interface` in the calling thread's network namespace.
fn ifindex(interface: &str) -> Result<u32, AfXdpError> {
    let name = CString::new(interface).map_err(|_| AfXdpError::NoInterface {
        interface: interface.to_owned(),
    })?;
    // SAFETY: name is a valid NUL-terminated string for the call's duration.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(AfXdpError::NoInterface {
            interface: interface.to_owned(),
        });
    }
    Ok(index)
}

impl XdpProgram {
    /// Loads lbfwd's XDP program and attaches it to `interface` (in the
    /// calling thread's network namespace), with an empty VIP set: until
    /// [`XdpProgram::set_vips`], every frame goes to the kernel.
    pub fn attach(interface: &str, mode: AttachMode) -> Result<Arc<Self>, AfXdpError> {
        let index = ifindex(interface)?;
        let mut obj = ptr::null_mut();
        let mut fds: [c_int; 5] = [-1; 5];
        let bytes: &[u8] = &XDP_OBJECT.0;
        // SAFETY: bytes is a valid buffer for its length (libbpf copies what
        // it keeps); obj and fds are valid out-pointers, fds has the 5 slots
        // the shim writes.
        let rc = unsafe {
            ffi::lbx_prog_load(
                bytes.as_ptr().cast(),
                bytes.len(),
                &mut obj,
                fds.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(os_err("loading the XDP program", interface, rc));
        }
        // Closed on every path from here (the guard's Drop).
        let obj = BpfObj(NonNull::new(obj).expect("lbx_prog_load sets obj on success"));
        let (link, attach) = link(interface, fds[0], index, mode)?;
        Ok(Arc::new(XdpProgram {
            interface: interface.to_owned(),
            attach,
            _link: link,
            _obj: obj,
            vip4_fd: fds[1],
            vip6_fd: fds[2],
            xsks_fd: fds[3],
            stats_fd: fds[4],
            vip_lock: Mutex::new(()),
        }))
    }

    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The attach mode in effect (never [`AttachMode::Auto`]).
    pub fn attach_mode(&self) -> AttachMode {
        self.attach
    }

    /// Replaces the set of VIPs whose frames go to the sockets. New VIPs are
    /// added before stale ones are removed, so a VIP in both sets never
    /// misses a frame. Control side only: a few system calls per VIP.
    pub fn set_vips(&self, vips: &[IpAddr]) -> Result<(), AfXdpError> {
        let mut v4 = HashSet::new();
        let mut v6 = HashSet::new();
        for vip in vips {
            match vip {
                IpAddr::V4(a) => v4.insert(a.octets()),
                IpAddr::V6(a) => v6.insert(a.octets()),
            };
        }
        for (family, n) in [("IPv4", v4.len()), ("IPv6", v6.len())] {
            if n > MAX_VIPS {
                return Err(AfXdpError::Config {
                    what: "VIPs",
                    why: format!("{n} {family} VIPs, the XDP program holds at most {MAX_VIPS}"),
                });
            }
        }
        let _guard = self.vip_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.sync_map(self.vip4_fd, &v4)?;
        self.sync_map(self.vip6_fd, &v6)?;
        Ok(())
    }

    /// Makes the hash map `fd` hold exactly the keys in `want`.
    fn sync_map<const N: usize>(
        &self,
        fd: RawFd,
        want: &HashSet<[u8; N]>,
    ) -> Result<(), AfXdpError> {
        let one: u8 = 1;
        for key in want {
            // SAFETY: key and value point at N and 1 bytes, the map's sizes.
            let rc = unsafe {
                ffi::bpf_map_update_elem(fd, key.as_ptr().cast(), ptr::from_ref(&one).cast(), 0)
            };
            if rc < 0 {
                return Err(os_err("adding a VIP to the XDP map", &self.interface, rc));
            }
        }
        for key in map_keys::<N>(fd) {
            if !want.contains(&key) {
                // SAFETY: key points at N bytes, the map's key size.
                let rc = unsafe { ffi::bpf_map_delete_elem(fd, key.as_ptr().cast()) };
                if rc < 0 && rc != -libc::ENOENT {
                    return Err(os_err(
                        "removing a VIP from the XDP map",
                        &self.interface,
                        rc,
                    ));
                }
            }
        }
        Ok(())
    }

    /// The VIPs in the program's maps now.
    pub fn vips(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = map_keys::<4>(self.vip4_fd)
            .into_iter()
            .map(|k| IpAddr::V4(Ipv4Addr::from(k)))
            .collect();
        out.extend(
            map_keys::<16>(self.vip6_fd)
                .into_iter()
                .map(|k| IpAddr::V6(Ipv6Addr::from(k))),
        );
        out.sort();
        out
    }

    /// The program's counters, summed over CPUs.
    pub fn stats(&self) -> Result<XdpStats, AfXdpError> {
        // SAFETY: no arguments; returns a count or -errno.
        let cpus = unsafe { ffi::libbpf_num_possible_cpus() };
        if cpus <= 0 {
            return Err(os_err("counting possible CPUs", &self.interface, cpus));
        }
        let mut values = vec![0u64; cpus as usize];
        let mut sums = [0u64; 3];
        for (key, sum) in (0u32..).zip(sums.iter_mut()) {
            // SAFETY: a per-CPU array's value is one u64 per possible CPU;
            // values holds exactly that many.
            let rc = unsafe {
                ffi::bpf_map_lookup_elem(
                    self.stats_fd,
                    ptr::from_ref(&key).cast(),
                    values.as_mut_ptr().cast(),
                )
            };
            if rc < 0 {
                return Err(os_err("reading the XDP counters", &self.interface, rc));
            }
            *sum = values.iter().sum();
        }
        Ok(XdpStats {
            redirected: sums[0],
            passed: sums[1],
            no_socket: sums[2],
        })
    }

    /// Puts the socket `fd` in the XSKMAP at `queue`.
    fn register(&self, queue: u32, fd: RawFd) -> Result<(), AfXdpError> {
        // SAFETY: key and value point at u32/i32, the XSKMAP's sizes.
        let rc = unsafe {
            ffi::bpf_map_update_elem(
                self.xsks_fd,
                ptr::from_ref(&queue).cast(),
                ptr::from_ref(&fd).cast(),
                0,
            )
        };
        if rc < 0 {
            return Err(os_err(
                "registering the AF_XDP socket in the XSKMAP",
                &self.interface,
                rc,
            ));
        }
        Ok(())
    }
}

/// Attaches `prog_fd` to `index` through a BPF link in `mode`, falling back
/// from native to generic for [`AttachMode::Auto`].
fn link(
    interface: &str,
    prog_fd: RawFd,
    index: u32,
    mode: AttachMode,
) -> Result<(OwnedFd, AttachMode), AfXdpError> {
    let try_mode = |flags: u32| -> Result<OwnedFd, AfXdpError> {
        // SAFETY: plain integers; the shim returns a new fd or -errno.
        let fd = unsafe { ffi::lbx_xdp_link(prog_fd, index as c_int, flags) };
        if fd < 0 {
            if matches!(-fd, libc::EBUSY | libc::EEXIST) {
                return Err(AfXdpError::Busy {
                    interface: interface.to_owned(),
                });
            }
            return Err(os_err("attaching the XDP program", interface, fd));
        }
        // SAFETY: fd is a new link fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    match mode {
        AttachMode::Native => Ok((try_mode(XDP_FLAGS_DRV_MODE)?, AttachMode::Native)),
        AttachMode::Generic => Ok((try_mode(XDP_FLAGS_SKB_MODE)?, AttachMode::Generic)),
        AttachMode::Auto => match try_mode(XDP_FLAGS_DRV_MODE) {
            Ok(fd) => Ok((fd, AttachMode::Native)),
            Err(e) if e.is_unsupported() => {
                eprintln!(
                    "lbfwd: af_xdp: {}: no native XDP on this driver ({e}); \
                     attaching in generic mode",
                    interface
                );
                Ok((try_mode(XDP_FLAGS_SKB_MODE)?, AttachMode::Generic))
            }
            Err(e) => Err(e),
        },
    }
}

/// A loaded libbpf object (the program and its maps), closed on drop.
struct BpfObj(NonNull<ffi::BpfObject>);

impl Drop for BpfObj {
    fn drop(&mut self) {
        // SAFETY: the object came from lbx_prog_load and is closed once.
        unsafe { ffi::bpf_object__close(self.0.as_ptr()) };
    }
}

/// Every key of the hash map `fd` (control side; allocates).
fn map_keys<const N: usize>(fd: RawFd) -> Vec<[u8; N]> {
    let mut keys = Vec::new();
    let mut prev: Option<[u8; N]> = None;
    loop {
        let mut next = [0u8; N];
        let prev_ptr = prev
            .as_ref()
            .map_or(ptr::null(), |k| k.as_ptr().cast::<c_void>());
        // SAFETY: prev_ptr is null (first key) or N bytes; next is N bytes.
        let rc = unsafe { ffi::bpf_map_get_next_key(fd, prev_ptr, next.as_mut_ptr().cast()) };
        if rc < 0 {
            return keys; // ENOENT: no more keys
        }
        keys.push(next);
        prev = Some(next);
    }
}

/// `SOL_XDP` socket option level.
const SOL_XDP: c_int = 283;
/// `XDP_STATISTICS` socket option.
const XDP_STATISTICS: c_int = 7;

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

/// Who holds a frame (debug builds check every move).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// On the queue's free list.
    Free,
    /// On a fill ring or the RX ring.
    KernelRx,
    /// With the worker, inside one poll.
    Worker,
    /// On a TX ring, until its completion.
    KernelTx,
}

/// Per-frame owner record; checks are compiled in debug builds only.
struct Ledger {
    #[cfg(debug_assertions)]
    owners: Vec<Owner>,
    shift: u32,
}

impl Ledger {
    fn new(frames: u32, frame_size: u32) -> Self {
        #[cfg(not(debug_assertions))]
        let _ = frames;
        Ledger {
            #[cfg(debug_assertions)]
            owners: vec![Owner::Free; frames as usize],
            shift: frame_size.trailing_zeros(),
        }
    }

    /// Records that the frame at `addr` moves from `from` to `to`.
    #[inline]
    fn moved(&mut self, addr: u64, from: Owner, to: Owner) {
        let index = (addr >> self.shift) as usize;
        #[cfg(debug_assertions)]
        {
            let owner = &mut self.owners[index];
            assert_eq!(
                *owner, from,
                "af_xdp: frame {index} moved {from:?} -> {to:?}"
            );
            *owner = to;
        }
        #[cfg(not(debug_assertions))]
        let _ = (index, from, to);
    }
}

/// One socket of a queue.
struct Port {
    xsk: NonNull<ffi::LbxXsk>,
    fd: RawFd,
    interface: String,
    /// Descriptors to put on this socket's TX ring at the end of the poll.
    pending: Vec<XdpDesc>,
    /// Frames on this socket's TX ring, not yet completed.
    in_tx: u32,
}

/// One worker's AF_XDP queue: a UMEM and the socket(s) using it.
///
/// Frames received on the ingress socket are processed in place; `Tx` frames
/// leave on the egress socket (the same socket when one-armed).
pub struct XskQueue {
    area: NonNull<u8>,
    area_len: usize,
    frame_size: u32,
    frame_mask: u64,
    umem: NonNull<ffi::LbxUmem>,
    /// ports[0] receives; ports[egress] transmits.
    ports: Vec<Port>,
    egress: usize,
    free: Vec<u64>,
    /// Frames in the UMEM (tests check that all are accounted for).
    #[cfg_attr(not(test), allow(dead_code))]
    frames: u32,
    /// Frames on the fill ring or the RX ring.
    in_rx: u32,
    descs: Vec<XdpDesc>,
    completed: Vec<u64>,
    ledger: Ledger,
    stats: QueueStats,
    mode: CopyMode,
    queue: u32,
    /// Keeps the ingress program (and its XSKMAP entry's map) alive.
    _program: Arc<XdpProgram>,
}

// SAFETY: the queue exclusively owns its UMEM mapping and sockets; nothing in
// them is tied to the creating thread, and `&mut self` serialises all use.
unsafe impl Send for XskQueue {}

impl fmt::Debug for XskQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskQueue")
            .field("ingress", &self.ports[0].interface)
            .field("egress", &self.ports[self.egress].interface)
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl XskQueue {
    /// Opens a queue on receive queue `queue` of `program`'s interface and
    /// registers it with the program. Frames to transmit leave on the same
    /// socket, or, with `egress = Some((interface, queue))`, on a second,
    /// TX-only socket on that interface that shares the UMEM (two-armed, no
    /// copy). [`CopyMode::Auto`] tries zero-copy, then copy.
    pub fn open(
        program: &Arc<XdpProgram>,
        queue: u32,
        egress: Option<(&str, u32)>,
        settings: &XskSettings,
    ) -> Result<Self, AfXdpError> {
        settings.validate()?;
        if queue >= MAX_QUEUES {
            return Err(AfXdpError::Config {
                what: "queue",
                why: format!(
                    "{queue}; the XDP program serves queues 0 to {}",
                    MAX_QUEUES - 1
                ),
            });
        }
        let modes: &[CopyMode] = match settings.copy_mode {
            CopyMode::Auto => &[CopyMode::ZeroCopy, CopyMode::Copy],
            CopyMode::Copy => &[CopyMode::Copy],
            CopyMode::ZeroCopy => &[CopyMode::ZeroCopy],
        };
        let mut last = None;
        for &mode in modes {
            match Self::open_mode(program, queue, egress, settings, mode) {
                Ok(q) => return Ok(q),
                Err(e) if settings.copy_mode == CopyMode::Auto && e.is_unsupported() => {
                    eprintln!(
                        "lbfwd: af_xdp: {} queue {queue}: no {mode} mode on this driver \
                         ({}); using copy mode",
                        program.interface,
                        e.os_error().map_or_else(String::new, |s| s.to_string())
                    );
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one mode was tried"))
    }

    fn open_mode(
        program: &Arc<XdpProgram>,
        queue: u32,
        egress: Option<(&str, u32)>,
        s: &XskSettings,
        mode: CopyMode,
    ) -> Result<Self, AfXdpError> {
        let interface = program.interface();
        let area_len = s.frames as usize * s.frame_size as usize;
        // SAFETY: an anonymous private mapping; the result is checked.
        let area = unsafe {
            libc::mmap(
                ptr::null_mut(),
                area_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if area == libc::MAP_FAILED {
            return Err(AfXdpError::Os {
                what: "mapping the UMEM",
                interface: interface.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        let area = NonNull::new(area.cast::<u8>()).expect("mmap never returns null");
        let mut umem = ptr::null_mut();
        // SAFETY: area is a fresh page-aligned mapping of area_len bytes that
        // lives until Drop, which deletes the UMEM first.
        let rc = unsafe {
            ffi::lbx_umem_create(
                &mut umem,
                area.as_ptr().cast(),
                area_len as u64,
                s.ring_size,
                s.ring_size,
                s.frame_size,
                HEADROOM as u32,
            )
        };
        if rc < 0 {
            // SAFETY: the mapping made above, unused by anything.
            unsafe { libc::munmap(area.as_ptr().cast(), area_len) };
            return Err(os_err("creating the UMEM", interface, rc));
        }
        let mut free: Vec<u64> = (0..s.frames as u64)
            .rev()
            .map(|i| i * s.frame_size as u64)
            .collect();
        free.shrink_to_fit();
        // Built now so that Drop cleans up whatever follows fails.
        let mut q = XskQueue {
            area,
            area_len,
            frame_size: s.frame_size,
            frame_mask: !(s.frame_size as u64 - 1),
            umem: NonNull::new(umem).expect("lbx_umem_create sets umem on success"),
            ports: Vec::with_capacity(2),
            egress: 0,
            free,
            frames: s.frames,
            in_rx: 0,
            descs: vec![XdpDesc::default(); MAX_BURST],
            completed: vec![0; s.ring_size as usize],
            ledger: Ledger::new(s.frames, s.frame_size),
            stats: QueueStats::default(),
            mode,
            queue,
            _program: Arc::clone(program),
        };
        let flags = XDP_USE_NEED_WAKEUP
            | match mode {
                CopyMode::ZeroCopy => XDP_ZEROCOPY,
                _ => XDP_COPY,
            };
        let egress = egress.filter(|&(eg_if, eg_queue)| eg_if != interface || eg_queue != queue);
        // The ingress socket transmits only when one-armed.
        let ingress_tx = if egress.is_some() { 0 } else { s.ring_size };
        q.add_port(interface, queue, true, s.ring_size, ingress_tx, flags, mode)?;
        if let Some((eg_if, eg_queue)) = egress {
            ifindex(eg_if)?;
            // TX only; the kernel wants a fill ring too, which stays empty.
            q.add_port(eg_if, eg_queue, false, 0, s.ring_size, flags, mode)?;
            q.egress = 1;
        }
        program.register(queue, q.ports[0].fd)?;
        q.refill();
        Ok(q)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_port(
        &mut self,
        interface: &str,
        queue: u32,
        first: bool,
        rx_size: u32,
        tx_size: u32,
        flags: u16,
        mode: CopyMode,
    ) -> Result<(), AfXdpError> {
        let name = CString::new(interface).map_err(|_| AfXdpError::NoInterface {
            interface: interface.to_owned(),
        })?;
        let mut xsk = ptr::null_mut();
        // SAFETY: name is NUL-terminated; umem is live; xsk is an out-pointer.
        let rc = unsafe {
            ffi::lbx_xsk_create(
                &mut xsk,
                name.as_ptr().cast::<c_char>(),
                queue,
                self.umem.as_ptr(),
                c_int::from(first),
                rx_size,
                tx_size,
                flags,
            )
        };
        if rc < 0 {
            let hint = match -rc {
                libc::EINVAL => " (does the queue exist? see `ethtool -l`)",
                libc::EOPNOTSUPP | ENOTSUPP if mode == CopyMode::ZeroCopy => {
                    " (the driver has no AF_XDP zero-copy support; use copy or auto mode)"
                }
                libc::EBUSY => " (another AF_XDP socket or program uses this queue)",
                libc::EPERM => " (needs root or CAP_NET_RAW)",
                _ => "",
            };
            return Err(AfXdpError::Bind {
                interface: interface.to_owned(),
                queue,
                mode,
                source: io::Error::from_raw_os_error(-rc),
                hint,
            });
        }
        let xsk = NonNull::new(xsk).expect("lbx_xsk_create sets xsk on success");
        // SAFETY: xsk is a live socket.
        let fd = unsafe { ffi::lbx_xsk_fd(xsk.as_ptr()) };
        self.ports.push(Port {
            xsk,
            fd,
            interface: interface.to_owned(),
            pending: Vec::with_capacity(tx_size as usize),
            in_tx: 0,
        });
        Ok(())
    }

    /// The copy mode in effect (never [`CopyMode::Auto`]).
    pub fn copy_mode(&self) -> CopyMode {
        self.mode
    }

    /// Copies `bytes` into a free frame and buffers it on the egress socket.
    fn buffer_copy(&mut self, bytes: &[u8]) -> Result<bool, IoError> {
        let room = self.frame_size as usize - HEADROOM;
        if bytes.is_empty() || bytes.len() > room {
            self.stats.tx_dropped += 1;
            return Ok(false);
        }
        if self.ports[self.egress].pending.len() == self.ports[self.egress].pending.capacity() {
            self.transmit()?;
        }
        self.reap();
        let Some(base) = self.free.pop() else {
            self.stats.tx_dropped += 1;
            return Ok(false);
        };
        self.ledger.moved(base, Owner::Free, Owner::Worker);
        // SAFETY: base is a free frame (ours alone) inside the mapping, and
        // HEADROOM + len <= frame_size was checked above.
        unsafe {
            ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.area.as_ptr().add(base as usize + HEADROOM),
                bytes.len(),
            );
        }
        self.ports[self.egress].pending.push(XdpDesc {
            addr: base + HEADROOM as u64,
            len: bytes.len() as u32,
            options: 0,
        });
        Ok(true)
    }

    /// Moves completed TX frames of every port to the free list.
    fn reap(&mut self) {
        for port in &mut self.ports {
            if port.in_tx == 0 {
                continue;
            }
            let max = self.completed.len() as u32;
            // SAFETY: completed has room for max addresses; xsk is live.
            let n =
                unsafe { ffi::lbx_complete(port.xsk.as_ptr(), self.completed.as_mut_ptr(), max) };
            for &addr in &self.completed[..n as usize] {
                let base = addr & self.frame_mask;
                self.ledger.moved(base, Owner::KernelTx, Owner::Free);
                self.free.push(base);
            }
            port.in_tx -= n;
        }
    }

    /// Tops the ingress fill ring up from the free list.
    fn refill(&mut self) {
        let n = self.free.len() as u32;
        if n == 0 {
            return;
        }
        // SAFETY: free holds n addresses of free frames; the shim reads them.
        let placed = unsafe { ffi::lbx_fill(self.ports[0].xsk.as_ptr(), self.free.as_ptr(), n) };
        let keep = self.free.len() - placed as usize;
        for &base in &self.free[keep..] {
            self.ledger.moved(base, Owner::Free, Owner::KernelRx);
        }
        self.free.truncate(keep);
        self.in_rx += placed;
    }

    /// Puts every buffered descriptor on its TX ring (those that do not fit
    /// are freed and counted in `tx_dropped`) and kicks the kernel where the
    /// ring holds descriptors it has not taken and it asks for a wake-up:
    /// at most one system call per socket.
    fn transmit(&mut self) -> Result<(), IoError> {
        for port in &mut self.ports {
            let n = port.pending.len() as u32;
            if n > 0 {
                // SAFETY: pending holds n descriptors of frames we own.
                let sent =
                    unsafe { ffi::lbx_tx_submit(port.xsk.as_ptr(), port.pending.as_ptr(), n) };
                let mut bytes = 0u64;
                for d in &port.pending[..sent as usize] {
                    bytes += u64::from(d.len);
                    self.ledger
                        .moved(d.addr & self.frame_mask, Owner::Worker, Owner::KernelTx);
                }
                for d in &port.pending[sent as usize..] {
                    let base = d.addr & self.frame_mask;
                    self.ledger.moved(base, Owner::Worker, Owner::Free);
                    self.free.push(base);
                }
                port.in_tx += sent;
                self.stats.tx_packets += u64::from(sent);
                self.stats.tx_bytes += bytes;
                self.stats.tx_dropped += u64::from(n - sent);
                port.pending.clear();
            }
            // SAFETY: xsk is live.
            let kick = unsafe {
                ffi::lbx_tx_pending(port.xsk.as_ptr()) > 0
                    && ffi::lbx_tx_needs_wakeup(port.xsk.as_ptr()) != 0
            };
            if kick {
                // SAFETY: a zero-length sendto on our socket, no buffers.
                let rc = unsafe {
                    libc::sendto(port.fd, ptr::null(), 0, libc::MSG_DONTWAIT, ptr::null(), 0)
                };
                if rc < 0 {
                    let err = io::Error::last_os_error();
                    // Transient: the descriptors stay on the ring for the
                    // next kick (copy mode takes 32 per kick: EAGAIN).
                    if !matches!(
                        err.raw_os_error(),
                        Some(
                            libc::EAGAIN
                                | libc::EBUSY
                                | libc::ENOBUFS
                                | libc::EINTR
                                | libc::ENETDOWN
                        )
                    ) {
                        return Err(IoError::Os {
                            what: "kicking AF_XDP TX (sendto)",
                            interface: port.interface.clone(),
                            source: err,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The kernel's counters of the ingress socket (`XDP_STATISTICS`).
    pub fn socket_stats(&self) -> Result<XskSocketStats, IoError> {
        let mut st = XskSocketStats::default();
        let mut len = std::mem::size_of::<XskSocketStats>() as libc::socklen_t;
        // SAFETY: st is a writable struct xdp_statistics of len bytes; the
        // kernel writes at most len bytes (fewer on older kernels, leaving
        // zeros).
        let rc = unsafe {
            libc::getsockopt(
                self.ports[0].fd,
                SOL_XDP,
                XDP_STATISTICS,
                ptr::from_mut(&mut st).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(IoError::last_os(
                "getsockopt(XDP_STATISTICS)",
                &self.ports[0].interface,
            ));
        }
        Ok(st)
    }

    /// Frames accounted for: free + fill/RX + TX. Equals the UMEM's frame
    /// count between polls (tests).
    #[cfg(test)]
    fn frames_accounted(&self) -> u32 {
        self.free.len() as u32 + self.in_rx + self.ports.iter().map(|p| p.in_tx).sum::<u32>()
    }
}

impl WorkerQueue for XskQueue {
    fn poll<F>(&mut self, burst: usize, mut process: F) -> Result<usize, IoError>
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        self.reap();
        self.refill();
        let max = burst.clamp(1, MAX_BURST) as u32;
        let rx = self.ports[0].xsk.as_ptr();
        // SAFETY: descs has MAX_BURST >= max slots; rx is live.
        let n = unsafe { ffi::lbx_rx_burst(rx, self.descs.as_mut_ptr(), max) };
        if n == 0 {
            // SAFETY: rx is live; a zero-length, non-blocking recvfrom is the
            // documented way to wake a driver that asked for it (zero-copy
            // drivers only; never set in copy mode).
            unsafe {
                if ffi::lbx_fill_needs_wakeup(rx) != 0 {
                    libc::recvfrom(
                        self.ports[0].fd,
                        ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        ptr::null_mut(),
                        ptr::null_mut(),
                    );
                }
            }
            return Ok(0);
        }
        self.in_rx -= n;
        self.stats.rx_packets += u64::from(n);
        let frame_size = self.frame_size as usize;
        for i in 0..n as usize {
            let desc = self.descs[i];
            let base = desc.addr & self.frame_mask;
            self.ledger.moved(base, Owner::KernelRx, Owner::Worker);
            let offset = (desc.addr - base) as usize;
            self.stats.rx_bytes += u64::from(desc.len);
            if offset + desc.len as usize > frame_size {
                // Cannot happen with a sane kernel; never build a bad Frame.
                self.stats.rx_errors += 1;
                self.ledger.moved(base, Owner::Worker, Owner::Free);
                self.free.push(base);
                continue;
            }
            // SAFETY: the kernel hands out only frames we put on the fill
            // ring, inside the mapping; until we give the frame back (free
            // list or TX ring) no one else touches it, and the slice dies
            // with this iteration.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(self.area.as_ptr().add(base as usize), frame_size)
            };
            let data = &mut buf[offset..offset + desc.len as usize];
            // AF_XDP passes no checksum status: a partial checksum (a
            // local sender behind a veth) is recognised by its value.
            if checksum::complete_l4_if_partial(data) {
                self.stats.rx_csum_fixed += 1;
            }
            let mut frame = Frame::new(buf, offset, desc.len as usize);
            let disposition = process(&mut frame);
            let (head, len) = (frame.head(), frame.len());
            match disposition {
                Disposition::Tx if len > 0 => {
                    let egress = self.egress;
                    if self.ports[egress].pending.len() == self.ports[egress].pending.capacity() {
                        self.transmit()?;
                    }
                    self.ports[egress].pending.push(XdpDesc {
                        addr: base + head as u64,
                        len: len as u32,
                        options: 0,
                    });
                }
                Disposition::Tx | Disposition::Host | Disposition::Drop => {
                    match disposition {
                        // An empty frame would be an invalid descriptor,
                        // which the kernel never completes (a leak).
                        Disposition::Tx => self.stats.tx_dropped += 1,
                        Disposition::Host => self.stats.host_packets += 1,
                        Disposition::Drop => self.stats.freed += 1,
                    }
                    self.ledger.moved(base, Owner::Worker, Owner::Free);
                    self.free.push(base);
                }
            }
        }
        if self.ports[self.egress].pending.len() >= max as usize {
            self.transmit()?;
        }
        Ok(n as usize)
    }

    fn send_copy(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        self.buffer_copy(frame)
    }

    fn tx_pending(&self) -> usize {
        self.ports
            .iter()
            .map(|p| {
                // SAFETY: xsk is live.
                let on_ring = unsafe { ffi::lbx_tx_pending(p.xsk.as_ptr()) };
                p.pending.len() + on_ring as usize
            })
            .sum()
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.transmit()?;
        self.reap();
        Ok(())
    }

    fn maintenance(&mut self) -> Result<(), IoError> {
        let st = self.socket_stats()?;
        self.stats.rx_ring_drops = st.rx_dropped + st.rx_ring_full;
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}

impl Drop for XskQueue {
    fn drop(&mut self) {
        for port in self.ports.drain(..).rev() {
            // SAFETY: each socket is deleted once; the kernel drops it from
            // the XSKMAP when its fd closes.
            unsafe { ffi::lbx_xsk_delete(port.xsk.as_ptr()) };
        }
        // SAFETY: no socket uses the UMEM any more; deleted once.
        let rc = unsafe { ffi::lbx_umem_delete(self.umem.as_ptr()) };
        if rc == 0 {
            // SAFETY: the mapping made in open_mode, no longer registered.
            unsafe { libc::munmap(self.area.as_ptr().cast(), self.area_len) };
        }
        // Else the UMEM is still registered: leak the mapping rather than
        // unmap memory the kernel may write.
    }
}

#[cfg(test)]
mod tests {
    //! Unit tests, then tests on veth pairs inside network namespaces they
    //! create (root; skipped with a message otherwise). Each of those names
    //! its namespaces and interfaces `lbx<tag>...` and removes them in a
    //! Drop guard, also when it fails.
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::process::Command;
    use std::time::{Duration, Instant};

    #[test]
    fn xdp_desc_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<XdpDesc>(), 16);
        assert_eq!(std::mem::offset_of!(XdpDesc, addr), 0);
        assert_eq!(std::mem::offset_of!(XdpDesc, len), 8);
        assert_eq!(std::mem::offset_of!(XdpDesc, options), 12);
        assert_eq!(std::mem::size_of::<XskSocketStats>(), 48);
    }

    #[test]
    fn the_embedded_xdp_object_is_a_bpf_elf() {
        let bytes: &[u8] = &XDP_OBJECT.0;
        assert_eq!(&bytes[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 247, "EM_BPF");
        assert_eq!(bytes.as_ptr() as usize % 8, 0);
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [CopyMode::Copy, CopyMode::ZeroCopy, CopyMode::Auto] {
            assert_eq!(m.to_string().parse::<CopyMode>().unwrap(), m);
        }
        for m in [AttachMode::Native, AttachMode::Generic, AttachMode::Auto] {
            assert_eq!(m.to_string().parse::<AttachMode>().unwrap(), m);
        }
        let e = "zc".parse::<CopyMode>().unwrap_err().to_string();
        assert!(e.contains("copy mode") && e.contains("\"zc\""), "{e}");
        let e = "drv".parse::<AttachMode>().unwrap_err().to_string();
        assert!(e.contains("attach mode") && e.contains("\"drv\""), "{e}");
    }

    #[test]
    fn settings_are_validated_with_named_errors() {
        XskSettings::default().validate().unwrap();
        let cases = [
            (
                XskSettings {
                    frame_size: 3000,
                    ..Default::default()
                },
                "frame_size",
            ),
            (
                XskSettings {
                    frame_size: 1024,
                    ..Default::default()
                },
                "frame_size",
            ),
            (
                XskSettings {
                    ring_size: 1000,
                    ..Default::default()
                },
                "ring_size",
            ),
            (
                XskSettings {
                    ring_size: 32,
                    frames: 64,
                    ..Default::default()
                },
                "ring_size",
            ),
            (
                XskSettings {
                    frames: 4095,
                    ..Default::default()
                },
                "frames",
            ),
        ];
        for (settings, what) in cases {
            let e = settings.validate().unwrap_err().to_string();
            assert!(e.contains(what), "{settings:?}: {e}");
        }
        let small = XskSettings {
            frame_size: 2048,
            ring_size: 64,
            frames: 128,
            ..Default::default()
        };
        small.validate().unwrap();
    }

    #[test]
    fn the_ledger_catches_a_double_free() {
        let mut ledger = Ledger::new(4, 2048);
        ledger.moved(2048, Owner::Free, Owner::KernelRx);
        ledger.moved(2048, Owner::KernelRx, Owner::Worker);
        ledger.moved(2048, Owner::Worker, Owner::Free);
        if cfg!(debug_assertions) {
            let again = std::panic::catch_unwind(move || {
                ledger.moved(2048, Owner::Worker, Owner::Free);
            });
            assert!(again.is_err(), "a frame freed twice must trip the ledger");
        }
    }

    // ---- network namespace tests ----

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    macro_rules! require_root {
        () => {
            if !is_root() {
                eprintln!("skipped: needs root (network namespaces, XDP)");
                return;
            }
        };
    }

    fn sh(args: &[&str]) -> String {
        let out = Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn sh_ok(args: &[&str]) -> bool {
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn mac(tag: u8, side: u8, pair: u8) -> [u8; 6] {
        [0x02, 0x1b, 0x0d, tag, pair, side]
    }

    /// A `peer` namespace (traffic source and sink) and a `node` namespace
    /// (where the backend runs) joined by `pairs` veth pairs; pair i has
    /// 10.(77+i).tag.1/24 and fd77:i:tag::1/64 on the peer side, .2 and ::2
    /// on the node side. The creating thread is moved into namespaces by
    /// [`Net::enter`] and back in Drop.
    struct Net {
        tag: u8,
        peer: String,
        node: String,
        pairs: u8,
        home: OwnedFd,
    }

    impl Net {
        fn new(tag: u8, pairs: u8) -> Net {
            let home = std::fs::File::open("/proc/thread-self/ns/net")
                .expect("open own netns")
                .into();
            let net = Net {
                tag,
                peer: format!("lbx{tag}peer"),
                node: format!("lbx{tag}node"),
                pairs,
                home,
            };
            for ns in [&net.peer, &net.node] {
                let _ = sh_ok(&["ip", "netns", "del", ns]);
                sh(&["ip", "netns", "add", ns]);
                sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            }
            for i in 0..pairs {
                let (p, n) = (net.peer_if(i), net.node_if(i));
                let (pm, nm) = (fmt_mac(mac(tag, 1, i)), fmt_mac(mac(tag, 2, i)));
                sh(&[
                    "ip", "-n", &net.peer, "link", "add", &p, "address", &pm, "type", "veth",
                    "peer", "name", &n, "address", &nm, "netns", &net.node,
                ]);
                for (ns, ifname, host) in [(&net.peer, &p, 1), (&net.node, &n, 2)] {
                    let v4 = format!("{}/24", net.addr4(i, host));
                    let v6 = format!("{}/64", net.addr6(i, u16::from(host)));
                    sh(&["ip", "-n", ns, "addr", "add", &v4, "dev", ifname]);
                    sh(&["ip", "-n", ns, "addr", "add", &v6, "dev", ifname, "nodad"]);
                    sh(&["ip", "-n", ns, "link", "set", ifname, "up"]);
                }
            }
            net
        }

        fn peer_if(&self, i: u8) -> String {
            format!("lbx{}p{i}", self.tag)
        }

        fn node_if(&self, i: u8) -> String {
            format!("lbx{}n{i}", self.tag)
        }

        fn addr4(&self, i: u8, host: u8) -> Ipv4Addr {
            Ipv4Addr::new(10, 77 + i, self.tag, host)
        }

        fn addr6(&self, i: u8, host: u16) -> Ipv6Addr {
            Ipv6Addr::new(0xfd77, u16::from(i), u16::from(self.tag), 0, 0, 0, 0, host)
        }

        fn vip4(&self) -> Ipv4Addr {
            self.addr4(0, 100)
        }

        fn vip6(&self) -> Ipv6Addr {
            self.addr6(0, 0x100)
        }

        /// Moves the calling thread into namespace `ns`.
        fn enter(&self, ns: &str) {
            let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
            // SAFETY: setns on a valid netns fd affects this thread only.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {ns}: {}", io::Error::last_os_error());
        }
    }

    impl Drop for Net {
        fn drop(&mut self) {
            // SAFETY: home is this thread's original netns.
            unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) };
            for i in 0..self.pairs {
                let _ = sh_ok(&["ip", "-n", &self.peer, "link", "del", &self.peer_if(i)]);
            }
            for ns in [&self.peer, &self.node] {
                let _ = sh_ok(&["ip", "netns", "del", ns]);
            }
        }
    }

    fn fmt_mac(m: [u8; 6]) -> String {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// An AF_PACKET socket on one interface, in the namespace it was made in.
    struct Raw(OwnedFd);

    impl Raw {
        fn open(ifname: &str) -> Raw {
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: socket(2) takes no pointers.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    c_int::from(proto),
                )
            };
            assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
            // SAFETY: fd is a new socket we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: sockaddr_ll is plain old data.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex(ifname).unwrap() as i32;
            // SAFETY: sll is a valid sockaddr_ll of the given size.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    ptr::from_ref(&sll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            assert_eq!(rc, 0, "bind: {}", io::Error::last_os_error());
            let rcvbuf: c_int = 16 << 20;
            // SAFETY: rcvbuf is a valid c_int of the given size.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    ptr::from_ref(&rcvbuf).cast(),
                    std::mem::size_of::<c_int>() as u32,
                )
            };
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            // SAFETY: tv is a valid timeval of the given size.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    ptr::from_ref(&tv).cast(),
                    std::mem::size_of::<libc::timeval>() as u32,
                )
            };
            Raw(fd)
        }

        fn send(&self, frame: &[u8]) {
            // SAFETY: frame is a valid buffer of its length.
            let n =
                unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            assert_eq!(
                n,
                frame.len() as isize,
                "send: {}",
                io::Error::last_os_error()
            );
        }

        /// Frames received until `quiet` passes without one.
        fn drain(&self, quiet: Duration) -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            let mut last = Instant::now();
            let mut buf = [0u8; 2048];
            while last.elapsed() < quiet {
                // SAFETY: buf is a writable buffer of its length.
                let n = unsafe {
                    libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                };
                if n > 0 {
                    out.push(buf[..n as usize].to_vec());
                    last = Instant::now();
                }
            }
            out
        }
    }

    /// An Ethernet + IP + UDP frame (UDP checksum 0 for IPv4, unchecked for
    /// IPv6 by everything here) with `payload`.
    fn udp_frame(
        src: [u8; 6],
        dst: [u8; 6],
        from: IpAddr,
        to: IpAddr,
        port: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        let udp_len = 8 + payload.len();
        match (from, to) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&[0x08, 0x00]);
                let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
                ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                let c = checksum::checksum(&ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&ip);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
                f.extend_from_slice(&(udp_len as u16).to_be_bytes());
                f.extend_from_slice(&[17, 64]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            _ => panic!("mixed families"),
        }
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&port.to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    fn has(frame: &[u8], marker: &[u8]) -> bool {
        frame.windows(marker.len()).any(|w| w == marker)
    }

    fn settings(copy_mode: CopyMode) -> XskSettings {
        XskSettings {
            copy_mode,
            frames: 1024,
            frame_size: 2048,
            ring_size: 256,
        }
    }

    /// Polls until `done` or `limit` passes; returns whether `done` held.
    fn poll_until<F>(
        q: &mut XskQueue,
        limit: Duration,
        mut process: F,
        mut done: impl FnMut() -> bool,
    ) -> bool
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        let start = Instant::now();
        while start.elapsed() < limit {
            q.poll(32, &mut process).unwrap();
            if done() {
                return true;
            }
        }
        false
    }

    /// Waits for every transmitted frame to complete, then checks that each
    /// UMEM frame is accounted for exactly once.
    fn assert_all_frames_accounted(q: &mut XskQueue) {
        let start = Instant::now();
        while q.tx_pending() > 0 || q.ports.iter().any(|p| p.in_tx > 0) {
            q.flush().unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "TX never completed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(q.frames_accounted(), q.frames);
    }

    /// The whole one-armed path on a veth pair in one attach/copy mode.
    fn one_armed(tag: u8, attach: AttachMode, copy: CopyMode, want_attach: AttachMode) {
        let net = Net::new(tag, 1);
        let (pmac, nmac) = (mac(tag, 1, 0), mac(tag, 2, 0));
        net.enter(&net.peer);
        let raw = Raw::open(&net.peer_if(0));
        net.enter(&net.node);
        let prog = XdpProgram::attach(&net.node_if(0), attach).unwrap();
        assert_eq!(prog.attach_mode(), want_attach);
        let vips = [IpAddr::V4(net.vip4()), IpAddr::V6(net.vip6())];
        prog.set_vips(&vips).unwrap();
        assert_eq!(prog.vips(), vips.to_vec());
        let mut q = XskQueue::open(&prog, 0, None, &settings(copy)).unwrap();
        assert_eq!(q.copy_mode(), CopyMode::Copy, "veth has no zero-copy");
        let host_udp = UdpSocket::bind((net.addr4(0, 2), 9999)).unwrap();
        host_udp
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();

        // 100 frames to each VIP, 10 to the node's own address.
        const N: usize = 100;
        let from4 = IpAddr::V4(net.addr4(0, 1));
        let from6 = IpAddr::V6(net.addr6(0, 1));
        for i in 0..N {
            let m = format!("lbxvip4-{i:04}");
            raw.send(&udp_frame(pmac, nmac, from4, vips[0], 7, m.as_bytes()));
            let m = format!("lbxvip6-{i:04}");
            raw.send(&udp_frame(pmac, nmac, from6, vips[1], 7, m.as_bytes()));
        }
        for _ in 0..10 {
            raw.send(&udp_frame(
                pmac,
                nmac,
                from4,
                IpAddr::V4(net.addr4(0, 2)),
                9999,
                b"lbxhost",
            ));
        }

        // Every other VIP frame goes back out with its MACs swapped.
        let (mut v4, mut v6, mut other, mut echoed) = (0, 0, 0, 0);
        let mut min_headroom = usize::MAX;
        let mut process = |f: &mut Frame<'_>| {
            min_headroom = min_headroom.min(f.headroom());
            let d = f.data_mut();
            if has(d, b"lbxvip4-") {
                v4 += 1;
            } else if has(d, b"lbxvip6-") {
                v6 += 1;
            } else {
                other += 1;
                return Disposition::Drop;
            }
            if (v4 + v6) & 1 == 0 {
                return Disposition::Drop;
            }
            let (dst, src) = d.split_at_mut(6);
            dst.swap_with_slice(&mut src[..6]);
            echoed += 1;
            Disposition::Tx
        };
        let ok = poll_until(&mut q, Duration::from_secs(5), &mut process, || false);
        assert!(!ok);
        assert_eq!(
            (v4, v6, other),
            (N, N, 0),
            "VIP frames at the socket, nothing else"
        );
        assert!(min_headroom >= HEADROOM, "headroom {min_headroom}");
        assert_eq!(echoed, N);

        // The non-VIP frames reached the kernel's own UDP socket.
        let mut buf = [0u8; 64];
        for _ in 0..10 {
            let (n, _) = host_udp
                .recv_from(&mut buf)
                .expect("non-VIP frame reached the kernel");
            assert_eq!(&buf[..n], b"lbxhost");
        }

        // One more frame through send_copy; everything arrives at the peer.
        let extra = udp_frame(nmac, pmac, vips[0], from4, 7, b"lbxcopy");
        assert!(q.send_copy(&extra).unwrap());
        q.flush().unwrap();
        let got = raw.drain(Duration::from_millis(300));
        let back: Vec<_> = got
            .iter()
            .filter(|f| f[..6] == pmac && f[6..12] == nmac)
            .collect();
        assert_eq!(
            back.iter().filter(|f| has(f, b"lbxvip")).count(),
            N,
            "echoed frames at the peer"
        );
        assert_eq!(
            back.iter().filter(|f| has(f, b"lbxcopy")).count(),
            1,
            "send_copy frame at the peer"
        );
        assert_all_frames_accounted(&mut q);
        let st = q.stats();
        assert_eq!(
            (st.rx_packets, st.tx_packets, st.freed, st.tx_dropped),
            (2 * N as u64, N as u64 + 1, N as u64, 0)
        );

        // ARP/NDP and ping to the node's own addresses: the kernel answers.
        let ns = net.peer.clone();
        let own4 = net.addr4(0, 2).to_string();
        let own6 = net.addr6(0, 2).to_string();
        sh(&[
            "ip", "netns", "exec", &ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", &own4,
        ]);
        sh(&[
            "ip", "netns", "exec", &ns, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", &own6,
        ]);
        let xs = prog.stats().unwrap();
        assert_eq!(xs.redirected, 2 * N as u64);
        assert!(xs.passed >= 10 + 4 + 2, "{xs:?}");
        assert_eq!(xs.no_socket, 0);

        // Without VIPs, nothing reaches the socket.
        prog.set_vips(&[]).unwrap();
        assert!(prog.vips().is_empty());
        raw.send(&udp_frame(pmac, nmac, from4, vips[0], 7, b"lbxvip4-late"));
        let mut late = 0;
        poll_until(
            &mut q,
            Duration::from_millis(300),
            |_| {
                late += 1;
                Disposition::Drop
            },
            || false,
        );
        assert_eq!(late, 0);
        assert_eq!(prog.stats().unwrap().redirected, 2 * N as u64);

        // Dropping the last owner detaches the program.
        drop(q);
        drop(prog);
        let link = sh(&[
            "ip",
            "-n",
            &net.node,
            "link",
            "show",
            "dev",
            &net.node_if(0),
        ]);
        assert!(!link.contains("xdp"), "program still attached: {link}");
    }

    #[test]
    fn veth_native_attach_copy_mode() {
        require_root!();
        one_armed(1, AttachMode::Native, CopyMode::Copy, AttachMode::Native);
    }

    #[test]
    fn veth_generic_attach_copy_mode() {
        require_root!();
        one_armed(2, AttachMode::Generic, CopyMode::Copy, AttachMode::Generic);
    }

    #[test]
    fn veth_auto_modes_pick_native_and_fall_back_to_copy() {
        require_root!();
        one_armed(3, AttachMode::Auto, CopyMode::Auto, AttachMode::Native);
    }

    #[test]
    fn zero_copy_on_veth_and_a_second_program_are_refused_clearly() {
        require_root!();
        let net = Net::new(4, 1);
        net.enter(&net.node);
        let prog = XdpProgram::attach(&net.node_if(0), AttachMode::Native).unwrap();
        let e = XskQueue::open(&prog, 0, None, &settings(CopyMode::ZeroCopy)).unwrap_err();
        let msg = e.to_string();
        assert!(
            e.is_unsupported() && msg.contains("zero-copy") && msg.contains(&net.node_if(0)),
            "{msg}"
        );
        let e = XdpProgram::attach(&net.node_if(0), AttachMode::Native)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already has an XDP program"), "{e}");
        let e = XskQueue::open(&prog, 5, None, &settings(CopyMode::Copy))
            .unwrap_err()
            .to_string();
        assert!(e.contains("queue 5"), "{e}");
        let e = XdpProgram::attach("lbx4nope", AttachMode::Auto)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lbx4nope") && e.contains("no such interface"),
            "{e}"
        );
    }

    #[test]
    fn two_armed_shares_the_umem_and_leaves_on_the_egress_interface() {
        require_root!();
        let tag = 5;
        let net = Net::new(tag, 2);
        let (pmac0, nmac0, pmac1, nmac1) = (
            mac(tag, 1, 0),
            mac(tag, 2, 0),
            mac(tag, 1, 1),
            mac(tag, 2, 1),
        );
        net.enter(&net.peer);
        let raw_in = Raw::open(&net.peer_if(0));
        let raw_out = Raw::open(&net.peer_if(1));
        net.enter(&net.node);
        let prog = XdpProgram::attach(&net.node_if(0), AttachMode::Native).unwrap();
        prog.set_vips(&[IpAddr::V4(net.vip4())]).unwrap();
        let egress = net.node_if(1);
        let mut q =
            XskQueue::open(&prog, 0, Some((&egress, 0)), &settings(CopyMode::Copy)).unwrap();
        const N: usize = 300;
        for i in 0..N {
            let m = format!("lbxfwd-{i:04}");
            raw_in.send(&udp_frame(
                pmac0,
                nmac0,
                IpAddr::V4(net.addr4(0, 1)),
                IpAddr::V4(net.vip4()),
                7,
                m.as_bytes(),
            ));
        }
        let mut seen = 0;
        // Prepend 50 bytes in the headroom (as an encapsulation would) and
        // send the frame to the peer on the second pair.
        let process = |f: &mut Frame<'_>| {
            seen += 1;
            assert!(f.adjust_head(-50));
            let d = f.data_mut();
            d[..6].copy_from_slice(&pmac1);
            d[6..12].copy_from_slice(&nmac1);
            d[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental
            Disposition::Tx
        };
        poll_until(&mut q, Duration::from_secs(3), process, || false);
        q.flush().unwrap();
        // The 300 frames arrived before the first poll: the RX ring (256)
        // held what it could and the kernel counted the rest.
        q.maintenance().unwrap();
        let drops = q.stats().rx_ring_drops as usize;
        assert_eq!(seen, 256.min(N), "one RX ring's worth");
        assert_eq!(seen + drops, N, "every frame received or counted dropped");
        let got = raw_out.drain(Duration::from_millis(300));
        let fwd = got
            .iter()
            .filter(|f| f[..6] == pmac1 && f[12..14] == [0x88, 0xb5] && has(f, b"lbxfwd-"))
            .count();
        assert_eq!(fwd, seen, "forwarded frames at the egress peer");
        assert_all_frames_accounted(&mut q);
    }

    #[test]
    fn send_copy_under_pressure_counts_every_frame_and_leaks_none() {
        require_root!();
        let tag = 6;
        let net = Net::new(tag, 1);
        let (pmac, nmac) = (mac(tag, 1, 0), mac(tag, 2, 0));
        net.enter(&net.peer);
        let raw = Raw::open(&net.peer_if(0));
        net.enter(&net.node);
        let prog = XdpProgram::attach(&net.node_if(0), AttachMode::Native).unwrap();
        let mut q = XskQueue::open(&prog, 0, None, &settings(CopyMode::Copy)).unwrap();
        // 3000 frames with no flush in between: more than the TX ring (256)
        // and more than the free frames (1024 - 256 on the fill ring).
        const N: usize = 3000;
        let from = IpAddr::V4(net.addr4(0, 2));
        let to = IpAddr::V4(net.addr4(0, 1));
        let mut accepted = 0;
        for i in 0..N {
            let m = format!("lbxburst-{i:05}");
            if q.send_copy(&udp_frame(nmac, pmac, from, to, 7, m.as_bytes()))
                .unwrap()
            {
                accepted += 1;
            }
        }
        assert_all_frames_accounted(&mut q);
        let st = q.stats();
        assert!(accepted > 256 && accepted <= N, "accepted {accepted}");
        assert_eq!(st.tx_packets + st.tx_dropped, N as u64, "{st:?}");
        let got = raw.drain(Duration::from_millis(300));
        // (Frames from our MAC only: the peer's ICMP port unreachables quote them.)
        let arrived = got
            .iter()
            .filter(|f| f[..6] == pmac && f[6..12] == nmac && has(f, b"lbxburst-"))
            .count();
        assert_eq!(arrived as u64, st.tx_packets, "{st:?}");
        // Oversized and empty frames are refused, not truncated.
        assert!(!q.send_copy(&[0u8; 2048]).unwrap());
        assert!(!q.send_copy(&[]).unwrap());
        assert_all_frames_accounted(&mut q);
    }

    /// True when the TCP/UDP checksum of `frame` verifies.
    fn l4_checksum_ok(frame: &[u8]) -> bool {
        let seg = checksum::l4_segment(frame).expect("a TCP or UDP frame");
        let segment = checksum::sum(&frame[seg.start..seg.end]);
        checksum::add(seg.pseudo_header(frame), segment) == 0xffff
    }

    /// The queue's frames (`udp_frame`) as a local sender leaves them,
    /// with the pseudo-header sum in the field, are recognised and completed
    /// (the checksum family itself is tested in `wire::checksum`).
    #[test]
    fn partial_checksums_are_recognised_and_complete_ones_are_not() {
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let v4 = (
            IpAddr::V4(Ipv4Addr::new(10, 77, 7, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 77, 7, 100)),
        );
        let v6 = (
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::new(0xfd77, 0, 7, 0, 0, 0, 0, 0x100)),
        );
        for (from, to) in [v4, v6] {
            let mut f = udp_frame(a, b, from, to, 5000, b"lbxcsum-probe-payload");
            // The pseudo-header sum in the field, as a local sender leaves it.
            let seg = checksum::l4_segment(&f).unwrap();
            let pseudo = seg.pseudo_header(&f);
            f[seg.check_at..seg.check_at + 2].copy_from_slice(&pseudo.to_be_bytes());
            assert!(!l4_checksum_ok(&f));
            assert!(checksum::complete_l4_if_partial(&mut f), "{from}");
            assert!(l4_checksum_ok(&f), "{from}: completed checksum verifies");
            assert!(
                !checksum::complete_l4_if_partial(&mut f),
                "{from}: complete"
            );
            // Truncated frames are left alone.
            assert!(!checksum::complete_l4_if_partial(&mut f[..30]));
        }
    }

    #[test]
    fn partial_checksums_of_local_senders_are_completed() {
        require_root!();
        let tag = 7;
        let net = Net::new(tag, 1);
        let nmac = mac(tag, 2, 0);
        net.enter(&net.node);
        let prog = XdpProgram::attach(&net.node_if(0), AttachMode::Native).unwrap();
        prog.set_vips(&[IpAddr::V4(net.vip4()), IpAddr::V6(net.vip6())])
            .unwrap();
        let mut q = XskQueue::open(&prog, 0, None, &settings(CopyMode::Copy)).unwrap();
        let (vip4, vip6) = (net.vip4().to_string(), net.vip6().to_string());
        for vip in [&vip4, &vip6] {
            sh(&[
                "ip",
                "-n",
                &net.peer,
                "neigh",
                "add",
                vip,
                "lladdr",
                &fmt_mac(nmac),
                "dev",
                &net.peer_if(0),
            ]);
        }
        // UDP and a TCP SYN from real sockets in the peer namespace.
        net.enter(&net.peer);
        let u4 = UdpSocket::bind("0.0.0.0:0").unwrap();
        u4.send_to(b"lbxcsum-udp4", (net.vip4(), 5000)).unwrap();
        let u6 = UdpSocket::bind("[::]:0").unwrap();
        u6.send_to(b"lbxcsum-udp6", (net.vip6(), 5000)).unwrap();
        let vip = net.vip4();
        let tcp = std::thread::spawn(move || {
            let _ =
                std::net::TcpStream::connect_timeout(&(vip, 80).into(), Duration::from_millis(300));
        });
        net.enter(&net.node);
        let mut frames = Vec::new();
        poll_until(
            &mut q,
            Duration::from_millis(600),
            |f| {
                frames.push(f.data().to_vec());
                Disposition::Drop
            },
            || false,
        );
        tcp.join().unwrap();
        let l4 = frames.iter().filter(|f| {
            let proto = if f[12..14] == [0x08, 0x00] {
                f[23]
            } else {
                f[20]
            };
            proto == 6 || proto == 17
        });
        let mut n = 0;
        for f in l4 {
            assert!(l4_checksum_ok(f), "bad checksum in {f:02x?}");
            n += 1;
        }
        assert!(n >= 3, "udp4, udp6 and a SYN: got {n}");
        assert!(q.stats().rx_csum_fixed >= 3, "{:?}", q.stats());
    }
}
