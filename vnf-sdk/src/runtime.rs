//! The glue behind [`crate::export_vnf!`]: decodes what the host hands over
//! and dispatches into the author's [`Vnf`]. Not for direct use.
#![allow(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::UnsafeCell;

use nfvhost_abi::{
    FrameDesc, LogLevel, Verdict, ABI_VERSION, STATUS_BAD_ARGUMENT, STATUS_BAD_CONFIG,
    STATUS_NO_STATE, STATUS_OK, STATUS_STATE_REFUSED,
};
use serde::Deserialize;

use crate::context::PortLink;
use crate::wire::EthernetAddress;
use crate::{hostcalls, ConfigError, Context, Frame, InitContext, Vnf};

/// Holds the module's one instance, and the scratch space `process`
/// reuses from batch to batch so the hot path does not allocate.
pub struct Slot<V> {
    vnf: UnsafeCell<Option<V>>,
    scratch: UnsafeCell<Scratch>,
}

/// Per-batch buffers, kept empty between calls.
struct Scratch {
    /// Always empty outside `process`: the `'static` is never used for a
    /// live frame (see [`recycle`]).
    frames: Vec<Frame<'static>>,
    verdicts: Vec<Verdict>,
    /// The last state blob `nfv_state_save` handed out; it stays valid
    /// until the module's next call, which frees it.
    saved: Vec<u8>,
}

// SAFETY: a wasm32-unknown-unknown module is single-threaded; the host never
// calls into one instance from two threads, so there is no concurrent access.
unsafe impl<V> Sync for Slot<V> {}

impl<V> Slot<V> {
    #[expect(clippy::new_without_default, reason = "must be const for a static")]
    pub const fn new() -> Self {
        Slot {
            vnf: UnsafeCell::new(None),
            scratch: UnsafeCell::new(Scratch {
                frames: Vec::new(),
                verdicts: Vec::new(),
                saved: Vec::new(),
            }),
        }
    }

    #[expect(
        clippy::mut_from_ref,
        reason = "single-threaded module; see the Sync impl"
    )]
    fn get(&self) -> &mut Option<V> {
        // SAFETY: single-threaded (see the Sync impl) and the entry points
        // never nest, so no other reference to the contents is alive.
        unsafe { &mut *self.vnf.get() }
    }

    #[expect(
        clippy::mut_from_ref,
        reason = "single-threaded module; see the Sync impl"
    )]
    fn scratch(&self) -> &mut Scratch {
        // SAFETY: as in `get`; only `process` uses the scratch space, once
        // per call.
        unsafe { &mut *self.scratch.get() }
    }
}

/// Empties a vector of frames and hands back its allocation for frames of
/// another lifetime.
fn recycle<'b>(mut frames: Vec<Frame<'_>>) -> Vec<Frame<'b>> {
    frames.clear();
    let mut frames = core::mem::ManuallyDrop::new(frames);
    let (ptr, capacity) = (frames.as_mut_ptr(), frames.capacity());
    // SAFETY: the allocation came from a Vec of the same element type up to
    // lifetimes (same size, alignment and allocator), its length is 0 so no
    // frame of the old lifetime survives, and the original Vec is never
    // dropped (ManuallyDrop), so the allocation has one owner.
    unsafe { Vec::from_raw_parts(ptr.cast::<Frame<'b>>(), 0, capacity) }
}

/// The init document (see `nfvhost_abi::CONFIG_ENCODING`).
#[derive(Deserialize)]
struct InitDocument {
    abi: u32,
    #[serde(default)]
    vnf: String,
    ports: Vec<PortDoc>,
    #[serde(default)]
    config: serde_json::Value,
}

/// One entry of the init document's `ports`: `{"name", "mtu", "mac"}`. A
/// bare name (what test harnesses write) stands for a port with the default
/// MTU and no MAC of its own.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortDoc {
    Name(String),
    Full {
        name: String,
        mtu: u16,
        #[serde(default)]
        mac: Option<String>,
    },
}

impl PortDoc {
    fn decode(self, index: usize) -> Result<(String, PortLink), ConfigError> {
        match self {
            PortDoc::Name(name) => Ok((
                name,
                PortLink {
                    mtu: PortLink::DEFAULT_MTU,
                    mac: None,
                },
            )),
            PortDoc::Full { name, mtu, mac } => {
                let mac = match mac {
                    None => None,
                    Some(s) => Some(EthernetAddress::parse(&s).ok_or_else(|| {
                        ConfigError::at(
                            "",
                            alloc::format!("the host sent port {index} with a bad MAC `{s}`"),
                        )
                    })?),
                };
                Ok((name, PortLink { mtu, mac }))
            }
        }
    }
}

/// Decodes the init document and builds the instance. Shared by the wasm
/// entry point and the native harness.
pub fn build<V: Vnf>(document: &[u8]) -> Result<V, ConfigError> {
    let (doc, config) = decode::<V>(document)?;
    let ports = doc
        .ports
        .into_iter()
        .enumerate()
        .map(|(i, p)| p.decode(i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ctx = InitContext::new(doc.vnf, ports);
    V::new(&mut ctx, config)
}

/// Reads an init document and its `config` as the module's type.
fn decode<V: Vnf>(document: &[u8]) -> Result<(InitDocument, V::Config), ConfigError> {
    let mut doc: InitDocument = serde_json::from_slice(document).map_err(|e| {
        ConfigError::at(
            "",
            alloc::format!("the host sent an unreadable init document: {e}"),
        )
    })?;
    if doc.abi != ABI_VERSION {
        return Err(ConfigError::at(
            "",
            alloc::format!("host speaks ABI {}, module ABI {ABI_VERSION}", doc.abi),
        ));
    }
    let config = if doc.config.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        core::mem::take(&mut doc.config)
    };
    let config: V::Config = serde_path_to_error::deserialize(config).map_err(|e| {
        ConfigError::at(
            dotted_path(&e.path().to_string()),
            e.into_inner().to_string(),
        )
    })?;
    Ok((doc, config))
}

/// Hands a running instance a new configuration from an init document.
pub fn reconfigure_with<V: Vnf>(vnf: &mut V, document: &[u8]) -> Result<(), ConfigError> {
    let (_, config) = decode::<V>(document)?;
    vnf.reconfigure(&mut Context::new(), config)
}

pub fn reconfigure<V: Vnf>(slot: &Slot<V>, ptr: i32, len: i32) -> i32 {
    let Some(vnf) = slot.get().as_mut() else {
        return STATUS_BAD_ARGUMENT;
    };
    if ptr <= 0 || len < 0 {
        return STATUS_BAD_ARGUMENT;
    }
    // SAFETY: the host wrote `len` bytes at `ptr`, inside a region it got
    // from `alloc`, and does not touch them during this call.
    let document = unsafe { core::slice::from_raw_parts(ptr as usize as *const u8, len as usize) };
    match reconfigure_with(vnf, document) {
        Ok(()) => STATUS_OK,
        Err(e) => {
            hostcalls::config_error(&e.path, &e.message);
            STATUS_BAD_CONFIG
        }
    }
}

/// Writes serde's `routes[0].via` (and `.` for the root) in the one path
/// notation the ABI uses: `routes.0.via` (and the empty path).
fn dotted_path(serde_path: &str) -> String {
    if serde_path == "." {
        return String::new();
    }
    serde_path
        .replace('[', ".")
        .replace(']', "")
        .trim_start_matches('.')
        .to_string()
}

pub fn abi_version() -> i32 {
    ABI_VERSION as i32
}

/// Reserves `len` bytes (16-byte aligned) for the host, for the life of the
/// instance.
pub fn alloc(len: i32) -> i32 {
    if len <= 0 {
        return 0;
    }
    let Ok(layout) = core::alloc::Layout::from_size_align(len as usize, 16) else {
        return 0;
    };
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
    ptr as usize as i32
}

pub fn init<V: Vnf>(slot: &Slot<V>, ptr: i32, len: i32) -> i32 {
    // A panic in the module traps; log its message first so the host's log
    // says why, not only where.
    #[cfg(target_arch = "wasm32")]
    std::panic::set_hook(alloc::boxed::Box::new(|info| {
        hostcalls::log(LogLevel::Error, &alloc::format!("{info}"))
    }));
    if ptr <= 0 || len < 0 {
        return STATUS_BAD_ARGUMENT;
    }
    // SAFETY: the host wrote `len` bytes at `ptr`, inside a region it got
    // from `alloc`, and does not touch them during this call.
    let document = unsafe { core::slice::from_raw_parts(ptr as usize as *const u8, len as usize) };
    match build::<V>(document) {
        Ok(instance) => {
            *slot.get() = Some(instance);
            STATUS_OK
        }
        Err(e) => {
            hostcalls::config_error(&e.path, &e.message);
            STATUS_BAD_CONFIG
        }
    }
}

pub fn process<V: Vnf>(slot: &Slot<V>, ptr: i32, count: i32) -> i32 {
    let Some(vnf) = slot.get().as_mut() else {
        return STATUS_BAD_ARGUMENT;
    };
    if ptr <= 0 || count < 0 || count as usize > nfvhost_abi::MAX_BATCH {
        return STATUS_BAD_ARGUMENT;
    }
    // SAFETY: the host laid out `count` descriptors at `ptr` (16-byte aligned,
    // inside memory it got from `alloc`) and owns no reference to them during
    // this call. FrameDesc is repr(C) with little-endian fields, as on wasm.
    let descs =
        unsafe { core::slice::from_raw_parts_mut(ptr as usize as *mut FrameDesc, count as usize) };
    let scratch = slot.scratch();
    if scratch.saved.capacity() > 0 {
        scratch.saved = Vec::new();
    }
    let mut frames = recycle(core::mem::take(&mut scratch.frames));
    frames.extend(descs.iter().map(|d| {
        // SAFETY: each descriptor names a distinct buffer of `capacity`
        // bytes, disjoint from the descriptors and from each other; the
        // host guarantees this when it builds the batch.
        let buf = unsafe {
            core::slice::from_raw_parts_mut(d.offset as usize as *mut u8, d.capacity as usize)
        };
        Frame::with_offload(d.in_port, buf, d.len as usize, d.flags, d.gso_size)
    }));
    let verdicts = &mut scratch.verdicts;
    verdicts.clear();
    verdicts.resize(frames.len(), Verdict::Drop(crate::DropReason::Other));
    let mut ctx = Context::new();
    vnf.process_batch(&mut ctx, &mut frames, verdicts);
    for ((d, v), frame) in descs.iter_mut().zip(verdicts.iter()).zip(&frames) {
        d.verdict = v.encode();
        d.len = frame.len() as u32;
    }
    scratch.frames = recycle(frames);
    STATUS_OK
}

pub fn tick<V: Vnf>(slot: &Slot<V>, _now_ns: i64) {
    if let Some(vnf) = slot.get().as_mut() {
        vnf.tick(&mut Context::new());
    }
}

/// `nfv_state_save`: writes the blob's offset and length at `out` and
/// returns its format version, or [`STATUS_NO_STATE`].
pub fn state_save<V: Vnf>(slot: &Slot<V>, out: i32) -> i32 {
    let Some(vnf) = slot.get().as_ref() else {
        return STATUS_NO_STATE;
    };
    if out <= 0 {
        return STATUS_BAD_ARGUMENT;
    }
    let Some(blob) = vnf.save_state() else {
        return STATUS_NO_STATE;
    };
    let scratch = slot.scratch();
    scratch.saved = blob;
    let words = [
        (scratch.saved.as_ptr() as usize as u32).to_le_bytes(),
        (scratch.saved.len() as u32).to_le_bytes(),
    ];
    // SAFETY: the host reserved 8 bytes at `out` with `nfv_alloc` for this
    // call and holds no reference to them meanwhile.
    let dest = unsafe { core::slice::from_raw_parts_mut(out as usize as *mut u8, 8) };
    dest[..4].copy_from_slice(&words[0]);
    dest[4..].copy_from_slice(&words[1]);
    V::STATE_VERSION as i32
}

/// `nfv_state_load`: hands the blob at `ptr` (reserved by the host with
/// `nfv_alloc`, now ours) to the instance, then frees it.
pub fn state_load<V: Vnf>(slot: &Slot<V>, version: i32, ptr: i32, len: i32) -> i32 {
    let Some(vnf) = slot.get().as_mut() else {
        return STATUS_BAD_ARGUMENT;
    };
    if ptr <= 0 || len < 0 || version < 0 {
        return STATUS_BAD_ARGUMENT;
    }
    // SAFETY: the host wrote `len` bytes at `ptr`, inside a region it got
    // from `alloc` for this call, and does not touch them during it.
    let blob = unsafe { core::slice::from_raw_parts(ptr as usize as *const u8, len as usize) };
    let result = vnf.load_state(version as u32, blob);
    if let Ok(layout) = core::alloc::Layout::from_size_align(len.max(1) as usize, 16) {
        // SAFETY: `alloc` reserved exactly this region with this layout
        // (the host asks for `len.max(1)` bytes), and nothing uses it now.
        unsafe { alloc::alloc::dealloc(ptr as usize as *mut u8, layout) };
    }
    match result {
        Ok(()) => STATUS_OK,
        Err(e) => {
            hostcalls::config_error("state", &e.message);
            STATUS_STATE_REFUSED
        }
    }
}

/// `nfv_timer`: the one-shot timer expired.
pub fn timer<V: Vnf>(slot: &Slot<V>, _now_ns: i64) {
    if let Some(vnf) = slot.get().as_mut() {
        vnf.timer(&mut Context::new());
    }
}

pub fn log(level: LogLevel, msg: &str) {
    hostcalls::log(level, msg)
}

pub fn format(args: core::fmt::Arguments<'_>) -> String {
    alloc::fmt::format(args)
}

#[cfg(test)]
mod tests {
    use super::dotted_path;

    #[test]
    fn paths_use_one_notation() {
        assert_eq!(dotted_path("."), "");
        assert_eq!(dotted_path("rules[2].bogus"), "rules.2.bogus");
        assert_eq!(dotted_path("interfaces.wan"), "interfaces.wan");
        assert_eq!(dotted_path("[0]"), "0");
    }
}
