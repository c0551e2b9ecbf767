//! IPv4 packets (RFC 791): header with options, fragment fields, header
//! checksum.

use super::checksum;
use super::ip::IpProtocol;
use super::{Result, WireError};

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// Most bytes of an IPv4 packet.
pub const MAX_PACKET_LEN: usize = 0xffff;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view over an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds the whole header (options included) and the
    /// total length, that the version is 4 and that IHL and total length are
    /// consistent. The buffer may be longer than the total length (padding).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::TruncatedIpv4);
        }
        if self.version() != 4 {
            return Err(WireError::BadIpVersion);
        }
        let ihl = self.header_len() as usize;
        if ihl < HEADER_LEN {
            return Err(WireError::BadIpv4HeaderLen);
        }
        let total = self.total_len() as usize;
        if total < ihl {
            return Err(WireError::BadIpv4TotalLen);
        }
        if total > b.len() {
            return Err(WireError::IpLengthBeyondFrame);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP (6 bits).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// ECN (2 bits).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 3
    }

    /// Total length (header and payload).
    #[inline]
    pub fn total_len(&self) -> u16 {
        be(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be(&self.buffer.as_ref()[field::IDENT])
    }

    #[inline]
    fn flags_offset(&self) -> u16 {
        be(&self.buffer.as_ref()[field::FLG_OFF])
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// True when the packet is a fragment (MF set or non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        self.buffer.as_ref()[field::PROTOCOL].into()
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 4] {
        addr(&self.buffer.as_ref()[field::SRC])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 4] {
        addr(&self.buffer.as_ref()[field::DST])
    }

    /// The options (bytes 20..IHL*4).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len() as usize]
    }

    /// True when the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buffer.as_ref()[..self.header_len() as usize])
    }

    /// The payload, up to the total length (Ethernet padding excluded), or
    /// to the end of the buffer when it is shorter (a quote in an ICMP
    /// error).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = (self.total_len() as usize).min(b.len());
        b.get(self.header_len() as usize..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: u8) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) & 0x0f);
    }

    /// Sets DSCP and ECN.
    #[inline]
    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = (dscp << 2) | (ecn & 3);
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets DF, MF and the fragment offset (in bytes, a multiple of 8).
    #[inline]
    pub fn set_frag(&mut self, dont_frag: bool, more: bool, offset: u16) {
        let v = (if dont_frag { FLAG_DF } else { 0 })
            | (if more { FLAG_MF } else { 0 })
            | ((offset >> 3) & OFFSET_MASK);
        self.buffer.as_mut()[field::FLG_OFF].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the TTL.
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.into();
    }

    /// Sets the checksum field as is.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }

    /// Recomputes the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(&self.buffer.as_ref()[..self.header_len() as usize]);
        self.set_checksum(c);
    }

    /// The payload, writable, up to the total length (or the end of the
    /// buffer).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len() as usize, self.total_len() as usize);
        let b = self.buffer.as_mut();
        let end = t.min(b.len());
        b.get_mut(h..end).unwrap_or(&mut [])
    }
}

#[inline(always)]
fn be(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

#[inline(always)]
fn addr(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

/// An option-less IPv4 header to emit (the outer header of an encapsulation,
/// or of an ICMP answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Length of the payload (the total length is this plus 20).
    pub payload_len: usize,
    /// TTL (lbfwd uses [`DEFAULT_TTL`]).
    pub ttl: u8,
    /// Don't-fragment flag (policy of the caller).
    pub dont_frag: bool,
    /// Identification.
    pub ident: u16,
    /// DSCP and ECN byte (traffic class), usually copied from the inner
    /// packet or 0.
    pub tos: u8,
}

/// TTL of the headers lbfwd emits.
pub const DEFAULT_TTL: u8 = 64;

impl Ipv4Repr {
    /// Bytes [`emit`](Self::emit) writes.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Writes the 20-byte header, checksum included, into `buf[..20]`.
    /// Fails when `buf` is shorter or the total length exceeds 65535.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let b: &mut [u8; HEADER_LEN] = buf
            .get_mut(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::BufferTooSmall)?;
        let total = self.payload_len + HEADER_LEN;
        if total > MAX_PACKET_LEN {
            return Err(WireError::LengthOverflow);
        }
        let flags: u16 = if self.dont_frag { FLAG_DF } else { 0 };
        let proto: u8 = self.protocol.into();
        // The checksum from the field values (ten 16-bit words), not by
        // reading the bytes back: this header is written once per packet.
        let (s, d) = (self.src, self.dst);
        let acc = (0x4500 | self.tos as u32)
            + total as u32
            + self.ident as u32
            + flags as u32
            + ((self.ttl as u32) << 8 | proto as u32)
            + u16::from_be_bytes([s[0], s[1]]) as u32
            + u16::from_be_bytes([s[2], s[3]]) as u32
            + u16::from_be_bytes([d[0], d[1]]) as u32
            + u16::from_be_bytes([d[2], d[3]]) as u32;
        let c = !checksum::fold32(acc);
        b[0] = 0x45;
        b[1] = self.tos;
        b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        b[4..6].copy_from_slice(&self.ident.to_be_bytes());
        b[6..8].copy_from_slice(&flags.to_be_bytes());
        b[8] = self.ttl;
        b[9] = proto;
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b[12..16].copy_from_slice(&s);
        b[16..20].copy_from_slice(&d);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scapy: IP(src="192.0.2.1", dst="198.51.100.7", id=0x1234, flags="DF",
    /// ttl=63, proto=17, options=[IPOption(b"\x01\x01\x01\x00")]) / 8 bytes.
    /// Checksum computed by hand and cross-checked with the reference sum.
    fn fixture() -> [u8; 32] {
        let mut p = [
            0x46, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x11, 0x00, 0x00, 192, 0, 2, 1,
            198, 51, 100, 7, 0x01, 0x01, 0x01, 0x00, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let c = checksum::checksum(&p[..24]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn known_checksum() {
        // Wikipedia example header, checksum 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let mut buf = [0u8; 0x73];
        buf[..20].copy_from_slice(&h);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        let r = Ipv4Repr {
            src: [192, 168, 0, 1],
            dst: [192, 168, 0, 199],
            protocol: IpProtocol::Udp,
            payload_len: 0x73 - 20,
            ttl: 64,
            dont_frag: true,
            ident: 0,
            tos: 0,
        };
        let mut out = [0u8; 20];
        r.emit(&mut out).unwrap();
        assert_eq!(out, h);
    }

    #[test]
    fn emitted_checksum_matches_generic_sum() {
        let mut x: u32 = 7;
        for _ in 0..2000 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let r = Ipv4Repr {
                src: x.to_be_bytes(),
                dst: x.rotate_left(13).to_be_bytes(),
                protocol: IpProtocol::from((x >> 3) as u8),
                payload_len: (x >> 16) as usize % 65516,
                ttl: (x >> 8) as u8,
                dont_frag: x & 1 == 0,
                ident: (x >> 5) as u16,
                tos: (x >> 24) as u8,
            };
            let mut b = [0u8; 20];
            r.emit(&mut b).unwrap();
            assert!(checksum::verify(&b), "{r:?}");
        }
    }

    #[test]
    fn deconstruct() {
        let b = fixture();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.total_len(), 32);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 63);
        assert_eq!(p.protocol(), IpProtocol::Udp);
        assert_eq!(p.src_addr(), [192, 0, 2, 1]);
        assert_eq!(p.dst_addr(), [198, 51, 100, 7]);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn construct_fragment() {
        let mut b = fixture();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_frag(false, true, 1480);
        p.set_ttl(1);
        p.set_ident(7);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert!(p.more_frags());
        assert!(!p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment());
        p.set_version_and_header_len(20);
        p.set_dscp_ecn(46, 1);
        assert_eq!((p.header_len(), p.dscp(), p.ecn()), (20, 46, 1));
        p.payload_mut()[0] = 0xaa;
        assert_eq!(b[20], 0xaa);
    }

    #[test]
    fn truncated_and_bad() {
        let b = fixture();
        for len in 0..b.len() {
            let e = Ipv4Packet::new_checked(&b[..len]).err();
            let want = if len < 20 {
                WireError::TruncatedIpv4
            } else {
                WireError::IpLengthBeyondFrame
            };
            assert_eq!(e, Some(want), "len {len}");
        }
        let mut x = b;
        x[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&x[..]).err(),
            Some(WireError::BadIpVersion)
        );
        x[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&x[..]).err(),
            Some(WireError::BadIpv4HeaderLen)
        );
        x[0] = 0x46;
        x[2..4].copy_from_slice(&23u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&x[..]).err(),
            Some(WireError::BadIpv4TotalLen)
        );
        let r = Ipv4Repr {
            src: [0; 4],
            dst: [0; 4],
            protocol: IpProtocol::Tcp,
            payload_len: 65516,
            ttl: 64,
            dont_frag: false,
            ident: 0,
            tos: 0,
        };
        assert_eq!(r.emit(&mut [0u8; 20]), Err(WireError::LengthOverflow));
        assert_eq!(r.emit(&mut [0u8; 19]), Err(WireError::BufferTooSmall));
    }
}
