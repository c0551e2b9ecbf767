//! Backend set-up: from the `[dataplane]` settings to one open queue per
//! worker, handed to whatever runs them (the runtime, in `lbfwd run`).
//!
//! - [`queue_places`] says where each worker's queue receives and sends
//!   (which interface, which receive queue);
//! - [`Backend::open`] does the set-up a backend needs once per process:
//!   the host path's sysctls (AF_PACKET), the XDP program on each ingress
//!   interface (AF_XDP), EAL and the ports (DPDK);
//! - [`Backend::run`] hands a queue opener to a [`RunQueues`]. The opener's
//!   queue type is the backend's own, so the per-packet path stays
//!   monomorphic: the backend is chosen by one `match` at start-up, not per
//!   poll.
//!
//! A backend this lbfwd was built without is refused with
//! [`OpenError::NotBuilt`], which names the feature to build with.

use super::af_packet::{fanout_group_id, prepare_host_path, AfPacketConfig, AfPacketQueue};
use super::memory::{MemoryConfig, MemoryPort};
use super::pcap::PcapQueue;
use super::{interface_info, IoError, WorkerQueue};
use lbfwd_config::settings::{Backend as BackendKind, Dataplane as DataplaneSettings};
use std::collections::BTreeMap;
use std::error::Error;
use std::net::IpAddr;
use std::path::PathBuf;

/// A consumer of the VIP list (an XDP program's VIP map): called with the
/// current VIPs when it is registered and after every table change.
pub type VipSink = Box<dyn Fn(&[IpAddr]) -> Result<(), String> + Send + Sync>;

/// Where one worker's queue receives and sends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuePlace {
    /// Kernel interface the queue reads (`None`: not a kernel interface,
    /// e.g. pcap, memory or a DPDK port).
    pub ingress: Option<String>,
    /// Interface transmitted frames leave by (`None`: the ingress one).
    pub egress: Option<String>,
    /// Receive queue of the ingress interface (AF_XDP: each worker owns one).
    pub queue: Option<u32>,
}

/// Where each worker's queue goes, worker `i` on `interfaces[i % n]`:
/// workers sharing an interface share it by fanout (AF_PACKET) or own one
/// receive queue each (AF_XDP, counted from 0 per interface). DPDK ports
/// are not kernel interfaces: the DPDK backend gives worker `i` queue `i`
/// of its port itself.
pub fn queue_places(dp: &DataplaneSettings) -> Vec<QueuePlace> {
    let mut next_queue: BTreeMap<String, u32> = BTreeMap::new();
    (0..dp.workers.len())
        .map(|i| {
            let ingress = (!dp.interfaces.is_empty() && dp.backend != BackendKind::Dpdk)
                .then(|| dp.interfaces[i % dp.interfaces.len()].clone());
            let queue = match (&ingress, dp.backend) {
                (Some(name), BackendKind::AfXdp) => {
                    let q = next_queue.entry(name.clone()).or_insert(0);
                    *q += 1;
                    Some(*q - 1)
                }
                _ => None,
            };
            QueuePlace {
                egress: dp.egress_interface.clone().filter(|_| ingress.is_some()),
                ingress,
                queue,
            }
        })
        .collect()
}

/// The MAC the dataplane sends from (the encapsulation's Ethernet source):
/// that of `egress_interface`, else of the first interface. Kernel
/// backends: the interface's address in sysfs. DPDK: the port's own
/// address, with EAL started here ([`Backend::open`] finds it started):
/// there is no kernel interface of that name, and a frame from MAC zero is
/// dropped by every bridge and switch. `None` when there is none to read
/// (pcap, memory).
pub fn egress_mac(dp: &DataplaneSettings) -> Result<Option<[u8; 6]>, OpenError> {
    let Some(name) = dp
        .egress_interface
        .as_deref()
        .or(dp.interfaces.first().map(String::as_str))
    else {
        return Ok(None);
    };
    if dp.backend == BackendKind::Dpdk {
        #[cfg(feature = "dpdk")]
        {
            use super::dpdk::{init_eal, port_mac, DpdkOptions};
            let failed = |what: &'static str| move |source| OpenError::Dpdk { what, source };
            init_eal(&DpdkOptions::from(&dp.dpdk)).map_err(failed("starting EAL"))?;
            return port_mac(name)
                .map(Some)
                .map_err(failed("reading the egress port's MAC"));
        }
    }
    Ok(sysfs_mac(name))
}

/// The MAC address of kernel interface `name`, from sysfs.
fn sysfs_mac(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(mac)
}

/// What [`Backend::open`] may do beyond opening the backend.
pub struct OpenOptions<'a> {
    /// AF_PACKET: set the interfaces' forwarding sysctls to 0 (else refuse
    /// to start when one is not).
    pub set_sysctls: bool,
    /// AF_XDP: registers each XDP program's VIP map as a VIP sink (the
    /// dataplane's `add_vip_sink`).
    pub add_vip_sink: &'a dyn Fn(VipSink) -> Result<(), Box<dyn Error + Send + Sync>>,
    /// Layer-2 announcement (`[l2]`), if configured. DPDK: the port then
    /// receives every multicast frame and tells it its MAC.
    pub l2: Option<&'a dyn MacSink>,
}

/// What layer-2 announcement needs to learn from a port the kernel does not
/// see (DPDK): its MAC, to answer ARP and neighbour solicitations with.
pub trait MacSink {
    /// Port `interface` has hardware address `mac`.
    fn set_mac(&self, interface: &str, mac: [u8; 6]);
}

/// Errors of setting a backend up.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The backend was not compiled in.
    #[error(
        "backend {backend}: this lbfwd was built without the `{feature}` feature \
         (cargo build --features {feature}; needs {needs})"
    )]
    NotBuilt {
        /// The configured backend.
        backend: BackendKind,
        /// The cargo feature that builds it.
        feature: &'static str,
        /// The system packages it needs.
        needs: &'static str,
    },
    /// AF_PACKET: the host path could not be checked or set.
    #[error("af_packet: host path")]
    HostPath(#[source] IoError),
    /// AF_XDP: the XDP program could not be attached.
    #[cfg(feature = "af_xdp")]
    #[error("af_xdp on {interface}: attaching the XDP program")]
    XdpAttach {
        /// The interface.
        interface: String,
        /// What failed.
        #[source]
        source: super::af_xdp::AfXdpError,
    },
    /// AF_XDP: the XDP program's VIP map could not be registered.
    #[error("af_xdp on {interface}: handing the VIPs to the XDP program")]
    VipSink {
        /// The interface.
        interface: String,
        /// What failed.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// DPDK: no port configured.
    #[error("dpdk: [dataplane] interfaces must name the DPDK port (PCI address or vdev name)")]
    NoDpdkPort,
    /// DPDK: EAL or a port could not be set up.
    #[cfg(feature = "dpdk")]
    #[error("dpdk: {what}")]
    Dpdk {
        /// The step that failed.
        what: &'static str,
        /// What failed.
        #[source]
        source: super::dpdk::DpdkError,
    },
    /// pcap: a file is missing from the settings.
    #[error("backend pcap: [dataplane.pcap] needs input and output files")]
    PcapFiles,
}

/// A backend, set up and ready to open its workers' queues.
pub enum Backend {
    /// AF_PACKET: one queue per worker (fanout where workers share an
    /// interface).
    AfPacket {
        /// Every worker's queue configuration.
        configs: Vec<AfPacketConfig>,
        /// The sysctls the set-up changed, for the operator.
        notes: Vec<String>,
    },
    /// AF_XDP: one XSK socket per worker, on its own receive queue.
    #[cfg(feature = "af_xdp")]
    AfXdp(AfXdpBackend),
    /// DPDK: one queue pair per worker on the port(s).
    #[cfg(feature = "dpdk")]
    Dpdk(DpdkBackend),
    /// pcap: every worker reads the input file and writes the output file.
    Pcap {
        /// Frames are read from here.
        input: PathBuf,
        /// Transmitted frames are written here.
        output: PathBuf,
    },
    /// memory: no traffic source; workers idle until stopped (control-plane
    /// tests, dry runs).
    Memory,
}

/// The AF_XDP set-up: one attached program per ingress interface.
#[cfg(feature = "af_xdp")]
pub struct AfXdpBackend {
    programs: BTreeMap<String, std::sync::Arc<super::af_xdp::XdpProgram>>,
    places: Vec<QueuePlace>,
    settings: super::af_xdp::XskSettings,
}

/// The DPDK set-up: the ingress port, and the egress port when two-armed.
#[cfg(feature = "dpdk")]
pub struct DpdkBackend {
    ingress: super::dpdk::DpdkPort,
    egress: Option<super::dpdk::DpdkPort>,
    notes: Vec<String>,
}

/// What runs the queues once the backend is set up: called once, with a
/// function that opens worker `i`'s queue (on the worker's own thread).
pub trait RunQueues {
    /// What running returns.
    type Output;

    /// Runs the workers, opening each one's queue with `open_queue`.
    fn run<Q, O>(self, open_queue: O) -> Self::Output
    where
        Q: WorkerQueue,
        O: Fn(usize) -> Result<Q, IoError> + Sync;
}

impl Backend {
    /// Sets the configured backend up for the workers at `places` (from
    /// [`queue_places`]).
    pub fn open(
        dp: &DataplaneSettings,
        places: &[QueuePlace],
        options: &OpenOptions<'_>,
    ) -> Result<Backend, OpenError> {
        match dp.backend {
            BackendKind::AfPacket => open_af_packet(dp, places, options),
            BackendKind::AfXdp => {
                #[cfg(feature = "af_xdp")]
                return open_af_xdp(dp, places, options).map(Backend::AfXdp);
                #[cfg(not(feature = "af_xdp"))]
                Err(OpenError::NotBuilt {
                    backend: dp.backend,
                    feature: "af_xdp",
                    needs: "libxdp-dev and libbpf-dev",
                })
            }
            BackendKind::Dpdk => {
                #[cfg(feature = "dpdk")]
                return open_dpdk(dp, options.l2).map(Backend::Dpdk);
                #[cfg(not(feature = "dpdk"))]
                Err(OpenError::NotBuilt {
                    backend: dp.backend,
                    feature: "dpdk",
                    needs: "libdpdk-dev",
                })
            }
            BackendKind::Pcap => match (&dp.pcap.input, &dp.pcap.output) {
                (Some(input), Some(output)) => Ok(Backend::Pcap {
                    input: input.clone(),
                    output: output.clone(),
                }),
                _ => Err(OpenError::PcapFiles),
            },
            BackendKind::Memory => Ok(Backend::Memory),
        }
    }

    /// Lines for the operator about what the set-up found or changed
    /// (sysctls set; DPDK ports and their links, waited for up to 5 s).
    pub fn notes(&self) -> &[String] {
        match self {
            Backend::AfPacket { notes, .. } => notes,
            #[cfg(feature = "dpdk")]
            Backend::Dpdk(d) => &d.notes,
            _ => &[],
        }
    }

    /// Runs `runner` with this backend's queue opener.
    pub fn run<R: RunQueues>(&self, runner: R) -> R::Output {
        match self {
            Backend::AfPacket { configs, .. } => {
                runner.run(|i: usize| AfPacketQueue::open(&configs[i]))
            }
            #[cfg(feature = "af_xdp")]
            Backend::AfXdp(x) => runner.run(|i: usize| {
                let place = &x.places[i];
                let program = &x.programs[place.ingress.as_deref().unwrap_or_default()];
                let queue = place.queue.unwrap_or(0);
                let egress = place.egress.as_deref().map(|e| (e, queue));
                Ok(super::af_xdp::XskQueue::open(
                    program,
                    queue,
                    egress,
                    &x.settings,
                )?)
            }),
            #[cfg(feature = "dpdk")]
            Backend::Dpdk(d) => runner.run(|i: usize| {
                Ok(match &d.egress {
                    None => d.ingress.queue(i)?,
                    Some(e) => d.ingress.queue_two_armed(i, e)?,
                })
            }),
            Backend::Pcap { input, output } => {
                runner.run(|_: usize| PcapQueue::open(input, output, None))
            }
            Backend::Memory => runner.run(|_: usize| {
                let (queue, _feeder, _sink) = MemoryPort::new(MemoryConfig::default())?.split();
                Ok(queue)
            }),
        }
    }
}

fn open_af_packet(
    dp: &DataplaneSettings,
    places: &[QueuePlace],
    options: &OpenOptions<'_>,
) -> Result<Backend, OpenError> {
    let interfaces: Vec<&str> = dp
        .interfaces
        .iter()
        .chain(dp.egress_interface.iter())
        .map(String::as_str)
        .collect();
    let report =
        prepare_host_path(&interfaces, options.set_sysctls).map_err(OpenError::HostPath)?;
    let mut sharing: BTreeMap<&str, usize> = BTreeMap::new();
    for ingress in places.iter().filter_map(|p| p.ingress.as_deref()) {
        *sharing.entry(ingress).or_default() += 1;
    }
    let mut configs = Vec::with_capacity(places.len());
    for place in places {
        let ingress = place.ingress.as_deref().unwrap_or_default();
        let mut c = AfPacketConfig::new(ingress);
        c.egress = place.egress.clone();
        if sharing.get(ingress).copied().unwrap_or(0) > 1 {
            let index = interface_info(ingress).map_err(OpenError::HostPath)?.index;
            c.fanout = Some(fanout_group_id(index));
        }
        configs.push(c);
    }
    Ok(Backend::AfPacket {
        configs,
        notes: report
            .changed
            .iter()
            .map(|change| format!("host path: set {change}"))
            .collect(),
    })
}

#[cfg(feature = "af_xdp")]
fn open_af_xdp(
    dp: &DataplaneSettings,
    places: &[QueuePlace],
    options: &OpenOptions<'_>,
) -> Result<AfXdpBackend, OpenError> {
    use super::af_xdp::{AttachMode, CopyMode, XdpProgram, XskSettings};
    use lbfwd_config::settings::{XdpAttach, XdpMode};
    let x = &dp.af_xdp;
    let attach = match x.attach {
        XdpAttach::Auto => AttachMode::Auto,
        XdpAttach::Native => AttachMode::Native,
        XdpAttach::Generic => AttachMode::Generic,
    };
    let settings = XskSettings {
        copy_mode: match x.mode {
            XdpMode::Auto => CopyMode::Auto,
            XdpMode::Copy => CopyMode::Copy,
            XdpMode::Zerocopy => CopyMode::ZeroCopy,
        },
        frames: x.frame_count,
        ..XskSettings::default()
    };
    let mut programs = BTreeMap::new();
    for place in places {
        let ingress = place.ingress.clone().unwrap_or_default();
        if programs.contains_key(&ingress) {
            continue;
        }
        let program =
            XdpProgram::attach(&ingress, attach).map_err(|source| OpenError::XdpAttach {
                interface: ingress.clone(),
                source,
            })?;
        let sink_program = std::sync::Arc::clone(&program);
        (options.add_vip_sink)(Box::new(move |vips| {
            sink_program.set_vips(vips).map_err(|e| e.to_string())
        }))
        .map_err(|source| OpenError::VipSink {
            interface: ingress.clone(),
            source,
        })?;
        programs.insert(ingress, program);
    }
    Ok(AfXdpBackend {
        programs,
        places: places.to_vec(),
        settings,
    })
}

#[cfg(feature = "dpdk")]
fn open_dpdk(dp: &DataplaneSettings, l2: Option<&dyn MacSink>) -> Result<DpdkBackend, OpenError> {
    use super::dpdk::{init_eal, DpdkOptions, DpdkPort, PortOptions, PortSpec};
    let failed = |what: &'static str| move |source| OpenError::Dpdk { what, source };
    init_eal(&DpdkOptions::from(&dp.dpdk)).map_err(failed("starting EAL"))?;
    let Some(port_name) = dp.interfaces.first() else {
        return Err(OpenError::NoDpdkPort);
    };
    let mut port_opts = PortOptions::new(dp.workers.len());
    port_opts.burst = dp.burst as u16;
    port_opts.mtu = dp.dpdk.mtu;
    port_opts.host_tap = dp.dpdk.host_tap.clone();
    // Layer-2 announcement: the solicited-node groups of the VIPs.
    port_opts.allmulticast = l2.is_some();
    let (ingress, egress) = match &dp.egress_interface {
        None => (
            DpdkPort::open(port_name, &port_opts).map_err(failed("opening the port"))?,
            None,
        ),
        Some(out) => {
            let mut out_opts = port_opts.clone();
            out_opts.host_tap = None;
            let (i, e) = DpdkPort::open_two_armed(
                PortSpec::Name(port_name),
                PortSpec::Name(out),
                &port_opts,
                &out_opts,
            )
            .map_err(failed("opening the ports"))?;
            (i, Some(e))
        }
    };
    if let Some(l2) = l2 {
        l2.set_mac(port_name, ingress.summary().mac);
    }
    let mut notes = Vec::new();
    for port in std::iter::once(&ingress).chain(egress.iter()) {
        notes.push(format!("dpdk: {}", port.summary()));
        notes.push(
            match port.wait_for_link(std::time::Duration::from_secs(5)) {
                Ok(link) => format!("dpdk: {link}"),
                Err(e) => format!("dpdk: link state unknown: {e}"),
            },
        );
    }
    Ok(DpdkBackend {
        ingress,
        egress,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lbfwd_config::settings::Idle;

    fn settings(backend: BackendKind, interfaces: &[&str], workers: usize) -> DataplaneSettings {
        let text = r#"
            [dataplane]
            backend = "memory"
            workers = [0]
            [underlay]
            encap = "ipip"
            source_ipv4 = "192.0.2.1"
            next_hop_mac = "02:00:00:00:00:01"
        "#;
        let mut dp = lbfwd_config::Config::from_toml_str(text, "test.toml")
            .expect("a minimal config")
            .settings
            .dataplane;
        dp.backend = backend;
        dp.interfaces = interfaces.iter().map(|s| s.to_string()).collect();
        dp.workers = (0..workers).collect();
        dp.idle = Idle::Busy;
        dp
    }

    #[test]
    fn workers_are_spread_over_the_interfaces_and_queues() {
        let dp = settings(BackendKind::AfXdp, &["a", "b"], 5);
        let places = queue_places(&dp);
        let got: Vec<_> = places
            .iter()
            .map(|p| (p.ingress.as_deref().unwrap(), p.queue.unwrap()))
            .collect();
        assert_eq!(got, [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]);
        let dp = settings(BackendKind::AfPacket, &["a"], 2);
        assert!(queue_places(&dp).iter().all(|p| p.queue.is_none()));
        let mut dp = settings(BackendKind::Dpdk, &["net_null0"], 2);
        dp.egress_interface = Some("net_null1".into());
        assert_eq!(queue_places(&dp), vec![QueuePlace::default(); 2]);
    }

    #[test]
    fn pcap_without_files_is_refused_and_memory_opens() {
        let no_sink = |_: VipSink| -> Result<(), Box<dyn Error + Send + Sync>> { Ok(()) };
        let options = OpenOptions {
            set_sysctls: false,
            add_vip_sink: &no_sink,
            l2: None,
        };
        let dp = settings(BackendKind::Pcap, &[], 1);
        let err = Backend::open(&dp, &queue_places(&dp), &options)
            .err()
            .unwrap();
        assert!(matches!(err, OpenError::PcapFiles), "{err}");
        let dp = settings(BackendKind::Memory, &[], 1);
        let backend = Backend::open(&dp, &queue_places(&dp), &options).unwrap();
        struct OpenOne;
        impl RunQueues for OpenOne {
            type Output = Result<usize, IoError>;
            fn run<Q, O>(self, open_queue: O) -> Self::Output
            where
                Q: WorkerQueue,
                O: Fn(usize) -> Result<Q, IoError> + Sync,
            {
                Ok(open_queue(0)?.tx_pending())
            }
        }
        assert_eq!(backend.run(OpenOne).unwrap(), 0);
    }

    #[cfg(not(all(feature = "af_xdp", feature = "dpdk")))]
    #[test]
    fn a_backend_built_without_is_refused_with_its_feature_named() {
        let no_sink = |_: VipSink| -> Result<(), Box<dyn Error + Send + Sync>> { Ok(()) };
        let options = OpenOptions {
            set_sysctls: false,
            add_vip_sink: &no_sink,
            l2: None,
        };
        #[cfg(not(feature = "af_xdp"))]
        let (backend, feature) = (BackendKind::AfXdp, "`af_xdp`");
        #[cfg(all(feature = "af_xdp", not(feature = "dpdk")))]
        let (backend, feature) = (BackendKind::Dpdk, "`dpdk`");
        let dp = settings(backend, &["lo"], 1);
        let err = Backend::open(&dp, &queue_places(&dp), &options)
            .err()
            .unwrap();
        assert!(matches!(err, OpenError::NotBuilt { .. }), "{err}");
        assert!(err
            .to_string()
            .contains(&format!("built without the {feature} feature")));
    }

    #[test]
    fn egress_mac_is_the_egress_interface_s_own() {
        // The loopback device's address is all zeros, and it always exists.
        let mut dp = settings(BackendKind::AfPacket, &["lo"], 1);
        assert_eq!(egress_mac(&dp).unwrap(), Some([0; 6]));
        dp.egress_interface = Some("lbfwd-no-such0".into());
        assert_eq!(egress_mac(&dp).unwrap(), None);
        let none = settings(BackendKind::Memory, &[], 1);
        assert_eq!(egress_mac(&none).unwrap(), None);
    }
}
