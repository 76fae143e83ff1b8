//! A port on a TAP device whose file descriptor the worker holds.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{Port, RecvStats};
use crate::datapath::sys::fd;
use crate::engine::VnetHeader;

/// A TAP device opened without packet information or vnet headers: one
/// `read` is one Ethernet frame. Deploy switches the TAP's offloads off, so
/// frames are always complete.
pub struct TapPort {
    name: String,
    fd: OwnedFd,
}

impl TapPort {
    /// Wraps an open TAP descriptor; it is switched to non-blocking.
    pub fn new(name: &str, tap: OwnedFd) -> io::Result<Self> {
        fd::set_nonblocking(tap.as_fd())?;
        Ok(TapPort {
            name: name.into(),
            fd: tap,
        })
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn readable_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }

    fn recv_batch(
        &mut self,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        vnets: &mut [VnetHeader],
    ) -> io::Result<RecvStats> {
        let mut stats = RecvStats::default();
        for ((buf, len), vnet) in bufs.iter_mut().zip(lens.iter_mut()).zip(vnets.iter_mut()) {
            match fd::read(self.fd.as_fd(), buf) {
                Ok(n) => {
                    *len = n;
                    *vnet = VnetHeader::NONE;
                    stats.frames += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return if stats.frames > 0 { Ok(stats) } else { Err(e) },
            }
        }
        Ok(stats)
    }

    fn send_batch(&mut self, frames: &[&[u8]], _vnets: &[VnetHeader]) -> io::Result<usize> {
        let mut sent = 0;
        for f in frames {
            match fd::write(self.fd.as_fd(), f) {
                Ok(_) => sent += 1,
                Err(e) if sent > 0 || e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }
}
