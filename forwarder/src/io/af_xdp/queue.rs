//! [`XskQueue`]: one worker's UMEM, its fill, completion, receive and
//! transmit rings, the frame ledger, and the per-packet receive loop.
#![allow(unsafe_code)]

use super::ffi::{self, XdpDesc};
use super::program::{ifindex, XdpProgram};
use super::{
    os_err, AfXdpError, CopyMode, XskSettings, XskSocketStats, ENOTSUPP, MAX_BURST, MAX_QUEUES,
    XDP_COPY, XDP_USE_NEED_WAKEUP, XDP_ZEROCOPY,
};
use crate::frame::{Frame, HEADROOM};
use crate::io::{Disposition, IoError, QueueStats, WorkerQueue};
use crate::wire::checksum;
use std::ffi::{c_char, c_int, CString};
use std::os::fd::RawFd;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::{fmt, io};

/// `SOL_XDP` socket option level.
const SOL_XDP: c_int = 283;
/// `XDP_STATISTICS` socket option.
const XDP_STATISTICS: c_int = 7;

/// Who holds a frame (debug builds check every move).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Owner {
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
pub(super) struct Ledger {
    #[cfg(debug_assertions)]
    owners: Vec<Owner>,
    shift: u32,
}

impl Ledger {
    pub(super) fn new(frames: u32, frame_size: u32) -> Self {
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
    pub(super) fn moved(&mut self, addr: u64, from: Owner, to: Owner) {
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
pub(super) struct Port {
    xsk: NonNull<ffi::LbxXsk>,
    fd: RawFd,
    interface: String,
    /// Descriptors to put on this socket's TX ring at the end of the poll.
    pending: Vec<XdpDesc>,
    /// Frames on this socket's TX ring, not yet completed.
    pub(super) in_tx: u32,
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
    pub(super) ports: Vec<Port>,
    egress: usize,
    free: Vec<u64>,
    /// Frames in the UMEM (tests check that all are accounted for).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) frames: u32,
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
            return Ok(false);
        }
        if self.ports[self.egress].pending.len() == self.ports[self.egress].pending.capacity() {
            self.transmit()?;
        }
        self.reap();
        let Some(base) = self.free.pop() else {
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
    pub(super) fn frames_accounted(&self) -> u32 {
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
