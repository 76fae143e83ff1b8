//! chains/lab-qinq.yaml, checked as the study checks it: two customers with
//! the same C-VLAN and the same addresses cross one provider core in
//! different S-VLANs, each reaching only its own other site.

use crate::capture::{send_frames, Capture};
use crate::support::{have_root, Chain};

const A1_MAC: &str = "02:00:00:0a:00:01";
const B1_MAC: &str = "02:00:00:0b:00:01";

/// The (TPID, VID) of the first two tags of every frame.
fn tags(frames: &[Vec<u8>]) -> Vec<[(u16, u16); 2]> {
    let tag = |f: &[u8], at: usize| {
        (
            u16::from_be_bytes([f[at], f[at + 1]]),
            u16::from_be_bytes([f[at + 2], f[at + 3]]) & 0xfff,
        )
    };
    frames.iter().map(|f| [tag(f, 12), tag(f, 16)]).collect()
}

/// Pings 10.0.0.2 from `from` and returns the MAC its neighbour table then
/// has for it: the host that answered.
fn ping_and_neighbour(chain: &Chain, from: &str) -> String {
    let out = chain.exec_ok(
        from,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.0.2"],
    );
    assert!(out.contains("3 received"), "{from}: {out}");
    chain.exec_ok(from, &["ip", "neigh", "show", "10.0.0.2"])
}

#[test]
fn lab_qinq_customers_share_c_vlans_and_addresses_but_never_meet() {
    if !have_root("lab_qinq_customers_share_c_vlans_and_addresses_but_never_meet") {
        return;
    }
    let chain = Chain::deploy("chains/lab-qinq.yaml", "lab-qinq", "127.0.0.1:9483");

    let core_a = Capture::start(&chain, "pe1", "core", &format!("ether src {A1_MAC}"), 2, 10);
    let neigh = ping_and_neighbour(&chain, "a1");
    assert!(
        neigh.contains("02:00:00:0a:00:02"),
        "a1 reached a2: {neigh}"
    );
    let frames = core_a.frames();
    assert!(!frames.is_empty());
    assert!(
        tags(&frames)
            .iter()
            .all(|t| *t == [(0x88a8, 100), (0x8100, 10)]),
        "customer A crosses the core as S-VLAN 100 around C-VLAN 10: {:?}",
        tags(&frames)
    );

    let core_b = Capture::start(&chain, "pe1", "core", &format!("ether src {B1_MAC}"), 2, 10);
    let neigh = ping_and_neighbour(&chain, "b1");
    assert!(
        neigh.contains("02:00:00:0b:00:02"),
        "b1 reached b2: {neigh}"
    );
    assert!(tags(&core_b.frames())
        .iter()
        .all(|t| *t == [(0x88a8, 200), (0x8100, 10)]));

    // A broadcast from customer A reaches its other site and nobody of B.
    let filter = format!("ether src {A1_MAC} and ether proto 0x88b5");
    let at_a2 = Capture::start(&chain, "a2", "eth0", &filter, 1, 5);
    let at_b1 = Capture::start(&chain, "b1", "eth0", &filter, 1, 3);
    let at_b2 = Capture::start(&chain, "b2", "eth0", &filter, 1, 3);
    let mut hello = vec![0xff; 6];
    hello.extend_from_slice(&[0x02, 0, 0, 0x0a, 0, 0x01, 0x88, 0xb5]);
    hello.extend_from_slice(&[0x42; 50]);
    send_frames(&chain, "a1", "eth0", std::slice::from_ref(&hello));
    assert_eq!(at_a2.frames(), vec![hello], "a2 gets it as sent, untagged");
    assert!(at_b1.frames().is_empty() && at_b2.frames().is_empty());
}
