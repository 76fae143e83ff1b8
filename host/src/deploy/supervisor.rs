//! The supervisor: starts one worker per VNF (one per fused group for the
//! VNFs of a group), restarts a worker that dies, and serves `/metrics`. It runs detached after `deploy` returns, or in the
//! foreground with `deploy --foreground`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nfvhost_abi::LogLevel;

use super::metrics::{self, MetricsSource};
use super::restart::{self, Decision, RestartPolicy};
use super::state::{vnf_log_path, ChainState, VnfState};
use crate::datapath::stats::{monotonic_ms, read_heartbeat};
use crate::logging::{self, host_log};
use crate::sys::private_file;

/// Where `/metrics` listens unless the chain file says otherwise.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9464";

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
    fn new(vnfs: Vec<VnfState>, child: Option<Child>) -> Self {
        Worker {
            name: unit_name(&vnfs[0]).to_owned(),
            restarts: vnfs.iter().map(|_| Arc::new(AtomicU64::new(0))).collect(),
            vnfs,
            child,
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

fn spawn_worker(state: &ChainState, name: &str, vnfs: &[VnfState]) -> anyhow::Result<Child> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("worker");
    for vnf in vnfs {
        let spec_path = state.file(&format!("{}.spec.json", vnf.name));
        private_file::write_atomic(&spec_path, &serde_json::to_vec_pretty(&vnf.spec)?, 0o600)?;
        command.arg(&spec_path);
    }
    let log_path = vnf_log_path(&state.chain, name);
    let mut child = command
        .stdin(Stdio::null())
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
    Ok(child)
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

    let mut workers = Vec::new();
    for vnfs in worker_units(state) {
        let name = unit_name(&vnfs[0]).to_owned();
        let mut child = spawn_worker(state, &name, &vnfs)?;
        if let Err(e) = wait_ready(&name, &mut child) {
            let _ = child.kill();
            let _ = child.wait();
            // The log pump may still be writing the worker's last lines.
            std::thread::sleep(Duration::from_millis(200));
            let log = vnf_log_path(&state.chain, &name);
            bail!("{e}; last lines of {}:\n{}", log.display(), tail(&log, 10));
        }
        workers.push(Worker::new(vnfs, Some(child)));
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

    while !stop_requested() {
        // Short: a dead worker is noticed within this period.
        std::thread::sleep(SUPERVISE_EVERY);
        if reload_requested() {
            restart_replaced(state, &mut workers, &who);
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

/// Stops (through the supervisor's own child handle, which cannot name a
/// recycled pid) every worker that `nfvhost replace` marked in the state
/// file (its generation changed); [`supervise_one`] restarts it on the
/// module the state file now names.
fn restart_replaced(state: &ChainState, workers: &mut [Worker], who: &str) {
    let Ok(Some(fresh)) = ChainState::load(&state.chain) else {
        return;
    };
    for w in workers {
        let Some(v) = w.vnfs.iter().find_map(|mine| {
            fresh
                .vnfs
                .iter()
                .find(|v| v.name == mine.name && v.generation != mine.generation)
        }) else {
            continue;
        };
        host_log(
            who,
            LogLevel::Info,
            &format!("{} replaced; restarting its worker {}", v.name, w.name),
        );
        if let Some(child) = &mut w.child {
            let _ = child.kill();
        }
        // A replace is not a crash: restart at once, with a fresh budget.
        w.policy = RestartPolicy::default();
        w.given_up = false;
        w.next_start = Instant::now();
    }
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
            Ok(mut child) => {
                // Drain stdout so the worker never blocks on it.
                if let Some(out) = child.stdout.take() {
                    std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
                }
                for r in &w.restarts {
                    r.fetch_add(1, Relaxed);
                }
                w.child = Some(child);
                w.started = Instant::now();
                w.started_ms = monotonic_ms();
            }
            Err(e) => host_log(who, LogLevel::Error, &format!("{e:#}")),
        }
    }
}
