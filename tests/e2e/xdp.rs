//! `datapath: { io: xdp }`: the router's veth ports on AF_XDP sockets fed
//! by an XDP program (tests/chains/xdp.yaml). Ping, UDP and bulk TCP cross
//! it, the program sits on exactly the VNF's ends, and destroy leaves no
//! program behind (the kernel no longer knows the ids that were attached).

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::{have_root, iperf3_tcp_then_udp, processes_matching, wait_for, Chain};

/// The ids of the XDP programs attached to the interfaces of `node`, from
/// `ip -d link show` (`prog/xdp id N ...`), by interface.
pub(crate) fn xdp_programs(chain: &Chain, node: &str) -> Vec<(String, u32)> {
    let out = chain.exec_ok(node, &["ip", "-d", "link", "show"]);
    let mut found = Vec::new();
    let mut ifname = String::new();
    for line in out.lines() {
        if !line.starts_with(' ') {
            // "5: lan@if4: <...> mtu 1500 xdp qdisc ..."
            ifname = line
                .split(": ")
                .nth(1)
                .and_then(|n| n.split('@').next())
                .unwrap_or_default()
                .to_owned();
        }
        if let Some(rest) = line.trim().strip_prefix("prog/xdp id ") {
            let id = rest.split_whitespace().next().unwrap().parse().unwrap();
            found.push((ifname.clone(), id));
        }
    }
    found
}

#[test]
fn io_xdp_router_forwards_ping_udp_and_tcp_and_destroy_removes_its_programs() {
    if !have_root("io_xdp_router_forwards_ping_udp_and_tcp_and_destroy_removes_its_programs") {
        return;
    }
    let chain = Chain::deploy("tests/chains/xdp.yaml", "xdp", "127.0.0.1:9491");

    // One program on each of the router's veth ends, none on the hosts'.
    let programs = xdp_programs(&chain, "r1");
    let mut ports: Vec<&str> = programs.iter().map(|(i, _)| i.as_str()).collect();
    ports.sort();
    assert_eq!(ports, ["lan", "wan"], "{programs:?}");
    for (_, id) in &programs {
        assert!(
            nfvhost::datapath::port::xdp::program_exists(*id).unwrap(),
            "program {id} is known to the kernel while the chain runs"
        );
    }
    assert!(xdp_programs(&chain, "h1").is_empty());
    assert!(xdp_programs(&chain, "h2").is_empty());

    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.0.2.10"],
    );
    assert!(out.contains("5 received"), "{out}");
    let out = chain.exec_ok("h1", &["ping", "-c", "1", "-W", "2", "10.0.2.10"]);
    assert!(out.contains("ttl=63"), "routed, one hop: {out}");
    // Full-size frames both ways (1472 + 28 = the MTU).
    let out = chain.exec_ok(
        "h2",
        &[
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "-s",
            "1472",
            "-M",
            "do",
            "10.0.1.10",
        ],
    );
    assert!(out.contains("3 received"), "{out}");

    let f = iperf3_tcp_then_udp(&chain, "h1", "h2", "10.0.2.10", 3);
    let (tcp_bps, lost) = (f.tcp_bps, f.udp_lost_percent);
    assert!(
        tcp_bps > 50e6,
        "bulk TCP through the xdp router: {tcp_bps} b/s"
    );
    assert!(f.udp_packets > 1000, "UDP datagrams: {}", f.udp_packets);
    assert!(
        lost < 5.0,
        "UDP loss through the xdp router at 20 Mb/s: {lost}%"
    );

    // The worker's packet counters saw the traffic (it went through the
    // XSKs, not around them through the kernel).
    let m = chain.metrics();
    let rx = m.sum("nfvhost_port_rx_packets_total", &[("vnf", "r1")]);
    assert!(rx > 10_000.0, "r1 received {rx} frames");
    eprintln!(
        "io: xdp router: TCP {:.0} Mb/s, UDP 20 Mb/s with {lost:.2}% loss",
        tcp_bps / 1e6
    );

    // A worker killed outright (SIGKILL: no clean-up of its own) takes its
    // programs with it; the supervisor's new worker attaches fresh ones
    // (binding the queue the old socket just released) and forwards.
    let worker = processes_matching("/run/nfvhost/xdp/r1.spec.json");
    assert_eq!(worker.len(), 1, "{worker:?}");
    kill(Pid::from_raw(worker[0]), Signal::SIGKILL).unwrap();
    for (ifname, id) in &programs {
        assert!(
            wait_for(Duration::from_secs(5), || {
                !nfvhost::datapath::port::xdp::program_exists(*id).unwrap()
            }),
            "the program of r1:{ifname} (id {id}) is gone with the killed worker"
        );
    }
    let mut programs = Vec::new();
    assert!(
        wait_for(Duration::from_secs(15), || {
            programs = xdp_programs(&chain, "r1");
            programs.len() == 2
        }),
        "the new worker attached its programs: {programs:?}"
    );
    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.10"],
    );
    assert!(out.contains("3 received"), "after the restart: {out}");

    drop(chain);
    // The worker's exit closes the links (freed in the kernel's deferred
    // work): give it a moment.
    for (ifname, id) in &programs {
        assert!(
            wait_for(Duration::from_secs(5), || {
                !nfvhost::datapath::port::xdp::program_exists(*id).unwrap()
            }),
            "the program of r1:{ifname} (id {id}) is gone after destroy"
        );
    }
}
