//! New-flow floods must not cost established flows (`[flow]
//! new_flow_rate`, the flood guard of `forwarder/src/flow/guard.rs`).
//!
//! Kept-alive TCP connections run through lbfwd on a small flow table;
//! trafgen floods the VIP with SYNs from random sources (198.18.0.0/16,
//! random ports), injected on the router's side of the lb node's link;
//! during the flood a target (be3) is added to the load balancer. With the
//! guard on, no connection breaks and `lbctl stats` shows the guard
//! engaged; with it off (`new_flow_rate = 0`), the flood evicts the
//! established flows, the routing change moves some of them to be3, which
//! resets them: the test can fail. Both print what the flood cost the
//! established traffic per phase (request latency, lost and slow requests,
//! TCP retransmissions).
//!
//! The verdict tells a BROKEN connection (reset, closed, failed, or answered
//! by another target: what the guard must prevent) from a STALLED one (a
//! request answered only after [`STALL`] or more: at rates above what lbfwd
//! receives here, the receive ring drops packets of every flow alike and
//! TCP backs off, which no flow table can help). A request may take
//! [`REQUEST_TIMEOUT`]; after the flood every connection that did not break
//! must answer again ([`RECOVERY`] at most), on the target it started on:
//! one that does not is UNRECOVERED, a failure like a broken one.
//!
//! Environment:
//! - `LBFWD_FLOOD_PPS`: `max` (trafgen as fast as it sends, one process) or
//!   a rate in frames per second; default [`FLOOD_PPS`], what a debug lbfwd
//!   receives here without loss (the CI mode).
//! - `LBFWD_FLOOD_BACKEND`: `af_packet` (default) or `af_xdp`.
//! - `LBFWD_FLOOD_CPUS=T:W`: trafgen pinned to the cores `T`, lbfwd's
//!   workers on the cores `W` (comma-separated lists, e.g. `0:1`); default:
//!   lbfwd's worker on the last core (topo.sh), trafgen's one process on
//!   the first (trafgen pins its process N to core N).
//! - `LBFWD_FLOOD_CAPACITY`: the flow table's entries per worker instead
//!   of [`CAPACITY`] ([`CAPACITY_AT_MAX`] at `max`).
//! - `LBFWD_E2E_BIN`: a prebuilt lbfwd (`scripts/flood.sh` runs this test
//!   on release binaries at `max`, guard on and off).
//!
//! Run: `flock /tmp/lbfwd-netns.lock cargo test -p lbfwd-tests --test flood
//! -- --nocapture --test-threads=1` as root (needs trafgen, from
//! netsniff-ng).

use lbfwd_tests::cmd;
use lbfwd_tests::{
    lbfwd_binaries, python, require_root, serial, workspace_root, Backend, ConfigOptions, Lbfwd,
    Node, Topology, TopologyInfo,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Flow-table entries per worker at a given rate: small, so that the flood
/// fills it many times over per second.
const CAPACITY: u32 = 256;
/// Flow-table entries per worker at `max`. The guard keeps an established
/// entry as long as fewer than 8 admitted new flows land in its bucket
/// (one of `capacity / 8`) between two of its packets: about `capacity /
/// new_flow_rate` seconds (12.8 s with 256 entries). At `max` a connection
/// can be stalled for the whole flood and then some (TCP back-off), up to
/// [`REQUEST_TIMEOUT`]; 2048 entries make that horizon 102 s. Without the
/// guard the flood still replaces a bucket's 8 entries within milliseconds.
const CAPACITY_AT_MAX: u32 = 2048;
/// The guard's rate (new flows per second per worker) in the guarded run.
/// At 20 per second, each of the 256-entry table's 32 buckets takes a new
/// entry about every 1.6 s, so 8 of them take about 13 s, while an
/// established connection here refreshes its entry every 100 ms, or after
/// a few seconds at worst when the loaded machine delays it. (At 100 per
/// second, 8 inserts took 2.5 s, and one connection in about two runs was
/// evicted in such a pause and, no longer admitted during the flood, moved
/// to be3.)
const GUARD_RATE: u32 = 20;
/// The guard's burst in the guarded run.
const GUARD_BURST: u32 = 10;
/// The default flood rate: what lbfwd (a debug build, on a core shared
/// with the rest of the test) receives here without its receive ring
/// overflowing.
const FLOOD_PPS: u32 = 10_000;
/// Kept-alive connections that must not break.
const CONNS: u32 = 24;
/// Seconds between two requests of one connection.
const INTERVAL: &str = "0.1";
/// How long each measured phase lasts.
const PHASE: Duration = Duration::from_secs(3);
/// How long one request may take before its connection counts as broken:
/// longer than TCP's retransmission back-off on a saturated machine
/// (16-32 s between two tries).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A request answered this late or later stalled.
const STALL: Duration = Duration::from_secs(1);
/// How long after the flood every connection that did not break has to
/// answer again.
const RECOVERY: Duration = Duration::from_secs(70);
/// How long trafgen has to end after SIGINT before it gets SIGKILL.
const TRAFGEN_GRACE: Duration = Duration::from_secs(2);

/// The flood's rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rate {
    /// trafgen's `--rate=Npps`.
    Pps(u32),
    /// As fast as trafgen's one process sends.
    Max,
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Pps(n) => write!(f, "{n} pps"),
            Rate::Max => f.write_str("trafgen's highest rate"),
        }
    }
}

/// Cores for trafgen and lbfwd (`LBFWD_FLOOD_CPUS`).
#[derive(Clone, Debug)]
struct Cpus {
    /// trafgen's cores (a `taskset -c` list).
    trafgen: String,
    /// lbfwd's worker cores (a TOML array's items).
    lbfwd: String,
}

/// What the environment asks for.
#[derive(Clone, Debug)]
struct Mode {
    rate: Rate,
    backend: Backend,
    cpus: Option<Cpus>,
}

impl Mode {
    /// From `LBFWD_FLOOD_PPS`, `LBFWD_FLOOD_BACKEND` and `LBFWD_FLOOD_CPUS`;
    /// panics on a value it does not understand.
    fn from_env() -> Mode {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let rate = match var("LBFWD_FLOOD_PPS").as_deref() {
            None => Rate::Pps(FLOOD_PPS),
            Some("max") => Rate::Max,
            Some(n) => match n.parse::<u32>() {
                Ok(n) if n > 0 => Rate::Pps(n),
                _ => panic!("LBFWD_FLOOD_PPS must be `max` or a rate above 0, got {n:?}"),
            },
        };
        let backend = match var("LBFWD_FLOOD_BACKEND").as_deref() {
            None | Some("af_packet") => Backend::AfPacket,
            Some("af_xdp") => Backend::AfXdp,
            Some(b) => panic!("LBFWD_FLOOD_BACKEND must be af_packet or af_xdp, got {b:?}"),
        };
        let cpus = var("LBFWD_FLOOD_CPUS").map(|v| parse_cpus(&v));
        Mode {
            rate,
            backend,
            cpus,
        }
    }

    /// The flow table's capacity: `LBFWD_FLOOD_CAPACITY`, or the one for
    /// this rate.
    fn capacity(&self) -> u32 {
        if let Ok(v) = std::env::var("LBFWD_FLOOD_CAPACITY") {
            return v.parse().unwrap_or_else(|_| {
                panic!("LBFWD_FLOOD_CAPACITY must be a number of entries, got {v:?}")
            });
        }
        match self.rate {
            Rate::Pps(_) => CAPACITY,
            Rate::Max => CAPACITY_AT_MAX,
        }
    }
}

/// `T:W`, two comma-separated lists of cores below the machine's count.
fn parse_cpus(v: &str) -> Cpus {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let list = |s: &str| -> String {
        let ids: Vec<usize> = s
            .split(',')
            .map(|c| {
                c.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&c| c < cores)
                    .unwrap_or_else(|| {
                        panic!(
                            "LBFWD_FLOOD_CPUS={v:?}: {c:?} is not a core of this machine (0..{cores})"
                        )
                    })
            })
            .collect();
        ids.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    match v.split_once(':') {
        Some((t, w)) => Cpus {
            trafgen: list(t),
            lbfwd: list(w),
        },
        None => panic!("LBFWD_FLOOD_CPUS must be TRAFGEN_CORES:LBFWD_CORES (e.g. 0:1), got {v:?}"),
    }
}

/// What one run measured.
#[derive(Debug)]
struct Outcome {
    /// Connections that broke (failed, or answered by another target).
    broken: Vec<String>,
    /// Connections that did not break but did not answer again after the
    /// flood within [`RECOVERY`].
    unrecovered: Vec<String>,
    /// Connections of the probe.
    conns: usize,
    /// The guard's part of `lbctl -o json stats` during the flood, after
    /// be3 was added.
    guard_during: Value,
    /// `lbctl stats` (text) at the same time.
    stats_text: String,
    /// Frames per second the lb node's interface received in the flood.
    offered_pps: f64,
    /// Frames per second lbfwd received (its `rx` counter) in the flood.
    received_pps: f64,
}

#[test]
fn flood_with_the_guard_breaks_no_connection() {
    let guard = format!("new_flow_rate = {GUARD_RATE}\nnew_flow_burst = {GUARD_BURST}\n");
    let Some(out) = run(
        "flood_with_the_guard_breaks_no_connection",
        "floodg",
        &guard,
    ) else {
        return;
    };
    assert!(
        out.broken.is_empty() && out.unrecovered.is_empty(),
        "under the flood with the guard on, of {} kept-alive connections {} broke: {:#?}\n\
         and {} did not recover after the flood: {:#?}",
        out.conns,
        out.broken.len(),
        out.broken,
        out.unrecovered.len(),
        out.unrecovered
    );
    let g = &out.guard_during;
    assert!(
        g["engaged_workers"]
            .as_array()
            .is_some_and(|w| !w.is_empty()),
        "the guard was not engaged during the flood: {g}"
    );
    assert!(
        g["not_remembered"].as_u64().unwrap_or(0) > 10_000,
        "the guard did not keep the flood out of the flow table: {g}"
    );
    assert_eq!(g["dropped"], 0, "{g}");
    let line = format!(
        "limit {GUARD_RATE}/s per worker (burst {GUARD_BURST}), above it forward; not remembered"
    );
    assert!(
        out.stats_text.contains("flow guard  ENGAGED on worker ") && out.stats_text.contains(&line),
        "{}",
        out.stats_text
    );
}

#[test]
fn flood_without_the_guard_breaks_connections() {
    let Some(out) = run(
        "flood_without_the_guard_breaks_connections",
        "floodo",
        "new_flow_rate = 0\n",
    ) else {
        return;
    };
    assert!(
        !out.broken.is_empty(),
        "no connection broke with the guard off: the flood ({:.0} frames/s offered, {:.0} \
         received by lbfwd) did not evict the established flows, so the guarded test proves \
         nothing",
        out.offered_pps,
        out.received_pps
    );
    let g = &out.guard_during;
    assert_eq!(g["not_remembered"], 0, "{g}");
    assert!(
        out.stats_text.contains("flow guard  off"),
        "{}",
        out.stats_text
    );
}

/// One run: network `prefix`, lbfwd with `[flow]` `guard` keys, the
/// kept-alive connections, the flood, be3 added during it, the verdict
/// after the flood. `None`: skipped (not root, no trafgen, or lbfwd built
/// without the backend asked for).
fn run(test: &str, prefix: &str, guard: &str) -> Option<Outcome> {
    if !require_root(test) {
        return None;
    }
    let mode = Mode::from_env();
    if cmd::run(
        Command::new("trafgen").arg("--version"),
        Duration::from_secs(5),
    )
    .is_err()
    {
        eprintln!("\n!!!!! SKIPPED {test}: no trafgen (Debian package netsniff-ng) !!!!!\n");
        return None;
    }
    let started = Instant::now();
    let load_before = loadavg();
    let Some(bins) = lbfwd_binaries(mode.backend).unwrap_or_else(|e| panic!("{test}: {e}")) else {
        eprintln!(
            "\n!!!!! SKIPPED {test}: lbfwd cannot be built with {} here (needs {}) !!!!!\n",
            mode.backend,
            mode.backend.debian_packages()
        );
        return None;
    };
    let _serial = serial();
    let topo = Topology::up(prefix).unwrap_or_else(|e| panic!("{test}: network: {e}"));
    let opts = ConfigOptions::new(mode.backend);
    let flow = format!("\n[flow]\ncapacity = {}\n{guard}", mode.capacity());
    let config = |opts: &ConfigOptions| {
        let mut c = topo.config(opts).unwrap_or_else(|e| panic!("config: {e}"));
        if let Some(cpus) = &mode.cpus {
            c = with_workers(&c, &cpus.lbfwd);
        }
        c.push_str(&flow);
        c
    };
    let mut lbfwd = Lbfwd::start(&topo, &bins, &config(&opts.clone().without("be3")))
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    // The flood's answers (SYN-ACKs to 198.18.0.0/16) end at the router.
    topo.exec(
        Node::Router,
        "ip",
        &["route", "add", "blackhole", "198.18.0.0/15"],
        Duration::from_secs(5),
    )
    .and_then(cmd::Output::checked)
    .unwrap_or_else(|e| panic!("{e}"));

    let vip = topo.vip4().to_string();
    let mut probe = Established::start(&topo, &vip);

    // Quiet: the established traffic alone.
    probe.phase(&topo, "quiet");
    std::thread::sleep(PHASE);
    let rx_before = lbfwd_rx(&lbfwd);
    let dev_before = topo
        .dev_counter(Node::Lb, topo.get("LB_DEV"), "rx_packets")
        .unwrap_or_else(|e| panic!("{e}"));
    let flood_start = Instant::now();
    let mut flood = Flood::start(&topo, mode.rate, mode.cpus.as_ref());
    probe.phase(&topo, "flood");
    std::thread::sleep(PHASE);
    let secs = flood_start.elapsed().as_secs_f64();
    let offered_pps = (topo
        .dev_counter(Node::Lb, topo.get("LB_DEV"), "rx_packets")
        .unwrap_or_else(|e| panic!("{e}"))
        - dev_before) as f64
        / secs;
    let received_pps = (lbfwd_rx(&lbfwd) - rx_before) as f64 / secs;

    // A target joins during the flood.
    probe.phase(&topo, "flood+change");
    lbfwd
        .apply_config(&config(&opts))
        .unwrap_or_else(|e| panic!("adding be3: {e}"));
    std::thread::sleep(PHASE);
    flood.check_running();
    let stats = lbfwd
        .lbctl_json(&["stats"])
        .unwrap_or_else(|e| panic!("{e}"));
    let guard_during = stats["flow_guard"].clone();
    let stats_text = lbfwd.lbctl_ok(&["stats"]).unwrap_or_else(|e| panic!("{e}"));
    let trafgen = flood.stop();
    let flood_secs = flood_start.elapsed().as_secs_f64();

    // After the flood: every connection still open must answer again, on
    // its target.
    probe.phase(&topo, "after");
    let recovered_in = probe.wait_answered(RECOVERY);
    std::thread::sleep(PHASE);
    probe.end_phase(&topo);
    let (phases, conns) = probe.finish();
    let final_report = lbfwd.stop().unwrap_or_else(|e| panic!("{e}"));
    let load_after = loadavg();

    let mut broken = Vec::new();
    let mut unrecovered = Vec::new();
    let mut stalled = Vec::new();
    for c in &conns {
        let id = &c["id"];
        let first = c["backend"].as_str().unwrap_or("?");
        let seen: Vec<&str> = c["seen"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let longest = format!(
            "longest wait {:.0} ms (in {})",
            c["longest_ms"].as_f64().unwrap_or(0.0),
            c["longest_phase"].as_str().unwrap_or("-")
        );
        if let Some(e) = c["error"].as_str() {
            broken.push(format!(
                "connection {id} (on {first}): {e} (a request started in {}); seen {seen:?}; \
                 {longest}",
                c["error_phase"].as_str().unwrap_or("?")
            ));
        } else if seen.len() != 1 {
            broken.push(format!(
                "connection {id} moved: answered by {seen:?}; {longest}"
            ));
        } else if c["answers"]["after"].as_u64().unwrap_or(0) == 0 {
            unrecovered.push(format!(
                "connection {id} (on {first}): no answer within {RECOVERY:?} after the flood; \
                 {longest}; answers per phase {}",
                c["answers"]
            ));
        } else if c["longest_ms"].as_f64().unwrap_or(0.0) >= STALL.as_secs_f64() * 1000.0 {
            stalled.push(format!(
                "connection {id} (on {first}): {longest}, recovered on {first}"
            ));
        }
    }

    eprintln!("[{prefix}] lbctl stats during the flood:\n{stats_text}");
    eprintln!("[{prefix}] trafgen:\n{trafgen}");
    eprintln!(
        "[{prefix}] lbfwd's counters at the end (ring_drop: frames its receive ring dropped):\n{}",
        final_report
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("worker"))
            .take_while(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "[{prefix}] {} lbfwd, flow table {} entries, guard ({}); flood at {} for {flood_secs:.1} s: \
         {offered_pps:.0} frames/s offered to the lb node, {received_pps:.0} frames/s received \
         by lbfwd; guard during the flood: {guard_during}",
        mode.backend,
        mode.capacity(),
        guard.trim().replace('\n', ", "),
        mode.rate,
    );
    eprintln!(
        "[{prefix}] established traffic, per phase ({} kept-alive connections, a request every \
         {INTERVAL} s each; slow: answered after {STALL:?} or more):",
        conns.len()
    );
    eprintln!("  PHASE          REQUESTS  LOST  SLOW   P50 ms   P99 ms    MAX ms  TCP RETRANS/OUT");
    for (name, retrans) in &probe.done {
        let p = phases
            .iter()
            .find(|p| p["name"] == name.as_str())
            .cloned()
            .unwrap_or(Value::Null);
        eprintln!(
            "  {name:<14} {:>8} {:>5} {:>5} {:>8} {:>8} {:>9}  {retrans}",
            p["requests"], p["lost"], p["slow"], p["p50_ms"], p["p99_ms"], p["max_ms"]
        );
    }
    for s in &stalled {
        eprintln!("  STALLED {s}");
    }
    for b in &broken {
        eprintln!("  BROKEN {b}");
    }
    for u in &unrecovered {
        eprintln!("  UNRECOVERED {u}");
    }
    eprintln!(
        "[{prefix}] of {} connections: {} broken, {} stalled and recovered, {} unrecovered; \
         every open connection answered again {} after the flood; load average {load_before} \
         before, {load_after} after; the run took {:.1} s",
        conns.len(),
        broken.len(),
        stalled.len(),
        unrecovered.len(),
        match recovered_in {
            Some(d) => format!("{:.1} s", d.as_secs_f64()),
            None => format!("not within {RECOVERY:?}"),
        },
        started.elapsed().as_secs_f64()
    );
    Some(Outcome {
        broken,
        unrecovered,
        conns: conns.len(),
        guard_during,
        stats_text,
        offered_pps,
        received_pps,
    })
}

/// `config` with its `[dataplane] workers` on `cores`.
fn with_workers(config: &str, cores: &str) -> String {
    let mut found = false;
    let out: Vec<String> = config
        .lines()
        .map(|l| {
            if !found && l.starts_with("workers = [") {
                found = true;
                format!("workers = [{cores}]")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(found, "no `workers = [...]` line in the config:\n{config}");
    out.join("\n") + "\n"
}

/// The machine's load averages (1, 5, 15 minutes).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("? ({e})"))
}

/// lbfwd's received frames (all workers).
fn lbfwd_rx(lbfwd: &Lbfwd) -> u64 {
    let s = lbfwd
        .lbctl_json(&["stats"])
        .unwrap_or_else(|e| panic!("{e}"));
    s["totals"]["rx"]["packets"].as_u64().unwrap_or(0)
}

/// The client's TCP counters (`/proc/net/snmp` of its namespace):
/// segments sent and retransmitted.
fn tcp_segments(topo: &TopologyInfo) -> (u64, u64) {
    let out = topo
        .exec(
            Node::Client,
            "cat",
            &["/proc/net/snmp"],
            Duration::from_secs(5),
        )
        .and_then(cmd::Output::checked)
        .unwrap_or_else(|e| panic!("{e}"));
    let tcp: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("Tcp:"))
        .collect();
    let (names, values) = match tcp.as_slice() {
        [n, v] => (n.split_whitespace(), v.split_whitespace()),
        _ => panic!("no Tcp lines in /proc/net/snmp: {}", out.stdout),
    };
    let m: std::collections::BTreeMap<&str, u64> = names
        .zip(values)
        .filter_map(|(n, v)| v.parse().ok().map(|v| (n, v)))
        .collect();
    (m["OutSegs"], m["RetransSegs"])
}

/// `tests/support/latprobe.py` in the client namespace: [`CONNS`]
/// kept-alive connections (more until be1 and be2 have one each), each
/// asking every [`INTERVAL`]; latency per phase, and per connection
/// whether it broke, moved or stalled.
struct Established {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// TCP counters when the current phase began, and its name.
    current: Option<(String, (u64, u64))>,
    /// Retransmitted / sent segments of the phases done, by name.
    done: Vec<(String, String)>,
}

impl Established {
    /// Opens the connections; panics unless every one answered.
    fn start(topo: &TopologyInfo, vip: &str) -> Self {
        let script = workspace_root().join("tests/support/latprobe.py");
        let mut c = topo.command(Node::Client, python());
        c.arg(&script)
            .args(["--addr", vip, "--conns", &CONNS.to_string()])
            .args(["--cover", "be1", "--cover", "be2"])
            .args(["--max-conns", &(2 * CONNS).to_string()])
            .args(["--interval", INTERVAL])
            .args(["--timeout", &REQUEST_TIMEOUT.as_secs().to_string()])
            .args(["--stall", &STALL.as_secs_f64().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("latprobe: {e}"));
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut p = Established {
            child,
            stdin,
            lines,
            current: None,
            done: Vec::new(),
        };
        let ready = p.event("ready", Duration::from_secs(60));
        let conns = ready["conns"].as_array().cloned().unwrap_or_default();
        assert!(
            conns.len() >= CONNS as usize
                && conns
                    .iter()
                    .all(|c| c["error"].is_null() && c["backend"].is_string()),
            "kept-alive connections failed before the flood: {ready}"
        );
        p
    }

    /// Ends the current phase and starts `name`.
    fn phase(&mut self, topo: &TopologyInfo, name: &str) {
        self.end_phase(topo);
        let now = tcp_segments(topo);
        self.send(&format!("phase {name}"));
        self.event("phase", Duration::from_secs(20));
        self.current = Some((name.to_string(), now));
    }

    /// Ends the current phase: notes the client's retransmitted and sent
    /// TCP segments during it.
    fn end_phase(&mut self, topo: &TopologyInfo) {
        if let Some((name, (out, retrans))) = self.current.take() {
            let now = tcp_segments(topo);
            let line = format!("{}/{}", now.1 - retrans, now.0 - out);
            self.done.push((name, line));
        }
    }

    /// Waits until every open connection answered a request started in the
    /// current phase; how long that took, `None` if not within `bound`.
    fn wait_answered(&mut self, bound: Duration) -> Option<Duration> {
        let start = Instant::now();
        loop {
            self.send("status");
            let s = self.event("status", Duration::from_secs(20));
            let waiting = s["conns"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|c| c["alive"] == true && c["answers"] == 0)
                        .count()
                })
                .unwrap_or(usize::MAX);
            if waiting == 0 {
                return Some(start.elapsed());
            }
            if start.elapsed() > bound {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Ends the probe; returns its phases and connections.
    fn finish(&mut self) -> (Vec<Value>, Vec<Value>) {
        drop(self.stdin.take());
        let v = self.event("summary", REQUEST_TIMEOUT + Duration::from_secs(10));
        let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
        (list("phases"), list("conns"))
    }

    fn send(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            writeln!(stdin, "{line}")
                .and_then(|_| stdin.flush())
                .unwrap_or_else(|e| panic!("latprobe: {e}"));
        }
    }

    fn event(&mut self, name: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("latprobe sent no {name:?} event: {e}"));
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("latprobe: {e}: {line}"));
            if v["event"] == name {
                return v;
            }
        }
    }
}

impl Drop for Established {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if cmd::wait_deadline(&mut self.child, REQUEST_TIMEOUT + Duration::from_secs(5)).is_none() {
            eprintln!("latprobe did not end; killed");
        }
    }
}

/// trafgen in the router namespace, sending TCP SYNs from random sources
/// in 198.18.0.0/16 and random ports to the VIP, port 80, straight into the
/// lb node's link, at a rate or as fast as it can (one sending process).
/// It runs in a process group of its own: trafgen forks its sending
/// process, and a SIGINT to the parent alone does not stop that one.
struct Flood {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl Flood {
    fn start(topo: &TopologyInfo, rate: Rate, cpus: Option<&Cpus>) -> Self {
        let mac =
            |m: &str| -> String { m.split(':').map(|b| format!("0x{b}, ")).collect::<String>() };
        let vip: Vec<String> = topo.vip4().split('.').map(str::to_string).collect();
        let conf = format!(
            "{{\n  {}{}c16(0x0800),\n  \
             0x45, 0x00, c16(40), drnd(2), c16(0x4000), 64, 6, csumip(14, 33),\n  \
             198, 18, drnd(2), {},\n  \
             drnd(2), c16(80), drnd(4), c32(0), 0x50, 0x02, c16(64240), csumtcp(14, 34), c16(0),\n}}\n",
            mac(topo.get("LB_MAC")),
            mac(topo.get("NEXT_HOP_MAC")),
            vip.join(", ")
        );
        let dir = topo.state_dir();
        let conf_path = dir.join("flood.trafgen");
        std::fs::write(&conf_path, conf).unwrap_or_else(|e| panic!("{e}"));
        let log = dir.join("trafgen.log");
        let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let dev = topo.get("ROUTER_LB_DEV").to_string();
        let conf_arg = conf_path.to_string_lossy().to_string();
        let mut c = topo.command(Node::Router, "trafgen");
        c.args(["--dev", &dev, "--conf", &conf_arg, "--cpus", "1"])
            .args(["--no-sock-mem", "--notouch-irq"])
            .args(match rate {
                Rate::Pps(r) => Some(format!("--rate={r}pps")),
                Rate::Max => None,
            })
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = c.spawn().unwrap_or_else(|e| panic!("trafgen: {e}"));
        let mut flood = Flood {
            child: Some(child),
            log,
        };
        if let Some(cpus) = cpus {
            flood.pin(&cpus.trafgen);
        }
        flood
    }

    /// Pins trafgen and its sending process to `cores`. trafgen pins its
    /// process N to core N right after forking it: wait for the fork, then
    /// pin until the kernel reports the cores asked for.
    fn pin(&mut self, cores: &str) {
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return;
        };
        let children = format!("/proc/{pid}/task/{pid}/children");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.check_running();
            let kids: Vec<String> = std::fs::read_to_string(&children)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !kids.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
                let all: Vec<String> = std::iter::once(pid.to_string()).chain(kids).collect();
                for p in &all {
                    let _ = cmd::run(
                        Command::new("taskset").args(["-a", "-p", "-c", cores, p]),
                        Duration::from_secs(5),
                    );
                }
                let pinned = all.iter().all(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/status"))
                        .unwrap_or_default()
                        .lines()
                        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                        .is_some_and(|l| same_cores(l.trim(), cores))
                });
                if pinned {
                    eprintln!("trafgen (pids {all:?}) pinned to cores {cores}");
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "trafgen could not be pinned to cores {cores}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Panics (with its output) if trafgen stopped by itself.
    fn check_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(s)) = c.try_wait() {
                panic!(
                    "trafgen exited ({s}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
        }
    }

    /// Stops trafgen's whole process group: SIGINT, SIGKILL after
    /// [`TRAFGEN_GRACE`]; returns its report. Panics if a process of the
    /// group is still there after that (the flood would go on).
    fn stop(&mut self) -> String {
        let Some(mut c) = self.child.take() else {
            return String::new();
        };
        let group = format!("-{}", c.id());
        let signal = |sig: &str| {
            Command::new("kill")
                .args([sig, "--", &group])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        signal("-INT");
        let deadline = Instant::now() + TRAFGEN_GRACE;
        let mut killed = false;
        loop {
            let parent_done = !matches!(c.try_wait(), Ok(None));
            // `kill -0` fails once no process of the group is left.
            if parent_done && !signal("-0") {
                break;
            }
            if Instant::now() > deadline {
                if !killed {
                    eprintln!("trafgen did not end within {TRAFGEN_GRACE:?} of SIGINT: SIGKILL");
                    signal("-KILL");
                    killed = true;
                }
                if Instant::now() > deadline + Duration::from_secs(5) {
                    panic!("trafgen's process group {group} outlived SIGKILL");
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Whether two core lists (`0-1`, `0,1`) name the same cores.
fn same_cores(a: &str, b: &str) -> bool {
    let expand = |s: &str| -> std::collections::BTreeSet<u32> {
        s.split(',')
            .flat_map(|part| match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (
                        lo.trim().parse().unwrap_or(1),
                        hi.trim().parse().unwrap_or(0),
                    );
                    (lo..=hi).collect::<Vec<u32>>()
                }
                None => part.trim().parse().into_iter().collect(),
            })
            .collect()
    };
    expand(a) == expand(b)
}

impl Drop for Flood {
    fn drop(&mut self) {
        if self.child.is_some() && !std::thread::panicking() {
            self.stop();
        } else if let Some(c) = self.child.take() {
            // Panicking: no second panic; SIGKILL the group.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .status();
        }
    }
}

#[test]
fn core_lists_and_the_workers_line() {
    assert!(same_cores("0-1", "0,1"));
    assert!(same_cores("1", "1"));
    assert!(!same_cores("0", "0,1"));
    assert!(!same_cores("0-1", "1"));
    let cpus = parse_cpus("0:0");
    assert_eq!((cpus.trafgen.as_str(), cpus.lbfwd.as_str()), ("0", "0"));
    let config = "[dataplane]\nbackend = \"af_packet\"\nworkers = [1]\n\n[flow]\n";
    assert_eq!(
        with_workers(config, "0"),
        "[dataplane]\nbackend = \"af_packet\"\nworkers = [0]\n\n[flow]\n"
    );
}

#[test]
#[should_panic(expected = "TRAFGEN_CORES:LBFWD_CORES")]
fn a_core_list_without_a_colon_is_refused() {
    parse_cpus("0,1");
}
