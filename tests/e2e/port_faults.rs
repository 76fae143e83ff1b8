//! A port's link deleted under a running worker (veth and TAP): the worker
//! does not spin on the dead descriptor, reports the port down, drops what
//! is routed to it as `port_down`, and keeps forwarding between its other
//! two ports. A veth link created again under the same name is taken up
//! again without restarting the worker.

use std::process::Command;
use std::time::Duration;

use crate::support::{have_root, processes_matching, run_ok, wait_for, Chain, Metrics};

/// CPU ticks (user + system) a process has used, from /proc/<pid>/stat.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The worker's CPU share over `secs` seconds.
fn cpu_share(pid: i32, secs: u64) -> f64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap_or(100) as f64;
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(secs));
    (cpu_ticks(pid) - before) as f64 / hz / secs as f64
}

fn r1_pid(chain: &Chain) -> i32 {
    let pids = processes_matching(&format!("/run/nfvhost/{}/r1.spec.json", chain.name));
    assert_eq!(pids.len(), 1, "{pids:?}");
    pids[0]
}

fn port_up(m: &Metrics, port: &str) -> f64 {
    m.get("nfvhost_port_up", &[("vnf", "r1"), ("port", port)])
}

/// Every frame r1 received has a verdict: forward + consume + drop.
fn assert_conserved(m: &Metrics) {
    let r1 = ("vnf", "r1");
    let received = m.get("nfvhost_vnf_received_packets_total", &[r1]);
    let verdicts: f64 = ["forward", "consume", "drop"]
        .iter()
        .map(|v| m.get("nfvhost_vnf_packets_total", &[r1, ("verdict", v)]))
        .sum();
    assert_eq!(
        received, verdicts,
        "received = forwarded + consumed + dropped"
    );
    assert_eq!(
        m.get("nfvhost_vnf_packets_total", &[r1, ("verdict", "drop")]),
        m.sum("nfvhost_vnf_drops_total", &[r1]),
        "drops add up by reason"
    );
}

fn ping(chain: &Chain, node: &str, to: &str, count: u32) -> String {
    let count = count.to_string();
    String::from_utf8_lossy(
        &chain
            .exec(node, &["ping", "-c", &count, "-i", "0.2", "-W", "1", to])
            .stdout,
    )
    .into_owned()
}

/// The interfaces in namespace `ns`, with their MAC addresses.
fn links(ns: &str) -> Vec<(String, String)> {
    let out = run_ok(Command::new("ip").args(["-n", ns, "-o", "link", "show"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?;
            let name = name.split('@').next().unwrap_or(name).to_string();
            let mut words = l.split_whitespace();
            words.find(|w| *w == "link/ether")?;
            Some((name, words.next()?.to_string()))
        })
        .collect()
}

/// Deletes `ifname` in node h2 of `chain` (the far end of r1's `wan`)
/// under the running router and checks: the worker's CPU, the ports' `up`,
/// forwarding lan <-> dmz, frames to h2 dropped as `port_down`, and the
/// same worker still running. Returns r1's pid.
fn delete_wan_under_r1(chain: &Chain, ifname: &str) -> i32 {
    let pid = r1_pid(chain);
    for to in ["10.0.2.10", "10.0.3.10"] {
        let out = ping(chain, "h1", to, 2);
        assert!(out.contains("2 received"), "{to} before: {out}");
    }
    let m = chain.metrics();
    for port in ["lan", "wan", "dmz"] {
        assert_eq!(port_up(&m, port), 1.0, "{port} up before");
    }
    let h2 = format!("nfv-{}-h2", chain.name);
    run_ok(Command::new("ip").args(["-n", &h2, "link", "del", ifname]));
    assert!(
        wait_for(Duration::from_secs(3), || port_up(&chain.metrics(), "wan")
            == 0.0),
        "wan goes down within 3 s"
    );
    let used = cpu_share(pid, 3);
    eprintln!(
        "{}: worker CPU with h2:{ifname} deleted: {:.2} %",
        chain.name,
        used * 100.0
    );
    assert!(used < 0.05, "the worker spins: {:.1} % CPU", used * 100.0);
    let m = chain.metrics();
    assert_eq!(port_up(&m, "lan"), 1.0);
    assert_eq!(port_up(&m, "dmz"), 1.0);
    let out = ping(chain, "h1", "10.0.3.10", 5);
    assert!(
        out.contains("5 received"),
        "lan <-> dmz still forwards: {out}"
    );
    let out = ping(chain, "h3", "10.0.1.10", 5);
    assert!(
        out.contains("5 received"),
        "dmz <-> lan still forwards: {out}"
    );
    // r1 still knows h2's address: what it routes there is dropped, counted.
    let out = ping(chain, "h1", "10.0.2.10", 3);
    assert!(out.contains(" 0 received"), "nothing reaches h2: {out}");
    let m = chain.metrics();
    let port_down = m.get(
        "nfvhost_vnf_drops_total",
        &[("vnf", "r1"), ("reason", "port_down")],
    );
    eprintln!("{}: port_down drops: {port_down}", chain.name);
    assert!(port_down >= 1.0, "frames to the dead port are counted");
    assert_conserved(&m);
    assert_eq!(r1_pid(chain), pid, "the worker kept running");
    assert_eq!(
        m.get("nfvhost_vnf_restarts_total", &[("vnf", "r1")]),
        0.0,
        "no restart"
    );
    pid
}

#[test]
fn a_deleted_veth_under_a_worker_is_a_down_port_not_a_busy_loop() {
    if !have_root("a_deleted_veth_under_a_worker_is_a_down_port_not_a_busy_loop") {
        return;
    }
    let chain = Chain::deploy(
        "tests/chains/three-port.yaml",
        "threeport",
        "127.0.0.1:9476",
    );
    let r1 = format!("nfv-{}-r1", chain.name);
    let h2 = format!("nfv-{}-h2", chain.name);
    let before = links(&r1);
    let h2_eth0 = links(&h2).into_iter().find(|(n, _)| n == "eth0").unwrap();
    let pid = delete_wan_under_r1(&chain, "eth0");
    let after = links(&r1);
    let wan: Vec<&(String, String)> = before.iter().filter(|l| !after.contains(l)).collect();
    assert_eq!(
        wan.len(),
        1,
        "one link went from r1: {before:?} -> {after:?}"
    );
    let (wan, wan_mac) = wan[0].clone();

    // The link comes back under the same name (a new ifindex): the worker
    // rebinds its socket within a couple of seconds, no restart. Same MAC
    // addresses as before, so neither r1 nor h2 has a stale neighbour.
    run_ok(Command::new("ip").args([
        "-n", &r1, "link", "add", &wan, "address", &wan_mac, "type", "veth", "peer", "name",
        "eth0", "address", &h2_eth0.1, "netns", &h2,
    ]));
    run_ok(Command::new("ip").args(["-n", &h2, "addr", "add", "10.0.2.10/24", "dev", "eth0"]));
    run_ok(Command::new("ip").args(["-n", &h2, "link", "set", "eth0", "up"]));
    run_ok(Command::new("ip").args(["-n", &h2, "route", "add", "default", "via", "10.0.2.1"]));
    run_ok(Command::new("ip").args(["-n", &r1, "link", "set", &wan, "up"]));
    let started = std::time::Instant::now();
    assert!(
        wait_for(Duration::from_secs(5), || port_up(&chain.metrics(), "wan")
            == 1.0),
        "wan comes back up"
    );
    eprintln!(
        "{}: wan up again {} ms after the link was re-created",
        chain.name,
        started.elapsed().as_millis()
    );
    let out = ping(&chain, "h1", "10.0.2.10", 5);
    assert!(
        out.contains("5 received"),
        "lan <-> wan forwards again: {out}"
    );
    assert_eq!(r1_pid(&chain), pid, "the same worker");
    assert_conserved(&chain.metrics());
}

#[test]
fn a_deleted_tap_under_a_worker_is_a_down_port_not_a_busy_loop() {
    if !have_root("a_deleted_tap_under_a_worker_is_a_down_port_not_a_busy_loop") {
        return;
    }
    let chain = Chain::deploy("tests/chains/three-tap.yaml", "threetap", "127.0.0.1:9477");
    delete_wan_under_r1(&chain, "tap0");
    // A TAP descriptor whose device is gone cannot be reattached inside
    // the sandbox: the port stays down, and the worker stays idle.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(port_up(&chain.metrics(), "wan"), 0.0);
}
