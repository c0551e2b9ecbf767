//! What encapsulation writes toward: the appliance's underlay settings and
//! one target's underlay address and MAC (the tables hold them, the
//! encapsulation reads them).

use lbfwd_config::model::Encap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where encapsulated packets go and what they look like; the appliance
/// settings of `[underlay]` with the runtime's MAC filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnderlayParams {
    /// Encapsulation kind and UDP port.
    pub encap: Encap,
    /// Outer IPv4 source, when the appliance has one.
    pub source_ipv4: Option<Ipv4Addr>,
    /// Outer IPv6 source, when the appliance has one.
    pub source_ipv6: Option<Ipv6Addr>,
    /// Outer Ethernet source (the egress interface's MAC).
    pub source_mac: [u8; 6],
    /// Outer Ethernet destination (the next hop's MAC).
    pub next_hop_mac: [u8; 6],
    /// Largest outer IP packet the underlay carries.
    pub mtu: u16,
}

impl UnderlayParams {
    /// The parameters of a validated `[underlay]` section; `interface_mac`
    /// is the egress interface's MAC, used when `source_mac` is not set
    /// (all zeros when neither is known, e.g. offline replay).
    pub fn from_settings(u: &lbfwd_config::Underlay, interface_mac: Option<[u8; 6]>) -> Self {
        UnderlayParams {
            encap: u.encap,
            source_ipv4: u.source_ipv4,
            source_ipv6: u.source_ipv6,
            source_mac: u
                .source_mac
                .map(|m| m.0)
                .or(interface_mac)
                .unwrap_or_default(),
            next_hop_mac: u.next_hop_mac.0,
            mtu: u.mtu,
        }
    }
}

/// A target's underlay address, in the form the encapsulation writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Underlay {
    /// IPv4 underlay.
    V4([u8; 4]),
    /// IPv6 underlay.
    V6([u8; 16]),
}

impl From<IpAddr> for Underlay {
    fn from(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => Underlay::V4(a.octets()),
            IpAddr::V6(a) => Underlay::V6(a.octets()),
        }
    }
}

/// One destination of a load balancer, as the fast path needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Destination name (for counters and logs).
    pub name: String,
    /// Destination uid.
    pub uid: String,
    /// Where to send.
    pub underlay: Underlay,
    /// Inner destination MAC (VXLAN).
    pub mac: [u8; 6],
    /// Maglev weight (0 = draining).
    pub weight: u32,
    /// Stable counter slot; also the identity flows remember.
    pub slot: u32,
}
