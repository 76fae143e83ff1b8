//! ARP for IPv4 over Ethernet (RFC 826).

use core::net::Ipv4Addr;

use super::{check_len, enum_with_unknown, EtherType, EthernetAddress, Layer, WireError};

enum_with_unknown! {
    /// The ARP operation.
    pub enum ArpOperation(u16) {
        /// "Who has ... ? Tell ..."
        Request = 1,
        /// "... is at ..."
        Reply = 2,
    }
}

mod field {
    use core::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    /// The end of the fixed part that says how long the addresses are.
    pub const FIXED_END: usize = 8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
    pub const END: usize = TPA.end;
}

const HTYPE_ETHERNET: u16 = 1;
const HLEN_ETHERNET: u8 = 6;
const PLEN_IPV4: u8 = 4;

/// A view of an ARP packet for IPv4 over Ethernet.
///
/// [`new_checked`](Self::new_checked) rejects any other hardware or protocol
/// type, so the address accessors always read 6-byte hardware and 4-byte
/// protocol addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// The length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = field::END;

    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after checking that it is a whole Ethernet/IPv4 ARP
    /// packet.
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Checks the length and the hardware and protocol types and lengths.
    pub fn check(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        check_len(Layer::Arp, field::FIXED_END, len)?;
        let unsupported = |what| {
            Err(WireError::Unsupported {
                layer: Layer::Arp,
                what,
            })
        };
        if self.hardware_type() != HTYPE_ETHERNET {
            return unsupported("hardware type (only Ethernet)");
        }
        if self.protocol_type() != EtherType::Ipv4 {
            return unsupported("protocol type (only IPv4)");
        }
        if self.hardware_len() != HLEN_ETHERNET || self.protocol_len() != PLEN_IPV4 {
            return unsupported("address lengths (only 6 and 4)");
        }
        check_len(Layer::Arp, field::END, len)
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::HTYPE])
    }

    /// The protocol type.
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(be16(&self.buffer.as_ref()[field::PTYPE]))
    }

    /// The hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// The protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The operation.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(be16(&self.buffer.as_ref()[field::OPER]))
    }

    /// The sender's hardware address.
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    /// The sender's protocol address.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::SPA])
    }

    /// The target's hardware address.
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    /// The target's protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::TPA])
    }

    /// Bytes after the ARP packet (Ethernet padding); usually ignored.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::END..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::HTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        self.buffer.as_mut()[field::PTYPE].copy_from_slice(&u16::from(value).to_be_bytes());
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, value: ArpOperation) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&u16::from(value).to_be_bytes());
    }

    /// Sets the sender's hardware address.
    pub fn set_source_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    /// Sets the sender's protocol address.
    pub fn set_source_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    /// Sets the target's hardware address.
    pub fn set_target_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    /// Sets the target's protocol address.
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }

    /// Bytes after the ARP packet, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::END..]
    }
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request, reply, or another operation.
    pub operation: ArpOperation,
    /// The sender's hardware address.
    pub source_hardware_addr: EthernetAddress,
    /// The sender's IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// The target's hardware address (zero in a request).
    pub target_hardware_addr: EthernetAddress,
    /// The target's IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an ARP packet, checking it if it was wrapped unchecked.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr, WireError> {
        packet.check()?;
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// The reply to this request, from `our_hardware_addr`: sender and target
    /// swapped, the sender's hardware address filled in.
    pub fn reply(&self, our_hardware_addr: EthernetAddress) -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: our_hardware_addr,
            source_protocol_addr: self.target_protocol_addr,
            target_hardware_addr: self.source_hardware_addr,
            target_protocol_addr: self.source_protocol_addr,
        }
    }

    /// The length of the ARP packet.
    pub const fn header_len(&self) -> usize {
        field::END
    }

    /// The length of the ARP packet.
    pub const fn buffer_len(&self) -> usize {
        field::END
    }

    /// Writes the packet.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(HLEN_ETHERNET);
        packet.set_protocol_len(PLEN_IPV4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Who has 10.0.0.1? Tell 10.0.0.2" from 52:54:00:12:34:56.
    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a,
        0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01,
    ];

    /// "10.0.0.1 is at 52:54:00:ab:cd:ef", to 10.0.0.2.
    static REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 0x0a,
        0x00, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a, 0x00, 0x00, 0x02,
    ];

    const ASKER: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const OWNER: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);

    fn request() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: ASKER,
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
        }
    }

    #[test]
    fn parse_golden() {
        let packet = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(packet.operation(), ArpOperation::Request);
        assert_eq!(packet.source_hardware_addr(), ASKER);
        assert_eq!(packet.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(ArpRepr::parse(&packet).unwrap(), request());
    }

    #[test]
    fn emit_golden() {
        let mut bytes = [0xffu8; 28];
        let mut packet = ArpPacket::new_unchecked(&mut bytes[..]);
        request().emit(&mut packet);
        assert_eq!(packet.as_bytes(), &REQUEST[..]);

        let reply = request().reply(OWNER);
        let mut bytes = [0u8; 28];
        reply.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, REPLY);
        assert_eq!(reply.buffer_len(), 28);
    }

    #[test]
    fn with_ethernet_padding() {
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&REQUEST);
        let packet = ArpPacket::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload().len(), 18);
        assert_eq!(ArpRepr::parse(&packet).unwrap(), request());
    }

    #[test]
    fn truncated_and_unsupported() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..7]),
            Err(WireError::Truncated {
                layer: Layer::Arp,
                required: 8,
                len: 7
            })
        );
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]),
            Err(WireError::Truncated {
                layer: Layer::Arp,
                required: 28,
                len: 27
            })
        );
        let mut bad = REQUEST;
        bad[1] = 6; // IEEE 802 hardware type
        assert!(matches!(
            ArpPacket::new_checked(&bad[..]),
            Err(WireError::Unsupported {
                layer: Layer::Arp,
                ..
            })
        ));
        let mut bad = REQUEST;
        bad[2..4].copy_from_slice(&[0x86, 0xdd]);
        assert!(ArpPacket::new_checked(&bad[..]).is_err());
        let mut bad = REQUEST;
        bad[5] = 16;
        assert!(ArpPacket::new_checked(&bad[..]).is_err());
        // An unchecked view is still checked by parse.
        assert!(ArpRepr::parse(&ArpPacket::new_unchecked(&REQUEST[..20])).is_err());
    }

    #[test]
    fn setters_round_trip() {
        let mut packet = ArpPacket::new_unchecked([0u8; 28]);
        packet.set_operation(ArpOperation::Unknown(9));
        packet.set_target_hardware_addr(OWNER);
        packet.set_source_protocol_addr(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(packet.operation(), ArpOperation::Unknown(9));
        assert_eq!(packet.target_hardware_addr(), OWNER);
        assert_eq!(packet.source_protocol_addr(), Ipv4Addr::new(192, 0, 2, 1));
    }
}
