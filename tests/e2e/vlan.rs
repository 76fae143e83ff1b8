//! VLAN tags survive the data path: the kernel takes the outer tag out of
//! every frame it receives, and the worker must put it back before the
//! module sees the frame, so tagged frames cross a VNF unchanged.

use crate::capture::{send_frames, Capture};
use crate::support::{have_root, Chain};

const SRC: [u8; 6] = [0x02, 0, 0, 0, 0xaa, 0x01];

/// A frame from SRC to broadcast with `tags` (TPID, TCI) in order, a local
/// experimental EtherType and a payload that names it.
fn frame(tags: &[(u16, u16)], name: &str) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&SRC);
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&0x88b5u16.to_be_bytes());
    f.extend_from_slice(name.as_bytes());
    f.resize(f.len().max(64), 0);
    f
}

#[test]
fn tagged_frames_cross_a_vnf_byte_for_byte() {
    if !have_root("tagged_frames_cross_a_vnf_byte_for_byte") {
        return;
    }
    let chain = Chain::deploy("tests/chains/vlan-wire.yaml", "vlan-wire", "127.0.0.1:9481");
    let sent = vec![
        frame(&[(0x8100, 0x600a)], "dot1q vid 10 pcp 3"),
        frame(&[(0x88a8, 0x0064)], "dot1ad vid 100"),
        frame(&[(0x88a8, 0x0064), (0x8100, 0x000a)], "qinq 100/10"),
        frame(&[(0x8100, 0x0000)], "priority tag"),
        frame(&[], "untagged"),
    ];
    let filter = "ether src 02:00:00:00:aa:01";
    let h1 = Capture::start(&chain, "h1", "eth0", filter, sent.len(), 10);
    let h2 = Capture::start(&chain, "h2", "eth0", filter, sent.len(), 10);
    send_frames(&chain, "h1", "eth0", &sent);
    let left = h1.frames();
    let right = h2.frames();
    assert_eq!(left, sent, "tcpdump on h1 sees the frames as crafted");
    assert_eq!(
        right, sent,
        "tcpdump on h2 sees the same bytes, tags included"
    );
    let m = chain.metrics();
    assert!(
        m.get(
            "nfvhost_vnf_packets_total",
            &[("vnf", "w1"), ("verdict", "forward")]
        ) >= sent.len() as f64,
        "the module forwarded them"
    );
}
