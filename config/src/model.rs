//! The values every layer shares (MAC addresses, protocols, port ranges, IP
//! families, the kinds of object, encapsulations) and the resolved model:
//! what the dataplane and the control plane consume once the input has been
//! validated, addresses allocated and routing derived.
//!
//! These types are the contract between `config` and the rest of lbfwd. They
//! carry no references back into the input; every address is parsed, every
//! destination is complete.
//!
//! Layer 0 (values): imports no other module of the crate, so that the
//! problems can name kinds and families and every layer can use them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A MAC address, six bytes, in transmission order.
///
/// Written and read as six pairs of hex digits separated by colons
/// (`02:00:00:00:03:11`); `FromStr` also accepts `-` as separator.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

/// Why a MAC address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex pairs like 02:00:00:00:03:11")]
pub struct MacParseError(pub String);

impl MacAddr {
    /// The octets in transmission order.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Whether this is a unicast address (group bit clear) other than all zeros.
    pub fn is_unicast(self) -> bool {
        self.0[0] & 1 == 0 && self.0 != [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A transport protocol a load balancer can allow.
///
/// Serialized as `TCP`, `UDP`, `SCTP`; parsing ignores case (IEP-3 writes
/// `tcp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP, IP protocol 6.
    Tcp,
    /// UDP, IP protocol 17.
    Udp,
    /// SCTP, IP protocol 132.
    Sctp,
}

impl Protocol {
    /// The IP protocol number (IPv4 `protocol`, IPv6 `next header`).
    pub const fn ip_number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// Every protocol, in `ip_number` order.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// The upper-case name, as Ironcore writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a protocol name did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?}: expected TCP, UDP or SCTP")]
pub struct ProtocolParseError(pub String);

impl FromStr for Protocol {
    type Err = ProtocolParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            _ => Err(ProtocolParseError(s.to_string())),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An allowed inclusive port range of one protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PortRange {
    /// The protocol the range applies to.
    pub protocol: Protocol,
    /// First allowed port (>= 1).
    pub first: u16,
    /// Last allowed port (>= `first`).
    pub last: u16,
}

impl PortRange {
    /// Whether `port` of `protocol` is inside this range.
    pub const fn contains(&self, protocol: Protocol, port: u16) -> bool {
        self.protocol as u8 == protocol as u8 && port >= self.first && port <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}/{}", self.protocol, self.first)
        } else {
            write!(f, "{}/{}-{}", self.protocol, self.first, self.last)
        }
    }
}

/// The load balancer type, as in Ironcore (`Public`, `Internal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoadBalancerType {
    /// Public addresses, allocated from pools.
    Public,
    /// Network-internal addresses, given or allocated from a network-bound pool.
    Internal,
}

/// What lbfwd does with ICMP/ICMPv6 echo requests addressed to a VIP
/// (`drop`, `reply`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IcmpEcho {
    /// Drop them (the default, as IEP-3 asks).
    #[default]
    Drop,
    /// lbfwd answers them itself.
    Reply,
}

/// The outer encapsulation lbfwd emits toward a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Encap {
    /// IP-in-IP (4in4, 6in6, 4in6, 6in4), chosen by the families involved.
    IpIp,
    /// GUE variant 1 (the inner IP packet directly in UDP) on this UDP port.
    Gue {
        /// Outer UDP destination port (default 6080).
        port: u16,
    },
    /// VXLAN on this UDP port (default 4789); VNI from the network.
    Vxlan {
        /// Outer UDP destination port (default 4789).
        port: u16,
    },
}

/// An IP family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpFamily {
    /// IPv4.
    IPv4,
    /// IPv6.
    IPv6,
}

impl IpFamily {
    /// The family of `addr`.
    pub fn of(addr: &std::net::IpAddr) -> Self {
        if addr.is_ipv4() {
            IpFamily::IPv4
        } else {
            IpFamily::IPv6
        }
    }
}

impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IpFamily::IPv4 => "IPv4",
            IpFamily::IPv6 => "IPv6",
        })
    }
}

/// The kinds of object in the desired state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An address pool (`[[pool]]`).
    Pool,
    /// A network (`[[network]]`, Ironcore `Network`).
    Network,
    /// A network interface (`[[network_interface]]`, Ironcore `NetworkInterface`).
    NetworkInterface,
    /// A load balancer (`[[load_balancer]]`, Ironcore `LoadBalancer`).
    LoadBalancer,
    /// A routing (`[[load_balancer_routing]]`, Ironcore `LoadBalancerRouting`).
    LoadBalancerRouting,
    /// A persisted address allocation (`[[allocation]]`).
    Allocation,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::Pool,
        Kind::Network,
        Kind::NetworkInterface,
        Kind::LoadBalancer,
        Kind::LoadBalancerRouting,
        Kind::Allocation,
    ];

    /// The TOML array-of-tables key (`load_balancer`, ...).
    pub const fn toml_key(self) -> &'static str {
        match self {
            Kind::Pool => "pool",
            Kind::Network => "network",
            Kind::NetworkInterface => "network_interface",
            Kind::LoadBalancer => "load_balancer",
            Kind::LoadBalancerRouting => "load_balancer_routing",
            Kind::Allocation => "allocation",
        }
    }

    /// The Ironcore kind (`LoadBalancer`, ...); pools and allocations are
    /// lbfwd's own and use `Pool` and `Allocation`.
    pub const fn ironcore_kind(self) -> &'static str {
        match self {
            Kind::Pool => "Pool",
            Kind::Network => "Network",
            Kind::NetworkInterface => "NetworkInterface",
            Kind::LoadBalancer => "LoadBalancer",
            Kind::LoadBalancerRouting => "LoadBalancerRouting",
            Kind::Allocation => "Allocation",
        }
    }

    /// Parses either spelling (`load_balancer`, `LoadBalancer`, `lb`, ...).
    pub fn parse(s: &str) -> Option<Kind> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        Some(match norm.as_str() {
            "pool" | "pools" => Kind::Pool,
            "network" | "networks" | "net" => Kind::Network,
            "networkinterface" | "networkinterfaces" | "nic" | "nics" | "interface" => {
                Kind::NetworkInterface
            }
            "loadbalancer" | "loadbalancers" | "lb" | "lbs" => Kind::LoadBalancer,
            "loadbalancerrouting" | "loadbalancerroutings" | "routing" | "routings" => {
                Kind::LoadBalancerRouting
            }
            "allocation" | "allocations" => Kind::Allocation,
            _ => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.toml_key())
    }
}

/// One address of a load balancer and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct AssignedIp {
    /// The VIP.
    pub addr: IpAddr,
    /// The pool it was allocated from or claimed in; `None` for an explicit
    /// Internal address outside every pool.
    pub pool: Option<String>,
}

/// One target of a load balancer, complete.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Destination {
    /// The network interface's name.
    pub name: String,
    /// The network interface's uid (may be empty when the routing gave none).
    pub uid: String,
    /// Where encapsulated traffic for this target is sent.
    pub underlay: IpAddr,
    /// Inner destination MAC (needed for VXLAN).
    pub mac: Option<MacAddr>,
    /// Maglev weight; 0 means draining: no new flows, existing flows stay.
    pub weight: u32,
}

/// A load balancer with everything resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedLoadBalancer {
    /// Unique name.
    pub name: String,
    /// Public or Internal.
    pub lb_type: LoadBalancerType,
    /// The network its destinations are in.
    pub network: String,
    /// That network's VXLAN VNI (24 bits).
    pub vni: u32,
    /// Its addresses, one per IP family it serves.
    pub ips: Vec<AssignedIp>,
    /// The allow list; never empty here (an empty input list becomes every
    /// port of TCP, UDP and SCTP).
    pub ports: Vec<PortRange>,
    /// ICMP echo handling.
    pub icmp_echo: IcmpEcho,
    /// Maglev table size, a prime (default 65537).
    pub maglev_table_size: u32,
    /// Destinations in deterministic order (sorted by name, then uid).
    pub destinations: Vec<Destination>,
}

/// The whole resolved state: what the dataplane tables are built from.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
pub struct Resolved {
    /// Every load balancer, sorted by name.
    pub load_balancers: Vec<ResolvedLoadBalancer>,
}

impl Resolved {
    /// The load balancer with this name.
    pub fn get(&self, name: &str) -> Option<&ResolvedLoadBalancer> {
        self.load_balancers
            .binary_search_by(|lb| lb.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.load_balancers[i])
    }
}
