//! The burst prefetch: with many live flows the flow table, the targets'
//! templates and counters (and, for a new flow, its load balancer's Maglev
//! table) are out of the caches, and each packet would wait for several
//! DRAM round trips one after another. So the burst is staged (group
//! prefetching): the backend hands every frame to [`State::prefetch_bucket`]
//! first (stage 1: classify, hash, the flow's bucket), and before the first
//! frame is processed [`State::prefetch_burst`] runs the later stages, each
//! over the whole burst: stage 2 reads each bucket's tags and starts the
//! flow's slot (and, for a new flow, its Maglev entry); stage 3 reads each
//! slot (or Maglev entry) and starts the target's header template (its
//! first line; the second only for outer IPv6 with VXLAN) and
//! counters (a new flow's counters in a stage 4 of its own, once its
//! target's entry is in). The misses of one stage overlap across the burst, so a burst
//! waits for about three round trips instead of three per packet. Hints
//! only: nothing here changes a verdict or a byte (a unit test compares).

use super::classify;
use super::state::{Prefetched, State, PREFETCH_MAX};
use crate::encap::EncapTemplate;
use crate::frame::Frame;
use crate::tables::Tables;
use crate::wire::parse_fast;

/// Below this many live flows the flow table stays in the caches and the
/// burst prefetch would only cost instructions: it is skipped.
pub(super) const PREFETCH_MIN_FLOWS: usize = 8192;

/// [`Prefetched::lb`] of a frame with nothing to prefetch.
const NONE: u32 = u32::MAX;

impl State {
    /// Stage 1 of the burst prefetch: the flow-table bucket of `frame`
    /// (when `wanted`).
    #[inline(always)]
    pub(super) fn prefetch_bucket(&mut self, t: &Tables, frame: &Frame<'_>, wanted: bool) {
        let st = self;
        if st.prefetched_len == PREFETCH_MAX || !wanted {
            return;
        }
        let mut entry = Prefetched {
            lb: NONE,
            ..Prefetched::default()
        };
        // The same classification as the fast path's.
        if let Some(c) = parse_fast(frame.data()).and_then(|f| classify::common(t, &f)) {
            entry.key = c.flow;
            entry.bucket_hash = entry.key.table_hash(st.seed);
            entry.lb = c.lb_idx;
            st.flows.prefetch_bucket(entry.bucket_hash);
        }
        st.prefetched[st.prefetched_len] = entry;
        st.prefetched_len += 1;
    }

    /// Stages 2 and 3 of the burst prefetch, over every frame stage 1 saw,
    /// run once before the first of them is processed. Hints only.
    #[inline(always)]
    pub(super) fn prefetch_burst(&mut self, t: &Tables) {
        let n = self.prefetched_len;
        self.prefetched_len = 0;
        let burst = &mut self.prefetched[..n];
        // Stage 2: the buckets are (mostly) in the caches by now.
        for e in burst.iter_mut().filter(|e| e.lb != NONE) {
            e.known = self.flows.prefetch_slots(e.bucket_hash);
            if !e.known {
                // A new flow: its Maglev entry.
                if let Some(lb) = t.lbs.get(e.lb as usize) {
                    e.flow_hash = e.key.flow_hash();
                    lb.maglev.prefetch(e.flow_hash);
                    // What the miss path reads of the load balancer.
                    crate::io::sys::prefetch(&lb.filter);
                    crate::io::sys::prefetch(&lb.targets);
                    crate::io::sys::prefetch(&lb.template_base);
                }
            }
        }
        // Stage 3: what the slot (or the Maglev entry) points at. A
        // template's second line only where some template has headers
        // there (outer IPv6 with VXLAN).
        let two_lines = EncapTemplate::two_lines(&t.underlay);
        for e in burst.iter().filter(|e| e.lb != NONE) {
            if e.known {
                if let Some(v) = self.flows.peek(&e.key, e.bucket_hash) {
                    if let Some(tpl) = t.templates.get(v.template as usize) {
                        crate::io::sys::prefetch(tpl);
                        if two_lines {
                            crate::io::sys::prefetch(tpl.second_line());
                        }
                    }
                    if let Some(c) = self.counters.targets.get(v.slot as usize) {
                        crate::io::sys::prefetch(c);
                    }
                }
            } else if let Some(lb) = t.lbs.get(e.lb as usize) {
                if let Some(index) = lb.maglev.pick(e.flow_hash) {
                    if let Some(target) = lb.targets.get(index as usize) {
                        crate::io::sys::prefetch(&target.slot);
                    }
                    let at = lb.template_base.wrapping_add(index);
                    if let Some(tpl) = t.templates.get(at as usize) {
                        crate::io::sys::prefetch(tpl);
                        if two_lines {
                            crate::io::sys::prefetch(tpl.second_line());
                        }
                    }
                }
            }
        }
        // Stage 4, new flows only: the picked target's counters.
        for e in burst.iter().filter(|e| e.lb != NONE && !e.known) {
            let Some(lb) = t.lbs.get(e.lb as usize) else {
                continue;
            };
            let target = lb
                .maglev
                .pick(e.flow_hash)
                .and_then(|i| lb.targets.get(i as usize));
            if let Some(c) = target.and_then(|tg| self.counters.targets.get(tg.slot as usize)) {
                crate::io::sys::prefetch(c);
            }
        }
    }
}
