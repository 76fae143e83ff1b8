//! Command-line interface. Data goes to stdout; progress and narration to
//! stderr. Exit codes: 0 success, 1 runtime failure, 2 usage or validation
//! error.

mod bench;
mod capture;
mod deploy;
mod generate;
mod graph;
mod inspect;
mod link;
mod logs;
mod new;
mod nodes;
mod stats;
mod table;
mod test;

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
    /// More log detail: -v debug, -vv trace (NFVHOST_LOG, in RUST_LOG
    /// syntax, overrides it).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Scope namespaces, cgroups, run directory and the default metrics
    /// port to this instance, so several run side by side (also
    /// NFVHOST_INSTANCE; see docs/MULTI-HOST.md).
    #[arg(long, global = true, value_name = "NAME")]
    instance: Option<String>,
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
    Schema {
        /// Print the Kubernetes ServiceChain CRD derived from it instead
        /// (deploy/kubernetes/servicechain-crd.yaml).
        #[arg(long)]
        crd: bool,
    },
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
        /// Also remove the logs, which are otherwise kept for `nfvhost logs`.
        #[arg(long)]
        cleanup: bool,
    },
    /// Draw a chain's topology: hosts, VNFs, ports, links, addresses.
    Graph {
        /// A chain file, or the name of a deployed chain (default: the only
        /// deployed chain).
        chain: Option<String>,
        /// Output format (svg needs graphviz's `dot`).
        #[arg(short, long, value_enum, default_value_t)]
        output: graph::Format,
    },
    /// Show the nodes of deployed chains.
    #[command(alias = "ps")]
    Inspect {
        /// Only this chain.
        #[arg(short, long)]
        chain: Option<String>,
        /// Output format (prometheus: a file_sd_configs target list).
        #[arg(short, long, value_enum, default_value_t)]
        output: inspect::InspectOutput,
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
        /// Keep printing lines as they are written (across rotation).
        #[arg(short, long)]
        follow: bool,
    },
    /// Replace a running VNF's module in place, carrying its state (connections, bindings, leases).
    Replace {
        #[arg(short, long)]
        chain: Option<String>,
        /// The VNF name.
        vnf: String,
        /// The new module: a shipped VNF name or a path to a .wasm file.
        module: String,
    },
    /// Write the frames crossing one port of a running VNF (received on it
    /// and sent out of it) to a pcap file; works on the in-memory links
    /// inside fused groups, which tcpdump cannot see.
    ///
    /// Stops after COUNT frames, after SECS seconds, or at Ctrl-C. The
    /// sandboxed worker opens nothing: it writes to a pipe this command
    /// hands it through the supervisor (docs/SANDBOX.md).
    Capture {
        /// CHAIN:VNF:PORT, with the port named as in the chain file.
        target: String,
        /// The pcap file to write (read it with `tcpdump -r FILE`).
        #[arg(short = 'w', long = "write", value_name = "FILE")]
        write: PathBuf,
        /// Stop after COUNT frames.
        #[arg(short = 'c', long, value_name = "COUNT")]
        count: Option<u64>,
        /// Stop after SECS seconds.
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
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
    /// Create a VNF crate from a template (outside this repository): it
    /// builds with `cargo wasm`, tests with `cargo test` and `nfvhost test`,
    /// and deploys with its chain.yaml.
    New {
        /// The crate name (letters, digits, `-`, `_`; starts with a letter).
        name: String,
        /// The template.
        #[arg(long, value_enum, default_value_t)]
        template: new::TemplateArg,
        /// The directory to create (default: ./NAME); must not exist.
        #[arg(long)]
        path: Option<PathBuf>,
        /// The vnf-sdk crate to depend on (default: this checkout's).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Run frames from pcap files through a module, without root; write
    /// what leaves each port and compare it with expected captures.
    ///
    /// Frames arrive on the port named in `--in PORT=FILE`, or, for a bare
    /// `--in FILE`, on the port named like the frame's pcapng interface
    /// (unnamed interface N is port N; a pcap file feeds port 0). The
    /// frames' timestamps are the module's clock. Exits 1 when a port's
    /// output differs from `--expect`.
    Test(test::TestArgs),
    /// Print a shell completion script (e.g. `nfvhost completions bash >
    /// /etc/bash_completion.d/nfvhost`).
    Completions { shell: generate::Shell },
    /// Print the man page (roff; `nfvhost man | man -l -`).
    Man,
    /// Take a link's carrier down or up, or change an impaired link's netem
    /// parameters, at one of its ends.
    Link {
        #[command(subcommand)]
        action: LinkAction,
    },
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

#[derive(Subcommand)]
enum LinkAction {
    /// Carrier off: the interface of CHAIN:NODE:PORT goes down, its peer
    /// loses carrier, and frames sent into the link are dropped.
    Down {
        /// CHAIN:NODE:PORT, names from the chain file (PORT: a host's
        /// interface or a VNF's port).
        target: String,
    },
    /// Carrier on again.
    Up {
        /// CHAIN:NODE:PORT.
        target: String,
    },
    /// New netem parameters for a running impair function, for the
    /// direction that leaves by PORT; held frames are kept.
    Set {
        /// CHAIN:NODE:PORT, NODE an impair function (`impair-N` for a
        /// link's `impair:`).
        target: String,
        #[command(flatten)]
        netem: link::NetemArgs,
    },
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
    if let Err(e) = set_instance(cli.instance) {
        eprintln!("nfvhost: error: {:#}", e.error);
        return e.code;
    }
    nfvhost::logging::init(log_filter(&cli.command, cli.verbose));
    let result = match cli.command {
        Command::Validate { file } => deploy::validate(&file),
        Command::Schema { crd: false } => {
            println!("{}", nfvhost::chain::schema_text());
            Ok(())
        }
        Command::Schema { crd: true } => {
            print!("{}", nfvhost::chain::crd::crd_yaml());
            Ok(())
        }
        Command::Deploy { file, foreground } => deploy::deploy(&file, foreground),
        Command::Destroy {
            file,
            chain,
            all,
            cleanup,
        } => deploy::destroy(file.as_deref(), chain, all, cleanup),
        Command::Graph { chain, output } => graph::graph(chain, output),
        Command::Inspect { chain, output } => inspect::inspect(chain, output),
        Command::Exec {
            chain,
            node,
            command,
        } => nodes::exec(chain, &node, &command),
        Command::Logs {
            chain,
            vnf,
            tail,
            follow,
        } => logs::logs(chain, &vnf, tail, follow),
        Command::Replace { chain, vnf, module } => deploy::replace(chain, &vnf, &module),
        Command::Capture {
            target,
            write,
            count,
            duration,
        } => capture::capture(&target, &write, count, duration),
        Command::Stats {
            chain,
            no_stream,
            interval,
            output,
        } => stats::stats(chain, output, no_stream, interval),
        Command::Bench(args) => bench::bench(*args),
        Command::New {
            name,
            template,
            path,
            sdk,
        } => new::new(&name, template, path, sdk),
        Command::Test(args) => test::test(args),
        Command::Completions { shell } => generate::completions(shell),
        Command::Man => generate::man(),
        Command::Link { action } => match action {
            LinkAction::Down { target } => link::set_carrier(&target, false),
            LinkAction::Up { target } => link::set_carrier(&target, true),
            LinkAction::Set { target, netem } => link::set_netem(&target, &netem),
        },
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

/// The log filter of this process when `NFVHOST_LOG` is unset: a worker
/// writes every module line its VNF's `log_level:` lets through.
fn log_filter(command: &Command, verbose: u8) -> &'static str {
    match (command, verbose) {
        (Command::Worker { .. }, _) => "info,module=trace",
        (_, 0) => "info",
        (_, 1) => "debug",
        _ => "trace",
    }
}

/// The clap definition, for completions and the man page.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Scopes this process (and, through the environment, the supervisor and
/// workers it starts) to the instance from `--instance` or
/// `NFVHOST_INSTANCE`, checked with the chain-name rule.
fn set_instance(flag: Option<String>) -> CliResult {
    let env = std::env::var(nfvhost::instance::ENV)
        .ok()
        .filter(|v| !v.is_empty());
    let name = flag.or(env);
    nfvhost::instance::init(name.clone()).map_err(CliError::usage)?;
    if let Some(name) = name {
        // Still single-threaded: nothing reads the environment concurrently.
        std::env::set_var(nfvhost::instance::ENV, name);
    }
    Ok(())
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

/// A module argument: a path ending in `.wasm` (made absolute) or a
/// shipped VNF's name.
pub fn module_arg(module: &str) -> Result<nfvhost::chain::ModuleRef, CliError> {
    use nfvhost::chain::{names, ModuleRef};
    if module.ends_with(".wasm") {
        Ok(ModuleRef::Path(std::fs::canonicalize(module).map_err(
            |e| CliError::usage(anyhow::anyhow!("{module}: {e}")),
        )?))
    } else if names::is_builtin_module(module) {
        Ok(ModuleRef::Builtin(module.to_string()))
    } else {
        Err(CliError::usage(anyhow::anyhow!(
            "`{}` is neither a shipped VNF name (lowercase letters, digits, `_`, `-`) nor a path ending in .wasm",
            module.escape_default()
        )))
    }
}
