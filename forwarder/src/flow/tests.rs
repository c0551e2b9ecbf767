//! Flow keys and hashes against the reference vectors.

use super::hash::P1;
use super::*;
use std::net::IpAddr;
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
