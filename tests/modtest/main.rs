//! `nfvhost test` regression tests of the shipped VNFs, without root: each
//! `tests/modtest/<vnf>/` holds a chain file (`config.yaml`), the frames fed
//! to each port (`in-<port>.pcap`) and what must leave each port
//! (`expect-<port>.pcap`). See README.md there for how they were made.
//!
//! `NFVHOST_REGENERATE_MODTEST=1 cargo test --release -p nfvhost --test
//! modtest` rewrites the inputs from the frames crafted below and the
//! expected outputs from what the current modules send (review them with
//! `tcpdump -enr` before committing).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use vnf_sdk::testing::frames::{self, TcpHeader};
use vnf_sdk::wire::{ArpOperation, EtherType, EthernetAddress as Mac, IpProtocol, TcpFlags};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn case_dir(vnf: &str) -> PathBuf {
    root().join("tests/modtest").join(vnf)
}

/// Builds the wasm VNFs once (`cargo vnfs`).
fn vnfs_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .arg("vnfs")
            .current_dir(root())
            .status()
            .expect("running cargo to build the VNFs");
        assert!(status.success(), "building the VNFs failed");
    });
}

fn nfvhost() -> Command {
    vnfs_built();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nfvhost"));
    cmd.current_dir(root());
    // A private compile cache: the test never touches the user's.
    cmd.env(
        "NFVHOST_CACHE_DIR",
        std::env::temp_dir().join("nfvhost-modtest-cache"),
    );
    cmd
}

/// Frames fed to one port: (milliseconds since the start, frame).
type Feed = Vec<(u64, Vec<u8>)>;

const fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

fn eth_ip(dst: Mac, src: Mac, packet: Vec<u8>) -> Vec<u8> {
    frames::ethernet(dst, src, EtherType::Ipv4, &packet)
}

fn arp_reply(sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    frames::ethernet(
        tha,
        sha,
        EtherType::Arp,
        &frames::arp(ArpOperation::Reply, sha, spa, tha, tpa),
    )
}

fn ping(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, seq: u16, reply: bool) -> Vec<u8> {
    let header = frames::ipv4_header(src, dst, IpProtocol::Icmp);
    frames::ipv4_with(
        vnf_sdk::wire::Ipv4Repr { ttl, ..header },
        &frames::echo(!reply, 0x4242, seq, b"nfvhost modtest"),
    )
}

fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    frames::ipv4(
        src,
        dst,
        IpProtocol::Udp,
        &frames::udp(src, dst, sport, dport, data),
    )
}

fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: TcpFlags) -> Vec<u8> {
    let header = TcpHeader {
        src_port: sport,
        dst_port: dport,
        seq: 1000,
        ack: if flags.contains(TcpFlags::ACK) {
            2000
        } else {
            0
        },
        flags,
        window: 64240,
    };
    frames::ipv4(
        src,
        dst,
        IpProtocol::Tcp,
        &frames::tcp(src, dst, header, &[]),
    )
}

/// The router: ARP for its address, a ping across that waits for ARP on
/// the far side, the reply back, TTL expiry, no route, and a ping to the
/// router itself.
fn router() -> Vec<(&'static str, Feed)> {
    let (h1, h2) = (Mac([2, 0, 0, 0, 1, 0x10]), Mac([2, 0, 0, 0, 2, 0x10]));
    let (r_lan, r_wan) = (Mac([2, 0, 0, 0, 1, 1]), Mac([2, 0, 0, 0, 2, 1]));
    let (a1, a2) = (ip(10, 0, 1, 10), ip(10, 0, 2, 10));
    let lan = vec![
        (0, frames::arp_request(h1, a1, ip(10, 0, 1, 1))),
        (10, eth_ip(r_lan, h1, ping(a1, a2, 64, 1, false))),
        (40, eth_ip(r_lan, h1, ping(a1, a2, 1, 2, false))),
        (
            50,
            eth_ip(r_lan, h1, ping(a1, ip(172, 16, 0, 1), 64, 3, false)),
        ),
        (
            60,
            eth_ip(r_lan, h1, ping(a1, ip(10, 0, 1, 1), 64, 4, false)),
        ),
        (
            70,
            eth_ip(Mac([2, 9, 9, 9, 9, 9]), h1, ping(a1, a2, 64, 5, false)),
        ),
    ];
    let wan = vec![
        (20, arp_reply(h2, a2, r_wan, ip(10, 0, 2, 1))),
        (30, eth_ip(r_wan, h2, ping(a2, a1, 64, 1, true))),
    ];
    vec![("lan", lan), ("wan", wan)]
}

/// The firewall: an accepted web connection and its reply, a rejected
/// SMTP connection, an inbound connection dropped by the default policy,
/// and a DNS flow whose late reply (after the 5 s UDP timeout, by the
/// capture's clock) is dropped.
fn firewall() -> Vec<(&'static str, Feed)> {
    let (m1, m2) = (Mac([2, 0, 0, 0, 0, 0x10]), Mac([2, 0, 0, 0, 0, 0x20]));
    let (a1, a2) = (ip(10, 0, 0, 10), ip(10, 0, 0, 20));
    let inside = vec![
        (0, eth_ip(m2, m1, tcp(a1, a2, 40000, 80, TcpFlags::SYN))),
        (20, eth_ip(m2, m1, tcp(a1, a2, 40001, 25, TcpFlags::SYN))),
        (40, eth_ip(m2, m1, udp(a1, a2, 5353, 53, b"query 1"))),
        (1000, eth_ip(m2, m1, udp(a1, a2, 5354, 53, b"query 2"))),
    ];
    let outside = vec![
        (
            10,
            eth_ip(
                m1,
                m2,
                tcp(a2, a1, 80, 40000, TcpFlags::SYN | TcpFlags::ACK),
            ),
        ),
        (30, eth_ip(m1, m2, tcp(a2, a1, 40002, 22, TcpFlags::SYN))),
        (500, eth_ip(m1, m2, udp(a2, a1, 53, 5353, b"answer 1"))),
        (8000, eth_ip(m1, m2, udp(a2, a1, 53, 5354, b"answer 2"))),
    ];
    vec![("inside", inside), ("outside", outside)]
}

/// The NAT: a LAN flow that waits for ARP of the gateway, leaves with the
/// outside address, and its reply translated back (after ARP on the LAN).
fn nat() -> Vec<(&'static str, Feed)> {
    let (h1, gw) = (Mac([2, 0, 0, 0, 1, 0x10]), Mac([2, 0, 0, 0, 2, 0xfe]));
    let (n_in, n_out) = (Mac([2, 0, 0, 0, 1, 1]), Mac([2, 0, 0, 0, 2, 1]));
    let (a1, agw, remote) = (
        ip(192, 168, 1, 10),
        ip(203, 0, 113, 254),
        ip(198, 51, 100, 7),
    );
    let inside = vec![
        (0, eth_ip(n_in, h1, udp(a1, remote, 33000, 7000, b"query"))),
        (30, arp_reply(h1, a1, n_in, ip(192, 168, 1, 1))),
    ];
    let outside = vec![
        (10, arp_reply(gw, agw, n_out, ip(203, 0, 113, 1))),
        // The NAT keeps the LAN's source port when it is free.
        (
            20,
            eth_ip(
                n_out,
                gw,
                udp(remote, ip(203, 0, 113, 1), 7000, 33000, b"answer"),
            ),
        ),
    ];
    vec![("inside", inside), ("outside", outside)]
}

/// The DHCP server: DISCOVER → OFFER, REQUEST → ACK, and an ordinary frame
/// passing through to the uplink.
fn dhcp() -> Vec<(&'static str, Feed)> {
    let client = Mac([2, 0, 0, 0, 1, 0x10]);
    let bootp = |msg: Vec<u8>| {
        eth_ip(
            Mac::BROADCAST,
            client,
            udp(ip(0, 0, 0, 0), ip(255, 255, 255, 255), 68, 67, &msg),
        )
    };
    let discover = frames::dhcp_request(0x1234, client, ip(0, 0, 0, 0), false, &[(53, &[1])]);
    let offered = [192, 168, 1, 100];
    let request = frames::dhcp_request(
        0x1234,
        client,
        ip(0, 0, 0, 0),
        false,
        &[(53, &[3]), (50, &offered), (54, &[192, 168, 1, 2])],
    );
    let lan = vec![
        (0, bootp(discover)),
        (10, bootp(request)),
        (
            20,
            eth_ip(
                Mac([2, 0, 0, 0, 0, 1]),
                client,
                ping(ip(192, 168, 1, 100), ip(192, 168, 1, 1), 64, 1, false),
            ),
        ),
    ];
    vec![("lan", lan), ("uplink", Vec::new())]
}

/// The captures of `nfvhost new --template bump` (host/templates/bump/pcap):
/// (file, frames). The chain there blocks IPv6, so the IPv6 frame from lan
/// leaves nowhere.
fn template_captures() -> Vec<(&'static str, Feed)> {
    let (m1, m2) = (Mac([2, 0, 0, 0, 0, 0x10]), Mac([2, 0, 0, 0, 0, 0x20]));
    let (a1, a2) = (ip(10, 0, 0, 10), ip(10, 0, 0, 20));
    let out = eth_ip(m2, m1, udp(a1, a2, 4000, 5000, b"to h2"));
    let back = eth_ip(m1, m2, udp(a2, a1, 5000, 4000, b"to h1"));
    let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
    v6.extend([0xfe, 0x80].iter().chain(&[0; 13]).chain(&[0x10]));
    v6.extend([0xfe, 0x80].iter().chain(&[0; 13]).chain(&[0x20]));
    let v6 = frames::ethernet(m2, m1, EtherType::Ipv6, &v6);
    vec![
        ("in-lan.pcap", vec![(0, out.clone()), (10, v6)]),
        ("in-wan.pcap", vec![(20, back.clone())]),
        ("expect/wan.pcap", vec![(0, out)]),
        ("expect/lan.pcap", vec![(20, back)]),
    ]
}

/// The captures of `nfvhost new --template router`: h1 pings h2; the
/// router (VNF `fn`, MACs derived from that name) resolves h2 on wan first.
fn router_template_captures() -> Vec<(&'static str, Feed)> {
    let (h1, h2) = (Mac([2, 0, 0, 0, 1, 0x10]), Mac([2, 0, 0, 0, 2, 0x10]));
    let (lan, wan) = (Mac::derived("fn", 0), Mac::derived("fn", 1));
    let (a1, a2, r_wan) = (ip(10, 0, 1, 10), ip(10, 0, 2, 10), ip(10, 0, 2, 1));
    vec![
        (
            "in-lan.pcap",
            vec![(0, eth_ip(lan, h1, ping(a1, a2, 64, 1, false)))],
        ),
        ("in-wan.pcap", vec![(10, arp_reply(h2, a2, wan, r_wan))]),
        ("expect/lan.pcap", vec![]),
        (
            "expect/wan.pcap",
            vec![
                (0, frames::arp_request(wan, r_wan, a2)),
                (10, eth_ip(h2, wan, ping(a1, a2, 63, 1, false))),
            ],
        ),
    ]
}

fn cases() -> Vec<(&'static str, Vec<(&'static str, Feed)>)> {
    vec![
        ("router", router()),
        ("firewall", firewall()),
        ("nat", nat()),
        ("dhcp", dhcp()),
    ]
}

/// A capture start time, so timestamps look like a real capture's.
const START: Duration = Duration::from_secs(1_796_169_600);

fn pcap_bytes(feed: &Feed) -> Vec<u8> {
    let header = PcapHeader {
        ts_resolution: pcap_file::TsResolution::NanoSecond,
        endianness: pcap_file::Endianness::Little,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
    for (ms, frame) in feed {
        let ts = START + Duration::from_millis(*ms);
        w.write_packet(&PcapPacket::new(ts, frame.len() as u32, frame))
            .unwrap();
    }
    w.into_writer()
}

/// `nfvhost test` over a case's files: every `in-<port>.pcap` as input,
/// and `expect-<port>.pcap` (or `expect_dir/<port>.pcap`) as expected.
fn run_case(vnf: &str, ports: &[&str], expect_dir: Option<&Path>, out: Option<&Path>) -> Output {
    let dir = case_dir(vnf);
    let mut cmd = nfvhost();
    cmd.arg("test")
        .arg(vnf)
        .arg("--config")
        .arg(dir.join("config.yaml"));
    for p in ports {
        cmd.arg("--in").arg(format!(
            "{p}={}",
            dir.join(format!("in-{p}.pcap")).display()
        ));
        match expect_dir {
            Some(e) => cmd
                .arg("--expect")
                .arg(format!("{p}={}", e.join(format!("{p}.pcap")).display())),
            None => cmd.arg("--expect").arg(format!(
                "{p}={}",
                dir.join(format!("expect-{p}.pcap")).display()
            )),
        };
    }
    if let Some(out) = out {
        cmd.arg("--out").arg(out);
    }
    cmd.output().expect("running nfvhost test")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn regenerate() -> bool {
    std::env::var_os("NFVHOST_REGENERATE_MODTEST").is_some()
}

/// Writes `bytes` to `path` when regenerating, else checks that the file
/// holds exactly them.
fn generated(path: &Path, bytes: &[u8]) {
    if regenerate() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    } else {
        let have = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            have == bytes,
            "{} is not what its generator makes; regenerate (see tests/modtest/README.md)",
            path.display()
        );
    }
}

/// The captures shipped with the templates are the frames crafted in
/// [`template_captures`] and [`router_template_captures`].
#[test]
fn template_captures_are_the_crafted_frames() {
    for (file, feed) in template_captures() {
        generated(
            &root().join("host/templates/bump/pcap").join(file),
            &pcap_bytes(&feed),
        );
    }
    for (file, feed) in router_template_captures() {
        generated(
            &root().join("host/templates/router/pcap").join(file),
            &pcap_bytes(&feed),
        );
    }
}

/// The checked-in inputs are exactly the frames crafted above (or are
/// rewritten from them when regenerating, with the expected outputs).
#[test]
fn inputs_are_the_crafted_frames() {
    for (vnf, feeds) in cases() {
        let ports: Vec<&str> = feeds.iter().map(|(p, _)| *p).collect();
        for (port, feed) in &feeds {
            generated(
                &case_dir(vnf).join(format!("in-{port}.pcap")),
                &pcap_bytes(feed),
            );
        }
        if regenerate() {
            let out = tempfile::tempdir().unwrap();
            let dir = case_dir(vnf);
            let mut cmd = nfvhost();
            cmd.arg("test")
                .arg(vnf)
                .arg("--config")
                .arg(dir.join("config.yaml"));
            for p in &ports {
                cmd.arg("--in").arg(format!(
                    "{p}={}",
                    dir.join(format!("in-{p}.pcap")).display()
                ));
            }
            let o = cmd.arg("--out").arg(out.path()).output().unwrap();
            assert!(o.status.success(), "{}", text(&o));
            for p in &ports {
                std::fs::copy(
                    out.path().join(format!("{p}.pcap")),
                    dir.join(format!("expect-{p}.pcap")),
                )
                .unwrap();
            }
            eprintln!("{vnf}:\n{}", String::from_utf8_lossy(&o.stdout));
        }
    }
}

fn ports_of(vnf: &str) -> Vec<&'static str> {
    cases()
        .into_iter()
        .find(|(v, _)| *v == vnf)
        .map(|(_, feeds)| feeds.iter().map(|(p, _)| *p).collect())
        .expect("a case")
}

fn check(vnf: &str, must_print: &[&str]) {
    let out = run_case(vnf, &ports_of(vnf), None, None);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for line in must_print {
        assert!(t.contains(line), "missing `{line}` in:\n{t}");
    }
}

#[test]
fn router_matches_its_expected_captures() {
    check(
        "router",
        &[
            "#1    t=0.000000 in=lan 42 B -> consume; emitted out=lan (42 B)",
            "drop reason=not_for_us",
            "port lan: ",
            "port wan: ",
        ],
    );
}

#[test]
fn firewall_matches_its_expected_captures() {
    // The late DNS answer (t=8 s, after the 5 s UDP timeout) is dropped.
    check(
        "firewall",
        &["#8    t=8.000000 in=outside", "port outside: "],
    );
}

#[test]
fn nat_matches_its_expected_captures() {
    check("nat", &["port inside: ", "port outside: "]);
}

#[test]
fn dhcp_matches_its_expected_captures() {
    check(
        "dhcp",
        &["emitted out=lan", "port uplink: 1 frames as expected"],
    );
}

/// A changed expected capture makes `nfvhost test` exit 1 and say which
/// frame and byte differ; a missing frame says how many.
#[test]
fn a_changed_expectation_fails_with_a_diff() {
    let ports = ports_of("router");
    let dir = tempfile::tempdir().unwrap();
    for p in &ports {
        std::fs::copy(
            case_dir("router").join(format!("expect-{p}.pcap")),
            dir.path().join(format!("{p}.pcap")),
        )
        .unwrap();
    }
    // Flip the last byte of the last frame expected on wan (pcap: frames
    // are back to back, so the file's last byte is that frame's).
    let wan = dir.path().join("wan.pcap");
    let mut bytes = std::fs::read(&wan).unwrap();
    assert!(
        bytes.len() > 24,
        "the router's expected wan capture is empty"
    );
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&wan, &bytes).unwrap();
    let out = run_case("router", &ports, Some(dir.path()), None);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("port wan: DIFFERENT: frame "), "{t}");
    assert!(t.contains("differs at byte "), "{t}");
    assert!(t.contains("port lan: "), "{t}");
    assert!(t.contains("1 port(s) differ"), "{t}");

    // An expected capture with no frames: every frame that left is extra.
    let empty = dir.path().join("lan.pcap");
    std::fs::write(&empty, pcap_bytes(&Vec::new())).unwrap();
    let out = run_case("router", &ports, Some(dir.path()), None);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("port lan: DIFFERENT: expected 0 frames, got "),
        "{t}"
    );
}

/// `--out` writes one pcap per port that `--expect DIR` accepts again, and
/// a bare pcapng input maps interfaces to ports by name.
#[test]
fn out_and_expect_dir_round_trip() {
    let ports = ports_of("router");
    let out = tempfile::tempdir().unwrap();
    let o = run_case("router", &ports, None, Some(out.path()));
    assert!(o.status.success(), "{}", text(&o));
    for p in &ports {
        assert_eq!(
            std::fs::read(out.path().join(format!("{p}.pcap"))).unwrap(),
            std::fs::read(case_dir("router").join(format!("expect-{p}.pcap"))).unwrap(),
            "{p}: --out is not byte-identical to the expected capture"
        );
    }
    let dir = case_dir("router");
    let o = nfvhost()
        .args(["test", "router", "--config"])
        .arg(dir.join("config.yaml"))
        .arg("--in")
        .arg(format!("lan={}", dir.join("in-lan.pcap").display()))
        .arg("--in")
        .arg(format!("wan={}", dir.join("in-wan.pcap").display()))
        .arg("--expect")
        .arg(out.path())
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("#1 "));
}

/// Bad input is a usage error (exit 2) that says what is wrong.
#[test]
fn bad_input_is_a_usage_error() {
    let dir = case_dir("router");
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"not a capture").unwrap();
    let o = nfvhost()
        .args(["test", "router", "--config"])
        .arg(dir.join("config.yaml"))
        .arg("--in")
        .arg(format!("lan={}", junk.path().display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("neither a pcap nor a pcapng"),
        "{}",
        text(&o)
    );
    let o = nfvhost()
        .args(["test", "router", "--config"])
        .arg(dir.join("config.yaml"))
        .arg("--in")
        .arg(format!("dmz={}", dir.join("in-lan.pcap").display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("`dmz` is not a port of the module (its ports: lan, wan)"),
        "{}",
        text(&o)
    );
}

/// `nfvhost test` runs a module's one-shot timers at their time in the
/// capture's clock: impair with `delay: 10ms` sends a frame 10 ms after it
/// came in, as a worker does, instead of holding it forever.
#[test]
fn one_shot_timers_fire_at_their_time_in_capture_time() {
    vnfs_built();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("impair.yaml");
    std::fs::write(
        &config,
        "name: mt-impair\n\
         hosts:\n  h1: { interfaces: { eth0: { address: 10.0.1.1/24 } } }\n  \
         h2: { interfaces: { eth0: { address: 10.0.1.2/24 } } }\n\
         vnfs:\n  imp:\n    module: impair\n    ports: [a, b]\n    \
         datapath: { offload: false }\n    config:\n      a_to_b: { delay: 10ms }\n\
         chain: [h1, imp, h2]\n",
    )
    .unwrap();
    let frame = udp(ip(10, 0, 1, 1), ip(10, 0, 1, 2), 1000, 2000, b"held");
    let input = dir.path().join("in-a.pcap");
    std::fs::write(&input, pcap_bytes(&vec![(0, frame.clone())])).unwrap();
    let out_dir = dir.path().join("out");
    let out = nfvhost()
        .arg("test")
        .arg("impair")
        .arg("--config")
        .arg(&config)
        .arg("--in")
        .arg(format!("a={}", input.display()))
        .arg("--out")
        .arg(&out_dir)
        // Keep the module's clock running past the last input frame.
        .args(["--linger", "0.05"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    assert!(printed.contains("timer t=0.010000"), "{printed}");
    let bytes = std::fs::read(out_dir.join("b.pcap")).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
    let sent = reader.next_packet().expect("the held frame left").unwrap();
    assert_eq!(sent.timestamp, START + Duration::from_millis(10));
    assert_eq!(sent.data.as_ref(), &frame[..]);
    assert!(reader.next_packet().is_none(), "one frame in, one out");
}
