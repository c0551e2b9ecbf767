//! Packet I/O: the [`WorkerQueue`] trait every backend implements, the
//! [`Processor`] a worker drives through it, and the backends.
//!
//! A backend hands the worker loop ([`crate::worker`]) one [`WorkerQueue`]
//! per worker: a receive queue whose frames are processed in place, in the
//! backend's own buffers, with at least [`crate::frame::HEADROOM`] bytes free
//! in front of each frame, and a transmit buffer that the worker kicks in
//! bursts. [`open`] sets a configured backend up and hands its queues to
//! the caller.
//!
//! | backend | module | use |
//! | --- | --- | --- |
//! | `af_packet` | [`af_packet`] (folder) | default: PACKET_MMAP rings, no system library |
//! | `af_xdp` | `af_xdp` (folder, feature `af_xdp`) | XSK sockets through libxdp |
//! | `dpdk` | `dpdk` (folder, feature `dpdk`) | poll-mode drivers through DPDK 22.11 |
//! | `memory` | [`memory`] | in-process rings for tests and benchmarks |
//! | `pcap` | [`pcap`] | file in, file out (and `lbfwd replay`) |
//!
//! Next to them: [`open`] (backend set-up from the settings) and `sys.rs`,
//! the one shared module of unsafe code (owned file descriptors, interface
//! look-ups through `ioctl`, and the prefetch and `madvise` hints the flow
//! table and the pipeline use). Each backend folder's `mod.rs` lists its files.
//!
//! This file has no unsafe code. Unsafe code is allowed
//! (`#![allow(unsafe_code)]` at the top of the file, a `// SAFETY:` comment
//! on every block) only in the backends' files that touch memory shared with
//! the kernel or call C (in `af_packet/`, `af_xdp/`, `dpdk/`, and
//! `memory.rs`) and in `sys.rs`; the workspace denies it everywhere else.
//! Frames the kernel hands over with a partial TCP/UDP checksum are completed
//! by one function family for every backend, in
//! [`crate::wire::checksum`].

use crate::frame::Frame;

pub use sys::interface_info;

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
    /// and releases later). Returns `Ok(false)` when there is no room, and
    /// does not count it: the processor that emitted the frame counts the
    /// refusal once, under its own reason (`tx_ring_full` for released
    /// fragments, `gratuitous_dropped` for layer-2 announcements).
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

/// What the pipeline implements so that a worker can drive it.
///
/// One processor per worker, created on the worker's own (pinned) thread; it
/// owns its flow table and counters and is never shared.
pub trait Processor {
    /// Called once per loop turn, before the burst is received, with the
    /// time of this turn (ns, the worker's monotonic clock,
    /// `worker::now_ns`). The place to pick up a
    /// new table version: between bursts, so a swap loses no packet.
    fn begin_burst(&mut self, now_ns: u64);

    /// Decides what happens to one frame, in place: the frame may be
    /// rewritten and its head moved into the headroom (encapsulation).
    fn process(&mut self, frame: &mut Frame<'_>) -> Disposition;

    /// Called by backends that support it ([`WorkerQueue::poll_with`]) for
    /// every frame of a burst before the first [`Processor::process`] of that
    /// burst, in the order `process` will see them: the place to start the
    /// memory loads the frames will need (flow-table buckets), so the misses
    /// of a burst overlap instead of following one another (DPDK l3fwd's
    /// burst prefetch). A hint only: `process` must give the same result
    /// whether or not it was called. Default: nothing.
    #[inline(always)]
    fn prefetch(&mut self, frame: &Frame<'_>) {
        let _ = frame;
    }

    /// Whether [`Processor::prefetch`] would do anything for the next
    /// burst; backends skip the prefetch pass when it would not. Asked once
    /// per burst. Default: false (the default `prefetch` does nothing).
    #[inline(always)]
    fn wants_prefetch(&self) -> bool {
        false
    }

    /// Called after a loop turn that received and emitted nothing, before
    /// the worker backs off: the place for housekeeping that would cost the
    /// busy path (a larger share of the flow-table sweep). Default: nothing.
    fn idle(&mut self, now_ns: u64) {
        let _ = now_ns;
    }

    /// Called after each burst (and once more at shutdown): emits frames not
    /// tied to a received buffer, e.g. held IP fragments released once their
    /// first fragment arrived. `emit` copies the frame into the transmit
    /// buffer and returns false when there was no room (the processor counts
    /// that under its own reason; the queue does not). Default: nothing to
    /// emit.
    fn drain_extra(&mut self, emit: &mut dyn FnMut(&[u8]) -> bool) {
        let _ = emit;
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
    /// A backend failed in its own terms: the source is its own error type
    /// (the pcap, AF_XDP or DPDK backend's), converted by `From` in the
    /// backend, which this module does not name (no import cycle).
    #[error("{0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
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

pub mod af_packet;
#[cfg(feature = "af_xdp")]
pub mod af_xdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod memory;
pub mod open;
pub mod pcap;
pub(crate) mod sys;

#[cfg(test)]
mod tests {
    use super::*;

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
