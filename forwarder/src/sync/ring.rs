//! The bounded queue from one worker to the sync thread: a single-producer,
//! single-consumer ring of [`Exception`] records in atomic words (no lock,
//! no allocation after creation, no `unsafe`). A full ring refuses the
//! record; the worker counts it, and the next check pass reports the flow
//! again.

use super::Exception;
use crate::flow::FlowKey;
use std::sync::atomic::{AtomicU64, Ordering};

/// Words of one record.
const WORDS: usize = 8;

/// A position counter on its own cache line (the producer's and the
/// consumer's do not share one).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Position(AtomicU64);

/// One worker's queue of exceptions for the sync thread.
#[derive(Debug)]
pub struct ExceptionRing {
    slots: Box<[[AtomicU64; WORDS]]>,
    mask: u64,
    /// Next record to read (written by the consumer only).
    head: Position,
    /// Next record to write (written by the producer only).
    tail: Position,
}

impl ExceptionRing {
    /// A ring of `capacity` records (rounded up to a power of two, at least 2).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2).next_power_of_two();
        ExceptionRing {
            slots: (0..capacity).map(|_| Default::default()).collect(),
            mask: capacity as u64 - 1,
            head: Position::default(),
            tail: Position::default(),
        }
    }

    /// Records the ring holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Appends `e` (producer side); `false` when the ring is full.
    #[inline]
    pub fn push(&self, e: &Exception) -> bool {
        let tail = self.tail.0.load(Ordering::Relaxed);
        let head = self.head.0.load(Ordering::Acquire);
        if tail.wrapping_sub(head) > self.mask {
            return false;
        }
        let slot = &self.slots[(tail & self.mask) as usize];
        for (word, value) in slot.iter().zip(encode(e)) {
            word.store(value, Ordering::Relaxed);
        }
        self.tail.0.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// Takes the oldest record (consumer side).
    pub fn pop(&self) -> Option<Exception> {
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        let slot = &self.slots[(head & self.mask) as usize];
        let mut words = [0u64; WORDS];
        for (value, word) in words.iter_mut().zip(slot.iter()) {
            *value = word.load(Ordering::Relaxed);
        }
        self.head.0.store(head.wrapping_add(1), Ordering::Release);
        Some(decode(&words))
    }
}

fn halves(b: [u8; 16]) -> [u64; 2] {
    let v = u128::from_le_bytes(b);
    [v as u64, (v >> 64) as u64]
}

fn join(lo: u64, hi: u64) -> [u8; 16] {
    (u128::from(lo) | (u128::from(hi) << 64)).to_le_bytes()
}

fn encode(e: &Exception) -> [u64; WORDS] {
    let [s0, s1] = halves(e.flow.src);
    let [d0, d1] = halves(e.flow.dst);
    let [t0, t1] = halves(e.target);
    let ports = u64::from(e.flow.network)
        | (u64::from(e.flow.src_port) << 32)
        | (u64::from(e.flow.dst_port) << 48);
    [s0, s1, d0, d1, t0, t1, ports, u64::from(e.flow.proto)]
}

fn decode(w: &[u64; WORDS]) -> Exception {
    Exception {
        flow: FlowKey::new(
            join(w[0], w[1]),
            join(w[2], w[3]),
            w[7] as u8,
            (w[6] >> 32) as u16,
            (w[6] >> 48) as u16,
            w[6] as u32,
        ),
        target: join(w[4], w[5]),
    }
}
