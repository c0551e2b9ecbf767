//! UDP datagrams (RFC 768) and the UDP header lbfwd emits for GUE and VXLAN,
//! with the IPv4/IPv6 pseudo-header checksum.

use super::checksum;
use super::ip::IpProtocol;
use super::{Result, WireError};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A view over a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds the header and the length field's bytes, and
    /// that the length field is at least 8.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::TruncatedUdp);
        }
        let l = self.len() as usize;
        if l < HEADER_LEN || l > b.len() {
            return Err(WireError::TruncatedUdp);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Length field (header and payload).
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Checksum field (0: none, allowed over IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }

    /// True when the checksum verifies over the IPv4 pseudo-header (or is 0,
    /// "no checksum").
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let d = &self.buffer.as_ref()[..self.len() as usize];
        let ph = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), d.len() as u16);
        checksum::add(ph, checksum::sum(d)) == 0xffff
    }

    /// True when the checksum verifies over the IPv6 pseudo-header (0 is
    /// invalid over IPv6).
    pub fn verify_checksum_v6(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        let d = &self.buffer.as_ref()[..self.len() as usize];
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::Udp.into(), d.len() as u32);
        self.checksum() != 0 && checksum::add(ph, checksum::sum(d)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the checksum field as is.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let n = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..n]
    }
}

#[inline(always)]
fn be(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Writes the header fields into `datagram[..8]`, the length being
/// `datagram.len()`, with a zero checksum. Returns the header.
#[inline(always)]
fn write_header(datagram: &mut [u8], src_port: u16, dst_port: u16) -> Result<&mut [u8; 8]> {
    let len = datagram.len();
    if len > 0xffff {
        return Err(WireError::LengthOverflow);
    }
    let h: &mut [u8; HEADER_LEN] = datagram
        .get_mut(..HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::BufferTooSmall)?;
    h[0..2].copy_from_slice(&src_port.to_be_bytes());
    h[2..4].copy_from_slice(&dst_port.to_be_bytes());
    h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    h[6] = 0;
    h[7] = 0;
    Ok(h)
}

/// A computed checksum of 0 is sent as 0xffff (RFC 768): 0 means "none".
#[inline(always)]
fn nonzero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// Emits a UDP header over IPv4 in front of a payload already in place:
/// `datagram` is the whole datagram, its first 8 bytes the space for the
/// header, the rest the payload. The length field is `datagram.len()`; the
/// checksum covers the pseudo-header and the payload when `with_checksum`,
/// else it is 0 (allowed over IPv4, RFC 768).
#[inline]
pub fn emit_udp_ipv4(
    datagram: &mut [u8],
    src_port: u16,
    dst_port: u16,
    src: [u8; 4],
    dst: [u8; 4],
    with_checksum: bool,
) -> Result<()> {
    write_header(datagram, src_port, dst_port)?;
    if with_checksum {
        let ph =
            checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), datagram.len() as u16);
        let c = nonzero(checksum::checksum_with(ph, datagram));
        datagram[6..8].copy_from_slice(&c.to_be_bytes());
    }
    Ok(())
}

/// Emits a UDP header over IPv6 in front of a payload already in place (see
/// [`emit_udp_ipv4`]); the checksum is mandatory over IPv6 and always
/// computed.
#[inline]
pub fn emit_udp_ipv6(
    datagram: &mut [u8],
    src_port: u16,
    dst_port: u16,
    src: &[u8; 16],
    dst: &[u8; 16],
) -> Result<()> {
    write_header(datagram, src_port, dst_port)?;
    let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::Udp.into(), datagram.len() as u32);
    let c = nonzero(checksum::checksum_with(ph, datagram));
    datagram[6..8].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The outer UDP source port of a flow (GUE, VXLAN): in the dynamic range
/// 49152..=65535 (RFC 6335), from the top bits of the flow hash, so the
/// target's RSS spreads flows (RFC 7348 section 5, RFC 8086 section 3.1).
#[inline(always)]
pub fn source_port(hash: u64) -> u16 {
    0xC000 | ((hash >> 48) as u16 & 0x3FFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    // IP(src="192.168.1.1", dst="192.168.1.2")/UDP(sport=1234, dport=5678)
    // /b"hello": the checksum is the one's complement of the 16-bit sum
    // c0a8+0101+c0a8+0102+0011+000d+04d2+162e+000d+6865+6c6c+6f00.
    const V4_SRC: [u8; 4] = [192, 168, 1, 1];
    const V4_DST: [u8; 4] = [192, 168, 1, 2];

    fn reference(words: &[u16]) -> u16 {
        let mut s: u32 = words.iter().map(|&w| w as u32).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn emit_v4_checksum_matches_hand_sum() {
        let mut d = [0u8; 13];
        d[8..].copy_from_slice(b"hello");
        emit_udp_ipv4(&mut d, 1234, 5678, V4_SRC, V4_DST, true).unwrap();
        let want = reference(&[
            0xc0a8, 0x0101, 0xc0a8, 0x0102, 0x0011, 0x000d, 0x04d2, 0x162e, 0x000d, 0x6865, 0x6c6c,
            0x6f00,
        ]);
        let p = UdpPacket::new_checked(&d[..]).unwrap();
        assert_eq!(p.checksum(), want);
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (1234, 5678, 13));
        assert_eq!(p.payload(), b"hello");
        assert!(p.verify_checksum_v4(V4_SRC, V4_DST));
        assert!(!p.verify_checksum_v4(V4_SRC, [192, 168, 1, 3]));
        emit_udp_ipv4(&mut d, 1234, 5678, V4_SRC, V4_DST, false).unwrap();
        assert_eq!(UdpPacket::new_checked(&d[..]).unwrap().checksum(), 0);
    }

    #[test]
    fn emit_v6_checksum_verifies() {
        let src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut dst = src;
        dst[15] = 2;
        let mut d = [0u8; 8 + 7];
        d[8..].copy_from_slice(b"abcdefg");
        emit_udp_ipv6(&mut d, 40000, 6080, &src, &dst).unwrap();
        let p = UdpPacket::new_checked(&d[..]).unwrap();
        assert!(p.verify_checksum_v6(&src, &dst));
        // Hand sum over pseudo-header + header + payload.
        let mut words = vec![
            0x2001u16, 0x0db8, 1, 0x2001, 0x0db8, 2, 15, 17, 40000, 6080, 15,
        ];
        words.extend([0x6162, 0x6364, 0x6566, 0x6700]);
        assert_eq!(p.checksum(), reference(&words));
        let mut bad = d;
        bad[10] ^= 1;
        assert!(!UdpPacket::new_checked(&bad[..])
            .unwrap()
            .verify_checksum_v6(&src, &dst));
    }

    #[test]
    fn construct_and_truncate() {
        let mut d = [0u8; 12];
        let mut p = UdpPacket::new_unchecked(&mut d[..]);
        p.set_src_port(53);
        p.set_dst_port(33000);
        p.set_len(12);
        p.set_checksum(0xabcd);
        p.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(d, [0, 53, 0x80, 0xe8, 0, 12, 0xab, 0xcd, 1, 2, 3, 4]);
        for len in 0..d.len() {
            assert_eq!(
                UdpPacket::new_checked(&d[..len]).err(),
                Some(WireError::TruncatedUdp)
            );
        }
        assert_eq!(
            emit_udp_ipv4(&mut d[..7], 1, 2, V4_SRC, V4_DST, true),
            Err(WireError::BufferTooSmall)
        );
        assert_eq!(source_port(0x1234_5678_9abc_def0), 0xc000 | 0x1234);
        assert_eq!(source_port(u64::MAX), 0xffff);
        assert_eq!(source_port(0), 0xc000);
    }
}
