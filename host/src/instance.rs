//! Instance scoping: several nfvhost instances side by side on one machine
//! (or in one "machine" namespace each), none touching the others' objects.
//!
//! An instance is named by `--instance NAME` or `NFVHOST_INSTANCE` (the same
//! rule as chain names). Without one, names are what they always were.
//! With instance `i`, everything nfvhost creates is scoped by it:
//!
//! | object        | no instance             | instance `i`                  |
//! |---------------|-------------------------|-------------------------------|
//! | namespaces    | `nfv-<chain>-<node>`    | `nfv-i.<chain>-<node>`        |
//! | cgroups       | `nfvhost/<chain>/<vnf>` | `nfvhost-i/<chain>/<vnf>`     |
//! | state, locks  | `/run/nfvhost`          | `/run/nfvhost-i`              |
//!
//! The `.` cannot occur in chain or instance names, so no scoped name can
//! equal or prefix another instance's (or the unscoped) names;
//! `NFVHOST_RUN_DIR` still wins over the default run directory. (A chain
//! without `metrics:` gets a free loopback port in any instance.)

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::chain::names::{self, BadName, NameKind};

/// The environment variable that names the instance (inherited by the
/// supervisor and workers nfvhost starts).
pub const ENV: &str = "NFVHOST_INSTANCE";

static CURRENT: OnceLock<Option<String>> = OnceLock::new();

/// Sets this process's instance (from the command line). Checked with the
/// chain-name rule; it can be set only once, before anything asks for it.
pub fn init(name: Option<String>) -> Result<(), BadName> {
    if let Some(n) = &name {
        names::check_arg(NameKind::Chain, "instance name", n)?;
    }
    let _ = CURRENT.set(name);
    Ok(())
}

/// This process's instance: what [`init`] set, or else `NFVHOST_INSTANCE`.
///
/// # Panics
///
/// If `NFVHOST_INSTANCE` breaks the name rule and [`init`] was not called
/// (the command line calls it first and reports a bad name as a usage
/// error, so only library users can get here).
pub fn current() -> Option<&'static str> {
    CURRENT
        .get_or_init(|| {
            let name = std::env::var(ENV).ok().filter(|n| !n.is_empty())?;
            if let Err(e) = names::check_arg(NameKind::Chain, "instance name", &name) {
                panic!("{ENV}: {e}");
            }
            Some(name)
        })
        .as_deref()
}

/// A scope: the names one instance (or none) gives its objects. Pure, so
/// that the naming is unit-tested for any instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    pub instance: Option<&'a str>,
}

impl Scope<'static> {
    /// The scope of this process.
    pub fn current() -> Scope<'static> {
        Scope {
            instance: current(),
        }
    }
}

impl Scope<'_> {
    /// A node's namespace.
    pub fn netns_name(&self, chain: &str, node: &str) -> String {
        match self.instance {
            None => format!("nfv-{chain}-{node}"),
            Some(i) => format!("nfv-{i}.{chain}-{node}"),
        }
    }

    /// Whether `name` is one of `chain`'s namespaces in this scope: the
    /// chain's prefix followed by a valid node name (which has no `.`, so
    /// `nfv-a-b.x-h1` of instance `a-b` is never node `b.x-h1` of the
    /// unscoped chain `a`).
    pub fn owns_netns(&self, chain: &str, name: &str) -> bool {
        name.strip_prefix(&self.netns_name(chain, ""))
            .is_some_and(|node| names::check(NameKind::Node, node).is_ok())
    }

    /// The cgroup directory (relative to the mount) all chains live under.
    pub fn cgroup_root(&self) -> String {
        match self.instance {
            None => "nfvhost".to_owned(),
            Some(i) => format!("nfvhost-{i}"),
        }
    }

    /// A VNF's cgroup, relative to the mount.
    pub fn cgroup_path(&self, chain: &str, vnf: &str) -> String {
        format!("{}/{chain}/{vnf}", self.cgroup_root())
    }

    /// The default run directory (state, locks, logs).
    pub fn default_run_dir(&self) -> PathBuf {
        match self.instance {
            None => PathBuf::from("/run/nfvhost"),
            Some(i) => PathBuf::from(format!("/run/nfvhost-{i}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscoped_names_are_unchanged() {
        let s = Scope { instance: None };
        assert_eq!(s.netns_name("basic", "h1"), "nfv-basic-h1");
        assert_eq!(s.cgroup_path("basic", "r1"), "nfvhost/basic/r1");
        assert_eq!(s.default_run_dir(), PathBuf::from("/run/nfvhost"));
    }

    #[test]
    fn instances_never_share_or_prefix_names() {
        let none = Scope { instance: None };
        let a = Scope {
            instance: Some("a"),
        };
        let ab = Scope {
            instance: Some("a-b"),
        };
        assert_eq!(a.netns_name("basic", "h1"), "nfv-a.basic-h1");
        assert_eq!(a.cgroup_path("basic", "r1"), "nfvhost-a/basic/r1");
        assert_eq!(a.default_run_dir(), PathBuf::from("/run/nfvhost-a"));
        // Chain `a-b` unscoped, chain `b` in instance `a`, chain `basic` in
        // instance `a-b`, ...: no chain owns another's namespaces.
        let chains = [
            (none, "a"),
            (none, "a-b"),
            (a, "b"),
            (a, "basic"),
            (ab, "basic"),
            (ab, "b"),
        ];
        for (i, (s, c)) in chains.iter().enumerate() {
            for (j, (t, d)) in chains.iter().enumerate() {
                if i != j && s.instance.is_none() && t.instance.is_none() {
                    // `nfv-a-b-h1` is node `b-h1` of chain `a` and node `h1`
                    // of chain `a-b`: why teardown goes by the state file.
                    continue;
                }
                let theirs = t.netns_name(d, "h1");
                assert_eq!(s.owns_netns(c, &theirs), i == j, "{s:?} {c} owns {theirs}?");
            }
        }
        assert!(!none.owns_netns("a", "nfv-a-"));
        assert_ne!(a.cgroup_root(), ab.cgroup_root());
        assert_ne!(a.cgroup_root(), none.cgroup_root());
    }

    #[test]
    fn instance_names_follow_the_chain_rule() {
        assert!(init(Some("Bad/Name".into())).is_err());
        assert!(init(Some("this-is-far-too-long".into())).is_err());
    }
}
