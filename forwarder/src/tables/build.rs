//! Building a table version from the resolved model: VIP map, filters,
//! Maglev tables, header templates, stable counter slots.

use super::{addr_key, LbTable, PortFilter, Tables, Vip, VipMap, LB_SLOT_FLAG, NO_TARGET};
use crate::counters::{SlotError, SlotRegistry, MAX_TARGET_SLOTS};
use crate::encap::{EncapTemplate, Target, UnderlayParams};
use crate::io::sys::HugeSlice;
use crate::maglev::MaglevTable;
use lbfwd_config::model::{IcmpEcho, Resolved, ResolvedLoadBalancer};
use std::borrow::Cow;
use std::collections::HashMap;

/// Errors of building tables.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Too many load balancers or targets for the counter slots.
    #[error(transparent)]
    Slots(#[from] SlotError),
    /// A Maglev table could not be built.
    #[error("load balancer {lb}: {message}")]
    Maglev {
        /// The load balancer.
        lb: String,
        /// What went wrong.
        message: String,
    },
}

/// The key a target is known by in counters and flows.
fn target_key(d: &lbfwd_config::model::Destination) -> Cow<'_, str> {
    if d.uid.is_empty() {
        Cow::Borrowed(&d.name)
    } else {
        Cow::Owned(format!("{}/{}", d.name, d.uid))
    }
}

/// A load balancer's Maglev table of the last build, with what it was built
/// from (destination name, uid and weight, in order; the table size).
#[derive(Debug)]
struct BuiltMaglev {
    size: u32,
    destinations: Vec<(String, String, u32)>,
    table: MaglevTable,
}

impl BuiltMaglev {
    fn built_from(&self, lb: &ResolvedLoadBalancer) -> bool {
        self.size == lb.maglev_table_size
            && self.destinations.len() == lb.destinations.len()
            && self
                .destinations
                .iter()
                .zip(&lb.destinations)
                .all(|((n, u, w), d)| *n == d.name && *u == d.uid && *w == d.weight)
    }
}

/// Builds table versions; keeps the slot registry across builds, and each
/// load balancer's Maglev table: the next version shares it (one table in
/// memory, no rebuild) while the load balancer's destinations stay the same,
/// so a change costs Maglev work only for the load balancers it changes.
#[derive(Debug, Default)]
pub struct TableBuilder {
    slots: SlotRegistry,
    maglev: HashMap<String, BuiltMaglev>,
}

impl TableBuilder {
    /// A builder with no slots given out.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the tables for `resolved`. Returns the tables and the counter
    /// slots released by this build (reset them before reuse).
    pub fn build(
        &mut self,
        resolved: &Resolved,
        underlay: &UnderlayParams,
        version: u64,
    ) -> Result<(Tables, Vec<u32>), BuildError> {
        let keys: Vec<Cow<'_, str>> = resolved
            .load_balancers
            .iter()
            .flat_map(|lb| lb.destinations.iter().map(target_key))
            .collect();
        let assignment = self.slots.assign(
            resolved.load_balancers.iter().map(|lb| lb.name.as_str()),
            resolved
                .load_balancers
                .iter()
                .flat_map(|lb| lb.destinations.iter().map(move |_| lb.name.as_str()))
                .zip(keys.iter().map(|k| k.as_ref())),
        )?;
        // The targets' slots, in the order of the load balancers and their
        // destinations (as given to the registry).
        let mut target_slots = assignment.targets.iter().copied();
        let mut lbs = Vec::with_capacity(resolved.load_balancers.len());
        let mut templates = Vec::with_capacity(keys.len());
        let mut vips = Vec::new();
        let mut vip_list = Vec::new();
        let mut target_by_slot = HugeSlice::new(MAX_TARGET_SLOTS, |_| NO_TARGET);
        let mut maglev_next = HashMap::with_capacity(resolved.load_balancers.len());
        for (lb_index, lb) in resolved.load_balancers.iter().enumerate() {
            let targets: Vec<Target> = lb
                .destinations
                .iter()
                .map(|d| Target {
                    name: d.name.clone(),
                    uid: d.uid.clone(),
                    underlay: d.underlay.into(),
                    mac: d.mac.map(|m| m.0).unwrap_or_default(),
                    weight: d.weight,
                    // One slot per destination given: never exhausted.
                    slot: target_slots.next().unwrap_or_default(),
                })
                .collect();
            for (t_index, t) in targets.iter().enumerate() {
                target_by_slot[t.slot as usize] = ((lb_index as u64) << 32) | t_index as u64;
            }
            let maglev = match self.maglev.remove(&lb.name) {
                Some(built) if built.built_from(lb) => built,
                _ => BuiltMaglev {
                    size: lb.maglev_table_size,
                    destinations: lb
                        .destinations
                        .iter()
                        .map(|d| (d.name.clone(), d.uid.clone(), d.weight))
                        .collect(),
                    table: MaglevTable::from_destinations(&lb.destinations, lb.maglev_table_size)
                        .map_err(|e| BuildError::Maglev {
                        lb: lb.name.clone(),
                        message: e.to_string(),
                    })?,
                },
            };
            let table = maglev.table.clone();
            maglev_next.insert(lb.name.clone(), maglev);
            for ip in &lb.ips {
                let vip = Vip {
                    lb: lb_index as u32,
                    vni: lb.vni,
                };
                vips.push((addr_key(ip.addr), vip));
                vip_list.push(ip.addr);
            }
            // At most MAX_TARGET_SLOTS targets in all (the slot registry
            // says so): the index fits.
            let template_base = templates.len() as u32;
            templates.extend(
                targets
                    .iter()
                    .map(|t| EncapTemplate::new(underlay, lb.vni, t)),
            );
            lbs.push(LbTable {
                name: lb.name.clone(),
                slot: assignment.lbs[lb_index],
                vni: lb.vni,
                filter: PortFilter::new(&lb.ports),
                icmp_echo_reply: lb.icmp_echo == IcmpEcho::Reply,
                maglev: table,
                targets,
                template_base,
            });
        }
        self.maglev = maglev_next;
        let mut released = assignment.released_targets;
        released.extend(assignment.released_lbs.iter().map(|s| s | LB_SLOT_FLAG));
        Ok((
            Tables {
                version,
                underlay: underlay.clone(),
                lbs,
                templates: HugeSlice::from_vec(templates),
                vips: VipMap::new(&vips),
                vip_list,
                target_by_slot,
            },
            released,
        ))
    }
}
