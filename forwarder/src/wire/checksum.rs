//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624),
//! and the completion of partial TCP/UDP checksums that every I/O backend
//! uses ([`l4_segment`], [`complete_partial_l4`], [`complete_l4_if_partial`]).
//!
//! Sums are kept as folded 16-bit one's complement sums in host order of the
//! big-endian words (i.e. the value you would write with `to_be_bytes`), and
//! complemented only when written into a header. The data loop adds 32-bit
//! native-endian words into four 64-bit accumulators (no carries to handle),
//! folds, and byte-swaps once at the end, which RFC 1071 §2(B) shows is
//! equivalent.

/// Sums `data` as native-endian 32-bit words (16-bit and 8-bit for the
/// tail) into a 64-bit accumulator, to be folded by [`fold_native`].
#[inline(always)]
fn add_native(data: &[u8]) -> u64 {
    // Four independent accumulators of 32-bit words: no carry handling in the
    // hot loop (2^32 words would be needed to overflow one), and the adds can
    // run in parallel.
    let mut a = [0u64; 4];
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        a[0] += u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as u64;
        a[1] += u32::from_ne_bytes([c[4], c[5], c[6], c[7]]) as u64;
        a[2] += u32::from_ne_bytes([c[8], c[9], c[10], c[11]]) as u64;
        a[3] += u32::from_ne_bytes([c[12], c[13], c[14], c[15]]) as u64;
    }
    // The tail (< 16 bytes) without a memcpy: 4-byte words, then a 16-bit
    // word, then an odd byte padded with zero (all at even offsets, so the
    // native-order halves line up with the words above).
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(4);
    for c in &mut words {
        a[1] += u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    match *words.remainder() {
        [x] => a[2] += u16::from_ne_bytes([x, 0]) as u64,
        [x, y] => a[2] += u16::from_ne_bytes([x, y]) as u64,
        [x, y, z] => a[2] += u16::from_ne_bytes([x, y]) as u64 + u16::from_ne_bytes([z, 0]) as u64,
        _ => {}
    }
    // Each accumulator holds at most len/16 + 2 words below 2^32: no
    // overflow of the total for any slice shorter than 2^58 bytes.
    a[0] + a[1] + a[2] + a[3]
}

/// Folds a native-order 64-bit accumulator to a 16-bit sum of big-endian
/// words.
#[inline(always)]
fn fold_native(acc: u64) -> u16 {
    let mut x = (acc & 0xffff_ffff) + (acc >> 32);
    x = (x & 0xffff_ffff) + (x >> 32);
    let mut y = (x & 0xffff) + (x >> 16);
    y = (y & 0xffff) + (y >> 16);
    y = (y & 0xffff) + (y >> 16);
    u16::from_be(y as u16)
}

/// One's complement sum (folded, not complemented) of `data` taken as
/// big-endian 16-bit words; an odd last byte is padded with a zero.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    fold_native(add_native(data))
}

/// One's complement addition of two folded sums.
#[inline]
pub fn add(a: u16, b: u16) -> u16 {
    let s = a as u32 + b as u32;
    ((s & 0xffff) + (s >> 16)) as u16
}

/// The Internet checksum of `data`: the complement of its sum. Write it into
/// a zeroed checksum field; a packet including a correct checksum sums to
/// `0xffff` (see [`verify`]).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Checksum over a pseudo-header sum `pseudo` plus `data`.
#[inline]
pub fn checksum_with(pseudo: u16, data: &[u8]) -> u16 {
    !add(pseudo, sum(data))
}

/// True when `data` (checksum field included) sums to `0xffff`, i.e. its
/// checksum is correct.
#[inline]
pub fn verify(data: &[u8]) -> bool {
    sum(data) == 0xffff
}

/// Sum of the IPv4 pseudo-header (RFC 768/793): source, destination, zero,
/// protocol, upper-layer length.
#[inline]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, len: u16) -> u16 {
    let acc = u16::from_be_bytes([src[0], src[1]]) as u32
        + u16::from_be_bytes([src[2], src[3]]) as u32
        + u16::from_be_bytes([dst[0], dst[1]]) as u32
        + u16::from_be_bytes([dst[2], dst[3]]) as u32
        + protocol as u32
        + len as u32;
    fold32(acc)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination,
/// 32-bit upper-layer length, next header.
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> u16 {
    let mut acc = 0u64;
    for half in [&src[..8], &src[8..], &dst[..8], &dst[8..]] {
        let w = u64::from_be_bytes([
            half[0], half[1], half[2], half[3], half[4], half[5], half[6], half[7],
        ]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    acc += (len >> 16) as u64 + (len & 0xffff) as u64 + next_header as u64;
    let mut x = (acc & 0xffff_ffff) + (acc >> 32);
    x = (x & 0xffff_ffff) + (x >> 32);
    fold32(x as u32) // x < 2^32 after two folds
}

/// Folds a 32-bit accumulator of 16-bit words (at most 65535 of them) into
/// a 16-bit one's complement sum.
#[inline(always)]
pub fn fold32(acc: u32) -> u16 {
    let mut x = (acc & 0xffff) + (acc >> 16);
    x = (x & 0xffff) + (x >> 16);
    x as u16
}

/// Incrementally updates checksum `old_check` after one 16-bit word of the
/// covered data changed from `old` to `new` (RFC 1624 eqn. 3:
/// `HC' = ~(~HC + ~m + m')`).
#[inline]
pub fn update16(old_check: u16, old: u16, new: u16) -> u16 {
    !add(add(!old_check, !old), new)
}

/// Incrementally updates checksum `old_check` after a 32-bit aligned field
/// (e.g. an IPv4 address) changed from `old` to `new`.
#[inline]
pub fn update32(old_check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let c = update16(
        old_check,
        u16::from_be_bytes([old[0], old[1]]),
        u16::from_be_bytes([new[0], new[1]]),
    );
    update16(
        c,
        u16::from_be_bytes([old[2], old[3]]),
        u16::from_be_bytes([new[2], new[3]]),
    )
}

/// Where the TCP or UDP segment of an Ethernet frame lies: what checksum
/// completion needs ([`l4_segment`]). Offsets are from the start of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4Segment {
    /// Offset of the IP header (after up to two VLAN tags).
    pub ip: usize,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Offset of the TCP or UDP header.
    pub start: usize,
    /// End of the IP packet, i.e. of the segment (Ethernet padding excluded).
    pub end: usize,
    /// 6 (TCP) or 17 (UDP).
    pub protocol: u8,
    /// Offset of the checksum field (inside the segment).
    pub check_at: usize,
}

impl L4Segment {
    /// The pseudo-header sum of the segment (RFC 768/793, RFC 8200 §8.1).
    #[inline]
    pub fn pseudo_header(&self, frame: &[u8]) -> u16 {
        let len = self.end - self.start;
        let ip = &frame[self.ip..];
        if self.v6 {
            let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
            src.copy_from_slice(&ip[8..24]);
            dst.copy_from_slice(&ip[24..40]);
            pseudo_header_v6(&src, &dst, self.protocol, len as u32)
        } else {
            let addr = |at: usize| [ip[at], ip[at + 1], ip[at + 2], ip[at + 3]];
            pseudo_header_v4(addr(12), addr(16), self.protocol, len as u16)
        }
    }

    /// The checksum field as it stands.
    #[inline]
    pub fn checksum_field(&self, frame: &[u8]) -> u16 {
        u16::from_be_bytes([frame[self.check_at], frame[self.check_at + 1]])
    }
}

/// Locates the TCP or UDP segment of an Ethernet frame (up to two VLAN
/// tags; IPv4, or IPv6 with up to four hop-by-hop, routing and destination
/// options headers) for checksum completion. `None` for anything else:
/// other protocols, fragments, truncated or inconsistent headers. A lean
/// locator for the backends' receive path rather than [`super::parse_frame`]
/// (it reads only the offsets the checksum needs); the tests check that the
/// two agree.
#[inline]
pub fn l4_segment(frame: &[u8]) -> Option<L4Segment> {
    let be16 = |at: usize| -> Option<u16> {
        let b = frame.get(at..at + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    };
    let mut ip = 14;
    let mut ethertype = be16(12)?;
    for _ in 0..2 {
        if ethertype == 0x8100 || ethertype == 0x88a8 {
            ethertype = be16(ip + 2)?;
            ip += 4;
        }
    }
    let (v6, start, end, protocol) = match ethertype {
        0x0800 => {
            let h = frame.get(ip..ip + 20)?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let fragment = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
            if h[0] >> 4 != 4 || ihl < 20 || total < ihl || fragment || ip + total > frame.len() {
                return None;
            }
            (false, ip + ihl, ip + total, h[9])
        }
        0x86dd => {
            let h = frame.get(ip..ip + 40)?;
            let end = ip + 40 + usize::from(u16::from_be_bytes([h[4], h[5]]));
            if end > frame.len() {
                return None;
            }
            let (mut next, mut start) = (h[6], ip + 40);
            // Hop-by-hop, routing, destination options; a fragment header
            // (44) ends the walk with a protocol that is not TCP or UDP.
            for _ in 0..4 {
                if !matches!(next, 0 | 43 | 60) {
                    break;
                }
                let ext = frame.get(start..start + 2)?;
                next = ext[0];
                start += (usize::from(ext[1]) + 1) * 8;
                if start > end {
                    return None;
                }
            }
            (true, start, end, next)
        }
        _ => return None,
    };
    let check_at = match protocol {
        6 => start + 16,
        17 => start + 6,
        _ => return None,
    };
    if check_at + 2 > end {
        return None;
    }
    Some(L4Segment {
        ip,
        v6,
        start,
        end,
        protocol,
        check_at,
    })
}

/// True when the segment's checksum is partial (`CHECKSUM_PARTIAL`): the
/// field holds the folded pseudo-header sum, as a local sender's stack leaves
/// it for the device to complete. For backends that get no checksum status
/// from the kernel (AF_XDP): about 30 additions per frame. A complete
/// checksum that happens to equal it (1 in 65536) is recomputed to the same
/// value by [`complete_l4`].
#[inline]
pub fn l4_is_partial(frame: &[u8], segment: &L4Segment) -> bool {
    segment.checksum_field(frame) == segment.pseudo_header(frame)
}

/// Completes the partial checksum of `segment` in place: the field holds the
/// pseudo-header sum, so the sum over the segment as it stands is the sum
/// the checksum covers. A UDP checksum that computes to 0 is sent as 0xffff
/// (RFC 768).
#[inline]
pub fn complete_l4(frame: &mut [u8], segment: &L4Segment) {
    let mut check = checksum(&frame[segment.start..segment.end]);
    if segment.protocol == 17 && check == 0 {
        check = 0xffff;
    }
    frame[segment.check_at..segment.check_at + 2].copy_from_slice(&check.to_be_bytes());
}

/// Completes a TCP or UDP checksum the kernel marked partial (AF_PACKET's
/// `TP_STATUS_CSUMNOTREADY`). Returns false, changing nothing, for frames
/// [`l4_segment`] does not locate.
#[inline]
pub fn complete_partial_l4(frame: &mut [u8]) -> bool {
    match l4_segment(frame) {
        Some(segment) => {
            complete_l4(frame, &segment);
            true
        }
        None => false,
    }
}

/// Completes a TCP or UDP checksum if it is partial ([`l4_is_partial`]), for
/// backends without a checksum status. Returns whether it did.
#[inline]
pub fn complete_l4_if_partial(frame: &mut [u8]) -> bool {
    match l4_segment(frame) {
        Some(segment) if l4_is_partial(frame, &segment) => {
            complete_l4(frame, &segment);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward RFC 1071 reference: 16-bit big-endian words.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            acc += w as u32;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // Wikipedia's IPv4 header checksum example: checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify(&h));
    }

    #[test]
    fn matches_reference_at_every_length_and_pattern() {
        let mut data = [0u8; 200];
        let mut x: u32 = 0x1234_5678;
        for b in data.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        for len in 0..data.len() {
            for start in 0..3 {
                let s = &data[start.min(len)..len];
                assert_eq!(sum(s), reference_sum(s), "len {len} start {start}");
            }
        }
        // All ones: exercises carries.
        let ff = [0xffu8; 131];
        for len in 0..ff.len() {
            assert_eq!(sum(&ff[..len]), reference_sum(&ff[..len]), "0xff len {len}");
        }
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        // Change TTL/protocol word 0x4011 -> 0x3f11.
        let c = update16(0xb861, 0x4011, 0x3f11);
        h[8] = 0x3f;
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(c, checksum(&h));
        // Change the destination address.
        let c2 = update32(c, [0xc0, 0xa8, 0x00, 0xc7], [10, 1, 2, 3]);
        h[16..20].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(c2, checksum(&h));
    }

    #[test]
    fn pseudo_headers_match_byte_layout() {
        let src = [192, 0, 2, 1];
        let dst = [198, 51, 100, 7];
        let mut ph = [0u8; 12];
        ph[..4].copy_from_slice(&src);
        ph[4..8].copy_from_slice(&dst);
        ph[9] = 17;
        ph[10..12].copy_from_slice(&1234u16.to_be_bytes());
        assert_eq!(pseudo_header_v4(src, dst, 17, 1234), sum(&ph));

        let s6 = [0xffu8; 16];
        let mut d6 = [0u8; 16];
        d6[0] = 0x20;
        d6[15] = 0xfe;
        let mut ph6 = [0u8; 40];
        ph6[..16].copy_from_slice(&s6);
        ph6[16..32].copy_from_slice(&d6);
        ph6[32..36].copy_from_slice(&70000u32.to_be_bytes());
        ph6[39] = 58;
        assert_eq!(pseudo_header_v6(&s6, &d6, 58, 70000), sum(&ph6));
    }

    /// The frames of the wire fixtures that carry TCP or UDP in one piece.
    fn segment_fixtures() -> [(&'static str, &'static [u8]); 6] {
        use super::super::fixtures::*;
        [
            ("TCP4_64", &TCP4_64),
            ("TCP6", &TCP6),
            ("UDP4_QINQ", &UDP4_QINQ),
            ("UDP4_VLAN", &UDP4_VLAN),
            ("IP4_OPTS_UDP", &IP4_OPTS_UDP),
            ("IP6_EXT_TCP", &IP6_EXT_TCP),
        ]
    }

    /// The reference sum of the pseudo-header and the segment: 0xffff when
    /// the checksum verifies.
    fn reference_l4_sum(frame: &[u8], seg: &L4Segment) -> u16 {
        let ip = &frame[seg.ip..];
        let addrs = if seg.v6 { &ip[8..40] } else { &ip[12..20] };
        let len = (seg.end - seg.start) as u32;
        let mut acc = u32::from(reference_sum(addrs))
            + u32::from(seg.protocol)
            + (len >> 16)
            + (len & 0xffff)
            + u32::from(reference_sum(&frame[seg.start..seg.end]));
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn partial_checksums_are_recognised_and_completed() {
        for (name, good) in segment_fixtures() {
            let seg = l4_segment(good).unwrap_or_else(|| panic!("{name}: located"));
            assert_eq!(
                reference_l4_sum(good, &seg),
                0xffff,
                "{name}: fixture verifies"
            );
            assert!(
                !l4_is_partial(good, &seg),
                "{name}: complete is not partial"
            );
            // What a CHECKSUM_PARTIAL frame carries: the folded
            // pseudo-header sum in the field; Ethernet padding after it.
            let mut partial = good.to_vec();
            let pseudo = seg.pseudo_header(good);
            partial[seg.check_at..seg.check_at + 2].copy_from_slice(&pseudo.to_be_bytes());
            partial.extend_from_slice(&[0xee; 7]);
            assert!(l4_is_partial(&partial, &seg), "{name}");
            let mut by_status = partial.clone();
            assert!(complete_partial_l4(&mut by_status), "{name}");
            assert_eq!(
                &by_status[..good.len()],
                good,
                "{name}: completed by status"
            );
            assert!(complete_l4_if_partial(&mut partial), "{name}");
            assert_eq!(
                &partial[..good.len()],
                good,
                "{name}: completed when partial"
            );
            assert!(
                !complete_l4_if_partial(&mut partial),
                "{name}: now complete"
            );
        }
    }

    #[test]
    fn a_udp_checksum_of_zero_is_sent_as_all_ones() {
        let good = &super::super::fixtures::UDP4_VLAN;
        let seg = l4_segment(good).unwrap();
        // The pseudo-header and the segment without its checksum sum to
        // !field; adding `field` to one word (the source port) makes that
        // 0xffff, so the checksum computes to 0.
        let mut f = good.to_vec();
        let at = seg.start;
        let field = seg.checksum_field(good);
        let old = u16::from_be_bytes([f[at], f[at + 1]]);
        f[at..at + 2].copy_from_slice(&add(old, field).to_be_bytes());
        let pseudo = seg.pseudo_header(&f);
        f[seg.check_at..seg.check_at + 2].copy_from_slice(&pseudo.to_be_bytes());
        assert!(complete_partial_l4(&mut f));
        assert_eq!(seg.checksum_field(&f), 0xffff);
        assert_eq!(reference_l4_sum(&f, &seg), 0xffff);
    }

    #[test]
    fn frames_without_a_whole_segment_are_left_alone() {
        use super::super::fixtures::*;
        let others: [&[u8]; 8] = [
            &ARP,
            &SCTP4,
            &FRAG4_FIRST,
            &FRAG4_LAST,
            &FRAG6_FIRST,
            &FRAG6_LATER,
            &ECHO4,
            &ECHO6,
        ];
        for frame in others {
            let mut f = frame.to_vec();
            assert_eq!(l4_segment(&f), None);
            assert!(!complete_partial_l4(&mut f));
            assert!(!complete_l4_if_partial(&mut f));
            assert_eq!(f, frame);
        }
        for (name, good) in segment_fixtures() {
            let seg = l4_segment(good).unwrap();
            for len in 0..seg.end {
                assert_eq!(l4_segment(&good[..len]), None, "{name} cut at {len}");
            }
        }
    }

    /// The locator agrees with `parse_frame` on every fixture and on every
    /// truncation of one: same IP and L4 offsets, same end, same protocol.
    #[test]
    fn the_locator_agrees_with_parse_frame() {
        use super::super::fixtures::*;
        use super::super::ip::IpProtocol;
        use super::super::parse::{parse_frame, ParsedFrame};
        let all: [&[u8]; 18] = [
            &TCP4_64,
            &TCP6,
            &UDP4_QINQ,
            &UDP4_VLAN,
            &SCTP4,
            &ARP,
            &IP4_OPTS_UDP,
            &FRAG4_FIRST,
            &FRAG4_LAST,
            &FRAG6_FIRST,
            &FRAG6_LATER,
            &IP6_EXT_TCP,
            &ECHO4,
            &ECHO6,
            &BIG4,
            &BIG6,
            &VXLAN4_OUTER,
            &GUE6_OUTER,
        ];
        let mut located = 0;
        for frame in all {
            for len in 0..=frame.len() {
                let f = &frame[..len];
                let expected = match parse_frame(f) {
                    Ok(ParsedFrame::Ip(p))
                        if p.frag.is_none()
                            && matches!(p.protocol, IpProtocol::Tcp | IpProtocol::Udp)
                            && p.l4_present()
                            && p.ip_end() <= f.len() =>
                    {
                        let check = if p.protocol == IpProtocol::Tcp { 16 } else { 6 };
                        let start = usize::from(p.l4_offset);
                        (start + check + 2 <= p.ip_end()).then_some((
                            usize::from(p.l3_offset),
                            start,
                            p.ip_end(),
                            u8::from(p.protocol),
                        ))
                    }
                    _ => None,
                };
                let got = l4_segment(f).map(|s| (s.ip, s.start, s.end, s.protocol));
                assert_eq!(got, expected, "frame of {} bytes cut at {len}", frame.len());
                located += usize::from(got.is_some());
            }
        }
        assert!(located >= 8, "{located}");
    }
}
