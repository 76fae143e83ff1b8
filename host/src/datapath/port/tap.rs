//! A port on a TAP device whose file descriptor the worker holds.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{Port, RecvStats};
use crate::datapath::sys::fd::{self, tun_offload};
use crate::datapath::sys::uring::FileRing;
use crate::engine::{VnetHeader, VNET_HDR_LEN};

pub use crate::chain::TapIo;

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
    /// Frames the last receive call got: the size of the next call's first
    /// round of reads.
    reads_hint: usize,
}

/// The fewest reads a receive call submits at once.
const MIN_READS: usize = 4;

fn frames(frames: usize) -> RecvStats {
    RecvStats {
        frames,
        truncated: 0,
    }
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
            reads_hint: 0,
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
            &format!(
                "TAP port {}: one system call per frame from now on: {why}",
                self.name
            ),
        );
    }

    /// One submission of `bufs.len()` reads through the ring, gathered
    /// into frames at the front; an error if the ring is unusable.
    fn read_round(
        &mut self,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        vnets: &mut [VnetHeader],
    ) -> io::Result<(RecvStats, Option<io::Error>)> {
        let vnet = self.vnet;
        let ring = self.ring.as_mut().expect("only with a ring");
        let parts = bufs.iter_mut().zip(vnets.iter_mut()).map(|(buf, header)| {
            if vnet {
                [&mut header.0[..], &mut buf[..]]
            } else {
                [&mut [][..], &mut buf[..]]
            }
        });
        let results = ring.read_each(parts)?;
        Ok(gather_reads(results, vnet, bufs, lens, vnets))
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
        let (bufs, lens, vnets) = (&mut bufs[..n], &mut lens[..n], &mut vnets[..n]);
        if self.ring.is_none() {
            return self.recv_per_frame(bufs, lens, vnets);
        }
        // Rounds of reads, each twice the last while they all find a
        // frame; the first as large as the last call's whole catch. So an
        // idle port costs a few reads that find nothing, not a whole batch
        // of them, and a busy one a single round.
        let mut filled = 0;
        let mut reads = self.reads_hint.max(MIN_READS).min(n);
        while filled < n {
            let round = reads.min(n - filled);
            let (stats, error) = match self.read_round(
                &mut bufs[filled..filled + round],
                &mut lens[filled..filled + round],
                &mut vnets[filled..filled + round],
            ) {
                Ok(got) => got,
                Err(e) => {
                    self.leave_ring(format!("its io_uring failed: {e}"));
                    let more = self.recv_per_frame(
                        &mut bufs[filled..],
                        &mut lens[filled..],
                        &mut vnets[filled..],
                    );
                    return match more {
                        Ok(more) => Ok(RecvStats {
                            frames: filled + more.frames,
                            truncated: 0,
                        }),
                        Err(_) if filled > 0 => Ok(frames(filled)),
                        Err(e) => Err(e),
                    };
                }
            };
            filled += stats.frames;
            match error {
                // A kernel whose TAP cannot read without waiting under
                // io_uring (no RWF_NOWAIT): nothing was read.
                Some(e) if filled == 0 && e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    self.leave_ring(format!("its reads through io_uring: {e}"));
                    return self.recv_per_frame(bufs, lens, vnets);
                }
                Some(e) if filled == 0 => return Err(e),
                _ => {}
            }
            if stats.frames < round {
                break;
            }
            reads = reads.saturating_mul(2);
        }
        self.reads_hint = filled;
        Ok(frames(filled))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header(b: u8) -> VnetHeader {
        VnetHeader([b; VNET_HDR_LEN])
    }

    #[test]
    fn reads_become_frames_in_order_and_a_late_frame_moves_down() {
        let mut storage = [[0u8; 8]; 4];
        storage[0][..3].copy_from_slice(b"abc");
        storage[2][..2].copy_from_slice(b"xy");
        let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
        let mut lens = [0; 4];
        let mut vnets = [header(1), header(2), header(3), header(4)];
        // Read 1 found nothing, read 2 a frame that came in between, read
        // 3 nothing again.
        let results = [3, -libc::EAGAIN, 2, -libc::EAGAIN];
        let (stats, error) = gather_reads(&results, false, &mut bufs, &mut lens, &mut vnets);
        assert_eq!(stats.frames, 2);
        assert!(error.is_none());
        assert_eq!(&bufs[0][..lens[0]], b"abc");
        assert_eq!(&bufs[1][..lens[1]], b"xy");
        assert_eq!(vnets[..2], [VnetHeader::NONE; 2], "no header without vnet");
    }

    #[test]
    fn reads_with_headers_keep_each_frames_header_and_count_it_out() {
        let mut storage = [[0u8; 8]; 3];
        storage[1][..4].copy_from_slice(b"late");
        let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
        let mut lens = [0; 3];
        let mut vnets = [header(1), header(2), header(3)];
        let n = (VNET_HDR_LEN + 4) as i32;
        let (stats, error) = gather_reads(
            &[-libc::EAGAIN, n, -libc::ENODEV],
            true,
            &mut bufs,
            &mut lens,
            &mut vnets,
        );
        assert_eq!(stats.frames, 1);
        assert_eq!(&bufs[0][..lens[0]], b"late");
        assert_eq!(vnets[0], header(2), "the header came along");
        assert_eq!(error.unwrap().raw_os_error(), Some(libc::ENODEV));
    }

    #[test]
    fn a_frame_longer_than_its_buffer_is_cut_to_it() {
        let mut storage = [[0u8; 4]; 1];
        let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
        let mut lens = [0; 1];
        let mut vnets = [VnetHeader::NONE];
        let (stats, _) = gather_reads(&[9], false, &mut bufs, &mut lens, &mut vnets);
        assert_eq!((stats.frames, lens[0]), (1, 4));
    }

    #[test]
    fn linked_writes_count_up_to_the_first_failure() {
        assert_eq!(count_writes(&[60, 60, 60]).unwrap(), 3);
        assert_eq!(
            count_writes(&[60, -libc::EINVAL, -libc::ECANCELED]).unwrap(),
            1
        );
        assert_eq!(count_writes(&[-libc::EAGAIN, -libc::ECANCELED]).unwrap(), 0);
        let e = count_writes(&[-libc::EIO, -libc::ECANCELED]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert_eq!(count_writes(&[]).unwrap(), 0);
    }
}
