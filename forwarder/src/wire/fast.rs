//! The fast-path parsers: the common packet read at fixed offsets, in one
//! pass, without building a [`Parsed`](crate::wire::Parsed). [`parse_v4`]
//! (untagged IPv4, one 54-byte window) is tried first, then [`parse_fast`]
//! (no or one VLAN tag, IPv4 without options or IPv6 without extension
//! headers); everything else goes to [`parse_frame`](crate::wire::parse_frame).
//!
//! A packet either fast parser accepts is one `parse_frame` accepts with the
//! same fields, so every path reaches the same verdict; the tests below
//! compare them on random and damaged frames.

use crate::wire::ip::{IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::wire::IpVersion;

/// What the fast path knows of a packet ([`parse_fast`]): much less than
/// [`crate::wire::Parsed`], and only for the common case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastPacket {
    /// Offset of the IP header in the frame.
    pub l3: u16,
    /// Length of the IP packet (the frame may carry Ethernet padding after
    /// it); offset plus length fit in 16 bits.
    pub ip_len: u16,
    /// IP version.
    pub version: IpVersion,
    /// TOS (IPv4) or traffic class (IPv6).
    pub tos: u8,
    /// IP protocol: TCP, UDP or SCTP.
    pub proto: u8,
    /// Source address as a number (IPv4-mapped for IPv4).
    pub src: u128,
    /// Destination address as a number (IPv4-mapped for IPv4): the VIP key.
    pub dst: u128,
    /// Transport source port.
    pub sport: u16,
    /// Transport destination port.
    pub dport: u16,
}

#[inline(always)]
fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The fast path's parser: the common case only — Ethernet with no or one
/// VLAN tag, IPv4 without options and not a fragment, or IPv6 without
/// extension headers, carrying TCP, UDP or SCTP. `None` for everything
/// else, which the full parser ([`crate::wire::parse_frame`]) then handles.
///
/// A packet it accepts is one `parse_frame` accepts with the same fields
/// (the same length checks, in the same order of strictness), so both paths
/// reach the same verdict.
#[inline(always)]
pub fn parse_fast(d: &[u8]) -> Option<FastPacket> {
    let mut ty = rd16(d.get(..14)?, 12);
    let mut l3 = 14;
    if ty == 0x8100 || ty == 0x88a8 {
        ty = rd16(d.get(..18)?, 16);
        l3 = 18;
    }
    let b = d.get(l3..)?;
    let (version, tos, total, proto, src, dst, l4) = match ty {
        0x0800 => {
            let h = b.get(..20)?;
            // Version 4, no options.
            if h[0] != 0x45 {
                return None;
            }
            let total = usize::from(rd16(h, 2));
            // Neither MF nor a fragment offset.
            if rd16(h, 6) & 0x3fff != 0 || total > b.len() {
                return None;
            }
            const MAPPED: u128 = 0xffff << 32;
            let src = MAPPED | u128::from(u32::from_be_bytes([h[12], h[13], h[14], h[15]]));
            let dst = MAPPED | u128::from(u32::from_be_bytes([h[16], h[17], h[18], h[19]]));
            (
                IpVersion::V4,
                h[1],
                total,
                h[9],
                src,
                dst,
                b.get(20..total)?,
            )
        }
        0x86dd => {
            let h = b.get(..40)?;
            if h[0] >> 4 != 6 {
                return None;
            }
            let total = 40 + usize::from(rd16(h, 4));
            if total > b.len() || l3 + total > 0xffff {
                return None;
            }
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&h[8..24]);
            dst.copy_from_slice(&h[24..40]);
            let (src, dst) = (u128::from_be_bytes(src), u128::from_be_bytes(dst));
            let tclass = (h[0] << 4) | (h[1] >> 4);
            (IpVersion::V6, tclass, total, h[6], src, dst, &b[40..total])
        }
        _ => return None,
    };
    match proto {
        IPPROTO_TCP => {
            let h = l4.get(..20)?;
            let doff = usize::from(h[12] >> 4) * 4;
            if doff < 20 || doff > l4.len() {
                return None;
            }
        }
        IPPROTO_UDP => {
            let ulen = usize::from(rd16(l4.get(..8)?, 4));
            if ulen < 8 || ulen > l4.len() {
                return None;
            }
        }
        IPPROTO_SCTP => {
            l4.get(..12)?;
        }
        _ => return None,
    }
    Some(FastPacket {
        // Both fit: l3 is 14 or 18, l3 + total <= 0xffff (checked above
        // for IPv6; an IPv4 total length is a 16-bit field).
        l3: l3 as u16,
        ip_len: total as u16,
        version,
        tos,
        proto,
        src,
        dst,
        sport: rd16(l4, 0),
        dport: rd16(l4, 2),
    })
}

/// What the IPv4 express path knows of a packet ([`parse_v4`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V4Packet {
    /// Length of the IP packet (the IP header starts at byte 14).
    pub ip_len: u16,
    /// TOS.
    pub tos: u8,
    /// IP protocol: TCP, UDP or SCTP.
    pub proto: u8,
    /// Source address.
    pub src: u32,
    /// Destination address: the VIP key.
    pub dst: u32,
    /// Transport source port.
    pub sport: u16,
    /// Transport destination port.
    pub dport: u16,
}

/// The express parser for the most common packet of all: untagged Ethernet,
/// IPv4 without options and not a fragment, TCP, UDP or SCTP, in a frame of
/// at least 54 bytes. Reads the headers through one fixed-size window (one
/// bounds check). `None` for everything else, which [`parse_fast`] then
/// handles; a packet it accepts is one [`parse_fast`] accepts with the same
/// fields (a unit test compares the two).
#[inline(always)]
pub fn parse_v4(d: &[u8]) -> Option<V4Packet> {
    let h: &[u8; 54] = d.get(..54)?.try_into().ok()?;
    // IPv4, version 4 with no options, neither MF nor a fragment offset.
    if h[12] != 0x08 || h[13] != 0x00 || h[14] != 0x45 || (h[20] & 0x3f) | h[21] != 0 {
        return None;
    }
    let total_field = u16::from_be_bytes([h[16], h[17]]);
    let total = usize::from(total_field);
    if 14 + total > d.len() {
        return None;
    }
    let l4_len = total.checked_sub(20)?;
    let proto = h[23];
    let l4_ok = match proto {
        IPPROTO_TCP => {
            let doff = usize::from(h[46] >> 4) * 4;
            l4_len >= 20 && doff >= 20 && doff <= l4_len
        }
        IPPROTO_UDP => {
            let ulen = usize::from(u16::from_be_bytes([h[38], h[39]]));
            l4_len >= 8 && ulen >= 8 && ulen <= l4_len
        }
        IPPROTO_SCTP => l4_len >= 12,
        _ => false,
    };
    if !l4_ok {
        return None;
    }
    Some(V4Packet {
        ip_len: total_field,
        tos: h[15],
        proto,
        src: u32::from_be_bytes([h[26], h[27], h[28], h[29]]),
        dst: u32::from_be_bytes([h[30], h[31], h[32], h[33]]),
        sport: u16::from_be_bytes([h[34], h[35]]),
        dport: u16::from_be_bytes([h[36], h[37]]),
    })
}

#[cfg(test)]
mod tests;
