//! The announcement settings: `[bgp]` with its `[[bgp.peer]]` sessions,
//! `[announce]`, and the per-pool `bgp` keys of `[[pool]]`. The serde input
//! types (`*Section`, TOML field names) are validated into the runtime types
//! ([`Bgp`], [`BgpPeer`], [`Announce`]) the daemon's announcer uses.
//!
//! Kept apart from the other settings so that the BGP speaker's keys live in
//! one place; `settings.rs` calls [`validate_bgp`] and
//! [`AnnounceSection::validate`], `state.rs` holds a [`PoolBgp`] per pool.
//!
//! Layer 2 (input), above the problems: it uses only [`crate::problem`].

use crate::problem::Problem;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

/// `[bgp]`: lbfwd starts and supervises its own BIRD 2, which announces the
/// VIPs to these peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpSection {
    /// Local AS number, 1-4294967295.
    pub asn: u64,
    /// BGP router id, in IPv4 address form.
    pub router_id: String,
    /// Hold time offered to every peer, seconds, 3-65535 (default 9).
    #[serde(default = "default_hold_time")]
    pub hold_time_s: u64,
    /// Keepalive interval, seconds, at least 1 and below the hold time
    /// (default 3).
    #[serde(default = "default_keepalive")]
    pub keepalive_s: u64,
    /// On SIGTERM: how long lbfwd keeps forwarding after it withdrew its
    /// routes, so that the routers move traffic away first (default 5).
    #[serde(default = "default_shutdown_delay")]
    pub shutdown_delay_s: u64,
    /// Standard communities every VIP carries (`"65000:100"`, `"no-export"`,
    /// `"no-advertise"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Large communities every VIP carries (`"65000:1:2"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large_communities: Vec<String>,
    /// LOCAL_PREF of every VIP (iBGP peers only; eBGP never carries it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC of every VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    /// BFD transmit and receive interval, ms, 10-10000 (default 100), for
    /// peers with `bfd = true`.
    #[serde(default = "default_bfd_interval")]
    pub bfd_interval_ms: u64,
    /// BFD detection multiplier, 1-255 (default 5): a peer is down after
    /// this many intervals without a BFD packet.
    #[serde(default = "default_bfd_multiplier")]
    pub bfd_multiplier: u64,
    /// The TCP port BIRD listens on for BGP (default 179). Another port
    /// lets lbfwd's BIRD run beside a routing daemon of the site that owns
    /// port 179 and peers with it (README: "An operator-run BIRD or FRR").
    #[serde(default = "default_port")]
    pub local_port: u16,
    /// The BIRD 2 binary (default `/usr/sbin/bird`, Debian package `bird2`).
    #[serde(default = "default_bird")]
    pub bird: PathBuf,
    /// Where lbfwd writes BIRD's configuration, control socket and pid file
    /// (default: `bird/` beside the control socket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_dir: Option<PathBuf>,
    /// An operator-run BIRD 2 instead of lbfwd's own: its control socket.
    /// lbfwd then starts no BIRD, writes the VIPs' static protocols to
    /// `external_bird_include` and calls `configure` on this socket; the
    /// operator's BGP protocols export `where proto ~ "lbfwd_vips*"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_bird_socket: Option<PathBuf>,
    /// The file lbfwd writes for an operator-run BIRD (its `bird.conf`
    /// has `include "FILE";`); required with `external_bird_socket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_bird_include: Option<PathBuf>,
    /// The BGP sessions, one per entry (`[[bgp.peer]]`).
    #[serde(default, rename = "peer", skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<BgpPeerSection>,
}

fn default_hold_time() -> u64 {
    9
}
fn default_keepalive() -> u64 {
    3
}
fn default_shutdown_delay() -> u64 {
    5
}
fn default_bfd_interval() -> u64 {
    100
}
fn default_bfd_multiplier() -> u64 {
    5
}
fn default_bird() -> PathBuf {
    PathBuf::from("/usr/sbin/bird")
}
fn default_port() -> u16 {
    179
}

/// `[[bgp.peer]]`: one BGP session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpPeerSection {
    /// The peer's address, IPv4 or IPv6. IPv4 VIPs are announced over IPv4
    /// sessions, IPv6 VIPs over IPv6 sessions.
    pub address: String,
    /// The peer's AS number (equal to `[bgp] asn`: iBGP).
    pub asn: u64,
    /// The peer's TCP port (default 179).
    #[serde(default = "default_port")]
    pub port: u16,
    /// TCP MD5 signature password (RFC 2385).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Local address of the session (default: the kernel picks one; the
    /// appliance needs an address of the peer's family, see the README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// Multihop session with this TTL, 1-255 (default: a directly connected
    /// peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multihop: Option<u64>,
    /// Wait for the peer to connect instead of connecting (default false).
    #[serde(default)]
    pub passive: bool,
    /// Hold time of this session (default `[bgp] hold_time_s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time_s: Option<u64>,
    /// Run BFD on this session (BIRD's BFD): a dead path is noticed after
    /// `bfd_interval_ms` × `bfd_multiplier` when the peer runs BFD too.
    #[serde(default)]
    pub bfd: bool,
}

/// `[announce]`: whether lbfwd announces its VIPs when it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceSection {
    /// `"on"` (default): announce at start; `"off"`: start withdrawn until
    /// `lbctl announce on` (an arbiter such as keepalived decides).
    #[serde(default)]
    pub initial: Initial,
}

/// `[announce] initial`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initial {
    /// Announce at start.
    #[default]
    On,
    /// Start withdrawn.
    Off,
}

/// Validated `[announce]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    /// Announce at start.
    pub initially_on: bool,
}

impl AnnounceSection {
    /// Whether this is the default (left out of exports).
    pub fn is_default(&self) -> bool {
        *self == AnnounceSection::default()
    }

    /// The runtime form (nothing in it can be wrong once parsed).
    pub fn validate(&self) -> Announce {
        Announce {
            initially_on: self.initial == Initial::On,
        }
    }
}

/// A standard BGP community (RFC 1997).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u16, pub u16);

/// A large BGP community (RFC 8092).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity(pub u32, pub u32, pub u32);

impl Community {
    /// Parses `"A:B"` (each 0-65535), `"no-export"` or `"no-advertise"`.
    pub fn parse(text: &str) -> Result<Community, String> {
        match text {
            "no-export" => return Ok(Community(0xffff, 0xff01)),
            "no-advertise" => return Ok(Community(0xffff, 0xff02)),
            _ => {}
        }
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            [a, b] => match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => Ok(Community(a, b)),
                _ => Err(format!(
                    "community {text:?}: both halves must be 0-65535 (\"65000:100\")"
                )),
            },
            _ => Err(format!(
                "community {text:?} is not \"ASN:VALUE\" (\"65000:100\"), \"no-export\" or \"no-advertise\""
            )),
        }
    }
}

impl LargeCommunity {
    /// Parses `"A:B:C"`, each 0-4294967295.
    pub fn parse(text: &str) -> Result<LargeCommunity, String> {
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            [a, b, c] => match (a.parse::<u32>(), b.parse::<u32>(), c.parse::<u32>()) {
                (Ok(a), Ok(b), Ok(c)) => Ok(LargeCommunity(a, b, c)),
                _ => Err(format!(
                    "large community {text:?}: each part must be 0-4294967295"
                )),
            },
            _ => Err(format!(
                "large community {text:?} is not \"ASN:DATA1:DATA2\" (\"65000:1:2\")"
            )),
        }
    }
}

/// The route attributes a VIP is announced with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteAttributes {
    /// Standard communities.
    pub communities: Vec<Community>,
    /// Large communities.
    pub large_communities: Vec<LargeCommunity>,
    /// LOCAL_PREF (iBGP).
    pub local_pref: Option<u32>,
    /// MED.
    pub med: Option<u32>,
}

/// Validated `[bgp]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bgp {
    /// Local AS.
    pub asn: u32,
    /// Router id.
    pub router_id: Ipv4Addr,
    /// Hold time.
    pub hold_time: Duration,
    /// Keepalive interval.
    pub keepalive: Duration,
    /// Forwarding time after the withdrawal on SIGTERM.
    pub shutdown_delay: Duration,
    /// Attributes of every VIP.
    pub attributes: RouteAttributes,
    /// BFD interval.
    pub bfd_interval: Duration,
    /// BFD multiplier.
    pub bfd_multiplier: u8,
    /// BGP listening port.
    pub local_port: u16,
    /// The BIRD binary.
    pub bird: PathBuf,
    /// BIRD's runtime directory (resolved: never unset here).
    pub runtime_dir: PathBuf,
    /// An operator-run BIRD instead of lbfwd's own.
    pub external: Option<ExternalBird>,
    /// The sessions.
    pub peers: Vec<BgpPeer>,
}

/// An operator-run BIRD (`external_bird_socket`, `external_bird_include`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalBird {
    /// Its control socket.
    pub socket: PathBuf,
    /// The file lbfwd writes and the operator's config includes.
    pub include: PathBuf,
}

/// Validated `[[bgp.peer]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpPeer {
    /// Peer address.
    pub address: IpAddr,
    /// Peer AS.
    pub asn: u32,
    /// Peer port.
    pub port: u16,
    /// MD5 password.
    pub password: Option<String>,
    /// Local session address.
    pub source_address: Option<IpAddr>,
    /// Multihop TTL; `None`: directly connected.
    pub multihop: Option<u8>,
    /// Passive.
    pub passive: bool,
    /// Hold time.
    pub hold_time: Duration,
    /// BFD on.
    pub bfd: bool,
}

fn asn(path: &str, value: u64, err: &mut dyn FnMut(&str, Problem)) -> Option<u32> {
    match u32::try_from(value) {
        Ok(n) if n > 0 => Some(n),
        _ => {
            err(
                path,
                Problem::Setting(format!("AS number {value} is outside 1-4294967295")),
            );
            None
        }
    }
}

/// Parses a list of communities (standard or large, by `parse`), reporting
/// each bad entry at `PATH[i]`.
fn communities<T>(
    path: &str,
    list: &[String],
    parse: fn(&str) -> Result<T, String>,
    err: &mut dyn FnMut(&str, Problem),
) -> Vec<T> {
    list.iter()
        .enumerate()
        .filter_map(|(i, text)| match parse(text) {
            Ok(c) => Some(c),
            Err(why) => {
                err(&format!("{path}[{i}]"), Problem::Setting(why));
                None
            }
        })
        .collect()
}

/// Validates `[bgp]`. `sources` are the appliance's own addresses
/// (`[underlay] source_ipv4` / `source_ipv6`); `socket_dir` the control
/// socket's directory (BIRD's default runtime directory is `bird/` inside
/// it). Every problem goes to `err` with its field path.
pub fn validate_bgp(
    b: &BgpSection,
    sources: (Option<Ipv4Addr>, Option<Ipv6Addr>),
    socket_dir: &std::path::Path,
    err: &mut dyn FnMut(&str, Problem),
) -> Option<Bgp> {
    let local_asn = asn("bgp.asn", b.asn, err);
    let router_id = match b.router_id.parse::<Ipv4Addr>() {
        Ok(a) => Some(a),
        Err(_) => {
            err(
                "bgp.router_id",
                Problem::Setting(format!(
                    "router id {:?} is not an IPv4 address (BGP router ids are written as one, e.g. \"10.0.0.1\")",
                    b.router_id
                )),
            );
            None
        }
    };
    if !(3..=65535).contains(&b.hold_time_s) {
        err(
            "bgp.hold_time_s",
            Problem::Setting(format!("hold_time_s {} is outside 3-65535", b.hold_time_s)),
        );
    }
    if b.keepalive_s == 0 || b.keepalive_s >= b.hold_time_s.max(1) {
        err(
            "bgp.keepalive_s",
            Problem::Setting(format!(
                "keepalive_s {} must be at least 1 and below hold_time_s {}",
                b.keepalive_s, b.hold_time_s
            )),
        );
    }
    if b.shutdown_delay_s > 3600 {
        err(
            "bgp.shutdown_delay_s",
            Problem::Setting(format!(
                "shutdown_delay_s {} is above 3600",
                b.shutdown_delay_s
            )),
        );
    }
    if !(10..=10_000).contains(&b.bfd_interval_ms) {
        err(
            "bgp.bfd_interval_ms",
            Problem::Setting(format!(
                "bfd_interval_ms {} is outside 10-10000",
                b.bfd_interval_ms
            )),
        );
    }
    if !(1..=255).contains(&b.bfd_multiplier) {
        err(
            "bgp.bfd_multiplier",
            Problem::Setting(format!(
                "bfd_multiplier {} is outside 1-255",
                b.bfd_multiplier
            )),
        );
    }
    if b.local_port == 0 {
        err("bgp.local_port", Problem::PortOutOfRange(0));
    }
    if b.bird.as_os_str().is_empty() {
        err("bgp.bird", Problem::EmptyName);
    }
    if b.runtime_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        err("bgp.runtime_dir", Problem::EmptyName);
    }
    let external = match (&b.external_bird_socket, &b.external_bird_include) {
        (Some(socket), Some(include)) => {
            if !b.peers.is_empty() {
                err(
                    "bgp.peer",
                    Problem::Setting(
                        "with external_bird_socket the sessions are the operator's BIRD's: \
                         leave out [[bgp.peer]]"
                            .into(),
                    ),
                );
            }
            Some(ExternalBird {
                socket: socket.clone(),
                include: include.clone(),
            })
        }
        (None, None) => None,
        (Some(_), None) => {
            err(
                "bgp.external_bird_socket",
                Problem::Setting("needs external_bird_include (the file lbfwd writes)".into()),
            );
            None
        }
        (None, Some(_)) => {
            err(
                "bgp.external_bird_include",
                Problem::Setting("needs external_bird_socket (the operator's BIRD)".into()),
            );
            None
        }
    };
    let attributes = RouteAttributes {
        communities: communities("bgp.communities", &b.communities, Community::parse, err),
        large_communities: communities(
            "bgp.large_communities",
            &b.large_communities,
            LargeCommunity::parse,
            err,
        ),
        local_pref: b.local_pref,
        med: b.med,
    };
    let mut peers = Vec::new();
    for (i, p) in b.peers.iter().enumerate() {
        if let Some(peer) = validate_peer(i, p, b, sources, err) {
            if let Some(j) = peers
                .iter()
                .position(|q: &BgpPeer| q.address == peer.address && q.port == peer.port)
            {
                err(
                    &format!("bgp.peer[{i}].address"),
                    Problem::Setting(format!(
                        "peer {} is already bgp.peer[{j}]: one session per peer",
                        peer.address
                    )),
                );
            }
            peers.push(peer);
        }
    }
    let runtime_dir = b
        .runtime_dir
        .clone()
        .unwrap_or_else(|| socket_dir.join("bird"));
    Some(Bgp {
        asn: local_asn?,
        router_id: router_id?,
        hold_time: Duration::from_secs(b.hold_time_s),
        keepalive: Duration::from_secs(b.keepalive_s),
        shutdown_delay: Duration::from_secs(b.shutdown_delay_s),
        attributes,
        bfd_interval: Duration::from_millis(b.bfd_interval_ms),
        bfd_multiplier: b.bfd_multiplier.clamp(1, 255) as u8,
        local_port: b.local_port,
        bird: b.bird.clone(),
        runtime_dir,
        external,
        peers,
    })
}

fn validate_peer(
    i: usize,
    p: &BgpPeerSection,
    b: &BgpSection,
    sources: (Option<Ipv4Addr>, Option<Ipv6Addr>),
    err: &mut dyn FnMut(&str, Problem),
) -> Option<BgpPeer> {
    let path = |field: &str| format!("bgp.peer[{i}].{field}");
    let address = match p.address.parse::<IpAddr>() {
        Ok(a) if a.is_unspecified() || a.is_multicast() => {
            err(
                &path("address"),
                Problem::Setting(format!("{a} cannot be a BGP peer")),
            );
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            err(&path("address"), Problem::BadIp(p.address.clone()));
            None
        }
    };
    let peer_asn = asn(&path("asn"), p.asn, err);
    if p.port == 0 {
        err(&path("port"), Problem::PortOutOfRange(0));
    }
    if p.password
        .as_deref()
        .is_some_and(|pw| pw.is_empty() || pw.len() > 80 || pw.contains(['"', '\\', '\n', '\r']))
    {
        err(
            &path("password"),
            Problem::Setting(
                "password must be 1-80 characters without quotes, backslashes or line breaks"
                    .into(),
            ),
        );
    }
    let source_address = p
        .source_address
        .as_ref()
        .and_then(|s| match s.parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                err(&path("source_address"), Problem::BadIp(s.clone()));
                None
            }
        });
    if let Some(m) = p.multihop {
        if !(1..=255).contains(&m) {
            err(
                &path("multihop"),
                Problem::Setting(format!("multihop {m} is outside 1-255")),
            );
        }
    }
    if let Some(h) = p.hold_time_s {
        if !(3..=65535).contains(&h) {
            err(
                &path("hold_time_s"),
                Problem::Setting(format!("hold_time_s {h} is outside 3-65535")),
            );
        } else if b.keepalive_s >= h {
            err(
                &path("hold_time_s"),
                Problem::Setting(format!(
                    "hold_time_s {h} must be above [bgp] keepalive_s {}",
                    b.keepalive_s
                )),
            );
        }
    }
    let address = address?;
    match source_address {
        Some(s) if s.is_ipv4() != address.is_ipv4() => {
            err(
                &path("source_address"),
                Problem::Setting(format!(
                    "source address {s} and peer {address} are of different families"
                )),
            );
        }
        Some(_) => {}
        None => {
            let have = match address {
                IpAddr::V4(_) => sources.0.is_some(),
                IpAddr::V6(_) => sources.1.is_some(),
            };
            if !have {
                let (family, key) = match address {
                    IpAddr::V4(_) => ("IPv4", "source_ipv4"),
                    IpAddr::V6(_) => ("IPv6", "source_ipv6"),
                };
                err(
                    &path("address"),
                    Problem::Setting(format!(
                        "peer {address} is {family}, but the appliance has no {family} source \
                         address: set [underlay] {key} or bgp.peer[{i}].source_address"
                    )),
                );
            }
        }
    }
    Some(BgpPeer {
        address,
        asn: peer_asn?,
        port: p.port,
        password: p.password.clone(),
        source_address,
        multihop: p.multihop.map(|m| m.clamp(1, 255) as u8),
        passive: p.passive,
        hold_time: Duration::from_secs(p.hold_time_s.unwrap_or(b.hold_time_s)),
        bfd: p.bfd,
    })
}

/// The `bgp` keys of a `[[pool]]` (MetalLB's BGP advertisement, per pool):
/// whether its addresses are announced over BGP, and what they carry on top
/// of `[bgp]`'s attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolBgp {
    /// Announce this pool's addresses over BGP (default true).
    #[serde(default = "default_true")]
    pub announce: bool,
    /// Extra standard communities (`"65000:100"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Extra large communities (`"65000:1:2"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large_communities: Vec<String>,
    /// LOCAL_PREF for this pool's addresses (overrides `[bgp] local_pref`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
}

fn default_true() -> bool {
    true
}

impl Default for PoolBgp {
    fn default() -> Self {
        PoolBgp {
            announce: true,
            communities: Vec::new(),
            large_communities: Vec::new(),
            local_pref: None,
        }
    }
}

impl PoolBgp {
    /// Whether these are the defaults (left out of exports).
    pub fn is_default(&self) -> bool {
        *self == PoolBgp::default()
    }

    /// Every problem, as (field path relative to the pool, problem).
    pub fn problems(&self) -> Vec<(String, Problem)> {
        let mut out = Vec::new();
        let mut err = |path: &str, p: Problem| out.push((path.to_string(), p));
        communities(
            "bgp.communities",
            &self.communities,
            Community::parse,
            &mut err,
        );
        communities(
            "bgp.large_communities",
            &self.large_communities,
            LargeCommunity::parse,
            &mut err,
        );
        out
    }

    /// The attributes, on top of `base` (`[bgp]`'s); bad entries (reported
    /// by [`problems`](Self::problems)) are left out.
    pub fn attributes(&self, base: &RouteAttributes) -> RouteAttributes {
        let mut a = base.clone();
        a.communities.extend(
            self.communities
                .iter()
                .filter_map(|c| Community::parse(c).ok()),
        );
        a.large_communities.extend(
            self.large_communities
                .iter()
                .filter_map(|c| LargeCommunity::parse(c).ok()),
        );
        if self.local_pref.is_some() {
            a.local_pref = self.local_pref;
        }
        a.communities.sort();
        a.communities.dedup();
        a.large_communities.sort();
        a.large_communities.dedup();
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_parse() {
        assert_eq!(Community::parse("65000:100"), Ok(Community(65000, 100)));
        assert_eq!(Community::parse("no-export"), Ok(Community(65535, 65281)));
        assert!(Community::parse("65536:1").is_err());
        assert!(Community::parse("1:2:3").is_err());
        assert_eq!(
            LargeCommunity::parse("4200000000:1:2"),
            Ok(LargeCommunity(4_200_000_000, 1, 2))
        );
        assert!(LargeCommunity::parse("1:2").is_err());
    }

    #[test]
    fn pool_attributes_add_to_the_base() {
        let base = RouteAttributes {
            communities: vec![Community(1, 1)],
            local_pref: Some(100),
            ..RouteAttributes::default()
        };
        let pool = PoolBgp {
            communities: vec!["2:2".into(), "1:1".into()],
            local_pref: Some(200),
            ..PoolBgp::default()
        };
        let a = pool.attributes(&base);
        assert_eq!(a.communities, vec![Community(1, 1), Community(2, 2)]);
        assert_eq!(a.local_pref, Some(200));
    }
}
