//! Deploying a chain: resolve and check modules, plan the namespaces, links
//! and cgroups and execute the plan against an [`crate::sys::Os`], start
//! the supervisor; and tear it all down again.

pub mod capture;
pub mod dhcp_clients;
pub mod execute;
pub mod handover;
pub mod lock;
pub mod metrics;
pub mod modules;
pub mod plan;
pub mod restart;
pub mod setup;
pub mod state;
pub mod supervisor;
pub mod teardown;

/// A node's namespace: `nfv-<chain>-<node>`, scoped by this process's
/// instance (see [`crate::instance`]).
pub fn netns_name(chain: &str, node: &str) -> String {
    crate::instance::Scope::current().netns_name(chain, node)
}

/// The namespace of a node of `chain`: a test host's or a VNF's own, or
/// for a VNF of a fused group, the group's.
pub fn node_netns(chain: &crate::chain::ChainSpec, node: &str) -> String {
    let unit = chain
        .vnf(node)
        .and_then(|v| v.group.as_deref())
        .unwrap_or(node);
    netns_name(&chain.name, unit)
}

/// Relative cgroup path of a VNF (or of a fused group):
/// `nfvhost/<chain>/<vnf>`, scoped by this process's instance.
pub fn cgroup_path(chain: &str, vnf: &str) -> String {
    crate::instance::Scope::current().cgroup_path(chain, vnf)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vxlan_tests;
