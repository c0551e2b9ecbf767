//! Ethernet II frames with up to two 802.1Q / 802.1ad VLAN tags.

use super::{Result, WireError};

/// An EtherType. Decoding never fails: unknown values are kept in `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// 0x0800: IPv4.
    Ipv4,
    /// 0x0806: ARP.
    Arp,
    /// 0x86dd: IPv6.
    Ipv6,
    /// 0x8100: 802.1Q VLAN tag (C-tag).
    Vlan,
    /// 0x88a8: 802.1ad service tag (S-tag, "QinQ").
    QinQ,
    /// 0x88cc: LLDP.
    Lldp,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for EtherType {
    #[inline]
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            0x88cc => EtherType::Lldp,
            v => EtherType::Unknown(v),
        }
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(e: EtherType) -> u16 {
        match e {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Lldp => 0x88cc,
            EtherType::Unknown(v) => v,
        }
    }
}

impl EtherType {
    /// True for the tag protocol identifiers lbfwd walks through (0x8100,
    /// 0x88a8).
    #[inline]
    pub fn is_vlan(self) -> bool {
        matches!(self, EtherType::Vlan | EtherType::QinQ)
    }
}

/// A MAC address.
pub type MacAddr = [u8; 6];

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;
    // Within a VLAN tag (the 4 bytes after a TPID).
    pub const TCI: Range<usize> = 0..2;
    pub const INNER_TYPE: Range<usize> = 2..4;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of one VLAN tag (TCI + inner EtherType), after the TPID.
pub const VLAN_TAG_LEN: usize = 4;
/// Most VLAN tags lbfwd walks through.
pub const MAX_VLAN_TAGS: usize = 2;

/// A view over an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks the buffer holds the 14-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::TruncatedEthernet)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }

    /// Source MAC.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    /// The EtherType (or TPID when tagged) right after the addresses.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]]).into()
    }

    /// Walks up to [`MAX_VLAN_TAGS`] tags: returns the EtherType of the
    /// payload, the offset of the payload (the L3 header) and the tags'
    /// VLAN ids (outermost first, unused entries 0).
    pub fn l3(&self) -> Result<(EtherType, usize, VlanIds)> {
        let b = self.buffer.as_ref();
        let mut ty = self.ethertype();
        let mut off = HEADER_LEN;
        let mut ids = VlanIds::default();
        while ty.is_vlan() {
            if ids.count as usize == MAX_VLAN_TAGS {
                return Err(WireError::TooManyVlanTags);
            }
            let tag = b
                .get(off..off + VLAN_TAG_LEN)
                .ok_or(WireError::TruncatedVlan)?;
            let tag = VlanTag::new_unchecked(tag);
            ids.ids[ids.count as usize] = tag.vid();
            ids.count += 1;
            ty = tag.inner_ethertype();
            off += VLAN_TAG_LEN;
        }
        Ok((ty, off, ids))
    }

    /// Bytes after the 14-byte header (including any VLAN tags).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }

    /// Sets the source MAC.
    #[inline]
    pub fn set_src_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(t).to_be_bytes());
    }

    /// Swaps source and destination MAC (for answering a frame in place).
    #[inline]
    pub fn swap_addrs(&mut self) {
        let (d, s) = (self.dst_addr(), self.src_addr());
        self.set_dst_addr(s);
        self.set_src_addr(d);
    }

    /// Bytes after the 14-byte header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// VLAN ids of the tags of a frame, outermost first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VlanIds {
    /// Number of tags (0..=2).
    pub count: u8,
    /// The 12-bit VLAN ids; entries past `count` are 0.
    pub ids: [u16; MAX_VLAN_TAGS],
}

/// A view over one VLAN tag: the 4 bytes after a 0x8100/0x88a8 TPID
/// (TCI, then the inner EtherType).
#[derive(Debug, Clone)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    /// Checks the buffer holds the 4-byte tag.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
            Err(WireError::TruncatedVlan)
        } else {
            Ok(())
        }
    }

    #[inline]
    fn tci(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TCI];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN id (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// EtherType of what follows the tag (another TPID or the L3 type).
    #[inline]
    pub fn inner_ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::INNER_TYPE];
        u16::from_be_bytes([b[0], b[1]]).into()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets PCP, DEI and VLAN id (only the low 12 bits of `vid` are used).
    #[inline]
    pub fn set_tci(&mut self, pcp: u8, dei: bool, vid: u16) {
        let tci = ((pcp as u16 & 7) << 13) | ((dei as u16) << 12) | (vid & 0x0fff);
        self.buffer.as_mut()[field::TCI].copy_from_slice(&tci.to_be_bytes());
    }

    /// Sets the inner EtherType.
    #[inline]
    pub fn set_inner_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[field::INNER_TYPE].copy_from_slice(&u16::from(t).to_be_bytes());
    }
}

/// An untagged Ethernet II header to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// EtherType.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Bytes [`emit`](Self::emit) writes.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Writes the header into `buf[..14]`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let b: &mut [u8; HEADER_LEN] = buf
            .get_mut(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::BufferTooSmall)?;
        b[field::DST].copy_from_slice(&self.dst);
        b[field::SRC].copy_from_slice(&self.src);
        b[field::ETHERTYPE].copy_from_slice(&u16::from(self.ethertype).to_be_bytes());
        Ok(())
    }

    /// Reads the outer 14-byte header of `frame`.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Self {
        EthernetRepr {
            dst: frame.dst_addr(),
            src: frame.src_addr(),
            ethertype: frame.ethertype(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QINQ: [u8; 26] = [
        0x02, 0, 0, 0, 0, 0x01, // dst
        0x02, 0, 0, 0, 0, 0x02, // src
        0x88, 0xa8, 0x20, 0x64, // S-tag: pcp 1, vid 100
        0x81, 0x00, 0x10, 0xc8, // C-tag: dei, vid 200
        0x08, 0x00, // IPv4
        0x45, 0, 0, 20,
    ];

    #[test]
    fn deconstruct_double_tagged() {
        let f = EthernetFrame::new_checked(&QINQ[..]).unwrap();
        assert_eq!(f.dst_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src_addr(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.ethertype(), EtherType::QinQ);
        let (ty, off, ids) = f.l3().unwrap();
        assert_eq!((ty, off), (EtherType::Ipv4, 22));
        assert_eq!(
            ids,
            VlanIds {
                count: 2,
                ids: [100, 200]
            }
        );
        let s = VlanTag::new_checked(&QINQ[14..18]).unwrap();
        assert_eq!((s.pcp(), s.dei(), s.vid()), (1, false, 100));
        let c = VlanTag::new_checked(&QINQ[18..22]).unwrap();
        assert_eq!((c.pcp(), c.dei(), c.vid()), (0, true, 200));
    }

    #[test]
    fn construct_tag_and_header() {
        let mut buf = [0u8; 22];
        EthernetRepr {
            dst: [2, 0, 0, 0, 0, 1],
            src: [2, 0, 0, 0, 0, 2],
            ethertype: EtherType::QinQ,
        }
        .emit(&mut buf)
        .unwrap();
        let mut t = VlanTag::new_unchecked(&mut buf[14..18]);
        t.set_tci(1, false, 100);
        t.set_inner_ethertype(EtherType::Vlan);
        let mut t = VlanTag::new_unchecked(&mut buf[18..22]);
        t.set_tci(0, true, 200);
        t.set_inner_ethertype(EtherType::Ipv4);
        assert_eq!(buf[..], QINQ[..22]);
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.swap_addrs();
        assert_eq!(f.dst_addr(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(
            EthernetRepr::emit(&EthernetRepr::parse(&f), &mut [0u8; 13]),
            Err(WireError::BufferTooSmall)
        );
    }

    #[test]
    fn truncated_at_every_length() {
        for len in 0..QINQ.len() {
            let r = EthernetFrame::new_checked(&QINQ[..len]).and_then(|f| f.l3().map(|x| x.1));
            match len {
                0..=13 => assert_eq!(r, Err(WireError::TruncatedEthernet), "len {len}"),
                14..=21 => assert_eq!(r, Err(WireError::TruncatedVlan), "len {len}"),
                _ => assert_eq!(r, Ok(22)),
            }
        }
    }

    #[test]
    fn three_tags_are_refused() {
        let mut f = QINQ;
        f[20..22].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            EthernetFrame::new_checked(&f[..])
                .unwrap()
                .l3()
                .map(|x| x.1),
            Err(WireError::TooManyVlanTags)
        );
        for v in [0x0800u16, 0x0806, 0x86dd, 0x8100, 0x88a8, 0x88cc, 0x1234] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
    }
}
