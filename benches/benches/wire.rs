//! Wire benchmarks: `parse_frame` on minimum-size frames, the Internet
//! checksum, and emitting each encapsulation's header set in front of a
//! packet already in its buffer (as the pipeline does, in place).
//!
//! Run: `cargo bench -p lbfwd-benches --bench wire`.

use std::hint::black_box;

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use lbfwd_forwarder::frame::{Frame, HEADROOM};
use lbfwd_forwarder::wire::checksum;
use lbfwd_forwarder::wire::ethernet::{EthernetRepr, VlanTag};
use lbfwd_forwarder::wire::icmp_reply::frame_too_big;
use lbfwd_forwarder::wire::ipv4::{Ipv4Repr, DEFAULT_TTL};
use lbfwd_forwarder::wire::ipv6::{flow_label_from_hash, Ipv6Repr, DEFAULT_HOP_LIMIT};
use lbfwd_forwarder::wire::udp::{emit_udp_ipv4, emit_udp_ipv6, source_port};
use lbfwd_forwarder::wire::vxlan::VxlanRepr;
use lbfwd_forwarder::wire::{parse_frame, EtherType, IpProtocol, ParsedFrame};

const CLIENT4: [u8; 4] = [198, 51, 100, 20];
const VIP4: [u8; 4] = [203, 0, 113, 10];
const CLIENT6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0xc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20,
];
const VIP6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0xf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// A TCP SYN header (20 bytes) from 40000 to 443.
fn tcp_syn() -> [u8; 20] {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&443u16.to_be_bytes());
    t[12] = 0x50;
    t[13] = 0x02;
    t
}

/// Ethernet (+ `tags` VLAN tags) / IPv4 / TCP, padded to 64 bytes.
fn tcp4_frame(tags: usize) -> Vec<u8> {
    let l2 = 14 + 4 * tags;
    let mut f = vec![0u8; (l2 + 40).max(64)];
    let first = if tags == 2 {
        EtherType::QinQ
    } else if tags == 1 {
        EtherType::Vlan
    } else {
        EtherType::Ipv4
    };
    EthernetRepr {
        dst: MAC_B,
        src: MAC_A,
        ethertype: first,
    }
    .emit(&mut f)
    .unwrap();
    for i in 0..tags {
        let mut t = VlanTag::new_unchecked(&mut f[14 + 4 * i..18 + 4 * i]);
        t.set_tci(0, false, 100 + i as u16);
        t.set_inner_ethertype(if i + 1 == tags {
            EtherType::Ipv4
        } else {
            EtherType::Vlan
        });
    }
    Ipv4Repr {
        src: CLIENT4,
        dst: VIP4,
        protocol: IpProtocol::Tcp,
        payload_len: 20,
        ttl: 61,
        dont_frag: true,
        ident: 1,
        tos: 0,
    }
    .emit(&mut f[l2..])
    .unwrap();
    f[l2 + 20..l2 + 40].copy_from_slice(&tcp_syn());
    f
}

/// Ethernet / IPv6 / TCP (74 bytes: IPv6 cannot be 64).
fn tcp6_frame() -> Vec<u8> {
    let mut f = vec![0u8; 74];
    EthernetRepr {
        dst: MAC_B,
        src: MAC_A,
        ethertype: EtherType::Ipv6,
    }
    .emit(&mut f)
    .unwrap();
    Ipv6Repr {
        src: CLIENT6,
        dst: VIP6,
        next_header: IpProtocol::Tcp,
        payload_len: 20,
        hop_limit: 60,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut f[14..])
    .unwrap();
    f[54..74].copy_from_slice(&tcp_syn());
    f
}

/// Ethernet / IPv4 / ICMP frag-needed quoting a reply VIP -> client.
fn frag_needed_frame() -> Vec<u8> {
    let reply = {
        let mut r = tcp4_frame(0);
        r.truncate(54);
        let ip = &mut r[14..];
        ip[12..16].copy_from_slice(&VIP4);
        ip[16..20].copy_from_slice(&CLIENT4);
        ip.to_vec()
    };
    let mut f = vec![0u8; 14 + 20 + 8 + 28];
    EthernetRepr {
        dst: MAC_B,
        src: MAC_A,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut f)
    .unwrap();
    Ipv4Repr {
        src: [192, 0, 2, 254],
        dst: VIP4,
        protocol: IpProtocol::Icmp,
        payload_len: 36,
        ttl: 64,
        dont_frag: false,
        ident: 0,
        tos: 0,
    }
    .emit(&mut f[14..])
    .unwrap();
    f[34] = 3;
    f[35] = 4;
    f[40..42].copy_from_slice(&1400u16.to_be_bytes());
    f[42..].copy_from_slice(&reply[..28]);
    f
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_frame");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in [
        ("tcp4_64B", tcp4_frame(0)),
        ("tcp4_vlan", tcp4_frame(1)),
        ("tcp4_qinq", tcp4_frame(2)),
        ("tcp6_74B", tcp6_frame()),
        ("icmp4_frag_needed", frag_needed_frame()),
    ] {
        assert!(
            matches!(parse_frame(&frame), Ok(ParsedFrame::Ip(_))),
            "{name}"
        );
        g.bench_function(name, |b| b.iter(|| parse_frame(black_box(&frame))));
    }
    g.finish();
}

fn bench_checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    let data: Vec<u8> = (0..1500u32).map(|i| (i * 7 + 3) as u8).collect();
    for len in [20usize, 40, 64, 576, 1500] {
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &data[..len], |b, d| {
            b.iter(|| checksum::checksum(black_box(d)))
        });
    }
    g.finish();
}

/// Which header set to emit.
#[derive(Clone, Copy)]
enum Encap {
    Ipip4,
    Ipip6,
    Gue4,
    Gue4Csum,
    Gue6,
    Vxlan4,
    Vxlan6,
}

impl Encap {
    fn name(self) -> &'static str {
        match self {
            Encap::Ipip4 => "ipip_v4",
            Encap::Ipip6 => "ipip_v6",
            Encap::Gue4 => "gue_v4",
            Encap::Gue4Csum => "gue_v4_udp_csum",
            Encap::Gue6 => "gue_v6",
            Encap::Vxlan4 => "vxlan_v4",
            Encap::Vxlan6 => "vxlan_v6",
        }
    }

    /// Outer header bytes, outer Ethernet included.
    fn header_len(self) -> usize {
        match self {
            Encap::Ipip4 => 14 + 20,
            Encap::Ipip6 => 14 + 40,
            Encap::Gue4 | Encap::Gue4Csum => 14 + 20 + 8,
            Encap::Gue6 => 14 + 40 + 8,
            Encap::Vxlan4 => 14 + 20 + 8 + 8 + 14,
            Encap::Vxlan6 => 14 + 40 + 8 + 8 + 14,
        }
    }
}

const SRC4: [u8; 4] = [192, 0, 2, 1];
const DST4: [u8; 4] = [10, 0, 0, 7];
const SRC6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];

/// Writes `e`'s headers into `out` (exactly `header_len` bytes in front of
/// the inner IP packet, which is the rest of `out`).
fn emit(e: Encap, out: &mut [u8], hash: u64) {
    let inner_len = out.len() - e.header_len();
    let sport = source_port(hash);
    let (v6, udp_port) = match e {
        Encap::Ipip4 => (false, 0),
        Encap::Ipip6 => (true, 0),
        Encap::Gue4 | Encap::Gue4Csum => (false, 6080),
        Encap::Gue6 => (true, 6080),
        Encap::Vxlan4 => (false, 4789),
        Encap::Vxlan6 => (true, 4789),
    };
    let ety = if v6 { EtherType::Ipv6 } else { EtherType::Ipv4 };
    EthernetRepr {
        dst: MAC_B,
        src: MAC_A,
        ethertype: ety,
    }
    .emit(out)
    .unwrap();
    let ip_hdr = if v6 { 40 } else { 20 };
    let ip_payload = out.len() - 14 - ip_hdr;
    let proto = if udp_port == 0 {
        IpProtocol::Ipv4
    } else {
        IpProtocol::Udp
    };
    if v6 {
        Ipv6Repr {
            src: SRC6,
            dst: DST6,
            next_header: proto,
            payload_len: ip_payload,
            hop_limit: DEFAULT_HOP_LIMIT,
            traffic_class: 0,
            flow_label: flow_label_from_hash(hash as u32),
        }
        .emit(&mut out[14..])
        .unwrap();
    } else {
        Ipv4Repr {
            src: SRC4,
            dst: DST4,
            protocol: proto,
            payload_len: ip_payload,
            ttl: DEFAULT_TTL,
            dont_frag: true,
            ident: hash as u16,
            tos: 0,
        }
        .emit(&mut out[14..])
        .unwrap();
    }
    if udp_port == 0 {
        return;
    }
    let udp = 14 + ip_hdr;
    if udp_port == 4789 {
        VxlanRepr { vni: 0x123456 }
            .emit(&mut out[udp + 8..])
            .unwrap();
        EthernetRepr {
            dst: MAC_A,
            src: MAC_B,
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut out[udp + 16..])
        .unwrap();
    }
    if v6 {
        emit_udp_ipv6(&mut out[udp..], sport, udp_port, &SRC6, &DST6).unwrap();
    } else {
        let csum = matches!(e, Encap::Gue4Csum);
        emit_udp_ipv4(&mut out[udp..], sport, udp_port, SRC4, DST4, csum).unwrap();
    }
    debug_assert_eq!(inner_len, out.len() - e.header_len());
}

fn bench_emit(c: &mut Criterion) {
    let mut g = c.benchmark_group("encap_emit");
    g.throughput(Throughput::Elements(1));
    let inner = tcp4_frame(0)[14..54].to_vec();
    for e in [
        Encap::Ipip4,
        Encap::Ipip6,
        Encap::Gue4,
        Encap::Gue4Csum,
        Encap::Gue6,
        Encap::Vxlan4,
        Encap::Vxlan6,
    ] {
        let h = e.header_len();
        let mut buf = vec![0u8; h + inner.len()];
        buf[h..].copy_from_slice(&inner);
        let mut hash = 0x9e37_79b9_7f4a_7c15u64;
        g.bench_function(e.name(), |b| {
            b.iter(|| {
                hash = hash.wrapping_add(0x6d2b_79f5_0bd4_2cc1);
                emit(e, black_box(&mut buf[..]), hash);
            })
        });
    }
    g.finish();
}

fn bench_icmp(c: &mut Criterion) {
    let mut g = c.benchmark_group("icmp_answer");
    g.throughput(Throughput::Elements(1));
    let mut big = tcp4_frame(0);
    big.resize(14 + 1500, 0x64);
    big[16..18].copy_from_slice(&1500u16.to_be_bytes());
    let ip = &mut big[14..34];
    ip[10..12].copy_from_slice(&[0, 0]);
    let ck = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    let Ok(ParsedFrame::Ip(p)) = parse_frame(&big) else {
        panic!()
    };
    let mut buf = vec![0u8; HEADROOM + big.len()];
    g.bench_function("frag_needed_from_1500B", |b| {
        b.iter(|| {
            buf[HEADROOM..].copy_from_slice(&big);
            let mut f = Frame::new(&mut buf, HEADROOM, big.len());
            frame_too_big(&mut f, black_box(&p), &p.dst, 1400).unwrap();
            f.len()
        })
    });
    g.finish();
}

mod group {
    // criterion_group! generates an undocumented `pub fn`.
    #![allow(missing_docs)]
    criterion::criterion_group!(
        benches,
        super::bench_parse,
        super::bench_checksum,
        super::bench_emit,
        super::bench_icmp
    );
}
criterion_main!(group::benches);
