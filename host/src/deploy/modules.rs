//! Finding a VNF's module and checking it (and its configuration) before
//! anything is created.

use std::path::{Path, PathBuf};

use crate::chain::{ChainError, ChainSpec, LinkKind, LinkSpec, ModuleRef, VnfSpec, Vxlan};
use crate::engine::{Engine, InstanceError, LoadedModule, VnfInstance};

/// Where shipped VNFs are looked for, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("NFVHOST_VNF_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(bin_dir) = exe.parent() {
            // In a cargo tree: target/<profile>/nfvhost next to
            // target/wasm32-unknown-unknown/wasm/*.wasm.
            for up in [bin_dir.parent(), bin_dir.parent().and_then(Path::parent)]
                .into_iter()
                .flatten()
            {
                dirs.push(up.join("wasm32-unknown-unknown/wasm"));
            }
            dirs.push(bin_dir.join("../lib/nfvhost/vnfs"));
        }
    }
    dirs.push(PathBuf::from("/usr/local/lib/nfvhost/vnfs"));
    dirs.push(PathBuf::from("/usr/lib/nfvhost/vnfs"));
    dirs
}

/// The `.wasm` file a VNF entry names, or an error saying where we looked.
pub fn resolve(vnf: &VnfSpec) -> Result<PathBuf, String> {
    match &vnf.module {
        ModuleRef::Path(p) if p.exists() => Ok(p.clone()),
        ModuleRef::Path(p) => Err(format!("module file {} does not exist", p.display())),
        ModuleRef::Builtin(name) => {
            let file = format!("vnf_{}.wasm", name.replace('-', "_"));
            let dirs = search_dirs();
            dirs.iter().map(|d| d.join(&file)).find(|p| p.exists()).ok_or_else(|| {
                let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                format!(
                    "no shipped VNF `{name}`: {file} is not in {}; build the VNFs with `cargo vnfs` or set NFVHOST_VNF_DIR",
                    looked.join(", ")
                )
            })
        }
    }
}

/// The MTU of a link the chain file gives none: the kernel's default for
/// veth and TAP devices.
pub const DEFAULT_LINK_MTU: u32 = 1500;

/// The link each of `vnf`'s ports is on, in port order.
pub fn port_links<'a>(chain: &'a ChainSpec, vnf: &VnfSpec) -> Vec<Option<&'a LinkSpec>> {
    vnf.ports
        .iter()
        .map(|p| {
            chain.links.iter().find(|l| {
                [&l.a, &l.b]
                    .into_iter()
                    .any(|e| e.node == vnf.name && e.port == *p)
            })
        })
        .collect()
}

/// A link's MTU as the chain file gives it, or its default: the kernel's
/// for veth and TAP, and for VXLAN that less the encapsulation over a
/// 1500-byte underlay (the deployed device's MTU, read back from the
/// kernel, takes precedence; see [`init_document`]).
pub fn link_mtu(link: Option<&LinkSpec>) -> u32 {
    match link {
        Some(LinkSpec { mtu: Some(mtu), .. }) => *mtu,
        Some(LinkSpec {
            kind: LinkKind::Vxlan(_),
            ..
        }) => DEFAULT_LINK_MTU - Vxlan::OVERHEAD,
        _ => DEFAULT_LINK_MTU,
    }
}

/// The init document for a VNF (see `nfvhost_abi::CONFIG_ENCODING`): each
/// port with its MTU (`mtus[i]` when known from the deployed interface,
/// else [`link_mtu`]) and, when known (`macs[i]`, read from the deployed
/// interface), its MAC address.
pub fn init_document(
    chain: &ChainSpec,
    vnf: &VnfSpec,
    macs: &[Option<[u8; 6]>],
    mtus: &[Option<u32>],
) -> String {
    let ports: Vec<serde_json::Value> = vnf
        .ports
        .iter()
        .zip(port_links(chain, vnf))
        .enumerate()
        .map(|(i, (name, link))| {
            let mtu = mtus.get(i).copied().flatten().unwrap_or(link_mtu(link));
            let mac = macs.get(i).copied().flatten().map(|m| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            });
            serde_json::json!({ "name": name, "mtu": mtu.min(u32::from(u16::MAX)), "mac": mac })
        })
        .collect();
    serde_json::json!({
        "abi": nfvhost_abi::ABI_VERSION,
        "vnf": vnf.name,
        "ports": ports,
        "config": vnf.config,
    })
    .to_string()
}

/// A VNF whose module was found, compiled and accepted its configuration.
pub struct CheckedVnf {
    pub name: String,
    pub module: LoadedModule,
}

/// Resolves, compiles and ABI-checks every module, and has each one check
/// its own configuration by running `nfv_init`. Errors carry the chain
/// file's line and column (of the `module:` entry, or of the config key).
pub fn check_all(
    engine: &Engine,
    chain: &ChainSpec,
    mut progress: impl FnMut(&str),
) -> Result<Vec<CheckedVnf>, Vec<ChainError>> {
    let mut errors = Vec::new();
    let mut checked = Vec::new();
    let file = chain.file.display().to_string();
    let error_at = |span: crate::chain::Span, message: String, hint: Option<String>| ChainError {
        file: file.clone(),
        line: span.line,
        col: span.col,
        message,
        hint,
    };
    for vnf in &chain.vnfs {
        let path = match resolve(vnf) {
            Ok(p) => p,
            Err(msg) => {
                errors.push(error_at(
                    vnf.span,
                    format!("vnf `{}`: {msg}", vnf.name),
                    None,
                ));
                continue;
            }
        };
        progress(&format!(
            "checking module {} for {}",
            path.display(),
            vnf.name
        ));
        let module = match engine.load(&path) {
            Ok(m) => m,
            Err(e) => {
                errors.push(error_at(vnf.span, format!("vnf `{}`: {e}", vnf.name), None));
                continue;
            }
        };
        let limits = crate::engine::InstanceLimits {
            // The module's lines at init, filtered as its worker will.
            log_level: vnf.log_level,
            ..crate::datapath::spec::instance_limits(
                wasm_memory(vnf),
                vnf.datapath.batch.unwrap_or(super::setup::DEFAULT_BATCH),
                vnf.datapath.offload,
            )
        };
        match VnfInstance::new(
            engine,
            &module,
            &vnf.name,
            vnf.ports.len() as u16,
            init_document(chain, vnf, &[], &[]).as_bytes(),
            limits,
        ) {
            Ok(_) => checked.push(CheckedVnf {
                name: vnf.name.clone(),
                module,
            }),
            Err(InstanceError::Config { path, message }) => {
                let span = if path.is_empty() {
                    vnf.config_span("")
                } else {
                    vnf.config_span(&path)
                };
                let key = if path.is_empty() {
                    String::new()
                } else {
                    format!(" key `{path}`")
                };
                errors.push(error_at(
                    span,
                    format!("vnf `{}`: config{key}: {message}", vnf.name),
                    Some("see the VNF's README for its configuration keys".into()),
                ));
            }
            Err(e) => errors.push(error_at(vnf.span, format!("vnf `{}`: {e}", vnf.name), None)),
        }
    }
    if errors.is_empty() {
        Ok(checked)
    } else {
        Err(errors)
    }
}

/// The linear-memory limit for a VNF.
pub fn wasm_memory(vnf: &VnfSpec) -> usize {
    vnf.resources.wasm_memory.map_or(64 << 20, |b| b as usize)
}

/// Room a worker needs beside its module's linear memory: the runtime, the
/// compiled code, socket buffers and the stats segment.
pub const WORKER_OVERHEAD_BYTES: u64 = 256 << 20;

/// The cgroup memory limit of a VNF: `resources.memory` from the chain
/// file, else its wasm memory plus [`WORKER_OVERHEAD_BYTES`], so that no
/// worker runs without a memory bound.
pub fn cgroup_memory(vnf: &VnfSpec) -> u64 {
    vnf.resources
        .memory
        .unwrap_or(wasm_memory(vnf) as u64 + WORKER_OVERHEAD_BYTES)
}
