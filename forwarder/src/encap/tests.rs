//! The template emitter writes what the reference writes.

use super::*;
use crate::frame::HEADROOM;
use crate::wire::ip::{IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::wire::testgen::{frame, Rng};
use crate::wire::{parse_fast, parse_frame, ParsedFrame};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Underlay settings of the tests: both source families, MTU `mtu`.
pub(crate) fn underlay(encap: Encap, mtu: u16) -> UnderlayParams {
    UnderlayParams {
        encap,
        source_ipv4: Some(Ipv4Addr::new(10, 0, 2, 2)),
        source_ipv6: Some(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2)),
        source_mac: [2, 0, 0, 0, 2, 2],
        next_hop_mac: [2, 0, 0, 0, 2, 1],
        mtu,
    }
}

fn target(v6: bool) -> Target {
    Target {
        name: "t".into(),
        uid: String::new(),
        underlay: if v6 {
            Underlay::V6(Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 7).octets())
        } else {
            Underlay::V4([10, 0, 3, 7])
        },
        mac: [2, 0, 0, 0, 3, 7],
        weight: 1,
        slot: 3,
    }
}

/// The template path writes exactly what the reference `encapsulate`
/// writes, and refuses exactly what it refuses, for every encapsulation,
/// both underlay and inner families, VLAN tags, padding, TOS and hash.
#[test]
fn template_encapsulation_equals_the_reference() {
    let mut r = Rng(7);
    for encap in [
        Encap::IpIp,
        Encap::Gue { port: 6080 },
        Encap::Vxlan { port: 4789 },
    ] {
        for outer_v6 in [false, true] {
            for mtu in [1500u16, 110] {
                let u = underlay(encap, mtu);
                let tgt = target(outer_v6);
                let tpl = EncapTemplate::new(&u, 0x00ab_cdef, &tgt);
                assert!(!tpl.is_empty());
                assert_eq!(tpl.len(), 14 + encap_overhead(encap, tgt.underlay));
                for _ in 0..300 {
                    let v6 = r.below(2) == 0;
                    let proto = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP][r.below(3) as usize];
                    let (tags, payload, pad) = (
                        r.below(2) as usize,
                        r.below(100) as usize,
                        r.below(2) as usize * 5,
                    );
                    let f = frame(&mut r, v6, tags, proto, payload, pad);
                    let Some(q) = parse_fast(&f) else {
                        continue;
                    };
                    let Ok(ParsedFrame::Ip(p)) = parse_frame(&f) else {
                        unreachable!()
                    };
                    let hash = r.next();
                    let run = |template: bool| {
                        let mut buf = vec![0u8; HEADROOM + f.len()];
                        buf[HEADROOM..].copy_from_slice(&f);
                        let mut fr = Frame::new(&mut buf, HEADROOM, p.ip_end());
                        let inner = Inner {
                            l3: q.l3,
                            ip_len: q.ip_len,
                            version: q.version,
                            tos: q.tos,
                        };
                        let res = if template {
                            encapsulate_template(&tpl, u.mtu, hash, &mut fr, inner)
                        } else {
                            encapsulate(&u, 0x00ab_cdef, &tgt, hash, &mut fr, &p)
                        };
                        (res, fr.data().to_vec())
                    };
                    assert_eq!(
                        run(true),
                        run(false),
                        "{encap:?} outer v6 {outer_v6} mtu {mtu}: {f:02x?}"
                    );
                }
            }
        }
    }
}

#[test]
fn template_without_underlay_source_is_empty() {
    let mut u = underlay(Encap::Vxlan { port: 4789 }, 1500);
    u.source_ipv6 = None;
    assert!(EncapTemplate::new(&u, 1, &target(true)).is_empty());
    assert!(!EncapTemplate::new(&u, 1, &target(false)).is_empty());
}

/// The burst prefetch starts a template's second cache line only when
/// [`EncapTemplate::two_lines`] says some template has headers there: every
/// shape it says "one line" for fits in the first 64 bytes, and the one
/// longer shape (outer IPv6 with VXLAN) makes it say "two lines".
#[test]
fn templates_past_one_cache_line_are_announced() {
    for encap in [
        Encap::IpIp,
        Encap::Gue { port: 6080 },
        Encap::Vxlan { port: 4789 },
    ] {
        for (v4, v6) in [(true, true), (true, false), (false, true)] {
            let mut u = underlay(encap, 1500);
            if !v4 {
                u.source_ipv4 = None;
            }
            if !v6 {
                u.source_ipv6 = None;
            }
            let mut longest = 0;
            for outer_v6 in [false, true] {
                let tpl = EncapTemplate::new(&u, 7, &target(outer_v6));
                longest = longest.max(tpl.len());
            }
            assert!(longest > 0, "{encap:?} v4 {v4} v6 {v6}");
            assert_eq!(
                EncapTemplate::two_lines(&u),
                longest > 64,
                "{encap:?} v4 {v4} v6 {v6}: longest template {longest} bytes"
            );
        }
    }
    assert_eq!(std::mem::align_of::<EncapTemplate>(), 64);
}
