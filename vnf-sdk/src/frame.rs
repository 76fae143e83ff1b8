//! A frame as the module sees it.

use nfvhost_abi::{FLAGS_GSO, FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4, FLAG_GSO_TCPV6, FLAG_GSO_UDP_L4};

use crate::wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket, UdpPacket,
};

/// The kinds of segmentation super-frame (ABI `FLAG_GSO_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoKind {
    /// TCP over IPv4: segments of `gso_size` TCP payload bytes.
    TcpV4,
    /// TCP over IPv6: segments of `gso_size` TCP payload bytes.
    TcpV6,
    /// UDP over IPv4 or IPv6: datagrams of `gso_size` payload bytes each.
    UdpL4,
}

/// One received frame, borrowed from the batch in linear memory.
///
/// The frame may be longer than one MTU (segmentation-offload super-frames),
/// and may be rewritten in place and resized up to [`Frame::capacity`].
///
/// A frame may carry offload state from the host (ABI "Offloads"): a
/// *partial* L4 checksum ([`Frame::checksum_partial`]) and, for
/// segmentation super-frames (TCP/IPv4, TCP/IPv6, UDP: [`Frame::gso_kind`]),
/// a segment size ([`Frame::gso_segment_size`]).
/// Such a frame's L4 checksum must not be verified, rewrites must update it
/// with the `checksum::update_partial_*` rule, and its header lengths must
/// not change.
///
/// ```
/// use vnf_sdk::Frame;
///
/// let mut slot = [0u8; 128]; // the host's slot: room to grow
/// slot[..4].copy_from_slice(&[1, 2, 3, 4]);
/// let mut frame = Frame::new(0, &mut slot, 60);
/// assert_eq!((frame.len(), frame.capacity(), frame.in_port()), (60, 128, 0));
/// frame.data_mut()[0] = 9; // rewrite in place
/// assert!(frame.set_len(64)); // grow within the slot
/// assert!(!frame.set_len(129)); // but not past it
/// assert_eq!(&frame.data()[..4], &[9, 2, 3, 4]);
/// ```
#[derive(Debug)]
pub struct Frame<'a> {
    in_port: u16,
    buf: &'a mut [u8],
    len: usize,
    flags: u16,
    gso_size: u32,
}

impl<'a> Frame<'a> {
    /// A frame of `len` bytes at the start of `buf`, received on `in_port`,
    /// without offload state. `len` is clamped to the buffer.
    pub fn new(in_port: u16, buf: &'a mut [u8], len: usize) -> Self {
        Self::with_offload(in_port, buf, len, 0, 0)
    }

    /// A frame with the offload state the host passed in its descriptor:
    /// `flags` (`nfvhost_abi::FLAG_*`) and `gso_size` (TCP payload bytes per
    /// segment of a super-frame).
    pub fn with_offload(
        in_port: u16,
        buf: &'a mut [u8],
        len: usize,
        flags: u16,
        gso_size: u32,
    ) -> Self {
        let len = len.min(buf.len());
        Frame {
            in_port,
            buf,
            len,
            flags,
            gso_size,
        }
    }

    /// The descriptor's offload flags (`nfvhost_abi::FLAG_*`).
    pub fn offload_flags(&self) -> u16 {
        self.flags
    }

    /// Whether the frame's TCP/UDP checksum field holds a partial checksum
    /// (the pseudo-header sum, not complemented) that the transmitter
    /// completes. Never verify the L4 checksum of such a frame; update it
    /// with `wire::checksum::update_partial_*`.
    pub fn checksum_partial(&self) -> bool {
        self.flags & FLAG_CSUM_PARTIAL != 0
    }

    /// Whether the frame is a segmentation super-frame of any kind (see
    /// [`Frame::gso_kind`]).
    pub fn is_super_frame(&self) -> bool {
        self.flags & FLAGS_GSO != 0
    }

    /// What kind of super-frame this is; `None` for an ordinary frame.
    pub fn gso_kind(&self) -> Option<GsoKind> {
        if self.flags & FLAG_GSO_TCPV4 != 0 {
            Some(GsoKind::TcpV4)
        } else if self.flags & FLAG_GSO_TCPV6 != 0 {
            Some(GsoKind::TcpV6)
        } else if self.flags & FLAG_GSO_UDP_L4 != 0 {
            Some(GsoKind::UdpL4)
        } else {
            None
        }
    }

    /// For a super-frame, the L4 payload bytes per segment (what MTU checks
    /// apply to: IP header + L4 header + this); `None` otherwise.
    pub fn gso_segment_size(&self) -> Option<u16> {
        if self.is_super_frame() {
            Some(u16::try_from(self.gso_size).unwrap_or(u16::MAX))
        } else {
            None
        }
    }

    /// The IPv4 length of the largest packet this frame leaves as: the
    /// total length of an ordinary frame, one segment (IPv4 header + L4
    /// header + `gso_size`) of a super-frame. What an IP hop compares with
    /// the egress MTU. `None` if the frame is not Ethernet + IPv4, or its
    /// offload state does not match its headers (a TCP/IPv6 super-frame, a
    /// UDP one that is not UDP).
    pub fn ipv4_wire_len(&self) -> Option<usize> {
        const ETH: usize = EthernetFrame::<&[u8]>::HEADER_LEN;
        if EthernetFrame::new_checked(self.data()).ok()?.ethertype() != EtherType::Ipv4 {
            return None;
        }
        let ip = Ipv4Packet::new_checked(&self.data()[ETH..]).ok()?;
        let Some(kind) = self.gso_kind() else {
            return Some(usize::from(ip.total_len()));
        };
        if ip.is_fragment() {
            return None;
        }
        let l4 = match (kind, ip.protocol()) {
            (GsoKind::TcpV4, IpProtocol::Tcp) => {
                TcpPacket::new_checked(ip.payload()).ok()?.header_len()
            }
            (GsoKind::UdpL4, IpProtocol::Udp) => {
                UdpPacket::new_checked(ip.payload()).ok()?;
                8
            }
            _ => return None,
        };
        Some(ip.header_len() + l4 + usize::from(self.gso_segment_size()?))
    }

    /// Whether the frame carries any offload state (then the host re-attaches
    /// it on transmit: keep the header lengths as they are).
    pub fn has_offload(&self) -> bool {
        self.flags != 0
    }

    /// The port the frame arrived on.
    pub fn in_port(&self) -> u16 {
        self.in_port
    }

    /// The frame's bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The frame's bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes available for the frame to grow into.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Resizes the frame; returns `false` (and changes nothing) if `len`
    /// exceeds the capacity. New bytes are whatever the buffer held.
    pub fn set_len(&mut self, len: usize) -> bool {
        if len > self.buf.len() {
            return false;
        }
        self.len = len;
        true
    }

    /// Replaces the frame's contents; returns `false` if it does not fit.
    pub fn replace(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.buf.len() {
            return false;
        }
        self.buf[..bytes.len()].copy_from_slice(bytes);
        self.len = bytes.len();
        true
    }

    /// Turns a frame with offload state into an ordinary one, in place, for
    /// a module that keeps a copy to [`emit`](crate::Context::emit) later
    /// (emitted frames carry no offload): a super-frame is cut to its first
    /// segment (TCP payload `gso_size` bytes; FIN and PSH cleared, as the
    /// kernel does for all but the last segment; TCP retransmits the rest),
    /// and a partial TCP/UDP checksum is completed. Afterwards the frame
    /// reports no offload.
    ///
    /// Only for a frame the module then consumes or drops: the host would
    /// re-attach the original offload state to a forwarded one. Returns
    /// `false` (changing nothing) if the frame is not Ethernet + IPv4 + TCP
    /// or UDP as its offload state requires, or is a super-frame of another
    /// kind than TCP/IPv4 (UDP datagrams cannot be cut and retransmitted). A frame without offload state
    /// is left alone and `true` returned.
    pub fn make_ordinary(&mut self) -> bool {
        if !self.has_offload() {
            return true;
        }
        // Only a TCP/IPv4 super-frame can be cut to its first segment (TCP
        // retransmits the rest); other kinds are refused.
        if self.is_super_frame() && self.gso_kind() != Some(GsoKind::TcpV4) {
            return false;
        }
        let gso = self.gso_segment_size();
        let Some(len) = ordinary(self.data_mut(), gso) else {
            return false;
        };
        self.len = len;
        self.flags = 0;
        self.gso_size = 0;
        true
    }
}

/// See [`Frame::make_ordinary`]: returns the new frame length.
fn ordinary(data: &mut [u8], gso: Option<u16>) -> Option<usize> {
    const ETH: usize = EthernetFrame::<&[u8]>::HEADER_LEN;
    if EthernetFrame::new_checked(&data[..]).ok()?.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(&data[ETH..]).ok()?;
    let (ihl, src, dst, protocol) = (ip.header_len(), ip.src_addr(), ip.dst_addr(), ip.protocol());
    if ip.is_fragment() {
        return None;
    }
    let mut total = usize::from(ip.total_len());
    let l4 = &data[ETH + ihl..ETH + total];
    // Validate before changing anything.
    match protocol {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(l4).ok()?;
            if let Some(gso) = gso {
                total = total.min(ihl + tcp.header_len() + usize::from(gso));
            }
        }
        IpProtocol::Udp if gso.is_none() => {
            UdpPacket::new_checked(l4).ok()?;
        }
        _ => return None,
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut data[ETH..ETH + total]);
    if gso.is_some() {
        // `total` fits: it is at most the old total length.
        ip.set_total_len(total as u16);
        ip.fill_checksum();
    }
    let l4 = ip.payload_mut();
    match protocol {
        IpProtocol::Tcp => {
            let mut tcp = TcpPacket::new_unchecked(l4);
            if gso.is_some() {
                let flags = tcp.flags().0 & !(TcpFlags::FIN.0 | TcpFlags::PSH.0);
                tcp.set_flags(TcpFlags(flags));
            }
            // From scratch: the pseudo-header's L4 length changed if cut.
            tcp.fill_checksum(src, dst);
        }
        _ => UdpPacket::new_unchecked(l4).fill_checksum(src, dst),
    }
    Some(ETH + total)
}
