//! ARP for IPv4 over Ethernet (RFC 826): a view over the 28-byte packet
//! that follows the Ethernet header (and its VLAN tags), and its emitter.

use super::WireError;

type Result<T> = core::result::Result<T, WireError>;

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an ARP packet for IPv4 over Ethernet.
pub const ARP_LEN: usize = 28;

/// The ARP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOperation {
    /// 1: request.
    Request,
    /// 2: reply.
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            n => ArpOperation::Unknown(n),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(v: ArpOperation) -> u16 {
        match v {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(n) => n,
        }
    }
}

/// A view over an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` once [`Self::check_len`] passed.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The buffer holds a whole ARP packet (else [`WireError::Unexpected`]).
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < ARP_LEN {
            // A cut-off ARP packet is not one lbfwd can read.
            Err(WireError::Unexpected)
        } else {
            Ok(())
        }
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Whether it is IPv4 over Ethernet (hardware type 1, protocol 0x0800,
    /// address lengths 6 and 4): the only kind lbfwd answers.
    pub fn is_ethernet_ipv4(&self) -> bool {
        let b = self.b();
        b[field::HTYPE] == [0, 1]
            && b[field::PTYPE] == [8, 0]
            && b[field::HLEN] == 6
            && b[field::PLEN] == 4
    }

    /// The operation.
    pub fn operation(&self) -> ArpOperation {
        let b = self.b();
        u16::from_be_bytes([b[field::OPER.start], b[field::OPER.start + 1]]).into()
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> [u8; 6] {
        self.b()[field::SHA].try_into().unwrap_or_default()
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> [u8; 4] {
        self.b()[field::SPA].try_into().unwrap_or_default()
    }

    /// Target hardware address.
    pub fn target_mac(&self) -> [u8; 6] {
        self.b()[field::THA].try_into().unwrap_or_default()
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> [u8; 4] {
        self.b()[field::TPA].try_into().unwrap_or_default()
    }
}

/// An ARP packet's fields, for emitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Sender protocol address.
    pub sender_ip: [u8; 4],
    /// Target hardware address.
    pub target_mac: [u8; 6],
    /// Target protocol address.
    pub target_ip: [u8; 4],
}

impl ArpRepr {
    /// Writes the packet into `out` (at least [`ARP_LEN`] bytes).
    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        let out = out.get_mut(..ARP_LEN).ok_or(WireError::BufferTooSmall)?;
        out[field::HTYPE].copy_from_slice(&[0, 1]);
        out[field::PTYPE].copy_from_slice(&[8, 0]);
        out[field::HLEN] = 6;
        out[field::PLEN] = 4;
        out[field::OPER].copy_from_slice(&u16::from(self.operation).to_be_bytes());
        out[field::SHA].copy_from_slice(&self.sender_mac);
        out[field::SPA].copy_from_slice(&self.sender_ip);
        out[field::THA].copy_from_slice(&self.target_mac);
        out[field::TPA].copy_from_slice(&self.target_ip);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A who-has 10.0.0.1 tell 10.0.0.2 from 02:00:00:00:00:02.
    const REQUEST: [u8; 28] = [
        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1,
    ];

    #[test]
    fn parses_a_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert!(p.is_ethernet_ipv4());
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(p.sender_mac(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(p.sender_ip(), [10, 0, 0, 2]);
        assert_eq!(p.target_mac(), [0; 6]);
        assert_eq!(p.target_ip(), [10, 0, 0, 1]);
    }

    #[test]
    fn emit_parses_back() {
        let repr = ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: [2, 0, 0, 0, 0, 2],
            sender_ip: [10, 0, 0, 2],
            target_mac: [0; 6],
            target_ip: [10, 0, 0, 1],
        };
        let mut out = [0u8; 28];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, REQUEST);
        assert_eq!(ArpOperation::from(7), ArpOperation::Unknown(7));
        assert_eq!(u16::from(ArpOperation::Reply), 2);
    }

    #[test]
    fn truncated_is_an_error() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).unwrap_err(),
            WireError::Unexpected
        );
        assert!(ArpRepr {
            operation: ArpOperation::Reply,
            sender_mac: [0; 6],
            sender_ip: [0; 4],
            target_mac: [0; 6],
            target_ip: [0; 4],
        }
        .emit(&mut [0u8; 27])
        .is_err());
    }
}
