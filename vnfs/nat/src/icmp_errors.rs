//! ICMP errors that quote a translated packet: finding and translating the
//! quote. The errors and echo replies the NAT originates come from
//! `vnf_sdk::icmp`, as the router's do.

use std::net::Ipv4Addr;

use vnf_sdk::wire::{Icmpv4Packet, Ipv4Packet};

use crate::translate::{self, End, Ports};

pub use vnf_sdk::icmp::{echo_reply, error, error_allowed, IcmpError, Origin};

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
