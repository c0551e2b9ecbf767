//! The dataplane's tables: the immutable set every worker reads (VIP map,
//! filters, one Maglev table per load balancer, encapsulation settings),
//! built off the fast path from the resolved model, and published with one
//! atomic pointer swap.
//!
//! Freeing an old version never happens on a worker either: the publisher
//! keeps every replaced version until each worker has reported that it moved
//! past it, then drops it on the control thread.

use crate::counters::{SlotError, SlotRegistry, MAX_TARGET_SLOTS};
use crate::encap::EncapTemplate;
pub use crate::encap::{Target, Underlay, UnderlayParams};
use crate::maglev::MaglevTable;
use arc_swap::ArcSwap;
use lbfwd_config::model::{IcmpEcho, Protocol, Resolved};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// Port ranges kept inline in a [`PortFilter`] per protocol; more spill
/// to the heap.
pub const INLINE_PORT_RANGES: usize = 4;

/// The inclusive port ranges of one protocol: the first
/// [`INLINE_PORT_RANGES`] inline (no pointer to follow per packet), the rest
/// on the heap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PortRanges {
    inline: [(u16, u16); INLINE_PORT_RANGES],
    inline_len: u8,
    more: Box<[(u16, u16)]>,
}

impl PortRanges {
    fn new(mut ranges: Vec<(u16, u16)>) -> Self {
        ranges.sort_unstable();
        let n = ranges.len().min(INLINE_PORT_RANGES);
        let mut inline = [(0, 0); INLINE_PORT_RANGES];
        inline[..n].copy_from_slice(&ranges[..n]);
        PortRanges {
            inline,
            inline_len: n as u8,
            more: ranges[n..].into(),
        }
    }

    #[inline(always)]
    fn contains(&self, port: u16) -> bool {
        let n = usize::from(self.inline_len).min(INLINE_PORT_RANGES);
        self.inline[..n]
            .iter()
            .any(|&(lo, hi)| lo <= port && port <= hi)
            || (!self.more.is_empty() && self.more.iter().any(|&(lo, hi)| lo <= port && port <= hi))
    }

    fn is_empty(&self) -> bool {
        self.inline_len == 0
    }
}

/// The allow list of one load balancer: inclusive port ranges per protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortFilter {
    tcp: PortRanges,
    udp: PortRanges,
    sctp: PortRanges,
}

impl PortFilter {
    /// A filter allowing exactly these ranges.
    pub fn new(ranges: &[lbfwd_config::model::PortRange]) -> Self {
        let of = |p: Protocol| {
            PortRanges::new(
                ranges
                    .iter()
                    .filter(|r| r.protocol == p)
                    .map(|r| (r.first, r.last))
                    .collect(),
            )
        };
        PortFilter {
            tcp: of(Protocol::Tcp),
            udp: of(Protocol::Udp),
            sctp: of(Protocol::Sctp),
        }
    }

    /// Whether `port` of IP protocol `proto` may pass. `None` for protocols
    /// that are not TCP, UDP or SCTP.
    #[inline]
    pub fn allows(&self, proto: u8, port: u16) -> Option<bool> {
        let list = match proto {
            6 => &self.tcp,
            17 => &self.udp,
            132 => &self.sctp,
            _ => return None,
        };
        Some(list.contains(port))
    }

    /// Whether any port of this protocol is allowed.
    pub fn allows_protocol(&self, proto: u8) -> bool {
        match proto {
            6 => !self.tcp.is_empty(),
            17 => !self.udp.is_empty(),
            132 => !self.sctp.is_empty(),
            _ => false,
        }
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

/// What the packet path learns from a VIP lookup: enough to build the flow
/// key and look the flow up without touching the load balancer's
/// [`LbTable`] (a flow seen before under the same tables needs nothing
/// more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vip {
    /// Index of the load balancer in [`Tables::lbs`].
    pub lb: u32,
    /// Its network's VNI (part of the flow key).
    pub vni: u32,
}

/// A key of an [`AddrMap`].
trait MapKey: Copy + Eq + Default {
    /// Where probing starts (before masking).
    fn slot(self) -> usize;
}

impl MapKey for u32 {
    #[inline(always)]
    fn slot(self) -> usize {
        (u64::from(self).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
    }
}

impl MapKey for u128 {
    #[inline(always)]
    fn slot(self) -> usize {
        let folded = (self as u64) ^ ((self >> 64) as u64).rotate_left(29);
        (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
    }
}

/// One entry of an [`AddrMap`]: 16 bytes for IPv4 keys, 32 for IPv6 ones,
/// aligned to its size so that no entry straddles two cache lines.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct VipEntry<K> {
    key: K,
    /// `vip.lb` [`VIP_EMPTY`]: a free entry.
    vip: Vip,
}

/// Open-addressing map from an address to its [`Vip`]; power-of-two
/// capacity, linear probing, at most half full. Each key sits next to its
/// value (one load, one bounds check per probe).
#[derive(Debug, Clone)]
struct AddrMap<K> {
    entries: Box<[VipEntry<K>]>,
    mask: usize,
}

const VIP_EMPTY: u32 = u32::MAX;

impl<K: MapKey> AddrMap<K> {
    fn new(entries: impl ExactSizeIterator<Item = (K, Vip)>) -> Self {
        let cap = (entries.len() * 2).next_power_of_two().max(16);
        let free = VipEntry {
            key: K::default(),
            vip: Vip {
                lb: VIP_EMPTY,
                vni: 0,
            },
        };
        let mut map = AddrMap {
            entries: vec![free; cap].into_boxed_slice(),
            mask: cap - 1,
        };
        for (key, vip) in entries {
            let mut i = key.slot() & map.mask;
            while map.entries[i].vip.lb != VIP_EMPTY {
                i = (i + 1) & map.mask;
            }
            map.entries[i] = VipEntry { key, vip };
        }
        map
    }

    #[inline(always)]
    fn get(&self, k: K) -> Option<Vip> {
        let mut i = k.slot() & self.mask;
        loop {
            let e = self.entries[i];
            if e.vip.lb == VIP_EMPTY {
                return None;
            }
            if e.key == k {
                return Some(e.vip);
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// Map from VIP to load-balancer index: IPv4 VIPs under 4-byte keys (four
/// times denser in the caches than 16-byte ones), IPv6 VIPs under 16-byte
/// keys.
#[derive(Debug, Clone)]
pub struct VipMap {
    v4: AddrMap<u32>,
    v6: AddrMap<u128>,
}

/// The IPv4 address of an IPv4-mapped key.
#[inline(always)]
fn mapped_v4(k: AddrKey) -> Option<u32> {
    (k >> 32 == 0xffff).then_some(k as u32)
}

impl VipMap {
    fn new(entries: &[(AddrKey, Vip)]) -> Self {
        let v4: Vec<(u32, Vip)> = entries
            .iter()
            .filter_map(|&(k, v)| mapped_v4(k).map(|a| (a, v)))
            .collect();
        let v6: Vec<(u128, Vip)> = entries
            .iter()
            .filter(|(k, _)| mapped_v4(*k).is_none())
            .copied()
            .collect();
        VipMap {
            v4: AddrMap::new(v4.into_iter()),
            v6: AddrMap::new(v6.into_iter()),
        }
    }

    /// The load balancer of a VIP.
    #[inline(always)]
    pub fn get(&self, k: AddrKey) -> Option<Vip> {
        match mapped_v4(k) {
            Some(a) => self.v4.get(a),
            None => self.v6.get(k),
        }
    }
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
    /// path: a flow remembers the index of its target's.
    pub templates: Vec<EncapTemplate>,
    /// VIP -> its load balancer.
    pub vips: VipMap,
    /// Every VIP, in load-balancer order (for the backends' VIP filters).
    pub vip_list: Vec<IpAddr>,
    /// Target slot -> `(lb index << 32) | target index`, or [`NO_TARGET`]:
    /// tells a flow whether its target is still in the routing.
    pub target_by_slot: Box<[u64]>,
}

impl Tables {
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
        self.vips.v4.get(addr)
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
            templates: Vec::new(),
            vips: VipMap::new(&[]),
            vip_list: Vec::new(),
            target_by_slot: vec![NO_TARGET; MAX_TARGET_SLOTS].into_boxed_slice(),
        }
    }
}

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
fn target_key(d: &lbfwd_config::model::Destination) -> String {
    if d.uid.is_empty() {
        d.name.clone()
    } else {
        format!("{}/{}", d.name, d.uid)
    }
}

/// Builds table versions; keeps the slot registry across builds.
#[derive(Debug, Default)]
pub struct TableBuilder {
    slots: SlotRegistry,
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
        let assignment = self.slots.assign(
            resolved.load_balancers.iter().map(|lb| lb.name.as_str()),
            resolved
                .load_balancers
                .iter()
                .flat_map(|lb| {
                    lb.destinations
                        .iter()
                        .map(move |d| (lb.name.as_str(), target_key(d)))
                })
                .collect::<Vec<_>>()
                .iter()
                .map(|(l, t)| (*l, t.as_str())),
        )?;
        let mut lbs = Vec::with_capacity(resolved.load_balancers.len());
        let mut templates = Vec::new();
        let mut vips = Vec::new();
        let mut vip_list = Vec::new();
        let mut target_by_slot = vec![NO_TARGET; MAX_TARGET_SLOTS].into_boxed_slice();
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
                    slot: assignment.targets[&(lb.name.clone(), target_key(d))],
                })
                .collect();
            for (t_index, t) in targets.iter().enumerate() {
                target_by_slot[t.slot as usize] = ((lb_index as u64) << 32) | t_index as u64;
            }
            let maglev = MaglevTable::from_destinations(&lb.destinations, lb.maglev_table_size)
                .map_err(|e| BuildError::Maglev {
                    lb: lb.name.clone(),
                    message: e.to_string(),
                })?;
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
                slot: assignment.lbs[&lb.name],
                vni: lb.vni,
                filter: PortFilter::new(&lb.ports),
                icmp_echo_reply: lb.icmp_echo == IcmpEcho::Reply,
                maglev,
                targets,
                template_base,
            });
        }
        let mut released = assignment.released_targets;
        released.extend(assignment.released_lbs.iter().map(|s| s | LB_SLOT_FLAG));
        Ok((
            Tables {
                version,
                underlay: underlay.clone(),
                lbs,
                templates,
                vips: VipMap::new(&vips),
                vip_list,
                target_by_slot,
            },
            released,
        ))
    }
}

/// Set on a released slot number that names a load-balancer slot (not a
/// target slot) in [`TableBuilder::build`]'s output.
pub const LB_SLOT_FLAG: u32 = 1 << 31;

/// Holds the current table version and the versions workers may still use.
#[derive(Debug)]
pub struct Publisher {
    current: ArcSwap<Tables>,
    /// Last version each worker reported using.
    seen: Box<[AtomicU64]>,
    retired: Mutex<Vec<Arc<Tables>>>,
}

impl Publisher {
    /// A publisher for `workers` workers, starting with `initial`.
    pub fn new(initial: Tables, workers: usize) -> Arc<Self> {
        let version = initial.version;
        Arc::new(Publisher {
            current: ArcSwap::from_pointee(initial),
            seen: (0..workers).map(|_| AtomicU64::new(version)).collect(),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// The version now published.
    pub fn current(&self) -> Arc<Tables> {
        self.current.load_full()
    }

    /// Publishes `tables` (one pointer swap) and frees old versions no
    /// worker uses any more. Versions strictly increase (flow entries
    /// remember the version their target index belongs to; reclaiming
    /// compares versions): a version not above the current one is
    /// renumbered to the next.
    pub fn publish(&self, mut tables: Tables) {
        let current = self.current.load().version;
        if tables.version <= current {
            tables.version = current + 1;
        }
        let old = self.current.swap(Arc::new(tables));
        self.retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(old);
        self.reclaim();
    }

    /// Frees retired versions that every worker has moved past. Call it from
    /// the control thread now and then (publish does).
    pub fn reclaim(&self) -> usize {
        let oldest_in_use = self
            .seen
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let before = retired.len();
        retired.retain(|t| t.version >= oldest_in_use || Arc::strong_count(t) > 1);
        before - retired.len()
    }

    /// The table version worker `worker` last reported using.
    pub fn seen(&self, worker: usize) -> u64 {
        self.seen
            .get(worker)
            .map(|s| s.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// Number of versions waiting to be freed.
    pub fn retired_len(&self) -> usize {
        self.retired.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A reader for worker `worker` (0-based, < the count given to `new`).
    pub fn reader(self: &Arc<Self>, worker: usize) -> TableReader {
        assert!(worker < self.seen.len(), "worker index out of range");
        TableReader {
            publisher: Arc::clone(self),
            tables: self.current(),
            worker,
        }
    }
}

/// A worker's handle on the published tables.
#[derive(Debug)]
pub struct TableReader {
    publisher: Arc<Publisher>,
    tables: Arc<Tables>,
    worker: usize,
}

impl TableReader {
    /// Picks up a newer version if one was published; call between bursts.
    /// Never frees a version (the old one stays retired on the publisher).
    #[inline]
    pub fn refresh(&mut self) -> &Tables {
        let cur = self.publisher.current.load();
        if cur.version != self.tables.version {
            // The publisher still holds the old version in `retired`, so this
            // assignment only decrements a reference count.
            self.tables = arc_swap::Guard::into_inner(cur);
            self.publisher.seen[self.worker].store(self.tables.version, Ordering::Release);
        }
        &self.tables
    }

    /// The version in hand.
    #[inline]
    pub fn tables(&self) -> &Tables {
        &self.tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lbfwd_config::model::*;
    use std::net::Ipv4Addr;

    fn underlay() -> UnderlayParams {
        UnderlayParams {
            encap: Encap::Vxlan { port: 4789 },
            source_ipv4: Some(Ipv4Addr::new(10, 0, 2, 2)),
            source_ipv6: None,
            source_mac: [2, 0, 0, 0, 0, 2],
            next_hop_mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
        }
    }

    fn resolved(dests: &[&str]) -> Resolved {
        Resolved {
            load_balancers: vec![ResolvedLoadBalancer {
                name: "web".into(),
                lb_type: LoadBalancerType::Public,
                network: "n".into(),
                vni: 100,
                ips: vec![AssignedIp {
                    addr: "203.0.113.1".parse().unwrap(),
                    pool: Some("public".into()),
                }],
                ports: vec![PortRange {
                    protocol: Protocol::Tcp,
                    first: 80,
                    last: 80,
                }],
                icmp_echo: IcmpEcho::Drop,
                maglev_table_size: 251,
                destinations: dests
                    .iter()
                    .enumerate()
                    .map(|(i, n)| Destination {
                        name: n.to_string(),
                        uid: String::new(),
                        underlay: IpAddr::V4(Ipv4Addr::new(10, 0, 3, i as u8 + 1)),
                        mac: Some(MacAddr([2, 0, 0, 0, 3, i as u8])),
                        weight: 1,
                    })
                    .collect(),
            }],
        }
    }

    /// Each load balancer's templates sit at its base in the shared list,
    /// one per target with that target's slot, and each VIP leads to its
    /// load balancer and network.
    #[test]
    fn templates_and_vips_line_up_with_their_load_balancers() {
        let mut r = resolved(&["a", "b", "c"]);
        let mut second = r.load_balancers[0].clone();
        second.name = "api".into();
        second.vni = 200;
        second.ips[0].addr = "2001:db8::7".parse().unwrap();
        second.destinations.truncate(2);
        r.load_balancers.push(second);
        let (t, _) = TableBuilder::new().build(&r, &underlay(), 1).unwrap();
        assert_eq!(t.templates.len(), 5);
        assert_eq!(t.lbs[1].template_base, 3);
        for lb in &t.lbs {
            for (i, target) in lb.targets.iter().enumerate() {
                let tpl = t.template(lb, i as u32).expect("template");
                assert_eq!(tpl.slot(), target.slot, "{} target {i}", lb.name);
            }
        }
        for (i, lb) in r.load_balancers.iter().enumerate() {
            let vip = t.vip(addr_key(lb.ips[0].addr)).expect("VIP");
            assert_eq!(
                vip,
                Vip {
                    lb: i as u32,
                    vni: lb.vni
                }
            );
        }
        let v4 = Ipv4Addr::new(203, 0, 113, 1);
        assert_eq!(t.vip_v4(u32::from(v4)), t.vip(addr_key(IpAddr::V4(v4))));
        assert_eq!(t.vip_v4(u32::from(Ipv4Addr::new(203, 0, 113, 2))), None);
    }

    #[test]
    fn vip_map_finds_every_vip_and_nothing_else() {
        let vip = |lb: u32| Vip {
            lb,
            vni: lb ^ 0x5a5a,
        };
        let entries: Vec<(AddrKey, Vip)> = (0..1000u32)
            .map(|i| {
                (
                    addr_key(IpAddr::V4(Ipv4Addr::from(0xCB00_7100 + i))),
                    vip(i),
                )
            })
            .collect();
        let map = VipMap::new(&entries);
        for &(k, v) in &entries {
            assert_eq!(map.get(k), Some(v));
        }
        assert_eq!(map.get(addr_key("198.51.100.1".parse().unwrap())), None);
        assert_eq!(map.get(addr_key("::1".parse().unwrap())), None);
        // IPv6 VIPs next to IPv4 ones, including the IPv4-compatible and
        // IPv4-mapped look-alikes, which must not collide.
        let mut both = entries.clone();
        both.push((addr_key("2001:db8::1".parse().unwrap()), vip(5000)));
        both.push((addr_key("::203.0.113.0".parse().unwrap()), vip(5001)));
        let map = VipMap::new(&both);
        for &(k, v) in &both {
            assert_eq!(map.get(k), Some(v));
        }
        assert_eq!(map.get(addr_key("2001:db8::2".parse().unwrap())), None);
        assert_eq!(map.get(addr_key("::203.0.113.1".parse().unwrap())), None);
    }

    #[test]
    fn targets_keep_slots_across_builds_and_leave_cleanly() {
        let mut b = TableBuilder::new();
        let (t1, _) = b
            .build(&resolved(&["a", "b", "c"]), &underlay(), 1)
            .unwrap();
        let (t2, released) = b.build(&resolved(&["a", "c"]), &underlay(), 2).unwrap();
        let slot_a = t1.lbs[0].targets[0].slot;
        let slot_b = t1.lbs[0].targets[1].slot;
        assert_eq!(t2.lbs[0].targets[0].slot, slot_a);
        assert_eq!(t2.target_in(0, slot_a), Some(0));
        assert_eq!(t2.target_in(0, slot_b), None, "b left the routing");
        assert_eq!(released, vec![slot_b]);
        assert_eq!(t2.target_in(1, slot_a), None, "wrong load balancer");
    }

    #[test]
    fn old_versions_are_freed_only_after_every_worker_moved_on() {
        let mut b = TableBuilder::new();
        let (t1, _) = b.build(&resolved(&["a"]), &underlay(), 1).unwrap();
        let publisher = Publisher::new(t1, 2);
        let mut r0 = publisher.reader(0);
        let mut r1 = publisher.reader(1);
        let (t2, _) = b.build(&resolved(&["a", "b"]), &underlay(), 2).unwrap();
        publisher.publish(t2);
        assert_eq!(publisher.retired_len(), 1);
        assert_eq!(r0.refresh().version, 2);
        assert_eq!(publisher.reclaim(), 0, "worker 1 still on version 1");
        assert_eq!(r1.refresh().version, 2);
        assert_eq!(publisher.reclaim(), 1);
        assert_eq!(r0.tables().lbs[0].targets.len(), 2);
    }

    #[test]
    fn port_filter_ranges() {
        let f = PortFilter::new(&[
            PortRange {
                protocol: Protocol::Tcp,
                first: 80,
                last: 80,
            },
            PortRange {
                protocol: Protocol::Udp,
                first: 1024,
                last: 2048,
            },
        ]);
        assert_eq!(f.allows(6, 80), Some(true));
        assert_eq!(f.allows(6, 81), Some(false));
        assert_eq!(f.allows(17, 2048), Some(true));
        assert_eq!(f.allows(17, 2049), Some(false));
        assert_eq!(f.allows(132, 80), Some(false));
        assert_eq!(f.allows(1, 0), None);
        assert!(f.allows_protocol(6) && f.allows_protocol(17) && !f.allows_protocol(132));
        // More ranges than fit inline: the rest is checked too.
        let many: Vec<PortRange> = (0..10u16)
            .map(|i| PortRange {
                protocol: Protocol::Sctp,
                first: 1000 * i,
                last: 1000 * i + 10,
            })
            .collect();
        let f = PortFilter::new(&many);
        for i in 0..10u16 {
            assert_eq!(f.allows(132, 1000 * i + 5), Some(true), "range {i}");
            assert_eq!(f.allows(132, 1000 * i + 11), Some(false), "after range {i}");
        }
        assert_eq!(f.allows(6, 5), Some(false));
    }
}
