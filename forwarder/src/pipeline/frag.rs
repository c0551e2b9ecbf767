//! Stage 3, fragments: every fragment of a datagram follows its first
//! (which carries the ports and is filtered and picked like any packet of
//! its flow). The tracker ([`crate::flow::frag`]) remembers per datagram
//! what happened to the first fragment and holds later fragments that
//! arrive before it; this file is the pipeline's side: recording the first
//! fragment's verdict, sending the later ones after it, and releasing the
//! held copies after the burst.

use super::classify::{key_of, trim_padding};
use super::state::{FragValue, Release, State, Verdict, MAX_PENDING_RELEASES};
use crate::counters::{internal, DropReason};
use crate::encap::{encapsulate, Encapsulation};
use crate::flow::frag::{FragDrop, FragInfo, FragKey, Later};
use crate::frame::{Frame, HEADROOM};
use crate::tables::{LbTable, Tables};
use crate::wire::{Parsed, ParsedFrame};

/// A first fragment whose verdict the tracker waits for.
pub(super) type First = Option<(FragKey, FragInfo)>;

impl State {
    /// The fragment stage of a TCP/UDP/SCTP packet `p` of load balancer
    /// `lb`: `Err(verdict)` for a later fragment (it follows its first
    /// fragment, is held, or is dropped); `Ok(Some(..))` for a first
    /// fragment, whose verdict [`Self::first_fragment_done`] records;
    /// `Ok(None)` for a packet that is no fragment.
    #[inline]
    pub(super) fn fragment(
        &mut self,
        t: &Tables,
        lb_idx: u32,
        lb: &LbTable,
        p: &Parsed,
        frame: &mut Frame<'_>,
    ) -> Result<First, Verdict> {
        let Some(f) = p.frag else {
            return Ok(None);
        };
        let key = FragKey {
            src: p.src,
            dst: p.dst,
            network: lb.vni,
            id: f.id,
            proto: u8::from(p.protocol),
        };
        let info = FragInfo {
            offset: u32::from(f.offset),
            len: (p.ip_end() - p.l4_offset as usize) as u32,
            more: f.more,
        };
        if f.is_first() {
            return Ok(Some((key, info)));
        }
        Err(
            match self
                .frags
                .later_fragment(&key, info, frame.data(), self.now)
            {
                Later::Forward(v) => match t.target_in(lb_idx, v.slot) {
                    Some(i) => self.encap(t, lb, &lb.targets[i as usize], v.hash, frame, p),
                    None => Verdict::Drop(DropReason::NoTarget),
                },
                Later::Held => Verdict::Held,
                Later::Drop(FragDrop::FirstRejected) => Verdict::Drop(DropReason::FragmentRejected),
                Later::Drop(_) => Verdict::Drop(DropReason::FragmentOverflow),
            },
        )
    }

    /// Records the verdict of a first fragment (`value`: sent to that
    /// target; `None`: refused, answered or dropped); its held fragments,
    /// if sent, are released after the burst ([`Self::release_held`]).
    /// Nothing for a packet that is no fragment.
    #[inline]
    pub(super) fn first_fragment_done(&mut self, first: First, value: Option<FragValue>) {
        let Some((key, info)) = first else {
            return;
        };
        let held = self.frags.first_fragment(&key, info, value, self.now);
        if let (true, Some(value)) = (held > 0, value) {
            if self.pending_len < MAX_PENDING_RELEASES {
                self.pending[self.pending_len] = Some(Release { key, value });
                self.pending_len += 1;
            }
            // Else they stay held and time out (counted by the tracker).
        }
    }

    /// Encapsulates the held fragments released by accepted first
    /// fragments and emits them.
    pub(super) fn release_held(
        &mut self,
        t: &Tables,
        emit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> usize {
        let mut sent = 0;
        for i in 0..self.pending_len {
            let Some(release) = self.pending[i].take() else {
                continue;
            };
            let State {
                frags,
                scratch,
                counters,
                ..
            } = self;
            frags.take_held(&release.key, |held| {
                let verdict = encapsulate_copy(t, scratch, held, &release, emit);
                match verdict {
                    Ok(len) => {
                        counters.tx.count(len);
                        sent += 1;
                    }
                    Err(reason) => counters.dropped(reason),
                }
            });
        }
        self.pending_len = 0;
        sent
    }
}

/// Encapsulates a copy of a held fragment toward its datagram's target and
/// emits it; returns the length emitted.
fn encapsulate_copy(
    t: &Tables,
    scratch: &mut [u8],
    held: &[u8],
    release: &Release,
    emit: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<usize, DropReason> {
    if HEADROOM + held.len() > scratch.len() {
        return Err(DropReason::FragmentOverflow);
    }
    scratch[HEADROOM..HEADROOM + held.len()].copy_from_slice(held);
    let mut frame = Frame::new(scratch, HEADROOM, held.len());
    let p = match crate::wire::parse_frame(frame.data()) {
        Ok(ParsedFrame::Ip(p)) => p,
        // The copy was parsed when it was held.
        _ => return Err(internal("held fragment the parser refuses")),
    };
    let Some((lb_idx, lb)) = t.lb_for(key_of(&p.dst)) else {
        return Err(DropReason::NoTarget);
    };
    let Some(i) = t.target_in(lb_idx, release.value.slot) else {
        return Err(DropReason::NoTarget);
    };
    let target = &lb.targets[i as usize];
    trim_padding(&mut frame, p.ip_end());
    match encapsulate(
        &t.underlay,
        lb.vni,
        target,
        release.value.hash,
        &mut frame,
        &p,
    ) {
        Ok(()) => {}
        Err(Encapsulation::TooBig { .. }) => return Err(DropReason::TooBig),
        Err(Encapsulation::Drop(reason)) => return Err(reason),
    }
    if emit(frame.data()) {
        Ok(frame.len())
    } else {
        Err(DropReason::TxRingFull)
    }
}
