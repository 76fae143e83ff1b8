//! Running a [`plan`](super::plan) against an [`Os`]: one call per step,
//! every namespace and cgroup recorded in the state file as soon as it
//! exists, and on failure a rollback that undoes the executed steps in
//! reverse order.

use super::plan::{Phase, Step};
use super::state::{ChainState, StateError};
use crate::sys::cgroup::Cgroup;
use crate::sys::os::{Os, OsError};

/// Why a deploy stopped. What it had created is rolled back by then.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A step failed.
    #[error("{step}")]
    Step {
        step: Box<Step>,
        #[source]
        source: OsError,
    },
    /// The state file could not be written.
    #[error("recording the chain's state")]
    State(#[from] StateError),
    /// A directory in the state directory could not be created.
    #[error("creating {path}")]
    Dir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What undoes one executed step; steps without one (addresses, routes,
/// offloads, MAC, IPv6 switches) go away with their link or namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum Undo {
    DeleteNetns { name: String },
    DeleteLink { ns: String, name: String },
    RemoveCgroup { cgroup: Cgroup },
}

/// Runs `steps` in order, telling `progress` when a new phase starts. On
/// error, undoes what the executed steps created, newest first, and returns
/// the error.
pub fn execute(
    os: &dyn Os,
    steps: &[Step],
    state: &mut ChainState,
    progress: &mut dyn FnMut(&str),
) -> Result<(), DeployError> {
    let mut done = Vec::new();
    let mut phase: Option<Phase> = None;
    for step in steps {
        if phase != Some(step.phase()) {
            phase = Some(step.phase());
            progress(step.phase().message());
        }
        let result = apply(os, step).map_err(|source| DeployError::Step {
            step: Box::new(step.clone()),
            source,
        });
        let recorded = result.and_then(|undo| {
            let Some(undo) = undo else { return Ok(()) };
            record(state, &undo);
            done.push(undo);
            Ok(state.save()?)
        });
        if let Err(err) = recorded {
            rollback(os, done, state, progress);
            return Err(err);
        }
    }
    Ok(())
}

/// Undoes `done` in reverse, dropping each undone object from `state`.
/// Failures are reported to `progress` and the rest is still undone (a
/// later `destroy` finds what is left in the state file).
pub fn rollback(
    os: &dyn Os,
    done: Vec<Undo>,
    state: &mut ChainState,
    progress: &mut dyn FnMut(&str),
) {
    for undo in done.into_iter().rev() {
        let result = match &undo {
            Undo::DeleteNetns { name } => os.delete_netns(name),
            Undo::DeleteLink { ns, name } => os.links().delete_link(ns, name).map_err(Into::into),
            Undo::RemoveCgroup { cgroup } => os.remove_cgroup(cgroup),
        };
        match result {
            Ok(()) => forget(state, &undo),
            Err(e) => progress(&format!("rollback: {e}")),
        }
    }
    if let Err(e) = state.save() {
        progress(&format!("rollback: {e}"));
    }
}

/// Makes the OS call for `step`; returns how to undo it, if it created
/// something.
fn apply(os: &dyn Os, step: &Step) -> Result<Option<Undo>, OsError> {
    let links = os.links();
    Ok(match step {
        Step::CreateNetns { name } => {
            os.create_netns(name)?;
            Some(Undo::DeleteNetns { name: name.clone() })
        }
        Step::DisableIpv6 { ns } => {
            os.disable_ipv6(ns)?;
            None
        }
        Step::CreateVeth {
            ns_a,
            name_a,
            ns_b,
            name_b,
            mtu,
        } => {
            links.create_veth(ns_a, name_a, ns_b, name_b, *mtu)?;
            Some(Undo::DeleteLink {
                ns: ns_a.clone(),
                name: name_a.clone(),
            })
        }
        Step::CreateTap { ns, name, mtu } => {
            links.create_tap(ns, name, *mtu, false)?;
            Some(Undo::DeleteLink {
                ns: ns.clone(),
                name: name.clone(),
            })
        }
        Step::CreateVxlan { ns, name, config } => {
            links.create_vxlan(ns, name, config)?;
            Some(Undo::DeleteLink {
                ns: ns.clone(),
                name: name.clone(),
            })
        }
        Step::SetUp { ns, name } => {
            links.set_up(ns, name)?;
            None
        }
        Step::DisableOffloads { ns, name } => {
            links.disable_offloads(ns, name)?;
            None
        }
        Step::SetMac { ns, name, mac } => {
            links.set_mac(ns, name, *mac)?;
            None
        }
        Step::AddAddress {
            ns,
            name,
            addr,
            prefix_len,
        } => {
            links.add_address(ns, name, *addr, *prefix_len)?;
            None
        }
        Step::AddRoute { ns, dst, via } => {
            links.add_route(ns, *dst, *via)?;
            None
        }
        Step::CreateCgroup { rel_path, limits } => Some(Undo::RemoveCgroup {
            cgroup: os.create_cgroup(rel_path, limits)?,
        }),
    })
}

/// Records a created namespace or cgroup in `state` (links live in their
/// namespaces and need no record).
fn record(state: &mut ChainState, undo: &Undo) {
    match undo {
        Undo::DeleteNetns { name } => state.namespaces.push(name.clone()),
        Undo::RemoveCgroup { cgroup } => state.cgroups.push(cgroup.clone()),
        Undo::DeleteLink { .. } => {}
    }
}

fn forget(state: &mut ChainState, undo: &Undo) {
    match undo {
        Undo::DeleteNetns { name } => state.namespaces.retain(|n| n != name),
        Undo::RemoveCgroup { cgroup } => state.cgroups.retain(|c| c != cgroup),
        Undo::DeleteLink { .. } => {}
    }
}
