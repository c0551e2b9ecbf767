//! The exception sync's Prometheus families (`lbfwd_sync_*`), rendered at
//! scrape time from what `lbctl stats` shows.

use super::Exposition;
use lbfwd_control::protocol::SyncStats;

/// Writes the sync families of `s`.
pub fn collect(s: &SyncStats, out: &mut Exposition) {
    let mut known = out.gauge(
        "lbfwd_sync_exceptions",
        "Flow exceptions known: this appliance's own (kept off their Maglev pick) and its peers'.",
    );
    known.sample(&[("origin", "own")], s.own_exceptions);
    known.sample(&[("origin", "peers")], s.peer_exceptions);
    out.counter(
        "lbfwd_sync_exceptions_reported_total",
        "Exceptions the workers queued for the sync thread.",
    )
    .sample(&[], s.reported);
    out.counter(
        "lbfwd_sync_exceptions_adopted_total",
        "New flows sent to the target a peer's exception named.",
    )
    .sample(&[], s.adopted);
    let mut dropped = out.counter(
        "lbfwd_sync_exceptions_dropped_total",
        "Exceptions dropped: a worker's queue was full, or a set was at max_exceptions.",
    );
    dropped.sample(&[("reason", "queue_full")], s.queue_dropped);
    dropped.sample(&[("reason", "over_capacity")], s.over_capacity);
    let mut datagrams = out.counter(
        "lbfwd_sync_datagrams_total",
        "Sync datagrams: sent, received, rejected (not from a peer, malformed, bad tag), send errors.",
    );
    datagrams.sample(&[("result", "sent")], s.datagrams_sent);
    datagrams.sample(&[("result", "received")], s.datagrams_received);
    datagrams.sample(&[("result", "rejected")], s.datagrams_rejected);
    datagrams.sample(&[("result", "send_error")], s.send_errors);
    let mut records = out.counter(
        "lbfwd_sync_records_total",
        "Exception records sent (over every peer) and received.",
    );
    records.sample(&[("direction", "sent")], s.records_sent);
    records.sample(&[("direction", "received")], s.records_received);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Registry;
    use std::sync::Arc;

    #[test]
    fn the_families_pass_promtool() {
        let s = SyncStats {
            own_exceptions: 3,
            peer_exceptions: 4,
            adopted: 2,
            records_sent: 9,
            ..SyncStats::default()
        };
        let registry = Registry::default();
        registry.register(
            "sync",
            Arc::new(move |out: &mut Exposition| collect(&s, out)),
        );
        let text = registry.render();
        assert!(
            text.contains("lbfwd_sync_exceptions{origin=\"peers\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("lbfwd_sync_exceptions_adopted_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("lbfwd_sync_records_total{direction=\"sent\"} 9\n"),
            "{text}"
        );
        crate::metrics::promtool_check(&text);
    }
}
