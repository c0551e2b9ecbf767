//! Exception sync end to end (`[sync]`, issue 19): two lbfwd appliances in
//! ECMP behind a BIRD 2 router (L4 hash; `scripts/lib/topo-ecmp.sh`), a
//! client keeping HTTP connections alive through both to VXLAN backends.
//! A weight change (`lbctl weight web be1 1000` on both, the others stay at
//! 100) keeps every running connection on its target, although Maglev now
//! maps about half of them to be1; then `kill -9` of lb1 moves its connections to lb2, which never
//! saw them:
//!
//! 1. without `[sync]`, lb2 sends the moved exceptions to their new Maglev
//!    pick and some connections break (reset by a backend that never saw
//!    them): the check below can fail;
//! 2. with `[sync]` (HMAC key), lb1 told lb2 its exceptions before it died:
//!    no connection breaks or moves, and lb2's `lbctl stats` shows the
//!    peer's exceptions it adopted; nor when lb1, restarted with an empty
//!    flow table (`[flow] persist = false` here), gets its flows back from ECMP (it learns lb2's exceptions
//!    with its hello).
//!
//! Run: `flock /tmp/lbfwd-netns.lock cargo test -p lbfwd-tests --test sync -- --nocapture` as root.

use lbfwd_tests::ecmp::routed_via;
use lbfwd_tests::{
    lbfwd_binaries, require_root, within, workspace_root, Appliance, Backend, Binaries, FlowProbe,
    ProbeSummary, Topology,
};
use std::path::PathBuf;
use std::time::Duration;

/// The network's prefix (unique to this test).
const PREFIX: &str = "synce";
/// Per-request limit of the kept-alive connections: longer than the
/// rerouting, so a connection fails only if it really broke.
const PROBE_TIMEOUT: Duration = Duration::from_secs(8);
/// Kept-alive connections per VIP (IPv4 and IPv6): about half go through
/// lb1 and half of those become exceptions with the weight change, so
/// without sync none breaking has a chance of about (1/2)^24 ≈ 6e-8. (In
/// runs, lb2 adopted a few of lb1's exceptions fewer than it knew: it had
/// entries of its own for them; those do not break without sync either.)
const CONNS: u32 = 24;
/// The sync port of both appliances.
const SYNC_PORT: u16 = 4797;
/// Their Prometheus endpoints (each on its own loopback).
const METRICS_PORT: u16 = 9464;

/// Appliance `n`'s config from the network script, in a state directory
/// of its own for this phase (the weight change is saved there), with a
/// `[sync]` section toward the other appliance when `sync`.
fn config(topo: &Topology, n: u8, phase: &str, sync: bool) -> PathBuf {
    let text = topo
        .script("config", &[&n.to_string()])
        .and_then(lbfwd_tests::cmd::Output::checked)
        .expect("the network script's config")
        .stdout;
    let dir = topo.state_dir().join(format!("lb{n}"));
    let state = dir.join(format!("state-{phase}"));
    let mut text = text
        .lines()
        .map(|l| {
            if l.starts_with("state_dir = ") {
                format!("state_dir = {:?}", state.to_string_lossy())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    // The flow tables' persistence across a restart (tests/tests/persist.rs)
    // is off here: it would carry a phase's flows into the next phase, and a
    // restarted lb1 would keep its own flows instead of learning lb2's
    // exceptions, which is what this test shows.
    text.push_str("\n\n[flow]\npersist = false\n");
    if sync {
        let other = 3 - n;
        text.push_str(&format!(
            "\n\n[sync]\nlisten = \"{}:{SYNC_PORT}\"\npeers = [\"{}:{SYNC_PORT}\"]\n\
             key = \"not a secret, only a test key\"\nrefresh_interval_ms = 500\n\n\
             [metrics]\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n",
            topo.get(&format!("LB{n}_IP4")),
            topo.get(&format!("LB{other}_IP4")),
        ));
    }
    let path = dir.join(format!("lbfwd-{phase}.toml"));
    std::fs::write(&path, text + "\n").expect("write the config");
    path
}

/// Frames appliance `a`'s workers received.
fn rx_packets(a: &Appliance) -> u64 {
    a.json(&["stats"])["totals"]["rx"]["packets"]
        .as_u64()
        .unwrap_or(0)
}

/// Starts both appliances (with or without sync), runs kept-alive
/// connections through both, changes be1's weight on both, kills lb1 with
/// SIGKILL, and restarts it; returns how each connection ended and lb2
/// (still running).
fn weight_change_then_kill(
    topo: &Topology,
    bins: &Binaries,
    phase: &str,
    sync: bool,
) -> (Vec<ProbeSummary>, Appliance) {
    let mut lb1 = Appliance::start_with(topo, bins, 1, config(topo, 1, phase, sync));
    let lb2 = Appliance::start_with(topo, bins, 2, config(topo, 2, phase, sync));
    within(
        &format!("{phase}: the router routes both VIPs via lb1 and lb2"),
        Duration::from_secs(30),
        || routed_via(topo, &[1, 2]),
    );
    let (mut probe, conns) =
        FlowProbe::start(topo, &[topo.vip4(), topo.vip6()], CONNS, PROBE_TIMEOUT).expect("probe");
    let failed: Vec<_> = conns.iter().filter(|c| c.backend.is_none()).collect();
    assert!(
        failed.is_empty(),
        "{phase}: connections failed to open: {failed:?}"
    );
    for lb in [&lb1, &lb2] {
        lb.lbctl_ok(&["weight", "web", "be1", "1000"]);
    }
    // Every connection asks a few times under the new tables (each
    // appliance re-validates its flows and, with sync, tells the other).
    let before = rx_packets(&lb1);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        rx_packets(&lb1) > before,
        "{phase}: no kept-alive connection goes through lb1: the check would prove nothing"
    );
    lb1.kill9();
    within(
        &format!("{phase}: lb1's routes are gone after kill -9"),
        Duration::from_secs(5),
        || routed_via(topo, &[2]),
    );
    probe.mark().expect("mark");
    std::thread::sleep(Duration::from_millis(2000));
    // lb1 restarted with an empty flow table: ECMP brings its flows back
    // (with sync, it asks lb2 for its exceptions as it starts: lb2 now keeps
    // lb1's former exceptions as its own).
    lb1.spawn();
    within(
        &format!("{phase}: restarted lb1 is a next hop again"),
        Duration::from_secs(30),
        || routed_via(topo, &[1, 2]),
    );
    std::thread::sleep(Duration::from_millis(1500));
    if sync {
        let stats = lb1.json(&["stats"]);
        assert!(
            stats["sync"]["adopted"].as_u64().unwrap_or(0) > 0,
            "{phase}: the restarted lb1 adopted none of lb2's exceptions: {}",
            stats["sync"]
        );
        eprintln!(
            "ok: {phase}: the restarted lb1 adopted {} of lb2's exceptions",
            stats["sync"]["adopted"]
        );
    }
    drop(lb1);
    let summary = probe
        .finish(Duration::from_secs(30))
        .expect("probe summary");
    (summary, lb2)
}

/// The connections that broke or moved to another backend.
fn broken(summary: &[ProbeSummary]) -> Vec<&ProbeSummary> {
    summary
        .iter()
        .filter(|c| c.error.is_some() || c.ok_after == 0 || c.seen.len() != 1)
        .collect()
}

#[test]
fn exceptions_survive_an_ecmp_move_to_another_appliance() {
    if !require_root("sync::exceptions_survive_an_ecmp_move") {
        return;
    }
    let _serial = lbfwd_tests::serial();
    let bins = lbfwd_binaries(Backend::AfPacket)
        .expect("build lbfwd")
        .expect("af_packet is always built");
    let topo = Topology::up_with(&workspace_root().join("scripts/lib/topo-ecmp.sh"), PREFIX)
        .expect("topo-ecmp.sh up");
    let started = std::time::Instant::now();

    // 1. Without sync, lb2 sends lb1's exceptions to their new Maglev pick.
    let (summary, lb2) = weight_change_then_kill(&topo, &bins, "nosync", false);
    let lost = broken(&summary);
    eprintln!(
        "without sync: {} of {} kept-alive connections broke after kill -9 of lb1",
        lost.len(),
        summary.len()
    );
    assert!(
        !lost.is_empty(),
        "without sync no connection broke: the weight change made no exception that \
         moved to lb2, so the sync check below would prove nothing: {summary:?}"
    );
    drop(lb2);
    within(
        "the router withdraws both VIPs once lb2 is gone",
        Duration::from_secs(5),
        || routed_via(&topo, &[]),
    );

    // 2. With sync, lb2 knows lb1's exceptions: none breaks.
    let (summary, lb2) = weight_change_then_kill(&topo, &bins, "sync", true);
    let lost = broken(&summary);
    let stats = lb2.json(&["stats"]);
    let sync = &stats["sync"];
    assert!(
        lost.is_empty(),
        "with sync, {} of {} connections broke or moved: {lost:?}\nlb2's sync counters: {sync}",
        lost.len(),
        summary.len()
    );
    assert!(
        sync["peer_exceptions"].as_u64().unwrap_or(0) > 0
            && sync["adopted"].as_u64().unwrap_or(0) > 0
            && sync["datagrams_rejected"] == 0,
        "lb2 adopted lb1's exceptions: {sync}"
    );
    let text = lb2.lbctl_ok(&["stats"]);
    assert!(text.contains("sync        "), "{text}");
    let scrape = lbfwd_tests::cmd::run(
        std::process::Command::new("ip")
            .args(["netns", "exec", &lb2.ns()])
            .arg(lbfwd_tests::python())
            .arg("-c")
            .arg(format!(
                "import urllib.request; print(urllib.request.urlopen(\
                 'http://127.0.0.1:{METRICS_PORT}/metrics').read().decode())"
            )),
        Duration::from_secs(10),
    )
    .and_then(lbfwd_tests::cmd::Output::checked)
    .expect("scrape lb2's metrics")
    .stdout;
    let adopted = format!("lbfwd_sync_exceptions_adopted_total {}\n", sync["adopted"]);
    assert!(scrape.contains(&adopted), "lb2's metrics lack {adopted:?}");
    eprintln!(
        "ok: with sync, all {} kept-alive connections carried on, each on its target; \
         lb2 knew {} exceptions of lb1 and adopted {} ({:.0?} in all)",
        summary.len(),
        sync["peer_exceptions"],
        sync["adopted"],
        started.elapsed()
    );
}
