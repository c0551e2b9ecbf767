//! Golden tests of the whole pipeline (issue 3, "Done when").
//!
//! `golden/cases.txt` is a table of cases, each with a one-line description,
//! the configuration it runs against (`golden/*.toml`) and one or more steps:
//! an input frame, the expected verdict and, for `Tx`, the expected output
//! bytes (or a set of acceptable outputs when a load balancer has several
//! targets), plus the frames `release_held` must emit after the step. The
//! expected bytes are computed independently of lbfwd by
//! `scripts/gen_golden.py` (scapy, and XXH64 written from its specification
//! for the flow hash); the generated files are committed, so this test needs
//! no Python. Regenerate with `/usr/bin/python3 scripts/gen_golden.py`.
//!
//! Further tests here drive the pipeline with many flows to check what a
//! table of single frames cannot: flows stay on their target, a republished
//! routing moves only the flows of a removed target, a drained target keeps
//! its flows and gets no new ones, ICMP errors and fragments follow the
//! flow's remembered target.

use lbfwd_config::Config;
use lbfwd_forwarder::counters::{DropReason, WorkerCounters};
use lbfwd_forwarder::frame::{Frame, HEADROOM};
use lbfwd_forwarder::pipeline::{Pipeline, PipelineConfig, Verdict};
use lbfwd_forwarder::tables::{Publisher, TableBuilder, UnderlayParams};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;

/// Directory of the fixtures.
fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The interface MAC handed to `UnderlayParams::from_settings`; every
/// fixture config sets `source_mac`, which must win over it.
const INTERFACE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0f, 0x0f];

/// The time of every step, in nanoseconds (well past 0 so that the too-big
/// token bucket has refilled).
const NOW: u64 = 1_000_000_000;

/// Drop reasons no input can produce, and why; every other reason must be
/// covered by a golden case.
const UNREACHABLE: [(DropReason, &str); 2] = [
    (
        DropReason::Internal,
        "only a state the code rules out (a bug) produces it",
    ),
    (
        DropReason::TxRingFull,
        "only a backend refusing a released fragment produces it (pipeline unit test)",
    ),
];

// ---------------------------------------------------------------------------
// The fixture.

/// The verdict a step expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Tx,
    Host,
    Held,
    Drop(DropReason),
}

impl Expect {
    fn parse(s: &str) -> Result<Expect, String> {
        Ok(match s {
            "tx" => Expect::Tx,
            "host" => Expect::Host,
            "held" => Expect::Held,
            _ => {
                let name = s
                    .strip_prefix("drop:")
                    .ok_or_else(|| format!("unknown verdict {s:?}"))?;
                let reason = DropReason::ALL
                    .iter()
                    .find(|r| r.as_str() == name)
                    .ok_or_else(|| format!("unknown drop reason {name:?}"))?;
                Expect::Drop(*reason)
            }
        })
    }

    fn matches(self, v: Verdict) -> bool {
        matches!(
            (self, v),
            (Expect::Tx, Verdict::Tx)
                | (Expect::Host, Verdict::Host)
                | (Expect::Held, Verdict::Held)
        ) || matches!((self, v), (Expect::Drop(a), Verdict::Drop(b)) if a == b)
    }
}

#[derive(Debug, Default)]
struct Step {
    headroom: Option<usize>,
    input: Vec<u8>,
    verdict: Option<Expect>,
    out: Option<Vec<u8>>,
    outany: Vec<Vec<u8>>,
    released: Vec<Vec<u8>>,
    counters: Vec<(String, u64)>,
}

#[derive(Debug, Default)]
struct Case {
    name: String,
    desc: String,
    config: String,
    options: Vec<String>,
    steps: Vec<Step>,
    line: usize,
}

fn hex(s: &str, line: usize) -> Vec<u8> {
    assert!(
        s.len().is_multiple_of(2),
        "cases.txt:{line}: odd number of hex digits"
    );
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .unwrap_or_else(|e| panic!("cases.txt:{line}: bad hex at column {i}: {e}"))
        })
        .collect()
}

/// Parses `golden/cases.txt` (format in its header).
fn load_cases() -> Vec<Case> {
    let path = golden_dir().join("cases.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/gen_golden.py)", path.display()));
    let mut cases = Vec::new();
    let mut case: Option<Case> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim_end();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let (key, value) = raw.split_once(' ').unwrap_or((raw, ""));
        if key == "case" {
            assert!(case.is_none(), "cases.txt:{line}: case inside a case");
            case = Some(Case {
                name: value.to_string(),
                line,
                ..Case::default()
            });
            continue;
        }
        let c = case
            .as_mut()
            .unwrap_or_else(|| panic!("cases.txt:{line}: {key:?} outside a case"));
        match key {
            "desc" => {
                c.desc = value.to_string();
                continue;
            }
            "config" => {
                c.config = value.to_string();
                continue;
            }
            "option" => {
                c.options.push(value.to_string());
                continue;
            }
            "step" => {
                c.steps.push(Step::default());
                continue;
            }
            "end" => {
                cases.push(case.take().expect("inside a case"));
                continue;
            }
            _ => {}
        }
        let Some(step) = c.steps.last_mut() else {
            panic!("cases.txt:{line}: {key:?} before the first step");
        };
        match key {
            "headroom" => step.headroom = Some(value.parse().expect("headroom is a number")),
            "in" => step.input = hex(value, line),
            "verdict" => {
                step.verdict =
                    Some(Expect::parse(value).unwrap_or_else(|e| panic!("cases.txt:{line}: {e}")))
            }
            "out" => step.out = Some(hex(value, line)),
            "outany" => step.outany.push(hex(value, line)),
            "released" => step.released.push(hex(value, line)),
            "counter" => {
                let (name, v) = value.split_once(' ').expect("counter NAME VALUE");
                step.counters
                    .push((name.to_string(), v.parse().expect("counter value")));
            }
            _ => panic!("cases.txt:{line}: unknown key {key:?}"),
        }
    }
    assert!(case.is_none(), "cases.txt: last case has no end");
    cases
}

// ---------------------------------------------------------------------------
// The pipeline under test.

/// One worker's pipeline over tables built from a config file, with the
/// builder and publisher kept for republishing.
struct Harness {
    builder: TableBuilder,
    underlay: UnderlayParams,
    publisher: Arc<Publisher>,
    pipeline: Pipeline,
    version: u64,
    buf: Vec<u8>,
}

/// A config text and name, parsed and resolved.
fn resolve(text: &str, name: &str) -> (Config, lbfwd_config::Resolution) {
    let config = Config::from_toml_str(text, name)
        .unwrap_or_else(|e| panic!("{name}: config does not load:\n{e}"));
    let resolution = config
        .resolve()
        .unwrap_or_else(|e| panic!("{name}: config does not resolve:\n{e}"));
    (config, resolution)
}

fn config_text(name: &str) -> String {
    let path = golden_dir().join(format!("{name}.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Harness {
    fn new(text: &str, name: &str, options: &[String]) -> Self {
        let (config, resolution) = resolve(text, name);
        let mut underlay =
            UnderlayParams::from_settings(&config.settings.underlay, Some(INTERFACE_MAC));
        let mut pc = PipelineConfig::from_settings(&config.settings.flow);
        // A test needs far fewer flows than a live worker.
        pc.flow_capacity = 1 << 14;
        for o in options {
            match o.as_str() {
                "no_source_ipv6" => underlay.source_ipv6 = None,
                "held_slots 0" => pc.frag.held_slots = 0,
                _ => panic!("{name}: unknown case option {o:?}"),
            }
        }
        let mut builder = TableBuilder::new();
        let (tables, _) = builder
            .build(&resolution.resolved, &underlay, 1)
            .unwrap_or_else(|e| panic!("{name}: tables: {e}"));
        let publisher = Publisher::new(tables, 1);
        let pipeline = Pipeline::new(publisher.reader(0), Arc::new(WorkerCounters::new()), &pc)
            .unwrap_or_else(|e| panic!("{name}: pipeline: {e}"));
        Harness {
            builder,
            underlay,
            publisher,
            pipeline,
            version: 1,
            buf: vec![0u8; HEADROOM + 65_536],
        }
    }

    fn from_file(name: &str) -> Self {
        Self::new(&config_text(name), &format!("{name}.toml"), &[])
    }

    /// Builds tables from `text` with the same builder (target slots stay)
    /// and publishes them; the next `run` picks them up.
    fn republish(&mut self, text: &str) {
        let (_, resolution) = resolve(text, "republished.toml");
        self.version += 1;
        let (tables, _) = self
            .builder
            .build(&resolution.resolved, &self.underlay, self.version)
            .expect("tables of the new version");
        self.publisher.publish(tables);
    }

    /// Runs one frame placed `headroom` bytes into the buffer: the verdict,
    /// the frame as it then stands, and what `release_held` emitted.
    fn run_at(
        &mut self,
        input: &[u8],
        headroom: usize,
        now: u64,
    ) -> (Verdict, Vec<u8>, Vec<Vec<u8>>) {
        self.buf.fill(0xAA);
        self.buf[headroom..headroom + input.len()].copy_from_slice(input);
        self.pipeline.begin(now);
        let mut frame = Frame::new(&mut self.buf, headroom, input.len());
        let verdict = self.pipeline.run(&mut frame);
        let out = frame.data().to_vec();
        let mut released = Vec::new();
        self.pipeline.release_held(&mut |b: &[u8]| {
            released.push(b.to_vec());
            true
        });
        (verdict, out, released)
    }

    fn run(&mut self, input: &[u8]) -> (Verdict, Vec<u8>, Vec<Vec<u8>>) {
        self.run_at(input, HEADROOM, NOW)
    }

    fn counters(&self) -> &WorkerCounters {
        self.pipeline.counters()
    }
}

fn counter(c: &WorkerCounters, name: &str) -> u64 {
    match name {
        "host_not_vip" => c.host_not_vip.get(),
        "icmp_echo_replies" => c.icmp_echo_replies.get(),
        "too_big_sent" => c.too_big_sent.get(),
        "icmp_errors_forwarded" => c.icmp_errors_forwarded.get(),
        "fragments_held" => c.fragments_held.get(),
        "flow_picks" => c.flow_picks.get(),
        "flow_repicks" => c.flow_repicks.get(),
        _ => panic!("unknown counter {name:?}"),
    }
}

/// Where two byte strings differ, for a failure message.
fn diff(expected: &[u8], got: &[u8]) -> String {
    let mut s = String::new();
    let first = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let _ = write!(
        s,
        "expected {} bytes, got {}; first difference at byte {first}",
        expected.len(),
        got.len()
    );
    let from = first.saturating_sub(8);
    let show = |b: &[u8]| {
        b.get(from..(first + 24).min(b.len()))
            .unwrap_or(&[])
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = write!(
        s,
        "\n      expected[{from}..]: {}\n      got     [{from}..]: {}",
        show(expected),
        show(got)
    );
    s
}

/// Runs one case on a fresh pipeline; returns the problems found.
fn run_case(case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let mut h = Harness::new(
        &config_text(&case.config),
        &format!("{}.toml", case.config),
        &case.options,
    );
    for (i, step) in case.steps.iter().enumerate() {
        let at = format!("step {}", i + 1);
        let before = snapshot(h.counters());
        let headroom = step.headroom.unwrap_or(HEADROOM);
        let (verdict, out, released) = h.run_at(&step.input, headroom, NOW);
        let expect = step.verdict.expect("every step has a verdict");
        if !expect.matches(verdict) {
            problems.push(format!("{at}: verdict {verdict:?}, expected {expect:?}"));
        }
        if verdict == Verdict::Tx {
            if let Some(want) = &step.out {
                if &out != want {
                    problems.push(format!("{at}: output differs: {}", diff(want, &out)));
                }
            }
            if !step.outany.is_empty() && !step.outany.contains(&out) {
                let nearest = step
                    .outany
                    .iter()
                    .min_by_key(|w| w.iter().zip(&out).filter(|(a, b)| a != b).count())
                    .expect("non-empty");
                problems.push(format!(
                    "{at}: output is none of the {} acceptable ones; nearest: {}",
                    step.outany.len(),
                    diff(nearest, &out)
                ));
            }
        }
        if released.len() != step.released.len() {
            problems.push(format!(
                "{at}: release_held emitted {} frames, expected {}",
                released.len(),
                step.released.len()
            ));
        }
        for (k, (got, want)) in released.iter().zip(&step.released).enumerate() {
            if got != want {
                problems.push(format!(
                    "{at}: released frame {k} differs: {}",
                    diff(want, got)
                ));
            }
        }
        let after = snapshot(h.counters());
        problems.extend(count_problems(
            &at,
            &before,
            &after,
            verdict,
            released.len(),
        ));
        for (name, want) in &step.counters {
            let got = counter(h.counters(), name);
            if got != *want {
                problems.push(format!("{at}: counter {name} is {got}, expected {want}"));
            }
        }
    }
    problems
}

/// The counters every verdict moves.
#[derive(Clone, Copy, Debug)]
struct Snap {
    rx: u64,
    tx: u64,
    host: u64,
    held: u64,
    drops: [u64; DropReason::COUNT],
}

fn snapshot(c: &WorkerCounters) -> Snap {
    let mut drops = [0; DropReason::COUNT];
    for r in DropReason::ALL {
        drops[r as usize] = c.drops[r as usize].get();
    }
    Snap {
        rx: c.rx.packets.get(),
        tx: c.tx.packets.get(),
        host: c.host.packets.get(),
        held: c.fragments_held.get(),
        drops,
    }
}

/// Every frame is counted once as received and once under its verdict.
fn count_problems(at: &str, b: &Snap, a: &Snap, v: Verdict, released: usize) -> Vec<String> {
    let mut p = Vec::new();
    if a.rx != b.rx + 1 {
        p.push(format!("{at}: rx counted {} times", a.rx - b.rx));
    }
    let tx = u64::from(v == Verdict::Tx) + released as u64;
    if a.tx - b.tx != tx {
        p.push(format!("{at}: tx counted {}, expected {tx}", a.tx - b.tx));
    }
    if a.host - b.host != u64::from(v == Verdict::Host) {
        p.push(format!("{at}: host counted {}", a.host - b.host));
    }
    if a.held - b.held != u64::from(v == Verdict::Held) {
        p.push(format!("{at}: fragments_held counted {}", a.held - b.held));
    }
    for r in DropReason::ALL {
        let d = a.drops[r as usize] - b.drops[r as usize];
        let want = u64::from(v == Verdict::Drop(r));
        if d != want {
            p.push(format!(
                "{at}: drop {} counted {d}, expected {want}",
                r.as_str()
            ));
        }
    }
    p
}

#[test]
fn golden_cases() {
    let cases = load_cases();
    assert!(cases.len() > 50, "only {} cases in cases.txt", cases.len());
    let mut failures = String::new();
    let mut failed = 0;
    for case in &cases {
        let problems = run_case(case);
        if !problems.is_empty() {
            failed += 1;
            let _ = writeln!(
                failures,
                "\n{} (cases.txt:{}, config {}): {}",
                case.name, case.line, case.config, case.desc
            );
            for p in problems {
                let _ = writeln!(failures, "    {p}");
            }
        }
    }
    assert!(
        failed == 0,
        "{failed} of {} golden cases failed:{failures}",
        cases.len()
    );
}

#[test]
fn golden_cases_are_well_formed_and_cover_every_drop_reason() {
    let cases = load_cases();
    let mut names = BTreeSet::new();
    let mut reasons = BTreeSet::new();
    let mut verdicts = BTreeSet::new();
    for c in &cases {
        assert!(names.insert(c.name.clone()), "case {} twice", c.name);
        assert!(!c.desc.is_empty(), "case {} has no description", c.name);
        assert!(!c.steps.is_empty(), "case {} has no steps", c.name);
        assert!(
            golden_dir().join(format!("{}.toml", c.config)).exists(),
            "case {}: no config {}",
            c.name,
            c.config
        );
        for (i, s) in c.steps.iter().enumerate() {
            assert!(
                !s.input.is_empty(),
                "case {} step {}: no input",
                c.name,
                i + 1
            );
            let v = s.verdict.expect("verdict");
            if v == Expect::Tx {
                assert!(
                    s.out.is_some() == s.outany.is_empty(),
                    "case {} step {}: a tx step needs out or outany",
                    c.name,
                    i + 1
                );
            }
            if let Expect::Drop(r) = v {
                reasons.insert(r);
            }
            verdicts.insert(format!("{v:?}").split('(').next().unwrap_or("").to_string());
        }
    }
    for r in DropReason::ALL {
        if UNREACHABLE.iter().any(|(u, _)| *u == r) {
            continue;
        }
        assert!(
            reasons.contains(&r),
            "no golden case drops with {}",
            r.as_str()
        );
    }
    for v in ["Tx", "Host", "Held", "Drop"] {
        assert!(verdicts.contains(v), "no golden case expects {v}");
    }
    for enc in ["ipip", "gue", "vxlan"] {
        for fam in ["4in4", "4in6", "6in4", "6in6"] {
            let name = format!("{enc}-{fam}");
            assert!(names.contains(&name), "missing case {name}");
        }
    }
}

#[test]
fn config_source_mac_wins_over_the_interface_mac() {
    let mut h = Harness::from_file("features");
    let (v, out, _) = h.run(&tcp4_frame(CLIENT4, WEB4, 40000, 80, b"x"));
    assert_eq!(v, Verdict::Tx);
    assert_eq!(out[6..12], [0x02, 0, 0, 0, 0x02, 0x02]);
    assert_ne!(out[6..12], INTERFACE_MAC);
}

// ---------------------------------------------------------------------------
// Frames for the flow tests (built here, checksums included).

const CLIENT4: [u8; 4] = [198, 51, 100, 20];
const WEB4: [u8; 4] = [203, 0, 113, 1];
const MULTI4: [u8; 4] = [203, 0, 113, 3];
const ROUTER4: [u8; 4] = [198, 51, 100, 254];

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn ethernet(ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0x02, 0x02, 0x02, 0, 0, 0, 0xc1, 0x01];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An IPv4 header (checksum set) for `payload_len` bytes of `proto`.
fn ipv4_header(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    payload_len: usize,
    id: u16,
    frag: u16,
) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// A TCP segment (ACK) with its checksum over the IPv4 pseudo-header.
fn tcp_segment(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 0x50;
    t[13] = 0x10;
    t[14..16].copy_from_slice(&8192u16.to_be_bytes());
    t.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(t.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&t);
    let c = csum(&pseudo);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

fn tcp4_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let seg = tcp_segment(src, dst, sport, dport, payload);
    let mut f = ethernet(0x0800);
    f.extend(ipv4_header(src, dst, 6, seg.len(), sport, 0x4000));
    f.extend(seg);
    f
}

/// ICMP frag-needed from a router to `vip`, quoting the first 28 bytes of
/// the reply the target sent from `vip:vport` to `client:cport`.
fn frag_needed_frame(vip: [u8; 4], client: [u8; 4], vport: u16, cport: u16) -> Vec<u8> {
    let seg = tcp_segment(vip, client, vport, cport, b"");
    let mut quoted = ipv4_header(vip, client, 6, seg.len(), 1, 0x4000);
    quoted.extend_from_slice(&seg[..8]);
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
    icmp.extend(quoted);
    let c = csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = ethernet(0x0800);
    f.extend(ipv4_header(ROUTER4, vip, 1, icmp.len(), 7, 0));
    f.extend(icmp);
    f
}

/// The IP packet of a frame built by the helpers above (no VLAN tags).
fn ip_packet(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

/// The outer destination address of an encapsulated frame.
fn outer_dst(out: &[u8]) -> IpAddr {
    match u16::from_be_bytes([out[12], out[13]]) {
        0x0800 => IpAddr::V4(Ipv4Addr::new(out[30], out[31], out[32], out[33])),
        0x86dd => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&out[38..54]);
            IpAddr::V6(Ipv6Addr::from(a))
        }
        t => panic!("outer EtherType {t:#06x} is not IP"),
    }
}

/// The target (interface name of the fixture configs) an output frame goes
/// to, checking on the way that the inner packet is `inner`, untouched.
fn target_of(out: &[u8], inner: &[u8]) -> &'static str {
    assert!(
        out.ends_with(inner),
        "the inner packet is not the input packet, byte for byte"
    );
    let name = match outer_dst(out).to_string().as_str() {
        "10.0.3.11" => "t4",
        "fd00:3::12" => "t6",
        "10.0.4.1" => "m1",
        "10.0.4.2" => "m2",
        "fd00:4::3" => "m3",
        "fd00:4::4" => "m4",
        "10.0.4.5" => "m5",
        other => panic!("output to unknown underlay {other}"),
    };
    // VXLAN: the inner Ethernet goes to that interface's MAC.
    let inner_eth = &out[out.len() - inner.len() - 14..out.len() - inner.len()];
    let mac_last = match name {
        "t4" => 0x11,
        "t6" => 0x12,
        "m5" => 0x05,
        m => m.as_bytes()[1] - b'0',
    };
    assert_eq!(inner_eth[5], mac_last, "inner MAC of {name}");
    name
}

/// Sends one packet of each flow (TCP from `CLIENT4:port` to `vip:80`);
/// returns the target of each.
fn send_flows(
    h: &mut Harness,
    vip: [u8; 4],
    ports: impl Iterator<Item = u16>,
) -> BTreeMap<u16, &'static str> {
    ports
        .map(|port| {
            let f = tcp4_frame(CLIENT4, vip, port, 80, b"data");
            let (v, out, _) = h.run(&f);
            assert_eq!(v, Verdict::Tx, "flow from port {port}");
            (port, target_of(&out, ip_packet(&f)))
        })
        .collect()
}

fn spread(flows: &BTreeMap<u16, &'static str>) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for t in flows.values() {
        *m.entry(*t).or_default() += 1;
    }
    m
}

const FLOWS: std::ops::Range<u16> = 20_000..22_000;

#[test]
fn flows_stay_on_their_target() {
    let mut h = Harness::from_file("features");
    let first = send_flows(&mut h, MULTI4, FLOWS);
    assert_eq!(
        spread(&first).len(),
        4,
        "2000 flows should reach all 4 targets: {:?}",
        spread(&first)
    );
    // Interleaved rounds, payloads differ: every packet of a flow goes
    // where its first went.
    for round in 0..5u8 {
        for port in FLOWS.step_by(7) {
            let f = tcp4_frame(CLIENT4, MULTI4, port, 80, &[round; 100]);
            let (v, out, _) = h.run(&f);
            assert_eq!(v, Verdict::Tx);
            assert_eq!(
                target_of(&out, ip_packet(&f)),
                first[&port],
                "flow {port} round {round}"
            );
        }
    }
    // Identical packets give identical frames (outer ports included).
    let f = tcp4_frame(CLIENT4, MULTI4, 20_001, 80, b"same");
    let a = h.run(&f).1;
    for _ in 0..100 {
        assert_eq!(h.run(&f).1, a);
    }
    assert_eq!(h.counters().flow_picks.get(), FLOWS.len() as u64);
}

/// The features config with interface `name` moved out of the "multi"
/// selector.
fn without(text: &str, name: &str) -> String {
    let from = format!("name = \"{name}\"\nnetwork = \"net\"\nlabels = {{ app = \"multi\" }}");
    assert!(
        text.contains(&from),
        "interface {name} not found in the config"
    );
    text.replace(
        &from,
        &format!("name = \"{name}\"\nnetwork = \"net\"\nlabels = {{ app = \"gone\" }}"),
    )
}

/// The features config with `weights` on the "multi" load balancer.
fn with_weights(text: &str, weights: &str) -> String {
    let from = "name = \"multi\"\ntype = \"Internal\"\n";
    assert!(text.contains(from), "load balancer multi not found");
    text.replace(from, &format!("{from}weights = {{ {weights} }}\n"))
}

#[test]
fn removing_a_target_repicks_only_its_flows() {
    let text = config_text("features");
    let mut h = Harness::new(&text, "features.toml", &[]);
    let before = send_flows(&mut h, MULTI4, FLOWS);
    let on_m2 = before.values().filter(|t| **t == "m2").count();
    assert!(on_m2 > 200, "m2 has too few flows to judge: {on_m2}");

    h.republish(&without(&text, "m2"));
    let after = send_flows(&mut h, MULTI4, FLOWS);
    let mut moved_to = BTreeSet::new();
    for (port, old) in &before {
        let new = after[port];
        if *old == "m2" {
            assert_ne!(new, "m2", "flow {port} still goes to the removed target");
            moved_to.insert(new);
        } else {
            assert_eq!(
                new, *old,
                "flow {port} moved from surviving target {old} to {new}"
            );
        }
    }
    assert!(moved_to.len() > 1, "m2's flows should spread: {moved_to:?}");
    assert_eq!(h.counters().flow_repicks.get(), on_m2 as u64);
    // And they stay where they were re-picked.
    let again = send_flows(&mut h, MULTI4, FLOWS);
    assert_eq!(again, after);
    assert_eq!(h.counters().flow_repicks.get(), on_m2 as u64);
}

/// A flow seen before under the same tables skips the port filter (it
/// passed it under those tables); new tables must check it again.
#[test]
fn closing_a_port_drops_established_flows_and_reopening_restores_them() {
    let text = config_text("features");
    let mut h = Harness::new(&text, "features.toml", &[]);
    let before = send_flows(&mut h, MULTI4, FLOWS);
    let open = "name = \"multi\"\ntype = \"Internal\"\nnetwork = \"net\"\nips = [\"203.0.113.3\", \"2001:db8:1::3\"]\nnetwork_interface_selector = { match_labels = { app = \"multi\" } }\nports = [ { protocol = \"TCP\", port = 80 } ]";
    assert!(text.contains(open), "load balancer multi not found");
    let closed = text.replace(open, &open.replace("port = 80", "port = 8080"));
    h.republish(&closed);
    for port in FLOWS {
        let (v, _, _) = h.run(&tcp4_frame(CLIENT4, MULTI4, port, 80, b"data"));
        assert_eq!(
            v,
            Verdict::Drop(DropReason::PortNotAllowed),
            "flow {port} after port 80 closed"
        );
    }
    h.republish(&text);
    assert_eq!(send_flows(&mut h, MULTI4, FLOWS), before);
    assert_eq!(h.counters().flow_repicks.get(), 0);
}

#[test]
fn draining_a_target_keeps_its_flows_and_gives_it_no_new_ones() {
    let text = config_text("features");
    let mut h = Harness::new(&text, "features.toml", &[]);
    let before = send_flows(&mut h, MULTI4, FLOWS);
    let on_m3 = before.values().filter(|t| **t == "m3").count();
    assert!(on_m3 > 200, "m3 has too few flows to judge: {on_m3}");

    h.republish(&with_weights(&text, "\"m3\" = 0"));
    assert_eq!(
        send_flows(&mut h, MULTI4, FLOWS),
        before,
        "existing flows moved"
    );
    let new = send_flows(&mut h, MULTI4, 30_000..32_000);
    let s = spread(&new);
    assert!(
        !s.contains_key("m3"),
        "a new flow went to the drained target: {s:?}"
    );
    assert_eq!(s.len(), 3, "new flows should use the three others: {s:?}");
    assert_eq!(h.counters().flow_repicks.get(), 0);

    // Every target drained: existing flows stay, new ones have no target.
    h.republish(&with_weights(
        &text,
        "\"m1\" = 0, \"m2\" = 0, \"m3\" = 0, \"m4\" = 0",
    ));
    assert_eq!(send_flows(&mut h, MULTI4, FLOWS), before);
    let (v, _, _) = h.run(&tcp4_frame(CLIENT4, MULTI4, 40_000, 80, b"new"));
    assert_eq!(v, Verdict::Drop(DropReason::NoTarget));
}

#[test]
fn icmp_errors_follow_the_remembered_target() {
    let text = config_text("features");
    let mut h = Harness::new(&text, "features.toml", &[]);
    let flows = send_flows(&mut h, MULTI4, FLOWS);
    // A fifth target joins: Maglev now maps about a fifth of the hashes to
    // it, but live flows keep their target, and so must their ICMP errors.
    let m5 = "[[network_interface]]\nname = \"m5\"\nnetwork = \"net\"\nlabels = { app = \"multi\" }\nunderlay = \"10.0.4.5\"\nmac = \"02:00:00:00:04:05\"\n\n";
    let grown = text.replacen("[[load_balancer]]", &format!("{m5}[[load_balancer]]"), 1);
    h.republish(&grown);
    for (port, target) in &flows {
        let err = frag_needed_frame(MULTI4, CLIENT4, 80, *port);
        let (v, out, _) = h.run(&err);
        assert_eq!(v, Verdict::Tx, "ICMP error of flow {port}");
        assert_eq!(
            target_of(&out, ip_packet(&err)),
            *target,
            "ICMP error of flow {port}"
        );
    }
    assert_eq!(h.counters().icmp_errors_forwarded.get(), flows.len() as u64);
    // The test means something: new flows do reach m5.
    let new = spread(&send_flows(&mut h, MULTI4, 40_000..41_000));
    assert!(new.get("m5").copied().unwrap_or(0) > 100, "{new:?}");
}

#[test]
fn fragments_follow_their_flow_to_one_target() {
    let mut h = Harness::from_file("features");
    let mut targets = BTreeSet::new();
    for (n, port) in (50_000..50_200u16).enumerate() {
        // A TCP segment of 20 + 60 bytes in two fragments: 40 + 40.
        let seg = tcp_segment(CLIENT4, MULTI4, port, 80, &[n as u8; 60]);
        let id = 0x7000 + n as u16;
        let mut first = ethernet(0x0800);
        first.extend(ipv4_header(CLIENT4, MULTI4, 6, 40, id, 0x2000));
        first.extend_from_slice(&seg[..40]);
        let mut second = ethernet(0x0800);
        second.extend(ipv4_header(CLIENT4, MULTI4, 6, 40, id, 40 / 8));
        second.extend_from_slice(&seg[40..]);
        let whole = tcp4_frame(CLIENT4, MULTI4, port, 80, b"after");
        let (t_first, t_second) = if n % 2 == 0 {
            // In order.
            let (v1, o1, r1) = h.run(&first);
            let (v2, o2, r2) = h.run(&second);
            assert_eq!(
                (v1, v2, r1.len(), r2.len()),
                (Verdict::Tx, Verdict::Tx, 0, 0)
            );
            (
                target_of(&o1, ip_packet(&first)),
                target_of(&o2, ip_packet(&second)),
            )
        } else {
            // Second fragment first: held, released after the first.
            let (v2, _, r2) = h.run(&second);
            assert_eq!((v2, r2.len()), (Verdict::Held, 0));
            let (v1, o1, r1) = h.run(&first);
            assert_eq!((v1, r1.len()), (Verdict::Tx, 1));
            (
                target_of(&o1, ip_packet(&first)),
                target_of(&r1[0], ip_packet(&second)),
            )
        };
        assert_eq!(t_first, t_second, "fragments of flow {port} split");
        let (v, o, _) = h.run(&whole);
        assert_eq!(v, Verdict::Tx);
        assert_eq!(
            target_of(&o, ip_packet(&whole)),
            t_first,
            "flow {port} after its fragments"
        );
        targets.insert(t_first);
    }
    assert!(targets.len() > 1, "200 flows all went to {targets:?}");
}
