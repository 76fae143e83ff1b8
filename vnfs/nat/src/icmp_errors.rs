//! ICMP: the errors and echo replies the NAT originates, and translating
//! errors that quote a translated packet.

use std::net::Ipv4Addr;
use std::vec::Vec;

use vnf_sdk::wire::{
    error_quote, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv4DstUnreachable,
    Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded, IpProtocol, Ipv4Packet, Ipv4Repr,
};

use crate::translate::{self, End, Ports};

/// TTL of packets the NAT originates.
pub const TTL: u8 = 64;

/// The errors the NAT sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Type 3 code 0.
    NetUnreachable,
    /// Type 11 code 0.
    TimeExceeded,
}

/// Link and IP source of an originated packet.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    /// Our MAC.
    pub src_mac: EthernetAddress,
    /// The previous hop's MAC.
    pub dst_mac: EthernetAddress,
    /// Our address.
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
    let mut bytes = vec![0u8; EthernetFrame::<&[u8]>::buffer_len(ip.buffer_len())];
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

/// An echo reply to `request`, to `dst_ip`.
pub fn echo_reply(origin: Origin, dst_ip: Ipv4Addr, request: &Icmpv4Repr<'_>) -> Option<Vec<u8>> {
    Some(build(origin, dst_ip, &request.echo_reply()?))
}

/// Whether an ICMP error about this datagram is allowed (RFC 1812
/// 4.3.2.7): not about an ICMP error, a non-first fragment, or from/to an
/// address that names no single host.
pub fn error_allowed(ip: &Ipv4Packet<&[u8]>) -> bool {
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if src.is_unspecified() || src.is_broadcast() || src.is_multicast() || src.is_loopback() {
        return false;
    }
    if dst.is_broadcast() || dst.is_multicast() || ip.frag_offset() != 0 {
        return false;
    }
    if ip.protocol() == IpProtocol::Icmp {
        return matches!(
            ip.payload().first().map(|&t| Icmpv4Message::from(t)),
            Some(Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply)
        );
    }
    true
}

/// An ICMP error about `datagram`, to its source.
pub fn error(origin: Origin, kind: IcmpError, datagram: &Ipv4Packet<&[u8]>) -> Vec<u8> {
    let total = usize::from(datagram.total_len()).min(datagram.as_bytes().len());
    let data = error_quote(&datagram.as_bytes()[..total]);
    let repr = match kind {
        IcmpError::NetUnreachable => Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::NetUnreachable,
            data,
        },
        IcmpError::TimeExceeded => Icmpv4Repr::TimeExceeded {
            reason: Icmpv4TimeExceeded::TtlExpired,
            data,
        },
    };
    build(origin, datagram.src_addr(), &repr)
}

/// The packet quoted by an ICMP error (destination unreachable, source
/// quench, time exceeded, parameter problem): its source, destination and
/// ports. `icmp` is the whole ICMP message. `None` for other messages or an
/// unusable quote.
pub fn quoted(icmp: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, Ports)> {
    if !matches!(icmp.first(), Some(3 | 4 | 11 | 12)) {
        return None;
    }
    let inner = icmp.get(8..)?;
    if inner.len() < 20 || inner[0] >> 4 != 4 || inner[0] & 0x0f < 5 {
        return None;
    }
    let ihl = usize::from(inner[0] & 0x0f) * 4;
    let p = Ipv4Packet::new_unchecked(inner.get(..ihl)?);
    let ports = translate::ports(p.protocol(), inner.get(ihl..)?)?;
    Some((p.src_addr(), p.dst_addr(), ports))
}

/// Translates an ICMP error (the outer IPv4 packet `ip`, already checked):
/// the outer `outer_end` address becomes `addr`; in the quoted packet the
/// opposite end (the quote travelled the other way) becomes `addr`:`port`.
/// The quoted IP header and transport checksums are updated incrementally,
/// the ICMP checksum recomputed.
pub fn translate(ip: &mut [u8], outer_end: End, addr: Ipv4Addr, port: u16) {
    translate::rewrite_addr(ip, outer_end, addr);
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let inner_end = match outer_end {
        End::Src => End::Dst,
        End::Dst => End::Src,
    };
    let icmp = &mut ip[ihl..total];
    // A quote is never offloaded: its checksums are complete (or cut off).
    translate::rewrite(&mut icmp[8..], inner_end, addr, port, false);
    Icmpv4Packet::new_unchecked(icmp).fill_checksum();
}
