//! Reading and writing the TOML file: [`Config`] (settings and desired
//! state), the state-only form the control plane persists, and export.
//!
//! Every section and every `[[...]]` entry is deserialized on its own, so
//! that one bad entry does not hide the problems of the others; every error
//! carries the file, line and column.

use crate::error::{Errors, FieldPath, LocatedError, Location};
use crate::origin::{toml_path_at, toml_span, Kind, Origin, Source, SourceKind};
use crate::resolve::Resolution;
use crate::settings::{
    ControlSection, DataplaneSection, FlowSection, Settings, SettingsInput, UnderlaySection,
};
use crate::state::DesiredState;
use crate::validate::Problem;
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded and fully validated configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The validated appliance settings.
    pub settings: Settings,
    /// The settings as written (kept for export).
    pub settings_input: SettingsInput,
    /// The desired state the file describes.
    pub state: DesiredState,
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
}

/// The settings keys of the TOML file.
const SETTINGS_KEYS: [&str; 7] = [
    "dataplane",
    "underlay",
    "control",
    "flow",
    "bgp",
    "announce",
    "l2",
];

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

pub(crate) fn read_file(path: &Path) -> Result<String, Errors> {
    std::fs::read_to_string(path).map_err(|e| {
        Errors::single(
            None,
            "",
            Problem::Io {
                path: path.display().to_string(),
                reason: e.to_string(),
            },
        )
    })
}

struct Parsed {
    source: Arc<Source>,
}

impl Parsed {
    fn parse(text: &str, name: &str) -> Result<Parsed, Errors> {
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
    fn check_keys(&self, allowed: &[&str], errors: &mut Errors) {
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

    fn section<T: DeserializeOwned>(
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

    fn state(&self, errors: &mut Errors) -> DesiredState {
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

fn state_keys() -> Vec<&'static str> {
    Kind::ALL.iter().map(|k| k.toml_key()).collect()
}

impl Config {
    /// Reads, parses and validates a configuration file, resolving the
    /// desired state once so that every error surfaces here.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, Errors> {
        let path = path.as_ref();
        let text = read_file(path)?;
        let mut c = Config::from_toml_str(&text, &path.display().to_string())?;
        c.path = Some(path.to_path_buf());
        Ok(c)
    }

    /// Parses and validates configuration text; `name` is the file name
    /// errors show.
    pub fn from_toml_str(text: &str, name: &str) -> Result<Config, Errors> {
        let (settings_input, settings, state) = Config::parse_unresolved(text, name)?;
        state.resolve(&settings.underlay)?;
        Ok(Config {
            settings,
            settings_input,
            state,
            path: None,
        })
    }

    /// Parses and validates the settings and the syntax of the state, but
    /// does not resolve the state (for callers that add manifests first).
    pub fn parse_unresolved(
        text: &str,
        name: &str,
    ) -> Result<(SettingsInput, Settings, DesiredState), Errors> {
        let parsed = Parsed::parse(text, name)?;
        let mut errors = Errors::default();
        let mut allowed: Vec<&str> = SETTINGS_KEYS.to_vec();
        allowed.extend(state_keys());
        parsed.check_keys(&allowed, &mut errors);
        let dataplane: Option<DataplaneSection> = parsed.section("dataplane", true, &mut errors);
        let underlay: Option<UnderlaySection> = parsed.section("underlay", true, &mut errors);
        let control: Option<ControlSection> = parsed.section("control", false, &mut errors);
        let flow: Option<FlowSection> = parsed.section("flow", false, &mut errors);
        let bgp: Option<Option<crate::bgp::BgpSection>> = match parsed.doc().get("bgp") {
            None => Some(None),
            Some(_) => parsed.section("bgp", true, &mut errors).map(Some),
        };
        let announce: Option<crate::bgp::AnnounceSection> =
            parsed.section("announce", false, &mut errors);
        let l2: Option<Option<crate::l2::L2Section>> = match parsed.doc().get("l2") {
            None => Some(None),
            Some(_) => parsed.section("l2", true, &mut errors).map(Some),
        };
        let state = parsed.state(&mut errors);
        let (
            Some(dataplane),
            Some(underlay),
            Some(control),
            Some(flow),
            Some(bgp),
            Some(announce),
            Some(l2),
        ) = (dataplane, underlay, control, flow, bgp, announce, l2)
        else {
            return Err(errors);
        };
        let input = SettingsInput {
            dataplane,
            underlay,
            control,
            flow,
            bgp,
            announce,
            l2,
        };
        let root = Origin::toml(&parsed.source, FieldPath::root(), Kind::Pool);
        match input.validate(&root) {
            Ok(settings) => errors.into_result((input, settings, state)),
            Err(e) => {
                errors.extend(e);
                Err(errors)
            }
        }
    }

    /// Loads a config file and then the given Ironcore manifest files on top
    /// of its state, and validates the whole (what `lbfwd check` does).
    pub fn load_with_manifests(
        path: impl AsRef<Path>,
        manifests: &[PathBuf],
    ) -> Result<Config, Errors> {
        let path = path.as_ref();
        let text = read_file(path)?;
        let (settings_input, settings, mut state) =
            Config::parse_unresolved(&text, &path.display().to_string())?;
        let mut errors = Errors::default();
        for m in manifests {
            if let Err(e) = state.load_manifest_file(m) {
                errors.extend(e);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        state.resolve(&settings.underlay)?;
        Ok(Config {
            settings,
            settings_input,
            state,
            path: Some(path.to_path_buf()),
        })
    }

    /// Resolves the desired state with these settings.
    pub fn resolve(&self) -> Result<Resolution, Errors> {
        self.state.resolve(&self.settings.underlay)
    }

    /// The whole configuration (settings and desired state, allocations
    /// included) as a TOML file that [`Config::from_toml_str`] accepts and
    /// that loads into an equal `Config`.
    pub fn to_toml(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            settings: &'a SettingsInput,
            #[serde(flatten)]
            state: &'a DesiredState,
        }
        toml::to_string(&Out {
            settings: &self.settings_input,
            state: &self.state,
        })
        .unwrap_or_else(|e| format!("# export failed: {e}\n"))
    }
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
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# export failed: {e}\n"))
    }
}
