//! A port on a TAP device whose file descriptor the worker holds.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::port::{Offload, Port, RecvStats};

/// A TAP device opened without packet information or vnet headers: one
/// `read` is one Ethernet frame. Deploy switches the TAP's offloads off, so
/// frames are always complete.
pub struct TapPort {
    name: String,
    fd: OwnedFd,
}

impl TapPort {
    /// Wraps an open TAP descriptor; it is switched to non-blocking.
    pub fn new(name: &str, fd: OwnedFd) -> io::Result<Self> {
        // SAFETY: fcntl on a descriptor we own; results are checked.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TapPort {
            name: name.into(),
            fd,
        })
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn recv_batch(
        &mut self,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        offloads: &mut [Offload],
    ) -> io::Result<RecvStats> {
        let mut stats = RecvStats::default();
        for ((buf, len), offload) in bufs
            .iter_mut()
            .zip(lens.iter_mut())
            .zip(offloads.iter_mut())
        {
            // SAFETY: buf is a live, exclusively borrowed buffer of buf.len() bytes.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    break;
                }
                return if stats.frames > 0 { Ok(stats) } else { Err(e) };
            }
            *len = n as usize;
            *offload = Offload::NONE;
            stats.frames += 1;
        }
        Ok(stats)
    }

    fn send_batch(&mut self, frames: &[&[u8]], _offloads: &[Offload]) -> io::Result<usize> {
        let mut sent = 0;
        for f in frames {
            // SAFETY: f is a live slice the kernel only reads.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), f.as_ptr().cast(), f.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if sent > 0 || e.kind() == io::ErrorKind::WouldBlock {
                    break;
                }
                return Err(e);
            }
            sent += 1;
        }
        Ok(sent)
    }
}
