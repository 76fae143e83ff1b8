//! Turning this process into a worker: die with the supervisor, catch stop
//! signals, join the cgroup, pin to CPUs, open the ports (TAPs in their own
//! namespace, then enter ours), load the module and create the stats
//! segment; then hand everything to the loop in [`super::worker`].

use std::io::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use nfvhost_abi::LogLevel;

use super::port::packet_socket::{PacketSocketError, PacketSocketPort};
use super::port::tap::TapPort;
use super::port::Port;
use super::spec::{instance_limits, PortBinding, WorkerSpec};
use super::stats::StatsSegment;
use super::sys::process;
use super::worker::{Instantiator, Worker, WorkerError};
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
}

/// Runs a worker until SIGTERM or SIGINT. Writes `READY` on stdout once the
/// module is initialised and the ports are open.
pub fn run(spec: WorkerSpec) -> Result<(), SetupError> {
    let vnf = spec.vnf.clone();
    // Die with the supervisor rather than linger unsupervised.
    process::die_with_parent().map_err(SetupError::DieWithParent)?;
    process::catch_stop_signals().map_err(SetupError::Signals)?;
    // The first line also sets up the log path (thread-locals, the filter's
    // caches) while every syscall is still allowed.
    host_log(
        &vnf,
        LogLevel::Info,
        &format!(
            "starting; module log level {}",
            spec.module_log_level().label()
        ),
    );
    process::fine_timer_slack();
    process::catch_reconfigure_signal().map_err(SetupError::Signals)?;
    if let Some(cg) = &spec.cgroup {
        cg.add_process(std::process::id() as i32)
            .map_err(|source| SetupError::JoinCgroup {
                vnf: vnf.clone(),
                source,
            })?;
    }
    process::pin_to_cpus(&spec.cpus).map_err(|source| SetupError::Pin {
        vnf: vnf.clone(),
        cpus: spec.cpus.clone(),
        source,
    })?;
    let ports = open_ports(&spec)?;

    let engine = Engine::for_worker(spec.cache_dir.clone())?;
    let module = engine.load(&spec.module)?;
    if module.has_timer() {
        if let Err(e) = process::favour_timers() {
            host_log(
                &vnf,
                LogLevel::Warn,
                &format!("couldn't raise the priority of a timer module: {e}"),
            );
        }
    }
    let stats = StatsSegment::create(&spec.stats_path).map_err(|source| SetupError::Stats {
        path: spec.stats_path.clone(),
        source,
    })?;
    // `nfvhost replace` reaches a supervised worker through its stdin, a
    // socket pair (a worker started by hand has none).
    let control = {
        use std::os::fd::AsFd as _;
        let stdin = std::io::stdin();
        crate::sys::handover::is_control_socket(stdin.as_fd())
            .then(|| stdin.as_fd().try_clone_to_owned())
            .transpose()
            .map_err(SetupError::Control)?
    };
    let metrics_file =
        std::fs::File::create(&spec.metrics_path).map_err(|source| SetupError::MetricNames {
            path: spec.metrics_path.clone(),
            source,
        })?;
    let link_set = super::control::ControlFiles::create(&spec.stats_path)?;
    // From here on: no privileges, no paths, an allow-list of syscalls.
    let scratch = spec
        .stats_path
        .parent()
        .unwrap_or(std::path::Path::new("/"));
    super::sandbox::enter(&spec.chain, &vnf, scratch, &engine)?;
    stats.pid.store(u64::from(std::process::id()), Relaxed);
    let limits = crate::engine::InstanceLimits {
        log_level: spec.module_log_level(),
        ..instance_limits(spec.memory_bytes, spec.batch_size, spec.offload)
    };
    let instantiator = Instantiator {
        engine,
        module,
        vnf: vnf.clone(),
        init_document: spec.init_document.clone(),
        limits,
        metrics_file: Some((spec.metrics_path.clone(), metrics_file)),
    };
    let mut worker = Worker::new(ports, &stats, instantiator)?;
    if let Some(control) = control {
        worker.set_control(control);
    }
    let mtus: Vec<u32> = spec.ports.iter().map(|p| p.mtu).collect();
    worker.set_link_mtus(&mtus);
    worker.link_set = Some(link_set);
    println!("READY");
    std::io::stdout().flush().ok();
    host_log(
        &vnf,
        LogLevel::Info,
        &format!(
            "running {} ({} ports, batch {})",
            spec.module.display(),
            spec.ports.len(),
            worker.batch_size()
        ),
    );
    worker.run(
        Duration::from_millis(spec.tick_ms.max(1)),
        spec.busy_poll,
        // Called once per turn of the loop: the heartbeat the supervisor
        // watches, and the test-only probe.
        || {
            stats.beat();
            crate::sys::seccomp::test_probe::fire_if_asked();
            process::stop_requested()
        },
    )?;
    host_log(&vnf, LogLevel::Info, "stopping");
    Ok(())
}

/// Opens every port of the spec, in order, and leaves the thread in the
/// worker's namespace.
fn open_ports(spec: &WorkerSpec) -> Result<Vec<Box<dyn Port>>, SetupError> {
    // TAP devices live in another namespace: open them before entering ours.
    let mut taps = Vec::new();
    for p in &spec.ports {
        if let PortBinding::Tap { netns, ifname } = &p.binding {
            let ns = NetNs::open(netns)?;
            let fd = crate::sys::link::open_tap(&ns, ifname, spec.offload).map_err(|source| {
                SetupError::OpenTap {
                    ifname: ifname.clone(),
                    netns: netns.clone(),
                    source: Box::new(source),
                }
            })?;
            let port =
                TapPort::new(&p.name, fd, spec.offload).map_err(|source| SetupError::TapPort {
                    ifname: ifname.clone(),
                    port: p.name.clone(),
                    source,
                })?;
            taps.push(port);
        }
    }
    NetNs::open(&spec.netns)?.enter_current_thread()?;
    let mut taps = taps.into_iter();
    let mut ports: Vec<Box<dyn Port>> = Vec::new();
    for p in &spec.ports {
        match &p.binding {
            PortBinding::Interface { ifname } => ports.push(Box::new(PacketSocketPort::open(
                &p.name,
                ifname,
                spec.offload,
            )?)),
            PortBinding::Tap { .. } => {
                let tap = taps.next().expect("opened above, in spec order");
                ports.push(Box::new(tap));
            }
        }
    }
    Ok(ports)
}
