//! The dataplane's tables: the immutable set every worker reads (VIP map,
//! filters, one Maglev table per load balancer, encapsulation settings),
//! built off the fast path from the resolved model, and published with one
//! atomic pointer swap.
//!
//! Freeing an old version never happens on a worker either: the publisher
//! keeps every replaced version until each worker has reported that it moved
//! past it, then drops it on the control thread.
//!
//! - this file: one version ([`Tables`]), one load balancer's part
//!   ([`LbTable`]);
//! - [`vip`]: the VIP map; [`filter`]: the port filter;
//! - [`build`]: building a version ([`TableBuilder`]);
//! - [`publish`]: publishing it ([`Publisher`], [`TableReader`]).

pub mod build;
pub mod filter;
pub mod publish;
pub mod vip;

#[cfg(test)]
mod tests;

pub use build::{BuildError, TableBuilder};
pub use filter::{PortFilter, INLINE_PORT_RANGES};
pub use publish::{Publisher, TableReader, LB_SLOT_FLAG};
pub use vip::{Vip, VipMap};

use crate::counters::MAX_TARGET_SLOTS;
use crate::encap::EncapTemplate;
pub use crate::encap::{Target, Underlay, UnderlayParams};
use crate::io::sys::HugeSlice;
use crate::maglev::MaglevTable;
use std::net::IpAddr;

/// An address as the fast path compares it: IPv4 as IPv4-mapped IPv6.
pub type AddrKey = u128;

/// The fast-path key of an address.
#[inline(always)]
pub fn addr_key(addr: IpAddr) -> AddrKey {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().to_bits(),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

/// One load balancer's tables.
#[derive(Debug)]
pub struct LbTable {
    /// Load balancer name.
    pub name: String,
    /// Stable counter slot.
    pub slot: u32,
    /// The network's VNI (VXLAN header; part of the flow hash).
    pub vni: u32,
    /// Port allow list.
    pub filter: PortFilter,
    /// Whether lbfwd answers ICMP echo requests itself.
    pub icmp_echo_reply: bool,
    /// Maglev table over `targets` (indexes into it).
    pub maglev: MaglevTable,
    /// Destinations, in the resolved (deterministic) order.
    pub targets: Vec<Target>,
    /// Where the outer headers toward `targets` start in
    /// [`Tables::templates`] (target `i`'s at `template_base + i`).
    pub template_base: u32,
}

/// Marks an unused entry of [`Tables::target_by_slot`].
pub const NO_TARGET: u64 = u64::MAX;

/// One immutable version of everything the workers read.
#[derive(Debug)]
pub struct Tables {
    /// Version number; increases with every publication.
    pub version: u64,
    /// Encapsulation settings.
    pub underlay: UnderlayParams,
    /// Load balancers, in resolved order.
    pub lbs: Vec<LbTable>,
    /// The outer headers toward every target of every load balancer (each
    /// load balancer's from its [`LbTable::template_base`]), for the fast
    /// path: a flow remembers the index of its target's. In huge pages
    /// when large (read at random per packet: fewer TLB misses).
    pub templates: HugeSlice<EncapTemplate>,
    /// VIP -> its load balancer.
    pub vips: VipMap,
    /// Every VIP, in load-balancer order (for the backends' VIP filters).
    pub vip_list: Vec<IpAddr>,
    /// Target slot -> `(lb index << 32) | target index`, or [`NO_TARGET`]:
    /// tells a flow whether its target is still in the routing. In huge
    /// pages (2 MiB, read at random per packet).
    pub target_by_slot: HugeSlice<u64>,
}

impl Tables {
    /// Every target of these tables with its slot, for the flow tables'
    /// slot directory (off the fast path; allocates).
    pub fn target_slots(&self) -> Vec<crate::flow::persist::TargetSlot> {
        self.lbs
            .iter()
            .flat_map(|lb| {
                lb.targets.iter().map(|t| crate::flow::persist::TargetSlot {
                    slot: t.slot,
                    lb: lb.name.clone(),
                    name: t.name.clone(),
                    uid: t.uid.clone(),
                })
            })
            .collect()
    }

    /// The load balancer owning `addr`, if it is a VIP.
    #[inline(always)]
    pub fn lb_for(&self, addr: AddrKey) -> Option<(u32, &LbTable)> {
        let vip = self.vips.get(addr)?;
        Some((vip.lb, self.lbs.get(vip.lb as usize)?))
    }

    /// What the VIP lookup knows of `addr`, if it is a VIP.
    #[inline(always)]
    pub fn vip(&self, addr: AddrKey) -> Option<Vip> {
        self.vips.get(addr)
    }

    /// What the VIP lookup knows of the IPv4 address `addr`, if it is a VIP.
    #[inline(always)]
    pub fn vip_v4(&self, addr: u32) -> Option<Vip> {
        self.vips.get_v4(addr)
    }

    /// The outer-header template toward target `index` of `lb`.
    #[inline(always)]
    pub fn template(&self, lb: &LbTable, index: u32) -> Option<&EncapTemplate> {
        self.templates
            .get(lb.template_base as usize + index as usize)
    }

    /// The counter slot of the load balancer whose target holds target
    /// slot `slot` in these tables (`None`: no target holds it).
    #[inline]
    pub fn lb_slot_of_target(&self, slot: u32) -> Option<u32> {
        let packed = *self.target_by_slot.get(slot as usize)?;
        if packed == NO_TARGET {
            return None;
        }
        self.lbs.get((packed >> 32) as usize).map(|lb| lb.slot)
    }

    /// Where the target in counter slot `slot` sits now, if it is still in
    /// the routing of load balancer `lb`.
    #[inline(always)]
    pub fn target_in(&self, lb: u32, slot: u32) -> Option<u32> {
        let packed = *self.target_by_slot.get(slot as usize)?;
        if packed != NO_TARGET && (packed >> 32) as u32 == lb {
            Some(packed as u32)
        } else {
            None
        }
    }

    /// An empty version (no VIPs): everything goes to the host path.
    pub fn empty(underlay: UnderlayParams) -> Self {
        Tables {
            version: 0,
            underlay,
            lbs: Vec::new(),
            templates: HugeSlice::default(),
            vips: VipMap::new(&[]),
            vip_list: Vec::new(),
            target_by_slot: HugeSlice::new(MAX_TARGET_SLOTS, |_| NO_TARGET),
        }
    }
}
