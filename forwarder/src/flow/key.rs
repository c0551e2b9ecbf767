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
//! [`xxh64`](super::xxh64) (the classic XXH64) is used where speed does not
//! matter: the Maglev permutations.

use super::hash::{first8, fold_mul, last8, mix, xxh3_avalanche, P1, P2, P3, P4};
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

// SAFETY: a flow key is `repr(C)` of two `[u8; 16]`, a `u32`, two `u16` and
// a `u8` (and tail padding): integers only. The size check below fails the
// build when a field is added, so that this argument is looked at again.
// (Here rather than in `io::sys`, which must not import the flow module.)
#[allow(unsafe_code)]
unsafe impl crate::io::sys::Plain for FlowKey {}
const _: () = assert!(std::mem::size_of::<FlowKey>() == 44);
