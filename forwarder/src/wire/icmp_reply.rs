//! In-place builders for the ICMP answers lbfwd sends: echo replies (for a
//! load balancer with `icmp_echo = "reply"`) and "too big" errors (IPv4
//! frag-needed, ICMPv6 packet-too-big) when an encapsulated packet would
//! exceed the underlay MTU.
//!
//! Two layers:
//! - slice builders that work on an IP packet ([`icmpv4_echo_reply`],
//!   [`icmpv6_echo_reply`]) or on "room for the new headers, then the
//!   original packet" ([`icmpv4_error`], [`icmpv6_error`] and the too-big
//!   wrappers), so the answer is written in the very buffer the request
//!   arrived in, without copying the quoted packet;
//! - frame builders ([`frame_echo_reply`], [`frame_too_big`]) that do the
//!   whole job on a [`Frame`] from its [`Parsed`] summary: they keep the
//!   VLAN tags, swap the MAC addresses (the answer goes back where the frame
//!   came from), grow the frame into its headroom and trim it.
//!
//! Errors are never built in response to an ICMP error, a non-first
//! fragment, or a packet from an unspecified, broadcast, multicast or
//! loopback source (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7, RFC 4443 §2.4(e)):
//! those return [`WireError::Unexpected`].

use super::checksum;
use super::ethernet::EthernetFrame;
use super::icmpv4::{Icmpv4Message, CODE_FRAG_NEEDED};
use super::icmpv6::Icmpv6Message;
use super::ip::{IpProtocol, IpVersion};
use super::ipv4::{Ipv4Packet, Ipv4Repr};
use super::ipv6::{Ipv6Packet, Ipv6Repr};
use super::parse::Parsed;
use super::{Result, WireError};
use crate::frame::Frame;

/// Bytes an ICMPv4 error puts in front of the quoted packet (IPv4 20 + ICMP
/// 8).
pub const ICMPV4_ERROR_PREFIX: usize = 28;
/// Largest ICMPv4 error datagram (RFC 1812 §4.3.2.3: no more than 576
/// bytes).
pub const ICMPV4_ERROR_MAX: usize = 576;
/// Bytes an ICMPv6 error puts in front of the quoted packet (IPv6 40 +
/// ICMPv6 8).
pub const ICMPV6_ERROR_PREFIX: usize = 48;
/// Largest ICMPv6 error packet (RFC 4443 §2.4(c): the minimum IPv6 MTU).
pub const ICMPV6_ERROR_MAX: usize = 1280;

/// TTL / hop limit of the answers.
const ANSWER_TTL: u8 = 64;
/// IPv4 TOS of ICMP errors: precedence 6, internetwork control (RFC 1812
/// §4.3.2.5).
const ERROR_TOS: u8 = 0xc0;

/// Turns the IPv4 ICMP echo request `ip` (exactly one IPv4 packet, no
/// padding) into an echo reply in place: addresses swapped, TTL 64, type 0,
/// both checksums updated incrementally (RFC 1624). The request must be
/// unfragmented with a correct ICMP checksum.
pub fn icmpv4_echo_reply(ip: &mut [u8]) -> Result<()> {
    let p = Ipv4Packet::new_checked(&*ip)?;
    let (ihl, total) = (p.header_len() as usize, p.total_len() as usize);
    if p.protocol() != IpProtocol::Icmp || p.is_fragment() || total != ip.len() {
        return Err(WireError::Unexpected);
    }
    let icmp = &ip[ihl..];
    if icmp.len() < 8 {
        return Err(WireError::TruncatedIcmp);
    }
    if icmp[0] != u8::from(Icmpv4Message::EchoRequest) {
        return Err(WireError::Unexpected);
    }
    if !checksum::verify(icmp) {
        return Err(WireError::BadChecksum);
    }
    let (src, dst, old_ttl, old_ck) = (p.src_addr(), p.dst_addr(), p.ttl(), p.checksum());
    let proto = u8::from(IpProtocol::Icmp) as u16;
    let mut p = Ipv4Packet::new_unchecked(&mut *ip);
    // Swapping the addresses leaves the header sum unchanged.
    p.set_src_addr(dst);
    p.set_dst_addr(src);
    p.set_ttl(ANSWER_TTL);
    p.set_checksum(checksum::update16(
        old_ck,
        (old_ttl as u16) << 8 | proto,
        (ANSWER_TTL as u16) << 8 | proto,
    ));
    // The ICMP checksum is computed afresh (answers are off the fast path):
    // an incremental update (RFC 1624) yields 0x0000 where RFC 1071 gives
    // 0xffff, e.g. for an all-zero echo, and receivers reject 0x0000 there.
    let icmp = &mut ip[ihl..];
    icmp[0] = Icmpv4Message::EchoReply.into();
    icmp[2..4].copy_from_slice(&[0, 0]);
    let ck = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    Ok(())
}

/// Turns the ICMPv6 echo request `ip` (exactly one IPv6 packet without
/// extension headers) into an echo reply in place: addresses swapped, hop
/// limit 64, type 129, checksum updated incrementally (swapping the
/// addresses leaves the pseudo-header sum unchanged). The request must have
/// a correct checksum. Requests with extension headers are refused
/// ([`WireError::Unexpected`]): reflecting a routing header would be wrong.
pub fn icmpv6_echo_reply(ip: &mut [u8]) -> Result<()> {
    let p = Ipv6Packet::new_checked(&*ip)?;
    if p.next_header() != IpProtocol::Icmpv6 || 40 + p.payload_len() as usize != ip.len() {
        return Err(WireError::Unexpected);
    }
    let (src, dst) = (p.src_addr(), p.dst_addr());
    let icmp = &ip[40..];
    if icmp.len() < 8 {
        return Err(WireError::TruncatedIcmp);
    }
    if icmp[0] != u8::from(Icmpv6Message::EchoRequest) {
        return Err(WireError::Unexpected);
    }
    let ph = checksum::pseudo_header_v6(&src, &dst, 58, icmp.len() as u32);
    if checksum::add(ph, checksum::sum(icmp)) != 0xffff {
        return Err(WireError::BadChecksum);
    }
    let mut p = Ipv6Packet::new_unchecked(&mut *ip);
    p.set_src_addr(dst);
    p.set_dst_addr(src);
    p.set_hop_limit(ANSWER_TTL);
    let icmp = &mut ip[40..];
    let code = icmp[1] as u16;
    let ck = u16::from_be_bytes([icmp[2], icmp[3]]);
    icmp[0] = Icmpv6Message::EchoReply.into();
    let ck = checksum::update16(ck, 0x8000 | code, 0x8100 | code);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    Ok(())
}

/// True when an IPv4 source may be sent an ICMP error (not 0/8, 127/8,
/// multicast, class E or broadcast).
fn v4_source_ok(a: [u8; 4]) -> bool {
    !(a[0] == 0 || a[0] == 127 || a[0] >= 224)
}

/// True when an IPv6 source may be sent an ICMPv6 error (not unspecified,
/// loopback, multicast or IPv4-mapped).
fn v6_source_ok(a: &[u8; 16]) -> bool {
    let unspec_or_loop = a[..15].iter().all(|&b| b == 0) && a[15] <= 1;
    let mapped = a[..10].iter().all(|&b| b == 0) && a[10] == 0xff && a[11] == 0xff;
    !(unspec_or_loop || mapped || a[0] == 0xff)
}

/// Builds an ICMPv4 error in place: `buf[..28]` is room for the new IPv4 and
/// ICMP headers, `buf[28..]` holds the original IPv4 packet (or as much of
/// it as the caller has: at least its header; RFC 792 wants 8 bytes more).
/// Quotes the whole datagram up to its total length, or as much
/// of the original as fits in [`ICMPV4_ERROR_MAX`] bytes, writes the headers
/// (from `src` to the original source, TTL 64, no DF, TOS 0xc0, `rest` in
/// bytes 4..8 of the ICMP header) and returns the length of the new
/// datagram at `buf[..len]`.
pub fn icmpv4_error(buf: &mut [u8], src: [u8; 4], ty: u8, code: u8, rest: u32) -> Result<usize> {
    let orig = buf
        .get(ICMPV4_ERROR_PREFIX..)
        .ok_or(WireError::BufferTooSmall)?;
    let p = Ipv4Packet::new_unchecked(orig);
    if orig.len() < 20 || p.version() != 4 {
        return Err(WireError::TruncatedIpv4);
    }
    let ihl = p.header_len() as usize;
    if ihl < 20 || orig.len() < ihl {
        return Err(WireError::BadIpv4HeaderLen);
    }
    if p.frag_offset() != 0 || !v4_source_ok(p.src_addr()) {
        return Err(WireError::Unexpected);
    }
    // Not in answer to an ICMP error; an ICMP message cut before its type
    // may be one.
    if p.protocol() == IpProtocol::Icmp {
        let ty = orig.get(ihl).filter(|_| p.total_len() as usize > ihl);
        match ty {
            Some(&t) if !Icmpv4Message::from(t).is_error() => {}
            _ => return Err(WireError::Unexpected),
        }
    }
    // The whole datagram when it is short, else as much as fits (at least
    // the header and 8 bytes: ihl + 8 <= 68 < 548). Never past its end.
    let quote = orig
        .len()
        .min((p.total_len() as usize).max(ihl))
        .min(ICMPV4_ERROR_MAX - ICMPV4_ERROR_PREFIX);
    let dst = p.src_addr();
    let len = ICMPV4_ERROR_PREFIX + quote;
    Ipv4Repr {
        src,
        dst,
        protocol: IpProtocol::Icmp,
        payload_len: 8 + quote,
        ttl: ANSWER_TTL,
        dont_frag: false,
        ident: 0,
        tos: ERROR_TOS,
    }
    .emit(buf)?;
    let icmp = &mut buf[20..len];
    icmp[0] = ty;
    icmp[1] = code;
    icmp[2] = 0;
    icmp[3] = 0;
    icmp[4..8].copy_from_slice(&rest.to_be_bytes());
    let c = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(len)
}

/// ICMPv4 "fragmentation needed and DF set" (type 3 code 4) with next-hop
/// MTU `mtu` (RFC 1191); see [`icmpv4_error`] for the buffer layout.
pub fn icmpv4_frag_needed(buf: &mut [u8], src: [u8; 4], mtu: u16) -> Result<usize> {
    icmpv4_error(
        buf,
        src,
        Icmpv4Message::DstUnreachable.into(),
        CODE_FRAG_NEEDED,
        mtu as u32,
    )
}

/// Builds an ICMPv6 error in place: `buf[..48]` is room for the new IPv6
/// and ICMPv6 headers, `buf[48..]` holds the original IPv6 packet (at least
/// its fixed header). Quotes as much of it as fits in [`ICMPV6_ERROR_MAX`]
/// bytes, writes the headers (from `src` to the original source, hop limit
/// 64, `rest` in bytes 4..8, checksum over the pseudo-header) and returns
/// the length of the new packet at `buf[..len]`.
pub fn icmpv6_error(buf: &mut [u8], src: &[u8; 16], ty: u8, code: u8, rest: u32) -> Result<usize> {
    let orig = buf
        .get(ICMPV6_ERROR_PREFIX..)
        .ok_or(WireError::BufferTooSmall)?;
    let p = Ipv6Packet::new_unchecked(orig);
    if orig.len() < 40 || p.version() != 6 {
        return Err(WireError::TruncatedIpv6);
    }
    let dst = p.src_addr();
    if !v6_source_ok(&dst) {
        return Err(WireError::Unexpected);
    }
    // Not in answer to an ICMPv6 error (or a message cut before its type),
    // nor to a non-first fragment, nor to a broken extension header chain.
    let avail = orig.len().min(40 + p.payload_len() as usize);
    let u = super::ipv6::walk_ext_headers(p.next_header(), &orig[40..avail])
        .map_err(|_| WireError::Unexpected)?;
    if matches!(u.frag, Some(f) if f.offset != 0) {
        return Err(WireError::Unexpected);
    }
    if u.protocol == IpProtocol::Icmpv6 {
        match orig[..avail].get(40 + u.offset) {
            Some(&t) if t >= 128 => {}
            _ => return Err(WireError::Unexpected),
        }
    }
    let quote = avail.min(ICMPV6_ERROR_MAX - ICMPV6_ERROR_PREFIX);
    let len = ICMPV6_ERROR_PREFIX + quote;
    let icmp_len = 8 + quote;
    Ipv6Repr {
        src: *src,
        dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp_len,
        hop_limit: ANSWER_TTL,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(buf)?;
    let icmp = &mut buf[40..len];
    icmp[0] = ty;
    icmp[1] = code;
    icmp[2] = 0;
    icmp[3] = 0;
    icmp[4..8].copy_from_slice(&rest.to_be_bytes());
    let ph = checksum::pseudo_header_v6(src, &dst, 58, icmp_len as u32);
    let c = checksum::checksum_with(ph, icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(len)
}

/// ICMPv6 "packet too big" (type 2 code 0) with `mtu`; see
/// [`icmpv6_error`] for the buffer layout.
pub fn icmpv6_packet_too_big(buf: &mut [u8], src: &[u8; 16], mtu: u32) -> Result<usize> {
    icmpv6_error(buf, src, Icmpv6Message::PktTooBig.into(), 0, mtu)
}

/// Swaps the MAC addresses of the frame's Ethernet header (the first 14
/// bytes of `l2`).
fn reflect_l2(l2: &mut [u8]) -> Result<()> {
    EthernetFrame::new_checked(l2)?.swap_addrs();
    Ok(())
}

/// Answers the ICMP/ICMPv6 echo request in `frame` (summarised by `p`) in
/// place: MACs swapped, VLAN tags kept, Ethernet padding trimmed, the IP
/// packet turned into an echo reply ([`icmpv4_echo_reply`],
/// [`icmpv6_echo_reply`]).
pub fn frame_echo_reply(frame: &mut Frame<'_>, p: &Parsed) -> Result<()> {
    let (l3, end) = (p.l3_offset as usize, p.ip_end());
    if end > frame.len() {
        return Err(WireError::IpLengthBeyondFrame);
    }
    {
        let data = frame.data_mut();
        let (l2, rest) = data.split_at_mut(l3);
        let ip = &mut rest[..end - l3];
        match p.version {
            IpVersion::V4 => icmpv4_echo_reply(ip)?,
            IpVersion::V6 => icmpv6_echo_reply(ip)?,
        }
        reflect_l2(l2)?;
    }
    frame.set_len(end);
    Ok(())
}

/// Replaces the packet in `frame` (summarised by `p`) with the "too big"
/// answer to its sender, in place: ICMPv4 frag-needed with next-hop MTU
/// `mtu` for IPv4, ICMPv6 packet-too-big for IPv6, from `src` (an IPv4
/// address in IPv4-mapped form for IPv4, like [`Parsed`]'s addresses),
/// quoting as much of the packet as the RFCs allow. The L2 header (VLAN tags
/// included) is kept with its MACs swapped; the frame grows into its
/// headroom by [`ICMPV4_ERROR_PREFIX`] or [`ICMPV6_ERROR_PREFIX`] bytes and
/// is trimmed to the answer.
pub fn frame_too_big(frame: &mut Frame<'_>, p: &Parsed, src: &[u8; 16], mtu: u32) -> Result<()> {
    let (l2, end) = (p.l3_offset as usize, p.ip_end());
    if end > frame.len() {
        return Err(WireError::IpLengthBeyondFrame);
    }
    let prefix = match p.version {
        IpVersion::V4 => ICMPV4_ERROR_PREFIX,
        IpVersion::V6 => ICMPV6_ERROR_PREFIX,
    };
    if frame.headroom() < prefix {
        return Err(WireError::BufferTooSmall);
    }
    let (buf, head, _) = frame.raw_mut();
    let new_head = head - prefix;
    // The L2 header moves `prefix` bytes forward first (into the headroom;
    // `l2 <= 22 < prefix`, so source and destination do not overlap): the
    // new IP and ICMP headers are then written over the old copy. The
    // builders validate before writing, so a refusal leaves the frame as it
    // was.
    buf.copy_within(head..head + l2, new_head);
    let region = &mut buf[new_head + l2..head + end];
    let ip_len = match p.version {
        IpVersion::V4 => icmpv4_frag_needed(
            region,
            [src[12], src[13], src[14], src[15]],
            mtu.min(0xffff) as u16,
        )?,
        IpVersion::V6 => icmpv6_packet_too_big(region, src, mtu)?,
    };
    reflect_l2(&mut buf[new_head..new_head + l2])?;
    let grown = frame.adjust_head(-(prefix as isize));
    let trimmed = frame.set_len(l2 + ip_len);
    debug_assert!(grown && trimmed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::HEADROOM;
    use crate::wire::fixtures as fx;
    use crate::wire::parse::{parse_frame, v4_mapped, ParsedFrame};

    /// Puts `bytes` in a buffer behind the standard headroom.
    fn framed(bytes: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; HEADROOM + bytes.len() + 64];
        buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
        buf
    }

    fn parsed(bytes: &[u8]) -> Parsed {
        match parse_frame(bytes).unwrap() {
            ParsedFrame::Ip(p) => p,
            ParsedFrame::NotIp(n) => panic!("{n:?}"),
        }
    }

    #[test]
    fn echo_replies_match_scapy() {
        for (req, want) in [
            (&fx::ECHO4[..], &fx::ECHO4_REPLY[..]),
            (&fx::ECHO6[..], &fx::ECHO6_REPLY[..]),
        ] {
            let p = parsed(req);
            let mut buf = framed(req);
            let mut f = Frame::new(&mut buf, HEADROOM, req.len());
            frame_echo_reply(&mut f, &p).unwrap();
            assert_eq!(f.data(), want);
        }
    }

    /// An all-zero echo: the reply's ICMP data sums to 0, so its checksum
    /// must be 0xffff (RFC 1071), which an incremental update would give as
    /// 0x0000.
    #[test]
    fn all_zero_echo_reply_checksum_verifies() {
        let mut ip = [0u8; 28];
        Ipv4Repr {
            src: [198, 51, 100, 20],
            dst: [203, 0, 113, 10],
            protocol: IpProtocol::Icmp,
            payload_len: 8,
            ttl: 60,
            dont_frag: false,
            ident: 0,
            tos: 0,
        }
        .emit(&mut ip)
        .unwrap();
        ip[20..28].copy_from_slice(&[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
        icmpv4_echo_reply(&mut ip).unwrap();
        assert_eq!(ip[20..28], [0, 0, 0xff, 0xff, 0, 0, 0, 0]);
        assert!(checksum::verify(&ip[20..]));
        assert!(Ipv4Packet::new_checked(&ip[..]).unwrap().verify_checksum());
    }

    #[test]
    fn echo_reply_refusals() {
        // Bad ICMP checksum.
        let mut ip = fx::ECHO4[14..].to_vec();
        ip[30] ^= 1;
        assert_eq!(icmpv4_echo_reply(&mut ip), Err(WireError::BadChecksum));
        // Not an echo request.
        let mut ip = fx::ECHO4_REPLY[14..].to_vec();
        assert_eq!(icmpv4_echo_reply(&mut ip), Err(WireError::Unexpected));
        let mut ip = fx::ECHO6_REPLY[18..].to_vec();
        assert_eq!(icmpv6_echo_reply(&mut ip), Err(WireError::Unexpected));
        let mut ip = fx::TCP6[14..].to_vec();
        assert_eq!(icmpv6_echo_reply(&mut ip), Err(WireError::Unexpected));
        let mut ip = fx::ECHO6[18..].to_vec();
        ip[50] ^= 1;
        assert_eq!(icmpv6_echo_reply(&mut ip), Err(WireError::BadChecksum));
        // Every truncation is refused without panicking.
        for len in 0..fx::ECHO4.len() - 14 {
            let mut ip = fx::ECHO4[14..14 + len].to_vec();
            assert!(icmpv4_echo_reply(&mut ip).is_err());
        }
        for len in 0..fx::ECHO6.len() - 18 {
            let mut ip = fx::ECHO6[18..18 + len].to_vec();
            assert!(icmpv6_echo_reply(&mut ip).is_err());
        }
    }

    #[test]
    fn frag_needed_matches_scapy() {
        let p = parsed(&fx::BIG4);
        let mut buf = framed(&fx::BIG4);
        let mut f = Frame::new(&mut buf, HEADROOM, fx::BIG4.len());
        frame_too_big(&mut f, &p, &p.dst, 1380).unwrap();
        assert_eq!(f.head(), HEADROOM - ICMPV4_ERROR_PREFIX);
        assert_eq!(f.data(), &fx::BIG4_FRAG_NEEDED[..]);
        // And it parses as a frag-needed about the client's packet.
        let a = parsed(f.data());
        let crate::wire::L4Info::Icmp(i) = a.l4 else {
            panic!()
        };
        assert_eq!(i.kind, crate::wire::IcmpKind::FragNeeded { mtu: 1380 });
        assert_eq!(i.embedded.unwrap().src, p.src);
    }

    #[test]
    fn packet_too_big_matches_scapy() {
        let p = parsed(&fx::BIG6);
        let mut buf = framed(&fx::BIG6);
        let mut f = Frame::new(&mut buf, HEADROOM, fx::BIG6.len());
        frame_too_big(&mut f, &p, &p.dst, 1380).unwrap();
        assert_eq!(f.data(), &fx::BIG6_PTB[..]);
    }

    #[test]
    fn small_packets_are_quoted_whole() {
        let p = parsed(&fx::TCP4_64);
        let mut buf = framed(&fx::TCP4_64);
        let mut f = Frame::new(&mut buf, HEADROOM, fx::TCP4_64.len());
        frame_too_big(&mut f, &p, &p.dst, 576).unwrap();
        // Padding dropped: 14 + 28 + the 40-byte packet.
        assert_eq!(f.len(), 14 + 28 + 40);
        assert_eq!(&f.data()[42..], &fx::TCP4_64[14..54]);
        let ip = Ipv4Packet::new_checked(&f.data()[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert!(checksum::verify(&f.data()[34..]));
    }

    #[test]
    fn errors_are_not_sent_about_errors_or_odd_sources() {
        // An ICMP error.
        let p = parsed(&fx::FRAG_NEEDED4);
        let mut buf = framed(&fx::FRAG_NEEDED4);
        let mut f = Frame::new(&mut buf, HEADROOM, fx::FRAG_NEEDED4.len());
        assert_eq!(
            frame_too_big(&mut f, &p, &p.dst, 1000),
            Err(WireError::Unexpected)
        );
        assert_eq!(f.data(), &fx::FRAG_NEEDED4[..]);
        let p = parsed(&fx::PTB6);
        let mut buf = framed(&fx::PTB6);
        let mut f = Frame::new(&mut buf, HEADROOM, fx::PTB6.len());
        assert_eq!(
            frame_too_big(&mut f, &p, &p.dst, 1000),
            Err(WireError::Unexpected)
        );
        // A non-first fragment.
        let p = parsed(&fx::FRAG4_LAST);
        let mut buf = framed(&fx::FRAG4_LAST);
        let mut f = Frame::new(&mut buf, HEADROOM, fx::FRAG4_LAST.len());
        assert_eq!(
            frame_too_big(&mut f, &p, &p.dst, 1000),
            Err(WireError::Unexpected)
        );
        let p = parsed(&fx::FRAG6_LATER);
        let mut buf = framed(&fx::FRAG6_LATER);
        let mut f = Frame::new(&mut buf, HEADROOM, fx::FRAG6_LATER.len());
        assert_eq!(
            frame_too_big(&mut f, &p, &p.dst, 1000),
            Err(WireError::Unexpected)
        );
        // A broadcast source.
        let mut b = fx::TCP4_64;
        b[26..30].copy_from_slice(&[255, 255, 255, 255]);
        let p = parsed(&b);
        let mut buf = framed(&b);
        let mut f = Frame::new(&mut buf, HEADROOM, b.len());
        assert_eq!(
            frame_too_big(&mut f, &p, &p.dst, 1000),
            Err(WireError::Unexpected)
        );
        // No headroom.
        let p = parsed(&fx::TCP4_64);
        let mut buf = fx::TCP4_64.to_vec();
        let mut f = Frame::new(&mut buf, 0, fx::TCP4_64.len());
        assert_eq!(
            frame_too_big(&mut f, &p, &p.dst, 1000),
            Err(WireError::BufferTooSmall)
        );
        assert!(!v6_source_ok(&v4_mapped([192, 0, 2, 1])));
        assert!(!v6_source_ok(&[0; 16]));
    }

    /// Fuzzer find: an ICMP packet whose quote ends right after the IP
    /// header (the type byte is missing) made the builder index past it.
    #[test]
    fn icmp_cut_before_its_type_is_not_answered() {
        let input: [u8; 40] = [
            0x4a, 0x00, 0x00, 0x36, 0x00, 0x01, 0x00, 0x00, 0x40, 0x01, 0x7b, 0x06, 0x08, 0x00,
            0x45, 0x00, 0x00, 0x19, 0x4f, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x01, 0x40, 0x00,
            0x3d, 0x06, 0xd7, 0x00, 0x00, 0xd9, 0x17, 0x00, 0x00, 0x00, 0x10, 0x00,
        ];
        let mut raw = vec![0u8; ICMPV4_ERROR_PREFIX];
        raw.extend_from_slice(&input);
        assert_eq!(
            icmpv4_frag_needed(&mut raw, [192, 0, 2, 1], 1280),
            Err(WireError::Unexpected)
        );
        // The same with an echo request type byte is answered.
        let mut ok = fx::ECHO4[14..14 + 21].to_vec();
        ok[2..4].copy_from_slice(&21u16.to_be_bytes());
        let mut raw = vec![0u8; ICMPV4_ERROR_PREFIX];
        raw.extend_from_slice(&ok);
        assert_eq!(
            icmpv4_frag_needed(&mut raw, [192, 0, 2, 1], 1280),
            Ok(28 + 21)
        );
    }

    #[test]
    fn slice_builders_refuse_short_input() {
        let ip = &fx::TCP4_64[14..54];
        for len in 0..ICMPV4_ERROR_PREFIX + ip.len() {
            let mut buf = vec![0u8; ICMPV4_ERROR_PREFIX];
            buf.extend_from_slice(ip);
            buf.truncate(len);
            let r = icmpv4_frag_needed(&mut buf, [192, 0, 2, 1], 1000);
            assert_eq!(r.is_ok(), len >= ICMPV4_ERROR_PREFIX + 20, "len {len}");
            if let Ok(n) = r {
                assert_eq!(n, len);
            }
        }
        let ip = &fx::TCP6[14..];
        for len in 0..ICMPV6_ERROR_PREFIX + ip.len() {
            let mut buf = vec![0u8; ICMPV6_ERROR_PREFIX];
            buf.extend_from_slice(ip);
            buf.truncate(len);
            let r = icmpv6_packet_too_big(
                &mut buf,
                &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                1280,
            );
            assert_eq!(r.is_ok(), len >= ICMPV6_ERROR_PREFIX + 40, "len {len}");
        }
    }
}
