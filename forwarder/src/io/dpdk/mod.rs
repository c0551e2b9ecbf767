//! DPDK backend (feature `dpdk`): poll-mode drivers of DPDK 22.11 through a
//! small binding of our own.
//!
//! # Binding
//!
//! `build.rs` finds DPDK with `pkg-config libdpdk` and compiles
//! `csrc/dpdk_shim.c`, which turns DPDK's static inline functions
//! (`rte_eth_rx_burst`, `rte_eth_tx_burst`, `rte_pktmbuf_alloc`/`free`,
//! `rte_errno`, `rte_lcore_id`, ...) into real symbols and wraps the
//! slow-path calls whose argument structs are large (`rte_eth_conf`,
//! `rte_eth_dev_info`, ...) behind plain structs of its own. The Rust side
//! declares only those shim functions, and touches DPDK memory directly in
//! one place: the handful of `rte_mbuf` fields the packet path reads and
//! writes (private module `mbuf`), whose offsets the shim pins with
//! `_Static_assert`, so a DPDK with another layout fails the build instead
//! of corrupting packets.
//!
//! # Life cycle
//!
//! 1. [`init_eal`] once per process, from [`DpdkOptions`] (`[dataplane.dpdk]`).
//!    EAL cannot be initialised twice: a second call with the same arguments
//!    is a no-op, with different ones an error.
//! 2. [`DpdkPort::open`] (or [`DpdkPort::open_vdev`], which also attaches a
//!    virtual device) configures one RX and one TX queue per worker, RSS over
//!    the 5-tuple where the driver supports it, an mbuf pool sized from the
//!    queues and the burst, and optionally the host path (below), then starts
//!    the port. [`DpdkPort::init`] does 1 and 2 for the runtime.
//! 3. [`DpdkPort::queue`] hands out worker `i`'s [`DpdkQueue`] (a
//!    [`WorkerQueue`](crate::io::WorkerQueue), `Send`), once per index.
//! 4. Dropping the port (after its queues: they hold a reference) stops and
//!    closes its ports, removes the devices it attached and frees the pool.
//!    A port closes for good: EAL cannot reopen it in the same process
//!    (a virtual device can be attached again under another name).
//!
//! Two-armed: [`DpdkPort::open_two_armed`] opens an ingress and an egress
//! port on one mbuf pool, and [`DpdkPort::queue_two_armed`] gives worker `i`
//! one queue that receives on both (queue `i` of each), transmits what the
//! pipeline sends on the egress port, and hands host frames to the TAP of
//! the port they came in on.
//!
//! # The packet path
//!
//! The mbuf's data room is the [`Frame`]'s buffer: the frame starts at the
//! mbuf's `data_off` (DPDK's `RTE_PKTMBUF_HEADROOM`, 128 bytes, at least
//! [`crate::frame::HEADROOM`]), so encapsulation prepends in place; after the
//! pipeline the frame's new head and length are written back into the
//! mbuf's `data_off`, `data_len` and `pkt_len`. Every mbuf is transmitted or
//! freed: what a TX burst leaves behind is freed at once and counted in
//! [`QueueStats::tx_dropped`]. Multi-segment mbufs (never produced without
//! the scatter offload, which lbfwd does not enable) are freed and counted
//! in [`QueueStats::rx_errors`].
//!
//! Worker threads are lbfwd's own pinned threads, as with every backend. The
//! first [`WorkerQueue::poll`](crate::io::WorkerQueue::poll) registers the calling thread with EAL
//! (`rte_thread_register`) so that it gets an lcore id and with it a
//! per-lcore mempool cache; EAL's own main lcore stays on the CPUs the
//! initialising thread was allowed to run on, so EAL never pins lbfwd's
//! control thread onto a worker core.
//!
//! # Host path
//!
//! With [`PortOptions::host_tap`] set, the port gets a companion `net_tap`
//! device: a kernel TAP interface of that name with the port's MAC address
//! and one queue pair per worker. Frames the pipeline hands to the host
//! ([`Disposition::Host`]: ARP/NDP for the appliance's own address, its SSH
//! or BGP sessions) are transmitted on the TAP, so the kernel receives them
//! as if they came in on the wire; frames the kernel sends out of the TAP
//! (its ARP replies, its own sessions) are received by the worker (every
//! [`HOST_POLL_EVERY`] polls, so the TAP's system calls stay off the per-packet
//! path) and transmitted on the wire port unchanged. The operator gives the
//! appliance's own addresses to the TAP interface, not to the NIC (which the
//! kernel no longer sees). The wire port receives all multicast in that mode
//! so that IPv6 neighbour discovery reaches the kernel. Without a host path,
//! `Host` frames are freed (counted in [`QueueStats::freed`]).
//!
//! # Files
//!
//! | file | holds | unsafe |
//! | --- | --- | --- |
//! | `mod.rs` | these docs, [`DpdkError`], [`DpdkOptions`], [`eal_args`] | no |
//! | `ffi.rs` | declarations of `csrc/dpdk_shim.c` and its structs | no (declarations) |
//! | `mbuf.rs` | the `rte_mbuf` fields the packet path reads and writes | yes |
//! | `eal.rs` | [`init_eal`], its runtime directory, vdevs, thread registration | yes |
//! | `port.rs` | [`DpdkPort`]: pools, queues, host-path TAP, link and counters | yes |
//! | `queue.rs` | [`DpdkQueue`]: the burst receive loop, transmit buffers, host path | yes |
//! | `testing.rs` | layout checks for the integration tests | yes |
//! | `tests.rs` | unit tests that need no EAL | no |

use std::ffi::CString;
use std::path::PathBuf;

use super::IoError;
use eal::cpu_list;

/// Largest burst one [`WorkerQueue::poll`](crate::io::WorkerQueue::poll) receives (larger requests are
/// cut); the range of `[dataplane] burst`.
pub const MAX_BURST: usize = 1024;
/// A queue's TX buffers (wire and host path) hold this many bursts
/// ([`PortOptions::burst`]) before the queue kicks the device itself.
pub const TX_BUFFER_BURSTS: usize = 2;
/// A worker receives from the host path's TAP once every this many polls.
pub const HOST_POLL_EVERY: u32 = 32;
/// Default RX and TX descriptors per queue (the driver may adjust them).
pub const DEFAULT_DESC: u16 = 1024;
/// Default burst size used to size the mbuf pool.
pub const DEFAULT_BURST: u16 = 32;
/// Default EAL memory in MiB with `no_huge` (EAL's own default is 64).
pub const DEFAULT_NO_HUGE_MEMORY_MB: u32 = 512;
/// Per-lcore mempool cache size (DPDK's examples use 256; at most 512).
const POOL_CACHE: u32 = 256;
/// Smallest mbuf pool lbfwd creates.
const MIN_POOL: u32 = 8191;
/// Largest MTU without scattered RX: a received frame (MTU plus Ethernet
/// header and a VLAN tag) must fit the 2048 bytes of an mbuf's data room
/// behind its headroom (encapsulation goes into the headroom).
pub const MAX_MTU: u16 = 2048 - 18;

/// What EAL initialisation failures usually come down to.
const EAL_HINT: &str = "check that hugepages are reserved and mounted (grep Huge \
    /proc/meminfo; or set no_huge = true, for tests only), that lbfwd runs as root (or \
    with CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_IPC_LOCK and access to /dev/vfio), and that \
    every address in pci_allow is a port bound to vfio-pci (dpdk-devbind.py --status)";

/// What a port that EAL cannot find usually comes down to.
const PORT_HINT: &str = "a NIC must be bound to vfio-pci (dpdk-devbind.py --bind=vfio-pci \
    ADDRESS) and listed in pci_allow as DDDD:BB:DD.F; a virtual device must be listed in \
    vdevs, and the port is named like the device (e.g. net_null0)";

/// Errors of the DPDK backend. Each says what failed and where, and what to
/// check.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// A `[dataplane.dpdk]` option is invalid.
    #[error("[dataplane.dpdk] {field}: {reason}")]
    Option {
        /// The option.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `rte_eal_init` failed.
    #[error(
        "DPDK EAL initialisation failed: {reason}; EAL arguments: {args}{log}\nhint: {EAL_HINT}"
    )]
    EalInit {
        /// `rte_errno` in words.
        reason: String,
        /// The arguments EAL was given.
        args: String,
        /// The tail of EAL's log (starting with a newline), or nothing.
        log: String,
    },
    /// EAL initialisation failed earlier in this process; EAL cannot retry.
    #[error("DPDK EAL initialisation failed earlier in this process ({0}); restart lbfwd")]
    EalFailedEarlier(String),
    /// EAL runs already, with other arguments.
    #[error(
        "DPDK EAL is already initialised in this process with arguments {current}; it cannot \
         be initialised again with {requested} (EAL initialises once per process: restart \
         lbfwd to change [dataplane.dpdk])"
    )]
    EalReinit {
        /// The arguments EAL runs with.
        current: String,
        /// The arguments asked for now.
        requested: String,
    },
    /// A port or device call needs EAL.
    #[error("DPDK EAL is not initialised (init_eal must run before ports are opened)")]
    EalNotInitialised,
    /// No port of that name.
    #[error("DPDK port {name:?} does not exist (ports EAL knows: {known}); hint: {PORT_HINT}")]
    PortNotFound {
        /// The port asked for.
        name: String,
        /// The ports EAL has.
        known: String,
    },
    /// A port cannot serve the configured workers.
    #[error(
        "DPDK port {port:?} (driver {driver}) has at most {max} RX/TX queues, but {wanted} \
         workers need one each"
    )]
    TooManyQueues {
        /// The port.
        port: String,
        /// Its driver.
        driver: String,
        /// The queues it supports.
        max: u16,
        /// The workers configured.
        wanted: usize,
    },
    /// A port option is out of range.
    #[error("DPDK port {port:?}: {reason}")]
    PortOption {
        /// The port.
        port: String,
        /// What is wrong.
        reason: String,
    },
    /// A DPDK call on a port failed.
    #[error("DPDK port {port:?}: {what} failed: {reason}")]
    Port {
        /// The port.
        port: String,
        /// The operation.
        what: &'static str,
        /// The error in words.
        reason: String,
    },
    /// The mbuf pool could not be created.
    #[error(
        "cannot create the mbuf pool of {mbufs} mbufs for DPDK port {port:?}: {reason}; hint: \
         raise memory_mb (or reserve more hugepages), or use fewer workers or descriptors"
    )]
    Pool {
        /// The port.
        port: String,
        /// The pool size.
        mbufs: u32,
        /// The error in words.
        reason: String,
    },
    /// A device could not be attached.
    #[error("cannot attach DPDK device {devargs:?}: {reason}")]
    Attach {
        /// The device arguments.
        devargs: String,
        /// The error in words.
        reason: String,
    },
    /// A worker queue was asked for twice or does not exist.
    #[error("DPDK port {port:?}: queue {index}: {reason}")]
    Queue {
        /// The port.
        port: String,
        /// The queue index.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The thread could not get an lcore id.
    #[error(
        "cannot register this thread with DPDK EAL: {0} (EAL has at most 128 lcores, \
         RTE_MAX_LCORE)"
    )]
    ThreadRegister(String),
}

impl From<DpdkError> for IoError {
    fn from(e: DpdkError) -> Self {
        IoError::Backend(Box::new(e))
    }
}

fn cstring(field: &'static str, s: &str) -> Result<CString, DpdkError> {
    CString::new(s).map_err(|_| DpdkError::Option {
        field,
        reason: format!("{s:?} contains a NUL byte"),
    })
}

// ---- EAL --------------------------------------------------------------------

/// The `[dataplane.dpdk]` settings EAL is initialised from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DpdkOptions {
    /// Run without hugepages (`--no-huge`): for tests and virtual devices
    /// only; NICs need hugepages (DMA to physically contiguous memory).
    pub no_huge: bool,
    /// The hugetlbfs mount to use (`--huge-dir`); EAL's choice when unset.
    pub huge_dir: Option<PathBuf>,
    /// Memory EAL reserves at start, in MiB (`-m`); with `no_huge` the
    /// default is [`DEFAULT_NO_HUGE_MEMORY_MB`], otherwise EAL grows its
    /// memory on demand.
    pub memory_mb: Option<u32>,
    /// PCI addresses of the NICs EAL may use (`-a`, one each; DDDD:BB:DD.F,
    /// optionally followed by `,key=value` driver arguments). Empty: no PCI
    /// device at all (`--no-pci`).
    pub pci_allow: Vec<String>,
    /// Virtual devices (`--vdev`, one each), e.g. `net_af_packet0,iface=eth1`.
    pub vdevs: Vec<String>,
    /// Further EAL arguments, passed as they are (e.g. `--log-level=pmd,8`).
    pub extra_eal_args: Vec<String>,
}

impl From<&lbfwd_config::settings::DpdkSection> for DpdkOptions {
    fn from(s: &lbfwd_config::settings::DpdkSection) -> Self {
        DpdkOptions {
            no_huge: s.no_huge,
            huge_dir: s.huge_dir.clone(),
            memory_mb: s.memory_mb,
            pci_allow: s.pci_allow.clone(),
            vdevs: s.vdevs.clone(),
            extra_eal_args: s.extra_eal_args.clone(),
        }
    }
}

/// Arguments lbfwd sets itself and refuses in `extra_eal_args`.
const RESERVED_EAL_ARGS: &[&str] = &[
    "-l",
    "-c",
    "--lcores",
    "--file-prefix",
    "--in-memory",
    "--no-shconf",
    "--no-huge",
    "--huge-dir",
    "-m",
    "-a",
    "--allow",
    "--no-pci",
    "--vdev",
];

/// The EAL arguments for `opts` (`argv[0]` included), as [`init_eal`] passes
/// them: the main lcore on the CPUs the calling thread may run on (workers
/// register themselves, see the module docs), `--file-prefix lbfwd-PID` and
/// `--in-memory` (`--no-shconf` with `no_huge`): no files shared with other
/// processes, so test runs and several instances never collide; memory,
/// PCI allow list or `--no-pci`, virtual devices, then the extra arguments.
pub fn eal_args(opts: &DpdkOptions) -> Result<Vec<String>, DpdkError> {
    let mut args = vec!["lbfwd".to_string()];
    args.push(format!("--lcores=0@({})", cpu_list()?));
    args.push(format!("--file-prefix=lbfwd-{}", std::process::id()));
    // No files shared with other processes: --in-memory, which EAL refuses
    // together with --no-huge (that implies legacy memory); there
    // --no-shconf does the same.
    args.push(
        if opts.no_huge {
            "--no-shconf"
        } else {
            "--in-memory"
        }
        .to_string(),
    );
    if opts.no_huge {
        if let Some(dir) = &opts.huge_dir {
            return Err(DpdkError::Option {
                field: "huge_dir",
                reason: format!(
                    "{} is set together with no_huge = true; choose one",
                    dir.display()
                ),
            });
        }
        args.push("--no-huge".to_string());
        args.push("-m".to_string());
        args.push(
            opts.memory_mb
                .unwrap_or(DEFAULT_NO_HUGE_MEMORY_MB)
                .to_string(),
        );
    } else {
        if let Some(dir) = &opts.huge_dir {
            if !dir.is_absolute() || !dir.is_dir() {
                return Err(DpdkError::Option {
                    field: "huge_dir",
                    reason: format!(
                        "{} is not an existing absolute directory (a hugetlbfs mount)",
                        dir.display()
                    ),
                });
            }
            args.push(format!("--huge-dir={}", dir.display()));
        }
        if let Some(mb) = opts.memory_mb {
            args.push("-m".to_string());
            args.push(mb.to_string());
        }
    }
    if let Some(mb) = opts.memory_mb {
        if mb == 0 || mb > 1 << 20 {
            return Err(DpdkError::Option {
                field: "memory_mb",
                reason: format!("{mb} is out of range (1 to 1048576 MiB)"),
            });
        }
    }
    if opts.pci_allow.is_empty() {
        args.push("--no-pci".to_string());
    }
    for addr in &opts.pci_allow {
        if !is_pci_address(addr.split(',').next().unwrap_or("")) {
            return Err(DpdkError::Option {
                field: "pci_allow",
                reason: format!(
                    "{addr:?} is not a PCI address DDDD:BB:DD.F (optionally followed by \
                     ,key=value driver arguments); see dpdk-devbind.py --status"
                ),
            });
        }
        args.push("-a".to_string());
        args.push(addr.clone());
    }
    for vdev in &opts.vdevs {
        let name = vdev.split(',').next().unwrap_or("");
        if name.is_empty() || vdev.contains(char::is_whitespace) {
            return Err(DpdkError::Option {
                field: "vdevs",
                reason: format!(
                    "{vdev:?} is not a virtual device (NAME[,key=value...], no spaces, e.g. \
                     net_af_packet0,iface=eth1)"
                ),
            });
        }
        args.push(format!("--vdev={vdev}"));
    }
    for arg in &opts.extra_eal_args {
        let key = arg.split('=').next().unwrap_or("");
        if RESERVED_EAL_ARGS.contains(&key) {
            return Err(DpdkError::Option {
                field: "extra_eal_args",
                reason: format!(
                    "{arg:?} is set by lbfwd itself (from workers, no_huge, huge_dir, \
                     memory_mb, pci_allow and vdevs); remove it"
                ),
            });
        }
        args.push(arg.clone());
    }
    for arg in &args {
        cstring("extra_eal_args", arg)?;
    }
    Ok(args)
}

fn is_pci_address(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let parts: Vec<&str> = s.split(':').collect();
    let (bus, devfn) = match parts.as_slice() {
        [domain, bus, devfn] if hex(domain, 4) => (*bus, *devfn),
        [bus, devfn] => (*bus, *devfn),
        _ => return false,
    };
    match devfn.split_once('.') {
        Some((dev, func)) => {
            hex(bus, 2)
                && hex(dev, 2)
                && func.len() == 1
                && matches!(func.as_bytes()[0], b'0'..=b'7')
        }
        None => false,
    }
}

mod eal;
mod ffi;
mod mbuf;
mod port;
mod queue;
#[doc(hidden)]
pub mod testing;

pub use eal::{attach_vdev, detach_vdev, init_eal, port_names, register_current_thread};
pub use port::{port_mac, DpdkPort, LinkStatus, PortOptions, PortSpec, PortStats, PortSummary};
pub use queue::DpdkQueue;

#[cfg(test)]
mod tests;
