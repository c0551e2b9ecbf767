//! The flow table survives a restart (issue 19): kept-alive connections
//! pinned to their targets by the flow table stay on them when lbfwd is
//! killed with SIGKILL and started again, also those that the routing (a
//! weight changed since they began) would now send elsewhere.
//!
//! Run: `flock /tmp/lbfwd-netns.lock cargo test -p lbfwd-tests --test
//! persist -- --nocapture --test-threads=1` as root.

use lbfwd_tests::client::tally;
use lbfwd_tests::{Backend, ConfigOptions, FlowProbe, Scenario};
use std::time::{Duration, Instant};

/// Kept-alive connections of the test (the case).
const CONNECTIONS: u32 = 16;

/// One test per backend, named `SCENARIO::BACKEND`.
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

scenarios! {
    kill_9_and_restart_keeps_pinned_flows: af_packet af_xdp;
}

/// The backend whose config name is `name`.
fn backend(name: &str) -> Backend {
    Backend::ALL
        .into_iter()
        .find(|b| b.config_name() == name)
        .unwrap_or_else(|| panic!("no backend is named {name}"))
}

/// 16 kept-alive connections to the IPv4 VIP; one weight changes (`lbctl
/// weight web be1 400`: Maglev now maps some of the running flows to be1,
/// the flow table keeps them where they are); lbfwd is killed with SIGKILL
/// and started again. Not one connection breaks or moves: the restarted
/// lbfwd re-attached the flow table the killed one left.
fn kill_9_and_restart_keeps_pinned_flows(backend: Backend) {
    let started = Instant::now();
    let Some(mut s) = Scenario::start(
        "kill_9_and_restart_keeps_pinned_flows",
        "ps",
        ConfigOptions::new(backend),
    ) else {
        return;
    };
    let vip4 = s.topo.vip4().to_string();
    let (probe, conns) = FlowProbe::start(&s.topo, &[&vip4], CONNECTIONS, Duration::from_secs(20))
        .expect("flow probe");
    let failed: Vec<_> = conns.iter().filter(|c| c.backend.is_none()).collect();
    assert!(
        failed.is_empty(),
        "probe connections failed to open: {failed:?}"
    );
    let before = tally(conns.iter().filter_map(|c| c.backend.as_deref()));
    eprintln!("{} kept-alive connections on {before:?}", conns.len());

    s.lbfwd
        .lbctl_ok(&["weight", "web", "be1", "400"])
        .expect("lbctl weight web be1 400");
    // Every connection asks every 100 ms: each passes lbfwd under the new
    // tables before the kill (its entry re-validated there).
    std::thread::sleep(Duration::from_secs(1));
    s.lbfwd.kill9().expect("kill -9 lbfwd");
    s.lbfwd.respawn().expect("restart lbfwd");
    s.lbfwd
        .wait_ready(Duration::from_secs(30))
        .expect("the restarted lbfwd forwards");
    let log = s.lbfwd.log();
    eprintln!("restarted lbfwd's log:\n{log}");
    let mut probe = probe;
    probe.mark().expect("mark the flow probe");
    std::thread::sleep(Duration::from_secs(3));
    let summary = probe
        .finish(Duration::from_secs(40))
        .expect("flow probe summary");
    let broken: Vec<_> = summary
        .iter()
        .filter(|c| {
            c.error.is_some()
                || c.ok_after < 5
                || c.seen != vec![c.backend.clone().unwrap_or_default()]
        })
        .collect();
    assert!(
        broken.is_empty(),
        "{} of {} connections broke or moved across kill -9 and restart: {broken:#?}\n\
         restarted lbfwd's log:\n{log}",
        broken.len(),
        summary.len()
    );
    assert!(
        log.contains("flow table of worker 0 re-attached"),
        "the restarted lbfwd does not say it re-attached the flow table:\n{log}"
    );
    s.finish();
    eprintln!(
        "kill_9_and_restart_keeps_pinned_flows::{backend} took {:?}",
        started.elapsed()
    );
}
