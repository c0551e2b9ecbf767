//! What the health checker costs: 1000 targets probed every 500 ms (tcp and
//! http), against a real listener on 127.0.0.0/8 (every address of it is
//! local, one listener on 0.0.0.0 answers them all). Prints the prober
//! thread's CPU share and the process's memory growth; asserts every target
//! became healthy and no probe failed.
//!
//! A measurement, not a CI test (10 s per kind):
//! `cargo test --release -p lbfwd-forwarder --test health_load -- --ignored --nocapture`

use lbfwd_config::health::{HealthCheckKind, HealthCheckSpec};
use lbfwd_config::model::Encap;
use lbfwd_config::{
    DesiredState, Destination, IcmpEcho, LoadBalancerSpec, LoadBalancerType, Resolved,
    ResolvedLoadBalancer,
};
use lbfwd_forwarder::health::HealthMonitor;
use lbfwd_forwarder::tables::UnderlayParams;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TARGETS: usize = 1000;
const RUN: Duration = Duration::from_secs(10);

fn ticks_per_sec() -> f64 {
    // Linux reports /proc times in USER_HZ, 100 on every platform lbfwd
    // runs on.
    100.0
}

/// (utime, stime) of this process's thread named `name`, in seconds.
fn thread_cpu(name: &str) -> Option<(f64, f64)> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the ")" of comm: state is field 3; utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = f.get(11)?.parse().ok()?;
        let stime: f64 = f.get(12)?.parse().ok()?;
        return Some((utime / ticks_per_sec(), stime / ticks_per_sec()));
    }
    None
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A listener answering every connection with a 200 (for http) and
/// closing, on a few threads so that it keeps up with 2000 connections a
/// second.
fn listener() -> u16 {
    let l = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    for _ in 0..8 {
        let l = l.try_clone().expect("clone the listener");
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                let mut buf = [0u8; 512];
                if let Ok(n) = s.read(&mut buf) {
                    if n > 0 {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    }
                }
            }
        });
    }
    port
}

fn world(kind: HealthCheckKind, port: u16) -> (DesiredState, Resolved) {
    let mut spec = LoadBalancerSpec::new("big", LoadBalancerType::Internal, "n");
    let mut check = HealthCheckSpec::new(kind);
    check.port = Some(i64::from(port));
    check.interval_ms = Some(500);
    check.timeout_ms = Some(300);
    check.rise = Some(2);
    check.fall = Some(2);
    spec.health_check = Some(Box::new(check));
    let state = DesiredState {
        load_balancers: vec![spec],
        ..DesiredState::default()
    };
    let destinations = (0..TARGETS)
        .map(|i| Destination {
            name: format!("t{i:04}"),
            uid: String::new(),
            underlay: IpAddr::V4(Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)),
            mac: None,
            weight: 100,
        })
        .collect();
    let resolved = Resolved {
        load_balancers: vec![ResolvedLoadBalancer {
            name: "big".into(),
            lb_type: LoadBalancerType::Internal,
            network: "n".into(),
            vni: 1,
            ips: Vec::new(),
            ports: Vec::new(),
            icmp_echo: IcmpEcho::Drop,
            maglev_table_size: 65537,
            destinations,
        }],
    };
    (state, resolved)
}

fn measure(kind: HealthCheckKind) {
    let port = listener();
    let (state, resolved) = world(kind, port);
    let rss0 = rss_kib();
    let monitor = Arc::new(HealthMonitor::new());
    monitor.sync(&state, &resolved);
    let underlay = UnderlayParams {
        encap: Encap::IpIp,
        source_ipv4: None,
        source_ipv6: None,
        source_mac: [0; 6],
        next_hop_mac: [0; 6],
        mtu: 1500,
    };
    monitor
        .start(underlay, Box::new(|| {}))
        .expect("start the prober");
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    let cpu0 = thread_cpu("lbfwd-health").expect("the prober thread");
    std::thread::sleep(RUN);
    let cpu1 = thread_cpu("lbfwd-health").expect("the prober thread");
    let wall = t0.elapsed().as_secs_f64() - 0.1;
    let rss1 = rss_kib();
    let list = monitor.list();
    monitor.stop();
    let sent: u64 = list.iter().map(|t| t.health.probes.sent).sum();
    let failed: u64 = list.iter().map(|t| t.health.probes.failed).sum();
    let healthy = list
        .iter()
        .filter(|t| t.health.state == lbfwd_control::health::HealthState::Healthy)
        .count();
    let (user, sys) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    let share = (user + sys) / wall;
    eprintln!(
        "{}: {TARGETS} targets every 500 ms for {wall:.1} s: {sent} probes ({:.0}/s), {failed} failed; \
         prober thread CPU {:.1}% of one core ({:.1}% user, {:.1}% system; {:.1} us per probe); RSS +{} KiB",
        kind.as_str(),
        sent as f64 / (wall + 0.1),
        share * 100.0,
        user / wall * 100.0,
        sys / wall * 100.0,
        (user + sys) * 1e6 / sent.max(1) as f64,
        rss1.saturating_sub(rss0)
    );
    let reasons: std::collections::BTreeSet<String> = list
        .iter()
        .filter_map(|t| t.health.last_failure.clone())
        .collect();
    assert_eq!(healthy, TARGETS, "every target healthy");
    assert_eq!(failed, 0, "no probe failed: {reasons:?}");
    // 2 probes per target per second, give or take the first interval.
    assert!(sent as f64 >= TARGETS as f64 * 2.0 * (RUN.as_secs_f64() - 1.0));
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn thousand_targets_every_500ms_tcp() {
    measure(HealthCheckKind::Tcp);
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn thousand_targets_every_500ms_http() {
    measure(HealthCheckKind::Http);
}
