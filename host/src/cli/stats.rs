//! `stats`: a live per-VNF table, like `docker stats`, read from the stats
//! segments and cgroups (never from the workers).

use std::io::{IsTerminal as _, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use nfvhost::datapath::stats::StatsSegment;
use nfvhost::deploy::state::{ChainState, VnfState};
use serde::Serialize;

use super::{CliError, CliResult, Output};

/// Cumulative counters of one VNF at one instant.
#[derive(Clone, Copy, Default)]
struct Sample {
    rx: u64,
    tx: u64,
    dropped: u64,
    calls: u64,
    call_ns: u64,
    cpu_ns: u64,
    memory: u64,
    module_memory: u64,
}

fn sample(v: &VnfState) -> Sample {
    let mut s = Sample::default();
    if let Ok(seg) = StatsSegment::open(&v.spec.stats_path) {
        let ports = seg.port_count.load(Relaxed) as usize;
        for p in &seg.ports[..ports.min(seg.ports.len())] {
            s.rx += p.rx_packets.load(Relaxed);
            s.tx += p.tx_packets.load(Relaxed);
        }
        s.dropped = seg.dropped.load(Relaxed);
        s.calls = seg.call_ns.count.load(Relaxed);
        s.call_ns = seg.call_ns.sum.load(Relaxed);
        s.module_memory = seg.module_memory_bytes.load(Relaxed);
    }
    if let Some(usage) = v.spec.cgroup.as_ref().and_then(|c| c.usage().ok()) {
        s.cpu_ns = usage.cpu_ns;
        s.memory = usage.memory_bytes;
    }
    s
}

/// Rates over one interval.
#[derive(Serialize)]
struct Row {
    chain: String,
    vnf: String,
    rx_pps: f64,
    tx_pps: f64,
    drops_per_second: f64,
    /// Mean time in the module per call, in microseconds.
    call_us: f64,
    cpu_percent: f64,
    memory_bytes: u64,
    module_memory_bytes: u64,
}

fn row(chain: &str, v: &VnfState, a: Sample, b: Sample, secs: f64) -> Row {
    let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
    let calls = b.calls.saturating_sub(a.calls);
    Row {
        chain: chain.into(),
        vnf: v.name.clone(),
        rx_pps: rate(a.rx, b.rx),
        tx_pps: rate(a.tx, b.tx),
        drops_per_second: rate(a.dropped, b.dropped),
        call_us: if calls == 0 {
            0.0
        } else {
            b.call_ns.saturating_sub(a.call_ns) as f64 / calls as f64 / 1e3
        },
        cpu_percent: rate(a.cpu_ns, b.cpu_ns) / 1e7,
        memory_bytes: b.memory,
        module_memory_bytes: b.module_memory,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1}MiB", bytes as f64 / (1 << 20) as f64)
}

fn print_table(rows: &[Row], clear: bool) {
    let mut t = super::table::new(
        &[
            "CHAIN", "VNF", "RX PPS", "TX PPS", "DROPS/S", "CALL µs", "CPU %", "MEM", "WASM MEM",
        ],
        &[2, 3, 4, 5, 6, 7, 8],
    );
    for r in rows {
        t.add_row(vec![
            r.chain.clone(),
            r.vnf.clone(),
            format!("{:.0}", r.rx_pps),
            format!("{:.0}", r.tx_pps),
            format!("{:.0}", r.drops_per_second),
            format!("{:.2}", r.call_us),
            format!("{:.1}", r.cpu_percent),
            mib(r.memory_bytes),
            mib(r.module_memory_bytes),
        ]);
    }
    let mut out = std::io::stdout().lock();
    if clear {
        // Home the cursor and clear the screen, as `docker stats` does.
        let _ = write!(out, "\x1b[H\x1b[2J");
    }
    let _ = write!(out, "{}", super::table::render(&t));
    let _ = out.flush();
}

pub fn stats(chain: Option<String>, output: Output, no_stream: bool, interval: f64) -> CliResult {
    let names = match chain {
        Some(c) => {
            super::check_name(nfvhost::chain::NameKind::Chain, "chain name", &c)?;
            vec![c]
        }
        None => ChainState::list(),
    };
    let mut states = Vec::new();
    for name in names {
        states.push(
            ChainState::load(&name)?
                .ok_or_else(|| CliError::usage(anyhow::anyhow!("chain {name} is not deployed")))?,
        );
    }
    if states.is_empty() {
        return Err(CliError::usage(anyhow::anyhow!("no chain is deployed")));
    }
    if !(0.1..=3600.0).contains(&interval) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--interval must be between 0.1 and 3600 seconds"
        )));
    }
    let vnfs: Vec<(&str, &VnfState)> = states
        .iter()
        .flat_map(|s| s.vnfs.iter().map(move |v| (s.chain.as_str(), v)))
        .collect();
    let mut before: Vec<Sample> = vnfs.iter().map(|(_, v)| sample(v)).collect();
    let mut at = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs_f64(interval));
        let now: Vec<Sample> = vnfs.iter().map(|(_, v)| sample(v)).collect();
        let secs = at.elapsed().as_secs_f64();
        at = Instant::now();
        let rows: Vec<Row> = vnfs
            .iter()
            .zip(before.iter().zip(&now))
            .map(|((c, v), (a, b))| row(c, v, *a, *b, secs))
            .collect();
        match output {
            Output::Json => println!("{}", serde_json::to_string(&rows)?),
            // Only a terminal is redrawn in place; a pipe or file gets
            // one table after the other.
            Output::Table => print_table(&rows, !no_stream && std::io::stdout().is_terminal()),
        }
        if no_stream {
            return Ok(());
        }
        before = now;
    }
}
