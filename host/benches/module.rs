//! Time in the module per packet: each shipped VNF as wasm (through
//! `nfvhost::engine::VnfInstance`, the worker's own call path) against the
//! same VNF logic compiled natively (through `vnf_sdk::testing::Harness`).
//!
//! ```text
//! cargo vnfs && cargo bench -p nfvhost --bench module          # full
//! cargo bench -p nfvhost --bench module -- --short             # quick (CI)
//! ```
//!
//! Frames take each VNF's forwarding fast path: the router and the NAT with
//! their next hops' ARP entries warmed, the firewall on an accepted,
//! already-tracked flow, the DHCP server passing non-DHCP traffic through.
//! The wasm figure times `VnfInstance::process` only (the frames are copied
//! into the slots beforehand, as the socket does); the native figure times
//! `Harness::process_batch`, which also copies each frame into a fresh
//! buffer and allocates its outputs, so it is an upper bound on native time
//! and the wasm/native ratio printed is, if anything, flattering to wasm.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nfvhost::engine::{Batch, Engine, FrameIn, InstanceLimits, VnfInstance};
use nfvhost_abi::Verdict;
use vnf_sdk::testing::Harness;
use vnf_sdk::Vnf;

const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x20];
const VNF_IN_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 1];
const VNF_OUT_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 1];

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet/IPv4/UDP frame of `len` bytes (60 is the 64-byte minimum
/// frame without its FCS).
fn udp_frame(dst: [u8; 6], src: [u8; 6], sip: [u8; 4], dip: [u8; 4], len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&sip);
    ip[16..20].copy_from_slice(&dip);
    let c = checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

/// An ARP reply from `mac`/`ip` to `to_mac`/`to_ip`.
fn arp_reply(mac: [u8; 6], ip: [u8; 4], to_mac: [u8; 6], to_ip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&to_mac);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip);
    f[32..38].copy_from_slice(&to_mac);
    f[38..42].copy_from_slice(&to_ip);
    f
}

struct Case {
    vnf: &'static str,
    module: &'static str,
    ports: [&'static str; 2],
    config: serde_json::Value,
    /// Frames handed over once before timing (ARP replies, a first packet).
    warm: Vec<(u16, Vec<u8>)>,
    /// The timed frame, by size.
    frame: fn(usize) -> Vec<u8>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            vnf: "router",
            module: "vnf_router.wasm",
            ports: ["lan", "wan"],
            config: serde_json::json!({
                "interfaces": { "lan": "10.0.1.1/24", "wan": "10.0.2.1/24" },
                "mac": { "lan": "02:00:00:00:01:01", "wan": "02:00:00:00:02:01" },
            }),
            warm: vec![(
                1,
                arp_reply(GW_MAC, [10, 0, 2, 10], VNF_OUT_MAC, [10, 0, 2, 1]),
            )],
            frame: |len| udp_frame(VNF_IN_MAC, PEER_MAC, [10, 0, 1, 10], [10, 0, 2, 10], len),
        },
        Case {
            vnf: "firewall",
            module: "vnf_firewall.wasm",
            ports: ["inside", "outside"],
            config: serde_json::json!({
                "default_policy": "drop",
                "rules": [
                    { "name": "block-smtp-out", "in": "inside", "proto": "tcp", "dst_port": 25, "action": "reject" },
                    { "name": "lan-out", "in": "inside", "action": "accept" },
                    { "name": "web-in", "in": "outside", "proto": "tcp", "dst": "192.168.1.50/32", "dst_port": 80, "action": "accept" },
                ],
            }),
            warm: vec![(
                0,
                udp_frame(GW_MAC, PEER_MAC, [192, 168, 1, 50], [203, 0, 113, 10], 60),
            )],
            frame: |len| udp_frame(GW_MAC, PEER_MAC, [192, 168, 1, 50], [203, 0, 113, 10], len),
        },
        Case {
            vnf: "nat",
            module: "vnf_nat.wasm",
            ports: ["inside", "outside"],
            config: serde_json::json!({
                "inside": { "port": "inside", "address": "10.255.0.2/30", "mac": "02:00:00:00:01:01" },
                "outside": { "port": "outside", "address": "203.0.113.1/24", "mac": "02:00:00:00:02:01" },
                "routes": [{ "to": "192.168.1.0/24", "via": "10.255.0.1" }],
            }),
            warm: vec![
                (
                    0,
                    arp_reply(PEER_MAC, [10, 255, 0, 1], VNF_IN_MAC, [10, 255, 0, 2]),
                ),
                (
                    1,
                    arp_reply(GW_MAC, [203, 0, 113, 10], VNF_OUT_MAC, [203, 0, 113, 1]),
                ),
                (
                    0,
                    udp_frame(
                        VNF_IN_MAC,
                        PEER_MAC,
                        [192, 168, 1, 50],
                        [203, 0, 113, 10],
                        60,
                    ),
                ),
            ],
            frame: |len| {
                udp_frame(
                    VNF_IN_MAC,
                    PEER_MAC,
                    [192, 168, 1, 50],
                    [203, 0, 113, 10],
                    len,
                )
            },
        },
        Case {
            vnf: "dhcp",
            module: "vnf_dhcp.wasm",
            ports: ["lan", "up"],
            config: serde_json::json!({
                "port": "lan",
                "address": "192.168.1.2/24",
                "pool": "192.168.1.100-192.168.1.199",
                "router": "192.168.1.1",
            }),
            warm: vec![],
            frame: |len| udp_frame(GW_MAC, PEER_MAC, [192, 168, 1, 50], [203, 0, 113, 10], len),
        },
    ]
}

fn wasm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-unknown-unknown/wasm")
}

/// ns per packet through the wasm module, and the verdict of the first frame.
fn time_wasm(
    engine: &Engine,
    case: &Case,
    batch: usize,
    len: usize,
    budget: Duration,
) -> (f64, Verdict) {
    let module = engine
        .load(&wasm_dir().join(case.module))
        .expect("load module (run `cargo vnfs`)");
    let doc = serde_json::json!({ "abi": nfvhost_abi::ABI_VERSION, "vnf": case.vnf, "ports": case.ports, "config": case.config }).to_string();
    let limits = InstanceLimits {
        batch_size: batch,
        log_level: nfvhost_abi::LogLevel::Warn,
        ..Default::default()
    };
    let mut vnf = VnfInstance::new(engine, &module, case.vnf, 2, doc.as_bytes(), limits)
        .expect("instantiate");
    let mut out = Batch::new(batch);
    for (port, f) in &case.warm {
        vnf.slots_mut().next().expect("a slot")[..f.len()].copy_from_slice(f);
        out.clear();
        out.push(FrameIn::plain(*port, f.len()));
        vnf.process(&mut out).expect("warm-up");
    }
    let frame = (case.frame)(len);
    out.clear();
    for _ in 0..batch {
        out.push(FrameIn::plain(0, frame.len()));
    }
    let mut total = Duration::ZERO;
    let mut packets = 0u64;
    let mut first = Verdict::Consume;
    while total < budget {
        for slot in vnf.slots_mut().take(batch) {
            slot[..frame.len()].copy_from_slice(&frame);
        }
        let t = Instant::now();
        vnf.process(&mut out).expect("process");
        total += t.elapsed();
        packets += batch as u64;
        first = out.verdicts()[0].0;
    }
    (total.as_nanos() as f64 / packets as f64, first)
}

fn time_native<V: Vnf>(case: &Case, batch: usize, len: usize, budget: Duration) -> (f64, Verdict) {
    let mut h = Harness::<V>::new(&case.ports, case.config.clone()).expect("native config");
    for (port, f) in &case.warm {
        h.process(*port, f);
    }
    let frame = (case.frame)(len);
    let frames: Vec<(u16, &[u8])> = (0..batch).map(|_| (0u16, frame.as_slice())).collect();
    let mut total = Duration::ZERO;
    let mut packets = 0u64;
    let mut first = Verdict::Consume;
    while total < budget {
        let t = Instant::now();
        let out = h.process_batch(&frames);
        total += t.elapsed();
        packets += batch as u64;
        first = out[0].verdict;
    }
    (total.as_nanos() as f64 / packets as f64, first)
}

fn main() {
    let short = std::env::args().any(|a| a == "--short");
    let budget = Duration::from_millis(if short { 20 } else { 300 });
    if !wasm_dir().join("vnf_router.wasm").exists() {
        eprintln!("module bench: build the VNFs first: cargo vnfs");
        std::process::exit(1);
    }
    let engine = Engine::new(None).expect("engine");
    println!(
        "# cargo bench -p nfvhost --bench module{}",
        if short { " -- --short" } else { "" }
    );
    println!(
        "{:9} {:>5} {:>6} {:>10} {:>10} {:>7}  verdict",
        "vnf", "batch", "frame", "wasm ns/p", "native ns/p", "ratio"
    );
    let mut worst_at_32 = 0.0f64;
    for case in cases() {
        for len in [60usize, 1514] {
            for batch in [1usize, 32, 256] {
                let (w, wv) = time_wasm(&engine, &case, batch, len, budget);
                let (n, nv) = match case.vnf {
                    "router" => time_native::<vnf_router::Router>(&case, batch, len, budget),
                    "firewall" => time_native::<vnf_firewall::Firewall>(&case, batch, len, budget),
                    "nat" => time_native::<vnf_nat::Nat>(&case, batch, len, budget),
                    _ => time_native::<vnf_dhcp::Dhcp>(&case, batch, len, budget),
                };
                let ratio = w / n;
                if batch >= 32 {
                    worst_at_32 = worst_at_32.max(ratio);
                }
                let verdict = if wv == nv {
                    format!("{wv:?}")
                } else {
                    format!("wasm {wv:?} / native {nv:?} (differ!)")
                };
                println!(
                    "{:9} {:>5} {:>6} {:>10.1} {:>10.1} {:>7.2}  {}",
                    case.vnf,
                    batch,
                    if len == 60 { "64 B" } else { "1500 B" },
                    w,
                    n,
                    ratio,
                    verdict
                );
            }
        }
    }
    println!("worst wasm/native ratio at batch >= 32: {worst_at_32:.2} (goal <= 1.30)");
}
