//! The VIP map: destination address to load balancer (and VNI), IPv4 VIPs
//! under 4-byte keys, IPv6 VIPs under 16-byte keys.

use super::AddrKey;
/// What the packet path learns from a VIP lookup: enough to build the flow
/// key and look the flow up without touching the load balancer's
/// [`LbTable`](super::LbTable) (a flow seen before under the same tables needs nothing
/// more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vip {
    /// Index of the load balancer in [`Tables::lbs`](super::Tables::lbs).
    pub lb: u32,
    /// Its network's VNI (part of the flow key).
    pub vni: u32,
}

/// A key of an [`AddrMap`].
trait MapKey: Copy + Eq + Default {
    /// Where probing starts (before masking).
    fn slot(self) -> usize;
}

impl MapKey for u32 {
    #[inline(always)]
    fn slot(self) -> usize {
        (u64::from(self).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
    }
}

impl MapKey for u128 {
    #[inline(always)]
    fn slot(self) -> usize {
        let folded = (self as u64) ^ ((self >> 64) as u64).rotate_left(29);
        (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
    }
}

/// One entry of an [`AddrMap`]: 16 bytes for IPv4 keys, 32 for IPv6 ones,
/// aligned to its size so that no entry straddles two cache lines.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct VipEntry<K> {
    key: K,
    /// `vip.lb` [`VIP_EMPTY`]: a free entry.
    vip: Vip,
}

/// Open-addressing map from an address to its [`Vip`]; power-of-two
/// capacity, linear probing, at most half full. Each key sits next to its
/// value (one load, one bounds check per probe).
#[derive(Debug, Clone)]
struct AddrMap<K> {
    entries: Box<[VipEntry<K>]>,
    mask: usize,
}

const VIP_EMPTY: u32 = u32::MAX;

impl<K: MapKey> AddrMap<K> {
    fn new(entries: impl ExactSizeIterator<Item = (K, Vip)>) -> Self {
        let cap = (entries.len() * 2).next_power_of_two().max(16);
        let free = VipEntry {
            key: K::default(),
            vip: Vip {
                lb: VIP_EMPTY,
                vni: 0,
            },
        };
        let mut map = AddrMap {
            entries: vec![free; cap].into_boxed_slice(),
            mask: cap - 1,
        };
        for (key, vip) in entries {
            let mut i = key.slot() & map.mask;
            while map.entries[i].vip.lb != VIP_EMPTY {
                i = (i + 1) & map.mask;
            }
            map.entries[i] = VipEntry { key, vip };
        }
        map
    }

    #[inline(always)]
    fn get(&self, k: K) -> Option<Vip> {
        let mut i = k.slot() & self.mask;
        loop {
            let e = self.entries[i];
            if e.vip.lb == VIP_EMPTY {
                return None;
            }
            if e.key == k {
                return Some(e.vip);
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// Map from VIP to load-balancer index: IPv4 VIPs under 4-byte keys (four
/// times denser in the caches than 16-byte ones), IPv6 VIPs under 16-byte
/// keys.
#[derive(Debug, Clone)]
pub struct VipMap {
    v4: AddrMap<u32>,
    v6: AddrMap<u128>,
}

/// The IPv4 address of an IPv4-mapped key.
#[inline(always)]
fn mapped_v4(k: AddrKey) -> Option<u32> {
    (k >> 32 == 0xffff).then_some(k as u32)
}

impl VipMap {
    /// The map of `entries` (address key, what its lookup returns).
    pub fn new(entries: &[(AddrKey, Vip)]) -> Self {
        let v4: Vec<(u32, Vip)> = entries
            .iter()
            .filter_map(|&(k, v)| mapped_v4(k).map(|a| (a, v)))
            .collect();
        let v6: Vec<(u128, Vip)> = entries
            .iter()
            .filter(|(k, _)| mapped_v4(*k).is_none())
            .copied()
            .collect();
        VipMap {
            v4: AddrMap::new(v4.into_iter()),
            v6: AddrMap::new(v6.into_iter()),
        }
    }

    /// The load balancer of a VIP.
    #[inline(always)]
    pub fn get(&self, k: AddrKey) -> Option<Vip> {
        match mapped_v4(k) {
            Some(a) => self.v4.get(a),
            None => self.v6.get(k),
        }
    }

    /// The load balancer of an IPv4 VIP.
    #[inline(always)]
    pub fn get_v4(&self, addr: u32) -> Option<Vip> {
        self.v4.get(addr)
    }
}
