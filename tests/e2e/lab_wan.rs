//! chains/lab-wan.yaml checked as the study checks it (RTT with ping,
//! throughput with iperf3, against the configuration), and the impair
//! function's accuracy measured on tests/chains/impair-measure.yaml. The
//! figures are printed (run with --nocapture); the assertions only catch a
//! model that is plainly wrong, since timing depends on the machine's load.

use std::process::Stdio;
use std::time::Duration;

use crate::capture::Capture;
use crate::support::{have_root, Chain};

/// Runs an iperf3 server (one test) in `server` and a client in `client`
/// with `args`; returns the bit rate the server received, in bit/s.
fn iperf3_received(chain: &Chain, server: &str, client: &str, to: &str, args: &[&str]) -> f64 {
    let srv = chain
        .command(server, &["iperf3", "-s", "-1", "-J"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting iperf3 -s");
    std::thread::sleep(Duration::from_millis(500));
    let mut cmd = vec!["iperf3", "-c", to];
    cmd.extend_from_slice(args);
    chain.exec_ok(client, &cmd);
    let out = srv.wait_with_output().expect("iperf3 server");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let end = &json["end"];
    end["sum_received"]["bits_per_second"]
        .as_f64()
        .or_else(|| end["sum"]["bits_per_second"].as_f64())
        .unwrap_or_else(|| panic!("no received rate in {json}"))
}

#[test]
fn lab_wan_rtt_and_throughput_match_the_configuration() {
    if !have_root("lab_wan_rtt_and_throughput_match_the_configuration") {
        return;
    }
    let chain = Chain::deploy("chains/lab-wan.yaml", "lab-wan", "127.0.0.1:9484");
    let out = chain.exec_ok(
        "s1",
        &["ping", "-c", "30", "-i", "0.1", "-W", "2", "10.2.0.10"],
    );
    let [min, avg, max, mdev] = crate::support::ping_rtt_ms(&out);
    eprintln!(
        "lab-wan: ping RTT min/avg/max/mdev = {min}/{avg}/{max}/{mdev} ms (configured 40 ms)"
    );
    assert!(min >= 40.0, "never faster than the configured delay: {min}");
    assert!(avg < 45.0, "about the configured delay: {avg}");

    // UDP offered above the rate: what arrives is the rate, less the 0.5 %
    // loss, counted as UDP payload (1460 of every 1502 bytes on the wire).
    let udp = iperf3_received(
        &chain,
        "s2",
        "s1",
        "10.2.0.10",
        &["-u", "-b", "30M", "-t", "5"],
    );
    let expected = 20e6 * 1460.0 / 1502.0 * 0.995;
    eprintln!(
        "lab-wan: UDP received {:.2} Mbit/s, expected {:.2} ({:+.1} %)",
        udp / 1e6,
        expected / 1e6,
        (udp / expected - 1.0) * 100.0
    );
    assert!((udp / expected - 1.0).abs() < 0.05);

    // TCP over 40 ms and 0.5 % loss stays below the rate (Mathis et al.).
    let tcp = iperf3_received(&chain, "s2", "s1", "10.2.0.10", &["-t", "5"]);
    eprintln!("lab-wan: TCP received {:.2} Mbit/s", tcp / 1e6);
    assert!(tcp > 0.5e6 && tcp < 20e6, "{tcp}");

    let m = chain.metrics();
    assert!(
        m.get(
            "nfvhost_module_events_total",
            &[("vnf", "wan"), ("name", "impair_lost")]
        ) > 0.0
    );
    assert!(
        m.get(
            "nfvhost_module_events_total",
            &[("vnf", "wan"), ("name", "impair_released")]
        ) > 0.0
    );
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The one-way delay h1 → h2 of 500 echo requests (every 10 ms) through
/// `chain`'s `delay: 10ms` direction, in µs, sorted: the same requests
/// captured on both sides, with the same clock. Prints min, median, p99
/// and max under `label`.
fn one_way_delays(chain: &Chain, label: &str) -> Vec<f64> {
    chain.exec_ok("h1", &["ping", "-c", "2", "-W", "2", "10.0.29.2"]);
    let n = 500;
    let filter = "icmp and icmp[icmptype] == icmp-echo";
    let left = Capture::start(chain, "h1", "eth0", filter, n, 30);
    let right = Capture::start(chain, "h2", "eth0", filter, n, 30);
    chain.exec_ok(
        "h1",
        &[
            "ping",
            "-c",
            &n.to_string(),
            "-i",
            "0.01",
            "-W",
            "2",
            "10.0.29.2",
        ],
    );
    let seq = |f: &[u8]| u16::from_be_bytes([f[40], f[41]]);
    let sent: std::collections::HashMap<u16, u64> = left
        .timed_frames()
        .into_iter()
        .map(|(t, f)| (seq(&f), t))
        .collect();
    let mut delays: Vec<f64> = right
        .timed_frames()
        .into_iter()
        .filter_map(|(t, f)| sent.get(&seq(&f)).map(|s| (t - s) as f64 / 1e3))
        .collect();
    delays.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert!(delays.len() > n * 9 / 10, "{} of {n} matched", delays.len());
    let (median, p99) = (percentile(&delays, 0.5), percentile(&delays, 0.99));
    eprintln!(
        "impair ({label}): delay 10ms one-way over {} frames: min {:.0} µs, median {:.0} µs ({:+.0}), p99 {:.0} µs ({:+.0}), max {:.0} µs",
        delays.len(),
        delays[0],
        median,
        median - 10_000.0,
        p99,
        p99 - 10_000.0,
        delays[delays.len() - 1]
    );
    assert!(delays[0] >= 10_000.0, "never early");
    delays
}

#[test]
fn impair_measured_delay_and_rate() {
    if !have_root("impair_measured_delay_and_rate") {
        return;
    }
    let chain = Chain::deploy(
        "tests/chains/impair-measure.yaml",
        "imp-measure",
        "127.0.0.1:9485",
    );
    let delays = one_way_delays(&chain, "sleeping worker");
    let median = percentile(&delays, 0.5);
    assert!(median < 11_000.0, "median {median} µs");

    // TCP h2 → h1 through the 10 Mbit/s direction.
    let tcp = iperf3_received(&chain, "h1", "h2", "10.0.29.1", &["-t", "8"]);
    eprintln!(
        "impair: rate 10mbit, iperf3 TCP received {:.3} Mbit/s ({:+.1} %)",
        tcp / 1e6,
        (tcp / 10e6 - 1.0) * 100.0
    );
    assert!((tcp / 10e6 - 1.0).abs() < 0.1, "{tcp}");
}

/// With `busy_poll`, no wake-up latency stands between a frame's arrival
/// and the module's clock: the tail of the delay stays close to the
/// configuration (the figures are printed; the bounds only catch a model
/// that is plainly wrong, as timing depends on the machine's load).
#[test]
fn impair_with_a_polling_worker_keeps_the_delay_tail_tight() {
    if !have_root("impair_with_a_polling_worker_keeps_the_delay_tail_tight") {
        return;
    }
    let chain = Chain::deploy(
        "tests/chains/impair-measure-busy.yaml",
        "imp-busy",
        "127.0.0.1:9486",
    );
    let delays = one_way_delays(&chain, "polling worker");
    let (median, p99) = (percentile(&delays, 0.5), percentile(&delays, 0.99));
    assert!(median < 10_500.0, "median {median} µs");
    assert!(p99 < 12_000.0, "p99 {p99} µs");
}
