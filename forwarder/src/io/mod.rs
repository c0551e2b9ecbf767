//! Packet I/O backends behind one trait. All unsafe code of lbfwd lives under
//! this module (rings shared with the kernel, FFI to libxdp and DPDK).
//!
//! A backend hands the worker loop ([`crate::worker`]) one [`WorkerQueue`]
//! per worker: a receive queue whose frames are processed in place, in the
//! backend's own buffers, with at least [`crate::frame::HEADROOM`] bytes free in front of
//! each frame, and a transmit buffer that the worker kicks in bursts.
//!
//! | backend | module | use |
//! | --- | --- | --- |
//! | `af_packet` | [`af_packet`] | default: PACKET_MMAP rings, no system library |
//! | `af_xdp` | `af_xdp` (feature `af_xdp`) | XSK sockets through libxdp |
//! | `memory` | [`memory`] | in-process rings for tests and benchmarks |
//! | `pcap` | [`pcap`] | file in, file out (and `lbfwd replay`) |
#![allow(unsafe_code)]

use crate::frame::Frame;
use crate::worker::Processor;

/// What happens to a frame once the pipeline has looked at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Disposition {
    /// Transmit the frame as it now stands (its head may have moved).
    Tx = 0,
    /// Hand the frame, unchanged, to the host's own stack.
    Host = 1,
    /// Free the frame.
    Drop = 2,
}

/// Counters a queue keeps about itself (not about verdicts: the pipeline
/// counts those, with their reasons).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Frames received and handed to the pipeline.
    pub rx_packets: u64,
    /// Bytes of the frames received.
    pub rx_bytes: u64,
    /// Frames handed to the device for transmission (received frames the
    /// pipeline sent, plus extra frames through [`WorkerQueue::send_copy`]).
    pub tx_packets: u64,
    /// Bytes of the frames handed to the device.
    pub tx_bytes: u64,
    /// Frames that could not be transmitted (ring full, frame larger than a
    /// transmit slot, send error).
    pub tx_dropped: u64,
    /// Frames passed to the host path.
    pub host_packets: u64,
    /// Frames the pipeline dropped (freed by the queue).
    pub freed: u64,
    /// Frames the backend itself discarded before the pipeline saw them
    /// (truncated by the ring's frame size, malformed descriptors).
    pub rx_errors: u64,
    /// Frames the kernel dropped because the receive ring was full (as far as
    /// the backend can tell; refreshed by [`WorkerQueue::maintenance`]).
    pub rx_ring_drops: u64,
    /// Frames received with a partial (not yet computed) L4 checksum whose
    /// checksum the backend completed in software.
    pub rx_csum_fixed: u64,
    /// Frames received with a partial L4 checksum that the backend could not
    /// complete (headers it does not parse); forwarded as they are.
    pub rx_csum_unfixed: u64,
}

impl QueueStats {
    /// Adds `other` to `self`, field by field (totals over workers).
    pub fn accumulate(&mut self, other: &QueueStats) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.tx_dropped += other.tx_dropped;
        self.host_packets += other.host_packets;
        self.freed += other.freed;
        self.rx_errors += other.rx_errors;
        self.rx_ring_drops += other.rx_ring_drops;
        self.rx_csum_fixed += other.rx_csum_fixed;
        self.rx_csum_unfixed += other.rx_csum_unfixed;
    }
}

/// One worker's receive queue and transmit buffer on a backend.
///
/// A worker calls [`WorkerQueue::poll`] in a loop; frames are processed in
/// place, in the backend's own buffers. Every received buffer is either
/// queued for transmission (copied into, or handed to, a transmit slot) or
/// freed before `poll` returns; queued transmissions reach the device at the
/// latest at the next [`WorkerQueue::flush`].
///
/// Nothing here may allocate, lock, log or make a system call per packet;
/// `flush` makes at most one system call per burst.
pub trait WorkerQueue: Send {
    /// Receives up to `burst` frames, runs `process` on each in place and
    /// disposes of each as it says. Frames to transmit are buffered; a
    /// backend kicks the device inside `poll` only when its transmit buffer
    /// is full. Returns the number of frames received.
    fn poll<F>(&mut self, burst: usize, process: F) -> Result<usize, IoError>
    where
        F: FnMut(&mut Frame<'_>) -> Disposition;

    /// [`WorkerQueue::poll`] with a [`Processor`]: a backend that can calls
    /// [`Processor::prefetch`] on every frame of the burst first (when
    /// [`Processor::wants_prefetch`] says so), then
    /// [`Processor::process`] on each, in the same order (the worker loop
    /// uses this). Default: `poll` with `process` only.
    fn poll_with<P: Processor>(
        &mut self,
        burst: usize,
        processor: &mut P,
    ) -> Result<usize, IoError> {
        self.poll(burst, |frame| processor.process(frame))
    }

    /// Buffers a copy of `frame` for transmission: for frames that are not
    /// tied to a received buffer (e.g. IP fragments the pipeline held back
    /// and releases later). Returns `Ok(false)`, counting a `tx_dropped`,
    /// when there is no room.
    fn send_copy(&mut self, frame: &[u8]) -> Result<bool, IoError>;

    /// Frames buffered for transmission and not yet handed to the device.
    fn tx_pending(&self) -> usize;

    /// Sends every buffered frame now (a burst is full, the drain timer
    /// expired, or shutdown). A no-op when nothing is pending.
    fn flush(&mut self) -> Result<(), IoError>;

    /// Slow-path upkeep, called by the worker a few times a second at most:
    /// refresh kernel-side counters and the like. Default: nothing.
    fn maintenance(&mut self) -> Result<(), IoError> {
        Ok(())
    }

    /// This queue's own counters.
    fn stats(&self) -> QueueStats;
}

/// A queue of any backend chosen at run time (from the config), for code
/// that cannot be generic over the backend. Dispatch is one `match` per
/// poll, not per packet.
pub enum AnyQueue {
    /// An [`af_packet::AfPacketQueue`].
    AfPacket(af_packet::AfPacketQueue),
    /// A [`pcap::PcapQueue`].
    Pcap(pcap::PcapQueue),
    /// A [`memory::MemoryQueue`].
    Memory(memory::MemoryQueue),
}

macro_rules! any_queue {
    ($self:expr, $q:ident => $body:expr) => {
        match $self {
            AnyQueue::AfPacket($q) => $body,
            AnyQueue::Pcap($q) => $body,
            AnyQueue::Memory($q) => $body,
        }
    };
}

impl WorkerQueue for AnyQueue {
    fn poll<F>(&mut self, burst: usize, process: F) -> Result<usize, IoError>
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        any_queue!(self, q => q.poll(burst, process))
    }

    fn poll_with<P: Processor>(
        &mut self,
        burst: usize,
        processor: &mut P,
    ) -> Result<usize, IoError> {
        any_queue!(self, q => q.poll_with(burst, processor))
    }

    fn send_copy(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        any_queue!(self, q => q.send_copy(frame))
    }

    fn tx_pending(&self) -> usize {
        any_queue!(self, q => q.tx_pending())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        any_queue!(self, q => q.flush())
    }

    fn maintenance(&mut self) -> Result<(), IoError> {
        any_queue!(self, q => q.maintenance())
    }

    fn stats(&self) -> QueueStats {
        any_queue!(self, q => q.stats())
    }
}

/// A closure as a [`Processor`] (no prefetch): lets a backend implement
/// [`WorkerQueue::poll`] through its [`WorkerQueue::poll_with`].
pub(crate) struct ClosureProcessor<F>(pub(crate) F);

impl<F: FnMut(&mut Frame<'_>) -> Disposition> Processor for ClosureProcessor<F> {
    fn begin_burst(&mut self, _now_ns: u64) {}

    #[inline(always)]
    fn process(&mut self, frame: &mut Frame<'_>) -> Disposition {
        (self.0)(frame)
    }
}

/// Asks the CPU to bring the cache line holding `*r` into the caches: a
/// hint with no effect on the program's meaning (for the pipeline's burst
/// prefetch, which may not use `unsafe` itself).
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and changes no memory; the address is
    // that of a live reference anyway. SSE is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Asks the kernel to back `v`'s allocation (its whole capacity) with
/// transparent huge pages (`madvise(MADV_HUGEPAGE)`), for large tables the
/// fast path reads at random (fewer TLB misses). Call it before the memory
/// is first written (e.g. on `Vec::with_capacity`). Best effort: returns
/// false when the kernel refused (THP off, too small); nothing else changes.
pub fn advise_huge_pages<T>(v: &mut Vec<T>) -> bool {
    const HUGE: usize = 2 << 20;
    let start = v.as_mut_ptr() as usize;
    let bytes = v.capacity() * std::mem::size_of::<T>();
    // Only the 2 MiB-aligned part can become huge pages.
    let first = start.next_multiple_of(HUGE);
    let end = (start + bytes) / HUGE * HUGE;
    if end <= first {
        return false;
    }
    // SAFETY: the range lies inside the allocation `v` owns; MADV_HUGEPAGE
    // only changes how the kernel backs it, never its contents or validity.
    unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) == 0 }
}

/// Errors of the I/O backends.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A system call failed.
    #[error("{what} on {interface}: {source}")]
    Os {
        /// The operation that failed.
        what: &'static str,
        /// The interface or file it failed on.
        interface: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A backend could not be set up as configured.
    #[error("{0}")]
    Setup(String),
    /// A pcap file could not be read or written.
    #[error(transparent)]
    Pcap(#[from] pcap::PcapError),
}

impl IoError {
    /// An [`IoError::Os`] from `errno` of the last failed call.
    pub(crate) fn last_os(what: &'static str, interface: &str) -> Self {
        IoError::Os {
            what,
            interface: interface.to_string(),
            source: std::io::Error::last_os_error(),
        }
    }
}

/// What the runtime needs to know about a network interface to validate a
/// worker layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Interface name.
    pub name: String,
    /// Kernel interface index.
    pub index: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier present (IFF_RUNNING).
    pub running: bool,
    /// Number of receive queues (combined + rx-only channels as the driver
    /// reports them; 1 when the driver does not say).
    pub rx_queues: u32,
    /// MTU in bytes.
    pub mtu: u32,
}

/// Looks up an interface by name in this thread's network namespace.
pub fn interface_info(name: &str) -> Result<InterfaceInfo, IoError> {
    let cname = ifname_c(name)?;
    // SAFETY: `cname` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(IoError::Setup(format!(
            "interface {name:?} does not exist (in this network namespace)"
        )));
    }
    let sock = Fd::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
        .or_else(|_| Fd::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0))
        .map_err(|e| IoError::Os {
            what: "socket for interface ioctls",
            interface: name.to_string(),
            source: e,
        })?;
    let mut req = ifreq_for(name);
    // SAFETY: SIOCGIFFLAGS reads `ifr_name` and writes `ifr_flags` of the
    // ifreq we own; the fd is a valid socket.
    if unsafe { libc::ioctl(sock.0, libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(IoError::last_os("SIOCGIFFLAGS", name));
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds flags.
    let flags = unsafe { req.ifr_ifru.ifru_flags } as i32;
    let mut req = ifreq_for(name);
    // SAFETY: as above, SIOCGIFMTU writes `ifr_mtu`.
    if unsafe { libc::ioctl(sock.0, libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(IoError::last_os("SIOCGIFMTU", name));
    }
    // SAFETY: SIOCGIFMTU succeeded, so the union holds the MTU.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu } as u32;
    Ok(InterfaceInfo {
        name: name.to_string(),
        index,
        up: flags & libc::IFF_UP != 0,
        running: flags & libc::IFF_RUNNING != 0,
        rx_queues: rx_queue_count(&sock, name),
        mtu,
    })
}

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// Receive queues of `name` through ETHTOOL_GCHANNELS; 1 when the driver
/// does not implement it.
fn rx_queue_count(sock: &Fd, name: &str) -> u32 {
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut req = ifreq_for(name);
    req.ifr_ifru.ifru_data = (&mut channels as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GCHANNELS writes a `struct
    // ethtool_channels` through `ifru_data`, which points at `channels`,
    // alive and correctly laid out for the duration of the call.
    let rc = unsafe { libc::ioctl(sock.0, libc::SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return 1;
    }
    (channels.combined_count + channels.rx_count).max(1)
}

fn ifname_c(name: &str) -> Result<std::ffi::CString, IoError> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ']) {
        return Err(IoError::Setup(format!(
            "{name:?} is not a valid interface name (1 to {} characters, no '/' or space)",
            libc::IFNAMSIZ - 1
        )));
    }
    std::ffi::CString::new(name)
        .map_err(|_| IoError::Setup(format!("interface name {name:?} contains a NUL byte")))
}

fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

/// An owned file descriptor, closed on drop.
#[derive(Debug)]
pub(crate) struct Fd(pub(crate) libc::c_int);

impl Fd {
    pub(crate) fn socket(
        domain: libc::c_int,
        ty: libc::c_int,
        proto: libc::c_int,
    ) -> std::io::Result<Fd> {
        // SAFETY: socket(2) takes no pointers.
        let fd = unsafe { libc::socket(domain, ty, proto) };
        if fd < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(Fd(fd))
        }
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it exactly once.
        unsafe { libc::close(self.0) };
    }
}

pub mod af_packet;
#[cfg(feature = "af_xdp")]
pub mod af_xdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod memory;
pub mod pcap;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_and_bogus_names_are_refused() {
        let lo = interface_info("lo").expect("lo exists in every namespace");
        assert_eq!(lo.name, "lo");
        assert!(lo.index > 0);
        assert!(lo.rx_queues >= 1);
        let err = interface_info("lbt-nope0").unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        let err = interface_info("a/b").unwrap_err().to_string();
        assert!(err.contains("not a valid interface name"), "{err}");
        let err = interface_info("abcdefghijklmnopqrstuvwxyz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid interface name"), "{err}");
    }

    #[test]
    fn any_queue_delegates_to_its_backend() {
        let (q, mut feeder, _sink) = memory::MemoryPort::new(memory::MemoryConfig::default())
            .unwrap()
            .split();
        let mut any = AnyQueue::Memory(q);
        assert!(feeder.push(&[1; 60]).unwrap());
        assert_eq!(any.poll(32, |_| Disposition::Tx).unwrap(), 1);
        assert_eq!(any.tx_pending(), 1);
        assert!(any.send_copy(&[2; 60]).unwrap());
        any.flush().unwrap();
        any.maintenance().unwrap();
        assert_eq!(any.tx_pending(), 0);
        assert_eq!(any.stats().tx_packets, 2);
    }

    #[test]
    fn stats_accumulate_field_by_field() {
        let a = QueueStats {
            rx_packets: 1,
            tx_packets: 2,
            freed: 3,
            ..Default::default()
        };
        let mut total = a;
        total.accumulate(&a);
        assert_eq!((total.rx_packets, total.tx_packets, total.freed), (2, 4, 6));
    }
}
