//! Fuzz target `pipeline`: the whole per-packet pipeline on arbitrary
//! sequences of frames.
//!
//! One input is a run of one worker: byte 0 picks the encapsulation (IP-in-
//! IP, GUE, VXLAN) and the headroom, then frames follow, each as a 2-byte
//! length, a time step and the frame bytes. A fresh pipeline (small flow
//! table and fragment tracker, so that eviction, stash limits and timeouts
//! happen) runs them in order over a fixed configuration with every feature
//! on: two address families, several load balancers (one with two targets
//! over both underlay families, one without targets), port ranges of TCP,
//! UDP and SCTP, ICMP echo answered, too-big answers rate-limited.
//!
//! Beyond "no panic", every transmitted frame is checked with code written
//! here, not lbfwd's:
//! - an encapsulated frame carries, byte for byte, the IP packet that came
//!   in (or a held fragment), to a VIP, with a port the load balancer allows
//!   (unfragmented or first fragment), with consistent outer lengths, a
//!   correct outer IPv4 checksum and UDP-over-IPv6 checksum, within the
//!   underlay MTU;
//! - a non-first fragment is only sent after its datagram's first fragment
//!   was (fragments never pass the port filter);
//! - an answer (echo reply, frag-needed, packet-too-big) goes from the VIP
//!   back to the sender with correct checksums and within the RFC sizes;
//! - the counters agree with the verdicts.
#![no_main]

use lbfwd_config::Config;
use lbfwd_forwarder::counters::{DropReason, WorkerCounters};
use lbfwd_forwarder::flow::frag::FragConfig;
use lbfwd_forwarder::frame::{Frame, HEADROOM};
use lbfwd_forwarder::pipeline::{Pipeline, PipelineConfig, Verdict};
use lbfwd_forwarder::tables::{Publisher, TableBuilder, UnderlayParams};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const MTU: usize = 1400;
const NEXT_HOP: [u8; 6] = [2, 0, 0, 0, 0, 1];
const SOURCE_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];

fn config_text(encap: &str) -> String {
    format!(
        r#"
[dataplane]
backend = "memory"
workers = [0]

[underlay]
encap = "{encap}"
source_ipv4 = "10.0.2.2"
source_ipv6 = "fd00:2::2"
source_mac = "02:00:00:00:02:02"
next_hop_mac = "02:00:00:00:00:01"
mtu = {MTU}

[[network]]
name = "net"
vni = 1193046

[[network_interface]]
name = "t4"
network = "net"
labels = {{ app = "web" }}
underlay = "10.0.3.11"
mac = "02:00:00:00:03:11"

[[network_interface]]
name = "t6"
network = "net"
labels = {{ app = "web" }}
underlay = "fd00:3::12"
mac = "02:00:00:00:03:12"

[[network_interface]]
name = "d4"
network = "net"
labels = {{ app = "db" }}
underlay = "10.0.3.21"
mac = "02:00:00:00:03:21"

[[load_balancer]]
name = "web"
type = "Internal"
network = "net"
ips = ["203.0.113.1", "2001:db8:1::1"]
network_interface_selector = {{ match_labels = {{ app = "web" }} }}
ports = [ {{ protocol = "TCP", port = 80 }}, {{ protocol = "UDP", port = 1024, end_port = 2048 }}, {{ protocol = "SCTP", port = 9 }} ]
icmp_echo = "reply"
maglev_table_size = 251

[[load_balancer]]
name = "db"
type = "Internal"
network = "net"
ips = ["203.0.113.2", "2001:db8:1::2"]
network_interface_selector = {{ match_labels = {{ app = "db" }} }}
ports = [ {{ protocol = "TCP", port = 5432 }} ]
maglev_table_size = 251

[[load_balancer]]
name = "empty"
type = "Internal"
network = "net"
ips = ["203.0.113.4", "2001:db8:1::4"]
network_interface_selector = {{ match_labels = {{ app = "nobody" }} }}
maglev_table_size = 251
"#
    )
}

/// What lbfwd serves: VIP (16-byte form, IPv4-mapped) -> allowed
/// (protocol, first port, last port).
fn allowed(dst: &[u8; 16], proto: u8, port: u16) -> Option<bool> {
    let v4 = dst[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    let last = dst[15];
    let is_vip = if v4 {
        dst[12..15] == [203, 0, 113] && matches!(last, 1 | 2 | 4)
    } else {
        dst[..15] == [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            && matches!(last, 1 | 2 | 4)
    };
    if !is_vip {
        return None;
    }
    Some(match (last, proto) {
        (1, 6) => port == 80,
        (1, 17) => (1024..=2048).contains(&port),
        (1, 132) => port == 9,
        (2, 6) => port == 5432,
        (4, 6 | 17 | 132) => true,
        _ => false,
    })
}

struct Setup {
    encap: &'static str,
    publisher: Arc<Publisher>,
}

fn setups() -> &'static [Setup] {
    static S: OnceLock<Vec<Setup>> = OnceLock::new();
    S.get_or_init(|| {
        ["ipip", "gue", "vxlan"]
            .into_iter()
            .map(|encap| {
                let config = Config::from_toml_str(&config_text(encap), "fuzz.toml")
                    .unwrap_or_else(|e| panic!("fuzz config: {e}"));
                let resolution = config
                    .resolve()
                    .unwrap_or_else(|e| panic!("fuzz config: {e}"));
                let underlay = UnderlayParams::from_settings(&config.settings.underlay, None);
                let (tables, _) = TableBuilder::new()
                    .build(&resolution.resolved, &underlay, 1)
                    .expect("tables");
                Setup {
                    encap,
                    publisher: Publisher::new(tables, 1),
                }
            })
            .collect()
    })
}

fn pipeline_config() -> PipelineConfig {
    PipelineConfig {
        flow_capacity: 64,
        frag: FragConfig {
            entries: 8,
            held_slots: 4,
            slot_size: 256,
            max_held_per_entry: 2,
            timeout: Duration::from_millis(500),
        },
        too_big_rate: 3,
        ..PipelineConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Reference decoding, independent of lbfwd's parser.

fn sum(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// True when data (checksum included) plus a pseudo-header sum verifies.
fn verifies(pseudo: u32, data: &[u8]) -> bool {
    fold(pseudo + sum(data)) == 0xffff
}

fn pseudo_v6(src: &[u8], dst: &[u8], next: u8, len: usize) -> u32 {
    sum(src) + sum(dst) + (len as u32 >> 16) + (len as u32 & 0xffff) + u32::from(next)
}

/// The IP packet in an Ethernet frame: (L3 offset, packet) with VLAN tags
/// skipped and padding cut; None when not a complete IP packet.
fn ip_in(frame: &[u8]) -> Option<(usize, &[u8])> {
    let mut off = 12;
    let mut ty = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let mut tags = 0;
    while (ty == 0x8100 || ty == 0x88a8) && tags < 2 {
        off += 4;
        ty = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
        tags += 1;
    }
    let l3 = off + 2;
    let ip = frame.get(l3..)?;
    let len = match (ty, ip.first()? >> 4) {
        (0x0800, 4) => usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?])),
        (0x86dd, 6) => 40 + usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?])),
        _ => return None,
    };
    Some((l3, ip.get(..len)?))
}

/// Source, destination (16-byte form) of an IP packet.
fn addrs(ip: &[u8]) -> ([u8; 16], [u8; 16]) {
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    if ip[0] >> 4 == 4 {
        s[10..12].copy_from_slice(&[0xff, 0xff]);
        d[10..12].copy_from_slice(&[0xff, 0xff]);
        s[12..].copy_from_slice(&ip[12..16]);
        d[12..].copy_from_slice(&ip[16..20]);
    } else {
        s.copy_from_slice(&ip[8..24]);
        d.copy_from_slice(&ip[24..40]);
    }
    (s, d)
}

/// Fragment identity and offset of a packet, if it is a fragment; and the
/// upper-layer protocol and offset of its transport header when known.
struct Info {
    frag: Option<(u32, u32)>, // (id, offset in bytes)
    proto: u8,
    l4: usize,
}

fn info(ip: &[u8]) -> Option<Info> {
    if ip[0] >> 4 == 4 {
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let flags = u16::from_be_bytes([ip[6], ip[7]]);
        let off = u32::from(flags & 0x1fff) * 8;
        let frag = (flags & 0x2000 != 0 || off != 0)
            .then(|| (u32::from(u16::from_be_bytes([ip[4], ip[5]])), off));
        return Some(Info {
            frag,
            proto: ip[9],
            l4: ihl,
        });
    }
    let mut nh = ip[6];
    let mut off = 40;
    let mut frag = None;
    for _ in 0..10 {
        match nh {
            0 | 43 | 60 | 135 | 139 | 140 => {
                let h = ip.get(off..off + 2)?;
                nh = h[0];
                off += (usize::from(h[1]) + 1) * 8;
            }
            51 => {
                let h = ip.get(off..off + 2)?;
                nh = h[0];
                off += (usize::from(h[1]) + 2) * 4;
            }
            44 => {
                let h = ip.get(off..off + 8)?;
                let fo = u16::from_be_bytes([h[2], h[3]]);
                let id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                if fo & 0xfff8 != 0 || fo & 1 != 0 {
                    frag = Some((id, u32::from(fo & 0xfff8)));
                }
                nh = h[0];
                off += 8;
                if fo & 0xfff8 != 0 {
                    break;
                }
            }
            _ => break,
        }
    }
    Some(Info {
        frag,
        proto: nh,
        l4: off,
    })
}

type DatagramKey = ([u8; 16], [u8; 16], u8, u32);

/// Checks an encapsulated frame; returns the inner packet.
fn check_encapsulated<'a>(encap: &str, out: &'a [u8]) -> &'a [u8] {
    assert_eq!(out[..6], NEXT_HOP, "outer destination MAC");
    assert_eq!(out[6..12], SOURCE_MAC, "outer source MAC");
    let outer = &out[14..];
    let (hdr, proto) = match u16::from_be_bytes([out[12], out[13]]) {
        0x0800 => {
            assert_eq!(outer[0], 0x45);
            assert!(verifies(0, &outer[..20]), "outer IPv4 checksum");
            assert_eq!(
                usize::from(u16::from_be_bytes([outer[2], outer[3]])),
                outer.len()
            );
            assert_eq!(outer[6] & 0x40, 0x40, "DF");
            (20, outer[9])
        }
        0x86dd => {
            assert_eq!(outer[0] >> 4, 6);
            assert_eq!(
                usize::from(u16::from_be_bytes([outer[4], outer[5]])) + 40,
                outer.len()
            );
            (40, outer[6])
        }
        t => panic!("outer EtherType {t:#x}"),
    };
    assert!(
        outer.len() <= MTU,
        "outer packet of {} bytes over the MTU",
        outer.len()
    );
    let mut inner = &outer[hdr..];
    if encap != "ipip" {
        assert_eq!(proto, 17);
        let udp = inner;
        assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
        assert!(u16::from_be_bytes([udp[0], udp[1]]) >= 0xc000);
        let port = u16::from_be_bytes([udp[2], udp[3]]);
        if hdr == 40 {
            let pseudo = pseudo_v6(&outer[8..24], &outer[24..40], 17, udp.len());
            assert!(verifies(pseudo, udp), "UDP checksum over IPv6");
            assert_ne!(u16::from_be_bytes([udp[6], udp[7]]), 0);
        } else {
            assert_eq!(udp[6..8], [0, 0]);
        }
        inner = &udp[8..];
        if encap == "vxlan" {
            assert_eq!(port, 4789);
            assert_eq!(inner[..8], [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
            assert_eq!(inner[14..20], SOURCE_MAC, "inner source MAC");
            inner = &inner[8 + 14..];
        } else {
            assert_eq!(port, 6080);
        }
    } else {
        let want = if inner[0] >> 4 == 4 { 4 } else { 41 };
        assert_eq!(proto, want, "IP-in-IP protocol");
    }
    inner
}

fn check_answer(input_ip: &[u8], out: &[u8]) {
    let (_, ip) = ip_in(out).expect("the answer is an IP packet");
    assert_eq!(
        ip.len() + ip_in(out).map(|(l3, _)| l3).unwrap_or(0),
        out.len(),
        "answer trimmed"
    );
    let (s, d) = addrs(ip);
    let (is, id) = addrs(input_ip);
    assert_eq!((s, d), (id, is), "answer from the VIP to the sender");
    if ip[0] >> 4 == 4 {
        assert!(verifies(0, &ip[..20]), "answer IPv4 header checksum");
        assert_eq!(ip[9], 1);
        assert!(ip.len() <= 576 || ip[20] == 0, "ICMP error over 576 bytes");
        assert!(
            verifies(0, &ip[20..]),
            "ICMP checksum of type {} ({:02x?})",
            ip[20],
            &ip[20..ip.len().min(28)]
        );
        assert!(
            matches!((ip[20], ip[21]), (0, _) | (3, 4)),
            "ICMP type {}",
            ip[20]
        );
    } else {
        assert_eq!(ip[6], 58);
        assert!(
            ip.len() <= 1280 || ip[40] == 129,
            "ICMPv6 error over 1280 bytes"
        );
        let pseudo = pseudo_v6(&ip[8..24], &ip[24..40], 58, ip.len() - 40);
        assert!(verifies(pseudo, &ip[40..]), "ICMPv6 checksum");
        assert!(matches!(ip[40], 129 | 2), "ICMPv6 type {}", ip[40]);
    }
}

/// The security invariants of a forwarded inner packet.
fn check_forwarded(inner: &[u8], accepted: &mut HashSet<DatagramKey>) {
    let (src, dst) = addrs(inner);
    let Some(i) = info(inner) else {
        panic!("forwarded a packet whose headers do not parse")
    };
    match i.frag {
        Some((id, off)) if off != 0 => {
            assert!(
                accepted.contains(&(src, dst, i.proto, id)),
                "a non-first fragment was sent before its first fragment"
            );
        }
        frag => {
            let is_icmp =
                (inner[0] >> 4 == 4 && i.proto == 1) || (inner[0] >> 4 == 6 && i.proto == 58);
            if is_icmp {
                let t = inner[i.l4];
                let error = if inner[0] >> 4 == 4 {
                    matches!(t, 3 | 11 | 12)
                } else {
                    t < 128
                };
                assert!(error, "forwarded ICMP type {t} (only errors follow flows)");
                assert!(allowed(&dst, 6, 0).is_some(), "ICMP error to a non-VIP");
            } else {
                let Some(p) = inner.get(i.l4 + 2..i.l4 + 4) else {
                    panic!("forwarded protocol {} without its ports", i.proto)
                };
                let port = u16::from_be_bytes([p[0], p[1]]);
                assert_eq!(
                    allowed(&dst, i.proto, port),
                    Some(true),
                    "forwarded protocol {} port {port}",
                    i.proto
                );
                if let Some((id, _)) = frag {
                    accepted.insert((src, dst, i.proto, id));
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut rest)) = data.split_first() else {
        return;
    };
    let setup = &setups()[usize::from(head & 3) % 3];
    let headroom = if head & 0x80 != 0 {
        usize::from(head & 0x3f)
    } else {
        HEADROOM
    };
    // One set of counters for every run (it is 4 MiB: allocating it per
    // input would halve the speed); the checks use differences.
    static COUNTERS: OnceLock<Arc<WorkerCounters>> = OnceLock::new();
    let counters = COUNTERS.get_or_init(|| Arc::new(WorkerCounters::new()));
    let before = (
        counters.rx.packets.get(),
        counters.tx.packets.get(),
        counters.host.packets.get(),
        DropReason::ALL.map(|r| counters.drops[r as usize].get()),
    );
    let mut pipeline = Pipeline::new(
        setup.publisher.reader(0),
        Arc::clone(counters),
        &pipeline_config(),
    )
    .expect("pipeline");
    let mut buf = vec![0u8; HEADROOM + 4096 + 64];
    let mut now = 1_000_000_000u64;
    let mut accepted = HashSet::new();
    let (mut frames, mut tx, mut host) = (0u64, 0u64, 0u64);
    let mut drops = [0u64; DropReason::COUNT];
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]) & 0x0fff);
        now += u64::from(rest[2]) * 10_000_000;
        rest = &rest[3..];
        let frame_bytes = &rest[..len.min(rest.len())];
        rest = &rest[frame_bytes.len()..];
        frames += 1;

        buf[headroom..headroom + frame_bytes.len()].copy_from_slice(frame_bytes);
        let replies_before = counters.icmp_echo_replies.get() + counters.too_big_sent.get();
        pipeline.begin(now);
        let mut frame = Frame::new(&mut buf, headroom, frame_bytes.len());
        let verdict = pipeline.run(&mut frame);
        let input_ip = ip_in(frame_bytes).map(|(_, ip)| ip);
        match verdict {
            Verdict::Tx => {
                tx += 1;
                let input_ip = input_ip.expect("a transmitted frame was a complete IP packet");
                let out = frame.data();
                let answered = counters.icmp_echo_replies.get() + counters.too_big_sent.get();
                if answered > replies_before {
                    check_answer(input_ip, out);
                } else {
                    let inner = check_encapsulated(setup.encap, out);
                    assert!(
                        inner == input_ip,
                        "the inner packet is not the input packet"
                    );
                    check_forwarded(inner, &mut accepted);
                }
            }
            Verdict::Host => host += 1,
            Verdict::Held => {}
            Verdict::Drop(r) => drops[r as usize] += 1,
        }
        let encap = setup.encap;
        let mut released = 0u64;
        pipeline.release_held(&mut |out: &[u8]| {
            let inner = check_encapsulated(encap, out);
            check_forwarded(inner, &mut accepted);
            released += 1;
            true
        });
        tx += released;
    }
    assert_eq!(counters.rx.packets.get() - before.0, frames);
    assert_eq!(counters.tx.packets.get() - before.1, tx);
    assert_eq!(counters.host.packets.get() - before.2, host);
    for r in DropReason::ALL {
        let counted = counters.drops[r as usize].get() - before.3[r as usize];
        assert!(counted >= drops[r as usize], "drops of {}", r.as_str());
    }
});
