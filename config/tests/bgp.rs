//! `[bgp]`, `[[bgp.peer]]`, `[announce]` and the pools' `bgp` keys: what is
//! accepted, and every rejection with its file, line, column and field.

use lbfwd_config::Config;

const BASE: &str = r#"[dataplane]
backend = "memory"
workers = [0]

[underlay]
encap = "vxlan"
source_ipv4 = "10.77.2.2"
next_hop_mac = "02:00:00:00:00:01"
"#;

fn errors(extra: &str) -> Vec<String> {
    match Config::from_toml_str(&format!("{BASE}{extra}"), "lb.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn a_full_bgp_section_is_accepted_with_its_defaults() {
    let text = format!(
        "{BASE}{}",
        r#"
[announce]
initial = "off"

[bgp]
asn = 65001
router_id = "10.77.2.2"
communities = ["65001:100", "no-export"]
large_communities = ["65001:1:2"]
med = 10

[[bgp.peer]]
address = "10.77.2.1"
asn = 65000
bfd = true

[[bgp.peer]]
address = "10.77.9.1"
asn = 65001
multihop = 3
passive = true
password = "s3cret"
hold_time_s = 30

[[pool]]
name = "public"
addresses = ["203.0.113.0/28"]
bgp = { communities = ["65001:200"], local_pref = 300 }

[[pool]]
name = "dark"
addresses = ["203.0.113.100"]
bgp = { announce = false }
"#
    );
    let c = Config::from_toml_str(&text, "lb.toml").expect("valid");
    let b = c.settings.bgp.as_ref().expect("[bgp]");
    assert_eq!(b.asn, 65001);
    assert_eq!(b.hold_time.as_secs(), 9);
    assert_eq!(b.keepalive.as_secs(), 3);
    assert_eq!(b.shutdown_delay.as_secs(), 5);
    assert_eq!(b.peers.len(), 2);
    assert_eq!(b.peers[0].port, 179);
    assert_eq!(b.peers[1].hold_time.as_secs(), 30);
    assert!(!c.settings.announce.initially_on);
    assert!(!c.state.pools[1].bgp.announce);
    // Export loads back into the same settings.
    let again = Config::from_toml_str(&c.to_toml(), "export.toml").expect("export loads");
    assert_eq!(again.settings, c.settings);
    assert_eq!(again.state.pools, c.state.pools);
}

#[test]
fn every_rejection_is_located() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "unknown key",
            "[bgp]\nasn = 65001\nrouter_id = \"10.0.0.1\"\nholdtime = 3\n",
            "lb.toml:13:1: bgp.holdtime: unknown field `holdtime`",
        ),
        (
            "ASN 0",
            "[bgp]\nasn = 0\nrouter_id = \"10.0.0.1\"\n",
            "lb.toml:11:1: bgp.asn: AS number 0 is outside 1-4294967295",
        ),
        (
            "ASN out of range",
            "[bgp]\nasn = 4294967296\nrouter_id = \"10.0.0.1\"\n",
            "lb.toml:11:1: bgp.asn: AS number 4294967296 is outside 1-4294967295",
        ),
        (
            "router id not IPv4",
            "[bgp]\nasn = 1\nrouter_id = \"fd00::1\"\n",
            "lb.toml:12:1: bgp.router_id: router id \"fd00::1\" is not an IPv4 address",
        ),
        (
            "duplicate peer",
            "[bgp]\nasn = 1\nrouter_id = \"10.0.0.1\"\n[[bgp.peer]]\naddress = \"10.0.0.9\"\nasn = 2\n[[bgp.peer]]\naddress = \"10.0.0.9\"\nasn = 3\n",
            "lb.toml:17:1: bgp.peer[1].address: peer 10.0.0.9 is already bgp.peer[0]",
        ),
        (
            "peer of a family without source address",
            "[bgp]\nasn = 1\nrouter_id = \"10.0.0.1\"\n[[bgp.peer]]\naddress = \"fd77:2::1\"\nasn = 2\n",
            "lb.toml:14:1: bgp.peer[0].address: peer fd77:2::1 is IPv6, but the appliance has no IPv6 source address",
        ),
        (
            "peer ASN 0",
            "[bgp]\nasn = 1\nrouter_id = \"10.0.0.1\"\n[[bgp.peer]]\naddress = \"10.0.0.9\"\nasn = 0\n",
            "lb.toml:15:1: bgp.peer[0].asn: AS number 0 is outside 1-4294967295",
        ),
        (
            "keepalive not below hold time",
            "[bgp]\nasn = 1\nrouter_id = \"10.0.0.1\"\nhold_time_s = 3\nkeepalive_s = 3\n",
            "lb.toml:14:1: bgp.keepalive_s: keepalive_s 3 must be at least 1 and below hold_time_s 3",
        ),
        (
            "bad community",
            "[bgp]\nasn = 1\nrouter_id = \"10.0.0.1\"\ncommunities = [\"1:2\", \"70000:1\"]\n",
            "lb.toml:13:23: bgp.communities[1]: community \"70000:1\"",
        ),
        (
            "bad pool community",
            "[[pool]]\nname = \"p\"\naddresses = [\"203.0.113.0/30\"]\nbgp = { communities = [\"x\"] }\n",
            "lb.toml:13:24: pool[0].bgp.communities[0]: community \"x\"",
        ),
        (
            "unknown pool bgp key",
            "[[pool]]\nname = \"p\"\naddresses = [\"203.0.113.0/30\"]\nbgp = { annouce = true }\n",
            "lb.toml:13:9: pool[0].bgp.annouce: unknown field `annouce`",
        ),
        (
            "bad initial",
            "[announce]\ninitial = \"maybe\"\n",
            "lb.toml:11:11: announce.initial: unknown variant `maybe`",
        ),
    ];
    let mut failures = Vec::new();
    for (what, extra, expected) in cases {
        let got = errors(&format!("\n{extra}"));
        if !(got.len() == 1 && got[0].starts_with(expected)) {
            failures.push(format!(
                "{what}:\n  got      {got:#?}\n  expected {expected}…"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
