//! Shared test fixtures: a temporary directory and an in-memory handler that
//! stores objects, so the real server can be driven end to end.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lbfwd_control::protocol::*;
use lbfwd_control::{Server, ServerConfig, ServerHandle};
use serde_json::{json, Value};

/// A directory under /tmp removed on drop. Short names: socket paths are
/// limited to 107 bytes.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("lbctl-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn socket(&self) -> PathBuf {
        self.0.join("run").join("lbfwd.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An in-memory handler: good enough to exercise the server and lbctl, with
/// none of the model's rules (that is the daemon's handler, tested there).
#[derive(Default)]
pub struct MemHandler {
    objects: Mutex<BTreeMap<(Kind, String), Value>>,
    weights: Mutex<BTreeMap<(String, String), u32>>,
    table_version: AtomicU64,
    /// Requests that reached the handler.
    pub calls: AtomicUsize,
    /// The last `apply_documents` body.
    pub last_documents: Mutex<Option<ApplyDocuments>>,
}

impl MemHandler {
    pub fn new() -> Arc<MemHandler> {
        Arc::new(MemHandler::default())
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn object(&self, kind: Kind, name: &str, spec: &Value) -> Object {
        let status = match kind {
            Kind::LoadBalancer => Some(ObjectStatus::LoadBalancer(LoadBalancerStatus {
                lb_type: LbType::Public,
                network: spec["network"].as_str().unwrap_or("").to_owned(),
                vni: 100,
                ips: vec![AssignedIpView {
                    addr: "203.0.113.1".parse().unwrap(),
                    pool: Some("public".into()),
                }],
                ports: vec![PortRangeView {
                    protocol: ProtocolName::Tcp,
                    port: 80,
                    end_port: 80,
                }],
                icmp_echo_reply: false,
                destinations: self.destinations(name),
            })),
            Kind::LoadBalancerRouting => Some(ObjectStatus::Routing(RoutingStatus {
                load_balancer: name.to_owned(),
                source: RoutingSource::External,
                network: spec["network"].as_str().unwrap_or("").to_owned(),
                destinations: self.destinations(name),
            })),
            _ => None,
        };
        Object {
            kind,
            name: name.to_owned(),
            spec: spec.clone(),
            status,
        }
    }

    fn destinations(&self, lb: &str) -> Vec<DestinationView> {
        let weights = self.weights.lock().unwrap();
        ["nic-a", "nic-b"]
            .iter()
            .map(|d| DestinationView {
                name: (*d).to_owned(),
                uid: format!("uid-{d}"),
                underlay: "10.0.3.11".parse::<IpAddr>().unwrap(),
                mac: Some("02:00:00:00:03:11".into()),
                weight: *weights.get(&(lb.to_owned(), (*d).to_owned())).unwrap_or(&1),
                health: None,
            })
            .collect()
    }

    fn bump(&self) -> u64 {
        self.table_version.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn require(&self, kind: Kind, name: &str) -> Result<(), ApiError> {
        if self
            .objects
            .lock()
            .unwrap()
            .contains_key(&(kind, name.to_owned()))
        {
            Ok(())
        } else {
            Err(ApiError::not_found(&ObjectRef {
                kind,
                name: name.to_owned(),
            }))
        }
    }

    fn set_weight(&self, lb: &str, dest: &str, weight: u32) -> Result<Payload, ApiError> {
        self.require(Kind::LoadBalancer, lb)?;
        if dest != "nic-a" && dest != "nic-b" {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("load balancer `{lb}` has no destination `{dest}`"),
            ));
        }
        self.weights
            .lock()
            .unwrap()
            .insert((lb.to_owned(), dest.to_owned()), weight);
        Ok(Payload::Changed(ChangeSummary {
            table_version: self.bump(),
            rerouted: vec![RoutingChange {
                load_balancer: lb.to_owned(),
                changed: vec![dest.to_owned()],
                ..RoutingChange::default()
            }],
            ..ChangeSummary::default()
        }))
    }
}

impl lbfwd_control::Handler for MemHandler {
    fn handle(&self, request: Request) -> Result<Payload, ApiError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match request {
            Request::Status => Ok(Payload::Status(StatusInfo {
                version: "0.1.0".into(),
                protocol: PROTOCOL_VERSION,
                pid: std::process::id(),
                uptime_secs: 3723,
                backend: "memory".into(),
                workers: vec![WorkerInfo {
                    id: 0,
                    core: Some(1),
                    table_version: self.table_version.load(Ordering::SeqCst),
                }],
                interfaces: vec!["eth1".into()],
                config_path: Some("/etc/lbfwd/lbfwd.toml".into()),
                state_path: Some("/var/lib/lbfwd/state.toml".into()),
                table_version: self.table_version.load(Ordering::SeqCst),
                load_balancers: self
                    .objects
                    .lock()
                    .unwrap()
                    .keys()
                    .filter(|(k, _)| *k == Kind::LoadBalancer)
                    .count(),
                health: Default::default(),
            })),
            Request::Stats => {
                let c = Counter::with_rates(2_000, 1_000_000, (1_000, 500_000), 1.0);
                Ok(Payload::Stats(StatsSnapshot {
                    uptime_secs: 10,
                    interval_secs: 1.0,
                    totals: Traffic {
                        rx: c,
                        tx: c,
                        ..Traffic::default()
                    },
                    workers: vec![WorkerStats {
                        id: 0,
                        core: Some(1),
                        traffic: Traffic {
                            rx: c,
                            tx: c,
                            ..Traffic::default()
                        },
                        flows: 12,
                    }],
                    load_balancers: vec![LoadBalancerStats {
                        name: "web".into(),
                        forwarded: c,
                        dropped: Counter::default(),
                        flows: 12,
                        targets: vec![TargetStats {
                            name: "nic-a".into(),
                            underlay: Some("10.0.3.11".parse().unwrap()),
                            weight: 1,
                            sent: c,
                        }],
                    }],
                    drops: vec![DropStats {
                        reason: "port_not_allowed".into(),
                        packets: 7,
                        pps: 0.5,
                    }],
                    health: Vec::new(),
                    l2: None,
                    flow_guard: Some(lbfwd_control::protocol::FlowGuardStats {
                        rate: 1000,
                        burst: 200,
                        excess: "forward".into(),
                        engaged_workers: vec![0],
                        not_remembered: 4242,
                        dropped: 0,
                    }),
                    sync: None,
                }))
            }
            Request::List(ListRequest { kind }) => {
                let objects = self.objects.lock().unwrap().clone();
                Ok(Payload::Objects(
                    objects
                        .iter()
                        .filter(|((k, _), _)| *k == kind)
                        .map(|((k, n), spec)| self.object(*k, n, spec))
                        .collect(),
                ))
            }
            Request::Get(r) => {
                if r.name == "panic" {
                    panic!("test handler asked to panic");
                }
                if r.name == "slow" {
                    std::thread::sleep(Duration::from_millis(300));
                }
                let spec = self
                    .objects
                    .lock()
                    .unwrap()
                    .get(&(r.kind, r.name.clone()))
                    .cloned()
                    .ok_or_else(|| ApiError::not_found(&r))?;
                Ok(Payload::Object(self.object(r.kind, &r.name, &spec)))
            }
            Request::Apply(ApplyObjects { kind, objects }) => {
                let mut errors = Vec::new();
                let mut named = Vec::new();
                for (i, o) in objects.iter().enumerate() {
                    match o.get("name").and_then(Value::as_str) {
                        Some(n) if !n.is_empty() => named.push((n.to_owned(), o.clone())),
                        _ => errors.push(format!("{kind}[{i}].name: missing or empty")),
                    }
                    if let Some(ports) = o.get("ports").and_then(Value::as_array) {
                        for (j, p) in ports.iter().enumerate() {
                            let port = p.get("port").and_then(Value::as_u64).unwrap_or(0);
                            if !(1..=65535).contains(&port) {
                                errors.push(format!(
                                    "{kind}[{i}].ports[{j}].port: {port} is not in 1..=65535"
                                ));
                            }
                        }
                    }
                }
                if !errors.is_empty() {
                    return Err(ApiError::validation(errors));
                }
                let mut summary = ChangeSummary::default();
                let mut store = self.objects.lock().unwrap();
                for (name, o) in named {
                    let r = ObjectRef {
                        kind,
                        name: name.clone(),
                    };
                    match store.insert((kind, name.clone()), o) {
                        None => summary.created.push(r),
                        Some(_) => summary.updated.push(r),
                    }
                    if kind == Kind::LoadBalancer {
                        summary.allocated.push(AddressChange {
                            load_balancer: name,
                            addr: "203.0.113.1".parse().unwrap(),
                            pool: Some("public".into()),
                        });
                    }
                }
                summary.table_version = self.bump();
                Ok(Payload::Changed(summary))
            }
            Request::Delete(r) => {
                self.objects
                    .lock()
                    .unwrap()
                    .remove(&(r.kind, r.name.clone()))
                    .ok_or_else(|| ApiError::not_found(&r))?;
                Ok(Payload::Changed(ChangeSummary {
                    table_version: self.bump(),
                    deleted: vec![r],
                    ..ChangeSummary::default()
                }))
            }
            Request::ApplyDocuments(docs) => {
                *self.last_documents.lock().unwrap() = Some(docs.clone());
                let mut errors = Vec::new();
                let mut summary = ChangeSummary::default();
                for d in &docs.documents {
                    let source = d.source.clone().unwrap_or_else(|| "<stdin>".into());
                    if d.text.contains("invalid") {
                        errors.push(format!(
                            "{source}:1:1: load_balancer[bad].network: unknown network `nope`"
                        ));
                        errors.push(format!(
                            "{source}:2:1: load_balancer[bad].ports[0].port: 0 is not in 1..=65535"
                        ));
                    } else {
                        summary.created.push(ObjectRef {
                            kind: docs.only_kind.unwrap_or(Kind::Network),
                            name: format!("{}:{}", d.format, source),
                        });
                    }
                }
                if !errors.is_empty() {
                    return Err(ApiError::validation(errors));
                }
                summary.table_version = self.bump();
                Ok(Payload::Changed(summary))
            }
            Request::LabelSet(LabelSet { interface, labels }) => {
                let mut store = self.objects.lock().unwrap();
                let key = (Kind::NetworkInterface, interface.clone());
                let nic = store.get_mut(&key).ok_or_else(|| {
                    ApiError::not_found(&ObjectRef {
                        kind: Kind::NetworkInterface,
                        name: interface.clone(),
                    })
                })?;
                if !nic["labels"].is_object() {
                    nic["labels"] = json!({});
                }
                for (k, v) in labels {
                    nic["labels"][k] = Value::String(v);
                }
                Ok(Payload::Changed(ChangeSummary {
                    table_version: self.bump(),
                    updated: vec![ObjectRef {
                        kind: Kind::NetworkInterface,
                        name: interface,
                    }],
                    ..ChangeSummary::default()
                }))
            }
            Request::LabelRemove(LabelRemove { interface, keys }) => {
                let mut store = self.objects.lock().unwrap();
                let key = (Kind::NetworkInterface, interface.clone());
                let nic = store.get_mut(&key).ok_or_else(|| {
                    ApiError::not_found(&ObjectRef {
                        kind: Kind::NetworkInterface,
                        name: interface.clone(),
                    })
                })?;
                if let Some(labels) = nic["labels"].as_object_mut() {
                    for k in &keys {
                        labels.remove(k);
                    }
                }
                Ok(Payload::Changed(ChangeSummary {
                    table_version: self.bump(),
                    updated: vec![ObjectRef {
                        kind: Kind::NetworkInterface,
                        name: interface,
                    }],
                    ..ChangeSummary::default()
                }))
            }
            Request::Weight(w) => self.set_weight(&w.load_balancer, &w.destination, w.weight),
            Request::Drain(d) => self.set_weight(&d.load_balancer, &d.destination, 0),
            Request::Health => Ok(Payload::Health(Vec::new())),
            Request::Export => {
                let store = self.objects.lock().unwrap();
                let mut toml = String::from("# exported by the test handler\n");
                for kind in Kind::ALL {
                    for ((k, name), _) in store.iter() {
                        if *k == kind {
                            toml.push_str(&format!("\n[[{kind}]]\nname = \"{name}\"\n"));
                        }
                    }
                }
                Ok(Payload::Exported(Export { toml }))
            }
            Request::Reload => Ok(Payload::Changed(ChangeSummary {
                table_version: self.table_version.load(Ordering::SeqCst),
                ..ChangeSummary::default()
            })),
            // The announcer is the daemon's; its real answers are tested
            // against a running lbfwd with BIRD (tests/tests/bgp.rs).
            Request::Announce | Request::AnnounceSet(_) => {
                Ok(Payload::Announce(lbfwd_control::announce::AnnounceStatus {
                    enabled: !matches!(
                        request,
                        Request::AnnounceSet(lbfwd_control::announce::AnnounceSet { on: false })
                    ),
                    shutting_down: false,
                    vips: Vec::new(),
                    bgp: None,
                    l2: None,
                }))
            }
        }
    }
}

/// Binds and serves a socket in `dir` with `MemHandler`.
pub fn start(dir: &TempDir) -> (ServerHandle, Arc<MemHandler>) {
    start_with(ServerConfig::new(dir.socket()))
}

/// Binds and serves with a given configuration.
pub fn start_with(config: ServerConfig) -> (ServerHandle, Arc<MemHandler>) {
    let handler = MemHandler::new();
    let server = Server::bind(config).expect("bind");
    let handle = server.spawn(Arc::clone(&handler)).expect("spawn");
    (handle, handler)
}
