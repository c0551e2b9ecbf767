//! SCTP (RFC 9260) common header: ports and verification tag.

use super::{Result, WireError};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const VTAG: Range<usize> = 4..8;
    pub const CHECKSUM: Range<usize> = 8..12;
}

/// Length of the SCTP common header.
pub const HEADER_LEN: usize = 12;

/// A view over an SCTP packet.
#[derive(Debug, Clone)]
pub struct SctpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SctpPacket<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        SctpPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds the 12-byte common header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::TruncatedSctp)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::SRC_PORT];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::DST_PORT];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Verification tag.
    #[inline]
    pub fn verification_tag(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VTAG];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Checksum field (CRC32c, as sent: little-endian on the wire, returned
    /// as the raw big-endian read of the 4 bytes).
    #[inline]
    pub fn checksum(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The chunks after the common header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SctpPacket<T> {
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

    /// Sets the verification tag.
    #[inline]
    pub fn set_verification_tag(&mut self, v: u32) {
        self.buffer.as_mut()[field::VTAG].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: [u8; 16] = [
        0x0b, 0x59, 0x0b, 0x59, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 1, 0, 0, 4,
    ];

    #[test]
    fn deconstruct_construct_truncate() {
        let p = SctpPacket::new_checked(&INIT[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (2905, 2905));
        assert_eq!(p.verification_tag(), 0);
        assert_eq!(p.checksum(), 0xaabbccdd);
        assert_eq!(p.payload(), &[1, 0, 0, 4]);
        let mut b = INIT;
        let mut p = SctpPacket::new_unchecked(&mut b[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_verification_tag(0x01020304);
        assert_eq!(b[..8], [0, 1, 0, 2, 1, 2, 3, 4]);
        for len in 0..HEADER_LEN {
            assert_eq!(
                SctpPacket::new_checked(&INIT[..len]).err(),
                Some(WireError::TruncatedSctp)
            );
        }
    }
}
