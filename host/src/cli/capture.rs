//! `nfvhost capture CHAIN:VNF:PORT -w FILE`: the frames crossing one port
//! of a running VNF (both directions), in-memory links of fused groups
//! included, into a pcap file. See `nfvhost::deploy::capture` for how the
//! pipe reaches the sandboxed worker.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use nfvhost::datapath::worker::CaptureRequest;
use nfvhost::deploy::capture::{self, Ticket};
use nfvhost::deploy::state::{ChainState, ProcRef};
use nfvhost::deploy::supervisor;
use nfvhost::sys::private_file;

use super::{CliError, CliResult};

/// How long the supervisor may take to pick the request up.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(10);

fn progress(msg: &str) {
    eprintln!("nfvhost: {msg}");
}

pub fn capture(target: &str, write: &Path, count: Option<u64>, duration: Option<f64>) -> CliResult {
    let t = capture::parse_target(target).map_err(|e| CliError::usage(anyhow!(e)))?;
    if count == Some(0) {
        return Err(CliError::usage(anyhow!("-c/--count must be at least 1")));
    }
    let duration = match duration {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(CliError::usage(anyhow!(
                "--duration {s}: give seconds, more than 0 and at most a day"
            )))
        }
    };
    let state = ChainState::load(&t.chain)?
        .ok_or_else(|| CliError::usage(anyhow!("chain {} is not deployed", t.chain)))?;
    let Some(vnf) = state.vnfs.iter().find(|v| v.name == t.vnf) else {
        let names: Vec<&str> = state.vnfs.iter().map(|v| v.name.as_str()).collect();
        return Err(CliError::usage(anyhow!(
            "chain {} has no VNF `{}` (its VNFs: {})",
            t.chain,
            t.vnf,
            names.join(", ")
        )));
    };
    let ports: Vec<&str> = vnf.spec.ports.iter().map(|p| p.name.as_str()).collect();
    if !ports.contains(&t.port.as_str()) {
        return Err(CliError::usage(anyhow!(
            "VNF {} of chain {} has no port `{}` (its ports: {})",
            t.vnf,
            t.chain,
            t.port,
            ports.join(", ")
        )));
    }
    let Some(supervisor) = state.supervisor.and_then(|s| s.pidfd()) else {
        return Err(anyhow!(
            "chain {} has no running supervisor; deploy it again",
            t.chain
        )
        .into());
    };
    let mut out = File::create(write).with_context(|| format!("creating {}", write.display()))?;

    // The worker writes to a non-blocking write end (a slow reader never
    // stalls its data path); we read with a timeout to see Ctrl-C.
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating the capture pipe")?;
    set_nonblocking(&write_end)?;
    set_nonblocking(&read_end)?;
    let me = ProcRef::of(std::process::id() as i32)
        .ok_or_else(|| anyhow!("couldn't read our own start time"))?;
    let ticket = Ticket {
        request: CaptureRequest {
            vnf: t.vnf.clone(),
            port: t.port.clone(),
            count,
            duration_ms: duration.map(|d| d.as_millis() as u64),
        },
        client: me,
        fd: write_end.as_raw_fd(),
    };
    let ticket_path = capture::ticket_path(&state, me.pid);
    supervisor::install_stop_handlers();
    private_file::write_atomic(
        &ticket_path,
        &serde_json::to_vec(&ticket).expect("serializes"),
        0o600,
    )?;
    let removed = TicketGuard(&ticket_path);
    supervisor
        .signal(supervisor::RELOAD_SIGNAL)
        .context("asking the supervisor to start the capture")?;
    // The supervisor removes the ticket once it holds its own copy.
    let deadline = Instant::now() + HANDOVER_TIMEOUT;
    while ticket_path.exists() {
        if supervisor::stop_requested() {
            return Err(anyhow!("interrupted before the capture started").into());
        }
        if Instant::now() >= deadline {
            return Err(anyhow!(
                "the supervisor of {} did not take the capture within {HANDOVER_TIMEOUT:?} \
                 (a chain deployed by an older nfvhost? deploy it again)",
                t.chain
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(removed);
    drop(write_end);

    let what = format!("{}:{}:{}", t.chain, t.vnf, t.port);
    let mut copier = Copier::default();
    let mut pipe = File::from(read_end);
    let mut buf = vec![0u8; 1 << 16];
    // The worker ends the capture at its next tick after the duration; this
    // is a backstop should it not.
    let backstop = duration.map(|d| Instant::now() + d + Duration::from_secs(5));
    let mut announced = false;
    let ended_by = loop {
        if supervisor::stop_requested() {
            break "interrupted";
        }
        if backstop.is_some_and(|b| Instant::now() >= b) {
            break "time is up";
        }
        if !wait_readable(&pipe, Duration::from_millis(100)) {
            continue;
        }
        match pipe.read(&mut buf) {
            Ok(0) => break "the worker closed the capture",
            Ok(n) => {
                copier.push(&buf[..n], &mut out)?;
                if copier.started && !announced {
                    announced = true;
                    progress(&format!(
                        "capturing {what} into {}{}",
                        write.display(),
                        if count.is_none() && duration.is_none() {
                            "; Ctrl-C stops"
                        } else {
                            ""
                        }
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(anyhow!("reading the capture pipe: {e}").into()),
        }
    };
    out.flush()?;
    drop(pipe);
    if !copier.started {
        let _ = std::fs::remove_file(write);
        return Err(anyhow!(
            "the worker of {} did not start the capture of {what} ({ended_by}); \
             `nfvhost logs -c {} {}` says why",
            t.vnf,
            t.chain,
            supervisor::unit_name(vnf)
        )
        .into());
    }
    progress(&format!(
        "{} frames of {what} written to {} ({ended_by})",
        copier.frames,
        write.display()
    ));
    Ok(())
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), CliError> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd, FcntlArg::F_GETFL).context("reading the pipe's flags")?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK),
    )
    .context("making the pipe non-blocking")?;
    Ok(())
}

fn wait_readable(file: &File, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(timeout.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    matches!(poll(&mut fds, ms), Ok(n) if n > 0)
}

/// Removes the ticket if we leave before the supervisor took it.
struct TicketGuard<'a>(&'a Path);

impl Drop for TicketGuard<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// Copies the worker's pcap stream to the file, whole records only (the
/// file stays readable when Ctrl-C cuts the stream mid-record).
#[derive(Default)]
struct Copier {
    pending: Vec<u8>,
    started: bool,
    frames: u64,
}

impl Copier {
    fn push(&mut self, bytes: &[u8], out: &mut File) -> Result<(), CliError> {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        if !self.started {
            if self.pending.len() < 24 {
                return Ok(());
            }
            pcap_file::pcap::PcapHeader::from_slice(&self.pending)
                .map_err(|e| anyhow!("the worker's stream is not pcap: {e}"))?;
            at = 24;
            self.started = true;
        }
        while self.pending.len() >= at + 16 {
            let incl = u32::from_le_bytes(self.pending[at + 8..at + 12].try_into().expect("4"));
            let end = at + 16 + incl as usize;
            if self.pending.len() < end {
                break;
            }
            at = end;
            self.frames += 1;
        }
        out.write_all(&self.pending[..at])?;
        self.pending.drain(..at);
        Ok(())
    }
}
