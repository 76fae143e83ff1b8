//! Frames with offload state (ABI "Offloads"): the on-wire size of a TCP
//! segmentation super-frame.

use vnf_sdk::wire::{IpProtocol, Ipv4Packet, TcpPacket};

/// The IPv4 length of one segment of a TCP super-frame whose segments carry
/// `gso` payload bytes: IPv4 header + TCP header + `gso`. `None` if the
/// packet is not TCP or its TCP header is malformed.
pub fn segment_len(ip: &Ipv4Packet<&[u8]>, gso: u16) -> Option<usize> {
    if ip.protocol() != IpProtocol::Tcp || ip.is_fragment() {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some(ip.header_len() + tcp.header_len() + usize::from(gso))
}
