//! A frame's offload state as Linux hands it over: a `virtio_net_hdr`, and
//! the ABI's `FrameDesc.flags` and `gso_size` derived from it.
//!
//! (Not to be confused with [`crate::sys::ethtool::Offload`], an ethtool
//! feature of an interface.)

use nfvhost_abi::{FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4};

/// Length of `struct virtio_net_hdr`.
pub const VNET_HDR_LEN: usize = 10;

/// The offload state of one frame: a Linux `virtio_net_hdr` (10 bytes, host
/// byte order), all zero for a plain frame with a complete checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHeader(pub [u8; VNET_HDR_LEN]);

mod field {
    pub const F_NEEDS_CSUM: u8 = 1;
    pub const F_DATA_VALID: u8 = 2;
    pub const GSO_TCPV4: u8 = 1;
    pub const GSO_ECN: u8 = 0x80;
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const GSO_SIZE: std::ops::Range<usize> = 4..6;
}

impl VnetHeader {
    /// No offload: a complete frame.
    pub const NONE: VnetHeader = VnetHeader([0; VNET_HDR_LEN]);

    /// The ABI's `FrameDesc.flags` for this frame.
    pub fn abi_flags(&self) -> u16 {
        let mut flags = 0;
        if self.0[field::FLAGS] & field::F_NEEDS_CSUM != 0 {
            flags |= FLAG_CSUM_PARTIAL;
        }
        if self.0[field::GSO_TYPE] & !field::GSO_ECN == field::GSO_TCPV4 {
            flags |= FLAG_GSO_TCPV4;
        }
        flags
    }

    /// TCP payload bytes per segment of a super-frame, 0 otherwise.
    pub fn gso_size(&self) -> u32 {
        if self.0[field::GSO_TYPE] == 0 {
            return 0;
        }
        u32::from(u16::from_ne_bytes([
            self.0[field::GSO_SIZE.start],
            self.0[field::GSO_SIZE.start + 1],
        ]))
    }

    /// The header to send the frame with: what it arrived with, minus
    /// "checksum already verified", which only means something on receive.
    pub fn for_transmit(&self) -> VnetHeader {
        let mut h = *self;
        h.0[field::FLAGS] &= !field::F_DATA_VALID;
        h
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
        let o = VnetHeader(h);
        assert_eq!(o.abi_flags(), FLAG_CSUM_PARTIAL | FLAG_GSO_TCPV4);
        assert_eq!(o.gso_size(), 1448);
        assert_eq!(o.for_transmit().0[0], 1, "DATA_VALID is not sent");
        assert_eq!(VnetHeader::NONE.abi_flags(), 0);
        assert_eq!(VnetHeader::NONE.gso_size(), 0);
    }
}
