//! `chains/edge.yaml` with real programs: dhclient and udhcpc leases from
//! the DHCP VNF, LAN→WAN through firewall, router and NAT, the port
//! forward, the firewall's refusals, traceroute, and counters that add up.
//! Every test runs twice: on `chains/edge.yaml` (a worker per VNF, module
//! `plain`) and on `chains/edge-fused.yaml` (the four VNFs fused into one
//! group, module `fused`), which must behave the same.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{have_root, quiet_snapshot, root, wait_for, Chain, Metrics};

const METRICS: &str = "127.0.0.1:9464";
const VNFS: [&str; 4] = ["dhcp", "fw", "r1", "nat"];

/// A variant of the edge chain: its file and its name.
#[derive(Clone, Copy)]
struct Edge {
    file: &'static str,
    chain: &'static str,
    /// The VNFs run in one fused group (their links are in memory).
    fused: bool,
}

const PLAIN: Edge = Edge {
    file: "chains/edge.yaml",
    chain: "edge",
    fused: false,
};

const FUSED: Edge = Edge {
    file: "chains/edge-fused.yaml",
    chain: "edgef",
    fused: true,
};

/// Each test once per variant: `plain::name` and `fused::name`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod plain {
            $( #[test] fn $name() { super::$name(super::PLAIN) } )*
        }
        mod fused {
            $( #[test] fn $name() { super::$name(super::FUSED) } )*
        }
    };
}

on_both!(
    dhclient_gets_a_lease_with_the_options_and_renews,
    udhcpc_gets_a_lease_with_the_options_and_renews,
    lan_reaches_wan_and_the_wan_sees_the_nat_address,
    unsolicited_wan_traffic_fails_but_the_port_forward_works,
    the_blocked_outbound_port_fails_and_others_work,
    tracepath_shows_the_router_and_nat_hops,
    counters_conserve_and_agree_with_the_kernel,
    destroy_removes_every_namespace_cgroup_and_dhcp_client,
);

fn deploy(e: Edge) -> Chain {
    Chain::deploy(e.file, e.chain, METRICS)
}

/// The edge chain with a 16 s lease, so renewals happen within a test.
fn deploy_short_lease(e: Edge, dir: &tempfile::TempDir) -> Chain {
    let text = std::fs::read_to_string(root().join(e.file))
        .unwrap()
        .replace("lease_time: 600", "lease_time: 16");
    assert!(text.contains("lease_time: 16"));
    let path: PathBuf = dir.path().join(format!("{}.yaml", e.chain));
    std::fs::write(&path, text).unwrap();
    Chain::deploy(path.to_str().unwrap(), e.chain, METRICS)
}

/// A one-shot TCP server in a node: prints the peer's address, answers "hi".
fn tcp_server(chain: &Chain, node: &str, addr: &str, port: u16) -> std::process::Child {
    let code = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('{addr}',{port}))\ns.listen(1)\ns.settimeout(10)\nc,a=s.accept()\nprint(a[0],flush=True)\nc.sendall(b'hi')\nc.close()\n"
    );
    let child = chain
        .command(node, &["python3", "-c", &code])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(5), || {
        String::from_utf8_lossy(&chain.exec(node, &["ss", "-ltn"]).stdout)
            .contains(&format!("{addr}:{port}"))
    }));
    child
}

/// Connects from a node; returns what the server sent, or None.
fn tcp_connect(chain: &Chain, node: &str, addr: &str, port: u16) -> Option<String> {
    let code = format!("import socket\ns=socket.create_connection(('{addr}',{port}),3)\nprint(s.recv(10).decode())\n");
    let out = chain.exec(node, &["python3", "-c", &code]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn module_counter(m: &Metrics, chain: &str, vnf: &str, name: &str) -> f64 {
    m.get(
        "nfvhost_module_events_total",
        &[("chain", chain), ("vnf", vnf), ("name", name)],
    )
}

/// Waits until a module counter reaches `at_least`; module counters are
/// published on the worker's 100 ms tick.
fn module_counter_reaches(chain: &Chain, vnf: &str, name: &str, at_least: f64) -> bool {
    wait_for(Duration::from_secs(3), || {
        module_counter(&chain.metrics(), &chain.name, vnf, name) >= at_least
    })
}

fn dhclient_gets_a_lease_with_the_options_and_renews(e: Edge) {
    if !have_root("dhclient_gets_a_lease_with_the_options_and_renews") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let chain = deploy_short_lease(e, &dir);
    // deploy ran dhclient with a private script; the reservation applies.
    let addr = chain.exec_ok("lan", &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains("192.168.1.50/24"), "{addr}");
    let route = chain.exec_ok("lan", &["ip", "-4", "route", "show", "default"]);
    assert!(route.contains("via 192.168.1.1"), "{route}");
    let resolv =
        std::fs::read_to_string(format!("/run/nfvhost/{}/lan-resolv.conf", e.chain)).unwrap();
    assert_eq!(resolv.trim(), "nameserver 192.168.1.1");
    // T1 is half of 16 s: dhclient renews by unicast to the server.
    let bound = PathBuf::from(format!("/run/nfvhost/{}/lan-eth0.bound", e.chain));
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::read_to_string(&bound)
            .unwrap_or_default()
            .contains("RENEW")),
        "no renewal: {}",
        std::fs::read_to_string(&bound).unwrap_or_default()
    );
    assert!(
        module_counter_reaches(&chain, "dhcp", "acks", 2.0),
        "initial ACK and the renewal's"
    );
    assert_eq!(
        chain.metrics().get(
            "nfvhost_module_value",
            &[("vnf", "dhcp"), ("name", "leases_active")]
        ),
        1.0
    );
    // The machine's own resolver configuration is untouched by design:
    // the script writes only under /run/nfvhost/<chain>.
}

fn udhcpc_gets_a_lease_with_the_options_and_renews(e: Edge) {
    if !have_root("udhcpc_gets_a_lease_with_the_options_and_renews") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let chain = deploy_short_lease(e, &dir);
    // udhcpc's script only records what it was told; it configures nothing.
    let log = dir.path().join("udhcpc.log");
    let script = dir.path().join("udhcpc.script");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1 ip=$ip subnet=$subnet router=$router dns=$dns domain=$domain serverid=$serverid lease=$lease\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut client = chain
        .command(
            "lan",
            &[
                "busybox",
                "udhcpc",
                "-f",
                "-i",
                "eth0",
                "-s",
                script.to_str().unwrap(),
                "-t",
                "5",
                "-T",
                "1",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let bound = wait_for(Duration::from_secs(15), || read().contains("bound"));
    let renewed = bound && {
        // SIGUSR1 makes udhcpc renew now.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(client.id() as i32),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .unwrap();
        wait_for(Duration::from_secs(10), || read().contains("renew"))
    };
    let _ = client.kill();
    let _ = client.wait();
    let text = read();
    assert!(bound, "udhcpc got no lease: {text}");
    let line = text.lines().find(|l| l.starts_with("bound")).unwrap();
    for expect in [
        "ip=192.168.1.50",
        "subnet=255.255.255.0",
        "router=192.168.1.1",
        "dns=192.168.1.1",
        "domain=edge.test",
        "serverid=192.168.1.2",
        "lease=16",
    ] {
        assert!(line.contains(expect), "{expect} missing from {line}");
    }
    assert!(renewed, "udhcpc did not renew: {text}");
}

fn lan_reaches_wan_and_the_wan_sees_the_nat_address(e: Edge) {
    if !have_root("lan_reaches_wan_and_the_wan_sees_the_nat_address") {
        return;
    }
    let chain = deploy(e);
    let out = chain.exec_ok(
        "lan",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "203.0.113.10"],
    );
    assert!(out.contains("3 received"), "{out}");

    let server = tcp_server(&chain, "wan", "203.0.113.10", 7000);
    assert_eq!(
        tcp_connect(&chain, "lan", "203.0.113.10", 7000).as_deref(),
        Some("hi")
    );
    let seen = server.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&seen.stdout).trim(),
        "203.0.113.1",
        "the WAN host sees the NAT's address"
    );

    let mut iperf = chain
        .command("wan", &["iperf3", "-s", "-B", "203.0.113.10", "-p", "5201"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(5), || {
        String::from_utf8_lossy(&chain.exec("wan", &["ss", "-ltn"]).stdout).contains(":5201")
    }));
    let tcp: serde_json::Value = serde_json::from_str(
        &chain.exec_ok("lan", &["iperf3", "-c", "203.0.113.10", "-t", "2", "-J"]),
    )
    .unwrap();
    let bps = tcp["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap();
    assert!(bps > 1e6, "TCP through the edge chain: {bps}");
    let udp: serde_json::Value = serde_json::from_str(&chain.exec_ok(
        "lan",
        &[
            "iperf3",
            "-c",
            "203.0.113.10",
            "-u",
            "-b",
            "20M",
            "-t",
            "2",
            "-J",
        ],
    ))
    .unwrap();
    let lost = udp["end"]["sum"]["lost_percent"].as_f64().unwrap();
    assert!(lost < 5.0, "UDP loss through the edge chain: {lost}%");
    let _ = iperf.kill();
    let _ = iperf.wait();
    eprintln!(
        "edge chain: TCP {:.0} Mb/s, UDP 20 Mb/s with {lost:.2}% loss",
        bps / 1e6
    );
}

fn unsolicited_wan_traffic_fails_but_the_port_forward_works(e: Edge) {
    if !have_root("unsolicited_wan_traffic_fails_but_the_port_forward_works") {
        return;
    }
    let chain = deploy(e);
    // A server on the LAN host, and a WAN host that even knows the route.
    let server = tcp_server(&chain, "lan", "0.0.0.0", 80);
    chain.exec_ok(
        "wan",
        &["ip", "route", "add", "192.168.1.0/24", "via", "203.0.113.1"],
    );
    assert_eq!(
        tcp_connect(&chain, "wan", "192.168.1.50", 80),
        None,
        "no direct way in"
    );
    assert_eq!(
        tcp_connect(&chain, "wan", "203.0.113.1", 9999),
        None,
        "no unforwarded port"
    );
    assert_eq!(
        tcp_connect(&chain, "wan", "203.0.113.1", 8080).as_deref(),
        Some("hi"),
        "the port forward reaches lan:80"
    );
    let seen = server.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&seen.stdout).trim(),
        "203.0.113.10",
        "the LAN server sees the real client"
    );
    assert!(module_counter_reaches(&chain, "nat", "dnat_hits", 1.0));
}

fn the_blocked_outbound_port_fails_and_others_work(e: Edge) {
    if !have_root("the_blocked_outbound_port_fails_and_others_work") {
        return;
    }
    let chain = deploy(e);
    let smtp = tcp_server(&chain, "wan", "203.0.113.10", 25);
    assert_eq!(
        tcp_connect(&chain, "lan", "203.0.113.10", 25),
        None,
        "port 25 outbound is blocked"
    );
    assert!(
        module_counter_reaches(&chain, "fw", "rejected", 1.0),
        "rejected with a RST"
    );
    let mut smtp = smtp;
    let _ = smtp.kill();
    let _ = smtp.wait();
    let other = tcp_server(&chain, "wan", "203.0.113.10", 26);
    assert_eq!(
        tcp_connect(&chain, "lan", "203.0.113.10", 26).as_deref(),
        Some("hi"),
        "port 26 is allowed"
    );
    let _ = other.wait_with_output();
}

fn tracepath_shows_the_router_and_nat_hops(e: Edge) {
    if !have_root("tracepath_shows_the_router_and_nat_hops") {
        return;
    }
    let chain = deploy(e);
    let out = chain.exec_ok("lan", &["tracepath", "-n", "-m", "5", "203.0.113.10"]);
    let hop = |n: &str, addr: &str| {
        out.lines()
            .any(|l| l.trim_start().starts_with(&format!("{n}:")) && l.contains(addr))
    };
    assert!(hop("1", "192.168.1.1"), "the router is hop 1: {out}");
    assert!(hop("2", "10.255.0.2"), "the NAT is hop 2: {out}");
    assert!(out.contains("reached"), "{out}");
}

fn counters_conserve_and_agree_with_the_kernel(e: Edge) {
    if !have_root("counters_conserve_and_agree_with_the_kernel") {
        return;
    }
    let chain = deploy(e);
    chain.exec_ok("lan", &["ping", "-c", "2", "-i", "0.2", "203.0.113.10"]);
    std::thread::sleep(Duration::from_millis(300));
    // Every port with an interface against the kernel's counters of the
    // same interface, as deltas around a known load. In the fused chain
    // only the ports to the test hosts have one; an in-memory link must
    // then deliver at one end exactly what the other end sent.
    let all: [(&str, &str); 8] = [
        ("dhcp", "lan"),
        ("dhcp", "up"),
        ("fw", "inside"),
        ("fw", "outside"),
        ("r1", "lan"),
        ("r1", "wan"),
        ("nat", "inside"),
        ("nat", "outside"),
    ];
    let ports: Vec<(&str, &str)> = if e.fused {
        vec![all[0], all[7]]
    } else {
        all.to_vec()
    };
    let (before, before_k) = quiet_snapshot(&chain, &ports);
    chain.exec_ok(
        "lan",
        &["ping", "-c", "100", "-i", "0.005", "-q", "203.0.113.10"],
    );
    let (after, after_k) = quiet_snapshot(&chain, &ports);
    let delta = |name: &str, vnf: &str, port: &str| {
        let l = [("chain", e.chain), ("vnf", vnf), ("port", port)];
        after.get(name, &l) - before.get(name, &l)
    };
    for (i, (vnf, port)) in ports.iter().enumerate() {
        let rx = delta("nfvhost_port_rx_packets_total", vnf, port);
        let tx = delta("nfvhost_port_tx_packets_total", vnf, port);
        assert_eq!(
            rx,
            after_k[i].0 - before_k[i].0,
            "{vnf}:{port} received, nfvhost vs kernel"
        );
        assert_eq!(
            tx,
            after_k[i].1 - before_k[i].1,
            "{vnf}:{port} sent, nfvhost vs kernel"
        );
    }
    for (vnf, port) in all {
        let rx = delta("nfvhost_port_rx_packets_total", vnf, port);
        assert!(rx >= 100.0, "{vnf}:{port} saw the pings: {rx}");
    }
    // The links between the VNFs, end to end (the chain's order).
    for pair in all[1..7].chunks(2) {
        let ((a, ap), (b, bp)) = (pair[0], pair[1]);
        assert_eq!(
            delta("nfvhost_port_tx_packets_total", a, ap),
            delta("nfvhost_port_rx_packets_total", b, bp),
            "{a}:{ap} -> {b}:{bp}"
        );
        assert_eq!(
            delta("nfvhost_port_tx_packets_total", b, bp),
            delta("nfvhost_port_rx_packets_total", a, ap),
            "{b}:{bp} -> {a}:{ap}"
        );
    }
    for vnf in VNFS {
        let l = [("chain", e.chain), ("vnf", vnf)];
        let received = after.get("nfvhost_vnf_received_packets_total", &l);
        assert_eq!(
            received,
            after.sum("nfvhost_vnf_packets_total", &l),
            "{vnf}: received = forwarded + consumed + dropped"
        );
        let dropped = after.get(
            "nfvhost_vnf_packets_total",
            &[("vnf", vnf), ("verdict", "drop")],
        );
        assert_eq!(
            dropped,
            after.sum("nfvhost_vnf_drops_total", &l),
            "{vnf}: drops add up by reason"
        );
        assert_eq!(
            after.get("nfvhost_vnf_restarts_total", &l),
            0.0,
            "{vnf} never restarted"
        );
    }
}

fn destroy_removes_every_namespace_cgroup_and_dhcp_client(e: Edge) {
    if !have_root("destroy_removes_every_namespace_cgroup_and_dhcp_client") {
        return;
    }
    let chain = deploy(e);
    let prefix = format!("nfv-{}-", e.chain);
    let run_dir = format!("/run/nfvhost/{}/", e.chain);
    // Two test hosts, and a namespace per VNF or one for the group.
    let expected = if e.fused { 3 } else { 6 };
    assert_eq!(
        crate::support::namespaces_with_prefix(&prefix).len(),
        expected
    );
    assert!(
        !crate::support::processes_matching(&run_dir).is_empty(),
        "workers and dhclient run"
    );
    crate::support::run_ok(crate::support::nfvhost().args(["destroy", "--cleanup", e.file]));
    assert!(crate::support::namespaces_with_prefix(&prefix).is_empty());
    // The VNF (or group) cgroups under one chain directory: all of it goes.
    assert!(
        crate::support::cgroup_dirs(e.chain).is_empty(),
        "{:?}",
        crate::support::cgroup_dirs(e.chain)
    );
    assert!(
        crate::support::processes_matching(&run_dir).is_empty(),
        "dhclient too"
    );
    drop(chain);
}
