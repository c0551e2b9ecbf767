//! Flow keys and the flow hash.
//!
//! A [`FlowKey`] names one flow: source and destination address, IP protocol,
//! source and destination port, and the network (VNI) the load balancer
//! serves. It is small, `Copy` and of fixed size, so the per-worker flow
//! table can store it inline.
//!
//! # The flow hash
//!
//! [`FlowKey::flow_hash`] is **XXH3-64 with seed 0 and the default secret**
//! (`XXH3_64bits()` of the xxHash project, release 0.8, whose output is
//! stable by its specification: `doc/xxhash_spec.md`,
//! <https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md>) over the
//! 41-byte canonical encoding of the key ([`FlowKey::to_bytes`]):
//!
//! | bytes  | field                                                      |
//! |--------|------------------------------------------------------------|
//! | 0..16  | source address, IPv6; IPv4 as `::ffff:a.b.c.d` (RFC 4291)   |
//! | 16..32 | destination address, same form                             |
//! | 32..34 | source port, big-endian (0 for a 3-tuple key)              |
//! | 34..36 | destination port, big-endian (0 for a 3-tuple key)         |
//! | 36..40 | network (the VNI), big-endian                              |
//! | 40     | IP protocol number                                         |
//!
//! Its output depends on nothing but these bytes: no per-process random
//! seed, no host byte order. Two lbfwd instances (or an external tool that
//! implements XXH3) compute the same hash for the same flow, so with the same
//! Maglev table they pick the same target. The reference `xxhsum -H3` over the
//! 41 bytes gives the same value. XXH3 rather than XXH64 because it is about
//! three times cheaper on a 41-byte input (four 64×64→128-bit multiplications
//! and a short avalanche), and this runs for every packet.
//!
//! [`xxh64`] (the classic XXH64) is used where speed does not matter: the
//! Maglev permutations.

use std::net::{IpAddr, Ipv6Addr};

pub use crate::wire::ip::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};

/// The seed of the flow hash (XXH3-64). Fixed by this specification;
/// changing it changes every target choice and breaks agreement between
/// instances.
pub const FLOW_HASH_SEED: u64 = 0;

/// Length of [`FlowKey::to_bytes`], the canonical encoding that is hashed.
pub const FLOW_KEY_BYTES: usize = 41;

/// One flow: the 5-tuple (or 3-tuple) plus the network.
///
/// Addresses are 16 bytes; IPv4 addresses are stored IPv4-mapped
/// (`::ffff:a.b.c.d`). A 3-tuple key (fragments, ICMP errors whose embedded
/// header carries no ports) has both ports zero.
///
/// The layout is fixed (`repr(C)`): the network and both ports sit side by
/// side in bytes 32..40, so comparing and hashing read them as one word.
#[derive(Clone, Copy, Debug, Eq, Default, PartialOrd, Ord)]
#[repr(C)]
pub struct FlowKey {
    /// Source address (IPv4-mapped for IPv4).
    pub src: [u8; 16],
    /// Destination address (IPv4-mapped for IPv4).
    pub dst: [u8; 16],
    /// The network the flow belongs to: the load balancer's VNI. Use the VNI
    /// (not a process-local index) so that every instance hashes alike.
    pub network: u32,
    /// Source port (TCP, UDP, SCTP); 0 in a 3-tuple key.
    pub src_port: u16,
    /// Destination port (TCP, UDP, SCTP); 0 in a 3-tuple key.
    pub dst_port: u16,
    /// IP protocol number (IPv4 `protocol`, IPv6 upper-layer next header).
    pub proto: u8,
}

impl PartialEq for FlowKey {
    /// Field by field, as a derived `PartialEq` would, but in wide words
    /// and without branches (the flow table compares keys per packet).
    #[inline(always)]
    fn eq(&self, o: &Self) -> bool {
        let addrs = (u128::from_ne_bytes(self.src) ^ u128::from_ne_bytes(o.src))
            | (u128::from_ne_bytes(self.dst) ^ u128::from_ne_bytes(o.dst));
        let rest = (self.ports_word() ^ o.ports_word()) | u64::from(self.proto ^ o.proto);
        (addrs | u128::from(rest)) == 0
    }
}

impl std::hash::Hash for FlowKey {
    /// Every field, in declaration order (consistent with `PartialEq`).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.src.hash(state);
        self.dst.hash(state);
        self.network.hash(state);
        self.src_port.hash(state);
        self.dst_port.hash(state);
        self.proto.hash(state);
    }
}

/// Maps an IPv4 address to its IPv4-mapped IPv6 form, as 16 bytes.
#[inline]
pub const fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    // As one 128-bit word (bytes 10 and 11 0xff, the address in 12..16):
    // compilers keep a word in registers where they build 16 single bytes.
    let addr = u32::from_le_bytes(a) as u128;
    ((addr << 96) | (0xffff << 80)).to_le_bytes()
}

/// The 16-byte form of an address: IPv6 as is, IPv4 IPv4-mapped.
#[inline]
pub fn addr_bytes(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => v4_mapped(a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The address that 16 bytes of a key stand for: IPv4 when IPv4-mapped.
#[inline]
pub fn bytes_addr(b: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

impl FlowKey {
    /// A 5-tuple key from 16-byte addresses (IPv4 already IPv4-mapped).
    #[inline]
    pub const fn new(
        src: [u8; 16],
        dst: [u8; 16],
        proto: u8,
        src_port: u16,
        dst_port: u16,
        network: u32,
    ) -> Self {
        FlowKey {
            src,
            dst,
            network,
            src_port,
            dst_port,
            proto,
        }
    }

    /// A 5-tuple key of an IPv4 packet (addresses in wire order).
    #[inline]
    pub const fn v4(
        src: [u8; 4],
        dst: [u8; 4],
        proto: u8,
        src_port: u16,
        dst_port: u16,
        network: u32,
    ) -> Self {
        Self::new(
            v4_mapped(src),
            v4_mapped(dst),
            proto,
            src_port,
            dst_port,
            network,
        )
    }

    /// A 5-tuple key of an IPv6 packet (addresses in wire order).
    #[inline]
    pub const fn v6(
        src: [u8; 16],
        dst: [u8; 16],
        proto: u8,
        src_port: u16,
        dst_port: u16,
        network: u32,
    ) -> Self {
        Self::new(src, dst, proto, src_port, dst_port, network)
    }

    /// A 3-tuple key (ports zero) of an IPv4 packet: for fragments and for
    /// ICMP errors whose embedded header carries no ports.
    #[inline]
    pub const fn v4_three(src: [u8; 4], dst: [u8; 4], proto: u8, network: u32) -> Self {
        Self::v4(src, dst, proto, 0, 0, network)
    }

    /// A 3-tuple key (ports zero) of an IPv6 packet.
    #[inline]
    pub const fn v6_three(src: [u8; 16], dst: [u8; 16], proto: u8, network: u32) -> Self {
        Self::v6(src, dst, proto, 0, 0, network)
    }

    /// A 5-tuple key from standard-library addresses (off the fast path:
    /// tests, tools, the control plane).
    pub fn from_ip(
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        src_port: u16,
        dst_port: u16,
        network: u32,
    ) -> Self {
        Self::new(
            addr_bytes(src),
            addr_bytes(dst),
            proto,
            src_port,
            dst_port,
            network,
        )
    }

    /// The same flow with the ports cleared: the 3-tuple key.
    #[inline]
    pub const fn three_tuple(&self) -> Self {
        Self::new(self.src, self.dst, self.proto, 0, 0, self.network)
    }

    /// The key of the opposite direction: addresses and ports swapped.
    ///
    /// An ICMP error addressed to a VIP embeds a packet that a target sent
    /// *from* the VIP to the client (direct server return). The embedded
    /// header's key, reversed, is the key of the client's original flow, so
    /// `embedded.reversed().flow_hash()` picks the flow's target.
    #[inline]
    pub const fn reversed(&self) -> Self {
        Self::new(
            self.dst,
            self.src,
            self.proto,
            self.dst_port,
            self.src_port,
            self.network,
        )
    }

    /// Whether both addresses are IPv4 (IPv4-mapped).
    #[inline]
    pub fn is_ipv4(&self) -> bool {
        is_v4_mapped(&self.src) && is_v4_mapped(&self.dst)
    }

    /// The source address.
    pub fn src_ip(&self) -> IpAddr {
        bytes_addr(self.src)
    }

    /// The destination address.
    pub fn dst_ip(&self) -> IpAddr {
        bytes_addr(self.dst)
    }

    /// The canonical 41-byte encoding that [`flow_hash`](Self::flow_hash)
    /// hashes (layout in the module documentation).
    #[inline(always)]
    pub fn to_bytes(&self) -> [u8; FLOW_KEY_BYTES] {
        let mut b = [0u8; FLOW_KEY_BYTES];
        b[0..16].copy_from_slice(&self.src);
        b[16..32].copy_from_slice(&self.dst);
        b[32..34].copy_from_slice(&self.src_port.to_be_bytes());
        b[34..36].copy_from_slice(&self.dst_port.to_be_bytes());
        b[36..40].copy_from_slice(&self.network.to_be_bytes());
        b[40] = self.proto;
        b
    }

    /// A cheap keyed hash of the key for a table that is local to one
    /// process (bucket choice in the per-worker flow table): three 64×64 →
    /// 128-bit multiplications of the fields with `seed`-derived keys. Not
    /// the flow hash, and not stable across processes when `seed` is random
    /// (which keeps the buckets an attacker can aim at secret); never use
    /// it for anything another instance must agree on.
    ///
    /// The network is left out (keys that differ only there share a
    /// bucket and are told apart by the key comparison): the network comes
    /// from the VIP lookup, and leaving it out lets the packet path hash
    /// the packet's own fields while that lookup is still under way.
    #[inline(always)]
    pub fn table_hash(&self, seed: u64) -> u64 {
        let s = u128::from_ne_bytes(self.src);
        let d = u128::from_ne_bytes(self.dst);
        let rest = self.ports_word() & !u64::from(u32::MAX);
        let x = fold_mul(s as u64 ^ seed, (s >> 64) as u64 ^ P1);
        let y = fold_mul(d as u64 ^ P2, (d >> 64) as u64 ^ seed.rotate_left(32));
        let z = fold_mul(rest ^ P3 ^ seed, u64::from(self.proto) ^ P4);
        let h = x ^ y.rotate_left(23) ^ z.rotate_left(43);
        xxh3_avalanche(h)
    }

    /// The network and both ports as one word, in the order of the
    /// `repr(C)` layout (bytes 32..40): one load on little-endian machines.
    #[inline(always)]
    fn ports_word(&self) -> u64 {
        u64::from(self.network)
            | (u64::from(self.src_port) << 32)
            | (u64::from(self.dst_port) << 48)
    }

    /// The flow hash: XXH3-64, seed [`FLOW_HASH_SEED`], default secret,
    /// over [`to_bytes`](Self::to_bytes). Fixed by specification; see the
    /// module documentation.
    #[inline]
    pub fn flow_hash(&self) -> u64 {
        // `xxh3_64_17to128(&self.to_bytes(), FLOW_HASH_SEED)`, with the
        // 16-byte windows of the 41-byte encoding assembled from the fields
        // in registers instead of stored and reloaded (which would stall on
        // store forwarding). A unit test checks the two against each other.
        let s0 = u64::from_le_bytes(first8(&self.src));
        let s1 = u64::from_le_bytes(last8(&self.src));
        let d0 = u64::from_le_bytes(first8(&self.dst));
        let d1 = u64::from_le_bytes(last8(&self.dst));
        // Bytes 32..41: sport (BE), dport (BE), network (BE), proto.
        let sport = u64::from(self.src_port);
        let tail_lo = (d1 >> 8) | ((sport >> 8) << 56); // bytes 25..33
        let tail_hi = (sport & 0xff)
            | (u64::from(self.dst_port.swap_bytes()) << 8)
            | (u64::from(self.network.swap_bytes()) << 24)
            | (u64::from(self.proto) << 56); // bytes 33..41
        let seed = FLOW_HASH_SEED;
        let mut acc = (FLOW_KEY_BYTES as u64).wrapping_mul(P1);
        acc = acc.wrapping_add(mix(d0, d1, 32, seed)); // bytes 16..32
        acc = acc.wrapping_add(mix(
            (s1 >> 8) | (d0 << 56),
            (d0 >> 8) | (d1 << 56),
            48,
            seed,
        )); // 9..25
        acc = acc.wrapping_add(mix(s0, s1, 0, seed)); // bytes 0..16
        acc = acc.wrapping_add(mix(tail_lo, tail_hi, 16, seed)); // bytes 25..41
        xxh3_avalanche(acc)
    }
}

#[inline]
fn is_v4_mapped(a: &[u8; 16]) -> bool {
    a[..10].iter().all(|&b| b == 0) && a[10] == 0xff && a[11] == 0xff
}

// XXH64 primes (xxhash_spec.md, "XXH64 Algorithm Description").
const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline(always)]
fn merge(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

#[inline(always)]
fn converge(v1: u64, v2: u64, v3: u64, v4: u64) -> u64 {
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
fn lane8(acc: u64, lane: u64) -> u64 {
    (acc ^ round(0, lane))
        .rotate_left(27)
        .wrapping_mul(P1)
        .wrapping_add(P4)
}

#[inline(always)]
fn lane4(acc: u64, lane: u32) -> u64 {
    (acc ^ u64::from(lane).wrapping_mul(P1))
        .rotate_left(23)
        .wrapping_mul(P2)
        .wrapping_add(P3)
}

#[inline(always)]
fn byte1(acc: u64, b: u8) -> u64 {
    (acc ^ u64::from(b).wrapping_mul(P5))
        .rotate_left(11)
        .wrapping_mul(P1)
}

#[inline(always)]
fn avalanche(mut acc: u64) -> u64 {
    acc ^= acc >> 33;
    acc = acc.wrapping_mul(P2);
    acc ^= acc >> 29;
    acc = acc.wrapping_mul(P3);
    acc ^= acc >> 32;
    acc
}

/// The first 64 bytes of XXH3's default secret (`XXH3_kSecret` in
/// `xxhash.h`); inputs of at most 64 bytes use no more of it.
const XXH3_SECRET: [u8; 64] = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
];

/// XXH3's `mix16B`: 16 input bytes against 16 secret bytes.
#[inline(always)]
fn mix16(input: &[u8], secret: usize, seed: u64) -> u64 {
    mix(read_u64(input), read_u64(&input[8..]), secret, seed)
}

/// XXH3's `mix16B` on the two little-endian words of the 16 input bytes.
#[inline(always)]
fn mix(lo: u64, hi: u64, secret: usize, seed: u64) -> u64 {
    let lo = lo ^ read_u64(&XXH3_SECRET[secret..]).wrapping_add(seed);
    let hi = hi ^ read_u64(&XXH3_SECRET[secret + 8..]).wrapping_sub(seed);
    let product = u128::from(lo) * u128::from(hi);
    (product as u64) ^ ((product >> 64) as u64)
}

/// The 128-bit product of `a` and `b`, folded to 64 bits (xor of halves).
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// `XXH3_avalanche`.
#[inline(always)]
fn xxh3_avalanche(mut acc: u64) -> u64 {
    acc ^= acc >> 37;
    acc = acc.wrapping_mul(0x1656_6791_9E37_79F9);
    acc ^ (acc >> 32)
}

#[inline(always)]
fn first8(b: &[u8; 16]) -> [u8; 8] {
    [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]
}

#[inline(always)]
fn last8(b: &[u8; 16]) -> [u8; 8] {
    [b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]
}

/// XXH3-64 (`XXH3_64bits_withSeed`, default secret) of an input of 17 to 64
/// bytes: the specification's `XXH3_len_17to128_64b` for the lengths the
/// 64-byte secret prefix covers.
#[inline]
pub(crate) fn xxh3_64_17to128(input: &[u8], seed: u64) -> u64 {
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
fn read_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn read_u32(b: &[u8]) -> u32 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Reference values: `xxhsum -H1` (xxHash 0.8.1) for seed 0, the Python
    /// `xxhash` package (bindings of the reference C library) for the others.
    #[test]
    fn xxh64_matches_reference_vectors() {
        let seq101: Vec<u8> = (0u8..101).collect();
        let x100 = [b'x'; 100];
        let cases: &[(&str, &[u8], u64, u64)] = &[
            ("empty, seed 0", b"", 0, 0xef46_db37_51d8_e999),
            ("one byte", b"a", 0, 0xd24e_c4f1_a98c_6e5b),
            ("three bytes", b"abc", 0, 0x44bc_2cf5_ad77_0999),
            (
                "39 bytes: stripe, lanes, word, bytes",
                b"Nobody inspects the spammish repetition",
                0,
                0xfbce_a83c_8a37_8bf1,
            ),
            ("100 bytes, three stripes", &x100, 0, 0x92f0_de5a_88a3_c094),
            ("empty, seed 1", b"", 1, 0xd5af_ba13_36a3_be4b),
            ("abc, seed 1", b"abc", 1, 0xbea9_ca81_9932_8908),
            (
                "abc, seed PRIME64_1",
                b"abc",
                0x9E37_79B1_85EB_CA87,
                0xa7cb_2aac_405e_36c7,
            ),
            ("0..101, seed 0", &seq101, 0, 0xe990_3849_5f85_381e),
            ("0..101, seed 7", &seq101, 7, 0xe878_e979_1dbc_64fa),
        ];
        for (what, data, seed, want) in cases {
            assert_eq!(xxh64(data, *seed), *want, "{what}");
        }
    }

    /// XXH3-64 reference values from the Python `xxhash` package (bindings
    /// of the reference C library 0.8): inputs of n bytes `(i * 7 + 3) mod
    /// 256`, seed 0 and seed PRIME64_1.
    #[test]
    fn xxh3_matches_reference_vectors() {
        let cases: &[(usize, u64, u64)] = &[
            (17, 0x714a_0440_8e79_b80f, 0x5d99_b78d_0339_af98),
            (32, 0x19ff_4ee1_d6ba_1a55, 0x5404_d759_1381_05f3),
            (33, 0x3e44_983a_d216_79c8, 0xaa14_5685_8966_3ae8),
            (41, 0xe148_a2d3_8aae_9bf5, 0xe013_bb0f_bd5d_1cec),
            (64, 0x287e_b1fa_9e4b_e2c1, 0x112a_ba6b_0bb8_b890),
        ];
        for &(n, seed0, seed_p1) in cases {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            assert_eq!(xxh3_64_17to128(&data, 0), seed0, "{n} bytes, seed 0");
            assert_eq!(xxh3_64_17to128(&data, P1), seed_p1, "{n} bytes, seed P1");
        }
    }

    /// A golden flow hash, computed with the reference `xxhsum -H3` (xxHash
    /// 0.8.1) over the 41 canonical bytes, so that a change of the encoding
    /// or the hash is caught.
    #[test]
    fn flow_hash_golden_value() {
        let key = FlowKey::v4(
            [192, 0, 2, 1],
            [198, 51, 100, 10],
            IPPROTO_TCP,
            40000,
            443,
            100,
        );
        let bytes = key.to_bytes();
        let want_bytes: [u8; 41] = [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1, //
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 10, //
            0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 100, 6,
        ];
        assert_eq!(bytes, want_bytes);
        assert_eq!(key.flow_hash(), GOLDEN_V4_TCP);
    }

    const GOLDEN_V4_TCP: u64 = 0x7959_8588_567f_9352;

    /// The field-wise flow hash equals XXH3 of the canonical bytes for many
    /// keys (every byte of every field varied).
    #[test]
    fn flow_hash_equals_xxh3_of_the_bytes() {
        let mut s = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..10_000 {
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src[..8].copy_from_slice(&next().to_le_bytes());
            src[8..].copy_from_slice(&next().to_le_bytes());
            dst[..8].copy_from_slice(&next().to_le_bytes());
            dst[8..].copy_from_slice(&next().to_le_bytes());
            let r = next();
            let key = FlowKey::new(
                src,
                dst,
                r as u8,
                (r >> 8) as u16,
                (r >> 24) as u16,
                (r >> 40) as u32,
            );
            assert_eq!(
                key.flow_hash(),
                xxh3_64_17to128(&key.to_bytes(), FLOW_HASH_SEED),
                "{key:?}"
            );
        }
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = FlowKey::v6(
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            IPPROTO_UDP,
            5353,
            53,
            7,
        );
        let h = base.flow_hash();
        let variants: [(&str, FlowKey); 7] = [
            (
                "src",
                FlowKey {
                    src: [1; 16],
                    ..base
                },
            ),
            (
                "dst",
                FlowKey {
                    dst: [1; 16],
                    ..base
                },
            ),
            (
                "proto",
                FlowKey {
                    proto: IPPROTO_TCP,
                    ..base
                },
            ),
            (
                "src_port",
                FlowKey {
                    src_port: 5354,
                    ..base
                },
            ),
            (
                "dst_port",
                FlowKey {
                    dst_port: 54,
                    ..base
                },
            ),
            ("network", FlowKey { network: 8, ..base }),
            (
                "ports swapped",
                FlowKey {
                    src_port: 53,
                    dst_port: 5353,
                    ..base
                },
            ),
        ];
        for (what, k) in variants {
            assert_ne!(k.flow_hash(), h, "changing {what} must change the hash");
        }
    }

    #[test]
    fn constructors_and_accessors() {
        let k = FlowKey::v4([10, 0, 0, 1], [10, 0, 0, 2], IPPROTO_UDP, 1000, 53, 42);
        assert!(k.is_ipv4());
        assert_eq!(k.src_ip(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(k.dst_ip(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(
            k,
            FlowKey::from_ip(
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
                IPPROTO_UDP,
                1000,
                53,
                42
            )
        );
        let t = k.three_tuple();
        assert_eq!((t.src_port, t.dst_port), (0, 0));
        assert_eq!(
            t,
            FlowKey::v4_three([10, 0, 0, 1], [10, 0, 0, 2], IPPROTO_UDP, 42)
        );
        let v6 = FlowKey::from_ip(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            IPPROTO_TCP,
            1,
            2,
            0,
        );
        assert!(!v6.is_ipv4());
        assert_eq!(v6.src_ip(), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            v6.three_tuple(),
            FlowKey::v6_three(v6.src, v6.dst, IPPROTO_TCP, 0)
        );
    }

    /// The key of an embedded reply header (VIP -> client), reversed, is the
    /// client's flow key and therefore hashes like it.
    #[test]
    fn reversed_embedded_header_matches_original_flow() {
        let client = [203, 0, 113, 7];
        let vip = [198, 51, 100, 10];
        let flow = FlowKey::v4(client, vip, IPPROTO_TCP, 51000, 80, 9);
        let embedded = FlowKey::v4(vip, client, IPPROTO_TCP, 80, 51000, 9);
        assert_eq!(embedded.reversed(), flow);
        assert_eq!(embedded.reversed().flow_hash(), flow.flow_hash());
        assert_eq!(flow.reversed().reversed(), flow);
    }

    /// The hand-written `eq` is the field-wise one: every single-field
    /// change (each byte of each field) makes keys unequal, and copies are
    /// equal; the table hash depends on every field but the network, and
    /// on the seed.
    #[test]
    fn key_equality_and_table_hash_see_every_field() {
        let base = FlowKey::v6([1; 16], [2; 16], IPPROTO_UDP, 5353, 53, 7);
        let copy = base;
        assert_eq!(base, copy);
        assert_eq!(base.table_hash(1), copy.table_hash(1));
        assert_ne!(base.table_hash(1), base.table_hash(2), "seeded");
        let mut variants = Vec::new();
        for i in 0..16 {
            let mut k = base;
            k.src[i] ^= 0x80;
            variants.push(k);
            let mut k = base;
            k.dst[i] ^= 1;
            variants.push(k);
        }
        for bit in [0, 8, 15] {
            variants.push(FlowKey {
                src_port: base.src_port ^ (1 << bit),
                ..base
            });
            variants.push(FlowKey {
                dst_port: base.dst_port ^ (1 << bit),
                ..base
            });
        }
        variants.push(FlowKey {
            proto: IPPROTO_TCP,
            ..base
        });
        for k in variants {
            assert_ne!(k, base, "{k:?}");
            assert_ne!(k.table_hash(1), base.table_hash(1), "{k:?}");
        }
        for bit in [0, 16, 31] {
            let k = FlowKey {
                network: base.network ^ (1 << bit),
                ..base
            };
            assert_ne!(k, base, "{k:?}");
            assert_eq!(k.table_hash(1), base.table_hash(1), "same bucket");
        }
    }

    #[test]
    fn key_is_small() {
        assert!(std::mem::size_of::<FlowKey>() <= 44);
    }
}
