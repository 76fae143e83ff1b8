//! A port on a TAP device whose file descriptor the worker holds.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{Port, RecvStats};
use crate::datapath::sys::fd::{self, tun_offload};
use crate::datapath::sys::uring::FileRing;
use crate::engine::{VnetHeader, VNET_HDR_LEN};

/// How a TAP port moves frames: a TAP descriptor has no `recvmmsg` or
/// `sendmmsg`, so batching goes through io_uring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapIo {
    /// One `read(2)`/`readv(2)` or `write(2)`/`writev(2)` per frame.
    PerFrame,
    /// A batch of reads or writes per `io_uring_enter(2)`, on a ring locked
    /// to this descriptor ([`crate::datapath::sys::uring`]).
    Uring,
}

impl TapIo {
    /// The name in logs and the benchmark.
    pub fn label(self) -> &'static str {
        match self {
            TapIo::PerFrame => "read/write",
            TapIo::Uring => "io_uring",
        }
    }
}

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
    /// The batched path ([`TapIo::Uring`]); `None` for one system call per
    /// frame.
    ring: Option<FileRing>,
    /// Why the batched path was asked for and not taken, or left.
    fallback: Option<String>,
}

impl TapPort {
    /// Wraps an open TAP descriptor; it is switched to non-blocking. With
    /// `vnet` (the descriptor was attached with `IFF_VNET_HDR`), the device
    /// is told it may send us partial checksums and TCP and UDP super-frames.
    /// With [`TapIo::Uring`] it sets up the ring for `batch` frames (this
    /// needs no privilege but must happen before the sandbox); if that
    /// fails the port moves one frame per system call and
    /// [`TapPort::fallback`] says why.
    pub fn new(name: &str, tap: OwnedFd, vnet: bool, io: TapIo, batch: usize) -> io::Result<Self> {
        fd::set_nonblocking(tap.as_fd())?;
        if vnet {
            use tun_offload::{CSUM, TSO4, TSO6, USO4, USO6};
            // UDP segmentation offload needs Linux 6.2; older kernels refuse
            // the whole request, so fall back to checksums and TSO.
            fd::tun_set_offload(tap.as_fd(), CSUM | TSO4 | TSO6 | USO4 | USO6)
                .or_else(|_| fd::tun_set_offload(tap.as_fd(), CSUM | TSO4 | TSO6))?;
        }
        let (ring, fallback) = match io {
            TapIo::PerFrame => (None, None),
            TapIo::Uring => match FileRing::new(tap.as_fd(), batch.clamp(1, 4096) as u32) {
                Ok(ring) => (Some(ring), None),
                Err(e) => (None, Some(format!("couldn't set up its io_uring: {e}"))),
            },
        };
        Ok(TapPort {
            name: name.into(),
            fd: tap,
            vnet,
            ring,
            fallback,
        })
    }

    /// How the port moves frames now.
    pub fn io(&self) -> TapIo {
        if self.ring.is_some() {
            TapIo::Uring
        } else {
            TapIo::PerFrame
        }
    }

    /// Why the port moves one frame per system call although
    /// [`TapIo::Uring`] was asked for; taken once (the caller logs it).
    pub fn take_fallback(&mut self) -> Option<String> {
        self.fallback.take()
    }

    /// Leaves the batched path for good, saying why.
    fn leave_ring(&mut self, why: String) {
        self.ring = None;
        crate::logging::host_log(
            &self.name,
            nfvhost_abi::LogLevel::Warn,
            &format!("TAP port {}: one system call per frame from now on: {why}", self.name),
        );
    }

    fn recv_per_frame(
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

    fn send_per_frame(&mut self, frames: &[&[u8]], vnets: &[VnetHeader]) -> io::Result<usize> {
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

/// Makes the results of a batch of reads a batch of frames: frame `k` is
/// the `k`th read that returned one, moved down to slot `k` if a read
/// before it found nothing (a frame that arrived in between). Returns the
/// frames and the error of the first read that failed otherwise than
/// `EAGAIN`.
fn gather_reads(
    results: &[i32],
    vnet: bool,
    bufs: &mut [&mut [u8]],
    lens: &mut [usize],
    vnets: &mut [VnetHeader],
) -> (RecvStats, Option<io::Error>) {
    let mut stats = RecvStats::default();
    let mut error = None;
    for (i, &r) in results.iter().enumerate() {
        if r < 0 {
            if r != -libc::EAGAIN && error.is_none() {
                error = Some(io::Error::from_raw_os_error(-r));
            }
            continue;
        }
        let k = stats.frames;
        let n = if vnet {
            (r as usize).saturating_sub(VNET_HDR_LEN)
        } else {
            r as usize
        };
        let n = n.min(bufs[i].len());
        if k != i {
            let (to, from) = bufs.split_at_mut(i);
            to[k][..n].copy_from_slice(&from[0][..n]);
            vnets[k] = vnets[i];
        }
        if !vnet {
            vnets[k] = VnetHeader::NONE;
        }
        lens[k] = n;
        stats.frames += 1;
    }
    (stats, error)
}

/// How many writes of a linked batch took their frame: the ones before the
/// first that failed; the error of that one if it was the first and not
/// `EAGAIN`.
fn count_writes(results: &[i32]) -> io::Result<usize> {
    match results.iter().position(|&r| r < 0) {
        None => Ok(results.len()),
        Some(0) if results[0] != -libc::EAGAIN => Err(io::Error::from_raw_os_error(-results[0])),
        Some(sent) => Ok(sent),
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
        let n = bufs.len().min(lens.len()).min(vnets.len());
        let vnet = self.vnet;
        let Some(ring) = self.ring.as_mut() else {
            return self.recv_per_frame(bufs, lens, vnets);
        };
        let n = n.min(ring.capacity());
        let parts = bufs[..n]
            .iter_mut()
            .zip(vnets[..n].iter_mut())
            .map(|(buf, header)| {
                if vnet {
                    [&mut header.0[..], &mut buf[..]]
                } else {
                    [&mut [][..], &mut buf[..]]
                }
            });
        match ring.read_each(parts) {
            Ok(results) => {
                let (stats, error) = gather_reads(results, vnet, bufs, lens, vnets);
                match error {
                    // A kernel whose TAP cannot read without waiting under
                    // io_uring (no RWF_NOWAIT): nothing was read.
                    Some(e) if stats.frames == 0 && e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                        self.leave_ring(format!("its reads through io_uring: {e}"));
                        self.recv_per_frame(bufs, lens, vnets)
                    }
                    Some(e) if stats.frames == 0 => Err(e),
                    _ => Ok(stats),
                }
            }
            Err(e) => {
                self.leave_ring(format!("its io_uring failed: {e}"));
                self.recv_per_frame(bufs, lens, vnets)
            }
        }
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
        let vnet = self.vnet;
        let Some(ring) = self.ring.as_mut() else {
            return self.send_per_frame(frames, vnets);
        };
        let parts = frames.iter().enumerate().map(|(i, f)| {
            if vnet {
                [&vnets.get(i).unwrap_or(&VnetHeader::NONE).0[..], *f]
            } else {
                [&[][..], *f]
            }
        });
        match ring.write_each(parts) {
            Ok(results) => count_writes(results),
            Err(e) => {
                self.leave_ring(format!("its io_uring failed: {e}"));
                self.send_per_frame(frames, vnets)
            }
        }
    }
}
