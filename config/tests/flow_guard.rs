//! `[flow]` new-flow guard keys (`new_flow_rate`, `new_flow_burst`,
//! `new_flow_excess`): defaults, what is accepted, and every rejection with
//! its file, line, column and field.

use lbfwd_config::flow_guard::{FlowGuard, NewFlowExcess, DEFAULT_NEW_FLOW_RATE};
use lbfwd_config::Config;

const BASE: &str = r#"[dataplane]
backend = "af_packet"
interfaces = ["l0"]
workers = [0]

[underlay]
encap = "vxlan"
source_ipv4 = "10.77.2.2"
next_hop_mac = "02:00:00:00:00:01"

[flow]
capacity = 4096
"#;

fn guard(extra: &str) -> Result<FlowGuard, Vec<String>> {
    match Config::from_toml_str(&format!("{BASE}{extra}"), "lb.toml") {
        Ok(c) => Ok(c.settings.flow.guard),
        Err(e) => Err(e.iter().map(|e| e.to_string()).collect()),
    }
}

#[test]
fn the_guard_is_on_by_default_at_katran_s_rate() {
    let g = guard("").expect("valid");
    assert_eq!(
        g,
        FlowGuard {
            rate: DEFAULT_NEW_FLOW_RATE as u32,
            burst: DEFAULT_NEW_FLOW_RATE as u32,
            excess: NewFlowExcess::Forward,
        }
    );
}

#[test]
fn the_keys_set_rate_burst_and_excess_and_export_round_trips() {
    let text =
        format!("{BASE}new_flow_rate = 2000\nnew_flow_burst = 50\nnew_flow_excess = \"drop\"\n");
    let c = Config::from_toml_str(&text, "lb.toml").expect("valid");
    let g = c.settings.flow.guard;
    assert_eq!((g.rate, g.burst, g.excess), (2000, 50, NewFlowExcess::Drop));
    let again = Config::from_toml_str(&c.to_toml(), "again.toml").expect("reloads");
    assert_eq!(again.settings.flow.guard, g);
    let off = guard("new_flow_rate = 0\n").expect("valid");
    assert!(!off.is_on());
}

#[test]
fn bad_values_are_located_errors() {
    let e = guard("new_flow_rate = 100000001\n").unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("lb.toml:13:")
            && e[0].contains("flow.new_flow_rate")
            && e[0].contains("above"),
        "{e:?}"
    );
    let e = guard("new_flow_rate = 10\nnew_flow_burst = 0\n").unwrap_err();
    assert!(
        e[0].starts_with("lb.toml:14:") && e[0].contains("flow.new_flow_burst"),
        "{e:?}"
    );
    let e = guard("new_flow_rate = 0\nnew_flow_excess = \"drop\"\n").unwrap_err();
    assert!(
        e[0].starts_with("lb.toml:14:") && e[0].contains("flow.new_flow_excess"),
        "{e:?}"
    );
    let e = guard("new_flow_excess = \"reject\"\n").unwrap_err();
    assert!(
        e[0].starts_with("lb.toml:")
            && e[0].contains("new_flow_excess")
            && e[0].contains("forward"),
        "{e:?}"
    );
    let e = guard("new_flow_rate = -5\n").unwrap_err();
    assert!(e[0].contains("new_flow_rate"), "{e:?}");
}
