//! Native tests through the SDK harness.

use serde_json::json;
use vnf_sdk::testing::{frames, Harness};
use vnf_sdk::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, Icmpv4DstUnreachable, Icmpv4Repr,
    Icmpv4TimeExceeded, Ipv4Repr, TcpFlags, TcpPacket, UdpPacket,
};

use super::*;

const IN: u16 = 0;
const OUT: u16 = 1;
const N_IN: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 1, 1]);
const N_OUT: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 2, 1]);
const LAN_GW: EthernetAddress = EthernetAddress([0x52, 0, 0, 0, 1, 0xfe]);
const WAN_GW: EthernetAddress = EthernetAddress([0x52, 0, 0, 0, 2, 0xfe]);
const LAN_GW_IP: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
const N_IN_IP: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 2);
const PUB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const WAN_GW_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
const H1: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const H2: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 11);
const SRV: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const SEC: u64 = 1_000_000_000;

fn config() -> serde_json::Value {
    json!({
        "inside": { "port": "inside", "address": "10.255.0.2/30", "mac": "02:00:00:00:01:01" },
        "outside": { "port": "outside", "address": "203.0.113.1/24", "mac": "02:00:00:00:02:01" },
        "routes": [
            { "to": "192.168.1.0/24", "via": "10.255.0.1" },
            { "to": "0.0.0.0/0", "via": "203.0.113.254" },
        ],
        "port_forwards": [ { "proto": "tcp", "port": 8080, "to": "192.168.1.50:80" } ],
        "port_range": "20000-59999",
        "timeouts": { "tcp": 7200, "tcp_closing": 60, "udp": 60, "icmp": 30 },
        "max_bindings": 4096,
    })
}

fn nat_with(c: serde_json::Value) -> Harness<Nat> {
    let mut h = Harness::<Nat>::new(&["inside", "outside"], c).expect("valid config");
    for (port, mac, ip, ours, our_mac) in [
        (IN, LAN_GW, LAN_GW_IP, N_IN_IP, N_IN),
        (OUT, WAN_GW, WAN_GW_IP, PUB, N_OUT),
    ] {
        let reply = arp(ArpOperation::Reply, mac, ip, our_mac, ours);
        assert_eq!(h.process(port, &reply).verdict, Verdict::Consume);
    }
    h
}

fn nat() -> Harness<Nat> {
    nat_with(config())
}

fn config_error(c: serde_json::Value) -> ConfigError {
    match Harness::<Nat>::new(&["inside", "outside"], c) {
        Ok(_) => panic!("config accepted"),
        Err(e) => e,
    }
}

/// An ARP message from `sha`/`spa` about `tpa`, sent to `dst`.
fn arp(
    op: ArpOperation,
    sha: EthernetAddress,
    spa: Ipv4Addr,
    dst: EthernetAddress,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    frames::arp_frame(dst, op, sha, spa, EthernetAddress([0; 6]), tpa)
}

/// An IPv4 frame as the tests send it (identification 0x77).
fn frame(
    dst_mac: EthernetAddress,
    src_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    proto: IpProtocol,
    l4: &[u8],
) -> Vec<u8> {
    let header = Ipv4Repr {
        ttl,
        ident: 0x77,
        ..frames::ipv4_header(src, dst, proto)
    };
    frames::ethernet(
        dst_mac,
        src_mac,
        EtherType::Ipv4,
        &frames::ipv4_with(header, l4),
    )
}

fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    frames::udp(src, dst, sport, dport, b"nat test payload")
}

fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let header = frames::TcpHeader {
        src_port: sport,
        dst_port: dport,
        seq: 1234,
        ack: 0,
        flags: TcpFlags(u16::from(flags)),
        window: 1000,
    };
    frames::tcp(src, dst, header, b"hello")
}

fn echo(ident: u16, reply: bool) -> Vec<u8> {
    frames::echo(!reply, ident, 3, b"ping")
}

fn from_lan(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
    frame(N_IN, LAN_GW, src, dst, 64, proto, l4)
}

fn from_wan(src: Ipv4Addr, proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
    frame(N_OUT, WAN_GW, src, PUB, 64, proto, l4)
}

/// Checks the frame went out with valid checksums; returns (src, dst,
/// sport/ident, dport/ident).
fn check(out: &[u8], port_mac: EthernetAddress) -> (Ipv4Addr, Ipv4Addr, u16, u16) {
    let e = EthernetFrame::new_checked(out).unwrap();
    assert_eq!(e.dst_addr(), port_mac);
    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    assert_eq!(ip.ttl(), 63);
    let (s, d) = (ip.src_addr(), ip.dst_addr());
    match ip.protocol() {
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(u.checksum() != 0 && u.verify_checksum(s, d), "UDP checksum");
            (s, d, u.src_port(), u.dst_port())
        }
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(t.verify_checksum(s, d), "TCP checksum");
            (s, d, t.src_port(), t.dst_port())
        }
        IpProtocol::Icmp => {
            let i = Icmpv4Packet::new_checked(ip.payload()).unwrap();
            assert!(i.verify_checksum(), "ICMP checksum");
            (s, d, i.echo_ident(), i.echo_ident())
        }
        p => panic!("{p}"),
    }
}

// ---- configuration ----

#[test]
fn config_errors_have_paths() {
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("inside.port", json!("lan"), "inside.port"),
        ("inside.address", json!("10.255.0.2"), "inside.address"),
        ("port_range", json!("60000-100"), "port_range"),
        ("max_bindings", json!(0), "max_bindings"),
    ];
    for (key, value, path) in cases {
        let mut c = config();
        let (a, b) = key.split_once('.').unwrap_or((key, ""));
        if b.is_empty() {
            c[a] = value;
        } else {
            c[a][b] = value;
        }
        assert_eq!(config_error(c).path, path, "{key}");
    }
    let mut c = config();
    c["routes"][1]["via"] = json!("8.8.8.8");
    assert_eq!(config_error(c).path, "routes.1.via");
    let mut c = config();
    c["routes"][0]["to"] = json!("192.168.1.1/24");
    assert_eq!(config_error(c).path, "routes.0.to");
    let mut c = config();
    c["port_forwards"][0]["proto"] = json!("sctp");
    assert_eq!(config_error(c).path, "port_forwards.0.proto");
    let mut c = config();
    c["port_forwards"][0]["to"] = json!("172.16.0.1:80");
    let e = config_error(c);
    assert_eq!(e.path, "port_forwards.0.to");
    assert!(e.message.contains("not routed to the inside"), "{e}");
    let mut c = config();
    c["port_forwards"][0]["port"] = json!(30000);
    assert_eq!(config_error(c).path, "port_forwards.0.port");
    let mut c = config();
    c["timeouts"]["udp"] = json!(0);
    assert_eq!(config_error(c).path, "timeouts.udp");
    let mut c = config();
    c["timeouts"]["sctp"] = json!(5);
    let e = config_error(c);
    assert!(e.message.contains("unknown field `sctp`"), "{e}");
    assert!(e.path.starts_with("timeouts"), "{e}");
    let mut c = config();
    c["colour"] = json!("blue");
    assert!(config_error(c).message.contains("unknown field `colour`"));
    // Minimal config: defaults.
    let h = Harness::<Nat>::new(
        &["inside", "outside"],
        json!({ "inside": { "port": "inside", "address": "10.255.0.2/30" },
                "outside": { "port": "outside", "address": "203.0.113.1/24" } }),
    );
    assert!(h.is_ok());
}

// ---- ARP and local ----

#[test]
fn arp_for_our_addresses() {
    let mut h = nat();
    let q = arp(
        ArpOperation::Request,
        WAN_GW,
        WAN_GW_IP,
        EthernetAddress::BROADCAST,
        PUB,
    );
    let out = h.process(OUT, &q);
    assert_eq!(out.verdict, Verdict::Consume);
    let (port, reply) = &out.emitted[0];
    assert_eq!(*port, OUT);
    let e = EthernetFrame::new_checked(&reply[..]).unwrap();
    let a = ArpRepr::parse(&ArpPacket::new_checked(e.payload()).unwrap()).unwrap();
    assert_eq!(a.operation, ArpOperation::Reply);
    assert_eq!(
        (a.source_hardware_addr, a.source_protocol_addr),
        (N_OUT, PUB)
    );
    // Not the inside address on the outside port.
    let q = arp(
        ArpOperation::Request,
        WAN_GW,
        WAN_GW_IP,
        EthernetAddress::BROADCAST,
        N_IN_IP,
    );
    assert!(h.process(OUT, &q).emitted.is_empty());
    assert_eq!(h.counter("arp_replies_sent"), Some(1));
}

#[test]
fn ping_to_own_addresses() {
    let mut h = nat();
    let out = h.process(OUT, &from_wan(SRV, IpProtocol::Icmp, &echo(9, false)));
    assert_eq!(out.verdict, Verdict::Consume);
    assert_eq!(out.emitted.len(), 1);
    assert_eq!(h.counter("icmp_echo_replies"), Some(1));
    let out = h.process(
        IN,
        &from_lan(H1, N_IN_IP, IpProtocol::Icmp, &echo(9, false)),
    );
    assert_eq!(out.verdict, Verdict::Consume);
    assert_eq!(out.emitted[0].0, IN);
}

// ---- masquerade ----

#[test]
fn udp_masquerade_and_reply() {
    let mut h = nat();
    let out = h.process(
        IN,
        &from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 40000, 53)),
    );
    assert_eq!(out.verdict, Verdict::Forward(OUT));
    assert_eq!(
        check(&out.frame, WAN_GW),
        (PUB, SRV, 40000, 53),
        "port kept"
    );
    assert_eq!(h.counter("translated_out"), Some(1));
    assert_eq!(h.counter("bindings_active"), Some(1));
    let out = h.process(
        OUT,
        &from_wan(SRV, IpProtocol::Udp, &udp(SRV, PUB, 53, 40000)),
    );
    assert_eq!(out.verdict, Verdict::Forward(IN));
    assert_eq!(check(&out.frame, LAN_GW), (SRV, H1, 53, 40000));
    assert_eq!(h.counter("translated_in"), Some(1));
    // A second host with the same source port gets another one.
    let out = h.process(
        IN,
        &from_lan(H2, SRV, IpProtocol::Udp, &udp(H2, SRV, 40000, 53)),
    );
    let (_, _, port, _) = check(&out.frame, WAN_GW);
    assert_ne!(port, 40000);
    assert!((20000..=59999).contains(&port));
    let out = h.process(
        OUT,
        &from_wan(SRV, IpProtocol::Udp, &udp(SRV, PUB, 53, port)),
    );
    assert_eq!(check(&out.frame, LAN_GW), (SRV, H2, 53, 40000));
    // A port outside the range is not kept.
    let out = h.process(
        IN,
        &from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 1000, 53)),
    );
    let (_, _, port, _) = check(&out.frame, WAN_GW);
    assert!((20000..=59999).contains(&port));
    // Unsolicited inbound is dropped.
    let out = h.process(
        OUT,
        &from_wan(SRV, IpProtocol::Udp, &udp(SRV, PUB, 53, 41000)),
    );
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NotForUs));
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let mut h = nat();
    let mut l4 = udp(H1, SRV, 40000, 53);
    l4[6..8].copy_from_slice(&[0, 0]);
    let out = h.process(IN, &from_lan(H1, SRV, IpProtocol::Udp, &l4));
    assert_eq!(out.verdict, Verdict::Forward(OUT));
    assert_eq!(&out.frame[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    assert!(Ipv4Packet::new_checked(&out.frame[14..])
        .unwrap()
        .verify_checksum());
}

#[test]
fn tcp_masquerade_and_close() {
    let mut h = nat();
    let syn = tcp(H1, SRV, 45000, 443, 0x02);
    let out = h.process(IN, &from_lan(H1, SRV, IpProtocol::Tcp, &syn));
    assert_eq!(check(&out.frame, WAN_GW), (PUB, SRV, 45000, 443));
    let synack = tcp(SRV, PUB, 443, 45000, 0x12);
    let out = h.process(OUT, &from_wan(SRV, IpProtocol::Tcp, &synack));
    assert_eq!(check(&out.frame, LAN_GW), (SRV, H1, 443, 45000));
    // Long timeout while open.
    h.advance_ns(3600 * SEC);
    h.tick();
    assert_eq!(h.counter("bindings_active"), Some(1));
    // FIN both ways: the closing timeout (60 s).
    let fin = tcp(H1, SRV, 45000, 443, 0x11);
    h.process(IN, &from_lan(H1, SRV, IpProtocol::Tcp, &fin));
    let fin = tcp(SRV, PUB, 443, 45000, 0x11);
    h.process(OUT, &from_wan(SRV, IpProtocol::Tcp, &fin));
    h.advance_ns(59 * SEC);
    h.tick();
    assert_eq!(h.counter("bindings_active"), Some(1));
    h.advance_ns(SEC);
    h.tick();
    assert_eq!(h.counter("bindings_active"), Some(0));
    assert_eq!(h.counter("bindings_expired"), Some(1));
}

#[test]
fn icmp_echo_masquerade() {
    let mut h = nat();
    let out = h.process(
        IN,
        &from_lan(H1, SRV, IpProtocol::Icmp, &echo(40001, false)),
    );
    assert_eq!(out.verdict, Verdict::Forward(OUT));
    assert_eq!(check(&out.frame, WAN_GW), (PUB, SRV, 40001, 40001));
    // Same identifier from another host: a new one, checksum fixed.
    let out = h.process(
        IN,
        &from_lan(H2, SRV, IpProtocol::Icmp, &echo(40001, false)),
    );
    let (_, _, ident, _) = check(&out.frame, WAN_GW);
    assert_ne!(ident, 40001);
    let out = h.process(OUT, &from_wan(SRV, IpProtocol::Icmp, &echo(ident, true)));
    assert_eq!(out.verdict, Verdict::Forward(IN));
    assert_eq!(check(&out.frame, LAN_GW), (SRV, H2, 40001, 40001));
    // ICMP bindings live 30 s.
    h.advance_ns(30 * SEC);
    h.tick();
    assert_eq!(h.counter("bindings_active"), Some(0));
    let out = h.process(OUT, &from_wan(SRV, IpProtocol::Icmp, &echo(ident, true)));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NotForUs));
}

#[test]
fn udp_binding_expires() {
    let mut h = nat();
    h.process(
        IN,
        &from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 40000, 53)),
    );
    h.advance_ns(59 * SEC);
    h.tick();
    // Traffic refreshes it.
    let out = h.process(
        OUT,
        &from_wan(SRV, IpProtocol::Udp, &udp(SRV, PUB, 53, 40000)),
    );
    assert_eq!(out.verdict, Verdict::Forward(IN));
    h.advance_ns(59 * SEC);
    h.tick();
    assert_eq!(h.counter("bindings_active"), Some(1));
    h.advance_ns(SEC);
    h.tick();
    assert_eq!(h.counter("bindings_active"), Some(0));
    let out = h.process(
        OUT,
        &from_wan(SRV, IpProtocol::Udp, &udp(SRV, PUB, 53, 40000)),
    );
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NotForUs));
}

#[test]
fn table_full_refuses_new_flows_only() {
    let mut c = config();
    c["max_bindings"] = json!(2);
    let mut h = nat_with(c);
    for port in [40000, 40001] {
        let out = h.process(
            IN,
            &from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, port, 53)),
        );
        assert_eq!(out.verdict, Verdict::Forward(OUT));
    }
    let out = h.process(
        IN,
        &from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 40002, 53)),
    );
    assert_eq!(out.verdict, Verdict::Drop(DropReason::TableFull));
    assert_eq!(h.counter("bindings_refused"), Some(1));
    let syn = tcp(SRV, PUB, 5555, 8080, 0x02);
    let out = h.process(OUT, &from_wan(SRV, IpProtocol::Tcp, &syn));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::TableFull));
    assert_eq!(h.counter("bindings_refused"), Some(2));
    // Existing flows still work both ways.
    let out = h.process(
        IN,
        &from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 40001, 53)),
    );
    assert_eq!(out.verdict, Verdict::Forward(OUT));
    let out = h.process(
        OUT,
        &from_wan(SRV, IpProtocol::Udp, &udp(SRV, PUB, 53, 40000)),
    );
    assert_eq!(out.verdict, Verdict::Forward(IN));
}

// ---- port forwards ----

#[test]
fn dnat_forward_and_reply() {
    let mut h = nat();
    let target = Ipv4Addr::new(192, 168, 1, 50);
    let syn = tcp(SRV, PUB, 5555, 8080, 0x02);
    let out = h.process(OUT, &from_wan(SRV, IpProtocol::Tcp, &syn));
    assert_eq!(out.verdict, Verdict::Forward(IN));
    assert_eq!(check(&out.frame, LAN_GW), (SRV, target, 5555, 80));
    assert_eq!(h.counter("dnat_hits"), Some(1));
    let synack = tcp(target, SRV, 80, 5555, 0x12);
    let out = h.process(IN, &from_lan(target, SRV, IpProtocol::Tcp, &synack));
    assert_eq!(out.verdict, Verdict::Forward(OUT));
    assert_eq!(check(&out.frame, WAN_GW), (PUB, SRV, 8080, 5555));
    // The next packet of the flow hits the binding, not a new forward.
    let out = h.process(
        OUT,
        &from_wan(SRV, IpProtocol::Tcp, &tcp(SRV, PUB, 5555, 8080, 0x10)),
    );
    assert_eq!(out.verdict, Verdict::Forward(IN));
    assert_eq!(h.counter("dnat_hits"), Some(1));
    // UDP to the forwarded TCP port is not forwarded.
    let out = h.process(
        OUT,
        &from_wan(SRV, IpProtocol::Udp, &udp(SRV, PUB, 5555, 8080)),
    );
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NotForUs));
}

// ---- ICMP errors ----

#[test]
fn time_exceeded_about_translated_udp_reaches_the_host() {
    let mut h = nat();
    let original = from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 40000, 53));
    let out = h.process(IN, &original);
    let sent = out.frame;
    // A WAN router answers with time exceeded quoting what it got.
    let router = Ipv4Addr::new(198, 51, 100, 1);
    let quote = vnf_sdk::wire::error_quote(&sent[14..]);
    let err = Icmpv4Repr::TimeExceeded {
        reason: Icmpv4TimeExceeded::TtlExpired,
        data: quote,
    };
    let mut icmp = vec![0u8; err.buffer_len()];
    err.emit(&mut Icmpv4Packet::new_unchecked(&mut icmp[..]));
    let out = h.process(OUT, &from_wan(router, IpProtocol::Icmp, &icmp));
    assert_eq!(out.verdict, Verdict::Forward(IN));
    assert_eq!(h.counter("icmp_errors_translated"), Some(1));
    let e = EthernetFrame::new_checked(&out.frame[..]).unwrap();
    assert_eq!(e.dst_addr(), LAN_GW);
    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (router, H1));
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(), "outer ICMP checksum");
    let inner = Ipv4Packet::new_unchecked(icmp.payload());
    assert!(inner.verify_checksum(), "inner IPv4 checksum");
    assert_eq!((inner.src_addr(), inner.dst_addr()), (H1, SRV));
    // The quoted UDP header is the host's own again, checksum included.
    let orig_udp = &original[14 + 20..14 + 28];
    assert_eq!(&icmp.payload()[20..28], orig_udp);
    // An error about a flow we do not know is dropped.
    let mut other = sent.clone();
    other[14 + 20..14 + 22].copy_from_slice(&33333u16.to_be_bytes());
    let err = Icmpv4Repr::DstUnreachable {
        reason: Icmpv4DstUnreachable::PortUnreachable,
        data: vnf_sdk::wire::error_quote(&other[14..]),
    };
    let mut icmp = vec![0u8; err.buffer_len()];
    err.emit(&mut Icmpv4Packet::new_unchecked(&mut icmp[..]));
    let out = h.process(OUT, &from_wan(SRV, IpProtocol::Icmp, &icmp));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Policy));
}

// ---- routing ----

#[test]
fn ttl_and_no_route() {
    let mut h = nat();
    let f = frame(
        N_IN,
        LAN_GW,
        H1,
        SRV,
        1,
        IpProtocol::Udp,
        &udp(H1, SRV, 40000, 53),
    );
    let out = h.process(IN, &f);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::TtlExceeded));
    let (port, err) = &out.emitted[0];
    assert_eq!(*port, IN);
    let ip = Ipv4Packet::new_checked(&err[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (N_IN_IP, H1));
    assert_eq!(ip.payload()[0], 11);
    assert_eq!(h.counter("bindings_active"), Some(0), "no binding for it");
    // Without a default route: net unreachable.
    let mut c = config();
    c["routes"] = json!([{ "to": "192.168.1.0/24", "via": "10.255.0.1" }]);
    let mut h = nat_with(c);
    let out = h.process(
        IN,
        &from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 40000, 53)),
    );
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NoRoute));
    let ip = Ipv4Packet::new_checked(&out.emitted[0].1[14..]).unwrap();
    assert_eq!(&ip.payload()[..2], &[3, 0]);
    // Malformed.
    let mut bad = from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 40000, 53));
    bad[14 + 10] ^= 0xff;
    assert_eq!(
        h.process(IN, &bad).verdict,
        Verdict::Drop(DropReason::Malformed)
    );
}

#[test]
fn egress_mtu_is_the_links_and_df_packets_above_it_get_frag_needed() {
    let mut c = config();
    c["outside"]["mtu"] = json!(1500);
    let e = Harness::<Nat>::with_link_mtus(&[("inside", 1500), ("outside", 1400)], c)
        .err()
        .expect("an MTU above the link's is refused");
    assert_eq!(e.path, "outside.mtu");
    let mut h = Harness::<Nat>::with_link_mtus(&[("inside", 1500), ("outside", 1400)], config())
        .expect("valid config");
    for (port, mac, ip, ours, our_mac) in [
        (IN, LAN_GW, LAN_GW_IP, N_IN_IP, N_IN),
        (OUT, WAN_GW, WAN_GW_IP, PUB, N_OUT),
    ] {
        let reply = arp(ArpOperation::Reply, mac, ip, our_mac, ours);
        assert_eq!(h.process(port, &reply).verdict, Verdict::Consume);
    }
    let big = |len: usize, df: bool| {
        let mut l4 = udp(H1, SRV, 40000, 53);
        l4.resize(len - 20, 0);
        l4[4..6].copy_from_slice(&((len - 20) as u16).to_be_bytes());
        l4[6..8].fill(0);
        let mut f = from_lan(H1, SRV, IpProtocol::Udp, &l4);
        if df {
            f[14 + 6] |= 0x40;
            Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
        }
        f
    };
    assert_eq!(
        h.process(IN, &big(1400, true)).verdict,
        Verdict::Forward(OUT)
    );
    let out = h.process(IN, &big(1401, true));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::TooBig));
    let (port, err) = &out.emitted[0];
    assert_eq!(*port, IN);
    let ip = Ipv4Packet::new_checked(&err[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (N_IN_IP, H1));
    let icmp = ip.payload();
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1400, "next-hop MTU");
    // Without DF: dropped, no error (the NAT does not fragment).
    let out = h.process(IN, &big(1401, false));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::TooBig));
    assert!(out.emitted.is_empty());
}

#[test]
fn resolves_next_hop_before_forwarding() {
    let mut h = Harness::<Nat>::new(&["inside", "outside"], config()).unwrap();
    let out = h.process(
        IN,
        &from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 40000, 53)),
    );
    assert_eq!(out.verdict, Verdict::Consume);
    assert_eq!(out.emitted.len(), 1, "ARP request for the WAN gateway");
    let reply = arp(ArpOperation::Reply, WAN_GW, WAN_GW_IP, N_OUT, PUB);
    let out = h.process(OUT, &reply);
    assert_eq!(out.emitted.len(), 1);
    assert_eq!(out.emitted[0].0, OUT);
    assert_eq!(check(&out.emitted[0].1, WAN_GW), (PUB, SRV, 40000, 53));
}

// ---- checksum offload ----

mod offloads {
    use super::*;
    use vnf_sdk::wire::checksum;
    use vnf_sdk::{FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4};

    /// Turns a frame built with a complete L4 checksum into what Linux hands
    /// over for CHECKSUM_PARTIAL: the field holds the pseudo-header sum.
    fn make_partial(mut f: Vec<u8>) -> Vec<u8> {
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        let (s, d, proto, ihl) = (ip.src_addr(), ip.dst_addr(), ip.protocol(), ip.header_len());
        let l4_len = usize::from(ip.total_len()) - ihl;
        let at = 14 + ihl + if proto == IpProtocol::Tcp { 16 } else { 6 };
        let p = checksum::pseudo_header_v4(s, d, proto, l4_len as u32);
        f[at..at + 2].copy_from_slice(&p.to_be_bytes());
        f
    }

    /// Completes the partial checksum of a frame as the transmitter would.
    fn complete(mut f: Vec<u8>) -> Vec<u8> {
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        let (proto, ihl, total) = (ip.protocol(), ip.header_len(), usize::from(ip.total_len()));
        let l4 = &mut f[14 + ihl..14 + total];
        match proto {
            IpProtocol::Tcp => TcpPacket::new_unchecked(l4).complete_partial_checksum(),
            IpProtocol::Udp => UdpPacket::new_unchecked(l4).complete_partial_checksum(),
            _ => unreachable!(),
        }
        f
    }

    fn run(h: &mut Harness<Nat>, port: u16, f: &[u8], partial: bool) -> Vec<u8> {
        let out = if partial {
            h.process_with_offload(port, &make_partial(f.to_vec()), FLAG_CSUM_PARTIAL, 0)
        } else {
            h.process(port, f)
        };
        assert_eq!(
            out.verdict,
            Verdict::Forward(1 - port),
            "partial: {partial}"
        );
        assert_eq!(out.frame.len(), f.len());
        if partial {
            complete(out.frame)
        } else {
            out.frame
        }
    }

    #[test]
    fn translation_keeps_complete_and_partial_checksums_right() {
        for partial in [false, true] {
            let mut h = nat();
            // TCP out and back (SNAT), then a port forward (DNAT).
            // Source ports outside the port range are changed.
            let syn = from_lan(H1, SRV, IpProtocol::Tcp, &tcp(H1, SRV, 1234, 443, 0x02));
            let out = run(&mut h, IN, &syn, partial);
            let (s, d, sport, dport) = check(&out, WAN_GW);
            assert_eq!((s, d, dport), (PUB, SRV, 443));
            assert_ne!(sport, 1234);
            let back = from_wan(SRV, IpProtocol::Tcp, &tcp(SRV, PUB, 443, sport, 0x12));
            let out = run(&mut h, OUT, &back, partial);
            assert_eq!(check(&out, LAN_GW), (SRV, H1, 443, 1234));
            let fwd = from_wan(SRV, IpProtocol::Tcp, &tcp(SRV, PUB, 5555, 8080, 0x02));
            let out = run(&mut h, OUT, &fwd, partial);
            let inside = Ipv4Addr::new(192, 168, 1, 50);
            assert_eq!(check(&out, LAN_GW), (SRV, inside, 5555, 80));
            // UDP out and back.
            let q = from_lan(H2, SRV, IpProtocol::Udp, &udp(H2, SRV, 5353, 53));
            let out = run(&mut h, IN, &q, partial);
            let (s, _, sport, _) = check(&out, WAN_GW);
            assert_eq!(s, PUB);
            assert_ne!(sport, 5353);
            let a = from_wan(SRV, IpProtocol::Udp, &udp(SRV, PUB, 53, sport));
            let out = run(&mut h, OUT, &a, partial);
            assert_eq!(check(&out, LAN_GW), (SRV, H2, 53, 5353));
        }
    }

    #[test]
    fn super_frames_are_translated_in_place() {
        let mut h = nat();
        let mut seg = vec![0u8; 20 + 30_000];
        seg[0..2].copy_from_slice(&40000u16.to_be_bytes());
        seg[2..4].copy_from_slice(&5201u16.to_be_bytes());
        seg[12] = 5 << 4;
        seg[13] = 0x10;
        for (i, b) in seg[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        TcpPacket::new_unchecked(&mut seg[..]).fill_checksum(H1, SRV);
        let f = make_partial(from_lan(H1, SRV, IpProtocol::Tcp, &seg));
        let out = h.process_with_offload(IN, &f, FLAG_CSUM_PARTIAL | FLAG_GSO_TCPV4, 1448);
        assert_eq!(out.verdict, Verdict::Forward(OUT));
        assert_eq!(out.frame.len(), f.len());
        assert_eq!(&out.frame[14 + 40..], &f[14 + 40..], "payload untouched");
        let (s, d, _, dport) = check(&complete(out.frame), WAN_GW);
        assert_eq!((s, d, dport), (PUB, SRV, 5201));
    }
}

// ---- replace (state handover) ----

const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;

#[test]
fn a_replacement_keeps_bindings_ports_and_the_arp_cache() {
    let mut h = nat();
    let out = h.process(
        IN,
        &from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 5000, 53)),
    );
    assert_eq!(out.verdict, Verdict::Forward(OUT));
    let (_, _, udp_port, _) = check(&out.frame, WAN_GW);
    let tcp_out = h.process(
        IN,
        &from_lan(H2, SRV, IpProtocol::Tcp, &tcp(H2, SRV, 40000, 80, SYN)),
    );
    let (_, _, tcp_port, _) = check(&tcp_out.frame, WAN_GW);
    h.advance_ns(10 * SEC);

    let mut h = h.replace::<Nat>(&["inside", "outside"], config()).unwrap();
    assert_eq!(h.counter("bindings_active"), Some(2));
    assert_eq!(h.counter("arp_cache_entries"), Some(2));
    let reply = from_wan(SRV, IpProtocol::Udp, &udp(SRV, PUB, 53, udp_port));
    let back = h.process(OUT, &reply);
    assert_eq!(back.verdict, Verdict::Forward(IN));
    assert_eq!(check(&back.frame, LAN_GW), (SRV, H1, 53, 5000));
    let tcp_back = h.process(
        OUT,
        &from_wan(SRV, IpProtocol::Tcp, &tcp(SRV, PUB, 80, tcp_port, SYN_ACK)),
    );
    assert_eq!(check(&tcp_back.frame, LAN_GW), (SRV, H2, 80, 40000));
    // The ARP cache came along: the next outbound frame leaves at once (no
    // ARP request), through the same binding; a new flow gets another port.
    let again = h.process(
        IN,
        &from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 5000, 53)),
    );
    assert_eq!(again.verdict, Verdict::Forward(OUT));
    assert!(again.emitted.is_empty());
    assert_eq!(check(&again.frame, WAN_GW).2, udp_port);
    let other = h.process(
        IN,
        &from_lan(H2, SRV, IpProtocol::Udp, &udp(H2, SRV, 5000, 53)),
    );
    assert_ne!(check(&other.frame, WAN_GW).2, udp_port);
    // The bindings still expire on the old clock: UDP 60 s after its last
    // frame.
    h.advance_ns(61 * SEC);
    h.tick();
    assert_eq!(
        h.counter("bindings_active"),
        Some(1),
        "only the TCP binding is left"
    );
    drop(h);

    // Without the state the same reply has no binding.
    let mut fresh = nat();
    assert!(matches!(
        fresh.process(OUT, &reply).verdict,
        Verdict::Drop(_)
    ));
}

#[test]
fn a_replacement_refuses_state_it_does_not_understand() {
    let mut h = nat();
    h.process(
        IN,
        &from_lan(H1, SRV, IpProtocol::Udp, &udp(H1, SRV, 5000, 53)),
    );
    let saved = h.vnf().save_state().unwrap();
    let e = h
        .vnf()
        .load_state(Nat::STATE_VERSION + 1, &saved)
        .unwrap_err();
    assert!(e.message.contains("format version 2"), "{e}");
    let e = h
        .vnf()
        .load_state(Nat::STATE_VERSION, b"[1,2]")
        .unwrap_err();
    assert!(e.message.starts_with("unreadable saved state"), "{e}");
}
