//! Active health checks end to end (issue 16): real servers on the
//! backends, real failures (a server stopped, a route black-holed, a VXLAN
//! device down, a VIP removed), lbfwd's tables watched through real
//! connections and `lbctl`.
//!
//! Every backend runs, besides the network's servers on the VIPs, an HTTP
//! server on 0.0.0.0:8000 (so on its underlay address and on the VIP):
//! the port the `tcp` and `http` checks probe and the one whose traffic
//! shows where new connections go. af_packet only (the checker is the same
//! for every backend: it runs on the control side, through the kernel).
//!
//! Run: `flock /tmp/lbfwd-netns.lock cargo test -p lbfwd-tests --test health -- --test-threads=1 --nocapture` as root.

use lbfwd_tests::client::{http_many, url, Transfer};
use lbfwd_tests::{
    lbfwd_binaries, require_root, serial, Backend, ConfigOptions, FlowProbe, Lbfwd, Node, Topology,
    TopologyInfo,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

const PORT: u16 = 8000;
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// A backend's server on 0.0.0.0:PORT, answering with its name.
const SERVER: &str = r#"
import http.server, socketserver, sys
NAME, PORT = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = (NAME + "\n").encode()
        self.send_response(200)
        self.send_header("X-Backend", NAME)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
S(("0.0.0.0", PORT), H).serve_forever()
"#;

/// lbfwd on its own network, with the port-8000 servers.
struct World {
    servers: [Option<Child>; 3],
    lbfwd: Lbfwd,
    topo: Topology,
    _serial: MutexGuard<'static, ()>,
}

impl Drop for World {
    fn drop(&mut self) {
        for s in self.servers.iter_mut().flatten() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

fn info(w: &World) -> std::sync::Arc<TopologyInfo> {
    w.topo.info()
}

/// The network's config with TCP PORT allowed and `health` (the
/// `health_check = ...` line) on load balancer "web", plus `extra` (more
/// `[[load_balancer]]` tables).
fn config(topo: &Topology, health: &str, extra: &str) -> String {
    let base = topo
        .config(&ConfigOptions::new(Backend::AfPacket))
        .expect("topo.sh config");
    let ports = "ports = [ { protocol = \"TCP\", port = 80 },";
    assert!(base.contains(ports), "topo.sh config changed:\n{base}");
    let with_port = base.replacen(
        ports,
        &format!("ports = [ {{ protocol = \"TCP\", port = {PORT} }}, {{ protocol = \"TCP\", port = 80 }},"),
        1,
    );
    // The load balancer is the last table of the file.
    format!("{with_port}{health}\n{extra}")
}

fn start(tag: &str, health: &str, extra: &str) -> Option<World> {
    let name = format!("health::{tag}");
    if !require_root(&name) {
        return None;
    }
    let bins = lbfwd_binaries(Backend::AfPacket)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .expect("af_packet is always built");
    let guard = serial();
    let topo = Topology::up(tag).unwrap_or_else(|e| panic!("{name}: network: {e}"));
    let mut servers = [None, None, None];
    for (i, s) in servers.iter_mut().enumerate() {
        *s = Some(start_server(&topo.info(), i as u8 + 1));
    }
    let text = config(&topo, health, extra);
    eprintln!("[{tag}] lbfwd config:\n{text}");
    let lbfwd = Lbfwd::start(&topo, &bins, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
    Some(World {
        servers,
        lbfwd,
        topo,
        _serial: guard,
    })
}

fn start_server(topo: &TopologyInfo, n: u8) -> Child {
    let child = topo
        .command(Node::Backend(n), lbfwd_tests::python())
        .args(["-c", SERVER, &format!("be{n}"), &PORT.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a backend server");
    // Listening once the lb node can connect to its underlay address.
    let addr = topo.get(&format!("BE{n}_IP4")).to_string();
    wait_for(
        Duration::from_secs(10),
        &format!("be{n}'s server on {PORT}"),
        || {
            topo.exec(
                Node::Lb,
                "curl",
                &[
                    "-s",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "1",
                    &url(&addr, PORT, "/"),
                ],
                Duration::from_secs(3),
            )
            .is_ok_and(|o| o.success())
        },
    );
    child
}

fn stop_server(w: &mut World, n: u8) {
    if let Some(mut s) = w.servers[usize::from(n) - 1].take() {
        s.kill().expect("kill a server");
        s.wait().expect("reap a server");
    }
}

fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if cond() {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn lbctl_json(w: &World, args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let out = w.lbfwd.lbctl(&all).expect("lbctl");
    assert!(
        out.success(),
        "lbctl {args:?}: {}{}",
        out.stdout,
        out.stderr
    );
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("lbctl {args:?}: {e}: {}", out.stdout))
}

/// (load balancer, destination) -> state, from `lbctl health`.
fn state(w: &World, lb: &str, dest: &str) -> String {
    let rows = lbctl_json(w, &["health"]);
    rows.as_array()
        .expect("health is a list")
        .iter()
        .find(|r| r["load_balancer"] == lb && r["name"] == dest)
        .map(|r| r["health"]["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_else(|| panic!("no health row for {lb}/{dest}: {rows}"))
}

fn row(w: &World, lb: &str, dest: &str) -> Value {
    lbctl_json(w, &["health"])
        .as_array()
        .expect("health is a list")
        .iter()
        .find(|r| r["load_balancer"] == lb && r["name"] == dest)
        .cloned()
        .expect("a health row")
}

fn table_version(w: &World) -> u64 {
    lbctl_json(w, &["status"])["table_version"]
        .as_u64()
        .expect("table_version")
}

fn wait_state(w: &World, lb: &str, dest: &str, want: &str, limit: Duration) -> Duration {
    wait_for(limit, &format!("{lb}/{dest} {want}"), || {
        state(w, lb, dest) == want
    })
}

fn all_healthy(w: &World, lbs: &[&str]) {
    for lb in lbs {
        for be in ["be1", "be2", "be3"] {
            wait_state(w, lb, be, "healthy", Duration::from_secs(10));
        }
    }
}

/// `n` fresh connections to VIP:port; asserts every one succeeded.
fn fresh(topo: &TopologyInfo, port: u16, n: usize) -> Vec<Transfer> {
    let urls = vec![url(topo.vip4(), port, "/"); n];
    let t = http_many(topo, &urls, true, HTTP_TIMEOUT).expect("curl");
    let failed: Vec<&Transfer> = t.iter().filter(|t| !t.ok()).collect();
    assert!(
        failed.is_empty(),
        "{} of {n} connections failed: {failed:?}",
        failed.len()
    );
    t
}

fn backends(t: &[Transfer]) -> BTreeSet<String> {
    t.iter().map(|t| t.backend.clone()).collect()
}

const FAST_TCP: &str = "health_check = { kind = \"tcp\", port = 8000, interval_ms = 200, timeout_ms = 150, rise = 2, fall = 2 }";

#[test]
fn tcp_dead_server_leaves_within_a_second_and_returns_after_rise() {
    let Some(mut w) = start("hctcp", FAST_TCP, "") else {
        return;
    };
    let topo = info(&w);
    all_healthy(&w, &["web"]);
    let seen = backends(&fresh(&topo, PORT, 30));
    assert_eq!(
        seen.len(),
        3,
        "30 connections reach every backend: {seen:?}"
    );
    // Long-lived connections to the VIP's port 80 on every backend.
    let (mut probe, conns) = FlowProbe::start_covering(
        &topo,
        &[topo.vip4()],
        12,
        &["be1", "be2", "be3"],
        48,
        Duration::from_secs(10),
    )
    .expect("flow probe");
    assert!(conns.iter().all(|c| c.backend.is_some()), "{conns:?}");
    let v0 = table_version(&w);

    stop_server(&mut w, 1);
    let took = wait_state(&w, "web", "be1", "unhealthy", Duration::from_secs(5));
    eprintln!("be1 unhealthy {took:?} after its server stopped");
    assert!(
        took < Duration::from_secs(1),
        "out after {took:?}, not within a second"
    );
    let r = row(&w, "web", "be1");
    assert_eq!(r["health"]["in_table"], false, "{r}");
    assert!(
        r["health"]["last_failure"]
            .as_str()
            .unwrap_or("")
            .contains("refused"),
        "{r}"
    );
    assert_eq!(
        table_version(&w),
        v0 + 1,
        "one publication for the state change"
    );
    probe.mark().expect("mark the flow probe");
    std::thread::sleep(Duration::from_secs(1));
    // Only be1's flows moved: they are picked again (be1 is dead), so the
    // backend they land on resets them; every other flow stays put.
    for c in probe
        .finish(Duration::from_secs(60))
        .expect("flow probe summary")
    {
        let on = c.backend.clone().unwrap_or_default();
        if on == "be1" {
            assert!(
                c.error.is_some() && c.ok_after == 0,
                "a flow stayed on the dead be1: {c:?}"
            );
        } else {
            assert!(c.error.is_none(), "a flow on {on} broke: {c:?}");
            assert_eq!(c.seen, vec![on.clone()], "a flow on {on} moved: {c:?}");
            assert!(c.ok_after >= 3, "a flow on {on} went idle: {c:?}");
        }
    }
    let seen = backends(&fresh(&topo, PORT, 30));
    assert!(
        !seen.contains("be1"),
        "a new connection went to the dead be1: {seen:?}"
    );
    let table = w.lbfwd.lbctl(&["health"]).expect("lbctl health");
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.contains("be1") && l.contains("unhealthy (out of table)")),
        "lbctl health:\n{}",
        table.stdout
    );
    eprintln!("lbctl health:\n{}", table.stdout);
    let routing = w
        .lbfwd
        .lbctl(&["routing", "get", "web"])
        .expect("lbctl routing get");
    assert!(routing.stdout.contains("HEALTH"), "{}", routing.stdout);
    eprintln!("lbctl routing get web:\n{}", routing.stdout);
    // lbctl lb get shows it too.
    let lb = lbctl_json(&w, &["lb", "get", "web"]);
    let dests = lb["status"]["load_balancer"]["destinations"]
        .as_array()
        .expect("destinations")
        .clone();
    let be1 = dests
        .iter()
        .find(|d| d["name"] == "be1")
        .expect("be1 in lb get");
    assert_eq!(be1["health"]["state"], "unhealthy", "{lb}");

    w.servers[0] = Some(start_server(&topo, 1));
    let back = wait_state(&w, "web", "be1", "healthy", Duration::from_secs(5));
    eprintln!("be1 healthy {back:?} after its server restarted");
    let r = row(&w, "web", "be1");
    assert!(
        r["health"]["probes"]["passed"].as_u64().unwrap() >= 2,
        "{r}"
    );
    assert_eq!(table_version(&w), v0 + 2, "one publication back");
    let seen = backends(&fresh(&topo, PORT, 30));
    assert!(
        seen.contains("be1"),
        "be1 gets new connections again: {seen:?}"
    );
    let log = w.lbfwd.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("destination \"be1\"") && l.contains("healthy -> unhealthy"))
            .count(),
        1,
        "the state change is logged once:\n{log}"
    );
}

#[test]
fn lost_probes_move_nothing_and_a_black_hole_times_out() {
    let health = "health_check = { kind = \"http\", port = 8000, path = \"/healthz\", interval_ms = 300, timeout_ms = 200, rise = 2, fall = 3 }";
    let Some(w) = start("hclost", health, "") else {
        return;
    };
    let topo = info(&w);
    all_healthy(&w, &["web"]);
    let v0 = table_version(&w);
    let lb4 = topo.get("LB_IP4").to_string();
    let route = |verb: &str| {
        let o = topo
            .exec(
                Node::Backend(1),
                "ip",
                &["route", verb, "blackhole", &format!("{lb4}/32")],
                Duration::from_secs(5),
            )
            .expect("ip route");
        assert!(o.success(), "ip route {verb}: {}", o.stderr);
    };
    // be1 cannot answer the lb node for about one interval: a probe or
    // two time out, fewer than fall.
    let failed0 = row(&w, "web", "be1")["health"]["probes"]["failed"]
        .as_u64()
        .unwrap();
    route("add");
    std::thread::sleep(Duration::from_millis(350));
    route("del");
    wait_for(Duration::from_secs(3), "a failed probe of be1", || {
        row(&w, "web", "be1")["health"]["probes"]["failed"]
            .as_u64()
            .unwrap()
            > failed0
    });
    let r = row(&w, "web", "be1");
    assert!(
        r["health"]["last_failure"]
            .as_str()
            .unwrap_or("")
            .contains("timeout"),
        "a black-holed answer is a timeout: {r}"
    );
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(state(&w, "web", "be1"), "healthy", "lost probes moved be1");
    assert_eq!(table_version(&w), v0, "lost probes published tables");
    // Flapping faster than fall: about one interval black-holed, then
    // more than one answered, three times over; the table never changes.
    for _ in 0..3 {
        route("add");
        std::thread::sleep(Duration::from_millis(300));
        route("del");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        state(&w, "web", "be1"),
        "healthy",
        "a flapping be1 was moved"
    );
    assert_eq!(table_version(&w), v0, "a flapping be1 changed the table");
    // Held longer, the timeouts take it out.
    route("add");
    let took = wait_state(&w, "web", "be1", "unhealthy", Duration::from_secs(5));
    eprintln!("black-holed be1 unhealthy after {took:?}");
    let seen = backends(&fresh(&topo, PORT, 20));
    assert!(!seen.contains("be1"), "{seen:?}");
    route("del");
    wait_state(&w, "web", "be1", "healthy", Duration::from_secs(5));
    assert_eq!(table_version(&w), v0 + 2);
}

#[test]
fn encap_fails_when_the_tunnel_is_broken_tcp_does_not() {
    // Three load balancers on the same backends: "web" (the VIP the
    // router routes) with a SYN through the tunnel to port 80, "webtcp"
    // with a plain tcp check, "webicmp" with an ICMP echo through the
    // tunnel to its own VIP.
    let encap = "health_check = { kind = \"encap\", port = 80, interval_ms = 200, timeout_ms = 150, rise = 2, fall = 2 }";
    let extra = |name: &str, ip: &str, check: &str| {
        format!(
            "\n[[load_balancer]]\nname = \"{name}\"\ntype = \"Public\"\nips = [\"{ip}\"]\nnetwork = \"NET\"\nnetwork_interface_selector = {{ match_labels = {{ app = \"web\" }} }}\nports = [ {{ protocol = \"TCP\", port = 80 }} ]\nhealth_check = {check}\n"
        )
    };
    let Some(probe) = start_probe_world(
        "hcenc",
        encap,
        &[
            ("webtcp", "203.0.113.11", "{ kind = \"tcp\", port = 8000, interval_ms = 200, timeout_ms = 150, rise = 2, fall = 2 }"),
            ("webicmp", "203.0.113.12", "{ kind = \"encap\", interval_ms = 200, timeout_ms = 150, rise = 2, fall = 2 }"),
        ],
        extra,
    ) else {
        return;
    };
    let w = probe;
    let topo = info(&w);
    all_healthy(&w, &["web", "webtcp", "webicmp"]);
    let r = row(&w, "web", "be2");
    assert_eq!(r["health"]["kind"], "encap");

    // be1's VXLAN device goes down: its server still answers on its
    // underlay address, the tunnel is broken.
    let vx = topo.get("BE1_VX4").to_string();
    let link = |state: &str| {
        let o = topo
            .exec(
                Node::Backend(1),
                "ip",
                &["link", "set", &vx, state],
                Duration::from_secs(5),
            )
            .expect("ip link");
        assert!(o.success(), "{}", o.stderr);
    };
    link("down");
    let took = wait_state(&w, "web", "be1", "unhealthy", Duration::from_secs(5));
    eprintln!("encap: be1 with its tunnel down unhealthy after {took:?}");
    wait_state(&w, "webicmp", "be1", "unhealthy", Duration::from_secs(5));
    assert!(
        row(&w, "web", "be1")["health"]["last_failure"]
            .as_str()
            .unwrap_or("")
            .contains("timeout"),
        "no answer through a broken tunnel"
    );
    // The same case with kind = "tcp": the plain check passes, which is
    // why encap exists.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(state(&w, "webtcp", "be1"), "healthy");
    let seen = backends(&fresh(&topo, 80, 30));
    assert!(
        !seen.contains("be1"),
        "traffic into be1's broken tunnel: {seen:?}"
    );
    link("up");
    wait_state(&w, "web", "be1", "healthy", Duration::from_secs(5));
    wait_state(&w, "webicmp", "be1", "healthy", Duration::from_secs(5));
    let seen = backends(&fresh(&topo, 80, 30));
    assert!(seen.contains("be1"), "{seen:?}");

    // be2 stops owning webicmp's VIP: only that check fails.
    let del = topo
        .exec(
            Node::Backend(2),
            "ip",
            &["addr", "del", "203.0.113.12/32", "dev", "lo"],
            Duration::from_secs(5),
        )
        .expect("ip addr del");
    assert!(del.success(), "{}", del.stderr);
    wait_state(&w, "webicmp", "be2", "unhealthy", Duration::from_secs(5));
    assert_eq!(state(&w, "web", "be2"), "healthy");
    assert_eq!(state(&w, "webtcp", "be2"), "healthy");
}

/// [`start`] with more load balancers, whose VIPs are added to every
/// backend's loopback.
fn start_probe_world(
    tag: &str,
    health: &str,
    more: &[(&str, &str, &str)],
    table: impl Fn(&str, &str, &str) -> String,
) -> Option<World> {
    if !require_root(&format!("health::{tag}")) {
        return None;
    }
    let bins = lbfwd_binaries(Backend::AfPacket)
        .expect("build")
        .expect("af_packet");
    let guard = serial();
    let topo = Topology::up(tag).unwrap_or_else(|e| panic!("network: {e}"));
    let info = topo.info();
    let mut servers = [None, None, None];
    for (i, s) in servers.iter_mut().enumerate() {
        let n = i as u8 + 1;
        *s = Some(start_server(&info, n));
        for (_, ip, _) in more {
            let o = info
                .exec(
                    Node::Backend(n),
                    "ip",
                    &["addr", "add", &format!("{ip}/32"), "dev", "lo"],
                    Duration::from_secs(5),
                )
                .expect("ip addr add");
            assert!(o.success(), "{}", o.stderr);
        }
    }
    let base = config(&topo, health, "");
    let net = format!("net-{tag}");
    let extra: String = more
        .iter()
        .map(|(name, ip, check)| table(name, ip, check).replace("\"NET\"", &format!("\"{net}\"")))
        .collect();
    let text = format!("{base}{extra}");
    eprintln!("[{tag}] lbfwd config:\n{text}");
    let lbfwd = Lbfwd::start(&topo, &bins, &text).unwrap_or_else(|e| panic!("{e}"));
    Some(World {
        servers,
        lbfwd,
        topo,
        _serial: guard,
    })
}

#[test]
fn all_unhealthy_fails_open_or_drops_as_configured() {
    let Some(mut w) = start("hcall", FAST_TCP, "") else {
        return;
    };
    let topo = info(&w);
    all_healthy(&w, &["web"]);
    for n in 1..=3 {
        stop_server(&mut w, n);
    }
    for be in ["be1", "be2", "be3"] {
        wait_state(&w, "web", be, "unhealthy", Duration::from_secs(5));
    }
    let status = lbctl_json(&w, &["status"]);
    assert_eq!(status["health"]["load_balancers_down"], 1, "{status}");
    // Fail open (the default): every target stays in the table; the VIP's
    // servers on port 80 still answer.
    let seen = backends(&fresh(&topo, 80, 20));
    assert!(
        seen.len() >= 2,
        "fail open spreads over the targets: {seen:?}"
    );

    // The same load balancer with all_unhealthy = "drop", applied live:
    // the health records are kept, nothing is forwarded, drops counted.
    let drop = FAST_TCP.replace("fall = 2 }", "fall = 2, all_unhealthy = \"drop\" }");
    let text = config(&w.topo, &drop, "");
    w.lbfwd.apply_config(&text).expect("reload with drop");
    let drops_before = no_target_drops(&w);
    let urls = vec![url(topo.vip4(), 80, "/"); 3];
    let t = http_many(&topo, &urls, true, Duration::from_secs(1)).expect("curl");
    assert!(
        t.iter().all(|t| !t.ok()),
        "all unhealthy + drop still forwards: {t:?}"
    );
    assert!(
        no_target_drops(&w) > drops_before,
        "the drops are counted as no_target"
    );

    // One comes back: it takes every new connection.
    w.servers[1] = Some(start_server(&topo, 2));
    wait_state(&w, "web", "be2", "healthy", Duration::from_secs(5));
    let seen = backends(&fresh(&topo, PORT, 10));
    assert_eq!(seen, BTreeSet::from(["be2".to_string()]));

    // A bad health_check through the API: located error, nothing changed.
    let v = table_version(&w);
    let bad = text.replace("timeout_ms = 150", "timeout_ms = 900");
    let fragment = &bad[bad.find("[[load_balancer]]").expect("a load balancer")..];
    let path = topo.state_dir().join("bad.toml");
    std::fs::write(&path, fragment).expect("write bad.toml");
    let out = w
        .lbfwd
        .lbctl(&["apply", "-f", path.to_str().expect("utf-8 path")])
        .expect("lbctl apply");
    assert_eq!(
        out.code,
        Some(5),
        "validation failed: {}{}",
        out.stdout,
        out.stderr
    );
    let text_out = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text_out.contains("bad.toml:") && text_out.contains("health_check.timeout_ms"),
        "a located error: {text_out}"
    );
    assert_eq!(table_version(&w), v, "a refused change published tables");
}

fn no_target_drops(w: &World) -> u64 {
    lbctl_json(w, &["stats"])["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .find(|d| d["reason"] == "no_target")
        .and_then(|d| d["packets"].as_u64())
        .unwrap_or(0)
}
