//! The fast parsers agree with [`parse_frame`] (and with each other) on
//! random well-formed and damaged frames.

use super::*;
use crate::wire::ip::{tos_at, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::wire::testgen::{damage, frame, Rng};
use crate::wire::{parse_frame, L4Info, ParsedFrame, Ports};

/// Whatever `parse_fast` accepts, `parse_frame` accepts with the same
/// fields; and every common-case packet takes the fast path.
#[test]
fn fast_parser_agrees_with_the_full_parser() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut fast = 0;
    for _ in 0..200_000 {
        let v6 = r.below(2) == 0;
        let tags = r.below(3) as usize;
        let proto = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, 1, 58][r.below(5) as usize];
        let (payload, pad) = (r.below(40) as usize, r.below(3) as usize * 7);
        let mut f = frame(&mut r, v6, tags, proto, payload, pad);
        damage(&mut r, &mut f);
        let full = parse_frame(&f);
        match parse_fast(&f) {
            Some(q) => {
                fast += 1;
                let Ok(ParsedFrame::Ip(p)) = full else {
                    panic!("fast path took what the full parser refuses: {f:02x?} {full:?}");
                };
                assert_eq!(p.frag, None, "{f:02x?}");
                assert_eq!(p.l3_offset, q.l3);
                assert_eq!(p.ip_len, q.ip_len);
                assert_eq!(p.version, q.version);
                assert_eq!(
                    Some(q.tos),
                    tos_at(&f, usize::from(q.l3), p.version),
                    "{f:02x?}"
                );
                assert_eq!(u8::from(p.protocol), q.proto);
                assert_eq!((p.src, p.dst), (q.src.to_be_bytes(), q.dst.to_be_bytes()));
                assert_eq!(
                    p.l4,
                    L4Info::Ports(Ports {
                        src: q.sport,
                        dst: q.dport
                    })
                );
            }
            None => {
                if let Ok(ParsedFrame::Ip(p)) = full {
                    let common = p.vlans.count <= 1
                        && p.frag.is_none()
                        && matches!(p.l4, L4Info::Ports(_))
                        && p.l4_offset - p.l3_offset
                            == if p.version == IpVersion::V4 { 20 } else { 40 };
                    assert!(!common, "common packet missed the fast path: {f:02x?}");
                }
            }
        }
    }
    assert!(fast > 50_000, "only {fast} frames took the fast path");
}

#[test]
fn express_parser_agrees_with_the_fast_parser() {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let mut express = 0;
    for _ in 0..200_000 {
        let v6 = r.below(4) == 0;
        let tags = r.below(4).saturating_sub(2) as usize;
        let proto = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, 1][r.below(4) as usize];
        let (payload, pad) = (r.below(40) as usize, r.below(3) as usize * 7);
        let mut f = frame(&mut r, v6, tags, proto, payload, pad);
        damage(&mut r, &mut f);
        let fast = parse_fast(&f);
        match parse_v4(&f) {
            Some(e) => {
                express += 1;
                let Some(q) = fast else {
                    panic!("express path took what the fast parser refuses: {f:02x?}");
                };
                assert_eq!((q.l3, q.version), (14, IpVersion::V4), "{f:02x?}");
                assert_eq!(
                    (q.ip_len, q.proto, q.tos),
                    (e.ip_len, e.proto, e.tos),
                    "{f:02x?}"
                );
                assert_eq!(q.src, (0xffff << 32) | u128::from(e.src), "{f:02x?}");
                assert_eq!(q.dst, (0xffff << 32) | u128::from(e.dst), "{f:02x?}");
                assert_eq!((q.sport, q.dport), (e.sport, e.dport), "{f:02x?}");
            }
            None => {
                // Only untagged IPv4 in frames of 54 bytes or more must
                // take the express path when the fast path takes them.
                if let Some(q) = fast {
                    assert!(
                        q.l3 != 14 || q.version != IpVersion::V4 || f.len() < 54,
                        "express path missed a packet the fast path took: {f:02x?}"
                    );
                }
            }
        }
    }
    assert!(
        express > 30_000,
        "only {express} frames took the express path"
    );
}
