//! The per-worker half of layer-2 announcement: the check in the classify
//! stage that answers ARP requests and neighbour solicitations for the VIPs
//! of the current tables while announcing is on, and the drain of the
//! gratuitous frames the control side queued for this worker.

use super::frames::{self, SmallFrame};
use super::WorkerL2Counters;
use crate::frame::Frame;
use crate::tables::Tables;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// One worker's responder. Inactive (every check a single branch) when the
/// worker's interface is not an `[l2]` interface.
#[derive(Debug, Default)]
pub struct Responder {
    /// The interface's MAC; `None`: this worker answers nothing.
    mac: Option<[u8; 6]>,
    /// The announce flag the control side sets.
    flag: Option<Arc<AtomicBool>>,
    /// The flag as read at the start of this burst.
    on: bool,
    counters: Option<Arc<WorkerL2Counters>>,
    /// Gratuitous frames to send (only the first worker of each interface).
    outbox: Option<Receiver<SmallFrame>>,
}

impl Responder {
    pub(super) fn new(
        mac: [u8; 6],
        flag: Arc<AtomicBool>,
        counters: Arc<WorkerL2Counters>,
        outbox: Option<Receiver<SmallFrame>>,
    ) -> Self {
        Responder {
            mac: Some(mac),
            flag: Some(flag),
            on: false,
            counters: Some(counters),
            outbox,
        }
    }

    /// Reads the announce flag (once per burst).
    #[inline(always)]
    pub fn begin_burst(&mut self) {
        if let Some(f) = &self.flag {
            self.on = f.load(Ordering::Acquire);
        }
    }

    /// A frame that is not IP (`l3`: offset after its VLAN tags): the
    /// answer to an ARP request for a usable VIP while announcing, else the
    /// host's.
    #[inline]
    pub fn not_ip(&self, t: &Tables, frame: &mut Frame<'_>, arp: bool, l3: usize) -> Answer {
        let (true, true, Some(mac)) = (self.on, arp, self.mac) else {
            return Answer::Pass;
        };
        let Some(target) = frame.data().get(l3..).and_then(frames::arp_request_target) else {
            return Answer::Pass;
        };
        if !usable_vip(t, u128::from(u32::from_be_bytes(target)) | V4_MAPPED) {
            return Answer::Pass;
        }
        if !frames::answer_arp(frame.data_mut(), l3, mac) {
            return Answer::Malformed;
        }
        if let Some(c) = &self.counters {
            c.arp_answered.inc();
        }
        Answer::Reply
    }

    /// An ICMPv6 packet (IPv6 header at `l3`, ICMPv6 at `l4`): answered
    /// when it is a neighbour solicitation for a usable VIP while
    /// announcing; [`Answer::Pass`]: not lbfwd's to answer, the pipeline
    /// goes on.
    #[inline]
    pub fn icmpv6(&self, t: &Tables, frame: &mut Frame<'_>, l3: usize, l4: usize) -> Answer {
        let (true, Some(mac)) = (self.on, self.mac) else {
            return Answer::Pass;
        };
        let target = frame
            .data()
            .get(l3..)
            .and_then(|ip| frames::solicitation_target(ip, l4.checked_sub(l3)?));
        let Some(target) = target.filter(|t6| usable_vip(t, u128::from_be_bytes(*t6))) else {
            return Answer::Pass;
        };
        let room = frame.len() + frame.tailroom();
        if !frame.set_len((l3 + 72).min(room)) {
            return Answer::Malformed;
        }
        match frames::answer_ns(frame.data_mut(), l3, target, mac) {
            Some(len) => {
                frame.set_len(len);
                if let Some(c) = &self.counters {
                    c.nd_answered.inc();
                }
                Answer::Reply
            }
            None => Answer::Malformed,
        }
    }

    /// Hands the queued gratuitous frames to `emit` (per burst; an empty
    /// queue costs one atomic load).
    #[inline]
    pub fn drain(&self, emit: &mut dyn FnMut(&[u8]) -> bool) {
        let (Some(rx), Some(c)) = (&self.outbox, &self.counters) else {
            return;
        };
        while let Ok(f) = rx.try_recv() {
            if emit(f.data()) {
                c.gratuitous_sent.inc();
            } else {
                c.gratuitous_dropped.inc();
            }
        }
    }
}

/// What the responder did with a frame; the pipeline turns it into its
/// verdict (the responder does not depend on the pipeline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Not lbfwd's to answer (not a request for a usable VIP, or not
    /// announcing): an ARP frame goes to the host, an ICMPv6 packet on
    /// through the pipeline.
    Pass,
    /// Answered in place: the frame goes back out.
    Reply,
    /// A request too short to answer in place: dropped as malformed.
    Malformed,
}

/// The IPv4-mapped prefix of the tables' 128-bit address keys.
const V4_MAPPED: u128 = 0xffff_0000_0000;

/// Whether `key` is a VIP of these tables whose load balancer has a target
/// to pick (the announcer's "usable destination").
#[inline]
fn usable_vip(t: &Tables, key: u128) -> bool {
    t.lb_for(key).is_some_and(|(_, lb)| !lb.maglev.is_empty())
}
