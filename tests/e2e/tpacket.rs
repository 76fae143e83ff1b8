//! `tests/chains/tpacket.yaml`: the router of chains/basic.yaml with its
//! veth ports on TPACKET_V3 receive rings (`datapath: { io: tpacket }`).

use crate::support::{have_root, iperf3_tcp_then_udp, processes_matching, Chain};

/// Ping, UDP and bulk TCP (with offload on: 64 KB super-frames through the
/// rings) cross a router whose ports are TPACKET rings, and its worker
/// really has the rings mapped.
#[test]
fn tpacket_router_forwards_ping_udp_and_tcp() {
    if !have_root("tpacket_router_forwards_ping_udp_and_tcp") {
        return;
    }
    let chain = Chain::deploy("tests/chains/tpacket.yaml", "tpacket", "127.0.0.1:9474");

    // The worker maps its sockets' rings: one mapping per port shows as
    // the socket in its maps.
    let mapped: usize = processes_matching("/run/nfvhost/tpacket/")
        .into_iter()
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/maps"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("socket:["))
                .count()
        })
        .sum();
    assert!(mapped >= 2, "the router's two rings are mapped ({mapped})");

    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.0.2.10"],
    );
    assert!(out.contains("5 received"), "{out}");
    let out = chain.exec_ok("h1", &["ping", "-c", "1", "-W", "2", "10.0.2.10"]);
    assert!(out.contains("ttl=63"), "one hop: {out}");

    let f = iperf3_tcp_then_udp(&chain, "h1", "h2", "10.0.2.10", 2);
    let (tcp_bps, lost) = (f.tcp_bps, f.udp_lost_percent);
    // Well above what segment-sized frames alone would give on this box.
    assert!(tcp_bps > 100e6, "TCP through the rings: {tcp_bps} b/s");
    assert!(f.udp_packets > 1000, "UDP datagrams: {}", f.udp_packets);
    assert!(lost < 5.0, "UDP loss through the rings at 20 Mb/s: {lost}%");

    let metrics = chain.metrics();
    let r1 = [("chain", "tpacket"), ("vnf", "r1")];
    assert_eq!(
        metrics.get("nfvhost_vnf_received_packets_total", &r1),
        metrics.sum("nfvhost_vnf_packets_total", &r1),
        "received = forwarded + consumed + dropped"
    );
    eprintln!(
        "iperf3 through a router on TPACKET_V3 rings: TCP {:.0} Mb/s, UDP 20 Mb/s with {lost:.2}% loss",
        tcp_bps / 1e6
    );
}
