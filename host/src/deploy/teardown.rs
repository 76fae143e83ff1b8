//! Removing a chain: every process recorded in its state or found in its
//! cgroups, then its namespaces and cgroups through an [`Os`], whatever
//! state the chain is in. Idempotent. Only what is ours is touched: the
//! namespaces named `nfv-<chain>-*` and the cgroups under `nfvhost/<chain>/`
//! of the cgroup mount, even if the state file says otherwise.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::cgroup_path;
use super::state::{self, ChainState, ProcRef, StateError};
use crate::sys::cgroup::Cgroup;
use crate::sys::os::{LinuxOs, Os};
use crate::sys::pidfd::Pidfd;

/// What teardown removed, for the message to the user.
#[derive(Debug, Default)]
pub struct Removed {
    pub processes: usize,
    pub namespaces: usize,
    pub cgroups: usize,
}

/// Why a teardown did not finish.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    /// Some objects could not be removed (or are not ours to remove); the
    /// state directory is kept so that `destroy` can try again.
    #[error("teardown of {chain} left things behind:\n  {}", left.join("\n  "))]
    LeftBehind { chain: String, left: Vec<String> },
    #[error(transparent)]
    State(#[from] StateError),
}

/// Whether `name` is one of `chain`'s namespaces (`nfv-<chain>-<node>`)
/// in this process's instance.
pub fn owns_netns(chain: &str, name: &str) -> bool {
    crate::instance::Scope::current().owns_netns(chain, name)
}

/// Whether `cgroup` is one of `chain`'s: its path is `nfvhost/<chain>/<vnf>`
/// and every directory of it is that path under the cgroup mount.
pub fn owns_cgroup(chain: &str, cgroup: &Cgroup, mount: &std::path::Path) -> bool {
    let rel = cgroup.rel_path();
    let vnf = rel.strip_prefix(&cgroup_path(chain, ""));
    vnf.is_some_and(|v| !v.is_empty() && !v.contains('/') && v != "." && v != "..")
        && cgroup
            .paths()
            .iter()
            .all(|p| p.starts_with(mount) && p.ends_with(rel) && !p.components().any(is_parent_dir))
}

fn is_parent_dir(c: std::path::Component<'_>) -> bool {
    matches!(c, std::path::Component::ParentDir)
}

/// Stops a process we started: SIGTERM, then SIGKILL after `grace`. The
/// signals go through a pidfd checked against the recorded start time, so
/// a recycled pid is never signalled.
pub fn stop_process(p: ProcRef, grace: Duration) -> bool {
    match p.pidfd() {
        Some(fd) => stop_pidfd(&fd, grace),
        None => false,
    }
}

/// Stops the process behind `fd`: SIGTERM, then SIGKILL after `grace`.
pub fn stop_pidfd(fd: &Pidfd, grace: Duration) -> bool {
    if fd.signal(Signal::SIGTERM).is_err() {
        return false;
    }
    if !fd.wait_exit(grace) {
        let _ = fd.signal(Signal::SIGKILL);
        fd.wait_exit(Duration::from_secs(2));
    }
    true
}

/// [`teardown_on`] the machine.
pub fn teardown(state: &ChainState) -> Result<Removed, TeardownError> {
    teardown_on(&LinuxOs::default(), state)
}

/// Tears down everything `state` records, then empties the state directory
/// (only if nfvhost created it) but for the logs, which stay until
/// `destroy --cleanup` ([`state::remove_state_dir`]). Exactly the namespaces the state records
/// are deleted, and only those named `nfv-<chain>-*`: a sweep by prefix
/// would catch other chains' namespaces (`nfv-a-b-x` is node `b-x` of chain
/// `a` and node `x` of chain `a-b`).
pub fn teardown_on(os: &dyn Os, state: &ChainState) -> Result<Removed, TeardownError> {
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
    let mount = os.cgroup_mount();
    let (cgroups, foreign): (Vec<&Cgroup>, Vec<&Cgroup>) = state
        .cgroups
        .iter()
        .partition(|cg| owns_cgroup(&state.chain, cg, mount));
    for cg in foreign {
        errors.push(format!(
            "cgroup {} is not under nfvhost/{}/ of {}; left alone",
            cg.rel_path(),
            state.chain,
            mount.display()
        ));
    }
    // Workers live in the VNF cgroups; anything still there is ours.
    for cg in &cgroups {
        for pid in os.cgroup_procs(cg) {
            // Open first, then see the pid still in the cgroup and the
            // process not exited: the descriptor names that member.
            let Ok(fd) = Pidfd::open(pid) else { continue };
            let member = os.cgroup_procs(cg).contains(&pid);
            if member && !fd.exited() && stop_pidfd(&fd, Duration::from_secs(2)) {
                removed.processes += 1;
            }
        }
    }

    let mut names = Vec::new();
    for ns in &state.namespaces {
        if owns_netns(&state.chain, ns) {
            names.push(ns.clone());
        } else {
            errors.push(format!(
                "namespace {ns} is not nfv-{}-*; left alone",
                state.chain
            ));
        }
    }
    for ns in names {
        if !os.netns_exists(&ns) {
            continue;
        }
        // Processes started inside a test host (DHCP clients, servers a user
        // ran with `exec`) keep a namespace alive; stop ours first.
        match os.delete_netns(&ns) {
            Ok(()) => removed.namespaces += 1,
            Err(e) => errors.push(format!("namespace {ns}: {e}")),
        }
    }

    // Newest first: the first VNF's cgroup created the chain's parent
    // directory, and can only remove it once its siblings are gone.
    for cg in cgroups.iter().rev() {
        match os.remove_cgroup(cg) {
            Ok(()) => removed.cgroups += 1,
            Err(e) => errors.push(format!("cgroup {}: {e}", cg.rel_path())),
        }
    }
    // And whatever a killed deploy left of `nfvhost/<chain>` (empty
    // directories only: rmdir refuses anything still in use).
    let cgroup_root = crate::instance::Scope::current().cgroup_root();
    let chain_dir = format!("{cgroup_root}/{}", state.chain);
    if let Ok(leftover) = os.open_cgroup(&chain_dir) {
        if let Err(e) = os.remove_cgroup(&leftover) {
            errors.push(format!("cgroup {chain_dir}: {e}"));
        }
        // The instance's shared `nfvhost` parent goes with its last chain,
        // in every controller; while another chain has a directory in it,
        // rmdir refuses and it stays, which is not an error.
        if let Ok(parent) = os.open_cgroup(&cgroup_root) {
            let _ = os.remove_cgroup(&parent);
        }
    }

    if errors.is_empty() {
        state::clear_dir_keeping_logs(&state.state_dir(), &state.chain)?;
        Ok(removed)
    } else {
        Err(TeardownError::LeftBehind {
            chain: state.chain.clone(),
            left: errors,
        })
    }
}
