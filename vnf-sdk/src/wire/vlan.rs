//! 802.1Q and 802.1ad (QinQ) VLAN tags, read from and pushed onto or popped
//! off an Ethernet frame.
//!
//! A tag sits right after the two MAC addresses: a tag protocol identifier
//! (TPID: `0x8100` for an 802.1Q C-tag, `0x88a8` for an 802.1ad S-tag) and a
//! tag control information word (3 bits priority, 1 bit drop-eligible, 12
//! bits VLAN ID). The host hands modules frames with their tags in place
//! (see `docs/ABI.md`, VLAN tags). Pushing or popping a tag changes the
//! frame's length by [`TAG_LEN`], which the ABI allows even on a frame with
//! offload state.

use crate::Frame;

/// TPID of an 802.1Q (customer) tag.
pub const TPID_8021Q: u16 = 0x8100;
/// TPID of an 802.1ad (service, QinQ) tag.
pub const TPID_8021AD: u16 = 0x88a8;
/// Bytes of one tag.
pub const TAG_LEN: usize = 4;
/// The largest VLAN ID a frame may carry (4095 is reserved).
pub const MAX_VID: u16 = 4094;

mod field {
    use core::ops::Range;
    /// The outer TPID (or the EtherType of an untagged frame).
    pub const TPID: Range<usize> = 12..14;
    /// The outer tag's control information.
    pub const TCI: Range<usize> = 14..16;
    /// Where a tag goes: after the MAC addresses.
    pub const INSERT_AT: usize = 12;
}

/// One VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// [`TPID_8021Q`] or [`TPID_8021AD`].
    pub tpid: u16,
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop-eligible indicator.
    pub dei: bool,
    /// VLAN ID, 0..=4095 (0: priority tag only).
    pub vid: u16,
}

impl VlanTag {
    /// A tag with priority 0.
    pub const fn new(tpid: u16, vid: u16) -> Self {
        VlanTag {
            tpid,
            pcp: 0,
            dei: false,
            vid,
        }
    }

    /// Splits a TCI into its fields.
    pub const fn from_tci(tpid: u16, tci: u16) -> Self {
        VlanTag {
            tpid,
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }

    /// The TCI word.
    pub const fn tci(&self) -> u16 {
        ((self.pcp as u16 & 7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }

    /// The outer tag of `frame` if its first EtherType is `tpid`.
    pub fn outer(frame: &[u8], tpid: u16) -> Option<VlanTag> {
        if frame.len() < field::TCI.end + 2 {
            return None;
        }
        let found = u16::from_be_bytes([frame[field::TPID.start], frame[field::TPID.start + 1]]);
        (found == tpid).then(|| {
            VlanTag::from_tci(
                tpid,
                u16::from_be_bytes([frame[field::TCI.start], frame[field::TCI.start + 1]]),
            )
        })
    }

    /// The TPID or EtherType right after the MAC addresses, if the frame is
    /// long enough to have one.
    pub fn first_ethertype(frame: &[u8]) -> Option<u16> {
        frame
            .get(field::TPID)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// Writes the tag's four bytes.
    pub fn emit(&self, out: &mut [u8; TAG_LEN]) {
        out[..2].copy_from_slice(&self.tpid.to_be_bytes());
        out[2..].copy_from_slice(&self.tci().to_be_bytes());
    }
}

/// Removes the outer tag of `frame` if its TPID is `tpid`, and returns it.
/// Inner tags stay where they are.
pub fn pop(frame: &mut Frame<'_>, tpid: u16) -> Option<VlanTag> {
    let tag = VlanTag::outer(frame.data(), tpid)?;
    let len = frame.len();
    let data = frame.data_mut();
    data.copy_within(field::INSERT_AT + TAG_LEN..len, field::INSERT_AT);
    frame.set_len(len - TAG_LEN);
    Some(tag)
}

/// Pushes `tag` as the new outer tag of `frame`. Returns `false` (changing
/// nothing) if the frame has no MAC addresses or no room to grow.
pub fn push(frame: &mut Frame<'_>, tag: VlanTag) -> bool {
    let len = frame.len();
    if len < field::INSERT_AT || !frame.set_len(len + TAG_LEN) {
        return false;
    }
    let data = frame.data_mut();
    data.copy_within(field::INSERT_AT..len, field::INSERT_AT + TAG_LEN);
    let mut bytes = [0u8; TAG_LEN];
    tag.emit(&mut bytes);
    data[field::INSERT_AT..field::INSERT_AT + TAG_LEN].copy_from_slice(&bytes);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0, 0, 0, 0, 1, // src
        0x08, 0x06, // ARP
        0xab, 0xcd,
    ];
    const TAGGED: [u8; 20] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0, 0, 0, 0, 1, // src
        0x81, 0x00, 0x70, 0x0a, // 802.1Q PCP 3 DEI 1 VID 10
        0x08, 0x06, // ARP
        0xab, 0xcd,
    ];

    #[test]
    fn parses_and_emits_a_tag() {
        let tag = VlanTag::outer(&TAGGED, TPID_8021Q).unwrap();
        assert_eq!(
            tag,
            VlanTag {
                tpid: TPID_8021Q,
                pcp: 3,
                dei: true,
                vid: 10
            }
        );
        let mut out = [0u8; 4];
        tag.emit(&mut out);
        assert_eq!(out, TAGGED[12..16]);
        assert_eq!(VlanTag::outer(&TAGGED, TPID_8021AD), None);
        assert_eq!(VlanTag::outer(&UNTAGGED, TPID_8021Q), None);
        assert_eq!(VlanTag::first_ethertype(&UNTAGGED), Some(0x0806));
    }

    #[test]
    fn push_then_pop_round_trips() {
        let mut buf = [0u8; 32];
        buf[..UNTAGGED.len()].copy_from_slice(&UNTAGGED);
        let mut frame = Frame::new(0, &mut buf, UNTAGGED.len());
        assert!(push(&mut frame, VlanTag::from_tci(TPID_8021Q, 0x700a)));
        assert_eq!(frame.data(), &TAGGED);
        assert_eq!(
            pop(&mut frame, TPID_8021Q).map(|t| t.vid),
            Some(10),
            "pops what it pushed"
        );
        assert_eq!(frame.data(), &UNTAGGED);
        assert_eq!(pop(&mut frame, TPID_8021Q), None);
    }

    #[test]
    fn push_refuses_without_room() {
        let mut buf = UNTAGGED;
        let mut frame = Frame::new(0, &mut buf, UNTAGGED.len());
        assert!(!push(&mut frame, VlanTag::new(TPID_8021AD, 100)));
        assert_eq!(frame.data(), &UNTAGGED);
    }
}
