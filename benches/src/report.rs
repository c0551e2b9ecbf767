//! Benchmark records (one JSON object per line while the suite runs) and
//! what `scripts/bench.sh` makes of them: `results.json` (every record and
//! the machine), `results.md` (the tables) and PNG plots.

use crate::machine::Machine;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// Pipeline throughput on the in-process memory path (one measurement).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Throughput {
    /// Which sweep this point belongs to (`workers`, `size`, `flows`,
    /// `mix`, `churn`, `target`).
    pub sweep: String,
    /// Worker threads.
    pub workers: usize,
    /// Cores they were pinned to.
    pub cores: Vec<usize>,
    /// Frame length in bytes (no FCS).
    pub frame_len: usize,
    /// Distinct flows.
    pub flows: u32,
    /// VIPs the flows go to.
    pub vips: u32,
    /// Load balancers in the tables.
    pub lbs: usize,
    /// Targets per load balancer.
    pub targets: usize,
    /// Maglev table size.
    pub maglev_size: u32,
    /// Share of IPv6 flows.
    pub ipv6_share: f64,
    /// Share of flows the filter drops.
    pub drop_share: f64,
    /// Share of fragmented flows.
    pub frag_share: f64,
    /// Routing change period in ms (0: none).
    pub churn_ms: u64,
    /// Table versions published during the run.
    pub publishes: u64,
    /// Mean time to build and publish one version, ms.
    pub publish_ms: f64,
    /// Length of the measured window, s.
    pub seconds: f64,
    /// Packets processed in the window (all workers).
    pub packets: u64,
    /// Mpps, all workers.
    pub mpps: f64,
    /// Share of the window the workers were on a CPU (below 1 when other
    /// work shares their cores).
    pub cpu_share: f64,
    /// Mpps per worker core: packets over the CPU time the workers got.
    pub mpps_per_core: f64,
    /// ns per packet on one core, generator included.
    pub ns_per_packet: f64,
    /// ns per packet the generator alone costs on the worker core.
    pub gen_ns_per_packet: f64,
    /// Mpps per core of the pipeline alone (generator cost taken out).
    pub pipeline_mpps_per_core: f64,
    /// Share of received packets transmitted (whole run).
    pub tx_share: f64,
    /// Share of received packets dropped (whole run).
    pub drop_verdict_share: f64,
    /// Flows picked through Maglev (whole run).
    pub flow_picks: u64,
    /// Encapsulation of the configuration (`vxlan`, `gue`, `ipip`; empty
    /// in records written before it was recorded).
    #[serde(default)]
    pub encap: String,
}

/// Latency of one burst through the pipeline.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// `miss` (first round: every flow new) or `hit` (later rounds).
    pub phase: String,
    /// Frames per burst.
    pub burst: usize,
    /// Bursts measured.
    pub bursts: u64,
    /// Frame length.
    pub frame_len: usize,
    /// Flows.
    pub flows: u32,
    /// Core the measurement ran on.
    pub core: usize,
    /// Per burst, ns: p50, p90, p99, p99.9, max.
    pub burst_ns: [u64; 5],
    /// Per packet (burst time / burst), ns: p50, p90, p99, p99.9, max.
    pub packet_ns: [f64; 5],
    /// Which sweep the run belongs to (`many`: the many-flows table; empty
    /// in older records).
    #[serde(default)]
    pub sweep: String,
    /// Load balancers in the tables.
    #[serde(default)]
    pub lbs: usize,
    /// Targets per load balancer.
    #[serde(default)]
    pub targets: usize,
    /// Encapsulation.
    #[serde(default)]
    pub encap: String,
    /// Share of IPv6 flows.
    #[serde(default)]
    pub ipv6_share: f64,
}

/// ns per packet of another implementation measured on the same machine
/// (Katran's XDP balancer under BPF_PROG_TEST_RUN), for the many-flows
/// table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PerPacket {
    /// What ran (`katran`).
    pub name: String,
    /// The case (`1 VIP x 100 reals, IPIP, IPv4`).
    pub case: String,
    /// Established flows; 0: new flows (every packet a miss).
    pub flows: u32,
    /// ns per packet of this round (the empty program's cost taken out).
    pub ns_per_packet: f64,
    /// The same before the empty program's cost was taken out.
    pub raw_ns_per_packet: f64,
    /// What one test run of an empty program costs, ns.
    pub baseline_ns: f64,
    /// Round number (rounds interleave the cases).
    pub round: u32,
    /// Free-form details (core, statistic, program).
    pub detail: String,
}

/// Maglev table build time.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MaglevBuild {
    /// Table size M.
    pub size: u32,
    /// Targets N.
    pub targets: usize,
    /// Median build time, ms.
    pub ms_median: f64,
    /// Fastest build, ms.
    pub ms_min: f64,
    /// Builds timed.
    pub runs: usize,
}

/// Share of table entries (= of flows, the hash being uniform) that move
/// when `removed` of `targets` targets leave.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MaglevMoved {
    /// Table size M.
    pub size: u32,
    /// Targets N before.
    pub targets: usize,
    /// Targets removed.
    pub removed: usize,
    /// Share of entries whose target changed.
    pub moved_share: f64,
    /// The least possible: the removed targets' share.
    pub ideal_share: f64,
    /// Share of entries that moved between two surviving targets.
    pub between_survivors: f64,
}

/// A packet rate through real (or DPDK null) I/O: lbfwd or a reference.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IoRate {
    /// What forwarded (`lbfwd af_packet`, `testpmd io`, ...).
    pub name: String,
    /// The path (`net_null`, `veth af_packet`, `veth af_xdp`).
    pub path: String,
    /// Mpps arriving at the sink (or testpmd's own count).
    pub mpps: f64,
    /// Mpps the generator offered (0 when not known).
    pub offered_mpps: f64,
    /// Free-form details (command, frame size, flows).
    pub detail: String,
}

/// One line of the results file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// Memory-path throughput.
    Throughput(Throughput),
    /// Burst latency.
    Latency(Latency),
    /// Maglev build time.
    MaglevBuild(MaglevBuild),
    /// Maglev disruption.
    MaglevMoved(MaglevMoved),
    /// An I/O path rate.
    Io(IoRate),
    /// Another implementation's ns per packet (Katran).
    PerPacket(PerPacket),
}

/// A record and the machine it was taken on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Line {
    /// The machine.
    pub machine: Machine,
    /// The record.
    #[serde(flatten)]
    pub record: Record,
}

/// Errors of writing the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A results line is not a record.
    #[error("{path}:{line}: not a benchmark record: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        message: String,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// The PNG file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// No font to write the plots' labels with.
    #[error("no TrueType font for the plots' labels (tried {0}); install fonts-dejavu-core")]
    NoFont(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Appends `record` (with the machine) as one JSON line to `path`, or
/// prints it when `path` is `None`.
pub fn emit(path: Option<&Path>, machine: &Machine, record: Record) -> Result<(), ReportError> {
    let line = Line {
        machine: machine.clone(),
        record,
    };
    let text = serde_json::to_string(&line).unwrap_or_default();
    println!("{text}");
    if let Some(path) = path {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        writeln!(f, "{text}").map_err(io_err(path))?;
    }
    Ok(())
}

/// Reads a JSON-lines results file.
pub fn read_lines(path: &Path) -> Result<Vec<Line>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| ReportError::Parse {
                path: path.display().to_string(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

/// The Markdown tables of `lines`.
pub fn markdown(lines: &[Line], commands: &str) -> String {
    let mut s = String::new();
    let machine = lines
        .first()
        .map(|l| l.machine.summary())
        .unwrap_or_else(|| Machine::detect().summary());
    let _ = writeln!(s, "# lbfwd benchmark results\n");
    let _ = writeln!(s, "Machine: {machine}\n");
    if !commands.is_empty() {
        let _ = writeln!(s, "Produced by:\n\n```\n{}\n```\n", commands.trim());
    }
    let tp: Vec<&Throughput> = lines
        .iter()
        .filter_map(|l| match &l.record {
            Record::Throughput(t) => Some(t),
            _ => None,
        })
        .collect();
    let ceiling = io_ceiling(lines, "testpmd io", "net_null");
    if !tp.is_empty() {
        let _ = writeln!(s, "## Pipeline throughput, in-process memory path\n");
        let _ = writeln!(
            s,
            "Mpps (wall) counts packets over wall time; the machine is shared, so Mpps/core divides by the CPU time the workers actually got (`CPU %` of the window, from /proc/self/task/*/schedstat). Mpps/core includes the generator's copy of each frame into the worker's buffers (`gen ns`); `pipeline Mpps/core` takes it out. `vs testpmd io` is Mpps/core over testpmd `io` on two net_null ports, one core{}.\n",
            ceiling
                .map(|c| format!(" ({c:.2} Mpps in this run)"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "| sweep | workers | cores | frame B | flows | VIPs x targets | IPv6 | drop | frag | churn ms (publishes) | Mpps (wall) | CPU % | Mpps/core | ns/pkt | gen ns | pipeline Mpps/core | vs testpmd io | tx share |"
        );
        let _ = writeln!(
            s,
            "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for t in &tp {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} x {} | {:.0}% | {:.0}% | {:.0}% | {} | {:.2} | {:.0}% | {:.2} | {:.1} | {:.1} | {:.2} | {} | {:.3} |",
                t.sweep,
                t.workers,
                t.cores
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                t.frame_len,
                t.flows,
                t.lbs,
                t.targets,
                t.ipv6_share * 100.0,
                t.drop_share * 100.0,
                t.frag_share * 100.0,
                if t.churn_ms == 0 {
                    "-".to_string()
                } else {
                    format!("{} ({}, {:.0} ms each)", t.churn_ms, t.publishes, t.publish_ms)
                },
                t.mpps,
                t.cpu_share * 100.0,
                t.mpps_per_core,
                t.ns_per_packet,
                t.gen_ns_per_packet,
                t.pipeline_mpps_per_core,
                ceiling
                    .map(|c| format!("{:.2}", t.mpps_per_core / c))
                    .unwrap_or_else(|| "-".into()),
                t.tx_share,
            );
        }
        let _ = writeln!(s);
    }
    let lat: Vec<&Latency> = lines
        .iter()
        .filter_map(|l| match &l.record {
            Record::Latency(t) => Some(t),
            _ => None,
        })
        .collect();
    if !lat.is_empty() {
        let _ = writeln!(s, "## Burst latency through the pipeline\n");
        let _ = writeln!(
            s,
            "| phase | burst | frame B | flows | bursts | burst p50 / p90 / p99 / p99.9 / max ns | per packet p50 / p90 / p99 / p99.9 / max ns |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | --- | --- |");
        for l in lat {
            let b = l.burst_ns;
            let p = l.packet_ns;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} / {} / {} / {} / {} | {:.1} / {:.1} / {:.1} / {:.1} / {:.1} |",
                l.phase, l.burst, l.frame_len, l.flows, l.bursts, b[0], b[1], b[2], b[3], b[4], p[0], p[1], p[2], p[3], p[4]
            );
        }
        let _ = writeln!(s);
    }
    let io: Vec<&IoRate> = lines
        .iter()
        .filter_map(|l| match &l.record {
            Record::Io(t) => Some(t),
            _ => None,
        })
        .collect();
    if !io.is_empty() {
        let _ = writeln!(s, "## I/O paths: lbfwd next to dpdk-testpmd\n");
        let _ = writeln!(
            s,
            "`ratio` is the rate over testpmd `io` on the same path in this run; `delivered / offered` is the share of what the generator sent that reached the sink (near 1: the generator, not the forwarder, set the rate).\n"
        );
        let _ = writeln!(
            s,
            "| path | forwarder | Mpps | offered Mpps | delivered / offered | ratio | detail |"
        );
        let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: | ---: | --- |");
        for r in io {
            let base = io_ceiling(lines, "testpmd io", &r.path);
            let _ = writeln!(
                s,
                "| {} | {} | {:.3} | {} | {} | {} | {} |",
                r.path,
                r.name,
                r.mpps,
                if r.offered_mpps > 0.0 {
                    format!("{:.3}", r.offered_mpps)
                } else {
                    "-".into()
                },
                if r.offered_mpps > 0.0 {
                    format!("{:.2}", r.mpps / r.offered_mpps)
                } else {
                    "-".into()
                },
                base.filter(|b| *b > 0.0)
                    .map(|b| format!("{:.2}", r.mpps / b))
                    .unwrap_or_else(|| "-".into()),
                r.detail
            );
        }
        let _ = writeln!(s);
    }
    s.push_str(&crate::many::markdown(lines));
    let builds: Vec<&MaglevBuild> = lines
        .iter()
        .filter_map(|l| match &l.record {
            Record::MaglevBuild(t) => Some(t),
            _ => None,
        })
        .collect();
    if !builds.is_empty() {
        let _ = writeln!(s, "## Maglev table build time\n");
        let _ = writeln!(s, "| M | targets | median ms | min ms | builds |");
        let _ = writeln!(s, "| ---: | ---: | ---: | ---: | ---: |");
        for b in builds {
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | {:.2} | {} |",
                b.size, b.targets, b.ms_median, b.ms_min, b.runs
            );
        }
        let _ = writeln!(s);
    }
    let moved: Vec<&MaglevMoved> = lines
        .iter()
        .filter_map(|l| match &l.record {
            Record::MaglevMoved(t) => Some(t),
            _ => None,
        })
        .collect();
    if !moved.is_empty() {
        let _ = writeln!(s, "## Maglev disruption: flows moved when targets leave\n");
        let _ = writeln!(
            s,
            "| M | targets | removed | moved | ideal (removed share) | moved between survivors |"
        );
        let _ = writeln!(s, "| ---: | ---: | ---: | ---: | ---: | ---: |");
        for m in moved {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.3}% | {:.3}% | {:.3}% |",
                m.size,
                m.targets,
                m.removed,
                m.moved_share * 100.0,
                m.ideal_share * 100.0,
                m.between_survivors * 100.0
            );
        }
        let _ = writeln!(s);
    }
    s
}

/// The rate of `name` on `path` in `lines`, if measured.
pub fn io_ceiling(lines: &[Line], name: &str, path: &str) -> Option<f64> {
    lines.iter().find_map(|l| match &l.record {
        Record::Io(r) if r.name == name && r.path == path => Some(r.mpps),
        _ => None,
    })
}

const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

fn register_font() -> Result<(), ReportError> {
    for p in FONT_PATHS {
        if let Ok(bytes) = std::fs::read(p) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(
                "sans-serif",
                plotters::style::FontStyle::Normal,
                bytes,
            )
            .is_ok()
            {
                return Ok(());
            }
        }
    }
    Err(ReportError::NoFont(FONT_PATHS.join(", ")))
}

/// One line of a plot.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed-looking (no markers) as a reference line.
    pub reference: bool,
}

/// Draws `series` into a PNG at `path`.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_x: bool,
    series: &[Series],
    legend_top: bool,
) -> Result<(), ReportError> {
    use plotters::prelude::*;
    let perr = |e: &dyn std::fmt::Display| ReportError::Plot {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.clone()).collect();
    // Room above the data for the legend.
    let headroom = if legend_top { 1.15 } else { 1.6 };
    if all.is_empty() {
        return Ok(());
    }
    let (mut x0, mut x1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let y1 = all.iter().fold(0.0f64, |a, p| a.max(p.1)) * headroom + 1e-9;
    if x0 == x1 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(&e))?;
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(127, 127, 127),
    ];
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .draw()
                .map_err(|e| perr(&e))?;
            for (i, s) in series.iter().enumerate() {
                let color = if s.reference {
                    colors[5]
                } else {
                    colors[i % 5]
                };
                let style = ShapeStyle::from(color).stroke_width(2);
                chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), style))
                    .map_err(|e| perr(&e))?
                    .label(s.label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                if !s.reference {
                    chart
                        .draw_series(
                            s.points
                                .iter()
                                .map(|&p| Circle::new(p, 4, ShapeStyle::from(color).filled())),
                        )
                        .map_err(|e| perr(&e))?;
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(if legend_top {
                    SeriesLabelPosition::UpperLeft
                } else {
                    SeriesLabelPosition::UpperRight
                })
                .draw()
                .map_err(|e| perr(&e))?;
        }};
    }
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60);
    if log_x {
        draw!(builder
            .build_cartesian_2d((x0.max(1e-9)..x1 * 1.05).log_scale(), 0.0..y1)
            .map_err(|e| perr(&e))?);
    } else {
        let pad = (x1 - x0) * 0.05;
        draw!(builder
            .build_cartesian_2d((x0 - pad)..(x1 + pad), 0.0..y1)
            .map_err(|e| perr(&e))?);
    }
    root.present().map_err(|e| perr(&e))?;
    Ok(())
}

/// One Mpps plot: sweep name, file, x label, log x, the x of a point.
type PlotSpec = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    Box<dyn Fn(&Throughput) -> f64>,
);

/// Writes `results.json`, `results.md` and the PNG plots of `lines` into
/// `dir`. Returns the files written.
pub fn write_all(lines: &[Line], dir: &Path, commands: &str) -> Result<Vec<String>, ReportError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut written = Vec::new();
    let json_path = dir.join("results.json");
    let json = serde_json::json!({
        "machine": lines.first().map(|l| l.machine.clone()).unwrap_or_else(Machine::detect),
        "commands": commands,
        "records": lines,
    });
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .map_err(io_err(&json_path))?;
    written.push(json_path.display().to_string());
    let md_path = dir.join("results.md");
    std::fs::write(&md_path, markdown(lines, commands)).map_err(io_err(&md_path))?;
    written.push(md_path.display().to_string());

    register_font()?;
    let machine = lines
        .first()
        .map(|l| format!("{}, {} cores", l.machine.cpu, l.machine.cores))
        .unwrap_or_default();
    let tp = |sweep: &str| -> Vec<Throughput> {
        lines
            .iter()
            .filter_map(|l| match &l.record {
                Record::Throughput(t) if t.sweep == sweep => Some(t.clone()),
                _ => None,
            })
            .collect()
    };
    let ceiling = io_ceiling(lines, "testpmd io", "net_null");
    let plots: [PlotSpec; 3] = [
        (
            "workers",
            "mpps_per_core_vs_workers.png",
            "worker threads (one core each)",
            false,
            Box::new(|t| t.workers as f64),
        ),
        (
            "size",
            "mpps_per_core_vs_frame_size.png",
            "frame size (bytes)",
            false,
            Box::new(|t| t.frame_len as f64),
        ),
        (
            "flows",
            "mpps_per_core_vs_flows.png",
            "flows (log scale)",
            true,
            Box::new(|t| f64::from(t.flows)),
        ),
    ];
    for (sweep, file, x_label, log_x, x) in plots {
        let points = tp(sweep);
        if points.is_empty() {
            continue;
        }
        let mut series = vec![
            Series {
                label: "lbfwd Mpps per core (generator included)".into(),
                points: points.iter().map(|t| (x(t), t.mpps_per_core)).collect(),
                reference: false,
            },
            Series {
                label: "lbfwd pipeline alone, Mpps per core".into(),
                points: points
                    .iter()
                    .map(|t| (x(t), t.pipeline_mpps_per_core))
                    .collect(),
                reference: false,
            },
        ];
        let thp = tp(&format!("{sweep}_thp"));
        if !thp.is_empty() {
            series.push(Series {
                label: "lbfwd Mpps per core, malloc on transparent huge pages".into(),
                points: thp.iter().map(|t| (x(t), t.mpps_per_core)).collect(),
                reference: false,
            });
        }
        if let Some(c) = ceiling {
            let xs: Vec<f64> = points.iter().map(&x).collect();
            let (lo, hi) = xs
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
            let top = series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .fold(0.0f64, f64::max);
            // A ceiling far above the data would flatten it: name it in the
            // legend only.
            let off_scale = c > 3.0 * top;
            series.push(Series {
                label: format!(
                    "testpmd io, net_null, 1 core: {c:.1} Mpps{}",
                    if off_scale { " (off scale)" } else { "" }
                ),
                points: if off_scale {
                    Vec::new()
                } else {
                    vec![(lo, c), (hi, c)]
                },
                reference: true,
            });
        }
        let path = dir.join(file);
        line_plot(
            &path,
            &format!("Mpps per core vs {sweep} - {machine}"),
            x_label,
            "Mpps per core",
            log_x,
            &series,
            false,
        )?;
        written.push(path.display().to_string());
    }
    if let Some(p) = crate::many::plot(lines, dir, &machine)? {
        written.push(p);
    }
    let moved: Vec<&MaglevMoved> = lines
        .iter()
        .filter_map(|l| match &l.record {
            Record::MaglevMoved(m) if m.targets >= 1000 => Some(m),
            _ => None,
        })
        .collect();
    if !moved.is_empty() {
        let mut sizes: Vec<u32> = moved.iter().map(|m| m.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let mut series: Vec<Series> = sizes
            .iter()
            .map(|&size| Series {
                label: format!("M = {size}"),
                points: moved
                    .iter()
                    .filter(|m| m.size == size)
                    .map(|m| (m.removed as f64, m.moved_share * 100.0))
                    .collect(),
                reference: false,
            })
            .collect();
        series.push(Series {
            label: "ideal (the removed targets' share)".into(),
            points: moved
                .iter()
                .filter(|m| m.size == sizes[0])
                .map(|m| (m.removed as f64, m.ideal_share * 100.0))
                .collect(),
            reference: true,
        });
        let path = dir.join("maglev_disruption.png");
        line_plot(
            &path,
            &format!("Maglev: flows moved when k of 1000 targets leave - {machine}"),
            "targets removed (of 1000)",
            "flows moved (%)",
            false,
            &series,
            true,
        )?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpu: "Test CPU".into(),
            cores: 2,
            allowed_cores: vec![0, 1],
            kernel: "6.1".into(),
            load_avg_1m: 0.5,
            virtualized: false,
        }
    }

    #[test]
    fn records_round_trip_and_render() {
        let lines = vec![
            Line {
                machine: machine(),
                record: Record::Io(IoRate {
                    name: "testpmd io".into(),
                    path: "net_null".into(),
                    mpps: 20.0,
                    offered_mpps: 0.0,
                    detail: "x".into(),
                }),
            },
            Line {
                machine: machine(),
                record: Record::MaglevMoved(MaglevMoved {
                    size: 65537,
                    targets: 1000,
                    removed: 10,
                    moved_share: 0.0105,
                    ideal_share: 0.01,
                    between_survivors: 0.0005,
                }),
            },
        ];
        let text: String = lines
            .iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect();
        let dir = std::env::temp_dir().join(format!("lbfwd-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("r.jsonl");
        std::fs::write(&file, &text).unwrap();
        let back = read_lines(&file).unwrap();
        assert_eq!(back, lines);
        let md = markdown(&back, "scripts/bench.sh");
        assert!(md.contains("Test CPU, 2 cores"), "{md}");
        assert!(
            md.contains("| net_null | testpmd io | 20.000 | - | - | 1.00 |"),
            "{md}"
        );
        assert!(md.contains("| 65537 | 1000 | 10 | 1.050% |"), "{md}");
        std::fs::write(&file, "{\"kind\":\"nope\"}\n").unwrap();
        let err = read_lines(&file).unwrap_err().to_string();
        assert!(err.contains("r.jsonl:1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
