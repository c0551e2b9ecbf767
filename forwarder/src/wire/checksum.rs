//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
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
}
