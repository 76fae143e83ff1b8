//! `nfvhost test`: frames from captures through a module, without root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use nfvhost::chain;
use nfvhost::engine::Engine;
use nfvhost::modtest::{self, CaptureArg, Outcome, Run, StepKind};

use super::{CliError, CliResult, EXIT_FAILURE};

/// The arguments of `nfvhost test`.
#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The module: a shipped VNF name or a path to a .wasm file.
    pub module: String,
    /// A chain file with the VNF's ports and `config:` (the one that
    /// deploys it); its `module:` is replaced by MODULE.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The VNF of the chain file to test (when it has several).
    #[arg(long)]
    pub vnf: Option<String>,
    /// Without --config: the module's port names.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lan,wan",
        conflicts_with = "config"
    )]
    pub ports: Vec<String>,
    /// Input frames: PORT=FILE or FILE (pcap or pcapng); repeatable.
    #[arg(long = "in", value_name = "[PORT=]FILE", required = true)]
    pub inputs: Vec<String>,
    /// Write what leaves each port to DIR/<port>.pcap.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Expected output: PORT=FILE, a FILE (by interface, like --in), or
    /// a DIR of <port>.pcap (a port without a file must send nothing).
    #[arg(long, value_name = "[PORT=]FILE|DIR")]
    pub expect: Vec<String>,
    /// Seconds of module time to keep ticking after the last frame.
    #[arg(long, default_value_t = 0.0)]
    pub linger: f64,
    /// Print only the summary and the comparison, not every frame.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn test(args: TestArgs) -> CliResult {
    let module = super::module_arg(&args.module)?;
    let chain_spec = match &args.config {
        Some(file) => chain::load(file).map_err(|e| CliError::usage(anyhow!("{e}")))?,
        None => modtest::bare_chain("under-test", &args.ports)
            .map_err(|e| CliError::usage(anyhow!("{e}")))?,
    };
    if !(0.0..=modtest::run::MAX_SPAN.as_secs_f64()).contains(&args.linger) {
        return Err(CliError::usage(anyhow!(
            "--linger must be between 0 and {} seconds",
            modtest::run::MAX_SPAN.as_secs()
        )));
    }
    let engine = Engine::new(Engine::default_cache_dir())?;
    let target = modtest::prepare(&engine, &chain_spec, args.vnf.as_deref(), module)
        .map_err(CliError::usage)?;
    let inputs: Vec<CaptureArg> = args.inputs.iter().map(|a| CaptureArg::parse(a)).collect();
    let expects: Vec<CaptureArg> = args.expect.iter().map(|a| CaptureArg::parse(a)).collect();
    let frames = modtest::load_inputs(&inputs, &target.ports).map_err(CliError::usage)?;
    let expected = modtest::load_expected(&expects, &target.ports).map_err(CliError::usage)?;
    let options = modtest::Options {
        tick_every: modtest::worker_tick(),
        linger: Duration::from_secs_f64(args.linger),
    };
    let run = modtest::run(&engine, &target, &frames, &options)?;
    if !args.quiet {
        print_steps(&target.ports, &run);
    }
    print_summary(&target.ports, &run);
    if let Some(dir) = &args.out {
        modtest::write_outputs(dir, &target.ports, &run)?;
        eprintln!("wrote {}", outputs_list(dir, &target.ports));
    }
    let mut differences = 0;
    for ((name, want), got) in target.ports.iter().zip(&expected).zip(&run.outputs) {
        let Some(want) = want else { continue };
        match modtest::compare(
            want.iter().map(Vec::as_slice),
            got.iter().map(|(_, b)| b.as_slice()),
        ) {
            None => println!("port {name}: {} frames as expected", want.len()),
            Some(d) => {
                differences += 1;
                println!("port {name}: DIFFERENT: {d}");
            }
        }
    }
    if differences > 0 {
        return Err(CliError {
            code: EXIT_FAILURE,
            error: anyhow!(
                "{differences} port(s) differ from the expected captures{}",
                if args.out.is_some() {
                    ""
                } else {
                    " (write what left with --out DIR and compare, e.g. with tcpdump -r)"
                }
            ),
        });
    }
    Ok(())
}

fn outputs_list(dir: &Path, ports: &[String]) -> String {
    ports
        .iter()
        .map(|p| dir.join(format!("{p}.pcap")).display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn port_name(ports: &[String], port: u16) -> &str {
    ports.get(usize::from(port)).map_or("?", String::as_str)
}

/// One line per call: `#N  t=SECONDS  in=PORT  LEN B  -> VERDICT`, plus
/// what the module emitted.
fn print_steps(ports: &[String], run: &Run) {
    for step in &run.steps {
        let at = step.at.as_secs_f64();
        let mut line = match &step.kind {
            StepKind::Frame {
                number,
                in_port,
                len,
                outcome,
            } => {
                let verdict = match outcome {
                    Outcome::Forward { port, len } => {
                        format!("forward out={} ({len} B)", port_name(ports, *port))
                    }
                    Outcome::Drop(reason) => format!("drop reason={}", reason.label()),
                    Outcome::Consume => "consume".to_string(),
                    Outcome::Failed(f) => format!("drop reason={} ({f})", f.label()),
                };
                format!(
                    "#{number:<4} t={at:.6} in={} {len} B -> {verdict}",
                    port_name(ports, *in_port)
                )
            }
            StepKind::Tick { failure: None } => format!("tick  t={at:.6}"),
            StepKind::Tick { failure: Some(f) } => format!("tick  t={at:.6} failed: {f}"),
            StepKind::Timer { failure: None } => format!("timer t={at:.6}"),
            StepKind::Timer { failure: Some(f) } => format!("timer t={at:.6} failed: {f}"),
        };
        for (port, len) in &step.emitted {
            line.push_str(&format!(
                "; emitted out={} ({len} B)",
                port_name(ports, *port)
            ));
        }
        println!("{line}");
    }
}

fn print_summary(ports: &[String], run: &Run) {
    let sent: Vec<String> = ports
        .iter()
        .zip(&run.outputs)
        .map(|(p, f)| format!("{p}={}", f.len()))
        .collect();
    let frames = run
        .steps
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Frame { .. }))
        .count();
    println!("{frames} frames in; out per port: {}", sent.join(" "));
}
