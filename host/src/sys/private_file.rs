//! Root-only files and directories for state, logs and the compile cache:
//! directories 0700, files 0600, never following a symlink at the last
//! component, replaced atomically through a uniquely named temporary file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a private path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// Couldn't {op} {path}: {source}
    #[error("couldn't {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The path exists but is not what it should be.
    #[error("{path} is {found}; expected {expected}")]
    Unexpected {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
}

type Result<T> = std::result::Result<T, PrivateFileError>;

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PrivateFileError + 'a {
    move |source| PrivateFileError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` (and missing parents) as a 0700 directory owned by us, or
/// checks that an existing one is a real directory (not a symlink) owned by
/// us, and tightens its mode to 0700.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(io("create directory", dir)(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io("inspect", dir))?;
    if !meta.file_type().is_dir() {
        return Err(PrivateFileError::Unexpected {
            path: dir.to_owned(),
            found: "not a directory (a symlink?)".into(),
            expected: "a directory",
        });
    }
    if meta.uid() != current_uid() {
        return Err(PrivateFileError::Unexpected {
            path: dir.to_owned(),
            found: format!("owned by uid {}", meta.uid()),
            expected: "a directory owned by the user running nfvhost",
        });
    }
    if meta.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("chmod", dir))?;
    }
    Ok(())
}

/// The effective uid.
fn current_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn options(mode: u32) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    o
}

/// Creates or truncates `path` as a 0600 file, refusing a symlink.
pub fn create(path: &Path) -> Result<File> {
    options(0o600)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io("create", path))
}

/// Opens `path` for appending (created 0600), refusing a symlink.
pub fn open_append(path: &Path) -> Result<File> {
    options(0o600)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io("open", path))
}

/// Opens `path` for reading, refusing a symlink.
pub fn open_read(path: &Path) -> Result<File> {
    options(0).read(true).open(path).map_err(io("open", path))
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically: written to a fresh temporary
/// file (O_EXCL, unique name) in the same directory with `mode`, synced,
/// then renamed over `path`. A reader sees the old or the new file, never
/// a torn one, and nothing at a guessed temporary name is followed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Relaxed)
    ));
    let result = (|| {
        let mut f = options(mode)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        f.write_all(bytes).map_err(io("write", &tmp))?;
        f.sync_data().map_err(io("sync", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("rename into place", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "nfvhost-private-{}-{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn files_are_0600_dirs_0700_and_symlinks_refused() {
        let d = tmpdir();
        let sub = d.join("state");
        ensure_dir(&sub).unwrap();
        let meta = std::fs::metadata(&sub).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);

        let f = sub.join("state.json");
        write_atomic(&f, b"{}", 0o600).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&f).unwrap(), b"{}");
        // Only the file itself is left: no temporary behind.
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);

        let target = d.join("victim");
        std::fs::write(&target, b"keep").unwrap();
        let link = sub.join("x.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_append(&link).is_err());
        assert!(create(&link).is_err());
        assert!(open_read(&link).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");

        // A symlinked directory is not accepted as ours.
        let dlink = d.join("dirlink");
        std::os::unix::fs::symlink(&sub, &dlink).unwrap();
        assert!(ensure_dir(&dlink).is_err());

        // write_atomic replaces a symlink (rename), never writes through it.
        write_atomic(&link, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
