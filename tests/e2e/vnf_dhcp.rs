//! The compiled dhcp module through the host engine (see vnfs/dhcp).

use nfvhost::engine::{Engine, InstanceError, VnfInstance};
use nfvhost_abi::{DropReason, Verdict};
use std::net::Ipv4Addr;
use vnf_sdk::testing::frames;
use vnf_sdk::wire::{EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, UdpPacket};

use crate::frames::{engine, instance, run_batch, H1_MAC};

fn config() -> serde_json::Value {
    serde_json::json!({
        "port": "lan",
        "address": "192.168.1.2/24",
        "pool": "192.168.1.100-192.168.1.199",
        "router": "192.168.1.1",
        "dns": ["192.168.1.1"],
        "domain": "edge.test",
        "lease_time": 3600,
        "reservations": [ { "mac": "02:00:00:00:01:50", "address": "192.168.1.50" } ],
    })
}

fn dhcp(engine: &Engine) -> VnfInstance {
    instance(engine, "vnf_dhcp.wasm", &["lan", "uplink"], config()).unwrap()
}

/// A BOOTREQUEST from H1 with option 53 = `kind` and the broadcast flag.
fn message(kind: u8, xid: u32) -> Vec<u8> {
    let options: [(u8, &[u8]); 2] = [(53, &[kind]), (55, &[1, 3, 6, 15])];
    let mut m = frames::dhcp_request(xid, H1_MAC, Ipv4Addr::UNSPECIFIED, true, &options);
    m.resize(300, 0);
    m
}

/// A broadcast UDP 68 -> 67 frame from H1 carrying `payload`.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST);
    frames::ethernet(
        EthernetAddress::BROADCAST,
        H1_MAC,
        EtherType::Ipv4,
        &frames::ipv4(
            src,
            dst,
            IpProtocol::Udp,
            &frames::udp(src, dst, 68, 67, payload),
        ),
    )
}

/// (code, data) of each option in a BOOTP message.
fn options(m: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 240;
    while i < m.len() {
        match m[i] {
            0 => i += 1,
            255 => break,
            code => {
                let len = usize::from(m[i + 1]);
                out.push((code, m[i + 2..i + 2 + len].to_vec()));
                i += 2 + len;
            }
        }
    }
    out
}

#[test]
fn dhcp_discover_gets_an_offer() {
    let engine = engine();
    let mut vnf = dhcp(&engine);
    let out = run_batch(&mut vnf, &[(0, client_frame(&message(1, 0x1234_5678)))]).unwrap();
    assert_eq!(out[0].0, Verdict::Consume);
    let emitted: Vec<(u16, Vec<u8>)> = vnf.emitted().map(|(p, f)| (p, f.to_vec())).collect();
    assert_eq!(emitted.len(), 1, "one OFFER");
    assert_eq!(emitted[0].0, 0, "on the lan port");
    let eth = EthernetFrame::new_checked(&emitted[0].1[..]).unwrap();
    assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), Ipv4Addr::new(192, 168, 1, 2));
    assert_eq!(ip.dst_addr(), Ipv4Addr::BROADCAST);
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(udp.verify_checksum(ip.src_addr(), ip.dst_addr()));
    assert_eq!((udp.src_port(), udp.dst_port()), (67, 68));
    let m = udp.payload();
    assert!(m.len() >= 300);
    assert_eq!(m[0], 2, "BOOTREPLY");
    assert_eq!(&m[4..8], &0x1234_5678u32.to_be_bytes(), "xid");
    assert_eq!(&m[16..20], &[192, 168, 1, 100], "yiaddr");
    assert_eq!(&m[28..34], H1_MAC.as_bytes(), "chaddr");
    assert_eq!(&m[236..240], &frames::DHCP_MAGIC_COOKIE);
    let opts = options(m);
    let codes: Vec<u8> = opts.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, vec![53, 54, 51, 58, 59, 1, 3, 6, 15]);
    assert_eq!(opts[0].1, vec![2], "DHCPOFFER");
    assert_eq!(opts[1].1, vec![192, 168, 1, 2], "server identifier");
    assert_eq!(opts[2].1, 3600u32.to_be_bytes().to_vec());
}

#[test]
fn dhcp_malformed_message_dropped() {
    let engine = engine();
    let mut vnf = dhcp(&engine);
    let mut bad_cookie = message(1, 1);
    bad_cookie[239] = 0;
    let mut no_type = message(1, 2);
    no_type[240..243].copy_from_slice(&[0, 0, 0]);
    let truncated = message(1, 3)[..100].to_vec();
    let frames: Vec<(u16, Vec<u8>)> = [bad_cookie, no_type, truncated]
        .iter()
        .map(|m| (0, client_frame(m)))
        .collect();
    let out = run_batch(&mut vnf, &frames).unwrap();
    for (verdict, _) in &out {
        assert_eq!(*verdict, Verdict::Drop(DropReason::Malformed));
    }
    assert_eq!(vnf.emitted().count(), 0, "never answered");
}

#[test]
fn dhcp_non_dhcp_passes_through() {
    let engine = engine();
    let mut vnf = dhcp(&engine);
    let f = crate::frames::udp_frame(
        EthernetAddress([2, 0, 0, 0, 1, 1]),
        [192, 168, 1, 100],
        [8, 8, 8, 8],
        64,
        53,
    );
    let out = run_batch(&mut vnf, &[(0, f.clone()), (1, f.clone())]).unwrap();
    assert_eq!(out[0], (Verdict::Forward(1), f.clone()));
    assert_eq!(out[1], (Verdict::Forward(0), f));
}

#[test]
fn dhcp_config_error_names_the_key() {
    let engine = engine();
    let mut c = config();
    c["reservations"] = serde_json::json!([{ "mac": "02:00:00:00:01:50", "address": "10.9.9.9" }]);
    match instance(&engine, "vnf_dhcp.wasm", &["lan", "uplink"], c) {
        Ok(_) => panic!("config accepted"),
        Err(InstanceError::Config { path, message }) => {
            assert_eq!(path, "reservations.0.address", "{message}");
        }
        Err(other) => panic!("expected a config error, got {other}"),
    }
}
