//! Selector semantics, allocation stability, routing derivation and order,
//! changes and export round trips.

use lbfwd_config::settings::Underlay;
use lbfwd_config::*;
use std::collections::BTreeMap;
use std::net::IpAddr;

const SETTINGS: &str = r#"
[dataplane]
backend = "memory"
workers = [0]

[underlay]
encap = "vxlan"
source_ipv4 = "10.0.2.2"
source_ipv6 = "fd00:2::2"
next_hop_mac = "02:00:00:00:00:01"
"#;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn req(key: &str, operator: SelectorOperator, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[test]
fn selector_semantics_table() {
    use SelectorOperator::*;
    let web = labels(&[("app", "web"), ("tier", "front")]);
    let db = labels(&[("app", "db")]);
    let none = labels(&[]);
    let sel = |ml: &[(&str, &str)], me: Vec<LabelSelectorRequirement>| LabelSelector {
        match_labels: labels(ml),
        match_expressions: me,
    };
    // (description, selector, labels, expected)
    let cases: Vec<(&str, LabelSelector, &BTreeMap<String, String>, bool)> = vec![
        (
            "empty selector matches everything",
            sel(&[], vec![]),
            &web,
            true,
        ),
        (
            "empty selector matches no labels",
            sel(&[], vec![]),
            &none,
            true,
        ),
        (
            "matchLabels equal",
            sel(&[("app", "web")], vec![]),
            &web,
            true,
        ),
        (
            "matchLabels other value",
            sel(&[("app", "web")], vec![]),
            &db,
            false,
        ),
        (
            "matchLabels key missing",
            sel(&[("app", "web")], vec![]),
            &none,
            false,
        ),
        (
            "matchLabels all pairs needed",
            sel(&[("app", "web"), ("tier", "back")], vec![]),
            &web,
            false,
        ),
        (
            "In hit",
            sel(&[], vec![req("app", In, &["db", "web"])]),
            &web,
            true,
        ),
        (
            "In miss",
            sel(&[], vec![req("app", In, &["db"])]),
            &web,
            false,
        ),
        (
            "In key absent",
            sel(&[], vec![req("app", In, &["db"])]),
            &none,
            false,
        ),
        (
            "NotIn other value",
            sel(&[], vec![req("app", NotIn, &["db"])]),
            &web,
            true,
        ),
        (
            "NotIn listed value",
            sel(&[], vec![req("app", NotIn, &["db"])]),
            &db,
            false,
        ),
        (
            "NotIn key absent matches",
            sel(&[], vec![req("app", NotIn, &["db"])]),
            &none,
            true,
        ),
        (
            "Exists present",
            sel(&[], vec![req("tier", Exists, &[])]),
            &web,
            true,
        ),
        (
            "Exists absent",
            sel(&[], vec![req("tier", Exists, &[])]),
            &db,
            false,
        ),
        (
            "DoesNotExist absent",
            sel(&[], vec![req("tier", DoesNotExist, &[])]),
            &db,
            true,
        ),
        (
            "DoesNotExist present",
            sel(&[], vec![req("tier", DoesNotExist, &[])]),
            &web,
            false,
        ),
        (
            "labels and expressions combined, all hold",
            sel(
                &[("app", "web")],
                vec![
                    req("tier", In, &["front"]),
                    req("canary", DoesNotExist, &[]),
                ],
            ),
            &web,
            true,
        ),
        (
            "labels and expressions combined, one fails",
            sel(&[("app", "web")], vec![req("tier", NotIn, &["front"])]),
            &web,
            false,
        ),
    ];
    for (what, selector, labels, expected) in cases {
        assert_eq!(selector.matches(labels), expected, "{what}");
    }
}

#[test]
fn selector_structure_is_validated() {
    use SelectorOperator::*;
    let bad = LabelSelector {
        match_labels: BTreeMap::new(),
        match_expressions: vec![
            req("a", In, &[]),
            req("b", Exists, &["x"]),
            req("c", NotIn, &[]),
        ],
    };
    let problems = bad.problems();
    let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "match_expressions[0].values",
            "match_expressions[1].values",
            "match_expressions[2].values"
        ]
    );
}

/// A state with a /29 public pool, one network and `n` load balancers.
fn pool_state(lbs: &[&str]) -> String {
    let mut s = String::from(SETTINGS);
    s.push_str(
        r#"
[[pool]]
name = "small"
addresses = ["198.51.100.0/30", "2001:db8::10-2001:db8::11"]

[[network]]
name = "n"
vni = 1
"#,
    );
    for lb in lbs {
        s.push_str(&format!(
            "\n[[load_balancer]]\nname = \"{lb}\"\ntype = \"Public\"\nnetwork = \"n\"\nports = [ {{ port = 80 }} ]\n"
        ));
    }
    s
}

fn ips_of(r: &Resolution, lb: &str) -> Vec<IpAddr> {
    r.resolved
        .get(lb)
        .unwrap_or_else(|| panic!("no {lb}"))
        .ips
        .iter()
        .map(|i| i.addr)
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn allocation_is_lowest_free_and_names_the_pool() {
    let c = Config::from_toml_str(&pool_state(&["b", "a"]), "t.toml").unwrap();
    let r = c.resolve().unwrap();
    // Load balancers are served in name order.
    assert_eq!(ips_of(&r, "a"), [ip("198.51.100.0")]);
    assert_eq!(ips_of(&r, "b"), [ip("198.51.100.1")]);
    assert_eq!(
        r.resolved.get("a").unwrap().ips[0].pool.as_deref(),
        Some("small")
    );
    assert_eq!(r.allocations.len(), 2);
    assert_eq!(r.allocations[0].load_balancer, "a");
    assert_eq!(r.allocations[0].pool.as_deref(), Some("small"));
}

#[test]
fn allocation_is_stable_when_others_are_added_and_removed() {
    let c = Config::from_toml_str(&pool_state(&["m", "n"]), "t.toml").unwrap();
    let mut state = c.state.clone();
    let underlay = c.settings.underlay.clone();
    // Persist the first allocations, as the control plane does.
    let first = state.apply(&[], &underlay).unwrap();
    assert!(first.resolution.is_some());
    let m = ips_of(&state.resolve(&underlay).unwrap(), "m");
    let n = ips_of(&state.resolve(&underlay).unwrap(), "n");
    assert_eq!((m[0], n[0]), (ip("198.51.100.0"), ip("198.51.100.1")));

    // Add "a", which sorts before both: it gets a free address, m and n keep theirs.
    let add = Change::Upsert(Object::LoadBalancer(LoadBalancerSpec::new(
        "a",
        LoadBalancerType::Public,
        "n",
    )));
    let summary = state.apply(&[add], &underlay).unwrap();
    let r = state.resolve(&underlay).unwrap();
    assert_eq!(ips_of(&r, "m"), m);
    assert_eq!(ips_of(&r, "n"), n);
    assert_eq!(ips_of(&r, "a"), [ip("198.51.100.2")]);
    assert_eq!(
        summary.created,
        [("load_balancer".to_string(), "a".to_string())]
    );
    assert_eq!(summary.allocated.len(), 1);
    assert_eq!(summary.allocated[0].address, ip("198.51.100.2"));
    assert!(summary.released.is_empty());

    // Remove "m": its address is released, the others do not move.
    let summary = state
        .apply(
            &[Change::Delete {
                kind: Kind::LoadBalancer,
                name: "m".into(),
            }],
            &underlay,
        )
        .unwrap();
    assert_eq!(summary.released.len(), 1);
    assert_eq!(summary.released[0].address, m[0]);
    let r = state.resolve(&underlay).unwrap();
    assert_eq!(ips_of(&r, "n"), n);
    assert_eq!(ips_of(&r, "a"), [ip("198.51.100.2")]);
    assert!(state.allocations.iter().all(|a| a.load_balancer != "m"));

    // The freed address is reused by the next new load balancer.
    let add = Change::Upsert(Object::LoadBalancer(LoadBalancerSpec::new(
        "z",
        LoadBalancerType::Public,
        "n",
    )));
    state.apply(&[add], &underlay).unwrap();
    assert_eq!(ips_of(&state.resolve(&underlay).unwrap(), "z"), m);
}

#[test]
fn persisted_allocations_survive_export_and_reload() {
    let c = Config::from_toml_str(&pool_state(&["m", "n"]), "t.toml").unwrap();
    let mut state = c.state.clone();
    state.apply(&[], &c.settings.underlay).unwrap();
    let text = state.to_toml();
    assert!(text.contains("[[allocation]]"), "{text}");
    let mut reloaded = DesiredState::from_toml_str(&text, "state.toml").unwrap();
    assert_eq!(reloaded, state);
    // Without "m" in the file but with the allocations kept, n stays put.
    reloaded.remove(Kind::LoadBalancer, "m");
    let r = reloaded.resolve(&c.settings.underlay).unwrap();
    assert_eq!(ips_of(&r, "n"), [ip("198.51.100.1")]);
    assert!(r
        .warnings
        .iter()
        .any(|w| matches!(&w.problem, Problem::AllocationDropped { lb, .. } if lb == "m")));
}

#[test]
fn exhausted_pool_is_an_error_naming_the_pool() {
    let text = pool_state(&["a", "b", "c", "d", "e"]);
    let errors = Config::from_toml_str(&text, "t.toml").unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    let e = &errors.0[0];
    assert!(
        matches!(&e.problem, Problem::PoolExhausted { pools, family: IpFamily::IPv4, size: 4 } if pools == "\"small\""),
        "{e}"
    );
    // The fifth load balancer in name order is the one that misses out.
    assert_eq!(e.path, "load_balancer[4]");
    assert!(
        e.to_string()
            .contains("pool \"small\" has no free IPv4 address"),
        "{e}"
    );
}

#[test]
fn explicit_ips_are_claimed_from_the_pool() {
    let mut text = pool_state(&["a"]);
    text.push_str(
        "\n[[load_balancer]]\nname = \"claimer\"\ntype = \"Public\"\nnetwork = \"n\"\nip_families = [\"IPv4\", \"IPv6\"]\nips = [\"198.51.100.0\"]\n",
    );
    let c = Config::from_toml_str(&text, "t.toml").unwrap();
    let r = c.resolve().unwrap();
    // The claim wins even though "a" sorts first; "a" gets the next address.
    assert_eq!(
        ips_of(&r, "claimer"),
        [ip("198.51.100.0"), ip("2001:db8::10")]
    );
    assert_eq!(ips_of(&r, "a"), [ip("198.51.100.1")]);
    let claimed = &r.resolved.get("claimer").unwrap().ips[0];
    assert_eq!(claimed.pool.as_deref(), Some("small"));
    // Explicit addresses are in the spec, not in the allocations.
    assert!(!r.allocations.iter().any(|a| a.address == "198.51.100.0"));
}

#[test]
fn internal_load_balancers_use_given_ips_or_the_network_pool() {
    let text = format!(
        "{SETTINGS}{}",
        r#"
[[pool]]
name = "public"
addresses = ["198.51.100.0/30"]

[[pool]]
name = "n-internal"
network = "n"
addresses = ["10.9.0.0/30"]

[[network]]
name = "n"
vni = 1

[[network]]
name = "other"
vni = 2

[[load_balancer]]
name = "given"
type = "Internal"
network = "n"
ips = ["10.1.2.3"]

[[load_balancer]]
name = "pooled"
type = "Internal"
network = "n"
"#
    );
    let c = Config::from_toml_str(&text, "t.toml").unwrap();
    let r = c.resolve().unwrap();
    assert_eq!(
        r.resolved.get("given").unwrap().ips,
        [AssignedIp {
            addr: ip("10.1.2.3"),
            pool: None
        }]
    );
    assert_eq!(
        r.resolved.get("pooled").unwrap().ips,
        [AssignedIp {
            addr: ip("10.9.0.0"),
            pool: Some("n-internal".into())
        }]
    );
    // An Internal load balancer in a network without pool needs ips.
    let text = text.replace("network = \"n\"\n\"#", "")
        + "\n[[load_balancer]]\nname = \"lost\"\ntype = \"Internal\"\nnetwork = \"other\"\n";
    let errors = Config::from_toml_str(&text, "t.toml").unwrap_err();
    assert!(
        matches!(
            errors.0[0].problem,
            Problem::NoPool {
                family: IpFamily::IPv4,
                ..
            }
        ),
        "{errors}"
    );
}

const ROUTED: &str = r#"
[[pool]]
name = "public"
addresses = ["198.51.100.0/28"]

[[network]]
name = "n"
vni = 7

[[network]]
name = "elsewhere"
vni = 8

[[network_interface]]
name = "zeta"
uid = "u-3"
network = "n"
labels = { app = "web" }
underlay = "10.0.3.3"
mac = "02:00:00:00:00:03"

[[network_interface]]
name = "alpha"
uid = "u-2"
network = "n"
labels = { app = "web" }
underlay = "10.0.3.1"
mac = "02:00:00:00:00:01"

[[network_interface]]
name = "mid"
uid = "u-1"
network = "n"
labels = { app = "web" }
underlay = "fd00:3::2"
mac = "02:00:00:00:00:02"

[[network_interface]]
name = "pending"
network = "n"
labels = { app = "web" }
underlay = "10.0.3.9"
mac = "02:00:00:00:00:09"
state = "Pending"

[[network_interface]]
name = "other-net"
network = "elsewhere"
labels = { app = "web" }
underlay = "10.0.3.8"
mac = "02:00:00:00:00:08"

[[load_balancer]]
name = "web"
type = "Public"
network = "n"
network_interface_selector = { match_labels = { app = "web" } }
weights = { mid = 0 }

[[load_balancer]]
name = "fed"
type = "Public"
network = "n"

[[load_balancer_routing]]
name = "fed"
network = "n"
destinations = [
  { name = "zeta", uid = "u-3" },
  { name = "renamed-alpha", uid = "u-2" },
  { name = "outside", underlay = "10.0.5.5", mac = "02:00:00:00:05:05", weight = 7 },
]
"#;

#[test]
fn destinations_are_selected_available_in_network_and_sorted() {
    let c = Config::from_toml_str(&format!("{SETTINGS}{ROUTED}"), "t.toml").unwrap();
    let r = c.resolve().unwrap();
    let web = r.resolved.get("web").unwrap();
    let names: Vec<&str> = web.destinations.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
    assert_eq!(web.destinations[1].weight, 0, "weights: mid = 0 drains it");
    assert_eq!(web.destinations[0].weight, 100);
    assert_eq!(web.vni, 7);
    assert_eq!(web.destinations[1].underlay, ip("fd00:3::2"));
    assert_eq!(web.destinations[0].mac, Some(MacAddr([2, 0, 0, 0, 0, 1])));
    // Every port of every protocol when `ports` is empty.
    assert_eq!(web.ports.len(), 3);
    assert_eq!(web.maglev_table_size, 65537);
    assert_eq!(web.icmp_echo, IcmpEcho::Drop);
}

#[test]
fn destination_order_does_not_depend_on_input_order() {
    let a = Config::from_toml_str(&format!("{SETTINGS}{ROUTED}"), "t.toml").unwrap();
    let mut reversed = a.state.clone();
    reversed.network_interfaces.reverse();
    reversed.load_balancers.reverse();
    reversed.load_balancer_routings[0].destinations.reverse();
    let ra = a.resolve().unwrap();
    let rb = reversed.resolve(&a.settings.underlay).unwrap();
    assert_eq!(ra.resolved, rb.resolved);
}

#[test]
fn routing_destinations_inherit_from_known_interfaces() {
    let c = Config::from_toml_str(&format!("{SETTINGS}{ROUTED}"), "t.toml").unwrap();
    let r = c.resolve().unwrap();
    let fed = r.resolved.get("fed").unwrap();
    let got: Vec<(&str, &str, IpAddr, u32)> = fed
        .destinations
        .iter()
        .map(|d| (d.name.as_str(), d.uid.as_str(), d.underlay, d.weight))
        .collect();
    assert_eq!(
        got,
        [
            ("outside", "", ip("10.0.5.5"), 7),
            // Matched by uid, so the routing's name is kept but underlay and
            // MAC come from interface "alpha".
            ("renamed-alpha", "u-2", ip("10.0.3.1"), 100),
            ("zeta", "u-3", ip("10.0.3.3"), 100),
        ]
    );
    assert_eq!(fed.destinations[1].mac, Some(MacAddr([2, 0, 0, 0, 0, 1])));
}

#[test]
fn label_changes_reroute_and_report_it() {
    let c = Config::from_toml_str(&format!("{SETTINGS}{ROUTED}"), "t.toml").unwrap();
    let mut state = c.state.clone();
    let u = &c.settings.underlay;
    let s = state
        .apply(
            &[Change::RemoveLabels {
                interface: "zeta".into(),
                keys: vec!["app".into()],
            }],
            u,
        )
        .unwrap();
    assert_eq!(s.rerouted, ["web"]);
    let web = state
        .resolve(u)
        .unwrap()
        .resolved
        .get("web")
        .unwrap()
        .clone();
    assert_eq!(web.destinations.len(), 2);
    let s = state
        .apply(
            &[Change::SetLabels {
                interface: "zeta".into(),
                labels: labels(&[("app", "web")]),
            }],
            u,
        )
        .unwrap();
    assert_eq!(s.rerouted, ["web"]);
    // Weights: drain a routing destination.
    let s = state
        .apply(
            &[Change::SetWeight {
                load_balancer: "fed".into(),
                destination: "u-3".into(),
                weight: 0,
            }],
            u,
        )
        .unwrap();
    assert_eq!(s.rerouted, ["fed"]);
    let fed = state
        .resolve(u)
        .unwrap()
        .resolved
        .get("fed")
        .unwrap()
        .clone();
    assert_eq!(fed.destinations[2].weight, 0);
}

#[test]
fn a_failing_change_changes_nothing() {
    let c = Config::from_toml_str(&format!("{SETTINGS}{ROUTED}"), "t.toml").unwrap();
    let mut state = c.state.clone();
    let before = state.clone();
    let bad = Change::ApplyToml {
        text: "[[load_balancer]]\nname = \"x\"\ntype = \"Public\"\nnetwork = \"nope\"\n".into(),
        origin: "<request>".into(),
    };
    let good = Change::SetLabels {
        interface: "zeta".into(),
        labels: labels(&[("x", "y")]),
    };
    let errors = state.apply(&[good, bad], &c.settings.underlay).unwrap_err();
    assert_eq!(state, before);
    assert_eq!(
        errors.to_string(),
        "<request>:4:1: load_balancer[0].network: unknown network \"nope\""
    );
    let errors = state
        .apply(
            &[Change::Delete {
                kind: Kind::LoadBalancer,
                name: "ghost".into(),
            }],
            &c.settings.underlay,
        )
        .unwrap_err();
    assert!(matches!(
        errors.0[0].problem,
        Problem::UnknownLoadBalancer(_)
    ));
    // Deleting a network still in use is refused with every reference named.
    let errors = state
        .apply(
            &[Change::Delete {
                kind: Kind::Network,
                name: "n".into(),
            }],
            &c.settings.underlay,
        )
        .unwrap_err();
    assert!(errors.len() >= 5, "{errors}");
    assert_eq!(state, before);
}

#[test]
fn whole_config_export_round_trips() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lbfwd.toml"))
        .unwrap();
    let c = Config::from_toml_str(&text, "lbfwd.toml").unwrap();
    let mut c2 = c.clone();
    c2.state.apply(&[], &c.settings.underlay).unwrap();
    let exported = c2.to_toml();
    let back = Config::from_toml_str(&exported, "export.toml").unwrap();
    assert_eq!(back.settings, c2.settings);
    assert_eq!(back.settings_input, c2.settings_input);
    assert_eq!(back.state, c2.state);
    assert!(!back.state.allocations.is_empty());
    assert_eq!(
        back.resolve().unwrap().resolved,
        c.resolve().unwrap().resolved
    );
    // And once more: export is a fixed point.
    assert_eq!(back.to_toml(), exported);
}

#[test]
fn mac_addresses_parse_and_print() {
    let m: MacAddr = "02:00:00:00:03:1f".parse().unwrap();
    assert_eq!(m, MacAddr([2, 0, 0, 0, 3, 0x1f]));
    assert_eq!(m.to_string(), "02:00:00:00:03:1f");
    assert_eq!("02-00-00-00-03-1F".parse::<MacAddr>().unwrap(), m);
    for bad in [
        "02:00:00:00:03",
        "02:00:00:00:03:1f:00",
        "02:00:00:00:03:1",
        "zz:00:00:00:00:00",
        "",
    ] {
        assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
    }
}

#[test]
fn underlay_for_tests_is_usable() {
    let u = Underlay::for_tests(Encap::IpIp);
    assert!(u.source_ipv4.is_some() && u.source_ipv6.is_some());
}

#[test]
fn a_weight_for_an_interface_the_selector_does_not_pick_is_kept_with_a_warning() {
    let c = Config::from_toml_str(&format!("{SETTINGS}{ROUTED}"), "t.toml").unwrap();
    let mut state = c.state.clone();
    let u = &c.settings.underlay;
    // "pending" is in the load balancer's network but not Available.
    let s = state
        .apply(
            &[Change::SetWeight {
                load_balancer: "web".into(),
                destination: "pending".into(),
                weight: 0,
            }],
            u,
        )
        .unwrap();
    let warning = "weight for \"pending\", which is not a destination of load balancer \"web\" now";
    assert!(
        s.warnings.iter().any(|w| w.contains(warning)),
        "{:?}",
        s.warnings
    );
    // Once it is Available, it is a destination with that weight, and the
    // warning is gone.
    let mut nic = state
        .network_interfaces
        .iter()
        .find(|n| n.name == "pending")
        .unwrap()
        .clone();
    nic.state = NicState::Available;
    state.network_interfaces.retain(|n| n.name != "pending");
    state.network_interfaces.push(nic);
    let r = state.resolve(u).unwrap();
    let web = r.resolved.get("web").unwrap();
    let pending = web.destinations.iter().find(|d| d.name == "pending");
    assert_eq!(pending.map(|d| d.weight), Some(0));
    assert!(
        !r.warnings.iter().any(|w| w.to_string().contains(warning)),
        "{:?}",
        r.warnings
    );
}

/// Selection by an index of the interfaces (by network and label) picks
/// exactly what matching every interface against every selector picks, in
/// the interfaces' order: selectors with labels, with expressions only,
/// with both, and empty, over interfaces of several networks with
/// overlapping labels.
#[test]
fn selectors_pick_what_a_scan_of_every_interface_picks() {
    let apps = ["web", "db", "cache"];
    let zones = ["a", "b"];
    let mut text = String::from(
        r#"[dataplane]
backend = "memory"
workers = [0]

[underlay]
encap = "ipip"
source_ipv4 = "10.0.2.2"
next_hop_mac = "02:00:00:00:00:01"

[[network]]
name = "n0"
vni = 100

[[network]]
name = "n1"
vni = 101
"#,
    );
    for i in 0..60usize {
        let zone = if i % 7 == 3 {
            String::new()
        } else {
            format!(", zone = \"{}\"", zones[i % 2])
        };
        text += &format!(
            "\n[[network_interface]]\nname = \"nic-{i:02}\"\nnetwork = \"n{}\"\nlabels = {{ app = \"{}\"{zone} }}\nunderlay = \"10.0.4.{}\"\n",
            (i / 3) % 2,
            apps[(i * 5) % 3],
            i + 1
        );
    }
    let selectors = [
        r#"{ match_labels = { app = "web" } }"#,
        r#"{ match_labels = { app = "db", zone = "b" } }"#,
        r#"{ match_labels = { zone = "a" }, match_expressions = [ { key = "app", operator = "NotIn", values = ["web"] } ] }"#,
        r#"{ match_expressions = [ { key = "zone", operator = "DoesNotExist" } ] }"#,
        r#"{ match_expressions = [ { key = "app", operator = "In", values = ["cache", "web"] } ] }"#,
        r#"{ match_labels = { app = "nothing" } }"#,
        "{}",
    ];
    for (j, sel) in selectors.iter().enumerate() {
        for n in 0..2 {
            text += &format!(
                "\n[[load_balancer]]\nname = \"lb-{j}-{n}\"\ntype = \"Internal\"\nnetwork = \"n{n}\"\nips = [\"10.9.{j}.{n}\"]\nnetwork_interface_selector = {sel}\nports = [ {{ protocol = \"TCP\", port = 80 }} ]\n"
            );
        }
    }
    let config = Config::from_toml_str(&text, "selectors.toml").expect("loads");
    let resolved = config.resolve().expect("resolves").resolved;
    let mut picked_any = 0;
    for lb in &config.state.load_balancers {
        let sel = lb.network_interface_selector.as_ref().expect("a selector");
        let scan: Vec<&str> = config
            .state
            .network_interfaces
            .iter()
            .filter(|i| i.network == lb.network && sel.matches(&i.labels))
            .map(|i| i.name.as_str())
            .collect();
        let got: Vec<&str> = resolved
            .load_balancers
            .iter()
            .find(|r| r.name == lb.name)
            .expect("resolved")
            .destinations
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(got, scan, "load balancer {}", lb.name);
        picked_any += usize::from(!got.is_empty());
    }
    assert!(picked_any >= 10, "the selectors pick something");
}

/// The saved state (`to_toml`, the hand-written TOML writer) loads back
/// equal: many objects of every kind, nested tables (labels, selectors,
/// weights, routing destinations, health checks, pool `bgp` keys), optional
/// fields set and unset, label values that need escaping (quotes,
/// backslashes, control characters, non-ASCII), empty selectors, and
/// allocations; and it loads back into the same state as the `toml`
/// crate's rendering of it.
#[test]
fn a_large_state_saves_and_loads_back_equal() {
    let mut text = String::from(
        r#"[dataplane]
backend = "memory"
workers = [0]

[underlay]
encap = "ipip"
source_ipv4 = "10.0.2.2"
next_hop_mac = "02:00:00:00:00:01"

[[pool]]
name = "public"
addresses = ["203.0.113.0/24", "2001:db8:5::/120"]
bgp = { communities = ["65001:200"], local_pref = 300 }

[[pool]]
name = "inside \"n0\""
network = "n0"
addresses = ["10.200.0.0/24"]
bgp = { announce = false }
"#,
    );
    for n in 0..40 {
        text += &format!("\n[[network]]\nname = \"n{n}\"\nvni = {}\n", 100 + n);
    }
    for i in 0..200 {
        text += &format!(
            "\n[[network_interface]]\nname = \"nic-{i}\"\nnetwork = \"n{}\"\nlabels = {{ app = \"a{}\", \"example.com/tier\" = \"t{}\" }}\nunderlay = \"10.0.{}.{}\"\n",
            i % 40,
            i % 50,
            i % 3,
            4 + i / 250,
            i % 250 + 1
        );
    }
    for j in 0..50 {
        let network = j % 40;
        text += &format!(
            "\n[[load_balancer]]\nname = \"lb-{j}\"\ntype = \"Public\"\nnetwork = \"n{network}\"\nnetwork_interface_selector = {{ match_labels = {{ app = \"a{j}\" }}, match_expressions = [ {{ key = \"example.com/tier\", operator = \"In\", values = [\"t0\", \"t1\"] }} ] }}\nweights = {{ nic-{j} = 7 }}\nports = [ {{ protocol = \"TCP\", port = 80 }}, {{ protocol = \"UDP\", port = 1000, end_port = 2000 }} ]\n"
        );
        text += &format!(
            "\n[[load_balancer]]\nname = \"routed-{j}\"\ntype = \"Public\"\nip_families = [\"IPv4\", \"IPv6\"]\nnetwork = \"n{network}\"\nports = [ {{ protocol = \"TCP\", port = 443 }} ]\n\n[[load_balancer_routing]]\nname = \"routed-{j}\"\ndestinations = [ {{ name = \"nic-{j}\", weight = 3 }}, {{ name = \"nic-{}\" }} ]\n",
            j + 40 * (1 + j % 3)
        );
    }
    // Odd strings, optional fields and nested values of every sort.
    let odd = [
        "a \"quoted\" value",
        "back\\slash \\\" and \\u0041 literally '''triple''' \"\"\"",
        "tab\t newline\n cr\r nul\u{0} del\u{7f} esc\u{1b} bs\u{8} ff\u{c}",
        "unicode é 日本 🦀 \u{200b} \u{feff}",
        "",
    ];
    for i in 0..odd.len() {
        text += &format!(
            "\n[[network_interface]]\nname = \"odd-{i}\"\nuid = \"0000000{i}-1111-2222-3333-444444444444\"\nnetwork = \"n0\"\nlabels = {{ odd = \"yes\" }}\nips = [\"192.168.0.{i}\", \"fd00::{i}\"]\nunderlay = \"10.9.0.{}\"\nmac = \"02:00:00:00:09:0{i}\"\nstate = \"{}\"\n",
            i + 1,
            ["Available", "Pending", "Error"][i % 3]
        );
    }
    text += r#"
[[load_balancer]]
name = "checked"
type = "Public"
network = "n0"
network_interface_selector = {}
icmp_echo = "reply"
maglev_table_size = 251
ips = ["203.0.113.250"]
health_check = { kind = "http", port = 8080, interval_ms = 500, timeout_ms = 300, path = "/health?a=\"b\"", expect_status = "200-299", host = "web.example", all_unhealthy = "drop" }
weights = { "odd-1" = 0, "00000002-1111-2222-3333-444444444444" = 5 }

[[load_balancer]]
name = "internal"
type = "Internal"
network = "n0"
network_interface_selector = { match_expressions = [ { key = "odd", operator = "Exists" } ] }
health_check = { kind = "tcp", port = 22 }
"#;
    let config = Config::from_toml_str(&text, "large.toml").expect("loads");
    let mut state = config.state.clone();
    state.allocations = config.resolve().expect("resolves").allocations;
    assert!(state.allocations.len() > 100, "allocations to save");
    // The state file is read back without validation (that comes after):
    // strings no valid state holds must survive as well.
    let mut odd_nics = state
        .network_interfaces
        .iter_mut()
        .filter(|n| n.name.starts_with("odd-"));
    for value in odd {
        let nic = odd_nics.next().expect("an odd interface");
        nic.labels.insert(value.to_string(), value.to_string());
        nic.labels
            .insert(format!("key with \"{value}\""), String::new());
        nic.ips.push(value.to_string());
    }
    let checked = state
        .load_balancers
        .iter_mut()
        .find(|l| l.name == "checked")
        .expect("checked");
    checked.health_check.as_mut().expect("a check").path = Some(odd.concat());
    checked.weights.insert(odd.concat(), 1);
    let saved = state.to_toml();
    let back = DesiredState::from_toml_str(&saved, "state.toml").expect("loads back");
    assert!(back == state, "the saved state loads back as another one");
    // The `toml` crate's rendering of the same state loads back the same.
    let by_crate = toml::to_string(&state).expect("the toml crate renders it");
    let back_by_crate = DesiredState::from_toml_str(&by_crate, "state.toml").expect("loads");
    assert!(back_by_crate == back, "the two writers disagree");
    // Saved twice, the text is the same (nothing depends on history).
    assert_eq!(back.to_toml(), saved);
}

/// `apply_from` (the daemon's way: the resolution it holds as the state
/// before, one resolution per change) gives exactly what `apply` (which
/// resolves before and after) gives: the same summary, the same state,
/// the same errors; and its resolution is a full resolution of the new
/// state.
#[test]
fn applying_from_the_held_resolution_equals_a_full_apply() {
    let c = Config::from_toml_str(&format!("{SETTINGS}{ROUTED}"), "t.toml").unwrap();
    let u = &c.settings.underlay;
    let mut full = c.state.clone();
    full.apply(&[], u).unwrap();
    let mut held = full.clone();
    let mut resolved = held.resolve(u).unwrap().resolved;
    let lb = |name: &str| {
        let mut l = LoadBalancerSpec::new(name, LoadBalancerType::Public, "n");
        l.network_interface_selector = Some(LabelSelector {
            match_labels: labels(&[("app", "web")]),
            ..LabelSelector::default()
        });
        Change::Upsert(Object::LoadBalancer(l))
    };
    let steps: Vec<Vec<Change>> = vec![
        vec![Change::SetWeight {
            load_balancer: "web".into(),
            destination: "alpha".into(),
            weight: 300,
        }],
        vec![lb("new-1"), lb("new-2")],
        vec![Change::RemoveLabels {
            interface: "zeta".into(),
            keys: vec!["app".into()],
        }],
        // Refused: nothing may change on either side.
        vec![
            lb("new-3"),
            Change::Delete {
                kind: Kind::Network,
                name: "n".into(),
            },
        ],
        vec![Change::Delete {
            kind: Kind::LoadBalancer,
            name: "new-1".into(),
        }],
        vec![Change::SetWeight {
            load_balancer: "fed".into(),
            destination: "u-3".into(),
            weight: 0,
        }],
        vec![],
    ];
    let mut refused = 0;
    for (i, changes) in steps.iter().enumerate() {
        let a = full.apply(changes, u);
        let b = held.apply_from(changes, u, Some(&resolved));
        assert_eq!(a, b, "step {i}");
        assert_eq!(full, held, "step {i}");
        match b {
            Ok(s) => {
                let r = s.resolution.expect("a resolution").resolved;
                assert_eq!(r, held.resolve(u).unwrap().resolved, "step {i}");
                resolved = r;
            }
            Err(_) => refused += 1,
        }
    }
    assert_eq!(refused, 1, "one step is refused");
    assert!(full.load_balancer("new-2").is_some());
}
