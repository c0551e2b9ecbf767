//! Changes to the desired state for the control plane: each batch is applied
//! to a copy, the whole result is validated and resolved, and only then does
//! it replace the current state (all or nothing). The summary says what
//! changed: objects created, replaced and deleted, load balancers re-routed,
//! addresses allocated and released.
//!
//! Layer 4 (entry points), with `load`: the control plane's way in.

use crate::error::{Errors, LocatedError};
use crate::model::{Kind, Resolved};
use crate::problem::Problem;
use crate::resolve::Resolution;
use crate::settings::Underlay;
use crate::state::{DesiredState, Object, Upserted};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One change to the desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Upsert every object of a state-only TOML fragment
    /// (`[[load_balancer]]` ...); `origin` names it in errors.
    ApplyToml {
        /// The fragment.
        text: String,
        /// Its name in error messages (a file name, `<request>`).
        origin: String,
    },
    /// Upsert every object of Ironcore YAML manifests.
    ApplyManifests {
        /// The manifests.
        text: String,
        /// Its name in error messages.
        origin: String,
    },
    /// Upsert one object.
    Upsert(Object),
    /// Delete one object by kind and name. Deleting a network interface also
    /// drops the weights that name it.
    Delete {
        /// Its kind.
        kind: Kind,
        /// Its name.
        name: String,
    },
    /// Set (add or overwrite) labels of a network interface.
    SetLabels {
        /// The interface.
        interface: String,
        /// The labels.
        labels: BTreeMap<String, String>,
    },
    /// Remove labels (by key) from a network interface; absent keys are
    /// ignored.
    RemoveLabels {
        /// The interface.
        interface: String,
        /// The keys.
        keys: Vec<String>,
    },
    /// Set a destination's weight (0 drains it). For a load balancer with a
    /// selector this sets `weights[destination]`; for a routing-fed one the
    /// routing destination's `weight`. `destination` is a name or uid.
    SetWeight {
        /// The load balancer.
        load_balancer: String,
        /// The destination.
        destination: String,
        /// The weight.
        weight: u32,
    },
}

/// One address that was given to or taken from a load balancer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AddressChange {
    /// The load balancer.
    pub load_balancer: String,
    /// The address.
    pub address: IpAddr,
    /// Its pool, if any.
    pub pool: Option<String>,
}

/// What a successful [`DesiredState::apply`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSummary {
    /// Objects added, as (kind, name).
    pub created: Vec<(String, String)>,
    /// Objects replaced by a different version.
    pub replaced: Vec<(String, String)>,
    /// Objects deleted.
    pub deleted: Vec<(String, String)>,
    /// Load balancers (existing before and after) whose destinations or
    /// weights changed.
    pub rerouted: Vec<String>,
    /// Load balancers whose resolved form changed in any way, including
    /// added and removed ones: the tables to rebuild.
    pub changed_load_balancers: Vec<String>,
    /// Addresses newly held.
    pub allocated: Vec<AddressChange>,
    /// Addresses no longer held.
    pub released: Vec<AddressChange>,
    /// Warnings of the new state, one per line.
    pub warnings: Vec<String>,
    /// The new resolution.
    #[serde(skip)]
    pub resolution: Option<Resolution>,
}

fn not_found(what: &str, problem: Problem) -> Errors {
    Errors(vec![LocatedError {
        location: None,
        path: what.to_string(),
        problem,
    }])
}

fn record(summary: &mut ChangeSummary, kind: Kind, name: &str, what: Upserted) {
    let entry = (kind.toml_key().to_string(), name.to_string());
    match what {
        Upserted::Created => summary.created.push(entry),
        Upserted::Replaced => summary.replaced.push(entry),
        Upserted::Unchanged => {}
    }
}

impl DesiredState {
    fn apply_one(&mut self, change: &Change, summary: &mut ChangeSummary) -> Result<(), Errors> {
        match change {
            Change::ApplyToml { text, origin } => {
                let frag = DesiredState::from_toml_str(text, origin)?;
                for obj in frag.objects() {
                    let (k, n) = (obj.kind(), obj.name().to_string());
                    let what = self.upsert(obj);
                    if k != Kind::Allocation {
                        record(summary, k, &n, what);
                    }
                }
            }
            Change::ApplyManifests { text, origin } => {
                for (k, n, what) in self.apply_manifests_str(text, origin)? {
                    record(summary, k, &n, what);
                }
            }
            Change::Upsert(obj) => {
                let (k, n) = (obj.kind(), obj.name().to_string());
                let what = self.upsert(obj.clone());
                record(summary, k, &n, what);
            }
            Change::Delete { kind, name } => {
                if !self.remove(*kind, name) {
                    let problem = match kind {
                        Kind::LoadBalancer => Problem::UnknownLoadBalancer(name.clone()),
                        Kind::NetworkInterface => Problem::UnknownInterface(name.clone()),
                        Kind::Network => Problem::UnknownNetwork(name.clone()),
                        Kind::Pool => Problem::UnknownPool(name.clone()),
                        Kind::LoadBalancerRouting | Kind::Allocation => {
                            Problem::Invalid(format!("no {kind} {name:?}"))
                        }
                    };
                    return Err(not_found(&format!("delete {kind} {name:?}"), problem));
                }
                if *kind == Kind::NetworkInterface {
                    for lb in &mut self.load_balancers {
                        lb.weights.remove(name);
                    }
                }
                summary
                    .deleted
                    .push((kind.toml_key().to_string(), name.clone()));
            }
            Change::SetLabels { interface, labels } => {
                let nic = self
                    .network_interfaces
                    .iter_mut()
                    .find(|n| n.name == *interface)
                    .ok_or_else(|| {
                        not_found(
                            &format!("labels of {interface:?}"),
                            Problem::UnknownInterface(interface.clone()),
                        )
                    })?;
                // Checked here, against the request: once merged, a bad
                // label would be reported at the interface's file.
                let bad: Vec<LocatedError> = crate::selector::label_problems("labels", labels)
                    .into_iter()
                    .map(|(rel, problem)| LocatedError {
                        location: None,
                        path: format!("network_interface[{interface}].{rel} (this request)"),
                        problem,
                    })
                    .collect();
                if !bad.is_empty() {
                    return Err(Errors(bad));
                }
                let before = nic.labels.clone();
                nic.labels.extend(labels.clone());
                if nic.labels != before {
                    summary
                        .replaced
                        .push((Kind::NetworkInterface.toml_key().into(), interface.clone()));
                }
            }
            Change::RemoveLabels { interface, keys } => {
                let nic = self
                    .network_interfaces
                    .iter_mut()
                    .find(|n| n.name == *interface)
                    .ok_or_else(|| {
                        not_found(
                            &format!("labels of {interface:?}"),
                            Problem::UnknownInterface(interface.clone()),
                        )
                    })?;
                let before = nic.labels.len();
                for k in keys {
                    nic.labels.remove(k);
                }
                if nic.labels.len() != before {
                    summary
                        .replaced
                        .push((Kind::NetworkInterface.toml_key().into(), interface.clone()));
                }
            }
            Change::SetWeight {
                load_balancer,
                destination,
                weight,
            } => {
                let what = format!("weight of {destination:?} in {load_balancer:?}");
                let li = self
                    .load_balancers
                    .iter()
                    .position(|l| l.name == *load_balancer)
                    .ok_or_else(|| {
                        not_found(&what, Problem::UnknownLoadBalancer(load_balancer.clone()))
                    })?;
                if self.load_balancers[li].network_interface_selector.is_some() {
                    let network = self.load_balancers[li].network.clone();
                    let known = self.network_interfaces.iter().any(|n| {
                        n.network == network
                            && (n.name == *destination
                                || (!n.uid.is_empty() && n.uid == *destination))
                    });
                    if !known {
                        return Err(not_found(
                            &what,
                            Problem::UnknownInterface(destination.clone()),
                        ));
                    }
                    self.load_balancers[li]
                        .weights
                        .insert(destination.clone(), *weight);
                } else {
                    let routing = self
                        .load_balancer_routings
                        .iter_mut()
                        .find(|r| r.name == *load_balancer)
                        .ok_or_else(|| {
                            not_found(&what, Problem::NoRouting(load_balancer.clone()))
                        })?;
                    let d = routing
                        .destinations
                        .iter_mut()
                        .find(|d| {
                            d.name == *destination || (!d.uid.is_empty() && d.uid == *destination)
                        })
                        .ok_or_else(|| {
                            not_found(&what, Problem::UnknownInterface(destination.clone()))
                        })?;
                    d.weight = Some(*weight);
                }
                summary
                    .replaced
                    .push((Kind::LoadBalancer.toml_key().into(), load_balancer.clone()));
            }
        }
        Ok(())
    }

    /// Applies `changes` in order to a copy of this state, validates and
    /// resolves the result against `underlay`, and on success replaces this
    /// state with it (its `allocations` updated to the resolution's) and
    /// returns what changed. On any error the state is unchanged.
    ///
    /// Resolves this state first to compare against; a caller that holds
    /// its resolution already uses [`DesiredState::apply_from`].
    pub fn apply(
        &mut self,
        changes: &[Change],
        underlay: &Underlay,
    ) -> Result<ChangeSummary, Errors> {
        let before = self.resolve(underlay).ok();
        let mut next = self.clone();
        let summary =
            next.apply_in_place(changes, underlay, before.as_ref().map(|r| &r.resolved))?;
        *self = next;
        Ok(summary)
    }

    /// [`DesiredState::apply`] for a state whose resolution is known:
    /// `before` must be what [`DesiredState::resolve`] gives for this state
    /// (the daemon keeps it), `None` when it does not resolve. The state is
    /// resolved once, after the change. On any error the state is
    /// unchanged.
    pub fn apply_from(
        &mut self,
        changes: &[Change],
        underlay: &Underlay,
        before: Option<&Resolved>,
    ) -> Result<ChangeSummary, Errors> {
        let mut next = self.clone();
        let summary = next.apply_in_place(changes, underlay, before)?;
        *self = next;
        Ok(summary)
    }

    /// [`DesiredState::apply_from`] without the copy: for a caller that
    /// works on a copy of its own and throws it away on error. On an error
    /// this state is left with some of `changes` applied.
    pub fn apply_in_place(
        &mut self,
        changes: &[Change],
        underlay: &Underlay,
        before: Option<&Resolved>,
    ) -> Result<ChangeSummary, Errors> {
        let mut summary = ChangeSummary::default();
        for c in changes {
            self.apply_one(c, &mut summary)?;
        }
        let resolution = self.resolve(underlay)?;
        // Keep the allocations (the explicit `ips` stay in the specs).
        self.allocations.clone_from(&resolution.allocations);

        let old: BTreeMap<&str, _> = before
            .map(|r| {
                r.load_balancers
                    .iter()
                    .map(|l| (l.name.as_str(), l))
                    .collect()
            })
            .unwrap_or_default();
        let new: BTreeMap<&str, _> = resolution
            .resolved
            .load_balancers
            .iter()
            .map(|l| (l.name.as_str(), l))
            .collect();
        let names: BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
        let mut old_ips = BTreeSet::new();
        let mut new_ips = BTreeSet::new();
        for name in names {
            let (o, n) = (old.get(name), new.get(name));
            if o == n {
                // Its addresses are on both sides: no difference.
                continue;
            }
            summary.changed_load_balancers.push(name.to_string());
            if let (Some(o), Some(n)) = (o, n) {
                if o.destinations != n.destinations {
                    summary.rerouted.push(name.to_string());
                }
            }
            for (set, lb) in [(&mut old_ips, o), (&mut new_ips, n)] {
                if let Some(lb) = lb {
                    for ip in &lb.ips {
                        set.insert(AddressChange {
                            load_balancer: name.to_string(),
                            address: ip.addr,
                            pool: ip.pool.clone(),
                        });
                    }
                }
            }
        }
        summary.allocated = new_ips.difference(&old_ips).cloned().collect();
        summary.released = old_ips.difference(&new_ips).cloned().collect();
        summary.warnings = resolution.warnings.iter().map(|w| w.to_string()).collect();
        summary.resolution = Some(resolution);
        Ok(summary)
    }
}
