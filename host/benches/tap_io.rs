//! A TAP port's own cost per frame, one `read`/`write` per frame against a
//! batch per `io_uring_enter`, in one run (`cargo bench -p nfvhost --bench
//! tap_io`, as root; anyone else gets a notice). A plain main that prints a
//! table.
//!
//! In a namespace of its own: a TAP device `tap0` (10.9.0.1/24, queue of
//! 4096 frames) and a fixed neighbour 10.9.0.2 behind it.
//! - send: the port writes batches of 64-byte UDP frames addressed to a MAC
//!   that is not the device's (the kernel drops them at once), for a fixed
//!   time: frames per second of the worker's thread.
//! - receive: a UDP socket in the namespace fills the device's queue with
//!   datagrams to 10.9.0.2 (untimed); the port drains it in batches
//!   (timed, the thread's CPU time): frames per second of CPU.
//!
//! With and without virtio-net headers, for batch sizes 1, 8, 64, 256.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use nfvhost::datapath::port::tap::{TapIo, TapPort};
use nfvhost::datapath::port::Port;
use nfvhost::engine::VnetHeader;
use nfvhost::sys::link;
use nfvhost::sys::testing::{have_root, NetNsGuard};

const QUEUE: usize = 4096;

fn frame() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 9, 0, 2]);
    f[30..34].copy_from_slice(&[10, 9, 0, 1]);
    f
}

fn thread_cpu() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// Frames per second of wall time, sending `batch` at a time.
fn send_rate(port: &mut TapPort, batch: usize, time: Duration) -> f64 {
    let f = frame();
    let frames: Vec<&[u8]> = vec![&f[..]; batch];
    let headers = vec![VnetHeader::NONE; batch];
    let (start, mut sent) = (Instant::now(), 0usize);
    while start.elapsed() < time {
        for _ in 0..16 {
            sent += port.send_batch(&frames, &headers).unwrap();
        }
    }
    sent as f64 / start.elapsed().as_secs_f64()
}

/// Frames per second of the thread's CPU time, draining a full queue
/// `batch` at a time; `rounds` fills.
fn recv_rate(port: &mut TapPort, filler: &UdpSocket, batch: usize, rounds: usize) -> f64 {
    let mut storage = vec![vec![0u8; 2048]; batch];
    let mut lens = vec![0usize; batch];
    let mut vnets = vec![VnetHeader::NONE; batch];
    let (mut cpu, mut got) = (Duration::ZERO, 0usize);
    for _ in 0..rounds {
        for _ in 0..QUEUE {
            let _ = filler.send_to(&[0u8; 18], "10.9.0.2:9");
        }
        let t = thread_cpu();
        loop {
            let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
            let n = port
                .recv_batch(&mut bufs, &mut lens, &mut vnets)
                .unwrap()
                .frames;
            if n == 0 {
                break;
            }
            got += n;
        }
        cpu += thread_cpu() - t;
    }
    got as f64 / cpu.as_secs_f64()
}

/// Nanoseconds of CPU per receive call on an empty queue (a port polled
/// while another one woke the worker).
fn empty_poll_ns(port: &mut TapPort, batch: usize) -> f64 {
    let mut storage = vec![vec![0u8; 2048]; batch];
    let mut lens = vec![0usize; batch];
    let mut vnets = vec![VnetHeader::NONE; batch];
    let calls = 20_000;
    let t = thread_cpu();
    for _ in 0..calls {
        let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
        let got = port.recv_batch(&mut bufs, &mut lens, &mut vnets).unwrap();
        assert_eq!(got.frames, 0);
    }
    (thread_cpu() - t).as_nanos() as f64 / calls as f64
}

fn main() {
    if !have_root("tap_io bench") {
        return;
    }
    let short = std::env::args().any(|a| a == "--short");
    let ns = NetNsGuard::new("nfvt-").expect("a namespace");
    link::create_tap(&ns, "tap0", None, false).unwrap();
    link::add_address(&ns, "tap0", Ipv4Addr::new(10, 9, 0, 1), 24).unwrap();
    let ip = |args: &[&str]| {
        let ok = std::process::Command::new("ip")
            .args(["-n", ns.name()])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip {args:?}");
    };
    ip(&[
        "neigh",
        "replace",
        "10.9.0.2",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        "tap0",
    ]);
    ip(&["link", "set", "tap0", "txqueuelen", &QUEUE.to_string()]);
    let filler = ns.run(|| UdpSocket::bind("10.9.0.1:0")).unwrap().unwrap();
    let time = Duration::from_millis(if short { 200 } else { 1000 });
    let rounds = if short { 5 } else { 40 };
    println!("TAP port, frames per second (send: wall time; receive: CPU time)");
    println!(
        "{:5} {:>5} {:>11} {:>11} {:>5} {:>11} {:>11} {:>5} {:>13}",
        "vnet",
        "batch",
        "send r/w",
        "send uring",
        "x",
        "recv r/w",
        "recv uring",
        "x",
        "empty ns r/u"
    );
    for vnet in [false, true] {
        for batch in [1, 8, 64, 256] {
            let mut rates = [[0.0; 2]; 3];
            for (m, io) in [TapIo::PerFrame, TapIo::Uring].into_iter().enumerate() {
                let fd = link::open_tap(&ns, "tap0", vnet).unwrap();
                let mut port = TapPort::new("t", fd, vnet, io, 256).unwrap();
                assert_eq!(port.io(), io, "{:?}", port.take_fallback());
                rates[0][m] = send_rate(&mut port, batch, time);
                rates[1][m] = recv_rate(&mut port, &filler, batch, rounds);
                rates[2][m] = empty_poll_ns(&mut port, batch);
            }
            println!(
                "{:5} {:>5} {:>11.0} {:>11.0} {:>5.2} {:>11.0} {:>11.0} {:>5.2} {:>6.0}/{:<6.0}",
                vnet,
                batch,
                rates[0][0],
                rates[0][1],
                rates[0][1] / rates[0][0],
                rates[1][0],
                rates[1][1],
                rates[1][1] / rates[1][0],
                rates[2][0],
                rates[2][1]
            );
        }
    }
}
