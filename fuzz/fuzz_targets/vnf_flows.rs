//! Every shipped VNF, natively, fed a sequence of steps that `arbitrary`
//! derives from the input: frames built with valid checksums (so they reach
//! conntrack, NAT bindings, the DHCP server and ARP), offload flags and GSO
//! sizes, frames up to 64 KiB on either port, clock advances and timer ticks.
//! State is kept across inputs, as in a running chain. No panic allowed.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nfvhost_fuzz::{FrameSpec, VNFS};

#[derive(Arbitrary, Debug)]
enum Step {
    Frame(FrameSpec),
    /// Milliseconds, scaled up to hours so leases and connections expire.
    Advance(u16),
    Tick,
}

fuzz_target!(|steps: Vec<Step>| {
    VNFS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let v = cell.get_or_insert_with(|| nfvhost_fuzz::vnfs(65_536 + 256));
        for step in steps.iter().take(32) {
            match step {
                Step::Frame(spec) => {
                    let frame = spec.build();
                    let port = u16::from(spec.port);
                    let (flags, gso) = spec.offload.unwrap_or((0, 0));
                    let gso = u32::from(gso);
                    v.router.process_with_offload(port, &frame, flags, gso);
                    v.fw.process_with_offload(port, &frame, flags, gso);
                    v.nat.process_with_offload(port, &frame, flags, gso);
                    v.dhcp.process_with_offload(port, &frame, flags, gso);
                }
                // The clock is shared by the four harnesses.
                Step::Advance(ms) => v.router.advance_ns(u64::from(*ms) * 1_000_000 * 64),
                Step::Tick => {
                    v.router.tick();
                    v.fw.tick();
                    v.nat.tick();
                    v.dhcp.tick();
                }
            }
        }
    });
});
