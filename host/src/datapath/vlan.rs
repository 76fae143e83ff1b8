//! Putting back the VLAN tag the kernel took out of a received frame.
//!
//! Linux removes the outer 802.1Q or 802.1ad tag of every frame it receives
//! and keeps it beside the frame (`skb->vlan_tci`); a packet socket only gets
//! it as `PACKET_AUXDATA`. The frame is received with four bytes of room at
//! the end of its buffer, and [`reinsert`] moves everything after the MAC
//! addresses up by four bytes and writes the tag there.

use crate::engine::VnetHeader;

/// The MAC addresses: the tag goes right after them.
const MACS_LEN: usize = 12;
/// Length of one tag (TPID and TCI).
pub const TAG_LEN: usize = 4;
/// The TPID the kernel reports when it does not say which one it removed.
pub const TPID_8021Q: u16 = 0x8100;

/// A tag the kernel removed from a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrippedTag {
    /// Tag protocol identifier (0x8100 for 802.1Q, 0x88a8 for 802.1ad).
    pub tpid: u16,
    /// Priority, drop-eligible bit and VLAN ID.
    pub tci: u16,
}

/// Writes `tag` back into the frame of `len` bytes at the start of `buf`,
/// after its MAC addresses, and shifts the offload header's offsets to match.
/// Returns the new length, or `None` when `buf` has no room for the tag or
/// the frame is too short to carry one (the frame is left as it was).
pub fn reinsert(
    buf: &mut [u8],
    len: usize,
    tag: StrippedTag,
    offload: &mut VnetHeader,
) -> Option<usize> {
    if len < MACS_LEN || len + TAG_LEN > buf.len() {
        return None;
    }
    buf.copy_within(MACS_LEN..len, MACS_LEN + TAG_LEN);
    buf[MACS_LEN..MACS_LEN + 2].copy_from_slice(&tag.tpid.to_be_bytes());
    buf[MACS_LEN + 2..MACS_LEN + TAG_LEN].copy_from_slice(&tag.tci.to_be_bytes());
    offload.shift_headers(TAG_LEN as i16);
    Some(len + TAG_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 18] = [
        0x02, 0, 0, 0, 0, 1, // dst
        0x02, 0, 0, 0, 0, 2, // src
        0x08, 0x00, // IPv4
        0x45, 0, 0, 20,
    ];
    const TAGGED: [u8; 22] = [
        0x02, 0, 0, 0, 0, 1, // dst
        0x02, 0, 0, 0, 0, 2, // src
        0x88, 0xa8, 0x20, 0x0a, // 802.1ad, PCP 1, VID 10
        0x08, 0x00, // IPv4
        0x45, 0, 0, 20,
    ];

    #[test]
    fn puts_the_tag_after_the_macs() {
        let mut buf = [0u8; 64];
        buf[..UNTAGGED.len()].copy_from_slice(&UNTAGGED);
        let tag = StrippedTag {
            tpid: 0x88a8,
            tci: 0x200a,
        };
        let mut offload = VnetHeader::NONE;
        let len = reinsert(&mut buf, UNTAGGED.len(), tag, &mut offload).unwrap();
        assert_eq!(&buf[..len], &TAGGED);
        assert_eq!(
            offload,
            VnetHeader::NONE,
            "no offsets to move on a plain frame"
        );
    }

    #[test]
    fn refuses_without_room_and_leaves_the_frame() {
        let mut buf = UNTAGGED;
        let mut offload = VnetHeader::NONE;
        let tag = StrippedTag {
            tpid: TPID_8021Q,
            tci: 5,
        };
        assert_eq!(reinsert(&mut buf, UNTAGGED.len(), tag, &mut offload), None);
        assert_eq!(buf, UNTAGGED);
        assert_eq!(reinsert(&mut [0u8; 64], 11, tag, &mut offload), None);
    }

    #[test]
    fn moves_the_checksum_and_header_offsets() {
        // NEEDS_CSUM, TCPV4, hdr_len 66, gso_size 1448, csum_start 34, csum_offset 16.
        let mut h = [0u8; 10];
        h[0] = 1;
        h[1] = 1;
        h[2..4].copy_from_slice(&66u16.to_ne_bytes());
        h[4..6].copy_from_slice(&1448u16.to_ne_bytes());
        h[6..8].copy_from_slice(&34u16.to_ne_bytes());
        h[8..10].copy_from_slice(&16u16.to_ne_bytes());
        let mut offload = VnetHeader(h);
        let mut buf = [0u8; 128];
        let tag = StrippedTag {
            tpid: TPID_8021Q,
            tci: 10,
        };
        assert_eq!(reinsert(&mut buf, 100, tag, &mut offload), Some(104));
        assert_eq!(&offload.0[2..4], &70u16.to_ne_bytes(), "hdr_len");
        assert_eq!(&offload.0[6..8], &38u16.to_ne_bytes(), "csum_start");
        assert_eq!(&offload.0[8..10], &16u16.to_ne_bytes(), "csum_offset stays");
        assert_eq!(offload.gso_size(), 1448);
    }
}
