//! `nfvhost link down|up CHAIN:NODE:PORT`: carrier off and on for one link,
//! like Mininet's `link s1 s2 down`, by taking that port's interface down
//! (its veth peer then loses carrier). `nfvhost link set CHAIN:NODE:PORT
//! --delay 50ms ...`: new netem parameters for a running impair function,
//! for the direction leaving by PORT, like containerlab's `tools netem set`,
//! without restarting it or losing the frames it holds.

use anyhow::anyhow;
use nfvhost::chain::names::{check_arg, NameKind};
use nfvhost::datapath::worker::PortBinding;
use nfvhost::deploy::lock::ChainLock;
use nfvhost::deploy::state::ChainState;
use nfvhost::sys::netns::NetNs;

use super::{CliError, CliResult};

/// Where a port's interface lives: (namespace, interface name).
fn locate(state: &ChainState, node: &str, port: &str) -> Result<(String, String), CliError> {
    if let Some(h) = state.hosts.iter().find(|h| h.name == node) {
        return if h.interfaces.iter().any(|i| i == port) {
            Ok((h.netns.clone(), port.to_owned()))
        } else {
            Err(CliError::usage(anyhow!(
                "host {node} has no interface `{port}`; its interfaces are {}",
                h.interfaces.join(", ")
            )))
        };
    }
    if let Some(v) = state.vnfs.iter().find(|v| v.name == node) {
        let Some(p) = v.spec.ports.iter().find(|p| p.name == port) else {
            return Err(CliError::usage(anyhow!(
                "VNF {node} has no port `{port}`; its ports are {}",
                v.ports.join(", ")
            )));
        };
        return Ok(match &p.binding {
            PortBinding::Interface { ifname } => (v.netns.clone(), ifname.clone()),
            PortBinding::Tap { netns, ifname } => (netns.clone(), ifname.clone()),
            PortBinding::Memory { vnf, port: far } => {
                return Err(CliError::usage(anyhow!(
                    "{node}:{port} is linked in memory to {vnf}:{far} inside fused group {}: \
                     there is no interface to take down or up; move one of them out of the \
                     group to get a veth pair",
                    v.group.as_deref().unwrap_or("?")
                )))
            }
        });
    }
    Err(CliError::usage(anyhow!(
        "chain {} has no node `{node}`",
        state.chain
    )))
}

/// Splits `CHAIN:NODE:PORT`, each checked by the rule chain files follow.
fn parse_target(target: &str) -> Result<(&str, &str, &str), CliError> {
    let parts: Vec<&str> = target.split(':').collect();
    let [c, n, p] = parts.as_slice() else {
        return Err(CliError::usage(anyhow!(
            "expected CHAIN:NODE:PORT (e.g. lab-wan:wan:a), but got `{target}`"
        )));
    };
    check_arg(NameKind::Chain, "chain name", c)
        .and_then(|()| check_arg(NameKind::Node, "node name", n))
        .and_then(|()| check_arg(NameKind::Interface, "port name", p))
        .map_err(CliError::usage)?;
    Ok((c, n, p))
}

/// The netem parameters `link set` changes, as impair config keys.
#[derive(Debug, Default, clap::Args)]
pub struct NetemArgs {
    /// Fixed delay, e.g. 50ms.
    #[arg(long)]
    pub delay: Option<String>,
    /// Jitter around the delay, e.g. 5ms.
    #[arg(long)]
    pub jitter: Option<String>,
    /// Random loss, e.g. 1%.
    #[arg(long)]
    pub loss: Option<String>,
    /// Rate limit, e.g. 10mbit.
    #[arg(long)]
    pub rate: Option<String>,
    /// Bit corruption probability, e.g. 0.1%.
    #[arg(long)]
    pub corrupt: Option<String>,
    /// Duplication probability.
    #[arg(long)]
    pub duplicate: Option<String>,
    /// Reorder probability (with a delay).
    #[arg(long)]
    pub reorder: Option<String>,
}

impl NetemArgs {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("delay", &self.delay),
            ("jitter", &self.jitter),
            ("loss", &self.loss),
            ("rate", &self.rate),
            ("corrupt", &self.corrupt),
            ("duplicate", &self.duplicate),
            ("reorder", &self.reorder),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

/// The impair config with `changes` applied to the direction `dir`
/// (`a_to_b` or `b_to_a`). Top-level keys, which applied to both
/// directions, are first copied into each direction's own block.
fn apply(config: &serde_json::Value, dir: &str, changes: &[(&str, &str)]) -> serde_json::Value {
    use serde_json::{Map, Value};
    let old = config.as_object().cloned().unwrap_or_default();
    let mut both = Map::new();
    let mut out = Map::new();
    for (k, v) in &old {
        match k.as_str() {
            "a_to_b" | "b_to_a" | "seed" => {
                out.insert(k.clone(), v.clone());
            }
            _ => {
                both.insert(k.clone(), v.clone());
            }
        }
    }
    for d in ["a_to_b", "b_to_a"] {
        out.entry(d).or_insert_with(|| Value::Object(both.clone()));
    }
    if let Some(Value::Object(block)) = out.get_mut(dir) {
        for (k, v) in changes {
            block.insert((*k).to_owned(), Value::String((*v).to_owned()));
        }
    }
    Value::Object(out)
}

pub fn set_netem(target: &str, args: &NetemArgs) -> CliResult {
    let (chain, node, port) = parse_target(target)?;
    let changes = args.pairs();
    if changes.is_empty() {
        return Err(CliError::usage(anyhow!(
            "nothing to set; give at least one of --delay, --jitter, --loss, --rate, --corrupt, --duplicate, --reorder"
        )));
    }
    // One change to a chain at a time, and none during a deploy or destroy.
    let _lock = ChainLock::acquire(chain)?;
    let mut state = ChainState::load(chain)?
        .ok_or_else(|| CliError::usage(anyhow!("chain {chain} is not deployed")))?;
    let Some(vnf) = state.vnfs.iter_mut().find(|v| v.name == node) else {
        return Err(CliError::usage(anyhow!(
            "chain {chain} has no VNF `{node}`; `link set` changes an impair function (a link's `impair:` runs as `impair-N`)"
        )));
    };
    let dir = match (vnf.ports.iter().position(|p| p == port), vnf.ports.len()) {
        (Some(1), 2) => "a_to_b",
        (Some(0), 2) => "b_to_a",
        _ => {
            return Err(CliError::usage(anyhow!(
                "{node} has no port `{port}` of a two-port impair function; its ports are {}",
                vnf.ports.join(", ")
            )))
        }
    };
    let mut doc: serde_json::Value = serde_json::from_str(&vnf.spec.init_document)
        .map_err(|e| anyhow!("reading {node}'s configuration from the state: {e}"))?;
    doc["config"] = apply(&doc["config"], dir, &changes);
    let text = doc.to_string();
    let stats = &vnf.spec.stats_path;
    let pid = nfvhost::datapath::stats::StatsSegment::open(stats)
        .map(|s| s.pid.load(std::sync::atomic::Ordering::Relaxed) as i32)
        .map_err(|e| anyhow!("{node} is not running: {e}"))?;
    // The pid comes from the worker's own segment, so it is not trusted:
    // signalled only through a pidfd, and only if that process is in the
    // VNF's cgroup (as `nfvhost_vnf_up` checks it).
    let worker = nfvhost::sys::pidfd::Pidfd::open(pid)
        .map_err(|e| anyhow!("{node}'s worker (pid {pid}) is not running: {e}"))?;
    let member = match &vnf.spec.cgroup {
        Some(cg) => cg.procs().is_ok_and(|p| p.contains(&pid)),
        None => nfvhost::deploy::state::ProcRef::of(pid).is_some_and(|p| p.alive()),
    };
    if !member || worker.exited() {
        return Err(anyhow!("pid {pid} from {node}'s stats segment is not its worker").into());
    }
    let signal = || worker.signal(nix::sys::signal::Signal::SIGUSR1);
    let answer = nfvhost::datapath::control::request(
        stats,
        text.as_bytes(),
        signal,
        std::time::Duration::from_secs(5),
    )
    .map_err(|e| anyhow!("{node}: {e}"))?;
    if let Err(err) = answer {
        return Err(CliError::usage(anyhow!("{node} refused the change: {err}")));
    }
    // A restarted worker starts from the state: keep it current.
    vnf.spec.init_document = text;
    state.save()?;
    let shown: Vec<String> = changes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "nfvhost: {chain}:{node}:{port} ({dir}): {}",
        shown.join(", ")
    );
    Ok(())
}

pub fn set_carrier(target: &str, up: bool) -> CliResult {
    let (chain, node, port) = parse_target(target)?;
    let state = ChainState::load(chain)?
        .ok_or_else(|| CliError::usage(anyhow!("chain {chain} is not deployed")))?;
    let (netns, ifname) = locate(&state, node, port)?;
    let ns = NetNs::open(&netns)?;
    if up {
        nfvhost::sys::link::set_up(&ns, &ifname)?;
    } else {
        nfvhost::sys::link::set_down(&ns, &ifname)?;
    }
    eprintln!(
        "nfvhost: {chain}:{node}:{port} is {}",
        if up { "up" } else { "down" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_splits_shared_keys_and_changes_one_direction() {
        let old = serde_json::json!({ "delay": "20ms", "loss": "1%", "seed": 3 });
        let new = apply(&old, "a_to_b", &[("delay", "50ms"), ("rate", "5mbit")]);
        assert_eq!(
            new,
            serde_json::json!({
                "seed": 3,
                "a_to_b": { "delay": "50ms", "loss": "1%", "rate": "5mbit" },
                "b_to_a": { "delay": "20ms", "loss": "1%" },
            })
        );
    }

    #[test]
    fn targets_have_three_non_empty_parts() {
        assert_eq!(parse_target("c:n:p").ok(), Some(("c", "n", "p")));
        for bad in ["c:n", "c::p", "c:n:p:q", "", "../x:n:p", "c:n:a/b", ".:n:p"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
