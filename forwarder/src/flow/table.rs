//! The per-worker flow table.
//!
//! Each worker owns one [`FlowTable`]: it remembers which target each flow
//! went to, so that an existing flow keeps its target while that target stays
//! in the routing. It never locks (one owner), never allocates after
//! [`FlowTable::new`], and never reads the clock: the caller passes the time
//! (nanoseconds of any monotonic clock, read once per burst).
//!
//! # Layout
//!
//! Bucketized open addressing: `capacity / WAYS` buckets of [`WAYS`] slots.
//! The low bits of the flow hash pick the bucket, its top 16 bits are a tag.
//! Each bucket's metadata (tags, timeout classes, last-seen times) is one
//! 64-byte cache line; keys and values sit in a parallel array and are only
//! read when a tag matches. A lookup touches one metadata line and, on a tag
//! match, one or two slot lines.
//!
//! # Time and expiry
//!
//! Times are kept in coarse ticks of 2²⁰ ns (≈ 1.05 ms) as `u32`. An entry
//! whose idle time (now − last seen) exceeds the timeout of its protocol
//! ([`FlowTimeouts`]) is expired: a lookup counts it as a miss and frees it,
//! an insert reuses its slot. The `u32` tick counter wraps every ≈ 52 days;
//! ages are computed with wrapping arithmetic, which is exact as long as
//! every entry is looked at within 2³¹ ticks (≈ 26 days) — call
//! [`FlowTable::sweep`] with a small budget between bursts, which also frees
//! expired entries in buckets no packet touches.
//!
//! # When full
//!
//! Inserting into a full bucket reuses an expired slot if there is one,
//! otherwise evicts the slot seen least recently (LRU within the bucket):
//! "when full, the oldest go first". Every eviction and expiry is counted.
//!
//! # Memory
//!
//! Both arrays are [`Region`]s: the heap ([`FlowTable::new`]), or a shared
//! mapping of a file that keeps the entries across a restart
//! ([`FlowTable::map_file`], used by [`super::persist`]). Entries are
//! `repr(C)` plain data, so a file written by one process is a valid table
//! for the next one of the same build.

use std::time::Duration;

use super::key::{FlowKey, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::io::sys::{Plain, Region};

/// Slots per bucket.
pub const WAYS: usize = 8;
/// One tick is 2^`TICK_SHIFT` nanoseconds (≈ 1.05 ms).
pub const TICK_SHIFT: u32 = 20;
/// Smallest capacity (one bucket).
pub const MIN_CAPACITY: usize = WAYS;
/// Largest capacity (2²⁸ entries).
pub const MAX_CAPACITY: usize = 1 << 28;
/// Shortest accepted idle timeout.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(2);
/// Longest accepted idle timeout (2³⁰ ticks, ≈ 13 days), so that ages stay
/// far from the tick counter's wrap.
pub const MAX_TIMEOUT: Duration = Duration::from_nanos(1 << (30 + TICK_SHIFT));

/// The protocol classes that have their own idle timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutClass {
    /// TCP.
    Tcp = 0,
    /// UDP.
    Udp = 1,
    /// SCTP.
    Sctp = 2,
    /// Any other protocol (ICMP errors, …).
    Other = 3,
}

impl TimeoutClass {
    /// The class of an IP protocol number.
    #[inline]
    pub const fn of(proto: u8) -> Self {
        match proto {
            IPPROTO_TCP => TimeoutClass::Tcp,
            IPPROTO_UDP => TimeoutClass::Udp,
            IPPROTO_SCTP => TimeoutClass::Sctp,
            _ => TimeoutClass::Other,
        }
    }

    /// Its name, for messages.
    pub const fn name(self) -> &'static str {
        match self {
            TimeoutClass::Tcp => "tcp",
            TimeoutClass::Udp => "udp",
            TimeoutClass::Sctp => "sctp",
            TimeoutClass::Other => "other",
        }
    }
}

/// Idle timeouts per protocol class.
///
/// Expiring a flow only matters when the routing changed while it was idle:
/// while the target set stays the same, Maglev picks the same target again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// TCP flows (default 300 s). lbfwd sees only the client's direction
    /// (direct server return), so it cannot follow FIN/RST: idle time only.
    pub tcp: Duration,
    /// UDP flows (default 60 s).
    pub udp: Duration,
    /// SCTP associations (default 300 s).
    pub sctp: Duration,
    /// Other protocols (default 60 s).
    pub other: Duration,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        FlowTimeouts {
            tcp: Duration::from_secs(300),
            udp: Duration::from_secs(60),
            sctp: Duration::from_secs(300),
            other: Duration::from_secs(60),
        }
    }
}

impl FlowTimeouts {
    /// The timeout of a class.
    pub const fn get(&self, class: TimeoutClass) -> Duration {
        match class {
            TimeoutClass::Tcp => self.tcp,
            TimeoutClass::Udp => self.udp,
            TimeoutClass::Sctp => self.sctp,
            TimeoutClass::Other => self.other,
        }
    }
}

/// Why a flow table could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowTableError {
    /// The capacity is not a power of two.
    #[error("flow table capacity {capacity} is not a power of two")]
    CapacityNotPowerOfTwo {
        /// The capacity asked for.
        capacity: usize,
    },
    /// The capacity is outside `MIN_CAPACITY..=MAX_CAPACITY`.
    #[error("flow table capacity {capacity} is out of range: it must be a power of two between {min} and {max}")]
    CapacityOutOfRange {
        /// The capacity asked for.
        capacity: usize,
        /// Smallest accepted capacity.
        min: usize,
        /// Largest accepted capacity.
        max: usize,
    },
    /// The file of a file-backed table could not be mapped.
    #[error("mapping the flow table file: {0}")]
    Map(String),
    /// An idle timeout is outside `MIN_TIMEOUT..=MAX_TIMEOUT`.
    #[error(
        "{class} flow timeout {timeout:?} is out of range: it must be between {min:?} and {max:?}"
    )]
    TimeoutOutOfRange {
        /// The protocol class (`tcp`, `udp`, `sctp`, `other`).
        class: &'static str,
        /// The timeout given.
        timeout: Duration,
        /// Shortest accepted timeout.
        min: Duration,
        /// Longest accepted timeout.
        max: Duration,
    },
}

/// What [`FlowTable::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// A new entry in a free (or expired) slot.
    New,
    /// The flow was there and live; its value was replaced.
    Updated,
    /// The bucket was full of live flows; the least recently seen was
    /// evicted to make room.
    Evicted,
}

/// Counters of one flow table (plain per-worker memory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowTableStats {
    /// Lookups that found a live flow.
    pub hits: u64,
    /// Lookups that found nothing (or an expired flow).
    pub misses: u64,
    /// Inserts of new flows (including into expired or evicted slots).
    pub inserts: u64,
    /// Inserts that replaced the value of a live flow.
    pub updates: u64,
    /// Live flows evicted from a full bucket.
    pub evictions: u64,
    /// Expired flows freed (by lookup, insert, remove or sweep).
    pub expirations: u64,
    /// Flows removed by [`FlowTable::remove`] or [`FlowTable::retain`].
    pub removals: u64,
}

/// What one [`FlowTable::sweep_visit`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Expired entries freed.
    pub freed: usize,
    /// The call swept the table's last bucket (and stopped there): the
    /// entries visited since the previous pass ended are every live entry
    /// of the table, once (give or take flows that came or went during the
    /// pass).
    pub pass_done: bool,
}

/// Per-bucket metadata: one cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Meta {
    /// Top 16 bits of each slot's flow hash.
    tags: [u16; WAYS],
    /// 0: free; otherwise 1 + the slot's [`TimeoutClass`].
    class: [u8; WAYS],
    /// Tick of the last lookup hit or insert.
    last: [u32; WAYS],
}

#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Slot<V> {
    key: FlowKey,
    value: V,
}

// SAFETY: `Meta` is `repr(C)` of arrays of `u16`, `u8` and `u32`: integers
// only, any bit pattern is a valid value.
#[allow(unsafe_code)]
unsafe impl Plain for Meta {}
// SAFETY: `Slot` is `repr(C)` of a `FlowKey` and a `V`, both `Plain`.
#[allow(unsafe_code)]
unsafe impl<V: Plain> Plain for Slot<V> {}

/// A fixed-capacity flow table from [`FlowKey`] to `V` (module docs).
pub struct FlowTable<V> {
    meta: Region<Meta>,
    slots: Region<Slot<V>>,
    /// In a file-backed table, its file's first page: the last word gets
    /// the time (ns) whenever a sweep pass ends (how recent the file is).
    heartbeat: Option<Region<u64>>,
    mask: u64,
    /// Idle timeouts in ticks, by [`TimeoutClass`].
    timeouts: [u32; 4],
    config: FlowTimeouts,
    len: usize,
    sweep_next: usize,
    stats: FlowTableStats,
}

/// The tick of a nanosecond time (wraps by design, see the module docs).
#[inline(always)]
fn tick(now_ns: u64) -> u32 {
    (now_ns >> TICK_SHIFT) as u32
}

/// The idle timeout in ticks of a live slot of class `class` (1 + its
/// [`TimeoutClass`]); the mask keeps the index in range without a check.
#[inline(always)]
fn timeout_of(timeouts: &[u32; 4], class: u8) -> u32 {
    timeouts[usize::from(class.wrapping_sub(1)) & 3]
}

#[inline(always)]
fn tag_of(hash: u64) -> u16 {
    (hash >> 48) as u16
}

impl<V: Copy + Default> FlowTable<V> {
    /// A table of `capacity` entries (a power of two, at least [`WAYS`]).
    /// Allocates all its memory now; nothing later.
    pub fn new(capacity: usize, timeouts: FlowTimeouts) -> Result<Self, FlowTableError> {
        Self::check_capacity(capacity)?;
        let mut ticks = [0u32; 4];
        for class in [
            TimeoutClass::Tcp,
            TimeoutClass::Udp,
            TimeoutClass::Sctp,
            TimeoutClass::Other,
        ] {
            let timeout = timeouts.get(class);
            if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&timeout) {
                return Err(FlowTableError::TimeoutOutOfRange {
                    class: class.name(),
                    timeout,
                    min: MIN_TIMEOUT,
                    max: MAX_TIMEOUT,
                });
            }
            // <= 2^30 by the range check above.
            ticks[class as usize] = timeout.as_nanos().div_ceil(1 << TICK_SHIFT) as u32;
        }
        let buckets = capacity / WAYS;
        Ok(FlowTable {
            meta: Region::from_box(huge_boxed(Meta::default(), buckets)),
            slots: Region::from_box(huge_boxed(Slot::default(), capacity)),
            heartbeat: None,
            mask: (buckets - 1) as u64,
            timeouts: ticks,
            config: timeouts,
            len: 0,
            sweep_next: 0,
            stats: FlowTableStats::default(),
        })
    }

    fn check_capacity(capacity: usize) -> Result<(), FlowTableError> {
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(FlowTableError::CapacityOutOfRange {
                capacity,
                min: MIN_CAPACITY,
                max: MAX_CAPACITY,
            });
        }
        if !capacity.is_power_of_two() {
            return Err(FlowTableError::CapacityNotPowerOfTwo { capacity });
        }
        Ok(())
    }

    /// Starts loading the bucket metadata of `hash` into the caches (first
    /// stage of a burst prefetch; a hint, no effect on the table).
    #[inline(always)]
    pub fn prefetch_bucket(&self, hash: u64) {
        crate::io::sys::prefetch(&self.meta[(hash & self.mask) as usize]);
    }

    /// Starts loading the slot that holds `key` (flow hash `hash`), when the
    /// bucket's tags say it may be there (second stage, once the bucket
    /// metadata is in the caches; a hint, no effect on the table).
    #[inline(always)]
    pub fn prefetch_entry(&self, hash: u64) {
        let b = (hash & self.mask) as usize;
        let tag = tag_of(hash);
        let meta = &self.meta[b];
        for i in 0..WAYS {
            if meta.class[i] != 0 && meta.tags[i] == tag {
                let slot = &self.slots[b * WAYS + i];
                crate::io::sys::prefetch(slot);
                // A slot may straddle two cache lines.
                crate::io::sys::prefetch(&slot.value);
            }
        }
    }

    /// The value of `key` if an entry holds it, expired or not, without
    /// touching the table or its counters (for prefetching what the value
    /// points at; [`FlowTable::lookup`] decides).
    #[inline(always)]
    pub fn peek(&self, key: &FlowKey, hash: u64) -> Option<&V> {
        let b = (hash & self.mask) as usize;
        let tag = tag_of(hash);
        let meta = &self.meta[b];
        for i in 0..WAYS {
            if meta.class[i] != 0 && meta.tags[i] == tag {
                let slot = &self.slots[b * WAYS + i];
                if slot.key == *key {
                    return Some(&slot.value);
                }
            }
        }
        None
    }

    /// The value of `key` if an entry holds it, expired or not, to change
    /// in place, without touching the entry's time or the table's counters
    /// (for a value that [`FlowTable::lookup`] just returned a copy of).
    #[inline]
    pub fn peek_mut(&mut self, key: &FlowKey, hash: u64) -> Option<&mut V> {
        let b = (hash & self.mask) as usize;
        let tag = tag_of(hash);
        let meta = &self.meta[b];
        for i in 0..WAYS {
            if meta.class[i] != 0 && meta.tags[i] == tag {
                let s = b * WAYS + i;
                if self.slots[s].key == *key {
                    return Some(&mut self.slots[s].value);
                }
            }
        }
        None
    }

    /// The live value of `key` (whose flow hash is `hash`), refreshing its
    /// last-seen time to `now` (ns). An expired entry is freed and counts as
    /// a miss.
    #[inline(always)]
    pub fn lookup(&mut self, key: &FlowKey, hash: u64, now: u64) -> Option<&mut V> {
        let b = (hash & self.mask) as usize;
        let tag = tag_of(hash);
        let now = tick(now);
        let meta = &mut self.meta[b];
        for i in 0..WAYS {
            let class = meta.class[i];
            if class == 0 || meta.tags[i] != tag {
                continue;
            }
            let s = b * WAYS + i;
            if self.slots[s].key != *key {
                continue;
            }
            // Keys are unique in a bucket (insert guarantees it): done.
            if now.wrapping_sub(meta.last[i]) > timeout_of(&self.timeouts, class) {
                meta.class[i] = 0;
                self.len -= 1;
                self.stats.expirations += 1;
                self.stats.misses += 1;
                return None;
            }
            meta.last[i] = now;
            self.stats.hits += 1;
            return Some(&mut self.slots[s].value);
        }
        self.stats.misses += 1;
        None
    }

    /// Stores `value` for `key` (flow hash `hash`), seen at `now` (ns). A
    /// live entry of the same flow is updated in place; otherwise the flow
    /// takes a free slot of its bucket, else an expired one, else the least
    /// recently seen one is evicted.
    #[inline]
    pub fn insert(&mut self, key: FlowKey, hash: u64, value: V, now: u64) -> Insert {
        let b = (hash & self.mask) as usize;
        let tag = tag_of(hash);
        let now = tick(now);
        let class = TimeoutClass::of(key.proto) as u8 + 1;
        let base = b * WAYS;
        let meta = &mut self.meta[b];
        let mut free: Option<usize> = None;
        let mut expired: Option<usize> = None;
        let mut oldest = 0usize;
        let mut oldest_age = 0u32;
        for i in 0..WAYS {
            let c = meta.class[i];
            if c == 0 {
                free = free.or(Some(i));
                continue;
            }
            let age = now.wrapping_sub(meta.last[i]);
            let is_expired = age > timeout_of(&self.timeouts, c);
            if meta.tags[i] == tag && self.slots[base + i].key == key {
                self.slots[base + i].value = value;
                meta.last[i] = now;
                meta.class[i] = class;
                if is_expired {
                    self.stats.expirations += 1;
                    self.stats.inserts += 1;
                    return Insert::New;
                }
                self.stats.updates += 1;
                return Insert::Updated;
            }
            if is_expired && expired.is_none() {
                expired = Some(i);
            }
            if age >= oldest_age {
                oldest_age = age;
                oldest = i;
            }
        }
        let (i, outcome) = match (free, expired) {
            (Some(i), _) => {
                self.len += 1;
                (i, Insert::New)
            }
            (None, Some(i)) => {
                self.stats.expirations += 1;
                (i, Insert::New)
            }
            (None, None) => {
                self.stats.evictions += 1;
                (oldest, Insert::Evicted)
            }
        };
        meta.tags[i] = tag;
        meta.class[i] = class;
        meta.last[i] = now;
        self.slots[base + i] = Slot { key, value };
        self.stats.inserts += 1;
        outcome
    }

    /// Removes `key` (flow hash `hash`); its value if it was live.
    pub fn remove(&mut self, key: &FlowKey, hash: u64, now: u64) -> Option<V> {
        let b = (hash & self.mask) as usize;
        let tag = tag_of(hash);
        let now = tick(now);
        let meta = &mut self.meta[b];
        for i in 0..WAYS {
            let class = meta.class[i];
            if class == 0 || meta.tags[i] != tag || self.slots[b * WAYS + i].key != *key {
                continue;
            }
            meta.class[i] = 0;
            self.len -= 1;
            if now.wrapping_sub(meta.last[i]) > timeout_of(&self.timeouts, class) {
                self.stats.expirations += 1;
                return None;
            }
            self.stats.removals += 1;
            return Some(self.slots[b * WAYS + i].value);
        }
        None
    }

    /// Frees the expired entries of the next `buckets` buckets (round robin
    /// over the table) and returns how many it freed. Call it between bursts
    /// with a small budget; a full pass over the table every few seconds
    /// keeps `len` close to the number of live flows.
    pub fn sweep(&mut self, now: u64, buckets: usize) -> usize {
        self.sweep_visit(now, buckets, |_, _| {}).freed
    }

    /// [`FlowTable::sweep`] that also hands the key and value of every live entry
    /// it passes to `live` (a census over one pass: see
    /// [`Swept::pass_done`]). Reads an entry's value only where its bucket
    /// metadata says it is live.
    #[inline]
    pub fn sweep_visit(
        &mut self,
        now: u64,
        buckets: usize,
        mut live: impl FnMut(&FlowKey, &V),
    ) -> Swept {
        let now_ns = now;
        let now = tick(now);
        let n = self.meta.len();
        let mut swept = Swept::default();
        for _ in 0..buckets.min(n) {
            let b = self.sweep_next;
            let meta = &mut self.meta[b];
            for i in 0..WAYS {
                let class = meta.class[i];
                if class == 0 {
                    continue;
                }
                if now.wrapping_sub(meta.last[i]) > timeout_of(&self.timeouts, class) {
                    meta.class[i] = 0;
                    swept.freed += 1;
                } else {
                    let slot = &self.slots[b * WAYS + i];
                    live(&slot.key, &slot.value);
                }
            }
            self.sweep_next = (b + 1) & (n - 1);
            if self.sweep_next == 0 {
                // A pass ends with this call, whatever the budget left: the
                // next bucket belongs to the next pass.
                swept.pass_done = true;
                if let Some(page) = &mut self.heartbeat {
                    if let Some(word) = page.last_mut() {
                        *word = now_ns;
                    }
                }
                break;
            }
        }
        self.len -= swept.freed;
        self.stats.expirations += swept.freed as u64;
        swept
    }

    /// Keeps only the entries for which `keep` returns true (off the fast
    /// path, e.g. when a load balancer is deleted). Returns how many it
    /// removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&FlowKey, &mut V) -> bool) -> usize {
        let mut removed = 0;
        for (b, meta) in self.meta.iter_mut().enumerate() {
            for i in 0..WAYS {
                if meta.class[i] != 0 {
                    let slot = &mut self.slots[b * WAYS + i];
                    if !keep(&slot.key, &mut slot.value) {
                        meta.class[i] = 0;
                        removed += 1;
                    }
                }
            }
        }
        self.len -= removed;
        self.stats.removals += removed as u64;
        removed
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        for meta in self.meta.iter_mut() {
            meta.class = [0; WAYS];
        }
        self.len = 0;
    }

    /// The live entries at `now` (ns): key, value and idle time. Off the
    /// fast path (walks the whole table).
    pub fn iter(&self, now: u64) -> impl Iterator<Item = (&FlowKey, &V, Duration)> + '_ {
        let now = tick(now);
        self.meta.iter().enumerate().flat_map(move |(b, meta)| {
            (0..WAYS).filter_map(move |i| {
                let class = meta.class[i];
                let age = now.wrapping_sub(meta.last[i]);
                if class == 0 || age > timeout_of(&self.timeouts, class) {
                    return None;
                }
                let slot = &self.slots[b * WAYS + i];
                let idle = Duration::from_nanos(u64::from(age) << TICK_SHIFT);
                Some((&slot.key, &slot.value, idle))
            })
        })
    }
}

/// Words of a file-backed table's header (the file's first 4096 bytes, see
/// [`FlowTable::map_file`]); the table writes the last one.
pub const HEADER_WORDS: usize = 512;

/// Sizes of a file-backed table's parts ([`FlowTable::array_bytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrayBytes {
    /// Bytes of the bucket metadata array.
    pub meta: usize,
    /// Bytes of the entry array.
    pub slots: usize,
    /// Bytes of one bucket's metadata.
    pub meta_size: usize,
    /// Bytes of one entry (key and value).
    pub slot_size: usize,
}

impl<V: Plain + Default> FlowTable<V> {
    /// The sizes of the two arrays of a table of `capacity` entries, and of
    /// one element of each (what a file must hold, and its layout).
    pub fn array_bytes(capacity: usize) -> ArrayBytes {
        ArrayBytes {
            meta: capacity / WAYS * std::mem::size_of::<Meta>(),
            slots: capacity * std::mem::size_of::<Slot<V>>(),
            meta_size: std::mem::size_of::<Meta>(),
            slot_size: std::mem::size_of::<Slot<V>>(),
        }
    }

    /// A table of `capacity` entries whose arrays are shared mappings of
    /// `file`: the bucket metadata from byte `meta_offset`, the entries
    /// from `slots_offset` (page multiples, sizes [`FlowTable::array_bytes`],
    /// inside the file), and the file's first [`HEADER_WORDS`] words as its
    /// header ([`FlowTable::sweep_visit`] writes the time of each pass's end
    /// to the last one, the heartbeat). The file's entries become the table's: zeroes are an
    /// empty table; what an earlier process of the same build left is that
    /// table (the caller checked the layout). Counters start at zero.
    pub fn map_file(
        file: &std::fs::File,
        capacity: usize,
        timeouts: FlowTimeouts,
        meta_offset: u64,
        slots_offset: u64,
    ) -> Result<Self, FlowTableError> {
        Self::check_capacity(capacity)?;
        let mut table = Self::new(MIN_CAPACITY, timeouts)?;
        let mapped = |e: std::io::Error| FlowTableError::Map(e.to_string());
        table.meta = Region::map_shared(file, meta_offset, capacity / WAYS).map_err(mapped)?;
        table.slots = Region::map_shared(file, slots_offset, capacity).map_err(mapped)?;
        table.heartbeat = Some(Region::map_shared(file, 0, HEADER_WORDS).map_err(mapped)?);
        table.mask = (capacity / WAYS - 1) as u64;
        table.len = table
            .meta
            .iter()
            .map(|m| m.class.iter().filter(|&&c| c != 0).count())
            .sum();
        Ok(table)
    }
}

/// `n` copies of `value` in memory the kernel is asked to back with huge
/// pages (fewer TLB misses on the random accesses of a large table).
fn huge_boxed<T: Clone>(value: T, n: usize) -> Box<[T]> {
    let mut v = Vec::with_capacity(n);
    // Before the first write, so the pages are faulted in huge.
    crate::io::sys::advise_huge_pages(&mut v);
    v.resize(n, value);
    v.into_boxed_slice()
}

impl<V> FlowTable<V> {
    /// Entries held, including expired ones not freed yet.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fixed capacity.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The idle timeouts the table was created with.
    pub fn timeouts(&self) -> &FlowTimeouts {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &FlowTableStats {
        &self.stats
    }

    /// Bytes of memory the table holds (all allocated at creation).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val::<[Meta]>(&self.meta)
            + std::mem::size_of_val::<[Slot<V>]>(&self.slots)
    }

    /// Whether its entries live in a file mapping (they survive a restart).
    pub fn is_file_backed(&self) -> bool {
        self.slots.is_mapped()
    }
}

impl<V> std::fmt::Debug for FlowTable<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable")
            .field("capacity", &self.slots.len())
            .field("len", &self.len)
            .field("timeouts", &self.config)
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
mod tests;
