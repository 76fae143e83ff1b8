//! One deploy or destroy of a chain at a time: an exclusive `flock` on
//! `<run dir>/<chain>.lock`, taken without waiting. The lock file is never
//! removed (removing it would let two processes lock two different files);
//! the kernel drops the lock when its holder exits, however it exits.

use std::fs::File;

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
    _lock: Flock<File>,
}

impl ChainLock {
    /// Locks `chain`, or fails at once with [`LockError::InProgress`].
    pub fn acquire(chain: &str) -> Result<ChainLock, LockError> {
        names::check_arg(NameKind::Chain, "chain name", chain)?;
        let dir = run_dir();
        private_file::ensure_dir(&dir)?;
        let path = dir.join(format!("{chain}.lock"));
        let file = private_file::open_append(&path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(ChainLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::InProgress(chain.into())),
            Err((_, source)) => Err(LockError::Lock {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}
