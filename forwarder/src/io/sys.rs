//! The one shared module of unsafe code outside the backends' own files:
//! owned file descriptors, interface look-ups through `ioctl(2)`, and the
//! CPU and memory hints the flow table and the pipeline use (prefetch,
//! `madvise`), which those modules may not write themselves.
//!
//! Every `unsafe` block here is a single system call or intrinsic with its
//! `// SAFETY:` argument; the functions around them are safe to call.
#![allow(unsafe_code)]

use super::{InterfaceInfo, IoError};

/// Asks the CPU to bring the cache line holding `*r` into the caches: a
/// hint with no effect on the program's meaning (for the pipeline's burst
/// prefetch, which may not use `unsafe` itself).
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and changes no memory; the address is
    // that of a live reference anyway. SSE is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Asks the kernel to back `v`'s allocation (its whole capacity) with
/// transparent huge pages (`madvise(MADV_HUGEPAGE)`), for large tables the
/// fast path reads at random (fewer TLB misses). Call it before the memory
/// is first written (e.g. on `Vec::with_capacity`). Best effort: returns
/// false when the kernel refused (THP off, too small); nothing else changes.
pub fn advise_huge_pages<T>(v: &mut Vec<T>) -> bool {
    const HUGE: usize = 2 << 20;
    let start = v.as_mut_ptr() as usize;
    let bytes = v.capacity() * std::mem::size_of::<T>();
    // Only the 2 MiB-aligned part can become huge pages.
    let first = start.next_multiple_of(HUGE);
    let end = (start + bytes) / HUGE * HUGE;
    if end <= first {
        return false;
    }
    // SAFETY: the range lies inside the allocation `v` owns; MADV_HUGEPAGE
    // only changes how the kernel backs it, never its contents or validity.
    unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) == 0 }
}

/// Looks up an interface by name in this thread's network namespace.
pub fn interface_info(name: &str) -> Result<InterfaceInfo, IoError> {
    let cname = ifname_c(name)?;
    // SAFETY: `cname` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(IoError::Setup(format!(
            "interface {name:?} does not exist (in this network namespace)"
        )));
    }
    let sock = Fd::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
        .or_else(|_| Fd::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0))
        .map_err(|e| IoError::Os {
            what: "socket for interface ioctls",
            interface: name.to_string(),
            source: e,
        })?;
    let mut req = ifreq_for(name);
    // SAFETY: SIOCGIFFLAGS reads `ifr_name` and writes `ifr_flags` of the
    // ifreq we own; the fd is a valid socket.
    if unsafe { libc::ioctl(sock.0, libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(IoError::last_os("SIOCGIFFLAGS", name));
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds flags.
    let flags = unsafe { req.ifr_ifru.ifru_flags } as i32;
    let mut req = ifreq_for(name);
    // SAFETY: as above, SIOCGIFMTU writes `ifr_mtu`.
    if unsafe { libc::ioctl(sock.0, libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(IoError::last_os("SIOCGIFMTU", name));
    }
    // SAFETY: SIOCGIFMTU succeeded, so the union holds the MTU.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu } as u32;
    Ok(InterfaceInfo {
        name: name.to_string(),
        index,
        up: flags & libc::IFF_UP != 0,
        running: flags & libc::IFF_RUNNING != 0,
        rx_queues: rx_queue_count(&sock, name),
        mtu,
    })
}

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// Receive queues of `name` through ETHTOOL_GCHANNELS; 1 when the driver
/// does not implement it.
fn rx_queue_count(sock: &Fd, name: &str) -> u32 {
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut req = ifreq_for(name);
    req.ifr_ifru.ifru_data = (&mut channels as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GCHANNELS writes a `struct
    // ethtool_channels` through `ifru_data`, which points at `channels`,
    // alive and correctly laid out for the duration of the call.
    let rc = unsafe { libc::ioctl(sock.0, libc::SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return 1;
    }
    (channels.combined_count + channels.rx_count).max(1)
}

fn ifname_c(name: &str) -> Result<std::ffi::CString, IoError> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ']) {
        return Err(IoError::Setup(format!(
            "{name:?} is not a valid interface name (1 to {} characters, no '/' or space)",
            libc::IFNAMSIZ - 1
        )));
    }
    std::ffi::CString::new(name)
        .map_err(|_| IoError::Setup(format!("interface name {name:?} contains a NUL byte")))
}

fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

/// An owned file descriptor, closed on drop.
#[derive(Debug)]
pub(crate) struct Fd(pub(crate) libc::c_int);

impl Fd {
    pub(crate) fn socket(
        domain: libc::c_int,
        ty: libc::c_int,
        proto: libc::c_int,
    ) -> std::io::Result<Fd> {
        // SAFETY: socket(2) takes no pointers.
        let fd = unsafe { libc::socket(domain, ty, proto) };
        if fd < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(Fd(fd))
        }
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it exactly once.
        unsafe { libc::close(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_and_bogus_names_are_refused() {
        let lo = interface_info("lo").expect("lo exists in every namespace");
        assert_eq!(lo.name, "lo");
        assert!(lo.index > 0);
        assert!(lo.rx_queues >= 1);
        let err = interface_info("lbt-nope0").unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        let err = interface_info("a/b").unwrap_err().to_string();
        assert!(err.contains("not a valid interface name"), "{err}");
        let err = interface_info("abcdefghijklmnopqrstuvwxyz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid interface name"), "{err}");
    }
}
