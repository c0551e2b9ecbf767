//! VXLAN (RFC 7348): an 8-byte header after UDP (port 4789) carrying an
//! inner Ethernet frame.

use super::{Result, WireError};

mod field {
    use core::ops::Range;
    pub const FLAGS: usize = 0;
    pub const VNI: Range<usize> = 4..7;
}

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// IANA UDP port of VXLAN.
pub const UDP_PORT: u16 = 4789;
/// The I flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;

/// A view over a VXLAN header and its payload (the inner Ethernet frame).
#[derive(Debug, Clone)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
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
            Err(WireError::TruncatedUdp)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// True when the I flag (valid VNI) is set.
    #[inline]
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The 24-bit VXLAN network identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VNI];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, f: u8) {
        self.buffer.as_mut()[field::FLAGS] = f;
    }

    /// Sets the VNI (low 24 bits).
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        let b = vni.to_be_bytes();
        self.buffer.as_mut()[field::VNI].copy_from_slice(&b[1..4]);
    }
}

/// A VXLAN header to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanRepr {
    /// The VNI (24 bits; higher bits are refused).
    pub vni: u32,
}

impl VxlanRepr {
    /// Bytes [`emit`](Self::emit) writes.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Writes flags `0x08` (I), the VNI and zero reserved fields into
    /// `buf[..8]`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let b: &mut [u8; HEADER_LEN] = buf
            .get_mut(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::BufferTooSmall)?;
        if self.vni > 0x00ff_ffff {
            return Err(WireError::LengthOverflow);
        }
        let v = self.vni.to_be_bytes();
        *b = [FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7348 §5: flags 0x08, 24 reserved bits, VNI, 8 reserved bits.
    const HDR: [u8; 8] = [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0];

    #[test]
    fn emit_and_deconstruct() {
        let mut b = [0xffu8; 10];
        VxlanRepr { vni: 0x123456 }.emit(&mut b).unwrap();
        assert_eq!(b[..8], HDR);
        let p = VxlanPacket::new_checked(&b[..]).unwrap();
        assert!(p.vni_valid());
        assert_eq!(p.vni(), 0x123456);
        assert_eq!(p.payload(), &[0xff, 0xff]);
        assert_eq!(
            VxlanRepr { vni: 1 << 24 }.emit(&mut b),
            Err(WireError::LengthOverflow)
        );
        assert_eq!(
            VxlanRepr { vni: 1 }.emit(&mut b[..7]),
            Err(WireError::BufferTooSmall)
        );
    }

    #[test]
    fn construct_and_truncate() {
        let mut b = [0u8; 8];
        let mut p = VxlanPacket::new_unchecked(&mut b[..]);
        p.set_flags(FLAG_I);
        p.set_vni(0xff12_3456);
        assert_eq!(b, HDR);
        for len in 0..8 {
            assert!(VxlanPacket::new_checked(&HDR[..len]).is_err());
        }
    }
}
