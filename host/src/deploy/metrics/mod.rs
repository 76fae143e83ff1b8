//! `/metrics` in the Prometheus text format, read from the workers' stats
//! segments without asking the workers anything.
//!
//! - [`families`]: the table of every family nfvhost exports;
//! - [`text`]: the exposition format and its escaping;
//! - [`http`]: the bounded HTTP server that answers scrapes.

mod families;
mod http;
mod text;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::state::{ChainState, ProcRef};
use crate::datapath::stats::StatsSegment;
use crate::sys::cgroup::{Cgroup, CgroupUsage};
use families::{Family, Read, FAMILIES};
use text::{FamilyWriter, Num};

pub use http::ServerLimits;

/// What the exporter needs to know about one VNF.
pub struct VnfSource {
    pub name: String,
    pub ports: Vec<String>,
    pub digest: String,
    pub stats_path: PathBuf,
    pub metrics_path: PathBuf,
    pub cgroup: Option<Cgroup>,
    pub restarts: Arc<AtomicU64>,
}

/// Everything `/metrics` reports on.
pub struct MetricsSource {
    pub chain: String,
    pub vnfs: Vec<VnfSource>,
}

impl MetricsSource {
    pub fn new(state: &ChainState, restarts: Vec<(String, Arc<AtomicU64>)>) -> Self {
        let vnfs = state
            .vnfs
            .iter()
            .map(|v| VnfSource {
                name: v.name.clone(),
                ports: v.ports.clone(),
                digest: v.digest.clone(),
                stats_path: v.spec.stats_path.clone(),
                metrics_path: v.spec.metrics_path.clone(),
                cgroup: v.spec.cgroup.clone(),
                restarts: restarts
                    .iter()
                    .find(|(n, _)| *n == v.name)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_default(),
            })
            .collect();
        MetricsSource {
            chain: state.chain.clone(),
            vnfs,
        }
    }
}

/// Serves `/metrics` (and a pointer to it at `/`) until the process exits.
pub fn serve(listener: std::net::TcpListener, source: Arc<MetricsSource>) {
    let handler: Arc<http::Handler> = Arc::new(move |path: &str| match path {
        "/metrics" => Some(http::Page {
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: render(&source),
        }),
        "/" => Some(http::Page {
            content_type: "text/plain; charset=utf-8",
            body: "nfvhost: see /metrics\n".to_owned(),
        }),
        _ => None,
    });
    http::serve(listener, ServerLimits::default(), handler);
}

/// What one scrape knows about one VNF.
pub struct VnfRow<'a> {
    pub source: &'a VnfSource,
    /// `None` when the segment cannot be opened (no worker has run yet).
    pub segment: Option<StatsSegment>,
    /// `None` without a cgroup or when it cannot be read.
    pub usage: Option<CgroupUsage>,
    /// The module's digest; `nfvhost replace` changes it in the state file.
    pub digest: &'a str,
    /// How many times `nfvhost replace` ran on the VNF (from the state file).
    pub generation: u64,
}

impl VnfRow<'_> {
    /// Whether the pid the worker published (so not trusted) is a live
    /// process of the VNF: a pidfd opened on it, then the pid seen in the
    /// VNF's cgroup while the pidfd's process has not exited. A recycled or
    /// forged pid is never reported up.
    pub fn worker_alive(&self) -> bool {
        let pid = self
            .segment
            .as_ref()
            .map_or(0, |s| s.pid.load(Relaxed) as i32);
        let Ok(fd) = crate::sys::pidfd::Pidfd::open(pid) else {
            return false;
        };
        let member = match &self.source.cgroup {
            Some(cg) => cg.procs().is_ok_and(|p| p.contains(&pid)),
            None => ProcRef::of(pid).is_some_and(|p| p.alive()),
        };
        member && !fd.exited()
    }
}

#[derive(serde::Deserialize)]
struct ModuleMetric {
    name: String,
    help: String,
    kind: String,
}

/// Renders every metric of the chain.
pub fn render(source: &MetricsSource) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // `nfvhost replace` changes a VNF's module: take the digest from the
    // state file when it can be read.
    let state = ChainState::load(&source.chain).ok().flatten();
    let rows: Vec<VnfRow> = source
        .vnfs
        .iter()
        .map(|v| {
            let saved = state
                .as_ref()
                .and_then(|s| s.vnfs.iter().find(|x| x.name == v.name));
            VnfRow {
                source: v,
                segment: StatsSegment::open(&v.stats_path).ok(),
                usage: v.cgroup.as_ref().and_then(|c| c.usage().ok()),
                digest: saved.map_or(v.digest.as_str(), |x| x.digest.as_str()),
                generation: saved.map_or(0, |x| x.generation),
            }
        })
        .collect();
    for family in FAMILIES {
        render_family(&mut out, &source.chain, family, &rows);
    }
    module_metrics(&mut out, &source.chain, &rows);
    out
}

fn render_family(out: &mut String, chain: &str, fam: &Family, rows: &[VnfRow]) {
    let mut f = FamilyWriter::new(out, fam.name, fam.kind, fam.help, fam.labels);
    let abi = nfvhost_abi::ABI_VERSION.to_string();
    if let Read::Build = fam.read {
        f.sample(&[env!("CARGO_PKG_VERSION"), &abi], Num::Int(1));
        return;
    }
    for row in rows {
        let vnf = row.source.name.as_str();
        match (&fam.read, &row.segment) {
            (Read::Build, _) => {}
            (Read::Segment(field), Some(seg)) => {
                f.sample(&[chain, vnf], Num::Int(field(seg).load(Relaxed)));
            }
            (Read::Port(field), Some(seg)) => {
                for (port, counters) in row.source.ports.iter().zip(&seg.ports) {
                    f.sample(&[chain, vnf, port], Num::Int(field(counters).load(Relaxed)));
                }
            }
            (Read::ByLabel(read), Some(seg)) => {
                for (label, value) in read(seg) {
                    f.sample(&[chain, vnf, label], Num::Int(value));
                }
            }
            (Read::PortByLabel(read), Some(seg)) => {
                for (port, counters) in row.source.ports.iter().zip(&seg.ports) {
                    for (label, value) in read(counters) {
                        f.sample(&[chain, vnf, port, label], Num::Int(value));
                    }
                }
            }
            (Read::Histogram(read), Some(seg)) => {
                let h = read(seg);
                let mut cumulative = 0;
                for (le, bucket) in h.bounds.iter().zip(h.buckets) {
                    cumulative += bucket.load(Relaxed);
                    f.sample_of(
                        "_bucket",
                        &[chain, vnf],
                        &[("le", le)],
                        Num::Int(cumulative),
                    );
                }
                cumulative += h.buckets[h.bounds.len()].load(Relaxed);
                f.sample_of(
                    "_bucket",
                    &[chain, vnf],
                    &[("le", "+Inf")],
                    Num::Int(cumulative),
                );
                f.sample_of("_sum", &[chain, vnf], &[], h.sum);
                f.sample_of("_count", &[chain, vnf], &[], Num::Int(cumulative));
            }
            (Read::Vnf(read), _) => {
                if let Some(value) = read(row) {
                    f.sample(&[chain, vnf], value);
                }
            }
            (Read::Info, _) => f.sample(&[chain, vnf, row.digest, &abi], Num::Int(1)),
            (
                Read::Segment(_)
                | Read::Port(_)
                | Read::PortByLabel(_)
                | Read::ByLabel(_)
                | Read::Histogram(_),
                None,
            ) => {}
        }
    }
}

/// Whether a module-declared name can be part of a metric name. The worker
/// checks this when the module declares it; the file is checked again here
/// so that nothing in it can break the scrape.
fn is_metric_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Metrics the modules declared, one labelled family per kind so that a
/// query needs no `__name__` regex: `nfvhost_module_events_total` and
/// `nfvhost_module_value`, with the module's name in the `name` label, and
/// `nfvhost_module_metric_info` carrying each one's kind and help text.
fn module_metrics(out: &mut String, chain: &str, rows: &[VnfRow]) {
    struct Sample {
        vnf: String,
        name: String,
        counter: bool,
        help: String,
        value: u64,
    }
    let mut samples = Vec::new();
    for row in rows {
        let Some(seg) = &row.segment else { continue };
        let defs: Vec<ModuleMetric> = std::fs::read(&row.source.metrics_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for (def, value) in defs.iter().zip(&seg.module_metrics) {
            if !is_metric_name(&def.name) {
                continue;
            }
            samples.push(Sample {
                vnf: row.source.name.clone(),
                name: def.name.clone(),
                counter: def.kind == "counter",
                help: def.help.clone(),
                value: value.load(Relaxed),
            });
        }
    }
    const LABELS: &[&str] = &["chain", "vnf", "name"];
    for (family, kind, help, counters) in [
        (
            "nfvhost_module_events_total",
            "counter",
            "A counter the module declared; `name` is the module's name for it.",
            true,
        ),
        (
            "nfvhost_module_value",
            "gauge",
            "A gauge the module declared; `name` is the module's name for it.",
            false,
        ),
    ] {
        let mut f = FamilyWriter::new(out, family, kind, help, LABELS);
        for s in samples.iter().filter(|s| s.counter == counters) {
            f.sample(&[chain, &s.vnf, &s.name], Num::Int(s.value));
        }
    }
    let mut f = FamilyWriter::new(
        out,
        "nfvhost_module_metric_info",
        "gauge",
        "A metric the module declared: its kind and the module's help text.",
        &["chain", "vnf", "name", "kind", "help"],
    );
    for s in &samples {
        let kind = if s.counter { "counter" } else { "gauge" };
        f.sample(&[chain, &s.vnf, &s.name, kind, &s.help], Num::Int(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of two VNFs, one with counters and module metrics, one
    /// whose worker never ran.
    fn source(dir: &std::path::Path) -> MetricsSource {
        let stats = dir.join("r1.stats");
        let seg = StatsSegment::create(&stats).unwrap();
        seg.ports[0].rx_packets.store(5, Relaxed);
        seg.ports[1].tx_bytes.store(1500, Relaxed);
        seg.forwarded.store(4, Relaxed);
        seg.drops_by_reason[1].store(2, Relaxed);
        seg.traps[0].store(1, Relaxed);
        seg.call_ns.buckets[1].store(3, Relaxed);
        seg.call_ns.sum.store(1_500_000, Relaxed);
        seg.batch_frames.buckets[crate::datapath::stats::BATCH_BUCKETS.len()].store(1, Relaxed);
        seg.batch_frames.sum.store(300, Relaxed);
        seg.module_metrics[0].store(7, Relaxed);
        seg.module_metrics[1].store(9, Relaxed);
        let metrics = dir.join("r1.metrics.json");
        std::fs::write(
            &metrics,
            r#"[{"name":"leases","help":"Leases in C:\\dir\nsecond line","kind":"gauge"},
                {"name":"hits","help":"","kind":"counter"},
                {"name":"bad name\"","help":"x","kind":"counter"}]"#,
        )
        .unwrap();
        let vnf = |name: &str, stats: PathBuf, metrics: PathBuf| VnfSource {
            name: name.to_owned(),
            ports: vec!["lan".to_owned(), "wan\"x".to_owned()],
            digest: "abc".to_owned(),
            stats_path: stats,
            metrics_path: metrics,
            cgroup: None,
            restarts: Arc::new(AtomicU64::new(2)),
        };
        MetricsSource {
            chain: "zz-no-such-chain".to_owned(),
            vnfs: vec![
                vnf("r1", stats, metrics),
                vnf("r2", dir.join("none.stats"), dir.join("none.json")),
            ],
        }
    }

    /// The lines `render` must write for `source`, one per family kind.
    const GOLDEN: &[&str] = &[
        "nfvhost_port_rx_packets_total{chain=\"zz-no-such-chain\",vnf=\"r1\",port=\"lan\"} 5",
        "nfvhost_port_tx_bytes_total{chain=\"zz-no-such-chain\",vnf=\"r1\",port=\"wan\\\"x\"} 1500",
        "nfvhost_vnf_packets_total{chain=\"zz-no-such-chain\",vnf=\"r1\",verdict=\"forward\"} 4",
        "nfvhost_vnf_drops_total{chain=\"zz-no-such-chain\",vnf=\"r1\",reason=\"policy\"} 2",
        "nfvhost_vnf_restarts_total{chain=\"zz-no-such-chain\",vnf=\"r2\"} 2",
        "nfvhost_vnf_replaces_total{chain=\"zz-no-such-chain\",vnf=\"r1\"} 0",
        "nfvhost_vnf_call_duration_seconds_bucket{chain=\"zz-no-such-chain\",vnf=\"r1\",le=\"0.000002\"} 3",
        "nfvhost_vnf_call_duration_seconds_sum{chain=\"zz-no-such-chain\",vnf=\"r1\"} 0.0015",
        "nfvhost_vnf_batch_size_packets_bucket{chain=\"zz-no-such-chain\",vnf=\"r1\",le=\"+Inf\"} 1",
        "nfvhost_vnf_batch_size_packets_sum{chain=\"zz-no-such-chain\",vnf=\"r1\"} 300",
        "nfvhost_vnf_up{chain=\"zz-no-such-chain\",vnf=\"r2\"} 0",
        "nfvhost_vnf_info{chain=\"zz-no-such-chain\",vnf=\"r1\",digest=\"abc\",abi=\"3\"} 1",
        "nfvhost_module_value{chain=\"zz-no-such-chain\",vnf=\"r1\",name=\"leases\"} 7",
        "nfvhost_module_events_total{chain=\"zz-no-such-chain\",vnf=\"r1\",name=\"hits\"} 9",
        "nfvhost_module_metric_info{chain=\"zz-no-such-chain\",vnf=\"r1\",name=\"leases\",kind=\"gauge\",help=\"Leases in C:\\\\dir\\nsecond line\"} 1",
        "nfvhost_module_metric_info{chain=\"zz-no-such-chain\",vnf=\"r1\",name=\"hits\",kind=\"counter\",help=\"\"} 1",
    ];

    #[test]
    fn render_writes_every_family_of_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let out = render(&source(dir.path()));
        let lines: Vec<&str> = out.lines().collect();
        for want in GOLDEN {
            assert!(lines.contains(want), "missing {want}\n{out}");
        }
        for fam in FAMILIES {
            let help = lines
                .iter()
                .filter(|l| l.starts_with(&format!("# HELP {} ", fam.name)));
            assert_eq!(help.count(), 1, "{}", fam.name);
        }
        // A worker that never ran has no segment: only supervisor-side families.
        assert!(!out.contains("vnf=\"r2\",port="), "{out}");
        // A module metric name that cannot be a metric name is left out.
        assert!(!out.contains("bad name"), "{out}");
        // promtool's lint: no family name carries its type.
        for l in lines.iter().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let (name, kind) = l.split_once(' ').unwrap();
            assert!(!name.contains(kind), "{l}");
        }
        // Every line is a comment or `name{labels} value`.
        for l in &lines {
            assert!(
                l.starts_with("# HELP ") || l.starts_with("# TYPE ") || l.starts_with("nfvhost_"),
                "{l}"
            );
        }
    }
}
