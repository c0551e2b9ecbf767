//! The resolved model: what the dataplane and the control plane consume once
//! the input has been validated, addresses allocated and routing derived.
//!
//! These types are the contract between `config` and the rest of lbfwd. They
//! carry no references back into the input; every address is parsed, every
//! destination is complete.

use std::net::IpAddr;

/// A MAC address, six bytes, in transmission order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

/// A transport protocol a load balancer can allow.
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
}

/// An allowed inclusive port range of one protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// The protocol the range applies to.
    pub protocol: Protocol,
    /// First allowed port (>= 1).
    pub first: u16,
    /// Last allowed port (>= `first`).
    pub last: u16,
}

/// The load balancer type, as in Ironcore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoadBalancerType {
    /// Public addresses, allocated from pools.
    Public,
    /// Network-internal addresses, given or allocated from a network-bound pool.
    Internal,
}

/// What lbfwd does with ICMP/ICMPv6 echo requests addressed to a VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum IcmpEcho {
    /// Drop them (the default, as IEP-3 asks).
    #[default]
    Drop,
    /// lbfwd answers them itself.
    Reply,
}

/// The outer encapsulation lbfwd emits toward a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// One address of a load balancer and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AssignedIp {
    /// The VIP.
    pub addr: IpAddr,
    /// The pool it was allocated from or claimed in; `None` for an explicit
    /// Internal address outside every pool.
    pub pool: Option<String>,
}

/// One target of a load balancer, complete.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Resolved {
    /// Every load balancer, sorted by name.
    pub load_balancers: Vec<ResolvedLoadBalancer>,
}
