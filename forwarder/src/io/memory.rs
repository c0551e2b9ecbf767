//! The `memory` backend: an in-process port for tests and benchmarks.
//!
//! A [`MemoryPort`] is a pool of preallocated receive buffers (each with
//! [`HEADROOM`] bytes in front of the frame) and a pool of transmit slots,
//! joined by lock-free single-producer single-consumer rings. It splits into
//! three handles, each for one thread:
//!
//! - [`MemoryFeeder`] (the generator): copies a frame into a free receive
//!   buffer and queues it for the worker;
//! - [`MemoryQueue`] (the worker's [`WorkerQueue`]): receives, lets the
//!   pipeline work in place, copies frames to transmit into transmit slots,
//!   returns every receive buffer to the free pool;
//! - [`MemorySink`] (the wire): takes transmitted frames off the port.
//!
//! With [`MemoryConfig::tx_slots`] = 0 the port only counts what it
//! transmits (no copy), for benchmarks of the pipeline alone.
//!
//! [`MemoryQueue::looping`] builds a queue without a feeder for pure
//! pipeline throughput: a set of template frames sits in receive buffers and
//! every poll hands them out again, re-armed (head and length restored, and
//! optionally the bytes copied back), so the generator costs nothing.
//!
//! Nothing allocates after [`MemoryPort::new`] / [`MemoryQueue::looping`].
#![allow(unsafe_code)]

use super::Processor;
use super::{ClosureProcessor, Disposition, IoError, QueueStats, WorkerQueue};
use crate::frame::{Frame, HEADROOM};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Default size of one buffer, headroom included.
pub const DEFAULT_BUF_SIZE: usize = 2048;

/// Sizes of a memory port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Receive buffers (frames in flight from the feeder to the worker).
    pub rx_buffers: usize,
    /// Size of one buffer, headroom included; frames can be up to
    /// `buf_size - HEADROOM` bytes.
    pub buf_size: usize,
    /// Transmit slots (frames the sink has not taken yet). 0: transmitted
    /// frames are only counted, not kept.
    pub tx_slots: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            rx_buffers: 256,
            buf_size: DEFAULT_BUF_SIZE,
            tx_slots: 256,
        }
    }
}

impl MemoryConfig {
    fn validate(&self) -> Result<(), IoError> {
        if self.rx_buffers == 0 || self.rx_buffers > 1 << 24 {
            return Err(IoError::Setup(format!(
                "memory port: rx_buffers {} is out of range (1 to 16777216)",
                self.rx_buffers
            )));
        }
        if self.tx_slots > 1 << 24 {
            return Err(IoError::Setup(format!(
                "memory port: tx_slots {} is over 16777216",
                self.tx_slots
            )));
        }
        if self.buf_size <= HEADROOM || self.buf_size > 1 << 16 {
            return Err(IoError::Setup(format!(
                "memory port: buf_size {} is out of range ({} to 65536)",
                self.buf_size,
                HEADROOM + 1
            )));
        }
        Ok(())
    }
}

/// A buffer index and the frame length in it.
#[derive(Clone, Copy, Debug, Default)]
struct Desc {
    index: u32,
    len: u32,
}

/// A bounded single-producer single-consumer ring of `Copy` values.
///
/// Safety contract: at most one thread pushes and at most one thread pops at
/// a time; the handle types below own one side each and take `&mut self`.
struct Ring<T: Copy> {
    slots: Box<[UnsafeCell<T>]>,
    mask: usize,
    /// Next slot to pop (written by the consumer).
    head: CachePadded<AtomicUsize>,
    /// Next slot to push (written by the producer).
    tail: CachePadded<AtomicUsize>,
}

#[repr(align(128))]
struct CachePadded<T>(T);

// SAFETY: slots are only accessed under the SPSC protocol: a slot between
// head and tail belongs to the consumer, the others to the producer, and the
// release/acquire pair on head/tail hands each slot over.
unsafe impl<T: Copy + Send> Sync for Ring<T> {}

impl<T: Copy + Default> Ring<T> {
    fn with_capacity(min: usize) -> Self {
        let cap = min.max(1).next_power_of_two();
        Ring {
            slots: (0..cap).map(|_| UnsafeCell::new(T::default())).collect(),
            mask: cap - 1,
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
        }
    }

    /// Producer side.
    fn push(&self, value: T) -> bool {
        let tail = self.tail.0.load(Ordering::Relaxed);
        let head = self.head.0.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > self.mask {
            return false;
        }
        // SAFETY: the slot at `tail` is not between head and tail, so the
        // consumer does not read it; we are the only producer.
        unsafe { *self.slots[tail & self.mask].get() = value };
        self.tail.0.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// Consumer side.
    fn pop(&self) -> Option<T> {
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        // SAFETY: the slot at `head` is between head and tail: the producer
        // published it (release on tail, acquire above) and does not touch
        // it until we move head past it; we are the only consumer.
        let value = unsafe { *self.slots[head & self.mask].get() };
        self.head.0.store(head.wrapping_add(1), Ordering::Release);
        Some(value)
    }

    fn len(&self) -> usize {
        let tail = self.tail.0.load(Ordering::Acquire);
        let head = self.head.0.load(Ordering::Acquire);
        tail.wrapping_sub(head)
    }
}

/// Fixed-size buffers in one allocation. A buffer is accessed only by the
/// handle that owns its index at that moment (indices travel through the
/// rings), so no two threads touch one buffer at once.
struct Slab {
    bytes: Box<[UnsafeCell<u8>]>,
    buf_size: usize,
}

// SAFETY: see the type's doc: ownership of each buffer is handed over through
// the SPSC rings, whose release/acquire ordering also orders the bytes.
unsafe impl Sync for Slab {}

impl Slab {
    fn new(count: usize, buf_size: usize) -> Self {
        Slab {
            bytes: (0..count * buf_size).map(|_| UnsafeCell::new(0)).collect(),
            buf_size,
        }
    }

    /// The buffer `index`.
    ///
    /// # Safety
    /// The caller owns `index` (got it from a ring or holds it exclusively)
    /// and no other reference to that buffer is alive.
    #[allow(clippy::mut_from_ref)]
    unsafe fn buffer(&self, index: u32) -> &mut [u8] {
        let start = index as usize * self.buf_size;
        assert!(
            start + self.buf_size <= self.bytes.len(),
            "buffer index out of range"
        );
        // SAFETY: in bounds (asserted); the bytes are in UnsafeCells so
        // writing through a shared reference is allowed; exclusivity is the
        // caller's promise.
        unsafe {
            std::slice::from_raw_parts_mut(
                UnsafeCell::raw_get(self.bytes.as_ptr().add(start)),
                self.buf_size,
            )
        }
    }
}

struct Shared {
    rx: Slab,
    tx: Slab,
    /// Feeder -> queue: filled receive buffers.
    filled: Ring<Desc>,
    /// Queue -> feeder: free receive buffers.
    free: Ring<u32>,
    /// Queue -> sink: transmitted frames.
    sent: Ring<Desc>,
    /// Sink -> queue: free transmit slots.
    tx_free: Ring<u32>,
}

/// A memory port before it is split into its three handles.
pub struct MemoryPort {
    queue: MemoryQueue,
    feeder: MemoryFeeder,
    sink: MemorySink,
}

impl MemoryPort {
    /// Allocates the buffers and rings (the only allocation of the port).
    pub fn new(config: MemoryConfig) -> Result<Self, IoError> {
        config.validate()?;
        let shared = Arc::new(Shared {
            rx: Slab::new(config.rx_buffers, config.buf_size),
            tx: Slab::new(config.tx_slots, config.buf_size),
            filled: Ring::with_capacity(config.rx_buffers),
            free: Ring::with_capacity(config.rx_buffers),
            sent: Ring::with_capacity(config.tx_slots),
            tx_free: Ring::with_capacity(config.tx_slots),
        });
        for i in 0..config.rx_buffers {
            let pushed = shared.free.push(i as u32);
            debug_assert!(pushed);
        }
        for i in 0..config.tx_slots {
            let pushed = shared.tx_free.push(i as u32);
            debug_assert!(pushed);
        }
        Ok(MemoryPort {
            queue: MemoryQueue {
                shared: Some(shared.clone()),
                looping: None,
                staged: Vec::with_capacity(config.tx_slots),
                count_only: config.tx_slots == 0,
                counted_pending: 0,
                buf_size: config.buf_size,
                stats: QueueStats::default(),
            },
            feeder: MemoryFeeder {
                shared: shared.clone(),
                buf_size: config.buf_size,
            },
            sink: MemorySink { shared },
        })
    }

    /// The worker's queue, the generator's feeder and the wire's sink.
    pub fn split(self) -> (MemoryQueue, MemoryFeeder, MemorySink) {
        (self.queue, self.feeder, self.sink)
    }
}

/// The generator's side of a memory port.
pub struct MemoryFeeder {
    shared: Arc<Shared>,
    buf_size: usize,
}

impl MemoryFeeder {
    /// Copies `frame` into a free receive buffer (after the headroom) and
    /// queues it for the worker. `Ok(false)` when no buffer is free (the
    /// worker is behind); an error when the frame is larger than a buffer.
    pub fn push(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        if frame.len() > self.buf_size - HEADROOM {
            return Err(IoError::Setup(format!(
                "memory port: frame of {} bytes does not fit a {}-byte buffer after {HEADROOM} bytes of headroom",
                frame.len(),
                self.buf_size
            )));
        }
        let Some(index) = self.shared.free.pop() else {
            return Ok(false);
        };
        // SAFETY: `index` came off the free ring, so this handle owns the
        // buffer until it pushes it to `filled`.
        let buf = unsafe { self.shared.rx.buffer(index) };
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let desc = Desc {
            index,
            len: frame.len() as u32,
        };
        let queued = self.shared.filled.push(desc);
        debug_assert!(queued, "filled ring holds every buffer");
        Ok(true)
    }

    /// Receive buffers free right now (all of them once the worker drained
    /// the port).
    pub fn free_buffers(&self) -> usize {
        self.shared.free.len()
    }
}

/// The wire's side of a memory port: takes transmitted frames.
pub struct MemorySink {
    shared: Arc<Shared>,
}

impl MemorySink {
    /// Takes the oldest transmitted frame, lets `f` look at it and frees its
    /// slot. `None` when nothing was transmitted (or flushed) yet.
    pub fn pop_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let desc = self.shared.sent.pop()?;
        // SAFETY: `desc.index` came off the sent ring, so this handle owns
        // the slot until it pushes it back to `tx_free`.
        let buf = unsafe { self.shared.tx.buffer(desc.index) };
        let result = f(&buf[..desc.len as usize]);
        let freed = self.shared.tx_free.push(desc.index);
        debug_assert!(freed, "tx_free ring holds every slot");
        Some(result)
    }

    /// Transmitted frames waiting to be taken.
    pub fn pending(&self) -> usize {
        self.shared.sent.len()
    }
}

/// Template frames handed out again and again (see [`MemoryQueue::looping`]).
struct Looping {
    buffers: Vec<Box<[u8]>>,
    templates: Vec<Box<[u8]>>,
    next: usize,
    rearm_copy: bool,
}

/// The worker's side of a memory port.
pub struct MemoryQueue {
    shared: Option<Arc<Shared>>,
    looping: Option<Looping>,
    staged: Vec<Desc>,
    count_only: bool,
    counted_pending: usize,
    buf_size: usize,
    stats: QueueStats,
}

impl MemoryQueue {
    /// A queue without feeder whose every poll hands out the `templates`
    /// again, round robin, each in its own buffer with [`HEADROOM`] in
    /// front. After the pipeline is done with a frame its head and length
    /// are restored; with `rearm_copy` its bytes are also copied back from
    /// the template (needed only if the pipeline rewrites the frame itself,
    /// not just the headroom). Transmitted frames are counted, not kept.
    pub fn looping(templates: &[&[u8]], rearm_copy: bool) -> Result<Self, IoError> {
        if templates.is_empty() {
            return Err(IoError::Setup(
                "memory port: a looping queue needs at least one template frame".into(),
            ));
        }
        let max = DEFAULT_BUF_SIZE - HEADROOM;
        if let Some((i, t)) = templates.iter().enumerate().find(|(_, t)| t.len() > max) {
            return Err(IoError::Setup(format!(
                "memory port: template {i} has {} bytes, more than {max}",
                t.len()
            )));
        }
        let buffers = templates
            .iter()
            .map(|t| {
                let mut b = vec![0u8; DEFAULT_BUF_SIZE].into_boxed_slice();
                b[HEADROOM..HEADROOM + t.len()].copy_from_slice(t);
                b
            })
            .collect();
        Ok(MemoryQueue {
            shared: None,
            looping: Some(Looping {
                buffers,
                templates: templates.iter().map(|t| Box::<[u8]>::from(*t)).collect(),
                next: 0,
                rearm_copy,
            }),
            staged: Vec::new(),
            count_only: true,
            counted_pending: 0,
            buf_size: DEFAULT_BUF_SIZE,
            stats: QueueStats::default(),
        })
    }

    /// Queues a copy of `bytes` for transmission; false when no slot is free.
    #[inline]
    fn stage_tx(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.buf_size {
            return false;
        }
        if self.count_only {
            self.counted_pending += 1;
        } else {
            let shared = self.shared.as_ref().expect("a fed queue has its port");
            let Some(index) = shared.tx_free.pop() else {
                return false;
            };
            // SAFETY: `index` came off tx_free: this handle owns the slot
            // until it publishes it on the sent ring.
            let slot = unsafe { shared.tx.buffer(index) };
            slot[..bytes.len()].copy_from_slice(bytes);
            self.staged.push(Desc {
                index,
                len: bytes.len() as u32,
            });
        }
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += bytes.len() as u64;
        true
    }

    #[inline]
    fn dispose(&mut self, frame: &Frame<'_>, disposition: Disposition) {
        match disposition {
            Disposition::Tx => {
                if !self.stage_tx(frame.data()) {
                    self.stats.tx_dropped += 1;
                }
            }
            Disposition::Host => self.stats.host_packets += 1,
            Disposition::Drop => self.stats.freed += 1,
        }
    }

    fn poll_looping<P: Processor>(&mut self, burst: usize, processor: &mut P) -> usize {
        let mut looping = self.looping.take().expect("looping queue");
        // Stage one: every frame of the burst, in the order processed below.
        let mut i = looping.next;
        let prefetched = if processor.wants_prefetch() { burst } else { 0 };
        for _ in 0..prefetched {
            let len = looping.templates[i].len();
            processor.prefetch(&Frame::new(&mut looping.buffers[i], HEADROOM, len));
            i = if i + 1 == looping.buffers.len() {
                0
            } else {
                i + 1
            };
        }
        for _ in 0..burst {
            let i = looping.next;
            looping.next = if i + 1 == looping.buffers.len() {
                0
            } else {
                i + 1
            };
            let len = looping.templates[i].len();
            let buf = &mut looping.buffers[i];
            let mut frame = Frame::new(buf, HEADROOM, len);
            let disposition = processor.process(&mut frame);
            self.dispose(&frame, disposition);
            if looping.rearm_copy {
                buf[HEADROOM..HEADROOM + len].copy_from_slice(&looping.templates[i]);
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
        }
        self.looping = Some(looping);
        burst
    }
}

/// Frames taken off the filled ring at once by [`MemoryQueue::poll_with`]
/// (prefetched together, then processed).
const STAGE: usize = 64;

impl WorkerQueue for MemoryQueue {
    fn poll<F>(&mut self, burst: usize, process: F) -> Result<usize, IoError>
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        self.poll_with(burst, &mut ClosureProcessor(process))
    }

    fn poll_with<P: Processor>(
        &mut self,
        burst: usize,
        processor: &mut P,
    ) -> Result<usize, IoError> {
        if self.looping.is_some() {
            return Ok(self.poll_looping(burst, processor));
        }
        let shared = self.shared.clone().expect("a fed queue has its port");
        let mut received = 0;
        let mut descs = [Desc::default(); STAGE];
        while received < burst {
            let mut n = 0;
            while n < STAGE && received + n < burst {
                let Some(desc) = shared.filled.pop() else {
                    break;
                };
                descs[n] = desc;
                n += 1;
            }
            if n == 0 {
                break;
            }
            let prefetched = if processor.wants_prefetch() { n } else { 0 };
            for desc in &descs[..prefetched] {
                // SAFETY: `desc.index` came off the filled ring: this handle
                // owns the buffer until it pushes it back to the free ring
                // below; the slice lives only for this call.
                let buf = unsafe { shared.rx.buffer(desc.index) };
                processor.prefetch(&Frame::new(buf, HEADROOM, desc.len as usize));
            }
            for desc in &descs[..n] {
                // SAFETY: as above; the slice of the prefetch pass is gone.
                let buf = unsafe { shared.rx.buffer(desc.index) };
                let mut frame = Frame::new(buf, HEADROOM, desc.len as usize);
                let disposition = processor.process(&mut frame);
                self.dispose(&frame, disposition);
                let freed = shared.free.push(desc.index);
                debug_assert!(freed, "free ring holds every buffer");
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += u64::from(desc.len);
            }
            received += n;
        }
        Ok(received)
    }

    fn send_copy(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        Ok(self.stage_tx(frame))
    }

    fn tx_pending(&self) -> usize {
        self.staged.len() + self.counted_pending
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.counted_pending = 0;
        if let Some(shared) = &self.shared {
            for desc in self.staged.drain(..) {
                let sent = shared.sent.push(desc);
                debug_assert!(sent, "sent ring holds every slot");
            }
        }
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_the_port_with_headroom_and_buffers_return() {
        let cfg = MemoryConfig {
            rx_buffers: 4,
            buf_size: 512,
            tx_slots: 2,
        };
        let (mut q, mut feeder, mut sink) = MemoryPort::new(cfg).unwrap().split();
        for i in 0..4u8 {
            assert!(feeder.push(&[i; 10]).unwrap());
        }
        assert!(!feeder.push(&[9; 10]).unwrap(), "only 4 buffers");
        assert_eq!(feeder.free_buffers(), 0);
        let mut seen = Vec::new();
        let n = q
            .poll(8, |f| {
                assert_eq!(f.headroom(), HEADROOM);
                seen.push(f.data()[0]);
                if f.data()[0] == 3 {
                    return Disposition::Host;
                }
                assert!(f.adjust_head(-2));
                f.data_mut()[..2].copy_from_slice(b"hd");
                Disposition::Tx
            })
            .unwrap();
        assert_eq!(n, 4);
        assert_eq!(seen, [0, 1, 2, 3]);
        assert_eq!(feeder.free_buffers(), 4, "every buffer freed");
        // 3 to send, 2 slots: the third is dropped and counted.
        let s = q.stats();
        assert_eq!((s.tx_packets, s.tx_dropped, s.host_packets), (2, 1, 1));
        assert_eq!(sink.pending(), 0, "nothing visible before flush");
        assert_eq!(q.tx_pending(), 2);
        q.flush().unwrap();
        assert_eq!(q.tx_pending(), 0);
        let first = sink.pop_with(|f| f.to_vec()).unwrap();
        assert_eq!(&first[..2], b"hd");
        assert_eq!(&first[2..], &[0u8; 10]);
        assert!(sink.pop_with(|_| ()).is_some());
        assert!(sink.pop_with(|_| ()).is_none());
        // Slots came back: send_copy works again.
        assert!(q.send_copy(b"again").unwrap());
        q.flush().unwrap();
        assert_eq!(sink.pop_with(|f| f.to_vec()).unwrap(), b"again");
    }

    #[test]
    fn oversized_frames_and_bad_sizes_are_refused() {
        let cfg = MemoryConfig {
            rx_buffers: 1,
            buf_size: 256,
            tx_slots: 1,
        };
        let (_q, mut feeder, _sink) = MemoryPort::new(cfg).unwrap().split();
        let err = feeder.push(&[0; 200]).unwrap_err().to_string();
        assert!(err.contains("200 bytes"), "{err}");
        let bad = MemoryConfig {
            buf_size: 64,
            ..MemoryConfig::default()
        };
        assert!(MemoryPort::new(bad).is_err());
        let bad = MemoryConfig {
            rx_buffers: 0,
            ..MemoryConfig::default()
        };
        assert!(MemoryPort::new(bad).is_err());
    }

    #[test]
    fn count_only_port_counts_without_keeping() {
        let cfg = MemoryConfig {
            tx_slots: 0,
            ..MemoryConfig::default()
        };
        let (mut q, mut feeder, mut sink) = MemoryPort::new(cfg).unwrap().split();
        for _ in 0..10 {
            assert!(feeder.push(&[1; 60]).unwrap());
        }
        q.poll(32, |_| Disposition::Tx).unwrap();
        assert_eq!(q.tx_pending(), 10);
        q.flush().unwrap();
        assert_eq!(q.tx_pending(), 0);
        assert_eq!(q.stats().tx_packets, 10);
        assert_eq!(q.stats().tx_bytes, 600);
        assert!(sink.pop_with(|_| ()).is_none());
    }

    #[test]
    fn looping_queue_rearms_templates() {
        let a = [0xaa; 60];
        let b = [0xbb; 70];
        let mut q = MemoryQueue::looping(&[&a, &b], true).unwrap();
        let mut lens = Vec::new();
        for _ in 0..3 {
            q.poll(3, |f| {
                lens.push((f.data()[0], f.len(), f.headroom()));
                // Scribble on the frame and move its head: both must be undone.
                f.data_mut()[0] = 0;
                assert!(f.adjust_head(-8));
                Disposition::Tx
            })
            .unwrap();
        }
        assert_eq!(lens.len(), 9);
        for (i, (first, len, headroom)) in lens.into_iter().enumerate() {
            let expect = if i % 2 == 0 { (0xaa, 60) } else { (0xbb, 70) };
            assert_eq!((first, len, headroom), (expect.0, expect.1, HEADROOM));
        }
        assert_eq!(q.stats().rx_packets, 9);
        assert_eq!(q.stats().tx_bytes, 5 * 68 + 4 * 78);
        assert!(MemoryQueue::looping(&[], false).is_err());
    }

    #[test]
    fn feeder_and_worker_on_two_threads_lose_nothing() {
        let (mut q, mut feeder, mut sink) =
            MemoryPort::new(MemoryConfig::default()).unwrap().split();
        const N: u32 = 100_000;
        let producer = std::thread::spawn(move || {
            for i in 0..N {
                while !feeder.push(&i.to_le_bytes()).unwrap() {
                    std::hint::spin_loop();
                }
            }
            feeder
        });
        let mut next_rx = 0u32;
        let mut next_tx = 0u32;
        while next_tx < N {
            q.poll(32, |f| {
                let v = u32::from_le_bytes(f.data().try_into().unwrap());
                assert_eq!(v, next_rx, "frames reordered or lost");
                next_rx += 1;
                Disposition::Tx
            })
            .unwrap();
            q.flush().unwrap();
            while let Some(v) = sink.pop_with(|f| u32::from_le_bytes(f.try_into().unwrap())) {
                assert_eq!(v, next_tx);
                next_tx += 1;
            }
        }
        let feeder = producer.join().unwrap();
        assert_eq!(feeder.free_buffers(), MemoryConfig::default().rx_buffers);
        assert_eq!(q.stats().tx_dropped, 0);
    }
}
