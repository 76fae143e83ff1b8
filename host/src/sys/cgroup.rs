//! One cgroup per VNF, with CPU, memory and pids limits, on cgroup v1 and v2.
//!
//! Everything takes the cgroup mount root as a parameter (normally
//! `/sys/fs/cgroup`), so the tests run against temporary directories laid out
//! like either version. On a hybrid machine (v1 controllers plus an empty v2
//! mount at `unified/`) the v1 hierarchies are used, because that is where the
//! controllers are.
//!
//! A [`Cgroup`] serializes as its paths, so a state file can record it and a
//! later `destroy` can remove it without detecting anything again.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// CFS period used for CPU limits, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The smallest quota the kernel accepts, in microseconds.
const MIN_CPU_QUOTA_US: u64 = 1_000;

/// The controllers nfvhost uses.
const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// Which cgroup interface a hierarchy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Resource limits for one cgroup; `None` leaves that resource unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU time as a number of cores (0.5 = half of one core).
    pub cpu_cores: Option<f64>,
    /// Memory in bytes.
    pub memory_bytes: Option<u64>,
    /// The memory limit used when `memory_bytes` is `None` and some
    /// hierarchy has the memory controller (a default bound where the
    /// machine can enforce one, and no error where it cannot).
    #[serde(default)]
    pub default_memory_bytes: Option<u64>,
    /// Maximum number of tasks (processes and threads).
    pub pids: Option<u64>,
}

/// What a cgroup has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupUsage {
    /// CPU time consumed, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory currently charged, in bytes.
    pub memory_bytes: u64,
}

/// What went wrong with a cgroup. Each variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The relative path is not a plain relative path.
    #[error("{rel_path:?} is not a valid cgroup path: {reason}")]
    InvalidPath {
        rel_path: String,
        reason: &'static str,
    },
    /// A limit makes no sense.
    #[error("invalid {what} limit {value}: {reason}")]
    InvalidLimit {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// Neither a v2 mount nor v1 hierarchies under the root.
    #[error("no cgroup hierarchies under {root}: expected {root}/cgroup.controllers (v2) or cpu, cpuacct, memory, pids directories (v1)")]
    NoHierarchies { root: PathBuf },
    /// Couldn't list the root.
    #[error("couldn't read cgroup root {root}: {source}")]
    ReadRoot { root: PathBuf, source: io::Error },
    /// A controller that a limit or a reading needs is not mounted.
    #[error("no {controller} controller under {root}, needed for {purpose}")]
    MissingController {
        controller: &'static str,
        root: PathBuf,
        purpose: &'static str,
    },
    /// The leaf cgroup is already there.
    #[error("cgroup {path} already exists (left over from an earlier run? `nfvhost destroy` removes it)")]
    AlreadyExists { path: PathBuf },
    /// mkdir failed.
    #[error("couldn't create cgroup {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    /// No hierarchy has the cgroup.
    #[error("cgroup {rel_path} does not exist under {root}")]
    NotFound { rel_path: String, root: PathBuf },
    /// Reading a control file failed.
    #[error("couldn't read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// A control file held something unexpected.
    #[error("couldn't parse {path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
    /// Writing a control file failed.
    #[error("couldn't write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    /// rmdir of the leaf failed.
    #[error("couldn't remove cgroup {path}: {source} (are processes still in it?)")]
    Remove { path: PathBuf, source: io::Error },
}

type Result<T, E = CgroupError> = std::result::Result<T, E>;

/// One mounted hierarchy: its mount point and the controllers it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    pub mount: PathBuf,
    pub controllers: Vec<String>,
}

impl Hierarchy {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The cgroup hierarchies of one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupRoot {
    root: PathBuf,
    version: CgroupVersion,
    hierarchies: Vec<Hierarchy>,
}

impl CgroupRoot {
    /// Looks at `sysfs_root` (normally `/sys/fs/cgroup`): pure v2 if it has
    /// `cgroup.controllers`, otherwise the v1 hierarchies that carry `cpu`,
    /// `cpuacct`, `memory` and `pids` (each found by scanning, since `cpu`
    /// may be mounted as `cpu,cpuacct`).
    pub fn detect(sysfs_root: &Path) -> Result<CgroupRoot> {
        let controllers_file = sysfs_root.join("cgroup.controllers");
        if controllers_file.is_file() {
            let available = read_string(&controllers_file)?;
            let controllers = available
                .split_whitespace()
                .filter(|c| CONTROLLERS.contains(c))
                .map(str::to_owned)
                .collect();
            return Ok(CgroupRoot {
                root: sysfs_root.to_owned(),
                version: CgroupVersion::V2,
                hierarchies: vec![Hierarchy {
                    mount: sysfs_root.to_owned(),
                    controllers,
                }],
            });
        }

        let read_root = |source| CgroupError::ReadRoot {
            root: sysfs_root.to_owned(),
            source,
        };
        // (is a symlink, name, path): real directories first, so that a
        // `cpu -> cpu,cpuacct` symlink resolves to the directory itself.
        let mut entries: Vec<(bool, String, PathBuf)> = Vec::new();
        for entry in fs::read_dir(sysfs_root).map_err(read_root)? {
            let entry = entry.map_err(read_root)?;
            let path = entry.path();
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !path.is_dir() {
                continue;
            }
            let is_link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(false);
            entries.push((is_link, name, path));
        }
        entries.sort();

        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for controller in ["cpu", "cpuacct", "memory", "pids"] {
            let Some((_, _, path)) = entries
                .iter()
                .find(|(_, name, _)| name.split(',').any(|c| c == controller))
            else {
                continue;
            };
            if let Some(h) = hierarchies.iter_mut().find(|h| h.mount == *path) {
                h.controllers.push(controller.to_owned());
            } else {
                hierarchies.push(Hierarchy {
                    mount: path.clone(),
                    controllers: vec![controller.to_owned()],
                });
            }
        }
        if hierarchies.is_empty() {
            return Err(CgroupError::NoHierarchies {
                root: sysfs_root.to_owned(),
            });
        }
        Ok(CgroupRoot {
            root: sysfs_root.to_owned(),
            version: CgroupVersion::V1,
            hierarchies,
        })
    }

    /// v1 or v2.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The hierarchies a cgroup is created in (one for v2).
    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    /// Creates the cgroup `rel_path` (e.g. `nfvhost/<chain>/<vnf>`) in every
    /// hierarchy, with the missing parents, and applies `limits`. On v2 it
    /// enables the controllers in `cgroup.subtree_control` of the root and of
    /// each ancestor. Fails if the cgroup already exists; on failure, removes
    /// what it created.
    pub fn create(&self, rel_path: &str, limits: &Limits) -> Result<Cgroup> {
        let components = split_rel_path(rel_path)?;
        let resolved;
        let limits = match (limits.memory_bytes, limits.default_memory_bytes) {
            (None, Some(default)) if self.has_controller("memory") => {
                resolved = Limits {
                    memory_bytes: Some(default),
                    ..*limits
                };
                &resolved
            }
            _ => limits,
        };
        check_limits(limits)?;
        self.check_controllers_for(limits)?;
        let mut cgroup = Cgroup {
            version: self.version,
            rel_path: rel_path.to_owned(),
            dirs: Vec::new(),
        };
        let made = self
            .create_dirs(&components, &mut cgroup)
            .and_then(|()| cgroup.apply(limits));
        if let Err(err) = made {
            let _ = cgroup.remove();
            return Err(err);
        }
        Ok(cgroup)
    }

    /// Makes the directories in every hierarchy, recording each leaf in
    /// `cgroup`. If a mkdir fails, removes every directory it made (deepest
    /// first) before returning the error.
    fn create_dirs(&self, components: &[&str], cgroup: &mut Cgroup) -> Result<()> {
        let mut made: Vec<PathBuf> = Vec::new();
        let result = self.create_dirs_inner(components, cgroup, &mut made);
        if result.is_err() {
            for dir in made.iter().rev() {
                let _ = fs::remove_dir(dir);
            }
            cgroup.dirs.clear();
        }
        result
    }

    fn create_dirs_inner(
        &self,
        components: &[&str],
        cgroup: &mut Cgroup,
        made: &mut Vec<PathBuf>,
    ) -> Result<()> {
        for hierarchy in &self.hierarchies {
            let mut path = hierarchy.mount.clone();
            let mut created_levels = 0;
            for (depth, component) in components.iter().enumerate() {
                if self.version == CgroupVersion::V2 {
                    enable_controllers(&path, &hierarchy.controllers)?;
                }
                path.push(component);
                let is_leaf = depth + 1 == components.len();
                match fs::create_dir(&path) {
                    Ok(()) => {
                        made.push(path.clone());
                        if created_levels == 0 {
                            created_levels = components.len() - depth;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !is_leaf => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(CgroupError::AlreadyExists { path });
                    }
                    Err(source) => return Err(CgroupError::Create { path, source }),
                }
            }
            cgroup.dirs.push(CgroupDir {
                hierarchy: hierarchy.clone(),
                path,
                created_levels,
            });
        }
        Ok(())
    }

    /// Reopens an existing cgroup, e.g. for `destroy`. Since it cannot know
    /// which parents a past run created, [`Cgroup::remove`] will also remove
    /// every ancestor named in `rel_path` that is empty by then.
    pub fn open(&self, rel_path: &str) -> Result<Cgroup> {
        let components = split_rel_path(rel_path)?;
        let dirs: Vec<CgroupDir> = self
            .hierarchies
            .iter()
            .map(|h| CgroupDir {
                hierarchy: h.clone(),
                path: h.mount.join(rel_path),
                created_levels: components.len(),
            })
            .filter(|d| d.path.is_dir())
            .collect();
        if dirs.is_empty() {
            return Err(CgroupError::NotFound {
                rel_path: rel_path.to_owned(),
                root: self.root.clone(),
            });
        }
        Ok(Cgroup {
            version: self.version,
            rel_path: rel_path.to_owned(),
            dirs,
        })
    }

    /// Whether some hierarchy has `controller` (e.g. `memory`).
    pub fn has_controller(&self, controller: &str) -> bool {
        self.hierarchies.iter().any(|h| h.has(controller))
    }

    fn check_controllers_for(&self, limits: &Limits) -> Result<()> {
        let needs = [
            ("cpu", limits.cpu_cores.is_some(), "a CPU limit"),
            ("memory", limits.memory_bytes.is_some(), "a memory limit"),
            ("pids", limits.pids.is_some(), "a pids limit"),
        ];
        for (controller, needed, purpose) in needs {
            if needed && !self.hierarchies.iter().any(|h| h.has(controller)) {
                return Err(CgroupError::MissingController {
                    controller,
                    root: self.root.clone(),
                    purpose,
                });
            }
        }
        Ok(())
    }
}

/// The cgroup directory in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CgroupDir {
    hierarchy: Hierarchy,
    path: PathBuf,
    /// How many levels, counting the leaf, this cgroup created (and so may
    /// remove): 1 means only the leaf.
    created_levels: usize,
}

/// One VNF's cgroup, present in one (v2) or several (v1) hierarchies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    version: CgroupVersion,
    rel_path: String,
    dirs: Vec<CgroupDir>,
}

impl Cgroup {
    /// v1 or v2.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The path relative to each hierarchy's mount.
    pub fn rel_path(&self) -> &str {
        &self.rel_path
    }

    /// The cgroup's directory in every hierarchy.
    pub fn paths(&self) -> Vec<&Path> {
        self.dirs.iter().map(|d| d.path.as_path()).collect()
    }

    /// Moves process `pid` (all its threads) into the cgroup, in every
    /// hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for dir in &self.dirs {
            write_file(&dir.path.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The processes in the cgroup.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let Some(dir) = self.dirs.first() else {
            return Ok(Vec::new());
        };
        let path = dir.path.join("cgroup.procs");
        let content = match fs::read_to_string(&path) {
            Ok(content) => content,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(CgroupError::Read { path, source }),
        };
        content
            .split_whitespace()
            .map(|pid| {
                pid.parse().map_err(|_| CgroupError::Parse {
                    path: path.clone(),
                    content: content.clone(),
                })
            })
            .collect()
    }

    /// CPU time and memory used (v2: `cpu.stat` `usage_usec` and
    /// `memory.current`; v1: `cpuacct.usage` and `memory.usage_in_bytes`).
    pub fn usage(&self) -> Result<CgroupUsage> {
        match self.version {
            CgroupVersion::V2 => {
                let dir = &self.dir_with("cpu", "CPU usage")?.path;
                let path = dir.join("cpu.stat");
                let stat = read_string(&path)?;
                let usec = stat
                    .lines()
                    .find_map(|line| line.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| CgroupError::Parse {
                        path: path.clone(),
                        content: stat.clone(),
                    })?;
                let memory = read_u64(
                    &self
                        .dir_with("memory", "memory usage")?
                        .path
                        .join("memory.current"),
                )?;
                Ok(CgroupUsage {
                    cpu_ns: usec.saturating_mul(1000),
                    memory_bytes: memory,
                })
            }
            CgroupVersion::V1 => Ok(CgroupUsage {
                cpu_ns: read_u64(
                    &self
                        .dir_with("cpuacct", "CPU usage")?
                        .path
                        .join("cpuacct.usage"),
                )?,
                memory_bytes: read_u64(
                    &self
                        .dir_with("memory", "memory usage")?
                        .path
                        .join("memory.usage_in_bytes"),
                )?,
            }),
        }
    }

    /// Removes the cgroup: its directory in every hierarchy, then the parents
    /// it created, as long as they are empty. Never kills anything: if
    /// processes are still inside, the leaf's rmdir fails and this says so.
    /// Removing a cgroup that is already gone is not an error.
    pub fn remove(&self) -> Result<()> {
        let mut first_error = None;
        for dir in &self.dirs {
            match fs::remove_dir(&dir.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    first_error.get_or_insert(CgroupError::Remove {
                        path: dir.path.clone(),
                        source,
                    });
                    continue;
                }
            }
            // Parents: best effort, stop at the first one still in use.
            let mut parent = dir.path.parent();
            for _ in 1..dir.created_levels {
                let Some(p) = parent else { break };
                match fs::remove_dir(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(_) => break,
                }
                parent = p.parent();
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Writes `limits` to the control files.
    fn apply(&self, limits: &Limits) -> Result<()> {
        let quota = limits.cpu_cores.map(cpu_quota_us);
        match self.version {
            CgroupVersion::V2 => {
                let dir = self.dirs.first().map(|d| d.path.as_path());
                let Some(dir) = dir else { return Ok(()) };
                if let Some(quota) = quota {
                    write_file(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                }
                if let Some(bytes) = limits.memory_bytes {
                    write_file(&dir.join("memory.max"), &bytes.to_string())?;
                }
                if let Some(pids) = limits.pids {
                    write_file(&dir.join("pids.max"), &pids.to_string())?;
                }
            }
            CgroupVersion::V1 => {
                if let Some(quota) = quota {
                    let dir = &self.dir_with("cpu", "a CPU limit")?.path;
                    write_file(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                if let Some(bytes) = limits.memory_bytes {
                    let dir = &self.dir_with("memory", "a memory limit")?.path;
                    write_file(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
                }
                if let Some(pids) = limits.pids {
                    let dir = &self.dir_with("pids", "a pids limit")?.path;
                    write_file(&dir.join("pids.max"), &pids.to_string())?;
                }
            }
        }
        Ok(())
    }

    fn dir_with(&self, controller: &'static str, purpose: &'static str) -> Result<&CgroupDir> {
        self.dirs
            .iter()
            .find(|d| d.hierarchy.has(controller))
            .ok_or_else(|| CgroupError::MissingController {
                controller,
                root: self
                    .dirs
                    .first()
                    .and_then(|d| d.hierarchy.mount.parent())
                    .map(Path::to_owned)
                    .unwrap_or_default(),
                purpose,
            })
    }
}

/// The CFS quota for `cores` over [`CPU_PERIOD_US`].
fn cpu_quota_us(cores: f64) -> u64 {
    let quota = (cores * CPU_PERIOD_US as f64).round() as u64;
    quota.max(MIN_CPU_QUOTA_US)
}

fn check_limits(limits: &Limits) -> Result<()> {
    if let Some(cores) = limits.cpu_cores {
        if !cores.is_finite() || cores <= 0.0 {
            return Err(CgroupError::InvalidLimit {
                what: "CPU",
                value: cores.to_string(),
                reason: "it must be a positive number of cores",
            });
        }
    }
    if limits.pids == Some(0) {
        return Err(CgroupError::InvalidLimit {
            what: "pids",
            value: "0".into(),
            reason: "the worker itself needs at least one",
        });
    }
    Ok(())
}

/// Enables our controllers in `dir/cgroup.subtree_control` unless they are
/// already on.
fn enable_controllers(dir: &Path, controllers: &[String]) -> Result<()> {
    let path = dir.join("cgroup.subtree_control");
    let enabled = match fs::read_to_string(&path) {
        Ok(content) => content,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(CgroupError::Read { path, source }),
    };
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| {
            !enabled
                .split_whitespace()
                .any(|e| e == *c || e == format!("+{c}"))
        })
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write_file(&path, &missing.join(" "))
}

fn split_rel_path(rel_path: &str) -> Result<Vec<&str>> {
    let invalid = |reason| CgroupError::InvalidPath {
        rel_path: rel_path.to_owned(),
        reason,
    };
    if rel_path.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut components = Vec::new();
    for component in Path::new(rel_path).components() {
        match component {
            Component::Normal(c) => {
                components.push(c.to_str().ok_or_else(|| invalid("it is not UTF-8"))?)
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid("it must be relative"))
            }
            Component::CurDir | Component::ParentDir => {
                return Err(invalid("it must not contain . or .."))
            }
        }
    }
    if rel_path.split('/').any(str::is_empty) {
        return Err(invalid("it has an empty component"));
    }
    Ok(components)
}

fn read_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_u64(path: &Path) -> Result<u64> {
    let content = read_string(path)?;
    content.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_owned(),
        content,
    })
}

fn write_file(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Removes the regular files our code wrote, which cgroupfs would not
    /// let a plain rmdir trip over, so that `remove` can be tested on tmpfs.
    fn strip_files(dir: &Path) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                strip_files(&path);
            } else {
                fs::remove_file(&path).unwrap();
            }
        }
    }

    fn v2_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )
        .unwrap();
        fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        dir
    }

    /// Separate hierarchies, like this VM (cpu and cpuacct apart).
    fn v1_root_split() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for h in [
            "blkio", "cpu", "cpuacct", "cpuset", "memory", "pids", "systemd", "unified",
        ] {
            fs::create_dir(dir.path().join(h)).unwrap();
        }
        fs::write(dir.path().join("unified/cgroup.controllers"), "").unwrap();
        dir
    }

    /// `cpu,cpuacct` co-mounted with `cpu` and `cpuacct` symlinks, like
    /// systemd sets it up.
    fn v1_root_comounted() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for h in ["cpu,cpuacct", "memory", "pids", "net_cls,net_prio"] {
            fs::create_dir(dir.path().join(h)).unwrap();
        }
        std::os::unix::fs::symlink("cpu,cpuacct", dir.path().join("cpu")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", dir.path().join("cpuacct")).unwrap();
        dir
    }

    const LIMITS: Limits = Limits {
        cpu_cores: Some(0.5),
        memory_bytes: Some(64 << 20),
        default_memory_bytes: None,
        pids: Some(32),
    };

    #[test]
    fn v2_create_writes_limits_and_enables_controllers() {
        let root = v2_root();
        let cg_root = CgroupRoot::detect(root.path()).unwrap();
        assert_eq!(cg_root.version(), CgroupVersion::V2);
        let cg = cg_root.create("nfvhost/edge/fw", &LIMITS).unwrap();
        let leaf = root.path().join("nfvhost/edge/fw");
        assert_eq!(cg.paths(), vec![leaf.as_path()]);
        assert_eq!(read(&leaf.join("cpu.max")), "50000 100000");
        assert_eq!(read(&leaf.join("memory.max")), "67108864");
        assert_eq!(read(&leaf.join("pids.max")), "32");
        for ancestor in ["", "nfvhost", "nfvhost/edge"] {
            let control = root.path().join(ancestor).join("cgroup.subtree_control");
            assert_eq!(
                read(&control),
                "+cpu +memory +pids",
                "{}",
                control.display()
            );
        }
        assert!(
            !leaf.join("cgroup.subtree_control").exists(),
            "the leaf holds processes"
        );
    }

    #[test]
    fn v2_skips_controllers_already_enabled_and_unavailable() {
        let root = v2_root();
        fs::write(root.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        fs::write(root.path().join("cgroup.subtree_control"), "cpu\n").unwrap();
        let cg_root = CgroupRoot::detect(root.path()).unwrap();
        cg_root.create("nfvhost/a", &Limits::default()).unwrap();
        assert_eq!(read(&root.path().join("cgroup.subtree_control")), "+memory");
        let err = cg_root
            .create(
                "nfvhost/b",
                &Limits {
                    pids: Some(5),
                    ..Limits::default()
                },
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::MissingController {
                    controller: "pids",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!root.path().join("nfvhost/b").exists());
    }

    #[test]
    fn v2_usage_reads_cpu_stat_and_memory_current() {
        let root = v2_root();
        let cg = CgroupRoot::detect(root.path())
            .unwrap()
            .create("nfvhost/c/v", &Limits::default())
            .unwrap();
        let leaf = root.path().join("nfvhost/c/v");
        fs::write(
            leaf.join("cpu.stat"),
            "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n",
        )
        .unwrap();
        fs::write(leaf.join("memory.current"), "4096\n").unwrap();
        assert_eq!(
            cg.usage().unwrap(),
            CgroupUsage {
                cpu_ns: 1_234_000,
                memory_bytes: 4096
            }
        );
    }

    #[test]
    fn v1_split_hierarchies() {
        let root = v1_root_split();
        let cg_root = CgroupRoot::detect(root.path()).unwrap();
        assert_eq!(cg_root.version(), CgroupVersion::V1);
        let mounts: Vec<_> = cg_root
            .hierarchies()
            .iter()
            .map(|h| h.mount.clone())
            .collect();
        let expect: Vec<_> = ["cpu", "cpuacct", "memory", "pids"]
            .iter()
            .map(|h| root.path().join(h))
            .collect();
        assert_eq!(mounts, expect);

        let cg = cg_root.create("nfvhost/edge/fw", &LIMITS).unwrap();
        let dir = |h: &str| root.path().join(h).join("nfvhost/edge/fw");
        assert_eq!(read(&dir("cpu").join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(&dir("cpu").join("cpu.cfs_quota_us")), "50000");
        assert_eq!(
            read(&dir("memory").join("memory.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(read(&dir("pids").join("pids.max")), "32");
        assert!(dir("cpuacct").is_dir(), "cpuacct is joined for accounting");
        assert!(!root.path().join("blkio/nfvhost").exists());
        assert!(!root.path().join("unified/nfvhost").exists());

        cg.add_process(4242).unwrap();
        for h in ["cpu", "cpuacct", "memory", "pids"] {
            assert_eq!(read(&dir(h).join("cgroup.procs")), "4242");
        }
        assert_eq!(cg.procs().unwrap(), vec![4242]);

        fs::write(dir("cpuacct").join("cpuacct.usage"), "987654321\n").unwrap();
        fs::write(dir("memory").join("memory.usage_in_bytes"), "8192\n").unwrap();
        assert_eq!(
            cg.usage().unwrap(),
            CgroupUsage {
                cpu_ns: 987_654_321,
                memory_bytes: 8192
            }
        );
    }

    #[test]
    fn v1_comounted_cpu_cpuacct() {
        let root = v1_root_comounted();
        let cg_root = CgroupRoot::detect(root.path()).unwrap();
        let h = cg_root.hierarchies();
        assert_eq!(h.len(), 3, "{h:?}");
        assert_eq!(h[0].mount, root.path().join("cpu,cpuacct"));
        assert_eq!(h[0].controllers, ["cpu", "cpuacct"]);
        let cg = cg_root
            .create(
                "nfvhost/x/y",
                &Limits {
                    cpu_cores: Some(2.0),
                    ..Limits::default()
                },
            )
            .unwrap();
        let leaf = root.path().join("cpu,cpuacct/nfvhost/x/y");
        assert_eq!(read(&leaf.join("cpu.cfs_quota_us")), "200000");
        fs::write(leaf.join("cpuacct.usage"), "5").unwrap();
        fs::write(
            root.path().join("memory/nfvhost/x/y/memory.usage_in_bytes"),
            "6",
        )
        .unwrap();
        assert_eq!(
            cg.usage().unwrap(),
            CgroupUsage {
                cpu_ns: 5,
                memory_bytes: 6
            }
        );
    }

    #[test]
    fn remove_takes_created_parents_but_not_shared_ones() {
        let root = v2_root();
        let cg_root = CgroupRoot::detect(root.path()).unwrap();
        let a = cg_root.create("nfvhost/edge/a", &LIMITS).unwrap();
        let b = cg_root.create("nfvhost/edge/b", &LIMITS).unwrap();
        strip_files(&root.path().join("nfvhost"));
        // b did not create nfvhost/edge, so it leaves it.
        b.remove().unwrap();
        assert!(!root.path().join("nfvhost/edge/b").exists());
        assert!(root.path().join("nfvhost/edge/a").exists());
        // a created both parents; they are empty now, so they go too.
        a.remove().unwrap();
        assert!(!root.path().join("nfvhost").exists());
        // Idempotent.
        a.remove().unwrap();
        b.remove().unwrap();
    }

    #[test]
    fn remove_refuses_a_busy_leaf() {
        let root = v1_root_split();
        let cg = CgroupRoot::detect(root.path())
            .unwrap()
            .create("nfvhost/c/v", &LIMITS)
            .unwrap();
        // On tmpfs the files play the part of processes still inside.
        let err = cg.remove().unwrap_err();
        assert!(matches!(err, CgroupError::Remove { .. }), "{err}");
        assert!(err.to_string().contains("nfvhost/c/v"), "{err}");
    }

    #[test]
    fn create_refuses_existing_leaf_and_cleans_up() {
        let root = v1_root_split();
        fs::create_dir_all(root.path().join("pids/nfvhost/c/v")).unwrap();
        let cg_root = CgroupRoot::detect(root.path()).unwrap();
        let err = cg_root.create("nfvhost/c/v", &LIMITS).unwrap_err();
        assert!(matches!(err, CgroupError::AlreadyExists { .. }), "{err}");
        for h in ["cpu", "cpuacct", "memory"] {
            assert!(
                !root.path().join(h).join("nfvhost").exists(),
                "{h} left behind"
            );
        }
        assert!(
            root.path().join("pids/nfvhost/c/v").exists(),
            "not ours to remove"
        );
    }

    #[test]
    fn serializes_as_paths_and_reopens() {
        let root = v2_root();
        let cg_root = CgroupRoot::detect(root.path()).unwrap();
        let cg = cg_root.create("nfvhost/edge/fw", &LIMITS).unwrap();
        let json = serde_json::to_string(&cg).unwrap();
        assert!(
            json.contains(&*root.path().join("nfvhost/edge/fw").to_string_lossy()),
            "{json}"
        );
        let back: Cgroup = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cg);
        let reopened = cg_root.open("nfvhost/edge/fw").unwrap();
        assert_eq!(reopened.paths(), cg.paths());
        strip_files(&root.path().join("nfvhost"));
        reopened.remove().unwrap();
        assert!(!root.path().join("nfvhost").exists());
        assert!(matches!(
            cg_root.open("nfvhost/edge/fw"),
            Err(CgroupError::NotFound { .. })
        ));
    }

    #[test]
    fn bad_paths_and_limits_are_refused() {
        let root = v2_root();
        let cg_root = CgroupRoot::detect(root.path()).unwrap();
        for bad in ["", "/abs", "a/../b", "a//b", "./a", "a/"] {
            assert!(
                matches!(
                    cg_root.create(bad, &Limits::default()),
                    Err(CgroupError::InvalidPath { .. })
                ),
                "{bad:?} accepted"
            );
        }
        for cores in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let limits = Limits {
                cpu_cores: Some(cores),
                ..Limits::default()
            };
            assert!(matches!(
                cg_root.create("x", &limits),
                Err(CgroupError::InvalidLimit { .. })
            ));
        }
        assert_eq!(cpu_quota_us(0.001), MIN_CPU_QUOTA_US);
        assert!(matches!(
            CgroupRoot::detect(root.path().join("nope").as_path()),
            Err(CgroupError::ReadRoot { .. })
        ));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            CgroupRoot::detect(empty.path()),
            Err(CgroupError::NoHierarchies { .. })
        ));
    }
}
