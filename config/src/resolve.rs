//! Validation of the desired state and its resolution into [`Resolved`]:
//! addresses allocated, routing derived.
//!
//! Allocation rules:
//!
//! 1. Explicit `ips` of every load balancer are claimed first (Public: from
//!    the public pool containing it; Internal: from the network's pool
//!    containing it, or outside every pool).
//! 2. Persisted `allocations` are honoured next, when the load balancer still
//!    exists, still serves that family, and the address still lies in an
//!    eligible pool and is free; otherwise they are released (a warning).
//! 3. Every family still without an address gets the lowest free address of
//!    the first eligible pool (in declaration order) that has one, load
//!    balancers taken in name order.
//!
//! With allocations persisted (the control plane does), adding or removing
//! another load balancer never moves an address; deleting a load balancer
//! releases its addresses.
//!
//! Layer 3 (resolution), above the input: names checked, addresses parsed,
//! allocated (with `pool`), destinations selected (with `selector`) and
//! routing derived.

use crate::error::{Errors, FieldPath, LocatedError};
use crate::model::{
    AssignedIp, Destination, Encap, IpFamily, Kind, LoadBalancerType, MacAddr, PortRange, Protocol,
    Resolved, ResolvedLoadBalancer,
};
use crate::origin::Origin;
use crate::pool::{addr_key, AddrRange};
use crate::problem::Problem;
use crate::settings::Underlay;
use crate::state::{
    Allocation, DesiredState, LoadBalancerSpec, NetworkInterfaceSpec, DEFAULT_MAGLEV_TABLE_SIZE,
    DEFAULT_WEIGHT,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

/// The result of resolving a desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// What the dataplane is built from.
    pub resolved: Resolved,
    /// Every pool address in use, sorted by load balancer then address: store
    /// these as the state's `allocations` to keep them stable.
    pub allocations: Vec<Allocation>,
    /// Things worth telling the operator that are not errors (a routing that
    /// is ignored or unused, a load balancer without destinations, a
    /// persisted allocation released).
    pub warnings: Vec<LocatedError>,
}

/// The largest prime below 2^24, the largest Maglev table size accepted.
pub const MAX_MAGLEV_TABLE_SIZE: u64 = 16_777_213;

/// Whether `n` is prime (trial division; `n` is at most 2^24 here).
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n & 1 == 0 {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.checked_rem(d) == Some(0) {
            return false;
        }
        d += 2;
    }
    true
}

struct Ctx {
    errors: Errors,
    warnings: Vec<LocatedError>,
}

fn located(origin: &Origin, kind: Kind, name: &str, rel: &str, problem: Problem) -> LocatedError {
    let name = name.to_string();
    let fallback = move || format!("{}[name={:?}]", kind.toml_key(), name);
    let (location, path) = origin.locate(&fallback, &FieldPath::parse(rel));
    LocatedError {
        location,
        path,
        problem,
    }
}

impl Ctx {
    fn err(&mut self, origin: &Origin, kind: Kind, name: &str, rel: &str, problem: Problem) {
        self.errors.push(located(origin, kind, name, rel, problem));
    }
    fn warn(&mut self, origin: &Origin, kind: Kind, name: &str, rel: &str, problem: Problem) {
        self.warnings
            .push(located(origin, kind, name, rel, problem));
    }
}

struct Pool<'a> {
    name: &'a str,
    network: Option<&'a str>,
    ranges: Vec<AddrRange>,
}

impl Pool<'_> {
    fn contains(&self, addr: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(addr))
    }
    fn eligible_for(&self, lb: &LoadBalancerSpec) -> bool {
        match lb.lb_type {
            LoadBalancerType::Public => self.network.is_none(),
            LoadBalancerType::Internal => self.network == Some(lb.network.as_str()),
        }
    }
}

struct Nic<'a> {
    spec: &'a NetworkInterfaceSpec,
    underlay: Option<IpAddr>,
    mac: Option<MacAddr>,
}

/// The resolved interfaces and their lookups, for routing.
struct NicIndex<'n, 'a> {
    nics: &'n [Nic<'a>],
    by_name: &'n HashMap<&'a str, usize>,
    by_uid: &'n HashMap<&'a str, usize>,
    candidates: &'n Candidates<'a>,
}

/// The interfaces a selector can pick, found without looking at every
/// interface for every load balancer: by network, and by network and one
/// label. Each list keeps the interfaces' order.
struct Candidates<'a> {
    by_network: HashMap<&'a str, Vec<usize>>,
    /// Network, label key, label value: the interfaces with that label.
    by_label: HashMap<&'a str, HashMap<&'a str, HashMap<&'a str, Vec<usize>>>>,
}

impl<'a> Candidates<'a> {
    fn new(nics: &[Nic<'a>]) -> Self {
        let mut by_network: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_label: HashMap<&str, HashMap<&str, HashMap<&str, Vec<usize>>>> = HashMap::new();
        for (i, n) in nics.iter().enumerate() {
            let network = n.spec.network.as_str();
            by_network.entry(network).or_default().push(i);
            for (k, v) in &n.spec.labels {
                by_label
                    .entry(network)
                    .or_default()
                    .entry(k.as_str())
                    .or_default()
                    .entry(v.as_str())
                    .or_default()
                    .push(i);
            }
        }
        Candidates {
            by_network,
            by_label,
        }
    }

    /// The interfaces of `network` that may match `selector` (a superset of
    /// those that do, in interface order): those with its first
    /// `match_labels` pair, else every interface of the network.
    fn of(&self, network: &str, selector: &crate::state::LabelSelector) -> &[usize] {
        let list = match selector.match_labels.iter().next() {
            Some((k, v)) => self
                .by_label
                .get(network)
                .and_then(|keys| keys.get(k.as_str()))
                .and_then(|values| values.get(v.as_str())),
            None => self.by_network.get(network),
        };
        list.map_or(&[], Vec::as_slice)
    }
}

/// Whether `key` (a name, else a uid) names an interface of `network`.
fn interface_of_network(
    key: &str,
    network: &str,
    nics: &[Nic<'_>],
    by_name: &HashMap<&str, usize>,
    by_uid: &HashMap<&str, usize>,
) -> bool {
    by_name
        .get(key)
        .or_else(|| by_uid.get(key))
        .is_some_and(|i| nics[*i].spec.network == network)
}

fn parse_mac(
    ctx: &mut Ctx,
    origin: &Origin,
    kind: Kind,
    name: &str,
    rel: &str,
    text: &str,
) -> Option<MacAddr> {
    match text.parse::<MacAddr>() {
        Ok(m) if m.is_unicast() => Some(m),
        Ok(m) => {
            ctx.err(
                origin,
                kind,
                name,
                rel,
                Problem::NotUnicastMac(m.to_string()),
            );
            None
        }
        Err(_) => {
            ctx.err(origin, kind, name, rel, Problem::BadMac(text.to_string()));
            None
        }
    }
}

fn parse_ip(
    ctx: &mut Ctx,
    origin: &Origin,
    kind: Kind,
    name: &str,
    rel: &str,
    text: &str,
) -> Option<IpAddr> {
    match text.trim().parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.err(origin, kind, name, rel, Problem::BadIp(text.to_string()));
            None
        }
    }
}

/// The families a load balancer serves: `ip_families`, else those of its
/// `ips`, else IPv4.
pub fn lb_families(lb: &LoadBalancerSpec) -> Vec<IpFamily> {
    if !lb.ip_families.is_empty() {
        let mut out: Vec<IpFamily> = Vec::new();
        for f in &lb.ip_families {
            if !out.contains(f) {
                out.push(*f);
            }
        }
        return out;
    }
    let mut out: Vec<IpFamily> = lb
        .ips
        .iter()
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(|a| IpFamily::of(&a))
        .collect();
    out.sort();
    out.dedup();
    if out.is_empty() {
        out.push(IpFamily::IPv4);
    }
    out
}

fn check_names<'a>(ctx: &mut Ctx, kind: Kind, items: impl Iterator<Item = (&'a str, &'a Origin)>) {
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for (name, origin) in items {
        if name.is_empty() {
            ctx.err(origin, kind, name, "name", Problem::EmptyName);
            continue;
        }
        if let Some(first) = seen.get(name) {
            let (loc, path) = first.locate(
                &|| format!("{}[name={name:?}]", kind.toml_key()),
                &FieldPath::root(),
            );
            let first = match loc {
                Some(l) => format!("{l}"),
                None => path,
            };
            ctx.err(
                origin,
                kind,
                name,
                "name",
                Problem::DuplicateName {
                    kind,
                    name: name.to_string(),
                    first,
                },
            );
        } else {
            seen.insert(name, origin);
        }
    }
}

impl DesiredState {
    /// Validates the whole state against `underlay` (which says whether MACs
    /// are needed and which source families exist), allocates addresses and
    /// derives every load balancer's destinations. Every problem found is
    /// returned, each with its location.
    pub fn resolve(&self, underlay: &Underlay) -> Result<Resolution, Errors> {
        let mut ctx = Ctx {
            errors: Errors::default(),
            warnings: Vec::new(),
        };

        // Names.
        check_names(
            &mut ctx,
            Kind::Pool,
            self.pools.iter().map(|o| (o.name.as_str(), &o.origin)),
        );
        check_names(
            &mut ctx,
            Kind::Network,
            self.networks.iter().map(|o| (o.name.as_str(), &o.origin)),
        );
        check_names(
            &mut ctx,
            Kind::NetworkInterface,
            self.network_interfaces
                .iter()
                .map(|o| (o.name.as_str(), &o.origin)),
        );
        check_names(
            &mut ctx,
            Kind::LoadBalancer,
            self.load_balancers
                .iter()
                .map(|o| (o.name.as_str(), &o.origin)),
        );
        check_names(
            &mut ctx,
            Kind::LoadBalancerRouting,
            self.load_balancer_routings
                .iter()
                .map(|o| (o.name.as_str(), &o.origin)),
        );

        // Networks.
        let mut vnis: HashMap<&str, u32> = HashMap::new();
        for n in &self.networks {
            if n.vni > 0xFF_FFFF {
                ctx.err(
                    &n.origin,
                    Kind::Network,
                    &n.name,
                    "vni",
                    Problem::VniOutOfRange(n.vni),
                );
            }
            vnis.entry(n.name.as_str())
                .or_insert((n.vni & 0xFF_FFFF) as u32);
        }
        let known_network =
            |ctx: &mut Ctx, origin: &Origin, kind: Kind, name: &str, rel: &str, net: &str| {
                if !vnis.contains_key(net) {
                    ctx.err(
                        origin,
                        kind,
                        name,
                        rel,
                        Problem::UnknownNetwork(net.to_string()),
                    );
                    false
                } else {
                    true
                }
            };

        // Pools.
        let pool_errors_before = ctx.errors.len();
        let mut pools: Vec<Pool<'_>> = Vec::new();
        let mut all_ranges: Vec<(AddrRange, usize, usize)> = Vec::new();
        for (pi, p) in self.pools.iter().enumerate() {
            if let Some(net) = &p.network {
                known_network(&mut ctx, &p.origin, Kind::Pool, &p.name, "network", net);
            }
            if p.addresses.is_empty() {
                ctx.err(
                    &p.origin,
                    Kind::Pool,
                    &p.name,
                    "addresses",
                    Problem::Invalid("a pool needs at least one address".into()),
                );
            }
            for (rel, problem) in p.bgp.problems() {
                ctx.err(&p.origin, Kind::Pool, &p.name, &rel, problem);
            }
            let mut ranges = Vec::new();
            for (ei, entry) in p.addresses.iter().enumerate() {
                match AddrRange::parse(entry) {
                    Ok(r) => {
                        ranges.push(r);
                        all_ranges.push((r, pi, ei));
                    }
                    Err(e) => ctx.err(
                        &p.origin,
                        Kind::Pool,
                        &p.name,
                        &format!("addresses[{ei}]"),
                        Problem::BadPoolEntry {
                            entry: entry.clone(),
                            reason: e.to_string(),
                        },
                    ),
                }
            }
            pools.push(Pool {
                name: &p.name,
                network: p.network.as_deref(),
                ranges,
            });
        }
        // Overlaps: report each entry against the first earlier entry it hits.
        for (i, (r, pi, ei)) in all_ranges.iter().enumerate() {
            if let Some((_, opi, oei)) = all_ranges[..i].iter().find(|(o, _, _)| o.overlaps(r)) {
                let p = &self.pools[*pi];
                ctx.err(
                    &p.origin,
                    Kind::Pool,
                    &p.name,
                    &format!("addresses[{ei}]"),
                    Problem::PoolsOverlap {
                        entry: p.addresses[*ei].clone(),
                        other: self.pools[*opi].addresses[*oei].clone(),
                        pool: self.pools[*opi].name.clone(),
                    },
                );
            }
        }
        let pools_ok = ctx.errors.len() == pool_errors_before;

        // Network interfaces.
        let mut nics: Vec<Nic<'_>> = Vec::new();
        let mut uids: HashMap<&str, &Origin> = HashMap::new();
        for n in &self.network_interfaces {
            let (o, k, name) = (&n.origin, Kind::NetworkInterface, n.name.as_str());
            known_network(&mut ctx, o, k, name, "network", &n.network);
            if !n.uid.is_empty() {
                if uids.contains_key(n.uid.as_str()) {
                    ctx.err(
                        o,
                        k,
                        name,
                        "uid",
                        Problem::Invalid(format!(
                            "uid {:?} is used by another network interface",
                            n.uid
                        )),
                    );
                } else {
                    uids.insert(&n.uid, o);
                }
            }
            for (i, ip) in n.ips.iter().enumerate() {
                parse_ip(&mut ctx, o, k, name, &format!("ips[{i}]"), ip);
            }
            let underlay_addr = match &n.underlay {
                None => {
                    ctx.err(
                        o,
                        k,
                        name,
                        "underlay",
                        Problem::MissingUnderlay(n.name.clone()),
                    );
                    None
                }
                Some(u) => parse_ip(&mut ctx, o, k, name, "underlay", u),
            };
            let mac = n
                .mac
                .as_ref()
                .and_then(|m| parse_mac(&mut ctx, o, k, name, "mac", m));
            for (rel, problem) in crate::selector::label_problems("labels", &n.labels) {
                ctx.err(o, k, name, &rel, problem);
            }
            nics.push(Nic {
                spec: n,
                underlay: underlay_addr,
                mac,
            });
        }
        let nic_by_name: HashMap<&str, usize> = nics
            .iter()
            .enumerate()
            .rev()
            .map(|(i, n)| (n.spec.name.as_str(), i))
            .collect();
        let nic_by_uid: HashMap<&str, usize> = nics
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, n)| !n.spec.uid.is_empty())
            .map(|(i, n)| (n.spec.uid.as_str(), i))
            .collect();

        // Load balancers: static checks and explicit ips.
        let mut explicit: Vec<Vec<(IpAddr, Option<String>)>> = Vec::new();
        for lb in &self.load_balancers {
            let (o, k, name) = (&lb.origin, Kind::LoadBalancer, lb.name.as_str());
            known_network(&mut ctx, o, k, name, "network", &lb.network);
            for (i, f) in lb.ip_families.iter().enumerate() {
                if lb.ip_families[..i].contains(f) {
                    ctx.err(
                        o,
                        k,
                        name,
                        &format!("ip_families[{i}]"),
                        Problem::DuplicateFamily(*f),
                    );
                }
            }
            let families = lb_families(lb);
            let mut ips: Vec<(IpAddr, Option<String>)> = Vec::new();
            for (i, text) in lb.ips.iter().enumerate() {
                let rel = format!("ips[{i}]");
                let Some(addr) = parse_ip(&mut ctx, o, k, name, &rel, text) else {
                    continue;
                };
                let family = IpFamily::of(&addr);
                if !families.contains(&family) {
                    let families = families
                        .iter()
                        .map(|f| f.to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    ctx.err(
                        o,
                        k,
                        name,
                        &rel,
                        Problem::WrongFamily {
                            addr,
                            family,
                            families: format!("[{families}]"),
                        },
                    );
                    continue;
                }
                if ips.iter().any(|(a, _)| IpFamily::of(a) == family) {
                    ctx.err(o, k, name, &rel, Problem::TwoOfOneFamily(family));
                    continue;
                }
                ips.push((addr, None));
            }
            // Ports.
            let mut parsed: Vec<(usize, PortRange)> = Vec::new();
            for (i, p) in lb.ports.iter().enumerate() {
                let mut ok = true;
                if !(1..=65535).contains(&p.port) {
                    ctx.err(
                        o,
                        k,
                        name,
                        &format!("ports[{i}].port"),
                        Problem::PortOutOfRange(p.port),
                    );
                    ok = false;
                }
                if let Some(end) = p.end_port {
                    if !(1..=65535).contains(&end) {
                        ctx.err(
                            o,
                            k,
                            name,
                            &format!("ports[{i}].end_port"),
                            Problem::PortOutOfRange(end),
                        );
                        ok = false;
                    } else if ok && end < p.port {
                        ctx.err(
                            o,
                            k,
                            name,
                            &format!("ports[{i}].end_port"),
                            Problem::EndBeforePort { port: p.port, end },
                        );
                        ok = false;
                    }
                }
                if !ok {
                    continue;
                }
                let range = PortRange {
                    protocol: p.protocol,
                    first: p.port as u16,
                    last: p.end_port.unwrap_or(p.port) as u16,
                };
                if let Some((j, other)) = parsed.iter().find(|(_, r)| {
                    r.protocol == range.protocol && r.first <= range.last && range.first <= r.last
                }) {
                    ctx.err(
                        o,
                        k,
                        name,
                        &format!("ports[{i}]"),
                        Problem::PortsOverlap {
                            this: range.to_string(),
                            other: other.to_string(),
                            other_index: *j,
                        },
                    );
                    continue;
                }
                parsed.push((i, range));
            }
            if let Some(check) = &lb.health_check {
                for (field, problem) in check.problems() {
                    ctx.err(o, k, name, &format!("health_check.{field}"), problem.into());
                }
            }
            if let Some(size) = lb.maglev_table_size {
                if !(7..=MAX_MAGLEV_TABLE_SIZE).contains(&size) {
                    ctx.err(
                        o,
                        k,
                        name,
                        "maglev_table_size",
                        Problem::TableSizeOutOfRange(size),
                    );
                } else if !is_prime(size) {
                    ctx.err(o, k, name, "maglev_table_size", Problem::NotPrime(size));
                }
            }
            if let Some(sel) = &lb.network_interface_selector {
                for (rel, problem) in sel.problems() {
                    ctx.err(
                        o,
                        k,
                        name,
                        &format!("network_interface_selector.{rel}"),
                        problem,
                    );
                }
            }
            for key in lb.weights.keys() {
                if !interface_of_network(key, &lb.network, &nics, &nic_by_name, &nic_by_uid) {
                    ctx.err(
                        o,
                        k,
                        name,
                        &format!("weights.{key}"),
                        Problem::WeightUnknownInterface {
                            name: key.clone(),
                            network: lb.network.clone(),
                        },
                    );
                }
            }
            explicit.push(ips);
        }

        // Allocation (only over well-formed pools: errors there would cascade).
        let mut assigned: Vec<Vec<AssignedIp>> = vec![Vec::new(); self.load_balancers.len()];
        let mut allocations: Vec<Allocation> = Vec::new();
        self.allocate(
            &mut ctx,
            &pools,
            &explicit,
            pools_ok,
            &mut assigned,
            &mut allocations,
        );

        // Routing.
        let mut resolved = Vec::new();
        let lb_names: HashSet<&str> = self
            .load_balancers
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        for r in &self.load_balancer_routings {
            if !lb_names.contains(r.name.as_str()) {
                ctx.warn(
                    &r.origin,
                    Kind::LoadBalancerRouting,
                    &r.name,
                    "name",
                    Problem::RoutingUnused(r.name.clone()),
                );
            }
        }
        let candidates = Candidates::new(&nics);
        let index = NicIndex {
            nics: &nics,
            by_name: &nic_by_name,
            by_uid: &nic_by_uid,
            candidates: &candidates,
        };
        for (li, lb) in self.load_balancers.iter().enumerate() {
            let destinations = self.route(&mut ctx, lb, &index, underlay);
            let mut ports: Vec<PortRange> = lb
                .ports
                .iter()
                .filter(|p| (1..=65535).contains(&p.port))
                .map(|p| PortRange {
                    protocol: p.protocol,
                    first: p.port as u16,
                    last: p.end_port.unwrap_or(p.port).clamp(p.port, 65535) as u16,
                })
                .collect();
            if lb.ports.is_empty() {
                ports = Protocol::ALL
                    .iter()
                    .map(|&protocol| PortRange {
                        protocol,
                        first: 1,
                        last: 65535,
                    })
                    .collect();
            }
            ports.sort();
            resolved.push(ResolvedLoadBalancer {
                name: lb.name.clone(),
                lb_type: lb.lb_type,
                network: lb.network.clone(),
                vni: vnis.get(lb.network.as_str()).copied().unwrap_or(0),
                ips: std::mem::take(&mut assigned[li]),
                ports,
                icmp_echo: lb.icmp_echo,
                maglev_table_size: lb
                    .maglev_table_size
                    .unwrap_or(DEFAULT_MAGLEV_TABLE_SIZE)
                    .min(MAX_MAGLEV_TABLE_SIZE) as u32,
                destinations,
            });
        }
        resolved.sort_by(|a, b| a.name.cmp(&b.name));
        allocations.sort_by(|a, b| {
            (a.load_balancer.as_str(), a.address.parse::<IpAddr>().ok())
                .cmp(&(b.load_balancer.as_str(), b.address.parse::<IpAddr>().ok()))
        });

        // One interface selected by several load balancers must not report
        // its missing MAC several times.
        let mut seen = HashSet::new();
        ctx.errors.0.retain(|e| seen.insert(e.to_string()));
        ctx.errors.sort_by_location();
        let mut seen = HashSet::new();
        ctx.warnings.retain(|e| seen.insert(e.to_string()));

        let Ctx { errors, warnings } = ctx;
        errors.into_result(Resolution {
            resolved: Resolved {
                load_balancers: resolved,
            },
            allocations,
            warnings,
        })
    }

    fn allocate(
        &self,
        ctx: &mut Ctx,
        pools: &[Pool<'_>],
        explicit: &[Vec<(IpAddr, Option<String>)>],
        pools_ok: bool,
        assigned: &mut [Vec<AssignedIp>],
        allocations: &mut Vec<Allocation>,
    ) {
        // Address -> holder (load balancer index).
        let mut used: BTreeMap<(IpFamily, u128), usize> = BTreeMap::new();

        // 1. Explicit ips.
        for (li, lb) in self.load_balancers.iter().enumerate() {
            let (o, k, name) = (&lb.origin, Kind::LoadBalancer, lb.name.as_str());
            for (addr, _) in &explicit[li] {
                let rel = match lb
                    .ips
                    .iter()
                    .position(|t| t.trim().parse::<IpAddr>().ok() == Some(*addr))
                {
                    Some(i) => format!("ips[{i}]"),
                    None => "ips".to_string(),
                };
                let key = addr_key(*addr);
                if let Some(&holder) = used.get(&key) {
                    ctx.err(
                        o,
                        k,
                        name,
                        &rel,
                        Problem::AddressClaimedTwice {
                            addr: *addr,
                            other: self.load_balancers[holder].name.clone(),
                        },
                    );
                    continue;
                }
                let containing = pools.iter().find(|p| p.contains(*addr));
                let pool = match (lb.lb_type, containing) {
                    (_, Some(p)) if p.eligible_for(lb) => Some(p.name.to_string()),
                    (LoadBalancerType::Internal, None) => None,
                    (LoadBalancerType::Public, _) => {
                        ctx.err(o, k, name, &rel, Problem::NotInPublicPool(*addr));
                        continue;
                    }
                    (LoadBalancerType::Internal, Some(p)) => {
                        ctx.err(
                            o,
                            k,
                            name,
                            &rel,
                            Problem::Invalid(format!(
                                "{addr} lies in pool {:?}, which is not bound to network {:?}",
                                p.name, lb.network
                            )),
                        );
                        continue;
                    }
                };
                used.insert(key, li);
                assigned[li].push(AssignedIp { addr: *addr, pool });
            }
        }

        if !pools_ok {
            // Malformed or overlapping pools: allocating from them would
            // only add confusing follow-up errors.
            return;
        }

        // 2. Persisted allocations.
        let lb_index: HashMap<&str, usize> = self
            .load_balancers
            .iter()
            .enumerate()
            .rev()
            .map(|(i, l)| (l.name.as_str(), i))
            .collect();
        for a in &self.allocations {
            let (o, k) = (&a.origin, Kind::Allocation);
            let Some(addr) = parse_ip(ctx, o, k, &a.load_balancer, "address", &a.address) else {
                continue;
            };
            let family = IpFamily::of(&addr);
            let drop = |ctx: &mut Ctx, why: &str| {
                ctx.warn(
                    o,
                    k,
                    &a.load_balancer,
                    "",
                    Problem::AllocationDropped {
                        addr: a.address.clone(),
                        lb: a.load_balancer.clone(),
                        why: why.to_string(),
                    },
                )
            };
            let Some(&li) = lb_index.get(a.load_balancer.as_str()) else {
                drop(ctx, "the load balancer no longer exists");
                continue;
            };
            let lb = &self.load_balancers[li];
            if !lb_families(lb).contains(&family) {
                drop(ctx, "the load balancer no longer serves this family");
                continue;
            }
            if assigned[li].iter().any(|x| IpFamily::of(&x.addr) == family) {
                if !assigned[li].iter().any(|x| x.addr == addr) {
                    drop(ctx, "the load balancer has another address of this family");
                }
                continue;
            }
            let pool = pools.iter().find(|p| {
                p.contains(addr)
                    && p.eligible_for(lb)
                    && !matches!(a.pool.as_deref(), Some(n) if n != p.name)
            });
            let Some(pool) = pool else {
                drop(ctx, "the address is in no pool this load balancer may use");
                continue;
            };
            let key = addr_key(addr);
            if let Some(&holder) = used.get(&key) {
                if holder != li {
                    drop(
                        ctx,
                        &format!(
                            "the address is claimed by {:?}",
                            self.load_balancers[holder].name
                        ),
                    );
                }
                continue;
            }
            used.insert(key, li);
            assigned[li].push(AssignedIp {
                addr,
                pool: Some(pool.name.to_string()),
            });
        }

        // 3. New allocations, load balancers in name order.
        let mut order: Vec<usize> = (0..self.load_balancers.len()).collect();
        order.sort_by(|a, b| {
            self.load_balancers[*a]
                .name
                .cmp(&self.load_balancers[*b].name)
        });
        for li in order {
            let lb = &self.load_balancers[li];
            let (o, k, name) = (&lb.origin, Kind::LoadBalancer, lb.name.as_str());
            let families = lb_families(lb);
            let rel = if lb.ip_families.is_empty() {
                ""
            } else {
                "ip_families"
            };
            for family in &families {
                if assigned[li]
                    .iter()
                    .any(|x| IpFamily::of(&x.addr) == *family)
                {
                    continue;
                }
                let eligible: Vec<&Pool<'_>> = pools
                    .iter()
                    .filter(|p| p.eligible_for(lb) && p.ranges.iter().any(|r| r.family == *family))
                    .collect();
                if eligible.is_empty() {
                    let scope = match lb.lb_type {
                        LoadBalancerType::Public => "public (without `network`)".to_string(),
                        LoadBalancerType::Internal => format!(
                            "network {:?} (set `ips`, or add a pool with network = {:?})",
                            lb.network, lb.network
                        ),
                    };
                    ctx.err(
                        o,
                        k,
                        name,
                        rel,
                        Problem::NoPool {
                            scope,
                            family: *family,
                        },
                    );
                    continue;
                }
                let found = eligible.iter().find_map(|p| {
                    p.ranges
                        .iter()
                        .filter(|r| r.family == *family)
                        .find_map(|r| r.lowest_free(&used))
                        .map(|a| (p, a))
                });
                match found {
                    Some((p, addr)) => {
                        used.insert(addr_key(addr), li);
                        assigned[li].push(AssignedIp {
                            addr,
                            pool: Some(p.name.to_string()),
                        });
                    }
                    None => {
                        let size = eligible
                            .iter()
                            .flat_map(|p| p.ranges.iter())
                            .filter(|r| r.family == *family)
                            .fold(0u128, |acc, r| acc.saturating_add(r.size()));
                        let pools = eligible
                            .iter()
                            .map(|p| format!("{:?}", p.name))
                            .collect::<Vec<_>>()
                            .join(", ");
                        ctx.err(
                            o,
                            k,
                            name,
                            rel,
                            Problem::PoolExhausted {
                                pools,
                                family: *family,
                                size,
                            },
                        );
                    }
                }
            }
            // Order: as in ip_families (IPv4 first by default).
            assigned[li].sort_by_key(|x| families.iter().position(|f| *f == IpFamily::of(&x.addr)));
            for x in &assigned[li] {
                if let Some(pool) = &x.pool {
                    let is_explicit = explicit[li].iter().any(|(a, _)| *a == x.addr);
                    if !is_explicit {
                        allocations.push(Allocation {
                            load_balancer: lb.name.clone(),
                            address: x.addr.to_string(),
                            pool: Some(pool.clone()),
                            origin: Origin::default(),
                        });
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn route(
        &self,
        ctx: &mut Ctx,
        lb: &LoadBalancerSpec,
        index: &NicIndex<'_, '_>,
        underlay: &Underlay,
    ) -> Vec<Destination> {
        let (nics, nic_by_name, nic_by_uid) = (index.nics, index.by_name, index.by_uid);
        let weight_of = |name: &str, uid: &str| {
            lb.weights
                .get(name)
                .or_else(|| {
                    if uid.is_empty() {
                        None
                    } else {
                        lb.weights.get(uid)
                    }
                })
                .copied()
                .unwrap_or(DEFAULT_WEIGHT)
        };
        let routing = self.routing(&lb.name);
        let mut out: Vec<Destination> = Vec::new();
        if let Some(sel) = &lb.network_interface_selector {
            if let Some(r) = routing {
                ctx.warn(
                    &r.origin,
                    Kind::LoadBalancerRouting,
                    &r.name,
                    "name",
                    Problem::RoutingIgnored(lb.name.clone()),
                );
            }
            for nic in index
                .candidates
                .of(&lb.network, sel)
                .iter()
                .map(|&i| &nics[i])
            {
                let s = nic.spec;
                if s.network != lb.network
                    || s.state != crate::state::NicState::Available
                    || !sel.matches(&s.labels)
                {
                    continue;
                }
                let Some(addr) = nic.underlay else { continue };
                let (o, k) = (&s.origin, Kind::NetworkInterface);
                if matches!(underlay.encap, Encap::Vxlan { .. })
                    && nic.mac.is_none()
                    && s.mac.is_none()
                {
                    ctx.err(o, k, &s.name, "mac", Problem::MissingMac(s.name.clone()));
                }
                check_source(ctx, underlay, addr, o, k, &s.name, "underlay");
                out.push(Destination {
                    name: s.name.clone(),
                    uid: s.uid.clone(),
                    underlay: addr,
                    mac: nic.mac,
                    weight: weight_of(&s.name, &s.uid),
                });
            }
            // A weight (a drain, say) for an interface of the network that
            // the selector does not pick now is kept, but said: it may be a
            // typo for one it does pick. (One of no interface of the
            // network is an error, found earlier.)
            for key in lb.weights.keys() {
                let of_network =
                    interface_of_network(key, &lb.network, nics, nic_by_name, nic_by_uid);
                let destination = out
                    .iter()
                    .any(|d| d.name == *key || (!d.uid.is_empty() && d.uid == *key));
                if of_network && !destination {
                    ctx.warn(
                        &lb.origin,
                        Kind::LoadBalancer,
                        &lb.name,
                        &format!("weights.{key}"),
                        Problem::WeightNotDestination {
                            name: key.clone(),
                            lb: lb.name.clone(),
                        },
                    );
                }
            }
        } else {
            let Some(r) = routing else {
                ctx.warn(
                    &lb.origin,
                    Kind::LoadBalancer,
                    &lb.name,
                    "",
                    Problem::NoRouting(lb.name.clone()),
                );
                return out;
            };
            let (o, k, rname) = (&r.origin, Kind::LoadBalancerRouting, r.name.as_str());
            if let Some(net) = &r.network {
                if *net != lb.network {
                    ctx.err(
                        o,
                        k,
                        rname,
                        "network",
                        Problem::RoutingNetworkMismatch {
                            routing: net.clone(),
                            lb: lb.network.clone(),
                        },
                    );
                }
            }
            for (j, d) in r.destinations.iter().enumerate() {
                let rel = format!("destinations[{j}]");
                if d.name.is_empty() {
                    ctx.err(o, k, rname, &format!("{rel}.name"), Problem::EmptyName);
                    continue;
                }
                let dup = r.destinations[..j].iter().any(|e| {
                    (!d.uid.is_empty() && e.uid == d.uid)
                        || (d.uid.is_empty() || e.uid.is_empty()) && e.name == d.name
                });
                if dup {
                    ctx.err(
                        o,
                        k,
                        rname,
                        &rel,
                        Problem::DuplicateDestination(d.name.clone()),
                    );
                    continue;
                }
                // By uid, else by name (a routing written before the
                // interface got its uid still resolves).
                let nic = (!d.uid.is_empty())
                    .then(|| nic_by_uid.get(d.uid.as_str()))
                    .flatten()
                    .or_else(|| nic_by_name.get(d.name.as_str()))
                    .map(|i| &nics[*i]);
                if let Some(n) = nic {
                    if n.spec.network != lb.network {
                        ctx.err(
                            o,
                            k,
                            rname,
                            &rel,
                            Problem::DestinationWrongNetwork {
                                name: d.name.clone(),
                                nic_network: n.spec.network.clone(),
                                lb_network: lb.network.clone(),
                            },
                        );
                        continue;
                    }
                }
                let own_underlay = match &d.underlay {
                    Some(t) => match parse_ip(ctx, o, k, rname, &format!("{rel}.underlay"), t) {
                        Some(a) => Some(a),
                        None => continue,
                    },
                    None => None,
                };
                let own_mac = match &d.mac {
                    Some(t) => match parse_mac(ctx, o, k, rname, &format!("{rel}.mac"), t) {
                        Some(m) => Some(m),
                        None => continue,
                    },
                    None => None,
                };
                let addr = match (own_underlay, nic) {
                    (Some(a), _) => a,
                    (None, Some(n)) => match n.underlay {
                        Some(a) => a,
                        None => continue, // reported on the interface
                    },
                    (None, None) => {
                        ctx.err(
                            o,
                            k,
                            rname,
                            &rel,
                            Problem::UnknownDestination(d.name.clone()),
                        );
                        continue;
                    }
                };
                let mac = own_mac.or(nic.and_then(|n| n.mac));
                if matches!(underlay.encap, Encap::Vxlan { .. }) && mac.is_none() {
                    let bad_nic_mac = nic.is_some_and(|n| n.spec.mac.is_some());
                    if !bad_nic_mac {
                        ctx.err(o, k, rname, &rel, Problem::MissingMac(d.name.clone()));
                    }
                }
                if own_underlay.is_some() {
                    check_source(ctx, underlay, addr, o, k, rname, &format!("{rel}.underlay"));
                } else if let Some(n) = nic {
                    check_source(
                        ctx,
                        underlay,
                        addr,
                        &n.spec.origin,
                        Kind::NetworkInterface,
                        &n.spec.name,
                        "underlay",
                    );
                }
                let uid = if d.uid.is_empty() {
                    nic.map(|n| n.spec.uid.clone()).unwrap_or_default()
                } else {
                    d.uid.clone()
                };
                out.push(Destination {
                    name: d.name.clone(),
                    weight: d.weight.unwrap_or_else(|| weight_of(&d.name, &uid)),
                    uid,
                    underlay: addr,
                    mac,
                });
            }
        }
        out.sort_by(|a, b| {
            (a.name.as_str(), a.uid.as_str()).cmp(&(b.name.as_str(), b.uid.as_str()))
        });
        out
    }
}

fn check_source(
    ctx: &mut Ctx,
    underlay: &Underlay,
    addr: IpAddr,
    origin: &Origin,
    kind: Kind,
    name: &str,
    rel: &str,
) {
    let missing = match addr {
        IpAddr::V4(_) => underlay.source_ipv4.is_none(),
        IpAddr::V6(_) => underlay.source_ipv6.is_none(),
    };
    if missing {
        ctx.err(
            origin,
            kind,
            name,
            rel,
            Problem::NoSourceAddress {
                addr,
                family: IpFamily::of(&addr),
            },
        );
    }
}
