#!/usr/bin/python3
"""Generates the golden fixtures of forwarder/tests/golden.rs and
forwarder/tests/replay_decode.rs, independently of lbfwd.

    /usr/bin/python3 scripts/gen_golden.py      # Debian's python3 with scapy
    /usr/bin/python3 scripts/gen_golden.py --fuzz-seeds DIR   # seeds for the
                                                # `pipeline` fuzz target

Writes into forwarder/tests/golden/:

- `*.toml`: the configurations the cases run against;
- `cases.txt`: every golden case: a one-line description, the configuration,
  then steps (an input frame, the expected verdict, for `tx` the expected
  output frame, the frames `release_held` must emit after it);
- `replay-<encap>.pcap` + `replay-<encap>.expect`: input of `lbfwd replay`
  and what each transmitted frame must decode to.

Every expected byte is computed here, from the standards and the documented
behaviour of lbfwd (README, issue 3), with scapy building the headers and an
XXH3-64 written from its specification (checked against xxhsum -H3) for the flow hash; nothing is taken
from lbfwd's output. Run it again after changing a case and commit the
result: the Rust tests need no Python.
"""

import os
import struct
import subprocess
import sys
from ipaddress import IPv4Address, IPv6Address, ip_address

from scapy.all import (
    ARP,
    ICMP,
    IP,
    TCP,
    UDP,
    Dot1AD,
    Dot1Q,
    Ether,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Padding,
    Raw,
    wrpcap,
)
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.sctp import SCTP
from scapy.layers.vxlan import VXLAN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "forwarder", "tests", "golden")

# ---------------------------------------------------------------------------
# XXH3-64 with seed 0 and the default secret, for inputs of 17 to 64 bytes
# (`XXH3_len_17to128_64b` of
# https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md and
# xxhash.h), checked against the reference `xxhsum -H3` below.

M64 = (1 << 64) - 1
PRIME64_1 = 0x9E3779B185EBCA87
# The first 64 bytes of XXH3_kSecret.
XXH3_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
)


def _mix16(data, off, secret_off, seed):
    lo, hi = struct.unpack_from("<QQ", data, off)
    s_lo, s_hi = struct.unpack_from("<QQ", XXH3_SECRET, secret_off)
    product = (lo ^ ((s_lo + seed) & M64)) * (hi ^ ((s_hi - seed) & M64))
    return (product & M64) ^ (product >> 64)


def xxh3_64(data, seed=0):
    n = len(data)
    assert 17 <= n <= 64, n
    acc = (n * PRIME64_1) & M64
    if n > 32:
        acc = (acc + _mix16(data, 16, 32, seed)) & M64
        acc = (acc + _mix16(data, n - 32, 48, seed)) & M64
    acc = (acc + _mix16(data, 0, 0, seed)) & M64
    acc = (acc + _mix16(data, n - 16, 16, seed)) & M64
    acc ^= acc >> 37
    acc = (acc * 0x165667919E3779F9) & M64
    return acc ^ (acc >> 32)


def self_test_hash():
    """Agreement with the reference tool (xxhsum, Debian package xxhash)."""
    samples = [bytes(range(41)), bytes(range(200, 241)), bytes(17), bytes(range(33)), bytes(range(64))]
    samples += [addr16(CLIENT4) + addr16(WEB4) + struct.pack(">HHIB", 40000, 80, VNI, 6)]
    for chunk in samples:
        try:
            out = subprocess.run(["xxhsum", "-H3", "-"], input=chunk, capture_output=True, check=True).stdout
        except FileNotFoundError:
            sys.exit("xxhsum (Debian package xxhash) is needed to check the flow hash")
        text = out.decode().strip()
        ref = text.split("=")[-1].strip() if "=" in text else text.split()[0]
        assert int(ref, 16) == xxh3_64(chunk), (chunk.hex(), ref, hex(xxh3_64(chunk)))


# ---------------------------------------------------------------------------
# The flow hash and what lbfwd derives from it (forwarder/src/flow/key.rs docs,
# wire::udp::source_port, wire::ipv6::flow_label_from_hash).


def addr16(a):
    a = ip_address(a)
    if isinstance(a, IPv4Address):
        return b"\x00" * 10 + b"\xff\xff" + a.packed
    return a.packed


def flow_hash(src, dst, proto, sport, dport, vni):
    key = addr16(src) + addr16(dst) + struct.pack(">HHIB", sport, dport, vni, proto)
    assert len(key) == 41
    return xxh3_64(key)


def udp_source_port(h):
    return 0xC000 | ((h >> 48) & 0x3FFF)


def flow_label(h):
    h32 = h & 0xFFFFFFFF
    label = (h32 ^ (h32 >> 20)) & 0xFFFFF
    return label or 1


def inet_checksum(data):
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(">%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


# ---------------------------------------------------------------------------
# The appliance and its configurations.

LB_MAC = "02:00:00:00:02:02"  # source_mac in every config; frames arrive to it
IF_MAC = "02:00:00:00:0f:0f"  # interface MAC the golden test passes (config wins)
NEXT_HOP = "02:00:00:00:00:01"
CLIENT_MAC = "02:00:00:00:c1:01"
SRC4 = "10.0.2.2"
SRC6 = "fd00:2::2"
VNI = 0x123456
MTU = 1500
CLIENT4 = "198.51.100.20"
CLIENT6 = "2001:db8:ff::20"
ROUTER4 = "198.51.100.254"
ROUTER6 = "2001:db8:ff::fe"

# name: (underlay, mac, labels)
IFACES = {
    "t4": ("10.0.3.11", "02:00:00:00:03:11", "t4"),
    "t6": ("fd00:3::12", "02:00:00:00:03:12", "t6"),
    "m1": ("10.0.4.1", "02:00:00:00:04:01", "multi"),
    "m2": ("10.0.4.2", "02:00:00:00:04:02", "multi"),
    "m3": ("fd00:4::3", "02:00:00:00:04:03", "multi"),
    "m4": ("fd00:4::4", "02:00:00:00:04:04", "multi"),
}

# Matrix load balancers: one per (VIP family, target family).
MATRIX_LBS = [
    # name, ips, label, ports, icmp_echo
    ("v4-to-4", ["192.0.2.10"], "t4", '{ protocol = "TCP", port = 80 }, { protocol = "UDP", port = 53 }', None),
    ("v4-to-6", ["192.0.2.11"], "t6", '{ protocol = "TCP", port = 80 }, { protocol = "UDP", port = 53 }', None),
    ("v6-to-4", ["2001:db8::10"], "t4", '{ protocol = "TCP", port = 80 }, { protocol = "UDP", port = 53 }', None),
    ("v6-to-6", ["2001:db8::11"], "t6", '{ protocol = "TCP", port = 80 }, { protocol = "UDP", port = 53 }', None),
]

WEB4, WEB6 = "203.0.113.1", "2001:db8:1::1"
QUIET4, QUIET6 = "203.0.113.2", "2001:db8:1::2"
MULTI4, MULTI6 = "203.0.113.3", "2001:db8:1::3"
EMPTY4, EMPTY6 = "203.0.113.4", "2001:db8:1::4"

WEB_PORTS = (
    '{ protocol = "TCP", port = 80 }, { protocol = "UDP", port = 1024, end_port = 2048 }, '
    '{ protocol = "SCTP", port = 9 }'
)
FEATURE_LBS = [
    ("web", [WEB4, WEB6], "t4", WEB_PORTS, "reply"),
    ("quiet", [QUIET4, QUIET6], "t6", '{ protocol = "TCP", port = 80 }', None),
    ("multi", [MULTI4, MULTI6], "multi", '{ protocol = "TCP", port = 80 }', None),
    ("empty", [EMPTY4, EMPTY6], "nobody", '{ protocol = "TCP", port = 80 }', None),
]

# Which target each single-target load balancer sends to.
LB_TARGET = {
    "v4-to-4": "t4",
    "v4-to-6": "t6",
    "v6-to-4": "t4",
    "v6-to-6": "t6",
    "web": "t4",
    "quiet": "t6",
}
VIP_LB = {
    "192.0.2.10": "v4-to-4",
    "192.0.2.11": "v4-to-6",
    "2001:db8::10": "v6-to-4",
    "2001:db8::11": "v6-to-6",
    WEB4: "web",
    WEB6: "web",
    QUIET4: "quiet",
    QUIET6: "quiet",
    MULTI4: "multi",
    MULTI6: "multi",
}


class Cfg:
    def __init__(self, name, encap, lbs, port=None, flow="", header=""):
        self.name = name
        self.encap = encap
        self.lbs = lbs
        self.port = port if port is not None else {"ipip": None, "gue": 6080, "vxlan": 4789}[encap]
        self.flow = flow
        self.header = header

    def toml(self):
        port_line = ""
        if self.encap == "gue" and self.port != 6080:
            port_line = "gue_port = %d\n" % self.port
        if self.encap == "vxlan" and self.port != 4789:
            port_line = "vxlan_port = %d\n" % self.port
        out = [
            "# Generated by scripts/gen_golden.py; do not edit.\n",
            self.header,
            '[dataplane]\nbackend = "memory"\nworkers = [0]\n\n',
            '[underlay]\nencap = "%s"\n%ssource_ipv4 = "%s"\nsource_ipv6 = "%s"\n'
            'source_mac = "%s"\nnext_hop_mac = "%s"\nmtu = %d\n\n'
            % (self.encap, port_line, SRC4, SRC6, LB_MAC, NEXT_HOP, MTU),
        ]
        if self.flow:
            out.append("[flow]\n%s\n\n" % self.flow)
        out.append('[[network]]\nname = "net"\nvni = %d\n\n' % VNI)
        for name, (underlay, mac, label) in IFACES.items():
            out.append(
                '[[network_interface]]\nname = "%s"\nnetwork = "net"\nlabels = { app = "%s" }\n'
                'underlay = "%s"\nmac = "%s"\n\n' % (name, label, underlay, mac)
            )
        for name, ips, label, ports, echo in self.lbs:
            out.append(
                '[[load_balancer]]\nname = "%s"\ntype = "Internal"\nnetwork = "net"\nips = [%s]\n'
                'network_interface_selector = { match_labels = { app = "%s" } }\nports = [ %s ]\n'
                % (name, ", ".join('"%s"' % i for i in ips), label, ports)
            )
            if echo:
                out.append('icmp_echo = "%s"\n' % echo)
            out.append("\n")
        return "".join(out)


CONFIGS = {
    "ipip": Cfg("ipip", "ipip", MATRIX_LBS),
    "gue": Cfg("gue", "gue", MATRIX_LBS),
    "vxlan": Cfg("vxlan", "vxlan", MATRIX_LBS),
    "vxlan-8472": Cfg("vxlan-8472", "vxlan", MATRIX_LBS, port=8472),
    "gue-7000": Cfg("gue-7000", "gue", MATRIX_LBS, port=7000),
    "features": Cfg("features", "vxlan", FEATURE_LBS),
    "ratelimit": Cfg("ratelimit", "vxlan", FEATURE_LBS, flow="icmp_too_big_rate = 1"),
    "newflow": Cfg("newflow", "vxlan", FEATURE_LBS,
                   flow='new_flow_rate = 1\nnew_flow_burst = 1\nnew_flow_excess = "drop"'),
}

# ---------------------------------------------------------------------------
# Expected frames.


def is4(a):
    return isinstance(ip_address(a), IPv4Address)


def inner_info(ip_bytes):
    """(version, tos) of an inner IP packet."""
    v = ip_bytes[0] >> 4
    if v == 4:
        return 4, ip_bytes[1]
    return 6, ((ip_bytes[0] & 0x0F) << 4) | (ip_bytes[1] >> 4)


def encapsulated(cfg, target, h, inner):
    """The frame lbfwd must send for inner IP packet `inner` (bytes) toward
    interface `target`, with flow hash `h`."""
    underlay, tmac, _ = IFACES[target]
    version, tos = inner_info(inner)
    sport = udp_source_port(h)
    if cfg.encap == "ipip":
        proto = 4 if version == 4 else 41
        payload = Raw(inner)
    elif cfg.encap == "gue":
        proto = 17
        payload = UDP(sport=sport, dport=cfg.port) / Raw(inner)
    else:
        proto = 17
        payload = (
            UDP(sport=sport, dport=cfg.port)
            / VXLAN(flags=0x08, vni=VNI)
            / Ether(src=LB_MAC, dst=tmac, type=0x0800 if version == 4 else 0x86DD)
            / Raw(inner)
        )
    if is4(underlay):
        if proto == 17:
            payload[UDP].chksum = 0  # optional over IPv4; lbfwd leaves it 0
        outer = IP(src=SRC4, dst=underlay, ttl=64, flags="DF", id=0, tos=tos, proto=proto) / payload
        et = 0x0800
    else:
        outer = IPv6(src=SRC6, dst=underlay, hlim=64, tc=tos, fl=flow_label(h), nh=proto) / payload
        et = 0x86DD
    frame = bytes(Ether(dst=NEXT_HOP, src=LB_MAC, type=et) / outer)
    # Sanity: the inner packet is at the end, byte for byte.
    assert frame.endswith(inner)
    return frame


def ip_of(frame):
    """The IP packet inside an input frame (tags skipped, padding cut)."""
    p = Ether(bytes(frame))
    while not isinstance(p, (IP, IPv6)):
        assert p.payload, "no IP packet in %r" % frame
        p = p.payload
    b = bytes(p)
    if isinstance(p, IP):
        return b[: p.len]
    return b[: 40 + p.plen]


def hash_of_packet(ip_bytes, vni=VNI):
    """The 5-tuple flow hash of an unfragmented packet / first fragment."""
    v = ip_bytes[0] >> 4
    if v == 4:
        ihl = (ip_bytes[0] & 0xF) * 4
        proto = ip_bytes[9]
        src = str(IPv4Address(ip_bytes[12:16]))
        dst = str(IPv4Address(ip_bytes[16:20]))
        l4 = ip_bytes[ihl:]
    else:
        p = IPv6(ip_bytes)
        src, dst = p.src, p.dst
        # Walk the extension headers of the packets used here.
        nh, off = ip_bytes[6], 40
        while nh in (0, 43, 60, 44):
            if nh == 44:
                nh, off = ip_bytes[off], off + 8
            else:
                nh, off = ip_bytes[off], off + (ip_bytes[off + 1] + 1) * 8
        proto = nh
        l4 = ip_bytes[off:]
    sport, dport = struct.unpack(">HH", l4[:4])
    return flow_hash(src, dst, proto, sport, dport, vni)


def tx(cfg, frame, target=None):
    """Expected output of an accepted frame for a single-target VIP."""
    frame = bytes(frame)
    inner = ip_of(frame)
    dst = str(ip_address(inner[16:20]) if inner[0] >> 4 == 4 else ip_address(inner[24:40]))
    target = target or LB_TARGET[VIP_LB[dst]]
    return encapsulated(cfg, target, hash_of_packet(inner), inner)


def tx_any(cfg, frame, targets):
    inner = ip_of(frame)
    h = hash_of_packet(inner)
    return [encapsulated(cfg, t, h, inner) for t in targets]


def eth(dst=LB_MAC, src=CLIENT_MAC):
    return Ether(dst=dst, src=src)


def pad60(pkt):
    b = bytes(pkt)
    if len(b) < 60:
        b += b"\x00" * (60 - len(b))
    return b


# ---------------------------------------------------------------------------
# Cases.


class Step:
    def __init__(self, frame, verdict, out=None, outany=None, released=(), headroom=None, counters=()):
        self.frame = bytes(frame)
        self.verdict = verdict
        self.out = out
        self.outany = outany or []
        self.released = list(released)
        self.headroom = headroom
        self.counters = list(counters)


CASES = []


def case(name, desc, config, steps, options=()):
    assert all(c[0] != name for c in CASES), name
    assert "\n" not in desc
    CASES.append((name, desc, config, steps, list(options)))


def tcp4(dst, dport=80, sport=40000, tos=0x28, ttl=61, flags="S", opts=True, payload=b"", df=True, src=CLIENT4, ipid=0x1234):
    t = TCP(sport=sport, dport=dport, flags=flags, seq=1000, window=64240)
    if opts:
        t.options = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]
    return IP(src=src, dst=dst, tos=tos, ttl=ttl, id=ipid, flags="DF" if df else 0) / t / Raw(payload)


def tcp6(dst, dport=80, sport=40000, tc=0x28, hlim=61, fl=0x12345, payload=b"", src=CLIENT6):
    t = TCP(sport=sport, dport=dport, flags="S", seq=1000, window=64240, options=[("MSS", 1440)])
    return IPv6(src=src, dst=dst, tc=tc, hlim=hlim, fl=fl) / t / Raw(payload)


def udp4(dst, dport, sport=5353, payload=b"lbfwd golden udp", tos=0, src=CLIENT4):
    return IP(src=src, dst=dst, tos=tos, ttl=62, id=0x4321) / UDP(sport=sport, dport=dport) / Raw(payload)


def udp6(dst, dport, sport=5353, payload=b"lbfwd golden udp6", src=CLIENT6):
    return IPv6(src=src, dst=dst, hlim=62, fl=0xABCDE) / UDP(sport=sport, dport=dport) / Raw(payload)


def build_cases():
    F = CONFIGS["features"]

    # --- Each encapsulation with each family combination.
    for enc in ("ipip", "gue", "vxlan"):
        C = CONFIGS[enc]
        f = eth() / tcp4("192.0.2.10")
        case("%s-4in4" % enc, "%s: IPv4 TCP SYN to an IPv4 VIP, IPv4 underlay (4in4), TOS copied" % enc,
             enc, [Step(f, "tx", tx(C, f))])
        f = eth() / udp4("192.0.2.11", 53)
        case("%s-4in6" % enc, "%s: IPv4 UDP to an IPv4 VIP, IPv6 underlay (4in6)" % enc,
             enc, [Step(f, "tx", tx(C, f))])
        f = eth() / tcp6("2001:db8::10")
        case("%s-6in4" % enc, "%s: IPv6 TCP SYN to an IPv6 VIP, IPv4 underlay (6in4), traffic class copied" % enc,
             enc, [Step(f, "tx", tx(C, f))])
        f = eth() / udp6("2001:db8::11", 53)
        case("%s-6in6" % enc, "%s: IPv6 UDP to an IPv6 VIP, IPv6 underlay (6in6), flow label from the hash" % enc,
             enc, [Step(f, "tx", tx(C, f))])
    C = CONFIGS["vxlan-8472"]
    f = eth() / udp6("2001:db8::11", 53, sport=7777)
    case("vxlan-port-8472", "vxlan_port = 8472: the configured UDP destination port", "vxlan-8472",
         [Step(f, "tx", tx(C, f))])
    C = CONFIGS["gue-7000"]
    f = eth() / tcp4("192.0.2.11")
    case("gue-port-7000", "gue_port = 7000: the configured UDP destination port", "gue-7000",
         [Step(f, "tx", tx(C, f))])

    # --- Layer 2 variations.
    f = pad60(eth() / tcp4(WEB4, opts=False))
    assert len(f) == 60
    case("padding-trimmed", "64-byte frame: the 6 bytes of Ethernet padding are not encapsulated",
         "features", [Step(f, "tx", tx(F, f))])
    f = bytes(eth() / udp6(WEB6, 1024)) + b"\xde\xad\xbe\xef"
    case("trailer-trimmed-v6", "IPv6 frame with 4 trailing bytes after the packet: not encapsulated",
         "features", [Step(f, "tx", tx(F, f))])
    f = eth() / Dot1Q(vlan=100, prio=3) / tcp4(WEB4)
    case("vlan-one-tag", "802.1Q-tagged IPv4 TCP: encapsulated untagged, inner packet untouched",
         "features", [Step(f, "tx", tx(F, f))])
    f = Ether(dst=LB_MAC, src=CLIENT_MAC, type=0x88A8) / Dot1AD(vlan=10) / Dot1Q(vlan=20) / udp6(WEB6, 2048)
    case("vlan-two-tags", "802.1ad + 802.1Q (QinQ) IPv6 UDP to the top of the port range",
         "features", [Step(f, "tx", tx(F, f))])
    f = eth() / IP(src=CLIENT4, dst=WEB4, ttl=50, options=b"\x94\x04\x00\x00") / TCP(sport=1234, dport=80, flags="A")
    case("ipv4-options", "IPv4 with a router-alert option: ports found after the options, packet untouched",
         "features", [Step(f, "tx", tx(F, f))])
    f = eth() / IPv6(src=CLIENT6, dst=WEB6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(sport=1234, dport=80, flags="A")
    case("ipv6-ext-headers", "IPv6 with hop-by-hop and destination options: ports after the chain",
         "features", [Step(f, "tx", tx(F, f))])
    f = eth() / IP(src=CLIENT4, dst=WEB4) / SCTP(sport=5000, dport=9)
    case("sctp4", "SCTP to an allowed port", "features", [Step(f, "tx", tx(F, f))])
    f = eth() / IPv6(src=CLIENT6, dst=WEB6) / SCTP(sport=5000, dport=9)
    case("sctp6", "SCTP over IPv6 to an allowed port", "features", [Step(f, "tx", tx(F, f))])

    # --- A load balancer with several targets: one of them, inner untouched.
    targets = ["m1", "m2", "m3", "m4"]
    f = eth() / tcp4(MULTI4, sport=41000)
    case("multi-target-v4", "4 targets: the frame goes to one of them (any), fully encapsulated",
         "features", [Step(f, "tx", outany=tx_any(F, f, targets))])
    f = eth() / tcp6(MULTI6, sport=41000)
    case("multi-target-v6", "4 targets over IPv6: one of them, fully encapsulated",
         "features", [Step(f, "tx", outany=tx_any(F, f, targets))])

    # --- Host path.
    f = pad60(Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT_MAC) / ARP(op=1, psrc=CLIENT4, pdst=WEB4, hwsrc=CLIENT_MAC))
    case("arp-host", "ARP request for a VIP: host path", "features", [Step(f, "host")])
    f = Ether(dst="01:80:c2:00:00:0e", src=CLIENT_MAC, type=0x88CC) / Raw(b"\x02\x07\x04" + b"\x00" * 50)
    case("lldp-host", "LLDP: host path", "features", [Step(f, "host")])
    f = eth() / tcp4("203.0.113.99")
    case("ipv4-not-vip", "IPv4 TCP to an address that is no VIP: host path, counted",
         "features", [Step(f, "host", counters=[("host_not_vip", 1)])])
    f = eth(dst="33:33:ff:00:00:01") / IPv6(src=CLIENT6, dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt=WEB6)
    case("ipv6-ns-multicast", "IPv6 neighbour solicitation to a solicited-node group: host path",
         "features", [Step(f, "host", counters=[("host_not_vip", 1)])])

    # --- Filter drops.
    f = eth() / tcp4(WEB4, dport=443)
    case("port-not-allowed-tcp4", "TCP to a port outside the allow list", "features",
         [Step(f, "drop:port_not_allowed")])
    f = eth() / udp6(WEB6, 2049)
    case("port-not-allowed-udp6", "UDP one past the end of the allowed range", "features",
         [Step(f, "drop:port_not_allowed")])
    f = eth() / IP(src=CLIENT4, dst=WEB4) / SCTP(sport=5000, dport=10)
    case("port-not-allowed-sctp", "SCTP to a port outside the allow list", "features",
         [Step(f, "drop:port_not_allowed")])
    f = eth() / IP(src=CLIENT4, dst=WEB4, proto=47) / Raw(b"\x00\x00\x08\x00" + b"\x45" * 20)
    case("protocol-gre", "GRE to a VIP: protocol not allowed", "features", [Step(f, "drop:protocol_not_allowed")])
    f = eth() / IPv6(src=CLIENT6, dst=WEB6, nh=59) / Raw(b"")
    case("protocol-no-next-header", "IPv6 'no next header' to a VIP: protocol not allowed", "features",
         [Step(f, "drop:protocol_not_allowed")])

    # --- ICMP echo.
    f = eth() / IP(src=CLIENT4, dst=QUIET4) / ICMP(type=8, id=0x1234, seq=1) / Raw(b"ping")
    case("echo4-dropped", "ICMP echo request to a VIP without icmp_echo = reply: dropped", "features",
         [Step(f, "drop:icmp_echo")])
    f = eth() / IPv6(src=CLIENT6, dst=QUIET6) / ICMPv6EchoRequest(id=0x1234, seq=1, data=b"ping")
    case("echo6-dropped", "ICMPv6 echo request to a VIP without icmp_echo = reply: dropped", "features",
         [Step(f, "drop:icmp_echo")])

    def echo4_reply(frame):
        e = Ether(frame)
        ip = e[IP]
        out = Ether(dst=e.src, src=e.dst, type=e.type)
        p = e.payload
        # keep the VLAN tags
        layers = []
        while not isinstance(p, IP):
            layers.append(p.copy())
            p = p.payload
        r = IP(version=4, ihl=ip.ihl, tos=ip.tos, id=ip.id, flags=ip.flags, frag=ip.frag, ttl=64,
               proto=1, src=ip.dst, dst=ip.src, options=ip.options)
        icmp_bytes = bytearray(bytes(ip.payload)[: ip.len - ip.ihl * 4])
        icmp_bytes[0] = 0
        icmp_bytes[2:4] = b"\x00\x00"
        icmp_bytes[2:4] = struct.pack(">H", inet_checksum(bytes(icmp_bytes)))
        body = bytes(r / Raw(bytes(icmp_bytes)))
        l2 = bytes(out)
        for l in layers:
            l.remove_payload()
            l2 += bytes(l)
        return l2 + body

    f = eth() / IP(src=CLIENT4, dst=WEB4, tos=0x10, ttl=55, id=77) / ICMP(type=8, id=0x1234, seq=7) / Raw(b"lbfwd ping payload")
    case("echo4-reply", "ICMP echo request, icmp_echo = reply: echo reply from the VIP, MACs swapped, TTL 64",
         "features", [Step(f, "tx", echo4_reply(bytes(f)), counters=[("icmp_echo_replies", 1)])])
    f = eth() / Dot1Q(vlan=7) / IP(src=CLIENT4, dst=WEB4, ttl=55) / ICMP(type=8, id=1, seq=2) / Raw(b"abc")
    case("echo4-reply-vlan", "ICMP echo request on VLAN 7: the reply keeps the tag",
         "features", [Step(f, "tx", echo4_reply(bytes(f)))])
    f = pad60(eth() / IP(src=CLIENT4, dst=WEB4, ttl=64) / ICMP(type=8, id=0, seq=0))
    reply = echo4_reply(f)
    assert reply[14 + 20 + 2: 14 + 20 + 4] == b"\xff\xff", reply.hex()
    case("echo4-reply-all-zero", "ICMP echo id 0 seq 0 without payload: the reply's checksum is 0xffff (RFC 1624 corner)",
         "features", [Step(f, "tx", reply)])
    f = eth() / IP(src=CLIENT4, dst=WEB4) / ICMP(type=8, id=5, seq=5, chksum=0x1234) / Raw(b"x")
    case("echo4-bad-checksum", "ICMP echo request with a wrong checksum is not answered", "features",
         [Step(f, "drop:malformed")])

    f = bytearray(bytes(eth() / IP(src=CLIENT4, dst=WEB4, ttl=55) / ICMP(type=8, id=3, seq=4) / Raw(b"abc")))
    f[24:26] = struct.pack(">H", struct.unpack(">H", bytes(f[24:26]))[0] ^ 0x5555)
    case("echo4-bad-ip-checksum",
         "ICMP echo request whose IPv4 header checksum is wrong (RFC 1122 3.2.1.2): not answered",
         "features", [Step(bytes(f), "drop:bad_checksum")])

    def echo6_reply(frame):
        e = Ether(frame)
        ip = e[IPv6]
        req = ip[ICMPv6EchoRequest]
        r = IPv6(src=ip.dst, dst=ip.src, tc=ip.tc, fl=ip.fl, hlim=64) / ICMPv6EchoReply(
            code=req.code, id=req.id, seq=req.seq, data=req.data)
        return bytes(Ether(dst=e.src, src=e.dst) / r)

    f = eth() / IPv6(src=CLIENT6, dst=WEB6, hlim=50, tc=0x20, fl=0x11111) / ICMPv6EchoRequest(id=0x4242, seq=9, data=b"lbfwd ping6")
    case("echo6-reply", "ICMPv6 echo request, icmp_echo = reply: echo reply from the VIP",
         "features", [Step(f, "tx", echo6_reply(bytes(f)), counters=[("icmp_echo_replies", 1)])])

    # --- Other ICMP.
    f = eth() / IP(src=CLIENT4, dst=WEB4) / ICMP(type=13, id=1, seq=1)
    case("icmp4-timestamp", "ICMP timestamp request to a VIP: other ICMP, dropped", "features",
         [Step(f, "drop:icmp_other")])
    f = eth() / IP(src=CLIENT4, dst=WEB4) / ICMP(type=0, id=1, seq=1)
    case("icmp4-echo-reply", "ICMP echo reply to a VIP: other ICMP, dropped", "features",
         [Step(f, "drop:icmp_other")])
    f = eth() / IPv6(src=CLIENT6, dst=WEB6) / ICMPv6EchoReply(id=1, seq=1)
    case("icmp6-echo-reply", "ICMPv6 echo reply to a VIP: other ICMP, dropped", "features",
         [Step(f, "drop:icmp_other")])

    # --- ICMP errors about a flow: routed to the flow's target.
    def icmp4_error(router, vip, ty, code, rest, quoted):
        body = bytearray(struct.pack(">BBHI", ty, code, 0, rest) + quoted)
        body[2:4] = struct.pack(">H", inet_checksum(bytes(body)))
        return eth() / IP(src=router, dst=vip, ttl=250, proto=1) / Raw(bytes(body))

    syn = eth() / tcp4(WEB4, sport=40000)
    reply = bytes(IP(src=WEB4, dst=CLIENT4, ttl=64, flags="DF") / TCP(sport=80, dport=40000, flags="SA", options=[("MSS", 1460)]))
    err = icmp4_error(ROUTER4, WEB4, 3, 4, 1400, reply[:28])
    h = flow_hash(CLIENT4, WEB4, 6, 40000, 80, VNI)
    case("icmp4-frag-needed-to-flow",
         "ICMP frag-needed to the VIP quoting a reply of a live flow: sent to that flow's target with its hash",
         "features",
         [Step(syn, "tx", tx(F, syn)),
          Step(err, "tx", encapsulated(F, "t4", h, ip_of(bytes(err))), counters=[("icmp_errors_forwarded", 1)])])
    err = icmp4_error(ROUTER4, WEB4, 3, 4, 1400, reply)
    case("icmp4-frag-needed-full-quote",
         "ICMP frag-needed quoting the whole reply (RFC 1812 style), no flow seen yet: same target and hash",
         "features", [Step(err, "tx", encapsulated(F, "t4", h, ip_of(bytes(err))))])
    err = icmp4_error(ROUTER4, WEB4, 11, 0, 0, reply[:28])
    case("icmp4-time-exceeded-to-flow", "ICMP time exceeded about a reply of a flow: routed like the flow",
         "features", [Step(syn, "tx", tx(F, syn)), Step(err, "tx", encapsulated(F, "t4", h, ip_of(bytes(err))))])

    syn6 = eth() / tcp6(WEB6, sport=40000)
    reply6 = bytes(IPv6(src=WEB6, dst=CLIENT6, hlim=64) / TCP(sport=80, dport=40000, flags="A") / Raw(b"x" * 1300))
    err6 = eth() / IPv6(src=ROUTER6, dst=WEB6, hlim=250) / ICMPv6PacketTooBig(mtu=1280) / Raw(reply6[:1232])
    h6 = flow_hash(CLIENT6, WEB6, 6, 40000, 80, VNI)
    case("icmp6-packet-too-big-to-flow",
         "ICMPv6 packet too big to the VIP quoting a reply of a live flow: sent to that flow's target with its hash",
         "features",
         [Step(syn6, "tx", tx(F, syn6)),
          Step(err6, "tx", encapsulated(F, "t4", h6, ip_of(bytes(err6))), counters=[("icmp_errors_forwarded", 1)])])

    other = bytes(IP(src=QUIET4, dst=CLIENT4) / TCP(sport=80, dport=40000, flags="SA"))
    err = icmp4_error(ROUTER4, WEB4, 3, 4, 1400, other[:28])
    case("icmp4-error-other-vip", "ICMP error to one VIP quoting a packet from another load balancer's VIP: no flow",
         "features", [Step(err, "drop:icmp_no_flow")])
    other = bytes(IP(src=WEB4, dst=CLIENT4) / TCP(sport=22, dport=40000, flags="SA"))
    err = icmp4_error(ROUTER4, WEB4, 3, 4, 1400, other[:28])
    case("icmp4-error-port-not-allowed", "ICMP error quoting a reply from a port the load balancer does not serve: no flow",
         "features", [Step(err, "drop:icmp_no_flow")])
    other6 = bytes(IPv6(src=WEB6, dst=CLIENT6) / UDP(sport=53, dport=40000))
    err6 = eth() / IPv6(src=ROUTER6, dst=WEB6) / ICMPv6PacketTooBig(mtu=1280) / Raw(other6)
    case("icmp6-error-port-not-allowed", "ICMPv6 packet too big quoting UDP from a port not served: no flow",
         "features", [Step(err6, "drop:icmp_no_flow")])

    # --- Fragments (IPv4).
    payload = bytes(range(256))[:56]
    dgram = bytes(IP(src=CLIENT4, dst=WEB4) / UDP(sport=5555, dport=1500) / Raw(payload))[20:]
    assert len(dgram) == 64

    def frag4(dgram, off, length, more, ipid=0x5151, dst=WEB4, proto=17):
        return eth() / IP(src=CLIENT4, dst=dst, id=ipid, flags="MF" if more else 0, frag=off // 8, proto=proto, ttl=60) / Raw(dgram[off:off + length])

    h = flow_hash(CLIENT4, WEB4, 17, 5555, 1500, VNI)
    f1, f2, f3 = frag4(dgram, 0, 24, True), frag4(dgram, 24, 24, True), frag4(dgram, 48, 16, False)
    o1, o2, o3 = (encapsulated(F, "t4", h, ip_of(bytes(x))) for x in (f1, f2, f3))
    case("frag4-in-order", "IPv4 UDP datagram in three fragments, in order: all to one target with the flow's hash",
         "features", [Step(f1, "tx", o1), Step(f2, "tx", o2), Step(f3, "tx", o3)])
    case("frag4-out-of-order",
         "IPv4 fragments 2 and 3 before 1: held, then released right after the first, in arrival order",
         "features",
         [Step(f3, "held", counters=[("fragments_held", 1)]), Step(f2, "held"),
          Step(f1, "tx", o1, released=[o3, o2], counters=[("fragments_held", 2)])])
    bad = bytes(IP(src=CLIENT4, dst=WEB4) / UDP(sport=5555, dport=999) / Raw(payload))[20:]
    g1, g2, g3 = frag4(bad, 0, 24, True, 0x5252), frag4(bad, 24, 24, True, 0x5252), frag4(bad, 48, 16, False, 0x5252)
    case("frag4-first-rejected", "IPv4 fragments of a datagram whose first fragment was rejected: dropped",
         "features", [Step(g1, "drop:port_not_allowed"), Step(g2, "drop:fragment_rejected"),
                      Step(g3, "drop:fragment_rejected")])
    case("frag4-held-then-rejected",
         "IPv4 fragment held, then its first fragment rejected: nothing released, later fragments dropped",
         "features", [Step(g2, "held"), Step(g1, "drop:port_not_allowed", released=[]),
                      Step(g3, "drop:fragment_rejected")])
    tcpd = bytes(IP(src=CLIENT4, dst=WEB4) / TCP(sport=6000, dport=80, flags="S") / Raw(b"y" * 16))[20:]
    t1, t2 = frag4(tcpd, 0, 8, True, 0x5353, proto=6), frag4(tcpd, 8, 28, False, 0x5353, proto=6)
    case("frag4-tiny-first",
         "IPv4 first fragment too short for the TCP header (RFC 1858): malformed, its later fragment rejected",
         "features", [Step(t1, "drop:malformed"), Step(t2, "drop:fragment_rejected")])
    # A first fragment that passes the filter but cannot be sent (too big
    # for the underlay): its datagram's later fragments must not be sent
    # either, in order or held.
    bigd = bytes(IP(src=CLIENT4, dst=WEB4) / UDP(sport=5556, dport=1500) / Raw(bytes(1600)))[20:]
    k1 = frag4(bigd, 0, 1432, True, 0x5454)
    k2 = frag4(bigd, 1432, len(bigd) - 1432, False, 0x5454)
    assert len(ip_of(bytes(k1))) == 1452
    case("frag4-first-too-big",
         "IPv4 first fragment too big for the underlay (no DF): dropped, and so is its later fragment",
         "features", [Step(k1, "drop:too_big"), Step(k2, "drop:fragment_rejected")])
    case("frag4-held-first-too-big",
         "IPv4 later fragment held, then its first fragment too big: nothing released",
         "features", [Step(k2, "held"), Step(k1, "drop:too_big", released=[])])

    case("frag4-no-stash", "fragment_stash without slots: a later fragment first is dropped (fragment overflow)",
         "features", [Step(f2, "drop:fragment_overflow")], options=["held_slots 0"])

    # --- Fragments (IPv6).
    payload6 = bytes(range(100, 156))
    dgram6 = bytes(IPv6(src=CLIENT6, dst=WEB6) / UDP(sport=5555, dport=1500) / Raw(payload6))[40:]
    assert len(dgram6) == 64

    def frag6(dgram, off, length, more, ident=0xABCDEF01):
        return eth() / IPv6(src=CLIENT6, dst=WEB6, hlim=60) / IPv6ExtHdrFragment(nh=17, offset=off // 8, m=int(more), id=ident) / Raw(dgram[off:off + length])

    h6 = flow_hash(CLIENT6, WEB6, 17, 5555, 1500, VNI)
    e1, e2, e3 = frag6(dgram6, 0, 24, True), frag6(dgram6, 24, 24, True), frag6(dgram6, 48, 16, False)
    p1, p2, p3 = (encapsulated(F, "t4", h6, ip_of(bytes(x))) for x in (e1, e2, e3))
    case("frag6-in-order", "IPv6 UDP datagram in three fragments, in order: all to one target",
         "features", [Step(e1, "tx", p1), Step(e2, "tx", p2), Step(e3, "tx", p3)])
    case("frag6-out-of-order", "IPv6 last fragment first: held, released after the first fragment",
         "features", [Step(e3, "held"), Step(e1, "tx", p1, released=[p3]), Step(e2, "tx", p2)])
    big6d = bytes(IPv6(src=CLIENT6, dst=WEB6) / UDP(sport=5557, dport=1500) / Raw(bytes(1600)))[40:]
    j1, j2 = frag6(big6d, 0, 1408, True, 0x99), frag6(big6d, 1408, len(big6d) - 1408, False, 0x99)
    assert len(ip_of(bytes(j1))) == 1456

    def too_big6_of(frame, mtu):
        e = Ether(bytes(frame))
        orig = ip_of(bytes(frame))
        p = IPv6(orig)
        return bytes(Ether(dst=e.src, src=e.dst) / IPv6(src=p.dst, dst=p.src, hlim=64, tc=0, fl=0)
                     / ICMPv6PacketTooBig(mtu=mtu) / Raw(orig[: 1280 - 48]))

    case("frag6-first-too-big",
         "IPv6 first fragment too big: packet too big answered; its later fragment is not sent",
         "features", [Step(j1, "tx", too_big6_of(j1, 1450)), Step(j2, "drop:fragment_rejected")])
    bad6 = bytes(IPv6(src=CLIENT6, dst=WEB6) / UDP(sport=5555, dport=999) / Raw(payload6))[40:]
    b1, b2 = frag6(bad6, 0, 24, True, 7), frag6(bad6, 24, 40, False, 7)
    case("frag6-first-rejected", "IPv6 fragments of a datagram whose first fragment was rejected",
         "features", [Step(b1, "drop:port_not_allowed"), Step(b2, "drop:fragment_rejected")])

    # --- No target, no source.
    f = eth() / tcp4(EMPTY4)
    case("no-target", "load balancer without destinations: dropped, no target", "features",
         [Step(f, "drop:no_target")])
    f = eth() / tcp6(QUIET6)
    case("no-underlay-source", "target with an IPv6 underlay while the appliance has no IPv6 source",
         "features", [Step(f, "drop:no_underlay_source")], options=["no_source_ipv6"])
    f = eth() / tcp4(WEB4)
    case("no-headroom", "a backend handing a frame without headroom (a backend bug): dropped, not written",
         "features", [Step(f, "drop:no_headroom", headroom=0)])

    # --- Too big for the underlay (mtu 1500; VXLAN over IPv4: 50 bytes).
    def sized4(total, df=True, sport=40001):
        p = IP(src=CLIENT4, dst=WEB4, flags="DF" if df else 0, ttl=60) / TCP(sport=sport, dport=80, flags="A")
        return eth() / p / Raw(b"z" * (total - 40))

    fit = sized4(1450)
    assert len(ip_of(bytes(fit))) == 1450
    case("fits-exactly", "IPv4 of 1450 bytes: with 50 bytes of VXLAN over IPv4 it fills the 1500-byte MTU",
         "features", [Step(fit, "tx", tx(F, fit))])
    big = sized4(1451)

    def too_big4(frame, mtu):
        e = Ether(frame)
        orig = ip_of(frame)
        quote = orig[: 576 - 28]
        body = bytearray(struct.pack(">BBHHH", 3, 4, 0, 0, mtu) + quote)
        body[2:4] = struct.pack(">H", inet_checksum(bytes(body)))
        vip = str(IPv4Address(orig[16:20]))
        client = str(IPv4Address(orig[12:16]))
        return bytes(Ether(dst=e.src, src=e.dst) / IP(src=vip, dst=client, ttl=64, tos=0xC0, id=0, flags=0, proto=1) / Raw(bytes(body)))

    case("too-big4", "IPv4 DF of 1451 bytes: ICMP frag-needed from the VIP with MTU 1450, quoting 548 bytes",
         "features", [Step(big, "tx", too_big4(bytes(big), 1450), counters=[("too_big_sent", 1)])])
    badck = bytearray(bytes(sized4(1451, sport=40004)))
    badck[24:26] = struct.pack(">H", struct.unpack(">H", bytes(badck[24:26]))[0] ^ 0x5555)
    case("too-big4-bad-ip-checksum",
         "IPv4 DF too big, IPv4 header checksum wrong: no ICMP answer to a corrupt source",
         "features", [Step(bytes(badck), "drop:bad_checksum")])
    nodf = sized4(1451, df=False)
    case("too-big4-no-df", "IPv4 without DF too big for the underlay: dropped (lbfwd does not fragment)",
         "features", [Step(nodf, "drop:too_big")])

    big6 = eth() / IPv6(src=CLIENT6, dst=WEB6, hlim=60) / TCP(sport=40002, dport=80, flags="A") / Raw(b"w" * (1451 - 60))
    assert len(ip_of(bytes(big6))) == 1451

    def too_big6(frame, mtu):
        e = Ether(frame)
        orig = ip_of(frame)
        p = IPv6(orig)
        return bytes(Ether(dst=e.src, src=e.dst) / IPv6(src=p.dst, dst=p.src, hlim=64, tc=0, fl=0)
                     / ICMPv6PacketTooBig(mtu=mtu) / Raw(orig[: 1280 - 48]))

    case("too-big6", "IPv6 of 1451 bytes: ICMPv6 packet too big from the VIP with MTU 1450, quoting 1232 bytes",
         "features", [Step(big6, "tx", too_big6(bytes(big6), 1450), counters=[("too_big_sent", 1)])])
    big2 = sized4(1451, sport=40003)
    case("too-big-rate-limited", "icmp_too_big_rate = 1: the first too-big packet is answered, the next is not",
         "ratelimit", [Step(big, "tx", too_big4(bytes(big), 1450)), Step(big2, "drop:too_big_rate_limited")])
    G = CONFIGS["newflow"]
    first, second = eth() / tcp4(WEB4, sport=40010), eth() / tcp4(WEB4, sport=40011)
    case("new-flow-limit", "new_flow_rate = 1, excess drop: the first new flow is remembered, the second new "
         "flow in the same second is dropped, the first flow's next packet still passes",
         "newflow", [Step(first, "tx", tx(G, first), counters=[("flow_picks", 1)]),
                     Step(second, "drop:new_flow_limit"),
                     Step(first, "tx", tx(G, first), counters=[("flow_picks", 1)])])

    # --- Malformed input at every layer.
    def m(name, desc, frame):
        case("malformed-" + name, desc, "features", [Step(frame, "drop:malformed")])

    m("short-ethernet", "frame of 10 bytes", bytes(eth())[:10])
    m("vlan-cut", "802.1Q tag cut off by the end of the frame", bytes(Ether(dst=LB_MAC, src=CLIENT_MAC, type=0x8100)) + b"\x00\x64")
    m("three-vlan-tags", "three stacked VLAN tags",
      Ether(dst=LB_MAC, src=CLIENT_MAC, type=0x88A8) / Dot1AD(vlan=1) / Dot1AD(vlan=2, type=0x8100) / Dot1Q(vlan=3) / tcp4(WEB4))
    m("ipv4-cut", "frame ends inside the IPv4 header", bytes(eth() / tcp4(WEB4))[: 14 + 12])
    m("ipv4-version", "EtherType IPv4, version nibble 6", bytes(Ether(dst=LB_MAC, src=CLIENT_MAC, type=0x0800)) + bytes(tcp6(WEB6))[:60])
    raw = bytearray(bytes(eth() / tcp4(WEB4)))
    raw[14] = 0x44
    m("ipv4-ihl", "IPv4 IHL 4 (below 5)", bytes(raw))
    raw = bytearray(bytes(eth() / tcp4(WEB4)))
    raw[16:18] = b"\x00\x10"
    m("ipv4-total-short", "IPv4 total length 16, smaller than its header", bytes(raw))
    raw = bytearray(bytes(eth() / tcp4(WEB4)))
    raw[16:18] = struct.pack(">H", len(raw) - 14 + 10)
    m("ipv4-total-long", "IPv4 total length 10 bytes past the end of the frame", bytes(raw))
    m("ipv6-cut", "frame ends inside the IPv6 header", bytes(eth() / tcp6(WEB6))[: 14 + 30])
    raw = bytearray(bytes(eth() / tcp6(WEB6)))
    raw[18:20] = struct.pack(">H", len(raw) - 54 + 1)
    m("ipv6-payload-long", "IPv6 payload length one byte past the end of the frame", bytes(raw))
    m("tcp-cut", "TCP header of 10 bytes in an unfragmented packet",
      eth() / IP(src=CLIENT4, dst=WEB4, proto=6) / Raw(bytes(TCP(sport=1, dport=80))[:10]))
    raw = bytearray(bytes(TCP(sport=1, dport=80)))
    raw[12] = 0x40
    m("tcp-data-offset", "TCP data offset 4 (below 5)", eth() / IP(src=CLIENT4, dst=WEB4, proto=6) / Raw(bytes(raw)))
    m("udp-length", "UDP length field 4 (below 8)", eth() / IP(src=CLIENT4, dst=WEB4) / UDP(sport=1, dport=1024, len=4) / Raw(b"abcd"))
    m("udp-cut", "UDP header of 6 bytes", eth() / IP(src=CLIENT4, dst=WEB4, proto=17) / Raw(b"\x00\x01\x04\x00\x00\x08"))
    m("sctp-cut", "SCTP common header of 8 bytes", eth() / IP(src=CLIENT4, dst=WEB4, proto=132) / Raw(b"\x13\x88\x00\x09\x00\x00\x00\x00"))
    m("icmp-cut", "ICMP header of 4 bytes", eth() / IP(src=CLIENT4, dst=WEB4, proto=1) / Raw(b"\x08\x00\xf7\xff"))
    m("icmp-error-quote-cut", "ICMP frag-needed quoting 10 bytes of an IP header",
      icmp4_error(ROUTER4, WEB4, 3, 4, 1400, bytes(IP(src=WEB4, dst=CLIENT4) / TCP())[:10]))
    m("icmp6-error-quote-v4", "ICMPv6 packet too big quoting an IPv4 header",
      eth() / IPv6(src=ROUTER6, dst=WEB6) / ICMPv6PacketTooBig(mtu=1280) / Raw(bytes(IP(src=WEB4, dst=CLIENT4) / TCP(sport=80, dport=1))))
    m("ipv6-ext-cut", "IPv6 destination options header cut off",
      eth() / IPv6(src=CLIENT6, dst=WEB6, nh=60) / Raw(b"\x06\x01\x00\x00"))
    m("ipv6-hop-by-hop-second", "IPv6 hop-by-hop header after a destination options header",
      eth() / IPv6(src=CLIENT6, dst=WEB6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / TCP(sport=1, dport=80))
    m("ipv4-fragment-length", "IPv4 non-last fragment whose length is not a multiple of 8",
      eth() / IP(src=CLIENT4, dst=WEB4, id=9, flags="MF", proto=17) / Raw(dgram[:20]))
    m("ipv6-two-fragment-headers", "IPv6 with two fragment headers",
      eth() / IPv6(src=CLIENT6, dst=WEB6) / IPv6ExtHdrFragment(nh=44, m=1, id=1) / IPv6ExtHdrFragment(nh=17, m=1, id=1) / Raw(dgram6[:16]))


# ---------------------------------------------------------------------------
# Replay inputs: one pcap per encapsulation, with what every transmitted
# frame must decode to.


def replay_inputs():
    out = {}
    for enc in ("ipip", "gue", "vxlan"):
        C = CONFIGS[enc]
        frames = [
            eth() / tcp4("192.0.2.10", payload=b"hello 4in4"),
            eth() / udp4("192.0.2.11", 53, payload=bytes(DNS(id=0x4646, rd=1, qd=DNSQR(qname="four-in-six.example.")))),
            eth() / tcp6("2001:db8::10", payload=b"hello 6in4"),
            eth() / udp6("2001:db8::11", 53, payload=bytes(DNS(id=0x6666, rd=1, qd=DNSQR(qname="six-in-six.example.", qtype="AAAA")))),
            eth() / Dot1Q(vlan=42) / tcp4("192.0.2.11", sport=40100, tos=0xB8),
            pad60(eth() / tcp4("192.0.2.10", opts=False, sport=40200)),
            pad60(Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT_MAC) / ARP(op=1, psrc=CLIENT4, pdst="192.0.2.10")),
            eth() / tcp4("192.0.2.10", dport=22),
            eth() / IP(src=CLIENT4, dst="192.0.2.10") / ICMP(type=8, id=1, seq=1),
        ]
        # (frame index, target, vni-or-None, inner hex)
        expect = []
        for i, f in enumerate(frames[:6]):
            inner = ip_of(bytes(f))
            dst = str(ip_address(inner[16:20]) if inner[0] >> 4 == 4 else ip_address(inner[24:40]))
            target = LB_TARGET[VIP_LB[dst]]
            h = hash_of_packet(inner)
            frame = encapsulated(C, target, h, inner)
            expect.append((i, target, h, inner, frame))
        out[enc] = (frames, expect)
    return out


# ---------------------------------------------------------------------------


def write():
    os.makedirs(OUT, exist_ok=True)
    for name, cfg in CONFIGS.items():
        with open(os.path.join(OUT, name + ".toml"), "w") as f:
            f.write(cfg.toml())
    lines = [
        "# Golden cases of forwarder/tests/golden.rs.",
        "# Generated by scripts/gen_golden.py; do not edit: change the script and run it again.",
        "#",
        "# case NAME / desc ONE LINE / config NAME / option ... / then steps:",
        "# step / [headroom N] / in HEX / verdict tx|host|held|drop:REASON / [out HEX] /",
        "# [outany HEX]... (any one of them) / [released HEX]... (release_held, in order) /",
        "# [counter NAME VALUE]... / end",
        "",
    ]
    for name, desc, config, steps, options in CASES:
        lines.append("case " + name)
        lines.append("desc " + desc)
        lines.append("config " + config)
        for o in options:
            lines.append("option " + o)
        for s in steps:
            lines.append("step")
            if s.headroom is not None:
                lines.append("headroom %d" % s.headroom)
            lines.append("in " + s.frame.hex())
            lines.append("verdict " + s.verdict)
            if s.verdict == "tx":
                assert (s.out is None) != (not s.outany), name
            if s.out is not None:
                lines.append("out " + bytes(s.out).hex())
            for o in s.outany:
                lines.append("outany " + bytes(o).hex())
            for r in s.released:
                lines.append("released " + bytes(r).hex())
            for cname, value in s.counters:
                lines.append("counter %s %d" % (cname, value))
        lines.append("end")
        lines.append("")
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(lines))

    for enc, (frames, expect) in replay_inputs().items():
        pkts = [Ether(bytes(fr)) for fr in frames]
        for i, p in enumerate(pkts):
            p.time = 1_700_000_000 + i / 1000.0
        wrpcap(os.path.join(OUT, "replay-%s.pcap" % enc), pkts)
        with open(os.path.join(OUT, "replay-%s.expect" % enc), "w") as f:
            f.write("# Generated by scripts/gen_golden.py; do not edit.\n")
            f.write("# input FRAME_INDEX target NAME underlay ADDR source ADDR sport PORT "
                    "dport PORT|- vni VNI|- inner_mac MAC|- label LABEL|- / inner HEX / frame HEX\n")
            f.write("frames %d\n" % len(frames))
            for i, target, h, inner, frame in expect:
                cfg = CONFIGS[enc]
                underlay, tmac, _ = IFACES[target]
                src = SRC4 if is4(underlay) else SRC6
                udp = cfg.encap != "ipip"
                f.write("input %d target %s underlay %s source %s sport %s dport %s vni %s inner_mac %s label %s\n" % (
                    i, target, underlay, src,
                    udp_source_port(h) if udp else "-",
                    cfg.port if udp else "-",
                    VNI if cfg.encap == "vxlan" else "-",
                    tmac if cfg.encap == "vxlan" else "-",
                    "-" if is4(underlay) else flow_label(h)))
                f.write("inner %s\n" % inner.hex())
                f.write("frame %s\n" % frame.hex())
    print("wrote %d cases and %d configs to %s" % (len(CASES), len(CONFIGS), OUT))


def write_fuzz_seeds(directory):
    """Seeds for the `pipeline` fuzz target (forwarder/fuzz/fuzz_targets/
    pipeline.rs): every case's frames in its input format (byte 0: the
    encapsulation; then per frame a 2-byte length, a time step, the bytes)."""
    os.makedirs(directory, exist_ok=True)
    for name, _desc, config, steps, _options in CASES:
        encap = CONFIGS[config].encap
        seed = bytes([{"ipip": 0, "gue": 1, "vxlan": 2}[encap]])
        for st in steps:
            seed += struct.pack(">HB", len(st.frame), 0) + st.frame
        with open(os.path.join(directory, name), "wb") as f:
            f.write(seed)
    print("wrote %d fuzz seeds to %s" % (len(CASES), directory))


if __name__ == "__main__":
    self_test_hash()
    build_cases()
    if len(sys.argv) == 3 and sys.argv[1] == "--fuzz-seeds":
        write_fuzz_seeds(sys.argv[2])
    else:
        write()
