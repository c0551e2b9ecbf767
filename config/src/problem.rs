//! Everything a configuration can get wrong, as one enum whose messages read
//! well to an operator; [`crate::error::LocatedError`] adds where.
//!
//! Layer 1 (problems and locations): the bottom of it, above the values of
//! `model` only.

use crate::model::{IpFamily, Kind};
use std::net::IpAddr;

/// One problem found while loading, validating or resolving.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// TOML syntax error.
    #[error("TOML syntax: {0}")]
    TomlSyntax(String),
    /// YAML syntax error.
    #[error("YAML: {0}")]
    YamlSyntax(String),
    /// A value has the wrong type, a required field is missing, a field is
    /// unknown, an enum value is not one of the allowed ones.
    #[error("{0}")]
    Invalid(String),
    /// An Ironcore manifest with an `apiVersion` lbfwd does not read.
    #[error("unsupported apiVersion {0:?}: expected networking.ironcore.dev/v1alpha1")]
    ApiVersion(String),
    /// An Ironcore manifest of a kind lbfwd does not read.
    #[error("unsupported kind {0:?}: expected Network, NetworkInterface, LoadBalancer or LoadBalancerRouting")]
    UnknownKind(String),
    /// A manifest without `metadata.name`.
    #[error("missing metadata.name")]
    MissingName,
    /// A manifest Network without a VNI annotation.
    #[error("network has no VNI: set annotation lbfwd.ironcore.dev/vni (0-16777215)")]
    MissingVni,

    /// Two objects of one kind share a name.
    #[error("duplicate {kind} name {name:?} (first defined at {first})")]
    DuplicateName {
        /// The kind.
        kind: Kind,
        /// The name.
        name: String,
        /// Where the first one is.
        first: String,
    },
    /// An empty name.
    #[error("name must not be empty")]
    EmptyName,
    /// A VNI above 24 bits.
    #[error("VNI {0} is outside 24 bits (0-16777215)")]
    VniOutOfRange(u64),
    /// A reference to a network that does not exist.
    #[error("unknown network {0:?}")]
    UnknownNetwork(String),
    /// A reference to a load balancer that does not exist.
    #[error("unknown load balancer {0:?}")]
    UnknownLoadBalancer(String),
    /// A reference to a network interface that does not exist.
    #[error("unknown network interface {0:?}")]
    UnknownInterface(String),
    /// A reference to a pool that does not exist.
    #[error("unknown pool {0:?}")]
    UnknownPool(String),
    /// Text that is not an IP address.
    #[error("{0:?} is not an IP address")]
    BadIp(String),
    /// Text that is not a MAC address.
    #[error("{0:?} is not a MAC address (expected six hex pairs like 02:00:00:00:03:11)")]
    BadMac(String),
    /// A MAC that is multicast, broadcast or zero where a unicast one is needed.
    #[error("{0} is not a unicast MAC address")]
    NotUnicastMac(String),
    /// An address of a family the load balancer does not serve.
    #[error("{addr} is {family} but ip_families is {families}")]
    WrongFamily {
        /// The address.
        addr: IpAddr,
        /// Its family.
        family: IpFamily,
        /// The families the load balancer serves.
        families: String,
    },
    /// Two addresses of one family on one load balancer.
    #[error("more than one {0} address (a load balancer has one per family)")]
    TwoOfOneFamily(IpFamily),
    /// A family listed twice.
    #[error("{0} listed twice")]
    DuplicateFamily(IpFamily),
    /// A port outside 1-65535.
    #[error("{0} is not a port (1-65535)")]
    PortOutOfRange(i64),
    /// A range that ends before it starts.
    #[error("end_port {end} is below port {port}")]
    EndBeforePort {
        /// First port.
        port: i64,
        /// Last port.
        end: i64,
    },
    /// Two port ranges of one protocol overlap.
    #[error("{this} overlaps {other} (ports[{other_index}])")]
    PortsOverlap {
        /// This range.
        this: String,
        /// The range it overlaps.
        other: String,
        /// That range's index.
        other_index: usize,
    },
    /// A network interface without underlay address.
    #[error("network interface {0:?} has no underlay address (set `underlay`, or annotation lbfwd.ironcore.dev/underlay)")]
    MissingUnderlay(String),
    /// A destination without MAC while the encapsulation is VXLAN.
    #[error("destination {0:?} has no mac, which VXLAN encapsulation needs (set `mac` on the interface or destination, or annotation lbfwd.ironcore.dev/mac)")]
    MissingMac(String),
    /// Two load balancers claim one address.
    #[error("{addr} is already claimed by load balancer {other:?}")]
    AddressClaimedTwice {
        /// The address.
        addr: IpAddr,
        /// The load balancer that has it.
        other: String,
    },
    /// A malformed pool entry.
    #[error("{entry:?} is not a CIDR or an address range: {reason}")]
    BadPoolEntry {
        /// The entry as written.
        entry: String,
        /// Why.
        reason: String,
    },
    /// Two pool entries overlap.
    #[error("{entry} overlaps {other} of pool {pool:?}")]
    PoolsOverlap {
        /// This entry.
        entry: String,
        /// The entry it overlaps.
        other: String,
        /// That entry's pool.
        pool: String,
    },
    /// No free address left.
    #[error("pool {pools} has no free {family} address left ({size} addresses, all in use)")]
    PoolExhausted {
        /// The pool(s) tried.
        pools: String,
        /// The family.
        family: IpFamily,
        /// Total addresses.
        size: u128,
    },
    /// No pool for a family the load balancer needs.
    #[error("no {scope} pool has {family} addresses")]
    NoPool {
        /// `public`, or `network "x"`.
        scope: String,
        /// The family.
        family: IpFamily,
    },
    /// A Public load balancer's explicit address is in no public pool.
    #[error("{0} is in no public pool (a Public load balancer's ips must be claimed from a pool without `network`)")]
    NotInPublicPool(IpAddr),
    /// A destination of a family with no source address configured.
    #[error("underlay address {addr} is {family} but [underlay] source_{lower} is not set", lower = family.to_string().to_lowercase())]
    NoSourceAddress {
        /// The destination's underlay.
        addr: IpAddr,
        /// Its family.
        family: IpFamily,
    },
    /// A Maglev table size that is not prime.
    #[error("maglev_table_size {0} is not a prime")]
    NotPrime(u64),
    /// A Maglev table size out of bounds.
    #[error("maglev_table_size {0} is outside 7-16777213")]
    TableSizeOutOfRange(u64),
    /// A selector requirement with wrong values.
    #[error("operator {operator} {need}")]
    SelectorValues {
        /// The operator.
        operator: String,
        /// What it needs.
        need: &'static str,
    },
    /// A label key or value Kubernetes would refuse.
    #[error("{0}")]
    LabelSyntax(String),
    /// Warning: a weight for an interface of the network that is not a
    /// destination of the load balancer now.
    #[error(
        "weight for {name:?}, which is not a destination of load balancer {lb:?} now \
         (its labels do not match the selector, or it is not Available): \
         it applies once it is"
    )]
    WeightNotDestination {
        /// The key.
        name: String,
        /// The load balancer.
        lb: String,
    },
    /// A routing whose network is not its load balancer's.
    #[error("routing network {routing:?} is not load balancer network {lb:?}")]
    RoutingNetworkMismatch {
        /// The routing's network.
        routing: String,
        /// The load balancer's network.
        lb: String,
    },
    /// A destination that names no known interface and carries no underlay.
    #[error(
        "destination {0:?} names no known network interface (by uid or name) and has no underlay"
    )]
    UnknownDestination(String),
    /// A destination in another network.
    #[error(
        "destination {name:?} is network interface in network {nic_network:?}, not {lb_network:?}"
    )]
    DestinationWrongNetwork {
        /// The destination.
        name: String,
        /// The interface's network.
        nic_network: String,
        /// The load balancer's network.
        lb_network: String,
    },
    /// The same destination twice.
    #[error("destination {0:?} listed twice")]
    DuplicateDestination(String),
    /// A weight for an interface that is not in the network.
    #[error("weight for {name:?}, which is no network interface of network {network:?}")]
    WeightUnknownInterface {
        /// The key.
        name: String,
        /// The network.
        network: String,
    },
    /// A settings value out of range or inconsistent.
    #[error("{0}")]
    Setting(String),

    /// Warning: a routing for a load balancer that has a selector.
    #[error("ignored: load balancer {0:?} has a selector, its routing is derived from it")]
    RoutingIgnored(String),
    /// Warning: a routing with no load balancer.
    #[error("no load balancer {0:?}: this routing is unused")]
    RoutingUnused(String),
    /// Warning: a load balancer with no selector and no routing.
    #[error("load balancer {0:?} has no selector and no routing: it has no destinations")]
    NoRouting(String),
    /// Warning: a persisted allocation that no longer applies.
    #[error("allocation of {addr} to {lb:?} released: {why}")]
    AllocationDropped {
        /// The address.
        addr: String,
        /// The load balancer.
        lb: String,
        /// Why.
        why: String,
    },
}
