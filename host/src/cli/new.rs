//! `nfvhost new`: a VNF crate from a template, outside this repository.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::ValueEnum;
use nfvhost::scaffold::{self, ScaffoldError, Template};

use super::{CliError, CliResult};

/// The templates `--template` accepts.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum TemplateArg {
    /// A bump in the wire between two ports (config key, counters).
    #[default]
    Bump,
    /// A small IPv4 router: connected subnets, a default gateway, ARP.
    Router,
}

pub fn new(
    name: &str,
    template: TemplateArg,
    path: Option<PathBuf>,
    sdk: Option<PathBuf>,
) -> CliResult {
    scaffold::check_crate_name(name).map_err(CliError::usage)?;
    let dir = path.unwrap_or_else(|| PathBuf::from(name));
    let sdk = sdk.unwrap_or_else(scaffold::default_sdk);
    let template = match template {
        TemplateArg::Bump => Template::Bump,
        TemplateArg::Router => Template::Router,
    };
    let files = scaffold::create(&dir, name, template, &sdk).map_err(|e| match e {
        ScaffoldError::Write { .. } => CliError::from(anyhow!(e)),
        usage => CliError::usage(usage),
    })?;
    for f in &files {
        println!("{}", f.display());
    }
    eprintln!("created {name} in {}; next:", dir.display());
    eprintln!("  cd {} && cargo wasm && cargo test", shell_word(&dir));
    eprintln!("  see its README.md for `nfvhost test` and deploying chain.yaml");
    Ok(())
}

/// `dir` as one shell word for the hint (quoted when it needs to be).
fn shell_word(dir: &Path) -> String {
    let s = dir.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
