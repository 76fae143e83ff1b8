//! Sending a group of frames out of one port: every frame is checked before
//! the kernel sees it (length, offload state), frames a port cannot carry
//! the offload state of are completed in software ([`super::offload`]), and
//! a frame the kernel refuses is counted and skipped, never taking the
//! frames behind it down with it.

use std::sync::atomic::Ordering::Relaxed;

use super::offload::{self, Segments};
use super::port::Port;
use super::stats::{PortCounters, TxRefusal};
use crate::engine::{GsoType, VnetHeader};

/// Ethernet header.
const ETH_HEADER: usize = 14;
/// The longest super-frame: a 64 KiB IP packet behind a (double-)tagged
/// header.
const MAX_SUPER_FRAME: usize = ETH_HEADER + offload::MAX_TAGS * offload::TAG_LEN + 65_535;

/// Scratch space reused from batch to batch (no allocation once warm).
#[derive(Debug, Default)]
pub struct TxScratch {
    soft: Segments,
    /// The last [`send`] met an error that says the port's link is gone
    /// or down (see [`super::health::link_gone`]).
    link_gone: bool,
}

impl TxScratch {
    /// Whether the last [`send`] found the port's link gone or down.
    pub fn link_gone(&self) -> bool {
        self.link_gone
    }
}

/// Where the wire frames for one input frame come from.
#[derive(Clone, Copy)]
enum Plan {
    /// The frame itself, with this header.
    Direct(VnetHeader),
    /// `soft` frames `start..end`, made in software.
    Soft(usize, usize),
    /// Not sent.
    Refused(TxRefusal),
}

/// The longest frame `port` takes with this offload state: MTU plus the
/// Ethernet header and the VLAN tags the frame has (802.1Q or 802.1ad, up
/// to two: QinQ) for an ordinary frame, [`MAX_SUPER_FRAME`] for a
/// super-frame the port segments itself. (The kernel itself lets a veth or
/// packet socket pass one tag beyond the MTU: a QinQ link needs its inner
/// MTU 4 bytes smaller, as on real switches.)
fn max_len(frame: &[u8], mtu: u32, offload: VnetHeader) -> usize {
    if offload.gso_type() != GsoType::None {
        return MAX_SUPER_FRAME;
    }
    mtu as usize + ETH_HEADER + offload::tags(frame) * offload::TAG_LEN
}

fn check_len(frame: &[u8], mtu: u32, offload: VnetHeader) -> Result<(), TxRefusal> {
    if frame.len() < ETH_HEADER {
        Err(TxRefusal::TooShort)
    } else if frame.len() > max_len(frame, mtu, offload) {
        Err(TxRefusal::TooLong)
    } else {
        Ok(())
    }
}

/// Sends `frames[i]` (which arrived with `offloads[i]`) out of `port`, at
/// most [`nfvhost_abi::MAX_BATCH`] of them. Returns how many left whole
/// (every segment of a super-frame sent). Counts per port: wire frames and
/// bytes sent, and every frame not sent by reason.
pub fn send(
    port: &mut dyn Port,
    counters: &PortCounters,
    mtu: u32,
    frames: &[&[u8]],
    offloads: &[VnetHeader],
    tx: &mut TxScratch,
) -> usize {
    let n = frames.len().min(offloads.len()).min(nfvhost_abi::MAX_BATCH);
    let carries = port.carries_offload();
    let mut plans = [Plan::Refused(TxRefusal::TooShort); nfvhost_abi::MAX_BATCH];
    tx.soft.clear();
    for i in 0..n {
        let (frame, arrived) = (frames[i], offloads[i]);
        plans[i] = if arrived == VnetHeader::NONE {
            Plan::Direct(VnetHeader::NONE)
        } else if carries {
            match offload::transmit_header(arrived, frame) {
                Ok(h) => Plan::Direct(h),
                Err(_) => Plan::Refused(TxRefusal::BadOffload),
            }
        } else {
            match check_len(frame, mtu, arrived) {
                Err(why) => Plan::Refused(why),
                Ok(()) => match offload::make_plain(frame, arrived, &mut tx.soft) {
                    Ok(r) => Plan::Soft(r.start, r.end),
                    Err(_) => Plan::Refused(TxRefusal::BadOffload),
                },
            }
        };
    }

    tx.link_gone = false;
    let mut wire = Wire::new();
    let mut failed = [false; nfvhost_abi::MAX_BATCH];
    let soft = &tx.soft;
    for i in 0..n {
        match plans[i] {
            Plan::Refused(why) => {
                counters.refuse(why, 1);
                failed[i] = true;
            }
            Plan::Direct(header) => {
                wire.push(port, counters, mtu, frames[i], header, i, &mut failed);
            }
            Plan::Soft(start, end) => {
                for k in start..end {
                    wire.push(
                        port,
                        counters,
                        mtu,
                        soft.get(k),
                        VnetHeader::NONE,
                        i,
                        &mut failed,
                    );
                }
            }
        }
    }
    wire.flush(port, counters, &mut failed);
    tx.link_gone = wire.link_gone;
    failed[..n].iter().filter(|f| !**f).count()
}

/// Wire frames queued for one `sendmmsg`, in order; `owner[k]` is the input
/// frame wire frame `k` belongs to.
struct Wire<'a> {
    frames: [&'a [u8]; nfvhost_abi::MAX_BATCH],
    headers: [VnetHeader; nfvhost_abi::MAX_BATCH],
    owner: [usize; nfvhost_abi::MAX_BATCH],
    len: usize,
    /// A send failed because the link is gone: nothing more is tried.
    link_gone: bool,
}

impl<'a> Wire<'a> {
    fn new() -> Self {
        Wire {
            frames: [&[]; nfvhost_abi::MAX_BATCH],
            headers: [VnetHeader::NONE; nfvhost_abi::MAX_BATCH],
            owner: [0; nfvhost_abi::MAX_BATCH],
            len: 0,
            link_gone: false,
        }
    }

    /// Queues `frame` (after its length check), flushing first when full.
    #[expect(clippy::too_many_arguments, reason = "one call site per plan kind")]
    fn push(
        &mut self,
        port: &mut dyn Port,
        counters: &PortCounters,
        mtu: u32,
        frame: &'a [u8],
        header: VnetHeader,
        owner: usize,
        failed: &mut [bool],
    ) {
        if let Err(why) = check_len(frame, mtu, header) {
            counters.refuse(why, 1);
            failed[owner] = true;
            return;
        }
        if self.len == self.frames.len() {
            self.flush(port, counters, failed);
        }
        self.frames[self.len] = frame;
        self.headers[self.len] = header;
        self.owner[self.len] = owner;
        self.len += 1;
    }

    /// Sends what is queued; marks the owners of frames not sent as failed.
    fn flush(&mut self, port: &mut dyn Port, counters: &PortCounters, failed: &mut [bool]) {
        let mut ok = [true; nfvhost_abi::MAX_BATCH];
        if self.link_gone {
            counters.refuse(TxRefusal::Kernel, self.len as u64);
            ok[..self.len].fill(false);
        } else {
            self.link_gone = send_all(
                port,
                counters,
                &self.frames[..self.len],
                &self.headers[..self.len],
                &mut ok,
            );
        }
        for k in 0..self.len {
            if !ok[k] {
                failed[self.owner[k]] = true;
            }
        }
        self.len = 0;
    }
}

/// Hands `frames` to the port until all are sent or the socket is full.
/// A frame the kernel refuses is counted (`kernel`) and skipped; when the
/// buffer is full the rest are counted (`busy`). `ok[k]` says whether frame
/// `k` was sent. An error that says the link is gone ends the call: the
/// frames left are refused (`kernel`) and it returns true.
fn send_all(
    port: &mut dyn Port,
    counters: &PortCounters,
    frames: &[&[u8]],
    headers: &[VnetHeader],
    ok: &mut [bool],
) -> bool {
    let mut i = 0;
    while i < frames.len() {
        match port.send_batch(&frames[i..], &headers[i..]) {
            Ok(0) => {
                counters.refuse(TxRefusal::Busy, (frames.len() - i) as u64);
                ok[i..frames.len()].fill(false);
                return false;
            }
            Ok(sent) => {
                counters.tx_packets.fetch_add(sent as u64, Relaxed);
                let bytes: usize = frames[i..i + sent].iter().map(|f| f.len()).sum();
                counters.tx_bytes.fetch_add(bytes as u64, Relaxed);
                i += sent;
            }
            Err(e) if super::health::link_gone(&e) => {
                counters.refuse(TxRefusal::Kernel, (frames.len() - i) as u64);
                ok[i..frames.len()].fill(false);
                return true;
            }
            Err(_) => {
                counters.refuse(TxRefusal::Kernel, 1);
                ok[i] = false;
                i += 1;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

    use crate::datapath::port::RecvStats;
    use crate::datapath::stats::PortCounters;

    /// A port that records what it sends, refuses frames whose first byte
    /// is 0xee (as the kernel refuses with EMSGSIZE), and takes at most
    /// `room` frames before its buffer is full.
    struct Recording {
        null: OwnedFd,
        sent: Vec<Vec<u8>>,
        room: usize,
        carries: bool,
    }

    impl Recording {
        fn new(room: usize, carries: bool) -> Self {
            Recording {
                null: std::fs::File::open("/dev/null").unwrap().into(),
                sent: Vec::new(),
                room,
                carries,
            }
        }
    }

    impl Port for Recording {
        fn name(&self) -> &str {
            "rec"
        }
        fn readable_fd(&self) -> Option<BorrowedFd<'_>> {
            Some(self.null.as_fd())
        }
        fn recv_batch(
            &mut self,
            _: &mut [&mut [u8]],
            _: &mut [usize],
            _: &mut [VnetHeader],
        ) -> io::Result<RecvStats> {
            Ok(RecvStats::default())
        }
        fn carries_offload(&self) -> bool {
            self.carries
        }
        fn send_batch(&mut self, frames: &[&[u8]], _: &[VnetHeader]) -> io::Result<usize> {
            let mut n = 0;
            for f in frames {
                if self.sent.len() == self.room {
                    break;
                }
                if f[0] == 0xdd {
                    // The link is gone (a deleted interface): ENXIO.
                    return if n == 0 {
                        Err(io::Error::from_raw_os_error(libc::ENXIO))
                    } else {
                        Ok(n)
                    };
                }
                if f[0] == 0xee {
                    return if n == 0 {
                        Err(io::Error::from_raw_os_error(libc::EMSGSIZE))
                    } else {
                        Ok(n)
                    };
                }
                self.sent.push(f.to_vec());
                n += 1;
            }
            Ok(n)
        }
    }

    fn refused(c: &PortCounters, why: TxRefusal) -> u64 {
        c.tx_refused[why as usize].load(Relaxed)
    }

    #[test]
    fn a_link_that_is_gone_ends_the_send_and_says_so() {
        let ok = vec![1u8; 60];
        let gone = vec![0xddu8; 60];
        let frames: Vec<&[u8]> = vec![&ok, &gone, &ok, &ok];
        let offloads = vec![VnetHeader::NONE; frames.len()];
        let mut port = Recording::new(100, false);
        let counters = PortCounters::default();
        let mut tx = TxScratch::default();
        let sent = send(&mut port, &counters, 1500, &frames, &offloads, &mut tx);
        assert_eq!(sent, 1);
        assert_eq!(port.sent.len(), 1, "nothing is tried after ENXIO");
        assert!(tx.link_gone());
        assert_eq!(refused(&counters, TxRefusal::Kernel), 3);
        let sent = send(&mut port, &counters, 1500, &[&ok], &offloads[..1], &mut tx);
        assert_eq!(sent, 1);
        assert!(!tx.link_gone(), "reset by the next send");
    }

    #[test]
    fn a_refused_frame_does_not_take_the_rest_of_the_batch_down() {
        let ok = vec![1u8; 60];
        let short = vec![1u8; 13];
        let long = vec![1u8; 1500 + 14 + 1];
        let mut tagged_full = vec![1u8; 1500 + 18];
        tagged_full[12..14].copy_from_slice(&[0x81, 0x00]);
        let kernel_refuses = vec![0xeeu8; 60];
        let frames: Vec<&[u8]> = vec![&ok, &short, &ok, &long, &kernel_refuses, &tagged_full, &ok];
        let offloads = vec![VnetHeader::NONE; frames.len()];
        let mut port = Recording::new(100, true);
        let counters = PortCounters::default();
        let sent = send(
            &mut port,
            &counters,
            1500,
            &frames,
            &offloads,
            &mut TxScratch::default(),
        );
        assert_eq!(sent, 4);
        assert_eq!(port.sent.len(), 4, "every good frame left, in order");
        assert_eq!(port.sent[2].len(), 1518);
        assert_eq!(refused(&counters, TxRefusal::TooShort), 1);
        assert_eq!(refused(&counters, TxRefusal::TooLong), 1);
        assert_eq!(refused(&counters, TxRefusal::Kernel), 1);
        assert_eq!(counters.tx_errors.load(Relaxed), 3);
        assert_eq!(counters.tx_packets.load(Relaxed), 4);
    }

    #[test]
    fn a_full_buffer_counts_the_rest_as_busy() {
        let ok = vec![1u8; 60];
        let frames: Vec<&[u8]> = vec![&ok; 5];
        let mut port = Recording::new(2, true);
        let counters = PortCounters::default();
        let sent = send(
            &mut port,
            &counters,
            1500,
            &frames,
            &[VnetHeader::NONE; 5],
            &mut TxScratch::default(),
        );
        assert_eq!(sent, 2);
        assert_eq!(refused(&counters, TxRefusal::Busy), 3);
    }

    #[test]
    fn a_port_without_offloads_gets_segments_and_bad_offload_is_refused() {
        // An IPv4/TCP super-frame: 20 + 20 header, 3000 payload, gso 1000.
        let mut f = vec![0u8; 14 + 40 + 3000];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&3040u16.to_be_bytes());
        f[23] = 6;
        f[14 + 20 + 12] = 5 << 4;
        let mut h = [0u8; 10];
        h[0] = 1;
        h[1] = 1;
        h[4..6].copy_from_slice(&1000u16.to_ne_bytes());
        let gso = VnetHeader(h);
        let not_ip = vec![1u8; 60];
        let frames: Vec<&[u8]> = vec![&f, &not_ip];
        let mut port = Recording::new(100, false);
        let counters = PortCounters::default();
        let sent = send(
            &mut port,
            &counters,
            1500,
            &frames,
            &[gso, gso],
            &mut TxScratch::default(),
        );
        assert_eq!(sent, 1);
        let lens: Vec<usize> = port.sent.iter().map(Vec::len).collect();
        assert_eq!(lens, [1054, 1054, 1054]);
        assert_eq!(refused(&counters, TxRefusal::BadOffload), 1);
        // Segments that do not fit the link are refused, and so is the
        // super-frame they came from.
        let mut port = Recording::new(100, false);
        let sent = send(
            &mut port,
            &counters,
            1000,
            &frames[..1],
            &[gso],
            &mut TxScratch::default(),
        );
        assert_eq!((sent, port.sent.len()), (0, 0));
        assert_eq!(refused(&counters, TxRefusal::TooLong), 3);
    }

    #[test]
    fn tagged_and_double_tagged_frames_are_handled_not_refused() {
        // The super-frame of the test above behind an 802.1ad S-tag and an
        // 802.1Q C-tag.
        let mut f = vec![0u8; 14 + 8 + 40 + 3000];
        f[12..14].copy_from_slice(&[0x88, 0xa8]);
        f[16..18].copy_from_slice(&[0x81, 0x00]);
        f[20..22].copy_from_slice(&[0x08, 0x00]);
        f[22] = 0x45;
        f[24..26].copy_from_slice(&3040u16.to_be_bytes());
        f[31] = 6;
        f[22 + 20 + 12] = 5 << 4;
        let mut h = [0u8; 10];
        h[0] = 1;
        h[1] = 1;
        h[4..6].copy_from_slice(&1000u16.to_ne_bytes());
        let gso = VnetHeader(h);
        // Ordinary frames: the MTU plus the header plus two tags fits.
        let full = {
            let mut g = vec![0u8; 1500 + 14 + 8];
            g[12..14].copy_from_slice(&[0x88, 0xa8]);
            g[16..18].copy_from_slice(&[0x81, 0x00]);
            g
        };
        let over = vec![0u8; full.len() + 1];
        let mut over_tagged = full.clone();
        over_tagged.push(0);
        let frames: Vec<&[u8]> = vec![&f, &full, &over, &over_tagged];
        let none = VnetHeader::NONE;
        let mut port = Recording::new(100, false);
        let counters = PortCounters::default();
        let sent = send(
            &mut port,
            &counters,
            1500,
            &frames,
            &[gso, none, none, none],
            &mut TxScratch::default(),
        );
        assert_eq!(sent, 2, "the super-frame and the full frame");
        let lens: Vec<usize> = port.sent.iter().map(Vec::len).collect();
        assert_eq!(lens, [1062, 1062, 1062, 1522]);
        assert!(
            port.sent[..3].iter().all(|s| s[..22] == f[..22]),
            "tags kept"
        );
        assert_eq!(refused(&counters, TxRefusal::TooLong), 2);
        assert_eq!(refused(&counters, TxRefusal::BadOffload), 0);
    }
}
