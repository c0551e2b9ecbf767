//! [`DpdkQueue`]: one worker's queue pair(s), the burst receive loop with the
//! pipeline's prefetch pass, transmit buffers and the host path.
#![allow(unsafe_code)]

use super::eal::{lock, register_current_thread};
use super::ffi::{self, RteMbuf};
use super::port::{port_stats, PortShared};
use super::{mbuf, HOST_POLL_EVERY, MAX_BURST};
use crate::frame::Frame;
use crate::io::{Disposition, IoError, Processor, QueueStats, WorkerQueue};
use std::ffi::c_uint;
use std::sync::Arc;
use std::{fmt, ptr};

impl DpdkQueue {
    pub(super) fn new(sides: Vec<Side>, egress: usize, index: usize) -> DpdkQueue {
        DpdkQueue {
            pool: sides[0].shared.pool.ptr,
            sides: sides.into_boxed_slice(),
            egress,
            queue: index as u16,
            stats: QueueStats::default(),
            host_countdown: HOST_POLL_EVERY,
            rx: vec![ptr::null_mut(); MAX_BURST].into_boxed_slice(),
            free: vec![ptr::null_mut(); MAX_BURST].into_boxed_slice(),
            registered: false,
        }
    }
}

// ---- worker queues ------------------------------------------------------------

/// Mbufs waiting for a TX burst, with their bytes.
pub(super) struct TxBuffer {
    pub(super) pkts: Box<[*mut RteMbuf]>,
    pub(super) len: usize,
    pub(super) bytes: u64,
}

impl TxBuffer {
    pub(super) fn new(capacity: usize) -> Self {
        TxBuffer {
            pkts: vec![ptr::null_mut(); capacity].into_boxed_slice(),
            len: 0,
            bytes: 0,
        }
    }
}

/// One TX burst of `buf` on queue `queue` of `port`; what the device does
/// not take is freed and counted as dropped in `stats`. Leaves `buf` empty.
pub(super) fn transmit(port: u16, queue: u16, buf: &mut TxBuffer, stats: &mut QueueStats) {
    if buf.len == 0 {
        return;
    }
    // SAFETY: the first `len` entries are mbufs we own; tx_burst takes
    // ownership of the first `sent` of them. Queue `queue` of `port` is
    // ours alone.
    let sent = usize::from(unsafe {
        ffi::lbfwd_tx_burst(port, queue, buf.pkts.as_mut_ptr(), buf.len as u16)
    });
    let mut bytes = buf.bytes;
    if sent < buf.len {
        for &m in &buf.pkts[sent..buf.len] {
            // SAFETY: unsent mbufs are still ours and alive.
            bytes -= unsafe { mbuf::view(m) }.data_len as u64;
        }
        // SAFETY: the unsent mbufs are ours; each is freed exactly once
        // here and forgotten (len is reset below).
        unsafe {
            ffi::lbfwd_mbuf_free_bulk(buf.pkts.as_mut_ptr().add(sent), (buf.len - sent) as c_uint)
        };
        stats.tx_dropped += (buf.len - sent) as u64;
    }
    stats.tx_packets += sent as u64;
    stats.tx_bytes += bytes;
    buf.len = 0;
    buf.bytes = 0;
}

/// Which of a side's two TX buffers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Out {
    /// The port itself.
    Wire,
    /// The port's host path TAP.
    Host,
}

/// One port of a [`DpdkQueue`]: its queue pair, its host TAP's queue pair,
/// and a TX buffer for each.
pub(super) struct Side {
    pub(super) port: u16,
    pub(super) host: Option<u16>,
    pub(super) tx: TxBuffer,
    pub(super) host_tx: TxBuffer,
    pub(super) shared: Arc<PortShared>,
}

/// One worker's queue pair on a [`DpdkPort`] (and on the port's host path
/// TAP), or on two ports for a two-armed layout
/// ([`DpdkPort::queue_two_armed`]). Implements [`WorkerQueue`]; see the
/// module docs for the packet path.
pub struct DpdkQueue {
    /// The ports: `[port]`, or `[ingress, egress]`.
    sides: Box<[Side]>,
    /// The side whose port transmits [`Disposition::Tx`] frames.
    egress: usize,
    queue: u16,
    pool: *mut ffi::RteMempool,
    stats: QueueStats,
    host_countdown: u32,
    /// Where a burst is received (kept here: no per-poll initialisation).
    rx: Box<[*mut RteMbuf]>,
    /// Mbufs of the current burst to free in bulk.
    free: Box<[*mut RteMbuf]>,
    registered: bool,
}

// SAFETY: a DpdkQueue exclusively owns queue `queue` of its ports and of
// their TAPs (handed out once, see DpdkPort::queue) and the mbufs in its
// buffers; DPDK allows a queue to be polled from any one thread at a time.
// The pool pointer stays valid while the sides' PortShared are held, and
// mempool operations are thread-safe.
unsafe impl Send for DpdkQueue {}

impl fmt::Debug for DpdkQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports: Vec<&str> = self
            .sides
            .iter()
            .map(|s| s.shared.summary.name.as_str())
            .collect();
        f.debug_struct("DpdkQueue")
            .field("ports", &ports)
            .field("queue", &self.queue)
            .field("tx_pending", &self.tx_pending())
            .finish()
    }
}

impl DpdkQueue {
    /// The queue's index (the worker's).
    pub fn index(&self) -> usize {
        usize::from(self.queue)
    }

    /// Frames the egress TX buffer holds before the queue kicks the device
    /// itself ([`TX_BUFFER_BURSTS`] bursts).
    pub fn tx_capacity(&self) -> usize {
        self.sides[self.egress].tx.pkts.len()
    }

    /// Queues `m` (a single-segment mbuf of `len` bytes that we own) on
    /// `side`'s `out` buffer, kicking the device first when it is full.
    #[inline(always)]
    pub(super) fn push(&mut self, side: usize, out: Out, m: *mut RteMbuf, len: usize) {
        if !self.try_push(side, out, m, len) {
            self.send(side, out);
            if !self.try_push(side, out, m, len) {
                // A buffer of capacity 0 (no host path): nothing to queue on.
                self.stats.tx_dropped += 1;
                // SAFETY: we own `m`; it is freed here and not used again.
                unsafe { ffi::lbfwd_mbuf_free_bulk([m].as_mut_ptr(), 1) };
            }
        }
    }

    /// Queues `m` if `side`'s `out` buffer has room; false when it is full.
    #[inline(always)]
    pub(super) fn try_push(&mut self, side: usize, out: Out, m: *mut RteMbuf, len: usize) -> bool {
        let Some(s) = self.sides.get_mut(side) else {
            return false;
        };
        let buf = if out == Out::Host {
            &mut s.host_tx
        } else {
            &mut s.tx
        };
        match buf.pkts.get_mut(buf.len) {
            Some(slot) => {
                *slot = m;
                buf.len += 1;
                buf.bytes += len as u64;
                true
            }
            None => false,
        }
    }

    /// One TX burst of `side`'s `out` buffer; what the device does not take
    /// is freed and counted as dropped.
    pub(super) fn send(&mut self, side: usize, out: Out) {
        let s = &mut self.sides[side];
        let (port, buf) = match out {
            Out::Wire => (s.port, &mut s.tx),
            Out::Host => match s.host {
                Some(port) => (port, &mut s.host_tx),
                None => return,
            },
        };
        transmit(port, self.queue, buf, &mut self.stats);
    }

    /// Receives a burst on `side`'s port and runs the pipeline on it.
    #[inline]
    pub(super) fn poll_side<P: Processor>(
        &mut self,
        side: usize,
        burst: usize,
        processor: &mut P,
    ) -> usize {
        let port = self.sides[side].port;
        let has_host = self.sides[side].host.is_some();
        // SAFETY: `rx` has room for `burst` (<= MAX_BURST) pointers; the RX
        // queue is ours alone. The mbufs received become ours.
        let n = usize::from(unsafe {
            ffi::lbfwd_rx_burst(port, self.queue, self.rx.as_mut_ptr(), burst as u16)
        });
        let n = n.min(burst).min(MAX_BURST);
        // Stage one of the burst: every frame the loop below will process,
        // in the same order, for the processor's prefetch.
        if processor.wants_prefetch() {
            for &m in &self.rx[..n] {
                // SAFETY: a live mbuf we own, just received.
                let v = unsafe { mbuf::view(m) };
                if !v.is_plain() {
                    continue;
                }
                // SAFETY: as in the loop below; the slice lives only for
                // this call, before the mbuf is processed.
                let buf = unsafe { std::slice::from_raw_parts_mut(v.buf, v.buf_len) };
                processor.prefetch(&Frame::new(buf, v.data_off, v.data_len));
            }
        }
        // The egress buffer takes the burst's frames through a cursor held
        // in a register (stored back once, after the loop); frames for the
        // host are gathered at the front of `rx`, behind the one being
        // processed, and queued after the loop.
        let (egress_port, queue) = (self.sides[self.egress].port, self.queue);
        let tx = &mut self.sides[self.egress].tx;
        let (mut tx_len, mut tx_bytes) = (tx.len, tx.bytes);
        let mut nfree = 0;
        let mut nhost = 0;
        let mut rx_bytes = 0u64;
        let mut rx_bad = 0usize;
        for i in 0..n {
            let m = self.rx[i];
            // SAFETY: a live mbuf we own, just received.
            let v = unsafe { mbuf::view(m) };
            if !v.is_plain() {
                // Chained, shared or inconsistent: not a buffer the
                // pipeline may write in place.
                rx_bad += 1;
                self.free[nfree] = m;
                nfree += 1;
                continue;
            }
            rx_bytes += v.data_len as u64;
            // SAFETY: the mbuf's data room, `buf_len` bytes from `buf`, is
            // valid memory that only we reference while we own the mbuf
            // (refcnt 1, direct mbuf); the slice lives only during
            // `process`, before the mbuf is queued or freed.
            let buf = unsafe { std::slice::from_raw_parts_mut(v.buf, v.buf_len) };
            let mut frame = Frame::new(buf, v.data_off, v.data_len);
            let disposition = processor.process(&mut frame);
            let (head, len) = (frame.head(), frame.len());
            match disposition {
                Disposition::Tx => {
                    // SAFETY: we own the single-segment mbuf; Frame keeps
                    // head + len within buf_len.
                    unsafe { mbuf::set_frame(m, head, len) };
                    if tx_len == tx.pkts.len() {
                        // Full (a burst larger than the port's): kick it.
                        (tx.len, tx.bytes) = (tx_len, tx_bytes);
                        transmit(egress_port, queue, tx, &mut self.stats);
                        (tx_len, tx_bytes) = (0, 0);
                    }
                    match tx.pkts.get_mut(tx_len) {
                        Some(slot) => {
                            *slot = m;
                            tx_len += 1;
                            tx_bytes += len as u64;
                        }
                        None => {
                            // A buffer of capacity 0: nothing to queue on.
                            self.stats.tx_dropped += 1;
                            self.free[nfree] = m;
                            nfree += 1;
                        }
                    }
                }
                Disposition::Host if has_host => {
                    // SAFETY: as above.
                    unsafe { mbuf::set_frame(m, head, len) };
                    // nhost <= i: a slot already processed.
                    self.rx[nhost] = m;
                    nhost += 1;
                }
                Disposition::Host | Disposition::Drop => {
                    self.stats.freed += 1;
                    self.free[nfree] = m;
                    nfree += 1;
                }
            }
        }
        (tx.len, tx.bytes) = (tx_len, tx_bytes);
        for i in 0..nhost {
            let m = self.rx[i];
            // SAFETY: a live mbuf we own, its frame set above.
            let len = unsafe { mbuf::view(m) }.data_len;
            self.stats.host_packets += 1;
            self.push(side, Out::Host, m, len);
        }
        self.stats.rx_errors += rx_bad as u64;
        self.stats.rx_packets += (n - rx_bad) as u64;
        self.stats.rx_bytes += rx_bytes;
        if nfree > 0 {
            // SAFETY: the first `nfree` entries of `free` are mbufs we own,
            // each listed once; they are freed here and not used again.
            unsafe { ffi::lbfwd_mbuf_free_bulk(self.free.as_mut_ptr(), nfree as c_uint) };
        }
        n
    }

    /// Moves what the kernel sent out of `side`'s TAP to that side's port.
    pub(super) fn poll_host(&mut self, side: usize, host: u16, burst: usize) {
        // SAFETY: `rx` has room for `burst` (<= MAX_BURST) pointers; queue
        // `queue` of the TAP is ours alone. The mbufs received become ours.
        let n = usize::from(unsafe {
            ffi::lbfwd_rx_burst(host, self.queue, self.rx.as_mut_ptr(), burst as u16)
        });
        let mut nbad = 0;
        for i in 0..n {
            let m = self.rx[i];
            // SAFETY: a live mbuf we own, just received.
            let v = unsafe { mbuf::view(m) };
            if v.nb_segs != 1 {
                self.free[nbad] = m;
                nbad += 1;
                continue;
            }
            self.push(side, Out::Wire, m, v.data_len);
        }
        if nbad > 0 {
            self.stats.rx_errors += nbad as u64;
            // SAFETY: the multi-segment mbufs are ours, listed once in
            // `free`, freed here and not used again.
            unsafe { ffi::lbfwd_mbuf_free_bulk(self.free.as_mut_ptr(), nbad as c_uint) };
        }
    }
}

impl WorkerQueue for DpdkQueue {
    fn poll<F>(&mut self, burst: usize, process: F) -> Result<usize, IoError>
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        self.poll_with(burst, &mut crate::io::ClosureProcessor(process))
    }

    fn poll_with<P: Processor>(
        &mut self,
        burst: usize,
        processor: &mut P,
    ) -> Result<usize, IoError> {
        if !self.registered {
            register_current_thread()?;
            self.registered = true;
        }
        let burst = burst.clamp(1, MAX_BURST);
        let mut n = self.poll_side(0, burst, processor);
        if self.sides.len() > 1 {
            // A full burst goes out before the next side is received: the
            // mbufs it frees are the ones that side's receive takes from
            // the mempool cache, so one burst of mbufs (not two) cycles
            // through the CPU's caches.
            if self.sides[self.egress].tx.len >= burst {
                self.send(self.egress, Out::Wire);
            }
            n += self.poll_side(1, burst, processor);
        }
        self.host_countdown -= 1;
        if self.host_countdown == 0 {
            self.host_countdown = HOST_POLL_EVERY;
            for side in 0..self.sides.len() {
                if let Some(host) = self.sides[side].host {
                    self.poll_host(side, host, burst);
                }
            }
        }
        Ok(n)
    }

    fn send_copy(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        // SAFETY: the pool is alive while the sides' PortShared are;
        // allocation is thread-safe.
        let m = unsafe { ffi::lbfwd_mbuf_alloc(self.pool) };
        if m.is_null() {
            return Ok(false);
        }
        // SAFETY: a fresh mbuf we own.
        let v = unsafe { mbuf::view(m) };
        if v.data_off + frame.len() > v.buf_len {
            let mut one = [m];
            // SAFETY: the fresh mbuf is ours, freed once.
            unsafe { ffi::lbfwd_mbuf_free_bulk(one.as_mut_ptr(), 1) };
            return Ok(false);
        }
        // SAFETY: the data room has `buf_len - data_off >= frame.len()` bytes
        // at `buf + data_off`, which we own; `frame` does not overlap it
        // (the mbuf was just allocated).
        unsafe {
            ptr::copy_nonoverlapping(frame.as_ptr(), v.buf.add(v.data_off), frame.len());
            mbuf::set_frame(m, v.data_off, frame.len());
        }
        self.push(self.egress, Out::Wire, m, frame.len());
        Ok(true)
    }

    fn tx_pending(&self) -> usize {
        self.sides.iter().map(|s| s.tx.len + s.host_tx.len).sum()
    }

    fn flush(&mut self) -> Result<(), IoError> {
        for side in 0..self.sides.len() {
            self.send(side, Out::Wire);
            self.send(side, Out::Host);
        }
        Ok(())
    }

    fn maintenance(&mut self) -> Result<(), IoError> {
        // Port-wide drops are reported once, by queue 0, so that totals over
        // the workers are right. A worker never waits for the control
        // thread (a slow xstats read would stall its RX ring): when a port
        // is busy, next time.
        if self.queue != 0 {
            return Ok(());
        }
        let mut drops = 0;
        for side in self.sides.iter() {
            let st = match side.shared.ctl.try_lock() {
                Ok(_ctl) => port_stats(&side.shared.wire)?,
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    let _ctl = p.into_inner();
                    port_stats(&side.shared.wire)?
                }
                Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
            };
            drops += st.rx_missed + st.rx_nombuf;
        }
        self.stats.rx_ring_drops = drops;
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}

impl Drop for DpdkQueue {
    fn drop(&mut self) {
        // Every buffered mbuf is sent (or freed by `send`); the ports are
        // still running because the sides hold their PortShared.
        let _ = self.flush();
        for side in self.sides.iter() {
            let mut taken = lock(&side.shared.taken);
            if let Some(slot) = taken.get_mut(usize::from(self.queue)) {
                *slot = false;
            }
        }
    }
}
