//! Encapsulation toward a target: the outer headers (IP-in-IP, GUE or
//! VXLAN over an IPv4 or IPv6 underlay) written in place in front of the
//! inner IP packet, which is not touched.
//!
//! - [`params`]: what it writes toward (underlay settings, the target).
//! - this file: the reference emitter ([`encapsulate`], [`encapsulate_inner`])
//!   and its overhead ([`encap_overhead`]).
//! - [`template`]: per-target header templates built with the tables
//!   ([`EncapTemplate`]) and the fast emitter that copies and patches one
//!   ([`encapsulate_template`]); byte for byte what the reference writes.

pub mod params;
pub mod template;

pub use params::{Target, Underlay, UnderlayParams};
pub use template::{encapsulate_template, EncapTemplate, MAX_ENCAP_LEN};

use crate::counters::{internal, DropReason};
use crate::frame::Frame;
use crate::wire::ethernet::EthernetRepr;
use crate::wire::ip::tos_at;
use crate::wire::ipv4::Ipv4Repr;
use crate::wire::ipv6::{flow_label_from_hash, Ipv6Repr, DEFAULT_HOP_LIMIT};
use crate::wire::udp::{emit_udp_ipv4, emit_udp_ipv6};
use crate::wire::vxlan::VxlanRepr;
use crate::wire::{EtherType, IpProtocol, IpVersion, Parsed};
use lbfwd_config::model::Encap;

/// Why a packet was not encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encapsulation {
    /// The result would exceed the underlay MTU; the inner packet may be at
    /// most `inner_mtu` bytes.
    TooBig {
        /// Largest inner IP packet that fits.
        inner_mtu: u32,
    },
    /// It cannot be sent, for this reason.
    Drop(DropReason),
}

/// Bytes of the headers an encapsulation puts in front of the inner IP
/// packet, outer Ethernet not included: (outer IP, UDP, tunnel header,
/// inner Ethernet).
#[inline]
pub fn encap_overhead(encap: Encap, underlay: Underlay) -> usize {
    let outer_ip = match underlay {
        Underlay::V4(_) => 20,
        Underlay::V6(_) => 40,
    };
    outer_ip
        + match encap {
            Encap::IpIp => 0,
            Encap::Gue { .. } => 8,
            Encap::Vxlan { .. } => 8 + 8 + 14,
        }
}

/// Encapsulates the IP packet of `frame` (summarised by `p`, Ethernet
/// padding already trimmed) toward `target`, in place: the outer headers are
/// written in front of the inner IP header, over the old Ethernet header and
/// into the headroom; the inner packet is not touched.
#[inline]
pub fn encapsulate(
    u: &UnderlayParams,
    vni: u32,
    target: &Target,
    hash: u64,
    frame: &mut Frame<'_>,
    p: &Parsed,
) -> Result<(), Encapsulation> {
    // A parsed packet has its IP header in the frame.
    let Some(tos) = tos_at(frame.data(), usize::from(p.l3_offset), p.version) else {
        return Err(Encapsulation::Drop(internal(
            "parsed packet without its IP header",
        )));
    };
    let inner = Inner {
        l3: p.l3_offset,
        ip_len: p.ip_len,
        version: p.version,
        tos,
    };
    encapsulate_inner(u, vni, target, hash, frame, inner)
}

/// Where the inner IP packet sits in a frame: all that encapsulation needs
/// to know of it.
///
/// Eight bytes (the parsers bound offset and length to 16 bits): passed and
/// kept in one register.
#[derive(Clone, Copy, Debug)]
pub struct Inner {
    /// Offset of its IP header.
    pub l3: u16,
    /// Its length.
    pub ip_len: u16,
    /// Its IP version.
    pub version: IpVersion,
    /// Its TOS (IPv4) or traffic class (IPv6), copied into the outer
    /// header.
    pub tos: u8,
}

/// [`encapsulate`] on the position of the inner packet.
#[inline]
pub fn encapsulate_inner(
    u: &UnderlayParams,
    vni: u32,
    target: &Target,
    hash: u64,
    frame: &mut Frame<'_>,
    p: Inner,
) -> Result<(), Encapsulation> {
    let l3 = usize::from(p.l3);
    let inner_len = usize::from(p.ip_len);
    let overhead = encap_overhead(u.encap, target.underlay);
    if overhead + inner_len > usize::from(u.mtu) {
        return Err(Encapsulation::TooBig {
            inner_mtu: u32::from(u.mtu).saturating_sub(overhead as u32),
        });
    }
    let inner_ethertype = match p.version {
        IpVersion::V4 => EtherType::Ipv4,
        IpVersion::V6 => EtherType::Ipv6,
    };
    let outer_len = 14 + overhead;
    // Check everything before the first write: a refusal leaves the frame
    // as it was.
    match target.underlay {
        Underlay::V4(_) if u.source_ipv4.is_none() => {
            return Err(Encapsulation::Drop(DropReason::NoUnderlaySource))
        }
        Underlay::V6(_) if u.source_ipv6.is_none() => {
            return Err(Encapsulation::Drop(DropReason::NoUnderlaySource))
        }
        _ => {}
    }
    if !frame.adjust_head(l3 as isize - outer_len as isize) {
        return Err(Encapsulation::Drop(DropReason::NoHeadroom));
    }
    let data = frame.data_mut();
    let tos = p.tos;
    let (outer_ethertype, ip_hdr) = match target.underlay {
        Underlay::V4(_) => (EtherType::Ipv4, 20),
        Underlay::V6(_) => (EtherType::Ipv6, 40),
    };
    let (proto, udp_port) = match (u.encap, p.version) {
        (Encap::IpIp, IpVersion::V4) => (IpProtocol::Ipv4, 0),
        (Encap::IpIp, IpVersion::V6) => (IpProtocol::Ipv6, 0),
        (Encap::Gue { port }, _) | (Encap::Vxlan { port }, _) => (IpProtocol::Udp, port),
    };
    let bad = |_| Encapsulation::Drop(DropReason::NoHeadroom);
    EthernetRepr {
        dst: u.next_hop_mac,
        src: u.source_mac,
        ethertype: outer_ethertype,
    }
    .emit(&mut data[..14])
    .map_err(bad)?;
    let payload_len = data.len() - 14 - ip_hdr;
    let src_port = crate::wire::udp::source_port(hash);
    if let Encap::Vxlan { .. } = u.encap {
        VxlanRepr { vni }
            .emit(&mut data[14 + ip_hdr + 8..14 + ip_hdr + 16])
            .map_err(bad)?;
        EthernetRepr {
            dst: target.mac,
            src: u.source_mac,
            ethertype: inner_ethertype,
        }
        .emit(&mut data[14 + ip_hdr + 16..14 + ip_hdr + 30])
        .map_err(bad)?;
    }
    match target.underlay {
        Underlay::V4(dst) => {
            let src = u.source_ipv4.map(|a| a.octets()).unwrap_or_default();
            Ipv4Repr {
                src,
                dst,
                protocol: proto,
                payload_len,
                ttl: crate::wire::ipv4::DEFAULT_TTL,
                dont_frag: true,
                ident: 0,
                tos,
            }
            .emit(&mut data[14..34])
            .map_err(bad)?;
            if proto == IpProtocol::Udp {
                // The UDP checksum is optional over IPv4 (RFC 768, RFC 7348
                // section 5): zero, so the inner packet is never read twice.
                emit_udp_ipv4(&mut data[34..], src_port, udp_port, src, dst, false).map_err(bad)?;
            }
        }
        Underlay::V6(dst) => {
            let src = u.source_ipv6.map(|a| a.octets()).unwrap_or_default();
            Ipv6Repr {
                src,
                dst,
                next_header: proto,
                payload_len,
                hop_limit: DEFAULT_HOP_LIMIT,
                traffic_class: tos,
                flow_label: flow_label_from_hash(hash as u32),
            }
            .emit(&mut data[14..54])
            .map_err(bad)?;
            if proto == IpProtocol::Udp {
                emit_udp_ipv6(&mut data[54..], src_port, udp_port, &src, &dst).map_err(bad)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
