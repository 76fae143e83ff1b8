//! One trial: a generator thread in the sending host's namespace and a
//! receiver thread in the receiving host's, each on an `AF_PACKET` socket
//! bound to the test interface (`sendmmsg`/`recvmmsg` in batches, the data
//! path's own wrappers).
//!
//! Rate control is a token bucket refilled from `CLOCK_MONOTONIC`: the
//! generator sends whenever at least a quantum of frames (50 µs worth, at
//! most one batch) is due, and sleeps in between, so it does not spin on a
//! CPU the chain needs. Each frame carries its sequence number and the
//! batch's transmit time; the receiver stamps frames when `recvmmsg`
//! returns, so latency includes the receiver's wake-up.

use std::net::UdpSocket;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::Pid;

use super::frame::{self, Addresses, TestHeader};
use super::tally::Tally;
use super::BenchError;
use crate::datapath::sys::packet;
use crate::engine::VnetHeader;
use crate::sys::NetNs;

/// Frames per `sendmmsg`/`recvmmsg`.
const BATCH: usize = 64;
/// Receive buffer slot: the largest test frame fits.
const SLOT: usize = 2048;

/// Where a trial's frames go in and out.
#[derive(Clone, Debug)]
pub struct Path {
    pub src_netns: String,
    pub src_iface: String,
    pub dst_netns: String,
    pub dst_iface: String,
    pub addrs: Addresses,
}

/// What one trial offers.
#[derive(Clone, Copy, Debug)]
pub struct Offer {
    /// RFC 2544 frame size, FCS included.
    pub size: usize,
    /// Frames per second; `None`: as fast as the generator can.
    pub rate_pps: Option<f64>,
    pub duration: Duration,
    /// Send exactly this many frames (a back-to-back burst), then stop.
    pub count: Option<u64>,
}

/// CPUs to pin the two threads to (`None`: not pinned).
#[derive(Clone, Copy, Debug, Default)]
pub struct Pinning {
    pub generator: Option<usize>,
    pub receiver: Option<usize>,
}

/// What the two threads measured.
#[derive(Debug)]
pub struct Measured {
    pub sent: u64,
    /// From the first to the last frame sent, in seconds.
    pub send_seconds: f64,
    pub tally: Tally,
    /// Frames the receiver's socket dropped for want of buffer space.
    pub receiver_drops: u64,
    pub generator_cpu_seconds: f64,
    pub receiver_cpu_seconds: f64,
}

/// `CLOCK_MONOTONIC` in nanoseconds.
pub fn now_ns() -> u64 {
    clock_ns(ClockId::CLOCK_MONOTONIC)
}

fn clock_ns(id: ClockId) -> u64 {
    clock_gettime(id)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut set = CpuSet::new();
        // Best effort: an unpinned thread still measures correctly.
        if set.set(cpu).is_ok() {
            let _ = sched_setaffinity(Pid::from_raw(0), &set);
        }
    }
}

fn open_socket(netns: &str, iface: &str) -> Result<OwnedFd, BenchError> {
    let fail = |what: String| BenchError::Socket {
        netns: netns.to_owned(),
        iface: iface.to_owned(),
        what,
    };
    let name = std::ffi::CString::new(iface).map_err(|e| fail(e.to_string()))?;
    let index = packet::if_index(&name).map_err(|e| fail(format!("interface index: {e}")))?;
    packet::open(index, false).map_err(|(step, e)| fail(format!("{step}: {e}")))
}

/// Runs one trial on `path`, with `stream` marking its frames.
pub fn run(path: &Path, offer: Offer, stream: u16, pins: Pinning) -> Result<Measured, BenchError> {
    let src = NetNs::open(&path.src_netns)?;
    let dst = NetNs::open(&path.dst_netns)?;
    let stop = Arc::new(AtomicBool::new(false));
    let last_rx = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let receiver = {
            let stop = stop.clone();
            let last_rx = last_rx.clone();
            let dst = &dst;
            s.spawn(move || -> Result<(Tally, u64, f64), BenchError> {
                dst.enter_current_thread()?;
                pin(pins.receiver);
                let fd = open_socket(&path.dst_netns, &path.dst_iface);
                // Bound so that the receiving host's kernel takes the
                // frames quietly instead of answering port unreachable.
                let sink = UdpSocket::bind(("0.0.0.0", frame::UDP_PORT)).ok();
                let fd = match fd {
                    Ok(fd) => {
                        let _ = ready_tx.send(Ok(()));
                        fd
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(()));
                        return Err(e);
                    }
                };
                let out = receive(&fd, stream, &stop, &last_rx);
                drop(sink);
                Ok(out)
            })
        };
        if ready_rx.recv() != Ok(Ok(())) {
            return match receiver.join() {
                Ok(Err(e)) => Err(e),
                _ => Err(BenchError::Thread("receiver")),
            };
        }
        let generator = {
            let src = &src;
            s.spawn(move || -> Result<(u64, f64, f64), BenchError> {
                src.enter_current_thread()?;
                pin(pins.generator);
                let fd = open_socket(&path.src_netns, &path.src_iface)?;
                generate(&fd, &path.addrs, offer, stream)
            })
        };
        let sent = generator
            .join()
            .map_err(|_| BenchError::Thread("generator"));
        // Let frames still queued in the chain arrive: until nothing came
        // for 100 ms (at least 200 ms, at most 2 s after the last send).
        let done = now_ns();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = now_ns();
            let quiet = now.saturating_sub(last_rx.load(Ordering::Relaxed)) > 100_000_000;
            if (quiet && now - done > 200_000_000) || now - done > 2_000_000_000 {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let received = receiver
            .join()
            .map_err(|_| BenchError::Thread("receiver"))?;
        let (sent, send_seconds, generator_cpu_seconds) = sent??;
        let (tally, receiver_drops, receiver_cpu_seconds) = received?;
        Ok(Measured {
            sent,
            send_seconds,
            tally,
            receiver_drops,
            generator_cpu_seconds,
            receiver_cpu_seconds,
        })
    })
}

/// The generator loop; returns frames sent, seconds sending and CPU seconds.
fn generate(
    fd: &OwnedFd,
    addrs: &Addresses,
    offer: Offer,
    stream: u16,
) -> Result<(u64, f64, f64), BenchError> {
    let cpu0 = clock_ns(ClockId::CLOCK_THREAD_CPUTIME_ID);
    let mut frames: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| frame::build(addrs, offer.size, stream))
        .collect();
    let quantum = offer.rate_pps.map_or(BATCH as u64, |r| {
        ((r * 50e-6) as u64).clamp(1, BATCH as u64)
    });
    let start = now_ns();
    let end = start + offer.duration.as_nanos() as u64;
    let mut sent: u64 = 0;
    let mut last = start;
    loop {
        let now = now_ns();
        let want = match offer.count {
            Some(c) => c.saturating_sub(sent),
            None if now >= end => 0,
            None => u64::MAX,
        };
        if want == 0 {
            break;
        }
        let mut n = want.min(BATCH as u64);
        if let Some(rate) = offer.rate_pps {
            let due = ((now - start) as f64 * rate / 1e9) as u64 + quantum;
            let allowed = due.saturating_sub(sent);
            if allowed < quantum.min(want) {
                let gap_ns = ((sent + quantum) as f64 / rate * 1e9) as u64 + start;
                let gap = gap_ns.saturating_sub(now).min(end.saturating_sub(now));
                if gap > 60_000 {
                    std::thread::sleep(Duration::from_nanos(gap - 50_000));
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            n = n.min(allowed);
        }
        let n = n as usize;
        for (i, f) in frames[..n].iter_mut().enumerate() {
            frame::stamp(f, (sent + i as u64) as u32, now);
        }
        let refs: Vec<&[u8]> = frames[..n].iter().map(Vec::as_slice).collect();
        let took = packet::send_batch(fd.as_fd(), false, &refs, &[]).map_err(BenchError::Send)?;
        sent += took as u64;
        last = now;
        if took < n {
            // The device queue is full: wait until it takes frames again.
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
            let _ = poll(&mut fds, PollTimeout::from(1u8));
        }
    }
    let cpu = clock_ns(ClockId::CLOCK_THREAD_CPUTIME_ID).saturating_sub(cpu0);
    let seconds = (last.max(start + 1) - start) as f64 / 1e9;
    Ok((sent, seconds, cpu as f64 / 1e9))
}

/// The receiver loop, until `stop` and the socket is drained.
fn receive(fd: &OwnedFd, stream: u16, stop: &AtomicBool, last_rx: &AtomicU64) -> (Tally, u64, f64) {
    let cpu0 = clock_ns(ClockId::CLOCK_THREAD_CPUTIME_ID);
    let _ = packet::take_drops(fd.as_fd());
    let mut tally = Tally::default();
    let mut storage = vec![[0u8; SLOT]; BATCH];
    let mut lens = [0usize; BATCH];
    let mut vnets = [VnetHeader::NONE; BATCH];
    let mut idle_since = now_ns();
    loop {
        let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
        let got = packet::recv_batch(fd.as_fd(), false, &mut bufs, &mut lens, &mut vnets)
            .map(|r| r.frames)
            .unwrap_or(0);
        let now = now_ns();
        for (buf, &len) in bufs.iter().zip(&lens).take(got) {
            if let Some(h) = TestHeader::parse(&buf[..len]) {
                if h.stream == stream {
                    tally.record(h.seq, h.tx_ns, now);
                }
            }
        }
        if got > 0 {
            idle_since = now;
            last_rx.store(now, Ordering::Relaxed);
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Spin briefly after traffic (latency), then sleep in poll (CPU).
        if now - idle_since > 20_000 {
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(5u8));
        }
    }
    let drops = packet::take_drops(fd.as_fd());
    let cpu = clock_ns(ClockId::CLOCK_THREAD_CPUTIME_ID).saturating_sub(cpu0);
    (tally, drops, cpu as f64 / 1e9)
}
