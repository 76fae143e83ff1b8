//! What a bench reports: every trial, the per-size results, and the table.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::counters::VnfCounts;
use super::methods::{BackToBack, Settings, Throughput};
use super::tally::LatencySummary;
use super::trial::Offer;

/// One trial, with the counts it was cross-checked against.
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    pub test: &'static str,
    /// RFC 2544 frame size, FCS included.
    pub size: usize,
    /// Requested rate; `None`: as fast as the generator can.
    pub offered_pps: Option<f64>,
    /// Frames per second the generator actually sent.
    pub sent_pps: f64,
    pub burst: Option<u64>,
    pub duration_s: f64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_ratio: f64,
    pub reordered: u64,
    pub duplicated: u64,
    /// The generator sent under 98 % of the requested rate.
    pub generator_limited: bool,
    pub latency: Option<LatencySummary>,
    /// Frames the receiver's own socket dropped (counted as lost, but not
    /// the chain's fault).
    pub receiver_socket_drops: u64,
    pub generator_cpu_s: f64,
    pub receiver_cpu_s: f64,
    /// Per-VNF deltas of the chain's `/metrics` and cgroup CPU.
    pub vnfs: BTreeMap<String, VnfCounts>,
    /// Kernel counter deltas: the sender's tx and the receiver's rx.
    pub kernel_src_tx: Option<u64>,
    pub kernel_dst_rx: Option<u64>,
    /// Where the counts disagree (empty when they agree).
    pub disagreements: Vec<String>,
}

impl Trial {
    /// A trial with only the counts, for models in tests.
    pub fn synthetic(test: &'static str, o: Offer, sent: u64, received: u64) -> Trial {
        let lost = sent.saturating_sub(received);
        Trial {
            test,
            size: o.size,
            offered_pps: o.rate_pps,
            sent_pps: o.rate_pps.unwrap_or(0.0),
            burst: o.count,
            duration_s: o.duration.as_secs_f64(),
            sent,
            received,
            lost,
            loss_ratio: if sent == 0 {
                0.0
            } else {
                lost as f64 / sent as f64
            },
            reordered: 0,
            duplicated: 0,
            generator_limited: false,
            latency: None,
            receiver_socket_drops: 0,
            generator_cpu_s: 0.0,
            receiver_cpu_s: 0.0,
            vnfs: BTreeMap::new(),
            kernel_src_tx: None,
            kernel_dst_rx: None,
            disagreements: Vec::new(),
        }
    }
}

/// Results of one frame size.
#[derive(Clone, Debug, Serialize)]
pub struct SizeResult {
    pub size: usize,
    /// The generator's own maximum to a plain veth peer, at this size.
    pub generator_max_pps: f64,
    pub throughput: Option<Throughput>,
    /// (fraction of NDR, trial index).
    pub latency: Vec<(f64, usize)>,
    /// (fraction of the maximum rate, trial index).
    pub loss: Vec<(f64, usize)>,
    pub back_to_back: Option<BackToBack>,
}

/// A whole bench run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `nfvhost` or `kernel` (the same topology with the kernel doing the
    /// job).
    pub target: String,
    pub chain: Option<String>,
    pub from: String,
    pub to: String,
    pub settings: Settings,
    /// Frame size convention.
    pub frame_sizes: &'static str,
    pub generator: &'static str,
    pub pinning: String,
    pub sizes: Vec<SizeResult>,
    pub trials: Vec<Trial>,
    /// Trials whose counts disagree with `/metrics` or the kernel.
    pub disagreeing_trials: usize,
    /// Against the kernel (`--compare-kernel`): the kernel's report, or
    /// why there is none.
    pub kernel: Option<Box<Report>>,
    pub kernel_note: Option<String>,
    /// nfvhost / kernel per size (empty without a kernel report).
    pub ratios: Vec<Ratio>,
}

/// nfvhost's figures over the kernel's at one frame size (`None` where
/// either is missing or the kernel's is zero).
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub size: usize,
    pub ndr: Option<f64>,
    pub pdr: Option<f64>,
    /// Median latency at 50 % of each one's own NDR.
    pub latency_median_at_50: Option<f64>,
}

fn ratio(x: Option<f64>, y: Option<f64>) -> Option<f64> {
    match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => Some(x / y),
        _ => None,
    }
}

/// Gb/s of Ethernet frames of `size` bytes (FCS included) at `pps`.
pub fn gbps(size: usize, pps: f64) -> f64 {
    pps * size as f64 * 8.0 / 1e9
}

fn mpps(pps: f64) -> String {
    format!("{:.3}", pps / 1e6)
}

impl Report {
    /// Attaches the kernel's report of the same tests, with the ratios.
    pub fn set_kernel(&mut self, k: Report) {
        self.ratios = self
            .sizes
            .iter()
            .zip(&k.sizes)
            .map(|(a, b)| {
                let (ta, tb) = (a.throughput.as_ref(), b.throughput.as_ref());
                Ratio {
                    size: a.size,
                    ndr: ratio(ta.map(|t| t.ndr_pps), tb.map(|t| t.ndr_pps)),
                    pdr: ratio(ta.map(|t| t.pdr_pps), tb.map(|t| t.pdr_pps)),
                    latency_median_at_50: ratio(self.latency_at(a, 0.5), k.latency_at(b, 0.5)),
                }
            })
            .collect();
        self.kernel = Some(Box::new(k));
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for r in std::iter::once(self).chain(self.kernel.as_deref()) {
            r.table_of(&mut out);
        }
        if self.kernel.is_some() {
            let _ = writeln!(out, "\nnfvhost / kernel");
            let _ = writeln!(
                out,
                "{:>6} {:>10} {:>10} {:>14}",
                "size", "NDR", "PDR", "lat p50@50%"
            );
            let show = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.2}"));
            for r in &self.ratios {
                let _ = writeln!(
                    out,
                    "{:>6} {:>10} {:>10} {:>14}",
                    r.size,
                    show(r.ndr),
                    show(r.pdr),
                    show(r.latency_median_at_50),
                );
            }
        } else if let Some(note) = &self.kernel_note {
            let _ = writeln!(out, "\nkernel: {note}");
        }
        out
    }

    /// Median latency (µs) of the latency trial at `load` of NDR.
    pub fn latency_at(&self, s: &SizeResult, load: f64) -> Option<f64> {
        s.latency
            .iter()
            .find(|(l, _)| (l - load).abs() < 1e-9)
            .and_then(|&(_, i)| self.trials.get(i)?.latency)
            .map(|l| l.median_us)
    }

    fn table_of(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{}: {} -> {} ({} trials, {} s each; frame sizes with FCS; Mpps)",
            self.target,
            self.from,
            self.to,
            self.trials.len(),
            self.settings.duration.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "{:>6} {:>9} {:>9} {:>7} {:>9} {:>6}  {:>26}  {:>10}",
            "size",
            "gen max",
            "NDR",
            "Gb/s",
            "PDR",
            "verif",
            "latency p50/p99/max us @50%",
            "b2b frames"
        );
        for s in &self.sizes {
            let t = s.throughput.as_ref();
            let lat = s
                .latency
                .iter()
                .find(|(l, _)| (l - 0.5).abs() < 1e-9)
                .and_then(|&(_, i)| self.trials.get(i)?.latency)
                .map_or("-".into(), |l| {
                    format!("{:.0}/{:.0}/{:.0}", l.median_us, l.p99_us, l.max_us)
                });
            let b2b = s.back_to_back.as_ref().map_or("-".into(), |b| {
                format!(
                    "{}{:.0}",
                    if b.at_longest_tried { ">=" } else { "" },
                    b.average_frames
                )
            });
            let _ = writeln!(
                out,
                "{:>6} {:>9} {:>9} {:>7} {:>9} {:>6}  {:>26}  {:>10}{}",
                s.size,
                mpps(s.generator_max_pps),
                t.map_or("-".into(), |t| mpps(t.ndr_pps)),
                t.map_or("-".into(), |t| format!("{:.3}", gbps(s.size, t.ndr_pps))),
                t.map_or("-".into(), |t| mpps(t.pdr_pps)),
                t.map_or("-", |t| if t.ndr_verified { "yes" } else { "no" }),
                lat,
                b2b,
                if t.is_some_and(|t| t.generator_limited) {
                    "  (generator-limited: NDR is the generator's maximum)"
                } else {
                    ""
                }
            );
            if !s.loss.is_empty() {
                let steps: Vec<String> = s
                    .loss
                    .iter()
                    .map(|&(l, i)| {
                        format!(
                            "{:.0}%:{:.2}%",
                            l * 100.0,
                            self.trials.get(i).map_or(0.0, |t| t.loss_ratio * 100.0)
                        )
                    })
                    .collect();
                let _ = writeln!(out, "{:>6} loss by load: {}", "", steps.join(" "));
            }
        }
        if self.disagreeing_trials > 0 {
            let _ = writeln!(
                out,
                "{} trial(s) disagree with /metrics or kernel counters (see JSON \"disagreements\")",
                self.disagreeing_trials
            );
        }
    }
}
