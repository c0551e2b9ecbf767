//! The fragment tracker's tests.

use super::*;
use crate::flow::{IPPROTO_TCP, IPPROTO_UDP};

const MS: u64 = 1_000_000;

fn key(id: u32) -> FragKey {
    FragKey::of_flow(
        &FlowKey::v4_three([203, 0, 113, 9], [198, 51, 100, 1], IPPROTO_UDP, 5),
        id,
    )
}

fn cfg() -> FragConfig {
    FragConfig {
        entries: 64,
        held_slots: 8,
        slot_size: 256,
        max_held_per_entry: 4,
        timeout: Duration::from_secs(1),
    }
}

/// Fragment `n` of a datagram of `count` fragments of 100 bytes.
fn frag(n: u32, count: u32) -> FragInfo {
    FragInfo {
        offset: n * 100,
        len: 100,
        more: n + 1 < count,
    }
}

fn take(t: &mut FragTracker<u32>, k: &FragKey) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    t.take_held(k, |b| out.push(b.to_vec()));
    out
}

#[test]
fn bad_configs_are_refused() {
    let c = cfg();
    let cases: Vec<(&str, FragConfig, FragError)> = vec![
        (
            "entries not a power of two",
            FragConfig { entries: 100, ..c },
            FragError::Entries {
                entries: 100,
                min: WAYS,
                max: MAX_ENTRIES,
            },
        ),
        (
            "entries below one bucket",
            FragConfig { entries: 2, ..c },
            FragError::Entries {
                entries: 2,
                min: WAYS,
                max: MAX_ENTRIES,
            },
        ),
        (
            "too many held slots",
            FragConfig {
                held_slots: MAX_HELD_SLOTS + 1,
                ..c
            },
            FragError::HeldSlots {
                held_slots: MAX_HELD_SLOTS + 1,
                max: MAX_HELD_SLOTS,
            },
        ),
        (
            "tiny slots",
            FragConfig { slot_size: 10, ..c },
            FragError::SlotSize {
                slot_size: 10,
                min: MIN_SLOT_SIZE,
                max: MAX_SLOT_SIZE,
            },
        ),
        (
            "no fragment per datagram",
            FragConfig {
                max_held_per_entry: 0,
                ..c
            },
            FragError::MaxHeldPerEntry,
        ),
        (
            "zero timeout",
            FragConfig {
                timeout: Duration::ZERO,
                ..c
            },
            FragError::Timeout {
                timeout: Duration::ZERO,
                min: MIN_TIMEOUT,
                max: MAX_TIMEOUT,
            },
        ),
    ];
    for (what, c, want) in cases {
        assert_eq!(FragTracker::<u32>::new(c).unwrap_err(), want, "{what}");
    }
    let msg = FragError::Entries {
        entries: 100,
        min: WAYS,
        max: MAX_ENTRIES,
    }
    .to_string();
    assert!(msg.contains("100") && msg.contains("power of two"), "{msg}");
    assert!(FragTracker::<u32>::new(FragConfig::default()).is_ok());
    assert!(FragTracker::<u32>::new(FragConfig {
        held_slots: 0,
        max_held_per_entry: 0,
        ..c
    })
    .is_ok());
}

#[test]
fn in_order_fragments_follow_the_accepted_first() {
    let mut t = FragTracker::<u32>::new(cfg()).unwrap();
    let k = key(1);
    assert_eq!(t.first_fragment(&k, frag(0, 3), Some(7), 0), 0);
    assert_eq!(
        t.later_fragment(&k, frag(1, 3), b"x", MS),
        Later::Forward(7)
    );
    assert_eq!(t.len(), 1);
    assert_eq!(
        t.later_fragment(&k, frag(2, 3), b"y", 2 * MS),
        Later::Forward(7)
    );
    // All 300 bytes seen: the entry is gone.
    assert!(t.is_empty());
    assert_eq!(t.stats().entries_completed, 1);
    assert_eq!(t.stats().forwarded, 2);
}

#[test]
fn fragments_of_a_rejected_first_are_dropped() {
    let mut t = FragTracker::<u32>::new(cfg()).unwrap();
    let k = key(2);
    assert_eq!(t.first_fragment(&k, frag(0, 3), None, 0), 0);
    assert_eq!(
        t.later_fragment(&k, frag(1, 3), b"x", MS),
        Later::Drop(FragDrop::FirstRejected)
    );
    assert_eq!(
        t.later_fragment(&k, frag(2, 3), b"x", MS),
        Later::Drop(FragDrop::FirstRejected)
    );
    assert!(t.is_empty());
    assert_eq!(t.stats().dropped_first_rejected, 2);
}

/// Later fragments before the first are held and released in arrival
/// order, byte for byte, once the first is accepted.
#[test]
fn out_of_order_fragments_are_held_then_released() {
    let mut t = FragTracker::<u32>::new(cfg()).unwrap();
    let k = key(3);
    let f2 = vec![2u8; 200];
    let f1 = vec![1u8; 256];
    assert_eq!(t.later_fragment(&k, frag(2, 3), &f2, 0), Later::Held);
    assert_eq!(t.later_fragment(&k, frag(1, 3), &f1, MS), Later::Held);
    assert_eq!(t.free_slots(), 6);
    // Nothing is released before the first fragment was accepted.
    assert!(take(&mut t, &k).is_empty());
    assert_eq!(t.first_fragment(&k, frag(0, 3), Some(9), 2 * MS), 2);
    assert_eq!(take(&mut t, &k), vec![f2, f1]);
    assert_eq!(t.free_slots(), 8);
    assert!(t.is_empty(), "complete after release");
    let s = *t.stats();
    assert_eq!((s.held, s.released, s.entries_completed), (2, 2, 1));
}

#[test]
fn held_fragments_die_with_a_rejected_first() {
    let mut t = FragTracker::<u32>::new(cfg()).unwrap();
    let k = key(4);
    assert_eq!(t.later_fragment(&k, frag(1, 4), b"a", 0), Later::Held);
    assert_eq!(t.later_fragment(&k, frag(3, 4), b"b", 0), Later::Held);
    assert_eq!(t.first_fragment(&k, frag(0, 4), None, 0), 0);
    assert_eq!(t.free_slots(), 8);
    assert!(take(&mut t, &k).is_empty());
    assert_eq!(
        t.later_fragment(&k, frag(2, 4), b"c", 0),
        Later::Drop(FragDrop::FirstRejected)
    );
    assert_eq!(t.stats().held_dropped_rejected, 2);
    assert!(t.is_empty());
}

/// An accepted first fragment that could not be sent after all: the
/// acceptance is withdrawn, held and later fragments are dropped.
#[test]
fn withdrawn_acceptance_drops_the_rest() {
    let mut t = FragTracker::<u32>::new(cfg()).unwrap();
    let k = key(21);
    assert_eq!(t.later_fragment(&k, frag(2, 4), b"c", 0), Later::Held);
    assert_eq!(t.first_fragment(&k, frag(0, 4), Some(5), 0), 1);
    assert_eq!(t.reject(&k), 1);
    assert!(take(&mut t, &k).is_empty());
    assert_eq!(t.free_slots(), 8);
    assert_eq!(
        t.later_fragment(&k, frag(1, 4), b"b", 0),
        Later::Drop(FragDrop::FirstRejected)
    );
    // 300 of 400 bytes seen: the last fragment ends the entry.
    assert_eq!(
        t.later_fragment(&k, frag(3, 4), b"d", 0),
        Later::Drop(FragDrop::FirstRejected)
    );
    assert!(t.is_empty());
    assert_eq!(t.stats().held_dropped_rejected, 1);
    assert_eq!(t.reject(&key(22)), 0, "unknown datagram");
    assert!(t.is_empty());
}

/// A first fragment that never comes: the held copies are dropped when
/// the entry times out (by sweep, or when the key is seen again).
#[test]
fn held_fragments_time_out() {
    let mut t = FragTracker::<u32>::new(cfg()).unwrap();
    let (a, b) = (key(5), key(6));
    assert_eq!(t.later_fragment(&a, frag(1, 2), b"a", 0), Later::Held);
    assert_eq!(t.later_fragment(&b, frag(1, 2), b"b", 0), Later::Held);
    assert_eq!(t.sweep(1000 * MS, usize::MAX), 0, "not yet");
    assert_eq!(t.sweep(1001 * MS, usize::MAX), 2);
    assert_eq!(t.free_slots(), 8);
    assert_eq!(t.stats().held_dropped_expired, 2);
    // An accepted entry times out too: a late fragment is no longer
    // forwarded (it is held as if the first had not been seen).
    assert_eq!(t.first_fragment(&a, frag(0, 3), Some(1), 2000 * MS), 0);
    assert_eq!(
        t.later_fragment(&a, frag(1, 3), b"x", 2500 * MS),
        Later::Forward(1)
    );
    assert_eq!(
        t.later_fragment(&a, frag(2, 3), b"y", 3001 * MS + 1),
        Later::Held
    );
    assert_eq!(t.stats().entries_expired, 3);
}

#[test]
fn holding_is_bounded() {
    let mut t = FragTracker::<u32>::new(cfg()).unwrap();
    let big = [0u8; 257];
    let cases: &[(&str, u32, &[u8], Later<u32>)] = &[
        (
            "too large for a slot",
            10,
            &big,
            Later::Drop(FragDrop::TooLarge),
        ),
        ("held 1", 11, b"1", Later::Held),
        ("held 2", 11, b"2", Later::Held),
        ("held 3", 11, b"3", Later::Held),
        ("held 4", 11, b"4", Later::Held),
        (
            "5th of one datagram",
            11,
            b"5",
            Later::Drop(FragDrop::HeldLimit),
        ),
        ("other datagram 1", 12, b"6", Later::Held),
        ("other datagram 2", 12, b"7", Later::Held),
        ("other datagram 3", 12, b"8", Later::Held),
        ("third datagram, last slot", 14, b"9", Later::Held),
        (
            "stash full, known datagram",
            12,
            b"a",
            Later::Drop(FragDrop::StashFull),
        ),
        (
            "stash full, new datagram",
            13,
            b"x",
            Later::Drop(FragDrop::StashFull),
        ),
    ];
    for (n, &(what, id, bytes, want)) in cases.iter().enumerate() {
        let info = FragInfo {
            offset: 8 * (n as u32 + 1),
            len: 8,
            more: true,
        };
        assert_eq!(t.later_fragment(&key(id), info, bytes, 0), want, "{what}");
    }
    // Dropped fragments took no entry.
    assert_eq!(t.len(), 3);
    let s = *t.stats();
    assert_eq!(
        (
            s.dropped_too_large,
            s.dropped_held_limit,
            s.dropped_stash_full
        ),
        (1, 1, 2)
    );
    assert_eq!(t.first_fragment(&key(11), frag(0, 9), Some(3), 0), 4);
    assert_eq!(
        take(&mut t, &key(11)),
        vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec(), b"4".to_vec()]
    );
    assert_eq!(t.later_fragment(&key(13), frag(1, 2), b"x", 0), Later::Held);

    let mut none = FragTracker::<u32>::new(FragConfig {
        held_slots: 0,
        ..cfg()
    })
    .unwrap();
    assert_eq!(
        none.later_fragment(&key(1), frag(1, 2), b"x", 0),
        Later::Drop(FragDrop::StashFull)
    );
}

/// A full bucket evicts its oldest datagram (with what it held); a table
/// of one bucket makes every key collide.
#[test]
fn full_table_evicts_the_oldest() {
    let mut t = FragTracker::<u32>::new(FragConfig {
        entries: WAYS,
        ..cfg()
    })
    .unwrap();
    assert_eq!(
        t.later_fragment(&key(100), frag(1, 2), b"h", 0),
        Later::Held
    );
    for id in 101..(100 + WAYS as u32) {
        t.first_fragment(&key(id), frag(0, 3), Some(id), u64::from(id) * MS);
    }
    assert_eq!(t.len(), WAYS);
    t.first_fragment(&key(200), frag(0, 3), Some(200), 500 * MS);
    assert_eq!(t.len(), WAYS);
    assert_eq!(t.stats().entries_evicted, 1);
    assert_eq!(t.stats().held_dropped_expired, 1);
    assert_eq!(t.free_slots(), 8);
    // 100 was the oldest: gone. The others still forward.
    assert_eq!(
        t.later_fragment(&key(101), frag(1, 3), b"", 501 * MS),
        Later::Forward(101)
    );
    assert_eq!(
        t.later_fragment(&key(200), frag(1, 3), b"", 501 * MS),
        Later::Forward(200)
    );
}

/// Datagrams that differ in any key field are tracked apart.
#[test]
fn every_key_field_separates_datagrams() {
    let base = key(7);
    let variants = [
        FragKey { id: 8, ..base },
        FragKey { network: 6, ..base },
        FragKey {
            proto: IPPROTO_TCP,
            ..base
        },
        FragKey {
            src: [1; 16],
            ..base
        },
        FragKey {
            dst: [2; 16],
            ..base
        },
    ];
    let mut t = FragTracker::<u32>::new(FragConfig {
        entries: 1024,
        ..cfg()
    })
    .unwrap();
    t.first_fragment(&base, frag(0, 5), None, 0);
    for (n, v) in variants.iter().enumerate() {
        t.first_fragment(v, frag(0, 5), Some(n as u32), 0);
    }
    assert_eq!(
        t.later_fragment(&base, frag(1, 5), b"", 0),
        Later::Drop(FragDrop::FirstRejected)
    );
    for (n, v) in variants.iter().enumerate() {
        assert_eq!(
            t.later_fragment(v, frag(1, 5), b"", 0),
            Later::Forward(n as u32)
        );
    }
}

/// Random traffic: the stash never leaks (free slots plus held copies is
/// always the total), and a fragment is forwarded only after an accepted
/// first fragment of its datagram.
#[test]
fn random_traffic_keeps_the_books() {
    let mut t = FragTracker::<u32>::new(FragConfig {
        entries: 16,
        ..cfg()
    })
    .unwrap();
    let mut accepted = std::collections::HashMap::new();
    let mut s = 0xfeed_u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut now = 0;
    for _ in 0..100_000 {
        now += rnd() % (20 * MS);
        let r = rnd();
        let id = (r % 40) as u32;
        let k = key(id);
        let n = ((r >> 8) % 4) as u32;
        match (r >> 16) % 8 {
            0 => {
                let ok = (r >> 20) % 3 != 0;
                t.first_fragment(&k, frag(0, 4), ok.then_some(id), now);
                if ok {
                    accepted.insert(id, ());
                    t.take_held(&k, |_| {});
                    if let Some(i) = t.position(&k) {
                        assert_eq!(t.entries[i].held, 0, "all released");
                    }
                } else {
                    accepted.remove(&id);
                }
            }
            1 => {
                t.sweep(now, 2);
            }
            _ => {
                if let Later::Forward(v) =
                    t.later_fragment(&k, frag(1 + n % 3, 4), &[n as u8; 32], now)
                {
                    assert_eq!(v, id);
                    assert!(accepted.contains_key(&id));
                }
            }
        }
        let held: u32 = t
            .entries
            .iter()
            .filter(|e| !e.is_free())
            .map(|e| e.held)
            .sum();
        assert_eq!(t.free_slots() + held as usize, 8);
        let live = t.entries.iter().filter(|e| !e.is_free()).count();
        assert_eq!(live, t.len());
    }
    let s = t.stats();
    assert!(
        s.entries_evicted > 0 && s.entries_expired > 0 && s.released > 0 && s.forwarded > 0,
        "{s:?}"
    );
}
