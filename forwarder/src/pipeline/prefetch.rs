//! The burst prefetch: with many live flows the flow table, the targets'
//! counters and templates are out of the caches, so before a burst is
//! processed the backend hands every frame to [`State::prefetch_bucket`]
//! (stage 1: the flow's bucket), and [`State::prefetch_ahead`] runs the
//! later stages a few frames ahead of the one being processed. Hints only:
//! nothing here changes a verdict or a byte (a unit test compares).

use super::classify;
use super::state::{Prefetched, State, PREFETCH_MAX};
use crate::frame::Frame;
use crate::tables::Tables;
use crate::wire::parse_fast;

/// How many frames ahead of the one being processed the third prefetch
/// stage works (the flow's target: routing entry, counters).
const LOOKAHEAD_SLOT: usize = 4;
/// ... and the fourth (the target's outer header template).
const LOOKAHEAD_TEMPLATE: usize = 2;

/// Below this many live flows the flow table stays in the caches and the
/// burst prefetch would only cost instructions: it is skipped.
pub(super) const PREFETCH_MIN_FLOWS: usize = 8192;

impl State {
    /// Stage 1 of the burst prefetch: the flow-table bucket of `frame`
    /// (when `wanted`).
    #[inline(always)]
    pub(super) fn prefetch_bucket(&mut self, t: &Tables, frame: &Frame<'_>, wanted: bool) {
        let st = self;
        if st.prefetched_next > 0 {
            // A new burst (the last one was not processed to its end).
            st.prefetched_len = 0;
            st.prefetched_next = 0;
        }
        if st.prefetched_len == PREFETCH_MAX || !wanted {
            return;
        }
        let mut entry = Prefetched {
            lb: u32::MAX,
            template: u32::MAX,
            ..Prefetched::default()
        };
        // The same classification as the fast path's (stage 1).
        if let Some(c) = parse_fast(frame.data()).and_then(|f| classify::common(t, &f)) {
            entry.key = c.flow;
            entry.bucket_hash = entry.key.table_hash(st.seed);
            entry.lb = c.lb_idx;
            st.flows.prefetch_bucket(entry.bucket_hash);
        }
        st.prefetched[st.prefetched_len] = entry;
        st.prefetched_len += 1;
    }

    /// The later stages of the burst prefetch, run before each frame's
    /// [`Pipeline::run`]: before the first, the flow slots of every frame
    /// (their buckets are in the caches by now); then, a few frames ahead,
    /// what a flow's value points at (the target's routing entry and
    /// counters, then its outer header template). Hints only.
    #[inline(always)]
    pub(super) fn prefetch_ahead(&mut self, t: &Tables) {
        let st = self;
        let burst = &st.prefetched[..st.prefetched_len];
        if st.prefetched_next == 0 {
            for e in burst.iter().filter(|e| e.lb != u32::MAX) {
                st.flows.prefetch_entry(e.bucket_hash);
            }
        }
        let at = st.prefetched_next;
        if let Some(e) = st.prefetched[..st.prefetched_len].get_mut(at + LOOKAHEAD_SLOT) {
            if e.lb != u32::MAX {
                if let Some(v) = st.flows.peek(&e.key, e.bucket_hash) {
                    e.template = v.template;
                    if let Some(c) = st.counters.targets.get(v.slot as usize) {
                        crate::io::sys::prefetch(c);
                    }
                }
            }
        }
        if let Some(e) = st.prefetched[..st.prefetched_len].get(at + LOOKAHEAD_TEMPLATE) {
            if let Some(tpl) = t.templates.get(e.template as usize) {
                crate::io::sys::prefetch(tpl);
                crate::io::sys::prefetch(tpl.second_line());
            }
        }
        st.prefetched_next += 1;
        if st.prefetched_next >= st.prefetched_len {
            st.prefetched_len = 0;
            st.prefetched_next = 0;
        }
    }
}
