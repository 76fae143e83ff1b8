//! A port on a TAP device whose file descriptor the worker holds.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{Port, RecvStats};
use crate::datapath::sys::fd::{self, tun_offload};
use crate::engine::{VnetHeader, VNET_HDR_LEN};

/// A TAP device opened without packet information: one `read` is one
/// Ethernet frame. With `vnet` (the device opened with `IFF_VNET_HDR`), each
/// frame is preceded by its `virtio_net_hdr` and the device takes partial
/// checksums and super-frames both ways, as a veth port does; without,
/// frames are complete (deploy switches the TAP's offloads off and the
/// worker completes offload state in software before writing).
pub struct TapPort {
    name: String,
    fd: OwnedFd,
    vnet: bool,
}

impl TapPort {
    /// Wraps an open TAP descriptor; it is switched to non-blocking. With
    /// `vnet` (the descriptor was attached with `IFF_VNET_HDR`), the device
    /// is told it may send us partial checksums and TCP and UDP super-frames.
    pub fn new(name: &str, tap: OwnedFd, vnet: bool) -> io::Result<Self> {
        fd::set_nonblocking(tap.as_fd())?;
        if vnet {
            use tun_offload::{CSUM, TSO4, TSO6, USO4, USO6};
            // UDP segmentation offload needs Linux 6.2; older kernels refuse
            // the whole request, so fall back to checksums and TSO.
            fd::tun_set_offload(tap.as_fd(), CSUM | TSO4 | TSO6 | USO4 | USO6)
                .or_else(|_| fd::tun_set_offload(tap.as_fd(), CSUM | TSO4 | TSO6))?;
        }
        Ok(TapPort {
            name: name.into(),
            fd: tap,
            vnet,
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
            let got = if self.vnet {
                fd::read_parts(self.fd.as_fd(), &mut [&mut vnet.0[..], &mut buf[..]])
                    .map(|n| n.saturating_sub(VNET_HDR_LEN))
            } else {
                *vnet = VnetHeader::NONE;
                fd::read(self.fd.as_fd(), buf)
            };
            match got {
                Ok(n) => {
                    *len = n.min(buf.len());
                    stats.frames += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return if stats.frames > 0 { Ok(stats) } else { Err(e) },
            }
        }
        Ok(stats)
    }

    fn carries_offload(&self) -> bool {
        self.vnet
    }

    /// A TAP descriptor whose device was deleted is detached for good:
    /// attaching it to a device again (`TUNSETIFF`) needs `CAP_NET_ADMIN`,
    /// which the sandboxed worker does not have. The port stays down until
    /// the worker is restarted (`nfvhost replace`, or a redeploy).
    fn recheck(&mut self) -> bool {
        false
    }

    fn send_batch(&mut self, frames: &[&[u8]], vnets: &[VnetHeader]) -> io::Result<usize> {
        let mut sent = 0;
        for (i, f) in frames.iter().enumerate() {
            let result = if self.vnet {
                let header = vnets.get(i).copied().unwrap_or(VnetHeader::NONE);
                fd::write_parts(self.fd.as_fd(), [&header.0[..], f])
            } else {
                fd::write(self.fd.as_fd(), f)
            };
            match result {
                Ok(_) => sent += 1,
                Err(e) if sent > 0 || e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }
}
