//! IPv4 headers (RFC 791).

use core::net::Ipv4Addr;

use super::{check_len, checksum, IpProtocol, Layer, WireError};

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    /// TTL and protocol together, the 16-bit word the checksum sees.
    pub const TTL_PROTOCOL: Range<usize> = 8..10;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
    /// The length of a header without options.
    pub const MIN_HEADER: usize = DST_ADDR.end;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
///
/// [`new_checked`](Self::new_checked) checks the version, the IHL and the
/// total length against the buffer; [`payload`](Self::payload) is the bytes
/// from the end of the header to the total length, so Ethernet padding after
/// the datagram is excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// The length of a header without options.
    pub const MIN_HEADER_LEN: usize = field::MIN_HEADER;

    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after checking the version and the length fields.
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Checks the version, IHL and total length against the buffer.
    pub fn check(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        check_len(Layer::Ipv4, field::MIN_HEADER, len)?;
        if self.version() != 4 {
            return Err(WireError::BadVersion {
                layer: Layer::Ipv4,
                found: self.version(),
            });
        }
        let header_len = self.header_len();
        if header_len < field::MIN_HEADER {
            return Err(WireError::BadHeaderLength {
                layer: Layer::Ipv4,
                header_len,
                min: field::MIN_HEADER,
            });
        }
        check_len(Layer::Ipv4, header_len, len)?;
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(WireError::BadLength {
                layer: Layer::Ipv4,
                length: total_len,
                min: header_len,
            });
        }
        check_len(Layer::Ipv4, total_len, len)
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer (which may extend past the total length).
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The version field (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The differentiated services code point.
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// The explicit congestion notification bits.
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The total length of the datagram, header included.
    pub fn total_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::IDENT])
    }

    /// Whether the don't-fragment flag is set.
    pub fn dont_frag(&self) -> bool {
        be16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_DF != 0
    }

    /// Whether the more-fragments flag is set.
    pub fn more_frags(&self) -> bool {
        be16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_MF != 0
    }

    /// The fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(&self.buffer.as_ref()[field::FLG_OFF]) & FRAG_OFFSET_MASK) << 3
    }

    /// Whether this is a fragment of a larger datagram.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// The time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// The options: the header bytes after the fixed header.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::MIN_HEADER..self.header_len()]
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }

    /// The bytes from the end of the header to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version field.
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, 20 to 60).
    pub fn set_header_len(&mut self, header_len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((header_len / 4) as u8 & 0x0f);
    }

    /// Sets the differentiated services code point (6 bits).
    pub fn set_dscp(&mut self, dscp: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (dscp << 2);
    }

    /// Sets the explicit congestion notification bits (2 bits).
    pub fn set_ecn(&mut self, ecn: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (ecn & 0x03);
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, total_len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&total_len.to_be_bytes());
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, ident: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&ident.to_be_bytes());
    }

    fn set_flg_off(&mut self, mask: u16, value: u16) {
        let raw = be16(&self.buffer.as_ref()[field::FLG_OFF]);
        let raw = (raw & !mask) | (value & mask);
        self.buffer.as_mut()[field::FLG_OFF].copy_from_slice(&raw.to_be_bytes());
    }

    /// Sets the don't-fragment flag.
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flg_off(FLAG_DF, if value { FLAG_DF } else { 0 });
    }

    /// Sets the more-fragments flag.
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flg_off(FLAG_MF, if value { FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset in bytes (a multiple of 8).
    pub fn set_frag_offset(&mut self, offset: u16) {
        self.set_flg_off(FRAG_OFFSET_MASK, offset >> 3);
    }

    /// Sets the time to live (the checksum is not updated).
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = u8::from(protocol);
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source address (the checksum is not updated).
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address (the checksum is not updated).
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the source address and updates the header checksum
    /// incrementally. Returns the old address. A NAT must also update the
    /// UDP or TCP checksum, which covers the address through its
    /// pseudo-header, with [`checksum::update_ipv4_addr`].
    pub fn set_src_addr_incremental(&mut self, addr: Ipv4Addr) -> Ipv4Addr {
        let old = self.src_addr();
        self.set_src_addr(addr);
        self.set_checksum(checksum::update_ipv4_addr(self.checksum(), old, addr));
        old
    }

    /// Sets the destination address and updates the header checksum
    /// incrementally. Returns the old address.
    pub fn set_dst_addr_incremental(&mut self, addr: Ipv4Addr) -> Ipv4Addr {
        let old = self.dst_addr();
        self.set_dst_addr(addr);
        self.set_checksum(checksum::update_ipv4_addr(self.checksum(), old, addr));
        old
    }

    /// Decrements the TTL and updates the checksum incrementally (RFC 1624),
    /// as a router does. Returns the new TTL, or `None` (changing nothing) if
    /// the TTL was already 0. A router that gets `Some(0)` must not forward
    /// the datagram but send ICMP time exceeded.
    pub fn decrement_ttl_incremental(&mut self) -> Option<u8> {
        let ttl = self.ttl().checked_sub(1)?;
        let old_word = be16(&self.buffer.as_ref()[field::TTL_PROTOCOL]);
        self.set_ttl(ttl);
        let new_word = be16(&self.buffer.as_ref()[field::TTL_PROTOCOL]);
        self.set_checksum(checksum::update_u16(self.checksum(), old_word, new_word));
        Some(ttl)
    }

    /// Computes and writes the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(!sum);
    }

    /// The options, mutably.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[field::MIN_HEADER..header_len]
    }

    /// The bytes from the end of the header to the total length, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// The fields of an IPv4 header without options, for an unfragmented
/// datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Length of the payload in bytes (at most 65515; `emit` saturates the
    /// total length field).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Differentiated services code point (6 bits).
    pub dscp: u8,
    /// Explicit congestion notification (2 bits).
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Reads a header, verifying its checksum. Options are skipped (the
    /// payload starts after them); fragments are `Unsupported`.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr, WireError> {
        packet.check()?;
        if !packet.verify_checksum() {
            return Err(WireError::BadChecksum { layer: Layer::Ipv4 });
        }
        if packet.is_fragment() {
            return Err(WireError::Unsupported {
                layer: Layer::Ipv4,
                what: "fragment",
            });
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// The length of the header this emits (20).
    pub const fn header_len(&self) -> usize {
        field::MIN_HEADER
    }

    /// The length of the whole datagram.
    pub const fn buffer_len(&self) -> usize {
        field::MIN_HEADER + self.payload_len
    }

    /// Writes the header, checksum included.
    ///
    /// # Panics
    /// If the buffer is shorter than [`header_len`](Self::header_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        packet.set_version(4);
        packet.set_header_len(field::MIN_HEADER);
        packet.set_dscp(self.dscp);
        packet.set_ecn(self.ecn);
        let total_len = u16::try_from(self.buffer_len()).unwrap_or(u16::MAX);
        packet.set_total_len(total_len);
        packet.set_ident(self.ident);
        packet.set_flg_off(0xffff, if self.dont_frag { FLAG_DF } else { 0 });
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.0.2 -> 10.0.0.1, ICMP echo request, DF, TTL 64, ident 0x5a3c.
    static ICMP_ECHO_IP: [u8; 44] = [
        0x45, 0x00, 0x00, 0x2c, 0x5a, 0x3c, 0x40, 0x00, 0x40, 0x01, 0xcc, 0x92, 0x0a, 0x00, 0x00,
        0x02, 0x0a, 0x00, 0x00, 0x01, 0x08, 0x00, 0xae, 0xd1, 0x12, 0x34, 0x00, 0x01, 0x6e, 0x66,
        0x76, 0x68, 0x6f, 0x73, 0x74, 0x21, 0x70, 0x69, 0x6e, 0x67, 0x2d, 0x61, 0x62, 0x63,
    ];

    /// The header of the example in RFC 1071 discussions: 192.168.0.1 ->
    /// 192.168.0.199, UDP, checksum 0xb861.
    static CLASSIC_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 2),
            dst_addr: Ipv4Addr::new(10, 0, 0, 1),
            protocol: IpProtocol::Icmp,
            payload_len: 24,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0x5a3c,
            dont_frag: true,
        }
    }

    #[test]
    fn parse_golden() {
        let packet = Ipv4Packet::new_checked(&ICMP_ECHO_IP[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.total_len(), 44);
        assert_eq!(packet.ident(), 0x5a3c);
        assert!(packet.dont_frag() && !packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), IpProtocol::Icmp);
        assert_eq!(packet.checksum(), 0xcc92);
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload(), &ICMP_ECHO_IP[20..]);
        assert!(packet.options().is_empty());
        assert_eq!(Ipv4Repr::parse(&packet).unwrap(), repr());
    }

    #[test]
    fn emit_golden() {
        let mut bytes = ICMP_ECHO_IP;
        bytes[..20].fill(0xa5);
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        assert_eq!(packet.as_bytes(), &ICMP_ECHO_IP[..]);
        assert_eq!(repr().buffer_len(), 44);
    }

    #[test]
    fn classic_checksum() {
        let packet = Ipv4Packet::new_unchecked(&CLASSIC_HEADER[..]);
        assert!(packet.verify_checksum());
        let mut copy = CLASSIC_HEADER;
        let mut packet = Ipv4Packet::new_unchecked(&mut copy[..]);
        packet.set_checksum(0);
        assert!(!packet.verify_checksum());
        packet.fill_checksum();
        assert_eq!(packet.checksum(), 0xb861);
        // Total length 0x73 exceeds this 20-byte buffer.
        assert_eq!(
            Ipv4Packet::new_checked(&CLASSIC_HEADER[..]),
            Err(WireError::Truncated {
                layer: Layer::Ipv4,
                required: 0x73,
                len: 20
            })
        );
    }

    #[test]
    fn padding_is_not_payload() {
        let mut frame = [0u8; 46];
        frame[..44].copy_from_slice(&ICMP_ECHO_IP);
        let packet = Ipv4Packet::new_checked(&frame[..]).unwrap();
        assert_eq!(packet.payload().len(), 24);
    }

    #[test]
    fn bad_headers() {
        let err = |bytes: &[u8]| Ipv4Packet::new_checked(bytes).unwrap_err();
        assert_eq!(
            err(&ICMP_ECHO_IP[..19]),
            WireError::Truncated {
                layer: Layer::Ipv4,
                required: 20,
                len: 19
            }
        );
        assert_eq!(
            err(&ICMP_ECHO_IP[..43]),
            WireError::Truncated {
                layer: Layer::Ipv4,
                required: 44,
                len: 43
            }
        );
        let mut b = ICMP_ECHO_IP;
        b[0] = 0x65;
        assert_eq!(
            err(&b),
            WireError::BadVersion {
                layer: Layer::Ipv4,
                found: 6
            }
        );
        b[0] = 0x44;
        assert_eq!(
            err(&b),
            WireError::BadHeaderLength {
                layer: Layer::Ipv4,
                header_len: 16,
                min: 20
            }
        );
        b[0] = 0x4f;
        assert_eq!(
            err(&b),
            WireError::Truncated {
                layer: Layer::Ipv4,
                required: 60,
                len: 44
            }
        );
        let mut b = ICMP_ECHO_IP;
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            err(&b),
            WireError::BadLength {
                layer: Layer::Ipv4,
                length: 19,
                min: 20
            }
        );
    }

    #[test]
    fn repr_rejects_bad_checksum_and_fragments() {
        let mut b = ICMP_ECHO_IP;
        b[11] ^= 1;
        let packet = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Ipv4Repr::parse(&packet),
            Err(WireError::BadChecksum { layer: Layer::Ipv4 })
        );
        let mut b = ICMP_ECHO_IP;
        let mut packet = Ipv4Packet::new_unchecked(&mut b[..]);
        packet.set_more_frags(true);
        packet.fill_checksum();
        assert!(matches!(
            Ipv4Repr::parse(&packet),
            Err(WireError::Unsupported { .. })
        ));
    }

    #[test]
    fn options() {
        let mut b = [0u8; 28];
        b[..20].copy_from_slice(&ICMP_ECHO_IP[..20]);
        let mut packet = Ipv4Packet::new_unchecked(&mut b[..]);
        packet.set_header_len(24);
        packet.set_total_len(28);
        packet.options_mut().copy_from_slice(&[0x94, 0x04, 0, 0]); // router alert
        packet.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        packet.fill_checksum();
        let packet = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(packet.options(), &[0x94, 0x04, 0, 0]);
        assert_eq!(packet.payload(), &[1, 2, 3, 4]);
        let repr = Ipv4Repr::parse(&packet).unwrap();
        assert_eq!(repr.payload_len, 4);
    }

    #[test]
    fn setters_round_trip() {
        let mut packet = Ipv4Packet::new_unchecked([0u8; 20]);
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_dscp(46);
        packet.set_ecn(2);
        packet.set_frag_offset(1480);
        packet.set_more_frags(true);
        packet.set_dont_frag(false);
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!((packet.dscp(), packet.ecn()), (46, 2));
        assert_eq!(packet.frag_offset(), 1480);
        assert!(packet.more_frags() && !packet.dont_frag() && packet.is_fragment());
        packet.set_dont_frag(true);
        packet.set_more_frags(false);
        assert!(packet.dont_frag() && !packet.more_frags());
        assert_eq!(packet.frag_offset(), 1480);
        packet.set_protocol(IpProtocol::Unknown(253));
        assert_eq!(packet.protocol(), IpProtocol::Unknown(253));
    }

    #[test]
    fn incremental_updates_match_fill_checksum() {
        let mut b = ICMP_ECHO_IP;
        let mut packet = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        for expected in (0..64).rev() {
            assert_eq!(packet.decrement_ttl_incremental(), Some(expected));
            assert!(packet.verify_checksum(), "ttl {expected}");
        }
        assert_eq!(packet.decrement_ttl_incremental(), None);
        let old = packet.set_src_addr_incremental(Ipv4Addr::new(203, 0, 113, 9));
        assert_eq!(old, Ipv4Addr::new(10, 0, 0, 2));
        packet.set_dst_addr_incremental(Ipv4Addr::new(198, 51, 100, 250));
        let incremental = packet.checksum();
        assert!(packet.verify_checksum());
        packet.fill_checksum();
        assert_eq!(packet.checksum(), incremental);
    }
}
