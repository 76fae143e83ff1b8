//! One deploy or destroy of a chain at a time: an exclusive `flock` on
//! `<run dir>/<chain>.lock`, taken without waiting; the kernel drops the
//! lock when its holder exits, however it exits. `destroy` removes the lock
//! file while holding it; so that two processes never hold locks on two
//! different files, a lock is only good once the path still names the file
//! that was locked (otherwise the file was removed meanwhile: open again).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::state::run_dir;
use crate::chain::names::{self, BadName, NameKind};
use crate::sys::private_file::{self, PrivateFileError};

/// Why a chain could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another deploy or destroy of the chain holds the lock.
    #[error(
        "deploy of {0} in progress (another nfvhost holds its lock); try again when it is done"
    )]
    InProgress(String),
    #[error(transparent)]
    Name(#[from] BadName),
    #[error(transparent)]
    File(#[from] PrivateFileError),
    /// Couldn't lock {path}: {source}
    #[error("couldn't lock {path}: {source}")]
    Lock {
        path: String,
        source: nix::errno::Errno,
    },
}

/// Held while a chain is being deployed or destroyed; released on drop.
#[derive(Debug)]
pub struct ChainLock {
    lock: Flock<File>,
    path: PathBuf,
}

impl ChainLock {
    /// Locks `chain`, or fails at once with [`LockError::InProgress`].
    pub fn acquire(chain: &str) -> Result<ChainLock, LockError> {
        names::check_arg(NameKind::Chain, "chain name", chain)?;
        let dir = run_dir();
        private_file::ensure_dir(&dir)?;
        let path = dir.join(format!("{chain}.lock"));
        // A destroy may remove the file between our open and our lock; a
        // handful of tries is plenty, since each lost race needs a whole
        // deploy-destroy cycle by someone else.
        for _ in 0..8 {
            let file = private_file::open_append(&path)?;
            let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(LockError::InProgress(chain.into()))
                }
                Err((_, source)) => {
                    return Err(LockError::Lock {
                        path: path.display().to_string(),
                        source,
                    })
                }
            };
            if still_named_by(&lock, &path) {
                return Ok(ChainLock { lock, path });
            }
        }
        Err(LockError::InProgress(chain.into()))
    }

    /// Removes the lock file and releases the lock: for `destroy`, after
    /// which the chain leaves nothing behind in the run dir.
    pub fn release_and_remove(self) {
        // Removed while still locked: whoever opened the old file before
        // this sees, once it gets the lock, that the path no longer names it.
        let _ = std::fs::remove_file(&self.path);
        drop(self.lock);
    }
}

/// Whether `path` still names the file `lock` holds.
fn still_named_by(lock: &Flock<File>, path: &Path) -> bool {
    match (lock.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked(path: &Path) -> Flock<File> {
        let file = private_file::open_append(path).unwrap();
        Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap()
    }

    #[test]
    fn a_lock_is_good_only_while_its_path_names_the_locked_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lock");
        let lock = locked(&path);
        assert!(still_named_by(&lock, &path));

        // What a racing process sees after `destroy` removed the file...
        std::fs::remove_file(&path).unwrap();
        assert!(!still_named_by(&lock, &path));
        // ...and after the next deploy created a new one.
        let newer = locked(&path);
        assert!(!still_named_by(&lock, &path));
        assert!(still_named_by(&newer, &path));
    }

    #[test]
    fn release_and_remove_leaves_no_file_and_frees_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lock");
        let held = ChainLock {
            lock: locked(&path),
            path: path.clone(),
        };
        held.release_and_remove();
        assert!(!path.exists());
        let again = locked(&path);
        assert!(still_named_by(&again, &path));
    }
}
