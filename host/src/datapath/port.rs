//! The one abstraction every port kind sits behind, so later kinds (an
//! in-memory link between fused VNFs, VXLAN, an attached interface) need no
//! change to the worker or the VNFs.

use std::io;
use std::os::fd::BorrowedFd;

/// Result of receiving a batch.
#[derive(Debug, Default, Clone, Copy)]
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

    /// File descriptor to poll for readability.
    fn fd(&self) -> BorrowedFd<'_>;

    /// Receives up to `bufs.len()` frames without blocking, frame `i` into
    /// `bufs[i]`, its length into `lens[i]`. Returns how many arrived.
    fn recv_batch(&mut self, bufs: &mut [&mut [u8]], lens: &mut [usize]) -> io::Result<RecvStats>;

    /// Sends frames without blocking; returns how many the kernel took.
    fn send_batch(&mut self, frames: &[&[u8]]) -> io::Result<usize>;
}
