use super::*;
use lbfwd_config::Config;
use std::time::Duration;

const CONFIG: &str = r#"
[dataplane]
backend = "memory"
workers = [0]

[underlay]
encap = "vxlan"
source_ipv4 = "10.0.2.2"
next_hop_mac = "02:00:00:00:02:01"

[[network]]
name = "n"
vni = 100

[[network_interface]]
name = "be1"
network = "n"
underlay = "10.0.3.11"
mac = "02:00:00:00:10:11"
labels = { app = "web" }

[[network_interface]]
name = "be2"
network = "n"
underlay = "10.0.3.12"
mac = "02:00:00:00:10:12"
labels = { app = "web" }

[[network_interface]]
name = "be3"
network = "n"
underlay = "10.0.3.13"
mac = "02:00:00:00:10:13"
labels = { app = "web" }

[[load_balancer]]
name = "web"
type = "Internal"
network = "n"
ips = ["203.0.113.10"]
network_interface_selector = { match_labels = { app = "web" } }
ports = [ { protocol = "TCP", port = 80 } ]
weights = { be3 = 0 }
health_check = { kind = "tcp", port = 80, interval_ms = 500, timeout_ms = 300, rise = 2, fall = 2 }
"#;

fn setup(extra: &str) -> (HealthMonitor, Resolved) {
    let text = CONFIG.replace(
        "rise = 2, fall = 2 }",
        &format!("rise = 2, fall = 2{extra} }}"),
    );
    let c = Config::from_toml_str(&text, "t.toml").unwrap();
    let r = c.resolve().unwrap().resolved;
    let m = HealthMonitor::new();
    m.sync(&c.state, &r);
    (m, r)
}

fn key(name: &str) -> TargetKey {
    ("web".into(), name.into(), String::new())
}

fn names(r: &Resolved) -> Vec<String> {
    r.load_balancers[0]
        .destinations
        .iter()
        .map(|d| d.name.clone())
        .collect()
}

fn fail(m: &HealthMonitor, name: &str) -> bool {
    m.apply_results(vec![(key(name), Err("refused".into()))])
}

fn pass(m: &HealthMonitor, name: &str) -> bool {
    m.apply_results(vec![(key(name), Ok(()))])
}

#[test]
fn unknown_counts_as_usable_and_first_pass_makes_healthy() {
    let (m, r) = setup("");
    assert_eq!(names(&m.effective(&r)), ["be1", "be2", "be3"]);
    assert_eq!(m.summary().unknown, 3);
    // unknown -> healthy changes no routing.
    assert!(!pass(&m, "be1"));
    assert_eq!(m.list()[0].health.state, HealthState::Healthy);
    assert_eq!(m.list()[0].health.probes.state_changes, 1);
}

#[test]
fn hysteresis_fall_and_rise() {
    let (m, r) = setup("");
    pass(&m, "be1");
    // One lost probe moves nothing.
    assert!(!fail(&m, "be1"));
    assert!(!pass(&m, "be1"));
    assert!(!fail(&m, "be1"));
    assert_eq!(names(&m.effective(&r)), ["be1", "be2", "be3"]);
    // fall = 2 in a row.
    assert!(fail(&m, "be1"));
    assert_eq!(names(&m.effective(&r)), ["be2", "be3"]);
    let usable: Vec<&str> = m
        .usable_destinations(&r.load_balancers[0])
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(usable, ["be2"], "be3 is drained");
    // rise = 2 in a row; a failure in between starts over.
    assert!(!pass(&m, "be1"));
    assert!(!fail(&m, "be1"));
    assert!(!pass(&m, "be1"));
    assert!(pass(&m, "be1"));
    assert_eq!(names(&m.effective(&r)), ["be1", "be2", "be3"]);
    let row = &m.list()[0];
    assert_eq!(row.health.probes.failed, 4);
    assert_eq!(row.health.last_failure.as_deref(), Some("refused"));
}

#[test]
fn flapping_faster_than_rise_and_fall_changes_nothing() {
    let (m, r) = setup("");
    for _ in 0..20 {
        assert!(!fail(&m, "be2"));
        assert!(!pass(&m, "be2"));
    }
    assert_eq!(names(&m.effective(&r)), ["be1", "be2", "be3"]);
}

#[test]
fn drained_target_is_probed_and_leaves_only_when_unhealthy() {
    let (m, r) = setup("");
    fail(&m, "be3");
    fail(&m, "be3");
    // Drained and dead: out, so its flows are picked again.
    assert_eq!(names(&m.effective(&r)), ["be1", "be2"]);
}

#[test]
fn all_unhealthy_fails_open_by_default() {
    let (m, r) = setup("");
    for n in ["be1", "be2"] {
        fail(&m, n);
        fail(&m, n);
    }
    assert_eq!(names(&m.effective(&r)), ["be1", "be2", "be3"]);
    assert!(m.usable_destinations(&r.load_balancers[0]).is_empty());
    assert_eq!(m.summary().load_balancers_down, 1);
    // The announcer plans on the healthy ones only: be3 is drained, so
    // nothing is usable and the VIP is withdrawn although forwarding
    // fails open.
    assert_eq!(names(&m.without_unhealthy(&r)), ["be3"]);
    assert!(m
        .list()
        .iter()
        .filter(|t| t.weight > 0)
        .all(|t| t.health.in_table));
}

#[test]
fn all_unhealthy_drop_publishes_none_of_them() {
    let (m, r) = setup(", all_unhealthy = \"drop\"");
    for n in ["be1", "be2"] {
        fail(&m, n);
        fail(&m, n);
    }
    // The drained be3 keeps its flows; nothing takes new ones.
    assert_eq!(names(&m.effective(&r)), ["be3"]);
    assert!(m.usable_destinations(&r.load_balancers[0]).is_empty());
    assert!(m.list().iter().all(|t| !t.health.in_table));
}

#[test]
fn sync_keeps_state_and_forgets_removed_targets() {
    let (m, r) = setup("");
    fail(&m, "be1");
    fail(&m, "be1");
    let c = Config::from_toml_str(
        &CONFIG.replace("interval_ms = 500", "interval_ms = 1000"),
        "t.toml",
    )
    .unwrap();
    m.sync(&c.state, &r);
    assert_eq!(m.book().lbs["web"].check.interval, Duration::from_secs(1));
    assert_eq!(names(&m.effective(&r)), ["be2", "be3"], "still unhealthy");
    let mut fewer = r.clone();
    fewer.load_balancers[0]
        .destinations
        .retain(|d| d.name != "be1");
    m.sync(&c.state, &fewer);
    assert_eq!(m.list().len(), 2);
    // Back again: unknown, usable.
    m.sync(&c.state, &r);
    assert_eq!(names(&m.effective(&r)), ["be1", "be2", "be3"]);
}
