//! Process file descriptors: a handle on one process that stays valid (and
//! never names another process) after the pid is reused.
//!
//! `pidfd_open(2)` and `pidfd_send_signal(2)` are called through
//! `libc::syscall`: the `nix` version we use has no wrapper, and enabling
//! rustix's `process` feature would rebuild wasmtime's dependency tree for
//! two system calls.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

/// A pidfd on one process.
#[derive(Debug)]
pub struct Pidfd {
    fd: OwnedFd,
    pid: i32,
}

impl Pidfd {
    /// Opens a pidfd on `pid`. The caller checks afterwards that the process
    /// is the one it meant (e.g. its start time): from then on the
    /// descriptor names that process only.
    pub fn open(pid: i32) -> io::Result<Pidfd> {
        if pid <= 0 {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor the kernel just returned to us and
        // nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Pidfd { fd, pid })
    }

    /// The pid this descriptor was opened on.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `sig` to exactly this process (ESRCH once it has exited).
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        // SAFETY: pidfd_send_signal takes our open descriptor, a signal
        // number, a null siginfo (the kernel fills in the default) and
        // flags 0.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// A duplicate of the process's descriptor `target` (`pidfd_getfd(2)`,
    /// Linux 5.6; needs ptrace access to it, which root has): how the
    /// supervisor takes the pipe `nfvhost capture` made, to hand it on.
    pub fn get_fd(&self, target: i32) -> io::Result<OwnedFd> {
        // SAFETY: pidfd_getfd takes our open pidfd, a descriptor number in
        // the other process and flags 0, and returns a new descriptor (close
        // on exec) or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.fd.as_raw_fd(), target, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor the kernel just installed for us and
        // nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// Waits up to `timeout` for the process to exit; true once it has (a
    /// pidfd becomes readable when its process exits).
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(n) if n > 0 => return true,
                Ok(_) if left.is_zero() => return false,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return false,
            }
        }
    }

    /// Whether the process has exited.
    pub fn exited(&self) -> bool {
        self.wait_exit(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_reach_the_process_and_exit_is_seen() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = Pidfd::open(child.id() as i32).unwrap();
        assert!(!fd.exited());
        fd.signal(Signal::SIGTERM).unwrap();
        // Exited (a zombie until reaped) counts as exited for a pidfd.
        assert!(fd.wait_exit(Duration::from_secs(5)));
        child.wait().unwrap();
        // Reaped: the pid may be reused, the descriptor still names the
        // dead process and signals nobody.
        assert!(fd.signal(Signal::SIGTERM).is_err());
    }

    #[test]
    fn a_descriptor_of_a_process_is_duplicated() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let me = Pidfd::open(std::process::id() as i32).unwrap();
        let copy = me.get_fd(w.as_raw_fd()).unwrap();
        drop(w);
        nix::unistd::write(&copy, b"x").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(nix::unistd::read(&r, &mut buf).unwrap(), 1);
        assert!(me.get_fd(100_000).is_err());
    }

    #[test]
    fn bad_pids_are_refused() {
        assert!(Pidfd::open(0).is_err());
        assert!(Pidfd::open(-1).is_err());
    }
}
