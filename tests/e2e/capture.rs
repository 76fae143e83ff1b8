//! Real frames in and out of test hosts: crafted frames sent from a raw
//! `AF_PACKET` socket (python3), and tcpdump captures read back as bytes.

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::Chain;

/// A tcpdump running in a node, writing a pcap file; stops after `count`
/// frames or `secs` seconds.
pub struct Capture {
    child: Child,
    path: std::path::PathBuf,
}

impl Capture {
    /// Starts tcpdump on `ifname` in `node` with the pcap `filter`, and
    /// waits until it is listening.
    pub fn start(
        chain: &Chain,
        node: &str,
        ifname: &str,
        filter: &str,
        count: usize,
        secs: u32,
    ) -> Capture {
        let path = std::env::temp_dir().join(format!(
            "nfvhost-{}-{node}-{ifname}-{}.pcap",
            chain.name,
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let (count, secs) = (count.to_string(), secs.to_string());
        let file = path.to_str().unwrap();
        let mut args = vec![
            "timeout", &secs, "tcpdump", "-i", ifname, "-U", "-c", &count, "-w", file,
        ];
        args.extend(filter.split_whitespace());
        let child = chain
            .command(node, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tcpdump");
        // tcpdump creates the file once it is capturing.
        assert!(
            crate::support::wait_for(Duration::from_secs(5), || path.exists()),
            "tcpdump in {node} never started"
        );
        std::thread::sleep(Duration::from_millis(200));
        Capture { child, path }
    }

    /// Waits for tcpdump to stop and returns the frames it captured.
    pub fn frames(self) -> Vec<Vec<u8>> {
        self.timed_frames().into_iter().map(|(_, f)| f).collect()
    }

    /// Like [`Capture::frames`], with each frame's capture time in ns.
    pub fn timed_frames(mut self) -> Vec<(u64, Vec<u8>)> {
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.path).expect("reading the capture");
        let _ = std::fs::remove_file(&self.path);
        parse_pcap(&bytes)
    }
}

/// The frames of a little-endian, microsecond pcap file with Ethernet
/// link type, as tcpdump writes it on this machine, with their times.
pub fn parse_pcap(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    assert!(bytes.len() >= 24, "a pcap file has a 24-byte header");
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(
        u32::from_le_bytes(bytes[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let t = u64::from(u32_at(at)) * 1_000_000_000 + u64::from(u32_at(at + 4)) * 1000;
        let caplen = u32_at(at + 8) as usize;
        at += 16;
        let end = (at + caplen).min(bytes.len());
        frames.push((t, bytes[at..end].to_vec()));
        at = end;
    }
    frames
}

/// Sends raw Ethernet frames out of `ifname` in `node` from a packet socket.
pub fn send_frames(chain: &Chain, node: &str, ifname: &str, frames: &[Vec<u8>]) {
    let hex: Vec<String> = frames
        .iter()
        .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(('{ifname}', 0))\n\
         for h in {hex:?}:\n    s.send(bytes.fromhex(h))\n"
    );
    chain.exec_ok(node, &["python3", "-c", &script]);
}
