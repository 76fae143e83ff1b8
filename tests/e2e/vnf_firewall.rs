//! The compiled firewall module through the host engine (see vnfs/firewall).

use std::net::Ipv4Addr;

use nfvhost::engine::{Engine, InstanceError, VnfInstance};
use nfvhost_abi::{DropReason, Verdict};
use vnf_sdk::testing::frames;
use vnf_sdk::wire::{
    EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags,
    TcpPacket,
};

use crate::frames::{engine, instance, run_batch, udp_frame, H1_MAC};

const MODULE: &str = "vnf_firewall.wasm";
const H2_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x20]);
const LAN: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
const WAN: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 10);

fn firewall(engine: &Engine) -> VnfInstance {
    instance(
        engine,
        MODULE,
        &["inside", "outside"],
        serde_json::json!({
            "default_policy": "drop",
            "rules": [
                { "name": "block-smtp", "in": "inside", "proto": "tcp", "dst_port": 25, "action": "reject" },
                { "name": "lan-out", "in": "inside", "action": "accept" },
            ],
        }),
    )
    .unwrap()
}

#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: TcpFlags,
    seq: u32,
) -> Vec<u8> {
    let header = Ipv4Repr {
        ident: 1,
        dont_frag: true,
        ..frames::ipv4_header(src, dst, IpProtocol::Tcp)
    };
    let tcp = frames::TcpHeader {
        src_port: sport,
        dst_port: dport,
        seq,
        ack: 0,
        flags,
        window: 1000,
    };
    let segment = frames::tcp(src, dst, tcp, &[]);
    frames::ethernet(
        dst_mac,
        src_mac,
        EtherType::Ipv4,
        &frames::ipv4_with(header, &segment),
    )
}

#[test]
fn firewall_passes_outbound_and_its_replies_and_drops_unsolicited_inbound() {
    let engine = engine();
    let mut fw = firewall(&engine);
    let syn = tcp_frame(H1_MAC, H2_MAC, LAN, WAN, 40000, 80, TcpFlags::SYN, 7);
    let syn_ack = tcp_frame(
        H2_MAC,
        H1_MAC,
        WAN,
        LAN,
        80,
        40000,
        TcpFlags::SYN | TcpFlags::ACK,
        9,
    );
    let stranger = tcp_frame(H2_MAC, H1_MAC, WAN, LAN, 5555, 22, TcpFlags::SYN, 1);
    let out = run_batch(
        &mut fw,
        &[(0, syn.clone()), (1, syn_ack.clone()), (1, stranger)],
    )
    .unwrap();
    assert_eq!(out[0], (Verdict::Forward(1), syn));
    assert_eq!(out[1], (Verdict::Forward(0), syn_ack));
    assert_eq!(out[2].0, Verdict::Drop(DropReason::Policy));

    // UDP out and back; unsolicited UDP in is dropped.
    let udp_out = udp_frame(H2_MAC, [10, 0, 1, 10], [10, 0, 2, 10], 64, 53);
    let out = run_batch(&mut fw, &[(0, udp_out)]).unwrap();
    assert_eq!(out[0].0, Verdict::Forward(1));
    let udp_in = udp_frame(H1_MAC, [10, 0, 2, 10], [10, 0, 1, 10], 64, 53);
    let out = run_batch(&mut fw, &[(1, udp_in)]).unwrap();
    assert_eq!(
        out[0].0,
        Verdict::Drop(DropReason::Policy),
        "sport 40000 → 53 is not the reply of 40000 → 53"
    );
    assert_eq!(fw.emitted().count(), 0);
}

#[test]
fn firewall_reject_emits_a_rst() {
    let engine = engine();
    let mut fw = firewall(&engine);
    let syn = tcp_frame(H1_MAC, H2_MAC, LAN, WAN, 40000, 25, TcpFlags::SYN, 1000);
    let out = run_batch(&mut fw, &[(0, syn)]).unwrap();
    assert_eq!(out[0].0, Verdict::Drop(DropReason::Policy));
    let emitted: Vec<(u16, Vec<u8>)> = fw.emitted().map(|(p, f)| (p, f.to_vec())).collect();
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].0, 0, "back out of the port it came in on");
    let eth = EthernetFrame::new_checked(&emitted[0].1[..]).unwrap();
    assert_eq!(eth.dst_addr(), H1_MAC);
    assert_eq!(eth.src_addr(), H2_MAC);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (WAN, LAN));
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(t.verify_checksum(ip.src_addr(), ip.dst_addr()));
    assert!(t.rst() && t.ack());
    assert_eq!((t.src_port(), t.dst_port()), (25, 40000));
    assert_eq!((t.seq_number(), t.ack_number()), (0, 1001));
}

#[test]
fn firewall_refuses_bad_config_with_the_key_path() {
    let engine = engine();
    let bad = serde_json::json!({ "rules": [ { "action": "accept" }, { "proto": "icmp", "dst_port": 80, "action": "accept" } ] });
    match instance(&engine, MODULE, &["inside", "outside"], bad)
        .err()
        .expect("refused")
    {
        InstanceError::Config { path, message } => {
            assert_eq!(path, "rules.1.dst_port", "{message}")
        }
        other => panic!("expected a config error, got {other}"),
    }
    let bad = serde_json::json!({ "rules": [ { "in": "dmz", "action": "accept" } ] });
    match instance(&engine, MODULE, &["inside", "outside"], bad)
        .err()
        .expect("refused")
    {
        InstanceError::Config { path, .. } => assert_eq!(path, "rules.0.in"),
        other => panic!("expected a config error, got {other}"),
    }
}
