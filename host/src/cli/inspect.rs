//! `inspect` / `ps`: what runs where.

use std::sync::atomic::Ordering::Relaxed;

use nfvhost::datapath::stats::StatsSegment;
use nfvhost::deploy::state::{ChainState, ProcRef};
use serde::Serialize;
use std::collections::BTreeMap;

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
    labels: BTreeMap<&'static str, String>,
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
    /// Each port's addresses (or `dhcp`), as deployed.
    addresses: BTreeMap<String, Vec<String>>,
    /// `port -> node:port (kind)` for each linked port.
    links: Vec<String>,
    module: Option<String>,
    /// Where the chain's metrics are served.
    metrics: Option<String>,
}

/// The chain's metrics URL.
fn metrics_url(state: &ChainState) -> Option<String> {
    state.metrics.map(|a| format!("http://{a}/metrics"))
}

/// What the deployed topology says of `node`: its ports' addresses and
/// its links.
fn wiring(state: &ChainState, node: &str) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let Some(t) = &state.topology else {
        return Default::default();
    };
    let addresses = t
        .nodes
        .iter()
        .filter(|n| n.name == node)
        .flat_map(|n| &n.ports)
        .filter(|p| !p.notes.is_empty())
        .map(|p| (p.name.clone(), p.notes.clone()))
        .collect();
    let links = t
        .links
        .iter()
        .filter_map(|l| {
            let (mine, other) = if l.a.0 == node {
                (&l.a, &l.b)
            } else if l.b.0 == node {
                (&l.b, &l.a)
            } else {
                return None;
            };
            Some(format!(
                "{} -> {}:{} ({})",
                mine.1, other.0, other.1, l.kind
            ))
        })
        .collect();
    (addresses, links)
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
        .map(|h| (h, wiring(state, &h.name)))
        .map(|(h, (addresses, links))| Row {
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
            addresses,
            links,
            module: None,
            metrics: metrics_url(state),
        })
        .collect();
    for v in &state.vnfs {
        let pid = StatsSegment::open(&v.spec.stats_path)
            .ok()
            .map(|s| s.pid.load(Relaxed) as i32)
            .filter(|p| *p > 0);
        let running = pid.and_then(ProcRef::of).is_some_and(|p| p.alive());
        let (addresses, links) = wiring(state, &v.name);
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
            addresses,
            links,
            module: Some(v.module.display().to_string()),
            metrics: metrics_url(state),
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
        InspectOutput::Table => print!("{}", table(&all)),
    }
    Ok(())
}

/// The rows as a table, then each chain's metrics URL.
fn table(rows: &[Row]) -> String {
    let mut t = super::table::new(
        &[
            "CHAIN",
            "NODE",
            "KIND",
            "STATUS",
            "PID",
            "ADDRESSES",
            "LINKS",
            "NAMESPACE",
            "MODULE",
        ],
        &[4],
    );
    for r in rows {
        let addresses: Vec<String> = r
            .ports
            .iter()
            .map(|p| match r.addresses.get(p) {
                Some(a) => format!("{p} {}", a.join(", ")),
                None => p.clone(),
            })
            .collect();
        t.add_row(vec![
            r.chain.clone(),
            r.node.clone(),
            r.kind.to_owned(),
            r.status.clone(),
            r.pid.map_or("-".into(), |p| p.to_string()),
            addresses.join("\n"),
            if r.links.is_empty() {
                "-".into()
            } else {
                r.links.join("\n")
            },
            r.namespace.clone(),
            r.module.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = super::table::render(&t);
    let mut seen = Vec::new();
    for r in rows {
        if !seen.contains(&&r.chain) {
            seen.push(&r.chain);
            let url = r
                .metrics
                .as_deref()
                .unwrap_or("none (no `metrics:` in the chain file)");
            out.push_str(&format!("chain {}: metrics {url}\n", r.chain));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use nfvhost::chain::graph::Topology;
    use nfvhost::deploy::state::HostState;

    use super::*;

    #[test]
    fn table_shows_addresses_links_and_the_metrics_url() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../chains/basic.yaml");
        let spec = nfvhost::chain::load(&file).unwrap();
        let state = ChainState {
            chain: "basic".into(),
            metrics: spec.metrics,
            hosts: ["h1", "h2"]
                .map(|h| HostState {
                    name: h.into(),
                    netns: format!("nfv-basic-{h}-not-there"),
                    interfaces: vec!["eth0".into()],
                })
                .to_vec(),
            topology: Some(Topology::of(&spec)),
            ..Default::default()
        };
        let text = table(&rows(&state));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("CHAIN  NODE  KIND  STATUS   PID  ADDRESSES"),
            "{text}"
        );
        assert!(
            lines[1].contains(" eth0 10.0.1.10/24  eth0 -> r1:lan (veth)  "),
            "{text}"
        );
        assert!(
            lines[2].contains(" eth0 10.0.2.10/24  eth0 -> r1:wan (veth)  "),
            "{text}"
        );
        assert_eq!(
            lines[3],
            "chain basic: metrics http://127.0.0.1:9464/metrics"
        );
        // Every row is as wide as the header needs, no more.
        assert!(lines[..3].iter().all(|l| l.len() < 120), "{text}");
    }
}
