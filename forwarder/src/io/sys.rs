//! The one shared module of unsafe code outside the backends' own files:
//! owned file descriptors, interface look-ups through `ioctl(2)`, the CPU
//! and memory hints the flow table and the pipeline use (prefetch,
//! `madvise`), the monotonic clock, and the memory a flow table lives in
//! ([`Region`]: on the heap, or a shared mapping of a file that outlives the
//! process), and the huge-page-backed slices of the big tables the fast
//! path reads at random ([`HugeSlice`]), which those modules may not write
//! themselves.
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

/// The size of a huge page (x86_64 and aarch64 with 4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// Below this many bytes a [`HugeSlice`] stays on the heap: a 2 MiB page
/// for less would mostly hold nothing.
pub const HUGE_SLICE_MIN_BYTES: usize = 1 << 20;

/// A fixed-length slice of `T` backed by transparent huge pages, for the
/// large tables the fast path reads at random (fewer TLB misses): an
/// anonymous private mapping, 2 MiB-aligned and a whole number of 2 MiB
/// pages long, advised `MADV_HUGEPAGE` before its first write. Smaller
/// slices (under [`HUGE_SLICE_MIN_BYTES`]), types aligned above the page
/// size, and failed mappings fall back to a boxed slice. Dereferences to
/// `[T]` at the cost of a `Box<[T]>`; owns its elements like one.
pub struct HugeSlice<T> {
    ptr: std::ptr::NonNull<T>,
    len: usize,
    /// Bytes mapped at `ptr`; 0: the memory of a boxed slice.
    mapped: usize,
}

// SAFETY: a HugeSlice owns its elements exclusively (like a Box<[T]>):
// sending it to another thread sends the Ts.
unsafe impl<T: Send> Send for HugeSlice<T> {}
// SAFETY: shared access hands out only `&[T]` (like a Box<[T]>).
unsafe impl<T: Sync> Sync for HugeSlice<T> {}

/// Maps `bytes` (rounded up to whole huge pages) of anonymous memory at a
/// 2 MiB-aligned address, advised `MADV_HUGEPAGE`; returns the address and
/// the bytes mapped, `None` if the kernel refused the mapping.
fn map_huge(bytes: usize) -> Option<(std::ptr::NonNull<u8>, usize)> {
    let len = bytes.checked_next_multiple_of(HUGE_PAGE)?;
    // One huge page more, to trim to an aligned start.
    let over = len.checked_add(HUGE_PAGE)?;
    // SAFETY: a new anonymous mapping at an address the kernel chooses: it
    // overlaps nothing of ours; no pointer is passed.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            over,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return None;
    }
    let start = addr as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let head = aligned - start;
    let tail = over - head - len;
    if head > 0 {
        // SAFETY: the first `head` bytes of the mapping just made, which
        // nothing refers to; unmapping them leaves the rest mapped.
        unsafe { libc::munmap(addr, head) };
    }
    if tail > 0 {
        // SAFETY: the last `tail` bytes of that mapping, past the `len`
        // bytes kept; nothing refers to them.
        unsafe { libc::munmap((aligned + len) as *mut libc::c_void, tail) };
    }
    // SAFETY: the range is the part of the mapping kept, which we own, not
    // yet written; MADV_HUGEPAGE changes only how the kernel backs it (best
    // effort: with THP off it fails and the pages stay small).
    unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    Some((std::ptr::NonNull::new(aligned as *mut u8)?, len))
}

/// Writes the elements of a mapped [`HugeSlice`] under construction and,
/// should a `T` constructor panic, drops those written and unmaps.
struct Filling<T> {
    ptr: std::ptr::NonNull<T>,
    written: usize,
    mapped: usize,
}

impl<T> Drop for Filling<T> {
    fn drop(&mut self) {
        let done = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.written);
        // SAFETY: the first `written` elements were initialised and nothing
        // else refers to them (construction did not finish); the mapping is
        // ours, `mapped` bytes, and unmapped once here.
        unsafe {
            std::ptr::drop_in_place(done);
            libc::munmap(self.ptr.as_ptr().cast(), self.mapped);
        }
    }
}

impl<T> HugeSlice<T> {
    /// `len` elements, element `i` being `init(i)`, written in order.
    pub fn new(len: usize, mut init: impl FnMut(usize) -> T) -> Self {
        let Some((ptr, mapped)) = Self::mapping_for(len) else {
            return Self::from_box((0..len).map(init).collect());
        };
        let mut filling = Filling {
            ptr,
            written: 0,
            mapped,
        };
        while filling.written < len {
            let value = init(filling.written);
            // SAFETY: `written < len`, and the mapping holds at least `len`
            // elements (`mapping_for`), aligned (2 MiB-aligned start, `T`
            // aligned at most to a page); the slot is not initialised yet.
            unsafe { filling.ptr.as_ptr().add(filling.written).write(value) };
            filling.written += 1;
        }
        std::mem::forget(filling);
        HugeSlice { ptr, len, mapped }
    }

    /// The elements of `v`, moved (not cloned) into huge pages if large
    /// enough.
    pub fn from_vec(mut v: Vec<T>) -> Self {
        let len = v.len();
        let Some((ptr, mapped)) = Self::mapping_for(len) else {
            return Self::from_box(v.into_boxed_slice());
        };
        // SAFETY: the mapping holds at least `len` aligned elements and does
        // not overlap `v`'s buffer; after the copy the elements belong to
        // the mapping: `set_len(0)` makes `v` free only its buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(v.as_ptr(), ptr.as_ptr(), len);
            v.set_len(0);
        }
        HugeSlice { ptr, len, mapped }
    }

    /// The memory of a boxed slice (no huge pages asked for).
    pub fn from_box(b: Box<[T]>) -> Self {
        let len = b.len();
        let raw = Box::into_raw(b);
        HugeSlice {
            ptr: std::ptr::NonNull::new(raw.cast::<T>()).expect("a Box is never null"),
            len,
            mapped: 0,
        }
    }

    /// Whether the elements live in the huge-page mapping (not the heap).
    /// Whether the kernel did back it with huge pages is its choice
    /// (`AnonHugePages` in `/proc/self/smaps`).
    pub fn is_mapped(&self) -> bool {
        self.mapped > 0
    }

    /// A mapping for `len` elements if they deserve one and the kernel
    /// gives it; `None`: use the heap.
    fn mapping_for(len: usize) -> Option<(std::ptr::NonNull<T>, usize)> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        if bytes < HUGE_SLICE_MIN_BYTES || std::mem::align_of::<T>() > page_size() {
            return None;
        }
        map_huge(bytes).map(|(p, mapped)| (p.cast::<T>(), mapped))
    }
}

impl<T> std::ops::Deref for HugeSlice<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points at `len` initialised, aligned `T`s that this
        // HugeSlice owns (a boxed slice's or the mapping's), alive until
        // drop; `&self` makes this a shared borrow of them.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for HugeSlice<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        if self.mapped == 0 {
            // SAFETY: the pointer and length are those `Box::into_raw` gave
            // in `from_box`; the box is rebuilt (and freed) once.
            drop(unsafe { Box::from_raw(slice) });
        } else {
            // SAFETY: the `len` elements are initialised and ours, dropped
            // once; then the mapping `map_huge` made, `mapped` bytes, is
            // unmapped once; no reference into it outlives `self`.
            unsafe {
                std::ptr::drop_in_place(slice);
                libc::munmap(self.ptr.as_ptr().cast(), self.mapped);
            }
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for HugeSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T> Default for HugeSlice<T> {
    fn default() -> Self {
        Self::from_box(Box::default())
    }
}

/// Below this many bytes a [`SharedSlice`] stays on the heap.
pub const ARENA_MIN_BYTES: usize = 64 << 10;

/// Above this many bytes a [`SharedSlice`] gets a huge-page mapping of its
/// own instead of an arena block.
pub const ARENA_MAX_BYTES: usize = 4 << 20;

/// The size of the huge-page chunks the arena carves blocks from: a
/// chunk's pages the kernel backs only once written, so a mostly empty
/// chunk costs address space, not memory.
const ARENA_CHUNK: usize = 16 * HUGE_PAGE;

/// Free blocks of the arena by block size (bytes, a multiple of 64): the
/// addresses of blocks in huge-page chunks, reused by the next slice of
/// that size. Chunks are never unmapped (freed blocks wait for reuse).
/// Only the control plane takes this lock (building and dropping tables).
static ARENA: std::sync::Mutex<std::collections::BTreeMap<usize, Vec<usize>>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Takes a free block of `bytes` (a multiple of 64) from the arena, mapping
/// a new chunk if none is free; `None` if the kernel refused.
fn arena_take(bytes: usize) -> Option<usize> {
    let mut arena = ARENA.lock().unwrap_or_else(|e| e.into_inner());
    let free = arena.entry(bytes).or_default();
    if free.is_empty() {
        let (chunk, len) = map_huge(ARENA_CHUNK)?;
        let start = chunk.as_ptr() as usize;
        // Last block first, so that blocks are handed out in address order.
        free.extend((0..len / bytes).rev().map(|i| start + i * bytes));
    }
    free.pop()
}

/// What owns the memory of a [`SharedSlice`]; frees it when the last clone
/// goes.
enum SharedOwner<T> {
    /// A boxed slice.
    Heap(#[allow(dead_code)] Box<[T]>),
    /// A block of the arena at this address, of this many bytes.
    Arena(usize, usize),
    /// A mapping of its own ([`map_huge`]) at this address, of this many
    /// bytes.
    Mapped(usize, usize),
}

impl<T> Drop for SharedOwner<T> {
    fn drop(&mut self) {
        match *self {
            SharedOwner::Heap(_) => {}
            SharedOwner::Arena(addr, bytes) => {
                let mut arena = ARENA.lock().unwrap_or_else(|e| e.into_inner());
                arena.entry(bytes).or_default().push(addr);
            }
            SharedOwner::Mapped(addr, bytes) => {
                // SAFETY: the mapping `map_huge` made for this owner, unmapped
                // once; the last SharedSlice referring to it is being
                // dropped (the owner is dropped with it).
                unsafe { libc::munmap(addr as *mut libc::c_void, bytes) };
            }
        }
    }
}

/// An immutable slice of plain data shared by reference count (like an
/// `Arc<[T]>`: a clone shares the elements), for tables the fast path reads
/// at random: from [`ARENA_MIN_BYTES`] up to [`ARENA_MAX_BYTES`] a block of
/// an arena of huge-page chunks (blocks of one size carved from 32 MiB
/// chunks, a freed block reused by the next slice of its size), above that
/// a huge-page mapping of its own, below it (or when a mapping fails) the
/// heap. The pointer and length are kept inline: an element is one load
/// away, as in an `Arc<[T]>`.
pub struct SharedSlice<T: Plain> {
    ptr: std::ptr::NonNull<T>,
    len: usize,
    owner: std::sync::Arc<SharedOwner<T>>,
}

// SAFETY: the elements are plain data, never written after construction;
// the owner is freed once by the Arc (its Drop takes the arena's lock).
unsafe impl<T: Plain + Send + Sync> Send for SharedSlice<T> {}
// SAFETY: shared access hands out only `&[T]` of immutable plain data.
unsafe impl<T: Plain + Sync> Sync for SharedSlice<T> {}

impl<T: Plain> SharedSlice<T> {
    /// A copy of `values`.
    pub fn from_slice(values: &[T]) -> Self {
        let bytes = std::mem::size_of_val(values);
        let fits = std::mem::align_of::<T>() <= 64 && bytes >= ARENA_MIN_BYTES;
        let place = if !fits {
            None
        } else if bytes <= ARENA_MAX_BYTES {
            let class = bytes.next_multiple_of(64);
            arena_take(class).map(|addr| SharedOwner::Arena(addr, class))
        } else {
            map_huge(bytes).map(|(p, len)| SharedOwner::Mapped(p.as_ptr() as usize, len))
        };
        let Some(owner) = place else {
            let b: Box<[T]> = values.into();
            let ptr = std::ptr::NonNull::new(b.as_ptr().cast_mut()).expect("a Box is never null");
            return SharedSlice {
                ptr,
                len: values.len(),
                owner: std::sync::Arc::new(SharedOwner::Heap(b)),
            };
        };
        let addr = match owner {
            SharedOwner::Arena(addr, _) | SharedOwner::Mapped(addr, _) => addr,
            SharedOwner::Heap(_) => unreachable!("heap handled above"),
        };
        let ptr = std::ptr::NonNull::new(addr as *mut T).expect("mappings are never at 0");
        // SAFETY: the block (or mapping) holds at least `bytes` bytes, is
        // 64-byte aligned (chunks are 2 MiB-aligned, blocks multiples of
        // 64), belongs to `owner` alone, and does not overlap `values`.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), ptr.as_ptr(), values.len()) };
        SharedSlice {
            ptr,
            len: values.len(),
            owner: std::sync::Arc::new(owner),
        }
    }

    /// Whether the elements are in huge-page memory (arena or own mapping).
    pub fn is_huge(&self) -> bool {
        !matches!(*self.owner, SharedOwner::Heap(_))
    }
}

impl<T: Plain> Clone for SharedSlice<T> {
    fn clone(&self) -> Self {
        SharedSlice {
            ptr: self.ptr,
            len: self.len,
            owner: self.owner.clone(),
        }
    }
}

impl<T: Plain> std::ops::Deref for SharedSlice<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points at `len` initialised, aligned `T`s that the
        // owner keeps alive while this clone holds it; nobody writes them
        // after construction.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Plain + PartialEq> PartialEq for SharedSlice<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Plain + Eq> Eq for SharedSlice<T> {}

impl<T: Plain + std::fmt::Debug> std::fmt::Debug for SharedSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
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

    /// Counts drops of the values it is cloned from.
    #[derive(Debug)]
    struct Noisy(std::sync::Arc<std::sync::atomic::AtomicUsize>, u64);

    impl Drop for Noisy {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn a_large_huge_slice_is_mapped_aligned_and_drops_its_elements() {
        let drops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let n = 3 * HUGE_PAGE / 16 + 5;
        let mut s = HugeSlice::new(n, |i| Noisy(drops.clone(), i as u64));
        assert!(s.is_mapped());
        assert_eq!(s.as_ptr() as usize % HUGE_PAGE, 0, "2 MiB-aligned");
        assert_eq!(s.len(), n);
        assert!(s.iter().enumerate().all(|(i, v)| v.1 == i as u64));
        s[n - 1].1 = 7;
        assert_eq!(s.last().unwrap().1, 7);
        drop(s);
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), n);
    }

    #[test]
    fn a_small_huge_slice_stays_on_the_heap() {
        let s = HugeSlice::new(1000, |i| i as u32 * 3);
        assert!(!s.is_mapped());
        assert_eq!(s[999], 2997);
        let empty = HugeSlice::<u64>::new(0, |_| unreachable!());
        assert!(empty.is_empty() && !empty.is_mapped());
        assert!(HugeSlice::<u8>::default().is_empty());
        let zst = HugeSlice::new(10 << 20, |_| ());
        assert_eq!(zst.len(), 10 << 20);
        assert!(!zst.is_mapped());
    }

    #[test]
    fn from_vec_moves_the_elements_once() {
        let drops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let n = HUGE_SLICE_MIN_BYTES / 16 + 1;
        let v: Vec<Noisy> = (0..n).map(|i| Noisy(drops.clone(), i as u64)).collect();
        let s = HugeSlice::from_vec(v);
        assert!(s.is_mapped());
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert!(s.iter().enumerate().all(|(i, v)| v.1 == i as u64));
        drop(s);
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), n);
        let small = HugeSlice::from_vec(vec![1u8, 2, 3]);
        assert!(!small.is_mapped());
        assert_eq!(&small[..], &[1, 2, 3]);
    }

    #[test]
    fn a_panicking_initialiser_drops_what_was_built() {
        let drops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let d = drops.clone();
        let r = std::panic::catch_unwind(move || {
            HugeSlice::new(HUGE_PAGE / 16, |i| {
                assert!(i < 100, "boom");
                Noisy(d.clone(), i as u64)
            })
        });
        assert!(r.is_err());
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 100);
    }

    #[test]
    fn a_huge_slice_mapping_is_advised_huge() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if thp.is_empty() || thp.contains("[never]") {
            return;
        }
        let s = HugeSlice::new(2 * HUGE_PAGE / 8, |i| i as u64);
        let at = s.as_ptr() as usize;
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        // The block of the mapping holding `at`: its header line, then
        // fields up to VmFlags.
        let mut inside = false;
        let mut flags = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&at);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(f) = line.strip_prefix("VmFlags:") {
                    flags = Some(f.to_string());
                }
            }
        }
        let flags = flags.expect("the mapping is in smaps");
        assert!(
            flags.split_whitespace().any(|f| f == "hg"),
            "MADV_HUGEPAGE was applied: {flags}"
        );
    }

    #[test]
    fn shared_slices_come_from_the_arena_and_their_blocks_are_reused() {
        // A size class no other test uses (Maglev tables of the default
        // size 65537 take 262,208-byte blocks): no other test takes the
        // block freed below before it is taken again.
        let n = (300 << 10) / 4 + 3;
        let v: Vec<u32> = (0..n as u32).collect();
        let a = SharedSlice::from_slice(&v);
        assert!(a.is_huge());
        assert_eq!(&a[..], &v[..]);
        assert_eq!(a.as_ptr() as usize % 64, 0);
        let b = SharedSlice::from_slice(&v);
        let at = b.as_ptr();
        assert_ne!(a.as_ptr(), at);
        let shared = b.clone();
        assert_eq!(shared.as_ptr(), at, "a clone shares the elements");
        drop(b);
        assert_eq!(shared[5], 5, "alive while a clone is");
        drop(shared);
        let c = SharedSlice::from_slice(&v);
        assert_eq!(c.as_ptr(), at, "the freed block is reused");
        assert_eq!(c, a);
        let small = SharedSlice::from_slice(&[1u32, 2, 3]);
        assert!(!small.is_huge());
        assert_eq!(&small[..], &[1, 2, 3]);
        let big: Vec<u32> = vec![9; (ARENA_MAX_BYTES / 4) + 1];
        let big = SharedSlice::from_slice(&big);
        assert!(big.is_huge());
        assert_eq!(big.as_ptr() as usize % HUGE_PAGE, 0);
        assert!(big.iter().all(|&x| x == 9));
        let empty = SharedSlice::<u32>::from_slice(&[]);
        assert!(empty.is_empty());
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
