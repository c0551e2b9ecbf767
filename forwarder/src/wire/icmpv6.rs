//! ICMPv6 (RFC 4443): echo, destination unreachable, packet too big, time
//! exceeded, and the original packet that errors embed. The checksum covers
//! the IPv6 pseudo-header.

use super::checksum;
use super::ip::IpProtocol;
use super::{Result, WireError};

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const SEQ: Range<usize> = 6..8;
    pub const MTU: Range<usize> = 4..8;
}

/// Length of the ICMPv6 header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = 8;

/// ICMPv6 message types. Decoding never fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv6Message {
    /// 1: destination unreachable.
    DstUnreachable,
    /// 2: packet too big.
    PktTooBig,
    /// 3: time exceeded.
    TimeExceeded,
    /// 4: parameter problem.
    ParamProblem,
    /// 128: echo request.
    EchoRequest,
    /// 129: echo reply.
    EchoReply,
    /// 135: neighbor solicitation.
    NeighborSolicit,
    /// 136: neighbor advertisement.
    NeighborAdvert,
    /// Any other type.
    Unknown(u8),
}

impl From<u8> for Icmpv6Message {
    fn from(v: u8) -> Self {
        match v {
            1 => Icmpv6Message::DstUnreachable,
            2 => Icmpv6Message::PktTooBig,
            3 => Icmpv6Message::TimeExceeded,
            4 => Icmpv6Message::ParamProblem,
            128 => Icmpv6Message::EchoRequest,
            129 => Icmpv6Message::EchoReply,
            135 => Icmpv6Message::NeighborSolicit,
            136 => Icmpv6Message::NeighborAdvert,
            v => Icmpv6Message::Unknown(v),
        }
    }
}

impl From<Icmpv6Message> for u8 {
    fn from(m: Icmpv6Message) -> u8 {
        match m {
            Icmpv6Message::DstUnreachable => 1,
            Icmpv6Message::PktTooBig => 2,
            Icmpv6Message::TimeExceeded => 3,
            Icmpv6Message::ParamProblem => 4,
            Icmpv6Message::EchoRequest => 128,
            Icmpv6Message::EchoReply => 129,
            Icmpv6Message::NeighborSolicit => 135,
            Icmpv6Message::NeighborAdvert => 136,
            Icmpv6Message::Unknown(v) => v,
        }
    }
}

impl Icmpv6Message {
    /// True for error messages (types 0..=127), which embed the original
    /// packet.
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }
}

/// A view over an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::TruncatedIcmp)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Icmpv6Message {
        self.buffer.as_ref()[field::TYPE].into()
    }

    /// Code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Echo identifier.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be(&self.buffer.as_ref()[field::IDENT])
    }

    /// Echo sequence number.
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        be(&self.buffer.as_ref()[field::SEQ])
    }

    /// MTU of a packet-too-big message.
    #[inline]
    pub fn mtu(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::MTU];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The data after the header: echo data, or the original packet of an
    /// error.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// For error messages: a view over the embedded original packet, checked
    /// to hold the fixed IPv6 header.
    pub fn embedded(&self) -> Result<Embedded6<&[u8]>> {
        if !self.msg_type().is_error() {
            return Err(WireError::Unexpected);
        }
        Embedded6::new_checked(self.data())
    }

    /// True when the checksum verifies for a packet from `src` to `dst`.
    pub fn verify_checksum(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6.into(), b.len() as u32);
        checksum::add(ph, checksum::sum(b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the type.
    #[inline]
    pub fn set_msg_type(&mut self, t: Icmpv6Message) {
        self.buffer.as_mut()[field::TYPE] = t.into();
    }

    /// Sets the code.
    #[inline]
    pub fn set_msg_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq(&mut self, v: u16) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the MTU (packet too big) / the 4-byte "rest" word.
    #[inline]
    pub fn set_mtu(&mut self, v: u32) {
        self.buffer.as_mut()[field::MTU].copy_from_slice(&v.to_be_bytes());
    }

    /// Recomputes the checksum for a packet from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: &[u8; 16], dst: &[u8; 16]) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6.into(), b.len() as u32);
        let c = checksum::checksum_with(ph, b);
        self.set_checksum(c);
    }

    /// The data after the header, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

#[inline(always)]
fn be(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// A view over the original packet quoted by an ICMPv6 error: the fixed
/// IPv6 header, then as much of the rest as fitted (RFC 4443 §2.4(c)).
#[derive(Debug, Clone)]
pub struct Embedded6<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Embedded6<T> {
    /// Wraps `buffer` after checking it holds the fixed IPv6 header with
    /// version 6.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < 40 || b[0] >> 4 != 6 {
            return Err(WireError::BadIcmpEmbedded);
        }
        Ok(Embedded6 { buffer })
    }

    /// The quoted IPv6 header as a view (its payload length usually exceeds
    /// the quote: use only header accessors).
    #[inline]
    pub fn ip(&self) -> super::ipv6::Ipv6Packet<&[u8]> {
        super::ipv6::Ipv6Packet::new_unchecked(self.buffer.as_ref())
    }

    /// The upper-layer protocol, its offset in the quote and the quoted
    /// ports, walking the extension headers the quote holds. The ports are
    /// `None` when the chain or the transport header is cut off, for a
    /// non-first fragment, or for protocols without ports.
    pub fn upper_layer(&self) -> (IpProtocol, Option<(u16, u16)>) {
        let b = self.buffer.as_ref();
        match super::ipv6::walk_ext_headers(self.ip().next_header(), &b[40..]) {
            Ok(u) => {
                let non_first = matches!(u.frag, Some(f) if f.offset != 0);
                let t = &b[40 + u.offset..];
                if u.protocol.has_ports() && !non_first && t.len() >= 4 {
                    (u.protocol, Some((be(&t[0..2]), be(&t[2..4]))))
                } else {
                    (u.protocol, None)
                }
            }
            Err(_) => (self.ip().next_header(), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn reference(words: &[u16]) -> u16 {
        let mut s: u32 = words.iter().map(|&w| w as u32).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn echo_request_checksum_by_hand() {
        // 2001:db8::1 -> 2001:db8::2, echo request id 7 seq 1 data "hi".
        let mut m = [128u8, 0, 0, 0, 0, 7, 0, 1, b'h', b'i'];
        let mut p = Icmpv6Packet::new_unchecked(&mut m[..]);
        p.fill_checksum(&SRC, &DST);
        let want = reference(&[
            0x2001, 0x0db8, 1, 0x2001, 0x0db8, 2, 10, 58, 0x8000, 7, 1, 0x6869,
        ]);
        assert_eq!(p.checksum(), want);
        let p = Icmpv6Packet::new_checked(&m[..]).unwrap();
        assert!(p.verify_checksum(&SRC, &DST));
        assert!(!p.verify_checksum(&DST, &[0; 16]));
        assert_eq!(p.msg_type(), Icmpv6Message::EchoRequest);
        assert_eq!((p.echo_ident(), p.echo_seq()), (7, 1));
        assert_eq!(p.data(), b"hi");
    }

    #[test]
    fn packet_too_big_embedded() {
        // PTB mtu 1280 quoting a UDP packet DST:53 -> SRC:40000.
        let mut m = vec![2u8, 0, 0, 0, 0, 0, 0x05, 0x00];
        let mut ip = vec![0x60, 0, 0, 0, 0x05, 0xd0, 17, 64];
        ip.extend_from_slice(&DST);
        ip.extend_from_slice(&SRC);
        m.extend_from_slice(&ip);
        m.extend_from_slice(&[0, 53, 0x9c, 0x40, 0x05, 0xd0, 0, 0]);
        let p = Icmpv6Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv6Message::PktTooBig);
        assert_eq!(p.mtu(), 1280);
        let e = p.embedded().unwrap();
        assert_eq!(e.ip().src_addr(), DST);
        assert_eq!(e.upper_layer(), (IpProtocol::Udp, Some((53, 40000))));
        for len in 0..m.len() {
            if let Ok(p) = Icmpv6Packet::new_checked(&m[..len]) {
                match p.embedded() {
                    Ok(e) => assert_eq!(e.upper_layer().1.is_some(), len >= 52, "len {len}"),
                    Err(e) => assert!(len < 48 && e == WireError::BadIcmpEmbedded),
                }
            } else {
                assert!(len < 8);
            }
        }
        for t in 0..=255u8 {
            assert_eq!(u8::from(Icmpv6Message::from(t)), t);
        }
    }
}
