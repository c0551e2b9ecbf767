//! Address pools: entries (CIDRs and `first-last` ranges, IPv4 and IPv6) and
//! lowest-free allocation.
//!
//! Layer 3 (resolution): the address arithmetic of allocation; uses only the
//! values of `model`.

use crate::model::IpFamily;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a pool entry did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Not an address where one was expected.
    #[error("{0:?} is not an IP address")]
    BadAddress(String),
    /// A prefix length that does not fit the family.
    #[error("prefix length {len} is outside 0-{max}")]
    BadPrefix {
        /// The length given.
        len: String,
        /// The family's maximum.
        max: u32,
    },
    /// A CIDR with host bits set.
    #[error("host bits are set (did you mean {0}?)")]
    HostBits(String),
    /// A range mixing IPv4 and IPv6.
    #[error("the two ends are of different families")]
    MixedFamilies,
    /// A range whose end is below its start.
    #[error("the last address is below the first")]
    Reversed,
}

/// An inclusive range of addresses of one family, as integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrRange {
    /// The family.
    pub family: IpFamily,
    /// First address.
    pub first: u128,
    /// Last address (inclusive).
    pub last: u128,
}

/// An address as (family, integer), the key pools and allocations use.
pub fn addr_key(addr: IpAddr) -> (IpFamily, u128) {
    match addr {
        IpAddr::V4(a) => (IpFamily::IPv4, u32::from(a) as u128),
        IpAddr::V6(a) => (IpFamily::IPv6, u128::from(a)),
    }
}

/// The address of a (family, integer) key.
pub fn key_addr(family: IpFamily, n: u128) -> IpAddr {
    match family {
        IpFamily::IPv4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpFamily::IPv6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

impl AddrRange {
    /// Parses `a.b.c.d/len`, `x::/len`, `first-last` or a single address.
    pub fn parse(entry: &str) -> Result<AddrRange, PoolError> {
        let entry = entry.trim();
        let ip = |s: &str| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| PoolError::BadAddress(s.trim().to_string()))
        };
        if let Some((addr, len)) = entry.split_once('/') {
            let addr = ip(addr)?;
            let (family, n) = addr_key(addr);
            let bits = if family == IpFamily::IPv4 { 32 } else { 128 };
            let l: u32 = len.trim().parse().map_err(|_| PoolError::BadPrefix {
                len: len.to_string(),
                max: bits,
            })?;
            if l > bits {
                return Err(PoolError::BadPrefix {
                    len: len.to_string(),
                    max: bits,
                });
            }
            let host = bits - l;
            let mask: u128 = if host == 128 {
                u128::MAX
            } else {
                (1u128 << host) - 1
            };
            if n & mask != 0 {
                return Err(PoolError::HostBits(format!(
                    "{}/{l}",
                    key_addr(family, n & !mask)
                )));
            }
            Ok(AddrRange {
                family,
                first: n,
                last: n | mask,
            })
        } else if let Some((a, b)) = entry.split_once('-') {
            let (fa, a) = addr_key(ip(a)?);
            let (fb, b) = addr_key(ip(b)?);
            if fa != fb {
                return Err(PoolError::MixedFamilies);
            }
            if b < a {
                return Err(PoolError::Reversed);
            }
            Ok(AddrRange {
                family: fa,
                first: a,
                last: b,
            })
        } else {
            let (family, n) = addr_key(ip(entry)?);
            Ok(AddrRange {
                family,
                first: n,
                last: n,
            })
        }
    }

    /// Number of addresses (saturating at `u128::MAX`).
    pub fn size(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }

    /// Whether `addr` lies in the range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let (f, n) = addr_key(addr);
        f == self.family && n >= self.first && n <= self.last
    }

    /// Whether two ranges share an address.
    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.family == other.family && self.first <= other.last && other.first <= self.last
    }

    /// The lowest address of the range not in `used`.
    pub fn lowest_free<V>(&self, used: &BTreeMap<(IpFamily, u128), V>) -> Option<IpAddr> {
        let mut candidate = self.first;
        for ((_, n), _) in used.range((self.family, self.first)..=(self.family, self.last)) {
            if *n == candidate {
                if candidate == self.last {
                    return None;
                }
                candidate += 1;
            } else if *n > candidate {
                break;
            }
        }
        Some(key_addr(self.family, candidate))
    }
}

impl std::fmt::Display for AddrRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}",
            key_addr(self.family, self.first),
            key_addr(self.family, self.last)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cidrs_ranges_and_single_addresses() {
        let r = AddrRange::parse("203.0.113.0/28").unwrap();
        assert_eq!(r.size(), 16);
        assert_eq!(r.to_string(), "203.0.113.0-203.0.113.15");
        let r = AddrRange::parse("203.0.113.100-203.0.113.110").unwrap();
        assert_eq!(r.size(), 11);
        let r = AddrRange::parse("2001:db8:100::/120").unwrap();
        assert_eq!(r.size(), 256);
        assert_eq!(r.family, IpFamily::IPv6);
        assert_eq!(AddrRange::parse("10.0.0.1").unwrap().size(), 1);
        assert_eq!(AddrRange::parse("::/0").unwrap().size(), u128::MAX);
    }

    #[test]
    fn rejects_malformed_entries() {
        assert_eq!(
            AddrRange::parse("203.0.113.5/28"),
            Err(PoolError::HostBits("203.0.113.0/28".into()))
        );
        assert!(matches!(
            AddrRange::parse("10.0.0.0/33"),
            Err(PoolError::BadPrefix { .. })
        ));
        assert_eq!(
            AddrRange::parse("10.0.0.9-10.0.0.1"),
            Err(PoolError::Reversed)
        );
        assert_eq!(
            AddrRange::parse("10.0.0.1-::5"),
            Err(PoolError::MixedFamilies)
        );
        assert!(matches!(
            AddrRange::parse("10.0.0.300"),
            Err(PoolError::BadAddress(_))
        ));
    }

    #[test]
    fn lowest_free_skips_used_addresses() {
        let r = AddrRange::parse("10.0.0.0-10.0.0.3").unwrap();
        let mut used = BTreeMap::new();
        assert_eq!(r.lowest_free(&used), Some("10.0.0.0".parse().unwrap()));
        for a in ["10.0.0.0", "10.0.0.1", "10.0.0.3"] {
            used.insert(addr_key(a.parse().unwrap()), ());
        }
        assert_eq!(r.lowest_free(&used), Some("10.0.0.2".parse().unwrap()));
        used.insert(addr_key("10.0.0.2".parse().unwrap()), ());
        assert_eq!(r.lowest_free(&used), None);
    }
}
