//! The soak (issue 19): `scripts/soak.sh 60` — lbfwd in the topo.sh network
//! under fresh and kept-alive HTTP and UDP traffic, a random valid change
//! every ~100 ms, invalid changes in between and a kill -9 plus restart
//! every ~20 s — passes, and did what it says (enough traffic, changes,
//! refusals and restarts for its verdict to mean something; every restart
//! re-attached the flow tables with flows in them, and no flow was
//! re-mapped by a restart). The script
//! judges the requests itself (the rule is at the top of
//! `scripts/lib/soak.py`); this test runs it on the binaries under test and
//! makes sure its namespaces are gone afterwards, also when it fails or has
//! to be killed.
//!
//! Run: `flock /tmp/lbfwd-netns.lock cargo test -p lbfwd-tests --test soak -- --nocapture` as root
//! (about 75 s).

use lbfwd_tests::cmd;
use lbfwd_tests::{lbfwd_binaries, require_root, serial, workspace_root, Backend};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const PREFIX: &str = "tsoak";
const SECONDS: u64 = 60;

/// Deletes the soak's network when dropped: `soak.sh` deletes it itself on
/// every exit it sees, but not when it is killed.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = cmd::run(
            Command::new("bash")
                .arg(workspace_root().join("scripts/lib/topo.sh"))
                .args(["down", PREFIX]),
            Duration::from_secs(60),
        );
    }
}

fn namespaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{PREFIX}-")))
        .map(str::to_string)
        .collect()
}

fn count(v: &Value) -> u64 {
    v.as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

#[test]
fn soak_60_seconds_of_traffic_changes_and_restarts() {
    if !require_root("soak_60_seconds_of_traffic_changes_and_restarts") {
        return;
    }
    let bins = lbfwd_binaries(Backend::AfPacket)
        .expect("build lbfwd")
        .expect("af_packet is always built");
    let _serial = serial();
    let _cleanup = Cleanup;
    let log_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("soak");
    let out = cmd::run(
        Command::new("bash")
            .arg(workspace_root().join("scripts/soak.sh"))
            .arg(SECONDS.to_string())
            .env("LBFWD_SOAK_PREFIX", PREFIX)
            .env("LBFWD_SOAK_LBFWD", &bins.lbfwd)
            .env("LBFWD_SOAK_LBCTL", &bins.lbctl)
            .env("LBFWD_SOAK_LOG_DIR", &log_dir),
        Duration::from_secs(SECONDS + 120),
    )
    .expect("run scripts/soak.sh");
    eprintln!("{}", out.stdout);
    assert!(
        out.success(),
        "scripts/soak.sh failed (logs in {}):\n{}",
        log_dir.display(),
        out.describe()
    );
    assert_eq!(
        namespaces(),
        Vec::<String>::new(),
        "soak.sh left namespaces"
    );

    let path = log_dir.join("summary.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let report: Value = serde_json::from_str(&text).expect("summary.json");
    let s = &report["summary"];
    assert_eq!(s["violations"], 0, "{text}");
    for kind in ["tcp_fresh", "tcp_kept_alive", "udp"] {
        let requests = s["requests"][kind]["requests"].as_u64().unwrap_or(0);
        let ok = s["requests"][kind]["ok"].as_u64().unwrap_or(0);
        assert!(
            requests >= 100 && ok * 2 >= requests,
            "too little {kind} traffic to judge: {requests} requests, {ok} answered\n{text}"
        );
    }
    assert!(
        count(&s["changes_applied"]) >= 100,
        "too few changes applied\n{text}"
    );
    assert!(
        count(&s["invalid_changes_refused"]) >= 30,
        "too few invalid changes tried\n{text}"
    );
    let restarts = s["restarts"].as_u64().unwrap_or(0);
    assert!(restarts >= 2, "{restarts} restarts\n{text}");
    assert_eq!(s["exports_equal_after_restart"].as_u64(), Some(restarts));
    assert_eq!(s["persist"], true, "{text}");
    assert_eq!(
        s["restarts_flow_tables_reattached"].as_u64(),
        Some(restarts),
        "a restart did not re-attach every flow table\n{text}"
    );
    assert!(
        s["flows_kept_across_restarts"].as_u64().unwrap_or(0) >= restarts * 10,
        "too few flows kept across the restarts for them to show anything\n{text}"
    );
    assert_eq!(s["restart_remapped"], 0, "{text}");
}
