//! `[l2]`: what is accepted (with MetalLB's gratuitous schedule by
//! default), and every rejection with its file, line, column and field.

use lbfwd_config::Config;
use std::time::Duration;

const BASE: &str = r#"[dataplane]
backend = "af_packet"
interfaces = ["l0", "l1"]
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
fn l2_is_accepted_with_metallb_s_schedule_by_default() {
    let c = Config::from_toml_str(&format!("{BASE}\n[l2]\ninterfaces = [\"l1\"]\n"), "lb.toml")
        .expect("valid");
    let l2 = c.settings.l2.expect("[l2]");
    assert_eq!(l2.interfaces, vec!["l1".to_string()]);
    assert_eq!(l2.refresh, None);
    let ms: Vec<u128> = l2.schedule().iter().map(Duration::as_millis).collect();
    assert_eq!(ms, vec![0, 1100, 2200, 3300, 4400]);
    assert!(Config::from_toml_str(BASE, "lb.toml")
        .expect("valid")
        .settings
        .l2
        .is_none());
}

#[test]
fn the_optional_keys_set_the_schedule_and_refresh() {
    let c = Config::from_toml_str(
        &format!(
            "{BASE}\n[l2]\ninterfaces = [\"l0\"]\ngratuitous_interval_ms = 500\n\
             gratuitous_duration_ms = 1200\nrefresh_s = 60\n"
        ),
        "lb.toml",
    )
    .expect("valid");
    let l2 = c.settings.l2.clone().expect("[l2]");
    let ms: Vec<u128> = l2.schedule().iter().map(Duration::as_millis).collect();
    assert_eq!(ms, vec![0, 500, 1000]);
    assert_eq!(l2.refresh, Some(Duration::from_secs(60)));
    // Exported and loaded back: the same settings.
    let again = Config::from_toml_str(&c.to_toml(), "again.toml").expect("reloads");
    assert_eq!(again.settings.l2, Some(l2));
}

#[test]
fn an_interface_that_is_not_a_dataplane_interface_is_a_located_error() {
    let e = errors("\n[l2]\ninterfaces = [\"l0\", \"eth9\"]\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("lb.toml:12:")
            && e[0].contains("l2.interfaces[1]")
            && e[0].contains("\"eth9\" is not a dataplane interface"),
        "{e:?}"
    );
    let e = errors("\n[l2]\ninterfaces = [\"l0\", \"l0\"]\n");
    assert!(
        e[0].contains("l2.interfaces[1]") && e[0].contains("twice"),
        "{e:?}"
    );
    let e = errors("\n[l2]\ninterfaces = []\n");
    assert!(
        e[0].contains("l2.interfaces") && e[0].contains("at least one"),
        "{e:?}"
    );
}

#[test]
fn unknown_keys_and_bad_values_are_located_errors() {
    let e = errors("\n[l2]\ninterfaces = [\"l0\"]\ngarp_count = 3\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("lb.toml:13:") && e[0].contains("garp_count"),
        "{e:?}"
    );
    let e = errors("\n[l2]\ninterfaces = [\"l0\"]\ngratuitous_interval_ms = 5\n");
    assert!(
        e[0].starts_with("lb.toml:13:") && e[0].contains("outside 100-60000"),
        "{e:?}"
    );
    let e = errors("\n[l2]\n");
    assert!(e[0].contains("interfaces"), "{e:?}");
}

#[test]
fn l2_needs_a_one_armed_dataplane() {
    let text = BASE.replace(
        "workers = [0]",
        "workers = [0]\negress_interface = \"out0\"",
    );
    let e =
        match Config::from_toml_str(&format!("{text}\n[l2]\ninterfaces = [\"l0\"]\n"), "lb.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        };
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("l2.interfaces[0]") && e[0].contains("one-armed"),
        "{e:?}"
    );
}
