//! The dataplane's families: per worker, per load balancer and target, per
//! drop reason, tables, and the process. Read at scrape time from the same
//! per-worker counters `lbctl stats` reads (relaxed loads; the workers are
//! never asked anything).

use super::{Collect, Exposition};
use crate::counters::{DropReason, WorkerCounters};
use crate::dataplane::Dataplane;
use crate::report::extra_counters;
use crate::worker::WorkerStats;
use std::sync::Arc;

/// Collects the dataplane's families.
pub struct DataplaneCollector {
    dataplane: Arc<Dataplane>,
    loops: Arc<[WorkerStats]>,
    cores: Vec<Option<usize>>,
    backend: String,
}

impl std::fmt::Debug for DataplaneCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataplaneCollector")
            .field("backend", &self.backend)
            .field("cores", &self.cores)
            .finish_non_exhaustive()
    }
}

impl DataplaneCollector {
    /// A collector over `dataplane`'s counters and the worker loops'
    /// `loops` (index = worker), pinned to `cores`, on `backend`.
    pub fn new(
        dataplane: Arc<Dataplane>,
        loops: Arc<[WorkerStats]>,
        cores: Vec<Option<usize>>,
        backend: &str,
    ) -> Self {
        DataplaneCollector {
            dataplane,
            loops,
            cores,
            backend: backend.to_string(),
        }
    }
}

/// Names and help of the counters [`extra_counters`] lists; a counter
/// added there without an entry here is exported as `lbfwd_NAME_total`.
const EXTRA: [(&str, &str, &str); 8] = [
    (
        "host_not_vip",
        "lbfwd_host_not_vip_packets_total",
        "IP packets passed to the host path because they are not for a VIP.",
    ),
    (
        "icmp_echo_replies",
        "lbfwd_icmp_echo_replies_total",
        "ICMP/ICMPv6 echo replies lbfwd sent for a VIP itself (icmp_echo = \"reply\").",
    ),
    (
        "too_big_sent",
        "lbfwd_icmp_too_big_sent_total",
        "ICMP fragmentation-needed / ICMPv6 packet-too-big answers lbfwd sent.",
    ),
    (
        "icmp_errors_forwarded",
        "lbfwd_icmp_errors_forwarded_total",
        "ICMP errors forwarded to the target of the flow they quote.",
    ),
    (
        "fragments_held",
        "lbfwd_fragments_held_total",
        "IP fragments held until the first fragment of their datagram arrived.",
    ),
    (
        "flow_picks",
        "lbfwd_flow_picks_total",
        "Flows given a target through Maglev (flow table misses).",
    ),
    (
        "flow_repicks",
        "lbfwd_flow_repicks_total",
        "Flows re-picked because their target left the routing.",
    ),
    (
        "flows_not_remembered",
        "lbfwd_flows_not_remembered_total",
        "New flows above [flow] new_flow_rate forwarded to their Maglev pick without a flow-table entry.",
    ),
];

impl Collect for DataplaneCollector {
    fn collect(&self, out: &mut Exposition) {
        let counters = self.dataplane.counters();
        let ids: Vec<String> = (0..counters.len()).map(|i| i.to_string()).collect();
        let per_worker = |out: &mut Exposition,
                          name: &str,
                          help: &str,
                          value: &dyn Fn(&WorkerCounters) -> u64| {
            let mut f = out.counter(name, help);
            for (i, c) in counters.iter().enumerate() {
                f.sample(&[("worker", &ids[i])], value(c));
            }
        };

        out.gauge(
            "lbfwd_dataplane_info",
            "Always 1; labelled with the packet I/O backend.",
        )
        .sample(&[("backend", &self.backend)], 1u64);
        {
            let mut f = out.gauge(
                "lbfwd_worker_info",
                "Always 1; labelled with each worker and the core it is pinned to (\"\" unpinned).",
            );
            for (i, core) in self.cores.iter().enumerate() {
                let core = core.map(|c| c.to_string()).unwrap_or_default();
                f.sample(&[("worker", &ids[i]), ("core", &core)], 1u64);
            }
        }
        {
            let mut f = out.gauge(
                "lbfwd_worker_running",
                "1 while the worker's poll loop runs.",
            );
            for (i, s) in self.loops.iter().enumerate() {
                f.sample(&[("worker", &ids[i])], s.is_running());
            }
        }

        per_worker(
            out,
            "lbfwd_received_packets_total",
            "Frames received.",
            &|c| c.rx.packets.get(),
        );
        per_worker(
            out,
            "lbfwd_received_bytes_total",
            "Bytes of the frames received.",
            &|c| c.rx.bytes.get(),
        );
        per_worker(
            out,
            "lbfwd_transmitted_packets_total",
            "Frames transmitted (encapsulated packets and lbfwd's own answers).",
            &|c| c.tx.packets.get(),
        );
        per_worker(
            out,
            "lbfwd_transmitted_bytes_total",
            "Bytes of the frames transmitted (encapsulated).",
            &|c| c.tx.bytes.get(),
        );
        per_worker(
            out,
            "lbfwd_host_packets_total",
            "Frames passed to the host path (not for a VIP: ARP, NDP, the appliance's own traffic).",
            &|c| c.host.packets.get(),
        );
        per_worker(
            out,
            "lbfwd_host_bytes_total",
            "Bytes of the frames passed to the host path.",
            &|c| c.host.bytes.get(),
        );
        {
            let mut f = out.counter(
                "lbfwd_dropped_packets_total",
                "Frames dropped, by worker and reason.",
            );
            for (i, c) in counters.iter().enumerate() {
                for r in DropReason::ALL {
                    f.sample(
                        &[("worker", &ids[i]), ("reason", r.as_str())],
                        c.drops[r as usize].get(),
                    );
                }
            }
        }
        {
            let mut f = out.gauge("lbfwd_flows", "Live entries in the worker's flow table.");
            for (i, c) in counters.iter().enumerate() {
                f.sample(&[("worker", &ids[i])], c.flows_live.get());
            }
        }
        {
            let mut f = out.gauge(
                "lbfwd_flow_guard_engaged",
                "1 while the worker's new-flow flood guard refuses new flows (it refused one within the last second).",
            );
            for (i, c) in counters.iter().enumerate() {
                f.sample(&[("worker", &ids[i])], c.flow_guard_engaged.get());
            }
        }
        if let Some(first) = counters.first() {
            for (key, _) in extra_counters(first) {
                let (name, help) = match EXTRA.iter().find(|(k, _, _)| *k == key) {
                    Some((_, name, help)) => (name.to_string(), help.to_string()),
                    None => (format!("lbfwd_{key}_total"), format!("Counter {key}.")),
                };
                let mut f = out.counter(&name, &help);
                for (i, c) in counters.iter().enumerate() {
                    let value = extra_counters(c)
                        .into_iter()
                        .find(|(k, _)| *k == key)
                        .map_or(0, |(_, v)| v);
                    f.sample(&[("worker", &ids[i])], value);
                }
            }
        }

        let loops: Vec<_> = self.loops.iter().map(WorkerStats::snapshot).collect();
        let per_loop =
            |out: &mut Exposition,
             name: &str,
             help: &str,
             value: &dyn Fn(&crate::worker::WorkerReport) -> u64| {
                let mut f = out.counter(name, help);
                for (i, l) in loops.iter().enumerate() {
                    f.sample(&[("worker", &ids[i])], value(l));
                }
            };
        per_loop(
            out,
            "lbfwd_queue_rx_ring_dropped_packets_total",
            "Frames the receive ring or NIC dropped before the worker read them.",
            &|l| l.queue.rx_ring_drops,
        );
        per_loop(
            out,
            "lbfwd_queue_rx_errors_total",
            "Receive errors of the worker's queue.",
            &|l| l.queue.rx_errors,
        );
        per_loop(
            out,
            "lbfwd_queue_tx_dropped_packets_total",
            "Frames the transmit queue could not take (ring full).",
            &|l| l.queue.tx_dropped,
        );
        {
            let mut f = out.counter(
                "lbfwd_worker_polls_total",
                "Receive polls of the worker loop, by result (busy: frames came, idle: none).",
            );
            for (i, l) in loops.iter().enumerate() {
                f.sample(
                    &[("worker", &ids[i]), ("result", "busy")],
                    l.looped.busy_polls,
                );
                f.sample(
                    &[("worker", &ids[i]), ("result", "idle")],
                    l.looped.idle_polls,
                );
            }
        }

        let tables = self.dataplane.current();
        out.gauge(
            "lbfwd_table_version",
            "Version of the tables the control side published last.",
        )
        .sample(&[], tables.version);
        out.counter(
            "lbfwd_table_publishes_total",
            "Table versions published since start (every change, reload and API call that changed something).",
        )
        .sample(&[], tables.version.saturating_sub(1));
        {
            let mut f = out.gauge(
                "lbfwd_worker_table_version",
                "Table version each worker uses now.",
            );
            for (i, id) in ids.iter().enumerate() {
                f.sample(&[("worker", id)], self.dataplane.publisher().seen(i));
            }
        }

        // Per load balancer and target: the sums over the workers that
        // `lbctl stats` shows, read straight from the counter slots (no
        // per-target allocation: 10,000 targets are 30,000 samples).
        let sum =
            |f: &dyn Fn(&WorkerCounters) -> u64| -> u64 { counters.iter().map(|c| f(c)).sum() };
        let lbs = &tables.lbs;
        use super::MetricType::{Counter, Gauge};
        let per_lb = |out: &mut Exposition,
                      kind: super::MetricType,
                      name: &str,
                      help: &str,
                      value: &dyn Fn(&crate::tables::LbTable) -> u64| {
            let mut f = out.family(name, kind, help);
            for lb in lbs.iter() {
                f.sample(&[("load_balancer", &lb.name)], value(lb));
            }
        };
        let forwarded = |lb: &crate::tables::LbTable, bytes: bool| -> u64 {
            lb.targets
                .iter()
                .map(|t| {
                    let slot = t.slot as usize;
                    sum(&|c| {
                        let pb = &c.targets[slot];
                        if bytes {
                            pb.bytes.get()
                        } else {
                            pb.packets.get()
                        }
                    })
                })
                .sum()
        };
        per_lb(
            out,
            Counter,
            "lbfwd_lb_forwarded_packets_total",
            "Packets forwarded to the load balancer's targets.",
            &|l| forwarded(l, false),
        );
        per_lb(
            out,
            Counter,
            "lbfwd_lb_forwarded_bytes_total",
            "Bytes forwarded to the load balancer's targets (encapsulated frames).",
            &|l| forwarded(l, true),
        );
        per_lb(
            out,
            Counter,
            "lbfwd_lb_filtered_packets_total",
            "Packets to the load balancer's addresses dropped by its port/protocol filter.",
            &|l| sum(&|c| c.lb_drops[l.slot as usize].get()),
        );
        per_lb(
            out,
            Gauge,
            "lbfwd_lb_flows",
            "Live flows of the load balancer over all workers (counted by each worker's flow-table sweep).",
            &|l| sum(&|c| c.lb_flows[l.slot as usize].get()),
        );
        per_lb(
            out,
            Gauge,
            "lbfwd_lb_targets",
            "Destinations in the load balancer's routing (draining ones included).",
            &|l| l.targets.len() as u64,
        );
        let per_target = |out: &mut Exposition,
                          kind: super::MetricType,
                          name: &str,
                          help: &str,
                          value: &dyn Fn(&crate::tables::Target) -> u64| {
            let mut f = out.family(name, kind, help);
            for lb in lbs.iter() {
                for t in &lb.targets {
                    f.sample(
                        &[
                            ("load_balancer", &lb.name),
                            ("target", &t.name),
                            ("uid", &t.uid),
                        ],
                        value(t),
                    );
                }
            }
        };
        per_target(
            out,
            Counter,
            "lbfwd_target_packets_total",
            "Packets sent to the target (labelled with the destination's name and uid).",
            &|t| sum(&|c| c.targets[t.slot as usize].packets.get()),
        );
        per_target(
            out,
            Counter,
            "lbfwd_target_bytes_total",
            "Bytes sent to the target (encapsulated frames).",
            &|t| sum(&|c| c.targets[t.slot as usize].bytes.get()),
        );
        per_target(
            out,
            Gauge,
            "lbfwd_target_weight",
            "Maglev weight of the target (0: draining).",
            &|t| u64::from(t.weight),
        );
        collect_process(out);
    }
}

/// Linux's fixed clock-tick unit of `/proc` times (USER_HZ).
const USER_HZ: f64 = 100.0;

/// The standard `process_*` family from `/proc/self` (what Prometheus'
/// client libraries export), for CPU and memory panels.
pub fn collect_process(out: &mut Exposition) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name (which may contain spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> f64 {
        // `n` is the field number of proc(5), counting from 1 (pid).
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let cpu = (field(14) + field(15)) / USER_HZ;
    out.counter(
        "process_cpu_seconds_total",
        "User and system CPU time of the process, all threads.",
    )
    .sample(&[], cpu);
    // The page size of amd64 (the package's architecture).
    let page = 4096.0;
    out.gauge("process_resident_memory_bytes", "Resident memory.")
        .sample(&[], field(24) * page);
    out.gauge("process_virtual_memory_bytes", "Virtual memory.")
        .sample(&[], field(23));
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let Some(boot) = boot {
        out.gauge(
            "process_start_time_seconds",
            "Start time of the process, seconds since the Unix epoch.",
        )
        .sample(&[], boot + field(22) / USER_HZ);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.gauge("process_open_fds", "Open file descriptors.")
            .sample(&[], fds.count() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{snapshot, WorkerView};
    use crate::tables::UnderlayParams;
    use lbfwd_config::Config;

    const CONFIG: &str = r#"
[dataplane]
backend = "memory"
workers = [0, 1]
[underlay]
encap = "ipip"
source_ipv4 = "10.0.2.2"
next_hop_mac = "02:00:00:00:02:01"
[[pool]]
name = "public"
addresses = ["203.0.113.0/29"]
[[network]]
name = "n"
vni = 100
[[network_interface]]
name = "a"
uid = "uid-a"
network = "n"
underlay = "10.0.3.11"
[[network_interface]]
name = "b"
network = "n"
underlay = "10.0.3.12"
[[load_balancer]]
name = "web"
type = "Public"
network = "n"
network_interface_selector = {}
[[load_balancer]]
name = "dns"
type = "Public"
network = "n"
network_interface_selector = {}
"#;

    #[test]
    fn families_sum_the_workers_as_lbctl_stats_does() {
        let config = Config::from_toml_str(CONFIG, "t.toml").unwrap();
        let resolved = config.resolve().unwrap().resolved;
        let underlay =
            UnderlayParams::from_settings(&config.settings.underlay, Some([2, 0, 0, 0, 0, 9]));
        let dp = Arc::new(Dataplane::new(&resolved, underlay, 2).unwrap());
        let tables = dp.current();
        let web = tables.lbs.iter().find(|l| l.name == "web").unwrap();
        let a = web.targets.iter().find(|t| t.name == "a").unwrap();
        for (w, n) in [(0usize, 3u64), (1, 4)] {
            let c = &dp.counters()[w];
            for _ in 0..n {
                c.targets[a.slot as usize].count(100);
                c.rx.count(80);
            }
            c.lb_drops[web.slot as usize].add(n);
            c.dropped(DropReason::NoTarget);
        }
        let loops: Arc<[WorkerStats]> = (0..2).map(|_| WorkerStats::default()).collect();
        let collector =
            DataplaneCollector::new(Arc::clone(&dp), loops, vec![Some(0), Some(1)], "memory");
        let mut out = Exposition::new();
        collector.collect(&mut out);
        let text = out.into_text();
        for line in [
            r#"lbfwd_target_packets_total{load_balancer="web",target="a",uid="uid-a"} 7"#,
            r#"lbfwd_target_bytes_total{load_balancer="web",target="a",uid="uid-a"} 700"#,
            r#"lbfwd_target_packets_total{load_balancer="web",target="b",uid=""} 0"#,
            r#"lbfwd_lb_forwarded_packets_total{load_balancer="web"} 7"#,
            r#"lbfwd_lb_filtered_packets_total{load_balancer="web"} 7"#,
            r#"lbfwd_lb_targets{load_balancer="dns"} 2"#,
            r#"lbfwd_received_packets_total{worker="1"} 4"#,
            r#"lbfwd_dropped_packets_total{worker="0",reason="no_target"} 1"#,
            r#"lbfwd_worker_info{worker="1",core="1"} 1"#,
            "lbfwd_table_publishes_total 0",
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "no `{line}` in\n{text}"
            );
        }
        // The same sums as `lbctl stats`.
        let views: Vec<WorkerView<'_>> = dp
            .counters()
            .iter()
            .map(|c| WorkerView {
                counters: c,
                core: None,
                flows: 0,
            })
            .collect();
        let (snap, _) = snapshot(&tables, &views, 0, None);
        for lb in &snap.load_balancers {
            let line = format!(
                "lbfwd_lb_forwarded_bytes_total{{load_balancer=\"{}\"}} {}\n",
                lb.name, lb.forwarded.bytes
            );
            assert!(text.contains(&line), "{line}");
        }
        // Every series once.
        let mut series: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').unwrap().0)
            .collect();
        let n = series.len();
        series.sort();
        series.dedup();
        assert_eq!(series.len(), n, "a series is written twice");
    }
}
