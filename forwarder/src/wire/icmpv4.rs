//! ICMP for IPv4 (RFC 792, RFC 1191): echo, destination unreachable (with
//! frag-needed's next-hop MTU), time exceeded, and the original datagram
//! that errors embed.

use super::checksum;
use super::{Result, WireError};

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const SEQ: Range<usize> = 6..8;
    pub const MTU: Range<usize> = 6..8;
}

/// Length of the ICMP header (type, code, checksum, 4 bytes of rest).
pub const HEADER_LEN: usize = 8;

/// ICMPv4 message types. Decoding never fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Message {
    /// 0: echo reply.
    EchoReply,
    /// 3: destination unreachable.
    DstUnreachable,
    /// 5: redirect.
    Redirect,
    /// 8: echo request.
    EchoRequest,
    /// 11: time exceeded.
    TimeExceeded,
    /// 12: parameter problem.
    ParamProblem,
    /// Any other type.
    Unknown(u8),
}

impl From<u8> for Icmpv4Message {
    fn from(v: u8) -> Self {
        match v {
            0 => Icmpv4Message::EchoReply,
            3 => Icmpv4Message::DstUnreachable,
            5 => Icmpv4Message::Redirect,
            8 => Icmpv4Message::EchoRequest,
            11 => Icmpv4Message::TimeExceeded,
            12 => Icmpv4Message::ParamProblem,
            v => Icmpv4Message::Unknown(v),
        }
    }
}

impl From<Icmpv4Message> for u8 {
    fn from(m: Icmpv4Message) -> u8 {
        match m {
            Icmpv4Message::EchoReply => 0,
            Icmpv4Message::DstUnreachable => 3,
            Icmpv4Message::Redirect => 5,
            Icmpv4Message::EchoRequest => 8,
            Icmpv4Message::TimeExceeded => 11,
            Icmpv4Message::ParamProblem => 12,
            Icmpv4Message::Unknown(v) => v,
        }
    }
}

impl Icmpv4Message {
    /// True for error messages, which embed the original datagram.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Icmpv4Message::DstUnreachable
                | Icmpv4Message::Redirect
                | Icmpv4Message::TimeExceeded
                | Icmpv4Message::ParamProblem
        )
    }
}

/// Destination unreachable code 4: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;

/// A view over an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
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
    pub fn msg_type(&self) -> Icmpv4Message {
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

    /// Next-hop MTU of a frag-needed message (RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        be(&self.buffer.as_ref()[field::MTU])
    }

    /// True for type 3 code 4.
    #[inline]
    pub fn is_frag_needed(&self) -> bool {
        self.msg_type() == Icmpv4Message::DstUnreachable && self.msg_code() == CODE_FRAG_NEEDED
    }

    /// The data after the header: echo data, or the original datagram
    /// (IP header and at least 8 bytes) of an error.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// For error messages: a view over the embedded original IP header,
    /// checked to hold the whole header. The quoted datagram is usually cut
    /// short of its total length, so only the header is checked; its first
    /// 8 transport bytes follow it in [`Embedded4::transport`].
    pub fn embedded(&self) -> Result<Embedded4<&[u8]>> {
        if !self.msg_type().is_error() {
            return Err(WireError::Unexpected);
        }
        Embedded4::new_checked(self.data())
    }

    /// True when the checksum (over the whole message) verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the type.
    #[inline]
    pub fn set_msg_type(&mut self, t: Icmpv4Message) {
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

    /// Sets the "unused" word of an error message to the next-hop MTU (its
    /// first two bytes zero).
    #[inline]
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        let b = self.buffer.as_mut();
        b[4] = 0;
        b[5] = 0;
        b[field::MTU].copy_from_slice(&mtu.to_be_bytes());
    }

    /// Recomputes the checksum over the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
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

/// A view over the original datagram quoted by an ICMPv4 error: a complete
/// IPv4 header followed by (usually 8 or more) bytes of its payload.
#[derive(Debug, Clone)]
pub struct Embedded4<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Embedded4<T> {
    /// Wraps `buffer` after checking it holds a whole IPv4 header (version
    /// 4, IHL 5 or more).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < 20 || b[0] >> 4 != 4 {
            return Err(WireError::BadIcmpEmbedded);
        }
        let ihl = (b[0] & 0x0f) as usize * 4;
        if ihl < 20 || ihl > b.len() {
            return Err(WireError::BadIcmpEmbedded);
        }
        Ok(Embedded4 { buffer })
    }

    /// The quoted IPv4 header as a view (its total length usually exceeds
    /// the quote: use only header accessors).
    #[inline]
    pub fn ip(&self) -> super::ipv4::Ipv4Packet<&[u8]> {
        super::ipv4::Ipv4Packet::new_unchecked(self.buffer.as_ref())
    }

    /// The quoted transport bytes after the IP header (may be empty).
    #[inline]
    pub fn transport(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[((b[0] & 0x0f) as usize * 4)..]
    }

    /// The quoted source and destination ports, when the protocol has ports,
    /// the quote is not of a non-first fragment and holds 4 transport bytes.
    pub fn ports(&self) -> Option<(u16, u16)> {
        let ip = self.ip();
        let t = self.transport();
        if !ip.protocol().has_ports() || ip.frag_offset() != 0 || t.len() < 4 {
            return None;
        }
        Some((be(&t[0..2]), be(&t[2..4])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip::IpProtocol;

    /// Frag-needed (type 3 code 4, MTU 1400) quoting a TCP packet
    /// 203.0.113.10:443 -> 198.51.100.20:51000.
    fn frag_needed() -> Vec<u8> {
        let mut orig_ip = [
            0x45, 0, 0x05, 0xdc, 0, 1, 0x40, 0, 64, 6, 0, 0, 203, 0, 113, 10, 198, 51, 100, 20,
        ];
        let c = checksum::checksum(&orig_ip);
        orig_ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut m = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
        m.extend_from_slice(&orig_ip);
        m.extend_from_slice(&[0x01, 0xbb, 0xc7, 0x38, 0, 0, 0, 1]);
        let c = checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    #[test]
    fn deconstruct_frag_needed() {
        let m = frag_needed();
        let p = Icmpv4Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Message::DstUnreachable);
        assert!(p.is_frag_needed());
        assert_eq!(p.next_hop_mtu(), 1400);
        assert!(p.verify_checksum());
        let e = p.embedded().unwrap();
        assert_eq!(e.ip().src_addr(), [203, 0, 113, 10]);
        assert_eq!(e.ip().dst_addr(), [198, 51, 100, 20]);
        assert_eq!(e.ip().protocol(), IpProtocol::Tcp);
        assert_eq!(e.ports(), Some((443, 51000)));
        assert_eq!(e.transport().len(), 8);
        // The quoted header's total length (1500) exceeds the quote: the
        // payload is what was quoted.
        assert_eq!(e.ip().payload().len(), 8);
    }

    #[test]
    fn echo_request_known_checksum() {
        // ping -p: type 8, id 0x1234, seq 1, data "abcd"; checksum by hand:
        // ~(0x0800 + 0x1234 + 0x0001 + 0x6162 + 0x6364) = ~0xdefb = 0x2104.
        let m = [8, 0, 0x21, 0x04, 0x12, 0x34, 0, 1, b'a', b'b', b'c', b'd'];
        let p = Icmpv4Packet::new_checked(&m[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), Icmpv4Message::EchoRequest);
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 1));
        assert_eq!(p.data(), b"abcd");
        assert_eq!(p.embedded().err(), Some(WireError::Unexpected));
        let mut c = [0u8; 12];
        let mut q = Icmpv4Packet::new_unchecked(&mut c[..]);
        q.set_msg_type(Icmpv4Message::EchoRequest);
        q.set_msg_code(0);
        q.set_echo_ident(0x1234);
        q.set_echo_seq(1);
        q.data_mut().copy_from_slice(b"abcd");
        q.fill_checksum();
        assert_eq!(c, m);
    }

    #[test]
    fn truncated_everywhere() {
        let m = frag_needed();
        for len in 0..m.len() {
            match Icmpv4Packet::new_checked(&m[..len]) {
                Err(e) => assert!(len < 8 && e == WireError::TruncatedIcmp),
                Ok(p) => {
                    let e = p.embedded();
                    if len < 28 {
                        assert_eq!(e.err(), Some(WireError::BadIcmpEmbedded), "len {len}");
                    } else {
                        assert_eq!(e.unwrap().ports().is_some(), len >= 32, "len {len}");
                    }
                }
            }
        }
        for t in 0..=255u8 {
            assert_eq!(u8::from(Icmpv4Message::from(t)), t);
        }
    }
}
