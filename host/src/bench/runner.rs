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
    /// The VNFs between the two test hosts, in path order: each is
    /// cross-checked, whatever it forwarded.
    pub on_path: Vec<String>,
    stream: Cell<u16>,
}

impl<'a> ChainRunner<'a> {
    pub fn new(path: &'a Path, state: Option<&'a ChainState>, pins: Pinning) -> Self {
        ChainRunner {
            path,
            state,
            pins,
            progress: true,
            on_path: Vec::new(),
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
        t.disagreements = disagreements(&t, &self.on_path, after.metrics_ok);
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
/// a small slack for other traffic (ARP, neighbour discovery). Every VNF of
/// `on_path` (in path order) is checked, also one that forwarded nothing.
pub fn disagreements(t: &Trial, on_path: &[String], metrics_ok: bool) -> Vec<String> {
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
    if !metrics_ok {
        if !on_path.is_empty() {
            out.push("the chain's /metrics did not answer".into());
        }
        return out;
    }
    let mut upstream: Option<(&str, u64)> = None;
    for vnf in on_path {
        let Some(c) = t.vnfs.get(vnf) else {
            out.push(format!("{vnf} is on the path but not in /metrics"));
            continue;
        };
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
        if c.forwarded + c.consumed + c.dropped + slack < c.received {
            out.push(format!(
                "{vnf} received {} frames but gave a verdict on {}",
                c.received,
                c.forwarded + c.consumed + c.dropped
            ));
        }
        if let Some((up, fwd)) = upstream {
            if c.received > fwd + slack {
                out.push(format!(
                    "{vnf} received {} frames but {up} before it forwarded {fwd}",
                    c.received
                ));
            }
        }
        upstream = Some((vnf, c.forwarded));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::counters::VnfCounts;

    fn trial(sent: u64, received: u64, vnfs: &[(&str, u64, u64, u64)]) -> Trial {
        let offer = Offer {
            size: 64,
            rate_pps: Some(1000.0),
            duration: Duration::from_secs(1),
            count: None,
        };
        let mut t = Trial::synthetic("throughput", offer, sent, received);
        for &(name, rx, fwd, drop) in vnfs {
            t.vnfs.insert(
                name.into(),
                VnfCounts {
                    received: rx,
                    forwarded: fwd,
                    dropped: drop,
                    ..VnfCounts::default()
                },
            );
        }
        t
    }

    #[test]
    fn a_vnf_that_forwards_nothing_is_still_checked() {
        let path = ["fw".to_owned(), "r1".to_owned()];
        // fw dropped everything, and says so: consistent.
        let t = trial(10_000, 0, &[("fw", 10_000, 0, 10_000), ("r1", 0, 0, 0)]);
        assert!(disagreements(&t, &path, true).is_empty());
        // fw got frames but gave no verdict on them.
        let t = trial(10_000, 0, &[("fw", 10_000, 0, 0), ("r1", 0, 0, 0)]);
        let d = disagreements(&t, &path, true);
        assert!(d.iter().any(|d| d.contains("fw received 10000")), "{d:?}");
        // r1 received more than fw passed on.
        let t = trial(
            10_000,
            0,
            &[("fw", 10_000, 0, 10_000), ("r1", 9_000, 0, 9_000)],
        );
        let d = disagreements(&t, &path, true);
        assert!(d.iter().any(|d| d.contains("fw before it")), "{d:?}");
        // A VNF on the path missing from /metrics.
        let t = trial(10_000, 0, &[("fw", 10_000, 0, 10_000)]);
        let d = disagreements(&t, &path, true);
        assert!(d.iter().any(|d| d.contains("r1 is on the path")), "{d:?}");
        // Frames arrived that r1 never forwarded.
        let t = trial(
            10_000,
            10_000,
            &[("fw", 10_000, 10_000, 0), ("r1", 10_000, 0, 0)],
        );
        assert!(!disagreements(&t, &path, true).is_empty());
    }
}
