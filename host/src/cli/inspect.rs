//! `inspect` / `ps`: what runs where.

use std::sync::atomic::Ordering::Relaxed;

use nfvhost::datapath::stats::StatsSegment;
use nfvhost::deploy::state::{ChainState, ProcRef};
use serde::Serialize;

use super::CliResult;

/// What `inspect` prints.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum, PartialEq, Eq)]
pub enum InspectOutput {
    #[default]
    Table,
    Json,
    /// A Prometheus file-based service discovery list (`file_sd_configs`)
    /// with each running chain's `/metrics` target.
    Prometheus,
}

/// One entry of a Prometheus file-based service discovery list.
#[derive(Serialize)]
struct SdTarget {
    targets: Vec<String>,
    labels: std::collections::BTreeMap<&'static str, String>,
}

/// The scrape target of every chain whose supervisor runs, labelled with the
/// chain's name.
fn sd_targets(states: &[ChainState]) -> Vec<SdTarget> {
    states
        .iter()
        .filter(|s| s.supervisor.is_some_and(|p| p.alive()))
        .filter_map(|s| {
            let addr = s.metrics?;
            Some(SdTarget {
                targets: vec![addr.to_string()],
                labels: [("chain", s.chain.clone())].into(),
            })
        })
        .collect()
}

#[derive(Serialize)]
struct Row {
    chain: String,
    node: String,
    kind: &'static str,
    namespace: String,
    pid: Option<i32>,
    status: String,
    ports: Vec<String>,
    module: Option<String>,
}

/// Why the supervisor gave up on a VNF, if it did.
fn failed(state: &ChainState, vnf: &str) -> Option<String> {
    std::fs::read_to_string(nfvhost::deploy::supervisor::failed_marker(state, vnf)).ok()
}

fn rows(state: &ChainState) -> Vec<Row> {
    let supervisor_up = state.supervisor.is_some_and(|s| s.alive());
    let mut rows: Vec<Row> = state
        .hosts
        .iter()
        .map(|h| Row {
            chain: state.chain.clone(),
            node: h.name.clone(),
            kind: "host",
            namespace: h.netns.clone(),
            pid: None,
            status: if nfvhost::sys::netns::exists(&h.netns) {
                "up".into()
            } else {
                "missing".into()
            },
            ports: h.interfaces.clone(),
            module: None,
        })
        .collect();
    for v in &state.vnfs {
        let pid = StatsSegment::open(&v.spec.stats_path)
            .ok()
            .map(|s| s.pid.load(Relaxed) as i32)
            .filter(|p| *p > 0);
        let running = pid.and_then(ProcRef::of).is_some_and(|p| p.alive());
        rows.push(Row {
            chain: state.chain.clone(),
            node: v.name.clone(),
            kind: "vnf",
            namespace: v.netns.clone(),
            pid: if running { pid } else { None },
            status: match (running, supervisor_up, failed(state, &v.name)) {
                (true, _, _) => "running".into(),
                (false, _, Some(why)) => why,
                (false, true, None) => "restarting".into(),
                (false, false, None) => "stopped".into(),
            },
            ports: v.ports.clone(),
            module: Some(v.module.display().to_string()),
        });
    }
    rows
}

pub fn inspect(chain: Option<String>, output: InspectOutput) -> CliResult {
    let chains = match chain {
        Some(c) => {
            super::check_name(nfvhost::chain::NameKind::Chain, "chain name", &c)?;
            vec![c]
        }
        None => ChainState::list(),
    };
    let mut all = Vec::new();
    let mut states = Vec::new();
    for c in chains {
        match ChainState::load(&c)? {
            Some(state) => {
                all.extend(rows(&state));
                states.push(state);
            }
            None => {
                return Err(super::CliError::usage(anyhow::anyhow!(
                    "chain {c} is not deployed"
                )))
            }
        }
    }
    match output {
        InspectOutput::Prometheus => {
            println!("{}", serde_json::to_string_pretty(&sd_targets(&states))?)
        }
        InspectOutput::Json => println!("{}", serde_json::to_string_pretty(&all)?),
        InspectOutput::Table => {
            println!(
                "{:<10} {:<12} {:<5} {:<24} {:>8} {:<10} {:<16} MODULE",
                "CHAIN", "NODE", "KIND", "NAMESPACE", "PID", "STATUS", "PORTS"
            );
            for r in &all {
                println!(
                    "{:<10} {:<12} {:<5} {:<24} {:>8} {:<10} {:<16} {}",
                    r.chain,
                    r.node,
                    r.kind,
                    r.namespace,
                    r.pid.map_or("-".into(), |p| p.to_string()),
                    r.status,
                    r.ports.join(","),
                    r.module.as_deref().unwrap_or("-")
                );
            }
            for st in &states {
                if let Some(addr) = st.metrics {
                    println!("chain {}: metrics on http://{addr}/metrics", st.chain);
                }
            }
        }
    }
    Ok(())
}
