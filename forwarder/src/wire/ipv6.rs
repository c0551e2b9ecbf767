//! IPv6 packets (RFC 8200) and their extension headers: hop-by-hop,
//! routing, destination options (all of the generic "next header, length"
//! shape) and the fragment header.

use super::ip::IpProtocol;
use super::{Result, WireError};

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
    // Extension headers.
    pub const EXT_NXT: usize = 0;
    pub const EXT_LEN: usize = 1;
    // Fragment header.
    pub const FRAG_OFF_M: Range<usize> = 2..4;
    pub const FRAG_IDENT: Range<usize> = 4..8;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Length of the fragment extension header.
pub const FRAG_HEADER_LEN: usize = 8;
/// The minimum link MTU every IPv6 link supports (RFC 8200 §5).
pub const MIN_MTU: usize = 1280;

/// A view over an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds the fixed header and the payload length, and
    /// that the version is 6. The buffer may be longer (padding).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::TruncatedIpv6);
        }
        if self.version() != 6 {
            return Err(WireError::BadIpVersion);
        }
        if HEADER_LEN + self.payload_len() as usize > b.len() {
            return Err(WireError::IpLengthBeyondFrame);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn word0(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Version (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }

    /// Payload length (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Next header (the first extension header or the upper layer).
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        self.buffer.as_ref()[field::NXT_HDR].into()
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }

    /// The payload (extension headers included), up to the payload length,
    /// or to the end of the buffer when it is shorter (a quote in an ICMPv6
    /// error).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = (HEADER_LEN + self.payload_len() as usize).min(b.len());
        b.get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// Walks the extension headers to the upper-layer protocol (at most
    /// [`super::parse::MAX_EXT_HEADERS`]). See [`walk_ext_headers`].
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        walk_ext_headers(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, the traffic class and the flow label (low 20 bits).
    #[inline]
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | ((traffic_class as u32) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = p.into();
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }

    /// The payload, writable (up to the payload length or the end of the
    /// buffer).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let n = self.payload_len() as usize;
        let b = self.buffer.as_mut();
        let end = (HEADER_LEN + n).min(b.len());
        b.get_mut(HEADER_LEN..end).unwrap_or(&mut [])
    }
}

/// Where an IPv6 packet's upper-layer header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// Upper-layer protocol; for a non-first fragment the fragment header's
    /// next header.
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header in the payload (after the fixed
    /// header).
    pub offset: usize,
    /// The fragment header's fields, when there is one (atomic fragments
    /// included).
    pub frag: Option<FragmentRepr>,
}

/// Walks an IPv6 extension header chain starting with `first` at the start
/// of `payload`: hop-by-hop (only first), routing, destination options, AH
/// and the other RFC 7045 generic ones, and at most one fragment header. A
/// non-first fragment ends the walk at its fragment header.
pub fn walk_ext_headers(first: IpProtocol, payload: &[u8]) -> Result<UpperLayer> {
    let mut nh = first;
    let mut off = 0usize;
    let mut frag = None;
    for i in 0..=super::parse::MAX_EXT_HEADERS {
        match nh {
            IpProtocol::HopByHop
            | IpProtocol::Ipv6Route
            | IpProtocol::Ipv6Opts
            | IpProtocol::Ah
            | IpProtocol::Unknown(135 | 139 | 140) => {
                if i == super::parse::MAX_EXT_HEADERS || (nh == IpProtocol::HopByHop && i != 0) {
                    return Err(WireError::BadExtHeaderChain);
                }
                let h = ExtHeader::new_checked(payload.get(off..).unwrap_or(&[]))?;
                let len = if nh == IpProtocol::Ah {
                    h.ah_len()
                } else {
                    h.header_len()
                };
                if payload.len() - off < len {
                    return Err(WireError::TruncatedExtHeader);
                }
                nh = h.next_header();
                off += len;
            }
            IpProtocol::Ipv6Frag => {
                if i == super::parse::MAX_EXT_HEADERS || frag.is_some() {
                    return Err(WireError::BadExtHeaderChain);
                }
                let h = FragmentHeader::new_checked(payload.get(off..).unwrap_or(&[]))?;
                let r = FragmentRepr::parse(&h);
                frag = Some(r);
                off += FRAG_HEADER_LEN;
                nh = h.next_header();
                if r.offset != 0 {
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(UpperLayer {
        protocol: nh,
        offset: off,
        frag,
    })
}

/// A view over a generic extension header (hop-by-hop, routing,
/// destination options): next header, length in 8-byte units after the
/// first 8, then options/data.
#[derive(Debug, Clone)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        ExtHeader { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Checks the buffer holds the first 8 bytes (the minimum size). The
    /// whole header (`header_len()`) may still exceed the buffer: callers
    /// check it before using [`data`](Self::data).
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < 8 {
            Err(WireError::TruncatedExtHeader)
        } else {
            Ok(())
        }
    }

    /// Next header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        self.buffer.as_ref()[field::EXT_NXT].into()
    }

    /// Length of the whole header in bytes ((len + 1) * 8).
    #[inline]
    pub fn header_len(&self) -> usize {
        (self.buffer.as_ref()[field::EXT_LEN] as usize + 1) * 8
    }

    /// Length of the whole header when it is an authentication header
    /// ((len + 2) * 4, RFC 4302).
    #[inline]
    pub fn ah_len(&self) -> usize {
        (self.buffer.as_ref()[field::EXT_LEN] as usize + 2) * 4
    }

    /// Options / routing data after the first two bytes, as far as the
    /// buffer holds them.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[2..self.header_len().min(b.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ExtHeader<T> {
    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::EXT_NXT] = p.into();
    }

    /// Sets the length field (header length in 8-byte units minus one).
    #[inline]
    pub fn set_len_units(&mut self, v: u8) {
        self.buffer.as_mut()[field::EXT_LEN] = v;
    }
}

/// A view over the fragment extension header.
#[derive(Debug, Clone)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        FragmentHeader { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Checks the buffer holds the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FRAG_HEADER_LEN {
            Err(WireError::TruncatedExtHeader)
        } else {
            Ok(())
        }
    }

    /// Next header (of the fragmentable part).
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        self.buffer.as_ref()[field::EXT_NXT].into()
    }

    #[inline]
    fn off_m(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FRAG_OFF_M];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.off_m() & 0xfff8
    }

    /// M flag: more fragments follow.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.off_m() & 1 != 0
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::FRAG_IDENT];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FragmentHeader<T> {
    /// Writes the whole header.
    #[inline]
    pub fn set(&mut self, r: &FragmentRepr) {
        let b = self.buffer.as_mut();
        b[0] = r.next_header.into();
        b[1] = 0;
        let v = (r.offset & 0xfff8) | r.more as u16;
        b[field::FRAG_OFF_M].copy_from_slice(&v.to_be_bytes());
        b[field::FRAG_IDENT].copy_from_slice(&r.ident.to_be_bytes());
    }
}

/// The fields of a fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentRepr {
    /// Next header.
    pub next_header: IpProtocol,
    /// Offset in bytes (multiple of 8).
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentRepr {
    /// Reads a fragment header.
    pub fn parse<T: AsRef<[u8]>>(h: &FragmentHeader<T>) -> Self {
        FragmentRepr {
            next_header: h.next_header(),
            offset: h.frag_offset(),
            more: h.more_frags(),
            ident: h.ident(),
        }
    }

    /// True for an atomic fragment (offset 0, no more fragments, RFC 6946).
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

/// Hop limit of the headers lbfwd emits.
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// Derives a flow label (RFC 6437: 20 bits, uniformly distributed, non-zero)
/// from a flow hash.
#[inline]
pub fn flow_label_from_hash(hash: u32) -> u32 {
    let l = (hash ^ (hash >> 20)) & 0x000f_ffff;
    if l == 0 {
        1
    } else {
        l
    }
}

/// An IPv6 header without extension headers to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Next header.
    pub next_header: IpProtocol,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit (lbfwd uses [`DEFAULT_HOP_LIMIT`]).
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (low 20 bits used; see [`flow_label_from_hash`]).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Bytes [`emit`](Self::emit) writes.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Writes the 40-byte header into `buf[..40]`. Fails when `buf` is
    /// shorter or the payload length exceeds 65535 (no jumbograms).
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let b: &mut [u8; HEADER_LEN] = buf
            .get_mut(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::BufferTooSmall)?;
        if self.payload_len > 0xffff {
            return Err(WireError::LengthOverflow);
        }
        let w =
            (6u32 << 28) | ((self.traffic_class as u32) << 20) | (self.flow_label & 0x000f_ffff);
        b[0..4].copy_from_slice(&w.to_be_bytes());
        b[4..6].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
        b[6] = self.next_header.into();
        b[7] = self.hop_limit;
        b[8..24].copy_from_slice(&self.src);
        b[24..40].copy_from_slice(&self.dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv6 2001:db8::1 -> 2001:db8::2, hop-by-hop (PadN) -> routing (type 0
    /// segments-left 0, 16 bytes) -> fragment (offset 0, M) -> dest-opts ->
    /// UDP (8 bytes).
    fn fixture() -> Vec<u8> {
        let mut p = vec![
            0x60, 0x01, 0x23, 0x45, 0, 0, 0, 64, // ver/tc/flow, len, nh=HBH, hlim
        ];
        p[4..6].copy_from_slice(&(8u16 + 16 + 8 + 8 + 8).to_be_bytes());
        let src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut dst = src;
        dst[15] = 2;
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0]); // HBH: PadN
        p.extend_from_slice(&[44, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // routing
        p.extend_from_slice(&[60, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]); // frag: off 0, M, id
        p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // dest opts
        p.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 16, 0, 0]); // UDP
        p
    }

    #[test]
    fn deconstruct_and_walk() {
        let b = fixture();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 48);
        assert_eq!(p.next_header(), IpProtocol::HopByHop);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr()[15], 1);
        assert_eq!(p.dst_addr()[15], 2);
        let u = p.upper_layer().unwrap();
        assert_eq!(u.protocol, IpProtocol::Udp);
        assert_eq!(u.offset, 40);
        assert_eq!(
            u.frag,
            Some(FragmentRepr {
                next_header: IpProtocol::Ipv6Opts,
                offset: 0,
                more: true,
                ident: 0xdeadbeef
            })
        );
        let h = ExtHeader::new_checked(&b[48..]).unwrap();
        assert_eq!(
            (h.next_header(), h.header_len()),
            (IpProtocol::Ipv6Frag, 16)
        );
        assert_eq!(h.data().len(), 14);
    }

    #[test]
    fn non_first_fragment_stops_at_fragment_header() {
        let mut b = fixture();
        // offset 1480 (0x5c8), M=0
        b[66..68].copy_from_slice(&(1480u16).to_be_bytes());
        let u = Ipv6Packet::new_checked(&b[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(u.protocol, IpProtocol::Ipv6Opts);
        assert_eq!(u.offset, 32);
        assert_eq!(u.frag.unwrap().offset, 1480);
        assert!(!u.frag.unwrap().more);
    }

    #[test]
    fn bad_chains() {
        // Hop-by-hop in second position.
        let mut b = fixture();
        b[40] = 0;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap().upper_layer(),
            Err(WireError::BadExtHeaderChain)
        );
        // Routing header claims more than the packet holds.
        let mut b = fixture();
        b[49] = 9;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap().upper_layer(),
            Err(WireError::TruncatedExtHeader)
        );
        // Nine destination-options headers.
        let mut p = vec![0x60, 0, 0, 0, 0, 72, 60, 64];
        p.extend_from_slice(&[0u8; 32]);
        for _ in 0..9 {
            p.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(
            Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer(),
            Err(WireError::BadExtHeaderChain)
        );
    }

    #[test]
    fn truncated_at_every_length() {
        let b = fixture();
        for len in 0..b.len() {
            let r = Ipv6Packet::new_checked(&b[..len]);
            let want = if len < 40 {
                WireError::TruncatedIpv6
            } else {
                WireError::IpLengthBeyondFrame
            };
            assert_eq!(r.err(), Some(want), "len {len}");
            // Walking a cut payload never panics, and fails or stops early.
            if len >= 40 {
                let r = walk_ext_headers(IpProtocol::HopByHop, &b[40..len]);
                assert!(r.is_err() || r.unwrap().offset <= len - 40);
            }
        }
    }

    #[test]
    fn construct_and_emit() {
        let b = fixture();
        let mut out = [0u8; 40];
        Ipv6Repr {
            src: Ipv6Packet::new_unchecked(&b[..]).src_addr(),
            dst: Ipv6Packet::new_unchecked(&b[..]).dst_addr(),
            next_header: IpProtocol::HopByHop,
            payload_len: 48,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0x12345,
        }
        .emit(&mut out)
        .unwrap();
        assert_eq!(out[..], b[..40]);
        let mut p = Ipv6Packet::new_unchecked(&mut out[..]);
        p.set_version_tc_flow(0xb8, 0xfffff);
        p.set_hop_limit(1);
        p.set_next_header(IpProtocol::Tcp);
        assert_eq!(
            (p.traffic_class(), p.flow_label(), p.hop_limit()),
            (0xb8, 0xfffff, 1)
        );
        assert_eq!(p.next_header(), IpProtocol::Tcp);
        let mut fh = [0u8; 8];
        let r = FragmentRepr {
            next_header: IpProtocol::Udp,
            offset: 2960,
            more: true,
            ident: 9,
        };
        FragmentHeader::new_unchecked(&mut fh[..]).set(&r);
        assert_eq!(
            FragmentRepr::parse(&FragmentHeader::new_checked(&fh[..]).unwrap()),
            r
        );
        assert!(!r.is_atomic());
        assert_eq!(flow_label_from_hash(0), 1);
        assert!(flow_label_from_hash(0xffff_ffff) <= 0xfffff);
        assert_eq!(
            Ipv6Repr {
                payload_len: 70000,
                ..Ipv6Repr {
                    src: [0; 16],
                    dst: [0; 16],
                    next_header: IpProtocol::Udp,
                    payload_len: 0,
                    hop_limit: 64,
                    traffic_class: 0,
                    flow_label: 0
                }
            }
            .emit(&mut [0u8; 40]),
            Err(WireError::LengthOverflow)
        );
    }
}
