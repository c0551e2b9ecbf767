//! `lbfwd-pktgen`: lbfwd's packet generator and benchmark driver.
//!
//! ```text
//! lbfwd-pktgen memory   [sweep options]   pipeline throughput, in process, 1..N pinned workers
//! lbfwd-pktgen latency  [options]         per-burst latency percentiles (hdrhistogram)
//! lbfwd-pktgen maglev                     Maglev build time and disruption (paper Fig. 12)
//! lbfwd-pktgen send     --dev IF ...      send the generated flows on an interface (AF_PACKET TX ring)
//! lbfwd-pktgen count    --dev IF ...      rate of frames arriving on an interface (its counters)
//! lbfwd-pktgen config   ...               lbfwd TOML for the synthetic load balancers
//! lbfwd-pktgen io-record ...              add an I/O rate (testpmd, lbfwd run) to the results
//! lbfwd-pktgen frames   --out F ...       write the generated frames to a file (Katran's harness)
//! lbfwd-pktgen per-packet-record ...      add another implementation's ns per packet (Katran)
//! lbfwd-pktgen report   --in F --out-dir D  results.json, results.md and PNG plots
//! ```
//!
//! Every measurement prints one JSON line (and appends it to `--out`), with
//! the machine it ran on. `scripts/bench.sh` runs the whole suite.

use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use lbfwd_benches::machine::Machine;
use lbfwd_benches::report::{
    self, IoRate, Latency, MaglevBuild, MaglevMoved, PerPacket, Record, Throughput,
};
use lbfwd_benches::synth::{self, RunSettings, SynthSpec};
use lbfwd_benches::traffic::{GenQueue, Packets, TrafficSpec, GEN_BUFFERS};
use lbfwd_config::model::Encap;
use lbfwd_forwarder::counters::WorkerCounters;
use lbfwd_forwarder::dataplane::Dataplane;
use lbfwd_forwarder::flow::persist::FlowStore;
use lbfwd_forwarder::frame::Frame;
use lbfwd_forwarder::io::Processor;
use lbfwd_forwarder::io::{Disposition, IoError, WorkerQueue};
use lbfwd_forwarder::maglev::{MaglevBackend, MaglevTable};
use lbfwd_forwarder::pipeline::{Pipeline, PipelineConfig};
use lbfwd_forwarder::runtime::{Layout, Runtime, WorkerPlacement};
use lbfwd_forwarder::worker::{now_ns, WorkerConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "lbfwd-pktgen",
    about = "lbfwd's packet generator and benchmark driver"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pipeline throughput on the in-process memory path.
    Memory(MemoryArgs),
    /// Latency percentiles of a burst through the pipeline.
    Latency(LatencyArgs),
    /// Maglev table build time and share of flows moved.
    Maglev(MaglevArgs),
    /// Send the generated flows on an interface through an AF_PACKET TX ring.
    Send(SendArgs),
    /// Measure the rate of frames arriving on an interface (its counters).
    Count(CountArgs),
    /// Print an lbfwd TOML configuration with the synthetic load balancers.
    Config(ConfigArgs),
    /// Add an I/O rate (testpmd, lbfwd on veth) to the results file.
    IoRecord(IoRecordArgs),
    /// Write the generated frames to a file: per frame a 2-byte
    /// little-endian length, then the frame (for Katran's harness).
    Frames(FramesArgs),
    /// Add another implementation's ns per packet (Katran) to the results.
    PerPacketRecord(PerPacketArgs),
    /// Turn a results file into results.json, results.md and PNG plots.
    Report(ReportArgs),
}

/// The synthetic configuration.
#[derive(Args, Clone)]
struct ConfigShape {
    /// Load balancers (one IPv4 and one IPv6 VIP each).
    #[arg(long, default_value_t = 1000)]
    lbs: usize,
    /// Targets per load balancer.
    #[arg(long, default_value_t = 100)]
    targets: usize,
    /// Maglev table size (a prime).
    #[arg(long, default_value_t = 65537)]
    maglev_size: u32,
    /// Encapsulation: vxlan, gue or ipip.
    #[arg(long, default_value = "vxlan")]
    encap: String,
}

impl ConfigShape {
    fn spec(&self) -> Result<SynthSpec, String> {
        let encap = match self.encap.as_str() {
            "vxlan" => Encap::Vxlan { port: 4789 },
            "gue" => Encap::Gue { port: 6080 },
            "ipip" => Encap::IpIp,
            other => return Err(format!("--encap: {other:?} is not vxlan, gue or ipip")),
        };
        let spec = SynthSpec {
            lbs: self.lbs,
            targets: self.targets,
            maglev_size: self.maglev_size,
            encap,
            ipv6: true,
        };
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

/// What traffic to generate.
#[derive(Args, Clone)]
struct TrafficArgs {
    /// VIPs the flows go to (default: every load balancer).
    #[arg(long)]
    vips: Option<u32>,
    /// Share of IPv6 flows (0..1).
    #[arg(long, default_value_t = 0.0)]
    ipv6_share: f64,
    /// Share of flows the filter drops (0..1).
    #[arg(long, default_value_t = 0.0)]
    drop_share: f64,
    /// Share of fragmented flows (0..1).
    #[arg(long, default_value_t = 0.0)]
    frag_share: f64,
    /// Seed of the flow classes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl TrafficArgs {
    fn spec(&self, shape: &SynthSpec, flows: u32, frame_len: usize) -> Result<TrafficSpec, String> {
        let vips = self.vips.unwrap_or(shape.lbs as u32);
        if vips as usize > shape.lbs {
            return Err(format!(
                "--vips {vips}: the configuration has only {} load balancers",
                shape.lbs
            ));
        }
        let spec = TrafficSpec {
            flows,
            vips,
            frame_len,
            drop_share: self.drop_share,
            ipv6_share: self.ipv6_share,
            frag_share: self.frag_share,
            seed: self.seed,
            ..TrafficSpec::default()
        };
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }
}

#[derive(Args)]
struct MemoryArgs {
    #[command(flatten)]
    shape: ConfigShape,
    #[command(flatten)]
    traffic: TrafficArgs,
    /// Worker counts to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    workers: Vec<usize>,
    /// Cores for the workers, in order of use (default: the allowed cores
    /// from the highest down, so one worker runs on the last core and core
    /// 0 keeps the rest of the system).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Frame sizes in bytes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "64")]
    sizes: Vec<usize>,
    /// Flow counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000000")]
    flows: Vec<u32>,
    /// Publish a routing change (target 0 of every load balancer leaves,
    /// then comes back) every this many ms; 0: none.
    #[arg(long, default_value_t = 0)]
    churn_ms: u64,
    /// Render the Prometheus exposition of the dataplane's counters (what
    /// `GET /metrics` does) this many times a second on the control core
    /// during the run; 0: never (the cost of scraping).
    #[arg(long, default_value_t = 0.0)]
    scrape_hz: f64,
    /// Warm-up before the measured window, s (fills the flow table).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Measured window, s.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Name of the sweep in the results (workers, size, flows, ...).
    #[arg(long, default_value = "target")]
    sweep: String,
    /// Keep each worker's flow table in a file of this directory, mapped
    /// shared, as lbfwd does with `[flow] persist` (default: in memory, as
    /// without it). The directory's files are replaced.
    #[arg(long)]
    flow_dir: Option<PathBuf>,
    /// Append the JSON records to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct LatencyArgs {
    #[command(flatten)]
    shape: ConfigShape,
    #[command(flatten)]
    traffic: TrafficArgs,
    /// Core to run on (default: the last allowed core).
    #[arg(long)]
    core: Option<usize>,
    /// Frames per burst.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Frame size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Flows.
    #[arg(long, default_value_t = 1_000_000)]
    flows: u32,
    /// Rounds over every flow after the first (the hit phase); 0: only
    /// the first round, where every packet is a new flow.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Name of the sweep in the results (`many`: the many-flows table).
    #[arg(long, default_value = "")]
    sweep: String,
    /// Append the JSON records to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct FramesArgs {
    #[command(flatten)]
    shape: ConfigShape,
    #[command(flatten)]
    traffic: TrafficArgs,
    /// Frame size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Flows.
    #[arg(long, default_value_t = 1_000_000)]
    flows: u32,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct PerPacketArgs {
    /// What ran (katran).
    #[arg(long)]
    name: String,
    /// The case (configuration and family).
    #[arg(long)]
    case: String,
    /// Established flows; 0: new flows.
    #[arg(long)]
    flows: u32,
    /// ns per packet, the empty program's cost taken out.
    #[arg(long)]
    ns: f64,
    /// ns per packet as measured.
    #[arg(long)]
    raw_ns: f64,
    /// ns of one test run of an empty program.
    #[arg(long, default_value_t = 0.0)]
    baseline_ns: f64,
    /// Round number.
    #[arg(long, default_value_t = 0)]
    round: u32,
    /// Details.
    #[arg(long, default_value = "")]
    detail: String,
    /// Append the JSON record to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct MaglevArgs {
    /// Table sizes.
    #[arg(long, value_delimiter = ',', default_value = "65537,655373")]
    sizes: Vec<u32>,
    /// Target counts.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    targets: Vec<usize>,
    /// Builds timed per point.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Targets removed out of 1000 for the disruption curve.
    #[arg(long, value_delimiter = ',', default_value = "1,2,5,10,20,50,100,200")]
    removed: Vec<usize>,
    /// Append the JSON records to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SendArgs {
    #[command(flatten)]
    shape: ConfigShape,
    #[command(flatten)]
    traffic: TrafficArgs,
    /// Interface to send on.
    #[arg(long)]
    dev: String,
    /// Destination MAC of the frames (the forwarder's ingress interface).
    #[arg(long)]
    dst_mac: String,
    /// Frame size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Flows.
    #[arg(long, default_value_t = 1_000_000)]
    flows: u32,
    /// Seconds to send.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Core to pin the sender to.
    #[arg(long)]
    core: Option<usize>,
    /// Frames per send() kick.
    #[arg(long, default_value_t = 64)]
    burst: usize,
}

#[derive(Args)]
struct CountArgs {
    /// Interface whose received frames are counted (rx_packets).
    #[arg(long)]
    dev: String,
    /// Seconds to wait before the window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Measured window, s.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Counter file under /sys/class/net/DEV/statistics/.
    #[arg(long, default_value = "rx_packets")]
    counter: String,
}

#[derive(Args)]
struct ConfigArgs {
    #[command(flatten)]
    shape: ConfigShape,
    /// af_packet or af_xdp.
    #[arg(long, default_value = "af_packet")]
    backend: String,
    /// Ingress interface.
    #[arg(long)]
    ingress: String,
    /// Egress interface (two-armed).
    #[arg(long)]
    egress: Option<String>,
    /// Worker cores.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    workers: Vec<usize>,
    /// Next-hop MAC (the sink).
    #[arg(long)]
    next_hop_mac: String,
    /// Directory for the control socket and state.
    #[arg(long)]
    run_dir: String,
    /// Flow-table capacity per worker.
    #[arg(long, default_value_t = 1 << 20)]
    flow_capacity: usize,
}

#[derive(Args)]
struct IoRecordArgs {
    /// What forwarded.
    #[arg(long)]
    name: String,
    /// The path.
    #[arg(long)]
    path: String,
    /// Mpps measured.
    #[arg(long)]
    mpps: f64,
    /// Mpps offered by the generator.
    #[arg(long, default_value_t = 0.0)]
    offered: f64,
    /// Details.
    #[arg(long, default_value = "")]
    detail: String,
    /// Append the JSON record to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct ReportArgs {
    /// The JSON-lines results file.
    #[arg(long = "in")]
    input: PathBuf,
    /// Where to write results.json, results.md and the plots.
    #[arg(long)]
    out_dir: PathBuf,
    /// The commands that produced the results (shown in results.md).
    #[arg(long, default_value = "")]
    commands: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Memory(a) => memory(a),
        Command::Latency(a) => latency(a),
        Command::Maglev(a) => maglev(a),
        Command::Send(a) => send(a),
        Command::Count(a) => count(a),
        Command::Config(a) => config(a),
        Command::IoRecord(a) => io_record(a),
        Command::Frames(a) => frames(a),
        Command::PerPacketRecord(a) => per_packet_record(a),
        Command::Report(a) => report_cmd(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lbfwd-pktgen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
    }
    Ok(mac)
}

fn pin(core: usize) -> Result<(), String> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(format!("cannot pin this thread to core {core}"))
    }
}

/// Allowed cores, highest first.
fn cores_high_first() -> Vec<usize> {
    let mut c: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_else(|| vec![0]);
    c.sort_unstable_by(|a, b| b.cmp(a));
    c
}

fn emit(out: Option<&PathBuf>, machine: &Machine, record: Record) -> Result<(), String> {
    report::emit(out.map(|p| p.as_path()), machine, record).map_err(|e| e.to_string())
}

fn pipeline_config(flows_per_worker: usize) -> PipelineConfig {
    PipelineConfig {
        // Room for every flow at under 50 % load.
        flow_capacity: (flows_per_worker * 2).next_power_of_two().max(1 << 16),
        ..PipelineConfig::default()
    }
}

/// How much of this process is mapped with huge pages (anonymous, shared
/// memory, files), from `/proc/self/smaps_rollup`.
fn huge_pages_in_use() -> String {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    rollup
        .lines()
        .filter(|l| {
            ["AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A processor that does nothing: measures the generator alone.
struct Null;

impl Processor for Null {
    fn begin_burst(&mut self, _now_ns: u64) {}
    #[inline]
    fn process(&mut self, frame: &mut Frame<'_>) -> Disposition {
        std::hint::black_box(frame.data()[0]);
        Disposition::Drop
    }
}

/// ns per packet of the generator alone on `core`.
fn generator_cost(packets: &Arc<Packets>, core: usize) -> Result<f64, String> {
    let handle = {
        let packets = packets.clone();
        std::thread::spawn(move || -> Result<f64, String> {
            pin(core)?;
            let mut q = GenQueue::new(packets, 0);
            let mut null = Null;
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_millis(300) {
                for _ in 0..64 {
                    null.begin_burst(0);
                    n += q.poll(32, |f| null.process(f)).map_err(|e| e.to_string())? as u64;
                }
            }
            Ok(start.elapsed().as_nanos() as f64 / n as f64)
        })
    };
    handle
        .join()
        .map_err(|_| "generator calibration panicked".to_string())?
}

/// On-CPU time (ns) of this process's worker threads (named `lbfwd-w*` by
/// the runtime), from `/proc/self/task/*/schedstat`.
fn worker_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .map(|c| c.starts_with("lbfwd-w"))
                .unwrap_or(false)
        })
        .filter_map(|t| {
            std::fs::read_to_string(t.path().join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Totals of a set of worker counters.
fn counter_totals(counters: &[Arc<WorkerCounters>]) -> (u64, u64, u64, u64) {
    counters.iter().fold((0, 0, 0, 0), |acc, c| {
        (
            acc.0 + c.rx.packets.get(),
            acc.1 + c.tx.packets.get(),
            acc.2 + c.drops_total(),
            acc.3 + c.flow_picks.get(),
        )
    })
}

fn memory(a: MemoryArgs) -> Result<(), String> {
    let machine = Machine::detect();
    let shape = a.shape.spec()?;
    let cores = if a.cores.is_empty() {
        cores_high_first()
    } else {
        a.cores.clone()
    };
    eprintln!("machine: {}", machine.summary());
    let t = Instant::now();
    let resolved = synth::resolved(&shape, None).map_err(|e| e.to_string())?;
    let changed = synth::resolved(&shape, Some(0)).map_err(|e| e.to_string())?;
    eprintln!(
        "config: {} load balancers x {} targets, Maglev M={} ({:.1} s to make)",
        shape.lbs,
        shape.targets,
        shape.maglev_size,
        t.elapsed().as_secs_f64()
    );
    for &workers in &a.workers {
        if workers == 0 || workers > cores.len() {
            return Err(format!(
                "--workers {workers}: between 1 and the {} cores given",
                cores.len()
            ));
        }
        let worker_cores: Vec<usize> = cores[..workers].to_vec();
        let t = Instant::now();
        let dp = Arc::new(
            Dataplane::new(&resolved, synth::underlay(shape.encap), workers)
                .map_err(|e| e.to_string())?,
        );
        eprintln!("tables built in {:.2} s", t.elapsed().as_secs_f64());
        for &flows in &a.flows {
            for &size in &a.sizes {
                let traffic = a.traffic.spec(&shape, flows, size)?;
                let rec = memory_point(
                    &a,
                    &shape,
                    &traffic,
                    &dp,
                    &resolved,
                    &changed,
                    &worker_cores,
                )?;
                emit(a.out.as_ref(), &machine, Record::Throughput(rec))?;
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn memory_point(
    a: &MemoryArgs,
    shape: &SynthSpec,
    traffic: &TrafficSpec,
    dp: &Arc<Dataplane>,
    resolved: &lbfwd_config::model::Resolved,
    changed: &lbfwd_config::model::Resolved,
    cores: &[usize],
) -> Result<Throughput, String> {
    let workers = cores.len();
    let packets: Vec<Arc<Packets>> = (0..workers)
        .map(|w| Packets::build(traffic, w, workers).map(Arc::new))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if let Some(w) = packets.iter().position(|p| p.is_empty()) {
        return Err(format!(
            "worker {w} got no flow: use more flows than workers"
        ));
    }
    let gen_ns = generator_cost(&packets[0], cores[0])?;
    let want_flows: u64 = packets
        .iter()
        .map(|p| p.mix().flows - p.mix().dropped)
        .sum();
    let pcfg = pipeline_config(traffic.flows as usize / workers + 1);
    let store = match &a.flow_dir {
        Some(dir) => {
            // A new table each point: no flow of an earlier point re-attached.
            let _ = std::fs::remove_dir_all(dir);
            Some(FlowStore::open(dir, workers, "memory").map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let pipelines: Vec<Option<Pipeline>> = (0..workers)
        .map(|i| {
            let (reader, counters) = (dp.publisher().reader(i), dp.counters()[i].clone());
            match &store {
                Some(store) => Pipeline::persisted(reader, counters, &pcfg, store, i),
                None => Pipeline::new(reader, counters, &pcfg),
            }
            .map(Some)
            .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let pipelines = Mutex::new(pipelines);
    let queues: Mutex<Vec<Option<GenQueue>>> = Mutex::new(
        packets
            .iter()
            .map(|p| Some(GenQueue::new(p.clone(), 0)))
            .collect(),
    );
    let layout = Layout {
        workers: cores
            .iter()
            .map(|&c| WorkerPlacement {
                core: Some(c),
                ingress: None,
                egress: None,
                queue: None,
            })
            .collect(),
        config: WorkerConfig::default(),
        require_up: false,
    };
    let runtime = Runtime::new(layout).map_err(|e| e.to_string())?;
    let stats = runtime.stats();
    let shutdown = runtime.shutdown_flag();
    let before = counter_totals(dp.counters());
    let stop_churn = AtomicBool::new(false);
    let publishes = AtomicU64::new(0);
    let publish_ns = AtomicU64::new(0);
    // The control thread: off the worker cores when there is a free one.
    let control_core = cores_high_first()
        .into_iter()
        .rev()
        .find(|c| !cores.contains(c))
        .unwrap_or(0);
    let rx_now = || -> u64 { stats.iter().map(|s| s.snapshot().queue.rx_packets).sum() };
    let (packets_in_window, window, cpu_window) =
        std::thread::scope(|s| -> Result<(u64, f64, f64), String> {
            let running = s.spawn(|| {
                runtime.run(
                    |i| {
                        queues.lock().unwrap_or_else(|e| e.into_inner())[i]
                            .take()
                            .ok_or_else(|| IoError::Setup(format!("queue {i} taken twice")))
                    },
                    |i| {
                        pipelines.lock().unwrap_or_else(|e| e.into_inner())[i]
                            .take()
                            .unwrap_or_else(|| unreachable!("one pipeline per worker"))
                    },
                )
            });
            if a.churn_ms > 0 {
                let (stop, publishes, publish_ns) = (&stop_churn, &publishes, &publish_ns);
                s.spawn(move || {
                    let _ = pin(control_core);
                    let mut k = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(a.churn_ms));
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        k += 1;
                        let t = Instant::now();
                        let which = if k % 2 == 1 { changed } else { resolved };
                        if let Err(e) = dp.publish(which) {
                            eprintln!("publish failed: {e}");
                            break;
                        }
                        publish_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        publishes.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            if a.scrape_hz > 0.0 {
                let (stop, dp, stats) = (&stop_churn, Arc::clone(dp), Arc::clone(&stats));
                s.spawn(move || {
                    use lbfwd_forwarder::metrics::{dataplane::DataplaneCollector, Collect};
                    let _ = pin(control_core);
                    let cores = cores.iter().map(|&c| Some(c)).collect();
                    let collector = DataplaneCollector::new(dp, stats, cores, "memory");
                    let period = Duration::from_secs_f64(1.0 / a.scrape_hz);
                    let (mut n, mut bytes, mut busy) = (0u64, 0usize, Duration::ZERO);
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(period);
                        let t = Instant::now();
                        let mut out = lbfwd_forwarder::metrics::Exposition::new();
                        collector.collect(&mut out);
                        bytes = out.as_str().len();
                        busy += t.elapsed();
                        n += 1;
                    }
                    eprintln!(
                        "scraped {n} times ({bytes} bytes, {:.1} ms each)",
                        busy.as_secs_f64() * 1e3 / n.max(1) as f64
                    );
                });
            }
            // Warm up for at least --warmup, and until every accepted flow
            // is in a flow table (the measured window is the steady
            // state), but never longer than a minute.
            let started = Instant::now();
            let picks = || counter_totals(dp.counters()).3 - before.3;
            while started.elapsed() < Duration::from_secs_f64(a.warmup)
                || (picks() < want_flows && started.elapsed() < Duration::from_secs(60))
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!(
                "warm-up {:.1} s; huge pages: {}",
                started.elapsed().as_secs_f64(),
                huge_pages_in_use()
            );
            let (r0, t0, c0) = (rx_now(), Instant::now(), worker_cpu_ns());
            std::thread::sleep(Duration::from_secs_f64(a.seconds));
            let (r1, t1, c1) = (rx_now(), Instant::now(), worker_cpu_ns());
            shutdown.store(true, Ordering::SeqCst);
            stop_churn.store(true, Ordering::SeqCst);
            running
                .join()
                .map_err(|_| "the runtime panicked".to_string())?
                .map_err(|e| e.to_string())?;
            Ok((
                r1 - r0,
                (t1 - t0).as_secs_f64(),
                c1.saturating_sub(c0) as f64 / 1e9,
            ))
        })?;
    // Leave the routing as it was for the next point.
    if publishes.load(Ordering::Relaxed) % 2 == 1 {
        dp.publish(resolved).map_err(|e| e.to_string())?;
    }
    dp.reclaim();
    let after = counter_totals(dp.counters());
    let rx = (after.0 - before.0).max(1) as f64;
    let mpps = packets_in_window as f64 / window / 1e6;
    // Per core: packets over the CPU time the workers actually got (the
    // machine is shared; a worker that waits for its core is not slower).
    let cpu_share = cpu_window / (window * workers as f64);
    let per_core = if cpu_window > 0.0 {
        packets_in_window as f64 / cpu_window / 1e6
    } else {
        mpps / workers as f64
    };
    let ns = 1e3 / per_core;
    let n_pub = publishes.load(Ordering::Relaxed);
    let rec = Throughput {
        sweep: a.sweep.clone(),
        workers,
        cores: cores.to_vec(),
        frame_len: traffic.frame_len,
        flows: traffic.flows,
        vips: traffic.vips,
        lbs: shape.lbs,
        targets: shape.targets,
        maglev_size: shape.maglev_size,
        ipv6_share: traffic.ipv6_share,
        drop_share: traffic.drop_share,
        frag_share: traffic.frag_share,
        churn_ms: a.churn_ms,
        publishes: n_pub,
        publish_ms: if n_pub > 0 {
            publish_ns.load(Ordering::Relaxed) as f64 / n_pub as f64 / 1e6
        } else {
            0.0
        },
        seconds: window,
        packets: packets_in_window,
        mpps,
        cpu_share,
        mpps_per_core: per_core,
        ns_per_packet: ns,
        gen_ns_per_packet: gen_ns,
        pipeline_mpps_per_core: if ns > gen_ns {
            1e3 / (ns - gen_ns)
        } else {
            0.0
        },
        tx_share: (after.1 - before.1) as f64 / rx,
        drop_verdict_share: (after.2 - before.2) as f64 / rx,
        flow_picks: after.3 - before.3,
        encap: a.shape.encap.clone(),
    };
    eprintln!(
        "{} workers, {} B, {} flows: {:.2} Mpps wall ({:.0}% of the cores' time), {:.2} Mpps per core-second, {:.1} ns/pkt, generator {:.1} ns",
        workers, traffic.frame_len, traffic.flows, mpps, cpu_share * 100.0, per_core, ns, gen_ns
    );
    Ok(rec)
}

fn percentiles(h: &Histogram<u64>) -> [u64; 5] {
    [
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    ]
}

fn latency(a: LatencyArgs) -> Result<(), String> {
    let machine = Machine::detect();
    let shape = a.shape.spec()?;
    let traffic = a.traffic.spec(&shape, a.flows, a.size)?;
    if a.burst == 0 || a.burst > GEN_BUFFERS {
        return Err(format!("--burst {}: between 1 and {GEN_BUFFERS}", a.burst));
    }
    let core = a.core.unwrap_or_else(|| cores_high_first()[0]);
    let resolved = synth::resolved(&shape, None).map_err(|e| e.to_string())?;
    let dp =
        Dataplane::new(&resolved, synth::underlay(shape.encap), 1).map_err(|e| e.to_string())?;
    let packets = Arc::new(Packets::build(&traffic, 0, 1).map_err(|e| e.to_string())?);
    let round = packets.len() as u64;
    let burst = a.burst;
    let rounds = a.rounds;
    let (miss, hit) = std::thread::scope(|s| {
        s.spawn(|| -> Result<(Histogram<u64>, Histogram<u64>), String> {
            pin(core)?;
            let mut pipeline = Pipeline::new(
                dp.publisher().reader(0),
                dp.counters()[0].clone(),
                &pipeline_config(traffic.flows as usize),
            )
            .map_err(|e| e.to_string())?;
            let mut q = GenQueue::new(packets.clone(), 0);
            let new_hist = || Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3);
            let mut miss = new_hist().map_err(|e| e.to_string())?;
            let mut hit = new_hist().map_err(|e| e.to_string())?;
            let total = round * (1 + u64::from(rounds));
            let mut sent = 0u64;
            while sent < total {
                q.fill(burst);
                let t0 = Instant::now();
                pipeline.begin(now_ns());
                q.run_filled_with(&mut pipeline);
                let ns = t0.elapsed().as_nanos() as u64;
                let h = if sent < round { &mut miss } else { &mut hit };
                h.saturating_record(ns.max(1));
                sent += burst as u64;
            }
            Ok((miss, hit))
        })
        .join()
        .map_err(|_| "latency thread panicked".to_string())?
    })?;
    for (phase, h) in [("miss", &miss), ("hit", &hit)] {
        if h.is_empty() {
            continue;
        }
        let b = percentiles(h);
        let rec = Latency {
            phase: phase.into(),
            burst,
            bursts: h.len(),
            frame_len: traffic.frame_len,
            flows: traffic.flows,
            core,
            burst_ns: b,
            packet_ns: b.map(|v| v as f64 / burst as f64),
            sweep: a.sweep.clone(),
            lbs: shape.lbs,
            targets: shape.targets,
            encap: a.shape.encap.clone(),
            ipv6_share: traffic.ipv6_share,
        };
        emit(a.out.as_ref(), &machine, Record::Latency(rec))?;
    }
    Ok(())
}

/// Names and uids of `n` synthetic targets.
fn identities(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("nic-{i:05}"),
                format!("6b1c2f0e-{i:04x}-4d3a-9e2b-0123456789ab"),
            )
        })
        .collect()
}

fn backends(ids: &[(String, String)]) -> Vec<MaglevBackend<'_>> {
    ids.iter()
        .map(|(name, uid)| MaglevBackend {
            name,
            uid,
            weight: 1,
        })
        .collect()
}

fn maglev(a: MaglevArgs) -> Result<(), String> {
    let machine = Machine::detect();
    if a.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    for &size in &a.sizes {
        for &n in &a.targets {
            let ids = identities(n);
            let b = backends(&ids);
            let mut times = Vec::with_capacity(a.runs);
            for _ in 0..a.runs {
                let t = Instant::now();
                let table = MaglevTable::build(&b, size).map_err(|e| e.to_string())?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(table);
            }
            times.sort_by(|x, y| x.total_cmp(y));
            emit(
                a.out.as_ref(),
                &machine,
                Record::MaglevBuild(MaglevBuild {
                    size,
                    targets: n,
                    ms_median: times[times.len() / 2],
                    ms_min: times[0],
                    runs: a.runs,
                }),
            )?;
            // One target of n leaves (the middle one).
            emit(
                a.out.as_ref(),
                &machine,
                Record::MaglevMoved(moved(&ids, size, &[n / 2])?),
            )?;
        }
        // Fig. 12: k of 1000 leave.
        let ids = identities(1000);
        for &k in &a.removed {
            if k == 0 || k >= 1000 {
                return Err(format!("--removed {k}: between 1 and 999"));
            }
            // Spread the removed ones over the set, deterministically.
            let gone: Vec<usize> = (0..k).map(|j| j * 1000 / k).collect();
            let m = moved(&ids, size, &gone)?;
            if k == 1 && a.targets.contains(&1000) {
                continue; // already recorded above
            }
            emit(a.out.as_ref(), &machine, Record::MaglevMoved(m))?;
        }
    }
    Ok(())
}

/// Share of entries that change when the targets at `gone` leave.
fn moved(ids: &[(String, String)], size: u32, gone: &[usize]) -> Result<MaglevMoved, String> {
    let before = MaglevTable::build(&backends(ids), size).map_err(|e| e.to_string())?;
    let kept: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(_, id)| id.clone())
        .collect();
    let after = MaglevTable::build(&backends(&kept), size).map_err(|e| e.to_string())?;
    // Entries are indexes into the target list; compare identities.
    let name_before = |e: u32| &ids[e as usize].0;
    let name_after = |e: u32| &kept[e as usize].0;
    let mut changed = 0usize;
    let mut between = 0usize;
    for (&x, &y) in before.entries().iter().zip(after.entries()) {
        if name_before(x) != name_after(y) {
            changed += 1;
            if !gone.contains(&(x as usize)) {
                between += 1;
            }
        }
    }
    let m = f64::from(size);
    Ok(MaglevMoved {
        size,
        targets: ids.len(),
        removed: gone.len(),
        moved_share: changed as f64 / m,
        ideal_share: gone.len() as f64 / ids.len() as f64,
        between_survivors: between as f64 / m,
    })
}

fn send(a: SendArgs) -> Result<(), String> {
    use lbfwd_forwarder::io::af_packet::{AfPacketConfig, AfPacketQueue};
    let shape = a.shape.spec()?;
    let mut traffic = a.traffic.spec(&shape, a.flows, a.size)?;
    traffic.dst_mac = parse_mac(&a.dst_mac)?;
    if let Ok(text) = std::fs::read_to_string(format!("/sys/class/net/{}/address", a.dev)) {
        traffic.src_mac = parse_mac(&text)?;
    }
    if let Some(core) = a.core {
        pin(core)?;
    }
    let packets = Packets::build(&traffic, 0, 1).map_err(|e| e.to_string())?;
    let mut cfg = AfPacketConfig::new(&a.dev);
    cfg.tx_frames = 4096;
    cfg.rx_frames = 64;
    let mut q = AfPacketQueue::open(&cfg).map_err(|e| e.to_string())?;
    let mut frame = vec![0u8; packets.max_len()];
    let (mut i, mut sent, mut full) = (0usize, 0u64, 0u64);
    let start = Instant::now();
    let deadline = Duration::from_secs_f64(a.seconds);
    while start.elapsed() < deadline {
        for _ in 0..a.burst {
            let len = packets.write_frame(i, &mut frame);
            if q.send_copy(&frame[..len]).map_err(|e| e.to_string())? {
                sent += 1;
                i = if i + 1 == packets.len() { 0 } else { i + 1 };
            } else {
                full += 1;
                break;
            }
        }
        q.flush().map_err(|e| e.to_string())?;
    }
    q.flush().map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let stats = q.stats();
    println!(
        "{}",
        serde_json::json!({
            "sent": sent, "seconds": secs, "mpps": sent as f64 / secs / 1e6,
            "ring_full": full, "tx_packets": stats.tx_packets, "tx_dropped": stats.tx_dropped,
            "frame_len": traffic.frame_len, "flows": traffic.flows,
        })
    );
    Ok(())
}

fn read_counter(dev: &str, counter: &str) -> Result<u64, String> {
    let path = format!("/sys/class/net/{dev}/statistics/{counter}");
    std::fs::read_to_string(&path)
        .map_err(|e| format!("{path}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{path}: {e}"))
}

fn count(a: CountArgs) -> Result<(), String> {
    read_counter(&a.dev, &a.counter)?;
    std::thread::sleep(Duration::from_secs_f64(a.warmup));
    let (c0, t0) = (read_counter(&a.dev, &a.counter)?, Instant::now());
    std::thread::sleep(Duration::from_secs_f64(a.seconds));
    let (c1, t1) = (read_counter(&a.dev, &a.counter)?, Instant::now());
    let secs = (t1 - t0).as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"dev": a.dev, "counter": a.counter, "packets": c1 - c0,
            "seconds": secs, "mpps": (c1 - c0) as f64 / secs / 1e6})
    );
    Ok(())
}

fn config(a: ConfigArgs) -> Result<(), String> {
    let shape = a.shape.spec()?;
    let run = RunSettings {
        backend: a.backend,
        ingress: a.ingress,
        egress: a.egress,
        workers: a.workers,
        next_hop_mac: parse_mac(&a.next_hop_mac)?,
        socket: format!("{}/lbfwd.sock", a.run_dir),
        state_dir: format!("{}/state", a.run_dir),
        flow_capacity: a.flow_capacity,
    };
    print!(
        "{}",
        synth::toml_config(&shape, &run).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn io_record(a: IoRecordArgs) -> Result<(), String> {
    emit(
        a.out.as_ref(),
        &Machine::detect(),
        Record::Io(IoRate {
            name: a.name,
            path: a.path,
            mpps: a.mpps,
            offered_mpps: a.offered,
            detail: a.detail,
        }),
    )
}

fn frames(a: FramesArgs) -> Result<(), String> {
    use std::io::Write as _;
    let shape = a.shape.spec()?;
    let traffic = a.traffic.spec(&shape, a.flows, a.size)?;
    let packets = Packets::build(&traffic, 0, 1).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let mut frame = vec![0u8; packets.max_len()];
    for i in 0..packets.len() {
        let len = packets.write_frame(i, &mut frame);
        w.write_all(&(len as u16).to_le_bytes())
            .and_then(|()| w.write_all(&frame[..len]))
            .map_err(|e| format!("{}: {e}", a.out.display()))?;
    }
    w.flush().map_err(|e| format!("{}: {e}", a.out.display()))?;
    eprintln!(
        "{} frames of {} flows to {} VIPs ({} B) written to {}",
        packets.len(),
        a.flows,
        traffic.vips,
        a.size,
        a.out.display()
    );
    Ok(())
}

fn per_packet_record(a: PerPacketArgs) -> Result<(), String> {
    emit(
        a.out.as_ref(),
        &Machine::detect(),
        Record::PerPacket(PerPacket {
            name: a.name,
            case: a.case,
            flows: a.flows,
            ns_per_packet: a.ns,
            raw_ns_per_packet: a.raw_ns,
            baseline_ns: a.baseline_ns,
            round: a.round,
            detail: a.detail,
        }),
    )
}

fn report_cmd(a: ReportArgs) -> Result<(), String> {
    let lines = report::read_lines(&a.input).map_err(|e| e.to_string())?;
    let written = report::write_all(&lines, &a.out_dir, &a.commands).map_err(|e| e.to_string())?;
    for w in written {
        println!("{w}");
    }
    Ok(())
}
