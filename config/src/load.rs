//! The configuration file's entry points: [`Config`] (settings and desired
//! state) loaded from TOML, optionally with Ironcore manifests on top,
//! validated and resolved once so that every error surfaces at load; and
//! its export.
//!
//! Layer 4 (entry points), with `change`: builds on the TOML reader
//! (`toml_doc`), the Ironcore reader (`manifest`), the settings and the
//! resolution below it.

use crate::error::{Errors, FieldPath};
use crate::model::Kind;
use crate::origin::{read_file, Origin};
use crate::resolve::Resolution;
use crate::settings::{
    ControlSection, DataplaneSection, FlowSection, LogSection, MetricsSection, Settings,
    SettingsInput, UnderlaySection,
};
use crate::state::DesiredState;
use crate::toml_doc::{state_keys, Parsed};
use serde::Serialize;
use std::path::{Path, PathBuf};

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
const SETTINGS_KEYS: [&str; 10] = [
    "dataplane",
    "underlay",
    "control",
    "flow",
    "bgp",
    "announce",
    "metrics",
    "log",
    "l2",
    "sync",
];

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
        let bgp: Option<Option<crate::bgp::BgpSection>> =
            parsed.optional_section("bgp", &mut errors);
        let announce: Option<crate::bgp::AnnounceSection> =
            parsed.section("announce", false, &mut errors);
        let metrics: Option<MetricsSection> = parsed.section("metrics", false, &mut errors);
        let log: Option<LogSection> = parsed.section("log", false, &mut errors);
        let l2: Option<Option<crate::l2::L2Section>> = parsed.optional_section("l2", &mut errors);
        let sync: Option<Option<crate::sync::SyncSection>> =
            parsed.optional_section("sync", &mut errors);
        let state = parsed.state(&mut errors);
        let (
            Some(dataplane),
            Some(underlay),
            Some(control),
            Some(flow),
            Some(bgp),
            Some(announce),
            Some(metrics),
            Some(log),
            Some(l2),
            Some(sync),
        ) = (
            dataplane, underlay, control, flow, bgp, announce, metrics, log, l2, sync,
        )
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
            metrics,
            log,
            l2,
            sync,
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
