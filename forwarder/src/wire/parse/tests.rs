//! `parse_frame` on fixtures, every error and random damage.

use super::*;
use crate::wire::fixtures as fx;

fn ip(frame: &[u8]) -> Parsed {
    match parse_frame(frame) {
        Ok(ParsedFrame::Ip(p)) => p,
        other => panic!("not an IP packet: {other:?}"),
    }
}

const C4: [u8; 4] = [198, 51, 100, 20];
const V4: [u8; 4] = [203, 0, 113, 10];

fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

#[test]
fn tcp4_with_padding() {
    let p = ip(&fx::TCP4_64);
    assert_eq!(p.vlans.count, 0);
    assert_eq!(p.l3_offset, 14);
    assert_eq!(p.version, IpVersion::V4);
    assert_eq!((p.src_v4(), p.dst_v4()), (C4, V4));
    assert_eq!(p.src, v4_mapped(C4));
    assert_eq!(p.dst_ip(), IpAddr::from(V4));
    assert_eq!(p.ip_len, 40);
    assert_eq!(p.ip_end(), 54); // 6 bytes of padding after it
    assert_eq!((p.ttl, p.df), (61, true));
    assert_eq!(p.protocol, IpProtocol::Tcp);
    assert_eq!(p.l4_offset, 34);
    assert_eq!(p.frag, None);
    assert_eq!(
        p.ports(),
        Some(Ports {
            src: 40000,
            dst: 443
        })
    );
    assert!(p.l4_present());
}

#[test]
fn tcp6_and_ext_headers() {
    let p = ip(&fx::TCP6);
    assert_eq!(p.version, IpVersion::V6);
    assert_eq!(p.src, v6("2001:db8:c::20"));
    assert_eq!(p.dst_ip(), "2001:db8:f::10".parse::<IpAddr>().unwrap());
    assert_eq!((p.ttl, p.df, p.ip_len, p.l4_offset), (60, true, 60, 54));
    assert_eq!(
        p.ports(),
        Some(Ports {
            src: 40001,
            dst: 80
        })
    );

    let p = ip(&fx::IP6_EXT_TCP);
    assert_eq!(p.protocol, IpProtocol::Tcp);
    // HBH 8 + routing 8 + dest opts 8.
    assert_eq!(p.l4_offset, 14 + 40 + 24);
    assert_eq!(p.ports(), Some(Ports { src: 1234, dst: 22 }));
}

#[test]
fn authentication_header_is_walked_in_4_byte_units() {
    // TCP6 with an AH (payload len 4: (4 + 2) * 4 = 24 bytes) inserted.
    let mut f = fx::TCP6.to_vec();
    let mut ah = [0u8; 24];
    ah[0] = 6;
    ah[1] = 4;
    f.splice(54..54, ah);
    f[20] = 51;
    let pl = u16::from_be_bytes([f[18], f[19]]) + 24;
    f[18..20].copy_from_slice(&pl.to_be_bytes());
    let p = ip(&f);
    assert_eq!((p.protocol, p.l4_offset), (IpProtocol::Tcp, 54 + 24));
    assert_eq!(
        p.ports(),
        Some(Ports {
            src: 40001,
            dst: 80
        })
    );
    // ESP is an upper layer: not walked, no ports.
    f[20] = 50;
    let p = ip(&f);
    assert_eq!((p.protocol, p.l4), (IpProtocol::Esp, L4Info::Other));
}

#[test]
fn vlan_tags() {
    let p = ip(&fx::UDP4_QINQ);
    assert_eq!(
        p.vlans,
        VlanIds {
            count: 2,
            ids: [100, 200]
        }
    );
    assert_eq!(p.l3_offset, 22);
    assert_eq!(p.ports(), Some(Ports { src: 5353, dst: 53 }));
    let p = ip(&fx::UDP4_VLAN);
    assert_eq!(
        p.vlans,
        VlanIds {
            count: 1,
            ids: [100, 0]
        }
    );
    assert_eq!((p.l3_offset, p.l4_offset), (18, 38));
}

#[test]
fn sctp_options_and_not_ip() {
    let p = ip(&fx::SCTP4);
    assert_eq!(p.protocol, IpProtocol::Sctp);
    assert_eq!(
        p.ports(),
        Some(Ports {
            src: 2905,
            dst: 3868
        })
    );
    let p = ip(&fx::IP4_OPTS_UDP);
    assert_eq!(p.l4_offset, 14 + 24);
    assert_eq!(p.ports(), Some(Ports { src: 1, dst: 2 }));
    assert_eq!(
        parse_frame(&fx::ARP),
        Ok(ParsedFrame::NotIp(NotIp {
            ethertype: EtherType::Arp,
            l3_offset: 14,
            vlans: VlanIds::default()
        }))
    );
}

#[test]
fn ipv4_fragments() {
    let p = ip(&fx::FRAG4_FIRST);
    let f = p.frag.unwrap();
    assert_eq!(
        (f.id, f.offset, f.more, f.is_first()),
        (0xbeef, 0, true, true)
    );
    assert_eq!(
        p.ports(),
        Some(Ports {
            src: 7000,
            dst: 8000
        })
    );
    let p = ip(&fx::FRAG4_LAST);
    let f = p.frag.unwrap();
    assert_eq!((f.id, f.more, f.is_first()), (0xbeef, false, false));
    assert_eq!(f.offset, 1000);
    assert_eq!(p.protocol, IpProtocol::Udp);
    assert_eq!(p.l4, L4Info::Absent);
    assert!(!p.l4_present());
}

#[test]
fn ipv6_fragments() {
    let p = ip(&fx::FRAG6_FIRST);
    let f = p.frag.unwrap();
    assert_eq!((f.id, f.offset, f.more), (0x12345678, 0, true));
    assert_eq!(p.protocol, IpProtocol::Udp);
    assert_eq!(p.l4_offset, 14 + 40 + 8 + 8 + 8);
    assert_eq!(
        p.ports(),
        Some(Ports {
            src: 7000,
            dst: 8000
        })
    );
    let p = ip(&fx::FRAG6_LATER);
    let f = p.frag.unwrap();
    assert_eq!((f.id, f.offset, f.more), (0x12345678, 1000, false));
    assert_eq!(p.protocol, IpProtocol::Ipv6Opts);
    assert_eq!(p.l4, L4Info::Absent);
    assert_eq!(p.l4_offset, 14 + 48);
}

#[test]
fn first_fragment_without_whole_transport_header() {
    // An IPv4 first fragment carrying only 8 bytes of a TCP header.
    let mut f = fx::TCP4_64;
    f[16..18].copy_from_slice(&28u16.to_be_bytes()); // total length 28
    f[20] = 0x20; // MF
    let p = ip(&f);
    assert!(p.frag.unwrap().is_first());
    assert_eq!(p.l4, L4Info::Absent);
    // The same cut without MF is a truncated TCP header.
    f[20] = 0x40;
    assert_eq!(parse_frame(&f), Err(WireError::TruncatedTcp));
}

#[test]
fn icmp_errors_carry_the_reply_tuple() {
    let p = ip(&fx::FRAG_NEEDED4);
    let L4Info::Icmp(i) = p.l4 else {
        panic!("{:?}", p.l4)
    };
    assert_eq!((i.ty, i.code), (3, 4));
    assert_eq!(i.kind, IcmpKind::FragNeeded { mtu: 1400 });
    let e = i.embedded.unwrap();
    assert_eq!((e.src, e.dst), (v4_mapped(V4), v4_mapped(C4)));
    assert_eq!(e.protocol, IpProtocol::Tcp);
    assert_eq!(
        e.ports,
        Some(Ports {
            src: 443,
            dst: 40000
        })
    );
    let r = e.reversed();
    assert_eq!((r.src, r.dst), (v4_mapped(C4), v4_mapped(V4)));
    assert_eq!(
        r.ports,
        Some(Ports {
            src: 40000,
            dst: 443
        })
    );

    let p = ip(&fx::PTB6);
    let L4Info::Icmp(i) = p.l4 else { panic!() };
    assert_eq!(i.kind, IcmpKind::PacketTooBig { mtu: 1280 });
    let e = i.embedded.unwrap();
    assert_eq!((e.src, e.dst), (v6("2001:db8:f::10"), v6("2001:db8:c::20")));
    assert_eq!(
        (e.protocol, e.ports),
        (IpProtocol::Udp, Some(Ports { src: 53, dst: 5353 }))
    );

    let p = ip(&fx::TIME_EXCEEDED6);
    let L4Info::Icmp(i) = p.l4 else { panic!() };
    assert_eq!(i.kind, IcmpKind::TimeExceeded);
    assert_eq!(
        i.embedded.unwrap().ports,
        Some(Ports { src: 53, dst: 5353 })
    );
}

#[test]
fn echo_requests() {
    let p = ip(&fx::ECHO4);
    assert_eq!(
        p.l4,
        L4Info::Icmp(IcmpInfo {
            ty: 8,
            code: 0,
            kind: IcmpKind::EchoRequest {
                ident: 0x1234,
                seq: 7
            },
            embedded: None
        })
    );
    let p = ip(&fx::ECHO6);
    assert_eq!(p.vlans.count, 1);
    let L4Info::Icmp(i) = p.l4 else { panic!() };
    assert_eq!(
        i.kind,
        IcmpKind::EchoRequest {
            ident: 0x1234,
            seq: 7
        }
    );
}

/// Every prefix of every fixture parses to a result (never a panic);
/// cuts inside the headers give the reason of the layer that was cut.
#[test]
fn truncated_at_every_length() {
    let all: &[&[u8]] = &[
        &fx::TCP4_64,
        &fx::TCP6,
        &fx::UDP4_QINQ,
        &fx::UDP4_VLAN,
        &fx::SCTP4,
        &fx::ARP,
        &fx::IP4_OPTS_UDP,
        &fx::FRAG4_FIRST,
        &fx::FRAG4_LAST,
        &fx::FRAG6_FIRST,
        &fx::FRAG6_LATER,
        &fx::IP6_EXT_TCP,
        &fx::FRAG_NEEDED4,
        &fx::PTB6,
        &fx::TIME_EXCEEDED6,
        &fx::ECHO4,
        &fx::ECHO6,
        &fx::BIG4,
        &fx::BIG6,
    ];
    for f in all {
        let full = parse_frame(f);
        assert!(full.is_ok(), "{full:?}");
        for len in 0..f.len() {
            let r = parse_frame(&f[..len]);
            if len < 14 {
                assert_eq!(r, Err(WireError::TruncatedEthernet));
            }
            if let Ok(ParsedFrame::Ip(p)) = r {
                // Only the Ethernet padding may be cut.
                assert!(p.ip_end() <= len, "len {len}");
            }
        }
    }
    assert_eq!(
        parse_frame(&fx::UDP4_QINQ[..20]),
        Err(WireError::TruncatedVlan)
    );
    assert_eq!(
        parse_frame(&fx::UDP4_QINQ[..30]),
        Err(WireError::TruncatedIpv4)
    );
    assert_eq!(
        parse_frame(&fx::UDP4_QINQ[..50]),
        Err(WireError::IpLengthBeyondFrame)
    );
    assert_eq!(parse_frame(&fx::TCP6[..40]), Err(WireError::TruncatedIpv6));
}

#[test]
fn huge_ipv6_payload_does_not_overflow_offsets() {
    let mut f = fx::TCP6.to_vec();
    f[18..20].copy_from_slice(&0xffffu16.to_be_bytes());
    f.resize(14 + 40 + 0xffff, 0);
    assert_eq!(parse_frame(&f), Err(WireError::LengthOverflow));
    let mut f = fx::TCP6.to_vec();
    let len = 0xffff - 14 - 40;
    f[18..20].copy_from_slice(&(len as u16).to_be_bytes());
    f.resize(14 + 40 + len, 0);
    assert_eq!(ip(&f).ip_end(), 0xffff);
}

#[test]
fn malformed_headers_name_their_reason() {
    let cases: &[(&[u8], usize, u8, WireError)] = &[
        (&fx::TCP4_64, 14, 0x65, WireError::BadIpVersion),
        (&fx::TCP4_64, 14, 0x44, WireError::BadIpv4HeaderLen),
        (&fx::TCP4_64, 17, 19, WireError::BadIpv4TotalLen),
        (&fx::TCP4_64, 16, 0x10, WireError::IpLengthBeyondFrame),
        (&fx::TCP4_64, 46, 0x40, WireError::TruncatedTcp), // data offset 4
        (&fx::TCP4_64, 46, 0xf0, WireError::TruncatedTcp), // past the end
        (&fx::UDP4_VLAN, 42, 7, WireError::TruncatedUdp),  // UDP length 7
        (&fx::UDP4_VLAN, 42, 200, WireError::TruncatedUdp), // past the end
        (&fx::TCP6, 14, 0x40, WireError::BadIpVersion),
        (&fx::TCP6, 18, 0x10, WireError::IpLengthBeyondFrame),
        (&fx::IP6_EXT_TCP, 54 + 8, 0, WireError::BadExtHeaderChain), // HBH second
        (&fx::IP6_EXT_TCP, 54 + 9, 40, WireError::TruncatedExtHeader),
        (&fx::FRAG_NEEDED4, 42, 0x65, WireError::BadIcmpEmbedded),
        (&fx::PTB6, 62, 0x40, WireError::BadIcmpEmbedded),
    ];
    for &(frame, at, byte, want) in cases {
        let mut f = frame.to_vec();
        f[at] = byte;
        assert_eq!(parse_frame(&f), Err(want), "byte {at} = {byte:#x}");
    }
    // Three VLAN tags.
    let mut f = fx::UDP4_QINQ.to_vec();
    f.splice(12..12, [0x81, 0x00, 0x00, 0x01]);
    assert_eq!(parse_frame(&f), Err(WireError::TooManyVlanTags));
    // A fragment whose data is not a multiple of 8 while MF is set.
    let mut f = fx::FRAG4_FIRST.to_vec();
    let total = u16::from_be_bytes([f[16], f[17]]) - 1;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    assert_eq!(parse_frame(&f), Err(WireError::BadFragment));
    // A fragment reaching past 65535 bytes ("ping of death").
    let mut f = fx::FRAG4_LAST.to_vec();
    f[20..22].copy_from_slice(&0x1fffu16.to_be_bytes());
    assert_eq!(parse_frame(&f), Err(WireError::BadFragment));
    // Two fragment headers.
    let mut f = fx::FRAG6_FIRST.to_vec();
    f[14 + 48 + 8] = 44;
    f[14 + 48] = 44;
    assert_eq!(parse_frame(&f), Err(WireError::BadExtHeaderChain));
    // Cut ICMP header.
    let mut f = fx::ECHO4.to_vec();
    f[16..18].copy_from_slice(&27u16.to_be_bytes());
    assert_eq!(parse_frame(&f), Err(WireError::TruncatedIcmp));
}
