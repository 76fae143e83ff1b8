//! `nfvhost bench`: RFC 2544 (and RFC 9004, RFC 5481) measurements of a
//! deployed chain, from one of its test hosts to another.
//!
//! - [`frame`]: the test frames and the header the receiver counts by.
//! - [`tally`]: sequence accounting and the latency histogram.
//! - [`trial`]: one trial: generator and receiver threads on `AF_PACKET`.
//! - [`topology`]: hosts and addresses of a chain; the veth pair the
//!   generator's own maximum is measured on.
//! - [`counters`]: `/metrics`, kernel and CPU counters a trial is checked
//!   against.
//! - [`methods`]: throughput (NDR/PDR), latency, loss, back-to-back.
//! - [`kernel`]: the same topology with the kernel doing the job
//!   (`--compare-kernel`).
//! - [`runner`]: trials through a chain, with their cross-checks.
//! - [`report`]: every trial, per-size results, and the table.
//!
//! No `unsafe` here: the packet sockets are the data path's own wrappers
//! (`datapath::sys::packet`), the rest goes through `nix`.

pub mod counters;
pub mod frame;
pub mod kernel;
pub mod methods;
pub mod report;
pub mod runner;
pub mod tally;
pub mod topology;
pub mod trial;

use std::time::Duration;

use crate::deploy::state::ChainState;
use methods::Settings;
use report::{Report, SizeResult};
use runner::ChainRunner;
use trial::{Offer, Path, Pinning};

/// What went wrong in a bench.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("chain {chain} has no test host {host} (hosts: {})", hosts.join(", "))]
    NoSuchHost {
        chain: String,
        host: String,
        hosts: Vec<String>,
    },
    #[error("test host {host} has no interface {iface:?} (interfaces: {})", ifaces.join(", "))]
    NoSuchInterface {
        host: String,
        iface: String,
        ifaces: Vec<String>,
    },
    #[error("{iface} in namespace {netns} has no IPv4 address")]
    NoAddress { netns: String, iface: String },
    #[error("{from} cannot reach {to} (ping failed): is the chain up?")]
    Unreachable { from: String, to: String },
    #[error("no neighbour entry for next hop {hop} in namespace {netns}")]
    NoNeighbour { netns: String, hop: String },
    #[error("{what}: {detail}")]
    Tool { what: String, detail: String },
    #[error("packet socket on {iface} in namespace {netns}: {what}")]
    Socket {
        netns: String,
        iface: String,
        what: String,
    },
    #[error("sending test frames: {0}")]
    Send(std::io::Error),
    #[error("the {0} thread panicked")]
    Thread(&'static str),
    #[error(transparent)]
    NetNs(#[from] crate::sys::NetNsError),
    #[error(transparent)]
    Link(#[from] crate::sys::LinkError),
}

/// The tests `--tests` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    Throughput,
    Latency,
    Loss,
    BackToBack,
}

/// A bench run, fully specified.
#[derive(Clone, Debug)]
pub struct Config {
    pub sizes: Vec<usize>,
    pub tests: Vec<Test>,
    pub settings: Settings,
}

/// CPUs for the generator and receiver: those no worker of the chain is
/// pinned to; none if the workers may run anywhere.
pub fn pinning(state: Option<&ChainState>) -> (Pinning, String) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers: Vec<&[usize]> = state
        .map(|s| s.vnfs.iter().map(|v| v.spec.cpus.as_slice()).collect())
        .unwrap_or_default();
    if workers.iter().any(|c| c.is_empty()) {
        return (
            Pinning::default(),
            format!("not pinned: the chain's workers may run on any of the {cpus} CPUs"),
        );
    }
    let free: Vec<usize> = (0..cpus)
        .filter(|c| !workers.iter().any(|w| w.contains(c)))
        .collect();
    match (free.first(), free.last()) {
        (Some(&g), Some(&r)) => (
            Pinning {
                generator: Some(g),
                receiver: Some(r),
            },
            format!("generator on CPU {g}, receiver on CPU {r} (workers elsewhere)"),
        ),
        _ => (
            Pinning::default(),
            "not pinned: the chain's workers are pinned to every CPU".into(),
        ),
    }
}

/// The generator's own maximum at `size`: as fast as it can to a plain
/// veth peer, in frames per second actually sent.
pub fn generator_max(pair: &Path, size: usize, duration: Duration) -> Result<f64, BenchError> {
    let m = trial::run(
        pair,
        Offer {
            size,
            rate_pps: None,
            duration,
            count: None,
        },
        0xffff,
        Pinning::default(),
    )?;
    Ok(m.sent as f64 / m.send_seconds.max(1e-9))
}

/// Runs the selected tests at every size along `path` (a chain's, whose
/// state is `state`; `on_path` its VNFs that are cross-checked), with `gen_max` the generator's maximum per size.
pub fn run(
    target: &str,
    path: &Path,
    state: Option<&ChainState>,
    endpoints: (&str, &str),
    on_path: &[String],
    gen_max: &[f64],
    cfg: &Config,
) -> Result<Report, BenchError> {
    let (pins, pinning_note) = pinning(state);
    let mut r = ChainRunner::new(path, state, pins);
    r.on_path = on_path.to_vec();
    let mut trials = Vec::new();
    let mut sizes = Vec::new();
    let s = &cfg.settings;
    let wants = |t| cfg.tests.contains(&t);
    for (&size, &max) in cfg.sizes.iter().zip(gen_max) {
        eprintln!("{target}: {size} B frames (generator max {:.0} pps)", max);
        let mut res = SizeResult {
            size,
            generator_max_pps: max,
            throughput: None,
            latency: Vec::new(),
            loss: Vec::new(),
            back_to_back: None,
        };
        if wants(Test::Throughput) || wants(Test::Latency) {
            res.throughput = Some(methods::throughput(&mut r, &mut trials, size, max, s)?);
        }
        let ndr = res.throughput.as_ref().map(|t| t.ndr_pps);
        if wants(Test::Latency) {
            res.latency = methods::latency(&mut r, &mut trials, size, ndr.unwrap_or(max), s)?;
        }
        if wants(Test::Loss) {
            res.loss = methods::loss(&mut r, &mut trials, size, max, s)?;
        }
        if wants(Test::BackToBack) {
            res.back_to_back = Some(methods::back_to_back(
                &mut r,
                &mut trials,
                size,
                max,
                ndr,
                s,
            )?);
        }
        sizes.push(res);
    }
    Ok(Report {
        target: target.to_owned(),
        chain: state.map(|s| s.chain.clone()),
        from: endpoints.0.to_owned(),
        to: endpoints.1.to_owned(),
        settings: cfg.settings,
        frame_sizes: "RFC 2544 frame sizes, FCS included; frames on the wire are 4 bytes shorter \
                      (no FCS on veth); Gb/s = frames/s x size x 8",
        generator: "nfvhost's own: AF_PACKET sendmmsg in batches of 64, token bucket on \
                    CLOCK_MONOTONIC; receiver AF_PACKET recvmmsg, one-way latency stamped in \
                    user space",
        pinning: pinning_note,
        disagreeing_trials: trials
            .iter()
            .filter(|t| !t.disagreements.is_empty())
            .count(),
        sizes,
        trials,
        kernel: None,
        kernel_note: None,
        ratios: Vec::new(),
    })
}
