//! The real [`Runner`]: each trial sends frames through the chain (or the
//! veth pair), with the chain's counters read before and after.

use std::cell::Cell;

use super::counters::{self, Snapshot};
use super::methods::Runner;
use super::report::Trial;
use super::trial::{self, Offer, Path, Pinning};
use super::BenchError;
use crate::deploy::state::ChainState;

/// Sends trials along `path`, cross-checking against `state`'s chain.
pub struct ChainRunner<'a> {
    pub path: &'a Path,
    pub state: Option<&'a ChainState>,
    pub pins: Pinning,
    /// Prints one line per trial on stderr.
    pub progress: bool,
    stream: Cell<u16>,
}

impl<'a> ChainRunner<'a> {
    pub fn new(path: &'a Path, state: Option<&'a ChainState>, pins: Pinning) -> Self {
        ChainRunner {
            path,
            state,
            pins,
            progress: true,
            // Different runs start at different streams, so frames of an
            // earlier, interrupted run are never counted.
            stream: Cell::new((std::process::id() as u16).wrapping_mul(251)),
        }
    }

    fn snapshot(&self) -> Snapshot {
        counters::snapshot(
            self.state,
            (&self.path.src_netns, &self.path.src_iface),
            (&self.path.dst_netns, &self.path.dst_iface),
        )
    }
}

impl Runner for ChainRunner<'_> {
    fn trial(&mut self, test: &'static str, offer: Offer) -> Result<Trial, BenchError> {
        let stream = self.stream.get().wrapping_add(1);
        self.stream.set(stream);
        let before = self.snapshot();
        let m = trial::run(self.path, offer, stream, self.pins)?;
        let after = self.snapshot();
        let mut t = Trial::synthetic(test, offer, m.sent, m.tally.received);
        t.sent_pps = m.sent as f64 / m.send_seconds.max(1e-9);
        t.duration_s = m.send_seconds;
        t.reordered = m.tally.reordered;
        t.duplicated = m.tally.duplicated;
        t.latency = m.tally.latency.summary();
        t.receiver_socket_drops = m.receiver_drops;
        t.generator_cpu_s = m.generator_cpu_seconds;
        t.receiver_cpu_s = m.receiver_cpu_seconds;
        t.generator_limited = offer
            .rate_pps
            .is_some_and(|r| t.sent_pps < 0.98 * r && offer.count.is_none());
        t.vnfs = counters::delta(&before, &after);
        t.kernel_src_tx = before
            .src
            .zip(after.src)
            .map(|(b, a)| a.tx_packets.saturating_sub(b.tx_packets));
        t.kernel_dst_rx = before
            .dst
            .zip(after.dst)
            .map(|(b, a)| a.rx_packets.saturating_sub(b.rx_packets));
        t.disagreements = disagreements(&t, after.metrics_ok);
        if self.progress {
            eprintln!(
                "  {test:17} {:>5} B  offered {:>9}  sent {:>9.0} pps  lost {:>8} ({:.3} %){}",
                offer.size,
                offer.rate_pps.map_or_else(
                    || format!("burst {}", offer.count.unwrap_or(0)),
                    |r| format!("{r:.0}")
                ),
                t.sent_pps,
                t.lost,
                t.loss_ratio * 100.0,
                if t.disagreements.is_empty() {
                    ""
                } else {
                    "  [counts disagree]"
                }
            );
        }
        Ok(t)
    }
}

/// Where the receiver's count, the kernel's and the chain's disagree, past
/// a small slack for other traffic (ARP, neighbour discovery).
pub fn disagreements(t: &Trial, metrics_ok: bool) -> Vec<String> {
    let slack = (t.sent / 1000).max(16);
    let mut out = Vec::new();
    if let Some(tx) = t.kernel_src_tx {
        if tx + slack < t.sent {
            out.push(format!(
                "the sender's interface counted {tx} frames out, the generator sent {}",
                t.sent
            ));
        }
    }
    if let Some(rx) = t.kernel_dst_rx {
        if rx + slack < t.received {
            out.push(format!(
                "the receiver's interface counted {rx} frames in, the receiver {}",
                t.received
            ));
        }
    }
    if metrics_ok {
        // VNFs with no forwarded frames are off the path (or down); the
        // others each forwarded at least what arrived.
        for (vnf, c) in t.vnfs.iter().filter(|(_, c)| c.forwarded > 0) {
            if c.forwarded + slack < t.received {
                out.push(format!(
                    "{vnf} forwarded {} frames but {} arrived",
                    c.forwarded, t.received
                ));
            }
            if c.received > t.sent + slack {
                out.push(format!(
                    "{vnf} received {} frames but only {} were sent",
                    c.received, t.sent
                ));
            }
        }
    } else if !t.vnfs.is_empty() && t.vnfs.values().all(|c| c.received == 0 && c.forwarded == 0) {
        out.push("the chain's /metrics did not answer".into());
    }
    out
}
