//! `lbfwd run`: loads the configuration (or the saved state), builds the
//! tables, starts the control socket and one pinned worker per configured
//! core on the configured backend, and forwards until SIGINT/SIGTERM; then
//! prints the final counters.

use lbfwd_config::settings::{Backend, Idle};
use lbfwd_config::Config;
use lbfwd_forwarder::announce::{self, Announcer};
use lbfwd_forwarder::daemon::{Daemon, DaemonError};
use lbfwd_forwarder::dataplane::Dataplane;
use lbfwd_forwarder::io::af_packet::{
    fanout_group_id, prepare_host_path, AfPacketConfig, AfPacketQueue,
};
use lbfwd_forwarder::io::memory::{MemoryConfig, MemoryPort};
use lbfwd_forwarder::io::pcap::PcapQueue;
use lbfwd_forwarder::io::{interface_info, IoError};
use lbfwd_forwarder::l2::L2;
use lbfwd_forwarder::pipeline::{Pipeline, PipelineConfig};
use lbfwd_forwarder::report::{extra_counters, render_text, snapshot, WorkerView};
use lbfwd_forwarder::runtime::{Layout, Runtime, WorkerPlacement};
use lbfwd_forwarder::tables::UnderlayParams;
use lbfwd_forwarder::worker::{IdlePolicy, WorkerConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `lbfwd run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lbfwd TOML configuration file.
    #[arg(long, short = 'c', value_name = "FILE.toml")]
    pub config: PathBuf,
    /// Ironcore manifests applied on top of the file's state at start (not
    /// when a saved state exists); repeatable.
    #[arg(short = 'f', long = "file", value_name = "MANIFEST.yaml")]
    pub manifests: Vec<PathBuf>,
    /// Leave the interfaces' forwarding sysctls alone (AF_PACKET): refuse
    /// to start if the kernel would route VIP traffic a second time, instead
    /// of turning forwarding off.
    #[arg(long)]
    pub no_sysctl: bool,
}

/// Runs `lbfwd run`.
pub fn main(args: Args) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lbfwd run: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The MAC address of an interface, from sysfs.
fn interface_mac(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(mac)
}

/// Worker placements: worker `i` on core `workers[i]` reads interface
/// `interfaces[i % n]`; workers sharing an interface share it by fanout
/// (AF_PACKET) or own one receive queue each (AF_XDP, DPDK).
fn placements(config: &Config) -> Vec<WorkerPlacement> {
    let dp = &config.settings.dataplane;
    let mut next_queue: std::collections::BTreeMap<String, u32> = Default::default();
    dp.workers
        .iter()
        .enumerate()
        .map(|(i, &core)| {
            // DPDK ports are not kernel interfaces: the DPDK backend checks
            // them itself, and gives worker i queue i.
            let ingress = (!dp.interfaces.is_empty() && dp.backend != Backend::Dpdk)
                .then(|| dp.interfaces[i % dp.interfaces.len()].clone());
            let queue = match (&ingress, dp.backend) {
                (Some(name), Backend::AfXdp) => {
                    let q = next_queue.entry(name.clone()).or_insert(0);
                    *q += 1;
                    Some(*q - 1)
                }
                _ => None,
            };
            WorkerPlacement {
                core: Some(core),
                egress: dp.egress_interface.clone().filter(|_| ingress.is_some()),
                ingress,
                queue,
            }
        })
        .collect()
}

fn run(args: &Args) -> Result<(), String> {
    let daemon =
        Daemon::start(&args.config, &args.manifests).map_err(|e: DaemonError| e.to_string())?;
    let config = daemon.config();
    let dp = &config.settings.dataplane;
    let layout = Layout {
        workers: placements(&config),
        config: WorkerConfig {
            burst: dp.burst,
            tx_drain_us: dp.tx_drain.as_micros() as u64,
            idle: match dp.idle {
                Idle::Busy => IdlePolicy::BusyPoll,
                Idle::Backoff => IdlePolicy::adaptive(),
            },
        },
        require_up: true,
    };
    let runtime = Runtime::new(layout).map_err(|e| e.to_string())?;
    let announcer = Announcer::new(&config.settings, &daemon.resolved(), &config.state.pools);
    match announcer.shutdown_delay() {
        Some(_) => announce::install_graceful_shutdown(&announcer, runtime.shutdown_flag())
            .map_err(|e| format!("cannot install the signal handlers: {e}"))?,
        None => runtime
            .install_signal_handlers()
            .map_err(|e| e.to_string())?,
    }
    let egress = dp
        .egress_interface
        .clone()
        .or_else(|| dp.interfaces.first().cloned());
    let mac = egress.as_deref().and_then(interface_mac);
    let underlay = UnderlayParams::from_settings(&config.settings.underlay, mac);
    let dataplane = Arc::new(
        Dataplane::new(&daemon.resolved(), underlay, dp.workers.len())
            .map_err(|e| e.to_string())?,
    );
    let pipeline_config = PipelineConfig::from_settings(&config.settings.flow);
    let l2 = match &config.settings.l2 {
        Some(c) => {
            let on: Vec<Option<String>> = runtime
                .layout()
                .workers
                .iter()
                .map(|p| match dp.backend {
                    Backend::Dpdk => dp.interfaces.first().cloned(),
                    _ => p.ingress.clone(),
                })
                .collect();
            let kernel = matches!(dp.backend, Backend::AfPacket | Backend::AfXdp);
            Some(L2::new(c, &on, kernel).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let make_pipeline = |i: usize| {
        let p = Pipeline::new(
            dataplane.publisher().reader(i),
            Arc::clone(&dataplane.counters()[i]),
            &pipeline_config,
        )
        .expect("pipeline sizes were validated with the config");
        match &l2 {
            Some(l2) => p.with_l2(l2.responder(i)),
            None => p,
        }
    };
    // Check the pipeline sizes once here, where an error can still be told.
    Pipeline::new(
        dataplane.publisher().reader(0),
        Arc::clone(&dataplane.counters()[0]),
        &pipeline_config,
    )
    .map_err(|e| e.to_string())?;
    let control = daemon
        .serve(Arc::clone(&dataplane), runtime.layout().clone())
        .map_err(|e| e.to_string())?;
    // After the socket lock: a second lbfwd on this socket must not touch
    // the first one's BIRD.
    // Changes from now on reach the announcer; BIRD starts with the state
    // current when it starts.
    daemon.set_announcer(Arc::clone(&announcer));
    if let Some(l2) = &l2 {
        announcer.attach_l2(Arc::clone(l2));
    }
    announcer.start_bird().map_err(|e| e.to_string())?;
    announce::announce_when_running(&announcer, runtime.stats());
    eprintln!(
        "lbfwd: {} backend, {} worker(s), {} load balancer(s), control socket {}",
        dp.backend,
        dp.workers.len(),
        dataplane.current().lbs.len(),
        config.settings.control.socket.display()
    );
    let placements = runtime.layout().workers.clone();
    let result = match dp.backend {
        Backend::AfPacket => {
            let interfaces: Vec<&str> = dp
                .interfaces
                .iter()
                .chain(dp.egress_interface.iter())
                .map(String::as_str)
                .collect();
            let report =
                prepare_host_path(&interfaces, !args.no_sysctl).map_err(|e| e.to_string())?;
            for change in &report.changed {
                eprintln!("lbfwd: host path: set {change}");
            }
            let shared: std::collections::BTreeMap<String, usize> =
                placements.iter().fold(Default::default(), |mut m, p| {
                    if let Some(i) = &p.ingress {
                        *m.entry(i.clone()).or_default() += 1;
                    }
                    m
                });
            let open = |i: usize| -> Result<AfPacketQueue, IoError> {
                let p = &placements[i];
                let ingress = p.ingress.as_deref().unwrap_or_default();
                let mut c = AfPacketConfig::new(ingress);
                c.egress = p.egress.clone();
                if shared.get(ingress).copied().unwrap_or(0) > 1 {
                    c.fanout = Some(fanout_group_id(interface_info(ingress)?.index));
                }
                AfPacketQueue::open(&c)
            };
            runtime.run(open, make_pipeline)
        }
        Backend::AfXdp => run_af_xdp(&runtime, &config, &dataplane, &placements, make_pipeline),
        Backend::Dpdk => run_dpdk(&runtime, &config, l2.as_deref(), make_pipeline),
        Backend::Pcap => {
            let (Some(input), Some(output)) = (&dp.pcap.input, &dp.pcap.output) else {
                return Err("[dataplane.pcap] needs input and output files".into());
            };
            let open = |_i: usize| PcapQueue::open(input, output, None);
            runtime.run(open, make_pipeline)
        }
        Backend::Memory => {
            // No traffic source: workers idle until stopped (control-plane
            // tests and dry runs).
            let open = |_i: usize| -> Result<_, IoError> {
                let (queue, _feeder, _sink) = MemoryPort::new(MemoryConfig::default())?.split();
                Ok(queue)
            };
            runtime.run(open, make_pipeline)
        }
    };
    control.shutdown();
    announcer.stop();
    let report = result.map_err(|e| e.to_string())?;
    let tables = dataplane.current();
    let views: Vec<WorkerView<'_>> = dataplane
        .counters()
        .iter()
        .zip(&placements)
        .map(|(c, p)| WorkerView {
            counters: c,
            core: p.core,
            flows: c.flows_live.get(),
        })
        .collect();
    let (snap, _) = snapshot(&tables, &views, daemon.uptime_secs(), None);
    let mut extra = Vec::new();
    for c in dataplane.counters() {
        for (name, value) in extra_counters(c) {
            match extra.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => *v += value,
                None => extra.push((name, value)),
            }
        }
    }
    eprintln!("lbfwd: stopped; final counters:");
    eprint!("{}", render_text(&snap, &extra));
    eprint!("{report}");
    Ok(())
}

#[cfg(feature = "af_xdp")]
fn run_af_xdp<M, P>(
    runtime: &Runtime,
    config: &Config,
    dataplane: &Arc<Dataplane>,
    placements: &[WorkerPlacement],
    make_pipeline: M,
) -> Result<lbfwd_forwarder::runtime::RunReport, lbfwd_forwarder::runtime::RuntimeError>
where
    M: Fn(usize) -> P + Sync,
    P: lbfwd_forwarder::worker::Processor,
{
    use lbfwd_config::settings::{XdpAttach, XdpMode};
    use lbfwd_forwarder::io::af_xdp::{AttachMode, CopyMode, XdpProgram, XskQueue, XskSettings};
    let x = &config.settings.dataplane.af_xdp;
    let attach = match x.attach {
        XdpAttach::Auto => AttachMode::Auto,
        XdpAttach::Native => AttachMode::Native,
        XdpAttach::Generic => AttachMode::Generic,
    };
    let settings = XskSettings {
        copy_mode: match x.mode {
            XdpMode::Auto => CopyMode::Auto,
            XdpMode::Copy => CopyMode::Copy,
            XdpMode::Zerocopy => CopyMode::ZeroCopy,
        },
        frames: x.frame_count,
        ..XskSettings::default()
    };
    let mut programs = std::collections::BTreeMap::new();
    for p in placements {
        let ingress = p.ingress.clone().unwrap_or_default();
        if let std::collections::btree_map::Entry::Vacant(slot) = programs.entry(ingress) {
            let ingress = slot.key();
            let program = XdpProgram::attach(ingress, attach).map_err(|e| {
                lbfwd_forwarder::runtime::RuntimeError::Layout(format!("af_xdp on {ingress}: {e}"))
            })?;
            let sink_program = Arc::clone(&program);
            dataplane
                .add_vip_sink(Box::new(move |vips| {
                    sink_program.set_vips(vips).map_err(|e| e.to_string())
                }))
                .map_err(|e| lbfwd_forwarder::runtime::RuntimeError::Layout(e.to_string()))?;
            slot.insert(program);
        }
    }
    let open = |i: usize| -> Result<XskQueue, IoError> {
        let p = &placements[i];
        let program = &programs[p.ingress.as_deref().unwrap_or_default()];
        let egress = p.egress.as_deref().map(|e| (e, p.queue.unwrap_or(0)));
        XskQueue::open(program, p.queue.unwrap_or(0), egress, &settings)
            .map_err(|e| IoError::Setup(e.to_string()))
    };
    runtime.run(open, make_pipeline)
}

#[cfg(not(feature = "af_xdp"))]
fn run_af_xdp<M, P>(
    _runtime: &Runtime,
    _config: &Config,
    _dataplane: &Arc<Dataplane>,
    _placements: &[WorkerPlacement],
    _make_pipeline: M,
) -> Result<lbfwd_forwarder::runtime::RunReport, lbfwd_forwarder::runtime::RuntimeError>
where
    M: Fn(usize) -> P + Sync,
    P: lbfwd_forwarder::worker::Processor,
{
    Err(lbfwd_forwarder::runtime::RuntimeError::Layout(
        "backend af_xdp: this lbfwd was built without the `af_xdp` feature \
         (cargo build --features af_xdp; needs libxdp-dev and libbpf-dev)"
            .into(),
    ))
}

#[cfg(feature = "dpdk")]
fn run_dpdk<M, P>(
    runtime: &Runtime,
    config: &Config,
    l2: Option<&L2>,
    make_pipeline: M,
) -> Result<lbfwd_forwarder::runtime::RunReport, lbfwd_forwarder::runtime::RuntimeError>
where
    M: Fn(usize) -> P + Sync,
    P: lbfwd_forwarder::worker::Processor,
{
    use lbfwd_forwarder::io::dpdk::{DpdkOptions, DpdkPort, PortOptions, PortSpec};
    use lbfwd_forwarder::runtime::RuntimeError;
    let dp = &config.settings.dataplane;
    let bad = |e: lbfwd_forwarder::io::dpdk::DpdkError| RuntimeError::Layout(format!("dpdk: {e}"));
    let opts = DpdkOptions::from(&dp.dpdk);
    lbfwd_forwarder::io::dpdk::init_eal(&opts).map_err(bad)?;
    let Some(port_name) = dp.interfaces.first() else {
        return Err(RuntimeError::Layout(
            "dpdk: [dataplane] interfaces must name the DPDK port (PCI address or vdev name)"
                .into(),
        ));
    };
    let mut port_opts = PortOptions::new(dp.workers.len());
    port_opts.burst = dp.burst as u16;
    port_opts.mtu = dp.dpdk.mtu;
    port_opts.host_tap = dp.dpdk.host_tap.clone();
    // Layer-2 announcement: the solicited-node groups of the VIPs.
    port_opts.allmulticast = l2.is_some();
    let (ingress, egress) = match &dp.egress_interface {
        None => (DpdkPort::open(port_name, &port_opts).map_err(bad)?, None),
        Some(out) => {
            let mut out_opts = port_opts.clone();
            out_opts.host_tap = None;
            let (i, e) = DpdkPort::open_two_armed(
                PortSpec::Name(port_name),
                PortSpec::Name(out),
                &port_opts,
                &out_opts,
            )
            .map_err(bad)?;
            (i, Some(e))
        }
    };
    for port in std::iter::once(&ingress).chain(egress.iter()) {
        eprintln!("lbfwd: dpdk: {}", port.summary());
        match port.wait_for_link(std::time::Duration::from_secs(5)) {
            Ok(link) => eprintln!("lbfwd: dpdk: {link}"),
            Err(e) => eprintln!("lbfwd: dpdk: link state unknown: {e}"),
        }
    }
    if let Some(l2) = l2 {
        l2.set_mac(port_name, ingress.summary().mac);
    }
    let open = |i: usize| -> Result<_, IoError> {
        match &egress {
            None => ingress.queue(i),
            Some(e) => ingress.queue_two_armed(i, e),
        }
        .map_err(|e| IoError::Setup(e.to_string()))
    };
    runtime.run(open, make_pipeline)
}

#[cfg(not(feature = "dpdk"))]
fn run_dpdk<M, P>(
    _runtime: &Runtime,
    _config: &Config,
    _l2: Option<&L2>,
    _make_pipeline: M,
) -> Result<lbfwd_forwarder::runtime::RunReport, lbfwd_forwarder::runtime::RuntimeError>
where
    M: Fn(usize) -> P + Sync,
    P: lbfwd_forwarder::worker::Processor,
{
    Err(lbfwd_forwarder::runtime::RuntimeError::Layout(
        "backend dpdk: this lbfwd was built without the `dpdk` feature \
         (cargo build --features dpdk; needs libdpdk-dev)"
            .into(),
    ))
}
