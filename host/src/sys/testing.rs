//! Helpers for privileged tests. Not part of the supported API.

use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};

use super::netns::{NetNs, NetNsError};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace named `<prefix><pid>-<n>`, deleted when the guard is
/// dropped, including while a test unwinds from a panic.
#[derive(Debug)]
pub struct NetNsGuard {
    ns: NetNs,
}

impl NetNsGuard {
    /// Creates a fresh, uniquely named namespace. Use a prefix that marks
    /// the namespace as a test's, such as `nfvt-`.
    pub fn new(prefix: &str) -> Result<NetNsGuard, NetNsError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}{}-{n}", std::process::id());
        Ok(NetNsGuard {
            ns: NetNs::create(&name)?,
        })
    }
}

impl Deref for NetNsGuard {
    type Target = NetNs;

    fn deref(&self) -> &NetNs {
        &self.ns
    }
}

impl Drop for NetNsGuard {
    fn drop(&mut self) {
        if let Err(err) = NetNs::delete(self.ns.name()) {
            eprintln!("NetNsGuard: couldn't delete {}: {err}", self.ns.name());
        }
    }
}

/// True if the process runs as root; otherwise prints that `test` is
/// skipped and returns false.
pub fn have_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("SKIPPED {test}: needs root (namespaces, links, cgroups)");
        false
    }
}
