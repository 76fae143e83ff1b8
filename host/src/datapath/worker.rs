//! The worker: one process per VNF, inside the VNF's namespace and cgroup,
//! running its module over batches of frames from its ports.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nfvhost_abi::{DropReason, LogLevel, Verdict};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

use super::packet_socket::PacketSocketPort;
use super::port::Port;
use super::stats::{StatsLayout, StatsSegment};
use super::tap::TapPort;
use crate::engine::{BatchOutcome, CallFailure, Engine, InstanceLimits, LoadedModule, VnfInstance};
use crate::logging::host_log;

/// How a port reaches the wire.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PortBinding {
    /// An interface of that name in the worker's namespace (a veth end).
    Interface { ifname: String },
    /// A persistent TAP device in another namespace, opened by name there.
    Tap { netns: String, ifname: String },
}

/// A port of the VNF.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkerPort {
    pub name: String,
    pub binding: PortBinding,
}

/// Everything a worker needs, written by the supervisor as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub chain: String,
    pub vnf: String,
    pub netns: String,
    pub cgroup: Option<crate::sys::cgroup::Cgroup>,
    pub module: PathBuf,
    pub cache_dir: Option<PathBuf>,
    /// The init document handed to `nfv_init` (JSON text).
    pub init_document: String,
    pub ports: Vec<WorkerPort>,
    pub stats_path: PathBuf,
    /// Where the module's declared metric names are written.
    pub metrics_path: PathBuf,
    pub memory_bytes: usize,
    pub batch_size: usize,
    pub tick_ms: u64,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Relaxed);
}

/// Runs a worker until SIGTERM or SIGINT. Writes `READY` on stdout once the
/// module is initialised and the ports are open.
pub fn run(spec: WorkerSpec) -> anyhow::Result<()> {
    let who = spec.vnf.clone();
    // Die with the supervisor rather than linger unsupervised.
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t) };
    }
    if let Some(cg) = &spec.cgroup {
        cg.add_process(std::process::id() as i32)
            .with_context(|| format!("joining cgroup of {who}"))?;
    }
    let mut ports = open_ports(&spec)?;

    let engine = Engine::new(spec.cache_dir.clone())?;
    let module = engine.load(&spec.module)?;
    let stats = StatsSegment::create(&spec.stats_path)
        .with_context(|| format!("creating stats segment {}", spec.stats_path.display()))?;
    stats.pid.store(std::process::id() as u64, Relaxed);
    stats.port_count.store(ports.len() as u64, Relaxed);
    for p in &stats.ports[..ports.len()] {
        p.up.store(1, Relaxed);
    }
    let limits = InstanceLimits {
        memory_bytes: spec.memory_bytes,
        batch_size: spec.batch_size,
        ..Default::default()
    };
    let mut instance = instantiate(&engine, &module, &spec, &limits, &stats)?;
    println!("READY");
    use std::io::Write;
    std::io::stdout().flush().ok();
    host_log(
        &who,
        LogLevel::Info,
        &format!(
            "running {} ({} ports, batch {})",
            spec.module.display(),
            ports.len(),
            instance.batch_size()
        ),
    );

    let tick_every = Duration::from_millis(spec.tick_ms.max(1));
    let mut next_tick = Instant::now() + tick_every;
    let mut metric_values = Vec::new();
    let mut batch = Batch::new(instance.batch_size());
    while !STOP.load(Relaxed) {
        let timeout = next_tick.saturating_duration_since(Instant::now());
        wait_readable(&ports, timeout)?;
        if receive(&mut ports, &mut instance, &mut batch, &stats) > 0 {
            let started = Instant::now();
            let result = instance.process(&batch.frames, &mut batch.outcome);
            stats.observe_call(
                started.elapsed().as_nanos() as u64,
                batch.frames.len() as u64,
            );
            match result {
                Ok(()) => transmit(&mut ports, &instance, &batch, &stats),
                Err(failure) => {
                    let reason = if failure == CallFailure::Timeout {
                        DropReason::Timeout
                    } else {
                        DropReason::Trap
                    };
                    count_drops(&stats, reason, batch.frames.len());
                    stats.trap(failure.label());
                    host_log(
                        &who,
                        LogLevel::Error,
                        &format!(
                            "{failure}; {} frames dropped; restarting the module instance",
                            batch.frames.len()
                        ),
                    );
                    instance = instantiate(&engine, &module, &spec, &limits, &stats)?;
                }
            }
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + tick_every;
            match instance.tick() {
                Ok(()) => send_emitted(&mut ports, &instance, &stats),
                Err(failure) => {
                    stats.trap(failure.label());
                    host_log(
                        &who,
                        LogLevel::Error,
                        &format!("tick: {failure}; restarting the module instance"),
                    );
                    instance = instantiate(&engine, &module, &spec, &limits, &stats)?;
                }
            }
            publish_gauges(&instance, &stats, &mut metric_values);
        }
    }
    host_log(&who, LogLevel::Info, "stopping");
    for p in &stats.ports[..ports.len()] {
        p.up.store(0, Relaxed);
    }
    Ok(())
}

fn open_ports(spec: &WorkerSpec) -> anyhow::Result<Vec<Box<dyn Port>>> {
    // TAP devices live in another namespace: open them before entering ours.
    let mut taps = Vec::new();
    for p in &spec.ports {
        if let PortBinding::Tap { netns, ifname } = &p.binding {
            let ns = crate::sys::netns::NetNs::open(netns)?;
            let fd = crate::sys::link::open_tap(&ns, ifname, false)
                .with_context(|| format!("opening TAP {ifname} in {netns}"))?;
            taps.push((p.name.clone(), fd));
        }
    }
    crate::sys::netns::NetNs::open(&spec.netns)?
        .enter_current_thread()
        .with_context(|| format!("entering namespace {}", spec.netns))?;
    let mut ports: Vec<Box<dyn Port>> = Vec::new();
    for p in &spec.ports {
        match &p.binding {
            PortBinding::Interface { ifname } => {
                ports.push(Box::new(PacketSocketPort::open(&p.name, ifname)?))
            }
            PortBinding::Tap { .. } => {
                let i = taps
                    .iter()
                    .position(|(n, _)| *n == p.name)
                    .expect("opened above");
                let (name, fd) = taps.remove(i);
                ports.push(Box::new(TapPort::new(&name, fd)?));
            }
        }
    }
    Ok(ports)
}

fn instantiate(
    engine: &Engine,
    module: &LoadedModule,
    spec: &WorkerSpec,
    limits: &InstanceLimits,
    stats: &StatsLayout,
) -> anyhow::Result<VnfInstance> {
    let instance = VnfInstance::new(
        engine,
        module,
        &spec.vnf,
        spec.ports.len() as u16,
        spec.init_document.as_bytes(),
        limits.clone(),
    )
    .with_context(|| format!("starting module {}", module.path.display()))?;
    let names: Vec<serde_json::Value> = instance
        .metrics()
        .iter()
        .map(|m| serde_json::json!({ "name": m.name, "help": m.help, "kind": m.kind.label() }))
        .collect();
    std::fs::write(&spec.metrics_path, serde_json::to_vec(&names)?)?;
    stats.instance_generation.fetch_add(1, Relaxed);
    Ok(instance)
}

/// One batch in flight: `(in_port, len)` per received slot.
struct Batch {
    frames: Vec<(u16, usize)>,
    lens: Vec<usize>,
    outcome: BatchOutcome,
}

impl Batch {
    fn new(size: usize) -> Self {
        Batch {
            frames: Vec::with_capacity(size),
            lens: vec![0; size],
            outcome: BatchOutcome::default(),
        }
    }
}

fn wait_readable(ports: &[Box<dyn Port>], timeout: Duration) -> anyhow::Result<()> {
    let mut fds: Vec<PollFd<'_>> = ports
        .iter()
        .map(|p| PollFd::new(p.fd(), PollFlags::POLLIN))
        .collect();
    let ms = u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX);
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Fills the batch from every port, straight into the module's slots.
fn receive(
    ports: &mut [Box<dyn Port>],
    instance: &mut VnfInstance,
    batch: &mut Batch,
    stats: &StatsLayout,
) -> usize {
    batch.frames.clear();
    let capacity = instance.batch_size();
    let mut slots: Vec<&mut [u8]> = instance.slots_mut().collect();
    for (port_index, port) in ports.iter_mut().enumerate() {
        let filled = batch.frames.len();
        if filled == capacity {
            break;
        }
        let counters = &stats.ports[port_index];
        match port.recv_batch(&mut slots[filled..], &mut batch.lens[filled..capacity]) {
            Ok(got) => {
                for &len in &batch.lens[filled..filled + got.frames] {
                    counters.rx_packets.fetch_add(1, Relaxed);
                    counters.rx_bytes.fetch_add(len as u64, Relaxed);
                    batch.frames.push((port_index as u16, len));
                }
                counters.rx_errors.fetch_add(got.truncated as u64, Relaxed);
            }
            Err(_) => {
                counters.rx_errors.fetch_add(1, Relaxed);
            }
        }
    }
    let n = batch.frames.len();
    stats.received.fetch_add(n as u64, Relaxed);
    n
}

fn count_drops(stats: &StatsLayout, reason: DropReason, n: usize) {
    stats.dropped.fetch_add(n as u64, Relaxed);
    stats.drops_by_reason[reason as usize].fetch_add(n as u64, Relaxed);
}

/// Sends forwarded frames (grouped per egress port, one syscall each) and
/// then anything the module emitted.
fn transmit(
    ports: &mut [Box<dyn Port>],
    instance: &VnfInstance,
    batch: &Batch,
    stats: &StatsLayout,
) {
    for (out_index, port) in ports.iter_mut().enumerate() {
        let frames: Vec<&[u8]> = batch
            .outcome
            .verdicts
            .iter()
            .enumerate()
            .filter(|(_, (v, _))| *v == Verdict::Forward(out_index as u16))
            .map(|(i, (_, len))| instance.frame(i, *len))
            .collect();
        if !frames.is_empty() {
            let sent = send(port.as_mut(), &stats.ports[out_index], &frames);
            stats.forwarded.fetch_add(sent as u64, Relaxed);
            count_drops(stats, DropReason::TxError, frames.len() - sent);
        }
    }
    for (verdict, _) in &batch.outcome.verdicts {
        match verdict {
            Verdict::Forward(_) => {}
            Verdict::Consume => {
                stats.consumed.fetch_add(1, Relaxed);
            }
            Verdict::Drop(reason) => count_drops(stats, *reason, 1),
        }
    }
    send_emitted(ports, instance, stats);
}

fn send_emitted(ports: &mut [Box<dyn Port>], instance: &VnfInstance, stats: &StatsLayout) {
    for (port_index, port) in ports.iter_mut().enumerate() {
        let frames: Vec<&[u8]> = instance
            .emitted()
            .filter(|(p, _)| *p as usize == port_index)
            .map(|(_, f)| f)
            .collect();
        if !frames.is_empty() {
            let sent = send(port.as_mut(), &stats.ports[port_index], &frames);
            stats.emitted.fetch_add(sent as u64, Relaxed);
        }
    }
}

fn send(port: &mut dyn Port, counters: &super::stats::PortCounters, frames: &[&[u8]]) -> usize {
    let sent = port.send_batch(frames).unwrap_or(0);
    counters.tx_packets.fetch_add(sent as u64, Relaxed);
    counters
        .tx_bytes
        .fetch_add(frames[..sent].iter().map(|f| f.len() as u64).sum(), Relaxed);
    counters
        .tx_errors
        .fetch_add((frames.len() - sent) as u64, Relaxed);
    sent
}

fn publish_gauges(instance: &VnfInstance, stats: &StatsLayout, values: &mut Vec<u64>) {
    instance.metric_values(values);
    for (cell, v) in stats.module_metrics.iter().zip(values.iter()) {
        cell.store(*v, Relaxed);
    }
    let (used, limit) = instance.memory_usage();
    stats.module_memory_bytes.store(used as u64, Relaxed);
    stats.module_memory_limit.store(limit as u64, Relaxed);
}
