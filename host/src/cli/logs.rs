//! `nfvhost logs`: a VNF's or the supervisor's log, kept after `destroy`
//! until `destroy --cleanup`; `-f` follows it across rotation.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use nfvhost::chain::names::NameKind;
use nfvhost::deploy::state::{is_state_dir, vnf_log_path, ChainState};
use nfvhost::sys::private_file;

use super::{check_name, pick_chain, CliError, CliResult};

/// How often `-f` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub fn logs(chain: Option<String>, vnf: &str, tail: Option<usize>, follow: bool) -> CliResult {
    check_name(NameKind::Node, "VNF name", vnf)?;
    // A named chain may be destroyed with its logs kept; without a name,
    // the only deployed chain.
    let chain = match chain {
        Some(c) => {
            check_name(NameKind::Chain, "chain name", &c)?;
            c
        }
        None => pick_chain(None)?,
    };
    if !is_state_dir(&ChainState::dir(&chain), &chain) {
        return Err(CliError::usage(anyhow!(
            "chain {chain} is not deployed and has no logs kept"
        )));
    }
    let path = if vnf == "supervisor" {
        ChainState::dir(&chain).join("supervisor.log")
    } else {
        // The members of a fused group share their worker's log (while the
        // chain's state is there to say which group a VNF is in).
        let state = ChainState::load(&chain).ok().flatten();
        let unit = state
            .as_ref()
            .and_then(|s| s.vnfs.iter().find(|v| v.name == vnf))
            .map_or(vnf, nfvhost::deploy::supervisor::unit_name);
        vnf_log_path(&chain, unit)
    };
    let (history, file) = read_history(&path).map_err(|e| {
        CliError::usage(anyhow!(
            "no log for `{vnf}` in chain {chain} ({}: {e})",
            path.display()
        ))
    })?;
    let mut out = std::io::stdout().lock();
    let text = String::from_utf8_lossy(&history);
    let lines: Vec<&str> = text.lines().collect();
    let start = tail.map_or(0, |n| lines.len().saturating_sub(n));
    for line in &lines[start..] {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if !follow {
        return Ok(());
    }
    let mut follower = Follower::new(path, file)?;
    // Until Ctrl-C, or until `destroy --cleanup` removes the logs.
    while ChainState::dir(&chain).exists() {
        std::thread::sleep(FOLLOW_POLL);
        follower.poll(&mut out)?;
        out.flush()?;
    }
    Ok(())
}

/// The rotated predecessor of a log file (`<name>.log.1`).
fn rotated(path: &Path) -> PathBuf {
    let mut old = path.to_owned();
    old.as_mut_os_string().push(".1");
    old
}

/// The whole kept log (the rotated predecessor, then the current file),
/// and the current file positioned at its end. Opened without following a
/// symlink.
fn read_history(path: &Path) -> anyhow::Result<(Vec<u8>, File)> {
    let mut bytes = Vec::new();
    if let Ok(mut old) = private_file::open_read(&rotated(path)) {
        old.read_to_end(&mut bytes)?;
    }
    let mut file = private_file::open_read(path)?;
    file.read_to_end(&mut bytes)?;
    Ok((bytes, file))
}

/// Copies what is appended to a log file, across its rotation (the file
/// renamed away and a new one created at the path) and truncation.
struct Follower {
    path: PathBuf,
    file: File,
    inode: u64,
}

impl Follower {
    fn new(path: PathBuf, file: File) -> std::io::Result<Self> {
        let inode = file.metadata()?.ino();
        Ok(Follower { path, file, inode })
    }

    /// Writes what was added since the last call to `out`.
    fn poll(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        // The rest of the open file first: after a rotation it holds the
        // last lines written before the rename.
        let pos = self.file.stream_position()?;
        if self.file.metadata()?.len() < pos {
            self.file.seek(SeekFrom::Start(0))?;
        }
        std::io::copy(&mut self.file, out)?;
        let rotated = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() != self.inode);
        if rotated {
            if let Ok(file) = private_file::open_read(&self.path) {
                self.inode = file.metadata()?.ino();
                self.file = file;
                std::io::copy(&mut self.file, out)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_carries_on_across_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r1.log");
        std::fs::write(&path, "one\n").unwrap();
        let (history, file) = read_history(&path).unwrap();
        assert_eq!(history, b"one\n");
        let mut f = Follower::new(path.clone(), file).unwrap();
        let mut out = Vec::new();
        f.poll(&mut out).unwrap();
        assert!(out.is_empty());

        let append = |p: &Path, s: &str| {
            let mut w = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            w.write_all(s.as_bytes()).unwrap();
        };
        append(&path, "two\n");
        f.poll(&mut out).unwrap();
        assert_eq!(out, b"two\n");

        // The last line before the rename, then the new file.
        append(&path, "three\n");
        std::fs::rename(&path, rotated(&path)).unwrap();
        std::fs::write(&path, "four\n").unwrap();
        out.clear();
        f.poll(&mut out).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "three\nfour\n");

        // History spans the rotated file and the current one.
        let (history, _) = read_history(&path).unwrap();
        assert_eq!(String::from_utf8_lossy(&history), "one\ntwo\nthree\nfour\n");

        // Truncated in place: read from the start again.
        std::fs::write(&path, "5\n").unwrap();
        out.clear();
        f.poll(&mut out).unwrap();
        assert_eq!(out, b"5\n");
    }
}
