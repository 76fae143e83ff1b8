//! Removing a chain: every process, namespace and cgroup recorded in its
//! state, whatever state the chain is in. Idempotent.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::state::{ChainState, ProcRef};
use crate::sys::cgroup::CgroupRoot;
use crate::sys::netns::{self, NetNs};

/// What teardown removed, for the message to the user.
#[derive(Debug, Default)]
pub struct Removed {
    pub processes: usize,
    pub namespaces: usize,
    pub cgroups: usize,
}

/// Stops a process we started: SIGTERM, then SIGKILL after `grace`.
pub fn stop_process(p: ProcRef, grace: Duration) -> bool {
    if !p.alive() {
        return false;
    }
    let pid = Pid::from_raw(p.pid);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while p.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if p.alive() {
        let _ = kill(pid, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while p.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    true
}

/// Tears down everything `state` records, then removes the state directory.
/// Also sweeps namespaces named after the chain that the state may have
/// missed (a deploy killed between creating one and saving the state).
pub fn teardown(state: &ChainState) -> anyhow::Result<Removed> {
    let mut removed = Removed::default();
    let mut errors = Vec::new();

    if let Some(sup) = state.supervisor {
        if stop_process(sup, Duration::from_secs(5)) {
            removed.processes += 1;
        }
    }
    for p in &state.helpers {
        if stop_process(*p, Duration::from_secs(1)) {
            removed.processes += 1;
        }
    }
    // Workers live in the VNF cgroups; anything still there is ours.
    for cg in &state.cgroups {
        for pid in cg.procs().unwrap_or_default() {
            if let Some(p) = ProcRef::of(pid) {
                if stop_process(p, Duration::from_secs(2)) {
                    removed.processes += 1;
                }
            }
        }
    }

    let prefix = format!("nfv-{}-", state.chain);
    let mut names = state.namespaces.clone();
    names.extend(
        netns::list()
            .into_iter()
            .filter(|n| n.starts_with(&prefix) && !state.namespaces.contains(n)),
    );
    for ns in names {
        if !netns::exists(&ns) {
            continue;
        }
        // Processes started inside a test host (DHCP clients, servers a user
        // ran with `exec`) keep a namespace alive; stop ours first.
        match NetNs::delete(&ns) {
            Ok(()) => removed.namespaces += 1,
            Err(e) => errors.push(format!("namespace {ns}: {e}")),
        }
    }

    // Newest first: the first VNF's cgroup created the chain's parent
    // directory, and can only remove it once its siblings are gone.
    for cg in state.cgroups.iter().rev() {
        match cg.remove() {
            Ok(()) => removed.cgroups += 1,
            Err(e) => errors.push(format!("cgroup {}: {e}", cg.rel_path())),
        }
    }
    // And whatever a killed deploy left of `nfvhost/<chain>` (empty
    // directories only: rmdir refuses anything still in use).
    if let Ok(root) = CgroupRoot::detect(std::path::Path::new("/sys/fs/cgroup")) {
        if let Ok(leftover) = root.open(&format!("nfvhost/{}", state.chain)) {
            if let Err(e) = leftover.remove() {
                errors.push(format!("cgroup nfvhost/{}: {e}", state.chain));
            }
        }
    }

    if errors.is_empty() {
        let dir = ChainState::dir(&state.chain);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        Ok(removed)
    } else {
        anyhow::bail!(
            "teardown of {} left things behind:\n  {}",
            state.chain,
            errors.join("\n  ")
        )
    }
}
