//! The many-flows figures (issue 18): ns per packet against the number of
//! established flows for each configuration and address family, the
//! new-flow cost (every packet a miss), and Katran's XDP balancer on the
//! same core when `scripts/katran-bench.sh` ran; medians over interleaved
//! rounds. `scripts/bench.sh` section `many` records them, `report` turns
//! them into a table of `results.md` and `ns_per_packet_vs_flows.png`.

use crate::report::{line_plot, Latency, Line, PerPacket, Record, ReportError, Series, Throughput};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The sweep name of the many-flows throughput points and latency runs.
pub const SWEEP: &str = "many";

/// One column of the table: a configuration and an address family.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Column {
    /// Load balancers (VIPs).
    pub lbs: usize,
    /// Targets per load balancer.
    pub targets: usize,
    /// Encapsulation name.
    pub encap: String,
    /// IPv6 (true) or IPv4.
    pub ipv6: bool,
}

impl Column {
    /// Header text, e.g. `1 VIP x 100, IPIP, IPv4`.
    pub fn label(&self) -> String {
        format!(
            "{} VIP{} x {}, {}, {}",
            self.lbs,
            if self.lbs == 1 { "" } else { "s" },
            self.targets,
            self.encap.to_uppercase(),
            if self.ipv6 { "IPv6" } else { "IPv4" }
        )
    }
}

/// Median, minimum and maximum of some values (none when empty).
pub fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((median, v[0], v[n - 1]))
}

/// What the table shows for one column: ns per packet of every round at
/// each flow count, and the new-flow p50 of every round.
#[derive(Debug, Default)]
pub struct Measured {
    /// flows -> ns per packet of each round.
    pub established: BTreeMap<u32, Vec<f64>>,
    /// Per-packet p50 ns of each round where every packet is a miss.
    pub new_flows: Vec<f64>,
}

fn throughput_column(t: &Throughput) -> Column {
    Column {
        lbs: t.lbs,
        targets: t.targets,
        encap: t.encap.clone(),
        ipv6: t.ipv6_share >= 0.5,
    }
}

fn latency_column(l: &Latency) -> Column {
    Column {
        lbs: l.lbs,
        targets: l.targets,
        encap: l.encap.clone(),
        ipv6: l.ipv6_share >= 0.5,
    }
}

/// lbfwd's many-flows measurements by column.
pub fn lbfwd_columns(lines: &[Line]) -> BTreeMap<Column, Measured> {
    let mut cols: BTreeMap<Column, Measured> = BTreeMap::new();
    for l in lines {
        match &l.record {
            Record::Throughput(t) if t.sweep == SWEEP => {
                cols.entry(throughput_column(t))
                    .or_default()
                    .established
                    .entry(t.flows)
                    .or_default()
                    .push(t.ns_per_packet);
            }
            Record::Latency(lat) if lat.sweep == SWEEP && lat.phase == "miss" => {
                cols.entry(latency_column(lat))
                    .or_default()
                    .new_flows
                    .push(lat.packet_ns[0]);
            }
            _ => {}
        }
    }
    cols
}

/// The reference implementations' figures (Katran), by name and case.
pub fn reference_columns(lines: &[Line]) -> BTreeMap<String, Measured> {
    let mut cols: BTreeMap<String, Measured> = BTreeMap::new();
    for l in lines {
        if let Record::PerPacket(p) = &l.record {
            let m = cols.entry(reference_label(p)).or_default();
            if p.flows == 0 {
                m.new_flows.push(p.ns_per_packet);
            } else {
                m.established
                    .entry(p.flows)
                    .or_default()
                    .push(p.ns_per_packet);
            }
        }
    }
    cols
}

fn reference_label(p: &PerPacket) -> String {
    format!("{} ({})", p.name, p.case)
}

fn cell(values: Option<&Vec<f64>>, rate: bool) -> String {
    match values.and_then(|v| spread(v)) {
        None => "-".into(),
        Some((m, lo, hi)) => {
            let mut s = format!("{m:.0} ns");
            if rate && m > 0.0 {
                let _ = write!(s, " ({:.1} Mpps)", 1e3 / m);
            }
            if values.map_or(0, |v| v.len()) > 1 {
                let _ = write!(s, " [{lo:.0}-{hi:.0}]");
            }
            s
        }
    }
}

/// The Markdown section (empty when nothing was measured).
pub fn markdown(lines: &[Line]) -> String {
    let ours = lbfwd_columns(lines);
    let refs = reference_columns(lines);
    if ours.is_empty() && refs.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    let rounds = ours
        .values()
        .flat_map(|m| m.established.values().map(|v| v.len()))
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "## Many flows: ns per packet against established flows\n"
    );
    let _ = writeln!(
        s,
        "`lbfwd-pktgen memory --sweep many` (one worker, 64-byte TCP frames, Maglev M = 65537): ns per packet on the worker's core (CPU time the worker got, generator included), median of {rounds} interleaved rounds, [min-max]; Mpps = 1000 / ns. *new flows*: `lbfwd-pktgen latency --rounds 0 --sweep many`, the first pass over 1M flows (every packet a miss: Maglev pick and insert), p50 of the per-packet time of a burst of 32, median over the rounds. Reference columns: `scripts/katran-bench.sh` (Katran's XDP balancer under BPF_PROG_TEST_RUN on the same core, the same frames; the empty-program cost of a test run taken out).\n"
    );
    let mut header = String::from("| flows |");
    let mut rule = String::from("| ---: |");
    for c in ours.keys() {
        let _ = write!(header, " {} |", c.label());
        rule.push_str(" ---: |");
    }
    for name in refs.keys() {
        let _ = write!(header, " {name} |");
        rule.push_str(" ---: |");
    }
    let _ = writeln!(s, "{header}\n{rule}");
    let mut flows: Vec<u32> = ours
        .values()
        .chain(refs.values())
        .flat_map(|m| m.established.keys().copied())
        .collect();
    flows.sort_unstable();
    flows.dedup();
    for f in flows {
        let mut row = format!("| {f} |");
        for m in ours.values().chain(refs.values()) {
            let _ = write!(row, " {} |", cell(m.established.get(&f), true));
        }
        let _ = writeln!(s, "{row}");
    }
    let mut row = String::from("| new flows (every packet a miss), p50 |");
    for m in ours.values().chain(refs.values()) {
        let v = (!m.new_flows.is_empty()).then_some(&m.new_flows);
        let _ = write!(row, " {} |", cell(v, false));
    }
    let _ = writeln!(s, "{row}\n");
    // The ratio to the reference, where both were measured.
    if let Some((name, r)) = refs.iter().next() {
        let mut rows = String::new();
        for (c, m) in ours.iter().filter(|(c, _)| !c.ipv6) {
            for (f, v) in &r.established {
                let ours_f = m.established.get(f).and_then(|x| spread(x));
                if let (Some(a), Some(b)) = (spread(v), ours_f) {
                    let _ = writeln!(rows, "| {f} | {} | {:.2} |", c.label(), a.0 / b.0);
                }
            }
            if let (Some(a), Some(b)) = (spread(&r.new_flows), spread(&m.new_flows)) {
                let _ = writeln!(rows, "| new flows | {} | {:.2} |", c.label(), a.0 / b.0);
            }
        }
        if !rows.is_empty() {
            let _ = writeln!(
                s,
                "Ratio {name} / lbfwd (ns over ns; above 1: lbfwd faster), from the medians:\n\n| flows | lbfwd column | ratio |\n| ---: | --- | ---: |\n{rows}"
            );
        }
    }
    s
}

/// `ns_per_packet_vs_flows.png`: ns per packet against established flows,
/// one line per column, Katran's included; `None` when nothing was measured.
pub fn plot(lines: &[Line], dir: &Path, machine: &str) -> Result<Option<String>, ReportError> {
    let ours = lbfwd_columns(lines);
    let refs = reference_columns(lines);
    let line = |label: String, m: &Measured, reference: bool| Series {
        label,
        points: m
            .established
            .iter()
            .filter_map(|(f, v)| spread(v).map(|(med, _, _)| (f64::from(*f), med)))
            .collect(),
        reference,
    };
    let mut series: Vec<Series> = ours
        .iter()
        .map(|(c, m)| line(format!("lbfwd, {}", c.label()), m, false))
        .collect();
    series.extend(refs.iter().map(|(n, m)| line(n.clone(), m, false)));
    series.retain(|s| !s.points.is_empty());
    if series.is_empty() {
        return Ok(None);
    }
    let path = dir.join("ns_per_packet_vs_flows.png");
    line_plot(
        &path,
        &format!("ns per packet vs established flows, one core - {machine}"),
        "established flows (log scale)",
        "ns per packet (median of rounds)",
        true,
        &series,
        true,
    )?;
    Ok(Some(path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]), Some((2.5, 1.0, 4.0)));
    }

    #[test]
    fn columns_carry_the_configuration() {
        let c = Column {
            lbs: 1000,
            targets: 100,
            encap: "vxlan".into(),
            ipv6: true,
        };
        assert_eq!(c.label(), "1000 VIPs x 100, VXLAN, IPv6");
        assert_eq!(
            cell(Some(&vec![25.0, 20.0, 30.0]), true),
            "25 ns (40.0 Mpps) [20-30]"
        );
        assert_eq!(cell(None, true), "-");
    }
}
