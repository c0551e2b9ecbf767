//! Ironcore YAML manifests: the documentation examples as published, the
//! mapping onto the model, and located errors.

use lbfwd_config::*;
use std::net::IpAddr;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name)
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")).join(name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ironcore_doc_loadbalancer_loads_as_published() {
    let c = Config::load_with_manifests(
        fixture("ironcore-base.toml"),
        &[fixture("ironcore-doc-loadbalancer.yaml")],
    )
    .unwrap();
    let lb = c.state.load_balancer("loadbalancer-sample").unwrap();
    assert_eq!(lb.lb_type, LoadBalancerType::Public);
    assert_eq!(lb.ip_families, [IpFamily::IPv4]);
    assert_eq!(lb.network, "network-sample");
    assert_eq!(
        lb.ports,
        [PortSpec {
            protocol: Protocol::Tcp,
            port: 80,
            end_port: None
        }]
    );
    let r = c.resolve().unwrap();
    let lb = r.resolved.get("loadbalancer-sample").unwrap();
    assert_eq!(lb.ips[0].addr, ip("203.0.113.0"));
    assert_eq!(
        lb.ports,
        [PortRange {
            protocol: Protocol::Tcp,
            first: 80,
            last: 80
        }]
    );
    let names: Vec<&str> = lb.destinations.iter().map(|d| d.name.as_str()).collect();
    // app=web only, sorted by name.
    assert_eq!(names, ["my-machine-interface-1", "my-machine-interface-2"]);
}

#[test]
fn ironcore_doc_routing_loads_as_published_and_inherits_underlay() {
    let c = Config::load_with_manifests(
        fixture("ironcore-routing-base.toml"),
        &[fixture("ironcore-doc-loadbalancerrouting.yaml")],
    )
    .unwrap();
    let r = c.resolve().unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let lb = r.resolved.get("loadbalancer-sample").unwrap();
    let got: Vec<(&str, &str, IpAddr)> = lb
        .destinations
        .iter()
        .map(|d| (d.name.as_str(), d.uid.as_str(), d.underlay))
        .collect();
    assert_eq!(
        got,
        [
            (
                "my-machine-interface-1",
                "2020dcf9-e030-427e-b0fc-4fec2016e73a",
                ip("10.0.3.11")
            ),
            (
                "my-machine-interface-2",
                "2020dcf9-e030-427e-b0fc-4fec2016e73d",
                ip("10.0.3.12")
            ),
        ]
    );
    assert!(lb.destinations.iter().all(|d| d.mac.is_some()));
}

#[test]
fn both_ironcore_doc_examples_together_derive_from_the_selector() {
    let c = Config::load_with_manifests(
        fixture("ironcore-base.toml"),
        &[
            fixture("ironcore-doc-loadbalancer.yaml"),
            fixture("ironcore-doc-loadbalancerrouting.yaml"),
        ],
    )
    .unwrap();
    let r = c.resolve().unwrap();
    assert_eq!(r.warnings.len(), 1);
    assert!(matches!(r.warnings[0].problem, Problem::RoutingIgnored(_)));
    assert!(
        r.warnings[0]
            .to_string()
            .starts_with("tests/fixtures/ironcore-doc-loadbalancerrouting.yaml:")
            || r.warnings[0]
                .to_string()
                .contains("ironcore-doc-loadbalancerrouting.yaml:5:")
    );
}

#[test]
fn iep3_examples_load_as_published() {
    let c = Config::load_with_manifests(
        fixture("iep3-base.toml"),
        &[fixture("iep3-loadbalancer.yaml")],
    )
    .unwrap();
    let spec = c.state.load_balancer("my-load-balancer").unwrap();
    // Lower-case protocols and `portEnd`.
    assert_eq!(
        spec.ports,
        [
            PortSpec {
                protocol: Protocol::Tcp,
                port: 80,
                end_port: None
            },
            PortSpec {
                protocol: Protocol::Udp,
                port: 1024,
                end_port: Some(2048)
            },
        ]
    );
    assert_eq!(spec.ip_families, [IpFamily::IPv4, IpFamily::IPv6]);
    let r = c.resolve().unwrap();
    let lb = r.resolved.get("my-load-balancer").unwrap();
    // status.ips are honoured as the addresses to keep.
    let ips: Vec<IpAddr> = lb.ips.iter().map(|i| i.addr).collect();
    assert_eq!(ips, [ip("45.86.152.88"), ip("2001::")]);
    // matchLabels key=db AND foo=bar: "not-selected" lacks foo.
    let names: Vec<&str> = lb.destinations.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["my-machine-interface-1", "my-machine-interface-2"]);

    // The routing example alone (a load balancer without selector).
    let mut state = c.state.clone();
    state.load_balancers[0].network_interface_selector = None;
    state
        .load_manifest_file(&fixture("iep3-loadbalancerrouting.yaml"))
        .unwrap();
    let r = state.resolve(&c.settings.underlay).unwrap();
    let lb = r.resolved.get("my-load-balancer").unwrap();
    let got: Vec<(&str, IpAddr)> = lb
        .destinations
        .iter()
        .map(|d| (d.name.as_str(), d.underlay))
        .collect();
    assert_eq!(
        got,
        [
            ("my-machine-interface-1", ip("fd00:3::1")),
            ("my-machine-interface-2", ip("fd00:3::2"))
        ]
    );
}

#[test]
fn shipped_examples_check_clean() {
    let c =
        Config::load_with_manifests(example("lbfwd.toml"), &[example("ironcore.yaml")]).unwrap();
    let r = c.resolve().unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let shop = r.resolved.get("shop").unwrap();
    assert_eq!(shop.vni, 300);
    assert_eq!(shop.ips.len(), 2);
    assert_eq!(shop.destinations.len(), 2);
    assert_eq!(shop.destinations[1].weight, 50);
    assert_eq!(
        shop.destinations[0].mac,
        Some("02:00:00:00:05:11".parse().unwrap())
    );
    let admin = r.resolved.get("shop-admin").unwrap();
    assert_eq!(admin.destinations.len(), 1);
    assert_eq!(admin.destinations[0].underlay, ip("10.0.5.11"));
}

fn manifest_errors(yaml: &str) -> Vec<String> {
    let mut state = DesiredState::default();
    match state.apply_manifests_str(yaml, "m.yaml") {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn manifest_errors_are_located() {
    let yaml = r#"apiVersion: networking.ironcore.dev/v1alpha1
kind: LoadBalancer
metadata:
  name: typo
spec:
  type: Public
  networkRef:
    name: n
  ports:
  - port: 80
    endport: 90
---
apiVersion: networking.ironcore.dev/v1beta9
kind: LoadBalancer
metadata:
  name: old
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: VirtualIP
metadata:
  name: vip
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: Network
metadata:
  name: novni
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: Network
metadata:
  name: badvni
  annotations:
    lbfwd.ironcore.dev/vni: lots
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: LoadBalancer
metadata:
  name: badtype
spec:
  type: Private
  networkRef:
    name: n
"#;
    let errors = manifest_errors(yaml);
    assert_eq!(errors.len(), 6, "{errors:#?}");
    assert!(
        errors[0].starts_with(
            "m.yaml:11:5: LoadBalancer/typo spec.ports[0].endport: unknown field `endport`"
        ),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("m.yaml:13:1: LoadBalancer/old apiVersion: unsupported apiVersion"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with("m.yaml:19:1: VirtualIP/vip kind: unsupported kind \"VirtualIP\""),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].starts_with("m.yaml:25:1: Network/novni metadata: network has no VNI"),
        "{}",
        errors[3]
    );
    assert!(
        errors[4].starts_with(
            "m.yaml:33:5: Network/badvni metadata.annotations.\"lbfwd.ironcore.dev/vni\":"
        ),
        "{}",
        errors[4]
    );
    assert!(
        errors[5].starts_with("m.yaml:40:3: LoadBalancer/badtype spec.type: unknown variant"),
        "{}",
        errors[5]
    );
    assert!(
        errors[5].contains("unknown variant `Private`"),
        "{}",
        errors[5]
    );
}

#[test]
fn yaml_syntax_errors_are_located_in_the_right_document() {
    let yaml = "apiVersion: networking.ironcore.dev/v1alpha1\nkind: Network\nmetadata:\n  name: a\n  annotations: {lbfwd.ironcore.dev/vni: \"1\"}\n---\nkind: [unclosed\n";
    let errors = manifest_errors(yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("m.yaml:8:"), "{}", errors[0]);
    assert!(errors[0].contains("YAML"), "{}", errors[0]);
}

#[test]
fn semantic_errors_in_manifests_point_into_the_yaml() {
    let toml = std::fs::read_to_string(fixture("ironcore-base.toml")).unwrap();
    let (_, settings, mut state) = Config::parse_unresolved(&toml, "base.toml").unwrap();
    let yaml = r#"apiVersion: networking.ironcore.dev/v1alpha1
kind: LoadBalancer
metadata:
  name: bad
spec:
  type: Public
  ipFamilies: [IPv4]
  networkRef:
    name: network-sample
  ports:
  - protocol: udp
    port: 53
  - protocol: UDP
    port: 50
    portEnd: 60
  - port: 70000
"#;
    state.apply_manifests_str(yaml, "bad.yaml").unwrap();
    let errors: Vec<String> = state
        .resolve(&settings.underlay)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        errors,
        [
            "bad.yaml:13:3: LoadBalancer/bad spec.ports[1]: UDP/50-60 overlaps UDP/53 (ports[0])",
            "bad.yaml:16:5: LoadBalancer/bad spec.ports[2].port: 70000 is not a port (1-65535)",
        ]
    );
}

#[test]
fn nic_without_underlay_annotation_is_rejected_at_the_object() {
    let toml = std::fs::read_to_string(fixture("ironcore-base.toml")).unwrap();
    let (_, settings, mut state) = Config::parse_unresolved(&toml, "base.toml").unwrap();
    let yaml = r#"# an interface as Ironcore writes it, without lbfwd's annotations
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata:
  name: plain
  labels:
    app: web
spec:
  networkRef:
    name: network-sample
"#;
    state.apply_manifests_str(yaml, "nic.yaml").unwrap();
    let errors = state.resolve(&settings.underlay).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(
        errors.to_string(),
        "nic.yaml:4:1: NetworkInterface/plain metadata.annotations.\"lbfwd.ironcore.dev/underlay\": network interface \"plain\" has no underlay address (set `underlay`, or annotation lbfwd.ironcore.dev/underlay)"
    );
}

#[test]
fn manifest_objects_upsert_by_name() {
    let mut state = DesiredState::default();
    let net = "apiVersion: networking.ironcore.dev/v1alpha1\nkind: Network\nmetadata:\n  name: a\n  annotations:\n    lbfwd.ironcore.dev/vni: \"5\"\n";
    let r = state.apply_manifests_str(net, "a.yaml").unwrap();
    assert_eq!(r, [(Kind::Network, "a".to_string(), Upserted::Created)]);
    let r = state.apply_manifests_str(net, "a.yaml").unwrap();
    assert_eq!(r, [(Kind::Network, "a".to_string(), Upserted::Unchanged)]);
    let r = state
        .apply_manifests_str(&net.replace("\"5\"", "\"6\""), "a.yaml")
        .unwrap();
    assert_eq!(r, [(Kind::Network, "a".to_string(), Upserted::Replaced)]);
    assert_eq!(state.networks.len(), 1);
    assert_eq!(state.networks[0].vni, 6);
}
