//! New parameters for a running worker without restarting it
//! (`nfvhost link set`): two root-only files next to the stats segment,
//! which the worker creates and keeps open *before* it enters its sandbox
//! (afterwards no path resolves and it could open nothing).
//!
//! - `<vnf>.reconfig`: the command writes the new init document here, then
//!   sends the worker SIGUSR1.
//! - `<vnf>.reconfig.result`: the worker answers `ok\n` or `error: ...\n`
//!   here; the command waits for the final newline.
//!
//! The worker only reads, truncates and writes the descriptors it holds
//! (`lseek`, `read`, `ftruncate`, `pwrite64`: all on its seccomp list;
//! nothing that would `fstat`, such as `read_to_end`). The command holds the
//! chain's lock, so requests never interleave. The files are replaced on
//! each worker start, so a stale request never reaches a new worker.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The largest init document a request may carry.
pub const MAX_REQUEST: usize = 1 << 20;

/// Where a request for the worker with stats segment `stats_path` goes.
pub fn request_path(stats_path: &Path) -> PathBuf {
    stats_path.with_extension("reconfig")
}

/// Where that worker answers.
pub fn result_path(stats_path: &Path) -> PathBuf {
    stats_path.with_extension("reconfig.result")
}

/// What went wrong delivering a request.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("couldn't {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the request is {len} bytes; at most {MAX_REQUEST} are accepted")]
    TooLarge { len: usize },
    #[error("the worker did not answer within {0:?} (in {1})")]
    NoAnswer(Duration, PathBuf),
}

/// The worker's side: both files, opened before the sandbox.
#[derive(Debug)]
pub struct ControlFiles {
    request: File,
    result: File,
}

impl ControlFiles {
    /// Creates (or empties) both files for the worker whose stats segment
    /// is `stats_path`.
    pub fn create(stats_path: &Path) -> Result<Self, ControlError> {
        let open = |path: PathBuf| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags_private()
                .open(&path)
                .map_err(|source| ControlError::Io {
                    op: "create",
                    path,
                    source,
                })
        };
        Ok(ControlFiles {
            request: open(request_path(stats_path))?,
            result: open(result_path(stats_path))?,
        })
    }

    /// The waiting request, emptied out of the file; `None` if there is
    /// none (a stray SIGUSR1).
    pub fn take_request(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.request.seek(SeekFrom::Start(0))?;
        let mut doc = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = self.request.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if doc.len() + n > MAX_REQUEST {
                self.request.set_len(0)?;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the request is longer than {MAX_REQUEST} bytes"),
                ));
            }
            doc.extend_from_slice(&buf[..n]);
        }
        if doc.is_empty() {
            return Ok(None);
        }
        self.request.set_len(0)?;
        Ok(Some(doc))
    }

    /// Answers the command: `Ok` as `ok`, an error as `error: ...`.
    pub fn answer(&mut self, outcome: &Result<(), String>) -> io::Result<()> {
        let text = match outcome {
            Ok(()) => "ok\n".to_owned(),
            Err(e) => format!("error: {}\n", e.replace('\n', " ")),
        };
        self.result.set_len(0)?;
        self.result.write_all_at(text.as_bytes(), 0)
    }
}

/// Private (0600, no symlink followed) creation flags for [`ControlFiles`].
trait PrivateOpen {
    fn custom_flags_private(&mut self) -> &mut Self;
}

impl PrivateOpen for std::fs::OpenOptions {
    fn custom_flags_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
    }
}

/// The command's side: writes `doc` for the worker of `stats_path`, calls
/// `signal` to wake it, and waits up to `wait` for its answer: `Ok(Ok(()))`
/// when it took the document, `Ok(Err(reason))` when it refused it.
pub fn request(
    stats_path: &Path,
    doc: &[u8],
    signal: impl FnOnce() -> io::Result<()>,
    wait: Duration,
) -> Result<Result<(), String>, ControlError> {
    if doc.len() > MAX_REQUEST {
        return Err(ControlError::TooLarge { len: doc.len() });
    }
    let request = request_path(stats_path);
    let result = result_path(stats_path);
    let io = |op, path: &Path| {
        let path = path.to_owned();
        move |source| ControlError::Io { op, path, source }
    };
    // Both exist while the worker runs; never created here (a file made
    // now would not be the one the worker holds).
    let open = |path: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags_private()
            .open(path)
            .map_err(io("open", path))
    };
    let (req, mut res) = (open(&request)?, open(&result)?);
    res.set_len(0).map_err(io("empty", &result))?;
    req.set_len(0).map_err(io("empty", &request))?;
    req.write_all_at(doc, 0).map_err(io("write", &request))?;
    signal().map_err(io("signal the worker of", stats_path))?;
    let deadline = Instant::now() + wait;
    loop {
        let mut text = String::new();
        res.seek(SeekFrom::Start(0)).map_err(io("read", &result))?;
        res.read_to_string(&mut text).map_err(io("read", &result))?;
        if let Some(answer) = text.strip_suffix('\n') {
            return Ok(match answer.strip_prefix("error: ") {
                Some(reason) => Err(reason.to_owned()),
                None => Ok(()),
            });
        }
        if Instant::now() > deadline {
            return Err(ControlError::NoAnswer(wait, result));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reaches_the_worker_and_its_answer_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let stats = dir.path().join("v.stats");
        let mut worker = ControlFiles::create(&stats).unwrap();
        assert_eq!(worker.take_request().unwrap(), None, "nothing yet");

        // The worker answers from another thread, as from its loop, when
        // the command's signal (here a channel) wakes it.
        let (wake, woken) = std::sync::mpsc::channel::<()>();
        let answers = std::thread::spawn(move || {
            for answer in [Ok(()), Err("a_to_b.loss: at most 100%".to_owned())] {
                woken.recv().unwrap();
                let doc = worker.take_request().unwrap().expect("a request");
                assert!(doc.starts_with(b"{\"config\""));
                worker.answer(&answer).unwrap();
            }
            worker
        });
        let signal = || wake.send(()).map_err(io::Error::other);
        let ok = request(&stats, b"{\"config\":1}", signal, Duration::from_secs(5));
        assert_eq!(ok.unwrap(), Ok(()));
        let signal = || wake.send(()).map_err(io::Error::other);
        let refused = request(&stats, b"{\"config\":2}", signal, Duration::from_secs(5));
        assert_eq!(refused.unwrap(), Err("a_to_b.loss: at most 100%".into()));
        let mut worker = answers.join().unwrap();
        assert_eq!(worker.take_request().unwrap(), None, "taken once");
    }

    #[test]
    fn no_worker_no_answer_and_oversized_requests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let stats = dir.path().join("v.stats");
        let err = request(&stats, b"{}", || Ok(()), Duration::from_millis(10)).unwrap_err();
        assert!(err.to_string().contains("v.reconfig"), "{err}");
        let _worker = ControlFiles::create(&stats).unwrap();
        let err = request(&stats, b"{}", || Ok(()), Duration::from_millis(30)).unwrap_err();
        assert!(matches!(err, ControlError::NoAnswer(..)), "{err}");
        let big = vec![b' '; MAX_REQUEST + 1];
        let err = request(&stats, &big, || Ok(()), Duration::from_millis(10)).unwrap_err();
        assert!(matches!(err, ControlError::TooLarge { .. }), "{err}");
    }
}
