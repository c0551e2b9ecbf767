//! Stage 2, filter: the one port and protocol check of every path (the
//! common path's new flows and re-validations, the full path, fragments'
//! first fragments, ICMP errors' quoted flows), and the per-load-balancer
//! count of what it refuses.

use super::state::{State, Verdict};
use crate::counters::DropReason;
use crate::tables::LbTable;

/// Whether `lb` accepts protocol `proto` (TCP, UDP or SCTP) to port
/// `dport`.
#[inline(always)]
pub(super) fn port_allowed(lb: &LbTable, proto: u8, dport: u16) -> bool {
    lb.filter.allows(proto, dport) == Some(true)
}

/// Whether `lb` accepts anything of protocol `proto` (an ICMP error's
/// quoted packet without ports).
#[inline(always)]
pub(super) fn protocol_allowed(lb: &LbTable, proto: u8) -> bool {
    lb.filter.allows_protocol(proto)
}

impl State {
    /// Counts a filter drop against the load balancer.
    #[inline]
    pub(super) fn filtered(&self, lb: &LbTable, reason: DropReason) -> Verdict {
        self.counters.lb_drops[lb.slot as usize].inc();
        Verdict::Drop(reason)
    }
}
