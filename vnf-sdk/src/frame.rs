//! A frame as the module sees it.

use nfvhost_abi::{FLAG_CSUM_PARTIAL, FLAG_GSO_TCPV4};

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
}
