//! Fuzz target `parse`: `parse_frame`, every wire view and the in-place ICMP
//! answers, on arbitrary frames. Checks that nothing panics, that the
//! summary's offsets stay inside the frame, that the views agree with the
//! summary, that the checksum matches a plain RFC 1071 reference, that the
//! fast-path parsers (`parse_v4`, `parse_fast`) take only what `parse_frame`
//! takes, with the same fields, and that every answer lbfwd builds parses
//! back as what it should be.
#![no_main]

use lbfwd_forwarder::frame::{Frame, HEADROOM};
use lbfwd_forwarder::wire::checksum;
use lbfwd_forwarder::wire::ethernet::{EthernetFrame, VlanTag};
use lbfwd_forwarder::wire::gue::{self, GuePacket};
use lbfwd_forwarder::wire::icmp_reply::{
    frame_echo_reply, frame_too_big, icmpv4_frag_needed, icmpv6_packet_too_big, ICMPV4_ERROR_MAX,
    ICMPV4_ERROR_PREFIX, ICMPV6_ERROR_MAX, ICMPV6_ERROR_PREFIX,
};
use lbfwd_forwarder::wire::icmpv4::Icmpv4Packet;
use lbfwd_forwarder::wire::icmpv6::Icmpv6Packet;
use lbfwd_forwarder::wire::ipv4::Ipv4Packet;
use lbfwd_forwarder::wire::ipv6::{walk_ext_headers, ExtHeader, FragmentHeader, Ipv6Packet};
use lbfwd_forwarder::wire::sctp::SctpPacket;
use lbfwd_forwarder::wire::tcp::TcpPacket;
use lbfwd_forwarder::wire::udp::UdpPacket;
use lbfwd_forwarder::wire::vxlan::VxlanPacket;
use lbfwd_forwarder::wire::{
    parse_fast, parse_frame, parse_v4, IcmpKind, IpProtocol, IpVersion, L4Info, Parsed, ParsedFrame,
};
use libfuzzer_sys::fuzz_target;

fn reference_sum(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        acc += w as u32;
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Calls every accessor of every view over `b` (results discarded: the
/// point is that none panics once `new_checked` passed).
fn views(b: &[u8]) {
    if let Ok(e) = EthernetFrame::new_checked(b) {
        let _ = (
            e.dst_addr(),
            e.src_addr(),
            e.ethertype(),
            e.payload().len(),
            e.l3(),
        );
    }
    if let Ok(t) = VlanTag::new_checked(b) {
        let _ = (t.pcp(), t.dei(), t.vid(), t.inner_ethertype());
    }
    if let Ok(p) = Ipv4Packet::new_checked(b) {
        let _ = (
            p.dscp(),
            p.ecn(),
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
        );
        let _ = (
            p.ttl(),
            p.protocol(),
            p.checksum(),
            p.src_addr(),
            p.dst_addr(),
        );
        let _ = (
            p.options().len(),
            p.payload().len(),
            p.verify_checksum(),
            p.is_fragment(),
        );
    }
    if let Ok(p) = Ipv6Packet::new_checked(b) {
        let _ = (
            p.traffic_class(),
            p.flow_label(),
            p.next_header(),
            p.hop_limit(),
        );
        let _ = (
            p.src_addr(),
            p.dst_addr(),
            p.payload().len(),
            p.upper_layer(),
        );
    }
    let _ = walk_ext_headers(IpProtocol::HopByHop, b);
    if let Ok(h) = ExtHeader::new_checked(b) {
        let _ = (h.next_header(), h.header_len(), h.ah_len(), h.data().len());
    }
    if let Ok(h) = FragmentHeader::new_checked(b) {
        let _ = (h.next_header(), h.frag_offset(), h.more_frags(), h.ident());
    }
    if let Ok(p) = TcpPacket::new_checked(b) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.seq(),
            p.ack(),
            p.flags(),
            p.window(),
        );
        let _ = (p.checksum(), p.payload().len());
    }
    if let Ok(p) = UdpPacket::new_checked(b) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.checksum(),
            p.payload().len(),
        );
        let _ = (
            p.verify_checksum_v4([1; 4], [2; 4]),
            p.verify_checksum_v6(&[1; 16], &[2; 16]),
        );
    }
    if let Ok(p) = SctpPacket::new_checked(b) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.verification_tag(),
            p.checksum(),
            p.payload(),
        );
    }
    if let Ok(p) = Icmpv4Packet::new_checked(b) {
        let _ = (
            p.msg_type(),
            p.msg_code(),
            p.echo_ident(),
            p.echo_seq(),
            p.next_hop_mtu(),
        );
        let _ = (p.is_frag_needed(), p.data().len(), p.verify_checksum());
        if let Ok(e) = p.embedded() {
            let _ = (
                e.ip().src_addr(),
                e.ip().protocol(),
                e.transport().len(),
                e.ports(),
            );
            let _ = (
                e.ip().options().len(),
                e.ip().payload().len(),
                e.ip().verify_checksum(),
            );
        }
    }
    if let Ok(p) = Icmpv6Packet::new_checked(b) {
        let _ = (
            p.msg_type(),
            p.msg_code(),
            p.echo_ident(),
            p.echo_seq(),
            p.mtu(),
        );
        let _ = (p.data().len(), p.verify_checksum(&[1; 16], &[2; 16]));
        if let Ok(e) = p.embedded() {
            let _ = (e.ip().src_addr(), e.upper_layer(), e.ip().payload().len());
        }
    }
    let _ = gue::variant(b);
    if let Ok(g) = GuePacket::new_checked(b) {
        let _ = (
            g.is_control(),
            g.hlen(),
            g.protocol(),
            g.flags(),
            g.options(),
            g.payload(),
        );
    }
    if let Ok(v) = VxlanPacket::new_checked(b) {
        let _ = (v.flags(), v.vni_valid(), v.vni(), v.payload().len());
    }
}

/// The summary agrees with the views over the same bytes.
fn consistent(data: &[u8], p: &Parsed) {
    let (l3, l4, end) = (p.l3_offset as usize, p.l4_offset as usize, p.ip_end());
    assert!(14 <= l3 && l3 <= l4 && l4 <= end && end <= data.len());
    match p.version {
        IpVersion::V4 => {
            let ip = Ipv4Packet::new_checked(&data[l3..]).expect("IPv4 view");
            assert_eq!(ip.total_len() as usize, p.ip_len as usize);
            assert_eq!(ip.src_addr(), p.src_v4());
            assert_eq!(ip.protocol(), p.protocol);
            assert_eq!(ip.is_fragment(), p.frag.is_some());
        }
        IpVersion::V6 => {
            let ip = Ipv6Packet::new_checked(&data[l3..]).expect("IPv6 view");
            assert_eq!(ip.dst_addr(), p.dst);
            let u = ip.upper_layer().expect("ext headers");
            assert_eq!(u.protocol, p.protocol);
            assert_eq!(l3 + 40 + u.offset, l4);
        }
    }
    if let L4Info::Ports(ports) = p.l4 {
        assert!(end - l4 >= 4);
        assert_eq!(u16::from_be_bytes([data[l4], data[l4 + 1]]), ports.src);
    }
    views(&data[l3..end]);
    views(&data[l4..end]);
}

/// What the fast parsers take, `parse_frame` takes with the same fields.
fn fast_parsers_agree(data: &[u8], full: Option<&Parsed>) {
    let fast = parse_fast(data);
    if let Some(e) = parse_v4(data) {
        let q = fast.expect("the express parser took what the fast parser refuses");
        assert_eq!((q.l3, q.version), (14, IpVersion::V4));
        assert_eq!((q.ip_len, q.proto, q.tos), (e.ip_len, e.proto, e.tos));
        assert_eq!(q.src, (0xffff << 32) | u128::from(e.src));
        assert_eq!(q.dst, (0xffff << 32) | u128::from(e.dst));
        assert_eq!((q.sport, q.dport), (e.sport, e.dport));
    }
    let Some(q) = fast else {
        return;
    };
    let p = full.expect("the fast parser took what parse_frame refuses");
    assert_eq!(p.frag, None);
    assert_eq!(
        (p.l3_offset, p.ip_len, p.version),
        (q.l3, q.ip_len, q.version)
    );
    assert_eq!(u8::from(p.protocol), q.proto);
    assert_eq!((p.src, p.dst), (q.src.to_be_bytes(), q.dst.to_be_bytes()));
    assert!(matches!(p.l4, L4Info::Ports(ports) if (ports.src, ports.dst) == (q.sport, q.dport)));
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(checksum::sum(data), reference_sum(data));
    views(data);

    let parsed = parse_frame(data);
    let full = match &parsed {
        Ok(ParsedFrame::Ip(p)) => Some(p),
        _ => None,
    };
    fast_parsers_agree(data, full);
    let Ok(ParsedFrame::Ip(p)) = parsed else {
        return;
    };
    consistent(data, &p);

    let mut buf = vec![0u8; HEADROOM + data.len()];
    buf[HEADROOM..].copy_from_slice(data);

    // Echo reply: succeeds exactly for well-formed echo requests, and the
    // answer parses as an echo reply with the addresses swapped.
    if matches!(p.l4, L4Info::Icmp(i) if matches!(i.kind, IcmpKind::EchoRequest { .. })) {
        let mut f = Frame::new(&mut buf, HEADROOM, data.len());
        if frame_echo_reply(&mut f, &p).is_ok() {
            let Ok(ParsedFrame::Ip(a)) = parse_frame(f.data()) else {
                panic!("echo reply does not parse")
            };
            assert_eq!((a.src, a.dst), (p.dst, p.src));
            let L4Info::Icmp(i) = a.l4 else {
                panic!("not ICMP")
            };
            assert!(matches!(i.kind, IcmpKind::EchoReply { .. }));
        }
        buf[HEADROOM..].copy_from_slice(data);
    }

    // Too big: when built, the answer is a well-formed ICMP error about
    // this packet, within the RFC size limits, with correct checksums.
    let mut f = Frame::new(&mut buf, HEADROOM, data.len());
    if frame_too_big(&mut f, &p, &p.dst, 1280).is_ok() {
        let Ok(ParsedFrame::Ip(a)) = parse_frame(f.data()) else {
            panic!("too-big answer does not parse")
        };
        assert_eq!(a.dst, p.src);
        let L4Info::Icmp(i) = a.l4 else {
            panic!("not ICMP")
        };
        assert!(matches!(
            i.kind,
            IcmpKind::FragNeeded { mtu: 1280 } | IcmpKind::PacketTooBig { mtu: 1280 }
        ));
        let e = i.embedded.expect("embedded header");
        assert_eq!((e.src, e.dst), (p.src, p.dst));
        let ip = &f.data()[a.l3_offset as usize..];
        match a.version {
            IpVersion::V4 => {
                assert!(ip.len() <= ICMPV4_ERROR_MAX);
                assert!(Ipv4Packet::new_checked(ip).unwrap().verify_checksum());
                assert!(Icmpv4Packet::new_checked(&ip[20..])
                    .unwrap()
                    .verify_checksum());
            }
            IpVersion::V6 => {
                assert!(ip.len() <= ICMPV6_ERROR_MAX);
                let v6 = Ipv6Packet::new_checked(ip).unwrap();
                let icmp = Icmpv6Packet::new_checked(&ip[40..]).unwrap();
                assert!(icmp.verify_checksum(&v6.src_addr(), &v6.dst_addr()));
            }
        }
    }

    // The slice builders on raw input never panic.
    let mut raw = vec![0u8; ICMPV6_ERROR_PREFIX + data.len()];
    raw[ICMPV6_ERROR_PREFIX..].copy_from_slice(data);
    let _ = icmpv6_packet_too_big(&mut raw, &[0x20; 16], 1280);
    let mut raw = vec![0u8; ICMPV4_ERROR_PREFIX + data.len()];
    raw[ICMPV4_ERROR_PREFIX..].copy_from_slice(data);
    let _ = icmpv4_frag_needed(&mut raw, [192, 0, 2, 1], 1280);
});
