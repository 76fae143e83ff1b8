//! Named network namespaces, compatible with `ip netns`.
//!
//! A namespace called `x` is kept alive by a bind mount of its nsfs inode on
//! `/run/netns/x`, exactly as iproute2 does, so `ip netns exec x ...` works
//! on everything nfvhost creates and vice versa.
//!
//! Nothing here changes the namespace of the calling thread except
//! [`NetNs::enter_current_thread`]: [`NetNs::create`] and [`NetNs::run`] do
//! their work on a dedicated thread.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use super::ifreq;

/// Where named namespaces are mounted (the iproute2 convention).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// How messages name the namespace nfvhost itself runs in ([`NetNs::own`]).
pub const OWN_NETNS: &str = "(nfvhost's own)";

/// What went wrong with a named network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    /// The name cannot be a file name under /run/netns.
    #[error("{name:?} is not a valid network namespace name: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// Couldn't create /run/netns or make it a shared mount.
    #[error("couldn't prepare {dir} for namespace mounts: {source}")]
    PrepareRunDir { dir: PathBuf, source: io::Error },
    /// A namespace by that name is already there.
    #[error("network namespace {name} already exists")]
    AlreadyExists { name: String },
    /// Couldn't create the file the namespace is mounted on.
    #[error("couldn't create mount point {path} for network namespace {name}: {source}")]
    CreateMountPoint {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    /// Couldn't start a thread to work in the namespace.
    #[error("couldn't spawn a thread for network namespace {name}: {source}")]
    SpawnThread { name: String, source: io::Error },
    /// unshare(CLONE_NEWNET) failed.
    #[error("couldn't unshare a new network namespace for {name}: {source}")]
    Unshare { name: String, source: Errno },
    /// Couldn't bind-mount the new namespace onto its file.
    #[error("couldn't bind-mount network namespace {name} onto {path}: {source}")]
    BindMount {
        name: String,
        path: PathBuf,
        source: Errno,
    },
    /// Couldn't set `lo` up in a new namespace.
    #[error("couldn't bring lo up in network namespace {name}: {source}")]
    LoopbackUp { name: String, source: io::Error },
    /// Couldn't open /run/netns/<name>.
    #[error("couldn't open network namespace {name} at {path}: {source}")]
    Open {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    /// /run/netns/<name> exists but nothing is mounted on it.
    #[error("{path} is not a mounted network namespace (a leftover from a failed create?)")]
    NotANamespace { name: String, path: PathBuf },
    /// umount of /run/netns/<name> failed.
    #[error("couldn't unmount network namespace {name} from {path}: {source}")]
    Unmount {
        name: String,
        path: PathBuf,
        source: Errno,
    },
    /// Couldn't remove /run/netns/<name> after unmounting it.
    #[error("couldn't remove {path} for network namespace {name}: {source}")]
    RemoveMountPoint {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    /// setns() into the namespace failed.
    #[error("couldn't enter network namespace {name}: {source}")]
    Enter { name: String, source: Errno },
}

type Result<T, E = NetNsError> = std::result::Result<T, E>;

/// An open handle on a named network namespace.
///
/// Dropping it closes the file descriptor only; the namespace lives on until
/// [`NetNs::delete`].
#[derive(Debug)]
pub struct NetNs {
    name: String,
    path: PathBuf,
    file: File,
}

impl NetNs {
    /// Creates the named namespace, mounts it on /run/netns/`name` and
    /// brings its `lo` up. Fails if the name is taken.
    pub fn create(name: &str) -> Result<NetNs> {
        check_name(name)?;
        prepare_run_dir()?;
        let path = ns_path(name);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&path)
            .map_err(|source| {
                if source.kind() == io::ErrorKind::AlreadyExists {
                    NetNsError::AlreadyExists {
                        name: name.to_owned(),
                    }
                } else {
                    NetNsError::CreateMountPoint {
                        name: name.to_owned(),
                        path: path.clone(),
                        source,
                    }
                }
            })?;

        let made = std::thread::scope(|s| {
            let worker = std::thread::Builder::new()
                .name("netns-create".into())
                .spawn_scoped(s, || make_namespace(name, &path))
                .map_err(|source| NetNsError::SpawnThread {
                    name: name.to_owned(),
                    source,
                })?;
            match worker.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        });
        if let Err(err) = made {
            // Best effort: leave nothing behind. The error we report is the
            // one that made creation fail.
            let _ = Self::delete(name);
            return Err(err);
        }
        Self::open(name)
    }

    /// Opens an existing named namespace.
    pub fn open(name: &str) -> Result<NetNs> {
        check_name(name)?;
        let path = ns_path(name);
        let file = File::open(&path).map_err(|source| NetNsError::Open {
            name: name.to_owned(),
            path: path.clone(),
            source,
        })?;
        let is_nsfs = fstatfs(&file)
            .map(|st| st.filesystem_type() == NSFS_MAGIC)
            .unwrap_or(false);
        if !is_nsfs {
            return Err(NetNsError::NotANamespace {
                name: name.to_owned(),
                path,
            });
        }
        Ok(NetNs {
            name: name.to_owned(),
            path,
            file,
        })
    }

    /// The namespace this process runs in (its main thread's; threads that
    /// entered another namespace do not change it): the underlay of VXLAN
    /// links. Named [`OWN_NETNS`] in messages.
    pub fn own() -> Result<NetNs> {
        let path = PathBuf::from("/proc/self/ns/net");
        let file = File::open(&path).map_err(|source| NetNsError::Open {
            name: OWN_NETNS.to_owned(),
            path: path.clone(),
            source,
        })?;
        Ok(NetNs {
            name: OWN_NETNS.to_owned(),
            path,
            file,
        })
    }

    /// Deletes the named namespace: unmounts and removes /run/netns/`name`.
    /// A namespace that is not there is not an error. Interfaces inside go
    /// away once the last process or fd holding the namespace is gone.
    pub fn delete(name: &str) -> Result<()> {
        check_name(name)?;
        let path = ns_path(name);
        match umount2(&path, MntFlags::MNT_DETACH) {
            // EINVAL: not a mount point (a leftover file); ENOENT: gone.
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(source) => {
                return Err(NetNsError::Unmount {
                    name: name.to_owned(),
                    path,
                    source,
                })
            }
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetNsError::RemoveMountPoint {
                name: name.to_owned(),
                path,
                source,
            }),
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the namespace is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace file, for `setns` or `IFLA_NET_NS_FD`.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns
    /// its result. Sockets `f` opens belong to the namespace and keep doing
    /// so after the thread ends. A panic in `f` is resumed on the caller.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        std::thread::scope(|s| {
            let worker = std::thread::Builder::new()
                .name("netns-run".into())
                .spawn_scoped(s, || {
                    self.enter_current_thread()?;
                    Ok(f())
                })
                .map_err(|source| NetNsError::SpawnThread {
                    name: self.name.clone(),
                    source,
                })?;
            match worker.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Moves the calling thread into this namespace for good. Meant for a
    /// worker process, which does this once on its main thread before it
    /// starts others (new threads inherit the namespace).
    pub fn enter_current_thread(&self) -> Result<()> {
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|source| NetNsError::Enter {
            name: self.name.clone(),
            source,
        })
    }
}

/// Names of the namespaces under /run/netns, sorted. Empty if there are
/// none or the directory cannot be read.
pub fn list() -> Vec<String> {
    let Ok(entries) = fs::read_dir(NETNS_RUN_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Whether a namespace by that name is mounted under /run/netns.
pub fn exists(name: &str) -> bool {
    NetNs::open(name).is_ok()
}

fn ns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "it is . or .."
    } else if name.contains('/') || name.contains('\0') {
        "it contains '/' or NUL"
    } else if name.len() > 255 {
        "it is longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(NetNsError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Makes /run/netns exist and be a shared mount, so that namespace mounts
/// under it propagate to every mount namespace (what `ip netns add` does).
fn prepare_run_dir() -> Result<()> {
    let dir = Path::new(NETNS_RUN_DIR);
    let fail = |source: io::Error| NetNsError::PrepareRunDir {
        dir: dir.to_owned(),
        source,
    };
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(e)),
    }
    let mut bound = false;
    loop {
        match mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            // Not a mount point yet: bind it onto itself, then retry.
            Err(Errno::EINVAL) if !bound => {
                mount(
                    Some(dir),
                    dir,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| fail(e.into()))?;
                bound = true;
            }
            Err(e) => return Err(fail(e.into())),
        }
    }
}

/// Runs on a dedicated thread: unshares a fresh network namespace, pins it
/// on `path`, and brings `lo` up inside it.
fn make_namespace(name: &str, path: &Path) -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|source| NetNsError::Unshare {
        name: name.to_owned(),
        source,
    })?;
    mount(
        Some("/proc/thread-self/ns/net"),
        path,
        Some("none"),
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|source| NetNsError::BindMount {
        name: name.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    ifreq::set_up_by_ioctl("lo").map_err(|source| NetNsError::LoopbackUp {
        name: name.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("nfvt-a").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(
                matches!(check_name(bad), Err(NetNsError::InvalidName { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(NetNs::delete("../etc").is_err());
    }

    #[test]
    fn opening_a_missing_namespace_says_which() {
        let err = NetNs::open("nfvt-surely-not-there").unwrap_err();
        assert!(err.to_string().contains("nfvt-surely-not-there"), "{err}");
        assert!(!exists("nfvt-surely-not-there"));
    }
}
