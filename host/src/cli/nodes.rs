//! Commands about one node: exec, logs, and the internal worker entry.

use std::os::unix::process::CommandExt;
use std::path::Path;

use anyhow::{anyhow, Context as _};
use nfvhost::deploy::state::{vnf_log_path, ChainState};
use nfvhost::sys::netns::NetNs;

use nfvhost::chain::names::NameKind;
use nfvhost::sys::private_file;

use super::{check_name, pick_chain, CliError, CliResult};

/// Reads a log without following a symlink; invalid UTF-8 is replaced.
fn read_log(path: &Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    private_file::open_read(path)?.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

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

pub fn logs(chain: Option<String>, vnf: &str, tail: Option<usize>) -> CliResult {
    check_name(NameKind::Node, "VNF name", vnf)?;
    let chain = pick_chain(chain)?;
    let Some(state) = ChainState::load(&chain)? else {
        return Err(CliError::usage(anyhow!("chain {chain} is not deployed")));
    };
    let path = if vnf == "supervisor" {
        ChainState::dir(&chain).join("supervisor.log")
    } else {
        // The members of a fused group share their worker's log.
        let unit = state
            .vnfs
            .iter()
            .find(|v| v.name == vnf)
            .map_or(vnf, nfvhost::deploy::supervisor::unit_name);
        vnf_log_path(&chain, unit)
    };
    let text = read_log(&path).map_err(|e| {
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
