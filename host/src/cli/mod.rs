//! Command-line interface. Data goes to stdout; progress and narration to
//! stderr. Exit codes: 0 success, 1 runtime failure, 2 usage or validation
//! error.

mod bench;
mod deploy;
mod inspect;
mod nodes;
mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use nfvhost::chain::names::{self, NameKind};

/// Exit code for a runtime failure.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for a usage or validation error.
pub const EXIT_USAGE: i32 = 2;

/// An error with the exit code it should produce.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub error: anyhow::Error,
}

impl CliError {
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        CliError {
            code: EXIT_USAGE,
            error: error.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError {
            code: EXIT_FAILURE,
            error: e.into(),
        }
    }
}

pub type CliResult = Result<(), CliError>;

#[derive(Parser)]
#[command(
    name = "nfvhost",
    version,
    about = "Run network functions as WebAssembly modules in service chains over real Linux links"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub enum Output {
    #[default]
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check a chain file and its modules without creating anything.
    Validate {
        /// The chain file.
        file: PathBuf,
    },
    /// Print the JSON Schema of chain files (docs/chain.schema.json).
    Schema,
    /// Build a chain and start it; returns once it is ready.
    Deploy {
        /// The chain file.
        file: PathBuf,
        /// Stay in the foreground (for systemd and CI); Ctrl-C tears down.
        #[arg(long)]
        foreground: bool,
    },
    /// Remove everything a chain created (idempotent).
    Destroy {
        /// The chain file (or use --chain).
        file: Option<PathBuf>,
        /// The chain's name.
        #[arg(short, long)]
        chain: Option<String>,
        /// Destroy every deployed chain.
        #[arg(long, conflicts_with_all = ["file", "chain"])]
        all: bool,
    },
    /// Show the nodes of deployed chains.
    #[command(alias = "ps")]
    Inspect {
        /// Only this chain.
        #[arg(short, long)]
        chain: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Run a command in a test host's or a VNF's namespace.
    Exec {
        /// Chain name (needed when several chains are deployed).
        #[arg(short, long)]
        chain: Option<String>,
        /// The host or VNF name from the chain file.
        node: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Print a VNF's log (its module's log lines and the worker's).
    Logs {
        #[arg(short, long)]
        chain: Option<String>,
        /// The VNF name, or `supervisor`.
        vnf: String,
        /// Only the last N lines.
        #[arg(short = 'n', long)]
        tail: Option<usize>,
    },
    /// Replace a running VNF's module; its worker restarts on the new one.
    Replace {
        #[arg(short, long)]
        chain: Option<String>,
        /// The VNF name.
        vnf: String,
        /// The new module: a shipped VNF name or a path to a .wasm file.
        module: String,
    },
    /// Live per-VNF rates: packets, drops, time in module, CPU, memory.
    Stats {
        #[arg(short, long)]
        chain: Option<String>,
        /// Print one snapshot and exit.
        #[arg(long)]
        no_stream: bool,
        /// Seconds between refreshes (and the window rates are taken over).
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Output format (json: one array per refresh).
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Measure a deployed chain between two test hosts (RFC 2544:
    /// throughput, latency, frame loss, back-to-back).
    Bench(Box<bench::BenchArgs>),
    /// Internal: run one VNF worker (several specs: the members of a fused
    /// group, in one process).
    #[command(hide = true)]
    Worker {
        #[arg(required = true, num_args = 1..)]
        specs: Vec<PathBuf>,
    },
    /// Internal: run a deployed chain's supervisor.
    #[command(hide = true)]
    Supervise { chain: String },
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    let result = match cli.command {
        Command::Validate { file } => deploy::validate(&file),
        Command::Schema => {
            println!("{}", nfvhost::chain::schema_text());
            Ok(())
        }
        Command::Deploy { file, foreground } => deploy::deploy(&file, foreground),
        Command::Destroy { file, chain, all } => deploy::destroy(file.as_deref(), chain, all),
        Command::Inspect { chain, output } => inspect::inspect(chain, output),
        Command::Exec {
            chain,
            node,
            command,
        } => nodes::exec(chain, &node, &command),
        Command::Logs { chain, vnf, tail } => nodes::logs(chain, &vnf, tail),
        Command::Replace { chain, vnf, module } => deploy::replace(chain, &vnf, &module),
        Command::Stats {
            chain,
            no_stream,
            interval,
            output,
        } => stats::stats(chain, output, no_stream, interval),
        Command::Bench(args) => bench::bench(*args),
        Command::Worker { specs } => nodes::worker(&specs),
        Command::Supervise { chain } => deploy::supervise(&chain),
    };
    match result {
        Ok(()) => 0,
        Err(CliError { code, error }) => {
            eprintln!("nfvhost: error: {error:#}");
            code
        }
    }
}

/// Picks the chain a command is about: the named one, or the only one
/// deployed.
pub fn pick_chain(chain: Option<String>) -> Result<String, CliError> {
    if let Some(c) = chain {
        check_name(NameKind::Chain, "chain name", &c)?;
        return Ok(c);
    }
    let chains = nfvhost::deploy::state::ChainState::list();
    match chains.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::usage(anyhow::anyhow!("no chain is deployed"))),
        many => Err(CliError::usage(anyhow::anyhow!(
            "several chains are deployed ({}); say which with --chain",
            many.join(", ")
        ))),
    }
}

/// Checks a chain or node name from the command line with the chain file's
/// rule; a bad one is a usage error that names the rule.
pub fn check_name(kind: NameKind, what: &'static str, name: &str) -> Result<(), CliError> {
    names::check_arg(kind, what, name).map_err(CliError::usage)
}
