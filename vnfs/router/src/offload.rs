//! Frames with offload state (ABI "Offloads"): the on-wire size of a
//! segmentation super-frame, and turning an offloaded frame into an
//! ordinary one when it has to wait for ARP (frames sent later through
//! `emit` carry no offload).

use vnf_sdk::prelude::*;
use vnf_sdk::wire::{IpProtocol, Ipv4Packet, TcpFlags, TcpPacket, UdpPacket};

use crate::ETH_HEADER;

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

/// Rewrites an offloaded frame (already checked by the caller: valid IPv4
/// with a valid header checksum) into an ordinary one, in place: a
/// super-frame is cut to its first segment (TCP payload `gso_size` bytes,
/// FIN and PSH cleared as the kernel does for all but the last segment; TCP
/// retransmits the rest), and a partial checksum is completed. Returns the
/// new frame length, or `None` if the frame cannot be made ordinary.
pub fn to_plain(frame: &mut Frame<'_>) -> Option<usize> {
    let gso = frame.gso_segment_size();
    let partial = frame.checksum_partial();
    let data = frame.data_mut();
    let mut ip = Ipv4Packet::new_checked(&mut data[ETH_HEADER..]).ok()?;
    let ihl = ip.header_len();
    let mut total = usize::from(ip.total_len());
    if let Some(gso) = gso {
        let seg = segment_len(&Ipv4Packet::new_unchecked(ip.as_bytes()), gso)?;
        if seg < total {
            total = seg;
            ip.set_total_len(u16::try_from(total).ok()?);
            ip.fill_checksum();
            let mut tcp = TcpPacket::new_unchecked(&mut ip.payload_mut()[..total - ihl]);
            let flags = tcp.flags().0 & !(TcpFlags::FIN.0 | TcpFlags::PSH.0);
            tcp.set_flags(TcpFlags(flags));
        }
    }
    let ip = Ipv4Packet::new_unchecked(&mut data[ETH_HEADER..ETH_HEADER + total]);
    let (src, dst, protocol) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    let l4 = &mut data[ETH_HEADER + ihl..ETH_HEADER + total];
    // The checksum is recomputed from scratch: the pseudo-header's L4 length
    // changed if the frame was cut.
    if partial || gso.is_some() {
        match protocol {
            IpProtocol::Tcp => TcpPacket::new_checked(&mut l4[..])
                .ok()?
                .fill_checksum(src, dst),
            IpProtocol::Udp => UdpPacket::new_checked(&mut l4[..])
                .ok()?
                .fill_checksum(src, dst),
            _ => return None,
        }
    }
    Some(ETH_HEADER + total)
}
