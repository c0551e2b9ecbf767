//! The announcement part of the control protocol: what `lbctl announce`
//! shows (per VIP whether it is announced and why not, per BGP peer the
//! session as BIRD reports it) and the body of `lbctl announce on|off`.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Body of [`crate::protocol::Request::AnnounceSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceSet {
    /// `true`: announce every VIP that has a usable destination; `false`:
    /// withdraw everything (the dataplane keeps forwarding).
    pub on: bool,
}

/// Answer to `announce` and `announce_set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceStatus {
    /// Whether announcing is on (`lbctl announce on|off`, `[announce] initial`).
    pub enabled: bool,
    /// Whether lbfwd is shutting down (everything withdrawn, still forwarding).
    pub shutting_down: bool,
    /// Every VIP, sorted by address.
    pub vips: Vec<VipAnnouncement>,
    /// The BGP speaker, when `[bgp]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpStatus>,
    /// Layer-2 announcement, when `[l2]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2: Option<L2Status>,
}

/// Layer-2 announcement (`[l2]`): where lbfwd answers ARP and NDP, whether
/// it does now, and its counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct L2Status {
    /// Whether the workers answer ARP/NDP for the VIPs now.
    pub answering: bool,
    /// The `[l2]` interfaces.
    pub interfaces: Vec<L2Interface>,
    /// ARP requests answered.
    pub arp_answered: u64,
    /// Neighbour solicitations answered.
    pub nd_answered: u64,
    /// Gratuitous ARP and unsolicited neighbour advertisements sent.
    pub gratuitous_sent: u64,
    /// Gratuitous frames dropped (queue or TX ring full).
    pub gratuitous_dropped: u64,
}

/// One `[l2]` interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct L2Interface {
    /// Its name.
    pub name: String,
    /// The MAC lbfwd answers with (`None` while unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// One VIP's announcement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipAnnouncement {
    /// The address (announced as a /32 or /128).
    pub address: IpAddr,
    /// Its load balancer.
    pub load_balancer: String,
    /// The pool it came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Whether it is offered to the peers now (BGP), or, without `[bgp]`,
    /// answered for on the segment (`[l2]`).
    pub announced: bool,
    /// Whether ARP/NDP for it is answered now (`[l2]`).
    #[serde(default)]
    pub l2: bool,
    /// Why not, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The managed BIRD and its sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpStatus {
    /// Local AS.
    pub asn: u32,
    /// Router id.
    pub router_id: String,
    /// The control socket of an operator-run BIRD lbfwd writes into
    /// (`external_bird_socket`); unset: lbfwd runs its own BIRD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_socket: Option<std::path::PathBuf>,
    /// BIRD's process id while it runs (lbfwd's own BIRD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bird_pid: Option<u32>,
    /// How often lbfwd restarted BIRD after it died.
    pub bird_restarts: u64,
    /// The last problem with BIRD itself (not running, refused config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// One entry per `[[bgp.peer]]`, in config order.
    pub peers: Vec<PeerStatus>,
}

/// One BGP session, as BIRD reports it (`show protocols all`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// BIRD's protocol name.
    pub name: String,
    /// Peer address.
    pub address: IpAddr,
    /// Peer AS.
    pub asn: u32,
    /// BGP state (`Established`, `Active`, `Connect`, `Idle`, ...; `unknown`
    /// while BIRD does not answer).
    pub state: String,
    /// Seconds in the current state (uptime when established).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_secs: Option<u64>,
    /// Prefixes sent (exported) on the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes_sent: Option<u64>,
    /// BIRD's last error of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Whether BFD runs on it.
    pub bfd: bool,
}
