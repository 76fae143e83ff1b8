//! The one OS seam deploy and teardown run against: named namespaces, links
//! (the [`LinkOps`] part), offloads, and cgroups under a mount root given as
//! a parameter.
//!
//! [`LinuxOs`] does the work with the rest of `sys`; the recording test
//! double is `sys::fake::FakeOs` (tests only, not in the public API).

use std::io;
use std::path::{Path, PathBuf};

use super::cgroup::{Cgroup, CgroupError, CgroupRoot, Limits};
use super::link::{LinkError, LinkOps, LinuxLinkOps};
use super::netns::{self, NetNs, NetNsError};

/// What went wrong with an OS operation.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    #[error(transparent)]
    Netns(#[from] NetNsError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Writing the IPv6 switches of a namespace failed.
    #[error("couldn't switch IPv6 off in namespace {ns}: {source}")]
    Ipv6 { ns: String, source: io::Error },
    /// A failure the test double was told to produce.
    #[error("injected failure in {op} (FakeOs)")]
    Injected { op: &'static str },
}

/// Namespaces, links and cgroups, by name. Everything deploy and teardown
/// do to the machine goes through this trait.
pub trait Os: Send + Sync {
    /// The link operations, in namespaces named by the calls.
    fn links(&self) -> &dyn LinkOps;
    /// Creates the named namespace (with `lo` up). Fails if it exists.
    fn create_netns(&self, name: &str) -> Result<(), OsError>;
    /// Deletes the named namespace; absent is not an error.
    fn delete_netns(&self, name: &str) -> Result<(), OsError>;
    /// Whether the named namespace exists.
    fn netns_exists(&self, name: &str) -> bool;
    /// Names of all named namespaces, sorted.
    fn list_netns(&self) -> Vec<String>;
    /// Switches IPv6 off (`all` and `default`) in the namespace, so the
    /// kernel sends nothing of its own on links created there later.
    fn disable_ipv6(&self, ns: &str) -> Result<(), OsError>;
    /// Where the cgroup hierarchies are mounted (normally `/sys/fs/cgroup`).
    fn cgroup_mount(&self) -> &Path;
    /// Creates the cgroup `rel_path` with `limits`. Fails if it exists.
    fn create_cgroup(&self, rel_path: &str, limits: &Limits) -> Result<Cgroup, OsError>;
    /// Opens an existing cgroup.
    fn open_cgroup(&self, rel_path: &str) -> Result<Cgroup, OsError>;
    /// The processes in a cgroup; empty if it cannot be read.
    fn cgroup_procs(&self, cgroup: &Cgroup) -> Vec<i32>;
    /// Removes a cgroup and the empty parents it created; absent is fine.
    fn remove_cgroup(&self, cgroup: &Cgroup) -> Result<(), OsError>;
}

/// [`Os`] on the real kernel.
#[derive(Debug, Clone)]
pub struct LinuxOs {
    cgroup_mount: PathBuf,
    links: LinuxLinkOps,
}

impl LinuxOs {
    /// The machine, with cgroups under `cgroup_mount`.
    pub fn new(cgroup_mount: impl Into<PathBuf>) -> LinuxOs {
        LinuxOs {
            cgroup_mount: cgroup_mount.into(),
            links: LinuxLinkOps,
        }
    }

    fn cgroup_root(&self) -> Result<CgroupRoot, CgroupError> {
        CgroupRoot::detect(&self.cgroup_mount)
    }
}

impl Default for LinuxOs {
    /// The machine, with cgroups under `/sys/fs/cgroup`.
    fn default() -> LinuxOs {
        LinuxOs::new("/sys/fs/cgroup")
    }
}

impl Os for LinuxOs {
    fn links(&self) -> &dyn LinkOps {
        &self.links
    }

    fn create_netns(&self, name: &str) -> Result<(), OsError> {
        NetNs::create(name)?;
        Ok(())
    }

    fn delete_netns(&self, name: &str) -> Result<(), OsError> {
        Ok(NetNs::delete(name)?)
    }

    fn netns_exists(&self, name: &str) -> bool {
        netns::exists(name)
    }

    fn list_netns(&self) -> Vec<String> {
        netns::list()
    }

    fn disable_ipv6(&self, ns: &str) -> Result<(), OsError> {
        NetNs::open(ns)?
            .run(|| -> io::Result<()> {
                // /proc/sys/net resolves to the namespace of the calling thread.
                for conf in ["all", "default"] {
                    std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1")?;
                }
                Ok(())
            })?
            .map_err(|source| OsError::Ipv6 {
                ns: ns.to_owned(),
                source,
            })
    }

    fn cgroup_mount(&self) -> &Path {
        &self.cgroup_mount
    }

    fn create_cgroup(&self, rel_path: &str, limits: &Limits) -> Result<Cgroup, OsError> {
        Ok(self.cgroup_root()?.create(rel_path, limits)?)
    }

    fn open_cgroup(&self, rel_path: &str) -> Result<Cgroup, OsError> {
        Ok(self.cgroup_root()?.open(rel_path)?)
    }

    fn cgroup_procs(&self, cgroup: &Cgroup) -> Vec<i32> {
        cgroup.procs().unwrap_or_default()
    }

    fn remove_cgroup(&self, cgroup: &Cgroup) -> Result<(), OsError> {
        Ok(cgroup.remove()?)
    }
}
