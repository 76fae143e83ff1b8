//! The compiled modules run through the host's engine on frames from
//! memory, without root and without a network.

use nfvhost::engine::{CallFailure, Engine, InstanceError};
use nfvhost_abi::{DropReason, Verdict};
use vnf_sdk::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, Icmpv4Packet, Icmpv4Repr,
    Ipv4Packet,
};

use crate::frames::{arp_request, engine, instance, run_batch, udp_frame, H1_MAC};
use crate::support::vnfs_built;

fn router(engine: &Engine) -> nfvhost::engine::VnfInstance {
    instance(
        engine,
        "vnf_router.wasm",
        &["lan", "wan"],
        serde_json::json!({ "interfaces": { "lan": "10.0.1.1/24", "wan": "10.0.2.1/24" } }),
    )
    .unwrap()
}

#[test]
fn router_answers_arp_from_memory() {
    let engine = engine();
    let mut r = router(&engine);
    let out = run_batch(&mut r, &[(0, arp_request([10, 0, 1, 1]))]).unwrap();
    assert_eq!(out[0].0, Verdict::Consume);
    let emitted: Vec<(u16, Vec<u8>)> = r.emitted().map(|(p, f)| (p, f.to_vec())).collect();
    assert_eq!(emitted.len(), 1, "one ARP reply");
    assert_eq!(emitted[0].0, 0, "on the port the request came in");
    let eth = EthernetFrame::new_checked(&emitted[0].1[..]).unwrap();
    assert_eq!(eth.dst_addr(), H1_MAC);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    assert_eq!(arp.operation, ArpOperation::Reply);
    assert_eq!(
        arp.source_protocol_addr,
        std::net::Ipv4Addr::new(10, 0, 1, 1)
    );
    assert_eq!(arp.target_hardware_addr, H1_MAC);
}

#[test]
fn router_forwards_a_batch_once_the_next_hop_is_known() {
    let engine = engine();
    let mut r = router(&engine);
    // Learn the router's LAN MAC from its ARP reply.
    run_batch(&mut r, &[(0, arp_request([10, 0, 1, 1]))]).unwrap();
    let reply = r.emitted().next().unwrap().1.to_vec();
    let router_lan_mac = EthernetFrame::new_checked(&reply[..]).unwrap().src_addr();

    // First packet to h2: the router must ask for h2's MAC on the WAN port.
    let out = run_batch(
        &mut r,
        &[(
            0,
            udp_frame(router_lan_mac, [10, 0, 1, 10], [10, 0, 2, 10], 64, 9),
        )],
    )
    .unwrap();
    assert_eq!(out[0].0, Verdict::Consume, "queued while resolving");
    let (port, request) = r
        .emitted()
        .next()
        .map(|(p, f)| (p, f.to_vec()))
        .expect("an ARP request");
    assert_eq!(port, 1);
    let req_eth = EthernetFrame::new_checked(&request[..]).unwrap();
    let req = ArpRepr::parse(&ArpPacket::new_checked(req_eth.payload()).unwrap()).unwrap();
    assert_eq!(
        req.target_protocol_addr,
        std::net::Ipv4Addr::new(10, 0, 2, 10)
    );

    // h2 answers; the queued frame goes out on the WAN port.
    let h2_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x20]);
    let answer = vnf_sdk::testing::frames::arp_frame(
        req.source_hardware_addr,
        ArpOperation::Reply,
        h2_mac,
        [10, 0, 2, 10].into(),
        req.source_hardware_addr,
        [10, 0, 2, 1].into(),
    );
    run_batch(&mut r, &[(1, answer)]).unwrap();
    let released: Vec<(u16, Vec<u8>)> = r.emitted().map(|(p, f)| (p, f.to_vec())).collect();
    assert_eq!(released.len(), 1, "the queued frame");
    assert_eq!(released[0].0, 1);

    // Now a batch of 32 is forwarded directly, TTL decremented, checksum valid.
    let frames: Vec<(u16, Vec<u8>)> = (0..32)
        .map(|_| {
            (
                0,
                udp_frame(router_lan_mac, [10, 0, 1, 10], [10, 0, 2, 10], 64, 9),
            )
        })
        .collect();
    let out = run_batch(&mut r, &frames).unwrap();
    assert_eq!(out.len(), 32);
    for (verdict, bytes) in out {
        assert_eq!(verdict, Verdict::Forward(1));
        let eth = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(eth.dst_addr(), h2_mac);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ip.ttl(), 63);
        assert!(ip.verify_checksum());
    }
}

#[test]
fn router_answers_ping_and_drops_ttl_1_with_time_exceeded() {
    let engine = engine();
    let mut r = router(&engine);
    run_batch(&mut r, &[(0, arp_request([10, 0, 1, 1]))]).unwrap();
    let reply = r.emitted().next().unwrap().1.to_vec();
    let mac = EthernetFrame::new_checked(&reply[..]).unwrap().src_addr();

    let out = run_batch(
        &mut r,
        &[(0, udp_frame(mac, [10, 0, 1, 10], [10, 0, 2, 10], 1, 9))],
    )
    .unwrap();
    assert_eq!(out[0].0, Verdict::Drop(DropReason::TtlExceeded));
    let (port, err) = r
        .emitted()
        .next()
        .map(|(p, f)| (p, f.to_vec()))
        .expect("an ICMP error");
    assert_eq!(port, 0);
    let eth = EthernetFrame::new_checked(&err[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.dst_addr(), std::net::Ipv4Addr::new(10, 0, 1, 10));
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(matches!(
        Icmpv4Repr::parse(&icmp).unwrap(),
        Icmpv4Repr::TimeExceeded { .. }
    ));
}

#[test]
fn router_refuses_bad_config_with_the_key_path() {
    let engine = engine();
    let err = instance(
        &engine,
        "vnf_router.wasm",
        &["lan", "wan"],
        serde_json::json!({ "interfaces": { "lan": "10.0.1.1/24", "wan": "300.0.0.1/24" } }),
    )
    .err()
    .expect("refused");
    match err {
        InstanceError::Config { path, message } => {
            assert!(path.starts_with("interfaces.wan"), "{path}: {message}");
        }
        other => panic!("expected a config error, got {other}"),
    }
}

#[test]
fn a_trapping_module_reports_the_trap_and_can_be_recreated() {
    let engine = engine();
    let config = serde_json::json!({ "trap_on_udp_port": 6666, "spin_on_udp_port": 6667 });
    let mut w = instance(&engine, "vnf_faulty.wasm", &["a", "b"], config.clone()).unwrap();
    let ok = udp_frame(
        EthernetAddress::BROADCAST,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        64,
        9,
    );
    assert_eq!(
        run_batch(&mut w, &[(0, ok.clone())]).unwrap()[0].0,
        Verdict::Forward(1)
    );

    let trap = udp_frame(
        EthernetAddress::BROADCAST,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        64,
        6666,
    );
    let failure = run_batch(&mut w, &[(0, ok.clone()), (0, trap)]).unwrap_err();
    assert!(
        matches!(
            failure,
            CallFailure::Trap {
                kind: "unreachable",
                ..
            }
        ),
        "{failure:?}"
    );

    let spin = udp_frame(
        EthernetAddress::BROADCAST,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        64,
        6667,
    );
    let mut w = instance(&engine, "vnf_faulty.wasm", &["a", "b"], config).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        run_batch(&mut w, &[(1, spin)]).unwrap_err(),
        CallFailure::Timeout
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the deadline interrupts the loop"
    );
}

#[test]
fn a_second_load_comes_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Some(dir.path().to_owned())).unwrap();
    let path = vnfs_built().join("vnf_faulty.wasm");
    let first = engine.load(&path).unwrap();
    let second = engine.load(&path).unwrap();
    assert!(!first.from_cache);
    assert!(second.from_cache);
    assert_eq!(first.digest, second.digest);
}
