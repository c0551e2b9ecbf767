//! Typed zero-copy views over packet headers, the fast-path frame parser and
//! the emitters for the headers lbfwd writes.
//!
//! - Views (`XxxPacket<T: AsRef<[u8]>>`, smoltcp style): [`ethernet`],
//!   [`ipv4`], [`ipv6`], [`tcp`], [`udp`], [`sctp`], [`icmpv4`], [`icmpv6`],
//!   [`gue`], [`vxlan`]. `new_checked` validates the length once; after that
//!   no accessor panics.
//! - [`parse::parse_frame`]: one pass over a received frame producing a small
//!   `Copy` summary ([`Parsed`]) for the pipeline; [`fast`]: the fast-path
//!   parsers of the common packet ([`parse_v4`], [`parse_fast`]), which agree
//!   with it.
//! - Emitting: `XxxRepr::emit` writes a header into a caller-provided slice of
//!   `XxxRepr::HEADER_LEN` bytes; [`udp::emit_udp_ipv4`]/[`udp::emit_udp_ipv6`]
//!   write a UDP header with its checksum in front of a payload already in
//!   place; [`udp::source_port`] is the outer UDP source port of a flow.
//! - [`icmp_reply`]: in-place builders for the ICMP answers lbfwd sends (echo
//!   reply, frag-needed, packet-too-big).
//! - [`checksum`]: the Internet checksum (RFC 1071) and its incremental update
//!   (RFC 1624).
//!
//! Nothing in this module allocates, and no input makes it panic: every
//! malformed or truncated input is reported as a [`WireError`].

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod fast;
pub mod gue;
pub mod icmp_reply;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod parse;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vxlan;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
pub(crate) mod testgen;

pub use ethernet::EtherType;
pub use fast::{parse_fast, parse_v4, FastPacket, V4Packet};
pub use ip::{IpProtocol, IpVersion};
pub use parse::{
    parse_frame, Embedded, Fragment, IcmpInfo, IcmpKind, L4Info, NotIp, Parsed, ParsedFrame, Ports,
};

/// Why a packet could not be parsed or a header could not be emitted.
///
/// A small `Copy` value that never allocates. The pipeline maps each variant
/// to a drop reason; [`WireError::ALL`] lists them all (for counter tables) and
/// [`WireError::as_str`] names them (stable `snake_case`, for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[repr(u8)]
pub enum WireError {
    /// The frame is shorter than an Ethernet header (14 bytes).
    #[error("frame shorter than an Ethernet header")]
    TruncatedEthernet,
    /// A VLAN tag (802.1Q/802.1ad) is cut off by the end of the frame.
    #[error("VLAN tag cut off by the end of the frame")]
    TruncatedVlan,
    /// More than two stacked VLAN tags.
    #[error("more than two VLAN tags")]
    TooManyVlanTags,
    /// The IP version nibble does not match the EtherType (or is not 4/6 where
    /// an IP header is expected).
    #[error("IP version does not match the EtherType")]
    BadIpVersion,
    /// The frame ends inside the fixed IPv4 header (20 bytes).
    #[error("frame ends inside the IPv4 header")]
    TruncatedIpv4,
    /// IPv4 IHL below 5, or the options run past the end of the frame.
    #[error("bad IPv4 header length (IHL)")]
    BadIpv4HeaderLen,
    /// IPv4 total length smaller than its header.
    #[error("IPv4 total length smaller than the header")]
    BadIpv4TotalLen,
    /// The IPv4 header checksum does not verify.
    #[error("bad IPv4 header checksum")]
    BadIpv4Checksum,
    /// The frame ends inside the fixed IPv6 header (40 bytes).
    #[error("frame ends inside the IPv6 header")]
    TruncatedIpv6,
    /// The IP total length (IPv4) or payload length (IPv6) runs past the end
    /// of the frame.
    #[error("IP length runs past the end of the frame")]
    IpLengthBeyondFrame,
    /// An IPv6 extension header is cut off by the end of the packet.
    #[error("IPv6 extension header cut off")]
    TruncatedExtHeader,
    /// Bad IPv6 extension header chain: hop-by-hop not first, a second
    /// fragment header, or more extension headers than lbfwd walks.
    #[error("bad IPv6 extension header chain")]
    BadExtHeaderChain,
    /// A fragment that ends beyond 65535 bytes of reassembled datagram, or a
    /// non-last fragment whose length is not a multiple of 8.
    #[error("bad fragment (length or offset)")]
    BadFragment,
    /// The TCP header is cut off, or its data offset is below 5 or past the
    /// end of the packet.
    #[error("truncated or bad TCP header")]
    TruncatedTcp,
    /// The UDP header is cut off, or its length field is below 8 or past the
    /// end of the packet.
    #[error("truncated or bad UDP header")]
    TruncatedUdp,
    /// The SCTP common header (12 bytes) is cut off.
    #[error("truncated SCTP header")]
    TruncatedSctp,
    /// The ICMP/ICMPv6 header (8 bytes) is cut off.
    #[error("truncated ICMP header")]
    TruncatedIcmp,
    /// An ICMP error whose embedded original IP header is cut off or is not
    /// of the same IP version as the ICMP packet.
    #[error("ICMP error with a truncated or bad embedded header")]
    BadIcmpEmbedded,
    /// The checksum of a packet does not verify.
    #[error("bad checksum")]
    BadChecksum,
    /// A packet is not what an operation expects (e.g. an echo reply was
    /// asked for a packet that is not an echo request).
    #[error("packet is not of the expected kind")]
    Unexpected,
    /// The buffer given to an emitter or builder is too small.
    #[error("buffer too small")]
    BufferTooSmall,
    /// A length does not fit its field (e.g. an IPv4 total length over
    /// 65535, or an IPv6 packet ending more than 65535 bytes into its frame).
    #[error("length does not fit its header field")]
    LengthOverflow,
}

impl WireError {
    /// Every variant, in declaration order (`ALL[e as usize] == e`).
    pub const ALL: [WireError; 22] = [
        WireError::TruncatedEthernet,
        WireError::TruncatedVlan,
        WireError::TooManyVlanTags,
        WireError::BadIpVersion,
        WireError::TruncatedIpv4,
        WireError::BadIpv4HeaderLen,
        WireError::BadIpv4TotalLen,
        WireError::BadIpv4Checksum,
        WireError::TruncatedIpv6,
        WireError::IpLengthBeyondFrame,
        WireError::TruncatedExtHeader,
        WireError::BadExtHeaderChain,
        WireError::BadFragment,
        WireError::TruncatedTcp,
        WireError::TruncatedUdp,
        WireError::TruncatedSctp,
        WireError::TruncatedIcmp,
        WireError::BadIcmpEmbedded,
        WireError::BadChecksum,
        WireError::Unexpected,
        WireError::BufferTooSmall,
        WireError::LengthOverflow,
    ];

    /// Number of variants (size of a per-reason counter array).
    pub const COUNT: usize = Self::ALL.len();

    /// Index of this variant in [`WireError::ALL`], for counter arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A stable `snake_case` name, for metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            WireError::TruncatedEthernet => "truncated_ethernet",
            WireError::TruncatedVlan => "truncated_vlan",
            WireError::TooManyVlanTags => "too_many_vlan_tags",
            WireError::BadIpVersion => "bad_ip_version",
            WireError::TruncatedIpv4 => "truncated_ipv4",
            WireError::BadIpv4HeaderLen => "bad_ipv4_header_len",
            WireError::BadIpv4TotalLen => "bad_ipv4_total_len",
            WireError::BadIpv4Checksum => "bad_ipv4_checksum",
            WireError::TruncatedIpv6 => "truncated_ipv6",
            WireError::IpLengthBeyondFrame => "ip_length_beyond_frame",
            WireError::TruncatedExtHeader => "truncated_ext_header",
            WireError::BadExtHeaderChain => "bad_ext_header_chain",
            WireError::BadFragment => "bad_fragment",
            WireError::TruncatedTcp => "truncated_tcp",
            WireError::TruncatedUdp => "truncated_udp",
            WireError::TruncatedSctp => "truncated_sctp",
            WireError::TruncatedIcmp => "truncated_icmp",
            WireError::BadIcmpEmbedded => "bad_icmp_embedded",
            WireError::BadChecksum => "bad_checksum",
            WireError::Unexpected => "unexpected",
            WireError::BufferTooSmall => "buffer_too_small",
            WireError::LengthOverflow => "length_overflow",
        }
    }
}

/// Result of wire operations.
pub type Result<T> = core::result::Result<T, WireError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::EthernetRepr;
    use crate::wire::fixtures as fx;
    use crate::wire::ipv4::Ipv4Repr;
    use crate::wire::ipv6::Ipv6Repr;
    use crate::wire::udp::{emit_udp_ipv4, emit_udp_ipv6};
    use crate::wire::vxlan::VxlanRepr;

    const LB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const NH_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];
    const TGT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 4];
    const S4: [u8; 4] = [192, 0, 2, 1];
    const T4: [u8; 4] = [10, 0, 0, 7];

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<core::net::Ipv6Addr>().unwrap().octets()
    }

    /// Emits the header set of one encapsulation in front of the inner
    /// packet, as the pipeline does: `vxlan` adds VXLAN + inner Ethernet,
    /// `udp_port` 0 means IP-in-IP.
    fn encap(outer_v6: bool, udp_port: u16, vxlan: bool) -> Vec<u8> {
        let inner = &fx::INNER4[..];
        let ip_hdr = if outer_v6 { 40 } else { 20 };
        let udp_len = if udp_port == 0 { 0 } else { 8 };
        let vx_len = if vxlan { 8 + 14 } else { 0 };
        let h = 14 + ip_hdr + udp_len + vx_len;
        let mut f = vec![0u8; h + inner.len()];
        f[h..].copy_from_slice(inner);
        let ety = if outer_v6 {
            EtherType::Ipv6
        } else {
            EtherType::Ipv4
        };
        EthernetRepr {
            dst: NH_MAC,
            src: LB_MAC,
            ethertype: ety,
        }
        .emit(&mut f)
        .unwrap();
        let proto = if udp_port == 0 {
            IpProtocol::Ipv4
        } else {
            IpProtocol::Udp
        };
        let payload_len = f.len() - 14 - ip_hdr;
        let (s6, t6) = (v6("2001:db8:1::1"), v6("2001:db8:7::7"));
        if outer_v6 {
            Ipv6Repr {
                src: s6,
                dst: t6,
                next_header: proto,
                payload_len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0x12345,
            }
            .emit(&mut f[14..])
            .unwrap();
        } else {
            Ipv4Repr {
                src: S4,
                dst: T4,
                protocol: proto,
                payload_len,
                ttl: 64,
                dont_frag: true,
                ident: 0x0101,
                tos: 0,
            }
            .emit(&mut f[14..])
            .unwrap();
        }
        let u = 14 + ip_hdr;
        if vxlan {
            VxlanRepr { vni: 0x123456 }.emit(&mut f[u + 8..]).unwrap();
            EthernetRepr {
                dst: TGT_MAC,
                src: LB_MAC,
                ethertype: EtherType::Ipv4,
            }
            .emit(&mut f[u + 16..])
            .unwrap();
        }
        if udp_port != 0 {
            if outer_v6 {
                emit_udp_ipv6(&mut f[u..], 50000, udp_port, &s6, &t6).unwrap();
            } else {
                emit_udp_ipv4(&mut f[u..], 50000, udp_port, S4, T4, true).unwrap();
            }
        }
        f
    }

    #[test]
    fn encapsulation_header_sets_match_scapy() {
        assert_eq!(encap(false, 0, false), fx::IPIP4_OUTER);
        assert_eq!(encap(false, 6080, false), fx::GUE4_OUTER);
        assert_eq!(encap(true, 6080, false), fx::GUE6_OUTER);
        assert_eq!(encap(false, 4789, true), fx::VXLAN4_OUTER);
        assert_eq!(encap(true, 4789, true), fx::VXLAN6_OUTER);
    }

    #[test]
    fn all_lists_every_variant_in_index_order_with_unique_names() {
        for (i, e) in WireError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i, "{e:?}");
        }
        let mut names: Vec<&str> = WireError::ALL.iter().map(|e| e.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), WireError::COUNT);
        assert_eq!(core::mem::size_of::<WireError>(), 1);
    }
}
