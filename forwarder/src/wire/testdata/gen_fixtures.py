#!/usr/bin/python3
"""Generates ../fixtures.rs: byte fixtures for the wire tests, built and
checksummed by scapy (Debian python3-scapy 2.5), independently of lbfwd's
code. Run: /usr/bin/python3 forwarder/src/wire/testdata/gen_fixtures.py
"""
import os
from scapy.all import (Ether, Dot1Q, Dot1AD, IP, IPv6, TCP, UDP, SCTP, ICMP,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrRouting,
                       IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                       ICMPv6EchoRequest, ICMPv6EchoReply, ICMPv6PacketTooBig,
                       ICMPv6DestUnreach, ICMPv6TimeExceeded, VXLAN, ARP, Raw)

CLIENT_MAC = "02:00:00:00:00:01"
LB_MAC = "02:00:00:00:00:02"
NH_MAC = "02:00:00:00:00:03"
TGT_MAC = "02:00:00:00:00:04"
C4, V4, S4, T4 = "198.51.100.20", "203.0.113.10", "192.0.2.1", "10.0.0.7"
C6, V6, S6, T6 = "2001:db8:c::20", "2001:db8:f::10", "2001:db8:1::1", "2001:db8:7::7"

fx = {}

def eth(p, vlan=None):
    e = Ether(src=CLIENT_MAC, dst=LB_MAC)
    if vlan == 1:
        return e / Dot1Q(vlan=100) / p
    if vlan == 2:
        return e / Dot1AD(vlan=100) / Dot1Q(vlan=200) / p
    return e / p

# Parse fixtures.
fx["TCP4_64"] = bytes(eth(IP(src=C4, dst=V4, id=1, flags="DF", ttl=61) /
                          TCP(sport=40000, dport=443, flags="S", seq=1))) + b"\0" * 6
assert len(fx["TCP4_64"]) == 60  # min frame without FCS, 6 bytes padding
fx["TCP6"] = bytes(eth(IPv6(src=C6, dst=V6, hlim=60) / TCP(sport=40001, dport=80, flags="S")))
fx["UDP4_QINQ"] = bytes(eth(IP(src=C4, dst=V4, ttl=64) / UDP(sport=5353, dport=53) / b"query", vlan=2))
fx["UDP4_VLAN"] = bytes(eth(IP(src=C4, dst=V4) / UDP(sport=5353, dport=53) / b"q", vlan=1))
fx["SCTP4"] = bytes(eth(IP(src=C4, dst=V4) / SCTP(sport=2905, dport=3868)))
fx["ARP"] = bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=C4, pdst=V4))
fx["IP4_OPTS_UDP"] = bytes(eth(IP(src=C4, dst=V4, options=b"\x94\x04\x00\x00") / UDP(sport=1, dport=2)))
# Fragments of one UDP datagram of 1500 bytes payload.
frags = [bytes(eth(f)) for f in
         __import__("scapy.all").all.fragment(IP(src=C4, dst=V4, id=0xbeef) / UDP(sport=7000, dport=8000) / (b"x" * 1500), fragsize=1000)]
fx["FRAG4_FIRST"], fx["FRAG4_LAST"] = frags[0], frags[1]
fx["FRAG6_FIRST"] = bytes(eth(IPv6(src=C6, dst=V6) / IPv6ExtHdrHopByHop() /
                              IPv6ExtHdrFragment(id=0x12345678, m=1, offset=0) /
                              IPv6ExtHdrDestOpt() / UDP(sport=7000, dport=8000, len=1008) / (b"y" * 992)))
fx["FRAG6_LATER"] = bytes(eth(IPv6(src=C6, dst=V6) / IPv6ExtHdrFragment(id=0x12345678, m=0, offset=125, nh=60) / (b"z" * 16)))
fx["IP6_EXT_TCP"] = bytes(eth(IPv6(src=C6, dst=V6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=[]) /
                              IPv6ExtHdrDestOpt() / TCP(sport=1234, dport=22)))
# ICMP errors about DSR replies VIP -> client.
reply4 = IP(src=V4, dst=C4, flags="DF", ttl=64) / TCP(sport=443, dport=40000, flags="A") / (b"r" * 1400)
fx["FRAG_NEEDED4"] = bytes(eth(IP(src="192.0.2.254", dst=V4) / ICMP(type=3, code=4, nexthopmtu=1400) / bytes(reply4)[:28]))
reply6 = IPv6(src=V6, dst=C6) / UDP(sport=53, dport=5353) / (b"r" * 1400)
fx["PTB6"] = bytes(eth(IPv6(src="2001:db8:ff::1", dst=V6) / ICMPv6PacketTooBig(mtu=1280) / bytes(reply6)[:1232]))
fx["TIME_EXCEEDED6"] = bytes(eth(IPv6(src="2001:db8:ff::1", dst=V6) / ICMPv6TimeExceeded() / bytes(reply6)[:48]))
fx["ECHO4"] = bytes(eth(IP(src=C4, dst=V4, ttl=57) / ICMP(type=8, id=0x1234, seq=7) / b"abcdefgh"))
fx["ECHO6"] = bytes(eth(IPv6(src=C6, dst=V6, hlim=57) / ICMPv6EchoRequest(id=0x1234, seq=7, data=b"abcdefgh"), vlan=1))

# Echo replies as the standards say (scapy computes the checksums).
fx["ECHO4_REPLY"] = bytes(Ether(src=LB_MAC, dst=CLIENT_MAC) / IP(src=V4, dst=C4, ttl=64, id=1) /
                          ICMP(type=0, id=0x1234, seq=7) / b"abcdefgh")
fx["ECHO6_REPLY"] = bytes(Ether(src=LB_MAC, dst=CLIENT_MAC) / Dot1Q(vlan=100) /
                          IPv6(src=V6, dst=C6, hlim=64) / ICMPv6EchoReply(id=0x1234, seq=7, data=b"abcdefgh"))

# A big DF TCP packet to the VIP, and the frag-needed lbfwd answers.
big4 = IP(src=C4, dst=V4, flags="DF", id=5, ttl=60) / TCP(sport=40000, dport=443, flags="A") / (b"d" * 1400)
fx["BIG4"] = bytes(eth(big4, vlan=1))
fx["BIG4_FRAG_NEEDED"] = bytes(Ether(src=LB_MAC, dst=CLIENT_MAC) / Dot1Q(vlan=100) /
                               IP(src=V4, dst=C4, ttl=64, id=0, tos=0xc0) /
                               ICMP(type=3, code=4, nexthopmtu=1380) / bytes(big4)[:548])
assert len(fx["BIG4_FRAG_NEEDED"]) == 18 + 576
big6 = IPv6(src=C6, dst=V6, hlim=60) / TCP(sport=40000, dport=443, flags="A") / (b"e" * 1400)
fx["BIG6"] = bytes(eth(big6))
fx["BIG6_PTB"] = bytes(Ether(src=LB_MAC, dst=CLIENT_MAC) / IPv6(src=V6, dst=C6, hlim=64) /
                       ICMPv6PacketTooBig(mtu=1380) / bytes(big6)[:1232])
assert len(fx["BIG6_PTB"]) == 14 + 1280

# Encapsulations of the TCP4_64 packet (inner = its IP packet, padding cut).
inner4 = bytes(IP(src=C4, dst=V4, id=1, flags="DF", ttl=61) / TCP(sport=40000, dport=443, flags="S", seq=1))
fx["INNER4"] = inner4
fx["GUE4_OUTER"] = bytes(Ether(src=LB_MAC, dst=NH_MAC) / IP(src=S4, dst=T4, ttl=64, id=0x0101, flags="DF") /
                         UDP(sport=50000, dport=6080) / inner4)
fx["GUE6_OUTER"] = bytes(Ether(src=LB_MAC, dst=NH_MAC) / IPv6(src=S6, dst=T6, hlim=64, fl=0x12345) /
                         UDP(sport=50000, dport=6080) / inner4)
fx["VXLAN4_OUTER"] = bytes(Ether(src=LB_MAC, dst=NH_MAC) / IP(src=S4, dst=T4, ttl=64, id=0x0101, flags="DF") /
                           UDP(sport=50000, dport=4789) / VXLAN(flags=0x08, vni=0x123456) /
                           Ether(src=LB_MAC, dst=TGT_MAC, type=0x0800) / inner4)
fx["VXLAN6_OUTER"] = bytes(Ether(src=LB_MAC, dst=NH_MAC) / IPv6(src=S6, dst=T6, hlim=64, fl=0x12345) /
                           UDP(sport=50000, dport=4789) / VXLAN(flags=0x08, vni=0x123456) /
                           Ether(src=LB_MAC, dst=TGT_MAC, type=0x0800) / inner4)
fx["IPIP4_OUTER"] = bytes(Ether(src=LB_MAC, dst=NH_MAC) / IP(src=S4, dst=T4, ttl=64, id=0x0101, flags="DF", proto=4) / inner4)

out = ["//! Byte fixtures for the wire tests, generated by scapy 2.5 with",
       "//! `testdata/gen_fixtures.py` (do not edit by hand).",
       "#![allow(dead_code)]", ""]
for k, v in fx.items():
    out.append("pub const %s: [u8; %d] = [" % (k, len(v)))
    for i in range(0, len(v), 16):
        out.append("    " + " ".join("0x%02x," % b for b in v[i:i + 16]))
    out.append("];")
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "..", "fixtures.rs"), "w") as f:
    f.write("\n".join(out) + "\n")
print("wrote", len(fx), "fixtures")
