//! Building a chain on the machine: namespaces, links, addresses, routes and
//! cgroups. Every object is recorded in the state file as soon as it exists,
//! so a failure at any step can be rolled back by [`super::teardown`].

use anyhow::Context as _;

use super::modules::{init_document, wasm_memory, CheckedVnf};
use super::state::{ChainState, HostState, VnfState};
use super::{cgroup_path, netns_name};
use crate::chain::{ChainSpec, LinkKind};
use crate::datapath::worker::{PortBinding, WorkerPort, WorkerSpec};
use crate::engine::Engine;
use crate::sys::cgroup::{CgroupRoot, Limits};
use crate::sys::netns::NetNs;
use crate::sys::{disable_offloads, link};

/// Frames per batch unless the chain file says otherwise.
pub const DEFAULT_BATCH: usize = 64;
/// Timer period for modules.
pub const TICK_MS: u64 = 100;

/// A VNF's ports are driven by its module, not by the kernel stack of its
/// namespace: switch IPv6 off there (before any link exists, so `default`
/// covers them) so the kernel sends no router solicitations or MLD reports
/// of its own on the VNF's links.
fn silence_kernel_stack(ns: &NetNs) -> anyhow::Result<()> {
    ns.run(|| -> std::io::Result<()> {
        // /proc/sys/net resolves to the namespace of the calling thread.
        for conf in ["all", "default"] {
            std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1")?;
        }
        Ok(())
    })??;
    Ok(())
}

/// Creates everything for `chain`, recording it in `state` (saved after
/// every step). On error, what was created so far is in `state`.
pub fn build(
    chain: &ChainSpec,
    checked: &[CheckedVnf],
    state: &mut ChainState,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<()> {
    let name = &chain.name;
    progress("creating namespaces");
    for node in chain
        .hosts
        .iter()
        .map(|h| &h.name)
        .chain(chain.vnfs.iter().map(|v| &v.name))
    {
        let ns = netns_name(name, node);
        let created = NetNs::create(&ns).with_context(|| format!("creating namespace {ns}"))?;
        state.namespaces.push(ns.clone());
        state.save()?;
        if chain.vnf(node).is_some() {
            silence_kernel_stack(&created)
                .with_context(|| format!("switching IPv6 off in {ns}"))?;
        }
    }
    let ns = |node: &str| {
        NetNs::open(&netns_name(name, node)).with_context(|| format!("opening namespace of {node}"))
    };

    progress("creating links");
    for l in &chain.links {
        match l.kind {
            LinkKind::Veth => {
                link::create_veth(
                    &ns(&l.a.node)?,
                    &l.a.port,
                    &ns(&l.b.node)?,
                    &l.b.port,
                    l.mtu,
                )
                .with_context(|| format!("creating veth link {}—{}", l.a, l.b))?;
                // Offloads stay on only when both ends can take checksum-
                // partial frames and 64 KB super-frames: a kernel stack or a
                // worker carrying virtio-net headers. Otherwise the sender
                // must produce plain, complete frames.
                let capable = |node: &str| chain.vnf(node).is_none_or(|v| v.datapath.offload);
                if !(capable(&l.a.node) && capable(&l.b.node)) {
                    for end in [&l.a, &l.b] {
                        disable_offloads(&ns(&end.node)?, &end.port)
                            .with_context(|| format!("switching offloads off on {end}"))?;
                    }
                }
            }
            LinkKind::Tap => {
                // The TAP device sits in the host's namespace under the
                // host's interface name; the VNF's worker holds its fd.
                let host_end = if chain.host(&l.a.node).is_some() {
                    &l.a
                } else {
                    &l.b
                };
                let host_ns = ns(&host_end.node)?;
                link::create_tap(&host_ns, &host_end.port, l.mtu, false)
                    .with_context(|| format!("creating TAP link {}—{}", l.a, l.b))?;
                link::set_up(&host_ns, &host_end.port)?;
                disable_offloads(&host_ns, &host_end.port)
                    .with_context(|| format!("switching offloads off on {host_end}"))?;
            }
        }
    }

    progress("configuring test hosts");
    for h in &chain.hosts {
        let hns = ns(&h.name)?;
        for iface in &h.interfaces {
            if let Some(mac) = iface.mac {
                link::set_mac(&hns, &iface.name, mac)
                    .with_context(|| format!("setting the MAC of {}:{}", h.name, iface.name))?;
            }
            for a in &iface.addresses {
                link::add_address(&hns, &iface.name, a.addr, a.prefix_len)
                    .with_context(|| format!("adding {a} to {}:{}", h.name, iface.name))?;
            }
        }
        if let Some(gw) = h.gateway {
            link::add_route(&hns, None, gw)
                .with_context(|| format!("adding default route via {gw} on {}", h.name))?;
        }
        for r in &h.routes {
            link::add_route(&hns, Some((r.dst.addr, r.dst.prefix_len)), r.via).with_context(
                || format!("adding route to {} via {} on {}", r.dst, r.via, h.name),
            )?;
        }
        state.hosts.push(HostState {
            name: h.name.clone(),
            netns: netns_name(name, &h.name),
            interfaces: h.interfaces.iter().map(|i| i.name.clone()).collect(),
        });
        state.save()?;
    }

    progress("creating cgroups");
    let root = CgroupRoot::detect(std::path::Path::new("/sys/fs/cgroup"))
        .context("finding the cgroup hierarchy")?;
    let engine_cache = Engine::default_cache_dir();
    std::fs::create_dir_all(ChainState::dir(name).join("logs"))?;
    for v in &chain.vnfs {
        let limits = Limits {
            cpu_cores: v.resources.cpu,
            memory_bytes: v.resources.memory,
            pids: v.resources.pids,
        };
        let cgroup = root
            .create(&cgroup_path(name, &v.name), &limits)
            .with_context(|| format!("creating the cgroup of {}", v.name))?;
        state.cgroups.push(cgroup.clone());
        let module = &checked
            .iter()
            .find(|c| c.name == v.name)
            .expect("every VNF was checked")
            .module;
        let ports = v
            .ports
            .iter()
            .map(|p| {
                let link = chain
                    .links
                    .iter()
                    .find(|l| {
                        (l.a.node == v.name && l.a.port == *p)
                            || (l.b.node == v.name && l.b.port == *p)
                    })
                    .expect("validation connects every port");
                let binding = match link.kind {
                    LinkKind::Veth => PortBinding::Interface { ifname: p.clone() },
                    LinkKind::Tap => {
                        let other = if link.a.node == v.name {
                            &link.b
                        } else {
                            &link.a
                        };
                        PortBinding::Tap {
                            netns: netns_name(name, &other.node),
                            ifname: other.port.clone(),
                        }
                    }
                };
                WorkerPort {
                    name: p.clone(),
                    binding,
                }
            })
            .collect();
        let spec = WorkerSpec {
            chain: name.clone(),
            vnf: v.name.clone(),
            netns: netns_name(name, &v.name),
            cgroup: Some(cgroup),
            module: module.path.clone(),
            cache_dir: engine_cache.clone(),
            init_document: init_document(v),
            ports,
            stats_path: state.file(&format!("{}.stats", v.name)),
            metrics_path: state.file(&format!("{}.metrics.json", v.name)),
            memory_bytes: wasm_memory(v),
            batch_size: v.datapath.batch.unwrap_or(DEFAULT_BATCH),
            tick_ms: TICK_MS,
            busy_poll: v.datapath.busy_poll,
            offload: v.datapath.offload,
            cpus: v.datapath.cpus.clone(),
        };
        state.vnfs.push(VnfState {
            name: v.name.clone(),
            netns: spec.netns.clone(),
            ports: v.ports.clone(),
            module: module.path.clone(),
            digest: module.digest.clone(),
            spec,
        });
        state.save()?;
    }
    Ok(())
}
