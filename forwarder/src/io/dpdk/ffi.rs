//! The FFI surface: the shim's functions and the structs it defines. Nothing
//! here mirrors a DPDK struct.

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
