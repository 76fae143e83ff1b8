//! Every shipped VNF, natively, fed arbitrary frames on either port: no
//! panic. The instances are built once and keep their state (ARP caches,
//! connections, bindings, leases) across inputs, as in a running chain.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nfvhost_fuzz::VNFS;

fuzz_target!(|data: &[u8]| {
    let Some((&port, frame)) = data.split_first() else {
        return;
    };
    let port = u16::from(port & 1);
    VNFS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let v = cell.get_or_insert_with(|| nfvhost_fuzz::vnfs(2048));
        let _ = v.router.process(port, frame);
        let _ = v.fw.process(port, frame);
        let _ = v.nat.process(port, frame);
        let _ = v.dhcp.process(port, frame);
        v.router.advance_ns(10_000_000);
    });
});
