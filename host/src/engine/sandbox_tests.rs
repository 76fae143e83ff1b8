//! The wasm sandbox's bounds, tried with small hand-written modules: one
//! memory, one bounded table, memory growth capped, and no host-only drop
//! reason accepted from a module.

use std::path::Path;

use nfvhost_abi::{DropReason, Verdict};

use super::{Batch, Engine, FrameIn, InstanceError, InstanceLimits, LoadError, VnfInstance};

/// A complete module around `body`: a bump allocator over one memory, and
/// `process`/`tick` bodies supplied by the test.
fn module_wat(extra: &str, process: &str, tick: &str) -> String {
    format!(
        r#"(module
            (memory (export "memory") 4)
            (global $next (mut i32) (i32.const 1024))
            (func (export "nfv_abi_version") (result i32) i32.const {abi})
            (func (export "nfv_alloc") (param $len i32) (result i32)
                (local $p i32)
                global.get $next
                local.set $p
                global.get $next
                local.get $len
                i32.add
                global.set $next
                local.get $p)
            (func (export "nfv_init") (param i32 i32) (result i32) i32.const 0)
            (func (export "nfv_process") (param $descs i32) (param $n i32) (result i32)
                {process}
                i32.const 0)
            (func (export "nfv_tick") (param i64) {tick})
            {extra}
        )"#,
        abi = nfvhost_abi::ABI_VERSION
    )
}

fn engine() -> Engine {
    // The worker's engine; the ticker is only needed for deadlines.
    let engine = Engine::for_worker(None).unwrap();
    engine.start_ticker().unwrap();
    engine
}

fn instance(
    engine: &Engine,
    wat: &str,
    limits: InstanceLimits,
) -> Result<VnfInstance, InstanceError> {
    let module = engine
        .load_bytes(Path::new("test.wat"), wat.as_bytes())
        .expect("the module compiles");
    VnfInstance::new(engine, &module, "t", 2, b"{}", limits)
}

#[test]
fn a_second_memory_is_refused_at_compile_time() {
    let wat = module_wat("(memory 1)", "", "");
    let err = engine()
        .load_bytes(Path::new("two.wat"), wat.as_bytes())
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::Compile { .. }), "{err}");
}

#[test]
fn a_table_past_the_element_cap_is_refused() {
    let e = engine();
    let small = module_wat("(table 16 funcref)", "", "");
    assert!(instance(&e, &small, InstanceLimits::default()).is_ok());
    let huge = module_wat(
        &format!("(table {} funcref)", super::MAX_TABLE_ELEMENTS + 1),
        "",
        "",
    );
    let err = instance(&e, &huge, InstanceLimits::default())
        .err()
        .expect("refused");
    assert!(matches!(err, InstanceError::Instantiate(_)), "{err}");
}

#[test]
fn table_and_memory_growth_stop_at_their_limits() {
    // The tick traps (unreachable) if a growth past the limit succeeded.
    let tick = format!(
        r#"
        (if (i32.ne (table.grow $t (ref.null func) (i32.const {grow})) (i32.const -1))
            (then unreachable))
        (if (i32.ne (memory.grow (i32.const 64)) (i32.const -1))
            (then unreachable))
        "#,
        grow = super::MAX_TABLE_ELEMENTS
    );
    let wat = module_wat("(table $t 16 funcref)", "", &tick);
    let limits = InstanceLimits {
        memory_bytes: 1 << 20,
        ..Default::default()
    };
    let mut vnf = instance(&engine(), &wat, limits).unwrap();
    assert_eq!(vnf.tick(), Ok(()));
    let (used, limit) = vnf.memory_usage();
    assert!(used <= limit, "{used} > {limit}");
}

#[test]
fn a_host_only_drop_reason_from_a_module_is_a_bad_verdict() {
    // Frame 0's verdict (offset 16 in its descriptor): drop as `trap`.
    let process = format!(
        "(i32.store offset=16 (local.get $descs) (i32.const {}))",
        Verdict::Drop(DropReason::Trap).encode()
    );
    let wat = module_wat("", &process, "");
    let mut vnf = instance(&engine(), &wat, InstanceLimits::default()).unwrap();
    let mut batch = Batch::new(4);
    batch.push(FrameIn::plain(0, 60));
    vnf.process(&mut batch).unwrap();
    assert_eq!(
        batch.verdicts(),
        &[(Verdict::Drop(DropReason::BadVerdict), 60)]
    );
}
