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
//!
//! # Partial checksums (checksum offload)
//!
//! A frame the host marks `FLAG_CSUM_PARTIAL` (Linux `CHECKSUM_PARTIAL`,
//! virtio-net `NEEDS_CSUM`) carries in its TCP/UDP checksum field not a
//! checksum but `P`, the folded, *not complemented* sum of the pseudo-header
//! ([`pseudo_header_v4`]). The transmitter completes it: it sums the L4
//! header and payload with the field holding `P`, and writes the complement.
//!
//! So when a module changes a **pseudo-header** field (an address, the L4
//! length), it updates `P` with [`update_partial_u16`], [`update_partial_u32`]
//! or [`update_partial_ipv4_addr`]: `P' = P - old + new`. A field of the
//! **L4 header or payload** (a port) needs no update at all: it is summed
//! when the checksum is completed. Using the RFC 1624 helpers on a partial
//! field, or updating it for a port, corrupts the checksum the receiver sees.

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

/// Updates a *partial* checksum field (the folded, not complemented,
/// pseudo-header sum `P`) after a 16-bit word of the pseudo-header changed
/// from `old_word` to `new_word`: `P' = P - old + new` in one's-complement
/// arithmetic. Only pseudo-header fields (addresses, L4 length) need this;
/// see the module documentation.
pub fn update_partial_u16(partial: u16, old_word: u16, new_word: u16) -> u16 {
    !update_u16(!partial, old_word, new_word)
}

/// [`update_partial_u16`] for a 32-bit pseudo-header field.
pub fn update_partial_u32(partial: u16, old: u32, new: u32) -> u16 {
    !update_u32(!partial, old, new)
}

/// [`update_partial_u16`] for an IPv4 address of the pseudo-header (what a
/// NAT rewrites in a frame whose L4 checksum is partial).
pub fn update_partial_ipv4_addr(partial: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update_partial_u32(partial, u32::from(old), u32::from(new))
}

/// Completes a partial checksum as the transmitter does: `l4` is the TCP or
/// UDP header and payload, with its checksum field holding the partial sum.
/// Returns the value the field must hold (for UDP, send a 0 as 0xffff).
pub fn complete_partial(l4: &[u8]) -> u16 {
    !data(l4)
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

    /// A TCP/IPv4 segment (header and payload, checksum field zero) and its
    /// addresses.
    fn tcp_segment(src_port: u16, payload_len: usize) -> std::vec::Vec<u8> {
        let mut seg = std::vec![0u8; 20 + payload_len];
        seg[0..2].copy_from_slice(&src_port.to_be_bytes());
        seg[2..4].copy_from_slice(&443u16.to_be_bytes());
        seg[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        seg[12] = 5 << 4;
        seg[13] = 0x18;
        seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
        for (i, b) in seg[20..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        seg
    }

    /// The partial sum Linux leaves in the field for CHECKSUM_PARTIAL:
    /// `~tcp_v4_check(len, saddr, daddr, 0)`, the folded pseudo-header sum.
    fn linux_partial(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> u16 {
        pseudo_header_v4(src, dst, IpProtocol::Tcp, len as u32)
    }

    /// The checksum computed from scratch over the pseudo-header and segment.
    fn from_scratch(src: Ipv4Addr, dst: Ipv4Addr, seg: &[u8]) -> u16 {
        let mut seg = seg.to_vec();
        seg[16..18].copy_from_slice(&[0, 0]);
        !combine(&[
            pseudo_header_v4(src, dst, IpProtocol::Tcp, seg.len() as u32),
            data(&seg),
        ])
    }

    #[test]
    fn partial_update_then_completion_matches_from_scratch() {
        let dst = Ipv4Addr::new(198, 51, 100, 20);
        let cases = [
            (
                Ipv4Addr::new(192, 168, 1, 10),
                Ipv4Addr::new(203, 0, 113, 1),
            ),
            (
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(255, 255, 255, 254),
            ),
            (Ipv4Addr::new(172, 16, 0, 99), Ipv4Addr::new(1, 0, 0, 0)),
        ];
        for (payload_len, (old_src, new_src)) in [0usize, 1, 1448, 30_001]
            .into_iter()
            .zip(cases.iter().copied().cycle())
        {
            for (old_port, new_port) in [(40000u16, 20001u16), (1, 65535), (65535, 0)] {
                let mut seg = tcp_segment(old_port, payload_len);
                let p = linux_partial(old_src, dst, seg.len());
                seg[16..18].copy_from_slice(&p.to_be_bytes());

                // A NAT rewrites the source address and port of the
                // partial frame: the address through the partial rule, the
                // port not at all (it is summed on completion).
                let p2 = update_partial_ipv4_addr(p, old_src, new_src);
                seg[0..2].copy_from_slice(&new_port.to_be_bytes());
                seg[16..18].copy_from_slice(&p2.to_be_bytes());
                assert_eq!(p2, linux_partial(new_src, dst, seg.len()));

                let completed = complete_partial(&seg);
                assert_eq!(
                    completed,
                    from_scratch(new_src, dst, &seg),
                    "{old_src}->{new_src} port {old_port}->{new_port} len {payload_len}"
                );
                // And the completed segment verifies.
                seg[16..18].copy_from_slice(&completed.to_be_bytes());
                assert_eq!(
                    combine(&[
                        pseudo_header_v4(new_src, dst, IpProtocol::Tcp, seg.len() as u32),
                        data(&seg)
                    ]),
                    0xffff
                );
            }
        }
    }

    #[test]
    fn rfc1624_rule_on_a_partial_field_is_wrong() {
        // Guards the reason the partial helpers exist.
        let (old_src, new_src) = (
            Ipv4Addr::new(192, 168, 1, 10),
            Ipv4Addr::new(203, 0, 113, 1),
        );
        let dst = Ipv4Addr::new(198, 51, 100, 20);
        let mut seg = tcp_segment(40000, 100);
        let p = linux_partial(old_src, dst, seg.len());
        let wrong = update_ipv4_addr(p, old_src, new_src);
        seg[16..18].copy_from_slice(&wrong.to_be_bytes());
        assert_ne!(complete_partial(&seg), from_scratch(new_src, dst, &seg));
    }

    #[test]
    fn partial_u16_and_u32_agree() {
        let p = 0x1234;
        let (old, new) = (0xc0a8_0001u32, 0x0a01_0203u32);
        let step = update_partial_u16(p, (old >> 16) as u16, (new >> 16) as u16);
        let step = update_partial_u16(step, old as u16, new as u16);
        assert_eq!(update_partial_u32(p, old, new), step);
        // There and back.
        assert_eq!(
            update_partial_u32(update_partial_u32(p, old, new), new, old),
            p
        );
    }
}
