//! Flow-table and flow-hash benchmarks: hit and miss+insert on a table of
//! 2^20 (1 Mi) entries with random keys, and the flow hash of one key.
//!
//! `cargo bench -p lbfwd-benches --bench flow_table`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput};
use lbfwd_forwarder::flow::{FlowKey, IPPROTO_TCP, IPPROTO_UDP};
use lbfwd_forwarder::flow::{FlowTable, FlowTimeouts};

/// Entries of the benchmarked table.
const CAPACITY: usize = 1 << 20;
/// Live flows in it for the hit benchmark (75 % load).
const FLOWS: usize = CAPACITY / 4 * 3;
/// Lookups per criterion iteration.
const BATCH: usize = 1024;

/// A pseudo-random generator (xorshift64*), deterministic across runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A random IPv4 TCP or UDP flow to one of 16 VIPs.
    fn key(&mut self) -> FlowKey {
        let r = self.next();
        let s = self.next();
        FlowKey::v4(
            (r as u32).to_be_bytes(),
            [198, 51, 100, (s % 16) as u8],
            if s & 0x100 == 0 {
                IPPROTO_TCP
            } else {
                IPPROTO_UDP
            },
            (r >> 32) as u16,
            [80, 443, 53, 8080][((s >> 16) % 4) as usize],
            (s >> 32) as u32 & 0xff_ffff,
        )
    }
}

fn hash(c: &mut Criterion) {
    let mut rng = Rng(1);
    let keys: Vec<FlowKey> = (0..BATCH).map(|_| rng.key()).collect();
    let mut g = c.benchmark_group("flow_hash");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("xxh3_key", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in black_box(&keys) {
                acc ^= k.flow_hash();
            }
            acc
        })
    });
    g.finish();
}

fn table(c: &mut Criterion) {
    let timeouts = FlowTimeouts::default();
    let now = 1_000_000_000u64;
    let mut t = FlowTable::<u64>::new(CAPACITY, timeouts).unwrap();
    let mut rng = Rng(2);
    let mut live: Vec<(FlowKey, u64)> = Vec::with_capacity(FLOWS);
    while live.len() < FLOWS {
        let k = rng.key();
        let h = k.flow_hash();
        t.insert(k, h, live.len() as u64, now);
        live.push((k, h));
    }
    // Some inserts evicted earlier ones from full buckets; keep only keys
    // that are still there so that every measured lookup is a hit.
    live.retain(|(k, h)| t.lookup(k, *h, now).is_some());

    let mut g = c.benchmark_group("flow_table_1Mi");
    g.throughput(Throughput::Elements(BATCH as u64));
    // Hits on random live flows (precomputed hashes: table cost only).
    let mut at = 0usize;
    g.bench_function("hit", |b| {
        b.iter_batched_ref(
            || {
                let start = at;
                at = (at + 7919 * BATCH) % live.len();
                (0..BATCH)
                    .map(|i| live[(start + i * 7919) % live.len()])
                    .collect::<Vec<_>>()
            },
            |batch| {
                let mut acc = 0u64;
                for (k, h) in batch.iter() {
                    acc = acc.wrapping_add(*t.lookup(k, *h, now).unwrap());
                }
                acc
            },
            BatchSize::SmallInput,
        )
    });
    // Hits on the same 1024 flows over and over: the table's own cost once
    // its lines are in cache (what a benchmark with few flows sees).
    let hot: Vec<(FlowKey, u64)> = live.iter().take(BATCH).copied().collect();
    g.bench_function("hit_hot", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for (k, h) in black_box(&hot) {
                acc = acc.wrapping_add(*t.lookup(k, *h, now).unwrap());
            }
            acc
        })
    });
    // New flows: a lookup that misses, then the insert (the table is full
    // in steady state, so inserts evict). Hashes precomputed.
    let mut clock = now;
    g.bench_function("miss_insert", |b| {
        b.iter_batched_ref(
            || {
                (0..BATCH)
                    .map(|_| {
                        let k = rng.key();
                        (k, k.flow_hash())
                    })
                    .collect::<Vec<_>>()
            },
            |batch| {
                for (k, h) in batch.iter() {
                    clock += 1000;
                    if t.lookup(k, *h, clock).is_none() {
                        t.insert(*k, *h, clock, clock);
                    }
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    eprintln!("flow table after the run: {:?}", t);
}

// `criterion_group!` would define an undocumented public function, which
// the workspace's `missing_docs` lint refuses; this is what it expands to.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    hash(&mut c);
    table(&mut c);
    c.final_summary();
}
