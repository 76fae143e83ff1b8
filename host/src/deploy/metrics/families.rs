//! Every metric family nfvhost exports, described once: name, type, help,
//! labels, and how to read its value. [`render`](super::render) walks this
//! table; `docs/METRICS.md` documents the same names.
//!
//! To add a metric: add a [`Family`] to [`FAMILIES`] (and, when it reads a
//! new field, add that field to the stats segment in `datapath/stats.rs`),
//! then document it in `docs/METRICS.md`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use nfvhost_abi::DropReason;

use super::text::Num;
use super::VnfRow;
use crate::datapath::stats::{
    PortCounters, StatsLayout, TxRefusal, BATCH_BUCKETS, CALL_NS_BUCKETS, TRAP_KINDS,
};

/// One metric family.
pub struct Family {
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    pub help: &'static str,
    /// Label names, in the order samples give their values.
    pub labels: &'static [&'static str],
    pub read: Read,
}

/// How a family's samples are read.
pub enum Read {
    /// One sample for the whole exporter: `version`, `abi`.
    Build,
    /// One sample per VNF with a readable stats segment.
    Segment(fn(&StatsLayout) -> &AtomicU64),
    /// One sample per port of each VNF with a readable stats segment; the
    /// last label is the port name.
    Port(fn(&PortCounters) -> &AtomicU64),
    /// Several samples per port of each VNF with a readable stats segment,
    /// one per value of the last label (the one before it is the port name).
    PortByLabel(fn(&PortCounters) -> Vec<(&'static str, u64)>),
    /// Several samples per VNF with a readable stats segment, one per value
    /// of the last label.
    ByLabel(fn(&StatsLayout) -> Vec<(&'static str, u64)>),
    /// A histogram per VNF with a readable stats segment.
    Histogram(fn(&StatsLayout) -> HistogramView<'_>),
    /// One sample per VNF from what the supervisor knows (restarts, the
    /// cgroup, the worker's pid); none when it returns `None`.
    Vnf(fn(&VnfRow) -> Option<Num>),
    /// One sample per VNF with its module digest and the ABI: always 1.
    Info,
}

/// A histogram from the stats segment, independent of its bucket count.
pub struct HistogramView<'a> {
    /// Upper bounds, as written in `le`.
    pub bounds: Vec<String>,
    /// One more bucket than bounds: the last counts values above all.
    pub buckets: &'a [AtomicU64],
    pub sum: Num,
}

const VNF: &[&str] = &["chain", "vnf"];
const PORT: &[&str] = &["chain", "vnf", "port"];

/// The families, in the order they are written.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "nfvhost_build_info",
        kind: "gauge",
        help: "nfvhost build information.",
        labels: &["version", "abi"],
        read: Read::Build,
    },
    Family {
        name: "nfvhost_port_rx_packets_total",
        kind: "counter",
        help: "Frames received on the port.",
        labels: PORT,
        read: Read::Port(|p| &p.rx_packets),
    },
    Family {
        name: "nfvhost_port_rx_bytes_total",
        kind: "counter",
        help: "Bytes received on the port.",
        labels: PORT,
        read: Read::Port(|p| &p.rx_bytes),
    },
    Family {
        name: "nfvhost_port_tx_packets_total",
        kind: "counter",
        help: "Frames transmitted on the port.",
        labels: PORT,
        read: Read::Port(|p| &p.tx_packets),
    },
    Family {
        name: "nfvhost_port_tx_bytes_total",
        kind: "counter",
        help: "Bytes transmitted on the port.",
        labels: PORT,
        read: Read::Port(|p| &p.tx_bytes),
    },
    Family {
        name: "nfvhost_port_rx_errors_total",
        kind: "counter",
        help: "Receive errors (truncated frames, socket errors).",
        labels: PORT,
        read: Read::Port(|p| &p.rx_errors),
    },
    Family {
        name: "nfvhost_port_tx_errors_total",
        kind: "counter",
        help: "Frames the port could not transmit.",
        labels: PORT,
        read: Read::Port(|p| &p.tx_errors),
    },
    Family {
        name: "nfvhost_port_tx_refused_total",
        kind: "counter",
        help: "Frames the worker did not transmit on the port, by reason (each also counted in nfvhost_port_tx_errors_total).",
        labels: &["chain", "vnf", "port", "reason"],
        read: Read::PortByLabel(|p| {
            TxRefusal::ALL
                .iter()
                .map(|r| (r.label(), p.tx_refused[*r as usize].load(Relaxed)))
                .collect()
        }),
    },
    Family {
        name: "nfvhost_port_rx_dropped_total",
        kind: "counter",
        help: "Frames the kernel dropped before the worker read them (socket buffer full).",
        labels: PORT,
        read: Read::Port(|p| &p.rx_dropped),
    },
    Family {
        name: "nfvhost_port_up",
        kind: "gauge",
        help: "Whether the worker has the port open (1) or not (0).",
        labels: PORT,
        read: Read::Port(|p| &p.up),
    },
    Family {
        name: "nfvhost_vnf_received_packets_total",
        kind: "counter",
        help: "Frames handed to the module.",
        labels: VNF,
        read: Read::Segment(|s| &s.received),
    },
    Family {
        name: "nfvhost_vnf_packets_total",
        kind: "counter",
        help: "Frames by the module's verdict: forward, consume or drop.",
        labels: &["chain", "vnf", "verdict"],
        read: Read::ByLabel(|s| {
            vec![
                ("forward", s.forwarded.load(Relaxed)),
                ("consume", s.consumed.load(Relaxed)),
                ("drop", s.dropped.load(Relaxed)),
            ]
        }),
    },
    Family {
        name: "nfvhost_vnf_drops_total",
        kind: "counter",
        help: "Dropped frames by reason (a closed set).",
        labels: &["chain", "vnf", "reason"],
        read: Read::ByLabel(|s| {
            DropReason::ALL
                .iter()
                .map(|r| (r.label(), s.drops_by_reason[*r as usize].load(Relaxed)))
                .collect()
        }),
    },
    Family {
        name: "nfvhost_vnf_emitted_packets_total",
        kind: "counter",
        help: "New frames the module emitted and the port sent.",
        labels: VNF,
        read: Read::Segment(|s| &s.emitted),
    },
    Family {
        name: "nfvhost_vnf_hop_limit_total",
        kind: "counter",
        help: "Wakeups of a fused group's worker that stopped at the hop bound with frames still waiting for this VNF.",
        labels: VNF,
        read: Read::Segment(|s| &s.hop_limit_hits),
    },
    Family {
        name: "nfvhost_vnf_traps_total",
        kind: "counter",
        help: "Module traps and interrupted calls, by kind.",
        labels: &["chain", "vnf", "kind"],
        read: Read::ByLabel(|s| {
            TRAP_KINDS
                .iter()
                .zip(&s.traps)
                .map(|(k, v)| (*k, v.load(Relaxed)))
                .collect()
        }),
    },
    Family {
        name: "nfvhost_vnf_restarts_total",
        kind: "counter",
        help: "Times the supervisor restarted the VNF's worker.",
        labels: VNF,
        read: Read::Vnf(|v| Some(Num::Int(v.source.restarts.load(Relaxed)))),
    },
    Family {
        name: "nfvhost_vnf_replaces_total",
        kind: "counter",
        help: "Times `nfvhost replace` changed the VNF's module.",
        labels: VNF,
        read: Read::Vnf(|v| Some(Num::Int(v.generation))),
    },
    Family {
        name: "nfvhost_vnf_call_duration_seconds",
        kind: "histogram",
        help: "Time spent in the module per call.",
        labels: VNF,
        read: Read::Histogram(|s| HistogramView {
            bounds: CALL_NS_BUCKETS
                .iter()
                .map(|ns| format!("{}", *ns as f64 / 1e9))
                .collect(),
            buckets: &s.call_ns.buckets,
            sum: Num::Float(s.call_ns.sum.load(Relaxed) as f64 / 1e9),
        }),
    },
    Family {
        name: "nfvhost_vnf_batch_size_packets",
        kind: "histogram",
        help: "Frames per call into the module.",
        labels: VNF,
        read: Read::Histogram(|s| HistogramView {
            bounds: BATCH_BUCKETS.iter().map(|b| b.to_string()).collect(),
            buckets: &s.batch_frames.buckets,
            sum: Num::Float(s.batch_frames.sum.load(Relaxed) as f64),
        }),
    },
    Family {
        name: "nfvhost_vnf_module_memory_bytes",
        kind: "gauge",
        help: "Linear memory the module uses.",
        labels: VNF,
        read: Read::Segment(|s| &s.module_memory_bytes),
    },
    Family {
        name: "nfvhost_vnf_module_memory_limit_bytes",
        kind: "gauge",
        help: "Limit on the module's linear memory.",
        labels: VNF,
        read: Read::Segment(|s| &s.module_memory_limit),
    },
    Family {
        name: "nfvhost_vnf_cpu_seconds_total",
        kind: "counter",
        help: "CPU time used by the VNF's cgroup.",
        labels: VNF,
        read: Read::Vnf(|v| v.usage.as_ref().map(|u| Num::Float(u.cpu_ns as f64 / 1e9))),
    },
    Family {
        name: "nfvhost_vnf_memory_bytes",
        kind: "gauge",
        help: "Memory used by the VNF's cgroup.",
        labels: VNF,
        read: Read::Vnf(|v| v.usage.as_ref().map(|u| Num::Int(u.memory_bytes))),
    },
    Family {
        name: "nfvhost_vnf_up",
        kind: "gauge",
        help: "Whether the VNF's worker process is running (1) or not (0).",
        labels: VNF,
        read: Read::Vnf(|v| Some(Num::Int(u64::from(v.worker_alive())))),
    },
    Family {
        name: "nfvhost_vnf_info",
        kind: "gauge",
        help: "The module a VNF runs.",
        labels: &["chain", "vnf", "digest", "abi"],
        read: Read::Info,
    },
];
