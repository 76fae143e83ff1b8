//! Plain descriptor operations: non-blocking mode, one-frame `read` and
//! `write`, and `poll`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use super::check;

/// Switches `fd` to non-blocking mode.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFL) on a descriptor the caller borrows; checked.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above, F_SETFL with the flags just read plus O_NONBLOCK.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) }).map(drop)
}

/// One `read(2)` into `buf`; returns the bytes read.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a live, exclusively borrowed buffer of buf.len() bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// One `write(2)` of `buf`; returns the bytes written.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is a live slice the kernel only reads during the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// A set of descriptors to wait on for readability, built once so waiting
/// allocates nothing; entry `i` belongs to port `i`. It holds raw numbers:
/// the caller keeps the descriptors open for as long as it waits on the set.
pub struct PollSet {
    fds: Vec<libc::pollfd>,
    /// Each entry's descriptor (-1 for none), kept while it is taken out.
    raw: Vec<libc::c_int>,
}

impl PollSet {
    /// One entry per item, in order; `None` (a port no descriptor signals)
    /// is never waited on.
    pub fn new<'a>(fds: impl IntoIterator<Item = Option<BorrowedFd<'a>>>) -> Self {
        let raw: Vec<libc::c_int> = fds
            .into_iter()
            .map(|fd| fd.map_or(-1, |fd| fd.as_raw_fd()))
            .collect();
        PollSet {
            fds: raw
                .iter()
                .map(|&fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
            raw,
        }
    }

    /// Takes entry `i` out of the set (poll skips negative descriptors)
    /// or puts it back.
    pub fn set_enabled(&mut self, i: usize, enabled: bool) {
        if let Some(entry) = self.fds.get_mut(i) {
            entry.fd = if enabled { self.raw[i] } else { -1 };
            entry.revents = 0;
        }
    }

    /// Waits until one descriptor is readable or `timeout` passes. A
    /// signal ends the wait early without an error. With no descriptors it
    /// only sleeps.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        // To the nanosecond (module timers promise microseconds), so ppoll
        // rather than poll's milliseconds, which would hold a due frame
        // for up to a millisecond.
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `fds` is a live, exclusively borrowed array of pollfd of
        // the stated length; a descriptor closed meanwhile only reports
        // POLLNVAL, it cannot make poll write outside the array. `ts` is a
        // valid timespec and no signal mask is passed.
        let ret = unsafe {
            libc::ppoll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if ret < 0 {
            for entry in &mut self.fds {
                entry.revents = 0;
            }
        }
        match check(ret) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }

    /// The entries the last [`PollSet::wait`] found broken (`POLLERR`,
    /// `POLLHUP` or `POLLNVAL`): their descriptor will not deliver frames,
    /// and waiting on it again would return at once.
    pub fn faulted(&self) -> impl Iterator<Item = usize> + '_ {
        let bad = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
        self.fds
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.fd >= 0 && e.revents & bad != 0)
            .map(|(i, _)| i)
    }
}

/// Waits on several sets as one (the members of a fused group: one
/// poll(2) for all their ports); afterwards each set reports what its own
/// [`PollSet::wait`] would have ([`PollSet::faulted`]).
pub fn wait_all(sets: &mut [&mut PollSet], timeout: Duration) -> io::Result<()> {
    if let [one] = sets {
        return one.wait(timeout);
    }
    let mut joined = PollSet {
        fds: sets.iter().flat_map(|s| s.fds.iter().copied()).collect(),
        raw: Vec::new(),
    };
    joined.wait(timeout)?;
    let mut from = joined.fds.iter();
    for set in sets.iter_mut() {
        for (entry, got) in set.fds.iter_mut().zip(&mut from) {
            entry.revents = got.revents;
        }
    }
    Ok(())
}

/// One `readv(2)` into `parts` in order; returns the bytes read.
pub fn read_parts(fd: BorrowedFd<'_>, parts: &mut [&mut [u8]; 2]) -> io::Result<usize> {
    let iov = parts.each_mut().map(|p| libc::iovec {
        iov_base: p.as_mut_ptr().cast(),
        iov_len: p.len(),
    });
    // SAFETY: the iovecs describe the live, exclusively borrowed buffers of
    // `parts`, of the stated lengths, for the duration of the call.
    let n = unsafe { libc::readv(fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// One `writev(2)` of `parts` in order; returns the bytes written.
pub fn write_parts(fd: BorrowedFd<'_>, parts: [&[u8]; 2]) -> io::Result<usize> {
    let iov = parts.map(|p| libc::iovec {
        iov_base: p.as_ptr() as *mut libc::c_void,
        iov_len: p.len(),
    });
    // SAFETY: the iovecs describe live slices the kernel only reads during
    // the call.
    let n = unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `TUNSETOFFLOAD` flags (linux/if_tun.h): what a TAP device may hand us.
pub mod tun_offload {
    pub const CSUM: libc::c_uint = 0x01;
    pub const TSO4: libc::c_uint = 0x02;
    pub const TSO6: libc::c_uint = 0x04;
    pub const USO4: libc::c_uint = 0x20;
    pub const USO6: libc::c_uint = 0x40;
}

/// Tells the TAP device behind `fd` which offloads it may hand us.
pub fn tun_set_offload(fd: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value; `fd` is a TAP
    // descriptor the caller borrows.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, flags) }).map(drop)
}
