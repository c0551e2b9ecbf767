//! The fast-path parser: one pass over a received frame into a small `Copy`
//! summary.
//!
//! [`parse_frame`] walks Ethernet (up to two VLAN tags), IPv4 or IPv6 (with
//! extension headers), and the first bytes of TCP/UDP/SCTP/ICMP/ICMPv6,
//! including the original header embedded in ICMP errors. It reads each byte
//! at most once, checks every bound before reading, never allocates and
//! never panics; a malformed frame yields the [`WireError`] that says what is
//! wrong with it.
//!
//! Addresses are `[u8; 16]` for both families, IPv4 ones in IPv4-mapped form
//! (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2): one fixed-size key for hashing and
//! flow tables with no branch on the family, two 8-byte moves to copy, and
//! `Ipv6Addr::from(a).to_canonical()` gives the `IpAddr` back. `Parsed::dst_v4`
//! and friends return the 4 bytes of an IPv4 address directly.

use core::net::{IpAddr, Ipv6Addr};

use super::ethernet::{EtherType, VlanIds, HEADER_LEN as ETH_LEN, MAX_VLAN_TAGS, VLAN_TAG_LEN};
use super::ip::{IpProtocol, IpVersion};
use super::{Result, WireError};

/// Most IPv6 extension headers [`parse_frame`] walks before giving up with
/// [`WireError::BadExtHeaderChain`].
pub const MAX_EXT_HEADERS: usize = 8;

/// The result of [`parse_frame`]: an IP packet, or something for the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParsedFrame {
    /// An IPv4 or IPv6 packet.
    Ip(Parsed),
    /// Anything else (ARP, LLDP, ...): the host path's business.
    NotIp(NotIp),
}

/// A frame that does not carry IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotIp {
    /// EtherType after the VLAN tags.
    pub ethertype: EtherType,
    /// Offset of the payload after the VLAN tags.
    pub l3_offset: u16,
    /// VLAN tags of the frame.
    pub vlans: VlanIds,
}

/// Source and destination ports (TCP, UDP, SCTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ports {
    /// Source port.
    pub src: u16,
    /// Destination port.
    pub dst: u16,
}

/// Fragment fields of a packet that is a fragment (more fragments follow,
/// or a non-zero offset). IPv6 atomic fragments (offset 0, M=0) are not
/// fragments (RFC 6946) and have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Identification: IPv4's 16-bit id zero-extended, IPv6's 32-bit id.
    pub id: u32,
    /// Offset of this fragment's data in the datagram, in bytes.
    pub offset: u16,
    /// More fragments follow (MF / M).
    pub more: bool,
}

impl Fragment {
    /// True for the first fragment (offset 0): the one with the transport
    /// header.
    #[inline]
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// What [`parse_frame`] found of the transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Info {
    /// No transport header in this packet: a non-first fragment, or a first
    /// fragment too short to hold the whole transport header (which must be
    /// dropped, RFC 1858 / RFC 7112).
    Absent,
    /// TCP, UDP or SCTP ports.
    Ports(Ports),
    /// ICMP (over IPv4) or ICMPv6 (over IPv6).
    Icmp(IcmpInfo),
    /// Another upper-layer protocol (not inspected), or ICMP over the wrong IP
    /// version.
    Other,
}

/// The ICMP / ICMPv6 messages the pipeline distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpKind {
    /// Echo request (ICMP 8 / ICMPv6 128).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
    },
    /// Echo reply (ICMP 0 / ICMPv6 129).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
    },
    /// Destination unreachable (ICMP 3 except code 4 / ICMPv6 1).
    DestUnreachable,
    /// ICMP 3/4 "fragmentation needed and DF set", with the next-hop MTU
    /// (RFC 1191; 0 from old routers).
    FragNeeded {
        /// Next-hop MTU.
        mtu: u16,
    },
    /// ICMPv6 2 "packet too big", with the MTU.
    PacketTooBig {
        /// MTU of the next-hop link.
        mtu: u32,
    },
    /// Time exceeded (ICMP 11 / ICMPv6 3).
    TimeExceeded,
    /// Parameter problem (ICMP 12 / ICMPv6 4).
    ParameterProblem,
    /// Any other type.
    Other,
}

impl IcmpKind {
    /// True for error messages, which embed the original packet's header.
    #[inline]
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            IcmpKind::DestUnreachable
                | IcmpKind::FragNeeded { .. }
                | IcmpKind::PacketTooBig { .. }
                | IcmpKind::TimeExceeded
                | IcmpKind::ParameterProblem
        )
    }
}

/// ICMP / ICMPv6 header summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpInfo {
    /// Type.
    pub ty: u8,
    /// Code.
    pub code: u8,
    /// What the message is.
    pub kind: IcmpKind,
    /// For error messages ([`IcmpKind::is_error`]): the embedded original
    /// header.
    pub embedded: Option<Embedded>,
}

/// The original packet's header embedded in an ICMP error, as it reads
/// (fields in the direction of that original packet).
///
/// An ICMP error about a packet of a DSR flow quotes the reply a target sent
/// from the VIP to the client: `src` = VIP, `dst` = client. Use
/// [`Embedded::reversed`] to get the tuple in the direction lbfwd sees the
/// flow (client to VIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedded {
    /// Source address of the original packet (IPv4-mapped for IPv4).
    pub src: [u8; 16],
    /// Destination address of the original packet.
    pub dst: [u8; 16],
    /// Upper-layer protocol of the original packet (after IPv6 extension
    /// headers, as far as they were quoted).
    pub protocol: IpProtocol,
    /// Its ports, when the quote holds them (TCP/UDP/SCTP, not a non-first
    /// fragment, at least 4 bytes of transport header).
    pub ports: Option<Ports>,
}

impl Embedded {
    /// The same tuple with source and destination swapped: the direction of
    /// the flow the original packet answered.
    #[inline]
    pub fn reversed(&self) -> Embedded {
        Embedded {
            src: self.dst,
            dst: self.src,
            protocol: self.protocol,
            ports: self.ports.map(|p| Ports {
                src: p.dst,
                dst: p.src,
            }),
        }
    }
}

/// Summary of an IP packet in a frame; every offset is from the start of the
/// frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// VLAN tags of the frame.
    pub vlans: VlanIds,
    /// Offset of the IP header (after the VLAN tags).
    pub l3_offset: u16,
    /// IP version.
    pub version: IpVersion,
    /// Source address (IPv4-mapped for IPv4, see the module docs).
    pub src: [u8; 16],
    /// Destination address (IPv4-mapped for IPv4).
    pub dst: [u8; 16],
    /// Length of the IP packet: IPv4 total length, or 40 + IPv6 payload
    /// length. The frame may be longer (Ethernet padding): the packet ends at
    /// `l3_offset + ip_len`.
    pub ip_len: u16,
    /// TTL / hop limit.
    pub ttl: u8,
    /// May not be fragmented on the way: IPv4 DF flag; always true for IPv6,
    /// which routers never fragment.
    pub df: bool,
    /// Upper-layer protocol (after IPv6 extension headers; for a non-first
    /// IPv6 fragment, the fragment header's next header).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header (or of the fragment data for a
    /// non-first fragment).
    pub l4_offset: u16,
    /// Fragment fields, when the packet is a fragment.
    pub frag: Option<Fragment>,
    /// The transport header summary.
    pub l4: L4Info,
}

impl Parsed {
    /// Source address as an `IpAddr`.
    #[inline]
    pub fn src_ip(&self) -> IpAddr {
        to_ip(self.version, self.src)
    }

    /// Destination address as an `IpAddr`.
    #[inline]
    pub fn dst_ip(&self) -> IpAddr {
        to_ip(self.version, self.dst)
    }

    /// IPv4 source address bytes (meaningful for IPv4 packets).
    #[inline]
    pub fn src_v4(&self) -> [u8; 4] {
        [self.src[12], self.src[13], self.src[14], self.src[15]]
    }

    /// IPv4 destination address bytes (meaningful for IPv4 packets).
    #[inline]
    pub fn dst_v4(&self) -> [u8; 4] {
        [self.dst[12], self.dst[13], self.dst[14], self.dst[15]]
    }

    /// The ports, for TCP/UDP/SCTP packets that carry their header.
    #[inline]
    pub fn ports(&self) -> Option<Ports> {
        match self.l4 {
            L4Info::Ports(p) => Some(p),
            _ => None,
        }
    }

    /// True when this packet holds its transport header: not a non-first
    /// fragment, and not a first fragment cut before the end of it.
    #[inline]
    pub fn l4_present(&self) -> bool {
        !matches!(self.l4, L4Info::Absent)
    }

    /// Offset of the end of the IP packet in the frame.
    #[inline]
    pub fn ip_end(&self) -> usize {
        self.l3_offset as usize + self.ip_len as usize
    }
}

/// Converts a parsed address back to an `IpAddr`.
#[inline]
pub fn to_ip(version: IpVersion, a: [u8; 16]) -> IpAddr {
    match version {
        IpVersion::V4 => IpAddr::V4([a[12], a[13], a[14], a[15]].into()),
        IpVersion::V6 => IpAddr::V6(Ipv6Addr::from(a)),
    }
}

/// Maps IPv4 address bytes into the `[u8; 16]` form `Parsed` uses.
#[inline(always)]
pub fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

#[inline(always)]
fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn addr16(b: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    a
}

/// Parses a received frame (Ethernet II, optional VLAN tags, IP, transport).
///
/// Returns [`ParsedFrame::NotIp`] for EtherTypes other than IPv4/IPv6, a
/// [`Parsed`] summary for well-formed IP packets, and the reason otherwise.
/// The IPv4 header checksum is not verified here (the targets verify it; see
/// [`super::ipv4::Ipv4Packet::verify_checksum`] when it matters).
#[inline]
pub fn parse_frame(frame: &[u8]) -> Result<ParsedFrame> {
    if frame.len() < ETH_LEN {
        return Err(WireError::TruncatedEthernet);
    }
    let mut ty = rd16(frame, 12);
    let mut off = ETH_LEN;
    let mut vlans = VlanIds::default();
    while ty == 0x8100 || ty == 0x88a8 {
        if vlans.count as usize == MAX_VLAN_TAGS {
            return Err(WireError::TooManyVlanTags);
        }
        let tag = frame
            .get(off..off + VLAN_TAG_LEN)
            .ok_or(WireError::TruncatedVlan)?;
        vlans.ids[vlans.count as usize & 1] = rd16(tag, 0) & 0x0fff;
        vlans.count += 1;
        ty = rd16(tag, 2);
        off += VLAN_TAG_LEN;
    }
    let l3 = &frame[off..];
    let p = match ty {
        0x0800 => parse_ipv4(l3, off, vlans)?,
        0x86dd => parse_ipv6(l3, off, vlans)?,
        _ => {
            return Ok(ParsedFrame::NotIp(NotIp {
                ethertype: ty.into(),
                l3_offset: off as u16,
                vlans,
            }))
        }
    };
    Ok(ParsedFrame::Ip(p))
}

#[inline(always)]
fn parse_ipv4(b: &[u8], l3_off: usize, vlans: VlanIds) -> Result<Parsed> {
    if b.len() < 20 {
        return Err(WireError::TruncatedIpv4);
    }
    let h = &b[..20];
    if h[0] >> 4 != 4 {
        return Err(WireError::BadIpVersion);
    }
    let ihl = (h[0] & 0x0f) as usize * 4;
    if ihl < 20 {
        return Err(WireError::BadIpv4HeaderLen);
    }
    let total = rd16(h, 2) as usize;
    if total < ihl {
        return Err(WireError::BadIpv4TotalLen);
    }
    if total > b.len() {
        return Err(WireError::IpLengthBeyondFrame);
    }
    let flags = rd16(h, 6);
    let df = flags & 0x4000 != 0;
    let more = flags & 0x2000 != 0;
    let frag_off = ((flags & 0x1fff) as usize) << 3;
    let data_len = total - ihl;
    let frag = if more || frag_off != 0 {
        if ihl + frag_off + data_len > 0xffff || (more && (data_len == 0 || data_len & 7 != 0)) {
            return Err(WireError::BadFragment);
        }
        Some(Fragment {
            id: rd16(h, 4) as u32,
            offset: frag_off as u16,
            more,
        })
    } else {
        None
    };
    let protocol = IpProtocol::from(h[9]);
    let src = v4_mapped([h[12], h[13], h[14], h[15]]);
    let dst = v4_mapped([h[16], h[17], h[18], h[19]]);
    let ttl = h[8];
    let l4_bytes = &b[ihl..total];
    let l4 = parse_l4(IpVersion::V4, protocol, l4_bytes, frag)?;
    Ok(Parsed {
        vlans,
        l3_offset: l3_off as u16,
        version: IpVersion::V4,
        src,
        dst,
        ip_len: total as u16,
        ttl,
        df,
        protocol,
        l4_offset: (l3_off + ihl) as u16,
        frag,
        l4,
    })
}

/// Result of walking an IPv6 extension header chain.
struct ExtWalk {
    /// Upper-layer protocol (or the fragment header's next header for a
    /// non-first fragment, or the last header reached in a truncated quote).
    protocol: IpProtocol,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    l4_offset: usize,
    /// Fragment fields (None for unfragmented and atomic fragments).
    frag: Option<Fragment>,
    /// False when a quote ended inside the chain (lenient mode only).
    complete: bool,
}

/// Walks the extension headers of the IPv6 packet `pkt` (header included,
/// ending where the packet ends). In `lenient` mode (a quote in an ICMPv6
/// error) running out of bytes ends the walk instead of failing it.
#[inline(always)]
fn walk_ipv6(pkt: &[u8], lenient: bool) -> Result<ExtWalk> {
    let mut nh = pkt[6];
    let mut off = 40usize;
    let mut frag: Option<Fragment> = None;
    let mut seen_frag = false;
    let mut count = 0usize;
    loop {
        let len = match nh {
            0 | 43 | 60 | 51 | 135 | 139 | 140 | 44 => {
                if (nh == 0 && count != 0) || count == MAX_EXT_HEADERS {
                    return Err(WireError::BadExtHeaderChain);
                }
                count += 1;
                let Some(h) = pkt.get(off..off + 8) else {
                    if lenient {
                        return Ok(ExtWalk {
                            protocol: nh.into(),
                            l4_offset: off,
                            frag,
                            complete: false,
                        });
                    }
                    return Err(WireError::TruncatedExtHeader);
                };
                if nh == 44 {
                    if seen_frag {
                        return Err(WireError::BadExtHeaderChain);
                    }
                    seen_frag = true;
                    let fo = rd16(h, 2);
                    let offset = (fo & 0xfff8) as usize;
                    let more = fo & 1 != 0;
                    let id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                    let end = off + 8;
                    if offset != 0 || more {
                        if !lenient {
                            let data_len = pkt.len() - end;
                            if (off - 40) + offset + data_len > 0xffff
                                || (more && (data_len == 0 || data_len & 7 != 0))
                            {
                                return Err(WireError::BadFragment);
                            }
                        }
                        frag = Some(Fragment {
                            id,
                            offset: offset as u16,
                            more,
                        });
                        if offset != 0 {
                            // The rest is fragment data, not headers.
                            return Ok(ExtWalk {
                                protocol: h[0].into(),
                                l4_offset: end,
                                frag,
                                complete: true,
                            });
                        }
                    }
                    nh = h[0];
                    off = end;
                    continue;
                }
                let len = if nh == 51 {
                    (h[1] as usize + 2) * 4
                } else {
                    (h[1] as usize + 1) * 8
                };
                let next = h[0];
                if off + len > pkt.len() {
                    if lenient {
                        return Ok(ExtWalk {
                            protocol: nh.into(),
                            l4_offset: off,
                            frag,
                            complete: false,
                        });
                    }
                    return Err(WireError::TruncatedExtHeader);
                }
                nh = next;
                len
            }
            _ => {
                return Ok(ExtWalk {
                    protocol: nh.into(),
                    l4_offset: off,
                    frag,
                    complete: true,
                })
            }
        };
        off += len;
    }
}

#[inline(always)]
fn parse_ipv6(b: &[u8], l3_off: usize, vlans: VlanIds) -> Result<Parsed> {
    if b.len() < 40 {
        return Err(WireError::TruncatedIpv6);
    }
    if b[0] >> 4 != 6 {
        return Err(WireError::BadIpVersion);
    }
    let total = 40 + rd16(b, 4) as usize;
    if total > b.len() {
        return Err(WireError::IpLengthBeyondFrame);
    }
    // Offsets in `Parsed` are u16: refuse the (theoretical) packets whose
    // end would not fit (an IPv6 payload of more than 65535 - 40 - L2 bytes).
    if l3_off + total > 0xffff {
        return Err(WireError::LengthOverflow);
    }
    let pkt = &b[..total];
    let w = walk_ipv6(pkt, false)?;
    let l4 = parse_l4(IpVersion::V6, w.protocol, &pkt[w.l4_offset..], w.frag)?;
    Ok(Parsed {
        vlans,
        l3_offset: l3_off as u16,
        version: IpVersion::V6,
        src: addr16(&pkt[8..24]),
        dst: addr16(&pkt[24..40]),
        ip_len: total as u16,
        ttl: pkt[7],
        df: true,
        protocol: w.protocol,
        l4_offset: (l3_off + w.l4_offset) as u16,
        frag: w.frag,
        l4,
    })
}

/// Summarises the transport header in `b` (which ends where the IP packet
/// ends).
#[inline(always)]
fn parse_l4(
    version: IpVersion,
    protocol: IpProtocol,
    b: &[u8],
    frag: Option<Fragment>,
) -> Result<L4Info> {
    let first_frag = match frag {
        Some(f) if f.offset != 0 => return Ok(L4Info::Absent),
        Some(_) => true,
        None => false,
    };
    // A first fragment cut inside the transport header is reported as
    // Absent (the pipeline drops it: it could hide the ports); an
    // unfragmented packet cut there is malformed.
    let short = |e: WireError| {
        if first_frag {
            Ok(L4Info::Absent)
        } else {
            Err(e)
        }
    };
    match protocol {
        IpProtocol::Tcp => {
            if b.len() < 20 {
                return short(WireError::TruncatedTcp);
            }
            let doff = (b[12] >> 4) as usize * 4;
            if doff < 20 {
                return Err(WireError::TruncatedTcp);
            }
            if doff > b.len() {
                return short(WireError::TruncatedTcp);
            }
            Ok(L4Info::Ports(Ports {
                src: rd16(b, 0),
                dst: rd16(b, 2),
            }))
        }
        IpProtocol::Udp => {
            if b.len() < 8 {
                return short(WireError::TruncatedUdp);
            }
            let ulen = rd16(b, 4) as usize;
            // In a fragment the length covers the whole datagram.
            if ulen < 8 || (!first_frag && ulen > b.len()) {
                return Err(WireError::TruncatedUdp);
            }
            Ok(L4Info::Ports(Ports {
                src: rd16(b, 0),
                dst: rd16(b, 2),
            }))
        }
        IpProtocol::Sctp => {
            if b.len() < 12 {
                return short(WireError::TruncatedSctp);
            }
            Ok(L4Info::Ports(Ports {
                src: rd16(b, 0),
                dst: rd16(b, 2),
            }))
        }
        IpProtocol::Icmp if version == IpVersion::V4 => parse_icmp(version, b, first_frag),
        IpProtocol::Icmpv6 if version == IpVersion::V6 => parse_icmp(version, b, first_frag),
        _ => Ok(L4Info::Other),
    }
}

#[inline(always)]
fn parse_icmp(version: IpVersion, b: &[u8], first_frag: bool) -> Result<L4Info> {
    if b.len() < 8 {
        return if first_frag {
            Ok(L4Info::Absent)
        } else {
            Err(WireError::TruncatedIcmp)
        };
    }
    let (ty, code) = (b[0], b[1]);
    let echo = (rd16(b, 4), rd16(b, 6));
    let kind = match (version, ty) {
        (IpVersion::V4, 8) | (IpVersion::V6, 128) => IcmpKind::EchoRequest {
            ident: echo.0,
            seq: echo.1,
        },
        (IpVersion::V4, 0) | (IpVersion::V6, 129) => IcmpKind::EchoReply {
            ident: echo.0,
            seq: echo.1,
        },
        (IpVersion::V4, 3) if code == 4 => IcmpKind::FragNeeded { mtu: echo.1 },
        (IpVersion::V4, 3) | (IpVersion::V6, 1) => IcmpKind::DestUnreachable,
        (IpVersion::V6, 2) => IcmpKind::PacketTooBig {
            mtu: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        },
        (IpVersion::V4, 11) | (IpVersion::V6, 3) => IcmpKind::TimeExceeded,
        (IpVersion::V4, 12) | (IpVersion::V6, 4) => IcmpKind::ParameterProblem,
        _ => IcmpKind::Other,
    };
    let embedded = if kind.is_error() {
        Some(parse_embedded(version, &b[8..])?)
    } else {
        None
    };
    Ok(L4Info::Icmp(IcmpInfo {
        ty,
        code,
        kind,
        embedded,
    }))
}

/// Parses the original packet quoted by an ICMP error: its IP header must be
/// complete and of the ICMP packet's version; the transport ports are
/// reported when quoted.
fn parse_embedded(version: IpVersion, q: &[u8]) -> Result<Embedded> {
    match version {
        IpVersion::V4 => {
            if q.len() < 20 || q[0] >> 4 != 4 {
                return Err(WireError::BadIcmpEmbedded);
            }
            let ihl = (q[0] & 0x0f) as usize * 4;
            if ihl < 20 || ihl > q.len() {
                return Err(WireError::BadIcmpEmbedded);
            }
            let protocol = IpProtocol::from(q[9]);
            let non_first = rd16(q, 6) & 0x1fff != 0;
            let ports = if protocol.has_ports() && !non_first && q.len() >= ihl + 4 {
                Some(Ports {
                    src: rd16(q, ihl),
                    dst: rd16(q, ihl + 2),
                })
            } else {
                None
            };
            Ok(Embedded {
                src: v4_mapped([q[12], q[13], q[14], q[15]]),
                dst: v4_mapped([q[16], q[17], q[18], q[19]]),
                protocol,
                ports,
            })
        }
        IpVersion::V6 => {
            if q.len() < 40 || q[0] >> 4 != 6 {
                return Err(WireError::BadIcmpEmbedded);
            }
            // The quote is usually cut short of the original payload length.
            let w = walk_ipv6(q, true).map_err(|_| WireError::BadIcmpEmbedded)?;
            let non_first = matches!(w.frag, Some(f) if f.offset != 0);
            let ports =
                if w.complete && w.protocol.has_ports() && !non_first && q.len() >= w.l4_offset + 4
                {
                    Some(Ports {
                        src: rd16(q, w.l4_offset),
                        dst: rd16(q, w.l4_offset + 2),
                    })
                } else {
                    None
                };
            Ok(Embedded {
                src: addr16(&q[8..24]),
                dst: addr16(&q[24..40]),
                protocol: w.protocol,
                ports,
            })
        }
    }
}

#[cfg(test)]
mod tests;
