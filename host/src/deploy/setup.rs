//! Building a chain on the machine: [`plan`] the steps, [`execute`] them
//! against an [`Os`] (which records every namespace and cgroup in the state
//! file as soon as it exists, and rolls back on failure), then record the
//! test hosts and the VNF worker specs.

use super::execute::{execute, DeployError};
use super::modules::{init_document, link_mtu, port_links, wasm_memory, CheckedVnf};
use super::plan::plan;
use super::state::{ChainState, HostState, StateError, VnfState};
use super::{cgroup_path, netns_name, node_netns};
use crate::chain::{ChainSpec, LinkKind};
use crate::datapath::worker::{PortBinding, WorkerPort, WorkerSpec};
use crate::engine::Engine;
use crate::sys::os::Os;

/// Frames per batch unless the chain file says otherwise.
pub const DEFAULT_BATCH: usize = 64;
/// Timer period for modules.
pub const TICK_MS: u64 = 100;

/// Creates everything for `chain` on `os`, recording it in `state` (saved
/// after every object). On error, what was created is rolled back, and what
/// could not be is still in `state` for [`super::teardown`].
pub fn build(
    os: &dyn Os,
    chain: &ChainSpec,
    checked: &[CheckedVnf],
    state: &mut ChainState,
    mut progress: impl FnMut(&str),
) -> Result<(), DeployError> {
    // The state directory (with its ownership marker) first, then its
    // private logs directory.
    state.save()?;
    crate::sys::private_file::ensure_dir(&state.file("logs")).map_err(StateError::from)?;
    execute(os, &plan(chain), state, &mut progress)?;
    state.hosts = chain
        .hosts
        .iter()
        .map(|h| HostState {
            name: h.name.clone(),
            netns: netns_name(&chain.name, &h.name),
            interfaces: h.interfaces.iter().map(|i| i.name.clone()).collect(),
        })
        .collect();
    state.vnfs = vnf_states(os, chain, checked, state);
    Ok(state.save()?)
}

/// What the supervisor needs to run each VNF's worker.
fn vnf_states(
    os: &dyn Os,
    chain: &ChainSpec,
    checked: &[CheckedVnf],
    state: &ChainState,
) -> Vec<VnfState> {
    let name = &chain.name;
    let engine_cache = Engine::default_cache_dir();
    let mut vnfs = Vec::new();
    for v in &chain.vnfs {
        // A VNF of a fused group shares the group's cgroup and namespace.
        let unit = v.group.as_deref().unwrap_or(&v.name);
        let rel_path = cgroup_path(name, unit);
        let cgroup = state
            .cgroups
            .iter()
            .find(|c| c.rel_path() == rel_path)
            .cloned();
        let group = v.group.as_deref().and_then(|g| chain.group(g));
        let module = &checked
            .iter()
            .find(|c| c.name == v.name)
            .expect("every VNF was checked")
            .module;
        let links = port_links(chain, v);
        // A veth or VXLAN port has an interface of its own whose MAC the
        // module may want; a TAP link's VNF side has none. A VNF of a fused
        // group has its outside ports in the group's namespace.
        let vnf_ns = node_netns(chain, &v.name);
        let macs: Vec<Option<[u8; 6]>> = v
            .ports
            .iter()
            .zip(&links)
            .map(|(p, l)| match l.map(|l| l.kind) {
                Some(LinkKind::Veth | LinkKind::Vxlan(_)) => {
                    os.links().mac_address(&vnf_ns, p).ok()
                }
                _ => None,
            })
            .collect();
        // A VXLAN device's MTU follows its underlay: read it back.
        let mtus: Vec<Option<u32>> = v
            .ports
            .iter()
            .zip(&links)
            .map(|(p, l)| match l.map(|l| l.kind) {
                Some(LinkKind::Vxlan(_)) => os.links().link_mtu(&vnf_ns, p).ok(),
                _ => None,
            })
            .collect();
        let ports = v
            .ports
            .iter()
            .zip(&links)
            .zip(&mtus)
            .map(|((p, link), mtu)| {
                let link = link.expect("validation connects every port");
                let other = if link.a.node == v.name && link.a.port == *p {
                    &link.b
                } else {
                    &link.a
                };
                let binding = match link.kind {
                    LinkKind::Veth | LinkKind::Vxlan(_) => {
                        PortBinding::Interface { ifname: p.clone() }
                    }
                    LinkKind::Memory => PortBinding::Memory {
                        vnf: other.node.clone(),
                        port: other.port.clone(),
                    },
                    LinkKind::Tap => PortBinding::Tap {
                        netns: netns_name(name, &other.node),
                        ifname: other.port.clone(),
                    },
                };
                WorkerPort {
                    name: p.clone(),
                    binding,
                    mtu: mtu.unwrap_or(link_mtu(Some(link))),
                }
            })
            .collect();
        let spec = WorkerSpec {
            chain: name.clone(),
            vnf: v.name.clone(),
            group: v.group.clone(),
            netns: vnf_ns.clone(),
            cgroup,
            module: module.path.clone(),
            cache_dir: engine_cache.clone(),
            init_document: init_document(chain, v, &macs, &mtus),
            ports,
            stats_path: state.file(&format!("{}.stats", v.name)),
            metrics_path: state.file(&format!("{}.metrics.json", v.name)),
            memory_bytes: wasm_memory(v),
            batch_size: v.datapath.batch.unwrap_or(DEFAULT_BATCH),
            tick_ms: TICK_MS,
            poll: group.map_or(v.datapath.poll, |g| g.poll),
            offload: v.datapath.offload,
            io: v.datapath.io,
            tap_io: v.datapath.tap_io,
            cpus: group.map_or_else(|| v.datapath.cpus.clone(), |g| g.cpus.clone()),
            log_level: v.log_level as u8,
        };
        vnfs.push(VnfState {
            name: v.name.clone(),
            netns: spec.netns.clone(),
            ports: v.ports.clone(),
            module: module.path.clone(),
            digest: module.digest.clone(),
            group: v.group.clone(),
            spec,
            generation: 0,
        });
    }
    vnfs
}
