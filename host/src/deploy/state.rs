//! The state file: everything a deploy created, written as it goes, so that
//! `destroy` can undo a deploy even after the supervisor was killed, or a
//! deploy that failed half-way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chain::names::{self, NameKind};
use crate::datapath::worker::WorkerSpec;
use crate::sys::cgroup::Cgroup;
use crate::sys::pidfd::Pidfd;
use crate::sys::private_file;

/// The file that marks a directory as a state directory nfvhost created;
/// it holds the chain's name. Nothing without it is ever deleted.
pub const OWNER_MARKER: &str = ".nfvhost-chain";

/// Where chain state lives: `$NFVHOST_RUN_DIR`, or `/run/nfvhost` scoped
/// by the instance (`/run/nfvhost-<instance>`).
pub fn run_dir() -> PathBuf {
    std::env::var_os("NFVHOST_RUN_DIR").map_or_else(
        || crate::instance::Scope::current().default_run_dir(),
        PathBuf::from,
    )
}

/// A process we started, identified by pid and start time so a recycled
/// pid is never mistaken for ours.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcRef {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcRef {
    /// Reads the start time of `pid` from /proc.
    pub fn of(pid: i32) -> Option<ProcRef> {
        proc_start_time(pid).map(|start_time| ProcRef { pid, start_time })
    }

    /// A pidfd on this exact process: opened first, then checked against the
    /// recorded start time, so it can never name a process that reused the
    /// pid. `None` if the process is gone (or a zombie).
    pub fn pidfd(&self) -> Option<Pidfd> {
        let fd = Pidfd::open(self.pid).ok()?;
        (self.alive() && !fd.exited()).then_some(fd)
    }

    /// Whether this exact process is still alive (and not a zombie).
    pub fn alive(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        proc_start_time(self.pid) == Some(self.start_time)
            && stat_state(&stat).is_none_or(|s| s != 'Z')
    }
}

fn stat_fields(stat: &str) -> Vec<&str> {
    // The command name (field 2) may contain spaces; fields resume after ')'.
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

fn stat_state(stat: &str) -> Option<char> {
    stat_fields(stat).first().and_then(|s| s.chars().next())
}

fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // starttime is field 22; after ')' the first field is 3.
    stat_fields(&stat).get(22 - 3)?.parse().ok()
}

/// A test host as deployed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostState {
    pub name: String,
    pub netns: String,
    pub interfaces: Vec<String>,
}

/// A VNF as deployed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VnfState {
    pub name: String,
    pub netns: String,
    pub ports: Vec<String>,
    pub module: PathBuf,
    pub digest: String,
    pub spec: WorkerSpec,
    /// The fused group whose worker runs it; `None`: a worker of its own.
    #[serde(default)]
    pub group: Option<String>,
    /// Bumped by every `nfvhost replace`: the supervisor restarts a worker
    /// whose generation changed, even onto the same module.
    #[serde(default)]
    pub generation: u64,
}

/// Everything one deployed chain consists of.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChainState {
    pub chain: String,
    pub chain_file: PathBuf,
    pub metrics: Option<SocketAddr>,
    /// Namespaces created, in creation order.
    pub namespaces: Vec<String>,
    pub cgroups: Vec<Cgroup>,
    pub hosts: Vec<HostState>,
    pub vnfs: Vec<VnfState>,
    pub supervisor: Option<ProcRef>,
    /// Processes started in test hosts by the chain (DHCP clients).
    pub helpers: Vec<ProcRef>,
    /// The chain as deployed: nodes, ports with their addresses, links
    /// (for `inspect` and `graph`).
    #[serde(default)]
    pub topology: Option<crate::chain::graph::Topology>,
    /// The directory holding every chain's state directory; `None`:
    /// [`run_dir`]. Not saved: it is where the state is, not what it says.
    #[serde(skip)]
    pub run_dir: Option<PathBuf>,
}

/// Reading, writing or removing a state file or directory failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is the state of chain {found:?}, not {chain}")]
    WrongChain {
        path: PathBuf,
        found: String,
        chain: String,
    },
    /// A directory nfvhost did not create (no ownership marker).
    #[error("{path} is not a state directory nfvhost created (no {OWNER_MARKER}); {action}")]
    NotOurs { path: PathBuf, action: &'static str },
    #[error(transparent)]
    Name(#[from] names::BadName),
    #[error(transparent)]
    File(#[from] private_file::PrivateFileError),
}

impl ChainState {
    /// The state directory of a chain. Callers pass a checked chain name
    /// (the decoder's or [`names::check_arg`]'s); [`ChainState::load`] and
    /// [`ChainState::save`] check again.
    pub fn dir(chain: &str) -> PathBuf {
        run_dir().join(chain)
    }

    pub fn path(chain: &str) -> PathBuf {
        Self::dir(chain).join("state.json")
    }

    /// Reads a chain's state, `None` if it has none. Only a state directory
    /// nfvhost created (see [`is_state_dir`]) is read.
    pub fn load(chain: &str) -> Result<Option<ChainState>, StateError> {
        names::check_arg(NameKind::Chain, "chain name", chain)?;
        let dir = Self::dir(chain);
        if !is_state_dir(&dir, chain) {
            return Ok(None);
        }
        let path = Self::path(chain);
        let mut bytes = Vec::new();
        match private_file::open_read(&path) {
            Ok(f) => {
                use std::io::Read as _;
                f.take(MAX_STATE_FILE)
                    .read_to_end(&mut bytes)
                    .map_err(|source| StateError::Read {
                        path: path.clone(),
                        source,
                    })?;
            }
            Err(private_file::PrivateFileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        }
        let state: ChainState =
            serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
                path: path.clone(),
                source,
            })?;
        if state.chain != chain {
            return Err(StateError::WrongChain {
                path,
                found: state.chain,
                chain: chain.to_owned(),
            });
        }
        Ok(Some(state))
    }

    /// This chain's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.run_dir
            .as_deref()
            .map_or_else(|| Self::dir(&self.chain), |d| d.join(&self.chain))
    }

    /// Writes the state atomically into a 0700 state directory (created
    /// with its ownership marker on first use), as a 0600 file.
    pub fn save(&self) -> Result<(), StateError> {
        names::check_arg(NameKind::Chain, "chain name", &self.chain)?;
        let dir = self.state_dir();
        private_file::ensure_dir(&self.run_dir.clone().unwrap_or_else(run_dir))?;
        if !is_state_dir(&dir, &self.chain) {
            // Never adopt a directory someone else put there.
            if std::fs::symlink_metadata(&dir).is_ok() {
                return Err(StateError::NotOurs {
                    path: dir,
                    action: "move it away and deploy again",
                });
            }
            private_file::ensure_dir(&dir)?;
            private_file::write_atomic(&dir.join(OWNER_MARKER), self.chain.as_bytes(), 0o600)?;
        }
        let path = dir.join("state.json");
        let json = serde_json::to_vec_pretty(self).map_err(|source| StateError::Parse {
            path: path.clone(),
            source,
        })?;
        private_file::write_atomic(&path, &json, 0o600)?;
        Ok(())
    }

    /// Names of every deployed chain: a state directory nfvhost created,
    /// with a state file (a destroyed chain keeps only its logs).
    pub fn list() -> Vec<String> {
        let mut names = Self::list_dirs();
        names.retain(|n| Self::path(n).exists());
        names
    }

    /// Names of every chain with a state directory nfvhost created,
    /// deployed or destroyed with its logs kept.
    pub fn list_dirs() -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(run_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| names::check(NameKind::Chain, n).is_ok())
            .filter(|n| is_state_dir(&Self::dir(n), n))
            .collect();
        names.sort();
        names
    }

    /// File paths inside the state directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.state_dir().join(name)
    }
}

/// Path of a VNF's log file.
pub fn vnf_log_path(chain: &str, vnf: &str) -> PathBuf {
    ChainState::dir(chain)
        .join("logs")
        .join(format!("{vnf}.log"))
}

/// Largest state file read.
const MAX_STATE_FILE: u64 = 16 << 20;

/// Whether `dir` is the state directory nfvhost created for `chain`: a real
/// directory (not a symlink) owned by us whose ownership marker, a regular
/// file, names `chain`.
pub fn is_state_dir(dir: &Path, chain: &str) -> bool {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return false;
    };
    if !meta.file_type().is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return false;
    }
    let Ok(f) = private_file::open_read(&dir.join(OWNER_MARKER)) else {
        return false;
    };
    if !f.metadata().is_ok_and(|m| m.file_type().is_file()) {
        return false;
    }
    let mut text = String::new();
    f.take(64).read_to_string(&mut text).is_ok() && text == chain
}

/// Removes a chain's state directory, only if nfvhost created it.
pub fn remove_state_dir(chain: &str) -> Result<(), StateError> {
    names::check_arg(NameKind::Chain, "chain name", chain)?;
    remove_dir_if_ours(&ChainState::dir(chain), chain)
}

/// What a destroyed chain keeps of its state directory until `destroy
/// --cleanup`: its logs (each capped, see [`crate::logging::pump`]) and
/// the ownership marker.
pub const KEPT_AFTER_DESTROY: [&str; 4] =
    [OWNER_MARKER, "logs", "supervisor.log", "supervisor.log.1"];

/// Empties `dir`, the state directory of `chain`, but for its logs
/// ([`KEPT_AFTER_DESTROY`]); removes it whole when no log is left. Only a
/// directory nfvhost created is touched.
pub fn clear_dir_keeping_logs(dir: &Path, chain: &str) -> Result<(), StateError> {
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    if !is_state_dir(dir, chain) {
        return Err(StateError::NotOurs {
            path: dir.to_owned(),
            action: "left alone",
        });
    }
    let write_err = |path: PathBuf| move |source| StateError::Write { path, source };
    let mut kept_logs = false;
    let entries = std::fs::read_dir(dir).map_err(write_err(dir.to_owned()))?;
    for entry in entries {
        let entry = entry.map_err(write_err(dir.to_owned()))?;
        let path = entry.path();
        let name = entry.file_name();
        // file_type() does not follow symlinks: a planted link is removed,
        // never its target.
        let ty = entry.file_type().map_err(write_err(path.clone()))?;
        if name == OWNER_MARKER && ty.is_file() {
            continue;
        }
        if !ty.is_symlink()
            && KEPT_AFTER_DESTROY.iter().any(|k| name == *k)
            && has_content(&path, ty)
        {
            kept_logs = true;
            continue;
        }
        let removed = if ty.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(write_err(path))?;
    }
    if kept_logs {
        Ok(())
    } else {
        remove_dir_if_ours(dir, chain)
    }
}

/// Whether a kept entry holds a log: a non-empty file, or a directory
/// with an entry in it.
fn has_content(path: &Path, ty: std::fs::FileType) -> bool {
    if ty.is_dir() {
        std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some())
    } else {
        std::fs::symlink_metadata(path).is_ok_and(|m| m.len() > 0)
    }
}

/// Removes `dir`, the state directory of `chain`, only if nfvhost created it.
pub fn remove_dir_if_ours(dir: &Path, chain: &str) -> Result<(), StateError> {
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    if !is_state_dir(dir, chain) {
        return Err(StateError::NotOurs {
            path: dir.to_owned(),
            action: "left alone",
        });
    }
    // remove_dir_all does not follow symlinks inside the directory.
    std::fs::remove_dir_all(dir).map_err(|source| StateError::Write {
        path: dir.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` with the run dir pointed at a fresh temporary directory.
    /// The run dir is process-wide (an env var), so these tests serialize.
    fn with_run_dir(f: impl FnOnce(&Path)) {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let d = std::env::temp_dir().join(format!("nfvhost-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::env::set_var("NFVHOST_RUN_DIR", d.join("run"));
        f(&d);
        std::env::remove_var("NFVHOST_RUN_DIR");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn state_is_private_and_marked() {
        use std::os::unix::fs::MetadataExt as _;
        with_run_dir(|_| {
            let st = ChainState {
                chain: "c1".into(),
                ..Default::default()
            };
            st.save().unwrap();
            let dir = ChainState::dir("c1");
            assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
            assert_eq!(std::fs::metadata(run_dir()).unwrap().mode() & 0o777, 0o700);
            let file = ChainState::path("c1");
            assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
            assert!(is_state_dir(&dir, "c1"));
            assert!(!is_state_dir(&dir, "c2"));
            assert_eq!(ChainState::list(), vec!["c1".to_owned()]);
            assert_eq!(ChainState::load("c1").unwrap().unwrap().chain, "c1");
            remove_state_dir("c1").unwrap();
            assert!(!dir.exists());
        });
    }

    #[test]
    fn only_marked_state_dirs_are_removed() {
        with_run_dir(|tmp| {
            std::fs::create_dir_all(run_dir()).unwrap();
            // A directory someone else made, with a state.json in it.
            let foreign = ChainState::dir("other");
            std::fs::create_dir_all(&foreign).unwrap();
            std::fs::write(foreign.join("state.json"), b"{}").unwrap();
            assert!(remove_state_dir("other").is_err());
            assert!(foreign.join("state.json").exists());
            assert!(ChainState::load("other").unwrap().is_none());
            assert!(ChainState::list().is_empty());
            // Nor is it adopted by a deploy of that name.
            let st = ChainState {
                chain: "other".into(),
                ..Default::default()
            };
            assert!(st
                .save()
                .unwrap_err()
                .to_string()
                .contains("not a state directory"));
            assert_eq!(std::fs::read(foreign.join("state.json")).unwrap(), b"{}");

            // A symlink to a marked directory elsewhere is not ours either.
            let victim = tmp.join("victim");
            std::fs::create_dir_all(&victim).unwrap();
            std::fs::write(victim.join(OWNER_MARKER), b"evil").unwrap();
            std::os::unix::fs::symlink(&victim, ChainState::dir("evil")).unwrap();
            assert!(remove_state_dir("evil").is_err());
            assert!(victim.join(OWNER_MARKER).exists());

            // Names that would escape the run dir are refused outright.
            for bad in ["..", "/tmp", "../x", ".", "a/b"] {
                assert!(remove_state_dir(bad).is_err(), "{bad}");
                assert!(ChainState::load(bad).is_err(), "{bad}");
            }
            assert!(tmp.exists());
        });
    }

    #[test]
    fn destroy_keeps_only_the_logs_until_cleanup() {
        with_run_dir(|tmp| {
            let st = ChainState {
                chain: "c1".into(),
                ..Default::default()
            };
            st.save().unwrap();
            let dir = ChainState::dir("c1");
            std::fs::create_dir(dir.join("logs")).unwrap();
            std::fs::write(dir.join("logs/r1.log"), b"a line\n").unwrap();
            std::fs::write(dir.join("supervisor.log"), b"started\n").unwrap();
            std::fs::write(dir.join("r1.stats"), b"x").unwrap();
            // A planted link named like a kept log is removed, its target kept.
            let outside = tmp.join("outside");
            std::fs::write(&outside, b"keep me").unwrap();
            std::os::unix::fs::symlink(&outside, dir.join("supervisor.log.1")).unwrap();

            clear_dir_keeping_logs(&dir, "c1").unwrap();
            let mut left: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            left.sort();
            assert_eq!(left, [OWNER_MARKER, "logs", "supervisor.log"]);
            assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
            // No longer deployed, but its directory is still ours.
            assert!(ChainState::load("c1").unwrap().is_none());
            assert!(ChainState::list().is_empty());
            assert_eq!(ChainState::list_dirs(), ["c1"]);
            // Idempotent; `--cleanup` then removes the rest.
            clear_dir_keeping_logs(&dir, "c1").unwrap();
            assert!(dir.join("logs/r1.log").exists());
            remove_state_dir("c1").unwrap();
            assert!(!dir.exists());

            // Without a log, nothing is kept.
            st.save().unwrap();
            std::fs::create_dir(dir.join("logs")).unwrap();
            clear_dir_keeping_logs(&dir, "c1").unwrap();
            assert!(!dir.exists());
        });
    }

    #[test]
    fn recycled_pid_gets_no_pidfd() {
        let me = ProcRef::of(std::process::id() as i32).unwrap();
        assert!(me.pidfd().is_some());
        let other = ProcRef {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(other.pidfd().is_none());
    }

    #[test]
    fn own_process_is_alive_and_recycled_pid_is_not() {
        let me = ProcRef::of(std::process::id() as i32).unwrap();
        assert!(me.alive());
        let other = ProcRef {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.alive());
    }
}
