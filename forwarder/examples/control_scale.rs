//! The control plane at scale: a generated state of many load balancers and
//! network interfaces (default 10,000 and 100,000: ten interfaces per load
//! balancer, chosen by a label selector, over 100 networks), loaded,
//! resolved and built into tables; then changes through the daemon's real
//! control handler (validate, resolve, build, publish, save), each timed,
//! while a worker thread forwards synthetic packets to every load balancer's
//! VIP with a real pipeline, its rate sampled every 10 ms.
//!
//! The worker thread is pinned to the last core and the control thread (this
//! one: the changes, the table builds) to core 0, as on the 2-core machine
//! the README's figures come from; with one core both share it. The
//! worker's rate is reported for a second with no change running and for
//! the time the changes run.
//!
//! ```sh
//! CARGO_PROFILE_RELEASE_LTO=false cargo run --release -p lbfwd-forwarder \
//!     --example control_scale -- [LBS] [NICS] [CHANGES]
//! ```
//!
//! Prints one line per measurement; the README's "Scale of the control
//! plane" has the figures of one run.

use lbfwd_config::Config;
use lbfwd_control::protocol::{Payload, Request, SetWeight};
use lbfwd_control::server::answer;
use lbfwd_forwarder::daemon::{write_atomic, Daemon, STATE_FILE, STATE_PREVIOUS};
use lbfwd_forwarder::dataplane::Dataplane;
use lbfwd_forwarder::frame::{Frame, HEADROOM};
use lbfwd_forwarder::pipeline::{Pipeline, PipelineConfig, Verdict};
use lbfwd_forwarder::runtime::{Layout, WorkerPlacement};
use lbfwd_forwarder::tables::{TableBuilder, Tables, UnderlayParams};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NETWORKS: usize = 100;
const SAMPLE: Duration = Duration::from_millis(10);

/// The config text: settings, a pool, the networks, `nics` interfaces
/// (interface `i` carries `app = "svc-{i % lbs}"`), `lbs` public load
/// balancers selecting their interfaces by that label.
fn config_text(dir: &Path, lbs: usize, nics: usize) -> String {
    let mut t = format!(
        r#"[dataplane]
backend = "memory"
workers = [0]

[underlay]
encap = "vxlan"
source_ipv4 = "10.0.2.2"
next_hop_mac = "02:00:00:00:02:01"

[control]
socket = "{}"
state_dir = "{}"

[log]
level = "warn"

[[pool]]
name = "public"
addresses = ["100.64.0.0/15"]
"#,
        dir.join("lbfwd.sock").display(),
        dir.join("state").display()
    );
    for n in 0..NETWORKS {
        let _ = write!(t, "\n[[network]]\nname = \"net-{n}\"\nvni = {}\n", 1000 + n);
    }
    for i in 0..nics {
        let lb = i % lbs;
        let ip = Ipv4Addr::from(0x0a00_0000 + 0x1_0000 + i as u32);
        let _ = write!(
            t,
            "\n[[network_interface]]\nname = \"nic-{i}\"\nnetwork = \"net-{}\"\nlabels = {{ app = \"svc-{lb}\" }}\nunderlay = \"{ip}\"\nmac = \"02:00:{:02x}:{:02x}:{:02x}:{:02x}\"\n",
            lb % NETWORKS,
            (i >> 24) & 0xff,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        );
    }
    for j in 0..lbs {
        let _ = write!(
            t,
            "\n[[load_balancer]]\nname = \"svc-{j}\"\ntype = \"Public\"\nip_families = [\"IPv4\"]\nnetwork = \"net-{}\"\nnetwork_interface_selector = {{ match_labels = {{ app = \"svc-{j}\" }} }}\nports = [ {{ protocol = \"TCP\", port = 80 }} ]\n",
            j % NETWORKS
        );
    }
    t
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (its
/// first field, in nanoseconds): unlike the wall clock, it does not grow
/// when other processes take the core.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(
        stat.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    )
}

/// Runs `f`; returns its result, the wall-clock time and this thread's CPU
/// time it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, (Duration, Duration)) {
    let (t, cpu) = (Instant::now(), thread_cpu());
    let out = f();
    (out, (t.elapsed(), thread_cpu().saturating_sub(cpu)))
}

/// Resident memory of this process in bytes (`VmRSS`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What one table version holds, in bytes: the Maglev tables, the header
/// templates, the target lists and the slot map (the VIP map is small).
fn table_bytes(t: &Tables) -> u64 {
    let maglev: usize = t
        .lbs
        .iter()
        .map(|l| std::mem::size_of_val(l.maglev.entries()))
        .sum();
    let targets: usize = t
        .lbs
        .iter()
        .map(|l| l.targets.capacity() * std::mem::size_of::<lbfwd_forwarder::tables::Target>())
        .sum();
    (maglev
        + targets
        + std::mem::size_of_val(&t.templates[..])
        + std::mem::size_of_val(&t.target_by_slot[..])
        + t.lbs.len() * std::mem::size_of::<lbfwd_forwarder::tables::LbTable>()) as u64
}

/// An Ethernet + IPv4 + TCP SYN frame from a client to `vip:80`.
fn frame(vip: Ipv4Addr, client: u32, port: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 2, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&client.to_be_bytes());
    ip[16..20].copy_from_slice(&vip.octets());
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&port.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;
    f
}

/// Packets forwarded per [`SAMPLE`] interval, and frames not forwarded.
struct Forwarded {
    samples: Vec<(Instant, u64)>,
    not_forwarded: u64,
    versions_seen: u64,
}

/// Forwards `frames` round robin in bursts of 32 until `stop`.
fn forward(dataplane: &Dataplane, frames: &[Vec<u8>], stop: &AtomicBool) -> Forwarded {
    let mut pipeline = Pipeline::new(
        dataplane.publisher().reader(0),
        Arc::clone(&dataplane.counters()[0]),
        &PipelineConfig::default(),
    )
    .expect("pipeline");
    let mut buf = vec![0u8; HEADROOM + 128];
    let (mut i, mut count) = (0usize, 0u64);
    let mut out = Forwarded {
        samples: Vec::new(),
        not_forwarded: 0,
        versions_seen: 0,
    };
    let start = Instant::now();
    let mut next = start + SAMPLE;
    let mut last_version = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next {
            out.samples.push((now, count));
            count = 0;
            next += SAMPLE;
        }
        pipeline.begin(now.duration_since(start).as_nanos() as u64 + 1_000_000_000);
        if pipeline.tables().version != last_version {
            last_version = pipeline.tables().version;
            out.versions_seen += 1;
        }
        for _ in 0..32 {
            let f = &frames[i];
            i = (i + 1) % frames.len();
            buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            let mut frame = Frame::new(&mut buf, HEADROOM, f.len());
            if pipeline.run(&mut frame) != Verdict::Tx {
                out.not_forwarded += 1;
            }
            count += 1;
        }
    }
    out
}

fn rate(samples: &[(Instant, u64)], from: Instant, to: Instant) -> (f64, u64, usize) {
    let inside: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t > from && *t <= to)
        .map(|(_, n)| *n)
        .collect();
    let total: u64 = inside.iter().sum();
    let mpps = total as f64 / (inside.len().max(1) as f64 * SAMPLE.as_secs_f64()) / 1e6;
    (
        mpps,
        inside.iter().copied().min().unwrap_or(0),
        inside.len(),
    )
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("LBS NICS CHANGES: numbers"))
        .collect();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let control_core = cores.first().map(|c| c.id);
    let worker_core = cores.last().map(|c| c.id);
    if let Some(id) = control_core {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
    println!(
        "cores: control thread on {control_core:?}, worker on {worker_core:?} ({} cores; load average {})",
        cores.len(),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let lbs = args.first().copied().unwrap_or(10_000);
    let nics = args.get(1).copied().unwrap_or(100_000);
    let changes = args.get(2).copied().unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("lbfwd-control-scale-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("state")).expect("directory");
    let path = dir.join("lbfwd.toml");

    let t = Instant::now();
    let text = config_text(&dir, lbs, nics);
    std::fs::write(&path, &text).expect("config file");
    println!(
        "state: {lbs} load balancers, {nics} network interfaces, {NETWORKS} networks ({:.1} MiB of TOML, generated in {:.2?})",
        mib(text.len() as u64),
        t.elapsed()
    );

    let t = Instant::now();
    let config = Config::from_toml_str(&text, "lbfwd.toml").expect("the generated config loads");
    println!("load (parse, validate, resolve): {:.2?}", t.elapsed());
    let t = Instant::now();
    let resolution = config.resolve().expect("resolves");
    let destinations: usize = resolution
        .resolved
        .load_balancers
        .iter()
        .map(|l| l.destinations.len())
        .sum();
    println!(
        "resolve alone: {:.2?} ({destinations} destinations)",
        t.elapsed()
    );
    let underlay = UnderlayParams::from_settings(&config.settings.underlay, None);
    let t = Instant::now();
    let (tables, _) = TableBuilder::new()
        .build(&resolution.resolved, &underlay, 1)
        .expect("tables");
    println!(
        "build one table version: {:.2?}; it holds {:.1} MiB",
        t.elapsed(),
        mib(table_bytes(&tables))
    );
    drop(tables);
    drop((config, resolution));

    let daemon = Daemon::start(&path, &[]).expect("the daemon starts");
    let first = daemon.config();
    write_atomic(
        &dir.join("state"),
        STATE_FILE,
        STATE_PREVIOUS,
        &first.state.to_toml(),
    )
    .expect("the first saved state");
    let t = Instant::now();
    let dataplane = Arc::new(
        Dataplane::new(
            &daemon.resolved(),
            UnderlayParams::from_settings(&first.settings.underlay, None),
            1,
        )
        .expect("the first tables"),
    );
    println!(
        "dataplane, first version: {:.2?}; its tables hold {:.1} MiB; process memory {:.0} MiB",
        t.elapsed(),
        mib(table_bytes(&dataplane.current())),
        mib(rss())
    );
    let layout = Layout {
        workers: vec![WorkerPlacement {
            core: None,
            ingress: None,
            egress: None,
            queue: None,
        }],
        config: Default::default(),
        require_up: false,
    };
    let handler = daemon.control_handler(Arc::clone(&dataplane), layout);

    // Traffic: 64 flows to each of 1024 load balancers spread over all.
    let vips: Vec<Ipv4Addr> = daemon
        .resolved()
        .load_balancers
        .iter()
        .filter_map(|l| match l.ips.first()?.addr {
            std::net::IpAddr::V4(a) => Some(a),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    let step = (vips.len() / 1024).max(1);
    let frames: Vec<Vec<u8>> = (0..64u32)
        .flat_map(|c| {
            vips.iter()
                .step_by(step)
                .map(move |v| frame(*v, 0xc633_6400 + c, 10_000 + c as u16))
        })
        .collect();
    drop(first);

    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (dataplane, stop) = (Arc::clone(&dataplane), Arc::clone(&stop));
        std::thread::spawn(move || {
            if let Some(id) = worker_core {
                core_affinity::set_for_current(core_affinity::CoreId { id });
            }
            forward(&dataplane, &frames, &stop)
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let idle_from = Instant::now() - Duration::from_secs(1);
    let idle_to = Instant::now();

    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let busy_from = Instant::now();
    for c in 0..changes {
        let lb = (c * 7919) % lbs;
        let nic = lb;
        let request = Request::Weight(SetWeight {
            load_balancer: format!("svc-{lb}"),
            destination: format!("nic-{nic}"),
            weight: 200 + c as u32,
        });
        let (t, cpu) = (Instant::now(), thread_cpu());
        let response = answer(request.to_line().as_bytes(), &*handler);
        let (took, cpu) = (t.elapsed(), thread_cpu().saturating_sub(cpu));
        match response.0 {
            Ok(Payload::Changed(s)) => {
                println!(
                    "change {c}: weight svc-{lb} nic-{nic} {}: {took:.2?}, control thread CPU {cpu:.2?} (table version {})",
                    200 + c,
                    s.table_version
                );
                times.push(took);
                cpu_times.push(cpu);
            }
            other => panic!("change {c} failed: {other:?}"),
        }
    }
    // The same kind of change again, stage by stage, as the handler runs
    // them: validate and resolve (once: the current resolution is the
    // daemon's), save, build and publish.
    let request = Request::Weight(SetWeight {
        load_balancer: "svc-1".into(),
        destination: "nic-1".into(),
        weight: 9,
    });
    let changes = lbfwd_control::convert::changes_for(&request)
        .expect("a change")
        .expect("a valid change");
    let current = daemon.config();
    let before = daemon.resolved();
    let (mut next, copy) = timed(|| current.state.clone());
    let (summary, apply) = timed(|| {
        next.apply_in_place(&changes, &current.settings.underlay, Some(&before))
            .expect("the change applies")
    });
    let (text, render) = timed(|| next.to_toml());
    let ((), write) = timed(|| {
        write_atomic(&dir.join("state"), STATE_FILE, STATE_PREVIOUS, &text).expect("saved")
    });
    let resolved = summary.resolution.expect("resolved").resolved;
    let (_, publish) = timed(|| dataplane.publish(&resolved).expect("published"));
    let show = |(wall, cpu): (Duration, Duration)| format!("{wall:.2?} (CPU {cpu:.2?})");
    println!(
        "one change by stage, wall clock (control thread CPU): copy the state {}, validate and resolve (once) {}, \
         render the state file {} ({:.1} MiB), write and fsync it {}, build and publish the tables {}",
        show(copy),
        show(apply),
        show(render),
        mib(text.len() as u64),
        show(write),
        show(publish)
    );
    drop((current, before, next, text, resolved));
    let busy_to = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let forwarded = worker.join().expect("worker");
    times.sort();
    cpu_times.sort();
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        println!(
            "one change through the control handler (validate, resolve, build, publish, save): median {:.2?}, min {min:.2?}, max {max:.2?}; control thread CPU median {:.2?}, min {:.2?}, max {:.2?}",
            times[times.len() / 2],
            cpu_times[cpu_times.len() / 2],
            cpu_times[0],
            cpu_times[cpu_times.len() - 1]
        );
    }
    let (idle, idle_min, n_idle) = rate(&forwarded.samples, idle_from, idle_to);
    let (busy, busy_min, n_busy) = rate(&forwarded.samples, busy_from, busy_to);
    let per_sample = |n: u64| n as f64 / SAMPLE.as_secs_f64() / 1e6;
    println!(
        "worker: {idle:.2} Mpps with no change ({n_idle} samples of 10 ms, lowest {:.2}), {busy:.2} Mpps during the changes ({n_busy} samples, lowest {:.2}); {} table versions seen, {} frames not forwarded",
        per_sample(idle_min),
        per_sample(busy_min),
        forwarded.versions_seen,
        forwarded.not_forwarded
    );
    println!("process memory at the end: {:.0} MiB", mib(rss()));
    let _ = std::fs::remove_dir_all(&dir);
}
