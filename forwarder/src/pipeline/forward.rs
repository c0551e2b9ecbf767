//! Stage 5, forward: encapsulate toward the picked target and count, or
//! answer "too big" ([`super::icmp`]). Also the common path's whole sequence
//! after classification ([`State::forward_common`]): a flow seen before
//! under the same tables goes straight through its target's header
//! template; everything else takes the filter and the pick first
//! ([`State::forward_slow`]).

use super::classify::{trim_padding, Common};
use super::filter;
use super::pick::Lookup;
use super::state::{State, Verdict};
use crate::counters::{internal, DropReason};
use crate::encap::{encapsulate, encapsulate_inner, encapsulate_template, Encapsulation, Inner};
use crate::flow::FlowKey;
use crate::frame::Frame;
use crate::tables::{LbTable, Tables, Target};
use crate::wire::{Parsed, ParsedFrame};

/// What [`State::forward_common`] hands to [`State::forward_slow`].
#[derive(Clone, Copy, Debug)]
struct Slow {
    /// The load balancer's index.
    lb_idx: u32,
    /// What the flow table held for the flow.
    found: Lookup,
    /// Where the inner packet sits.
    inner: Inner,
}

impl State {
    /// What the express and fast paths share once the packet's load
    /// balancer is known: trim, flow lookup and, for a flow seen before
    /// under the same tables, encapsulation through its target's template
    /// and counters, touching nothing of the load balancer. Everything else
    /// (a new flow, new tables, no usable template) takes
    /// [`Self::forward_slow`].
    #[inline(always)]
    pub(super) fn forward_common(
        &mut self,
        t: &Tables,
        frame: &mut Frame<'_>,
        c: Common,
    ) -> Verdict {
        let Common {
            lb_idx,
            flow,
            inner,
        } = c;
        trim_padding(frame, usize::from(inner.l3) + usize::from(inner.ip_len));
        let found = self.lookup(&flow);
        if let Some(v) = found.found {
            if v.current(t) {
                if let Some(tpl) = t.templates.get(v.template as usize) {
                    if !tpl.is_empty() {
                        let done =
                            encapsulate_template(tpl, t.underlay.mtu, v.hash(), frame, inner);
                        // `v.slot` is the template's slot (both come from
                        // the same target under these tables) and is on the
                        // flow's line, which is in the caches already.
                        return self.forwarded(frame, v.slot, done);
                    }
                }
            }
        }
        let slow = Slow {
            lb_idx,
            found,
            inner,
        };
        frame.detached(|f| self.forward_slow(t, f, &flow, slow))
    }

    /// The rest of the express and fast paths: port filter, flow pick (or
    /// re-validation under new tables), encapsulation (through the
    /// template, or in full when the template cannot serve), counters.
    #[inline(never)]
    fn forward_slow(
        &mut self,
        t: &Tables,
        frame: &mut Frame<'_>,
        flow: &FlowKey,
        slow: Slow,
    ) -> Verdict {
        let Some(lb) = t.lbs.get(slow.lb_idx as usize) else {
            let reason = internal("VIP entry without its load balancer");
            return self.count(Verdict::Drop(reason), frame.len());
        };
        if !filter::port_allowed(lb, flow.proto, flow.dst_port) {
            let verdict = self.filtered(lb, DropReason::PortNotAllowed);
            return self.count(verdict, frame.len());
        }
        let (target, hash) = match self.pick_found(t, slow.lb_idx, lb, flow, slow.found) {
            Ok(picked) => picked,
            Err(reason) => return self.count(Verdict::Drop(reason), frame.len()),
        };
        let Some(tpl) = t.template(lb, target) else {
            let reason = internal("target without a template");
            return self.count(Verdict::Drop(reason), frame.len());
        };
        // The target's own slot (the pick has just read its entry), not
        // the template's, which is the same but on its second line.
        let target = &lb.targets[target as usize];
        let done = if tpl.is_empty() {
            encapsulate_inner(&t.underlay, lb.vni, target, hash, frame, slow.inner)
        } else {
            encapsulate_template(tpl, t.underlay.mtu, hash, frame, slow.inner)
        };
        self.forwarded(frame, target.slot, done)
    }

    /// Counts the outcome of encapsulating a frame toward the target in
    /// counter slot `slot` and returns its verdict.
    #[inline(always)]
    fn forwarded(
        &mut self,
        frame: &mut Frame<'_>,
        slot: u32,
        done: Result<(), Encapsulation>,
    ) -> Verdict {
        let verdict = match done {
            Ok(()) => {
                if let Some(c) = self.counters.targets.get(slot as usize) {
                    c.count(frame.len());
                }
                self.counters.tx.count(frame.len());
                return Verdict::Tx;
            }
            Err(Encapsulation::TooBig { inner_mtu }) => {
                frame.detached(|f| self.too_big_reparsed(f, inner_mtu))
            }
            Err(Encapsulation::Drop(reason)) => Verdict::Drop(reason),
        };
        self.count(verdict, frame.len())
    }

    /// [`Self::too_big`] for the common path, which has no [`Parsed`]:
    /// parses the frame in full first (rare: only packets too big for the
    /// underlay get here).
    #[cold]
    #[inline(never)]
    fn too_big_reparsed(&mut self, frame: &mut Frame<'_>, inner_mtu: u32) -> Verdict {
        match crate::wire::parse_frame(frame.data()) {
            Ok(ParsedFrame::Ip(p)) => self.too_big(frame, &p, inner_mtu),
            // A fast parser took it, so the full parser does too.
            _ => Verdict::Drop(internal("fast-path packet the full parser refuses")),
        }
    }

    /// Encapsulates the packet toward `target`, or answers "too big".
    #[inline]
    pub(super) fn encap(
        &mut self,
        t: &Tables,
        lb: &LbTable,
        target: &Target,
        hash: u64,
        frame: &mut Frame<'_>,
        p: &Parsed,
    ) -> Verdict {
        self.encap_outcome(t, lb, target, hash, frame, p).0
    }

    /// [`Self::encap`], also telling whether the packet went to the target
    /// (false when it was answered with "too big" or dropped).
    #[inline]
    pub(super) fn encap_outcome(
        &mut self,
        t: &Tables,
        lb: &LbTable,
        target: &Target,
        hash: u64,
        frame: &mut Frame<'_>,
        p: &Parsed,
    ) -> (Verdict, bool) {
        match encapsulate(&t.underlay, lb.vni, target, hash, frame, p) {
            Ok(()) => {
                self.counters.targets[target.slot as usize].count(frame.len());
                (Verdict::Tx, true)
            }
            Err(Encapsulation::TooBig { inner_mtu }) => (self.too_big(frame, p, inner_mtu), false),
            Err(Encapsulation::Drop(reason)) => (Verdict::Drop(reason), false),
        }
    }
}
