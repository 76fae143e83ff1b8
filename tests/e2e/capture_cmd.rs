//! `nfvhost capture CHAIN:VNF:PORT -w FILE`: the frames crossing a port of
//! a running, sandboxed worker land in a pcap file that `tcpdump -r` reads:
//! on the in-memory link inside a fused group (which tcpdump cannot see),
//! and on an ordinary veth port. Unknown VNFs and ports are usage errors.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{have_root, nfvhost, run_ok, wait_for, Chain};

/// Starts `nfvhost capture` and waits until the worker has started it (the
/// command says so on stderr); the rest of stderr is collected.
fn start_capture(args: &[&str]) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = nfvhost()
        .arg("capture")
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("running nfvhost capture");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("capturing ") {
            break;
        }
    }
    assert!(
        seen.contains("capturing "),
        "the capture did not start: {seen}"
    );
    let rest = std::thread::spawn(move || {
        let mut all = seen;
        for line in lines.map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    (child, rest)
}

/// Waits for `nfvhost capture` to exit, with its stderr.
fn finish(mut child: Child, stderr: std::thread::JoinHandle<String>) -> (bool, String) {
    let mut status = None;
    assert!(
        wait_for(Duration::from_secs(20), || {
            status = child.try_wait().unwrap();
            status.is_some()
        }),
        "nfvhost capture did not stop"
    );
    (status.unwrap().success(), stderr.join().unwrap())
}

/// `tcpdump -r FILE -nn [filter]`, one line per frame.
fn tcpdump_read(file: &Path, filter: &[&str]) -> Vec<String> {
    let out = run_ok(
        Command::new("tcpdump")
            .arg("-r")
            .arg(file)
            .arg("-nn")
            .args(filter),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

fn ping(chain: &Chain, from: &str, to: &str, n: &str) {
    let out = chain.exec_ok(from, &["ping", "-c", n, "-i", "0.2", "-W", "2", to]);
    assert!(out.contains(&format!("{n} received")), "{out}");
}

#[test]
fn capture_cmd_records_icmp_on_an_in_memory_link_of_a_fused_group() {
    if !have_root("capture_cmd_records_icmp_on_an_in_memory_link_of_a_fused_group") {
        return;
    }
    let chain = Chain::deploy("tests/chains/fused-pair.yaml", "fpair", "127.0.0.1:9499");
    let dir = tempfile::tempdir().unwrap();
    // ARP between the routers is resolved before the capture starts, so the
    // four frames are the two echoes each way.
    ping(&chain, "h1", "10.0.2.10", "1");

    let file = dir.path().join("core.pcap");
    let (child, stderr) = start_capture(&[
        "fpair:r1:core",
        "-w",
        file.to_str().unwrap(),
        "-c",
        "4",
        "--duration",
        "30",
    ]);
    ping(&chain, "h1", "10.0.2.10", "2");
    let (ok, stderr) = finish(child, stderr);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("4 frames of fpair:r1:core"), "{stderr}");
    let lines = tcpdump_read(&file, &[]);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    // r1:core sends the requests to r2 and receives the replies.
    assert_eq!(
        count(&lines, "10.0.1.10 > 10.0.2.10: ICMP echo request"),
        2,
        "{lines:#?}"
    );
    assert_eq!(
        count(&lines, "10.0.2.10 > 10.0.1.10: ICMP echo reply"),
        2,
        "{lines:#?}"
    );

    // The member at the other end of the link, stopped by Ctrl-C.
    let file = dir.path().join("r2-core.pcap");
    let (child, stderr) = start_capture(&["fpair:r2:core", "-w", file.to_str().unwrap()]);
    ping(&chain, "h2", "10.0.1.10", "3");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let (ok, stderr) = finish(child, stderr);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let lines = tcpdump_read(&file, &["icmp"]);
    assert_eq!(
        count(&lines, "10.0.2.10 > 10.0.1.10: ICMP echo request"),
        3,
        "{lines:#?}"
    );
    assert_eq!(
        count(&lines, "10.0.1.10 > 10.0.2.10: ICMP echo reply"),
        3,
        "{lines:#?}"
    );

    // The sandboxed worker made no call its filter refuses: it is the one
    // that started, and it still forwards.
    let m = chain.metrics();
    for vnf in ["r1", "r2"] {
        assert_eq!(
            m.get("nfvhost_vnf_restarts_total", &[("vnf", vnf)]),
            0.0,
            "{vnf} restarted"
        );
    }
    ping(&chain, "h1", "10.0.2.10", "1");
    // The worker noticed the reader went away and ended that capture.
    assert!(wait_for(Duration::from_secs(5), || {
        let log = String::from_utf8_lossy(
            &nfvhost()
                .args(["logs", "-c", "fpair", "r1"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned();
        log.contains("capture of port core ended") && log.contains("reader went away")
    }));

    // Unknown VNF, unknown port, malformed target: usage errors (exit 2)
    // that say what exists, and no file is left behind.
    for (target, says) in [
        (
            "fpair:r1:nope",
            "VNF r1 of chain fpair has no port `nope` (its ports: west, core)",
        ),
        (
            "fpair:r9:core",
            "chain fpair has no VNF `r9` (its VNFs: r1, r2)",
        ),
        ("fpair:r1", "is not CHAIN:VNF:PORT"),
        ("nochain:r1:core", "chain nochain is not deployed"),
    ] {
        let bad = dir.path().join("bad.pcap");
        let out = nfvhost()
            .args(["capture", target, "-w", bad.to_str().unwrap(), "-c", "1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{target}: {stderr}");
        assert!(stderr.contains(says), "{target}: {stderr}");
        assert!(!bad.exists(), "{target}");
    }
}

#[test]
fn capture_cmd_records_a_veth_port_of_a_single_vnf_chain() {
    if !have_root("capture_cmd_records_a_veth_port_of_a_single_vnf_chain") {
        return;
    }
    let chain = Chain::deploy("chains/basic.yaml", "basic", "127.0.0.1:9464");
    let dir = tempfile::tempdir().unwrap();
    ping(&chain, "h1", "10.0.2.10", "1");
    let file = dir.path().join("lan.pcap");
    // The hosts' kernels may send other frames (IPv6 neighbour discovery)
    // on a veth: capture for a while and count the echoes.
    let (child, stderr) = start_capture(&[
        "basic:r1:lan",
        "-w",
        file.to_str().unwrap(),
        "-c",
        "100",
        "--duration",
        "3",
    ]);
    ping(&chain, "h1", "10.0.2.10", "2");
    let (ok, stderr) = finish(child, stderr);
    assert!(ok, "{stderr}");
    let lines = tcpdump_read(&file, &["icmp"]);
    // r1:lan receives the requests from h1 and sends the replies to it.
    assert_eq!(
        count(&lines, "10.0.1.10 > 10.0.2.10: ICMP echo request"),
        2,
        "{lines:#?}"
    );
    assert_eq!(
        count(&lines, "10.0.2.10 > 10.0.1.10: ICMP echo reply"),
        2,
        "{lines:#?}"
    );
}
