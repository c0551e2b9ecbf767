//! Packet I/O backends behind one trait. All unsafe code of lbfwd lives under
//! this module (rings shared with the kernel, FFI to libxdp and DPDK).

use crate::frame::Frame;

/// What happens to a frame once the pipeline has looked at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Transmit the frame as it now stands (its head may have moved).
    Tx,
    /// Hand the frame, unchanged, to the host's own stack.
    Host,
    /// Free the frame.
    Drop,
}

/// Counters a queue keeps about itself (not about verdicts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames handed to the device for transmission.
    pub tx_packets: u64,
    /// Frames that could not be transmitted (ring full, send error).
    pub tx_dropped: u64,
    /// Frames passed to the host path.
    pub host_packets: u64,
}

/// One worker's receive queue and transmit buffer on a backend.
///
/// A worker calls [`WorkerQueue::poll`] in a loop; frames are processed in
/// place, in the backend's own buffers, and every buffer is either sent or
/// freed before the next poll returns or at the next [`WorkerQueue::flush`].
pub trait WorkerQueue: Send {
    /// Receives up to `burst` frames, runs `process` on each in place and
    /// disposes of each as it says; buffered transmissions go out once a
    /// burst is full. Returns the number of frames received.
    fn poll<F>(&mut self, burst: usize, process: F) -> Result<usize, IoError>
    where
        F: FnMut(&mut Frame<'_>) -> Disposition;

    /// Sends every buffered frame now (the drain timer expired, or shutdown).
    fn flush(&mut self) -> Result<(), IoError>;

    /// This queue's own counters.
    fn stats(&self) -> QueueStats;
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
}

pub mod af_packet;
#[cfg(feature = "af_xdp")]
pub mod af_xdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod memory;
pub mod pcap;
