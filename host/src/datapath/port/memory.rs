//! An in-memory link between two ports of one process: what one end sends
//! is queued for the other end's next receive, with no system call and no
//! kernel interface. Fused groups (several VNFs in one worker) link their
//! members this way.

use std::collections::VecDeque;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Port, RecvStats};
use crate::engine::VnetHeader;

/// Frames queued for one end, and spare buffers so a busy link stops
/// allocating once it has warmed up.
#[derive(Default)]
struct Queue {
    frames: VecDeque<(Vec<u8>, VnetHeader)>,
    spare: Vec<Vec<u8>>,
    capacity: usize,
}

/// One direction of a link: the queue, and how many frames it holds, kept
/// beside it so that asking whether frames wait (which the group loop does
/// for every member each round) takes no lock.
#[derive(Default)]
struct Direction {
    queue: Mutex<Queue>,
    queued: AtomicUsize,
}

type Shared = Arc<Direction>;

fn lock(d: &Direction) -> MutexGuard<'_, Queue> {
    // A queue holds only bytes: one a panicking thread left is still sound.
    d.queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// One end of an in-memory link.
pub struct MemoryPort {
    name: String,
    rx: Shared,
    tx: Shared,
    /// The other end takes frames with their offload state (its slots hold
    /// a super-frame): see [`MemoryPort::set_carries_offload`].
    offload: bool,
}

impl MemoryPort {
    /// Lets frames leave with their offload state (checksum-partial, GSO
    /// super-frames): only when the module at the other end has slots big
    /// enough for a super-frame. Off by default: frames are completed or
    /// segmented in software first, as for a port without offloads.
    pub fn set_carries_offload(&mut self, on: bool) {
        self.offload = on;
    }
}

/// Creates a link whose ends are named `a` and `b` (each the port's name in
/// its VNF); each direction holds at most `capacity` frames, and a send to
/// a full queue takes only what fits, as a full socket buffer would.
pub fn link(a: &str, b: &str, capacity: usize) -> (MemoryPort, MemoryPort) {
    let queue = || {
        Arc::new(Direction {
            queue: Mutex::new(Queue {
                capacity,
                ..Queue::default()
            }),
            queued: AtomicUsize::new(0),
        })
    };
    let (a_to_b, b_to_a) = (queue(), queue());
    (
        MemoryPort {
            name: a.into(),
            rx: b_to_a.clone(),
            tx: a_to_b.clone(),
            offload: false,
        },
        MemoryPort {
            name: b.into(),
            rx: a_to_b,
            tx: b_to_a,
            offload: false,
        },
    )
}

impl Port for MemoryPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn readable_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn has_pending(&self) -> bool {
        self.rx.queued.load(Ordering::Acquire) > 0
    }

    fn recv_batch(
        &mut self,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        vnets: &mut [VnetHeader],
    ) -> io::Result<RecvStats> {
        let mut q = lock(&self.rx);
        let mut stats = RecvStats::default();
        for ((buf, len), vnet) in bufs.iter_mut().zip(lens.iter_mut()).zip(vnets.iter_mut()) {
            let Some((frame, header)) = q.frames.pop_front() else {
                break;
            };
            let n = frame.len().min(buf.len());
            buf[..n].copy_from_slice(&frame[..n]);
            if n < frame.len() {
                stats.truncated += 1;
            }
            *len = n;
            *vnet = header;
            stats.frames += 1;
            q.spare.push(frame);
        }
        self.rx.queued.store(q.frames.len(), Ordering::Release);
        Ok(stats)
    }

    fn carries_offload(&self) -> bool {
        self.offload
    }

    fn send_batch(&mut self, frames: &[&[u8]], vnets: &[VnetHeader]) -> io::Result<usize> {
        let mut q = lock(&self.tx);
        let room = q.capacity.saturating_sub(q.frames.len());
        let taken = frames.len().min(room);
        for (i, frame) in frames[..taken].iter().enumerate() {
            let mut buf = q.spare.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(frame);
            let vnet = vnets
                .get(i)
                .map_or(VnetHeader::NONE, VnetHeader::for_transmit);
            q.frames.push_back((buf, vnet));
        }
        self.tx.queued.store(q.frames.len(), Ordering::Release);
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(port: &mut MemoryPort, slot: usize) -> (RecvStats, Vec<Vec<u8>>) {
        let mut store = vec![vec![0u8; slot]; 4];
        let mut bufs: Vec<&mut [u8]> = store.iter_mut().map(|b| &mut b[..]).collect();
        let mut lens = [0; 4];
        let mut vnets = [VnetHeader::NONE; 4];
        let got = port.recv_batch(&mut bufs, &mut lens, &mut vnets).unwrap();
        let frames = (0..got.frames)
            .map(|i| store[i][..lens[i]].to_vec())
            .collect();
        (got, frames)
    }

    #[test]
    fn carries_frames_both_ways_in_order() {
        let (mut a, mut b) = link("out", "in", 8);
        assert!(!b.has_pending());
        assert_eq!(a.send_batch(&[b"one", b"two"], &[]).unwrap(), 2);
        assert!(b.has_pending() && !a.has_pending());
        let (got, frames) = recv(&mut b, 64);
        assert_eq!(got.frames, 2);
        assert_eq!(frames, [b"one".to_vec(), b"two".to_vec()]);
        assert!(!b.has_pending());
        assert_eq!(b.send_batch(&[b"back"], &[]).unwrap(), 1);
        assert_eq!(recv(&mut a, 64).1, [b"back".to_vec()]);
        assert_eq!((a.name(), b.name()), ("out", "in"));
        assert!(a.readable_fd().is_none());
    }

    #[test]
    fn a_full_queue_takes_only_what_fits_and_long_frames_truncate() {
        let (mut a, mut b) = link("a", "b", 2);
        assert_eq!(a.send_batch(&[b"1", b"2", b"3"], &[]).unwrap(), 2);
        assert_eq!(a.send_batch(&[b"4"], &[]).unwrap(), 0);
        let (got, _) = recv(&mut b, 64);
        assert_eq!(got.frames, 2);
        assert_eq!(a.send_batch(&[b"a long frame"], &[]).unwrap(), 1);
        let (got, frames) = recv(&mut b, 4);
        assert_eq!(
            got,
            RecvStats {
                frames: 1,
                truncated: 1
            }
        );
        assert_eq!(frames, [b"a lo".to_vec()]);
    }
}
