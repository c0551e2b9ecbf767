//! Maglev consistent hashing: table build and lookup.
//!
//! This is the lookup table of "Maglev: A Fast and Reliable Software Network
//! Load Balancer" (Eisenbud et al., NSDI 2016), section 3.4, with weights.
//! One table per load balancer; the control plane builds it off the fast
//! path and publishes it, a worker only calls [`MaglevTable::pick`].
//!
//! # Specification
//!
//! Everything below is fixed, so that two lbfwd instances with the same
//! destinations build the same table and pick the same target per flow.
//!
//! - **Table size** `M`: a prime in `MIN_TABLE_SIZE..=MAX_TABLE_SIZE`
//!   (default [`DEFAULT_TABLE_SIZE`] = 65537; 655373 for large target sets).
//!   The paper recommends `M` at least 100 times the number of targets.
//! - **Identity** of a destination: the bytes `name ‖ 0x00 ‖ uid` (UTF-8).
//! - **Permutation** (paper, section 3.4): `offset = XXH64(identity, 0) mod M`,
//!   `skip = XXH64(identity, 1) mod (M − 1) + 1`; the destination's preference
//!   list is `(offset + j·skip) mod M` for `j = 0, 1, …` (XXH64 as in
//!   [`crate::flow::xxh64`]).
//! - **Turns**: destinations with weight 0 take no part (draining: no new
//!   flows). The others are ordered by `(name, uid)`; the input order does
//!   not matter. Destination `i` with weight `wᵢ` takes its `k`-th turn
//!   (`k = 1, 2, …`) at virtual time `k / wᵢ`; turns happen in order of
//!   virtual time, ties in `(name, uid)` order. In a turn, the destination
//!   claims the next free slot of its preference list. The build ends when
//!   all `M` slots are claimed. With equal weights this is exactly the
//!   paper's round robin; with weights a destination claims a share of
//!   `wᵢ / Σw` of the slots (up to rounding).
//! - **Lookup**: the slot of a flow hash `h` is `⌊h · M / 2⁶⁴⌋` (Lemire's
//!   multiply-shift range reduction: one multiplication instead of a
//!   division; it uses the high bits of `h`). The slot holds the index of the
//!   destination in the list given to [`MaglevTable::build`].
//!
//! # Cost
//!
//! A build claims `M` slots; claiming a slot walks the destination's
//! preference list past taken slots, `O(M log M)` steps in total for equal
//! weights (the paper's analysis). The turn order repeats with a period of
//! `Σw / gcd(w)` turns; it is computed with a heap for one period
//! (`O(P log N)`, `P = min(period, M)`) and then replayed. A lookup is one
//! multiplication and one load.

use lbfwd_config::model::Destination;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::flow::xxh64;
use crate::io::sys::SharedSlice;

/// Default table size (a prime), as in the Maglev paper.
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
/// Smallest accepted table size.
pub const MIN_TABLE_SIZE: u32 = 3;
/// Largest accepted table size (a table of this size takes 64 MiB).
pub const MAX_TABLE_SIZE: u32 = 1 << 24;
/// XXH64 seed of the permutation offset.
pub const OFFSET_SEED: u64 = 0;
/// XXH64 seed of the permutation skip.
pub const SKIP_SEED: u64 = 1;

/// One destination as the table builder sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaglevBackend<'a> {
    /// The destination's name (first part of its identity).
    pub name: &'a str,
    /// The destination's uid (second part of its identity; may be empty).
    pub uid: &'a str,
    /// Its weight; 0 keeps it out of the table (draining).
    pub weight: u32,
}

impl<'a> MaglevBackend<'a> {
    /// The view of a resolved model destination.
    pub fn from_destination(d: &'a Destination) -> Self {
        MaglevBackend {
            name: &d.name,
            uid: &d.uid,
            weight: d.weight,
        }
    }

    /// The identity bytes the permutation is derived from:
    /// `name ‖ 0x00 ‖ uid`.
    pub fn identity(&self) -> Vec<u8> {
        let mut id = Vec::with_capacity(self.name.len() + 1 + self.uid.len());
        id.extend_from_slice(self.name.as_bytes());
        id.push(0);
        id.extend_from_slice(self.uid.as_bytes());
        id
    }
}

/// Why a Maglev table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// The size is outside `MIN_TABLE_SIZE..=MAX_TABLE_SIZE`.
    #[error(
        "Maglev table size {size} is out of range: it must be a prime between {min} and {max}"
    )]
    SizeOutOfRange {
        /// The size asked for.
        size: u32,
        /// Smallest accepted size.
        min: u32,
        /// Largest accepted size.
        max: u32,
    },
    /// The size is not a prime.
    #[error(
        "Maglev table size {size} is not a prime number (use a prime such as 65537 or 655373)"
    )]
    SizeNotPrime {
        /// The size asked for.
        size: u32,
    },
    /// Two destinations have the same identity.
    #[error("destination {name:?} with uid {uid:?} is listed more than once")]
    DuplicateDestination {
        /// Its name.
        name: String,
        /// Its uid.
        uid: String,
    },
    /// More destinations with a non-zero weight than slots.
    #[error(
        "Maglev table size {size} is smaller than the number of destinations with a \
         non-zero weight ({destinations}); use a larger prime table size"
    )]
    TooManyDestinations {
        /// The table size.
        size: u32,
        /// Destinations with a non-zero weight.
        destinations: usize,
    },
}

/// A built Maglev lookup table. Immutable; shared read-only by all workers,
/// and by the table versions in which its destinations stay the same (a
/// clone shares the entries). The entries of tables of 64 KiB and more are
/// in huge pages (an arena of huge-page chunks, [`SharedSlice`]): a new
/// flow's pick reads one at random among all load balancers' tables, which
/// at 1000 load balancers span 256 MiB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaglevTable {
    /// The prime size `M` asked for.
    size: u32,
    /// `M` destination indexes, or empty when no destination has a weight.
    entries: SharedSlice<u32>,
    /// How many destinations the input list had.
    destinations: u32,
}

/// Whether `n` is a prime (trial division; `n` < 2³² so at most 2¹⁶ steps).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    // Every prime above 3 is 6k ± 1; the other residues are multiples of 2
    // or 3.
    if !matches!(n % 6, 1 | 5) {
        return false;
    }
    let n = u64::from(n);
    let mut d = 5u64;
    while d * d <= n {
        if n % d == 0 || n % (d + 2) == 0 {
            return false;
        }
        d += 6;
    }
    true
}

/// Checks a table size: in range and prime.
pub fn check_size(size: u32) -> Result<(), MaglevError> {
    if !(MIN_TABLE_SIZE..=MAX_TABLE_SIZE).contains(&size) {
        return Err(MaglevError::SizeOutOfRange {
            size,
            min: MIN_TABLE_SIZE,
            max: MAX_TABLE_SIZE,
        });
    }
    if !is_prime(size) {
        return Err(MaglevError::SizeNotPrime { size });
    }
    Ok(())
}

/// A slot no destination claimed yet (only during the build).
const FREE: u32 = u32::MAX;

/// Where a destination is in its preference list.
struct Permutation {
    /// The next slot to try.
    next: u32,
    /// The step between preferences, in `1..M`.
    skip: u32,
    /// The destination's index in the input list.
    index: u32,
}

/// One pending turn of a destination in the weighted turn order.
#[derive(PartialEq, Eq)]
struct Turn {
    /// The turn's number `k` (1-based); the turn is at virtual time `k / w`.
    k: u64,
    /// The destination's weight `w` (> 0).
    w: u64,
    /// The destination's position in identity order (tie break).
    rank: u32,
}

impl Ord for Turn {
    /// Reversed so that `BinaryHeap` (a max-heap) pops the earliest turn.
    fn cmp(&self, other: &Self) -> Ordering {
        // self.k / self.w < other.k / other.w  <=>  self.k * other.w < other.k * self.w.
        // k <= 2^24 + 1 and w < 2^32, so the products fit in u64.
        (other.k * self.w)
            .cmp(&(self.k * other.w))
            .then(other.rank.cmp(&self.rank))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The weighted turn order: yields destination ranks in order of virtual
/// time `k / w`, ties by rank.
struct TurnOrder {
    heap: BinaryHeap<Turn>,
}

impl TurnOrder {
    /// `weights` by rank, all > 0.
    fn new(weights: &[u64]) -> Self {
        TurnOrder {
            heap: weights
                .iter()
                .enumerate()
                .map(|(rank, &w)| Turn {
                    k: 1,
                    w,
                    rank: rank as u32,
                })
                .collect(),
        }
    }

    /// The rank of the destination whose turn is next.
    fn next_rank(&mut self) -> u32 {
        let Some(mut turn) = self.heap.peek_mut() else {
            // Unreachable: built from at least one destination, never shrinks.
            return 0;
        };
        let rank = turn.rank;
        // Dropping the `PeekMut` restores the heap order.
        turn.k += 1;
        rank
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl MaglevTable {
    /// Builds the table of `backends` with `size` slots (see the module
    /// documentation for the exact algorithm). Slots hold indexes into
    /// `backends`. Off the fast path: allocates `size` entries.
    pub fn build(backends: &[MaglevBackend<'_>], size: u32) -> Result<Self, MaglevError> {
        Self::build_inner(backends, size, false)
    }

    /// Builds the table of a load balancer's resolved destinations; slots
    /// hold indexes into `destinations`.
    pub fn from_destinations(destinations: &[Destination], size: u32) -> Result<Self, MaglevError> {
        let backends: Vec<MaglevBackend<'_>> = destinations
            .iter()
            .map(MaglevBackend::from_destination)
            .collect();
        Self::build(&backends, size)
    }

    /// The table of no destinations: every pick says "no target".
    pub fn empty(size: u32) -> Result<Self, MaglevError> {
        Self::build(&[], size)
    }

    fn build_inner(
        backends: &[MaglevBackend<'_>],
        size: u32,
        heap_only: bool,
    ) -> Result<Self, MaglevError> {
        check_size(size)?;
        let destinations =
            u32::try_from(backends.len()).map_err(|_| MaglevError::TooManyDestinations {
                size,
                destinations: backends.len(),
            })?;

        // Identity order, so that the input order does not matter.
        let mut order: Vec<u32> = (0..destinations).collect();
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (&backends[a as usize], &backends[b as usize]);
            (a.name, a.uid).cmp(&(b.name, b.uid))
        });
        for pair in order.windows(2) {
            let (a, b) = (&backends[pair[0] as usize], &backends[pair[1] as usize]);
            if (a.name, a.uid) == (b.name, b.uid) {
                return Err(MaglevError::DuplicateDestination {
                    name: a.name.to_owned(),
                    uid: a.uid.to_owned(),
                });
            }
        }
        order.retain(|&i| backends[i as usize].weight > 0);
        if order.is_empty() {
            return Ok(MaglevTable {
                size,
                entries: SharedSlice::from_slice(&[]),
                destinations,
            });
        }
        if order.len() > size as usize {
            return Err(MaglevError::TooManyDestinations {
                size,
                destinations: order.len(),
            });
        }

        let m = u64::from(size);
        let mut perms: Vec<Permutation> = order
            .iter()
            .map(|&index| {
                let id = backends[index as usize].identity();
                // Both values are < M <= 2^24, so the casts are lossless.
                let offset = (xxh64(&id, OFFSET_SEED) % m) as u32;
                let skip = (xxh64(&id, SKIP_SEED) % (m - 1) + 1) as u32;
                Permutation {
                    next: offset,
                    skip,
                    index,
                }
            })
            .collect();

        let mut entries = vec![FREE; size as usize].into_boxed_slice();
        let mut taken = vec![0u64; (size as usize).div_ceil(64)];
        let mut filled = 0u32;
        // Weights divided by their gcd: this scales every turn's virtual
        // time by the same factor, so the order is unchanged.
        let weights: Vec<u64> = order
            .iter()
            .map(|&i| u64::from(backends[i as usize].weight))
            .collect();
        let g = weights.iter().fold(0, |a, &w| gcd(a, w));
        let weights: Vec<u64> = weights.iter().map(|w| w / g).collect();
        let mut turns = TurnOrder::new(&weights);
        // Turn k of destination i is at k / w_i: each period (r - 1, r]
        // holds exactly w_i turns of each destination, in the same order
        // every period. When a period is shorter than the table, compute its
        // order once and repeat it (one heap operation per turn of the first
        // period only; with equal weights the period is the round robin).
        let period: u64 = weights.iter().sum();
        if period <= u64::from(size) && !heap_only {
            let pattern: Vec<u32> = (0..period).map(|_| turns.next_rank()).collect();
            'fill: loop {
                for &rank in &pattern {
                    claim(&mut perms[rank as usize], &mut taken, &mut entries, size);
                    filled += 1;
                    if filled == size {
                        break 'fill;
                    }
                }
            }
        } else {
            while filled < size {
                let rank = turns.next_rank();
                claim(&mut perms[rank as usize], &mut taken, &mut entries, size);
                filled += 1;
            }
        }
        debug_assert!(entries.iter().all(|&e| e != FREE));
        Ok(MaglevTable {
            size,
            entries: SharedSlice::from_slice(&entries),
            destinations,
        })
    }

    /// The destination index (into the list the table was built from) for
    /// flow hash `hash`, or `None` when the table has no destination.
    #[inline]
    pub fn pick(&self, hash: u64) -> Option<u32> {
        // An empty table has no slot 0, so `get` answers `None` for it.
        self.entries.get(self.slot(hash)).copied()
    }

    /// Starts loading the entry [`MaglevTable::pick`] of `hash` will read
    /// (for the burst prefetch of a new flow; a hint, nothing changes).
    #[inline(always)]
    pub fn prefetch(&self, hash: u64) {
        if let Some(e) = self.entries.get(self.slot(hash)) {
            crate::io::sys::prefetch(e);
        }
    }

    /// The slot of `hash`: `⌊hash · M / 2⁶⁴⌋`.
    #[inline]
    pub fn slot(&self, hash: u64) -> usize {
        ((u128::from(hash) * u128::from(self.size)) >> 64) as usize
    }

    /// The table size `M`.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Whether the table has no destination (every pick is `None`).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The slots: `M` destination indexes, or none for an empty table.
    pub fn entries(&self) -> &[u32] {
        &self.entries
    }

    /// Whether the entries are in huge-page memory (tables of 64 KiB and
    /// more, when the kernel gave the mapping).
    pub fn in_huge_pages(&self) -> bool {
        self.entries.is_huge()
    }

    /// How many destinations the input list had (picks are below this).
    pub fn destinations(&self) -> u32 {
        self.destinations
    }

    /// How many slots each destination holds, by input index.
    pub fn slot_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.destinations as usize];
        for &e in self.entries.iter() {
            counts[e as usize] += 1;
        }
        counts
    }
}

/// Claims the next free slot of `p`'s preference list for it. `taken` is a
/// bitmap of claimed slots: at 1 bit per slot it stays in cache while the
/// probes skip over taken slots (M = 655373: 80 KiB instead of 2.5 MiB).
#[inline]
fn claim(p: &mut Permutation, taken: &mut [u64], entries: &mut [u32], size: u32) {
    loop {
        let c = p.next;
        // next + skip < 2 * M <= 2^25: no overflow.
        p.next += p.skip;
        if p.next >= size {
            p.next -= size;
        }
        let (word, bit) = ((c >> 6) as usize, 1u64 << (c & 63));
        if taken[word] & bit == 0 {
            taken[word] |= bit;
            entries[c as usize] = p.index;
            return;
        }
    }
}

#[cfg(test)]
mod tests;
