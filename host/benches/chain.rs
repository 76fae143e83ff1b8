//! Per-hop cost inside a fused group: a line of `faulty` wire modules (each
//! forwards every frame to its other port) linked in memory and run by the
//! group loop (`nfvhost::datapath::group::run_to_completion`, the worker's
//! own path), 64-byte frames in batches of 32.
//!
//! ```text
//! cargo vnfs && cargo bench -p nfvhost --bench chain             # full
//! cargo bench -p nfvhost --bench chain -- --short                # quick
//! ```
//!
//! For each chain length it prints the time per frame per hop, and the
//! same without the time spent inside the modules (read from the members'
//! own `call_ns` histograms): what moving a frame from one module to the
//! next costs the host (receive into the slots, verdict handling, the copy
//! into the next module's link, counters).

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use nfvhost::datapath::group::run_to_completion;
use nfvhost::datapath::port::memory;
use nfvhost::datapath::port::Port;
use nfvhost::datapath::stats::StatsSegment;
use nfvhost::datapath::worker::{Instantiator, Worker};
use nfvhost::engine::{Engine, InstanceLimits, VnetHeader};

const BATCH: usize = 32;
const FRAME: usize = 60;

fn wasm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-unknown-unknown/wasm")
}

/// (ns per frame per hop, the same outside the modules).
fn run(engine: &Engine, hops: usize, budget: Duration) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let module = engine
        .load(&wasm_dir().join("vnf_faulty.wasm"))
        .expect("load vnf_faulty.wasm (run `cargo vnfs`)");
    let segments: Vec<StatsSegment> = (0..hops)
        .map(|i| StatsSegment::create(&dir.path().join(format!("w{i}.stats"))).expect("stats"))
        .collect();
    // entry -> w0 -> w1 -> ... -> exit, every link in memory.
    let (mut entry, first) = memory::link("entry", "left", 4096);
    let mut left: Box<dyn Port> = Box::new(first);
    let mut members = Vec::new();
    let mut exit = None;
    for (i, stats) in segments.iter().enumerate() {
        let (right, next) = memory::link("right", "left", 4096);
        let ports = vec![
            std::mem::replace(&mut left, Box::new(next)),
            Box::new(right) as _,
        ];
        let doc = serde_json::json!({
            "abi": nfvhost_abi::ABI_VERSION, "vnf": format!("w{i}"),
            "ports": [{"name": "left", "mtu": 1500}, {"name": "right", "mtu": 1500}],
            "config": {},
        });
        let instantiator = Instantiator {
            engine: engine.clone(),
            module: module.clone(),
            vnf: format!("w{i}"),
            init_document: doc.to_string(),
            limits: InstanceLimits {
                batch_size: BATCH,
                log_level: nfvhost_abi::LogLevel::Warn,
                ..Default::default()
            },
            metrics_file: None,
        };
        members.push(Worker::new(ports, stats, instantiator).expect("instantiate"));
        if i + 1 == hops {
            exit = Some(std::mem::replace(
                &mut left,
                Box::new(memory::link("x", "y", 1).0),
            ));
        }
    }
    let mut exit = exit.expect("at least one hop");
    let frame = udp_frame();
    let frames: Vec<&[u8]> = (0..BATCH).map(|_| &frame[..]).collect();
    let mut sink = vec![vec![0u8; 2048]; BATCH];
    let mut lens = [0usize; BATCH];
    let mut vnets = [VnetHeader::NONE; BATCH];
    let mut total = Duration::ZERO;
    let mut batches = 0u64;
    while total < budget || batches < 100 {
        let t = Instant::now();
        assert_eq!(entry.send_batch(&frames, &[]).expect("send"), BATCH);
        run_to_completion(&mut members).expect("run");
        let mut bufs: Vec<&mut [u8]> = sink.iter_mut().map(|b| &mut b[..]).collect();
        let got = exit
            .recv_batch(&mut bufs, &mut lens, &mut vnets)
            .expect("recv");
        total += t.elapsed();
        assert_eq!(got.frames, BATCH, "every frame crosses the line");
        batches += 1;
    }
    let frames_hops = (batches * BATCH as u64 * hops as u64) as f64;
    let in_module: u64 = segments.iter().map(|s| s.call_ns.sum.load(Relaxed)).sum();
    let per_hop = total.as_nanos() as f64 / frames_hops;
    (
        per_hop,
        (total.as_nanos() as f64 - in_module as f64) / frames_hops,
    )
}

/// A 64-byte (60 without FCS) Ethernet/IPv4/UDP frame.
fn udp_frame() -> Vec<u8> {
    let mut f = vec![0u8; FRAME];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 2, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 1, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((FRAME - 14) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 1, 10]);
    f[30..34].copy_from_slice(&[10, 0, 2, 10]);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&((FRAME - 34) as u16).to_be_bytes());
    f
}

fn main() {
    let short = std::env::args().any(|a| a == "--short");
    let budget = Duration::from_millis(if short { 200 } else { 2000 });
    let engine = Engine::new(None).expect("engine");
    println!("per-hop cost in a fused group, {FRAME}+4 B frames, batch {BATCH}");
    println!(
        "{:>5} {:>14} {:>22}",
        "hops", "ns/frame/hop", "outside modules (ns)"
    );
    for hops in [1, 2, 4, 8, 32] {
        let (all, host) = run(&engine, hops, budget);
        println!("{hops:>5} {all:>14.1} {host:>22.1}");
    }
}
