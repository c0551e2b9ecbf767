//! Per-target outer-header templates and the fast emitter: the headers
//! toward one target are built once with the tables; per packet the fast
//! path copies them and patches the per-packet fields.

use super::{encapsulate_inner, Encapsulation, Inner, Target, Underlay, UnderlayParams};
use crate::counters::{internal, DropReason};
use crate::frame::{Frame, HEADROOM};
use crate::wire::checksum;
use crate::wire::ip::IPPROTO_UDP;
use crate::wire::ipv6::flow_label_from_hash;
use crate::wire::IpVersion;
use lbfwd_config::model::Encap;

/// Longest outer header lbfwd writes: Ethernet 14 + IPv6 40 + UDP 8 +
/// VXLAN 8 + inner Ethernet 14.
pub const MAX_ENCAP_LEN: usize = 84;

/// The outer headers toward one target, built with the tables: what
/// [`encapsulate`](super::encapsulate) writes, with the per-packet fields (lengths, checksums,
/// TOS / traffic class, UDP source port, flow label, inner EtherType or
/// IP-in-IP protocol) left zero, except two of them that carry the
/// template's own data (see `LEN_AT`, `SUM_AT`). Per packet the fast
/// path copies it and patches those fields; the result is byte for byte what
/// [`encapsulate`](super::encapsulate) writes (a unit test compares the two).
///
/// Everything the fast path reads of a template with an outer IPv4 header,
/// or an outer IPv6 header without VXLAN, lies in its first cache line (the
/// headers are at most 64 bytes): one line to fetch per packet, not two.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct EncapTemplate {
    /// The headers, outer Ethernet first; [`EncapTemplate::len`] bytes are
    /// used. Byte `LEN_AT` holds that length (0 when the template cannot
    /// be used: no underlay source address of the target's family, or an
    /// MTU too small for any packet; the full encapsulation then decides;
    /// the length also tells the shape, see `encapsulate_fixed`), bytes
    /// `SUM_AT` the precomputed checksum part (big-endian): outer IPv4,
    /// the one's complement sum of the header with TOS, total length,
    /// protocol (IP-in-IP only) and checksum zero; outer IPv6 with UDP, the
    /// pseudo-header sum without the length. Both are per-packet fields of
    /// every shape, which every packet overwrites after the copy.
    bytes: [u8; MAX_ENCAP_LEN],
    /// The target's counter slot (on the second cache line: the fast path
    /// counts with the slot its flow entry remembers, which is the same).
    slot: u32,
}

/// Where [`EncapTemplate`] keeps its length: the outer IPv4 TOS, or the
/// first byte of the outer IPv6 traffic class and flow label (both
/// rewritten for every packet).
const LEN_AT: usize = 15;
/// Where [`EncapTemplate`] keeps its checksum part: the outer IPv4 total
/// length, or the low 16 bits of the outer IPv6 flow label (both rewritten
/// for every packet; outside the IPv6 UDP checksum's range).
const SUM_AT: std::ops::Range<usize> = 16..18;

impl EncapTemplate {
    /// The template toward `target` (of a load balancer with network
    /// `vni`) under the underlay settings `u`.
    pub fn new(u: &UnderlayParams, vni: u32, target: &Target) -> Self {
        let outer_v6 = matches!(target.underlay, Underlay::V6(_));
        let ipip = u.encap == Encap::IpIp;
        let vxlan = matches!(u.encap, Encap::Vxlan { .. });
        let mut t = EncapTemplate {
            bytes: [0; MAX_ENCAP_LEN],
            slot: target.slot,
        };
        // Let the reference write the headers in front of a minimal inner
        // IPv4 header (hash 0, TOS 0), then clear the per-packet fields.
        let mut buf = [0u8; HEADROOM + 20];
        buf[HEADROOM] = 0x45;
        buf[HEADROOM + 3] = 20;
        let mut frame = Frame::new(&mut buf, HEADROOM, 20);
        let inner = Inner {
            l3: 0,
            ip_len: 20,
            version: IpVersion::V4,
            tos: 0,
        };
        if encapsulate_inner(u, vni, target, 0, &mut frame, inner).is_err() {
            return t;
        }
        let len = frame.len() - 20;
        t.bytes[..len].copy_from_slice(&frame.data()[..len]);
        let b = &mut t.bytes;
        let mut sum = 0;
        if outer_v6 {
            b[14..20].fill(0); // version, traffic class, flow label, length
            b[14] = 0x60;
            if ipip {
                b[20] = 0;
            } else {
                b[58..62].fill(0); // UDP length, checksum
                b[54..56].fill(0); // UDP source port
                let mut src = [0u8; 16];
                let mut dst = [0u8; 16];
                src.copy_from_slice(&b[22..38]);
                dst.copy_from_slice(&b[38..54]);
                sum = checksum::pseudo_header_v6(&src, &dst, IPPROTO_UDP, 0);
            }
        } else {
            b[15..18].fill(0); // TOS, total length
            b[24..26].fill(0); // checksum
            if ipip {
                b[23] = 0;
            } else {
                b[34..36].fill(0); // UDP source port
                b[38..40].fill(0); // UDP length
            }
            sum = checksum::sum(&b[14..34]);
        }
        if vxlan {
            b[len - 2..len].fill(0);
        }
        b[LEN_AT] = len as u8;
        b[SUM_AT].copy_from_slice(&sum.to_be_bytes());
        t
    }

    /// Bytes of outer headers it writes (0: not usable).
    pub fn len(&self) -> usize {
        usize::from(self.bytes[LEN_AT])
    }

    /// True when the template cannot be used (see [`EncapTemplate::new`]).
    pub fn is_empty(&self) -> bool {
        self.bytes[LEN_AT] == 0
    }

    /// The target's counter slot.
    #[inline(always)]
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// A byte on the template's second cache line, for the burst
    /// prefetch: only templates of outer IPv6 with VXLAN (84 bytes) have
    /// headers there ([`EncapTemplate::two_lines`]).
    #[inline(always)]
    pub fn second_line(&self) -> &u8 {
        &self.bytes[64]
    }

    /// Whether some template under the underlay settings `u` has headers on
    /// its second cache line: VXLAN with an IPv6 source (outer IPv6 with
    /// VXLAN is 84 bytes); every other shape fits in the first line.
    #[inline(always)]
    pub fn two_lines(u: &UnderlayParams) -> bool {
        matches!(u.encap, Encap::Vxlan { .. }) && u.source_ipv6.is_some()
    }
}

/// [`encapsulate`](super::encapsulate) with a target's [`EncapTemplate`] (not empty): the same
/// checks in the same order, the same bytes. Each outer header shape has its
/// own length, so the length picks a copy of `encapsulate_fixed` whose
/// offsets are constants (a fixed-size copy, no bounds checks per field).
#[inline(always)]
pub fn encapsulate_template(
    tpl: &EncapTemplate,
    mtu: u16,
    hash: u64,
    frame: &mut Frame<'_>,
    p: Inner,
) -> Result<(), Encapsulation> {
    match tpl.bytes[LEN_AT] {
        34 => encapsulate_fixed::<34>(tpl, mtu, hash, frame, p),
        42 => encapsulate_fixed::<42>(tpl, mtu, hash, frame, p),
        54 => encapsulate_fixed::<54>(tpl, mtu, hash, frame, p),
        62 => encapsulate_fixed::<62>(tpl, mtu, hash, frame, p),
        64 => encapsulate_fixed::<64>(tpl, mtu, hash, frame, p),
        84 => encapsulate_fixed::<84>(tpl, mtu, hash, frame, p),
        // Every template has one of the lengths above; never panic anyway.
        _ => Err(Encapsulation::Drop(internal(
            "template of an unknown length",
        ))),
    }
}

/// [`encapsulate_template`] for a template of `LEN` bytes. The length says
/// the shape: outer IPv4 with IP-in-IP (34), GUE (42) or VXLAN (64); outer
/// IPv6 with IP-in-IP (54), GUE (62) or VXLAN (84).
#[inline(always)]
fn encapsulate_fixed<const LEN: usize>(
    tpl: &EncapTemplate,
    mtu: u16,
    hash: u64,
    frame: &mut Frame<'_>,
    p: Inner,
) -> Result<(), Encapsulation> {
    let outer_v6 = matches!(LEN, 54 | 62 | 84);
    let ipip = matches!(LEN, 34 | 54);
    let vxlan = matches!(LEN, 64 | 84);
    let overhead = LEN - 14;
    let ip_len = usize::from(p.ip_len);
    if overhead + ip_len > usize::from(mtu) {
        return Err(Encapsulation::TooBig {
            inner_mtu: u32::from(mtu).saturating_sub(overhead as u32),
        });
    }
    let tos = p.tos;
    let tpl_sum = u16::from_be_bytes([tpl.bytes[SUM_AT.start], tpl.bytes[SUM_AT.start + 1]]);
    let Some(h) = frame.prepend_array::<LEN>(usize::from(p.l3)) else {
        return Err(Encapsulation::Drop(DropReason::NoHeadroom));
    };
    h.copy_from_slice(&tpl.bytes[..LEN]);
    let inner_v6 = p.version == IpVersion::V6;
    let ip_proto = if inner_v6 { 41u8 } else { 4 };
    let udp_len = (ip_len + overhead - if outer_v6 { 40 } else { 20 }) as u16;
    if vxlan {
        h[LEN - 2] = if inner_v6 { 0x86 } else { 0x08 };
        h[LEN - 1] = if inner_v6 { 0xdd } else { 0x00 };
    }
    if outer_v6 {
        let word = (6u32 << 28) | (u32::from(tos) << 20) | flow_label_from_hash(hash as u32);
        h[14..18].copy_from_slice(&word.to_be_bytes());
        h[18..20].copy_from_slice(&udp_len.to_be_bytes());
        if ipip {
            h[20] = ip_proto;
        } else {
            h[54..56].copy_from_slice(&crate::wire::udp::source_port(hash).to_be_bytes());
            h[58..60].copy_from_slice(&udp_len.to_be_bytes());
            // Required over IPv6 (RFC 8200 section 8.1): the whole datagram.
            let pseudo = checksum::fold32(u32::from(tpl_sum) + u32::from(udp_len));
            let c = checksum::checksum_with(pseudo, &frame.data()[54..]);
            let c = if c == 0 { 0xffff } else { c };
            frame.data_mut()[60..62].copy_from_slice(&c.to_be_bytes());
        }
    } else {
        let total = (ip_len + overhead) as u16;
        let proto = if ipip { ip_proto } else { 0 };
        let c = !checksum::fold32(
            u32::from(tpl_sum) + u32::from(tos) + u32::from(total) + u32::from(proto),
        );
        h[15] = tos;
        h[16..18].copy_from_slice(&total.to_be_bytes());
        h[24..26].copy_from_slice(&c.to_be_bytes());
        if ipip {
            h[23] = ip_proto;
        } else {
            h[34..36].copy_from_slice(&crate::wire::udp::source_port(hash).to_be_bytes());
            h[38..40].copy_from_slice(&udp_len.to_be_bytes());
        }
    }
    Ok(())
}
