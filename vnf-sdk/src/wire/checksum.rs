//! The Internet checksum (RFC 1071), pseudo-header sums, and incremental
//! updates (RFC 1624).
//!
//! Sums here are *one's-complement sums*, not yet complemented: [`data`]
//! returns the folded sum of some bytes, [`combine`] adds sums together, and
//! a header's checksum field holds `!combine(&[...])`. A receiver verifies by
//! summing everything including the checksum field and checking the result is
//! `0xffff`.
//!
//! When a NAT rewrites an address or port, or a router decrements a TTL, it
//! updates the checksum with [`update_u16`] or [`update_u32`] instead of
//! summing the whole packet again.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::IpProtocol;

/// Folds a 32-bit (or wider) accumulator into 16 bits with end-around carry.
pub fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The one's-complement sum of `bytes` taken as big-endian 16-bit words (a
/// trailing odd byte is padded with zero), folded to 16 bits.
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    // Summing 32-bit words is the same as summing their 16-bit halves modulo
    // 0xffff, and halves the number of additions.
    let mut words = bytes.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// The one's-complement sum of several partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The sum of the IPv4 pseudo-header for UDP and TCP: source and destination
/// address, protocol, and the upper-layer length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u32) -> u16 {
    let mut acc = u64::from(u32::from(src)) + u64::from(u32::from(dst));
    acc += u64::from(u8::from(protocol));
    acc += u64::from(length);
    fold(acc)
}

/// The sum of the IPv6 pseudo-header (RFC 8200, section 8.1): source and
/// destination address, upper-layer length, and next header.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: IpProtocol, length: u32) -> u16 {
    let mut acc = u64::from(data(&src.octets())) + u64::from(data(&dst.octets()));
    acc += u64::from(u8::from(next_header));
    acc += u64::from(length);
    fold(acc)
}

/// An IP address type whose pseudo-header a UDP or TCP checksum covers:
/// [`Ipv4Addr`] or [`Ipv6Addr`].
pub trait PseudoHeader: Copy + sealed::Sealed {
    /// Whether a UDP checksum field of zero means "no checksum" (true for
    /// IPv4; IPv6 requires a checksum).
    const UDP_CHECKSUM_OPTIONAL: bool;

    /// The pseudo-header sum for a segment of `length` bytes.
    fn pseudo_header_sum(src: Self, dst: Self, protocol: IpProtocol, length: u32) -> u16;
}

impl PseudoHeader for Ipv4Addr {
    const UDP_CHECKSUM_OPTIONAL: bool = true;

    fn pseudo_header_sum(src: Self, dst: Self, protocol: IpProtocol, length: u32) -> u16 {
        pseudo_header_v4(src, dst, protocol, length)
    }
}

impl PseudoHeader for Ipv6Addr {
    const UDP_CHECKSUM_OPTIONAL: bool = false;

    fn pseudo_header_sum(src: Self, dst: Self, protocol: IpProtocol, length: u32) -> u16 {
        pseudo_header_v6(src, dst, protocol, length)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for core::net::Ipv4Addr {}
    impl Sealed for core::net::Ipv6Addr {}
}

/// Updates a checksum field after one 16-bit word of the covered data changed
/// from `old_word` to `new_word` (RFC 1624, equation 3:
/// `HC' = ~(~HC + ~m + m')`).
///
/// The result equals a full recomputation whenever the covered data is not
/// all zeros, which is always the case for IP, UDP and TCP headers.
pub fn update_u16(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    let acc = u64::from(!old_checksum) + u64::from(!old_word) + u64::from(new_word);
    !fold(acc)
}

/// Updates a checksum field after a 32-bit field (an IPv4 address, a TCP
/// sequence number) changed from `old` to `new`. The field must start on a
/// 16-bit boundary of the covered data.
pub fn update_u32(old_checksum: u16, old: u32, new: u32) -> u16 {
    let acc = u64::from(!old_checksum)
        + u64::from(!(old >> 16) as u16)
        + u64::from(!(old as u16))
        + u64::from((new >> 16) as u16)
        + u64::from(new as u16);
    !fold(acc)
}

/// Updates a checksum field after an IPv4 address it covers (directly or
/// through the pseudo-header) changed from `old` to `new`.
pub fn update_ipv4_addr(old_checksum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update_u32(old_checksum, u32::from(old), u32::from(new))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classic example header from RFC 1071 / Wikipedia, checksum 0xb861.
    const IPV4_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn full(bytes: &[u8], checksum_at: usize) -> u16 {
        let mut copy = [0u8; 64];
        let copy = &mut copy[..bytes.len()];
        copy.copy_from_slice(bytes);
        copy[checksum_at] = 0;
        copy[checksum_at + 1] = 0;
        !data(copy)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(full(&IPV4_HEADER, 10), 0xb861);
        assert_eq!(data(&IPV4_HEADER), 0xffff);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[]), 0);
        // Every split of the input gives the same sum.
        let bytes = [0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0xff, 0xfe, 0x80, 0x7f];
        for split in (0..bytes.len()).step_by(2) {
            assert_eq!(
                combine(&[data(&bytes[..split]), data(&bytes[split..])]),
                data(&bytes)
            );
        }
    }

    #[test]
    fn incremental_u16_matches_full_recompute() {
        // (byte offset of a 16-bit word, new value) in the example header.
        let cases: [(usize, u16); 6] = [
            (8, 0x3f11),  // TTL 64 -> 63
            (8, 0x0111),  // TTL 64 -> 1
            (4, 0xffff),  // identification
            (4, 0x1234),  // identification
            (2, 0x0014),  // total length
            (12, 0x0a00), // half of the source address
        ];
        for (at, new_word) in cases {
            let mut hdr = IPV4_HEADER;
            let old_word = u16::from_be_bytes([hdr[at], hdr[at + 1]]);
            hdr[at..at + 2].copy_from_slice(&new_word.to_be_bytes());
            let incremental = update_u16(0xb861, old_word, new_word);
            assert_eq!(incremental, full(&hdr, 10), "word at {at} -> {new_word:#x}");
        }
    }

    #[test]
    fn incremental_u32_matches_full_recompute() {
        let news = [
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(255, 255, 255, 255),
            Ipv4Addr::new(0, 0, 0, 0),
            Ipv4Addr::new(203, 0, 113, 7),
        ];
        for new in news {
            let mut hdr = IPV4_HEADER;
            let old = Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]);
            hdr[12..16].copy_from_slice(&new.octets());
            assert_eq!(update_ipv4_addr(0xb861, old, new), full(&hdr, 10), "{new}");
            // Applying the change twice (there and back) restores the original.
            let back = update_ipv4_addr(full(&hdr, 10), new, old);
            assert_eq!(back, 0xb861);
        }
    }

    #[test]
    fn incremental_equals_two_u16_updates() {
        let (old, new) = (0xc0a8_0001u32, 0x0a01_0203u32);
        let step = update_u16(0xb861, (old >> 16) as u16, (new >> 16) as u16);
        let step = update_u16(step, old as u16, new as u16);
        assert_eq!(update_u32(0xb861, old, new), step);
    }

    #[test]
    fn pseudo_headers() {
        let src = Ipv4Addr::new(192, 168, 0, 1);
        let dst = Ipv4Addr::new(192, 168, 0, 199);
        // c0a8 + 0001 + c0a8 + 00c7 + 0011 + 001c
        let expected = fold(0xc0a8 + 0x0001 + 0xc0a8 + 0x00c7 + 0x0011 + 0x001c);
        assert_eq!(pseudo_header_v4(src, dst, IpProtocol::Udp, 28), expected);
        let src6 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let dst6 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        let expected = fold(0xfe80 + 1 + 0xfe80 + 2 + 17 + 28);
        assert_eq!(pseudo_header_v6(src6, dst6, IpProtocol::Udp, 28), expected);
    }
}
