//! XXH64 and the XXH3-64 primitives the flow hash is built from (the
//! xxHash project's `doc/xxhash_spec.md`); bit-exact with the reference.

// XXH64 primes (xxhash_spec.md, "XXH64 Algorithm Description").
pub(super) const P1: u64 = 0x9E37_79B1_85EB_CA87;
pub(super) const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
pub(super) const P3: u64 = 0x1656_67B1_9E37_79F9;
pub(super) const P4: u64 = 0x85EB_CA77_C2B2_AE63;
pub(super) const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
pub(super) fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline(always)]
pub(super) fn merge(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

#[inline(always)]
pub(super) fn converge(v1: u64, v2: u64, v3: u64, v4: u64) -> u64 {
    let mut acc = v1
        .rotate_left(1)
        .wrapping_add(v2.rotate_left(7))
        .wrapping_add(v3.rotate_left(12))
        .wrapping_add(v4.rotate_left(18));
    acc = merge(acc, v1);
    acc = merge(acc, v2);
    acc = merge(acc, v3);
    merge(acc, v4)
}

#[inline(always)]
pub(super) fn lane8(acc: u64, lane: u64) -> u64 {
    (acc ^ round(0, lane))
        .rotate_left(27)
        .wrapping_mul(P1)
        .wrapping_add(P4)
}

#[inline(always)]
pub(super) fn lane4(acc: u64, lane: u32) -> u64 {
    (acc ^ u64::from(lane).wrapping_mul(P1))
        .rotate_left(23)
        .wrapping_mul(P2)
        .wrapping_add(P3)
}

#[inline(always)]
pub(super) fn byte1(acc: u64, b: u8) -> u64 {
    (acc ^ u64::from(b).wrapping_mul(P5))
        .rotate_left(11)
        .wrapping_mul(P1)
}

#[inline(always)]
pub(super) fn avalanche(mut acc: u64) -> u64 {
    acc ^= acc >> 33;
    acc = acc.wrapping_mul(P2);
    acc ^= acc >> 29;
    acc = acc.wrapping_mul(P3);
    acc ^= acc >> 32;
    acc
}

/// The first 64 bytes of XXH3's default secret (`XXH3_kSecret` in
/// `xxhash.h`); inputs of at most 64 bytes use no more of it.
pub(super) const XXH3_SECRET: [u8; 64] = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
];

/// XXH3's `mix16B`: 16 input bytes against 16 secret bytes.
#[inline(always)]
pub(super) fn mix16(input: &[u8], secret: usize, seed: u64) -> u64 {
    mix(read_u64(input), read_u64(&input[8..]), secret, seed)
}

/// XXH3's `mix16B` on the two little-endian words of the 16 input bytes.
#[inline(always)]
pub(super) fn mix(lo: u64, hi: u64, secret: usize, seed: u64) -> u64 {
    let lo = lo ^ read_u64(&XXH3_SECRET[secret..]).wrapping_add(seed);
    let hi = hi ^ read_u64(&XXH3_SECRET[secret + 8..]).wrapping_sub(seed);
    let product = u128::from(lo) * u128::from(hi);
    (product as u64) ^ ((product >> 64) as u64)
}

/// The 128-bit product of `a` and `b`, folded to 64 bits (xor of halves).
#[inline(always)]
pub(super) fn fold_mul(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// `XXH3_avalanche`.
#[inline(always)]
pub(super) fn xxh3_avalanche(mut acc: u64) -> u64 {
    acc ^= acc >> 37;
    acc = acc.wrapping_mul(0x1656_6791_9E37_79F9);
    acc ^ (acc >> 32)
}

#[inline(always)]
pub(super) fn first8(b: &[u8; 16]) -> [u8; 8] {
    [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]
}

#[inline(always)]
pub(super) fn last8(b: &[u8; 16]) -> [u8; 8] {
    [b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]
}

/// XXH3-64 (`XXH3_64bits_withSeed`, default secret) of an input of 17 to 64
/// bytes: the specification's `XXH3_len_17to128_64b` for the lengths the
/// 64-byte secret prefix covers.
#[inline]
pub fn xxh3_64_17to128(input: &[u8], seed: u64) -> u64 {
    let len = input.len();
    assert!((17..=64).contains(&len), "xxh3_64_17to128: {len} bytes");
    let mut acc = (len as u64).wrapping_mul(P1);
    if len > 32 {
        acc = acc.wrapping_add(mix16(&input[16..], 32, seed));
        acc = acc.wrapping_add(mix16(&input[len - 32..], 48, seed));
    }
    acc = acc.wrapping_add(mix16(input, 0, seed));
    acc = acc.wrapping_add(mix16(&input[len - 16..], 16, seed));
    xxh3_avalanche(acc)
}

#[inline(always)]
pub(super) fn read_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
pub(super) fn read_u32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w)
}

/// XXH64 of `data` with `seed`, as specified in the xxHash project's
/// `doc/xxhash_spec.md` (lanes little-endian on every host). Equal to
/// `xxhsum -H1` for seed 0.
///
/// Used for the Maglev permutations.
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    let len = data.len();
    let mut rest = data;
    let mut acc = if len >= 32 {
        let mut v1 = seed.wrapping_add(P1).wrapping_add(P2);
        let mut v2 = seed.wrapping_add(P2);
        let mut v3 = seed;
        let mut v4 = seed.wrapping_sub(P1);
        while rest.len() >= 32 {
            v1 = round(v1, read_u64(&rest[0..]));
            v2 = round(v2, read_u64(&rest[8..]));
            v3 = round(v3, read_u64(&rest[16..]));
            v4 = round(v4, read_u64(&rest[24..]));
            rest = &rest[32..];
        }
        converge(v1, v2, v3, v4)
    } else {
        seed.wrapping_add(P5)
    };
    acc = acc.wrapping_add(len as u64);
    while rest.len() >= 8 {
        acc = lane8(acc, read_u64(rest));
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        acc = lane4(acc, read_u32(rest));
        rest = &rest[4..];
    }
    for &b in rest {
        acc = byte1(acc, b);
    }
    avalanche(acc)
}
