//! Deploy modes and failure paths: TAP links, the foreground mode and its
//! Ctrl-C teardown, and a deploy that fails half-way.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{
    cgroup_dirs, have_root, namespaces_with_prefix, nfvhost, processes_matching, vnfs_built,
    wait_for, Chain,
};

#[test]
fn a_tap_link_carries_traffic() {
    if !have_root("a_tap_link_carries_traffic") {
        return;
    }
    let chain = Chain::deploy("tests/chains/tap.yaml", "tap", "127.0.0.1:9472");
    let out = chain.exec_ok(
        "h1",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.10"],
    );
    assert!(out.contains("3 received"), "{out}");
    let link = chain.exec_ok("h2", &["ip", "-d", "link", "show", "tap0"]);
    assert!(
        link.contains("tun type tap"),
        "h2's interface is a TAP device: {link}"
    );
    let m = chain.metrics();
    assert!(
        m.get(
            "nfvhost_port_tx_packets_total",
            &[("vnf", "r1"), ("port", "wan")]
        ) >= 3.0
    );
}

#[test]
fn foreground_deploy_tears_down_on_ctrl_c() {
    if !have_root("foreground_deploy_tears_down_on_ctrl_c") {
        return;
    }
    vnfs_built();
    let _lock = crate::support::deploy_lock();
    let _ = nfvhost()
        .args(["destroy", "--cleanup", "--chain", "faulty"])
        .output();
    let mut child = nfvhost()
        .args(["deploy", "--foreground", "tests/chains/faulty.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = wait_for(Duration::from_secs(30), || {
        std::path::Path::new("/run/nfvhost/faulty/ready").exists()
    });
    if !ready {
        let _ = child.kill();
        panic!(
            "the foreground chain never became ready: {:?}",
            child.wait_with_output().unwrap()
        );
    }
    assert_eq!(namespaces_with_prefix("nfv-faulty-").len(), 3);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(namespaces_with_prefix("nfv-faulty-").is_empty());
    assert!(cgroup_dirs("faulty").is_empty());
    assert!(processes_matching("/run/nfvhost/faulty/").is_empty());
    assert!(!std::path::Path::new("/run/nfvhost/faulty.lock").exists());
}

#[test]
fn a_failed_deploy_leaves_nothing_behind() {
    if !have_root("a_failed_deploy_leaves_nothing_behind") {
        return;
    }
    vnfs_built();
    let _lock = crate::support::deploy_lock();
    let _ = nfvhost()
        .args(["destroy", "--cleanup", "--chain", "faulty"])
        .output();
    // Occupy the chain's metrics address: the supervisor cannot start.
    let blocker = std::net::TcpListener::bind("127.0.0.1:9471").unwrap();
    let out = nfvhost()
        .args(["deploy", "tests/chains/faulty.yaml"])
        .output()
        .unwrap();
    drop(blocker);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("127.0.0.1:9471"),
        "says what failed: {stderr}"
    );
    assert!(namespaces_with_prefix("nfv-faulty-").is_empty());
    assert!(cgroup_dirs("faulty").is_empty());
    assert!(processes_matching("/run/nfvhost/faulty/").is_empty());
    assert!(!std::path::Path::new("/run/nfvhost/faulty.lock").exists());
    // Only the logs of the attempt are kept, for `nfvhost logs`, until
    // `destroy --cleanup`.
    let dir = std::path::Path::new("/run/nfvhost/faulty");
    if dir.exists() {
        let mut left: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let logs = [".nfvhost-chain", "logs", "supervisor.log"];
        assert!(
            left.iter().all(|f| logs.contains(&f.as_str())),
            "a failed deploy left more than its logs: {left:?}"
        );
    }
    crate::support::run_ok(nfvhost().args(["destroy", "--chain", "faulty", "--cleanup"]));
    assert!(!dir.exists());
}

#[test]
fn replace_swaps_a_running_module_after_checking_its_config() {
    if !have_root("replace_swaps_a_running_module_after_checking_its_config") {
        return;
    }
    let chain = Chain::deploy("tests/chains/faulty.yaml", "faulty", "127.0.0.1:9471");
    // The router does not accept the wire's configuration: refused, nothing changes.
    let out = nfvhost()
        .args(["replace", "--chain", "faulty", "w1", "router"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("trap_on_udp_port") || stderr.contains("unknown field"),
        "{stderr}"
    );
    assert_eq!(
        chain
            .metrics()
            .get("nfvhost_vnf_restarts_total", &[("vnf", "w1")]),
        0.0
    );

    let wasm = vnfs_built().join("vnf_faulty.wasm");
    crate::support::run_ok(
        nfvhost()
            .args(["replace", "--chain", "faulty", "w1"])
            .arg(&wasm),
    );
    // The worker switched in place: a replace is not a restart.
    assert_eq!(
        chain
            .metrics()
            .get("nfvhost_vnf_restarts_total", &[("vnf", "w1")]),
        0.0
    );
    assert!(wait_for(Duration::from_secs(10), || chain
        .exec("h1", &["ping", "-c", "1", "-W", "1", "10.0.9.2"])
        .status
        .success()));
    assert_eq!(chain.metrics().get("nfvhost_vnf_up", &[("vnf", "w1")]), 1.0);
}
