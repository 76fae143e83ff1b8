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

use super::port::Port;
use super::stats::{PortCounters, StatsLayout};
use super::sys::fd::PollSet;
use crate::engine::{
    Batch, CallFailure, Engine, FrameIn, InstanceError, InstanceLimits, LoadedModule, VnetHeader,
    VnfInstance,
};
use crate::logging::host_log;

pub use super::setup::{run, SetupError};
pub use super::spec::{PortBinding, WorkerPort, WorkerSpec, SUPER_FRAME_SLOT};

/// What stopped the loop.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("couldn't start module {module} for {vnf}: {source}")]
    Instantiate {
        vnf: String,
        module: PathBuf,
        source: InstanceError,
    },
    #[error("couldn't write the metric names of {vnf} to {path}: {source}")]
    MetricNames {
        vnf: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("waiting for frames: {0}")]
    Poll(std::io::Error),
}

/// Creates the module instance: the first, and a fresh one after each trap.
pub struct Instantiator {
    pub engine: Engine,
    pub module: LoadedModule,
    pub vnf: String,
    /// The init document handed to `nfv_init` (JSON text).
    pub init_document: String,
    pub limits: InstanceLimits,
    /// Where the module's declared metric names are written, if anywhere.
    pub metrics_path: Option<PathBuf>,
}

impl Instantiator {
    fn instantiate(&self, port_count: u16) -> Result<VnfInstance, WorkerError> {
        let instance = VnfInstance::new(
            &self.engine,
            &self.module,
            &self.vnf,
            port_count,
            self.init_document.as_bytes(),
            self.limits.clone(),
        )
        .map_err(|source| WorkerError::Instantiate {
            vnf: self.vnf.clone(),
            module: self.module.path.clone(),
            source,
        })?;
        if let Some(path) = &self.metrics_path {
            let names: Vec<serde_json::Value> = instance
                .metrics()
                .iter()
                .map(|m| serde_json::json!({ "name": m.name, "help": m.help, "kind": m.kind.label() }))
                .collect();
            let text = serde_json::to_vec(&names).expect("JSON values serialize");
            std::fs::write(path, text).map_err(|source| WorkerError::MetricNames {
                vnf: self.vnf.clone(),
                path: path.clone(),
                source,
            })?;
        }
        Ok(instance)
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
}

impl<'s> Worker<'s> {
    /// Starts the module over `ports` (port `i` is the module's port `i`),
    /// counting into `stats`.
    pub fn new(
        ports: Vec<Box<dyn Port>>,
        stats: &'s StatsLayout,
        instantiator: Instantiator,
    ) -> Result<Self, WorkerError> {
        let ports = ports
            .into_iter()
            .take(nfvhost_abi::MAX_PORTS)
            .collect::<Vec<_>>();
        stats.port_count.store(ports.len() as u64, Relaxed);
        for p in &stats.ports[..ports.len()] {
            p.up.store(1, Relaxed);
        }
        let instance = instantiator.instantiate(ports.len() as u16)?;
        stats.instance_generation.fetch_add(1, Relaxed);
        let size = instance.batch_size();
        Ok(Worker {
            ports,
            stats,
            instantiator,
            instance,
            batch: Batch::new(size),
            lens: vec![0; size],
            vnets: vec![VnetHeader::NONE; size],
            metric_values: Vec::new(),
        })
    }

    /// Frames per batch.
    pub fn batch_size(&self) -> usize {
        self.instance.batch_size()
    }

    /// Runs until `stop()` says so: waits for frames (unless `busy_poll`),
    /// moves batches, and ticks every `tick_every`.
    pub fn run(
        &mut self,
        tick_every: Duration,
        busy_poll: bool,
        stop: impl Fn() -> bool,
    ) -> Result<(), WorkerError> {
        let mut next_tick = Instant::now() + tick_every;
        let mut poll_set = PollSet::new(self.ports.iter().filter_map(|p| p.readable_fd()));
        // After a batch that brought frames, read again before sleeping: under
        // load the sockets are rarely empty, and poll() would be a wasted call.
        let mut busy = false;
        while !stop() {
            if !busy && !busy_poll && !self.ports.iter().any(|p| p.has_pending()) {
                let timeout = next_tick.saturating_duration_since(Instant::now());
                poll_set.wait(timeout).map_err(WorkerError::Poll)?;
            }
            busy = self.poll_once()? > 0;
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + tick_every;
                self.tick()?;
            }
        }
        for p in &self.stats.ports[..self.ports.len()] {
            p.up.store(0, Relaxed);
        }
        Ok(())
    }

    /// Receives one batch from the ports and, if it brought frames, runs
    /// the module over it and sends the results. Returns the frames
    /// received.
    pub fn poll_once(&mut self) -> Result<usize, WorkerError> {
        let n = self.receive();
        if n == 0 {
            return Ok(0);
        }
        let started = Instant::now();
        let result = self.instance.process(&mut self.batch);
        self.stats
            .observe_call(started.elapsed().as_nanos() as u64, n as u64);
        match result {
            Ok(()) => {
                self.transmit();
                self.send_emitted();
            }
            Err(failure) => {
                let reason = if failure == CallFailure::Timeout {
                    DropReason::Timeout
                } else {
                    DropReason::Trap
                };
                count_drops(self.stats, reason, n as u64);
                self.restart(&failure, &format!("{n} frames dropped; "))?;
            }
        }
        Ok(n)
    }

    /// Runs the module's timer, sends what it emitted, and publishes the
    /// module's gauges and the ports' kernel drops.
    pub fn tick(&mut self) -> Result<(), WorkerError> {
        match self.instance.tick() {
            Ok(()) => self.send_emitted(),
            Err(failure) => self.restart(&failure, "tick: ")?,
        }
        self.publish_gauges();
        for (port, counters) in self.ports.iter_mut().zip(&self.stats.ports) {
            let drops = port.take_kernel_drops();
            if drops > 0 {
                counters.rx_dropped.fetch_add(drops, Relaxed);
            }
        }
        Ok(())
    }

    fn restart(&mut self, failure: &CallFailure, what: &str) -> Result<(), WorkerError> {
        self.stats.trap(failure.label());
        host_log(
            &self.instantiator.vnf,
            LogLevel::Error,
            &format!("{failure}; {what}restarting the module instance"),
        );
        self.instance = self.instantiator.instantiate(self.ports.len() as u16)?;
        self.stats.instance_generation.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Fills the batch from every port, straight into the module's slots.
    fn receive(&mut self) -> usize {
        self.batch.clear();
        let capacity = self.instance.batch_size();
        // The slots as a stack array of slices: no allocation per batch.
        let mut slots: [&mut [u8]; MAX_BATCH] = std::array::from_fn(|_| &mut [][..]);
        for (cell, slot) in slots.iter_mut().zip(self.instance.slots_mut()) {
            *cell = slot;
        }
        for (port_index, port) in self.ports.iter_mut().enumerate() {
            let filled = self.batch.len();
            if filled == capacity {
                break;
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
                Err(_) => {
                    counters.rx_errors.fetch_add(1, Relaxed);
                }
            }
        }
        let n = self.batch.len();
        self.stats.received.fetch_add(n as u64, Relaxed);
        n
    }

    /// Sends forwarded frames (grouped per egress port, one call each) and
    /// counts the other outcomes, all as sorted by the batch.
    fn transmit(&mut self) {
        let (batch, instance, stats) = (&self.batch, &self.instance, self.stats);
        for (out_index, port) in self.ports.iter_mut().enumerate() {
            let slots = batch.forwarded_to(out_index);
            if slots.is_empty() {
                continue;
            }
            let verdicts = batch.verdicts();
            let frames = batch.frames();
            let mut tx_errors = 0;
            with_frames(
                slots.iter().map(|&i| {
                    let i = usize::from(i);
                    (instance.frame(i, verdicts[i].1), frames[i].vnet)
                }),
                |frames, vnets| {
                    let sent = send(port.as_mut(), &stats.ports[out_index], frames, vnets);
                    stats.forwarded.fetch_add(sent as u64, Relaxed);
                    tx_errors += (frames.len() - sent) as u64;
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
    }

    fn send_emitted(&mut self) {
        let (instance, stats) = (&self.instance, self.stats);
        if instance.emitted().next().is_none() {
            return;
        }
        for (port_index, port) in self.ports.iter_mut().enumerate() {
            with_frames(
                instance
                    .emitted()
                    .filter(|(p, _)| usize::from(*p) == port_index)
                    .map(|(_, f)| (f, VnetHeader::NONE)),
                |frames, vnets| {
                    let sent = send(port.as_mut(), &stats.ports[port_index], frames, vnets);
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

/// Sends through one port and counts the result on its counters; returns
/// how many frames were taken.
fn send(
    port: &mut dyn Port,
    counters: &PortCounters,
    frames: &[&[u8]],
    vnets: &[VnetHeader],
) -> usize {
    let sent = port.send_batch(frames, vnets).unwrap_or(0);
    counters.tx_packets.fetch_add(sent as u64, Relaxed);
    counters
        .tx_bytes
        .fetch_add(frames[..sent].iter().map(|f| f.len() as u64).sum(), Relaxed);
    counters
        .tx_errors
        .fetch_add((frames.len() - sent) as u64, Relaxed);
    sent
}
