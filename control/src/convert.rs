//! Between the wire types and the `config` crate's model: what the daemon's
//! [`Handler`](crate::Handler) needs to stay thin glue.
//!
//! The model's rules live in `config` ([`DesiredState::apply`] validates and
//! resolves a batch of [`Change`]s all or nothing); this module only
//! translates:
//!
//! - [`changes_for`]: a change [`Request`] into the [`Change`]s to apply
//!   (JSON objects are deserialized into the config crate's spec types, text
//!   documents passed through with their source for `FILE:LINE:COL` errors,
//!   `only_kind` checked).
//! - [`ChangeSummary::from_config`]: the config crate's summary into the wire
//!   one.
//! - [`ApiError::from_config_errors`]: located errors into `validation_failed`
//!   (every error with its field path), or `not_found` where the request
//!   named something that does not exist.
//! - [`Object::from_config`], [`RoutingStatus::from_resolved`]: objects and
//!   derived state for `get` and `list`.
//!
//! [`DesiredState::apply`]: lbfwd_config::DesiredState::apply

use lbfwd_config::{self as config, Change, Errors, Problem, ResolvedLoadBalancer};
use serde::Deserialize;
use serde_json::Value;

use crate::protocol::{
    AddressChange, ApiError, ApplyDocuments, ApplyObjects, ChangeSummary, DocumentFormat,
    ErrorCode, Kind, Object, ObjectRef, ObjectStatus, Request, RoutingChange, RoutingSource,
    RoutingStatus,
};

impl From<Kind> for config::Kind {
    fn from(k: Kind) -> config::Kind {
        match k {
            Kind::LoadBalancer => config::Kind::LoadBalancer,
            Kind::NetworkInterface => config::Kind::NetworkInterface,
            Kind::Network => config::Kind::Network,
            Kind::Pool => config::Kind::Pool,
            Kind::LoadBalancerRouting => config::Kind::LoadBalancerRouting,
        }
    }
}

impl Kind {
    /// The wire kind of a config kind; `None` for allocations, which are not
    /// addressed through the API (they show in pools and load balancers).
    pub fn from_config(k: config::Kind) -> Option<Kind> {
        Some(match k {
            config::Kind::LoadBalancer => Kind::LoadBalancer,
            config::Kind::NetworkInterface => Kind::NetworkInterface,
            config::Kind::Network => Kind::Network,
            config::Kind::Pool => Kind::Pool,
            config::Kind::LoadBalancerRouting => Kind::LoadBalancerRouting,
            config::Kind::Allocation => return None,
        })
    }

    /// The kind whose TOML array is `key` (`load_balancer`, ...).
    pub fn from_toml_key(key: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == key)
    }

    /// The kind of an Ironcore manifest `kind` (`LoadBalancer`, ...).
    pub fn from_ironcore_kind(kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.ironcore_kind() == Some(kind))
    }
}

/// The [`Change`]s a change request asks for, in order; `None` for a
/// request that changes nothing in the desired state (`status`, `stats`,
/// `list`, `get`, `export`) or that the handler does itself (`reload`).
///
/// Errors (`validation_failed`, every problem with its path): a JSON object
/// that does not fit the kind's spec type, a document with objects of
/// another kind than `only_kind`.
pub fn changes_for(request: &Request) -> Option<Result<Vec<Change>, ApiError>> {
    Some(match request {
        Request::Status
        | Request::Stats
        | Request::List(_)
        | Request::Get(_)
        | Request::Export
        | Request::Reload
        | Request::Health
        | Request::Announce
        | Request::AnnounceSet(_) => return None,
        Request::Apply(a) => upserts(a),
        Request::Delete(r) => Ok(vec![Change::Delete {
            kind: r.kind.into(),
            name: r.name.clone(),
        }]),
        Request::ApplyDocuments(d) => documents(d),
        Request::LabelSet(l) => Ok(vec![Change::SetLabels {
            interface: l.interface.clone(),
            labels: l.labels.clone(),
        }]),
        Request::LabelRemove(l) => Ok(vec![Change::RemoveLabels {
            interface: l.interface.clone(),
            keys: l.keys.clone(),
        }]),
        Request::Weight(w) => Ok(vec![Change::SetWeight {
            load_balancer: w.load_balancer.clone(),
            destination: w.destination.clone(),
            weight: w.weight,
        }]),
        Request::Drain(d) => Ok(vec![Change::SetWeight {
            load_balancer: d.load_balancer.clone(),
            destination: d.destination.clone(),
            weight: 0,
        }]),
    })
}

/// Deserializes the JSON objects of an `apply` into upserts.
fn upserts(a: &ApplyObjects) -> Result<Vec<Change>, ApiError> {
    fn spec<T: for<'de> Deserialize<'de>>(v: &Value) -> Result<T, serde_json::Error> {
        T::deserialize(v)
    }
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    if a.objects.is_empty() {
        errors.push(format!("{}: no objects to apply", a.kind));
    }
    for (i, v) in a.objects.iter().enumerate() {
        let path = match v.get("name").and_then(Value::as_str) {
            Some(n) => format!("{}[{n}]", a.kind),
            None => format!("{}[{i}]", a.kind),
        };
        let object = match a.kind {
            Kind::Pool => spec(v).map(config::Object::Pool),
            Kind::Network => spec(v).map(config::Object::Network),
            Kind::NetworkInterface => spec(v).map(config::Object::NetworkInterface),
            Kind::LoadBalancer => spec(v).map(config::Object::LoadBalancer),
            Kind::LoadBalancerRouting => spec(v).map(config::Object::LoadBalancerRouting),
        };
        match object {
            Ok(o) => changes.push(Change::Upsert(o)),
            Err(e) => errors.push(format!("{path}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Passes text documents through, after checking `only_kind`.
fn documents(d: &ApplyDocuments) -> Result<Vec<Change>, ApiError> {
    if d.documents.is_empty() {
        return Err(ApiError::validation(vec![
            "no documents to apply".to_owned()
        ]));
    }
    let mut errors = Vec::new();
    let mut changes = Vec::new();
    for doc in &d.documents {
        let origin = doc.source.clone().unwrap_or_else(|| "<request>".to_owned());
        if let Some(only) = d.only_kind {
            for other in kinds_in(doc.format, &doc.text) {
                if other != only {
                    errors.push(format!(
                        "{origin}: contains {} objects, but this command applies only {} objects (use `lbctl apply -f` for mixed files)",
                        other.human(),
                        only.human()
                    ));
                }
            }
        }
        changes.push(match doc.format {
            DocumentFormat::Toml => Change::ApplyToml {
                text: doc.text.clone(),
                origin,
            },
            DocumentFormat::Yaml => Change::ApplyManifests {
                text: doc.text.clone(),
                origin,
            },
        });
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// The kinds a document contains, as far as its syntax can be read (syntax
/// errors are left to the config crate, which reports them with their
/// location). Unknown kinds are left out for the same reason.
fn kinds_in(format: DocumentFormat, text: &str) -> Vec<Kind> {
    let mut kinds = Vec::new();
    match format {
        DocumentFormat::Toml => {
            if let Ok(table) = text.parse::<toml::Table>() {
                kinds.extend(table.keys().filter_map(|k| Kind::from_toml_key(k)));
            }
        }
        DocumentFormat::Yaml => {
            for doc in serde_yaml::Deserializer::from_str(text) {
                let Ok(value) = serde_yaml::Value::deserialize(doc) else {
                    break;
                };
                if let Some(k) = value
                    .get("kind")
                    .and_then(serde_yaml::Value::as_str)
                    .and_then(Kind::from_ironcore_kind)
                {
                    kinds.push(k);
                }
            }
        }
    }
    kinds.sort();
    kinds.dedup();
    kinds
}

impl ChangeSummary {
    /// The wire summary of a config [`ChangeSummary`](config::ChangeSummary).
    /// With the resolved state from before the change, `rerouted` says which
    /// destinations joined, left or changed (else only which load balancers
    /// were re-routed). `table_version` is the version now published.
    pub fn from_config(
        s: &config::ChangeSummary,
        before: Option<&config::Resolved>,
        table_version: u64,
    ) -> ChangeSummary {
        let refs = |v: &[(String, String)]| -> Vec<ObjectRef> {
            v.iter()
                .filter_map(|(k, n)| {
                    Some(ObjectRef {
                        kind: Kind::from_toml_key(k)?,
                        name: n.clone(),
                    })
                })
                .collect()
        };
        let addrs = |v: &[config::change::AddressChange]| -> Vec<AddressChange> {
            v.iter()
                .map(|a| AddressChange {
                    load_balancer: a.load_balancer.clone(),
                    addr: a.address,
                    pool: a.pool.clone(),
                })
                .collect()
        };
        let rerouted = match (before, &s.resolution) {
            (Some(old), Some(new)) => ChangeSummary::derived_between(old, &new.resolved).rerouted,
            _ => s
                .rerouted
                .iter()
                .map(|lb| RoutingChange {
                    load_balancer: lb.clone(),
                    ..RoutingChange::default()
                })
                .collect(),
        };
        ChangeSummary {
            table_version,
            created: refs(&s.created),
            updated: refs(&s.replaced),
            deleted: refs(&s.deleted),
            rerouted,
            allocated: addrs(&s.allocated),
            released: addrs(&s.released),
            warnings: s.warnings.clone(),
        }
    }
}

impl ApiError {
    /// The answer to a change the config crate refused: `not_found` when a
    /// delete, label, weight or drain request named something that does not
    /// exist (one error, from no file), else `validation_failed` with every
    /// error (`FILE:LINE:COL: PATH: message`).
    pub fn from_config_errors(request: &Request, errors: &Errors) -> ApiError {
        let names_something = matches!(
            request,
            Request::Delete(_)
                | Request::LabelSet(_)
                | Request::LabelRemove(_)
                | Request::Weight(_)
                | Request::Drain(_)
        );
        if let [only] = errors.0.as_slice() {
            let unknown = matches!(
                only.problem,
                Problem::UnknownLoadBalancer(_)
                    | Problem::UnknownInterface(_)
                    | Problem::UnknownNetwork(_)
                    | Problem::UnknownPool(_)
                    | Problem::NoRouting(_)
            ) || (matches!(request, Request::Delete(_))
                && matches!(only.problem, Problem::Invalid(_)));
            if names_something && only.location.is_none() && unknown {
                return ApiError::new(ErrorCode::NotFound, only.to_string());
            }
        }
        ApiError::validation(errors.0.iter().map(ToString::to_string).collect())
    }
}

impl Object {
    /// A config object as the wire carries it (the spec with its TOML field
    /// names), without derived status; `None` for an allocation.
    pub fn from_config(o: &config::Object) -> Option<Object> {
        let spec = match o {
            config::Object::Pool(s) => serde_json::to_value(s),
            config::Object::Network(s) => serde_json::to_value(s),
            config::Object::NetworkInterface(s) => serde_json::to_value(s),
            config::Object::LoadBalancer(s) => serde_json::to_value(s),
            config::Object::LoadBalancerRouting(s) => serde_json::to_value(s),
            config::Object::Allocation(_) => return None,
        };
        Some(Object {
            kind: Kind::from_config(o.kind())?,
            name: o.name().to_owned(),
            // The spec types serialize to JSON without fail (string keys,
            // no non-finite floats); Null would only hide the spec.
            spec: spec.unwrap_or(Value::Null),
            status: None,
        })
    }

    /// The same object with derived status.
    pub fn with_status(mut self, status: ObjectStatus) -> Object {
        self.status = Some(status);
        self
    }
}

impl RoutingStatus {
    /// The routing lbfwd uses for a resolved load balancer.
    pub fn from_resolved(lb: &ResolvedLoadBalancer, source: RoutingSource) -> RoutingStatus {
        RoutingStatus {
            load_balancer: lb.name.clone(),
            source,
            network: lb.network.clone(),
            destinations: lb.destinations.iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ApplyDocument, Drain, LabelSet, ObjectRef, SetWeight};
    use config::{DesiredState, Underlay};
    use serde_json::json;

    fn underlay() -> Underlay {
        let cfg = config::Config::from_toml_str(BASE, "base.toml").unwrap();
        cfg.settings.underlay.clone()
    }

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
addresses = ["203.0.113.0/28"]

[[network]]
name = "net"
vni = 100

[[network_interface]]
name = "nic-a"
network = "net"
labels = { app = "web" }
ips = ["10.1.0.5"]
underlay = "10.0.3.11"
mac = "02:00:00:00:03:11"

[[network_interface]]
name = "nic-b"
network = "net"
labels = { app = "db" }
ips = ["10.1.0.6"]
underlay = "10.0.3.12"
mac = "02:00:00:00:03:12"
"#;

    fn state() -> DesiredState {
        config::Config::from_toml_str(BASE, "base.toml")
            .unwrap()
            .state
    }

    fn apply(state: &mut DesiredState, req: &Request) -> Result<ChangeSummary, ApiError> {
        let changes = changes_for(req).expect("a change request")?;
        let before = state.resolve(&underlay()).ok().map(|r| r.resolved);
        state
            .apply(&changes, &underlay())
            .map(|s| ChangeSummary::from_config(&s, before.as_ref(), 7))
            .map_err(|e| ApiError::from_config_errors(req, &e))
    }

    #[test]
    fn json_apply_then_label_weight_drain_delete_through_config() {
        let mut st = state();
        let s = apply(
            &mut st,
            &Request::Apply(ApplyObjects {
                kind: Kind::LoadBalancer,
                objects: vec![json!({
                    "name": "web", "type": "Public", "ip_families": ["IPv4"], "network": "net",
                    "network_interface_selector": {"match_labels": {"app": "web"}},
                    "ports": [{"protocol": "TCP", "port": 80}]
                })],
            }),
        )
        .unwrap();
        assert_eq!(
            s.created,
            [ObjectRef {
                kind: Kind::LoadBalancer,
                name: "web".into()
            }]
        );
        assert_eq!(s.allocated.len(), 1);
        assert_eq!(s.allocated[0].pool.as_deref(), Some("public"));
        assert_eq!(s.table_version, 7);

        // Labelling nic-b into the selector re-routes `web`.
        let s = apply(
            &mut st,
            &Request::LabelSet(LabelSet {
                interface: "nic-b".into(),
                labels: [("app".to_owned(), "web".to_owned())].into(),
            }),
        )
        .unwrap();
        assert_eq!(s.rerouted.len(), 1);
        assert_eq!(s.rerouted[0].load_balancer, "web");
        assert_eq!(s.rerouted[0].added, ["nic-b"]);

        let s = apply(
            &mut st,
            &Request::Drain(Drain {
                load_balancer: "web".into(),
                destination: "nic-a".into(),
            }),
        )
        .unwrap();
        assert_eq!(s.rerouted[0].changed, ["nic-a"]);

        let err = apply(
            &mut st,
            &Request::Weight(SetWeight {
                load_balancer: "web".into(),
                destination: "ghost".into(),
                weight: 1,
            }),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound, "{err}");

        let err = apply(
            &mut st,
            &Request::Delete(ObjectRef {
                kind: Kind::LoadBalancer,
                name: "ghost".into(),
            }),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound, "{err}");
        assert!(err.message.contains("ghost"), "{err}");

        let s = apply(
            &mut st,
            &Request::Delete(ObjectRef {
                kind: Kind::LoadBalancer,
                name: "web".into(),
            }),
        )
        .unwrap();
        assert_eq!(s.released.len(), 1);
    }

    #[test]
    fn bad_json_objects_and_invalid_models_give_every_error_with_a_path() {
        let mut st = state();
        let err = apply(
            &mut st,
            &Request::Apply(ApplyObjects {
                kind: Kind::LoadBalancer,
                objects: vec![
                    json!({"name": "a", "type": "Public", "network": "net", "bogus": 1}),
                    json!({"type": "Sideways"}),
                ],
            }),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationFailed);
        assert_eq!(err.details.len(), 2, "{err}");
        assert!(
            err.details[0].starts_with("load_balancer[a]: unknown field `bogus`"),
            "{err}"
        );
        assert!(err.details[1].starts_with("load_balancer[1]: "), "{err}");

        // Well-formed but invalid against the model: the config crate's
        // errors, with their paths.
        let err = apply(
            &mut st,
            &Request::Apply(ApplyObjects {
                kind: Kind::LoadBalancer,
                objects: vec![json!({"name": "a", "type": "Public", "network": "nope"})],
            }),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationFailed, "{err}");
        assert!(err.details.iter().any(|d| d.contains("nope")), "{err}");
    }

    #[test]
    fn documents_keep_their_source_and_only_kind_is_enforced() {
        let mut st = state();
        let toml_doc = ApplyDocument {
            format: DocumentFormat::Toml,
            source: Some("lb.toml".into()),
            text: "[[load_balancer]]\nname = \"web\"\ntype = \"Public\"\nip_families = [\"IPv4\"]\nnetwork = \"net\"\nnetwork_interface_selector = { match_labels = { app = \"web\" } }\n".into(),
        };
        let s = apply(
            &mut st,
            &Request::ApplyDocuments(ApplyDocuments {
                documents: vec![toml_doc.clone()],
                only_kind: Some(Kind::LoadBalancer),
            }),
        )
        .unwrap();
        assert_eq!(s.created.len(), 1);

        let err = changes_for(&Request::ApplyDocuments(ApplyDocuments {
            documents: vec![toml_doc],
            only_kind: Some(Kind::Network),
        }))
        .unwrap()
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationFailed);
        assert!(
            err.details[0].starts_with("lb.toml: contains load balancer objects"),
            "{err}"
        );

        let yaml = ApplyDocument {
            format: DocumentFormat::Yaml,
            source: Some("m.yaml".into()),
            text: "apiVersion: networking.ironcore.dev/v1alpha1\nkind: Network\nmetadata:\n  name: n\n---\napiVersion: networking.ironcore.dev/v1alpha1\nkind: LoadBalancer\nmetadata:\n  name: l\n".into(),
        };
        assert_eq!(
            kinds_in(DocumentFormat::Yaml, &yaml.text),
            [Kind::LoadBalancer, Kind::Network]
        );
        let err = changes_for(&Request::ApplyDocuments(ApplyDocuments {
            documents: vec![yaml],
            only_kind: Some(Kind::LoadBalancer),
        }))
        .unwrap()
        .unwrap_err();
        assert!(err.details[0].contains("network objects"), "{err}");

        // A syntax error is the config crate's to report, with its location.
        let err = apply(
            &mut st,
            &Request::ApplyDocuments(ApplyDocuments {
                documents: vec![ApplyDocument {
                    format: DocumentFormat::Toml,
                    source: Some("broken.toml".into()),
                    text: "[[load_balancer]\n".into(),
                }],
                only_kind: Some(Kind::LoadBalancer),
            }),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationFailed);
        assert!(err.details[0].starts_with("broken.toml:1"), "{err}");
    }

    #[test]
    fn read_only_requests_have_no_changes() {
        for r in [
            Request::Status,
            Request::Stats,
            Request::Export,
            Request::Reload,
        ] {
            assert!(changes_for(&r).is_none());
        }
    }

    #[test]
    fn objects_and_kinds_convert() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_config(k.into()), Some(k));
            assert_eq!(Kind::from_toml_key(k.as_str()), Some(k));
            assert_eq!(config::Kind::from(k).toml_key(), k.as_str());
        }
        assert_eq!(Kind::from_config(config::Kind::Allocation), None);
        let st = state();
        let objs: Vec<Object> = st
            .objects()
            .iter()
            .filter_map(Object::from_config)
            .collect();
        let nic = objs.iter().find(|o| o.name == "nic-a").unwrap();
        assert_eq!(nic.kind, Kind::NetworkInterface);
        assert_eq!(nic.spec["labels"]["app"], "web");
        assert_eq!(nic.spec["underlay"], "10.0.3.11");
    }
}
