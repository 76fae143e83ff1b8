//! Frames for tests: Ethernet, ARP, IPv4, UDP, TCP, ICMP and DHCP, with
//! correct lengths and checksums. One function a layer, each returning the
//! bytes of that layer; wrap them to build a whole frame:
//!
//! ```
//! use std::net::Ipv4Addr;
//! use vnf_sdk::testing::frames;
//! use vnf_sdk::wire::{EtherType, EthernetAddress, IpProtocol};
//!
//! let (a, b) = (Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 0, 2, 10));
//! let frame = frames::ethernet(
//!     EthernetAddress([2, 0, 0, 0, 0, 1]),
//!     EthernetAddress([2, 0, 0, 0, 0, 2]),
//!     EtherType::Ipv4,
//!     &frames::ipv4(a, b, IpProtocol::Udp, &frames::udp(a, b, 40000, 53, b"query")),
//! );
//! assert_eq!(frame.len(), 14 + 20 + 8 + 5);
//! ```

use std::net::Ipv4Addr;
use std::vec;
use std::vec::Vec;

use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpPacket, UdpPacket,
    UdpRepr,
};

/// An Ethernet frame carrying `payload`.
pub fn ethernet(
    dst: EthernetAddress,
    src: EthernetAddress,
    ethertype: EtherType,
    payload: &[u8],
) -> Vec<u8> {
    let mut bytes = vec![0u8; EthernetFrame::<&[u8]>::buffer_len(payload.len())];
    let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
    EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype,
    }
    .emit(&mut frame);
    frame.payload_mut().copy_from_slice(payload);
    bytes
}

/// An ARP message (Ethernet/IPv4): sender and target hardware and
/// protocol addresses.
pub fn arp(
    operation: ArpOperation,
    sha: EthernetAddress,
    spa: Ipv4Addr,
    tha: EthernetAddress,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let repr = ArpRepr {
        operation,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    };
    let mut bytes = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
    bytes
}

/// An ARP frame to `eth_dst`, sent from the sender's hardware address.
pub fn arp_frame(
    eth_dst: EthernetAddress,
    operation: ArpOperation,
    sha: EthernetAddress,
    spa: Ipv4Addr,
    tha: EthernetAddress,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    ethernet(
        eth_dst,
        sha,
        EtherType::Arp,
        &arp(operation, sha, spa, tha, tpa),
    )
}

/// A broadcast who-has for `tpa` from `sha`/`spa`.
pub fn arp_request(sha: EthernetAddress, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        EthernetAddress::BROADCAST,
        ArpOperation::Request,
        sha,
        spa,
        EthernetAddress([0; 6]),
        tpa,
    )
}

/// The IPv4 header [`ipv4`] writes: TTL 64, identification 0, DF clear,
/// DSCP and ECN 0. Change fields with struct update syntax and pass it to
/// [`ipv4_with`].
pub fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol) -> Ipv4Repr {
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len: 0,
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 0,
        dont_frag: false,
    }
}

/// An IPv4 packet with the [`ipv4_header`] defaults.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
    ipv4_with(ipv4_header(src, dst, protocol), payload)
}

/// An IPv4 packet with this header (its `payload_len` is taken from
/// `payload`) and a correct header checksum.
pub fn ipv4_with(header: Ipv4Repr, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        payload_len: payload.len(),
        ..header
    };
    let mut bytes = vec![0u8; repr.buffer_len()];
    let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
    repr.emit(&mut packet);
    packet.payload_mut().copy_from_slice(payload);
    bytes
}

/// A UDP datagram from `src`:`sport` to `dst`:`dport` with its checksum.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: sport,
        dst_port: dport,
        payload_len: payload.len(),
    };
    let mut bytes = vec![0u8; repr.buffer_len()];
    let mut datagram = UdpPacket::new_unchecked(&mut bytes[..]);
    repr.emit(&mut datagram);
    datagram.payload_mut().copy_from_slice(payload);
    datagram.fill_checksum(src, dst);
    bytes
}

/// The header fields of a TCP segment built by [`tcp`] (20-byte header, no
/// options, urgent pointer 0).
#[derive(Clone, Copy, Debug)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Window.
    pub window: u16,
}

/// A TCP segment from `src` to `dst` with its checksum.
pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, header: TcpHeader, data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; TcpPacket::<&[u8]>::MIN_HEADER_LEN + data.len()];
    let mut segment = TcpPacket::new_unchecked(&mut bytes[..]);
    segment.set_src_port(header.src_port);
    segment.set_dst_port(header.dst_port);
    segment.set_seq_number(header.seq);
    segment.set_ack_number(header.ack);
    segment.set_header_len(TcpPacket::<&[u8]>::MIN_HEADER_LEN);
    segment.set_flags(header.flags);
    segment.set_window_len(header.window);
    segment.payload_mut().copy_from_slice(data);
    segment.fill_checksum(src, dst);
    bytes
}

/// An ICMPv4 message with its checksum.
pub fn icmp(repr: &Icmpv4Repr<'_>) -> Vec<u8> {
    let mut bytes = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes[..]));
    bytes
}

/// An ICMP echo request (`request`) or reply.
pub fn echo(request: bool, ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    icmp(&if request {
        Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        }
    } else {
        Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        }
    })
}

/// The DHCP magic cookie (RFC 2131 3).
pub const DHCP_MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// A BOOTREQUEST (a client's DHCP message) from `chaddr` with these
/// `options` in order (put option 53, the message type, first), then END.
/// `broadcast` sets the broadcast flag.
pub fn dhcp_request(
    xid: u32,
    chaddr: EthernetAddress,
    ciaddr: Ipv4Addr,
    broadcast: bool,
    options: &[(u8, &[u8])],
) -> Vec<u8> {
    let mut m = vec![0u8; 240];
    m[0] = 1; // BOOTREQUEST
    m[1] = 1; // Ethernet
    m[2] = 6; // hardware address length
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    if broadcast {
        m[10] = 0x80;
    }
    m[12..16].copy_from_slice(&ciaddr.octets());
    m[28..34].copy_from_slice(chaddr.as_bytes());
    m[236..240].copy_from_slice(&DHCP_MAGIC_COOKIE);
    for (code, data) in options {
        m.push(*code);
        m.push(u8::try_from(data.len()).expect("an option holds at most 255 bytes"));
        m.extend_from_slice(data);
    }
    m.push(255); // END
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Icmpv4Packet, TcpPacket, UdpPacket};

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 10);
    const M: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    #[test]
    fn layers_parse_back_with_valid_checksums() {
        let udp_frame = ethernet(
            EthernetAddress::BROADCAST,
            M,
            EtherType::Ipv4,
            &ipv4(A, B, IpProtocol::Udp, &udp(A, B, 1, 2, b"abc")),
        );
        let eth = EthernetFrame::new_checked(&udp_frame[..]).unwrap();
        assert_eq!(
            (eth.dst_addr(), eth.src_addr()),
            (EthernetAddress::BROADCAST, M)
        );
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.ttl(), ip.dont_frag()), (64, false));
        let u = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum(A, B));
        assert_eq!(
            (u.src_port(), u.dst_port(), u.payload()),
            (1, 2, &b"abc"[..])
        );

        let header = TcpHeader {
            src_port: 3,
            dst_port: 4,
            seq: 5,
            ack: 6,
            flags: TcpFlags::SYN,
            window: 7,
        };
        let seg = tcp(A, B, header, b"x");
        let t = TcpPacket::new_checked(&seg[..]).unwrap();
        assert!(t.verify_checksum(A, B));
        assert_eq!(
            (t.seq_number(), t.ack_number(), t.flags()),
            (5, 6, TcpFlags::SYN)
        );

        let ping = echo(true, 9, 1, b"p");
        assert!(Icmpv4Packet::new_checked(&ping[..])
            .unwrap()
            .verify_checksum());

        let df = ipv4_with(
            Ipv4Repr {
                ttl: 3,
                dont_frag: true,
                ..ipv4_header(A, B, IpProtocol::Icmp)
            },
            &ping,
        );
        let ip = Ipv4Packet::new_checked(&df[..]).unwrap();
        assert!(ip.verify_checksum() && ip.dont_frag());
        assert_eq!(
            (ip.ttl(), usize::from(ip.total_len())),
            (3, 20 + ping.len())
        );
    }

    #[test]
    fn arp_and_dhcp() {
        let f = arp_request(M, A, B);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.ethertype(), EtherType::Arp);
        let r = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(
            (r.operation, r.source_protocol_addr, r.target_protocol_addr),
            (ArpOperation::Request, A, B)
        );
        let m = dhcp_request(0x0102_0304, M, A, true, &[(53, &[1]), (55, &[1, 3])]);
        assert_eq!(&m[4..8], &[1, 2, 3, 4]);
        assert_eq!(m[10], 0x80);
        assert_eq!(&m[28..34], M.as_bytes());
        assert_eq!(&m[240..], &[53, 1, 1, 55, 2, 1, 3, 255]);
    }
}
