//! A port for tests: the test injects the frames it receives and reads back
//! what was sent, and can make sends fail or report kernel drops.

use std::collections::VecDeque;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Port, RecvStats};
use crate::engine::VnetHeader;

/// What the test sees and controls of a [`FakePort`].
#[derive(Default)]
pub struct FakeWire {
    /// Frames the port will receive, in order.
    pub inbox: VecDeque<Vec<u8>>,
    /// Frames the port sent, in order, with their offload state.
    pub sent: Vec<(Vec<u8>, VnetHeader)>,
    /// Most frames further sends take (`None`: all); each taken frame
    /// lowers it.
    pub send_room: Option<usize>,
    /// Make the next receive fail.
    pub fail_recv: bool,
    /// The link is gone: receives and sends fail with `ENXIO`, as a packet
    /// socket's do once its interface is deleted, and `recheck` says down.
    pub link_gone: bool,
    /// Reported (once) by `take_kernel_drops`.
    pub kernel_drops: u64,
}

/// The test's handle on a fake port's wire.
#[derive(Clone, Default)]
pub struct FakeHandle(Arc<Mutex<FakeWire>>);

impl FakeHandle {
    pub fn wire(&self) -> MutexGuard<'_, FakeWire> {
        self.0.lock().unwrap()
    }

    /// Queues a frame for the port to receive.
    pub fn inject(&self, frame: &[u8]) {
        self.wire().inbox.push_back(frame.to_vec());
    }

    /// The frames sent so far, without their offload state.
    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.wire().sent.iter().map(|(f, _)| f.clone()).collect()
    }
}

pub struct FakePort {
    name: String,
    wire: FakeHandle,
}

impl FakePort {
    pub fn new(name: &str) -> (FakePort, FakeHandle) {
        let wire = FakeHandle::default();
        (
            FakePort {
                name: name.into(),
                wire: wire.clone(),
            },
            wire,
        )
    }
}

impl Port for FakePort {
    fn name(&self) -> &str {
        &self.name
    }

    fn readable_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn has_pending(&self) -> bool {
        !self.wire.wire().inbox.is_empty()
    }

    fn recv_batch(
        &mut self,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        vnets: &mut [VnetHeader],
    ) -> io::Result<RecvStats> {
        let mut wire = self.wire.wire();
        if std::mem::take(&mut wire.fail_recv) {
            return Err(io::Error::other("injected receive failure"));
        }
        if wire.link_gone {
            return Err(io::Error::from_raw_os_error(libc::ENXIO));
        }
        let mut stats = RecvStats::default();
        for ((buf, len), vnet) in bufs.iter_mut().zip(lens.iter_mut()).zip(vnets.iter_mut()) {
            let Some(frame) = wire.inbox.pop_front() else {
                break;
            };
            let n = frame.len().min(buf.len());
            buf[..n].copy_from_slice(&frame[..n]);
            stats.truncated += usize::from(n < frame.len());
            *len = n;
            *vnet = VnetHeader::NONE;
            stats.frames += 1;
        }
        Ok(stats)
    }

    fn send_batch(&mut self, frames: &[&[u8]], vnets: &[VnetHeader]) -> io::Result<usize> {
        let mut wire = self.wire.wire();
        if wire.link_gone {
            return Err(io::Error::from_raw_os_error(libc::ENXIO));
        }
        let taken = wire.send_room.map_or(frames.len(), |r| r.min(frames.len()));
        if let Some(room) = &mut wire.send_room {
            *room -= taken;
        }
        for (i, f) in frames[..taken].iter().enumerate() {
            let vnet = vnets.get(i).copied().unwrap_or_default();
            wire.sent.push((f.to_vec(), vnet));
        }
        Ok(taken)
    }

    fn recheck(&mut self) -> bool {
        !self.wire.wire().link_gone
    }

    fn take_kernel_drops(&mut self) -> u64 {
        std::mem::take(&mut self.wire.wire().kernel_drops)
    }
}
