//! Deploying a chain: resolve and check modules, plan the namespaces, links
//! and cgroups and execute the plan against an [`crate::sys::Os`], start
//! the supervisor; and tear it all down again.

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

/// Relative cgroup path of a VNF: `nfvhost/<chain>/<vnf>`, scoped by this
/// process's instance.
pub fn cgroup_path(chain: &str, vnf: &str) -> String {
    crate::instance::Scope::current().cgroup_path(chain, vnf)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vxlan_tests;
