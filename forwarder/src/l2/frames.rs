//! The frames of layer-2 announcement: the in-place answers to an ARP
//! request and to a neighbour solicitation for a VIP, and the gratuitous
//! ARP and unsolicited neighbour advertisement sent when announcing turns
//! on. No allocation: answers are written over the request, gratuitous
//! frames into a fixed array.

use crate::wire::arp::{ArpOperation, ArpPacket, ArpRepr, ARP_LEN};
use crate::wire::checksum;

/// EtherType ARP.
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
/// EtherType IPv6.
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
/// ICMPv6 neighbour solicitation.
pub const ND_SOLICIT: u8 = 135;
/// ICMPv6 neighbour advertisement.
pub const ND_ADVERT: u8 = 136;
/// IPPROTO_ICMPV6.
const ICMPV6: u8 = 58;
/// Neighbour advertisement flags: Solicited.
const NA_SOLICITED: u8 = 0x40;
/// Neighbour advertisement flags: Override.
const NA_OVERRIDE: u8 = 0x20;
/// Length of a neighbour advertisement with a target link-layer address
/// option: 4 (type, code, checksum) + 4 (flags) + 16 (target) + 8 (option).
const NA_LEN: usize = 32;
/// The all-nodes multicast address ff02::1.
const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// The Ethernet address of ff02::1.
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
/// Minimum Ethernet frame without FCS.
const MIN_FRAME: usize = 60;

/// A frame built off the fast path (gratuitous ARP or unsolicited NA),
/// small enough to pass through a bounded queue by value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmallFrame {
    len: u8,
    bytes: [u8; 96],
}

impl SmallFrame {
    /// The frame's bytes.
    pub fn data(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The gratuitous ARP for `vip` from `mac` (an announcement in RFC 5227's
/// form: a broadcast request whose sender and target address are the VIP).
pub fn gratuitous_arp(mac: [u8; 6], vip: [u8; 4]) -> SmallFrame {
    let mut f = SmallFrame {
        len: MIN_FRAME as u8,
        bytes: [0; 96],
    };
    f.bytes[0..6].copy_from_slice(&[0xff; 6]);
    f.bytes[6..12].copy_from_slice(&mac);
    f.bytes[12..14].copy_from_slice(&ETHERTYPE_ARP);
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        sender_mac: mac,
        sender_ip: vip,
        target_mac: [0; 6],
        target_ip: vip,
    };
    // 96 bytes hold 14 + 28: cannot fail.
    let _ = repr.emit(&mut f.bytes[14..14 + ARP_LEN]);
    f
}

/// The unsolicited neighbour advertisement for `vip` from `mac` to all
/// nodes, with the Override flag (neighbours replace the MAC they have).
pub fn unsolicited_na(mac: [u8; 6], vip: [u8; 16]) -> SmallFrame {
    let mut f = SmallFrame {
        len: (14 + 40 + NA_LEN) as u8,
        bytes: [0; 96],
    };
    f.bytes[0..6].copy_from_slice(&ALL_NODES_MAC);
    f.bytes[6..12].copy_from_slice(&mac);
    f.bytes[12..14].copy_from_slice(&ETHERTYPE_IPV6);
    write_na(
        &mut f.bytes[14..14 + 40 + NA_LEN],
        mac,
        vip,
        ALL_NODES,
        NA_OVERRIDE,
    );
    f
}

/// Writes IPv6 header + neighbour advertisement (target `vip`, target
/// link-layer address `mac`) from `vip` to `dst` into `out` (72 bytes).
fn write_na(out: &mut [u8], mac: [u8; 6], vip: [u8; 16], dst: [u8; 16], flags: u8) {
    out[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    out[4..6].copy_from_slice(&(NA_LEN as u16).to_be_bytes());
    out[6] = ICMPV6;
    out[7] = 255;
    out[8..24].copy_from_slice(&vip);
    out[24..40].copy_from_slice(&dst);
    let icmp = &mut out[40..40 + NA_LEN];
    icmp.fill(0);
    icmp[0] = ND_ADVERT;
    icmp[4] = flags;
    icmp[8..24].copy_from_slice(&vip);
    icmp[24] = 2; // target link-layer address
    icmp[25] = 1; // in units of 8 bytes
    icmp[26..32].copy_from_slice(&mac);
    let ph = checksum::pseudo_header_v6(&vip, &dst, ICMPV6, NA_LEN as u32);
    let c = checksum::checksum_with(ph, icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
}

/// What an ARP request asks, when lbfwd may answer it: the target address
/// (`None`: not an IPv4-over-Ethernet request, or an announcement of the
/// sender's own address).
#[inline]
pub fn arp_request_target(arp: &[u8]) -> Option<[u8; 4]> {
    let p = ArpPacket::new_checked(arp).ok()?;
    if !p.is_ethernet_ipv4() || p.operation() != ArpOperation::Request {
        return None;
    }
    let target = p.target_ip();
    (p.sender_ip() != target).then_some(target)
}

/// Turns the ARP request in `frame` (its ARP packet at `l3`) into the reply
/// from `mac`, in place: back to the asker, "`target` is at `mac`".
pub fn answer_arp(frame: &mut [u8], l3: usize, mac: [u8; 6]) -> bool {
    let Some(arp) = frame.get(l3..l3 + ARP_LEN) else {
        return false;
    };
    let p = ArpPacket::new_unchecked(arp);
    let repr = ArpRepr {
        operation: ArpOperation::Reply,
        sender_mac: mac,
        sender_ip: p.target_ip(),
        target_mac: p.sender_mac(),
        target_ip: p.sender_ip(),
    };
    let asker: [u8; 6] = frame[6..12].try_into().unwrap_or_default();
    frame[0..6].copy_from_slice(&asker);
    frame[6..12].copy_from_slice(&mac);
    repr.emit(&mut frame[l3..l3 + ARP_LEN]).is_ok()
}

/// What a neighbour solicitation asks, when lbfwd may answer it: the target
/// address. `ip` is the IPv6 packet (header at 0), `icmp` the offset of its
/// ICMPv6 message. Checks RFC 4861's rules: hop limit 255, code 0, length,
/// a unicast target.
#[inline]
pub fn solicitation_target(ip: &[u8], icmp: usize) -> Option<[u8; 16]> {
    let m = ip.get(icmp..)?;
    if ip.get(7) != Some(&255) || m.len() < 24 || m[0] != ND_SOLICIT || m[1] != 0 {
        return None;
    }
    let target: [u8; 16] = m[8..24].try_into().ok()?;
    (target[0] != 0xff).then_some(target)
}

/// Turns the neighbour solicitation in `frame` (IPv6 header at `l3`) for
/// `target` into the solicited advertisement from `mac`, in place (the
/// frame is resized to hold it; extension headers are dropped). A
/// solicitation from `::` (duplicate address detection) is answered to all
/// nodes. Returns the answer's frame length; `None` when `frame` (grown by
/// the caller to the room it has) is shorter than that.
pub fn answer_ns(frame: &mut [u8], l3: usize, target: [u8; 16], mac: [u8; 6]) -> Option<usize> {
    let end = l3 + 40 + NA_LEN;
    let src: [u8; 16] = frame.get(l3 + 8..l3 + 24)?.try_into().ok()?;
    let asker: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
    let out = frame.get_mut(l3..end)?;
    let (dst, dst_mac, flags) = if src == [0; 16] {
        (ALL_NODES, ALL_NODES_MAC, NA_OVERRIDE)
    } else {
        (src, asker, NA_SOLICITED | NA_OVERRIDE)
    };
    write_na(out, mac, target, dst, flags);
    frame[0..6].copy_from_slice(&dst_mac);
    frame[6..12].copy_from_slice(&mac);
    Some(end)
}

/// The solicited-node multicast address of `addr` (ff02::1:ffXX:XXXX).
pub fn solicited_node(addr: [u8; 16]) -> [u8; 16] {
    let mut g = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    g[13..16].copy_from_slice(&addr[13..16]);
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0xaa, 0, 0, 0, 1];
    const ASKER: [u8; 6] = [2, 0xbb, 0, 0, 0, 2];

    fn arp_request(target: [u8; 4], sender: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&ASKER);
        f[12..14].copy_from_slice(&ETHERTYPE_ARP);
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: ASKER,
            sender_ip: sender,
            target_mac: [0; 6],
            target_ip: target,
        }
        .emit(&mut f[14..])
        .unwrap();
        f
    }

    #[test]
    fn an_arp_request_becomes_the_reply() {
        let mut f = arp_request([10, 0, 0, 1], [10, 0, 0, 2]);
        assert_eq!(arp_request_target(&f[14..]), Some([10, 0, 0, 1]));
        assert!(answer_arp(&mut f, 14, MAC));
        assert_eq!(&f[0..6], &ASKER);
        assert_eq!(&f[6..12], &MAC);
        let p = ArpPacket::new_checked(&f[14..]).unwrap();
        assert_eq!(p.operation(), ArpOperation::Reply);
        assert_eq!(p.sender_mac(), MAC);
        assert_eq!(p.sender_ip(), [10, 0, 0, 1]);
        assert_eq!(p.target_mac(), ASKER);
        assert_eq!(p.target_ip(), [10, 0, 0, 2]);
    }

    #[test]
    fn announcements_and_replies_are_not_answered() {
        let f = arp_request([10, 0, 0, 1], [10, 0, 0, 1]);
        assert_eq!(arp_request_target(&f[14..]), None);
        let mut f = arp_request([10, 0, 0, 1], [10, 0, 0, 2]);
        f[14 + 7] = 2;
        assert_eq!(arp_request_target(&f[14..]), None);
        assert_eq!(arp_request_target(&f[14..30]), None);
    }

    #[test]
    fn gratuitous_arp_announces_the_vip() {
        let g = gratuitous_arp(MAC, [10, 0, 0, 1]);
        let d = g.data();
        assert_eq!(d.len(), 60);
        assert_eq!(&d[0..6], &[0xff; 6]);
        let p = ArpPacket::new_checked(&d[14..]).unwrap();
        assert_eq!(p.sender_ip(), [10, 0, 0, 1]);
        assert_eq!(p.target_ip(), [10, 0, 0, 1]);
        assert_eq!(p.sender_mac(), MAC);
    }

    fn vip6() -> [u8; 16] {
        "2001:db8::10"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    }

    fn solicitation(src: [u8; 16]) -> Vec<u8> {
        let target = vip6();
        let dst = solicited_node(target);
        let mut f = vec![0u8; 14 + 40 + 32];
        f[0..6].copy_from_slice(&[0x33, 0x33, 0xff, 0, 0, 0x10]);
        f[6..12].copy_from_slice(&ASKER);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6);
        let ip = &mut f[14..];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&32u16.to_be_bytes());
        ip[6] = ICMPV6;
        ip[7] = 255;
        ip[8..24].copy_from_slice(&src);
        ip[24..40].copy_from_slice(&dst);
        let m = &mut ip[40..];
        m[0] = ND_SOLICIT;
        m[8..24].copy_from_slice(&target);
        m[24] = 1;
        m[25] = 1;
        m[26..32].copy_from_slice(&ASKER);
        f
    }

    fn icmp_ok(ip: &[u8]) -> bool {
        let src: [u8; 16] = ip[8..24].try_into().unwrap();
        let dst: [u8; 16] = ip[24..40].try_into().unwrap();
        let len = u16::from_be_bytes([ip[4], ip[5]]) as usize;
        let ph = checksum::pseudo_header_v6(&src, &dst, ICMPV6, len as u32);
        checksum::checksum_with(ph, &ip[40..40 + len]) == 0
    }

    #[test]
    fn a_solicitation_becomes_the_solicited_advertisement() {
        let asker_ip: [u8; 16] = "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let mut f = solicitation(asker_ip);
        assert_eq!(solicitation_target(&f[14..], 40), Some(vip6()));
        let len = answer_ns(&mut f, 14, vip6(), MAC).unwrap();
        assert_eq!(len, 86);
        assert_eq!(&f[0..6], &ASKER);
        assert_eq!(&f[6..12], &MAC);
        let ip = &f[14..len];
        assert_eq!(&ip[8..24], &vip6());
        assert_eq!(&ip[24..40], &asker_ip);
        assert_eq!(ip[40], ND_ADVERT);
        assert_eq!(ip[44], NA_SOLICITED | NA_OVERRIDE);
        assert_eq!(&ip[48..64], &vip6());
        assert_eq!(&ip[64..66], &[2, 1]);
        assert_eq!(&ip[66..72], &MAC);
        assert!(icmp_ok(ip));
    }

    #[test]
    fn duplicate_address_detection_is_answered_to_all_nodes() {
        let mut f = solicitation([0; 16]);
        let len = answer_ns(&mut f, 14, vip6(), MAC).unwrap();
        assert_eq!(&f[0..6], &ALL_NODES_MAC);
        assert_eq!(&f[14 + 24..14 + 40], &ALL_NODES);
        assert_eq!(f[14 + 44], NA_OVERRIDE);
        assert!(icmp_ok(&f[14..len]));
        // Too little room for the answer: nothing.
        let mut short = solicitation([0; 16]);
        short.truncate(80);
        assert_eq!(answer_ns(&mut short, 14, vip6(), MAC), None);
    }

    #[test]
    fn bad_solicitations_are_not_answered() {
        let mut f = solicitation([0; 16]);
        f[14 + 7] = 64; // hop limit not 255: came through a router
        assert_eq!(solicitation_target(&f[14..], 40), None);
        let mut f = solicitation([0; 16]);
        f[14 + 40 + 8] = 0xff; // multicast target
        assert_eq!(solicitation_target(&f[14..], 40), None);
        let f = solicitation([0; 16]);
        assert_eq!(solicitation_target(&f[14..70], 40), None);
    }

    #[test]
    fn unsolicited_na_overrides_for_all_nodes() {
        let g = unsolicited_na(MAC, vip6());
        let d = g.data();
        assert_eq!(d.len(), 86);
        assert_eq!(&d[0..6], &ALL_NODES_MAC);
        assert_eq!(d[14 + 7], 255);
        assert_eq!(d[14 + 40], ND_ADVERT);
        assert_eq!(d[14 + 44], NA_OVERRIDE);
        assert!(icmp_ok(&d[14..]));
        assert_eq!(
            solicited_node(vip6()),
            "ff02::1:ff00:10"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
    }
}
