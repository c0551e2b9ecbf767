//! Maglev benchmarks: table build for M = 65537 and 655373 with 10, 100 and
//! 1000 targets (equal and mixed weights), and the per-packet lookup.
//!
//! `cargo bench -p lbfwd-benches --bench maglev`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use lbfwd_forwarder::maglev::{MaglevBackend, MaglevTable, DEFAULT_TABLE_SIZE};

/// Names and uids of `n` synthetic targets.
fn identities(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("nic-{i:05}"),
                format!("6b1c2f0e-{i:04x}-4d3a-9e2b-0123456789ab"),
            )
        })
        .collect()
}

fn backends(ids: &[(String, String)], weight: impl Fn(usize) -> u32) -> Vec<MaglevBackend<'_>> {
    ids.iter()
        .enumerate()
        .map(|(i, (name, uid))| MaglevBackend {
            name,
            uid,
            weight: weight(i),
        })
        .collect()
}

/// Deterministic pseudo-random 64-bit values (xorshift64*).
fn hashes(n: usize) -> Vec<u64> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            s.wrapping_mul(0x2545_F491_4F6C_DD1D)
        })
        .collect()
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    g.sample_size(10);
    for size in [DEFAULT_TABLE_SIZE, 655_373] {
        for n in [10usize, 100, 1000] {
            let ids = identities(n);
            let equal = backends(&ids, |_| 1);
            g.bench_with_input(
                BenchmarkId::new(format!("M{size}/equal"), n),
                &equal,
                |b, backends| b.iter(|| MaglevTable::build(black_box(backends), size).unwrap()),
            );
            // Weights 1..=4: the weighted turn order (a heap) instead of the
            // round robin.
            let mixed = backends(&ids, |i| 1 + (i % 4) as u32);
            g.bench_with_input(
                BenchmarkId::new(format!("M{size}/weighted"), n),
                &mixed,
                |b, backends| b.iter(|| MaglevTable::build(black_box(backends), size).unwrap()),
            );
        }
        // Worst case for the turn order: 1000 targets with co-prime-ish
        // weights up to 1000, so the period (Σw ≈ 500k) is as long as the
        // table and every turn is a heap operation.
        let ids = identities(1000);
        let skewed = backends(&ids, |i| 1 + ((i as u32).wrapping_mul(7919) % 1000));
        g.bench_with_input(
            BenchmarkId::new(format!("M{size}/weights_1_to_1000"), 1000),
            &skewed,
            |b, backends| b.iter(|| MaglevTable::build(black_box(backends), size).unwrap()),
        );
    }
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_pick");
    let hs = hashes(4096);
    for (size, n) in [(DEFAULT_TABLE_SIZE, 100usize), (655_373, 1000)] {
        let ids = identities(n);
        let table = MaglevTable::build(&backends(&ids, |_| 1), size).unwrap();
        g.throughput(Throughput::Elements(hs.len() as u64));
        g.bench_function(BenchmarkId::new(format!("M{size}"), n), |b| {
            b.iter(|| {
                let mut acc = 0u32;
                for &h in black_box(&hs) {
                    acc = acc.wrapping_add(table.pick(h).unwrap_or(0));
                }
                acc
            })
        });
    }
    g.finish();
}

// `criterion_group!` would define an undocumented public function, which
// the workspace's `missing_docs` lint refuses; this is what it expands to.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    build(&mut c);
    lookup(&mut c);
    c.final_summary();
}
