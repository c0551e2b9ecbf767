//! Test hooks: layout checks of the shim's structs and mbuf accessors.
#![allow(unsafe_code)]

use super::port::DpdkPort;
use super::{ffi, mbuf};
use std::ptr;

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
            std::slice::from_raw_parts(ffi::lbfwd_mbuf_data(m).cast::<u8>(), len as usize).to_vec();
        let mut one = [m];
        ffi::lbfwd_mbuf_free_bulk(one.as_mut_ptr(), 1);
        Some((headroom, len, bytes))
    }
}
