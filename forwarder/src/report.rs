//! Sums per-worker counters into the control protocol's statistics
//! snapshot: totals, per worker, per load balancer and target, per drop
//! reason, with rates against an earlier sample. Off the fast path.

use crate::counters::{DropReason, PacketsBytes, WorkerCounters};
use crate::flow::bytes_addr;
use crate::tables::{Tables, Underlay};
use lbfwd_control::protocol::{
    Counter, DropStats, LoadBalancerStats, StatsSnapshot, TargetStats, Traffic, WorkerStats,
};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Plain numbers of one sample, kept to compute rates at the next one.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Keyed by a counter's name in the snapshot (`rx`, `w0.tx`,
    /// `lb/web`, `t/web/if-1`, `drop/port_not_allowed`, ...).
    values: BTreeMap<String, (u64, u64)>,
}

/// What a worker contributes to a snapshot.
#[derive(Debug)]
pub struct WorkerView<'a> {
    /// Its counters.
    pub counters: &'a WorkerCounters,
    /// The core it is pinned to.
    pub core: Option<usize>,
    /// Live flows in its table (as last reported).
    pub flows: u64,
}

fn pb(c: &PacketsBytes) -> (u64, u64) {
    c.snapshot()
}

/// Builds a snapshot from the workers' counters, naming load balancers and
/// targets from `tables`; returns it with the sample for the next call.
pub fn snapshot(
    tables: &Tables,
    workers: &[WorkerView<'_>],
    uptime_secs: u64,
    previous: Option<(&Sample, f64)>,
) -> (StatsSnapshot, Sample) {
    let mut sample = Sample::default();
    let interval = previous.map(|(_, s)| s).unwrap_or(0.0);
    let mut counter = |key: String, now: (u64, u64)| {
        let before = previous
            .and_then(|(p, _)| p.values.get(&key).copied())
            .unwrap_or((0, 0));
        sample.values.insert(key, now);
        Counter::with_rates(now.0, now.1, before, interval)
    };
    let sum = |f: &dyn Fn(&WorkerCounters) -> (u64, u64)| {
        workers.iter().fold((0u64, 0u64), |acc, w| {
            let v = f(w.counters);
            (acc.0 + v.0, acc.1 + v.1)
        })
    };
    let totals = Traffic {
        rx: counter("rx".into(), sum(&|c| pb(&c.rx))),
        tx: counter("tx".into(), sum(&|c| pb(&c.tx))),
        host: counter("host".into(), sum(&|c| pb(&c.host))),
        dropped: counter("dropped".into(), sum(&|c| (c.drops_total(), 0))),
    };
    let worker_stats = workers
        .iter()
        .enumerate()
        .map(|(i, w)| WorkerStats {
            id: i,
            core: w.core,
            traffic: Traffic {
                rx: counter(format!("w{i}.rx"), pb(&w.counters.rx)),
                tx: counter(format!("w{i}.tx"), pb(&w.counters.tx)),
                host: counter(format!("w{i}.host"), pb(&w.counters.host)),
                dropped: counter(format!("w{i}.dropped"), (w.counters.drops_total(), 0)),
            },
            flows: w.flows,
        })
        .collect();
    let load_balancers = tables
        .lbs
        .iter()
        .map(|lb| {
            let targets: Vec<TargetStats> = lb
                .targets
                .iter()
                .map(|t| {
                    let slot = t.slot as usize;
                    let sent = sum(&|c| pb(&c.targets[slot]));
                    TargetStats {
                        name: t.name.clone(),
                        underlay: Some(underlay_addr(t.underlay)),
                        weight: t.weight,
                        sent: counter(format!("t/{}/{}/{}", lb.name, t.name, t.uid), sent),
                    }
                })
                .collect();
            let forwarded = targets.iter().fold((0, 0), |acc, t| {
                (acc.0 + t.sent.packets, acc.1 + t.sent.bytes)
            });
            let slot = lb.slot as usize;
            LoadBalancerStats {
                name: lb.name.clone(),
                forwarded: counter(format!("lb/{}", lb.name), forwarded),
                dropped: counter(
                    format!("lbdrop/{}", lb.name),
                    sum(&|c| (c.lb_drops[slot].get(), 0)),
                ),
                flows: sum(&|c| (c.lb_flows[slot].get(), 0)).0,
                targets,
            }
        })
        .collect();
    let drops = DropReason::ALL
        .iter()
        .map(|r| {
            let n = sum(&|c| (c.drops[*r as usize].get(), 0));
            let c = counter(format!("drop/{}", r.as_str()), n);
            DropStats {
                reason: r.as_str().to_string(),
                packets: c.packets,
                pps: c.pps,
            }
        })
        .collect();
    (
        StatsSnapshot {
            uptime_secs,
            interval_secs: interval,
            totals,
            workers: worker_stats,
            load_balancers,
            drops,
            health: Vec::new(),
            l2: None,
            flow_guard: None,
            sync: None,
        },
        sample,
    )
}

fn underlay_addr(u: Underlay) -> IpAddr {
    match u {
        Underlay::V4(a) => IpAddr::from(a),
        Underlay::V6(a) => bytes_addr(a),
    }
}

/// A short human-readable summary of a snapshot (final counters, replay).
pub fn render_text(s: &StatsSnapshot, extra: &[(&str, u64)]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let t = &s.totals;
    let _ = writeln!(
        out,
        "rx {} pkts ({} bytes)  tx {} pkts ({} bytes)  host {}  dropped {}",
        t.rx.packets, t.rx.bytes, t.tx.packets, t.tx.bytes, t.host.packets, t.dropped.packets
    );
    for (name, value) in extra {
        if *value > 0 {
            let _ = writeln!(out, "  {name}: {value}");
        }
    }
    for d in s.drops.iter().filter(|d| d.packets > 0) {
        let _ = writeln!(out, "  drop {}: {}", d.reason, d.packets);
    }
    for lb in &s.load_balancers {
        let _ = writeln!(
            out,
            "load balancer {}: forwarded {} pkts ({} bytes), filtered {}",
            lb.name, lb.forwarded.packets, lb.forwarded.bytes, lb.dropped.packets
        );
        for tg in &lb.targets {
            let _ = writeln!(
                out,
                "  target {} ({}) weight {}: {} pkts ({} bytes)",
                tg.name,
                tg.underlay.map(|a| a.to_string()).unwrap_or_default(),
                tg.weight,
                tg.sent.packets,
                tg.sent.bytes
            );
        }
    }
    out
}

/// The counters of a worker that are not in the snapshot, for
/// [`render_text`] and JSON output.
pub fn extra_counters(c: &WorkerCounters) -> Vec<(&'static str, u64)> {
    vec![
        ("host_not_vip", c.host_not_vip.get()),
        ("icmp_echo_replies", c.icmp_echo_replies.get()),
        ("too_big_sent", c.too_big_sent.get()),
        ("icmp_errors_forwarded", c.icmp_errors_forwarded.get()),
        ("fragments_held", c.fragments_held.get()),
        ("flow_picks", c.flow_picks.get()),
        ("flow_repicks", c.flow_repicks.get()),
        ("flows_not_remembered", c.flows_not_remembered.get()),
    ]
}

/// The new-flow flood guard's part of a snapshot (`lbctl stats`): its
/// settings and, over `workers`, the flows it did not remember or dropped
/// and which workers it is engaged on now.
pub fn flow_guard_stats(
    guard: &crate::flow::guard::GuardConfig,
    workers: &[WorkerView<'_>],
) -> lbfwd_control::protocol::FlowGuardStats {
    lbfwd_control::protocol::FlowGuardStats {
        rate: guard.rate,
        burst: guard.burst,
        excess: guard.excess.as_str().to_string(),
        engaged_workers: workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.counters.flow_guard_engaged.get() > 0)
            .map(|(i, _)| i)
            .collect(),
        not_remembered: workers
            .iter()
            .map(|w| w.counters.flows_not_remembered.get())
            .sum(),
        dropped: workers
            .iter()
            .map(|w| w.counters.drops[DropReason::NewFlowLimit as usize].get())
            .sum(),
    }
}
