//! IP protocol numbers and versions shared by IPv4 and IPv6.

/// IP version of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// An IP protocol / IPv6 next-header number (IANA "Assigned Internet Protocol
/// Numbers"). Decoding never fails: unknown numbers are kept in `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// 0: IPv6 hop-by-hop options.
    HopByHop,
    /// 1: ICMP.
    Icmp,
    /// 4: IPv4 encapsulation (IP-in-IP).
    Ipv4,
    /// 6: TCP.
    Tcp,
    /// 17: UDP.
    Udp,
    /// 41: IPv6 encapsulation.
    Ipv6,
    /// 43: IPv6 routing header.
    Ipv6Route,
    /// 44: IPv6 fragment header.
    Ipv6Frag,
    /// 50: encapsulating security payload.
    Esp,
    /// 51: authentication header.
    Ah,
    /// 58: ICMPv6.
    Icmpv6,
    /// 59: no next header.
    Ipv6NoNxt,
    /// 60: IPv6 destination options.
    Ipv6Opts,
    /// 132: SCTP.
    Sctp,
    /// Any other number.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    #[inline]
    fn from(n: u8) -> Self {
        match n {
            0 => IpProtocol::HopByHop,
            1 => IpProtocol::Icmp,
            4 => IpProtocol::Ipv4,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            41 => IpProtocol::Ipv6,
            43 => IpProtocol::Ipv6Route,
            44 => IpProtocol::Ipv6Frag,
            50 => IpProtocol::Esp,
            51 => IpProtocol::Ah,
            58 => IpProtocol::Icmpv6,
            59 => IpProtocol::Ipv6NoNxt,
            60 => IpProtocol::Ipv6Opts,
            132 => IpProtocol::Sctp,
            n => IpProtocol::Unknown(n),
        }
    }
}

impl From<IpProtocol> for u8 {
    #[inline]
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Ipv4 => 4,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Ipv6 => 41,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Esp => 50,
            IpProtocol::Ah => 51,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6NoNxt => 59,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Sctp => 132,
            IpProtocol::Unknown(n) => n,
        }
    }
}

impl IpProtocol {
    /// The protocol number.
    #[inline]
    pub fn number(self) -> u8 {
        self.into()
    }

    /// True for the transports whose first four bytes are the source and
    /// destination ports (TCP, UDP, SCTP).
    #[inline]
    pub fn has_ports(self) -> bool {
        matches!(self, IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Sctp)
    }
}

/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IP protocol number of SCTP.
pub const IPPROTO_SCTP: u8 = 132;
/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number (IPv6 next header) of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// The TOS (IPv4) or traffic class (IPv6) of the IP header at `l3`.
#[inline]
pub fn tos_at(data: &[u8], l3: usize, version: IpVersion) -> Option<u8> {
    let b = data.get(l3..l3 + 2)?;
    Some(match version {
        IpVersion::V4 => b[1],
        IpVersion::V6 => (b[0] << 4) | (b[1] >> 4),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_round_trips() {
        for n in 0..=255u8 {
            let p = IpProtocol::from(n);
            assert_eq!(u8::from(p), n);
            // Known numbers never decode to Unknown.
            if let IpProtocol::Unknown(u) = p {
                assert!(![0, 1, 4, 6, 17, 41, 43, 44, 50, 51, 58, 59, 60, 132].contains(&u));
            }
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(132), IpProtocol::Sctp);
        assert!(IpProtocol::Sctp.has_ports());
        assert!(!IpProtocol::Icmp.has_ports());
    }
}
