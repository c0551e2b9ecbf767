//! lbfwd end to end: real clients, real servers, the kernel's own VXLAN
//! decapsulation, direct server return. Each test builds its own network
//! (scripts/lib/topo.sh), runs `lbfwd run` on it with one packet I/O
//! backend (`af_packet`, `af_xdp`, or `dpdk` through DPDK's
//! `net_af_packet` PMD on the same veth), and deletes it again, also on
//! failure.
//!
//! Run: `cargo test -p lbfwd-tests --test e2e -- --nocapture` as root.

use lbfwd_tests::client::{http_get, http_many, ping, tally, udp, udp_backend, url, Transfer};
use lbfwd_tests::{Backend, ConfigOptions, FlowProbe, Node, Scenario, TopologyInfo, Underlay};
use std::collections::BTreeSet;
use std::time::Duration;

const BACKENDS: [&str; 3] = ["be1", "be2", "be3"];
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// One test per scenario and backend, named `SCENARIO::BACKEND` (the
/// backend's config name).
macro_rules! scenarios {
    ($($name:ident: $($backend:ident)+;)*) => {$(
        mod $name {
            $(
                #[test]
                fn $backend() {
                    super::$name(super::backend(stringify!($backend)))
                }
            )+
        }
    )*};
}

// Every scenario runs with every backend. For DPDK the IPv6 underlay
// matters too: its outer header is 20 bytes longer, prepended into the
// mbuf's headroom.
scenarios! {
    tcp_connections_spread_and_stay: af_packet af_xdp dpdk;
    udp_port_range_filter: af_packet af_xdp dpdk;
    icmp_echo_to_vip_dropped: af_packet af_xdp dpdk;
    dual_stack_over_ipv6_underlay: af_packet af_xdp dpdk;
    removed_backend_loses_only_its_flows: af_packet af_xdp dpdk;
    host_path_arp_ndp_ping: af_packet af_xdp dpdk;
}

/// The backend whose config name is `name`.
fn backend(name: &str) -> Backend {
    Backend::ALL
        .into_iter()
        .find(|b| b.config_name() == name)
        .unwrap_or_else(|| panic!("no backend is named {name}"))
}

/// `n` GETs of `/` on `vip`, each on a new connection; asserts every one was
/// answered and returns them.
fn fresh_connections(topo: &TopologyInfo, vip: &str, n: usize) -> Vec<Transfer> {
    let urls = vec![url(vip, 80, "/"); n];
    let t = http_many(topo, &urls, true, HTTP_TIMEOUT).expect("curl");
    let failed: Vec<&Transfer> = t.iter().filter(|t| !t.ok()).collect();
    assert!(
        failed.is_empty(),
        "{} of {n} connections to {vip} failed: {failed:?}",
        failed.len()
    );
    t
}

/// rx_packets of `dev` on be1..be3.
fn backend_rx(topo: &TopologyInfo, dev_key: &str) -> [u64; 3] {
    let mut c = [0; 3];
    for (i, slot) in c.iter_mut().enumerate() {
        let n = i as u8 + 1;
        *slot = topo
            .dev_counter(
                Node::Backend(n),
                topo.get(&format!("BE{n}_{dev_key}")),
                "rx_packets",
            )
            .expect("read a backend counter");
    }
    c
}

/// [`backend_rx`] once it stopped moving: the closing handshakes of earlier
/// connections (their last ACKs pass through lbfwd) can trail by a while on
/// a busy machine. Waits until two reads 200 ms apart agree, 3 s at most.
fn quiet_backend_rx(topo: &TopologyInfo, dev_key: &str) -> [u64; 3] {
    let mut last = backend_rx(topo, dev_key);
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(200));
        let now = backend_rx(topo, dev_key);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

fn delta(after: [u64; 3], before: [u64; 3]) -> [u64; 3] {
    [
        after[0] - before[0],
        after[1] - before[1],
        after[2] - before[2],
    ]
}

/// Many real TCP connections to both VIPs all succeed and are spread over
/// all three backends; a keep-alive connection is answered by one backend
/// throughout; every packet of one long download reaches one backend only.
fn tcp_connections_spread_and_stay(backend: Backend) {
    let Some(s) = Scenario::start(
        "tcp_connections_spread_and_stay",
        "tcp",
        ConfigOptions::new(backend),
    ) else {
        return;
    };
    let topo = &s.topo;
    for vip in [topo.vip4(), topo.vip6()] {
        let t = fresh_connections(topo, vip, 60);
        let ports: BTreeSet<u16> = t.iter().map(|t| t.local_port).collect();
        assert_eq!(ports.len(), 60, "60 connections, 60 source ports: {t:?}");
        let counts = tally(t.iter().map(|t| t.backend.as_str()));
        eprintln!("{vip}: 60 connections answered by {counts:?}");
        for b in BACKENDS {
            assert!(
                counts.get(b).copied().unwrap_or(0) > 0,
                "{vip}: {b} got none of 60: {counts:?}"
            );
        }
        assert_eq!(counts.len(), 3, "unknown backends answered: {counts:?}");

        for _ in 0..6 {
            let urls = vec![url(vip, 80, "/"); 25];
            let t = http_many(topo, &urls, false, HTTP_TIMEOUT).expect("curl");
            assert!(
                t.iter().all(Transfer::ok),
                "keep-alive requests failed: {t:?}"
            );
            let connects: u32 = t.iter().map(|t| t.connects).sum();
            assert_eq!(
                connects, 1,
                "25 requests should share one connection: {t:?}"
            );
            let who = tally(t.iter().map(|t| t.backend.as_str()));
            assert_eq!(who.len(), 1, "one connection, several backends: {who:?}");
        }
    }

    // One connection, one backend, counted where the kernel decapsulates.
    for vip in [topo.vip4(), topo.vip6()] {
        let size = 8_000_000;
        // After the closing handshakes of the connections above.
        let before = quiet_backend_rx(topo, "VX4");
        let t = http_get(
            topo,
            &url(vip, 80, &format!("/big?bytes={size}")),
            Duration::from_secs(60),
        )
        .expect("curl");
        let d = delta(backend_rx(topo, "VX4"), before);
        assert!(t.ok() && t.bytes == size, "download from {vip}: {t:?}");
        let winner = BACKENDS
            .iter()
            .position(|b| *b == t.backend)
            .expect("a known backend");
        eprintln!(
            "{vip}: {size} bytes from {}; packets decapsulated per backend: {d:?}",
            t.backend
        );
        assert!(
            d[winner] >= 100,
            "{} decapsulated only {} packets of the download's ACKs",
            t.backend,
            d[winner]
        );
        for (i, n) in d.iter().enumerate() {
            if i != winner {
                assert_eq!(
                    *n,
                    0,
                    "be{} got {n} packets of a connection answered by {}",
                    i + 1,
                    t.backend
                );
            }
        }
    }
    s.finish();
}

/// UDP to ports of the allowed range (1024-2048, both ends included) is
/// forwarded and answered, spread over the backends; ports outside the
/// range (2049, 3000) and a TCP port not in the list (8080) get nothing,
/// although servers listen there (topo.sh's self-test proves they answer).
fn udp_port_range_filter(backend: Backend) {
    let Some(mut s) = Scenario::start("udp_port_range_filter", "udp", ConfigOptions::new(backend))
    else {
        return;
    };
    let topo = &s.topo;
    for vip in [topo.vip4(), topo.vip6()] {
        let mut who = Vec::new();
        for port in [1024, 1500, 2048] {
            let payload = format!("hello{port}");
            let answers =
                udp(topo, vip, port, &payload, Duration::from_secs(2), 20).expect("udp client");
            for a in &answers {
                let a = a.as_deref().unwrap_or_else(|| {
                    panic!("{vip}:{port}: a datagram got no answer: {answers:?}")
                });
                assert!(
                    a.ends_with(&format!(" {payload}")),
                    "{vip}:{port}: answer {a:?}"
                );
                who.push(udp_backend(a).to_string());
            }
        }
        let counts = tally(who.iter().map(String::as_str));
        eprintln!("{vip}: 60 UDP flows answered by {counts:?}");
        assert_eq!(
            counts.keys().map(String::as_str).collect::<Vec<_>>(),
            BACKENDS.to_vec(),
            "{vip}: UDP flows not spread over all backends: {counts:?}"
        );

        for port in [2049, 3000] {
            let answers =
                udp(topo, vip, port, "blocked", Duration::from_secs(1), 3).expect("udp client");
            assert_eq!(
                answers,
                vec![None, None, None],
                "{vip}:{port} is outside the allowed range"
            );
        }
        let t = http_get(topo, &url(vip, 8080, "/"), Duration::from_secs(2)).expect("curl");
        assert!(
            !t.ok(),
            "TCP {vip}:8080 is not in the load balancer's ports but was answered: {t:?}"
        );
    }
    // lbfwd dropped them; it did not die.
    s.lbfwd
        .check_running()
        .expect("lbfwd after the blocked ports");
    let a = udp(
        &s.topo,
        s.topo.vip4(),
        1500,
        "again",
        Duration::from_secs(2),
        1,
    )
    .expect("udp client");
    assert!(
        a[0].is_some(),
        "allowed UDP no longer answered after the blocked ones"
    );
    s.finish();
}

/// A ping to either VIP gets no answer (ICMP echo to a VIP is dropped by
/// default) and no echo request even reaches a backend, while lbfwd keeps
/// forwarding TCP and the lb node's own address answers ping.
fn icmp_echo_to_vip_dropped(backend: Backend) {
    let Some(s) = Scenario::start(
        "icmp_echo_to_vip_dropped",
        "icmp",
        ConfigOptions::new(backend),
    ) else {
        return;
    };
    let topo = &s.topo;
    for vip in [topo.vip4(), topo.vip6()] {
        // After the closing handshakes of lbfwd's readiness probes and of
        // the HTTP check below.
        let before = quiet_backend_rx(topo, "VX4");
        let got = ping(topo, Node::Client, vip, 3).expect("ping");
        let d = delta(backend_rx(topo, "VX4"), before);
        assert_eq!(got, 0, "ping {vip} was answered");
        assert_eq!(d, [0, 0, 0], "echo requests to {vip} reached backends");
        let t = http_get(topo, &url(vip, 80, "/"), HTTP_TIMEOUT).expect("curl");
        assert!(t.ok(), "HTTP to {vip} after the ping: {t:?}");
    }
    assert_eq!(
        ping(topo, Node::Client, topo.get("LB_IP4"), 3).expect("ping"),
        3
    );
    s.finish();
}

/// A dual-stack load balancer whose destinations are reached over IPv6
/// (VXLAN in IPv6): both VIPs answer TCP and UDP, spread over all backends,
/// and only the backends' IPv6-underlay VXLAN devices see traffic.
fn dual_stack_over_ipv6_underlay(backend: Backend) {
    let opts = ConfigOptions::new(backend).underlay(Underlay::V6);
    let Some(s) = Scenario::start("dual_stack_over_ipv6_underlay", "v6", opts) else {
        return;
    };
    let topo = &s.topo;
    let (v4_before, v6_before) = (backend_rx(topo, "VX4"), backend_rx(topo, "VX6"));
    for vip in [topo.vip4(), topo.vip6()] {
        // 45: all of them missing one of three backends by chance would
        // happen in about 1 of 30 million runs (30: 1 of 60,000).
        let t = fresh_connections(topo, vip, 45);
        let counts = tally(t.iter().map(|t| t.backend.as_str()));
        eprintln!("{vip} over the IPv6 underlay: 45 connections answered by {counts:?}");
        for b in BACKENDS {
            assert!(
                counts.contains_key(b),
                "{vip}: {b} got none of 45: {counts:?}"
            );
        }
        let answers = udp(topo, vip, 1500, "six", Duration::from_secs(2), 10).expect("udp client");
        assert!(
            answers.iter().all(Option::is_some),
            "{vip}: UDP over the IPv6 underlay: {answers:?}"
        );
    }
    let (v4, v6) = (
        delta(backend_rx(topo, "VX4"), v4_before),
        delta(backend_rx(topo, "VX6"), v6_before),
    );
    eprintln!("decapsulated per backend: IPv4 underlay {v4:?}, IPv6 underlay {v6:?}");
    assert_eq!(v4, [0, 0, 0], "traffic arrived over the IPv4 underlay");
    assert!(
        v6.iter().all(|n| *n > 0),
        "a backend got nothing over the IPv6 underlay: {v6:?}"
    );
    s.finish();
}

/// Long-lived connections run to every backend; one backend leaves the
/// routing while they run. Its connections end (their packets now reach a
/// backend that knows nothing of them); every other connection keeps
/// working on its backend, and new connections go to the remaining two.
fn removed_backend_loses_only_its_flows(backend: Backend) {
    let Some(mut s) = Scenario::start(
        "removed_backend_loses_only_its_flows",
        "rm",
        ConfigOptions::new(backend),
    ) else {
        return;
    };
    let victim = "be2";
    let (vip4, vip6) = (s.topo.vip4().to_string(), s.topo.vip6().to_string());
    // 12 per VIP, more if one backend has none of them (then 48 per VIP at
    // most: all of 96 missing one of three backends would be a real fault).
    let (mut probe, conns) = FlowProbe::start_covering(
        &s.topo,
        &[&vip4, &vip6],
        12,
        &BACKENDS,
        48,
        Duration::from_secs(10),
    )
    .expect("flow probe");
    let failed: Vec<_> = conns.iter().filter(|c| c.backend.is_none()).collect();
    assert!(
        failed.is_empty(),
        "probe connections failed to open: {failed:?}"
    );
    let counts = tally(conns.iter().filter_map(|c| c.backend.as_deref()));
    eprintln!("{} long-lived connections on {counts:?}", conns.len());
    for b in BACKENDS {
        assert!(
            counts.contains_key(b),
            "no long-lived connection on {b}: {counts:?}"
        );
    }

    std::thread::sleep(Duration::from_secs(1));
    let method = s.remove_backend(victim);
    probe.mark().expect("mark the flow probe");
    eprintln!("{victim} removed from the routing ({method:?})");
    std::thread::sleep(Duration::from_secs(2));

    for (vip, n) in [(vip4.as_str(), 30), (vip6.as_str(), 30)] {
        let t = fresh_connections(&s.topo, vip, n);
        let after = tally(t.iter().map(|t| t.backend.as_str()));
        eprintln!("{vip}: new connections after the removal answered by {after:?}");
        assert!(
            !after.contains_key(victim),
            "{vip}: new connections still reach {victim}: {after:?}"
        );
        assert!(
            after.contains_key("be1") && after.contains_key("be3"),
            "{vip}: {after:?}"
        );
    }

    let summary = probe
        .finish(Duration::from_secs(60))
        .expect("flow probe summary");
    for c in &summary {
        let on = c.backend.as_deref().unwrap_or("?");
        if on == victim {
            assert!(
                c.error.is_some() && c.ok_after == 0,
                "connection {} on the removed {victim} kept working: {c:?}",
                c.id
            );
        } else {
            assert!(
                c.error.is_none(),
                "connection {} on {on} broke: {c:?}",
                c.id
            );
            assert_eq!(
                c.seen,
                vec![on.to_string()],
                "connection {} moved: {c:?}",
                c.id
            );
            assert!(
                c.ok_after >= 5,
                "connection {} on {on} idle after the removal: {c:?}",
                c.id
            );
        }
    }
    s.finish();
}

/// The lb node's own addresses keep working through lbfwd: the router
/// resolves them by ARP and NDP and they answer ping from the router and
/// the client.
fn host_path_arp_ndp_ping(backend: Backend) {
    let Some(s) = Scenario::start(
        "host_path_arp_ndp_ping",
        "host",
        ConfigOptions::new(backend),
    ) else {
        return;
    };
    let topo = &s.topo;
    let dev = topo.get("ROUTER_LB_DEV");
    let mac = topo.get("LB_MAC").to_lowercase();
    for (family, addr) in [("-4", topo.get("LB_IP4")), ("-6", topo.get("LB_IP6"))] {
        topo.exec(
            Node::Router,
            "ip",
            &[family, "neigh", "flush", "dev", dev],
            Duration::from_secs(5),
        )
        .and_then(|o| o.checked())
        .expect("flush the router's neighbours");
        assert_eq!(
            ping(topo, Node::Router, addr, 3).expect("ping"),
            3,
            "ping {addr} from the router"
        );
        let neigh = topo
            .exec(
                Node::Router,
                "ip",
                &[family, "neigh", "show", addr, "dev", dev],
                Duration::from_secs(5),
            )
            .and_then(|o| o.checked())
            .expect("ip neigh show");
        assert!(
            neigh.stdout.to_lowercase().contains(&mac),
            "the router did not resolve {addr} to {mac}: {}",
            neigh.stdout
        );
        assert_eq!(
            ping(topo, Node::Client, addr, 3).expect("ping"),
            3,
            "ping {addr} from the client"
        );
    }
    let t = http_get(topo, &url(topo.vip4(), 80, "/"), HTTP_TIMEOUT).expect("curl");
    assert!(t.ok(), "the VIP after the host-path checks: {t:?}");
    s.finish();
}
