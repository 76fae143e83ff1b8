//! UDP datagrams (RFC 768).

use super::checksum::{self, PseudoHeader};
use super::{check_len, IpProtocol, Layer, WireError};

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const PAYLOAD: usize = CHECKSUM.end;
}

/// A view of a UDP datagram.
///
/// [`new_checked`](Self::new_checked) checks the length field against the
/// buffer; [`payload`](Self::payload) ends at the length field, so trailing
/// bytes in the buffer are excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// The length of the UDP header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after checking the header and the length field.
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Checks the length field against the buffer.
    pub fn check(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        check_len(Layer::Udp, field::PAYLOAD, len)?;
        let length = usize::from(self.len());
        if length < field::PAYLOAD {
            return Err(WireError::BadLength {
                layer: Layer::Udp,
                length,
                min: field::PAYLOAD,
            });
        }
        check_len(Layer::Udp, length, len)
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// The length field: header plus payload.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The checksum field (0 means none was computed, allowed over IPv4).
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The bytes after the header, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..usize::from(self.len())]
    }

    fn sum<A: PseudoHeader>(&self, src: A, dst: A) -> u16 {
        let length = self.len();
        checksum::combine(&[
            A::pseudo_header_sum(src, dst, IpProtocol::Udp, u32::from(length)),
            checksum::data(&self.buffer.as_ref()[..usize::from(length)]),
        ])
    }

    /// Whether the checksum is correct for a datagram from `src` to `dst`
    /// (both [`Ipv4Addr`](core::net::Ipv4Addr) or both
    /// [`Ipv6Addr`](core::net::Ipv6Addr)). Over IPv4 a checksum field of 0
    /// means "not computed" and verifies.
    pub fn verify_checksum<A: PseudoHeader>(&self, src: A, dst: A) -> bool {
        if A::UDP_CHECKSUM_OPTIONAL && self.checksum() == 0 {
            return true;
        }
        self.sum(src, dst) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port (the checksum is not updated).
    pub fn set_src_port(&mut self, port: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&port.to_be_bytes());
    }

    /// Sets the destination port (the checksum is not updated).
    pub fn set_dst_port(&mut self, port: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&port.to_be_bytes());
    }

    /// Sets the length field.
    pub fn set_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Computes and writes the checksum for a datagram from `src` to `dst`.
    /// A computed 0 is sent as 0xffff, as RFC 768 requires.
    pub fn fill_checksum<A: PseudoHeader>(&mut self, src: A, dst: A) {
        self.set_checksum(0);
        let value = !self.sum(src, dst);
        self.set_checksum(if value == 0 { 0xffff } else { value });
    }

    /// Updates the checksum after an IPv4 address of the pseudo-header
    /// changed from `old` to `new`. With `partial` the field holds the
    /// pseudo-header sum and is updated with the partial rule; otherwise
    /// with RFC 1624, and a checksum of 0 ("none") stays 0.
    pub fn fix_checksum_for_addr_change(
        &mut self,
        old: core::net::Ipv4Addr,
        new: core::net::Ipv4Addr,
        partial: bool,
    ) {
        let sum = self.checksum();
        if partial {
            self.set_checksum(checksum::update_partial_ipv4_addr(sum, old, new));
        } else if sum != 0 {
            let sum = checksum::update_ipv4_addr(sum, old, new);
            self.set_checksum(if sum == 0 { 0xffff } else { sum });
        }
    }

    /// Completes a partial checksum, as the transmitter would (over the
    /// datagram up to its length field).
    pub fn complete_partial_checksum(&mut self) {
        let end = usize::from(self.len()).min(self.buffer.as_ref().len());
        let value = checksum::complete_partial(&self.buffer.as_ref()[..end]);
        self.set_checksum(if value == 0 { 0xffff } else { value });
    }

    /// The bytes after the header, up to the length field, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }
}

/// The fields of a UDP header.
///
/// The checksum needs the payload and the IP addresses, so `emit` writes it
/// as 0; write the payload, then call [`UdpPacket::fill_checksum`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Length of the payload in bytes.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads a header. The checksum is not verified here, since with
    /// checksum offload a frame may legitimately carry a partial one; call
    /// [`UdpPacket::verify_checksum`] when it matters.
    pub fn parse<T: AsRef<[u8]>>(packet: &UdpPacket<T>) -> Result<UdpRepr, WireError> {
        packet.check()?;
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.payload().len(),
        })
    }

    /// The length of the header (8).
    pub const fn header_len(&self) -> usize {
        field::PAYLOAD
    }

    /// The length of the whole datagram.
    pub const fn buffer_len(&self) -> usize {
        field::PAYLOAD + self.payload_len
    }

    /// Writes the header with a zero checksum.
    ///
    /// # Panics
    /// If the buffer is shorter than [`header_len`](Self::header_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut UdpPacket<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(u16::try_from(self.buffer_len()).unwrap_or(u16::MAX));
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    /// A DNS query header from 10.0.0.2:54321 to 10.0.0.1:53, checksum 0x0428.
    static DATAGRAM: [u8; 20] = [
        0xd4, 0x31, 0x00, 0x35, 0x00, 0x14, 0x04, 0x28, 0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    static PAYLOAD: [u8; 12] = [
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    /// UDP 546 -> 547 over IPv6 from fe80::1 to fe80::2, checksum 0xfa86.
    static DATAGRAM_V6: [u8; 12] = [
        0x02, 0x22, 0x02, 0x23, 0x00, 0x0c, 0xfa, 0x86, 0x01, 0x02, 0x03, 0x04,
    ];

    fn repr() -> UdpRepr {
        UdpRepr {
            src_port: 54321,
            dst_port: 53,
            payload_len: 12,
        }
    }

    #[test]
    fn parse_golden() {
        let packet = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(packet.src_port(), 54321);
        assert_eq!(packet.dst_port(), 53);
        assert_eq!(packet.len(), 20);
        assert_eq!(packet.checksum(), 0x0428);
        assert_eq!(packet.payload(), &PAYLOAD[..]);
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(DST, Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(UdpRepr::parse(&packet).unwrap(), repr());
    }

    #[test]
    fn emit_golden() {
        let mut bytes = [0xa5u8; 20];
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD);
        packet.fill_checksum(SRC, DST);
        assert_eq!(bytes, DATAGRAM);
        assert_eq!(repr().buffer_len(), 20);
    }

    #[test]
    fn ipv6_checksum() {
        let mut bytes = DATAGRAM_V6;
        let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let dst = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
        let mut packet = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        assert!(packet.verify_checksum(src, dst));
        packet.set_checksum(0);
        // Zero is not "no checksum" over IPv6.
        assert!(!packet.verify_checksum(src, dst));
        packet.fill_checksum(src, dst);
        assert_eq!(bytes, DATAGRAM_V6);
    }

    #[test]
    fn zero_checksum_over_ipv4() {
        let mut bytes = DATAGRAM;
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        packet.set_checksum(0);
        assert!(packet.verify_checksum(SRC, DST));
        packet.set_checksum(0x0429);
        assert!(!packet.verify_checksum(SRC, DST));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the source port so that the sum comes out as 0xffff.
        let mut bytes = DATAGRAM;
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(0);
        packet.fill_checksum(SRC, DST);
        let port = packet.checksum();
        packet.set_src_port(port);
        packet.fill_checksum(SRC, DST);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(SRC, DST));
    }

    #[test]
    fn nat_rewrite_incremental() {
        let mut bytes = DATAGRAM;
        let mut packet = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        let new_src = Ipv4Addr::new(203, 0, 113, 5);
        let new_port = 61000;
        let c = checksum::update_ipv4_addr(packet.checksum(), SRC, new_src);
        let c = checksum::update_u16(c, packet.src_port(), new_port);
        packet.set_src_port(new_port);
        packet.set_checksum(c);
        assert!(packet.verify_checksum(new_src, DST));
        packet.fill_checksum(new_src, DST);
        assert_eq!(packet.checksum(), c);
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..7]),
            Err(WireError::Truncated {
                layer: Layer::Udp,
                required: 8,
                len: 7
            })
        );
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..19]),
            Err(WireError::Truncated {
                layer: Layer::Udp,
                required: 20,
                len: 19
            })
        );
        let mut b = DATAGRAM;
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&b[..]),
            Err(WireError::BadLength {
                layer: Layer::Udp,
                length: 7,
                min: 8
            })
        );
        // A shorter length field is fine; the payload ends there.
        b[4..6].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&b[..]).unwrap().payload(),
            &[0x12, 0x34]
        );
    }
}
