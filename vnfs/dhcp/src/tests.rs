//! Native tests through the SDK harness.

use serde_json::json;
use vnf_sdk::testing::{frames, Harness, Output};
use vnf_sdk::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, IpProtocol,
    Ipv4Packet, Ipv4Repr, UdpPacket,
};

use super::*;
use crate::message::{opt, DhcpPacket, Options, MAGIC_COOKIE};

const LAN: u16 = 0;
const UPLINK: u16 = 1;
const SEC: u64 = 1_000_000_000;
const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 1, 2]);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
const C1: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const C2: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x57]);
const C3: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x58]);
const RESERVED: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 1, 0x50]);
const ZERO: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
const BCAST: Ipv4Addr = Ipv4Addr::BROADCAST;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 1, last)
}

fn config() -> serde_json::Value {
    json!({
        "port": "lan",
        "address": "192.168.1.2/24",
        "pool": "192.168.1.100-192.168.1.199",
        "router": "192.168.1.1",
        "dns": ["192.168.1.1"],
        "domain": "edge.test",
        "lease_time": 3600,
        "reservations": [ { "mac": "02:00:00:00:01:50", "address": "192.168.1.50" } ],
        "mac": "02:00:00:00:01:02",
    })
}

fn server_with(config: serde_json::Value) -> Harness<Dhcp> {
    Harness::new(&["lan", "uplink"], config).expect("valid config")
}

fn server() -> Harness<Dhcp> {
    server_with(config())
}

fn config_error(config: serde_json::Value) -> ConfigError {
    match Harness::<Dhcp>::new(&["lan", "uplink"], config) {
        Ok(_) => panic!("config accepted"),
        Err(e) => e,
    }
}

/// A dhclient DISCOVER from 52:54:00:12:34:56 (xid 0x3903f326, no broadcast
/// flag, requested address 192.168.1.120, host name "client", the usual
/// parameter request list), padded to 300 bytes, TOS low-delay, TTL 64.
#[rustfmt::skip]
static DHCLIENT_DISCOVER: [u8; 342] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00, 0x45, 0x10,
    0x01, 0x48, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x79, 0x96, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
    0xff, 0xff, 0x00, 0x44, 0x00, 0x43, 0x01, 0x34, 0xfe, 0xc3, 0x01, 0x01, 0x06, 0x00, 0x39, 0x03,
    0xf3, 0x26, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x82, 0x53, 0x63, 0x35, 0x01, 0x01, 0x32, 0x04, 0xc0,
    0xa8, 0x01, 0x78, 0x0c, 0x06, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x37, 0x0d, 0x01, 0x1c, 0x02,
    0x03, 0x0f, 0x06, 0x77, 0x0c, 0x2c, 0x2f, 0x1a, 0x79, 0x2a, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// A BOOTREQUEST with these fields and options (53 first).
fn msg(
    kind: u8,
    mac: EthernetAddress,
    ciaddr: Ipv4Addr,
    broadcast: bool,
    options: &[(u8, &[u8])],
) -> Vec<u8> {
    let kind = [kind];
    let mut all: Vec<(u8, &[u8])> = vec![(opt::MESSAGE_TYPE, &kind)];
    all.extend_from_slice(options);
    frames::dhcp_request(0xdead_beef, mac, ciaddr, broadcast, &all)
}

/// A UDP frame as the tests send it (identification 7).
fn udp_frame(
    eth_dst: EthernetAddress,
    eth_src: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ports: (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let header = Ipv4Repr {
        ident: 7,
        ..frames::ipv4_header(src, dst, IpProtocol::Udp)
    };
    let datagram = frames::udp(src, dst, ports.0, ports.1, payload);
    frames::ethernet(
        eth_dst,
        eth_src,
        EtherType::Ipv4,
        &frames::ipv4_with(header, &datagram),
    )
}

/// A broadcast client message from `mac`.
fn bcast(mac: EthernetAddress, m: &[u8]) -> Vec<u8> {
    udp_frame(EthernetAddress::BROADCAST, mac, ZERO, BCAST, (68, 67), m)
}

/// A unicast client message from `mac` at `from` to the server.
fn unicast(mac: EthernetAddress, from: Ipv4Addr, m: &[u8]) -> Vec<u8> {
    udp_frame(SERVER_MAC, mac, from, SERVER_IP, (68, 67), m)
}

/// A reply as the client sees it.
#[derive(Debug)]
struct Seen {
    port: u16,
    eth_dst: EthernetAddress,
    eth_src: EthernetAddress,
    ip_src: Ipv4Addr,
    ip_dst: Ipv4Addr,
    udp_ports: (u16, u16),
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    chaddr: EthernetAddress,
    options: Vec<(u8, Vec<u8>)>,
    len: usize,
}

impl Seen {
    fn opt(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, d)| &d[..])
    }
    fn kind(&self) -> u8 {
        self.opt(opt::MESSAGE_TYPE).expect("option 53")[0]
    }
    fn codes(&self) -> Vec<u8> {
        self.options.iter().map(|(c, _)| *c).collect()
    }
    fn u32(&self, code: u8) -> u32 {
        u32::from_be_bytes(self.opt(code).unwrap().try_into().unwrap())
    }
}

fn seen(port: u16, frame: &[u8]) -> Seen {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(eth.ethertype(), EtherType::Ipv4);
    let p = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(p.verify_checksum());
    let u = UdpPacket::new_checked(p.payload()).unwrap();
    assert!(u.checksum() != 0 && u.verify_checksum(p.src_addr(), p.dst_addr()));
    let d = DhcpPacket::new_checked(u.payload()).unwrap();
    assert_eq!((d.op(), d.htype(), d.hlen()), (2, 1, 6));
    let options = d
        .options()
        .map(|o| o.unwrap())
        .map(|o| (o.code, o.data.to_vec()))
        .collect();
    Seen {
        port,
        eth_dst: eth.dst_addr(),
        eth_src: eth.src_addr(),
        ip_src: p.src_addr(),
        ip_dst: p.dst_addr(),
        udp_ports: (u.src_port(), u.dst_port()),
        xid: d.xid(),
        flags: d.flags(),
        ciaddr: d.ciaddr(),
        yiaddr: d.yiaddr(),
        chaddr: d.chaddr(),
        options,
        len: u.payload().len(),
    }
}

/// Sends a frame on the LAN; expects Consume and exactly one reply.
fn exchange(h: &mut Harness<Dhcp>, frame: &[u8]) -> Seen {
    let out = h.process(LAN, frame);
    assert_eq!(out.verdict, Verdict::Consume);
    assert_eq!(out.emitted.len(), 1, "one reply");
    seen(out.emitted[0].0, &out.emitted[0].1)
}

/// Sends a frame on the LAN; expects Consume and no reply.
fn silent(h: &mut Harness<Dhcp>, frame: &[u8]) {
    let out = h.process(LAN, frame);
    assert_eq!(out.verdict, Verdict::Consume);
    assert!(out.emitted.is_empty(), "no reply expected");
}

fn discover(h: &mut Harness<Dhcp>, mac: EthernetAddress, options: &[(u8, &[u8])]) -> Seen {
    exchange(h, &bcast(mac, &msg(1, mac, ZERO, true, options)))
}

/// DISCOVER + REQUEST (SELECTING); returns the ACK.
fn dora(h: &mut Harness<Dhcp>, mac: EthernetAddress) -> Seen {
    let offer = discover(h, mac, &[]);
    assert_eq!(offer.kind(), 2);
    let yi = offer.yiaddr.octets();
    let sid = SERVER_IP.octets();
    let ack = exchange(
        h,
        &bcast(mac, &msg(3, mac, ZERO, true, &[(50, &yi), (54, &sid)])),
    );
    assert_eq!(ack.kind(), 5);
    assert_eq!(ack.yiaddr, offer.yiaddr);
    ack
}

fn count(h: &Harness<Dhcp>, name: &str) -> u64 {
    h.counter(name)
        .unwrap_or_else(|| panic!("no counter {name}"))
}

#[test]
fn golden_dhclient_discover_parses() {
    // The test frames carry the cookie the server expects.
    assert_eq!(frames::DHCP_MAGIC_COOKIE, MAGIC_COOKIE);
    let eth = EthernetFrame::new_checked(&DHCLIENT_DISCOVER[..]).unwrap();
    let p = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(p.verify_checksum());
    let u = UdpPacket::new_checked(p.payload()).unwrap();
    assert!(u.verify_checksum(p.src_addr(), p.dst_addr()));
    assert_eq!(u.payload().len(), 300);
    let req = Request::parse(u.payload()).unwrap();
    assert_eq!(req.message_type, MessageType::Discover);
    assert_eq!(req.xid, 0x3903_f326);
    assert_eq!(req.chaddr, C1);
    assert!(!req.broadcast());
    assert_eq!(req.requested_ip, Some(ip(120)));
    assert_eq!(req.server_id, None);
    assert_eq!(
        req.parameters,
        vec![1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42]
    );
    let d = DhcpPacket::new_checked(u.payload()).unwrap();
    let codes: Vec<u8> = d.options().map(|o| o.unwrap().code).collect();
    assert_eq!(codes, vec![53, 50, 12, 55]);
    assert_eq!(d.options().nth(2).unwrap().unwrap().data, b"client");

    // The server offers the requested address, unicast to it (no broadcast flag).
    let mut h = server();
    let offer = exchange(&mut h, &DHCLIENT_DISCOVER);
    assert_eq!(offer.kind(), 2);
    assert_eq!(offer.xid, 0x3903_f326);
    assert_eq!(offer.chaddr, C1);
    assert_eq!(offer.yiaddr, ip(120));
    assert_eq!((offer.eth_dst, offer.ip_dst), (C1, ip(120)));
    // PRL order for the options we have: 1, 3, 15, 6.
    assert_eq!(offer.codes(), vec![53, 54, 51, 58, 59, 1, 3, 15, 6]);
}

#[test]
fn full_dora_exchange() {
    let mut h = server();
    let offer = discover(&mut h, C1, &[(61, &[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56])]);
    assert_eq!(offer.port, LAN);
    assert_eq!(offer.kind(), 2);
    assert_eq!(offer.xid, 0xdead_beef);
    assert_eq!(offer.chaddr, C1);
    assert_eq!(offer.yiaddr, ip(100));
    assert_eq!(offer.ciaddr, ZERO);
    assert_eq!(offer.flags, 0x8000);
    // Broadcast flag: to everyone, from the server.
    assert_eq!(
        (offer.eth_dst, offer.ip_dst),
        (EthernetAddress::BROADCAST, BCAST)
    );
    assert_eq!((offer.eth_src, offer.ip_src), (SERVER_MAC, SERVER_IP));
    assert_eq!(offer.udp_ports, (67, 68));
    assert!(offer.len >= 300);
    assert_eq!(offer.codes(), vec![53, 54, 51, 58, 59, 1, 3, 6, 15, 61]);
    assert_eq!(offer.opt(54), Some(&SERVER_IP.octets()[..]));
    assert_eq!(offer.u32(51), 3600);
    assert_eq!(offer.u32(58), 1800);
    assert_eq!(offer.u32(59), 3150);
    assert_eq!(offer.opt(1), Some(&[255, 255, 255, 0][..]));
    assert_eq!(offer.opt(3), Some(&[192, 168, 1, 1][..]));
    assert_eq!(offer.opt(6), Some(&[192, 168, 1, 1][..]));
    assert_eq!(offer.opt(15), Some(&b"edge.test"[..]));
    assert_eq!(
        offer.opt(61),
        Some(&[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56][..])
    );
    assert_eq!(count(&h, "leases_offered"), 1);

    let ack = exchange(
        &mut h,
        &bcast(
            C1,
            &msg(
                3,
                C1,
                ZERO,
                true,
                &[(50, &ip(100).octets()), (54, &SERVER_IP.octets())],
            ),
        ),
    );
    assert_eq!(ack.kind(), 5);
    assert_eq!(ack.yiaddr, ip(100));
    assert_eq!(
        (ack.eth_dst, ack.ip_dst),
        (EthernetAddress::BROADCAST, BCAST)
    );
    assert_eq!(ack.codes()[..5], [53, 54, 51, 58, 59]);
    assert_eq!(ack.u32(51), 3600);
    for (name, v) in [
        ("discovers", 1),
        ("offers", 1),
        ("requests", 1),
        ("acks", 1),
        ("naks", 0),
        ("leases_active", 1),
        ("leases_offered", 0),
    ] {
        assert_eq!(count(&h, name), v, "{name}");
    }

    // Without the broadcast flag, replies go unicast to yiaddr/chaddr.
    let offer = exchange(&mut h, &bcast(C2, &msg(1, C2, ZERO, false, &[])));
    assert_eq!(offer.yiaddr, ip(101));
    assert_eq!((offer.eth_dst, offer.ip_dst), (C2, ip(101)));
    let ack = exchange(
        &mut h,
        &bcast(
            C2,
            &msg(
                3,
                C2,
                ZERO,
                false,
                &[(50, &ip(101).octets()), (54, &SERVER_IP.octets())],
            ),
        ),
    );
    assert_eq!((ack.kind(), ack.eth_dst, ack.ip_dst), (5, C2, ip(101)));
    assert_eq!(count(&h, "leases_active"), 2);

    // A second DISCOVER from a bound client offers the same address.
    assert_eq!(discover(&mut h, C1, &[]).yiaddr, ip(100));
}

#[test]
fn parameter_request_list_order() {
    let mut h = server();
    let offer = discover(&mut h, C1, &[(55, &[6, 15, 3, 1])]);
    assert_eq!(offer.codes(), vec![53, 54, 51, 58, 59, 6, 15, 3, 1]);
}

#[test]
fn reservation_by_mac() {
    let mut h = server();
    // Even when it asks for another address.
    let offer = discover(&mut h, RESERVED, &[(50, &ip(120).octets())]);
    assert_eq!(offer.yiaddr, ip(50));
    let ack = dora(&mut h, RESERVED);
    assert_eq!(ack.yiaddr, ip(50));
    // No one else gets it, even asking for it.
    let ack = exchange(
        &mut h,
        &bcast(C1, &msg(3, C1, ZERO, true, &[(50, &ip(50).octets())])),
    );
    assert_eq!(ack.kind(), 6);
    assert_eq!(
        discover(&mut h, C1, &[(50, &ip(50).octets())]).yiaddr,
        ip(100)
    );
}

#[test]
fn requested_address_honoured_when_free() {
    let mut h = server();
    assert_eq!(dora(&mut h, C1).yiaddr, ip(100));
    assert_eq!(
        discover(&mut h, C2, &[(50, &ip(150).octets())]).yiaddr,
        ip(150)
    );
    // Taken, outside the pool, or in another subnet: next free instead.
    assert_eq!(
        discover(&mut h, C3, &[(50, &ip(100).octets())]).yiaddr,
        ip(101)
    );
    let mut h = server();
    assert_eq!(
        discover(&mut h, C3, &[(50, &ip(20).octets())]).yiaddr,
        ip(100)
    );
    assert_eq!(
        discover(&mut h, C2, &[(50, &[10, 0, 0, 5])]).yiaddr,
        ip(101)
    );
}

#[test]
fn request_for_another_server_releases_the_offer() {
    let mut h = server();
    assert_eq!(discover(&mut h, C1, &[]).yiaddr, ip(100));
    assert_eq!(count(&h, "leases_offered"), 1);
    silent(
        &mut h,
        &bcast(
            C1,
            &msg(
                3,
                C1,
                ZERO,
                true,
                &[(50, &[192, 168, 1, 77]), (54, &[192, 168, 1, 3])],
            ),
        ),
    );
    assert_eq!(count(&h, "leases_offered"), 0);
    assert_eq!(count(&h, "requests"), 1);
    // The address is free for others.
    assert!(h.vnf().server.assignable(C2, ip(100)));
}

#[test]
fn init_reboot_ack_and_nak() {
    let mut h = server();
    assert_eq!(dora(&mut h, C1).yiaddr, ip(100));
    // Its own lease: ACK.
    let ack = exchange(
        &mut h,
        &bcast(C1, &msg(3, C1, ZERO, false, &[(50, &ip(100).octets())])),
    );
    assert_eq!((ack.kind(), ack.yiaddr), (5, ip(100)));
    // Wrong subnet: NAK, broadcast, with a server identifier.
    let nak = exchange(
        &mut h,
        &bcast(C2, &msg(3, C2, ZERO, false, &[(50, &[10, 0, 0, 9])])),
    );
    assert_eq!(nak.kind(), 6);
    assert_eq!(
        (nak.eth_dst, nak.ip_dst),
        (EthernetAddress::BROADCAST, BCAST)
    );
    assert_eq!(nak.yiaddr, ZERO);
    assert_eq!(nak.opt(54), Some(&SERVER_IP.octets()[..]));
    assert!(nak.opt(51).is_none());
    // Someone else's address: NAK.
    let nak = exchange(
        &mut h,
        &bcast(C2, &msg(3, C2, ZERO, false, &[(50, &ip(100).octets())])),
    );
    assert_eq!(nak.kind(), 6);
    // Outside the pool: NAK.
    let nak = exchange(
        &mut h,
        &bcast(C2, &msg(3, C2, ZERO, false, &[(50, &ip(20).octets())])),
    );
    assert_eq!(nak.kind(), 6);
    // A free pool address (e.g. after a server restart): ACK.
    let ack = exchange(
        &mut h,
        &bcast(C2, &msg(3, C2, ZERO, false, &[(50, &ip(160).octets())])),
    );
    assert_eq!((ack.kind(), ack.yiaddr), (5, ip(160)));
    assert_eq!(count(&h, "naks"), 3);
}

#[test]
fn renewal_unicast_and_rebinding() {
    let mut h = server();
    assert_eq!(dora(&mut h, C1).yiaddr, ip(100));
    h.advance_ns(1800 * SEC);
    // RENEWING: unicast to the server, ciaddr set, no server id or requested address.
    let ack = exchange(
        &mut h,
        &unicast(C1, ip(100), &msg(3, C1, ip(100), false, &[])),
    );
    assert_eq!(ack.kind(), 5);
    assert_eq!((ack.ciaddr, ack.yiaddr), (ip(100), ip(100)));
    assert_eq!((ack.eth_dst, ack.ip_dst), (C1, ip(100)));
    assert_eq!(ack.u32(51), 3600);
    // The lease now runs until 1800 + 3600 s.
    h.advance_ns(3000 * SEC);
    h.tick();
    assert_eq!(count(&h, "leases_active"), 1);
    // REBINDING: broadcast, ciaddr set.
    let ack = exchange(
        &mut h,
        &udp_frame(
            EthernetAddress::BROADCAST,
            C1,
            ip(100),
            BCAST,
            (68, 67),
            &msg(3, C1, ip(100), false, &[]),
        ),
    );
    assert_eq!(
        (ack.kind(), ack.ciaddr, ack.ip_dst, ack.eth_dst),
        (5, ip(100), ip(100), C1)
    );
    // Renewing an address that belongs to someone else: NAK.
    let nak = exchange(
        &mut h,
        &unicast(C2, ip(100), &msg(3, C2, ip(100), false, &[])),
    );
    assert_eq!(nak.kind(), 6);
    assert_eq!(count(&h, "leases_active"), 1);
}

#[test]
fn release_frees() {
    let mut h = server();
    assert_eq!(dora(&mut h, C1).yiaddr, ip(100));
    silent(
        &mut h,
        &unicast(
            C1,
            ip(100),
            &msg(7, C1, ip(100), false, &[(54, &SERVER_IP.octets())]),
        ),
    );
    assert_eq!(count(&h, "releases"), 1);
    assert_eq!(count(&h, "leases_active"), 0);
    assert!(h.vnf().server.assignable(C2, ip(100)));
    // The client coming back gets its previous address.
    assert_eq!(discover(&mut h, C1, &[]).yiaddr, ip(100));
}

#[test]
fn release_by_another_client_is_ignored() {
    let mut h = server();
    dora(&mut h, C1);
    silent(
        &mut h,
        &unicast(
            C2,
            ip(100),
            &msg(7, C2, ip(100), false, &[(54, &SERVER_IP.octets())]),
        ),
    );
    assert_eq!(count(&h, "leases_active"), 1);
}

#[test]
fn decline_holds_the_address_back() {
    let mut h = server();
    assert_eq!(dora(&mut h, C1).yiaddr, ip(100));
    silent(
        &mut h,
        &bcast(
            C1,
            &msg(
                4,
                C1,
                ZERO,
                false,
                &[(50, &ip(100).octets()), (54, &SERVER_IP.octets())],
            ),
        ),
    );
    assert_eq!(count(&h, "declines"), 1);
    assert_eq!(count(&h, "leases_active"), 0);
    assert_eq!(discover(&mut h, C1, &[]).yiaddr, ip(101));
    assert_eq!(
        discover(&mut h, C2, &[(50, &ip(100).octets())]).yiaddr,
        ip(102)
    );
    // Back in the pool after the hold.
    h.advance_ns(601 * SEC);
    h.tick();
    assert_eq!(
        discover(&mut h, C3, &[(50, &ip(100).octets())]).yiaddr,
        ip(100)
    );
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut h = server();
    let ack = exchange(
        &mut h,
        &unicast(C1, ip(20), &msg(8, C1, ip(20), false, &[(55, &[3, 6])])),
    );
    assert_eq!(ack.kind(), 5);
    assert_eq!((ack.ciaddr, ack.yiaddr), (ip(20), ZERO));
    assert_eq!((ack.eth_dst, ack.ip_dst), (C1, ip(20)));
    assert_eq!(ack.codes(), vec![53, 54, 3, 6, 1, 15]);
    assert_eq!(count(&h, "informs"), 1);
    assert_eq!(count(&h, "acks"), 1);
    assert_eq!(count(&h, "leases_active"), 0);
}

#[test]
fn leases_and_offers_expire() {
    let mut h = server();
    assert_eq!(dora(&mut h, C1).yiaddr, ip(100));
    discover(&mut h, C2, &[]);
    assert_eq!(
        (count(&h, "leases_active"), count(&h, "leases_offered")),
        (1, 1)
    );
    h.advance_ns(61 * SEC);
    h.tick();
    assert_eq!(
        (count(&h, "leases_active"), count(&h, "leases_offered")),
        (1, 0)
    );
    h.advance_ns(3540 * SEC);
    h.tick();
    assert_eq!(count(&h, "leases_active"), 0);
    // Expired: renewing is still possible if no one took it...
    let ack = exchange(
        &mut h,
        &unicast(C1, ip(100), &msg(3, C1, ip(100), false, &[])),
    );
    assert_eq!(ack.kind(), 5);
    assert_eq!(count(&h, "leases_active"), 1);
}

#[test]
fn pool_exhaustion_is_counted_and_unanswered() {
    let mut c = config();
    c["pool"] = json!("192.168.1.100-192.168.1.101");
    let mut h = server_with(c);
    assert_eq!(dora(&mut h, C1).yiaddr, ip(100));
    assert_eq!(discover(&mut h, C2, &[]).yiaddr, ip(101));
    silent(&mut h, &bcast(C3, &msg(1, C3, ZERO, true, &[])));
    assert_eq!(count(&h, "pool_exhausted"), 1);
    assert_eq!(count(&h, "discovers"), 3);
    assert_eq!(count(&h, "offers"), 2);
    // The offer to C2 lapses; C3 then gets an address.
    h.advance_ns(61 * SEC);
    h.tick();
    assert_eq!(discover(&mut h, C3, &[]).yiaddr, ip(101));
}

#[test]
fn malformed_messages_are_dropped_and_counted() {
    let good = msg(1, C1, ZERO, true, &[]);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("truncated", good[..200].to_vec()));
    cases.push(("no options area", good[..239].to_vec()));
    let mut m = good.clone();
    m[237] = 0;
    cases.push(("bad magic cookie", m));
    let mut m = msg(1, C1, ZERO, true, &[]);
    m.truncate(240);
    m.extend_from_slice(&[12, 4, b'a', b'b', 255]);
    cases.push(("missing option 53", m));
    let mut m = good[..240].to_vec();
    m.extend_from_slice(&[53, 1, 1, 12, 40, b'x', b'y']);
    cases.push(("option length past the end", m));
    let mut m = good[..240].to_vec();
    m.extend_from_slice(&[53, 1, 1, 55]);
    cases.push(("option without a length", m));
    let mut m = good[..240].to_vec();
    m.extend_from_slice(&[53, 2, 1, 1, 255]);
    cases.push(("option 53 of two bytes", m));
    let mut m = good.clone();
    m[0] = 2;
    cases.push(("op BOOTREPLY", m));
    let mut m = good.clone();
    m[1] = 6;
    cases.push(("htype 6", m));
    cases.push(("OFFER from a client", msg(2, C1, ZERO, true, &[])));
    let mut m = good[..240].to_vec();
    m.extend_from_slice(&[53, 1, 1, 50, 3, 1, 2, 3, 255]);
    cases.push(("requested address of 3 bytes", m));

    let mut h = server();
    for (i, (name, m)) in cases.iter().enumerate() {
        let out = h.process(LAN, &bcast(C1, m));
        assert_eq!(out.verdict, Verdict::Drop(DropReason::Malformed), "{name}");
        assert!(out.emitted.is_empty(), "{name} answered");
        assert_eq!(count(&h, "malformed"), i as u64 + 1, "{name}");
    }
    // A bad UDP checksum, and a UDP length past the datagram.
    let mut f = bcast(C1, &good);
    let last = f.len() - 1;
    f[last] ^= 0xff;
    assert_eq!(
        h.process(LAN, &f).verdict,
        Verdict::Drop(DropReason::Malformed)
    );
    let mut f = bcast(C1, &good);
    f[38..40].copy_from_slice(&2000u16.to_be_bytes());
    let out = h.process(LAN, &f);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Malformed));
    assert!(out.emitted.is_empty());
    assert_eq!(count(&h, "malformed"), cases.len() as u64 + 2);
    assert_eq!(count(&h, "offers"), 0);
}

#[test]
fn partial_checksum_from_offload_is_accepted() {
    let mut h = server();
    let m = msg(1, C1, ZERO, true, &[]);
    let mut f = bcast(C1, &m);
    let partial = vnf_sdk::wire::checksum::pseudo_header_v4(
        ZERO,
        BCAST,
        IpProtocol::Udp,
        (8 + m.len()) as u32,
    );
    f[40..42].copy_from_slice(&partial.to_be_bytes());
    assert_eq!(exchange(&mut h, &f).kind(), 2);
}

#[test]
fn options_iterator_survives_hostile_input() {
    // A small LCG: every byte string of every length, no panic, terminates.
    let mut x: u32 = 12345;
    for len in 0..200usize {
        for _ in 0..50 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let n = Options::new(&bytes).count();
            assert!(n <= len);
            let mut m = msg(1, C1, ZERO, false, &[]);
            m.truncate(240);
            m.extend_from_slice(&bytes);
            let _ = Request::parse(&m);
            let _ = Request::parse(&bytes);
        }
    }
    let errs: Vec<_> = Options::new(&[1, 200, 0]).collect();
    assert_eq!(errs, vec![Err(message::Error::OptionOverrun { code: 1 })]);
}

#[test]
fn other_traffic_passes_through() {
    let mut h = server();
    let router_mac = EthernetAddress([0x02, 0, 0, 0, 1, 1]);
    // Client to the Internet.
    let f = udp_frame(
        router_mac,
        C1,
        ip(100),
        Ipv4Addr::new(8, 8, 8, 8),
        (5353, 53),
        b"query",
    );
    let out: Output = h.process(LAN, &f);
    assert_eq!(out.verdict, Verdict::Forward(UPLINK));
    assert_eq!(out.frame, f);
    assert!(out.emitted.is_empty());
    // And back.
    let f = udp_frame(
        C1,
        router_mac,
        Ipv4Addr::new(8, 8, 8, 8),
        ip(100),
        (53, 5353),
        b"answer",
    );
    assert_eq!(h.process(UPLINK, &f).verdict, Verdict::Forward(LAN));
    // DHCP to another server's unicast address, client messages from the uplink.
    let f = udp_frame(
        router_mac,
        C1,
        ip(100),
        ip(1),
        (68, 67),
        &msg(3, C1, ip(100), false, &[]),
    );
    assert_eq!(h.process(LAN, &f).verdict, Verdict::Forward(UPLINK));
    let f = bcast(C1, &msg(1, C1, ZERO, true, &[]));
    assert_eq!(h.process(UPLINK, &f).verdict, Verdict::Forward(LAN));
    // Server messages from the LAN side pass; ARP for others passes; IPv6 passes.
    let f = udp_frame(
        EthernetAddress::BROADCAST,
        C2,
        ip(9),
        BCAST,
        (67, 68),
        b"offer?",
    );
    assert_eq!(h.process(LAN, &f).verdict, Verdict::Forward(UPLINK));
    let f = arp_frame(C1, ip(100), ip(1));
    assert_eq!(h.process(LAN, &f).verdict, Verdict::Forward(UPLINK));
    let mut f = vec![0xffu8; 60];
    f[6..12].copy_from_slice(C1.as_bytes());
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(h.process(LAN, &f).verdict, Verdict::Forward(UPLINK));
    assert_eq!(h.process(UPLINK, &f[..10]).verdict, Verdict::Forward(LAN));
    assert_eq!(count(&h, "malformed"), 0);
}

#[test]
fn rogue_server_replies_from_uplink_are_dropped() {
    let mut h = server();
    let rogue = EthernetAddress([0x02, 0, 0, 0, 9, 9]);
    let f = udp_frame(
        EthernetAddress::BROADCAST,
        rogue,
        ip(9),
        BCAST,
        (67, 68),
        b"anything",
    );
    let out = h.process(UPLINK, &f);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Policy));
    assert_eq!(count(&h, "rogue_server_drops"), 1);
}

fn arp_frame(sha: EthernetAddress, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    frames::arp_request(sha, spa, tpa)
}

#[test]
fn arp_for_the_server_address_is_answered() {
    let mut h = server();
    for port in [LAN, UPLINK] {
        let out = h.process(port, &arp_frame(C1, ip(100), SERVER_IP));
        assert_eq!(out.verdict, Verdict::Consume);
        assert_eq!(out.emitted.len(), 1);
        assert_eq!(out.emitted[0].0, port);
        let eth = EthernetFrame::new_checked(&out.emitted[0].1[..]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), (C1, SERVER_MAC));
        let r = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(r.operation, ArpOperation::Reply);
        assert_eq!(
            (r.source_hardware_addr, r.source_protocol_addr),
            (SERVER_MAC, SERVER_IP)
        );
        assert_eq!(
            (r.target_hardware_addr, r.target_protocol_addr),
            (C1, ip(100))
        );
    }
    assert_eq!(count(&h, "arp_replies"), 2);
    // Other traffic to the server's MAC is not passed on.
    let f = udp_frame(SERVER_MAC, C1, ip(100), SERVER_IP, (5000, 53), b"x");
    assert_eq!(
        h.process(LAN, &f).verdict,
        Verdict::Drop(DropReason::Unsupported)
    );
}

#[test]
fn default_mac_is_derived_from_the_name() {
    let mut c = config();
    c.as_object_mut().unwrap().remove("mac");
    let mut h = server_with(c);
    let out = h.process(LAN, &arp_frame(C1, ip(100), SERVER_IP));
    let mac = EthernetFrame::new_checked(&out.emitted[0].1[..])
        .unwrap()
        .src_addr();
    assert_eq!(mac, EthernetAddress::derived("test", 0xd4c0));
    assert!(mac.is_unicast() && mac.is_local());
}

#[test]
fn explicit_renewal_and_rebinding_times() {
    let mut c = config();
    c["renewal_time"] = json!(600);
    c["rebinding_time"] = json!(900);
    let mut h = server_with(c);
    let offer = discover(&mut h, C1, &[]);
    assert_eq!(
        (offer.u32(51), offer.u32(58), offer.u32(59)),
        (3600, 600, 900)
    );
}

#[test]
fn config_errors_name_the_key() {
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("port", json!("wan"), "port"),
        ("address", json!("192.168.1.2"), "address"),
        ("address", json!("192.168.1.0/24"), "address"),
        ("pool", json!("192.168.2.100-192.168.2.199"), "pool"),
        ("pool", json!("192.168.1.1-192.168.1.10"), "pool"),
        ("pool", json!("192.168.1.200-192.168.1.100"), "pool"),
        ("router", json!("10.0.0.1"), "router"),
        ("dns", json!(["192.168.1.1", "nope"]), "dns.1"),
        ("domain", json!("bad domain"), "domain"),
        ("lease_time", json!(5), "lease_time"),
        ("renewal_time", json!(3500), "renewal_time"),
        ("rebinding_time", json!(3600), "rebinding_time"),
        (
            "reservations",
            json!([{ "mac": "02:00:00:00:01:5", "address": "192.168.1.50" }]),
            "reservations.0.mac",
        ),
        (
            "reservations",
            json!([{ "mac": "02:00:00:00:01:50", "address": "10.0.0.1" }]),
            "reservations.0.address",
        ),
        (
            "reservations",
            json!([{ "mac": "02:00:00:00:01:50", "address": "192.168.1.50" }, { "mac": "02:00:00:00:01:50", "address": "192.168.1.51" }]),
            "reservations.1.mac",
        ),
        (
            "reservations",
            json!([{ "mac": "02:00:00:00:01:50", "address": "192.168.1.50" }, { "mac": "02:00:00:00:01:51", "address": "192.168.1.50" }]),
            "reservations.1.address",
        ),
        ("mac", json!("ff:ff:ff:ff:ff:ff"), "mac"),
    ];
    for (key, value, path) in cases {
        let mut c = config();
        c[key] = value.clone();
        let e = config_error(c);
        assert_eq!(e.path, path, "{key} = {value}: {e}");
        assert!(!e.message.is_empty());
    }
    // The pool may not contain the router.
    let mut c = config();
    c["router"] = json!("192.168.1.150");
    assert_eq!(config_error(c).path, "pool");
    // Unknown keys and missing keys are refused by the decoder.
    let mut c = config();
    c["leasetime"] = json!(10);
    assert!(config_error(c).message.contains("leasetime"));
    let mut c = config();
    c.as_object_mut().unwrap().remove("pool");
    assert!(config_error(c).message.contains("pool"));
    let mut c = config();
    c["reservations"] =
        json!([{ "mac": "02:00:00:00:01:50", "address": "192.168.1.50", "name": "x" }]);
    let e = config_error(c);
    assert!(
        e.path.starts_with("reservations") && e.message.contains("name"),
        "{e}"
    );
    // Three ports: not a bump in the wire.
    let e = match Harness::<Dhcp>::new(&["lan", "uplink", "mgmt"], config()) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    assert_eq!(e.path, "port");
}

#[test]
fn offloaded_frames_are_served_and_passed_untouched() {
    use vnf_sdk::{FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4};
    let mut h = server();
    // A DISCOVER the host marks partial: its UDP checksum is not verified.
    let m = msg(1, C1, ZERO, true, &[]);
    let mut f = bcast(C1, &m);
    let partial = vnf_sdk::wire::checksum::pseudo_header_v4(
        ZERO,
        BCAST,
        IpProtocol::Udp,
        (8 + m.len()) as u32,
    );
    f[40..42].copy_from_slice(&partial.to_be_bytes());
    let out = h.process_with_offload(LAN, &f, FLAG_CSUM_PARTIAL, 0);
    assert_eq!(out.verdict, Verdict::Consume);
    assert_eq!(out.emitted.len(), 1);
    let offer = seen(out.emitted[0].0, &out.emitted[0].1);
    assert_eq!(offer.kind(), 2, "offer with a complete checksum");
    // A 30 kB TCP super-frame to the Internet passes as it is.
    let router_mac = EthernetAddress([0x02, 0, 0, 0, 1, 1]);
    let remote = Ipv4Addr::new(8, 8, 8, 8);
    let mut seg = vec![0u8; 20 + 30_000];
    seg[0..2].copy_from_slice(&40000u16.to_be_bytes());
    seg[2..4].copy_from_slice(&443u16.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = 0x10;
    let p = vnf_sdk::wire::checksum::pseudo_header_v4(
        ip(100),
        remote,
        IpProtocol::Tcp,
        seg.len() as u32,
    );
    seg[16..18].copy_from_slice(&p.to_be_bytes());
    let header = Ipv4Repr {
        ident: 9,
        dont_frag: true,
        ..frames::ipv4_header(ip(100), remote, IpProtocol::Tcp)
    };
    let big = frames::ethernet(
        router_mac,
        C1,
        EtherType::Ipv4,
        &frames::ipv4_with(header, &seg),
    );
    let out = h.process_with_offload(LAN, &big, FLAG_CSUM_PARTIAL | FLAG_GSO_TCPV4, 1448);
    assert_eq!(out.verdict, Verdict::Forward(UPLINK));
    assert_eq!(out.frame, big);
    assert!(out.emitted.is_empty());
}

// ---- replace (state handover) ----

#[test]
fn a_replacement_keeps_the_leases() {
    let mut h = server();
    assert_eq!(dora(&mut h, C1).yiaddr, ip(100));
    assert_eq!(discover(&mut h, C2, &[]).yiaddr, ip(101));
    h.advance_ns(1800 * SEC);

    let mut h = h.replace::<Dhcp>(&["lan", "uplink"], config()).unwrap();
    assert_eq!(count(&h, "leases_active"), 1);
    assert_eq!(count(&h, "leases_offered"), 1);
    // C1 renews the address it holds; a new client gets neither C1's
    // address nor the one offered to C2.
    let ack = exchange(
        &mut h,
        &unicast(C1, ip(100), &msg(3, C1, ip(100), false, &[])),
    );
    assert_eq!((ack.kind(), ack.yiaddr), (5, ip(100)));
    assert_eq!(discover(&mut h, C3, &[]).yiaddr, ip(102));
    // Another client asking to renew C1's address is refused.
    let nak = exchange(
        &mut h,
        &unicast(C2, ip(100), &msg(3, C2, ip(100), false, &[])),
    );
    assert_eq!(nak.kind(), 6);
    drop(h);

    // Without the state, C1's address would go to the first client asking.
    let mut fresh = server();
    assert_eq!(discover(&mut fresh, C3, &[]).yiaddr, ip(100));
}
