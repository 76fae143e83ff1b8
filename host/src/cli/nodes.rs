//! Commands about one node: exec and the internal worker entry.

use std::os::unix::process::CommandExt;

use anyhow::{anyhow, Context as _};
use nfvhost::deploy::state::ChainState;
use nfvhost::sys::netns::NetNs;

use nfvhost::chain::names::NameKind;

use super::{check_name, pick_chain, CliError, CliResult};

pub fn exec(chain: Option<String>, node: &str, command: &[String]) -> CliResult {
    check_name(NameKind::Node, "node name", node)?;
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
    // A VNF of a fused group runs in the group's namespace.
    let netns = state.vnfs.iter().find(|v| v.name == node).map_or_else(
        || nfvhost::deploy::netns_name(&chain, node),
        |v| v.netns.clone(),
    );
    let ns = NetNs::open(&netns)?;
    ns.enter_current_thread()?;
    let err = std::process::Command::new(&command[0])
        .args(&command[1..])
        .exec();
    Err(anyhow!("couldn't run {}: {err}", command[0]).into())
}

pub fn worker(paths: &[std::path::PathBuf]) -> CliResult {
    let mut specs = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        specs.push(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?,
        );
    }
    nfvhost::datapath::setup::run_group(specs)?;
    Ok(())
}
