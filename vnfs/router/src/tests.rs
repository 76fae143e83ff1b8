//! Native tests through the SDK harness.

use serde_json::json;
use vnf_sdk::testing::{Harness, Output};
use vnf_sdk::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, Icmpv4Message,
    Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
};

use super::*;
use vnf_sdk::neighbor;
use vnf_sdk::testing::frames;

const LAN: u16 = 0;
const WAN: u16 = 1;
const R_LAN: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 1, 1]);
const R_WAN: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 2, 1]);
const HOST: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0, 1, 0x10]);
const GW: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0, 2, 0xfe]);
const GW2: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0, 2, 0xfd]);
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
const R_LAN_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
const R_WAN_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 1);
const GW_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 254);
const GW2_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 253);
const SEC: u64 = 1_000_000_000;

fn config() -> serde_json::Value {
    json!({
        "interfaces": { "lan": "10.0.1.1/24", "wan": "10.0.2.1/24" },
        "routes": [
            { "to": "10.9.0.0/16", "via": "10.0.2.253" },
            { "to": "10.9.8.0/24", "via": "10.0.2.254" },
            { "to": "0.0.0.0/0", "via": "10.0.2.254" },
        ],
        "mac": { "lan": "02:00:00:00:01:01", "wan": "02:00:00:00:02:01" },
        "mtu": { "wan": 1000 },
        "arp_timeout_s": 60,
    })
}

fn router() -> Harness<Router> {
    Harness::new(&["lan", "wan"], config()).expect("valid config")
}

fn config_error(config: serde_json::Value) -> ConfigError {
    match Harness::<Router>::new(&["lan", "wan"], config) {
        Ok(_) => panic!("config accepted"),
        Err(e) => e,
    }
}

/// An IPv4 packet as the tests send it (identification 0x1234).
fn ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    protocol: IpProtocol,
    dont_frag: bool,
    payload: &[u8],
) -> Vec<u8> {
    frames::ipv4_with(
        Ipv4Repr {
            ttl,
            ident: 0x1234,
            dont_frag,
            ..frames::ipv4_header(src, dst, protocol)
        },
        payload,
    )
}

/// A UDP-ish packet from the LAN host to `dst`, as a frame for the router.
fn from_host(dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    frames::ethernet(
        R_LAN,
        HOST,
        EtherType::Ipv4,
        &ipv4(
            HOST_IP,
            dst,
            ttl,
            IpProtocol::Udp,
            false,
            b"0123456789abcdef",
        ),
    )
}

fn arp_reply_from_gw(mac: EthernetAddress, ip: Ipv4Addr) -> Vec<u8> {
    frames::ethernet(
        R_WAN,
        mac,
        EtherType::Arp,
        &frames::arp(ArpOperation::Reply, mac, ip, R_WAN, R_WAN_IP),
    )
}

/// Teaches the router the gateways' MACs.
fn resolve_gateways(h: &mut Harness<Router>) {
    for (mac, ip) in [(GW, GW_IP), (GW2, GW2_IP)] {
        let out = h.process(WAN, &arp_reply_from_gw(mac, ip));
        assert_eq!(out.verdict, Verdict::Consume);
    }
}

/// Checks an emitted ICMP error: returns (type, code, rest-of-header word, quoted bytes).
fn parse_icmp_error(
    frame: &[u8],
    to_mac: EthernetAddress,
    from_mac: EthernetAddress,
    from_ip: Ipv4Addr,
    to_ip: Ipv4Addr,
) -> (u8, u8, u16, Vec<u8>) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(eth.dst_addr(), to_mac);
    assert_eq!(eth.src_addr(), from_mac);
    assert_eq!(eth.ethertype(), EtherType::Ipv4);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), from_ip);
    assert_eq!(ip.dst_addr(), to_ip);
    assert_eq!(ip.protocol(), IpProtocol::Icmp);
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    (
        u8::from(icmp.msg_type()),
        icmp.msg_code(),
        icmp.next_hop_mtu(),
        icmp.payload().to_vec(),
    )
}

// ---- configuration ----

#[test]
fn config_unknown_key() {
    let mut c = config();
    c["colour"] = json!("blue");
    let e = config_error(c);
    assert!(e.message.contains("unknown field `colour`"), "{e}");
    let mut c = config();
    c["routes"][0]["gateway"] = json!("10.0.2.254");
    let e = config_error(c);
    assert!(e.path.starts_with("routes"), "{e}");
    assert!(e.message.contains("unknown field `gateway`"), "{e}");
}

#[test]
fn config_bad_cidr() {
    for bad in ["10.0.1.1", "10.0.1.1/33", "10.0.1/24", "lan"] {
        let mut c = config();
        c["interfaces"]["lan"] = json!(bad);
        let e = config_error(c);
        assert_eq!(e.path, "interfaces.lan", "{bad}: {e}");
        assert!(e.message.contains("like 10.0.1.1/24"), "{e}");
    }
}

#[test]
fn config_missing_port_address() {
    let mut c = config();
    c["interfaces"] = json!({ "lan": "10.0.1.1/24" });
    let e = config_error(c);
    assert_eq!(e.path, "interfaces");
    assert!(e.message.contains("`wan`"), "{e}");
}

#[test]
fn config_unknown_port() {
    let mut c = config();
    c["interfaces"]["dmz"] = json!("10.0.3.1/24");
    let e = config_error(c);
    assert_eq!(e.path, "interfaces.dmz");
    assert!(e.message.contains("lan, wan"), "{e}");
    let mut c = config();
    c["mtu"]["dmz"] = json!(1400);
    assert_eq!(config_error(c).path, "mtu.dmz");
}

#[test]
fn config_via_outside_connected() {
    let mut c = config();
    c["routes"][1]["via"] = json!("192.168.7.1");
    let e = config_error(c);
    assert_eq!(e.path, "routes.1.via");
    assert!(e.message.contains("10.0.1.0/24, 10.0.2.0/24"), "{e}");
    let mut c = config();
    c["routes"][0]["via"] = json!("10.0.2.1");
    assert_eq!(config_error(c).path, "routes.0.via");
}

#[test]
fn config_other_errors() {
    let mut c = config();
    c["routes"][0]["to"] = json!("10.9.1.0/16");
    let e = config_error(c);
    assert_eq!(e.path, "routes.0.to");
    assert!(e.message.contains("10.9.0.0/16"), "{e}");
    let mut c = config();
    c["interfaces"]["wan"] = json!("10.0.1.200/16");
    assert_eq!(config_error(c).path, "interfaces.wan");
    let mut c = config();
    c["mac"]["lan"] = json!("01:00:5e:00:00:01");
    assert_eq!(config_error(c).path, "mac.lan");
    let mut c = config();
    c["mtu"]["wan"] = json!(20);
    assert_eq!(config_error(c).path, "mtu.wan");
    let mut c = config();
    c["arp_timeout_s"] = json!(0);
    assert_eq!(config_error(c).path, "arp_timeout_s");
}

#[test]
fn config_minimal_and_default_macs() {
    let mut h = Harness::<Router>::new(
        &["lan", "wan"],
        json!({ "interfaces": { "lan": "10.0.1.1/24", "wan": "10.0.2.1/24" } }),
    )
    .unwrap();
    assert_eq!(h.counter("routes"), Some(2));
    let ifaces = h.vnf().ifaces.clone();
    assert_eq!(ifaces[0].mac.0[0], 0x02);
    assert_ne!(ifaces[0].mac, ifaces[1].mac);
    assert_eq!(ifaces[1].mtu, 1500);
    assert_eq!(router().counter("routes"), Some(5));
}

#[test]
fn link_mtu_is_the_default_and_may_only_be_lowered() {
    let minimal = json!({ "interfaces": { "lan": "10.0.1.1/24", "wan": "10.0.2.1/24" } });
    let mut h = Harness::<Router>::with_link_mtus(&[("lan", 1500), ("wan", 1400)], minimal.clone())
        .unwrap();
    assert_eq!(h.vnf().ifaces[1].mtu, 1400, "the link's MTU is the default");
    let mut lower = minimal.clone();
    lower["mtu"] = json!({ "wan": 1300 });
    let mut h = Harness::<Router>::with_link_mtus(&[("lan", 1500), ("wan", 1400)], lower).unwrap();
    assert_eq!(h.vnf().ifaces[1].mtu, 1300);
    let mut higher = minimal;
    higher["mtu"] = json!({ "wan": 1500 });
    let e = Harness::<Router>::with_link_mtus(&[("lan", 1500), ("wan", 1400)], higher)
        .err()
        .expect("an MTU above the link's is refused");
    assert_eq!(e.path, "mtu.wan");
    assert!(e.message.contains("1400"), "{e}");
}

#[test]
fn a_packet_above_the_link_mtu_gets_frag_needed_with_the_link_mtu() {
    let minimal = json!({
        "interfaces": { "lan": "10.0.1.1/24", "wan": "10.0.2.1/24" },
        "routes": [{ "to": "0.0.0.0/0", "via": "10.0.2.254" }],
        "mac": { "lan": "02:00:00:00:01:01", "wan": "02:00:00:00:02:01" },
    });
    let mut h =
        Harness::<Router>::with_link_mtus(&[("lan", 1500), ("wan", 1400)], minimal).unwrap();
    resolve_gateways(&mut h);
    let payload = vec![0u8; 1500 - 20 - 8];
    let df = frames::ethernet(
        R_LAN,
        HOST,
        EtherType::Ipv4,
        &ipv4(
            HOST_IP,
            Ipv4Addr::new(8, 8, 8, 8),
            64,
            IpProtocol::Udp,
            true,
            &payload,
        ),
    );
    let out = h.process(LAN, &df);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::TooBig));
    let (t, code, mtu, _) = parse_icmp_error(&out.emitted[0].1, HOST, R_LAN, R_LAN_IP, HOST_IP);
    assert_eq!((t, code, mtu), (3, 4, 1400));
}

// ---- ARP ----

#[test]
fn arp_request_answered() {
    let mut h = router();
    let request = frames::ethernet(
        EthernetAddress::BROADCAST,
        HOST,
        EtherType::Arp,
        &frames::arp(
            ArpOperation::Request,
            HOST,
            HOST_IP,
            EthernetAddress([0; 6]),
            R_LAN_IP,
        ),
    );
    let out = h.process(LAN, &request);
    assert_eq!(out.verdict, Verdict::Consume);
    assert_eq!(out.emitted.len(), 1);
    let (port, reply) = &out.emitted[0];
    assert_eq!(*port, LAN);
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        0x52, 0x54, 0x00, 0x00, 0x01, 0x10, // dst: the asker
        0x02, 0x00, 0x00, 0x00, 0x01, 0x01, // src: our lan MAC
        0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // Ethernet/IPv4, reply
        0x02, 0x00, 0x00, 0x00, 0x01, 0x01, 10, 0, 1, 1, // we are 10.0.1.1
        0x52, 0x54, 0x00, 0x00, 0x01, 0x10, 10, 0, 1, 10, // to the asker
    ];
    assert_eq!(reply, &expected);
    assert_eq!(h.counter("arp_replies_sent"), Some(1));
    // The asker was learned.
    assert_eq!(h.counter("arp_cache_entries"), Some(1));
    assert_eq!(
        h.vnf().arp.neighbors_mut().lookup((LAN, HOST_IP)),
        Some(HOST)
    );
}

#[test]
fn arp_for_someone_else_ignored() {
    let mut h = router();
    let request = frames::ethernet(
        EthernetAddress::BROADCAST,
        HOST,
        EtherType::Arp,
        &frames::arp(
            ArpOperation::Request,
            HOST,
            HOST_IP,
            EthernetAddress([0; 6]),
            Ipv4Addr::new(10, 0, 1, 77),
        ),
    );
    let out = h.process(LAN, &request);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NotForUs));
    assert!(out.emitted.is_empty());
    assert_eq!(h.counter("arp_cache_entries"), Some(0));
    // Our wan address asked on the lan port: no proxy ARP.
    let request = frames::ethernet(
        EthernetAddress::BROADCAST,
        HOST,
        EtherType::Arp,
        &frames::arp(
            ArpOperation::Request,
            HOST,
            HOST_IP,
            EthernetAddress([0; 6]),
            R_WAN_IP,
        ),
    );
    assert!(h.process(LAN, &request).emitted.is_empty());
}

// ---- local delivery ----

#[test]
fn echo_request_answered() {
    let mut h = router();
    let data = b"nfvhost ping payload";
    let request = frames::icmp(&Icmpv4Repr::EchoRequest {
        ident: 0x4242,
        seq_no: 7,
        data,
    });
    // Ping the wan address from the lan: answered from the pinged address.
    let frame = frames::ethernet(
        R_LAN,
        HOST,
        EtherType::Ipv4,
        &ipv4(HOST_IP, R_WAN_IP, 64, IpProtocol::Icmp, true, &request),
    );
    let out = h.process(LAN, &frame);
    assert_eq!(out.verdict, Verdict::Consume);
    assert_eq!(out.emitted.len(), 1);
    let (port, reply) = &out.emitted[0];
    assert_eq!(*port, LAN);
    let e = EthernetFrame::new_checked(&reply[..]).unwrap();
    assert_eq!((e.dst_addr(), e.src_addr()), (HOST, R_LAN));
    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (R_WAN_IP, HOST_IP));
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(icmp.msg_type(), Icmpv4Message::EchoReply);
    assert_eq!(
        Icmpv4Repr::parse(&icmp).unwrap(),
        Icmpv4Repr::EchoReply {
            ident: 0x4242,
            seq_no: 7,
            data
        }
    );
    assert_eq!(h.counter("icmp_echo_replies"), Some(1));
}

#[test]
fn other_traffic_to_us_dropped() {
    let mut h = router();
    let out = h.process(LAN, &from_host(R_LAN_IP, 64));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Unsupported));
    assert!(out.emitted.is_empty());
    // Directed and limited broadcasts are not routed.
    let out = h.process(LAN, &from_host(Ipv4Addr::new(10, 0, 2, 255), 64));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NotForUs));
    let mut frame = from_host(Ipv4Addr::BROADCAST, 64);
    frame[..6].copy_from_slice(&[0xff; 6]);
    assert_eq!(
        h.process(LAN, &frame).verdict,
        Verdict::Drop(DropReason::NotForUs)
    );
}

// ---- link layer and validation ----

#[test]
fn frames_not_for_our_mac() {
    let mut h = router();
    let mut frame = from_host(Ipv4Addr::new(10, 0, 2, 5), 64);
    frame[..6].copy_from_slice(&R_WAN.0); // our wan MAC, but arriving on lan
    assert_eq!(
        h.process(LAN, &frame).verdict,
        Verdict::Drop(DropReason::NotForUs)
    );
    let ipv6 = frames::ethernet(R_LAN, HOST, EtherType::Ipv6, &[0x60; 40]);
    assert_eq!(
        h.process(LAN, &ipv6).verdict,
        Verdict::Drop(DropReason::Unsupported)
    );
    assert_eq!(
        h.process(LAN, &[0u8; 10]).verdict,
        Verdict::Drop(DropReason::Malformed)
    );
}

#[test]
fn malformed_ipv4_dropped() {
    let mut h = router();
    let good = from_host(Ipv4Addr::new(10, 9, 8, 7), 64);
    let mut bad_checksum = good.clone();
    bad_checksum[14 + 10] ^= 0xff;
    let mut bad_version = good.clone();
    bad_version[14] = 0x65;
    let mut bad_length = good.clone();
    bad_length[14 + 2..14 + 4].copy_from_slice(&500u16.to_be_bytes());
    let truncated = good[..14 + 12].to_vec();
    for frame in [bad_checksum, bad_version, bad_length, truncated] {
        let out = h.process(LAN, &frame);
        assert_eq!(out.verdict, Verdict::Drop(DropReason::Malformed));
        assert!(out.emitted.is_empty());
    }
}

// ---- forwarding ----

#[test]
fn forwarding_waits_for_arp() {
    let mut h = router();
    let dst = Ipv4Addr::new(10, 0, 2, 50);
    let dst_mac = EthernetAddress([0x52, 0x54, 0, 0, 2, 0x50]);
    let frame = from_host(dst, 64);
    let out = h.process(LAN, &frame);
    assert_eq!(out.verdict, Verdict::Consume);
    assert_eq!(out.emitted.len(), 1);
    let (port, request) = &out.emitted[0];
    assert_eq!(*port, WAN);
    let e = EthernetFrame::new_checked(&request[..]).unwrap();
    assert_eq!(
        (e.dst_addr(), e.src_addr(), e.ethertype()),
        (EthernetAddress::BROADCAST, R_WAN, EtherType::Arp)
    );
    let a = ArpRepr::parse(&ArpPacket::new_checked(e.payload()).unwrap()).unwrap();
    assert_eq!(a.operation, ArpOperation::Request);
    assert_eq!(
        (
            a.source_hardware_addr,
            a.source_protocol_addr,
            a.target_protocol_addr
        ),
        (R_WAN, R_WAN_IP, dst)
    );
    assert_eq!(h.counter("arp_requests_sent"), Some(1));
    assert_eq!(h.counter("arp_pending_frames"), Some(1));

    // A second packet within the second queues without another request.
    let out = h.process(LAN, &frame);
    assert_eq!(out.verdict, Verdict::Consume);
    assert!(out.emitted.is_empty());

    // The reply releases both, rewritten.
    let out = h.process(WAN, &arp_reply_from_gw(dst_mac, dst));
    assert_eq!(out.verdict, Verdict::Consume);
    assert_eq!(out.emitted.len(), 2);
    for (port, sent) in &out.emitted {
        assert_eq!(*port, WAN);
        let e = EthernetFrame::new_checked(&sent[..]).unwrap();
        assert_eq!((e.dst_addr(), e.src_addr()), (dst_mac, R_WAN));
        let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
        assert_eq!(ip.ttl(), 63);
        assert!(ip.verify_checksum());
        assert_eq!(&sent[14 + 20..], &frame[14 + 20..]);
    }
    assert_eq!(h.counter("forwarded"), Some(2));
    assert_eq!(h.counter("arp_pending_frames"), Some(0));
    assert_eq!(h.counter("arp_cache_entries"), Some(1));

    // Now cached: forwarded in place.
    let out = h.process(LAN, &frame);
    assert_eq!(out.verdict, Verdict::Forward(WAN));
    assert!(out.emitted.is_empty());
    assert_eq!(&out.frame[..12], &[dst_mac.0, R_WAN.0].concat()[..]);
    assert_eq!(h.counter("forwarded"), Some(3));
}

#[test]
fn cached_forwarding_rewrites_macs() {
    let mut h = router();
    resolve_gateways(&mut h);
    let frame = from_host(Ipv4Addr::new(8, 8, 8, 8), 10);
    let out = h.process(LAN, &frame);
    assert_eq!(out.verdict, Verdict::Forward(WAN));
    assert!(out.emitted.is_empty());
    let e = EthernetFrame::new_checked(&out.frame[..]).unwrap();
    assert_eq!((e.dst_addr(), e.src_addr()), (GW, R_WAN));
    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
    assert_eq!(ip.ttl(), 9);
    assert!(ip.verify_checksum());
    assert_eq!(out.frame.len(), frame.len());
}

#[test]
fn longest_prefix_match() {
    let mut h = router();
    resolve_gateways(&mut h);
    // 10.9.8.0/24 via .254 beats 10.9.0.0/16 via .253, which beats the default (.254).
    let out = h.process(LAN, &from_host(Ipv4Addr::new(10, 9, 8, 7), 64));
    assert_eq!(out.verdict, Verdict::Forward(WAN));
    assert_eq!(&out.frame[..6], &GW.0);
    let out = h.process(LAN, &from_host(Ipv4Addr::new(10, 9, 9, 7), 64));
    assert_eq!(out.verdict, Verdict::Forward(WAN));
    assert_eq!(&out.frame[..6], &GW2.0);
    let out = h.process(LAN, &from_host(Ipv4Addr::new(10, 10, 0, 1), 64));
    assert_eq!(&out.frame[..6], &GW.0);
    // Back to the lan: the connected route; the host answers ARP.
    let out = h.process(
        WAN,
        &frames::ethernet(
            R_WAN,
            GW,
            EtherType::Ipv4,
            &ipv4(
                Ipv4Addr::new(8, 8, 8, 8),
                HOST_IP,
                64,
                IpProtocol::Udp,
                false,
                b"x",
            ),
        ),
    );
    assert_eq!(out.verdict, Verdict::Consume);
    assert_eq!(out.emitted[0].0, LAN);
}

#[test]
fn ttl_expired() {
    let mut h = router();
    resolve_gateways(&mut h);
    let frame = from_host(Ipv4Addr::new(8, 8, 8, 8), 1);
    let out = h.process(LAN, &frame);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::TtlExceeded));
    assert_eq!(out.emitted.len(), 1);
    let (port, err) = &out.emitted[0];
    assert_eq!(*port, LAN);
    let (t, code, _, quote) = parse_icmp_error(err, HOST, R_LAN, R_LAN_IP, HOST_IP);
    assert_eq!((t, code), (11, 0));
    assert_eq!(quote, &frame[14..14 + 28]); // original header + 8 bytes
    assert_eq!(h.counter("icmp_errors_sent"), Some(1));
    assert_eq!(h.counter("forwarded"), Some(0));
    // TTL 0 likewise.
    assert_eq!(
        h.process(LAN, &from_host(Ipv4Addr::new(8, 8, 8, 8), 0))
            .verdict,
        Verdict::Drop(DropReason::TtlExceeded)
    );
}

#[test]
fn no_route_is_net_unreachable() {
    let mut c = config();
    c["routes"] = json!([]);
    let mut h = Harness::<Router>::new(&["lan", "wan"], c).unwrap();
    let frame = from_host(Ipv4Addr::new(8, 8, 8, 8), 64);
    let out = h.process(LAN, &frame);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NoRoute));
    assert_eq!(out.emitted.len(), 1);
    let (t, code, _, quote) = parse_icmp_error(&out.emitted[0].1, HOST, R_LAN, R_LAN_IP, HOST_IP);
    assert_eq!((t, code), (3, 0));
    assert_eq!(quote, &frame[14..14 + 28]);
    assert_eq!(h.counter("icmp_errors_sent"), Some(1));
}

#[test]
fn too_big() {
    let mut h = router();
    resolve_gateways(&mut h);
    let payload = vec![0xabu8; 1100];
    let df = frames::ethernet(
        R_LAN,
        HOST,
        EtherType::Ipv4,
        &ipv4(
            HOST_IP,
            Ipv4Addr::new(8, 8, 8, 8),
            64,
            IpProtocol::Udp,
            true,
            &payload,
        ),
    );
    let out = h.process(LAN, &df);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::TooBig));
    assert_eq!(out.emitted.len(), 1);
    let (t, code, mtu, quote) = parse_icmp_error(&out.emitted[0].1, HOST, R_LAN, R_LAN_IP, HOST_IP);
    assert_eq!((t, code, mtu), (3, 4, 1000));
    assert_eq!(quote, &df[14..14 + 28]);
    // Without DF: dropped silently (no fragmentation in v1).
    let no_df = frames::ethernet(
        R_LAN,
        HOST,
        EtherType::Ipv4,
        &ipv4(
            HOST_IP,
            Ipv4Addr::new(8, 8, 8, 8),
            64,
            IpProtocol::Udp,
            false,
            &payload,
        ),
    );
    let out = h.process(LAN, &no_df);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::TooBig));
    assert!(out.emitted.is_empty());
    // Exactly the MTU passes.
    let fits = frames::ethernet(
        R_LAN,
        HOST,
        EtherType::Ipv4,
        &ipv4(
            HOST_IP,
            Ipv4Addr::new(8, 8, 8, 8),
            64,
            IpProtocol::Udp,
            true,
            &payload[..980],
        ),
    );
    assert_eq!(h.process(LAN, &fits).verdict, Verdict::Forward(WAN));
}

#[test]
fn no_errors_about_errors_or_fragments() {
    let mut c = config();
    c["routes"] = json!([]);
    let mut h = Harness::<Router>::new(&["lan", "wan"], c).unwrap();
    let dst = Ipv4Addr::new(8, 8, 8, 8);
    let quoted = ipv4(dst, HOST_IP, 1, IpProtocol::Udp, false, b"12345678");
    let err = frames::icmp(&Icmpv4Repr::DstUnreachable {
        reason: vnf_sdk::wire::Icmpv4DstUnreachable::PortUnreachable,
        data: &quoted[..28],
    });
    let frame = frames::ethernet(
        R_LAN,
        HOST,
        EtherType::Ipv4,
        &ipv4(HOST_IP, dst, 64, IpProtocol::Icmp, false, &err),
    );
    let out = h.process(LAN, &frame);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NoRoute));
    assert!(out.emitted.is_empty());
    // An echo request does get one.
    let echo = frames::icmp(&Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: b"",
    });
    let frame = frames::ethernet(
        R_LAN,
        HOST,
        EtherType::Ipv4,
        &ipv4(HOST_IP, dst, 64, IpProtocol::Icmp, false, &echo),
    );
    assert_eq!(h.process(LAN, &frame).emitted.len(), 1);
    // A non-first fragment does not.
    let mut frag = from_host(dst, 64);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frag[14..]);
        ip.set_frag_offset(1480);
        ip.fill_checksum();
    }
    let out = h.process(LAN, &frag);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NoRoute));
    assert!(out.emitted.is_empty());
    assert_eq!(h.counter("icmp_errors_sent"), Some(1));
}

#[test]
fn arp_failure_and_expiry() {
    let mut h = router();
    let dst = Ipv4Addr::new(10, 0, 2, 77);
    let frame = from_host(dst, 64);
    assert_eq!(h.process(LAN, &frame).verdict, Verdict::Consume);
    assert_eq!(h.counter("arp_requests_sent"), Some(1));
    // Retransmitted once a second while frames wait.
    h.advance_ns(SEC / 2);
    assert!(h.tick().is_empty());
    h.advance_ns(SEC / 2);
    let sent = h.tick();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, WAN);
    assert_eq!(h.counter("arp_requests_sent"), Some(2));
    // After 3 s the frame is given up on, with host unreachable to its source.
    h.advance_ns(2 * SEC);
    let sent = h.tick();
    let errors: Vec<_> = sent.iter().filter(|(p, _)| *p == LAN).collect();
    assert_eq!(errors.len(), 1);
    let (t, code, _, _) = parse_icmp_error(&errors[0].1, HOST, R_LAN, R_LAN_IP, HOST_IP);
    assert_eq!((t, code), (3, 1));
    assert_eq!(h.counter("arp_failed"), Some(1));
    assert_eq!(h.counter("arp_pending_frames"), Some(0));

    // Cache entries expire after arp_timeout_s; one in use is re-confirmed first.
    resolve_gateways(&mut h);
    assert_eq!(
        h.process(LAN, &from_host(Ipv4Addr::new(10, 9, 9, 9), 64))
            .verdict,
        Verdict::Forward(WAN)
    ); // via GW2
    h.advance_ns(54 * SEC);
    assert!(h.tick().is_empty());
    h.advance_ns(SEC);
    let sent = h.tick();
    assert_eq!(sent.len(), 1, "one unicast refresh, for the entry in use");
    let e = EthernetFrame::new_checked(&sent[0].1[..]).unwrap();
    assert_eq!(
        (sent[0].0, e.dst_addr(), e.ethertype()),
        (WAN, GW2, EtherType::Arp)
    );
    let a = ArpRepr::parse(&ArpPacket::new_checked(e.payload()).unwrap()).unwrap();
    assert_eq!(
        (a.operation, a.target_protocol_addr),
        (ArpOperation::Request, GW2_IP)
    );
    assert!(h.tick().is_empty(), "only once");
    h.advance_ns(4 * SEC);
    h.tick();
    assert_eq!(h.counter("arp_cache_entries"), Some(2));
    h.advance_ns(SEC);
    h.tick();
    assert_eq!(
        h.counter("arp_cache_entries"),
        Some(0),
        "no answer: both expire"
    );
    // Learned again; expiry counts from the last confirmation.
    resolve_gateways(&mut h);
    assert_eq!(h.counter("arp_cache_entries"), Some(2));
    h.advance_ns(59 * SEC);
    h.tick();
    assert_eq!(h.counter("arp_cache_entries"), Some(2));
    h.advance_ns(SEC);
    h.tick();
    assert_eq!(h.counter("arp_cache_entries"), Some(0));
    assert_eq!(
        h.process(LAN, &from_host(Ipv4Addr::new(8, 8, 8, 8), 64))
            .verdict,
        Verdict::Consume
    );
}

#[test]
fn pending_queue_is_bounded() {
    let mut h = router();
    let frame = from_host(Ipv4Addr::new(10, 0, 2, 99), 64);
    for _ in 0..neighbor::MAX_PENDING_PER_HOP {
        assert_eq!(h.process(LAN, &frame).verdict, Verdict::Consume);
    }
    let out: Output = h.process(LAN, &frame);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NoNeighbor));
    assert_eq!(h.counter("arp_queue_drops"), Some(1));
    assert_eq!(
        h.counter("arp_pending_frames"),
        Some(neighbor::MAX_PENDING_PER_HOP as u64)
    );
    assert_eq!(h.counter("arp_requests_sent"), Some(1));
}

// ---- offloads ----

mod offloads {
    use super::*;
    use vnf_sdk::wire::checksum;
    use vnf_sdk::wire::{TcpFlags, TcpPacket};
    use vnf_sdk::{FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4, FLAG_GSO_TCPV6, FLAG_GSO_UDP_L4};

    const GSO: u16 = 960;
    const GSO_FLAGS: u16 = FLAG_CSUM_PARTIAL | FLAG_GSO_TCPV4;

    /// A TCP/IPv4 frame from the LAN host to `dst` with `payload_len` bytes
    /// of payload and a partial checksum, as Linux hands it over.
    fn tcp_from_host(dst: Ipv4Addr, payload_len: usize, dont_frag: bool) -> Vec<u8> {
        let mut seg = vec![0u8; 20 + payload_len];
        {
            let mut tcp = TcpPacket::new_unchecked(&mut seg[..]);
            tcp.set_src_port(40000);
            tcp.set_dst_port(5201);
            tcp.set_seq_number(1000);
            tcp.set_ack_number(77);
            tcp.set_header_len(20);
            tcp.set_flags(TcpFlags::ACK | TcpFlags::PSH);
            tcp.set_window_len(512);
            for (i, b) in tcp.payload_mut().iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            let len = seg.len() as u32;
            TcpPacket::new_unchecked(&mut seg[..]).set_checksum(checksum::pseudo_header_v4(
                HOST_IP,
                dst,
                IpProtocol::Tcp,
                len,
            ));
        }
        frames::ethernet(
            R_LAN,
            HOST,
            EtherType::Ipv4,
            &ipv4(HOST_IP, dst, 64, IpProtocol::Tcp, dont_frag, &seg),
        )
    }

    #[test]
    fn super_frame_forwarded_by_segment_size() {
        let mut h = router();
        resolve_gateways(&mut h);
        let dst = Ipv4Addr::new(8, 8, 8, 8);
        // 30 kB through a WAN MTU of 1000: 20 + 20 + 960 = 1000 fits.
        let frame = tcp_from_host(dst, 30_000, true);
        let out = h.process_with_offload(LAN, &frame, GSO_FLAGS, u32::from(GSO));
        assert_eq!(out.verdict, Verdict::Forward(WAN));
        assert!(out.emitted.is_empty());
        assert_eq!(out.frame.len(), frame.len(), "headers and length unchanged");
        let e = EthernetFrame::new_checked(&out.frame[..]).unwrap();
        assert_eq!((e.dst_addr(), e.src_addr()), (GW, R_WAN));
        let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
        assert_eq!(ip.ttl(), 63);
        assert!(ip.verify_checksum());
        assert_eq!(usize::from(ip.total_len()), 20 + 20 + 30_000);
        // The partial L4 checksum does not cover the TTL: untouched.
        assert_eq!(&out.frame[14 + 20..], &frame[14 + 20..]);
    }

    #[test]
    fn super_frame_whose_segments_exceed_the_mtu_gets_frag_needed() {
        let mut h = router();
        resolve_gateways(&mut h);
        let frame = tcp_from_host(Ipv4Addr::new(8, 8, 8, 8), 30_000, true);
        let out = h.process_with_offload(LAN, &frame, GSO_FLAGS, 1448);
        assert_eq!(out.verdict, Verdict::Drop(DropReason::TooBig));
        assert_eq!(out.emitted.len(), 1);
        let (t, code, mtu, quote) =
            parse_icmp_error(&out.emitted[0].1, HOST, R_LAN, R_LAN_IP, HOST_IP);
        assert_eq!((t, code, mtu), (3, 4, 1000));
        assert_eq!(quote, &frame[14..14 + 28], "quotes the first bytes");
        // Without DF: dropped silently.
        let frame = tcp_from_host(Ipv4Addr::new(8, 8, 8, 8), 30_000, false);
        let out = h.process_with_offload(LAN, &frame, GSO_FLAGS, 1448);
        assert_eq!(out.verdict, Verdict::Drop(DropReason::TooBig));
        assert!(out.emitted.is_empty());
        // A super-frame that is not TCP is malformed.
        let udp = from_host(Ipv4Addr::new(8, 8, 8, 8), 64);
        let out = h.process_with_offload(LAN, &udp, GSO_FLAGS, 100);
        assert_eq!(out.verdict, Verdict::Drop(DropReason::Malformed));
    }

    #[test]
    fn udp_and_tcpv6_super_frames_are_told_apart() {
        let mut h = router();
        resolve_gateways(&mut h);
        let dst = Ipv4Addr::new(8, 8, 8, 8);
        // A UDP super-frame: 8000 bytes of datagrams of 972 (20 + 8 + 972 =
        // 1000 fits the WAN MTU), then of 973 (one byte too many).
        let payload = vec![7u8; 8000];
        let udp = frames::ethernet(
            R_LAN,
            HOST,
            EtherType::Ipv4,
            &ipv4(HOST_IP, dst, 64, IpProtocol::Udp, true, &{
                let mut u = vec![0u8; 8];
                u[4..6].copy_from_slice(&(8u16 + 8000).to_be_bytes());
                u.extend_from_slice(&payload);
                u
            }),
        );
        let udp_gso = FLAG_CSUM_PARTIAL | FLAG_GSO_UDP_L4;
        let out = h.process_with_offload(LAN, &udp, udp_gso, 972);
        assert_eq!(out.verdict, Verdict::Forward(WAN));
        let out = h.process_with_offload(LAN, &udp, udp_gso, 973);
        assert_eq!(out.verdict, Verdict::Drop(DropReason::TooBig));
        let (_, _, mtu, _) = parse_icmp_error(&out.emitted[0].1, HOST, R_LAN, R_LAN_IP, HOST_IP);
        assert_eq!(mtu, 1000);
        // A TCP frame that claims to be a TCP/IPv6 super-frame: malformed.
        let tcp = tcp_from_host(dst, 3000, true);
        let out = h.process_with_offload(LAN, &tcp, FLAG_CSUM_PARTIAL | FLAG_GSO_TCPV6, 960);
        assert_eq!(out.verdict, Verdict::Drop(DropReason::Malformed));
    }

    #[test]
    fn offloaded_frames_waiting_for_arp_leave_as_ordinary_frames() {
        let mut h = router();
        let dst = Ipv4Addr::new(8, 8, 8, 8);
        let sup = tcp_from_host(dst, 30_000, true);
        let out = h.process_with_offload(LAN, &sup, GSO_FLAGS, u32::from(GSO));
        assert_eq!(out.verdict, Verdict::Consume);
        assert_eq!(out.emitted.len(), 1, "ARP request");
        let small = tcp_from_host(dst, 100, true);
        let out = h.process_with_offload(LAN, &small, FLAG_CSUM_PARTIAL, 0);
        assert_eq!(out.verdict, Verdict::Consume);

        let out = h.process(WAN, &arp_reply_from_gw(GW, GW_IP));
        assert_eq!(out.verdict, Verdict::Consume);
        assert_eq!(out.emitted.len(), 2);
        for ((port, bytes), payload) in out.emitted.iter().zip([usize::from(GSO), 100]) {
            assert_eq!(*port, WAN);
            let e = EthernetFrame::new_checked(&bytes[..]).unwrap();
            let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.ttl(), 63);
            assert_eq!(usize::from(ip.total_len()), 40 + payload);
            assert!(bytes.len() <= 14 + 1000);
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(tcp.verify_checksum(HOST_IP, dst), "complete checksum");
            assert_eq!(tcp.seq_number(), 1000);
            assert_eq!(tcp.payload(), &sup[14 + 40..14 + 40 + payload]);
        }
        // The cut super-frame is not the last segment: no PSH.
        let first = &out.emitted[0].1;
        let tcp = TcpPacket::new_unchecked(&first[34..]);
        assert_eq!(tcp.flags(), TcpFlags::ACK);
    }
}

// ---- replace (state handover) ----

#[test]
fn a_replacement_keeps_the_arp_cache_and_the_frames_waiting_for_it() {
    let mut h = router();
    resolve_gateways(&mut h);
    // A frame for a LAN host nobody has resolved yet waits for ARP.
    let to_lan = frames::ethernet(
        R_WAN,
        GW,
        EtherType::Ipv4,
        &ipv4(
            Ipv4Addr::new(8, 8, 8, 8),
            Ipv4Addr::new(10, 0, 1, 77),
            64,
            IpProtocol::Udp,
            false,
            b"waiting for arp",
        ),
    );
    let queued = h.process(WAN, &to_lan);
    assert_eq!(queued.verdict, Verdict::Consume, "held for ARP");
    assert_eq!(queued.emitted.len(), 1, "an ARP request");
    h.advance_ns(SEC);

    let mut h = h.replace::<Router>(&["lan", "wan"], config()).unwrap();
    assert_eq!(h.counter("arp_cache_entries"), Some(2));
    assert_eq!(h.counter("arp_pending_frames"), Some(1));
    // The cache came along: forwarded at once, no ARP request.
    let out = h.process(LAN, &from_host(Ipv4Addr::new(8, 8, 8, 8), 10));
    assert_eq!(out.verdict, Verdict::Forward(WAN));
    assert!(out.emitted.is_empty());
    // The held frame is released by the reply to the old instance's request.
    let host77 = EthernetAddress([0x52, 0x54, 0, 0, 1, 0x77]);
    let reply = frames::ethernet(
        R_LAN,
        host77,
        EtherType::Arp,
        &frames::arp(
            ArpOperation::Reply,
            host77,
            Ipv4Addr::new(10, 0, 1, 77),
            R_LAN,
            R_LAN_IP,
        ),
    );
    let released = h.process(LAN, &reply);
    assert_eq!(released.emitted.len(), 1, "{:?}", released.emitted);
    let (port, frame) = &released.emitted[0];
    assert_eq!(*port, LAN);
    let e = EthernetFrame::new_checked(&frame[..]).unwrap();
    assert_eq!(e.dst_addr(), host77);
    assert!(frame.ends_with(b"waiting for arp"));
}
