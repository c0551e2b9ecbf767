//! What the announcer decides per VIP, and says why not: announcing off
//! (`[announce] initial = "off"`, `lbctl announce off`), a pool with
//! `bgp.announce = false`, no session of the VIP's family, no usable
//! destination. No BIRD is started here (the decisions do not need one; the
//! BIRD side is tested in `bird.rs` and end to end in `tests/tests/bgp.rs`).

use lbfwd_config::Config;
use lbfwd_forwarder::announce::Announcer;
use std::collections::BTreeMap;

const CONFIG: &str = r#"[dataplane]
backend = "memory"
workers = [0]
[underlay]
encap = "vxlan"
source_ipv4 = "10.0.2.2"
source_ipv6 = "fd00:2::2"
next_hop_mac = "02:00:00:00:00:01"
[control]
socket = "/nonexistent/lbfwd.sock"
state_dir = "/nonexistent/state"
[announce]
initial = "off"
[bgp]
asn = 65001
router_id = "10.0.2.2"
[[bgp.peer]]
address = "10.0.2.1"
asn = 65000
[[pool]]
name = "public"
addresses = ["203.0.113.0/30", "2001:db8::/126"]
[[pool]]
name = "dark"
addresses = ["198.51.100.0/30"]
bgp = { announce = false }
[[network]]
name = "n"
vni = 1
[[network_interface]]
name = "a"
network = "n"
labels = { app = "web" }
underlay = "10.0.3.11"
mac = "02:00:00:00:10:11"
[[load_balancer]]
name = "web"
type = "Public"
ip_families = ["IPv4", "IPv6"]
network = "n"
network_interface_selector = { match_labels = { app = "web" } }
[[load_balancer]]
name = "hidden"
type = "Public"
ips = ["198.51.100.1"]
network = "n"
network_interface_selector = { match_labels = { app = "web" } }
[[load_balancer]]
name = "empty"
type = "Public"
network = "n"
network_interface_selector = { match_labels = { app = "none" } }
"#;

fn reasons(a: &Announcer) -> BTreeMap<String, String> {
    a.status()
        .vips
        .into_iter()
        .map(|v| {
            (
                format!("{} {}", v.load_balancer, v.address),
                v.reason.unwrap_or_else(|| "announced".into()),
            )
        })
        .collect()
}

#[test]
fn every_vip_says_why_it_is_not_announced() {
    let config = Config::from_toml_str(CONFIG, "lbfwd.toml").expect("config");
    let resolved = config.resolve().expect("resolve").resolved;
    let a = Announcer::new(&config.settings, &resolved, &config.state.pools);
    a.dataplane_ready();
    let r = reasons(&a);
    assert!(
        r.values().all(|w| w.contains("announcing is off")),
        "{r:#?}"
    );
    assert!(!a.status().enabled);

    let status = a.set_enabled(true).expect("on");
    assert!(status.enabled);
    let r = reasons(&a);
    let get = |k: &str| {
        r.iter()
            .find(|(name, _)| name.starts_with(k))
            .map(|(_, w)| w.clone())
            .unwrap_or_else(|| panic!("no VIP {k} in {r:#?}"))
    };
    assert!(
        get("hidden 198.51.100.1").contains("bgp.announce = false"),
        "{r:#?}"
    );
    assert!(get("web 2001:db8::").contains("no IPv6 BGP peer"), "{r:#?}");
    assert!(get("empty ").contains("no usable destination"), "{r:#?}");
    // The one VIP to announce waits for BIRD, which this test never starts.
    assert!(
        get("web 203.0.113.").contains("BIRD is not running"),
        "{r:#?}"
    );
    let peers = a.status().bgp.expect("bgp").peers;
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].state, "unknown");

    a.begin_shutdown();
    assert!(reasons(&a).values().all(|w| w.contains("shutting down")));
}

#[test]
fn a_vip_withdrawn_for_health_says_its_destinations_are_unhealthy() {
    let config = Config::from_toml_str(CONFIG, "lbfwd.toml").expect("config");
    let resolved = config.resolve().expect("resolve").resolved;
    let a = Announcer::new(&config.settings, &resolved, &config.state.pools);
    a.dataplane_ready();
    a.set_enabled(true).expect("on");
    // What the daemon gives it when the health checks took web's only
    // destination out: web without destinations, and how many went.
    let mut usable = resolved.clone();
    let web = usable
        .load_balancers
        .iter_mut()
        .find(|lb| lb.name == "web")
        .expect("web");
    assert_eq!(web.destinations.len(), 1);
    web.destinations.clear();
    let unhealthy = BTreeMap::from([("web".to_string(), 1)]);
    // No BIRD runs here: the update's error is that, the plan is made.
    let _ = a.update(&usable, &unhealthy, &config.state.pools);
    let r = reasons(&a);
    let web4 = r
        .iter()
        .find(|(k, _)| k.starts_with("web 203.0.113."))
        .map(|(_, w)| w.clone())
        .expect("web's IPv4 VIP");
    assert_eq!(
        web4, "no usable destination (1 destination(s), all unhealthy)",
        "{r:#?}"
    );
    // A load balancer that really has none still says so.
    assert!(
        r.iter()
            .any(|(k, w)| k.starts_with("empty ") && w.contains("(it has none)")),
        "{r:#?}"
    );
    // Healthy again: the reason is no longer health.
    let _ = a.update(&resolved, &BTreeMap::new(), &config.state.pools);
    let r = reasons(&a);
    assert!(
        r.iter()
            .all(|(k, w)| !k.starts_with("web ") || !w.contains("unhealthy")),
        "{r:#?}"
    );
}
