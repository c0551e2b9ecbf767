//! What lbfwd uses of libbpf and of `csrc/xsk_shim.c`, and the XDP
//! program object build.rs compiles.

use std::ffi::{c_char, c_int, c_void};

/// `struct xdp_desc` of <linux/if_xdp.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// The shim's `struct lbx_umem` (opaque).
#[repr(C)]
pub struct LbxUmem {
    _opaque: [u8; 0],
}
/// The shim's `struct lbx_xsk` (opaque).
#[repr(C)]
pub struct LbxXsk {
    _opaque: [u8; 0],
}
/// libbpf's `struct bpf_object` (opaque).
#[repr(C)]
pub struct BpfObject {
    _opaque: [u8; 0],
}

extern "C" {
    pub fn lbx_umem_create(
        out: *mut *mut LbxUmem,
        area: *mut c_void,
        size: u64,
        fill_size: u32,
        comp_size: u32,
        frame_size: u32,
        frame_headroom: u32,
    ) -> c_int;
    pub fn lbx_umem_delete(umem: *mut LbxUmem) -> c_int;
    pub fn lbx_xsk_create(
        out: *mut *mut LbxXsk,
        ifname: *const c_char,
        queue: u32,
        umem: *mut LbxUmem,
        first: c_int,
        rx_size: u32,
        tx_size: u32,
        bind_flags: u16,
    ) -> c_int;
    pub fn lbx_xsk_delete(xsk: *mut LbxXsk);
    pub fn lbx_xsk_fd(xsk: *const LbxXsk) -> c_int;
    pub fn lbx_rx_burst(xsk: *mut LbxXsk, out: *mut XdpDesc, max: u32) -> u32;
    pub fn lbx_tx_submit(xsk: *mut LbxXsk, descs: *const XdpDesc, n: u32) -> u32;
    pub fn lbx_fill(xsk: *mut LbxXsk, addrs: *const u64, n: u32) -> u32;
    pub fn lbx_complete(xsk: *mut LbxXsk, out: *mut u64, max: u32) -> u32;
    pub fn lbx_tx_needs_wakeup(xsk: *const LbxXsk) -> c_int;
    pub fn lbx_fill_needs_wakeup(xsk: *const LbxXsk) -> c_int;
    pub fn lbx_tx_pending(xsk: *const LbxXsk) -> u32;
    pub fn lbx_prog_load(
        buf: *const c_void,
        len: usize,
        out: *mut *mut BpfObject,
        fds: *mut c_int,
    ) -> c_int;
    pub fn lbx_xdp_link(prog_fd: c_int, ifindex: c_int, flags: u32) -> c_int;

    pub fn bpf_object__close(obj: *mut BpfObject);
    pub fn bpf_map_update_elem(
        fd: c_int,
        key: *const c_void,
        value: *const c_void,
        flags: u64,
    ) -> c_int;
    pub fn bpf_map_delete_elem(fd: c_int, key: *const c_void) -> c_int;
    pub fn bpf_map_get_next_key(fd: c_int, key: *const c_void, next: *mut c_void) -> c_int;
    pub fn bpf_map_lookup_elem(fd: c_int, key: *const c_void, value: *mut c_void) -> c_int;
    pub fn libbpf_num_possible_cpus() -> c_int;
}

/// The XDP program, compiled by build.rs; 8-byte aligned for libelf.
#[repr(C, align(8))]
pub(super) struct Aligned<T: ?Sized>(pub(super) T);
pub(super) static XDP_OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/xsk_vip.bpf.o")));
