//! The flow table's tests.

use super::*;
use crate::flow::IPPROTO_ICMP;
use std::collections::HashMap;

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;

fn key(i: u32, proto: u8) -> FlowKey {
    FlowKey::v4(
        [10, 0, (i >> 8) as u8, i as u8],
        [192, 0, 2, 1],
        proto,
        (i >> 16) as u16 + 1024,
        80,
        1,
    )
}

fn timeouts() -> FlowTimeouts {
    FlowTimeouts {
        tcp: Duration::from_secs(10),
        udp: Duration::from_secs(2),
        sctp: Duration::from_secs(5),
        other: Duration::from_secs(1),
    }
}

#[test]
fn layout() {
    assert_eq!(std::mem::size_of::<Meta>(), 64);
    assert_eq!(std::mem::align_of::<Meta>(), 64);
}

#[test]
fn bad_parameters_are_refused() {
    let t = FlowTimeouts::default();
    let range = |capacity| FlowTableError::CapacityOutOfRange {
        capacity,
        min: MIN_CAPACITY,
        max: MAX_CAPACITY,
    };
    let cases: Vec<(&str, usize, FlowTimeouts, FlowTableError)> = vec![
        ("capacity zero", 0, t, range(0)),
        ("capacity below one bucket", 4, t, range(4)),
        (
            "capacity too large",
            MAX_CAPACITY * 2,
            t,
            range(MAX_CAPACITY * 2),
        ),
        (
            "capacity not a power of two",
            1000,
            t,
            FlowTableError::CapacityNotPowerOfTwo { capacity: 1000 },
        ),
        (
            "zero udp timeout",
            64,
            FlowTimeouts {
                udp: Duration::ZERO,
                ..t
            },
            FlowTableError::TimeoutOutOfRange {
                class: "udp",
                timeout: Duration::ZERO,
                min: MIN_TIMEOUT,
                max: MAX_TIMEOUT,
            },
        ),
        (
            "huge tcp timeout",
            64,
            FlowTimeouts {
                tcp: Duration::from_secs(30 * 86400),
                ..t
            },
            FlowTableError::TimeoutOutOfRange {
                class: "tcp",
                timeout: Duration::from_secs(30 * 86400),
                min: MIN_TIMEOUT,
                max: MAX_TIMEOUT,
            },
        ),
    ];
    for (what, cap, t, want) in cases {
        assert_eq!(FlowTable::<u32>::new(cap, t).unwrap_err(), want, "{what}");
    }
    let msg = FlowTableError::CapacityNotPowerOfTwo { capacity: 1000 }.to_string();
    assert!(
        msg.contains("1000") && msg.contains("power of two"),
        "{msg}"
    );
    let ok = FlowTable::<u32>::new(8, t).unwrap();
    assert_eq!(ok.capacity(), 8);
}

#[test]
fn insert_lookup_update_remove() {
    let mut t = FlowTable::<u32>::new(1024, timeouts()).unwrap();
    let k = key(1, IPPROTO_TCP);
    let h = k.flow_hash();
    assert_eq!(t.lookup(&k, h, 0), None);
    assert_eq!(t.insert(k, h, 7, 0), Insert::New);
    assert_eq!(t.len(), 1);
    assert_eq!(t.lookup(&k, h, MS).copied(), Some(7));
    *t.lookup(&k, h, MS).unwrap() = 8;
    assert_eq!(t.lookup(&k, h, MS).copied(), Some(8));
    assert_eq!(t.insert(k, h, 9, 2 * MS), Insert::Updated);
    assert_eq!(t.len(), 1);
    assert_eq!(t.lookup(&k, h, 3 * MS).copied(), Some(9));
    // A different key with the same hash (and so the same tag) is a
    // different flow.
    let other = key(2, IPPROTO_TCP);
    assert_eq!(t.lookup(&other, h, 3 * MS), None);
    assert_eq!(t.insert(other, h, 10, 3 * MS), Insert::New);
    assert_eq!(t.lookup(&k, h, 3 * MS).copied(), Some(9));
    assert_eq!(t.lookup(&other, h, 3 * MS).copied(), Some(10));
    assert_eq!(t.remove(&k, h, 4 * MS), Some(9));
    assert_eq!(t.remove(&k, h, 4 * MS), None);
    assert_eq!(t.lookup(&k, h, 4 * MS), None);
    assert_eq!(t.lookup(&other, h, 4 * MS).copied(), Some(10));
    assert_eq!(t.len(), 1);
    let s = *t.stats();
    assert_eq!((s.hits, s.inserts, s.updates, s.removals), (7, 2, 1, 1));
    assert_eq!(s.misses, 3);
}

/// Each protocol expires after its own idle timeout; a hit refreshes.
#[test]
fn per_protocol_idle_timeouts() {
    let cases: &[(&str, u8, u64)] = &[
        ("tcp", IPPROTO_TCP, 10 * S),
        ("udp", IPPROTO_UDP, 2 * S),
        ("sctp", IPPROTO_SCTP, 5 * S),
        ("icmp (other)", IPPROTO_ICMP, S),
    ];
    for &(what, proto, timeout) in cases {
        let mut t = FlowTable::<u32>::new(64, timeouts()).unwrap();
        let k = key(5, proto);
        let h = k.flow_hash();
        let t0 = 100 * S;
        t.insert(k, h, 1, t0);
        // Still live just below the timeout (tick granularity ~1 ms),
        // which also refreshes it.
        assert_eq!(
            t.lookup(&k, h, t0 + timeout - 2 * MS).copied(),
            Some(1),
            "{what}"
        );
        let t1 = t0 + timeout - 2 * MS;
        assert_eq!(
            t.lookup(&k, h, t1 + timeout - 2 * MS).copied(),
            Some(1),
            "{what} refreshed"
        );
        let t2 = t1 + timeout - 2 * MS;
        assert_eq!(
            t.lookup(&k, h, t2 + timeout + 3 * MS),
            None,
            "{what} expired"
        );
        assert_eq!(t.len(), 0, "{what}");
        assert_eq!(t.stats().expirations, 1, "{what}");
    }
}

/// A full bucket evicts its least recently seen flow; expired flows are
/// reused first, without an eviction.
#[test]
fn full_bucket_evicts_the_oldest() {
    let mut t = FlowTable::<u32>::new(64, timeouts()).unwrap();
    let h = 0x1234_0000_0000_0003u64; // every key in bucket 3
    for i in 0..WAYS as u32 {
        assert_eq!(
            t.insert(key(i, IPPROTO_TCP), h, i, u64::from(i) * S),
            Insert::New
        );
    }
    // Touch the oldest (0): now 1 is the least recently seen.
    assert!(t.lookup(&key(0, IPPROTO_TCP), h, 8 * S).is_some());
    assert_eq!(
        t.insert(key(100, IPPROTO_TCP), h, 100, 9 * S),
        Insert::Evicted
    );
    assert_eq!(t.lookup(&key(1, IPPROTO_TCP), h, 9 * S), None);
    for i in [0, 2, 3, 4, 5, 6, 7, 100] {
        assert!(
            t.lookup(&key(i, IPPROTO_TCP), h, 9 * S).is_some(),
            "flow {i} kept"
        );
    }
    assert_eq!(t.len(), WAYS);
    assert_eq!(t.stats().evictions, 1);
    // Replace one flow by a UDP flow, let it expire, insert again: the
    // expired slot is reused and nothing live is evicted.
    t.remove(&key(100, IPPROTO_TCP), h, 9 * S);
    t.insert(key(200, IPPROTO_UDP), h, 200, 9 * S);
    // At 11.5 s the UDP flow (2 s timeout) is expired, the TCP flows
    // (10 s) are not.
    let t3 = 11 * S + 500 * MS;
    assert_eq!(t.insert(key(201, IPPROTO_TCP), h, 201, t3), Insert::New);
    assert_eq!(t.stats().evictions, 1);
    assert_eq!(t.stats().expirations, 1);
    assert_eq!(t.lookup(&key(200, IPPROTO_UDP), h, t3), None);
    assert_eq!(t.lookup(&key(201, IPPROTO_TCP), h, t3).copied(), Some(201));
    // Other buckets are unaffected.
    assert_eq!(t.insert(key(300, IPPROTO_TCP), h ^ 1, 300, t3), Insert::New);
}

/// Each pass of `sweep_visit` visits every live entry once, whatever
/// budgets the calls had (a pass ends with the call that reaches the
/// last bucket, even with budget left).
#[test]
fn sweep_visit_sees_each_live_entry_once_per_pass() {
    let mut t = FlowTable::<u32>::new(4096, timeouts()).unwrap();
    for i in 0..300 {
        let k = key(i, IPPROTO_TCP);
        t.insert(k, k.flow_hash(), i, 0);
    }
    let mut seen = vec![0u32; 300];
    let mut passes = 0;
    // Budgets 3 and 100 do not divide the 512 buckets: calls straddle
    // the end of the table.
    for budget in [3, 100, 3, 100].iter().cycle().take(2000) {
        let swept = t.sweep_visit(S, *budget, |_, v| seen[*v as usize] += 1);
        assert_eq!(swept.freed, 0);
        if swept.pass_done {
            passes += 1;
            if passes > 1 {
                // The first pass started at bucket 0 too.
                assert!(seen.iter().all(|n| *n == 1), "pass {passes}: {seen:?}");
            }
            seen.iter_mut().for_each(|n| *n = 0);
        }
    }
    assert!(passes >= 5, "{passes} passes");
}

#[test]
fn sweep_frees_expired_entries_everywhere() {
    let mut t = FlowTable::<u32>::new(4096, timeouts()).unwrap();
    for i in 0..300 {
        let proto = if i % 3 == 0 { IPPROTO_UDP } else { IPPROTO_TCP };
        let k = key(i, proto);
        t.insert(k, k.flow_hash(), i, 0);
    }
    // 300 flows in 512 buckets: no bucket overflows.
    assert_eq!((t.len(), t.stats().evictions), (300, 0));
    // At 5 s the UDP flows (2 s) are expired, TCP (10 s) are not.
    let mut freed = 0;
    for _ in 0..16 {
        freed += t.sweep(5 * S, 32);
    }
    assert_eq!(freed, 100);
    assert_eq!(t.len(), 200);
    assert_eq!(t.iter(5 * S).count(), 200);
    assert!(t
        .iter(5 * S)
        .all(|(k, _, idle)| k.proto == IPPROTO_TCP && idle >= Duration::from_millis(4990)));
    assert_eq!(t.sweep(5 * S, usize::MAX), 0);
    assert_eq!(t.sweep(11 * S, usize::MAX), 200);
    assert!(t.is_empty());
}

/// Ages stay right when the u32 tick counter wraps.
#[test]
fn tick_wrap() {
    let mut t = FlowTable::<u32>::new(64, timeouts()).unwrap();
    let k = key(9, IPPROTO_TCP);
    let h = k.flow_hash();
    let t0 = ((1u64 << 32) - 100) << TICK_SHIFT; // 100 ticks before the wrap
    t.insert(k, h, 1, t0);
    assert_eq!(t.lookup(&k, h, t0 + 5 * S).copied(), Some(1));
    assert_eq!(t.lookup(&k, h, t0 + 16 * S), None);
}

#[test]
fn retain_and_clear() {
    let mut t = FlowTable::<u32>::new(256, timeouts()).unwrap();
    for i in 0..100 {
        let k = key(i, IPPROTO_TCP);
        t.insert(k, k.flow_hash(), i, 0);
    }
    assert_eq!(t.retain(|_, v| *v % 2 == 0), 50);
    assert_eq!(t.len(), 50);
    let k = key(3, IPPROTO_TCP);
    assert_eq!(t.lookup(&k, k.flow_hash(), 0), None);
    let k = key(4, IPPROTO_TCP);
    assert_eq!(t.lookup(&k, k.flow_hash(), 0).copied(), Some(4));
    t.clear();
    assert!(t.is_empty());
    assert_eq!(t.lookup(&k, k.flow_hash(), 0), None);
}

/// Random operations on a small table against a `HashMap` model: a hit
/// always returns the value last stored for that key; a live flow is
/// only ever missing after an eviction; `len` never exceeds capacity.
#[test]
fn random_operations_match_a_model() {
    // (capacity, whether evictions must happen): a roomy table (400 keys
    // in 512 buckets) must never lose a live flow; a tiny one is stressed.
    for (capacity, evicting) in [(4096usize, false), (64, true)] {
        model_run(capacity, evicting);
    }
}

fn model_run(capacity: usize, evicting: bool) {
    let mut t = FlowTable::<u64>::new(capacity, timeouts()).unwrap();
    let mut model: HashMap<FlowKey, (u64, u64)> = HashMap::new(); // value, last seen
    let mut s = 0x5eed_u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    // Tick rounding: a flow lives at least its timeout and at most its
    // timeout plus two ticks.
    let slack = 2 << TICK_SHIFT;
    let mut now = 0u64;
    for step in 0..200_000u64 {
        now += rnd() % (50 * MS);
        let r = rnd();
        let proto = [IPPROTO_TCP, IPPROTO_UDP][(r >> 8) as usize % 2];
        let k = key((r % 200) as u32, proto);
        let h = k.flow_hash();
        let timeout = timeouts().get(TimeoutClass::of(proto)).as_nanos() as u64;
        match (r >> 16) % 4 {
            0 | 1 => {
                let got = t.lookup(&k, h, now).copied();
                match (got, model.get(&k)) {
                    (Some(v), Some(&(mv, last))) => {
                        assert_eq!(v, mv, "step {step}");
                        assert!(now - last <= timeout + slack, "step {step}: stale hit");
                        model.insert(k, (mv, now));
                    }
                    (Some(v), None) => panic!("step {step}: hit {v} for a key never stored"),
                    (None, Some(&(_, last))) => {
                        assert!(
                            now - last > timeout || evicting,
                            "step {step}: live flow missing"
                        );
                        model.remove(&k);
                    }
                    (None, None) => {}
                }
            }
            2 => {
                t.insert(k, h, step, now);
                model.insert(k, (step, now));
            }
            _ => {
                if let Some(v) = t.remove(&k, h, now) {
                    assert_eq!(Some(v), model.get(&k).map(|e| e.0), "step {step}");
                }
                model.remove(&k);
            }
        }
        assert!(t.len() <= t.capacity());
    }
    let s = t.stats();
    assert_eq!(s.evictions > 0, evicting, "capacity {capacity}: {s:?}");
    assert!(s.expirations > 0 && s.hits > 0 && s.misses > 0, "{s:?}");
}

#[test]
fn memory_is_what_the_capacity_says() {
    let t = FlowTable::<u64>::new(1 << 10, FlowTimeouts::default()).unwrap();
    let per_slot = std::mem::size_of::<FlowKey>() + 8;
    assert!(t.memory_bytes() >= (1 << 10) * per_slot + 128 * 64);
}
