//! Direct access to the `rte_mbuf` fields of the packet path. The offsets
//! are those of DPDK 22.11 and are asserted by `dpdk_shim.c` at compile time
//! (`LBFWD_MBUF_OFF_*`), so they cannot drift from the headers we build with.
#![allow(unsafe_code)]

use super::ffi::RteMbuf;

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
        (self.nb_segs ^ 1) | (self.refcnt ^ 1) == 0 && self.data_off + self.data_len <= self.buf_len
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
