//! Ports: options, set-up (pools, queues, the host-path TAP), link state and
//! counters, and handing out one [`DpdkQueue`] per worker.
#![allow(unsafe_code)]

use super::eal::{
    attach_vdev, c_chars_to_string, detach_vdev, eal_ready, init_eal, lock, port_names, strerror,
};
use super::queue::{DpdkQueue, Side, TxBuffer};
use super::{
    cstring, ffi, DpdkError, DpdkOptions, DEFAULT_BURST, DEFAULT_DESC, MAX_BURST, MAX_MTU,
    MIN_POOL, POOL_CACHE, TX_BUFFER_BURSTS,
};
use crate::frame::HEADROOM;
use std::ffi::{c_char, c_int, c_uint};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- ports ------------------------------------------------------------------

/// How to set up a port: one RX and one TX queue per worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortOptions {
    /// Queue pairs, one per worker.
    pub queues: usize,
    /// RX descriptors per queue (the driver may adjust).
    pub rx_desc: u16,
    /// TX descriptors per queue (the driver may adjust).
    pub tx_desc: u16,
    /// The workers' burst size (sizes the mbuf pool).
    pub burst: u16,
    /// Receive every frame, whatever its destination MAC.
    pub promiscuous: bool,
    /// Receive every multicast frame (layer-2 announcement: the IPv6
    /// solicited-node groups of the VIPs). On anyway with a host path.
    pub allmulticast: bool,
    /// MTU of the port; the driver's default (1500) when unset. The
    /// encapsulated frames lbfwd sends are up to 84 bytes longer than what
    /// it receives, so the underlay usually needs more than the clients.
    pub mtu: Option<u16>,
    /// Kernel name of the TAP interface of the host path (module docs);
    /// none: frames for the host are freed.
    pub host_tap: Option<String>,
}

impl PortOptions {
    /// Defaults for `queues` workers: [`DEFAULT_DESC`] descriptors,
    /// [`DEFAULT_BURST`], no promiscuous mode, the driver's MTU, no host
    /// path.
    pub fn new(queues: usize) -> Self {
        PortOptions {
            queues,
            rx_desc: DEFAULT_DESC,
            tx_desc: DEFAULT_DESC,
            burst: DEFAULT_BURST,
            promiscuous: false,
            allmulticast: false,
            mtu: None,
            host_tap: None,
        }
    }
}

/// What a port turned out to be once configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSummary {
    /// The port's name (PCI address or virtual device name).
    pub name: String,
    /// DPDK's port id.
    pub port_id: u16,
    /// The poll-mode driver.
    pub driver: String,
    /// The port's MAC address.
    pub mac: [u8; 6],
    /// NUMA socket of the device (-1: unknown).
    pub socket: i32,
    /// RX/TX queue pairs configured.
    pub queues: u16,
    /// RX descriptors per queue after the driver's limits.
    pub rx_desc: u16,
    /// TX descriptors per queue after the driver's limits.
    pub tx_desc: u16,
    /// RSS hash functions the driver supports (`RTE_ETH_RSS_*` bits).
    pub rss_supported: u64,
    /// RSS hash functions enabled (0: RSS off).
    pub rss_enabled: u64,
    /// Whether RSS covers ports (TCP/UDP/SCTP), i.e. hashes the 5-tuple.
    pub rss_l4: bool,
}

impl fmt::Display for PortSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.mac;
        let rss = if self.queues <= 1 {
            "off (one queue)"
        } else if self.rss_enabled == 0 {
            "not supported by the driver (it spreads frames itself, or queue 0 gets all)"
        } else if self.rss_l4 {
            "5-tuple"
        } else {
            "addresses only"
        };
        write!(
            f,
            "port {} (id {}, {}, {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}): {} queues, \
             {}/{} rx/tx descriptors, RSS {rss}",
            self.name,
            self.port_id,
            self.driver,
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            self.queues,
            self.rx_desc,
            self.tx_desc
        )
    }
}

/// A port's link state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link up.
    pub up: bool,
    /// Speed in Mbit/s (0: unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// Autonegotiated.
    pub autoneg: bool,
}

impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.up {
            return f.write_str("link down");
        }
        f.write_str("link up")?;
        if self.speed_mbps > 0 {
            write!(f, ", {} Mbit/s", self.speed_mbps)?;
        }
        f.write_str(if self.full_duplex {
            ", full duplex"
        } else {
            ", half duplex"
        })?;
        if self.autoneg {
            f.write_str(", autonegotiated")?;
        }
        Ok(())
    }
}

/// Port-level counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Frames the device dropped because no RX descriptor was free.
    pub rx_missed: u64,
    /// Erroneous frames received.
    pub rx_errors: u64,
    /// Failed transmissions.
    pub tx_errors: u64,
    /// RX mbuf allocation failures (pool exhausted).
    pub rx_nombuf: u64,
}

/// An mbuf pool, freed on drop (after the ports that use it: see
/// [`PortShared`]'s field order).
pub(super) struct Pool {
    pub(super) ptr: *mut ffi::RteMempool,
    pub(super) size: u32,
}

// SAFETY: the pool pointer is only used through DPDK's thread-safe mempool
// functions (the default ring_mp_mc ops, per-lcore caches) and freed once,
// on drop of the last owner.
unsafe impl Send for Pool {}
// SAFETY: as above: shared access only allocates, frees and counts through
// thread-safe mempool functions.
unsafe impl Sync for Pool {}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the pool was created by lbfwd_pool_create and is freed once;
        // the ports using it are closed before (field order of PortShared)
        // and every queue holding mbufs is gone (they keep PortShared alive).
        unsafe { ffi::lbfwd_pool_free(self.ptr) };
    }
}

/// A configured (and maybe started) port, stopped and closed on drop; a
/// device lbfwd attached is removed after.
pub(super) struct OpenPort {
    pub(super) id: u16,
    pub(super) name: String,
    /// lbfwd attached the device (and removes it on drop).
    pub(super) attached: bool,
    /// lbfwd configured the port (and stops and closes it on drop); a port
    /// refused before that is left as it was.
    pub(super) configured: bool,
}

impl Drop for OpenPort {
    fn drop(&mut self) {
        if self.configured {
            // SAFETY: `id` is a port this process configured; stop and
            // close run once, from the last owner, when no queue polls it
            // any more.
            unsafe { ffi::lbfwd_port_shutdown(self.id) };
        }
        if self.attached {
            // Nothing to do with an error here: the process keeps a stale
            // virtual device at worst.
            let _ = detach_vdev(&self.name);
        }
    }
}

/// Everything a port's queues share; dropped with the last of them.
pub(super) struct PortShared {
    // Field order is drop order: ports close before the pool is freed.
    pub(super) wire: OpenPort,
    pub(super) host: Option<OpenPort>,
    /// Shared by the two ports of a two-armed layout.
    pub(super) pool: Arc<Pool>,
    pub(super) summary: PortSummary,
    pub(super) host_summary: Option<PortSummary>,
    pub(super) host_iface: Option<String>,
    /// Which queues were handed out.
    pub(super) taken: Mutex<Vec<bool>>,
    /// The workers' burst size (sizes the TX buffers).
    pub(super) burst: u16,
    /// Serialises control calls (stats, link): ethdev's control functions
    /// are not thread-safe among themselves.
    pub(super) ctl: Mutex<()>,
}

pub(super) static POOL_SEQ: AtomicU32 = AtomicU32::new(0);
pub(super) static TAP_SEQ: AtomicU32 = AtomicU32::new(0);

/// A DPDK port set up for lbfwd's workers: one RX/TX queue pair per worker,
/// an mbuf pool, and optionally the host path's TAP (module docs). Cheap to
/// clone; the port closes when the last clone and the last queue are gone.
#[derive(Clone)]
pub struct DpdkPort {
    pub(super) shared: Arc<PortShared>,
}

impl fmt::Debug for DpdkPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpdkPort")
            .field("summary", &self.shared.summary)
            .field("host", &self.shared.host_summary)
            .finish()
    }
}

pub(super) fn find_port(name: &str) -> Result<u16, DpdkError> {
    let c = cstring("port", name)?;
    let mut id = 0u16;
    // SAFETY: `c` is NUL-terminated and `id` writable, both alive for the
    // call.
    let rc = unsafe { ffi::lbfwd_port_by_name(c.as_ptr(), &mut id) };
    if rc < 0 {
        let known = port_names()?;
        return Err(DpdkError::PortNotFound {
            name: name.to_string(),
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        });
    }
    Ok(id)
}

/// The hardware address of the port EAL knows as `name` (a PCI address
/// or a virtual device's name), read before the port is configured: the
/// encapsulation writes it as its Ethernet source, and the tables are
/// built before the ports open.
pub fn port_mac(name: &str) -> Result<[u8; 6], DpdkError> {
    eal_ready()?;
    let id = find_port(name)?;
    Ok(port_info(name, id)?.mac)
}

/// A port being opened; field order is drop order (ports before the pool).
pub(super) struct Parts {
    pub(super) wire: OpenPort,
    pub(super) host: Option<OpenPort>,
    pub(super) pool: Option<Arc<Pool>>,
}

pub(super) fn check_port_options(name: &str, opts: &PortOptions) -> Result<(), DpdkError> {
    let bad = |reason: String| DpdkError::PortOption {
        port: name.to_string(),
        reason,
    };
    if opts.queues == 0 || opts.queues > usize::from(u16::MAX) {
        return Err(bad(format!(
            "{} queues: need 1 to 65535 (one per worker)",
            opts.queues
        )));
    }
    if opts.burst == 0 || usize::from(opts.burst) > MAX_BURST {
        return Err(bad(format!(
            "burst {} is out of range (1 to {MAX_BURST})",
            opts.burst
        )));
    }
    if opts.rx_desc == 0 || opts.tx_desc == 0 {
        return Err(bad("rx_desc and tx_desc must be at least 1".to_string()));
    }
    if let Some(mtu) = opts.mtu {
        if !(68..=MAX_MTU).contains(&mtu) {
            return Err(bad(format!(
                "MTU {mtu} is out of range (68 to {MAX_MTU}: lbfwd does not enable scattered RX)"
            )));
        }
    }
    if let Some(iface) = &opts.host_tap {
        let valid = !iface.is_empty()
            && iface.len() < libc::IFNAMSIZ
            && iface
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !valid {
            return Err(bad(format!(
                "host TAP name {iface:?} is not an interface name (1 to {} letters, digits, \
                 '-', '_', '.')",
                libc::IFNAMSIZ - 1
            )));
        }
    }
    // SAFETY: reads a compile-time constant.
    let headroom = unsafe { ffi::lbfwd_pktmbuf_headroom() } as usize;
    if headroom < HEADROOM {
        return Err(bad(format!(
            "DPDK was built with RTE_PKTMBUF_HEADROOM {headroom}, lbfwd needs {HEADROOM}"
        )));
    }
    Ok(())
}

/// The mbuf pool for a port: every descriptor of every queue of both ports
/// (wire and host TAP), the frames a worker holds (a burst plus its two TX
/// buffers), the per-lcore caches, and slack; at least [`MIN_POOL`], rounded
/// to 2^k - 1 (the best size for the pool's ring).
pub(super) fn pool_size(opts: &PortOptions) -> u64 {
    round_pool(pool_need(opts))
}

pub(super) fn pool_need(opts: &PortOptions) -> u64 {
    let q = opts.queues as u64;
    let ports = if opts.host_tap.is_some() { 2 } else { 1 };
    ports * q * (u64::from(opts.rx_desc) + u64::from(opts.tx_desc))
        + q * u64::from(opts.burst) * (1 + 2 * TX_BUFFER_BURSTS as u64)
        + (q + 1) * u64::from(POOL_CACHE)
        + 1024
}

pub(super) fn round_pool(need: u64) -> u64 {
    (need + 1)
        .next_power_of_two()
        .saturating_sub(1)
        .max(u64::from(MIN_POOL))
}

pub(super) fn create_pool(name: &str, mbufs: u64, socket: i32) -> Result<Pool, DpdkError> {
    let mbufs = u32::try_from(mbufs).map_err(|_| DpdkError::PortOption {
        port: name.to_string(),
        reason: format!("{mbufs} mbufs would be needed; use fewer queues or descriptors"),
    })?;
    let pool_name = format!("lbfwd_p{}", POOL_SEQ.fetch_add(1, Ordering::Relaxed));
    let cpool = cstring("port", &pool_name)?;
    let socket = if socket < 0 { -1 } else { socket };
    // SAFETY: `cpool` is a NUL-terminated name alive for the call; EAL is
    // initialised (the caller found the port).
    let ptr = unsafe { ffi::lbfwd_pool_create(cpool.as_ptr(), mbufs, POOL_CACHE, socket) };
    if ptr.is_null() {
        // SAFETY: EAL is initialised; rte_errno is read right after the call
        // on the same thread.
        let err = unsafe { errno_of_last_call() };
        return Err(DpdkError::Pool {
            port: name.to_string(),
            mbufs,
            reason: strerror(err),
        });
    }
    Ok(Pool { ptr, size: mbufs })
}

pub(super) fn port_info(name: &str, id: u16) -> Result<ffi::PortInfo, DpdkError> {
    // SAFETY: PortInfo is plain old data; all-zero is valid.
    let mut info: ffi::PortInfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a writable lbfwd_port_info (layout checked by the
    // tests) alive for the call.
    let rc = unsafe { ffi::lbfwd_port_info(id, &mut info) };
    if rc < 0 {
        return Err(DpdkError::Port {
            port: name.to_string(),
            what: "rte_eth_dev_info_get",
            reason: strerror(rc),
        });
    }
    Ok(info)
}

pub(super) fn check_queue_count(
    name: &str,
    info: &ffi::PortInfo,
    queues: usize,
) -> Result<(), DpdkError> {
    let max = info.max_rx_queues.min(info.max_tx_queues);
    if queues == 0 || queues > usize::from(max) {
        return Err(DpdkError::TooManyQueues {
            port: name.to_string(),
            driver: c_chars_to_string(&info.driver),
            max,
            wanted: queues,
        });
    }
    Ok(())
}

/// Configures and starts port `id` with `queues` queue pairs on `pool`.
pub(super) fn setup_port(
    name: &str,
    id: u16,
    info: &ffi::PortInfo,
    opts: &PortOptions,
    pool: *mut ffi::RteMempool,
    allmulticast: bool,
) -> Result<PortSummary, DpdkError> {
    check_queue_count(name, info, opts.queues)?;
    let driver = c_chars_to_string(&info.driver);
    let (mut ip, mut l4) = (0u64, 0u64);
    // SAFETY: both pointers are writable u64s alive for the call.
    unsafe { ffi::lbfwd_rss_wanted(&mut ip, &mut l4) };
    let mut conf = ffi::PortConf {
        pool,
        rss_hf: ip | l4,
        nb_queues: opts.queues as u16,
        nb_rxd: opts.rx_desc,
        nb_txd: opts.tx_desc,
        promiscuous: opts.promiscuous as u8,
        allmulticast: allmulticast as u8,
        mtu: opts.mtu.unwrap_or(0),
    };
    // SAFETY: `conf` is a valid lbfwd_port_conf whose pool pointer is a live
    // mempool; the shim only reads and updates the struct.
    let rc = unsafe { ffi::lbfwd_port_setup(id, &mut conf) };
    if rc < 0 {
        return Err(DpdkError::Port {
            port: name.to_string(),
            what: "configuring and starting (rte_eth_dev_configure, queue setup, \
                   rte_eth_dev_start)",
            reason: strerror(rc),
        });
    }
    Ok(PortSummary {
        name: name.to_string(),
        port_id: id,
        driver,
        mac: info.mac,
        socket: info.socket_id,
        queues: conf.nb_queues,
        rx_desc: conf.nb_rxd,
        tx_desc: conf.nb_txd,
        rss_supported: info.flow_type_rss_offloads,
        rss_enabled: conf.rss_hf,
        rss_l4: conf.rss_hf & l4 != 0,
    })
}

/// A port to open: one EAL knows, or a virtual device to attach first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSpec<'a> {
    /// A port EAL has (PCI address, or a device from `vdevs`).
    Name(&'a str),
    /// A virtual device to attach (see [`attach_vdev`]); removed again when
    /// the port closes.
    Vdev(&'a str),
}

impl PortSpec<'_> {
    pub(super) fn name(&self) -> &str {
        match self {
            PortSpec::Name(name) => name,
            PortSpec::Vdev(devargs) => devargs.split(',').next().unwrap_or(devargs),
        }
    }

    /// (name, port id, attached by us).
    pub(super) fn resolve(&self) -> Result<(String, u16, bool), DpdkError> {
        match *self {
            PortSpec::Name(name) => Ok((name.to_string(), find_port(name)?, false)),
            PortSpec::Vdev(devargs) => {
                let name = attach_vdev(devargs)?;
                match find_port(&name) {
                    Ok(id) => Ok((name, id, true)),
                    Err(e) => {
                        let _ = detach_vdev(&name);
                        Err(e)
                    }
                }
            }
        }
    }
}

impl DpdkPort {
    /// For the runtime: initialises EAL from `opts` (see [`init_eal`]) and
    /// opens `port` with one queue pair per worker and the defaults of
    /// [`PortOptions::new`].
    pub fn init(opts: &DpdkOptions, port: &str, workers: usize) -> Result<DpdkPort, DpdkError> {
        DpdkPort::init_with(opts, port, &PortOptions::new(workers))
    }

    /// Like [`DpdkPort::init`] with explicit port options (burst, host
    /// path, MTU, descriptors).
    pub fn init_with(
        opts: &DpdkOptions,
        port: &str,
        port_opts: &PortOptions,
    ) -> Result<DpdkPort, DpdkError> {
        init_eal(opts)?;
        DpdkPort::open(port, port_opts)
    }

    /// Opens the port EAL knows as `name` (a PCI address or a virtual
    /// device's name), configures it as `opts` says and starts it.
    pub fn open(name: &str, opts: &PortOptions) -> Result<DpdkPort, DpdkError> {
        eal_ready()?;
        let id = find_port(name)?;
        DpdkPort::open_id(name, id, false, opts, None)
    }

    /// Attaches the virtual device `devargs` (see [`attach_vdev`]) and opens
    /// it like [`DpdkPort::open`]; the device is removed again when the port
    /// closes.
    pub fn open_vdev(devargs: &str, opts: &PortOptions) -> Result<DpdkPort, DpdkError> {
        let name = attach_vdev(devargs)?;
        let id = match find_port(&name) {
            Ok(id) => id,
            Err(e) => {
                let _ = detach_vdev(&name);
                return Err(e);
            }
        };
        DpdkPort::open_id(&name, id, true, opts, None)
    }

    /// Opens the two ports of a two-armed layout on one mbuf pool (a TX
    /// queue then only ever sees mbufs of one pool, as the fast-free TX
    /// offload requires): frames arrive on `ingress` (and on `egress`),
    /// leave on `egress`; see [`DpdkPort::queue_two_armed`]. Both need the
    /// same number of queues (one per worker).
    pub fn open_two_armed(
        ingress: PortSpec<'_>,
        egress: PortSpec<'_>,
        ingress_opts: &PortOptions,
        egress_opts: &PortOptions,
    ) -> Result<(DpdkPort, DpdkPort), DpdkError> {
        eal_ready()?;
        if ingress_opts.queues != egress_opts.queues {
            return Err(DpdkError::PortOption {
                port: egress.name().to_string(),
                reason: format!(
                    "{} queues on the egress port, {} on the ingress port: a two-armed \
                     worker needs one queue on each",
                    egress_opts.queues, ingress_opts.queues
                ),
            });
        }
        let (in_name, in_id, in_attached) = ingress.resolve()?;
        let info = match port_info(&in_name, in_id) {
            Ok(info) => info,
            Err(e) => {
                if in_attached {
                    let _ = detach_vdev(&in_name);
                }
                return Err(e);
            }
        };
        let mbufs = round_pool(pool_need(ingress_opts) + pool_need(egress_opts));
        let pool = match create_pool(&in_name, mbufs, info.socket_id) {
            Ok(pool) => Arc::new(pool),
            Err(e) => {
                if in_attached {
                    let _ = detach_vdev(&in_name);
                }
                return Err(e);
            }
        };
        let ingress = DpdkPort::open_id(
            &in_name,
            in_id,
            in_attached,
            ingress_opts,
            Some(Arc::clone(&pool)),
        )?;
        let (eg_name, eg_id, eg_attached) = egress.resolve()?;
        let egress = DpdkPort::open_id(&eg_name, eg_id, eg_attached, egress_opts, Some(pool))?;
        Ok((ingress, egress))
    }

    pub(super) fn open_id(
        name: &str,
        id: u16,
        attached: bool,
        opts: &PortOptions,
        pool: Option<Arc<Pool>>,
    ) -> Result<DpdkPort, DpdkError> {
        // From here on, an error drops `parts`: ports are closed (and
        // devices we attached removed) before the pool is freed.
        let mut parts = Parts {
            wire: OpenPort {
                id,
                name: name.to_string(),
                attached,
                configured: false,
            },
            host: None,
            pool: None,
        };
        check_port_options(name, opts)?;
        let info = port_info(name, id)?;
        check_queue_count(name, &info, opts.queues)?;
        let pool = match pool {
            Some(pool) => pool,
            None => Arc::new(create_pool(name, pool_size(opts), info.socket_id)?),
        };
        let pool_ptr = parts.pool.insert(pool).ptr;

        let mut host_summary = None;
        if let Some(iface) = &opts.host_tap {
            let m = info.mac;
            let tap_name = format!("net_tap_lbfwd{}", TAP_SEQ.fetch_add(1, Ordering::Relaxed));
            let mut devargs = format!("{tap_name},iface={iface}");
            // The kernel answers ARP/NDP with the TAP's MAC, which must be
            // the one the wire port receives on. A port without a usable
            // unicast MAC (net_ring reports zeros) leaves the TAP its own.
            if m != [0; 6] && m[0] & 1 == 0 {
                devargs.push_str(&format!(
                    ",mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    m[0], m[1], m[2], m[3], m[4], m[5]
                ));
            }
            let tap_name = attach_vdev(&devargs)?;
            let tap_id = match find_port(&tap_name) {
                Ok(id) => id,
                Err(e) => {
                    let _ = detach_vdev(&tap_name);
                    return Err(e);
                }
            };
            let tap = parts.host.insert(OpenPort {
                id: tap_id,
                name: tap_name.clone(),
                attached: true,
                configured: false,
            });
            let tap_info = port_info(&tap_name, tap_id)?;
            // The TAP keeps its default MTU (net_tap refuses more than a
            // 1522-byte frame); the kernel does not check it on frames
            // written into the TAP, and its own frames stay small.
            let tap_opts = PortOptions {
                promiscuous: false,
                mtu: None,
                host_tap: None,
                ..opts.clone()
            };
            tap.configured = true;
            host_summary = Some(setup_port(
                &tap_name, tap_id, &tap_info, &tap_opts, pool_ptr, false,
            )?);
        }
        parts.wire.configured = true;
        let summary = setup_port(
            name,
            id,
            &info,
            opts,
            pool_ptr,
            opts.host_tap.is_some() || opts.allmulticast,
        )?;
        let Parts { wire, host, pool } = parts;
        Ok(DpdkPort {
            shared: Arc::new(PortShared {
                wire,
                host,
                pool: pool.expect("created above"),
                summary,
                host_summary,
                host_iface: opts.host_tap.clone(),
                taken: Mutex::new(vec![false; opts.queues]),
                burst: opts.burst,
                ctl: Mutex::new(()),
            }),
        })
    }

    /// What the port turned out to be (driver, queues, descriptors, RSS).
    pub fn summary(&self) -> &PortSummary {
        &self.shared.summary
    }

    /// The host path's TAP port, when there is one.
    pub fn host_summary(&self) -> Option<&PortSummary> {
        self.shared.host_summary.as_ref()
    }

    /// The kernel name of the host path's TAP interface, when there is one.
    pub fn host_interface(&self) -> Option<&str> {
        self.shared.host_iface.as_deref()
    }

    /// Mbufs in the pool.
    pub fn pool_size(&self) -> u32 {
        self.shared.pool.size
    }

    /// Mbufs taken from the pool right now: in device rings, in queues'
    /// buffers, in flight. With the ports idle and every queue flushed, what
    /// the drivers keep in their RX rings (0 for virtual devices that
    /// allocate on receive, such as net_null).
    pub fn mbufs_in_use(&self) -> u32 {
        // SAFETY: the pool is alive as long as `shared`; the count is a
        // read-only walk over the pool's ring and caches.
        unsafe { ffi::lbfwd_pool_in_use(self.shared.pool.ptr) }
    }

    /// For benchmarks on `net_null,copy=0` (which hands out pool mbufs
    /// without touching their data): writes `frames` (all of one length,
    /// the `size=` of the net_null device) round robin into every mbuf of
    /// the pool, where a received frame starts, so that the pipeline gets
    /// real packets (e.g. many flows to a VIP) at no generation cost.
    /// Encapsulation writes only in front of the frame, so the templates
    /// survive reuse. Call it before any queue polls. Returns the mbufs
    /// written.
    pub fn fill_pool(&self, frames: &[&[u8]]) -> Result<u32, DpdkError> {
        let bad = |reason: String| DpdkError::PortOption {
            port: self.shared.summary.name.clone(),
            reason,
        };
        let len = frames.first().map_or(0, |f| f.len());
        if len == 0 || frames.iter().any(|f| f.len() != len) {
            return Err(bad(
                "fill_pool needs at least one frame, all of the same non-zero length".into(),
            ));
        }
        let len16 = u16::try_from(len).map_err(|_| bad(format!("frame of {len} bytes")))?;
        if lock(&self.shared.taken).iter().any(|&t| t) {
            return Err(bad("fill_pool while a queue is handed out".into()));
        }
        let flat: Vec<u8> = frames.concat();
        // SAFETY: no queue is handed out, so no mbuf of the pool is in a
        // worker's hands; `flat` holds `frames.len()` frames of `len` bytes
        // and outlives the call; the shim writes only inside each mbuf's
        // data room (it checks buf_len).
        let done = unsafe {
            ffi::lbfwd_pool_fill(
                self.shared.pool.ptr,
                flat.as_ptr(),
                len16,
                frames.len() as c_uint,
            )
        };
        Ok(done)
    }

    /// The link state of the wire port (without waiting).
    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        let _ctl = lock(&self.shared.ctl);
        link_of(&self.shared.wire)
    }

    /// Waits up to `timeout` for the wire port's link to come up; returns the
    /// last state seen (down when it timed out).
    pub fn wait_for_link(&self, timeout: Duration) -> Result<LinkStatus, DpdkError> {
        let start = Instant::now();
        loop {
            let link = self.link()?;
            if link.up || start.elapsed() >= timeout {
                return Ok(link);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The wire port's basic counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let _ctl = lock(&self.shared.ctl);
        port_stats(&self.shared.wire)
    }

    /// Extended statistics of the wire port and of the host path's TAP, for
    /// `lbctl stats`: `(PORT.NAME, value)` in the drivers' order, e.g.
    /// `("0000:01:00.0.rx_good_packets", 12)`.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, DpdkError> {
        let _ctl = lock(&self.shared.ctl);
        let mut all = Vec::new();
        for port in std::iter::once(&self.shared.wire).chain(self.shared.host.as_ref()) {
            for (name, value) in xstats_of(port)? {
                all.push((format!("{}.{name}", port.name), value));
            }
        }
        Ok(all)
    }

    /// Worker `index`'s queue pair (`0..queues`), once per index.
    pub fn queue(&self, index: usize) -> Result<DpdkQueue, DpdkError> {
        self.take(index)?;
        Ok(DpdkQueue::new(vec![self.side()], 0, index))
    }

    /// Worker `index`'s queue for a two-armed layout: it receives on this
    /// port and on `egress` (queue `index` of each), transmits the frames
    /// the pipeline sends on `egress`, and hands frames for the host to the
    /// TAP of the port they came in on (each port may have its own host
    /// path). Takes queue `index` of both ports.
    pub fn queue_two_armed(&self, index: usize, egress: &DpdkPort) -> Result<DpdkQueue, DpdkError> {
        if Arc::ptr_eq(&self.shared, &egress.shared) {
            return Err(DpdkError::Queue {
                port: self.shared.summary.name.clone(),
                index,
                reason: "ingress and egress are the same port (use queue() for one arm)",
            });
        }
        if !Arc::ptr_eq(&self.shared.pool, &egress.shared.pool) {
            return Err(DpdkError::Queue {
                port: self.shared.summary.name.clone(),
                index,
                reason: "the ports do not share an mbuf pool (open them together with \
                         DpdkPort::open_two_armed)",
            });
        }
        self.take(index)?;
        if let Err(e) = egress.take(index) {
            self.release(index);
            return Err(e);
        }
        Ok(DpdkQueue::new(vec![self.side(), egress.side()], 1, index))
    }

    pub(super) fn take(&self, index: usize) -> Result<(), DpdkError> {
        let mut taken = lock(&self.shared.taken);
        let slot = taken.get_mut(index).ok_or_else(|| DpdkError::Queue {
            port: self.shared.summary.name.clone(),
            index,
            reason: "no such queue (one per worker was configured)",
        })?;
        if *slot {
            return Err(DpdkError::Queue {
                port: self.shared.summary.name.clone(),
                index,
                reason: "already handed to a worker",
            });
        }
        *slot = true;
        Ok(())
    }

    pub(super) fn release(&self, index: usize) {
        if let Some(slot) = lock(&self.shared.taken).get_mut(index) {
            *slot = false;
        }
    }

    pub(super) fn side(&self) -> Side {
        let capacity = usize::from(self.shared.burst) * TX_BUFFER_BURSTS;
        let host = self.shared.host.as_ref().map(|h| h.id);
        Side {
            port: self.shared.wire.id,
            host,
            tx: TxBuffer::new(capacity),
            host_tx: TxBuffer::new(if host.is_some() { capacity } else { 0 }),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// `-rte_errno` of the calling thread.
///
/// # Safety
/// EAL must be initialised (rte_errno is a thread-local of librte_eal).
pub(super) unsafe fn errno_of_last_call() -> c_int {
    // SAFETY: reads a thread-local int.
    -unsafe { ffi::lbfwd_errno() }
}

pub(super) fn link_of(port: &OpenPort) -> Result<LinkStatus, DpdkError> {
    let mut link = ffi::Link::default();
    // SAFETY: `link` is a writable lbfwd_link alive for the call.
    let rc = unsafe { ffi::lbfwd_port_link(port.id, &mut link) };
    if rc < 0 {
        return Err(DpdkError::Port {
            port: port.name.clone(),
            what: "rte_eth_link_get_nowait",
            reason: strerror(rc),
        });
    }
    Ok(LinkStatus {
        up: link.up != 0,
        speed_mbps: link.speed_mbps,
        full_duplex: link.full_duplex != 0,
        autoneg: link.autoneg != 0,
    })
}

pub(super) fn port_stats(port: &OpenPort) -> Result<PortStats, DpdkError> {
    let mut st = ffi::PortStats::default();
    // SAFETY: `st` is a writable lbfwd_port_stats alive for the call.
    let rc = unsafe { ffi::lbfwd_port_stats(port.id, &mut st) };
    if rc < 0 {
        return Err(DpdkError::Port {
            port: port.name.clone(),
            what: "rte_eth_stats_get",
            reason: strerror(rc),
        });
    }
    Ok(PortStats {
        rx_packets: st.ipackets,
        tx_packets: st.opackets,
        rx_bytes: st.ibytes,
        tx_bytes: st.obytes,
        rx_missed: st.imissed,
        rx_errors: st.ierrors,
        tx_errors: st.oerrors,
        rx_nombuf: st.rx_nombuf,
    })
}

pub(super) fn xstats_of(port: &OpenPort) -> Result<Vec<(String, u64)>, DpdkError> {
    let fail = |rc| DpdkError::Port {
        port: port.name.clone(),
        what: "rte_eth_xstats_get",
        reason: strerror(rc),
    };
    // SAFETY: a query without buffers.
    let mut n = unsafe { ffi::lbfwd_port_xstats_count(port.id) };
    // The count may grow between the two calls (a driver adding queues'
    // counters): retry a few times with the new size.
    for _ in 0..4 {
        if n < 0 {
            return Err(fail(n));
        }
        let cap = n as usize;
        let mut names = vec![[0 as c_char; ffi::XSTAT_NAME_LEN]; cap];
        let mut values = vec![0u64; cap];
        // SAFETY: `names` and `values` have room for `cap` entries each, the
        // count passed.
        let got = unsafe {
            ffi::lbfwd_port_xstats(
                port.id,
                names.as_mut_ptr(),
                values.as_mut_ptr(),
                cap as c_uint,
            )
        };
        if got < 0 {
            return Err(fail(got));
        }
        if got as usize <= cap {
            return Ok(names
                .iter()
                .zip(values)
                .take(got as usize)
                .map(|(name, value)| (c_chars_to_string(name), value))
                .collect());
        }
        n = got;
    }
    Err(fail(-libc::EAGAIN))
}
