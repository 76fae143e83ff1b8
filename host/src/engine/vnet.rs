//! A frame's offload state as Linux hands it over: a `virtio_net_hdr`, and
//! the ABI's `FrameDesc.flags` and `gso_size` derived from it.
//!
//! (Not to be confused with [`crate::sys::ethtool::Offload`], an ethtool
//! feature of an interface.)

use nfvhost_abi::{FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4, FLAG_GSO_TCPV6, FLAG_GSO_UDP_L4};

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
    pub const GSO_TCPV6: u8 = 4;
    pub const GSO_UDP_L4: u8 = 5;
    pub const GSO_ECN: u8 = 0x80;
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const HDR_LEN: usize = 2;
    pub const GSO_SIZE: usize = 4;
    pub const CSUM_START: usize = 6;
    pub const CSUM_OFFSET: usize = 8;
}

/// The segmentation kind of a frame's virtio-net header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoType {
    /// Not a super-frame.
    None,
    TcpV4,
    TcpV6,
    /// UDP segmentation (`UDP_SEGMENT`), IPv4 or IPv6.
    UdpL4,
    /// Anything else (legacy UFO): nfvhost cannot describe or segment it.
    Other,
}

impl VnetHeader {
    /// No offload: a complete frame.
    pub const NONE: VnetHeader = VnetHeader([0; VNET_HDR_LEN]);

    fn u16_at(&self, at: usize) -> u16 {
        u16::from_ne_bytes([self.0[at], self.0[at + 1]])
    }

    fn set_u16(&mut self, at: usize, v: u16) {
        self.0[at..at + 2].copy_from_slice(&v.to_ne_bytes());
    }

    /// Whether the TCP/UDP checksum is partial (`NEEDS_CSUM`).
    pub fn needs_csum(&self) -> bool {
        self.0[field::FLAGS] & field::F_NEEDS_CSUM != 0
    }

    /// What kind of super-frame this is, if any.
    pub fn gso_type(&self) -> GsoType {
        match self.0[field::GSO_TYPE] & !field::GSO_ECN {
            0 => GsoType::None,
            field::GSO_TCPV4 => GsoType::TcpV4,
            field::GSO_TCPV6 => GsoType::TcpV6,
            field::GSO_UDP_L4 => GsoType::UdpL4,
            _ => GsoType::Other,
        }
    }

    /// Sets the layout fields: header length, checksum start and offset.
    pub fn set_layout(&mut self, hdr_len: usize, csum_start: usize, csum_offset: usize) {
        self.set_u16(field::HDR_LEN, hdr_len as u16);
        self.set_u16(field::CSUM_START, csum_start as u16);
        self.set_u16(field::CSUM_OFFSET, csum_offset as u16);
    }

    /// The ABI's `FrameDesc.flags` for this frame.
    pub fn abi_flags(&self) -> u16 {
        let mut flags = 0;
        if self.needs_csum() {
            flags |= FLAG_CSUM_PARTIAL;
        }
        flags
            | match self.gso_type() {
                GsoType::TcpV4 => FLAG_GSO_TCPV4,
                GsoType::TcpV6 => FLAG_GSO_TCPV6,
                GsoType::UdpL4 => FLAG_GSO_UDP_L4,
                GsoType::None | GsoType::Other => 0,
            }
    }

    /// Payload bytes per segment of a super-frame, 0 otherwise.
    pub fn gso_size(&self) -> u32 {
        if self.gso_type() == GsoType::None {
            return 0;
        }
        u32::from(self.u16_at(field::GSO_SIZE))
    }

    /// Moves the header-length and checksum-start offsets `by` bytes further
    /// into the frame (back for a negative `by`), after that many bytes were
    /// inserted before the L3 header: a VLAN tag put back by the host, or
    /// pushed or popped by the module. Offsets that are unset stay unset.
    pub fn shift_headers(&mut self, by: i16) {
        for (at, used) in [
            (field::HDR_LEN, self.gso_type() != GsoType::None),
            (field::CSUM_START, self.needs_csum()),
        ] {
            if used {
                let old = self.u16_at(at);
                self.set_u16(at, old.wrapping_add_signed(by));
            }
        }
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
        assert_eq!(o.gso_type(), GsoType::TcpV4);
        h[1] = 5;
        assert_eq!(
            VnetHeader(h).abi_flags(),
            FLAG_CSUM_PARTIAL | FLAG_GSO_UDP_L4
        );
        h[1] = 4 | 0x80;
        assert_eq!(
            VnetHeader(h).abi_flags(),
            FLAG_CSUM_PARTIAL | FLAG_GSO_TCPV6
        );
        h[1] = 3;
        assert_eq!(
            VnetHeader(h).abi_flags(),
            FLAG_CSUM_PARTIAL,
            "legacy UFO is not described"
        );
        assert_eq!(o.for_transmit().0[0], 1, "DATA_VALID is not sent");
        assert_eq!(VnetHeader::NONE.abi_flags(), 0);
        assert_eq!(VnetHeader::NONE.gso_size(), 0);
    }

    #[test]
    fn shifts_offsets_both_ways_and_leaves_unset_ones() {
        let mut h = [0u8; 10];
        h[0] = 1; // NEEDS_CSUM, no GSO: hdr_len is not used
        h[6..8].copy_from_slice(&38u16.to_ne_bytes());
        let mut o = VnetHeader(h);
        o.shift_headers(-4);
        assert_eq!(&o.0[6..8], &34u16.to_ne_bytes());
        assert_eq!(&o.0[2..4], &[0, 0]);
        let mut none = VnetHeader::NONE;
        none.shift_headers(8);
        assert_eq!(none, VnetHeader::NONE);
    }
}
