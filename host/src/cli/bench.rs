//! `bench`: RFC 2544 measurements of a deployed chain between two of its
//! test hosts; table on stdout, progress on stderr, JSON with every trial,
//! charts with `--plot`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use nfvhost::bench::frame::{MAX_FRAME, MIN_FRAME};
use nfvhost::bench::kernel::{self, KernelChain};
use nfvhost::bench::methods::Settings;
use nfvhost::bench::topology::{self, HostArg, VethPair};
use nfvhost::bench::{self, Config, Test};
use nfvhost::chain::ChainSpec;
use nfvhost::deploy::state::ChainState;

use super::{pick_chain, CliError, CliResult, Output};

/// The plotting script, run with the system's python3 and matplotlib.
const PLOT_SCRIPT: &str = include_str!("../../../benches/plot.py");

#[derive(Args)]
pub struct BenchArgs {
    /// Chain name (needed when several chains are deployed).
    #[arg(short, long)]
    chain: Option<String>,
    /// Sending test host, optionally with its interface.
    #[arg(long, value_name = "HOST[:IFACE]")]
    from: HostArg,
    /// Receiving test host, optionally with its interface.
    #[arg(long, value_name = "HOST[:IFACE]")]
    to: HostArg,
    /// Frame sizes in bytes, FCS included (64..1518).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Length of each trial, e.g. 10s or 500ms.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Repetitions of the back-to-back search.
    #[arg(long)]
    trials: Option<u32>,
    /// The PDR's loss tolerance, e.g. 0 or 0.5%.
    #[arg(long, value_parser = parse_ratio, default_value = "0.5%")]
    loss_tolerance: f64,
    /// Binary search resolution, as a share of the maximum rate, e.g. 1%.
    #[arg(long, value_parser = parse_ratio)]
    resolution: Option<f64>,
    /// Which tests to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,latency,loss,back-to-back"
    )]
    tests: Vec<TestArg>,
    /// Output format on stdout.
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
    /// Write bench.json and charts (SVG and PNG) into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Quick settings for CI: 0.5 s trials, 10 % resolution, sizes 64 and
    /// 1518, one back-to-back repetition.
    #[arg(long)]
    short: bool,
    /// Also run the same tests on the same topology with the kernel doing
    /// the job (forwarding, bridge, nftables), in temporary namespaces;
    /// reports nfvhost/kernel ratios.
    #[arg(long)]
    compare_kernel: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum TestArg {
    Throughput,
    Latency,
    Loss,
    BackToBack,
}

impl From<TestArg> for Test {
    fn from(t: TestArg) -> Test {
        match t {
            TestArg::Throughput => Test::Throughput,
            TestArg::Latency => Test::Latency,
            TestArg::Loss => Test::Loss,
            TestArg::BackToBack => Test::BackToBack,
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s or 500ms"))?;
    let secs = match unit {
        "s" => v,
        "ms" => v / 1000.0,
        _ => return Err(format!("{s:?}: the unit must be s or ms")),
    };
    if !(0.05..=3600.0).contains(&secs) {
        return Err(format!("{s:?}: a trial lasts between 50ms and 3600s"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    let (num, scale) = match s.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (s, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a ratio like 0.5% or 0"))?;
    let r = v / scale;
    if !(0.0..0.5).contains(&r) {
        return Err(format!("{s:?}: must be at least 0 and under 50 %"));
    }
    Ok(r)
}

fn config(a: &BenchArgs) -> Result<Config, CliError> {
    let sizes = a.sizes.clone().unwrap_or_else(|| {
        if a.short {
            vec![64, 1518]
        } else {
            vec![64, 128, 256, 512, 1024, 1280, 1518]
        }
    });
    if let Some(bad) = sizes.iter().find(|s| !(MIN_FRAME..=MAX_FRAME).contains(*s)) {
        return Err(CliError::usage(anyhow!(
            "frame size {bad} is outside {MIN_FRAME}..{MAX_FRAME} (bytes, FCS included)"
        )));
    }
    let duration = a.duration.unwrap_or(if a.short {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(10)
    });
    Ok(Config {
        sizes,
        tests: a.tests.iter().map(|&t| t.into()).collect(),
        settings: Settings {
            duration,
            resolution: a.resolution.unwrap_or(if a.short { 0.1 } else { 0.01 }),
            loss_tolerance: a.loss_tolerance,
            trials: a.trials.unwrap_or(if a.short { 1 } else { 3 }).clamp(1, 50),
            burst_seconds: if a.short { 0.2 } else { 2.0 },
        },
    })
}

pub fn bench(a: BenchArgs) -> CliResult {
    let cfg = config(&a)?;
    let chain = pick_chain(a.chain.clone())?;
    let state = ChainState::load(&chain)?
        .ok_or_else(|| CliError::usage(anyhow!("chain {chain} is not deployed")))?;
    let src = topology::endpoint(&state, &a.from).map_err(CliError::usage)?;
    let dst = topology::endpoint(&state, &a.to).map_err(CliError::usage)?;
    if src == dst {
        return Err(CliError::usage(anyhow!(
            "--from and --to are the same interface"
        )));
    }
    eprintln!(
        "bench: resolving {} -> {} in chain {chain}",
        src.host, dst.host
    );
    let path = topology::chain_path(&src, &dst)?;

    // The generator's own maximum, per size, on a plain veth pair.
    let gen_max = {
        let pair = VethPair::new().context("building the veth pair for the generator's maximum")?;
        let d = cfg.settings.duration.min(Duration::from_secs(3));
        let mut out = Vec::new();
        for &size in &cfg.sizes {
            let pps = bench::generator_max(&pair.path, size, d)?;
            eprintln!("generator: {size} B, {pps:.0} pps to a plain veth peer");
            out.push(pps);
        }
        out
    };
    let from = format!("{}:{}", src.host, src.iface);
    let to = format!("{}:{}", dst.host, dst.iface);
    let spec = nfvhost::chain::load(&state.chain_file)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("reading {} again", state.chain_file.display()))?;
    let on_path = topology::vnfs_between(&spec, &src.host, &dst.host);
    let mut report = bench::run(
        "nfvhost",
        &path,
        Some(&state),
        (&from, &to),
        &on_path,
        &gen_max,
        &cfg,
    )?;
    if a.compare_kernel {
        compare_kernel(&mut report, &spec, (&src, &dst), &gen_max, &cfg)?;
    }

    let json = serde_json::to_string_pretty(&report)?;
    match a.output {
        Output::Table => print!("{}", report.table()),
        Output::Json => println!("{json}"),
    }
    if let Some(dir) = &a.plot {
        plot(dir, &json)?;
    }
    Ok(())
}

/// Runs the same tests on the kernel's version of the chain and attaches
/// them to `report`, or says why there is none.
fn compare_kernel(
    report: &mut bench::report::Report,
    spec: &ChainSpec,
    (src, dst): (&topology::Endpoint, &topology::Endpoint),
    gen_max: &[f64],
    cfg: &Config,
) -> CliResult {
    let steps = match kernel::plan(spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kernel: {e}; skipped");
            report.kernel_note = Some(e.to_string());
            return Ok(());
        }
    };
    eprintln!(
        "kernel: building the same topology in {}* namespaces",
        kernel::NETNS_PREFIX
    );
    // nfvhost's figures are already measured: a kernel topology this
    // machine cannot build is reported, not allowed to lose them.
    let k = match KernelChain::build(spec, &steps) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("kernel: couldn't build the kernel topology: {e}; skipped");
            report.kernel_note = Some(format!("couldn't build the kernel topology: {e}"));
            return Ok(());
        }
    };
    let at = |e: &topology::Endpoint| -> anyhow::Result<topology::Endpoint> {
        Ok(topology::Endpoint {
            netns: k
                .netns(&e.host)
                .ok_or_else(|| anyhow!("no kernel namespace for {}", e.host))?
                .to_owned(),
            ..e.clone()
        })
    };
    let path = match topology::chain_path(&at(src)?, &at(dst)?) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kernel: {e}; skipped");
            report.kernel_note = Some(format!(
                "the kernel's topology did not carry traffic: {e} ({})",
                k.features.join("; ")
            ));
            return Ok(());
        }
    };
    let kr = bench::run(
        "kernel",
        &path,
        None,
        (&report.from.clone(), &report.to.clone()),
        &[],
        gen_max,
        cfg,
    )?;
    report.kernel_note = Some(k.features.join("; "));
    report.set_kernel(kr);
    Ok(())
}

/// Writes `bench.json` into `dir` and draws the charts from it.
fn plot(dir: &Path, json: &str) -> CliResult {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let data = dir.join("bench.json");
    std::fs::write(&data, json).with_context(|| format!("writing {}", data.display()))?;
    // Debian's python3 (where python3-matplotlib installs), not whatever
    // python3 comes first on PATH (pyenv and the like lack it).
    let python = ["/usr/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("python3");
    let status = Command::new(python)
        .args(["-c", PLOT_SCRIPT])
        .arg(&data)
        .arg(dir)
        .status()
        .context("running python3 for the charts (apt-get install python3-matplotlib)")?;
    if !status.success() {
        return Err(anyhow!(
            "the chart script failed ({status}); the JSON is in {}",
            data.display()
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ratios_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_ratio("0"), Ok(0.0));
        assert_eq!(parse_ratio("0.5%"), Ok(0.005));
        assert!(parse_ratio("-1%").is_err());
        assert!(parse_ratio("80%").is_err());
    }
}
