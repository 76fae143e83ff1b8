//! A frame as the module sees it.

use nfvhost_abi::{FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4};

use crate::wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket, UdpPacket,
};

/// One received frame, borrowed from the batch in linear memory.
///
/// The frame may be longer than one MTU (segmentation-offload super-frames),
/// and may be rewritten in place and resized up to [`Frame::capacity`].
///
/// A frame may carry offload state from the host (ABI "Offloads"): a
/// *partial* L4 checksum ([`Frame::checksum_partial`]) and, for TCP/IPv4
/// segmentation super-frames, a segment size ([`Frame::gso_segment_size`]).
/// Such a frame's L4 checksum must not be verified, rewrites must update it
/// with the `checksum::update_partial_*` rule, and its header lengths must
/// not change.
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

    /// Whether the frame is a TCP/IPv4 segmentation super-frame.
    pub fn is_super_frame(&self) -> bool {
        self.flags & FLAG_GSO_TCPV4 != 0
    }

    /// For a super-frame, the TCP payload bytes per segment (what MTU checks
    /// apply to: IPv4 header + TCP header + this); `None` otherwise.
    pub fn gso_segment_size(&self) -> Option<u16> {
        if self.is_super_frame() {
            Some(u16::try_from(self.gso_size).unwrap_or(u16::MAX))
        } else {
            None
        }
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
    /// or UDP as its offload state requires. A frame without offload state
    /// is left alone and `true` returned.
    pub fn make_ordinary(&mut self) -> bool {
        if !self.has_offload() {
            return true;
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
