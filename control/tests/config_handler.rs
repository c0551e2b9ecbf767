//! A handler over the real model (the `config` crate) behind the real server,
//! driven through `lbctl`: the reference for the daemon's handler (which adds
//! table building, publishing and persisting), and proof that the wire types
//! and `lbfwd_control::convert` carry the model's behaviour and errors
//! unchanged: selection follows labels, drains, address allocation and
//! release, validation errors with their locations, export that loads back.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::TempDir;
use lbfwd_config::{Config, Resolved};
use lbfwd_control::convert::changes_for;
use lbfwd_control::protocol::*;
use lbfwd_control::{Handler, Server, ServerConfig};

const BASE: &str = r#"
[dataplane]
backend = "memory"
interfaces = ["eth1"]
workers = [0]

[underlay]
encap = "vxlan"
source_ipv4 = "10.0.2.2"
next_hop_mac = "02:00:00:00:00:01"

[[pool]]
name = "public"
addresses = ["203.0.113.0/30"]

[[network]]
name = "net"
vni = 100

[[network_interface]]
name = "nic-a"
uid = "uid-a"
network = "net"
labels = { app = "web" }
ips = ["10.1.0.5"]
underlay = "10.0.3.11"
mac = "02:00:00:00:03:11"

[[network_interface]]
name = "nic-b"
uid = "uid-b"
network = "net"
labels = { app = "db" }
ips = ["10.1.0.6"]
underlay = "10.0.3.12"
mac = "02:00:00:00:03:12"
"#;

struct Model {
    config: Config,
    resolved: Resolved,
    table_version: u64,
}

/// The model behind a mutex: one change at a time, validated as a whole.
struct ConfigHandler(Mutex<Model>);

impl ConfigHandler {
    fn new() -> ConfigHandler {
        let config = Config::from_toml_str(BASE, "base.toml").unwrap();
        let resolved = config
            .state
            .resolve(&config.settings.underlay)
            .unwrap()
            .resolved;
        ConfigHandler(Mutex::new(Model {
            config,
            resolved,
            table_version: 1,
        }))
    }
}

fn object(m: &Model, o: &lbfwd_config::Object) -> Option<Object> {
    let obj = Object::from_config(o)?;
    let lb = m
        .resolved
        .load_balancers
        .iter()
        .find(|l| l.name == obj.name);
    Some(match (obj.kind, lb) {
        (Kind::LoadBalancer, Some(lb)) => {
            obj.with_status(ObjectStatus::LoadBalancer(LoadBalancerStatus::from(lb)))
        }
        (Kind::LoadBalancerRouting, Some(lb)) => obj.with_status(ObjectStatus::Routing(
            RoutingStatus::from_resolved(lb, RoutingSource::External),
        )),
        (Kind::NetworkInterface, _) => {
            let selected_by = m
                .resolved
                .load_balancers
                .iter()
                .filter(|l| l.destinations.iter().any(|d| d.name == obj.name))
                .map(|l| l.name.clone())
                .collect();
            obj.with_status(ObjectStatus::NetworkInterface(InterfaceStatus {
                selected_by,
            }))
        }
        _ => obj,
    })
}

/// Routings: the given ones plus those derived from selectors.
fn routings(m: &Model) -> Vec<Object> {
    m.resolved
        .load_balancers
        .iter()
        .map(|lb| {
            let given = m.config.state.routing(&lb.name);
            let selector = m
                .config
                .state
                .load_balancer(&lb.name)
                .is_some_and(|s| s.network_interface_selector.is_some());
            Object {
                kind: Kind::LoadBalancerRouting,
                name: lb.name.clone(),
                spec: given
                    .map(|g| serde_json::to_value(g).unwrap())
                    .unwrap_or_default(),
                status: Some(ObjectStatus::Routing(RoutingStatus::from_resolved(
                    lb,
                    if selector {
                        RoutingSource::Selector
                    } else {
                        RoutingSource::External
                    },
                ))),
            }
        })
        .collect()
}

impl Handler for ConfigHandler {
    fn handle(&self, request: Request) -> Result<Payload, ApiError> {
        let mut m = self.0.lock().unwrap();
        if let Some(changes) = changes_for(&request) {
            let changes = changes?;
            let underlay = m.config.settings.underlay.clone();
            let summary = m
                .config
                .state
                .apply(&changes, &underlay)
                .map_err(|e| ApiError::from_config_errors(&request, &e))?;
            let before = std::mem::take(&mut m.resolved);
            m.resolved = summary
                .resolution
                .as_ref()
                .map(|r| r.resolved.clone())
                .unwrap_or_default();
            // The daemon builds and publishes tables and persists the state
            // here, before answering.
            let wire = ChangeSummary::from_config(&summary, Some(&before), m.table_version + 1);
            if !wire.is_empty() {
                m.table_version += 1;
            }
            return Ok(Payload::Changed(ChangeSummary {
                table_version: m.table_version,
                ..wire
            }));
        }
        match request {
            Request::List(ListRequest {
                kind: Kind::LoadBalancerRouting,
            }) => Ok(Payload::Objects(routings(&m))),
            Request::List(ListRequest { kind }) => Ok(Payload::Objects(
                m.config
                    .state
                    .objects()
                    .iter()
                    .filter(|o| lbfwd_config::Kind::from(kind) == o.kind())
                    .filter_map(|o| object(&m, o))
                    .collect(),
            )),
            Request::Get(r) if r.kind == Kind::LoadBalancerRouting => routings(&m)
                .into_iter()
                .find(|o| o.name == r.name)
                .map(Payload::Object)
                .ok_or_else(|| ApiError::not_found(&r)),
            Request::Get(r) => m
                .config
                .state
                .objects()
                .iter()
                .filter(|o| lbfwd_config::Kind::from(r.kind) == o.kind() && o.name() == r.name)
                .find_map(|o| object(&m, o))
                .map(Payload::Object)
                .ok_or_else(|| ApiError::not_found(&r)),
            Request::Export => Ok(Payload::Exported(Export {
                toml: m.config.to_toml(),
            })),
            other => Err(ApiError::new(
                ErrorCode::UnknownOperation,
                format!("`{}` is not part of this test", other.operation()),
            )),
        }
    }
}

const LBCTL: &str = env!("CARGO_BIN_EXE_lbctl");

fn lbctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(LBCTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

#[track_caller]
fn ok(socket: &Path, args: &[&str]) -> String {
    let o = lbctl(socket, args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "lbctl {args:?}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn destinations(socket: &Path, lb: &str) -> Vec<(String, u64)> {
    let json: serde_json::Value =
        serde_json::from_str(&ok(socket, &["routing", "get", lb, "-o", "json"])).unwrap();
    json["status"]["routing"]["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["weight"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_model_through_lbctl() {
    let dir = TempDir::new("model");
    let server = Server::bind(ServerConfig::new(dir.socket()))
        .unwrap()
        .spawn(Arc::new(ConfigHandler::new()))
        .unwrap();
    let s = server.socket_path();

    let lb = dir.path().join("web.toml");
    std::fs::write(
        &lb,
        r#"[[load_balancer]]
name = "web"
type = "Public"
ip_families = ["IPv4"]
network = "net"
network_interface_selector = { match_labels = { app = "web" } }
ports = [ { protocol = "TCP", port = 80 } ]
"#,
    )
    .unwrap();
    let out = ok(s, &["lb", "apply", "-f", lb.to_str().unwrap()]);
    assert!(out.contains("created load balancer `web`"), "{out}");
    assert!(
        out.contains("allocated 203.0.113.0 to web from pool public"),
        "{out}"
    );
    let out = ok(s, &["lb", "list"]);
    assert!(
        out.contains("web   Public  net      203.0.113.0  TCP/80  app=web   1"),
        "{out}"
    );
    assert_eq!(destinations(s, "web"), [("nic-a".to_owned(), 100)]);
    let out = ok(s, &["routing", "list"]);
    assert!(out.contains("web   selector  net      nic-a"), "{out}");

    // Label nic-b into the selector, nic-a out: the routing follows.
    let out = ok(s, &["nic", "label", "nic-b", "app=web"]);
    assert!(out.contains("rerouted web: +nic-b"), "{out}");
    let out = ok(s, &["nic", "unlabel", "nic-a", "app"]);
    assert!(out.contains("rerouted web: -nic-a"), "{out}");
    assert_eq!(destinations(s, "web"), [("nic-b".to_owned(), 100)]);
    let out = ok(s, &["nic", "list"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("nic-b") && l.ends_with("web")),
        "{out}"
    );

    // Weight and drain.
    ok(s, &["nic", "label", "nic-a", "app=web"]);
    let out = ok(s, &["weight", "web", "nic-a", "300"]);
    assert!(out.contains("rerouted web: ~nic-a"), "{out}");
    let out = ok(s, &["drain", "web", "nic-b"]);
    assert!(out.contains("rerouted web: ~nic-b"), "{out}");
    assert_eq!(
        destinations(s, "web"),
        [("nic-a".to_owned(), 300), ("nic-b".to_owned(), 0)]
    );
    let out = ok(s, &["routing", "get", "web"]);
    assert!(out.contains("0 (draining)"), "{out}");

    // Not found and validation errors with locations.
    let o = lbctl(s, &["drain", "web", "ghost"]);
    assert_eq!(
        o.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[load_balancer]]\nname = \"x\"\ntype = \"Public\"\nnetwork = \"nope\"\nports = [ { protocol = \"TCP\", port = 0 } ]\n",
    )
    .unwrap();
    let o = lbctl(s, &["apply", "-f", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains(&format!("{}:4", bad.display())), "{err}");
    assert!(err.contains(&format!("{}:5", bad.display())), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    let o = lbctl(s, &["network", "apply", "-f", lb.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5));

    // Export loads back into an equal state.
    let exported = ok(s, &["export"]);
    let back = Config::from_toml_str(&exported, "export.toml").unwrap();
    assert!(back.state.load_balancer("web").is_some(), "{exported}");
    assert_eq!(ok(s, &["export"]), exported);

    let out = ok(s, &["lb", "delete", "web"]);
    assert!(
        out.contains("released 203.0.113.0 of web to pool public"),
        "{out}"
    );
    assert_eq!(ok(s, &["lb", "list"]), "(none)\n");
}
