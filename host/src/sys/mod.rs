//! Namespaces, links and cgroups: the OS layer, behind seams.
//!
//! - [`netns`]: named network namespaces, compatible with `ip netns`.
//! - [`link`]: veth pairs, TAP devices, addresses and routes inside
//!   namespaces, behind the [`LinkOps`] trait (with [`FakeLinkOps`]).
//! - [`ethtool`]: switching checksum and segmentation offloads off.
//! - [`cgroup`]: one cgroup per VNF with CPU, memory and pids limits, on
//!   cgroup v1 and v2.

pub mod cgroup;
pub mod ethtool;
mod ifreq;
pub mod link;
pub mod netns;
#[doc(hidden)]
pub mod testing;

pub use cgroup::{Cgroup, CgroupError, CgroupRoot, CgroupUsage, CgroupVersion, Limits};
pub use ethtool::{disable_offloads, EthtoolError, Offload};
pub use link::{FakeLinkOps, LinkCall, LinkError, LinkOps, LinkStats, LinuxLinkOps};
pub use netns::{NetNs, NetNsError};

#[cfg(test)]
mod privileged_tests;
