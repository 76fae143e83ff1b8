//! `nfvhost graph`: a chain file's or a deployed chain's topology as
//! Mermaid, dot or SVG (through graphviz's `dot`).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context as _};
use nfvhost::chain::graph::Topology;
use nfvhost::chain::names::NameKind;
use nfvhost::deploy::state::ChainState;

use super::{check_name, pick_chain, CliError, CliResult};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Mermaid,
    Dot,
    Svg,
}

/// What to draw: the chain file `arg`, or the deployed chain `arg` (or the
/// only deployed chain) as it was deployed.
pub fn topology(arg: Option<String>) -> Result<Topology, CliError> {
    let from_file = |path: &Path| {
        nfvhost::chain::load(path)
            .map(|spec| Topology::of(&spec))
            .map_err(|e| CliError::usage(anyhow!("{e}")))
    };
    if let Some(a) = &arg {
        let path = Path::new(a);
        if path.is_file() || a.ends_with(".yaml") || a.ends_with(".yml") || a.contains('/') {
            return from_file(path);
        }
        check_name(NameKind::Chain, "chain name", a)?;
    }
    let chain = pick_chain(arg)?;
    let state = ChainState::load(&chain)?
        .ok_or_else(|| CliError::usage(anyhow!("chain {chain} is not deployed")))?;
    match state.topology {
        Some(t) => Ok(t),
        // Deployed by an nfvhost that did not record it.
        None => from_file(&state.chain_file),
    }
}

pub fn graph(arg: Option<String>, format: Format) -> CliResult {
    let topology = topology(arg)?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Mermaid => out.write_all(topology.mermaid().as_bytes())?,
        Format::Dot => out.write_all(topology.dot().as_bytes())?,
        Format::Svg => out.write_all(&svg(&topology.dot())?)?,
    }
    Ok(())
}

/// Draws `dot` text as SVG with graphviz.
fn svg(dot: &str) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow!(
                "`-o svg` needs graphviz's `dot`, which is not installed \
                 (apt-get install graphviz), or use `-o dot` and draw it elsewhere"
            ),
            _ => anyhow!("couldn't run graphviz's `dot`: {e}"),
        })?;
    // Graphviz reads all of its input before writing, so writing first
    // cannot deadlock on a full pipe.
    child
        .stdin
        .take()
        .context("dot's stdin")?
        .write_all(dot.as_bytes())
        .context("writing to dot")?;
    let out = child.wait_with_output().context("waiting for dot")?;
    if !out.status.success() {
        return Err(anyhow!(
            "dot -Tsvg failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}
