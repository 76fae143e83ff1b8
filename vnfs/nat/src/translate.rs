//! Rewriting an address and port of an IPv4 packet in place, with
//! incremental checksum updates (RFC 1624, or the partial rule for frames
//! whose L4 checksum is partial: checksum offload). Works on whole packets
//! and on the truncated copies quoted inside ICMP errors.

use std::net::Ipv4Addr;

use vnf_sdk::wire::checksum::{update_ipv4_addr, update_partial_ipv4_addr, update_u16};
use vnf_sdk::wire::IpProtocol;

use crate::bindings::Proto;

/// Which endpoint of a packet to rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Source address and port.
    Src,
    /// Destination address and port.
    Dst,
}

/// The ports (or the ICMP echo identifier, as both) of a TCP, UDP or ICMP
/// echo packet, and its TCP FIN and RST flags; `l4` is the IP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// Protocol.
    pub proto: Proto,
    /// Source port, or echo identifier.
    pub src: u16,
    /// Destination port, or echo identifier.
    pub dst: u16,
    /// TCP FIN.
    pub fin: bool,
    /// TCP RST.
    pub rst: bool,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Ports of TCP/UDP (need 4 bytes; TCP flags if 14 are there) or of an
/// ICMP echo request/reply (type 8/0, need 6 bytes).
pub fn ports(protocol: IpProtocol, l4: &[u8]) -> Option<Ports> {
    match protocol {
        IpProtocol::Tcp | IpProtocol::Udp => {
            let flags = l4.get(13).copied().unwrap_or(0);
            let tcp = protocol == IpProtocol::Tcp;
            Some(Ports {
                proto: if tcp { Proto::Tcp } else { Proto::Udp },
                src: be16(l4, 0)?,
                dst: be16(l4, 2)?,
                fin: tcp && flags & 0x01 != 0,
                rst: tcp && flags & 0x04 != 0,
            })
        }
        IpProtocol::Icmp if matches!(l4.first(), Some(0 | 8)) => {
            let ident = be16(l4, 4)?;
            Some(Ports {
                proto: Proto::Icmp,
                src: ident,
                dst: ident,
                fin: false,
                rst: false,
            })
        }
        _ => None,
    }
}

/// Rewrites only the source or destination address of the IPv4 header at
/// the start of `ip`, with its header checksum; returns the old address.
pub fn rewrite_addr(ip: &mut [u8], end: End, addr: Ipv4Addr) -> Ipv4Addr {
    let at = match end {
        End::Src => 12,
        End::Dst => 16,
    };
    let old = Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
    ip[at..at + 4].copy_from_slice(&addr.octets());
    let sum = be16(ip, 10).unwrap_or(0);
    put16(ip, 10, update_ipv4_addr(sum, old, addr));
    old
}

/// Rewrites one endpoint of the IPv4 packet at the start of `ip` (which may
/// be truncated, as in an ICMP quote): the address, the IPv4 header
/// checksum, the port (for ICMP echo the identifier) and the TCP, UDP or
/// ICMP checksum as far as the bytes are present. A UDP checksum of zero
/// stays zero. The caller has checked the header (version, IHL) is there.
///
/// With `partial` (the frame's TCP/UDP checksum is partial, see
/// `Frame::checksum_partial`) the checksum field holds the pseudo-header
/// sum: the address change is applied with the partial rule and the port
/// change not at all (the transmitter sums the L4 header when it completes
/// the checksum).
pub fn rewrite(ip: &mut [u8], end: End, addr: Ipv4Addr, port: u16, partial: bool) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let old_addr = rewrite_addr(ip, end, addr);

    let protocol = IpProtocol::from(ip[9]);
    let total = usize::from(be16(ip, 2).unwrap_or(0)).min(ip.len());
    if ihl >= total {
        return;
    }
    let l4 = &mut ip[ihl..total];
    let port_at = match (protocol, end) {
        (IpProtocol::Icmp, _) => 4,
        (_, End::Src) => 0,
        (_, End::Dst) => 2,
    };
    let Some(old_port) = be16(l4, port_at) else {
        return;
    };
    put16(l4, port_at, port);
    if partial {
        let at = match protocol {
            IpProtocol::Tcp => 16,
            IpProtocol::Udp => 6,
            _ => return,
        };
        if let Some(sum) = be16(l4, at) {
            put16(l4, at, update_partial_ipv4_addr(sum, old_addr, addr));
        }
        return;
    }
    match protocol {
        IpProtocol::Tcp => {
            if let Some(sum) = be16(l4, 16) {
                let sum = update_ipv4_addr(sum, old_addr, addr);
                put16(l4, 16, update_u16(sum, old_port, port));
            }
        }
        IpProtocol::Udp => {
            if let Some(sum) = be16(l4, 6).filter(|&s| s != 0) {
                let sum = update_u16(update_ipv4_addr(sum, old_addr, addr), old_port, port);
                put16(l4, 6, if sum == 0 { 0xffff } else { sum });
            }
        }
        IpProtocol::Icmp => {
            if let Some(sum) = be16(l4, 2) {
                put16(l4, 2, update_u16(sum, old_port, port));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vnf_sdk::testing::frames;
    use vnf_sdk::wire::{Ipv4Packet, Ipv4Repr, UdpPacket};

    fn udp(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
        let header = Ipv4Repr {
            ident: 7,
            ..frames::ipv4_header(src, dst, IpProtocol::Udp)
        };
        frames::ipv4_with(header, &frames::udp(src, dst, 40000, 53, payload))
    }

    #[test]
    fn udp_rewrite_keeps_checksums_valid_and_zero_stays_zero() {
        let s = Ipv4Addr::new(192, 168, 1, 10);
        let d = Ipv4Addr::new(8, 8, 8, 8);
        let n = Ipv4Addr::new(203, 0, 113, 1);
        for payload in [&b"hello"[..], b"", b"\xff\xff\x00"] {
            let mut b = udp(s, d, payload);
            rewrite(&mut b, End::Src, n, 20001, false);
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            assert!(p.verify_checksum());
            let u = UdpPacket::new_checked(p.payload()).unwrap();
            assert_eq!(u.src_port(), 20001);
            assert_ne!(u.checksum(), 0);
            assert!(u.verify_checksum(n, d));
        }
        let mut b = udp(s, d, b"x");
        b[20 + 6..20 + 8].copy_from_slice(&[0, 0]);
        rewrite(&mut b, End::Src, n, 1, false);
        assert_eq!(&b[26..28], &[0, 0]);
        // Truncated: address and header checksum only.
        let mut b = udp(s, d, b"x")[..22].to_vec();
        rewrite(&mut b, End::Dst, n, 1, false);
        assert!(Ipv4Packet::new_unchecked(&b[..20]).verify_checksum());
    }
}
