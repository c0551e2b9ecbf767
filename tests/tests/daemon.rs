//! The control plane end to end: a running `lbfwd run` driven through
//! `lbctl` (issue 5, "Done when").
//!
//! Two kinds of test:
//!
//! - control only: `backend = "memory"` (no traffic, workers idle with
//!   `idle = "backoff"`), socket and state directory in a per-test temporary
//!   directory, lbfwd in the root namespace;
//! - forwarding: the namespace network of `scripts/lib/topo.sh` (client,
//!   router, lbfwd on AF_PACKET in the lb namespace, backends be1-be3 that
//!   answer HTTP with their name), with real curl clients and long-lived
//!   keep-alive connections (`tests/support/flowprobe.py`, asking on
//!   demand); these need root and are skipped, loudly, without it.
//!
//! Everything that drives processes, the network and lbfwd is the harness of
//! this crate (`lbfwd_tests`); lbfwd and lbctl are the binaries it builds
//! once per test binary (`lbfwd_tests::binaries`). Every test cleans up after
//! itself, also when it fails: lbfwd is stopped by its guard (SIGTERM, then
//! SIGKILL), the network is taken down by another, the test's directory by a
//! third. Every wait has a deadline. Run as root with
//! `flock /tmp/lbfwd-netns.lock cargo test -p lbfwd-tests --test daemon -- --test-threads=1`.

use lbfwd_tests::client::http_many;
use lbfwd_tests::cmd::{self, Output};
use lbfwd_tests::daemon::{self, READY_TIMEOUT, STOP_TIMEOUT};
use lbfwd_tests::{
    lbfwd_binaries, require_root, serial, Backend, Binaries, ConfigOptions, FlowProbe, Idle, Lbfwd,
    Topology, TopologyInfo,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The limit on one lbctl run.
const LBCTL_TIMEOUT: Duration = daemon::LBCTL_TIMEOUT;
/// The control server's idle timeout (`DEFAULT_IDLE_TIMEOUT` in
/// control/src/server.rs).
const SERVER_IDLE: Duration = Duration::from_secs(5);
/// The control server's connection limit (`DEFAULT_MAX_CLIENTS`).
const SERVER_MAX_CLIENTS: usize = 64;
/// The request size limit (`DEFAULT_MAX_REQUEST_BYTES`).
const MAX_REQUEST: usize = 1 << 20;
/// Fresh HTTP connections per check: with three backends the chance that
/// one of them gets none of them by luck is 3 * (2/3)^45, about 3.6e-8
/// (with 30 it was 1.6e-5, and a run makes several such checks).
const CURLS: usize = 45;
/// The VIPs of `scripts/lib/topo.sh` (checked against `topo.sh env` when a
/// network comes up).
const VIP4: &str = "203.0.113.10";
const VIP6: &str = "2001:db8:100::10";

// ---------------------------------------------------------------------------
// Processes

/// lbfwd and lbctl as the harness builds them (the workspace's test build,
/// every backend feature this machine can build; see
/// `lbfwd_tests::binaries`). The memory backend is in every build.
fn bins() -> &'static Binaries {
    static BINS: OnceLock<Binaries> = OnceLock::new();
    BINS.get_or_init(|| match lbfwd_binaries(Backend::AfPacket) {
        Ok(Some(b)) => b,
        Ok(None) => panic!("af_packet is in every build of lbfwd, yet none was found"),
        Err(e) => panic!("the binaries under test: {e}"),
    })
}

/// Runs `cmd` to its end, at most `limit`; a command that runs longer is
/// killed and fails the test.
#[track_caller]
fn run(cmd: &mut Command, limit: Duration) -> Output {
    cmd::run(cmd, limit).unwrap_or_else(|e| panic!("{e}"))
}

/// `lbctl --socket SOCKET ARGS...`, whatever its exit status.
#[track_caller]
fn lbctl(socket: &Path, args: &[&str]) -> Output {
    daemon::lbctl(bins(), socket, args).unwrap_or_else(|e| panic!("{e}"))
}

/// The saved state in `state_dir` and its previous copy, as bytes (`None`:
/// absent).
fn saved(state_dir: &Path) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    (
        std::fs::read(state_dir.join("state.toml")).ok(),
        std::fs::read(state_dir.join("state.toml.prev")).ok(),
    )
}

/// A fresh directory for one test, removed at the end.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let path = std::env::temp_dir().join(format!("lbfwd-daemon-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TestDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` in the directory; returns the path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        write(&self.0, name, text)
    }

    fn socket(&self) -> PathBuf {
        self.join("run/lbfwd.sock")
    }

    fn state_dir(&self) -> PathBuf {
        self.join("state")
    }

    /// The saved state and its previous copy, as bytes (`None`: absent).
    fn saved(&self) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        saved(&self.state_dir())
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `text` to `dir/name`; returns the path.
#[track_caller]
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

// ---------------------------------------------------------------------------
// lbfwd and lbctl

/// The harness's [`Lbfwd`], with every failure a test failure, and the
/// lbctl calls these tests make.
struct Daemon {
    lbfwd: Lbfwd,
    socket: PathBuf,
}

impl Daemon {
    /// Starts lbfwd in the root namespace without waiting for it.
    #[track_caller]
    fn spawn(dir: &TestDir, config: &Path) -> Daemon {
        let lbfwd = Lbfwd::spawn_local(bins(), config, &dir.socket(), &dir.0)
            .unwrap_or_else(|e| panic!("{e}"));
        Daemon {
            socket: lbfwd.socket(),
            lbfwd,
        }
    }

    /// Starts lbfwd and waits until it answers `lbctl status`.
    #[track_caller]
    fn start(dir: &TestDir, config: &Path) -> Daemon {
        let mut d = Daemon::spawn(dir, config);
        d.wait_ready();
        d
    }

    /// Starts this lbfwd again (same config, same namespace) after it ended.
    #[track_caller]
    fn respawn(&mut self) {
        self.lbfwd.respawn().unwrap_or_else(|e| panic!("{e}"));
    }

    #[track_caller]
    fn pid(&self) -> u32 {
        self.lbfwd.pid().expect("lbfwd runs")
    }

    /// This run's output so far.
    fn log(&self) -> String {
        self.lbfwd.log()
    }

    #[track_caller]
    fn assert_running(&mut self) {
        self.lbfwd.check_running().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits until `lbctl status` answers; fails as soon as lbfwd exits.
    #[track_caller]
    fn wait_ready(&mut self) {
        self.lbfwd
            .wait_control(READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits for lbfwd to end by itself (a refused start); returns its exit
    /// status.
    #[track_caller]
    fn wait_exit(&mut self) -> ExitStatus {
        self.lbfwd
            .wait_exit(STOP_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `kill -9`; fails unless SIGKILL ended lbfwd.
    #[track_caller]
    fn kill9(&mut self) {
        self.lbfwd.kill9().unwrap_or_else(|e| panic!("{e}"));
    }

    /// SIGTERM; fails unless lbfwd exits with 0 in time.
    #[track_caller]
    fn stop(&mut self) {
        self.lbfwd.stop().unwrap_or_else(|e| panic!("{e}"));
    }

    /// `lbctl --socket SOCKET ARGS...`.
    #[track_caller]
    fn lbctl(&self, args: &[&str]) -> Output {
        lbctl(&self.socket, args)
    }

    /// `lbctl ARGS...`, which must succeed; returns its stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        self.lbfwd
            .lbctl_ok(args)
            .unwrap_or_else(|e| panic!("expected success: {e}"))
    }

    /// `lbctl ARGS...`, which must fail with `code`.
    #[track_caller]
    fn fails(&self, args: &[&str], code: i32) -> Output {
        let out = self.lbctl(args);
        assert_eq!(
            out.code,
            Some(code),
            "expected exit code {code}:\n{}",
            out.describe()
        );
        out
    }

    /// `lbctl -o json ARGS...`, which must succeed; returns the JSON.
    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        self.lbfwd
            .lbctl_json(args)
            .unwrap_or_else(|e| panic!("lbctl {args:?}: {e}"))
    }

    fn export(&self) -> String {
        self.ok(&["export"])
    }

    fn table_version(&self) -> u64 {
        self.json(&["status"])["table_version"]
            .as_u64()
            .expect("status has table_version")
    }
}

/// The names of a load balancer's or routing's destinations (`-o json`).
fn destinations(object: &Value) -> Vec<String> {
    let status = &object["status"];
    let dests = status["load_balancer"]["destinations"]
        .as_array()
        .or_else(|| status["routing"]["destinations"].as_array())
        .unwrap_or_else(|| panic!("no destinations in {object:#}"));
    dests
        .iter()
        .map(|d| d["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// A destination's weight (`-o json` of a load balancer or routing).
fn weight_of(object: &Value, dest: &str) -> u64 {
    let status = &object["status"];
    status["load_balancer"]["destinations"]
        .as_array()
        .or_else(|| status["routing"]["destinations"].as_array())
        .and_then(|d| d.iter().find(|d| d["name"] == dest))
        .and_then(|d| d["weight"].as_u64())
        .unwrap_or_else(|| panic!("no destination {dest} in {object:#}"))
}

/// A load balancer's addresses as `ADDR@POOL` (`-o json` of `lb get`).
fn addresses(object: &Value) -> Vec<String> {
    object["status"]["load_balancer"]["ips"]
        .as_array()
        .unwrap_or_else(|| panic!("no ips in {object:#}"))
        .iter()
        .map(|a| {
            format!(
                "{}@{}",
                a["addr"].as_str().unwrap_or("?"),
                a["pool"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------
// Configurations

/// Three interfaces in network `n`, all labelled app=web.
const NICS: &str = r#"
[[network_interface]]
name = "be1"
uid = "00000000-0000-4000-8000-000000000001"
network = "n"
labels = { app = "web" }
underlay = "10.0.3.11"
mac = "02:00:00:00:10:11"

[[network_interface]]
name = "be2"
uid = "00000000-0000-4000-8000-000000000002"
network = "n"
labels = { app = "web" }
underlay = "10.0.3.12"
mac = "02:00:00:00:10:12"

[[network_interface]]
name = "be3"
uid = "00000000-0000-4000-8000-000000000003"
network = "n"
labels = { app = "web" }
underlay = "10.0.3.13"
mac = "02:00:00:00:10:13"
"#;

/// `base`: a load balancer holding 203.0.113.0 explicitly, without
/// destinations of its own (routing to be1).
const BASE_LB: &str = r#"
[[load_balancer]]
name = "base"
type = "Public"
ip_families = ["IPv4"]
ips = ["203.0.113.0"]
network = "n"
ports = [ { protocol = "UDP", port = 53 } ]

[[load_balancer_routing]]
name = "base"
destinations = [ { name = "be1" } ]
"#;

/// `web`: selects app=web, its address comes from the pool.
const WEB_LB: &str = r#"
[[load_balancer]]
name = "web"
type = "Public"
network = "n"
network_interface_selector = { match_labels = { app = "web" } }
ports = [ { protocol = "TCP", port = 80 } ]
"#;

/// A memory-backend config: appliance settings, a pool of 8 IPv4 and 8
/// IPv6 addresses, network `n` (VNI 100), [`NICS`], then `state`.
fn memory_config(dir: &TestDir, settings_extra: &str, state: &str) -> String {
    format!(
        r#"[dataplane]
backend = "memory"
interfaces = []
workers = [0]
idle = "backoff"

[underlay]
encap = "vxlan"
source_ipv4 = "10.0.2.2"
source_ipv6 = "fd00:2::2"
next_hop_mac = "02:00:00:00:02:01"

[control]
socket = "{}"
state_dir = "{}"
{settings_extra}
[[pool]]
name = "public"
addresses = ["203.0.113.0/29", "2001:db8:100::/125"]

[[network]]
name = "n"
vni = 100
{NICS}{state}"#,
        dir.socket().display(),
        dir.state_dir().display(),
    )
}

/// Starts a memory-backend lbfwd on `memory_config(dir, "", state)`.
fn start_memory(dir: &TestDir, state: &str) -> Daemon {
    let config = dir.write("lbfwd.toml", &memory_config(dir, "", state));
    Daemon::start(dir, &config)
}

// ---------------------------------------------------------------------------
// Raw control clients

/// A client that speaks the wire protocol itself (lbctl would refuse to send
/// most of what these tests send).
struct Raw {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Raw {
    fn connect(socket: &Path) -> Raw {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()));
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(15)))
            .expect("write timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        Raw { stream, reader }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to lbfwd");
    }

    /// The next line; `None` at end of stream (or a reset after it).
    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("no answer from lbfwd: {e}"),
        }
    }

    /// Sends one line, returns the answer as JSON.
    fn request(&mut self, line: &[u8]) -> Value {
        let mut bytes = line.to_vec();
        bytes.push(b'\n');
        self.send(&bytes);
        let answer = self.line().expect("lbfwd answered");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("bad answer line ({e}): {answer}"))
    }

    /// Whether lbfwd closed the connection (nothing more to read).
    fn closed(&mut self) -> bool {
        self.line().is_none()
    }
}

/// The error code of an answer; fails on a success.
#[track_caller]
fn error_code(answer: &Value) -> String {
    assert_eq!(answer["version"], 1, "answer without version 1: {answer}");
    answer["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {answer}"))
        .to_owned()
}

/// Connects and reads the first answer line that is not `busy`: a client
/// refused because lbfwd serves its maximum of clients tries again (as a
/// script would after lbctl's exit code 7). Returns the connection and how
/// many times it was refused.
fn connect_patiently(socket: &Path) -> (Raw, u32) {
    let mut refused = 0;
    loop {
        let mut c = Raw::connect(socket);
        // A refusal is sent at once; a served connection says nothing yet.
        c.stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("read timeout");
        let mut line = String::new();
        match c.reader.read_line(&mut line) {
            Ok(n) if n > 0 => {
                let answer: Value = serde_json::from_str(&line).expect("JSON");
                assert_eq!(error_code(&answer), "busy", "unasked answer: {answer}");
                refused += 1;
                assert!(refused < 100, "lbfwd stayed busy");
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(_) => panic!("lbfwd closed a fresh connection"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                c.stream
                    .set_read_timeout(Some(Duration::from_secs(15)))
                    .expect("read timeout");
                return (c, refused);
            }
            Err(e) => panic!("reading from lbfwd: {e}"),
        }
    }
}

/// Throws every kind of bad client at the control socket: more clients
/// than the limit, clients that say nothing or half a request, malformed
/// JSON, unknown operations, wrong versions and bodies, oversized requests
/// (with and without newline), clients that leave mid-request or without
/// reading their answer, many clients at once. Each gets its error or is
/// dropped; lbfwd keeps running and its state (export, saved files, table
/// version) does not change. `state_dir`: lbfwd's `[control] state_dir`.
fn abuse_control_socket(d: &mut Daemon, state_dir: &Path) {
    let socket = d.socket.clone();
    let export = d.export();
    let saved_before = saved(state_dir);
    let version = d.table_version();

    // More clients than the limit: the excess gets `busy` at once, lbctl
    // says so with exit code 7; once they leave, lbctl works again. (First
    // let lbfwd finish with the connections of the lbctl runs above.)
    std::thread::sleep(Duration::from_millis(300));
    let idle: Vec<UnixStream> = (0..SERVER_MAX_CLIENTS)
        .map(|_| UnixStream::connect(&socket).expect("connect"))
        .collect();
    let mut extra = Raw::connect(&socket);
    let line = extra
        .line()
        .expect("an answer to the client over the limit");
    let answer: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(error_code(&answer), "busy", "{answer}");
    assert!(extra.closed(), "a refused connection was left open");
    let out = d.lbctl(&["status"]);
    assert_eq!(
        out.code,
        Some(7),
        "lbctl while lbfwd is full:\n{}",
        out.describe()
    );
    assert!(out.stderr.contains("try again"), "{}", out.describe());
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.lbctl(&["status"]).code != Some(0) {
        assert!(
            Instant::now() < deadline,
            "lbfwd still busy 5 s after its clients left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Silent clients (they take the idle timeout): one says nothing, one
    // sends half a request. The rest runs meanwhile.
    let silent: Vec<JoinHandle<()>> = [&b""[..], &br#"{"version":1,"op":"#[..]]
        .into_iter()
        .map(|partial| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let (mut c, _) = connect_patiently(&socket);
                let t0 = Instant::now();
                c.send(partial);
                let line = c.line().expect("a timeout error before the close");
                let waited = t0.elapsed();
                let answer: Value = serde_json::from_str(&line).expect("JSON");
                assert_eq!(error_code(&answer), "timeout", "{answer}");
                let message = answer["error"]["message"].as_str().unwrap_or("");
                let what = if partial.is_empty() {
                    "no request"
                } else {
                    "an incomplete request"
                };
                assert!(message.contains(what), "{message}");
                assert!(c.closed(), "connection left open after the timeout");
                assert!(
                    waited >= SERVER_IDLE - Duration::from_millis(600)
                        && waited < SERVER_IDLE + Duration::from_secs(5),
                    "dropped after {waited:?}, the idle timeout is {SERVER_IDLE:?}"
                );
            })
        })
        .collect();

    // Garbage on one connection; each line gets its error and the connection
    // stays usable.
    let (mut c, _) = connect_patiently(&socket);
    let cases: &[(&[u8], &str, &str)] = &[
        (b"{not json", "bad_request", "malformed JSON"),
        (b"[1, 2, 3]", "bad_request", "JSON object"),
        (b"\"status\"", "bad_request", "JSON object"),
        (br#"{"op":"status"}"#, "bad_request", "version"),
        (
            br#"{"version":99,"op":"status"}"#,
            "unsupported_version",
            "99",
        ),
        (
            br#"{"version":1,"op":"explode"}"#,
            "unknown_operation",
            "explode",
        ),
        (br#"{"version":1,"op":7}"#, "bad_request", "op"),
        (
            br#"{"version":1,"op":"get","body":{"kind":"load_balancer"}}"#,
            "bad_request",
            "name",
        ),
        (
            br#"{"version":1,"op":"get","body":{"kind":"spaceship","name":"x"}}"#,
            "bad_request",
            "spaceship",
        ),
        (
            br#"{"version":1,"op":"status","extra":true}"#,
            "bad_request",
            "extra",
        ),
        (b"\xff\xfe{}", "bad_request", "UTF-8"),
        (
            br#"{"version":1,"op":"delete","body":{"kind":"load_balancer","name":"no-such-lb"}}"#,
            "not_found",
            "no-such-lb",
        ),
    ];
    for (line, code, needle) in cases {
        let answer = c.request(line);
        assert_eq!(
            error_code(&answer),
            *code,
            "{}: {answer}",
            String::from_utf8_lossy(line)
        );
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(needle),
            "{}: the message should mention {needle:?}: {message}",
            String::from_utf8_lossy(line)
        );
    }
    let answer = c.request(br#"{"version":1,"op":"status"}"#);
    assert!(
        answer["ok"]["status"]["pid"].is_u64(),
        "status after garbage on the same connection: {answer}"
    );
    drop(c);

    // A request just under the limit is read and answered (a TOML comment
    // changes nothing)...
    let pad = |n: usize| "#".repeat(n);
    let document = |n: usize| {
        format!(
            r#"{{"version":1,"op":"apply_documents","body":{{"documents":[{{"format":"toml","text":"{}"}}]}}}}"#,
            pad(n)
        )
    };
    let near = document(MAX_REQUEST - 200);
    assert!(near.len() < MAX_REQUEST);
    let (mut c, _) = connect_patiently(&socket);
    let answer = c.request(near.as_bytes());
    let shown: String = answer.to_string().chars().take(500).collect();
    assert!(
        answer["ok"]["changed"].is_object(),
        "a request of {} bytes (under the limit) should be served: {shown}",
        near.len()
    );
    drop(c);
    // ...one over it gets too_large and the connection is closed, whether
    // its newline comes or not.
    let over = document(MAX_REQUEST + 100);
    for newline in [true, false] {
        let (mut c, _) = connect_patiently(&socket);
        let mut writer = c.stream.try_clone().expect("clone");
        let mut bytes = over.clone().into_bytes();
        if newline {
            bytes.push(b'\n');
        }
        // lbfwd stops reading at the limit: write from another thread and
        // accept that the rest is refused.
        let w = std::thread::spawn(move || {
            let _ = writer.write_all(&bytes);
        });
        let line = c.line().expect("an answer to an oversized request");
        let answer: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(error_code(&answer), "too_large", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(&MAX_REQUEST.to_string()),
            "the message should give the limit: {answer}"
        );
        assert!(c.closed(), "connection left open after too_large");
        w.join().expect("writer thread");
    }

    // Clients that leave mid-request (a request without its newline is not
    // a request), or send a request and leave without reading the answer.
    for i in 0..20 {
        let mut s = UnixStream::connect(&socket).expect("connect");
        let half: &[u8] = if i % 2 == 0 {
            br#"{"version":1,"op":"delete","body":{"kind":"load_balancer","na"#
        } else {
            br#"{"version":1,"op":"delete","body":{"kind":"network_interface","name":"be1"}}"#
        };
        let _ = s.write_all(half);
    }
    for _ in 0..10 {
        let mut s = UnixStream::connect(&socket).expect("connect");
        let _ = s.write_all(b"{\"version\":1,\"op\":\"export\"}\n");
    }

    // Many clients at once, each with several requests on one connection.
    let many: Vec<JoinHandle<(Vec<String>, u32)>> = (0..30)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let (mut c, refused) = connect_patiently(&socket);
                let mut exports = Vec::new();
                for _ in 0..3 {
                    let status = c.request(br#"{"version":1,"op":"status"}"#);
                    assert!(status["ok"]["status"].is_object(), "{status}");
                    let list =
                        c.request(br#"{"version":1,"op":"list","body":{"kind":"load_balancer"}}"#);
                    assert!(list["ok"]["objects"].is_array(), "{list}");
                    let e = c.request(br#"{"version":1,"op":"export"}"#);
                    exports.push(
                        e["ok"]["exported"]["toml"]
                            .as_str()
                            .unwrap_or_else(|| panic!("{e}"))
                            .to_owned(),
                    );
                }
                (exports, refused)
            })
        })
        .collect();
    let mut refused = 0;
    for t in many {
        let (exports, r) = t.join().expect("a concurrent client failed");
        refused += r;
        for e in exports {
            assert_eq!(
                e.trim_end(),
                export.trim_end(),
                "a concurrent export differs"
            );
        }
    }
    eprintln!("many clients at once: {refused} refusal(s) with `busy`, retried");
    for t in silent {
        t.join().expect("a silent client's check failed");
    }

    d.assert_running();
    assert_eq!(d.export(), export, "export changed under bad clients");
    assert_eq!(
        saved(state_dir),
        saved_before,
        "the saved state changed under bad clients"
    );
    assert_eq!(d.table_version(), version, "tables were republished");
}

// ---------------------------------------------------------------------------
// The namespace network

/// A network of `scripts/lib/topo.sh` with lbfwd (AF_PACKET, idle workers
/// backing off) forwarding on it. Fields drop in order: lbfwd stops, the
/// network is deleted, then the next test may start.
struct Net {
    d: Daemon,
    topo: Topology,
    _serial: MutexGuard<'static, ()>,
}

impl Net {
    /// Builds network `prefix` (unique per test), starts lbfwd on
    /// `topo.sh config` (with `lbs(network name)` instead of its load
    /// balancer `web` when that gives some) and waits until both VIPs
    /// answer through it and it answers `lbctl status`. `None` (said) when
    /// not root.
    #[track_caller]
    fn start(test: &str, prefix: &str, lbs: impl FnOnce(&str) -> Option<String>) -> Option<Net> {
        if !require_root(test) {
            return None;
        }
        let bins = bins();
        let serial = serial();
        let topo = Topology::up(prefix).unwrap_or_else(|e| panic!("{test}: network: {e}"));
        assert_eq!(topo.vip4(), VIP4, "topo.sh's IPv4 VIP moved");
        assert_eq!(topo.vip6(), VIP6, "topo.sh's IPv6 VIP moved");
        let mut opts = ConfigOptions::new(Backend::AfPacket).idle(Idle::Backoff);
        if let Some(lbs) = lbs(&topo.network()) {
            opts = opts.load_balancers(&lbs);
        }
        let config = topo
            .config(&opts)
            .unwrap_or_else(|e| panic!("{test}: config: {e}"));
        let mut lbfwd =
            Lbfwd::start(&topo, bins, &config).unwrap_or_else(|e| panic!("{test}: {e}"));
        lbfwd
            .wait_control(READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("{test}: {e}"));
        Some(Net {
            d: Daemon {
                socket: lbfwd.socket(),
                lbfwd,
            },
            topo,
            _serial: serial,
        })
    }
}

/// `n` GETs of `url` from the client, each on a new connection (a new
/// flow); each gives the answering backend, or "!" and what went wrong.
#[track_caller]
fn curl(topo: &TopologyInfo, url: &str, n: usize) -> Vec<String> {
    let urls = vec![url.to_owned(); n];
    let transfers =
        http_many(topo, &urls, true, Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}"));
    transfers
        .into_iter()
        .map(|t| {
            if t.ok() && t.connects == 1 {
                t.backend
            } else {
                format!("!{t:?}")
            }
        })
        .collect()
}

/// `n` fresh connections to `url`, all of which must be answered;
/// returns how often each backend answered.
#[track_caller]
fn fresh_spread(
    topo: &TopologyInfo,
    url: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut tally = std::collections::BTreeMap::new();
    for b in curl(topo, url, n) {
        assert!(!b.starts_with('!'), "a request to {url} failed: {b}");
        *tally.entry(b).or_insert(0) += 1;
    }
    tally
}

/// `conns` keep-alive connections from the client to `addr`:80, each asked
/// once; returns the probe and what each first request got.
#[track_caller]
fn keep_alive(topo: &TopologyInfo, addr: &str, conns: usize) -> (Probe, Vec<String>) {
    let (probe, opened) =
        FlowProbe::start_on_demand(topo, addr, conns as u32, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opened.len(), conns, "{opened:?}");
    (Probe(probe), opened.iter().map(|c| c.answer()).collect())
}

/// Long-lived connections that ask when told.
struct Probe(FlowProbe);

impl Probe {
    /// One more request on every connection.
    #[track_caller]
    fn ask(&mut self) -> Vec<String> {
        self.0.ask().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Every connection answered, by the same backend as in `before`.
#[track_caller]
fn assert_same_backends(before: &[String], now: &[String], when: &str) {
    for (i, (b, n)) in before.iter().zip(now).enumerate() {
        assert_eq!(
            b, n,
            "{when}: connection {i} was answered by {b}, now {n}\nbefore: {before:?}\nnow:    {now:?}"
        );
    }
}

fn url4() -> String {
    format!("http://{VIP4}/")
}

fn url6() -> String {
    format!("http://[{VIP6}]/")
}

// ---------------------------------------------------------------------------
// Control-only tests (memory backend)

#[test]
fn apply_toml_and_yaml_shows_addresses_and_routing() {
    let dir = TestDir::new("apply");
    let d = start_memory(&dir, BASE_LB);
    let v1 = d.table_version();

    // lbctl lb apply -f TOML: the address is the lowest free one of the
    // pool (base holds .0), the routing follows the selector.
    let web = dir.write("web.toml", WEB_LB);
    let out = d.ok(&["lb", "apply", "-f", web.to_str().unwrap()]);
    for want in [
        "created load balancer `web`",
        "rerouted web: +be1 +be2 +be3",
        "allocated 203.0.113.1 to web from pool public",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let lb = d.json(&["lb", "get", "web"]);
    assert_eq!(lb["kind"], "load_balancer");
    assert_eq!(addresses(&lb), ["203.0.113.1@public"]);
    assert_eq!(destinations(&lb), ["be1", "be2", "be3"]);
    assert_eq!(lb["status"]["load_balancer"]["vni"], 100);
    assert_eq!(
        lb["status"]["load_balancer"]["ports"],
        serde_json::json!([{ "protocol": "TCP", "port": 80, "end_port": 80 }])
    );
    let table = d.ok(&["lb", "get", "web"]);
    assert!(table.contains("203.0.113.1 (pool public)"), "{table}");
    let routing = d.json(&["routing", "get", "web"]);
    assert_eq!(routing["status"]["routing"]["source"], "selector");
    assert_eq!(destinations(&routing), ["be1", "be2", "be3"]);
    let d2 = &routing["status"]["routing"]["destinations"][1];
    assert_eq!(d2["underlay"], "10.0.3.12");
    assert_eq!(d2["mac"], "02:00:00:00:10:12");
    assert_eq!(d2["uid"], "00000000-0000-4000-8000-000000000002");
    let table = d.ok(&["routing", "get", "web"]);
    assert!(
        table.lines().any(|l| l.starts_with("be2")
            && l.contains("10.0.3.12")
            && l.contains("02:00:00:00:10:12")
            && l.ends_with("100")),
        "{table}"
    );
    assert!(d.table_version() > v1, "the change was not published");

    // lbctl apply -f Ironcore YAML: a new interface and a dual-stack load
    // balancer selecting it.
    let shop = dir.write(
        "shop.yaml",
        r#"apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata:
  name: shop-1
  uid: 0c8a3f0e-4a59-4c4e-9f0e-6c1b7b0a0001
  labels:
    app: shop
  annotations:
    lbfwd.ironcore.dev/underlay: 10.0.5.11
    lbfwd.ironcore.dev/mac: "02:00:00:00:05:11"
spec:
  networkRef:
    name: n
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: LoadBalancer
metadata:
  name: shop
spec:
  type: Public
  ipFamilies: [IPv4, IPv6]
  networkRef:
    name: n
  networkInterfaceSelector:
    matchLabels:
      app: shop
  ports:
  - protocol: TCP
    port: 443
"#,
    );
    let out = d.ok(&["apply", "-f", shop.to_str().unwrap()]);
    for want in [
        "created network interface `shop-1`",
        "created load balancer `shop`",
        "allocated 203.0.113.2 to shop from pool public",
        "allocated 2001:db8:100:: to shop from pool public",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let lb = d.json(&["lb", "get", "shop"]);
    assert_eq!(
        addresses(&lb),
        ["203.0.113.2@public", "2001:db8:100::@public"]
    );
    assert_eq!(destinations(&lb), ["shop-1"]);
    let nic = d.json(&["nic", "get", "shop-1"]);
    assert_eq!(nic["spec"]["underlay"], "10.0.5.11");
    assert_eq!(nic["spec"]["labels"]["app"], "shop");

    // lbctl lb apply -f YAML (one load balancer) and lbctl apply -f TOML
    // with a routing: destinations given, underlay and MAC taken from the
    // interface.
    let api = dir.write(
        "api.yaml",
        r#"apiVersion: networking.ironcore.dev/v1alpha1
kind: LoadBalancer
metadata:
  name: api
spec:
  type: Public
  ipFamilies: [IPv4]
  networkRef:
    name: n
  networkInterfaceSelector:
    matchExpressions:
    - key: app
      operator: In
      values: [web]
"#,
    );
    let out = d.ok(&["lb", "apply", "-f", api.to_str().unwrap()]);
    assert!(out.contains("allocated 203.0.113.3 to api"), "{out}");
    let ext = dir.write(
        "ext.toml",
        r#"
[[load_balancer]]
name = "ext"
type = "Public"
ip_families = ["IPv4"]
network = "n"
ports = [ { protocol = "UDP", port = 1024, end_port = 2048 } ]

[[load_balancer_routing]]
name = "ext"
destinations = [ { name = "be3" }, { name = "be1", weight = 50 } ]
"#,
    );
    let out = d.ok(&["apply", "-f", ext.to_str().unwrap()]);
    assert!(out.contains("created load balancer `ext`"), "{out}");
    assert!(out.contains("allocated 203.0.113.4 to ext"), "{out}");
    let routing = d.json(&["routing", "get", "ext"]);
    assert_eq!(routing["status"]["routing"]["source"], "external");
    assert_eq!(destinations(&routing), ["be1", "be3"]);
    assert_eq!(weight_of(&routing, "be1"), 50);
    assert_eq!(
        routing["status"]["routing"]["destinations"][1]["underlay"],
        "10.0.3.13"
    );

    // What lbfwd derived for interfaces, networks and pools.
    let nic = d.json(&["nic", "get", "be1"]);
    assert_eq!(
        nic["status"]["network_interface"]["selected_by"],
        serde_json::json!(["api", "base", "ext", "web"]),
        "{nic:#}"
    );
    let table = d.ok(&["nic", "list"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("be2 ") && l.ends_with("api, web")),
        "{table}"
    );
    let net = d.json(&["network", "get", "n"]);
    assert_eq!(
        net["status"]["network"],
        serde_json::json!({
            "interfaces": ["be1", "be2", "be3", "shop-1"],
            "load_balancers": ["api", "base", "ext", "shop", "web"],
        }),
        "{net:#}"
    );
    let pool = d.json(&["pool", "get", "public"]);
    let held = |addr: &str, lb: &str| serde_json::json!({ "addr": addr, "load_balancer": lb });
    assert_eq!(
        pool["status"]["pool"],
        serde_json::json!({
            "capacity": 16,
            "allocated": [
                held("203.0.113.0", "base"),
                held("203.0.113.1", "web"),
                held("203.0.113.2", "shop"),
                held("203.0.113.3", "api"),
                held("203.0.113.4", "ext"),
                held("2001:db8:100::", "shop"),
            ],
        }),
        "{pool:#}"
    );
    assert!(d.ok(&["pool", "list"]).contains("6/16"));

    // The list, the status, the export and the saved state agree.
    let list = d.json(&["lb", "list"]);
    let names: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "base", "ext", "shop", "web"]);
    let table = d.ok(&["lb", "list"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("203.0.113.1") && l.contains("TCP/80")),
        "{table}"
    );
    assert_eq!(d.json(&["status"])["load_balancers"], 5);
    let export = d.export();
    let saved = String::from_utf8(dir.saved().0.expect("a saved state")).unwrap();
    for text in [&export, &saved] {
        for addr in [
            "203.0.113.1",
            "203.0.113.2",
            "2001:db8:100::",
            "203.0.113.4",
        ] {
            assert!(
                text.contains(&format!("address = \"{addr}\"")),
                "allocation of {addr} missing in:\n{text}"
            );
        }
    }

    // Delete: the address goes back to the pool, get says not found (exit
    // 6), and the next load balancer gets the freed address while the
    // others keep theirs.
    let out = d.ok(&["lb", "delete", "shop"]);
    assert!(out.contains("deleted load balancer `shop`"), "{out}");
    assert!(out.contains("released 203.0.113.2 of shop"), "{out}");
    let out = d.fails(&["lb", "get", "shop"], 6);
    assert!(
        out.stderr.contains("no load balancer `shop`"),
        "{}",
        out.describe()
    );
    let out = d.fails(&["-o", "json", "routing", "get", "shop"], 6);
    let err: Value = serde_json::from_str(&out.stdout).expect("a JSON error");
    assert_eq!(err["error"]["code"], "not_found");
    let later = dir.write(
        "later.toml",
        &WEB_LB.replace("name = \"web\"", "name = \"later\""),
    );
    let out = d.ok(&["lb", "apply", "-f", later.to_str().unwrap()]);
    assert!(out.contains("allocated 203.0.113.2 to later"), "{out}");
    assert_eq!(
        addresses(&d.json(&["lb", "get", "web"])),
        ["203.0.113.1@public"]
    );
    assert_eq!(
        addresses(&d.json(&["lb", "get", "ext"])),
        ["203.0.113.4@public"]
    );
}

#[test]
fn invalid_changes_change_nothing() {
    let dir = TestDir::new("invalid");
    let d = start_memory(&dir, &format!("{BASE_LB}{WEB_LB}"));
    // One good change, so that a previous copy of the state exists too.
    d.ok(&["weight", "web", "be1", "50"]);
    let export = d.export();
    let saved = dir.saved();
    assert!(
        saved.0.is_some() && saved.1.is_some(),
        "state files missing"
    );
    let version = d.table_version();

    let bad_toml = dir.write(
        "bad.toml",
        r#"[[load_balancer]]
name = "bad"
type = "Public"
network = "nope"
ips = ["198.18.0.1"]
ports = [ { protocol = "TCP", port = 80, end_port = 70 }, { protocol = "UDP", port = 53 }, { protocol = "UDP", port = 50, end_port = 60 } ]
maglev_table_size = 100
"#,
    );
    let bad_yaml = dir.write(
        "bad.yaml",
        r#"apiVersion: networking.ironcore.dev/v1alpha1
kind: LoadBalancer
metadata:
  name: ybad
spec:
  type: Public
  ipFamilies: [IPv4]
  networkRef:
    name: n
  ports:
  - protocol: UDP
    port: 53
  - protocol: UDP
    port: 50
    endPort: 60
"#,
    );
    let syntax = dir.write("syntax.toml", "[[load_balancer]]\nname = \"x\nport = 80\n");
    let network = dir.write("net.toml", "[[network]]\nname = \"m\"\nvni = 5\n");
    let json = dir.write(
        "j.json",
        r#"{"name":"j","type":"Public","network":"n","bogus":1}"#,
    );
    let no_mac = dir.write(
        "nomac.toml",
        r#"[[network_interface]]
name = "be4"
network = "n"
labels = { app = "web" }
underlay = "10.0.3.14"
"#,
    );
    let dup = dir.write(
        "dup.toml",
        "[[load_balancer]]\nname = \"dup\"\ntype = \"Public\"\nnetwork = \"n\"\nips = [\"203.0.113.1\"]\n",
    );
    let full = dir.write(
        "full.toml",
        &(3..=9)
            .map(|i| {
                format!(
                    "{}\n",
                    WEB_LB.replace("name = \"web\"", &format!("name = \"more{i}\""))
                )
            })
            .collect::<String>(),
    );
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    // (arguments, exit code, what every detail line contains, what some
    // line contains)
    let cases: Vec<(Vec<String>, i32, &str, Vec<&str>)> = vec![
        (
            strings(&["apply", "-f", &p(&bad_toml)]),
            5,
            "bad.toml:",
            vec![
                "load_balancer[0].network: unknown network \"nope\"",
                "load_balancer[0].ips[0]: 198.18.0.1",
                "load_balancer[0].ports[0].end_port",
                "load_balancer[0].ports[2]: UDP/50-60 overlaps UDP/53",
                "load_balancer[0].maglev_table_size",
            ],
        ),
        (
            strings(&["apply", "-f", &p(&bad_yaml)]),
            5,
            "bad.yaml:",
            vec!["LoadBalancer/ybad spec.ports[1]: UDP/50-60 overlaps UDP/53 (ports[0])"],
        ),
        (
            strings(&["lb", "apply", "-f", &p(&syntax)]),
            5,
            "syntax.toml:",
            vec!["syntax.toml:2:"],
        ),
        (
            strings(&["lb", "apply", "-f", &p(&network)]),
            5,
            "net.toml",
            vec!["only load balancer objects"],
        ),
        (
            strings(&["lb", "apply", "-f", &p(&json)]),
            5,
            "load_balancer[j]",
            vec!["unknown field `bogus`"],
        ),
        (
            strings(&["nic", "apply", "-f", &p(&no_mac)]),
            5,
            "",
            vec!["mac"],
        ),
        (
            strings(&["apply", "-f", &p(&dup)]),
            5,
            "load_balancer[dup].ips: 203.0.113.1 is allocated to load balancer \"web\"",
            vec![],
        ),
        (strings(&["apply", "-f", &p(&full)]), 5, "", vec!["public"]),
        (
            strings(&["network", "delete", "n"]),
            5,
            "unknown network \"n\"",
            vec!["load_balancer[", "network_interface["],
        ),
        (strings(&["lb", "delete", "nope"]), 6, "", vec!["nope"]),
        (strings(&["drain", "web", "be9"]), 6, "", vec!["be9"]),
        (
            strings(&["weight", "nope", "be1", "5"]),
            6,
            "",
            vec!["nope"],
        ),
        (strings(&["nic", "label", "be9", "a=b"]), 6, "", vec!["be9"]),
        (
            strings(&["nic", "label", "be1", "Example.com/tier=x"]),
            5,
            "network_interface[be1].labels.\"Example.com/tier\" (this request)",
            vec!["contains 'E'"],
        ),
        (
            strings(&["nic", "label", "be1", "tier=-x"]),
            5,
            "label value \"-x\" must begin and end with a letter or digit",
            vec![],
        ),
        (strings(&["nic", "unlabel", "be9", "a"]), 6, "", vec!["be9"]),
        (strings(&["lb", "get", "nope"]), 6, "", vec!["nope"]),
    ];
    for (args, code, every, some) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = d.fails(&args, *code);
        // -o json: the error with its details, each with its location.
        let mut json_args = vec!["-o", "json"];
        json_args.extend_from_slice(&args);
        let out_json = d.fails(&json_args, *code);
        let err: Value = serde_json::from_str(&out_json.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: no JSON error ({e}):\n{}", out_json.describe()));
        let want_code = if *code == 5 {
            "validation_failed"
        } else {
            "not_found"
        };
        assert_eq!(err["error"]["code"], want_code, "{args:?}: {err:#}");
        let details: Vec<&str> = err["error"]["details"]
            .as_array()
            .expect("details")
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        let text = if *code == 5 {
            assert!(!details.is_empty(), "{args:?}: no details: {err:#}");
            let message = err["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("({} error", details.len())),
                "{args:?}: the message should count the errors: {message}"
            );
            for line in &details {
                assert!(line.contains(every), "{args:?}: {line:?} lacks {every:?}");
                // Every line is also in the table output.
                assert!(
                    out.stderr.contains(line),
                    "{args:?}: {line:?} not in:\n{}",
                    out.stderr
                );
            }
            details.join("\n")
        } else {
            err["error"]["message"].as_str().unwrap().to_owned()
        };
        for want in some {
            assert!(
                text.contains(want),
                "{args:?}: nothing says {want:?}:\n{text}"
            );
        }
        assert_eq!(d.export(), export, "{args:?} changed the running state");
        assert_eq!(dir.saved(), saved, "{args:?} changed the saved state");
        assert_eq!(
            d.table_version(),
            version,
            "{args:?} republished the tables"
        );
    }
}

#[test]
fn bad_clients_get_errors_and_change_nothing() {
    let dir = TestDir::new("badclients");
    let mut d = start_memory(&dir, &format!("{BASE_LB}{WEB_LB}"));
    d.ok(&["drain", "web", "be2"]);
    abuse_control_socket(&mut d, &dir.state_dir());
    // And it still takes changes.
    d.ok(&["nic", "label", "be1", "zone=a"]);
    d.stop();
}

#[test]
fn second_daemon_on_the_same_socket_refuses_to_start() {
    let dir = TestDir::new("twice");
    let mut first = start_memory(&dir, WEB_LB);
    d_ok_change(&first);
    let saved = dir.saved();
    let export = first.export();
    let pid = first.pid();

    // The same config, and one with another state directory: both refused,
    // neither touches the first one's socket or state.
    let other_state = dir.write(
        "other.toml",
        &memory_config(&dir, "", WEB_LB).replace(
            &format!("state_dir = \"{}\"", dir.state_dir().display()),
            &format!("state_dir = \"{}\"", dir.join("state2").display()),
        ),
    );
    for config in [dir.join("lbfwd.toml"), other_state] {
        let mut second = Daemon::spawn(&dir, &config);
        let status = second.wait_exit();
        let log = second.log();
        assert!(!status.success(), "a second lbfwd started:\n{log}");
        let want = format!(
            "another lbfwd (pid {pid}) already serves the control socket {}",
            dir.socket().display()
        );
        assert!(log.contains(&want), "expected {want:?} in:\n{log}");
        assert!(
            !dir.join("state2").join("state.toml").exists(),
            "the refused lbfwd saved a state"
        );
        first.assert_running();
        let status = first.json(&["status"]);
        assert_eq!(status["pid"], pid, "someone else answers: {status}");
        assert_eq!(first.export(), export);
        assert_eq!(dir.saved(), saved);
    }

    // Once the first one is gone, the socket is free again.
    first.stop();
    assert!(!dir.socket().exists(), "the socket outlived lbfwd");
    let second = Daemon::start(&dir, &dir.join("lbfwd.toml"));
    assert_eq!(second.export(), export);
}

/// A change, so that the state differs from the config file's.
fn d_ok_change(d: &Daemon) {
    d.ok(&["nic", "label", "be3", "zone=b"]);
}

#[test]
fn socket_mode_group_and_permission_denied() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    // nobody (primary group nogroup) may use a socket given to nogroup,
    // and gets "permission denied" (exit 4) on the default root:root 0660.
    let as_nobody = |socket: &Path| {
        run(
            Command::new("runuser")
                .args(["-u", "nobody", "--"])
                .arg(&bins().lbctl)
                .arg("--socket")
                .arg(socket)
                .arg("status")
                .env_remove("LBFWD_SOCKET"),
            LBCTL_TIMEOUT,
        )
    };
    for group in [Some("nogroup"), None] {
        let dir = TestDir::new(if group.is_some() { "group" } else { "nogroup" });
        let settings = group.map(|g| format!("socket_group = \"{g}\"\n"));
        let config = memory_config(&dir, "", "").replace(
            "[control]\n",
            &format!("[control]\n{}", settings.as_deref().unwrap_or("")),
        );
        let config = dir.write("lbfwd.toml", &config);
        // The socket's directory does not exist yet: lbfwd creates it.
        assert!(!dir.join("run").exists());
        let d = Daemon::start(&dir, &config);
        let meta = std::fs::metadata(dir.socket()).expect("the socket exists");
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o660, "socket mode");
        assert!(
            dir.join("run/lbfwd.sock.lock").exists(),
            "no lock file beside the socket"
        );
        let out = as_nobody(&dir.socket());
        match group {
            Some(_) => {
                assert_eq!(meta.gid(), 65534, "the socket's group");
                assert_eq!(out.code, Some(0), "{}", out.describe());
            }
            None => {
                assert_eq!(meta.gid(), 0, "the socket's group");
                assert_eq!(out.code, Some(4), "{}", out.describe());
                assert!(
                    out.stderr.contains(&format!(
                        "permission denied on the control socket {}",
                        dir.socket().display()
                    )),
                    "{}",
                    out.describe()
                );
            }
        }
        let status = d.json(&["status"]);
        assert_eq!(status["backend"], "memory");
        assert_eq!(
            status["state_path"],
            dir.state_dir().join("state.toml").display().to_string()
        );
        assert_eq!(status["config_path"], config.display().to_string());
    }
}

#[test]
fn concurrent_changes_are_serialized_and_saved() {
    let dir = TestDir::new("concurrent");
    let mut d = start_memory(&dir, WEB_LB);
    let v0 = d.table_version();
    // 24 lbctl processes at once, each setting its own label on be1..be3.
    let changes: Vec<JoinHandle<Output>> = (0..24)
        .map(|i| {
            let socket = d.socket.clone();
            std::thread::spawn(move || {
                let nic = format!("be{}", i % 3 + 1);
                let label = format!("k{i}=v{i}");
                lbctl(&socket, &["nic", "label", &nic, &label])
            })
        })
        .collect();
    for t in changes {
        let out = t.join().expect("an lbctl thread");
        assert_eq!(out.code, Some(0), "{}", out.describe());
    }
    // Every change was applied on top of the others, each published once.
    assert_eq!(d.table_version(), v0 + 24);
    for n in 1..=3 {
        let nic = d.json(&["nic", "get", &format!("be{n}")]);
        let labels = nic["spec"]["labels"].as_object().expect("labels");
        for i in (0..24).filter(|i| i % 3 + 1 == n) {
            assert_eq!(labels[&format!("k{i}")], format!("v{i}"), "{nic:#}");
        }
        assert_eq!(labels.len(), 9, "{nic:#}");
    }
    let export = d.export();
    d.kill9();
    d.respawn();
    d.wait_ready();
    assert_eq!(d.export(), export, "the saved state missed a change");
}

#[test]
fn draining_an_interface_the_selector_does_not_pick_warns() {
    let dir = TestDir::new("drainwarn");
    let mut d = start_memory(&dir, WEB_LB);
    d.ok(&["nic", "unlabel", "be3", "app"]);
    // Kept (it applies once be3 is picked again), but said.
    let out = d.lbctl(&["drain", "web", "be3"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains(
            "load_balancer[0].weights.be3: weight for \"be3\", which is not a \
             destination of load balancer \"web\" now"
        ),
        "{}",
        out.describe()
    );
    d.ok(&["nic", "label", "be3", "app=web"]);
    assert_eq!(weight_of(&d.json(&["lb", "get", "web"]), "be3"), 0);
    // A picked interface's drain says nothing more.
    let out = d.lbctl(&["drain", "web", "be1"]);
    assert!(
        !out.stdout.contains("warning") && !out.stderr.contains("warning"),
        "{}",
        out.describe()
    );
    d.stop();
}

#[test]
fn a_state_that_cannot_be_saved_changes_nothing() {
    let dir = TestDir::new("nosave");
    let d = start_memory(&dir, WEB_LB);
    let export = d.export();
    let saved = dir.saved();
    let version = d.table_version();
    // The temporary file of the atomic save cannot be created: a directory
    // sits at its path.
    let blocker = dir.state_dir().join(".state.toml.tmp");
    std::fs::create_dir(&blocker).unwrap();
    let out = d.fails(&["drain", "web", "be1"], 1);
    assert!(
        out.stderr.contains("cannot save the state")
            && out.stderr.contains(&dir.state_dir().display().to_string())
            && out.stderr.contains("nothing was changed"),
        "{}",
        out.describe()
    );
    assert_eq!(d.export(), export);
    assert_eq!(dir.saved(), saved);
    assert_eq!(d.table_version(), version, "published without being saved");
    assert_eq!(weight_of(&d.json(&["lb", "get", "web"]), "be1"), 100);
    // Once it can save again, the same change goes through.
    std::fs::remove_dir(&blocker).unwrap();
    d.ok(&["drain", "web", "be1"]);
    assert_eq!(weight_of(&d.json(&["lb", "get", "web"]), "be1"), 0);
    assert_eq!(d.table_version(), version + 1);
    assert_ne!(dir.saved(), saved);
}

#[test]
fn kill_9_and_restart_exports_the_same() {
    let dir = TestDir::new("kill9");
    let mut d = start_memory(&dir, BASE_LB);
    let web = dir.write("web.toml", WEB_LB);
    d.ok(&["lb", "apply", "-f", web.to_str().unwrap()]);
    let shop = dir.write(
        "shop.yaml",
        r#"apiVersion: networking.ironcore.dev/v1alpha1
kind: LoadBalancer
metadata:
  name: shop
spec:
  type: Public
  ipFamilies: [IPv6, IPv4]
  networkRef:
    name: n
  networkInterfaceSelector:
    matchLabels:
      tier: gold
"#,
    );
    d.ok(&["apply", "-f", shop.to_str().unwrap()]);
    d.ok(&["nic", "label", "be3", "tier=gold"]);
    d.ok(&["drain", "web", "be2"]);
    d.ok(&["weight", "web", "be1", "30"]);
    // Deleting base frees .0: the next new load balancer takes it, and
    // nothing else moves.
    d.ok(&["lb", "delete", "base"]);
    let late = dir.write(
        "late.toml",
        &WEB_LB.replace("name = \"web\"", "name = \"late\""),
    );
    let out = d.ok(&["lb", "apply", "-f", late.to_str().unwrap()]);
    assert!(out.contains("allocated 203.0.113.0 to late"), "{out}");

    let export = d.export();
    let list = d.json(&["lb", "list"]);
    let routings = d.json(&["routing", "list"]);
    let nics = d.json(&["nic", "list"]);
    for want in [
        "203.0.113.1",
        "203.0.113.2",
        "2001:db8:100::",
        "203.0.113.0",
    ] {
        assert!(
            export.contains(&format!("address = \"{want}\"")),
            "{export}"
        );
    }

    d.kill9();
    assert!(dir.socket().exists(), "kill -9 leaves the socket behind");
    let out = lbctl(&dir.socket(), &["status"]);
    assert_eq!(
        out.code,
        Some(3),
        "lbctl with lbfwd dead:\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains(&dir.socket().display().to_string()),
        "lbctl should name the socket it tried:\n{}",
        out.describe()
    );

    // The config file still has `base` and no `web`: the saved state wins.
    d.respawn();
    d.wait_ready();
    assert_eq!(
        d.export(),
        export,
        "export differs after kill -9 and restart"
    );
    assert_eq!(d.json(&["lb", "list"]), list);
    assert_eq!(d.json(&["routing", "list"]), routings);
    assert_eq!(d.json(&["nic", "list"]), nics);
    assert_eq!(weight_of(&d.json(&["lb", "get", "web"]), "be2"), 0);

    // Allocations were restored, not redone: a new load balancer gets the
    // next free address.
    let newer = dir.write(
        "newer.toml",
        &WEB_LB.replace("name = \"web\"", "name = \"newer\""),
    );
    let out = d.ok(&["lb", "apply", "-f", newer.to_str().unwrap()]);
    assert!(out.contains("allocated 203.0.113.3 to newer"), "{out}");
    let export = d.export();

    // And once more with a clean stop.
    d.stop();
    d.respawn();
    d.wait_ready();
    assert_eq!(d.export(), export, "export differs after a restart");

    // The export is a config file: without any saved state, lbfwd started
    // on it has the same state, allocations included.
    d.stop();
    std::fs::remove_dir_all(dir.state_dir()).unwrap();
    let exported = dir.write("exported.toml", &export);
    let d = Daemon::start(&dir, &exported);
    assert_eq!(d.export(), export, "lbfwd run --config EXPORT differs");
}

#[test]
fn corrupt_saved_state_is_reported_and_kept() {
    let dir = TestDir::new("corrupt");
    let mut d = start_memory(&dir, "");
    let web = dir.write("web.toml", WEB_LB);
    d.ok(&["lb", "apply", "-f", web.to_str().unwrap()]);
    d.stop();
    let state = dir.state_dir().join("state.toml");
    let prev = dir.state_dir().join("state.toml.prev");
    let good = std::fs::read_to_string(&state).expect("a saved state");
    assert!(prev.exists(), "no previous copy was kept");

    let garbage = "this is [not toml\n".to_owned();
    let bad_model = good.replace("vni = 100", "vni = 99999999");
    assert_ne!(bad_model, good);
    for (text, why) in [(garbage, "TOML"), (bad_model, "99999999")] {
        std::fs::write(&state, &text).unwrap();
        let before = dir.saved();
        d.respawn();
        let status = d.wait_exit();
        let log = d.log();
        assert!(
            !status.success(),
            "lbfwd started on a corrupt state:\n{log}"
        );
        assert!(
            log.contains(&format!("saved state {}", state.display())),
            "the error should name {}:\n{log}",
            state.display()
        );
        assert!(
            log.contains(why),
            "the error should say why ({why}):\n{log}"
        );
        assert!(
            log.contains(&prev.display().to_string()),
            "the error should name the previous copy:\n{log}"
        );
        assert_eq!(dir.saved(), before, "the state files were touched");
        let out = lbctl(&dir.socket(), &["status"]);
        assert_eq!(out.code, Some(3), "{}", out.describe());
    }

    // The last good copy is usable as it is.
    std::fs::write(&state, &good).unwrap();
    d.respawn();
    d.wait_ready();
    assert_eq!(
        addresses(&d.json(&["lb", "get", "web"])),
        ["203.0.113.0@public"]
    );
}

#[test]
fn reload_rereads_the_config_and_refuses_settings_changes() {
    let dir = TestDir::new("reload");
    let config = dir.write(
        "lbfwd.toml",
        &memory_config(&dir, "", &format!("{BASE_LB}{WEB_LB}")),
    );
    let mut d = Daemon::start(&dir, &config);
    assert_eq!(
        addresses(&d.json(&["lb", "get", "web"])),
        ["203.0.113.1@public"]
    );

    // A new load balancer and a changed one in the file.
    let api = WEB_LB
        .replace("name = \"web\"", "name = \"api\"")
        .replace("port = 80", "port = 443");
    let web2 = WEB_LB.replace(
        "{ protocol = \"TCP\", port = 80 }",
        "{ protocol = \"TCP\", port = 80 }, { protocol = \"TCP\", port = 8080 }",
    );
    let text = memory_config(&dir, "", &format!("{BASE_LB}{web2}{api}"));
    std::fs::write(&config, &text).unwrap();
    let out = d.ok(&["reload"]);
    for want in [
        "created load balancer `api`",
        "updated load balancer `web`",
        "allocated 203.0.113.2 to api from pool public",
        "rerouted api: +be1 +be2 +be3",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let web = d.json(&["lb", "get", "web"]);
    assert_eq!(
        addresses(&web),
        ["203.0.113.1@public"],
        "web's address moved"
    );
    assert_eq!(
        web["status"]["load_balancer"]["ports"][1]["port"], 8080,
        "{web:#}"
    );
    assert_eq!(
        destinations(&d.json(&["lb", "get", "api"])),
        ["be1", "be2", "be3"]
    );
    let saved = String::from_utf8(dir.saved().0.unwrap()).unwrap();
    assert!(
        saved.contains("name = \"api\""),
        "reload not saved:\n{saved}"
    );

    // The same file again: nothing to do, nothing republished.
    let version = d.table_version();
    let out = d.ok(&["reload"]);
    assert!(out.contains("no change"), "{out}");
    assert_eq!(d.table_version(), version);

    // Appliance settings changed (with a state change beside them): refused,
    // nothing changes.
    let export = d.export();
    let saved = dir.saved();
    let x = WEB_LB.replace("name = \"web\"", "name = \"x\"");
    for (settings, what) in [
        ("\n[flow]\ntcp_timeout_s = 100\n", "[flow]"),
        ("", "[dataplane]"),
    ] {
        let mut text = memory_config(&dir, settings, &format!("{BASE_LB}{web2}{api}{x}"));
        if what == "[dataplane]" {
            text = text.replace("idle = \"backoff\"", "idle = \"backoff\"\nburst = 16");
        }
        std::fs::write(&config, &text).unwrap();
        let out = d.fails(&["reload"], 5);
        assert!(
            out.stderr.contains("appliance settings") && out.stderr.contains("restart"),
            "{what}: {}",
            out.describe()
        );
        assert!(
            out.stderr.contains(&config.display().to_string()),
            "the error should name the file:\n{}",
            out.describe()
        );
        d.fails(&["lb", "get", "x"], 6);
        assert_eq!(
            d.export(),
            export,
            "{what}: a refused reload changed the state"
        );
        assert_eq!(
            dir.saved(),
            saved,
            "{what}: a refused reload changed the saved state"
        );
        assert_eq!(d.table_version(), version);
    }

    // An invalid file: every error with its place, nothing changes.
    let broken = memory_config(&dir, "", &format!("{BASE_LB}{web2}{api}"))
        .replace("vni = 100", "vni = 99999999")
        .replace("port = 443", "port = 0");
    std::fs::write(&config, broken).unwrap();
    let out = d.fails(&["reload"], 5);
    assert!(out.stderr.contains("network[0].vni"), "{}", out.describe());
    assert!(out.stderr.contains("lbfwd.toml:"), "{}", out.describe());
    assert_eq!(d.export(), export);
    assert_eq!(dir.saved(), saved);

    // What the reload brought in survives kill -9. (The file must be valid
    // again: lbfwd takes its settings from it and refuses a broken one.)
    d.kill9();
    std::fs::write(&config, &text).unwrap();
    d.respawn();
    d.wait_ready();
    assert_eq!(d.export(), export);
}

// ---------------------------------------------------------------------------
// Forwarding tests (namespace network)

/// Packets dropped so far because their port is not allowed.
fn port_drops(d: &Daemon) -> u64 {
    let stats = d.json(&["stats"]);
    stats["drops"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["reason"] == "port_not_allowed"))
        .and_then(|r| r["packets"].as_u64())
        .unwrap_or_else(|| panic!("no port_not_allowed drops in {stats:#}"))
}

#[test]
fn labels_move_routing_and_forwarding() {
    let Some(net) = Net::start("labels_move_routing_and_forwarding", "dlabels", |_| None) else {
        return;
    };
    let (topo, d) = (&net.topo, &net.d);

    let all = strings(&["be1", "be2", "be3"]);
    let spread = fresh_spread(topo, &url4(), CURLS);
    assert_eq!(
        spread.keys().cloned().collect::<Vec<_>>(),
        all,
        "{spread:?}"
    );

    // Out of the selector: the routing drops be2, and no new connection
    // reaches it, over either VIP.
    let out = d.ok(&["nic", "unlabel", "be2", "app"]);
    assert!(out.contains("rerouted web: -be2"), "{out}");
    assert_eq!(
        destinations(&d.json(&["routing", "get", "web"])),
        ["be1", "be3"]
    );
    let nic = d.json(&["nic", "get", "be2"]);
    assert!(nic["spec"]["labels"].get("app").is_none(), "{nic:#}");
    for url in [url4(), url6()] {
        let spread = fresh_spread(topo, &url, CURLS);
        assert!(
            !spread.contains_key("be2"),
            "be2 answered after unlabel: {spread:?}"
        );
        assert_eq!(spread.len(), 2, "{spread:?}");
    }

    // The counters saw it: per target, and the blocked port as a drop.
    let drops_before = port_drops(d);
    let blocked = curl(topo, &format!("http://{VIP4}:8080/"), 2);
    assert!(blocked.iter().all(|b| b.starts_with('!')), "{blocked:?}");
    assert!(
        port_drops(d) >= drops_before + 2,
        "two SYNs to port 8080 not counted as port_not_allowed drops"
    );
    let stats = d.json(&["stats"]);
    assert!(
        stats["totals"]["tx"]["packets"].as_u64().unwrap() > 0,
        "{stats:#}"
    );
    let web = &stats["load_balancers"][0];
    assert_eq!(web["name"], "web", "{stats:#}");
    let sent: Vec<(String, u64)> = web["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["sent"]["packets"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sent.len(), 2, "be2 is still a target: {sent:?}");
    assert!(sent.iter().all(|(_, n)| *n > 0), "{sent:?}");

    // Back in: be2 answers again.
    let out = d.ok(&["nic", "label", "be2", "app=web"]);
    assert!(out.contains("rerouted web: +be2"), "{out}");
    assert_eq!(
        destinations(&d.json(&["routing", "get", "web"])),
        ["be1", "be2", "be3"]
    );
    let spread = fresh_spread(topo, &url4(), CURLS);
    assert_eq!(
        spread.keys().cloned().collect::<Vec<_>>(),
        all,
        "{spread:?}"
    );
}

#[test]
fn drain_keeps_flows_and_removal_moves_them() {
    let Some(net) = Net::start("drain_keeps_flows_and_removal_moves_them", "ddrain", |_| {
        None
    }) else {
        return;
    };
    let (topo, d) = (&net.topo, &net.d);

    let (mut probe, first) = keep_alive(topo, VIP4, CURLS);
    assert!(
        first.iter().all(|b| b.starts_with("be")),
        "keep-alive connections failed: {first:?}"
    );
    assert!(
        first.iter().any(|b| b == "be2"),
        "none of {CURLS} connections went to be2: {first:?}"
    );

    // Drain: be2 keeps its connections, gets no new ones.
    let out = d.ok(&["drain", "web", "be2"]);
    assert!(out.contains("rerouted web: ~be2"), "{out}");
    let lb = d.json(&["lb", "get", "web"]);
    assert_eq!(destinations(&lb), ["be1", "be2", "be3"]);
    assert_eq!(weight_of(&lb, "be2"), 0);
    assert!(d.ok(&["routing", "get", "web"]).contains("0 (draining)"));
    assert_same_backends(&first, &probe.ask(), "after drain");
    let spread = fresh_spread(topo, &url4(), CURLS);
    assert!(
        !spread.contains_key("be2"),
        "a new flow reached drained be2: {spread:?}"
    );
    assert_eq!(spread.len(), 2, "{spread:?}");
    assert_same_backends(&first, &probe.ask(), "after new flows");
    let stats = d.json(&["stats"]);
    let target = stats["load_balancers"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["name"] == "web"))
        .and_then(|l| l["targets"].as_array())
        .and_then(|t| t.iter().find(|t| t["name"] == "be2"))
        .unwrap_or_else(|| panic!("no target be2 in stats: {stats:#}"));
    assert_eq!(target["weight"], 0, "{target}");
    assert!(target["sent"]["packets"].as_u64().unwrap() > 0, "{target}");
    // The flows of the probe and of the spread (lbfwd sees only the
    // clients' side, so closed connections stay until they time out), once
    // a sweep pass over the flow table has counted them.
    let mut flows = 0;
    for _ in 0..50 {
        flows = d.json(&["stats"])["load_balancers"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["name"] == "web"))
            .and_then(|l| l["flows"].as_u64())
            .unwrap_or(0);
        if flows >= 2 * CURLS as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        flows >= 2 * CURLS as u64,
        "stats count {flows} flows of web, not {} or more",
        2 * CURLS
    );

    // Remove: be2 leaves the routing; the others' connections stay where
    // they are, none is answered by be2 any more.
    let out = d.ok(&["nic", "delete", "be2"]);
    assert!(out.contains("deleted network interface `be2`"), "{out}");
    assert!(out.contains("rerouted web: -be2"), "{out}");
    assert_eq!(
        destinations(&d.json(&["routing", "get", "web"])),
        ["be1", "be3"]
    );
    let now = probe.ask();
    for (i, (b, n)) in first.iter().zip(&now).enumerate() {
        if b == "be2" {
            assert_ne!(n, "be2", "connection {i} still reaches removed be2");
        } else {
            assert_eq!(b, n, "connection {i} moved from {b} when be2 was removed");
        }
    }
    let spread = fresh_spread(topo, &url4(), CURLS);
    assert!(!spread.contains_key("be2"), "{spread:?}");
}

#[test]
fn bad_clients_do_not_disturb_forwarding() {
    let Some(mut net) = Net::start("bad_clients_do_not_disturb_forwarding", "dbadcl", |_| None)
    else {
        return;
    };
    let Net { topo, d, .. } = &mut net;
    let (mut probe, first) = keep_alive(topo, VIP4, 12);
    assert!(first.iter().all(|b| b.starts_with("be")), "{first:?}");

    abuse_control_socket(d, &topo.state_dir().join("state"));

    assert_same_backends(&first, &probe.ask(), "after the bad clients");
    let spread = fresh_spread(topo, &url4(), CURLS);
    assert_eq!(spread.len(), 3, "{spread:?}");
    assert_same_backends(&first, &probe.ask(), "at the end");
}

#[test]
fn changing_one_load_balancer_keeps_the_flows_of_another() {
    let lb = |net: &str, name: &str, family: &str, vip: &str| {
        format!(
            r#"
[[load_balancer]]
name = "{name}"
type = "Public"
ip_families = ["{family}"]
ips = ["{vip}"]
network = "{net}"
network_interface_selector = {{ match_labels = {{ app = "web" }} }}
ports = [ {{ protocol = "TCP", port = 80 }} ]
"#
        )
    };
    let Some(net) = Net::start(
        "changing_one_load_balancer_keeps_the_flows_of_another",
        "disolate",
        |net| {
            Some(format!(
                "{}{}",
                lb(net, "a", "IPv4", VIP4),
                lb(net, "b", "IPv6", VIP6)
            ))
        },
    ) else {
        return;
    };
    let (topo, d) = (&net.topo, &net.d);
    let network = topo.network();

    let (mut probe, first) = keep_alive(topo, VIP4, CURLS);
    assert!(first.iter().all(|b| b.starts_with("be")), "{first:?}");
    // Drain the backend of a's first connection: from now on a's flows to
    // it stay only because lbfwd remembers them, so a change elsewhere that
    // disturbed a's flow state would move them.
    let drained = first[0].clone();
    d.ok(&["drain", "a", &drained]);
    assert_same_backends(&first, &probe.ask(), "after draining a");
    let routing_a = d.json(&["routing", "get", "a"]);
    let lb_a = d.json(&["lb", "get", "a"]);

    let b2 = write(
        &topo.state_dir(),
        "b2.toml",
        &lb(&network, "b", "IPv6", VIP6).replace(
            "ports = [ { protocol = \"TCP\", port = 80 } ]",
            "ports = [ { protocol = \"TCP\", port = 80 }, { protocol = \"TCP\", port = 8080 } ]\nweights = { be1 = 20 }",
        ),
    );
    let steps: Vec<(&str, Vec<String>)> = vec![
        ("drain b be3", strings(&["drain", "b", "be3"])),
        ("weight b be2 300", strings(&["weight", "b", "be2", "300"])),
        (
            "lb apply b (ports, weights)",
            strings(&["lb", "apply", "-f", b2.to_str().unwrap()]),
        ),
        (
            "label be1 zone=z1",
            strings(&["nic", "label", "be1", "zone=z1"]),
        ),
        ("lb delete b", strings(&["lb", "delete", "b"])),
    ];
    for (what, args) in &steps {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = d.ok(&args);
        assert!(!out.contains("rerouted a:"), "{what} re-routed a:\n{out}");
        assert_same_backends(&first, &probe.ask(), what);
        assert_eq!(d.json(&["routing", "get", "a"]), routing_a, "{what}");
        assert_eq!(d.json(&["lb", "get", "a"]), lb_a, "{what}");
    }
    // b is really gone: its VIP no longer answers.
    d.fails(&["lb", "get", "b"], 6);
    let got = curl(topo, &url6(), 1);
    assert!(got[0].starts_with('!'), "deleted b still answers: {got:?}");
    // And a still spreads new flows over its destinations but the drained one.
    let spread = fresh_spread(topo, &url4(), CURLS);
    assert!(!spread.contains_key(&drained), "{spread:?}");
    assert_eq!(spread.len(), 2, "{spread:?}");
    assert_same_backends(&first, &probe.ask(), "at the end");
}
