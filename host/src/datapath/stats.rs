//! The stats segment: a file-backed shared memory region the worker writes
//! with relaxed atomic stores and the supervisor maps read-only, so a scrape
//! never asks the worker anything (the model is VPP's stats segment).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use nfvhost_abi::{MAX_COUNTERS, MAX_PORTS};

use super::sys::mapping::SharedMapping;

/// Identifies a segment and its layout version.
pub const MAGIC: u64 = u64::from_le_bytes(*b"NFVSTAT2");

/// Upper bounds of the call-duration histogram, in nanoseconds.
pub const CALL_NS_BUCKETS: [u64; 14] = [
    1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000,
    5_000_000, 10_000_000, 50_000_000,
];
/// Upper bounds of the batch-size histogram, in frames.
pub const BATCH_BUCKETS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/// Trap kinds, in slot order (see `CallFailure::label`).
pub const TRAP_KINDS: [&str; 10] = [
    "timeout",
    "unreachable",
    "memory_out_of_bounds",
    "stack_overflow",
    "division_by_zero",
    "integer_overflow",
    "bad_call",
    "other",
    "host",
    "status",
];

/// Per-port counters.
#[repr(C)]
#[derive(Default)]
pub struct PortCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_errors: AtomicU64,
    pub tx_errors: AtomicU64,
    pub up: AtomicU64,
    /// Frames the kernel dropped for want of socket buffer space.
    pub rx_dropped: AtomicU64,
    /// Frames not transmitted, by [`TxRefusal`] (each also in `tx_errors`).
    pub tx_refused: [AtomicU64; TxRefusal::ALL.len()],
}

/// Why the worker did not transmit a frame. The frames behind a refused
/// one in the same batch are still sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxRefusal {
    /// Shorter than an Ethernet header (14 bytes).
    TooShort,
    /// Longer than the port's link takes (MTU + Ethernet and VLAN header
    /// for an ordinary frame, 64 KiB for a super-frame).
    TooLong,
    /// Offload state that does not match the frame (a partial checksum or
    /// super-frame whose headers are not TCP/UDP over IP).
    BadOffload,
    /// The kernel refused it (any other error than a full buffer).
    Kernel,
    /// The socket buffer was full.
    Busy,
}

impl TxRefusal {
    /// Every reason, in counter order.
    pub const ALL: [TxRefusal; 5] = [
        TxRefusal::TooShort,
        TxRefusal::TooLong,
        TxRefusal::BadOffload,
        TxRefusal::Kernel,
        TxRefusal::Busy,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            TxRefusal::TooShort => "too_short",
            TxRefusal::TooLong => "too_long",
            TxRefusal::BadOffload => "bad_offload",
            TxRefusal::Kernel => "kernel",
            TxRefusal::Busy => "busy",
        }
    }
}

impl PortCounters {
    /// Counts `n` frames not transmitted for `why`.
    pub fn refuse(&self, why: TxRefusal, n: u64) {
        if n > 0 {
            self.tx_errors.fetch_add(n, Relaxed);
            self.tx_refused[why as usize].fetch_add(n, Relaxed);
        }
    }
}

/// A histogram: cumulative counts per bucket are computed by the reader.
#[repr(C)]
pub struct Histogram<const N: usize> {
    /// Observations per bucket; the last slot is for values above every bound.
    pub buckets: [AtomicU64; N],
    pub count: AtomicU64,
    pub sum: AtomicU64,
}

/// The whole segment.
#[repr(C)]
pub struct StatsLayout {
    pub magic: AtomicU64,
    /// Worker pid, for `inspect`.
    pub pid: AtomicU64,
    /// Bumped every time the worker (re)creates the module instance.
    pub instance_generation: AtomicU64,
    pub port_count: AtomicU64,
    pub ports: [PortCounters; MAX_PORTS],
    /// Frames handed to the module.
    pub received: AtomicU64,
    pub forwarded: AtomicU64,
    pub consumed: AtomicU64,
    pub dropped: AtomicU64,
    /// Frames the module emitted.
    pub emitted: AtomicU64,
    /// Drops by `DropReason` number.
    pub drops_by_reason: [AtomicU64; 256],
    /// Traps by `TRAP_KINDS` index.
    pub traps: [AtomicU64; 16],
    /// Call duration in nanoseconds; `CALL_NS_BUCKETS.len() + 1` buckets used.
    pub call_ns: Histogram<16>,
    /// Frames per call; `BATCH_BUCKETS.len() + 1` buckets used.
    pub batch_frames: Histogram<16>,
    pub module_memory_bytes: AtomicU64,
    pub module_memory_limit: AtomicU64,
    /// Values of the module's declared metrics (names in the sidecar file).
    pub module_metrics: [AtomicU64; MAX_COUNTERS],
    /// CLOCK_MONOTONIC milliseconds at the worker loop's last turn; the
    /// supervisor restarts a worker whose heartbeat stops.
    pub heartbeat_ms: AtomicU64,
    /// Wakeups of a fused group's worker that stopped passing frames
    /// between its members at the hop bound (a forwarding loop between
    /// modules) with frames still waiting on this VNF's in-memory ports.
    pub hop_limit_hits: AtomicU64,
}

/// CLOCK_MONOTONIC in milliseconds: the same clock in every process.
pub fn monotonic_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}

/// Reads a segment's heartbeat with one `pread`, without mapping the file
/// (a worker restarting recreates it).
pub fn read_heartbeat(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::FileExt as _;
    let mut bytes = [0u8; 8];
    File::open(path)?.read_exact_at(
        &mut bytes,
        std::mem::offset_of!(StatsLayout, heartbeat_ms) as u64,
    )?;
    Ok(u64::from_ne_bytes(bytes))
}

impl StatsLayout {
    /// Bucket index for an observation.
    pub fn bucket(bounds: &[u64], value: u64) -> usize {
        bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(bounds.len())
    }

    pub fn observe_call(&self, ns: u64, frames: u64) {
        let h = &self.call_ns;
        h.buckets[Self::bucket(&CALL_NS_BUCKETS, ns)].fetch_add(1, Relaxed);
        h.count.fetch_add(1, Relaxed);
        h.sum.fetch_add(ns, Relaxed);
        if frames > 0 {
            let b = &self.batch_frames;
            b.buckets[Self::bucket(&BATCH_BUCKETS, frames)].fetch_add(1, Relaxed);
            b.count.fetch_add(1, Relaxed);
            b.sum.fetch_add(frames, Relaxed);
        }
    }

    /// Marks the worker loop as alive now.
    pub fn beat(&self) {
        self.heartbeat_ms.store(monotonic_ms(), Relaxed);
    }

    pub fn trap(&self, kind: &str) {
        let i = TRAP_KINDS.iter().position(|k| *k == kind).unwrap_or(7);
        self.traps[i].fetch_add(1, Relaxed);
    }
}

/// A mapped segment. Writers use `create`; readers use `open`.
pub struct StatsSegment {
    map: SharedMapping<StatsLayout>,
}

const SIZE: usize = size_of::<StatsLayout>();

impl StatsSegment {
    /// Creates a fresh segment and maps it read-write. The file is built
    /// under a unique temporary name (0600, O_EXCL) and renamed over `path`:
    /// the previous segment is never truncated, so a reader that still maps
    /// it (a scrape racing a worker restart) reads the old counters instead
    /// of taking a SIGBUS.
    pub fn create(path: &Path) -> io::Result<Self> {
        let name = path
            .file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        let result = (|| {
            file.set_len(SIZE as u64)?;
            let seg = StatsSegment {
                map: SharedMapping::new(file, true)?,
            };
            seg.magic.store(MAGIC, Relaxed);
            std::fs::rename(&tmp, path)?;
            Ok(seg)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Maps an existing segment read-only; refuses a file of the wrong size
    /// or magic.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.file_type().is_file() || meta.len() != SIZE as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "stats segment has the wrong size",
            ));
        }
        let seg = StatsSegment {
            map: SharedMapping::new(file, false)?,
        };
        if seg.magic.load(Relaxed) != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an nfvhost stats segment",
            ));
        }
        Ok(seg)
    }
}

impl std::ops::Deref for StatsSegment {
    type Target = StatsLayout;
    fn deref(&self) -> &StatsLayout {
        &self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_reader_share_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r1.stats");
        let w = StatsSegment::create(&path).unwrap();
        let r = StatsSegment::open(&path).unwrap();
        w.ports[1].rx_packets.fetch_add(3, Relaxed);
        w.observe_call(1_500, 32);
        assert_eq!(r.ports[1].rx_packets.load(Relaxed), 3);
        assert_eq!(r.call_ns.buckets[1].load(Relaxed), 1);
        assert_eq!(r.batch_frames.buckets[5].load(Relaxed), 1);
        assert_eq!(r.batch_frames.sum.load(Relaxed), 32);
    }

    #[test]
    fn the_heartbeat_is_read_without_a_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r1.stats");
        let w = StatsSegment::create(&path).unwrap();
        assert_eq!(read_heartbeat(&path).unwrap(), 0);
        w.beat();
        let beat = read_heartbeat(&path).unwrap();
        assert!(beat > 0 && beat <= monotonic_ms());
    }

    #[test]
    fn a_restart_never_truncates_a_mapped_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r1.stats");
        let w = StatsSegment::create(&path).unwrap();
        w.ports[0].rx_packets.fetch_add(7, Relaxed);
        let r = StatsSegment::open(&path).unwrap();
        // The worker restarts: a new segment replaces the file.
        let w2 = StatsSegment::create(&path).unwrap();
        // The old mapping is intact (a truncation would SIGBUS here).
        assert_eq!(r.ports[0].rx_packets.load(Relaxed), 7);
        assert_eq!(r.magic.load(Relaxed), MAGIC);
        let r2 = StatsSegment::open(&path).unwrap();
        assert_eq!(r2.ports[0].rx_packets.load(Relaxed), 0);
        drop((w, w2));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Nothing but the segment is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_a_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"hello").unwrap();
        assert!(StatsSegment::open(&path).is_err());
    }

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        assert_eq!(StatsLayout::bucket(&BATCH_BUCKETS, 1), 0);
        assert_eq!(StatsLayout::bucket(&BATCH_BUCKETS, 3), 2);
        assert_eq!(StatsLayout::bucket(&BATCH_BUCKETS, 256), 8);
        assert_eq!(StatsLayout::bucket(&BATCH_BUCKETS, 999), 9);
    }
}
