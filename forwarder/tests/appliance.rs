//! lbfwd as an appliance (issue 17), against the real tools:
//!
//! - a real Prometheus (Debian's) scrapes a running lbfwd (pcap backend: a
//!   capture of known frames, so every counter has a known value) and the
//!   test reads the series back through Prometheus' HTTP API; promtool lints
//!   the exposition;
//! - sd_notify: a datagram socket of the test stands in for systemd
//!   (READY, WATCHDOG, RELOADING/READY, STOPPING);
//! - the unit: `systemd-analyze verify` and `security --offline` (score);
//!   its system call filter and address families against what lbfwd really
//!   calls (strace);
//! - the Debian package: `scripts/package.sh` (with the binaries this test
//!   run built), lintian, `dpkg -i`, `dpkg -r`, `dpkg -P` (root only).
//!
//! Needs `lbctl` beside `lbfwd` (`cargo build -p lbfwd-control`; `cargo test
//! --workspace` builds it), prometheus, promtool, systemd-analyze, strace,
//! lintian and dpkg-dev (scripts/lib/deps.sh installs them). No namespaces:
//! everything listens on 127.0.0.1 at free ports.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const LBFWD: &str = env!("CARGO_BIN_EXE_lbfwd");
/// Longest wait for anything (start, a scrape, a message).
const DEADLINE: Duration = Duration::from_secs(60);
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn lbctl() -> PathBuf {
    let path = Path::new(LBFWD).with_file_name("lbctl");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p lbfwd-control` first",
        path.display()
    );
    path
}

fn unit_path() -> PathBuf {
    Path::new(ROOT).join("packaging/lbfwd.service")
}

/// A per-test directory, removed at the end.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let dir =
            std::env::temp_dir().join(format!("lbfwd-appliance-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed when the test ends, also on failure.
struct Running(Option<Child>);

impl Running {
    fn pid(&self) -> u32 {
        self.0.as_ref().map(Child::id).unwrap_or(0)
    }
    /// SIGTERM, then waits (at most the deadline) for the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!(
                    "pid {} did not stop within {DEADLINE:?} of SIGTERM",
                    child.id()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` over plain HTTP/1.1: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---- a capture with known frames -------------------------------------

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 + TCP SYN from 198.51.100.7:`sport` to 203.0.113.1:`dport`.
fn syn(sport: u16, dport: u16) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&1u32.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.extend_from_slice(&[5 << 4, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 6, 0, 0];
    ip[2..4].copy_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[198, 51, 100, 7, 203, 0, 113, 1]);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut frame = vec![2, 0, 0, 0, 1, 1, 2, 0, 0, 0, 2, 2, 0x08, 0x00];
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

/// Frames the capture holds: allowed (port 80) and filtered (port 81).
const ALLOWED: usize = 5;
const FILTERED: usize = 2;

fn write_capture(path: &Path) -> usize {
    let frames: Vec<Vec<u8>> = (0..ALLOWED)
        .map(|i| syn(1000 + i as u16, 80))
        .chain((0..FILTERED).map(|i| syn(2000 + i as u16, 81)))
        .collect();
    let mut out = Vec::new();
    for v in [
        0xa1b2c3d4u32.to_le_bytes().as_slice(),
        &2u16.to_le_bytes(),
        &4u16.to_le_bytes(),
    ] {
        out.extend_from_slice(v);
    }
    for v in [0u32, 0, 65535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        for v in [1u32, i as u32, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
    frames[..ALLOWED].iter().map(Vec::len).sum()
}

/// The outer IPv4 header IP-in-IP adds to each forwarded frame.
const IPIP_OVERHEAD: usize = 20;

/// A pcap-backend config: load balancer `web` (203.0.113.1, TCP 80) with
/// every interface of network `n` (`nics`: names) as destinations.
fn pcap_config(dir: &TestDir, metrics: Option<SocketAddr>, nics: &[&str]) -> String {
    let mut text = format!(
        r#"[dataplane]
backend = "pcap"
workers = [0]
idle = "backoff"

[dataplane.pcap]
input = "{input}"
output = "{output}"

[underlay]
encap = "ipip"
source_ipv4 = "10.0.2.2"
next_hop_mac = "02:00:00:00:02:01"

[control]
socket = "{socket}"
state_dir = "{state}"

[log]
format = "json"

[[pool]]
name = "public"
addresses = ["203.0.113.0/29"]

[[network]]
name = "n"
vni = 100

[[load_balancer]]
name = "web"
type = "Public"
network = "n"
ips = ["203.0.113.1"]
ports = [{{ protocol = "TCP", port = 80 }}]
network_interface_selector = {{}}
"#,
        input = dir.path("in.pcap").display(),
        output = dir.path("out.pcap").display(),
        socket = dir.path("lbfwd.sock").display(),
        state = dir.path("state").display(),
    );
    if let Some(addr) = metrics {
        text = text.replace("[log]", &format!("[metrics]\nlisten = \"{addr}\"\n\n[log]"));
    }
    for (i, nic) in nics.iter().enumerate() {
        text.push_str(&format!(
            "\n[[network_interface]]\nname = \"{nic}\"\nuid = \"uid-{nic}\"\nnetwork = \"n\"\nunderlay = \"10.0.3.{}\"\n",
            11 + i
        ));
    }
    text
}

fn start_lbfwd(dir: &TestDir, envs: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(LBFWD);
    cmd.args(["run", "--config"])
        .arg(dir.path("lbfwd.toml"))
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("LBFWD_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path("lbfwd.log")).unwrap());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Running(Some(cmd.spawn().expect("start lbfwd")))
}

fn lbctl_run(dir: &TestDir, args: &[&str]) -> Output {
    Command::new(lbctl())
        .arg("--socket")
        .arg(dir.path("lbfwd.sock"))
        .args(args)
        .output()
        .unwrap()
}

fn log_of(dir: &TestDir) -> String {
    std::fs::read_to_string(dir.path("lbfwd.log")).unwrap_or_default()
}

/// Runs promtool's linter on an exposition: (success, what it said).
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The value of the single series a PromQL query returns, once it has one.
fn query_value(prometheus: SocketAddr, promql: &str) -> Option<String> {
    let (status, body) = http_get(
        prometheus,
        &format!("/api/v1/query?query={}", percent_encode(promql)),
    )
    .ok()?;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str().map(str::to_string)
}

#[test]
fn prometheus_scrapes_lbfwd_and_reads_the_counters_back() {
    let dir = TestDir::new("prom");
    let bytes = write_capture(&dir.path("in.pcap"));
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    std::fs::write(
        dir.path("lbfwd.toml"),
        pcap_config(&dir, Some(metrics), &["nic-a"]),
    )
    .unwrap();
    let mut lbfwd = start_lbfwd(&dir, &[]);

    // The endpoint, straight: the capture's frames counted, lint-clean.
    let target =
        r#"lbfwd_target_packets_total{load_balancer="web",target="nic-a",uid="uid-nic-a"}"#;
    let text = wait_for("lbfwd's /metrics with the capture counted", || {
        let (status, body) = http_get(metrics, "/metrics").ok()?;
        (status == 200 && body.contains(&format!("{target} {ALLOWED}\n"))).then_some(body)
    });
    for line in [
        format!(
            r#"lbfwd_target_bytes_total{{load_balancer="web",target="nic-a",uid="uid-nic-a"}} {}"#,
            bytes + ALLOWED * IPIP_OVERHEAD
        ),
        format!(
            r#"lbfwd_dropped_packets_total{{worker="0",reason="port_not_allowed"}} {FILTERED}"#
        ),
        format!(r#"lbfwd_lb_filtered_packets_total{{load_balancer="web"}} {FILTERED}"#),
        format!(
            r#"lbfwd_received_packets_total{{worker="0"}} {}"#,
            ALLOWED + FILTERED
        ),
        format!(r#"lbfwd_flow_picks_total{{worker="0"}} {ALLOWED}"#),
        r#"lbfwd_dataplane_info{backend="pcap"} 1"#.to_string(),
        "lbfwd_table_version 1".to_string(),
        "# TYPE lbfwd_received_packets_total counter".to_string(),
        "# TYPE lbfwd_flows gauge".to_string(),
    ] {
        assert!(
            text.contains(&format!("{line}\n")),
            "no `{line}` in\n{text}"
        );
    }
    let (ok, said) = promtool_check(&text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics: {said}\n{text}"
    );
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    for t in &names {
        let (name, kind) = t.split_once(' ').unwrap();
        assert!(
            name.starts_with("lbfwd_") || name.starts_with("process_"),
            "{name}"
        );
        assert_eq!(kind == "counter", name.ends_with("_total"), "{t}");
    }

    // A real Prometheus scrapes it every second.
    let port = free_port();
    let prom_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    std::fs::write(
        dir.path("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: lbfwd\n    static_configs:\n      - targets: ['{metrics}']\n"
        ),
    )
    .unwrap();
    let prometheus = Running(Some(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (Debian package) runs"),
    ));
    let up = wait_for("Prometheus to scrape lbfwd", || {
        query_value(prom_addr, r#"up{job="lbfwd"}"#)
    });
    assert_eq!(up, "1", "lbfwd's target is down in Prometheus");
    for (promql, want) in [
        (
            r#"lbfwd_target_packets_total{load_balancer="web",target="nic-a"}"#.to_string(),
            ALLOWED.to_string(),
        ),
        (
            r#"sum(lbfwd_dropped_packets_total{reason="port_not_allowed"})"#.to_string(),
            FILTERED.to_string(),
        ),
        (
            format!(
                r#"lbfwd_build_info{{version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            ),
            "1".to_string(),
        ),
    ] {
        let got = wait_for(&promql, || query_value(prom_addr, &promql));
        assert_eq!(got, want, "{promql}");
    }
    // Scrapes leave no error behind in Prometheus.
    let (_, targets) = http_get(prom_addr, "/api/v1/targets").unwrap();
    let targets: Value = serde_json::from_str(&targets).unwrap();
    assert_eq!(
        targets["data"]["activeTargets"][0]["lastError"], "",
        "{targets}"
    );

    // A reload that adds a target: Prometheus sees the new table version
    // and the second destination.
    std::fs::write(
        dir.path("lbfwd.toml"),
        pcap_config(&dir, Some(metrics), &["nic-a", "nic-b"]),
    )
    .unwrap();
    let out = lbctl_run(&dir, &["reload"]);
    assert!(out.status.success(), "lbctl reload: {out:?}");
    for (promql, want) in [
        ("lbfwd_table_version", "2"),
        ("lbfwd_table_publishes_total", "1"),
        (r#"lbfwd_lb_targets{load_balancer="web"}"#, "2"),
    ] {
        let got = wait_for(&format!("{promql} = {want}"), || {
            query_value(prom_addr, promql).filter(|v| v == want)
        });
        assert_eq!(got, want);
    }
    drop(prometheus);

    let status = lbfwd.terminate();
    assert!(status.success(), "lbfwd exited {status}: {}", log_of(&dir));
    let log = log_of(&dir);
    // JSON lines on request; no sd_notify without NOTIFY_SOCKET.
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    assert!(log.contains(r#""message":"metrics: http://"#), "{log}");
    assert!(
        !log.contains("sd_notify") && !log.contains("ready:"),
        "{log}"
    );
}

/// Reads datagrams until one starts with `want` (skipping `WATCHDOG=1`);
/// returns it and what came before.
fn recv_until(socket: &UnixDatagram, want: &str) -> (String, Vec<String>) {
    let started = Instant::now();
    let mut before = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            started.elapsed() < DEADLINE,
            "no {want} within {DEADLINE:?}; got {before:?}"
        );
        match socket.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.starts_with(want) {
                    return (msg, before);
                }
                before.push(msg);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
}

#[test]
fn sd_notify_ready_watchdog_reload_and_stop() {
    let dir = TestDir::new("notify");
    write_capture(&dir.path("in.pcap"));
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    std::fs::write(
        dir.path("lbfwd.toml"),
        pcap_config(&dir, Some(metrics), &["nic-a"]),
    )
    .unwrap();
    let socket_path = dir.path("notify.sock");
    let systemd = UnixDatagram::bind(&socket_path).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // 400 ms: a keep-alive every 200 ms.
    let mut lbfwd = start_lbfwd(
        &dir,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );

    let (ready, before) = recv_until(&systemd, "READY=1");
    assert!(before.is_empty(), "before READY=1: {before:?}");
    assert!(
        ready.contains("\nSTATUS=pcap backend, 1 worker(s)"),
        "{ready}"
    );
    // READY means the socket serves and the workers run.
    let status = lbctl_run(&dir, &["-o", "json", "status"]);
    assert!(
        status.status.success(),
        "lbctl status after READY: {status:?}"
    );
    let (code, _) = http_get(metrics, "/metrics").unwrap();
    assert_eq!(code, 200);

    // The watchdog is fed about every 200 ms.
    let started = Instant::now();
    let mut pings = 0;
    let mut buf = [0u8; 256];
    while pings < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "only {pings} WATCHDOG=1 in 10 s"
        );
        if let Ok(n) = systemd.recv(&mut buf) {
            assert_eq!(&buf[..n], b"WATCHDOG=1");
            pings += 1;
        }
    }
    let per_ping = started.elapsed() / 4;
    assert!(
        per_ping < Duration::from_millis(400),
        "a ping every {per_ping:?}"
    );

    // lbctl reload: RELOADING=1, then READY=1.
    let out = lbctl_run(&dir, &["reload"]);
    assert!(out.status.success(), "lbctl reload: {out:?}");
    let (reloading, _) = recv_until(&systemd, "RELOADING=1");
    assert!(reloading.contains("STATUS=reloading"), "{reloading}");
    let (ready, _) = recv_until(&systemd, "READY=1");
    assert!(ready.contains("STATUS=reloaded"), "{ready}");

    // A refused reload (settings changed) also ends in READY=1: lbfwd runs on.
    let changed = pcap_config(&dir, None, &["nic-a"]);
    std::fs::write(dir.path("lbfwd.toml"), changed).unwrap();
    let out = lbctl_run(&dir, &["reload"]);
    assert_eq!(out.status.code(), Some(5), "refused reload: {out:?}");
    recv_until(&systemd, "RELOADING=1");
    let (ready, _) = recv_until(&systemd, "READY=1");
    assert!(ready.contains("STATUS=reload refused"), "{ready}");

    // SIGTERM: STOPPING=1 before lbfwd exits.
    let pid = lbfwd.pid();
    let status = lbfwd.terminate();
    assert!(
        status.success(),
        "lbfwd {pid} exited {status}: {}",
        log_of(&dir)
    );
    let (stopping, _) = recv_until(&systemd, "STOPPING=1");
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    systemd
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut rest = Vec::new();
    while let Ok(n) = systemd.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(rest.is_empty(), "after STOPPING=1: {rest:?}");
}

/// The unit's `SystemCallFilter=` lines as (allowed, denied) call sets,
/// groups expanded by `systemd-analyze syscall-filter`.
fn unit_syscall_sets(unit: &str) -> (Vec<String>, Vec<String>) {
    let out = Command::new("systemd-analyze")
        .arg("syscall-filter")
        .output()
        .expect("systemd-analyze runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut current = None;
    for line in text.lines() {
        if line.starts_with('@') {
            current = Some(line.trim().to_string());
            groups.insert(line.trim().to_string(), Vec::new());
        } else if let (Some(g), item) = (&current, line.trim()) {
            if !item.is_empty() && !item.starts_with('#') {
                groups.get_mut(g).unwrap().push(item.to_string());
            }
        }
    }
    fn expand(
        groups: &std::collections::BTreeMap<String, Vec<String>>,
        item: &str,
        out: &mut Vec<String>,
    ) {
        match groups.get(item) {
            Some(members) => {
                for m in members {
                    expand(groups, m, out);
                }
            }
            None => out.push(item.to_string()),
        }
    }
    let (mut allowed, mut denied) = (Vec::new(), Vec::new());
    for line in unit.lines() {
        let Some(value) = line.strip_prefix("SystemCallFilter=") else {
            continue;
        };
        let (list, value) = match value.strip_prefix('~') {
            Some(v) => (&mut denied, v),
            None => (&mut allowed, value),
        };
        for item in value.split_whitespace() {
            assert!(
                !item.starts_with('@') || groups.contains_key(item),
                "unknown group {item}"
            );
            expand(&groups, item, list);
        }
    }
    (allowed, denied)
}

#[test]
fn unit_verifies_rates_secure_and_allows_what_lbfwd_calls() {
    let unit = std::fs::read_to_string(unit_path()).unwrap();
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "ExecStartPre=/usr/bin/lbfwd check --config /etc/lbfwd/lbfwd.toml",
        "ExecReload=/usr/bin/lbctl",
        "ProtectSystem=strict",
        "RuntimeDirectory=lbfwd",
        "StateDirectory=lbfwd",
        "LimitMEMLOCK=infinity",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=",
        "SystemCallFilter=",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(key)),
            "the unit has no {key}"
        );
    }

    // verify: the unit as it is, with the commands pointing at this build.
    let dir = TestDir::new("unit");
    let lbctl = lbctl();
    let local = unit
        .replace("/usr/bin/lbfwd", LBFWD)
        .replace("/usr/bin/lbctl", lbctl.to_str().unwrap());
    std::fs::write(dir.path("lbfwd.service"), local).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path("lbfwd.service"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify: {out:?}"
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for lbfwd.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {text}"));
    assert!(score <= 4.0, "exposure {score} > 4.0:\n{text}");

    // What lbfwd really calls (start, serve metrics and lbctl, reload, stop)
    // is in the unit's system call filter, and its sockets' families in
    // RestrictAddressFamilies.
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("strace is missing (apt-get install strace; scripts/lib/deps.sh installs it)");
    }
    write_capture(&dir.path("in.pcap"));
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    std::fs::write(
        dir.path("lbfwd.toml"),
        pcap_config(&dir, Some(metrics), &["nic-a"]),
    )
    .unwrap();
    let trace = dir.path("trace");
    let _systemd = UnixDatagram::bind(dir.path("notify.sock")).unwrap();
    let mut traced = Running(Some(
        Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&trace)
            .arg(LBFWD)
            .args(["run", "--config"])
            .arg(dir.path("lbfwd.toml"))
            .env("NOTIFY_SOCKET", dir.path("notify.sock"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    wait_for("lbfwd under strace to serve metrics", || {
        http_get(metrics, "/metrics")
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    assert!(lbctl_run(&dir, &["stats"]).status.success());
    assert!(lbctl_run(&dir, &["reload"]).status.success());
    // SIGTERM to lbfwd itself (strace's child), then strace ends.
    let pid = wait_for("lbfwd's pid", || {
        let out = lbctl_run(&dir, &["-o", "json", "status"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["pid"].as_u64()
    });
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let child = traced.0.as_mut().unwrap();
    wait_for("strace to end", || child.try_wait().unwrap());
    traced.0 = None;

    check_trace(&unit, &std::fs::read_to_string(&trace).unwrap());
}

/// Checks an `strace -f` log of lbfwd against the unit: every system call
/// in its filter (and none denied), every socket family allowed.
fn check_trace(unit: &str, trace: &str) {
    let mut calls: Vec<String> = trace
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest.trim_start()))
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty() && rest[name.len()..].starts_with('(')).then_some(name)
        })
        .collect();
    calls.sort();
    calls.dedup();
    assert!(
        calls.len() > 20 && calls.iter().any(|c| c == "sendto"),
        "{calls:?}"
    );
    let (allowed, denied) = unit_syscall_sets(unit);
    let refused: Vec<&String> = calls
        .iter()
        .filter(|c| !allowed.contains(c) || denied.contains(c))
        .collect();
    assert!(
        refused.is_empty(),
        "lbfwd calls what the unit refuses: {refused:?}"
    );
    let families_line = unit
        .lines()
        .find_map(|l| l.strip_prefix("RestrictAddressFamilies="))
        .unwrap();
    for line in trace.lines().filter(|l| l.contains(" socket(")) {
        let family = line
            .split("socket(")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or("");
        assert!(
            families_line.split_whitespace().any(|f| f == family),
            "lbfwd opens a {family} socket the unit does not allow: {line}"
        );
    }
}

/// A network namespace with a veth pair `lbapl0` (up, for lbfwd) /
/// `lbapl1`, deleted at the end.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("lbapl-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ns = Netns(name);
        for args in [
            vec!["netns", "add", &ns.0],
            vec!["-n", &ns.0, "link", "set", "lo", "up"],
            vec![
                "-n", &ns.0, "link", "add", "lbapl0", "type", "veth", "peer", "name", "lbapl1",
            ],
            vec!["-n", &ns.0, "link", "set", "lbapl0", "up"],
            vec!["-n", &ns.0, "link", "set", "lbapl1", "up"],
        ] {
            let out = Command::new("ip").args(&args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// The kernel backends under strace, in a namespace: what af_packet (and,
/// when built in, af_xdp) call is in the unit's filter too.
#[test]
fn unit_allows_what_the_kernel_backends_call() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespace, packet sockets)");
        return;
    }
    let unit = std::fs::read_to_string(unit_path()).unwrap();
    let mut backends = vec!["af_packet"];
    if cfg!(feature = "af_xdp") {
        backends.push("af_xdp");
    }
    for backend in backends {
        let dir = TestDir::new(&format!("trace-{backend}"));
        let ns = Netns::new();
        let mut config = pcap_config(&dir, None, &["nic-a"]).replace(
            "backend = \"pcap\"",
            &format!("backend = \"{backend}\"\ninterfaces = [\"lbapl0\"]"),
        );
        let pcap = config.find("[dataplane.pcap]").unwrap();
        let underlay = config.find("[underlay]").unwrap();
        config.replace_range(pcap..underlay, "");
        if backend == "af_xdp" {
            config = config.replace(
                "[underlay]",
                "[dataplane.af_xdp]\nattach = \"generic\"\nmode = \"copy\"\n\n[underlay]",
            );
        }
        std::fs::write(dir.path("lbfwd.toml"), &config).unwrap();
        let trace = dir.path("trace");
        let _systemd = UnixDatagram::bind(dir.path("notify.sock")).unwrap();
        let mut traced = Running(Some(
            Command::new("ip")
                .args(["netns", "exec", &ns.0, "strace", "-f", "-qq", "-o"])
                .arg(&trace)
                .arg(LBFWD)
                .args(["run", "--config"])
                .arg(dir.path("lbfwd.toml"))
                .env("NOTIFY_SOCKET", dir.path("notify.sock"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path("lbfwd.log")).unwrap())
                .spawn()
                .unwrap(),
        ));
        let pid = wait_for(&format!("{backend} lbfwd under strace to answer"), || {
            let out = lbctl_run(&dir, &["-o", "json", "status"]);
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            v["pid"].as_u64()
        });
        assert!(lbctl_run(&dir, &["stats"]).status.success());
        assert!(lbctl_run(&dir, &["reload"]).status.success());
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let child = traced.0.as_mut().unwrap();
        let status = wait_for("strace to end", || child.try_wait().unwrap());
        traced.0 = None;
        assert!(status.success(), "{backend}: {}", log_of(&dir));
        let text = std::fs::read_to_string(&trace).unwrap();
        assert!(
            text.contains(if backend == "af_xdp" {
                "socket(AF_XDP"
            } else {
                "socket(AF_PACKET"
            }),
            "{backend} opened no socket of its own"
        );
        check_trace(&unit, &text);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Purges the package when the test ends, also on failure.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-P", "lbfwd"]).output();
    }
}

#[test]
fn debian_package_builds_lints_installs_and_removes() {
    if !is_root() {
        eprintln!("skipped: needs root (dpkg -i)");
        return;
    }
    assert!(
        !dpkg_installed("lbfwd"),
        "a package lbfwd is installed on this machine already; not touching it"
    );
    let lbctl = lbctl();
    let bin_dir = Path::new(LBFWD).parent().unwrap();
    assert_eq!(lbctl.parent().unwrap(), bin_dir);
    // The binaries this test run built (stripped by the script): no
    // second, release build.
    let out = Command::new(Path::new(ROOT).join("scripts/package.sh"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "package.sh: {said}");
    assert!(!said.contains("\nE: "), "lintian errors: {said}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = stdout.lines().last().unwrap_or("").trim();
    let deb = Path::new(ROOT).join(deb);
    assert!(
        deb.file_name().unwrap().to_str().unwrap()
            == format!("lbfwd_{}_amd64.deb", env!("CARGO_PKG_VERSION")),
        "{}",
        deb.display()
    );

    let field = |name: &str| {
        let out = Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg(name)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let depends = field("Depends");
    assert!(depends.contains("libc6"), "Depends: {depends}");
    if cfg!(feature = "af_xdp") {
        assert!(
            depends.contains("libxdp1") && depends.contains("libbpf1"),
            "Depends: {depends}"
        );
    }
    if cfg!(feature = "dpdk") {
        assert!(depends.contains("librte-eal"), "Depends: {depends}");
    }
    assert_eq!(field("Recommends"), "bird2, keepalived");

    let _purge = Purge;
    let run = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["dpkg", "-i", deb.to_str().unwrap()]);
    assert!(dpkg_installed("lbfwd"));
    for path in [
        "/usr/bin/lbfwd",
        "/usr/bin/lbctl",
        "/lib/systemd/system/lbfwd.service",
        "/etc/lbfwd/lbfwd.toml",
        "/usr/share/doc/lbfwd/copyright",
        "/usr/share/doc/lbfwd/examples/dpdk.conf",
        "/usr/share/man/man1/lbfwd.1.gz",
        "/usr/share/man/man1/lbctl.1.gz",
        "/usr/share/man/man1/lbctl-reload.1.gz",
        "/usr/share/bash-completion/completions/lbctl",
        "/usr/share/bash-completion/completions/lbfwd",
        "/usr/share/zsh/vendor-completions/_lbctl",
        "/usr/share/fish/vendor_completions.d/lbfwd.fish",
    ] {
        assert!(Path::new(path).exists(), "{path} not installed");
    }
    let conffiles = run(&["dpkg-query", "-W", "-f=${Conffiles}", "lbfwd"]);
    assert!(conffiles.contains("/etc/lbfwd/lbfwd.toml"), "{conffiles}");
    // The installed default config passes the installed lbfwd's check,
    // and the installed unit verifies clean (commands, man pages).
    run(&[
        "/usr/bin/lbfwd",
        "check",
        "--config",
        "/etc/lbfwd/lbfwd.toml",
    ]);
    let out = Command::new("systemd-analyze")
        .args(["verify", "/lib/systemd/system/lbfwd.service"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify (installed): {out:?}"
    );
    let man = run(&["man", "-P", "cat", "lbctl"]);
    assert!(man.contains("reload"), "{man}");
    let completion =
        std::fs::read_to_string("/usr/share/bash-completion/completions/lbctl").unwrap();
    assert!(completion.contains("reload"), "{completion}");

    // remove: the programs go, the conffile stays; purge: it goes too.
    run(&["dpkg", "-r", "lbfwd"]);
    assert!(!Path::new("/usr/bin/lbfwd").exists() && !Path::new("/usr/bin/lbctl").exists());
    assert!(
        Path::new("/etc/lbfwd/lbfwd.toml").exists(),
        "dpkg -r keeps the conffile"
    );
    run(&["dpkg", "-P", "lbfwd"]);
    assert!(
        !Path::new("/etc/lbfwd").exists(),
        "dpkg -P leaves /etc/lbfwd"
    );
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "lbfwd"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("installed"),
        "{status:?}"
    );
    assert!(!Path::new("/lib/systemd/system/lbfwd.service").exists());
}

#[test]
fn bad_metrics_and_log_settings_are_located_and_a_taken_port_stops_the_start() {
    let dir = TestDir::new("bad");
    write_capture(&dir.path("in.pcap"));
    let good = pcap_config(&dir, Some("127.0.0.1:9".parse().unwrap()), &["nic-a"]);
    let bad = good
        .replace("listen = \"127.0.0.1:9\"", "listen = \"localhost:metrics\"")
        .replace(
            "format = \"json\"",
            "format = \"json\"\nlevel = \"info,lbfwd=loud\"",
        );
    let config = dir.path("lbfwd.toml");
    std::fs::write(&config, &bad).unwrap();
    let line_of = |key: &str| bad.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    let out = Command::new(LBFWD)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let file = config.display().to_string();
    for (key, what) in [
        (
            "listen",
            "metrics.listen: \"localhost:metrics\" is not an address and port",
        ),
        (
            "level",
            "log.level: \"lbfwd=loud\": \"loud\" is not a level",
        ),
    ] {
        let want = format!("{file}:{}:", line_of(key));
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&want) && l.contains(what)),
            "no `{want}...{what}` in\n{stderr}"
        );
    }

    // A port another process holds: lbfwd run refuses to start, saying so.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap();
    std::fs::write(&config, pcap_config(&dir, Some(taken), &["nic-a"])).unwrap();
    let out = Command::new(LBFWD)
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "[metrics] listen = \\\"{taken}\\\": cannot listen"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("final counters"),
        "no worker ran: {stderr}"
    );
}
