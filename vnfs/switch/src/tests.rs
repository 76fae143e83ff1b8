use serde_json::json;
use vnf_sdk::testing::Harness;
use vnf_sdk::wire::vlan::{TPID_8021AD, TPID_8021Q};

use super::*;

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const BCAST: [u8; 6] = [0xff; 6];

/// An Ethernet frame dst, src, tags (TPID, TCI), ARP EtherType and a
/// recognisable payload of 48 bytes.
fn frame(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0x5a; 48]);
    f
}

/// Where a frame went: the forwarded port (if forwarded) and emitted copies,
/// as (port, bytes), sorted by port.
fn outputs(out: &vnf_sdk::testing::Output) -> Vec<(u16, Vec<u8>)> {
    let mut all = out.emitted.clone();
    if let Verdict::Forward(p) = out.verdict {
        all.push((p, out.frame.clone()));
    }
    all.sort();
    all
}

fn vlan_switch() -> Harness<Switch> {
    Harness::<Switch>::new(
        &["a10", "a20", "trunk", "b10"],
        json!({ "ports": {
            "a10": { "mode": "access", "vlan": 10 },
            "a20": { "mode": "access", "vlan": 20 },
            "trunk": { "mode": "trunk", "allowed": [10, 20] },
            "b10": { "mode": "access", "vlan": 10 },
        }}),
    )
    .unwrap()
}

#[test]
fn floods_within_the_vlan_and_tags_on_the_trunk() {
    let mut h = vlan_switch();
    let f = frame(BCAST, A, &[]);
    let out = h.process(0, &f);
    assert_eq!(
        outputs(&out),
        vec![(2, frame(BCAST, A, &[(TPID_8021Q, 10)])), (3, f.clone())],
        "VLAN 10 only: the other access port and the trunk, tagged"
    );
    assert_eq!(
        out.verdict,
        Verdict::Forward(3),
        "the frame itself goes out once"
    );
    assert_eq!(h.counter("switch_flooded"), Some(1));
    assert_eq!(h.counter("switch_learned"), Some(1));
    assert_eq!(h.counter("switch_vlan_10_frames"), Some(1));
}

#[test]
fn learns_per_vlan_and_forwards_known_unicast() {
    let mut h = vlan_switch();
    // B answers from the trunk in VLAN 10: learned on (10, B) -> trunk.
    h.process(2, &frame(BCAST, B, &[(TPID_8021Q, 0x600a)]));
    let out = h.process(0, &frame(B, A, &[]));
    assert_eq!(out.verdict, Verdict::Forward(2));
    assert_eq!(out.frame, frame(B, A, &[(TPID_8021Q, 10)]));
    assert!(out.emitted.is_empty());
    // The same MAC in VLAN 20 is unknown there: flooded within VLAN 20.
    let out = h.process(1, &frame(B, A, &[]));
    assert_eq!(outputs(&out), vec![(2, frame(B, A, &[(TPID_8021Q, 20)]))]);
    // Back from the trunk, untagged out of the access port; PCP kept on trunks.
    let out = h.process(2, &frame(A, B, &[(TPID_8021Q, 0x600a)]));
    assert_eq!(out.verdict, Verdict::Forward(0));
    assert_eq!(out.frame, frame(A, B, &[]));
}

#[test]
fn drops_frames_of_vlans_a_port_does_not_carry() {
    let mut h = vlan_switch();
    let out = h.process(2, &frame(BCAST, A, &[(TPID_8021Q, 30)]));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Policy));
    let out = h.process(2, &frame(BCAST, A, &[]));
    assert_eq!(
        out.verdict,
        Verdict::Drop(DropReason::Policy),
        "no native VLAN"
    );
    let out = h.process(0, &frame(BCAST, A, &[(TPID_8021Q, 10)]));
    assert_eq!(
        out.verdict,
        Verdict::Drop(DropReason::Policy),
        "tagged on access"
    );
    assert_eq!(h.counter("switch_vlan_denied"), Some(3));
}

#[test]
fn native_vlan_crosses_the_trunk_untagged() {
    let mut h = Harness::<Switch>::new(
        &["a", "t"],
        json!({ "ports": {
            "a": { "mode": "access", "vlan": 5 },
            "t": { "mode": "trunk", "allowed": ["1-4"], "native": 5 },
        }}),
    )
    .unwrap();
    let f = frame(BCAST, A, &[]);
    assert_eq!(outputs(&h.process(0, &f)), vec![(1, f.clone())]);
    assert_eq!(outputs(&h.process(1, &f)), vec![(0, f.clone())]);
    let tagged = frame(BCAST, B, &[(TPID_8021Q, 3)]);
    assert_eq!(
        h.process(1, &tagged).verdict,
        Verdict::Drop(DropReason::NotForUs),
        "VLAN 3 has no other port"
    );
}

#[test]
fn qinq_pushes_and_pops_the_s_tag_and_keeps_c_tags() {
    let mut h = Harness::<Switch>::new(
        &["cust1", "cust2", "provider"],
        json!({ "ports": {
            "cust1": { "mode": "qinq", "svlan": 100 },
            "cust2": { "mode": "qinq", "svlan": 200 },
            "provider": { "mode": "trunk", "tpid": "802.1ad", "allowed": [100, 200] },
        }}),
    )
    .unwrap();
    let c = frame(BCAST, A, &[(TPID_8021Q, 10)]);
    let out = h.process(0, &c);
    assert_eq!(
        outputs(&out),
        vec![(2, frame(BCAST, A, &[(TPID_8021AD, 100), (TPID_8021Q, 10)]))],
        "S-tag 100 pushed, C-tag 10 untouched, nothing to the other customer"
    );
    let back = frame(BCAST, B, &[(TPID_8021AD, 200), (TPID_8021Q, 10)]);
    let out = h.process(2, &back);
    assert_eq!(
        outputs(&out),
        vec![(1, frame(BCAST, B, &[(TPID_8021Q, 10)]))]
    );
    // A C-tagged 802.1Q frame on the provider trunk is not an S-tag: no native.
    let out = h.process(2, &frame(BCAST, B, &[(TPID_8021Q, 100)]));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Policy));
}

#[test]
fn moves_age_and_a_full_table_floods() {
    let mut h = Harness::<Switch>::new(
        &["p0", "p1", "p2"],
        json!({ "mac_table_size": 1, "aging_time": 10 }),
    )
    .unwrap();
    h.process(0, &frame(BCAST, A, &[]));
    h.process(1, &frame(BCAST, A, &[]));
    assert_eq!(h.counter("switch_moved"), Some(1));
    assert_eq!(h.process(2, &frame(A, B, &[])).verdict, Verdict::Forward(1));
    assert_eq!(h.counter("switch_table_full"), Some(1), "B did not fit");
    // B is unknown, so frames to it flood.
    let out = h.process(0, &frame(B, A, &[]));
    assert_eq!(outputs(&out).len(), 2);
    assert_eq!(h.counter("switch_flooded"), Some(3));
    // After the aging time A is forgotten.
    h.advance_ns(11_000_000_000);
    h.tick();
    assert_eq!(h.counter("switch_aged"), Some(1));
    assert_eq!(h.counter("switch_mac_entries"), Some(0));
    assert_eq!(outputs(&h.process(2, &frame(A, B, &[]))).len(), 2);
}

#[test]
fn frames_back_to_their_own_port_are_filtered() {
    let mut h = vlan_switch();
    h.process(0, &frame(BCAST, A, &[]));
    let out = h.process(0, &frame(A, B, &[]));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::NotForUs));
}

#[test]
fn config_errors_name_the_key() {
    let err = |config| {
        Harness::<Switch>::new(&["a", "b"], config)
            .err()
            .expect("refused")
    };
    let e = err(json!({ "ports": { "c": { "mode": "access" } } }));
    assert_eq!(e.path, "ports.c");
    let e = err(json!({ "ports": { "a": { "mode": "access", "vlan": 4095 } } }));
    assert_eq!(e.path, "ports.a.vlan");
    let e = err(json!({ "ports": { "a": { "mode": "trunk", "allowed": ["20-10"] } } }));
    assert_eq!(e.path, "ports.a.allowed.0");
    let e = err(json!({ "ports": { "a": { "mode": "access", "svlan": 3 } } }));
    assert_eq!(e.path, "ports.a.svlan");
    let e = err(json!({ "ports": { "a": { "mode": "qinq" } } }));
    assert_eq!(e.path, "ports.a.svlan");
    let e = err(json!({ "ports": { "a": { "mode": "hub" } } }));
    assert_eq!(e.path, "ports.a.mode");
    let e = err(json!({ "ports": { "a": { "mode": "trunk", "tpid": "0x9100" } } }));
    assert_eq!(e.path, "ports.a.tpid");
    let e = err(json!({ "mac_table_size": 0 }));
    assert_eq!(e.path, "mac_table_size");
    assert!(Harness::<Switch>::new(&["a"], json!({})).is_err());
}
