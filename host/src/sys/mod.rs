//! Namespaces, links and cgroups: the OS layer, and the only place with
//! `unsafe` (syscall wrappers) outside the data path.
//!
//! - [`os`]: the [`Os`] trait deploy and teardown run against, and
//!   [`LinuxOs`], the real machine (a recording fake exists for tests).
//! - [`netns`]: named network namespaces, compatible with `ip netns`.
//! - [`link`]: veth pairs, TAP devices, addresses and routes inside
//!   namespaces, behind the [`LinkOps`] trait (the links part of [`Os`]).
//! - [`ethtool`]: switching checksum and segmentation offloads off.
//! - [`cgroup`]: one cgroup per VNF with CPU, memory and pids limits, on
//!   cgroup v1 and v2.
//! - [`artifact`]: loading precompiled modules from the module cache.
//! - [`handover`]: the supervisor-worker channel of `nfvhost replace`.
//! - [`process`]: safe wrappers for what a child process does between fork
//!   and exec, and for signal handlers.
//! - [`privilege`] and [`seccomp`]: the worker's sandbox (empty mount
//!   namespace, unprivileged ids, no capabilities, a syscall allow-list).

pub mod artifact;
pub mod cgroup;
pub mod ethtool;
#[cfg(test)]
pub(crate) mod fake;
pub mod handover;
mod ifreq;
pub mod link;
pub mod netns;
pub mod os;
pub mod pidfd;
pub mod private_file;
pub mod privilege;
pub mod process;
pub mod seccomp;
#[doc(hidden)]
pub mod testing;

pub use cgroup::{Cgroup, CgroupError, CgroupRoot, CgroupUsage, CgroupVersion, Limits};
pub use ethtool::{disable_offloads, EthtoolError, Offload};
pub use link::{LinkError, LinkOps, LinkStats, LinuxLinkOps};
pub use netns::{NetNs, NetNsError};
pub use os::{LinuxOs, Os, OsError};

#[cfg(test)]
mod privileged_tests;
#[cfg(test)]
mod sandbox_tests;
