//! The supervisor: starts one worker per VNF (one per fused group for the
//! VNFs of a group), restarts a worker that dies, and serves `/metrics`.
//! It runs detached after `deploy` returns, or in the foreground with
//! `deploy --foreground`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nfvhost_abi::LogLevel;

use super::handover;
use super::metrics::{self, MetricsSource};
use super::restart::{self, Decision, RestartPolicy};
use super::state::{vnf_log_path, ChainState, VnfState};
use crate::datapath::stats::{monotonic_ms, read_heartbeat};
use crate::logging::{self, host_log};
use crate::sys::private_file;

/// Where `/metrics` listens unless the chain file says otherwise: a free
/// loopback port, so several chains run side by side without editing their
/// files. The port taken is written to the `ready` file and then recorded
/// in the state file by `deploy` (see [`bound_metrics`]).
pub const DEFAULT_METRICS: &str = "127.0.0.1:0";

/// The address the supervisor's `/metrics` listener was bound to, from its
/// `ready` file; `None` before the chain is ready.
pub fn bound_metrics(state: &ChainState) -> Option<std::net::SocketAddr> {
    std::fs::read_to_string(state.file("ready"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How often the supervisor looks at its workers.
const SUPERVISE_EVERY: Duration = Duration::from_millis(20);

/// The file that says a VNF's restart budget is spent (read by `inspect`).
pub fn failed_marker(state: &ChainState, vnf: &str) -> std::path::PathBuf {
    state.file(&format!("{vnf}.failed"))
}

/// How long a worker may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub use crate::sys::process::{install_stop_handlers, reload_requested, stop_requested};

/// The signal `nfvhost replace` sends the supervisor: re-read the state
/// file and restart every worker whose module changed.
pub const RELOAD_SIGNAL: nix::sys::signal::Signal = crate::sys::process::RELOAD_SIGNAL;

struct Worker {
    /// The worker's name: its VNF's, or its group's.
    name: String,
    /// The VNFs it runs: one, or the members of a fused group.
    vnfs: Vec<VnfState>,
    child: Option<Child>,
    /// The supervisor's end of the worker's control channel (replace),
    /// one per worker (a group's members share it).
    control: Option<std::os::fd::OwnedFd>,
    /// Per VNF (a group's restart restarts every member).
    restarts: Vec<Arc<AtomicU64>>,
    next_start: Instant,
    policy: RestartPolicy,
    /// When the current worker started (for the healthy period), and the
    /// same in CLOCK_MONOTONIC ms (for its heartbeat).
    started: Instant,
    started_ms: u64,
    /// The restart budget is spent; the VNF stays down.
    given_up: bool,
}

impl Worker {
    fn new(vnfs: Vec<VnfState>, spawned: Spawned) -> Self {
        Worker {
            name: unit_name(&vnfs[0]).to_owned(),
            restarts: vnfs.iter().map(|_| Arc::new(AtomicU64::new(0))).collect(),
            vnfs,
            child: Some(spawned.child),
            control: Some(spawned.control),
            next_start: Instant::now(),
            policy: RestartPolicy::default(),
            started: Instant::now(),
            started_ms: monotonic_ms(),
            given_up: false,
        }
    }
}

/// The name of the worker that runs `vnf`: its group's, or its own.
pub fn unit_name(vnf: &VnfState) -> &str {
    vnf.group.as_deref().unwrap_or(&vnf.name)
}

/// The VNFs of `state`, one list per worker: a VNF alone, or the members of
/// a fused group, in state order.
fn worker_units(state: &ChainState) -> Vec<Vec<VnfState>> {
    let mut units: Vec<Vec<VnfState>> = Vec::new();
    for v in &state.vnfs {
        match units
            .iter_mut()
            .find(|u| v.group.is_some() && u[0].group == v.group)
        {
            Some(unit) => unit.push(v.clone()),
            None => units.push(vec![v.clone()]),
        }
    }
    units
}

/// A started worker and the supervisor's end of its control channel.
struct Spawned {
    child: Child,
    control: std::os::fd::OwnedFd,
}

fn spawn_worker(state: &ChainState, name: &str, vnfs: &[VnfState]) -> anyhow::Result<Spawned> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("worker");
    for vnf in vnfs {
        let spec_path = state.file(&format!("{}.spec.json", vnf.name));
        private_file::write_atomic(&spec_path, &serde_json::to_vec_pretty(&vnf.spec)?, 0o600)?;
        command.arg(&spec_path);
    }
    let log_path = vnf_log_path(&state.chain, name);
    let (control, worker_end) = crate::sys::handover::socket_pair()?;
    let mut child = command
        .stdin(Stdio::from(worker_end))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the worker of {name}"))?;
    // The worker's output reaches its log file through a pump that caps and
    // rotates it: a module flooding its log cannot fill the run dir.
    let stderr = child.stderr.take().expect("piped");
    std::thread::Builder::new()
        .name("nfv-log".into())
        .spawn(move || {
            if let Err(e) = logging::pump(stderr, &log_path, logging::MAX_LOG_FILE) {
                host_log(
                    "supervisor",
                    LogLevel::Error,
                    &format!("{}: {e}", log_path.display()),
                );
            }
        })?;
    Ok(Spawned { child, control })
}

/// Waits for a worker's READY line; the rest of its stdout is drained.
fn wait_ready(vnf: &str, child: &mut Child) -> anyhow::Result<()> {
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(matches!(first, Some(Ok(ref l)) if l == "READY"));
        for _ in lines {}
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(true) => Ok(()),
        Ok(false) => bail!("the worker of {vnf} exited during start-up"),
        Err(_) => bail!("the worker of {vnf} did not become ready within {READY_TIMEOUT:?}"),
    }
}

fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Starts every worker, marks the chain ready (`ready` file, then
/// `on_ready`), and supervises until a stop is requested. Workers are
/// stopped before returning; teardown of links and namespaces is the
/// caller's job.
pub fn run(state: &ChainState, on_ready: impl FnOnce()) -> anyhow::Result<()> {
    let who = format!("supervisor {}", state.chain);
    let addr = state
        .metrics
        .unwrap_or_else(|| DEFAULT_METRICS.parse().expect("valid default"));
    let listener =
        TcpListener::bind(addr).with_context(|| format!("listening for /metrics on {addr}"))?;
    let addr = listener.local_addr()?;

    let mut workers = Vec::new();
    for vnfs in worker_units(state) {
        let name = unit_name(&vnfs[0]).to_owned();
        let mut spawned = spawn_worker(state, &name, &vnfs)?;
        let child = &mut spawned.child;
        if let Err(e) = wait_ready(&name, child) {
            let _ = child.kill();
            let _ = child.wait();
            // The log pump may still be writing the worker's last lines.
            std::thread::sleep(Duration::from_millis(200));
            let log = vnf_log_path(&state.chain, &name);
            bail!("{e}; last lines of {}:\n{}", log.display(), tail(&log, 10));
        }
        workers.push(Worker::new(vnfs, spawned));
    }

    let source = Arc::new(MetricsSource::new(
        state,
        workers
            .iter()
            .flat_map(|w| {
                w.vnfs
                    .iter()
                    .zip(&w.restarts)
                    .map(|(v, r)| (v.name.clone(), r.clone()))
            })
            .collect(),
    ));
    std::thread::Builder::new()
        .name("nfv-metrics".into())
        .spawn({
            let source = source.clone();
            move || metrics::serve(listener, source)
        })?;
    private_file::write_atomic(&state.file("ready"), addr.to_string().as_bytes(), 0o600)?;
    host_log(
        &who,
        LogLevel::Info,
        &format!(
            "{} workers ready; metrics on http://{addr}/metrics",
            workers.len()
        ),
    );
    on_ready();

    // Built at the first `nfvhost replace`: it compiles (or fetches from
    // the cache) the modules handed to running workers.
    let mut engine = None;
    while !stop_requested() {
        // Short: a dead worker is noticed within this period.
        std::thread::sleep(SUPERVISE_EVERY);
        if reload_requested() {
            replace_changed(state, &mut workers, &mut engine, &who);
            serve_captures(state, &mut workers, &who);
        }
        for w in &mut workers {
            supervise_one(state, w, &who);
        }
    }
    host_log(&who, LogLevel::Info, "stopping workers");
    for w in &mut workers {
        if let Some(child) = &mut w.child {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    for w in &mut workers {
        if let Some(mut child) = w.child.take() {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    Ok(())
}

/// Hands every worker whose generation `nfvhost replace` bumped in the
/// state file its new module (see [`super::handover`]): the worker switches
/// without a restart, carrying the module's state, or keeps its running
/// module when the new one fails. A VNF whose worker is not running is
/// (re)started on the new module by [`supervise_one`], through the
/// supervisor's own child handle (which cannot name a recycled pid).
fn replace_changed(
    state: &ChainState,
    workers: &mut [Worker],
    engine: &mut Option<crate::engine::Engine>,
    who: &str,
) {
    let Ok(Some(fresh)) = ChainState::load(&state.chain) else {
        return;
    };
    for w in workers {
        // Each member of a group is replaced on its own, over the worker's
        // one channel (the request names the VNF).
        for i in 0..w.vnfs.len() {
            let Some(v) = fresh.vnfs.iter().find(|v| v.name == w.vnfs[i].name) else {
                continue;
            };
            if v.generation == w.vnfs[i].generation {
                continue;
            }
            replace_one(state, w, i, v, engine, who);
        }
    }
}

/// Hands member `i` of worker `w` the module of its fresh state `v`, and
/// records the outcome.
fn replace_one(
    state: &ChainState,
    w: &mut Worker,
    i: usize,
    v: &VnfState,
    engine: &mut Option<crate::engine::Engine>,
    who: &str,
) {
    let running = w
        .child
        .as_mut()
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
    let reply = match (&w.control, running) {
        (Some(control), true) => {
            if engine.is_none() {
                match crate::engine::Engine::new(crate::engine::Engine::default_cache_dir()) {
                    Ok(e) => *engine = Some(e),
                    Err(e) => host_log(who, LogLevel::Error, &e.to_string()),
                }
            }
            match engine {
                Some(engine) => {
                    use std::os::fd::AsFd as _;
                    handover::hand_over(engine, control.as_fd(), v)
                }
                None => handover::failed(v.generation, "the supervisor has no wasm engine".into()),
            }
        }
        _ => {
            // Not running: start on the new module, at once and with a
            // fresh budget (a replace is not a crash).
            w.policy = RestartPolicy::default();
            w.given_up = false;
            w.next_start = Instant::now();
            handover::restarted(v.generation)
        }
    };
    match &reply.result {
        Ok(done) => {
            host_log(
                who,
                LogLevel::Info,
                &format!(
                    "{} replaced by {} in {} us{}",
                    v.name,
                    v.module.display(),
                    done.total_us,
                    done.state_note
                        .as_ref()
                        .map(|n| format!("; state not carried: {n}"))
                        .unwrap_or_default()
                ),
            );
            w.vnfs[i] = v.clone();
        }
        Err(e) => {
            host_log(
                who,
                LogLevel::Warn,
                &format!("replacing {} failed, it keeps its module: {e}", v.name),
            );
            // The running module stays; `nfvhost replace` restores its
            // entry in the state file.
            w.vnfs[i].generation = v.generation;
        }
    }
    if let Err(e) = handover::record(state, &v.name, &reply) {
        host_log(
            who,
            LogLevel::Error,
            &format!("recording the replace of {}: {e}", v.name),
        );
    }
}

/// Hands each waiting `nfvhost capture` ticket's pipe to the worker that
/// runs its VNF (see [`super::capture`]). A ticket that cannot be served is
/// removed all the same: its command sees its pipe close and says so.
fn serve_captures(state: &ChainState, workers: &mut [Worker], who: &str) {
    for path in super::capture::tickets(state) {
        let served = serve_ticket(&path, workers);
        // The command closes its own copy of the pipe once this is gone.
        let _ = std::fs::remove_file(&path);
        match served {
            Ok(what) => host_log(who, LogLevel::Info, &format!("capture of {what} started")),
            Err(e) => host_log(who, LogLevel::Warn, &format!("capture refused: {e}")),
        }
    }
}

/// Takes the ticket's pipe and sends it, with the request, to the worker
/// that runs its VNF; returns `VNF:PORT`.
fn serve_ticket(path: &std::path::Path, workers: &mut [Worker]) -> Result<String, String> {
    use std::os::fd::AsFd as _;
    let ticket = super::capture::read_ticket(path)?;
    let pipe = super::capture::take_pipe(&ticket)?;
    let request = &ticket.request;
    let w = workers
        .iter_mut()
        .find(|w| w.vnfs.iter().any(|v| v.name == request.vnf))
        .ok_or_else(|| format!("no worker runs {}", request.vnf))?;
    let running = w
        .child
        .as_mut()
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
    let control = match (&w.control, running) {
        (Some(control), true) => control,
        _ => return Err(format!("the worker of {} is not running", w.name)),
    };
    let message = crate::datapath::worker::capture_message(request);
    crate::sys::handover::send(control.as_fd(), &message, Some(pipe.as_fd()))
        .map_err(|e| e.to_string())?;
    Ok(format!("{}:{}", request.vnf, request.port))
}

/// Restarts a worker that exited, or that stopped beating (hung), as the
/// [`RestartPolicy`] says; gives up when its budget is spent.
fn supervise_one(state: &ChainState, w: &mut Worker, who: &str) {
    if w.given_up {
        return;
    }
    if let Some(child) = &mut w.child {
        match child.try_wait() {
            Ok(None) => {
                let beat = read_heartbeat(&w.vnfs[0].spec.stats_path).unwrap_or(0);
                let tick = Duration::from_millis(w.vnfs[0].spec.tick_ms);
                if restart::hung(w.started_ms, beat, monotonic_ms(), tick) {
                    host_log(
                        who,
                        LogLevel::Warn,
                        &format!(
                            "worker of {} is hung (no heartbeat for {} ms); killing it",
                            w.name,
                            monotonic_ms().saturating_sub(beat)
                        ),
                    );
                    let _ = child.kill();
                }
                return;
            }
            Ok(Some(_)) if stop_requested() => {
                w.child = None;
                return;
            }
            Ok(Some(status)) => {
                w.child = None;
                let why = crate::datapath::sandbox::describe_exit(status);
                match w.policy.on_exit(w.started, Instant::now()) {
                    Decision::RestartAt(at) => {
                        host_log(
                            who,
                            LogLevel::Warn,
                            &format!(
                                "worker of {} {why}; restarting in {:?}",
                                w.name,
                                at.saturating_duration_since(Instant::now())
                            ),
                        );
                        w.next_start = at;
                    }
                    Decision::GiveUp { failures } => {
                        let status = format!(
                            "failed: {failures} restarts in a row without a healthy {:?}; last: {why}",
                            restart::HEALTHY_AFTER
                        );
                        host_log(
                            who,
                            LogLevel::Error,
                            &format!("worker of {} {status}; giving up", w.name),
                        );
                        for v in &w.vnfs {
                            let _ = std::fs::write(failed_marker(state, &v.name), &status);
                        }
                        w.given_up = true;
                        return;
                    }
                }
            }
            Err(e) => {
                host_log(
                    who,
                    LogLevel::Error,
                    &format!("waiting for worker of {}: {e}", w.name),
                );
                return;
            }
        }
    }
    if w.child.is_none() && Instant::now() >= w.next_start {
        // The state file may name a new module (`nfvhost replace`).
        if let Ok(Some(fresh)) = ChainState::load(&state.chain) {
            for mine in &mut w.vnfs {
                if let Some(v) = fresh.vnfs.iter().find(|v| v.name == mine.name) {
                    *mine = v.clone();
                }
            }
        }
        match spawn_worker(state, &w.name, &w.vnfs) {
            Ok(Spawned { mut child, control }) => {
                // Drain stdout so the worker never blocks on it.
                if let Some(out) = child.stdout.take() {
                    std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
                }
                for r in &w.restarts {
                    r.fetch_add(1, Relaxed);
                }
                w.child = Some(child);
                w.control = Some(control);
                w.started = Instant::now();
                w.started_ms = monotonic_ms();
            }
            Err(e) => host_log(who, LogLevel::Error, &format!("{e:#}")),
        }
    }
}
