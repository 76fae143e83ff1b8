//! A port's link deleted under a running worker (veth and TAP): the worker
//! does not spin on the dead descriptor, reports the port down, and keeps
//! forwarding on its other ports.

use std::time::Duration;

use crate::support::{have_root, processes_matching, run_ok, Chain};

/// CPU ticks (user + system) a process has used, from /proc/<pid>/stat.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Deletes `ifname` in node `node` of `chain` under its running router
/// `r1`, then checks the worker's CPU, `nfvhost_port_up` and forwarding on
/// the port that is left.
fn delete_link_under_r1(chain: &Chain, node: &str, ifname: &str) {
    let pids = processes_matching(&format!("/run/nfvhost/{}/r1.spec.json", chain.name));
    assert_eq!(pids.len(), 1, "{pids:?}");
    let pid = pids[0];
    let ns = format!("nfv-{}-{node}", chain.name);
    run_ok(std::process::Command::new("ip").args(["-n", &ns, "link", "del", ifname]));
    std::thread::sleep(Duration::from_millis(1500));
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap_or(100) as f64;
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = (cpu_ticks(pid) - before) as f64 / hz / 3.0;
    eprintln!(
        "{}: worker CPU with {node}:{ifname} deleted: {:.1} %",
        chain.name,
        used * 100.0
    );
    assert!(used < 0.05, "the worker spins: {:.1} % CPU", used * 100.0);
    let m = chain.metrics();
    let r1 = ("vnf", "r1");
    assert_eq!(m.get("nfvhost_port_up", &[r1, ("port", "wan")]), 0.0);
    assert_eq!(m.get("nfvhost_port_up", &[r1, ("port", "lan")]), 1.0);
    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.0.1.1"],
    );
    assert!(
        out.contains("3 received"),
        "the lan port still works: {out}"
    );
    assert_eq!(
        processes_matching(&format!("/run/nfvhost/{}/r1.spec.json", chain.name)),
        vec![pid],
        "the worker kept running"
    );
}

#[test]
#[ignore = "fails on main's worker loop: the veth port stays up (issue 15, port health not ported yet)"]
fn a_deleted_veth_under_a_worker_is_a_down_port_not_a_busy_loop() {
    if !have_root("a_deleted_veth_under_a_worker_is_a_down_port_not_a_busy_loop") {
        return;
    }
    let chain = Chain::deploy("chains/basic.yaml", "basic", "127.0.0.1:9464");
    chain.exec_ok(
        "h1",
        &["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.0.2.10"],
    );
    delete_link_under_r1(&chain, "h2", "eth0");
}

#[test]
#[ignore = "fails on main's worker loop: a deleted TAP spins the worker at ~25 % CPU (issue 15, port health not ported yet)"]
fn a_deleted_tap_under_a_worker_is_a_down_port_not_a_busy_loop() {
    if !have_root("a_deleted_tap_under_a_worker_is_a_down_port_not_a_busy_loop") {
        return;
    }
    let chain = Chain::deploy("tests/chains/tap.yaml", "tap", "127.0.0.1:9472");
    chain.exec_ok(
        "h1",
        &["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.0.2.10"],
    );
    delete_link_under_r1(&chain, "h2", "tap0");
}
