//! `lbfwd check`: validate a config file (and Ironcore manifests) and print
//! the derived state, or every error with its location.

use crate::cmd::ConfigArgs;
use lbfwd_config::{Config, Resolution};
use std::process::ExitCode;

/// Output format of `lbfwd check`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// For people.
    #[default]
    Text,
    /// One JSON object: `{ "load_balancers": [...] }`.
    Json,
}

/// Arguments of `lbfwd check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Runs `lbfwd check`: exit 0 and the derived state when everything is
/// valid; exit 1 and every error (one per line, with location) otherwise.
pub fn main(args: Args) -> ExitCode {
    let loaded = Config::load_with_manifests(&args.config.config, &args.config.manifests)
        .and_then(|config| config.resolve().map(|resolution| (config, resolution)));
    let (config, resolution) = match loaded {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!(
                "lbfwd check: {} error{} found",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return ExitCode::FAILURE;
        }
    };
    for w in &resolution.warnings {
        eprintln!("warning: {w}");
    }
    match args.output {
        Output::Json => match serde_json::to_string_pretty(&json(&resolution)) {
            Ok(s) => crate::cmd::write_stdout(&format!("{s}\n")),
            Err(e) => {
                eprintln!("lbfwd check: cannot write JSON: {e}");
                return ExitCode::FAILURE;
            }
        },
        Output::Text => crate::cmd::write_stdout(&text(&config, &resolution)),
    }
    ExitCode::SUCCESS
}

/// The `-o json` document: `{ "load_balancers": [ { "name", "type",
/// "network", "vni", "ips": ["203.0.113.1"], "addresses": [ { "ip", "pool" } ],
/// "ports": [ { "protocol", "port", "end_port" } ], "icmp_echo",
/// "maglev_table_size", "routing": { "destinations": [ { "name", "uid",
/// "underlay", "mac", "weight" } ] } } ] }`.
pub fn json(r: &Resolution) -> serde_json::Value {
    use serde_json::json;
    let lbs: Vec<_> = r
        .resolved
        .load_balancers
        .iter()
        .map(|lb| {
            json!({
                "name": lb.name,
                "type": lb.lb_type,
                "network": lb.network,
                "vni": lb.vni,
                "ips": lb.ips.iter().map(|ip| ip.addr).collect::<Vec<_>>(),
                "addresses": lb.ips.iter().map(|ip| json!({"ip": ip.addr, "pool": ip.pool})).collect::<Vec<_>>(),
                "ports": lb.ports.iter().map(|p| json!({
                    "protocol": p.protocol,
                    "port": p.first,
                    "end_port": p.last,
                })).collect::<Vec<_>>(),
                "icmp_echo": lb.icmp_echo,
                "maglev_table_size": lb.maglev_table_size,
                "routing": {
                    "destinations": lb.destinations.iter().map(|d| json!({
                        "name": d.name,
                        "uid": d.uid,
                        "underlay": d.underlay,
                        "mac": d.mac,
                        "weight": d.weight,
                    })).collect::<Vec<_>>(),
                },
            })
        })
        .collect();
    json!({ "load_balancers": lbs })
}

/// The text report.
pub fn text(config: &Config, r: &Resolution) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let source = config
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "{source}: OK: {} load balancer(s), backend {}, encap {}, {} worker(s)",
        r.resolved.load_balancers.len(),
        config.settings.dataplane.backend,
        match config.settings.underlay.encap {
            lbfwd_config::Encap::IpIp => "ipip".to_string(),
            lbfwd_config::Encap::Gue { port } => format!("gue (UDP {port})"),
            lbfwd_config::Encap::Vxlan { port } => format!("vxlan (UDP {port})"),
        },
        config.settings.dataplane.workers.len()
    );
    for lb in &r.resolved.load_balancers {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "load balancer {} ({:?}, network {} vni {})",
            lb.name, lb.lb_type, lb.network, lb.vni
        );
        for ip in &lb.ips {
            match &ip.pool {
                Some(p) => {
                    let _ = writeln!(s, "  ip         {} (pool {p})", ip.addr);
                }
                None => {
                    let _ = writeln!(s, "  ip         {} (explicit, no pool)", ip.addr);
                }
            }
        }
        let ports: Vec<String> = lb.ports.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(s, "  ports      {}", ports.join(", "));
        let _ = writeln!(
            s,
            "  icmp echo  {:?}, maglev table {}",
            lb.icmp_echo, lb.maglev_table_size
        );
        if lb.destinations.is_empty() {
            let _ = writeln!(s, "  destinations: none");
        } else {
            let _ = writeln!(s, "  destinations:");
        }
        for d in &lb.destinations {
            let uid = if d.uid.is_empty() {
                "-"
            } else {
                d.uid.as_str()
            };
            let mac = d.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
            let drain = if d.weight == 0 { " (draining)" } else { "" };
            let _ = writeln!(
                s,
                "    {:<24} uid {:<36} underlay {:<16} mac {} weight {}{drain}",
                d.name, uid, d.underlay, mac, d.weight
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> std::path::PathBuf {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/examples"))
    }

    #[test]
    fn json_has_the_documented_shape() {
        let c = Config::load_with_manifests(
            examples().join("lbfwd.toml"),
            &[examples().join("ironcore.yaml")],
        )
        .unwrap();
        let j = json(&c.resolve().unwrap());
        let lbs = j["load_balancers"].as_array().unwrap();
        let names: Vec<&str> = lbs.iter().map(|l| l["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "db",
                "lb-external",
                "loadbalancer-sample",
                "shop",
                "shop-admin"
            ]
        );
        let sample = &lbs[2];
        assert_eq!(sample["type"], "Public");
        assert_eq!(sample["ips"][0], "203.0.113.0");
        assert_eq!(sample["ips"][1], "2001:db8:100::");
        assert_eq!(sample["addresses"][0]["pool"], "public");
        assert_eq!(sample["ports"][0]["protocol"], "TCP");
        assert_eq!(sample["ports"][0]["port"], 80);
        let d = &sample["routing"]["destinations"][0];
        assert_eq!(d["name"], "my-machine-interface-1");
        assert_eq!(d["uid"], "2020dcf9-e030-427e-b0fc-4fec2016e73a");
        assert_eq!(d["underlay"], "10.0.3.11");
    }

    #[test]
    fn text_lists_addresses_with_pools_and_destinations() {
        let c = Config::load(examples().join("lbfwd.toml")).unwrap();
        let t = text(&c, &c.resolve().unwrap());
        assert!(
            t.contains("load balancer db (Internal, network backend vni 200)"),
            "{t}"
        );
        assert!(
            t.contains("ip         10.2.255.0 (pool backend-internal)"),
            "{t}"
        );
        assert!(
            t.contains("ports      TCP/80, TCP/443, UDP/1024-2048"),
            "{t}"
        );
        assert!(t.contains("dns-appliance"), "{t}");
    }

    #[test]
    fn bad_example_fails_with_every_error() {
        let errors = Config::load_with_manifests(examples().join("bad.toml"), &[]).unwrap_err();
        assert!(errors.len() >= 12);
        assert!(errors
            .iter()
            .all(|e| e.location.as_ref().is_some_and(|l| l.line > 0)));
    }
}
