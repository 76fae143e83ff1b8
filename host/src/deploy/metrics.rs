//! `/metrics` in the Prometheus text format, read from the workers' stats
//! segments without asking the workers anything.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use nfvhost_abi::DropReason;

use super::state::ChainState;
use crate::datapath::stats::{StatsSegment, BATCH_BUCKETS, CALL_NS_BUCKETS, TRAP_KINDS};
use crate::sys::cgroup::Cgroup;

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

/// Serves `GET /metrics` until the process exits.
pub fn serve(listener: TcpListener, source: Arc<MetricsSource>) {
    for stream in listener.incoming().flatten() {
        let source = source.clone();
        std::thread::spawn(move || {
            let _ = handle(stream, &source);
        });
    }
}

fn handle(mut stream: TcpStream, source: &MetricsSource) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Consume the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, ctype, body) =
        if request.starts_with("GET ") && (path == "/metrics" || path.starts_with("/metrics?")) {
            (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                render(source),
            )
        } else if request.starts_with("GET ") && path == "/" {
            (
                "200 OK",
                "text/plain; charset=utf-8",
                "nfvhost: see /metrics\n".to_string(),
            )
        } else {
            (
                "404 Not Found",
                "text/plain; charset=utf-8",
                "not found; try /metrics\n".to_string(),
            )
        };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// One metric family being written: HELP and TYPE once, then samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}");
        if !labels.is_empty() {
            let parts: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", parts.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
    let chain = source.chain.as_str();
    let segments: Vec<(&VnfSource, Option<StatsSegment>)> = source
        .vnfs
        .iter()
        .map(|v| (v, StatsSegment::open(&v.stats_path).ok()))
        .collect();

    let mut f = Family::new(
        &mut out,
        "nfvhost_build_info",
        "gauge",
        "nfvhost build information.",
    );
    f.sample(
        "nfvhost_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("abi", &nfvhost_abi::ABI_VERSION.to_string()),
        ],
        1,
    );

    type PortField = fn(&crate::datapath::stats::PortCounters) -> &AtomicU64;
    let port_families: [(&str, &str, &str, PortField); 8] = [
        (
            "nfvhost_port_rx_packets_total",
            "counter",
            "Frames received on the port.",
            |p| &p.rx_packets,
        ),
        (
            "nfvhost_port_rx_bytes_total",
            "counter",
            "Bytes received on the port.",
            |p| &p.rx_bytes,
        ),
        (
            "nfvhost_port_tx_packets_total",
            "counter",
            "Frames transmitted on the port.",
            |p| &p.tx_packets,
        ),
        (
            "nfvhost_port_tx_bytes_total",
            "counter",
            "Bytes transmitted on the port.",
            |p| &p.tx_bytes,
        ),
        (
            "nfvhost_port_rx_errors_total",
            "counter",
            "Receive errors (truncated frames, socket errors).",
            |p| &p.rx_errors,
        ),
        (
            "nfvhost_port_tx_errors_total",
            "counter",
            "Frames the port could not transmit.",
            |p| &p.tx_errors,
        ),
        (
            "nfvhost_port_rx_dropped_total",
            "counter",
            "Frames the kernel dropped before the worker read them (socket buffer full).",
            |p| &p.rx_dropped,
        ),
        (
            "nfvhost_port_up",
            "gauge",
            "Whether the worker has the port open (1) or not (0).",
            |p| &p.up,
        ),
    ];
    for (name, kind, help, field) in port_families {
        let mut f = Family::new(&mut out, name, kind, help);
        for (v, seg) in &segments {
            let Some(seg) = seg else { continue };
            for (i, port) in v.ports.iter().enumerate() {
                f.sample(
                    name,
                    &[("chain", chain), ("vnf", &v.name), ("port", port)],
                    field(&seg.ports[i]).load(Relaxed),
                );
            }
        }
    }

    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_received_packets_total",
        "counter",
        "Frames handed to the module.",
    );
    for (v, seg) in &segments {
        if let Some(seg) = seg {
            f.sample(
                "nfvhost_vnf_received_packets_total",
                &[("chain", chain), ("vnf", &v.name)],
                seg.received.load(Relaxed),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_packets_total",
        "counter",
        "Frames by the module's verdict: forward, consume or drop.",
    );
    for (v, seg) in &segments {
        let Some(seg) = seg else { continue };
        for (verdict, value) in [
            ("forward", &seg.forwarded),
            ("consume", &seg.consumed),
            ("drop", &seg.dropped),
        ] {
            f.sample(
                "nfvhost_vnf_packets_total",
                &[("chain", chain), ("vnf", &v.name), ("verdict", verdict)],
                value.load(Relaxed),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_drops_total",
        "counter",
        "Dropped frames by reason (a closed set).",
    );
    for (v, seg) in &segments {
        let Some(seg) = seg else { continue };
        for reason in DropReason::ALL {
            let value = seg.drops_by_reason[*reason as usize].load(Relaxed);
            f.sample(
                "nfvhost_vnf_drops_total",
                &[
                    ("chain", chain),
                    ("vnf", &v.name),
                    ("reason", reason.label()),
                ],
                value,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_emitted_packets_total",
        "counter",
        "New frames the module emitted and the port sent.",
    );
    for (v, seg) in &segments {
        if let Some(seg) = seg {
            f.sample(
                "nfvhost_vnf_emitted_packets_total",
                &[("chain", chain), ("vnf", &v.name)],
                seg.emitted.load(Relaxed),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_traps_total",
        "counter",
        "Module traps and interrupted calls, by kind.",
    );
    for (v, seg) in &segments {
        let Some(seg) = seg else { continue };
        for (i, kind) in TRAP_KINDS.iter().enumerate() {
            f.sample(
                "nfvhost_vnf_traps_total",
                &[("chain", chain), ("vnf", &v.name), ("kind", kind)],
                seg.traps[i].load(Relaxed),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_restarts_total",
        "counter",
        "Times the supervisor restarted the VNF's worker.",
    );
    for v in &source.vnfs {
        f.sample(
            "nfvhost_vnf_restarts_total",
            &[("chain", chain), ("vnf", &v.name)],
            v.restarts.load(Relaxed),
        );
    }

    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_call_duration_seconds",
        "histogram",
        "Time spent in the module per call.",
    );
    for (v, seg) in &segments {
        let Some(seg) = seg else { continue };
        let bounds: Vec<String> = CALL_NS_BUCKETS
            .iter()
            .map(|ns| format!("{}", *ns as f64 / 1e9))
            .collect();
        histogram(
            &mut f,
            "nfvhost_vnf_call_duration_seconds",
            chain,
            &v.name,
            &bounds,
            &seg.call_ns,
            |s| s as f64 / 1e9,
        );
    }
    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_batch_size_packets",
        "histogram",
        "Frames per call into the module.",
    );
    for (v, seg) in &segments {
        let Some(seg) = seg else { continue };
        let bounds: Vec<String> = BATCH_BUCKETS.iter().map(|b| b.to_string()).collect();
        histogram(
            &mut f,
            "nfvhost_vnf_batch_size_packets",
            chain,
            &v.name,
            &bounds,
            &seg.batch_frames,
            |s| s as f64,
        );
    }

    for (name, help, pick) in [
        (
            "nfvhost_vnf_module_memory_bytes",
            "Linear memory the module uses.",
            0,
        ),
        (
            "nfvhost_vnf_module_memory_limit_bytes",
            "Limit on the module's linear memory.",
            1,
        ),
    ] {
        let mut f = Family::new(&mut out, name, "gauge", help);
        for (v, seg) in &segments {
            if let Some(seg) = seg {
                let value = if pick == 0 {
                    &seg.module_memory_bytes
                } else {
                    &seg.module_memory_limit
                };
                f.sample(
                    name,
                    &[("chain", chain), ("vnf", &v.name)],
                    value.load(Relaxed),
                );
            }
        }
    }

    let usages: Vec<_> = source
        .vnfs
        .iter()
        .map(|v| v.cgroup.as_ref().and_then(|c| c.usage().ok()))
        .collect();
    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_cpu_seconds_total",
        "counter",
        "CPU time used by the VNF's cgroup.",
    );
    for (v, u) in source.vnfs.iter().zip(&usages) {
        if let Some(u) = u {
            f.sample(
                "nfvhost_vnf_cpu_seconds_total",
                &[("chain", chain), ("vnf", &v.name)],
                u.cpu_ns as f64 / 1e9,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_memory_bytes",
        "gauge",
        "Memory used by the VNF's cgroup.",
    );
    for (v, u) in source.vnfs.iter().zip(&usages) {
        if let Some(u) = u {
            f.sample(
                "nfvhost_vnf_memory_bytes",
                &[("chain", chain), ("vnf", &v.name)],
                u.memory_bytes,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_up",
        "gauge",
        "Whether the VNF's worker process is running (1) or not (0).",
    );
    for (v, seg) in &segments {
        let pid = seg.as_ref().map_or(0, |s| s.pid.load(Relaxed) as i32);
        let up = pid > 0 && super::state::ProcRef::of(pid).is_some_and(|p| p.alive());
        f.sample(
            "nfvhost_vnf_up",
            &[("chain", chain), ("vnf", &v.name)],
            u8::from(up),
        );
    }
    let mut f = Family::new(
        &mut out,
        "nfvhost_vnf_info",
        "gauge",
        "The module a VNF runs.",
    );
    // `nfvhost replace` changes a VNF's module: take the digest from the
    // state file when it can be read.
    let state = ChainState::load(chain).ok().flatten();
    for v in &source.vnfs {
        let digest = state
            .as_ref()
            .and_then(|s| s.vnfs.iter().find(|x| x.name == v.name))
            .map_or(v.digest.as_str(), |x| x.digest.as_str());
        f.sample(
            "nfvhost_vnf_info",
            &[
                ("chain", chain),
                ("vnf", &v.name),
                ("digest", digest),
                ("abi", &nfvhost_abi::ABI_VERSION.to_string()),
            ],
            1,
        );
    }

    module_metrics(&mut out, chain, &segments);
    out
}

fn histogram<const N: usize>(
    f: &mut Family<'_>,
    name: &str,
    chain: &str,
    vnf: &str,
    bounds: &[String],
    h: &crate::datapath::stats::Histogram<N>,
    scale: impl Fn(u64) -> f64,
) {
    let mut cumulative = 0;
    for (i, le) in bounds.iter().enumerate() {
        cumulative += h.buckets[i].load(Relaxed);
        f.sample(
            &format!("{name}_bucket"),
            &[("chain", chain), ("vnf", vnf), ("le", le)],
            cumulative,
        );
    }
    cumulative += h.buckets[bounds.len()].load(Relaxed);
    f.sample(
        &format!("{name}_bucket"),
        &[("chain", chain), ("vnf", vnf), ("le", "+Inf")],
        cumulative,
    );
    f.sample(
        &format!("{name}_sum"),
        &[("chain", chain), ("vnf", vnf)],
        scale(h.sum.load(Relaxed)),
    );
    f.sample(
        &format!("{name}_count"),
        &[("chain", chain), ("vnf", vnf)],
        cumulative,
    );
}

/// Metrics the modules declared: `nfvhost_module_<name>[_total]`, grouped
/// into one family per name across VNFs.
fn module_metrics(out: &mut String, chain: &str, segments: &[(&VnfSource, Option<StatsSegment>)]) {
    struct ModuleFamily {
        name: String,
        kind: &'static str,
        help: String,
        samples: Vec<(String, u64)>,
    }
    let mut families: Vec<ModuleFamily> = Vec::new();
    for (v, seg) in segments {
        let Some(seg) = seg else { continue };
        let defs: Vec<ModuleMetric> = std::fs::read(&v.metrics_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for (i, def) in defs.iter().enumerate().take(seg.module_metrics.len()) {
            let (name, kind) = if def.kind == "counter" {
                (format!("nfvhost_module_{}_total", def.name), "counter")
            } else {
                (format!("nfvhost_module_{}", def.name), "gauge")
            };
            let value = seg.module_metrics[i].load(Relaxed);
            match families.iter_mut().find(|f| f.name == name) {
                Some(f) => f.samples.push((v.name.clone(), value)),
                None => families.push(ModuleFamily {
                    name,
                    kind,
                    help: def.help.replace('\n', " "),
                    samples: vec![(v.name.clone(), value)],
                }),
            }
        }
    }
    for fam in families {
        let help = if fam.help.is_empty() {
            "Declared by the module.".to_string()
        } else {
            fam.help
        };
        let mut f = Family::new(out, &fam.name, fam.kind, &help);
        for (vnf, value) in fam.samples {
            f.sample(&fam.name, &[("chain", chain), ("vnf", &vnf)], value);
        }
    }
}
