//! validate, deploy, destroy and the internal supervise entry.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use nfvhost::chain::NameKind;
use nfvhost::chain::{self, ChainErrors, ChainSpec};
use nfvhost::deploy::lock::ChainLock;
use nfvhost::deploy::modules::{self, CheckedVnf};
use nfvhost::deploy::state::{ChainState, ProcRef};
use nfvhost::deploy::{handover, setup, supervisor, teardown};
use nfvhost::engine::Engine;
use nfvhost::sys::{private_file, LinuxOs};

use super::{CliError, CliResult};

fn progress(msg: &str) {
    eprintln!("nfvhost: {msg}");
}

/// Parses the chain file and checks every module and its configuration.
fn load_and_check(file: &Path) -> Result<(ChainSpec, Vec<CheckedVnf>), CliError> {
    let chain = chain::load(file)
        .map_err(|e| CliError::usage(anyhow!("{e}\n{} error(s) in {}", e.len(), file.display())))?;
    let engine = Engine::new(Engine::default_cache_dir())?;
    let checked = modules::check_all(&engine, &chain, progress).map_err(|errors| {
        let errors = ChainErrors(errors);
        CliError::usage(anyhow!(
            "{errors}\n{} error(s) in {}",
            errors.len(),
            file.display()
        ))
    })?;
    Ok((chain, checked))
}

pub fn validate(file: &Path) -> CliResult {
    let (chain, _) = load_and_check(file)?;
    println!(
        "{}: chain `{}` is valid: {} hosts, {} VNFs, {} links",
        file.display(),
        chain.name,
        chain.hosts.len(),
        chain.vnfs.len(),
        chain.links.len()
    );
    Ok(())
}

pub fn deploy(file: &Path, foreground: bool) -> CliResult {
    let started = Instant::now();
    let (chain, checked) = load_and_check(file)?;
    // Held until the chain is ready: a second deploy (or a destroy) of the
    // same chain meanwhile fails at once and touches nothing.
    let lock = ChainLock::acquire(&chain.name)?;
    if let Some(old) = ChainState::load(&chain.name)? {
        if old.supervisor.is_some_and(|s| s.alive()) {
            return Err(anyhow!(
                "chain {} is already deployed; run `nfvhost destroy -c {}` first",
                chain.name,
                chain.name
            )
            .into());
        }
        progress(&format!(
            "removing what is left of an earlier deploy of {}",
            chain.name
        ));
        teardown::teardown(&old)?;
    }
    let mut state = ChainState {
        chain: chain.name.clone(),
        chain_file: std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned()),
        metrics: chain.metrics,
        topology: Some(nfvhost::chain::graph::Topology::of(&chain)),
        ..Default::default()
    };
    state.save()?;
    // From here on, any failure removes everything created so far.
    let os = LinuxOs::default();
    let built = setup::build(&os, &chain, &checked, &mut state, progress);
    let result = built.map_err(anyhow::Error::from).and_then(|()| {
        if foreground {
            Ok(())
        } else {
            start_supervisor(&mut state)?;
            nfvhost::deploy::dhcp_clients::start(&mut state, &dhcp_interfaces(&chain), progress)
        }
    });
    if let Err(e) = result {
        progress("deploy failed; removing what it created");
        let _ = teardown::teardown(&ChainState::load(&chain.name)?.unwrap_or(state));
        lock.release_and_remove();
        return Err(e.into());
    }
    if foreground {
        drop(lock);
        return run_foreground(&chain, state, started);
    }
    drop(lock);
    progress(&format!(
        "chain {} deployed in {:.1}s",
        chain.name,
        started.elapsed().as_secs_f64()
    ));
    super::inspect::inspect(
        Some(chain.name.clone()),
        super::inspect::InspectOutput::Table,
    )
}

/// `(host, interface)` for every interface that takes a DHCP lease.
fn dhcp_interfaces(chain: &ChainSpec) -> Vec<(String, String)> {
    chain
        .hosts
        .iter()
        .flat_map(|h| {
            h.interfaces
                .iter()
                .filter(|i| i.dhcp)
                .map(|i| (h.name.clone(), i.name.clone()))
        })
        .collect()
}

/// Starts the detached supervisor and waits until it reports ready.
fn start_supervisor(state: &mut ChainState) -> anyhow::Result<()> {
    let log_path = state.file("supervisor.log");
    let log = private_file::open_append(&log_path)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("supervise")
        .arg(&state.chain)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own session: the supervisor outlives this command and a closed
    // terminal. It keeps none of our caller's descriptors (a `flock` held
    // around `nfvhost deploy` would otherwise stay held until destroy).
    nfvhost::sys::process::new_session_on_exec(&mut cmd);
    progress("starting workers");
    let mut child = cmd.spawn().context("starting the supervisor")?;
    state.supervisor = ProcRef::of(child.id() as i32);
    state.save()?;
    let ready = state.file("ready");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if ready.exists() {
            // Without `metrics:` the supervisor took a free port: record it.
            state.metrics = supervisor::bound_metrics(state).or(state.metrics);
            state.save()?;
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(anyhow!(
                "the supervisor exited ({status}) before the chain was ready:\n{}",
                log.trim_end()
            ));
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "the chain was not ready after 120s; see {}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_foreground(spec: &ChainSpec, mut state: ChainState, started: Instant) -> CliResult {
    state.supervisor = ProcRef::of(std::process::id() as i32);
    state.save()?;
    supervisor::install_stop_handlers();
    let chain = state.chain.clone();
    let dhcp = dhcp_interfaces(spec);
    let mut dhcp_state = state.clone();
    let result = supervisor::run(&state, || {
        // Without `metrics:` the supervisor took a free port: record it.
        dhcp_state.metrics = supervisor::bound_metrics(&dhcp_state).or(dhcp_state.metrics);
        if let Err(e) = dhcp_state.save() {
            progress(&format!("warning: {e}"));
        }
        // The leases come from VNFs that only now run.
        if let Err(e) = nfvhost::deploy::dhcp_clients::start(&mut dhcp_state, &dhcp, progress) {
            progress(&format!("warning: {e:#}"));
        }
        progress(&format!(
            "chain {chain} ready in {:.1}s; Ctrl-C to stop and remove it",
            started.elapsed().as_secs_f64()
        ));
    });
    state.helpers = dhcp_state.helpers;
    state.metrics = dhcp_state.metrics;
    progress("tearing down");
    state.supervisor = None; // that is us; don't signal ourselves
                             // Not ours if a `destroy` holds it right now; that destroy removes it.
    let lock = ChainLock::acquire(&chain).ok();
    teardown::teardown(&state)?;
    if let Some(lock) = lock {
        lock.release_and_remove();
    }
    result?;
    Ok(())
}

pub fn supervise(chain: &str) -> CliResult {
    let state = ChainState::load(chain)?.ok_or_else(|| anyhow!("chain {chain} has no state"))?;
    supervisor::install_stop_handlers();
    supervisor::run(&state, || {})?;
    Ok(())
}

pub fn destroy(file: Option<&Path>, chain: Option<String>, all: bool, cleanup: bool) -> CliResult {
    let names = if all {
        // Destroyed chains with their logs kept too, for `--cleanup`.
        ChainState::list_dirs()
    } else if let Some(c) = chain {
        super::check_name(NameKind::Chain, "chain name", &c)?;
        vec![c]
    } else if let Some(f) = file {
        // Only the name is needed; a file that no longer validates can still
        // be destroyed by name.
        match chain::load(f) {
            Ok(spec) => vec![spec.name],
            Err(e) => {
                return Err(CliError::usage(anyhow!(
                    "{e}\nuse `nfvhost destroy --chain NAME` instead"
                )))
            }
        }
    } else {
        return Err(CliError::usage(anyhow!(
            "say which chain: a chain file, --chain NAME or --all"
        )));
    };
    for name in names {
        let lock = ChainLock::acquire(&name)?;
        let state = ChainState::load(&name)?.unwrap_or_else(|| ChainState {
            chain: name.clone(),
            ..Default::default()
        });
        let removed = teardown::teardown(&state)?;
        lock.release_and_remove();
        progress(&format!(
            "chain {name}: removed {} processes, {} namespaces, {} cgroups",
            removed.processes, removed.namespaces, removed.cgroups
        ));
        if cleanup {
            nfvhost::deploy::state::remove_state_dir(&name)?;
        } else if ChainState::dir(&name).exists() {
            progress(&format!(
                "chain {name}: logs kept in {} (`nfvhost logs -c {name} VNF`); \
                 `nfvhost destroy -c {name} --cleanup` removes them",
                ChainState::dir(&name).display()
            ));
        }
    }
    Ok(())
}

/// Checks `module` against the VNF's configuration, records it in the state
/// file, and asks the supervisor to hand it to the running worker, which
/// switches to it keeping the module's state; waits for the outcome. If
/// the new module fails to start or to take the state, the running one
/// stays and the state file names it again.
pub fn replace(chain: Option<String>, vnf: &str, module: &str) -> CliResult {
    super::check_name(NameKind::Node, "VNF name", vnf)?;
    let module_ref = super::module_arg(module)?;
    let chain_name = super::pick_chain(chain)?;
    let _lock = ChainLock::acquire(&chain_name)?;
    let mut state = ChainState::load(&chain_name)?
        .ok_or_else(|| CliError::usage(anyhow!("chain {chain_name} is not deployed")))?;
    let Some(supervisor) = state.supervisor.and_then(|s| s.pidfd()) else {
        return Err(
            anyhow!("chain {chain_name} has no running supervisor; deploy it again").into(),
        );
    };
    let spec = chain::load(&state.chain_file).map_err(|e| anyhow!("{e}"))?;
    let mut vnf_spec = spec
        .vnf(vnf)
        .cloned()
        .ok_or_else(|| CliError::usage(anyhow!("chain {chain_name} has no VNF `{vnf}`")))?;
    vnf_spec.module = module_ref;
    let one = ChainSpec {
        vnfs: vec![vnf_spec],
        ..spec
    };
    let engine = Engine::new(Engine::default_cache_dir())?;
    let checked = modules::check_all(&engine, &one, progress)
        .map_err(|errors| CliError::usage(anyhow!("{}", ChainErrors(errors))))?;
    let new = &checked[0].module;
    let entry = state
        .vnfs
        .iter_mut()
        .find(|v| v.name == vnf)
        .ok_or_else(|| anyhow!("VNF {vnf} is not in the state"))?;
    let previous = entry.clone();
    entry.module = new.path.clone();
    entry.digest = new.digest.clone();
    entry.spec.module = new.path.clone();
    entry.generation += 1;
    let generation = entry.generation;
    state.save()?;
    // The supervisor talks to the worker through its own channel (a pid
    // read from the worker's stats segment may be stale or forged).
    supervisor
        .signal(supervisor::RELOAD_SIGNAL)
        .context("asking the supervisor to replace the module")?;
    progress(&format!("handing {} to {vnf}", new.path.display()));
    let reply = handover::wait_for(&state, vnf, generation, handover::REPLACE_TIMEOUT * 2);
    let outcome = match reply {
        None => Err(format!(
            "the supervisor did not report within {:?}",
            handover::REPLACE_TIMEOUT * 2
        )),
        Some(reply) => reply.result,
    };
    match outcome {
        Ok(done) => {
            let carried = match (&done.state_bytes, &done.state_note) {
                (Some((version, len)), _) => {
                    format!("{len} bytes of state carried (format {version})")
                }
                (None, note) => format!(
                    "state not carried ({})",
                    note.as_deref().unwrap_or("nothing to carry")
                ),
            };
            progress(&format!(
                "{vnf} now runs {} (sha256 {}); {carried}; switched in {} us, frames held {} us",
                new.path.display(),
                &new.digest[..12],
                done.total_us,
                done.paused_us
            ));
            Ok(())
        }
        Err(message) => {
            // The worker kept its module: the state file names it again
            // (with the new generation, which the supervisor has seen).
            let kept = previous.module.display().to_string();
            if let Some(entry) = state.vnfs.iter_mut().find(|v| v.name == vnf) {
                *entry = previous;
                entry.generation = generation;
            }
            state.save()?;
            Err(anyhow!("replacing {vnf} failed; it keeps running {kept}: {message}").into())
        }
    }
}
