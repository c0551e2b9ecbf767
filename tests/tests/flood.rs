//! New-flow floods must not cost established flows (`[flow]
//! new_flow_rate`, the flood guard of `forwarder/src/flow/guard.rs`).
//!
//! Kept-alive TCP connections run through lbfwd (af_packet) on a small flow
//! table (256 entries); trafgen floods the VIP with SYNs from random
//! sources (198.18.0.0/16, random ports), injected on the router's side of
//! the lb node's link, at the rate lbfwd receives without loss here
//! ([`FLOOD_PPS`]); during the flood a target (be3) is added to the load
//! balancer. With the guard on, no
//! connection breaks and `lbctl stats` shows the guard engaged; with it off
//! (`new_flow_rate = 0`), the flood evicts the established flows, the
//! routing change moves some of them to be3, and those connections break:
//! the test can fail. Both print what the flood cost the established
//! traffic (request latency, lost requests, TCP retransmissions); the
//! guarded run also floods at trafgen's highest rate for a few seconds
//! after the connections' verdict and prints that cost.
//!
//! Run: `flock /tmp/lbfwd-netns.lock cargo test -p lbfwd-tests --test flood
//! -- --nocapture --test-threads=1` as root (needs trafgen, from
//! netsniff-ng).

use lbfwd_tests::cmd;
use lbfwd_tests::{
    lbfwd_binaries, python, require_root, serial, workspace_root, Backend, ConfigOptions,
    FlowProbe, Lbfwd, Node, Topology, TopologyInfo,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Flow-table entries per worker: small, so that the flood fills it many
/// times over per second.
const CAPACITY: u32 = 256;
/// The guard's rate and burst in the guarded run: at 20 new flows per
/// second, each of the table's 32 buckets takes a new entry about every
/// 1.6 s, so 8 of them (what evicts the oldest entry of a bucket) take
/// about 13 s, while an established connection here refreshes its entry
/// every 100 ms, or after a few seconds at worst when the loaded machine
/// delays it (TCP retransmission back-off). (At 100 per second, 8 inserts
/// took 2.5 s, and one connection in about two runs was evicted in such a
/// pause and, no longer admitted during the flood, moved to be3.)
const GUARD: &str = "new_flow_rate = 20\nnew_flow_burst = 10\n";
/// The flood's rate while connections must survive: what lbfwd (a debug
/// build, on a core shared with the rest of the test) receives without its
/// receive ring overflowing. Above it the ring drops packets of every flow
/// at random, which no flow table can help; the guarded run measures that
/// too, at trafgen's highest rate, after the connections' verdict.
const FLOOD_PPS: u32 = 10_000;
/// The guard off.
const NO_GUARD: &str = "new_flow_rate = 0\n";
/// Kept-alive connections that must not break.
const CONNS: u32 = 24;
/// How long each measured phase lasts.
const PHASE: Duration = Duration::from_secs(3);

/// What one run measured.
#[derive(Debug)]
struct Outcome {
    /// Connections that broke or moved, with what happened.
    broken: Vec<String>,
    /// Connections of the probe.
    conns: usize,
    /// The guard's part of `lbctl -o json stats` during the flood, after
    /// be3 was added.
    guard_during: Value,
    /// `lbctl stats` (text) at the same time.
    stats_text: String,
    /// Frames per second the lb node's interface received in the flood
    /// (at [`FLOOD_PPS`]).
    offered_pps: f64,
    /// Frames per second lbfwd received (its `rx` counter) in the flood.
    received_pps: f64,
}

#[test]
fn flood_with_the_guard_breaks_no_connection() {
    let Some(out) = run(
        "flood_with_the_guard_breaks_no_connection",
        "floodg",
        GUARD,
        true,
    ) else {
        return;
    };
    assert!(
        out.broken.is_empty(),
        "{} of {} kept-alive connections broke or moved under the flood with the guard on: {:#?}",
        out.broken.len(),
        out.conns,
        out.broken
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
    assert!(
        out.stats_text.contains(
            "flow guard  ENGAGED on worker 0; limit 20/s per worker (burst 10), above it forward"
        ),
        "{}",
        out.stats_text
    );
}

#[test]
fn flood_without_the_guard_breaks_connections() {
    let Some(out) = run(
        "flood_without_the_guard_breaks_connections",
        "floodo",
        NO_GUARD,
        false,
    ) else {
        return;
    };
    assert!(
        !out.broken.is_empty(),
        "no connection broke with the guard off: the flood ({:.0} pps offered, {:.0} pps \
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
/// probes, the flood, be3 added during it; with `full_rate`, then the
/// cost of a flood at trafgen's highest rate. `None`: skipped (not root,
/// or no trafgen).
fn run(test: &str, prefix: &str, guard: &str, full_rate: bool) -> Option<Outcome> {
    if !require_root(test) {
        return None;
    }
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
    let bins = lbfwd_binaries(Backend::AfPacket)
        .unwrap_or_else(|e| panic!("{test}: {e}"))
        .expect("af_packet is always built");
    let _serial = serial();
    let topo = Topology::up(prefix).unwrap_or_else(|e| panic!("{test}: network: {e}"));
    let opts = ConfigOptions::new(Backend::AfPacket);
    let flow = format!("\n[flow]\ncapacity = {CAPACITY}\n{guard}");
    let config = |opts: &ConfigOptions| {
        let mut c = topo.config(opts).unwrap_or_else(|e| panic!("config: {e}"));
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
    let (mut probe, first) = FlowProbe::start_covering(
        &topo,
        &[&vip],
        CONNS,
        &["be1", "be2"],
        2 * CONNS,
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("flow probe: {e}"));
    assert!(
        first.iter().all(|c| c.backend.is_some()),
        "kept-alive connections failed before the flood: {first:?}"
    );
    let mut lat = LatencyProbe::start(&topo, &vip);

    // Quiet: the established traffic alone.
    lat.phase(&topo, "quiet");
    std::thread::sleep(PHASE);
    let rx_before = lbfwd_rx(&lbfwd);
    let dev_before = topo
        .dev_counter(Node::Lb, topo.get("LB_DEV"), "rx_packets")
        .unwrap_or_else(|e| panic!("{e}"));
    let flood_start = Instant::now();
    let mut flood = Flood::start(&topo, Some(FLOOD_PPS));
    lat.phase(&topo, "flood");
    std::thread::sleep(PHASE);
    let secs = flood_start.elapsed().as_secs_f64();
    let offered_pps = (topo
        .dev_counter(Node::Lb, topo.get("LB_DEV"), "rx_packets")
        .unwrap_or_else(|e| panic!("{e}"))
        - dev_before) as f64
        / secs;
    let received_pps = (lbfwd_rx(&lbfwd) - rx_before) as f64 / secs;

    // A target joins during the flood.
    lat.phase(&topo, "flood+change");
    lbfwd
        .apply_config(&config(&opts))
        .unwrap_or_else(|e| panic!("adding be3: {e}"));
    probe.mark().unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(PHASE);
    flood.check_running();
    let stats = lbfwd
        .lbctl_json(&["stats"])
        .unwrap_or_else(|e| panic!("{e}"));
    let guard_during = stats["flow_guard"].clone();
    let stats_text = lbfwd.lbctl_ok(&["stats"]).unwrap_or_else(|e| panic!("{e}"));
    let trafgen = flood.stop();
    lat.phase(&topo, "after");
    std::thread::sleep(Duration::from_secs(2));
    let summary = probe
        .finish(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("flow probe: {e}"));
    let mut full = String::new();
    if full_rate {
        let rx_before = lbfwd_rx(&lbfwd);
        let dev_before = topo
            .dev_counter(Node::Lb, topo.get("LB_DEV"), "rx_packets")
            .unwrap_or_else(|e| panic!("{e}"));
        let start = Instant::now();
        let mut flood = Flood::start(&topo, None);
        lat.phase(&topo, "flood-max");
        std::thread::sleep(PHASE);
        let secs = start.elapsed().as_secs_f64();
        let offered = (topo
            .dev_counter(Node::Lb, topo.get("LB_DEV"), "rx_packets")
            .unwrap_or_else(|e| panic!("{e}"))
            - dev_before) as f64
            / secs;
        let received = (lbfwd_rx(&lbfwd) - rx_before) as f64 / secs;
        flood.stop();
        lat.phase(&topo, "after-max");
        std::thread::sleep(Duration::from_secs(2));
        full = format!(
            "; at trafgen's highest rate: {offered:.0} frames/s offered, {received:.0} received"
        );
    }
    lat.end_phase(&topo);
    let latency = lat.finish();
    let mut broken = Vec::new();
    for c in &summary {
        if c.error.is_some() || c.seen.len() != 1 || c.ok_after == 0 {
            broken.push(format!(
                "connection {} (first {:?}): seen {:?}, {} answers after be3 joined, error {:?}",
                c.id, c.backend, c.seen, c.ok_after, c.error
            ));
        }
    }
    eprintln!("[{prefix}] lbctl stats during the flood:\n{stats_text}");
    eprintln!("[{prefix}] trafgen:\n{trafgen}");
    eprintln!(
        "[{prefix}] flood at {FLOOD_PPS} pps: {offered_pps:.0} frames/s offered to the lb node, \
         {received_pps:.0} frames/s received by lbfwd{full}; guard ({}): {guard_during}",
        guard.trim().replace('\n', ", ")
    );
    eprintln!("[{prefix}] established traffic, per phase (4 kept-alive connections, a request every 20 ms each):");
    eprintln!("  PHASE          REQUESTS  LOST  P50 ms   P99 ms   MAX ms  TCP RETRANS/OUT");
    for (name, retrans) in &lat.done {
        let p = latency
            .iter()
            .find(|p| p["name"] == name.as_str())
            .cloned()
            .unwrap_or(Value::Null);
        eprintln!(
            "  {name:<14} {:>8} {:>5} {:>7} {:>8} {:>8}  {retrans}",
            p["requests"], p["lost"], p["p50_ms"], p["p99_ms"], p["max_ms"]
        );
    }
    eprintln!(
        "[{prefix}] {} of {} connections broke; the run took {:.1} s",
        broken.len(),
        summary.len(),
        started.elapsed().as_secs_f64()
    );
    lbfwd.stop().unwrap_or_else(|e| panic!("{e}"));
    Some(Outcome {
        broken,
        conns: summary.len(),
        guard_during,
        stats_text,
        offered_pps,
        received_pps,
    })
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

/// `tests/support/latprobe.py` in the client namespace: request latency on
/// kept-alive connections, per phase.
struct LatencyProbe {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// TCP counters when the current phase began, and its name.
    current: Option<(String, (u64, u64))>,
    /// Retransmissions of the phases done, by name.
    done: Vec<(String, String)>,
}

impl LatencyProbe {
    fn start(topo: &TopologyInfo, vip: &str) -> Self {
        let script = workspace_root().join("tests/support/latprobe.py");
        let mut c = topo.command(Node::Client, python());
        c.arg(&script)
            .args(["--addr", vip, "--conns", "4", "--interval", "0.02"])
            .args(["--timeout", "2"])
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
        let mut p = LatencyProbe {
            child,
            stdin,
            lines,
            current: None,
            done: Vec::new(),
        };
        p.event("ready");
        p
    }

    /// Ends the current phase and starts `name`.
    fn phase(&mut self, topo: &TopologyInfo, name: &str) {
        self.end_phase(topo);
        let now = tcp_segments(topo);
        if let Some(stdin) = self.stdin.as_mut() {
            writeln!(stdin, "phase {name}")
                .and_then(|_| stdin.flush())
                .unwrap_or_else(|e| panic!("latprobe: {e}"));
        }
        self.event("phase");
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

    /// Ends the probe; returns its phases.
    fn finish(&mut self) -> Vec<Value> {
        drop(self.stdin.take());
        let v = self.event("summary");
        v["phases"].as_array().cloned().unwrap_or_default()
    }

    fn event(&mut self, name: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
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

impl Drop for LatencyProbe {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if cmd::wait_deadline(&mut self.child, Duration::from_secs(10)).is_none() {
            eprintln!("latprobe did not end; killed");
        }
    }
}

/// trafgen in the router namespace, sending TCP SYNs from random sources
/// in 198.18.0.0/16 and random ports to the VIP, port 80, straight into the
/// lb node's link, at `pps` or as fast as it can (one process).
struct Flood {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl Flood {
    fn start(topo: &TopologyInfo, pps: Option<u32>) -> Self {
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
            .args(pps.map(|r| format!("--rate={r}pps")))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = c.spawn().unwrap_or_else(|e| panic!("trafgen: {e}"));
        Flood {
            child: Some(child),
            log,
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

    /// Stops trafgen (SIGINT) and returns its report.
    fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            cmd::signal(c.id(), "INT");
            if cmd::wait_deadline(&mut c, Duration::from_secs(10)).is_none() {
                eprintln!("trafgen ignored SIGINT; killed");
            }
        }
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop();
    }
}
