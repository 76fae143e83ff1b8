#!/usr/bin/env python3
"""Writes the raw-frame seed corpora (fuzz/corpus/{vnf_frames,wire,dhcp_message}):
valid frames, checksums included, for each shipped VNF's configuration in
the fuzz targets. Run from the repository root; the output is checked in.
(`vnf_flows` and `host_boundary` take `arbitrary` inputs; their corpora are
what short fuzz runs kept, merged with -merge=1.)"""
import os
import struct

ROUTER_LAN, ROUTER_WAN = bytes.fromhex("020000000101"), bytes.fromhex("020000000102")
NAT_IN, NAT_OUT = bytes.fromhex("020000000201"), bytes.fromhex("020000000202")
DHCP_MAC = bytes.fromhex("020000000301")
CLIENT = bytes.fromhex("020000000140")
BCAST = b"\xff" * 6


def ip(s):
    return bytes(int(x) for x in s.split("."))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, l4, ttl=64):
    if proto in (6, 17):
        pseudo = ip(src) + ip(dst) + struct.pack("!BBH", 0, proto, len(l4))
        at = 16 if proto == 6 else 6
        l4 = l4[:at] + struct.pack("!H", csum(pseudo + l4)) + l4[at + 2 :]
    elif proto == 1:
        l4 = l4[:2] + struct.pack("!H", csum(l4)) + l4[4:]
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0x4000, ttl, proto, 0, ip(src), ip(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + l4


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport, dport, seq, ack, flags, payload=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 64240, 0, 0) + payload


def icmp(kind, code, rest, payload=b""):
    return struct.pack("!BBHI", kind, code, 0, rest) + payload


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + ip(spa) + tha + ip(tpa)


def dhcp(msg_type, xid=0x1234, options=b"", ciaddr="0.0.0.0"):
    m = struct.pack("!BBBBIHH4s4s4s4s", 1, 1, 6, 0, xid, 0, 0x8000, ip(ciaddr), ip("0.0.0.0"), ip("0.0.0.0"), ip("0.0.0.0"))
    m += CLIENT + b"\0" * 10 + b"\0" * 192 + bytes([99, 130, 83, 99])
    return m + bytes([53, 1, msg_type]) + options + bytes([55, 3, 1, 3, 6, 255])


def dhcp_frame(msg):
    return eth(BCAST, CLIENT, 0x0800, ipv4("0.0.0.0", "255.255.255.255", 17, udp(68, 67, msg)))


discover = dhcp(1)
request = dhcp(3, options=bytes([50, 4]) + ip("192.168.1.100") + bytes([54, 4]) + ip("192.168.1.2"))
renew = dhcp(3, ciaddr="192.168.1.100")
release = dhcp(7, options=bytes([54, 4]) + ip("192.168.1.2"), ciaddr="192.168.1.100")
syn = tcp(40000, 80, 1000, 0, 0x02)
synack = tcp(80, 40000, 5000, 1001, 0x12)
ack = tcp(40000, 80, 1001, 5001, 0x10, b"GET / HTTP/1.0\r\n\r\n")
echo = icmp(8, 0, 0x00010001, b"ping" * 8)
inner = ipv4("203.0.113.1", "198.51.100.7", 17, udp(1024, 53, b"q" * 8))[:28]

# (port, frame) per VNF configuration (see fuzz_targets/vnf_flows.rs).
frames = {
    "dhcp_discover": (0, dhcp_frame(discover)),
    "dhcp_request": (0, dhcp_frame(request)),
    "dhcp_renew": (0, eth(DHCP_MAC, CLIENT, 0x0800, ipv4("192.168.1.100", "192.168.1.2", 17, udp(68, 67, renew)))),
    "dhcp_release": (0, eth(DHCP_MAC, CLIENT, 0x0800, ipv4("192.168.1.100", "192.168.1.2", 17, udp(68, 67, release)))),
    "arp_who_has_dhcp": (0, eth(BCAST, CLIENT, 0x0806, arp(1, CLIENT, "192.168.1.100", b"\0" * 6, "192.168.1.2"))),
    "arp_who_has_router": (0, eth(BCAST, CLIENT, 0x0806, arp(1, CLIENT, "10.0.1.5", b"\0" * 6, "10.0.1.1"))),
    "arp_reply_wan": (1, eth(ROUTER_WAN, CLIENT, 0x0806, arp(2, CLIENT, "10.0.2.5", ROUTER_WAN, "10.0.2.1"))),
    "tcp_syn_routed": (0, eth(ROUTER_LAN, CLIENT, 0x0800, ipv4("10.0.1.5", "10.0.2.5", 6, syn))),
    "tcp_synack_back": (1, eth(ROUTER_WAN, CLIENT, 0x0800, ipv4("10.0.2.5", "10.0.1.5", 6, synack))),
    "tcp_syn_nat": (0, eth(NAT_IN, CLIENT, 0x0800, ipv4("192.168.1.100", "198.51.100.7", 6, syn))),
    "tcp_ack_nat": (0, eth(NAT_IN, CLIENT, 0x0800, ipv4("192.168.1.100", "198.51.100.7", 6, ack))),
    "tcp_synack_nat_out": (1, eth(NAT_OUT, CLIENT, 0x0800, ipv4("198.51.100.7", "203.0.113.1", 6, tcp(80, 1024, 5000, 1001, 0x12)))),
    "udp_dns_nat": (0, eth(NAT_IN, CLIENT, 0x0800, ipv4("192.168.1.100", "198.51.100.7", 17, udp(40001, 53, b"q" * 12)))),
    "icmp_echo_router": (0, eth(ROUTER_LAN, CLIENT, 0x0800, ipv4("10.0.1.5", "10.0.1.1", 1, echo))),
    "icmp_echo_nat": (0, eth(NAT_IN, CLIENT, 0x0800, ipv4("192.168.1.100", "198.51.100.7", 1, echo))),
    "icmp_unreachable_nat": (1, eth(NAT_OUT, CLIENT, 0x0800, ipv4("198.51.100.9", "203.0.113.1", 1, icmp(3, 3, 0, inner)))),
    "icmp_ttl_exceeded": (0, eth(ROUTER_LAN, CLIENT, 0x0800, ipv4("10.0.1.5", "10.0.2.5", 17, udp(33434, 33434, b"x" * 8), ttl=1))),
    "tcp_fw_outside": (1, eth(BCAST, CLIENT, 0x0800, ipv4("198.51.100.7", "10.0.1.5", 6, syn))),
}

for target in ("vnf_frames", "wire", "dhcp_message"):
    os.makedirs(f"fuzz/corpus/{target}", exist_ok=True)
for name, (port, frame) in frames.items():
    with open(f"fuzz/corpus/vnf_frames/{name}", "wb") as f:
        f.write(bytes([port]) + frame)
    with open(f"fuzz/corpus/wire/{name}", "wb") as f:
        f.write(frame)
for name, msg in (("discover", discover), ("request", request), ("renew", renew), ("release", release)):
    with open(f"fuzz/corpus/dhcp_message/{name}", "wb") as f:
        f.write(msg)
