//! What deploying a chain does to the machine, as data: [`plan`] turns a
//! validated [`ChainSpec`] into a list of [`Step`]s, one OS call each, in
//! the order they must run. Pure: no I/O, unit tested on the shipped chains.
//! [`super::execute`] runs the steps against an [`crate::sys::Os`].

use std::fmt;
use std::net::Ipv4Addr;

use super::{cgroup_path, netns_name, node_netns};
use crate::chain::{ChainSpec, LinkKind, WorkerUnit};
use crate::sys::cgroup::Limits;
use crate::sys::link::VxlanConfig;

/// One change to the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A named namespace for a node.
    CreateNetns { name: String },
    /// IPv6 off in a VNF's namespace: its ports are driven by its module,
    /// not by the kernel stack, which must send nothing of its own there.
    /// Comes before any link exists, so `default` covers them.
    DisableIpv6 { ns: String },
    /// A veth pair, both ends up.
    CreateVeth {
        ns_a: String,
        name_a: String,
        ns_b: String,
        name_b: String,
        mtu: Option<u32>,
    },
    /// A persistent TAP (no virtio-net header) in a host's namespace; the
    /// VNF's worker attaches to it later.
    CreateTap {
        ns: String,
        name: String,
        mtu: Option<u32>,
    },
    /// A VXLAN device in a node's namespace whose UDP socket lives in the
    /// underlay (the namespace nfvhost runs in), down; fails if the
    /// remote is not routable there.
    CreateVxlan {
        ns: String,
        name: String,
        config: VxlanConfig,
    },
    /// An interface up.
    SetUp { ns: String, name: String },
    /// Checksum and segmentation offloads off on one interface.
    DisableOffloads { ns: String, name: String },
    /// A test host interface's Ethernet address.
    SetMac {
        ns: String,
        name: String,
        mac: [u8; 6],
    },
    /// An address on a test host interface.
    AddAddress {
        ns: String,
        name: String,
        addr: Ipv4Addr,
        prefix_len: u8,
    },
    /// A route in a test host (`dst: None`: the default route).
    AddRoute {
        ns: String,
        dst: Option<(Ipv4Addr, u8)>,
        via: Ipv4Addr,
    },
    /// A VNF's cgroup with its limits.
    CreateCgroup { rel_path: String, limits: Limits },
}

/// The stages of a deploy, in order, as reported to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Namespaces,
    Links,
    Hosts,
    Cgroups,
}

impl Phase {
    /// What the user is told when the phase starts.
    pub fn message(self) -> &'static str {
        match self {
            Phase::Namespaces => "creating namespaces",
            Phase::Links => "creating links",
            Phase::Hosts => "configuring test hosts",
            Phase::Cgroups => "creating cgroups",
        }
    }
}

impl Step {
    /// The phase the step belongs to.
    pub fn phase(&self) -> Phase {
        match self {
            Step::CreateNetns { .. } | Step::DisableIpv6 { .. } => Phase::Namespaces,
            Step::CreateVeth { .. }
            | Step::CreateTap { .. }
            | Step::CreateVxlan { .. }
            | Step::SetUp { .. }
            | Step::DisableOffloads { .. } => Phase::Links,
            Step::SetMac { .. } | Step::AddAddress { .. } | Step::AddRoute { .. } => Phase::Hosts,
            Step::CreateCgroup { .. } => Phase::Cgroups,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateNetns { name } => write!(f, "creating namespace {name}"),
            Step::DisableIpv6 { ns } => write!(f, "switching IPv6 off in {ns}"),
            Step::CreateVeth {
                ns_a,
                name_a,
                ns_b,
                name_b,
                ..
            } => write!(f, "creating veth link {ns_a}:{name_a}—{ns_b}:{name_b}"),
            Step::CreateTap { ns, name, .. } => write!(f, "creating TAP link {ns}:{name}"),
            Step::CreateVxlan { ns, name, config } => write!(
                f,
                "creating VXLAN link {ns}:{name} (VNI {} to {}:{})",
                config.vni, config.remote, config.port
            ),
            Step::SetUp { ns, name } => write!(f, "bringing {ns}:{name} up"),
            Step::DisableOffloads { ns, name } => {
                write!(f, "switching offloads off on {ns}:{name}")
            }
            Step::SetMac { ns, name, .. } => write!(f, "setting the MAC of {ns}:{name}"),
            Step::AddAddress {
                ns,
                name,
                addr,
                prefix_len,
            } => write!(f, "adding {addr}/{prefix_len} to {ns}:{name}"),
            Step::AddRoute { ns, dst: None, via } => {
                write!(f, "adding default route via {via} in {ns}")
            }
            Step::AddRoute {
                ns,
                dst: Some((addr, len)),
                via,
            } => write!(f, "adding route to {addr}/{len} via {via} in {ns}"),
            Step::CreateCgroup { rel_path, .. } => write!(f, "creating cgroup {rel_path}"),
        }
    }
}

/// Every step that deploys `chain`: namespaces (hosts first, then VNFs),
/// links, test host configuration, VNF cgroups.
pub fn plan(chain: &ChainSpec) -> Vec<Step> {
    let name = &chain.name;
    // A VNF of a fused group lives in the group's namespace.
    let ns = |node: &str| node_netns(chain, node);
    let mut steps = Vec::new();

    for h in &chain.hosts {
        steps.push(Step::CreateNetns {
            name: netns_name(name, &h.name),
        });
    }
    let units = chain.workers();
    for unit in &units {
        let unit_ns = netns_name(name, unit.name());
        steps.push(Step::CreateNetns {
            name: unit_ns.clone(),
        });
        steps.push(Step::DisableIpv6 { ns: unit_ns });
    }

    // Offloads stay on only when both ends can take checksum-partial frames
    // and 64 KB super-frames: a kernel stack or a worker carrying virtio-net
    // headers. Otherwise the sender must produce plain, complete frames.
    let capable = |node: &str| chain.vnf(node).is_none_or(|v| v.datapath.offload);
    for l in &chain.links {
        match l.kind {
            LinkKind::Veth => {
                steps.push(Step::CreateVeth {
                    ns_a: ns(&l.a.node),
                    name_a: l.a.port.clone(),
                    ns_b: ns(&l.b.node),
                    name_b: l.b.port.clone(),
                    mtu: l.mtu,
                });
                if !(capable(&l.a.node) && capable(&l.b.node)) {
                    for end in [&l.a, &l.b] {
                        steps.push(Step::DisableOffloads {
                            ns: ns(&end.node),
                            name: end.port.clone(),
                        });
                    }
                }
            }
            // Carried by the group's worker: nothing in the kernel.
            LinkKind::Memory => {}
            LinkKind::Tap => {
                // The TAP device sits in the host's namespace under the
                // host's interface name; the VNF's worker holds its fd.
                let host_end = if chain.host(&l.a.node).is_some() {
                    &l.a
                } else {
                    &l.b
                };
                let (ns, name) = (ns(&host_end.node), host_end.port.clone());
                steps.push(Step::CreateTap {
                    ns: ns.clone(),
                    name: name.clone(),
                    mtu: l.mtu,
                });
                steps.push(Step::SetUp {
                    ns: ns.clone(),
                    name: name.clone(),
                });
                // A worker carrying offloads opens the TAP with vnet headers
                // and turns its offloads on (TUNSETOFFLOAD); otherwise the
                // host's stack must send it complete frames.
                let vnf_end = if host_end == &l.a { &l.b } else { &l.a };
                let carries = chain.vnf(&vnf_end.node).is_some_and(|v| v.datapath.offload);
                if !carries {
                    steps.push(Step::DisableOffloads { ns, name });
                }
            }
            LinkKind::Vxlan(v) => {
                // The device takes the port's name in the node's namespace;
                // its socket stays in the underlay.
                let (ns, name) = (ns(&l.a.node), l.a.port.clone());
                steps.push(Step::CreateVxlan {
                    ns: ns.clone(),
                    name: name.clone(),
                    config: VxlanConfig {
                        vni: v.vni,
                        remote: v.remote,
                        local: v.local,
                        port: v.port,
                        mtu: l.mtu,
                    },
                });
                steps.push(Step::SetUp {
                    ns: ns.clone(),
                    name: name.clone(),
                });
                // The kernel's VXLAN driver checksums and segments
                // super-frames itself (UDP tunnel GSO), so only the local
                // end decides.
                if !capable(&l.a.node) {
                    steps.push(Step::DisableOffloads { ns, name });
                }
            }
        }
    }

    for h in &chain.hosts {
        let hns = ns(&h.name);
        for iface in &h.interfaces {
            if let Some(mac) = iface.mac {
                steps.push(Step::SetMac {
                    ns: hns.clone(),
                    name: iface.name.clone(),
                    mac,
                });
            }
            for a in &iface.addresses {
                steps.push(Step::AddAddress {
                    ns: hns.clone(),
                    name: iface.name.clone(),
                    addr: a.addr,
                    prefix_len: a.prefix_len,
                });
            }
        }
        if let Some(gw) = h.gateway {
            steps.push(Step::AddRoute {
                ns: hns.clone(),
                dst: None,
                via: gw,
            });
        }
        for r in &h.routes {
            steps.push(Step::AddRoute {
                ns: hns.clone(),
                dst: Some((r.dst.addr, r.dst.prefix_len)),
                via: r.via,
            });
        }
    }

    for unit in &units {
        steps.push(Step::CreateCgroup {
            rel_path: cgroup_path(name, unit.name()),
            limits: unit_limits(chain, unit),
        });
    }
    steps
}

/// The cgroup limits of a worker: its VNF's, or for a group the group's,
/// each limit it does not give being the sum of its members'.
fn unit_limits(chain: &ChainSpec, unit: &WorkerUnit<'_>) -> Limits {
    match unit {
        WorkerUnit::Vnf(v) => Limits {
            cpu_cores: v.resources.cpu,
            memory_bytes: v.resources.memory,
            // No worker without a memory bound where the machine can
            // enforce one: wasm memory plus the worker's overhead.
            default_memory_bytes: Some(super::modules::cgroup_memory(v)),
            pids: v.resources.pids,
        },
        WorkerUnit::Group(g) => {
            let members: Vec<_> = chain.members(&g.name).collect();
            // A sum over the members that give a limit; none if none does.
            fn sum<T: std::iter::Sum<T>>(items: impl Iterator<Item = Option<T>>) -> Option<T> {
                let given: Vec<T> = items.flatten().collect();
                (!given.is_empty()).then(|| given.into_iter().sum())
            }
            let memory = g
                .resources
                .memory
                .or_else(|| sum(members.iter().map(|v| v.resources.memory)));
            Limits {
                cpu_cores: g
                    .resources
                    .cpu
                    .or_else(|| sum(members.iter().map(|v| v.resources.cpu))),
                memory_bytes: memory,
                default_memory_bytes: Some(
                    members
                        .iter()
                        .map(|v| super::modules::cgroup_memory(v))
                        .sum(),
                ),
                pids: g
                    .resources
                    .pids
                    .or_else(|| sum(members.iter().map(|v| v.resources.pids))),
            }
        }
    }
}
