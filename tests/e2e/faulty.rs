//! A module that traps or loops forever is contained: the worker survives,
//! the chain keeps forwarding, and the drops are counted.

use std::time::Duration;

use crate::support::{have_root, wait_for, Chain};

fn send_udp(chain: &Chain, port: u16) {
    // bash's /dev/udp sends one datagram from h1 to h2.
    chain.exec_ok(
        "h1",
        &[
            "bash",
            "-c",
            &format!("echo boom > /dev/udp/10.0.9.2/{port}"),
        ],
    );
}

#[test]
fn traps_and_timeouts_drop_the_batch_and_the_chain_keeps_running() {
    if !have_root("traps_and_timeouts_drop_the_batch_and_the_chain_keeps_running") {
        return;
    }
    let chain = Chain::deploy("tests/chains/faulty.yaml", "faulty", "127.0.0.1:9471");
    let w1 = [("chain", "faulty"), ("vnf", "w1")];
    chain.exec_ok(
        "h1",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.9.2"],
    );

    send_udp(&chain, 6666);
    assert!(
        wait_for(Duration::from_secs(5), || chain.metrics().get(
            "nfvhost_vnf_drops_total",
            &[("vnf", "w1"), ("reason", "trap")]
        ) >= 1.0),
        "the trap is counted"
    );
    let m = chain.metrics();
    assert!(
        m.get(
            "nfvhost_vnf_traps_total",
            &[("vnf", "w1"), ("kind", "unreachable")]
        ) >= 1.0
    );
    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.9.2"],
    );
    assert!(
        out.contains("3 received"),
        "still forwarding after a trap: {out}"
    );

    send_udp(&chain, 6667);
    assert!(
        wait_for(Duration::from_secs(5), || chain.metrics().get(
            "nfvhost_vnf_drops_total",
            &[("vnf", "w1"), ("reason", "timeout")]
        ) >= 1.0),
        "the interrupted call is counted"
    );
    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.9.2"],
    );
    assert!(
        out.contains("3 received"),
        "still forwarding after a runaway call: {out}"
    );

    let m = chain.metrics();
    assert_eq!(
        m.get("nfvhost_vnf_restarts_total", &w1),
        0.0,
        "the worker never died"
    );
    assert_eq!(
        m.get("nfvhost_vnf_received_packets_total", &w1),
        m.sum("nfvhost_vnf_packets_total", &w1)
    );
    let log =
        crate::support::run_ok(crate::support::nfvhost().args(["logs", "--chain", "faulty", "w1"]));
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("trapped"),
        "the trap is logged"
    );
}

#[test]
fn a_killed_worker_is_restarted() {
    if !have_root("a_killed_worker_is_restarted") {
        return;
    }
    let chain = Chain::deploy("tests/chains/faulty.yaml", "faulty", "127.0.0.1:9471");
    let pids = crate::support::processes_matching("/run/nfvhost/faulty/w1.spec.json");
    assert_eq!(pids.len(), 1, "{pids:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(10), || chain
        .metrics()
        .get("nfvhost_vnf_restarts_total", &[("vnf", "w1")])
        >= 1.0));
    assert!(wait_for(Duration::from_secs(10), || chain
        .exec("h1", &["ping", "-c", "1", "-W", "1", "10.0.9.2"])
        .status
        .success()));
}
