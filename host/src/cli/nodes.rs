//! Commands about one node: exec, logs, and the internal worker entry.

use std::os::unix::process::CommandExt;
use std::path::Path;

use anyhow::{anyhow, Context as _};
use nfvhost::deploy::state::{vnf_log_path, ChainState};
use nfvhost::sys::netns::NetNs;

use super::{pick_chain, CliError, CliResult};

pub fn exec(chain: Option<String>, node: &str, command: &[String]) -> CliResult {
    let chain = pick_chain(chain)?;
    let state = ChainState::load(&chain)?
        .ok_or_else(|| CliError::usage(anyhow!("chain {chain} is not deployed")))?;
    let known: Vec<&str> = state
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .chain(state.vnfs.iter().map(|v| v.name.as_str()))
        .collect();
    if !known.contains(&node) {
        return Err(CliError::usage(anyhow!(
            "chain {chain} has no node `{node}`; its nodes are {}",
            known.join(", ")
        )));
    }
    let ns = NetNs::open(&nfvhost::deploy::netns_name(&chain, node))?;
    ns.enter_current_thread()?;
    let err = std::process::Command::new(&command[0])
        .args(&command[1..])
        .exec();
    Err(anyhow!("couldn't run {}: {err}", command[0]).into())
}

pub fn logs(chain: Option<String>, vnf: &str, tail: Option<usize>) -> CliResult {
    let chain = pick_chain(chain)?;
    let path = if vnf == "supervisor" {
        ChainState::dir(&chain).join("supervisor.log")
    } else {
        vnf_log_path(&chain, vnf)
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CliError::usage(anyhow!(
            "no log for `{vnf}` in chain {chain} ({}: {e})",
            path.display()
        ))
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let start = tail.map_or(0, |n| lines.len().saturating_sub(n));
    for line in &lines[start..] {
        println!("{line}");
    }
    Ok(())
}

pub fn worker(spec: &Path) -> CliResult {
    let bytes = std::fs::read(spec).with_context(|| format!("reading {}", spec.display()))?;
    let spec =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", spec.display()))?;
    nfvhost::datapath::worker::run(spec)?;
    Ok(())
}
