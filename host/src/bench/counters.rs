//! The counts a trial is cross-checked against: the chain's own `/metrics`
//! (per-VNF received, forwarded and dropped), the kernel counters of both
//! test interfaces, and the CPU time of every worker (its cgroup's).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::Serialize;

use crate::deploy::state::ChainState;
use crate::sys::{LinkOps, LinkStats, LinuxLinkOps};

/// One VNF's cumulative counters.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct VnfCounts {
    /// Frames received on all its ports.
    pub received: u64,
    pub forwarded: u64,
    pub consumed: u64,
    pub dropped: u64,
    /// CPU time of its cgroup, in seconds.
    pub cpu_seconds: f64,
}

/// Counters at one instant.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub vnfs: BTreeMap<String, VnfCounts>,
    /// Whether `/metrics` answered.
    pub metrics_ok: bool,
    pub src: Option<LinkStats>,
    pub dst: Option<LinkStats>,
}

/// Reads `/metrics` at `addr` (plain HTTP/1.0 GET; a second at most).
pub fn scrape(addr: SocketAddr) -> Option<String> {
    let timeout = Duration::from_secs(1);
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_owned())
}

/// Per-VNF counters from the Prometheus text of one chain.
pub fn parse_metrics(text: &str, chain: &str) -> BTreeMap<String, VnfCounts> {
    let mut out: BTreeMap<String, VnfCounts> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |key: &str| {
            labels.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == key).then(|| v.trim_matches('"'))
            })
        };
        if label("chain") != Some(chain) {
            continue;
        }
        let Some(vnf) = label("vnf") else { continue };
        let entry = out.entry(vnf.to_owned()).or_default();
        let v = value as u64;
        match (name, label("verdict")) {
            ("nfvhost_port_rx_packets_total", _) => entry.received += v,
            ("nfvhost_vnf_packets_total", Some("forward")) => entry.forwarded += v,
            ("nfvhost_vnf_packets_total", Some("consume")) => entry.consumed += v,
            ("nfvhost_vnf_packets_total", Some("drop")) => entry.dropped += v,
            _ => {}
        }
    }
    out
}

/// Everything a trial compares against, now.
pub fn snapshot(state: Option<&ChainState>, src: (&str, &str), dst: (&str, &str)) -> Snapshot {
    let mut snap = Snapshot {
        src: LinuxLinkOps.link_stats(src.0, src.1).ok(),
        dst: LinuxLinkOps.link_stats(dst.0, dst.1).ok(),
        ..Snapshot::default()
    };
    let Some(state) = state else { return snap };
    if let Some(text) = state.metrics.and_then(scrape) {
        snap.vnfs = parse_metrics(&text, &state.chain);
        snap.metrics_ok = true;
    }
    for v in &state.vnfs {
        let cpu = v.spec.cgroup.as_ref().and_then(|c| c.usage().ok());
        let entry = snap.vnfs.entry(v.name.clone()).or_default();
        entry.cpu_seconds = cpu.map_or(0.0, |u| u.cpu_ns as f64 / 1e9);
    }
    snap
}

/// `after - before`, per VNF.
pub fn delta(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, VnfCounts> {
    after
        .vnfs
        .iter()
        .map(|(name, a)| {
            let b = before.vnfs.get(name).copied().unwrap_or_default();
            (
                name.clone(),
                VnfCounts {
                    received: a.received.saturating_sub(b.received),
                    forwarded: a.forwarded.saturating_sub(b.forwarded),
                    consumed: a.consumed.saturating_sub(b.consumed),
                    dropped: a.dropped.saturating_sub(b.dropped),
                    cpu_seconds: (a.cpu_seconds - b.cpu_seconds).max(0.0),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_one_chain_by_vnf() {
        let text = "\
# HELP nfvhost_port_rx_packets_total x
nfvhost_port_rx_packets_total{chain=\"basic\",vnf=\"r1\",port=\"lan\"} 10
nfvhost_port_rx_packets_total{chain=\"basic\",vnf=\"r1\",port=\"wan\"} 2
nfvhost_port_rx_packets_total{chain=\"other\",vnf=\"r1\",port=\"wan\"} 99
nfvhost_vnf_packets_total{chain=\"basic\",vnf=\"r1\",verdict=\"forward\"} 9
nfvhost_vnf_packets_total{chain=\"basic\",vnf=\"r1\",verdict=\"drop\"} 1
nfvhost_vnf_packets_total{chain=\"basic\",vnf=\"r1\",verdict=\"consume\"} 2
nfvhost_port_tx_packets_total{chain=\"basic\",vnf=\"r1\",port=\"lan\"} 5
";
        let m = parse_metrics(text, "basic");
        assert_eq!(m.len(), 1);
        let r1 = m["r1"];
        assert_eq!(
            (r1.received, r1.forwarded, r1.dropped, r1.consumed),
            (12, 9, 1, 2)
        );
    }
}
