//! The peers' exceptions as the workers read them: an immutable
//! open-addressing map from flow to target underlay, rebuilt by the sync
//! thread and published with one pointer swap. A worker asks it only on a
//! flow-table miss; the lookup hashes the key once and reads a few slots.

use crate::flow::FlowKey;

/// One slot: a flow and its target underlay.
type Slot = Option<(FlowKey, [u8; 16])>;

/// One published set of the peers' exceptions.
#[derive(Debug, Default)]
pub struct ExceptionMap {
    /// Hash seed of the slots (per map).
    seed: u64,
    /// `slots.len() - 1` (a power of two), 0 when empty.
    mask: usize,
    /// Flow -> target underlay (16 bytes, IPv4-mapped for IPv4).
    slots: Box<[Slot]>,
    len: usize,
}

impl ExceptionMap {
    /// The map of `entries` (a flow listed twice keeps its last target).
    pub fn build(entries: impl ExactSizeIterator<Item = (FlowKey, [u8; 16])>, seed: u64) -> Self {
        let n = entries.len();
        if n == 0 {
            return ExceptionMap::default();
        }
        // At most half full: every probe sequence meets an empty slot.
        let capacity = (n * 2).next_power_of_two();
        let mut slots: Box<[Slot]> = vec![None; capacity].into();
        let mask = capacity - 1;
        let mut len = 0;
        for (key, target) in entries {
            let mut i = key.table_hash(seed) as usize & mask;
            loop {
                match &mut slots[i] {
                    Some((k, t)) if *k == key => {
                        *t = target;
                        break;
                    }
                    Some(_) => i = (i + 1) & mask,
                    empty @ None => {
                        *empty = Some((key, target));
                        len += 1;
                        break;
                    }
                }
            }
        }
        ExceptionMap {
            seed,
            mask,
            slots,
            len,
        }
    }

    /// The target underlay a peer keeps `flow` on, if any.
    #[inline]
    pub fn get(&self, flow: &FlowKey) -> Option<[u8; 16]> {
        if self.len == 0 {
            return None;
        }
        let mut i = flow.table_hash(self.seed) as usize & self.mask;
        loop {
            match &self.slots[i] {
                None => return None,
                Some((k, t)) if k == flow => return Some(*t),
                Some(_) => i = (i + 1) & self.mask,
            }
        }
    }

    /// Exceptions in the map.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
