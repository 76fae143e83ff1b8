//! ICMP for IPv4 (RFC 792): echo, destination unreachable, time exceeded.

use super::{check_len, checksum, enum_with_unknown, Layer, WireError};

enum_with_unknown! {
    /// The ICMPv4 message type.
    pub enum Icmpv4Message(u8) {
        /// Echo reply.
        EchoReply = 0,
        /// Destination unreachable.
        DstUnreachable = 3,
        /// Redirect.
        Redirect = 5,
        /// Echo request.
        EchoRequest = 8,
        /// Time exceeded.
        TimeExceeded = 11,
        /// Parameter problem.
        ParamProblem = 12,
    }
}

enum_with_unknown! {
    /// The code of a destination-unreachable message.
    pub enum Icmpv4DstUnreachable(u8) {
        /// Destination network unreachable.
        NetUnreachable = 0,
        /// Destination host unreachable.
        HostUnreachable = 1,
        /// Destination protocol unreachable.
        ProtoUnreachable = 2,
        /// Destination port unreachable.
        PortUnreachable = 3,
        /// Fragmentation required, and DF set (carries the next-hop MTU).
        FragRequired = 4,
        /// Source route failed.
        SrcRouteFailed = 5,
        /// Destination network unknown.
        DstNetUnknown = 6,
        /// Destination host unknown.
        DstHostUnknown = 7,
        /// Network administratively prohibited.
        NetProhibited = 9,
        /// Host administratively prohibited.
        HostProhibited = 10,
        /// Communication administratively prohibited (RFC 1812).
        CommProhibited = 13,
    }
}

enum_with_unknown! {
    /// The code of a time-exceeded message.
    pub enum Icmpv4TimeExceeded(u8) {
        /// TTL expired in transit.
        TtlExpired = 0,
        /// Fragment reassembly time exceeded.
        FragExpired = 1,
    }
}

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// Echo: identifier.
    pub const ECHO_IDENT: Range<usize> = 4..6;
    /// Echo: sequence number.
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    /// Destination unreachable, fragmentation required: next-hop MTU
    /// (RFC 1191).
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
    /// The four "rest of header" bytes.
    pub const REST: Range<usize> = 4..8;
    pub const PAYLOAD: usize = REST.end;
}

/// How many bytes of the offending datagram an ICMP error quotes: its IP
/// header and the first 8 bytes of its payload (RFC 792).
const QUOTED_PAYLOAD: usize = 8;

/// The leading bytes of `datagram` (an IPv4 datagram that caused an error)
/// that an ICMP error message carries: its header and the first 8 bytes of
/// its payload, or all of it if shorter. If the IHL cannot be read, the first
/// 28 bytes.
pub fn error_quote(datagram: &[u8]) -> &[u8] {
    let header_len = match datagram.first() {
        Some(b) if b & 0x0f >= 5 => usize::from(b & 0x0f) * 4,
        _ => 20,
    };
    &datagram[..datagram.len().min(header_len + QUOTED_PAYLOAD)]
}

/// A view of an ICMPv4 message.
///
/// The checksum covers the whole buffer, so wrap exactly the IP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// The length of the ICMP header (type, code, checksum and the four
    /// rest-of-header bytes).
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Checks the buffer holds the 8-byte header.
    pub fn check(&self) -> Result<(), WireError> {
        check_len(Layer::Icmpv4, field::PAYLOAD, self.buffer.as_ref().len())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The message type.
    pub fn msg_type(&self) -> Icmpv4Message {
        Icmpv4Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The echo identifier (for echo messages).
    pub fn echo_ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// The echo sequence number (for echo messages).
    pub fn echo_seq_no(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }

    /// The next-hop MTU (for "fragmentation required").
    pub fn next_hop_mtu(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::NEXT_HOP_MTU])
    }

    /// The bytes after the 8-byte header: echo data, or the quoted datagram
    /// of an error message.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }

    /// Whether the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: Icmpv4Message) {
        self.buffer.as_mut()[field::TYPE] = u8::from(value);
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        self.buffer.as_mut()[field::ECHO_IDENT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.buffer.as_mut()[field::ECHO_SEQNO].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the next-hop MTU (for "fragmentation required").
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        self.buffer.as_mut()[field::NEXT_HOP_MTU].copy_from_slice(&value.to_be_bytes());
    }

    /// Zeroes the four rest-of-header bytes.
    pub fn clear_rest_of_header(&mut self) {
        self.buffer.as_mut()[field::REST].fill(0);
    }

    /// Computes and writes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }

    /// The bytes after the 8-byte header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// An ICMPv4 message this crate understands. Payloads borrow from the
/// packet they were parsed from (or the datagram being answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    /// An echo request (ping).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// An echo reply.
    EchoReply {
        /// Identifier (copied from the request).
        ident: u16,
        /// Sequence number (copied from the request).
        seq_no: u16,
        /// Echo data (copied from the request).
        data: &'a [u8],
    },
    /// Destination unreachable. For `FragRequired`, set the next-hop MTU
    /// with [`Icmpv4Packet::set_next_hop_mtu`] after `emit` and fill the
    /// checksum again.
    DstUnreachable {
        /// Why.
        reason: Icmpv4DstUnreachable,
        /// The leading bytes of the offending datagram; see [`error_quote`].
        data: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// Why.
        reason: Icmpv4TimeExceeded,
        /// The leading bytes of the offending datagram; see [`error_quote`].
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Reads a message, verifying its checksum. Message types other than
    /// echo, destination unreachable and time exceeded are `Unsupported`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Icmpv4Packet<&'a T>,
    ) -> Result<Icmpv4Repr<'a>, WireError> {
        packet.check()?;
        if !packet.verify_checksum() {
            return Err(WireError::BadChecksum {
                layer: Layer::Icmpv4,
            });
        }
        let buffer: &'a T = packet.buffer;
        let data = &buffer.as_ref()[field::PAYLOAD..];
        let code = packet.msg_code();
        match (packet.msg_type(), code) {
            (Icmpv4Message::EchoRequest, 0) => Ok(Icmpv4Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Icmpv4Message::EchoReply, 0) => Ok(Icmpv4Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Icmpv4Message::DstUnreachable, code) => Ok(Icmpv4Repr::DstUnreachable {
                reason: Icmpv4DstUnreachable::from(code),
                data,
            }),
            (Icmpv4Message::TimeExceeded, code) => Ok(Icmpv4Repr::TimeExceeded {
                reason: Icmpv4TimeExceeded::from(code),
                data,
            }),
            (Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply, _) => {
                Err(WireError::Unsupported {
                    layer: Layer::Icmpv4,
                    what: "echo code other than 0",
                })
            }
            _ => Err(WireError::Unsupported {
                layer: Layer::Icmpv4,
                what: "message type",
            }),
        }
    }

    /// The echo reply that answers this request, or `None` if this is not
    /// an echo request.
    pub fn echo_reply(&self) -> Option<Icmpv4Repr<'a>> {
        match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => Some(Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            }),
            _ => None,
        }
    }

    /// The payload: echo data or the quoted datagram.
    pub fn data(&self) -> &'a [u8] {
        match *self {
            Icmpv4Repr::EchoRequest { data, .. }
            | Icmpv4Repr::EchoReply { data, .. }
            | Icmpv4Repr::DstUnreachable { data, .. }
            | Icmpv4Repr::TimeExceeded { data, .. } => data,
        }
    }

    /// The length of the ICMP header (8).
    pub const fn header_len(&self) -> usize {
        field::PAYLOAD
    }

    /// The length of the whole message.
    pub fn buffer_len(&self) -> usize {
        field::PAYLOAD + self.data().len()
    }

    /// Writes the whole message, payload and checksum included. The packet's
    /// buffer should be exactly [`buffer_len`](Self::buffer_len) long, since
    /// the checksum covers all of it.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv4Packet<T>) {
        packet.clear_rest_of_header();
        match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, .. }
            | Icmpv4Repr::EchoReply { ident, seq_no, .. } => {
                let msg_type = if matches!(self, Icmpv4Repr::EchoRequest { .. }) {
                    Icmpv4Message::EchoRequest
                } else {
                    Icmpv4Message::EchoReply
                };
                packet.set_msg_type(msg_type);
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
            }
            Icmpv4Repr::DstUnreachable { reason, .. } => {
                packet.set_msg_type(Icmpv4Message::DstUnreachable);
                packet.set_msg_code(u8::from(reason));
            }
            Icmpv4Repr::TimeExceeded { reason, .. } => {
                packet.set_msg_type(Icmpv4Message::TimeExceeded);
                packet.set_msg_code(u8::from(reason));
            }
        }
        let data = self.data();
        packet.payload_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{IpProtocol, Ipv4Packet, Ipv4Repr};
    use core::net::Ipv4Addr;

    /// A whole IPv4 datagram: 10.0.0.2 -> 10.0.0.1, ICMP echo request
    /// ident 0x1234 seq 1, data "nfvhost!ping-abc".
    static ECHO_IP: [u8; 44] = [
        0x45, 0x00, 0x00, 0x2c, 0x5a, 0x3c, 0x40, 0x00, 0x40, 0x01, 0xcc, 0x92, 0x0a, 0x00, 0x00,
        0x02, 0x0a, 0x00, 0x00, 0x01, 0x08, 0x00, 0xae, 0xd1, 0x12, 0x34, 0x00, 0x01, 0x6e, 0x66,
        0x76, 0x68, 0x6f, 0x73, 0x74, 0x21, 0x70, 0x69, 0x6e, 0x67, 0x2d, 0x61, 0x62, 0x63,
    ];
    const ECHO_DATA: &[u8] = b"nfvhost!ping-abc";

    fn echo_request() -> Icmpv4Repr<'static> {
        Icmpv4Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
            data: ECHO_DATA,
        }
    }

    #[test]
    fn parse_golden() {
        let ip = Ipv4Packet::new_checked(&ECHO_IP[..]).unwrap();
        assert_eq!(ip.protocol(), IpProtocol::Icmp);
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv4Message::EchoRequest);
        assert_eq!(icmp.msg_code(), 0);
        assert_eq!(icmp.checksum(), 0xaed1);
        assert_eq!(icmp.echo_ident(), 0x1234);
        assert_eq!(icmp.echo_seq_no(), 1);
        assert_eq!(icmp.payload(), ECHO_DATA);
        assert!(icmp.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&icmp).unwrap(), echo_request());
    }

    #[test]
    fn emit_golden() {
        let repr = echo_request();
        assert_eq!(repr.buffer_len(), 24);
        let mut bytes = [0xa5u8; 24];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, ECHO_IP[20..]);
    }

    #[test]
    fn echo_reply_answers_request() {
        // Build the whole reply datagram as a responder would.
        let request = Ipv4Packet::new_checked(&ECHO_IP[..]).unwrap();
        let req_ip = Ipv4Repr::parse(&request).unwrap();
        let icmp = Icmpv4Packet::new_checked(request.payload()).unwrap();
        let reply = Icmpv4Repr::parse(&icmp).unwrap().echo_reply().unwrap();
        let reply_ip = Ipv4Repr {
            src_addr: req_ip.dst_addr,
            dst_addr: req_ip.src_addr,
            payload_len: reply.buffer_len(),
            ..req_ip
        };
        let mut out = [0u8; 44];
        let mut ip = Ipv4Packet::new_unchecked(&mut out[..]);
        reply_ip.emit(&mut ip);
        reply.emit(&mut Icmpv4Packet::new_unchecked(ip.payload_mut()));

        let ip = Ipv4Packet::new_checked(&out[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(icmp.msg_type(), Icmpv4Message::EchoReply);
        // Only the type changed, so the checksum moved by exactly 0x0800.
        assert_eq!(icmp.checksum(), 0xaed1 + 0x0800);
        assert_eq!(
            Icmpv4Repr::parse(&icmp).unwrap(),
            Icmpv4Repr::EchoReply {
                ident: 0x1234,
                seq_no: 1,
                data: ECHO_DATA
            }
        );
    }

    #[test]
    fn time_exceeded_round_trip() {
        let quote = error_quote(&ECHO_IP);
        assert_eq!(quote, &ECHO_IP[..28]);
        let repr = Icmpv4Repr::TimeExceeded {
            reason: Icmpv4TimeExceeded::TtlExpired,
            data: quote,
        };
        let mut bytes = [0u8; 36];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..8], [11, 0, 0x2b, 0xf9, 0, 0, 0, 0]);
        assert_eq!(bytes[8..], ECHO_IP[..28]);
        let packet = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&packet).unwrap(), repr);
    }

    #[test]
    fn dst_unreachable_round_trip() {
        let repr = Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::PortUnreachable,
            data: error_quote(&ECHO_IP[..24]),
        };
        assert_eq!(repr.buffer_len(), 32);
        let mut bytes = [0u8; 32];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        assert_eq!(packet.msg_type(), Icmpv4Message::DstUnreachable);
        assert_eq!(packet.msg_code(), 3);
        assert!(packet.verify_checksum());
        let packet = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&packet).unwrap(), repr);

        // Fragmentation required with a next-hop MTU.
        let repr = Icmpv4Repr::DstUnreachable {
            reason: Icmpv4DstUnreachable::FragRequired,
            data: error_quote(&ECHO_IP),
        };
        let mut bytes = [0u8; 36];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        packet.set_next_hop_mtu(1400);
        packet.fill_checksum();
        assert_eq!(packet.next_hop_mtu(), 1400);
        assert!(packet.verify_checksum());
        assert_eq!(
            Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&bytes[..])).unwrap(),
            repr
        );
    }

    #[test]
    fn error_quote_respects_ihl() {
        let mut with_options = [0u8; 60];
        with_options[0] = 0x46; // 24-byte header
        assert_eq!(error_quote(&with_options).len(), 32);
        assert_eq!(error_quote(&[0x45; 10]).len(), 10);
        assert_eq!(error_quote(&[0x41; 40]).len(), 28);
        assert!(error_quote(&[]).is_empty());
    }

    #[test]
    fn errors() {
        assert_eq!(
            Icmpv4Packet::new_checked(&ECHO_IP[20..27]),
            Err(WireError::Truncated {
                layer: Layer::Icmpv4,
                required: 8,
                len: 7
            })
        );
        let mut bad = ECHO_IP;
        bad[30] ^= 0xff;
        let packet = Icmpv4Packet::new_checked(&bad[20..]).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&packet),
            Err(WireError::BadChecksum {
                layer: Layer::Icmpv4
            })
        );
        let mut redirect = [5u8, 0, 0, 0, 0, 0, 0, 0];
        Icmpv4Packet::new_unchecked(&mut redirect[..]).fill_checksum();
        assert!(matches!(
            Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&redirect[..])),
            Err(WireError::Unsupported { .. })
        ));
    }

    #[test]
    fn setters_round_trip() {
        let mut packet = Icmpv4Packet::new_unchecked([0u8; 8]);
        packet.set_msg_type(Icmpv4Message::Unknown(42));
        packet.set_msg_code(7);
        packet.set_echo_ident(0xbeef);
        packet.set_echo_seq_no(0xcafe);
        assert_eq!(packet.msg_type(), Icmpv4Message::Unknown(42));
        assert_eq!(packet.msg_code(), 7);
        assert_eq!(packet.echo_ident(), 0xbeef);
        assert_eq!(packet.echo_seq_no(), 0xcafe);
        assert!(packet.payload().is_empty());
        packet.clear_rest_of_header();
        assert_eq!(packet.echo_ident(), 0);
    }
}
