//! The one abstraction every port kind sits behind, so the worker loop and
//! the VNFs need no change for a new kind.
//!
//! - [`packet_socket`]: a kernel interface (a veth end) through `AF_PACKET`.
//! - [`tpacket`]: a kernel interface through `AF_PACKET` with a mapped
//!   `TPACKET` receive ring (and optionally a transmit ring).
//! - [`tap`]: a TAP device whose descriptor the worker holds.
//! - [`xdp`]: a veth end through an `AF_XDP` socket and a native XDP
//!   program (`datapath: { io: xdp }`).
//! - [`memory`]: an in-memory link between two ports of one process (the
//!   link between two VNFs of a fused group).
//! - `fake` (tests only): frames injected and sent frames recorded by the
//!   test, with failures on demand.
//!
//! To add a kind: implement [`Port`] in a new file here (its system calls go
//! in `datapath::sys`), give it a [`crate::datapath::worker::PortBinding`]
//! variant if a chain can ask for it, and open it in `datapath::setup`.

pub mod memory;
pub mod packet_socket;
pub mod tap;
pub mod tpacket;
pub mod xdp;

#[cfg(test)]
pub mod fake;

use std::io;
use std::os::fd::BorrowedFd;

use crate::engine::VnetHeader;

/// Result of receiving a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecvStats {
    /// Frames received.
    pub frames: usize,
    /// Frames longer than their buffer, truncated and counted as errors.
    pub truncated: usize,
}

/// A network port a worker owns.
pub trait Port: Send {
    /// The port's name in the chain file.
    fn name(&self) -> &str;

    /// The descriptor that becomes readable when frames arrive, for ports
    /// backed by a kernel object; `None` for ports no descriptor signals,
    /// which the loop asks [`Port::has_pending`] instead.
    fn readable_fd(&self) -> Option<BorrowedFd<'_>>;

    /// Whether frames are waiting that no descriptor signals: the loop does
    /// not sleep while one is.
    fn has_pending(&self) -> bool {
        false
    }

    /// Receives up to `bufs.len()` frames without blocking, frame `i` into
    /// `bufs[i]`, its length into `lens[i]` and its offload state into
    /// `vnets[i]`. Returns how many arrived.
    fn recv_batch(
        &mut self,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        vnets: &mut [VnetHeader],
    ) -> io::Result<RecvStats>;

    /// Whether frames leave with their offload state (a virtio-net header):
    /// if not, the worker hands the port only ordinary frames, completed or
    /// segmented in software (see [`crate::datapath::offload`]).
    fn carries_offload(&self) -> bool {
        false
    }

    /// Sends frames without blocking, frame `i` with `vnets[i]` (ports that
    /// do not carry offloads ignore it; the worker only hands them plain
    /// frames). Returns how many were taken, in order: the frame after them
    /// was refused (send it alone to learn why). An error only when the
    /// first frame was refused for another reason than a full buffer (then
    /// `Ok(0)`).
    fn send_batch(&mut self, frames: &[&[u8]], vnets: &[VnetHeader]) -> io::Result<usize>;

    /// Called about once a second while the port is down (its link was
    /// deleted or set down, see [`crate::datapath::health`]): whether the
    /// link is usable again. A port may reattach to a link that came back
    /// under the same name. Ports whose link cannot go away are always up.
    fn recheck(&mut self) -> bool {
        true
    }

    /// Frames dropped before we could read them (socket buffer full) since
    /// the last call.
    fn take_kernel_drops(&mut self) -> u64 {
        0
    }
}
