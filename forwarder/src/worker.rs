//! The pinned poll-mode worker loop, as in DPDK's `examples/l3fwd`.
//!
//! One worker owns one [`WorkerQueue`] and one [`Processor`] (the pipeline
//! with its flow table and counters). Each turn of the loop:
//!
//! 1. reads the clock once (never per packet);
//! 2. flushes the transmit buffer if its drain timer ([`WorkerConfig::tx_drain_us`])
//!    expired, so a lone packet never waits longer than that;
//! 3. lets the processor pick up a new table version ([`Processor::begin_burst`]);
//! 4. receives a burst (default [`BURST`]) and runs the processor on each
//!    frame in place; the queue buffers the frames to transmit;
//! 5. lets the processor emit extra frames ([`Processor::drain_extra`]);
//! 6. sends the buffered frames as soon as a full burst is pending;
//! 7. when the burst was empty, busy-polls again, or backs off
//!    ([`IdlePolicy::Adaptive`]) on machines that share cores.
//!
//! The loop stops when the one shared shutdown flag is set: it stops
//! receiving, lets the processor emit what it still holds, flushes, and
//! returns its final counters. Nothing in the loop allocates, locks or logs;
//! the only system calls are the backend's one kick per burst and, when idle
//! with the adaptive policy, yields and sleeps.

/// The trait moved to [`crate::io::Processor`]; re-exported here until every
/// caller imports it from there.
use crate::io::Processor;
use crate::io::{IoError, QueueStats, WorkerQueue};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Frames received per poll, as in l3fwd's `MAX_PKT_BURST`.
pub const BURST: usize = 32;

/// Largest burst a worker accepts (bigger bursts only add latency).
pub const MAX_BURST: usize = 512;

/// Default drain timer: buffered frames wait at most this long (µs) before
/// they are sent, as in l3fwd's `BURST_TX_DRAIN_US`.
pub const TX_DRAIN_US: u64 = 100;

/// How often the worker calls [`WorkerQueue::maintenance`] and publishes
/// counters when idle (ns).
pub const MAINTENANCE_INTERVAL_NS: u64 = 100_000_000;

/// Empty polls before the adaptive policy starts yielding the core.
pub const IDLE_SPIN_POLLS: u32 = 1_000;

/// Empty polls spent yielding before the adaptive policy starts sleeping.
pub const IDLE_YIELD_POLLS: u32 = 100;

/// Longest sleep (µs) of the adaptive policy; the sleep doubles from 1 µs
/// up to this while the queue stays empty.
pub const IDLE_MAX_SLEEP_US: u32 = 200;

/// What a worker does when a poll returns no frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IdlePolicy {
    /// Poll again at once: lowest latency, one core at 100 % (the default,
    /// for dedicated cores).
    #[default]
    BusyPoll,
    /// Spin for `spin_polls` empty polls, then yield the core for
    /// `yield_polls` more, then sleep, doubling from 1 µs up to
    /// `max_sleep_us`; any frame resets it. For machines that share cores.
    Adaptive {
        /// Empty polls spent spinning.
        spin_polls: u32,
        /// Empty polls spent yielding after that.
        yield_polls: u32,
        /// Longest sleep in µs.
        max_sleep_us: u32,
    },
}

impl IdlePolicy {
    /// The adaptive policy with the default constants.
    pub const fn adaptive() -> Self {
        IdlePolicy::Adaptive {
            spin_polls: IDLE_SPIN_POLLS,
            yield_polls: IDLE_YIELD_POLLS,
            max_sleep_us: IDLE_MAX_SLEEP_US,
        }
    }
}

/// Tuning of one worker loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Frames per receive burst; also the transmit burst (1..=[`MAX_BURST`]).
    pub burst: usize,
    /// Drain timer of the transmit buffer in µs (0: flush after every poll).
    pub tx_drain_us: u64,
    /// Behaviour when a poll finds nothing.
    pub idle: IdlePolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            burst: BURST,
            tx_drain_us: TX_DRAIN_US,
            idle: IdlePolicy::BusyPoll,
        }
    }
}

impl WorkerConfig {
    /// Checks the tuning; the error says which value is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.burst == 0 || self.burst > MAX_BURST {
            return Err(format!(
                "burst {} is out of range (1 to {MAX_BURST})",
                self.burst
            ));
        }
        if self.tx_drain_us > 1_000_000 {
            return Err(format!(
                "tx_drain_us {} is over one second",
                self.tx_drain_us
            ));
        }
        if let IdlePolicy::Adaptive { max_sleep_us, .. } = self.idle {
            if max_sleep_us == 0 || max_sleep_us > 100_000 {
                return Err(format!(
                    "idle max_sleep_us {max_sleep_us} is out of range (1 to 100000)"
                ));
            }
        }
        Ok(())
    }
}

/// `CLOCK_MONOTONIC` in ns (since boot): the clock of
/// [`Processor::begin_burst`], the same in every process of one boot, so a
/// flow table kept across a restart ([`crate::flow::persist`]) keeps its
/// times. Reads the vDSO clock, no system call.
pub fn now_ns() -> u64 {
    crate::io::sys::monotonic_ns()
}

/// Counters of the loop itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Polls that received at least one frame.
    pub busy_polls: u64,
    /// Polls that received nothing.
    pub idle_polls: u64,
    /// Transmit flushes because a full burst was pending.
    pub burst_flushes: u64,
    /// Transmit flushes because the drain timer expired.
    pub drain_flushes: u64,
    /// Extra frames the processor emitted (queued or not).
    pub extra_frames: u64,
}

/// A worker's final counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// The queue's counters.
    pub queue: QueueStats,
    /// The loop's counters.
    pub looped: LoopStats,
}

/// One worker's live counters in plain atomics, on their own cache lines,
/// written only by that worker (relaxed stores once per busy burst and a
/// few times a second when idle) and read by anyone (the control plane).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerStats {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped: AtomicU64,
    host_packets: AtomicU64,
    freed: AtomicU64,
    rx_errors: AtomicU64,
    rx_ring_drops: AtomicU64,
    rx_csum_fixed: AtomicU64,
    rx_csum_unfixed: AtomicU64,
    busy_polls: AtomicU64,
    idle_polls: AtomicU64,
    burst_flushes: AtomicU64,
    drain_flushes: AtomicU64,
    extra_frames: AtomicU64,
    running: AtomicBool,
}

impl WorkerStats {
    /// Publishes `report` (the worker calls this).
    pub fn publish(&self, report: &WorkerReport) {
        let q = &report.queue;
        let l = &report.looped;
        let r = Ordering::Relaxed;
        self.rx_packets.store(q.rx_packets, r);
        self.rx_bytes.store(q.rx_bytes, r);
        self.tx_packets.store(q.tx_packets, r);
        self.tx_bytes.store(q.tx_bytes, r);
        self.tx_dropped.store(q.tx_dropped, r);
        self.host_packets.store(q.host_packets, r);
        self.freed.store(q.freed, r);
        self.rx_errors.store(q.rx_errors, r);
        self.rx_ring_drops.store(q.rx_ring_drops, r);
        self.rx_csum_fixed.store(q.rx_csum_fixed, r);
        self.rx_csum_unfixed.store(q.rx_csum_unfixed, r);
        self.busy_polls.store(l.busy_polls, r);
        self.idle_polls.store(l.idle_polls, r);
        self.burst_flushes.store(l.burst_flushes, r);
        self.drain_flushes.store(l.drain_flushes, r);
        self.extra_frames.store(l.extra_frames, r);
    }

    /// Reads the counters as last published (fields may be a burst apart).
    pub fn snapshot(&self) -> WorkerReport {
        let r = Ordering::Relaxed;
        WorkerReport {
            queue: QueueStats {
                rx_packets: self.rx_packets.load(r),
                rx_bytes: self.rx_bytes.load(r),
                tx_packets: self.tx_packets.load(r),
                tx_bytes: self.tx_bytes.load(r),
                tx_dropped: self.tx_dropped.load(r),
                host_packets: self.host_packets.load(r),
                freed: self.freed.load(r),
                rx_errors: self.rx_errors.load(r),
                rx_ring_drops: self.rx_ring_drops.load(r),
                rx_csum_fixed: self.rx_csum_fixed.load(r),
                rx_csum_unfixed: self.rx_csum_unfixed.load(r),
            },
            looped: LoopStats {
                busy_polls: self.busy_polls.load(r),
                idle_polls: self.idle_polls.load(r),
                burst_flushes: self.burst_flushes.load(r),
                drain_flushes: self.drain_flushes.load(r),
                extra_frames: self.extra_frames.load(r),
            },
        }
    }

    /// True while the worker's loop runs.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Relaxed);
    }
}

/// Runs one worker loop until `shutdown` is set, then flushes and returns
/// the final counters. Publishes live counters to `stats` as it goes.
///
/// An error of the queue (not a full ring: a broken socket or file) ends the
/// loop; the frames already buffered are flushed first if possible.
pub fn run_worker<Q, P>(
    queue: &mut Q,
    processor: &mut P,
    config: &WorkerConfig,
    shutdown: &AtomicBool,
    stats: &WorkerStats,
) -> Result<WorkerReport, IoError>
where
    Q: WorkerQueue,
    P: Processor,
{
    config.validate().map_err(IoError::Setup)?;
    stats.set_running(true);
    let result = worker_loop(queue, processor, config, shutdown, stats);
    stats.set_running(false);
    result
}

fn worker_loop<Q, P>(
    queue: &mut Q,
    processor: &mut P,
    config: &WorkerConfig,
    shutdown: &AtomicBool,
    stats: &WorkerStats,
) -> Result<WorkerReport, IoError>
where
    Q: WorkerQueue,
    P: Processor,
{
    let burst = config.burst;
    let drain_ns = config.tx_drain_us * 1_000;
    let mut looped = LoopStats::default();
    let mut idle = IdleState::default();
    let mut last_drain = now_ns();
    let mut last_maintenance = last_drain;

    let outcome = loop {
        if shutdown.load(Ordering::Relaxed) {
            break Ok(());
        }
        let now = now_ns();

        if now.wrapping_sub(last_drain) >= drain_ns {
            if queue.tx_pending() > 0 {
                if let Err(e) = queue.flush() {
                    break Err(e);
                }
                looped.drain_flushes += 1;
            }
            last_drain = now;
        }

        processor.begin_burst(now);
        let received = match queue.poll_with(burst, processor) {
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        let extra = match emit_extra(queue, processor) {
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        looped.extra_frames += extra;

        if queue.tx_pending() >= burst {
            if let Err(e) = queue.flush() {
                break Err(e);
            }
            looped.burst_flushes += 1;
            last_drain = now;
        }

        let slow_due = now.wrapping_sub(last_maintenance) >= MAINTENANCE_INTERVAL_NS;
        if slow_due {
            if let Err(e) = queue.maintenance() {
                break Err(e);
            }
            last_maintenance = now;
        }

        if received > 0 || extra > 0 {
            looped.busy_polls += 1;
            idle.reset();
            stats.publish(&WorkerReport {
                queue: queue.stats(),
                looped,
            });
        } else {
            looped.idle_polls += 1;
            processor.idle(now);
            if slow_due {
                stats.publish(&WorkerReport {
                    queue: queue.stats(),
                    looped,
                });
            }
            // Never back off with frames waiting for the drain timer.
            if queue.tx_pending() == 0 {
                idle.back_off(&config.idle);
            }
        }
    };

    // Stop receiving; emit what the processor still holds; flush.
    let final_extra = emit_extra(queue, processor);
    let flushed = queue.flush();
    if let Ok(n) = final_extra {
        looped.extra_frames += n;
    }
    let report = WorkerReport {
        queue: queue.stats(),
        looped,
    };
    stats.publish(&report);
    outcome?;
    final_extra?;
    flushed?;
    Ok(report)
}

/// Lets the processor emit its extra frames into the queue's transmit
/// buffer. Returns how many it emitted.
fn emit_extra<Q: WorkerQueue, P: Processor>(
    queue: &mut Q,
    processor: &mut P,
) -> Result<u64, IoError> {
    let mut count = 0u64;
    let mut error = None;
    processor.drain_extra(&mut |bytes| {
        count += 1;
        if error.is_some() {
            return false;
        }
        match queue.send_copy(bytes) {
            Ok(queued) => queued,
            Err(e) => {
                error = Some(e);
                false
            }
        }
    });
    match error {
        Some(e) => Err(e),
        None => Ok(count),
    }
}

/// Where the adaptive back-off stands.
#[derive(Debug, Default)]
struct IdleState {
    empty_polls: u32,
    sleep_us: u32,
}

impl IdleState {
    fn reset(&mut self) {
        self.empty_polls = 0;
        self.sleep_us = 0;
    }

    fn back_off(&mut self, policy: &IdlePolicy) {
        let IdlePolicy::Adaptive {
            spin_polls,
            yield_polls,
            max_sleep_us,
        } = *policy
        else {
            return;
        };
        self.empty_polls = self.empty_polls.saturating_add(1);
        if self.empty_polls <= spin_polls {
            std::hint::spin_loop();
        } else if self.empty_polls <= spin_polls.saturating_add(yield_polls) {
            std::thread::yield_now();
        } else {
            self.sleep_us = (self.sleep_us.max(1) * 2).min(max_sleep_us);
            std::thread::sleep(Duration::from_micros(u64::from(self.sleep_us)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::io::memory::{MemoryConfig, MemoryPort};
    use crate::io::Disposition;
    use std::sync::Arc;
    use std::time::Instant;

    /// Sends frames whose first byte is even, passes odd multiples of 3 to
    /// the host, drops the rest; prepends 4 bytes to the ones it sends.
    /// Emits one extra frame per burst while `extra_left` > 0.
    struct TestProcessor {
        bursts: u64,
        extra_left: u32,
        last_now: u64,
    }

    impl Processor for TestProcessor {
        fn begin_burst(&mut self, now_ns: u64) {
            assert!(now_ns >= self.last_now, "clock went backwards");
            self.last_now = now_ns;
            self.bursts += 1;
        }

        fn process(&mut self, frame: &mut Frame<'_>) -> Disposition {
            let first = frame.data()[0];
            if first.is_multiple_of(2) {
                assert!(frame.headroom() >= crate::frame::HEADROOM);
                assert!(frame.adjust_head(-4));
                frame.data_mut()[..4].copy_from_slice(b"ENC:");
                Disposition::Tx
            } else if first.is_multiple_of(3) {
                Disposition::Host
            } else {
                Disposition::Drop
            }
        }

        fn drain_extra(&mut self, emit: &mut dyn FnMut(&[u8]) -> bool) {
            if self.extra_left > 0 {
                self.extra_left -= 1;
                assert!(emit(b"extra"));
            }
        }
    }

    fn processor(extra: u32) -> TestProcessor {
        TestProcessor {
            bursts: 0,
            extra_left: extra,
            last_now: 0,
        }
    }

    #[test]
    fn every_buffer_is_sent_or_freed_and_shutdown_flushes() {
        let cfg = MemoryConfig {
            rx_buffers: 64,
            tx_slots: 256,
            ..MemoryConfig::default()
        };
        let (mut queue, mut feeder, mut sink) = MemoryPort::new(cfg).unwrap().split();
        let shutdown = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(WorkerStats::default());
        // tx_drain_us large and burst larger than what we send: only the
        // shutdown flush can send the frames.
        let config = WorkerConfig {
            burst: 32,
            tx_drain_us: 1_000_000,
            idle: IdlePolicy::adaptive(),
        };
        let worker = {
            let shutdown = shutdown.clone();
            let stats = stats.clone();
            std::thread::spawn(move || {
                let mut p = processor(2);
                run_worker(&mut queue, &mut p, &config, &shutdown, &stats).map(|r| (r, p.bursts))
            })
        };
        // 0..30: 15 even (tx), odd multiples of 3: 3,9,15,21,27 (host), 10 drop.
        for i in 0..30u8 {
            while !feeder.push(&[i, 1, 2, 3]).unwrap() {
                std::thread::yield_now();
            }
        }
        while stats.snapshot().queue.rx_packets < 30 {
            std::thread::yield_now();
        }
        assert!(stats.is_running());
        // Nothing went out yet: the burst is not full, the timer far away.
        assert_eq!(sink.pending(), 0, "frames sent before burst or drain timer");
        shutdown.store(true, Ordering::Relaxed);
        let (report, bursts) = worker.join().unwrap().unwrap();
        assert!(!stats.is_running());
        assert!(bursts >= 1);
        let q = report.queue;
        assert_eq!(q.rx_packets, 30);
        assert_eq!(q.tx_packets, 15 + 2);
        assert_eq!(q.host_packets, 5);
        assert_eq!(q.freed, 10);
        assert_eq!(q.tx_dropped, 0);
        assert_eq!(report.looped.extra_frames, 2);
        assert_eq!(stats.snapshot(), report);
        // Every receive buffer is back in the free pool.
        assert_eq!(feeder.free_buffers(), 64);
        let mut sent = Vec::new();
        while let Some(frame) = sink.pop_with(|f| f.to_vec()) {
            sent.push(frame);
        }
        assert_eq!(sent.len(), 17);
        let encapsulated: Vec<_> = sent.iter().filter(|f| f.starts_with(b"ENC:")).collect();
        assert_eq!(encapsulated.len(), 15);
        assert_eq!(
            encapsulated[0].as_slice(),
            &[b'E', b'N', b'C', b':', 0, 1, 2, 3]
        );
        assert_eq!(sent.iter().filter(|f| f.as_slice() == b"extra").count(), 2);
    }

    #[test]
    fn drain_timer_flushes_a_partial_burst() {
        let (mut queue, mut feeder, sink) =
            MemoryPort::new(MemoryConfig::default()).unwrap().split();
        let shutdown = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(WorkerStats::default());
        let config = WorkerConfig {
            burst: 32,
            tx_drain_us: 200,
            idle: IdlePolicy::BusyPoll,
        };
        let worker = {
            let shutdown = shutdown.clone();
            let stats = stats.clone();
            std::thread::spawn(move || {
                run_worker(&mut queue, &mut processor(0), &config, &shutdown, &stats)
            })
        };
        assert!(feeder.push(&[2, 0, 0, 0]).unwrap());
        // One frame, far below a burst: only the drain timer sends it. Wait
        // for it without a deadline on the happy path, but give up after 10 s.
        let start = Instant::now();
        while sink.pending() == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "drain timer never flushed"
            );
            std::thread::yield_now();
        }
        shutdown.store(true, Ordering::Relaxed);
        let report = worker.join().unwrap().unwrap();
        assert!(report.looped.drain_flushes >= 1);
        assert_eq!(report.looped.burst_flushes, 0);
        assert_eq!(report.queue.tx_packets, 1);
    }

    #[test]
    fn full_bursts_are_sent_without_waiting_for_the_timer() {
        let cfg = MemoryConfig {
            rx_buffers: 128,
            ..MemoryConfig::default()
        };
        let (mut queue, mut feeder, mut sink) = MemoryPort::new(cfg).unwrap().split();
        for i in 0..64u8 {
            assert!(feeder.push(&[i * 2, 0]).unwrap());
        }
        let shutdown = AtomicBool::new(false);
        let stats = WorkerStats::default();
        let config = WorkerConfig {
            burst: 16,
            tx_drain_us: 1_000_000,
            idle: IdlePolicy::BusyPoll,
        };
        std::thread::scope(|s| {
            let worker =
                s.spawn(|| run_worker(&mut queue, &mut processor(0), &config, &shutdown, &stats));
            let mut got = 0;
            while got < 64 {
                if sink.pop_with(|_| ()).is_some() {
                    got += 1;
                } else {
                    std::thread::yield_now();
                }
            }
            shutdown.store(true, Ordering::Relaxed);
            let report = worker.join().unwrap().unwrap();
            assert_eq!(report.looped.burst_flushes, 4);
            assert_eq!(report.looped.drain_flushes, 0);
        });
    }

    #[test]
    fn bad_tuning_is_refused() {
        let bad = WorkerConfig {
            burst: 0,
            ..WorkerConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("burst 0"));
        let bad = WorkerConfig {
            idle: IdlePolicy::Adaptive {
                spin_polls: 1,
                yield_polls: 1,
                max_sleep_us: 0,
            },
            ..WorkerConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_sleep_us"));
        assert!(WorkerConfig::default().validate().is_ok());
    }
}
