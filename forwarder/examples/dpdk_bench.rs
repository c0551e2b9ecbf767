//! lbfwd's whole load-balancer path on DPDK, one core: two `net_null` ports
//! (ingress and egress, two-armed, one mbuf pool), one pinned worker with
//! the real [`Pipeline`] under [`Runtime::run`], for the issue's comparison
//! with `dpdk-testpmd` in `macswap` mode on the same ports
//! (`scripts/dpdk-bench.sh` runs both).
//!
//! `net_null,copy=0` hands out pool mbufs without touching their data, so
//! [`DpdkPort::fill_pool`] first writes TCP SYN frames into every mbuf:
//! `--templates` flows from clients in 198.18.0.0/15 to the VIPs of
//! `--lbs` load balancers with `--targets` targets each, VXLAN over IPv4.
//! Encapsulation writes only in front of the inner IP packet (the outer
//! headers go into the headroom, the inner Ethernet header over the
//! template's own, which still says IPv4), so a reused mbuf holds a valid
//! frame for the same flow again; `--verify-every` checks that.
//!
//! Each mbuf keeps its template, and the worker's mempool cache (LIFO) hands
//! the same few dozen mbufs out again and again (32 with a burst of 32: the
//! queue sends each full burst before it receives again; "flows picked"
//! says so), so the pipeline sees only that many
//! flows, all flow-table hits in the caches: the I/O pattern of testpmd.
//! `--rotate-flows N` makes the flow set large: after the pipeline is done
//! with a frame, the 5-tuple of the next of N flows is written into its
//! inner headers (16 bytes, checksums precomputed; the inner packet has not
//! moved), so the mbuf comes back from the pool as a frame of that flow.
//! The worker's own burst path, prefetch pass included, thus runs on the
//! many flows as on real traffic; the generator's store (into a line the
//! pipeline just wrote) is counted against lbfwd. (Rewriting the frames
//! after they were received, as this once did, hid the flows from the
//! prefetch pass and measured a path without it: 1.8-2.3 Mpps; so did
//! calling `Pipeline::run` instead of the pipeline's `Processor::process`,
//! which skipped the prefetch's later stages.)
//!
//! Measures a window of `--seconds` after `--warmup`: packets over wall
//! time, and packets over the CPU time the worker thread got in the window
//! (`/proc/self/task/TID/schedstat`), the figure to compare on a shared
//! machine. At the end it checks the verdicts: every received frame
//! transmitted, none dropped, none to the host.
//!
//! ```text
//! cargo build --release -p lbfwd-forwarder --features dpdk --example dpdk_bench
//! target/release/examples/dpdk_bench --core 1 --seconds 10 --json out.json
//! ```
//! Needs root (EAL) and Debian's DPDK 22.11; runs without hugepages.

use clap::Parser;
use lbfwd_config::model::{
    AssignedIp, Destination, Encap, IcmpEcho, LoadBalancerType, MacAddr, PortRange, Protocol,
    Resolved, ResolvedLoadBalancer,
};
use lbfwd_forwarder::counters::{DropReason, WorkerCounters};
use lbfwd_forwarder::frame::Frame;
use lbfwd_forwarder::io::dpdk::{init_eal, DpdkOptions, DpdkPort, PortOptions, PortSpec};
use lbfwd_forwarder::io::{Disposition, IoError, Processor, QueueStats};
use lbfwd_forwarder::pipeline::{Pipeline, PipelineConfig};
use lbfwd_forwarder::runtime::{Layout, Runtime, WorkerPlacement};
use lbfwd_forwarder::tables::{Publisher, TableBuilder, UnderlayParams};
use lbfwd_forwarder::worker::{IdlePolicy, WorkerConfig};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Allowed TCP port of every load balancer (the templates' destination).
const TCP_PORT: u16 = 80;
/// VNI of the benchmark's network.
const VNI: u32 = 100;
/// VXLAN's UDP port.
const VXLAN_PORT: u16 = 4789;
/// Outer IPv4 source (the appliance).
const UNDERLAY_SRC: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 2);
/// Outer Ethernet source and destination.
const SOURCE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xff, 0x02];
const NEXT_HOP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xff, 0x01];
/// Client MAC and the appliance's MAC in the templates.
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xc1, 0x01];
const APPLIANCE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xaa, 0x01];
/// Ethernet + IPv4 + TCP of a template; the rest of the frame is padding.
const HEADERS_LEN: usize = 14 + 20 + 20;
/// VXLAN over IPv4 puts this much in front of the inner IP packet.
const VXLAN_OUTER: usize = 14 + 20 + 8 + 8 + 14;

#[derive(Parser, Debug)]
#[command(about = "lbfwd's full load-balancer path on two DPDK net_null ports, one core")]
struct Args {
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of forwarding before the measurement starts (at least
    /// until every rotated flow was seen once).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Core of the one worker thread.
    #[arg(long, default_value_t = 1)]
    core: usize,
    /// Load balancers (one IPv4 VIP each).
    #[arg(long, default_value_t = 1000)]
    lbs: usize,
    /// Targets per load balancer.
    #[arg(long, default_value_t = 100)]
    targets: usize,
    /// Maglev table size of every load balancer (a prime).
    #[arg(long, default_value_t = 65537)]
    maglev_size: u32,
    /// Distinct template frames (flows) written round robin into the pool.
    #[arg(long, default_value_t = 8192)]
    templates: usize,
    /// Frame length (the net_null `size=`; at least 60).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Give each frame the 5-tuple of the next of N flows before the
    /// pipeline (0: the templates as they are).
    #[arg(long, default_value_t = 0)]
    rotate_flows: u32,
    /// Check every Nth transmitted frame completely (0: never).
    #[arg(long, default_value_t = 4096)]
    verify_every: u64,
    /// Frames per receive burst (per port).
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Flow-table capacity (a power of two). Default: with
    /// `--rotate-flows N`, what `lbfwd-pktgen memory` gives N flows (twice
    /// N rounded up to a power of two, at least 65536), so that the row
    /// and the memory path beside it measure the same table; else 2^20.
    #[arg(long)]
    flow_capacity: Option<usize>,
    /// EAL memory in MiB (no hugepages).
    #[arg(long, default_value_t = 1024)]
    memory_mb: u32,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The IPv4 VIP of load balancer `i`.
fn vip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0A80_0000u32 + i as u32)
}

/// The underlay address of target `t` of load balancer `lb`.
fn target_underlay(targets: usize, lb: usize, t: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0A00_0000u32 + (lb * targets + t) as u32 + 1)
}

/// The inner (VXLAN) MAC of target `t` of load balancer `lb`.
fn target_mac(targets: usize, lb: usize, t: usize) -> [u8; 6] {
    let b = ((lb * targets + t) as u32).to_be_bytes();
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

/// `lbs` public load balancers, one VIP each, TCP 80 allowed, `targets`
/// weight-1 targets each.
fn resolved(args: &Args) -> Resolved {
    let load_balancers = (0..args.lbs)
        .map(|i| ResolvedLoadBalancer {
            name: format!("lb-{i:05}"),
            lb_type: LoadBalancerType::Public,
            network: "bench".into(),
            vni: VNI,
            ips: vec![AssignedIp {
                addr: IpAddr::V4(vip(i)),
                pool: Some("public".into()),
            }],
            ports: vec![PortRange {
                protocol: Protocol::Tcp,
                first: TCP_PORT,
                last: TCP_PORT,
            }],
            icmp_echo: IcmpEcho::Drop,
            maglev_table_size: args.maglev_size,
            destinations: (0..args.targets)
                .map(|t| Destination {
                    name: format!("nic-{i:05}-{t:04}"),
                    uid: format!("6b1c2f0e-{i:04x}-4d3a-9e2b-{t:012x}"),
                    underlay: IpAddr::V4(target_underlay(args.targets, i, t)),
                    mac: Some(MacAddr(target_mac(args.targets, i, t))),
                    weight: 1,
                })
                .collect(),
        })
        .collect();
    Resolved { load_balancers }
}

/// The Internet checksum of `data` (folded, complemented), starting from
/// the partial sum `sum`.
fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for pair in data.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        let lo = pair.get(1).map_or(0, |&b| u32::from(b));
        sum += hi | lo;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One flow of the benchmark: client address and port, VIP.
#[derive(Clone, Copy, Debug)]
struct Tuple {
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
}

/// Flow `i`: a client address in 198.18.0.0/15 from a multiplicative hash
/// of `i`, source port `1024 + i % 64000`, the VIP of load balancer
/// `i % lbs`, TCP port 80.
fn tuple(i: u64, lbs: usize) -> Tuple {
    let client = 0xC612_0000u32 + ((i.wrapping_mul(2_654_435_761) >> 7) as u32 & 0x1_ffff);
    Tuple {
        src: client.to_be_bytes(),
        dst: vip((i % lbs as u64) as usize).octets(),
        sport: 1024 + (i % 64_000) as u16,
    }
}

/// A TCP SYN frame of `size` bytes (padding after the 54 header bytes) for
/// `t`, checksums right.
fn template(t: &Tuple, size: usize) -> Vec<u8> {
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&APPLIANCE_MAC);
    f[6..12].copy_from_slice(&CLIENT_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&t.src);
    ip[16..20].copy_from_slice(&t.dst);
    let c = checksum(ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&t.sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&TCP_PORT.to_be_bytes());
    tcp[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64_240u16.to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&t.src);
    pseudo[4..8].copy_from_slice(&t.dst);
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&20u16.to_be_bytes());
    let c = checksum(tcp, u32::from(!checksum(&pseudo, 0)));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f
}

/// What `--rotate-flows` writes into a frame: source and destination
/// address with the IPv4 checksum, source and destination port with the TCP
/// checksum (frame bytes 24..34, 34..36 and 50..52).
#[derive(Clone, Copy, Debug)]
struct Rewrite {
    /// IPv4 checksum, source, destination (frame bytes 24..34).
    ip: [u8; 10],
    /// TCP source port (frame bytes 34..36).
    sport: [u8; 2],
    /// TCP checksum (frame bytes 50..52).
    tcp_csum: [u8; 2],
}

impl Rewrite {
    fn of(t: &Tuple, size: usize) -> Self {
        let f = template(t, size);
        let mut ip = [0u8; 10];
        ip.copy_from_slice(&f[24..34]);
        Rewrite {
            ip,
            sport: [f[34], f[35]],
            tcp_csum: [f[50], f[51]],
        }
    }
}

/// Counts of the transmitted frames checked by [`Bench`].
#[derive(Debug, Default)]
struct Verified {
    ok: AtomicU64,
    bad: AtomicU64,
    /// The first bad frame, as hex, and why.
    first_bad: Mutex<Option<String>>,
}

/// The pipeline, plus the optional flow rotation before it and the sampled
/// check of its output after it.
struct Bench {
    pipeline: Pipeline,
    rotate: Box<[Rewrite]>,
    next: usize,
    verify_every: u64,
    until_verify: u64,
    targets: usize,
    verified: Arc<Verified>,
}

impl Bench {
    /// Checks one encapsulated frame: outer Ethernet/IPv4/UDP/VXLAN as the
    /// underlay says, the inner Ethernet toward the target's MAC, the inner
    /// IP packet intact (its checksum) and addressed to the VIP of the load
    /// balancer that owns the target.
    fn check(&self, f: &[u8]) -> Result<(), String> {
        let rd16 = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
        if f.len() != VXLAN_OUTER + 40 {
            return Err(format!("length {}", f.len()));
        }
        if f[0..6] != NEXT_HOP_MAC || f[6..12] != SOURCE_MAC || rd16(12) != 0x0800 {
            return Err("outer Ethernet".into());
        }
        let outer = &f[14..34];
        if outer[0] != 0x45 || outer[9] != 17 || checksum(outer, 0) != 0 {
            return Err("outer IPv4 header (version, protocol or checksum)".into());
        }
        if outer[12..16] != UNDERLAY_SRC.octets() || usize::from(rd16(16)) != f.len() - 14 {
            return Err("outer IPv4 source or length".into());
        }
        let underlay = u32::from_be_bytes([outer[16], outer[17], outer[18], outer[19]]);
        let n = underlay
            .checked_sub(0x0A00_0001)
            .ok_or("outer destination is no target")? as usize;
        let (lb, t) = (n / self.targets, n % self.targets);
        let udp = 34;
        if rd16(udp) & 0xC000 != 0xC000 || rd16(udp + 2) != VXLAN_PORT {
            return Err("outer UDP ports".into());
        }
        let vx = udp + 8;
        let vni = u32::from_be_bytes([0, f[vx + 4], f[vx + 5], f[vx + 6]]);
        if f[vx] != 0x08 || vni != VNI {
            return Err("VXLAN header".into());
        }
        let inner_eth = vx + 8;
        if f[inner_eth..inner_eth + 6] != target_mac(self.targets, lb, t)
            || rd16(inner_eth + 12) != 0x0800
        {
            return Err("inner Ethernet".into());
        }
        let inner = &f[inner_eth + 14..];
        if checksum(&inner[..20], 0) != 0 {
            return Err("inner IPv4 checksum (template damaged)".into());
        }
        if inner[16..20] != vip(lb).octets()
            || inner[9] != 6
            || rd16(inner_eth + 14 + 22) != TCP_PORT
        {
            return Err(format!(
                "inner packet not to the VIP of lb-{lb:05}, TCP {TCP_PORT}"
            ));
        }
        Ok(())
    }
}

impl Bench {
    /// Writes the 5-tuple of the next rotated flow into a frame the
    /// pipeline is done with, at the place it had when it was received
    /// (`received_at`, the buffer offset of its first byte).
    /// Encapsulation writes only in front of the inner IP packet, so the
    /// inner IPv4 and TCP headers are still where they were; the mbuf goes
    /// back to the pool and is received again as a frame of that flow. The
    /// flows therefore change before the burst is received, and the
    /// worker's burst path (prefetch pass first) sees every frame's real
    /// 5-tuple: rewriting a frame after it was received, before
    /// `Pipeline::run`, would hide the new flow from the prefetch pass.
    #[inline(always)]
    fn rotate_next(&mut self, frame: &mut Frame<'_>, received_at: usize) {
        let r = &self.rotate[self.next];
        self.next += 1;
        if self.next == self.rotate.len() {
            self.next = 0;
        }
        let (buf, _, _) = frame.raw_mut();
        if let Some(d) = buf.get_mut(received_at + 24..received_at + 52) {
            d[0..10].copy_from_slice(&r.ip);
            d[10..12].copy_from_slice(&r.sport);
            d[26..28].copy_from_slice(&r.tcp_csum);
        }
    }
}

impl Processor for Bench {
    fn begin_burst(&mut self, now_ns: u64) {
        self.pipeline.begin(now_ns);
    }

    #[inline(always)]
    fn process(&mut self, frame: &mut Frame<'_>) -> Disposition {
        let received_at = frame.head();
        // The pipeline as the worker drives it: its `Processor::process`
        // runs the later stages of the burst prefetch (flow slots, then the
        // target's entry, counters and template a few frames ahead) before
        // `Pipeline::run`; calling `run` directly would skip them.
        let disposition = Processor::process(&mut self.pipeline, frame);
        if self.verify_every > 0 {
            self.until_verify -= 1;
            if self.until_verify == 0 {
                self.until_verify = self.verify_every;
                let result = match disposition {
                    Disposition::Tx => self.check(frame.data()),
                    other => Err(format!("disposition {other:?}")),
                };
                match result {
                    Ok(()) => {
                        self.verified.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(why) => {
                        self.verified.bad.fetch_add(1, Ordering::Relaxed);
                        let mut first = self
                            .verified
                            .first_bad
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        if first.is_none() {
                            let hex: String =
                                frame.data().iter().map(|b| format!("{b:02x}")).collect();
                            *first = Some(format!("{why}: {hex}"));
                        }
                    }
                }
            }
        }
        if !self.rotate.is_empty() {
            self.rotate_next(frame, received_at);
        }
        disposition
    }

    fn prefetch(&mut self, frame: &Frame<'_>) {
        self.pipeline.prefetch(frame);
    }

    fn wants_prefetch(&self) -> bool {
        self.pipeline.wants_prefetch()
    }

    fn drain_extra(&mut self, emit: &mut dyn FnMut(&[u8]) -> bool) {
        self.pipeline.drain_extra(emit);
    }
}

/// CPU time in ns of this process's thread named `name`:
/// `/proc/self/task/TID/schedstat`, or `stat` ticks where schedstat is 0.
fn thread_cpu_ns(name: &str) -> Option<u64> {
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = entry.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let sched = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        if let Some(ns) = sched.split_whitespace().next().and_then(|s| s.parse().ok()) {
            if ns > 0 {
                return Some(ns);
            }
        }
        // Fields after the parenthesised name; utime and stime are 14, 15.
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // USER_HZ is 100 on Linux.
        return Some(ticks * 10_000_000);
    }
    None
}

/// The worker's counters and CPU time at one moment.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    queue: QueueStats,
    cpu_ns: u64,
}

fn sample(stats: &lbfwd_forwarder::worker::WorkerStats) -> Result<Sample, String> {
    Ok(Sample {
        at: Instant::now(),
        queue: stats.snapshot().queue,
        cpu_ns: thread_cpu_ns("lbfwd-w0").ok_or("the worker thread lbfwd-w0 is not running")?,
    })
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("dpdk_bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.size < HEADERS_LEN + 6 || args.size > 1500 {
        return Err(format!("--size {} is out of range (60 to 1500)", args.size));
    }
    if args.templates == 0 || args.lbs == 0 || args.targets == 0 {
        return Err("--templates, --lbs and --targets must be at least 1".into());
    }
    if args.seconds == 0 {
        return Err("--seconds must be at least 1".into());
    }

    // Tables: the control plane's own build path.
    let t0 = Instant::now();
    let underlay = UnderlayParams {
        encap: Encap::Vxlan { port: VXLAN_PORT },
        source_ipv4: Some(UNDERLAY_SRC),
        source_ipv6: None,
        source_mac: SOURCE_MAC,
        next_hop_mac: NEXT_HOP_MAC,
        mtu: 1500,
    };
    let (tables, _) = TableBuilder::new()
        .build(&resolved(args), &underlay, 1)
        .map_err(|e| format!("building the tables: {e}"))?;
    let build_s = t0.elapsed().as_secs_f64();
    let publisher = Publisher::new(tables, 1);
    let counters = Arc::new(WorkerCounters::new());
    eprintln!(
        "dpdk_bench: tables for {} load balancers x {} targets (Maglev M = {}) built in {build_s:.1} s",
        args.lbs, args.targets, args.maglev_size
    );

    // EAL and the two ports.
    init_eal(&DpdkOptions {
        no_huge: true,
        memory_mb: Some(args.memory_mb),
        extra_eal_args: vec!["--log-level=lib.eal:warning".into()],
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let mut port_opts = PortOptions::new(1);
    port_opts.burst = args.burst as u16;
    let in_dev = format!("net_null0,copy=0,size={}", args.size);
    let eg_dev = format!("net_null1,copy=0,size={}", args.size);
    let (ingress, egress) = DpdkPort::open_two_armed(
        PortSpec::Vdev(&in_dev),
        PortSpec::Vdev(&eg_dev),
        &port_opts,
        &port_opts,
    )
    .map_err(|e| e.to_string())?;
    let templates: Vec<Vec<u8>> = (0..args.templates as u64)
        .map(|i| template(&tuple(i, args.lbs), args.size))
        .collect();
    let refs: Vec<&[u8]> = templates.iter().map(|t| t.as_slice()).collect();
    let filled = ingress.fill_pool(&refs).map_err(|e| e.to_string())?;
    let rotate: Box<[Rewrite]> = (0..u64::from(args.rotate_flows))
        .map(|i| Rewrite::of(&tuple(i, args.lbs), args.size))
        .collect();
    eprintln!(
        "dpdk_bench: ports {} and {} ({}), {filled} mbufs filled with {} templates{}",
        ingress.summary().name,
        egress.summary().name,
        ingress.summary().driver,
        args.templates.min(filled as usize),
        if rotate.is_empty() {
            String::new()
        } else {
            format!(", 5-tuples rotated over {} flows", rotate.len())
        }
    );

    let runtime = Runtime::new(Layout {
        workers: vec![WorkerPlacement {
            core: Some(args.core),
            ingress: None,
            egress: None,
            queue: None,
        }],
        config: WorkerConfig {
            burst: args.burst,
            idle: IdlePolicy::BusyPoll,
            ..WorkerConfig::default()
        },
        require_up: false,
    })
    .map_err(|e| e.to_string())?;
    let shutdown = runtime.shutdown_flag();
    let stats = runtime.stats();
    let verified = Arc::new(Verified::default());
    let pipeline_config = PipelineConfig {
        flow_capacity: args.flow_capacity.unwrap_or(if args.rotate_flows > 0 {
            (2 * args.rotate_flows as usize)
                .next_power_of_two()
                .max(1 << 16)
        } else {
            1 << 20
        }),
        ..PipelineConfig::default()
    };
    let setup_error: Mutex<Option<String>> = Mutex::new(None);

    let (report, window) = std::thread::scope(|s| {
        let measure = s.spawn(|| -> Result<(Sample, Sample), String> {
            // Wait for the worker to run, warm up, then measure.
            let start = Instant::now();
            while !stats[0].is_running() {
                if start.elapsed() > Duration::from_secs(30) || shutdown.load(Ordering::Relaxed) {
                    return Err("the worker did not start".into());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Warm up for --warmup, and until every rotated flow is in the
            // flow table (the window measures established flows), but
            // never longer than a minute.
            let warm = Instant::now();
            while warm.elapsed() < Duration::from_secs(args.warmup)
                || (counters.flow_picks.get() < u64::from(args.rotate_flows)
                    && warm.elapsed() < Duration::from_secs(60))
            {
                if shutdown.load(Ordering::Relaxed) {
                    return Err("the worker stopped during the warm-up".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let a = sample(&stats[0]);
            std::thread::sleep(Duration::from_secs(args.seconds));
            let b = sample(&stats[0]);
            shutdown.store(true, Ordering::SeqCst);
            Ok((a?, b?))
        });
        let report = runtime.run(
            |i| {
                ingress
                    .queue_two_armed(i, &egress)
                    .map_err(|e| IoError::Setup(e.to_string()))
            },
            |i| {
                let pipeline =
                    Pipeline::new(publisher.reader(i), Arc::clone(&counters), &pipeline_config)
                        .unwrap_or_else(|e| {
                            // Runtime::run wants a processor; the measurement thread
                            // is told through the shutdown flag.
                            *setup_error.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(e.to_string());
                            shutdown.store(true, Ordering::SeqCst);
                            Pipeline::new(
                                publisher.reader(i),
                                Arc::clone(&counters),
                                &PipelineConfig::default(),
                            )
                            .expect("the default pipeline configuration is valid")
                        });
                Bench {
                    pipeline,
                    rotate: rotate.clone(),
                    next: 0,
                    verify_every: args.verify_every,
                    until_verify: args.verify_every.max(1),
                    targets: args.targets,
                    verified: Arc::clone(&verified),
                }
            },
        );
        shutdown.store(true, Ordering::SeqCst);
        let window = measure
            .join()
            .unwrap_or_else(|_| Err("the measurement thread panicked".into()));
        (report, window)
    });
    if let Some(e) = setup_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(format!("pipeline: {e}"));
    }
    let report = report.map_err(|e| e.to_string())?;
    let (a, b) = window?;

    // The window.
    let packets = b.queue.rx_packets - a.queue.rx_packets;
    let wall = b.at.duration_since(a.at).as_secs_f64();
    let cpu = (b.cpu_ns - a.cpu_ns) as f64 / 1e9;
    let mpps = packets as f64 / wall / 1e6;
    let mpps_cpu = packets as f64 / cpu / 1e6;
    let ns_per_packet = cpu * 1e9 / packets.max(1) as f64;

    // The whole run: every frame encapsulated and sent.
    let q = report.total();
    let c = &counters;
    let (rx, _) = c.rx.snapshot();
    let (tx, _) = c.tx.snapshot();
    let (host, _) = c.host.snapshot();
    let drops = c.drops_total();
    let drop_reasons: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| c.drops[**r as usize].get() > 0)
        .map(|r| format!("{}={}", r.as_str(), c.drops[*r as usize].get()))
        .collect();
    let to_targets: u64 = c.targets.iter().map(|t| t.packets.get()).sum();
    let flows = c.flow_picks.get();
    let ok = verified.ok.load(Ordering::Relaxed);
    let bad = verified.bad.load(Ordering::Relaxed);

    println!(
        "lbfwd full LB: {mpps:.2} Mpps wall clock, {mpps_cpu:.2} Mpps per CPU-second of the \
         worker ({packets} packets, {wall:.2} s wall, {cpu:.2} s CPU, {ns_per_packet:.1} ns/packet; \
         2 ports x net_null, 1 core, burst {}; {} LBs x {} targets, VXLAN/IPv4, {} B frames)",
        args.burst, args.lbs, args.targets, args.size
    );
    println!(
        "verdicts (whole run): rx {rx}, tx {tx}, host {host}, dropped {drops}{}; to targets {to_targets}; \
         flows picked {flows}; queue rx {} tx {} tx_dropped {} freed {} rx_errors {}; \
         frames checked {ok} ok, {bad} bad",
        if drop_reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", drop_reasons.join(", "))
        },
        q.rx_packets,
        q.tx_packets,
        q.tx_dropped,
        q.freed,
        q.rx_errors
    );

    let mut problems = Vec::new();
    if rx == 0 || tx != rx || to_targets != rx {
        problems.push(format!(
            "tx {tx} and to-targets {to_targets} differ from rx {rx}"
        ));
    }
    if drops != 0 || host != 0 {
        problems.push(format!("{drops} dropped, {host} to the host"));
    }
    if q.tx_packets != q.rx_packets || q.tx_dropped != 0 || q.rx_errors != 0 || q.freed != 0 {
        problems.push("the queue did not transmit every frame it received".into());
    }
    if bad > 0 {
        let first = verified
            .first_bad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        problems.push(format!("{bad} checked frames were wrong; first: {first}"));
    }
    if args.verify_every > 0 && ok == 0 {
        problems.push("no frame was checked".into());
    }

    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "name": "lbfwd full LB",
            "path": "net_null",
            "mpps": mpps,
            "mpps_per_cpu_second": mpps_cpu,
            "ns_per_packet": ns_per_packet,
            "packets": packets,
            "wall_s": wall,
            "cpu_s": cpu,
            "core": args.core,
            "burst": args.burst,
            "frame_len": args.size,
            "lbs": args.lbs,
            "targets": args.targets,
            "maglev_size": args.maglev_size,
            "encap": "vxlan",
            "templates": args.templates,
            "rotate_flows": args.rotate_flows,
            "flows_picked": flows,
            "table_build_s": build_s,
            "verdicts": {
                "rx": rx, "tx": tx, "host": host, "dropped": drops, "to_targets": to_targets,
                "checked_ok": ok, "checked_bad": bad,
            },
            "ok": problems.is_empty(),
        });
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if !problems.is_empty() {
        return Err(format!("the run was not clean: {}", problems.join("; ")));
    }
    drop(egress);
    drop(ingress);
    Ok(())
}
