//! The kernel side of a queue: ring mappings shared with the kernel, their
//! status words, and the packet-socket calls that set them up.
#![allow(unsafe_code)]

use super::super::sys::Fd;
use super::super::IoError;
use std::sync::atomic::AtomicU32;

/// A ring mapped from a packet socket.
pub(super) struct Mapping {
    pub(super) base: *mut u8,
    pub(super) len: usize,
}

impl Mapping {
    pub(super) fn new(fd: &Fd, len: usize, ifname: &str) -> Result<Self, IoError> {
        // SAFETY: a fresh shared mapping of the socket's ring; the kernel
        // checks `len` against the ring it allocated.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.0,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(IoError::last_os("mmap of the packet ring", ifname));
        }
        Ok(Mapping {
            base: base.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own the mapping and unmap it once; no reference into it
        // outlives the queue that owns it.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// The status word at `ptr`, shared with the kernel.
///
/// # Safety
/// `ptr` points to a 4-byte aligned `tp_status`/`block_status` inside a
/// live ring mapping.
pub(super) unsafe fn status_word<'a>(ptr: *mut u8) -> &'a AtomicU32 {
    // SAFETY: aligned and live per the caller; the kernel writes the word
    // concurrently, hence the atomic view.
    unsafe { &*(ptr as *const AtomicU32) }
}

/// Where a V3 reader stands.
#[derive(Debug, Default)]
pub(super) struct V3Cursor {
    pub(super) block: usize,
    pub(super) in_block: bool,
    pub(super) left: u32,
    pub(super) offset: usize,
}

pub(super) fn setsockopt<T>(
    fd: &Fd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &'static str,
    ifname: &str,
) -> Result<(), IoError> {
    // SAFETY: `value` is a live `T` and we pass its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.0,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(IoError::last_os(what, ifname));
    }
    Ok(())
}

pub(super) fn bind_to(fd: &Fd, ifindex: u32, protocol: u16, ifname: &str) -> Result<(), IoError> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol.to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: `addr` is a valid sockaddr_ll and we pass its size.
    let rc = unsafe {
        libc::bind(
            fd.0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(IoError::last_os("bind packet socket", ifname));
    }
    Ok(())
}

pub(super) fn packet_socket(ifname: &str) -> Result<Fd, IoError> {
    // Protocol 0: the socket receives nothing until bound with a protocol,
    // so no frame lands before the ring and fanout are set up.
    Fd::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0).map_err(|source| {
        IoError::Os {
            what: "packet socket (needs CAP_NET_RAW)",
            interface: ifname.to_string(),
            source,
        }
    })
}
