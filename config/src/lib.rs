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
//!
//! # Layers
//!
//! A module uses modules of its own layer or of a lower one, never of a
//! higher one; `scripts/module-cycles.py config/src` (run by
//! `scripts/test.sh`) checks that no two modules import each other, even
//! through others.
//!
//! | layer | modules |
//! |-------|---------|
//! | 0 values | [`model`]: MACs, protocols, ports, families, kinds, encapsulations; the resolved model; [`health`]: `health_check` as written, its checks, defaults and the validated check; `toml_writer`: any serializable value as TOML text (the state file) |
//! | 1 problems and locations | [`problem`] (what can be wrong), [`error`] (field paths, locations, located errors), [`span`] (a path's place in TOML or YAML text), [`origin`] (where an object came from, source files) |
//! | 2 input | [`state`] (the desired state as written), [`settings`] (appliance settings and their checks), [`bgp`] (`[bgp]`, `[announce]`, the pools' `bgp` keys), [`l2`] (`[l2]`), [`flow_persist`] (`[flow] persist`), [`flow_guard`] (the `[flow]` new-flow guard keys), [`sync`] (`[sync]`), `toml_doc` (the TOML reader), [`manifest`] (the Ironcore reader) |
//! | 3 resolution | [`selector`] (label selection), [`pool`] (address ranges, lowest free), [`resolve`] (checks, allocation, routing derivation) |
//! | 4 entry points | [`load`] ([`Config`]), [`change`] ([`DesiredState::apply`]) |

pub mod bgp;
pub mod change;
pub mod error;
pub mod flow_guard;
pub mod flow_persist;
pub mod health;
pub mod l2;
pub mod load;
pub mod manifest;
pub mod model;
pub mod origin;
pub mod pool;
pub mod problem;
pub mod resolve;
pub mod selector;
pub mod settings;
pub mod span;
pub mod state;
pub mod sync;
mod toml_doc;
mod toml_writer;

pub use change::{Change, ChangeSummary};
pub use error::{Errors, FieldPath, LocatedError, Location};
pub use health::{AllUnhealthy, HealthCheck, HealthCheckKind, HealthCheckSpec};
pub use load::Config;
pub use model::*;
pub use origin::Origin;
pub use problem::Problem;
pub use resolve::Resolution;
pub use settings::{Settings, SettingsInput, Underlay};
pub use state::*;
