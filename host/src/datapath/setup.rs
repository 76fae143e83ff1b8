//! Turning this process into a worker: die with the supervisor, catch stop
//! signals, join the cgroup, pin to CPUs, open the ports (TAPs in their own
//! namespace, then enter ours), load the module and create the stats
//! segment; then hand everything to the loop in [`super::worker`].

use std::io::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use nfvhost_abi::LogLevel;

use std::collections::HashMap;

use super::port::memory::{self, MemoryPort};
use super::port::packet_socket::{PacketSocketError, PacketSocketPort};
use super::port::tap::TapPort;
use super::port::tpacket::{TpacketOptions, TpacketPort, Version};
use super::port::xdp::{XdpPort, XdpPortError};
use super::port::Port;
use super::spec::SUPER_FRAME_SLOT;
use super::spec::{instance_limits, PortBinding, WorkerPort, WorkerSpec};
use super::stats::StatsSegment;
use super::sys::process;
use super::worker::{Instantiator, Worker, WorkerError};
use crate::chain::PortIo;
use crate::engine::{Engine, EngineError, LoadError};
use crate::logging::host_log;
use crate::sys::cgroup::CgroupError;
use crate::sys::link::LinkError;
use crate::sys::netns::{NetNs, NetNsError};

/// What failed while setting up or running a worker.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("couldn't set the parent-death signal: {0}")]
    DieWithParent(std::io::Error),
    #[error("couldn't install the stop signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("couldn't join the cgroup of {vnf}: {source}")]
    JoinCgroup { vnf: String, source: CgroupError },
    #[error("couldn't pin {vnf} to CPUs {cpus:?}: {source}")]
    Pin {
        vnf: String,
        cpus: Vec<usize>,
        source: std::io::Error,
    },
    #[error(transparent)]
    Namespace(#[from] NetNsError),
    #[error("couldn't open TAP {ifname} in {netns}: {source}")]
    OpenTap {
        ifname: String,
        netns: String,
        source: Box<LinkError>,
    },
    #[error("couldn't use TAP {ifname} as port {port}: {source}")]
    TapPort {
        ifname: String,
        port: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    PacketSocket(#[from] PacketSocketError),
    #[error(transparent)]
    Xdp(#[from] XdpPortError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("couldn't create stats segment {path}: {source}")]
    Stats {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("couldn't create {path}: {source}")]
    MetricNames {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("couldn't keep the control channel (stdin): {0}")]
    Control(std::io::Error),
    #[error(transparent)]
    LinkSet(#[from] super::control::ControlError),
    #[error(transparent)]
    Sandbox(#[from] super::sandbox::SandboxError),
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("a worker needs at least one VNF spec")]
    NoMembers,
    #[error("{first} and {other} are not in one group (namespace, chain or group differ)")]
    NotOneGroup { first: String, other: String },
    #[error("port {port} of {vnf} is linked in memory to {peer}, which this worker does not run")]
    MemoryPeer {
        vnf: String,
        port: String,
        peer: String,
    },
}

/// Capacity of each direction of an in-memory link, in frames: a little
/// more than a round of the biggest batches, as a socket buffer would hold.
const MEMORY_LINK_FRAMES: usize = 1024;

/// Runs a worker until SIGTERM or SIGINT. Writes `READY` on stdout once the
/// module is initialised and the ports are open.
pub fn run(spec: WorkerSpec) -> Result<(), SetupError> {
    run_group(vec![spec])
}

/// Runs the members of a fused group (one spec each, sharing a namespace,
/// a cgroup and the data path settings of the first) in this one process,
/// or a single VNF when there is one spec. Writes `READY` on stdout once
/// every module is initialised and every port is open.
pub fn run_group(specs: Vec<WorkerSpec>) -> Result<(), SetupError> {
    let Some(first) = specs.first() else {
        return Err(SetupError::NoMembers);
    };
    if let Some(other) = specs
        .iter()
        .find(|s| s.netns != first.netns || s.chain != first.chain || s.group != first.group)
    {
        return Err(SetupError::NotOneGroup {
            first: first.vnf.clone(),
            other: other.vnf.clone(),
        });
    }
    // The name the sandbox and the log know the process by.
    let unit = first.group.clone().unwrap_or_else(|| first.vnf.clone());
    // Die with the supervisor rather than linger unsupervised.
    process::die_with_parent().map_err(SetupError::DieWithParent)?;
    process::catch_stop_signals().map_err(SetupError::Signals)?;
    // The first line also sets up the log path (thread-locals, the filter's
    // caches) while every syscall is still allowed.
    for spec in &specs {
        host_log(
            &spec.vnf,
            LogLevel::Info,
            &format!(
                "starting; module log level {}",
                spec.module_log_level().label()
            ),
        );
    }
    process::fine_timer_slack();
    process::catch_reconfigure_signal().map_err(SetupError::Signals)?;
    if let Some(cg) = &first.cgroup {
        cg.add_process(std::process::id() as i32)
            .map_err(|source| SetupError::JoinCgroup {
                vnf: unit.clone(),
                source,
            })?;
    }
    process::pin_to_cpus(&first.cpus).map_err(|source| SetupError::Pin {
        vnf: unit.clone(),
        cpus: first.cpus.clone(),
        source,
    })?;
    let ports = open_ports(&specs)?;

    let engine = Engine::for_worker(first.cache_dir.clone())?;
    let (mut loaded, mut segments, mut link_sets) = (Vec::new(), Vec::new(), Vec::new());
    for spec in &specs {
        let module = engine.load(&spec.module)?;
        let stats = StatsSegment::create(&spec.stats_path).map_err(|source| SetupError::Stats {
            path: spec.stats_path.clone(),
            source,
        })?;
        let metrics_file = std::fs::File::create(&spec.metrics_path).map_err(|source| {
            SetupError::MetricNames {
                path: spec.metrics_path.clone(),
                source,
            }
        })?;
        // `nfvhost link set` reaches each member through its own files.
        link_sets.push(super::control::ControlFiles::create(&spec.stats_path)?);
        loaded.push((module, metrics_file));
        segments.push(stats);
    }
    // One process for every member: it runs at the timer priority if any
    // of their modules has a timer.
    if loaded.iter().any(|(m, _)| m.has_timer()) {
        if let Err(e) = process::favour_timers() {
            host_log(
                &unit,
                LogLevel::Warn,
                &format!("couldn't raise the priority of a timer module: {e}"),
            );
        }
    }
    // `nfvhost replace` reaches a supervised worker through its stdin, a
    // socket pair (a worker started by hand has none); a group's worker
    // serves the requests of all its members on it.
    let control = {
        use std::os::fd::AsFd as _;
        let stdin = std::io::stdin();
        crate::sys::handover::is_control_socket(stdin.as_fd())
            .then(|| stdin.as_fd().try_clone_to_owned())
            .transpose()
            .map_err(SetupError::Control)?
    };
    // From here on: no privileges, no paths, an allow-list of syscalls.
    let scratch = first
        .stats_path
        .parent()
        .unwrap_or(std::path::Path::new("/"));
    super::sandbox::enter(&first.chain, &unit, scratch, &engine)?;
    let mut workers = Vec::new();
    for ((((spec, ports), (module, metrics_file)), stats), link_set) in specs
        .iter()
        .zip(ports)
        .zip(loaded)
        .zip(&segments)
        .zip(link_sets)
    {
        stats.pid.store(u64::from(std::process::id()), Relaxed);
        let limits = crate::engine::InstanceLimits {
            log_level: spec.module_log_level(),
            ..instance_limits(spec.memory_bytes, spec.batch_size, spec.offload)
        };
        let instantiator = Instantiator {
            engine: engine.clone(),
            module,
            vnf: spec.vnf.clone(),
            init_document: spec.init_document.clone(),
            limits,
            metrics_file: Some((spec.metrics_path.clone(), metrics_file)),
        };
        let mut worker = Worker::new(ports, stats, instantiator)?;
        let mtus: Vec<u32> = spec.ports.iter().map(|p| p.mtu).collect();
        worker.set_link_mtus(&mtus);
        worker.set_port_names(spec.ports.iter().map(|p| p.name.clone()).collect());
        worker.link_set = Some(link_set);
        workers.push(worker);
    }
    if let (Some(control), Some(worker)) = (control, workers.first_mut()) {
        worker.set_control(control);
    }
    println!("READY");
    std::io::stdout().flush().ok();
    for (spec, worker) in specs.iter().zip(&workers) {
        let with = match &spec.group {
            Some(group) => format!(" in group {group} ({} VNFs)", specs.len()),
            None => String::new(),
        };
        host_log(
            &spec.vnf,
            LogLevel::Info,
            &format!(
                "running {} ({} ports, batch {}){with}",
                spec.module.display(),
                spec.ports.len(),
                worker.batch_size()
            ),
        );
    }
    super::group::run_all(
        &mut workers,
        Duration::from_millis(first.tick_ms.max(1)),
        first.poll,
        // Called once per turn of the loop: the heartbeat the supervisor
        // watches, and the test-only probe.
        || {
            for stats in &segments {
                stats.beat();
            }
            crate::sys::seccomp::test_probe::fire_if_asked();
            process::stop_requested()
        },
    )?;
    host_log(&unit, LogLevel::Info, "stopping");
    Ok(())
}

/// Opens `port` on the kernel interface `ifname` (a veth end in the
/// worker's namespace) the way the spec's `io` says.
fn open_interface(
    spec: &WorkerSpec,
    port: &WorkerPort,
    ifname: &str,
) -> Result<Box<dyn Port>, SetupError> {
    let name = port.name.as_str();
    match spec.io {
        PortIo::Mmsg => Ok(Box::new(PacketSocketPort::open(
            name,
            ifname,
            spec.offload,
        )?)),
        PortIo::Tpacket | PortIo::TpacketV2 => {
            let version = if spec.io == PortIo::Tpacket {
                Version::V3
            } else {
                Version::V2
            };
            // The longest frame the ring must hold whole: a super-frame
            // with offload, else the link's MTU with a VLAN-tagged
            // Ethernet header (the kernel removes the tag; room anyway).
            let max_frame = if spec.offload {
                SUPER_FRAME_SLOT
            } else {
                port.mtu as usize + 18
            };
            let options = TpacketOptions {
                version,
                tx_ring: false,
                max_frame,
            };
            Ok(Box::new(TpacketPort::open(
                name,
                ifname,
                spec.offload,
                options,
            )?))
        }
        // The decoder gives xdp ports `offload: false`; one that comes with
        // offload anyway works, the worker segments in software.
        PortIo::Xdp => Ok(Box::new(XdpPort::open(name, ifname)?)),
    }
}

/// Opens every port of every spec, in order (one list per spec), and
/// leaves the thread in the worker's namespace.
fn open_ports(specs: &[WorkerSpec]) -> Result<Vec<Vec<Box<dyn Port>>>, SetupError> {
    // TAP devices live in another namespace: open them before entering ours.
    let mut taps = Vec::new();
    let mut fallback_logged = false;
    for spec in specs {
        for p in &spec.ports {
            if let PortBinding::Tap { netns, ifname } = &p.binding {
                let ns = NetNs::open(netns)?;
                let fd =
                    crate::sys::link::open_tap(&ns, ifname, spec.offload).map_err(|source| {
                        SetupError::OpenTap {
                            ifname: ifname.clone(),
                            netns: netns.clone(),
                            source: Box::new(source),
                        }
                    })?;
                let mut port =
                    TapPort::new(&p.name, fd, spec.offload, spec.tap_io, spec.batch_size).map_err(
                        |source| SetupError::TapPort {
                            ifname: ifname.clone(),
                            port: p.name.clone(),
                            source,
                        },
                    )?;
                // Once per worker: every TAP port falls back for the same
                // reason (io_uring off or too old in this kernel).
                if let Some(why) = port.take_fallback() {
                    if !fallback_logged {
                        fallback_logged = true;
                        host_log(
                            &spec.vnf,
                            LogLevel::Warn,
                            &format!("TAP port {}: one system call per frame: {why}", p.name),
                        );
                    }
                }
                taps.push(port);
            }
        }
    }
    if let Some(first) = specs.first() {
        NetNs::open(&first.netns)?.enter_current_thread()?;
    }
    let mut taps = taps.into_iter();
    // The far ends of in-memory links made so far, by (VNF, port).
    let mut far_ends: HashMap<(&str, &str), MemoryPort> = HashMap::new();
    let mut all = Vec::new();
    for spec in specs {
        let mut ports: Vec<Box<dyn Port>> = Vec::new();
        for p in &spec.ports {
            match &p.binding {
                PortBinding::Interface { ifname } => ports.push(open_interface(spec, p, ifname)?),
                PortBinding::Tap { .. } => {
                    let tap = taps.next().expect("opened above, in spec order");
                    ports.push(Box::new(tap));
                }
                PortBinding::Memory { vnf, port } => {
                    let Some(peer) = specs.iter().find(|s| &s.vnf == vnf) else {
                        return Err(SetupError::MemoryPeer {
                            vnf: spec.vnf.clone(),
                            port: p.name.clone(),
                            peer: format!("{vnf}:{port}"),
                        });
                    };
                    let mut end = match far_ends.remove(&(spec.vnf.as_str(), p.name.as_str())) {
                        Some(end) => end,
                        None => {
                            let (near, far) = memory::link(&p.name, port, MEMORY_LINK_FRAMES);
                            far_ends.insert((vnf, port), far);
                            near
                        }
                    };
                    // Frames keep their offload state when the module at the
                    // other end has slots for a super-frame.
                    end.set_carries_offload(peer.offload);
                    ports.push(Box::new(end));
                }
            }
        }
        all.push(ports);
    }
    if let Some(((vnf, port), _)) = far_ends.into_iter().next() {
        return Err(SetupError::MemoryPeer {
            vnf: vnf.to_owned(),
            port: port.to_owned(),
            peer: "a port of this worker that links back".to_owned(),
        });
    }
    Ok(all)
}
