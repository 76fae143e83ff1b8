//! The compiled nat module through the host engine (see vnfs/nat).

use std::net::Ipv4Addr;

use nfvhost::engine::{Engine, InstanceError, VnfInstance};
use nfvhost_abi::Verdict;
use vnf_sdk::testing::frames;
use vnf_sdk::wire::{
    ArpOperation, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, UdpPacket,
};

use crate::frames::{engine, instance, run_batch, udp_frame, H1_MAC};

const IN_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 1, 1]);
const OUT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 2, 1]);
const WAN_GW: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x20]);

fn config() -> serde_json::Value {
    serde_json::json!({
        "inside": { "port": "inside", "address": "10.255.0.2/30", "mac": "02:00:00:00:01:01" },
        "outside": { "port": "outside", "address": "203.0.113.1/24", "mac": "02:00:00:00:02:01" },
        "routes": [
            { "to": "192.168.1.0/24", "via": "10.255.0.1" },
            { "to": "0.0.0.0/0", "via": "203.0.113.254" },
        ],
        "port_forwards": [ { "proto": "tcp", "port": 8080, "to": "192.168.1.50:80" } ],
    })
}

fn nat(engine: &Engine) -> VnfInstance {
    instance(engine, "vnf_nat.wasm", &["inside", "outside"], config()).unwrap()
}

/// An ARP reply from `mac`/`ip` to the NAT's `to_mac`/`to_ip`.
fn arp_reply(
    mac: EthernetAddress,
    ip: [u8; 4],
    to_mac: EthernetAddress,
    to_ip: [u8; 4],
) -> Vec<u8> {
    frames::arp_frame(
        to_mac,
        ArpOperation::Reply,
        mac,
        ip.into(),
        to_mac,
        to_ip.into(),
    )
}

fn parse_udp(frame: &[u8]) -> (EthernetAddress, Ipv4Addr, Ipv4Addr, u16, u16) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.protocol(), IpProtocol::Udp);
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(udp.verify_checksum(ip.src_addr(), ip.dst_addr()));
    (
        eth.dst_addr(),
        ip.src_addr(),
        ip.dst_addr(),
        udp.src_port(),
        udp.dst_port(),
    )
}

#[test]
fn nat_masquerades_out_and_translates_the_reply_back() {
    let engine = engine();
    let mut n = nat(&engine);
    // Teach it both next hops (the LAN router is H1_MAC).
    let out = run_batch(
        &mut n,
        &[
            (
                0,
                arp_reply(H1_MAC, [10, 255, 0, 1], IN_MAC, [10, 255, 0, 2]),
            ),
            (
                1,
                arp_reply(WAN_GW, [203, 0, 113, 254], OUT_MAC, [203, 0, 113, 1]),
            ),
        ],
    )
    .unwrap();
    assert!(out.iter().all(|(v, _)| *v == Verdict::Consume));

    let out = run_batch(
        &mut n,
        &[(
            0,
            udp_frame(IN_MAC, [192, 168, 1, 10], [198, 51, 100, 7], 64, 53),
        )],
    )
    .unwrap();
    assert_eq!(out[0].0, Verdict::Forward(1));
    let (mac, src, dst, sport, dport) = parse_udp(&out[0].1);
    assert_eq!(mac, WAN_GW);
    assert_eq!(
        (src, dst, dport),
        (
            Ipv4Addr::new(203, 0, 113, 1),
            Ipv4Addr::new(198, 51, 100, 7),
            53
        )
    );
    assert_eq!(sport, 40000, "the source port is kept when free");

    // The server's reply: the translated packet with addresses and ports swapped.
    let mut reply = out[0].1.clone();
    {
        let mut eth = EthernetFrame::new_unchecked(&mut reply[..]);
        eth.set_dst_addr(OUT_MAC);
        eth.set_src_addr(WAN_GW);
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_ttl(64);
        ip.fill_checksum();
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        udp.set_src_port(53);
        udp.set_dst_port(sport);
        udp.fill_checksum(dst, src);
    }
    let back = run_batch(&mut n, &[(1, reply)]).unwrap();
    assert_eq!(back[0].0, Verdict::Forward(0));
    let (mac, src, dst, sport, dport) = parse_udp(&back[0].1);
    assert_eq!(mac, H1_MAC);
    assert_eq!(
        (src, dst, sport, dport),
        (
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(192, 168, 1, 10),
            53,
            40000
        )
    );
}

#[test]
fn nat_refuses_bad_config_with_the_key_path() {
    let engine = engine();
    let mut c = config();
    c["port_forwards"][0]["to"] = serde_json::json!("192.168.1.50");
    let err = instance(&engine, "vnf_nat.wasm", &["inside", "outside"], c)
        .err()
        .expect("refused");
    match err {
        InstanceError::Config { path, message } => {
            assert_eq!(path, "port_forwards.0.to", "{message}");
        }
        other => panic!("expected a config error, got {other}"),
    }
}
