//! `[sync]`: what is accepted (with its defaults), and every rejection with
//! its file, line, column and field.

use lbfwd_config::Config;
use std::time::Duration;

const BASE: &str = r#"[dataplane]
backend = "af_packet"
interfaces = ["l0"]
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
fn sync_is_accepted_with_its_defaults_and_exported_back() {
    let c = Config::from_toml_str(
        &format!(
            "{BASE}\n[sync]\nlisten = \"10.77.2.2:4797\"\npeers = [\"10.77.2.3:4797\", \"10.77.2.4:4797\"]\n\
             key = \"0123456789abcdef\"\n"
        ),
        "lb.toml",
    )
    .expect("valid");
    let s = c.settings.sync.clone().expect("[sync]");
    assert_eq!(s.listen, "10.77.2.2:4797".parse().unwrap());
    assert_eq!(s.peers.len(), 2);
    assert_eq!(s.refresh_interval, Duration::from_secs(1));
    assert_eq!((s.max_exceptions, s.worker_queue), (65_536, 4096));
    let again = Config::from_toml_str(&c.to_toml(), "again.toml").expect("reloads");
    assert_eq!(again.settings.sync, Some(s));
    assert!(Config::from_toml_str(BASE, "lb.toml")
        .expect("valid")
        .settings
        .sync
        .is_none());
}

#[test]
fn bad_values_are_located_errors() {
    let e = errors(
        "\n[sync]\nlisten = \"10.77.2.2:4797\"\npeers = [\"10.77.2.3:4797\", \"nowhere\"]\n\
         refresh_interval_ms = 10\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("lb.toml:13:28:")
            && e[0].contains("sync.peers[1]")
            && e[0].contains("\"nowhere\""),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("lb.toml:14:1:") && e[1].contains("sync.refresh_interval_ms"),
        "{e:?}"
    );
    let e = errors(
        "\n[sync]\nlisten = \"10.77.2.2:4797\"\npeers = [\"10.77.2.3:4797\"]\nkey = \"short\"\n",
    );
    assert!(
        e[0].contains("sync.key") && e[0].contains("at least 16"),
        "{e:?}"
    );
    let e = errors("\n[sync]\nlisten = \"10.77.2.2:4797\"\n");
    assert!(e[0].contains("peers"), "{e:?}");
    let e = errors("\n[sync]\nlisten = \"10.77.2.2:4797\"\npeers = []\nport = 1\n");
    assert!(e.iter().any(|m| m.contains("port")), "{e:?}");
}
