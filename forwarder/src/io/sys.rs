//! The one shared module of unsafe code outside the backends' own files:
//! owned file descriptors, interface look-ups through `ioctl(2)`, the CPU
//! and memory hints the flow table and the pipeline use (prefetch,
//! `madvise`), the monotonic clock, and the memory a flow table lives in
//! ([`Region`]: on the heap, or a shared mapping of a file that outlives the
//! process), which those modules may not write themselves.
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

/// Nanoseconds of `CLOCK_MONOTONIC`: since boot (not counting suspend),
/// the same clock in every process of one boot, so times a flow table kept
/// in a file stay comparable after a restart. Read through the vDSO, no
/// system call.
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through the pointer, which
    // points at `ts`, alive for the call. CLOCK_MONOTONIC always exists on
    // Linux, so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Plain data: a `Copy` type of integers only (arrays and `repr(C)` structs
/// of them), for which every bit pattern of its size, padding aside, is a
/// valid value. Only such a type may live in a file mapping ([`Region::map_shared`]),
/// whose bytes another process wrote.
///
/// # Safety
///
/// Implement it only for a type without pointers, references, `bool`,
/// `char`, enums or `Drop`: every field an integer, an array of them or a
/// `Plain` type.
pub unsafe trait Plain: Copy + 'static {}

// SAFETY: integers accept every bit pattern; arrays of plain data too.
unsafe impl Plain for u8 {}
// SAFETY: as above.
unsafe impl Plain for u16 {}
// SAFETY: as above.
unsafe impl Plain for u32 {}
// SAFETY: as above.
unsafe impl Plain for u64 {}
// SAFETY: as above.
unsafe impl Plain for u128 {}
// SAFETY: as above.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

/// What a [`Region`]'s memory is.
#[derive(Debug)]
enum Backing {
    /// A boxed slice of the global allocator.
    Heap,
    /// A `MAP_SHARED` mapping of this many bytes.
    Mapped(usize),
}

/// A fixed-length slice of `T` that a flow table keeps its arrays in: a
/// boxed slice ([`Region::from_box`]), or a shared mapping of a file
/// ([`Region::map_shared`]), whose contents outlive the process (the file
/// keeps what was written, also after `kill -9`). Dereferences to `[T]`
/// at the cost of a `Box<[T]>`.
pub struct Region<T> {
    ptr: std::ptr::NonNull<T>,
    len: usize,
    backing: Backing,
}

// SAFETY: a Region owns its memory exclusively (like a Box<[T]>): sending it
// to another thread sends the Ts.
unsafe impl<T: Send> Send for Region<T> {}
// SAFETY: shared access hands out only `&[T]` (like a Box<[T]>).
unsafe impl<T: Sync> Sync for Region<T> {}

impl<T> Region<T> {
    /// The memory of a boxed slice.
    pub fn from_box(b: Box<[T]>) -> Self {
        let len = b.len();
        let raw = Box::into_raw(b);
        Region {
            // A Box's pointer is never null (dangling but aligned if empty).
            ptr: std::ptr::NonNull::new(raw.cast::<T>()).expect("a Box is never null"),
            len,
            backing: Backing::Heap,
        }
    }

    /// Whether the memory is a file mapping.
    pub fn is_mapped(&self) -> bool {
        matches!(self.backing, Backing::Mapped(_))
    }
}

impl<T: Plain> Region<T> {
    /// `len` values of `T` in a `MAP_SHARED` read-write mapping of `file`
    /// from byte `offset` (a multiple of the page size), which must lie
    /// inside the file (`File::set_len` first: bytes past the end would
    /// fault). What the file holds there becomes the values (zeroes in a
    /// new file: `T`'s all-zero value); every write reaches the file. Asks
    /// for transparent huge pages (best effort).
    pub fn map_shared(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
        let page = page_size();
        if !offset.is_multiple_of(page as u64) {
            return Err(invalid(format!(
                "mapping offset {offset} is not a multiple of the page size {page}"
            )));
        }
        if std::mem::align_of::<T>() > page {
            return Err(invalid("type alignment above the page size".into()));
        }
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .filter(|&b| b > 0)
            .ok_or_else(|| invalid(format!("cannot map {len} values")))?;
        let end = offset + bytes as u64;
        let file_len = file.metadata()?.len();
        if file_len < end {
            return Err(invalid(format!(
                "the file is {file_len} bytes, the mapping needs {end}"
            )));
        }
        // SAFETY: a new mapping (address chosen by the kernel, so it
        // overlaps nothing of ours) of a range that lies inside the file
        // (checked above); the descriptor is valid for the call and the
        // mapping stays valid after it is closed.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the range is the mapping just made, which we own;
        // MADV_HUGEPAGE changes only how the kernel backs it.
        unsafe { libc::madvise(addr, bytes, libc::MADV_HUGEPAGE) };
        Ok(Region {
            ptr: std::ptr::NonNull::new(addr.cast::<T>()).expect("mmap never returns null"),
            len,
            backing: Backing::Mapped(bytes),
        })
    }
}

/// Reserves the blocks of `file`'s first `len` bytes (`fallocate(2)`),
/// growing it to `len` if it is shorter: a mapping of it then never faults
/// for want of space (on a full tmpfs, a write into a hole of a mapped file
/// kills the process with SIGBUS).
pub fn allocate_file(file: &std::fs::File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate takes no pointers; the descriptor is valid for the
    // call.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The page size (offsets of file mappings are multiples of it).
pub fn page_size() -> usize {
    // SAFETY: sysconf takes no pointers.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

impl<T> std::ops::Deref for Region<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points at `len` initialised, aligned `T`s that this
        // Region owns: a boxed slice's, or a mapping's (page-aligned, and
        // valid values whatever its bytes, `T` being `Plain`), alive until
        // drop; `&self` makes this a shared borrow of them.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for Region<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow exclusive
        // (within this process: another process writing the same file
        // region is outside Rust's model; the persisted flow table's file
        // is locked, see `flow::persist`).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for Region<T> {
    fn drop(&mut self) {
        match self.backing {
            Backing::Heap => {
                let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
                // SAFETY: the pointer and length are those `Box::into_raw`
                // gave in `from_box`; the box is rebuilt (and freed) once.
                drop(unsafe { Box::from_raw(slice) });
            }
            Backing::Mapped(bytes) => {
                // SAFETY: the mapping `map_shared` made, of `bytes` bytes,
                // unmapped once; no reference into it outlives `self`. `T`
                // is `Plain` (no Drop), so nothing is to be dropped first.
                unsafe { libc::munmap(self.ptr.as_ptr().cast(), bytes) };
            }
        }
    }
}

impl<T> std::fmt::Debug for Region<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("len", &self.len)
            .field("backing", &self.backing)
            .finish()
    }
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
    fn a_shared_mapping_keeps_what_was_written_for_the_next_mapping() {
        let path = std::env::temp_dir().join(format!("lbfwd-sys-map-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let page = page_size();
        allocate_file(&file, 2 * page as u64).unwrap();
        {
            let mut r = Region::<u64>::map_shared(&file, page as u64, page / 8).unwrap();
            assert!(r.is_mapped());
            assert!(r.iter().all(|&w| w == 0), "a new file maps as zeroes");
            r[3] = 0xfeed;
        }
        let r = Region::<u64>::map_shared(&file, page as u64, page / 8).unwrap();
        assert_eq!(r[3], 0xfeed);
        let err = Region::<u64>::map_shared(&file, 1, 8)
            .unwrap_err()
            .to_string();
        assert!(err.contains("page size"), "{err}");
        let err = Region::<u64>::map_shared(&file, page as u64, page)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the mapping needs"), "{err}");
        let heap = Region::from_box(vec![1u32, 2, 3].into_boxed_slice());
        assert!(!heap.is_mapped());
        assert_eq!(&heap[..], &[1, 2, 3]);
        std::fs::remove_file(&path).unwrap();
    }

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
