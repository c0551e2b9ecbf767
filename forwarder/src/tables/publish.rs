//! Publishing table versions to the workers (one atomic pointer swap) and
//! freeing replaced versions on the control thread once every worker moved
//! past them.

use super::Tables;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Set on a released slot number that names a load-balancer slot (not a
/// target slot) in [`TableBuilder::build`](super::TableBuilder::build)'s output.
pub const LB_SLOT_FLAG: u32 = 1 << 31;

/// Holds the current table version and the versions workers may still use.
#[derive(Debug)]
pub struct Publisher {
    current: ArcSwap<Tables>,
    /// Last version each worker reported using.
    seen: Box<[AtomicU64]>,
    retired: Mutex<Vec<Arc<Tables>>>,
}

impl Publisher {
    /// A publisher for `workers` workers, starting with `initial`.
    pub fn new(initial: Tables, workers: usize) -> Arc<Self> {
        let version = initial.version;
        Arc::new(Publisher {
            current: ArcSwap::from_pointee(initial),
            seen: (0..workers).map(|_| AtomicU64::new(version)).collect(),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// The version now published.
    pub fn current(&self) -> Arc<Tables> {
        self.current.load_full()
    }

    /// Publishes `tables` (one pointer swap) and frees old versions no
    /// worker uses any more. Versions strictly increase (flow entries
    /// remember the version their target index belongs to; reclaiming
    /// compares versions): a version not above the current one is
    /// renumbered to the next.
    pub fn publish(&self, mut tables: Tables) {
        let current = self.current.load().version;
        if tables.version <= current {
            tables.version = current + 1;
        }
        let old = self.current.swap(Arc::new(tables));
        self.retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(old);
        self.reclaim();
    }

    /// Frees retired versions that every worker has moved past. Call it from
    /// the control thread now and then (publish does).
    pub fn reclaim(&self) -> usize {
        let oldest_in_use = self
            .seen
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let before = retired.len();
        retired.retain(|t| t.version >= oldest_in_use || Arc::strong_count(t) > 1);
        before - retired.len()
    }

    /// The table version worker `worker` last reported using.
    pub fn seen(&self, worker: usize) -> u64 {
        self.seen
            .get(worker)
            .map(|s| s.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// Number of versions waiting to be freed.
    pub fn retired_len(&self) -> usize {
        self.retired.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A reader for worker `worker` (0-based, < the count given to `new`).
    pub fn reader(self: &Arc<Self>, worker: usize) -> TableReader {
        assert!(worker < self.seen.len(), "worker index out of range");
        TableReader {
            publisher: Arc::clone(self),
            tables: self.current(),
            worker,
        }
    }
}

/// A worker's handle on the published tables.
#[derive(Debug)]
pub struct TableReader {
    publisher: Arc<Publisher>,
    tables: Arc<Tables>,
    worker: usize,
}

impl TableReader {
    /// Picks up a newer version if one was published; call between bursts.
    /// Never frees a version (the old one stays retired on the publisher).
    #[inline]
    pub fn refresh(&mut self) -> &Tables {
        let cur = self.publisher.current.load();
        if cur.version != self.tables.version {
            // The publisher still holds the old version in `retired`, so this
            // assignment only decrements a reference count.
            self.tables = arc_swap::Guard::into_inner(cur);
            self.publisher.seen[self.worker].store(self.tables.version, Ordering::Release);
        }
        &self.tables
    }

    /// The version in hand.
    #[inline]
    pub fn tables(&self) -> &Tables {
        &self.tables
    }
}
