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
//!    [`WorkerQueue`], `Send`), once per index.
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
//! first [`WorkerQueue::poll`] registers the calling thread with EAL
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
#![allow(unsafe_code)]

use crate::worker::Processor;
use std::ffi::{c_char, c_int, c_uint, CStr, CString, OsStr};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::{Disposition, IoError, QueueStats, WorkerQueue};
use crate::frame::{Frame, HEADROOM};

/// Largest burst one [`WorkerQueue::poll`] receives (larger requests are
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

/// The FFI surface: the shim's functions and the structs it defines. Nothing
/// here mirrors a DPDK struct.
mod ffi {
    use std::ffi::{c_char, c_int, c_uint};

    /// `struct rte_mbuf`, opaque (see [`super::mbuf`] for the fields used).
    #[repr(C)]
    pub struct RteMbuf {
        _opaque: [u8; 0],
    }

    /// `struct rte_mempool`, opaque.
    #[repr(C)]
    pub struct RteMempool {
        _opaque: [u8; 0],
    }

    pub const XSTAT_NAME_LEN: usize = 64;
    pub const PORT_NAME_LEN: usize = 64;

    /// `struct lbfwd_port_info` (dpdk_shim.h).
    #[repr(C)]
    pub struct PortInfo {
        pub driver: [c_char; 64],
        pub flow_type_rss_offloads: u64,
        pub max_rx_pktlen: u32,
        pub if_index: u32,
        pub socket_id: i32,
        pub max_rx_queues: u16,
        pub max_tx_queues: u16,
        pub reta_size: u16,
        pub mac: [u8; 6],
    }

    /// `struct lbfwd_port_conf` (dpdk_shim.h).
    #[repr(C)]
    pub struct PortConf {
        pub pool: *mut RteMempool,
        pub rss_hf: u64,
        pub nb_queues: u16,
        pub nb_rxd: u16,
        pub nb_txd: u16,
        pub promiscuous: u8,
        pub allmulticast: u8,
        pub mtu: u16,
    }

    /// `struct lbfwd_link` (dpdk_shim.h).
    #[repr(C)]
    #[derive(Default)]
    pub struct Link {
        pub speed_mbps: u32,
        pub up: u8,
        pub full_duplex: u8,
        pub autoneg: u8,
    }

    /// `struct lbfwd_port_stats` (dpdk_shim.h).
    #[repr(C)]
    #[derive(Default)]
    pub struct PortStats {
        pub ipackets: u64,
        pub opackets: u64,
        pub ibytes: u64,
        pub obytes: u64,
        pub imissed: u64,
        pub ierrors: u64,
        pub oerrors: u64,
        pub rx_nombuf: u64,
    }

    extern "C" {
        pub fn lbfwd_eal_init(
            argc: c_int,
            argv: *mut *mut c_char,
            log: *mut c_char,
            log_len: usize,
        ) -> c_int;
        pub fn lbfwd_errno() -> c_int;
        pub fn lbfwd_runtime_dir() -> *const c_char;
        pub fn lbfwd_strerror(err: c_int) -> *const c_char;
        pub fn lbfwd_lcore_id() -> c_uint;
        pub fn lbfwd_thread_register() -> c_int;
        pub fn lbfwd_thread_unregister();
        pub fn lbfwd_dev_probe(devargs: *const c_char) -> c_int;
        pub fn lbfwd_vdev_remove(name: *const c_char) -> c_int;
        pub fn lbfwd_pktmbuf_headroom() -> u32;

        pub fn lbfwd_port_by_name(name: *const c_char, port: *mut u16) -> c_int;
        pub fn lbfwd_port_nth_name(n: c_uint, buf: *mut c_char, len: usize) -> c_int;
        pub fn lbfwd_rss_wanted(ip: *mut u64, l4: *mut u64);
        pub fn lbfwd_port_info(port: u16, out: *mut PortInfo) -> c_int;
        pub fn lbfwd_port_setup(port: u16, conf: *mut PortConf) -> c_int;
        pub fn lbfwd_port_shutdown(port: u16);
        pub fn lbfwd_port_link(port: u16, out: *mut Link) -> c_int;
        pub fn lbfwd_port_stats(port: u16, out: *mut PortStats) -> c_int;
        pub fn lbfwd_port_xstats_count(port: u16) -> c_int;
        pub fn lbfwd_port_xstats(
            port: u16,
            names: *mut [c_char; XSTAT_NAME_LEN],
            values: *mut u64,
            n: c_uint,
        ) -> c_int;

        pub fn lbfwd_pool_create(
            name: *const c_char,
            n: c_uint,
            cache: c_uint,
            socket: c_int,
        ) -> *mut RteMempool;
        pub fn lbfwd_pool_free(pool: *mut RteMempool);
        pub fn lbfwd_pool_in_use(pool: *const RteMempool) -> c_uint;
        pub fn lbfwd_pool_fill(
            pool: *mut RteMempool,
            frames: *const u8,
            frame_len: u16,
            nframes: c_uint,
        ) -> c_uint;

        pub fn lbfwd_rx_burst(port: u16, queue: u16, pkts: *mut *mut RteMbuf, n: u16) -> u16;
        pub fn lbfwd_tx_burst(port: u16, queue: u16, pkts: *mut *mut RteMbuf, n: u16) -> u16;
        pub fn lbfwd_mbuf_alloc(pool: *mut RteMempool) -> *mut RteMbuf;
        pub fn lbfwd_mbuf_free_bulk(pkts: *mut *mut RteMbuf, n: c_uint);
        pub fn lbfwd_mbuf_data(m: *mut RteMbuf) -> *mut c_char;
        pub fn lbfwd_mbuf_headroom(m: *const RteMbuf) -> u16;
        pub fn lbfwd_mbuf_data_len(m: *const RteMbuf) -> u16;

        pub fn lbfwd_shim_layout(out: *mut usize);
    }
}

use ffi::RteMbuf;

/// Direct access to the `rte_mbuf` fields of the packet path. The offsets
/// are those of DPDK 22.11 and are asserted by `dpdk_shim.c` at compile time
/// (`LBFWD_MBUF_OFF_*`), so they cannot drift from the headers we build with.
mod mbuf {
    use super::RteMbuf;

    const BUF_ADDR: usize = 0;
    const DATA_OFF: usize = 16;
    const REFCNT: usize = 18;
    const NB_SEGS: usize = 20;
    const PKT_LEN: usize = 36;
    const DATA_LEN: usize = 40;
    const BUF_LEN: usize = 54;

    /// The fields of a received mbuf the packet path needs.
    #[derive(Clone, Copy, Debug)]
    pub struct View {
        pub buf: *mut u8,
        pub buf_len: usize,
        pub data_off: usize,
        pub data_len: usize,
        pub nb_segs: u16,
        pub refcnt: u16,
    }

    /// Reads the fields of `m`.
    ///
    /// # Safety
    /// `m` must point at a live mbuf that the caller owns.
    #[inline(always)]
    pub unsafe fn view(m: *mut RteMbuf) -> View {
        let base = m.cast::<u8>();
        // SAFETY: the caller guarantees a live mbuf; the offsets are
        // asserted against DPDK's headers by the shim and naturally aligned
        // (mbufs are cache-line aligned).
        unsafe {
            View {
                buf: base.add(BUF_ADDR).cast::<*mut u8>().read(),
                buf_len: base.add(BUF_LEN).cast::<u16>().read() as usize,
                data_off: base.add(DATA_OFF).cast::<u16>().read() as usize,
                data_len: base.add(DATA_LEN).cast::<u16>().read() as usize,
                nb_segs: base.add(NB_SEGS).cast::<u16>().read(),
                refcnt: base.add(REFCNT).cast::<u16>().read(),
            }
        }
    }

    impl View {
        /// A direct, unshared, single-segment mbuf whose data lies inside
        /// its buffer: one the pipeline may rewrite in place.
        #[inline(always)]
        pub fn is_plain(&self) -> bool {
            (self.nb_segs ^ 1) | (self.refcnt ^ 1) == 0
                && self.data_off + self.data_len <= self.buf_len
        }
    }

    /// Sets a single-segment mbuf's frame to `data_off..data_off + len`.
    ///
    /// # Safety
    /// `m` must point at a live single-segment mbuf that the caller owns, and
    /// `data_off + len` must not exceed its `buf_len` (which also makes both
    /// fit in 16 bits).
    #[inline(always)]
    pub unsafe fn set_frame(m: *mut RteMbuf, data_off: usize, len: usize) {
        let base = m.cast::<u8>();
        // SAFETY: as for `view`; the caller keeps the values in range.
        unsafe {
            base.add(DATA_OFF).cast::<u16>().write(data_off as u16);
            base.add(DATA_LEN).cast::<u16>().write(len as u16);
            base.add(PKT_LEN).cast::<u32>().write(len as u32);
        }
    }
}

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
        IoError::Setup(e.to_string())
    }
}

/// `-rc` (a negative errno value) in words, with its number.
fn strerror(rc: c_int) -> String {
    let err = rc.saturating_abs();
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string, valid until the next call on this thread; we
    // copy it at once.
    let msg = unsafe { CStr::from_ptr(ffi::lbfwd_strerror(err)) };
    format!("{} (errno {err})", msg.to_string_lossy())
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

/// The CPUs the calling thread may run on, as `a,b,c`.
fn cpu_list() -> Result<String, DpdkError> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity(0, ...) writes at most `size_of` bytes into
    // the set we own.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(DpdkError::Option {
            field: "lcores",
            reason: format!(
                "cannot read this thread's CPU affinity: {}",
                std::io::Error::last_os_error()
            ),
        });
    }
    let cpus: Vec<String> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads bit `cpu` (< CPU_SETSIZE) of the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .map(|cpu| cpu.to_string())
        .collect();
    Ok(cpus.join(","))
}

/// What [`init_eal`] did, remembered for the process.
struct EalState {
    /// The arguments, `--lcores` left out (the calling thread's affinity may
    /// differ between calls).
    key: Vec<String>,
    args: Vec<String>,
    failed: Option<String>,
}

static EAL: Mutex<Option<EalState>> = Mutex::new(None);

/// Serialises device attach and removal (EAL's hotplug is not meant to run
/// from several threads at once).
static HOTPLUG: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn eal_ready() -> Result<(), DpdkError> {
    match &*lock(&EAL) {
        Some(state) if state.failed.is_none() => Ok(()),
        Some(state) => Err(DpdkError::EalFailedEarlier(
            state.failed.clone().unwrap_or_default(),
        )),
        None => Err(DpdkError::EalNotInitialised),
    }
}

/// Initialises DPDK's EAL from `opts`, once per process. A later call with
/// the same options is a no-op; with other options it is an error (EAL
/// cannot be re-initialised), and after a failure every call fails.
pub fn init_eal(opts: &DpdkOptions) -> Result<(), DpdkError> {
    let args = eal_args(opts)?;
    let key: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with("--lcores="))
        .cloned()
        .collect();
    let mut eal = lock(&EAL);
    if let Some(state) = &*eal {
        if let Some(failed) = &state.failed {
            return Err(DpdkError::EalFailedEarlier(failed.clone()));
        }
        if state.key != key {
            return Err(DpdkError::EalReinit {
                current: state.args[1..].join(" "),
                requested: args[1..].join(" "),
            });
        }
        return Ok(());
    }
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| cstring("extra_eal_args", a))
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*mut c_char> = cargs.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    argv.push(ptr::null_mut());
    let mut log = vec![0u8; 2048];
    // SAFETY: argv holds `args.len()` pointers to NUL-terminated strings
    // that live (in `cargs`) until after the call, then a NULL; EAL may
    // permute the pointer array (getopt) but does not write the strings.
    // `log` is a writable buffer of the length passed.
    let rc = unsafe {
        ffi::lbfwd_eal_init(
            args.len() as c_int,
            argv.as_mut_ptr(),
            log.as_mut_ptr().cast(),
            log.len(),
        )
    };
    // Made early in rte_eal_init: also after a failure.
    remove_runtime_dir_at_exit();
    if rc < 0 {
        let log = CStr::from_bytes_until_nul(&log)
            .map(|s| s.to_string_lossy().trim().to_string())
            .unwrap_or_default();
        let reason = strerror(rc);
        *eal = Some(EalState {
            key,
            args: args.clone(),
            failed: Some(reason.clone()),
        });
        return Err(DpdkError::EalInit {
            reason,
            args: args[1..].join(" "),
            log: if log.is_empty() {
                String::new()
            } else {
                format!("\nEAL said:\n{log}")
            },
        });
    }
    *eal = Some(EalState {
        key,
        args,
        failed: None,
    });
    Ok(())
}

/// EAL's runtime directory of this process, once [`init_eal`] made it.
static RUNTIME_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Has EAL's runtime directory of this process (`/var/run/dpdk/lbfwd-PID`
/// for root) removed when the process exits. EAL makes it in
/// `rte_eal_init` and never removes it; with lbfwd's per-process
/// `--file-prefix` no other process can use it, and an appliance that
/// restarts lbfwd would otherwise keep one directory per run. A directory
/// not named after this process (an operator's own `--file-prefix` cannot
/// get there: it is reserved) is left alone.
fn remove_runtime_dir_at_exit() {
    // SAFETY: rte_eal_get_runtime_dir returns EAL's static, NUL-terminated
    // buffer (empty before EAL wrote the directory's name); read at once.
    let dir = unsafe { CStr::from_ptr(ffi::lbfwd_runtime_dir()) };
    let dir = PathBuf::from(OsStr::from_bytes(dir.to_bytes()));
    let ours = format!("lbfwd-{}", std::process::id());
    if dir.file_name() != Some(OsStr::new(&ours)) {
        return;
    }
    if RUNTIME_DIR.set(dir).is_ok() {
        // SAFETY: registers a function of no arguments that reads only
        // RUNTIME_DIR (set above) and removes files; it never unwinds.
        unsafe { libc::atexit(remove_runtime_dir) };
    }
}

/// The `atexit` handler of [`remove_runtime_dir_at_exit`].
extern "C" fn remove_runtime_dir() {
    if let Some(dir) = RUNTIME_DIR.get() {
        // Nothing to report to at exit; a directory left is harmless.
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Attaches a (virtual) device after EAL start, e.g.
/// `net_af_packet1,iface=veth0` or `net_null3` (`rte_dev_probe`). Returns the
/// device name (the part before the first comma), which is also its port's
/// name. The device lives until [`detach_vdev`] or the end of the process.
pub fn attach_vdev(devargs: &str) -> Result<String, DpdkError> {
    eal_ready()?;
    let name = devargs.split(',').next().unwrap_or("").to_string();
    if name.is_empty() || devargs.contains(char::is_whitespace) {
        return Err(DpdkError::Attach {
            devargs: devargs.to_string(),
            reason: "not NAME[,key=value...] without spaces".to_string(),
        });
    }
    let c = cstring("vdevs", devargs)?;
    let _hotplug = lock(&HOTPLUG);
    // SAFETY: `c` is a NUL-terminated string alive for the call; hotplug
    // calls are serialised by HOTPLUG.
    let rc = unsafe { ffi::lbfwd_dev_probe(c.as_ptr()) };
    if rc < 0 {
        return Err(DpdkError::Attach {
            devargs: devargs.to_string(),
            reason: strerror(rc),
        });
    }
    Ok(name)
}

/// Removes a virtual device attached by [`attach_vdev`] (its port must be
/// closed).
pub fn detach_vdev(name: &str) -> Result<(), DpdkError> {
    eal_ready()?;
    let c = cstring("vdevs", name)?;
    let _hotplug = lock(&HOTPLUG);
    // SAFETY: `c` is a NUL-terminated string alive for the call; hotplug
    // calls are serialised by HOTPLUG.
    let rc = unsafe { ffi::lbfwd_vdev_remove(c.as_ptr()) };
    if rc < 0 {
        return Err(DpdkError::Attach {
            devargs: name.to_string(),
            reason: format!("removing it failed: {}", strerror(rc)),
        });
    }
    Ok(())
}

/// The names of the ports EAL knows.
pub fn port_names() -> Result<Vec<String>, DpdkError> {
    eal_ready()?;
    let mut names = Vec::new();
    for n in 0.. {
        let mut buf = [0 as c_char; ffi::PORT_NAME_LEN];
        // SAFETY: `buf` is writable for PORT_NAME_LEN (RTE_ETH_NAME_MAX_LEN)
        // bytes, the length passed; the shim NUL-terminates it.
        let rc = unsafe { ffi::lbfwd_port_nth_name(n, buf.as_mut_ptr(), buf.len()) };
        if rc < 0 {
            break;
        }
        names.push(c_chars_to_string(&buf));
    }
    Ok(names)
}

fn c_chars_to_string(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

thread_local! {
    /// Set once this thread registered with EAL; unregisters at thread exit
    /// so that the lcore id can be reused.
    static REGISTERED: std::cell::RefCell<Option<ThreadRegistration>> =
        const { std::cell::RefCell::new(None) };
}

struct ThreadRegistration;

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // SAFETY: this thread registered itself (REGISTERED is per thread)
        // and unregisters once, at thread exit.
        unsafe { ffi::lbfwd_thread_unregister() };
    }
}

/// Registers the calling thread with EAL (`rte_thread_register`) unless it
/// is an EAL thread already, and returns its lcore id. Worker threads get a
/// per-lcore mempool cache that way; [`DpdkQueue`] calls this on its first
/// poll. The registration ends when the thread exits.
pub fn register_current_thread() -> Result<u32, DpdkError> {
    eal_ready()?;
    // SAFETY: rte_lcore_id reads a thread-local variable.
    let id = unsafe { ffi::lbfwd_lcore_id() };
    if id != u32::MAX {
        return Ok(id);
    }
    // SAFETY: EAL is initialised (checked above); the call affects only the
    // calling thread.
    let rc = unsafe { ffi::lbfwd_thread_register() };
    if rc < 0 {
        return Err(DpdkError::ThreadRegister(strerror(rc)));
    }
    REGISTERED.with(|r| *r.borrow_mut() = Some(ThreadRegistration));
    Ok(rc as u32)
}

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
    /// Receive every multicast frame (layer-2 announcement: IPv6
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
struct Pool {
    ptr: *mut ffi::RteMempool,
    size: u32,
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
struct OpenPort {
    id: u16,
    name: String,
    /// lbfwd attached the device (and removes it on drop).
    attached: bool,
    /// lbfwd configured the port (and stops and closes it on drop); a port
    /// refused before that is left as it was.
    configured: bool,
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
struct PortShared {
    // Field order is drop order: ports close before the pool is freed.
    wire: OpenPort,
    host: Option<OpenPort>,
    /// Shared by the two ports of a two-armed layout.
    pool: Arc<Pool>,
    summary: PortSummary,
    host_summary: Option<PortSummary>,
    host_iface: Option<String>,
    /// Which queues were handed out.
    taken: Mutex<Vec<bool>>,
    /// The workers' burst size (sizes the TX buffers).
    burst: u16,
    /// Serialises control calls (stats, link): ethdev's control functions
    /// are not thread-safe among themselves.
    ctl: Mutex<()>,
}

static POOL_SEQ: AtomicU32 = AtomicU32::new(0);
static TAP_SEQ: AtomicU32 = AtomicU32::new(0);

/// A DPDK port set up for lbfwd's workers: one RX/TX queue pair per worker,
/// an mbuf pool, and optionally the host path's TAP (module docs). Cheap to
/// clone; the port closes when the last clone and the last queue are gone.
#[derive(Clone)]
pub struct DpdkPort {
    shared: Arc<PortShared>,
}

impl fmt::Debug for DpdkPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpdkPort")
            .field("summary", &self.shared.summary)
            .field("host", &self.shared.host_summary)
            .finish()
    }
}

fn find_port(name: &str) -> Result<u16, DpdkError> {
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

/// A port being opened; field order is drop order (ports before the pool).
struct Parts {
    wire: OpenPort,
    host: Option<OpenPort>,
    pool: Option<Arc<Pool>>,
}

fn check_port_options(name: &str, opts: &PortOptions) -> Result<(), DpdkError> {
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
fn pool_size(opts: &PortOptions) -> u64 {
    round_pool(pool_need(opts))
}

fn pool_need(opts: &PortOptions) -> u64 {
    let q = opts.queues as u64;
    let ports = if opts.host_tap.is_some() { 2 } else { 1 };
    ports * q * (u64::from(opts.rx_desc) + u64::from(opts.tx_desc))
        + q * u64::from(opts.burst) * (1 + 2 * TX_BUFFER_BURSTS as u64)
        + (q + 1) * u64::from(POOL_CACHE)
        + 1024
}

fn round_pool(need: u64) -> u64 {
    (need + 1)
        .next_power_of_two()
        .saturating_sub(1)
        .max(u64::from(MIN_POOL))
}

fn create_pool(name: &str, mbufs: u64, socket: i32) -> Result<Pool, DpdkError> {
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

fn port_info(name: &str, id: u16) -> Result<ffi::PortInfo, DpdkError> {
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

fn check_queue_count(name: &str, info: &ffi::PortInfo, queues: usize) -> Result<(), DpdkError> {
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
fn setup_port(
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
    fn name(&self) -> &str {
        match self {
            PortSpec::Name(name) => name,
            PortSpec::Vdev(devargs) => devargs.split(',').next().unwrap_or(devargs),
        }
    }

    /// (name, port id, attached by us).
    fn resolve(&self) -> Result<(String, u16, bool), DpdkError> {
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

    fn open_id(
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

    fn take(&self, index: usize) -> Result<(), DpdkError> {
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

    fn release(&self, index: usize) {
        if let Some(slot) = lock(&self.shared.taken).get_mut(index) {
            *slot = false;
        }
    }

    fn side(&self) -> Side {
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

impl DpdkQueue {
    fn new(sides: Vec<Side>, egress: usize, index: usize) -> DpdkQueue {
        DpdkQueue {
            pool: sides[0].shared.pool.ptr,
            sides: sides.into_boxed_slice(),
            egress,
            queue: index as u16,
            stats: QueueStats::default(),
            host_countdown: HOST_POLL_EVERY,
            rx: vec![ptr::null_mut(); MAX_BURST].into_boxed_slice(),
            free: vec![ptr::null_mut(); MAX_BURST].into_boxed_slice(),
            registered: false,
        }
    }
}

/// `-rte_errno` of the calling thread.
///
/// # Safety
/// EAL must be initialised (rte_errno is a thread-local of librte_eal).
unsafe fn errno_of_last_call() -> c_int {
    // SAFETY: reads a thread-local int.
    -unsafe { ffi::lbfwd_errno() }
}

fn link_of(port: &OpenPort) -> Result<LinkStatus, DpdkError> {
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

fn port_stats(port: &OpenPort) -> Result<PortStats, DpdkError> {
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

fn xstats_of(port: &OpenPort) -> Result<Vec<(String, u64)>, DpdkError> {
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

// ---- worker queues ------------------------------------------------------------

/// Mbufs waiting for a TX burst, with their bytes.
struct TxBuffer {
    pkts: Box<[*mut RteMbuf]>,
    len: usize,
    bytes: u64,
}

impl TxBuffer {
    fn new(capacity: usize) -> Self {
        TxBuffer {
            pkts: vec![ptr::null_mut(); capacity].into_boxed_slice(),
            len: 0,
            bytes: 0,
        }
    }
}

/// One TX burst of `buf` on queue `queue` of `port`; what the device does
/// not take is freed and counted as dropped in `stats`. Leaves `buf` empty.
fn transmit(port: u16, queue: u16, buf: &mut TxBuffer, stats: &mut QueueStats) {
    if buf.len == 0 {
        return;
    }
    // SAFETY: the first `len` entries are mbufs we own; tx_burst takes
    // ownership of the first `sent` of them. Queue `queue` of `port` is
    // ours alone.
    let sent = usize::from(unsafe {
        ffi::lbfwd_tx_burst(port, queue, buf.pkts.as_mut_ptr(), buf.len as u16)
    });
    let mut bytes = buf.bytes;
    if sent < buf.len {
        for &m in &buf.pkts[sent..buf.len] {
            // SAFETY: unsent mbufs are still ours and alive.
            bytes -= unsafe { mbuf::view(m) }.data_len as u64;
        }
        // SAFETY: the unsent mbufs are ours; each is freed exactly once
        // here and forgotten (len is reset below).
        unsafe {
            ffi::lbfwd_mbuf_free_bulk(buf.pkts.as_mut_ptr().add(sent), (buf.len - sent) as c_uint)
        };
        stats.tx_dropped += (buf.len - sent) as u64;
    }
    stats.tx_packets += sent as u64;
    stats.tx_bytes += bytes;
    buf.len = 0;
    buf.bytes = 0;
}

/// Which of a side's two TX buffers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    /// The port itself.
    Wire,
    /// The port's host path TAP.
    Host,
}

/// One port of a [`DpdkQueue`]: its queue pair, its host TAP's queue pair,
/// and a TX buffer for each.
struct Side {
    port: u16,
    host: Option<u16>,
    tx: TxBuffer,
    host_tx: TxBuffer,
    shared: Arc<PortShared>,
}

/// One worker's queue pair on a [`DpdkPort`] (and on the port's host path
/// TAP), or on two ports for a two-armed layout
/// ([`DpdkPort::queue_two_armed`]). Implements [`WorkerQueue`]; see the
/// module docs for the packet path.
pub struct DpdkQueue {
    /// The ports: `[port]`, or `[ingress, egress]`.
    sides: Box<[Side]>,
    /// The side whose port transmits [`Disposition::Tx`] frames.
    egress: usize,
    queue: u16,
    pool: *mut ffi::RteMempool,
    stats: QueueStats,
    host_countdown: u32,
    /// Where a burst is received (kept here: no per-poll initialisation).
    rx: Box<[*mut RteMbuf]>,
    /// Mbufs of the current burst to free in bulk.
    free: Box<[*mut RteMbuf]>,
    registered: bool,
}

// SAFETY: a DpdkQueue exclusively owns queue `queue` of its ports and of
// their TAPs (handed out once, see DpdkPort::queue) and the mbufs in its
// buffers; DPDK allows a queue to be polled from any one thread at a time.
// The pool pointer stays valid while the sides' PortShared are held, and
// mempool operations are thread-safe.
unsafe impl Send for DpdkQueue {}

impl fmt::Debug for DpdkQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports: Vec<&str> = self
            .sides
            .iter()
            .map(|s| s.shared.summary.name.as_str())
            .collect();
        f.debug_struct("DpdkQueue")
            .field("ports", &ports)
            .field("queue", &self.queue)
            .field("tx_pending", &self.tx_pending())
            .finish()
    }
}

impl DpdkQueue {
    /// The queue's index (the worker's).
    pub fn index(&self) -> usize {
        usize::from(self.queue)
    }

    /// Frames the egress TX buffer holds before the queue kicks the device
    /// itself ([`TX_BUFFER_BURSTS`] bursts).
    pub fn tx_capacity(&self) -> usize {
        self.sides[self.egress].tx.pkts.len()
    }

    /// Queues `m` (a single-segment mbuf of `len` bytes that we own) on
    /// `side`'s `out` buffer, kicking the device first when it is full.
    #[inline(always)]
    fn push(&mut self, side: usize, out: Out, m: *mut RteMbuf, len: usize) {
        if !self.try_push(side, out, m, len) {
            self.send(side, out);
            if !self.try_push(side, out, m, len) {
                // A buffer of capacity 0 (no host path): nothing to queue on.
                self.stats.tx_dropped += 1;
                // SAFETY: we own `m`; it is freed here and not used again.
                unsafe { ffi::lbfwd_mbuf_free_bulk([m].as_mut_ptr(), 1) };
            }
        }
    }

    /// Queues `m` if `side`'s `out` buffer has room; false when it is full.
    #[inline(always)]
    fn try_push(&mut self, side: usize, out: Out, m: *mut RteMbuf, len: usize) -> bool {
        let Some(s) = self.sides.get_mut(side) else {
            return false;
        };
        let buf = if out == Out::Host {
            &mut s.host_tx
        } else {
            &mut s.tx
        };
        match buf.pkts.get_mut(buf.len) {
            Some(slot) => {
                *slot = m;
                buf.len += 1;
                buf.bytes += len as u64;
                true
            }
            None => false,
        }
    }

    /// One TX burst of `side`'s `out` buffer; what the device does not take
    /// is freed and counted as dropped.
    fn send(&mut self, side: usize, out: Out) {
        let s = &mut self.sides[side];
        let (port, buf) = match out {
            Out::Wire => (s.port, &mut s.tx),
            Out::Host => match s.host {
                Some(port) => (port, &mut s.host_tx),
                None => return,
            },
        };
        transmit(port, self.queue, buf, &mut self.stats);
    }

    /// Receives a burst on `side`'s port and runs the pipeline on it.
    #[inline]
    fn poll_side<P: Processor>(&mut self, side: usize, burst: usize, processor: &mut P) -> usize {
        let port = self.sides[side].port;
        let has_host = self.sides[side].host.is_some();
        // SAFETY: `rx` has room for `burst` (<= MAX_BURST) pointers; the RX
        // queue is ours alone. The mbufs received become ours.
        let n = usize::from(unsafe {
            ffi::lbfwd_rx_burst(port, self.queue, self.rx.as_mut_ptr(), burst as u16)
        });
        let n = n.min(burst).min(MAX_BURST);
        // Stage one of the burst: every frame the loop below will process,
        // in the same order, for the processor's prefetch.
        if processor.wants_prefetch() {
            for &m in &self.rx[..n] {
                // SAFETY: a live mbuf we own, just received.
                let v = unsafe { mbuf::view(m) };
                if !v.is_plain() {
                    continue;
                }
                // SAFETY: as in the loop below; the slice lives only for
                // this call, before the mbuf is processed.
                let buf = unsafe { std::slice::from_raw_parts_mut(v.buf, v.buf_len) };
                processor.prefetch(&Frame::new(buf, v.data_off, v.data_len));
            }
        }
        // The egress buffer takes the burst's frames through a cursor held
        // in a register (stored back once, after the loop); frames for the
        // host are gathered at the front of `rx`, behind the one being
        // processed, and queued after the loop.
        let (egress_port, queue) = (self.sides[self.egress].port, self.queue);
        let tx = &mut self.sides[self.egress].tx;
        let (mut tx_len, mut tx_bytes) = (tx.len, tx.bytes);
        let mut nfree = 0;
        let mut nhost = 0;
        let mut rx_bytes = 0u64;
        let mut rx_bad = 0usize;
        for i in 0..n {
            let m = self.rx[i];
            // SAFETY: a live mbuf we own, just received.
            let v = unsafe { mbuf::view(m) };
            if !v.is_plain() {
                // Chained, shared or inconsistent: not a buffer the
                // pipeline may write in place.
                rx_bad += 1;
                self.free[nfree] = m;
                nfree += 1;
                continue;
            }
            rx_bytes += v.data_len as u64;
            // SAFETY: the mbuf's data room, `buf_len` bytes from `buf`, is
            // valid memory that only we reference while we own the mbuf
            // (refcnt 1, direct mbuf); the slice lives only during
            // `process`, before the mbuf is queued or freed.
            let buf = unsafe { std::slice::from_raw_parts_mut(v.buf, v.buf_len) };
            let mut frame = Frame::new(buf, v.data_off, v.data_len);
            let disposition = processor.process(&mut frame);
            let (head, len) = (frame.head(), frame.len());
            match disposition {
                Disposition::Tx => {
                    // SAFETY: we own the single-segment mbuf; Frame keeps
                    // head + len within buf_len.
                    unsafe { mbuf::set_frame(m, head, len) };
                    if tx_len == tx.pkts.len() {
                        // Full (a burst larger than the port's): kick it.
                        (tx.len, tx.bytes) = (tx_len, tx_bytes);
                        transmit(egress_port, queue, tx, &mut self.stats);
                        (tx_len, tx_bytes) = (0, 0);
                    }
                    match tx.pkts.get_mut(tx_len) {
                        Some(slot) => {
                            *slot = m;
                            tx_len += 1;
                            tx_bytes += len as u64;
                        }
                        None => {
                            // A buffer of capacity 0: nothing to queue on.
                            self.stats.tx_dropped += 1;
                            self.free[nfree] = m;
                            nfree += 1;
                        }
                    }
                }
                Disposition::Host if has_host => {
                    // SAFETY: as above.
                    unsafe { mbuf::set_frame(m, head, len) };
                    // nhost <= i: a slot already processed.
                    self.rx[nhost] = m;
                    nhost += 1;
                }
                Disposition::Host | Disposition::Drop => {
                    self.stats.freed += 1;
                    self.free[nfree] = m;
                    nfree += 1;
                }
            }
        }
        (tx.len, tx.bytes) = (tx_len, tx_bytes);
        for i in 0..nhost {
            let m = self.rx[i];
            // SAFETY: a live mbuf we own, its frame set above.
            let len = unsafe { mbuf::view(m) }.data_len;
            self.stats.host_packets += 1;
            self.push(side, Out::Host, m, len);
        }
        self.stats.rx_errors += rx_bad as u64;
        self.stats.rx_packets += (n - rx_bad) as u64;
        self.stats.rx_bytes += rx_bytes;
        if nfree > 0 {
            // SAFETY: the first `nfree` entries of `free` are mbufs we own,
            // each listed once; they are freed here and not used again.
            unsafe { ffi::lbfwd_mbuf_free_bulk(self.free.as_mut_ptr(), nfree as c_uint) };
        }
        n
    }

    /// Moves what the kernel sent out of `side`'s TAP to that side's port.
    fn poll_host(&mut self, side: usize, host: u16, burst: usize) {
        // SAFETY: `rx` has room for `burst` (<= MAX_BURST) pointers; queue
        // `queue` of the TAP is ours alone. The mbufs received become ours.
        let n = usize::from(unsafe {
            ffi::lbfwd_rx_burst(host, self.queue, self.rx.as_mut_ptr(), burst as u16)
        });
        let mut nbad = 0;
        for i in 0..n {
            let m = self.rx[i];
            // SAFETY: a live mbuf we own, just received.
            let v = unsafe { mbuf::view(m) };
            if v.nb_segs != 1 {
                self.free[nbad] = m;
                nbad += 1;
                continue;
            }
            self.push(side, Out::Wire, m, v.data_len);
        }
        if nbad > 0 {
            self.stats.rx_errors += nbad as u64;
            // SAFETY: the multi-segment mbufs are ours, listed once in
            // `free`, freed here and not used again.
            unsafe { ffi::lbfwd_mbuf_free_bulk(self.free.as_mut_ptr(), nbad as c_uint) };
        }
    }
}

impl WorkerQueue for DpdkQueue {
    fn poll<F>(&mut self, burst: usize, process: F) -> Result<usize, IoError>
    where
        F: FnMut(&mut Frame<'_>) -> Disposition,
    {
        self.poll_with(burst, &mut super::ClosureProcessor(process))
    }

    fn poll_with<P: Processor>(
        &mut self,
        burst: usize,
        processor: &mut P,
    ) -> Result<usize, IoError> {
        if !self.registered {
            register_current_thread()?;
            self.registered = true;
        }
        let burst = burst.clamp(1, MAX_BURST);
        let mut n = self.poll_side(0, burst, processor);
        if self.sides.len() > 1 {
            // A full burst goes out before the next side is received: the
            // mbufs it frees are the ones that side's receive takes from
            // the mempool cache, so one burst of mbufs (not two) cycles
            // through the CPU's caches.
            if self.sides[self.egress].tx.len >= burst {
                self.send(self.egress, Out::Wire);
            }
            n += self.poll_side(1, burst, processor);
        }
        self.host_countdown -= 1;
        if self.host_countdown == 0 {
            self.host_countdown = HOST_POLL_EVERY;
            for side in 0..self.sides.len() {
                if let Some(host) = self.sides[side].host {
                    self.poll_host(side, host, burst);
                }
            }
        }
        Ok(n)
    }

    fn send_copy(&mut self, frame: &[u8]) -> Result<bool, IoError> {
        // SAFETY: the pool is alive while the sides' PortShared are;
        // allocation is thread-safe.
        let m = unsafe { ffi::lbfwd_mbuf_alloc(self.pool) };
        if m.is_null() {
            self.stats.tx_dropped += 1;
            return Ok(false);
        }
        // SAFETY: a fresh mbuf we own.
        let v = unsafe { mbuf::view(m) };
        if v.data_off + frame.len() > v.buf_len {
            let mut one = [m];
            // SAFETY: the fresh mbuf is ours, freed once.
            unsafe { ffi::lbfwd_mbuf_free_bulk(one.as_mut_ptr(), 1) };
            self.stats.tx_dropped += 1;
            return Ok(false);
        }
        // SAFETY: the data room has `buf_len - data_off >= frame.len()` bytes
        // at `buf + data_off`, which we own; `frame` does not overlap it
        // (the mbuf was just allocated).
        unsafe {
            ptr::copy_nonoverlapping(frame.as_ptr(), v.buf.add(v.data_off), frame.len());
            mbuf::set_frame(m, v.data_off, frame.len());
        }
        self.push(self.egress, Out::Wire, m, frame.len());
        Ok(true)
    }

    fn tx_pending(&self) -> usize {
        self.sides.iter().map(|s| s.tx.len + s.host_tx.len).sum()
    }

    fn flush(&mut self) -> Result<(), IoError> {
        for side in 0..self.sides.len() {
            self.send(side, Out::Wire);
            self.send(side, Out::Host);
        }
        Ok(())
    }

    fn maintenance(&mut self) -> Result<(), IoError> {
        // Port-wide drops are reported once, by queue 0, so that totals over
        // the workers are right. A worker never waits for the control
        // thread (a slow xstats read would stall its RX ring): when a port
        // is busy, next time.
        if self.queue != 0 {
            return Ok(());
        }
        let mut drops = 0;
        for side in self.sides.iter() {
            let st = match side.shared.ctl.try_lock() {
                Ok(_ctl) => port_stats(&side.shared.wire)?,
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    let _ctl = p.into_inner();
                    port_stats(&side.shared.wire)?
                }
                Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
            };
            drops += st.rx_missed + st.rx_nombuf;
        }
        self.stats.rx_ring_drops = drops;
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        self.stats
    }
}

impl Drop for DpdkQueue {
    fn drop(&mut self) {
        // Every buffered mbuf is sent (or freed by `send`); the ports are
        // still running because the sides hold their PortShared.
        let _ = self.flush();
        for side in self.sides.iter() {
            let mut taken = lock(&side.shared.taken);
            if let Some(slot) = taken.get_mut(usize::from(self.queue)) {
                *slot = false;
            }
        }
    }
}

/// Test hooks: layout checks of the shim's structs and mbuf accessors.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// Sizes of `lbfwd_port_info`, `lbfwd_port_conf`, `lbfwd_link` and
    /// `lbfwd_port_stats` as C sees them and as Rust sees them.
    pub fn shim_layout() -> ([usize; 4], [usize; 4]) {
        let mut c = [0usize; 4];
        // SAFETY: the shim writes exactly four size_t values.
        unsafe { ffi::lbfwd_shim_layout(c.as_mut_ptr()) };
        let rust = [
            std::mem::size_of::<ffi::PortInfo>(),
            std::mem::size_of::<ffi::PortConf>(),
            std::mem::size_of::<ffi::Link>(),
            std::mem::size_of::<ffi::PortStats>(),
        ];
        (c, rust)
    }

    /// Allocates one mbuf from `port`'s pool, fills it with `data` through
    /// the Rust accessors, and returns (headroom, data_len, first bytes) as
    /// DPDK's own inline accessors see them; the mbuf is freed again.
    pub fn mbuf_roundtrip(port: &DpdkPort, data: &[u8]) -> Option<(u16, u16, Vec<u8>)> {
        // SAFETY: the pool is alive while `port` is.
        let m = unsafe { ffi::lbfwd_mbuf_alloc(port.shared.pool.ptr) };
        if m.is_null() {
            return None;
        }
        // SAFETY: a fresh mbuf we own; we write within its data room and
        // read back through DPDK's accessors, then free it once.
        unsafe {
            let v = mbuf::view(m);
            let head = v.data_off - 8;
            ptr::copy_nonoverlapping(data.as_ptr(), v.buf.add(head), data.len());
            mbuf::set_frame(m, head, data.len());
            let headroom = ffi::lbfwd_mbuf_headroom(m);
            let len = ffi::lbfwd_mbuf_data_len(m);
            let bytes =
                std::slice::from_raw_parts(ffi::lbfwd_mbuf_data(m).cast::<u8>(), len as usize)
                    .to_vec();
            let mut one = [m];
            ffi::lbfwd_mbuf_free_bulk(one.as_mut_ptr(), 1);
            Some((headroom, len, bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(opts: &DpdkOptions) -> Vec<String> {
        eal_args(opts).expect("valid options")
    }

    #[test]
    fn eal_args_for_tests_and_for_nics() {
        let a = args(&DpdkOptions {
            no_huge: true,
            vdevs: vec!["net_null0".into(), "net_tap0,iface=lbfwd0".into()],
            ..Default::default()
        });
        assert_eq!(a[0], "lbfwd");
        assert!(a[1].starts_with("--lcores=0@("), "{a:?}");
        assert_eq!(a[2], format!("--file-prefix=lbfwd-{}", std::process::id()));
        assert_eq!(
            &a[3..],
            [
                "--no-shconf",
                "--no-huge",
                "-m",
                "512",
                "--no-pci",
                "--vdev=net_null0",
                "--vdev=net_tap0,iface=lbfwd0"
            ]
        );

        let a = args(&DpdkOptions {
            huge_dir: Some("/dev".into()),
            memory_mb: Some(2048),
            pci_allow: vec!["0000:03:00.0".into(), "04:00.1,rxq_cqe_comp_en=1".into()],
            extra_eal_args: vec!["--log-level=pmd,8".into()],
            ..Default::default()
        });
        assert_eq!(
            &a[3..],
            [
                "--in-memory",
                "--huge-dir=/dev",
                "-m",
                "2048",
                "-a",
                "0000:03:00.0",
                "-a",
                "04:00.1,rxq_cqe_comp_en=1",
                "--log-level=pmd,8"
            ]
        );
    }

    #[test]
    fn bad_eal_options_are_refused_with_the_option_named() {
        let cases: &[(DpdkOptions, &str, &str)] = &[
            (
                DpdkOptions {
                    pci_allow: vec!["03:00".into()],
                    ..Default::default()
                },
                "pci_allow",
                "not a PCI address",
            ),
            (
                DpdkOptions {
                    pci_allow: vec!["0000:03:00.8".into()],
                    ..Default::default()
                },
                "pci_allow",
                "\"0000:03:00.8\"",
            ),
            (
                DpdkOptions {
                    no_huge: true,
                    huge_dir: Some("/dev/hugepages".into()),
                    ..Default::default()
                },
                "huge_dir",
                "choose one",
            ),
            (
                DpdkOptions {
                    huge_dir: Some("relative/dir".into()),
                    ..Default::default()
                },
                "huge_dir",
                "not an existing absolute directory",
            ),
            (
                DpdkOptions {
                    memory_mb: Some(0),
                    ..Default::default()
                },
                "memory_mb",
                "out of range",
            ),
            (
                DpdkOptions {
                    vdevs: vec!["net_null0, size=64".into()],
                    ..Default::default()
                },
                "vdevs",
                "not a virtual device",
            ),
            (
                DpdkOptions {
                    vdevs: vec![",iface=x".into()],
                    ..Default::default()
                },
                "vdevs",
                "not a virtual device",
            ),
            (
                DpdkOptions {
                    extra_eal_args: vec!["--lcores=1-3".into()],
                    ..Default::default()
                },
                "extra_eal_args",
                "set by lbfwd itself",
            ),
            (
                DpdkOptions {
                    extra_eal_args: vec!["-l".into(), "2".into()],
                    ..Default::default()
                },
                "extra_eal_args",
                "set by lbfwd itself",
            ),
            (
                DpdkOptions {
                    extra_eal_args: vec!["--log-level\0x".into()],
                    ..Default::default()
                },
                "extra_eal_args",
                "NUL",
            ),
        ];
        for (opts, field, needle) in cases {
            let err = eal_args(opts).expect_err(&format!("{opts:?} must be refused"));
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("[dataplane.dpdk] {field}: ")) && msg.contains(needle),
                "{opts:?}: {msg}"
            );
        }
    }

    #[test]
    fn pci_addresses() {
        for ok in ["0000:03:00.0", "03:00.0", "abcd:ef:1f.7", "00:1F.3"] {
            assert!(is_pci_address(ok), "{ok}");
        }
        for bad in [
            "",
            "03:00",
            "3:00.0",
            "0000:03:00.",
            "0000:03:00.8",
            "000:03:00.0",
            "x0:00.0",
        ] {
            assert!(!is_pci_address(bad), "{bad}");
        }
    }

    #[test]
    fn options_map_from_the_config_section() {
        let section = lbfwd_config::settings::DpdkSection {
            no_huge: true,
            huge_dir: None,
            memory_mb: Some(256),
            pci_allow: vec!["0000:01:00.0".into()],
            vdevs: vec!["net_null0".into()],
            extra_eal_args: vec!["--log-level=8".into()],
            ..Default::default()
        };
        let opts = DpdkOptions::from(&section);
        assert_eq!(
            opts,
            DpdkOptions {
                no_huge: true,
                huge_dir: None,
                memory_mb: Some(256),
                pci_allow: vec!["0000:01:00.0".into()],
                vdevs: vec!["net_null0".into()],
                extra_eal_args: vec!["--log-level=8".into()],
            }
        );
    }

    #[test]
    fn pool_is_sized_from_queues_descriptors_and_burst() {
        // 1 queue, defaults: 2048 descriptors + 5 * 32 (a burst and two TX
        // buffers of two bursts) + 2 * 256 (caches) + 1024 = 3744 -> at
        // least MIN_POOL.
        assert_eq!(pool_size(&PortOptions::new(1)), u64::from(MIN_POOL));
        // 4 queues with the host TAP: 2 * 4 * 2048 + 4 * 160 + 5 * 256 + 1024
        // = 19 328 -> 32 767.
        let opts = PortOptions {
            host_tap: Some("lbfwd0".into()),
            ..PortOptions::new(4)
        };
        assert_eq!(pool_size(&opts), 32_767);
        assert!(pool_size(&PortOptions::new(16)) >= 16 * 2048);
        // Bursts of 1024: 2048 + 5 * 1024 + 512 + 1024 = 8704 -> 16 383.
        let opts = PortOptions {
            burst: 1024,
            ..PortOptions::new(1)
        };
        assert_eq!(pool_size(&opts), 16_383);
    }

    #[test]
    fn port_options_are_checked_before_the_port_is_touched() {
        let cases = [
            (PortOptions::new(0), "0 queues"),
            (
                PortOptions {
                    burst: 0,
                    ..PortOptions::new(1)
                },
                "burst 0",
            ),
            (
                PortOptions {
                    burst: MAX_BURST as u16 + 1,
                    ..PortOptions::new(1)
                },
                "out of range",
            ),
            (
                PortOptions {
                    mtu: Some(9000),
                    ..PortOptions::new(1)
                },
                "MTU 9000",
            ),
            (
                PortOptions {
                    host_tap: Some("a very long interface name".into()),
                    ..PortOptions::new(1)
                },
                "not an interface name",
            ),
            (
                PortOptions {
                    rx_desc: 0,
                    ..PortOptions::new(1)
                },
                "at least 1",
            ),
        ];
        for (opts, needle) in cases {
            let msg = check_port_options("p0", &opts).unwrap_err().to_string();
            assert!(
                msg.starts_with("DPDK port \"p0\": ") && msg.contains(needle),
                "{msg}"
            );
        }
    }

    #[test]
    fn link_and_summary_read_well() {
        let link = LinkStatus {
            up: true,
            speed_mbps: 25_000,
            full_duplex: true,
            autoneg: true,
        };
        assert_eq!(
            link.to_string(),
            "link up, 25000 Mbit/s, full duplex, autonegotiated"
        );
        assert_eq!(LinkStatus::default().to_string(), "link down");
        let summary = PortSummary {
            name: "0000:03:00.0".into(),
            port_id: 0,
            driver: "net_ice".into(),
            mac: [2, 0, 0, 0, 0, 1],
            socket: 0,
            queues: 4,
            rx_desc: 1024,
            tx_desc: 1024,
            rss_supported: u64::MAX,
            rss_enabled: 0x3ffc,
            rss_l4: true,
        };
        assert_eq!(
            summary.to_string(),
            "port 0000:03:00.0 (id 0, net_ice, 02:00:00:00:00:01): 4 queues, 1024/1024 rx/tx \
             descriptors, RSS 5-tuple"
        );
    }
}
