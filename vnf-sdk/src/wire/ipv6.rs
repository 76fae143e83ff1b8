//! IPv6 fixed headers (RFC 8200). Extension headers are not parsed: the
//! payload starts right after the fixed header, and `next_header` names what
//! is there.

use core::net::Ipv6Addr;

use super::{check_len, IpProtocol, Layer, WireError};

mod field {
    use core::ops::Range;

    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
    pub const PAYLOAD: usize = DST_ADDR.end;
}

const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// A view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn ipv6(b: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(b);
    Ipv6Addr::from(octets)
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// The length of the fixed header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after checking the version and the payload length.
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Checks the version and the payload length against the buffer.
    pub fn check(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        check_len(Layer::Ipv6, field::PAYLOAD, len)?;
        if self.version() != 6 {
            return Err(WireError::BadVersion {
                layer: Layer::Ipv6,
                found: self.version(),
            });
        }
        check_len(
            Layer::Ipv6,
            field::PAYLOAD + usize::from(self.payload_len()),
            len,
        )
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn ver_tc_flow(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The version field (6).
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// The traffic class.
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// The flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & FLOW_LABEL_MASK
    }

    /// The length of everything after the fixed header.
    pub fn payload_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The type of the header after the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        ipv6(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        ipv6(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// The `payload_len` bytes after the fixed header.
    pub fn payload(&self) -> &[u8] {
        let end = field::PAYLOAD + usize::from(self.payload_len());
        &self.buffer.as_ref()[field::PAYLOAD..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_ver_tc_flow(&mut self, value: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version field.
    pub fn set_version(&mut self, version: u8) {
        let raw = self.ver_tc_flow() & 0x0fff_ffff;
        self.set_ver_tc_flow(raw | (u32::from(version & 0x0f) << 28));
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let raw = self.ver_tc_flow() & 0xf00f_ffff;
        self.set_ver_tc_flow(raw | (u32::from(tc) << 20));
    }

    /// Sets the flow label (the low 20 bits of `label`).
    pub fn set_flow_label(&mut self, label: u32) {
        let raw = self.ver_tc_flow() & !FLOW_LABEL_MASK;
        self.set_ver_tc_flow(raw | (label & FLOW_LABEL_MASK));
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, next_header: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = u8::from(next_header);
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The `payload_len` bytes after the fixed header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = field::PAYLOAD + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }
}

/// The fields of an IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Type of the next header.
    pub next_header: IpProtocol,
    /// Length of the payload in bytes.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Reads a fixed header.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Ipv6Repr, WireError> {
        packet.check()?;
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// The length of the fixed header (40).
    pub const fn header_len(&self) -> usize {
        field::PAYLOAD
    }

    /// The length of the whole packet.
    pub const fn buffer_len(&self) -> usize {
        field::PAYLOAD + self.payload_len
    }

    /// Writes the fixed header.
    ///
    /// # Panics
    /// If the buffer is shorter than [`header_len`](Self::header_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        packet.set_ver_tc_flow(
            (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & FLOW_LABEL_MASK),
        );
        packet.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fe80::1 -> fe80::2, traffic class 0x12, flow label 0x34567, UDP
    /// 546 -> 547 with a 4-byte payload.
    static IPV6_UDP: [u8; 52] = [
        0x61, 0x23, 0x45, 0x67, 0x00, 0x0c, 0x11, 0x40, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x22, 0x02, 0x23, 0x00,
        0x0c, 0xfa, 0x86, 0x01, 0x02, 0x03, 0x04,
    ];

    fn repr() -> Ipv6Repr {
        Ipv6Repr {
            src_addr: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            dst_addr: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2),
            next_header: IpProtocol::Udp,
            payload_len: 12,
            hop_limit: 64,
            traffic_class: 0x12,
            flow_label: 0x34567,
        }
    }

    #[test]
    fn parse_golden() {
        let packet = Ipv6Packet::new_checked(&IPV6_UDP[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0x12);
        assert_eq!(packet.flow_label(), 0x34567);
        assert_eq!(packet.payload_len(), 12);
        assert_eq!(packet.next_header(), IpProtocol::Udp);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.payload(), &IPV6_UDP[40..]);
        assert_eq!(Ipv6Repr::parse(&packet).unwrap(), repr());
    }

    #[test]
    fn emit_golden() {
        let mut bytes = IPV6_UDP;
        bytes[..40].fill(0xee);
        repr().emit(&mut Ipv6Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, IPV6_UDP);
        assert_eq!(repr().buffer_len(), 52);
    }

    #[test]
    fn bad_packets() {
        assert_eq!(
            Ipv6Packet::new_checked(&IPV6_UDP[..39]),
            Err(WireError::Truncated {
                layer: Layer::Ipv6,
                required: 40,
                len: 39
            })
        );
        assert_eq!(
            Ipv6Packet::new_checked(&IPV6_UDP[..51]),
            Err(WireError::Truncated {
                layer: Layer::Ipv6,
                required: 52,
                len: 51
            })
        );
        let mut b = IPV6_UDP;
        b[0] = 0x41;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]),
            Err(WireError::BadVersion {
                layer: Layer::Ipv6,
                found: 4
            })
        );
    }

    #[test]
    fn setters_round_trip() {
        let mut packet = Ipv6Packet::new_unchecked([0u8; 40]);
        packet.set_version(6);
        packet.set_flow_label(0xfffff);
        packet.set_traffic_class(0xab);
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0xab);
        assert_eq!(packet.flow_label(), 0xfffff);
        packet.set_flow_label(1);
        assert_eq!((packet.version(), packet.traffic_class()), (6, 0xab));
        packet.set_hop_limit(1);
        packet.set_next_header(IpProtocol::Icmpv6);
        assert_eq!(packet.hop_limit(), 1);
        assert_eq!(packet.next_header(), IpProtocol::Icmpv6);
        assert!(packet.payload_mut().is_empty());
    }
}
