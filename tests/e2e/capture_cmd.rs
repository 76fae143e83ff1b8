//! `nfvhost capture CHAIN:VNF:PORT -w FILE`: the frames crossing a port of
//! a running, sandboxed worker land in a pcap file that `tcpdump -r` reads:
//! on the in-memory link inside a fused group (which tcpdump cannot see),
//! and on an ordinary veth port and a TAP port. Unknown VNFs and ports are usage errors.

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

/// How a capture ends.
enum Until {
    /// By itself, after the frames or seconds its arguments give.
    Done,
    /// By Ctrl-C (SIGINT) once the pings are over.
    Interrupted,
}

/// Captures `target` into `file` (with `args` after `-w FILE`) while `from`
/// pings `to` `n` times, waits for the capture to end as `until` says, and
/// checks it succeeded. Returns its stderr and the ICMP frames of the file.
fn capture_pings(
    chain: &Chain,
    target: &str,
    file: &Path,
    args: &[&str],
    (from, to, n): (&str, &str, &str),
    until: Until,
) -> (String, Vec<String>) {
    let mut all = vec![target, "-w", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let (child, stderr) = start_capture(&all);
    ping(chain, from, to, n);
    if let Until::Interrupted = until {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    }
    let (ok, stderr) = finish(child, stderr);
    assert!(ok, "{stderr}");
    (stderr, tcpdump_read(file, &["icmp"]))
}

/// `lines` hold `n` echo requests from `src` to `dst` and `n` replies back.
#[track_caller]
fn assert_echoes(lines: &[String], src: &str, dst: &str, n: usize) {
    let request = format!("{src} > {dst}: ICMP echo request");
    let reply = format!("{dst} > {src}: ICMP echo reply");
    assert_eq!(count(lines, &request), n, "{lines:#?}");
    assert_eq!(count(lines, &reply), n, "{lines:#?}");
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
    let (stderr, lines) = capture_pings(
        &chain,
        "fpair:r1:core",
        &file,
        &["-c", "4", "--duration", "30"],
        ("h1", "10.0.2.10", "2"),
        Until::Done,
    );
    assert!(stderr.contains("4 frames of fpair:r1:core"), "{stderr}");
    // Only the four echoes: no other frame crosses the in-memory link.
    assert_eq!(tcpdump_read(&file, &[]).len(), 4, "{lines:#?}");
    // r1:core sends the requests to r2 and receives the replies.
    assert_echoes(&lines, "10.0.1.10", "10.0.2.10", 2);

    // The member at the other end of the link, stopped by Ctrl-C.
    let file = dir.path().join("r2-core.pcap");
    let (stderr, lines) = capture_pings(
        &chain,
        "fpair:r2:core",
        &file,
        &[],
        ("h2", "10.0.1.10", "3"),
        Until::Interrupted,
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_echoes(&lines, "10.0.2.10", "10.0.1.10", 3);

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
    let (_, lines) = capture_pings(
        &chain,
        "basic:r1:lan",
        &file,
        &["-c", "100", "--duration", "3"],
        ("h1", "10.0.2.10", "2"),
        Until::Done,
    );
    // r1:lan receives the requests from h1 and sends the replies to it.
    assert_echoes(&lines, "10.0.1.10", "10.0.2.10", 2);
}

#[test]
fn capture_cmd_records_a_tap_port() {
    if !have_root("capture_cmd_records_a_tap_port") {
        return;
    }
    let chain = Chain::deploy("tests/chains/tap.yaml", "tap", "127.0.0.1:9472");
    let dir = tempfile::tempdir().unwrap();
    ping(&chain, "h1", "10.0.2.10", "1");
    let file = dir.path().join("wan.pcap");
    // r1:wan is the TAP whose descriptor the worker holds: it sends the
    // requests to h2 and receives the replies.
    let (_, lines) = capture_pings(
        &chain,
        "tap:r1:wan",
        &file,
        &["-c", "100", "--duration", "3"],
        ("h1", "10.0.2.10", "3"),
        Until::Done,
    );
    assert_echoes(&lines, "10.0.1.10", "10.0.2.10", 3);
}
