//! lbfwd's model: the appliance settings and the desired state (pools,
//! networks, network interfaces, load balancers, routings), read from TOML and
//! from Ironcore YAML manifests, validated, and resolved into what the
//! dataplane needs: each load balancer's addresses, ports and destinations.
//!
//! Entry points:
//!
//! - [`Config::load`] / [`Config::from_toml_str`]: the TOML file, fully
//!   validated (settings and state); [`Config::load_with_manifests`] adds
//!   Ironcore YAML manifests first (what `lbfwd check -f` does).
//! - [`DesiredState::resolve`]: validate the state and derive [`Resolved`]
//!   (addresses allocated, destinations derived) plus the allocations to
//!   persist.
//! - [`DesiredState::apply`]: all-or-nothing changes for the control plane,
//!   with a [`ChangeSummary`].
//! - [`DesiredState::to_toml`] / [`Config::to_toml`]: export that loads back
//!   into an equal state.
//!
//! Every error is an [`Errors`] list of [`LocatedError`]s
//! (`FILE:LINE:COL: PATH: message`).
#![deny(unsafe_code)]

pub mod bgp;
pub mod change;
pub mod error;
pub mod l2;
pub mod load;
pub mod manifest;
pub mod model;
pub mod origin;
pub mod pool;
pub mod resolve;
pub mod selector;
pub mod settings;
pub mod state;
pub mod validate;

pub use change::{Change, ChangeSummary};
pub use error::{Errors, FieldPath, LocatedError, Location};
pub use load::Config;
pub use model::*;
pub use origin::{Kind, Origin};
pub use resolve::Resolution;
pub use settings::{Settings, SettingsInput, Underlay};
pub use state::*;
pub use validate::Problem;
