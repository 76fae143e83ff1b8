//! The host's side of the module boundary: a hostile module
//! (`wat/hostile.wat`) runs a script the fuzzer writes, calling every host
//! function with any arguments, writing any verdict, length or offset into
//! its descriptors, trapping, growing memory and steering `nfv_alloc`. The
//! host must never panic, and what it hands on must be within bounds:
//! verdicts for real ports, lengths within the slot, emits within limits,
//! counters with valid names in memory.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nfvhost::engine::{Batch, Engine, FrameIn, InstanceLimits, LoadedModule, VnfInstance};
use nfvhost_abi::{LogLevel, Verdict, MAX_COUNTERS, MAX_EMIT_LEN, MAX_EMIT_PER_CALL};

#[derive(Arbitrary, Debug)]
struct Input {
    port_count: u8,
    /// The init document: the init (and tick) script.
    init: Vec<u8>,
    /// Frames: in_port, declared length, bytes (the first is the script).
    frames: Vec<(u8, u16, Vec<u8>)>,
    calls: u8,
}

const SLOT: usize = 2048;

thread_local! {
    static MODULE: (Engine, LoadedModule) = {
        let engine = Engine::new(None).unwrap();
        let module = engine
            .load_bytes(std::path::Path::new("hostile.wat"), include_bytes!("../wat/hostile.wat"))
            .unwrap();
        (engine, module)
    };
}

fuzz_target!(|input: Input| {
    MODULE.with(|(engine, module)| run(engine, module, &input));
});

fn run(engine: &Engine, module: &LoadedModule, input: &Input) {
    let port_count = u16::from(input.port_count % 9);
    let limits = InstanceLimits {
        memory_bytes: 1 << 20,
        slot_size: SLOT,
        batch_size: 4,
        log_level: LogLevel::Error,
        ..InstanceLimits::default()
    };
    let Ok(mut inst) = VnfInstance::new(engine, module, "hostile", port_count, &input.init, limits)
    else {
        return;
    };
    check_metrics(&inst);
    let mut batch = Batch::new(inst.batch_size());
    for _ in 0..=(input.calls % 3) {
        batch.clear();
        for ((port, len, bytes), slot) in input.frames.iter().zip(inst.slots_mut()) {
            let n = bytes.len().min(slot.len());
            slot[..n].copy_from_slice(&bytes[..n]);
            batch.push(FrameIn::plain(u16::from(*port), usize::from(*len).max(n)));
        }
        if inst.process(&mut batch).is_ok() {
            check_batch(&batch, port_count);
            for (i, &(_, len)) in batch.verdicts().iter().enumerate() {
                assert!(inst.frame(i, len).len() <= SLOT);
            }
        }
        check_emits(&inst, port_count);
        if inst.tick().is_ok() {
            check_emits(&inst, port_count);
        }
        let mut values = Vec::new();
        inst.metric_values(&mut values);
        assert_eq!(values.len(), inst.metrics().len());
    }
}

fn check_batch(batch: &Batch, port_count: u16) {
    assert_eq!(batch.verdicts().len(), batch.len());
    let mut forwarded = 0;
    for &(verdict, len) in batch.verdicts() {
        assert!(len <= SLOT, "length {len} past the slot");
        if let Verdict::Forward(p) = verdict {
            assert!(p < port_count, "forward to missing port {p}");
            forwarded += 1;
        }
    }
    let listed: usize = (0..usize::from(port_count))
        .map(|p| batch.forwarded_to(p).len())
        .sum();
    assert_eq!(listed, forwarded);
    let dropped: u64 = batch.drops().iter().map(|(_, n)| n).sum();
    assert_eq!(
        forwarded as u64 + batch.consumed() + dropped,
        batch.len() as u64
    );
}

fn check_emits(inst: &VnfInstance, port_count: u16) {
    let mut n = 0;
    for (port, bytes) in inst.emitted() {
        assert!(port < port_count);
        assert!(bytes.len() <= MAX_EMIT_LEN);
        n += 1;
    }
    assert!(n <= MAX_EMIT_PER_CALL);
}

fn check_metrics(inst: &VnfInstance) {
    let metrics = inst.metrics();
    assert!(metrics.len() <= MAX_COUNTERS);
    for (i, m) in metrics.iter().enumerate() {
        assert!(
            m.name.starts_with(|c: char| c.is_ascii_lowercase()),
            "{}",
            m.name
        );
        assert!(metrics[..i].iter().all(|o| o.name != m.name));
    }
}
