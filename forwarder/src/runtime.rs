//! The runtime: validates the worker layout, starts one pinned thread per
//! worker, stops them through one shared flag, and collects their counters.
//!
//! ```text
//! Runtime::new(layout)            validate cores, interfaces, queues: nothing runs yet
//! runtime.install_signal_handlers()   SIGINT/SIGTERM set the shutdown flag
//! runtime.stats()                 per-worker live counters for the control plane
//! runtime.run(open_queue, make_processor)
//!     per worker, on its own thread: pin -> open_queue(i) -> make_processor(i)
//!     -> all workers ready (barrier) -> worker loop -> flush -> final counters
//! ```
//!
//! If any worker fails to pin or open its queue, no worker processes a
//! single packet: they all meet at a barrier after opening, and all leave if
//! one failed.

use crate::io::Processor;
use crate::io::{self, IoError, QueueStats, WorkerQueue};
use crate::worker::{self, WorkerConfig, WorkerReport, WorkerStats};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where one worker runs and what it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPlacement {
    /// CPU core to pin the worker to; `None` leaves it unpinned (tests,
    /// pcap replay).
    pub core: Option<usize>,
    /// Interface the worker receives from (`None` for the memory and pcap
    /// backends).
    pub ingress: Option<String>,
    /// Interface the worker transmits on when it is not the ingress one
    /// (two-armed); `None` for one-armed.
    pub egress: Option<String>,
    /// Hardware receive queue of the ingress interface the worker owns
    /// (AF_XDP); `None` when workers share the interface by fanout
    /// (AF_PACKET).
    pub queue: Option<u32>,
}

/// The whole worker layout and the loop's tuning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// One entry per worker thread.
    pub workers: Vec<WorkerPlacement>,
    /// Tuning shared by every worker.
    pub config: WorkerConfig,
    /// Require every interface to be administratively up (true in
    /// production; a test may bring links up later).
    pub require_up: bool,
}

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The layout cannot run on this machine.
    #[error("bad worker layout: {0}")]
    Layout(String),
    /// The process may not learn which cores it may use.
    #[error("cannot read the CPU cores this process may run on")]
    NoCoreIds,
    /// An interface lookup failed.
    #[error("worker {worker}: {source}")]
    Interface {
        /// The worker.
        worker: usize,
        /// What failed.
        #[source]
        source: IoError,
    },
    /// A worker could not be pinned to its core.
    #[error("worker {worker}: cannot pin the thread to core {core}")]
    Pin {
        /// The worker.
        worker: usize,
        /// The core.
        core: usize,
    },
    /// A worker could not open its queue, or its queue failed.
    #[error("worker {worker}: {source}")]
    Worker {
        /// The worker.
        worker: usize,
        /// What failed.
        #[source]
        source: IoError,
    },
    /// A worker thread panicked.
    #[error("worker {worker} panicked")]
    Panicked {
        /// The worker.
        worker: usize,
    },
    /// Installing the signal handlers failed.
    #[error("cannot install the SIGINT/SIGTERM handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// A worker thread could not be started.
    #[error("cannot start worker thread {worker}: {source}")]
    Spawn {
        /// The worker.
        worker: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Every worker's final counters, in worker order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// One report per worker.
    pub workers: Vec<WorkerReport>,
}

impl RunReport {
    /// Queue counters summed over the workers.
    pub fn total(&self) -> QueueStats {
        let mut total = QueueStats::default();
        for w in &self.workers {
            total.accumulate(&w.queue);
        }
        total
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>6} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "worker", "rx", "tx", "tx_drop", "host", "freed", "rx_err", "ring_drop"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, q: &QueueStats| {
            writeln!(
                f,
                "{:>6} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
                name,
                q.rx_packets,
                q.tx_packets,
                q.tx_dropped,
                q.host_packets,
                q.freed,
                q.rx_errors,
                q.rx_ring_drops
            )
        };
        for (i, w) in self.workers.iter().enumerate() {
            row(f, &i.to_string(), &w.queue)?;
        }
        row(f, "total", &self.total())
    }
}

/// A validated layout, its shutdown flag and its live counters.
pub struct Runtime {
    layout: Layout,
    shutdown: Arc<AtomicBool>,
    stats: Arc<[WorkerStats]>,
}

impl Runtime {
    /// Validates `layout` on this machine (cores, interfaces, queues); no
    /// thread starts here.
    pub fn new(layout: Layout) -> Result<Self, RuntimeError> {
        let allowed = match layout.workers.iter().any(|w| w.core.is_some()) {
            true => Some(allowed_cores()?),
            false => None,
        };
        validate_layout(&layout, allowed.as_ref(), io::interface_info)?;
        let stats = (0..layout.workers.len())
            .map(|_| WorkerStats::default())
            .collect();
        Ok(Runtime {
            layout,
            shutdown: Arc::new(AtomicBool::new(false)),
            stats,
        })
    }

    /// The layout this runtime runs.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The one shutdown flag: set it and every worker stops, flushes and
    /// returns.
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shutdown.clone()
    }

    /// Per-worker live counters (index = worker), for the control plane.
    pub fn stats(&self) -> Arc<[WorkerStats]> {
        self.stats.clone()
    }

    /// Makes SIGINT and SIGTERM set the shutdown flag (async-signal-safe:
    /// the handler only stores to the flag).
    pub fn install_signal_handlers(&self) -> Result<(), RuntimeError> {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, self.shutdown.clone())
                .map_err(RuntimeError::Signals)?;
        }
        Ok(())
    }

    /// Starts one thread per worker, pinned to its core; each opens its own
    /// queue with `open_queue(worker_index)` and makes its processor with
    /// `make_processor(worker_index)` on that thread. Returns once every
    /// worker stopped (the shutdown flag was set, or one worker failed, which
    /// sets the flag for the others), with every worker's final counters.
    pub fn run<Q, P, O, M>(
        &self,
        open_queue: O,
        make_processor: M,
    ) -> Result<RunReport, RuntimeError>
    where
        Q: WorkerQueue,
        P: Processor,
        O: Fn(usize) -> Result<Q, IoError> + Sync,
        M: Fn(usize) -> P + Sync,
    {
        let n = self.layout.workers.len();
        // Start gate: every worker opens its queue, then waits until all
        // arrived (or one could not even be spawned) before polling.
        let arrived = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        // Workers open their queues one after the other, in index order:
        // an AF_PACKET fanout group numbers its sockets in the order they
        // join, and its hash must send a flow to the same worker (the same
        // flow table) after a restart.
        let opened_turn = AtomicUsize::new(0);
        let shutdown = &*self.shutdown;
        let config = self.layout.config;

        let results: Vec<Result<WorkerReport, RuntimeError>> = std::thread::scope(|s| {
            let mut handles = Vec::with_capacity(n);
            let mut spawn_error = None;
            for (i, placement) in self.layout.workers.iter().enumerate() {
                let (arrived, failed, opened_turn, open_queue, make_processor) = (
                    &arrived,
                    &failed,
                    &opened_turn,
                    &open_queue,
                    &make_processor,
                );
                let stats = &self.stats[i];
                let spawned = std::thread::Builder::new()
                    .name(format!("lbfwd-w{i}"))
                    .spawn_scoped(s, move || {
                        while opened_turn.load(Ordering::SeqCst) < i
                            && !failed.load(Ordering::SeqCst)
                        {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        let opened = open_worker(i, placement, open_queue, make_processor);
                        if opened.is_err() {
                            failed.store(true, Ordering::SeqCst);
                        }
                        opened_turn.fetch_add(1, Ordering::SeqCst);
                        arrived.fetch_add(1, Ordering::SeqCst);
                        while arrived.load(Ordering::SeqCst) < n && !failed.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        let (mut queue, mut processor) = match opened {
                            Ok(qp) => qp,
                            Err(e) => return Err(e),
                        };
                        if failed.load(Ordering::SeqCst) {
                            // Another worker could not start: nobody runs.
                            return Ok(WorkerReport {
                                queue: queue.stats(),
                                ..WorkerReport::default()
                            });
                        }
                        let result = worker::run_worker(
                            &mut queue,
                            &mut processor,
                            &config,
                            shutdown,
                            stats,
                        )
                        .map_err(|source| RuntimeError::Worker { worker: i, source });
                        if result.is_err() {
                            // One worker down stops them all.
                            shutdown.store(true, Ordering::SeqCst);
                        }
                        result
                    });
                match spawned {
                    Ok(h) => handles.push(h),
                    Err(source) => {
                        // Release the workers already waiting at the gate.
                        failed.store(true, Ordering::SeqCst);
                        spawn_error = Some(RuntimeError::Spawn { worker: i, source });
                        break;
                    }
                }
            }
            let mut results: Vec<_> = handles
                .into_iter()
                .enumerate()
                .map(|(i, h)| {
                    h.join()
                        .unwrap_or(Err(RuntimeError::Panicked { worker: i }))
                })
                .collect();
            if let Some(e) = spawn_error {
                results.push(Err(e));
            }
            results
        });

        let mut report = RunReport::default();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(r) => report.workers.push(r),
                Err(e) => {
                    report.workers.push(WorkerReport::default());
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

/// On the worker's thread: pin, open the queue, make the processor.
fn open_worker<Q, P, O, M>(
    i: usize,
    placement: &WorkerPlacement,
    open_queue: &O,
    make_processor: &M,
) -> Result<(Q, P), RuntimeError>
where
    O: Fn(usize) -> Result<Q, IoError>,
    M: Fn(usize) -> P,
{
    if let Some(core) = placement.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            return Err(RuntimeError::Pin { worker: i, core });
        }
    }
    let queue = open_queue(i).map_err(|source| RuntimeError::Worker { worker: i, source })?;
    Ok((queue, make_processor(i)))
}

/// The cores this process may run on (its affinity mask).
pub fn allowed_cores() -> Result<BTreeSet<usize>, RuntimeError> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .ok_or(RuntimeError::NoCoreIds)
}

/// Checks a layout against the allowed cores (`None`: no worker is pinned)
/// and the interfaces as `lookup` reports them.
pub fn validate_layout(
    layout: &Layout,
    allowed_cores: Option<&BTreeSet<usize>>,
    lookup: impl Fn(&str) -> Result<io::InterfaceInfo, IoError>,
) -> Result<(), RuntimeError> {
    if layout.workers.is_empty() {
        return Err(RuntimeError::Layout(
            "no workers: the layout needs at least one".into(),
        ));
    }
    layout.config.validate().map_err(RuntimeError::Layout)?;

    let mut cores_seen = BTreeMap::new();
    for (i, w) in layout.workers.iter().enumerate() {
        let Some(core) = w.core else { continue };
        let allowed = allowed_cores.ok_or(RuntimeError::NoCoreIds)?;
        if !allowed.contains(&core) {
            return Err(RuntimeError::Layout(format!(
                "worker {i}: core {core} does not exist or is not allowed for this process (allowed: {})",
                list(allowed.iter())
            )));
        }
        if let Some(other) = cores_seen.insert(core, i) {
            return Err(RuntimeError::Layout(format!(
                "workers {other} and {i} are both on core {core}: one worker per core"
            )));
        }
    }

    let mut queues_seen = BTreeMap::new();
    let mut infos = BTreeMap::new();
    for (i, w) in layout.workers.iter().enumerate() {
        for name in [&w.ingress, &w.egress].into_iter().flatten() {
            if !infos.contains_key(name.as_str()) {
                let info =
                    lookup(name).map_err(|source| RuntimeError::Interface { worker: i, source })?;
                infos.insert(name.clone(), info);
            }
            let info = &infos[name.as_str()];
            if layout.require_up && !info.up {
                return Err(RuntimeError::Layout(format!(
                    "worker {i}: interface {name} is down (ip link set {name} up)"
                )));
            }
        }
        if let Some(queue) = w.queue {
            let Some(ingress) = &w.ingress else {
                return Err(RuntimeError::Layout(format!(
                    "worker {i}: queue {queue} given without an ingress interface"
                )));
            };
            let info = &infos[ingress.as_str()];
            if queue >= info.rx_queues {
                return Err(RuntimeError::Layout(format!(
                    "worker {i}: {ingress} has {} receive queue(s), queue {queue} does not exist",
                    info.rx_queues
                )));
            }
            if let Some(other) = queues_seen.insert((ingress.clone(), queue), i) {
                return Err(RuntimeError::Layout(format!(
                    "workers {other} and {i} both read queue {queue} of {ingress}: one worker per queue"
                )));
            }
        }
    }
    // Workers that share an ingress interface without queue ids share it by
    // fanout; mixing both on one interface would read frames twice.
    let mut modes: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for w in &layout.workers {
        if let Some(ingress) = &w.ingress {
            let entry = modes.entry(ingress.as_str()).or_default();
            if w.queue.is_some() {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    if let Some((name, _)) = modes.iter().find(|(_, (q, f))| *q && *f) {
        return Err(RuntimeError::Layout(format!(
            "interface {name}: some workers name a queue and some do not; give every worker on it a queue, or none"
        )));
    }
    Ok(())
}

fn list<'a>(items: impl Iterator<Item = &'a usize>) -> String {
    items.map(|c| c.to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::io::memory::{MemoryConfig, MemoryPort, MemoryQueue};
    use crate::io::{Disposition, InterfaceInfo};
    use std::sync::Mutex;

    fn placement(
        core: Option<usize>,
        ingress: Option<&str>,
        queue: Option<u32>,
    ) -> WorkerPlacement {
        WorkerPlacement {
            core,
            ingress: ingress.map(str::to_string),
            egress: None,
            queue,
        }
    }

    fn layout(workers: Vec<WorkerPlacement>) -> Layout {
        Layout {
            workers,
            config: WorkerConfig::default(),
            require_up: true,
        }
    }

    fn fake_lookup(name: &str) -> Result<InterfaceInfo, IoError> {
        match name {
            "eth0" | "eth1" | "down0" => Ok(InterfaceInfo {
                name: name.into(),
                index: 2,
                up: name != "down0",
                running: true,
                rx_queues: 2,
                mtu: 1500,
            }),
            _ => Err(IoError::Setup(format!("interface {name:?} does not exist"))),
        }
    }

    fn check(workers: Vec<WorkerPlacement>) -> Result<(), String> {
        let allowed: BTreeSet<usize> = [0, 1, 2, 3].into();
        validate_layout(&layout(workers), Some(&allowed), fake_lookup).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_layouts_are_refused_with_a_reason() {
        let cases: Vec<(&str, Vec<WorkerPlacement>, &str)> = vec![
            ("no workers", vec![], "no workers"),
            (
                "core not allowed",
                vec![placement(Some(7), None, None)],
                "core 7 does not exist",
            ),
            (
                "duplicate core",
                vec![
                    placement(Some(1), None, None),
                    placement(Some(1), None, None),
                ],
                "both on core 1",
            ),
            (
                "missing interface",
                vec![placement(None, Some("nope0"), None)],
                "\"nope0\" does not exist",
            ),
            (
                "interface down",
                vec![placement(None, Some("down0"), None)],
                "down0 is down",
            ),
            (
                "queue beyond count",
                vec![placement(None, Some("eth0"), Some(2))],
                "queue 2 does not exist",
            ),
            (
                "duplicate queue",
                vec![
                    placement(Some(0), Some("eth0"), Some(1)),
                    placement(Some(1), Some("eth0"), Some(1)),
                ],
                "both read queue 1 of eth0",
            ),
            (
                "queue and fanout mixed",
                vec![
                    placement(Some(0), Some("eth0"), Some(0)),
                    placement(Some(1), Some("eth0"), None),
                ],
                "some workers name a queue",
            ),
            (
                "queue without interface",
                vec![placement(None, None, Some(0))],
                "without an ingress",
            ),
        ];
        for (what, workers, expect) in cases {
            let err = check(workers).expect_err(what);
            assert!(err.contains(expect), "{what}: {err}");
        }
        check(vec![
            placement(Some(0), Some("eth0"), None),
            placement(Some(1), Some("eth0"), None),
        ])
        .unwrap();
        check(vec![
            placement(Some(2), Some("eth0"), Some(0)),
            placement(Some(3), Some("eth0"), Some(1)),
        ])
        .unwrap();
    }

    #[test]
    fn real_machine_validation_uses_the_affinity_mask() {
        let allowed = allowed_cores().unwrap();
        let first = *allowed.iter().next().unwrap();
        Runtime::new(layout(vec![placement(Some(first), Some("lo"), None)])).unwrap();
        let err = Runtime::new(layout(vec![placement(Some(100_000), None, None)]))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("core 100000"), "{err}");
        let err = Runtime::new(layout(vec![placement(None, Some("lbt-none0"), None)]))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("lbt-none0"), "{err}");
    }

    struct Forward;
    impl Processor for Forward {
        fn begin_burst(&mut self, _now_ns: u64) {}
        fn process(&mut self, _frame: &mut Frame<'_>) -> Disposition {
            Disposition::Tx
        }
    }

    #[test]
    fn runs_pinned_workers_until_shutdown_and_reports_counters() {
        let allowed = allowed_cores().unwrap();
        let cores: Vec<usize> = allowed.iter().copied().take(2).collect();
        let workers = cores
            .iter()
            .map(|&c| placement(Some(c), None, None))
            .collect();
        let runtime = Runtime::new(layout(workers)).unwrap();
        let mut feeders = Vec::new();
        let mut sinks = Vec::new();
        let mut queues = Vec::new();
        for _ in &cores {
            let (q, f, s) = MemoryPort::new(MemoryConfig::default()).unwrap().split();
            queues.push(Some(q));
            feeders.push(f);
            sinks.push(s);
        }
        let queues = Mutex::new(queues);
        for f in &mut feeders {
            for i in 0..100u8 {
                assert!(f.push(&[i; 64]).unwrap());
            }
        }
        let stats = runtime.stats();
        let shutdown = runtime.shutdown_flag();
        let report = std::thread::scope(|s| {
            let running = s.spawn(|| {
                runtime.run(
                    |i| Ok::<MemoryQueue, IoError>(queues.lock().unwrap()[i].take().unwrap()),
                    |_| Forward,
                )
            });
            while stats
                .iter()
                .map(|w| w.snapshot().queue.rx_packets)
                .sum::<u64>()
                < 100 * cores.len() as u64
            {
                std::thread::yield_now();
            }
            shutdown.store(true, Ordering::SeqCst);
            running.join().unwrap().unwrap()
        });
        assert_eq!(report.workers.len(), cores.len());
        assert_eq!(report.total().tx_packets, 100 * cores.len() as u64);
        for s in &sinks {
            assert_eq!(s.pending(), 100, "shutdown flushed every frame");
        }
        let text = report.to_string();
        assert!(text.contains("total"), "{text}");
    }

    #[test]
    fn one_worker_failing_to_open_stops_all_before_any_packet() {
        let runtime = Runtime::new(layout(vec![
            placement(None, None, None),
            placement(None, None, None),
        ]))
        .unwrap();
        let (q, mut feeder, _sink) = MemoryPort::new(MemoryConfig::default()).unwrap().split();
        assert!(feeder.push(&[0; 60]).unwrap());
        let q = Mutex::new(Some(q));
        let err = runtime
            .run(
                |i| {
                    if i == 1 {
                        Err(IoError::Setup("no such queue".into()))
                    } else {
                        Ok(q.lock().unwrap().take().unwrap())
                    }
                },
                |_| Forward,
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("worker 1: no such queue"), "{err}");
        assert_eq!(
            runtime.stats()[0].snapshot().queue.rx_packets,
            0,
            "worker 0 never ran"
        );
    }
}
