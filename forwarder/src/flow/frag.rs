//! The fragment tracker: every fragment of a datagram follows its first.
//!
//! Only the first fragment (offset 0) carries the transport header, so only
//! it can be filtered by port. The tracker remembers, per datagram, what
//! happened to the first fragment, so that the later fragments:
//!
//! - follow it to the same target when it was accepted;
//! - are dropped when it was rejected (fragments never let a packet past the
//!   port filter);
//! - are **held** — a copy in a bounded, pre-allocated stash — when they
//!   arrive before it, and released in arrival order once it is accepted
//!   ([`FragTracker::take_held`]), or dropped when it is rejected or the
//!   datagram times out.
//!
//! A datagram is identified by a [`FragKey`]: source, destination, protocol,
//! fragment id (the IPv4 id widened to 32 bits, or the IPv6 fragment header's
//! id) and the network. Its entry ends when all its bytes were seen (the
//! last fragment gives the total length), when it times out (counted from
//! its creation), or when it is evicted because its bucket is full (the
//! oldest entry goes). Everything is allocated at creation; nothing is
//! allocated, locked or logged per packet, and every drop is counted
//! ([`FragStats`]).
//!
//! Completion is judged by summing the payload lengths seen: duplicated
//! fragments can end an entry early; a fragment arriving after that is held
//! as if its first fragment had not been seen and is dropped on timeout. That
//! costs the datagram, never the port filter.

use std::time::Duration;

use super::hash::xxh3_64_17to128;
use super::key::FlowKey;

/// Slots per bucket of the entry table.
pub const WAYS: usize = 4;

/// No stash slot.
const NONE: u32 = u32::MAX;

/// One fragmented datagram's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FragKey {
    /// Source address (IPv4-mapped for IPv4, as in [`FlowKey`]).
    pub src: [u8; 16],
    /// Destination address (IPv4-mapped for IPv4).
    pub dst: [u8; 16],
    /// The network (VNI).
    pub network: u32,
    /// The fragment id: IPv4 identification (16 bits, widened) or IPv6
    /// fragment header identification (32 bits).
    pub id: u32,
    /// IP protocol number (of the fragmented payload).
    pub proto: u8,
}

impl FragKey {
    /// The key of a datagram from the fields of its flow's 3-tuple key
    /// (ports ignored) and its fragment id.
    #[inline]
    pub const fn of_flow(flow: &FlowKey, id: u32) -> Self {
        FragKey {
            src: flow.src,
            dst: flow.dst,
            network: flow.network,
            id,
            proto: flow.proto,
        }
    }

    /// The tracker's hash of the key: XXH3-64 (seed 0) over src ‖ dst ‖ id
    /// (big-endian) ‖ network (big-endian) ‖ proto. Local to one worker, so
    /// nothing outside depends on it.
    #[inline]
    pub fn tracker_hash(&self) -> u64 {
        let mut b = [0u8; 41];
        b[0..16].copy_from_slice(&self.src);
        b[16..32].copy_from_slice(&self.dst);
        b[32..36].copy_from_slice(&self.id.to_be_bytes());
        b[36..40].copy_from_slice(&self.network.to_be_bytes());
        b[40] = self.proto;
        xxh3_64_17to128(&b, 0)
    }
}

/// Where one fragment sits in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragInfo {
    /// Offset of its payload in the datagram, in bytes.
    pub offset: u32,
    /// Its payload length in bytes (after the IP header and, for IPv6, the
    /// fragment header).
    pub len: u32,
    /// The more-fragments flag: false on the last fragment.
    pub more: bool,
}

/// Sizes and timeout of a [`FragTracker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragConfig {
    /// Datagrams tracked at once (a power of two, at least [`WAYS`]).
    pub entries: usize,
    /// Stash slots for fragments that arrive before their first fragment
    /// (0: such fragments are dropped).
    pub held_slots: usize,
    /// Bytes per stash slot: the largest fragment (whole frame as the caller
    /// stores it) that can be held.
    pub slot_size: usize,
    /// Most fragments held for one datagram.
    pub max_held_per_entry: u32,
    /// How long a datagram is tracked after its first fragment of any kind
    /// arrived.
    pub timeout: Duration,
}

impl Default for FragConfig {
    /// 4096 datagrams, 512 slots of 2048 bytes (1 MiB), 64 held per
    /// datagram (a 64 KiB datagram in 1500-byte fragments has 45), 2 s.
    fn default() -> Self {
        FragConfig {
            entries: 4096,
            held_slots: 512,
            slot_size: 2048,
            max_held_per_entry: 64,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Largest accepted [`FragConfig::entries`].
pub const MAX_ENTRIES: usize = 1 << 24;
/// Largest accepted [`FragConfig::held_slots`].
pub const MAX_HELD_SLOTS: usize = 1 << 20;
/// Smallest accepted [`FragConfig::slot_size`].
pub const MIN_SLOT_SIZE: usize = 64;
/// Largest accepted [`FragConfig::slot_size`].
pub const MAX_SLOT_SIZE: usize = 65_536;
/// Shortest accepted [`FragConfig::timeout`].
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// Longest accepted [`FragConfig::timeout`] (RFC 8200's reassembly limit).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a fragment tracker could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragError {
    /// `entries` is not a power of two in range.
    #[error("fragment tracker entries {entries} must be a power of two between {min} and {max}")]
    Entries {
        /// The value given.
        entries: usize,
        /// Smallest accepted.
        min: usize,
        /// Largest accepted.
        max: usize,
    },
    /// `held_slots` is too large.
    #[error("fragment tracker held slots {held_slots} is more than {max}")]
    HeldSlots {
        /// The value given.
        held_slots: usize,
        /// Largest accepted.
        max: usize,
    },
    /// `slot_size` is out of range.
    #[error("fragment tracker slot size {slot_size} bytes must be between {min} and {max}")]
    SlotSize {
        /// The value given.
        slot_size: usize,
        /// Smallest accepted.
        min: usize,
        /// Largest accepted.
        max: usize,
    },
    /// `max_held_per_entry` is 0 while slots exist.
    #[error(
        "fragment tracker max held per datagram must be at least 1 when held slots are configured"
    )]
    MaxHeldPerEntry,
    /// `timeout` is out of range.
    #[error("fragment timeout {timeout:?} must be between {min:?} and {max:?}")]
    Timeout {
        /// The value given.
        timeout: Duration,
        /// Shortest accepted.
        min: Duration,
        /// Longest accepted.
        max: Duration,
    },
}

/// Why a non-first fragment was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FragDrop {
    /// Its first fragment was rejected by the filter.
    FirstRejected,
    /// It came before its first fragment and the stash is full (or has no
    /// slots).
    StashFull,
    /// It came before its first fragment and is larger than a stash slot.
    TooLarge,
    /// It came before its first fragment and its datagram already holds
    /// `max_held_per_entry` fragments.
    HeldLimit,
}

/// What to do with a non-first fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Later<V> {
    /// Its first fragment was accepted: send it where that one went.
    Forward(V),
    /// Its first fragment has not been seen: a copy is held; the caller's
    /// buffer can be reused.
    Held,
    /// Drop it, for this reason.
    Drop(FragDrop),
}

/// Counters of one fragment tracker (plain per-worker memory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragStats {
    /// Datagrams that got an entry.
    pub entries_created: u64,
    /// Entries that ended because all bytes were seen.
    pub entries_completed: u64,
    /// Entries that ended by timeout.
    pub entries_expired: u64,
    /// Entries evicted (oldest of a full bucket) before they ended.
    pub entries_evicted: u64,
    /// Non-first fragments forwarded after an accepted first fragment.
    pub forwarded: u64,
    /// Non-first fragments dropped because their first was rejected.
    pub dropped_first_rejected: u64,
    /// Non-first fragments that could not be held: stash full.
    pub dropped_stash_full: u64,
    /// Non-first fragments that could not be held: larger than a slot.
    pub dropped_too_large: u64,
    /// Non-first fragments that could not be held: per-datagram limit.
    pub dropped_held_limit: u64,
    /// Fragments held (copied into the stash).
    pub held: u64,
    /// Held fragments released after their first was accepted.
    pub released: u64,
    /// Held fragments dropped because their first was rejected.
    pub held_dropped_rejected: u64,
    /// Held fragments dropped because their entry timed out or was evicted.
    pub held_dropped_expired: u64,
}

/// What is known about one datagram.
#[derive(Clone, Copy, Debug, Default)]
enum State<V> {
    /// No datagram in this slot.
    #[default]
    Free,
    /// Later fragments seen, first fragment not yet.
    Pending,
    /// First fragment accepted, sent to this.
    Accepted(V),
    /// First fragment rejected.
    Rejected,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry<V> {
    key: FragKey,
    state: State<V>,
    /// Creation time (ns).
    created: u64,
    /// Payload bytes seen (held or passed).
    seen: u32,
    /// Total payload length, once the last fragment was seen.
    end: Option<u32>,
    /// Held fragments: first and last stash slot, and how many.
    head: u32,
    tail: u32,
    held: u32,
}

impl<V> Entry<V> {
    fn is_free(&self) -> bool {
        matches!(self.state, State::Free)
    }

    fn record(&mut self, info: FragInfo) {
        self.seen = self.seen.saturating_add(info.len);
        if !info.more {
            self.end = Some(info.offset.saturating_add(info.len));
        }
    }

    fn complete(&self) -> bool {
        self.end.is_some_and(|end| self.seen >= end)
    }
}

/// Why an entry ends (for the counters).
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Completed,
    Expired,
    Evicted,
}

/// The bounded fragment tracker of one worker (module docs). `V` is what
/// the caller remembers about an accepted first fragment (e.g. load
/// balancer and target).
pub struct FragTracker<V> {
    entries: Box<[Entry<V>]>,
    bucket_mask: usize,
    stash: Box<[u8]>,
    slot_len: Box<[u32]>,
    slot_next: Box<[u32]>,
    free_head: u32,
    free_slots: usize,
    config: FragConfig,
    timeout_ns: u64,
    len: usize,
    sweep_next: usize,
    stats: FragStats,
}

impl<V: Copy + Default> FragTracker<V> {
    /// A tracker with the sizes of `config`; allocates everything now.
    pub fn new(config: FragConfig) -> Result<Self, FragError> {
        let c = config;
        if !(WAYS..=MAX_ENTRIES).contains(&c.entries) || !c.entries.is_power_of_two() {
            return Err(FragError::Entries {
                entries: c.entries,
                min: WAYS,
                max: MAX_ENTRIES,
            });
        }
        if c.held_slots > MAX_HELD_SLOTS {
            return Err(FragError::HeldSlots {
                held_slots: c.held_slots,
                max: MAX_HELD_SLOTS,
            });
        }
        if !(MIN_SLOT_SIZE..=MAX_SLOT_SIZE).contains(&c.slot_size) {
            return Err(FragError::SlotSize {
                slot_size: c.slot_size,
                min: MIN_SLOT_SIZE,
                max: MAX_SLOT_SIZE,
            });
        }
        if c.held_slots > 0 && c.max_held_per_entry == 0 {
            return Err(FragError::MaxHeldPerEntry);
        }
        if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&c.timeout) {
            return Err(FragError::Timeout {
                timeout: c.timeout,
                min: MIN_TIMEOUT,
                max: MAX_TIMEOUT,
            });
        }
        // Free list: every slot, in order.
        let slot_next: Box<[u32]> = (0..c.held_slots)
            .map(|i| {
                if i + 1 < c.held_slots {
                    (i + 1) as u32
                } else {
                    NONE
                }
            })
            .collect();
        Ok(FragTracker {
            entries: vec![Entry::default(); c.entries].into_boxed_slice(),
            bucket_mask: c.entries / WAYS - 1,
            stash: vec![0u8; c.held_slots * c.slot_size].into_boxed_slice(),
            slot_len: vec![0u32; c.held_slots].into_boxed_slice(),
            slot_next,
            free_head: if c.held_slots > 0 { 0 } else { NONE },
            free_slots: c.held_slots,
            config: c,
            // <= 60 s by the check above.
            timeout_ns: c.timeout.as_nanos() as u64,
            len: 0,
            sweep_next: 0,
            stats: FragStats::default(),
        })
    }

    /// The first fragment (offset 0) of `key`'s datagram was filtered:
    /// `Some(value)` if it was accepted (and sent to `value`), `None` if it
    /// was rejected. Later fragments follow that decision. Returns how many
    /// held fragments now wait to be sent after it with
    /// [`take_held`](Self::take_held) (0 when rejected: those are dropped and
    /// counted).
    pub fn first_fragment(
        &mut self,
        key: &FragKey,
        info: FragInfo,
        decision: Option<V>,
        now: u64,
    ) -> u32 {
        let i = match self.find(key, now) {
            Some(i) => i,
            None => self.create(key, now),
        };
        let e = &mut self.entries[i];
        e.record(info);
        match decision {
            Some(v) => {
                e.state = State::Accepted(v);
                let held = e.held;
                if held == 0 && e.complete() {
                    self.end(i, End::Completed);
                }
                held
            }
            None => {
                e.state = State::Rejected;
                let dropped = self.drop_held(i);
                self.stats.held_dropped_rejected += u64::from(dropped);
                if self.entries[i].complete() {
                    self.end(i, End::Completed);
                }
                0
            }
        }
    }

    /// A non-first fragment (offset > 0) of `key`'s datagram arrived;
    /// `frame` is what to hold if it came before its first fragment (the
    /// caller decides what it stores: usually the whole frame).
    #[inline]
    pub fn later_fragment(
        &mut self,
        key: &FragKey,
        info: FragInfo,
        frame: &[u8],
        now: u64,
    ) -> Later<V> {
        let i = match self.find(key, now) {
            Some(i) => i,
            None => {
                // Check that it can be held before taking an entry for it.
                if let Some(why) = self.cannot_hold(frame, 0) {
                    return self.dropped(why);
                }
                self.create(key, now)
            }
        };
        match self.entries[i].state {
            State::Accepted(v) => {
                self.entries[i].record(info);
                if self.entries[i].complete() && self.entries[i].held == 0 {
                    self.end(i, End::Completed);
                }
                self.stats.forwarded += 1;
                Later::Forward(v)
            }
            State::Rejected => {
                self.entries[i].record(info);
                if self.entries[i].complete() {
                    self.end(i, End::Completed);
                }
                self.dropped(FragDrop::FirstRejected)
            }
            State::Pending | State::Free => {
                if let Some(why) = self.cannot_hold(frame, self.entries[i].held) {
                    return self.dropped(why);
                }
                self.hold(i, frame);
                self.entries[i].record(info);
                Later::Held
            }
        }
    }

    /// Withdraws the acceptance of `key`'s first fragment, for when it was
    /// accepted by the filter but could not be sent after all (e.g. too big
    /// for the underlay): its later fragments are dropped from now on, and
    /// the fragments it holds are dropped (counted as rejected). Returns how
    /// many held fragments were dropped. Does not count the first fragment's
    /// bytes again; a datagram without an entry is left alone.
    pub fn reject(&mut self, key: &FragKey) -> u32 {
        let Some(i) = self.position(key) else {
            return 0;
        };
        self.entries[i].state = State::Rejected;
        let dropped = self.drop_held(i);
        self.stats.held_dropped_rejected += u64::from(dropped);
        if self.entries[i].complete() {
            self.end(i, End::Completed);
        }
        dropped
    }

    /// Hands the fragments held for `key`'s datagram to `f`, in arrival
    /// order, and frees their slots; returns how many. Only after its first
    /// fragment was accepted (otherwise nothing is released).
    pub fn take_held(&mut self, key: &FragKey, mut f: impl FnMut(&[u8])) -> u32 {
        let Some(i) = self.position(key) else {
            return 0;
        };
        if !matches!(self.entries[i].state, State::Accepted(_)) {
            return 0;
        }
        let mut n = 0;
        let mut s = self.entries[i].head;
        while s != NONE {
            let start = s as usize * self.config.slot_size;
            let len = self.slot_len[s as usize] as usize;
            f(&self.stash[start..start + len]);
            let next = self.slot_next[s as usize];
            self.free_slot(s);
            s = next;
            n += 1;
        }
        let e = &mut self.entries[i];
        e.head = NONE;
        e.tail = NONE;
        e.held = 0;
        self.stats.released += u64::from(n);
        if self.entries[i].complete() {
            self.end(i, End::Completed);
        }
        n
    }

    /// Ends the timed-out entries of the next `buckets` buckets (round
    /// robin), dropping what they held; returns how many entries it ended.
    /// Call it between bursts: it is what frees the stash slots of datagrams
    /// whose first fragment never comes.
    pub fn sweep(&mut self, now: u64, buckets: usize) -> usize {
        let n = self.entries.len() / WAYS;
        let mut ended = 0;
        for _ in 0..buckets.min(n) {
            for i in self.sweep_next * WAYS..(self.sweep_next + 1) * WAYS {
                if !self.entries[i].is_free() && self.expired(i, now) {
                    self.end(i, End::Expired);
                    ended += 1;
                }
            }
            self.sweep_next = (self.sweep_next + 1) & self.bucket_mask;
        }
        ended
    }

    /// The counters.
    pub fn stats(&self) -> &FragStats {
        &self.stats
    }

    /// Datagrams tracked (including timed-out ones not swept yet).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no datagram is tracked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free stash slots.
    pub fn free_slots(&self) -> usize {
        self.free_slots
    }

    /// The configuration it was created with.
    pub fn config(&self) -> &FragConfig {
        &self.config
    }

    fn bucket(&self, key: &FragKey) -> usize {
        (key.tracker_hash() as usize & self.bucket_mask) * WAYS
    }

    /// The entry of `key`, whatever its age.
    fn position(&self, key: &FragKey) -> Option<usize> {
        let b = self.bucket(key);
        (b..b + WAYS).find(|&i| !self.entries[i].is_free() && self.entries[i].key == *key)
    }

    /// The live entry of `key`; a timed-out one is ended first.
    #[inline]
    fn find(&mut self, key: &FragKey, now: u64) -> Option<usize> {
        let i = self.position(key)?;
        if self.expired(i, now) {
            self.end(i, End::Expired);
            return None;
        }
        Some(i)
    }

    fn expired(&self, i: usize, now: u64) -> bool {
        now.saturating_sub(self.entries[i].created) > self.timeout_ns
    }

    /// A new pending entry for `key`: a free slot of its bucket, else a
    /// timed-out one, else the oldest is evicted.
    fn create(&mut self, key: &FragKey, now: u64) -> usize {
        let b = self.bucket(key);
        let mut pick = None;
        let mut oldest = b;
        for i in b..b + WAYS {
            if self.entries[i].is_free() {
                pick = Some(i);
                break;
            }
            if self.entries[oldest].created > self.entries[i].created {
                oldest = i;
            }
        }
        let i = match pick {
            Some(i) => i,
            None if self.expired(oldest, now) => {
                self.end(oldest, End::Expired);
                oldest
            }
            None => {
                self.end(oldest, End::Evicted);
                oldest
            }
        };
        self.entries[i] = Entry {
            key: *key,
            state: State::Pending,
            created: now,
            seen: 0,
            end: None,
            head: NONE,
            tail: NONE,
            held: 0,
        };
        self.len += 1;
        self.stats.entries_created += 1;
        i
    }

    /// Ends entry `i`, dropping (and counting) what it holds.
    fn end(&mut self, i: usize, why: End) {
        let dropped = self.drop_held(i);
        match why {
            End::Completed => self.stats.entries_completed += 1,
            End::Expired => self.stats.entries_expired += 1,
            End::Evicted => self.stats.entries_evicted += 1,
        }
        if why != End::Completed {
            self.stats.held_dropped_expired += u64::from(dropped);
        }
        self.entries[i].state = State::Free;
        self.len -= 1;
    }

    /// Frees the slots entry `i` holds; returns how many.
    fn drop_held(&mut self, i: usize) -> u32 {
        let mut s = self.entries[i].head;
        let mut n = 0;
        while s != NONE {
            let next = self.slot_next[s as usize];
            self.free_slot(s);
            s = next;
            n += 1;
        }
        let e = &mut self.entries[i];
        e.head = NONE;
        e.tail = NONE;
        e.held = 0;
        n
    }

    fn cannot_hold(&self, frame: &[u8], held: u32) -> Option<FragDrop> {
        if frame.len() > self.config.slot_size {
            Some(FragDrop::TooLarge)
        } else if held >= self.config.max_held_per_entry {
            Some(FragDrop::HeldLimit)
        } else if self.free_head == NONE {
            Some(FragDrop::StashFull)
        } else {
            None
        }
    }

    fn dropped(&mut self, why: FragDrop) -> Later<V> {
        let s = &mut self.stats;
        match why {
            FragDrop::FirstRejected => s.dropped_first_rejected += 1,
            FragDrop::StashFull => s.dropped_stash_full += 1,
            FragDrop::TooLarge => s.dropped_too_large += 1,
            FragDrop::HeldLimit => s.dropped_held_limit += 1,
        }
        Later::Drop(why)
    }

    /// Copies `frame` into a free slot appended to entry `i`'s list (the
    /// caller checked with `cannot_hold`).
    fn hold(&mut self, i: usize, frame: &[u8]) {
        let s = self.free_head;
        self.free_head = self.slot_next[s as usize];
        self.free_slots -= 1;
        let start = s as usize * self.config.slot_size;
        self.stash[start..start + frame.len()].copy_from_slice(frame);
        // frame.len() <= slot_size <= 65536.
        self.slot_len[s as usize] = frame.len() as u32;
        self.slot_next[s as usize] = NONE;
        let e = &mut self.entries[i];
        if e.tail == NONE {
            e.head = s;
        } else {
            self.slot_next[e.tail as usize] = s;
        }
        e.tail = s;
        e.held += 1;
        self.stats.held += 1;
    }

    fn free_slot(&mut self, s: u32) {
        self.slot_next[s as usize] = self.free_head;
        self.free_head = s;
        self.free_slots += 1;
    }
}

impl<V> std::fmt::Debug for FragTracker<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FragTracker")
            .field("config", &self.config)
            .field("len", &self.len)
            .field("free_slots", &self.free_slots)
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
mod tests;
