//! The desired state as written: pools, networks, network interfaces, load
//! balancers, routings and persisted address allocations.
//!
//! These are the serde input types (TOML field names; Ironcore manifests are
//! mapped onto them by [`crate::manifest`]). Addresses and MACs are kept as
//! text here so that every malformed one is reported, with its location, in
//! one pass; [`DesiredState::resolve`](crate::resolve) parses and checks them.
//! Serializing a [`DesiredState`] and loading it again gives an equal state
//! (see [`DesiredState::to_toml`]).
//!
//! Layer 2 (input), above the problems and locations: what the readers
//! (`toml_doc`, `manifest`) fill.

use crate::model::{IcmpEcho, IpFamily, Kind, LoadBalancerType, Protocol};
use crate::origin::Origin;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The default Maglev table size (a prime).
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65537;

/// The weight of a destination nobody gave a weight.
pub const DEFAULT_WEIGHT: u32 = 100;

/// Everything lbfwd should serve: the part of the configuration that the
/// control plane changes at run time and persists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredState {
    /// Address pools (`[[pool]]`).
    #[serde(default, rename = "pool", skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolSpec>,
    /// Networks (`[[network]]`).
    #[serde(default, rename = "network", skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkSpec>,
    /// Network interfaces, the possible targets (`[[network_interface]]`).
    #[serde(
        default,
        rename = "network_interface",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub network_interfaces: Vec<NetworkInterfaceSpec>,
    /// Load balancers (`[[load_balancer]]`).
    #[serde(
        default,
        rename = "load_balancer",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub load_balancers: Vec<LoadBalancerSpec>,
    /// Routings for load balancers without selector
    /// (`[[load_balancer_routing]]`).
    #[serde(
        default,
        rename = "load_balancer_routing",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub load_balancer_routings: Vec<LoadBalancerRoutingSpec>,
    /// Address allocations made earlier, honoured before new ones are made
    /// (`[[allocation]]`); written by `lbctl export` and the state file.
    #[serde(default, rename = "allocation", skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<Allocation>,
}

/// A pool of addresses load balancers get their VIPs from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Unique pool name.
    pub name: String,
    /// CIDRs (`203.0.113.0/28`) and inclusive ranges
    /// (`203.0.113.100-203.0.113.110`), IPv4 and IPv6 mixed; every address of
    /// a CIDR is used. Pools must not overlap.
    pub addresses: Vec<String>,
    /// When set, the pool is internal to this network: Internal load
    /// balancers of the network allocate from it, Public ones never do.
    /// When unset, the pool is public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Whether and how its addresses are announced over BGP (see
    /// [`crate::bgp::PoolBgp`]).
    #[serde(default, skip_serializing_if = "crate::bgp::PoolBgp::is_default")]
    pub bgp: crate::bgp::PoolBgp,
    /// Where it was read from.
    #[serde(skip)]
    pub origin: Origin,
}

/// A network: the scope of a load balancer's targets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Unique network name.
    pub name: String,
    /// VXLAN network identifier, 0 to 16777215 (24 bits).
    pub vni: u64,
    /// Where it was read from.
    #[serde(skip)]
    pub origin: Origin,
}

/// The state of a network interface, as in Ironcore.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NicState {
    /// Ready: selectable as a destination.
    #[default]
    Available,
    /// Not ready yet: never a destination.
    Pending,
    /// Broken: never a destination.
    Error,
}

/// A network interface: a possible target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInterfaceSpec {
    /// Unique interface name.
    pub name: String,
    /// Ironcore's uid (a UUID); routings may name the interface by it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The network it is in.
    pub network: String,
    /// Labels, matched by load balancer selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Its own addresses inside the network (informational; checked for
    /// syntax).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// The underlay address encapsulated traffic for it is sent to
    /// (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay: Option<String>,
    /// The inner destination MAC; required when the encapsulation is VXLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// `Available`, `Pending` or `Error`; only `Available` interfaces are
    /// destinations. Default `Available`.
    #[serde(default)]
    pub state: NicState,
    /// Where it was read from.
    #[serde(skip)]
    pub origin: Origin,
}

/// One entry of a load balancer's allow list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// `TCP` (default), `UDP` or `SCTP`; any case.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// The port, or the first port of the range (1-65535).
    pub port: i64,
    /// The last port of the range (inclusive, >= `port`); unset: only `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
}

fn default_protocol() -> Protocol {
    Protocol::Tcp
}

/// A Kubernetes label selector: every `match_labels` pair and every
/// expression must hold. An empty selector (`{}`) selects every interface of
/// the network (as `metav1.LabelSelector` does); a load balancer without any
/// selector takes its destinations from a routing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based requirement of a [`LabelSelector`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: SelectorOperator,
    /// The values for `In` / `NotIn` (non-empty); empty for `Exists` /
    /// `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A label selector operator, with Kubernetes semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// The label is present and its value is one of `values`.
    In,
    /// The label is absent, or its value is none of `values`.
    NotIn,
    /// The label is present (any value).
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// A load balancer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSpec {
    /// Unique load balancer name.
    pub name: String,
    /// `Public` (addresses from public pools) or `Internal` (addresses
    /// given, or from a pool bound to the network).
    #[serde(rename = "type")]
    pub lb_type: LoadBalancerType,
    /// One address per family. Default: the families of `ips` when given,
    /// else `["IPv4"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<IpFamily>,
    /// The network whose interfaces are its targets.
    pub network: String,
    /// Which interfaces of the network are targets; unset: the routing of
    /// the same name says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_selector: Option<LabelSelector>,
    /// The allow list; empty: every port of TCP, UDP and SCTP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    /// Explicit addresses, at most one per family. Public: each must lie in
    /// a public pool and is claimed from it. Internal: as given (claimed from
    /// a pool of the network when it lies in one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// `drop` (default) or `reply` to ICMP echo requests for its addresses.
    #[serde(default, skip_serializing_if = "is_default")]
    pub icmp_echo: IcmpEcho,
    /// Maglev lookup table size; a prime, larger than 100 times the number
    /// of destinations for even spreading. Default 65537.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev_table_size: Option<u64>,
    /// Weights of selected interfaces, by interface name (or uid); an
    /// interface not listed has weight 100; 0 drains it (no new flows).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, u32>,
    /// Where it was read from.
    #[serde(skip)]
    pub origin: Origin,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl LoadBalancerSpec {
    /// A load balancer with only the required fields set.
    pub fn new(name: &str, lb_type: LoadBalancerType, network: &str) -> Self {
        LoadBalancerSpec {
            name: name.to_string(),
            lb_type,
            ip_families: Vec::new(),
            network: network.to_string(),
            network_interface_selector: None,
            ports: Vec::new(),
            ips: Vec::new(),
            icmp_echo: IcmpEcho::Drop,
            maglev_table_size: None,
            weights: BTreeMap::new(),
            origin: Origin::default(),
        }
    }
}

/// The destinations of a load balancer without selector (Ironcore's
/// `LoadBalancerRouting`, same name as the load balancer).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerRoutingSpec {
    /// The load balancer it routes for.
    pub name: String,
    /// The network; when set it must be the load balancer's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The targets.
    #[serde(default)]
    pub destinations: Vec<DestinationSpec>,
    /// Where it was read from.
    #[serde(skip)]
    pub origin: Origin,
}

/// One target of a routing. When it names a known network interface (by
/// `uid`, else by `name`), missing `underlay` and `mac` come from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    /// The target interface's name.
    pub name: String,
    /// The target interface's uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Underlay address; default: the named interface's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay: Option<String>,
    /// Inner MAC; default: the named interface's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Maglev weight, default 100; 0 drains it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// An address given to a load balancer, kept so that it never moves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// The load balancer holding it.
    pub load_balancer: String,
    /// The address.
    pub address: String,
    /// The pool it came from; unset: whichever eligible pool contains it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Where it was read from.
    #[serde(skip)]
    pub origin: Origin,
}

impl PartialOrd for Origin {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Origin {
    /// Origins never order objects.
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl std::hash::Hash for Origin {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl DesiredState {
    /// The names of every object of `kind`, in order.
    pub fn names(&self, kind: Kind) -> Vec<&str> {
        match kind {
            Kind::Pool => self.pools.iter().map(|o| o.name.as_str()).collect(),
            Kind::Network => self.networks.iter().map(|o| o.name.as_str()).collect(),
            Kind::NetworkInterface => self
                .network_interfaces
                .iter()
                .map(|o| o.name.as_str())
                .collect(),
            Kind::LoadBalancer => self
                .load_balancers
                .iter()
                .map(|o| o.name.as_str())
                .collect(),
            Kind::LoadBalancerRouting => self
                .load_balancer_routings
                .iter()
                .map(|o| o.name.as_str())
                .collect(),
            Kind::Allocation => self
                .allocations
                .iter()
                .map(|o| o.load_balancer.as_str())
                .collect(),
        }
    }

    /// The load balancer named `name`.
    pub fn load_balancer(&self, name: &str) -> Option<&LoadBalancerSpec> {
        self.load_balancers.iter().find(|o| o.name == name)
    }

    /// The network interface named `name`.
    pub fn network_interface(&self, name: &str) -> Option<&NetworkInterfaceSpec> {
        self.network_interfaces.iter().find(|o| o.name == name)
    }

    /// The network named `name`.
    pub fn network(&self, name: &str) -> Option<&NetworkSpec> {
        self.networks.iter().find(|o| o.name == name)
    }

    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolSpec> {
        self.pools.iter().find(|o| o.name == name)
    }

    /// The routing named `name`.
    pub fn routing(&self, name: &str) -> Option<&LoadBalancerRoutingSpec> {
        self.load_balancer_routings.iter().find(|o| o.name == name)
    }
}

/// One object of the desired state, of any kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// A pool.
    Pool(PoolSpec),
    /// A network.
    Network(NetworkSpec),
    /// A network interface.
    NetworkInterface(NetworkInterfaceSpec),
    /// A load balancer.
    LoadBalancer(LoadBalancerSpec),
    /// A routing.
    LoadBalancerRouting(LoadBalancerRoutingSpec),
    /// An allocation.
    Allocation(Allocation),
}

impl Object {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Pool(_) => Kind::Pool,
            Object::Network(_) => Kind::Network,
            Object::NetworkInterface(_) => Kind::NetworkInterface,
            Object::LoadBalancer(_) => Kind::LoadBalancer,
            Object::LoadBalancerRouting(_) => Kind::LoadBalancerRouting,
            Object::Allocation(_) => Kind::Allocation,
        }
    }

    /// Its name (an allocation's is its load balancer's).
    pub fn name(&self) -> &str {
        match self {
            Object::Pool(o) => &o.name,
            Object::Network(o) => &o.name,
            Object::NetworkInterface(o) => &o.name,
            Object::LoadBalancer(o) => &o.name,
            Object::LoadBalancerRouting(o) => &o.name,
            Object::Allocation(o) => &o.load_balancer,
        }
    }
}

/// What [`DesiredState::upsert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upserted {
    /// A new object was added.
    Created,
    /// An object of that kind and name was replaced by a different one.
    Replaced,
    /// An equal object was already there.
    Unchanged,
}

fn upsert_into<T: PartialEq>(v: &mut Vec<T>, obj: T, same: impl Fn(&T) -> bool) -> Upserted {
    match v.iter_mut().find(|o| same(o)) {
        Some(o) if *o == obj => Upserted::Unchanged,
        Some(o) => {
            *o = obj;
            Upserted::Replaced
        }
        None => {
            v.push(obj);
            Upserted::Created
        }
    }
}

impl DesiredState {
    /// Adds `obj`, or replaces the object of the same kind and name (its
    /// place in the list is kept). Allocations are keyed by load balancer and
    /// address. Does not validate.
    pub fn upsert(&mut self, obj: Object) -> Upserted {
        match obj {
            Object::Pool(o) => {
                let n = o.name.clone();
                upsert_into(&mut self.pools, o, |x| x.name == n)
            }
            Object::Network(o) => {
                let n = o.name.clone();
                upsert_into(&mut self.networks, o, |x| x.name == n)
            }
            Object::NetworkInterface(o) => {
                let n = o.name.clone();
                upsert_into(&mut self.network_interfaces, o, |x| x.name == n)
            }
            Object::LoadBalancer(o) => {
                let n = o.name.clone();
                upsert_into(&mut self.load_balancers, o, |x| x.name == n)
            }
            Object::LoadBalancerRouting(o) => {
                let n = o.name.clone();
                upsert_into(&mut self.load_balancer_routings, o, |x| x.name == n)
            }
            Object::Allocation(o) => {
                let (l, a) = (o.load_balancer.clone(), o.address.clone());
                upsert_into(&mut self.allocations, o, |x| {
                    x.load_balancer == l && x.address == a
                })
            }
        }
    }

    /// Removes the object of `kind` named `name` (for allocations: every
    /// allocation of that load balancer); whether something was removed.
    pub fn remove(&mut self, kind: Kind, name: &str) -> bool {
        fn rm<T>(v: &mut Vec<T>, f: impl Fn(&T) -> bool) -> bool {
            let before = v.len();
            v.retain(|o| !f(o));
            v.len() != before
        }
        match kind {
            Kind::Pool => rm(&mut self.pools, |o| o.name == name),
            Kind::Network => rm(&mut self.networks, |o| o.name == name),
            Kind::NetworkInterface => rm(&mut self.network_interfaces, |o| o.name == name),
            Kind::LoadBalancer => rm(&mut self.load_balancers, |o| o.name == name),
            Kind::LoadBalancerRouting => rm(&mut self.load_balancer_routings, |o| o.name == name),
            Kind::Allocation => rm(&mut self.allocations, |o| o.load_balancer == name),
        }
    }

    /// Every object, kind by kind, in order.
    pub fn objects(&self) -> Vec<Object> {
        let mut out = Vec::new();
        out.extend(self.pools.iter().cloned().map(Object::Pool));
        out.extend(self.networks.iter().cloned().map(Object::Network));
        out.extend(
            self.network_interfaces
                .iter()
                .cloned()
                .map(Object::NetworkInterface),
        );
        out.extend(
            self.load_balancers
                .iter()
                .cloned()
                .map(Object::LoadBalancer),
        );
        out.extend(
            self.load_balancer_routings
                .iter()
                .cloned()
                .map(Object::LoadBalancerRouting),
        );
        out.extend(self.allocations.iter().cloned().map(Object::Allocation));
        out
    }
}
