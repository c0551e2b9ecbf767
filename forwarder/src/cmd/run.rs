//! `lbfwd run`: loads the configuration (or the saved state), builds the
//! tables, starts the control socket and one pinned worker per configured
//! core on the configured backend, and forwards until SIGINT/SIGTERM; then
//! prints the final counters.

use crate::cmd::{error_chain, ConfigArgs};
use lbfwd_config::settings::Idle;
use lbfwd_forwarder::announce::{self, Announcer};
use lbfwd_forwarder::daemon::{Daemon, DaemonError};
use lbfwd_forwarder::dataplane::{Dataplane, VipSink};
use lbfwd_forwarder::flow::persist::FlowStore;
use lbfwd_forwarder::io::open::{egress_mac, queue_places, Backend, OpenOptions, RunQueues};
use lbfwd_forwarder::io::{IoError, WorkerQueue};
use lbfwd_forwarder::l2::L2;
use lbfwd_forwarder::pipeline::{Pipeline, PipelineConfig};
use lbfwd_forwarder::report::{extra_counters, render_text, snapshot, WorkerView};
use lbfwd_forwarder::runtime::{Layout, RunReport, Runtime, RuntimeError, WorkerPlacement};
use lbfwd_forwarder::sync::SyncService;
use lbfwd_forwarder::tables::UnderlayParams;
use lbfwd_forwarder::worker::{IdlePolicy, WorkerConfig};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `lbfwd run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
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
            log::error!("lbfwd run: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime as what runs the backend's queues, each worker with its
/// own pipeline.
struct OnRuntime<'a, M> {
    runtime: &'a Runtime,
    make_pipeline: M,
}

impl<M: Fn(usize) -> Pipeline + Sync> RunQueues for OnRuntime<'_, M> {
    type Output = Result<RunReport, RuntimeError>;

    fn run<Q, O>(self, open_queue: O) -> Self::Output
    where
        Q: WorkerQueue,
        O: Fn(usize) -> Result<Q, IoError> + Sync,
    {
        self.runtime.run(open_queue, self.make_pipeline)
    }
}

fn run(args: &Args) -> Result<(), String> {
    let daemon = Daemon::start(&args.config.config, &args.config.manifests)
        .map_err(|e: DaemonError| error_chain(&e))?;
    let config = daemon.config();
    let dp = &config.settings.dataplane;
    let places = queue_places(dp);
    let layout = Layout {
        workers: places
            .iter()
            .zip(&dp.workers)
            .map(|(place, &core)| WorkerPlacement {
                core: Some(core),
                ingress: place.ingress.clone(),
                egress: place.egress.clone(),
                queue: place.queue,
            })
            .collect(),
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
    let runtime = Runtime::new(layout).map_err(|e| error_chain(&e))?;
    let announcer = Announcer::new(&config.settings, &daemon.resolved(), &config.state.pools);
    match announcer.shutdown_delay() {
        Some(_) => announce::install_graceful_shutdown(&announcer, runtime.shutdown_flag())
            .map_err(|e| format!("cannot install the signal handlers: {e}"))?,
        None => runtime
            .install_signal_handlers()
            .map_err(|e| error_chain(&e))?,
    }
    // The egress MAC before the tables are built (DPDK: EAL starts here).
    let mac = egress_mac(dp).map_err(|e| error_chain(&e))?;
    let underlay = UnderlayParams::from_settings(&config.settings.underlay, mac);
    // Before the first tables: it reads the slot directory the previous run
    // left, which they replace.
    let flow_store = config.settings.flow.persist.as_ref().and_then(|p| {
        FlowStore::open(&p.dir, dp.workers.len(), &dp.backend.to_string())
            .map_err(|e| log::warn!("flow tables kept in memory only (a restart loses them): {e}"))
            .ok()
            .map(Arc::new)
    });
    let dataplane = Arc::new(
        Dataplane::new(&daemon.resolved(), underlay, dp.workers.len())
            .map_err(|e| error_chain(&e))?,
    );
    if let Some(store) = &flow_store {
        dataplane.set_flow_store(Arc::clone(store));
    }
    let pipeline_config = PipelineConfig::from_settings(&config.settings.flow);
    let l2 = match &config.settings.l2 {
        Some(c) => {
            use lbfwd_config::settings::Backend as Kind;
            // DPDK: every worker polls the one port.
            let on: Vec<Option<String>> = runtime
                .layout()
                .workers
                .iter()
                .map(|p| match dp.backend {
                    Kind::Dpdk => dp.interfaces.first().cloned(),
                    _ => p.ingress.clone(),
                })
                .collect();
            let kernel = matches!(dp.backend, Kind::AfPacket | Kind::AfXdp);
            Some(L2::new(c, &on, kernel).map_err(|e| error_chain(&e))?)
        }
        None => None,
    };
    let mut sync = match &config.settings.sync {
        Some(s) => {
            // Off the worker cores, like the metrics thread.
            let free_core = lbfwd_forwarder::runtime::allowed_cores()
                .ok()
                .and_then(|all| all.into_iter().find(|c| !dp.workers.contains(c)));
            let service =
                SyncService::start(s, pipeline_config.timeouts, dp.workers.len(), free_core)
                    .map_err(|e| error_chain(&e))?;
            dataplane.set_sync(Arc::clone(service.shared()));
            Some(service)
        }
        None => None,
    };
    let make_pipeline = |i: usize| {
        let (reader, counters) = (
            dataplane.publisher().reader(i),
            Arc::clone(&dataplane.counters()[i]),
        );
        let p = match &flow_store {
            Some(store) => Pipeline::persisted(reader, counters, &pipeline_config, store, i),
            None => Pipeline::new(reader, counters, &pipeline_config),
        }
        .expect("pipeline sizes were validated with the config");
        let p = match &sync {
            Some(s) => p.with_sync(s.port(i)),
            None => p,
        };
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
    .map_err(|e| error_chain(&e))?;
    let control = daemon
        .serve(Arc::clone(&dataplane), runtime.layout().clone())
        .map_err(|e| error_chain(&e))?;
    // After the socket lock: a second lbfwd on this socket must not touch
    // the first one's BIRD. Changes from now on reach the announcer; BIRD
    // starts with the state current when it starts.
    daemon.set_announcer(Arc::clone(&announcer));
    if let Some(l2) = &l2 {
        announcer.attach_l2(Arc::clone(l2));
    }
    announcer.start_bird().map_err(|e| error_chain(&e))?;
    announce::announce_when_running(&announcer, runtime.stats());
    let services = daemon
        .start_services(&dataplane, &runtime)
        .map_err(|e| error_chain(&e))?;
    log::info!(
        "{} backend, {} worker(s), {} load balancer(s), control socket {}",
        dp.backend,
        dp.workers.len(),
        dataplane.current().lbs.len(),
        config.settings.control.socket.display()
    );
    let placements = runtime.layout().workers.clone();
    let add_vip_sink = |sink: VipSink| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(dataplane.add_vip_sink(sink)?)
    };
    let options = OpenOptions {
        set_sysctls: !args.no_sysctl,
        add_vip_sink: &add_vip_sink,
        l2: l2
            .as_deref()
            .map(|l| l as &dyn lbfwd_forwarder::io::open::MacSink),
    };
    let backend = match Backend::open(dp, &places, &options) {
        Ok(backend) => backend,
        Err(e) => {
            services.stop();
            control.shutdown();
            return Err(error_chain(&e));
        }
    };
    for note in backend.notes() {
        log::info!("{note}");
    }
    let result = backend.run(OnRuntime {
        runtime: &runtime,
        make_pipeline,
    });
    services.stop();
    control.shutdown();
    announcer.stop();
    if let Some(s) = &mut sync {
        s.stop();
    }
    let report = result.map_err(|e| error_chain(&e))?;
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
    log::info!("stopped; final counters:");
    eprint!("{}", render_text(&snap, &extra));
    eprint!("{report}");
    Ok(())
}
