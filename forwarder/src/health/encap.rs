//! The `encap` probe: a packet sent through lbfwd's own encapsulation to
//! the VIP, answered by the target directly.
//!
//! The inner packet goes from the appliance's underlay source address of
//! the VIP's family (`[underlay] source_ipv4` / `source_ipv6`) to the VIP:
//! a TCP SYN to `port` when the check has one, else an ICMP echo request.
//! It is encapsulated exactly as the dataplane encapsulates traffic toward
//! that target (same outer headers, VNI, inner MAC: [`encapsulate`] of
//! `crate::encap`), and sent as a whole outer IP packet on a raw socket
//! (`IPPROTO_RAW`, the header included) through the node's kernel, which
//! routes it to the target's underlay address.
//!
//! The target, if it decapsulates and owns the VIP, answers from the VIP to
//! the appliance's underlay address, directly (direct server return): a
//! SYN-ACK (pass; lbfwd then sends an RST through the tunnel so that the
//! target drops the half-open connection), an RST (fail: the port is
//! closed), or an echo reply (pass). A target that cannot decapsulate
//! (tunnel device down, wrong VNI or MAC) or does not own the VIP never
//! answers: the probe times out.
//!
//! Where the answer arrives: it is addressed to the underlay source
//! address, not to a VIP, so it is host-path traffic. With `af_packet` and
//! `af_xdp` the interface stays the kernel's (the XDP program redirects only
//! VIP traffic), so the node's kernel receives it and raw sockets
//! (`IPPROTO_TCP`, `IPPROTO_ICMP`, `IPPROTO_ICMPV6`) get a copy; the kernel
//! itself answers an unexpected SYN-ACK with an RST toward the VIP, which
//! does no harm. With `dpdk` the same holds only when `host_tap` gives the
//! kernel the host path and the underlay address is on that TAP. The node's
//! kernel must have a route to the targets' underlay addresses (it has on
//! a one-armed appliance: the dataplane interface carries that address).

use super::prober::FIRST_PROBE_TOKEN;
// The dataplane's encapsulation, through its public API (the one place it
// is imported here).
use crate::encap::encapsulate;

use crate::frame::{Frame, HEADROOM};
use crate::tables::{Target, UnderlayParams};
use crate::wire::checksum;
use crate::wire::parse::{parse_frame, ParsedFrame};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

/// Raw receive sockets' tokens (below [`FIRST_PROBE_TOKEN`]).
const RECV_TCP4: Token = Token(2);
const RECV_ICMP4: Token = Token(3);
const RECV_TCP6: Token = Token(4);
const RECV_ICMP6: Token = Token(5);
/// The inner TCP source ports probes use: above Linux's default ephemeral
/// range (32768-60999), so the node's own connections do not collide.
const PROBE_PORTS: (u16, u16) = (61000, 65000);
/// ICMP echo payload, so that the target's answer is recognisable in a
/// capture.
const ECHO_PAYLOAD: &[u8; 16] = b"lbfwd-healthchk!";

/// One target of an encap check.
#[derive(Clone, Debug)]
pub struct EncapTarget {
    vni: u32,
    /// (inner source, VIP), or why there is none.
    addrs: Result<(IpAddr, IpAddr), String>,
    target: Target,
    port: Option<u16>,
}

impl EncapTarget {
    /// The probe toward destination `name` at `underlay` of a load
    /// balancer with network `vni` and addresses `vips`: to the first VIP
    /// for whose family the appliance has an underlay source address.
    pub fn new(
        vni: u32,
        vips: &[IpAddr],
        name: &str,
        underlay: IpAddr,
        mac: Option<[u8; 6]>,
        port: Option<u16>,
        u: &UnderlayParams,
    ) -> Self {
        let source_of = |vip: &IpAddr| match vip {
            IpAddr::V4(_) => u.source_ipv4.map(IpAddr::V4),
            IpAddr::V6(_) => u.source_ipv6.map(IpAddr::V6),
        };
        let addrs = vips
            .iter()
            .find_map(|vip| source_of(vip).map(|src| (src, *vip)))
            .ok_or_else(|| {
                "no [underlay] source address of the VIP's family for the inner packet".to_string()
            });
        EncapTarget {
            vni,
            addrs,
            target: Target {
                name: name.to_string(),
                uid: String::new(),
                underlay: underlay.into(),
                mac: mac.unwrap_or_default(),
                weight: 1,
                slot: 0,
            },
            port,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Match {
    /// SYN-ACK or RST to this inner source port, acknowledging this number.
    Tcp { sport: u16, ack: u32 },
    /// Echo reply with this identifier and sequence number.
    Icmp { v6: bool, ident: u16, seq: u16 },
}

struct Pending {
    m: Match,
    target: EncapTarget,
    /// The SYN's sequence number (for the RST after a SYN-ACK).
    isn: u32,
    sport: u16,
}

/// Raw sockets and the probes waiting for an answer.
pub struct EncapProber {
    underlay: UnderlayParams,
    send4: Option<Socket>,
    send6: Option<Socket>,
    recv: HashMap<Token, Socket>,
    pending: HashMap<Token, Pending>,
    by_match: HashMap<Match, Token>,
    counter: u32,
    ident: u16,
    seed: u64,
}

fn io_err(what: &str, e: std::io::Error) -> String {
    format!("{what}: {e}")
}

impl EncapProber {
    /// No sockets yet: they are opened by the first encap probe.
    pub fn new(underlay: UnderlayParams) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        EncapProber {
            underlay,
            send4: None,
            send6: None,
            recv: HashMap::new(),
            pending: HashMap::new(),
            by_match: HashMap::new(),
            counter: 0,
            ident: std::process::id() as u16,
            seed,
        }
    }

    /// The underlay settings probes are encapsulated with.
    pub fn underlay(&self) -> &UnderlayParams {
        &self.underlay
    }

    /// Whether `token` is one of the raw receive sockets.
    pub fn owns(&self, token: Token) -> bool {
        token.0 < FIRST_PROBE_TOKEN && self.recv.contains_key(&token)
    }

    /// Forgets the probe `token` (ended or abandoned).
    pub fn forget(&mut self, token: Token) {
        if let Some(p) = self.pending.remove(&token) {
            self.by_match.remove(&p.m);
        }
    }

    fn next_random(&mut self) -> u32 {
        // SplitMix64 over a per-process seed: unpredictable enough that a
        // stray packet does not match a probe; not a security boundary.
        self.counter = self.counter.wrapping_add(1);
        let mut z = self
            .seed
            .wrapping_add(u64::from(self.counter).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u32
    }

    fn open_recv(&mut self, registry: &Registry, token: Token) -> Result<(), String> {
        if self.recv.contains_key(&token) {
            return Ok(());
        }
        let (domain, proto) = match token {
            RECV_TCP4 => (Domain::IPV4, Protocol::TCP),
            RECV_ICMP4 => (Domain::IPV4, Protocol::ICMPV4),
            RECV_TCP6 => (Domain::IPV6, Protocol::TCP),
            _ => (Domain::IPV6, Protocol::ICMPV6),
        };
        let s = Socket::new(domain, Type::RAW, Some(proto)).map_err(|e| io_err("raw socket", e))?;
        s.set_nonblocking(true)
            .map_err(|e| io_err("raw socket", e))?;
        registry
            .register(&mut SourceFd(&s.as_raw_fd()), token, Interest::READABLE)
            .map_err(|e| io_err("register", e))?;
        self.recv.insert(token, s);
        Ok(())
    }

    fn sender(&mut self, v6: bool) -> Result<&Socket, String> {
        let slot = if v6 { &mut self.send6 } else { &mut self.send4 };
        if slot.is_none() {
            let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
            // IPPROTO_RAW: the outer IP header is ours (header included).
            let s = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))
                .map_err(|e| io_err("raw send socket", e))?;
            if v6 {
                s.set_header_included_v6(true)
                    .map_err(|e| io_err("IPV6_HDRINCL", e))?;
            }
            s.set_nonblocking(true)
                .map_err(|e| io_err("raw send socket", e))?;
            *slot = Some(s);
        }
        slot.as_ref()
            .ok_or_else(|| "no raw send socket".to_string())
    }

    /// Builds the probe toward `t`, encapsulates and sends it; the answer
    /// is looked for under `token`.
    pub fn send(
        &mut self,
        registry: &Registry,
        t: &EncapTarget,
        token: Token,
    ) -> Result<(), String> {
        let (src, vip) = t.addrs.clone()?;
        let v6 = vip.is_ipv6();
        let (m, isn, sport) = match t.port {
            Some(_) => {
                let r = self.next_random();
                let span = u32::from(PROBE_PORTS.1 - PROBE_PORTS.0);
                let sport = PROBE_PORTS.0 + (r % span) as u16;
                let isn = self.next_random();
                (
                    Match::Tcp {
                        sport,
                        ack: isn.wrapping_add(1),
                    },
                    isn,
                    sport,
                )
            }
            None => {
                let seq = self.counter as u16;
                self.counter = self.counter.wrapping_add(1);
                (
                    Match::Icmp {
                        v6,
                        ident: self.ident,
                        seq,
                    },
                    0,
                    0,
                )
            }
        };
        let inner = match (m, t.port) {
            (Match::Tcp { .. }, Some(port)) => tcp_segment(src, vip, sport, port, isn, 0, TCP_SYN),
            (Match::Icmp { ident, seq, .. }, _) => echo_request(src, vip, ident, seq),
            _ => return Err("probe shape".into()),
        };
        self.transmit(t, &inner, u64::from(isn) << 16 | u64::from(sport))?;
        let recv_token = match (v6, t.port.is_some()) {
            (false, true) => RECV_TCP4,
            (false, false) => RECV_ICMP4,
            (true, true) => RECV_TCP6,
            (true, false) => RECV_ICMP6,
        };
        self.open_recv(registry, recv_token)?;
        if let Some(old) = self.by_match.insert(m, token) {
            self.pending.remove(&old);
        }
        self.pending.insert(
            token,
            Pending {
                m,
                target: t.clone(),
                isn,
                sport,
            },
        );
        Ok(())
    }

    /// Encapsulates the inner IP packet `inner` toward `t` and sends the
    /// outer IP packet.
    fn transmit(&mut self, t: &EncapTarget, inner: &[u8], hash: u64) -> Result<(), String> {
        let mut buf = [0u8; HEADROOM + 14 + 128];
        let len = 14 + inner.len();
        let eth = &mut buf[HEADROOM..HEADROOM + 14];
        eth[12..14].copy_from_slice(if inner[0] >> 4 == 6 {
            &[0x86, 0xdd]
        } else {
            &[0x08, 0x00]
        });
        buf[HEADROOM + 14..HEADROOM + len].copy_from_slice(inner);
        let parsed = match parse_frame(&buf[HEADROOM..HEADROOM + len]) {
            Ok(ParsedFrame::Ip(p)) => p,
            Ok(_) => return Err("probe packet did not parse as IP".into()),
            Err(e) => return Err(format!("probe packet did not parse: {e:?}")),
        };
        let mut frame = Frame::new(&mut buf, HEADROOM, len);
        encapsulate(&self.underlay, t.vni, &t.target, hash, &mut frame, &parsed)
            .map_err(|e| format!("cannot encapsulate toward the target: {e:?}"))?;
        let outer = &frame.data()[14..];
        let dst: IpAddr = match t.target.underlay {
            crate::tables::Underlay::V4(a) => IpAddr::from(a),
            crate::tables::Underlay::V6(a) => IpAddr::from(a),
        };
        let to = SockAddr::from(SocketAddr::new(dst, 0));
        let s = self.sender(dst.is_ipv6())?;
        s.send_to(outer, &to)
            .map_err(|e| io_err("sending the probe", e))?;
        Ok(())
    }

    /// Reads every packet waiting on the raw socket `token`; the probes
    /// they answer go to `done`.
    pub fn readable(&mut self, token: Token, done: &mut Vec<(Token, Result<(), String>)>) {
        let mut buf = [0u8; 2048];
        loop {
            let Some(s) = self.recv.get(&token) else {
                return;
            };
            let n = match (&*s).read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let pkt = &buf[..n];
            // IPv4 raw sockets deliver the IP header, IPv6 ones do not.
            let l4 = match token {
                RECV_TCP4 | RECV_ICMP4 => {
                    let ihl = usize::from(pkt.first().map_or(0, |b| b & 0x0f)) * 4;
                    if ihl < 20 || pkt.len() < ihl {
                        continue;
                    }
                    &pkt[ihl..]
                }
                _ => pkt,
            };
            let answer = match token {
                RECV_TCP4 | RECV_TCP6 => tcp_answer(l4),
                RECV_ICMP4 => echo_answer(l4, 0, false, self.ident),
                _ => echo_answer(l4, 129, true, self.ident),
            };
            let Some((m, result)) = answer else {
                continue;
            };
            let Some(probe) = self.by_match.get(&m).copied() else {
                continue;
            };
            if let Some(p) = self.pending.get(&probe) {
                if let (Ok(()), Match::Tcp { .. }) = (&result, p.m) {
                    // Free the target's half-open connection.
                    if let (Ok((src, vip)), Some(port)) = (p.target.addrs.clone(), p.target.port) {
                        let rst =
                            tcp_segment(src, vip, p.sport, port, p.isn.wrapping_add(1), 0, TCP_RST);
                        let target = p.target.clone();
                        let hash = u64::from(p.isn) << 16 | u64::from(p.sport);
                        let _ = self.transmit(&target, &rst, hash);
                    }
                }
            }
            done.push((probe, result));
        }
    }
}

const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// An IPv4 or IPv6 header of `payload_len` bytes of `proto` from `src` to
/// `dst` (same family), followed by room for the payload.
fn ip_header(src: IpAddr, dst: IpAddr, proto: u8, payload_len: usize) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + payload_len) as u16;
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = checksum::checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, proto, 64];
            h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        // Callers pair addresses of one family.
        _ => Vec::new(),
    }
}

fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            checksum::pseudo_header_v4(s.octets(), d.octets(), proto, len as u16)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            checksum::pseudo_header_v6(&s.octets(), &d.octets(), proto, len as u32)
        }
        _ => 0,
    }
}

/// An IP packet with a bare TCP segment (no options, no data).
fn tcp_segment(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
) -> Vec<u8> {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let c = checksum::checksum_with(pseudo(src, dst, 6, t.len()), &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut p = ip_header(src, dst, 6, t.len());
    p.extend_from_slice(&t);
    p
}

/// An IP packet with an ICMP (IPv4) or ICMPv6 echo request.
fn echo_request(src: IpAddr, dst: IpAddr, ident: u16, seq: u16) -> Vec<u8> {
    let v6 = dst.is_ipv6();
    let mut m = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(ECHO_PAYLOAD);
    let c = if v6 {
        checksum::checksum_with(pseudo(src, dst, 58, m.len()), &m)
    } else {
        checksum::checksum(&m)
    };
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut p = ip_header(src, dst, if v6 { 58 } else { 1 }, m.len());
    p.extend_from_slice(&m);
    p
}

/// A TCP answer to a probe: its match key and verdict.
fn tcp_answer(t: &[u8]) -> Option<(Match, Result<(), String>)> {
    if t.len() < 20 {
        return None;
    }
    let sport = u16::from_be_bytes([t[0], t[1]]);
    let dport = u16::from_be_bytes([t[2], t[3]]);
    let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
    let flags = t[13];
    if !(PROBE_PORTS.0..PROBE_PORTS.1).contains(&dport) || flags & TCP_ACK == 0 {
        return None;
    }
    let m = Match::Tcp { sport: dport, ack };
    if flags & TCP_RST != 0 {
        Some((
            m,
            Err(format!(
                "port {sport} of the VIP is closed on the target (RST through the tunnel)"
            )),
        ))
    } else if flags & TCP_SYN != 0 {
        Some((m, Ok(())))
    } else {
        None
    }
}

/// An echo reply (`reply_type`) with our identifier.
fn echo_answer(
    m: &[u8],
    reply_type: u8,
    v6: bool,
    ident: u16,
) -> Option<(Match, Result<(), String>)> {
    if m.len() < 8 || m[0] != reply_type || u16::from_be_bytes([m[4], m[5]]) != ident {
        return None;
    }
    let seq = u16::from_be_bytes([m[6], m[7]]);
    Some((Match::Icmp { v6, ident, seq }, Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lbfwd_config::model::Encap;

    fn underlay() -> UnderlayParams {
        UnderlayParams {
            encap: Encap::Vxlan { port: 4789 },
            source_ipv4: Some("10.0.2.2".parse().unwrap()),
            source_ipv6: None,
            source_mac: [2, 0, 0, 0, 2, 2],
            next_hop_mac: [2, 0, 0, 0, 2, 1],
            mtu: 1600,
        }
    }

    #[test]
    fn syn_is_valid_and_answer_matches() {
        let src: IpAddr = "10.0.2.2".parse().unwrap();
        let vip: IpAddr = "203.0.113.10".parse().unwrap();
        let p = tcp_segment(src, vip, 61234, 80, 1000, 0, TCP_SYN);
        assert_eq!(p.len(), 40);
        assert!(checksum::verify(&p[..20]), "IPv4 header checksum");
        assert!(checksum::add(pseudo(src, vip, 6, 20), checksum::sum(&p[20..])) == 0xffff);
        // The target's SYN-ACK acknowledges isn + 1.
        let mut synack = tcp_segment(vip, src, 80, 61234, 5, 1001, TCP_SYN | TCP_ACK);
        let (m, r) = tcp_answer(&synack[20..]).unwrap();
        assert_eq!(
            m,
            Match::Tcp {
                sport: 61234,
                ack: 1001
            }
        );
        assert!(r.is_ok());
        synack[33] = TCP_RST | TCP_ACK;
        assert!(tcp_answer(&synack[20..]).unwrap().1.is_err());
    }

    #[test]
    fn echo_v6_checksum_and_answer() {
        let src: IpAddr = "fd00:2::2".parse().unwrap();
        let vip: IpAddr = "2001:db8:100::10".parse().unwrap();
        let p = echo_request(src, vip, 7, 9);
        let m = &p[40..];
        assert!(checksum::add(pseudo(src, vip, 58, m.len()), checksum::sum(m)) == 0xffff);
        let mut reply = m.to_vec();
        reply[0] = 129;
        assert_eq!(
            echo_answer(&reply, 129, true, 7).unwrap().0,
            Match::Icmp {
                v6: true,
                ident: 7,
                seq: 9
            }
        );
        assert!(echo_answer(&reply, 129, true, 8).is_none());
    }

    #[test]
    fn target_without_source_of_vip_family_is_reported() {
        let t = EncapTarget::new(
            100,
            &["2001:db8:100::10".parse().unwrap()],
            "be1",
            "10.0.3.11".parse().unwrap(),
            None,
            Some(80),
            &underlay(),
        );
        assert!(t.addrs.is_err());
        let t = EncapTarget::new(
            100,
            &[
                "2001:db8:100::10".parse().unwrap(),
                "203.0.113.10".parse().unwrap(),
            ],
            "be1",
            "10.0.3.11".parse().unwrap(),
            None,
            Some(80),
            &underlay(),
        );
        assert_eq!(
            t.addrs.unwrap().1,
            "203.0.113.10".parse::<IpAddr>().unwrap()
        );
    }
}
