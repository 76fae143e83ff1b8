//! Every mix of links carries every kind of traffic (issue 8): one table of
//! cases — port kinds on the way in and out of the VNF, an IP hop (router or
//! NAT), with and without a narrower-MTU link, and the ways a worker can
//! move frames on them (`datapath: { io, tap_io }`) — and one test function that
//! runs every check on every cell and names the cells that failed.
//!
//! Each cell is a chain `h1 —in— vnf —out— h2` written into a temp dir and
//! deployed for real. Checks: tracepath shows the hop and the path MTU; ping
//! with DF at the path MTU passes and one byte above it is answered with
//! fragmentation needed carrying the right MTU; iperf3 TCP both ways at
//! 1 Gbit/s or more (0.5 without offload) with no checksum errors counted by either kernel
//! (`nstat`); iperf3 UDP with datagrams as large as the path takes; and, through the
//! NAT, iperf3 through a TCP port forward.

use std::fmt::Write as _;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::{have_root, processes_matching, wait_for, Chain};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Veth,
    Tap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hop {
    Router,
    Nat,
}

struct Cell {
    /// The link h1 — VNF (the way in for h1 → h2).
    inbound: Kind,
    /// The link VNF — h2 (the way out for h1 → h2).
    outbound: Kind,
    hop: Hop,
    /// MTU of the outbound link, if narrower than 1500.
    narrow: Option<u32>,
    /// The VNF's `datapath:` keys, if not the defaults.
    datapath: Option<&'static str>,
}

impl Cell {
    fn name(&self) -> String {
        let k = |k: Kind| match k {
            Kind::Veth => "veth",
            Kind::Tap => "tap",
        };
        format!(
            "{}→{} {:?} {}{}",
            k(self.inbound),
            k(self.outbound),
            self.hop,
            self.narrow
                .map_or("mtu 1500".into(), |m| format!("mtu {m} hop")),
            self.datapath
                .map_or(String::new(), |d| format!(" {{ {d} }}"))
        )
    }

    /// The least TCP each way: an `io: xdp` port carries no offload, so
    /// every segment crosses the worker on its own.
    fn min_tcp_mbps(&self) -> f64 {
        match self.datapath {
            Some(d) if d.contains("xdp") => MIN_TCP_MBPS_NO_OFFLOAD,
            _ => MIN_TCP_MBPS,
        }
    }

    fn path_mtu(&self) -> u32 {
        self.narrow.unwrap_or(1500)
    }

    /// h2's address as h1 reaches it, and h1's gateway.
    fn far(&self) -> &'static str {
        match self.hop {
            Hop::Router => "10.0.2.10",
            Hop::Nat => "203.0.113.10",
        }
    }

    /// The chain file: h1's interface is `eth0` on a veth link, `tap1` on a
    /// TAP link (the TAP device sits in the host's namespace); same for h2.
    fn chain_file(&self, name: &str, metrics: &str) -> String {
        let iface = |k: Kind, n: u8| match k {
            Kind::Veth => format!("eth{n}"),
            Kind::Tap => format!("tap{n}"),
        };
        let (if1, if2) = (iface(self.inbound, 1), iface(self.outbound, 2));
        let link = |a: &str, b: &str, k: Kind, mtu: Option<u32>| {
            let mut s = format!("  - {{ a: {a}, b: {b}");
            if k == Kind::Tap {
                s.push_str(", kind: tap");
            }
            if let Some(m) = mtu {
                write!(s, ", mtu: {m}").unwrap();
            }
            s.push_str(" }\n");
            s
        };
        let (far_net, module, config) = match self.hop {
            Hop::Router => (
                "10.0.2",
                "router",
                "      interfaces: { in: 10.0.1.1/24, out: 10.0.2.1/24 }\n".to_string(),
            ),
            Hop::Nat => (
                "203.0.113",
                "nat",
                "      inside: { port: in, address: 10.0.1.1/24 }\n\
                 \x20     outside: { port: out, address: 203.0.113.1/24 }\n\
                 \x20     port_forwards: [ { proto: tcp, port: 8080, to: \"10.0.1.10:5201\" } ]\n"
                    .to_string(),
            ),
        };
        let datapath = self
            .datapath
            .map_or(String::new(), |d| format!("    datapath: {{ {d} }}\n"));
        format!(
            "name: {name}\nmetrics: {metrics}\nhosts:\n  h1:\n    interfaces:\n      {if1}: {{ address: 10.0.1.10/24 }}\n    gateway: 10.0.1.1\n  h2:\n    interfaces:\n      {if2}: {{ address: {far_net}.10/24 }}\n    gateway: {far_net}.1\nvnfs:\n  x:\n    module: {module}\n    ports: [in, out]\n{datapath}    config:\n{config}links:\n{}{}",
            link(&format!("h1:{if1}"), "x:in", self.inbound, None),
            link("x:out", &format!("h2:{if2}"), self.outbound, self.narrow),
        )
    }
}

/// The table: every pair of port kinds × router/NAT × with/without a
/// narrower hop, with the default ways of moving frames (`io: tpacket_v2`,
/// `tap_io: read_write`); then the other ways (`io: mmsg` and `io: xdp` on
/// veth ports, `tap_io: io_uring` on TAP ports) on both hops.
fn cells() -> Vec<Cell> {
    let mut cells = Vec::new();
    for hop in [Hop::Router, Hop::Nat] {
        for narrow in [None, Some(1400)] {
            for (inbound, outbound) in [
                (Kind::Veth, Kind::Veth),
                (Kind::Veth, Kind::Tap),
                (Kind::Tap, Kind::Veth),
                (Kind::Tap, Kind::Tap),
            ] {
                cells.push(Cell {
                    inbound,
                    outbound,
                    hop,
                    narrow,
                    datapath: None,
                });
            }
        }
        for (inbound, outbound, narrow, datapath) in [
            (Kind::Veth, Kind::Veth, None, "io: mmsg"),
            (Kind::Veth, Kind::Veth, Some(1400), "io: xdp"),
            (Kind::Tap, Kind::Tap, None, "tap_io: io_uring"),
            (
                Kind::Veth,
                Kind::Tap,
                Some(1400),
                "io: mmsg, tap_io: io_uring",
            ),
        ] {
            cells.push(Cell {
                inbound,
                outbound,
                hop,
                narrow,
                datapath: Some(datapath),
            });
        }
    }
    cells
}

/// What one cell measured, for the report.
#[derive(Default)]
struct Figures {
    tcp_up_mbps: f64,
    tcp_down_mbps: f64,
    udp_mbps: f64,
    udp_lost_percent: f64,
    forward_mbps: Option<f64>,
}

const MIN_TCP_MBPS: f64 = 1000.0;
const MIN_TCP_MBPS_NO_OFFLOAD: f64 = 500.0;

/// Without root: every cell's generated chain file validates, modules
/// included (so the deploying test fails only on traffic).
#[test]
fn every_cell_is_a_valid_chain() {
    crate::support::vnfs_built();
    let dir = tempfile::tempdir().unwrap();
    for cell in cells() {
        let file = dir.path().join("mx.yaml");
        std::fs::write(&file, cell.chain_file("mx", "127.0.0.1:9481")).unwrap();
        let out = crate::support::nfvhost()
            .arg("validate")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}\n{}",
            cell.name(),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&file).unwrap()
        );
    }
}

#[test]
fn every_mix_of_links_carries_every_kind_of_traffic() {
    if !have_root("every_mix_of_links_carries_every_kind_of_traffic") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let only = std::env::var("NFVHOST_MATRIX_ONLY").ok();
    let mut failures = Vec::new();
    let mut report = String::new();
    for cell in cells() {
        let name = cell.name();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let file = dir.path().join("mx.yaml");
        std::fs::write(&file, cell.chain_file("mx", "127.0.0.1:9481")).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let chain = Chain::deploy(file.to_str().unwrap(), "mx", "127.0.0.1:9481");
            run_cell(&chain, &cell)
        }));
        match result {
            Ok(Ok(f)) => writeln!(
                report,
                "PASS {name}: TCP {:.0}/{:.0} Mb/s (h1→h2/h2→h1), UDP {:.0} Mb/s {:.1}% lost{}",
                f.tcp_up_mbps,
                f.tcp_down_mbps,
                f.udp_mbps,
                f.udp_lost_percent,
                f.forward_mbps
                    .map_or(String::new(), |m| format!(", port forward {m:.0} Mb/s"))
            )
            .unwrap(),
            Ok(Err(why)) => {
                writeln!(report, "FAIL {name}: {why}").unwrap();
                failures.push(name);
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                writeln!(report, "FAIL {name}: {why}").unwrap();
                failures.push(name);
            }
        }
    }
    eprintln!("link matrix:\n{report}");
    assert!(failures.is_empty(), "cells failed: {failures:?}\n{report}");
}

/// The worker really moves frames the way the cell's `datapath:` asks: an
/// io_uring descriptor for `tap_io: io_uring`; mapped socket rings for the
/// default `io: tpacket_v2` when a veth port exists, none for `io: mmsg`;
/// an XDP program on each of the VNF's veth ends for `io: xdp`.
fn check_io_in_use(chain: &Chain, cell: &Cell) -> Result<(), String> {
    let datapath = cell.datapath.unwrap_or("");
    let pids = processes_matching(&format!("/run/nfvhost/{}/", chain.name));
    let any_worker = |found: &dyn Fn(i32) -> bool| pids.iter().any(|&p| found(p));
    let ring_mapped = any_worker(&|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains("socket:["))
    });
    let uring_held = any_worker(&|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains("io_uring"))
            })
    });
    let has_veth = cell.inbound == Kind::Veth || cell.outbound == Kind::Veth;
    let fail = |what: &str| Err(format!("{{ {datapath} }}: {what} (workers {pids:?})"));
    if uring_held != datapath.contains("tap_io: io_uring") {
        return fail(&format!("io_uring held: {uring_held}"));
    }
    if datapath.contains("io: xdp") {
        let programs = crate::xdp::xdp_programs(chain, "x");
        if programs.len() != 2 {
            return fail(&format!("x's ports have XDP programs {programs:?}"));
        }
    } else if ring_mapped != (has_veth && !datapath.contains("io: mmsg")) {
        return fail(&format!("socket ring mapped: {ring_mapped}"));
    }
    Ok(())
}

/// Every check on one deployed cell; `Err` says which failed and how.
fn run_cell(chain: &Chain, cell: &Cell) -> Result<Figures, String> {
    check_io_in_use(chain, cell)?;
    let far = cell.far();
    let mtu = cell.path_mtu();
    let mut f = Figures::default();

    // ARP warm-up, so the first probes below are not queued behind it.
    let out = chain.exec("h1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", far]);
    check(out.status.success(), "plain ping", &out)?;

    // tracepath: the hop answers, the far host is reached, the PMTU is the
    // narrow link's.
    let out = chain.exec("h1", &["tracepath", "-n", "-m", "5", far]);
    let text = String::from_utf8_lossy(&out.stdout);
    check(
        text.contains("10.0.1.1") && text.contains(far) && text.contains("reached"),
        "tracepath shows the hop and reaches the host",
        &out,
    )?;
    check(
        text.contains(&format!("pmtu {mtu}")),
        &format!("tracepath reports pmtu {mtu}"),
        &out,
    )?;

    // DF at the path MTU passes; one byte above, the hop answers with the
    // right next-hop MTU (or h1's own MTU stops it when there is no narrow
    // hop, which is h1's kernel, not nfvhost).
    let at = (mtu - 28).to_string();
    let out = chain.exec(
        "h1",
        &[
            "ping", "-M", "do", "-c", "2", "-i", "0.2", "-W", "2", "-s", &at, far,
        ],
    );
    check(out.status.success(), &format!("ping DF {mtu} bytes"), &out)?;
    if cell.narrow.is_some() {
        // A fresh route cache would learn it now; tracepath already taught
        // h1, so flush it to make the hop answer again.
        let _ = chain.exec("h1", &["ip", "route", "flush", "cache"]);
        let above = (1500 - 28).to_string();
        let out = chain.exec(
            "h1",
            &[
                "ping", "-M", "do", "-c", "2", "-i", "0.2", "-W", "2", "-s", &above, far,
            ],
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        check(
            !out.status.success()
                && (text.contains(&format!("mtu = {mtu}")) || text.contains(&format!("mtu={mtu}"))),
            &format!("ping DF 1500 bytes is answered with frag needed, mtu {mtu}"),
            &out,
        )?;
        let m = chain.metrics();
        let too_big = m.get(
            "nfvhost_vnf_drops_total",
            &[("vnf", "x"), ("reason", "too_big")],
        );
        if too_big < 1.0 {
            return Err("the hop counted no too_big drop".into());
        }
    }

    // TCP both ways, then UDP with datagrams as large as the path takes.
    let server = iperf_server(chain, "h2", far)?;
    let tcp_up = iperf(chain, "h1", &["-c", far, "-t", "2"])?;
    f.tcp_up_mbps = received_mbps(&tcp_up);
    let tcp_down = iperf(chain, "h1", &["-c", far, "-t", "2", "-R"])?;
    f.tcp_down_mbps = received_mbps(&tcp_down);
    let datagram = (mtu - 28).to_string();
    let udp = iperf(
        chain,
        "h1",
        &["-c", far, "-t", "2", "-u", "-b", "100M", "-l", &datagram],
    )?;
    f.udp_mbps = udp["end"]["sum"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e6;
    f.udp_lost_percent = udp["end"]["sum"]["lost_percent"].as_f64().unwrap_or(100.0);
    stop(server);

    if cell.hop == Hop::Nat {
        // The port forward 203.0.113.1:8080 → h1:5201.
        let server = iperf_server(chain, "h1", "10.0.1.10")?;
        let fwd = iperf(chain, "h2", &["-c", "203.0.113.1", "-p", "8080", "-t", "2"]);
        stop(server);
        f.forward_mbps = Some(received_mbps(&fwd?));
    }

    for node in ["h1", "h2"] {
        let errors = checksum_errors(chain, node);
        if errors != 0 {
            return Err(format!("{node}'s kernel counted {errors} checksum errors"));
        }
    }
    let least = cell.min_tcp_mbps();
    if f.tcp_up_mbps < least || f.tcp_down_mbps < least {
        return Err(format!(
            "TCP {:.0}/{:.0} Mb/s, below {least} Mb/s",
            f.tcp_up_mbps, f.tcp_down_mbps
        ));
    }
    if f.forward_mbps.is_some_and(|m| m <= 0.0) {
        return Err("nothing crossed the port forward".into());
    }
    // Large datagrams must cross; how many a loaded 2-core machine loses
    // at 100 Mb/s is a figure, not a verdict, so only most-lost fails.
    if f.udp_mbps <= 0.0 || f.udp_lost_percent > 50.0 {
        return Err(format!(
            "UDP {:.0} Mb/s with {:.1}% lost",
            f.udp_mbps, f.udp_lost_percent
        ));
    }
    Ok(f)
}

fn check(ok: bool, what: &str, out: &std::process::Output) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}: failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn iperf_server(chain: &Chain, node: &str, addr: &str) -> Result<Child, String> {
    let child = chain
        .command(node, &["iperf3", "-s", "-B", addr, "-p", "5201"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting iperf3 -s on {node}: {e}"))?;
    let listening = wait_for(Duration::from_secs(5), || {
        let out = chain.exec(node, &["ss", "-Htln", "sport = :5201"]);
        !out.stdout.is_empty()
    });
    if !listening {
        stop(child);
        return Err(format!("iperf3 -s never listened on {node}"));
    }
    Ok(child)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn iperf(chain: &Chain, node: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let mut full = vec!["iperf3", "-J", "--connect-timeout", "3000"];
    full.extend_from_slice(args);
    let out = chain.exec(node, &full);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("iperf3 {args:?}: unreadable output ({e})"))?;
    if let Some(e) = json["error"].as_str() {
        return Err(format!("iperf3 {args:?}: {e}"));
    }
    Ok(json)
}

fn received_mbps(json: &serde_json::Value) -> f64 {
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e6
}

/// `TcpInCsumErrors` + `UdpInCsumErrors` in a node's namespace.
fn checksum_errors(chain: &Chain, node: &str) -> u64 {
    let out = chain.exec_ok(
        node,
        &["nstat", "-asz", "TcpInCsumErrors", "UdpInCsumErrors"],
    );
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}
