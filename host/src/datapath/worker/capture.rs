//! `nfvhost capture` inside the worker: the frames crossing one port of one
//! VNF (received by the module on it, and forwarded or emitted out of it)
//! written as pcap records to a pipe that `nfvhost capture` reads.
//!
//! The worker opens nothing: the pipe's write end arrives over the control
//! channel (SCM_RIGHTS, like `nfvhost replace`'s memfd), already
//! non-blocking, so a slow reader never stalls the data path: records wait
//! in a bounded buffer, and whole records that do not fit are dropped (and
//! counted). The worker only `write`s, `ppoll`s (to see that the reader went
//! away) and `close`s it, all already on its seccomp allow-list.

use std::fs::File;
use std::io;
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant, SystemTime};

use pcap_file::pcap::PcapHeader;
use pcap_file::{DataLink, Endianness, TsResolution};
use serde::{Deserialize, Serialize};

/// Bytes of a captured frame kept (tcpdump's default snap length; larger
/// than any frame a slot holds).
pub const SNAPLEN: u32 = 262_144;

/// Records waiting for the reader beyond this are dropped, whole.
pub const MAX_PENDING: usize = 4 << 20;

/// What the supervisor sends (with the pipe's write end attached) under
/// the `capture` key of a control message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureRequest {
    /// The VNF (one of a fused group's members, or the worker's only one).
    pub vnf: String,
    /// The port's name in the chain file.
    pub port: String,
    /// Stop after this many frames.
    #[serde(default)]
    pub count: Option<u64>,
    /// Stop after this long.
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// A control message that carries a capture request; anything else on the
/// channel is a replace request.
#[derive(Debug, Deserialize)]
pub(super) struct CaptureMessage {
    pub capture: CaptureRequest,
}

impl CaptureMessage {
    /// The capture request in `bytes`, if they are one.
    pub(super) fn parse(bytes: &[u8]) -> Option<CaptureRequest> {
        serde_json::from_slice::<CaptureMessage>(bytes)
            .ok()
            .map(|m| m.capture)
    }
}

/// The control message for `request`.
pub fn capture_message(request: &CaptureRequest) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "capture": request })).expect("serializes")
}

/// One running capture of one port.
pub struct PortCapture<W> {
    /// The module's port index.
    pub port: usize,
    out: W,
    pending: Vec<u8>,
    left: Option<u64>,
    deadline: Option<Instant>,
    /// Frames recorded, and dropped because the reader lagged.
    pub captured: u64,
    pub dropped: u64,
    /// The write end failed (the reader went away): nothing more is sent.
    broken: bool,
}

impl<W: io::Write> PortCapture<W> {
    /// Starts a capture of `port` into `out` (the pcap header first).
    pub fn new(port: usize, out: W, count: Option<u64>, duration: Option<Duration>) -> Self {
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: SNAPLEN,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::Little,
        };
        let mut pending = Vec::with_capacity(64 * 1024);
        header.write_to(&mut pending).expect("a Vec takes it");
        PortCapture {
            port,
            out,
            pending,
            left: count,
            deadline: duration.map(|d| Instant::now() + d),
            captured: 0,
            dropped: 0,
            broken: false,
        }
    }

    /// Appends one frame's record (a no-op once the count is reached).
    /// The record layout is pcap's (16-byte header, little-endian, ns
    /// timestamps, as the global header says); built here in one piece so
    /// that only whole records ever reach the pipe.
    pub fn record(&mut self, frame: &[u8]) {
        if self.left == Some(0) || self.broken {
            return;
        }
        let kept = frame.len().min(SNAPLEN as usize);
        if self.pending.len() + 16 + kept > MAX_PENDING {
            self.dropped += 1;
            return;
        }
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = u32::try_from(ts.as_secs()).unwrap_or(u32::MAX);
        self.pending.extend_from_slice(&secs.to_le_bytes());
        self.pending
            .extend_from_slice(&ts.subsec_nanos().to_le_bytes());
        self.pending.extend_from_slice(&(kept as u32).to_le_bytes());
        self.pending
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.pending.extend_from_slice(&frame[..kept]);
        self.captured += 1;
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
    }

    /// Writes what the reader takes without blocking; the rest waits.
    pub fn flush(&mut self) {
        while !self.pending.is_empty() && !self.broken {
            match self.out.write(&self.pending) {
                Ok(0) => self.broken = true,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
        }
    }

    /// Whether the capture is over at `now`: its count reached and every
    /// record written, its time up, or its reader gone.
    pub fn finished(&self, now: Instant) -> bool {
        self.broken
            || (self.left == Some(0) && self.pending.is_empty())
            || self.deadline.is_some_and(|d| now >= d)
    }

    /// Why it is over, for the worker's log.
    pub fn outcome(&self) -> String {
        let why = if self.broken {
            "the reader went away"
        } else if self.left == Some(0) {
            "count reached"
        } else {
            "time is up"
        };
        format!(
            "{} frames captured, {} dropped (reader too slow); {why}",
            self.captured, self.dropped
        )
    }
}

impl PortCapture<File> {
    /// Notices a reader that closed its end (`nfvhost capture` stopped by
    /// Ctrl-C) even when nothing is written: the write end polls POLLERR.
    pub fn check_reader(&mut self) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.out.as_fd(), PollFlags::POLLOUT)];
        if let Ok(n) = poll(&mut fds, PollTimeout::ZERO) {
            let gone = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
            if n > 0 && fds[0].revents().is_some_and(|r| r.intersects(gone)) {
                self.broken = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;

    #[test]
    fn records_read_back_with_pcap_file_and_the_count_stops_them() {
        let mut c = PortCapture::new(1, Vec::new(), Some(2), None);
        assert!(!c.finished(Instant::now()));
        c.record(&[1u8; 60]);
        c.record(&[2u8; 1514]);
        c.record(&[3u8; 60]);
        assert_eq!((c.captured, c.dropped), (2, 0));
        // Written but not yet flushed: not over until the reader has it.
        assert!(!c.finished(Instant::now()));
        c.flush();
        assert!(c.finished(Instant::now()));
        assert!(c.outcome().contains("count reached"), "{}", c.outcome());
        let bytes = std::mem::take(&mut c.out);
        let mut reader = PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.header().datalink, DataLink::ETHERNET);
        assert_eq!(reader.header().ts_resolution, TsResolution::NanoSecond);
        let a = reader.next_packet().unwrap().unwrap();
        assert_eq!((a.data.len(), a.orig_len, a.data[0]), (60, 60, 1));
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert!(now.saturating_sub(a.timestamp) < Duration::from_secs(5));
        let b = reader.next_packet().unwrap().unwrap();
        assert_eq!((b.data.len(), b.data[0]), (1514, 2));
        assert!(reader.next_packet().is_none());
    }

    #[test]
    fn a_full_pipe_keeps_whole_records_and_a_closed_reader_ends_it() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        let mut c = PortCapture::new(0, File::from(w), None, None);
        // More than the pipe holds: the rest waits in the buffer.
        for _ in 0..100 {
            c.record(&[7u8; 1500]);
        }
        c.flush();
        assert!(!c.pending.is_empty());
        assert!(!c.finished(Instant::now()));
        // The reader takes what is there, record by record.
        let mut reader = File::from(r);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while !c.pending.is_empty() {
            use std::io::Read as _;
            match reader.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.flush(),
                Err(e) => panic!("{e}"),
            }
        }
        use std::io::Read as _;
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let mut pcap = PcapReader::new(&got[..]).unwrap();
        let mut n = 0;
        while let Some(p) = pcap.next_packet() {
            assert_eq!(p.unwrap().data.len(), 1500);
            n += 1;
        }
        assert_eq!(n, 100);
        c.check_reader();
        assert!(!c.finished(Instant::now()));
        drop(reader);
        c.check_reader();
        assert!(c.finished(Instant::now()));
        assert!(c.outcome().contains("reader went away"));
    }

    #[test]
    fn a_lagging_reader_loses_whole_records_and_time_ends_it() {
        let mut c = PortCapture::new(0, Vec::new(), None, Some(Duration::ZERO));
        for _ in 0..(MAX_PENDING / 1000 + 10) {
            c.record(&[0u8; 1000]);
        }
        assert!(c.dropped > 0);
        assert!(c.pending.len() <= MAX_PENDING);
        assert!(c.finished(Instant::now()));
        assert!(c.outcome().contains("time is up"));
    }

    #[test]
    fn capture_messages_parse_and_replace_requests_are_not_one() {
        let request = CaptureRequest {
            vnf: "fw".into(),
            port: "inside".into(),
            count: Some(4),
            duration_ms: None,
        };
        let text = capture_message(&request);
        assert_eq!(CaptureMessage::parse(&text), Some(request));
        let replace =
            br#"{"vnf":"fw","generation":2,"module":"/m.wasm","digest":"x","init_document":""}"#;
        assert_eq!(CaptureMessage::parse(replace), None);
        assert_eq!(CaptureMessage::parse(br#"{"capture":{"vnf":1}}"#), None);
    }
}
