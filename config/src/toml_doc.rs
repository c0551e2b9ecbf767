//! The TOML reader: a document parsed with spans, each settings section
//! and each `[[...]]` entry deserialized on its own (one bad entry does not
//! hide the problems of the others), every error located; and the state-only
//! TOML form the control plane persists (`state.toml`).
//!
//! Layer 2 (input): the TOML reader, beside the Ironcore reader `manifest`;
//! uses the problems and locations below it and fills the desired state's
//! and the settings' types; the entry point [`Config`](crate::Config)
//! builds on it.

use crate::error::{Errors, FieldPath, LocatedError, Location};
use crate::model::Kind;
use crate::origin::{read_file, Origin, Source, SourceKind};
use crate::problem::Problem;
use crate::span::{toml_path_at, toml_span};
use crate::state::DesiredState;
use crate::toml_writer::write_array_of_tables;
use serde::de::{DeserializeOwned, IntoDeserializer};
use std::path::Path;
use std::sync::Arc;

/// Objects that remember where they came from.
pub(crate) trait HasOrigin {
    fn set_origin(&mut self, origin: Origin);
}

macro_rules! has_origin {
    ($($t:ty),*) => {$(
        impl HasOrigin for $t {
            fn set_origin(&mut self, origin: Origin) {
                self.origin = origin;
            }
        }
    )*};
}
has_origin!(
    crate::state::PoolSpec,
    crate::state::NetworkSpec,
    crate::state::NetworkInterfaceSpec,
    crate::state::LoadBalancerSpec,
    crate::state::LoadBalancerRoutingSpec,
    crate::state::Allocation
);

/// A parsed TOML document and the source its objects' origins point into.
pub(crate) struct Parsed {
    pub(crate) source: Arc<Source>,
}

impl Parsed {
    pub(crate) fn parse(text: &str, name: &str) -> Result<Parsed, Errors> {
        match toml_edit::ImDocument::parse(text.to_string()) {
            Ok(doc) => Ok(Parsed {
                source: Arc::new(Source {
                    name: name.to_string(),
                    kind: SourceKind::Toml(Box::new(doc)),
                }),
            }),
            Err(e) => {
                let location = e
                    .span()
                    .map(|s| Location::at_offset(name, text, s.start))
                    .or_else(|| {
                        Some(Location {
                            file: name.to_string(),
                            ..Location::default()
                        })
                    });
                let msg = e
                    .message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(Errors::single(location, "", Problem::TomlSyntax(msg)))
            }
        }
    }

    fn doc(&self) -> &toml_edit::ImDocument<String> {
        match &self.source.kind {
            SourceKind::Toml(d) => d,
            _ => unreachable!("Parsed always holds TOML"),
        }
    }

    fn locate(&self, path: &FieldPath) -> Location {
        let doc = self.doc();
        match toml_span(doc.as_item(), path) {
            Some(s) => Location::at_offset(&self.source.name, doc.raw(), s.start),
            None => Location {
                file: self.source.name.clone(),
                line: 1,
                column: 1,
            },
        }
    }

    fn error(&self, path: &FieldPath, problem: Problem) -> LocatedError {
        LocatedError {
            location: Some(self.locate(path)),
            path: path.to_string(),
            problem,
        }
    }

    /// Rejects top-level keys outside `allowed`.
    pub(crate) fn check_keys(&self, allowed: &[&str], errors: &mut Errors) {
        for (key, _) in self.doc().as_table().iter() {
            if !allowed.contains(&key) {
                let path = FieldPath::root().key(key);
                errors.push(self.error(
                    &path,
                    Problem::Invalid(format!(
                        "unknown key `{key}`, expected one of {}",
                        allowed.join(", ")
                    )),
                ));
            }
        }
    }

    fn de<T: DeserializeOwned>(
        &self,
        item: &toml_edit::Item,
        path: &FieldPath,
        errors: &mut Errors,
    ) -> Option<T> {
        let value = match item.clone().into_value() {
            Ok(v) => v,
            Err(_) => {
                errors.push(self.error(path, Problem::Invalid("empty value".into())));
                return None;
            }
        };
        match T::deserialize(value.into_deserializer()) {
            Ok(v) => Some(v),
            Err(e) => {
                let doc = self.doc();
                let (location, path) = match e.span() {
                    Some(s) if s.end > 0 => (
                        Location::at_offset(&self.source.name, doc.raw(), s.start),
                        path.join(&toml_path_at(item, s.start)),
                    ),
                    _ => (self.locate(path), path.clone()),
                };
                errors.push(LocatedError {
                    location: Some(location),
                    path: path.to_string(),
                    problem: Problem::Invalid(e.message().trim().to_string()),
                });
                None
            }
        }
    }

    pub(crate) fn section<T: DeserializeOwned>(
        &self,
        key: &str,
        required: bool,
        errors: &mut Errors,
    ) -> Option<T> {
        let path = FieldPath::root().key(key);
        match self.doc().get(key) {
            Some(item) => self.de(item, &path, errors),
            None if required => {
                errors.push(LocatedError {
                    location: Some(Location {
                        file: self.source.name.clone(),
                        line: 1,
                        column: 1,
                    }),
                    path: key.to_string(),
                    problem: Problem::Invalid(format!("missing section [{key}]")),
                });
                None
            }
            None => self.de(
                &toml_edit::Item::Value(toml_edit::InlineTable::new().into()),
                &path,
                errors,
            ),
        }
    }

    /// A section that may be absent as a whole (`[bgp]`): `Some(None)` when
    /// it is, `None` when it is there but invalid (the error is in `errors`).
    pub(crate) fn optional_section<T: DeserializeOwned>(
        &self,
        key: &str,
        errors: &mut Errors,
    ) -> Option<Option<T>> {
        match self.doc().get(key) {
            None => Some(None),
            Some(item) => self.de(item, &FieldPath::root().key(key), errors).map(Some),
        }
    }

    fn array<T: DeserializeOwned + HasOrigin>(&self, kind: Kind, errors: &mut Errors) -> Vec<T> {
        let key = kind.toml_key();
        let base = FieldPath::root().key(key);
        let mut out = Vec::new();
        let Some(item) = self.doc().get(key) else {
            return out;
        };
        let elements: Vec<toml_edit::Item> = match item {
            toml_edit::Item::ArrayOfTables(a) => a
                .iter()
                .map(|t| toml_edit::Item::Table(t.clone()))
                .collect(),
            toml_edit::Item::Value(toml_edit::Value::Array(a)) => a
                .iter()
                .map(|v| toml_edit::Item::Value(v.clone()))
                .collect(),
            _ => {
                errors.push(self.error(
                    &base,
                    Problem::Invalid(format!("`{key}` must be an array of tables ([[{key}]])")),
                ));
                return out;
            }
        };
        for (i, element) in elements.iter().enumerate() {
            let path = base.index(i);
            if let Some(mut v) = self.de::<T>(element, &path, errors) {
                v.set_origin(Origin::toml(&self.source, path, kind));
                out.push(v);
            }
        }
        out
    }

    pub(crate) fn state(&self, errors: &mut Errors) -> DesiredState {
        DesiredState {
            pools: self.array(Kind::Pool, errors),
            networks: self.array(Kind::Network, errors),
            network_interfaces: self.array(Kind::NetworkInterface, errors),
            load_balancers: self.array(Kind::LoadBalancer, errors),
            load_balancer_routings: self.array(Kind::LoadBalancerRouting, errors),
            allocations: self.array(Kind::Allocation, errors),
        }
    }
}

/// The top-level keys of the desired state (`pool`, `network`, ...).
pub(crate) fn state_keys() -> Vec<&'static str> {
    Kind::ALL.iter().map(|k| k.toml_key()).collect()
}

impl DesiredState {
    /// Parses a state-only TOML text (what [`DesiredState::to_toml`] writes:
    /// `[[pool]]`, `[[network]]`, ..., `[[allocation]]`, nothing else).
    /// Checks syntax and field names only; call
    /// [`resolve`](DesiredState::resolve) to validate.
    pub fn from_toml_str(text: &str, name: &str) -> Result<DesiredState, Errors> {
        let parsed = Parsed::parse(text, name)?;
        let mut errors = Errors::default();
        parsed.check_keys(&state_keys(), &mut errors);
        let state = parsed.state(&mut errors);
        errors.into_result(state)
    }

    /// Reads a state-only TOML file (see [`DesiredState::from_toml_str`]).
    pub fn load(path: impl AsRef<Path>) -> Result<DesiredState, Errors> {
        let path = path.as_ref();
        let text = read_file(path)?;
        DesiredState::from_toml_str(&text, &path.display().to_string())
    }

    /// The state as TOML; loads back into an equal state.
    ///
    /// Written by [`crate::toml_writer`] straight into the text, one
    /// `[[kind]]` table per object with its nested values inline: the
    /// `toml` serializer took seconds for a state of 110,000 objects.
    pub fn to_toml(&self) -> String {
        let mut out = String::with_capacity(self.toml_size_hint());
        let written = write_array_of_tables(&mut out, "pool", &self.pools)
            .and_then(|()| write_array_of_tables(&mut out, "network", &self.networks))
            .and_then(|()| {
                write_array_of_tables(&mut out, "network_interface", &self.network_interfaces)
            })
            .and_then(|()| write_array_of_tables(&mut out, "load_balancer", &self.load_balancers))
            .and_then(|()| {
                write_array_of_tables(
                    &mut out,
                    "load_balancer_routing",
                    &self.load_balancer_routings,
                )
            })
            .and_then(|()| write_array_of_tables(&mut out, "allocation", &self.allocations));
        match written {
            Ok(()) => out,
            Err(e) => format!("# export failed: {e}\n"),
        }
    }

    /// A guess at the length of [`DesiredState::to_toml`]'s text, so that
    /// the string grows once or twice, not twenty times.
    fn toml_size_hint(&self) -> usize {
        200 * (self.network_interfaces.len() + self.load_balancers.len())
            + 100
                * (self.pools.len()
                    + self.networks.len()
                    + self.load_balancer_routings.len()
                    + self.allocations.len())
    }
}
