//! Stage 4, pick: the one target choice of every path. A flow in the table
//! keeps its target while that target stays in the routing ([`remembered`]:
//! under the tables its entry was made in, straight from the entry; under
//! newer tables, re-validated by the target's slot); a flow whose target
//! left, or a new flow, gets a Maglev pick ([`maglev`]) with its flow hash
//! (XXH3 of the 5-tuple and the VNI). The common path, the full path and
//! ICMP errors (which follow the flow they quote, without making one) all
//! choose through these two functions. A new flow is remembered only if the
//! new-flow flood guard ([`crate::flow::guard`]) admits it; above its rate
//! it is forwarded without an entry, or dropped ([`State::pick_found`]).

use super::state::{FlowValue, State};
use crate::counters::DropReason;
use crate::flow::guard::Excess;
use crate::flow::FlowKey;
use crate::tables::{LbTable, Tables};

/// Where a remembered flow's target stands under tables `t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Remembered {
    /// Its entry is of these tables: target `index` of the load balancer.
    Current(u32),
    /// Its entry is older, but its target is still target `index`.
    Revalidated(u32),
    /// Its target left the routing.
    Gone,
}

/// Where flow entry `v` of load balancer `lb` (index `lb_idx`) goes under
/// tables `t`.
#[inline(always)]
fn remembered(t: &Tables, lb_idx: u32, lb: &LbTable, v: &FlowValue) -> Remembered {
    if v.current(t) {
        // Under these tables the flow's template lies in its load
        // balancer's range (checked: never index out of it).
        let index = v.template.wrapping_sub(lb.template_base);
        if (index as usize) < lb.targets.len() {
            return Remembered::Current(index);
        }
    }
    match t.target_in(lb_idx, v.slot) {
        Some(i) => Remembered::Revalidated(i),
        None => Remembered::Gone,
    }
}

/// The Maglev pick of `lb` for flow hash `hash` (`None`: no target).
#[inline(always)]
fn maglev(lb: &LbTable, hash: u64) -> Option<u32> {
    lb.maglev.pick(hash)
}

/// What the flow table holds for a flow.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lookup {
    /// The flow's bucket hash.
    pub bucket_hash: u64,
    /// Its entry, if any.
    pub found: Option<FlowValue>,
}

impl State {
    /// Looks `flow` up in the flow table (refreshing its idle time).
    #[inline(always)]
    pub(super) fn lookup(&mut self, flow: &FlowKey) -> Lookup {
        let bucket_hash = flow.table_hash(self.seed);
        let found = self.flows.lookup(flow, bucket_hash, self.now).copied();
        Lookup { bucket_hash, found }
    }

    /// The target index of a flow and its flow hash: its remembered target
    /// if that is still in the routing, else a Maglev pick (remembered, if
    /// the new-flow guard admits it). The flow hash (XXH3) is computed only
    /// for a flow not in the table; the table itself is indexed by the
    /// cheaper [`FlowKey::table_hash`]. `Err`: why the packet is dropped (no
    /// target; a new flow above the guard's rate, with `excess = drop`).
    #[inline]
    pub(super) fn pick(
        &mut self,
        t: &Tables,
        lb_idx: u32,
        lb: &LbTable,
        flow: &FlowKey,
    ) -> Result<(u32, u64), DropReason> {
        let found = self.lookup(flow);
        self.pick_found(t, lb_idx, lb, flow, found)
    }

    /// [`Self::pick`] once the flow table was asked: `found` is what its
    /// lookup of `flow` returned.
    pub(super) fn pick_found(
        &mut self,
        t: &Tables,
        lb_idx: u32,
        lb: &LbTable,
        flow: &FlowKey,
        found: Lookup,
    ) -> Result<(u32, u64), DropReason> {
        if let Some(v) = found.found {
            let hash = v.hash();
            // New tables since: is its target still in the routing? Else
            // re-pick this flow only.
            let index = match remembered(t, lb_idx, lb, &v) {
                Remembered::Current(i) => return Ok((i, hash)),
                Remembered::Revalidated(i) => {
                    if let Some(s) = &self.sync {
                        s.revalidated(lb, i, maglev(lb, hash), flow);
                    }
                    i
                }
                Remembered::Gone => {
                    let i = maglev(lb, hash).ok_or(DropReason::NoTarget)?;
                    self.counters.flow_repicks.inc();
                    i
                }
            };
            if let Some(entry) = self.flows.peek_mut(flow, found.bucket_hash) {
                *entry = FlowValue::new(t, lb, index, hash);
            }
            return Ok((index, hash));
        }
        let hash = flow.flow_hash();
        // A flow a peer keeps off its Maglev pick (`[sync]`) stays there.
        let adopted = self.sync.as_ref().and_then(|s| s.adopt(lb, flow));
        let index = match adopted {
            Some(i) => i,
            None => maglev(lb, hash).ok_or(DropReason::NoTarget)?,
        };
        if !self.guard.admit(self.now) {
            return self.new_flow_refused(index, hash);
        }
        self.flows.insert(
            *flow,
            found.bucket_hash,
            FlowValue::new(t, lb, index, hash),
            self.now,
        );
        self.counters.flow_picks.inc();
        Ok((index, hash))
    }

    /// A new flow the flood guard refused (above its rate): forwarded to
    /// its Maglev pick `index` without an entry, or dropped.
    #[cold]
    #[inline(never)]
    fn new_flow_refused(&mut self, index: u32, hash: u64) -> Result<(u32, u64), DropReason> {
        match self.guard.excess() {
            Excess::Forward => {
                self.counters.flows_not_remembered.inc();
                Ok((index, hash))
            }
            Excess::Drop => Err(DropReason::NewFlowLimit),
        }
    }

    /// The target of a flow an ICMP error quotes, and its flow hash: its
    /// remembered target if that is still in the routing, else the target a
    /// new packet of it would get (a peer's exception, or the Maglev pick).
    /// Makes and changes no flow entry
    /// (an ICMP error is no packet of the flow).
    pub(super) fn pick_quoted(
        &mut self,
        t: &Tables,
        lb_idx: u32,
        lb: &LbTable,
        flow: &FlowKey,
    ) -> Option<(u32, u64)> {
        let hash = flow.flow_hash();
        let remembered = match self.lookup(flow).found {
            Some(v) => match remembered(t, lb_idx, lb, &v) {
                Remembered::Current(i) | Remembered::Revalidated(i) => Some(i),
                Remembered::Gone => None,
            },
            None => None,
        };
        // Else where a new packet of it would go: a peer's exception
        // (`[sync]`), or its Maglev pick.
        let target = match remembered {
            Some(i) => i,
            None => match self.sync.as_ref().and_then(|s| s.peer_target(lb, flow)) {
                Some(i) => i,
                None => maglev(lb, hash)?,
            },
        };
        Some((target, hash))
    }
}
