//! The appliance settings: `[dataplane]`, `[underlay]`, `[control]`,
//! `[flow]`, `[metrics]`, `[log]`. The serde input sections (`*Section`, TOML field names, every
//! field documented) are validated into the runtime types ([`Settings`] and
//! its parts) that the daemon uses.
//!
//! Layer 2 (input), above the problems and locations: the sections are
//! deserialized by the TOML reader for the entry point `load`; the
//! resolution uses the [`Underlay`].

use crate::error::{Errors, FieldPath, LocatedError};
use crate::model::{Encap, MacAddr};
use crate::origin::Origin;
use crate::problem::Problem;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// The appliance part of the TOML file (everything but the desired state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    /// `[dataplane]`: packet I/O and workers.
    pub dataplane: DataplaneSection,
    /// `[underlay]`: the encapsulation toward targets.
    pub underlay: UnderlaySection,
    /// `[control]`: control socket and state directory.
    #[serde(default)]
    pub control: ControlSection,
    /// `[flow]`: flow table and fragment handling.
    #[serde(default)]
    pub flow: FlowSection,
    /// `[bgp]`: the managed BIRD and its peers (see [`crate::bgp`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<crate::bgp::BgpSection>,
    /// `[announce]`: announcing at start or not.
    #[serde(
        default,
        skip_serializing_if = "crate::bgp::AnnounceSection::is_default"
    )]
    pub announce: crate::bgp::AnnounceSection,
    /// `[metrics]`: the Prometheus endpoint.
    #[serde(default, skip_serializing_if = "MetricsSection::is_default")]
    pub metrics: MetricsSection,
    /// `[log]`: log level filter and line format.
    #[serde(default, skip_serializing_if = "LogSection::is_default")]
    pub log: LogSection,
    /// `[l2]`: answering ARP/NDP for the VIPs (see [`crate::l2`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2: Option<crate::l2::L2Section>,
    /// `[sync]`: exceptions shared with other appliances (see [`crate::sync`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<crate::sync::SyncSection>,
}

/// A packet I/O backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Linux AF_PACKET sockets (TPACKET_V3 rings).
    AfPacket,
    /// Linux AF_XDP sockets.
    AfXdp,
    /// DPDK poll-mode drivers.
    Dpdk,
    /// Read frames from a pcap file, write results to another.
    Pcap,
    /// In-memory queues (tests).
    Memory,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::AfPacket => "af_packet",
            Backend::AfXdp => "af_xdp",
            Backend::Dpdk => "dpdk",
            Backend::Pcap => "pcap",
            Backend::Memory => "memory",
        })
    }
}

/// What a worker does when a poll returns nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Idle {
    /// Poll again at once (lowest latency, 100% CPU).
    #[default]
    Busy,
    /// Back off (pause, then short sleeps) after repeated empty polls.
    Backoff,
}

/// AF_XDP bind mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XdpMode {
    /// Zero-copy when the driver supports it, else copy.
    #[default]
    Auto,
    /// Copy mode.
    Copy,
    /// Zero-copy mode (fails when unsupported).
    Zerocopy,
}

/// AF_XDP program attach mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XdpAttach {
    /// Native when the driver supports it, else generic.
    #[default]
    Auto,
    /// Driver (native) XDP.
    Native,
    /// Generic (SKB) XDP.
    Generic,
}

/// `[dataplane]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneSection {
    /// `af_packet`, `af_xdp`, `dpdk`, `pcap` or `memory`.
    pub backend: Backend,
    /// Ingress interfaces (kernel names; DPDK: port names or PCI
    /// addresses). Required for af_packet and af_xdp.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Where encapsulated packets leave; unset: one-armed, each packet
    /// leaves through the interface it arrived on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_interface: Option<String>,
    /// Cores the worker threads are pinned to, one worker per core.
    pub workers: Vec<usize>,
    /// Packets per RX/TX burst, 1-1024 (default 32).
    #[serde(default = "default_burst")]
    pub burst: u64,
    /// Longest a partly filled TX buffer waits, in microseconds (default 100).
    #[serde(default = "default_tx_drain_us")]
    pub tx_drain_us: u64,
    /// `busy` (default) or `backoff` when polls come back empty.
    #[serde(default)]
    pub idle: Idle,
    /// `[dataplane.af_xdp]`.
    #[serde(default)]
    pub af_xdp: AfXdpSection,
    /// `[dataplane.dpdk]`.
    #[serde(default)]
    pub dpdk: DpdkSection,
    /// `[dataplane.pcap]`.
    #[serde(default)]
    pub pcap: PcapSection,
}

fn default_burst() -> u64 {
    32
}
fn default_tx_drain_us() -> u64 {
    100
}

/// `[dataplane.af_xdp]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfXdpSection {
    /// `auto` (default), `copy` or `zerocopy`.
    #[serde(default)]
    pub mode: XdpMode,
    /// `auto` (default), `native` or `generic`.
    #[serde(default)]
    pub attach: XdpAttach,
    /// UMEM frames per socket, a power of two (default 4096).
    #[serde(default = "default_frame_count")]
    pub frame_count: u32,
}

fn default_frame_count() -> u32 {
    4096
}

impl Default for AfXdpSection {
    fn default() -> Self {
        AfXdpSection {
            mode: XdpMode::Auto,
            attach: XdpAttach::Auto,
            frame_count: default_frame_count(),
        }
    }
}

/// `[dataplane.dpdk]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpdkSection {
    /// Run without hugepages (`--no-huge`; tests and virtual devices).
    #[serde(default)]
    pub no_huge: bool,
    /// Hugepage mount (`--huge-dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huge_dir: Option<PathBuf>,
    /// Memory to preallocate in MB (`-m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// PCI devices to use (`-a`), e.g. `0000:03:00.0`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pci_allow: Vec<String>,
    /// Virtual devices (`--vdev`), e.g. `net_tap0,iface=lbfwd0`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vdevs: Vec<String>,
    /// Further EAL arguments, passed as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_eal_args: Vec<String>,
    /// Kernel name of the TAP interface of the host path (non-VIP traffic
    /// reaches the kernel through it); none: such frames are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_tap: Option<String>,
    /// MTU of the DPDK port(s); the driver's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
}

/// `[dataplane.pcap]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcapSection {
    /// pcap file frames are read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<PathBuf>,
    /// pcap file transmitted frames are written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
}

/// An encapsulation name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncapKind {
    /// IP-in-IP.
    Ipip,
    /// GUE variant 1.
    Gue,
    /// VXLAN.
    Vxlan,
}

/// `[underlay]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnderlaySection {
    /// `ipip`, `gue` or `vxlan`.
    pub encap: EncapKind,
    /// GUE UDP destination port (default 6080).
    #[serde(default = "default_gue_port")]
    pub gue_port: u16,
    /// VXLAN UDP destination port (default 4789).
    #[serde(default = "default_vxlan_port")]
    pub vxlan_port: u16,
    /// Outer IPv4 source; required when a destination has an IPv4 underlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ipv4: Option<String>,
    /// Outer IPv6 source; required when a destination has an IPv6 underlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ipv6: Option<String>,
    /// Outer source MAC; unset: the egress interface's MAC, read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_mac: Option<String>,
    /// Outer destination MAC: the underlay next hop (router).
    pub next_hop_mac: String,
    /// Underlay MTU in bytes, 1280-9216 (default 1500): an encapsulated packet
    /// larger than this is answered with ICMP too-big / fragmentation needed.
    #[serde(default = "default_mtu")]
    pub mtu: u64,
}

fn default_gue_port() -> u16 {
    6080
}
fn default_vxlan_port() -> u16 {
    4789
}
fn default_mtu() -> u64 {
    1500
}

/// `[control]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    /// Unix socket path (default `/run/lbfwd/lbfwd.sock`).
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// Group owning the socket (mode 0660); unset: the daemon's group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_group: Option<String>,
    /// Where the desired state is persisted (default `/var/lib/lbfwd`).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/lbfwd/lbfwd.sock")
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/lbfwd")
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            socket: default_socket(),
            socket_group: None,
            state_dir: default_state_dir(),
        }
    }
}

/// `[flow]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSection {
    /// Flow table entries per worker (default 1048576, rounded up to a power
    /// of two).
    #[serde(default = "default_capacity")]
    pub capacity: u64,
    /// Idle timeout of TCP flows, seconds (default 300).
    #[serde(default = "default_tcp_timeout")]
    pub tcp_timeout_s: u64,
    /// Idle timeout of UDP flows, seconds (default 30).
    #[serde(default = "default_udp_timeout")]
    pub udp_timeout_s: u64,
    /// Idle timeout of SCTP flows, seconds (default 300).
    #[serde(default = "default_tcp_timeout")]
    pub sctp_timeout_s: u64,
    /// Idle timeout of other flows (e.g. ICMP), seconds (default 30).
    #[serde(default = "default_udp_timeout")]
    pub other_timeout_s: u64,
    /// Fragment reassembly-tracking entries per worker (default 4096).
    #[serde(default = "default_fragment_capacity")]
    pub fragment_capacity: u64,
    /// How long a first fragment's target is remembered, ms (default 2000).
    #[serde(default = "default_fragment_timeout")]
    pub fragment_timeout_ms: u64,
    /// ICMP too-big answers per second per worker (default 100; 0: never).
    #[serde(default = "default_icmp_rate")]
    pub icmp_too_big_rate: u64,
    /// New flows per second per worker remembered in the flow table
    /// (default 125000; 0: no limit); see [`crate::flow_guard`].
    #[serde(default = "crate::flow_guard::default_new_flow_rate")]
    pub new_flow_rate: u64,
    /// Token-bucket depth of the new-flow limit (default: the rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_flow_burst: Option<u64>,
    /// What happens to a new flow above the limit: `forward` (default) or
    /// `drop`.
    #[serde(default)]
    pub new_flow_excess: crate::flow_guard::NewFlowExcess,
    /// Keep the flow tables in files a restarted lbfwd re-attaches
    /// (default true; [`crate::flow_persist`]).
    #[serde(default = "crate::flow_persist::default_persist")]
    pub persist: bool,
    /// Where (default: `flows` in the control socket's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_dir: Option<PathBuf>,
}

fn default_capacity() -> u64 {
    1 << 20
}
fn default_tcp_timeout() -> u64 {
    300
}
fn default_udp_timeout() -> u64 {
    30
}
fn default_fragment_capacity() -> u64 {
    4096
}
fn default_fragment_timeout() -> u64 {
    2000
}
fn default_icmp_rate() -> u64 {
    100
}

impl Default for FlowSection {
    fn default() -> Self {
        FlowSection {
            capacity: default_capacity(),
            tcp_timeout_s: default_tcp_timeout(),
            udp_timeout_s: default_udp_timeout(),
            sctp_timeout_s: default_tcp_timeout(),
            other_timeout_s: default_udp_timeout(),
            fragment_capacity: default_fragment_capacity(),
            fragment_timeout_ms: default_fragment_timeout(),
            icmp_too_big_rate: default_icmp_rate(),
            new_flow_rate: crate::flow_guard::default_new_flow_rate(),
            new_flow_burst: None,
            new_flow_excess: crate::flow_guard::NewFlowExcess::default(),
            persist: crate::flow_persist::default_persist(),
            persist_dir: None,
        }
    }
}

/// `[metrics]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address and port of the Prometheus endpoint (`GET /metrics`), e.g.
    /// `127.0.0.1:9464` or `[::1]:9464`; unset: no endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

impl MetricsSection {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// `plain` under systemd (the journal is stderr), `text` otherwise.
    #[default]
    Auto,
    /// `LEVEL target: message`, without a timestamp (the journal adds one).
    Plain,
    /// `TIMESTAMP LEVEL target: message`.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Level filter, `RUST_LOG`-style: a level (`error`, `warn`, `info`,
    /// `debug`, `trace`, `off`) and/or `target=level` entries separated by
    /// commas (default `info`). The `LBFWD_LOG` environment variable, else
    /// `RUST_LOG`, overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `auto` (default), `plain`, `text` or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

fn default_log_level() -> String {
    "info".to_string()
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: default_log_level(),
            format: LogFormat::Auto,
        }
    }
}

impl LogSection {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// Checks a `RUST_LOG`-style filter: comma-separated `level` or
/// `target=level` entries. Returns what is wrong with the first bad entry.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for entry in filter.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (target, level) = match entry.split_once('=') {
            Some((t, l)) => (Some(t.trim()), l.trim()),
            None => (None, entry),
        };
        if target == Some("") {
            return Err(format!("{entry:?}: the target before `=` is empty"));
        }
        let known = LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level));
        // A lone word that is not a level is a target at the default level
        // (as `RUST_LOG=lbfwd` means lbfwd at trace); a bad level after `=`
        // is an error.
        if !known && target.is_some() {
            return Err(format!(
                "{entry:?}: {level:?} is not a level (off, error, warn, info, debug, trace)"
            ));
        }
    }
    Ok(())
}

/// Validated `[metrics]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Where the Prometheus endpoint listens; `None`: no endpoint.
    pub listen: Option<std::net::SocketAddr>,
}

/// Validated appliance settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Packet I/O and workers.
    pub dataplane: Dataplane,
    /// Encapsulation toward targets.
    pub underlay: Underlay,
    /// Control socket and state.
    pub control: Control,
    /// Flow table and fragments.
    pub flow: Flow,
    /// The BGP speaker, when `[bgp]` is present.
    pub bgp: Option<crate::bgp::Bgp>,
    /// Announcing at start.
    pub announce: crate::bgp::Announce,
    /// The Prometheus endpoint.
    pub metrics: Metrics,
    /// Logging (`[log]` as written; the filter is checked).
    pub log: LogSection,
    /// Layer-2 announcement, when `[l2]` is present.
    pub l2: Option<crate::l2::L2>,
    /// Exception sync with other appliances, when `[sync]` is present.
    pub sync: Option<crate::sync::ExceptionSync>,
}

/// Validated `[dataplane]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataplane {
    /// The backend.
    pub backend: Backend,
    /// Ingress interfaces (may be empty for pcap and memory).
    pub interfaces: Vec<String>,
    /// Egress interface; `None`: one-armed (out where it came in).
    pub egress_interface: Option<String>,
    /// Worker cores, distinct, in the given order.
    pub workers: Vec<usize>,
    /// Burst size, 1-1024.
    pub burst: usize,
    /// TX drain interval.
    pub tx_drain: std::time::Duration,
    /// Idle behaviour.
    pub idle: Idle,
    /// AF_XDP options.
    pub af_xdp: AfXdpSection,
    /// DPDK options.
    pub dpdk: DpdkSection,
    /// pcap options.
    pub pcap: PcapSection,
}

/// Validated `[underlay]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Underlay {
    /// The encapsulation, with its UDP port.
    pub encap: Encap,
    /// Outer IPv4 source.
    pub source_ipv4: Option<Ipv4Addr>,
    /// Outer IPv6 source.
    pub source_ipv6: Option<Ipv6Addr>,
    /// Outer source MAC; `None`: the egress interface's.
    pub source_mac: Option<MacAddr>,
    /// Outer destination MAC.
    pub next_hop_mac: MacAddr,
    /// Underlay MTU.
    pub mtu: u16,
}

/// Validated `[control]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    /// Socket path.
    pub socket: PathBuf,
    /// Socket group.
    pub socket_group: Option<String>,
    /// State directory.
    pub state_dir: PathBuf,
}

/// Validated `[flow]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Flow entries per worker (a power of two).
    pub capacity: usize,
    /// TCP idle timeout.
    pub tcp_timeout: std::time::Duration,
    /// UDP idle timeout.
    pub udp_timeout: std::time::Duration,
    /// SCTP idle timeout.
    pub sctp_timeout: std::time::Duration,
    /// Other flows' idle timeout.
    pub other_timeout: std::time::Duration,
    /// Fragment entries per worker.
    pub fragment_capacity: usize,
    /// Fragment entry lifetime.
    pub fragment_timeout: std::time::Duration,
    /// ICMP too-big answers per second per worker.
    pub icmp_too_big_rate: u32,
    /// The new-flow flood guard.
    pub guard: crate::flow_guard::FlowGuard,
    /// Where the flow tables are kept across a restart (`None`: off).
    pub persist: Option<crate::flow_persist::FlowPersist>,
}

impl Underlay {
    /// Settings for tests and examples: the given encapsulation (default
    /// port), both source families, a fixed next hop.
    pub fn for_tests(encap: Encap) -> Self {
        Underlay {
            encap,
            source_ipv4: Some(Ipv4Addr::new(10, 0, 2, 2)),
            source_ipv6: Some("fd00:2::2".parse().unwrap_or(Ipv6Addr::LOCALHOST)),
            source_mac: None,
            next_hop_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
        }
    }
}

struct Collector<'a> {
    origin: &'a Origin,
    errors: Errors,
}

impl Collector<'_> {
    fn err(&mut self, path: &str, problem: Problem) {
        let (location, path) = self
            .origin
            .locate(&|| "settings".to_string(), &FieldPath::parse(path));
        self.errors.push(LocatedError {
            location,
            path,
            problem,
        });
    }
}

fn mac(c: &mut Collector<'_>, path: &str, text: &str) -> Option<MacAddr> {
    match text.parse::<MacAddr>() {
        Ok(m) if m.is_unicast() => Some(m),
        Ok(m) => {
            c.err(path, Problem::NotUnicastMac(m.to_string()));
            None
        }
        Err(_) => {
            c.err(path, Problem::BadMac(text.to_string()));
            None
        }
    }
}

impl SettingsInput {
    /// Validates into runtime settings; every problem is reported, located
    /// through `origin` (the TOML file's root).
    pub fn validate(&self, origin: &Origin) -> Result<Settings, Errors> {
        let mut c = Collector {
            origin,
            errors: Errors::default(),
        };
        let d = &self.dataplane;
        if d.interfaces.is_empty() && matches!(d.backend, Backend::AfPacket | Backend::AfXdp) {
            c.err(
                "dataplane.interfaces",
                Problem::Setting(format!(
                    "backend {} needs at least one interface",
                    d.backend
                )),
            );
        }
        for (i, name) in d.interfaces.iter().enumerate() {
            if name.is_empty() {
                c.err(&format!("dataplane.interfaces[{i}]"), Problem::EmptyName);
            } else if d.interfaces[..i].contains(name) {
                c.err(
                    &format!("dataplane.interfaces[{i}]"),
                    Problem::Setting(format!("interface {name:?} listed twice")),
                );
            }
        }
        if d.egress_interface.as_deref() == Some("") {
            c.err("dataplane.egress_interface", Problem::EmptyName);
        }
        if d.workers.is_empty() {
            c.err(
                "dataplane.workers",
                Problem::Setting("at least one worker core is needed".into()),
            );
        }
        for (i, core) in d.workers.iter().enumerate() {
            if d.workers[..i].contains(core) {
                c.err(
                    &format!("dataplane.workers[{i}]"),
                    Problem::Setting(format!("core {core} listed twice")),
                );
            }
        }
        if !(1..=1024).contains(&d.burst) {
            c.err(
                "dataplane.burst",
                Problem::Setting(format!("burst {} is outside 1-1024", d.burst)),
            );
        }
        if d.tx_drain_us == 0 || d.tx_drain_us > 1_000_000 {
            c.err(
                "dataplane.tx_drain_us",
                Problem::Setting(format!(
                    "tx_drain_us {} is outside 1-1000000",
                    d.tx_drain_us
                )),
            );
        }
        let fc = d.af_xdp.frame_count;
        if !fc.is_power_of_two() || !(64..=1 << 20).contains(&fc) {
            c.err(
                "dataplane.af_xdp.frame_count",
                Problem::Setting(format!(
                    "frame_count {fc} must be a power of two in 64-1048576"
                )),
            );
        }
        if d.backend == Backend::Pcap && d.pcap.input.is_none() {
            c.err(
                "dataplane.pcap",
                Problem::Setting("backend pcap needs [dataplane.pcap] input".into()),
            );
        }

        let u = &self.underlay;
        let encap = match u.encap {
            EncapKind::Ipip => Encap::IpIp,
            EncapKind::Gue => Encap::Gue { port: u.gue_port },
            EncapKind::Vxlan => Encap::Vxlan { port: u.vxlan_port },
        };
        if u.gue_port == 0 {
            c.err("underlay.gue_port", Problem::PortOutOfRange(0));
        }
        if u.vxlan_port == 0 {
            c.err("underlay.vxlan_port", Problem::PortOutOfRange(0));
        }
        let source_ipv4 = u
            .source_ipv4
            .as_ref()
            .and_then(|s| match s.parse::<Ipv4Addr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    c.err(
                        "underlay.source_ipv4",
                        if s.parse::<Ipv6Addr>().is_ok() {
                            Problem::Setting(format!(
                                "{s} is IPv6; source_ipv4 needs an IPv4 address"
                            ))
                        } else {
                            Problem::BadIp(s.clone())
                        },
                    );
                    None
                }
            });
        let source_ipv6 = u
            .source_ipv6
            .as_ref()
            .and_then(|s| match s.parse::<Ipv6Addr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    c.err(
                        "underlay.source_ipv6",
                        if s.parse::<Ipv4Addr>().is_ok() {
                            Problem::Setting(format!(
                                "{s} is IPv4; source_ipv6 needs an IPv6 address"
                            ))
                        } else {
                            Problem::BadIp(s.clone())
                        },
                    );
                    None
                }
            });
        let source_mac = u
            .source_mac
            .as_ref()
            .and_then(|m| mac(&mut c, "underlay.source_mac", m));
        let next_hop_mac = mac(&mut c, "underlay.next_hop_mac", &u.next_hop_mac);
        if !(1280..=9216).contains(&u.mtu) {
            c.err(
                "underlay.mtu",
                Problem::Setting(format!("mtu {} is outside 1280-9216", u.mtu)),
            );
        }

        let ctl = &self.control;
        if ctl.socket.as_os_str().is_empty() {
            c.err("control.socket", Problem::EmptyName);
        }
        if ctl.state_dir.as_os_str().is_empty() {
            c.err("control.state_dir", Problem::EmptyName);
        }

        let f = &self.flow;
        if !(1..=1 << 28).contains(&f.capacity) {
            c.err(
                "flow.capacity",
                Problem::Setting(format!("capacity {} is outside 1-268435456", f.capacity)),
            );
        }
        for (name, v) in [
            ("tcp_timeout_s", f.tcp_timeout_s),
            ("udp_timeout_s", f.udp_timeout_s),
            ("sctp_timeout_s", f.sctp_timeout_s),
            ("other_timeout_s", f.other_timeout_s),
        ] {
            if !(1..=86_400).contains(&v) {
                c.err(
                    &format!("flow.{name}"),
                    Problem::Setting(format!("{name} {v} is outside 1-86400")),
                );
            }
        }
        if !(1..=1 << 24).contains(&f.fragment_capacity) {
            c.err(
                "flow.fragment_capacity",
                Problem::Setting(format!(
                    "fragment_capacity {} is outside 1-16777216",
                    f.fragment_capacity
                )),
            );
        }
        if !(1..=60_000).contains(&f.fragment_timeout_ms) {
            c.err(
                "flow.fragment_timeout_ms",
                Problem::Setting(format!(
                    "fragment_timeout_ms {} is outside 1-60000",
                    f.fragment_timeout_ms
                )),
            );
        }
        if f.icmp_too_big_rate > 1_000_000 {
            c.err(
                "flow.icmp_too_big_rate",
                Problem::Setting(format!(
                    "icmp_too_big_rate {} is above 1000000",
                    f.icmp_too_big_rate
                )),
            );
        }
        let persist = crate::flow_persist::validate_persist(
            f.persist,
            f.persist_dir.as_deref(),
            &ctl.socket,
            &mut |path, problem| c.err(path, problem),
        );

        let guard = crate::flow_guard::validate_flow_guard(
            f.new_flow_rate,
            f.new_flow_burst,
            f.new_flow_excess,
            &mut |p, e| c.err(p, e),
        );

        let listen = self.metrics.listen.as_ref().and_then(|text| {
            match text.parse::<std::net::SocketAddr>() {
                Ok(a) if a.port() != 0 => Some(a),
                Ok(_) => {
                    c.err("metrics.listen", Problem::PortOutOfRange(0));
                    None
                }
                Err(_) => {
                    c.err(
                        "metrics.listen",
                        Problem::Setting(format!(
                            "{text:?} is not an address and port (e.g. 127.0.0.1:9464 or [::1]:9464)"
                        )),
                    );
                    None
                }
            }
        });
        if let Err(why) = check_log_filter(&self.log.level) {
            c.err("log.level", Problem::Setting(why));
        }

        let socket_dir = ctl
            .socket
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let bgp = self.bgp.as_ref().and_then(|b| {
            crate::bgp::validate_bgp(b, (source_ipv4, source_ipv6), &socket_dir, &mut |p, e| {
                c.err(p, e)
            })
        });
        let l2 = self.l2.as_ref().and_then(|l| {
            crate::l2::validate_l2(
                l,
                &d.interfaces,
                d.egress_interface.as_deref(),
                &mut |p, e| c.err(p, e),
            )
        });
        let sync = self
            .sync
            .as_ref()
            .and_then(|s| crate::sync::validate_sync(s, &mut |p, e| c.err(p, e)));
        let Some(next_hop_mac) = next_hop_mac else {
            return Err(c.errors);
        };
        let secs = std::time::Duration::from_secs;
        let settings = Settings {
            dataplane: Dataplane {
                backend: d.backend,
                interfaces: d.interfaces.clone(),
                egress_interface: d.egress_interface.clone(),
                workers: d.workers.clone(),
                burst: d.burst as usize,
                tx_drain: std::time::Duration::from_micros(d.tx_drain_us),
                idle: d.idle,
                af_xdp: d.af_xdp.clone(),
                dpdk: d.dpdk.clone(),
                pcap: d.pcap.clone(),
            },
            underlay: Underlay {
                encap,
                source_ipv4,
                source_ipv6,
                source_mac,
                next_hop_mac,
                mtu: u.mtu.min(u16::MAX as u64) as u16,
            },
            control: Control {
                socket: ctl.socket.clone(),
                socket_group: ctl.socket_group.clone(),
                state_dir: ctl.state_dir.clone(),
            },
            flow: Flow {
                capacity: (f.capacity.max(1) as usize).next_power_of_two(),
                tcp_timeout: secs(f.tcp_timeout_s),
                udp_timeout: secs(f.udp_timeout_s),
                sctp_timeout: secs(f.sctp_timeout_s),
                other_timeout: secs(f.other_timeout_s),
                fragment_capacity: f.fragment_capacity as usize,
                fragment_timeout: std::time::Duration::from_millis(f.fragment_timeout_ms),
                icmp_too_big_rate: f.icmp_too_big_rate.min(u32::MAX as u64) as u32,
                guard: guard.unwrap_or_default(),
                persist,
            },
            bgp,
            announce: self.announce.validate(),
            metrics: Metrics { listen },
            log: self.log.clone(),
            l2,
            sync,
        };
        c.errors.into_result(settings)
    }
}
