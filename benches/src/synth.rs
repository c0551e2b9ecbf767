//! Synthetic configurations: `lbs` load balancers (one IPv4 and, optionally,
//! one IPv6 VIP each) with `targets` destinations each, as a resolved model
//! for the in-process benchmarks and as an lbfwd TOML file for `lbfwd run`.
//!
//! Addressing (fixed, so the generator and the configuration agree):
//!
//! | what | IPv4 | IPv6 |
//! | --- | --- | --- |
//! | VIP of load balancer `i` | `10.128.0.0 + i` | `2001:db8:100::1:0 + i` |
//! | underlay of target `t` of LB `i` | `10.0.0.0 + i * targets + t + 1` (v4 underlay) | — |
//! | clients ([`crate::traffic`]) | `198.18.0.0/15` | `2001:db8:c000::/48` |
//!
//! Allowed ports of every load balancer: TCP 80 and UDP 1024-2048; traffic
//! the filter should drop goes to TCP 8080 ([`DROPPED_PORT`]).

use lbfwd_config::model::{
    AssignedIp, Destination, Encap, IcmpEcho, LoadBalancerType, MacAddr, PortRange, Protocol,
    Resolved, ResolvedLoadBalancer,
};
use lbfwd_forwarder::tables::UnderlayParams;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The allowed TCP port of every synthetic load balancer.
pub const TCP_PORT: u16 = 80;
/// First allowed UDP port.
pub const UDP_FIRST: u16 = 1024;
/// Last allowed UDP port.
pub const UDP_LAST: u16 = 2048;
/// A TCP port no synthetic load balancer allows: the filter drops it.
pub const DROPPED_PORT: u16 = 8080;
/// VNI of the synthetic network.
pub const VNI: u32 = 100;
/// Most load balancers [`SynthSpec`] accepts (VIPs stay inside 10.128/16).
pub const MAX_LBS: usize = 65_536;

/// Shape of a synthetic configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthSpec {
    /// Load balancers (one VIP per family each).
    pub lbs: usize,
    /// Destinations per load balancer.
    pub targets: usize,
    /// Maglev table size of every load balancer (a prime).
    pub maglev_size: u32,
    /// Encapsulation toward the targets.
    pub encap: Encap,
    /// Give every load balancer an IPv6 VIP too.
    pub ipv6: bool,
}

impl Default for SynthSpec {
    /// The issue's reference configuration: 1000 VIPs, 100 targets each,
    /// Maglev M = 65537, VXLAN, dual stack.
    fn default() -> Self {
        SynthSpec {
            lbs: 1000,
            targets: 100,
            maglev_size: lbfwd_forwarder::maglev::DEFAULT_TABLE_SIZE,
            encap: Encap::Vxlan { port: 4789 },
            ipv6: true,
        }
    }
}

/// A shape that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SynthError {
    /// Zero or too many load balancers.
    #[error("load balancers: {0} is out of range (1 to {MAX_LBS})")]
    Lbs(usize),
    /// Zero targets, or more than the dataplane has counter slots for.
    #[error("targets: {targets} per load balancer x {lbs} load balancers is out of range (1 to {max} in all)")]
    Targets {
        /// Targets per load balancer.
        targets: usize,
        /// Load balancers.
        lbs: usize,
        /// Most targets over all load balancers.
        max: usize,
    },
}

impl SynthSpec {
    /// Checks the shape against the dataplane's limits.
    pub fn validate(&self) -> Result<(), SynthError> {
        if self.lbs == 0 || self.lbs > MAX_LBS {
            return Err(SynthError::Lbs(self.lbs));
        }
        let max = lbfwd_forwarder::counters::MAX_TARGET_SLOTS;
        if self.targets == 0 || self.targets.saturating_mul(self.lbs) > max {
            return Err(SynthError::Targets {
                targets: self.targets,
                lbs: self.lbs,
                max,
            });
        }
        Ok(())
    }
}

/// The IPv4 VIP of load balancer `i`.
pub fn vip_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0A80_0000u32 + i as u32)
}

/// The IPv6 VIP of load balancer `i`.
pub fn vip_v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::from(0x2001_0db8_0100_0000_0000_0000_0001_0000u128 + i as u128)
}

/// The IPv4 underlay address of target `t` of load balancer `lb`.
pub fn target_underlay(spec: &SynthSpec, lb: usize, t: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0A00_0000u32 + (lb * spec.targets + t) as u32 + 1)
}

/// The inner (VXLAN) MAC of target `t` of load balancer `lb`.
pub fn target_mac(spec: &SynthSpec, lb: usize, t: usize) -> [u8; 6] {
    let n = (lb * spec.targets + t) as u32;
    let b = n.to_be_bytes();
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

fn target_name(lb: usize, t: usize) -> String {
    format!("nic-{lb:05}-{t:04}")
}

fn target_uid(lb: usize, t: usize) -> String {
    format!("6b1c2f0e-{lb:04x}-4d3a-9e2b-{t:012x}")
}

/// The resolved model of `spec`. With `removed = Some(k)`, target `k` of
/// every load balancer is left out of the routing (the routing change the
/// churn benchmark publishes and takes back).
pub fn resolved(spec: &SynthSpec, removed: Option<usize>) -> Result<Resolved, SynthError> {
    spec.validate()?;
    let load_balancers = (0..spec.lbs)
        .map(|i| {
            let mut ips = vec![AssignedIp {
                addr: IpAddr::V4(vip_v4(i)),
                pool: Some("public".into()),
            }];
            if spec.ipv6 {
                ips.push(AssignedIp {
                    addr: IpAddr::V6(vip_v6(i)),
                    pool: Some("public".into()),
                });
            }
            ResolvedLoadBalancer {
                name: format!("lb-{i:05}"),
                lb_type: LoadBalancerType::Public,
                network: "bench".into(),
                vni: VNI,
                ips,
                ports: vec![
                    PortRange {
                        protocol: Protocol::Tcp,
                        first: TCP_PORT,
                        last: TCP_PORT,
                    },
                    PortRange {
                        protocol: Protocol::Udp,
                        first: UDP_FIRST,
                        last: UDP_LAST,
                    },
                ],
                icmp_echo: IcmpEcho::Drop,
                maglev_table_size: spec.maglev_size,
                destinations: (0..spec.targets)
                    .filter(|&t| Some(t) != removed)
                    .map(|t| Destination {
                        name: target_name(i, t),
                        uid: target_uid(i, t),
                        underlay: IpAddr::V4(target_underlay(spec, i, t)),
                        mac: Some(MacAddr(target_mac(spec, i, t))),
                        weight: 1,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Resolved { load_balancers })
}

/// Underlay parameters for the in-process benchmarks.
pub fn underlay(encap: Encap) -> UnderlayParams {
    UnderlayParams {
        encap,
        source_ipv4: Some(Ipv4Addr::new(10, 255, 0, 2)),
        source_ipv6: Some("fd00:ff::2".parse().unwrap_or(Ipv6Addr::LOCALHOST)),
        source_mac: [0x02, 0, 0, 0, 0xff, 0x02],
        next_hop_mac: [0x02, 0, 0, 0, 0xff, 0x01],
        mtu: 9000,
    }
}

/// The `[dataplane]` and `[control]` parts of a generated `lbfwd run`
/// configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSettings {
    /// `af_packet` or `af_xdp`.
    pub backend: String,
    /// Ingress interface.
    pub ingress: String,
    /// Egress interface (two-armed); `None`: one-armed.
    pub egress: Option<String>,
    /// Worker cores.
    pub workers: Vec<usize>,
    /// MAC of the underlay next hop (the sink).
    pub next_hop_mac: [u8; 6],
    /// Control socket path.
    pub socket: String,
    /// State directory.
    pub state_dir: String,
    /// Flow-table capacity per worker (a power of two).
    pub flow_capacity: usize,
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An lbfwd TOML configuration with the load balancers of `spec`: one
/// network, `lbs * targets` network interfaces (labelled per load
/// balancer), `lbs` public load balancers. Loads with
/// `lbfwd_config::Config::from_toml_str` and resolves to [`resolved`]`(spec,
/// None)` (same names, uids, VIPs, targets).
pub fn toml_config(spec: &SynthSpec, run: &RunSettings) -> Result<String, SynthError> {
    spec.validate()?;
    let mut s = String::new();
    let workers = run
        .workers
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let egress = run
        .egress
        .as_ref()
        .map(|e| format!("egress_interface = \"{e}\"\n"))
        .unwrap_or_default();
    let encap = match spec.encap {
        Encap::IpIp => "encap = \"ipip\"".to_string(),
        Encap::Gue { port } => format!("encap = \"gue\"\ngue_port = {port}"),
        Encap::Vxlan { port } => format!("encap = \"vxlan\"\nvxlan_port = {port}"),
    };
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        r#"# Generated by lbfwd-pktgen: {lbs} load balancers x {targets} targets.
[dataplane]
backend = "{backend}"
interfaces = ["{ingress}"]
{egress}workers = [{workers}]

[underlay]
{encap}
source_ipv4 = "10.255.0.2"
source_ipv6 = "fd00:ff::2"
next_hop_mac = "{nh}"
mtu = 9000

[control]
socket = "{socket}"
state_dir = "{state}"

[flow]
capacity = {cap}

[[pool]]
name = "public"
addresses = ["10.128.0.0/16", "2001:db8:100::1:0/112"]

[[network]]
name = "bench"
vni = {VNI}
"#,
        lbs = spec.lbs,
        targets = spec.targets,
        backend = run.backend,
        ingress = run.ingress,
        nh = mac_text(run.next_hop_mac),
        socket = run.socket,
        state = run.state_dir,
        cap = run.flow_capacity,
    );
    for i in 0..spec.lbs {
        for t in 0..spec.targets {
            let _ = write!(
                s,
                "\n[[network_interface]]\nname = \"{}\"\nuid = \"{}\"\nnetwork = \"bench\"\nlabels = {{ lb = \"lb-{i:05}\" }}\nunderlay = \"{}\"\nmac = \"{}\"\n",
                target_name(i, t),
                target_uid(i, t),
                target_underlay(spec, i, t),
                mac_text(target_mac(spec, i, t)),
            );
        }
    }
    for i in 0..spec.lbs {
        let (families, ips) = if spec.ipv6 {
            (
                r#"["IPv4", "IPv6"]"#.to_string(),
                format!(r#"["{}", "{}"]"#, vip_v4(i), vip_v6(i)),
            )
        } else {
            (r#"["IPv4"]"#.to_string(), format!(r#"["{}"]"#, vip_v4(i)))
        };
        let _ = write!(
            s,
            "\n[[load_balancer]]\nname = \"lb-{i:05}\"\ntype = \"Public\"\nip_families = {families}\nips = {ips}\nnetwork = \"bench\"\nnetwork_interface_selector = {{ match_labels = {{ lb = \"lb-{i:05}\" }} }}\nports = [ {{ protocol = \"TCP\", port = {TCP_PORT} }}, {{ protocol = \"UDP\", port = {UDP_FIRST}, end_port = {UDP_LAST} }} ]\nmaglev_table_size = {}\n",
            spec.maglev_size
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SynthSpec {
        SynthSpec {
            lbs: 3,
            targets: 4,
            maglev_size: 251,
            ..SynthSpec::default()
        }
    }

    #[test]
    fn resolved_has_every_vip_and_target() {
        let r = resolved(&small(), None).unwrap();
        assert_eq!(r.load_balancers.len(), 3);
        let lb = &r.load_balancers[2];
        assert_eq!(lb.ips[0].addr, IpAddr::V4("10.128.0.2".parse().unwrap()));
        assert_eq!(
            lb.ips[1].addr,
            IpAddr::V6("2001:db8:100::1:2".parse().unwrap())
        );
        assert_eq!(lb.destinations.len(), 4);
        let r = resolved(&small(), Some(1)).unwrap();
        assert_eq!(r.load_balancers[0].destinations.len(), 3);
        assert!(r.load_balancers[0]
            .destinations
            .iter()
            .all(|d| d.name != target_name(0, 1)));
    }

    #[test]
    fn bad_shapes_are_refused() {
        let zero = SynthSpec { lbs: 0, ..small() };
        assert_eq!(resolved(&zero, None).unwrap_err(), SynthError::Lbs(0));
        let huge = SynthSpec {
            lbs: 1000,
            targets: 1000,
            ..small()
        };
        let err = resolved(&huge, None).unwrap_err().to_string();
        assert!(err.contains("1000 per load balancer"), "{err}");
    }

    #[test]
    fn toml_config_resolves_to_the_same_model() {
        let spec = small();
        let run = RunSettings {
            backend: "af_packet".into(),
            ingress: "lbb-l0".into(),
            egress: Some("lbb-l1".into()),
            workers: vec![1],
            next_hop_mac: [2, 0, 0, 0, 0, 9],
            socket: "/tmp/lbb.sock".into(),
            state_dir: "/tmp/lbb-state".into(),
            flow_capacity: 1 << 16,
        };
        let text = toml_config(&spec, &run).unwrap();
        let config = lbfwd_config::Config::from_toml_str(&text, "generated.toml")
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let got = config.resolve().unwrap().resolved;
        let want = resolved(&spec, None).unwrap();
        assert_eq!(got.load_balancers.len(), want.load_balancers.len());
        for (g, w) in got.load_balancers.iter().zip(&want.load_balancers) {
            assert_eq!(g.name, w.name);
            let mut gi: Vec<_> = g.ips.iter().map(|a| a.addr).collect();
            let mut wi: Vec<_> = w.ips.iter().map(|a| a.addr).collect();
            gi.sort();
            wi.sort();
            assert_eq!(gi, wi);
            let mut gd: Vec<_> = g
                .destinations
                .iter()
                .map(|d| (d.name.clone(), d.uid.clone(), d.underlay))
                .collect();
            let mut wd: Vec<_> = w
                .destinations
                .iter()
                .map(|d| (d.name.clone(), d.uid.clone(), d.underlay))
                .collect();
            gd.sort();
            wd.sort();
            assert_eq!(gd, wd);
            assert_eq!(g.maglev_table_size, w.maglev_table_size);
        }
    }
}
