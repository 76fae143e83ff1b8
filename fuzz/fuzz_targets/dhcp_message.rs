//! DHCP messages from clients are hostile input: parsing must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vnf_dhcp::message::{DhcpPacket, Request};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = DhcpPacket::new_checked(data) {
        for option in p.options() {
            let _ = option;
        }
    }
    let _ = Request::parse(data);
});
