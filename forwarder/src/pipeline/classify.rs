//! Stage 1, classify: which parser took the packet, which load balancer it
//! is for, where its inner IP packet sits. The express and fast parsers'
//! packets become a [`Common`] (flow key, load balancer, inner packet); every
//! other frame is parsed in full ([`State::classify_full`]). Not IP, or not
//! to a VIP: the host's. Ethernet padding is trimmed here.

use super::state::{State, Verdict};
use crate::counters::DropReason;
use crate::encap::Inner;
use crate::flow::FlowKey;
use crate::frame::Frame;
use crate::l2::Answer;
use crate::tables::{LbTable, Tables};
use crate::wire::{FastPacket, IpVersion, Parsed, ParsedFrame, V4Packet, WireError};

/// A packet of the express or fast path to a VIP.
#[derive(Clone, Copy, Debug)]
pub(super) struct Common {
    /// Its load balancer's index.
    pub lb_idx: u32,
    /// Its flow.
    pub flow: FlowKey,
    /// Where its inner packet sits.
    pub inner: Inner,
}

/// A packet of the express parser ([`crate::wire::parse_v4`]); `None`: not
/// to a VIP.
#[inline(always)]
pub(super) fn express(t: &Tables, f: &V4Packet) -> Option<Common> {
    let vip = t.vip_v4(f.dst)?;
    Some(Common {
        lb_idx: vip.lb,
        flow: FlowKey::v4(
            f.src.to_be_bytes(),
            f.dst.to_be_bytes(),
            f.proto,
            f.sport,
            f.dport,
            vip.vni,
        ),
        inner: Inner {
            l3: 14,
            ip_len: f.ip_len,
            version: IpVersion::V4,
            tos: f.tos,
        },
    })
}

/// A packet of the fast parser ([`crate::wire::parse_fast`]); `None`: not
/// to a VIP.
#[inline(always)]
pub(super) fn common(t: &Tables, f: &FastPacket) -> Option<Common> {
    let vip = t.vip(f.dst)?;
    Some(Common {
        lb_idx: vip.lb,
        flow: FlowKey::new(
            f.src.to_be_bytes(),
            f.dst.to_be_bytes(),
            f.proto,
            f.sport,
            f.dport,
            vip.vni,
        ),
        inner: Inner {
            l3: f.l3,
            ip_len: f.ip_len,
            version: f.version,
            tos: f.tos,
        },
    })
}

/// Trims Ethernet padding: the frame ends where its IP packet ends.
#[inline(always)]
pub(super) fn trim_padding(frame: &mut Frame<'_>, ip_end: usize) {
    if frame.len() > ip_end {
        frame.set_len(ip_end);
    }
}

/// What the full parse found out.
pub(super) enum Classified<'t> {
    /// An IP packet to a VIP of load balancer `lb_idx`.
    Vip {
        lb_idx: u32,
        lb: &'t LbTable,
        parsed: Parsed,
    },
    /// Settled here: the host's, or dropped.
    Done(Verdict),
}

impl State {
    /// Parses `frame` in full ([`crate::wire::parse_frame`]) and finds its
    /// load balancer; trims its Ethernet padding.
    #[inline(always)]
    pub(super) fn classify_full<'t>(&self, t: &'t Tables, frame: &mut Frame<'_>) -> Classified<'t> {
        let p = match crate::wire::parse_frame(frame.data()) {
            Ok(ParsedFrame::Ip(p)) => p,
            Ok(ParsedFrame::NotIp(n)) => {
                // An ARP request for a VIP is answered while announcing ([l2]).
                let arp = n.ethertype == crate::wire::EtherType::Arp;
                let l3 = usize::from(n.l3_offset);
                return Classified::Done(match self.l2.not_ip(t, frame, arp, l3) {
                    Answer::Pass => Verdict::Host,
                    Answer::Reply => Verdict::Tx,
                    Answer::Malformed => Verdict::Drop(DropReason::Malformed),
                });
            }
            Err(e) => return Classified::Done(Verdict::Drop(malformed(e))),
        };
        if p.protocol == crate::wire::IpProtocol::Icmpv6 {
            // So is a neighbour solicitation for one.
            let (l3, l4) = (usize::from(p.l3_offset), usize::from(p.l4_offset));
            match self.l2.icmpv6(t, frame, l3, l4) {
                Answer::Pass => {}
                Answer::Reply => return Classified::Done(Verdict::Tx),
                Answer::Malformed => return Classified::Done(Verdict::Drop(DropReason::Malformed)),
            }
        }
        let Some((lb_idx, lb)) = t.lb_for(key_of(&p.dst)) else {
            self.counters.host_not_vip.inc();
            return Classified::Done(Verdict::Host);
        };
        trim_padding(frame, p.ip_end());
        Classified::Vip {
            lb_idx,
            lb,
            parsed: p,
        }
    }
}

/// The drop reason of a parse error.
#[inline]
fn malformed(e: WireError) -> DropReason {
    match e {
        WireError::BadIpv4Checksum => DropReason::BadChecksum,
        _ => DropReason::Malformed,
    }
}

/// The VIP-map key of a 16-byte parsed address.
#[inline(always)]
pub(super) fn key_of(addr: &[u8; 16]) -> u128 {
    u128::from_be_bytes(*addr)
}
