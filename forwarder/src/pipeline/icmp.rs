//! ICMP and ICMPv6 to a VIP, and the ICMP answers lbfwd sends itself: echo
//! requests are answered (when the load balancer allows it) or dropped;
//! errors whose quoted packet is a reply of one of the load balancer's
//! flows pass the same filter and follow the same pick as that flow; "too
//! big" (frag-needed / packet-too-big) answers a packet that does not fit
//! the underlay, rate-limited.

use super::classify::key_of;
use super::filter;
use super::state::{State, Verdict};
use crate::counters::DropReason;
use crate::flow::FlowKey;
use crate::frame::Frame;
use crate::tables::{LbTable, Tables};
use crate::wire::icmp_reply::{frame_echo_reply, frame_too_big};
use crate::wire::{IcmpInfo, IcmpKind, IpVersion, L4Info, Parsed};

/// Whether lbfwd may answer this packet itself: an IPv4 header must carry a
/// correct checksum (the parser leaves that to the targets for forwarded
/// packets, but lbfwd's own answers must not be triggered by a corrupt one).
#[inline]
fn header_ok_for_answer(frame: &Frame<'_>, p: &Parsed) -> bool {
    if p.version != IpVersion::V4 {
        return true;
    }
    let l3 = p.l3_offset as usize;
    let data = frame.data();
    let ihl = usize::from(data[l3] & 0x0f) * 4;
    data.get(l3..l3 + ihl)
        .is_some_and(crate::wire::checksum::verify)
}

impl State {
    /// ICMP and ICMPv6 addressed to a VIP.
    pub(super) fn icmp(
        &mut self,
        t: &Tables,
        lb_idx: u32,
        lb: &LbTable,
        p: &Parsed,
        info: IcmpInfo,
        frame: &mut Frame<'_>,
    ) -> Verdict {
        match info.kind {
            IcmpKind::EchoRequest { .. } => {
                if !lb.icmp_echo_reply {
                    return self.filtered(lb, DropReason::IcmpEcho);
                }
                if !header_ok_for_answer(frame, p) {
                    return Verdict::Drop(DropReason::BadChecksum);
                }
                match frame_echo_reply(frame, p) {
                    Ok(()) => {
                        self.counters.icmp_echo_replies.inc();
                        Verdict::Tx
                    }
                    Err(_) => Verdict::Drop(DropReason::Malformed),
                }
            }
            kind if kind.is_error() => {
                // The quoted packet is one a target sent from the VIP to the
                // client; reversed, it is the flow as lbfwd saw it.
                let Some(quoted) = info.embedded else {
                    return self.filtered(lb, DropReason::IcmpNoFlow);
                };
                if t.lb_for(key_of(&quoted.src)).map(|(i, _)| i) != Some(lb_idx) {
                    return self.filtered(lb, DropReason::IcmpNoFlow);
                }
                let flow_dir = quoted.reversed();
                let proto = u8::from(flow_dir.protocol);
                let (sport, dport) = match flow_dir.ports {
                    Some(ports) => {
                        if !filter::port_allowed(lb, proto, ports.dst) {
                            return self.filtered(lb, DropReason::IcmpNoFlow);
                        }
                        (ports.src, ports.dst)
                    }
                    None if filter::protocol_allowed(lb, proto) => (0, 0),
                    None => return self.filtered(lb, DropReason::IcmpNoFlow),
                };
                let flow = FlowKey::new(flow_dir.src, flow_dir.dst, proto, sport, dport, lb.vni);
                let Some((target, hash)) = self.pick_quoted(t, lb_idx, lb, &flow) else {
                    return Verdict::Drop(DropReason::NoTarget);
                };
                let verdict = self.encap(t, lb, &lb.targets[target as usize], hash, frame, p);
                if verdict == Verdict::Tx {
                    self.counters.icmp_errors_forwarded.inc();
                }
                verdict
            }
            _ => self.filtered(lb, DropReason::IcmpOther),
        }
    }

    /// Answers a packet that does not fit the underlay with ICMP
    /// frag-needed / packet-too-big from the VIP, rate-limited.
    pub(super) fn too_big(&mut self, frame: &mut Frame<'_>, p: &Parsed, inner_mtu: u32) -> Verdict {
        // IPv4 without DF may be fragmented on the way, but lbfwd does not
        // fragment outer packets; ICMP errors are never answered with ICMP.
        let is_icmp_error = matches!(p.l4, L4Info::Icmp(i) if i.kind.is_error());
        if (p.version == IpVersion::V4 && !p.df) || is_icmp_error {
            return Verdict::Drop(DropReason::TooBig);
        }
        if !header_ok_for_answer(frame, p) {
            return Verdict::Drop(DropReason::BadChecksum);
        }
        if !self.too_big.take(self.now) {
            return Verdict::Drop(DropReason::TooBigRateLimited);
        }
        let mtu = match p.version {
            IpVersion::V4 => inner_mtu.max(68),
            IpVersion::V6 => inner_mtu.max(1280),
        };
        let vip = p.dst;
        match frame_too_big(frame, p, &vip, mtu) {
            Ok(()) => {
                self.counters.too_big_sent.inc();
                Verdict::Tx
            }
            Err(_) => Verdict::Drop(DropReason::TooBig),
        }
    }
}
