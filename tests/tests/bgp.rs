//! BGP announcement end to end: two lbfwd appliances, each with the BIRD 2
//! it manages, peer with a router namespace running its own BIRD 2, which
//! installs the VIPs as ECMP routes into its kernel (L4 hash); a client
//! behind the router keeps HTTP connections alive through both appliances
//! to VXLAN backends (the kernel decapsulates). Network:
//! `scripts/lib/topo-ecmp.sh`.
//!
//! One network, the issue's five checks in order, each with a time bound:
//! 1. both appliances are next hops of both VIPs;
//! 2. `kill -9` of an appliance: its routes go, its BIRD with it, and the
//!    connections through it carry on through the other (same target);
//!    the same when its link goes down silently, with BFD: within a second;
//! 3. restarted, it is announced again;
//! 4. a load balancer without a usable destination is withdrawn, and
//!    announced again when one returns (the sessions stay up);
//! 5. `lbctl announce off` and SIGTERM withdraw without breaking a
//!    connection; plus: BIRD killed under lbfwd is restarted.
//!
//! Run: `flock /tmp/lbfwd-netns.lock cargo test -p lbfwd-tests --test bgp -- --nocapture` as root.

use lbfwd_tests::cmd::{self, Output};
use lbfwd_tests::ecmp::{bfd_fast, routed_via};
use lbfwd_tests::{
    lbfwd_binaries, require_root, within, workspace_root, Appliance, Backend, FlowProbe, Node,
    Topology, TopologyInfo,
};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The network's prefix (unique to this test).
const PREFIX: &str = "bgpe";
/// Per-request limit of the kept-alive connections: longer than any
/// rerouting here, so a connection fails only if it really broke.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the BGP tests ask an appliance besides the shared calls.
trait BgpAppliance {
    /// The pid of the BIRD it manages, as `lbctl announce` says.
    fn bird_pid(&self) -> Option<u32>;
    /// Frames its workers received.
    fn rx_packets(&self) -> u64;
}

impl BgpAppliance for Appliance {
    fn bird_pid(&self) -> Option<u32> {
        self.announce()["bgp"]["bird_pid"]
            .as_u64()
            .map(|p| p as u32)
    }

    fn rx_packets(&self) -> u64 {
        self.json(&["stats"])["totals"]["rx"]["packets"]
            .as_u64()
            .unwrap_or(0)
    }
}

/// The time the router's session `name` entered its state.
fn router_session_since(topo: &TopologyInfo, name: &str) -> String {
    let out = cmd::run(
        Command::new("birdc").args([
            "-s",
            topo.get("ROUTER_BIRD_SOCKET"),
            "show",
            "protocols",
            name,
        ]),
        Duration::from_secs(5),
    )
    .and_then(Output::checked)
    .expect("birdc");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no protocol {name} in {}", out.stdout));
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.get(6).copied(), Some("Established"), "{line}");
    f[4..6].join(" ")
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Kept-alive connections from the client to both VIPs while `action`
/// runs; every one must carry on without an error and stay on the target
/// it started with. `action` returns a note for the log.
fn connections_survive(topo: &TopologyInfo, what: &str, action: impl FnOnce()) {
    let (mut probe, conns) =
        FlowProbe::start(topo, &[topo.vip4(), topo.vip6()], 8, PROBE_TIMEOUT).expect("probe");
    let failed: Vec<_> = conns.iter().filter(|c| c.backend.is_none()).collect();
    assert!(
        failed.is_empty(),
        "{what}: connections failed to open: {failed:?}"
    );
    action();
    probe.mark().expect("mark");
    std::thread::sleep(Duration::from_millis(1500));
    let summary = probe
        .finish(Duration::from_secs(30))
        .expect("probe summary");
    for c in &summary {
        assert!(
            c.error.is_none() && c.ok_after > 0 && c.seen.len() == 1,
            "{what}: connection {} to {} broke or moved: {c:?}",
            c.id,
            c.addr
        );
    }
    eprintln!(
        "ok: {what}: {} kept-alive connections carried on, each on its target",
        summary.len()
    );
}

#[test]
fn two_appliances_in_ecmp_announce_withdraw_and_keep_connections() {
    if !require_root("bgp::two_appliances_in_ecmp") {
        return;
    }
    let _serial = lbfwd_tests::serial();
    let bins = lbfwd_binaries(Backend::AfPacket)
        .expect("build lbfwd")
        .expect("af_packet is always built");
    let topo = Topology::up_with(&workspace_root().join("scripts/lib/topo-ecmp.sh"), PREFIX)
        .expect("topo-ecmp.sh up");
    let mut lb1 = Appliance::start(&topo, &bins, 1);
    let lb2 = Appliance::start(&topo, &bins, 2);

    // 1. Both appliances are next hops for the IPv4 and the IPv6 VIP.
    within(
        "1: the router routes both VIPs via lb1 and lb2",
        Duration::from_secs(30),
        || routed_via(&topo, &[1, 2]),
    );
    let a = lb1.announce();
    assert_eq!(a["enabled"], true, "{a}");
    for v in a["vips"].as_array().expect("vips") {
        assert_eq!(v["announced"], true, "{a}");
    }
    for p in a["bgp"]["peers"].as_array().expect("peers") {
        assert_eq!(p["state"], "Established", "{a}");
        assert_eq!(p["prefixes_sent"], 1, "{a}");
    }
    let table = lb1.lbctl_ok(&["announce"]);
    assert!(
        table.contains("Established") && table.contains("203.0.113.10"),
        "{table}"
    );

    // 2a. kill -9 of lb1: its routes and its BIRD go; connections through it
    // carry on through lb2, on the same target.
    let bird1 = lb1.bird_pid().expect("lb1's BIRD runs");
    connections_survive(&topo, "2: kill -9 of lb1", || {
        let before = lb1.rx_packets();
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            lb1.rx_packets() > before,
            "no kept-alive connection goes through lb1: the check would prove nothing"
        );
        lb1.kill9();
        within(
            "2: lb1's routes are gone after kill -9",
            Duration::from_secs(3),
            || routed_via(&topo, &[2]),
        );
        within("2: lb1's BIRD died with it", Duration::from_secs(2), || {
            process_gone(bird1)
                .then_some(())
                .ok_or(format!("BIRD {bird1} still runs"))
        });
    });

    // 3. Restarted, it is announced again.
    lb1.spawn();
    within(
        "3: restarted lb1 is announced again",
        Duration::from_secs(30),
        || routed_via(&topo, &[1, 2]),
    );

    // 2b. lb1's link goes down (nothing reaches the router: the segment is
    // a bridge): BFD withdraws it within a second.
    let l0 = topo.get("LB_DEV").to_string();
    let ns1 = lb1.ns();
    within(
        "2: the router's BFD sessions to restarted lb1 run at the fast rate",
        Duration::from_secs(10),
        || bfd_fast(&topo, &[1], 0.5),
    );
    connections_survive(&topo, "2: lb1's link down (BFD)", || {
        let down = Command::new("ip")
            .args(["-n", &ns1, "link", "set", &l0, "down"])
            .status()
            .expect("ip link");
        assert!(down.success());
        within(
            "2: lb1's routes are gone after its link went down",
            Duration::from_secs(1),
            || routed_via(&topo, &[2]),
        );
    });
    let up = Command::new("ip")
        .args(["-n", &ns1, "link", "set", &l0, "up"])
        .status()
        .expect("ip link");
    assert!(up.success());
    within(
        "2: lb1 is back once its link is up",
        Duration::from_secs(30),
        || routed_via(&topo, &[1, 2]),
    );

    // 4. lb1's load balancer loses every usable destination: withdrawn (and
    // the sessions stay up), announced again when one returns.
    let since = router_session_since(&topo, "lb1_v4");
    let since6 = router_session_since(&topo, "lb1_v6");
    for be in ["be1", "be2", "be3"] {
        lb1.lbctl_ok(&["weight", "web", be, "0"]);
    }
    within(
        "4: lb1 withdraws a load balancer without usable destination",
        Duration::from_secs(2),
        || routed_via(&topo, &[2]),
    );
    let a = lb1.announce();
    let reason = a["vips"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("no usable destination"), "{a}");
    for be in ["be1", "be2", "be3"] {
        lb1.lbctl_ok(&["weight", "web", be, "100"]);
    }
    within(
        "4: lb1 announces it again when a destination returns",
        Duration::from_secs(2),
        || routed_via(&topo, &[1, 2]),
    );
    // Deleting the load balancer withdraws its VIPs; adding it again
    // announces them.
    lb1.lbctl_ok(&["lb", "delete", "web"]);
    within(
        "4: deleting the load balancer withdraws it",
        Duration::from_secs(2),
        || routed_via(&topo, &[2]),
    );
    let fragment = topo.state_dir().join("lb1/web.toml");
    let web = format!(
        "[[load_balancer]]\nname = \"web\"\ntype = \"Public\"\nip_families = [\"IPv4\", \"IPv6\"]\n\
         ips = [\"{}\", \"{}\"]\nnetwork = \"net-{PREFIX}\"\n\
         network_interface_selector = {{ match_labels = {{ app = \"web\" }} }}\n\
         ports = [ {{ protocol = \"TCP\", port = 80 }} ]\n",
        topo.vip4(),
        topo.vip6()
    );
    std::fs::write(&fragment, web).expect("write the load balancer");
    lb1.lbctl_ok(&["lb", "apply", "-f", &fragment.to_string_lossy()]);
    within(
        "4: adding the load balancer announces it",
        Duration::from_secs(2),
        || routed_via(&topo, &[1, 2]),
    );
    for (session, before) in [("lb1_v4", &since), ("lb1_v6", &since6)] {
        let now = router_session_since(&topo, session);
        assert_eq!(
            &now, before,
            "reconfiguring lb1's BIRD restarted the router's session {session}"
        );
    }

    // 5. `lbctl announce off` withdraws without breaking a connection; `on`
    // announces again.
    connections_survive(&topo, "5: lbctl announce off on lb1", || {
        lb1.lbctl_ok(&["announce", "off"]);
        within(
            "5: announce off withdraws lb1",
            Duration::from_secs(2),
            || routed_via(&topo, &[2]),
        );
    });
    let a = lb1.announce();
    assert_eq!(a["enabled"], false, "{a}");
    assert!(a["vips"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("announcing is off"));
    lb1.lbctl_ok(&["announce", "on"]);
    within(
        "5: announce on announces lb1 again",
        Duration::from_secs(2),
        || routed_via(&topo, &[1, 2]),
    );

    // BIRD dies under lbfwd: lbfwd says so and restarts it.
    let bird1 = lb1.bird_pid().expect("lb1's BIRD runs");
    cmd::signal(bird1, "KILL");
    within(
        "lbfwd restarts its BIRD and is announced again",
        Duration::from_secs(20),
        || {
            let a = lb1.announce();
            let restarted = a["bgp"]["bird_restarts"] == 1
                && a["bgp"]["bird_pid"]
                    .as_u64()
                    .is_some_and(|p| p as u32 != bird1);
            if !restarted {
                return Err(format!("{a}"));
            }
            routed_via(&topo, &[1, 2])
        },
    );
    assert!(
        lb1.log().contains(&format!("BIRD (pid {bird1}) died")),
        "lbfwd did not say that BIRD died:\n{}",
        lb1.log()
    );

    // 5. SIGTERM: withdrawn first while lbfwd still forwards, then it stops.
    connections_survive(&topo, "5: SIGTERM of lb1", || {
        let pid = lb1.pid();
        cmd::signal(pid, "TERM");
        within(
            "5: SIGTERM withdraws lb1 before it stops",
            Duration::from_secs(2),
            || routed_via(&topo, &[2]),
        );
        assert!(!process_gone(pid), "lb1 stopped before its shutdown delay");
    });
    let status = lb1.wait_exit(Duration::from_secs(15)).expect("lb1 stops");
    assert!(status.success(), "lb1 exited with {status}:\n{}", lb1.log());
    let log = lb1.log();
    assert!(log.contains("withdrawing every VIP"), "{log}");
    drop(lb2);
}

#[test]
fn missing_bird_is_an_error_naming_the_package() {
    let bins = lbfwd_binaries(Backend::AfPacket)
        .expect("build lbfwd")
        .expect("af_packet is always built");
    let dir = std::env::temp_dir().join(format!("lbfwd-nobird-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("lbfwd.toml");
    let missing = dir.join("no-such-bird");
    // (the `bird` key, what the error must name)
    let cases = [
        (missing.display().to_string(), vec!["no-such-bird", "bird2"]),
        (
            "/bin/true".to_string(),
            vec!["/bin/true", "BIRD 2", "bird2"],
        ),
    ];
    for (bird, expected) in cases {
        std::fs::write(
            &config,
            format!(
                r#"[dataplane]
backend = "memory"
workers = [0]
idle = "backoff"
[underlay]
encap = "vxlan"
source_ipv4 = "10.0.2.2"
next_hop_mac = "02:00:00:00:00:01"
[control]
socket = "{d}/lbfwd.sock"
state_dir = "{d}/state"
[bgp]
asn = 65001
router_id = "10.0.2.2"
bird = "{bird}"
[[bgp.peer]]
address = "10.0.2.1"
asn = 65000
"#,
                d = dir.display()
            ),
        )
        .expect("write");
        let out = cmd::run(
            Command::new(&bins.lbfwd)
                .arg("run")
                .arg("--config")
                .arg(&config),
            Duration::from_secs(30),
        )
        .expect("lbfwd run");
        assert_eq!(out.code, Some(1), "{out:?}");
        for e in expected {
            assert!(
                out.stderr.contains(e),
                "bird = {bird}: no {e:?} in {}",
                out.stderr
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The network's prefix of the health-check test (its own network).
const HEALTH_PREFIX: &str = "bgph";
/// The port the health check probes: a server of the test's own on every
/// backend's underlay address (the network's servers answer on the VIPs
/// only, where a `tcp` check does not connect).
const CHECK_PORT: u16 = 8000;
/// A TCP server on 0.0.0.0:CHECK_PORT that accepts and closes.
const CHECK_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.close()
"#;

/// The check servers of the backends, killed when dropped.
struct CheckServers(Vec<Option<Child>>);

impl CheckServers {
    fn start(topo: &TopologyInfo, n: u8) -> Child {
        topo.command(Node::Backend(n), lbfwd_tests::python())
            .args(["-c", CHECK_SERVER, &CHECK_PORT.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a check server")
    }

    /// Kills the server of backend `n` by its process id and reaps it.
    fn stop(&mut self, n: u8) {
        if let Some(mut c) = self.0[usize::from(n) - 1].take() {
            cmd::signal(c.id(), "KILL");
            let _ = cmd::wait_deadline(&mut c, Duration::from_secs(5));
        }
    }
}

impl Drop for CheckServers {
    fn drop(&mut self) {
        for n in 1..=self.0.len() as u8 {
            self.stop(n);
        }
    }
}

/// `lbctl health` state of destination `be` of load balancer "web".
fn health_state(lb: &Appliance, be: &str) -> String {
    let rows = lb.json(&["health"]);
    rows.as_array()
        .expect("lbctl health is a list")
        .iter()
        .find(|r| r["load_balancer"] == "web" && r["name"] == be)
        .map(|r| r["health"]["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_else(|| panic!("no health row for web/{be}: {rows}"))
}

/// Every VIP of `lb`'s `lbctl announce -o json`: (announced, reason).
fn vip_announcements(lb: &Appliance) -> Vec<(bool, String)> {
    let a = lb.announce();
    a["vips"]
        .as_array()
        .unwrap_or_else(|| panic!("no vips in {a}"))
        .iter()
        .map(|v| {
            (
                v["announced"].as_bool().unwrap_or(false),
                v["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn health_checks_withdraw_the_vip_when_every_target_is_down_and_announce_it_when_one_returns() {
    if !require_root("bgp::health_checks_withdraw_the_vip") {
        return;
    }
    let _serial = lbfwd_tests::serial();
    let bins = lbfwd_binaries(Backend::AfPacket)
        .expect("build lbfwd")
        .expect("af_packet is always built");
    let topo = Topology::up_with(
        &workspace_root().join("scripts/lib/topo-ecmp.sh"),
        HEALTH_PREFIX,
    )
    .expect("topo-ecmp.sh up");
    let info = topo.info();
    let mut servers = CheckServers(
        (1..=3)
            .map(|n| Some(CheckServers::start(&info, n)))
            .collect(),
    );
    // lb1 with a fast tcp check on "web" (the last table of the config).
    let text = info
        .script("config", &["1"])
        .and_then(Output::checked)
        .expect("topo-ecmp.sh config")
        .stdout;
    assert!(
        text.trim_end()
            .ends_with("ports = [ { protocol = \"TCP\", port = 80 } ]"),
        "topo-ecmp.sh config changed:\n{text}"
    );
    let text = format!(
        "{text}health_check = {{ kind = \"tcp\", port = {CHECK_PORT}, interval_ms = 200, \
         timeout_ms = 100, rise = 2, fall = 2 }}\n"
    );
    let config = info.state_dir().join("lb1/lbfwd.toml");
    std::fs::write(&config, &text).expect("write the config");
    let lb1 = Appliance::start_with(&topo, &bins, 1, config);

    within(
        "the router routes both VIPs via lb1",
        Duration::from_secs(30),
        || routed_via(&topo, &[1]),
    );
    within(
        "every target of web is healthy",
        Duration::from_secs(10),
        || {
            let states: Vec<String> = ["be1", "be2", "be3"]
                .iter()
                .map(|be| health_state(&lb1, be))
                .collect();
            if states.iter().all(|s| s == "healthy") {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    );

    // Every target down: the VIPs are withdrawn, and lbctl says why.
    for n in 1..=3 {
        servers.stop(n);
    }
    let down = within(
        "every target down: the router's routes of both VIPs are withdrawn",
        Duration::from_secs(5),
        || routed_via(&topo, &[]),
    );
    for be in ["be1", "be2", "be3"] {
        assert_eq!(health_state(&lb1, be), "unhealthy", "web/{be}");
    }
    let vips = vip_announcements(&lb1);
    eprintln!("lbctl announce, every target down: {vips:?}");
    assert_eq!(vips.len(), 2, "{vips:?}");
    for (announced, reason) in &vips {
        assert!(!announced, "a VIP is still announced: {vips:?}");
        assert!(
            reason.contains("no usable destination (3 destination(s), all unhealthy)"),
            "the reason does not say why: {vips:?}"
        );
    }
    // And it stays withdrawn (nothing flaps back while they are down).
    std::thread::sleep(Duration::from_secs(1));
    routed_via(&topo, &[]).expect("the VIPs stay withdrawn while every target is down");

    // One target back: announced again, and that target is healthy.
    servers.0[1] = Some(CheckServers::start(&info, 2));
    let up = within(
        "be2 back: the router routes both VIPs via lb1 again",
        Duration::from_secs(5),
        || routed_via(&topo, &[1]),
    );
    assert_eq!(health_state(&lb1, "be2"), "healthy");
    for be in ["be1", "be3"] {
        assert_eq!(health_state(&lb1, be), "unhealthy", "web/{be}");
    }
    let vips = vip_announcements(&lb1);
    assert!(vips.iter().all(|(a, _)| *a), "{vips:?}");
    eprintln!(
        "withdrawn {:.2} s after every server stopped, announced {:.2} s after one restarted",
        down.as_secs_f64(),
        up.as_secs_f64()
    );
}
