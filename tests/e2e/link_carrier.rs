//! `nfvhost link down|up`: carrier off and on for one link of a running
//! chain, as Mininet's `link ... down` does.

use crate::support::{have_root, nfvhost, run_ok, Chain};

fn ping(chain: &Chain) -> bool {
    chain
        .exec(
            "h1",
            &["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.0.19.2"],
        )
        .status
        .success()
}

#[test]
fn link_down_cuts_the_carrier_and_up_restores_it() {
    if !have_root("link_down_cuts_the_carrier_and_up_restores_it") {
        return;
    }
    let chain = Chain::deploy("tests/chains/vlan-wire.yaml", "vlan-wire", "127.0.0.1:9481");
    assert!(ping(&chain));

    run_ok(nfvhost().args(["link", "down", "vlan-wire:w1:right"]));
    let h2 = chain.exec_ok("h2", &["ip", "link", "show", "dev", "eth0"]);
    assert!(h2.contains("NO-CARRIER"), "the far end loses carrier: {h2}");
    assert!(!ping(&chain), "nothing crosses a link that is down");
    // Visible in metrics: the port is down while its link is.
    let port_up = || {
        chain
            .metrics()
            .get("nfvhost_port_up", &[("vnf", "w1"), ("port", "right")])
    };
    assert!(
        crate::support::wait_for(std::time::Duration::from_secs(5), || port_up() == 0.0),
        "nfvhost_port_up stays {} on a link that is down",
        port_up()
    );

    run_ok(nfvhost().args(["link", "up", "vlan-wire:w1:right"]));
    assert!(
        crate::support::wait_for(std::time::Duration::from_secs(5), || ping(&chain)),
        "back after link up"
    );
    assert!(
        crate::support::wait_for(std::time::Duration::from_secs(5), || port_up() == 1.0),
        "nfvhost_port_up stays 0 after link up"
    );

    let out = nfvhost()
        .args(["link", "down", "vlan-wire:w1:nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("its ports are left, right"));
}

#[test]
fn link_set_changes_a_running_impair_without_restarting_it() {
    if !have_root("link_set_changes_a_running_impair_without_restarting_it") {
        return;
    }
    let chain = Chain::deploy(
        "tests/chains/impair-measure.yaml",
        "imp-measure",
        "127.0.0.1:9485",
    );
    let ping = || {
        chain.exec_ok(
            "h1",
            &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.0.29.2"],
        )
    };
    let before = crate::support::ping_rtt_ms(&ping())[1];
    assert!((10.0..15.0).contains(&before), "{before}");

    // h1 → h2 leaves imp by port b: that is the direction set here.
    run_ok(nfvhost().args(["link", "set", "imp-measure:imp:b", "--delay", "50ms"]));
    let after = crate::support::ping_rtt_ms(&ping())[1];
    assert!((50.0..55.0).contains(&after), "{after}");

    let bad = nfvhost()
        .args(["link", "set", "imp-measure:imp:b", "--loss", "300%"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("a_to_b.loss"));
    let m = chain.metrics();
    assert_eq!(m.get("nfvhost_vnf_restarts_total", &[("vnf", "imp")]), 0.0);
}
