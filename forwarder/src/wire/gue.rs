//! Generic UDP Encapsulation (draft-ietf-intarea-gue).
//!
//! lbfwd emits variant 1: the UDP payload is the inner IP packet itself, no
//! GUE header; the first nibble of the payload (the IP version, 4 or 6)
//! tells the variant-1 decoder which it is (first two bits `01`). The
//! variant-0 header (4 bytes and optional fields) is provided for decoding.

use super::ip::IpProtocol;
use super::{Result, WireError};

mod field {
    use core::ops::Range;
    pub const VER_C_HLEN: usize = 0;
    pub const PROTO_CTYPE: usize = 1;
    pub const FLAGS: Range<usize> = 2..4;
}

/// Length of the fixed variant-0 GUE header.
pub const HEADER_LEN: usize = 4;
/// Default UDP port of lbfwd's GUE encapsulation.
pub const DEFAULT_UDP_PORT: u16 = 6080;

/// What a GUE payload is, judged from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GueVariant {
    /// Variant 0: a GUE header follows.
    Variant0,
    /// Variant 1 carrying IPv4 directly.
    Ipv4,
    /// Variant 1 carrying IPv6 directly.
    Ipv6,
    /// Anything else (reserved variants, or variant 1 with an unknown IP
    /// version).
    Unknown,
}

/// Classifies a GUE UDP payload by its first byte.
#[inline]
pub fn variant(payload: &[u8]) -> GueVariant {
    match payload.first().map(|b| b >> 4) {
        Some(0..=3) => GueVariant::Variant0,
        Some(4) => GueVariant::Ipv4,
        Some(6) => GueVariant::Ipv6,
        _ => GueVariant::Unknown,
    }
}

/// A view over a variant-0 GUE header.
#[derive(Debug, Clone)]
pub struct GuePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GuePacket<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        GuePacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds the fixed header and the optional fields
    /// (`hlen` words), and that it is variant 0.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::TruncatedUdp);
        }
        if self.version() != 0 {
            return Err(WireError::Unexpected);
        }
        if b.len() < self.header_len() {
            return Err(WireError::TruncatedUdp);
        }
        Ok(())
    }

    /// Variant (2 bits).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_C_HLEN] >> 6
    }

    /// C bit: a control message.
    #[inline]
    pub fn is_control(&self) -> bool {
        self.buffer.as_ref()[field::VER_C_HLEN] & 0x20 != 0
    }

    /// Length of the optional fields in 32-bit words.
    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::VER_C_HLEN] & 0x1f
    }

    /// Length of the whole header (fixed part and optional fields).
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + 4 * self.hlen() as usize
    }

    /// Protocol of the payload (data messages).
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        self.buffer.as_ref()[field::PROTO_CTYPE].into()
    }

    /// Control type (control messages).
    #[inline]
    pub fn ctype(&self) -> u8 {
        self.buffer.as_ref()[field::PROTO_CTYPE]
    }

    /// Flags.
    #[inline]
    pub fn flags(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FLAGS];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The optional fields.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GuePacket<T> {
    /// Writes a variant-0 data header without optional fields.
    #[inline]
    pub fn set_data_header(&mut self, protocol: IpProtocol, flags: u16) {
        let b = self.buffer.as_mut();
        b[field::VER_C_HLEN] = 0;
        b[field::PROTO_CTYPE] = protocol.into();
        b[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants() {
        assert_eq!(variant(&[0x45, 0]), GueVariant::Ipv4);
        assert_eq!(variant(&[0x60]), GueVariant::Ipv6);
        assert_eq!(variant(&[0x00, 4, 0, 0]), GueVariant::Variant0);
        assert_eq!(variant(&[0x50]), GueVariant::Unknown);
        assert_eq!(variant(&[0x80]), GueVariant::Unknown);
        assert_eq!(variant(&[]), GueVariant::Unknown);
    }

    #[test]
    fn variant0_header() {
        // C=0, hlen=1, proto=4 (IPv4), flags 0x8000, one option word, payload.
        let b = [0x01, 0x04, 0x80, 0x00, 1, 2, 3, 4, 0x45];
        let p = GuePacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.version(), p.is_control(), p.hlen()), (0, false, 1));
        assert_eq!(p.protocol(), IpProtocol::Ipv4);
        assert_eq!(p.ctype(), 4);
        assert_eq!(p.flags(), 0x8000);
        assert_eq!(p.options(), &[1, 2, 3, 4]);
        assert_eq!(p.payload(), &[0x45]);
        for len in 0..8 {
            assert_eq!(
                GuePacket::new_checked(&b[..len]).err(),
                Some(WireError::TruncatedUdp)
            );
        }
        assert_eq!(
            GuePacket::new_checked(&[0x45u8, 0, 0, 0][..]).err(),
            Some(WireError::Unexpected)
        );
        let mut c = [0xffu8; 4];
        GuePacket::new_unchecked(&mut c[..]).set_data_header(IpProtocol::Ipv6, 0);
        assert_eq!(c, [0, 41, 0, 0]);
        assert!(GuePacket::new_checked(&[0x20u8, 0, 0, 0][..])
            .unwrap()
            .is_control());
    }
}
