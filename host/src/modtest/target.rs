//! The VNF under test: its module, ports and init document, taken from a
//! chain file (the same one that deploys it) or made up from port names.

use crate::chain::{self, ChainErrors, ChainSpec, ModuleRef};
use crate::deploy::modules::{self, init_document};
use crate::engine::{ClockMode, Engine, InstanceLimits, LoadedModule};

/// Errors choosing or checking the VNF under test.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Chain(ChainErrors),
    #[error("{file} has no VNF `{vnf}` (it has: {have})")]
    NoSuchVnf {
        file: String,
        vnf: String,
        have: String,
    },
    #[error("{file} has {count} VNFs ({have}); say which to test with --vnf")]
    WhichVnf {
        file: String,
        count: usize,
        have: String,
    },
}

/// A module instantiated for `nfvhost test`: what the worker would hand it.
pub struct Target {
    pub vnf: String,
    /// Port names, in port-number order.
    pub ports: Vec<String>,
    pub module: LoadedModule,
    pub init_document: String,
    /// The worker's limits, with a clock the test sets.
    pub limits: InstanceLimits,
}

/// The MAC address a test gives the VNF's port `port`: locally
/// administered `02:6e:66:74:00:NN` (NN = port + 1), since no interface
/// exists to read one from.
pub fn test_mac(port: usize) -> [u8; 6] {
    [0x02, 0x6e, 0x66, 0x74, 0x00, (port as u8).wrapping_add(1)]
}

/// A chain with one VNF `vnf` on `ports`, an empty config, and a test
/// host `tN` on each port: what `nfvhost test` runs without `--config`.
pub fn bare_chain(vnf: &str, ports: &[String]) -> Result<ChainSpec, TargetError> {
    // The names are checked as node and port names by the decoder; quoted
    // as JSON strings (valid YAML), any text stays a string.
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let mut text = String::from("name: modtest\nhosts:\n");
    for i in 0..ports.len() {
        text += &format!("  t{i}: {{ interfaces: {{ eth0: {{}} }} }}\n");
    }
    let quoted: Vec<String> = ports.iter().map(|p| q(p)).collect();
    text += &format!(
        "vnfs:\n  {}:\n    module: modtest\n    ports: [{}]\nlinks:\n",
        q(vnf),
        quoted.join(", ")
    );
    for (i, p) in ports.iter().enumerate() {
        text += &format!("  - [t{i}:eth0, {}]\n", q(&format!("{vnf}:{p}")));
    }
    chain::parse("(no --config)", &text).map_err(TargetError::Chain)
}

/// Picks VNF `vnf` (or the only one) of `chain`, runs it on `module`, and
/// has the module check its configuration exactly as `deploy` does (errors
/// carry the chain file's line and column).
pub fn prepare(
    engine: &Engine,
    chain: &ChainSpec,
    vnf: Option<&str>,
    module: ModuleRef,
) -> Result<Target, TargetError> {
    let file = chain.file.display().to_string();
    let have = || {
        chain
            .vnfs
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let spec = match vnf {
        Some(name) => chain.vnf(name).ok_or_else(|| TargetError::NoSuchVnf {
            file: file.clone(),
            vnf: name.into(),
            have: have(),
        })?,
        None => match chain.vnfs.as_slice() {
            [one] => one,
            many => {
                return Err(TargetError::WhichVnf {
                    file,
                    count: many.len(),
                    have: have(),
                })
            }
        },
    };
    let mut spec = spec.clone();
    spec.module = module;
    let one = ChainSpec {
        vnfs: vec![spec.clone()],
        ..chain.clone()
    };
    let checked = modules::check_all(engine, &one, |_| {})
        .map_err(|errors| TargetError::Chain(ChainErrors(errors)))?;
    let module = checked.into_iter().next().expect("one VNF checked").module;
    let macs: Vec<Option<[u8; 6]>> = (0..spec.ports.len()).map(|i| Some(test_mac(i))).collect();
    let mut limits = crate::datapath::spec::instance_limits(
        modules::wasm_memory(&spec),
        spec.datapath
            .batch
            .unwrap_or(crate::deploy::setup::DEFAULT_BATCH),
        spec.datapath.offload,
    );
    limits.clock = ClockMode::Manual;
    Ok(Target {
        vnf: spec.name.clone(),
        ports: spec.ports.clone(),
        init_document: init_document(&one, &spec, &macs, &[]),
        module,
        limits,
    })
}
