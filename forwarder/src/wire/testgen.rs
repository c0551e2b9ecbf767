//! Test frames for the parser, encapsulation and pipeline tests: a small
//! deterministic generator, well-formed frames of every shape the fast
//! paths care about, and random damage.

use crate::wire::ip::{IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A well-formed frame: Ethernet (no, one or two VLAN tags), IPv4 (with
/// or without options) or IPv6, TCP/UDP/SCTP/ICMP, `payload` bytes, and
/// `pad` bytes of Ethernet padding.
pub fn frame(r: &mut Rng, v6: bool, tags: usize, proto: u8, payload: usize, pad: usize) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for i in 0..tags {
        f.extend_from_slice(if i == 0 { &[0x88, 0xa8] } else { &[0x81, 0x00] });
        f.extend_from_slice(&[0, 7]);
    }
    let l4_len = match proto {
        IPPROTO_TCP => 20,
        IPPROTO_UDP => 8,
        IPPROTO_SCTP => 12,
        _ => 8,
    } + payload;
    let tos = r.next() as u8;
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd]);
        let word = (6u32 << 28) | (u32::from(tos) << 20) | (r.next() as u32 & 0xf_ffff);
        f.extend_from_slice(&word.to_be_bytes());
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&(0x2001_0db8_c000u128 << 80 | r.below(1000) as u128).to_be_bytes());
        f.extend_from_slice(&(0x2001_0db8_0100u128 << 80 | 5).to_be_bytes());
    } else {
        f.extend_from_slice(&[0x08, 0x00]);
        let opts = if r.below(8) == 0 { 4 } else { 0 };
        let total = (20 + opts + l4_len) as u16;
        f.push(0x45 + (opts / 4) as u8);
        f.push(tos);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&[198, 18, r.next() as u8, 1]);
        f.extend_from_slice(&[203, 0, 113, 5]);
        f.extend(std::iter::repeat_n(1u8, opts));
    }
    let sport = r.next() as u16;
    let dport: u16 = if r.below(2) == 0 { 80 } else { 1500 };
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    match proto {
        IPPROTO_TCP => f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 2, 1, 0, 0, 0, 0, 0]),
        IPPROTO_UDP => {
            f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
        _ => f.extend_from_slice(&[0; 8][..l4_len - payload - 4]),
    }
    f.extend((0..payload).map(|i| i as u8));
    f.extend(std::iter::repeat_n(0u8, pad));
    f
}

/// Random damage: one byte of the headers changed, or the frame cut.
pub fn damage(r: &mut Rng, f: &mut Vec<u8>) {
    match r.below(4) {
        0 => {}
        1 => {
            let at = r.below(f.len().min(80) as u64) as usize;
            f[at] = r.next() as u8;
        }
        2 => {
            let at = 12 + r.below(f.len().min(80) as u64 - 12) as usize;
            f[at] ^= 1 << r.below(8);
        }
        _ => f.truncate(r.below(f.len() as u64 + 1) as usize),
    }
}
