//! A frame as the module sees it.

/// One received frame, borrowed from the batch in linear memory.
///
/// The frame may be longer than one MTU (segmentation-offload super-frames),
/// and may be rewritten in place and resized up to [`Frame::capacity`].
#[derive(Debug)]
pub struct Frame<'a> {
    in_port: u16,
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Frame<'a> {
    /// A frame of `len` bytes at the start of `buf`, received on `in_port`.
    /// `len` is clamped to the buffer.
    pub fn new(in_port: u16, buf: &'a mut [u8], len: usize) -> Self {
        let len = len.min(buf.len());
        Frame { in_port, buf, len }
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
