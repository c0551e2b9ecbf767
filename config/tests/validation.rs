//! Every rejection, with its file, line, column and field path.

use lbfwd_config::*;

const SETTINGS: &str = r#"[dataplane]
backend = "memory"
workers = [0]

[underlay]
encap = "vxlan"
source_ipv4 = "10.0.2.2"
source_ipv6 = "fd00:2::2"
next_hop_mac = "02:00:00:00:00:01"
"#;
/// Lines in SETTINGS; the state below starts on line SETTINGS_LINES + 1.
const SETTINGS_LINES: usize = 9;

/// A valid state the cases below break one piece at a time.
const STATE: &str = r#"[[pool]]
name = "public"
addresses = ["198.51.100.0/28"]

[[network]]
name = "n"
vni = 7

[[network_interface]]
name = "if-1"
network = "n"
labels = { app = "web" }
underlay = "10.0.3.1"
mac = "02:00:00:00:00:01"

[[load_balancer]]
name = "web"
type = "Public"
network = "n"
network_interface_selector = { match_labels = { app = "web" } }
ports = [ { port = 80 } ]
"#;

fn errors_of(text: &str) -> Vec<String> {
    match Config::from_toml_str(text, "lb.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

/// `STATE` with `from` replaced by `to` (which must occur), plus `extra`.
fn case(from: &str, to: &str, extra: &str) -> Vec<String> {
    assert!(STATE.contains(from), "{from}");
    errors_of(&format!("{SETTINGS}{}{extra}", STATE.replacen(from, to, 1)))
}

/// Line `n` of the state part, as a line of the whole file.
fn l(n: usize) -> usize {
    SETTINGS_LINES + n
}

#[test]
fn the_base_case_is_valid() {
    assert_eq!(case("", "", ""), Vec::<String>::new());
}

#[test]
fn every_rejection_is_located() {
    let long_label = format!("labels = {{ app = \"{}\" }}", "w".repeat(64));
    // (description, from, to, extra, expected errors)
    let cases: Vec<(&str, &str, &str, &str, Vec<String>)> = vec![
        (
            "unknown field",
            "vni = 7",
            "vni = 7\nvnid = 8",
            "",
            vec![format!("lb.toml:{}:1: network[0].vnid: unknown field `vnid`, expected `name` or `vni`", l(8))],
        ),
        (
            "unknown field in an inline table",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 80, prot = \"TCP\" } ]",
            "",
            vec![format!(
                "lb.toml:{}:24: load_balancer[0].ports[0].prot: unknown field `prot`, expected one of `protocol`, `port`, `end_port`",
                l(21)
            )],
        ),
        (
            "unknown top-level key",
            "",
            "",
            "\n[[load_balancers]]\nname = \"x\"\n",
            vec![format!("lb.toml:{}:3: load_balancers: unknown key `load_balancers`, expected one of dataplane, underlay, control, flow, bgp, announce, metrics, log, l2, sync, pool, network, network_interface, load_balancer, load_balancer_routing, allocation", l(23))],
        ),
        (
            "duplicate names",
            "",
            "",
            "\n[[network]]\nname = \"n\"\nvni = 8\n",
            vec![format!(
                "lb.toml:{}:1: network[1].name: duplicate network name \"n\" (first defined at lb.toml:{}:1)",
                l(24),
                l(5)
            )],
        ),
        (
            "VNI outside 24 bits",
            "vni = 7",
            "vni = 16777216",
            "",
            vec![format!("lb.toml:{}:1: network[0].vni: VNI 16777216 is outside 24 bits (0-16777215)", l(7))],
        ),
        (
            "unknown network reference",
            "network = \"n\"\nnetwork_interface_selector",
            "network = \"m\"\nnetwork_interface_selector",
            "",
            vec![format!("lb.toml:{}:1: load_balancer[0].network: unknown network \"m\"", l(19))],
        ),
        (
            "ips on the wrong family",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 80 } ]\nip_families = [\"IPv4\"]\nips = [\"2001:db8::1\"]",
            "",
            vec![format!(
                "lb.toml:{}:8: load_balancer[0].ips[0]: 2001:db8::1 is IPv6 but ip_families is [IPv4]",
                l(23)
            )],
        ),
        (
            "overlapping port ranges",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 80 },\n  { protocol = \"TCP\", port = 79, end_port = 81 } ]",
            "",
            vec![format!("lb.toml:{}:3: load_balancer[0].ports[1]: TCP/79-81 overlaps TCP/80 (ports[0])", l(22))],
        ),
        (
            "same range, other protocol, is fine",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 80 }, { protocol = \"udp\", port = 80 } ]",
            "",
            vec![],
        ),
        (
            "port 0",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 0 } ]",
            "",
            vec![format!("lb.toml:{}:13: load_balancer[0].ports[0].port: 0 is not a port (1-65535)", l(21))],
        ),
        (
            "port above 65535",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 80, end_port = 65536 } ]",
            "",
            vec![format!(
                "lb.toml:{}:24: load_balancer[0].ports[0].end_port: 65536 is not a port (1-65535)",
                l(21)
            )],
        ),
        (
            "range ending before it starts",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 80, end_port = 79 } ]",
            "",
            vec![format!("lb.toml:{}:24: load_balancer[0].ports[0].end_port: end_port 79 is below port 80", l(21))],
        ),
        (
            "interface without underlay",
            "underlay = \"10.0.3.1\"\n",
            "",
            "",
            vec![format!(
                "lb.toml:{}:1: network_interface[0].underlay: network interface \"if-1\" has no underlay address (set `underlay`, or annotation lbfwd.ironcore.dev/underlay)",
                l(9)
            )],
        ),
        (
            "mac missing where VXLAN needs it",
            "mac = \"02:00:00:00:00:01\"\n",
            "",
            "",
            vec![format!(
                "lb.toml:{}:1: network_interface[0].mac: destination \"if-1\" has no mac, which VXLAN encapsulation needs (set `mac` on the interface or destination, or annotation lbfwd.ironcore.dev/mac)",
                l(9)
            )],
        ),
        (
            "two load balancers claiming one address",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 80 } ]\nips = [\"198.51.100.5\"]",
            "\n[[load_balancer]]\nname = \"copy\"\ntype = \"Public\"\nnetwork = \"n\"\nips = [\"198.51.100.5\"]\n",
            vec![format!(
                "lb.toml:{}:8: load_balancer[1].ips[0]: 198.51.100.5 is already claimed by load balancer \"web\"",
                l(28)
            )],
        ),
        (
            "malformed pool entry",
            "[\"198.51.100.0/28\"]",
            "[\"198.51.100.0/28\", \"198.51.100.77/24\", \"10.0.0.9-10.0.0.1\"]",
            "",
            vec![
                format!(
                    "lb.toml:{}:33: pool[0].addresses[1]: \"198.51.100.77/24\" is not a CIDR or an address range: host bits are set (did you mean 198.51.100.0/24?)",
                    l(3)
                ),
                format!(
                    "lb.toml:{}:53: pool[0].addresses[2]: \"10.0.0.9-10.0.0.1\" is not a CIDR or an address range: the last address is below the first",
                    l(3)
                ),
            ],
        ),
        (
            "overlapping pools",
            "",
            "",
            "\n[[pool]]\nname = \"more\"\naddresses = [\"198.51.100.8-198.51.100.20\"]\n",
            vec![format!(
                "lb.toml:{}:14: pool[1].addresses[0]: 198.51.100.8-198.51.100.20 overlaps 198.51.100.0/28 of pool \"public\"",
                l(25)
            )],
        ),
        (
            "no public pool of a needed family",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 80 } ]\nip_families = [\"IPv4\", \"IPv6\"]",
            "",
            vec![format!(
                "lb.toml:{}:1: load_balancer[0].ip_families: no public (without `network`) pool has IPv6 addresses",
                l(22)
            )],
        ),
        (
            "missing underlay source of a needed family",
            "underlay = \"10.0.3.1\"",
            "underlay = \"10.0.3.1\"",
            "",
            vec![],
        ),
        (
            "bad MAC syntax",
            "mac = \"02:00:00:00:00:01\"",
            "mac = \"02:00:00:00:00\"",
            "",
            vec![format!(
                "lb.toml:{}:1: network_interface[0].mac: \"02:00:00:00:00\" is not a MAC address (expected six hex pairs like 02:00:00:00:03:11)",
                l(14)
            )],
        ),
        (
            "multicast MAC",
            "mac = \"02:00:00:00:00:01\"",
            "mac = \"01:00:5e:00:00:01\"",
            "",
            vec![format!("lb.toml:{}:1: network_interface[0].mac: 01:00:5e:00:00:01 is not a unicast MAC address", l(14))],
        ),
        (
            "bad underlay address",
            "underlay = \"10.0.3.1\"",
            "underlay = \"10.0.3\"",
            "",
            vec![format!("lb.toml:{}:1: network_interface[0].underlay: \"10.0.3\" is not an IP address", l(13))],
        ),
        (
            "non-prime table size",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 80 } ]\nmaglev_table_size = 65535",
            "",
            vec![format!("lb.toml:{}:1: load_balancer[0].maglev_table_size: maglev_table_size 65535 is not a prime", l(22))],
        ),
        (
            "table size out of range",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 80 } ]\nmaglev_table_size = 16777259",
            "",
            vec![format!(
                "lb.toml:{}:1: load_balancer[0].maglev_table_size: maglev_table_size 16777259 is outside 7-16777213",
                l(22)
            )],
        ),
        (
            "In without values",
            "{ match_labels = { app = \"web\" } }",
            "{ match_expressions = [ { key = \"app\", operator = \"In\" } ] }",
            "",
            vec![format!(
                "lb.toml:{}:54: load_balancer[0].network_interface_selector.match_expressions[0].values: operator In needs at least one value",
                l(20)
            )],
        ),
        (
            "label key with a space",
            "labels = { app = \"web\" }",
            "labels = { app = \"web\", \"my app\" = \"x\" }",
            "",
            vec![format!(
                "lb.toml:{}:25: network_interface[0].labels.\"my app\": label key \"my app\" contains ' ' (only letters, digits, '-', '_' and '.')",
                l(12),
            )],
        ),
        (
            "label value too long",
            "labels = { app = \"web\" }",
            &long_label,
            "",
            vec![format!(
                "lb.toml:{}:12: network_interface[0].labels.app: label value \"{}\" is 64 characters long (at most 63)",
                l(12),
                "w".repeat(64),
            )],
        ),
        (
            "label key with an upper-case prefix",
            "{ match_labels = { app = \"web\" } }",
            "{ match_labels = { \"Example.com/app\" = \"web\" } }",
            "",
            vec![format!(
                "lb.toml:{}:49: load_balancer[0].network_interface_selector.match_labels.\"Example.com/app\": label key \"Example.com/app\" has prefix \"Example.com\", which contains 'E' (a DNS subdomain: lower case letters, digits, '-' and '.')",
                l(20),
            )],
        ),
        (
            "selector value beginning with a dot",
            "{ match_labels = { app = \"web\" } }",
            "{ match_expressions = [ { key = \"app\", operator = \"In\", values = [\"web\", \".web\"] } ] }",
            "",
            vec![format!(
                "lb.toml:{}:103: load_balancer[0].network_interface_selector.match_expressions[0].values[1]: label value \".web\" must begin and end with a letter or digit",
                l(20),
            )],
        ),
        (
            "unknown selector operator",
            "{ match_labels = { app = \"web\" } }",
            "{ match_expressions = [ { key = \"app\", operator = \"Has\" } ] }",
            "",
            vec![format!(
                "lb.toml:{}:80: load_balancer[0].network_interface_selector.match_expressions[0].operator: unknown variant `Has`, expected one of `In`, `NotIn`, `Exists`, `DoesNotExist`",
                l(20)
            )],
        ),
        (
            "weight for an unknown interface",
            "ports = [ { port = 80 } ]",
            "ports = [ { port = 80 } ]\nweights = { if-9 = 0 }",
            "",
            vec![format!(
                "lb.toml:{}:13: load_balancer[0].weights.if-9: weight for \"if-9\", which is no network interface of network \"n\"",
                l(22)
            )],
        ),
        (
            "routing destination that names nothing and has no underlay",
            "network_interface_selector = { match_labels = { app = \"web\" } }\n",
            "",
            "\n[[load_balancer_routing]]\nname = \"web\"\ndestinations = [ { name = \"ghost\" } ]\n",
            vec![format!(
                "lb.toml:{}:18: load_balancer_routing[0].destinations[0]: destination \"ghost\" names no known network interface (by uid or name) and has no underlay",
                l(24)
            )],
        ),
        (
            "routing in another network",
            "network_interface_selector = { match_labels = { app = \"web\" } }\n",
            "",
            "\n[[network]]\nname = \"o\"\nvni = 9\n[[load_balancer_routing]]\nname = \"web\"\nnetwork = \"o\"\ndestinations = [ { name = \"if-1\" } ]\n",
            vec![format!(
                "lb.toml:{}:1: load_balancer_routing[0].network: routing network \"o\" is not load balancer network \"n\"",
                l(27)
            )],
        ),
        (
            "negative VNI is a type error",
            "vni = 7",
            "vni = -1",
            "",
            vec![format!("lb.toml:{}:7: network[0].vni: invalid value: integer `-1`, expected u64", l(7))],
        ),
        (
            "type must be Public or Internal",
            "type = \"Public\"",
            "type = \"public\"",
            "",
            vec![format!(
                "lb.toml:{}:8: load_balancer[0].type: unknown variant `public`, expected `Public` or `Internal`",
                l(18)
            )],
        ),
    ];
    let mut failures = Vec::new();
    for (what, from, to, extra, expected) in cases {
        let got = case(from, to, extra);
        if got != expected {
            failures.push(format!(
                "{what}:\n  got      {got:#?}\n  expected {expected:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_errors_are_reported_at_once_in_file_order() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bad.toml")).unwrap();
    let errors = Config::from_toml_str(&text, "bad.toml").unwrap_err();
    let lines: Vec<usize> = errors
        .iter()
        .map(|e| e.location.as_ref().unwrap().line)
        .collect();
    assert!(errors.len() >= 12, "{errors}");
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    let text = errors.to_string();
    assert_eq!(text.lines().count(), errors.len());
    for needle in [
        "duplicate network name",
        "outside 24 bits",
        "unknown network \"net-b\"",
        "has no underlay address",
        "is not a MAC address",
        "is IPv6 but ip_families is [IPv4]",
        "overlaps TCP/80",
        "0 is not a port",
        "70000 is not a port",
        "not a prime",
        "already claimed by load balancer \"other\"",
        "source_ipv6 is not set",
        "overlaps 203.0.113.0/28",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn missing_source_address_of_a_needed_family() {
    let text = format!("{SETTINGS}{STATE}")
        .replace("source_ipv6 = \"fd00:2::2\"\n", "")
        .replace("10.0.3.1", "fd00:3::1");
    let errors = errors_of(&text);
    assert_eq!(
        errors,
        [format!(
            "lb.toml:{}:1: network_interface[0].underlay: underlay address fd00:3::1 is IPv6 but [underlay] source_ipv6 is not set",
            l(13) - 1
        )]
    );
}

#[test]
fn settings_errors_are_located() {
    let text = r#"[dataplane]
backend = "af_packet"
workers = [1, 1]
burst = 0

[underlay]
encap = "gue"
source_ipv4 = "fd00::1"
next_hop_mac = "ff:ff:ff:ff:ff:ff"
mtu = 100

[flow]
tcp_timeout_s = 0
"#;
    assert_eq!(
        errors_of(text),
        [
            "lb.toml:1:1: dataplane.interfaces: backend af_packet needs at least one interface",
            "lb.toml:3:15: dataplane.workers[1]: core 1 listed twice",
            "lb.toml:4:1: dataplane.burst: burst 0 is outside 1-1024",
            "lb.toml:8:1: underlay.source_ipv4: fd00::1 is IPv6; source_ipv4 needs an IPv4 address",
            "lb.toml:9:1: underlay.next_hop_mac: ff:ff:ff:ff:ff:ff is not a unicast MAC address",
            "lb.toml:10:1: underlay.mtu: mtu 100 is outside 1280-9216",
            "lb.toml:13:1: flow.tcp_timeout_s: tcp_timeout_s 0 is outside 1-86400",
        ]
    );
}

#[test]
fn syntax_and_type_errors_are_located() {
    assert_eq!(
        errors_of("[dataplane]\nbackend = \"memory\"\nworkers = [0\n"),
        ["lb.toml:4:1: TOML syntax: invalid array; expected `]`"]
    );
    assert_eq!(
        errors_of("[dataplane]\nbackend = \"memry\"\nworkers = [0]\n"),
        ["lb.toml:2:11: dataplane.backend: unknown variant `memry`, expected one of `af_packet`, `af_xdp`, `dpdk`, `pcap`, `memory`", "lb.toml:1:1: underlay: missing section [underlay]"]
    );
}

#[test]
fn settings_defaults() {
    let c = Config::from_toml_str(&format!("{SETTINGS}{STATE}"), "lb.toml").unwrap();
    let s = &c.settings;
    assert_eq!(s.dataplane.burst, 32);
    assert_eq!(s.dataplane.tx_drain, std::time::Duration::from_micros(100));
    assert_eq!(s.dataplane.idle, settings::Idle::Busy);
    assert_eq!(s.dataplane.egress_interface, None);
    assert_eq!(s.underlay.encap, Encap::Vxlan { port: 4789 });
    assert_eq!(s.underlay.mtu, 1500);
    assert_eq!(s.underlay.source_mac, None);
    assert_eq!(s.flow.capacity, 1 << 20);
    assert_eq!(
        s.control.socket,
        std::path::PathBuf::from("/run/lbfwd/lbfwd.sock")
    );
    let gue = Config::from_toml_str(
        &format!("{SETTINGS}{STATE}").replace("encap = \"vxlan\"", "encap = \"gue\""),
        "lb.toml",
    )
    .unwrap();
    assert_eq!(gue.settings.underlay.encap, Encap::Gue { port: 6080 });
}
