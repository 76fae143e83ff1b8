//! One VNF instance: a `Store`, its module instance, and the batch region in
//! its linear memory, plus the host functions every instance imports.
//!
//! Frames are received straight into fixed-size slots in the module's
//! memory ([`VnfInstance::slots_mut`]); one call to `nfv_process` handles the
//! whole [`Batch`]; verdicts and new lengths are read back from the
//! descriptors into it.

use nfvhost_abi::{
    FrameDesc, LogLevel, MetricKind, Verdict, ABI_VERSION, FRAME_DESC_SIZE, IMPORT_MODULE,
    MAX_BATCH, MAX_COUNTERS, MAX_EMIT_LEN, MAX_EMIT_PER_CALL, STATUS_BAD_ARGUMENT,
    STATUS_BAD_CONFIG, STATUS_NO_STATE, STATUS_NO_SUCH_PORT, STATUS_OK, STATUS_QUEUE_FULL,
    STATUS_STATE_REFUSED, STATUS_TOO_LARGE, STATUS_WRONG_PHASE,
};
use std::ops::Range;
use std::time::{Duration, Instant};
use wasmtime::{Caller, Linker, Memory, Store, StoreLimits, StoreLimitsBuilder, Trap, TypedFunc};

use super::batch::Batch;
use super::clock::{Clock, ClockMode};
use super::{abi_check::AbiError, Engine, LoadedModule};

/// Most elements of the module's one table (its indirect-call targets; a
/// Rust VNF has a few hundred). Declaring or growing past it fails.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 16;

/// Bounds on one instance.
#[derive(Clone, Debug)]
pub struct InstanceLimits {
    /// Most bytes of linear memory.
    pub memory_bytes: usize,
    /// Epoch ticks ([`super::EPOCH_TICK`]) a single call may run.
    pub call_deadline_ticks: u64,
    /// Bytes per frame slot (the largest frame received).
    pub slot_size: usize,
    /// Frames per batch (at most [`MAX_BATCH`]).
    pub batch_size: usize,
    /// Most verbose module log level written (e.g. `Warn` while validating).
    pub log_level: LogLevel,
    /// Where the module's time comes from.
    pub clock: ClockMode,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        InstanceLimits {
            memory_bytes: 64 << 20,
            call_deadline_ticks: 20,
            slot_size: 2048,
            batch_size: 64,
            log_level: LogLevel::Trace,
            clock: ClockMode::Real,
        }
    }
}

/// Errors creating an instance.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("couldn't instantiate module: {0:#}")]
    Instantiate(wasmtime::Error),
    #[error(transparent)]
    Abi(#[from] AbiError),
    #[error("the module has no room for its {0}-byte batch region (nfv_alloc returned 0); raise its wasm memory limit")]
    NoRoom(usize),
    #[error("config{}: {message}", if path.is_empty() { String::new() } else { format!(" key `{path}`") })]
    Config { path: String, message: String },
    #[error("nfv_init returned status {0}")]
    InitStatus(i32),
    #[error("nfv_init failed: {0}")]
    InitCall(CallFailure),
}

/// Why a module's state could not be carried to its replacement.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("nfv_state_save failed: {0}")]
    SaveCall(CallFailure),
    #[error("nfv_state_save returned status {0}")]
    SaveStatus(i32),
    #[error("nfv_state_save named {len} bytes at {ptr}, outside the module's memory")]
    OutsideMemory { ptr: u32, len: u32 },
    #[error("the saved state is {0} bytes; at most {max} MiB are carried", max = nfvhost_abi::MAX_STATE_LEN >> 20)]
    TooLarge(usize),
    #[error("the new module has no room for the {0}-byte state (nfv_alloc returned 0); raise its wasm memory limit")]
    NoRoom(usize),
    #[error("the new module does not export nfv_state_save and nfv_state_load, so it cannot take the running module's state")]
    NotSupported,
    #[error("nfv_state_load failed: {0}")]
    LoadCall(CallFailure),
    #[error("the new module refused the saved state (format version {version}): {message}")]
    Refused { version: u32, message: String },
    #[error("nfv_state_load returned status {0}")]
    LoadStatus(i32),
}

/// Why a call into the module failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    /// The call ran past its epoch deadline and was interrupted.
    #[error("call exceeded its time budget")]
    Timeout,
    /// The module trapped; `kind` is a short stable label for metrics.
    #[error("module trapped ({kind}): {message}")]
    Trap { kind: &'static str, message: String },
    /// The module returned a failure status.
    #[error("module returned status {0}")]
    Status(i32),
}

impl CallFailure {
    fn from_error(e: wasmtime::Error) -> Self {
        let kind = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => return CallFailure::Timeout,
            Some(Trap::UnreachableCodeReached) => "unreachable",
            Some(Trap::MemoryOutOfBounds) => "memory_out_of_bounds",
            Some(Trap::StackOverflow) => "stack_overflow",
            Some(Trap::IntegerDivisionByZero) => "division_by_zero",
            Some(Trap::IntegerOverflow) => "integer_overflow",
            Some(Trap::IndirectCallToNull) | Some(Trap::BadSignature) => "bad_call",
            Some(_) => "other",
            None => "host",
        };
        CallFailure::Trap {
            kind,
            message: format!("{e:#}"),
        }
    }

    /// Label for the `kind` of a trap metric.
    pub fn label(&self) -> &'static str {
        match self {
            CallFailure::Timeout => "timeout",
            CallFailure::Trap { kind, .. } => kind,
            CallFailure::Status(_) => "status",
        }
    }
}

/// A metric the module declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricDef {
    pub kind: MetricKind,
    pub name: String,
    pub help: String,
    cell: u32,
}

/// A frame the module emitted during the last call.
#[derive(Clone, Debug)]
pub struct EmittedFrame {
    pub port: u16,
    range: Range<usize>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Init,
    Run,
}

/// Per-store host state, reachable from the host functions.
pub(super) struct HostState {
    limits: StoreLimits,
    log_level: LogLevel,
    /// The module's log: rate-limited, cut and escaped.
    log: crate::logging::ModuleLog,
    port_count: u16,
    phase: Phase,
    clock: Clock,
    /// Bytes of the frames emitted during the current call, back to back.
    emit_arena: Vec<u8>,
    emits: Vec<EmittedFrame>,
    metrics: Vec<MetricDef>,
    config_error: Option<(String, String)>,
    /// The module's one-shot timer, in nanoseconds of `now_ns`.
    timer_ns: Option<u64>,
}

/// A running module instance.
pub struct VnfInstance {
    store: Store<HostState>,
    memory: Memory,
    process: TypedFunc<(i32, i32), i32>,
    tick: TypedFunc<i64, ()>,
    alloc: TypedFunc<i32, i32>,
    /// `nfv_state_save` and `nfv_state_load`, when the module has both.
    state: Option<StateFuncs>,
    /// `nfv_timer`, if the module exports it.
    timer: Option<TypedFunc<i64, ()>>,
    /// `nfv_reconfigure`, if the module exports it.
    reconfigure: Option<TypedFunc<(i32, i32), i32>>,
    desc_base: usize,
    slot_base: usize,
    limits: InstanceLimits,
    port_count: u16,
}

struct StateFuncs {
    save: TypedFunc<i32, i32>,
    load: TypedFunc<(i32, i32, i32), i32>,
}

fn read_bytes(data: &[u8], ptr: i32, len: i32) -> Option<&[u8]> {
    let start = usize::try_from(ptr).ok()?;
    let len = usize::try_from(len).ok()?;
    data.get(start..start.checked_add(len)?)
}

fn read_str(data: &[u8], ptr: i32, len: i32) -> Option<&str> {
    let start = usize::try_from(ptr).ok()?;
    let len = usize::try_from(len).ok()?;
    std::str::from_utf8(data.get(start..start.checked_add(len)?)?).ok()
}

/// The host functions every instance imports. Built once per [`Engine`]
/// and shared: modules are pre-linked against it at load time.
pub(super) fn build_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    let memory_of = |caller: &mut Caller<'_, HostState>| {
        caller.get_export("memory").and_then(|e| e.into_memory())
    };

    linker.func_wrap(
        IMPORT_MODULE,
        nfvhost_abi::IMPORT_LOG,
        move |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let Some(memory) = memory_of(&mut caller) else {
                return;
            };
            let (data, state) = memory.data_and_store_mut(&mut caller);
            let level = u8::try_from(level)
                .ok()
                .and_then(LogLevel::from_u8)
                .unwrap_or(LogLevel::Info);
            if level > state.log_level {
                return;
            }
            let msg = read_bytes(data, ptr, len).unwrap_or(b"<log message outside memory>");
            state.log.log(level, msg);
        },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        nfvhost_abi::IMPORT_NOW_NS,
        |caller: Caller<'_, HostState>| -> i64 { caller.data().clock.now_ns() },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        nfvhost_abi::IMPORT_TIMER_AT,
        |mut caller: Caller<'_, HostState>, at_ns: i64| {
            caller.data_mut().timer_ns = u64::try_from(at_ns).ok();
        },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        nfvhost_abi::IMPORT_EMIT,
        move |mut caller: Caller<'_, HostState>, port: i32, ptr: i32, len: i32| -> i32 {
            let Some(memory) = memory_of(&mut caller) else {
                return STATUS_BAD_ARGUMENT;
            };
            let (data, state) = memory.data_and_store_mut(&mut caller);
            let Ok(port) = u16::try_from(port) else {
                return STATUS_NO_SUCH_PORT;
            };
            if port >= state.port_count {
                return STATUS_NO_SUCH_PORT;
            }
            let Ok(len) = usize::try_from(len) else {
                return STATUS_BAD_ARGUMENT;
            };
            if len > MAX_EMIT_LEN {
                return STATUS_TOO_LARGE;
            }
            if state.emits.len() >= MAX_EMIT_PER_CALL {
                return STATUS_QUEUE_FULL;
            }
            let Some(bytes) = usize::try_from(ptr)
                .ok()
                .and_then(|p| data.get(p..p.checked_add(len)?))
            else {
                return STATUS_BAD_ARGUMENT;
            };
            let start = state.emit_arena.len();
            state.emit_arena.extend_from_slice(bytes);
            state.emits.push(EmittedFrame {
                port,
                range: start..start + len,
            });
            STATUS_OK
        },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        nfvhost_abi::IMPORT_COUNTER_DEFINE,
        move |mut caller: Caller<'_, HostState>,
              kind: i32,
              name_ptr: i32,
              name_len: i32,
              help_ptr: i32,
              help_len: i32,
              cell: i32|
              -> i32 {
            let Some(memory) = memory_of(&mut caller) else {
                return STATUS_BAD_ARGUMENT;
            };
            let (data, state) = memory.data_and_store_mut(&mut caller);
            if state.phase != Phase::Init {
                return STATUS_WRONG_PHASE;
            }
            if state.metrics.len() >= MAX_COUNTERS {
                return STATUS_QUEUE_FULL;
            }
            let Some(kind) = u8::try_from(kind).ok().and_then(MetricKind::from_u8) else {
                return STATUS_BAD_ARGUMENT;
            };
            let (Some(name), Some(help)) = (
                read_str(data, name_ptr, name_len),
                read_str(data, help_ptr, help_len),
            ) else {
                return STATUS_BAD_ARGUMENT;
            };
            let valid_name = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !name.ends_with("_total");
            let cell_ok = u32::try_from(cell)
                .ok()
                .filter(|c| c % 8 == 0 && (*c as usize) + 8 <= data.len());
            let (true, Some(cell)) = (valid_name, cell_ok) else {
                return STATUS_BAD_ARGUMENT;
            };
            if state.metrics.iter().any(|m| m.name == name) {
                return STATUS_BAD_ARGUMENT;
            }
            state.metrics.push(MetricDef {
                kind,
                name: name.into(),
                help: help.into(),
                cell,
            });
            STATUS_OK
        },
    )?;

    linker.func_wrap(
        IMPORT_MODULE,
        nfvhost_abi::IMPORT_CONFIG_ERROR,
        move |mut caller: Caller<'_, HostState>,
              path_ptr: i32,
              path_len: i32,
              msg_ptr: i32,
              msg_len: i32| {
            let Some(memory) = memory_of(&mut caller) else {
                return;
            };
            let (data, state) = memory.data_and_store_mut(&mut caller);
            let path = read_str(data, path_ptr, path_len).unwrap_or("").to_string();
            let msg = read_str(data, msg_ptr, msg_len)
                .unwrap_or("invalid configuration")
                .to_string();
            state.config_error = Some((path, msg));
        },
    )?;
    Ok(linker)
}

impl VnfInstance {
    /// Instantiates `module` from its pre-linked form (no linking or
    /// import resolution here, so a restart after a trap costs only the
    /// store and the module's own start-up), checks its ABI version, hands
    /// it the init document and reserves the batch region.
    pub fn new(
        engine: &Engine,
        module: &LoadedModule,
        vnf: &str,
        port_count: u16,
        init_document: &[u8],
        limits: InstanceLimits,
    ) -> Result<Self, InstanceError> {
        Self::with_clock(
            engine,
            module,
            vnf,
            port_count,
            init_document,
            limits,
            Instant::now(),
        )
    }

    /// Like [`VnfInstance::new`], with `now_ns` counted from `clock_origin`:
    /// a replacement shares its predecessor's clock, so the timestamps in
    /// the state it takes over keep their meaning.
    pub fn with_clock(
        engine: &Engine,
        module: &LoadedModule,
        vnf: &str,
        port_count: u16,
        init_document: &[u8],
        limits: InstanceLimits,
        clock_origin: Instant,
    ) -> Result<Self, InstanceError> {
        let wasm_engine = engine.wasmtime();
        let state = HostState {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(1)
                .memories(1)
                .tables(1)
                .table_elements(MAX_TABLE_ELEMENTS)
                .build(),
            log_level: limits.log_level,
            log: crate::logging::ModuleLog::new(vnf),
            port_count,
            phase: Phase::Init,
            clock: Clock::with_origin(limits.clock, clock_origin),
            emit_arena: Vec::with_capacity(64 * 1024),
            emits: Vec::with_capacity(MAX_EMIT_PER_CALL),
            metrics: Vec::new(),
            config_error: None,
            timer_ns: None,
        };
        let mut store = Store::new(wasm_engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(limits.call_deadline_ticks);
        store.epoch_deadline_trap();

        let instance = module
            .pre
            .instantiate(&mut store)
            .map_err(InstanceError::Instantiate)?;
        macro_rules! get {
            ($name:expr) => {
                instance
                    .get_typed_func(&mut store, $name)
                    .map_err(InstanceError::Instantiate)?
            };
        }
        let version: TypedFunc<(), i32> = get!(nfvhost_abi::EXPORT_ABI_VERSION);
        let alloc: TypedFunc<i32, i32> = get!(nfvhost_abi::EXPORT_ALLOC);
        let init: TypedFunc<(i32, i32), i32> = get!(nfvhost_abi::EXPORT_INIT);
        let process = get!(nfvhost_abi::EXPORT_PROCESS);
        let tick = get!(nfvhost_abi::EXPORT_TICK);
        let state = if super::abi_check::has_state_exports(&module.module) {
            Some(StateFuncs {
                save: get!(nfvhost_abi::EXPORT_STATE_SAVE),
                load: get!(nfvhost_abi::EXPORT_STATE_LOAD),
            })
        } else {
            None
        };
        let timer = instance
            .get_typed_func::<i64, ()>(&mut store, nfvhost_abi::EXPORT_TIMER)
            .ok();
        let reconfigure = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, nfvhost_abi::EXPORT_RECONFIGURE)
            .ok();
        let memory = instance
            .get_memory(&mut store, nfvhost_abi::EXPORT_MEMORY)
            .ok_or(AbiError::MissingExport {
                name: "memory",
                sig: "memory",
            })?;

        store.set_epoch_deadline(limits.call_deadline_ticks);
        let found = version
            .call(&mut store, ())
            .map_err(|e| InstanceError::InitCall(CallFailure::from_error(e)))?;
        if found != ABI_VERSION as i32 {
            return Err(AbiError::Version {
                found,
                expected: ABI_VERSION,
            }
            .into());
        }

        // The init document, then the batch region: descriptors, then slots.
        let batch_size = limits.batch_size.clamp(1, MAX_BATCH);
        let region = batch_size * FRAME_DESC_SIZE + batch_size * limits.slot_size;
        let reserve = |store: &mut Store<HostState>, len: usize| -> Result<usize, InstanceError> {
            store.set_epoch_deadline(limits.call_deadline_ticks);
            let ptr = alloc
                .call(&mut *store, len as i32)
                .map_err(|e| InstanceError::InitCall(CallFailure::from_error(e)))?;
            if ptr <= 0 || ptr as usize + len > memory.data_size(&*store) {
                return Err(InstanceError::NoRoom(len));
            }
            Ok(ptr as usize)
        };
        let doc_ptr = reserve(&mut store, init_document.len().max(1))?;
        memory.data_mut(&mut store)[doc_ptr..doc_ptr + init_document.len()]
            .copy_from_slice(init_document);
        store.set_epoch_deadline(limits.call_deadline_ticks);
        let status = init
            .call(&mut store, (doc_ptr as i32, init_document.len() as i32))
            .map_err(|e| InstanceError::InitCall(CallFailure::from_error(e)))?;
        if let Some((path, message)) = store.data_mut().config_error.take() {
            return Err(InstanceError::Config { path, message });
        }
        match status {
            STATUS_OK => {}
            STATUS_BAD_CONFIG => {
                return Err(InstanceError::Config {
                    path: String::new(),
                    message: "refused (no reason given)".into(),
                })
            }
            other => return Err(InstanceError::InitStatus(other)),
        }
        let desc_base = reserve(&mut store, region)?;
        let slot_base = desc_base + batch_size * FRAME_DESC_SIZE;
        store.data_mut().phase = Phase::Run;
        Ok(VnfInstance {
            store,
            memory,
            process,
            tick,
            alloc,
            state,
            timer,
            reconfigure,
            desc_base,
            slot_base,
            limits: InstanceLimits {
                batch_size,
                ..limits
            },
            port_count,
        })
    }

    /// Frames per batch.
    pub fn batch_size(&self) -> usize {
        self.limits.batch_size
    }

    /// The instant `now_ns` counts from.
    pub fn clock_origin(&self) -> Instant {
        self.store.data().clock.origin()
    }

    /// Whether the module exports `nfv_state_save` and `nfv_state_load`.
    pub fn carries_state(&self) -> bool {
        self.state.is_some()
    }

    /// Reserves `len` bytes in the module's memory for the host.
    fn reserve(&mut self, len: usize) -> Result<Option<usize>, CallFailure> {
        self.begin_call();
        let ptr = self
            .alloc
            .call(&mut self.store, len as i32)
            .map_err(CallFailure::from_error)?;
        let fits =
            ptr > 0 && (ptr as usize).saturating_add(len) <= self.memory.data_size(&self.store);
        Ok(fits.then_some(ptr as usize))
    }

    /// Asks the module for its state: `None` when it has no state exports
    /// or nothing to carry, else the format version and a copy of the blob
    /// (at most [`nfvhost_abi::MAX_STATE_LEN`] bytes).
    pub fn save_state(&mut self) -> Result<Option<(u32, Vec<u8>)>, StateError> {
        let Some(save) = self.state.as_ref().map(|f| f.save.clone()) else {
            return Ok(None);
        };
        let out = self
            .reserve(8)
            .map_err(StateError::SaveCall)?
            .ok_or(StateError::NoRoom(8))?;
        self.begin_call();
        let version = save
            .call(&mut self.store, out as i32)
            .map_err(|e| StateError::SaveCall(CallFailure::from_error(e)))?;
        if version == STATUS_NO_STATE {
            return Ok(None);
        }
        if version < 0 {
            return Err(StateError::SaveStatus(version));
        }
        let data = self.memory.data(&self.store);
        let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        let (ptr, len) = (word(out), word(out + 4));
        if len as usize > nfvhost_abi::MAX_STATE_LEN {
            return Err(StateError::TooLarge(len as usize));
        }
        let blob = (ptr as usize)
            .checked_add(len as usize)
            .and_then(|end| data.get(ptr as usize..end))
            .ok_or(StateError::OutsideMemory { ptr, len })?;
        Ok(Some((version as u32, blob.to_vec())))
    }

    /// Hands the module a state blob another instance saved with format
    /// `version`; the module may refuse it (with its reason).
    pub fn load_state(&mut self, version: u32, blob: &[u8]) -> Result<(), StateError> {
        let Some(load) = self.state.as_ref().map(|f| f.load.clone()) else {
            return Err(StateError::NotSupported);
        };
        if blob.len() > nfvhost_abi::MAX_STATE_LEN {
            return Err(StateError::TooLarge(blob.len()));
        }
        let ptr = self
            .reserve(blob.len().max(1))
            .map_err(StateError::LoadCall)?
            .ok_or(StateError::NoRoom(blob.len()))?;
        self.memory.data_mut(&mut self.store)[ptr..ptr + blob.len()].copy_from_slice(blob);
        self.begin_call();
        self.store.data_mut().config_error = None;
        let status = load
            .call(
                &mut self.store,
                (version as i32, ptr as i32, blob.len() as i32),
            )
            .map_err(|e| StateError::LoadCall(CallFailure::from_error(e)))?;
        let reason = self.store.data_mut().config_error.take();
        match status {
            STATUS_OK => Ok(()),
            STATUS_STATE_REFUSED => Err(StateError::Refused {
                version,
                message: reason.map_or_else(|| "no reason given".into(), |(_, m)| m),
            }),
            other => Err(StateError::LoadStatus(other)),
        }
    }

    /// Bytes per slot.
    pub fn slot_size(&self) -> usize {
        self.limits.slot_size
    }

    /// Every slot, as disjoint mutable slices of linear memory, for receiving
    /// frames straight into the module's memory.
    pub fn slots_mut(&mut self) -> std::slice::ChunksExactMut<'_, u8> {
        let len = self.limits.batch_size * self.limits.slot_size;
        let slot = self.limits.slot_size;
        self.memory.data_mut(&mut self.store)[self.slot_base..self.slot_base + len]
            .chunks_exact_mut(slot)
    }

    /// The first `len` bytes of slot `i` (clamped to the slot).
    pub fn frame(&self, i: usize, len: usize) -> &[u8] {
        let start = self.slot_base + i * self.limits.slot_size;
        &self.memory.data(&self.store)[start..start + len.min(self.limits.slot_size)]
    }

    /// Runs the module over the batch, frame `i` in slot `i`. On success
    /// the batch holds each frame's verdict and new length, already sorted
    /// by outcome (see [`Batch::forwarded_to`], [`Batch::consumed`],
    /// [`Batch::drops`]).
    pub fn process(&mut self, batch: &mut Batch) -> Result<(), CallFailure> {
        let count = batch.len();
        debug_assert!(count <= self.limits.batch_size);
        self.begin_call();
        let slot = self.limits.slot_size;
        {
            let data = self.memory.data_mut(&mut self.store);
            for (i, f) in batch.frames().iter().enumerate() {
                let desc = FrameDesc {
                    offset: (self.slot_base + i * slot) as u32,
                    len: f.len.min(slot) as u32,
                    capacity: slot as u32,
                    in_port: f.in_port,
                    flags: f.vnet.abi_flags(),
                    gso_size: f.vnet.gso_size(),
                    ..FrameDesc::default()
                };
                let at = self.desc_base + i * FRAME_DESC_SIZE;
                data[at..at + FRAME_DESC_SIZE].copy_from_slice(&desc.to_bytes());
            }
        }
        let status = self
            .process
            .call(&mut self.store, (self.desc_base as i32, count as i32))
            .map_err(CallFailure::from_error)?;
        if status != STATUS_OK {
            return Err(CallFailure::Status(status));
        }
        batch.begin_verdicts(self.port_count);
        let data = self.memory.data(&self.store);
        for i in 0..count {
            let at = self.desc_base + i * FRAME_DESC_SIZE;
            let bytes: &[u8; FRAME_DESC_SIZE] = data[at..at + FRAME_DESC_SIZE]
                .try_into()
                .expect("descriptor size");
            let desc = FrameDesc::from_bytes(bytes);
            let verdict = Verdict::decode(desc.verdict, self.port_count);
            // A length past the slot is a module bug; treat it as malformed.
            let (verdict, len) = if desc.len as usize > slot {
                (Verdict::Drop(nfvhost_abi::DropReason::BadVerdict), 0)
            } else {
                (verdict, desc.len as usize)
            };
            batch.record(verdict, len);
        }
        Ok(())
    }

    /// Runs the module's timer.
    pub fn tick(&mut self) -> Result<(), CallFailure> {
        self.begin_call();
        let now = self.store.data().clock.now_ns();
        self.tick
            .call(&mut self.store, now)
            .map_err(CallFailure::from_error)
    }

    /// Moves a [`ClockMode::Manual`] clock to `now_ns` (never back); the
    /// module's `now_ns` and the next tick see it. A real clock ignores it.
    pub fn set_time(&mut self, now_ns: i64) {
        self.store.data_mut().clock.set(now_ns);
    }

    /// Hands the running module a new init document (`nfv_reconfigure`);
    /// on refusal the module keeps its configuration and the error says why.
    pub fn reconfigure(&mut self, document: &[u8]) -> Result<(), InstanceError> {
        let Some(reconfigure) = self.reconfigure.clone() else {
            return Err(InstanceError::Config {
                path: String::new(),
                message: "this module cannot change its configuration while running".into(),
            });
        };
        self.begin_call();
        let ptr = self
            .alloc
            .call(&mut self.store, document.len().max(1) as i32)
            .map_err(|e| InstanceError::InitCall(CallFailure::from_error(e)))?;
        let start = usize::try_from(ptr).unwrap_or(0);
        if start == 0 || start + document.len() > self.memory.data_size(&self.store) {
            return Err(InstanceError::NoRoom(document.len()));
        }
        self.memory.data_mut(&mut self.store)[start..start + document.len()]
            .copy_from_slice(document);
        self.begin_call();
        let status = reconfigure
            .call(&mut self.store, (ptr, document.len() as i32))
            .map_err(|e| InstanceError::InitCall(CallFailure::from_error(e)))?;
        if let Some((path, message)) = self.store.data_mut().config_error.take() {
            return Err(InstanceError::Config { path, message });
        }
        match status {
            STATUS_OK => Ok(()),
            other => Err(InstanceError::InitStatus(other)),
        }
    }

    /// When the module's one-shot timer expires, in the module's time
    /// (`now_ns`), if it set one (and exports `nfv_timer`).
    pub fn timer_ns(&self) -> Option<u64> {
        self.timer.as_ref()?;
        self.store.data().timer_ns
    }

    /// [`VnfInstance::timer_ns`] as an instant of the real clock.
    pub fn timer_deadline(&self) -> Option<Instant> {
        Some(self.store.data().clock.origin() + Duration::from_nanos(self.timer_ns()?))
    }

    /// Runs the module's `nfv_timer` if its timer has expired; the timer is
    /// cleared first, so the module sets a new one if it wants one.
    /// Returns whether it ran.
    pub fn fire_timer(&mut self) -> Result<bool, CallFailure> {
        let (Some(timer), Some(at)) = (self.timer.clone(), self.store.data().timer_ns) else {
            return Ok(false);
        };
        let now = self.store.data().clock.now_ns().max(0) as u64;
        if now < at {
            return Ok(false);
        }
        self.store.data_mut().timer_ns = None;
        self.begin_call();
        timer
            .call(&mut self.store, now as i64)
            .map_err(CallFailure::from_error)?;
        Ok(true)
    }

    fn begin_call(&mut self) {
        let state = self.store.data_mut();
        state.emit_arena.clear();
        state.emits.clear();
        self.store
            .set_epoch_deadline(self.limits.call_deadline_ticks);
    }

    /// Frames the module emitted during the last call.
    pub fn emitted(&self) -> impl Iterator<Item = (u16, &[u8])> {
        let state = self.store.data();
        state
            .emits
            .iter()
            .map(move |e| (e.port, &state.emit_arena[e.range.clone()]))
    }

    /// The metrics the module declared.
    pub fn metrics(&self) -> &[MetricDef] {
        &self.store.data().metrics
    }

    /// Current values of the declared metrics, in declaration order.
    pub fn metric_values(&self, out: &mut Vec<u64>) {
        let data = self.memory.data(&self.store);
        out.clear();
        out.extend(self.store.data().metrics.iter().map(|m| {
            let at = m.cell as usize;
            data.get(at..at + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        }));
    }

    /// Bytes of linear memory in use, and the limit.
    pub fn memory_usage(&self) -> (usize, usize) {
        (self.memory.data_size(&self.store), self.limits.memory_bytes)
    }
}
