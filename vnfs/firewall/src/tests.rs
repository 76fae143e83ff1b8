//! Native tests through the SDK harness.

use std::net::Ipv4Addr;

use serde_json::json;
use vnf_sdk::testing::{frames, Harness};
use vnf_sdk::wire::{
    ArpOperation, EtherType, EthernetAddress, EthernetFrame, Icmpv4DstUnreachable, Icmpv4Packet,
    Icmpv4Repr, Icmpv4TimeExceeded, IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpPacket,
};

use super::*;

const IN: u16 = 0;
const OUT: u16 = 1;
const LAN_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 1, 0x10]);
const WAN_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 2, 0x01]);
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const WEB: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 50);
const REMOTE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const SEC: u64 = 1_000_000_000;

fn config() -> serde_json::Value {
    json!({
        "default_policy": "drop",
        "rules": [
            { "name": "block-smtp", "in": "inside", "proto": "tcp", "dst_port": 25, "action": "reject" },
            { "name": "block-dns-udp", "in": "inside", "proto": "udp", "dst_port": "53-53", "action": "reject" },
            { "name": "lan-out", "in": "inside", "action": "accept" },
            { "name": "web-in", "in": "outside", "proto": "tcp", "dst": "192.168.1.50/32", "dst_port": 80, "action": "accept" },
            { "name": "ping-in", "in": "outside", "proto": "icmp", "action": "accept" },
        ],
        "timeouts": { "tcp_established": 7200, "tcp_transitory": 120, "udp": 60, "icmp": 30 },
        "max_connections": 1000,
    })
}

fn fw_with(config: serde_json::Value) -> Harness<Firewall> {
    Harness::new(&["inside", "outside"], config).expect("valid config")
}

fn fw() -> Harness<Firewall> {
    fw_with(config())
}

fn config_error(config: serde_json::Value) -> ConfigError {
    match Harness::<Firewall>::new(&["inside", "outside"], config) {
        Ok(_) => panic!("config accepted"),
        Err(e) => e,
    }
}

fn frame(from_inside: bool, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = if from_inside {
        (LAN_MAC, WAN_MAC)
    } else {
        (WAN_MAC, LAN_MAC)
    };
    frames::ethernet(dst, src, ethertype, payload)
}

/// An IPv4 packet as the tests send it (identification 7, DF set).
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let header = Ipv4Repr {
        ident: 7,
        dont_frag: true,
        ..frames::ipv4_header(src, dst, protocol)
    };
    frames::ipv4_with(header, payload)
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    from_inside: bool,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    data: &[u8],
) -> Vec<u8> {
    let header = frames::TcpHeader {
        src_port: sport,
        dst_port: dport,
        seq,
        ack,
        flags,
        window: 64240,
    };
    let seg = frames::tcp(src, dst, header, data);
    frame(
        from_inside,
        EtherType::Ipv4,
        &ipv4(src, dst, IpProtocol::Tcp, &seg),
    )
}

fn udp_ip(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let seg = frames::udp(src, dst, sport, dport, b"hello");
    ipv4(src, dst, IpProtocol::Udp, &seg)
}

fn udp(from_inside: bool, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    frame(
        from_inside,
        EtherType::Ipv4,
        &udp_ip(src, dst, sport, dport),
    )
}

fn icmp_ip(src: Ipv4Addr, dst: Ipv4Addr, repr: &Icmpv4Repr<'_>) -> Vec<u8> {
    ipv4(src, dst, IpProtocol::Icmp, &frames::icmp(repr))
}

fn ping(from_inside: bool, src: Ipv4Addr, dst: Ipv4Addr, request: bool, ident: u16) -> Vec<u8> {
    let msg = frames::echo(request, ident, 1, b"ping");
    frame(
        from_inside,
        EtherType::Ipv4,
        &ipv4(src, dst, IpProtocol::Icmp, &msg),
    )
}

const SYN: TcpFlags = TcpFlags::SYN;

fn syn_ack() -> TcpFlags {
    TcpFlags::SYN | TcpFlags::ACK
}

// ---- configuration -------------------------------------------------------

#[test]
fn config_errors_name_the_key() {
    let mut c = config();
    c["rules"][2]["bogus"] = json!(1);
    let e = config_error(c);
    assert!(e.path.contains("rules") && e.path.contains("bogus"), "{e}");

    let e = config_error(json!({ "default_policy": "drop", "typo": 1 }));
    assert!(e.path.contains("typo"), "{e}");

    let mut c = config();
    c["rules"][3]["dst"] = json!("192.168.1.300/32");
    assert_eq!(config_error(c).path, "rules.3.dst");

    let mut c = config();
    c["rules"][3]["dst"] = json!("192.168.1.50/24");
    let e = config_error(c);
    assert_eq!(e.path, "rules.3.dst");
    assert!(e.message.contains("192.168.1.0/24"), "{e}");

    let mut c = config();
    c["rules"][4]["dst_port"] = json!("1-100");
    let e = config_error(c);
    assert_eq!(e.path, "rules.4.dst_port");
    assert!(e.message.contains("tcp"), "{e}");

    let mut c = config();
    c["rules"][2]["action"] = json!("allow");
    assert_eq!(config_error(c).path, "rules.2.action");

    let mut c = config();
    c["rules"][0]["in"] = json!("dmz");
    let e = config_error(c);
    assert_eq!(e.path, "rules.0.in");
    assert!(e.message.contains("inside, outside"), "{e}");

    let mut c = config();
    c["rules"][3]["dst_port"] = json!("90-80");
    assert_eq!(config_error(c).path, "rules.3.dst_port");
    let mut c = config();
    c["rules"][3]["dst_port"] = json!(70000);
    assert_eq!(config_error(c).path, "rules.3.dst_port");
    let mut c = config();
    c["rules"][3]["proto"] = json!("sctp");
    assert_eq!(config_error(c).path, "rules.3.proto");

    assert_eq!(
        config_error(json!({ "default_policy": "maybe" })).path,
        "default_policy"
    );
    assert_eq!(
        config_error(json!({ "max_connections": 0 })).path,
        "max_connections"
    );
    assert_eq!(
        config_error(json!({ "timeouts": { "udp": 0 } })).path,
        "timeouts.udp"
    );
    assert!(config_error(json!({ "timeouts": { "tcp": 5 } }))
        .path
        .contains("tcp"));

    let e = Harness::<Firewall>::new(&["a", "b", "c"], json!({}))
        .err()
        .expect("refused");
    assert!(e.message.contains("exactly 2 ports"), "{e}");

    // Defaults: an empty config is valid.
    fw_with(json!({}));
}

// ---- connection tracking -----------------------------------------------

#[test]
fn lan_out_accepted_and_reply_passes() {
    let mut h = fw();
    let out = h.process(
        IN,
        &tcp(true, LAN_HOST, REMOTE, 40000, 443, SYN, 100, 0, b""),
    );
    assert_eq!(out.verdict, Verdict::Forward(OUT));
    let reply = tcp(
        false,
        REMOTE,
        LAN_HOST,
        443,
        40000,
        syn_ack(),
        900,
        101,
        b"",
    );
    let out = h.process(OUT, &reply);
    assert_eq!(out.verdict, Verdict::Forward(IN));
    assert_eq!(out.frame, reply, "bytes untouched");
    let ack = tcp(
        true,
        LAN_HOST,
        REMOTE,
        40000,
        443,
        TcpFlags::ACK,
        101,
        901,
        b"GET",
    );
    assert_eq!(h.process(IN, &ack).verdict, Verdict::Forward(OUT));
    let data = tcp(
        false,
        REMOTE,
        LAN_HOST,
        443,
        40000,
        TcpFlags::ACK,
        901,
        104,
        b"OK",
    );
    assert_eq!(h.process(OUT, &data).verdict, Verdict::Forward(IN));
    assert_eq!(h.counter("accepted"), Some(1));
    assert_eq!(h.counter("connections"), Some(1));
    assert_eq!(h.counter("rule_2_hits"), Some(1));
    assert_eq!(h.counter("rule_0_hits"), Some(0));

    // UDP and ping out, replies back.
    assert_eq!(
        h.process(IN, &udp(true, LAN_HOST, REMOTE, 5000, 123))
            .verdict,
        Verdict::Forward(OUT)
    );
    assert_eq!(
        h.process(OUT, &udp(false, REMOTE, LAN_HOST, 123, 5000))
            .verdict,
        Verdict::Forward(IN)
    );
    assert_eq!(
        h.process(IN, &ping(true, LAN_HOST, REMOTE, true, 77))
            .verdict,
        Verdict::Forward(OUT)
    );
    assert_eq!(
        h.process(OUT, &ping(false, REMOTE, LAN_HOST, false, 77))
            .verdict,
        Verdict::Forward(IN)
    );
    // A reply to an ident never used is invalid.
    assert_eq!(
        h.process(OUT, &ping(false, REMOTE, LAN_HOST, false, 78))
            .verdict,
        Verdict::Drop(DropReason::Policy)
    );
    assert_eq!(h.counter("connections"), Some(3));
}

#[test]
fn unsolicited_inbound_syn_dropped_and_web_in_accepted() {
    let mut h = fw();
    let out = h.process(OUT, &tcp(false, REMOTE, LAN_HOST, 5555, 22, SYN, 1, 0, b""));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Policy));
    assert!(out.emitted.is_empty(), "drop is silent");
    assert_eq!(h.counter("dropped_by_policy"), Some(1));
    assert_eq!(h.counter("connections"), Some(0));

    let out = h.process(OUT, &tcp(false, REMOTE, WEB, 5555, 80, SYN, 1, 0, b""));
    assert_eq!(out.verdict, Verdict::Forward(IN));
    assert_eq!(h.counter("rule_3_hits"), Some(1));
    let out = h.process(IN, &tcp(true, WEB, REMOTE, 80, 5555, syn_ack(), 50, 2, b""));
    assert_eq!(out.verdict, Verdict::Forward(OUT));
    // Inbound ping allowed by ping-in.
    assert_eq!(
        h.process(OUT, &ping(false, REMOTE, WEB, true, 9)).verdict,
        Verdict::Forward(IN)
    );
    assert_eq!(
        h.process(IN, &ping(true, WEB, REMOTE, false, 9)).verdict,
        Verdict::Forward(OUT)
    );
}

#[test]
fn tcp_without_syn_and_no_connection_is_invalid() {
    let mut h = fw();
    for flags in [
        TcpFlags::ACK,
        syn_ack(),
        TcpFlags::RST,
        TcpFlags::FIN | TcpFlags::ACK,
    ] {
        let out = h.process(
            IN,
            &tcp(true, LAN_HOST, REMOTE, 40001, 443, flags, 5, 6, b""),
        );
        assert_eq!(out.verdict, Verdict::Drop(DropReason::Policy), "{flags}");
    }
    assert_eq!(h.counter("invalid"), Some(4));
    assert_eq!(h.counter("accepted"), Some(0));
    assert_eq!(h.counter("rule_2_hits"), Some(0), "rules never see them");
}

#[test]
fn tcp_teardown_moves_to_a_short_timeout() {
    let mut h = fw();
    h.process(
        IN,
        &tcp(true, LAN_HOST, REMOTE, 40000, 443, SYN, 100, 0, b""),
    );
    h.process(
        OUT,
        &tcp(
            false,
            REMOTE,
            LAN_HOST,
            443,
            40000,
            syn_ack(),
            900,
            101,
            b"",
        ),
    );
    h.process(
        IN,
        &tcp(
            true,
            LAN_HOST,
            REMOTE,
            40000,
            443,
            TcpFlags::ACK,
            101,
            901,
            b"",
        ),
    );
    // Established: survives 1000 s.
    h.advance_ns(1000 * SEC);
    h.tick();
    assert_eq!(h.counter("connections"), Some(1));
    let ack = tcp(
        false,
        REMOTE,
        LAN_HOST,
        443,
        40000,
        TcpFlags::ACK,
        901,
        101,
        b"",
    );
    assert_eq!(h.process(OUT, &ack).verdict, Verdict::Forward(IN));
    // FIN both ways: closing, gone after the transitory timeout.
    h.process(
        IN,
        &tcp(
            true,
            LAN_HOST,
            REMOTE,
            40000,
            443,
            TcpFlags::FIN | TcpFlags::ACK,
            101,
            901,
            b"",
        ),
    );
    h.process(
        OUT,
        &tcp(
            false,
            REMOTE,
            LAN_HOST,
            443,
            40000,
            TcpFlags::FIN | TcpFlags::ACK,
            901,
            102,
            b"",
        ),
    );
    h.advance_ns(121 * SEC);
    h.tick();
    assert_eq!(h.counter("connections"), Some(0));
    assert_eq!(
        h.process(OUT, &ack).verdict,
        Verdict::Drop(DropReason::Policy)
    );
}

#[test]
fn connections_expire_on_tick() {
    let mut h = fw();
    h.process(IN, &udp(true, LAN_HOST, REMOTE, 5000, 123));
    h.process(IN, &ping(true, LAN_HOST, REMOTE, true, 1));
    h.process(
        IN,
        &tcp(true, LAN_HOST, REMOTE, 40000, 443, SYN, 100, 0, b""),
    );
    assert_eq!(h.counter("connections"), Some(3));
    h.advance_ns(31 * SEC);
    h.tick();
    assert_eq!(h.counter("connections"), Some(2), "ICMP after 30 s");
    assert_eq!(
        h.process(OUT, &ping(false, REMOTE, LAN_HOST, false, 1))
            .verdict,
        Verdict::Drop(DropReason::Policy)
    );
    h.advance_ns(30 * SEC);
    h.tick();
    assert_eq!(h.counter("connections"), Some(1), "UDP after 60 s");
    assert_eq!(
        h.process(OUT, &udp(false, REMOTE, LAN_HOST, 123, 5000))
            .verdict,
        Verdict::Drop(DropReason::Policy)
    );
    h.advance_ns(60 * SEC);
    h.tick();
    assert_eq!(
        h.counter("connections"),
        Some(0),
        "half-open TCP after 120 s"
    );
}

#[test]
fn a_full_table_drops_new_connections_but_keeps_old_ones() {
    let mut c = config();
    c["max_connections"] = json!(2);
    let mut h = fw_with(c);
    assert_eq!(
        h.process(IN, &udp(true, LAN_HOST, REMOTE, 1, 53)).verdict,
        Verdict::Drop(DropReason::Policy),
        "rejected"
    );
    assert_eq!(
        h.process(IN, &udp(true, LAN_HOST, REMOTE, 1, 54)).verdict,
        Verdict::Forward(OUT)
    );
    assert_eq!(
        h.process(IN, &udp(true, LAN_HOST, REMOTE, 2, 54)).verdict,
        Verdict::Forward(OUT)
    );
    assert_eq!(
        h.process(IN, &udp(true, LAN_HOST, REMOTE, 3, 54)).verdict,
        Verdict::Drop(DropReason::TableFull)
    );
    assert_eq!(h.counter("table_full_drops"), Some(1));
    assert_eq!(
        h.process(OUT, &udp(false, REMOTE, LAN_HOST, 54, 1)).verdict,
        Verdict::Forward(IN)
    );
    assert_eq!(
        h.process(IN, &udp(true, LAN_HOST, REMOTE, 2, 54)).verdict,
        Verdict::Forward(OUT)
    );
    // Room again once they expire.
    h.advance_ns(61 * SEC);
    h.tick();
    assert_eq!(
        h.process(IN, &udp(true, LAN_HOST, REMOTE, 3, 54)).verdict,
        Verdict::Forward(OUT)
    );
}

// ---- reject ---------------------------------------------------------------

#[test]
fn reject_sends_a_valid_rst() {
    let mut h = fw();
    let out = h.process(
        IN,
        &tcp(true, LAN_HOST, REMOTE, 40000, 25, SYN, 1000, 0, b""),
    );
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Policy));
    assert_eq!(h.counter("rejected"), Some(1));
    assert_eq!(h.counter("rule_0_hits"), Some(1));
    assert_eq!(out.emitted.len(), 1);
    let (port, bytes) = &out.emitted[0];
    assert_eq!(*port, IN);
    let eth = EthernetFrame::new_checked(&bytes[..]).unwrap();
    assert_eq!(eth.dst_addr(), LAN_MAC);
    assert_eq!(eth.src_addr(), WAN_MAC);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), REMOTE);
    assert_eq!(ip.dst_addr(), LAN_HOST);
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(t.verify_checksum(ip.src_addr(), ip.dst_addr()));
    assert_eq!((t.src_port(), t.dst_port()), (25, 40000));
    assert!(t.rst() && t.ack() && !t.syn());
    assert_eq!(t.seq_number(), 0);
    assert_eq!(t.ack_number(), 1001, "SYN occupies one sequence number");
    assert_eq!(h.counter("connections"), Some(0));
}

#[test]
fn rst_to_a_segment_with_ack_uses_its_ack_number() {
    // A retransmitted SYN-ACK-less segment can't start a connection, so use
    // reject as the default policy on a stray SYN carrying data and FIN.
    let mut h = fw_with(json!({ "default_policy": "reject" }));
    let out = h.process(
        IN,
        &tcp(
            true,
            LAN_HOST,
            REMOTE,
            1,
            2,
            SYN | TcpFlags::FIN,
            10,
            0,
            b"abc",
        ),
    );
    let bytes = &out.emitted[0].1;
    let eth = EthernetFrame::new_checked(&bytes[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(t.ack_number(), 10 + 3 + 2);
    // The reply builder handles ACK-bearing segments per RFC 793 too.
    let frame = tcp(true, LAN_HOST, REMOTE, 1, 2, TcpFlags::ACK, 10, 4242, b"");
    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let seg = TcpPacket::new_checked(ip.payload()).unwrap();
    let mut buf = [0u8; reject::MAX_LEN];
    let len = reject::tcp_rst(&mut buf, &frame, 14, &ip, &seg);
    let eth = EthernetFrame::new_checked(&buf[..len]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(t.verify_checksum(ip.src_addr(), ip.dst_addr()));
    assert!(t.rst() && !t.ack());
    assert_eq!(t.seq_number(), 4242);
}

#[test]
fn reject_sends_icmp_admin_prohibited_for_udp() {
    let mut h = fw();
    let original = udp_ip(LAN_HOST, REMOTE, 33000, 53);
    let out = h.process(IN, &frame(true, EtherType::Ipv4, &original));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Policy));
    assert_eq!(out.emitted.len(), 1);
    let (port, bytes) = &out.emitted[0];
    assert_eq!(*port, IN);
    let eth = EthernetFrame::new_checked(&bytes[..]).unwrap();
    assert_eq!(eth.dst_addr(), LAN_MAC);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), REMOTE);
    assert_eq!(ip.dst_addr(), LAN_HOST);
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    match Icmpv4Repr::parse(&icmp).unwrap() {
        Icmpv4Repr::DstUnreachable { reason, data } => {
            assert_eq!(reason, Icmpv4DstUnreachable::CommProhibited);
            assert_eq!(data, &original[..28]);
        }
        other => panic!("{other:?}"),
    }
}

// ---- related ICMP ---------------------------------------------------------

#[test]
fn related_icmp_errors_pass_and_unrelated_are_dropped() {
    let mut h = fw();
    // traceroute: UDP probe with TTL 1 out; the router answers time exceeded.
    let probe = udp_ip(LAN_HOST, REMOTE, 33434, 33435);
    assert_eq!(
        h.process(IN, &frame(true, EtherType::Ipv4, &probe)).verdict,
        Verdict::Forward(OUT)
    );
    let quote = vnf_sdk::wire::error_quote(&probe);
    let te = Icmpv4Repr::TimeExceeded {
        reason: Icmpv4TimeExceeded::TtlExpired,
        data: quote,
    };
    let err = frame(false, EtherType::Ipv4, &icmp_ip(ROUTER, LAN_HOST, &te));
    assert_eq!(h.process(OUT, &err).verdict, Verdict::Forward(IN));
    assert_eq!(h.counter("related_icmp"), Some(1));

    // About a connection never seen.
    let other = udp_ip(LAN_HOST, REMOTE, 33434, 40000);
    let te = Icmpv4Repr::TimeExceeded {
        reason: Icmpv4TimeExceeded::TtlExpired,
        data: vnf_sdk::wire::error_quote(&other),
    };
    let err = frame(false, EtherType::Ipv4, &icmp_ip(ROUTER, LAN_HOST, &te));
    assert_eq!(
        h.process(OUT, &err).verdict,
        Verdict::Drop(DropReason::Policy)
    );
    // Same quote but sent to someone else.
    let te = Icmpv4Repr::TimeExceeded {
        reason: Icmpv4TimeExceeded::TtlExpired,
        data: quote,
    };
    let err = frame(false, EtherType::Ipv4, &icmp_ip(ROUTER, WEB, &te));
    assert_eq!(
        h.process(OUT, &err).verdict,
        Verdict::Drop(DropReason::Policy)
    );
    assert_eq!(h.counter("invalid"), Some(2));

    // Port unreachable about a tracked ping passes too.
    let p = ping(true, LAN_HOST, REMOTE, true, 5);
    h.process(IN, &p);
    let du = Icmpv4Repr::DstUnreachable {
        reason: Icmpv4DstUnreachable::HostUnreachable,
        data: vnf_sdk::wire::error_quote(&p[14..]),
    };
    let err = frame(false, EtherType::Ipv4, &icmp_ip(ROUTER, LAN_HOST, &du));
    assert_eq!(h.process(OUT, &err).verdict, Verdict::Forward(IN));
}

// ---- other traffic --------------------------------------------------------

#[test]
fn arp_and_ipv6_pass_unless_configured_otherwise() {
    let payload = frames::arp(
        ArpOperation::Request,
        LAN_MAC,
        LAN_HOST,
        EthernetAddress([0; 6]),
        WEB,
    );
    let f = frame(true, EtherType::Arp, &payload);
    let mut h = fw();
    let out = h.process(IN, &f);
    assert_eq!(out.verdict, Verdict::Forward(OUT));
    assert_eq!(out.frame, f);
    assert_eq!(
        h.process(OUT, &frame(false, EtherType::Ipv6, &[0x60; 40]))
            .verdict,
        Verdict::Forward(IN)
    );

    let mut h = fw_with(json!({ "pass_non_ip": false }));
    assert_eq!(h.process(IN, &f).verdict, Verdict::Drop(DropReason::Policy));
}

#[test]
fn malformed_and_fragments() {
    let mut h = fw();
    assert_eq!(
        h.process(IN, &[0u8; 10]).verdict,
        Verdict::Drop(DropReason::Malformed)
    );
    let mut bad = udp(true, LAN_HOST, REMOTE, 1, 2);
    bad[14 + 10] ^= 0xff; // IP checksum
    assert_eq!(
        h.process(IN, &bad).verdict,
        Verdict::Drop(DropReason::Malformed)
    );
    let short_tcp = frame(
        true,
        EtherType::Ipv4,
        &ipv4(LAN_HOST, REMOTE, IpProtocol::Tcp, &[0; 10]),
    );
    assert_eq!(
        h.process(IN, &short_tcp).verdict,
        Verdict::Drop(DropReason::Malformed)
    );

    // Non-first fragments: portless rules decide (lan-out accepts from
    // inside); from outside nothing portless matches and the default drops.
    let frag = |from_inside: bool, src, dst| {
        let mut ip = udp_ip(src, dst, 1, 2);
        let mut p = Ipv4Packet::new_unchecked(&mut ip[..]);
        p.set_frag_offset(8);
        p.fill_checksum();
        frame(from_inside, EtherType::Ipv4, &ip)
    };
    assert_eq!(
        h.process(IN, &frag(true, LAN_HOST, REMOTE)).verdict,
        Verdict::Forward(OUT)
    );
    assert_eq!(
        h.process(OUT, &frag(false, REMOTE, WEB)).verdict,
        Verdict::Drop(DropReason::Policy)
    );
}

#[test]
fn vlan_tagged_ipv4_is_filtered_too() {
    let mut h = fw();
    let plain = tcp(false, REMOTE, LAN_HOST, 5555, 22, SYN, 1, 0, b"");
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    tagged.extend_from_slice(&plain[12..]);
    assert_eq!(
        h.process(OUT, &tagged).verdict,
        Verdict::Drop(DropReason::Policy)
    );
}

// ---- offloads ------------------------------------------------------------

/// Puts the pseudo-header sum in the TCP checksum field, as Linux leaves it
/// for CHECKSUM_PARTIAL.
fn make_partial(mut f: Vec<u8>, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let len = (f.len() - 14 - 20) as u32;
    let p = vnf_sdk::wire::checksum::pseudo_header_v4(src, dst, IpProtocol::Tcp, len);
    f[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&p.to_be_bytes());
    f
}

#[test]
fn super_frames_and_partial_checksums_pass_untouched() {
    use vnf_sdk::{FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4};
    let mut h = fw();
    let (a, b) = (LAN_HOST, REMOTE);
    let syn = make_partial(tcp(true, a, b, 40000, 443, SYN, 1000, 0, b""), a, b);
    let out = h.process_with_offload(IN, &syn, FLAG_CSUM_PARTIAL, 0);
    assert_eq!(out.verdict, Verdict::Forward(OUT));
    assert_eq!(out.frame, syn);
    let out = h.process(
        OUT,
        &tcp(false, b, a, 443, 40000, syn_ack(), 5000, 1001, b""),
    );
    assert_eq!(out.verdict, Verdict::Forward(IN));
    // A 30 kB super-frame of the connection: neither its length nor its
    // partial checksum makes it malformed, and it is not rewritten.
    let data: Vec<u8> = (0..30_000u32).map(|i| i as u8).collect();
    let flags = TcpFlags::ACK | TcpFlags::PSH;
    let big = make_partial(tcp(true, a, b, 40000, 443, flags, 1001, 5001, &data), a, b);
    let out = h.process_with_offload(IN, &big, FLAG_CSUM_PARTIAL | FLAG_GSO_TCPV4, 1448);
    assert_eq!(out.verdict, Verdict::Forward(OUT));
    assert_eq!(out.frame, big);
    assert!(out.emitted.is_empty());
    // A rejected SYN with a partial checksum still gets a valid RST.
    let smtp = make_partial(tcp(true, a, b, 40001, 25, SYN, 7, 0, b""), a, b);
    let out = h.process_with_offload(IN, &smtp, FLAG_CSUM_PARTIAL, 0);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Policy));
    let eth = EthernetFrame::new_checked(&out.emitted[0].1[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(t.rst() && t.verify_checksum(ip.src_addr(), ip.dst_addr()));
    assert_eq!(t.ack_number(), 8);
}

// ---- replace (state handover) ----------------------------------------------

#[test]
fn a_replacement_keeps_the_tracked_connections() {
    let mut h = fw();
    let out = |h: &mut Harness<Firewall>, f: &[u8]| h.process(IN, f).verdict;
    let back = |h: &mut Harness<Firewall>, f: &[u8]| h.process(OUT, f).verdict;
    let syn = tcp(true, LAN_HOST, REMOTE, 40000, 443, SYN, 1, 0, b"");
    assert_eq!(out(&mut h, &syn), Verdict::Forward(OUT));
    let sa = tcp(false, REMOTE, LAN_HOST, 443, 40000, syn_ack(), 9, 2, b"");
    assert_eq!(back(&mut h, &sa), Verdict::Forward(IN));
    let ack = tcp(
        true,
        LAN_HOST,
        REMOTE,
        40000,
        443,
        TcpFlags::ACK,
        2,
        10,
        b"",
    );
    assert_eq!(out(&mut h, &ack), Verdict::Forward(OUT));
    let dns = udp(true, LAN_HOST, REMOTE, 5000, 5353);
    assert_eq!(out(&mut h, &dns), Verdict::Forward(OUT));
    h.advance_ns(30 * SEC);

    let mut h = h
        .replace::<Firewall>(&["inside", "outside"], config())
        .unwrap();
    assert_eq!(h.counter("connections"), Some(2));
    let data = tcp(
        false,
        REMOTE,
        LAN_HOST,
        443,
        40000,
        TcpFlags::ACK,
        10,
        2,
        b"data",
    );
    assert_eq!(back(&mut h, &data), Verdict::Forward(IN));
    let dns_reply = udp(false, REMOTE, LAN_HOST, 5353, 5000);
    assert_eq!(back(&mut h, &dns_reply), Verdict::Forward(IN));
    // The timers came along: the UDP flow (60 s) expires 30 s later.
    h.advance_ns(61 * SEC);
    assert!(matches!(back(&mut h, &dns_reply), Verdict::Drop(_)));
    assert_eq!(back(&mut h, &data), Verdict::Forward(IN));
    drop(h);

    // Without the state the reply is refused by the default policy.
    let mut fresh = fw();
    assert!(matches!(back(&mut fresh, &data), Verdict::Drop(_)));
}

#[test]
fn a_replacement_refuses_another_state_format() {
    let mut h = fw();
    h.process(IN, &udp(true, LAN_HOST, REMOTE, 5000, 5353));
    let saved = h.vnf().save_state().unwrap();
    let e = h.vnf().load_state(7, &saved).unwrap_err();
    assert!(e.message.contains("format version 7"), "{e}");
}
