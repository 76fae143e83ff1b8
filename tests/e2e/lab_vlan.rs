//! chains/lab-vlan.yaml, checked as the study checks it: hosts of one VLAN
//! reach each other across the trunk, hosts of different VLANs only through
//! the router, and the trunk carries 802.1Q tags.

use crate::capture::{send_frames, Capture};
use crate::support::{have_root, Chain};

const A10_MAC: &str = "02:00:00:10:00:01";
const A20_MAC: &str = "02:00:00:20:00:01";

fn ping(chain: &Chain, from: &str, to: &str) -> String {
    chain.exec_ok(from, &["ping", "-c", "3", "-i", "0.2", "-W", "2", to])
}

/// The VLAN ID of every frame, or `None` for an untagged one.
fn vids(frames: &[Vec<u8>]) -> Vec<Option<u16>> {
    frames
        .iter()
        .map(|f| (f[12..14] == [0x81, 0x00]).then(|| u16::from_be_bytes([f[14], f[15]]) & 0xfff))
        .collect()
}

#[test]
fn lab_vlan_same_vlan_across_the_trunk_other_vlan_through_the_router() {
    if !have_root("lab_vlan_same_vlan_across_the_trunk_other_vlan_through_the_router") {
        return;
    }
    let chain = Chain::deploy("chains/lab-vlan.yaml", "lab-vlan", "127.0.0.1:9482");

    // Same VLAN, across the trunk: one L2 segment, TTL untouched; the
    // trunk shows the frames tagged with their VLAN.
    let trunk10 = Capture::start(
        &chain,
        "sw1",
        "trunk",
        &format!("ether src {A10_MAC}"),
        2,
        10,
    );
    let out = ping(&chain, "a10", "10.0.10.2");
    assert!(
        out.contains("3 received") && out.contains("ttl=64"),
        "{out}"
    );
    let tagged = trunk10.frames();
    assert!(!tagged.is_empty(), "a10's frames crossed the trunk");
    assert!(
        vids(&tagged).iter().all(|v| *v == Some(10)),
        "{:?}",
        vids(&tagged)
    );

    let trunk20 = Capture::start(
        &chain,
        "sw1",
        "trunk",
        &format!("ether src {A20_MAC}"),
        2,
        10,
    );
    let out = ping(&chain, "a20", "10.0.20.2");
    assert!(
        out.contains("3 received") && out.contains("ttl=64"),
        "{out}"
    );
    assert!(vids(&trunk20.frames()).iter().all(|v| *v == Some(20)));

    // Other VLAN: only through the router, one hop (TTL 63).
    let out = ping(&chain, "a10", "10.0.20.2");
    assert!(
        out.contains("3 received") && out.contains("ttl=63"),
        "{out}"
    );
    let out = ping(&chain, "b20", "10.0.10.1");
    assert!(
        out.contains("3 received") && out.contains("ttl=63"),
        "{out}"
    );

    // A broadcast in VLAN 10 reaches b10 untagged and never b20.
    let filter = format!("ether src {A10_MAC} and ether proto 0x88b5");
    let in10 = Capture::start(&chain, "b10", "eth0", &filter, 1, 5);
    let in20 = Capture::start(&chain, "b20", "eth0", &filter, 1, 3);
    let mut hello = vec![0xff; 6];
    hello.extend_from_slice(&[0x02, 0, 0, 0x10, 0, 0x01, 0x88, 0xb5]);
    hello.extend_from_slice(&[0x42; 50]);
    send_frames(&chain, "a10", "eth0", std::slice::from_ref(&hello));
    assert_eq!(in10.frames(), vec![hello], "b10 gets the broadcast as sent");
    assert!(
        in20.frames().is_empty(),
        "VLAN 20 never sees VLAN 10's broadcast"
    );

    let m = chain.metrics();
    let sw1 = |name: &str| {
        m.get(
            "nfvhost_module_events_total",
            &[("vnf", "sw1"), ("name", name)],
        )
    };
    assert!(sw1("switch_learned") >= 4.0);
    assert!(sw1("switch_flooded") >= 1.0);
    assert!(sw1("switch_vlan_10_frames") > 0.0);
    assert!(sw1("switch_vlan_20_frames") > 0.0);
}
