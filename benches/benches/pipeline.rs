//! The whole pipeline on 64-byte IPv4 TCP frames, one burst of 32 per
//! iteration: parse, VIP match, filter, flow table, Maglev pick (on a
//! miss), VXLAN encapsulation, counters.
//!
//! - `hit`: 4096 flows already in the flow table (the steady state);
//! - `miss`: 262144 flows through a 4096-entry flow table, so every packet
//!   is a new flow: Maglev pick and insert (evicting the oldest).
//!
//! Configuration: 100 load balancers x 100 targets, Maglev M = 65537.
//! The generator's copy of each frame into the buffers is included (about
//! one cache line per packet; `lbfwd-pktgen memory` reports it separately).
//!
//! `cargo bench -p lbfwd-benches --bench pipeline`

use std::sync::Arc;

use criterion::{Criterion, Throughput};
use lbfwd_benches::synth::{self, SynthSpec};
use lbfwd_benches::traffic::{GenQueue, Packets, TrafficSpec};
use lbfwd_forwarder::dataplane::Dataplane;
use lbfwd_forwarder::io::WorkerQueue;
use lbfwd_forwarder::pipeline::{Pipeline, PipelineConfig};

const BURST: usize = 32;

fn setup(flows: u32, flow_capacity: usize) -> (Dataplane, Pipeline, GenQueue) {
    let spec = SynthSpec {
        lbs: 100,
        targets: 100,
        ..SynthSpec::default()
    };
    let resolved = synth::resolved(&spec, None).expect("synthetic config");
    let dp = Dataplane::new(&resolved, synth::underlay(spec.encap), 1).expect("tables");
    let config = PipelineConfig {
        flow_capacity,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::new(dp.publisher().reader(0), dp.counters()[0].clone(), &config)
        .expect("pipeline");
    let traffic = TrafficSpec {
        flows,
        vips: spec.lbs as u32,
        frame_len: 64,
        ..TrafficSpec::default()
    };
    let packets = Arc::new(Packets::build(&traffic, 0, 1).expect("traffic"));
    (dp, pipeline, GenQueue::new(packets, 0))
}

fn burst(pipeline: &mut Pipeline, q: &mut GenQueue, now: &mut u64) -> usize {
    *now += 1_000;
    q.fill(BURST);
    pipeline.begin(*now);
    let before = q.stats().tx_packets;
    // The worker loop's burst shape: prefetch every frame, then process.
    q.run_filled_with(pipeline);
    (q.stats().tx_packets - before) as usize
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_64B");
    g.throughput(Throughput::Elements(BURST as u64));

    let (_dp, mut pipeline, mut q) = setup(4096, 1 << 16);
    let mut now = 0u64;
    for _ in 0..4096 / BURST * 2 {
        burst(&mut pipeline, &mut q, &mut now);
    }
    assert_eq!(pipeline.flows(), 4096, "every flow in the table");
    g.bench_function("hit", |b| {
        b.iter(|| assert_eq!(burst(&mut pipeline, &mut q, &mut now), BURST))
    });

    let (_dp, mut pipeline, mut q) = setup(1 << 18, 4096);
    let mut now = 0u64;
    g.bench_function("miss", |b| {
        b.iter(|| assert_eq!(burst(&mut pipeline, &mut q, &mut now), BURST))
    });
    g.finish();
}

// `criterion_group!` would define an undocumented public function, which
// the workspace's `missing_docs` lint refuses; this is what it expands to.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
