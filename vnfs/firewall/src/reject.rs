//! The answers a `reject` rule sends: a TCP RST or an ICMP destination
//! unreachable, administratively prohibited (type 3 code 13). Both are
//! built in a buffer on the stack, from the original destination's address
//! (the firewall has none of its own), with the Ethernet addresses swapped
//! and any VLAN tags kept.

use vnf_sdk::wire::{
    error_quote, EthernetFrame, Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, IpProtocol,
    Ipv4Packet, Ipv4Repr, TcpFlags, TcpPacket,
};

/// TTL of the answers.
pub const TTL: u8 = 64;
/// Room for the largest answer: Ethernet with two VLAN tags (22), IPv4 (20),
/// ICMP (8) quoting a 60-byte header and 8 bytes.
pub const MAX_LEN: usize = 22 + 20 + 8 + 60 + 8;

/// Copies the link-layer header (`l3` bytes, VLAN tags included) of
/// `original` with the Ethernet addresses swapped.
fn l2(buf: &mut [u8], original: &[u8], l3: usize) {
    buf[..l3].copy_from_slice(&original[..l3]);
    let from = EthernetFrame::new_unchecked(original);
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..l3]);
    eth.set_dst_addr(from.src_addr());
    eth.set_src_addr(from.dst_addr());
}

fn ip_header(buf: &mut [u8], ip: &Ipv4Packet<&[u8]>, protocol: IpProtocol, payload_len: usize) {
    Ipv4Repr {
        src_addr: ip.dst_addr(),
        dst_addr: ip.src_addr(),
        protocol,
        payload_len,
        ttl: TTL,
        dscp: 0,
        ecn: 0,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut Ipv4Packet::new_unchecked(buf));
}

/// Whether an answer may be sent about this datagram: never to or from
/// broadcast, multicast or unspecified addresses, and never about an ICMP
/// error (RFC 1812 4.3.2.7).
pub fn allowed(ip: &Ipv4Packet<&[u8]>) -> bool {
    !ip.dst_addr().is_unspecified() && vnf_sdk::icmp::may_answer(ip)
}

/// Writes into `buf` a RST answering `tcp` (inside `ip`, after `l3` bytes of
/// link-layer header in `frame`), per RFC 793: if the segment had ACK, the
/// RST's sequence number is its acknowledgment number; otherwise the RST has
/// sequence 0 and acknowledges everything the segment occupied. Returns the
/// frame length.
pub fn tcp_rst(
    buf: &mut [u8; MAX_LEN],
    frame: &[u8],
    l3: usize,
    ip: &Ipv4Packet<&[u8]>,
    tcp: &TcpPacket<&[u8]>,
) -> usize {
    let tcp_len = TcpPacket::<&[u8]>::MIN_HEADER_LEN;
    l2(buf, frame, l3);
    let ip_buf = &mut buf[l3..l3 + 20 + tcp_len];
    ip_header(ip_buf, ip, IpProtocol::Tcp, tcp_len);
    let mut out = TcpPacket::new_unchecked(&mut ip_buf[20..]);
    out.set_src_port(tcp.dst_port());
    out.set_dst_port(tcp.src_port());
    out.set_header_len(tcp_len);
    if tcp.ack() {
        out.set_seq_number(tcp.ack_number());
        out.set_ack_number(0);
        out.set_flags(TcpFlags::RST);
    } else {
        let data_len = ip.payload().len().saturating_sub(tcp.header_len()) as u32;
        let seg_len = data_len + u32::from(tcp.syn()) + u32::from(tcp.fin());
        out.set_seq_number(0);
        out.set_ack_number(tcp.seq_number().wrapping_add(seg_len));
        out.set_flags(TcpFlags::RST | TcpFlags::ACK);
    }
    out.set_window_len(0);
    out.set_urgent_at(0);
    out.fill_checksum(ip.dst_addr(), ip.src_addr());
    l3 + 20 + tcp_len
}

/// Writes into `buf` an ICMP destination unreachable, communication
/// administratively prohibited, quoting `ip`. Returns the frame length.
pub fn admin_prohibited(
    buf: &mut [u8; MAX_LEN],
    frame: &[u8],
    l3: usize,
    ip: &Ipv4Packet<&[u8]>,
) -> usize {
    let datagram = &ip.as_bytes()[..usize::from(ip.total_len())];
    let repr = Icmpv4Repr::DstUnreachable {
        reason: Icmpv4DstUnreachable::CommProhibited,
        data: error_quote(datagram),
    };
    let icmp_len = repr.buffer_len();
    l2(buf, frame, l3);
    let ip_buf = &mut buf[l3..l3 + 20 + icmp_len];
    ip_header(ip_buf, ip, IpProtocol::Icmp, icmp_len);
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut ip_buf[20..]));
    l3 + 20 + icmp_len
}
