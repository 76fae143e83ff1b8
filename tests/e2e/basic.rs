//! `chains/basic.yaml`: two test hosts joined by the router VNF.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{
    cgroup_dirs, have_root, iperf3_tcp_then_udp, namespaces_with_prefix, processes_matching,
    quiet_snapshot, run_ok, wait_for, Chain,
};

const METRICS: &str = "127.0.0.1:9464";

fn deploy() -> Chain {
    Chain::deploy("chains/basic.yaml", "basic", METRICS)
}

#[test]
fn ping_crosses_the_router() {
    if !have_root("ping_crosses_the_router") {
        return;
    }
    let chain = deploy();
    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.0.2.10"],
    );
    assert!(out.contains("5 received"), "{out}");
    // The router answers for its own address too.
    let out = chain.exec_ok(
        "h2",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.1"],
    );
    assert!(out.contains("2 received"), "{out}");
    // And h2's TTL shows one hop.
    let out = chain.exec_ok("h1", &["ping", "-c", "1", "-W", "2", "10.0.2.10"]);
    assert!(out.contains("ttl=63"), "{out}");
}

#[test]
fn iperf3_tcp_and_udp_cross_the_router() {
    if !have_root("iperf3_tcp_and_udp_cross_the_router") {
        return;
    }
    let chain = deploy();
    let f = iperf3_tcp_then_udp(&chain, "h1", "h2", "10.0.2.10", 2);
    let (tcp_bps, lost) = (f.tcp_bps, f.udp_lost_percent);
    assert!(tcp_bps > 1e6, "TCP through the router: {tcp_bps} b/s");
    assert!(
        f.tcp_retransmits < 10_000,
        "{} retransmits",
        f.tcp_retransmits
    );
    assert!(f.udp_packets > 1000, "UDP datagrams: {}", f.udp_packets);
    assert!(
        lost < 5.0,
        "UDP loss through the router at 20 Mb/s: {lost}%"
    );
    eprintln!(
        "iperf3 through one router VNF: TCP {:.0} Mb/s, UDP 20 Mb/s with {lost:.2}% loss",
        tcp_bps / 1e6
    );
}

#[test]
fn tcpdump_sees_frames_inside_the_vnf_namespace() {
    if !have_root("tcpdump_sees_frames_inside_the_vnf_namespace") {
        return;
    }
    let chain = deploy();
    let capture = chain
        .command(
            "r1",
            &[
                "timeout", "10", "tcpdump", "-i", "wan", "-n", "-c", "3", "-l", "icmp",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump needs a moment to attach; keep pinging until it has seen 3.
    std::thread::sleep(Duration::from_millis(700));
    chain.exec_ok("h1", &["ping", "-c", "6", "-i", "0.2", "10.0.2.10"]);
    let out = capture.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("10.0.1.10 > 10.0.2.10: ICMP echo request"),
        "{text}"
    );
}

#[test]
fn metrics_match_what_was_sent_and_conserve() {
    if !have_root("metrics_match_what_was_sent_and_conserve") {
        return;
    }
    let chain = deploy();
    // Warm up ARP on both sides, then measure deltas around a known load.
    chain.exec_ok("h1", &["ping", "-c", "2", "-i", "0.2", "10.0.2.10"]);
    let ifaces = [("h1", "eth0"), ("h2", "eth0")];
    let (before, k0) = quiet_snapshot(&chain, &ifaces);
    chain.exec_ok("h1", &["ping", "-c", "50", "-i", "0.01", "-q", "10.0.2.10"]);
    let (after, k1) = quiet_snapshot(&chain, &ifaces);
    let (h1_tx_before, h1_tx_after) = (k0[0].1, k1[0].1);
    let (h2_rx_before, h2_rx_after) = (k0[1].0, k1[1].0);

    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let lan = [("chain", "basic"), ("vnf", "r1"), ("port", "lan")];
    let wan = [("chain", "basic"), ("vnf", "r1"), ("port", "wan")];
    // What h1's kernel sent is what the router's LAN port received.
    assert_eq!(
        delta("nfvhost_port_rx_packets_total", &lan),
        h1_tx_after - h1_tx_before
    );
    // What the router's WAN port sent is what h2's kernel received.
    assert_eq!(
        delta("nfvhost_port_tx_packets_total", &wan),
        h2_rx_after - h2_rx_before
    );
    // 50 requests one way and 50 replies the other, at least.
    assert!(
        delta(
            "nfvhost_vnf_packets_total",
            &[("vnf", "r1"), ("verdict", "forward")]
        ) >= 100.0
    );

    // Conservation: received = forwarded + consumed + dropped, and drops add up by reason.
    let r1 = [("chain", "basic"), ("vnf", "r1")];
    let received = after.get("nfvhost_vnf_received_packets_total", &r1);
    let verdicts = after.sum("nfvhost_vnf_packets_total", &r1);
    assert_eq!(
        received, verdicts,
        "received = forwarded + consumed + dropped"
    );
    let dropped = after.get(
        "nfvhost_vnf_packets_total",
        &[("vnf", "r1"), ("verdict", "drop")],
    );
    assert_eq!(dropped, after.sum("nfvhost_vnf_drops_total", &r1));
    assert_eq!(after.get("nfvhost_vnf_restarts_total", &r1), 0.0);
    assert!(after.get("nfvhost_vnf_call_duration_seconds_count", &r1) > 0.0);
}

#[test]
fn destroy_removes_everything_and_is_idempotent() {
    if !have_root("destroy_removes_everything_and_is_idempotent") {
        return;
    }
    {
        let chain = deploy();
        assert_eq!(namespaces_with_prefix("nfv-basic-").len(), 3);
        assert!(!cgroup_dirs("basic").is_empty(), "a cgroup per VNF");
        assert!(
            !processes_matching("/run/nfvhost/basic/").is_empty(),
            "worker processes"
        );
        run_ok(crate::support::nfvhost().args(["destroy", "--chain", "basic"]));
        assert!(namespaces_with_prefix("nfv-basic-").is_empty());
        assert!(
            cgroup_dirs("basic").is_empty(),
            "{:?}",
            cgroup_dirs("basic")
        );
        assert!(processes_matching("/run/nfvhost/basic/").is_empty());
        // Only the logs are kept, until `destroy --cleanup`.
        let dir = std::path::Path::new("/run/nfvhost/basic");
        assert!(!dir.join("state.json").exists());
        assert!(dir.join("logs/r1.log").exists());
        run_ok(crate::support::nfvhost().args(["destroy", "--chain", "basic", "--cleanup"]));
        assert!(!dir.exists());
        assert!(!std::path::Path::new("/run/nfvhost/basic.lock").exists());
        drop(chain); // destroys again: must succeed on nothing
    }
    // Serialized with the other deploying tests: a destroy while another
    // test deploys `basic` now fails fast on the chain's lock, by design.
    let _serial = crate::support::deploy_lock();
    run_ok(crate::support::nfvhost().args(["destroy", "--cleanup", "--chain", "basic"]));
}

#[test]
fn destroy_cleans_up_after_the_supervisor_was_killed() {
    if !have_root("destroy_cleans_up_after_the_supervisor_was_killed") {
        return;
    }
    let chain = deploy();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read("/run/nfvhost/basic/state.json").unwrap()).unwrap();
    let pid = state["supervisor"]["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(5), || !std::path::Path::new(
        &format!("/proc/{pid}")
    )
    .exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")));
    run_ok(crate::support::nfvhost().args(["destroy", "--cleanup", "--chain", "basic"]));
    assert!(namespaces_with_prefix("nfv-basic-").is_empty());
    assert!(cgroup_dirs("basic").is_empty());
    assert!(wait_for(Duration::from_secs(5), || processes_matching(
        "/run/nfvhost/basic/"
    )
    .is_empty()));
    drop(chain);
}

#[test]
fn inspect_lists_every_node_as_json() {
    if !have_root("inspect_lists_every_node_as_json") {
        return;
    }
    let chain = deploy();
    let out = run_ok(crate::support::nfvhost().args(["inspect", "--chain", "basic", "-o", "json"]));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let r1 = rows.iter().find(|r| r["node"] == "r1").unwrap();
    assert_eq!(r1["status"], "running");
    assert!(r1["pid"].as_i64().unwrap() > 0);
    drop(chain);
}

#[test]
fn stats_reports_the_packet_rate() {
    if !have_root("stats_reports_the_packet_rate") {
        return;
    }
    let chain = deploy();
    let mut load = chain
        .command(
            "h1",
            &["ping", "-c", "400", "-i", "0.005", "-q", "10.0.2.10"],
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = run_ok(crate::support::nfvhost().args([
        "stats",
        "--chain",
        "basic",
        "--no-stream",
        "-o",
        "json",
    ]));
    let _ = load.wait();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r1 = &rows[0];
    assert_eq!(r1["vnf"], "r1");
    // About 200 requests and 200 replies per second cross the router.
    let rx = r1["rx_pps"].as_f64().unwrap();
    assert!(rx > 50.0, "rx_pps {rx}");
    // The hosts' own IPv6 chatter is dropped as unsupported; pings are not.
    let drops = r1["drops_per_second"].as_f64().unwrap();
    assert!(
        drops < rx / 10.0,
        "drops_per_second {drops} against rx_pps {rx}"
    );
    assert!(r1["module_memory_bytes"].as_u64().unwrap() > 0);
}
