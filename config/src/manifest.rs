//! Ironcore YAML manifests: multi-document YAML with
//! `apiVersion: networking.ironcore.dev/v1alpha1` and kinds `Network`,
//! `NetworkInterface`, `LoadBalancer` and `LoadBalancerRouting`, mapped onto
//! the desired state.
//!
//! | Ironcore                                        | lbfwd model                              |
//! |-------------------------------------------------|------------------------------------------|
//! | `metadata.name`                                 | `name`                                   |
//! | `metadata.namespace`                            | ignored (one namespace per appliance)    |
//! | Network annotation `lbfwd.ironcore.dev/vni`     | `network.vni` (required)                 |
//! | NetworkInterface `metadata.uid`, `metadata.labels` | `uid`, `labels`                       |
//! | NetworkInterface `spec.networkRef.name`         | `network`                                |
//! | NetworkInterface `spec.ips[]` (string or `value`) | `ips`                                  |
//! | NetworkInterface `status.state`                 | `state` (default `Available`)            |
//! | annotation `lbfwd.ironcore.dev/underlay`        | `underlay`                               |
//! | annotation `lbfwd.ironcore.dev/mac`             | `mac`                                    |
//! | LoadBalancer `spec.type`, `spec.ipFamilies`, `spec.ips` | `type`, `ip_families`, `ips`     |
//! | LoadBalancer `spec.networkRef.name`             | `network`                                |
//! | LoadBalancer `spec.networkInterfaceSelector`    | `network_interface_selector` (`matchLabels`, `matchExpressions`) |
//! | LoadBalancer `spec.ports[]` `protocol` (any case), `port`, `endPort` (or IEP-3's `portEnd`) | `ports` |
//! | LoadBalancer `status.ips`                       | preferred addresses (persisted allocations) |
//! | annotations `lbfwd.ironcore.dev/icmp-echo`, `.../maglev-table-size`, `.../weights` (`if-a=0,if-b=50`) | `icmp_echo`, `maglev_table_size`, `weights` |
//! | LoadBalancerRouting `networkRef.name`, `destinations[]` (`name`, `uid`, or `targetRef.{name,uid}`) | `load_balancer_routing` |
//!
//! Unknown fields in a LoadBalancer's `spec`, in ports, selectors and
//! routing destinations are errors (typos); other objects' `spec` and
//! `status`, and `metadata`, may carry anything Ironcore puts there.
//!
//! Layer 2 (input): the Ironcore reader, beside the TOML reader `toml_doc`;
//! it also owns the reverse mapping, model paths to manifest paths
//! ([`yaml_path`]), which the YAML source it builds carries for `origin`.

use crate::error::{Errors, FieldPath, LocatedError, Location, Seg};
use crate::model::{IcmpEcho, IpFamily, Kind, LoadBalancerType, Protocol};
use crate::origin::{read_file, Origin, Source, SourceKind};
use crate::problem::Problem;
use crate::span::{split_documents, YamlIndex};
use crate::state::{
    Allocation, DesiredState, DestinationSpec, LabelSelector, LabelSelectorRequirement,
    LoadBalancerRoutingSpec, LoadBalancerSpec, NetworkInterfaceSpec, NetworkSpec, NicState, Object,
    PortSpec, SelectorOperator, Upserted,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The only apiVersion read.
pub const API_VERSION: &str = "networking.ironcore.dev/v1alpha1";
/// Annotation: a Network's VNI.
pub const ANNOTATION_VNI: &str = "lbfwd.ironcore.dev/vni";
/// Annotation: a NetworkInterface's underlay address.
pub const ANNOTATION_UNDERLAY: &str = "lbfwd.ironcore.dev/underlay";
/// Annotation: a NetworkInterface's MAC.
pub const ANNOTATION_MAC: &str = "lbfwd.ironcore.dev/mac";
/// Annotation: a LoadBalancer's ICMP echo handling (`drop`, `reply`).
pub const ANNOTATION_ICMP_ECHO: &str = "lbfwd.ironcore.dev/icmp-echo";
/// Annotation: a LoadBalancer's Maglev table size.
pub const ANNOTATION_TABLE_SIZE: &str = "lbfwd.ironcore.dev/maglev-table-size";
/// Annotation: a LoadBalancer's destination weights (`name=weight,...`).
pub const ANNOTATION_WEIGHTS: &str = "lbfwd.ironcore.dev/weights";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Ref {
    name: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IpSource {
    Plain(String),
    Value { value: String },
    Other(#[allow(dead_code)] serde::de::IgnoredAny),
}

impl IpSource {
    fn value(&self) -> Option<&str> {
        match self {
            IpSource::Plain(s) | IpSource::Value { value: s } => Some(s),
            IpSource::Other(_) => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NicSpec {
    network_ref: Ref,
    #[serde(default)]
    ips: Vec<IpSource>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NicStatus {
    #[serde(default)]
    state: Option<NicState>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct YamlPort {
    #[serde(default)]
    protocol: Option<Protocol>,
    port: i64,
    #[serde(default, alias = "portEnd")]
    end_port: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct YamlRequirement {
    key: String,
    operator: SelectorOperator,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct YamlSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<YamlRequirement>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LbSpec {
    #[serde(rename = "type")]
    lb_type: LoadBalancerType,
    #[serde(default)]
    ip_families: Vec<IpFamily>,
    #[serde(default)]
    ips: Vec<IpSource>,
    network_ref: Ref,
    #[serde(default)]
    network_interface_selector: Option<YamlSelector>,
    #[serde(default)]
    ports: Vec<YamlPort>,
}

#[derive(Deserialize, Default)]
struct LbStatus {
    #[serde(default)]
    ips: Vec<IpSource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetRef {
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct YamlDestination {
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    target_ref: Option<TargetRef>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    underlay: Option<String>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    weight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkDoc {
    metadata: Meta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NicDoc {
    metadata: Meta,
    spec: NicSpec,
    #[serde(default)]
    status: NicStatus,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LbDoc {
    metadata: Meta,
    spec: LbSpec,
    #[serde(default)]
    status: LbStatus,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoutingDoc {
    #[serde(default)]
    network_ref: Option<Ref>,
    #[serde(default)]
    destinations: Vec<YamlDestination>,
}

fn camel(s: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Translates a path in the model's field names (relative to one object)
/// into the manifest's path (`ports[1].end_port` of a LoadBalancer becomes
/// `spec.ports[1].endPort`).
pub fn yaml_path(kind: Kind, rel: &FieldPath) -> FieldPath {
    let mut segs = rel.0.iter();
    let Some(first) = segs.next() else {
        return FieldPath::root();
    };
    let Seg::Key(first) = first else {
        return rel.clone();
    };
    let p = |s: &str| FieldPath::parse(s);
    let ann = |a: &str| FieldPath::parse("metadata.annotations").key(a);
    let mut base = match (kind, first.as_str()) {
        (_, "name") => p("metadata.name"),
        (Kind::Network, "vni") => ann(ANNOTATION_VNI),
        (Kind::NetworkInterface, "uid") => p("metadata.uid"),
        (Kind::NetworkInterface, "labels") => p("metadata.labels"),
        (Kind::NetworkInterface, "network") => p("spec.networkRef.name"),
        (Kind::NetworkInterface, "ips") => p("spec.ips"),
        (Kind::NetworkInterface, "underlay") => ann(ANNOTATION_UNDERLAY),
        (Kind::NetworkInterface, "mac") => ann(ANNOTATION_MAC),
        (Kind::NetworkInterface, "state") => p("status.state"),
        (Kind::LoadBalancer, "network") => p("spec.networkRef.name"),
        (Kind::LoadBalancer, "icmp_echo") => ann(ANNOTATION_ICMP_ECHO),
        (Kind::LoadBalancer, "maglev_table_size") => ann(ANNOTATION_TABLE_SIZE),
        (Kind::LoadBalancer, "weights") => {
            return ann(ANNOTATION_WEIGHTS);
        }
        (Kind::LoadBalancer, other) => p("spec").key(camel(other)),
        (Kind::LoadBalancerRouting, "network") => p("networkRef.name"),
        (Kind::LoadBalancerRouting, other) => FieldPath::root().key(camel(other)),
        (_, other) => FieldPath::root().key(camel(other)),
    };
    for s in segs {
        base.0.push(match s {
            Seg::Key(k) => Seg::Key(camel(k)),
            Seg::Index(i) => Seg::Index(*i),
        });
    }
    base
}

/// Why a manifest object could not be mapped; located by its YAML path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// An annotation whose value does not parse.
    #[error("annotation {key}: {reason}")]
    BadAnnotation {
        /// The annotation key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

struct DocCtx<'a> {
    source: &'a Arc<Source>,
    index: &'a YamlIndex,
    doc: usize,
    errors: &'a mut Errors,
}

impl DocCtx<'_> {
    fn err(&mut self, ypath: &str, label: &str, problem: Problem) {
        let path = FieldPath::parse(ypath);
        self.err_path(&path, label, problem);
    }
    fn err_path(&mut self, path: &FieldPath, label: &str, problem: Problem) {
        let location = self.index.locate(&self.source.name, self.doc, path);
        let shown = if path.is_empty() {
            label.to_string()
        } else if label.is_empty() {
            path.to_string()
        } else {
            format!("{label} {path}")
        };
        self.errors.push(LocatedError {
            location: Some(location),
            path: shown,
            problem,
        });
    }
    fn serde_err(&mut self, label: &str, e: serde_yaml::Error) {
        let msg = e.to_string();
        // Place "unknown field `x`" / "missing field `x`" at that key when
        // the scanner saw it.
        let variant = msg.contains("unknown variant");
        let key = msg
            .split('`')
            .nth(1)
            .filter(|_| msg.contains("unknown field") || variant);
        let path = key
            .and_then(|k| self.index.find_key(self.doc, k, variant))
            .unwrap_or_default();
        self.err_path(&path, label, Problem::Invalid(msg));
    }
}

fn annotation_err(key: &'static str, reason: String) -> Problem {
    Problem::Invalid(ManifestError::BadAnnotation { key, reason }.to_string())
}

fn ann_path(key: &str) -> FieldPath {
    FieldPath::parse("metadata.annotations").key(key)
}

fn ips(list: &[IpSource]) -> Vec<String> {
    list.iter()
        .filter_map(|s| s.value().map(str::to_string))
        .collect()
}

/// Parses a multi-document manifest text into objects, every problem
/// located. `name` is the file name errors show. A LoadBalancer's
/// `status.ips` become [`Allocation`] objects (preferred addresses).
pub fn parse_manifests(text: &str, name: &str) -> Result<Vec<Object>, Errors> {
    let index = YamlIndex::new(text);
    let mut errors = Errors::default();
    let mut objects = Vec::new();
    let texts = split_documents(text);
    let index_source = Arc::new(Source {
        name: name.to_string(),
        kind: SourceKind::Yaml {
            index,
            manifest_path: yaml_path,
        },
    });
    let SourceKind::Yaml { index, .. } = &index_source.kind else {
        unreachable!("just built")
    };
    for (doc, (start, body)) in texts.iter().enumerate() {
        let mut ctx = DocCtx {
            source: &index_source,
            index,
            doc,
            errors: &mut errors,
        };
        let value: serde_yaml::Value = match serde_yaml::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                let location = match e.location() {
                    Some(l) => Location {
                        file: name.to_string(),
                        line: start + l.line() - 1,
                        column: l.column(),
                    },
                    None => index.locate(name, doc, &FieldPath::root()),
                };
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                ctx.errors.push(LocatedError {
                    location: Some(location),
                    path: String::new(),
                    problem: Problem::YamlSyntax(msg),
                });
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        if let Some(objs) = map_document(&mut ctx, value) {
            objects.extend(objs);
        }
    }
    errors.into_result(objects)
}

fn map_document(ctx: &mut DocCtx<'_>, value: serde_yaml::Value) -> Option<Vec<Object>> {
    let get = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let api = get("apiVersion");
    let kind = get("kind");
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let label = format!(
        "{}/{}",
        kind.as_deref().unwrap_or("?"),
        name.as_deref().unwrap_or("?")
    );
    match api.as_deref() {
        Some(API_VERSION) => {}
        Some(other) => {
            ctx.err("apiVersion", &label, Problem::ApiVersion(other.to_string()));
            return None;
        }
        None => {
            ctx.err("", &label, Problem::Invalid("missing apiVersion".into()));
            return None;
        }
    }
    let kind = match kind.as_deref() {
        Some("Network") => Kind::Network,
        Some("NetworkInterface") => Kind::NetworkInterface,
        Some("LoadBalancer") => Kind::LoadBalancer,
        Some("LoadBalancerRouting") => Kind::LoadBalancerRouting,
        Some(other) => {
            ctx.err("kind", &label, Problem::UnknownKind(other.to_string()));
            return None;
        }
        None => {
            ctx.err("", &label, Problem::Invalid("missing kind".into()));
            return None;
        }
    };
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        ctx.err("metadata", &label, Problem::MissingName);
        return None;
    };
    let origin = Origin::yaml(ctx.source, ctx.doc, kind, &name);
    let errors_before = ctx.errors.len();
    let obj = match kind {
        Kind::Network => {
            let d: NetworkDoc = serde_yaml::from_value(value)
                .map_err(|e| ctx.serde_err(&label, e))
                .ok()?;
            let vni = match d.metadata.annotations.get(ANNOTATION_VNI) {
                None => {
                    ctx.err("metadata", &label, Problem::MissingVni);
                    0
                }
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => {
                        ctx.err_path(
                            &ann_path(ANNOTATION_VNI),
                            &label,
                            annotation_err(ANNOTATION_VNI, format!("{v:?} is not a number")),
                        );
                        0
                    }
                },
            };
            Object::Network(NetworkSpec { name, vni, origin })
        }
        Kind::NetworkInterface => {
            let d: NicDoc = serde_yaml::from_value(value)
                .map_err(|e| ctx.serde_err(&label, e))
                .ok()?;
            let a = &d.metadata.annotations;
            Object::NetworkInterface(NetworkInterfaceSpec {
                name,
                uid: d.metadata.uid.clone().unwrap_or_default(),
                network: d.spec.network_ref.name,
                labels: d.metadata.labels.clone(),
                ips: ips(&d.spec.ips),
                underlay: a.get(ANNOTATION_UNDERLAY).cloned(),
                mac: a.get(ANNOTATION_MAC).cloned(),
                state: d.status.state.unwrap_or_default(),
                origin,
            })
        }
        Kind::LoadBalancer => {
            let d: LbDoc = serde_yaml::from_value(value)
                .map_err(|e| ctx.serde_err(&label, e))
                .ok()?;
            let a = &d.metadata.annotations;
            let icmp_echo = match a.get(ANNOTATION_ICMP_ECHO).map(|s| s.trim()) {
                None | Some("drop") => IcmpEcho::Drop,
                Some("reply") => IcmpEcho::Reply,
                Some(other) => {
                    ctx.err_path(
                        &ann_path(ANNOTATION_ICMP_ECHO),
                        &label,
                        annotation_err(
                            ANNOTATION_ICMP_ECHO,
                            format!("{other:?} is neither drop nor reply"),
                        ),
                    );
                    IcmpEcho::Drop
                }
            };
            let maglev_table_size = match a.get(ANNOTATION_TABLE_SIZE) {
                None => None,
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        ctx.err_path(
                            &ann_path(ANNOTATION_TABLE_SIZE),
                            &label,
                            annotation_err(ANNOTATION_TABLE_SIZE, format!("{v:?} is not a number")),
                        );
                        None
                    }
                },
            };
            let mut weights = BTreeMap::new();
            if let Some(w) = a.get(ANNOTATION_WEIGHTS) {
                for part in w.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match part
                        .split_once('=')
                        .map(|(k, v)| (k.trim(), v.trim().parse::<u32>()))
                    {
                        Some((k, Ok(v))) if !k.is_empty() => {
                            weights.insert(k.to_string(), v);
                        }
                        _ => ctx.err_path(
                            &ann_path(ANNOTATION_WEIGHTS),
                            &label,
                            annotation_err(
                                ANNOTATION_WEIGHTS,
                                format!("{part:?} is not NAME=WEIGHT"),
                            ),
                        ),
                    }
                }
            }
            let s = d.spec;
            let lb = LoadBalancerSpec {
                name: name.clone(),
                lb_type: s.lb_type,
                ip_families: s.ip_families,
                network: s.network_ref.name,
                network_interface_selector: s.network_interface_selector.map(|sel| LabelSelector {
                    match_labels: sel.match_labels,
                    match_expressions: sel
                        .match_expressions
                        .into_iter()
                        .map(|r| LabelSelectorRequirement {
                            key: r.key,
                            operator: r.operator,
                            values: r.values,
                        })
                        .collect(),
                }),
                ports: s
                    .ports
                    .into_iter()
                    .map(|p| PortSpec {
                        protocol: p.protocol.unwrap_or(Protocol::Tcp),
                        port: p.port,
                        end_port: p.end_port,
                    })
                    .collect(),
                ips: ips(&s.ips),
                icmp_echo,
                maglev_table_size,
                weights,
                origin: origin.clone(),
            };
            // status.ips: addresses Ironcore allocated; kept as preferred
            // allocations (honoured when in an eligible pool and free).
            let preferred = ips(&d.status.ips);
            if ctx.errors.len() != errors_before {
                return None;
            }
            let mut out: Vec<Object> = preferred
                .into_iter()
                .map(|address| {
                    Object::Allocation(Allocation {
                        load_balancer: name.clone(),
                        address,
                        pool: None,
                        origin: origin.clone(),
                    })
                })
                .collect();
            out.push(Object::LoadBalancer(lb));
            return Some(out);
        }
        Kind::LoadBalancerRouting => {
            let d: RoutingDoc = serde_yaml::from_value(value)
                .map_err(|e| ctx.serde_err(&label, e))
                .ok()?;
            Object::LoadBalancerRouting(LoadBalancerRoutingSpec {
                name,
                network: d.network_ref.map(|r| r.name),
                destinations: d
                    .destinations
                    .into_iter()
                    .map(|x| {
                        let _ = x.ip;
                        let (tn, tu) = x.target_ref.map(|t| (t.name, t.uid)).unwrap_or_default();
                        DestinationSpec {
                            name: if x.name.is_empty() { tn } else { x.name },
                            uid: if x.uid.is_empty() { tu } else { x.uid },
                            underlay: x.underlay,
                            mac: x.mac,
                            weight: x.weight,
                        }
                    })
                    .collect(),
                origin,
            })
        }
        Kind::Pool | Kind::Allocation => unreachable!("not a manifest kind"),
    };
    if ctx.errors.len() != errors_before {
        return None;
    }
    Some(vec![obj])
}

impl DesiredState {
    /// Parses Ironcore manifests and upserts every object (same kind and
    /// name: replaced). `status.ips` of a LoadBalancer become allocations
    /// (preferred addresses). All or nothing: on any error nothing changes.
    /// Does not resolve. Returns what each object did.
    pub fn apply_manifests_str(
        &mut self,
        text: &str,
        name: &str,
    ) -> Result<Vec<(Kind, String, Upserted)>, Errors> {
        let objects = parse_manifests(text, name)?;
        let mut out = Vec::new();
        for obj in objects {
            let (k, n) = (obj.kind(), obj.name().to_string());
            let what = self.upsert(obj);
            if k != Kind::Allocation {
                out.push((k, n, what));
            }
        }
        Ok(out)
    }

    /// Reads a manifest file and applies it (see
    /// [`DesiredState::apply_manifests_str`]).
    pub fn load_manifest_file(
        &mut self,
        path: &Path,
    ) -> Result<Vec<(Kind, String, Upserted)>, Errors> {
        let text = read_file(path)?;
        self.apply_manifests_str(&text, &path.display().to_string())
    }
}
