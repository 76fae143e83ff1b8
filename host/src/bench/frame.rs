//! Test frames: Ethernet / IPv4 / UDP with a payload header that carries
//! what the receiver counts by.
//!
//! Frame sizes follow RFC 2544's convention and *include* the 4-byte FCS
//! (64 .. 1518); the frame handed to the socket is 4 bytes shorter, since
//! the kernel (and a veth) carries no FCS. A 64-byte test frame is therefore
//! 60 bytes in memory: 14 Ethernet + 20 IPv4 + 8 UDP + 18 payload, which
//! holds the 16-byte [`TestHeader`].

use std::net::Ipv4Addr;
use std::ops::Range;

/// The FCS the kernel does not carry but RFC 2544 frame sizes count.
pub const FCS_LEN: usize = 4;
/// Smallest and largest RFC 2544 frame size (with FCS).
pub const MIN_FRAME: usize = 64;
pub const MAX_FRAME: usize = 1518;
/// "NF" + version 1: marks a frame as one of ours.
pub const MAGIC: u16 = 0x4e31;
/// UDP port both ends use; the receiver also binds it so the receiving
/// host's kernel takes the frames quietly (no ICMP port unreachable back
/// through the chain).
pub const UDP_PORT: u16 = 7_357;

const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;
/// Where the test header starts in a frame.
pub const HEADER_AT: usize = ETH_LEN + IP_LEN + UDP_LEN;

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const STREAM: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const TX_NS: Range<usize> = 8..16;
}
/// Length of the test header.
pub const HEADER_LEN: usize = field::TX_NS.end;

/// What each test frame carries after its UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestHeader {
    /// Which trial the frame belongs to (stale frames of an earlier trial
    /// that are still in flight are not counted).
    pub stream: u16,
    pub seq: u32,
    /// `CLOCK_MONOTONIC` at transmission, in nanoseconds.
    pub tx_ns: u64,
}

impl TestHeader {
    /// Reads the header of a received frame; `None` if the frame is not an
    /// IPv4/UDP test frame of ours (anything else on the link: ARP, ICMP).
    pub fn parse(frame: &[u8]) -> Option<TestHeader> {
        if frame.len() < HEADER_AT + HEADER_LEN
            || frame[12..14] != [0x08, 0x00]
            || frame[14] != 0x45
            || frame[23] != 17
            || frame[ETH_LEN + IP_LEN + 2..ETH_LEN + IP_LEN + 4] != UDP_PORT.to_be_bytes()
        {
            return None;
        }
        let h = &frame[HEADER_AT..];
        if u16::from_be_bytes(take(h, field::MAGIC)) != MAGIC {
            return None;
        }
        Some(TestHeader {
            stream: u16::from_be_bytes(take(h, field::STREAM)),
            seq: u32::from_be_bytes(take(h, field::SEQ)),
            tx_ns: u64::from_be_bytes(take(h, field::TX_NS)),
        })
    }
}

fn take<const N: usize>(bytes: &[u8], range: Range<usize>) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[range]);
    out
}

/// The addresses a test stream is sent with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses {
    pub src_mac: [u8; 6],
    /// The next hop's MAC (the gateway's, from the sender's neighbour table).
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
}

/// Builds a test frame of RFC 2544 size `size` (with FCS) with sequence
/// number 0; [`stamp`] fills in each frame's sequence and time.
pub fn build(addrs: &Addresses, size: usize, stream: u16) -> Vec<u8> {
    let len = size.clamp(MIN_FRAME, MAX_FRAME) - FCS_LEN;
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&addrs.dst_mac);
    f[6..12].copy_from_slice(&addrs.src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_total = (len - ETH_LEN) as u16;
    let ip = &mut f[ETH_LEN..ETH_LEN + IP_LEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_total.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&addrs.src_ip.octets());
    ip[16..20].copy_from_slice(&addrs.dst_ip.octets());
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut f[ETH_LEN + IP_LEN..ETH_LEN + IP_LEN + UDP_LEN];
    udp[0..2].copy_from_slice(&UDP_PORT.to_be_bytes());
    udp[2..4].copy_from_slice(&UDP_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_total - IP_LEN as u16).to_be_bytes());
    // UDP checksum 0: none (allowed for IPv4); routers and NAT keep it 0.
    let h = &mut f[HEADER_AT..];
    h[field::MAGIC].copy_from_slice(&MAGIC.to_be_bytes());
    h[field::STREAM].copy_from_slice(&stream.to_be_bytes());
    f
}

/// Writes the sequence number and transmit time into a frame from
/// [`build`].
pub fn stamp(frame: &mut [u8], seq: u32, tx_ns: u64) {
    let h = &mut frame[HEADER_AT..];
    h[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    h[field::TX_NS].copy_from_slice(&tx_ns.to_be_bytes());
}

/// The Internet checksum of an IPv4 header.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Addresses {
        Addresses {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(10, 0, 1, 10),
            dst_ip: Ipv4Addr::new(10, 0, 2, 10),
        }
    }

    #[test]
    fn a_64_byte_frame_is_60_bytes_without_fcs_and_holds_the_header() {
        let mut f = build(&addrs(), 64, 7);
        assert_eq!(f.len(), 60);
        assert!(HEADER_AT + HEADER_LEN <= f.len());
        stamp(&mut f, 42, 123_456_789);
        assert_eq!(
            TestHeader::parse(&f),
            Some(TestHeader {
                stream: 7,
                seq: 42,
                tx_ns: 123_456_789
            })
        );
        assert_eq!(build(&addrs(), 1518, 1).len(), 1514);
        // Sizes outside 64..1518 are clamped.
        assert_eq!(build(&addrs(), 10, 1).len(), 60);
    }

    #[test]
    fn golden_header_bytes() {
        let f = build(&addrs(), 64, 0x0102);
        assert_eq!(
            &f[..HEADER_AT + 4],
            &[
                2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, // Ethernet
                0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0x23, 0xac, // IPv4 ..checksum
                10, 0, 1, 10, 10, 0, 2, 10, // addresses
                0x1c, 0xbd, 0x1c, 0xbd, 0, 26, 0, 0, // UDP
                0x4e, 0x31, 0x01, 0x02, // magic, stream
            ][..]
        );
        // A header with a correct checksum sums to 0.
        assert_eq!(checksum(&f[14..34]), 0);
    }

    #[test]
    fn other_traffic_is_not_a_test_frame() {
        let f = build(&addrs(), 128, 1);
        for (at, value) in [(12, 0x86), (23, 6), (HEADER_AT, 0), (36, 0)] {
            let mut g = f.clone();
            g[at] = value;
            assert_eq!(TestHeader::parse(&g), None, "byte {at} = {value}");
        }
        assert_eq!(TestHeader::parse(&f[..40]), None);
    }
}
