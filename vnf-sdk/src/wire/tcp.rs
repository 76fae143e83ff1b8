//! TCP segment headers (RFC 9293).

use core::fmt;

use super::checksum::{self, PseudoHeader};
use super::{check_len, IpProtocol, Layer, WireError};

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    /// Data offset (4 bits), reserved (3 bits) and flags (9 bits).
    pub const FLAGS: Range<usize> = 12..14;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
    /// The length of a header without options.
    pub const MIN_HEADER: usize = URGENT.end;
}

/// The data-offset bits of the flags word.
const DATA_OFFSET_MASK: u16 = 0xf000;

/// The flag bits of a TCP header (the low 9 bits of the flags word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x001);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x002);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x004);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x008);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x010);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x020);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x040);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x080);
    /// ECN nonce (historic).
    pub const NS: TcpFlags = TcpFlags(0x100);
    /// All flag bits.
    const MASK: u16 = 0x1ff;

    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag in `other` is set.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;

    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl fmt::Display for TcpFlags {
    /// Prints the flags as tcpdump does, e.g. `S.` for SYN+ACK.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (TcpFlags::FIN, 'F'),
            (TcpFlags::SYN, 'S'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
            (TcpFlags::ACK, '.'),
        ];
        for (flag, c) in names {
            if self.contains(flag) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// A view of a TCP segment.
///
/// [`new_checked`](Self::new_checked) checks the data offset against the
/// buffer. TCP has no length field of its own: the segment is the whole
/// buffer, so wrap exactly the IP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// The length of a header without options.
    pub const MIN_HEADER_LEN: usize = field::MIN_HEADER;

    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after checking the data offset against it.
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Checks the data offset against the buffer.
    pub fn check(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        check_len(Layer::Tcp, field::MIN_HEADER, len)?;
        let header_len = self.header_len();
        if header_len < field::MIN_HEADER {
            return Err(WireError::BadHeaderLength {
                layer: Layer::Tcp,
                header_len,
                min: field::MIN_HEADER,
            });
        }
        check_len(Layer::Tcp, header_len, len)
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole segment.
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

    /// The sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ_NUM])
    }

    /// The acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::ACK_NUM])
    }

    fn flags_word(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::FLAGS])
    }

    /// The header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.flags_word() >> 12) * 4
    }

    /// The flags.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.flags_word() & TcpFlags::MASK)
    }

    /// Whether SYN is set.
    pub fn syn(&self) -> bool {
        self.flags().contains(TcpFlags::SYN)
    }

    /// Whether ACK is set.
    pub fn ack(&self) -> bool {
        self.flags().contains(TcpFlags::ACK)
    }

    /// Whether FIN is set.
    pub fn fin(&self) -> bool {
        self.flags().contains(TcpFlags::FIN)
    }

    /// Whether RST is set.
    pub fn rst(&self) -> bool {
        self.flags().contains(TcpFlags::RST)
    }

    /// The window size.
    pub fn window_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::WIN_SIZE])
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::URGENT])
    }

    /// The options: the header bytes after the fixed header.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::MIN_HEADER..self.header_len()]
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    fn sum<A: PseudoHeader>(&self, src: A, dst: A) -> u16 {
        let bytes = self.buffer.as_ref();
        // A segment longer than u32::MAX cannot exist; saturate rather than
        // wrap if it somehow did.
        let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        checksum::combine(&[
            A::pseudo_header_sum(src, dst, IpProtocol::Tcp, length),
            checksum::data(bytes),
        ])
    }

    /// Whether the checksum is correct for a segment from `src` to `dst`
    /// (both IPv4 or both IPv6 addresses).
    pub fn verify_checksum<A: PseudoHeader>(&self, src: A, dst: A) -> bool {
        self.sum(src, dst) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port (the checksum is not updated).
    pub fn set_src_port(&mut self, port: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&port.to_be_bytes());
    }

    /// Sets the destination port (the checksum is not updated).
    pub fn set_dst_port(&mut self, port: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&port.to_be_bytes());
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&value.to_be_bytes());
    }

    fn set_flags_word(&mut self, value: u16) {
        self.buffer.as_mut()[field::FLAGS].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the header length in bytes (a multiple of 4, 20 to 60).
    pub fn set_header_len(&mut self, header_len: usize) {
        let offset = ((header_len / 4) as u16 & 0x0f) << 12;
        self.set_flags_word((self.flags_word() & !DATA_OFFSET_MASK) | offset);
    }

    /// Sets the flags and clears the reserved bits, leaving the data offset
    /// alone.
    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.set_flags_word((self.flags_word() & DATA_OFFSET_MASK) | (flags.0 & TcpFlags::MASK));
    }

    /// Sets the window size.
    pub fn set_window_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::WIN_SIZE].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, value: u16) {
        self.buffer.as_mut()[field::URGENT].copy_from_slice(&value.to_be_bytes());
    }

    /// Computes and writes the checksum for a segment from `src` to `dst`.
    pub fn fill_checksum<A: PseudoHeader>(&mut self, src: A, dst: A) {
        self.set_checksum(0);
        let value = !self.sum(src, dst);
        self.set_checksum(value);
    }

    /// Updates the checksum after an IPv4 address of the pseudo-header
    /// changed from `old` to `new` (the caller rewrote the IP header). With
    /// `partial` (the frame's checksum is partial, see
    /// [`checksum`](super::checksum)) the field holds the pseudo-header sum
    /// and is updated with the partial rule; otherwise with RFC 1624.
    pub fn fix_checksum_for_addr_change(
        &mut self,
        old: core::net::Ipv4Addr,
        new: core::net::Ipv4Addr,
        partial: bool,
    ) {
        let sum = self.checksum();
        self.set_checksum(if partial {
            checksum::update_partial_ipv4_addr(sum, old, new)
        } else {
            checksum::update_ipv4_addr(sum, old, new)
        });
    }

    /// Sets the source port and updates a complete checksum (RFC 1624); a
    /// partial checksum needs no update for a port, which is summed when the
    /// checksum is completed.
    pub fn set_src_port_with_checksum(&mut self, port: u16, partial: bool) {
        let old = self.src_port();
        self.set_src_port(port);
        if !partial {
            self.set_checksum(checksum::update_u16(self.checksum(), old, port));
        }
    }

    /// [`set_src_port_with_checksum`](Self::set_src_port_with_checksum) for
    /// the destination port.
    pub fn set_dst_port_with_checksum(&mut self, port: u16, partial: bool) {
        let old = self.dst_port();
        self.set_dst_port(port);
        if !partial {
            self.set_checksum(checksum::update_u16(self.checksum(), old, port));
        }
    }

    /// Completes a partial checksum, as the transmitter would: the buffer
    /// must be exactly the segment (header and payload), and its checksum
    /// field must hold the pseudo-header sum.
    pub fn complete_partial_checksum(&mut self) {
        let value = checksum::complete_partial(self.buffer.as_ref());
        self.set_checksum(value);
    }

    /// The options, mutably.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[field::MIN_HEADER..header_len]
    }

    /// The bytes after the header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[header_len..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    extern crate std;
    use std::string::ToString;

    /// A SYN from 10.0.0.2:40000 to 10.0.0.1:80 with an MSS option of 1460,
    /// checksum 0x83f6.
    static SYN: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa,
        0xf0, 0x83, 0xf6, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    ];
    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    #[test]
    fn parse_golden() {
        let packet = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(packet.src_port(), 40000);
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.seq_number(), 0x1234_5678);
        assert_eq!(packet.ack_number(), 0);
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.flags(), TcpFlags::SYN);
        assert!(packet.syn() && !packet.ack() && !packet.fin() && !packet.rst());
        assert_eq!(packet.window_len(), 64240);
        assert_eq!(packet.checksum(), 0x83f6);
        assert_eq!(packet.urgent_at(), 0);
        assert_eq!(packet.options(), &[0x02, 0x04, 0x05, 0xb4]);
        assert!(packet.payload().is_empty());
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(DST, SRC.to_bits().wrapping_add(1).into()));
    }

    #[test]
    fn emit_golden() {
        let mut bytes = [0xa5u8; 24];
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(40000);
        packet.set_dst_port(80);
        packet.set_seq_number(0x1234_5678);
        packet.set_ack_number(0);
        packet.set_header_len(24);
        packet.set_flags(TcpFlags::SYN);
        packet.set_window_len(64240);
        packet.set_urgent_at(0);
        packet
            .options_mut()
            .copy_from_slice(&[0x02, 0x04, 0x05, 0xb4]);
        packet.fill_checksum(SRC, DST);
        assert_eq!(bytes, SYN);
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(
            TcpPacket::new_checked(&SYN[..19]),
            Err(WireError::Truncated {
                layer: Layer::Tcp,
                required: 20,
                len: 19
            })
        );
        assert_eq!(
            TcpPacket::new_checked(&SYN[..23]),
            Err(WireError::Truncated {
                layer: Layer::Tcp,
                required: 24,
                len: 23
            })
        );
        let mut b = SYN;
        b[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&b[..]),
            Err(WireError::BadHeaderLength {
                layer: Layer::Tcp,
                header_len: 16,
                min: 20
            })
        );
    }

    #[test]
    fn flags_round_trip() {
        let mut packet = TcpPacket::new_unchecked([0u8; 20]);
        packet.set_header_len(20);
        let synack = TcpFlags::SYN | TcpFlags::ACK;
        packet.set_flags(synack);
        assert_eq!(packet.flags(), synack);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(synack.to_string(), "S.");
        packet.set_flags(TcpFlags::NS | TcpFlags::CWR | TcpFlags::FIN);
        assert!(packet.fin() && packet.flags().contains(TcpFlags::NS));
        assert!(!packet.flags().intersects(TcpFlags::SYN | TcpFlags::RST));
        packet.set_header_len(60);
        assert_eq!(packet.header_len(), 60);
        assert_eq!(packet.flags(), TcpFlags::NS | TcpFlags::CWR | TcpFlags::FIN);
    }

    #[test]
    fn nat_rewrite_incremental() {
        let mut bytes = SYN;
        let mut packet = TcpPacket::new_checked(&mut bytes[..]).unwrap();
        let new_dst = Ipv4Addr::new(192, 168, 1, 10);
        let c = checksum::update_ipv4_addr(packet.checksum(), DST, new_dst);
        let c = checksum::update_u16(c, packet.dst_port(), 8080);
        packet.set_dst_port(8080);
        packet.set_checksum(c);
        assert!(packet.verify_checksum(SRC, new_dst));
        packet.fill_checksum(SRC, new_dst);
        assert_eq!(packet.checksum(), c);
        // A sequence-number change, as a proxy would make.
        let c = checksum::update_u32(c, packet.seq_number(), 0xdead_beef);
        packet.set_seq_number(0xdead_beef);
        packet.set_checksum(c);
        assert!(packet.verify_checksum(SRC, new_dst));
    }

    #[test]
    fn partial_checksum_helpers() {
        let new = Ipv4Addr::new(203, 0, 113, 1);
        for partial in [false, true] {
            let mut seg = SYN;
            let mut packet = TcpPacket::new_unchecked(&mut seg[..]);
            if partial {
                let len = packet.as_bytes().len() as u32;
                packet.set_checksum(checksum::pseudo_header_v4(SRC, DST, IpProtocol::Tcp, len));
            }
            packet.set_src_port_with_checksum(20001, partial);
            packet.set_dst_port_with_checksum(8080, partial);
            packet.fix_checksum_for_addr_change(SRC, new, partial);
            if partial {
                packet.complete_partial_checksum();
            }
            assert!(packet.verify_checksum(new, DST), "partial: {partial}");
            assert_eq!((packet.src_port(), packet.dst_port()), (20001, 8080));
        }
    }
}
