//! Every host import, each next to its safe wrapper.
//!
//! On `wasm32` the wrappers call the host's `nfv` imports (ABI v3, see
//! `docs/ABI.md`). Elsewhere they call the native test host in
//! [`crate::testing`], so a VNF's logic runs under `cargo test`.
#![allow(unsafe_code)]

use core::cell::Cell;
use core::fmt;

use nfvhost_abi::{LogLevel, MetricKind};

/// Why the host did not accept an emitted frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitError {
    /// No port with that number.
    NoSuchPort,
    /// Too many frames emitted in this call.
    QueueFull,
    /// The frame is longer than the host accepts.
    TooLarge,
    /// Any other status the host returned.
    Other(i32),
}

impl EmitError {
    pub(crate) fn from_status(status: i32) -> Result<(), EmitError> {
        match status {
            nfvhost_abi::STATUS_OK => Ok(()),
            nfvhost_abi::STATUS_NO_SUCH_PORT => Err(EmitError::NoSuchPort),
            nfvhost_abi::STATUS_QUEUE_FULL => Err(EmitError::QueueFull),
            nfvhost_abi::STATUS_TOO_LARGE => Err(EmitError::TooLarge),
            other => Err(EmitError::Other(other)),
        }
    }
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::NoSuchPort => write!(f, "no such port"),
            EmitError::QueueFull => write!(f, "emit queue full"),
            EmitError::TooLarge => write!(f, "frame too large"),
            EmitError::Other(s) => write!(f, "host status {s}"),
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "nfv")]
    extern "C" {
        pub fn log(level: i32, ptr: i32, len: i32);
        pub fn now_ns() -> i64;
        pub fn emit(port: i32, ptr: i32, len: i32) -> i32;
        pub fn counter_define(
            kind: i32,
            name_ptr: i32,
            name_len: i32,
            help_ptr: i32,
            help_len: i32,
            cell_ptr: i32,
        ) -> i32;
        pub fn config_error(path_ptr: i32, path_len: i32, msg_ptr: i32, msg_len: i32);
        pub fn timer_at(at_ns: i64);
    }
}

/// Sends a log line to the host.
pub(crate) fn log(level: LogLevel, msg: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the pointer and length describe a live &str in our own memory.
    unsafe {
        imports::log(level as i32, msg.as_ptr() as i32, msg.len() as i32)
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::native::log(level, msg)
}

/// Monotonic nanoseconds from the host.
pub(crate) fn now_ns() -> u64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: takes no arguments and returns a plain integer.
    unsafe {
        imports::now_ns() as u64
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::native::now_ns()
}

/// Sets (`at_ns` >= 0) or cancels (< 0) the one-shot timer.
pub(crate) fn timer_at(at_ns: i64) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: takes a plain integer and returns nothing.
    unsafe {
        imports::timer_at(at_ns)
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::native::timer_at(at_ns)
}

/// Queues a new frame on `port`.
pub(crate) fn emit(port: u16, frame: &[u8]) -> Result<(), EmitError> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the pointer and length describe a live slice in our own memory;
    // the host copies it before returning.
    let status = unsafe { imports::emit(port as i32, frame.as_ptr() as i32, frame.len() as i32) };
    #[cfg(not(target_arch = "wasm32"))]
    let status = crate::testing::native::emit(port, frame);
    EmitError::from_status(status)
}

/// Declares a metric whose value lives in `cell`.
pub(crate) fn counter_define(
    kind: MetricKind,
    name: &str,
    help: &str,
    cell: &'static Cell<u64>,
) -> Result<(), i32> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: name and help are live strs; `cell` is leaked, so the address
    // stays valid for the life of the instance, which is what the host needs.
    let status = unsafe {
        imports::counter_define(
            kind as i32,
            name.as_ptr() as i32,
            name.len() as i32,
            help.as_ptr() as i32,
            help.len() as i32,
            cell.as_ptr() as i32,
        )
    };
    #[cfg(not(target_arch = "wasm32"))]
    let status = crate::testing::native::counter_define(kind, name, help, cell);
    if status == nfvhost_abi::STATUS_OK {
        Ok(())
    } else {
        Err(status)
    }
}

/// Tells the host why the configuration was refused.
pub(crate) fn config_error(path: &str, msg: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: both pointers and lengths describe live strs in our memory.
    unsafe {
        imports::config_error(
            path.as_ptr() as i32,
            path.len() as i32,
            msg.as_ptr() as i32,
            msg.len() as i32,
        )
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::native::config_error(path, msg)
}
