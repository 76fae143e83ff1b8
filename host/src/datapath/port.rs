//! The one abstraction every port kind sits behind, so later kinds (an
//! in-memory link between fused VNFs, VXLAN, an attached interface) need no
//! change to the worker or the VNFs.

use std::io;
use std::os::fd::BorrowedFd;

use nfvhost_abi::{FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4};

/// Result of receiving a batch.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecvStats {
    /// Frames received.
    pub frames: usize,
    /// Frames longer than their buffer, truncated and counted as errors.
    pub truncated: usize,
}

/// The offload state of one frame: a Linux `virtio_net_hdr` (10 bytes, host
/// byte order), all zero for a plain frame with a complete checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offload(pub [u8; VNET_HDR_LEN]);

/// Length of `struct virtio_net_hdr`.
pub const VNET_HDR_LEN: usize = 10;

mod vnet {
    pub const F_NEEDS_CSUM: u8 = 1;
    pub const F_DATA_VALID: u8 = 2;
    pub const GSO_TCPV4: u8 = 1;
    pub const GSO_ECN: u8 = 0x80;
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const GSO_SIZE: std::ops::Range<usize> = 4..6;
}

impl Offload {
    /// No offload: a complete frame.
    pub const NONE: Offload = Offload([0; VNET_HDR_LEN]);

    /// The ABI's `FrameDesc.flags` for this frame.
    pub fn abi_flags(&self) -> u16 {
        let mut flags = 0;
        if self.0[vnet::FLAGS] & vnet::F_NEEDS_CSUM != 0 {
            flags |= FLAG_CSUM_PARTIAL;
        }
        if self.0[vnet::GSO_TYPE] & !vnet::GSO_ECN == vnet::GSO_TCPV4 {
            flags |= FLAG_GSO_TCPV4;
        }
        flags
    }

    /// TCP payload bytes per segment of a super-frame, 0 otherwise.
    pub fn gso_size(&self) -> u32 {
        if self.0[vnet::GSO_TYPE] == 0 {
            return 0;
        }
        u32::from(u16::from_ne_bytes([
            self.0[vnet::GSO_SIZE.start],
            self.0[vnet::GSO_SIZE.start + 1],
        ]))
    }

    /// The header to send the frame with: what it arrived with, minus
    /// "checksum already verified", which only means something on receive.
    pub fn for_transmit(&self) -> Offload {
        let mut h = *self;
        h.0[vnet::FLAGS] &= !vnet::F_DATA_VALID;
        h
    }
}

/// A network port a worker owns.
pub trait Port: Send {
    /// The port's name in the chain file.
    fn name(&self) -> &str;

    /// File descriptor to poll for readability.
    fn fd(&self) -> BorrowedFd<'_>;

    /// Receives up to `bufs.len()` frames without blocking, frame `i` into
    /// `bufs[i]`, its length into `lens[i]` and its offload state into
    /// `offloads[i]`. Returns how many arrived.
    fn recv_batch(
        &mut self,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        offloads: &mut [Offload],
    ) -> io::Result<RecvStats>;

    /// Sends frames without blocking, frame `i` with `offloads[i]` (ports
    /// that do not carry offloads ignore it; the worker only hands them
    /// plain frames). Returns how many the kernel took.
    fn send_batch(&mut self, frames: &[&[u8]], offloads: &[Offload]) -> io::Result<usize>;

    /// Frames the kernel dropped before we could read them (socket buffer
    /// full) since the last call.
    fn take_kernel_drops(&mut self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_tcp_super_frame_header() {
        // NEEDS_CSUM | DATA_VALID, TCPV4, hdr_len 66, gso_size 1448, csum_start 34, csum_offset 16.
        let mut h = [0u8; 10];
        h[0] = 3;
        h[1] = 1;
        h[2..4].copy_from_slice(&66u16.to_ne_bytes());
        h[4..6].copy_from_slice(&1448u16.to_ne_bytes());
        h[6..8].copy_from_slice(&34u16.to_ne_bytes());
        h[8..10].copy_from_slice(&16u16.to_ne_bytes());
        let o = Offload(h);
        assert_eq!(o.abi_flags(), FLAG_CSUM_PARTIAL | FLAG_GSO_TCPV4);
        assert_eq!(o.gso_size(), 1448);
        assert_eq!(o.for_transmit().0[0], 1, "DATA_VALID is not sent");
        assert_eq!(Offload::NONE.abi_flags(), 0);
        assert_eq!(Offload::NONE.gso_size(), 0);
    }
}
