//! The worker loop: receive a batch from every port straight into the
//! module's slots, run the module once over it, send what it forwarded and
//! emitted, count everything in the stats segment, tick the module's timer,
//! and restart the module after a trap.
//!
//! The loop works against [`Port`]s only, so it runs the same over kernel
//! sockets, TAPs and in-memory links, and is unit-tested against fake ports
//! without root. Process set-up is in [`super::setup`].

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use nfvhost_abi::{DropReason, LogLevel, MAX_BATCH};

use super::control::ControlFiles;
use super::health::{self, PortHealth};
use super::port::Port;
use super::stats::StatsLayout;
use super::sys::fd::PollSet;
use super::transmit::{self, TxScratch};
use crate::chain::PollMode;
use crate::engine::{
    Batch, CallFailure, Engine, FrameIn, InstanceError, InstanceLimits, LoadedModule, VnetHeader,
    VnfInstance,
};
use crate::logging::host_log;

mod capture;
mod handover;

pub use capture::{capture_message, CaptureRequest, PortCapture};

pub use super::setup::{run, SetupError};
pub use super::spec::{PortBinding, WorkerPort, WorkerSpec, SUPER_FRAME_SLOT};
pub(in crate::datapath) use handover::serve_control;
pub use handover::{ReplaceReply, ReplaceRequest, Replaced};

/// The MTU of a port whose link has none (an in-memory link): any frame.
const NO_MTU: u32 = 65_535;

/// What stopped the loop.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("couldn't start module {module} for {vnf}: {source}")]
    Instantiate {
        vnf: String,
        module: PathBuf,
        source: Box<InstanceError>,
    },
    #[error("couldn't write the metric names of {vnf} to {path}: {source}")]
    MetricNames {
        vnf: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("waiting for frames: {0}")]
    Poll(std::io::Error),
    #[error(
        "{vnf} has {count} ports; a worker runs at most {}",
        nfvhost_abi::MAX_PORTS
    )]
    TooManyPorts { vnf: String, count: usize },
}

/// Creates the module instance: the first, and a fresh one after each trap.
pub struct Instantiator {
    pub engine: Engine,
    pub module: LoadedModule,
    pub vnf: String,
    /// The init document handed to `nfv_init` (JSON text).
    pub init_document: String,
    pub limits: InstanceLimits,
    /// Where the module's declared metric names are written, if anywhere:
    /// its path (for messages) and a descriptor opened before the worker
    /// was sandboxed (no path resolves afterwards).
    pub metrics_file: Option<(PathBuf, std::fs::File)>,
}

impl Instantiator {
    fn instantiate(&self, port_count: u16) -> Result<VnfInstance, WorkerError> {
        let instance = self
            .create(
                &self.module,
                &self.init_document,
                port_count,
                Instant::now(),
            )
            .map_err(|source| WorkerError::Instantiate {
                vnf: self.vnf.clone(),
                module: self.module.path.clone(),
                source: Box::new(source),
            })?;
        self.publish_metric_names(&instance)?;
        Ok(instance)
    }

    /// An instance of `module` whose clock counts from `clock_origin`.
    fn create(
        &self,
        module: &LoadedModule,
        init_document: &str,
        port_count: u16,
        clock_origin: Instant,
    ) -> Result<VnfInstance, InstanceError> {
        VnfInstance::with_clock(
            &self.engine,
            module,
            &self.vnf,
            port_count,
            init_document.as_bytes(),
            self.limits.clone(),
            clock_origin,
        )
    }

    /// Writes the metrics `instance` declared where the exporter reads them.
    fn publish_metric_names(&self, instance: &VnfInstance) -> Result<(), WorkerError> {
        if let Some((path, file)) = &self.metrics_file {
            let names: Vec<serde_json::Value> = instance
                .metrics()
                .iter()
                .map(|m| serde_json::json!({ "name": m.name, "help": m.help, "kind": m.kind.label() }))
                .collect();
            let text = serde_json::to_vec(&names).expect("JSON values serialize");
            use std::os::unix::fs::FileExt as _;
            file.set_len(0)
                .and_then(|()| file.write_all_at(&text, 0))
                .map_err(|source| WorkerError::MetricNames {
                    vnf: self.vnf.clone(),
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

/// A module running over its ports.
pub struct Worker<'s> {
    ports: Vec<Box<dyn Port>>,
    stats: &'s StatsLayout,
    instantiator: Instantiator,
    instance: VnfInstance,
    batch: Batch,
    /// Per slot: the received length and offload state, as ports write them.
    lens: Vec<usize>,
    vnets: Vec<VnetHeader>,
    metric_values: Vec<u64>,
    /// Per port: the link's MTU, which ordinary frames must fit.
    mtus: Vec<u32>,
    /// Frames completed or segmented in software on their way out.
    tx: TxScratch,
    /// Ports whose link went away.
    health: PortHealth,
    /// The ports' descriptors, entry `i` for port `i`; a down port's entry
    /// is taken out.
    poll_set: PollSet,
    /// The supervisor's channel for `nfvhost replace`, if any.
    control: Option<std::os::fd::OwnedFd>,
    /// `nfvhost capture` of one port, while one runs: the data path looks
    /// at this once per batch and does nothing more when it is `None`.
    capture: Option<Box<PortCapture<std::fs::File>>>,
    /// The ports' names in the chain file (port order), for `capture`.
    port_names: Vec<String>,
    /// Where `nfvhost link set` leaves new configurations (opened before
    /// the sandbox); `None`: none are looked for.
    pub link_set: Option<ControlFiles>,
}

impl<'s> Worker<'s> {
    /// Starts the module over `ports` (port `i` is the module's port `i`),
    /// counting into `stats`.
    pub fn new(
        ports: Vec<Box<dyn Port>>,
        stats: &'s StatsLayout,
        instantiator: Instantiator,
    ) -> Result<Self, WorkerError> {
        if ports.len() > nfvhost_abi::MAX_PORTS {
            return Err(WorkerError::TooManyPorts {
                vnf: instantiator.vnf.clone(),
                count: ports.len(),
            });
        }
        stats.port_count.store(ports.len() as u64, Relaxed);
        for p in &stats.ports[..ports.len()] {
            p.up.store(1, Relaxed);
        }
        let port_count = ports.len();
        let instance = instantiator.instantiate(ports.len() as u16)?;
        stats.instance_generation.fetch_add(1, Relaxed);
        let size = instance.batch_size();
        let poll_set = PollSet::new(ports.iter().map(|p| p.readable_fd()));
        Ok(Worker {
            ports,
            stats,
            instantiator,
            instance,
            batch: Batch::new(size),
            lens: vec![0; size],
            vnets: vec![VnetHeader::NONE; size],
            metric_values: Vec::new(),
            mtus: vec![NO_MTU; port_count],
            tx: TxScratch::default(),
            health: PortHealth::new(port_count),
            poll_set,
            control: None,
            capture: None,
            port_names: Vec::new(),
            link_set: None,
        })
    }

    /// Sets each port's link MTU (port order): ordinary frames longer than
    /// it plus their Ethernet header are refused (`too_long`) instead of
    /// handed to the kernel. Ports without one (in-memory links) take any.
    pub fn set_link_mtus(&mut self, mtus: &[u32]) {
        for (cell, mtu) in self.mtus.iter_mut().zip(mtus) {
            *cell = *mtu;
        }
    }

    /// Names the ports (port order) as the chain file does, for `nfvhost
    /// capture`; without names a port is known by its link's name.
    pub fn set_port_names(&mut self, names: Vec<String>) {
        self.port_names = names;
    }

    /// The index of the port called `name`.
    pub(super) fn port_index(&self, name: &str) -> Option<usize> {
        if self.port_names.is_empty() {
            self.ports.iter().position(|p| p.name() == name)
        } else {
            self.port_names.iter().position(|n| n == name)
        }
    }

    /// Starts mirroring port `port` into `capture` (a running capture of
    /// this VNF is replaced: its reader sees the end of its stream).
    pub(super) fn start_capture(&mut self, capture: PortCapture<std::fs::File>) {
        if let Some(old) = self.capture.take() {
            host_log(
                self.vnf(),
                LogLevel::Info,
                &format!("capture replaced by a new one: {}", old.outcome()),
            );
        }
        self.capture = Some(Box::new(capture));
    }

    /// Ends the capture once it is over (count, time, or reader gone);
    /// looked at every tick.
    fn check_capture(&mut self) {
        let Some(c) = self.capture.as_deref_mut() else {
            return;
        };
        c.flush();
        c.check_reader();
        if c.finished(Instant::now()) {
            let port = self.port_names.get(c.port).cloned().unwrap_or_default();
            host_log(
                &self.instantiator.vnf,
                LogLevel::Info,
                &format!("capture of port {port} ended: {}", c.outcome()),
            );
            self.capture = None;
        }
    }

    /// Records the frames of the batch just received on the captured port
    /// (before the module sees, and may rewrite, them).
    fn capture_received(&mut self) {
        let Some(c) = self.capture.as_deref_mut() else {
            return;
        };
        for (i, f) in self.batch.frames().iter().enumerate() {
            if usize::from(f.in_port) == c.port {
                c.record(self.instance.frame(i, f.len));
            }
        }
    }

    /// Frames per batch.
    pub fn batch_size(&self) -> usize {
        self.instance.batch_size()
    }

    /// Serves `nfvhost replace` requests arriving on `control` (looked at
    /// once per tick, between two batches). In a fused group one member
    /// holds the process's channel, and the loop serves every member's
    /// requests on it (see [`super::group::run_all`]).
    pub fn set_control(&mut self, control: std::os::fd::OwnedFd) {
        self.control = Some(control);
    }

    /// Takes the control channel back (the group loop serves it).
    pub(super) fn take_control(&mut self) -> Option<std::os::fd::OwnedFd> {
        self.control.take()
    }

    /// The VNF this worker runs.
    pub fn vnf(&self) -> &str {
        &self.instantiator.vnf
    }

    /// When the module's one-shot timer is due, if it set one.
    pub fn timer_deadline(&self) -> Option<Instant> {
        self.instance.timer_deadline()
    }

    /// Runs until `stop()` says so: waits for frames as `poll` says,
    /// moves batches, and ticks every `tick_every` (see
    /// [`super::group::run_all`], which runs a fused group the same way).
    pub fn run(
        &mut self,
        tick_every: Duration,
        poll: PollMode,
        stop: impl Fn() -> bool,
    ) -> Result<(), WorkerError> {
        super::group::run_all(std::slice::from_mut(self), tick_every, poll, stop)
    }

    /// Receives one batch from the ports and, if it brought frames, runs
    /// the module over it and sends the results. Returns the frames
    /// received.
    pub fn poll_once(&mut self) -> Result<usize, WorkerError> {
        self.poll(true)
    }

    /// As [`Worker::poll_once`], from the ports no descriptor signals only
    /// (in-memory links): no system call.
    pub fn poll_pending(&mut self) -> Result<usize, WorkerError> {
        self.poll(false)
    }

    /// Whether frames wait on a port no descriptor signals.
    pub fn has_pending(&self) -> bool {
        self.ports.iter().any(|p| p.has_pending())
    }

    /// Waits until a port of any of `members` is readable or `timeout`
    /// passes (one poll(2) for a whole fused group), then takes down the
    /// ports whose descriptor reports an error.
    pub fn wait_all(members: &mut [Worker<'_>], timeout: Duration) -> Result<(), WorkerError> {
        let mut sets: Vec<&mut PollSet> = members.iter_mut().map(|m| &mut m.poll_set).collect();
        super::sys::fd::wait_all(&mut sets, timeout).map_err(WorkerError::Poll)?;
        for m in members.iter_mut() {
            m.take_faulted_ports_down();
        }
        Ok(())
    }

    /// The module's stats segment.
    pub fn stats(&self) -> &'s StatsLayout {
        self.stats
    }

    /// Marks the ports down (the loop stopped).
    pub fn mark_down(&self) {
        for p in &self.stats.ports[..self.ports.len()] {
            p.up.store(0, Relaxed);
        }
    }

    fn poll(&mut self, all_ports: bool) -> Result<usize, WorkerError> {
        let n = self.receive(all_ports);
        if n == 0 {
            return Ok(0);
        }
        if self.capture.is_some() {
            self.capture_received();
        }
        let started = Instant::now();
        let result = self.instance.process(&mut self.batch);
        self.stats
            .observe_call(started.elapsed().as_nanos() as u64, n as u64);
        match result {
            Ok(()) => {
                self.transmit();
                self.send_emitted();
                if let Some(c) = self.capture.as_deref_mut() {
                    c.flush();
                }
            }
            Err(failure) => {
                let reason = if failure == CallFailure::Timeout {
                    DropReason::Timeout
                } else {
                    DropReason::Trap
                };
                count_drops(self.stats, reason, n as u64);
                let message =
                    format!("{failure}; {n} frames dropped; restarting the module instance");
                self.restart(&failure, &message)?;
            }
        }
        Ok(n)
    }

    /// Runs the module's timer, sends what it emitted, and publishes the
    /// module's gauges and the ports' kernel drops.
    pub fn tick(&mut self) -> Result<(), WorkerError> {
        if self.capture.is_some() {
            self.check_capture();
        }
        match self.instance.tick() {
            Ok(()) => self.send_emitted(),
            Err(failure) => {
                let message = format!("tick: {failure}; restarting the module instance");
                self.restart(&failure, &message)?;
            }
        }
        self.publish_gauges();
        self.recheck_down_ports(Instant::now());
        for (port, counters) in self.ports.iter_mut().zip(&self.stats.ports) {
            let drops = port.take_kernel_drops();
            if drops > 0 {
                counters.rx_dropped.fetch_add(drops, Relaxed);
            }
        }
        Ok(())
    }

    /// Takes down every port whose descriptor the last wait found broken.
    fn take_faulted_ports_down(&mut self) {
        let mut faulted = [false; nfvhost_abi::MAX_PORTS];
        for i in self.poll_set.faulted() {
            faulted[i] = true;
        }
        for (i, _) in faulted.iter().enumerate().filter(|(_, f)| **f) {
            self.port_down(i, "its descriptor reports an error");
        }
    }

    /// Marks port `i` down: out of the poll set, `up` 0, frames to it
    /// dropped as `port_down` until [`Worker::recheck_down_ports`] finds
    /// its link back.
    fn port_down(&mut self, i: usize, why: &str) {
        if !self.health.mark_down(i, Instant::now()) {
            return;
        }
        self.poll_set.set_enabled(i, false);
        self.stats.ports[i].up.store(0, Relaxed);
        host_log(
            &self.instantiator.vnf,
            LogLevel::Warn,
            &format!(
                "port {} is down ({why}); frames to it are dropped as port_down; \
                 looking again every {} s",
                self.ports[i].name(),
                health::RETRY_EVERY.as_secs()
            ),
        );
    }

    /// Asks every down port that is due whether its link is back.
    fn recheck_down_ports(&mut self, now: Instant) {
        let mut due = [false; nfvhost_abi::MAX_PORTS];
        for i in self.health.due(now) {
            due[i] = true;
        }
        for (i, _) in due.iter().enumerate().filter(|(_, d)| **d) {
            if self.ports[i].recheck() {
                self.health.mark_up(i);
                self.poll_set.set_enabled(i, true);
                self.stats.ports[i].up.store(1, Relaxed);
                host_log(
                    &self.instantiator.vnf,
                    LogLevel::Info,
                    &format!("port {} is up again", self.ports[i].name()),
                );
            } else {
                self.health.mark_down(i, now);
            }
        }
    }

    /// Runs the module's one-shot timer if it is due, and sends what it
    /// emitted.
    pub fn fire_timer(&mut self) -> Result<(), WorkerError> {
        match self.instance.fire_timer() {
            Ok(true) => self.send_emitted(),
            Ok(false) => {}
            Err(failure) => {
                let message = format!("timer: {failure}; restarting the module instance");
                self.restart(&failure, &message)?;
            }
        }
        Ok(())
    }

    /// Hands the module the configuration `nfvhost link set` left, without
    /// restarting it (its queue stays), and answers the command. Nothing
    /// when no request waits (each member of a group has its own files).
    pub(super) fn reconfigure(&mut self) {
        let Some(link_set) = self.link_set.as_mut() else {
            return;
        };
        let outcome = match link_set.take_request() {
            Ok(None) => return,
            Ok(Some(doc)) => {
                let done = self.instance.reconfigure(&doc).map_err(|e| e.to_string());
                if done.is_ok() {
                    // A restarted instance starts from the new configuration.
                    self.instantiator.init_document = String::from_utf8_lossy(&doc).into_owned();
                }
                done
            }
            Err(e) => Err(format!("reading the request: {e}")),
        };
        let vnf = &self.instantiator.vnf;
        match &outcome {
            Ok(()) => host_log(vnf, LogLevel::Info, "configuration changed while running"),
            Err(e) => host_log(
                vnf,
                LogLevel::Warn,
                &format!("new configuration refused: {e}"),
            ),
        }
        if let Err(e) = link_set.answer(&outcome) {
            host_log(
                vnf,
                LogLevel::Warn,
                &format!("couldn't answer `link set`: {e}"),
            );
        }
        self.send_emitted();
    }

    /// Counts the trap, logs `message` and replaces the instance.
    fn restart(&mut self, failure: &CallFailure, message: &str) -> Result<(), WorkerError> {
        self.stats.trap(failure.label());
        host_log(&self.instantiator.vnf, LogLevel::Error, message);
        self.instance = self.instantiator.instantiate(self.ports.len() as u16)?;
        self.stats.instance_generation.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Fills the batch from every port (or only those with frames pending
    /// that no descriptor signals), straight into the module's slots.
    fn receive(&mut self, all_ports: bool) -> usize {
        self.batch.clear();
        let capacity = self.instance.batch_size();
        // The slots as a stack array of slices: no allocation per batch.
        let mut slots: [&mut [u8]; MAX_BATCH] = std::array::from_fn(|_| &mut [][..]);
        for (cell, slot) in slots.iter_mut().zip(self.instance.slots_mut()) {
            *cell = slot;
        }
        let mut gone = [false; nfvhost_abi::MAX_PORTS];
        for (port_index, port) in self.ports.iter_mut().enumerate() {
            let filled = self.batch.len();
            if filled == capacity {
                break;
            }
            if self.health.is_down(port_index) || (!all_ports && !port.has_pending()) {
                continue;
            }
            let counters = &self.stats.ports[port_index];
            match port.recv_batch(
                &mut slots[filled..capacity],
                &mut self.lens[filled..capacity],
                &mut self.vnets[filled..capacity],
            ) {
                Ok(got) => {
                    let mut bytes = 0;
                    for i in filled..filled + got.frames {
                        bytes += self.lens[i] as u64;
                        self.batch.push(FrameIn {
                            in_port: port_index as u16,
                            len: self.lens[i],
                            vnet: self.vnets[i],
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
                Err(e) => {
                    counters.rx_errors.fetch_add(1, Relaxed);
                    gone[port_index] = health::link_gone(&e);
                }
            }
        }
        for (i, _) in gone.iter().enumerate().filter(|(_, g)| **g) {
            self.port_down(i, "its link is gone");
        }
        let n = self.batch.len();
        self.stats.received.fetch_add(n as u64, Relaxed);
        n
    }

    /// Sends forwarded frames (grouped per egress port, one call each) and
    /// counts the other outcomes, all as sorted by the batch.
    fn transmit(&mut self) {
        let (batch, instance, stats) = (&self.batch, &self.instance, self.stats);
        let tx = &mut self.tx;
        let mut gone = [false; nfvhost_abi::MAX_PORTS];
        for (out_index, port) in self.ports.iter_mut().enumerate() {
            let slots = batch.forwarded_to(out_index);
            if slots.is_empty() {
                continue;
            }
            if self.health.is_down(out_index) {
                count_drops(stats, DropReason::PortDown, slots.len() as u64);
                continue;
            }
            let verdicts = batch.verdicts();
            let frames = batch.frames();
            if let Some(c) = self.capture.as_deref_mut().filter(|c| c.port == out_index) {
                for &i in slots {
                    let i = usize::from(i);
                    c.record(instance.frame(i, verdicts[i].1));
                }
            }
            let mtu = self.mtus[out_index];
            let mut tx_errors = 0;
            with_frames(
                slots.iter().map(|&i| {
                    let i = usize::from(i);
                    // A module may push or pop VLAN tags on an offloaded
                    // frame: the change in length is in front of the L3
                    // header, so the saved offsets move by as much.
                    let mut vnet = frames[i].vnet;
                    vnet.shift_headers((verdicts[i].1 as i64 - frames[i].len as i64) as i16);
                    (instance.frame(i, verdicts[i].1), vnet)
                }),
                |frames, vnets| {
                    let counters = &stats.ports[out_index];
                    let sent = transmit::send(port.as_mut(), counters, mtu, frames, vnets, tx);
                    stats.forwarded.fetch_add(sent as u64, Relaxed);
                    tx_errors += (frames.len() - sent) as u64;
                    gone[out_index] |= tx.link_gone();
                },
            );
            if tx_errors > 0 {
                count_drops(stats, DropReason::TxError, tx_errors);
            }
        }
        if batch.consumed() > 0 {
            stats.consumed.fetch_add(batch.consumed(), Relaxed);
        }
        for &(reason, n) in batch.drops() {
            count_drops(stats, reason, n);
        }
        for (i, _) in gone.iter().enumerate().filter(|(_, g)| **g) {
            self.port_down(i, "its link is gone");
        }
    }

    fn send_emitted(&mut self) {
        let (instance, stats) = (&self.instance, self.stats);
        if instance.emitted().next().is_none() {
            return;
        }
        if let Some(c) = self.capture.as_deref_mut() {
            let port = c.port;
            for (_, f) in instance.emitted().filter(|(p, _)| usize::from(*p) == port) {
                c.record(f);
            }
            c.flush();
        }
        let tx = &mut self.tx;
        for (port_index, port) in self.ports.iter_mut().enumerate() {
            // What the module emits to a down port is not sent (emitted
            // frames are not part of received = forwarded + consumed +
            // dropped).
            if self.health.is_down(port_index) {
                continue;
            }
            let mtu = self.mtus[port_index];
            with_frames(
                instance
                    .emitted()
                    .filter(|(p, _)| usize::from(*p) == port_index)
                    .map(|(_, f)| (f, VnetHeader::NONE)),
                |frames, vnets| {
                    let counters = &stats.ports[port_index];
                    let sent = transmit::send(port.as_mut(), counters, mtu, frames, vnets, tx);
                    stats.emitted.fetch_add(sent as u64, Relaxed);
                },
            );
        }
    }

    fn publish_gauges(&mut self) {
        self.instance.metric_values(&mut self.metric_values);
        for (cell, v) in self.stats.module_metrics.iter().zip(&self.metric_values) {
            cell.store(*v, Relaxed);
        }
        let (used, limit) = self.instance.memory_usage();
        self.stats.module_memory_bytes.store(used as u64, Relaxed);
        self.stats.module_memory_limit.store(limit as u64, Relaxed);
    }
}

/// How long before a module's timer the worker stops sleeping and polls
/// its ports without sleeping until the timer is due. A sleeping process
/// wakes tens of microseconds after its deadline (more under load, or in a
/// VM), which a timer promised to the microsecond cannot absorb; spinning
/// this long per timer costs at most this much CPU.
pub const TIMER_SPIN: Duration = Duration::from_micros(100);

/// How long the loop may sleep at `now`: until the tick, or until
/// [`TIMER_SPIN`] before the module's timer; zero means poll without
/// sleeping.
pub(super) fn sleep_for(now: Instant, next_tick: Instant, timer: Option<Instant>) -> Duration {
    let tick = next_tick.saturating_duration_since(now);
    timer.map_or(tick, |t| {
        tick.min(t.saturating_duration_since(now).saturating_sub(TIMER_SPIN))
    })
}

fn count_drops(stats: &StatsLayout, reason: DropReason, n: u64) {
    stats.dropped.fetch_add(n, Relaxed);
    stats.drops_by_reason[reason as usize].fetch_add(n, Relaxed);
}

/// Builds `[&[u8]]` and `[VnetHeader]` on the stack from an iterator (at
/// most [`MAX_BATCH`] frames per call) and hands them to `f`.
fn with_frames<'a>(
    frames: impl Iterator<Item = (&'a [u8], VnetHeader)>,
    mut f: impl FnMut(&[&[u8]], &[VnetHeader]),
) {
    let mut buf: [&[u8]; MAX_BATCH] = [&[]; MAX_BATCH];
    let mut vnets = [VnetHeader::NONE; MAX_BATCH];
    let mut n = 0;
    for (frame, vnet) in frames {
        buf[n] = frame;
        vnets[n] = vnet;
        n += 1;
        if n == buf.len() {
            f(&buf[..n], &vnets[..n]);
            n = 0;
        }
    }
    if n > 0 {
        f(&buf[..n], &vnets[..n]);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use nfvhost_abi::DropReason;

    use super::*;
    use crate::datapath::port::fake::{FakeHandle, FakePort};
    use crate::datapath::port::memory;
    use crate::datapath::stats::StatsSegment;

    const SCRIPTED: &str = include_str!("testdata/scripted.wat");

    pub(crate) fn instantiator(engine: &Engine) -> Instantiator {
        let module = engine
            .load_bytes(std::path::Path::new("scripted.wat"), SCRIPTED.as_bytes())
            .expect("the test module loads");
        Instantiator {
            engine: engine.clone(),
            module,
            vnf: "t".into(),
            init_document: "{}".into(),
            limits: InstanceLimits {
                batch_size: 8,
                ..Default::default()
            },
            metrics_file: None,
        }
    }

    pub(crate) struct Rig {
        _dir: tempfile::TempDir,
        pub(crate) stats: StatsSegment,
        pub(crate) engine: Engine,
    }

    impl Rig {
        pub(crate) fn new() -> Rig {
            let dir = tempfile::tempdir().unwrap();
            let stats = StatsSegment::create(&dir.path().join("t.stats")).unwrap();
            Rig {
                _dir: dir,
                stats,
                engine: Engine::new(None).unwrap(),
            }
        }

        /// A worker over two fake ports.
        fn worker(&self) -> (Worker<'_>, FakeHandle, FakeHandle) {
            let (p0, h0) = FakePort::new("in");
            let (p1, h1) = FakePort::new("out");
            let worker = Worker::new(
                vec![Box::new(p0), Box::new(p1)],
                &self.stats,
                instantiator(&self.engine),
            )
            .unwrap();
            (worker, h0, h1)
        }

        fn drops(&self, reason: DropReason) -> u64 {
            self.stats.drops_by_reason[reason as usize].load(Relaxed)
        }

        /// received = forwarded + consumed + dropped, and the figures.
        pub(crate) fn assert_conserved(&self) -> (u64, u64, u64, u64) {
            let s = &self.stats;
            let (r, f, c, d) = (
                s.received.load(Relaxed),
                s.forwarded.load(Relaxed),
                s.consumed.load(Relaxed),
                s.dropped.load(Relaxed),
            );
            assert_eq!(
                r,
                f + c + d,
                "received {r} != forwarded {f} + consumed {c} + dropped {d}"
            );
            (r, f, c, d)
        }
    }

    pub(crate) fn frame(cmd: u8, tag: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0] = cmd;
        f[2] = tag;
        f
    }

    #[test]
    fn forwards_each_frame_to_the_port_the_module_chose() {
        let rig = Rig::new();
        let (mut w, h0, h1) = rig.worker();
        for tag in 1..=3 {
            h0.inject(&frame(0, tag));
        }
        h1.inject(&frame(0, 9));
        assert_eq!(w.poll_once().unwrap(), 4);
        assert_eq!(h1.sent(), [frame(0, 1), frame(0, 2), frame(0, 3)]);
        assert_eq!(h0.sent(), [frame(0, 9)]);
        assert_eq!(rig.assert_conserved(), (4, 4, 0, 0));
        let p = &rig.stats.ports;
        assert_eq!(p[0].rx_packets.load(Relaxed), 3);
        assert_eq!(p[0].rx_bytes.load(Relaxed), 180);
        assert_eq!(p[1].tx_packets.load(Relaxed), 3);
        assert_eq!(p[1].tx_bytes.load(Relaxed), 180);
        assert_eq!(p[0].tx_packets.load(Relaxed), 1);
        assert_eq!(rig.stats.port_count.load(Relaxed), 2);
        assert_eq!(rig.stats.instance_generation.load(Relaxed), 1);
        assert_eq!(rig.stats.batch_frames.sum.load(Relaxed), 4);
        // Nothing waiting: nothing happens.
        assert_eq!(w.poll_once().unwrap(), 0);
        assert_eq!(rig.stats.call_ns.count.load(Relaxed), 1);
    }

    #[test]
    fn counts_drops_by_reason_consumed_and_emitted_frames() {
        let rig = Rig::new();
        let (mut w, h0, h1) = rig.worker();
        for f in [
            frame(1, 1),
            frame(2, 2),
            frame(1, 3),
            frame(3, 4),
            frame(0, 5),
        ] {
            h0.inject(&f);
        }
        assert_eq!(w.poll_once().unwrap(), 5);
        assert_eq!(rig.assert_conserved(), (5, 1, 2, 2));
        assert_eq!(rig.drops(DropReason::Policy), 2);
        // The emitted copy goes out after the forwarded frame.
        assert_eq!(h1.sent(), [frame(0, 5), frame(3, 4)]);
        assert_eq!(rig.stats.emitted.load(Relaxed), 1);
        assert!(h0.sent().is_empty());
    }

    #[test]
    fn a_frame_the_port_refuses_is_a_tx_error_drop() {
        let rig = Rig::new();
        let (mut w, h0, h1) = rig.worker();
        h1.wire().send_room = Some(1);
        for tag in 1..=3 {
            h0.inject(&frame(0, tag));
        }
        w.poll_once().unwrap();
        assert_eq!(h1.sent(), [frame(0, 1)]);
        assert_eq!(rig.assert_conserved(), (3, 1, 0, 2));
        assert_eq!(rig.drops(DropReason::TxError), 2);
        assert_eq!(rig.stats.ports[1].tx_errors.load(Relaxed), 2);
    }

    #[test]
    fn a_trap_drops_the_batch_and_restarts_the_module_from_scratch() {
        let rig = Rig::new();
        let (mut w, h0, h1) = rig.worker();
        for _ in 0..2 {
            h0.inject(&frame(6, 0));
            w.poll_once().unwrap();
        }
        assert_eq!(h1.sent().iter().map(|f| f[1]).collect::<Vec<_>>(), [1, 2]);
        h0.inject(&frame(0, 1));
        h0.inject(&frame(0xee, 2));
        assert_eq!(w.poll_once().unwrap(), 2);
        assert_eq!(rig.drops(DropReason::Trap), 2, "the whole batch is lost");
        assert_eq!(
            rig.stats.traps[1].load(Relaxed),
            1,
            "one `unreachable` trap"
        );
        assert_eq!(rig.stats.instance_generation.load(Relaxed), 2);
        // A fresh instance: its call count starts again.
        h0.inject(&frame(6, 0));
        w.poll_once().unwrap();
        assert_eq!(h1.sent().last().unwrap()[1], 1);
        assert_eq!(rig.assert_conserved(), (5, 3, 0, 2));
    }

    #[test]
    fn tick_sends_what_the_module_emits_and_publishes_port_drops() {
        let rig = Rig::new();
        let (mut w, h0, _h1) = rig.worker();
        h0.wire().kernel_drops = 7;
        w.tick().unwrap();
        let mut tick = b"tick".to_vec();
        tick.resize(14, 0);
        assert_eq!(h0.sent(), [tick]);
        assert_eq!(rig.stats.emitted.load(Relaxed), 1);
        assert_eq!(rig.stats.ports[0].rx_dropped.load(Relaxed), 7);
        assert!(rig.stats.module_memory_bytes.load(Relaxed) > 0);
        h0.wire().fail_recv = true;
        assert_eq!(w.poll_once().unwrap(), 0);
        assert_eq!(rig.stats.ports[0].rx_errors.load(Relaxed), 1);
    }

    #[test]
    fn the_loop_sleeps_until_just_before_a_module_timer_and_spins_the_rest() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(sleep_for(now, now + ms(100), None), ms(100));
        assert_eq!(
            sleep_for(now, now + ms(100), Some(now + ms(10))),
            ms(10) - TIMER_SPIN
        );
        assert_eq!(sleep_for(now, now + ms(1), Some(now + ms(10))), ms(1));
        let soon = now + TIMER_SPIN / 2;
        assert_eq!(sleep_for(now, now + ms(100), Some(soon)), Duration::ZERO);
        assert_eq!(
            sleep_for(now, now + ms(100), Some(now - ms(1))),
            Duration::ZERO
        );
    }

    #[test]
    fn run_stops_when_asked_and_marks_ports_down() {
        let rig = Rig::new();
        let (mut w, h0, h1) = rig.worker();
        h0.inject(&frame(0, 1));
        assert_eq!(rig.stats.ports[0].up.load(Relaxed), 1);
        let polls = std::cell::Cell::new(0);
        w.run(Duration::from_millis(1), PollMode::Sleep, || {
            polls.set(polls.get() + 1);
            polls.get() > 3
        })
        .unwrap();
        assert_eq!(h1.sent(), [frame(0, 1)]);
        assert_eq!(rig.stats.ports[0].up.load(Relaxed), 0);
    }

    #[test]
    fn a_port_whose_link_goes_away_is_down_and_what_goes_to_it_is_counted() {
        let rig = Rig::new();
        let (mut w, h0, h1) = rig.worker();
        h1.wire().link_gone = true;
        for tag in 1..=3 {
            h0.inject(&frame(0, tag));
        }
        // Reading port 1 fails with ENXIO: it is down before the batch is
        // sent, and the frames the module routes to it are `port_down`.
        assert_eq!(w.poll_once().unwrap(), 3);
        assert_eq!(rig.drops(DropReason::PortDown), 3);
        assert_eq!(rig.drops(DropReason::TxError), 0);
        assert_eq!(rig.stats.ports[1].up.load(Relaxed), 0);
        assert_eq!(rig.stats.ports[0].up.load(Relaxed), 1);
        assert!(w.health.is_down(1));
        // From now on frames routed to it are not handed to the port.
        h0.inject(&frame(0, 4));
        h0.inject(&frame(0, 5));
        assert_eq!(w.poll_once().unwrap(), 2);
        assert_eq!(rig.drops(DropReason::PortDown), 5);
        // The other port still forwards (the module sends 1 -> 0).
        h1.wire().link_gone = false;
        h1.inject(&frame(0, 6));
        assert_eq!(w.poll_once().unwrap(), 0, "a down port is not read");
        // Not due before a second has passed; then the link is back.
        w.recheck_down_ports(Instant::now());
        assert!(w.health.is_down(1));
        w.recheck_down_ports(Instant::now() + health::RETRY_EVERY);
        assert!(!w.health.is_down(1));
        assert_eq!(rig.stats.ports[1].up.load(Relaxed), 1);
        assert_eq!(w.poll_once().unwrap(), 1);
        assert_eq!(h0.sent(), [frame(0, 6)]);
        assert!(h1.sent().is_empty());
        assert_eq!(rig.assert_conserved(), (6, 1, 0, 5));
    }

    #[test]
    fn a_receive_that_says_the_link_is_gone_takes_the_port_down() {
        let rig = Rig::new();
        let (mut w, h0, _h1) = rig.worker();
        h0.wire().link_gone = true;
        assert_eq!(w.poll_once().unwrap(), 0);
        assert_eq!(rig.stats.ports[0].up.load(Relaxed), 0);
        assert_eq!(rig.stats.ports[0].rx_errors.load(Relaxed), 1);
        // Down: not read again, so no error counted per turn.
        assert_eq!(w.poll_once().unwrap(), 0);
        assert_eq!(rig.stats.ports[0].rx_errors.load(Relaxed), 1);
        // An error that is not about the link leaves the port up.
        let (mut w2, h2, _h3) = rig.worker();
        h2.wire().fail_recv = true;
        w2.poll_once().unwrap();
        assert!(!w2.health.is_down(0));
    }

    /// Two workers joined by an in-memory link, as in a fused group: a
    /// frame crosses both modules with no kernel link between them.
    #[test]
    fn an_in_memory_link_carries_frames_between_two_modules() {
        let rig_a = Rig::new();
        let rig_b = Rig::new();
        let (a_in, wire_in) = FakePort::new("in");
        let (b_out, wire_out) = FakePort::new("out");
        let (a_out, b_in) = memory::link("to-b", "from-a", 64);
        let mut a = Worker::new(
            vec![Box::new(a_in), Box::new(a_out)],
            &rig_a.stats,
            instantiator(&rig_a.engine),
        )
        .unwrap();
        let mut b = Worker::new(
            vec![Box::new(b_in), Box::new(b_out)],
            &rig_b.stats,
            instantiator(&rig_b.engine),
        )
        .unwrap();
        wire_in.inject(&frame(0, 1));
        wire_in.inject(&frame(0, 2));
        assert_eq!(a.poll_once().unwrap(), 2);
        assert!(b.ports[0].has_pending());
        assert_eq!(b.poll_once().unwrap(), 2);
        assert_eq!(wire_out.sent(), [frame(0, 1), frame(0, 2)]);
        assert_eq!(rig_a.assert_conserved(), (2, 2, 0, 0));
        assert_eq!(rig_b.assert_conserved(), (2, 2, 0, 0));
        assert_eq!(rig_a.stats.ports[1].tx_packets.load(Relaxed), 2);
        assert_eq!(rig_b.stats.ports[0].rx_packets.load(Relaxed), 2);
    }
}
