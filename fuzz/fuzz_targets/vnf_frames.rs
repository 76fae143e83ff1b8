//! Every shipped VNF, natively, fed arbitrary frames on either port: no
//! panic. The instances are built once and keep their state (ARP caches,
//! connections, bindings, leases) across inputs, as in a running chain.
#![no_main]
use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use vnf_sdk::testing::Harness;

struct Vnfs {
    router: Harness<vnf_router::Router>,
    fw: Harness<vnf_firewall::Firewall>,
    nat: Harness<vnf_nat::Nat>,
    dhcp: Harness<vnf_dhcp::Dhcp>,
}

thread_local! {
    static VNFS: RefCell<Option<Vnfs>> = const { RefCell::new(None) };
}

fn build() -> Vnfs {
    let router = Harness::<vnf_router::Router>::new(
        &["lan", "wan"],
        serde_json::json!({ "interfaces": { "lan": "10.0.1.1/24", "wan": "10.0.2.1/24" } }),
    )
    .unwrap();
    let fw = Harness::<vnf_firewall::Firewall>::new(
        &["inside", "outside"],
        serde_json::json!({ "rules": [{ "in": "inside", "action": "accept" }] }),
    )
    .unwrap();
    let nat = Harness::<vnf_nat::Nat>::new(
        &["inside", "outside"],
        serde_json::json!({
            "inside": { "port": "inside", "address": "10.255.0.2/30" },
            "outside": { "port": "outside", "address": "203.0.113.1/24" },
            "routes": [{ "to": "192.168.1.0/24", "via": "10.255.0.1" }]
        }),
    )
    .unwrap();
    let dhcp = Harness::<vnf_dhcp::Dhcp>::new(
        &["lan", "up"],
        serde_json::json!({ "port": "lan", "address": "192.168.1.2/24", "pool": "192.168.1.100-192.168.1.110" }),
    )
    .unwrap();
    Vnfs { router, fw, nat, dhcp }
}

fuzz_target!(|data: &[u8]| {
    let Some((&port, frame)) = data.split_first() else { return };
    let port = u16::from(port & 1);
    VNFS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let v = cell.get_or_insert_with(build);
        let _ = v.router.process(port, frame);
        let _ = v.fw.process(port, frame);
        let _ = v.nat.process(port, frame);
        let _ = v.dhcp.process(port, frame);
        v.router.advance_ns(10_000_000);
    });
});
