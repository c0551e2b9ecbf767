//! The port filter of one load balancer: allowed port ranges per
//! protocol, the first few inline.

use lbfwd_config::model::Protocol;

/// Port ranges kept inline in a [`PortFilter`] per protocol; more spill
/// to the heap.
pub const INLINE_PORT_RANGES: usize = 4;

/// The inclusive port ranges of one protocol: the first
/// [`INLINE_PORT_RANGES`] inline (no pointer to follow per packet), the rest
/// on the heap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PortRanges {
    inline: [(u16, u16); INLINE_PORT_RANGES],
    inline_len: u8,
    more: Box<[(u16, u16)]>,
}

impl PortRanges {
    fn new(mut ranges: Vec<(u16, u16)>) -> Self {
        ranges.sort_unstable();
        let n = ranges.len().min(INLINE_PORT_RANGES);
        let mut inline = [(0, 0); INLINE_PORT_RANGES];
        inline[..n].copy_from_slice(&ranges[..n]);
        PortRanges {
            inline,
            inline_len: n as u8,
            more: ranges[n..].into(),
        }
    }

    #[inline(always)]
    fn contains(&self, port: u16) -> bool {
        let n = usize::from(self.inline_len).min(INLINE_PORT_RANGES);
        self.inline[..n]
            .iter()
            .any(|&(lo, hi)| lo <= port && port <= hi)
            || (!self.more.is_empty() && self.more.iter().any(|&(lo, hi)| lo <= port && port <= hi))
    }

    fn is_empty(&self) -> bool {
        self.inline_len == 0
    }
}

/// The allow list of one load balancer: inclusive port ranges per protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortFilter {
    tcp: PortRanges,
    udp: PortRanges,
    sctp: PortRanges,
}

impl PortFilter {
    /// A filter allowing exactly these ranges.
    pub fn new(ranges: &[lbfwd_config::model::PortRange]) -> Self {
        let of = |p: Protocol| {
            PortRanges::new(
                ranges
                    .iter()
                    .filter(|r| r.protocol == p)
                    .map(|r| (r.first, r.last))
                    .collect(),
            )
        };
        PortFilter {
            tcp: of(Protocol::Tcp),
            udp: of(Protocol::Udp),
            sctp: of(Protocol::Sctp),
        }
    }

    /// Whether `port` of IP protocol `proto` may pass. `None` for protocols
    /// that are not TCP, UDP or SCTP.
    #[inline]
    pub fn allows(&self, proto: u8, port: u16) -> Option<bool> {
        let list = match proto {
            6 => &self.tcp,
            17 => &self.udp,
            132 => &self.sctp,
            _ => return None,
        };
        Some(list.contains(port))
    }

    /// Whether any port of this protocol is allowed.
    pub fn allows_protocol(&self, proto: u8) -> bool {
        match proto {
            6 => !self.tcp.is_empty(),
            17 => !self.udp.is_empty(),
            132 => !self.sctp.is_empty(),
            _ => false,
        }
    }
}
