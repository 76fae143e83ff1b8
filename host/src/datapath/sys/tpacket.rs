//! `AF_PACKET` sockets with a `TPACKET` receive ring (`PACKET_RX_RING`,
//! `TPACKET_V3` blocks or `TPACKET_V2` frames) and optionally a transmit
//! ring (`PACKET_TX_RING`, `TPACKET_V2` frames, one `sendto` kick per
//! batch), mapped into the worker once in set-up.
//!
//! The socket itself is opened by [`super::packet::open_with`] (same
//! options, same bind, same recheck and drop counters); the ring is created
//! before the bind so no frame can queue outside it.
//!
//! The kernel and the worker share the ring through a status word per block
//! (V3) or per frame (V2): the kernel hands a block or frame over by setting
//! `TP_STATUS_USER`, after which it writes nothing there until we store
//! `TP_STATUS_KERNEL` back. Only between those two points do we look at its
//! bytes, and then as a plain slice: the walkers below ([`v3_frame`],
//! [`v2_frame`], [`deliver`]) are safe functions over such slices, tested on
//! synthetic blocks.
//!
//! With `TPACKET_V3`, the socket only becomes readable when the kernel
//! retires a block: when it is full or when its timer
//! (`tp_retire_blk_tov`, in milliseconds) fires. At low rates every frame
//! waits for that timer.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use super::mapping::SocketMapping;
use super::packet::{self, Step};
use crate::datapath::port::RecvStats;
use crate::datapath::vlan::{self, StrippedTag};
use crate::engine::{VnetHeader, VNET_HDR_LEN};

const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_COPY_THRESH: libc::c_int = 7;
const TPACKET_V2: libc::c_int = 1;
const TPACKET_V3: libc::c_int = 2;

/// Receive status: the kernel owns the block or frame.
const TP_STATUS_KERNEL: u32 = 0;
/// Receive status: handed to us.
const TP_STATUS_USER: u32 = 1;
/// Receive status (V2): the frame did not fit its slot; the kernel queued
/// it whole on the socket, to be read with `recvmsg`.
const TP_STATUS_COPY: u32 = 1 << 1;
/// `tp_vlan_tci` holds a tag the kernel removed.
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// `tp_vlan_tpid` says which TPID that tag had.
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
/// Transmit status: the frame is ours to fill.
const TP_STATUS_AVAILABLE: u32 = 0;
/// Transmit status: filled, for the kernel to send.
const TP_STATUS_SEND_REQUEST: u32 = 1;
/// Transmit status: the kernel refused the frame (malformed).
const TP_STATUS_WRONG_FORMAT: u32 = 1 << 2;

/// `sizeof(struct tpacket2_hdr)`.
const V2_HDR: usize = 32;
/// Where the data of a transmit frame starts: `TPACKETn_HDRLEN -
/// sizeof(struct sockaddr_ll)` (without `PACKET_TX_HAS_OFF`), the
/// header's own size rounded to 16.
const fn tx_data(version: Version) -> usize {
    match version {
        Version::V2 => V2_HDR,
        Version::V3 => V3_HDR,
    }
}

/// Offsets of `tp_status` and `tp_len` in a transmit frame's header.
const fn tx_fields(version: Version) -> (usize, usize) {
    match version {
        Version::V2 => (0, 4),
        Version::V3 => (20, 16),
    }
}
/// `sizeof(struct tpacket3_hdr)`.
const V3_HDR: usize = 48;
/// `sizeof(struct tpacket_block_desc)` as the kernel lays a block out
/// (`BLK_HDR_LEN`): the frames start after it.
const V3_BLOCK_HDR: usize = 48;

/// Field offsets in `struct tpacket_block_desc` (its `tpacket_hdr_v1`).
mod block {
    pub const STATUS: usize = 8;
    pub const NUM_PKTS: usize = 12;
    pub const FIRST: usize = 16;
}

/// Which ring layout receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// Fixed-size frames, each handed over on its own (readable at once).
    V2,
    /// Variable-size frames packed in blocks, handed over a block at a time.
    V3,
}

/// The shape of a socket's rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub version: Version,
    /// Receive ring: bytes per block (a multiple of the page size) and
    /// blocks.
    pub block_size: usize,
    pub blocks: usize,
    /// Receive ring, V2: bytes per frame (a multiple of 16 that divides
    /// `block_size`); V3 only uses it to count frames.
    pub frame_size: usize,
    /// V3: milliseconds after which the kernel hands over a block that is
    /// not full.
    pub retire_ms: u32,
    /// A transmit ring of that many frames of `tx_frame_size` (V2 frames),
    /// or none (frames leave through `sendmmsg`).
    pub tx_frames: usize,
    pub tx_frame_size: usize,
    /// V2: frames longer than a slot are queued on the socket whole
    /// (`PACKET_COPY_THRESH`) rather than cut.
    pub copy_long: bool,
}

/// Rounds `n` up to a multiple of `to` (a power of two).
const fn align(n: usize, to: usize) -> usize {
    (n + to - 1) & !(to - 1)
}

const PAGE: usize = 4096;

impl Geometry {
    /// Rings for a port whose frames are at most `max_frame` bytes (link
    /// MTU plus Ethernet and VLAN headers, or a super-frame with offload),
    /// with or without a virtio-net header before each.
    pub fn for_port(version: Version, max_frame: usize, tx_ring: bool) -> Self {
        // Room before the frame in a V2 slot: the header, the sockaddr_ll,
        // the alignment the kernel keeps for the network header, the
        // virtio-net header; then the frame.
        let v2_slot = align(V2_HDR + 20 + 16 + 16 + VNET_HDR_LEN + max_frame, 16);
        let tx_slot = align(tx_data(version) + VNET_HDR_LEN + max_frame, 16);
        let (tx_frames, tx_frame_size) = if tx_ring {
            let size = align(tx_slot, PAGE).min(tx_slot.next_power_of_two());
            (if size > 16 * 1024 { 64 } else { 512 }, size)
        } else {
            (0, 0)
        };
        match version {
            Version::V3 => {
                // A block holds at least one frame of any size (a 64 KB
                // super-frame with its headers in 128 KB); 4 MB in all.
                let block_size = (align(V3_BLOCK_HDR + V3_HDR + 64 + max_frame, PAGE))
                    .next_power_of_two()
                    .max(128 * 1024);
                Geometry {
                    version,
                    block_size,
                    blocks: (4 << 20) / block_size,
                    frame_size: 2048,
                    retire_ms: 1,
                    tx_frames,
                    tx_frame_size,
                    copy_long: false,
                }
            }
            Version::V2 => {
                // 2 KB slots, 2048 of them (4 MB): a frame of an ordinary
                // link fits; a longer one (a super-frame, a jumbo frame)
                // is queued whole on the socket instead (PACKET_COPY_THRESH)
                // and its slot says so. Slots of 64 KB would leave a ring of
                // 8 MB only 128 frames deep.
                let frame_size = 2048;
                Geometry {
                    version,
                    block_size: PAGE,
                    blocks: 2048 * frame_size / PAGE,
                    frame_size,
                    retire_ms: 0,
                    tx_frames,
                    tx_frame_size,
                    copy_long: v2_slot > frame_size,
                }
            }
        }
    }

    fn rx_len(&self) -> usize {
        self.block_size * self.blocks
    }

    fn tx_len(&self) -> usize {
        self.tx_frames * self.tx_frame_size
    }

    fn rx_frames(&self) -> usize {
        self.blocks * (self.block_size / self.frame_size)
    }
}

/// `struct tpacket_req3` (V2 only reads its first four fields).
#[repr(C)]
#[derive(Default)]
struct TpacketReq3 {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
    tp_retire_blk_tov: u32,
    tp_sizeof_priv: u32,
    tp_feature_req_word: u32,
}

fn set_ring(fd: BorrowedFd<'_>, opt: libc::c_int, req: &TpacketReq3) -> io::Result<()> {
    // SAFETY: the option value points at a live tpacket_req3 of the stated
    // size, which the kernel only reads.
    super::check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            opt,
            (req as *const TpacketReq3).cast(),
            size_of::<TpacketReq3>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Opens a packet socket on `ifindex` (as [`packet::open`]) with the rings
/// of `geometry`, and maps them.
pub fn open(
    ifindex: u32,
    vnet: bool,
    geometry: Geometry,
) -> Result<(OwnedFd, Rings), (Step, io::Error)> {
    let fd = packet::open_with(ifindex, vnet, |fd| {
        let version = match geometry.version {
            Version::V2 => TPACKET_V2,
            Version::V3 => TPACKET_V3,
        };
        packet::set_int(fd, libc::SOL_PACKET, PACKET_VERSION, version)
            .map_err(|e| ("set PACKET_VERSION", e))?;
        let rx = TpacketReq3 {
            tp_block_size: geometry.block_size as u32,
            tp_block_nr: geometry.blocks as u32,
            tp_frame_size: geometry.frame_size as u32,
            tp_frame_nr: geometry.rx_frames() as u32,
            tp_retire_blk_tov: geometry.retire_ms,
            ..Default::default()
        };
        set_ring(fd, PACKET_RX_RING, &rx).map_err(|e| ("set PACKET_RX_RING", e))?;
        if geometry.copy_long {
            packet::set_int(fd, libc::SOL_PACKET, PACKET_COPY_THRESH, 1)
                .map_err(|e| ("set PACKET_COPY_THRESH", e))?;
        }
        if geometry.tx_frames > 0 {
            // Fixed-size frames with the header of the socket's version
            // (V3 frames with tp_next_offset 0); blocks of at least a page.
            let block = geometry.tx_frame_size.max(PAGE);
            let tx = TpacketReq3 {
                tp_block_size: block as u32,
                tp_block_nr: (geometry.tx_len() / block) as u32,
                tp_frame_size: geometry.tx_frame_size as u32,
                tp_frame_nr: geometry.tx_frames as u32,
                ..Default::default()
            };
            set_ring(fd, PACKET_TX_RING, &tx).map_err(|e| ("set PACKET_TX_RING", e))?;
        }
        Ok(())
    })?;
    let len = geometry.rx_len() + geometry.tx_len();
    let map = {
        use std::os::fd::AsFd;
        SocketMapping::new(fd.as_fd(), len).map_err(|e| ("map the rings", e))?
    };
    let rings = Rings {
        memory: Memory::Mapped(map),
        geometry,
        vnet,
        rx: Cursor::default(),
        tx_head: 0,
    };
    Ok((fd, rings))
}

/// Where the rings live: the socket's mapping, or (tests) plain memory
/// laid out the same way.
enum Memory {
    Mapped(SocketMapping),
    #[cfg(test)]
    Heap(Vec<u64>),
}

impl Memory {
    fn base(&mut self) -> *mut u8 {
        match self {
            Memory::Mapped(m) => m.as_ptr(),
            #[cfg(test)]
            Memory::Heap(v) => v.as_mut_ptr().cast(),
        }
    }
}

/// Where the receive side stands.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    /// V3: the block being read or next to read; V2: the next frame.
    index: usize,
    /// V3: frames of the held block not read yet (0: no block held).
    left: u32,
    /// V3: offset of the next frame in the held block.
    offset: usize,
}

/// The mapped rings of one socket.
pub struct Rings {
    memory: Memory,
    geometry: Geometry,
    vnet: bool,
    rx: Cursor,
    /// The next transmit frame to fill.
    tx_head: usize,
}

/// One frame as the ring describes it, relative to the start of its slot
/// (V2) or header (V3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDesc {
    /// Offset of the Ethernet header (the virtio-net header, if any, is
    /// right before it).
    pub mac: usize,
    /// Bytes of the frame in the ring.
    pub snaplen: usize,
    /// Bytes of the frame on the wire.
    pub len: usize,
    /// The tag the kernel removed, if any.
    pub tag: Option<StrippedTag>,
    /// V3: offset of the next frame from this one (0 for the last).
    pub next: usize,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn tag(status: u32, tci: u16, tpid: u16) -> Option<StrippedTag> {
    (status & TP_STATUS_VLAN_VALID != 0).then_some(StrippedTag {
        tpid: if status & TP_STATUS_VLAN_TPID_VALID != 0 {
            tpid
        } else {
            vlan::TPID_8021Q
        },
        tci,
    })
}

/// The `struct tpacket3_hdr` at the start of `hdr` (the rest of the block
/// from that frame on), or `None` if it does not fit.
pub fn v3_frame(hdr: &[u8]) -> Option<FrameDesc> {
    let status = u32_at(hdr, 20)?;
    let d = FrameDesc {
        next: u32_at(hdr, 0)? as usize,
        snaplen: u32_at(hdr, 12)? as usize,
        len: u32_at(hdr, 16)? as usize,
        mac: usize::from(u16_at(hdr, 24)?),
        tag: tag(status, u32_at(hdr, 32)? as u16, u16_at(hdr, 36)?),
    };
    (d.mac >= V3_HDR && d.mac + d.snaplen <= hdr.len()).then_some(d)
}

/// The `struct tpacket2_hdr` at the start of `slot` and its status.
pub fn v2_frame(slot: &[u8]) -> Option<FrameDesc> {
    let status = u32_at(slot, 0)?;
    let d = FrameDesc {
        len: u32_at(slot, 4)? as usize,
        snaplen: u32_at(slot, 8)? as usize,
        mac: usize::from(u16_at(slot, 12)?),
        tag: tag(status, u16_at(slot, 24)?, u16_at(slot, 26)?),
        next: 0,
    };
    (d.mac >= V2_HDR && d.mac + d.snaplen <= slot.len()).then_some(d)
}

/// Copies the frame `d` of `area` into `buf` (keeping room for a VLAN tag
/// to be put back), its virtio-net header into `offload` with `vnet` (else
/// clears it), and puts back the tag the kernel removed. Returns the
/// frame's length and whether it was cut short.
pub fn deliver(
    area: &[u8],
    d: &FrameDesc,
    vnet: bool,
    buf: &mut [u8],
    offload: &mut VnetHeader,
) -> (usize, bool) {
    let room = buf.len().saturating_sub(vlan::TAG_LEN);
    let take = d.snaplen.min(room);
    let mut cut = d.snaplen < d.len || take < d.snaplen;
    buf[..take].copy_from_slice(&area[d.mac..d.mac + take]);
    *offload = match area.get(d.mac.wrapping_sub(VNET_HDR_LEN)..d.mac) {
        Some(h) if vnet => VnetHeader(h.try_into().expect("VNET_HDR_LEN bytes")),
        _ => VnetHeader::NONE,
    };
    let mut len = take;
    if let Some(tag) = d.tag {
        match vlan::reinsert(buf, len, tag, offload) {
            Some(tagged) => len = tagged,
            None => cut = true,
        }
    }
    (len, cut)
}

impl Rings {
    /// The status word at byte `at` of the mapping.
    fn status(&mut self, at: usize) -> &AtomicU32 {
        debug_assert!(
            at.is_multiple_of(4) && at + 4 <= self.geometry.rx_len() + self.geometry.tx_len()
        );
        // SAFETY: `at` is a 4-aligned offset inside the mapping (block and
        // frame starts are 16-aligned), which lives as long as self; the
        // kernel accesses the word concurrently, which an atomic permits.
        unsafe { &*self.memory.base().add(at).cast::<AtomicU32>() }
    }

    /// `len` bytes of the mapping from `at`, which the kernel has handed
    /// over (its status said so, read with Acquire) and does not touch
    /// until we hand it back.
    fn handed_over(&mut self, at: usize, len: usize) -> &mut [u8] {
        assert!(at + len <= self.geometry.rx_len() + self.geometry.tx_len());
        // SAFETY: inside the mapping (asserted), for the life of the
        // borrow of self; the ring protocol keeps the kernel out of these
        // bytes while the status says they are ours (the caller checked).
        unsafe { std::slice::from_raw_parts_mut(self.memory.base().add(at), len) }
    }

    /// Whether a V3 block is held with frames not read yet (the socket
    /// will not signal them again).
    pub fn has_pending(&self) -> bool {
        self.rx.left > 0
    }

    /// Receives up to `bufs.len()` frames from the receive ring, frame `i`
    /// into `bufs[i]`, its length into `lens[i]` and its offload state into
    /// `vnets[i]`. `fd` is the ring's socket, read for frames the kernel
    /// queued there because they did not fit a V2 slot.
    pub fn recv_batch(
        &mut self,
        fd: BorrowedFd<'_>,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        vnets: &mut [VnetHeader],
    ) -> RecvStats {
        let n = bufs.len().min(lens.len()).min(vnets.len());
        match self.geometry.version {
            Version::V3 => self.recv_v3(n, bufs, lens, vnets),
            Version::V2 => self.recv_v2(fd, n, bufs, lens, vnets),
        }
    }

    fn recv_v3(
        &mut self,
        n: usize,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        vnets: &mut [VnetHeader],
    ) -> RecvStats {
        let (size, vnet) = (self.geometry.block_size, self.vnet);
        let mut stats = RecvStats::default();
        while stats.frames < n {
            let start = self.rx.index * size;
            if self.rx.left == 0 {
                if self.status(start + block::STATUS).load(Ordering::Acquire) & TP_STATUS_USER == 0
                {
                    break;
                }
                let b = self.handed_over(start, size);
                let (count, first) = (
                    u32_at(b, block::NUM_PKTS).unwrap_or(0),
                    u32_at(b, block::FIRST).unwrap_or(0) as usize,
                );
                if count == 0 || first < V3_BLOCK_HDR {
                    self.release_block();
                    continue;
                }
                self.rx.left = count;
                self.rx.offset = first;
            }
            let offset = self.rx.offset;
            let b = self.handed_over(start, size);
            let Some(d) = v3_frame(&b[offset..]) else {
                // A block we cannot walk: give it back whole.
                self.release_block();
                continue;
            };
            let i = stats.frames;
            let (len, cut) = deliver(&b[offset..], &d, vnet, bufs[i], &mut vnets[i]);
            lens[i] = len;
            stats.frames += 1;
            stats.truncated += usize::from(cut);
            self.rx.left -= 1;
            self.rx.offset += d.next;
            if self.rx.left == 0 || d.next == 0 {
                self.release_block();
            }
        }
        stats
    }

    /// Hands the held (or unusable) block back and moves to the next.
    fn release_block(&mut self) {
        let start = self.rx.index * self.geometry.block_size;
        self.status(start + block::STATUS)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        self.rx = Cursor {
            index: (self.rx.index + 1) % self.geometry.blocks,
            left: 0,
            offset: 0,
        };
    }

    /// Byte offset of receive frame `i` of a V2 ring.
    fn v2_slot(&self, i: usize) -> usize {
        let per_block = self.geometry.block_size / self.geometry.frame_size;
        (i / per_block) * self.geometry.block_size + (i % per_block) * self.geometry.frame_size
    }

    fn recv_v2(
        &mut self,
        fd: BorrowedFd<'_>,
        n: usize,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        vnets: &mut [VnetHeader],
    ) -> RecvStats {
        let (size, vnet, frames) = (
            self.geometry.frame_size,
            self.vnet,
            self.geometry.rx_frames(),
        );
        let mut stats = RecvStats::default();
        while stats.frames < n {
            let at = self.v2_slot(self.rx.index);
            let status = self.status(at);
            if status.load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                break;
            }
            let slot = self.handed_over(at, size);
            if u32_at(slot, 0).unwrap_or(0) & TP_STATUS_COPY != 0 {
                // The whole frame waits on the socket, in order: the slot
                // only holds its head.
                self.status(at).store(TP_STATUS_KERNEL, Ordering::Release);
                self.rx.index = (self.rx.index + 1) % frames;
                let i = stats.frames;
                let one = packet::recv_batch(
                    fd,
                    vnet,
                    &mut bufs[i..=i],
                    &mut lens[i..=i],
                    &mut vnets[i..=i],
                )
                .unwrap_or_default();
                stats.frames += one.frames;
                stats.truncated += one.truncated;
                continue;
            }
            if let Some(d) = v2_frame(slot) {
                let i = stats.frames;
                let (len, cut) = deliver(slot, &d, vnet, bufs[i], &mut vnets[i]);
                lens[i] = len;
                stats.frames += 1;
                stats.truncated += usize::from(cut);
            }
            self.status(at).store(TP_STATUS_KERNEL, Ordering::Release);
            self.rx.index = (self.rx.index + 1) % frames;
        }
        stats
    }

    /// Whether this socket sends through its transmit ring.
    pub fn has_tx_ring(&self) -> bool {
        self.geometry.tx_frames > 0
    }

    /// Puts frames in the transmit ring (with `vnet`, each after its
    /// header) and kicks the kernel once. Returns how many the ring took;
    /// an error only when the kick failed and nothing was taken.
    pub fn send_batch(
        &mut self,
        fd: BorrowedFd<'_>,
        frames: &[&[u8]],
        vnets: &[VnetHeader],
    ) -> io::Result<usize> {
        let (base, size, count) = (
            self.geometry.rx_len(),
            self.geometry.tx_frame_size,
            self.geometry.tx_frames,
        );
        let header = if self.vnet { VNET_HDR_LEN } else { 0 };
        let data = tx_data(self.geometry.version);
        let (status_at, len_at) = tx_fields(self.geometry.version);
        let mut taken = 0;
        for (i, frame) in frames.iter().enumerate() {
            let at = base + self.tx_head * size;
            let status = self.status(at + status_at).load(Ordering::Acquire);
            if status != TP_STATUS_AVAILABLE && status != TP_STATUS_WRONG_FORMAT {
                break;
            }
            let total = header + frame.len();
            if data + total > size {
                // Cannot fit: refuse it as a full buffer would be; the
                // worker counts it (and never hands us frames this long).
                break;
            }
            let vnet = self.vnet;
            let slot = self.handed_over(at, size);
            slot[len_at..len_at + 4].copy_from_slice(&(total as u32).to_ne_bytes());
            if vnet {
                let h = vnets
                    .get(i)
                    .map_or(VnetHeader::NONE, VnetHeader::for_transmit);
                slot[data..data + header].copy_from_slice(&h.0);
            }
            slot[data + header..data + total].copy_from_slice(frame);
            self.status(at + status_at)
                .store(TP_STATUS_SEND_REQUEST, Ordering::Release);
            self.tx_head = (self.tx_head + 1) % count;
            taken += 1;
        }
        if taken > 0 {
            // SAFETY: a send with no data and no address: the kernel sends
            // what the ring holds.
            let rc = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                // Frames still requested go out with the next kick; a hard
                // error (link gone) surfaces through the socket as well.
                if e.kind() != io::ErrorKind::WouldBlock && e.raw_os_error() != Some(libc::ENOBUFS)
                {
                    return Err(e);
                }
            }
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    /// A V3 block in memory as the kernel writes it: frames with `payloads`
    /// and (for the second) a VLAN tag, each preceded by `vnet` headers.
    fn write_block(block: &mut [u8], payloads: &[&[u8]], vnet: bool) {
        let mac_off = 82 + if vnet { VNET_HDR_LEN } else { 0 };
        let mut at = V3_BLOCK_HDR;
        block[block::NUM_PKTS..block::NUM_PKTS + 4]
            .copy_from_slice(&(payloads.len() as u32).to_ne_bytes());
        block[block::FIRST..block::FIRST + 4].copy_from_slice(&(at as u32).to_ne_bytes());
        for (i, p) in payloads.iter().enumerate() {
            let h = &mut block[at..];
            let next = if i + 1 == payloads.len() {
                0
            } else {
                align(mac_off + p.len(), 16)
            };
            h[0..4].copy_from_slice(&(next as u32).to_ne_bytes());
            h[12..16].copy_from_slice(&(p.len() as u32).to_ne_bytes());
            h[16..20].copy_from_slice(&(p.len() as u32).to_ne_bytes());
            let status = if i == 1 {
                TP_STATUS_USER | TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID
            } else {
                TP_STATUS_USER
            };
            h[20..24].copy_from_slice(&status.to_ne_bytes());
            h[24..26].copy_from_slice(&(mac_off as u16).to_ne_bytes());
            h[32..36].copy_from_slice(&7u32.to_ne_bytes());
            h[36..38].copy_from_slice(&0x88a8u16.to_ne_bytes());
            if vnet {
                h[mac_off - VNET_HDR_LEN] = 1;
                h[mac_off - VNET_HDR_LEN + 1] = i as u8;
            }
            h[mac_off..mac_off + p.len()].copy_from_slice(p);
            at += next;
        }
        block[block::STATUS..block::STATUS + 4].copy_from_slice(&TP_STATUS_USER.to_ne_bytes());
    }

    fn heap_rings(blocks: usize, vnet: bool) -> Rings {
        let geometry = Geometry {
            version: Version::V3,
            block_size: PAGE,
            blocks,
            frame_size: 2048,
            retire_ms: 1,
            tx_frames: 0,
            tx_frame_size: 0,
            copy_long: false,
        };
        Rings {
            memory: Memory::Heap(vec![0; blocks * PAGE / 8]),
            geometry,
            vnet,
            rx: Cursor::default(),
            tx_head: 0,
        }
    }

    fn block_of(r: &mut Rings, i: usize) -> &mut [u8] {
        let Memory::Heap(v) = &mut r.memory else {
            unreachable!()
        };
        let bytes: &mut [u8] = bytemuck_u8(v);
        &mut bytes[i * PAGE..(i + 1) * PAGE]
    }

    fn bytemuck_u8(v: &mut [u64]) -> &mut [u8] {
        let len = v.len() * 8;
        // SAFETY: u8 has no alignment or validity requirements; same
        // memory, same lifetime, exclusive borrow.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), len) }
    }

    fn frame(n: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| n.wrapping_add(i as u8)).collect()
    }

    fn recv(r: &mut Rings, n: usize) -> (RecvStats, Vec<Vec<u8>>, Vec<VnetHeader>) {
        let mut storage = vec![vec![0u8; 256]; n];
        let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| b.as_mut_slice()).collect();
        let mut lens = vec![0; n];
        let mut vnets = vec![VnetHeader([9; VNET_HDR_LEN]); n];
        // V3 rings never read their socket.
        let unused = std::fs::File::open("/dev/null").unwrap();
        let stats = r.recv_batch(unused.as_fd(), &mut bufs, &mut lens, &mut vnets);
        let got = storage
            .iter()
            .zip(&lens)
            .take(stats.frames)
            .map(|(b, &l)| b[..l].to_vec())
            .collect();
        (stats, got, vnets)
    }

    #[test]
    fn walks_a_block_across_batches_and_hands_it_back_when_read() {
        let mut r = heap_rings(2, false);
        let frames = [frame(1, 60), frame(2, 64), frame(3, 100)];
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        write_block(block_of(&mut r, 0), &refs, false);

        let (stats, got, vnets) = recv(&mut r, 2);
        assert_eq!(stats.frames, 2);
        assert_eq!(got[0], frames[0]);
        // The second came with an 802.1ad tag the kernel had removed.
        assert_eq!(got[1].len(), 68);
        assert_eq!(&got[1][..12], &frames[1][..12]);
        assert_eq!(&got[1][12..16], &[0x88, 0xa8, 0, 7]);
        assert_eq!(&got[1][16..], &frames[1][12..]);
        assert_eq!(vnets[0], VnetHeader::NONE, "cleared without vnet");
        assert!(r.has_pending(), "one frame left in the held block");
        assert_eq!(
            u32_at(block_of(&mut r, 0), block::STATUS),
            Some(TP_STATUS_USER),
            "still ours"
        );

        let (stats, got, _) = recv(&mut r, 4);
        assert_eq!(stats.frames, 1, "block 1 is still the kernel's");
        assert_eq!(got[0], frames[2]);
        assert!(!r.has_pending());
        assert_eq!(
            u32_at(block_of(&mut r, 0), block::STATUS),
            Some(TP_STATUS_KERNEL),
            "handed back once read"
        );
        assert_eq!(recv(&mut r, 4).0.frames, 0);

        // The next block, then around the ring to block 0 again.
        write_block(block_of(&mut r, 1), &refs[..1], false);
        write_block(block_of(&mut r, 0), &refs[2..], false);
        let (stats, got, _) = recv(&mut r, 4);
        assert_eq!(stats.frames, 2);
        assert_eq!(got, vec![frames[0].clone(), frames[2].clone()]);
    }

    #[test]
    fn carries_vnet_headers_and_counts_cut_frames() {
        let mut r = heap_rings(1, true);
        let frames = [frame(5, 60), frame(6, 300)];
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        write_block(block_of(&mut r, 0), &refs, true);
        let (stats, got, vnets) = recv(&mut r, 4);
        assert_eq!(stats.frames, 2);
        assert_eq!(vnets[0].0[..2], [1, 0]);
        assert_eq!(vnets[1].0[..2], [1, 1]);
        assert_eq!(got[0], frames[0]);
        // 300 bytes do not fit a 256-byte buffer (less room for a tag).
        assert_eq!(stats.truncated, 1);
        assert_eq!(got[1].len(), 256);
    }

    #[test]
    fn a_block_that_cannot_be_walked_is_given_back() {
        let mut r = heap_rings(1, false);
        let f = frame(1, 60);
        write_block(block_of(&mut r, 0), &[&f], false);
        // The frame claims to run past the block.
        let b = block_of(&mut r, 0);
        let at = V3_BLOCK_HDR + 12;
        b[at..at + 4].copy_from_slice(&(PAGE as u32).to_ne_bytes());
        assert_eq!(recv(&mut r, 4).0.frames, 0);
        assert_eq!(
            u32_at(block_of(&mut r, 0), block::STATUS),
            Some(TP_STATUS_KERNEL)
        );
    }

    #[test]
    fn v2_frames_parse() {
        let mut slot = vec![0u8; 2048];
        slot[0..4].copy_from_slice(&(TP_STATUS_USER | TP_STATUS_VLAN_VALID).to_ne_bytes());
        slot[4..8].copy_from_slice(&100u32.to_ne_bytes());
        slot[8..12].copy_from_slice(&80u32.to_ne_bytes());
        slot[12..14].copy_from_slice(&90u16.to_ne_bytes());
        slot[24..26].copy_from_slice(&5u16.to_ne_bytes());
        let d = v2_frame(&slot).unwrap();
        assert_eq!(
            d,
            FrameDesc {
                mac: 90,
                snaplen: 80,
                len: 100,
                tag: Some(StrippedTag {
                    tpid: vlan::TPID_8021Q,
                    tci: 5
                }),
                next: 0
            }
        );
        let mut buf = [0u8; 200];
        let mut h = VnetHeader::NONE;
        let (len, cut) = deliver(&slot, &d, false, &mut buf, &mut h);
        assert_eq!((len, cut), (84, true), "snaplen < len is a cut frame");
        slot[12..14].copy_from_slice(&2000u16.to_ne_bytes());
        assert_eq!(v2_frame(&slot), None, "runs past its slot");
    }

    #[test]
    fn geometry_fits_a_super_frame() {
        for version in [Version::V2, Version::V3] {
            let g = Geometry::for_port(version, crate::datapath::spec::SUPER_FRAME_SLOT, true);
            assert!(
                g.block_size.is_multiple_of(PAGE) && g.block_size.is_multiple_of(g.frame_size),
                "{g:?}"
            );
            if version == Version::V3 {
                assert!(g.block_size - V3_BLOCK_HDR >= 65_536 + 14 + 4 + VNET_HDR_LEN + 96);
            } else {
                assert!(g.copy_long, "V2 queues super-frames on the socket: {g:?}");
                let small = Geometry::for_port(version, 1518, false);
                assert!(!small.copy_long, "an ordinary frame fits a slot: {small:?}");
            }
            assert!(
                g.tx_frame_size >= tx_data(version) + VNET_HDR_LEN + 65_536 + 18,
                "{g:?}"
            );
        }
    }
}
