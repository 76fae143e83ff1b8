//! The state file: everything a deploy created, written as it goes, so that
//! `destroy` can undo a deploy even after the supervisor was killed, or a
//! deploy that failed half-way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::datapath::worker::WorkerSpec;
use crate::sys::cgroup::Cgroup;

/// Where chain state lives: `$NFVHOST_RUN_DIR` or `/run/nfvhost`.
pub fn run_dir() -> PathBuf {
    std::env::var_os("NFVHOST_RUN_DIR").map_or_else(|| PathBuf::from("/run/nfvhost"), PathBuf::from)
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
    /// The directory holding every chain's state directory; `None`:
    /// [`run_dir`]. Not saved: it is where the state is, not what it says.
    #[serde(skip)]
    pub run_dir: Option<PathBuf>,
}

/// Reading or writing a state file failed.
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
}

impl ChainState {
    /// The state directory of a chain.
    pub fn dir(chain: &str) -> PathBuf {
        run_dir().join(chain)
    }

    pub fn path(chain: &str) -> PathBuf {
        Self::dir(chain).join("state.json")
    }

    /// Reads a chain's state, `None` if it has none.
    pub fn load(chain: &str) -> Result<Option<ChainState>, StateError> {
        let path = Self::path(chain);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .map_err(|source| StateError::Parse { path, source })?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }

    /// This chain's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.run_dir
            .as_deref()
            .map_or_else(|| Self::dir(&self.chain), |d| d.join(&self.chain))
    }

    /// Writes the state atomically.
    pub fn save(&self) -> Result<(), StateError> {
        let dir = self.state_dir();
        let write = |path: &Path| {
            let write_error = |source| StateError::Write {
                path: path.to_owned(),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(write_error)?;
            let tmp = dir.join("state.json.tmp");
            let json = serde_json::to_vec_pretty(self).map_err(|source| StateError::Parse {
                path: path.to_owned(),
                source,
            })?;
            std::fs::write(&tmp, json).map_err(write_error)?;
            std::fs::rename(&tmp, path).map_err(write_error)
        };
        write(&dir.join("state.json"))
    }

    /// Names of every chain with a state directory.
    pub fn list() -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(run_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("state.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
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

/// Whether `dir` is an nfvhost state directory.
pub fn is_state_dir(dir: &Path) -> bool {
    dir.join("state.json").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

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
