//! The worker: one process per VNF, inside the VNF's namespace and cgroup,
//! running its module over batches of frames from its ports.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nfvhost_abi::{DropReason, LogLevel, Verdict};
use serde::{Deserialize, Serialize};

use super::packet_socket::PacketSocketPort;
use super::port::{Offload, Port};
use super::stats::{StatsLayout, StatsSegment};
use super::tap::TapPort;
use crate::engine::{
    BatchOutcome, CallFailure, Engine, FrameIn, InstanceLimits, LoadedModule, VnfInstance,
};
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
    /// Spin on the sockets instead of sleeping in poll().
    #[serde(default)]
    pub busy_poll: bool,
    /// Carry virtio-net headers (checksum and segmentation offload).
    #[serde(default)]
    pub offload: bool,
    /// CPUs to pin the worker to (empty: any).
    #[serde(default)]
    pub cpus: Vec<usize>,
}

/// Slot size when offloads are carried: a whole 64 KB super-frame plus its
/// Ethernet header, rounded up.
pub const SUPER_FRAME_SLOT: usize = 65_536 + 1024;

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
    pin_to_cpus(&spec.cpus).with_context(|| format!("pinning {who} to CPUs {:?}", spec.cpus))?;
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
    let mut limits = InstanceLimits {
        memory_bytes: spec.memory_bytes,
        batch_size: spec.batch_size,
        ..Default::default()
    };
    if spec.offload {
        limits.slot_size = SUPER_FRAME_SLOT;
    }
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
    let mut pollfds = poll_set(&ports);
    // After a batch that brought frames, read again before sleeping: under
    // load the sockets are rarely empty, and poll() would be a wasted call.
    let mut busy = false;
    while !STOP.load(Relaxed) {
        if !busy && !spec.busy_poll {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            wait_readable(&mut pollfds, timeout)?;
        }
        busy = receive(&mut ports, &mut instance, &mut batch, &stats) > 0;
        if busy {
            let started = Instant::now();
            let result = instance.process(&batch.frames, &mut batch.outcome);
            stats.observe_call(
                started.elapsed().as_nanos() as u64,
                batch.frames.len() as u64,
            );
            match result {
                Ok(()) => transmit(&mut ports, &instance, &mut batch, &stats),
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
            for (port, counters) in ports.iter_mut().zip(&stats.ports) {
                let drops = port.take_kernel_drops();
                if drops > 0 {
                    counters.rx_dropped.fetch_add(drops, Relaxed);
                }
            }
        }
    }
    host_log(&who, LogLevel::Info, "stopping");
    for p in &stats.ports[..ports.len()] {
        p.up.store(0, Relaxed);
    }
    Ok(())
}

fn pin_to_cpus(cpus: &[usize]) -> std::io::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is plain old data; zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: CPU_SET only writes inside `set`; cpu < 1024 (validated).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the stated size; 0 = this thread,
    // which is the whole worker at this point (no other thread yet).
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } < 0 {
        return Err(std::io::Error::last_os_error());
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
            PortBinding::Interface { ifname } => ports.push(Box::new(PacketSocketPort::open(
                &p.name,
                ifname,
                spec.offload,
            )?)),
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

/// One batch in flight: `(in_port, len)` per received slot, plus scratch
/// space reused from batch to batch so the hot path never allocates.
struct Batch {
    frames: Vec<FrameIn>,
    lens: Vec<usize>,
    /// The offload header each slot's frame arrived with, re-attached when
    /// it is forwarded.
    offloads: Vec<Offload>,
    outcome: BatchOutcome,
    /// Slot indexes of the frames forwarded out of one port.
    out_slots: Vec<usize>,
}

impl Batch {
    fn new(size: usize) -> Self {
        Batch {
            frames: Vec::with_capacity(size),
            lens: vec![0; size],
            offloads: vec![Offload::NONE; size],
            outcome: BatchOutcome {
                verdicts: Vec::with_capacity(size),
            },
            out_slots: Vec::with_capacity(size),
        }
    }
}

/// Builds `[&[u8]]` and `[Offload]` on the stack from an iterator (at most
/// [`nfvhost_abi::MAX_BATCH`] frames per call) and hands them to `f`.
fn with_frames<'a>(
    frames: impl Iterator<Item = (&'a [u8], Offload)>,
    mut f: impl FnMut(&[&[u8]], &[Offload]),
) {
    let mut buf: [&[u8]; nfvhost_abi::MAX_BATCH] = [&[]; nfvhost_abi::MAX_BATCH];
    let mut offloads = [Offload::NONE; nfvhost_abi::MAX_BATCH];
    let mut n = 0;
    for (frame, offload) in frames {
        buf[n] = frame;
        offloads[n] = offload;
        n += 1;
        if n == buf.len() {
            f(&buf[..n], &offloads[..n]);
            n = 0;
        }
    }
    if n > 0 {
        f(&buf[..n], &offloads[..n]);
    }
}

/// The poll set, built once: waiting allocates nothing.
fn poll_set(ports: &[Box<dyn Port>]) -> Vec<libc::pollfd> {
    ports
        .iter()
        .map(|p| libc::pollfd {
            fd: p.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect()
}

fn wait_readable(fds: &mut [libc::pollfd], timeout: Duration) -> anyhow::Result<()> {
    let ms = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fds` is a live, exclusively borrowed array of pollfd of the
    // stated length; the descriptors belong to ports that outlive the call.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if ret < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e.into());
        }
    }
    Ok(())
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
    // The slots as a stack array of slices: no allocation per batch.
    let mut slots: [&mut [u8]; nfvhost_abi::MAX_BATCH] = std::array::from_fn(|_| &mut [][..]);
    for (cell, slot) in slots.iter_mut().zip(instance.slots_mut()) {
        *cell = slot;
    }
    for (port_index, port) in ports.iter_mut().enumerate() {
        let filled = batch.frames.len();
        if filled == capacity {
            break;
        }
        let counters = &stats.ports[port_index];
        match port.recv_batch(
            &mut slots[filled..capacity],
            &mut batch.lens[filled..capacity],
            &mut batch.offloads[filled..capacity],
        ) {
            Ok(got) => {
                let mut bytes = 0;
                for i in filled..filled + got.frames {
                    let (len, offload) = (batch.lens[i], batch.offloads[i]);
                    bytes += len as u64;
                    batch.frames.push(FrameIn {
                        in_port: port_index as u16,
                        len,
                        flags: offload.abi_flags(),
                        gso_size: offload.gso_size(),
                    });
                }
                // One atomic add per counter per batch, not per packet.
                if got.frames > 0 {
                    counters.rx_packets.fetch_add(got.frames as u64, Relaxed);
                    counters.rx_bytes.fetch_add(bytes, Relaxed);
                }
                if got.truncated > 0 {
                    counters.rx_errors.fetch_add(got.truncated as u64, Relaxed);
                }
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
    batch: &mut Batch,
    stats: &StatsLayout,
) {
    for (out_index, port) in ports.iter_mut().enumerate() {
        batch.out_slots.clear();
        batch.out_slots.extend(
            batch
                .outcome
                .verdicts
                .iter()
                .enumerate()
                .filter(|(_, (v, _))| *v == Verdict::Forward(out_index as u16))
                .map(|(i, _)| i),
        );
        if batch.out_slots.is_empty() {
            continue;
        }
        let verdicts = &batch.outcome.verdicts;
        let arrived = &batch.offloads;
        with_frames(
            batch
                .out_slots
                .iter()
                .map(|&i| (instance.frame(i, verdicts[i].1), arrived[i])),
            |frames, offloads| {
                let sent = send(port.as_mut(), &stats.ports[out_index], frames, offloads);
                stats.forwarded.fetch_add(sent as u64, Relaxed);
                if sent < frames.len() {
                    count_drops(stats, DropReason::TxError, frames.len() - sent);
                }
            },
        );
    }
    let mut consumed = 0u64;
    for (verdict, _) in &batch.outcome.verdicts {
        match verdict {
            Verdict::Forward(_) => {}
            Verdict::Consume => consumed += 1,
            Verdict::Drop(reason) => count_drops(stats, *reason, 1),
        }
    }
    if consumed > 0 {
        stats.consumed.fetch_add(consumed, Relaxed);
    }
    send_emitted(ports, instance, stats);
}

fn send_emitted(ports: &mut [Box<dyn Port>], instance: &VnfInstance, stats: &StatsLayout) {
    if instance.emitted().next().is_none() {
        return;
    }
    for (port_index, port) in ports.iter_mut().enumerate() {
        with_frames(
            instance
                .emitted()
                .filter(|(p, _)| *p as usize == port_index)
                .map(|(_, f)| (f, Offload::NONE)),
            |frames, offloads| {
                let sent = send(port.as_mut(), &stats.ports[port_index], frames, offloads);
                stats.emitted.fetch_add(sent as u64, Relaxed);
            },
        );
    }
}

fn send(
    port: &mut dyn Port,
    counters: &super::stats::PortCounters,
    frames: &[&[u8]],
    offloads: &[Offload],
) -> usize {
    let sent = port.send_batch(frames, offloads).unwrap_or(0);
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
