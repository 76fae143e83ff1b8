//! ICMP messages a network function originates: echo replies and errors
//! (destination unreachable, fragmentation needed, time exceeded), with the
//! RFC 1812 rules on when an error may be sent. Shared by every VNF that is
//! an IP hop (router, NAT).

use alloc::vec::Vec;
use core::net::Ipv4Addr;

use crate::wire::{
    error_quote, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv4DstUnreachable,
    Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded, IpProtocol, Ipv4Packet, Ipv4Repr,
};

/// TTL of packets a VNF originates.
pub const TTL: u8 = 64;

/// The ICMP errors a VNF sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Destination unreachable, net unreachable (code 0): no route.
    NetUnreachable,
    /// Destination unreachable, host unreachable (code 1): ARP failed.
    HostUnreachable,
    /// Destination unreachable, fragmentation needed (code 4) with the next-hop MTU.
    FragNeeded(u16),
    /// Time exceeded in transit (code 0).
    TimeExceeded,
}

/// Where an originated packet comes from and goes to on the link.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    /// Our MAC on the port it leaves by.
    pub src_mac: EthernetAddress,
    /// The link-layer destination.
    pub dst_mac: EthernetAddress,
    /// Our source address.
    pub src_ip: Ipv4Addr,
    /// IP identification.
    pub ident: u16,
}

fn build(origin: Origin, dst_ip: Ipv4Addr, icmp: &Icmpv4Repr<'_>) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: origin.src_ip,
        dst_addr: dst_ip,
        protocol: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        ttl: TTL,
        dscp: 0,
        ecn: 0,
        ident: origin.ident,
        dont_frag: false,
    };
    let mut bytes = alloc::vec![0u8; EthernetFrame::<&[u8]>::buffer_len(ip.buffer_len())];
    let mut eth = EthernetFrame::new_unchecked(&mut bytes[..]);
    EthernetRepr {
        src_addr: origin.src_mac,
        dst_addr: origin.dst_mac,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut eth);
    let mut packet = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut packet);
    icmp.emit(&mut Icmpv4Packet::new_unchecked(packet.payload_mut()));
    bytes
}

/// An echo reply to `request` (the request's ICMP message, checked by the
/// caller) sent back to `dst_ip`.
pub fn echo_reply(origin: Origin, dst_ip: Ipv4Addr, request: &Icmpv4Repr<'_>) -> Option<Vec<u8>> {
    Some(build(origin, dst_ip, &request.echo_reply()?))
}

/// Whether RFC 1812 (4.3.2.7) allows an ICMP error about this datagram
/// (the IPv4 packet, already validated): not about an ICMP error, a
/// non-first fragment, or a packet from an address that names no single host.
/// Link-layer and directed broadcasts are the caller's to check.
pub fn error_allowed(ip: &Ipv4Packet<&[u8]>) -> bool {
    ip.frag_offset() == 0 && may_answer(ip)
}

/// Whether a datagram may be answered at all (with an ICMP error, or a TCP
/// RST): its source names a single host, its destination is not a
/// broadcast or multicast group, and it is not itself an ICMP error
/// (RFC 1812 4.3.2.7).
pub fn may_answer(ip: &Ipv4Packet<&[u8]>) -> bool {
    let src = ip.src_addr();
    if src.is_unspecified() || src.is_broadcast() || src.is_multicast() || src.is_loopback() {
        return false;
    }
    let dst = ip.dst_addr();
    if dst.is_broadcast() || dst.is_multicast() {
        return false;
    }
    if ip.protocol() == IpProtocol::Icmp {
        // Only queries (echo and the like) may provoke an error; a
        // truncated ICMP header is treated as an error message.
        return match ip.payload().first().map(|&t| Icmpv4Message::from(t)) {
            Some(Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply) => true,
            Some(Icmpv4Message::Unknown(t)) => matches!(t, 13..=18),
            _ => false,
        };
    }
    true
}

/// An ICMP error about `datagram` (its IPv4 packet), to its source.
pub fn error(origin: Origin, kind: IcmpError, datagram: &Ipv4Packet<&[u8]>) -> Vec<u8> {
    let total = usize::from(datagram.total_len()).min(datagram.as_bytes().len());
    let quote = error_quote(&datagram.as_bytes()[..total]);
    let repr = match kind {
        IcmpError::NetUnreachable => Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::NetUnreachable,
            data: quote,
        },
        IcmpError::HostUnreachable => Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::HostUnreachable,
            data: quote,
        },
        IcmpError::FragNeeded(_) => Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::FragRequired,
            data: quote,
        },
        IcmpError::TimeExceeded => Icmpv4Repr::TimeExceeded {
            reason: Icmpv4TimeExceeded::TtlExpired,
            data: quote,
        },
    };
    let mut bytes = build(origin, datagram.src_addr(), &repr);
    if let IcmpError::FragNeeded(mtu) = kind {
        // Icmpv4Repr has no next-hop MTU field: set it and redo the checksum.
        let mut eth = EthernetFrame::new_unchecked(&mut bytes[..]);
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        let mut icmp = Icmpv4Packet::new_unchecked(ip.payload_mut());
        icmp.set_next_hop_mtu(mtu);
        icmp.fill_checksum();
    }
    bytes
}
